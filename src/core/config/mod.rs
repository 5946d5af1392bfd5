//! The core's configuration as the files write it: the declared fleet, the alarm rules and
//! the indicator policy. Typed here, beside nothing but the vocabulary, so that inventory,
//! alarms and indicators can all read it without reading each other; the configuration
//! loader (`crate::config`) assembles it from the files and checks it.

pub mod alarms;
pub mod indicators;
pub mod inventory;
