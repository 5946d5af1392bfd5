//! The gateway's own durable state under `data_dir`: the liveness transition journal.

mod alarms;
pub mod files;
mod journal;

pub use alarms::{AlarmFilter, AlarmRow};

pub use journal::{
    DeviceSnapshot, Journal, JournalMsg, LatencyRow, StateError, TransitionRow, UnitKind,
};
