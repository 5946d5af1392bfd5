//! The embedded MQTT broker (rumqttd), for the zero-install default and the demo.

use std::collections::HashMap;
use std::net::SocketAddr;

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("the embedded broker cannot listen on {0}: {1} (set mqtt.listen to a free address)")]
    Bind(SocketAddr, std::io::Error),
    #[error("cannot start the embedded broker: {0}")]
    Start(String),
}

/// Start rumqttd on `listen`, on its own threads, for the life of the process.
pub fn start_embedded(listen: SocketAddr, max_payload_bytes: usize) -> Result<(), BrokerError> {
    // rumqttd reports a busy port only in its log; find out first, with a clear message.
    drop(std::net::TcpListener::bind(listen).map_err(|e| BrokerError::Bind(listen, e))?);
    let connections = rumqttd::ConnectionSettings {
        connection_timeout_ms: 60_000,
        // Above the gateway's own limit, so oversize payloads reach us and are counted.
        max_payload_size: max_payload_bytes.saturating_mul(4).max(1 << 20),
        max_inflight_count: 500,
        auth: None,
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
