//! Each device's effective alarm rule: its own `alarm = {…}` over `[alarms.kinds.<kind>]`
//! over the built-in default of its kind, with the scheme of the device, its site, its kind
//! or `[alarms]`, in that order. `check-config` and the gateway resolve through the same
//! function, so what validates is what runs.

use super::lifecycle::Deadlines;
use super::thresholds::{default_rule, default_slope_rate, toxic_oel_ppm, LevelRule, RateRule};
use crate::core::config::alarms::{AlarmRuleConfig, AlarmSettings};
use crate::core::inventory::Inventory;
use crate::core::inventory::{InventoryConfig, ProtocolSection, SiteConfig};
use crate::model::Scheme;
use crate::model::{parse_window, DeviceKind};
use std::collections::HashMap;
use std::sync::Arc;

#[derive(Debug, Clone, PartialEq)]
pub struct DeviceRule {
    /// The channel value and rate rules read.
    pub channel: Box<str>,
    pub level: Option<LevelRule>,
    pub rate: Option<RateRule>,
    pub scheme: Scheme,
    pub offline: bool,
    pub fault: bool,
}

/// The channel a kind's detectors conventionally report (what park-sim sends).
pub fn default_channel(kind: DeviceKind) -> &'static str {
    match kind {
        DeviceKind::GasCombustible => "lel",
        DeviceKind::GasToxic | DeviceKind::CarbonMonoxide => "ppm",
        DeviceKind::Methane => "ch4",
        DeviceKind::Temperature => "celsius",
        DeviceKind::WaterLevel => "m",
        DeviceKind::SlopeDisplacement => "mm",
        DeviceKind::Microseismic => "joule",
        DeviceKind::RoofPressure => "mpa",
        DeviceKind::Positioning => "people",
        DeviceKind::Video => "streams_up",
        DeviceKind::WindSpeed => "m_s",
        DeviceKind::Oxygen => "o2",
        DeviceKind::CarbonDioxide => "co2",
        DeviceKind::Switch => "state",
        DeviceKind::Cumulative => "total",
        DeviceKind::Other => "value",
    }
}

/// What a device's rule is resolved from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RuleInput<'a> {
    pub kind: DeviceKind,
    pub gas: Option<&'a str>,
    pub site_scheme: Option<Scheme>,
    /// The first register of a Modbus device's map.
    pub first_channel: Option<&'a str>,
    pub device: Option<&'a AlarmRuleConfig>,
}

/// A problem with a rule: (key under the device or kind table, message).
pub type RuleProblem = (String, String);

fn levels_problem(levels: &[f64], scheme: Scheme, what: &str) -> Option<String> {
    if levels.is_empty() {
        return Some(format!("{what} is empty"));
    }
    if let Some(v) = levels.iter().find(|v| !v.is_finite()) {
        return Some(format!("{what} holds {v}, not a finite number"));
    }
    if levels.windows(2).any(|w| w[0] >= w[1]) {
        return Some(format!(
            "{what} {levels:?} must be strictly ascending (level 1 first)"
        ));
    }
    match scheme {
        Scheme::TwoLevel if levels.len() > 2 => Some(format!(
            "{what} has {} levels; the two_level scheme has two (一级, 二级): use scheme = \"four_colour\" for four",
            levels.len()
        )),
        Scheme::FourColour if levels.len() != 4 => Some(format!(
            "{what} has {} level(s); the four_colour scheme needs four thresholds (蓝, 黄, 橙, 红)",
            levels.len()
        )),
        _ => None,
    }
}

/// Resolve one device's rule. `Ok(None)`: alarms are off for it.
pub fn resolve(s: &AlarmSettings, input: &RuleInput) -> Result<Option<DeviceRule>, RuleProblem> {
    let kind_cfg = s.kinds.get(input.kind.as_str());
    fn pick<T: Clone>(
        dev: Option<&AlarmRuleConfig>,
        kind: Option<&AlarmRuleConfig>,
        f: impl Fn(&AlarmRuleConfig) -> &Option<T>,
    ) -> Option<T> {
        dev.and_then(|d| f(d).clone())
            .or_else(|| kind.and_then(|k| f(k).clone()))
    }
    let dev = input.device;
    if !s.enabled || !pick(dev, kind_cfg, |c| &c.enabled).unwrap_or(true) {
        return Ok(None);
    }
    let scheme = dev
        .and_then(|d| d.scheme)
        .or(input.site_scheme)
        .or(kind_cfg.and_then(|k| k.scheme))
        .unwrap_or(s.scheme);
    let err = |k: &str, m: String| Err((k.to_string(), m));

    let own_levels = pick(dev, kind_cfg, |c| &c.levels);
    let explicit = own_levels.is_some();
    let base = if let Some(levels) = own_levels {
        Some(LevelRule::new(levels))
    } else if input.kind == crate::model::DeviceKind::GasToxic {
        let gas = input.gas.unwrap_or("");
        let oel = s
            .toxic_oel_ppm
            .iter()
            .find(|(g, _)| g.eq_ignore_ascii_case(gas))
            .map(|(_, v)| *v)
            .or_else(|| toxic_oel_ppm(gas));
        match oel {
            Some(v) if v.is_finite() && v > 0.0 => Some(LevelRule::new(vec![v, 2.0 * v])),
            _ => {
                return err(
                    "alarm.levels",
                    format!(
                        "no occupational exposure limit is known for gas {gas:?}; give alarm.levels, or the limit in [alarms] toxic_oel_ppm"
                    ),
                )
            }
        }
    } else {
        default_rule(input.kind, input.gas)
    };
    let level = match base {
        Some(mut r) => {
            if let Some(p) = levels_problem(&r.levels, scheme, "levels") {
                let hint = if explicit {
                    p
                } else {
                    format!("{p} (the built-in {} default)", input.kind.as_str())
                };
                return err("alarm.levels", hint);
            }
            r.raise_after = pick(dev, kind_cfg, |c| &c.raise_after).unwrap_or(s.raise_after);
            r.clear_after = pick(dev, kind_cfg, |c| &c.clear_after).unwrap_or(s.clear_after);
            r.hysteresis = pick(dev, kind_cfg, |c| &c.hysteresis).unwrap_or(s.hysteresis);
            // The built-in methane restore level belongs to the built-in levels.
            let own_clear = pick(dev, kind_cfg, |c| &c.clear_below);
            r.clear_below = if explicit {
                own_clear
            } else {
                own_clear.or(r.clear_below)
            };
            Some(r)
        }
        None => None,
    };
    if let Some(r) = &level {
        for (k, n) in [
            ("raise_after", r.raise_after),
            ("clear_after", r.clear_after),
        ] {
            if !(1..=10_000).contains(&n) {
                return err(
                    &format!("alarm.{k}"),
                    format!("{n} is not a count of readings in 1..=10000"),
                );
            }
        }
        if !(r.hysteresis > 0.0 && r.hysteresis <= 1.0) {
            return err(
                "alarm.hysteresis",
                format!("{} is not a share in (0, 1]", r.hysteresis),
            );
        }
        if let Some(c) = r.clear_below {
            if !(c.is_finite() && c <= r.levels[0]) {
                return err(
                    "alarm.clear_below",
                    format!(
                        "{c} must be a number not above the first level ({}), or the alarm would clear while still raised",
                        r.levels[0]
                    ),
                );
            }
        }
    }

    let rate = match pick(dev, kind_cfg, |c| &c.rate_per_day) {
        Some(levels) => Some(levels),
        None if input.kind == DeviceKind::SlopeDisplacement => {
            Some(default_slope_rate().levels.levels)
        }
        None => None,
    };
    let rate = match rate {
        Some(levels) => {
            if let Some(p) = levels_problem(&levels, scheme, "rate_per_day") {
                return err("alarm.rate_per_day", p);
            }
            let w = pick(dev, kind_cfg, |c| &c.rate_window).unwrap_or_else(|| "1d".into());
            let Some(window_ms) = parse_window(&w) else {
                return err(
                    "alarm.rate_window",
                    format!("{w:?} is not a window like \"6h\" or \"1d\""),
                );
            };
            let mut l = LevelRule::new(levels);
            l.raise_after = pick(dev, kind_cfg, |c| &c.raise_after).unwrap_or(s.raise_after);
            l.clear_after = pick(dev, kind_cfg, |c| &c.clear_after).unwrap_or(s.clear_after);
            l.hysteresis = pick(dev, kind_cfg, |c| &c.hysteresis).unwrap_or(s.hysteresis);
            Some(RateRule {
                window_ms,
                levels: l,
            })
        }
        None => None,
    };

    let channel = pick(dev, kind_cfg, |c| &c.channel)
        .or_else(|| input.first_channel.map(str::to_string))
        .unwrap_or_else(|| default_channel(input.kind).to_string());
    Ok(Some(DeviceRule {
        channel: channel.into(),
        level,
        rate,
        scheme,
        offline: pick(dev, kind_cfg, |c| &c.offline).unwrap_or(s.offline),
        fault: pick(dev, kind_cfg, |c| &c.fault).unwrap_or(s.fault),
    }))
}

/// The level of an alarm given by urgency, 1 (the most urgent) … 4, as GB/T 28181 alarm
/// priorities are (safegate's level 1 is the least severe): under four colours, urgency p is
/// level 5 − p; under two levels, urgencies 1–2 are level 2 and 3–4 level 1. An urgency
/// outside 1–4 is the least urgent. See docs/video.md ("Alarms").
pub fn priority_level(priority: u8, scheme: Scheme) -> u8 {
    let p = if (1..=4).contains(&priority) {
        priority
    } else {
        4
    };
    match scheme {
        Scheme::FourColour => 5 - p,
        Scheme::TwoLevel if p <= 2 => 2,
        Scheme::TwoLevel => 1,
    }
}

/// (kind, gas, site scheme, first Modbus channel): what a device without its own rule shares.
type SharedKey = (DeviceKind, Option<String>, Option<Scheme>, Option<String>);

/// Every device's rule and every site's deadlines, resolved once at start.
#[derive(Debug, Clone, Default)]
pub struct AlarmRules {
    /// By device index; `None`: no alarms for the device.
    pub devices: Vec<Option<Arc<DeviceRule>>>,
    /// By site index.
    pub deadlines: Vec<Deadlines>,
}

impl AlarmRules {
    /// Resolve from a validated configuration (a rule that does not resolve is left off and
    /// logged; `check-config` reports it).
    pub fn from_config<P: ProtocolSection>(
        s: &AlarmSettings,
        decl: &InventoryConfig<P>,
        inv: &Inventory,
    ) -> AlarmRules {
        let mut by_site: HashMap<&str, &SiteConfig> = HashMap::new();
        for site in &decl.sites {
            by_site.insert(&site.id, site);
        }
        let mut devices: Vec<Option<Arc<DeviceRule>>> = vec![None; inv.devices.len()];
        // Devices without their own override share one rule per (kind, gas, scheme, channel).
        let mut shared: HashMap<SharedKey, Option<Arc<DeviceRule>>> = HashMap::new();
        for d in &decl.devices {
            let Ok(idx) = inv.lookup(&d.site, &d.id) else {
                continue;
            };
            let site_scheme = by_site
                .get(d.site.as_str())
                .and_then(|s| s.alarms.as_ref())
                .and_then(|a| a.scheme);
            let first = d.modbus.as_ref().and_then(|m| m.first_channel());
            let input = RuleInput {
                kind: d.kind,
                gas: d.gas.as_deref(),
                site_scheme,
                first_channel: first,
                device: d.alarm.as_deref(),
            };
            let make = || match resolve(s, &input) {
                Ok(r) => r.map(Arc::new),
                Err((k, m)) => {
                    tracing::error!(site = %d.site, device = %d.id, key = %k, "alarm rule left off: {m}");
                    None
                }
            };
            devices[idx as usize] = if d.alarm.is_some() {
                make()
            } else {
                let key = (
                    d.kind,
                    d.gas.clone(),
                    site_scheme,
                    first.map(str::to_string),
                );
                shared.entry(key).or_insert_with(make).clone()
            };
        }
        let deadlines = inv
            .sites
            .iter()
            .map(|site| {
                let own = by_site
                    .get(&*site.id)
                    .and_then(|s| s.alarms.as_ref())
                    .and_then(|a| a.response_deadline_s.clone());
                Deadlines(own.unwrap_or_else(|| s.response_deadline_s.clone()).to_ms())
            })
            .collect();
        AlarmRules { devices, deadlines }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(kind: DeviceKind) -> RuleInput<'static> {
        RuleInput {
            kind,
            gas: None,
            site_scheme: None,
            first_channel: None,
            device: None,
        }
    }

    #[test]
    fn an_urgency_maps_onto_either_scheme_and_out_of_range_is_the_least() {
        let four: Vec<u8> = (1..=4)
            .map(|p| priority_level(p, Scheme::FourColour))
            .collect();
        assert_eq!(four, [4, 3, 2, 1]);
        let two: Vec<u8> = (1..=4)
            .map(|p| priority_level(p, Scheme::TwoLevel))
            .collect();
        assert_eq!(two, [2, 2, 1, 1]);
        assert_eq!(priority_level(0, Scheme::FourColour), 1);
        assert_eq!(priority_level(9, Scheme::TwoLevel), 1);
    }

    #[test]
    fn defaults_by_kind_and_overrides_in_order() {
        let s = AlarmSettings::default();
        let r = resolve(&s, &input(DeviceKind::GasCombustible))
            .unwrap()
            .unwrap();
        assert_eq!(r.level.unwrap().levels, vec![25.0, 50.0]);
        assert_eq!(&*r.channel, "lel");
        assert!(r.rate.is_none());
        let slope = resolve(&s, &input(DeviceKind::SlopeDisplacement))
            .unwrap()
            .unwrap();
        assert!(slope.level.is_none());
        assert_eq!(slope.rate.unwrap().levels.levels, vec![10.0]);

        let mut s2 = AlarmSettings::default();
        s2.kinds.insert(
            "gas_combustible".into(),
            AlarmRuleConfig {
                levels: Some(vec![20.0, 40.0]),
                raise_after: Some(3),
                ..Default::default()
            },
        );
        let dev = AlarmRuleConfig {
            levels: Some(vec![10.0, 30.0]),
            ..Default::default()
        };
        let r = resolve(
            &s2,
            &RuleInput {
                device: Some(&dev),
                ..input(DeviceKind::GasCombustible)
            },
        )
        .unwrap()
        .unwrap()
        .level
        .unwrap();
        assert_eq!(r.levels, vec![10.0, 30.0]);
        assert_eq!(
            r.raise_after, 3,
            "unset device fields fall through to the kind"
        );
    }

    #[test]
    fn methane_override_drops_the_builtin_restore_level() {
        let s = AlarmSettings::default();
        let dev = AlarmRuleConfig {
            levels: Some(vec![0.5, 0.75]),
            ..Default::default()
        };
        let r = resolve(
            &s,
            &RuleInput {
                device: Some(&dev),
                ..input(DeviceKind::Methane)
            },
        )
        .unwrap()
        .unwrap()
        .level
        .unwrap();
        assert_eq!(r.clear_below, None);
        let builtin = resolve(&s, &input(DeviceKind::Methane))
            .unwrap()
            .unwrap()
            .level
            .unwrap();
        assert_eq!(builtin.clear_below, Some(1.0));
    }

    #[test]
    fn problems_are_named() {
        let s = AlarmSettings::default();
        let four = RuleInput {
            site_scheme: Some(Scheme::FourColour),
            ..input(DeviceKind::GasCombustible)
        };
        let (k, m) = resolve(&s, &four).unwrap_err();
        assert_eq!(k, "alarm.levels");
        assert!(m.contains("four thresholds"), "{m}");
        let toxic = RuleInput {
            gas: Some("VOC"),
            ..input(DeviceKind::GasToxic)
        };
        assert!(resolve(&s, &toxic).unwrap_err().1.contains("\"VOC\""));
        let bad = AlarmRuleConfig {
            levels: Some(vec![50.0, 25.0]),
            ..Default::default()
        };
        let (_, m) = resolve(
            &s,
            &RuleInput {
                device: Some(&bad),
                ..input(DeviceKind::GasCombustible)
            },
        )
        .unwrap_err();
        assert!(m.contains("ascending"), "{m}");
        let off = AlarmRuleConfig {
            enabled: Some(false),
            ..Default::default()
        };
        assert_eq!(
            resolve(
                &s,
                &RuleInput {
                    device: Some(&off),
                    ..input(DeviceKind::GasCombustible)
                }
            ),
            Ok(None)
        );
    }
}
