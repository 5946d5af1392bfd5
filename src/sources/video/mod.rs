//! Video systems networked by GB/T 28181 (2016, 2022): cameras, NVRs and lower platforms
//! register with the gateway as their upper platform, keep alive and answer catalog queries;
//! the gateway measures their online rate from that signalling alone (no media). See
//! docs/video.md for the rules and docs/research/video.md for the crates.
//!
//! The pure core is here: SIP messages read and replies written (`sip`), digest verification
//! (`digest`), MANSCDP bodies (`manscdp`), the catalog accumulator (`catalog`) and the
//! per-device state machine (`session`), which takes events and the time and returns
//! decisions, doing no I/O (as rumqttc's `state.rs`). `fleet` turns its decisions into the
//! core's events, `endpoint` joins them to the bytes, and `source` holds the tasks: the UDP
//! socket, the TCP listener and the deadline timer.

pub mod catalog;
pub mod config;
pub mod digest;
pub mod endpoint;
pub mod fleet;
pub mod manscdp;
pub mod metrics;
pub mod session;
pub mod sip;
pub mod source;

#[cfg(test)]
mod endpoint_tests;
#[cfg(test)]
mod pipeline_tests;
#[cfg(test)]
mod session_tests;

use crate::core::inventory::InventoryConfig;
use crate::model::Protocol;
use crate::telemetry::{Clock, Metrics};
use config::VideoSettings;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

/// Why the endpoint cannot start, for the operator.
#[derive(Debug, thiserror::Error)]
pub enum VideoError {
    #[error("[video] {key}: environment variable {env:?} is not set; {who} could not register")]
    MissingPassword {
        key: &'static str,
        env: String,
        /// "devices", or the device whose own password it is.
        who: String,
    },
    #[error("[video] listen {addr}: cannot bind ({transport}): {error}")]
    Bind {
        addr: String,
        transport: &'static str,
        error: std::io::Error,
    },
}

/// The GB/T 28181 endpoint, bound, ready to spawn.
pub struct VideoSource {
    endpoint: endpoint::Endpoint,
    tcp: std::net::TcpListener,
    udp: std::net::UdpSocket,
    clock: Clock,
    max_bytes: usize,
    local: SocketAddr,
}

/// The inventory's `protocol = "gb28181"` devices by their `gb_id`.
pub fn known<P>(inv: &InventoryConfig<P>) -> HashMap<String, fleet::Known> {
    inv.devices
        .iter()
        .filter(|d| d.protocol == Protocol::Gb28181)
        .filter_map(|d| {
            let k = fleet::Known {
                site: d.site.clone(),
                device: d.id.clone(),
                system: d.system.clone(),
            };
            Some((d.gb_id.clone()?, k))
        })
        .collect()
}

/// The devices' own passwords, read from `device_password_env`'s variables.
fn own_passwords(settings: &VideoSettings) -> Result<HashMap<String, String>, VideoError> {
    settings
        .device_password_env
        .iter()
        .map(|(id, env)| match std::env::var(env) {
            Ok(pw) => Ok((id.clone(), pw)),
            Err(_) => Err(VideoError::MissingPassword {
                key: "device_password_env",
                env: env.clone(),
                who: format!("device {id}"),
            }),
        })
        .collect()
}

fn bind_error(addr: &str, transport: &'static str) -> impl FnOnce(std::io::Error) -> VideoError {
    let addr = addr.to_string();
    move |error| VideoError::Bind {
        addr,
        transport,
        error,
    }
}

impl VideoSource {
    /// Binds TCP on `listen`, then UDP on the same address and port (the TCP one's, when
    /// `listen` gave port 0).
    pub fn build<P>(
        settings: &VideoSettings,
        inv: &InventoryConfig<P>,
        metrics: &Metrics,
        clock: &Clock,
    ) -> Result<VideoSource, VideoError> {
        let env = settings.password_env.clone().unwrap_or_default();
        let password = std::env::var(&env).map_err(|_| VideoError::MissingPassword {
            key: "password_env",
            env,
            who: "devices".into(),
        })?;
        let own = own_passwords(settings)?;
        let listen = &settings.listen;
        let tcp = std::net::TcpListener::bind(listen).map_err(bind_error(listen, "TCP"))?;
        let local = tcp.local_addr().map_err(bind_error(listen, "TCP"))?;
        let udp = std::net::UdpSocket::bind(local).map_err(bind_error(listen, "UDP"))?;
        for nb in [tcp.set_nonblocking(true), udp.set_nonblocking(true)] {
            nb.map_err(bind_error(listen, "TCP"))?;
        }
        let known = known(inv);
        let ids = known.keys().map(|id| (id.clone(), own.get(id).cloned()));
        let registry = session::Registry::new(settings.timing(), settings.domain(), password, ids);
        let interval = settings.keepalive_s as f64;
        let after = interval * f64::from(settings.keepalive_misses);
        let fleet = fleet::Fleet::new(known, interval, after);
        let m = metrics::VideoMetrics::register(metrics);
        let endpoint = endpoint::Endpoint::new(settings, registry, fleet, m, local);
        Ok(VideoSource {
            endpoint,
            tcp,
            udp,
            clock: clock.clone(),
            max_bytes: settings.max_message_bytes,
            local,
        })
    }

    /// The address bound, UDP and TCP alike (the port when `listen` gave port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }
}

impl super::Source for VideoSource {
    fn name(&self) -> &'static str {
        "video"
    }

    fn spawn(self: Box<Self>, cx: &super::SourceContext) -> Vec<tokio::task::JoinHandle<()>> {
        let (udp, tcp) = match (
            tokio::net::UdpSocket::from_std(self.udp),
            tokio::net::TcpListener::from_std(self.tcp),
        ) {
            (Ok(u), Ok(t)) => (u, t),
            (Err(e), _) | (_, Err(e)) => {
                tracing::error!(error = %e, "the video endpoint could not start");
                return Vec::new();
            }
        };
        tracing::info!(addr = %self.local, "GB/T 28181 video endpoint listening (UDP and TCP)");
        let shared = source::Shared {
            endpoint: Arc::new(tokio::sync::Mutex::new(self.endpoint)),
            events: cx.events.clone(),
            clock: self.clock,
            udp: Arc::new(udp),
            conns: Arc::default(),
            wake: Arc::new(tokio::sync::Notify::new()),
            max_bytes: self.max_bytes,
        };
        vec![
            tokio::spawn(source::run_udp(shared.clone(), cx.shutdown.subscribe())),
            tokio::spawn(source::run_tcp(
                shared.clone(),
                tcp,
                cx.shutdown.subscribe(),
            )),
            tokio::spawn(source::run_timer(shared, cx.shutdown.subscribe())),
        ]
    }
}
