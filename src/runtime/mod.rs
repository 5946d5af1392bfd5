//! Wiring: tasks, channels and shutdown around the synchronous core.

pub mod app;
pub mod broker;
pub mod broker_guard;
pub mod cadence;
pub mod demo;
pub mod evaluate;
pub mod publish;

pub use app::{start, Gateway, StartError};
