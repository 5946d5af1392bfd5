//! The self-evaluation table (自评表) and the measured reasons behind every shortfall.

pub mod evaluate;
pub mod findings;
mod format;
pub mod rank;
#[cfg(test)]
pub(crate) mod tests;

pub use format::{to_csv, to_markdown};
pub use rank::{human, Folded, Shortfall, FOLD_MAX, FOLD_SHARE_PCT};

use crate::core::config::indicators::TargetConfig;
use crate::core::indicators::engine::{Computation, DeviceFacts, Indicator, Scope, Unit};
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
    /// Measured reasons when the target is missed, ranked; the long tail is in `folded`
    /// unless every reason was asked for.
    pub reasons: Vec<Reason>,
    /// The reasons not listed, as one line.
    pub folded: Option<Folded>,
    /// What the reasons explain: the shortfall's unit and total.
    pub shortfall: Option<Shortfall>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Reason {
    /// device, system, zone, enterprise, link
    pub unit: &'static str,
    pub id: String,
    pub site: String,
    /// What the reason costs in the window, ms of unit-time: the ranking key (rules per
    /// indicator in `docs/indicators.md`).
    pub cost_ms: i64,
    /// Share of the row's shortfall it explains, a ratio rounded to 6 decimals; the listed
    /// shares and `folded.share` add up to exactly 1.
    pub share: Decimal,
    /// Time counted but down in the window, ms (0 for count-based reasons).
    pub down_ms: i64,
    pub outages: u32,
    pub longest_from: Option<String>,
    pub longest_to: Option<String>,
    pub never_reported: bool,
    /// The reason in English, for scripts and the Markdown and CSV reports.
    pub note: String,
    /// What `note` says, for a reader to word it in its own language: one of
    /// [`NOTE_CODES`], with `note_params` (durations in ms, times RFC 3339).
    pub note_code: &'static str,
    pub note_params: serde_json::Value,
    /// Its part of the shortfall in the shortfall's unit: `cost_ms` for time-weighted rates,
    /// 1 for a unit or alarm of a count rate, failed polls.
    #[serde(skip)]
    weight: i128,
}

/// Every `note_code` a reason may carry, with the names of its `note_params`.
pub const NOTE_CODES: &[(&str, &[&str])] = &[
    ("device_never_reported", &["registered", "counted_ms"]),
    (
        "device_down",
        &[
            "offline_ms",
            "outages",
            "faults",
            "other_faults_ms",
            "never_ms",
            "registered",
            "first_reading",
        ],
    ),
    ("device_not_reported_status", &["registered", "status"]),
    ("system_no_file", &["down_ms"]),
    ("system_below_quorum", &["down_ms"]),
    (
        "system_below_share",
        &["share_pct", "needed_pct", "down_ms"],
    ),
    ("system_not_built", &["status"]),
    (
        "alarm_late",
        &[
            "alarm_type",
            "level",
            "device",
            "raised",
            "after_ms",
            "deadline_ms",
            "late_ms",
        ],
    ),
    (
        "alarm_unacknowledged",
        &[
            "alarm_type",
            "level",
            "device",
            "raised",
            "deadline_ms",
            "deadline_at",
            "past_ms",
        ],
    ),
    ("zone_uncovered", &["down_ms"]),
    ("zone_no_device", &["counted_ms"]),
    ("enterprise_no_access", &["window_ms"]),
    ("enterprise_no_platform", &[]),
    ("link_down", &["down_ms"]),
    ("polls_failed", &["failed", "polls"]),
];

/// A reason's wording: its code, parameters and English text.
struct Said {
    code: &'static str,
    params: serde_json::Value,
    text: String,
}

fn said(code: &'static str, params: serde_json::Value, text: String) -> Said {
    debug_assert!(
        NOTE_CODES.iter().any(|(c, _)| *c == code),
        "{code} is in NOTE_CODES"
    );
    Said { code, params, text }
}

impl Reason {
    /// A reason that is a fact, not a stretch of time (never reported, no platform …).
    fn fact(unit: &'static str, id: String, site: String, note: Said) -> Reason {
        Reason {
            unit,
            id,
            site,
            cost_ms: 0,
            share: Decimal::ZERO,
            weight: 1,
            down_ms: 0,
            outages: 0,
            longest_from: None,
            longest_to: None,
            never_reported: false,
            note: note.text,
            note_code: note.code,
            note_params: note.params,
        }
    }

    /// Costs `cost_ms` of unit-time and weighs that much in the shortfall (time-weighted).
    fn timed(self, cost_ms: i64) -> Reason {
        Reason {
            cost_ms,
            weight: cost_ms as i128,
            ..self
        }
    }

    /// Costs `cost_ms` (its ranking key) and one unit of a count shortfall.
    fn counted(self, cost_ms: i64) -> Reason {
        Reason {
            cost_ms,
            weight: 1,
            ..self
        }
    }

    /// A system or zone that was down (below quorum, uncovered) for part of the window.
    fn group(
        unit: &'static str,
        id: String,
        site: String,
        f: &crate::core::indicators::engine::GroupFacts,
        note: Said,
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
    /// Declared settings the rules do not allow (a mine's CDDY thresholds), as of the
    /// inventory the report was computed on.
    pub findings: Vec<findings::FindingRow>,
}

fn find<'a>(inds: &'a [Indicator], id: &str, q: Option<&str>) -> Option<&'a Indicator> {
    inds.iter()
        .find(|i| i.id == id && (q.is_none() || i.qualifier.as_deref() == q))
}

/// A mine point's faulty time by cause, the largest three named: "substation F003 通信中断
/// 40 min, 传感器故障 3 min in the window (faulty, not online)".
fn fault_text(causes: &[(Option<std::sync::Arc<str>>, i64)]) -> String {
    let mut named: Vec<String> = causes
        .iter()
        .take(3)
        .map(|(c, t)| format!("{} {}", c.as_deref().unwrap_or("faulty"), human(*t)))
        .collect();
    if causes.len() > 3 {
        let rest: i64 = causes[3..].iter().map(|(_, t)| t).sum();
        named.push(format!("other faults {}", human(rest)));
    }
    format!("{} in the window (faulty, not online)", named.join(", "))
}

/// A down device's `note_params`: what `fault_text` and the parts of its note name.
fn down_params(f: &DeviceFacts) -> serde_json::Value {
    let faults: Vec<serde_json::Value> = f
        .fault_causes
        .iter()
        .take(3)
        .map(|(c, t)| serde_json::json!({"cause": c.as_deref(), "ms": t}))
        .collect();
    let other: i64 = f.fault_causes.iter().skip(3).map(|(_, t)| t).sum();
    serde_json::json!({
        "offline_ms": if f.outages > 0 { f.down_ms - f.never_ms - f.fault_ms } else { 0 },
        "outages": f.outages,
        "faults": if f.fault_ms > 0 { faults } else { vec![] },
        "other_faults_ms": if f.fault_ms > 0 { other } else { 0 },
        "never_ms": f.never_ms,
        "registered": f.registered_ms.map(rfc3339_ms),
        "first_reading": f.first_reading_ms.map(rfc3339_ms),
    })
}

/// "1 outage", "3 outages".
fn outages(n: u32) -> String {
    if n == 1 {
        "1 outage".into()
    } else {
        format!("{n} outages")
    }
}

/// The unit a row's shortfall is measured in (see [`Shortfall`]).
pub fn shortfall_unit(indicator: &str) -> &'static str {
    match indicator {
        "online_rate" | "coverage_rate" | "link_stability" => "unit_ms",
        "poll_success_ratio" => "polls",
        _ => "units",
    }
}

/// Every reason behind a missed target, ranked (largest cost first), each with its share of
/// the shortfall.
pub fn reasons(
    inv: &Inventory,
    c: &Computation,
    indicator: &str,
    scope: Scope,
    qualifier: Option<&str>,
) -> Vec<Reason> {
    let all = measured(inv, c, indicator, scope, qualifier);
    rank::arrange(all, shortfall_unit(indicator), false).0
}

/// Reasons behind a missed target, measured: which units were down, never reported, …
fn measured(
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

    /// A device's counted time in the window not online: never reported, no reading yet
    /// after its registration, outages after its first reading, faults of a mine's point.
    fn device_down(&self, i: usize, f: &DeviceFacts) -> Reason {
        let d = &self.inv.devices[i];
        let (a, b) = span(f.longest);
        let since = f
            .registered_ms
            .map(rfc3339_ms)
            .unwrap_or_else(|| "?".into());
        let note = if !f.reported_by_to {
            said(
                "device_never_reported",
                serde_json::json!({"registered": f.registered_ms.map(rfc3339_ms), "counted_ms": f.down_ms}),
                format!(
                    "never reported since its registration {since} ({} counted in the window)",
                    human(f.down_ms)
                ),
            )
        } else {
            let mut parts = Vec::new();
            if f.outages > 0 {
                parts.push(format!(
                    "offline {} in the window ({})",
                    human(f.down_ms - f.never_ms - f.fault_ms),
                    outages(f.outages)
                ));
            }
            if f.fault_ms > 0 {
                parts.push(fault_text(&f.fault_causes));
            }
            if f.never_ms > 0 {
                parts.push(format!(
                    "no reading yet for {} of the window after its registration {since} (first reading {})",
                    human(f.never_ms),
                    f.first_reading_ms.map(rfc3339_ms).unwrap_or_default()
                ));
            }
            said("device_down", down_params(f), parts.join("; "))
        };
        Reason {
            unit: "device",
            id: d.id.to_string(),
            site: self.site_of(d.site),
            cost_ms: f.down_ms,
            share: Decimal::ZERO,
            weight: f.down_ms as i128,
            down_ms: f.down_ms,
            outages: f.outages,
            longest_from: a,
            longest_to: b,
            never_reported: !f.reported_by_to,
            note: note.text,
            note_code: note.code,
            note_params: note.params,
        }
    }

    fn online(&self, indicator: &str, out: &mut Vec<Reason>) {
        let mine_devices = self.c.policy.mine_units == crate::core::indicators::MineUnits::Devices;
        let timed = indicator == "online_rate";
        for (i, f) in self.c.devices.iter().enumerate() {
            let d = &self.inv.devices[i];
            let unit = self.inv.sites[d.site as usize].kind == crate::model::SiteKind::Park
                || mine_devices;
            let down = if timed {
                f.down_ms > 0
            } else {
                f.counted_at_to && !f.online_at_to
            };
            if unit && self.dev_in(i) && down {
                let r = self.device_down(i, f);
                out.push(if timed { r } else { r.counted(f.down_ms) });
            }
        }
        if !mine_devices {
            let by_files = self.systems_fed_by_files();
            for (i, f) in self.c.systems.iter().enumerate() {
                let s = &self.inv.systems[i];
                let down = if timed {
                    f.down_ms > 0
                } else {
                    f.counted_at_to && !f.online_at_to
                };
                if self.in_site(s.site) && down {
                    let p = serde_json::json!({"down_ms": f.down_ms});
                    let note = if by_files[i] {
                        said(
                            "system_no_file",
                            p,
                            format!(
                                "no real-time file (CDSS) kept it networked for {} in the window",
                                human(f.down_ms)
                            ),
                        )
                    } else {
                        said(
                            "system_below_quorum",
                            p,
                            format!("below its device quorum {} in the window", human(f.down_ms)),
                        )
                    };
                    let r =
                        Reason::group("system", s.id.to_string(), self.site_of(s.site), f, note);
                    out.push(if timed {
                        r.timed(f.down_ms)
                    } else {
                        r.counted(f.down_ms)
                    });
                }
            }
        }
    }

    /// Which systems a mine's networking files feed (their points joined from a CDDY): their
    /// outages are gaps in the mine's uploads, and the reason says so.
    fn systems_fed_by_files(&self) -> Vec<bool> {
        let mut fed = vec![false; self.inv.systems.len()];
        for d in &self.inv.devices {
            if let (Some(s), crate::model::Protocol::MineFiles) = (d.system, d.protocol) {
                if let Some(f) = fed.get_mut(s as usize) {
                    *f = true;
                }
            }
        }
        fed
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
            let deadline = human(a.deadline_ms - a.raised_ms);
            let what = format!(
                "{} alarm level {} on device {:?} raised {}",
                a.alarm_type.as_str(),
                a.level,
                &*d.id,
                rfc3339_ms(a.raised_ms)
            );
            // Its cost: how long past its deadline it went unacknowledged in the window.
            let mut p = serde_json::json!({
                "alarm_type": a.alarm_type.as_str(),
                "level": a.level,
                "device": &*d.id,
                "raised": rfc3339_ms(a.raised_ms),
                "deadline_ms": a.deadline_ms - a.raised_ms,
            });
            let (note, late_ms) = match a.ack_ms {
                Some(t) if t < self.c.to => {
                    p["after_ms"] = (t - a.raised_ms).into();
                    p["late_ms"] = (t - a.deadline_ms).into();
                    let text = format!(
                        "{what}: acknowledged late, {} after the raise (deadline {deadline}, {} late)",
                        human(t - a.raised_ms),
                        human(t - a.deadline_ms)
                    );
                    (said("alarm_late", p, text), t - a.deadline_ms)
                }
                _ => {
                    p["deadline_at"] = rfc3339_ms(a.deadline_ms).into();
                    p["past_ms"] = (self.c.to - a.deadline_ms).into();
                    let text = format!(
                        "{what}: not acknowledged by its deadline ({deadline}, at {}; {} past it in the window)",
                        rfc3339_ms(a.deadline_ms),
                        human(self.c.to - a.deadline_ms)
                    );
                    (
                        said("alarm_unacknowledged", p, text),
                        self.c.to - a.deadline_ms,
                    )
                }
            };
            out.push(
                Reason::fact("alarm", a.id.to_string(), self.site_of(d.site), note)
                    .counted(late_ms.max(0)),
            );
        }
    }

    fn coverage(&self, out: &mut Vec<Reason>) {
        for (i, f) in self.c.zones.iter().enumerate() {
            let z = &self.inv.zones[i];
            if self.in_site(z.site) && f.down_ms > 0 {
                let has = self.inv.devices.iter().any(|d| d.zone == Some(i as u32));
                out.push(
                    Reason {
                        never_reported: !has,
                        ..Reason::group(
                            "zone",
                            z.id.to_string(),
                            self.site_of(z.site),
                            f,
                            if has {
                                said(
                                    "zone_uncovered",
                                    serde_json::json!({"down_ms": f.down_ms}),
                                    format!("no device online for {}", human(f.down_ms)),
                                )
                            } else {
                                said(
                                    "zone_no_device",
                                    serde_json::json!({"counted_ms": f.down_ms}),
                                    format!(
                                        "no monitoring device assigned ({} counted in the window)",
                                        human(f.down_ms)
                                    ),
                                )
                            },
                        )
                    }
                    .timed(f.down_ms),
                );
            }
        }
    }

    fn device_build(&self, out: &mut Vec<Reason>) {
        for (i, f) in self.c.devices.iter().enumerate() {
            let d = &self.inv.devices[i];
            if self.dev_in(i) && f.registered_at_to && !f.reported_by_to {
                // Its cost: the time it was registered in the window.
                let reg = f.registered_ms.unwrap_or(self.c.from);
                let cost = self.c.to - reg.clamp(self.c.from, self.c.to);
                let since = f
                    .registered_ms
                    .map(rfc3339_ms)
                    .unwrap_or_else(|| "?".into());
                out.push(
                    Reason {
                        never_reported: true,
                        ..Reason::fact(
                            "device",
                            d.id.to_string(),
                            self.site_of(d.site),
                            said(
                                "device_not_reported_status",
                                serde_json::json!({
                                    "registered": f.registered_ms.map(rfc3339_ms),
                                    "status": d.status.as_str(),
                                }),
                                format!(
                                    "never reported since its registration {since} (status {})",
                                    d.status.as_str()
                                ),
                            ),
                        )
                    }
                    .counted(cost),
                );
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
                // Its cost: the whole window (no device online in it / no platform at its end).
                out.push(
                    Reason::fact(
                        "enterprise",
                        e.id.to_string(),
                        self.site_of(e.site),
                        if indicator == "enterprise_access_rate" {
                            said(
                                "enterprise_no_access",
                                serde_json::json!({"window_ms": self.c.window_ms()}),
                                format!(
                                    "no device online in the window ({})",
                                    human(self.c.window_ms())
                                ),
                            )
                        } else {
                            said(
                                "enterprise_no_platform",
                                serde_json::json!({}),
                                "platform not built and no data pushed".into(),
                            )
                        },
                    )
                    .counted(self.c.window_ms()),
                );
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
                // Its cost: the time in the window it was not online.
                let cost = self.c.window_ms() - f.online_ms;
                out.push(
                    Reason::group(
                        "system",
                        s.id.to_string(),
                        self.site_of(s.site),
                        f,
                        if f.built_at_to {
                            let have = format!("{:.2}", share * 100.0);
                            let need = format!("{:.2}", self.c.policy.system_online_share * 100.0);
                            let text = format!(
                                "online {have}% of the window, needs {need}% (down {})",
                                human(f.down_ms)
                            );
                            let p = serde_json::json!({
                                "share_pct": have, "needed_pct": need, "down_ms": f.down_ms,
                            });
                            said("system_below_share", p, text)
                        } else {
                            said(
                                "system_not_built",
                                serde_json::json!({"status": s.status.as_str()}),
                                format!("not built (status {})", s.status.as_str()),
                            )
                        },
                    )
                    .counted(cost),
                );
            }
        }
    }

    fn link_stability(&self, out: &mut Vec<Reason>) {
        for (name, up, total) in &self.c.links {
            if self.qualifier.is_none_or(|q| q == name) && up < total {
                out.push(
                    Reason {
                        down_ms: total - up,
                        ..Reason::fact(
                            "link",
                            name.clone(),
                            String::new(),
                            said(
                                "link_down",
                                serde_json::json!({"down_ms": total - up}),
                                format!("down {} in the window", human(total - up)),
                            ),
                        )
                    }
                    .timed(total - up),
                );
            }
        }
    }

    fn poll_success(&self, out: &mut Vec<Reason>) {
        for (name, ok, failed) in &self.c.polls {
            if self.qualifier.is_none_or(|q| q == name) && *failed > 0 {
                out.push(Reason {
                    weight: *failed as i128,
                    ..Reason::fact(
                        "link",
                        name.clone(),
                        String::new(),
                        said(
                            "polls_failed",
                            serde_json::json!({"failed": failed, "polls": ok + failed}),
                            format!("{failed} of {} polls failed", ok + failed),
                        ),
                    )
                });
            }
        }
    }
}

/// Which reasons a report lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Listing {
    /// The largest, until they explain [`FOLD_SHARE_PCT`] of the shortfall or [`FOLD_MAX`]
    /// are listed; the rest in `folded`.
    #[default]
    Folded,
    /// Every reason; `folded` is empty.
    All,
}

/// Build the table for the configured targets, the reasons' tails folded.
pub fn build(inv: &Inventory, c: &Computation, targets: &[TargetConfig]) -> Report {
    build_with(inv, c, targets, Listing::Folded)
}

/// Build the table for the configured targets, listing reasons as `listing` says.
pub fn build_with(
    inv: &Inventory,
    c: &Computation,
    targets: &[TargetConfig],
    listing: Listing,
) -> Report {
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
                folded: None,
                shortfall: None,
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
        let (reasons, folded, shortfall) = if missed || actual.is_none() {
            rank::arrange(
                measured(inv, c, &t.indicator, scope, t.qualifier.as_deref()),
                shortfall_unit(&t.indicator),
                listing == Listing::Folded,
            )
        } else {
            (vec![], None, None)
        };
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
            reasons,
            folded,
            shortfall,
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
        findings: findings::rows(inv),
    }
}

/// Whether a comparator is satisfied (for API summaries).
pub fn met(actual: Decimal, target: Decimal, cmp: Comparator) -> bool {
    match cmp {
        Comparator::AtLeast => actual >= target,
        Comparator::AtMost => actual <= target,
    }
}
