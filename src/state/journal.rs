//! Every online/offline transition, persisted in SQLite (WAL) so indicators can be computed
//! over any window, and restored after a restart. Rows are keyed by (site, device) ids, not
//! by in-memory indices, so an edited inventory still lines up.

use rusqlite::{params, Connection, OptionalExtension};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot create the state directory {0}: {1}")]
    Dir(PathBuf, std::io::Error),
    #[error("state database {0}: {1}")]
    Db(PathBuf, rusqlite::Error),
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

pub enum JournalMsg {
    Transitions(Vec<TransitionRow>),
    /// (site, device, last_seen_ms, fault), saved periodically.
    LastSeen(Vec<(String, String, i64, bool)>),
}

pub struct Journal {
    path: PathBuf,
    conn: Connection,
}

impl Journal {
    pub fn open(data_dir: &Path) -> Result<Journal, StateError> {
        std::fs::create_dir_all(data_dir).map_err(|e| StateError::Dir(data_dir.into(), e))?;
        let path = data_dir.join("state.db");
        let err = |e| StateError::Db(path.clone(), e);
        let conn = Connection::open(&path).map_err(err)?;
        conn.execute_batch(
            "PRAGMA journal_mode=WAL;
             PRAGMA synchronous=NORMAL;
             CREATE TABLE IF NOT EXISTS transitions (
                 id INTEGER PRIMARY KEY,
                 site TEXT NOT NULL,
                 device TEXT NOT NULL,
                 at_ms INTEGER NOT NULL,
                 online INTEGER NOT NULL,
                 cause TEXT NOT NULL);
             CREATE INDEX IF NOT EXISTS transitions_by_device ON transitions(site, device, at_ms);
             CREATE INDEX IF NOT EXISTS transitions_by_time ON transitions(at_ms);
             CREATE TABLE IF NOT EXISTS devices (
                 site TEXT NOT NULL,
                 device TEXT NOT NULL,
                 last_seen_ms INTEGER NOT NULL,
                 fault INTEGER NOT NULL DEFAULT 0,
                 PRIMARY KEY (site, device)) WITHOUT ROWID;",
        )
        .map_err(err)?;
        Ok(Journal { path, conn })
    }

    fn err(&self, e: rusqlite::Error) -> StateError {
        StateError::Db(self.path.clone(), e)
    }

    pub fn append(&mut self, rows: &[TransitionRow]) -> Result<(), StateError> {
        let tx = self
            .conn
            .transaction()
            .map_err(|e| StateError::Db(self.path.clone(), e))?;
        {
            let mut st = tx
                .prepare_cached(
                    "INSERT INTO transitions(site, device, at_ms, online, cause) VALUES (?1, ?2, ?3, ?4, ?5)",
                )
                .map_err(|e| StateError::Db(self.path.clone(), e))?;
            for r in rows {
                st.execute(params![r.site, r.device, r.at_ms, r.online, r.cause])
                    .map_err(|e| StateError::Db(self.path.clone(), e))?;
            }
        }
        tx.commit().map_err(|e| self.err(e))
    }

    pub fn save_last_seen(
        &mut self,
        rows: &[(String, String, i64, bool)],
    ) -> Result<(), StateError> {
        let tx = self
            .conn
            .transaction()
            .map_err(|e| StateError::Db(self.path.clone(), e))?;
        {
            let mut st = tx
                .prepare_cached(
                    "INSERT INTO devices(site, device, last_seen_ms, fault) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT(site, device) DO UPDATE SET
                       last_seen_ms = max(last_seen_ms, excluded.last_seen_ms), fault = excluded.fault",
                )
                .map_err(|e| StateError::Db(self.path.clone(), e))?;
            for (s, d, t, f) in rows {
                st.execute(params![s, d, t, f])
                    .map_err(|e| StateError::Db(self.path.clone(), e))?;
            }
        }
        tx.commit().map_err(|e| self.err(e))
    }

    /// The latest known state of every device the journal has seen.
    pub fn load_latest(&self) -> Result<Vec<DeviceSnapshot>, StateError> {
        let mut out = std::collections::BTreeMap::<(String, String), DeviceSnapshot>::new();
        let mut st = self
            .conn
            .prepare(
                "SELECT t.site, t.device, t.online, t.at_ms FROM transitions t
                 JOIN (SELECT site, device, max(id) AS id FROM transitions GROUP BY site, device) m
                 ON t.id = m.id",
            )
            .map_err(|e| self.err(e))?;
        let rows = st
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, bool>(2)?,
                    r.get::<_, i64>(3)?,
                ))
            })
            .map_err(|e| self.err(e))?;
        for row in rows {
            let (site, device, online, at) = row.map_err(|e| self.err(e))?;
            out.insert(
                (site.clone(), device.clone()),
                DeviceSnapshot {
                    site,
                    device,
                    last_transition: Some((online, at)),
                    last_seen_ms: None,
                    fault: false,
                },
            );
        }
        let mut st = self
            .conn
            .prepare("SELECT site, device, last_seen_ms, fault FROM devices")
            .map_err(|e| self.err(e))?;
        let rows = st
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, bool>(3)?,
                ))
            })
            .map_err(|e| self.err(e))?;
        for row in rows {
            let (site, device, seen, fault) = row.map_err(|e| self.err(e))?;
            let e = out
                .entry((site.clone(), device.clone()))
                .or_insert(DeviceSnapshot {
                    site,
                    device,
                    last_transition: None,
                    last_seen_ms: None,
                    fault: false,
                });
            e.last_seen_ms = Some(seen);
            e.fault = fault;
        }
        Ok(out.into_values().collect())
    }

    /// Transitions of one device in [from, to), oldest first.
    pub fn transitions_of(
        &self,
        site: &str,
        device: &str,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<TransitionRow>, StateError> {
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT at_ms, online, cause FROM transitions
                 WHERE site = ?1 AND device = ?2 AND at_ms >= ?3 AND at_ms < ?4 ORDER BY id",
            )
            .map_err(|e| self.err(e))?;
        let rows = st
            .query_map(params![site, device, from_ms, to_ms], |r| {
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

    pub fn count(&self) -> Result<u64, StateError> {
        self.conn
            .query_row("SELECT count(*) FROM transitions", [], |r| {
                r.get::<_, i64>(0)
            })
            .optional()
            .map(|v| v.unwrap_or(0) as u64)
            .map_err(|e| self.err(e))
    }

    /// Apply messages from the core until the channel closes (run on its own thread).
    pub fn serve(mut self, mut rx: tokio::sync::mpsc::Receiver<JournalMsg>) {
        while let Some(msg) = rx.blocking_recv() {
            let r = match &msg {
                JournalMsg::Transitions(rows) => self.append(rows),
                JournalMsg::LastSeen(rows) => self.save_last_seen(rows),
            };
            if let Err(e) = r {
                // Keep serving: a full disk may clear; the error names the file.
                tracing::error!(error = %e, "cannot persist liveness state");
            }
        }
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
        assert_eq!(j.transitions_of("s", "a", 0, 100).unwrap().len(), 2);
        assert_eq!(j.transitions_of("s", "a", 11, 100).unwrap().len(), 1);
        assert_eq!(j.count().unwrap(), 3);
    }
}
