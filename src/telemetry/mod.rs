//! Internal events: Prometheus metrics, connection status, and rate-limited warnings.

mod clock;
mod metrics;
mod ratelimit;
mod status;

pub use clock::{Clock, ManualClock};
pub use metrics::{
    Metrics, ModbusDeviceLabel, ModbusEndpointCodeLabel, ModbusEndpointLabel, ModbusExceptionLabel,
    ModbusMetrics,
};
pub use ratelimit::RateLimitedLog;
pub use status::{
    DiskSnapshot, LinkStatus, OutboxSnapshot, OutboxStatus, StoreHealth, StoreStatus,
};

/// Wall-clock now, epoch milliseconds: the one place the edges read the clock.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// RFC 3339 (UTC, milliseconds) for API output and logs.
pub fn rfc3339_ms(ms: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let fmt = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    t.format(&fmt).unwrap_or_default()
}

pub use metrics::{AlarmLabel, ReasonLabel, StateLabel};

pub fn metrics_reason(r: crate::core::Reason) -> ReasonLabel {
    ReasonLabel { reason: r.as_str() }
}

pub fn metrics_state(state: &'static str) -> StateLabel {
    StateLabel { state }
}
