//! park-sim: publishes a reading for every MQTT device of a configuration at its interval,
//! the way a park platform or field devices would, with knobs for silence, latency and junk.

use crate::config::{Config, DeviceKind, Protocol, UnitStatus};
use rumqttc::{AsyncClient, MqttOptions, QoS};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Duration;
use tokio::sync::broadcast;
use tokio::time::Instant;

#[derive(Debug, Clone)]
pub struct FleetOptions {
    pub host: String,
    pub port: u16,
    pub prefix: String,
    pub client_id: String,
    /// Share of devices that never publish.
    pub silent_fraction: f64,
    /// Share of devices that stop publishing after `stop_after`.
    pub flaky_fraction: f64,
    pub stop_after: Duration,
    /// Reading timestamps lag the send time by this much (network/platform latency) …
    pub latency_ms: u64,
    /// … plus a uniform random jitter up to this.
    pub jitter_ms: u64,
    /// Probability that a message is replaced by a malformed one.
    pub malformed_rate: f64,
    /// Probability that a reading is a leak spike over the kind's alarm level (the next
    /// reading is back to normal, so each spike raises and clears one alarm).
    pub spike_rate: f64,
    pub seed: u64,
    /// Stop by itself after this long.
    pub duration: Option<Duration>,
}

impl Default for FleetOptions {
    fn default() -> Self {
        FleetOptions {
            host: "127.0.0.1".into(),
            port: 1883,
            prefix: "safegate/v1".into(),
            client_id: "park-sim".into(),
            silent_fraction: 0.0,
            flaky_fraction: 0.0,
            stop_after: Duration::from_secs(60),
            latency_ms: 0,
            jitter_ms: 0,
            malformed_rate: 0.0,
            spike_rate: 0.0,
            seed: 1,
            duration: None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct SimDevice {
    pub site: String,
    pub id: String,
    pub kind: DeviceKind,
    pub interval: Duration,
    pub silent: bool,
    pub flaky: bool,
}

/// The built MQTT devices of a configuration, with silent/flaky ones chosen by the seed.
pub fn devices_from_config(cfg: &Config, opts: &FleetOptions) -> Vec<SimDevice> {
    let mut rng = fastrand::Rng::with_seed(opts.seed);
    cfg.inventory
        .devices
        .iter()
        .filter(|d| d.protocol == Protocol::Mqtt && d.status == UnitStatus::Built)
        .map(|d| {
            let roll = rng.f64();
            SimDevice {
                site: d.site.clone(),
                id: d.id.clone(),
                kind: d.kind,
                interval: Duration::from_secs_f64(d.interval_s),
                silent: roll < opts.silent_fraction,
                flaky: roll >= opts.silent_fraction
                    && roll < opts.silent_fraction + opts.flaky_fraction,
            }
        })
        .collect()
}

/// A plausible value for a kind: a baseline with a slow wave and some noise.
pub fn sample(kind: DeviceKind, t_s: f64, rng: &mut fastrand::Rng) -> Vec<(&'static str, f64)> {
    let wave = (t_s / 60.0).sin();
    let noise = rng.f64() - 0.5;
    let round = |v: f64| (v * 100.0).round() / 100.0;
    match kind {
        DeviceKind::GasCombustible => vec![("lel", round((3.0 + 2.0 * wave + noise).max(0.0)))],
        DeviceKind::GasToxic => vec![("ppm", round((2.0 + wave + noise).max(0.0)))],
        DeviceKind::Methane => vec![("ch4", round((0.3 + 0.1 * wave + 0.05 * noise).max(0.0)))],
        DeviceKind::CarbonMonoxide => vec![("ppm", round((6.0 + 2.0 * wave + noise).max(0.0)))],
        DeviceKind::Temperature => vec![("celsius", round(24.0 + 2.0 * wave + noise))],
        DeviceKind::WaterLevel => vec![("m", round(12.0 + 0.5 * wave + 0.1 * noise))],
        DeviceKind::SlopeDisplacement => vec![("mm", round(1.5 + t_s / 3600.0 + 0.2 * noise))],
        DeviceKind::Microseismic => vec![(
            "joule",
            round((150.0 + 100.0 * wave + 50.0 * noise).max(0.0)),
        )],
        DeviceKind::RoofPressure => vec![("mpa", round(18.0 + wave + 0.3 * noise))],
        DeviceKind::Positioning => vec![("people", (20.0 + 5.0 * wave).round())],
        DeviceKind::Video => vec![("streams_up", 1.0)],
        DeviceKind::WindSpeed => vec![("m_s", round(2.5 + 0.3 * wave + 0.1 * noise))],
        DeviceKind::Oxygen => vec![("o2", round(20.6 + 0.1 * wave))],
        DeviceKind::CarbonDioxide => vec![("co2", round((0.2 + 0.05 * wave).max(0.0)))],
        DeviceKind::Switch => vec![("state", 1.0)],
        DeviceKind::Cumulative => vec![("total", round(1000.0 + t_s))],
        DeviceKind::Other => vec![("value", round(wave))],
    }
}

/// A value over the kind's first alarm level (see docs/alarms.md), for leak spikes.
pub fn spike(kind: DeviceKind) -> Option<f64> {
    Some(match kind {
        DeviceKind::GasCombustible => 32.0,
        DeviceKind::GasToxic => 16.0,
        DeviceKind::Methane => 1.2,
        DeviceKind::CarbonMonoxide => 30.0,
        DeviceKind::Temperature => 31.5,
        _ => return None,
    })
}

fn now_ms() -> i64 {
    crate::telemetry::now_ms()
}

#[derive(Debug, Default, Clone, Copy)]
pub struct FleetReport {
    pub published: u64,
    pub malformed: u64,
}

/// Publish until `duration` elapses or shutdown.
pub async fn run(
    opts: FleetOptions,
    devices: Vec<SimDevice>,
    mut shutdown: broadcast::Receiver<()>,
) -> FleetReport {
    let mut mo = MqttOptions::new(opts.client_id.clone(), opts.host.clone(), opts.port);
    mo.set_keep_alive(Duration::from_secs(30));
    mo.set_inflight(500);
    let (client, mut eventloop) = AsyncClient::new(mo, 1024);
    let poller = tokio::spawn(async move {
        loop {
            if eventloop.poll().await.is_err() {
                // The broker may not be up yet (demo start-up); rumqttc reconnects on the next poll.
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
    });
    let mut rng = fastrand::Rng::with_seed(opts.seed.wrapping_add(7));
    let start = Instant::now();
    let end = opts.duration.map(|d| start + d);
    // (next send, device), spread over the first interval so the fleet does not burst.
    let mut due: BinaryHeap<Reverse<(Instant, usize)>> = devices
        .iter()
        .enumerate()
        .filter(|(_, d)| !d.silent)
        .map(|(i, d)| Reverse((start + d.interval.mul_f64(rng.f64()), i)))
        .collect();
    let mut report = FleetReport::default();
    while let Some(Reverse((at, i))) = due.pop() {
        if end.is_some_and(|e| at >= e) {
            break;
        }
        tokio::select! {
            _ = shutdown.recv() => break,
            _ = tokio::time::sleep_until(at) => {}
        }
        let d = &devices[i];
        if d.flaky && at.duration_since(start) >= opts.stop_after {
            continue; // this one has gone quiet for good
        }
        let lag = opts.latency_ms
            + if opts.jitter_ms > 0 {
                rng.u64(0..=opts.jitter_ms)
            } else {
                0
            };
        let ts = now_ms() - lag as i64;
        let t_s = start.elapsed().as_secs_f64();
        let (topic, payload) = if rng.f64() < opts.malformed_rate {
            report.malformed += 1;
            malformed(&opts.prefix, d, report.malformed)
        } else {
            let mut reading = sample(d.kind, t_s, &mut rng);
            if rng.f64() < opts.spike_rate {
                if let (Some(v), Some(first)) = (spike(d.kind), reading.first_mut()) {
                    first.1 = v;
                }
            }
            let values: serde_json::Map<String, serde_json::Value> = reading
                .into_iter()
                .map(|(k, v)| (k.to_string(), serde_json::json!(v)))
                .collect();
            (
                format!("{}/{}/{}/data", opts.prefix, d.site, d.id),
                serde_json::json!({"ts": ts, "values": values, "status": "normal"}).to_string(),
            )
        };
        if client
            .publish(topic, QoS::AtLeastOnce, false, payload)
            .await
            .is_ok()
        {
            report.published += 1;
        }
        due.push(Reverse((at + d.interval, i)));
    }
    poller.abort();
    report
}

/// A rotating set of bad messages, one per rejection class the gateway should count.
fn malformed(prefix: &str, d: &SimDevice, n: u64) -> (String, String) {
    let data = format!("{prefix}/{}/{}/data", d.site, d.id);
    match n % 4 {
        0 => (data, "{\"values\": {\"x\": 1".into()),
        1 => (data, "{\"values\": {\"x\": \"high\"}}".into()),
        2 => (
            format!("{prefix}/{}/no-such-device/data", d.site),
            "{\"values\": {\"x\": 1}}".into(),
        ),
        _ => (data, "{\"values\": {}}".into()),
    }
}

/// A park platform's duty desk: watches the gateway's alarm board and acknowledges a share of
/// the new alarms over MQTT after a random delay (some within their deadline, some late); the
/// others are never acknowledged. For the demo, so the response rate has something to measure.
pub async fn acknowledge_some(
    opts: FleetOptions,
    share: f64,
    max_delay: Duration,
    mut shutdown: broadcast::Receiver<()>,
) {
    let mut mo = MqttOptions::new(
        format!("{}-duty", opts.client_id),
        opts.host.clone(),
        opts.port,
    );
    mo.set_keep_alive(Duration::from_secs(30));
    let (client, mut eventloop) = AsyncClient::new(mo, 100);
    let filter = format!("{}/+/alarms/+", opts.prefix);
    let mut rng = fastrand::Rng::with_seed(opts.seed.wrapping_add(11));
    let mut seen = std::collections::HashSet::new();
    let mut due: BinaryHeap<Reverse<(Instant, String)>> = BinaryHeap::new();
    loop {
        let next = due.peek().map_or(
            Instant::now() + Duration::from_secs(3600),
            |Reverse((t, _))| *t,
        );
        tokio::select! {
            _ = shutdown.recv() => break,
            _ = tokio::time::sleep_until(next) => {
                if let Some(Reverse((_, topic))) = due.pop() {
                    let body = serde_json::json!({"by": "demo-duty-desk", "note": "checked on site"});
                    let _ = client.try_publish(topic, QoS::AtLeastOnce, false, body.to_string());
                }
            }
            ev = eventloop.poll() => match ev {
                Ok(rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(_))) => {
                    let _ = client.try_subscribe(filter.clone(), QoS::AtLeastOnce);
                }
                Ok(rumqttc::Event::Incoming(rumqttc::Packet::Publish(p))) => {
                    let state: serde_json::Value =
                        serde_json::from_slice(&p.payload).unwrap_or_default();
                    if state["state"] == "active_unacked" && seen.insert(p.topic.clone()) && rng.f64() < share {
                        let delay = max_delay.mul_f64(rng.f64());
                        due.push(Reverse((Instant::now() + delay, format!("{}/ack", p.topic))));
                    }
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(250)).await,
            },
        }
    }
}
