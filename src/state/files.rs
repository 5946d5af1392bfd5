//! Opening the gateway's SQLite files (`state.db`, `outbox.db`) with an integrity check, so a
//! damaged file is reported at start instead of being written over, and is never deleted.

use crate::model::OnDamage;
use rusqlite::{Connection, OpenFlags};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum DbFileError {
    #[error(
        "{path} is damaged ({what}); nothing was deleted. Keep a copy, then move it aside and restart, or set gateway.on_damaged_file = \"move_aside\""
    )]
    Damaged { path: PathBuf, what: String },
    #[error("cannot move the damaged file {0} aside: {1}")]
    MoveAside(PathBuf, std::io::Error),
}

/// Open (creating) `path` and check it. A damaged file is refused, or with `MoveAside`
/// renamed to `<file>.damaged-<now_ms>` (with its `-wal`/`-shm` companions) and a new one
/// opened in its place.
pub fn open_checked(
    path: &Path,
    on_damage: OnDamage,
    now_ms: i64,
) -> Result<Connection, DbFileError> {
    match check(path) {
        Err(DbFileError::Damaged { what, .. }) if on_damage == OnDamage::MoveAside => {
            let aside = PathBuf::from(format!("{}.damaged-{now_ms}", path.display()));
            std::fs::rename(path, &aside).map_err(|e| DbFileError::MoveAside(path.into(), e))?;
            for ext in ["-wal", "-shm"] {
                let side = PathBuf::from(format!("{}{ext}", path.display()));
                if side.exists() {
                    let to = format!("{}{ext}", aside.display());
                    std::fs::rename(&side, &to)
                        .map_err(|e| DbFileError::MoveAside(side.clone(), e))?;
                }
            }
            tracing::error!(file = %path.display(), moved_to = %aside.display(), problem = %what,
                "a damaged file was moved aside (kept, not deleted); starting with a new one");
            check(path)
        }
        r => r,
    }
}

fn check(path: &Path) -> Result<Connection, DbFileError> {
    let damaged = |what: String| DbFileError::Damaged {
        path: path.to_path_buf(),
        what,
    };
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE,
    )
    .map_err(|e| damaged(e.to_string()))?;
    // quick_check reads every page of every table and index: damage anywhere shows here.
    let mut st = conn
        .prepare("PRAGMA quick_check")
        .map_err(|e| damaged(e.to_string()))?;
    let problems: Vec<String> = st
        .query_map([], |r| r.get::<_, String>(0))
        .and_then(|rows| rows.collect())
        .map_err(|e| damaged(e.to_string()))?;
    drop(st);
    if problems.len() != 1 || problems[0] != "ok" {
        let mut what = problems.into_iter().take(3).collect::<Vec<_>>().join("; ");
        what.truncate(500);
        return Err(damaged(what));
    }
    Ok(conn)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_damaged_file_is_refused_or_moved_aside_never_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.db");
        let junk = b"this is not a database at all, not even close......".repeat(100);
        std::fs::write(&path, &junk).unwrap();
        let e = open_checked(&path, OnDamage::Refuse, 7).err().unwrap();
        assert!(e.to_string().contains("x.db is damaged"), "{e}");
        assert_eq!(std::fs::read(&path).unwrap(), junk, "nothing changed");
        let conn = open_checked(&path, OnDamage::MoveAside, 7).unwrap();
        conn.execute_batch("CREATE TABLE t (x)").unwrap();
        assert_eq!(
            std::fs::read(dir.path().join("x.db.damaged-7")).unwrap(),
            junk,
            "kept as it was"
        );
    }
}
