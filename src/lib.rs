//! safegate: an IoT telemetry gateway that measures the safety-monitoring indicators of
//! chemical-industry parks and mines.
//!
//! Data flows one way: [`sources`] (MQTT, Modbus) → [`core`] (inventory, liveness, alarms,
//! indicators) → [`sinks`] (InfluxDB 2, the MQTT alarm board) and the [`api`]. The core is synchronous and takes time as an input.

pub mod api;
pub mod backoff;
pub mod cluster;
pub mod config;
pub mod core;
pub mod model;
pub mod report;
pub mod runtime;
pub mod sinks;
pub mod sources;
pub mod state;
pub mod telemetry;

#[cfg(test)]
mod layering;

/// The simulators, for the demo, the tests and the benchmarks; not in a production build.
#[cfg(feature = "demo")]
#[path = "../simulators/mod.rs"]
pub mod simulators;
