//! The MQTT source's Prometheus metrics (`safegate_mqtt_*`). Names are part of the contract.

use crate::telemetry::Metrics;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use std::sync::Arc;

#[derive(Debug)]
pub struct MqttMetrics {
    /// QoS 1 messages received and not yet acknowledged.
    pub acks_pending: Gauge,
    pub connected: Gauge,
    pub reconnects: Counter,
    /// The gateway's `safegate_messages_received`, shared.
    pub messages_received: Counter,
}

impl MqttMetrics {
    /// Make the metrics and register them with the gateway's.
    pub fn register(metrics: &Metrics) -> Arc<MqttMetrics> {
        let m = MqttMetrics {
            acks_pending: Gauge::default(),
            connected: Gauge::default(),
            reconnects: Counter::default(),
            messages_received: metrics.messages_received.clone(),
        };
        let r = metrics;
        r.register(
            "safegate_mqtt_acks_pending",
            "MQTT QoS 1 messages received and not yet acknowledged (waiting for their commit)",
            m.acks_pending.clone(),
        );
        r.register(
            "safegate_mqtt_connected",
            "1 while the MQTT connection is up",
            m.connected.clone(),
        );
        r.register(
            "safegate_mqtt_reconnects",
            "MQTT connection losses followed by a reconnect attempt",
            m.reconnects.clone(),
        );
        Arc::new(m)
    }
}
