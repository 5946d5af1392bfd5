//! loadgen: publishes readings at a target rate (or flat out) for benchmarks, bounded in count
//! and time, and prepares persistent sessions so a consumer can be measured draining a backlog.

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct LoadOptions {
    pub host: String,
    pub port: u16,
    pub prefix: String,
    pub site: String,
    /// Devices `d0` … `d{n-1}` take turns.
    pub devices: usize,
    pub count: u64,
    /// Messages per second; `None` = as fast as the broker accepts.
    pub rate: Option<u64>,
    pub qos: u8,
    /// Hard stop, whatever was sent.
    pub max_duration: Duration,
    /// Every n-th reading of each device crosses the gas level-2 threshold (an alarm storm:
    /// each crossing raises an alarm and the next reading clears it); `None`: every value stays
    /// under the level-1 threshold (25 %LEL).
    pub alarm_every: Option<u64>,
    /// What the messages look like, and where they go.
    pub format: Format,
    /// Readings per message: above 1, native messages go to `{prefix}/{site}/batch` and
    /// envelopes carry that many points (`count` is messages; readings are count × this).
    pub per_message: usize,
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

/// Readings `first .. first + n` of a run in one message: reading `g` is device `g % devices`
/// at ms `ts0 + g` (native) or second `s0 + g / devices` (the envelope's whole seconds).
fn batch_body(
    format: Format,
    first: u64,
    n: usize,
    devices: usize,
    (ts0, s0): (i64, i64),
    alarm_every: Option<u64>,
) -> String {
    let items: Vec<String> = (first..first + n as u64)
        .map(|g| {
            let (d, v) = (g % devices as u64, value(g, devices, alarm_every));
            match format {
                Format::Native => format!(
                    r#"{{"device":"d{d}","ts":{},"values":{{"v":{v:?}}},"status":"normal"}}"#,
                    ts0 + g as i64
                ),
                Format::Ministry => format!(
                    r#"{{"pointCode":"d{d}","sensorType":"0001","pointValue":{v:?},"valueUnit":"%LEL","pointStatus":"00000000","dataTime":"{}"}}"#,
                    beijing_time(s0 + (g / devices as u64) as i64)
                ),
            }
        })
        .collect();
    match format {
        Format::Native => format!("[{}]", items.join(",")),
        Format::Ministry => format!(
            r#"{{"dataId":"{first}","enterpriseCode":"bench","gatewayCode":"gw1","collectTime":"{}","isConnectDataSource":true,"reportType":"report","dataType":"realtime","datas":[{}]}}"#,
            beijing_time(s0),
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

/// The value of message `seq` when `devices` devices take turns: under 25 %LEL, or 60.5
/// (over the 50 %LEL level) for every `alarm_every`-th reading of a device.
pub fn value(seq: u64, devices: usize, alarm_every: Option<u64>) -> f64 {
    let k = seq / devices.max(1) as u64;
    match alarm_every {
        Some(n) if k % n.max(1) == 0 => 60.5,
        _ => (seq % 20) as f64 + 0.5,
    }
}

pub async fn publish(o: &LoadOptions) -> Result<LoadReport, String> {
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
    let per = o.per_message.max(1);
    let topics: Vec<String> = (0..o.devices.max(1))
        .map(|i| match o.format {
            Format::Native if per > 1 => format!("{}/{}/batch", o.prefix, o.site),
            Format::Native => format!("{}/{}/d{i}/data", o.prefix, o.site),
            Format::Ministry => format!("ministry/{}/up", o.site),
        })
        .collect();
    let format = o.format;
    // The envelope's times are whole seconds: a device's k-th point is second k of a span
    // that ends now, so no two points of a device share a time and none is in the future.
    let readings = o.count.saturating_mul(per as u64);
    let first_s =
        crate::telemetry::now_ms() / 1000 - (readings / o.devices.max(1) as u64) as i64 - 1;
    let q = qos(o.qos);
    let start = Instant::now();
    let count = o.count;
    let rate = o.rate;
    let max = o.max_duration;
    let (devices, alarm_every) = (o.devices.max(1), o.alarm_every);
    let publisher = client.clone();
    let producer = tokio::spawn(async move {
        let client = publisher;
        let mut sent = 0u64;
        let ts = crate::telemetry::now_ms();
        while sent < count && start.elapsed() < max {
            if let Some(r) = rate {
                let due = Duration::from_secs_f64(sent as f64 / r as f64);
                if let Some(wait) = due.checked_sub(start.elapsed()) {
                    tokio::time::sleep(wait).await;
                }
            }
            let i = (sent as usize) % topics.len();
            let body = if per > 1 {
                batch_body(
                    format,
                    sent * per as u64,
                    per,
                    devices,
                    (ts, first_s),
                    alarm_every,
                )
            } else {
                let v = value(sent, devices, alarm_every);
                match format {
                    Format::Native => payload(ts + sent as i64, v),
                    Format::Ministry => {
                        let t = beijing_time(first_s + (sent / devices as u64) as i64);
                        ministry_payload(&format!("d{i}"), &t, v)
                    }
                }
            };
            if client
                .publish(topics[i].clone(), q, false, body)
                .await
                .is_err()
            {
                break;
            }
            sent += 1;
        }
        sent
    });
    // Drive the connection. At QoS 1, disconnect only once the broker acknowledged every
    // message: a DISCONNECT with messages still in flight on a clean session loses them, and
    // "sent" would overstate what the broker took.
    let mut acked = 0u64;
    let mut producer = Some(producer);
    let mut sent: Option<u64> = None;
    let mut disconnecting = false;
    loop {
        if sent.is_none() && producer.as_ref().is_some_and(|p| p.is_finished()) {
            let p = producer.take().expect("checked");
            sent = Some(p.await.map_err(|e| e.to_string())?);
        }
        if let Some(n) = sent {
            if !disconnecting && (q == QoS::AtMostOnce || acked >= n) {
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
            Ok(Ok(Event::Incoming(Packet::PubAck(_)))) => acked += 1,
            Ok(Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect))) => break,
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(format!("broker connection: {e}")),
            // Idle: the producer may have finished; look again.
            Err(_) => {}
        }
        if start.elapsed() > max + Duration::from_secs(10) {
            return Err(format!(
                "the broker acknowledged {acked} of {} messages in time",
                sent.map_or("?".into(), |n| n.to_string())
            ));
        }
    }
    let sent = sent.unwrap_or(0);
    Ok(LoadReport {
        sent,
        elapsed: start.elapsed(),
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

/// A generated inventory of `n` MQTT devices in one park site, for memory and load tests.
pub fn inventory_toml(site: &str, n: usize, interval_s: f64) -> String {
    let mut s = format!("[[sites]]\nid = \"{site}\"\nname = \"generated\"\nkind = \"park\"\n\n");
    for i in 0..n {
        s.push_str(&format!(
            "[[devices]]\nid = \"d{i}\"\nsite = \"{site}\"\nkind = \"gas_combustible\"\nprotocol = \"mqtt\"\ninterval_s = {interval_s:?}\n\n"
        ));
    }
    s
}
