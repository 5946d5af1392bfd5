//! The watched folder's filesystem work, synchronous (the watch runs it on tokio's blocking
//! threads). Nothing here panics on the filesystem: each problem is returned, to be counted
//! and logged, and the rest goes on.

use super::plan::{self, Listed};
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

/// Subfolders deeper than this under the watched folder are not scanned (a loop of bind
/// mounts, a mistake): counted as `too_deep`.
const MAX_DEPTH: usize = 8;

/// Something a scan could not read, to count (`kind`) and log.
#[derive(Debug)]
pub(crate) struct Problem {
    pub kind: &'static str,
    pub message: String,
}

fn problem(kind: &'static str, at: &Path, what: impl std::fmt::Display) -> Problem {
    Problem {
        kind,
        message: format!("{}: {what}", at.display()),
    }
}

/// The candidate files under `root` (see [`plan::is_candidate`]), and what could not be read.
pub(crate) fn scan(root: &Path) -> (Vec<Listed>, Vec<Problem>) {
    let mut files = Vec::new();
    let mut problems = Vec::new();
    walk(root, "", 0, &mut files, &mut problems);
    (files, problems)
}

fn walk(dir: &Path, rel: &str, depth: usize, out: &mut Vec<Listed>, problems: &mut Vec<Problem>) {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        // A subfolder removed while scanned: nothing to take from it.
        Err(e) if e.kind() == io::ErrorKind::NotFound && depth > 0 => return,
        Err(e) => return problems.push(problem("read_dir", dir, e)),
    };
    for entry in entries {
        let entry = match entry {
            Ok(e) => e,
            Err(e) => {
                problems.push(problem("read_dir", dir, e));
                continue;
            }
        };
        let path = entry.path();
        let Ok(name) = entry.file_name().into_string() else {
            problems.push(problem(
                "non_utf8_name",
                &path,
                "the name is not UTF-8: skipped (rename it)",
            ));
            continue;
        };
        let ty = match entry.file_type() {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => {
                problems.push(problem("metadata", &path, e));
                continue;
            }
        };
        let child = if rel.is_empty() {
            name.clone()
        } else {
            format!("{rel}/{name}")
        };
        if ty.is_dir() {
            if plan::is_skipped_dir(&name, depth == 0) {
                continue;
            }
            if depth + 1 >= MAX_DEPTH {
                problems.push(problem("too_deep", &path, "nested too deep: not scanned"));
                continue;
            }
            walk(&path, &child, depth + 1, out, problems);
            continue;
        }
        if !plan::is_candidate(&name) {
            continue;
        }
        if !ty.is_file() {
            problems.push(problem(
                "not_a_file",
                &path,
                "not a regular file (a link?): skipped",
            ));
            continue;
        }
        match entry.metadata() {
            Ok(m) => out.push(Listed {
                rel: child,
                name,
                size: m.len(),
                mtime: m.modified().ok(),
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => problems.push(problem("metadata", &path, e)),
        }
    }
}

/// What reading a ready file gave.
#[derive(Debug)]
pub(crate) enum Contents {
    Bytes(Vec<u8>),
    /// Longer than `max` when read (it grew since the scan): at most `max + 1` bytes were read.
    TooLarge,
    /// Not `expected` bytes long: it changed since the scan.
    Changed,
    Vanished,
}

/// Read `path`, never more than `max + 1` bytes.
pub(crate) fn read_bounded(path: &Path, max: u64, expected: u64) -> io::Result<Contents> {
    let file = match fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Contents::Vanished),
        Err(e) => return Err(e),
    };
    let mut bytes = Vec::with_capacity(expected.min(max) as usize);
    file.take(max.saturating_add(1)).read_to_end(&mut bytes)?;
    Ok(if bytes.len() as u64 > max {
        Contents::TooLarge
    } else if bytes.len() as u64 != expected {
        Contents::Changed
    } else {
        Contents::Bytes(bytes)
    })
}

/// Move `from` into folder `to_dir` (created) as `name`, or a free variant of it; the path
/// it now has. `NotFound` when `from` is gone.
pub(crate) fn move_into(from: &Path, to_dir: &Path, name: &str) -> io::Result<PathBuf> {
    fs::create_dir_all(to_dir)?;
    let free = plan::free_name(name, |n| to_dir.join(n).symlink_metadata().is_ok())
        .ok_or_else(|| io::Error::other("no free name left for it"))?;
    let to = to_dir.join(free);
    fs::rename(from, &to)?;
    Ok(to)
}

/// Move `from` to `quarantine/` under `root` with `<name>.reason.txt` beside it (written
/// first: a crash between leaves the reason and the file still in place, quarantined again
/// at the next scan).
pub(crate) fn quarantine(
    root: &Path,
    from: &Path,
    name: &str,
    why: &str,
    at_ms: i64,
) -> io::Result<PathBuf> {
    let dir = root.join("quarantine");
    fs::create_dir_all(&dir)?;
    let used = |n: &str| {
        dir.join(n).symlink_metadata().is_ok()
            || dir
                .join(format!("{n}.reason.txt"))
                .symlink_metadata()
                .is_ok()
    };
    let free = plan::free_name(name, used)
        .ok_or_else(|| io::Error::other("no free name left for it in quarantine/"))?;
    if from.symlink_metadata().is_err() {
        return Err(io::ErrorKind::NotFound.into());
    }
    fs::write(
        dir.join(format!("{free}.reason.txt")),
        why_text(why, from, root, at_ms),
    )?;
    let to = dir.join(&free);
    fs::rename(from, &to)?;
    Ok(to)
}

fn why_text(why: &str, from: &Path, root: &Path, at_ms: i64) -> String {
    let was = from.strip_prefix(root).unwrap_or(from);
    format!(
        "{why}\nfile: {}\nquarantined: {}\n",
        was.display(),
        crate::telemetry::rfc3339_ms(at_ms)
    )
}

/// Remove `done/<code>/<yyyy-mm-dd>/` folders past `keep_days` on `today`; how many went,
/// and what could not be removed.
pub(crate) fn sweep(root: &Path, today: time::Date, keep_days: u32) -> (u64, Vec<Problem>) {
    let done = root.join("done");
    let mut removed = 0;
    let mut problems = Vec::new();
    let codes = match fs::read_dir(&done) {
        Ok(c) => c,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return (0, problems),
        Err(e) => return (0, vec![problem("sweep", &done, e)]),
    };
    for code in codes.flatten() {
        if !code.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let dates = match fs::read_dir(code.path()) {
            Ok(d) => d,
            Err(e) => {
                problems.push(problem("sweep", &code.path(), e));
                continue;
            }
        };
        for date in dates.flatten() {
            let old = date
                .file_name()
                .to_str()
                .is_some_and(|n| plan::expired(n, today, keep_days));
            if old && date.file_type().is_ok_and(|t| t.is_dir()) {
                match fs::remove_dir_all(date.path()) {
                    Ok(()) => removed += 1,
                    Err(e) => problems.push(problem("sweep", &date.path(), e)),
                }
            }
        }
        // A mine with nothing left: its folder goes too (fails harmlessly when not empty).
        let _ = fs::remove_dir(code.path());
    }
    (removed, problems)
}
