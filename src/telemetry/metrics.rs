//! The gateway's Prometheus metrics (`GET /metrics`). Names are part of the contract.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: &'static str,
}

/// An alarm event: its type (value, rate, offline, fault) and what happened.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AlarmLabel {
    pub alarm_type: &'static str,
    pub event: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabel {
    pub state: &'static str,
}

#[derive(Debug)]
pub struct Metrics {
    registry: std::sync::Mutex<Registry>,
    pub messages_received: Counter,
    pub readings_accepted: Counter,
    pub readings_rejected: Family<ReasonLabel, Counter>,
    pub transitions: Counter,
    pub store_points_written: Counter,
    pub store_write_failures: Counter,
    pub store_points_dropped: Counter,
    pub store_queue_depth: Gauge,
    pub outbox_bytes: Gauge,
    pub outbox_points: Gauge,
    pub outbox_oldest_age_s: Gauge,
    pub outbox_full: Gauge,
    pub outbox_commits: Counter,
    pub outbox_dead_letters: Counter,
    pub disk_free_bytes: Gauge,
    pub disk_floor_bytes: Gauge,
    pub disk_low: Gauge,
    pub disk_reserve_bytes: Gauge,
    pub devices: Family<StateLabel, Gauge>,
    pub reading_latency: Histogram,
    pub alarm_events: Family<AlarmLabel, Counter>,
    pub alarms_active: Gauge,
    /// Clients reading the live feed (`GET /api/v1/events`) now.
    pub event_streams: Gauge,
    pub alarms_published: Counter,
    pub api_refused: Family<ReasonLabel, Counter>,
    pub broker_refused: Family<ReasonLabel, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut r = Registry::default();
        let m = Metrics {
            messages_received: Counter::default(),
            readings_accepted: Counter::default(),
            readings_rejected: Family::default(),
            transitions: Counter::default(),
            store_points_written: Counter::default(),
            store_write_failures: Counter::default(),
            store_points_dropped: Counter::default(),
            store_queue_depth: Gauge::default(),
            outbox_bytes: Gauge::default(),
            outbox_points: Gauge::default(),
            outbox_oldest_age_s: Gauge::default(),
            outbox_full: Gauge::default(),
            outbox_commits: Counter::default(),
            outbox_dead_letters: Counter::default(),
            disk_free_bytes: Gauge::default(),
            disk_floor_bytes: Gauge::default(),
            disk_low: Gauge::default(),
            disk_reserve_bytes: Gauge::default(),
            devices: Family::default(),
            reading_latency: Histogram::new([
                0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
            ]),
            registry: Default::default(),
            alarm_events: Family::default(),
            alarms_active: Gauge::default(),
            event_streams: Gauge::default(),
            alarms_published: Counter::default(),
            api_refused: Family::default(),
            broker_refused: Family::default(),
        };
        for register in [
            Metrics::register_security_and_alarms,
            Metrics::register_ingest,
            Metrics::register_store,
        ] {
            register(&m, &mut r);
        }
        // Every reason appears from the start, so a dashboard shows 0 rather than nothing.
        for r in crate::model::Reason::ALL {
            let _ = m
                .readings_rejected
                .get_or_create(&ReasonLabel { reason: r.as_str() });
        }
        Metrics {
            registry: std::sync::Mutex::new(r),
            ..m
        }
    }

    /// Refusals by the API and the embedded broker's guard; alarm events and states.
    fn register_security_and_alarms(&self, r: &mut Registry) {
        r.register(
            "safegate_api_refused",
            "API requests refused: missing_token, invalid_token, wrong_role, rate_limited",
            self.api_refused.clone(),
        );
        r.register(
        "safegate_broker_refused",
        "Embedded broker guard refusals: tls_refused, too_many_connections, bad_login, not_connect_first, will_denied, publish_denied, subscribe_denied",
        self.broker_refused.clone(),
    );
        r.register(
            "safegate_alarm_events",
            "Alarm raises, escalations, acknowledgements and clears, by alarm type",
            self.alarm_events.clone(),
        );
        r.register(
            "safegate_alarms_active",
            "Alarms currently active (raised, not cleared)",
            self.alarms_active.clone(),
        );
        r.register(
            "safegate_alarm_states_published",
            "Alarm states published (retained) on MQTT",
            self.alarms_published.clone(),
        );
    }

    /// Messages, readings, rejections, transitions, devices by state and reading latency.
    fn register_ingest(&self, r: &mut Registry) {
        r.register(
            "safegate_messages_received",
            "MQTT messages received",
            self.messages_received.clone(),
        );
        r.register(
            "safegate_readings_accepted",
            "Readings accepted into the pipeline",
            self.readings_accepted.clone(),
        );
        r.register(
            "safegate_readings_rejected",
            "Inputs rejected, by reason",
            self.readings_rejected.clone(),
        );
        r.register(
            "safegate_device_transitions",
            "Device online/offline transitions",
            self.transitions.clone(),
        );
        r.register(
            "safegate_devices",
            "Registered devices by liveness state",
            self.devices.clone(),
        );
        r.register(
            "safegate_reading_latency_seconds",
            "Receive time minus reading timestamp",
            self.reading_latency.clone(),
        );
    }

    /// The store, the outbox and the disk under it.
    fn register_store(&self, r: &mut Registry) {
        r.register(
            "safegate_store_points_written",
            "Points the store accepted",
            self.store_points_written.clone(),
        );
        r.register(
            "safegate_store_write_failures",
            "Failed store write attempts (each is retried)",
            self.store_write_failures.clone(),
        );
        r.register(
        "safegate_store_points_dropped",
        "Indicator snapshots and audit copies dropped because the queue to the outbox was full (readings are never dropped: they wait)",
        self.store_points_dropped.clone(),
    );
        r.register(
            "safegate_store_queue_depth",
            "Record chunks in memory waiting for the outbox commit",
            self.store_queue_depth.clone(),
        );
        r.register(
            "safegate_outbox_bytes",
            "Line protocol bytes committed to the outbox and not yet accepted by the store",
            self.outbox_bytes.clone(),
        );
        r.register(
            "safegate_outbox_points",
            "Points in the outbox not yet accepted by the store",
            self.outbox_points.clone(),
        );
        r.register(
            "safegate_outbox_oldest_age_seconds",
            "Age of the oldest batch waiting in the outbox (0 when empty)",
            self.outbox_oldest_age_s.clone(),
        );
        r.register(
        "safegate_outbox_full",
        "1 while the outbox is at its disk budget (MQTT acknowledgements held, Modbus polling paused)",
        self.outbox_full.clone(),
    );
        r.register(
            "safegate_outbox_commits",
            "Group commits to the outbox",
            self.outbox_commits.clone(),
        );
        r.register(
            "safegate_outbox_dead_letters",
            "Lines the store refused for good, kept in the outbox's dead-letter table",
            self.outbox_dead_letters.clone(),
        );
        r.register(
            "safegate_event_streams",
            "Clients reading the live feed (GET /api/v1/events) now: one per browser with the console open",
            self.event_streams.clone(),
        );
        r.register(
            "safegate_disk_free_bytes",
            "Free bytes on the filesystem of data_dir, as the outbox last measured it",
            self.disk_free_bytes.clone(),
        );
        r.register(
            "safegate_disk_floor_bytes",
            "The free-space floor in effect (outbox.min_free_bytes / min_free_percent)",
            self.disk_floor_bytes.clone(),
        );
        r.register(
        "safegate_disk_low",
        "1 while the disk of data_dir is below its free-space floor (MQTT acknowledgements held, Modbus polling paused)",
        self.disk_low.clone(),
    );
        r.register(
            "safegate_disk_reserve_bytes",
            "Bytes of the disk reserve file held now (0 once released on a full disk)",
            self.disk_reserve_bytes.clone(),
        );
    }

    /// Register a component's metric (a source's, a sink's): the components own their
    /// metrics and add them here when they are built, before the API serves `/metrics`.
    pub fn register(
        &self,
        name: &str,
        help: &str,
        metric: impl prometheus_client::registry::Metric,
    ) {
        self.registry
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .register(name, help, metric);
    }

    /// The OpenMetrics 1.0 text exposition (`application/openmetrics-text; version=1.0.0`):
    /// a counter family `x` has samples `x_total`, and the body ends with `# EOF`.
    pub fn encode(&self) -> String {
        let mut s = String::new();
        // Writing into a String cannot fail.
        let r = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        let _ = prometheus_client::encoding::text::encode(&mut s, &r);
        s
    }

    /// The classic Prometheus text format (`text/plain; version=0.0.4`), for clients that do
    /// not accept OpenMetrics (`promtool check metrics`, older scrapers).
    pub fn encode_classic(&self) -> String {
        classic_text(&self.encode())
    }
}

/// The classic text format of an OpenMetrics exposition as `prometheus_client` writes it
/// (it encodes OpenMetrics only). The samples stay as they are; what differs is declared
/// differently: a counter family `x` (samples `x_total`) is declared as `x_total`, `info`
/// (samples `x_info`) becomes a gauge `x_info`, `unknown` is `untyped`, and the `# UNIT`
/// lines and the closing `# EOF` go. The gateway's metrics carry no exemplars.
fn classic_text(open_metrics: &str) -> String {
    let mut out = String::with_capacity(open_metrics.len());
    // `# HELP` comes before `# TYPE`, and the name it declares depends on the type.
    let mut help: Option<(&str, &str)> = None;
    for line in open_metrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            help = Some(rest.split_once(' ').unwrap_or((rest, "")));
            continue;
        }
        let Some(rest) = line.strip_prefix("# TYPE ") else {
            out.push_str(line);
            out.push('\n');
            continue;
        };
        let (family, kind) = rest.rsplit_once(' ').unwrap_or((rest, "unknown"));
        let (suffix, kind) = match kind {
            "counter" => ("_total", "counter"),
            "info" => ("_info", "gauge"),
            "unknown" => ("", "untyped"),
            k => ("", k),
        };
        if let Some((name, text)) = help.take().filter(|(n, _)| *n == family) {
            out.push_str(&format!("# HELP {name}{suffix} {text}\n"));
        }
        out.push_str(&format!("# TYPE {family}{suffix} {kind}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_classic_text_declares_counters_by_their_samples_names() {
        let om = "# HELP a_things Things seen.\n# TYPE a_things counter\na_things_total 3\n\
            # HELP a_depth Depth.\n# TYPE a_depth gauge\na_depth{q=\"x\"} 1\n\
            # HELP a_lag_seconds Lag.\n# TYPE a_lag_seconds histogram\n# UNIT a_lag_seconds seconds\n\
            a_lag_seconds_sum 0.5\na_lag_seconds_count 1\na_lag_seconds_bucket{le=\"+Inf\"} 1\n\
            # HELP a_build Build.\n# TYPE a_build info\na_build_info{v=\"1\"} 1\n# EOF\n";
        assert_eq!(
            classic_text(om),
            "# HELP a_things_total Things seen.\n# TYPE a_things_total counter\na_things_total 3\n\
            # HELP a_depth Depth.\n# TYPE a_depth gauge\na_depth{q=\"x\"} 1\n\
            # HELP a_lag_seconds Lag.\n# TYPE a_lag_seconds histogram\n\
            a_lag_seconds_sum 0.5\na_lag_seconds_count 1\na_lag_seconds_bucket{le=\"+Inf\"} 1\n\
            # HELP a_build_info Build.\n# TYPE a_build_info gauge\na_build_info{v=\"1\"} 1\n"
        );
    }

    #[test]
    fn every_counter_of_the_gateway_is_declared_with_its_samples_name() {
        let m = Metrics::new();
        m.messages_received.inc();
        let text = m.encode_classic();
        assert!(!text.contains("# EOF"), "{text}");
        assert!(text.contains("# TYPE safegate_messages_received_total counter\n"));
        assert!(text.contains("# HELP safegate_messages_received_total MQTT messages received"));
        assert!(
            text.contains("\nsafegate_messages_received_total 1\n"),
            "{text}"
        );
        for line in text.lines().filter(|l| l.starts_with("# TYPE ")) {
            let mut w = line.split(' ').skip(2);
            let (name, kind) = (w.next().unwrap(), w.next().unwrap());
            assert_eq!(kind == "counter", name.ends_with("_total"), "{line}");
        }
    }
}
