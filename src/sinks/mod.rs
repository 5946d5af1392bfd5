//! Sinks: where accepted data goes: the store (InfluxDB 2 line protocol), through the durable
//! outbox (`store` queue → `commit` → `outbox` on disk → `forward`), and the alarm board
//! (alarm states, retained, on MQTT).

pub mod alarm_board;
pub mod audit;
pub mod held;
pub mod route;
pub mod store;

pub use store::{commit, forward, fresh, outbox, record};

pub use record::{AuditEvent, Record};
