//! The indicator engine: every indicator over a window [from, to), for any scope, from the
//! inventory and its history. Formulas are written down in `docs/indicators.md`.
//!
//! Time-weighted rates are unit-time ratios: Σ (time a unit was online while counted) ÷
//! Σ (time it was counted). With every unit counted for the whole window this is the plain
//! average of each unit's online share; a unit added or suspended mid-window weighs in for
//! the part of the window it was counted.

use super::history::{bucket_upper_ms, AlarmFact, History, Reg};
use super::intervals::{self as iv, Span};
use crate::core::alarms::AlarmType;
use crate::core::inventory::Inventory;
use crate::model::{PlatformStatus, SiteKind, SystemKind};
use serde::{Deserialize, Serialize};

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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case", tag = "type", content = "id")]
pub enum Scope {
    Region,
    Site(u32),
    Enterprise(u32),
}

/// A measured value as an exact ratio of integers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Ratio {
    pub num: i128,
    pub den: i128,
}

impl Ratio {
    pub fn value(self) -> Option<f64> {
        (self.den != 0).then(|| self.num as f64 / self.den as f64)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Unit {
    /// A share in [0, 1]; shown as a percentage.
    Ratio,
    Count,
    Milliseconds,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Indicator {
    pub id: &'static str,
    /// System kind for `system_count`, link name for `link_stability`.
    pub qualifier: Option<String>,
    pub unit: Unit,
    /// Exact value; for time-weighted rates num and den are unit-milliseconds.
    pub ratio: Ratio,
    /// Numerator and denominator as the report shows them: units (time-weighted rates divide
    /// unit-milliseconds by the window length, giving unit-equivalents).
    pub numerator: f64,
    pub denominator: f64,
}

impl Indicator {
    pub fn value(&self) -> Option<f64> {
        self.ratio.value()
    }
}

/// Per-device facts for the window.
#[derive(Debug, Clone, Default)]
pub struct DeviceFacts {
    pub counted_ms: i64,
    pub online_ms: i64,
    pub counted_at_to: bool,
    pub online_at_to: bool,
    pub registered_at_to: bool,
    pub reported_by_to: bool,
    pub online_in_window: bool,
    /// Counted but offline: total, number of outages, and the longest.
    pub down_ms: i64,
    pub outages: u32,
    pub longest: Option<Span>,
}

#[derive(Debug, Clone, Default)]
pub struct GroupFacts {
    pub counted_ms: i64,
    pub online_ms: i64,
    pub counted_at_to: bool,
    pub online_at_to: bool,
    pub registered_at_to: bool,
    pub built_at_to: bool,
    pub down_ms: i64,
    pub longest: Option<Span>,
}

/// Everything the engine worked out for one window; indicators for any scope are sums.
#[derive(Debug, Clone)]
pub struct Computation {
    pub from: i64,
    /// The window end actually used: `min(to, now)`; time after now is not measured.
    pub to: i64,
    pub policy: Policy,
    pub devices: Vec<DeviceFacts>,
    pub systems: Vec<GroupFacts>,
    pub zones: Vec<GroupFacts>,
    /// Enterprise: (counted at to, platform built or pushed data, had a device online in window).
    pub enterprises: Vec<(bool, bool, bool)>,
    pub latency: Vec<Vec<(u32, u64)>>,
    pub links: Vec<(String, i64, i64)>,
    pub polls: Vec<(String, u64, u64)>,
    /// Alarms raised in the window.
    pub alarms: Vec<AlarmFact>,
}

/// Spans during which a unit is counted under the policy.
fn counted_spans(
    status: &[(i64, Reg)],
    site: &[(i64, Reg)],
    p: Denominator,
    end: i64,
) -> Vec<Span> {
    match p {
        Denominator::Planned => iv::spans_where(status, Reg::Removed, end, |r| r != Reg::Removed),
        Denominator::Active => {
            let unit = iv::spans_where(status, Reg::Removed, end, |r| r == Reg::Built);
            let site = iv::spans_where(site, Reg::Removed, end, |r| r == Reg::Built);
            iv::intersect(&unit, &site)
        }
    }
}

fn registered(status: &[(i64, Reg)], end: i64) -> Vec<Span> {
    iv::spans_where(status, Reg::Removed, end, |r| r != Reg::Removed)
}

/// `x` minus `y` (both sorted, disjoint).
fn subtract(x: &[Span], y: &[Span]) -> Vec<Span> {
    let mut out = Vec::new();
    let mut j = 0;
    for &(mut a, b) in x {
        while j < y.len() && y[j].1 <= a {
            j += 1;
        }
        let mut k = j;
        while k < y.len() && y[k].0 < b {
            if y[k].0 > a {
                out.push((a, y[k].0));
            }
            a = a.max(y[k].1);
            k += 1;
        }
        if a < b {
            out.push((a, b));
        }
    }
    out
}

fn down_facts(counted: &[Span], online: &[Span]) -> (i64, u32, Option<Span>) {
    let gaps = subtract(counted, online);
    let longest = gaps.iter().copied().max_by_key(|(a, b)| (b - a, -a));
    (iv::total(&gaps), gaps.len() as u32, longest)
}

/// The window a computation covers, and its policy.
struct Window {
    from: i64,
    to: i64,
    /// The last instant inside the window.
    at_to: i64,
    policy: Policy,
}

/// A site's registry history (empty for a site the history does not know).
fn site_hist(h: &History, s: u32) -> &[(i64, Reg)] {
    h.sites.get(s as usize).map_or(&[], |v| v.as_slice())
}

/// Each system: counted while built, online while its member devices meet the quorum.
fn system_facts(
    inv: &Inventory,
    h: &History,
    w: &Window,
    members: &[Vec<(Vec<Span>, Vec<Span>)>],
) -> Vec<GroupFacts> {
    inv.systems
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let status = h.systems.get(i).map_or(&[][..], |v| v.as_slice());
            let counted_all =
                counted_spans(status, site_hist(h, s.site), w.policy.denominator, w.to);
            let counted = iv::clip(&counted_all, w.from, w.to);
            let online = iv::quorum_spans(&members[i], w.from, w.to, |n| {
                w.policy.online_quorum.need(n)
            });
            let (down_ms, _, longest) = down_facts(&counted, &online);
            GroupFacts {
                counted_ms: iv::total(&counted),
                online_ms: iv::overlap(&online, &counted),
                counted_at_to: iv::contains(&counted_all, w.at_to),
                online_at_to: iv::contains(&online, w.at_to),
                registered_at_to: iv::contains(&registered(status, w.to), w.at_to),
                built_at_to: iv::contains(
                    &iv::spans_where(status, Reg::Removed, w.to, |r| r == Reg::Built),
                    w.at_to,
                ),
                down_ms,
                longest,
            }
        })
        .collect()
}

/// Each zone: covered while at least one of its devices is online.
fn zone_facts(
    inv: &Inventory,
    h: &History,
    w: &Window,
    members: &[Vec<(Vec<Span>, Vec<Span>)>],
) -> Vec<GroupFacts> {
    inv.zones
        .iter()
        .enumerate()
        .map(|(i, z)| {
            let reg_at = h.zones.get(i).copied().flatten();
            let status: Vec<(i64, Reg)> = reg_at.map(|t| vec![(t, Reg::Built)]).unwrap_or_default();
            let counted_all =
                counted_spans(&status, site_hist(h, z.site), w.policy.denominator, w.to);
            let counted = iv::clip(&counted_all, w.from, w.to);
            let covered = iv::quorum_spans(&members[i], w.from, w.to, |n| 1.min(n));
            let (down_ms, _, longest) = down_facts(&counted, &covered);
            GroupFacts {
                counted_ms: iv::total(&counted),
                online_ms: iv::overlap(&covered, &counted),
                counted_at_to: iv::contains(&counted_all, w.at_to),
                online_at_to: iv::contains(&covered, w.at_to),
                registered_at_to: reg_at.is_some_and(|t| t < w.to),
                built_at_to: true,
                down_ms,
                longest,
            }
        })
        .collect()
}

/// Each enterprise: (counted; connected: its platform built or one of its devices reported by
/// the end; one of its devices online in the window).
fn enterprise_facts(
    inv: &Inventory,
    h: &History,
    w: &Window,
    devices: &[DeviceFacts],
) -> Vec<(bool, bool, bool)> {
    let mut enterprises: Vec<(bool, bool, bool)> = inv
        .enterprises
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let reg = h
                .enterprises
                .get(i)
                .copied()
                .flatten()
                .is_some_and(|t| t < w.to);
            let site_ok = match w.policy.denominator {
                Denominator::Planned => true,
                Denominator::Active => iv::contains(
                    &iv::spans_where(site_hist(h, e.site), Reg::Removed, w.to, |r| {
                        r == Reg::Built
                    }),
                    w.at_to,
                ),
            };
            (reg && site_ok, e.platform == PlatformStatus::Built, false)
        })
        .collect();
    for (i, d) in inv.devices.iter().enumerate() {
        if let Some(e) = d.enterprise {
            let f = &devices[i];
            let ent = &mut enterprises[e as usize];
            ent.1 |= f.reported_by_to;
            ent.2 |= f.online_in_window;
        }
    }
    enterprises
}

pub fn compute(
    inv: &Inventory,
    h: &History,
    from: i64,
    to: i64,
    now: i64,
    policy: Policy,
) -> Computation {
    let to = to.min(now).max(from);
    let at_to = to - 1;

    let mut system_members: Vec<Vec<(Vec<Span>, Vec<Span>)>> = vec![Vec::new(); inv.systems.len()];
    let mut zone_members: Vec<Vec<(Vec<Span>, Vec<Span>)>> = vec![Vec::new(); inv.zones.len()];
    let mut devices = Vec::with_capacity(inv.devices.len());
    for (i, d) in inv.devices.iter().enumerate() {
        let Some(dh) = h.devices.get(i) else {
            devices.push(DeviceFacts::default());
            continue;
        };
        let counted_all = counted_spans(&dh.status, site_hist(h, d.site), policy.denominator, to);
        let online_all = iv::spans_where(&dh.transitions, false, to, |v| v);
        let counted = iv::clip(&counted_all, from, to);
        let online = iv::clip(&online_all, from, to);
        let (down_ms, outages, longest) = down_facts(&counted, &online);
        devices.push(DeviceFacts {
            counted_ms: iv::total(&counted),
            online_ms: iv::overlap(&online, &counted),
            counted_at_to: iv::contains(&counted_all, at_to),
            online_at_to: iv::contains(&online_all, at_to),
            registered_at_to: iv::contains(&registered(&dh.status, to), at_to),
            reported_by_to: dh.transitions.iter().any(|&(t, on)| on && t < to),
            online_in_window: !online.is_empty(),
            down_ms,
            outages,
            longest,
        });
        if let Some(s) = d.system {
            let built = iv::clip(
                &iv::spans_where(&dh.status, Reg::Removed, to, |r| r == Reg::Built),
                from,
                to,
            );
            let on = iv::intersect(&online, &built);
            system_members[s as usize].push((built, on));
        }
        if let Some(z) = d.zone {
            let reg = iv::clip(&registered(&dh.status, to), from, to);
            let on = iv::intersect(&online, &reg);
            zone_members[z as usize].push((reg, on));
        }
    }

    let w = Window {
        from,
        to,
        at_to,
        policy,
    };
    let systems = system_facts(inv, h, &w, &system_members);
    let zones = zone_facts(inv, h, &w, &zone_members);
    let enterprises = enterprise_facts(inv, h, &w, &devices);

    let links = h
        .links
        .iter()
        .map(|(name, changes)| {
            let up = iv::clip(&iv::spans_where(changes, false, to, |v| v), from, to);
            (name.clone(), iv::total(&up), to - from)
        })
        .collect();

    Computation {
        from,
        to,
        policy,
        devices,
        systems,
        zones,
        enterprises,
        latency: h.latency.clone(),
        links,
        polls: h.polls.clone(),
        alarms: h.alarms.clone(),
    }
}

fn ratio_ind(id: &'static str, num: i128, den: i128, window: i64) -> Indicator {
    let w = window.max(1) as f64;
    Indicator {
        id,
        qualifier: None,
        unit: Unit::Ratio,
        ratio: Ratio { num, den },
        numerator: num as f64 / w,
        denominator: den as f64 / w,
    }
}

fn count_ind(
    id: &'static str,
    qualifier: Option<String>,
    unit: Unit,
    num: i128,
    den: i128,
) -> Indicator {
    Indicator {
        id,
        qualifier,
        unit,
        ratio: Ratio { num, den },
        numerator: num as f64,
        denominator: den as f64,
    }
}

/// Nearest-rank percentile from a merged histogram: the upper edge of the bucket holding
/// the ⌈p·N⌉-th smallest latency.
pub fn percentile(hist: &[(u32, u64)], p: f64) -> Option<i64> {
    let mut merged: Vec<(u32, u64)> = hist.to_vec();
    merged.sort_unstable();
    let n: u64 = merged.iter().map(|(_, c)| c).sum();
    if n == 0 {
        return None;
    }
    let rank = ((p * n as f64).ceil() as u64).clamp(1, n);
    let mut seen = 0;
    for (b, c) in merged {
        seen += c;
        if seen >= rank {
            return Some(bucket_upper_ms(b));
        }
    }
    None
}

impl Computation {
    pub fn window_ms(&self) -> i64 {
        self.to - self.from
    }

    fn device_in(&self, inv: &Inventory, i: usize, scope: Scope) -> bool {
        let d = &inv.devices[i];
        match scope {
            Scope::Region => true,
            Scope::Site(s) => d.site == s,
            Scope::Enterprise(e) => d.enterprise == Some(e),
        }
    }

    /// Whether device `i` is an online-rate unit (mine devices are not, when mines count systems).
    fn device_is_unit(&self, inv: &Inventory, i: usize) -> bool {
        let d = &inv.devices[i];
        inv.sites[d.site as usize].kind == SiteKind::Park
            || self.policy.mine_units == MineUnits::Devices
    }

    fn systems_in(&self, inv: &Inventory, scope: Scope) -> impl Iterator<Item = usize> + '_ {
        let site = match scope {
            Scope::Region => None,
            Scope::Site(s) => Some(s),
            Scope::Enterprise(_) => Some(u32::MAX), // systems belong to mines, not enterprises
        };
        let sites: Vec<u32> = inv.systems.iter().map(|s| s.site).collect();
        (0..sites.len()).filter(move |&i| site.is_none_or(|s| sites[i] == s))
    }

    /// Every indicator for `scope`.
    pub fn indicators(&self, inv: &Inventory, scope: Scope) -> Vec<Indicator> {
        let w = self.window_ms();
        let mut out = Vec::new();
        let mine_systems = self.policy.mine_units == MineUnits::Systems;

        // Online rate (time-weighted) and its snapshot at `to`.
        let (mut on, mut cnt, mut on_now, mut cnt_now) = (0i128, 0i128, 0i128, 0i128);
        for (i, f) in self.devices.iter().enumerate() {
            if self.device_in(inv, i, scope) && self.device_is_unit(inv, i) {
                on += f.online_ms as i128;
                cnt += f.counted_ms as i128;
                cnt_now += f.counted_at_to as i128;
                on_now += (f.counted_at_to && f.online_at_to) as i128;
            }
        }
        if mine_systems {
            for i in self.systems_in(inv, scope) {
                let f = &self.systems[i];
                on += f.online_ms as i128;
                cnt += f.counted_ms as i128;
                cnt_now += f.counted_at_to as i128;
                on_now += (f.counted_at_to && f.online_at_to) as i128;
            }
        }
        out.push(ratio_ind("online_rate", on, cnt, w));
        out.push(count_ind(
            "online_rate_at_end",
            None,
            Unit::Ratio,
            on_now,
            cnt_now,
        ));

        // Coverage of public-area zones.
        if !matches!(scope, Scope::Enterprise(_)) {
            let (mut cov, mut cnt) = (0i128, 0i128);
            for (i, z) in inv.zones.iter().enumerate() {
                if matches!(scope, Scope::Site(s) if s != z.site) {
                    continue;
                }
                cov += self.zones[i].online_ms as i128;
                cnt += self.zones[i].counted_ms as i128;
            }
            out.push(ratio_ind("coverage_rate", cov, cnt, w));
        }

        // Device build completion: reported at least once by `to`, over registered devices.
        let (mut rep, mut reg) = (0i128, 0i128);
        for (i, f) in self.devices.iter().enumerate() {
            if self.device_in(inv, i, scope) && f.registered_at_to {
                reg += 1;
                rep += f.reported_by_to as i128;
            }
        }
        out.push(count_ind("device_build_rate", None, Unit::Ratio, rep, reg));

        // Enterprises.
        let (mut n, mut platform, mut access) = (0i128, 0i128, 0i128);
        for (i, e) in inv.enterprises.iter().enumerate() {
            let inside = match scope {
                Scope::Region => true,
                Scope::Site(s) => e.site == s,
                Scope::Enterprise(x) => x as usize == i,
            };
            let (counted, plat, acc) = self.enterprises[i];
            if inside && counted {
                n += 1;
                platform += plat as i128;
                access += acc as i128;
            }
        }
        out.push(count_ind(
            "enterprise_platform_rate",
            None,
            Unit::Ratio,
            platform,
            n,
        ));
        out.push(count_ind(
            "enterprise_access_rate",
            None,
            Unit::Ratio,
            access,
            n,
        ));

        // Systems built and online for at least the configured share of the window, by kind.
        if !matches!(scope, Scope::Enterprise(_)) {
            for kind in SYSTEM_KINDS {
                let (mut ok, mut built) = (0i128, 0i128);
                for i in self.systems_in(inv, scope) {
                    if inv.systems[i].kind != kind {
                        continue;
                    }
                    let f = &self.systems[i];
                    if f.built_at_to {
                        built += 1;
                        if f.counted_ms > 0
                            && f.online_ms as f64
                                >= self.policy.system_online_share * f.counted_ms as f64
                        {
                            ok += 1;
                        }
                    }
                }
                out.push(count_ind(
                    "system_count",
                    Some(system_kind_str(kind).into()),
                    Unit::Count,
                    ok,
                    built,
                ));
            }
        }

        // Latency percentiles.
        if !matches!(scope, Scope::Enterprise(_)) {
            let hist: Vec<(u32, u64)> = self
                .latency
                .iter()
                .enumerate()
                .filter(|(s, _)| !matches!(scope, Scope::Site(x) if x as usize != *s))
                .flat_map(|(_, h)| h.iter().copied())
                .collect();
            let n: u64 = hist.iter().map(|(_, c)| c).sum();
            for (id, p) in [
                ("latency_p50_ms", 0.50),
                ("latency_p95_ms", 0.95),
                ("latency_p99_ms", 0.99),
            ] {
                let v = percentile(&hist, p);
                out.push(Indicator {
                    id,
                    qualifier: None,
                    unit: Unit::Milliseconds,
                    ratio: Ratio {
                        num: v.unwrap_or(0) as i128,
                        den: v.is_some() as i128,
                    },
                    numerator: v.unwrap_or(0) as f64,
                    denominator: n as f64,
                });
            }
        }

        // Alarm response rate: of the alarms raised in the window whose deadline passed
        // before `to`, the share acknowledged by their deadline. Alarms still inside their
        // deadline are pending and counted in neither.
        let alarms: Vec<&AlarmFact> = self
            .alarms
            .iter()
            .filter(|a| self.device_in(inv, a.device as usize, scope))
            .collect();
        let tally = |keep: &dyn Fn(&AlarmFact) -> bool| {
            let (mut ok, mut decided) = (0i128, 0i128);
            for a in alarms.iter().filter(|a| keep(a)) {
                if alarm_decided(a, self.to) {
                    decided += 1;
                    ok += alarm_responded(a) as i128;
                }
            }
            (ok, decided)
        };
        let (ok, decided) = tally(&|_| true);
        out.push(count_ind(
            "alarm_response_rate",
            None,
            Unit::Ratio,
            ok,
            decided,
        ));
        for t in AlarmType::ALL {
            let (ok, decided) = tally(&|a| a.alarm_type == t);
            out.push(count_ind(
                "alarm_response_rate",
                Some(format!("type:{}", t.as_str())),
                Unit::Ratio,
                ok,
                decided,
            ));
        }
        let top = alarms.iter().map(|a| a.level).max().unwrap_or(0).max(2);
        for level in 1..=top {
            let (ok, decided) = tally(&|a| a.level == level);
            out.push(count_ind(
                "alarm_response_rate",
                Some(format!("level:{level}")),
                Unit::Ratio,
                ok,
                decided,
            ));
        }
        let pending = alarms.iter().filter(|a| !alarm_decided(a, self.to)).count();
        out.push(count_ind(
            "alarms_pending",
            None,
            Unit::Count,
            pending as i128,
            1,
        ));
        out.push(count_ind(
            "alarms_raised",
            None,
            Unit::Count,
            alarms.len() as i128,
            1,
        ));

        // Link stability (region only: links belong to the gateway).
        if scope == Scope::Region {
            for (name, up, total) in &self.links {
                let mut ind = ratio_ind("link_stability", *up as i128, *total as i128, w);
                ind.qualifier = Some(name.clone());
                out.push(ind);
            }
            for (name, ok, failed) in &self.polls {
                out.push(count_ind(
                    "poll_success_ratio",
                    Some(name.clone()),
                    Unit::Ratio,
                    *ok as i128,
                    (*ok + *failed) as i128,
                ));
            }
        }
        out
    }
}

/// Whether an alarm's outcome is known by `to`: its deadline passed inside the window.
pub fn alarm_decided(a: &AlarmFact, to: i64) -> bool {
    a.deadline_ms < to
}

/// Acknowledged by its deadline.
pub fn alarm_responded(a: &AlarmFact) -> bool {
    a.ack_ms.is_some_and(|t| t <= a.deadline_ms)
}

/// The indicator ids the engine measures (targets may name these).
pub const MEASURED: [&str; 15] = [
    "online_rate",
    "online_rate_at_end",
    "coverage_rate",
    "device_build_rate",
    "enterprise_platform_rate",
    "enterprise_access_rate",
    "system_count",
    "latency_p50_ms",
    "latency_p95_ms",
    "latency_p99_ms",
    "link_stability",
    "poll_success_ratio",
    "alarm_response_rate",
    "alarms_pending",
    "alarms_raised",
];

pub const SYSTEM_KINDS: [SystemKind; 5] = [
    SystemKind::SlopeMonitoring,
    SystemKind::VideoMonitoring,
    SystemKind::AiVideo,
    SystemKind::MajorHazard,
    SystemKind::Positioning,
];

pub fn system_kind_str(k: SystemKind) -> &'static str {
    match k {
        SystemKind::SlopeMonitoring => "slope_monitoring",
        SystemKind::VideoMonitoring => "video_monitoring",
        SystemKind::AiVideo => "ai_video",
        SystemKind::MajorHazard => "major_hazard",
        SystemKind::Positioning => "positioning",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subtract_spans() {
        assert_eq!(
            subtract(&[(0, 100)], &[(10, 20), (50, 60)]),
            vec![(0, 10), (20, 50), (60, 100)]
        );
        assert_eq!(subtract(&[(0, 100)], &[(0, 100)]), vec![]);
        assert_eq!(
            subtract(&[(0, 10), (20, 30)], &[(5, 25)]),
            vec![(0, 5), (25, 30)]
        );
    }

    #[test]
    fn quorum_need() {
        assert_eq!(Quorum::Any.need(4), 1);
        assert_eq!(Quorum::All.need(4), 4);
        assert_eq!(Quorum::Fraction(0.5).need(3), 2);
        assert_eq!(Quorum::Any.need(0), 0);
    }

    #[test]
    fn percentiles_nearest_rank() {
        let h = vec![(10, 50), (20, 45), (900, 5)];
        assert_eq!(percentile(&h, 0.5), Some(10));
        assert_eq!(percentile(&h, 0.95), Some(20));
        assert_eq!(percentile(&h, 0.99), Some(900));
        assert_eq!(percentile(&[], 0.5), None);
    }
}
