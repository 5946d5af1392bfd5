//! The HTTP API (axum) for operators and evaluators.

mod alarms;
mod app;
pub mod auth;
mod cluster;
mod cluster_ack;
mod command;
pub mod config;
mod console;
mod error;
pub mod events;
mod history;
mod indicators;
mod ingest;
mod openapi;
mod overview;
mod routes;
pub(crate) mod schemas;
mod site_units;
#[cfg(test)]
mod tests;

pub use app::router;
pub use command::{Command, ReloadOutcome, ReloadProblem, ReloadReport};
pub use error::{ApiError, ErrorBody};
pub use overview::Cache as OverviewCache;

use crate::core::Core;
use crate::sources::modbus::ModbusStatus;
use crate::telemetry::{LinkStatus, Metrics, OutboxStatus, StoreStatus};
use std::sync::{Arc, Mutex};

/// What handlers read.
pub struct Shared {
    /// The live core, held by the core task while it applies a batch (up to 1,024 events);
    /// handlers take it only for a point lookup (one alarm), never for a listing.
    pub core: Mutex<Core>,
    /// What the listings answer from: published by the core task at most
    /// [`crate::runtime::publish::PUBLISH_EVERY`] after a change, read without a lock.
    pub read_model: arc_swap::ArcSwap<crate::core::snapshot::Snapshot>,
    /// The configuration in force, secrets left out (`GET /api/v1/config`, admin).
    pub config_view: serde_json::Value,
    /// `by` and `note` bounds of an acknowledgement (`mqtt.max_id_bytes`, `max_note_bytes`),
    /// the same over HTTP as over MQTT.
    pub ack_limits: (usize, usize),
    /// Who did what, when, from where.
    pub audit: Arc<crate::sinks::audit::AuditLog>,
    /// Requests to the core task (alarm acknowledgements).
    pub commands: tokio::sync::mpsc::Sender<Command>,
    pub metrics: Arc<Metrics>,
    pub mqtt: Arc<LinkStatus>,
    pub store: Arc<StoreStatus>,
    /// The outbox's backlog and budget (disabled without `[store]`).
    pub outbox_status: Arc<OutboxStatus>,
    /// The outbox itself, for its dead letters (none without `[store]`).
    pub outbox: Option<Arc<Mutex<crate::sinks::outbox::Outbox>>>,
    pub evaluator: Arc<crate::report::evaluate::Evaluator>,
    /// Modbus endpoints and devices with their counters (empty without Modbus devices).
    pub modbus: Arc<ModbusStatus>,
    /// HTTP push (`POST /api/v1/ingest/…`); `None` with `ingest.enabled = false`.
    pub ingest: Option<Arc<crate::sources::http::HttpIngest>>,
    /// The mines and their networking files (`/api/v1/mines`).
    pub mines: Arc<crate::sources::mine_files::status::MinesStatus>,
    /// The runtime's clock: "now" of alarm views and of indicator windows.
    pub clock: crate::telemetry::Clock,
    /// Device-state and alarm changes for `GET /api/v1/events` (fed by the core task).
    pub events: events::Feed,
    /// Cluster mode's lease view (`GET /api/v1/cluster`); `None` without `[cluster]`.
    pub cluster: Option<Arc<crate::cluster::ClusterStatus>>,
    /// Cluster mode: into the readings stream, as the sources' events go (an operator's
    /// acknowledgement must reach every instance at the same point). `None` alone.
    pub into_stream: Option<tokio::sync::mpsc::Sender<crate::core::SourceEvent>>,
    /// The overview's window figures, kept a little ([`overview::WINDOW_TTL_MS`]).
    pub overview: overview::Cache,
}

impl Shared {
    pub fn core(&self) -> std::sync::MutexGuard<'_, Core> {
        // A panic while holding the lock would be a bug; the data is still consistent enough
        // to serve reads, so recover instead of poisoning every request.
        self.core.lock().unwrap_or_else(|p| p.into_inner())
    }
}
