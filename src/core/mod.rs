//! The core: plain, synchronous, deterministic. Every function takes the time as an input.

pub mod alarms;
pub mod changes;
pub mod cluster;
pub mod config;
pub mod event;
pub mod indicators;
pub mod ingest;
pub mod inventory;
pub mod live;
pub mod liveness;
pub mod receipt;
pub mod recent;
pub mod resume;
pub mod snapshot;
pub mod stats;

pub use event::{
    channel_names_problem, Message, Origin, RawReading, ReadingStatus, Reason, Rejection,
    SourceEvent, RESERVED_CHANNELS,
};
pub use ingest::{Accepted, Core, Outputs};
pub use inventory::{Declared, DeviceIdx, Inventory, SiteIdx, UnitKind};
pub use live::{InventoryTally, RegistryChange, SiteDevices, Tally};
pub use liveness::{Cause, Condition, ConditionChange, DeviceState, Liveness, Transition};
pub use receipt::Receipt;
