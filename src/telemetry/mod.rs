//! Internal events: Prometheus metrics, connection status, and rate-limited warnings.

mod clock;
mod metrics;
mod ratelimit;
mod status;

pub use clock::{Clock, ManualClock};
pub use metrics::Metrics;
pub use ratelimit::RateLimitedLog;
pub use status::{
    DiskSnapshot, LinkStatus, OutboxSnapshot, OutboxStatus, StoreHealth, StoreStatus,
};

pub use crate::model::{now_ms, rfc3339_ms};

pub use metrics::{AlarmLabel, ReasonLabel, StateLabel};

pub fn metrics_reason(r: crate::model::Reason) -> ReasonLabel {
    ReasonLabel { reason: r.as_str() }
}

pub fn metrics_state(state: &'static str) -> StateLabel {
    StateLabel { state }
}
