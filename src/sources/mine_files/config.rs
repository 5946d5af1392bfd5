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
    /// An FTP session with no command this long is closed (421). Default 300 s.
    pub idle_timeout_s: u64,
    /// A folder to take files from (uploaded there by another server). Default none.
    pub watch_dir: Option<PathBuf>,
    /// A file in the watched folder unchanged this long is complete. Default 2000 ms.
    pub settle_ms: u64,
    /// How long applied files are kept in `done/`. Default 7 days.
    pub keep_days: u32,
    /// A mine's system is networked until its last real-time file's arrival plus this.
    /// Default 300 s.
    pub upload_timeout_s: u64,
    /// How often the watched folder is scanned (a poll: see docs/mine-files.md, "Watched
    /// folder", for why not inotify). Default 1000 ms.
    pub watch_scan_ms: u64,
    /// How many mines' files the watched folder takes at once; one mine's files are always
    /// taken one at a time, in the order of their data time. Default 4.
    pub watch_concurrency: usize,
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
            idle_timeout_s: 300,
            watch_dir: None,
            settle_ms: 2000,
            keep_days: 7,
            upload_timeout_s: 300,
            watch_scan_ms: 1000,
            watch_concurrency: 4,
        }
    }
}

impl MineFilesSettings {
    /// The watched folder's own rules; `err(key, message)` collects a problem. (Named apart
    /// from the section's other checks so that each transport keeps its own.)
    pub fn watch_problems(&self, err: &mut dyn FnMut(&str, String)) {
        if self
            .watch_dir
            .as_ref()
            .is_some_and(|d| d.as_os_str().is_empty())
        {
            err(
                "mine_files.watch_dir",
                "is empty: give the folder the other FTP server uploads to, or leave it out".into(),
            );
        }
        if !(100..=600_000).contains(&self.settle_ms) {
            err(
                "mine_files.settle_ms",
                format!("{} is not between 100 and 600000", self.settle_ms),
            );
        }
        if !(100..=60_000).contains(&self.watch_scan_ms) {
            err(
                "mine_files.watch_scan_ms",
                format!("{} is not between 100 and 60000", self.watch_scan_ms),
            );
        }
        if !(1..=64).contains(&self.watch_concurrency) {
            err(
                "mine_files.watch_concurrency",
                format!("{} is not between 1 and 64", self.watch_concurrency),
            );
        }
        if !(1..=3650).contains(&self.keep_days) {
            err(
                "mine_files.keep_days",
                format!("{} is not between 1 and 3650", self.keep_days),
            );
        }
    }
}

impl MineFilesSettings {
    /// The section's own rules; `err(key, message)` collects a problem.
    pub fn problems(&self, err: &mut dyn FnMut(&str, String)) {
        if self.enabled && self.listen.is_empty() && self.watch_dir.is_none() {
            err(
                "mine_files.listen",
                "mine files are enabled but neither an FTP listen address nor a watch_dir is set"
                    .into(),
            );
        }
        if !self.listen.is_empty() && self.listen.parse::<std::net::SocketAddr>().is_err() {
            err(
                "mine_files.listen",
                format!(
                    "{:?} is not an IP address and port (e.g. \"0.0.0.0:2121\"), nor empty",
                    self.listen
                ),
            );
        }
        let [from, to] = self.passive_ports;
        if from == 0 || from > to {
            err(
                "mine_files.passive_ports",
                format!("[{from}, {to}] is not a range of ports: 1 <= first <= last"),
            );
        }
        if self.tls_cert_file.is_some() != self.tls_key_file.is_some() {
            err(
                "mine_files.tls_cert_file",
                "tls_cert_file and tls_key_file are given both or neither".into(),
            );
        }
        self.watch_problems(err);
        for (key, v, lo, hi) in self.bounded() {
            if !(lo..=hi).contains(&v) {
                err(
                    &format!("mine_files.{key}"),
                    format!("{v} is not between {lo} and {hi}"),
                );
            }
        }
    }

    /// The numeric settings with their bounds: (key, value, least, most).
    fn bounded(&self) -> [(&'static str, u64, u64, u64); 4] {
        [
            (
                "max_file_bytes",
                self.max_file_bytes as u64,
                1,
                256 * 1024 * 1024,
            ),
            ("max_sessions", self.max_sessions as u64, 1, 100_000),
            ("idle_timeout_s", self.idle_timeout_s, 1, 86_400),
            ("upload_timeout_s", self.upload_timeout_s, 10, 86_400),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::MineFilesSettings;

    fn problems(s: &MineFilesSettings) -> Vec<String> {
        let mut out = Vec::new();
        s.problems(&mut |key, msg| out.push(format!("{key}: {msg}")));
        out
    }

    #[test]
    fn the_defaults_have_no_problem_and_bad_values_are_named() {
        assert!(problems(&MineFilesSettings::default()).is_empty());
        let bad = MineFilesSettings {
            listen: "ftp.example:21".into(),
            passive_ports: [50100, 50000],
            tls_cert_file: Some("cert.pem".into()),
            max_file_bytes: 0,
            max_sessions: 0,
            idle_timeout_s: 0,
            ..MineFilesSettings::default()
        };
        let p = problems(&bad);
        for key in [
            "listen",
            "passive_ports",
            "tls_cert_file",
            "max_file_bytes",
            "max_sessions",
            "idle_timeout_s",
        ] {
            assert!(
                p.iter()
                    .any(|m| m.starts_with(&format!("mine_files.{key}:"))),
                "{key} in {p:?}"
            );
        }
    }
}
