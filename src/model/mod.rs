//! The vocabulary every layer speaks: what things are (kinds, statuses, roles), why an input
//! was refused, and how time is written. It imports nothing from the crate, so any module may
//! use it without creating a cycle (`tests/layering.rs` keeps it so).

mod ids;
mod kinds;
mod reason;
mod time;

pub use ids::id_problem;
pub use kinds::{
    AlarmType, DeviceKind, OnDamage, PlatformStatus, Protocol, Role, Scheme, SiteKind, SiteStatus,
    SystemKind, UnitStatus,
};
pub use reason::Reason;
pub use time::{now_ms, parse_rfc3339_ms, parse_time, parse_window, rfc3339_ms};
