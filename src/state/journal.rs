//! The gateway's durable history in SQLite (WAL): every device transition, the registry
//! history of every unit (when it appeared, changed status or left the inventory), link
//! up/down changes and per-minute latency histograms. Indicators over any window are computed
//! from it; liveness is restored from it after a restart. Units get integer keys so a scan of
//! millions of transitions stays cheap.

use rusqlite::{params, Connection, OpenFlags};
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use super::rows::{
    ConditionRow, DeviceSnapshot, JournalMsg, LatencyRow, StateError, TransitionRow,
};

/// Transitions folded into the timeline after this many new ones (and at shutdown).
const COMPACT_EVERY: usize = 20_000;

pub use crate::core::inventory::UnitKind;

/// Unit keys by unit, shared by reading connections.
pub(super) type Keys = Arc<super::keys::UnitKeys>;

pub struct Journal {
    pub(super) path: PathBuf,
    pub(super) conn: Connection,
    /// Shared by the read pool's connections (one copy, not one per connection: at 300,000
    /// devices a copy is about 40 MB); the writer's own is never shared, so it is changed in
    /// place.
    pub(super) keys: Keys,
    /// Released when a write meets a full disk, so the journal can still write and checkpoint.
    reserve: Option<std::sync::Arc<super::space::Reserve>>,
    /// Cluster mode: writes are committed only with a checkpoint (`super::checkpoint`).
    pub(super) held: Option<super::rows::Held>,
}

impl Journal {
    /// Open (creating if needed) `data_dir/state.db` for writing.
    pub fn open(data_dir: &Path) -> Result<Journal, StateError> {
        Self::open_with(data_dir, crate::model::OnDamage::Refuse, 0)
    }

    /// `open`, with what to do when the file is damaged (`gateway.on_damaged_file`).
    pub fn open_with(
        data_dir: &Path,
        on_damage: crate::model::OnDamage,
        now_ms: i64,
    ) -> Result<Journal, StateError> {
        std::fs::create_dir_all(data_dir).map_err(|e| StateError::Dir(data_dir.into(), e))?;
        let path = data_dir.join("state.db");
        let conn = super::files::open_checked(&path, on_damage, now_ms)?;
        conn.execute_batch("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;")
            .map_err(|e| StateError::Db(path.clone(), e))?;
        super::schema::migrate(&conn, &path)?;
        let mut j = Journal {
            path,
            conn,
            keys: Arc::default(),
            reserve: None,
            held: None,
        };
        j.load_keys()?;
        Ok(j)
    }

    /// Open an existing state database for reading only (reports, the API), beside a
    /// running gateway (WAL lets readers and the writer work at once).
    pub fn open_read(data_dir: &Path) -> Result<Journal, StateError> {
        let path = data_dir.join("state.db");
        if !path.exists() {
            return Err(StateError::Missing(path));
        }
        let conn = Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| StateError::Db(path.clone(), e))?;
        let found = super::schema::version(&conn).map_err(|e| StateError::Db(path.clone(), e))?;
        super::schema::check_not_newer(found, &path)?;
        let mut j = Journal {
            path,
            conn,
            keys: Arc::default(),
            reserve: None,
            held: None,
        };
        j.load_keys()?;
        Ok(j)
    }

    /// Bound the write-ahead log (`outbox.wal_max_bytes`) and, on a full disk, release
    /// `reserve` and try once more.
    pub fn guard_disk(
        &mut self,
        reserve: std::sync::Arc<super::space::Reserve>,
        wal_max_bytes: u64,
    ) -> Result<(), StateError> {
        super::space::bound_wal(&self.conn, wal_max_bytes).map_err(|e| self.err(e))?;
        self.reserve = Some(reserve);
        Ok(())
    }

    pub(super) fn err(&self, e: rusqlite::Error) -> StateError {
        StateError::Db(self.path.clone(), e)
    }

    /// Run a query and map every row, with errors naming the database file.
    pub(super) fn rows<T>(
        &self,
        sql: &str,
        params: impl rusqlite::Params,
        f: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<Vec<T>, StateError> {
        let mut st = self.conn.prepare_cached(sql).map_err(|e| self.err(e))?;
        let rows = st.query_map(params, f).map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    /// The largest unit key the file holds now.
    pub(super) fn newest_key(&self) -> Result<Option<i64>, StateError> {
        self.conn
            .query_row("SELECT max(key) FROM units", [], |r| r.get(0))
            .map_err(|e| StateError::Db(self.path.clone(), e))
    }

    /// Use `keys`, read by another connection to the same file.
    pub(super) fn share_keys(&mut self, keys: Keys) {
        self.keys = keys;
    }

    /// Reload the unit keys when the writer has added units since they were read; the keys
    /// and their largest, for other connections to share.
    pub(super) fn reload_keys_if_grown(&mut self, newest: Option<i64>) -> Result<Keys, StateError> {
        if newest != self.keys.max_key() {
            self.load_keys()?;
        }
        Ok(self.keys.clone())
    }

    fn load_keys(&mut self) -> Result<(), StateError> {
        let mut st = self
            .conn
            .prepare("SELECT key, kind, site, id FROM units")
            .map_err(|e| StateError::Db(self.path.clone(), e))?;
        let rows = st
            .query_map([], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                ))
            })
            .map_err(|e| StateError::Db(self.path.clone(), e))?;
        let mut keys = super::keys::UnitKeys::default();
        for row in rows {
            let (key, kind, site, id) = row.map_err(|e| StateError::Db(self.path.clone(), e))?;
            if let Some(kind) = UnitKind::parse(&kind) {
                keys.insert(kind, &site, &id, key);
            }
        }
        drop(st);
        self.keys = Arc::new(keys);
        Ok(())
    }

    /// Run `f` in one transaction with the unit keys, committed only when it succeeds
    /// (rusqlite rolls back on drop); errors name the file. A savepoint: alone it is a
    /// transaction of its own; in cluster mode it joins the one a checkpoint commits.
    pub(super) fn in_transaction<T>(
        &mut self,
        f: impl FnOnce(&Connection, &mut super::keys::UnitKeys) -> rusqlite::Result<T>,
    ) -> Result<T, StateError> {
        let path = &self.path;
        let db = |e| StateError::Db(path.clone(), e);
        let tx = self.conn.savepoint().map_err(db)?;
        let out = f(&tx, Arc::make_mut(&mut self.keys)).map_err(db)?;
        tx.commit().map_err(db)?;
        Ok(out)
    }

    /// Apply messages from the core until the channel closes (run on its own thread).
    /// Folds the transition tail into the timeline every `COMPACT_EVERY` transitions.
    pub fn serve(mut self, mut rx: tokio::sync::mpsc::Receiver<JournalMsg>) {
        let mut since_compaction = 0usize;
        // Whether every write since the last receipts went to disk.
        let mut clean = true;
        let warn = crate::telemetry::RateLimitedLog::new(10_000);
        let now = crate::model::now_ms;
        self.begin_held();
        while let Some(msg) = rx.blocking_recv() {
            let msg = match msg {
                JournalMsg::Checkpoint(c) => {
                    self.commit_checkpoint(*c);
                    continue;
                }
                JournalMsg::Receipts(rs) if self.held.is_some() => {
                    self.hold_receipts(rs);
                    continue;
                }
                JournalMsg::Receipts(rs) => {
                    if clean {
                        rs.into_iter().for_each(crate::core::Receipt::done);
                    }
                    clean = true;
                    continue;
                }
                _ if self.held_broken() => continue,
                msg => msg,
            };
            if let JournalMsg::Transitions(rows) = &msg {
                since_compaction += rows.len();
            }
            let r = match self.write(&msg) {
                Err(e) if e.is_disk_full() && self.release_reserve() => {
                    self.recover();
                    self.write(&msg)
                }
                r => r,
            };
            if let Err(e) = r {
                clean = false;
                self.held_failed();
                // Keep serving: a full disk may clear; the error names the file.
                self.recover();
                if let Some(suppressed) = warn.allow("journal_write", now()) {
                    tracing::error!(error = %e, suppressed, "cannot persist liveness state (the messages behind it are not acknowledged)");
                }
            }
            if since_compaction >= COMPACT_EVERY {
                since_compaction = 0;
                if let Err(e) = self.compact() {
                    self.recover();
                    if let Some(suppressed) = warn.allow("journal_compact", now()) {
                        tracing::error!(error = %e, suppressed, "cannot compact the transition timeline");
                    }
                }
            }
        }
        // What came after the last checkpoint is not kept: a restart applies it again.
        self.end_held();
        if let Err(e) = self.compact() {
            tracing::error!(error = %e, "cannot compact the transition timeline");
        }
    }

    fn write(&mut self, msg: &JournalMsg) -> Result<(), StateError> {
        match msg {
            JournalMsg::Transitions(rows) => self.append(rows),
            JournalMsg::Conditions(rows) => self.append_conditions(rows),
            JournalMsg::LastSeen(rows) => self.save_last_seen(rows),
            JournalMsg::Links(rows) => self.append_links(rows),
            JournalMsg::Latency(rows) => self.add_latency(rows),
            JournalMsg::Polls(rows) => self.add_polls(rows),
            JournalMsg::Alarms(rows) => self.save_alarms(rows),
            JournalMsg::Registry(rows) => self.append_registry(rows),
            JournalMsg::Receipts(_) | JournalMsg::Checkpoint(_) => Ok(()),
        }
    }

    fn release_reserve(&self) -> bool {
        self.reserve.as_ref().is_some_and(|r| r.release())
    }

    /// After a failed write (its transaction rolled back when dropped): forget unit keys it
    /// may have handed out, since their rows were rolled back with it.
    pub(super) fn recover(&mut self) {
        if self.load_keys().is_err() {
            self.keys = Arc::default();
        }
    }
}

/// The integer key of a unit, inserted on first use. A key handed out in a transaction that
/// rolled back is dropped with the cache by `Journal::recover`.
pub(super) fn unit_key(
    conn: &Connection,
    keys: &mut super::keys::UnitKeys,
    kind: UnitKind,
    site: &str,
    id: &str,
) -> rusqlite::Result<i64> {
    if let Some(v) = keys.get(kind, site, id) {
        return Ok(v);
    }
    conn.prepare_cached("INSERT INTO units(kind, site, id) VALUES (?1, ?2, ?3)")?
        .execute(params![kind.as_str(), site, id])?;
    let v = conn.last_insert_rowid();
    keys.insert(kind, site, id, v);
    Ok(v)
}

impl StateError {
    /// A write found no room on the disk.
    pub fn is_disk_full(&self) -> bool {
        matches!(self, StateError::Db(_, e) if super::space::is_disk_full(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::indicators::history::Reg;
    use crate::core::inventory::Inventory;

    #[test]
    fn transitions_and_last_seen_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut j = Journal::open(dir.path()).unwrap();
            let row = |d: &str, at, online| TransitionRow {
                site: "s".into(),
                device: d.into(),
                at_ms: at,
                online,
                cause: "x".into(),
            };
            j.append(&[row("a", 10, true), row("a", 20, false), row("b", 15, true)])
                .unwrap();
            j.save_last_seen(&[("s".into(), "b".into(), 30, true)])
                .unwrap();
            j.save_last_seen(&[("s".into(), "b".into(), 25, false)])
                .unwrap();
        }
        let j = Journal::open(dir.path()).unwrap();
        let snap = j.load_latest().unwrap();
        assert_eq!(snap.len(), 2);
        assert_eq!(snap[0].last_transition, Some((false, 20)));
        assert_eq!(snap[1].last_transition, Some((true, 15)));
        assert_eq!(
            snap[1].last_seen_ms,
            Some(30),
            "last_seen never goes backwards"
        );
        let timeline = |from, max| j.timeline_of("s", "a", (from, 100), max).unwrap();
        let (before, rows) = timeline(0, 10);
        assert_eq!(
            (before, rows.len()),
            (None, 2),
            "no change before 0, two after"
        );
        let (before, rows) = timeline(11, 10);
        assert_eq!(
            (before, rows.len()),
            (Some(true), 1),
            "online before 11, one change after"
        );
        assert!(!rows[0].online && rows[0].at_ms == 20);
        assert_eq!(timeline(0, 1).1.len(), 1, "at most max");
        assert_eq!(timeline(21, 10), (Some(false), vec![]));
    }

    /// Conditions are kept with their causes and read back in time order, before `to`.
    #[test]
    fn conditions_and_their_causes_survive_into_the_history() {
        use crate::core::Condition;
        let t = "[[sites]]\nid = \"s\"\nname = \"S\"\nkind = \"mine\"\n\n[[devices]]\nid = \"a\"\nsite = \"s\"\nkind = \"temperature\"\nprotocol = \"mqtt\"\ninterval_s = 1\n";
        let inv = Inventory::from_config(&crate::core::config::inventory::test_file(t).inventory);
        let dir = tempfile::tempdir().unwrap();
        let mut j = Journal::open(dir.path()).unwrap();
        let row = |at, condition, cause: Option<&str>| ConditionRow {
            site: "s".into(),
            device: "a".into(),
            at_ms: at,
            condition,
            cause: cause.map(Into::into),
        };
        j.append_conditions(&[
            row(10, "fault", Some("传感器故障")),
            row(30, "normal", None),
        ])
        .unwrap();
        j.append_conditions(&[row(50, "maintenance", Some("标校"))])
            .unwrap();
        let h = j.load_history(&inv, 0, 40).unwrap();
        assert_eq!(
            h.devices[0].conditions,
            vec![
                (10, Condition::Fault, Some("传感器故障".into())),
                (30, Condition::Normal, None)
            ]
        );
        drop(j);
        let j = Journal::open(dir.path()).unwrap();
        let h = j.load_history(&inv, 0, 100).unwrap();
        assert_eq!(h.devices[0].conditions.len(), 3);
        assert_eq!(h.devices[0].conditions[2].1, Condition::Maintenance);
    }

    #[test]
    fn compaction_keeps_history_identical() {
        let t = "[[sites]]\nid = \"s\"\nname = \"S\"\nkind = \"park\"\n\n[[devices]]\nid = \"a\"\nsite = \"s\"\nkind = \"temperature\"\nprotocol = \"mqtt\"\ninterval_s = 1\n";
        let inv = Inventory::from_config(&crate::core::config::inventory::test_file(t).inventory);
        let dir = tempfile::tempdir().unwrap();
        let mut j = Journal::open(dir.path()).unwrap();
        let row = |at, online| TransitionRow {
            site: "s".into(),
            device: "a".into(),
            at_ms: at,
            online,
            cause: "x".into(),
        };
        j.append(&[row(-5, true), row(10, false)]).unwrap();
        assert_eq!(j.compact().unwrap(), 2);
        j.append(&[row(20, true)]).unwrap();
        let h = j.load_history(&inv, 0, 100).unwrap();
        assert_eq!(
            h.devices[0].transitions,
            vec![(-5, true), (10, false), (20, true)]
        );
        assert_eq!(j.compact().unwrap(), 1);
        assert_eq!(j.compact().unwrap(), 0);
        let h2 = j.load_history(&inv, 0, 15).unwrap();
        assert_eq!(h2.devices[0].transitions, vec![(-5, true), (10, false)]);
        let h3 = j.load_history(&inv, 0, 100).unwrap();
        assert_eq!(h3.devices[0].transitions, h.devices[0].transitions);
    }

    #[test]
    fn registry_history_records_changes_and_removals() {
        let inv_of = |status: &str, with_b: bool| {
            let mut t = format!(
                "[[sites]]\nid = \"s\"\nname = \"S\"\nkind = \"park\"\n\n[[devices]]\nid = \"a\"\nsite = \"s\"\nkind = \"temperature\"\nprotocol = \"mqtt\"\ninterval_s = 1\nstatus = \"{status}\"\n"
            );
            if with_b {
                t.push_str("[[devices]]\nid = \"b\"\nsite = \"s\"\nkind = \"temperature\"\nprotocol = \"mqtt\"\ninterval_s = 1\n");
            }
            Inventory::from_config(&crate::core::config::inventory::test_file(&t).inventory)
        };
        let dir = tempfile::tempdir().unwrap();
        let mut j = Journal::open(dir.path()).unwrap();
        assert_eq!(j.sync_registry(&inv_of("built", true), 100).unwrap(), 3);
        assert_eq!(j.sync_registry(&inv_of("built", true), 200).unwrap(), 0);
        assert_eq!(
            j.sync_registry(&inv_of("suspended", false), 300).unwrap(),
            2
        );
        let h = j
            .load_history(&inv_of("suspended", false), 0, 1000)
            .unwrap();
        assert_eq!(
            h.devices[0].status,
            vec![(100, Reg::Built), (300, Reg::Suspended)]
        );
        assert_eq!(h.sites[0], vec![(100, Reg::Built)]);
        j.append_links(&[("mqtt".into(), 150, true)]).unwrap();
        assert_eq!(j.close_open_links().unwrap(), 1);
        let h = j
            .load_history(&inv_of("suspended", false), 0, 1000)
            .unwrap();
        assert_eq!(
            h.links,
            vec![("mqtt".to_string(), vec![(150, true), (150, false)])]
        );
        j.add_latency(&[("s".into(), 60_000, 5, 2), ("s".into(), 60_000, 5, 3)])
            .unwrap();
        j.add_polls(&[
            ("modbus:x".into(), 60_000, 3, 1),
            ("modbus:x".into(), 60_000, 2, 0),
        ])
        .unwrap();
        let h = j
            .load_history(&inv_of("suspended", false), 0, 120_000)
            .unwrap();
        assert_eq!(h.latency[0], vec![(5, 5)]);
        assert_eq!(h.polls, vec![("modbus:x".to_string(), 5, 1)]);
    }

    /// Units that join and leave at runtime: their registry rows are at those times, and
    /// the indicators count them from the join to the leave.
    #[test]
    fn registry_history_of_units_that_join_and_leave_at_runtime() {
        use crate::core::{Core, Outputs, SiteDevices, SourceEvent};
        let t = "[[sites]]\nid = \"s\"\nname = \"S\"\nkind = \"mine\"\n\n[[devices]]\nid = \"a\"\nsite = \"s\"\nkind = \"temperature\"\nprotocol = \"mqtt\"\ninterval_s = 1\n";
        let f = crate::core::config::inventory::test_file(t);
        let mut core = Core::new(Inventory::from_config(&f.inventory), 60_000, 10);
        let dir = tempfile::tempdir().unwrap();
        let mut j = Journal::open(dir.path()).unwrap();
        j.sync_registry(&core.inventory, 0).unwrap();
        let mut point = f.inventory.devices[0].clone();
        point.id = "p".into();
        let declare = |core: &mut Core, devices, at| {
            let mut out = Outputs::default();
            let sd = SiteDevices {
                source: "mine_files".into(),
                site: "s".into(),
                devices,
                findings: Arc::from([]),
                at_ms: at,
            };
            core.apply(SourceEvent::Devices(Box::new(sd)), &mut out);
            out.registry
        };
        j.append_registry(&declare(&mut core, vec![point], 1_000))
            .unwrap();
        j.append_registry(&declare(&mut core, vec![], 4_000))
            .unwrap();
        let inv = &core.inventory;
        let h = j.load_history(inv, 0, 10_000).unwrap();
        let p = inv
            .site_slot("s")
            .and_then(|s| inv.device_slot(s, "p"))
            .unwrap();
        assert_eq!(
            h.devices[p as usize].status,
            vec![(1_000, Reg::Built), (4_000, Reg::Removed)]
        );
        let c = crate::core::indicators::compute(inv, &h, 0, 10_000, 10_000, Default::default());
        assert_eq!(c.devices[p as usize].counted_ms, 3_000);
        assert_eq!(c.devices[0].counted_ms, 10_000);
        // A start after that finds nothing to add: the removed unit is already removed.
        assert_eq!(j.sync_registry(inv, 20_000).unwrap(), 0);
    }

    /// A zone removed by a reload stops counting at the reload time.
    #[test]
    fn a_zone_removed_by_a_reload_stops_counting_then() {
        use crate::core::{Core, Outputs};
        let park = "[[sites]]\nid = \"s\"\nname = \"S\"\nkind = \"park\"\n";
        let with_zone = format!("{park}\n[[zones]]\nid = \"z\"\nsite = \"s\"\nname = \"Z\"\n");
        let f = crate::core::config::inventory::test_file(&with_zone);
        let mut core = Core::new(Inventory::from_config(&f.inventory), 60_000, 10);
        let dir = tempfile::tempdir().unwrap();
        let mut j = Journal::open(dir.path()).unwrap();
        j.sync_registry(&core.inventory, 0).unwrap();
        let mut out = Outputs::default();
        let without = crate::core::config::inventory::test_file(park);
        let tally = core
            .reload_inventory(&without.inventory, 5_000, &mut out)
            .unwrap();
        assert_eq!(tally.zones.removed, 1);
        j.append_registry(&out.registry).unwrap();
        let inv = &core.inventory;
        let h = j.load_history(inv, 0, 10_000).unwrap();
        let c = crate::core::indicators::compute(inv, &h, 0, 10_000, 10_000, Default::default());
        assert_eq!(c.zones[0].counted_ms, 5_000);
        assert!(!c.zones[0].registered_at_to);
    }
}
