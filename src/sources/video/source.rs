//! The endpoint's tasks: the UDP socket, the TCP listener and its connections, and the
//! deadline timer (mini-redis's `sleep_until` + `Notify` shape). They move bytes to and from
//! the [`Endpoint`], which decides everything, and pass its events to the core in order.

use super::endpoint::{Endpoint, Output};
use super::session::Link;
use super::sip::{self, Frame};
use crate::core::SourceEvent;
use crate::telemetry::Clock;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{broadcast, mpsc, Mutex, Notify};

/// Writers of the open TCP connections, by number.
type Conns = Arc<std::sync::Mutex<HashMap<u64, mpsc::Sender<Vec<u8>>>>>;

/// What every task shares.
#[derive(Clone)]
pub struct Shared {
    pub endpoint: Arc<Mutex<Endpoint>>,
    pub events: mpsc::Sender<SourceEvent>,
    pub clock: Clock,
    pub udp: Arc<UdpSocket>,
    pub conns: Conns,
    /// Woken when an input may have moved the next deadline.
    pub wake: Arc<Notify>,
    pub max_bytes: usize,
}

impl Shared {
    /// Run `f` on the endpoint at the clock's now, pass its events to the core (under the
    /// lock, so events of different tasks reach the core in time order), then send what it
    /// decided. Returns its reply.
    async fn with(&self, f: impl FnOnce(&mut Endpoint, i64) -> Output) -> Option<Vec<u8>> {
        let out = {
            let mut ep = self.endpoint.lock().await;
            let out = f(&mut ep, self.clock.now_ms());
            for e in out.events {
                if self.events.send(e).await.is_err() {
                    break;
                }
            }
            Output {
                events: Vec::new(),
                ..out
            }
        };
        self.wake.notify_one();
        for (link, bytes) in out.requests {
            self.send(link, bytes).await;
        }
        out.reply
    }

    async fn send(&self, link: Link, bytes: Vec<u8>) {
        match link {
            Link::Udp(peer) => {
                if let Err(e) = self.udp.send_to(&bytes, peer).await {
                    tracing::debug!(%peer, error = %e, "a video datagram could not be sent");
                }
            }
            Link::Tcp { conn, .. } => {
                let tx = self.conns.lock().ok().and_then(|c| c.get(&conn).cloned());
                if let Some(tx) = tx {
                    let _ = tx.send(bytes).await;
                }
            }
        }
    }
}

/// Datagrams in, replies out to where they came from.
pub async fn run_udp(s: Shared, mut stop: broadcast::Receiver<()>) {
    let mut buf = vec![0u8; s.max_bytes.saturating_add(1).max(65_536)];
    loop {
        let got = tokio::select! {
            r = s.udp.recv_from(&mut buf) => r,
            _ = stop.recv() => return,
        };
        let (n, peer) = match got {
            Ok(x) => x,
            Err(e) => {
                // ICMP port unreachable from a gone peer shows here on some systems.
                tracing::debug!(error = %e, "video UDP receive");
                continue;
            }
        };
        let bytes = buf[..n].to_vec();
        if let Some(reply) = s.with(|ep, now| ep.datagram(&bytes, peer, now)).await {
            s.send(Link::Udp(peer), reply).await;
        }
    }
}

/// Connections accepted, each served by its own task.
pub async fn run_tcp(s: Shared, listener: TcpListener, mut stop: broadcast::Receiver<()>) {
    let next = AtomicU64::new(1);
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = stop.recv() => return,
        };
        match accepted {
            Ok((stream, peer)) => {
                let conn = next.fetch_add(1, Ordering::Relaxed);
                tokio::spawn(serve_conn(
                    s.clone(),
                    stream,
                    peer,
                    conn,
                    stop.resubscribe(),
                ));
            }
            Err(e) => tracing::warn!(error = %e, "video TCP accept"),
        }
    }
}

async fn serve_conn(
    s: Shared,
    stream: TcpStream,
    peer: SocketAddr,
    conn: u64,
    mut stop: broadcast::Receiver<()>,
) {
    let (mut rd, mut wr) = stream.into_split();
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(64);
    if let Ok(mut c) = s.conns.lock() {
        c.insert(conn, tx.clone());
    }
    let writer = tokio::spawn(async move {
        while let Some(bytes) = rx.recv().await {
            if wr.write_all(&bytes).await.is_err() {
                return;
            }
        }
    });
    let mut buf: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; 16 * 1024];
    'read: loop {
        let n = tokio::select! {
            r = rd.read(&mut chunk) => r.unwrap_or(0),
            _ = stop.recv() => 0,
        };
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
        loop {
            match sip::frame(&buf, s.max_bytes) {
                Ok(Frame::Incomplete) => break,
                Ok(Frame::Ping(k)) => {
                    buf.drain(..k);
                }
                Ok(Frame::Message(k)) => {
                    let msg: Vec<u8> = buf.drain(..k).collect();
                    let reply = s.with(|ep, now| ep.stream(&msg, conn, peer, now)).await;
                    if let Some(reply) = reply {
                        let _ = tx.send(reply).await;
                    }
                }
                Err(e) => {
                    // A stream that cannot be framed cannot be resynchronised: closed.
                    s.with(|ep, now| ep.unframed(&e, conn, peer, now)).await;
                    break 'read;
                }
            }
        }
    }
    if let Ok(mut c) = s.conns.lock() {
        c.remove(&conn);
    }
    drop(tx);
    let _ = writer.await;
    s.with(|ep, now| ep.closed(conn, peer, now)).await;
}

/// Sleeps until the registry's next deadline (or until an input moves it), then applies the
/// deadlines reached.
pub async fn run_timer(s: Shared, mut stop: broadcast::Receiver<()>) {
    loop {
        let next = s.endpoint.lock().await.next_deadline();
        tokio::select! {
            _ = async {
                match next {
                    Some(at) => s.clock.sleep_until(at).await,
                    None => std::future::pending().await,
                }
            } => {
                s.with(|ep, now| ep.tick_until(now)).await;
            }
            _ = s.wake.notified() => {}
            _ = stop.recv() => return,
        }
    }
}
