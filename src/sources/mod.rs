//! Sources (MQTT subscriptions, Modbus polling): turn what arrives from the field into [`crate::core::SourceEvent`]s. They know
//! nothing of sinks; they hand events to the core through a bounded channel and block when it
//! is full (back-pressure reaches the broker's flow control, nothing is dropped here).

pub mod modbus;
pub mod mqtt;
