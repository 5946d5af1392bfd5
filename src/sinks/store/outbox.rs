//! The durable outbox: batches of line protocol committed to SQLite (WAL, `synchronous=FULL`)
//! at `data_dir/outbox.db` before anything is acknowledged upstream, replayed to the store in
//! order (`sinks::forward`), and deleted only once the store accepted them. Lines the store
//! refuses for good go to a dead-letter table with the store's message.
//!
//! Why SQLite and not a home-made log: a committed transaction survives a process kill, the
//! file format has its own integrity check, and the gateway already depends on it for its
//! state journal.

use crate::model::OnDamage;
use crate::state::files::{open_checked, DbFileError};
use crate::state::space::{self, Reserve, Watermark};
use bytes::Bytes;
use rusqlite::{params, Connection, OptionalExtension};
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    #[error("outbox {0}: {1}")]
    Db(PathBuf, rusqlite::Error),
    #[error("cannot create the outbox directory {0}: {1}")]
    Dir(PathBuf, std::io::Error),
    #[error("outbox: {0}")]
    File(#[from] DbFileError),
    #[error("outbox worker: {0}")]
    Task(String),
    #[error("batch {0} is not the oldest in the outbox; only the oldest is split")]
    NotOldest(i64),
    #[error("the outbox is over its budget ({used} of {max} bytes): back-pressure until the store drains it")]
    Full { used: u64, max: u64 },
    #[error("the disk of {dir} has {room} bytes left for the outbox, below the floor of {floor} (outbox.min_free_bytes, min_free_percent): nothing more is committed or acknowledged until the store drains the outbox or space is freed")]
    DiskLow { dir: PathBuf, room: u64, floor: u64 },
    #[error(
        "the disk of {0} is full: nothing more is committed or acknowledged until space is freed"
    )]
    DiskFull(PathBuf),
}

impl OutboxError {
    /// Back-pressure (budget or disk), as opposed to a failure.
    pub fn is_hold(&self) -> bool {
        matches!(
            self,
            OutboxError::Full { .. } | OutboxError::DiskLow { .. } | OutboxError::DiskFull(_)
        )
    }
}

/// The disk as the outbox last measured it, for health and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DiskReport {
    /// Whether the disk is watched at all (`guard_disk` was called and statvfs answered).
    pub measured: bool,
    /// Free bytes on the filesystem of `data_dir`.
    pub free: u64,
    /// Free pages inside `outbox.db`, reused before the file grows.
    pub reusable: u64,
    pub floor: u64,
    /// Below the floor (or a write met a full disk): commits wait.
    pub low: bool,
    /// Bytes of the reserve file held now.
    pub reserve_held: u64,
}

struct Disk {
    dir: PathBuf,
    watermark: Watermark,
    reserve: Arc<Reserve>,
    report: DiskReport,
}

/// One stored batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    pub id: i64,
    pub lines: Bytes,
    pub points: u32,
    pub created_ms: i64,
}

/// A line the store refused for good, with its answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    pub line: Vec<u8>,
    pub status: u16,
    pub message: String,
    pub at_ms: i64,
}

/// Backlog figures for health and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Backlog {
    pub batches: u64,
    pub points: u64,
    pub bytes: u64,
    pub oldest_ms: Option<i64>,
    pub disk: DiskReport,
}

pub struct Outbox {
    path: PathBuf,
    conn: Connection,
    max_bytes: u64,
    /// Running totals, so backlog figures cost nothing per commit.
    bytes: u64,
    points: u64,
    batches: u64,
    /// The last id given. Ids are never given twice in a process's life, even once the
    /// table is empty (SQLite's own rowid would start again at 1): the forwarder keeps ids it
    /// has written until their delete is done, and an id given again in that window was
    /// taken for the old batch's and never deleted.
    last_id: i64,
    disk: Option<Disk>,
}

const SCHEMA: &str = "
    PRAGMA journal_mode=WAL;
    CREATE TABLE IF NOT EXISTS batches (
        id INTEGER PRIMARY KEY,
        created_ms INTEGER NOT NULL,
        points INTEGER NOT NULL,
        lines BLOB NOT NULL);
    CREATE TABLE IF NOT EXISTS dead_letters (
        id INTEGER PRIMARY KEY,
        at_ms INTEGER NOT NULL,
        line BLOB NOT NULL,
        status INTEGER NOT NULL,
        message TEXT NOT NULL);";

impl Outbox {
    /// Open (or create) `dir/outbox.db`. `synchronous = FULL` makes each commit survive a
    /// power loss, not only a process kill. A damaged file is refused or moved aside, never
    /// deleted (`gateway.on_damaged_file`).
    pub fn open(
        dir: &Path,
        max_bytes: u64,
        on_damage: OnDamage,
        now_ms: i64,
    ) -> Result<Outbox, OutboxError> {
        std::fs::create_dir_all(dir).map_err(|e| OutboxError::Dir(dir.into(), e))?;
        let path = dir.join("outbox.db");
        let conn = open_checked(&path, on_damage, now_ms)?;
        let db = |e| OutboxError::Db(path.clone(), e);
        conn.execute_batch(SCHEMA).map_err(db)?;
        conn.execute_batch("PRAGMA synchronous=FULL;").map_err(db)?;
        let (bytes, points, batches, last_id): (i64, i64, i64, i64) = conn
            .query_row(
                "SELECT COALESCE(SUM(length(lines)), 0), COALESCE(SUM(points), 0), COUNT(*), COALESCE(MAX(id), 0) FROM batches",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .map_err(db)?;
        Ok(Outbox {
            path,
            conn,
            max_bytes,
            bytes: bytes.max(0) as u64,
            points: points.max(0) as u64,
            batches: batches.max(0) as u64,
            last_id,
            disk: None,
        })
    }

    /// Watch the disk of `dir` (the filesystem `outbox.db` is on): refuse commits below the
    /// watermark, release `reserve` when a delete meets a full disk, and bound the WAL.
    pub fn guard_disk(
        &mut self,
        watermark: Watermark,
        reserve: Arc<Reserve>,
        wal_max_bytes: u64,
    ) -> Result<(), OutboxError> {
        space::bound_wal(&self.conn, wal_max_bytes).map_err(|e| self.err(e))?;
        let dir = self.path.parent().unwrap_or(Path::new(".")).to_path_buf();
        self.disk = Some(Disk {
            dir,
            watermark,
            reserve,
            report: DiskReport::default(),
        });
        self.measure(0);
        Ok(())
    }

    /// Measure the disk with `incoming` bytes about to be written; true while commits must
    /// wait. Written again here: the reserve, once there is room for it.
    fn measure(&mut self, incoming: u64) -> bool {
        let Some(d) = &mut self.disk else {
            return false;
        };
        let Ok(mut u) = space::usage(&d.dir) else {
            // Not measurable now: keep the last decision rather than guess.
            return d.watermark.low();
        };
        let floor = d.watermark.floor(u.total);
        if d.reserve.held_bytes() == 0 && d.reserve.refill(u.free, floor) {
            u = space::usage(&d.dir).unwrap_or(u);
        }
        let reusable = space::reusable_bytes(&self.conn).unwrap_or(0);
        let room = (u.free + reusable).saturating_sub(incoming);
        let low = d.watermark.update(room, u.total);
        d.report = DiskReport {
            measured: true,
            free: u.free,
            reusable,
            floor,
            low,
            reserve_held: d.reserve.held_bytes(),
        };
        low
    }

    /// Measure the disk now (the committer does this while idle, so health stays current).
    pub fn refresh_disk(&mut self) -> DiskReport {
        self.measure(0);
        self.disk_report()
    }

    pub fn disk_report(&self) -> DiskReport {
        self.disk.as_ref().map(|d| d.report).unwrap_or_default()
    }

    /// Run `f`; when it meets a full disk, release the reserve and run it once more, so that
    /// deleting what the store accepted never waits for space.
    fn with_room<T>(
        &mut self,
        mut f: impl FnMut(&mut Connection) -> rusqlite::Result<T>,
    ) -> Result<T, OutboxError> {
        let r = match f(&mut self.conn) {
            Err(e)
                if space::is_disk_full(&e)
                    && self.disk.as_ref().is_some_and(|d| d.reserve.release()) =>
            {
                f(&mut self.conn)
            }
            r => r,
        };
        r.map_err(|e| self.err(e))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    fn err(&self, e: rusqlite::Error) -> OutboxError {
        OutboxError::Db(self.path.clone(), e)
    }

    /// Commit one batch; once this returns, the batch survives a kill.
    pub fn append(&mut self, lines: &[u8], points: u32, now_ms: i64) -> Result<i64, OutboxError> {
        let ids = self.append_all(&[(Bytes::copy_from_slice(lines), points)], now_ms)?;
        Ok(ids[0])
    }

    /// Commit batches in one transaction (one fsync: the group commit); once this returns,
    /// they survive a kill, in order. Refused when the budget would be exceeded (the caller
    /// stops acknowledging upstream); an empty outbox takes any one batch, so one large batch
    /// cannot wedge it (a group over the budget is refused: commit it a batch at a time).
    pub fn append_all(
        &mut self,
        rows: &[(Bytes, u32)],
        now_ms: i64,
    ) -> Result<Vec<i64>, OutboxError> {
        let size: u64 = rows.iter().map(|r| r.0.len() as u64).sum();
        // Beyond the budget only one batch, into an empty outbox (so none can wedge it).
        if (self.bytes > 0 || rows.len() > 1) && self.bytes + size > self.max_bytes {
            return Err(OutboxError::Full {
                used: self.bytes,
                max: self.max_bytes,
            });
        }
        // Unlike the budget, the disk floor holds even for an empty outbox: the disk is shared.
        if self.measure(size) {
            let r = self.disk_report();
            return Err(OutboxError::DiskLow {
                dir: self
                    .disk
                    .as_ref()
                    .map(|d| d.dir.clone())
                    .unwrap_or_default(),
                room: (r.free + r.reusable).saturating_sub(size),
                floor: r.floor,
            });
        }
        match insert_rows(&mut self.conn, rows, now_ms, self.last_id) {
            Ok(ids) => {
                self.last_id = ids.last().copied().unwrap_or(self.last_id);
                self.bytes += size;
                self.points += rows.iter().map(|r| r.1 as u64).sum::<u64>();
                self.batches += rows.len() as u64;
                Ok(ids)
            }
            // The reserve is not spent on new data: it is there so the backlog can drain.
            Err(e) if space::is_disk_full(&e) => {
                if let Some(d) = &mut self.disk {
                    d.watermark.set_low();
                    d.report.low = true;
                }
                Err(OutboxError::DiskFull(self.path.clone()))
            }
            Err(e) => Err(self.err(e)),
        }
    }

    /// The oldest batch not yet accepted by the store.
    pub fn oldest(&self) -> Result<Option<Batch>, OutboxError> {
        Ok(self.head(1, &[])?.into_iter().next())
    }

    /// The oldest batches, as many as fit in `max_points` (at least one), for one write,
    /// leaving out `skip` (batches the store has taken whose delete is still under way).
    pub fn head(&self, max_points: u64, skip: &[i64]) -> Result<Vec<Batch>, OutboxError> {
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT id, lines, points, created_ms FROM batches ORDER BY id LIMIT ?1",
            )
            .map_err(|e| self.err(e))?;
        let rows = st
            .query_map([64 + skip.len() as i64], |r| {
                Ok(Batch {
                    id: r.get(0)?,
                    lines: Bytes::from(r.get::<_, Vec<u8>>(1)?),
                    points: r.get(2)?,
                    created_ms: r.get(3)?,
                })
            })
            .map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        let mut points = 0u64;
        for b in rows {
            let b = b.map_err(|e| self.err(e))?;
            if skip.contains(&b.id) {
                continue;
            }
            if !out.is_empty() && points + b.points as u64 > max_points {
                break;
            }
            points += b.points as u64;
            out.push(b);
        }
        Ok(out)
    }

    /// The store accepted these batches: forget them, in one transaction.
    pub fn delete_all(&mut self, ids: &[i64]) -> Result<(), OutboxError> {
        let (freed, points, batches) = self.with_room(|conn| delete_rows(conn, ids))?;
        self.bytes = self.bytes.saturating_sub(freed);
        self.points = self.points.saturating_sub(points);
        self.batches = self.batches.saturating_sub(batches);
        Ok(())
    }

    pub fn dead_letter_count(&self) -> Result<u64, OutboxError> {
        self.conn
            .query_row("SELECT COUNT(*) FROM dead_letters", [], |r| {
                r.get::<_, i64>(0)
            })
            .map(|n| n.max(0) as u64)
            .map_err(|e| self.err(e))
    }

    /// The store accepted batch `id`: forget it.
    pub fn delete(&mut self, id: i64) -> Result<(), OutboxError> {
        self.delete_all(&[id])
    }

    /// Replace the oldest batch `id` by its parts (after a 413, or to isolate a refused line),
    /// in one transaction, keeping their place at the head of the order.
    pub fn split(&mut self, id: i64, parts: &[(Vec<u8>, u32)]) -> Result<(), OutboxError> {
        let older: i64 = self
            .conn
            .query_row("SELECT COUNT(*) FROM batches WHERE id < ?1", [id], |r| {
                r.get(0)
            })
            .map_err(|e| self.err(e))?;
        if older > 0 {
            return Err(OutboxError::NotOldest(id));
        }
        let (old_bytes, old_points) = self.with_room(|conn| split_rows(conn, id, parts))?;
        self.batches = (self.batches + parts.len() as u64).saturating_sub(1);
        let new_bytes: u64 = parts.iter().map(|p| p.0.len() as u64).sum();
        let new_points: u64 = parts.iter().map(|p| p.1 as u64).sum();
        self.bytes = (self.bytes + new_bytes).saturating_sub(old_bytes);
        self.points = (self.points + new_points).saturating_sub(old_points);
        Ok(())
    }

    /// Keep a line the store refused for good, with its answer.
    pub fn dead_letter(
        &mut self,
        line: &[u8],
        status: u16,
        message: &str,
        now_ms: i64,
    ) -> Result<(), OutboxError> {
        self.with_room(|conn| {
            conn.execute(
                "INSERT INTO dead_letters (at_ms, line, status, message) VALUES (?1, ?2, ?3, ?4)",
                params![now_ms, line, status, message],
            )
        })?;
        Ok(())
    }

    /// The oldest `limit` dead letters: (line, status, store's message, when).
    pub fn dead_letters(&self, limit: u32) -> Result<Vec<DeadLetter>, OutboxError> {
        let mut st = self
            .conn
            .prepare("SELECT line, status, message, at_ms FROM dead_letters ORDER BY id LIMIT ?1")
            .map_err(|e| self.err(e))?;
        let rows = st
            .query_map([limit], |r| {
                Ok(DeadLetter {
                    line: r.get(0)?,
                    status: r.get(1)?,
                    message: r.get(2)?,
                    at_ms: r.get(3)?,
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    pub fn backlog(&self) -> Result<Backlog, OutboxError> {
        let oldest_ms = self
            .conn
            .query_row(
                "SELECT created_ms FROM batches ORDER BY id LIMIT 1",
                [],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.err(e))?;
        Ok(Backlog {
            batches: self.batches,
            points: self.points,
            bytes: self.bytes,
            oldest_ms,
            disk: self.disk_report(),
        })
    }
}

/// Insert `rows` in one transaction, in order, with the ids after `last_id` (or after the
/// table's largest, should that be higher); returns their ids.
fn insert_rows(
    conn: &mut Connection,
    rows: &[(Bytes, u32)],
    now_ms: i64,
    last_id: i64,
) -> rusqlite::Result<Vec<i64>> {
    let tx = conn.transaction()?;
    let mut ids = Vec::with_capacity(rows.len());
    {
        let mut ins = tx.prepare_cached(
            "INSERT INTO batches (id, created_ms, points, lines) \
             VALUES (MAX(?1, (SELECT COALESCE(MAX(id), 0) FROM batches)) + 1, ?2, ?3, ?4)",
        )?;
        let mut last = last_id;
        for (lines, points) in rows {
            ins.execute(params![last, now_ms, points, &lines[..]])?;
            last = tx.last_insert_rowid();
            ids.push(last);
        }
    }
    tx.commit()?;
    Ok(ids)
}

/// Delete `ids` in one transaction; returns the (bytes, points, batches) freed.
///
/// Without its own fsync (`synchronous = NORMAL` for this transaction only): the next commit's
/// fsync makes the delete durable with it. A power loss before then can only bring deleted
/// batches back, which are then sent again, as after a kill between a write and its delete
/// (InfluxDB keeps one point per series and time: a point written twice is one point). A
/// process kill loses nothing either way (WAL).
fn delete_rows(conn: &mut Connection, ids: &[i64]) -> rusqlite::Result<(u64, u64, u64)> {
    conn.execute_batch("PRAGMA synchronous=NORMAL;")?;
    let r = delete_rows_now(conn, ids);
    conn.execute_batch("PRAGMA synchronous=FULL;")?;
    r
}

fn delete_rows_now(conn: &mut Connection, ids: &[i64]) -> rusqlite::Result<(u64, u64, u64)> {
    let tx = conn.transaction()?;
    let (mut freed, mut points, mut batches) = (0u64, 0u64, 0u64);
    {
        let mut size =
            tx.prepare_cached("SELECT length(lines), points FROM batches WHERE id = ?1")?;
        let mut del = tx.prepare_cached("DELETE FROM batches WHERE id = ?1")?;
        for id in ids {
            let n: Option<(i64, i64)> = size
                .query_row([id], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?;
            if let Some((b, p)) = n {
                freed += b.max(0) as u64;
                points += p.max(0) as u64;
                batches += 1;
            }
            del.execute([id])?;
        }
    }
    tx.commit()?;
    Ok((freed, points, batches))
}

/// Replace batch `id` (the oldest) by `parts` in one transaction; returns its (bytes, points).
fn split_rows(
    conn: &mut Connection,
    id: i64,
    parts: &[(Vec<u8>, u32)],
) -> rusqlite::Result<(u64, u64)> {
    let tx = conn.transaction()?;
    let (created, old_bytes, old_points): (i64, i64, i64) = tx.query_row(
        "SELECT created_ms, length(lines), points FROM batches WHERE id = ?1",
        [id],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )?;
    tx.execute("DELETE FROM batches WHERE id = ?1", [id])?;
    // Nothing is older than `id`, so the ids just below it are free: the parts go there.
    let base = id - parts.len() as i64 - 1;
    for (i, (lines, points)) in parts.iter().enumerate() {
        tx.execute(
            "INSERT INTO batches (id, created_ms, points, lines) VALUES (?1, ?2, ?3, ?4)",
            params![base + i as i64 + 1, created, points, lines],
        )?;
    }
    tx.commit()?;
    Ok((old_bytes.max(0) as u64, old_points.max(0) as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_survive_a_reopen_in_order_and_leave_once_accepted() {
        let dir = tempfile::tempdir().unwrap();
        let mut o = Outbox::open(dir.path(), 1 << 20, OnDamage::Refuse, 1).unwrap();
        let a = o.append(b"m v=1 1\n", 1, 10).unwrap();
        let b = o.append(b"m v=2 2\nm v=3 3\n", 2, 20).unwrap();
        drop(o);
        let mut o = Outbox::open(dir.path(), 1 << 20, OnDamage::Refuse, 1).unwrap();
        assert_eq!(
            o.backlog().unwrap(),
            Backlog {
                batches: 2,
                points: 3,
                bytes: 24,
                oldest_ms: Some(10),
                disk: DiskReport::default(),
            }
        );
        assert_eq!(o.oldest().unwrap().unwrap().id, a);
        o.delete(a).unwrap();
        assert_eq!(o.oldest().unwrap().unwrap().id, b);
        o.delete(b).unwrap();
        assert_eq!(o.oldest().unwrap(), None);
        assert_eq!(o.backlog().unwrap().bytes, 0);
    }

    /// Found by the soak: with SQLite's own rowids an emptied table gave id 1 again, while the
    /// forwarder still held the old id 1 for its pending delete, and the new batch was never
    /// deleted. Ids only grow, across an empty table and a reopen.
    #[test]
    fn ids_are_never_given_twice() {
        let dir = tempfile::tempdir().unwrap();
        let mut o = Outbox::open(dir.path(), 1 << 20, OnDamage::Refuse, 1).unwrap();
        let a = o.append(b"m v=1 1\n", 1, 10).unwrap();
        o.delete(a).unwrap();
        assert_eq!(o.backlog().unwrap().batches, 0);
        let row = (Bytes::from_static(b"m v=2 2\n"), 1);
        let b = o.append_all(&[row.clone(), row], 20).unwrap();
        assert!(b[0] > a && b[1] > b[0], "{a} then {b:?}");
        o.delete_all(&b).unwrap();
        drop(o);
        // After a reopen of an empty file the forwarder's memory is new too: any id will do,
        // but batches still in the file keep theirs and new ones come after them.
        let mut o = Outbox::open(dir.path(), 1 << 20, OnDamage::Refuse, 1).unwrap();
        let c = o.append(b"m v=3 3\n", 1, 30).unwrap();
        let d = o.append(b"m v=4 4\n", 1, 40).unwrap();
        assert!(d > c);
        drop(o);
        let mut o = Outbox::open(dir.path(), 1 << 20, OnDamage::Refuse, 1).unwrap();
        assert!(o.append(b"m v=5 5\n", 1, 50).unwrap() > d);
    }

    /// Found by the durability suite after group commits: an empty outbox took a whole group
    /// over its budget. It takes one batch beyond the budget, never a group.
    #[test]
    fn an_empty_outbox_takes_one_batch_over_the_budget_not_a_group() {
        let dir = tempfile::tempdir().unwrap();
        let mut o = Outbox::open(dir.path(), 20, OnDamage::Refuse, 1).unwrap();
        let big = (Bytes::from(vec![b'x'; 15]), 1);
        let group = [big.clone(), big.clone()];
        assert!(matches!(
            o.append_all(&group, 1),
            Err(OutboxError::Full { .. })
        ));
        o.append_all(&group[..1], 1).unwrap();
        assert!(matches!(
            o.append_all(&group[1..], 1),
            Err(OutboxError::Full { .. })
        ));
        let small = (Bytes::from_static(b"m 1\n"), 1);
        o.append_all(std::slice::from_ref(&small), 1).unwrap();
        assert_eq!(o.backlog().unwrap().batches, 2);
    }

    #[test]
    fn the_budget_refuses_rather_than_drops() {
        let dir = tempfile::tempdir().unwrap();
        let mut o = Outbox::open(dir.path(), 20, OnDamage::Refuse, 1).unwrap();
        o.append(&[b'x'; 15], 1, 1).unwrap();
        assert!(matches!(
            o.append(&[b'y'; 10], 1, 2),
            Err(OutboxError::Full { used: 15, max: 20 })
        ));
        assert_eq!(
            o.backlog().unwrap().batches,
            1,
            "the first batch is untouched"
        );
    }

    #[test]
    fn a_split_batch_keeps_its_place_in_the_order() {
        let dir = tempfile::tempdir().unwrap();
        let mut o = Outbox::open(dir.path(), 1 << 20, OnDamage::Refuse, 1).unwrap();
        let a = o.append(b"a1\na2\n", 2, 1).unwrap();
        o.append(b"b\n", 1, 2).unwrap();
        o.split(a, &[(b"a1\n".to_vec(), 1), (b"a2\n".to_vec(), 1)])
            .unwrap();
        let mut seen = vec![];
        while let Some(b) = o.oldest().unwrap() {
            seen.push(b.lines.clone());
            o.delete(b.id).unwrap();
        }
        assert_eq!(
            seen,
            vec![b"a1\n".to_vec(), b"a2\n".to_vec(), b"b\n".to_vec()]
        );
        // Only the head of the queue is split.
        let x = o.append(b"x\n", 1, 3).unwrap();
        let y = o.append(b"y\n", 1, 4).unwrap();
        assert!(matches!(
            o.split(y, &[(b"y\n".to_vec(), 1)]),
            Err(OutboxError::NotOldest(id)) if id == y
        ));
        assert_eq!(o.oldest().unwrap().unwrap().id, x);
    }

    #[test]
    fn a_damaged_outbox_is_refused_with_its_path_never_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let junk = b"this is not a database at all, not even close......".repeat(100);
        std::fs::write(dir.path().join("outbox.db"), &junk).unwrap();
        let e = Outbox::open(dir.path(), 1 << 20, OnDamage::Refuse, 7)
            .err()
            .unwrap();
        assert!(e.to_string().contains("outbox.db is damaged"), "{e}");
        assert_eq!(std::fs::read(dir.path().join("outbox.db")).unwrap(), junk);
        let mut o = Outbox::open(dir.path(), 1 << 20, OnDamage::MoveAside, 7).unwrap();
        assert_eq!(
            std::fs::read(dir.path().join("outbox.db.damaged-7")).unwrap(),
            junk
        );
        o.append(b"m v=1 1\n", 1, 8).unwrap();
    }

    #[test]
    fn head_takes_whole_batches_up_to_the_point_limit_and_an_empty_outbox_takes_any_batch() {
        let dir = tempfile::tempdir().unwrap();
        let mut o = Outbox::open(dir.path(), 4096, OnDamage::Refuse, 1).unwrap();
        let big = o.append(&[b'x'; 5000], 10, 1).unwrap();
        assert!(matches!(
            o.append(b"y\n", 1, 2),
            Err(OutboxError::Full { .. })
        ));
        o.delete_all(&[big]).unwrap();
        let a = o.append(b"a\n", 3, 3).unwrap();
        let b = o.append(b"b\n", 3, 4).unwrap();
        o.append(b"c\n", 3, 5).unwrap();
        let ids = |v: Vec<Batch>| v.into_iter().map(|b| b.id).collect::<Vec<_>>();
        assert_eq!(ids(o.head(6, &[]).unwrap()), vec![a, b]);
        assert_eq!(ids(o.head(1, &[]).unwrap()), vec![a], "at least one");
        o.delete_all(&[a, b]).unwrap();
        assert_eq!(o.backlog().unwrap().bytes, 2);
    }

    #[test]
    fn below_the_disk_floor_nothing_is_committed_not_even_to_an_empty_outbox() {
        let dir = tempfile::tempdir().unwrap();
        let mut o = Outbox::open(dir.path(), 1 << 20, OnDamage::Refuse, 1).unwrap();
        let reserve = Arc::new(Reserve::open(dir.path(), 0));
        // A floor of the whole filesystem can never be met.
        o.guard_disk(Watermark::new(u64::MAX, 100.0), reserve.clone(), 1 << 20)
            .unwrap();
        let e = o.append(b"m v=1 1\n", 1, 1).unwrap_err();
        assert!(matches!(e, OutboxError::DiskLow { .. }), "{e}");
        assert!(e.is_hold());
        assert!(e.to_string().contains("outbox.min_free_bytes"), "{e}");
        let b = o.backlog().unwrap();
        assert_eq!(b.batches, 0);
        assert!(b.disk.measured && b.disk.low && b.disk.floor > 0, "{b:?}");
        // With no floor it commits, and the report says how much is free.
        o.guard_disk(Watermark::new(0, 0.0), reserve, 1 << 20)
            .unwrap();
        o.append(b"m v=1 1\n", 1, 1).unwrap();
        let d = o.refresh_disk();
        assert!(d.measured && !d.low && d.free > 0, "{d:?}");
    }

    #[test]
    fn the_wal_stays_within_its_bound_across_a_long_drain() {
        const WAL_MAX: u64 = 256 << 10;
        const BATCH: usize = 42_000; // 500 points of line protocol
        let dir = tempfile::tempdir().unwrap();
        let mut o = Outbox::open(dir.path(), 1 << 30, OnDamage::Refuse, 1).unwrap();
        let reserve = Arc::new(Reserve::open(dir.path(), 0));
        o.guard_disk(Watermark::new(0, 0.0), reserve, WAL_MAX)
            .unwrap();
        let wal = dir.path().join("outbox.db-wal");
        let mut max = 0;
        // A backlog of 200 batches, then a drain that keeps committing as it deletes.
        for i in 0..200 {
            o.append(&vec![b'x'; BATCH], 500, i).unwrap();
            max = max.max(std::fs::metadata(&wal).map_or(0, |m| m.len()));
        }
        for i in 0..400 {
            let ids: Vec<i64> = o.head(5_000, &[]).unwrap().iter().map(|b| b.id).collect();
            o.delete_all(&ids).unwrap();
            max = max.max(std::fs::metadata(&wal).map_or(0, |m| m.len()));
            if i % 2 == 0 {
                o.append(&vec![b'y'; BATCH], 500, i).unwrap();
            }
            max = max.max(std::fs::metadata(&wal).map_or(0, |m| m.len()));
        }
        assert_eq!(o.backlog().unwrap().batches, 0);
        assert!(max <= WAL_MAX + 2 * BATCH as u64, "WAL reached {max} bytes");
    }

    #[test]
    fn refused_lines_are_kept_with_the_store_answer() {
        let dir = tempfile::tempdir().unwrap();
        let mut o = Outbox::open(dir.path(), 1 << 20, OnDamage::Refuse, 1).unwrap();
        o.dead_letter(b"bad line", 400, "unable to parse 'bad line'", 5)
            .unwrap();
        assert_eq!(
            o.dead_letters(10).unwrap(),
            vec![DeadLetter {
                line: b"bad line".to_vec(),
                status: 400,
                message: "unable to parse 'bad line'".to_string(),
                at_ms: 5
            }]
        );
    }
}
