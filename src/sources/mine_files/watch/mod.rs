//! The watched folder, for mines that already upload to another FTP server: the gateway takes
//! their files from `[mine_files] watch_dir` (docs/mine-files.md, "Watched folder").
//!
//! A poll, not inotify: every `watch_scan_ms` the folder is listed (recursively, skipping
//! `done/`, `quarantine/`, dot-files and temporary names); a file unchanged in size and mtime
//! for `settle_ms` is complete. Each mine's complete files are handed to the [`Taker`] one at
//! a time in the order of the stamp in their names; mines go side by side, up to
//! `watch_concurrency`. What the taker answers decides where the file goes: `done/` once it
//! is committed, `quarantine/` when refused, left in place to try again or wait for its rest.
//!
//! The decisions are in `plan` (no filesystem, time as an input), the filesystem work in
//! `fsops`; this loop only joins them.

mod fsops;
pub mod metrics;
mod plan;
#[cfg(test)]
mod tests;

pub use metrics::WatchMetrics;

use super::config::MineFilesSettings;
use super::{Taker, Upload, Via};
use crate::telemetry::{Clock, RateLimitedLog};
use fsops::Contents;
use futures::StreamExt;
use plan::{Disposition, MineWork, Outcome, Step, Tracker, Work};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::sync::broadcast;

/// How often `done/` is swept of folders past `keep_days`: daily, and once at start.
const SWEEP_EVERY_MS: i64 = 24 * 3600 * 1000;
/// At most one warning per kind of trouble in this long (the rest are counted).
const WARN_EVERY_MS: i64 = 60_000;

/// Why the watched folder cannot be used, for the operator.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error(
        "[mine_files] watch_dir {}: the folder does not exist; create it (it is where the other \
         FTP server puts the mines' files) or leave watch_dir out",
        dir.display()
    )]
    Missing { dir: PathBuf },
    #[error(
        "[mine_files] watch_dir {}: it is not a folder; give the folder the mines' files are \
         uploaded to",
        dir.display()
    )]
    NotADirectory { dir: PathBuf },
    #[error(
        "[mine_files] watch_dir {}: the gateway cannot read it ({source}); let the user it runs \
         as list and read it",
        dir.display()
    )]
    Unreadable { dir: PathBuf, source: io::Error },
    #[error(
        "[mine_files] watch_dir {}: the gateway cannot write in it ({source}); it moves taken \
         files to done/ and refused ones to quarantine/ there, so let the user it runs as write \
         in it",
        dir.display()
    )]
    NotWritable { dir: PathBuf, source: io::Error },
}

/// The watched folder, built and ready to [`run`](FolderWatch::run).
pub struct FolderWatch {
    shared: Arc<Shared>,
    tracker: Tracker,
    scan_ms: i64,
    keep_days: u32,
    concurrency: usize,
    next_sweep_ms: i64,
}

/// What the files' handling needs, shared by the mines taken side by side.
struct Shared {
    root: PathBuf,
    taker: Arc<dyn Taker>,
    metrics: Arc<WatchMetrics>,
    clock: Clock,
    max_file_bytes: u64,
    warn: RateLimitedLog,
}

impl FolderWatch {
    /// The watch of `settings.watch_dir`, or `None` when it is not set. Checks that the folder
    /// is there, is a folder, can be read and written (it makes `done/` and `quarantine/`).
    pub fn build(
        settings: &MineFilesSettings,
        taker: Arc<dyn Taker>,
        metrics: &crate::telemetry::Metrics,
        clock: Clock,
    ) -> Result<Option<FolderWatch>, WatchError> {
        let Some(root) = settings.watch_dir.clone() else {
            return Ok(None);
        };
        check_folder(&root)?;
        let scan_ms = settings.watch_scan_ms.max(1);
        Ok(Some(FolderWatch {
            tracker: Tracker::new(settings.settle_ms, scan_ms, settings.max_file_bytes as u64),
            shared: Arc::new(Shared {
                root,
                taker,
                metrics: WatchMetrics::register(metrics),
                clock,
                max_file_bytes: settings.max_file_bytes as u64,
                warn: RateLimitedLog::new(WARN_EVERY_MS),
            }),
            scan_ms: scan_ms as i64,
            keep_days: settings.keep_days,
            concurrency: settings.watch_concurrency.max(1),
            next_sweep_ms: i64::MIN,
        }))
    }

    /// The watch's metrics.
    pub fn metrics(&self) -> Arc<WatchMetrics> {
        self.shared.metrics.clone()
    }

    /// Scan, take and sweep until `shutdown`. A file being taken when it comes is dropped
    /// mid-way: left in place, it is taken again at the next start (the taker de-duplicates).
    pub async fn run(mut self, mut shutdown: broadcast::Receiver<()>) {
        tracing::info!(dir = %self.shared.root.display(), "watching the folder for mine files");
        loop {
            let started = self.shared.clock.now_ms();
            tokio::select! {
                biased;
                _ = shutdown.recv() => break,
                _ = self.tick(started) => {}
            }
            let clock = self.shared.clock.clone();
            tokio::select! {
                biased;
                _ = shutdown.recv() => break,
                _ = clock.sleep_until(started.saturating_add(self.scan_ms)) => {}
            }
        }
        tracing::info!("the folder watch stopped");
    }

    async fn tick(&mut self, now_ms: i64) {
        if now_ms >= self.next_sweep_ms {
            self.sweep_once(now_ms).await;
            self.next_sweep_ms = now_ms.saturating_add(SWEEP_EVERY_MS);
        }
        self.scan_once().await;
    }

    /// One scan: list, decide, take the ready files, remember what became of them.
    async fn scan_once(&mut self) {
        let root = self.shared.root.clone();
        let Some((listing, problems)) = blocking(move || fsops::scan(&root)).await else {
            return self
                .shared
                .problem("read_dir", "the scan stopped unexpectedly");
        };
        for p in problems {
            self.shared.problem(p.kind, &p.message);
        }
        self.shared.metrics.scans.inc();
        let plan = self.tracker.plan(listing, self.shared.clock.now_ms());
        if plan.is_empty() {
            return;
        }
        let shared = &self.shared;
        let results: Vec<Vec<(String, String, Outcome)>> = futures::stream::iter(plan)
            .map(|mine| shared.mine(mine))
            .buffer_unordered(self.concurrency)
            .collect()
            .await;
        let now = self.shared.clock.now_ms();
        for (code, rel, outcome) in results.into_iter().flatten() {
            self.tracker.record(&code, &rel, &outcome, now);
        }
    }

    /// Remove the dated folders of `done/` past `keep_days`.
    async fn sweep_once(&self, now_ms: i64) {
        let root = self.shared.root.clone();
        let (today, keep) = (plan::mine_date(now_ms), self.keep_days);
        let Some((removed, problems)) = blocking(move || fsops::sweep(&root, today, keep)).await
        else {
            return self
                .shared
                .problem("sweep", "the sweep stopped unexpectedly");
        };
        self.shared.metrics.swept.inc_by(removed);
        if removed > 0 {
            tracing::info!(removed, keep_days = keep, "removed old folders from done/");
        }
        for p in problems {
            self.shared.problem(p.kind, &p.message);
        }
    }
}

impl Shared {
    /// One mine's files in order, until one does not go through.
    async fn mine(&self, mine: MineWork) -> Vec<(String, String, Outcome)> {
        let mut out = Vec::with_capacity(mine.files.len());
        for work in mine.files {
            let outcome = self.file(&work).await;
            self.metrics.outcome(outcome.label());
            let go_on = outcome.continues();
            out.push((mine.code.clone(), work.rel, outcome));
            if !go_on {
                break;
            }
        }
        out
    }

    async fn file(&self, w: &Work) -> Outcome {
        let path = self.root.join(&w.rel);
        match &w.step {
            Step::Quarantine { reason, detail } => self.quarantine(path, w, reason, detail).await,
            Step::Take => self.take(path, w).await,
        }
    }

    async fn take(&self, path: PathBuf, w: &Work) -> Outcome {
        let (p, max, size) = (path.clone(), self.max_file_bytes, w.size);
        let bytes = match blocking(move || fsops::read_bounded(&p, max, size)).await {
            Some(Ok(Contents::Bytes(b))) => b,
            Some(Ok(Contents::TooLarge)) => {
                let detail = format!("over max_file_bytes ({max}) when read");
                return self.quarantine(path, w, "too_large", &detail).await;
            }
            Some(Ok(Contents::Changed)) => return Outcome::Changed,
            Some(Ok(Contents::Vanished)) => return Outcome::Vanished,
            Some(Err(e)) => {
                self.problem("read", &format!("{}: {e}", path.display()));
                return Outcome::Failed;
            }
            None => {
                self.problem("read", &format!("{}: the read stopped", path.display()));
                return Outcome::Failed;
            }
        };
        let upload = Upload {
            login: None,
            name: w.name.clone(),
            bytes,
            received_ms: self.clock.now_ms(),
            via: Via::Folder,
        };
        match plan::disposition(self.taker.take(upload).await) {
            Disposition::ToDone(taken) => self.to_done(path, w, taken).await,
            Disposition::ToQuarantine { reason, detail } => {
                self.quarantine(path, w, reason, &detail).await
            }
            Disposition::Retry(why) => {
                if let Some(suppressed) = self.warn.allow("retry", self.clock.now_ms()) {
                    tracing::info!(file = %w.rel, suppressed, "not taken now ({why}): left to try again");
                }
                Outcome::Retry
            }
            Disposition::Wait => Outcome::Incomplete,
        }
    }

    /// Move a committed file to `done/<mine code>/<its stamp's date>/`.
    async fn to_done(&self, path: PathBuf, w: &Work, taken: super::Taken) -> Outcome {
        let Some(parts) = &w.parts else {
            return Outcome::Failed;
        };
        let dir = self.root.join("done").join(&parts.code).join(parts.date());
        let (p, name) = (path.clone(), w.name.clone());
        match blocking(move || fsops::move_into(&p, &dir, &name)).await {
            Some(Ok(_)) => Outcome::Done(taken),
            // Committed, and someone else moved it: nothing is left to do.
            Some(Err(e)) if e.kind() == io::ErrorKind::NotFound => Outcome::Done(taken),
            Some(Err(e)) => {
                let m = format!(
                    "{}: committed but not moved to done/ ({e}); it will be taken again (a duplicate) and moved",
                    path.display()
                );
                self.problem("move", &m);
                Outcome::Failed
            }
            None => Outcome::Failed,
        }
    }

    async fn quarantine(
        &self,
        path: PathBuf,
        w: &Work,
        reason: &'static str,
        detail: &str,
    ) -> Outcome {
        let why = format!("reason: {reason}\ndetail: {detail}");
        let (root, p, name, at) = (
            self.root.clone(),
            path.clone(),
            w.name.clone(),
            self.clock.now_ms(),
        );
        match blocking(move || fsops::quarantine(&root, &p, &name, &why, at)).await {
            Some(Ok(to)) => {
                self.metrics.quarantine(reason);
                if let Some(suppressed) = self.warn.allow("quarantined", at) {
                    tracing::warn!(file = %w.rel, to = %to.display(), reason, suppressed, "quarantined: {detail}");
                }
                Outcome::Quarantined(reason)
            }
            Some(Err(e)) if e.kind() == io::ErrorKind::NotFound => Outcome::Vanished,
            Some(Err(e)) => {
                self.problem(
                    "quarantine",
                    &format!("{}: not quarantined ({e})", path.display()),
                );
                Outcome::Failed
            }
            None => Outcome::Failed,
        }
    }

    /// Count a trouble of `kind` and warn of it, at most once a minute per kind.
    fn problem(&self, kind: &'static str, message: &str) {
        self.metrics.error(kind);
        if let Some(suppressed) = self.warn.allow(kind, self.clock.now_ms()) {
            tracing::warn!(kind, suppressed, "watched folder: {message}");
        }
    }
}

/// Run blocking filesystem work off the async threads; `None` if it panicked.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    tokio::task::spawn_blocking(f).await.ok()
}

fn check_folder(dir: &Path) -> Result<(), WatchError> {
    let d = || dir.to_path_buf();
    match std::fs::metadata(dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(WatchError::Missing { dir: d() })
        }
        Err(source) => return Err(WatchError::Unreadable { dir: d(), source }),
        Ok(m) if !m.is_dir() => return Err(WatchError::NotADirectory { dir: d() }),
        Ok(_) => {}
    }
    std::fs::read_dir(dir).map_err(|source| WatchError::Unreadable { dir: d(), source })?;
    let writable = |source| WatchError::NotWritable { dir: d(), source };
    for sub in ["done", "quarantine"] {
        std::fs::create_dir_all(dir.join(sub)).map_err(writable)?;
    }
    // A dot-file, which no scan takes.
    let probe = dir.join(format!(".safegate-probe-{}", std::process::id()));
    std::fs::write(&probe, b"").map_err(writable)?;
    std::fs::remove_file(&probe).map_err(writable)
}
