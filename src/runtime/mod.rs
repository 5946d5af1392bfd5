//! Wiring: tasks, channels and shutdown around the synchronous core.

pub mod app;
pub mod broker;
pub mod broker_guard;
pub mod cadence;
mod cluster;
mod config_view;
#[cfg(feature = "demo")]
pub mod demo;
mod error;
pub mod publish;
pub mod registry;
pub mod reload;

pub use app::{start, start_with, Gateway, StartError};
