//! A mine's virtual folder: libunftp's storage backend, with no file system behind it.
//!
//! Every mine sees a root of its own (`/`). Folders (`MKD`, `CWD`) exist only in the
//! session that made them; files are not kept: a `STOR` is read into memory (at most
//! `max_file_bytes`) and handed to the [`Taker`](crate::sources::mine_files::Taker), and
//! its name is then listed (`LIST`, `SIZE`) among the mine's recent uploads, a bounded list.
//! A file under a temporary name (`.tmp`, `.part`, ...) is held in the session instead,
//! until `RNTO` gives it its real name: that rename is when it is taken.

use super::auth::Mine;
use super::Shared;
use crate::sources::mine_files::{TakeError, Taken, Upload, Via};
use async_trait::async_trait;
use std::collections::{BTreeSet, VecDeque};
use std::fmt::Debug;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncRead, AsyncReadExt};
use unftp_core::storage::{Error, ErrorKind, Fileinfo, Metadata, Result, StorageBackend};

/// The recent uploads listed per mine.
pub const RECENT_PER_MINE: usize = 64;
/// Files under a temporary name one session may hold at once (each within `max_file_bytes`).
pub const HELD_PER_SESSION: usize = 2;
/// Name endings of a temporary upload, renamed when whole (case-insensitive).
pub const TEMPORARY_ENDINGS: &[&str] = &[".tmp", ".temp", ".part", ".partial", ".filepart"];
/// An upload over `max_file_bytes` is read on and dropped up to this many times the bound,
/// for its sender to hear the 552; a larger one has its data connection closed.
pub const DRAIN_FACTOR: u64 = 4;
/// A name longer than this (bytes) is refused.
const MAX_NAME_BYTES: usize = 255;

/// A path inside the mine's root, as its components (`[]` is the root).
type VPath = Vec<String>;

/// An upload the mine made, as listed.
#[derive(Debug, Clone)]
pub struct Recent {
    path: VPath,
    len: u64,
    at_ms: i64,
}

/// The recent uploads of one mine, newest last.
pub type RecentList = VecDeque<Recent>;

#[derive(Debug)]
struct Held {
    path: VPath,
    bytes: Vec<u8>,
    at_ms: i64,
}

#[derive(Debug, Default)]
struct SessionTree {
    /// Folders made or entered in this session (each with its parents).
    dirs: BTreeSet<VPath>,
    held: Vec<Held>,
    /// Why the last upload was refused, for `SITE WHY`.
    last_refusal: Option<String>,
}

/// One session's view: made per session by libunftp, shared state in [`Shared`].
#[derive(Debug)]
pub struct Folder {
    shared: Arc<Shared>,
    tree: Mutex<SessionTree>,
}

/// What a listed name is.
#[derive(Debug, Clone)]
pub struct Entry {
    dir: bool,
    len: u64,
    modified: SystemTime,
}

impl Metadata for Entry {
    fn len(&self) -> u64 {
        self.len
    }
    fn is_dir(&self) -> bool {
        self.dir
    }
    fn is_file(&self) -> bool {
        !self.dir
    }
    fn is_symlink(&self) -> bool {
        false
    }
    fn modified(&self) -> Result<SystemTime> {
        Ok(self.modified)
    }
    fn gid(&self) -> u32 {
        0
    }
    fn uid(&self) -> u32 {
        0
    }
    fn permissions(&self) -> unftp_core::storage::Permissions {
        unftp_core::storage::Permissions(if self.dir { 0o755 } else { 0o644 })
    }
}

/// Why a path was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadPath {
    /// `..` past the mine's root.
    AboveRoot,
    /// Empty, too long, `.`-only, not UTF-8, or with a control character or `\`.
    BadName,
    /// Another mine's code as a folder.
    OtherMine,
}

impl BadPath {
    fn why(self) -> &'static str {
        match self {
            BadPath::AboveRoot => "the path leaves the mine's folder (..)",
            BadPath::BadName => {
                "the name is empty, too long, or has a control character or a separator"
            }
            BadPath::OtherMine => "the path names another mine's folder",
        }
    }
}

/// Whether one name (a path component) may be used.
pub fn name_ok(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_BYTES
        && !name.chars().all(|c| c == '.')
        && !name
            .chars()
            .any(|c| c.is_control() || c == '\\' || c == '/')
}

/// `path` (the session's folder joined with what the client sent) inside the mine's root:
/// `.` dropped, `..` resolved without ever going above the root, every name checked.
pub fn resolve(path: &Path, own: &str, shared: &Shared) -> std::result::Result<VPath, BadPath> {
    let mut parts: VPath = Vec::new();
    for c in path.components() {
        match c {
            Component::RootDir | Component::Prefix(_) => parts.clear(),
            Component::CurDir => {}
            Component::ParentDir => {
                if parts.pop().is_none() {
                    return Err(BadPath::AboveRoot);
                }
            }
            Component::Normal(s) => {
                let s = s.to_str().ok_or(BadPath::BadName)?;
                if !name_ok(s) {
                    return Err(BadPath::BadName);
                }
                parts.push(s.to_string());
            }
        }
    }
    if parts.iter().any(|p| p != own && shared.mines.contains(p)) {
        return Err(BadPath::OtherMine);
    }
    Ok(parts)
}

/// Whether a file by this name is a temporary one, to be renamed when whole.
pub fn is_temporary(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    TEMPORARY_ENDINGS.iter().any(|e| lower.ends_with(e))
}

fn at(ms: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64)
}

fn error(kind: ErrorKind, why: impl Into<String>) -> Error {
    Error::new(kind, why.into())
}

impl Folder {
    pub fn new(shared: Arc<Shared>) -> Folder {
        Folder {
            shared,
            tree: Mutex::new(SessionTree::default()),
        }
    }

    fn tree(&self) -> std::sync::MutexGuard<'_, SessionTree> {
        self.tree.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Why this session's last upload was refused.
    pub fn last_refusal(&self) -> Option<String> {
        self.tree().last_refusal.clone()
    }

    fn refuse(&self, user: &Mine, name: &str, outcome: &'static str, why: String) {
        self.shared.metrics.upload(outcome);
        if let Some(suppressed) = self.shared.warn.allow(outcome, self.shared.clock.now_ms()) {
            tracing::warn!(
                mine = %user.code,
                file = name,
                outcome,
                suppressed,
                "mine files FTP: an upload was not taken: {why}"
            );
        }
        self.tree().last_refusal = Some(format!("{name}: {why}"));
    }

    fn resolve_or_refuse(&self, user: &Mine, path: &Path, for_file: bool) -> Result<VPath> {
        match resolve(path, &user.code, &self.shared) {
            Ok(p) if for_file && p.is_empty() => {
                self.refuse(user, "/", "bad_name", "a file needs a name".into());
                Err(error(ErrorKind::FileNameNotAllowedError, "no name"))
            }
            Ok(p) => Ok(p),
            Err(bad) => {
                let shown = path.to_string_lossy().escape_debug().to_string();
                if for_file {
                    self.refuse(user, &shown, "bad_name", bad.why().into());
                }
                Err(error(
                    match bad {
                        BadPath::OtherMine => ErrorKind::PermissionDenied,
                        _ if for_file => ErrorKind::FileNameNotAllowedError,
                        _ => ErrorKind::PermanentDirectoryNotAvailable,
                    },
                    bad.why(),
                ))
            }
        }
    }

    fn is_dir(&self, user: &Mine, p: &VPath) -> bool {
        if p.is_empty() || self.tree().dirs.contains(p) {
            return true;
        }
        let below = |q: &VPath| q.len() > p.len() && q.starts_with(p);
        self.tree().held.iter().any(|h| below(&h.path))
            || self.with_recent(user, |r| r.iter().any(|e| below(&e.path)))
    }

    fn with_recent<T>(&self, user: &Mine, f: impl FnOnce(&mut RecentList) -> T) -> T {
        let mut all = self.shared.recent.lock().unwrap_or_else(|p| p.into_inner());
        f(all.entry(user.code.clone()).or_default())
    }

    fn remember(&self, user: &Mine, path: VPath, len: u64) {
        let at_ms = self.shared.clock.now_ms();
        self.with_recent(user, |r| {
            r.retain(|e| e.path != path);
            if r.len() >= RECENT_PER_MINE {
                r.pop_front();
            }
            r.push_back(Recent { path, len, at_ms });
        });
    }

    fn file(&self, user: &Mine, p: &VPath) -> Option<Entry> {
        if let Some(h) = self.tree().held.iter().find(|h| &h.path == p) {
            return Some(Entry {
                dir: false,
                len: h.bytes.len() as u64,
                modified: at(h.at_ms),
            });
        }
        self.with_recent(user, |r| {
            r.iter().rev().find(|e| &e.path == p).map(|e| Entry {
                dir: false,
                len: e.len,
                modified: at(e.at_ms),
            })
        })
    }

    /// Read the upload whole, within `max_file_bytes`. Past the bound the rest is read and
    /// dropped, up to [`DRAIN_FACTOR`] times the bound, so that the client hears the 552
    /// rather than a broken connection; nothing past the bound is kept.
    async fn read_bounded<R: AsyncRead + Unpin>(&self, input: &mut R) -> Result<Option<Vec<u8>>> {
        let max = self.shared.max_file_bytes;
        let mut bytes = Vec::with_capacity(max.min(64 * 1024));
        (&mut *input)
            .take(max as u64 + 1)
            .read_to_end(&mut bytes)
            .await
            .map_err(Error::from)?;
        if bytes.len() <= max {
            return Ok(Some(bytes));
        }
        drop(bytes);
        let drain = (max as u64).saturating_mul(DRAIN_FACTOR);
        let _ = tokio::io::copy(&mut input.take(drain), &mut tokio::io::sink()).await;
        Ok(None)
    }

    /// Hand a whole file to the taker; the reply (226, or RNTO's 250) waits for this.
    async fn take(&self, user: &Mine, path: VPath, bytes: Vec<u8>) -> Result<u64> {
        let name = path.last().cloned().unwrap_or_default();
        let len = bytes.len() as u64;
        let upload = Upload {
            login: Some(user.code.clone()),
            name: name.clone(),
            bytes,
            received_ms: self.shared.clock.now_ms(),
            via: Via::Ftp,
        };
        match self.shared.taker.take(upload).await {
            Ok(taken) => {
                let outcome = match taken {
                    Taken::Applied { .. } => "applied",
                    Taken::Duplicate => "duplicate",
                };
                self.shared.metrics.upload(outcome);
                tracing::debug!(mine = %user.code, file = %name, outcome, "mine files FTP: taken");
                self.remember(user, path, len);
                Ok(len)
            }
            Err(e @ TakeError::Retry(_)) => {
                self.refuse(user, &name, "retry", e.to_string());
                Err(error(ErrorKind::LocalError, e.to_string()))
            }
            Err(e) => {
                self.refuse(user, &name, "refused", e.to_string());
                Err(error(ErrorKind::PageTypeUnknown, e.to_string()))
            }
        }
    }
}

#[async_trait]
impl StorageBackend<Mine> for Folder {
    type Metadata = Entry;

    fn name(&self) -> &str {
        "safegate mine folder"
    }

    async fn metadata<P: AsRef<Path> + Send + Debug>(&self, user: &Mine, path: P) -> Result<Entry> {
        let p = self.resolve_or_refuse(user, path.as_ref(), false)?;
        if let Some(f) = self.file(user, &p) {
            return Ok(f);
        }
        if self.is_dir(user, &p) {
            return Ok(Entry {
                dir: true,
                len: 0,
                modified: at(self.shared.clock.now_ms()),
            });
        }
        Err(error(ErrorKind::PermanentFileNotAvailable, "no such file"))
    }

    async fn list<P: AsRef<Path> + Send + Debug>(
        &self,
        user: &Mine,
        path: P,
    ) -> Result<Vec<Fileinfo<PathBuf, Entry>>> {
        let p = self.resolve_or_refuse(user, path.as_ref(), false)?;
        if let Some(f) = self.file(user, &p) {
            return Ok(vec![Fileinfo {
                path: PathBuf::from(p.last().cloned().unwrap_or_default()),
                metadata: f,
            }]);
        }
        let now = at(self.shared.clock.now_ms());
        let mut dirs = BTreeSet::new();
        let mut files: Vec<(String, Entry)> = Vec::new();
        let mut visit = |q: &VPath, file: Option<Entry>| {
            if q.len() > p.len() && q.starts_with(&p) {
                let child = q[p.len()].clone();
                match file {
                    Some(f) if q.len() == p.len() + 1 => {
                        files.retain(|(n, _)| n != &child);
                        files.push((child, f));
                    }
                    _ => {
                        dirs.insert(child);
                    }
                }
            }
        };
        {
            let tree = self.tree();
            for d in &tree.dirs {
                visit(d, None);
            }
            self.with_recent(user, |r| {
                for e in r.iter() {
                    let f = Entry {
                        dir: false,
                        len: e.len,
                        modified: at(e.at_ms),
                    };
                    visit(&e.path, Some(f));
                }
            });
            for h in &tree.held {
                let f = Entry {
                    dir: false,
                    len: h.bytes.len() as u64,
                    modified: at(h.at_ms),
                };
                visit(&h.path, Some(f));
            }
        }
        let mut out: Vec<Fileinfo<PathBuf, Entry>> = dirs
            .into_iter()
            .map(|d| Fileinfo {
                path: PathBuf::from(d),
                metadata: Entry {
                    dir: true,
                    len: 0,
                    modified: now,
                },
            })
            .collect();
        out.extend(files.into_iter().map(|(n, f)| Fileinfo {
            path: PathBuf::from(n),
            metadata: f,
        }));
        Ok(out)
    }

    async fn get<P: AsRef<Path> + Send + Debug>(
        &self,
        _user: &Mine,
        _path: P,
        _start_pos: u64,
    ) -> Result<Box<dyn AsyncRead + Send + Sync + Unpin>> {
        Err(error(
            ErrorKind::PermissionDenied,
            "files are taken, not kept: there is nothing to download",
        ))
    }

    async fn put<P: AsRef<Path> + Send + Debug, R: AsyncRead + Send + Sync + Unpin + 'static>(
        &self,
        user: &Mine,
        mut input: R,
        path: P,
        start_pos: u64,
    ) -> Result<u64> {
        let p = self.resolve_or_refuse(user, path.as_ref(), true)?;
        let name = p.last().cloned().unwrap_or_default();
        if start_pos != 0 {
            self.refuse(
                user,
                &name,
                "refused",
                "resumed and appended uploads are not taken: send the whole file".into(),
            );
            return Err(error(ErrorKind::CommandNotImplemented, "no resume"));
        }
        if is_temporary(&name) {
            let tree = self.tree();
            let others = tree.held.iter().filter(|h| h.path != p).count();
            if others >= HELD_PER_SESSION {
                drop(tree);
                self.refuse(
                    user,
                    &name,
                    "too_large",
                    format!("{HELD_PER_SESSION} files under temporary names are held already: rename them first"),
                );
                return Err(error(ErrorKind::ExceededStorageAllocationError, "held"));
            }
        }
        let Some(bytes) = self.read_bounded(&mut input).await? else {
            let max = self.shared.max_file_bytes;
            self.refuse(
                user,
                &name,
                "too_large",
                format!("the file is larger than {max} bytes"),
            );
            return Err(error(
                ErrorKind::ExceededStorageAllocationError,
                "too large",
            ));
        };
        drop(input);
        if is_temporary(&name) {
            let len = bytes.len() as u64;
            let mut tree = self.tree();
            tree.held.retain(|h| h.path != p);
            tree.held.push(Held {
                path: p,
                bytes,
                at_ms: self.shared.clock.now_ms(),
            });
            return Ok(len);
        }
        self.take(user, p, bytes).await
    }

    async fn del<P: AsRef<Path> + Send + Debug>(&self, user: &Mine, path: P) -> Result<()> {
        let p = self.resolve_or_refuse(user, path.as_ref(), false)?;
        let held = {
            let mut tree = self.tree();
            let before = tree.held.len();
            tree.held.retain(|h| h.path != p);
            before != tree.held.len()
        };
        // A taken file stays taken: deleting it only takes it off the list.
        let listed = self.with_recent(user, |r| {
            let before = r.len();
            r.retain(|e| e.path != p);
            before != r.len()
        });
        if held || listed {
            Ok(())
        } else {
            Err(error(ErrorKind::PermanentFileNotAvailable, "no such file"))
        }
    }

    async fn mkd<P: AsRef<Path> + Send + Debug>(&self, user: &Mine, path: P) -> Result<()> {
        let p = self.resolve_or_refuse(user, path.as_ref(), false)?;
        if self.file(user, &p).is_some() {
            return Err(error(
                ErrorKind::PermanentFileNotAvailable,
                "a file by that name",
            ));
        }
        let mut tree = self.tree();
        for n in 1..=p.len() {
            tree.dirs.insert(p[..n].to_vec());
        }
        Ok(())
    }

    async fn rename<P: AsRef<Path> + Send + Debug>(
        &self,
        user: &Mine,
        from: P,
        to: P,
    ) -> Result<()> {
        let from = self.resolve_or_refuse(user, from.as_ref(), false)?;
        let to = self.resolve_or_refuse(user, to.as_ref(), true)?;
        let held = {
            let mut tree = self.tree();
            let i = tree.held.iter().position(|h| h.path == from);
            i.map(|i| tree.held.remove(i))
        };
        let Some(held) = held else {
            return Err(error(
                ErrorKind::PermanentFileNotAvailable,
                "only a file held under a temporary name can be renamed",
            ));
        };
        let name = to.last().cloned().unwrap_or_default();
        if is_temporary(&name) {
            let mut tree = self.tree();
            tree.held.retain(|h| h.path != to);
            tree.held.push(Held { path: to, ..held });
            return Ok(());
        }
        // Kept until the taker answers: after a 451 the same RNFR/RNTO can be sent again.
        let bytes = held.bytes.clone();
        match self.take(user, to, bytes).await {
            Ok(_) => Ok(()),
            Err(e) => {
                if e.kind() == ErrorKind::LocalError {
                    let mut tree = self.tree();
                    tree.held.retain(|h| h.path != held.path);
                    tree.held.push(held);
                }
                Err(e)
            }
        }
    }

    async fn rmd<P: AsRef<Path> + Send + Debug>(&self, user: &Mine, path: P) -> Result<()> {
        let p = self.resolve_or_refuse(user, path.as_ref(), false)?;
        if p.is_empty() {
            return Err(error(ErrorKind::PermissionDenied, "the root stays"));
        }
        let mut tree = self.tree();
        if tree.held.iter().any(|h| h.path.starts_with(&p)) {
            return Err(error(ErrorKind::PermanentDirectoryNotEmpty, "holds files"));
        }
        tree.dirs.retain(|d| !d.starts_with(&p));
        Ok(())
    }

    async fn cwd<P: AsRef<Path> + Send + Debug>(&self, user: &Mine, path: P) -> Result<()> {
        let p = self.resolve_or_refuse(user, path.as_ref(), false)?;
        if self.file(user, &p).is_some() {
            return Err(error(ErrorKind::PermanentDirectoryNotAvailable, "a file"));
        }
        // Any folder may be entered: uploaders `cd` into the dated folder they expect.
        let mut tree = self.tree();
        for n in 1..=p.len() {
            tree.dirs.insert(p[..n].to_vec());
        }
        Ok(())
    }
}
