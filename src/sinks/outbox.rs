//! The durable outbox: batches of line protocol committed to SQLite (WAL, `synchronous=FULL`)
//! at `data_dir/outbox.db` before anything is acknowledged upstream, replayed to the store in
//! order (`sinks::forward`), and deleted only once the store accepted them. Lines the store
//! refuses for good go to a dead-letter table with the store's message.
//!
//! Why SQLite and not a home-made log: a committed transaction survives a process kill, the
//! file format has its own integrity check, and the gateway already depends on it for its
//! state journal.

use crate::config::OnDamage;
use crate::state::files::{open_checked, DbFileError};
use rusqlite::{params, Connection, OptionalExtension};
use std::path::{Path, PathBuf};

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
}

/// One stored batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    pub id: i64,
    pub lines: Vec<u8>,
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
}

pub struct Outbox {
    path: PathBuf,
    conn: Connection,
    max_bytes: u64,
    /// Running totals, so backlog figures cost nothing per commit.
    bytes: u64,
    points: u64,
    batches: u64,
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
        let (bytes, points, batches): (i64, i64, i64) = conn
            .query_row(
                "SELECT COALESCE(SUM(length(lines)), 0), COALESCE(SUM(points), 0), COUNT(*) FROM batches",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .map_err(db)?;
        Ok(Outbox {
            path,
            conn,
            max_bytes,
            bytes: bytes.max(0) as u64,
            points: points.max(0) as u64,
            batches: batches.max(0) as u64,
        })
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

    /// Commit one batch; once this returns, the batch survives a kill. Refused when the
    /// budget would be exceeded (the caller stops acknowledging upstream); an empty outbox
    /// takes any batch, so one large batch cannot wedge it.
    pub fn append(&mut self, lines: &[u8], points: u32, now_ms: i64) -> Result<i64, OutboxError> {
        let size = lines.len() as u64;
        if self.bytes > 0 && self.bytes + size > self.max_bytes {
            return Err(OutboxError::Full {
                used: self.bytes,
                max: self.max_bytes,
            });
        }
        self.conn
            .execute(
                "INSERT INTO batches (created_ms, points, lines) VALUES (?1, ?2, ?3)",
                params![now_ms, points, lines],
            )
            .map_err(|e| self.err(e))?;
        self.bytes += size;
        self.points += points as u64;
        self.batches += 1;
        Ok(self.conn.last_insert_rowid())
    }

    /// The oldest batch not yet accepted by the store.
    pub fn oldest(&self) -> Result<Option<Batch>, OutboxError> {
        self.conn
            .query_row(
                "SELECT id, lines, points, created_ms FROM batches ORDER BY id LIMIT 1",
                [],
                |r| {
                    Ok(Batch {
                        id: r.get(0)?,
                        lines: r.get(1)?,
                        points: r.get(2)?,
                        created_ms: r.get(3)?,
                    })
                },
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    /// The oldest batches, as many as fit in `max_points` (at least one), for one write.
    pub fn head(&self, max_points: u64) -> Result<Vec<Batch>, OutboxError> {
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT id, lines, points, created_ms FROM batches ORDER BY id LIMIT 64",
            )
            .map_err(|e| self.err(e))?;
        let rows = st
            .query_map([], |r| {
                Ok(Batch {
                    id: r.get(0)?,
                    lines: r.get(1)?,
                    points: r.get(2)?,
                    created_ms: r.get(3)?,
                })
            })
            .map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        let mut points = 0u64;
        for b in rows {
            let b = b.map_err(|e| self.err(e))?;
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
        let path = self.path.clone();
        let db = |e| OutboxError::Db(path.clone(), e);
        let tx = self.conn.transaction().map_err(db)?;
        let (mut freed, mut points, mut batches) = (0i64, 0i64, 0u64);
        {
            let mut size = tx
                .prepare_cached("SELECT length(lines), points FROM batches WHERE id = ?1")
                .map_err(db)?;
            let mut del = tx
                .prepare_cached("DELETE FROM batches WHERE id = ?1")
                .map_err(db)?;
            for id in ids {
                let n: Option<(i64, i64)> = size
                    .query_row([id], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()
                    .map_err(db)?;
                if let Some((b, p)) = n {
                    freed += b.max(0);
                    points += p.max(0);
                    batches += 1;
                }
                del.execute([id]).map_err(db)?;
            }
        }
        tx.commit().map_err(db)?;
        self.bytes = self.bytes.saturating_sub(freed as u64);
        self.points = self.points.saturating_sub(points as u64);
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
        let tx = self
            .conn
            .transaction()
            .map_err(|e| OutboxError::Db(self.path.clone(), e))?;
        let (created, old_bytes, old_points): (i64, i64, i64) = tx
            .query_row(
                "SELECT created_ms, length(lines), points FROM batches WHERE id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .map_err(|e| OutboxError::Db(self.path.clone(), e))?;
        tx.execute("DELETE FROM batches WHERE id = ?1", [id])
            .map_err(|e| OutboxError::Db(self.path.clone(), e))?;
        // Nothing is older than `id`, so the ids just below it are free: the parts go there.
        let base = id - parts.len() as i64 - 1;
        for (i, (lines, points)) in parts.iter().enumerate() {
            tx.execute(
                "INSERT INTO batches (id, created_ms, points, lines) VALUES (?1, ?2, ?3, ?4)",
                params![base + i as i64 + 1, created, points, lines],
            )
            .map_err(|e| OutboxError::Db(self.path.clone(), e))?;
        }
        tx.commit()
            .map_err(|e| OutboxError::Db(self.path.clone(), e))?;
        self.batches = (self.batches + parts.len() as u64).saturating_sub(1);
        let new_bytes: u64 = parts.iter().map(|p| p.0.len() as u64).sum();
        let new_points: u64 = parts.iter().map(|p| p.1 as u64).sum();
        self.bytes = (self.bytes + new_bytes).saturating_sub(old_bytes.max(0) as u64);
        self.points = (self.points + new_points).saturating_sub(old_points.max(0) as u64);
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
        self.conn
            .execute(
                "INSERT INTO dead_letters (at_ms, line, status, message) VALUES (?1, ?2, ?3, ?4)",
                params![now_ms, line, status, message],
            )
            .map_err(|e| self.err(e))?;
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
        })
    }
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
                oldest_ms: Some(10)
            }
        );
        assert_eq!(o.oldest().unwrap().unwrap().id, a);
        o.delete(a).unwrap();
        assert_eq!(o.oldest().unwrap().unwrap().id, b);
        o.delete(b).unwrap();
        assert_eq!(o.oldest().unwrap(), None);
        assert_eq!(o.backlog().unwrap().bytes, 0);
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
        assert_eq!(ids(o.head(6).unwrap()), vec![a, b]);
        assert_eq!(ids(o.head(1).unwrap()), vec![a], "at least one");
        o.delete_all(&[a, b]).unwrap();
        assert_eq!(o.backlog().unwrap().bytes, 2);
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
