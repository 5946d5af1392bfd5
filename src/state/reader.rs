//! Reading the journal: the state to restore at start, a device's transitions, and the
//! history the indicator engine computes windows from.

use super::compaction::unpack;
use super::journal::{DeviceSnapshot, Journal, StateError, TransitionRow, UnitKind};
use crate::core::indicators::history::{DeviceHistory, History, Reg};
use crate::core::inventory::Inventory;
use rusqlite::{params, Connection, OptionalExtension};
use std::collections::HashMap;

impl Journal {
    /// The latest known state of every device the journal has seen.
    pub fn load_latest(&self) -> Result<Vec<DeviceSnapshot>, StateError> {
        let names: HashMap<i64, (String, String)> = self
            .keys
            .iter()
            .filter(|((k, _, _), _)| *k == UnitKind::Device)
            .map(|((_, s, d), key)| (key, (s.to_string(), d.to_string())))
            .collect();
        let mut out: std::collections::BTreeMap<i64, DeviceSnapshot> = Default::default();
        let snap = |unit: i64| {
            let (site, device) = names.get(&unit).cloned().unwrap_or_default();
            DeviceSnapshot {
                site,
                device,
                last_transition: None,
                last_seen_ms: None,
                fault: false,
            }
        };
        for (unit, online, at) in self.rows(
            "SELECT t.unit, t.online, t.at_ms FROM transitions t
             JOIN (SELECT unit, max(id) AS id FROM transitions GROUP BY unit) m ON t.id = m.id",
            [],
            |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, bool>(1)?,
                    r.get::<_, i64>(2)?,
                ))
            },
        )? {
            out.entry(unit)
                .or_insert_with(|| snap(unit))
                .last_transition = Some((online, at));
        }
        for (unit, seen, fault) in
            self.rows("SELECT unit, last_seen_ms, fault FROM last_seen", [], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, bool>(2)?,
                ))
            })?
        {
            let e = out.entry(unit).or_insert_with(|| snap(unit));
            e.last_seen_ms = Some(seen);
            e.fault = fault;
        }
        Ok(out.into_values().filter(|s| !s.device.is_empty()).collect())
    }

    /// One device's liveness around [from, to): whether it was online just before `from`
    /// (`None`: no transition before it, so it had not reported) and its transitions in the
    /// window, oldest first, at most `max` (the caller says when there were more).
    pub fn timeline_of(
        &self,
        site: &str,
        device: &str,
        (from_ms, to_ms): (i64, i64),
        max: usize,
    ) -> Result<(Option<bool>, Vec<TransitionRow>), StateError> {
        let Some(unit) = self.keys.get(UnitKind::Device, site, device) else {
            return Ok((None, Vec::new()));
        };
        let db = |e| self.err(e);
        let before: Option<bool> = self
            .conn
            .prepare_cached(
                "SELECT online FROM transitions WHERE unit = ?1 AND at_ms < ?2
                 ORDER BY at_ms DESC, id DESC LIMIT 1",
            )
            .map_err(db)?
            .query_row(params![unit, from_ms], |r| r.get(0))
            .optional()
            .map_err(db)?;
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT at_ms, online, cause FROM transitions
                 WHERE unit = ?1 AND at_ms >= ?2 AND at_ms < ?3 ORDER BY at_ms, id LIMIT ?4",
            )
            .map_err(db)?;
        let rows = st
            .query_map(params![unit, from_ms, to_ms, max as i64], |r| {
                Ok(TransitionRow {
                    site: site.to_string(),
                    device: device.to_string(),
                    at_ms: r.get(0)?,
                    online: r.get(1)?,
                    cause: r.get(2)?,
                })
            })
            .map_err(db)?;
        let rows = rows.collect::<Result<_, _>>().map_err(db)?;
        Ok((before, rows))
    }

    /// The last time anything was recorded (for closing links after a crash).
    pub fn last_activity_ms(&self) -> Result<Option<i64>, StateError> {
        self.conn
            .query_row(
                "SELECT max(t) FROM (SELECT max(at_ms) AS t FROM transitions
                 UNION ALL SELECT max(last_seen_ms) FROM last_seen
                 UNION ALL SELECT max(at_ms) FROM links)",
                [],
                |r| r.get::<_, Option<i64>>(0),
            )
            .map_err(|e| self.err(e))
    }

    /// Everything the indicator engine needs for windows ending at or before `to`, mapped
    /// onto the current inventory (units no longer in it are left out).
    pub fn load_history(&self, inv: &Inventory, from: i64, to: i64) -> Result<History, StateError> {
        self.load(inv, from, to, true)
    }

    /// [`Journal::load_history`] without the links, polls and latency minutes: the units'
    /// timelines and the alarms, all the overview's figures need (over a long span, the
    /// minutes are most of the rows).
    pub fn load_timelines(
        &self,
        inv: &Inventory,
        from: i64,
        to: i64,
    ) -> Result<History, StateError> {
        self.load(inv, from, to, false)
    }

    fn load(
        &self,
        inv: &Inventory,
        from: i64,
        to: i64,
        minutes: bool,
    ) -> Result<History, StateError> {
        let mut h = History {
            devices: vec![DeviceHistory::default(); inv.devices.len()],
            sites: vec![Vec::new(); inv.sites.len()],
            systems: vec![Vec::new(); inv.systems.len()],
            zones: vec![None; inv.zones.len()],
            enterprises: vec![None; inv.enterprises.len()],
            zone_status: vec![Vec::new(); inv.zones.len()],
            enterprise_status: vec![Vec::new(); inv.enterprises.len()],
            latency: vec![Vec::new(); inv.sites.len()],
            links: Vec::new(),
            polls: Vec::new(),
            alarms: Vec::new(),
        };
        let targets = self.targets(inv);
        let lookup = |k: i64| targets.get(k as usize).copied().flatten();
        let compacted = self.watermark()?;
        let db = |e| self.err(e);
        read_registry(&self.conn, to, &lookup, &mut h).map_err(db)?;
        read_transitions(&self.conn, compacted, to, &lookup, &mut h).map_err(db)?;
        if super::schema::version(&self.conn).map_err(db)? >= 2 {
            read_conditions(&self.conn, to, &lookup, &mut h).map_err(db)?;
        }
        if minutes {
            self.read_links(to, &mut h)?;
            self.read_minutes(inv, from, to, &mut h)?;
        }
        h.alarms = self.alarm_facts(inv, from, to)?;
        Ok(h)
    }

    /// What each journal key is in the current inventory, indexed by key.
    fn targets(&self, inv: &Inventory) -> Vec<Option<Target>> {
        let mut by_name: HashMap<(UnitKind, &str, &str), Target> = HashMap::new();
        for (i, s) in inv.sites.iter().enumerate() {
            by_name.insert((UnitKind::Site, &s.id, &s.id), Target::Site(i));
        }
        let sid = |s: u32| &*inv.sites[s as usize].id;
        for (i, e) in inv.enterprises.iter().enumerate() {
            by_name.insert(
                (UnitKind::Enterprise, sid(e.site), &e.id),
                Target::Enterprise(i),
            );
        }
        for (i, z) in inv.zones.iter().enumerate() {
            by_name.insert((UnitKind::Zone, sid(z.site), &z.id), Target::Zone(i));
        }
        for (i, s) in inv.systems.iter().enumerate() {
            by_name.insert((UnitKind::System, sid(s.site), &s.id), Target::System(i));
        }
        for (i, d) in inv.devices.iter().enumerate() {
            by_name.insert((UnitKind::Device, sid(d.site), &d.id), Target::Device(i));
        }
        let max_key = self.keys.max_key().unwrap_or(0).max(0) as usize;
        let mut target: Vec<Option<Target>> = vec![None; max_key + 1];
        for ((kind, site, id), key) in self.keys.iter() {
            if let Some(t) = by_name.get(&(kind, site, id)) {
                if let Some(slot) = target.get_mut(key.max(0) as usize) {
                    *slot = Some(*t);
                }
            }
        }
        target
    }

    /// Every link's up/down changes before `to`, oldest first.
    fn read_links(&self, to: i64, h: &mut History) -> Result<(), StateError> {
        let mut links: std::collections::BTreeMap<String, Vec<(i64, bool)>> = Default::default();
        for (link, at, up) in self.rows(
            "SELECT link, at_ms, up FROM links WHERE at_ms < ?1 ORDER BY id",
            params![to],
            |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, bool>(2)?,
                ))
            },
        )? {
            links.entry(link).or_default().push((at, up));
        }
        h.links = links.into_iter().collect();
        Ok(())
    }

    /// Minute-resolution history (poll counts, latency buckets): the minutes that overlap
    /// the window count.
    fn read_minutes(
        &self,
        inv: &Inventory,
        from: i64,
        to: i64,
        h: &mut History,
    ) -> Result<(), StateError> {
        h.polls = self
            .rows(
                "SELECT link, sum(ok), sum(failed) FROM polls
                 WHERE minute_ms > ?1 - 60000 AND minute_ms < ?2 GROUP BY link ORDER BY link",
                params![from, to],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, i64>(2)?,
                    ))
                },
            )?
            .into_iter()
            .map(|(link, ok, failed)| (link, ok.max(0) as u64, failed.max(0) as u64))
            .collect();
        let site_idx: HashMap<&str, usize> = inv
            .sites
            .iter()
            .enumerate()
            .map(|(i, s)| (&*s.id, i))
            .collect();
        for (site, bucket, count) in self.rows(
            "SELECT site, bucket, sum(count) FROM latency
             WHERE minute_ms > ?1 - 60000 AND minute_ms < ?2 GROUP BY site, bucket",
            params![from, to],
            |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, u32>(1)?,
                    r.get::<_, i64>(2)?,
                ))
            },
        )? {
            if let Some(&i) = site_idx.get(site.as_str()) {
                h.latency[i].push((bucket, count.max(0) as u64));
            }
        }
        Ok(())
    }
}

/// What a journal key is in the current inventory.
#[derive(Clone, Copy)]
enum Target {
    Site(usize),
    Enterprise(usize),
    Zone(usize),
    System(usize),
    Device(usize),
}

/// Registry changes before `to`, onto the units they concern.
fn read_registry(
    conn: &Connection,
    to: i64,
    lookup: &impl Fn(i64) -> Option<Target>,
    h: &mut History,
) -> rusqlite::Result<()> {
    let mut st =
        conn.prepare("SELECT unit, at_ms, status FROM registry WHERE at_ms < ?1 ORDER BY id")?;
    let mut rows = st.query(params![to])?;
    while let Some(r) = rows.next()? {
        let (unit, at, status): (i64, i64, String) = (r.get(0)?, r.get(1)?, r.get(2)?);
        let Some(reg) = Reg::parse(&status) else {
            continue;
        };
        match lookup(unit) {
            Some(Target::Site(i)) => h.sites[i].push((at, reg)),
            Some(Target::System(i)) => h.systems[i].push((at, reg)),
            Some(Target::Device(i)) => h.devices[i].status.push((at, reg)),
            Some(Target::Zone(i)) => {
                h.zones[i].get_or_insert(at);
                h.zone_status[i].push((at, reg));
            }
            Some(Target::Enterprise(i)) => {
                h.enterprises[i].get_or_insert(at);
                h.enterprise_status[i].push((at, reg));
            }
            None => {}
        }
    }
    Ok(())
}

/// Device conditions before `to`, each device's in time order (a file older than version 2
/// has none: its devices were normal throughout, as far as the journal knows).
fn read_conditions(
    conn: &Connection,
    to: i64,
    lookup: &impl Fn(i64) -> Option<Target>,
    h: &mut History,
) -> rusqlite::Result<()> {
    let mut st = conn.prepare_cached(
        "SELECT unit, at_ms, condition, cause FROM conditions WHERE at_ms < ?1 ORDER BY id",
    )?;
    let mut rows = st.query(params![to])?;
    while let Some(r) = rows.next()? {
        let Some(Target::Device(i)) = lookup(r.get(0)?) else {
            continue;
        };
        let c = crate::core::Condition::parse(&r.get::<_, String>(2)?).unwrap_or_default();
        let cause: Option<String> = r.get(3)?;
        h.devices[i]
            .conditions
            .push((r.get(1)?, c, cause.map(Into::into)));
    }
    for d in &mut h.devices {
        if !d.conditions.is_sorted_by_key(|t| t.0) {
            d.conditions.sort_by_key(|t| t.0);
        }
    }
    Ok(())
}

/// Device transitions before `to`: the compacted timeline (one blob per device), then the
/// tail after `compacted` not yet folded into it; each device's in time order.
fn read_transitions(
    conn: &Connection,
    compacted: i64,
    to: i64,
    lookup: &impl Fn(i64) -> Option<Target>,
    h: &mut History,
) -> rusqlite::Result<()> {
    {
        let mut st = conn.prepare("SELECT unit, data FROM timeline")?;
        let mut rows = st.query([])?;
        while let Some(r) = rows.next()? {
            let Some(Target::Device(i)) = lookup(r.get(0)?) else {
                continue;
            };
            let bytes = r.get_ref(1)?.as_blob()?;
            let out = &mut h.devices[i].transitions;
            out.reserve(bytes.len() / 8);
            for c in bytes.chunks_exact(8) {
                let (at, on) = unpack(c);
                if at < to {
                    out.push((at, on));
                }
            }
        }
    }
    let mut st = conn.prepare_cached(
        "SELECT unit, at_ms, online FROM transitions WHERE id > ?1 AND at_ms < ?2 ORDER BY id",
    )?;
    let mut rows = st.query(params![compacted, to])?;
    while let Some(r) = rows.next()? {
        if let Some(Target::Device(i)) = lookup(r.get(0)?) {
            h.devices[i].transitions.push((r.get(1)?, r.get(2)?));
        }
    }
    for d in &mut h.devices {
        if !d.transitions.is_sorted_by_key(|t| t.0) {
            d.transitions.sort_by_key(|t| t.0);
        }
    }
    Ok(())
}
