//! Alarms (groundwork, not yet wired into the gateway): threshold evaluation per reading
//! (pure, O(1)) and the alarm lifecycle with response deadlines. Sources of the default
//! values: `docs/research/alarm-thresholds.md`.

pub mod lifecycle;
pub mod thresholds;
