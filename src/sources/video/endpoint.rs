//! The endpoint's logic between the sockets and the registry, with no socket: a message's
//! bytes and the time in; the reply, the requests to send and the core's events out. The
//! tasks in `source.rs` only move bytes (as mini-redis's connection and rumqttc's state).

use super::config::VideoSettings;
use super::fleet::{self, Fleet};
use super::manscdp;
use super::metrics::VideoMetrics;
use super::session::{Action, Change, Decision, Link, Registry, Reply};
use super::sip::{self, Inbound, Outgoing, SipError};
use crate::core::{Origin, SourceEvent};
use rsipstack::sip::Method;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;

type Limiter = governor::DefaultKeyedRateLimiter<IpAddr>;

/// What one input decided.
#[derive(Debug, Default)]
pub struct Output {
    /// The reply, to send back the way the message came.
    pub reply: Option<Vec<u8>>,
    /// Requests to devices, each with the link it goes over.
    pub requests: Vec<(Link, Vec<u8>)>,
    /// For the core, in order.
    pub events: Vec<SourceEvent>,
}

pub struct Endpoint {
    registry: Registry,
    fleet: Fleet,
    metrics: Arc<VideoMetrics>,
    limiter: Limiter,
    server_id: String,
    domain: String,
    max_bytes: usize,
    /// Where the endpoint listens (the Via of its requests).
    local: SocketAddr,
    /// Numbers the gateway's requests and reply tags.
    counter: u64,
    /// A random prefix, so Call-IDs and tags differ across restarts.
    salt: String,
}

fn random_hex(n: usize) -> String {
    let mut buf = vec![0u8; n];
    // Without the OS's randomness the nonces would be guessable: refuse to make them then
    // (the time is a poor but unique stand-in, and the failure is not known to happen).
    if getrandom::getrandom(&mut buf).is_err() {
        let t = crate::telemetry::now_ms().to_le_bytes();
        for (i, b) in buf.iter_mut().enumerate() {
            *b = t[i % t.len()];
        }
    }
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

fn link_name(link: &Link) -> String {
    match link {
        Link::Udp(a) => format!("udp {a}"),
        Link::Tcp { conn, peer } => format!("tcp {peer} (connection {conn})"),
    }
}

impl Endpoint {
    pub fn new(
        settings: &VideoSettings,
        registry: Registry,
        fleet: Fleet,
        metrics: Arc<VideoMetrics>,
        local: SocketAddr,
    ) -> Endpoint {
        let per_s = NonZeroU32::new(settings.address_rate_per_s).unwrap_or(NonZeroU32::MIN);
        Endpoint {
            registry,
            fleet,
            metrics,
            limiter: governor::RateLimiter::keyed(governor::Quota::per_second(per_s)),
            server_id: settings.server_id.clone(),
            domain: settings.domain(),
            max_bytes: settings.max_message_bytes,
            local,
            counter: 0,
            salt: random_hex(4),
        }
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    pub fn next_deadline(&mut self) -> Option<i64> {
        self.registry.next_deadline()
    }

    fn next_id(&mut self) -> String {
        self.counter += 1;
        format!("sg{}{}", self.salt, self.counter)
    }

    /// A refusal counted and reported at `now`.
    fn refuse(&self, code: &'static str, where_: &str, detail: String, now: i64, out: &mut Output) {
        self.metrics.refused(code);
        out.events.push(fleet::refusal(code, where_, detail, now));
    }

    /// One UDP datagram from `peer` at `now`.
    pub fn datagram(&mut self, bytes: &[u8], peer: SocketAddr, now: i64) -> Output {
        let read = sip::read_datagram(bytes, self.max_bytes);
        self.input(read, Link::Udp(peer), now)
    }

    /// One whole message framed on TCP connection `conn` (see `sip::frame`).
    pub fn stream(&mut self, bytes: &[u8], conn: u64, peer: SocketAddr, now: i64) -> Output {
        self.input(sip::read(bytes), Link::Tcp { conn, peer }, now)
    }

    /// A stream that could not be framed (it is closed after this).
    pub fn unframed(&mut self, e: &SipError, conn: u64, peer: SocketAddr, now: i64) -> Output {
        let mut out = Output::default();
        let link = Link::Tcp { conn, peer };
        self.refuse(e.code(), &link_name(&link), e.to_string(), now, &mut out);
        out
    }

    /// TCP connection `conn` from `peer` closed at `now`: its devices are offline.
    pub fn closed(&mut self, conn: u64, peer: SocketAddr, now: i64) -> Output {
        let mut out = self.tick_until(now);
        let d = self.registry.connection_closed(conn);
        self.decided(d, None, Link::Tcp { conn, peer }, now, &mut out);
        out
    }

    /// The deadlines reached by `now`, each applied at its own time, in order.
    pub fn tick_until(&mut self, now: i64) -> Output {
        let mut out = Output::default();
        let mut last = None;
        while let Some(t) = self.registry.next_deadline().filter(|t| *t <= now) {
            if last == Some(t) {
                break;
            }
            last = Some(t);
            let d = self.registry.tick(t);
            self.decided(d, None, Link::Udp(self.local), t, &mut out);
        }
        out
    }

    fn input(&mut self, read: Result<Inbound, SipError>, link: Link, now: i64) -> Output {
        let peer = match link {
            Link::Udp(a) | Link::Tcp { peer: a, .. } => a,
        };
        let mut out = self.tick_until(now);
        if self.limiter.check_key(&peer.ip()).is_err() {
            let detail = format!(
                "more than video.address_rate_per_s messages per second from {}",
                peer.ip()
            );
            self.refuse("rate_limited", &link_name(&link), detail, now, &mut out);
            return out;
        }
        let m = match read {
            Ok(m) => m,
            Err(SipError::NotRequest) => {
                // A device's answer to the gateway's own request (a 200 to a query).
                self.metrics.message("response");
                return out;
            }
            Err(e) => {
                self.refuse(e.code(), &link_name(&link), e.to_string(), now, &mut out);
                return out;
            }
        };
        let where_ = format!(
            "{} Call-ID {} CSeq {} from {}",
            link_name(&link),
            m.call_id,
            m.cseq,
            m.device_id
        );
        let decision = match m.method() {
            Method::Register => {
                self.metrics.message("REGISTER");
                let nonce = random_hex(16);
                self.registry.register(now, &m.register(link), &nonce)
            }
            Method::Message | Method::Notify => {
                let method = if *m.method() == Method::Message {
                    "MESSAGE"
                } else {
                    "NOTIFY"
                };
                self.metrics.message(method);
                match manscdp::parse(m.request.body(), self.max_bytes) {
                    Ok(msg) => self.registry.message(now, &m.device_id, link, msg),
                    Err(e) => {
                        self.refuse(e.code(), &where_, e.to_string(), now, &mut out);
                        let reply = Reply::BadRequest { reason: e.code() };
                        out.reply = Some(sip::respond(&m.request, &reply, &self.next_id()));
                        return out;
                    }
                }
            }
            Method::Ack => {
                self.metrics.message("other");
                return out;
            }
            _ => {
                self.metrics.message("other");
                // OPTIONS and the rest: acknowledged, nothing else (no dialog is kept).
                Decision {
                    reply: Some(Reply::Accepted),
                    ..Decision::default()
                }
            }
        };
        self.decided(decision, Some((&m, where_.as_str())), link, now, &mut out);
        out
    }

    /// A decision's reply, its changes as the core's events, its actions as requests.
    fn decided(
        &mut self,
        d: Decision,
        request: Option<(&Inbound, &str)>,
        link: Link,
        now: i64,
        out: &mut Output,
    ) {
        let origin = Origin {
            topic: Arc::from(format!("gb28181 {}", link_name(&link))),
            element: None,
        };
        for c in &d.changes {
            match c {
                Change::Refused { device_id, reason } => {
                    let where_ = request.map_or(String::new(), |(_, w)| w.to_string());
                    let detail = format!("device {device_id} refused");
                    self.refuse(reason, &where_, detail, now, out);
                }
                Change::Online { .. } => self.metrics.transition(true),
                Change::Offline { .. } => self.metrics.transition(false),
                Change::Catalog { .. } => self.metrics.catalog("complete"),
                Change::CatalogTimedOut { .. } => self.metrics.catalog("timed_out"),
                _ => {}
            }
        }
        let registry = &self.registry;
        let online = |id: &str| registry.is_online(id);
        self.fleet
            .apply(&d.changes, now, &origin, &online, &mut out.events);
        // A sign of life: a registration granted, or a keepalive taken.
        if let (Some((m, _)), Some(reply)) = (request, &d.reply) {
            let registered = matches!(reply, Reply::Registered { expires, .. } if *expires > 0);
            let keepalive = matches!(reply, Reply::Accepted)
                && *m.method() != Method::Register
                && is_keepalive(m);
            if (registered || keepalive) && self.registry.is_online(&m.device_id) {
                self.fleet
                    .alive(&m.device_id, now, &origin, &mut out.events);
            }
        }
        if let (Some((m, _)), Some(reply)) = (request, &d.reply) {
            out.reply = Some(sip::respond(&m.request, reply, &self.next_id()));
        }
        for a in d.actions {
            self.action(a, out);
        }
    }

    fn action(&mut self, a: Action, out: &mut Output) {
        let (method, device, sn, link, body) = match a {
            Action::QueryCatalog {
                device_id,
                sn,
                link,
            } => {
                let body = manscdp::catalog_query(sn, &device_id);
                (Method::Message, device_id, sn, link, body)
            }
            Action::SubscribeCatalog {
                device_id,
                sn,
                link,
            } => {
                let body = manscdp::catalog_query(sn, &device_id);
                (Method::Subscribe, device_id, sn, link, body)
            }
            Action::AnswerAlarm {
                device_id,
                sn,
                link,
            } => {
                let body = manscdp::alarm_response(sn, &device_id);
                (Method::Message, device_id, sn, link, body)
            }
        };
        let (transport, peer) = match link {
            Link::Udp(a) => ("UDP", a),
            Link::Tcp { peer, .. } => ("TCP", peer),
        };
        let id = self.next_id();
        let o = Outgoing {
            method,
            from: &self.server_id,
            domain: &self.domain,
            via: self.local,
            transport,
            to: &device,
            peer,
            id: &id,
            cseq: sn,
            body: &body,
        };
        match sip::request(&o) {
            Ok(bytes) => out.requests.push((link, bytes)),
            Err(e) => {
                tracing::warn!(device = %device, error = %e, "a request to a video device could not be written")
            }
        }
    }
}

/// Whether a MESSAGE's body is a keepalive (read again: cheap, and only for accepted ones).
fn is_keepalive(m: &Inbound) -> bool {
    matches!(
        manscdp::parse(m.request.body(), usize::MAX),
        Ok(manscdp::Message::Keepalive { .. })
    )
}
