//! The embedded MQTT broker (rumqttd), for the zero-install default and the demo.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("the embedded broker cannot listen on {0}: {1} (set mqtt.listen to a free address)")]
    Bind(SocketAddr, std::io::Error),
    #[error("cannot start the embedded broker: {0}")]
    Start(String),
    #[error("the embedded broker's logins: {0}")]
    Auth(String),
    #[error("the embedded broker's TLS: {0}")]
    Tls(String),
}

/// Logins for the embedded broker when sites list platforms: the gateway with `mqtt.username`
/// and its password, and, when `platforms_too` (false when identities come from client
/// certificates), each platform with its password from `SAFEGATE_MQTT_PASSWORD_<ID>`. `None`
/// (anyone may connect) when no site lists a platform.
pub fn logins(
    cfg: &crate::config::Config,
    platforms_too: bool,
) -> Result<Option<HashMap<String, String>>, BrokerError> {
    let platforms: std::collections::BTreeSet<&String> = cfg
        .inventory
        .sites
        .iter()
        .flat_map(|s| &s.platforms)
        .collect();
    if platforms.is_empty() {
        return Ok(None);
    }
    let user = cfg.mqtt.username.clone().ok_or_else(|| {
        BrokerError::Auth(
            "sites list platforms, so the embedded broker requires logins: set mqtt.username and mqtt.password_env for the gateway".into(),
        )
    })?;
    let gw_pw = match (&cfg.mqtt.password, &cfg.mqtt.password_env) {
        (Some(p), _) => p.clone(),
        (None, Some(v)) => std::env::var(v).map_err(|_| {
            BrokerError::Auth(format!("mqtt.password_env names {v:?}, which is not set"))
        })?,
        (None, None) => {
            return Err(BrokerError::Auth(
                "set mqtt.password_env for the gateway's login".into(),
            ))
        }
    };
    let mut map = HashMap::from([(user, gw_pw)]);
    let mut missing = Vec::new();
    for p in platforms.into_iter().filter(|_| platforms_too) {
        let var = crate::config::broker_acl::password_env(p);
        match std::env::var(&var) {
            Ok(pw) if !pw.is_empty() => {
                map.insert(p.clone(), pw);
            }
            _ => missing.push(format!("{p} ({var})")),
        }
    }
    if !missing.is_empty() {
        return Err(BrokerError::Auth(format!(
            "no password in the environment for platform(s) {}",
            missing.join(", ")
        )));
    }
    Ok(Some(map))
}

/// The embedded broker, started, with its platform-facing port reserved but not yet open.
pub struct Embedded {
    /// rumqttd's internal loopback address, for the gateway's own clients.
    pub internal: SocketAddr,
    listen: SocketAddr,
    /// Bound to `mqtt.listen`, not listening: a platform's connection is refused until the
    /// gate opens, so it cannot publish before the gateway subscribed.
    socket: tokio::net::TcpSocket,
    guard: Arc<super::broker_guard::Guard>,
}

impl Embedded {
    /// Open `mqtt.listen` to platforms once `mqtt` (the gateway's own source) is subscribed;
    /// at most `within`, since without that subscription nothing published would be read.
    pub async fn open_when_subscribed(
        self,
        mqtt: &crate::telemetry::LinkStatus,
        within: std::time::Duration,
    ) -> Result<SocketAddr, BrokerError> {
        if tokio::time::timeout(within, mqtt.wait_connected())
            .await
            .is_err()
        {
            return Err(BrokerError::Start(format!(
                "the gateway's own client did not subscribe to the embedded broker within {} s ({}); platforms are not let in",
                within.as_secs(),
                mqtt.last_error().unwrap_or_else(|| "no error reported".into())
            )));
        }
        let listener = self
            .socket
            .listen(1024)
            .map_err(|e| BrokerError::Bind(self.listen, e))?;
        let addr = listener.local_addr().unwrap_or(self.listen);
        tokio::spawn(super::broker_guard::serve(listener, self.guard));
        Ok(addr)
    }
}

/// Reserve `listen` now (a busy port is reported at start, with a clear message) without
/// accepting anyone yet.
fn reserve_port(listen: SocketAddr) -> Result<tokio::net::TcpSocket, BrokerError> {
    let socket = if listen.is_ipv4() {
        tokio::net::TcpSocket::new_v4()
    } else {
        tokio::net::TcpSocket::new_v6()
    }
    .map_err(|e| BrokerError::Bind(listen, e))?;
    socket
        .set_reuseaddr(true)
        .map_err(|e| BrokerError::Bind(listen, e))?;
    socket
        .bind(listen)
        .map_err(|e| BrokerError::Bind(listen, e))?;
    Ok(socket)
}

/// Start the embedded broker for the life of the process. rumqttd listens on an internal
/// loopback port, where the gateway's own clients connect; the guard (`broker_guard`) serves
/// `mqtt.listen`, enforcing the inventory's ACL when sites list platforms (and only relaying
/// otherwise). `mqtt.listen` is reserved here and opened by `Embedded::open_when_subscribed`.
pub async fn start_embedded(
    cfg: &crate::config::Config,
    metrics: Arc<crate::telemetry::Metrics>,
    audit: Arc<crate::sinks::audit::AuditLog>,
) -> Result<Embedded, BrokerError> {
    let listen = cfg.mqtt.listen;
    // Above the gateway's own limit, so oversize payloads reach us and are counted.
    let max_packet = cfg.mqtt.max_payload_bytes.saturating_mul(4).max(1 << 20);
    let tls = tls_acceptor(&cfg.mqtt)?;
    let by_certificate = cfg.mqtt.listen_tls_client_ca_file.is_some();
    let logins = logins(cfg, !by_certificate)?;
    let socket = reserve_port(listen)?;
    let internal = std::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .and_then(|l| l.local_addr())
        .map_err(|e| BrokerError::Start(format!("no free loopback port for rumqttd: {e}")))?;
    let mut secret = [0u8; 32];
    getrandom::getrandom(&mut secret)
        .map_err(|e| BrokerError::Start(format!("the system's random source failed: {e}")))?;
    let guard_password = hex::encode(secret);
    let gateway_user = cfg.mqtt.username.clone().unwrap_or_default();
    let gateway_password = logins.as_ref().and_then(|l| l.get(&gateway_user).cloned());
    // With platforms, the internal port takes the gateway's login and the guard's only.
    let internal_logins = gateway_password.as_ref().map(|pw| {
        HashMap::from([
            (gateway_user.clone(), pw.clone()),
            (
                super::broker_guard::GUARD_USER.to_string(),
                guard_password.clone(),
            ),
        ])
    });
    run_rumqttd(internal, max_packet, internal_logins)?;
    use super::broker_guard::Identify;
    let identify = match logins {
        None => Identify::Open,
        Some(_) if by_certificate => Identify::Certificates,
        Some(l) => Identify::Logins(l),
    };
    let guard = super::broker_guard::Guard {
        acl: crate::config::broker_acl::Acl::from_config(cfg, &gateway_user),
        identify,
        gateway_password,
        guard_password,
        tls,
        upstream: internal,
        max_packet_bytes: max_packet,
        max_connections: cfg.mqtt.listen_max_connections,
        metrics,
        audit,
        warn: crate::telemetry::RateLimitedLog::new(10_000),
    };
    Ok(Embedded {
        internal,
        listen,
        socket,
        guard: Arc::new(guard),
    })
}

/// The embedded broker's TLS server configuration, from `mqtt.listen_tls_*`; a file that
/// cannot be read or used stops the start, naming it.
fn tls_acceptor(
    m: &crate::config::MqttSettings,
) -> Result<Option<tokio_rustls::TlsAcceptor>, BrokerError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let (Some(cert), Some(key)) = (&m.listen_tls_cert_file, &m.listen_tls_key_file) else {
        return Ok(None);
    };
    let err = |what: &std::path::Path, e: &dyn std::fmt::Display| {
        BrokerError::Tls(format!("{}: {e}", what.display()))
    };
    let read_certs = |path: &std::path::Path| -> Result<Vec<CertificateDer<'static>>, BrokerError> {
        let certs = CertificateDer::pem_file_iter(path)
            .map_err(|e| err(path, &e))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| err(path, &e))?;
        if certs.is_empty() {
            return Err(err(path, &"no certificate in the file"));
        }
        Ok(certs)
    };
    let chain = read_certs(cert)?;
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| err(key, &e))?;
    let builder = rustls::ServerConfig::builder();
    let builder = match &m.listen_tls_client_ca_file {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in read_certs(ca)? {
                roots.add(c).map_err(|e| err(ca, &e))?;
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder(Arc::new(roots))
                .build()
                .map_err(|e| err(ca, &e))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let config = builder
        .with_single_cert(chain, key)
        .map_err(|e| err(cert, &e))?;
    Ok(Some(tokio_rustls::TlsAcceptor::from(Arc::new(config))))
}

/// rumqttd on `listen`, on its own threads, for the life of the process.
fn run_rumqttd(
    listen: SocketAddr,
    max_packet: usize,
    auth: Option<HashMap<String, String>>,
) -> Result<(), BrokerError> {
    let connections = rumqttd::ConnectionSettings {
        connection_timeout_ms: 60_000,
        max_payload_size: max_packet,
        max_inflight_count: 500,
        auth,
        external_auth: None,
        dynamic_filters: true,
    };
    let server = rumqttd::ServerSettings {
        name: "safegate-embedded".into(),
        listen,
        tls: None,
        next_connection_delay_ms: 1,
        connections,
    };
    let config = rumqttd::Config {
        id: 0,
        router: rumqttd::RouterConfig {
            max_connections: 10_010,
            max_outgoing_packet_count: 1000,
            max_segment_size: 100 << 20,
            max_segment_count: 10,
            ..Default::default()
        },
        v4: Some(HashMap::from([("1".to_string(), server)])),
        ..Default::default()
    };
    let mut broker = rumqttd::Broker::new(config);
    std::thread::Builder::new()
        .name("embedded-broker".into())
        .spawn(move || {
            if let Err(e) = broker.start() {
                tracing::error!(error = %e, "embedded broker stopped");
            }
        })
        .map_err(|e| BrokerError::Start(e.to_string()))?;
    Ok(())
}
