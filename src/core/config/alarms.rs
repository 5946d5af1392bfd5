//! `[alarms]`, `[alarms.kinds.<kind>]`, a site's `alarms = {…}` and a device's `alarm = {…}`.
//! Defaults and their sources are in `docs/alarms.md`.

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use std::collections::BTreeMap;
use std::fmt;

pub use crate::model::Scheme;

/// `response_deadline_s`: one number of seconds for every level, or `{ level1 = …, level2 = … }`.
/// Levels past the last one given use the last one.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadlineSetting(pub Vec<f64>);

impl Default for DeadlineSetting {
    /// 15 minutes for level 1, 5 minutes from level 2 up.
    fn default() -> Self {
        DeadlineSetting(vec![900.0, 300.0])
    }
}

/// Written as the table form, `{ level1 = …, level2 = … }`.
impl Serialize for DeadlineSetting {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (i, v) in self.0.iter().enumerate() {
            m.serialize_entry(&format!("level{}", i + 1), v)?;
        }
        m.end()
    }
}

impl DeadlineSetting {
    pub fn to_ms(&self) -> Vec<i64> {
        self.0.iter().map(|s| (s * 1000.0).round() as i64).collect()
    }
}

impl<'de> Deserialize<'de> for DeadlineSetting {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = DeadlineSetting;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("seconds, or a table like { level1 = 900, level2 = 300 }")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<DeadlineSetting, E> {
                self.visit_f64(v as f64)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<DeadlineSetting, E> {
                self.visit_f64(v as f64)
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<DeadlineSetting, E> {
                Ok(DeadlineSetting(vec![v]))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<DeadlineSetting, A::Error> {
                let mut levels: BTreeMap<usize, f64> = BTreeMap::new();
                while let Some(k) = m.next_key::<String>()? {
                    let n = k
                        .strip_prefix("level")
                        .and_then(|n| n.parse::<usize>().ok())
                        .filter(|n| (1..=4).contains(n))
                        .ok_or_else(|| {
                            de::Error::custom(format!(
                                "unknown key {k:?}: use level1, level2, level3, level4"
                            ))
                        })?;
                    levels.insert(n, m.next_value::<f64>()?);
                }
                let keys: Vec<usize> = levels.keys().copied().collect();
                if keys.is_empty() || keys != (1..=keys.len()).collect::<Vec<_>>() {
                    return Err(de::Error::custom(
                        "give the levels from level1 up without gaps, e.g. { level1 = 900, level2 = 300 }",
                    ));
                }
                Ok(DeadlineSetting(levels.into_values().collect()))
            }
        }
        d.deserialize_any(V)
    }
}

/// A threshold rule, as a whole kind's default (`[alarms.kinds.<kind>]`) or one device's
/// override (`alarm = {…}`); unset fields fall through to the kind, then to `[alarms]`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AlarmRuleConfig {
    /// `false` turns every alarm of the device (or kind) off.
    pub enabled: Option<bool>,
    /// The channel the thresholds apply to. Default: the kind's channel (lel, ppm, ch4,
    /// celsius, mm), or a Modbus device's first register; a single-channel reading is
    /// evaluated whatever its channel is called.
    pub channel: Option<String>,
    /// Ascending raise thresholds, one per level (two at most for `two_level`, four for
    /// `four_colour`), in the kind's unit.
    pub levels: Option<Vec<f64>>,
    pub raise_after: Option<u32>,
    pub clear_after: Option<u32>,
    /// Clear below this share of the first level.
    pub hysteresis: Option<f64>,
    /// Clear below this value instead (methane: 1.0 %).
    pub clear_below: Option<f64>,
    /// Rate-of-change levels, per day (slope displacement: mm/d).
    pub rate_per_day: Option<Vec<f64>>,
    /// The rate's sliding window, e.g. `"1d"`, `"6h"`.
    pub rate_window: Option<String>,
    pub scheme: Option<Scheme>,
    /// Raise `offline` alarms for this device (or kind).
    pub offline: Option<bool>,
    /// Raise `fault` alarms for this device (or kind).
    pub fault: Option<bool>,
}

/// A site's `alarms = { scheme = "four_colour", response_deadline_s = 600 }`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteAlarmConfig {
    pub scheme: Option<Scheme>,
    pub response_deadline_s: Option<DeadlineSetting>,
}

/// `[alarms]`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlarmSettings {
    /// Evaluate alarms at all. Default true.
    pub enabled: bool,
    /// Default `two_level`.
    pub scheme: Scheme,
    /// Default `{ level1 = 900, level2 = 300 }`.
    pub response_deadline_s: DeadlineSetting,
    /// Consecutive readings over a level before it is raised. Default 1.
    pub raise_after: u32,
    /// Consecutive readings under the clear level before the alarm clears. Default 1.
    pub clear_after: u32,
    /// Clear level as a share of the first raise level. Default 0.9.
    pub hysteresis: f64,
    /// Raise `offline` alarms when a built device goes silent. Default true.
    pub offline: bool,
    /// Raise `fault` alarms on readings with status fault. Default true.
    pub fault: bool,
    /// A closed alarm's retained MQTT message is removed after this long. Default 86400.
    pub retain_closed_s: u64,
    /// Extra or corrected occupational exposure limits for `gas_toxic`, ppm by gas.
    pub toxic_oel_ppm: BTreeMap<String, f64>,
    /// Per-kind rules that replace the built-in defaults, keyed by device kind.
    pub kinds: BTreeMap<String, AlarmRuleConfig>,
}

impl Default for AlarmSettings {
    fn default() -> Self {
        AlarmSettings {
            enabled: true,
            scheme: Scheme::default(),
            response_deadline_s: DeadlineSetting::default(),
            raise_after: 1,
            clear_after: 1,
            hysteresis: 0.9,
            offline: true,
            fault: true,
            retain_closed_s: 86_400,
            toxic_oel_ppm: BTreeMap::new(),
            kinds: BTreeMap::new(),
        }
    }
}

/// Problems with a deadline setting, as a message.
pub(crate) fn deadline_problem(d: &DeadlineSetting) -> Option<String> {
    d.0.iter()
        .find(|s| !(s.is_finite() && **s > 0.0 && **s <= 30.0 * 86_400.0))
        .map(|s| format!("{s} is not a number of seconds in (0, 30 days]"))
}
