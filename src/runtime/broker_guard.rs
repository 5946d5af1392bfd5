//! The embedded broker's guard. rumqttd checks a login at connect but cannot restrict a login
//! to topics, so when sites list platforms, clients connect to this guard instead. It checks
//! each CONNECT against the logins, then every PUBLISH and SUBSCRIBE against the inventory's
//! ACL (the rules `safegate broker-acl` gives Mosquitto), and relays what passes, byte for
//! byte, to rumqttd on an internal loopback port that accepts only the gateway's and the
//! guard's own logins. A platform therefore cannot publish for another park, nor forge the
//! alarm board, on the embedded broker either.
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
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// The login the guard itself uses towards rumqttd for every platform it lets through.
pub const GUARD_USER: &str = "safegate-guard";

/// A client must send CONNECT within this time, as rumqttd's own connection timeout.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Frames queued towards one client; when full, reading from the broker waits (block).
const CLIENT_QUEUE: usize = 64;

pub struct Guard {
    pub acl: Acl,
    /// Identity → password: the gateway and every platform.
    pub logins: HashMap<String, String>,
    /// The guard's own password towards rumqttd.
    pub guard_password: String,
    /// rumqttd's internal listener.
    pub upstream: SocketAddr,
    pub max_packet_bytes: usize,
    pub metrics: Arc<Metrics>,
    pub audit: Arc<AuditLog>,
}

impl Guard {
    fn refuse(&self, reason: &'static str, who: &str, peer: SocketAddr, what: &str) {
        self.metrics
            .broker_refused
            .get_or_create(&ReasonLabel { reason })
            .inc();
        tracing::warn!(reason, who, peer = %peer, what = %crate::core::event::shorten(what, 320), "MQTT refused by the embedded broker's guard");
        self.audit.mqtt_refused(reason, who, &peer.to_string());
    }

    /// The identity of a login, if its password matches (compared in constant time).
    fn authenticate(&self, connect: &Connect) -> Option<String> {
        let login = connect.login.as_ref()?;
        let want = self.logins.get(&login.username)?;
        bool::from(want.as_bytes().ct_eq(login.password.as_bytes())).then(|| login.username.clone())
    }
}

/// Serve clients on `listener` for the life of the process.
pub async fn serve(listener: TcpListener, guard: Arc<Guard>) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let guard = guard.clone();
                tokio::spawn(async move {
                    if let Err(e) = connection(stream, peer, guard).await {
                        tracing::debug!(peer = %peer, error = %e, "guarded MQTT connection ended");
                    }
                });
            }
            Err(e) => {
                // Out of file descriptors and the like: wait rather than spin.
                tracing::warn!(error = %e, "the embedded broker's guard cannot accept");
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
}

/// Read from `r` until `buf` holds one whole packet; return its fixed header. `None` at a
/// clean end of stream between packets.
async fn next_frame(
    r: &mut OwnedReadHalf,
    buf: &mut BytesMut,
    max: usize,
) -> Result<Option<FixedHeader>, ConnError> {
    loop {
        match check(buf.iter(), max) {
            Ok(fh) => return Ok(Some(fh)),
            Err(FrameError::InsufficientBytes(_)) => {}
            Err(e) => return Err(ConnError::Frame(e)),
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

fn encode(write: impl FnOnce(&mut BytesMut) -> Result<usize, FrameError>) -> Bytes {
    let mut b = BytesMut::new();
    // These packets are built from values that fit; an error would leave `b` empty.
    let _ = write(&mut b);
    b.freeze()
}

async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    guard: Arc<Guard>,
) -> Result<(), ConnError> {
    let _ = stream.set_nodelay(true);
    let (mut cr, mut cw) = stream.into_split();
    let max = guard.max_packet_bytes;
    let mut buf = BytesMut::with_capacity(4096);
    let fh = tokio::time::timeout(CONNECT_TIMEOUT, next_frame(&mut cr, &mut buf, max))
        .await
        .map_err(|_| ConnError::ConnectTimeout(CONNECT_TIMEOUT))??
        .ok_or(ConnError::NotConnect)?;
    if !matches!(fh.packet_type(), Ok(PacketType::Connect)) {
        guard.refuse("not_connect_first", "-", peer, "first packet");
        return Err(ConnError::NotConnect);
    }
    let frame = buf.split_to(fh.frame_length()).freeze();
    let mut connect = Connect::read(fh, frame).map_err(ConnError::Frame)?;
    let Some(who) = guard.authenticate(&connect) else {
        let user = connect
            .login
            .as_ref()
            .map_or("-".to_string(), |l| l.username.clone());
        guard.refuse("bad_login", &user, peer, &connect.client_id);
        let code = if connect.login.is_some() {
            ConnectReturnCode::BadUserNamePassword
        } else {
            ConnectReturnCode::NotAuthorized
        };
        let _ = cw
            .write_all(&encode(|b| ConnAck::new(code, false).write(b)))
            .await;
        return Err(ConnError::Login);
    };
    // Towards rumqttd, everyone but the gateway goes in under the guard's own login, so the
    // internal port does not accept a platform's password without the guard in between.
    if who != guard.acl.gateway_user {
        connect.set_login(GUARD_USER, guard.guard_password.clone());
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

/// Client → broker: check each packet, forward what is allowed unchanged.
async fn relay_up(
    cr: &mut OwnedReadHalf,
    mut buf: BytesMut,
    uw: &mut OwnedWriteHalf,
    to_client: &mpsc::Sender<Bytes>,
    guard: &Guard,
    who: &str,
    peer: SocketAddr,
) -> Result<(), ConnError> {
    let max = guard.max_packet_bytes;
    // QoS 2 publishes that were denied: their PUBREL is answered here, not by the broker.
    let mut denied_qos2: HashSet<u16> = HashSet::new();
    while let Some(fh) = next_frame(cr, &mut buf, max).await? {
        let frame = buf.split_to(fh.frame_length()).freeze();
        let reply = match fh.packet_type() {
            Ok(PacketType::Publish) => {
                let p = Publish::read(fh, frame.clone()).map_err(ConnError::Frame)?;
                if guard.acl.may_publish(who, &p.topic) {
                    None
                } else {
                    guard.refuse("publish_denied", who, peer, &p.topic);
                    match p.qos {
                        QoS::AtMostOnce => Some(Bytes::new()),
                        QoS::AtLeastOnce => Some(encode(|b| PubAck::new(p.pkid).write(b))),
                        QoS::ExactlyOnce => {
                            denied_qos2.insert(p.pkid);
                            Some(encode(|b| PubRec::new(p.pkid).write(b)))
                        }
                    }
                }
            }
            Ok(PacketType::PubRel) if !denied_qos2.is_empty() => {
                let r = PubRel::read(fh, frame.clone()).map_err(ConnError::Frame)?;
                denied_qos2
                    .remove(&r.pkid)
                    .then(|| encode(|b| PubComp::new(r.pkid).write(b)))
            }
            Ok(PacketType::Subscribe) => {
                let s = Subscribe::read(fh, frame.clone()).map_err(ConnError::Frame)?;
                match s
                    .filters
                    .iter()
                    .find(|f| !guard.acl.may_subscribe(who, &f.path))
                {
                    None => None,
                    Some(f) => {
                        // One filter out of bounds refuses the whole request: forwarding
                        // part of it would need the broker's SUBACK rewritten.
                        guard.refuse("subscribe_denied", who, peer, &f.path);
                        let codes = vec![SubscribeReasonCode::Failure; s.filters.len()];
                        Some(encode(|b| SubAck::new(s.pkid, codes).write(b)))
                    }
                }
            }
            Ok(PacketType::Connect) => return Err(ConnError::NotConnect),
            _ => None,
        };
        match reply {
            None => uw.write_all(&frame).await?,
            Some(r) if r.is_empty() => {}
            Some(r) => {
                if to_client.send(r).await.is_err() {
                    return Ok(());
                }
            }
        }
    }
    Ok(())
}

/// Broker → client: whole packets only, so the guard's own replies never split one.
async fn relay_down(
    mut ur: OwnedReadHalf,
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

async fn write_client(mut cw: OwnedWriteHalf, mut rx: mpsc::Receiver<Bytes>) {
    while let Some(b) = rx.recv().await {
        if cw.write_all(&b).await.is_err() {
            break;
        }
    }
    let _ = cw.shutdown().await;
}
