//! The `[[mappings]]` section: one element per mapping, as written in the TOML. Every key but
//! `name` may be left out; what is left out comes from the preset (`presets.rs`), and a key
//! set here replaces the preset's whole. What the keys mean: `docs/mappings.md`.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One `[[mappings]]` element. `Default` is what an element with only a name gets (before
/// its preset is applied); the configuration reference test reads it.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MappingConfig {
    /// Required: `[a-z0-9_-]`, 1 to 64 characters; also the HTTP path segment
    /// `/api/v1/ingest/{site}/{name}`.
    pub name: String,
    /// Where the keys left out come from: `safegate` (default), `ministry` or `none`.
    #[serde(default)]
    pub preset: Preset,
    /// MQTT topic filters this mapping reads (`+`, `#`). Default none: HTTP only.
    #[serde(default)]
    pub topics: Vec<String>,
    /// JSONPath to the records in the message; `$`: the message is one record.
    #[serde(default)]
    pub records: Option<String>,
    /// Template of the site id. Default `{site}` (the HTTP URL's site).
    #[serde(default)]
    pub site: Option<String>,
    /// Template of the device id; required (a preset gives one).
    #[serde(default)]
    pub device: Option<String>,
    /// Path or paths to the device time, tried in order; none: the gateway stamps receive time.
    #[serde(default)]
    pub time: Option<Paths>,
    /// `auto`, `epoch_ms`, `epoch_s`, `rfc3339` or a pattern. Default `auto`.
    #[serde(default)]
    pub time_format: Option<String>,
    /// Fixed offset for patterns without a zone, `+08:00`, `-05:00`, `Z`. Default `+08:00`.
    #[serde(default)]
    pub timezone: Option<String>,
    /// Path or paths to the status; none: every record is normal.
    #[serde(default)]
    pub status: Option<Paths>,
    /// Status text (or a number's decimal text) → `normal`, `fault` or `maintenance`.
    #[serde(default)]
    pub status_map: Option<BTreeMap<String, String>>,
    /// For a status not in `status_map`: `reject` (default), `normal`, `fault`, `maintenance`.
    #[serde(default)]
    pub status_default: Option<String>,
    /// Path to an object of channel → number (the native style).
    #[serde(default)]
    pub values: Option<String>,
    /// Renames of the keys found under `values`.
    #[serde(default)]
    pub rename: Option<BTreeMap<String, String>>,
    /// Channels taken one value each.
    #[serde(default)]
    pub channels: Option<Vec<ChannelConfig>>,
}

/// A `[[mappings.channels]]` element.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelConfig {
    /// Template of the channel name: literal, or with placeholders (`{$.sensorType}`).
    pub name: String,
    /// Path or paths to the number, tried in order.
    pub path: Paths,
    /// stored = value × scale + offset. Default 1.
    #[serde(default = "one")]
    pub scale: f64,
    /// Default 0.
    #[serde(default)]
    pub offset: f64,
}

fn one() -> f64 {
    1.0
}

/// One path, or a list of paths tried in order.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum Paths {
    One(String),
    Many(Vec<String>),
}

impl Paths {
    pub fn as_slice(&self) -> &[String] {
        match self {
            Paths::One(p) => std::slice::from_ref(p),
            Paths::Many(v) => v,
        }
    }
}

impl From<&str> for Paths {
    fn from(s: &str) -> Paths {
        Paths::One(s.to_string())
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Preset {
    /// The gateway's native batch element.
    #[default]
    Safegate,
    /// The ministry-family envelope with its `datas` list.
    Ministry,
    /// Nothing: every key is written out.
    None,
}

impl Preset {
    pub fn as_str(self) -> &'static str {
        match self {
            Preset::Safegate => "safegate",
            Preset::Ministry => "ministry",
            Preset::None => "none",
        }
    }
}

/// Why a mapping name cannot be used, if it cannot.
pub fn name_problem(name: &str) -> Option<String> {
    if name.is_empty() || name.len() > 64 {
        return Some(format!(
            "a mapping name is 1 to 64 characters, {:?} has {}",
            crate::core::event::shorten(name, 70),
            name.chars().count()
        ));
    }
    name.chars()
        .find(|c| !matches!(c, 'a'..='z' | '0'..='9' | '_' | '-'))
        .map(|c| format!("name {name:?} contains {c:?}; use a-z, 0-9, '_' and '-'"))
}
