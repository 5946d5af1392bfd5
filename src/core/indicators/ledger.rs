//! The overview's three figures for *any* window, from one evaluation kept by site.
//!
//! An evaluation walks every unit's history (≈ 2 µs a device), so at 100,000 devices each new
//! window costs a fifth of a second. But the three headline sums are integrals over time of
//! site-level counts (units counted, units online, zones covered), so one evaluation over a
//! long span, summed by site, answers every window inside it by subtraction:
//! `sum[from, to) = acc(to) − acc(from)`.
//!
//! Kept exactly (to the unit-millisecond, the same sums [`Computation::headlines`] gives for
//! that window, which a test holds):
//! - any instant in the last [`FINE_MS`] before the evaluation's end: every change of the
//!   site's counts there is kept;
//! - before that, only at grid instants: each hour boundary of the last [`HOURLY_MS`] and each
//!   day boundary (local midnight, `indicators.utc_offset_h`) back to [`SPAN_MS`].
//!
//! Another instant is not answerable ([`Ledger::headlines`] says `None`) and the caller
//! evaluates that window itself. Memory: a few words per grid instant and site, and one
//! entry per change of a site's counts in the fine part.
//!
//! Why this is exact: a unit's spans over a window are its spans over any longer window
//! ending at or after it, clipped (the engine reads each instant from the history before
//! it), and the alarms the response rate counts are those raised in the window whose
//! deadline passed in it.

use super::engine::{compute_observed, Computation, MineUnits, Policy, SpanSink};
use super::headline::{headlines_of, Headline, Sums};
use super::history::History;
use super::intervals::{intersect, Span};
use crate::core::inventory::Inventory;
use crate::model::SiteKind;

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;
/// Every instant of this last part of the span is answerable.
pub const FINE_MS: i64 = 2 * DAY_MS;
/// Hour boundaries answerable over this last part.
pub const HOURLY_MS: i64 = 14 * DAY_MS;
/// How far back day boundaries are kept: a year's window with room.
pub const SPAN_MS: i64 = 400 * DAY_MS;

/// One site's sums of one figure: (numerator, denominator) accumulated from the start.
#[derive(Debug, Clone, Default)]
struct Track {
    /// Per grid bin (between grid instant k and k + 1), until `fine_from`.
    bins: Vec<[i64; 2]>,
    /// Changes of (numerator, denominator) levels at or after `fine_from`.
    deltas: Vec<(i64, i32, i32)>,
    /// Built from the two: the accumulated sums at each grid instant…
    grid_acc: Vec<[i64; 2]>,
    /// …and at each change in the fine part, with the levels from then on.
    fine: Vec<(i64, [i64; 2], [i32; 2])>,
}

/// An alarm as the response rate needs it.
#[derive(Debug, Clone, Copy)]
struct Alarm {
    raised_ms: i64,
    deadline_ms: i64,
    responded: bool,
    site: u32,
}

/// One evaluation over [`Ledger::from`, `Ledger::to`), kept by site.
#[derive(Debug, Clone)]
pub struct Ledger {
    pub from: i64,
    pub to: i64,
    fine_from: i64,
    /// Grid instants before `fine_from`, ascending, `from` first and `fine_from` last.
    grid: Vec<i64>,
    online: Vec<Track>,
    coverage: Vec<Track>,
    /// By time raised.
    alarms: Vec<Alarm>,
}

/// Where a ledger ending at `to` starts: local midnight [`SPAN_MS`] before.
pub fn start(to: i64, utc_offset_ms: i64) -> i64 {
    floor(to - SPAN_MS, DAY_MS, utc_offset_ms)
}

fn floor(t: i64, size: i64, offset: i64) -> i64 {
    (t + offset).div_euclid(size) * size - offset
}

/// The grid instants of a ledger over [from, to): ascending, from `from` to `fine_from`.
fn grid(from: i64, to: i64, utc_offset_ms: i64) -> (Vec<i64>, i64) {
    let fine_from = floor(to - FINE_MS, HOUR_MS, utc_offset_ms).max(from);
    let hourly_from = floor(to - HOURLY_MS, HOUR_MS, utc_offset_ms).max(from);
    let mut g = vec![from];
    let mut t = floor(from, DAY_MS, utc_offset_ms) + DAY_MS;
    while t < hourly_from {
        g.push(t);
        t += DAY_MS;
    }
    let mut t = hourly_from;
    while t < fine_from {
        g.push(t);
        t += HOUR_MS;
    }
    g.push(fine_from);
    g.dedup();
    (g, fine_from)
}

/// Collects each unit's spans into its site's tracks.
struct Collect<'a> {
    inv: &'a Inventory,
    systems_mode: bool,
    grid: &'a [i64],
    fine_from: i64,
    online: Vec<Track>,
    coverage: Vec<Track>,
}

impl Collect<'_> {
    /// Adds `spans` to the numerator (`which` 0) or denominator (1) of `t`.
    fn add(grid: &[i64], fine_from: i64, t: &mut Track, which: usize, spans: &[Span]) {
        for &(a, b) in spans {
            let mut a = a;
            // The coarse part, bin by bin.
            let mut k = grid.partition_point(|&g| g <= a).saturating_sub(1);
            while a < b.min(fine_from) && k + 1 < grid.len() {
                let end = b.min(grid[k + 1]);
                t.bins[k][which] += end - a;
                a = end;
                k += 1;
            }
            if a < b {
                let (n, d) = if which == 0 { (1, 0) } else { (0, 1) };
                t.deltas.push((a, n, d));
                t.deltas.push((b, -n, -d));
            }
        }
    }

    fn unit(&mut self, site: u32, counted: &[Span], online: &[Span], zone: bool) {
        let tracks = if zone {
            &mut self.coverage
        } else {
            &mut self.online
        };
        let Some(t) = tracks.get_mut(site as usize) else {
            return;
        };
        // As the engine: online time is counted only while the unit is counted.
        let on = intersect(online, counted);
        Self::add(self.grid, self.fine_from, t, 0, &on);
        Self::add(self.grid, self.fine_from, t, 1, counted);
    }
}

impl SpanSink for Collect<'_> {
    fn device(&mut self, i: usize, counted: &[Span], online: &[Span]) {
        let d = &self.inv.devices[i];
        let park = self.inv.sites[d.site as usize].kind == SiteKind::Park;
        // Under `mine_units = "systems"` a mine's units are its systems, not its points.
        if park || !self.systems_mode {
            self.unit(d.site, counted, online, false);
        }
    }

    fn system(&mut self, i: usize, counted: &[Span], online: &[Span]) {
        if self.systems_mode {
            self.unit(self.inv.systems[i].site, counted, online, false);
        }
    }

    fn zone(&mut self, i: usize, counted: &[Span], covered: &[Span]) {
        self.unit(self.inv.zones[i].site, counted, covered, true);
    }
}

impl Track {
    /// Turns bins and deltas into accumulated sums.
    fn seal(&mut self, grid: &[i64]) {
        let mut acc = [0i64; 2];
        self.grid_acc = Vec::with_capacity(grid.len());
        self.grid_acc.push(acc);
        for b in &self.bins {
            acc[0] += b[0];
            acc[1] += b[1];
            self.grid_acc.push(acc);
        }
        self.bins = Vec::new();
        let mut deltas = std::mem::take(&mut self.deltas);
        deltas.sort_unstable_by_key(|d| d.0);
        let fine_from = grid.last().copied().unwrap_or(0);
        let mut level = [0i32; 2];
        let mut last = fine_from;
        self.fine = vec![(fine_from, acc, level)];
        for (t, n, d) in deltas {
            acc[0] += i64::from(level[0]) * (t - last);
            acc[1] += i64::from(level[1]) * (t - last);
            last = t;
            level[0] += n;
            level[1] += d;
            match self.fine.last_mut() {
                Some(k) if k.0 == t => *k = (t, acc, level),
                _ => self.fine.push((t, acc, level)),
            }
        }
    }

    /// The accumulated (numerator, denominator) at `t`, when kept.
    fn at(&self, grid: &[i64], fine_from: i64, t: i64) -> Option<[i64; 2]> {
        if t < fine_from {
            let k = grid.binary_search(&t).ok()?;
            return self.grid_acc.get(k).copied();
        }
        let k = self.fine.partition_point(|f| f.0 <= t).checked_sub(1)?;
        let (tk, acc, level) = self.fine[k];
        Some([
            acc[0] + i64::from(level[0]) * (t - tk),
            acc[1] + i64::from(level[1]) * (t - tk),
        ])
    }
}

/// Evaluates [from, to) (`from` as [`start`] gives it, the history loaded from there) and
/// keeps it by site; also returns the evaluation.
pub fn build(
    inv: &Inventory,
    h: &History,
    (from, to): Span,
    now: i64,
    policy: Policy,
    utc_offset_ms: i64,
) -> (Ledger, Computation) {
    let to = to.min(now).max(from);
    let (grid, fine_from) = grid(from, to, utc_offset_ms);
    let empty = Track {
        bins: vec![[0, 0]; grid.len() - 1],
        ..Track::default()
    };
    let mut sink = Collect {
        inv,
        systems_mode: policy.mine_units == MineUnits::Systems,
        grid: &grid,
        fine_from,
        online: vec![empty.clone(); inv.sites.len()],
        coverage: vec![empty; inv.sites.len()],
    };
    let c = compute_observed(inv, h, (from, to), now, policy, &mut sink);
    let (mut online, mut coverage) = (sink.online, sink.coverage);
    for t in online.iter_mut().chain(coverage.iter_mut()) {
        t.seal(&grid);
    }
    let mut alarms: Vec<Alarm> = c
        .alarms
        .iter()
        .map(|a| Alarm {
            raised_ms: a.raised_ms,
            deadline_ms: a.deadline_ms,
            responded: super::engine::alarm_responded(a),
            site: inv.devices[a.device as usize].site,
        })
        .collect();
    alarms.sort_by_key(|a| a.raised_ms);
    let ledger = Ledger {
        from,
        to: c.to,
        fine_from,
        grid,
        online,
        coverage,
        alarms,
    };
    (ledger, c)
}

impl Ledger {
    /// Whether the window [from, to) can be answered from the ledger.
    pub fn answers(&self, from: i64, to: i64) -> bool {
        let ok = |t: i64| t >= self.fine_from || self.grid.binary_search(&t).is_ok();
        self.from <= from && from <= to && to <= self.to && ok(from) && ok(to)
    }

    /// The region's headline and each site's (inventory order) over [from, to), or `None`
    /// when the ledger does not keep one of its ends.
    pub fn headlines(&self, from: i64, to: i64) -> Option<(Headline, Vec<Headline>)> {
        if !self.answers(from, to) {
            return None;
        }
        let diff = |t: &Track| -> Option<(i128, i128)> {
            let a = t.at(&self.grid, self.fine_from, from)?;
            let b = t.at(&self.grid, self.fine_from, to)?;
            Some(((b[0] - a[0]) as i128, (b[1] - a[1]) as i128))
        };
        let mut sites = Vec::with_capacity(self.online.len());
        for (o, c) in self.online.iter().zip(&self.coverage) {
            sites.push(Sums {
                online: diff(o)?,
                coverage: diff(c)?,
                response: (0, 0),
            });
        }
        let first = self.alarms.partition_point(|a| a.raised_ms < from);
        for a in self.alarms[first..].iter().take_while(|a| a.raised_ms < to) {
            if a.deadline_ms < to {
                if let Some(s) = sites.get_mut(a.site as usize) {
                    s.response.0 += a.responded as i128;
                    s.response.1 += 1;
                }
            }
        }
        Some(headlines_of(&sites, to - from))
    }
}
