//! The declared fleet as the inventory files write it: sites, enterprises, zones, systems and
//! devices. A device's protocol section (`[devices.modbus]`) belongs to its source, so it is a
//! type parameter here: the core reads it only through [`ProtocolSection`].

use crate::core::config::alarms::{AlarmRuleConfig, SiteAlarmConfig};
use crate::model::{
    DeviceKind, PlatformStatus, Protocol, SiteKind, SiteStatus, SystemKind, UnitStatus,
};
use serde::de::IgnoredAny;
use serde::Deserialize;

/// What the core needs of a device's protocol section: the channel a default alarm rule
/// watches when the device names several (the first register of a Modbus map).
pub trait ProtocolSection {
    fn first_channel(&self) -> Option<&str>;
}

/// For the core's own tests and tools: a protocol section read and ignored.
impl ProtocolSection for IgnoredAny {
    fn first_channel(&self) -> Option<&str> {
        None
    }
}

/// The inventory part, which may also stand alone in an included file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, bound(deserialize = "P: Deserialize<'de>"))]
pub struct InventoryConfig<P = IgnoredAny> {
    #[serde(default)]
    pub sites: Vec<SiteConfig>,
    #[serde(default)]
    pub enterprises: Vec<EnterpriseConfig>,
    #[serde(default)]
    pub zones: Vec<ZoneConfig>,
    #[serde(default)]
    pub systems: Vec<SystemConfig>,
    #[serde(default)]
    pub devices: Vec<DeviceConfig<P>>,
}

impl<P> Default for InventoryConfig<P> {
    fn default() -> Self {
        InventoryConfig {
            sites: Vec::new(),
            enterprises: Vec::new(),
            zones: Vec::new(),
            systems: Vec::new(),
            devices: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteConfig {
    pub id: String,
    pub name: String,
    pub kind: SiteKind,
    #[serde(default)]
    pub status: SiteStatus,
    /// The site's alarm scheme and response deadlines, over `[alarms]`.
    #[serde(default)]
    pub alarms: Option<SiteAlarmConfig>,
    /// Refuse MQTT messages for this site that are not signed with its key. Default false.
    #[serde(default)]
    pub require_signature: bool,
    /// Environment variable holding the site's HMAC-SHA256 signing key.
    #[serde(default)]
    pub signing_key_env: Option<String>,
    /// The platform identities (MQTT usernames, or client-certificate CNs) allowed to publish
    /// for this site; `safegate broker-acl` turns them into the broker's ACL.
    #[serde(default)]
    pub platforms: Vec<String>,
    /// A coal mine's code (矿井编码) as its networking files carry it: 12 digits nationally,
    /// longer in some regions. Also its FTP login (`[mine_files]`, docs/mine-files.md).
    #[serde(default)]
    pub mine_code: Option<String>,
    /// Environment variable holding the mine's FTP upload password.
    #[serde(default)]
    pub upload_password_env: Option<String>,
    /// The UTC offset the site's files write local times in, `+08:00` by default.
    #[serde(default)]
    pub timezone: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnterpriseConfig {
    pub id: String,
    pub site: String,
    pub name: String,
    #[serde(default)]
    pub platform: PlatformStatus,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZoneConfig {
    pub id: String,
    pub site: String,
    pub name: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SystemConfig {
    pub id: String,
    pub site: String,
    #[serde(default)]
    pub name: Option<String>,
    pub kind: SystemKind,
    #[serde(default)]
    pub status: UnitStatus,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, bound(deserialize = "P: Deserialize<'de>"))]
pub struct DeviceConfig<P = IgnoredAny> {
    /// Unique within its site.
    pub id: String,
    pub site: String,
    pub kind: DeviceKind,
    #[serde(default)]
    pub name: Option<String>,
    /// For `gas_toxic`: H2S, CO, NH3, Cl2, …
    #[serde(default)]
    pub gas: Option<String>,
    #[serde(default)]
    pub enterprise: Option<String>,
    #[serde(default)]
    pub zone: Option<String>,
    #[serde(default)]
    pub system: Option<String>,
    pub protocol: Protocol,
    /// The 20-digit GB/T 28181 ID a `protocol = "gb28181"` device registers with
    /// (docs/video.md); only such devices take one.
    #[serde(default)]
    pub gb_id: Option<String>,
    /// Expected reporting interval, seconds (> 0).
    pub interval_s: f64,
    #[serde(default)]
    pub status: UnitStatus,
    /// Default 3 × `interval_s`.
    #[serde(default)]
    pub offline_after_s: Option<f64>,
    /// How to poll the device; required when `protocol = "modbus"`, forbidden otherwise.
    /// Boxed, as is `alarm`: most devices have neither, and inline the two sections were
    /// more than half of every device's size (480 bytes, 48 MB for 100,000 devices).
    #[serde(default)]
    pub modbus: Option<Box<P>>,
    /// The device's own alarm rule, over `[alarms.kinds.<kind>]` and the built-in default.
    #[serde(default)]
    pub alarm: Option<Box<AlarmRuleConfig>>,
}

impl<P> DeviceConfig<P> {
    pub fn offline_after_ms(&self) -> i64 {
        let s = self.offline_after_s.unwrap_or(3.0 * self.interval_s);
        (s * 1000.0).round() as i64
    }
}

/// A whole test file of the core's own sections, read without the gateway's loader (which
/// would validate and tie the core's tests to `config`).
#[cfg(test)]
#[derive(Debug, Deserialize)]
pub(crate) struct TestFile {
    #[serde(default)]
    pub alarms: crate::core::config::alarms::AlarmSettings,
    #[serde(flatten)]
    pub inventory: InventoryConfig,
}

#[cfg(test)]
pub(crate) fn test_file(text: &str) -> TestFile {
    toml::from_str(text).unwrap_or_else(|e| panic!("test inventory: {e}"))
}
