//! Room on the disk of `data_dir` for the gateway's SQLite files, so that a full disk never
//! stalls acknowledged data (docs/durability.md, "When the disk fills"):
//!
//! - `Watermark`: below a free-space floor the outbox commits nothing more (MQTT
//!   acknowledgements are held, Modbus polling pauses); it resumes once 10 % more than the
//!   floor is free again, so it does not flap at the edge.
//! - `Reserve`: a file of zeros kept under `data_dir`, released when SQLite meets a full disk
//!   anyway (another process filled it), so that deleting what the store accepted and
//!   checkpointing the journal can go on; written again once space returns.
//! - `bound_wal`: the write-ahead log of each file is checkpointed at a bound and truncated
//!   back to it, so it cannot grow while its readers are idle.

use rusqlite::Connection;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The smallest margin above the floor at which commits resume.
const MIN_RESUME_MARGIN: u64 = 64 << 10;

/// Free and total bytes of the filesystem holding a directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    /// What an unprivileged writer may still use (statvfs `f_bavail`).
    pub free: u64,
    pub total: u64,
}

/// statvfs of the filesystem holding `dir`.
pub fn usage(dir: &Path) -> std::io::Result<Usage> {
    let s = rustix::fs::statvfs(dir)?;
    Ok(Usage {
        free: s.f_bavail.saturating_mul(s.f_frsize),
        total: s.f_blocks.saturating_mul(s.f_frsize),
    })
}

/// The free-space floor and its hysteresis. Pure: fed the room it is told of.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Watermark {
    min_free_bytes: u64,
    min_free_percent: f64,
    low: bool,
}

impl Watermark {
    pub fn new(min_free_bytes: u64, min_free_percent: f64) -> Watermark {
        Watermark {
            min_free_bytes,
            min_free_percent,
            low: false,
        }
    }

    /// The floor in effect on a filesystem of `total` bytes: the smaller of the two settings,
    /// so a small card is not asked to keep more than its share free.
    pub fn floor(&self, total: u64) -> u64 {
        let share = (total as f64 * self.min_free_percent / 100.0) as u64;
        self.min_free_bytes.min(share)
    }

    /// Where commits resume after the floor was crossed.
    pub fn resume_at(&self, total: u64) -> u64 {
        let floor = self.floor(total);
        floor + (floor / 10).max(MIN_RESUME_MARGIN)
    }

    /// `room`: bytes that may still be written once the next batch is in (free space plus
    /// pages the outbox can reuse). Returns true while commits must wait.
    pub fn update(&mut self, room: u64, total: u64) -> bool {
        self.low = if self.low {
            room < self.resume_at(total)
        } else {
            room < self.floor(total)
        };
        self.low
    }

    pub fn low(&self) -> bool {
        self.low
    }

    /// A write met a full disk whatever statvfs said: wait as below the floor.
    pub fn set_low(&mut self) {
        self.low = true;
    }
}

/// A file of zeros held so that deletes and checkpoints find room on a full disk.
#[derive(Debug)]
pub struct Reserve {
    path: PathBuf,
    size: u64,
    /// Whether the file holds its full size now.
    held: Mutex<bool>,
}

impl Reserve {
    /// `dir/space.reserve` of `size` bytes (0: none). Never fails: a reserve that cannot be
    /// written now starts released and is written again once there is room.
    pub fn open(dir: &Path, size: u64) -> Reserve {
        let r = Reserve {
            path: dir.join("space.reserve"),
            size,
            held: Mutex::new(false),
        };
        if size > 0 {
            if let Err(e) = r.fill() {
                tracing::warn!(file = %r.path.display(), bytes = size, error = %e,
                    "cannot write the disk reserve now; it is written once there is room");
            }
        }
        r
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// Bytes held now.
    pub fn held_bytes(&self) -> u64 {
        if *self.lock() {
            self.size
        } else {
            0
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, bool> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Write the file in full, with real blocks (a sparse file would reserve nothing).
    fn fill(&self) -> std::io::Result<()> {
        let mut held = self.lock();
        if *held || self.size == 0 {
            return Ok(());
        }
        let r = (|| {
            let mut f = std::fs::File::create(&self.path)?;
            let chunk = vec![0u8; 64 << 10];
            let mut left = self.size;
            while left > 0 {
                let n = left.min(chunk.len() as u64) as usize;
                f.write_all(&chunk[..n])?;
                left -= n as u64;
            }
            f.sync_all()
        })();
        match r {
            Ok(()) => *held = true,
            // Give back what was written: a half reserve would only take space.
            Err(_) => {
                let _ = std::fs::remove_file(&self.path);
            }
        }
        r
    }

    /// Give the reserve's space back to the filesystem; true when that freed something.
    pub fn release(&self) -> bool {
        let mut held = self.lock();
        if !*held {
            return false;
        }
        *held = false;
        match std::fs::remove_file(&self.path) {
            Ok(()) => {
                tracing::warn!(file = %self.path.display(), bytes = self.size,
                    "the disk is full: the reserve was released so the outbox can drain and the journal checkpoint");
                true
            }
            Err(e) => {
                tracing::error!(file = %self.path.display(), error = %e, "cannot release the disk reserve");
                false
            }
        }
    }

    /// Write the reserve again when it was released and `free` leaves it and `floor` room.
    /// True when it is held afterwards.
    pub fn refill(&self, free: u64, floor: u64) -> bool {
        if *self.lock() || self.size == 0 {
            return self.size > 0;
        }
        if free
            < floor
                .saturating_add(self.size)
                .saturating_add(MIN_RESUME_MARGIN)
        {
            return false;
        }
        match self.fill() {
            Ok(()) => {
                tracing::info!(file = %self.path.display(), bytes = self.size, "disk space is back: the reserve is held again");
                true
            }
            Err(_) => false,
        }
    }
}

/// SQLite's answer when a write found no room on the disk.
pub fn is_disk_full(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::DiskFull)
}

/// Bound the write-ahead log of `conn` to about `max_bytes`: an automatic checkpoint once it
/// holds that much, and truncation back to it when it is reset after a checkpoint. Between
/// two checkpoints it holds at most this plus one transaction.
pub fn bound_wal(conn: &Connection, max_bytes: u64) -> rusqlite::Result<()> {
    let page: i64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
    let pages = (max_bytes / page.max(512) as u64).max(16);
    // This pragma answers with the limit in force; the answer is not needed.
    conn.query_row(
        &format!("PRAGMA journal_size_limit = {max_bytes}"),
        [],
        |_| Ok(()),
    )?;
    conn.execute_batch(&format!("PRAGMA wal_autocheckpoint = {pages};"))
}

/// Pages of `conn`'s main file that are free for reuse, in bytes.
pub fn reusable_bytes(conn: &Connection) -> rusqlite::Result<u64> {
    // Measured before every commit: prepared once.
    let free: i64 = conn
        .prepare_cached("PRAGMA freelist_count")?
        .query_row([], |r| r.get(0))?;
    let page: i64 = conn
        .prepare_cached("PRAGMA page_size")?
        .query_row([], |r| r.get(0))?;
    Ok((free.max(0) as u64).saturating_mul(page.max(0) as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_floor_is_the_smaller_setting_and_commits_resume_with_hysteresis() {
        let mut w = Watermark::new(256 << 20, 5.0);
        // A 2 GB card keeps its 5 %; a 1 TB disk keeps 256 MiB.
        assert_eq!(w.floor(2_000_000_000), 100_000_000);
        assert_eq!(w.floor(1 << 40), 256 << 20);
        let total = 2_000_000_000;
        assert!(!w.update(100_000_000, total), "at the floor: still fine");
        assert!(w.update(99_999_999, total), "below it: hold");
        assert!(w.update(105_000_000, total), "still within the margin");
        assert!(!w.update(110_000_000, total), "10 % above it: resume");
        assert!(!w.low());
    }

    #[test]
    fn a_small_floor_still_has_a_margin() {
        let mut w = Watermark::new(100_000, 100.0);
        assert_eq!(w.resume_at(1 << 30), 100_000 + MIN_RESUME_MARGIN);
        assert!(w.update(0, 1 << 30));
        assert!(w.update(150_000, 1 << 30));
        assert!(!w.update(170_000, 1 << 30));
    }

    #[test]
    fn the_reserve_is_real_space_given_back_and_taken_again() {
        let dir = tempfile::tempdir().unwrap();
        let r = Reserve::open(dir.path(), 1 << 20);
        let path = dir.path().join("space.reserve");
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 1 << 20);
        assert_eq!(r.held_bytes(), 1 << 20);
        assert!(r.release());
        assert!(!path.exists());
        assert!(!r.release(), "released once");
        assert!(!r.refill(1 << 20, 0), "no room for it and a margin");
        assert!(r.refill(u64::MAX / 2, 1 << 20));
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 1 << 20);
        let none = Reserve::open(dir.path(), 0);
        assert!(!none.release());
        assert_eq!(none.held_bytes(), 0);
    }

    #[test]
    fn usage_reads_the_filesystem() {
        let dir = tempfile::tempdir().unwrap();
        let u = usage(dir.path()).unwrap();
        assert!(u.total > 0 && u.free <= u.total, "{u:?}");
    }

    #[test]
    fn the_wal_bound_is_set_on_the_connection() {
        let dir = tempfile::tempdir().unwrap();
        let c = Connection::open(dir.path().join("x.db")).unwrap();
        c.execute_batch("PRAGMA journal_mode=WAL;").unwrap();
        bound_wal(&c, 1 << 20).unwrap();
        let pages: i64 = c
            .query_row("PRAGMA wal_autocheckpoint", [], |r| r.get(0))
            .unwrap();
        let limit: i64 = c
            .query_row("PRAGMA journal_size_limit", [], |r| r.get(0))
            .unwrap();
        assert_eq!((pages, limit), (256, 1 << 20));
    }
}
