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
use serde::Serialize;

pub use crate::core::config::indicators::{Denominator, MineUnits, Policy, Quorum};

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
    /// Counted but not online, in all: `never_ms` plus the outages' time.
    pub down_ms: i64,
    /// Of `down_ms`, the counted time before the first accepted reading (state `never`: not
    /// offline, and no outage); all of `down_ms` when it never reported by `to`.
    pub never_ms: i64,
    /// Outages after the first reading: how many, and the longest.
    pub outages: u32,
    pub longest: Option<Span>,
    /// The first registry entry (registration), if any.
    pub registered_ms: Option<i64>,
    /// The first accepted reading before `to`, if any.
    pub first_reading_ms: Option<i64>,
    /// Of `down_ms`, the time it was reachable but faulty (a mine's points only: see
    /// [`super::conditions`]), and that time by cause, the largest first.
    pub fault_ms: i64,
    pub fault_causes: Vec<(Option<std::sync::Arc<str>>, i64)>,
    /// Time under maintenance in the window while online: not counted.
    pub maintenance_ms: i64,
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
    sink: &mut dyn SpanSink,
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
            sink.system(i, &counted, &online);
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
    sink: &mut dyn SpanSink,
) -> Vec<GroupFacts> {
    inv.zones
        .iter()
        .enumerate()
        .map(|(i, z)| {
            let reg_at = h.zones.get(i).copied().flatten();
            let status: Vec<(i64, Reg)> = match h.zone_status.get(i) {
                Some(s) if !s.is_empty() => s.clone(),
                _ => reg_at.map(|t| vec![(t, Reg::Built)]).unwrap_or_default(),
            };
            let counted_all =
                counted_spans(&status, site_hist(h, z.site), w.policy.denominator, w.to);
            let counted = iv::clip(&counted_all, w.from, w.to);
            let covered = iv::quorum_spans(&members[i], w.from, w.to, |n| 1.min(n));
            sink.zone(i, &counted, &covered);
            let (down_ms, _, longest) = down_facts(&counted, &covered);
            GroupFacts {
                counted_ms: iv::total(&counted),
                online_ms: iv::overlap(&covered, &counted),
                counted_at_to: iv::contains(&counted_all, w.at_to),
                online_at_to: iv::contains(&covered, w.at_to),
                registered_at_to: iv::contains(&registered(&status, w.to), w.at_to),
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
            let reg = match h.enterprise_status.get(i) {
                // Registered at the window's end, by its history (it may have left).
                Some(s) if !s.is_empty() => iv::contains(&registered(s, w.to), w.at_to),
                _ => h
                    .enterprises
                    .get(i)
                    .copied()
                    .flatten()
                    .is_some_and(|t| t < w.to),
            };
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

/// What a computation saw of each unit, clipped to the window: its counted spans and its
/// online (or covered) spans. [`super::ledger`] keeps them summed by site.
pub trait SpanSink {
    fn device(&mut self, i: usize, counted: &[Span], online: &[Span]);
    fn system(&mut self, i: usize, counted: &[Span], online: &[Span]);
    fn zone(&mut self, i: usize, counted: &[Span], covered: &[Span]);
}

/// Sees nothing: a plain computation.
struct NoSpans;

impl SpanSink for NoSpans {
    fn device(&mut self, _: usize, _: &[Span], _: &[Span]) {}
    fn system(&mut self, _: usize, _: &[Span], _: &[Span]) {}
    fn zone(&mut self, _: usize, _: &[Span], _: &[Span]) {}
}

pub fn compute(
    inv: &Inventory,
    h: &History,
    from: i64,
    to: i64,
    now: i64,
    policy: Policy,
) -> Computation {
    compute_observed(inv, h, (from, to), now, policy, &mut NoSpans)
}

/// [`compute`], handing each unit's spans to `sink` on the way.
pub fn compute_observed(
    inv: &Inventory,
    h: &History,
    (from, to): Span,
    now: i64,
    policy: Policy,
    sink: &mut dyn SpanSink,
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
        let reached_all = iv::spans_where(&dh.transitions, false, to, |v| v);
        let cond = super::conditions::apply(
            &dh.conditions,
            &reached_all,
            to,
            d.protocol == crate::model::Protocol::MineFiles,
        );
        // Maintenance is neither counted nor online; a mine point's fault is counted, not online.
        let counted_all = subtract(&counted_all, &cond.maintenance);
        let reached_all = subtract(&reached_all, &cond.maintenance);
        let online_all = subtract(&reached_all, &cond.fault_spans());
        let counted = iv::clip(&counted_all, from, to);
        let online = iv::clip(&online_all, from, to);
        let reached = iv::clip(&reached_all, from, to);
        sink.device(i, &counted, &online);
        // Time before the first reading is `never`, not an outage: split the counted time there.
        let first_reading_ms = dh
            .transitions
            .iter()
            .find(|&&(t, on)| on && t < to)
            .map(|x| x.0);
        let split = first_reading_ms.unwrap_or(to).clamp(from, to);
        let never_ms = iv::total(&iv::clip(&counted, from, split));
        let (outage_ms, outages, longest) = down_facts(&iv::clip(&counted, split, to), &reached);
        let fault_causes = super::conditions::by_cause(&cond.faults, &counted);
        let fault_ms = fault_causes.iter().map(|(_, t)| t).sum::<i64>();
        devices.push(DeviceFacts {
            counted_ms: iv::total(&counted),
            online_ms: iv::overlap(&online, &counted),
            counted_at_to: iv::contains(&counted_all, at_to),
            online_at_to: iv::contains(&online_all, at_to),
            registered_at_to: iv::contains(&registered(&dh.status, to), at_to),
            reported_by_to: dh.transitions.iter().any(|&(t, on)| on && t < to),
            online_in_window: !online.is_empty(),
            down_ms: never_ms + outage_ms + fault_ms,
            never_ms,
            outages,
            longest,
            registered_ms: dh.status.first().map(|x| x.0),
            first_reading_ms,
            fault_ms,
            fault_causes,
            maintenance_ms: iv::total(&iv::clip(&cond.maintenance, from, to)),
        });
        if let Some(s) = d.system {
            let built = iv::clip(
                &subtract(
                    &iv::spans_where(&dh.status, Reg::Removed, to, |r| r == Reg::Built),
                    &cond.maintenance,
                ),
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
    let systems = system_facts(inv, h, &w, &system_members, sink);
    let zones = zone_facts(inv, h, &w, &zone_members, sink);
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

pub(super) fn ratio_ind(id: IndicatorId, num: i128, den: i128, window: i64) -> Indicator {
    let w = window.max(1) as f64;
    Indicator {
        id: id.name(),
        qualifier: None,
        unit: Unit::Ratio,
        ratio: Ratio { num, den },
        numerator: num as f64 / w,
        denominator: den as f64 / w,
    }
}

pub(super) fn count_ind(
    id: IndicatorId,
    qualifier: Option<String>,
    unit: Unit,
    num: i128,
    den: i128,
) -> Indicator {
    Indicator {
        id: id.name(),
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

    /// Every indicator for `scope`, in [`IndicatorId::ALL`] order (API responses, reports and
    /// the store keep this order).
    pub fn indicators(&self, inv: &Inventory, scope: Scope) -> Vec<Indicator> {
        let mut out = Vec::new();
        for id in IndicatorId::ALL {
            self.measure(id, inv, scope, &mut out);
        }
        out
    }

    /// Appends indicator `id` for `scope` to `out`: one row, one per qualifier, or none where
    /// the indicator does not apply to the scope.
    fn measure(&self, id: IndicatorId, inv: &Inventory, scope: Scope, out: &mut Vec<Indicator>) {
        use IndicatorId as I;
        match id {
            I::OnlineRate => out.push(self.online_rate(inv, scope)),
            I::OnlineRateAtEnd => out.push(self.online_rate_at_end(inv, scope)),
            I::CoverageRate => out.extend(self.coverage_rate(inv, scope)),
            I::DeviceBuildRate => out.push(self.device_build_rate(inv, scope)),
            I::EnterprisePlatformRate => out.push(self.enterprise_platform_rate(inv, scope)),
            I::EnterpriseAccessRate => out.push(self.enterprise_access_rate(inv, scope)),
            I::SystemCount => self.system_count(inv, scope, out),
            I::LatencyP50Ms => out.extend(self.latency(I::LatencyP50Ms, 0.50, scope)),
            I::LatencyP95Ms => out.extend(self.latency(I::LatencyP95Ms, 0.95, scope)),
            I::LatencyP99Ms => out.extend(self.latency(I::LatencyP99Ms, 0.99, scope)),
            I::AlarmResponseRate => self.alarm_response_rate(inv, scope, out),
            I::AlarmsPending => out.push(self.alarms_pending(inv, scope)),
            I::AlarmsRaised => out.push(self.alarms_raised(inv, scope)),
            I::LinkStability => self.link_stability(scope, out),
            I::PollSuccessRatio => self.poll_success_ratio(scope, out),
        }
    }

    /// Online-rate units of `scope`: park devices, and mine systems or devices per
    /// `mine_units`.
    fn online_tally(&self, inv: &Inventory, scope: Scope) -> OnlineTally {
        let mut t = OnlineTally::default();
        for (i, f) in self.devices.iter().enumerate() {
            if self.device_in(inv, i, scope) && self.device_is_unit(inv, i) {
                t.add(f.online_ms, f.counted_ms, f.counted_at_to, f.online_at_to);
            }
        }
        if self.policy.mine_units == MineUnits::Systems {
            for i in self.systems_in(inv, scope) {
                let f = &self.systems[i];
                t.add(f.online_ms, f.counted_ms, f.counted_at_to, f.online_at_to);
            }
        }
        t
    }

    /// Time-weighted online rate.
    fn online_rate(&self, inv: &Inventory, scope: Scope) -> Indicator {
        let t = self.online_tally(inv, scope);
        ratio_ind(
            IndicatorId::OnlineRate,
            t.on_ms,
            t.counted_ms,
            self.window_ms(),
        )
    }

    /// The online rate's snapshot at `to`.
    fn online_rate_at_end(&self, inv: &Inventory, scope: Scope) -> Indicator {
        let t = self.online_tally(inv, scope);
        let id = IndicatorId::OnlineRateAtEnd;
        count_ind(id, None, Unit::Ratio, t.on_at_to, t.counted_at_to)
    }

    /// Coverage of public-area zones (zones belong to sites, not enterprises).
    fn coverage_rate(&self, inv: &Inventory, scope: Scope) -> Option<Indicator> {
        if matches!(scope, Scope::Enterprise(_)) {
            return None;
        }
        let (mut cov, mut cnt) = (0i128, 0i128);
        for (i, z) in inv.zones.iter().enumerate() {
            if matches!(scope, Scope::Site(s) if s != z.site) {
                continue;
            }
            cov += self.zones[i].online_ms as i128;
            cnt += self.zones[i].counted_ms as i128;
        }
        Some(ratio_ind(
            IndicatorId::CoverageRate,
            cov,
            cnt,
            self.window_ms(),
        ))
    }

    /// Device build completion: reported at least once by `to`, over registered devices.
    fn device_build_rate(&self, inv: &Inventory, scope: Scope) -> Indicator {
        let (mut rep, mut reg) = (0i128, 0i128);
        for (i, f) in self.devices.iter().enumerate() {
            if self.device_in(inv, i, scope) && f.registered_at_to {
                reg += 1;
                rep += f.reported_by_to as i128;
            }
        }
        count_ind(IndicatorId::DeviceBuildRate, None, Unit::Ratio, rep, reg)
    }

    /// Counted enterprises of `scope`: (how many, with a platform, with a device online).
    fn enterprise_tally(&self, inv: &Inventory, scope: Scope) -> (i128, i128, i128) {
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
        (n, platform, access)
    }

    fn enterprise_platform_rate(&self, inv: &Inventory, scope: Scope) -> Indicator {
        let (n, platform, _) = self.enterprise_tally(inv, scope);
        let id = IndicatorId::EnterprisePlatformRate;
        count_ind(id, None, Unit::Ratio, platform, n)
    }

    fn enterprise_access_rate(&self, inv: &Inventory, scope: Scope) -> Indicator {
        let (n, _, access) = self.enterprise_tally(inv, scope);
        let id = IndicatorId::EnterpriseAccessRate;
        count_ind(id, None, Unit::Ratio, access, n)
    }

    /// Systems built and online for at least the configured share of the window, by kind.
    fn system_count(&self, inv: &Inventory, scope: Scope, out: &mut Vec<Indicator>) {
        if matches!(scope, Scope::Enterprise(_)) {
            return;
        }
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
                IndicatorId::SystemCount,
                Some(system_kind_str(kind).into()),
                Unit::Count,
                ok,
                built,
            ));
        }
    }

    /// Latency percentile `p` (id is the matching `latency_p…_ms`).
    fn latency(&self, id: IndicatorId, p: f64, scope: Scope) -> Option<Indicator> {
        if matches!(scope, Scope::Enterprise(_)) {
            return None;
        }
        let hist: Vec<(u32, u64)> = self
            .latency
            .iter()
            .enumerate()
            .filter(|(s, _)| !matches!(scope, Scope::Site(x) if x as usize != *s))
            .flat_map(|(_, h)| h.iter().copied())
            .collect();
        let n: u64 = hist.iter().map(|(_, c)| c).sum();
        let v = percentile(&hist, p);
        Some(Indicator {
            id: id.name(),
            qualifier: None,
            unit: Unit::Milliseconds,
            ratio: Ratio {
                num: v.unwrap_or(0) as i128,
                den: v.is_some() as i128,
            },
            numerator: v.unwrap_or(0) as f64,
            denominator: n as f64,
        })
    }

    /// Alarms raised in the window on devices of `scope`.
    fn alarms_in<'a>(
        &'a self,
        inv: &'a Inventory,
        scope: Scope,
    ) -> impl Iterator<Item = &'a AlarmFact> + 'a {
        self.alarms
            .iter()
            .filter(move |a| self.device_in(inv, a.device as usize, scope))
    }

    /// Alarm response rate: of the alarms raised in the window whose deadline passed before
    /// `to`, the share acknowledged by their deadline; overall, by type, then by level. Alarms
    /// still inside their deadline are pending and counted in neither.
    fn alarm_response_rate(&self, inv: &Inventory, scope: Scope, out: &mut Vec<Indicator>) {
        let alarms: Vec<&AlarmFact> = self.alarms_in(inv, scope).collect();
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
        let mut row = |qualifier: Option<String>, (ok, decided)| {
            let id = IndicatorId::AlarmResponseRate;
            out.push(count_ind(id, qualifier, Unit::Ratio, ok, decided));
        };
        row(None, tally(&|_| true));
        for t in AlarmType::ALL {
            row(
                Some(format!("type:{}", t.as_str())),
                tally(&|a| a.alarm_type == t),
            );
        }
        let top = alarms.iter().map(|a| a.level).max().unwrap_or(0).max(2);
        for level in 1..=top {
            row(Some(format!("level:{level}")), tally(&|a| a.level == level));
        }
    }

    fn alarms_pending(&self, inv: &Inventory, scope: Scope) -> Indicator {
        let pending = self
            .alarms_in(inv, scope)
            .filter(|a| !alarm_decided(a, self.to))
            .count();
        count_ind(
            IndicatorId::AlarmsPending,
            None,
            Unit::Count,
            pending as i128,
            1,
        )
    }

    fn alarms_raised(&self, inv: &Inventory, scope: Scope) -> Indicator {
        let raised = self.alarms_in(inv, scope).count();
        count_ind(
            IndicatorId::AlarmsRaised,
            None,
            Unit::Count,
            raised as i128,
            1,
        )
    }

    /// Share of the window each link was up (region only: links belong to the gateway).
    fn link_stability(&self, scope: Scope, out: &mut Vec<Indicator>) {
        if scope != Scope::Region {
            return;
        }
        for (name, up, total) in &self.links {
            let id = IndicatorId::LinkStability;
            let mut ind = ratio_ind(id, *up as i128, *total as i128, self.window_ms());
            ind.qualifier = Some(name.clone());
            out.push(ind);
        }
    }

    /// Successful polls of each polled link (region only, as `link_stability`).
    fn poll_success_ratio(&self, scope: Scope, out: &mut Vec<Indicator>) {
        if scope != Scope::Region {
            return;
        }
        for (name, ok, failed) in &self.polls {
            out.push(count_ind(
                IndicatorId::PollSuccessRatio,
                Some(name.clone()),
                Unit::Ratio,
                *ok as i128,
                (*ok + *failed) as i128,
            ));
        }
    }
}

/// Sums over the online-rate units: unit-milliseconds online and counted, and units online
/// and counted at the window's last instant.
#[derive(Default)]
struct OnlineTally {
    on_ms: i128,
    counted_ms: i128,
    on_at_to: i128,
    counted_at_to: i128,
}

impl OnlineTally {
    fn add(&mut self, online_ms: i64, counted_ms: i64, counted_at_to: bool, online_at_to: bool) {
        self.on_ms += online_ms as i128;
        self.counted_ms += counted_ms as i128;
        self.counted_at_to += counted_at_to as i128;
        self.on_at_to += (counted_at_to && online_at_to) as i128;
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

/// Every indicator the engine measures. [`IndicatorId::ALL`] is the order in which they are
/// computed and reported; the names are the documented ids (`docs/indicators.md`) that the API,
/// the store and `[[targets]]` use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IndicatorId {
    OnlineRate,
    OnlineRateAtEnd,
    CoverageRate,
    DeviceBuildRate,
    EnterprisePlatformRate,
    EnterpriseAccessRate,
    SystemCount,
    LatencyP50Ms,
    LatencyP95Ms,
    LatencyP99Ms,
    AlarmResponseRate,
    AlarmsPending,
    AlarmsRaised,
    LinkStability,
    PollSuccessRatio,
}

impl IndicatorId {
    pub const ALL: [IndicatorId; 15] = [
        IndicatorId::OnlineRate,
        IndicatorId::OnlineRateAtEnd,
        IndicatorId::CoverageRate,
        IndicatorId::DeviceBuildRate,
        IndicatorId::EnterprisePlatformRate,
        IndicatorId::EnterpriseAccessRate,
        IndicatorId::SystemCount,
        IndicatorId::LatencyP50Ms,
        IndicatorId::LatencyP95Ms,
        IndicatorId::LatencyP99Ms,
        IndicatorId::AlarmResponseRate,
        IndicatorId::AlarmsPending,
        IndicatorId::AlarmsRaised,
        IndicatorId::LinkStability,
        IndicatorId::PollSuccessRatio,
    ];

    /// The stable id (documented; part of the API and the store's `indicator` tag).
    pub const fn name(self) -> &'static str {
        match self {
            IndicatorId::OnlineRate => "online_rate",
            IndicatorId::OnlineRateAtEnd => "online_rate_at_end",
            IndicatorId::CoverageRate => "coverage_rate",
            IndicatorId::DeviceBuildRate => "device_build_rate",
            IndicatorId::EnterprisePlatformRate => "enterprise_platform_rate",
            IndicatorId::EnterpriseAccessRate => "enterprise_access_rate",
            IndicatorId::SystemCount => "system_count",
            IndicatorId::LatencyP50Ms => "latency_p50_ms",
            IndicatorId::LatencyP95Ms => "latency_p95_ms",
            IndicatorId::LatencyP99Ms => "latency_p99_ms",
            IndicatorId::AlarmResponseRate => "alarm_response_rate",
            IndicatorId::AlarmsPending => "alarms_pending",
            IndicatorId::AlarmsRaised => "alarms_raised",
            IndicatorId::LinkStability => "link_stability",
            IndicatorId::PollSuccessRatio => "poll_success_ratio",
        }
    }
}

impl std::fmt::Display for IndicatorId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A name that is not one of [`IndicatorId::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a measured indicator")]
pub struct UnknownIndicator(pub String);

impl std::str::FromStr for IndicatorId {
    type Err = UnknownIndicator;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        IndicatorId::ALL
            .into_iter()
            .find(|id| id.name() == s)
            .ok_or_else(|| UnknownIndicator(s.to_string()))
    }
}

/// The indicator ids the engine measures (targets may name these), in [`IndicatorId::ALL`]
/// order.
pub const MEASURED: [&str; IndicatorId::ALL.len()] = {
    let mut names = [""; IndicatorId::ALL.len()];
    let mut i = 0;
    while i < names.len() {
        names[i] = IndicatorId::ALL[i].name();
        i += 1;
    }
    names
};

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
    fn indicator_ids_round_trip_and_all_lists_each_variant_once_in_order() {
        for (i, id) in IndicatorId::ALL.into_iter().enumerate() {
            assert_eq!(id as usize, i, "{id} out of declaration order");
            assert_eq!(id.name().parse(), Ok(id));
            assert_eq!(MEASURED[i], id.name());
        }
        let names: std::collections::BTreeSet<_> = MEASURED.into_iter().collect();
        assert_eq!(names.len(), MEASURED.len());
        assert_eq!(
            "online".parse::<IndicatorId>(),
            Err(UnknownIndicator("online".into()))
        );
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
