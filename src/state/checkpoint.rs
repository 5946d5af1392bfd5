//! Cluster mode's checkpoints (docs/scaling.md, "Checkpoints"). An instance's journal is
//! derived from the readings stream, so it is worth keeping only at a known position: its
//! writes are held in one open transaction and committed with the checkpoint that names the
//! stream sequence they come to. After a crash the journal is exactly at its last
//! checkpoint, and the instance applies the stream again from the message after it.

use super::journal::Journal;
use super::rows::{Checkpoint, Held, Resumed, StateError};
use crate::core::event::{Definition, FileSave, SEEN_KEPT};
use crate::core::Receipt;
use rusqlite::{params, OptionalExtension};

impl Journal {
    /// From now on, commit only with checkpoints (cluster mode).
    pub fn commit_at_checkpoints(&mut self) {
        self.held = Some(Held::default());
    }

    /// The last checkpoint committed, if any.
    pub fn checkpoint(&self) -> Result<Option<Resumed>, StateError> {
        self.conn
            .query_row(
                "SELECT sequence, stream_ms, stream_created_ns, state FROM cluster_checkpoint
                 WHERE id = 1",
                [],
                |r| {
                    Ok(Resumed {
                        sequence: r.get::<_, i64>(0)? as u64,
                        stream_ms: r.get(1)?,
                        stream_created_ns: r.get(2)?,
                        state: r.get(3)?,
                    })
                },
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    /// Open the transaction the next checkpoint commits.
    pub(super) fn begin_held(&mut self) {
        if self.held.is_some() && self.conn.is_autocommit() {
            if let Err(e) = self.conn.execute_batch("BEGIN") {
                self.break_held(&format!("cannot begin a transaction: {e}"));
            }
        }
    }

    pub(super) fn held_broken(&self) -> bool {
        self.held.as_ref().is_some_and(|h| h.broken)
    }

    pub(super) fn held_failed(&mut self) {
        if let Some(h) = &mut self.held {
            h.failed = true;
        }
    }

    /// Receipts wait for the commit (dropped, so not durable, once the journal is broken).
    pub(super) fn hold_receipts(&mut self, rs: Vec<Receipt>) {
        if let Some(h) = self.held.as_mut().filter(|h| !h.broken) {
            h.pending.extend(rs);
        }
    }

    /// Write `c` and commit everything since the last one; open the next transaction.
    pub(super) fn commit_checkpoint(&mut self, c: Checkpoint) {
        if self.held.as_ref().is_none_or(|h| h.broken) {
            return; // not durable: `c.done` is dropped
        }
        if self.held.as_ref().is_some_and(|h| h.failed) {
            self.break_held("a write failed since the last checkpoint");
            return;
        }
        let written = (self.save_devices(&c.devices))
            .and_then(|_| self.save_files(&c.files))
            .and_then(|_| {
                self.conn.execute(
            "INSERT OR REPLACE INTO cluster_checkpoint(id, sequence, stream_ms, stream_created_ns,
             state, written_ms) VALUES (1, ?1, ?2, ?3, ?4, ?5)",
            params![
                c.sequence as i64,
                c.stream_ms,
                c.stream_created_ns,
                c.state,
                crate::model::now_ms()
            ],
        )
            });
        let committed = written.and_then(|_| self.conn.execute_batch("COMMIT"));
        if let Err(e) = committed {
            self.break_held(&format!("cannot commit the checkpoint: {e}"));
            return;
        }
        if let Some(h) = &mut self.held {
            h.pending.drain(..).for_each(Receipt::done);
        }
        if let Some(r) = c.done {
            r.done();
        }
        self.begin_held();
    }

    /// The devices' entries that changed since the last checkpoint, in its transaction.
    fn save_devices(&self, devices: &[(String, String, Vec<u8>)]) -> rusqlite::Result<()> {
        let mut up = self.conn.prepare_cached(
            "INSERT INTO cluster_devices(site, device, entry) VALUES (?1, ?2, ?3)
             ON CONFLICT(site, device) DO UPDATE SET entry = excluded.entry",
        )?;
        for (site, device, entry) in devices {
            up.execute(params![site, device, entry])?;
        }
        Ok(())
    }

    /// Every device's entry at the last checkpoint.
    pub fn saved_devices(&self) -> Result<Vec<Vec<u8>>, StateError> {
        self.rows("SELECT entry FROM cluster_devices", [], |r| r.get(0))
    }

    /// The mines' state that changed since the last checkpoint, in its transaction.
    fn save_files(&self, files: &[FileSave]) -> rusqlite::Result<()> {
        let mut state = self.conn.prepare_cached(
            "INSERT INTO cluster_mines(mine, state) VALUES (?1, ?2)
             ON CONFLICT(mine) DO UPDATE SET state = excluded.state",
        )?;
        let mut cddy = self.conn.prepare_cached(
            "UPDATE cluster_mines SET cddy_name = ?2, cddy = ?3, cddy_ms = ?4 WHERE mine = ?1",
        )?;
        let mut seen = self
            .conn
            .prepare_cached("INSERT INTO cluster_seen(mine, name, digest) VALUES (?1, ?2, ?3)")?;
        let mut trim = self.conn.prepare_cached(
            "DELETE FROM cluster_seen WHERE mine = ?1 AND id <= (SELECT id FROM cluster_seen
             WHERE mine = ?1 ORDER BY id DESC LIMIT 1 OFFSET ?2)",
        )?;
        for f in files {
            state.execute(params![f.key, f.state])?;
            if let Some(d) = &f.definition {
                cddy.execute(params![f.key, d.name, d.bytes, d.received_ms])?;
            }
            for (name, digest) in &f.seen {
                seen.execute(params![f.key, name, &digest[..]])?;
            }
            trim.execute(params![f.key, SEEN_KEPT as i64])?;
        }
        Ok(())
    }

    /// The mines' state at the last checkpoint.
    pub fn saved_files(&self) -> Result<Vec<FileSave>, StateError> {
        let mut out: Vec<FileSave> = self.rows(
            "SELECT mine, state, cddy_name, cddy, cddy_ms FROM cluster_mines ORDER BY mine",
            [],
            |r| {
                let definition = match (r.get::<_, Option<String>>(2)?, r.get(3)?, r.get(4)?) {
                    (Some(name), Some(bytes), Some(received_ms)) => Some(Definition {
                        name,
                        bytes,
                        received_ms,
                    }),
                    _ => None,
                };
                Ok(FileSave {
                    key: r.get(0)?,
                    state: r.get(1)?,
                    definition,
                    seen: Vec::new(),
                })
            },
        )?;
        let seen = self.rows(
            "SELECT mine, name, digest FROM cluster_seen ORDER BY id",
            [],
            |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, Vec<u8>>(2)?,
                ))
            },
        )?;
        let at: std::collections::HashMap<String, usize> = (out.iter().enumerate())
            .map(|(i, f)| (f.key.clone(), i))
            .collect();
        for (mine, name, digest) in seen {
            let (Some(&i), Ok(d)) = (at.get(&mine), digest.try_into()) else {
                continue;
            };
            out[i].seen.push((name, d));
        }
        Ok(out)
    }

    /// Give up what the open transaction holds and stay at the last checkpoint.
    fn break_held(&mut self, why: &str) {
        if !self.conn.is_autocommit() {
            let _ = self.conn.execute_batch("ROLLBACK");
        }
        if let Some(h) = &mut self.held {
            h.broken = true;
            h.pending.clear();
        }
        let at = self.checkpoint().ok().flatten().map(|c| c.sequence);
        tracing::error!(path = %self.path.display(), why, checkpoint = ?at, "state.db stays at its last checkpoint: restart this instance once the cause is fixed; it resumes from that checkpoint");
    }

    /// At the end: what came after the last checkpoint is not kept (a restart applies it
    /// again from the stream).
    pub(super) fn end_held(&mut self) {
        if self.held.is_some() && !self.conn.is_autocommit() {
            let _ = self.conn.execute_batch("ROLLBACK");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{JournalMsg, TransitionRow};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    fn row(at: i64, online: bool) -> TransitionRow {
        TransitionRow {
            site: "s".into(),
            device: "a".into(),
            at_ms: at,
            online,
            cause: "reading".into(),
        }
    }

    fn checkpoint(sequence: u64, committed: &Arc<AtomicBool>) -> JournalMsg {
        let flag = committed.clone();
        JournalMsg::Checkpoint(Box::new(Checkpoint {
            sequence,
            stream_ms: sequence as i64 * 10,
            stream_created_ns: 1,
            state: vec![sequence as u8],
            devices: vec![("s".into(), format!("d{sequence}"), vec![1])],
            files: Vec::new(),
            done: Some(Receipt::new(move |ok| flag.store(ok, Ordering::SeqCst))),
        }))
    }

    fn transitions(dir: &std::path::Path) -> Vec<i64> {
        let j = Journal::open_read(dir).unwrap();
        let (_, rows) = j.timeline_of("s", "a", (0, 1_000), 100).unwrap();
        rows.iter().map(|r| r.at_ms).collect()
    }

    #[test]
    fn writes_are_kept_only_with_the_checkpoint_after_them() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = Journal::open(dir.path()).unwrap();
        j.commit_at_checkpoints();
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        let serving = std::thread::spawn(move || j.serve(rx));
        let (first, second) = (Arc::new(AtomicBool::new(false)), Arc::default());
        tx.blocking_send(JournalMsg::Transitions(vec![row(10, true)]))
            .unwrap();
        tx.blocking_send(checkpoint(5, &first)).unwrap();
        tx.blocking_send(JournalMsg::Transitions(vec![row(20, false)]))
            .unwrap();
        // The first checkpoint is committed; what follows it is not visible yet.
        while !first.load(Ordering::SeqCst) {
            std::thread::yield_now();
        }
        assert_eq!(transitions(dir.path()), vec![10]);
        tx.blocking_send(checkpoint(6, &second)).unwrap();
        tx.blocking_send(JournalMsg::Transitions(vec![row(30, true)]))
            .unwrap();
        drop(tx); // the end (or a crash): the tail after checkpoint 6 is not kept
        serving.join().unwrap();
        assert!(second.load(Ordering::SeqCst));
        assert_eq!(transitions(dir.path()), vec![10, 20]);
        let j = Journal::open(dir.path()).unwrap();
        let c = j.checkpoint().unwrap().unwrap();
        assert_eq!((c.sequence, c.stream_ms, c.state), (6, 60, vec![6]));
    }

    #[test]
    fn after_a_failed_write_no_checkpoint_is_committed_again() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = Journal::open(dir.path()).unwrap();
        j.commit_at_checkpoints();
        j.begin_held();
        j.append(&[row(10, true)]).unwrap();
        let ok = Arc::new(AtomicBool::new(false));
        let JournalMsg::Checkpoint(c) = checkpoint(1, &ok) else {
            unreachable!()
        };
        j.commit_checkpoint(*c);
        assert!(ok.load(Ordering::SeqCst));
        j.append(&[row(20, false)]).unwrap();
        j.held_failed(); // as serve does when a write fails
        let lost = Arc::new(AtomicBool::new(true));
        let JournalMsg::Checkpoint(c) = checkpoint(2, &lost) else {
            unreachable!()
        };
        j.commit_checkpoint(*c);
        assert!(!lost.load(Ordering::SeqCst), "not durable");
        assert!(j.held_broken());
        assert_eq!(j.checkpoint().unwrap().unwrap().sequence, 1);
        assert_eq!(transitions(dir.path()), vec![10]);
    }

    #[test]
    fn the_mines_state_is_kept_with_the_checkpoint_and_its_files_seen_to_a_bound() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = Journal::open(dir.path()).unwrap();
        j.commit_at_checkpoints();
        j.begin_held();
        let ok = Arc::new(AtomicBool::new(false));
        let save = |state: &[u8], cddy: Option<&str>, from: usize, n: usize| FileSave {
            key: "m1".into(),
            state: state.to_vec(),
            definition: cddy.map(|name| Definition {
                name: name.into(),
                bytes: b"cddy".to_vec(),
                received_ms: 7,
            }),
            seen: (from..from + n)
                .map(|i| (format!("f{i}"), [i as u8; 32]))
                .collect(),
        };
        for (i, files) in [
            vec![save(b"one", Some("M_CDDY_1.txt"), 0, SEEN_KEPT)],
            // A later checkpoint: new state, the same CDDY (none applied since), 10 files.
            vec![save(b"two", None, SEEN_KEPT, 10)],
        ]
        .into_iter()
        .enumerate()
        {
            let JournalMsg::Checkpoint(mut c) = checkpoint(i as u64 + 1, &ok) else {
                unreachable!()
            };
            c.files = files;
            j.commit_checkpoint(*c);
        }
        let got = Journal::open(dir.path()).unwrap().saved_files().unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].state, b"two");
        assert_eq!(got[0].definition.as_ref().unwrap().name, "M_CDDY_1.txt");
        assert_eq!(got[0].seen.len(), SEEN_KEPT, "the newest kept");
        assert_eq!(got[0].seen[0].0, "f10");
        assert_eq!(got[0].seen.last().unwrap().0, format!("f{}", SEEN_KEPT + 9));
    }
}
