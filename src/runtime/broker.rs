//! The embedded MQTT broker (rumqttd), for the zero-install default and the demo.

use std::collections::HashMap;
use std::net::SocketAddr;

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("the embedded broker cannot listen on {0}: {1} (set mqtt.listen to a free address)")]
    Bind(SocketAddr, std::io::Error),
    #[error("cannot start the embedded broker: {0}")]
    Start(String),
    #[error("the embedded broker's logins: {0}")]
    Auth(String),
}

/// Logins for the embedded broker when sites list platforms: each platform with its password
/// from `SAFEGATE_MQTT_PASSWORD_<ID>`, and the gateway with `mqtt.username` and its password.
/// `None` (anyone may connect) when no site lists a platform.
pub fn logins(cfg: &crate::config::Config) -> Result<Option<HashMap<String, String>>, BrokerError> {
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
    for p in platforms {
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

/// Start rumqttd on `listen`, on its own threads, for the life of the process.
pub fn start_embedded(
    listen: SocketAddr,
    max_payload_bytes: usize,
    auth: Option<HashMap<String, String>>,
) -> Result<(), BrokerError> {
    // rumqttd reports a busy port only in its log; find out first, with a clear message.
    drop(std::net::TcpListener::bind(listen).map_err(|e| BrokerError::Bind(listen, e))?);
    let connections = rumqttd::ConnectionSettings {
        connection_timeout_ms: 60_000,
        // Above the gateway's own limit, so oversize payloads reach us and are counted.
        max_payload_size: max_payload_bytes.saturating_mul(4).max(1 << 20),
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
