//! loadgen: publishes readings at a target rate (or flat out) for benchmarks, bounded in count
//! and time, and prepares persistent sessions so a consumer can be measured draining a backlog.

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct LoadOptions {
    pub host: String,
    pub port: u16,
    pub prefix: String,
    pub site: String,
    /// Devices `d0` … `d{n-1}` take turns.
    pub devices: usize,
    /// With more than 1, the devices are spread over sites `{site}-0` … as
    /// [`site_of`] says (the layout of [`inventory_sites_toml`]).
    pub sites: usize,
    pub count: u64,
    /// Messages per second; `None` = as fast as the broker accepts. A paced run stamps every
    /// reading from the wall clock (see [`ClockStamps`]); a flat-out run stamps reading `g` at
    /// (start + g) ms, or second `g / devices` of a span ending now for the envelope, so a
    /// preloaded backlog of any size has distinct times.
    pub rate: Option<u64>,
    pub qos: u8,
    /// Hard stop, whatever was sent.
    pub max_duration: Duration,
    /// Every n-th reading of each device crosses the gas level-2 threshold (an alarm storm:
    /// each crossing raises an alarm and the next reading clears it); `None`: every value stays
    /// under the level-1 threshold (25 %LEL).
    pub alarm_every: Option<u64>,
    /// With `alarm_every`: shift device `d`'s alarm readings by `d` readings, so alarms come
    /// steadily (one in every n readings of the run) rather than from every device at once.
    pub alarm_spread: bool,
    /// What the messages look like, and where they go.
    pub format: Format,
    /// Readings per message: above 1, native messages go to `{prefix}/{site}/batch` and
    /// envelopes carry that many points (`count` is messages; readings are count × this).
    pub per_message: usize,
    /// Print a progress line (sent, due, lag, unacknowledged) to stderr this often.
    pub progress: Option<Duration>,
}

/// The gateway's own reading on `{prefix}/{site}/d{i}/data`, or a park platform's
/// ministry-family envelope with one point on `ministry/{site}/up` (read through a mapping,
/// see docs/mappings.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Format {
    #[default]
    Native,
    Ministry,
}

#[derive(Debug, Clone, Copy)]
pub struct LoadReport {
    pub sent: u64,
    pub elapsed: Duration,
    /// Readings sent (messages × readings per message).
    pub readings: u64,
    /// Readings sent with an alarm value.
    pub alarms: u64,
    /// For a paced run: how well the pace was held.
    pub pace: Option<PaceReport>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PaceReport {
    /// The target, messages per second.
    pub rate: u64,
    /// From the start until the last message was handed to the client.
    pub send_elapsed: Duration,
    /// The most messages that were due but not yet sent, seen at a tick.
    pub max_lag: u64,
    /// When that was, from the start.
    pub max_lag_at: Duration,
    /// Messages due but not sent when the run stopped (non-zero when `max_duration` cut it).
    pub final_lag: u64,
    /// The most messages handed to the client but not yet acknowledged by the broker (QoS 1).
    pub max_unacked: u64,
}

impl PaceReport {
    /// Messages per second actually sent, over the sending time.
    pub fn achieved(&self, sent: u64) -> f64 {
        let s = self.send_elapsed.as_secs_f64();
        if s > 0.0 {
            sent as f64 / s
        } else {
            0.0
        }
    }
    /// How much later than scheduled the last message went out (≤ 0: on time).
    pub fn late_s(&self, sent: u64) -> f64 {
        self.send_elapsed.as_secs_f64() - sent.saturating_sub(1) as f64 / self.rate.max(1) as f64
    }
}

fn qos(q: u8) -> QoS {
    if q == 0 {
        QoS::AtMostOnce
    } else {
        QoS::AtLeastOnce
    }
}

/// One reading payload, the shape the gateway ingests.
pub fn payload(ts_ms: i64, value: f64) -> String {
    format!("{{\"ts\":{ts_ms},\"values\":{{\"v\":{value:?}}},\"status\":\"normal\"}}")
}

/// One point in the ministry-family envelope, timed `data_time` (`yyyy-MM-dd HH:mm:ss`).
pub fn ministry_payload(device: &str, data_time: &str, value: f64) -> String {
    format!(
        concat!(
            r#"{{"dataId":"{d}-{t}","enterpriseCode":"bench","gatewayCode":"gw1","collectTime":"{t}","#,
            r#""isConnectDataSource":true,"reportType":"report","dataType":"realtime","datas":[{{"#,
            r#""pointCode":"{d}","sensorType":"0001","pointValue":{v:?},"valueUnit":"%LEL","#,
            r#""pointStatus":"00000000","dataTime":"{t}"}}]}}"#
        ),
        d = device,
        t = data_time,
        v = value
    )
}

/// Timestamps of a paced run: from the wall clock, unique per device. A device's next stamp
/// is `max(now, its last stamp + 1)`, so two readings of one device within one clock step
/// still get distinct times (the store would otherwise keep one sample for both), while
/// different devices share the clock freely. The unit is the caller's: milliseconds for
/// native readings, whole seconds for the envelope. A device sending faster than one reading
/// per step runs ahead of the clock, so the envelope (one step = 1 s) is limited to one
/// point per device per second (see [`publish`]); native readings allow 1,000 per second.
#[derive(Debug, Clone)]
pub struct ClockStamps {
    last: Vec<i64>,
}

impl ClockStamps {
    pub fn new(devices: usize) -> ClockStamps {
        ClockStamps {
            last: vec![i64::MIN; devices.max(1)],
        }
    }

    /// The stamp of device `d`'s next reading when the clock reads `now`.
    pub fn next(&mut self, d: usize, now: i64) -> i64 {
        let n = self.last.len();
        let last = &mut self.last[d % n];
        let t = now.max(last.saturating_add(1));
        *last = t;
        t
    }
}

/// How a run times its readings: reading `g` (of device `g % devices`) gets a ms time for the
/// native format, an epoch second for the envelope.
enum Stamping {
    /// Flat out: native reading `g` at `ts0 + g` ms; envelope reading `g` at second
    /// `s0 + g / devices`.
    Sequence { ts0: i64, s0: i64 },
    /// Paced: from the clock, per device.
    Clock(ClockStamps),
}

impl Stamping {
    fn stamp(&mut self, format: Format, g: u64, devices: usize, now_ms: i64) -> i64 {
        let d = (g % devices.max(1) as u64) as usize;
        match (self, format) {
            (Stamping::Sequence { ts0, .. }, Format::Native) => *ts0 + g as i64,
            (Stamping::Sequence { s0, .. }, Format::Ministry) => {
                *s0 + (g / devices.max(1) as u64) as i64
            }
            (Stamping::Clock(c), Format::Native) => c.next(d, now_ms),
            (Stamping::Clock(c), Format::Ministry) => c.next(d, now_ms.div_euclid(1000)),
        }
    }

    /// The envelope's `collectTime` (an epoch second) of a message sent at `now_ms`.
    fn collect_s(&self, now_ms: i64) -> i64 {
        match self {
            Stamping::Sequence { s0, .. } => *s0,
            Stamping::Clock(_) => now_ms.div_euclid(1000),
        }
    }
}

/// Readings `first .. first + stamps.len()` of a run in one message: reading `g` is device
/// `g % devices`, timed `stamps[g - first]` (ms for native, an epoch second for the envelope,
/// whose `collectTime` is second `collect_s`).
fn batch_body(
    format: Format,
    first: u64,
    stamps: &[i64],
    devices: usize,
    collect_s: i64,
    (alarm_every, spread): (Option<u64>, bool),
) -> String {
    let items: Vec<String> = (first..)
        .zip(stamps)
        .map(|(g, &t)| {
            let (d, v) = (
                g % devices.max(1) as u64,
                reading_value(g, devices, alarm_every, spread),
            );
            match format {
                Format::Native => format!(
                    r#"{{"device":"d{d}","ts":{t},"values":{{"v":{v:?}}},"status":"normal"}}"#
                ),
                Format::Ministry => format!(
                    r#"{{"pointCode":"d{d}","sensorType":"0001","pointValue":{v:?},"valueUnit":"%LEL","pointStatus":"00000000","dataTime":"{}"}}"#,
                    beijing_time(t)
                ),
            }
        })
        .collect();
    match format {
        Format::Native => format!("[{}]", items.join(",")),
        Format::Ministry => format!(
            r#"{{"dataId":"{first}","enterpriseCode":"bench","gatewayCode":"gw1","collectTime":"{}","isConnectDataSource":true,"reportType":"report","dataType":"realtime","datas":[{}]}}"#,
            beijing_time(collect_s),
            items.join(",")
        ),
    }
}

/// `yyyy-MM-dd HH:mm:ss` at UTC+8 (the envelope's local time) of an epoch second.
pub fn beijing_time(epoch_s: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(epoch_s)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
        .to_offset(time::macros::offset!(+8));
    let f = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    t.format(&f).unwrap_or_default()
}

/// Whether reading `seq` carries an alarm value when `devices` devices take turns: the k-th
/// reading of device d is one when k (with `spread`: k + d) is a multiple of `alarm_every`.
pub fn is_alarm(seq: u64, devices: usize, alarm_every: Option<u64>, spread: bool) -> bool {
    let Some(n) = alarm_every else {
        return false;
    };
    let devices = devices.max(1) as u64;
    let k = seq / devices;
    let k = if spread { k + seq % devices } else { k };
    k % n.max(1) == 0
}

/// The value of message `seq` when `devices` devices take turns: under 25 %LEL, or 60.5
/// (over the 50 %LEL level) for every `alarm_every`-th reading of a device.
pub fn value(seq: u64, devices: usize, alarm_every: Option<u64>) -> f64 {
    reading_value(seq, devices, alarm_every, false)
}

/// As [`value`], with alarms spread over the devices when `spread` (see [`is_alarm`]).
pub fn reading_value(seq: u64, devices: usize, alarm_every: Option<u64>, spread: bool) -> f64 {
    if is_alarm(seq, devices, alarm_every, spread) {
        60.5
    } else {
        (seq % 20) as f64 + 0.5
    }
}

/// A paced run wakes this often and sends every message that has fallen due: the timer's
/// granularity is a millisecond, too coarse to sleep before each message at 20,000/s.
const TICK: Duration = Duration::from_millis(5);

/// How many of `count` messages are due `elapsed` into a run paced at `rate` a second:
/// message i is due at i / rate seconds.
pub fn due(elapsed: Duration, rate: u64, count: u64) -> u64 {
    let n = elapsed.as_nanos().saturating_mul(rate as u128) / 1_000_000_000 + 1;
    n.min(count as u128) as u64
}

/// What the producer tells at the end.
struct Produced {
    sent: u64,
    readings: u64,
    alarms: u64,
    pace: Option<PaceReport>,
}

pub async fn publish(o: &LoadOptions) -> Result<LoadReport, String> {
    let per = o.per_message.max(1);
    let devices = o.devices.max(1);
    if let (Format::Ministry, Some(r)) = (o.format, o.rate) {
        // The envelope's times are whole seconds: faster, a device's stamps would run ahead of
        // the clock by a second every second, and the gateway would refuse them as future.
        if r.saturating_mul(per as u64) > devices as u64 {
            return Err(format!(
                "--format ministry --rate {r} × {per} points sends more than one point per device a second over {devices} devices; the envelope's times are whole seconds, so use at least {} devices",
                r.saturating_mul(per as u64)
            ));
        }
    }
    let mut mo = MqttOptions::new(
        format!("loadgen-{}", std::process::id()),
        o.host.clone(),
        o.port,
    );
    mo.set_keep_alive(Duration::from_secs(30));
    mo.set_inflight(1000);
    // Batches of hundreds of readings are larger than rumqttc's default of 10 KiB.
    mo.set_max_packet_size(1 << 20, 1 << 20);
    mo.set_clean_session(true);
    let (client, mut eventloop) = AsyncClient::new(mo, 10_000);
    let topics: Vec<String> = (0..devices)
        .map(|i| match o.format {
            Format::Native if per > 1 => format!("{}/{}/batch", o.prefix, o.site),
            Format::Native => format!(
                "{}/{}/d{i}/data",
                o.prefix,
                site_of(&o.site, i, devices, o.sites)
            ),
            Format::Ministry => format!("ministry/{}/up", o.site),
        })
        .collect();
    let format = o.format;
    let readings = o.count.saturating_mul(per as u64);
    let mut stamping = match o.rate {
        Some(_) => Stamping::Clock(ClockStamps::new(devices)),
        // The envelope's times are whole seconds: a device's k-th point is second k of a span
        // that ends now, so no two points of a device share a time and none is in the future.
        None => Stamping::Sequence {
            ts0: crate::telemetry::now_ms(),
            s0: crate::telemetry::now_ms() / 1000 - (readings / devices as u64) as i64 - 1,
        },
    };
    let q = qos(o.qos);
    let start = Instant::now();
    let (count, rate, max, progress) = (o.count, o.rate, o.max_duration, o.progress);
    let alarm = (o.alarm_every, o.alarm_spread);
    let acked = Arc::new(AtomicU64::new(0));
    let acked_seen = acked.clone();
    let publisher = client.clone();
    let producer = tokio::spawn(async move {
        let client = publisher;
        let mut p = Produced {
            sent: 0,
            readings: 0,
            alarms: 0,
            pace: rate.map(|r| PaceReport {
                rate: r,
                send_elapsed: Duration::ZERO,
                max_lag: 0,
                max_lag_at: Duration::ZERO,
                final_lag: 0,
                max_unacked: 0,
            }),
        };
        let mut tick = rate.map(|_| {
            let mut t = tokio::time::interval(TICK);
            t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            t
        });
        let mut next_progress = progress.map(|every| (every, every));
        let mut stamps = Vec::with_capacity(per);
        'run: while p.sent < count && start.elapsed() < max {
            let due_now = match (rate, tick.as_mut(), p.pace.as_mut()) {
                (Some(r), Some(t), Some(pace)) => {
                    t.tick().await;
                    let at = start.elapsed();
                    let d = due(at, r, count);
                    if d - p.sent > pace.max_lag {
                        (pace.max_lag, pace.max_lag_at) = (d - p.sent, at);
                    }
                    let unacked = p.sent.saturating_sub(acked_seen.load(Ordering::Relaxed));
                    if q != QoS::AtMostOnce {
                        pace.max_unacked = pace.max_unacked.max(unacked);
                    }
                    d
                }
                _ => count,
            };
            while p.sent < due_now {
                if start.elapsed() >= max {
                    break 'run;
                }
                let i = (p.sent as usize) % topics.len();
                let now_ms = crate::telemetry::now_ms();
                let first = p.sent * per as u64;
                stamps.clear();
                for g in first..first + per as u64 {
                    stamps.push(stamping.stamp(format, g, devices, now_ms));
                    p.alarms += is_alarm(g, devices, alarm.0, alarm.1) as u64;
                }
                let body = if per > 1 {
                    batch_body(
                        format,
                        first,
                        &stamps,
                        devices,
                        stamping.collect_s(now_ms),
                        alarm,
                    )
                } else {
                    let v = reading_value(p.sent, devices, alarm.0, alarm.1);
                    match format {
                        Format::Native => payload(stamps[0], v),
                        Format::Ministry => {
                            ministry_payload(&format!("d{i}"), &beijing_time(stamps[0]), v)
                        }
                    }
                };
                if client
                    .publish(topics[i].clone(), q, false, body)
                    .await
                    .is_err()
                {
                    break 'run;
                }
                p.sent += 1;
                p.readings += per as u64;
                if let Some((every, at)) = next_progress.as_mut() {
                    let now = start.elapsed();
                    if now >= *at {
                        eprintln!(
                            "loadgen: t={:.1}s sent {} due {} lag {} unacked {}",
                            now.as_secs_f64(),
                            p.sent,
                            rate.map_or(count, |r| due(now, r, count)),
                            rate.map_or(0, |r| due(now, r, count).saturating_sub(p.sent)),
                            p.sent.saturating_sub(acked_seen.load(Ordering::Relaxed))
                        );
                        *at += *every;
                    }
                }
            }
        }
        if let (Some(r), Some(pace)) = (rate, p.pace.as_mut()) {
            pace.send_elapsed = start.elapsed();
            // Cut short by max_duration: what was due by then and not sent.
            pace.final_lag = due(start.elapsed().min(max), r, count).saturating_sub(p.sent);
        }
        p
    });
    // Drive the connection. At QoS 1, disconnect only once the broker acknowledged every
    // message: a DISCONNECT with messages still in flight on a clean session loses them, and
    // "sent" would overstate what the broker took.
    let mut producer = Some(producer);
    let mut produced: Option<Produced> = None;
    let mut disconnecting = false;
    loop {
        if produced.is_none() && producer.as_ref().is_some_and(|p| p.is_finished()) {
            if let Some(p) = producer.take() {
                produced = Some(p.await.map_err(|e| e.to_string())?);
            }
        }
        if let Some(n) = produced.as_ref().map(|p| p.sent) {
            if !disconnecting && (q == QoS::AtMostOnce || acked.load(Ordering::Relaxed) >= n) {
                match client.try_disconnect() {
                    Ok(()) => disconnecting = true,
                    // The request queue is still full of publishes (a fast QoS 0 run): try
                    // again once the event loop has taken some.
                    Err(rumqttc::ClientError::TryRequest(_)) => {}
                    Err(e) => return Err(format!("disconnect: {e}")),
                }
            }
        }
        match tokio::time::timeout(Duration::from_millis(200), eventloop.poll()).await {
            Ok(Ok(Event::Incoming(Packet::PubAck(_)))) => {
                acked.fetch_add(1, Ordering::Relaxed);
            }
            Ok(Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect))) => break,
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(format!("broker connection: {e}")),
            // Idle: the producer may have finished; look again.
            Err(_) => {}
        }
        if start.elapsed() > max + Duration::from_secs(10) {
            return Err(format!(
                "the broker acknowledged {} of {} messages in time",
                acked.load(Ordering::Relaxed),
                produced.as_ref().map_or("?".into(), |p| p.sent.to_string())
            ));
        }
    }
    let p = produced.unwrap_or(Produced {
        sent: 0,
        readings: 0,
        alarms: 0,
        pace: None,
    });
    Ok(LoadReport {
        sent: p.sent,
        elapsed: start.elapsed(),
        readings: p.readings,
        alarms: p.alarms,
        pace: p.pace,
    })
}

/// Create (or refresh) a persistent session `client_id` subscribed to `filter`, then leave,
/// so the broker queues what is published next for that client.
pub async fn prepare_session(
    host: &str,
    port: u16,
    client_id: &str,
    filter: &str,
    q: u8,
) -> Result<(), String> {
    let mut mo = MqttOptions::new(client_id, host, port);
    mo.set_clean_session(false);
    let (client, mut eventloop) = AsyncClient::new(mo, 10);
    client
        .subscribe(filter, qos(q))
        .await
        .map_err(|e| e.to_string())?;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match tokio::time::timeout(Duration::from_secs(10), eventloop.poll()).await {
            Ok(Ok(Event::Incoming(Packet::SubAck(_)))) => break,
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(format!("broker connection: {e}")),
            Err(_) => return Err("no SUBACK within 10 s".into()),
        }
        if Instant::now() > deadline {
            return Err("no SUBACK within 10 s".into());
        }
    }
    let _ = client.disconnect().await;
    let _ = tokio::time::timeout(Duration::from_millis(500), eventloop.poll()).await;
    Ok(())
}

/// The site of device `i` of `n` spread over `sites` sites: `{site}-{i·sites/n}`, or `site`
/// itself with one site.
pub fn site_of(site: &str, i: usize, n: usize, sites: usize) -> String {
    if sites <= 1 {
        return site.to_string();
    }
    format!("{site}-{}", i * sites / n.max(1))
}

/// `n` MQTT devices `d0` … spread over `sites` parks `{site}-0` … (as [`site_of`]), each
/// park with `zones` zones `z0` … and its devices assigned to them in turn, each reporting
/// every `interval_s` (and offline after `offline_after_s` when given). For the console's benchmark at 100,000 devices.
pub fn inventory_sites_toml(
    site: &str,
    n: usize,
    sites: usize,
    zones: usize,
    (interval_s, offline_after_s): (f64, Option<f64>),
) -> String {
    let sites = sites.max(1);
    let mut s = String::new();
    for k in 0..sites {
        let id = match sites {
            1 => site.to_string(),
            _ => format!("{site}-{k}"),
        };
        s.push_str(&format!(
            "[[sites]]\nid = \"{id}\"\nname = \"generated {k}\"\nkind = \"park\"\n\n"
        ));
        for z in 0..zones {
            s.push_str(&format!(
                "[[zones]]\nid = \"z{z}\"\nsite = \"{id}\"\nname = \"zone {z}\"\n\n"
            ));
        }
    }
    let offline = offline_after_s.map_or(String::new(), |o| format!("offline_after_s = {o:?}\n"));
    for i in 0..n {
        let id = site_of(site, i, n, sites);
        let zone = match zones {
            0 => String::new(),
            z => format!("zone = \"z{}\"\n", i % z),
        };
        s.push_str(&format!(
            "[[devices]]\nid = \"d{i}\"\nsite = \"{id}\"\nkind = \"gas_combustible\"\nprotocol = \"mqtt\"\ninterval_s = {interval_s:?}\n{zone}{offline}\n"
        ));
    }
    s
}

/// A generated inventory of `n` MQTT devices in one park site, for memory and load tests.
pub fn inventory_toml(site: &str, n: usize, interval_s: f64) -> String {
    inventory_toml_offline(site, n, interval_s, None)
}

/// As [`inventory_toml`], with each device's `offline_after_s` when given (else the
/// gateway's default, 3 × `interval_s`).
pub fn inventory_toml_offline(
    site: &str,
    n: usize,
    interval_s: f64,
    offline_after_s: Option<f64>,
) -> String {
    let mut s = format!("[[sites]]\nid = \"{site}\"\nname = \"generated\"\nkind = \"park\"\n\n");
    let offline = offline_after_s.map_or(String::new(), |o| format!("offline_after_s = {o:?}\n"));
    for i in 0..n {
        s.push_str(&format!(
            "[[devices]]\nid = \"d{i}\"\nsite = \"{site}\"\nkind = \"gas_combustible\"\nprotocol = \"mqtt\"\ninterval_s = {interval_s:?}\n{offline}\n"
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_spread_over_sites_as_the_inventory_lays_them_out() {
        assert_eq!(site_of("s", 5, 10, 1), "s");
        let inv = inventory_sites_toml("s", 10, 3, 2, (10.0, Some(1.0)));
        let f = crate::core::config::inventory::test_file(&inv);
        let inv = crate::core::Inventory::from_config(&f.inventory);
        assert_eq!(inv.sites.len(), 3);
        assert_eq!(inv.zones.len(), 6);
        for i in 0..10 {
            let site = site_of("s", i, 10, 3);
            assert!(
                inv.lookup(&site, &format!("d{i}")).is_ok(),
                "d{i} in {site}"
            );
        }
    }

    #[test]
    fn clock_stamps_follow_the_clock_and_stay_unique_per_device() {
        let mut c = ClockStamps::new(3);
        assert_eq!(c.next(0, 1_000), 1_000);
        // Same clock reading: the same device moves on one step, another shares the time.
        assert_eq!(c.next(0, 1_000), 1_001);
        assert_eq!(c.next(1, 1_000), 1_000);
        // The clock caught up: back on it.
        assert_eq!(c.next(0, 1_005), 1_005);
        // A clock stepping back never repeats or reverses a device's times.
        assert_eq!(c.next(0, 900), 1_006);
        // Device numbers wrap onto the devices the stamps were made for.
        assert_eq!(c.next(4, 1_000), 1_001);
    }

    #[test]
    fn a_paced_run_of_20k_a_second_over_10k_devices_is_stamped_at_the_clock() {
        // Reading g of a run at 20,000/s goes out g / 20 ms after the start: every device
        // reports every 500 ms, so each stamp is the clock itself, and none repeats.
        let (devices, start) = (10_000usize, 1_700_000_000_000i64);
        let mut s = Stamping::Clock(ClockStamps::new(devices));
        let mut last = vec![i64::MIN; devices];
        for g in 0..200_000u64 {
            let now = start + (g / 20) as i64;
            let t = s.stamp(Format::Native, g, devices, now);
            assert_eq!(t, now, "reading {g}");
            let d = (g % devices as u64) as usize;
            assert!(t > last[d], "device {d} repeated or reversed a time");
            last[d] = t;
        }
    }

    #[test]
    fn a_burst_faster_than_the_clock_gets_consecutive_times() {
        let mut s = Stamping::Clock(ClockStamps::new(1));
        let ts: Vec<i64> = (0..5)
            .map(|g| s.stamp(Format::Native, g, 1, 42_000))
            .collect();
        assert_eq!(ts, [42_000, 42_001, 42_002, 42_003, 42_004]);
    }

    #[test]
    fn envelope_points_of_one_device_never_share_a_second() {
        // At one point per device a second (rate = devices, the most publish allows), with a
        // few ms of scheduling jitter either way, a device's seconds stay distinct and at
        // most one second ahead of the clock.
        let (devices, start_ms) = (100usize, 1_700_000_000_000i64);
        let mut s = Stamping::Clock(ClockStamps::new(devices));
        let mut last = vec![i64::MIN; devices];
        for g in 0..100_000u64 {
            let jitter = [0i64, 3, -4, 7, -2][(g % 5) as usize];
            let now_ms = start_ms + (g as i64 * 1000) / devices as i64 + jitter;
            let t = s.stamp(Format::Ministry, g, devices, now_ms);
            let d = (g % devices as u64) as usize;
            assert!(t > last[d], "device {d} repeated second {t}");
            assert!(
                t - now_ms.div_euclid(1000) <= 1,
                "{t} runs ahead of {now_ms} ms"
            );
            last[d] = t;
        }
    }

    #[test]
    fn flat_out_runs_keep_their_sequence_stamps() {
        // Preloaded backlogs (scripts/bench-ingest.sh) depend on these: reading g at ts0 + g
        // ms, or second s0 + g / devices, whatever the clock says.
        let mut s = Stamping::Sequence {
            ts0: 5_000,
            s0: 100,
        };
        assert_eq!(s.stamp(Format::Native, 7, 3, 999_999), 5_007);
        assert_eq!(s.stamp(Format::Ministry, 7, 3, 999_999), 102);
        assert_eq!(s.collect_s(999_999), 100);
        let body = batch_body(Format::Native, 4, &[5_004, 5_005], 3, 0, (None, false));
        assert_eq!(
            body,
            r#"[{"device":"d1","ts":5004,"values":{"v":4.5},"status":"normal"},{"device":"d2","ts":5005,"values":{"v":5.5},"status":"normal"}]"#
        );
    }

    #[test]
    fn batch_bodies_carry_the_stamps_given() {
        let body = batch_body(
            Format::Ministry,
            0,
            &[1_700_000_000, 1_700_000_001],
            2,
            1_700_000_000,
            (Some(1), false),
        );
        let v: serde_json::Value = serde_json::from_str(&body).expect("json");
        assert_eq!(v["collectTime"], "2023-11-15 06:13:20");
        assert_eq!(v["datas"][0]["dataTime"], "2023-11-15 06:13:20");
        assert_eq!(v["datas"][1]["dataTime"], "2023-11-15 06:13:21");
        assert_eq!(v["datas"][1]["pointValue"], 60.5);
    }

    #[test]
    fn due_counts_messages_from_the_start_of_a_paced_run() {
        assert_eq!(due(Duration::ZERO, 20_000, 1_000_000), 1);
        assert_eq!(due(Duration::from_millis(5), 20_000, 1_000_000), 101);
        assert_eq!(due(Duration::from_secs(600), 20_000, 1_000_000), 1_000_000);
        assert_eq!(due(Duration::from_secs(1), 0, 10), 1);
    }

    #[test]
    fn spread_alarms_come_one_in_n_steadily_and_clear_between() {
        let (devices, n) = (1_000usize, 50u64);
        let mut last_alarm = vec![None::<u64>; devices];
        for round in 0..200u64 {
            // Every pass over the devices holds devices / n alarms, not all or none.
            let alarms = (0..devices as u64)
                .filter(|d| is_alarm(round * devices as u64 + d, devices, Some(n), true))
                .count();
            assert_eq!(alarms, devices / n as usize, "round {round}");
            for (d, last) in last_alarm.iter_mut().enumerate() {
                if is_alarm(round * devices as u64 + d as u64, devices, Some(n), true) {
                    // A device's alarms are n of its readings apart: each clears first.
                    if let Some(prev) = *last {
                        assert_eq!(round - prev, n);
                    }
                    *last = Some(round);
                }
            }
        }
        // Without spreading, every device alarms in the same round (the storm).
        assert!((0..devices as u64).all(|d| is_alarm(d, devices, Some(n), false)));
        assert_eq!(value(0, devices, Some(n)), 60.5);
        assert_eq!(reading_value(1, devices, Some(n), true), 1.5);
        assert!(!is_alarm(0, devices, None, true));
    }

    #[tokio::test]
    async fn a_paced_envelope_run_faster_than_a_point_per_device_second_is_refused() {
        let o = LoadOptions {
            sites: 1,
            host: "127.0.0.1".into(),
            port: 9,
            prefix: "safegate/v1".into(),
            site: "s".into(),
            devices: 10_000,
            count: 1,
            rate: Some(20_000),
            qos: 1,
            max_duration: Duration::from_secs(1),
            alarm_every: None,
            alarm_spread: false,
            format: Format::Ministry,
            per_message: 1,
            progress: None,
        };
        let e = publish(&o).await.expect_err("refused before connecting");
        assert!(e.contains("at least 20000 devices"), "{e}");
    }

    #[test]
    fn inventories_carry_offline_after_when_given() {
        assert!(!inventory_toml("s", 1, 0.5).contains("offline_after_s"));
        let t = inventory_toml_offline("s", 2, 0.5, Some(30.0));
        assert_eq!(t.matches("offline_after_s = 30.0\n").count(), 2);
        assert!(t.contains("interval_s = 0.5\n"));
    }
}
