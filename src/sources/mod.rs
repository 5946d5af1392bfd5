//! Sources (MQTT subscriptions, Modbus polling): turn what arrives from the field into
//! [`crate::core::SourceEvent`]s. They know nothing of sinks; they hand events to the core
//! through a bounded channel and block when it is full (back-pressure reaches the broker's
//! flow control, nothing is dropped here).
//!
//! Each source is one folder: its configuration section and checks (`config.rs`), its build
//! (a [`Source`] made from that section), its tasks, its status, metrics and events. The
//! runtime's registry (`runtime/registry.rs`) lists the sources it builds; see
//! `docs/architecture.md` for the steps to add one.

pub mod http;
pub mod mapping;
pub mod mine_files;
pub mod modbus;
pub mod mqtt;
pub mod video;

use crate::core::SourceEvent;
use crate::telemetry::{Clock, LinkStatus, Metrics};
use std::sync::Arc;
use tokio::sync::{broadcast, mpsc, watch};
use tokio::task::JoinHandle;

/// What the runtime gives every source when it starts.
pub struct SourceContext {
    /// To the core. Bounded: a full channel blocks the source (back-pressure, never a drop).
    pub events: mpsc::Sender<SourceEvent>,
    pub metrics: Arc<Metrics>,
    /// True while the outbox holds commits (its budget, the disk floor): polling sources
    /// pause, pushed ones stop acknowledging through the core.
    pub hold: watch::Receiver<bool>,
    pub shutdown: broadcast::Sender<()>,
    /// What sources stamp receive times and link changes with: the wall clock, or a test's.
    pub clock: Clock,
    /// Cluster mode: whether this instance does a site's own work right now (polls its
    /// Modbus units), i.e. owns the site's partition (docs/scaling.md). `None` alone: every
    /// site is this gateway's.
    pub owns: Option<Owns>,
}

/// See [`SourceContext::owns`]: called with a site's id.
pub type Owns = Arc<dyn Fn(&str) -> bool + Send + Sync>;

/// The configured payload mappings (`[[mappings]]`) and their metrics, shared by the sources
/// that read platforms' own shapes (MQTT topics, HTTP push).
#[derive(Clone, Default)]
pub struct Mapped {
    pub mappings: Arc<mapping::Mappings>,
    pub metrics: Arc<mapping::metrics::MappingMetrics>,
}

/// What sources show the API and health checks. A source with nothing to show leaves it be.
#[derive(Default)]
pub struct SourceStatus {
    /// The MQTT link (`/healthz`, `/readyz`).
    pub mqtt: Arc<LinkStatus>,
    /// Modbus endpoints and devices (`/api/v1/endpoints`).
    pub modbus: Arc<modbus::ModbusStatus>,
    /// HTTP push, which the API calls (`None` with `ingest.enabled = false`).
    pub http: Option<Arc<http::HttpIngest>>,
    /// The mines and their files (`/api/v1/mines`; empty without `[mine_files]`).
    pub mines: Arc<mine_files::status::MinesStatus>,
    /// The address the GB/T 28181 endpoint is bound to (`None` without `[video]`).
    pub video: Option<std::net::SocketAddr>,
    /// Cluster mode: what turns the files of the readings stream into events (the mine
    /// files' intake; `None` without `[mine_files]`).
    pub files: Option<crate::core::event::Files>,
}

/// A source built from its configuration, ready to run. Building is where a source refuses
/// a setting it cannot use (with a message for the operator); once running, a source
/// reports its own trouble in its status, logs and metrics, and keeps trying.
pub trait Source: Send {
    /// Its name in logs.
    fn name(&self) -> &'static str;
    /// Start its tasks; they end on `shutdown`.
    fn spawn(self: Box<Self>, cx: &SourceContext) -> Vec<JoinHandle<()>>;
}
