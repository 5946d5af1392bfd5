//! GB/T 28181 devices (NVRs and their channels) against the gateway's SIP endpoint over UDP,
//! for `video-sim` and `safegate demo`: each device registers with its digest, keeps alive
//! every `keepalive`, answers the gateway's catalog query with its channels and its
//! SUBSCRIBE and alarm answers with 200, may go silent for a window and may send an alarm.
//! Devices share a few sockets (one per source address), as the gateway tells them apart by
//! the From user, not the address. Messages are written as text here: this is a load and
//! demo peer, the independent peers of the tests are SIPp and gb28181-rs.

use crate::sources::video::digest::{self, Credentials};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::UdpSocket;
use tokio::sync::broadcast;

/// One simulated device.
#[derive(Debug, Clone)]
pub struct SimDevice {
    pub gb_id: String,
    /// (channel ID, name, catalog status such as `ON` or `OFF`).
    pub channels: Vec<(String, String, String)>,
    /// Seconds after start during which it sends nothing (from, to).
    pub silent: Option<(u64, u64)>,
    /// Seconds after start at which it sends an alarm of its first channel (priority 1).
    pub alarm_at_s: Option<u64>,
}

#[derive(Debug, Clone)]
pub struct VideoFleet {
    pub server: SocketAddr,
    pub server_id: String,
    pub domain: String,
    pub password: String,
    pub keepalive: Duration,
    pub devices: Vec<SimDevice>,
    /// Source addresses, one socket each; devices are spread over them (the gateway bounds
    /// the messages per second from one address).
    pub sources: Vec<IpAddr>,
}

/// What the fleet saw, shared while it runs.
#[derive(Debug, Default)]
pub struct VideoStats {
    pub registered: AtomicU64,
    pub keepalives: AtomicU64,
    pub keepalive_ok: AtomicU64,
    pub catalogs: AtomicU64,
    pub alarms: AtomicU64,
    pub refused: AtomicU64,
    /// Keepalive → 200 round trips, µs.
    pub rtt_us: Mutex<Vec<u32>>,
}

impl VideoStats {
    /// The `q` quantile (0..=1) of the round trips so far, µs.
    pub fn rtt_quantile(&self, q: f64) -> Option<u32> {
        let mut v = self.rtt_us.lock().ok()?.clone();
        if v.is_empty() {
            return None;
        }
        v.sort_unstable();
        let i = ((v.len() - 1) as f64 * q).round() as usize;
        v.get(i).copied()
    }
}

/// Per device, on its socket's task.
struct Dev {
    spec: SimDevice,
    registered: bool,
    cseq: u32,
    sn: u32,
    alarm_sent: bool,
}

/// Run until `stop`; the stats fill as it goes.
pub async fn run(fleet: VideoFleet, stats: Arc<VideoStats>, stop: broadcast::Sender<()>) {
    let sources = if fleet.sources.is_empty() {
        vec![IpAddr::from([127, 0, 0, 1])]
    } else {
        fleet.sources.clone()
    };
    let mut groups: Vec<Vec<SimDevice>> = vec![Vec::new(); sources.len()];
    for (i, d) in fleet.devices.iter().enumerate() {
        groups[i % sources.len()].push(d.clone());
    }
    let fleet = Arc::new(fleet);
    let mut tasks = Vec::new();
    for (ip, devices) in sources.into_iter().zip(groups) {
        let socket = match UdpSocket::bind((ip, 0)).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(%ip, error = %e, "video-sim: cannot bind a source address");
                continue;
            }
        };
        let (f, s, rx) = (fleet.clone(), stats.clone(), stop.subscribe());
        tasks.push(tokio::spawn(socket_task(f, socket, devices, s, rx)));
    }
    for t in tasks {
        let _ = t.await;
    }
}

async fn socket_task(
    fleet: Arc<VideoFleet>,
    socket: UdpSocket,
    devices: Vec<SimDevice>,
    stats: Arc<VideoStats>,
    mut stop: broadcast::Receiver<()>,
) {
    let Ok(local) = socket.local_addr() else {
        return;
    };
    let mut task = SocketTask {
        fleet: fleet.clone(),
        local,
        devs: devices
            .into_iter()
            .map(|spec| {
                let id = spec.gb_id.clone();
                let dev = Dev {
                    spec,
                    registered: false,
                    cseq: 1,
                    sn: 0,
                    alarm_sent: false,
                };
                (id, dev)
            })
            .collect(),
        sent_at: HashMap::new(),
        stats,
        start: Instant::now(),
    };
    let ids: Vec<String> = task.devs.keys().cloned().collect();
    if ids.is_empty() {
        return;
    }
    let n = ids.len().max(1) as u32;
    // Keepalives spread evenly over the interval: one device per tick.
    let mut tick = tokio::time::interval(fleet.keepalive / n);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut next = 0usize;
    // Every device registers at once; later, an unregistered one again at its tick.
    for id in &ids {
        if let Some(d) = task.devs.get_mut(id) {
            d.cseq += 1;
            let bytes = register(&fleet, local, id, d.cseq, None);
            let _ = socket.send_to(&bytes, fleet.server).await;
        }
    }
    let mut buf = vec![0u8; 65_536];
    loop {
        tokio::select! {
            _ = stop.recv() => return,
            _ = tick.tick() => {
                let id = &ids[next % ids.len()];
                next += 1;
                for bytes in task.due(id) {
                    let _ = socket.send_to(&bytes, fleet.server).await;
                }
            }
            r = socket.recv_from(&mut buf) => {
                let Ok((len, _)) = r else { continue };
                let text = String::from_utf8_lossy(&buf[..len]).into_owned();
                for bytes in task.input(&text) {
                    let _ = socket.send_to(&bytes, fleet.server).await;
                }
            }
        }
    }
}

struct SocketTask {
    fleet: Arc<VideoFleet>,
    local: SocketAddr,
    devs: HashMap<String, Dev>,
    /// Keepalives awaiting their 200, by Call-ID.
    sent_at: HashMap<String, Instant>,
    stats: Arc<VideoStats>,
    start: Instant,
}

impl SocketTask {
    /// What device `id` sends at its tick: a REGISTER until registered, else a keepalive
    /// (and its alarm when due); nothing while silent.
    fn due(&mut self, id: &str) -> Vec<Vec<u8>> {
        let now_s = self.start.elapsed().as_secs();
        let Some(d) = self.devs.get_mut(id) else {
            return Vec::new();
        };
        if d.spec.silent.is_some_and(|(a, b)| (a..b).contains(&now_s)) {
            return Vec::new();
        }
        if !d.registered {
            d.cseq += 1;
            return vec![register(&self.fleet, self.local, id, d.cseq, None)];
        }
        let mut out = Vec::new();
        d.sn += 1;
        let call_id = format!("ka-{id}-{}", d.sn);
        let body = format!(
            "<?xml version=\"1.0\" encoding=\"GB2312\"?>\r\n<Notify>\r\n<CmdType>Keepalive</CmdType>\r\n\
             <SN>{}</SN>\r\n<DeviceID>{id}</DeviceID>\r\n<Status>OK</Status>\r\n</Notify>\r\n",
            d.sn
        );
        out.push(message(&self.fleet, self.local, id, &call_id, d.sn, &body));
        self.sent_at.insert(call_id, Instant::now());
        self.stats.keepalives.fetch_add(1, Ordering::Relaxed);
        if let (Some(at), false) = (d.spec.alarm_at_s, d.alarm_sent) {
            if now_s >= at {
                d.alarm_sent = true;
                d.sn += 1;
                let of = d.spec.channels.first().map_or(id, |c| c.0.as_str());
                let body = format!(
                    "<?xml version=\"1.0\" encoding=\"GB2312\"?>\r\n<Notify>\r\n<CmdType>Alarm</CmdType>\r\n\
                     <SN>{}</SN>\r\n<DeviceID>{of}</DeviceID>\r\n<AlarmPriority>1</AlarmPriority>\r\n\
                     <AlarmMethod>5</AlarmMethod>\r\n<AlarmDescription>demo motion alarm</AlarmDescription>\r\n</Notify>\r\n",
                    d.sn
                );
                let call_id = format!("alarm-{id}-{}", d.sn);
                out.push(message(&self.fleet, self.local, id, &call_id, d.sn, &body));
                self.stats.alarms.fetch_add(1, Ordering::Relaxed);
            }
        }
        out
    }

    /// A datagram from the gateway: what to send back.
    fn input(&mut self, text: &str) -> Vec<Vec<u8>> {
        let first = text.lines().next().unwrap_or("");
        if let Some(code) = first.strip_prefix("SIP/2.0 ") {
            return self.response(code, text).into_iter().collect();
        }
        let mut out = vec![ok(text)];
        if first.starts_with("MESSAGE ") && text.contains("<CmdType>Catalog</CmdType>") {
            let to = user(header(text, "To").unwrap_or(""));
            let sn = between(text, "<SN>", "</SN>").unwrap_or("1").to_string();
            if let Some(d) = self.devs.get(to) {
                out.push(catalog(&self.fleet, self.local, d, &sn));
                self.stats.catalogs.fetch_add(1, Ordering::Relaxed);
            }
        }
        out
    }

    /// A response to the device's own request; a 401 is answered with the digest.
    fn response(&mut self, code: &str, text: &str) -> Option<Vec<u8>> {
        let call_id = header(text, "Call-ID").unwrap_or("").to_string();
        let cseq = header(text, "CSeq").unwrap_or("");
        let id = user(header(text, "From").unwrap_or("")).to_string();
        if code.starts_with("401") {
            let nonce = between(text, "nonce=\"", "\"")?.to_string();
            let d = self.devs.get_mut(&id)?;
            d.cseq += 1;
            return Some(register(&self.fleet, self.local, &id, d.cseq, Some(&nonce)));
        } else if code.starts_with("200") && cseq.ends_with("REGISTER") {
            if let Some(d) = self.devs.get_mut(&id) {
                if !d.registered {
                    d.registered = true;
                    self.stats.registered.fetch_add(1, Ordering::Relaxed);
                }
            }
        } else if code.starts_with("200") {
            if let Some(at) = self.sent_at.remove(&call_id) {
                let us = at.elapsed().as_micros().min(u32::MAX as u128) as u32;
                self.stats.keepalive_ok.fetch_add(1, Ordering::Relaxed);
                if let Ok(mut v) = self.stats.rtt_us.lock() {
                    v.push(us);
                }
            }
        } else if code.starts_with("403") {
            self.stats.refused.fetch_add(1, Ordering::Relaxed);
            if let Some(d) = self.devs.get_mut(&id) {
                d.registered = false;
            }
        }
        None
    }
}

/// A REGISTER of `id`, with the digest answer to `nonce` when given.
fn register(
    f: &VideoFleet,
    local: SocketAddr,
    id: &str,
    cseq: u32,
    nonce: Option<&str>,
) -> Vec<u8> {
    let uri = format!("sip:{}@{}", f.server_id, f.domain);
    let auth = nonce.map_or(String::new(), |nonce| {
        let mut c = Credentials {
            username: id.into(),
            realm: f.domain.clone(),
            nonce: nonce.into(),
            uri: uri.clone(),
            qop: Some("auth".into()),
            nc: Some("00000001".into()),
            cnonce: Some(format!("c{cseq}")),
            algorithm: Some("MD5".into()),
            ..Credentials::default()
        };
        c.response = digest::expected(&c, "REGISTER", &f.password).unwrap_or_default();
        format!(
            "Authorization: Digest username=\"{id}\", realm=\"{}\", nonce=\"{nonce}\", uri=\"{uri}\", \
             response=\"{}\", algorithm=MD5, qop=auth, nc=00000001, cnonce=\"c{cseq}\"\r\n",
            f.domain, c.response
        )
    });
    format!(
        "REGISTER {uri} SIP/2.0\r\nVia: SIP/2.0/UDP {local};rport;branch=z9hG4bKr{id}{cseq}\r\n\
         From: <sip:{id}@{d}>;tag=r{id}\r\nTo: <sip:{id}@{d}>\r\nCall-ID: reg-{id}\r\n\
         CSeq: {cseq} REGISTER\r\nContact: <sip:{id}@{local}>\r\nMax-Forwards: 70\r\n\
         Expires: 3600\r\n{auth}Content-Length: 0\r\n\r\n",
        d = f.domain
    )
    .into_bytes()
}

/// A MANSCDP MESSAGE from `id` to the gateway.
fn message(
    f: &VideoFleet,
    local: SocketAddr,
    id: &str,
    call_id: &str,
    cseq: u32,
    body: &str,
) -> Vec<u8> {
    format!(
        "MESSAGE sip:{s}@{d} SIP/2.0\r\nVia: SIP/2.0/UDP {local};rport;branch=z9hG4bK{call_id}\r\n\
         From: <sip:{id}@{d}>;tag=m{id}\r\nTo: <sip:{s}@{d}>\r\nCall-ID: {call_id}\r\n\
         CSeq: {cseq} MESSAGE\r\nMax-Forwards: 70\r\nContent-Type: Application/MANSCDP+xml\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len(),
        s = f.server_id,
        d = f.domain
    )
    .into_bytes()
}

/// The device's catalog, one page, answering the query `sn`.
fn catalog(f: &VideoFleet, local: SocketAddr, d: &Dev, sn: &str) -> Vec<u8> {
    let id = &d.spec.gb_id;
    let items: String = d
        .spec
        .channels
        .iter()
        .map(|(ch, name, status)| {
            format!(
                "<Item><DeviceID>{ch}</DeviceID><Name>{name}</Name><ParentID>{id}</ParentID>\
                 <Status>{status}</Status></Item>\r\n"
            )
        })
        .collect();
    let n = d.spec.channels.len();
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\r\n<Response>\r\n<CmdType>Catalog</CmdType>\r\n\
         <SN>{sn}</SN>\r\n<DeviceID>{id}</DeviceID>\r\n<SumNum>{n}</SumNum>\r\n\
         <DeviceList Num=\"{n}\">\r\n{items}</DeviceList>\r\n</Response>\r\n"
    );
    message(f, local, id, &format!("cat-{id}-{sn}"), 1, &body)
}

/// A 200 to the gateway's request `text` (its Via, From, To, Call-ID and CSeq).
fn ok(text: &str) -> Vec<u8> {
    let mut out = String::from("SIP/2.0 200 OK\r\n");
    for name in ["Via", "From", "To", "Call-ID", "CSeq"] {
        if let Some(v) = header(text, name) {
            let tag = if name == "To" && !v.contains("tag=") {
                ";tag=sim"
            } else {
                ""
            };
            out.push_str(&format!("{name}: {v}{tag}\r\n"));
        }
    }
    out.push_str("Content-Length: 0\r\n\r\n");
    out.into_bytes()
}

/// The value of the first header `name` (without case) of a SIP message.
fn header<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    text.lines()
        .take_while(|l| !l.is_empty())
        .filter_map(|l| l.split_once(':'))
        .find(|(n, _)| n.trim().eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim())
}

/// The user part of a `<sip:user@host>` header value.
fn user(v: &str) -> &str {
    v.split("sip:")
        .nth(1)
        .and_then(|r| r.split('@').next())
        .unwrap_or("")
}

fn between<'a>(text: &'a str, a: &str, b: &str) -> Option<&'a str> {
    let rest = text.split_once(a)?.1;
    Some(rest.split_once(b)?.0)
}

/// `n` NVRs of `channels` cameras each, IDs under `domain` (NVR type 118, cameras 132):
/// the last camera of each NVR is `OFF`.
pub fn nvrs(domain: &str, n: usize, channels: usize) -> Vec<SimDevice> {
    (0..n)
        .map(|i| SimDevice {
            gb_id: format!("{domain}118{:07}", i + 1),
            channels: (0..channels)
                .map(|c| {
                    let status = if c + 1 == channels && channels > 1 {
                        "OFF"
                    } else {
                        "ON"
                    };
                    (
                        format!("{domain}132{:07}", i * channels + c + 1),
                        format!("camera {}", c + 1),
                        status.to_string(),
                    )
                })
                .collect(),
            silent: None,
            alarm_at_s: None,
        })
        .collect()
}
