//! The gateway's own durable state under `data_dir`: the liveness transition journal, and the
//! room on its disk (`space`).

mod alarms;
mod checkpoint;
mod compaction;
pub mod files;
mod journal;
mod keys;
mod pool;
mod reader;
mod rows;
pub mod schema;
pub mod space;
mod writer;

pub use alarms::{AlarmFilter, AlarmRow};
pub use pool::ReadPool;

pub use rows::{Checkpoint, Resumed};

pub use journal::{
    ConditionRow, DeviceSnapshot, Journal, JournalMsg, LatencyRow, StateError, TransitionRow,
    UnitKind,
};
