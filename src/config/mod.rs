//! Configuration: the TOML contract (`safegate.toml` plus included inventory files).
//!
//! Every struct denies unknown keys so that a typo in a field engineer's file is an error
//! with a location, never a silently ignored setting. Defaults are documented on each field
//! and in `docs/configuration.md`.

pub mod broker_acl;
mod load;
mod validate;

pub use crate::core::alarms::config as alarms;
pub use crate::core::indicators::config::{IndicatorSettings, TargetConfig};
pub use crate::core::inventory::{EnterpriseConfig, SiteConfig, SystemConfig, ZoneConfig};
pub use crate::model::{
    parse_window, DeviceKind, OnDamage, PlatformStatus, Protocol, Role, SiteKind, SiteStatus,
    SystemKind, UnitStatus,
};
pub use crate::sources::modbus::config as modbus;
pub use crate::sources::modbus::config::ModbusConfig;
pub use crate::sources::mqtt::config::{AckPolicy, MqttSettings};
pub use load::{load, load_str, ConfigError, LoadedConfig};

/// A device as the inventory files declare it, with its Modbus section typed.
pub type DeviceConfig = crate::core::inventory::DeviceConfig<ModbusConfig>;
/// The inventory part, which may also stand alone in an included file.
pub type InventoryConfig = crate::core::inventory::InventoryConfig<ModbusConfig>;

use serde::Deserialize;
use std::net::SocketAddr;
use std::path::PathBuf;

/// The whole configuration after includes are merged.
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// Glob patterns, relative to the main file, of inventory files to merge in.
    pub include: Vec<String>,
    pub gateway: GatewaySettings,
    pub mqtt: MqttSettings,
    /// No `[store]` section: the gateway runs without a store and says so at start.
    pub store: Option<StoreSettings>,
    pub outbox: OutboxSettings,
    pub api: ApiSettings,
    pub indicators: IndicatorSettings,
    pub targets: Vec<TargetConfig>,
    pub alarms: alarms::AlarmSettings,
    /// API bearer tokens (`[[tokens]]`); none: the API is open, on loopback only.
    pub tokens: Vec<TokenConfig>,
    pub inventory: InventoryConfig,
}

/// The main file as written. The inventory arrays are spelled out rather than flattened so
/// that toml reports unknown keys with their line and column.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct MainFile {
    #[serde(default)]
    include: Vec<String>,
    #[serde(default)]
    gateway: GatewaySettings,
    #[serde(default)]
    mqtt: MqttSettings,
    store: Option<StoreSettings>,
    #[serde(default)]
    outbox: OutboxSettings,
    #[serde(default)]
    api: ApiSettings,
    #[serde(default)]
    indicators: IndicatorSettings,
    #[serde(default)]
    targets: Vec<TargetConfig>,
    #[serde(default)]
    alarms: alarms::AlarmSettings,
    #[serde(default)]
    tokens: Vec<TokenConfig>,
    #[serde(default)]
    sites: Vec<SiteConfig>,
    #[serde(default)]
    enterprises: Vec<EnterpriseConfig>,
    #[serde(default)]
    zones: Vec<ZoneConfig>,
    #[serde(default)]
    systems: Vec<SystemConfig>,
    #[serde(default)]
    devices: Vec<DeviceConfig>,
}

impl From<MainFile> for Config {
    fn from(m: MainFile) -> Config {
        Config {
            include: m.include,
            gateway: m.gateway,
            mqtt: m.mqtt,
            store: m.store,
            outbox: m.outbox,
            api: m.api,
            indicators: m.indicators,
            targets: m.targets,
            alarms: m.alarms,
            tokens: m.tokens,
            inventory: InventoryConfig {
                sites: m.sites,
                enterprises: m.enterprises,
                zones: m.zones,
                systems: m.systems,
                devices: m.devices,
            },
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewaySettings {
    /// Directory for the gateway's own state (transition journal). Default `var/safegate`.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// Readings stamped further than this in the future are rejected. Default 300 s.
    #[serde(default = "default_future_skew")]
    pub max_future_skew_s: u64,
    /// How many recent rejections `GET /api/v1/rejections` keeps. Default 200.
    #[serde(default = "default_recent_rejections")]
    pub recent_rejections: usize,
    /// What to do at start when `state.db` or `outbox.db` under `data_dir` is damaged:
    /// `refuse` to start (default), or `move_aside` (rename it `<file>.damaged-<ms>`, keep it,
    /// start a new one). Neither ever deletes the file.
    #[serde(default)]
    pub on_damaged_file: OnDamage,
}

impl Default for GatewaySettings {
    fn default() -> Self {
        Self {
            data_dir: default_data_dir(),
            max_future_skew_s: default_future_skew(),
            recent_rejections: default_recent_rejections(),
            on_damaged_file: OnDamage::Refuse,
        }
    }
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("var/safegate")
}
fn default_future_skew() -> u64 {
    300
}
fn default_recent_rejections() -> usize {
    200
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreSettings {
    /// InfluxDB 2 base URL, e.g. `http://127.0.0.1:8086`.
    pub url: String,
    pub org: String,
    pub bucket: String,
    /// Name of the environment variable holding the API token (empty or unset: no token).
    pub token_env: Option<String>,
    /// Points per write request. Default 5000.
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// Accepted so older files load; unused since the outbox (the forwarder writes what is
    /// committed at once). Default 1000 ms.
    #[serde(default = "default_flush_ms")]
    pub flush_interval_ms: u64,
    /// Records held in memory on their way to the outbox commit. When full, readings wait
    /// (back-pressure to the sources); indicator snapshots and audit copies are dropped and
    /// counted (both are recomputable or kept elsewhere). Default 200000.
    #[serde(default = "default_queue")]
    pub queue_capacity: usize,
    /// Cadence of site and region indicator snapshots. Default 60 s.
    #[serde(default = "default_indicator_interval")]
    pub indicator_interval_s: u64,
    /// Per-request timeout. Default 10000 ms.
    #[serde(default = "default_store_timeout")]
    pub timeout_ms: u64,
}

/// `[outbox]`: the durable queue on disk between the core and the store (`data_dir/outbox.db`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutboxSettings {
    /// Disk budget for pending line protocol, bytes. When it is reached the gateway stops
    /// acknowledging MQTT messages and pauses Modbus polling until the store drains the
    /// backlog; nothing is dropped. Default 1073741824 (1 GiB).
    #[serde(default = "default_outbox_bytes")]
    pub max_bytes: u64,
    /// Group commit: records are committed (one fsync) at least this often while they arrive;
    /// an MQTT acknowledgement waits for its commit. Default 50 ms.
    #[serde(default = "default_commit_ms")]
    pub commit_interval_ms: u64,
    /// Free-space watermark on the filesystem of `data_dir`: below it the gateway holds MQTT
    /// acknowledgements and pauses Modbus polling, as at the budget. The floor in effect is
    /// the smaller of this and `min_free_percent` of the filesystem. Default 268435456 (256 MiB).
    #[serde(default = "default_min_free_bytes")]
    pub min_free_bytes: u64,
    /// The same floor as a share of the filesystem's size, for small disks. Default 5.
    #[serde(default = "default_min_free_percent")]
    pub min_free_percent: f64,
    /// A file of this size (`data_dir/space.reserve`) kept so that deletes and checkpoints
    /// have room when another process fills the disk; released then, written again once
    /// space returns. 0: none. Default 8388608 (8 MiB).
    #[serde(default = "default_reserve_bytes")]
    pub reserve_bytes: u64,
    /// Bound on the write-ahead log of `outbox.db` and `state.db`: checkpointed at this size
    /// and truncated back to it after each checkpoint. Default 4194304 (4 MiB).
    #[serde(default = "default_wal_max_bytes")]
    pub wal_max_bytes: u64,
}

impl Default for OutboxSettings {
    fn default() -> Self {
        Self {
            max_bytes: default_outbox_bytes(),
            commit_interval_ms: default_commit_ms(),
            min_free_bytes: default_min_free_bytes(),
            min_free_percent: default_min_free_percent(),
            reserve_bytes: default_reserve_bytes(),
            wal_max_bytes: default_wal_max_bytes(),
        }
    }
}

fn default_min_free_bytes() -> u64 {
    256 << 20
}
fn default_min_free_percent() -> f64 {
    5.0
}
fn default_reserve_bytes() -> u64 {
    8 << 20
}
fn default_wal_max_bytes() -> u64 {
    4 << 20
}

fn default_outbox_bytes() -> u64 {
    1 << 30
}
fn default_commit_ms() -> u64 {
    50
}

fn default_batch_size() -> usize {
    5000
}
fn default_flush_ms() -> u64 {
    1000
}
fn default_queue() -> usize {
    200_000
}
fn default_indicator_interval() -> u64 {
    60
}
fn default_store_timeout() -> u64 {
    10_000
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiSettings {
    /// Default `127.0.0.1:8080`.
    #[serde(default = "default_api_listen")]
    pub listen: SocketAddr,
    /// Larger request bodies are refused with 413. Default 65536.
    #[serde(default = "default_max_body")]
    pub max_body_bytes: usize,
    /// Requests per second each token may make, on average (429 beyond). Default 50.
    #[serde(default = "default_rate")]
    pub rate_limit_per_s: u32,
    /// Requests a token may make at once before the average applies. Default 200.
    #[serde(default = "default_burst")]
    pub rate_limit_burst: u32,
    /// Web origins allowed to call the API from a browser (`https://ops.example`); none by
    /// default, so a page elsewhere cannot use an operator's browser against the API.
    #[serde(default)]
    pub cors_origins: Vec<String>,
    /// Serve HTTPS with this certificate chain (PEM); needs `tls_key_file`.
    #[serde(default)]
    pub tls_cert_file: Option<PathBuf>,
    /// The certificate's private key (PEM).
    #[serde(default)]
    pub tls_key_file: Option<PathBuf>,
}

impl Default for ApiSettings {
    fn default() -> Self {
        Self {
            listen: default_api_listen(),
            max_body_bytes: default_max_body(),
            rate_limit_per_s: default_rate(),
            rate_limit_burst: default_burst(),
            cors_origins: Vec::new(),
            tls_cert_file: None,
            tls_key_file: None,
        }
    }
}

fn default_max_body() -> usize {
    64 * 1024
}
fn default_rate() -> u32 {
    50
}
fn default_burst() -> u32 {
    200
}

fn default_api_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}

/// `[[tokens]]`: an API bearer token, stored only as its SHA-256.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// Who holds it (shown in acknowledgements and the log).
    pub name: String,
    pub role: Role,
    /// Hex SHA-256 of the token (`printf %s "$TOKEN" | sha256sum`); never the token itself.
    pub sha256: String,
}

/// The `check-config` summary: sites, and devices by kind, protocol and status.
pub fn summary(c: &Config) -> String {
    use std::collections::BTreeMap;
    use std::fmt::Write;
    let inv = &c.inventory;
    let mut s = String::new();
    let parks = inv
        .sites
        .iter()
        .filter(|x| x.kind == SiteKind::Park)
        .count();
    let _ = writeln!(
        s,
        "sites: {} ({} park, {} mine; {} suspended)",
        inv.sites.len(),
        parks,
        inv.sites.len() - parks,
        inv.sites
            .iter()
            .filter(|x| x.status == SiteStatus::Suspended)
            .count()
    );
    let _ = writeln!(
        s,
        "enterprises: {}, zones: {}, systems: {}",
        inv.enterprises.len(),
        inv.zones.len(),
        inv.systems.len()
    );
    let _ = writeln!(s, "devices: {}", inv.devices.len());
    let mut by_kind: BTreeMap<&str, usize> = BTreeMap::new();
    let mut by_proto: BTreeMap<&str, usize> = BTreeMap::new();
    let mut by_status: BTreeMap<&str, usize> = BTreeMap::new();
    for d in &inv.devices {
        *by_kind.entry(d.kind.as_str()).or_default() += 1;
        *by_proto.entry(d.protocol.as_str()).or_default() += 1;
        *by_status.entry(d.status.as_str()).or_default() += 1;
    }
    for (title, map) in [
        ("by kind", by_kind),
        ("by protocol", by_proto),
        ("by status", by_status),
    ] {
        let parts: Vec<String> = map.iter().map(|(k, n)| format!("{k} {n}")).collect();
        let _ = writeln!(s, "  {title}: {}", parts.join(", "));
    }
    s
}
