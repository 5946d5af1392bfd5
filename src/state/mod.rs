//! The gateway's own durable state under `data_dir`: the liveness transition journal.

mod journal;

pub use journal::{
    DeviceSnapshot, Journal, JournalMsg, LatencyRow, StateError, TransitionRow, UnitKind,
};
