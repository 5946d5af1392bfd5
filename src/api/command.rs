//! What the API asks of the core task. The API sends; the runtime's core task answers on
//! `reply`, so the API never reaches into the core's state to change it.

use crate::core::alarms::{AckError, AckReply, AlarmId};

/// What the API asks of the core task; the answer comes back on `reply`.
#[derive(Debug)]
pub enum Command {
    Ack {
        id: AlarmId,
        /// When the acknowledger is bound to a site.
        site: Option<String>,
        by: String,
        note: String,
        /// `http`, or `http:{token name}` when the API has tokens.
        via: String,
        reply: tokio::sync::oneshot::Sender<Result<AckReply, AckError>>,
    },
    /// Re-read the files the gateway started with and apply their inventory
    /// (`POST /api/v1/config/reload`, SIGHUP).
    Reload {
        /// Who asked: `http:{token name}`, `http`, or `sighup`.
        via: String,
        reply: tokio::sync::oneshot::Sender<ReloadOutcome>,
    },
}

/// What a reload did: the inventory's changes, applied at `at`, and what differs in the
/// files but is not applied until a restart.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ReloadReport {
    /// When the change took effect (RFC 3339, the gateway clock): the new units count from
    /// it, the removed ones stop at it.
    pub at: String,
    pub at_ms: i64,
    /// The files read, the main file first.
    pub files: Vec<String>,
    /// Units added, changed and removed, per kind.
    pub inventory: crate::core::InventoryTally,
    /// Sections or keys that differ from the running configuration and are not applied:
    /// each says what it is; a restart applies them.
    pub needs_restart: Vec<String>,
}

/// One problem that refused a reload, located (file, key) as at start.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ReloadProblem {
    pub file: String,
    pub key: String,
    pub message: String,
}

/// A reload applied, or refused with its problems (nothing changed).
pub type ReloadOutcome = Result<ReloadReport, Vec<ReloadProblem>>;
