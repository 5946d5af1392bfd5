//! Video systems networked by GB/T 28181 (2016, 2022): cameras, NVRs and lower platforms
//! register with the gateway as their upper platform, keep alive and answer catalog queries;
//! the gateway measures their online rate from that signalling alone (no media). See
//! docs/video.md for the rules and docs/research/video.md for the crates.
//!
//! The pure core is here: SIP messages read and replies written (`sip`), digest verification
//! (`digest`), MANSCDP bodies (`manscdp`), the catalog accumulator (`catalog`) and the
//! per-device state machine (`session`), which takes events and the time and returns
//! decisions, doing no I/O (as rumqttc's `state.rs`).

pub mod catalog;
pub mod config;
pub mod digest;
pub mod manscdp;
pub mod session;
pub mod sip;

#[cfg(test)]
mod pipeline_tests;
#[cfg(test)]
mod session_tests;
