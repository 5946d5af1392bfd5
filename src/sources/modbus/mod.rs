//! Modbus source: polls devices over TCP, RTU (serial) and RTU over TCP, and hands readings
//! to the core exactly like the MQTT source does. One task per endpoint (see `endpoint`);
//! request planning (`plan`) and value decoding (`decode`) are pure and unit-tested.

pub mod config;
pub mod decode;
pub mod endpoint;
pub mod error;
pub mod metrics;
pub mod plan;
pub mod status;

pub use error::ModbusError;
pub use status::{DeviceStatus, EndpointStatus, ModbusStatus};

use crate::core::inventory::InventoryConfig;
use crate::core::SourceEvent;
use crate::model::UnitStatus;
use crate::telemetry::Metrics;
use config::ModbusConfig;
use config::Transport;
use endpoint::{DeviceSpec, EndpointSpec, Link};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// The Modbus source: one polling task per endpoint (a TCP address or a serial line).
pub struct ModbusSource {
    endpoints: Vec<EndpointSpec>,
}

impl ModbusSource {
    /// From the inventory's Modbus devices; their endpoint and device counters go to
    /// `status.modbus` for the API.
    pub fn build(
        inventory: &InventoryConfig<ModbusConfig>,
        metrics: &Metrics,
        status: &mut super::SourceStatus,
    ) -> ModbusSource {
        let m = metrics::ModbusMetrics::register(metrics);
        let (endpoints, st) = self::endpoints(inventory, &m);
        status.modbus = st;
        ModbusSource { endpoints }
    }
}

impl super::Source for ModbusSource {
    fn name(&self) -> &'static str {
        "modbus"
    }

    fn spawn(self: Box<Self>, cx: &super::SourceContext) -> Vec<JoinHandle<()>> {
        if !self.endpoints.is_empty() {
            let devices: usize = self.endpoints.iter().map(|e| e.devices.len()).sum();
            let endpoints = self.endpoints.len();
            tracing::info!(endpoints, devices, "polling Modbus devices");
        }
        spawn(self.endpoints, cx.events.clone(), cx.hold.clone(), cx)
    }
}

/// Group the configuration's Modbus devices by endpoint. Only `built` devices are polled:
/// a planned or suspended unit would only cost its neighbours timeouts.
pub fn endpoints(
    inventory: &InventoryConfig<ModbusConfig>,
    metrics: &metrics::ModbusMetrics,
) -> (Vec<EndpointSpec>, Arc<ModbusStatus>) {
    /// An endpoint being assembled: its link, connect bound, devices and their status.
    struct Group {
        link: Link,
        connect_timeout: Duration,
        devices: Vec<DeviceSpec>,
        status: EndpointStatus,
    }
    let mut order: Vec<String> = Vec::new();
    let mut groups: HashMap<String, Group> = HashMap::new();
    for d in &inventory.devices {
        let Some(m) = &d.modbus else { continue };
        if d.status != UnitStatus::Built {
            continue;
        }
        let key = m.endpoint_key();
        let g = groups.entry(key.clone()).or_insert_with(|| {
            order.push(key.clone());
            let addr = m.address.clone().unwrap_or_default();
            let link = match m.transport {
                Transport::Tcp => Link::Tcp(addr),
                Transport::RtuOverTcp => Link::RtuOverTcp(addr),
                Transport::Rtu => Link::Serial {
                    path: m.serial.clone().unwrap_or_default(),
                    baud: m.baud,
                    parity: m.parity,
                    data_bits: m.data_bits,
                    stop_bits: m.stop_bits,
                },
            };
            Group {
                link,
                connect_timeout: Duration::ZERO,
                devices: Vec::new(),
                status: EndpointStatus::new(metrics, &key, m.transport.as_str()),
            }
        });
        let timeout = Duration::from_millis(m.timeout_ms);
        g.connect_timeout = g.connect_timeout.max(timeout);
        // Validated positive and at most a day; clamped again so that no input can panic here.
        let secs = |s: f64| Duration::try_from_secs_f64(s.clamp(0.001, 86_400.0)).unwrap_or(DAY);
        let period = secs(m.poll_s.unwrap_or(d.interval_s));
        let stats = Arc::new(DeviceStatus::new(
            metrics,
            &d.site,
            &d.id,
            &key,
            m.unit,
            period.as_millis() as u64,
        ));
        g.status.devices.push(stats.clone());
        let host = key.split_once("://").map_or(key.as_str(), |x| x.1);
        g.devices.push(DeviceSpec {
            site: d.site.clone(),
            device: d.id.clone(),
            unit: m.unit,
            period,
            timeout,
            retries: m.retries,
            backoff_max: secs(m.backoff_max_s),
            registers: m.registers.clone(),
            status: m.status.clone(),
            requests: plan::plan(m),
            origin: format!("modbus://{host}/unit/{}", m.unit).into(),
            stats,
        });
    }
    let mut specs = Vec::with_capacity(order.len());
    let mut statuses = Vec::with_capacity(order.len());
    for key in order {
        if let Some(g) = groups.remove(&key) {
            let status = Arc::new(g.status);
            statuses.push(status.clone());
            specs.push(EndpointSpec {
                key,
                link: g.link,
                connect_timeout: g.connect_timeout,
                devices: g.devices,
                status,
                // The source's clock replaces it when it starts (SourceContext::clock).
                clock: crate::telemetry::Clock::system(),
            });
        }
    }
    (specs, Arc::new(ModbusStatus::new(statuses)))
}

const DAY: Duration = Duration::from_secs(86_400);

/// Start one polling task per endpoint.
/// `hold`: true while the outbox is at its budget (polling pauses); `cx.owns`: in cluster
/// mode, which sites' units this instance polls now.
pub fn spawn(
    specs: Vec<EndpointSpec>,
    tx: mpsc::Sender<SourceEvent>,
    hold: tokio::sync::watch::Receiver<bool>,
    cx: &super::SourceContext,
) -> Vec<JoinHandle<()>> {
    specs
        .into_iter()
        .map(|ep| {
            let turn = endpoint::Turn {
                hold: hold.clone(),
                owns: cx.owns.clone(),
                shutdown: cx.shutdown.subscribe(),
            };
            tokio::spawn(endpoint::run(ep, tx.clone(), turn))
        })
        .collect()
}
