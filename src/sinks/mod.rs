//! Sinks: where accepted data goes. The store (InfluxDB 2 line protocol) for now.

pub mod record;
pub mod store;

pub use record::Record;
