//! The overview's three figures — 联网在线率 (time-weighted), 覆盖率 and 预警响应率 — for
//! the region and every site at once. [`Computation::indicators`] walks every unit once per
//! scope; with hundreds of sites that is hundreds of walks, so this sums each unit into its
//! site in one walk. The sums are the same as the per-scope indicators' (a test holds them
//! equal), only grouped.

use super::engine::{alarm_decided, alarm_responded, count_ind, ratio_ind};
use super::engine::{Computation, Indicator, IndicatorId, MineUnits, Unit};
use crate::core::inventory::Inventory;
use crate::model::SiteKind;

/// One scope's headline figures over the window.
#[derive(Debug, Clone, PartialEq)]
pub struct Headline {
    pub online_rate: Indicator,
    /// Of a scope without zones, 0 ÷ 0 (no value).
    pub coverage_rate: Indicator,
    pub alarm_response_rate: Indicator,
}

/// A scope's (numerator, denominator) of each headline figure.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(super) struct Sums {
    pub(super) online: (i128, i128),
    pub(super) coverage: (i128, i128),
    pub(super) response: (i128, i128),
}

impl Sums {
    pub(super) fn add(&mut self, o: &Sums) {
        let add = |a: &mut (i128, i128), b: (i128, i128)| {
            a.0 += b.0;
            a.1 += b.1;
        };
        add(&mut self.online, o.online);
        add(&mut self.coverage, o.coverage);
        add(&mut self.response, o.response);
    }

    pub(super) fn headline(&self, window_ms: i64) -> Headline {
        let (ok, decided) = self.response;
        let (on, counted) = self.online;
        let (cov, zones) = self.coverage;
        Headline {
            online_rate: ratio_ind(IndicatorId::OnlineRate, on, counted, window_ms),
            coverage_rate: ratio_ind(IndicatorId::CoverageRate, cov, zones, window_ms),
            alarm_response_rate: count_ind(
                IndicatorId::AlarmResponseRate,
                None,
                Unit::Ratio,
                ok,
                decided,
            ),
        }
    }
}

impl Computation {
    /// The region's headline and each site's, in inventory order (removed sites included:
    /// the caller skips them as it shows sites).
    pub fn headlines(&self, inv: &Inventory) -> (Headline, Vec<Headline>) {
        let mut sites = vec![Sums::default(); inv.sites.len()];
        let systems = self.policy.mine_units == MineUnits::Systems;
        for (i, f) in self.devices.iter().enumerate() {
            let d = &inv.devices[i];
            let park = inv.sites[d.site as usize].kind == SiteKind::Park;
            if park || !systems {
                let s = &mut sites[d.site as usize].online;
                s.0 += f.online_ms as i128;
                s.1 += f.counted_ms as i128;
            }
        }
        if systems {
            for (i, f) in self.systems.iter().enumerate() {
                let s = &mut sites[inv.systems[i].site as usize].online;
                s.0 += f.online_ms as i128;
                s.1 += f.counted_ms as i128;
            }
        }
        for (i, f) in self.zones.iter().enumerate() {
            let s = &mut sites[inv.zones[i].site as usize].coverage;
            s.0 += f.online_ms as i128;
            s.1 += f.counted_ms as i128;
        }
        for a in &self.alarms {
            if alarm_decided(a, self.to) {
                let site = inv.devices[a.device as usize].site as usize;
                let s = &mut sites[site].response;
                s.0 += alarm_responded(a) as i128;
                s.1 += 1;
            }
        }
        headlines_of(&sites, self.window_ms())
    }
}

/// The region's headline (the sum of its sites') and each site's.
pub(super) fn headlines_of(sites: &[Sums], window_ms: i64) -> (Headline, Vec<Headline>) {
    let mut region = Sums::default();
    for s in sites {
        region.add(s);
    }
    (
        region.headline(window_ms),
        sites.iter().map(|s| s.headline(window_ms)).collect(),
    )
}
