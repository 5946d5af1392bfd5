//! The read model: an immutable copy of what the API's listings show (device rows, per-site
//! counts and open alarms, rejections), built from the core by the core task and read by the
//! API without the core's lock, so a listing never holds up ingest.
//!
//! Device rows are kept in chunks of [`CHUNK`] devices: a chunk no device of which changed
//! since the previous snapshot is shared with it, so a quiet fleet costs little to publish.
//! Last readings are shared with the core, which copies one before changing it while a
//! snapshot still shows it.

use super::event::{Reason, Rejection};
use super::ingest::{Core, LastReading};
use super::inventory::{DeviceIdx, Inventory, SiteIdx};
use super::liveness::{Condition, DeviceState};
use super::stats::Counts;
use serde::Serialize;
use std::sync::Arc;

pub use super::changes::{Changes, CHUNK};

/// What a device listing shows of a device beyond its inventory entry. Compact (32 bytes:
/// at 100,000 devices a snapshot's rows take 3.2 MB), the last reading shared with the core.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceRow {
    since: i64,
    last_seen: i64,
    last: Option<Arc<LastReading>>,
    pub state: DeviceState,
    /// What its last reading said of itself (normal while not online).
    pub condition: Condition,
}

/// `None` in a row's times.
const NEVER: i64 = i64::MIN;

impl DeviceRow {
    /// When the current state began.
    pub fn since(&self) -> Option<i64> {
        (self.since != NEVER).then_some(self.since)
    }
    pub fn last_seen(&self) -> Option<i64> {
        (self.last_seen != NEVER).then_some(self.last_seen)
    }
    pub fn last(&self) -> Option<&LastReading> {
        self.last.as_deref()
    }
    /// Online, but its last reading said `status: fault`.
    pub fn faulty(&self) -> bool {
        self.condition == Condition::Fault
    }
}

/// Alarms not yet closed: still active, and waiting for an acknowledgement.
#[derive(Debug, Serialize, Default, Clone, Copy, PartialEq)]
pub struct AlarmCounts {
    pub active: usize,
    pub unacknowledged: usize,
}

/// One consistent view of the core at the time it was built.
#[derive(Debug)]
pub struct Snapshot {
    pub inventory: Arc<Inventory>,
    chunks: Vec<Arc<[DeviceRow]>>,
    /// Devices of each site in inventory order (not those that left); fixed for the
    /// inventory, shared by every snapshot of it.
    by_site: Arc<[Vec<DeviceIdx>]>,
    pub region: Counts,
    pub sites: Vec<Counts>,
    pub region_alarms: AlarmCounts,
    pub site_alarms: Vec<AlarmCounts>,
    /// Rejections per reason since start, in [`Reason::ALL`] order.
    pub rejection_counts: [u64; Reason::ALL.len()],
    /// The most recent rejections, oldest first (shared while no new one came).
    pub recent_rejections: Arc<[Rejection]>,
    generation: u64,
}

impl Snapshot {
    pub fn device(&self, d: DeviceIdx) -> &DeviceRow {
        &self.chunks[d as usize / CHUNK][d as usize % CHUNK]
    }

    pub fn devices_len(&self) -> usize {
        self.inventory.devices.len()
    }

    /// The devices of a site, in inventory order.
    pub fn site_devices(&self, s: SiteIdx) -> &[DeviceIdx] {
        self.by_site.get(s as usize).map_or(&[], |v| v.as_slice())
    }

    /// A site's devices counted by zone and by system now (indexed as `inventory.zones` and
    /// `inventory.systems`; units of other sites stay zero), with the same rules as the
    /// site's own counts.
    pub fn group_counts(&self, s: SiteIdx) -> (Vec<Counts>, Vec<Counts>) {
        let inv = &self.inventory;
        let mut zones = vec![Counts::default(); inv.zones.len()];
        let mut systems = vec![Counts::default(); inv.systems.len()];
        for &i in self.site_devices(s) {
            let d = &inv.devices[i as usize];
            if d.removed {
                continue;
            }
            let row = self.device(i);
            let counted = inv.counts_as_active(i);
            let down = d.protocol == crate::model::Protocol::MineFiles;
            let groups = [(d.zone, &mut zones), (d.system, &mut systems)];
            for (g, list) in groups {
                if let Some(c) = g.and_then(|g| list.get_mut(g as usize)) {
                    c.add(d.status, row.state, row.condition, down, counted);
                }
            }
        }
        (zones, systems)
    }

    /// Rejection counts with their reasons, in [`Reason::ALL`] order.
    pub fn rejections(&self) -> impl Iterator<Item = (Reason, u64)> + '_ {
        Reason::ALL
            .iter()
            .copied()
            .zip(self.rejection_counts.iter().copied())
    }
}

impl Core {
    /// A snapshot of the core as it is now. With `prev`, the last snapshot this core built,
    /// the chunks of rows in which no device changed since are shared with it; any other
    /// `prev` (or `None`) rebuilds every row.
    pub fn snapshot(&mut self, prev: Option<&Snapshot>) -> Snapshot {
        let prev = prev.filter(|p| {
            p.generation == self.changes.built && Arc::ptr_eq(&p.inventory, &self.inventory)
        });
        let chunks = self.rows(prev);
        let by_site = match prev {
            Some(p) => p.by_site.clone(),
            None => by_site(&self.inventory),
        };
        let mut counts = vec![Counts::default(); self.inventory.sites.len()];
        let mut region = Counts::default();
        for (i, d) in self.inventory.devices.iter().enumerate() {
            if d.removed {
                continue;
            }
            let row = &chunks[i / CHUNK][i % CHUNK];
            let counted = self.inventory.counts_as_active(i as DeviceIdx);
            let down = d.protocol == crate::model::Protocol::MineFiles;
            counts[d.site as usize].add(d.status, row.state, row.condition, down, counted);
            region.add(d.status, row.state, row.condition, down, counted);
        }
        let (region_alarms, site_alarms) = match prev {
            Some(p) if !self.changes.alarms => (p.region_alarms, p.site_alarms.clone()),
            _ => self.alarm_counts(),
        };
        self.changes.alarms = false;
        let rejection_counts = self.rejected_by_reason;
        let recent_rejections = match prev {
            Some(p) if p.rejection_counts == rejection_counts => p.recent_rejections.clone(),
            _ => self.recent_rejections().cloned().collect(),
        };
        self.changes.built += 1;
        Snapshot {
            inventory: self.inventory.clone(),
            chunks,
            by_site,
            region,
            sites: counts,
            region_alarms,
            site_alarms,
            rejection_counts,
            recent_rejections,
            generation: self.changes.built,
        }
    }

    /// Every chunk of rows, rebuilt when touched (or without `prev`), else shared.
    fn rows(&mut self, prev: Option<&Snapshot>) -> Vec<Arc<[DeviceRow]>> {
        let n = self.inventory.devices.len();
        (0..n.div_ceil(CHUNK))
            .map(|c| {
                let touched = std::mem::take(&mut self.changes.chunks[c]);
                match prev {
                    Some(p) if !touched => p.chunks[c].clone(),
                    _ => (c * CHUNK..n.min((c + 1) * CHUNK))
                        .map(|d| self.row(d as DeviceIdx))
                        .collect(),
                }
            })
            .collect()
    }

    fn row(&self, d: DeviceIdx) -> DeviceRow {
        DeviceRow {
            since: self.liveness.since(d).unwrap_or(NEVER),
            last_seen: self.liveness.last_seen(d).unwrap_or(NEVER),
            last: self.last[d as usize].clone(),
            state: self.liveness.state(d),
            condition: match self.liveness.state(d) {
                DeviceState::Online => self.liveness.condition(d).0,
                _ => Condition::Normal,
            },
        }
    }

    /// Open alarms for the region and per site (a pass over the open alarms: recounted only
    /// when one changed).
    fn alarm_counts(&self) -> (AlarmCounts, Vec<AlarmCounts>) {
        let mut region = AlarmCounts::default();
        let mut sites = vec![AlarmCounts::default(); self.inventory.sites.len()];
        for a in self.alarms.open_alarms() {
            let active = a.alarm.cleared_ms.is_none() as usize;
            let unacked = a.alarm.ack.is_none() as usize;
            region.active += active;
            region.unacknowledged += unacked;
            if let Some(s) = sites.get_mut(a.site as usize) {
                s.active += active;
                s.unacknowledged += unacked;
            }
        }
        (region, sites)
    }
}

fn by_site(inv: &Inventory) -> Arc<[Vec<DeviceIdx>]> {
    let mut v = vec![Vec::new(); inv.sites.len()];
    for (i, d) in inv.devices.iter().enumerate().filter(|(_, d)| !d.removed) {
        if let Some(s) = v.get_mut(d.site as usize) {
            s.push(i as DeviceIdx);
        }
    }
    v.into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::event::{Origin, RawReading, ReadingStatus, SourceEvent};
    use crate::core::Outputs;

    const T0: i64 = 1_700_000_000_000;

    /// `n` devices over two sites, the second suspended.
    fn core(n: usize) -> Core {
        let f = config(n);
        let mut c = Core::new(Inventory::from_config(&f.inventory), 60_000, 10);
        let rules = crate::core::alarms::rules::AlarmRules::from_config(
            &f.alarms,
            &f.inventory,
            &c.inventory,
        );
        c.set_alarm_rules(rules);
        c
    }

    fn config(n: usize) -> crate::core::config::inventory::TestFile {
        let mut text = String::from(
            "[[sites]]\nid = \"p1\"\nname = \"P1\"\nkind = \"park\"\n\n\
             [[sites]]\nid = \"p2\"\nname = \"P2\"\nkind = \"park\"\nstatus = \"suspended\"\n\n",
        );
        for i in 0..n {
            let site = if i % 3 == 2 { "p2" } else { "p1" };
            text.push_str(&format!(
                "[[devices]]\nid = \"d{i}\"\nsite = \"{site}\"\nkind = \"gas_combustible\"\nprotocol = \"mqtt\"\ninterval_s = 1\n\n"
            ));
        }
        crate::core::config::inventory::test_file(&text)
    }

    fn reading(i: usize, lel: f64, at: i64) -> SourceEvent {
        let site = if i % 3 == 2 { "p2" } else { "p1" };
        SourceEvent::Reading {
            reading: RawReading {
                site: site.into(),
                device: format!("d{i}").into(),
                ts_ms: None,
                values: vec![("lel".into(), lel)],
                status: ReadingStatus::Normal,
                cause: None,
            },
            origin: Origin {
                topic: Arc::from("t"),
                element: None,
            },
            received_ms: at,
        }
    }

    fn rows(s: &Snapshot) -> Vec<DeviceRow> {
        (0..s.devices_len() as DeviceIdx)
            .map(|d| s.device(d).clone())
            .collect()
    }

    #[test]
    fn the_snapshot_shows_what_the_core_holds() {
        let mut c = core(5);
        let mut out = Outputs::default();
        c.apply(reading(0, 1.0, T0), &mut out);
        c.apply(reading(2, 2.0, T0), &mut out);
        c.apply(reading(9, 2.0, T0), &mut out); // unknown: a rejection
        let s = c.snapshot(None);
        assert_eq!(s.region, c.counts(None));
        assert_eq!(s.sites, vec![c.counts(Some(0)), c.counts(Some(1))]);
        assert_eq!(s.site_devices(0), &[0, 1, 3, 4]);
        assert_eq!(s.site_devices(1), &[2]);
        assert_eq!(s.device(0).state, DeviceState::Online);
        assert_eq!(s.device(0).last_seen(), Some(T0));
        assert_eq!(s.device(0).last().unwrap().values[0].1, 1.0);
        assert_eq!(s.device(1).state, DeviceState::Never);
        assert_eq!(s.rejections().map(|(_, n)| n).sum::<u64>(), 1);
        assert_eq!(s.recent_rejections.len(), 1);
        assert_eq!(s.region_alarms, AlarmCounts::default());
    }

    #[test]
    fn an_incremental_snapshot_equals_a_full_one_and_shares_quiet_chunks() {
        let n = 3 * CHUNK + 10;
        let mut c = core(n);
        let mut out = Outputs::default();
        for i in 0..n {
            c.apply(reading(i, 1.0, T0), &mut out);
        }
        let first = c.snapshot(None);
        // One device of the second chunk reports, the last chunk's go offline (silence).
        c.apply(reading(CHUNK + 5, 3.0, T0 + 1_500), &mut out);
        c.apply(reading(CHUNK + 6, 3.0, T0 + 1_500), &mut out);
        for i in 0..3 * CHUNK {
            if i / CHUNK != 1 {
                c.apply(reading(i, 1.0, T0 + 1_600), &mut out);
            }
        }
        c.tick(T0 + 3_100, &mut out);
        c.apply(reading(n + 1, 1.0, T0 + 3_200), &mut out); // rejected
        let next = c.snapshot(Some(&first));
        assert_eq!(
            next.device(CHUNK as DeviceIdx + 5).last_seen(),
            Some(T0 + 1_500)
        );
        assert_eq!(
            next.device(3 * CHUNK as DeviceIdx).state,
            DeviceState::Offline
        );
        assert_eq!(next.region, c.counts(None));
        assert!(next.region.offline > 0);
        assert!(!Arc::ptr_eq(&first.chunks[1], &next.chunks[1]));
        assert!(!Arc::ptr_eq(&first.chunks[3], &next.chunks[3]));
        assert_eq!(next.recent_rejections.len(), 1);
        // Nothing changed since: every chunk is shared, and equal to a full rebuild.
        let quiet = c.snapshot(Some(&next));
        for k in 0..quiet.chunks.len() {
            assert!(Arc::ptr_eq(&quiet.chunks[k], &next.chunks[k]), "chunk {k}");
        }
        assert!(Arc::ptr_eq(
            &quiet.recent_rejections,
            &next.recent_rejections
        ));
        let full = c.snapshot(None);
        assert_eq!(rows(&quiet), rows(&full));
        assert_eq!((quiet.region, &quiet.sites), (full.region, &full.sites));
    }

    #[test]
    fn a_published_reading_is_not_changed_by_the_next_one() {
        let mut c = core(3);
        let mut out = Outputs::default();
        c.apply(reading(0, 1.0, T0), &mut out);
        let s1 = c.snapshot(None);
        c.apply(reading(0, 2.0, T0 + 10), &mut out);
        // Same channels: reused in place only once no snapshot shows it.
        let s2 = c.snapshot(Some(&s1));
        drop(s1);
        c.apply(reading(0, 3.0, T0 + 20), &mut out);
        assert_eq!(s2.device(0).last().unwrap().values[0].1, 2.0);
        assert_eq!(s2.device(0).last_seen(), Some(T0 + 10));
        let s3 = c.snapshot(Some(&s2));
        assert_eq!(s3.device(0).last().unwrap().values[0].1, 3.0);
        assert_eq!(c.last_reading(0).unwrap().values[0].1, 3.0);
        assert_eq!(
            std::mem::size_of::<DeviceRow>(),
            32,
            "the rows' memory budget"
        );
        assert_eq!(std::mem::size_of::<LastReading>(), 64, "one per device");
    }

    #[test]
    fn open_alarms_are_recounted_when_one_changes() {
        let mut c = core(4);
        let mut out = Outputs::default();
        let s1 = c.snapshot(None);
        c.apply(reading(0, 60.0, T0), &mut out);
        let id = out.alarms[0].record.id;
        let s2 = c.snapshot(Some(&s1));
        let open = AlarmCounts {
            active: 1,
            unacknowledged: 1,
        };
        assert_eq!((s2.region_alarms, s2.site_alarms[0]), (open, open));
        c.apply(reading(1, 1.0, T0), &mut out);
        let s3 = c.snapshot(Some(&s2));
        assert_eq!(s3.site_alarms, s2.site_alarms);
        c.acknowledge(id, None, "op", "", "http", T0 + 1, &mut out)
            .unwrap();
        let s4 = c.snapshot(Some(&s3));
        assert_eq!(s4.region_alarms.unacknowledged, 0);
        assert_eq!(s4.site_alarms[0].active, 1);
    }

    #[test]
    fn a_snapshot_that_is_not_the_last_one_built_is_not_a_base() {
        let mut c = core(10);
        let mut out = Outputs::default();
        let old = c.snapshot(None);
        let _newer = c.snapshot(Some(&old));
        c.apply(reading(3, 1.0, T0), &mut out);
        let _lost = c.snapshot(None); // took the change to d3
        let s = c.snapshot(Some(&old));
        assert!(!Arc::ptr_eq(&old.chunks[0], &s.chunks[0]));
        assert_eq!(s.device(3).state, DeviceState::Online);
    }
}
