//! Configuration: the TOML contract (`safegate.toml` plus included inventory files).
//!
//! Every struct denies unknown keys so that a typo in a field engineer's file is an error
//! with a location, never a silently ignored setting. Defaults are documented on each field
//! and in `docs/configuration.md`.

pub mod broker_acl;
mod load;
mod loaded;
mod pieces;
#[cfg(test)]
mod reference;
mod validate;

pub use crate::api::config::{ApiSettings, TokenConfig};
pub use crate::core::config::alarms;
pub use crate::core::config::indicators::{IndicatorSettings, TargetConfig};
pub use crate::core::inventory::{EnterpriseConfig, SiteConfig, SystemConfig, ZoneConfig};
pub use crate::model::{
    parse_window, DeviceKind, OnDamage, PlatformStatus, Protocol, Role, SiteKind, SiteStatus,
    SystemKind, UnitStatus,
};
pub use crate::sinks::store::config::{OutboxSettings, StoreSettings};
pub use crate::sources::http::config::IngestSettings;
pub use crate::sources::mapping::{ChannelConfig as MappingChannelConfig, MappingConfig};
pub use crate::sources::modbus::config as modbus;
pub use crate::sources::modbus::config::ModbusConfig;
pub use crate::sources::mqtt::config::{AckPolicy, MqttSettings};
pub use load::{load, load_str};
pub use loaded::{ConfigError, LoadedConfig, Origins};

/// A device as the inventory files declare it, with its Modbus section typed.
pub type DeviceConfig = crate::core::inventory::DeviceConfig<ModbusConfig>;
/// The inventory part, which may also stand alone in an included file.
pub type InventoryConfig = crate::core::inventory::InventoryConfig<ModbusConfig>;

use serde::Deserialize;
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
    /// HTTP push (`POST /api/v1/ingest/…`).
    pub ingest: IngestSettings,
    /// Coal mines' networking files over FTP(S) and a watched folder.
    pub mine_files: crate::sources::mine_files::config::MineFilesSettings,
    /// No `[video]` section: no GB/T 28181 endpoint.
    pub video: Option<crate::sources::video::config::VideoSettings>,
    /// No `[cluster]` section: one gateway alone, as ever (`docs/scaling.md`).
    pub cluster: Option<crate::cluster::ClusterSettings>,
    pub indicators: IndicatorSettings,
    pub targets: Vec<TargetConfig>,
    pub alarms: alarms::AlarmSettings,
    /// API bearer tokens (`[[tokens]]`); none: the API is open, on loopback only.
    pub tokens: Vec<TokenConfig>,
    /// Payload mappings (`[[mappings]]`): platforms' own JSON shapes to readings. Main file only.
    pub mappings: Vec<MappingConfig>,
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
    ingest: IngestSettings,
    #[serde(default)]
    mine_files: crate::sources::mine_files::config::MineFilesSettings,
    video: Option<crate::sources::video::config::VideoSettings>,
    cluster: Option<crate::cluster::ClusterSettings>,
    #[serde(default)]
    indicators: IndicatorSettings,
    #[serde(default)]
    targets: Vec<TargetConfig>,
    #[serde(default)]
    alarms: alarms::AlarmSettings,
    #[serde(default)]
    tokens: Vec<TokenConfig>,
    #[serde(default)]
    mappings: Vec<MappingConfig>,
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
            ingest: m.ingest,
            mine_files: m.mine_files,
            video: m.video,
            cluster: m.cluster,
            indicators: m.indicators,
            targets: m.targets,
            alarms: m.alarms,
            tokens: m.tokens,
            mappings: m.mappings,
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

#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct GatewaySettings {
    /// Directory for the gateway's own state (transition journal). Default `var/safegate`.
    pub data_dir: PathBuf,
    /// Readings stamped further than this in the future are rejected. Default 300 s.
    pub max_future_skew_s: u64,
    /// How many recent rejections `GET /api/v1/rejections` keeps. Default 200.
    pub recent_rejections: usize,
    /// How many recent readings of each device the console's chart of it shows (the first
    /// channel's value, 8 bytes a reading: 30 at 100,000 devices is 24 MB). Default 30;
    /// 0 keeps none.
    pub recent_values: u16,
    /// What to do at start when `state.db` or `outbox.db` under `data_dir` is damaged:
    /// `refuse` to start (default), or `move_aside` (rename it `<file>.damaged-<ms>`, keep it,
    /// start a new one). Neither ever deletes the file.
    pub on_damaged_file: OnDamage,
}

impl Default for GatewaySettings {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("var/safegate"),
            max_future_skew_s: 300,
            recent_rejections: 200,
            recent_values: crate::core::recent::DEFAULT_CAP,
            on_damaged_file: OnDamage::Refuse,
        }
    }
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
