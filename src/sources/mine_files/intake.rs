//! The [`Taker`] both transports hand files to: it finds the mine, refuses what is not its
//! file, applies one file of a mine at a time, and answers once the file's effects are
//! committed (the same guarantee as a QoS 1 PUBACK after commit).

use super::apply::{apply, MineSite, MineState};
use super::format::{self, FileError, ParsedFile};
use super::metrics::MineMetrics;
use super::status::MinesStatus;
use super::{TakeError, Taken, Taker, Upload};
use crate::core::event::{FileIn, FileSave};
use crate::core::{Message, Origin, Reason, Receipt, Rejection, SourceEvent};
use futures::future::BoxFuture;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};

/// Files remembered per mine to recognise a second upload of the same one.
const SEEN_PER_MINE: usize = crate::core::event::SEEN_KEPT;

/// How long a file waits for its commit before it is answered "retry".
const COMMIT_TIMEOUT: Duration = Duration::from_secs(30);

pub struct Intake {
    mines: HashMap<String, Arc<Mine>>,
    kept: super::kept::Kept,
    link: Mutex<Option<Link>>,
    metrics: Arc<MineMetrics>,
    status: Arc<MinesStatus>,
    /// Disk write failures, logged at most every 10 s per kind.
    warn: crate::telemetry::RateLimitedLog,
    /// Cluster mode: a file taken is checked and put into the readings stream whole; every
    /// instance applies it from there ([`FileTaker`]), with the mines' state it holds.
    relay: bool,
    /// Cluster mode: what changed of each mine since the last checkpoint.
    dirty: Mutex<BTreeMap<String, Dirty>>,
}

#[derive(Default)]
struct Dirty {
    definition: Option<crate::core::event::Definition>,
    seen: Vec<(String, [u8; 32])>,
}

struct Link {
    events: mpsc::Sender<SourceEvent>,
    hold: watch::Receiver<bool>,
}

/// One mine: its site, and its state behind a lock held while a file is applied and
/// committed, so one mine's files apply one at a time, in the order they came.
struct Mine {
    site: MineSite,
    book: tokio::sync::Mutex<Book>,
}

#[derive(Default)]
struct Book {
    state: MineState,
    seen: HashSet<(String, [u8; 32])>,
    order: VecDeque<(String, [u8; 32])>,
}

impl Book {
    /// Cluster mode: put back the mine's state from a checkpoint.
    fn resume(&mut self, site: &MineSite, save: &FileSave) {
        let (state, _, problem) =
            super::saved::restore(site, &save.state, save.definition.as_ref());
        if let Some(problem) = problem {
            tracing::warn!(mine = %site.mine_code, problem, "the mine's state in the checkpoint is not all back; its next files put it right");
        }
        self.state = state;
        for key in &save.seen {
            self.remember(key.clone());
        }
    }

    fn remember(&mut self, key: (String, [u8; 32])) {
        if self.seen.insert(key.clone()) {
            self.order.push_back(key);
        }
        while self.order.len() > SEEN_PER_MINE {
            if let Some(old) = self.order.pop_front() {
                self.seen.remove(&old);
            }
        }
    }
}

impl Intake {
    /// With `relay` (cluster mode) the stream is the record: no kept CDDY nor ledger is
    /// read or written (each instance would hold its own, and they must agree).
    pub fn new(
        sites: Vec<MineSite>,
        kept: super::kept::Kept,
        metrics: Arc<MineMetrics>,
        status: Arc<MinesStatus>,
        relay: bool,
        saved: &[FileSave],
    ) -> Intake {
        let kept = if relay {
            super::kept::Kept::default()
        } else {
            kept
        };
        for s in &sites {
            status.register(s);
        }
        let mines = sites
            .into_iter()
            .map(|site| {
                let code = site.mine_code.clone();
                let mut book = Book::default();
                for key in kept.ledger(&code) {
                    book.remember(key);
                }
                if let Some(save) = saved.iter().find(|f| f.key == code) {
                    book.resume(&site, save);
                }
                let mine = Mine {
                    site,
                    book: tokio::sync::Mutex::new(book),
                };
                (code, Arc::new(mine))
            })
            .collect();
        Intake {
            mines,
            kept,
            link: Mutex::new(None),
            metrics,
            status,
            warn: crate::telemetry::RateLimitedLog::new(10_000),
            relay,
            dirty: Mutex::default(),
        }
    }

    /// Connect to the core (at start) or let go of it (`None`, at shutdown).
    pub fn connect(&self, events: Option<(mpsc::Sender<SourceEvent>, watch::Receiver<bool>)>) {
        *self.link.lock().unwrap_or_else(|p| p.into_inner()) =
            events.map(|(events, hold)| Link { events, hold });
    }

    fn linked(&self) -> Option<(mpsc::Sender<SourceEvent>, watch::Receiver<bool>)> {
        let link = self.link.lock().unwrap_or_else(|p| p.into_inner());
        link.as_ref().map(|l| (l.events.clone(), l.hold.clone()))
    }

    async fn take_file(self: Arc<Self>, up: Upload) -> Result<Taken, TakeError> {
        let res = self.try_take(&up).await;
        let name = format::parse_name(&up.name, 0).ok();
        let ty = name.as_ref().map_or("unknown", |n| n.file_type.as_str());
        self.metrics.file(ty, outcome(&res));
        // The mine that sent it: the login vouches for it over FTP, the name in the folder.
        let sender = up.login.clone().or(name.map(|n| n.mine_code));
        if let Some(code) = sender.filter(|_| !matches!(res, Ok(Taken::Applied { .. }))) {
            self.status.file_not_applied(&code, &res);
        }
        res
    }

    async fn try_take(&self, up: &Upload) -> Result<Taken, TakeError> {
        let name = format::parse_name(&up.name, 0).map_err(|e| self.refuse(up, &e))?;
        if let Some(login) = up.login.as_deref().filter(|l| *l != name.mine_code) {
            let detail = format!(
                "logged in as mine {login:?} but the file is mine {:?}'s; each mine uploads only its own files",
                name.mine_code
            );
            return Err(self.refused(up, Reason::MineMismatch, detail).await);
        }
        let Some(mine) = self.mines.get(&name.mine_code).cloned() else {
            return Err(self
                .refused(
                    up,
                    Reason::UnknownMine,
                    format!(
                        "no site has mine_code {:?}; add it to the inventory or check the uploader's mine code",
                        name.mine_code
                    ),
                )
                .await);
        };
        let (events, hold) = self
            .linked()
            .ok_or_else(|| TakeError::Retry("the gateway is starting or stopping".into()))?;
        if *hold.borrow() {
            return Err(TakeError::Retry(
                "the gateway is holding new readings (outbox at its budget or disk at its floor)"
                    .into(),
            ));
        }
        let parsed = self.parse(up, &mine.site, &events).await?;
        if self.relay {
            return self.relay_file(up, &mine.site, &parsed, events).await;
        }
        let mut book = mine.book.lock().await;
        let key = (up.name.clone(), Sha256::digest(&up.bytes).into());
        if book.seen.contains(&key) {
            self.metrics.duplicate.inc();
            return Ok(Taken::Duplicate);
        }
        self.metrics.encoding(parsed.encoding.as_str());
        let taken = self
            .commit(up, &parsed, &mine.site, &mut book.state, events)
            .await?;
        // Noted before the answer: a file committed, then taken again after a crash (the
        // folder's move not done, the 226 not sent), is a duplicate, not applied twice.
        self.note_applied(&mine.site.mine_code, &key);
        book.remember(key);
        if parsed.name.file_type == format::FileType::Cddy && !self.keep_cddy(&mine.site, up).await
        {
            self.metrics.file("CDDY", "not_kept");
        }
        self.status
            .file_applied(&mine.site, &parsed, up, &taken, &book.state);
        Ok(taken)
    }

    /// The file's records, or why it is refused whole.
    async fn parse(
        &self,
        up: &Upload,
        site: &MineSite,
        events: &mpsc::Sender<SourceEvent>,
    ) -> Result<ParsedFile, TakeError> {
        match format::parse_file(&up.name, &up.bytes, site.tz_offset_s) {
            Ok(p) => Ok(p),
            // Over FTP the upload is over: a file without its end is refused, and said so.
            // The watched folder waits for the rest, quietly.
            Err(FileError::Truncated) if up.via == super::Via::Ftp => {
                let _ = self.refuse_parsed(up, &FileError::Truncated, events).await;
                Err(TakeError::Incomplete)
            }
            Err(FileError::Truncated) => Err(TakeError::Incomplete),
            Err(e) => Err(self.refuse_parsed(up, &e, events).await),
        }
    }

    /// Cluster mode: the checked file into the stream; answered once JetStream holds it.
    /// Its records are counted as the parse found them (what the core refuses later, an
    /// unknown point, is refused on every instance from the stream).
    async fn relay_file(
        &self,
        up: &Upload,
        site: &MineSite,
        parsed: &ParsedFile,
        events: mpsc::Sender<SourceEvent>,
    ) -> Result<Taken, TakeError> {
        self.metrics.encoding(parsed.encoding.as_str());
        let file = SourceEvent::File(Box::new(crate::core::event::FileIn {
            source: Arc::from("mine_files"),
            site: site.site.clone(),
            name: up.name.clone(),
            login: up.login.clone(),
            from_folder: up.via == super::Via::Folder,
            bytes: up.bytes.clone(),
            received_ms: up.received_ms,
        }));
        self.send_and_wait(vec![file], events).await?;
        Ok(Taken::Applied {
            accepted: parsed.records.len(),
            refused: parsed.refused.len(),
        })
    }

    /// Apply the file's events as one message and wait for its commit.
    async fn commit(
        &self,
        up: &Upload,
        parsed: &ParsedFile,
        site: &MineSite,
        state: &mut MineState,
        events: mpsc::Sender<SourceEvent>,
    ) -> Result<Taken, TakeError> {
        let (evs, applied) = apply(&up.name, parsed, site, state, up.received_ms);
        if applied.late {
            self.metrics.late.inc();
        }
        let records = parsed.records.len() + parsed.refused.len();
        let refused = self.send_and_wait(evs, events).await?;
        self.metrics
            .records(records.saturating_sub(refused), refused);
        Ok(Taken::Applied {
            accepted: records.saturating_sub(refused),
            refused,
        })
    }

    /// `evs` to the core as one message, waiting for its commit: how many it refused.
    async fn send_and_wait(
        &self,
        evs: Vec<SourceEvent>,
        events: mpsc::Sender<SourceEvent>,
    ) -> Result<usize, TakeError> {
        let refused = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = oneshot::channel();
        let tx = Mutex::new(Some(tx));
        let receipt = Receipt::new(move |durable| {
            if let Some(tx) = tx.lock().ok().and_then(|mut t| t.take()) {
                let _ = tx.send(durable);
            }
        });
        let msg = Message {
            events: evs,
            refused: refused.clone(),
            receipt,
        };
        let wait = tokio::time::timeout(COMMIT_TIMEOUT, async {
            events
                .send(SourceEvent::Message(Box::new(msg)))
                .await
                .map_err(|_| TakeError::Retry("the gateway is stopping".into()))?;
            match rx.await {
                Ok(true) => Ok(()),
                _ if self.relay => Err(TakeError::Retry(
                    "the file was not put into the cluster's readings stream: the gateway is stopping, or the file is larger than a NATS message may carry (max_payload on the NATS servers; the gateway's log says which)".into(),
                )),
                _ => Err(TakeError::Retry(
                    "the file's readings could not be made durable".into(),
                )),
            }
        });
        match wait.await {
            Ok(r) => r?,
            Err(_) => {
                return Err(TakeError::Retry(format!(
                    "not committed within {} s",
                    COMMIT_TIMEOUT.as_secs()
                )))
            }
        }
        Ok(refused.lock().map(|r| r.len()).unwrap_or(0))
    }

    /// A file refused whole: the reason goes to the core's rejections too (the operator's
    /// `/api/v1/rejections`), and the transport gets it for its reply.
    async fn refused(&self, up: &Upload, reason: Reason, detail: String) -> TakeError {
        if let Some((events, _)) = self.linked() {
            let _ = events
                .send(SourceEvent::Rejected(self.rejection(up, reason, &detail)))
                .await;
        }
        TakeError::Refused {
            reason: reason.as_str(),
            detail,
        }
    }

    fn refuse(&self, up: &Upload, e: &FileError) -> TakeError {
        if let Some((events, _)) = self.linked() {
            let _ = events.try_send(SourceEvent::Rejected(self.rejection(
                up,
                file_reason(e),
                &e.to_string(),
            )));
        }
        TakeError::Refused {
            reason: file_reason(e).as_str(),
            detail: e.to_string(),
        }
    }

    async fn refuse_parsed(
        &self,
        up: &Upload,
        e: &FileError,
        events: &mpsc::Sender<SourceEvent>,
    ) -> TakeError {
        let reason = file_reason(e);
        let _ = events
            .send(SourceEvent::Rejected(self.rejection(
                up,
                reason,
                &e.to_string(),
            )))
            .await;
        TakeError::Refused {
            reason: reason.as_str(),
            detail: e.to_string(),
        }
    }

    fn rejection(&self, up: &Upload, reason: Reason, detail: &str) -> Rejection {
        Rejection {
            reason,
            origin: Origin {
                topic: format!("mine_files/{}", crate::core::event::shorten(&up.name, 80)).into(),
                element: None,
            },
            detail: detail.to_string(),
            received_ms: up.received_ms,
        }
    }
}

impl Intake {
    /// Keep a mine's applied CDDY for the next start; false when it could not be written
    /// (logged: the points are then unknown after a restart until the mine's next CDDY).
    /// On the blocking pool: a slow or full disk must not stall the FTP sessions' tasks.
    async fn keep_cddy(&self, site: &MineSite, up: &Upload) -> bool {
        let (kept, code, name, bytes) = (
            self.kept.clone(),
            site.mine_code.clone(),
            up.name.clone(),
            up.bytes.clone(),
        );
        let done = tokio::task::spawn_blocking(move || kept.keep(&code, &name, &bytes)).await;
        match done {
            Ok(Ok(())) => true,
            Ok(Err(e)) => {
                self.warn_disk("keep_cddy", &site.mine_code, &e.to_string());
                false
            }
            Err(e) => {
                self.warn_disk("keep_cddy", &site.mine_code, &e.to_string());
                false
            }
        }
    }

    /// Note a file applied in the mine's ledger, at once after its commit: a small append
    /// kept on this task (not the blocking pool), because a crash between the commit and the
    /// note re-applies the file after the restart, and a thread hop widens that window.
    fn note_applied(&self, code: &str, key: &(String, [u8; 32])) {
        if let Err(e) = self.kept.applied(code, &key.0, &key.1, SEEN_PER_MINE) {
            self.warn_disk("ledger", code, &e.to_string());
        }
    }

    /// A write under `data_dir/mine_files` failed: logged at most every 10 s per kind.
    fn warn_disk(&self, what: &'static str, code: &str, error: &str) {
        let Some(suppressed) = self.warn.allow(what, crate::telemetry::now_ms()) else {
            return;
        };
        match what {
            "keep_cddy" => {
                tracing::warn!(mine = %code, %error, suppressed, "could not keep the mine's CDDY for the next start")
            }
            _ => {
                tracing::warn!(mine = %code, %error, suppressed, "could not note the applied file; taken again after a restart it would be applied again")
            }
        }
    }

    /// At start, before any new file: declare each mine's points again from its kept CDDY,
    /// as arrived now.
    pub async fn replay_kept(self: &Arc<Self>, now_ms: i64) {
        let codes: Vec<String> = self.mines.keys().cloned().collect();
        for code in codes {
            let Some((name, bytes)) = self.kept.last(&code) else {
                continue;
            };
            // Applied before the stop, so in the ledger: it must be applied again all the
            // same, as it is what declares the points.
            if let Some(mine) = self.mines.get(&code) {
                let key = (name.clone(), Sha256::digest(&bytes).into());
                mine.book.lock().await.seen.remove(&key);
            }
            let up = Upload {
                login: Some(code.clone()),
                name,
                bytes,
                received_ms: now_ms,
                via: super::Via::Folder,
            };
            if let Err(e) = self.clone().take_file(up).await {
                tracing::warn!(mine = %code, error = %e, "the mine's kept CDDY was not applied at start");
            }
        }
    }
}

impl Intake {
    /// Cluster mode: note what a file applied from the stream changed, for the checkpoint.
    fn changed(
        &self,
        site: &MineSite,
        up: &Upload,
        parsed: &ParsedFile,
        applied: &super::apply::Applied,
        key: &(String, [u8; 32]),
    ) {
        let mut dirty = self.dirty.lock().unwrap_or_else(|p| p.into_inner());
        let d = dirty.entry(site.mine_code.clone()).or_default();
        d.seen.push(key.clone());
        if parsed.name.file_type == format::FileType::Cddy && !applied.late {
            d.definition = Some(crate::core::event::Definition {
                name: up.name.clone(),
                bytes: up.bytes.clone(),
                received_ms: up.received_ms,
            });
        }
    }

    /// What changed of each mine since the last call, with the mine's state as it is.
    async fn saved(self: Arc<Self>) -> Vec<FileSave> {
        let dirty = std::mem::take(&mut *self.dirty.lock().unwrap_or_else(|p| p.into_inner()));
        let mut out = Vec::with_capacity(dirty.len());
        for (code, d) in dirty {
            let Some(mine) = self.mines.get(&code) else {
                continue;
            };
            let state = super::saved::to_bytes(&mine.book.lock().await.state);
            out.push(FileSave {
                key: code,
                state,
                definition: d.definition,
                seen: d.seen,
            });
        }
        out
    }
}

/// The gateway's reason for a file refused whole.
fn file_reason(e: &FileError) -> Reason {
    match e {
        FileError::BadName(_) => Reason::BadFileName,
        FileError::Undecodable(_) | FileError::FullWidthSeparator(_) => Reason::Undecodable,
        FileError::Truncated => Reason::TruncatedFile,
        FileError::NoHeader | FileError::BadHeader(_) => Reason::WrongFieldCount,
        FileError::MineMismatch { .. } => Reason::MineMismatch,
        // The site's configured offset, not the mine's file, is at fault.
        FileError::BadOffset(_) => Reason::MineNotConfigured,
    }
}

fn outcome(res: &Result<Taken, TakeError>) -> &'static str {
    match res {
        Ok(Taken::Applied { refused: 0, .. }) => "applied",
        Ok(Taken::Applied { .. }) => "partial",
        Ok(Taken::Duplicate) => "duplicate",
        Err(TakeError::Refused { .. }) => "refused",
        Err(TakeError::Retry(_)) => "retry",
        Err(TakeError::Incomplete) => "incomplete",
    }
}

/// The transports hold the intake as their taker.
pub struct IntakeTaker(pub Arc<Intake>);

impl Taker for IntakeTaker {
    fn take(&self, upload: Upload) -> BoxFuture<'static, Result<Taken, TakeError>> {
        Box::pin(self.0.clone().take_file(upload))
    }
}

/// Cluster mode: the files of the readings stream, applied with the mines' state this
/// instance holds (every instance holds the same, from the same stream).
pub struct StreamFiles(pub Arc<Intake>);

impl crate::core::event::FileTaker for StreamFiles {
    fn apply(&self, file: Box<FileIn>) -> BoxFuture<'static, Vec<SourceEvent>> {
        Box::pin(self.0.clone().apply_streamed(file))
    }

    fn readings(&self, file: &FileIn) -> BoxFuture<'static, Vec<SourceEvent>> {
        let (intake, file) = (self.0.clone(), file.clone());
        Box::pin(async move { intake.readings_of(&file).await })
    }

    fn saved(&self) -> BoxFuture<'static, Vec<FileSave>> {
        Box::pin(self.0.clone().saved())
    }
}

fn upload_of(f: &FileIn) -> Upload {
    Upload {
        login: f.login.clone(),
        name: f.name.clone(),
        bytes: f.bytes.clone(),
        received_ms: f.received_ms,
        via: if f.from_folder {
            super::Via::Folder
        } else {
            super::Via::Ftp
        },
    }
}

impl Intake {
    /// A file from the stream: its mine and records (the ingress instance checked both;
    /// `None` if this build disagrees, logged at most every 10 s).
    fn streamed(&self, up: &Upload) -> Option<(Arc<Mine>, ParsedFile)> {
        let found = format::parse_name(&up.name, 0).ok().and_then(|n| {
            let mine = self.mines.get(&n.mine_code)?.clone();
            let parsed = format::parse_file(&up.name, &up.bytes, mine.site.tz_offset_s).ok()?;
            Some((mine, parsed))
        });
        if found.is_none() {
            if let Some(suppressed) = self.warn.allow("streamed", crate::telemetry::now_ms()) {
                tracing::warn!(file = %up.name, suppressed, "a file in the readings stream names no mine here or does not parse here (is the inventory the same on every instance?); skipped");
            }
        }
        found
    }

    /// Apply a file from the stream as it would have been applied alone: its events as
    /// one message; nothing for a file applied before (the same name and content).
    async fn apply_streamed(self: Arc<Self>, f: Box<FileIn>) -> Vec<SourceEvent> {
        let up = upload_of(&f);
        let Some((mine, parsed)) = self.streamed(&up) else {
            return Vec::new();
        };
        let mut book = mine.book.lock().await;
        let key = (up.name.clone(), Sha256::digest(&up.bytes).into());
        if book.seen.contains(&key) {
            self.metrics.duplicate.inc();
            return Vec::new();
        }
        let (events, applied) = apply(
            &up.name,
            &parsed,
            &mine.site,
            &mut book.state,
            up.received_ms,
        );
        if applied.late {
            self.metrics.late.inc();
        }
        self.changed(&mine.site, &up, &parsed, &applied, &key);
        book.remember(key);
        let (accepted, refused) = (parsed.records.len(), parsed.refused.len());
        self.metrics.records(accepted, refused);
        let taken = Taken::Applied { accepted, refused };
        self.status
            .file_applied(&mine.site, &parsed, &up, &taken, &book.state);
        let msg = Message {
            events,
            refused: Arc::default(),
            receipt: Receipt::new(|_| {}),
        };
        vec![SourceEvent::Message(Box::new(msg))]
    }

    /// A file's readings from the mine's state as it is now, changing nothing.
    async fn readings_of(&self, f: &FileIn) -> Vec<SourceEvent> {
        let up = upload_of(f);
        let Some((mine, parsed)) = self.streamed(&up) else {
            return Vec::new();
        };
        let mut state = mine.book.lock().await.state.clone();
        let (events, _) = apply(&up.name, &parsed, &mine.site, &mut state, up.received_ms);
        events
            .into_iter()
            .filter(|e| matches!(e, SourceEvent::Reading { .. } | SourceEvent::Stored { .. }))
            .collect()
    }
}
