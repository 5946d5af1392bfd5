//! `[indicators]` and `[[targets]]`: the counting policy, the store cadence and the
//! self-evaluation table (see `docs/indicators.md`).

use crate::core::indicators::targets::{de_decimal, de_opt_decimal, Comparator};
use crate::core::indicators::{Denominator, MineUnits, Policy, Quorum};
use serde::Deserialize;

/// `[indicators]`: the counting policy and the store cadence. A key left out takes its value
/// from `Default` below, the one place the defaults are written.
#[derive(Debug, Clone, Deserialize)]
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
