//! The self-evaluation table (自评表) and the measured reasons behind every shortfall.

pub mod evaluate;
mod format;

pub use format::{to_csv, to_markdown};

use crate::core::config::indicators::TargetConfig;
use crate::core::indicators::engine::{Computation, Indicator, Scope, Unit};
use crate::core::indicators::targets::{assess, ratio_pct, ratio_pct_exact, Comparator};
use crate::core::inventory::Inventory;
use crate::model::rfc3339_ms;
use rust_decimal::prelude::*;
use serde::Serialize;

/// Resolve `region`, `site:{id}`, `enterprise:{id}` against the inventory.
pub fn parse_scope(inv: &Inventory, s: &str) -> Option<Scope> {
    match s.split_once(':') {
        None if s == "region" => Some(Scope::Region),
        Some(("site", id)) => inv.site(id).map(Scope::Site),
        Some(("enterprise", id)) => inv
            .enterprises
            .iter()
            .position(|e| &*e.id == id)
            .map(|i| Scope::Enterprise(i as u32)),
        _ => None,
    }
}

pub fn scope_label(inv: &Inventory, s: Scope) -> (String, String) {
    match s {
        Scope::Region => ("region".into(), "region".into()),
        Scope::Site(i) => ("site".into(), inv.sites[i as usize].id.to_string()),
        Scope::Enterprise(i) => (
            "enterprise".into(),
            inv.enterprises[i as usize].id.to_string(),
        ),
    }
}

/// An indicator's value in its display unit: percent for ratios (exact, unrounded).
pub fn display_value(ind: &Indicator) -> Option<Decimal> {
    match ind.unit {
        Unit::Ratio => ratio_pct_exact(ind.ratio.num, ind.ratio.den),
        Unit::Count | Unit::Milliseconds => {
            (ind.ratio.den != 0).then(|| Decimal::from_i128_with_scale(ind.ratio.num, 0))
        }
    }
}

pub fn format_value(v: Decimal, unit: Unit) -> String {
    match unit {
        Unit::Ratio => format!(
            "{}%",
            v.round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero)
        ),
        Unit::Count => v.normalize().to_string(),
        Unit::Milliseconds => format!("{} ms", v.normalize()),
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub level1: String,
    pub level2: String,
    pub label: String,
    pub indicator: String,
    pub scope: String,
    pub qualifier: Option<String>,
    /// 指标值, e.g. `≥90%`.
    pub target: String,
    /// 实际完成值, e.g. `26.50%`; empty when nothing could be measured.
    pub actual: String,
    pub numerator: Option<f64>,
    pub denominator: Option<f64>,
    pub completion_pct: Option<Decimal>,
    pub deviation_pct: Option<Decimal>,
    pub weight: Decimal,
    pub score: Option<Decimal>,
    /// `measured` or `declared`.
    pub source: &'static str,
    /// Measured reasons when the target is missed.
    pub reasons: Vec<Reason>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Reason {
    /// device, system, zone, enterprise, link
    pub unit: &'static str,
    pub id: String,
    pub site: String,
    /// Time counted but down in the window, ms (0 for count-based reasons).
    pub down_ms: i64,
    pub outages: u32,
    pub longest_from: Option<String>,
    pub longest_to: Option<String>,
    pub never_reported: bool,
    pub note: String,
}

impl Reason {
    /// A reason that is a fact, not a stretch of time (never reported, no platform …).
    fn fact(unit: &'static str, id: String, site: String, note: String) -> Reason {
        Reason {
            unit,
            id,
            site,
            down_ms: 0,
            outages: 0,
            longest_from: None,
            longest_to: None,
            never_reported: false,
            note,
        }
    }

    /// A system or zone that was down (below quorum, uncovered) for part of the window.
    fn group(
        unit: &'static str,
        id: String,
        site: String,
        f: &crate::core::indicators::engine::GroupFacts,
        note: String,
    ) -> Reason {
        Reason {
            down_ms: f.down_ms,
            longest_from: f.longest.map(|x| rfc3339_ms(x.0)),
            longest_to: f.longest.map(|x| rfc3339_ms(x.1)),
            ..Reason::fact(unit, id, site, note)
        }
    }

    pub fn summary(&self) -> String {
        let mut s = format!("{} {}/{}: {}", self.unit, self.site, self.id, self.note);
        if let (Some(a), Some(b)) = (&self.longest_from, &self.longest_to) {
            s.push_str(&format!("; longest outage {a} – {b}"));
        }
        s
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub from: String,
    pub to: String,
    pub policy: crate::core::indicators::Policy,
    pub rows: Vec<Row>,
    pub total_weight: Decimal,
    pub total_score: Decimal,
}

fn find<'a>(inds: &'a [Indicator], id: &str, q: Option<&str>) -> Option<&'a Indicator> {
    inds.iter()
        .find(|i| i.id == id && (q.is_none() || i.qualifier.as_deref() == q))
}

fn hours(ms: i64) -> String {
    format!("{:.2} h", ms as f64 / 3_600_000.0)
}

/// Reasons behind a missed target, measured: which units were down, never reported, …
pub fn reasons(
    inv: &Inventory,
    c: &Computation,
    indicator: &str,
    scope: Scope,
    qualifier: Option<&str>,
) -> Vec<Reason> {
    let why = Why {
        inv,
        c,
        scope,
        qualifier,
    };
    let mut out = Vec::new();
    match indicator {
        "online_rate" | "online_rate_at_end" => why.online(indicator, &mut out),
        "alarm_response_rate" => why.alarm_response(&mut out),
        "coverage_rate" => why.coverage(&mut out),
        "device_build_rate" => why.device_build(&mut out),
        "enterprise_platform_rate" | "enterprise_access_rate" => {
            why.enterprise_access(indicator, &mut out)
        }
        "system_count" => why.system_count(&mut out),
        "link_stability" => why.link_stability(&mut out),
        "poll_success_ratio" => why.poll_success(&mut out),
        _ => {}
    }
    out.sort_by(|a, b| {
        b.down_ms
            .cmp(&a.down_ms)
            .then(a.site.cmp(&b.site))
            .then(a.id.cmp(&b.id))
    });
    out
}

/// What `reasons` looks at: the inventory, the computation, and the scope asked about.
struct Why<'a> {
    inv: &'a Inventory,
    c: &'a Computation,
    scope: Scope,
    qualifier: Option<&'a str>,
}

/// A longest outage as (from, to) timestamps.
fn span(l: Option<(i64, i64)>) -> (Option<String>, Option<String>) {
    (l.map(|x| rfc3339_ms(x.0)), l.map(|x| rfc3339_ms(x.1)))
}

impl Why<'_> {
    fn site_of(&self, s: u32) -> String {
        self.inv.sites[s as usize].id.to_string()
    }

    fn in_site(&self, s: u32) -> bool {
        match self.scope {
            Scope::Region => true,
            Scope::Site(x) => x == s,
            Scope::Enterprise(_) => false,
        }
    }

    fn dev_in(&self, i: usize) -> bool {
        let d = &self.inv.devices[i];
        match self.scope {
            Scope::Region => true,
            Scope::Site(x) => d.site == x,
            Scope::Enterprise(e) => d.enterprise == Some(e),
        }
    }

    fn online(&self, indicator: &str, out: &mut Vec<Reason>) {
        let mine_devices = self.c.policy.mine_units == crate::core::indicators::MineUnits::Devices;
        for (i, f) in self.c.devices.iter().enumerate() {
            let d = &self.inv.devices[i];
            let unit = self.inv.sites[d.site as usize].kind == crate::model::SiteKind::Park
                || mine_devices;
            let down = if indicator == "online_rate" {
                f.down_ms > 0
            } else {
                f.counted_at_to && !f.online_at_to
            };
            if unit && self.dev_in(i) && down {
                let (a, b) = span(f.longest);
                out.push(Reason {
                    unit: "device",
                    id: d.id.to_string(),
                    site: self.site_of(d.site),
                    down_ms: f.down_ms,
                    outages: f.outages,
                    longest_from: a,
                    longest_to: b,
                    never_reported: !f.reported_by_to,
                    note: if f.reported_by_to {
                        format!(
                            "offline {} in the window ({} outage(s))",
                            hours(f.down_ms),
                            f.outages
                        )
                    } else {
                        "never reported".into()
                    },
                });
            }
        }
        if !mine_devices {
            for (i, f) in self.c.systems.iter().enumerate() {
                let s = &self.inv.systems[i];
                let down = if indicator == "online_rate" {
                    f.down_ms > 0
                } else {
                    f.counted_at_to && !f.online_at_to
                };
                if self.in_site(s.site) && down {
                    out.push(Reason::group(
                        "system",
                        s.id.to_string(),
                        self.site_of(s.site),
                        f,
                        format!("below its device quorum {} in the window", hours(f.down_ms)),
                    ));
                }
            }
        }
    }

    fn alarm_response(&self, out: &mut Vec<Reason>) {
        let kind_ok = |a: &crate::core::indicators::history::AlarmFact| match self.qualifier {
            Some(q) if q.starts_with("type:") => a.alarm_type.as_str() == &q[5..],
            Some(q) if q.starts_with("level:") => q[6..].parse() == Ok(a.level),
            _ => true,
        };
        for a in &self.c.alarms {
            let i = a.device as usize;
            if !self.dev_in(i)
                || !kind_ok(a)
                || !crate::core::indicators::engine::alarm_decided(a, self.c.to)
                || crate::core::indicators::engine::alarm_responded(a)
            {
                continue;
            }
            let d = &self.inv.devices[i];
            let deadline_s = (a.deadline_ms - a.raised_ms) as f64 / 1000.0;
            let what = format!(
                "{} alarm level {} on device {:?} raised {}",
                a.alarm_type.as_str(),
                a.level,
                &*d.id,
                rfc3339_ms(a.raised_ms)
            );
            let note = match a.ack_ms {
                Some(t) if t < self.c.to => format!(
                    "{what}: acknowledged late, {} s after the raise (deadline {deadline_s} s)",
                    (t - a.raised_ms) as f64 / 1000.0
                ),
                _ => format!(
                    "{what}: not acknowledged by its deadline ({deadline_s} s, at {})",
                    rfc3339_ms(a.deadline_ms)
                ),
            };
            out.push(Reason::fact(
                "alarm",
                a.id.to_string(),
                self.site_of(d.site),
                note,
            ));
        }
    }

    fn coverage(&self, out: &mut Vec<Reason>) {
        for (i, f) in self.c.zones.iter().enumerate() {
            let z = &self.inv.zones[i];
            if self.in_site(z.site) && f.down_ms > 0 {
                let has = self.inv.devices.iter().any(|d| d.zone == Some(i as u32));
                out.push(Reason {
                    never_reported: !has,
                    ..Reason::group(
                        "zone",
                        z.id.to_string(),
                        self.site_of(z.site),
                        f,
                        if has {
                            format!("no device online for {}", hours(f.down_ms))
                        } else {
                            "no monitoring device assigned".into()
                        },
                    )
                });
            }
        }
    }

    fn device_build(&self, out: &mut Vec<Reason>) {
        for (i, f) in self.c.devices.iter().enumerate() {
            let d = &self.inv.devices[i];
            if self.dev_in(i) && f.registered_at_to && !f.reported_by_to {
                out.push(Reason {
                    never_reported: true,
                    ..Reason::fact(
                        "device",
                        d.id.to_string(),
                        self.site_of(d.site),
                        format!("never reported (status {})", d.status.as_str()),
                    )
                });
            }
        }
    }

    fn enterprise_access(&self, indicator: &str, out: &mut Vec<Reason>) {
        for (i, (counted, platform, access)) in self.c.enterprises.iter().enumerate() {
            let e = &self.inv.enterprises[i];
            let inside = match self.scope {
                Scope::Region => true,
                Scope::Site(s) => e.site == s,
                Scope::Enterprise(x) => x as usize == i,
            };
            let missed = if indicator == "enterprise_access_rate" {
                !access
            } else {
                !platform
            };
            if inside && *counted && missed {
                out.push(Reason::fact(
                    "enterprise",
                    e.id.to_string(),
                    self.site_of(e.site),
                    if indicator == "enterprise_access_rate" {
                        "no device online in the window".into()
                    } else {
                        "platform not built and no data pushed".into()
                    },
                ));
            }
        }
    }

    fn system_count(&self, out: &mut Vec<Reason>) {
        for (i, f) in self.c.systems.iter().enumerate() {
            let s = &self.inv.systems[i];
            let kind_ok = self
                .qualifier
                .is_none_or(|q| crate::core::indicators::engine::system_kind_str(s.kind) == q);
            let share = if f.counted_ms > 0 {
                f.online_ms as f64 / f.counted_ms as f64
            } else {
                0.0
            };
            if self.in_site(s.site)
                && kind_ok
                && (!f.built_at_to || share < self.c.policy.system_online_share)
            {
                out.push(Reason::group(
                    "system",
                    s.id.to_string(),
                    self.site_of(s.site),
                    f,
                    if f.built_at_to {
                        format!(
                            "online {:.2}% of the window, needs {:.2}%",
                            share * 100.0,
                            self.c.policy.system_online_share * 100.0
                        )
                    } else {
                        format!("not built (status {})", s.status.as_str())
                    },
                ));
            }
        }
    }

    fn link_stability(&self, out: &mut Vec<Reason>) {
        for (name, up, total) in &self.c.links {
            if self.qualifier.is_none_or(|q| q == name) && up < total {
                out.push(Reason {
                    unit: "link",
                    id: name.clone(),
                    site: String::new(),
                    down_ms: total - up,
                    outages: 0,
                    longest_from: None,
                    longest_to: None,
                    never_reported: false,
                    note: format!("down {} in the window", hours(total - up)),
                });
            }
        }
    }

    fn poll_success(&self, out: &mut Vec<Reason>) {
        for (name, ok, failed) in &self.c.polls {
            if self.qualifier.is_none_or(|q| q == name) && *failed > 0 {
                out.push(Reason::fact(
                    "link",
                    name.clone(),
                    String::new(),
                    format!("{failed} of {} polls failed", ok + failed),
                ));
            }
        }
    }
}

/// Build the table for the configured targets.
pub fn build(inv: &Inventory, c: &Computation, targets: &[TargetConfig]) -> Report {
    let mut rows = Vec::new();
    let mut cache: Vec<(Scope, Vec<Indicator>)> = Vec::new();
    for t in targets {
        let sym = t.comparator.symbol();
        let target_text = |unit: &str| format!("{sym}{}{unit}", t.value.normalize());
        if let Some(declared) = t.declared {
            let unit = t.unit.clone().unwrap_or_default();
            let a = assess(declared, t.value, t.comparator, t.weight);
            rows.push(Row {
                level1: t.level1.clone(),
                level2: t.level2.clone(),
                label: t.label.clone(),
                indicator: t.indicator.clone(),
                scope: t.scope.clone(),
                qualifier: t.qualifier.clone(),
                target: target_text(&unit),
                actual: format!("{}{unit}", declared.normalize()),
                numerator: None,
                denominator: None,
                completion_pct: Some(a.completion_pct),
                deviation_pct: Some(a.deviation_pct),
                weight: t.weight,
                score: Some(a.score),
                source: "declared",
                reasons: vec![],
            });
            continue;
        }
        let Some(scope) = parse_scope(inv, &t.scope) else {
            continue;
        };
        if !cache.iter().any(|(s, _)| *s == scope) {
            cache.push((scope, c.indicators(inv, scope)));
        }
        let inds = &cache
            .iter()
            .find(|(s, _)| *s == scope)
            .map(|(_, v)| v)
            .cloned()
            .unwrap_or_default();
        let ind = find(inds, &t.indicator, t.qualifier.as_deref());
        let unit_text = match ind.map(|i| i.unit) {
            Some(Unit::Ratio) => "%",
            Some(Unit::Milliseconds) => " ms",
            _ => "",
        };
        let actual = ind.and_then(display_value);
        let assessed = actual.map(|a| assess(a, t.value, t.comparator, t.weight));
        let missed = assessed.is_some_and(|a| a.completion_pct < Decimal::ONE_HUNDRED);
        rows.push(Row {
            level1: t.level1.clone(),
            level2: t.level2.clone(),
            label: t.label.clone(),
            indicator: t.indicator.clone(),
            scope: t.scope.clone(),
            qualifier: t.qualifier.clone(),
            target: target_text(unit_text),
            actual: match (ind, actual) {
                (Some(i), Some(_)) if i.unit == Unit::Ratio => {
                    format!(
                        "{}%",
                        ratio_pct(i.ratio.num, i.ratio.den).unwrap_or_default()
                    )
                }
                (Some(i), Some(v)) => format_value(v, i.unit),
                _ => String::new(),
            },
            numerator: ind.map(|i| i.numerator),
            denominator: ind.map(|i| i.denominator),
            completion_pct: assessed.map(|a| a.completion_pct),
            deviation_pct: assessed.map(|a| a.deviation_pct),
            weight: t.weight,
            score: assessed.map(|a| a.score),
            source: "measured",
            reasons: if missed || actual.is_none() {
                reasons(inv, c, &t.indicator, scope, t.qualifier.as_deref())
            } else {
                vec![]
            },
        });
    }
    let total_weight = rows.iter().map(|r| r.weight).sum();
    let total_score = rows.iter().filter_map(|r| r.score).sum();
    Report {
        from: rfc3339_ms(c.from),
        to: rfc3339_ms(c.to),
        policy: c.policy,
        rows,
        total_weight,
        total_score,
    }
}

/// Whether a comparator is satisfied (for API summaries).
pub fn met(actual: Decimal, target: Decimal, cmp: Comparator) -> bool {
    match cmp {
        Comparator::AtLeast => actual >= target,
        Comparator::AtMost => actual <= target,
    }
}
