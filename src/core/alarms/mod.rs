//! Alarms: threshold evaluation per reading (pure, O(1)), the alarm lifecycle with response
//! deadlines, each device's resolved rule, and the book that ties them to devices. Sources of
//! the default values: `docs/alarms.md`.

pub mod book;

pub mod lifecycle;
pub mod rules;
pub use rules::priority_level;
pub mod thresholds;

#[cfg(test)]
pub(crate) mod tests;

pub use book::{
    AckError, AckReply, AlarmBook, AlarmChange, AlarmEvent, AlarmId, AlarmRecord, AlarmType,
    EventKind, Recorded, RecordedAck,
};
pub mod view;
