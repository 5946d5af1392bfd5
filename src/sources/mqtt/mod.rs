//! MQTT ingest: a persistent-session rumqttc client with our own reconnect back-off.

mod client;
pub mod config;
pub mod payload;
pub mod signature;

pub use client::{options, run, MqttSourceError};
pub use payload::Limits;
