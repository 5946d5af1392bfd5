//! Coal mines' networking files (煤安监办〔2019〕42号 附件2, MT/T 1201.1/1201.3-2023): the point
//! definitions, real-time values, anomalies, substations and personnel-positioning files a
//! mine's KJ system already uploads every few seconds, taken over an embedded FTP(S) server
//! or from a watched folder. See docs/mine-files.md.
//!
//! The transports (`ftp`, `watch`) only receive whole files and hand each to a [`Taker`];
//! they answer their sender (the FTP 226, the move to `done/`) with what the taker returns,
//! which is only after the file's readings are committed.

pub mod config;
pub mod format;
pub mod ftp;
pub mod metrics;
pub mod watch;

use futures::future::BoxFuture;

/// How a file arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    Ftp,
    Folder,
}

/// A complete file, as a transport received it.
#[derive(Debug, Clone)]
pub struct Upload {
    /// The mine the transport vouches for: the FTP login. `None` from the watched folder,
    /// where the file name's code is all there is.
    pub login: Option<String>,
    /// The file's own name, without any folder (`<mine code>_<TYPE>_<yyyyMMddHHmmss>.txt`).
    pub name: String,
    pub bytes: Vec<u8>,
    /// When the transport had it whole, epoch ms (the gateway's clock).
    pub received_ms: i64,
    pub via: Via,
}

/// What became of a file that was taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Taken {
    /// Its records were applied and committed; `refused` of them were refused one by one.
    Applied { accepted: usize, refused: usize },
    /// The same file (name and content) was applied before: nothing was done again.
    Duplicate,
}

/// Why a file was not taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TakeError {
    /// Refused for good: sending it again unchanged will not help (FTP: a 55x reply; the
    /// watched folder moves it to `quarantine/` with the reason beside it).
    #[error("{reason}: {detail}")]
    Refused {
        reason: &'static str,
        detail: String,
    },
    /// Not taken now, nothing of it committed: the gateway is holding, stopping, or the
    /// commit failed (FTP: 451, the uploader retries; the folder leaves it for the next scan).
    #[error("not taken now, send it again: {0}")]
    Retry(String),
    /// The file does not end with `||`: over FTP it is refused, the watched folder waits for
    /// the rest of it.
    #[error("the file is incomplete: it does not end with `||`")]
    Incomplete,
}

/// Takes a whole file: parses it, applies it to the core and returns once it is committed.
/// The transports hold it as `Arc<dyn Taker>`.
pub trait Taker: Send + Sync + 'static {
    fn take(&self, upload: Upload) -> BoxFuture<'static, Result<Taken, TakeError>>;
}
