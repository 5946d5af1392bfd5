//! The Modbus source's Prometheus metrics (`safegate_modbus_*`): per device and, summed over
//! its devices, per endpoint. Names are part of the contract (docs and dashboards).

use crate::telemetry::Metrics;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use std::sync::Arc;

/// A Modbus device: its endpoint (`tcp://host:port`, `rtu:///dev/ttyS0`, …) and `site/device`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ModbusDeviceLabel {
    pub endpoint: String,
    pub device: String,
}

/// A Modbus exception response, by code (`0x02` …).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ModbusExceptionLabel {
    pub endpoint: String,
    pub device: String,
    pub code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ModbusEndpointLabel {
    pub endpoint: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ModbusEndpointCodeLabel {
    pub endpoint: String,
    pub code: String,
}

/// Modbus counters per device and, summed over its devices, per endpoint.
#[derive(Debug, Default)]
pub struct ModbusMetrics {
    pub polls: Family<ModbusDeviceLabel, Counter>,
    pub successes: Family<ModbusDeviceLabel, Counter>,
    pub timeouts: Family<ModbusDeviceLabel, Counter>,
    pub transport_errors: Family<ModbusDeviceLabel, Counter>,
    pub exceptions: Family<ModbusExceptionLabel, Counter>,
    pub endpoint_polls: Family<ModbusEndpointLabel, Counter>,
    pub endpoint_successes: Family<ModbusEndpointLabel, Counter>,
    pub endpoint_timeouts: Family<ModbusEndpointLabel, Counter>,
    pub endpoint_transport_errors: Family<ModbusEndpointLabel, Counter>,
    pub endpoint_exceptions: Family<ModbusEndpointCodeLabel, Counter>,
    pub reconnects: Family<ModbusEndpointLabel, Counter>,
    pub connected: Family<ModbusEndpointLabel, Gauge>,
}

impl ModbusMetrics {
    /// Per-endpoint Modbus polls, errors, exceptions and links.
    /// Make the counters and register them with the gateway's metrics.
    pub fn register(metrics: &Metrics) -> Arc<ModbusMetrics> {
        let mb = ModbusMetrics::default();
        let r = metrics;
        r.register(
            "safegate_modbus_polls",
            "Modbus polls started, per device",
            mb.polls.clone(),
        );
        r.register(
            "safegate_modbus_successes",
            "Modbus polls that read every register, per device",
            mb.successes.clone(),
        );
        r.register(
            "safegate_modbus_timeouts",
            "Modbus polls ended by a request timeout (no answer in timeout_ms), per device",
            mb.timeouts.clone(),
        );
        r.register(
        "safegate_modbus_transport_errors",
        "Modbus polls ended by a connection error (refused, reset, not connected, garbled frame), per device",
        mb.transport_errors.clone(),
    );
        r.register(
            "safegate_modbus_exceptions",
            "Modbus exception responses (device reachable, request refused), per device and code",
            mb.exceptions.clone(),
        );
        for (name, help, f) in [
            (
                "safegate_modbus_endpoint_polls",
                "Modbus polls started, per endpoint",
                &mb.endpoint_polls,
            ),
            (
                "safegate_modbus_endpoint_successes",
                "Modbus polls that read every register, per endpoint",
                &mb.endpoint_successes,
            ),
            (
                "safegate_modbus_endpoint_timeouts",
                "Modbus polls ended by a request timeout, per endpoint",
                &mb.endpoint_timeouts,
            ),
            (
                "safegate_modbus_endpoint_transport_errors",
                "Modbus polls ended by a connection error, per endpoint",
                &mb.endpoint_transport_errors,
            ),
        ] {
            r.register(name, help, f.clone());
        }
        r.register(
            "safegate_modbus_endpoint_exceptions",
            "Modbus exception responses, per endpoint and code",
            mb.endpoint_exceptions.clone(),
        );
        r.register(
            "safegate_modbus_reconnects",
            "Modbus connections re-established after a loss, per endpoint",
            mb.reconnects.clone(),
        );
        r.register(
            "safegate_modbus_connected",
            "1 while the Modbus endpoint's connection is up",
            mb.connected.clone(),
        );
        Arc::new(mb)
    }
}
