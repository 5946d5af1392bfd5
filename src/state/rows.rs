//! What the journal's callers hand it and get back: rows, messages to its writer thread, and
//! its error. Apart from the journal's own code, so that the schema, the writer, the reader
//! and the alarm tables share them without importing one another.

use crate::core::alarms::view::{AlarmView, EventView};
use std::path::PathBuf;

/// One alarm change to persist: the alarm after it, and the event.
pub type AlarmRow = (AlarmView, EventView);

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot create the state directory {0}: {1}")]
    Dir(PathBuf, std::io::Error),
    #[error("state database {0}: {1}")]
    Db(PathBuf, rusqlite::Error),
    #[error("no state database at {0}: has the gateway run with this data_dir?")]
    Missing(PathBuf),
    #[error(transparent)]
    File(#[from] super::files::DbFileError),
    #[error("{path} holds state schema version {found}, newer than this safegate's {supported}: run the release that wrote it, or a newer one")]
    Newer {
        path: PathBuf,
        found: i64,
        supported: i64,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct TransitionRow {
    pub site: String,
    pub device: String,
    pub at_ms: i64,
    pub online: bool,
    pub cause: String,
}

/// A device's condition from `at_ms` on (see [`crate::core::ConditionChange`]).
#[derive(Debug, Clone, PartialEq)]
pub struct ConditionRow {
    pub site: String,
    pub device: String,
    pub at_ms: i64,
    pub condition: &'static str,
    pub cause: Option<String>,
}

/// What the journal knows of one device at start-up.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceSnapshot {
    pub site: String,
    pub device: String,
    /// The last transition: (online, at).
    pub last_transition: Option<(bool, i64)>,
    pub last_seen_ms: Option<i64>,
    pub fault: bool,
}

/// Latency counts: (site, minute start ms, bucket, count).
pub type LatencyRow = (String, i64, u32, u64);

pub enum JournalMsg {
    Transitions(Vec<TransitionRow>),
    Conditions(Vec<ConditionRow>),
    /// (site, device, last_seen_ms, fault), saved periodically.
    LastSeen(Vec<(String, String, i64, bool)>),
    /// (link, at, up).
    Links(Vec<(String, i64, bool)>),
    Latency(Vec<LatencyRow>),
    /// (link, minute start ms, ok, failed) poll counts.
    Polls(Vec<(String, i64, u64, u64)>),
    /// Alarm changes, in order.
    Alarms(Vec<AlarmRow>),
    /// Registry history rows of units that joined, changed status or left at runtime.
    Registry(Vec<crate::core::RegistryChange>),
    /// Receipts of messages whose state changes came before this: completed once those are
    /// committed, dropped (not durable) when a write failed.
    Receipts(Vec<crate::core::Receipt>),
    /// Cluster mode: the stream position everything before this comes to.
    Checkpoint(Box<Checkpoint>),
}

/// Cluster mode: every event of the readings stream up to `sequence` is applied, none after,
/// and the journal's writes before this message are what they did; `state` is what the core
/// holds beyond the journal (`core::resume`). Written in the one transaction that holds
/// those writes, so after a crash the journal is exactly at its last checkpoint.
pub struct Checkpoint {
    pub sequence: u64,
    /// The stream's time at `sequence`.
    pub stream_ms: i64,
    /// When the stream was created (ns): its identity.
    pub stream_created_ns: i64,
    pub state: Vec<u8>,
    /// The devices whose entry changed since the last checkpoint: (site, device, entry).
    pub devices: Vec<(String, String, Vec<u8>)>,
    /// The mines whose state changed since the last checkpoint.
    pub files: Vec<crate::core::event::FileSave>,
    /// Completed once committed (dropped when it was not).
    pub done: Option<crate::core::Receipt>,
}

/// A checkpoint as read back at start.
#[derive(Debug, Clone, PartialEq)]
pub struct Resumed {
    pub sequence: u64,
    pub stream_ms: i64,
    pub stream_created_ns: i64,
    pub state: Vec<u8>,
}

/// Cluster mode: the journal's open transaction, committed with the next checkpoint
/// (`super::checkpoint`).
#[derive(Default)]
pub(crate) struct Held {
    /// Receipts of what the open transaction holds: completed when it commits.
    pub(super) pending: Vec<crate::core::Receipt>,
    /// A write failed since the last checkpoint.
    pub(super) failed: bool,
    /// The journal stays at its last checkpoint until a restart (a write was lost, so what
    /// follows cannot be checkpointed exactly).
    pub(super) broken: bool,
}
