//! `[indicators]` and `[[targets]]`: the counting policy, the store cadence and the
//! self-evaluation table (see `docs/indicators.md`).

use rust_decimal::prelude::*;
use serde::{Deserialize, Deserializer, Serialize};

/// `[indicators]`: the counting policy and the store cadence. A key left out takes its value
/// from `Default` below, the one place the defaults are written.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct IndicatorSettings {
    /// `"active"`: built units of active sites; `"planned"`: every registered unit.
    pub denominator: Denominator,
    /// `"systems"` or `"devices"`: what a mine's online rate counts.
    pub mine_units: MineUnits,
    /// `"any"`, `"all"`, or a fraction of a system's built devices.
    pub online_quorum: Quorum,
    /// Share of the window a built system must be online to count in `system_count`.
    pub system_online_share: f64,
    /// Windows written to the store when they close (`"15m"`, `"1h"`, `"1d"` …).
    pub store_windows: Vec<String>,
    /// Days (and hours) are aligned to this UTC offset, in hours (8: Beijing time).
    pub utc_offset_h: i64,
}

impl Default for IndicatorSettings {
    fn default() -> Self {
        IndicatorSettings {
            denominator: Denominator::default(),
            mine_units: MineUnits::default(),
            online_quorum: Quorum::default(),
            system_online_share: 0.9,
            store_windows: vec!["1h".into(), "1d".into()],
            utc_offset_h: 8,
        }
    }
}

impl IndicatorSettings {
    pub fn policy(&self) -> Policy {
        Policy {
            denominator: self.denominator,
            mine_units: self.mine_units,
            online_quorum: self.online_quorum,
            system_online_share: self.system_online_share,
        }
    }
}

/// `[[targets]]`: one row of the self-evaluation table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetConfig {
    /// A measured indicator id (`online_rate`, `coverage_rate`, …) or, for a declared row,
    /// any id.
    pub indicator: String,
    /// `"region"` (default), `"site:{id}"` or `"enterprise:{id}"`.
    #[serde(default = "default_scope")]
    pub scope: String,
    /// The system kind of `system_count`, the link of `link_stability`.
    #[serde(default)]
    pub qualifier: Option<String>,
    pub comparator: Comparator,
    /// The target, in the indicator's display unit: percent for rates, a count, ms.
    #[serde(deserialize_with = "de_decimal")]
    pub value: rust_decimal::Decimal,
    /// The row's wording in the target table (三级指标).
    pub label: String,
    /// 一级指标, e.g. 产出指标.
    #[serde(default)]
    pub level1: String,
    /// 二级指标, e.g. 数量指标.
    #[serde(default)]
    pub level2: String,
    /// Points.
    #[serde(default, deserialize_with = "de_decimal")]
    pub weight: rust_decimal::Decimal,
    /// For rows telemetry cannot measure (budget execution, satisfaction …): the declared
    /// actual value. The report marks such rows as declared.
    #[serde(default, deserialize_with = "de_opt_decimal")]
    pub declared: Option<rust_decimal::Decimal>,
    /// Display unit of a declared row (e.g. 万元); measured rows know their own.
    #[serde(default)]
    pub unit: Option<String>,
}

fn default_scope() -> String {
    "region".into()
}

/// Which units count in rate denominators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Denominator {
    /// Every registered unit, unbuilt and suspended included (as the 2023 report counted).
    Planned,
    /// Built units of active sites only (as the regulators' monthly networking reports).
    #[default]
    Active,
}

/// What a mine's online rate counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum MineUnits {
    #[default]
    Systems,
    Devices,
}

/// How many of a system's built devices must be online for the system to be online.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Default)]
pub enum Quorum {
    #[default]
    Any,
    All,
    /// At least this share (0, 1] of its built devices, rounded up.
    Fraction(f64),
}

impl Quorum {
    pub fn need(self, n: usize) -> usize {
        match self {
            Quorum::Any => 1.min(n),
            Quorum::All => n,
            Quorum::Fraction(f) => ((f * n as f64).ceil() as usize).clamp(1.min(n), n),
        }
    }
}

impl<'de> Deserialize<'de> for Quorum {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Word(String),
            Num(f64),
        }
        match Raw::deserialize(d)? {
            Raw::Word(w) if w == "any" => Ok(Quorum::Any),
            Raw::Word(w) if w == "all" => Ok(Quorum::All),
            Raw::Num(f) if f > 0.0 && f <= 1.0 => Ok(Quorum::Fraction(f)),
            _ => Err(serde::de::Error::custom(
                "online_quorum must be \"any\", \"all\" or a fraction in (0, 1]",
            )),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Policy {
    pub denominator: Denominator,
    pub mine_units: MineUnits,
    pub online_quorum: Quorum,
    /// A system counts in `system_count` when online at least this share of its counted time.
    pub system_online_share: f64,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            denominator: Denominator::Active,
            mine_units: MineUnits::Systems,
            online_quorum: Quorum::Any,
            system_online_share: 0.9,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Comparator {
    #[serde(rename = ">=")]
    AtLeast,
    #[serde(rename = "<=")]
    AtMost,
}

impl Comparator {
    pub fn symbol(self) -> &'static str {
        match self {
            Comparator::AtLeast => "≥",
            Comparator::AtMost => "≤",
        }
    }
}

/// A decimal from a TOML number or string, via its shortest decimal spelling (so `4945.46`
/// stays 4945.46, not the nearest binary double).
pub fn de_decimal<'de, D: Deserializer<'de>>(d: D) -> Result<Decimal, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        I(i64),
        F(f64),
        S(String),
    }
    let text = match Raw::deserialize(d)? {
        Raw::I(i) => i.to_string(),
        Raw::F(f) if f.is_finite() => f.to_string(),
        Raw::F(f) => {
            return Err(serde::de::Error::custom(format!(
                "{f} is not a finite number"
            )))
        }
        Raw::S(s) => s,
    };
    Decimal::from_str(&text).map_err(|e| serde::de::Error::custom(format!("{text:?}: {e}")))
}

pub fn de_opt_decimal<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Decimal>, D::Error> {
    de_decimal(d).map(Some)
}
