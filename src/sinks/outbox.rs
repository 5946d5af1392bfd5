//! The durable outbox (groundwork for the durability issue, not yet wired): batches of line
//! protocol committed to SQLite (WAL) under `data_dir` before anything is acknowledged
//! upstream, replayed to the store in order, and deleted only once the store accepted them.
//! Lines the store refuses for good go to a dead-letter table with the store's message.
//!
//! Why SQLite and not a home-made log: a committed transaction survives a process kill, the
//! file format has its own integrity check, and the gateway already depends on it for its
//! state journal.

use rusqlite::{params, Connection, OpenFlags, OptionalExtension};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    #[error("outbox {0}: {1}")]
    Db(PathBuf, rusqlite::Error),
    #[error("cannot create the outbox directory {0}: {1}")]
    Dir(PathBuf, std::io::Error),
    #[error(
        "the outbox {path} is damaged ({what}); nothing was deleted. Move it aside and restart, or set outbox.on_damage = \"move_aside\""
    )]
    Damaged { path: PathBuf, what: String },
    #[error("cannot move the damaged outbox {0} aside: {1}")]
    MoveAside(PathBuf, std::io::Error),
    #[error("batch {0} is not the oldest in the outbox; only the oldest is split")]
    NotOldest(i64),
    #[error("the outbox is over its budget ({used} of {max} bytes): back-pressure until the store drains it")]
    Full { used: u64, max: u64 },
}

/// What to do with a damaged outbox at start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnDamage {
    /// Refuse to start, saying where the file is.
    #[default]
    Refuse,
    /// Rename it to `outbox.db.damaged-<ms>` (kept, never deleted) and start a new one.
    MoveAside,
}

/// One stored batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    pub id: i64,
    pub lines: Vec<u8>,
    pub points: u32,
    pub created_ms: i64,
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
    bytes: u64,
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
    /// power loss, not only a process kill.
    pub fn open(
        dir: &Path,
        max_bytes: u64,
        on_damage: OnDamage,
        now_ms: i64,
    ) -> Result<Outbox, OutboxError> {
        std::fs::create_dir_all(dir).map_err(|e| OutboxError::Dir(dir.into(), e))?;
        let path = dir.join("outbox.db");
        match Self::open_checked(&path, max_bytes) {
            Err(OutboxError::Damaged { .. }) if on_damage == OnDamage::MoveAside => {
                let aside = dir.join(format!("outbox.db.damaged-{now_ms}"));
                std::fs::rename(&path, &aside)
                    .map_err(|e| OutboxError::MoveAside(path.clone(), e))?;
                for ext in ["-wal", "-shm"] {
                    let side = PathBuf::from(format!("{}{ext}", path.display()));
                    if side.exists() {
                        let _ = std::fs::rename(&side, format!("{}{ext}", aside.display()));
                    }
                }
                tracing::error!(moved_to = %aside.display(), "the outbox was damaged; it was moved aside, kept, and a new one started");
                Self::open_checked(&path, max_bytes)
            }
            r => r,
        }
    }

    fn open_checked(path: &Path, max_bytes: u64) -> Result<Outbox, OutboxError> {
        let damaged = |what: String| OutboxError::Damaged {
            path: path.to_path_buf(),
            what,
        };
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE,
        )
        .map_err(|e| damaged(e.to_string()))?;
        let check: String = conn
            .query_row("PRAGMA quick_check", [], |r| r.get(0))
            .map_err(|e| damaged(e.to_string()))?;
        if check != "ok" {
            return Err(damaged(check));
        }
        conn.execute_batch(SCHEMA)
            .map_err(|e| damaged(e.to_string()))?;
        conn.execute_batch("PRAGMA synchronous=FULL;")
            .map_err(|e| OutboxError::Db(path.into(), e))?;
        let bytes: i64 = conn
            .query_row(
                "SELECT COALESCE(SUM(length(lines)), 0) FROM batches",
                [],
                |r| r.get(0),
            )
            .map_err(|e| OutboxError::Db(path.into(), e))?;
        Ok(Outbox {
            path: path.to_path_buf(),
            conn,
            max_bytes,
            bytes: bytes.max(0) as u64,
        })
    }

    fn err(&self, e: rusqlite::Error) -> OutboxError {
        OutboxError::Db(self.path.clone(), e)
    }

    /// Commit one batch; once this returns, the batch survives a kill. Refused when the
    /// budget would be exceeded (the caller stops acknowledging upstream).
    pub fn append(&mut self, lines: &[u8], points: u32, now_ms: i64) -> Result<i64, OutboxError> {
        let size = lines.len() as u64;
        if self.bytes + size > self.max_bytes {
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

    /// The store accepted batch `id`: forget it.
    pub fn delete(&mut self, id: i64) -> Result<(), OutboxError> {
        let size: Option<i64> = self
            .conn
            .query_row(
                "SELECT length(lines) FROM batches WHERE id = ?1",
                [id],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.err(e))?;
        self.conn
            .execute("DELETE FROM batches WHERE id = ?1", [id])
            .map_err(|e| self.err(e))?;
        self.bytes = self.bytes.saturating_sub(size.unwrap_or(0).max(0) as u64);
        Ok(())
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
        let created: i64 = tx
            .query_row("SELECT created_ms FROM batches WHERE id = ?1", [id], |r| {
                r.get(0)
            })
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
            .map_err(|e| OutboxError::Db(self.path.clone(), e))
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

    pub fn dead_letters(&self) -> Result<Vec<(Vec<u8>, u16, String)>, OutboxError> {
        let mut st = self
            .conn
            .prepare("SELECT line, status, message FROM dead_letters ORDER BY id")
            .map_err(|e| self.err(e))?;
        let rows = st
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    pub fn backlog(&self) -> Result<Backlog, OutboxError> {
        self.conn
            .query_row(
                "SELECT COUNT(*), COALESCE(SUM(points), 0), MIN(created_ms) FROM batches",
                [],
                |r| {
                    Ok(Backlog {
                        batches: r.get::<_, i64>(0)?.max(0) as u64,
                        points: r.get::<_, i64>(1)?.max(0) as u64,
                        bytes: self.bytes,
                        oldest_ms: r.get(2)?,
                    })
                },
            )
            .map_err(|e| self.err(e))
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
    fn a_damaged_file_is_refused_or_moved_aside_never_deleted() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("outbox.db"),
            b"this is not a database at all, not even close......",
        )
        .unwrap();
        let e = Outbox::open(dir.path(), 1 << 20, OnDamage::Refuse, 7)
            .err()
            .unwrap();
        assert!(e.to_string().contains("outbox.db is damaged"), "{e}");
        assert!(dir.path().join("outbox.db").exists(), "nothing deleted");
        let mut o = Outbox::open(dir.path(), 1 << 20, OnDamage::MoveAside, 7).unwrap();
        let aside = dir.path().join("outbox.db.damaged-7");
        assert_eq!(
            std::fs::read(&aside).unwrap(),
            b"this is not a database at all, not even close......"
        );
        o.append(b"m v=1 1\n", 1, 8).unwrap();
    }

    #[test]
    fn refused_lines_are_kept_with_the_store_answer() {
        let dir = tempfile::tempdir().unwrap();
        let mut o = Outbox::open(dir.path(), 1 << 20, OnDamage::Refuse, 1).unwrap();
        o.dead_letter(b"bad line", 400, "unable to parse 'bad line'", 5)
            .unwrap();
        assert_eq!(
            o.dead_letters().unwrap(),
            vec![(
                b"bad line".to_vec(),
                400,
                "unable to parse 'bad line'".to_string()
            )]
        );
    }
}
