//! The gateway's durable history in SQLite (WAL): every device transition, the registry
//! history of every unit (when it appeared, changed status or left the inventory), link
//! up/down changes and per-minute latency histograms. Indicators over any window are computed
//! from it; liveness is restored from it after a restart. Units get integer keys so a scan of
//! millions of transitions stays cheap.

use crate::core::indicators::history::{DeviceHistory, History, Reg};
use crate::core::inventory::Inventory;
use rusqlite::{params, Connection, OpenFlags};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot create the state directory {0}: {1}")]
    Dir(PathBuf, std::io::Error),
    #[error("state database {0}: {1}")]
    Db(PathBuf, rusqlite::Error),
    #[error("no state database at {0}: has the gateway run with this data_dir?")]
    Missing(PathBuf),
    #[error(transparent)]
    File(#[from] super::files::DbFileError),
    #[error(transparent)]
    Newer(#[from] super::schema::NewerSchema),
}

#[derive(Debug, Clone, PartialEq)]
pub struct TransitionRow {
    pub site: String,
    pub device: String,
    pub at_ms: i64,
    pub online: bool,
    pub cause: String,
}

/// What the journal knows of one device at start-up.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceSnapshot {
    pub site: String,
    pub device: String,
    /// The last transition: (online, at).
    pub last_transition: Option<(bool, i64)>,
    pub last_seen_ms: Option<i64>,
    pub fault: bool,
}

/// Latency counts: (site, minute start ms, bucket, count).
pub type LatencyRow = (String, i64, u32, u64);

pub enum JournalMsg {
    Transitions(Vec<TransitionRow>),
    /// (site, device, last_seen_ms, fault), saved periodically.
    LastSeen(Vec<(String, String, i64, bool)>),
    /// (link, at, up).
    Links(Vec<(String, i64, bool)>),
    Latency(Vec<LatencyRow>),
    /// (link, minute start ms, ok, failed) poll counts.
    Polls(Vec<(String, i64, u64, u64)>),
    /// Alarm changes, in order.
    Alarms(Vec<super::alarms::AlarmRow>),
    /// Receipts of messages whose state changes came before this: completed once those are
    /// committed, dropped (not durable) when a write failed.
    Receipts(Vec<crate::core::Receipt>),
}

/// Transitions folded into the timeline after this many new ones (and at shutdown).
const COMPACT_EVERY: usize = 20_000;

/// A transition as 8 bytes: time in ms shifted left, the online bit below it.
fn pack(at_ms: i64, online: bool) -> [u8; 8] {
    ((at_ms << 1) | online as i64).to_le_bytes()
}

fn unpack(b: &[u8]) -> (i64, bool) {
    let mut a = [0u8; 8];
    a.copy_from_slice(b);
    let v = i64::from_le_bytes(a);
    (v >> 1, v & 1 == 1)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UnitKind {
    Site,
    Enterprise,
    Zone,
    System,
    Device,
}

impl UnitKind {
    fn as_str(self) -> &'static str {
        match self {
            UnitKind::Site => "site",
            UnitKind::Enterprise => "enterprise",
            UnitKind::Zone => "zone",
            UnitKind::System => "system",
            UnitKind::Device => "device",
        }
    }
    fn parse(s: &str) -> Option<UnitKind> {
        Some(match s {
            "site" => UnitKind::Site,
            "enterprise" => UnitKind::Enterprise,
            "zone" => UnitKind::Zone,
            "system" => UnitKind::System,
            "device" => UnitKind::Device,
            _ => return None,
        })
    }
}

type UnitId = (UnitKind, String, String);

pub struct Journal {
    pub(super) path: PathBuf,
    pub(super) conn: Connection,
    keys: HashMap<UnitId, i64>,
    /// Released when a write meets a full disk, so the journal can still write and checkpoint.
    reserve: Option<std::sync::Arc<super::space::Reserve>>,
}

impl Journal {
    /// Open (creating if needed) `data_dir/state.db` for writing.
    pub fn open(data_dir: &Path) -> Result<Journal, StateError> {
        Self::open_with(data_dir, crate::config::OnDamage::Refuse, 0)
    }

    /// `open`, with what to do when the file is damaged (`gateway.on_damaged_file`).
    pub fn open_with(
        data_dir: &Path,
        on_damage: crate::config::OnDamage,
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
            keys: HashMap::new(),
            reserve: None,
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
            keys: HashMap::new(),
            reserve: None,
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
        let mut keys = HashMap::new();
        for row in rows {
            let (key, kind, site, id) = row.map_err(|e| StateError::Db(self.path.clone(), e))?;
            if let Some(kind) = UnitKind::parse(&kind) {
                keys.insert((kind, site, id), key);
            }
        }
        drop(st);
        self.keys = keys;
        Ok(())
    }

    fn key(&mut self, kind: UnitKind, site: &str, id: &str) -> Result<i64, StateError> {
        let k = (kind, site.to_string(), id.to_string());
        if let Some(v) = self.keys.get(&k) {
            return Ok(*v);
        }
        self.conn
            .execute(
                "INSERT INTO units(kind, site, id) VALUES (?1, ?2, ?3)",
                params![kind.as_str(), site, id],
            )
            .map_err(|e| self.err(e))?;
        let v = self.conn.last_insert_rowid();
        self.keys.insert(k, v);
        Ok(v)
    }

    pub fn append(&mut self, rows: &[TransitionRow]) -> Result<(), StateError> {
        self.conn.execute_batch("BEGIN").map_err(|e| self.err(e))?;
        for r in rows {
            let unit = self.key(UnitKind::Device, &r.site, &r.device)?;
            self.conn
                .prepare_cached(
                    "INSERT INTO transitions(unit, at_ms, online, cause) VALUES (?1, ?2, ?3, ?4)",
                )
                .and_then(|mut st| st.execute(params![unit, r.at_ms, r.online, r.cause]))
                .map_err(|e| self.err(e))?;
        }
        self.conn.execute_batch("COMMIT").map_err(|e| self.err(e))
    }

    pub fn save_last_seen(
        &mut self,
        rows: &[(String, String, i64, bool)],
    ) -> Result<(), StateError> {
        self.conn.execute_batch("BEGIN").map_err(|e| self.err(e))?;
        for (s, d, t, f) in rows {
            let unit = self.key(UnitKind::Device, s, d)?;
            self.conn
                .prepare_cached(
                    "INSERT INTO last_seen(unit, last_seen_ms, fault) VALUES (?1, ?2, ?3)
                     ON CONFLICT(unit) DO UPDATE SET
                       last_seen_ms = max(last_seen_ms, excluded.last_seen_ms), fault = excluded.fault",
                )
                .and_then(|mut st| st.execute(params![unit, t, f]))
                .map_err(|e| self.err(e))?;
        }
        self.conn.execute_batch("COMMIT").map_err(|e| self.err(e))
    }

    pub fn append_links(&mut self, rows: &[(String, i64, bool)]) -> Result<(), StateError> {
        self.conn.execute_batch("BEGIN").map_err(|e| self.err(e))?;
        for (link, at, up) in rows {
            self.conn
                .prepare_cached("INSERT INTO links(link, at_ms, up) VALUES (?1, ?2, ?3)")
                .and_then(|mut st| st.execute(params![link, at, up]))
                .map_err(|e| self.err(e))?;
        }
        self.conn.execute_batch("COMMIT").map_err(|e| self.err(e))
    }

    pub fn add_latency(&mut self, rows: &[LatencyRow]) -> Result<(), StateError> {
        self.conn.execute_batch("BEGIN").map_err(|e| self.err(e))?;
        for (site, minute, bucket, count) in rows {
            self.conn
                .prepare_cached(
                    "INSERT INTO latency(site, minute_ms, bucket, count) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT(site, minute_ms, bucket) DO UPDATE SET count = count + excluded.count",
                )
                .and_then(|mut st| st.execute(params![site, minute, bucket, *count as i64]))
                .map_err(|e| self.err(e))?;
        }
        self.conn.execute_batch("COMMIT").map_err(|e| self.err(e))
    }

    pub fn add_polls(&mut self, rows: &[(String, i64, u64, u64)]) -> Result<(), StateError> {
        self.conn.execute_batch("BEGIN").map_err(|e| self.err(e))?;
        for (link, minute, ok, failed) in rows {
            self.conn
                .prepare_cached(
                    "INSERT INTO polls(link, minute_ms, ok, failed) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT(link, minute_ms) DO UPDATE SET ok = ok + excluded.ok, failed = failed + excluded.failed",
                )
                .and_then(|mut st| st.execute(params![link, minute, *ok as i64, *failed as i64]))
                .map_err(|e| self.err(e))?;
        }
        self.conn.execute_batch("COMMIT").map_err(|e| self.err(e))
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
        let mut want: Vec<(UnitKind, String, String, &'static str)> = Vec::new();
        let site_id = |s: u32| inv.sites[s as usize].id.to_string();
        for s in &inv.sites {
            want.push((
                UnitKind::Site,
                s.id.to_string(),
                s.id.to_string(),
                Reg::from(s.status).as_str(),
            ));
        }
        for e in &inv.enterprises {
            want.push((
                UnitKind::Enterprise,
                site_id(e.site),
                e.id.to_string(),
                "built",
            ));
        }
        for z in &inv.zones {
            want.push((UnitKind::Zone, site_id(z.site), z.id.to_string(), "built"));
        }
        for s in &inv.systems {
            want.push((
                UnitKind::System,
                site_id(s.site),
                s.id.to_string(),
                Reg::from(s.status).as_str(),
            ));
        }
        for d in &inv.devices {
            want.push((
                UnitKind::Device,
                site_id(d.site),
                d.id.to_string(),
                Reg::from(d.status).as_str(),
            ));
        }
        self.conn.execute_batch("BEGIN").map_err(|e| self.err(e))?;
        let mut written = 0;
        let mut present = std::collections::HashSet::new();
        for (kind, site, id, status) in want {
            let unit = self.key(kind, &site, &id)?;
            present.insert(unit);
            if last.get(&unit).map(String::as_str) != Some(status) {
                self.insert_registry(unit, now, status)?;
                written += 1;
            }
        }
        for (unit, status) in &last {
            if !present.contains(unit) && status != "removed" {
                self.insert_registry(*unit, now, "removed")?;
                written += 1;
            }
        }
        self.conn.execute_batch("COMMIT").map_err(|e| self.err(e))?;
        Ok(written)
    }

    fn insert_registry(&self, unit: i64, at: i64, status: &str) -> Result<(), StateError> {
        self.conn
            .prepare_cached("INSERT INTO registry(unit, at_ms, status) VALUES (?1, ?2, ?3)")
            .and_then(|mut st| st.execute(params![unit, at, status]))
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    /// The latest known state of every device the journal has seen.
    pub fn load_latest(&self) -> Result<Vec<DeviceSnapshot>, StateError> {
        let names: HashMap<i64, (String, String)> = self
            .keys
            .iter()
            .filter(|((k, _, _), _)| *k == UnitKind::Device)
            .map(|((_, s, d), key)| (*key, (s.clone(), d.clone())))
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

    /// Transitions of one device in [from, to), oldest first.
    pub fn transitions_of(
        &mut self,
        site: &str,
        device: &str,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<TransitionRow>, StateError> {
        let Some(unit) = self
            .keys
            .get(&(UnitKind::Device, site.to_string(), device.to_string()))
            .copied()
        else {
            return Ok(Vec::new());
        };
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT at_ms, online, cause FROM transitions
                 WHERE unit = ?1 AND at_ms >= ?2 AND at_ms < ?3 ORDER BY id",
            )
            .map_err(|e| self.err(e))?;
        let rows = st
            .query_map(params![unit, from_ms, to_ms], |r| {
                Ok(TransitionRow {
                    site: site.to_string(),
                    device: device.to_string(),
                    at_ms: r.get(0)?,
                    online: r.get(1)?,
                    cause: r.get(2)?,
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
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

    fn watermark(&self) -> Result<i64, StateError> {
        self.conn
            .query_row(
                "SELECT value FROM meta WHERE key = 'compacted_id'",
                [],
                |r| r.get(0),
            )
            .or_else(|e| match e {
                rusqlite::Error::QueryReturnedNoRows => Ok(0),
                e => Err(e),
            })
            .map_err(|e| self.err(e))
    }

    /// Fold transitions appended since the last compaction into one packed blob per device
    /// (`timeline`), so reading a year of history costs one row per device instead of one
    /// per transition. The `transitions` table stays as the audit log; the blob is a copy.
    /// Returns how many transitions were folded.
    pub fn compact(&mut self) -> Result<usize, StateError> {
        let w = self.watermark()?;
        self.conn.execute_batch("BEGIN").map_err(|e| self.err(e))?;
        let mut per_unit: HashMap<i64, Vec<u8>> = HashMap::new();
        let mut max_id = w;
        let mut n = 0usize;
        {
            let mut st = self
                .conn
                .prepare(
                    "SELECT id, unit, at_ms, online FROM transitions WHERE id > ?1 ORDER BY id",
                )
                .map_err(|e| StateError::Db(self.path.clone(), e))?;
            let mut rows = st
                .query(params![w])
                .map_err(|e| StateError::Db(self.path.clone(), e))?;
            while let Some(r) = rows
                .next()
                .map_err(|e| StateError::Db(self.path.clone(), e))?
            {
                let get = |i| {
                    r.get::<_, i64>(i)
                        .map_err(|e| StateError::Db(self.path.clone(), e))
                };
                let (id, unit, at, on) = (get(0)?, get(1)?, get(2)?, get(3)?);
                per_unit
                    .entry(unit)
                    .or_default()
                    .extend_from_slice(&pack(at, on != 0));
                max_id = id;
                n += 1;
            }
        }
        // SQL's || would turn blobs into text: append in Rust.
        for (unit, data) in per_unit {
            let mut blob: Vec<u8> = self
                .conn
                .prepare_cached("SELECT data FROM timeline WHERE unit = ?1")
                .and_then(|mut st| st.query_row(params![unit], |r| r.get(0)))
                .or_else(|e| match e {
                    rusqlite::Error::QueryReturnedNoRows => Ok(Vec::new()),
                    e => Err(e),
                })
                .map_err(|e| self.err(e))?;
            blob.extend_from_slice(&data);
            self.conn
                .prepare_cached("INSERT OR REPLACE INTO timeline(unit, data) VALUES (?1, ?2)")
                .and_then(|mut st| st.execute(params![unit, blob]))
                .map_err(|e| self.err(e))?;
        }
        self.conn
            .execute(
                "INSERT INTO meta(key, value) VALUES ('compacted_id', ?1)
                 ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                params![max_id],
            )
            .map_err(|e| self.err(e))?;
        self.conn.execute_batch("COMMIT").map_err(|e| self.err(e))?;
        Ok(n)
    }

    /// Everything the indicator engine needs for windows ending at or before `to`, mapped
    /// onto the current inventory (units no longer in it are left out).
    pub fn load_history(&self, inv: &Inventory, from: i64, to: i64) -> Result<History, StateError> {
        let mut h = History {
            devices: vec![DeviceHistory::default(); inv.devices.len()],
            sites: vec![Vec::new(); inv.sites.len()],
            systems: vec![Vec::new(); inv.systems.len()],
            zones: vec![None; inv.zones.len()],
            enterprises: vec![None; inv.enterprises.len()],
            latency: vec![Vec::new(); inv.sites.len()],
            links: Vec::new(),
            polls: Vec::new(),
            alarms: Vec::new(),
        };
        // Map journal keys to inventory indices.
        #[derive(Clone, Copy)]
        enum Target {
            Site(usize),
            Enterprise(usize),
            Zone(usize),
            System(usize),
            Device(usize),
        }
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
        let max_key = self.keys.values().copied().max().unwrap_or(0).max(0) as usize;
        let mut target: Vec<Option<Target>> = vec![None; max_key + 1];
        for ((kind, site, id), key) in &self.keys {
            if let Some(t) = by_name.get(&(*kind, site.as_str(), id.as_str())) {
                target[*key as usize] = Some(*t);
            }
        }
        let lookup = |k: i64| target.get(k as usize).copied().flatten();

        let mut st = self
            .conn
            .prepare("SELECT unit, at_ms, status FROM registry WHERE at_ms < ?1 ORDER BY id")
            .map_err(|e| self.err(e))?;
        let mut rows = st.query(params![to]).map_err(|e| self.err(e))?;
        while let Some(r) = rows.next().map_err(|e| self.err(e))? {
            let (unit, at): (i64, i64) = (
                r.get(0).map_err(|e| self.err(e))?,
                r.get(1).map_err(|e| self.err(e))?,
            );
            let status: String = r.get(2).map_err(|e| self.err(e))?;
            let Some(reg) = Reg::parse(&status) else {
                continue;
            };
            match lookup(unit) {
                Some(Target::Site(i)) => h.sites[i].push((at, reg)),
                Some(Target::System(i)) => h.systems[i].push((at, reg)),
                Some(Target::Device(i)) => h.devices[i].status.push((at, reg)),
                Some(Target::Zone(i)) => {
                    h.zones[i].get_or_insert(at);
                }
                Some(Target::Enterprise(i)) => {
                    h.enterprises[i].get_or_insert(at);
                }
                None => {}
            }
        }
        drop(rows);
        drop(st);

        // Compacted history first (one blob per device), then the tail not yet folded.
        let w = self.watermark()?;
        let mut st = self
            .conn
            .prepare("SELECT unit, data FROM timeline")
            .map_err(|e| self.err(e))?;
        let mut rows = st.query([]).map_err(|e| self.err(e))?;
        while let Some(r) = rows.next().map_err(|e| self.err(e))? {
            let unit: i64 = r.get(0).map_err(|e| self.err(e))?;
            if let Some(Target::Device(i)) = lookup(unit) {
                let data = r.get_ref(1).map_err(|e| self.err(e))?;
                let bytes = data.as_blob().map_err(|e| self.err(e.into()))?;
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
        drop(rows);
        drop(st);
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT unit, at_ms, online FROM transitions WHERE id > ?1 AND at_ms < ?2 ORDER BY id",
            )
            .map_err(|e| self.err(e))?;
        let mut rows = st.query(params![w, to]).map_err(|e| self.err(e))?;
        while let Some(r) = rows.next().map_err(|e| self.err(e))? {
            let unit: i64 = r.get(0).map_err(|e| self.err(e))?;
            if let Some(Target::Device(i)) = lookup(unit) {
                let at: i64 = r.get(1).map_err(|e| self.err(e))?;
                let on: bool = r.get(2).map_err(|e| self.err(e))?;
                h.devices[i].transitions.push((at, on));
            }
        }
        drop(rows);
        drop(st);
        for d in &mut h.devices {
            if !d.transitions.is_sorted_by_key(|t| t.0) {
                d.transitions.sort_by_key(|t| t.0);
            }
        }

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

        // Minute-resolution history: the minutes that overlap the window count.
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
        h.alarms = self.alarm_facts(inv, from, to)?;
        Ok(h)
    }

    /// Apply messages from the core until the channel closes (run on its own thread).
    /// Folds the transition tail into the timeline every `COMPACT_EVERY` transitions.
    pub fn serve(mut self, mut rx: tokio::sync::mpsc::Receiver<JournalMsg>) {
        let mut since_compaction = 0usize;
        // Whether every write since the last receipts went to disk.
        let mut clean = true;
        let warn = crate::telemetry::RateLimitedLog::new(10_000);
        let now = crate::telemetry::now_ms;
        while let Some(msg) = rx.blocking_recv() {
            if let JournalMsg::Receipts(rs) = msg {
                if clean {
                    rs.into_iter().for_each(crate::core::Receipt::done);
                }
                clean = true;
                continue;
            }
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
        if let Err(e) = self.compact() {
            tracing::error!(error = %e, "cannot compact the transition timeline");
        }
    }

    fn write(&mut self, msg: &JournalMsg) -> Result<(), StateError> {
        match msg {
            JournalMsg::Transitions(rows) => self.append(rows),
            JournalMsg::LastSeen(rows) => self.save_last_seen(rows),
            JournalMsg::Links(rows) => self.append_links(rows),
            JournalMsg::Latency(rows) => self.add_latency(rows),
            JournalMsg::Polls(rows) => self.add_polls(rows),
            JournalMsg::Alarms(rows) => self.save_alarms(rows),
            JournalMsg::Receipts(_) => Ok(()),
        }
    }

    fn release_reserve(&self) -> bool {
        self.reserve.as_ref().is_some_and(|r| r.release())
    }

    /// After a failed write: end its transaction, and forget unit keys it may have handed
    /// out, since their rows were rolled back with it.
    fn recover(&mut self) {
        let _ = self.conn.execute_batch("ROLLBACK");
        if self.load_keys().is_err() {
            self.keys.clear();
        }
    }
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
        let mut j = Journal::open(dir.path()).unwrap();
        let snap = j.load_latest().unwrap();
        assert_eq!(snap.len(), 2);
        assert_eq!(snap[0].last_transition, Some((false, 20)));
        assert_eq!(snap[1].last_transition, Some((true, 15)));
        assert_eq!(
            snap[1].last_seen_ms,
            Some(30),
            "last_seen never goes backwards"
        );
        assert_eq!(j.transitions_of("s", "a", 0, 100).unwrap().len(), 2);
        assert_eq!(j.transitions_of("s", "a", 11, 100).unwrap().len(), 1);
    }

    #[test]
    fn compaction_keeps_history_identical() {
        use crate::config::load_str;
        let t = "[[sites]]\nid = \"s\"\nname = \"S\"\nkind = \"park\"\n\n[[devices]]\nid = \"a\"\nsite = \"s\"\nkind = \"temperature\"\nprotocol = \"mqtt\"\ninterval_s = 1\n";
        let l = load_str(Path::new("t.toml"), t, Path::new(".")).unwrap();
        let inv = Inventory::from_config(&l.config);
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
        use crate::config::load_str;
        let inv_of = |status: &str, with_b: bool| {
            let mut t = format!(
                "[[sites]]\nid = \"s\"\nname = \"S\"\nkind = \"park\"\n\n[[devices]]\nid = \"a\"\nsite = \"s\"\nkind = \"temperature\"\nprotocol = \"mqtt\"\ninterval_s = 1\nstatus = \"{status}\"\n"
            );
            if with_b {
                t.push_str("[[devices]]\nid = \"b\"\nsite = \"s\"\nkind = \"temperature\"\nprotocol = \"mqtt\"\ninterval_s = 1\n");
            }
            let l = load_str(Path::new("t.toml"), &t, Path::new(".")).unwrap();
            Inventory::from_config(&l.config)
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
}
