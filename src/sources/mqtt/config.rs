//! `[mqtt]`: the broker the source subscribes to (or the embedded one it starts), TLS files,
//! logins and the bounds on what a message may hold. A key left out takes its value from
//! `Default` below, the one place the defaults are written.

use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct MqttSettings {
    /// `mqtt://host:port` or `mqtts://host:port`. Default `mqtt://127.0.0.1:1883`.
    pub url: String,
    /// Stable client id: the broker keeps our persistent session under it. Default `safegate`.
    pub client_id: String,
    pub username: Option<String>,
    /// Password in the file; prefer `password_env`.
    pub password: Option<String>,
    /// Name of the environment variable that holds the password.
    pub password_env: Option<String>,
    /// Default `safegate/v1`.
    pub topic_prefix: String,
    /// Start the embedded broker (rumqttd) on `listen` and connect to it. Default false.
    pub embedded: bool,
    /// Address of the embedded broker. Default `127.0.0.1:1883`.
    pub listen: SocketAddr,
    /// Subscription QoS, 0 or 1. Default 1.
    pub qos: u8,
    /// When a QoS 1 message is acknowledged to the broker: `after_commit` (default), once every
    /// reading in it is committed to the outbox and the state journal, so a crash never loses
    /// it; or `on_receive`, at once (lower latency, but a crash loses what was in memory).
    pub ack: AckPolicy,
    /// Larger payloads are rejected (`payload_too_large`). Default 262144.
    pub max_payload_bytes: usize,
    /// Longer batches are rejected whole (`batch_too_large`). Default 10000.
    pub max_batch_len: usize,
    /// Readings with more channels are rejected (`too_many_channels`). Default 64.
    pub max_channels: usize,
    /// Longest topic level (site, device, alarm id) and acknowledgement `by`, bytes; at most
    /// 128, the configuration's own id limit. Default 128.
    pub max_id_bytes: usize,
    /// Longest channel name, bytes. Default 64.
    pub max_channel_name_bytes: usize,
    /// Longest acknowledgement `note`, bytes. Default 2000.
    pub max_note_bytes: usize,
    /// Default 30 s.
    pub keep_alive_s: u64,
    /// Reconnect back-off: first delay. Default 200 ms.
    pub reconnect_min_ms: u64,
    /// Reconnect back-off: cap. Default 30000 ms.
    pub reconnect_max_ms: u64,
    /// `mqtts://`: the CA that signed the broker's certificate (PEM); default: the system's
    /// web roots.
    pub ca_file: Option<PathBuf>,
    /// `mqtts://` with mutual TLS: the gateway's client certificate and key (PEM).
    pub client_cert_file: Option<PathBuf>,
    pub client_key_file: Option<PathBuf>,
    /// The embedded broker serves MQTT over TLS on `listen` with this certificate chain and
    /// key (PEM). Default: plain TCP.
    pub listen_tls_cert_file: Option<PathBuf>,
    pub listen_tls_key_file: Option<PathBuf>,
    /// With TLS on the embedded broker: require a client certificate signed by this CA (PEM).
    /// Its common name is then the client's identity (a site's platform, or `username` for
    /// the gateway), as Mosquitto's `use_identity_as_username`. Default: no client certificate.
    pub listen_tls_client_ca_file: Option<PathBuf>,
    /// The embedded broker's guard serves at most this many connections at once; more are
    /// closed at accept (`too_many_connections`). 1 to 10000 (rumqttd's own limit). Default 10000.
    pub listen_max_connections: usize,
    /// With `[cluster]`: the instances subscribe as one shared-subscription group,
    /// `$share/<shared_group>/<filter>`, and the broker hands each message to one of them.
    /// Default `safegate`.
    pub shared_group: String,
    /// Set by the runtime in cluster mode (not a key): subscribe through the shared group.
    #[serde(skip)]
    pub shared: bool,
}

impl Default for MqttSettings {
    fn default() -> Self {
        Self {
            url: "mqtt://127.0.0.1:1883".into(),
            client_id: "safegate".into(),
            username: None,
            password: None,
            password_env: None,
            topic_prefix: "safegate/v1".into(),
            embedded: false,
            listen: SocketAddr::from(([127, 0, 0, 1], 1883)),
            qos: 1,
            ack: AckPolicy::AfterCommit,
            max_payload_bytes: 256 * 1024,
            max_batch_len: 10_000,
            max_channels: 64,
            max_id_bytes: 128,
            max_channel_name_bytes: 64,
            max_note_bytes: 2000,
            keep_alive_s: 30,
            reconnect_min_ms: 200,
            reconnect_max_ms: 30_000,
            ca_file: None,
            client_cert_file: None,
            client_key_file: None,
            listen_tls_cert_file: None,
            listen_tls_key_file: None,
            listen_tls_client_ca_file: None,
            listen_max_connections: 10_000,
            shared_group: "safegate".into(),
            shared: false,
        }
    }
}

/// See `mqtt.ack`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AckPolicy {
    #[default]
    AfterCommit,
    OnReceive,
}

impl MqttSettings {
    /// The section's own rules; `err(key, message)` collects a problem. Rules across
    /// sections (logins against the sites' platforms) are the configuration's.
    pub fn problems(&self, err: &mut dyn FnMut(&str, String)) {
        self.url_problems(err);
        self.tls_problems(err);
        self.bound_problems(err);
        if self.shared_group.is_empty() || self.shared_group.contains(['/', '+', '#']) {
            let m =
                "must be a non-empty name without '/', '+' or '#' (a shared subscription's group)";
            err("mqtt.shared_group", m.into());
        }
        if self.client_id.is_empty() {
            err("mqtt.client_id", "must not be empty".into());
        }
        let prefix = &self.topic_prefix;
        if prefix.is_empty() || prefix.contains(['+', '#']) || prefix.ends_with('/') {
            err(
                "mqtt.topic_prefix",
                format!(
                    "{prefix:?} must be non-empty, without wildcards and without a trailing '/'"
                ),
            );
        }
        if self.qos > 1 {
            err("mqtt.qos", format!("{} is not 0 or 1", self.qos));
        }
        if self.password.is_some() && self.password_env.is_some() {
            err(
                "mqtt.password",
                "give either password or password_env, not both".into(),
            );
        }
    }

    fn url_problems(&self, err: &mut dyn FnMut(&str, String)) {
        match url::Url::parse(&self.url) {
            Ok(u) if matches!(u.scheme(), "mqtt" | "mqtts") && u.host_str().is_some() => {}
            Ok(u) => err(
                "mqtt.url",
                format!(
                    "{:?} must look like mqtt://host:port or mqtts://host:port (scheme {:?})",
                    self.url,
                    u.scheme()
                ),
            ),
            Err(e) => err("mqtt.url", format!("{:?} is not a URL: {e}", self.url)),
        }
    }

    fn tls_problems(&self, err: &mut dyn FnMut(&str, String)) {
        if self.client_cert_file.is_some() != self.client_key_file.is_some() {
            err(
                "mqtt.client_cert_file",
                "give both client_cert_file and client_key_file, or neither".into(),
            );
        }
        if self.client_cert_file.is_some() && self.ca_file.is_none() {
            err(
                "mqtt.ca_file",
                "a client certificate needs ca_file, the CA of the broker's certificate".into(),
            );
        }
        if (self.ca_file.is_some() || self.client_cert_file.is_some())
            && !self.url.starts_with("mqtts://")
        {
            err(
                "mqtt.ca_file",
                format!(
                    "TLS files are set but mqtt.url {:?} is not mqtts://",
                    self.url
                ),
            );
        }
        if self.listen_tls_cert_file.is_some() != self.listen_tls_key_file.is_some() {
            err(
                "mqtt.listen_tls_cert_file",
                "give both listen_tls_cert_file and listen_tls_key_file, or neither".into(),
            );
        }
        if self.listen_tls_client_ca_file.is_some() && self.listen_tls_cert_file.is_none() {
            err(
                "mqtt.listen_tls_client_ca_file",
                "client certificates need TLS: set listen_tls_cert_file and listen_tls_key_file"
                    .into(),
            );
        }
        if !self.embedded
            && (self.listen_tls_cert_file.is_some()
                || self.listen_tls_key_file.is_some()
                || self.listen_tls_client_ca_file.is_some())
        {
            err(
                "mqtt.listen_tls_cert_file",
                "the listen_tls_* settings are for the embedded broker (mqtt.embedded = true)"
                    .into(),
            );
        }
    }

    fn bound_problems(&self, err: &mut dyn FnMut(&str, String)) {
        if !(1..=10_000).contains(&self.listen_max_connections) {
            err(
                "mqtt.listen_max_connections",
                format!(
                    "{} is not between 1 and 10000 (the embedded broker's limit)",
                    self.listen_max_connections
                ),
            );
        }
        if self.max_payload_bytes == 0 || self.max_batch_len == 0 || self.max_channels == 0 {
            err(
                "mqtt.max_payload_bytes",
                "max_payload_bytes, max_batch_len and max_channels must be positive".into(),
            );
        }
        if self.reconnect_min_ms == 0 || self.reconnect_min_ms > self.reconnect_max_ms {
            err(
                "mqtt.reconnect_min_ms",
                "must be positive and not above reconnect_max_ms".into(),
            );
        }
        for (k, v, max) in [
            ("mqtt.max_id_bytes", self.max_id_bytes, 128),
            (
                "mqtt.max_channel_name_bytes",
                self.max_channel_name_bytes,
                1024,
            ),
            ("mqtt.max_note_bytes", self.max_note_bytes, 65_536),
        ] {
            if !(1..=max).contains(&v) {
                err(k, format!("{v} is not in 1..={max}"));
            }
        }
    }
}
