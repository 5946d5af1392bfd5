//! `[mine_files]`: the coal mines' networking files, over FTP(S) and a watched folder. A key
//! left out takes its value from `Default` below, the one place the defaults are written.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct MineFilesSettings {
    /// Take mine files at all. Default false.
    pub enabled: bool,
    /// The FTP server's control address. Default "127.0.0.1:2121"; empty: no FTP server.
    pub listen: String,
    /// The passive data ports, inclusive. Default [50000, 50099].
    pub passive_ports: [u16; 2],
    /// FTPS: the server certificate and key (PEM). Both or neither; default none (plain FTP).
    pub tls_cert_file: Option<PathBuf>,
    pub tls_key_file: Option<PathBuf>,
    /// Larger files are refused. Default 8388608 (8 MiB).
    pub max_file_bytes: usize,
    /// More concurrent FTP sessions are refused. Default 256.
    pub max_sessions: usize,
    /// A folder to take files from (uploaded there by another server). Default none.
    pub watch_dir: Option<PathBuf>,
    /// A file in the watched folder unchanged this long is complete. Default 2000 ms.
    pub settle_ms: u64,
    /// How long applied files are kept in `done/`. Default 7 days.
    pub keep_days: u32,
    /// A mine's system is networked until its last real-time file's arrival plus this.
    /// Default 300 s.
    pub upload_timeout_s: u64,
}

impl Default for MineFilesSettings {
    fn default() -> Self {
        MineFilesSettings {
            enabled: false,
            listen: "127.0.0.1:2121".into(),
            passive_ports: [50000, 50099],
            tls_cert_file: None,
            tls_key_file: None,
            max_file_bytes: 8 * 1024 * 1024,
            max_sessions: 256,
            watch_dir: None,
            settle_ms: 2000,
            keep_days: 7,
            upload_timeout_s: 300,
        }
    }
}
