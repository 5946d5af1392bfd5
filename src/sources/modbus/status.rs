//! Live Modbus counters per device and per endpoint, shared with the API. The counters are
//! the Prometheus ones (a `Counter` clone shares its value), so `/metrics` and the API agree.

use super::metrics::{
    ModbusDeviceLabel, ModbusEndpointCodeLabel, ModbusEndpointLabel, ModbusExceptionLabel,
    ModbusMetrics,
};
use crate::telemetry::LinkStatus;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicI64, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

/// How many of the latest periods `recent_min` / `recent_max` cover.
pub const RECENT_PERIODS: usize = 32;

/// Achieved interval between the starts of consecutive polls made on schedule: since start,
/// and over the latest [`RECENT_PERIODS`] (so start-up does not mask the steady state).
#[derive(Debug, Default, Clone)]
pub struct PeriodStats {
    pub count: u64,
    pub sum_ms: f64,
    pub min_ms: f64,
    pub max_ms: f64,
    pub last_ms: f64,
    recent: std::collections::VecDeque<f32>,
}

impl PeriodStats {
    pub fn record(&mut self, ms: f64) {
        if self.recent.len() == RECENT_PERIODS {
            self.recent.pop_front();
        }
        self.recent.push_back(ms as f32);
        if self.count == 0 {
            self.min_ms = ms;
            self.max_ms = ms;
        }
        self.count += 1;
        self.sum_ms += ms;
        self.min_ms = self.min_ms.min(ms);
        self.max_ms = self.max_ms.max(ms);
        self.last_ms = ms;
    }
    pub fn mean_ms(&self) -> Option<f64> {
        (self.count > 0).then(|| self.sum_ms / self.count as f64)
    }
    /// (min, max) over the latest periods.
    pub fn recent_range(&self) -> Option<(f64, f64)> {
        let min = self.recent.iter().copied().reduce(f32::min)?;
        let max = self.recent.iter().copied().reduce(f32::max)?;
        Some((min as f64, max as f64))
    }
}

/// What a poll adds to the counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counted {
    Poll,
    Success,
    Timeout,
    TransportError,
}

/// The endpoint-level series a device's counts are added to as well.
#[derive(Debug, Clone)]
struct EndpointCounters {
    label: ModbusEndpointLabel,
    polls: Counter,
    successes: Counter,
    timeouts: Counter,
    transport_errors: Counter,
    exceptions: Family<ModbusEndpointCodeLabel, Counter>,
}

#[derive(Debug)]
pub struct DeviceStatus {
    ep: EndpointCounters,
    pub site: Arc<str>,
    pub device: Arc<str>,
    pub endpoint: Arc<str>,
    pub unit: u8,
    pub period_ms: u64,
    pub polls: Counter,
    pub successes: Counter,
    pub timeouts: Counter,
    pub transport_errors: Counter,
    exceptions: Mutex<BTreeMap<u8, u64>>,
    exception_family: Family<ModbusExceptionLabel, Counter>,
    /// Consecutive polls that ended in a timeout or connection error.
    pub consecutive_failures: AtomicU32,
    /// Epoch ms until which the unit is polled less often (0: not backed off).
    pub backoff_until_ms: AtomicI64,
    pub last_success_ms: AtomicI64,
    last_error: Mutex<Option<String>>,
    period: Mutex<PeriodStats>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl DeviceStatus {
    pub fn new(
        m: &ModbusMetrics,
        site: &str,
        device: &str,
        endpoint: &str,
        unit: u8,
        period_ms: u64,
    ) -> DeviceStatus {
        let l = ModbusDeviceLabel {
            endpoint: endpoint.to_string(),
            device: format!("{site}/{device}"),
        };
        let el = ModbusEndpointLabel {
            endpoint: endpoint.to_string(),
        };
        DeviceStatus {
            ep: EndpointCounters {
                polls: m.endpoint_polls.get_or_create(&el).clone(),
                successes: m.endpoint_successes.get_or_create(&el).clone(),
                timeouts: m.endpoint_timeouts.get_or_create(&el).clone(),
                transport_errors: m.endpoint_transport_errors.get_or_create(&el).clone(),
                exceptions: m.endpoint_exceptions.clone(),
                label: el,
            },
            site: site.into(),
            device: device.into(),
            endpoint: endpoint.into(),
            unit,
            period_ms,
            polls: m.polls.get_or_create(&l).clone(),
            successes: m.successes.get_or_create(&l).clone(),
            timeouts: m.timeouts.get_or_create(&l).clone(),
            transport_errors: m.transport_errors.get_or_create(&l).clone(),
            exceptions: Mutex::new(BTreeMap::new()),
            exception_family: m.exceptions.clone(),
            consecutive_failures: AtomicU32::new(0),
            backoff_until_ms: AtomicI64::new(0),
            last_success_ms: AtomicI64::new(0),
            last_error: Mutex::new(None),
            period: Mutex::new(PeriodStats::default()),
        }
    }

    /// Count a poll outcome for the device and its endpoint.
    pub fn count(&self, c: Counted) {
        let (dev, ep) = match c {
            Counted::Poll => (&self.polls, &self.ep.polls),
            Counted::Success => (&self.successes, &self.ep.successes),
            Counted::Timeout => (&self.timeouts, &self.ep.timeouts),
            Counted::TransportError => (&self.transport_errors, &self.ep.transport_errors),
        };
        dev.inc();
        ep.inc();
    }

    pub fn count_exception(&self, code: u8) {
        *lock(&self.exceptions).entry(code).or_default() += 1;
        self.ep
            .exceptions
            .get_or_create(&ModbusEndpointCodeLabel {
                endpoint: self.ep.label.endpoint.clone(),
                code: format!("0x{code:02x}"),
            })
            .inc();
        self.exception_family
            .get_or_create(&ModbusExceptionLabel {
                endpoint: self.endpoint.to_string(),
                device: format!("{}/{}", self.site, self.device),
                code: format!("0x{code:02x}"),
            })
            .inc();
    }

    pub fn exceptions(&self) -> BTreeMap<u8, u64> {
        lock(&self.exceptions).clone()
    }
    pub fn exceptions_total(&self) -> u64 {
        lock(&self.exceptions).values().sum()
    }
    pub fn set_error(&self, e: Option<String>) {
        *lock(&self.last_error) = e;
    }
    pub fn last_error(&self) -> Option<String> {
        lock(&self.last_error).clone()
    }
    pub fn record_period(&self, ms: f64) {
        lock(&self.period).record(ms);
    }
    pub fn period(&self) -> PeriodStats {
        lock(&self.period).clone()
    }

    /// The device's part of `GET /api/v1/devices`.
    pub fn to_json(&self) -> Value {
        let p = self.period();
        let exceptions: serde_json::Map<String, Value> = self
            .exceptions()
            .into_iter()
            .map(|(c, n)| (format!("0x{c:02x}"), json!(n)))
            .collect();
        let backoff = self.backoff_until_ms.load(Ordering::Relaxed);
        let last_ok = self.last_success_ms.load(Ordering::Relaxed);
        json!({
            "endpoint": &*self.endpoint,
            "unit": self.unit,
            "poll_period_ms": self.period_ms,
            "polls": self.polls.get(),
            "successes": self.successes.get(),
            "timeouts": self.timeouts.get(),
            "transport_errors": self.transport_errors.get(),
            "exceptions": exceptions,
            "consecutive_failures": self.consecutive_failures.load(Ordering::Relaxed),
            "backoff_until": (backoff > 0).then(|| crate::model::rfc3339_ms(backoff)),
            "last_success": (last_ok > 0).then(|| crate::model::rfc3339_ms(last_ok)),
            "last_error": self.last_error(),
            "achieved_period_ms": {
                "count": p.count,
                "mean": p.mean_ms(),
                "min": (p.count > 0).then_some(p.min_ms),
                "max": (p.count > 0).then_some(p.max_ms),
                "last": (p.count > 0).then_some(p.last_ms),
                "recent_min": p.recent_range().map(|r| r.0),
                "recent_max": p.recent_range().map(|r| r.1),
            },
        })
    }
}

#[derive(Debug)]
pub struct EndpointStatus {
    pub key: Arc<str>,
    pub transport: &'static str,
    pub link: LinkStatus,
    pub reconnects: Counter,
    pub connected: Gauge,
    pub devices: Vec<Arc<DeviceStatus>>,
    /// True while the endpoint's polling waits for the outbox to take commits again.
    pub paused: std::sync::atomic::AtomicBool,
    /// Cluster mode: true while another instance owns every site of the endpoint's units
    /// and polls them; this one holds no connection to it.
    pub elsewhere: std::sync::atomic::AtomicBool,
}

impl EndpointStatus {
    pub fn new(m: &ModbusMetrics, key: &str, transport: &'static str) -> EndpointStatus {
        let l = ModbusEndpointLabel {
            endpoint: key.to_string(),
        };
        EndpointStatus {
            key: key.into(),
            transport,
            link: LinkStatus::default(),
            reconnects: m.reconnects.get_or_create(&l).clone(),
            connected: m.connected.get_or_create(&l).clone(),
            devices: Vec::new(),
            paused: Default::default(),
            elsewhere: Default::default(),
        }
    }

    pub fn to_json(&self) -> Value {
        let sum = |f: fn(&DeviceStatus) -> u64| self.devices.iter().map(|d| f(d)).sum::<u64>();
        let mut exceptions: BTreeMap<u8, u64> = BTreeMap::new();
        for d in &self.devices {
            for (c, n) in d.exceptions() {
                *exceptions.entry(c).or_default() += n;
            }
        }
        let exceptions: serde_json::Map<String, Value> = exceptions
            .into_iter()
            .map(|(c, n)| (format!("0x{c:02x}"), json!(n)))
            .collect();
        let since = self.link.since_ms();
        json!({
            "endpoint": &*self.key,
            "transport": self.transport,
            "connected": self.link.connected(),
            "paused": self.paused.load(Ordering::Relaxed),
            "elsewhere": self.elsewhere.load(Ordering::Relaxed),
            "since": (since > 0).then(|| crate::model::rfc3339_ms(since)),
            "last_error": self.link.last_error(),
            "reconnects": self.reconnects.get(),
            "devices": self.devices.len(),
            "polls": sum(|d| d.polls.get()),
            "successes": sum(|d| d.successes.get()),
            "timeouts": sum(|d| d.timeouts.get()),
            "transport_errors": sum(|d| d.transport_errors.get()),
            "exceptions": exceptions,
            "units": self.devices.iter().map(|d| json!({
                "site": &*d.site, "device": &*d.device, "unit": d.unit,
            })).collect::<Vec<_>>(),
        })
    }
}

/// Every Modbus endpoint and device of the configuration.
#[derive(Debug, Default)]
pub struct ModbusStatus {
    pub endpoints: Vec<Arc<EndpointStatus>>,
    by_device: HashMap<(Arc<str>, Arc<str>), Arc<DeviceStatus>>,
}

impl ModbusStatus {
    pub fn new(endpoints: Vec<Arc<EndpointStatus>>) -> ModbusStatus {
        let by_device = endpoints
            .iter()
            .flat_map(|e| e.devices.iter())
            .map(|d| ((d.site.clone(), d.device.clone()), d.clone()))
            .collect();
        ModbusStatus {
            endpoints,
            by_device,
        }
    }

    pub fn device(&self, site: &str, device: &str) -> Option<&Arc<DeviceStatus>> {
        self.by_device.get(&(Arc::from(site), Arc::from(device)))
    }
}
