//! Several gateways sharing the work (`[cluster]`, `docs/scaling.md`): which partition a site
//! belongs to, which instance should own each partition, and the lease rules that keep a
//! partition to one owner at a time. Plain code: the NATS side is in `crate::cluster`.

pub mod envelope;
pub mod follow;
pub mod ownership;
pub mod placement;
#[cfg(test)]
mod tests;

pub use ownership::{Changes, Holder, Lease, Ownership, Step};
pub use placement::{partition_of, preferred_owner};

use serde::Serialize;

/// What one instance knows of the cluster, as `GET /api/v1/cluster` shows it.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct ClusterView {
    pub instance_id: String,
    /// This process's boot id (a restarted instance has a new one).
    pub boot: String,
    pub partitions: u32,
    /// Partitions this instance works on now, ascending.
    pub owned: Vec<u32>,
    /// Instances with a live membership entry, as last read.
    pub members: Vec<String>,
    /// Every partition's lease holder as last read (`None`: free).
    pub leases: Vec<Option<String>>,
    /// Whether the last round reached the lease bucket.
    pub nats_ok: bool,
    /// The last round's problem, for the operator.
    pub last_error: Option<String>,
    /// When the last round ended (Unix ms).
    pub round_ms: i64,
    /// How far this instance has applied the readings stream: its sequence and time
    /// (figures asked of several instances agree once each has applied past the window).
    pub applied_sequence: u64,
    pub stream_time_ms: i64,
    /// The last checkpoint committed to this instance's journal: its stream sequence and
    /// stream time (0 before the first). What the journal shows (history, alarms, figures)
    /// comes to it; a window is final here once `checkpoint_time_ms` has passed its end.
    pub checkpoint_sequence: u64,
    pub checkpoint_time_ms: i64,
    /// The checkpoint this boot resumed from (`None`: it applied the stream from its start).
    pub resumed_from: Option<u64>,
    /// Messages the stream no longer held when this boot resumed (its retention passed
    /// them): this instance's journal misses them.
    pub gap: u64,
}
