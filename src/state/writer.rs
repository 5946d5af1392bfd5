//! Writing the journal: transitions, last-seen times, links, latency and poll counts, and
//! the registry history. Each call is one transaction.

use super::journal::{
    unit_key, ConditionRow, Journal, LatencyRow, StateError, TransitionRow, UnitKind,
};
use crate::core::indicators::history::Reg;
use crate::core::inventory::Inventory;
use rusqlite::params;
use std::collections::HashMap;

impl Journal {
    pub fn append(&mut self, rows: &[TransitionRow]) -> Result<(), StateError> {
        self.in_transaction(|tx, keys| {
            let mut st = tx.prepare_cached(
                "INSERT INTO transitions(unit, at_ms, online, cause) VALUES (?1, ?2, ?3, ?4)",
            )?;
            for r in rows {
                let unit = unit_key(tx, keys, UnitKind::Device, &r.site, &r.device)?;
                st.execute(params![unit, r.at_ms, r.online, r.cause])?;
            }
            Ok(())
        })
    }

    pub fn append_conditions(&mut self, rows: &[ConditionRow]) -> Result<(), StateError> {
        self.in_transaction(|tx, keys| {
            let mut st = tx.prepare_cached(
                "INSERT INTO conditions(unit, at_ms, condition, cause) VALUES (?1, ?2, ?3, ?4)",
            )?;
            for r in rows {
                let unit = unit_key(tx, keys, UnitKind::Device, &r.site, &r.device)?;
                st.execute(params![unit, r.at_ms, r.condition, r.cause])?;
            }
            Ok(())
        })
    }

    pub fn save_last_seen(
        &mut self,
        rows: &[(String, String, i64, bool)],
    ) -> Result<(), StateError> {
        self.in_transaction(|tx, keys| {
            let mut st = tx.prepare_cached(
                "INSERT INTO last_seen(unit, last_seen_ms, fault) VALUES (?1, ?2, ?3)
                 ON CONFLICT(unit) DO UPDATE SET
                   last_seen_ms = max(last_seen_ms, excluded.last_seen_ms), fault = excluded.fault",
            )?;
            for (s, d, t, f) in rows {
                let unit = unit_key(tx, keys, UnitKind::Device, s, d)?;
                st.execute(params![unit, t, f])?;
            }
            Ok(())
        })
    }

    pub fn append_links(&mut self, rows: &[(String, i64, bool)]) -> Result<(), StateError> {
        self.in_transaction(|tx, _| {
            let mut st =
                tx.prepare_cached("INSERT INTO links(link, at_ms, up) VALUES (?1, ?2, ?3)")?;
            for (link, at, up) in rows {
                st.execute(params![link, at, up])?;
            }
            Ok(())
        })
    }

    pub fn add_latency(&mut self, rows: &[LatencyRow]) -> Result<(), StateError> {
        self.in_transaction(|tx, _| {
            let mut st = tx.prepare_cached(
                "INSERT INTO latency(site, minute_ms, bucket, count) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(site, minute_ms, bucket) DO UPDATE SET count = count + excluded.count",
            )?;
            for (site, minute, bucket, count) in rows {
                st.execute(params![site, minute, bucket, *count as i64])?;
            }
            Ok(())
        })
    }

    pub fn add_polls(&mut self, rows: &[(String, i64, u64, u64)]) -> Result<(), StateError> {
        self.in_transaction(|tx, _| {
            let mut st = tx.prepare_cached(
                "INSERT INTO polls(link, minute_ms, ok, failed) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(link, minute_ms) DO UPDATE SET ok = ok + excluded.ok, failed = failed + excluded.failed",
            )?;
            for (link, minute, ok, failed) in rows {
                st.execute(params![link, minute, *ok as i64, *failed as i64])?;
            }
            Ok(())
        })
    }

    /// Registry rows the core made as units joined, changed or left (at their own times).
    pub fn append_registry(
        &mut self,
        rows: &[crate::core::RegistryChange],
    ) -> Result<(), StateError> {
        self.in_transaction(|tx, keys| {
            let mut st =
                tx.prepare_cached("INSERT INTO registry(unit, at_ms, status) VALUES (?1, ?2, ?3)")?;
            for r in rows {
                let unit = unit_key(tx, keys, r.kind, &r.site, &r.id)?;
                st.execute(params![unit, r.at_ms, r.status.as_str()])?;
            }
            Ok(())
        })
    }

    /// Record, at `now`, every unit whose status differs from the registry's last word
    /// (new units, changed statuses), and every unit that left the inventory as removed.
    /// Returns how many rows were written.
    pub fn sync_registry(&mut self, inv: &Inventory, now: i64) -> Result<usize, StateError> {
        let mut last: HashMap<i64, String> = HashMap::new();
        {
            let mut st = self
                .conn
                .prepare("SELECT unit, status FROM registry ORDER BY id")
                .map_err(|e| self.err(e))?;
            let rows = st
                .query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))
                .map_err(|e| self.err(e))?;
            for row in rows {
                let (u, s) = row.map_err(|e| self.err(e))?;
                last.insert(u, s);
            }
        }
        // Borrowed from the inventory as the transaction goes: collected as owned strings, the
        // list of units was 11 MB at 100,000 devices, on top of the start-up peak.
        let site_id = |s: u32| &*inv.sites[s as usize].id;
        let reg = |removed: bool, r: Reg| if removed { Reg::Removed } else { r }.as_str();
        let sites = inv.sites.iter().map(|s| {
            let st = reg(s.removed, Reg::from(s.status));
            (UnitKind::Site, &*s.id, &*s.id, st)
        });
        let enterprises = inv.enterprises.iter().map(|e| {
            (
                UnitKind::Enterprise,
                site_id(e.site),
                &*e.id,
                reg(e.removed, Reg::Built),
            )
        });
        let zones = inv.zones.iter().map(|z| {
            (
                UnitKind::Zone,
                site_id(z.site),
                &*z.id,
                reg(z.removed, Reg::Built),
            )
        });
        let systems = inv.systems.iter().map(|s| {
            let st = reg(s.removed, Reg::from(s.status));
            (UnitKind::System, site_id(s.site), &*s.id, st)
        });
        let devices = inv.devices.iter().map(|d| {
            let st = reg(d.removed, Reg::from(d.status));
            (UnitKind::Device, site_id(d.site), &*d.id, st)
        });
        let want = sites
            .chain(enterprises)
            .chain(zones)
            .chain(systems)
            .chain(devices);
        self.in_transaction(|tx, keys| {
            let mut insert =
                tx.prepare_cached("INSERT INTO registry(unit, at_ms, status) VALUES (?1, ?2, ?3)")?;
            let mut written = 0;
            let mut present = std::collections::HashSet::new();
            for (kind, site, id, status) in want {
                let unit = unit_key(tx, keys, kind, site, id)?;
                present.insert(unit);
                let was = last.get(&unit).map(String::as_str);
                if was != Some(status) && (was.is_some() || status != "removed") {
                    insert.execute(params![unit, now, status])?;
                    written += 1;
                }
            }
            for (unit, status) in &last {
                if !present.contains(unit) && status != "removed" {
                    insert.execute(params![unit, now, "removed"])?;
                    written += 1;
                }
            }
            Ok(written)
        })
    }

    /// Links whose last record says up: after an unclean stop they are closed at the last
    /// recorded activity, since nobody measured them after that.
    pub fn close_open_links(&mut self) -> Result<usize, StateError> {
        let open: Vec<String> = {
            let mut st = self
                .conn
                .prepare(
                    "SELECT l.link FROM links l JOIN (SELECT link, max(id) AS id FROM links GROUP BY link) m
                     ON l.id = m.id WHERE l.up = 1",
                )
                .map_err(|e| self.err(e))?;
            let rows = st
                .query_map([], |r| r.get::<_, String>(0))
                .map_err(|e| self.err(e))?;
            rows.collect::<Result<_, _>>().map_err(|e| self.err(e))?
        };
        if open.is_empty() {
            return Ok(0);
        }
        let at = self.last_activity_ms()?.unwrap_or(0);
        let rows: Vec<(String, i64, bool)> = open.into_iter().map(|l| (l, at, false)).collect();
        self.append_links(&rows)?;
        Ok(rows.len())
    }
}
