//! The embedded broker's guard. rumqttd checks a login at connect but cannot restrict a login
//! to topics, so when sites list platforms (or the embedded broker serves TLS), clients connect
//! to this guard instead. It identifies each client (a login, or the common name of its TLS
//! client certificate), then checks every PUBLISH and SUBSCRIBE against the inventory's ACL
//! (the rules `safegate broker-acl` gives Mosquitto), and relays what passes, byte for byte,
//! to rumqttd on an internal loopback port that accepts only the gateway's and the guard's own
//! logins. A platform therefore cannot publish for another park, nor forge the alarm board,
//! on the embedded broker either.
//!
//! A denied PUBLISH is dropped and still acknowledged (PUBACK, or PUBREC then PUBCOMP), as
//! Mosquitto does with MQTT 3.1.1, so the platform's session does not stall on it; a denied
//! SUBSCRIBE gets a SUBACK with failure codes. Each refusal is counted
//! (`safegate_broker_refused_total{reason}`), logged and written to the audit trail.

use crate::config::broker_acl::Acl;
use crate::sinks::audit::AuditLog;
use crate::telemetry::{Metrics, ReasonLabel};
use bytes::{Bytes, BytesMut};
use rumqttc::mqttbytes::v4::{
    ConnAck, Connect, ConnectReturnCode, PubAck, PubComp, PubRec, PubRel, Publish, SubAck,
    Subscribe, SubscribeReasonCode,
};
use rumqttc::mqttbytes::{check, Error as FrameError, FixedHeader, PacketType, QoS};
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use subtle::ConstantTimeEq;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

pub use crate::config::broker_acl::GUARD_USER;

/// A client must finish its TLS handshake and send CONNECT within this time.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Frames queued towards one client; when full, reading from the broker waits (block).
const CLIENT_QUEUE: usize = 64;

/// How the guard knows who a client is.
pub enum Identify {
    /// No platforms are listed: anyone may connect and publish (the demo's open broker), the
    /// guard only carries TLS.
    Open,
    /// The CONNECT's user name and password: the gateway's or a listed platform's.
    Logins(HashMap<String, String>),
    /// The common name of the client's certificate (verified against the client CA during
    /// the handshake); the CONNECT's own login is ignored, as Mosquitto's
    /// `use_identity_as_username` does.
    Certificates,
}

pub struct Guard {
    pub acl: Acl,
    pub identify: Identify,
    /// The gateway's password towards rumqttd, for a gateway identified by its certificate.
    pub gateway_password: Option<String>,
    /// The guard's own password towards rumqttd.
    pub guard_password: String,
    /// rumqttd's internal listener.
    pub upstream: SocketAddr,
    pub max_packet_bytes: usize,
    /// Connections served at once; more are closed at accept.
    pub max_connections: usize,
    pub tls: Option<tokio_rustls::TlsAcceptor>,
    pub metrics: Arc<Metrics>,
    pub audit: Arc<AuditLog>,
    /// A flood of refused clients must not flood the log: one line per reason per 10 s.
    pub warn: crate::telemetry::RateLimitedLog,
}

impl Guard {
    fn refuse(&self, reason: &'static str, who: &str, peer: SocketAddr, what: &str) {
        self.metrics
            .broker_refused
            .get_or_create(&ReasonLabel { reason })
            .inc();
        if let Some(suppressed) = self.warn.allow(reason, crate::model::now_ms()) {
            tracing::warn!(reason, who, peer = %peer, what = %crate::core::event::shorten(what, 320), suppressed, "MQTT refused by the embedded broker's guard");
        }
        self.audit.mqtt_refused(reason, who, &peer.to_string());
    }

    /// The client's identity: `Some("")` on an open broker, `None` when refused.
    fn identify(&self, connect: &Connect, cert_name: Option<&str>) -> Option<String> {
        match &self.identify {
            Identify::Open => Some(String::new()),
            Identify::Certificates => cert_name
                .filter(|n| *n == self.acl.gateway_user || self.acl.platforms.contains_key(*n))
                .map(str::to_string),
            Identify::Logins(logins) => {
                let login = connect.login.as_ref()?;
                let want = logins.get(&login.username)?;
                // Compared in constant time, so the answer's timing tells nothing of the password.
                bool::from(want.as_bytes().ct_eq(login.password.as_bytes()))
                    .then(|| login.username.clone())
            }
        }
    }
}

/// The common name of a DER certificate's subject.
fn common_name(der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let cn = cert.subject().iter_common_name().next()?;
    cn.as_str().ok().map(str::to_string)
}

/// Serve clients on `listener` for the life of the process.
pub async fn serve(listener: TcpListener, guard: Arc<Guard>) {
    let slots = Arc::new(tokio::sync::Semaphore::new(guard.max_connections));
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let Ok(slot) = slots.clone().try_acquire_owned() else {
                    // A flood of connections must not exhaust memory or file descriptors.
                    guard.refuse("too_many_connections", "-", peer, "connection");
                    drop(stream);
                    continue;
                };
                let guard = guard.clone();
                tokio::spawn(async move {
                    let _slot = slot;
                    let _ = stream.set_nodelay(true);
                    let ended = match guard.tls.clone() {
                        None => connection(stream, peer, guard, None).await,
                        Some(acceptor) => {
                            match tokio::time::timeout(CONNECT_TIMEOUT, acceptor.accept(stream))
                                .await
                            {
                                Ok(Ok(tls)) => {
                                    let name = tls
                                        .get_ref()
                                        .1
                                        .peer_certificates()
                                        .and_then(|c| c.first())
                                        .and_then(|c| common_name(c));
                                    connection(tls, peer, guard, name).await
                                }
                                Ok(Err(e)) => {
                                    guard.refuse("tls_refused", "-", peer, &e.to_string());
                                    Err(ConnError::Io(e))
                                }
                                Err(_) => {
                                    guard.refuse("tls_refused", "-", peer, "handshake timed out");
                                    Err(ConnError::ConnectTimeout(CONNECT_TIMEOUT))
                                }
                            }
                        }
                    };
                    if let Err(e) = ended {
                        tracing::debug!(peer = %peer, error = %e, "guarded MQTT connection ended");
                    }
                });
            }
            Err(e) => {
                // Out of file descriptors and the like: wait rather than spin.
                if let Some(suppressed) = guard.warn.allow("accept", crate::model::now_ms()) {
                    tracing::warn!(error = %e, suppressed, "the embedded broker's guard cannot accept");
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum ConnError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("malformed MQTT packet: {0:?}")]
    Frame(FrameError),
    #[error("no CONNECT within {0:?}")]
    ConnectTimeout(Duration),
    #[error("the first packet was not CONNECT")]
    NotConnect,
    #[error("refused login")]
    Login,
    #[error("{0}")]
    Protocol(String),
}

/// The next whole packet at the front of `buf`, taken out of it; `None` until one is whole.
pub fn take_frame(
    buf: &mut BytesMut,
    max: usize,
) -> Result<Option<(FixedHeader, Bytes)>, FrameError> {
    match check(buf.iter(), max) {
        Ok(fh) => Ok(Some((fh, buf.split_to(fh.frame_length()).freeze()))),
        Err(FrameError::InsufficientBytes(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Read from `r` until a whole packet is in `buf`, and take it. `None` at a clean end of
/// stream between packets.
async fn next_frame(
    r: &mut (impl AsyncRead + Unpin),
    buf: &mut BytesMut,
    max: usize,
) -> Result<Option<(FixedHeader, Bytes)>, ConnError> {
    loop {
        if let Some(f) = take_frame(buf, max).map_err(ConnError::Frame)? {
            return Ok(Some(f));
        }
        if r.read_buf(buf).await? == 0 {
            return if buf.is_empty() {
                Ok(None)
            } else {
                Err(ConnError::Io(std::io::ErrorKind::UnexpectedEof.into()))
            };
        }
    }
}

/// What the guard does with one packet from a logged-in client.
#[derive(Debug, PartialEq)]
pub enum Verdict {
    /// Pass it to the broker unchanged.
    Forward,
    /// Not for the broker: send the client these bytes instead (none for a denied QoS 0).
    Answer(Bytes),
    /// Refused by the ACL: count and log it, and send the client `answer`.
    Refuse {
        reason: &'static str,
        what: String,
        answer: Bytes,
    },
    /// A protocol violation (a second CONNECT, a packet that does not parse): close.
    Close(String),
}

/// One logged-in client's side of the guard: no I/O, so it is tested and fuzzed on bytes.
pub struct Session<'a> {
    /// `None` on an open broker: everything is forwarded.
    pub acl: Option<&'a Acl>,
    pub who: String,
    /// QoS 2 publishes that were denied: their PUBREL is answered here, not by the broker.
    /// At most 65,536 packet ids.
    denied_qos2: HashSet<u16>,
}

impl<'a> Session<'a> {
    pub fn new(acl: &'a Acl, who: &str) -> Session<'a> {
        Session {
            acl: Some(acl),
            who: who.to_string(),
            denied_qos2: HashSet::new(),
        }
    }

    /// A client of an open broker (no platforms listed): nothing to check.
    pub fn unguarded() -> Session<'a> {
        Session {
            acl: None,
            who: String::new(),
            denied_qos2: HashSet::new(),
        }
    }

    pub fn inspect(&mut self, fh: FixedHeader, frame: &Bytes) -> Verdict {
        let bad = |e: FrameError| Verdict::Close(format!("malformed packet: {e:?}"));
        let Some(acl) = self.acl else {
            return match fh.packet_type() {
                Ok(PacketType::Connect) => Verdict::Close("a second CONNECT".into()),
                _ => Verdict::Forward,
            };
        };
        match fh.packet_type() {
            Ok(PacketType::Publish) => {
                let p = match Publish::read(fh, frame.clone()) {
                    Ok(p) => p,
                    Err(e) => return bad(e),
                };
                if acl.may_publish(&self.who, &p.topic) {
                    return Verdict::Forward;
                }
                let answer = match p.qos {
                    QoS::AtMostOnce => Bytes::new(),
                    QoS::AtLeastOnce => encode(|b| PubAck::new(p.pkid).write(b)),
                    QoS::ExactlyOnce => {
                        self.denied_qos2.insert(p.pkid);
                        encode(|b| PubRec::new(p.pkid).write(b))
                    }
                };
                Verdict::Refuse {
                    reason: "publish_denied",
                    what: p.topic,
                    answer,
                }
            }
            Ok(PacketType::PubRel) if !self.denied_qos2.is_empty() => {
                match PubRel::read(fh, frame.clone()) {
                    Ok(r) if self.denied_qos2.remove(&r.pkid) => {
                        Verdict::Answer(encode(|b| PubComp::new(r.pkid).write(b)))
                    }
                    Ok(_) => Verdict::Forward,
                    Err(e) => bad(e),
                }
            }
            Ok(PacketType::Subscribe) => {
                let s = match Subscribe::read(fh, frame.clone()) {
                    Ok(s) => s,
                    Err(e) => return bad(e),
                };
                match s
                    .filters
                    .iter()
                    .find(|f| !acl.may_subscribe(&self.who, &f.path))
                {
                    None => Verdict::Forward,
                    // One filter out of bounds refuses the whole request: forwarding part of
                    // it would need the broker's SUBACK rewritten.
                    Some(f) => Verdict::Refuse {
                        reason: "subscribe_denied",
                        what: f.path.clone(),
                        answer: encode(|b| {
                            SubAck::new(s.pkid, vec![SubscribeReasonCode::Failure; s.filters.len()])
                                .write(b)
                        }),
                    },
                }
            }
            Ok(PacketType::Connect) => Verdict::Close("a second CONNECT".into()),
            // Everything else is the broker's to judge (it closes on what it cannot parse).
            _ => Verdict::Forward,
        }
    }
}

fn encode(write: impl FnOnce(&mut BytesMut) -> Result<usize, FrameError>) -> Bytes {
    let mut b = BytesMut::new();
    // These packets are built from values that fit; an error would leave `b` empty.
    let _ = write(&mut b);
    b.freeze()
}

async fn connection<S>(
    stream: S,
    peer: SocketAddr,
    guard: Arc<Guard>,
    cert_name: Option<String>,
) -> Result<(), ConnError>
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (mut cr, mut cw) = tokio::io::split(stream);
    let max = guard.max_packet_bytes;
    let mut buf = BytesMut::with_capacity(4096);
    let (fh, frame) = tokio::time::timeout(CONNECT_TIMEOUT, next_frame(&mut cr, &mut buf, max))
        .await
        .map_err(|_| ConnError::ConnectTimeout(CONNECT_TIMEOUT))??
        .ok_or(ConnError::NotConnect)?;
    if !matches!(fh.packet_type(), Ok(PacketType::Connect)) {
        guard.refuse("not_connect_first", "-", peer, "first packet");
        return Err(ConnError::NotConnect);
    }
    let mut connect = Connect::read(fh, frame).map_err(ConnError::Frame)?;
    let Some(who) = guard.identify(&connect, cert_name.as_deref()) else {
        let user = match (&guard.identify, &connect.login) {
            (Identify::Certificates, _) => cert_name.unwrap_or_else(|| "-".into()),
            (_, Some(l)) => l.username.clone(),
            (_, None) => "-".into(),
        };
        guard.refuse("bad_login", &user, peer, &connect.client_id);
        let code = if connect.login.is_some() && matches!(guard.identify, Identify::Logins(_)) {
            ConnectReturnCode::BadUserNamePassword
        } else {
            ConnectReturnCode::NotAuthorized
        };
        let _ = cw
            .write_all(&encode(|b| ConnAck::new(code, false).write(b)))
            .await;
        return Err(ConnError::Login);
    };
    // A last will is a publish the broker makes for the client later: it must be allowed now,
    // or a platform could leave another site's `offline` behind it. Refused like Mosquitto.
    if let (Some(will), false) = (&connect.last_will, matches!(guard.identify, Identify::Open)) {
        if !guard.acl.may_publish(&who, &will.topic) {
            guard.refuse("will_denied", &who, peer, &will.topic);
            let _ = cw
                .write_all(&encode(|b| {
                    ConnAck::new(ConnectReturnCode::NotAuthorized, false).write(b)
                }))
                .await;
            return Err(ConnError::Login);
        }
    }
    // Towards rumqttd, everyone but the gateway goes in under the guard's own login, so the
    // internal port does not accept a platform's password without the guard in between.
    if !matches!(guard.identify, Identify::Open) {
        if who != guard.acl.gateway_user {
            connect.set_login(GUARD_USER, guard.guard_password.clone());
        } else if let Some(pw) = &guard.gateway_password {
            connect.set_login(&who, pw.clone());
        }
    }
    let upstream = TcpStream::connect(guard.upstream).await?;
    let _ = upstream.set_nodelay(true);
    let (ur, mut uw) = upstream.into_split();
    uw.write_all(&encode(|b| connect.write(b))).await?;

    let (to_client, from_broker) = mpsc::channel::<Bytes>(CLIENT_QUEUE);
    let mut writer = tokio::spawn(write_client(cw, from_broker));
    let mut down = tokio::spawn(relay_down(ur, to_client.clone(), max));
    // Either side ending ends the connection: a client gone, or the broker closing it.
    let result = tokio::select! {
        r = relay_up(&mut cr, buf, &mut uw, &to_client, &guard, &who, peer) => r,
        _ = &mut down => Ok(()),
    };
    let _ = uw.shutdown().await;
    down.abort();
    drop(to_client);
    // Let what the broker already sent reach the client, but not wait on one that never reads.
    if tokio::time::timeout(Duration::from_secs(1), &mut writer)
        .await
        .is_err()
    {
        writer.abort();
    }
    result
}

/// Client → broker: judge each packet, forward what is allowed unchanged.
async fn relay_up(
    cr: &mut (impl AsyncRead + Unpin),
    mut buf: BytesMut,
    uw: &mut (impl AsyncWrite + Unpin),
    to_client: &mpsc::Sender<Bytes>,
    guard: &Guard,
    who: &str,
    peer: SocketAddr,
) -> Result<(), ConnError> {
    let mut session = match guard.identify {
        Identify::Open => Session::unguarded(),
        _ => Session::new(&guard.acl, who),
    };
    while let Some((fh, frame)) = next_frame(cr, &mut buf, guard.max_packet_bytes).await? {
        let answer = match session.inspect(fh, &frame) {
            Verdict::Forward => {
                uw.write_all(&frame).await?;
                continue;
            }
            Verdict::Answer(a) => a,
            Verdict::Refuse {
                reason,
                what,
                answer,
            } => {
                guard.refuse(reason, who, peer, &what);
                answer
            }
            Verdict::Close(why) => return Err(ConnError::Protocol(why)),
        };
        if !answer.is_empty() && to_client.send(answer).await.is_err() {
            return Ok(());
        }
    }
    Ok(())
}

/// Broker → client: whole packets only, so the guard's own replies never split one.
async fn relay_down(
    mut ur: tokio::net::tcp::OwnedReadHalf,
    to_client: mpsc::Sender<Bytes>,
    max: usize,
) -> Result<(), ConnError> {
    let mut buf = BytesMut::with_capacity(4096);
    loop {
        // Everything whole that has arrived goes out as one write.
        let mut whole = 0;
        loop {
            match check(buf[whole..].iter(), max) {
                Ok(fh) => whole += fh.frame_length(),
                Err(FrameError::InsufficientBytes(_)) => break,
                Err(e) => return Err(ConnError::Frame(e)),
            }
        }
        if whole > 0 && to_client.send(buf.split_to(whole).freeze()).await.is_err() {
            return Ok(());
        }
        if ur.read_buf(&mut buf).await? == 0 {
            return Ok(());
        }
    }
}

async fn write_client(mut cw: impl AsyncWrite + Unpin, mut rx: mpsc::Receiver<Bytes>) {
    while let Some(b) = rx.recv().await {
        if cw.write_all(&b).await.is_err() {
            break;
        }
    }
    let _ = cw.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::load_str;
    use rumqttc::mqttbytes::v4::{Publish, Subscribe};
    use std::path::Path;

    fn acl() -> Acl {
        let text = "[[sites]]\nid = \"p1\"\nname = \"P1\"\nkind = \"park\"\nplatforms = [\"plat-a\"]\n\n[[sites]]\nid = \"p2\"\nname = \"P2\"\nkind = \"park\"\nplatforms = [\"plat-b\"]\n";
        let cfg = load_str(Path::new("t.toml"), text, Path::new("."))
            .unwrap()
            .config;
        Acl::from_config(&cfg, "safegate")
    }

    /// The one packet `write` encodes, as the guard would take it off the wire.
    fn frame(
        write: impl FnOnce(&mut BytesMut) -> Result<usize, FrameError>,
    ) -> (FixedHeader, Bytes) {
        let mut b = BytesMut::new();
        write(&mut b).unwrap();
        take_frame(&mut b, 1 << 20).unwrap().unwrap()
    }

    fn publish(topic: &str, qos: QoS, pkid: u16) -> (FixedHeader, Bytes) {
        let mut p = Publish::new(topic, qos, "{}");
        p.pkid = pkid;
        frame(|b| p.write(b))
    }

    #[test]
    fn publishes_are_judged_by_the_identitys_rules() {
        let acl = acl();
        let mut a = Session::new(&acl, "plat-a");
        let (fh, f) = publish("safegate/v1/p1/d1/data", QoS::AtLeastOnce, 1);
        assert_eq!(a.inspect(fh, &f), Verdict::Forward);
        let (fh, f) = publish("safegate/v1/p2/d2/data", QoS::AtLeastOnce, 2);
        assert_eq!(
            a.inspect(fh, &f),
            Verdict::Refuse {
                reason: "publish_denied",
                what: "safegate/v1/p2/d2/data".into(),
                answer: encode(|b| PubAck::new(2).write(b)),
            }
        );
        let (fh, f) = publish("safegate/v1/p2/d2/data", QoS::AtMostOnce, 0);
        assert!(matches!(a.inspect(fh, &f), Verdict::Refuse { answer, .. } if answer.is_empty()));
        // The board is the gateway's to write.
        let (fh, f) = publish("safegate/v1/p1/alarms/4", QoS::AtLeastOnce, 3);
        assert!(matches!(a.inspect(fh, &f), Verdict::Refuse { .. }));
        let mut gw = Session::new(&acl, "safegate");
        assert_eq!(gw.inspect(fh, &f), Verdict::Forward);
    }

    #[test]
    fn a_denied_qos2_publish_completes_here_and_only_its_own_pubrel_is_kept() {
        let acl = acl();
        let mut a = Session::new(&acl, "plat-a");
        let (fh, f) = publish("safegate/v1/p2/d2/data", QoS::ExactlyOnce, 9);
        assert!(
            matches!(a.inspect(fh, &f), Verdict::Refuse { answer, .. } if answer == encode(|b| PubRec::new(9).write(b)))
        );
        let (fh, f) = frame(|b| PubRel::new(9).write(b));
        assert_eq!(
            a.inspect(fh, &f),
            Verdict::Answer(encode(|b| PubComp::new(9).write(b)))
        );
        // An allowed QoS 2 publish's PUBREL is the broker's.
        let (fh, f) = publish("safegate/v1/p2/d2/data", QoS::ExactlyOnce, 10);
        let _ = a.inspect(fh, &f);
        let (fh, f) = frame(|b| PubRel::new(11).write(b));
        assert_eq!(a.inspect(fh, &f), Verdict::Forward);
        let (fh, f) = frame(|b| PubRel::new(9).write(b));
        assert_eq!(
            a.inspect(fh, &f),
            Verdict::Forward,
            "9 was completed already"
        );
    }

    #[test]
    fn subscriptions_stay_within_the_read_rules() {
        let acl = acl();
        let mut a = Session::new(&acl, "plat-a");
        let sub = |filters: &[&str]| {
            let mut s = Subscribe::new(filters[0], QoS::AtLeastOnce);
            for f in &filters[1..] {
                s.add(f.to_string(), QoS::AtLeastOnce);
            }
            s.pkid = 5;
            frame(|b| s.write(b))
        };
        let (fh, f) = sub(&["safegate/v1/p1/alarms/+"]);
        assert_eq!(a.inspect(fh, &f), Verdict::Forward);
        let (fh, f) = sub(&["safegate/v1/p1/alarms/+", "safegate/v1/#"]);
        assert_eq!(
            a.inspect(fh, &f),
            Verdict::Refuse {
                reason: "subscribe_denied",
                what: "safegate/v1/#".into(),
                answer: encode(|b| SubAck::new(5, vec![SubscribeReasonCode::Failure; 2]).write(b)),
            }
        );
    }

    #[test]
    fn a_second_connect_or_a_broken_packet_closes() {
        let acl = acl();
        let mut a = Session::new(&acl, "plat-a");
        let (fh, f) = frame(|b| Connect::new("again").write(b));
        assert!(matches!(a.inspect(fh, &f), Verdict::Close(_)));
        // A PUBLISH whose topic length runs past the packet.
        let mut b = BytesMut::from(&[0x30u8, 3, 0, 9, b'a'][..]);
        let (fh, f) = take_frame(&mut b, 1024).unwrap().unwrap();
        assert!(matches!(a.inspect(fh, &f), Verdict::Close(_)));
        // A packet over the size limit is refused before it is read whole.
        let mut b = BytesMut::from(&[0x30u8, 0xff, 0xff, 0x03][..]);
        assert!(take_frame(&mut b, 1024).is_err());
    }
}
