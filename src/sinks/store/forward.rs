//! The outbox forwarder: replays the outbox to the store, oldest first, and deletes only what
//! the store accepted. `classify` and `next_step` decide what to do with each answer (pure,
//! unit-tested); `Forwarder::run` does it.
//!
//! - 2xx: the batch is stored; delete it.
//! - 429, 5xx, no answer: retry the same batch later (`Retry-After` when the store gives one,
//!   else the capped back-off), never skip it: order per device is kept.
//! - 413: the batch is too large; split it in halves, in place.
//! - 400, 422 (and other 4xx): some line is refused for good. Bisect the batch until the
//!   refused line stands alone, then dead-letter it with the store's message, so the good
//!   lines around it are written and the queue never blocks on it.
//!
//! Up to `store.writes_in_flight` writes are in flight at once, so the store parses one while
//! the next travels (one at a time, the store idled between its answer and the next body).
//! Each write takes the oldest batches not yet written nor in flight. Two writes in flight
//! never hold the same point (`overlap`); after any failure the rest in flight land first and
//! the forwarder goes back to one write at a time, from the file, until the failed batch is
//! through.

use super::commit::publish_backlog;
use super::fresh::Fresh;
use super::outbox::{Batch, Outbox, OutboxError};
use super::overlap::Points;
use super::{StoreClient, WriteAnswer};
use crate::backoff::Backoff;
use crate::model::now_ms;
use crate::telemetry::{Metrics, OutboxStatus, RateLimitedLog, StoreHealth, StoreStatus};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{broadcast, Notify};
use tokio::task::{JoinHandle, JoinSet};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Accepted,
    /// Try again; with the store's `Retry-After`, when it gave one.
    Retry(Option<Duration>),
    TooLarge,
    Refused {
        status: u16,
        message: String,
    },
}

/// The store's answer: an HTTP status (none when the request failed) and its headers/body.
pub fn classify(status: Option<u16>, retry_after: Option<&str>, body: &str) -> Answer {
    match status {
        Some(s) if (200..300).contains(&s) => Answer::Accepted,
        Some(413) => Answer::TooLarge,
        Some(s) if s == 429 || s >= 500 => Answer::Retry(
            retry_after
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(|s| Duration::from_secs(s.min(3600))),
        ),
        Some(s) if (400..500).contains(&s) => Answer::Refused {
            status: s,
            message: body.chars().take(2000).collect(),
        },
        // 1xx/3xx or nothing at all: the request did not go through.
        _ => Answer::Retry(None),
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Delete,
    /// Wait this long, then send the same batch again.
    RetryIn(Duration),
    /// Replace the batch by these parts (lines, points), in order.
    Split(Vec<(Vec<u8>, u32)>),
    /// The batch is one line the store will never take: keep it aside with the answer.
    DeadLetter {
        status: u16,
        message: String,
    },
}

/// Split line protocol into two halves at a line boundary (`None` for a single line).
pub fn halves(lines: &[u8]) -> Option<[(Vec<u8>, u32); 2]> {
    let all: Vec<&[u8]> = lines
        .split_inclusive(|b| *b == b'\n')
        .filter(|l| !l.iter().all(u8::is_ascii_whitespace))
        .collect();
    if all.len() < 2 {
        return None;
    }
    let (a, b) = all.split_at(all.len() / 2);
    Some([(a.concat(), a.len() as u32), (b.concat(), b.len() as u32)])
}

/// The next step for a batch given the store's answer; `backoff` gives the delay when the
/// store did not say how long to wait.
pub fn next_step(lines: &[u8], answer: Answer, backoff: &mut crate::backoff::Backoff) -> Step {
    match answer {
        Answer::Accepted => {
            backoff.reset();
            Step::Delete
        }
        Answer::Retry(after) => Step::RetryIn(after.unwrap_or_else(|| backoff.next_delay())),
        Answer::TooLarge => match halves(lines) {
            Some(h) => Step::Split(h.to_vec()),
            None => Step::DeadLetter {
                status: 413,
                message: "a single line is larger than the store accepts".into(),
            },
        },
        Answer::Refused { status, message } => match halves(lines) {
            Some(h) => Step::Split(h.to_vec()),
            None => Step::DeadLetter { status, message },
        },
    }
}

pub struct Forwarder {
    pub outbox: Arc<Mutex<Outbox>>,
    /// Batches just committed, handed over in memory (see `fresh`).
    pub fresh: Arc<Fresh>,
    pub client: StoreClient,
    /// Points per write (`store.batch_size`); whole outbox batches are merged up to it.
    pub max_points: u64,
    pub url: String,
    /// Woken by the committer after each commit.
    pub committed: Arc<Notify>,
    /// We wake the committer when we free space (it may be waiting at the budget).
    pub freed: Arc<Notify>,
    pub metrics: Arc<Metrics>,
    pub store: Arc<StoreStatus>,
    pub status: Arc<OutboxStatus>,
    /// `store.writes_in_flight` (at least 1).
    pub in_flight: usize,
}

/// Batches the store took whose delete may still be under way; past this many, the next write
/// waits for the deletes (a disk that cannot delete stops the forwarder, as before).
const MAX_UNDELETED: usize = 64;

type Deleting = (JoinHandle<Result<(), OutboxError>>, Vec<i64>);

/// The forwarder's state across writes.
struct Run {
    backoff: Backoff,
    /// Failures of our own disk (not the store's): their own back-off, so a full disk never
    /// turns into a hot loop.
    local: Backoff,
    warn: RateLimitedLog,
    /// After the store refused a merged write, send the oldest batch alone so that a bad line
    /// is isolated within its own batch.
    single: bool,
    /// The fresh queue holds every batch not yet posted: take from it, not from the file.
    trusted: bool,
    /// A write failed and is not through yet: one write at a time until it is.
    recovering: bool,
    /// Batches the store accepted and the outbox has not forgotten yet: never posted again,
    /// deleted in the background while the next write goes out.
    undeleted: Vec<i64>,
    deleting: Option<Deleting>,
    /// Writes on their way, oldest first.
    flying: Vec<Flight>,
    /// The next write, taken from the queue but held back: it shares a point with a write in
    /// flight.
    ready: Option<(Vec<Batch>, Option<Arc<Points>>)>,
}

impl Run {
    fn new() -> Run {
        Run {
            backoff: Backoff::new(200, 30_000),
            local: Backoff::new(200, 10_000),
            warn: RateLimitedLog::new(10_000),
            single: false,
            trusted: false,
            recovering: false,
            undeleted: Vec::new(),
            deleting: None,
            flying: Vec::new(),
            ready: None,
        }
    }

    /// Writes that may be in flight now: several unless a failure is being worked through.
    fn room(&self, in_flight: usize) -> usize {
        if !self.recovering && !self.single {
            in_flight.max(1)
        } else {
            1
        }
    }

    /// A failure: what was taken from the fresh queue is still in the file; read it from
    /// there, in order, the held-back write with it, one write at a time.
    fn distrust(&mut self) {
        self.trusted = false;
        self.recovering = true;
        self.ready = None;
    }
}

/// A write in flight: its task, its batches' ids (never read again from the file while it
/// flies) and its points (when several writes may fly).
struct Flight {
    task: tokio::task::Id,
    ids: Vec<i64>,
    points: Option<Arc<Points>>,
}

type Landed = (Vec<Batch>, WriteAnswer);

impl Forwarder {
    fn spawn_outbox<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Outbox) -> Result<T, OutboxError> + Send + 'static,
    ) -> JoinHandle<Result<T, OutboxError>> {
        let outbox = self.outbox.clone();
        let metrics = self.metrics.clone();
        let status = self.status.clone();
        tokio::task::spawn_blocking(move || {
            let mut o = outbox.lock().unwrap_or_else(|p| p.into_inner());
            let r = f(&mut o);
            if let Ok(b) = o.backlog() {
                publish_backlog(&status, &metrics, &b);
            }
            r
        })
    }

    async fn with_outbox<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Outbox) -> Result<T, OutboxError> + Send + 'static,
    ) -> Result<T, OutboxError> {
        joined(self.spawn_outbox(f).await)
    }

    /// Replay until shutdown. Nothing needs flushing at the end: the outbox is on disk.
    pub async fn run(self, mut shutdown: broadcast::Receiver<()>) {
        let mut st = Run::new();
        let mut flying: JoinSet<Landed> = JoinSet::new();
        if let Ok(n) = self.with_outbox(|o| o.dead_letter_count()).await {
            self.status.set_dead_letters(n);
        }
        loop {
            if self.settle_deletes(&mut st, &mut shutdown, false).await {
                return;
            }
            if let Err(e) = self.fill(&mut st, &mut flying).await {
                if let Some(suppressed) = st.warn.allow("outbox_read", now_ms()) {
                    tracing::error!(error = %e, suppressed, "cannot read the outbox; retrying");
                }
                if flying.is_empty() && self.pause(&mut shutdown, st.local.next_delay()).await {
                    return;
                }
            }
            if flying.is_empty() {
                if self.settle_deletes(&mut st, &mut shutdown, true).await {
                    return;
                }
                tokio::select! {
                    _ = shutdown.recv() => return,
                    _ = self.committed.notified() => {}
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
                continue;
            }
            let room = st.ready.is_none() && flying.len() < st.room(self.in_flight);
            let landed = tokio::select! {
                _ = shutdown.recv() => return,
                _ = self.committed.notified(), if room => continue,
                landed = flying.join_next_with_id() => landed,
            };
            if let Some(landed) = landed {
                if self.land(&mut st, &mut flying, landed, &mut shutdown).await {
                    return;
                }
            }
        }
    }

    /// Start writes while there is room: the held-back one first, then the queue's head.
    async fn fill(&self, st: &mut Run, flying: &mut JoinSet<Landed>) -> Result<(), OutboxError> {
        while flying.len() < st.room(self.in_flight) {
            let (head, points) = match st.ready.take() {
                Some(ready) => ready,
                None => (self.next_head(st).await?, None),
            };
            if head.is_empty() {
                return Ok(());
            }
            let points = match points {
                None if self.in_flight > 1 => Some(Arc::new(Points::of(&head))),
                points => points,
            };
            let meets = |f: &Flight| match (&f.points, &points) {
                (Some(a), Some(b)) => a.meets(b),
                _ => true,
            };
            if !st.flying.is_empty() && st.flying.iter().any(meets) {
                st.ready = Some((head, points));
                return Ok(());
            }
            let ids = head.iter().map(|b| b.id).collect();
            let client = self.client.clone();
            let task = flying
                .spawn(async move {
                    let answer = client.write(join(&head)).await;
                    (head, answer)
                })
                .id();
            st.flying.push(Flight { task, ids, points });
        }
        Ok(())
    }

    /// One write's answer. A failure lets the rest in flight land first, then is dealt with
    /// as a lone write's; true when shutdown came first.
    async fn land(
        &self,
        st: &mut Run,
        flying: &mut JoinSet<Landed>,
        landed: Result<(tokio::task::Id, Landed), tokio::task::JoinError>,
        shutdown: &mut broadcast::Receiver<()>,
    ) -> bool {
        let (head, answer) = match landed {
            Ok((task, landed)) => {
                st.flying.retain(|f| f.task != task);
                landed
            }
            Err(e) => {
                // The write's task died: its batches are still in the file.
                st.flying.retain(|f| f.task != e.id());
                st.distrust();
                return false;
            }
        };
        if stored(&answer) {
            return self.answered(st, head, answer, shutdown).await;
        }
        st.distrust();
        while let Some(other) = tokio::select! {
            _ = shutdown.recv() => return true,
            other = flying.join_next_with_id() => other,
        } {
            let Ok((task, (other_head, other_answer))) = other else {
                continue;
            };
            st.flying.retain(|f| f.task != task);
            if stored(&other_answer) {
                self.answered(st, other_head, other_answer, shutdown).await;
            } else {
                // Still in the file, after the failed one: written again in its turn.
                self.metrics.store_write_failures.inc();
            }
        }
        st.flying.clear();
        self.answered(st, head, answer, shutdown).await
    }

    /// The next batches to write: from the fresh queue while it holds everything not yet
    /// posted, else from the file (oldest first, without the batches awaiting their delete).
    async fn next_head(&self, st: &mut Run) -> Result<Vec<Batch>, OutboxError> {
        if self.fresh.take_gap() {
            st.trusted = false;
        }
        if st.trusted && !st.single {
            return Ok(self.fresh.pop_head(self.max_points));
        }
        let limit = if st.single { 1 } else { self.max_points };
        let mut skip = st.undeleted.clone();
        skip.extend(st.flying.iter().flat_map(|f| f.ids.iter().copied()));
        let head = self.with_outbox(move |o| o.head(limit, &skip)).await?;
        let ids: Vec<i64> = head.iter().map(|b| b.id).collect();
        if !st.single && self.fresh.covers(&ids) {
            st.trusted = true;
            return Ok(self.fresh.pop_head(self.max_points));
        }
        self.fresh.remove(&ids);
        Ok(head)
    }

    /// Reap a finished delete and start the next one; with `all`, or past `MAX_UNDELETED`,
    /// wait until every accepted batch is deleted. True when shutdown came first.
    async fn settle_deletes(
        &self,
        st: &mut Run,
        shutdown: &mut broadcast::Receiver<()>,
        all: bool,
    ) -> bool {
        loop {
            let must_wait = all || st.undeleted.len() > MAX_UNDELETED;
            if let Some((handle, ids)) = st.deleting.take() {
                if !handle.is_finished() && !must_wait {
                    st.deleting = Some((handle, ids));
                    return false;
                }
                match joined(handle.await) {
                    Ok(()) => {
                        forget_once(&mut st.undeleted, &ids);
                        st.local.reset();
                        self.freed.notify_one();
                    }
                    Err(e) => {
                        if let Some(suppressed) = st.warn.allow("outbox_delete", now_ms()) {
                            tracing::error!(error = %e, batches = ids.len(), suppressed,
                                "the store has these batches but the outbox cannot forget them yet; retrying the delete, not the write");
                        }
                        if self.pause(shutdown, st.local.next_delay()).await {
                            return true;
                        }
                    }
                }
            }
            if st.undeleted.is_empty() {
                return false;
            }
            let ids = st.undeleted.clone();
            let del = ids.clone();
            st.deleting = Some((self.spawn_outbox(move |o| o.delete_all(&del)), ids));
            if !must_wait {
                return false;
            }
        }
    }

    /// Act on the store's answer to a write of `head`; true when shutdown came first.
    async fn answered(
        &self,
        st: &mut Run,
        head: Vec<Batch>,
        answer: WriteAnswer,
        shutdown: &mut broadcast::Receiver<()>,
    ) -> bool {
        let summary = match answer.status {
            Some(s) => format!(
                "HTTP {s}: {}",
                answer.body.chars().take(300).collect::<String>()
            ),
            None => answer.body.clone(),
        };
        let answer = classify(answer.status, answer.retry_after.as_deref(), &answer.body);
        if answer != Answer::Accepted {
            st.distrust();
        }
        match answer {
            Answer::Accepted => {
                st.undeleted.extend(head.iter().map(|b| b.id));
                let points: u64 = head.iter().map(|b| b.points as u64).sum();
                self.metrics.store_points_written.inc_by(points);
                self.store.set(StoreHealth::Ok, None);
                st.backoff.reset();
                st.single = false;
                st.recovering = false;
                false
            }
            Answer::Retry(after) => {
                self.metrics.store_write_failures.inc();
                self.store.set(StoreHealth::Failing, Some(summary.clone()));
                let wait = after.unwrap_or_else(|| st.backoff.next_delay());
                if let Some(suppressed) = st.warn.allow("store_write", now_ms()) {
                    tracing::warn!(url = %self.url, error = %summary, retry_in_ms = wait.as_millis() as u64, suppressed,
                        "store write failed; the batch stays in the outbox and is retried");
                }
                self.pause(shutdown, wait).await
            }
            Answer::TooLarge | Answer::Refused { .. } if head.len() > 1 => {
                self.metrics.store_write_failures.inc();
                st.single = true;
                false
            }
            answer => {
                self.metrics.store_write_failures.inc();
                let first: Batch = head.into_iter().next().expect("head is not empty");
                let step = next_step(&first.lines, answer, &mut st.backoff);
                let ok = match step {
                    Step::RetryIn(d) => {
                        if self.pause(shutdown, d).await {
                            return true;
                        }
                        true
                    }
                    step => self.refused(first, step, &st.warn).await,
                };
                st.single = false;
                if ok {
                    st.local.reset();
                    false
                } else {
                    self.pause(shutdown, st.local.next_delay()).await
                }
            }
        }
    }

    /// Wait `d` unless shutdown comes first (then true).
    async fn pause(&self, shutdown: &mut broadcast::Receiver<()>, d: Duration) -> bool {
        tokio::select! {
            _ = shutdown.recv() => true,
            _ = tokio::time::sleep(d) => false,
        }
    }

    /// Split a refused batch, or dead-letter its one line; false when the outbox failed
    /// (the caller backs off before the store sees the batch again).
    async fn refused(&self, first: Batch, step: Step, warn: &RateLimitedLog) -> bool {
        match step {
            Step::Split(parts) => {
                let id = first.id;
                if let Err(e) = self.with_outbox(move |o| o.split(id, &parts)).await {
                    if let Some(suppressed) = warn.allow("outbox_split", now_ms()) {
                        tracing::error!(error = %e, suppressed, "cannot split a refused batch in the outbox");
                    }
                    return false;
                }
                true
            }
            Step::DeadLetter { status, message } => {
                let line = first.lines.clone();
                if let Some(suppressed) = warn.allow("dead_letter", now_ms()) {
                    tracing::error!(status, store_said = %message, line = %String::from_utf8_lossy(&line).trim_end(), suppressed,
                        "the store refused a line for good; it is kept in the outbox's dead-letter table");
                }
                let (id, msg) = (first.id, message.clone());
                let r = self
                    .with_outbox(move |o| {
                        o.dead_letter(&line, status, &msg, now_ms())?;
                        o.delete(id)?;
                        o.dead_letter_count()
                    })
                    .await;
                match r {
                    Ok(n) => {
                        self.metrics.outbox_dead_letters.inc();
                        self.status.set_dead_letters(n);
                        self.freed.notify_one();
                        true
                    }
                    Err(e) => {
                        if let Some(suppressed) = warn.allow("dead_letter_write", now_ms()) {
                            tracing::error!(error = %e, suppressed, "cannot dead-letter a refused line");
                        }
                        false
                    }
                }
            }
            Step::Delete | Step::RetryIn(_) => true,
        }
    }
}

/// Remove from `undeleted` one entry for each id in `deleted`, the oldest. An id can be in
/// it twice: a split gives its parts the ids just below the oldest batch, which a batch
/// deleted a moment ago may have had; the later entry is a batch still to delete.
fn forget_once(undeleted: &mut Vec<i64>, deleted: &[i64]) {
    for id in deleted {
        if let Some(at) = undeleted.iter().position(|i| i == id) {
            undeleted.remove(at);
        }
    }
}

/// Whether the store took the write (`classify`'s `Accepted`).
fn stored(a: &WriteAnswer) -> bool {
    classify(a.status, a.retry_after.as_deref(), "") == Answer::Accepted
}

fn joined<T>(r: Result<Result<T, OutboxError>, tokio::task::JoinError>) -> Result<T, OutboxError> {
    r.unwrap_or_else(|e| Err(OutboxError::Task(e.to_string())))
}

/// One request body: a single batch as it is (no copy), several joined.
fn join(head: &[Batch]) -> bytes::Bytes {
    match head {
        [one] => one.lines.clone(),
        many => many
            .iter()
            .fold(Vec::new(), |mut v, b| {
                v.extend_from_slice(&b.lines);
                v
            })
            .into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backoff::Backoff;

    /// A reaped delete forgets each of its ids once, the oldest entry: an id written again
    /// (a split's part below the oldest batch) stays, to be deleted in its turn.
    #[test]
    fn a_reaped_delete_forgets_each_id_once() {
        let mut undeleted = vec![3, 4, 3, 5];
        forget_once(&mut undeleted, &[3, 4, 9]);
        assert_eq!(undeleted, [3, 5]);
        forget_once(&mut undeleted, &[3, 3]);
        assert_eq!(undeleted, [5]);
    }

    /// What the forwarder does between writes, driven by a script of steps: commits (with
    /// the fresh queue so small that some overflow), writes the store accepts, writes it
    /// answers with a 503. Whatever the order, every batch is written once, oldest first.
    #[derive(Debug, Clone)]
    enum Op {
        Commit(usize),
        Write { accepted: bool },
    }

    fn op() -> impl proptest::strategy::Strategy<Value = Op> {
        use proptest::prelude::*;
        prop_oneof![
            2 => (1usize..4).prop_map(Op::Commit),
            2 => Just(Op::Write { accepted: true }),
            1 => Just(Op::Write { accepted: false }),
        ]
    }

    fn forwarder(dir: &std::path::Path, fresh_cap: usize, backlog: usize) -> Forwarder {
        let mut o = Outbox::open(dir, 1 << 30, crate::model::OnDamage::Refuse, 1).unwrap();
        // A backlog from before the start: in the file only.
        for i in 0..backlog {
            o.append(format!("old{i}\n").as_bytes(), 1, 1).unwrap();
        }
        let s = crate::sinks::store::config::StoreSettings {
            url: "http://127.0.0.1:9".into(),
            org: "o".into(),
            bucket: "b".into(),
            ..Default::default()
        };
        Forwarder {
            outbox: Arc::new(Mutex::new(o)),
            fresh: Arc::new(Fresh::new(fresh_cap)),
            client: StoreClient::new(&s).unwrap(),
            max_points: 2,
            url: s.url,
            committed: Arc::default(),
            freed: Arc::default(),
            metrics: Arc::new(Metrics::new()),
            store: Arc::new(StoreStatus::new(true)),
            status: Arc::new(OutboxStatus::default()),
            in_flight: 1,
        }
    }

    proptest::proptest! {
        // Each case commits to a real outbox file (fsyncs): fewer cases than the default.
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]
        #[test]
        fn every_batch_is_written_once_in_order(
            ops in proptest::collection::vec(op(), 1..60),
            backlog in 0usize..4,
            fresh_cap in 8usize..40,
        ) {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            let dir = tempfile::tempdir().unwrap();
            let f = forwarder(dir.path(), fresh_cap, backlog);
            let mut expected: Vec<String> = (0..backlog).map(|i| format!("old{i}\n")).collect();
            let mut written: Vec<String> = Vec::new();
            let mut st = Run::new();
            (st.backoff, st.local) = (Backoff::new(1, 2), Backoff::new(1, 2));
            let (mut rx, mut n) = (broadcast::channel::<()>(1), 0);
            let ops = ops.into_iter().chain(std::iter::repeat_n(Op::Write { accepted: true }, 200));
            rt.block_on(async {
                for op in ops {
                    match op {
                        Op::Commit(k) => {
                            let rows: Vec<(bytes::Bytes, u32)> = (0..k)
                                .map(|_| { n += 1; (format!("new{n}\n").into_bytes().into(), 1) })
                                .collect();
                            expected.extend(rows.iter().map(|r| String::from_utf8(r.0.to_vec()).unwrap()));
                            let mut o = f.outbox.lock().unwrap();
                            super::super::commit::commit_rows(&mut o, &f.fresh, &rows, 2).unwrap();
                        }
                        Op::Write { accepted } => {
                            assert!(!f.settle_deletes(&mut st, &mut rx.1, false).await);
                            let head = f.next_head(&mut st).await.unwrap();
                            if head.is_empty() {
                                continue;
                            }
                            if accepted {
                                written.extend(head.iter().map(|b| String::from_utf8(b.lines.to_vec()).unwrap()));
                            }
                            let answer = super::super::WriteAnswer {
                                status: Some(if accepted { 204 } else { 503 }),
                                retry_after: Some("0".into()),
                                body: String::new(),
                            };
                            assert!(!f.answered(&mut st, head, answer, &mut rx.1).await);
                        }
                    }
                }
                assert!(!f.settle_deletes(&mut st, &mut rx.1, true).await);
            });
            proptest::prop_assert_eq!(&written, &expected);
            proptest::prop_assert_eq!(f.outbox.lock().unwrap().backlog().unwrap().batches, 0);
            drop(rx.0);
        }
    }

    /// A store on loopback that takes writes concurrently, answers one in five with a 503,
    /// and applies each accepted write when it answers, keeping the last value of a point.
    #[derive(Default)]
    struct Scripted {
        rng: Mutex<fastrand::Rng>,
        applied: Mutex<Vec<String>>,
        busy: std::sync::atomic::AtomicUsize,
        most_busy: std::sync::atomic::AtomicUsize,
        answered: Notify,
    }

    async fn scripted_write(
        axum::extract::State(s): axum::extract::State<Arc<Scripted>>,
        body: bytes::Bytes,
    ) -> impl axum::response::IntoResponse {
        use std::sync::atomic::Ordering::SeqCst;
        let now = s.busy.fetch_add(1, SeqCst) + 1;
        s.most_busy.fetch_max(now, SeqCst);
        let (fail, spins) = {
            let mut r = s.rng.lock().unwrap();
            (r.u8(..5) == 0, r.usize(..64))
        };
        for _ in 0..spins {
            tokio::task::yield_now().await;
        }
        if !fail {
            let text = String::from_utf8(body.to_vec()).unwrap();
            s.applied
                .lock()
                .unwrap()
                .extend(text.lines().map(str::to_string));
        }
        s.busy.fetch_sub(1, SeqCst);
        s.answered.notify_waiters();
        let status = if fail {
            axum::http::StatusCode::SERVICE_UNAVAILABLE
        } else {
            axum::http::StatusCode::NO_CONTENT
        };
        (status, [("retry-after", "0")])
    }

    /// Several writes in flight, answered out of order, one in five failing, the fresh queue
    /// sometimes overflowing: every line is written exactly once, and where two lines are the
    /// same point (series and time) the store ends with the one committed last. Returns the
    /// most writes the store saw at once.
    async fn writes_in_flight_case(seed: u64) -> usize {
        let store = Arc::new(Scripted {
            rng: Mutex::new(fastrand::Rng::with_seed(seed)),
            ..Default::default()
        });
        let app = axum::Router::new()
            .route("/api/v2/write", axum::routing::post(scripted_write))
            .with_state(store.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        let dir = tempfile::tempdir().unwrap();
        let mut f = forwarder(dir.path(), if seed % 3 == 0 { 64 } else { 1 << 20 }, 0);
        let s = crate::sinks::store::config::StoreSettings {
            url: url.clone(),
            org: "o".into(),
            bucket: "b".into(),
            ..Default::default()
        };
        (f.client, f.url, f.in_flight) = (StoreClient::new(&s).unwrap(), url, 3);
        let (outbox, fresh, committed) = (f.outbox.clone(), f.fresh.clone(), f.committed.clone());
        let (stop, rx) = broadcast::channel::<()>(1);
        let running = tokio::spawn(f.run(rx));
        let mut rng = fastrand::Rng::with_seed(seed);
        let mut last = std::collections::HashMap::new();
        let mut n = 0usize;
        for _ in 0..40 {
            let rows: Vec<(bytes::Bytes, u32)> = (0..rng.usize(1..7))
                .map(|_| {
                    let (device, time) = (rng.u8(..5), rng.u8(..5));
                    last.insert((device, time), n);
                    n += 1;
                    (
                        format!("m,d=d{device} v={} {time}\n", n - 1)
                            .into_bytes()
                            .into(),
                        1,
                    )
                })
                .collect();
            super::super::commit::commit_rows(&mut outbox.lock().unwrap(), &fresh, &rows, 2)
                .unwrap();
            committed.notify_one();
            for _ in 0..rng.usize(..20) {
                tokio::task::yield_now().await;
            }
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let answered = store.answered.notified();
            let done = store.applied.lock().unwrap().len() >= n;
            if done && outbox.lock().unwrap().backlog().unwrap().batches == 0 {
                break;
            }
            let wait = if done {
                Duration::from_millis(5)
            } else {
                Duration::from_secs(1)
            };
            let _ = tokio::time::timeout(wait, answered).await;
            assert!(
                tokio::time::Instant::now() < deadline,
                "seed {seed}: not all written"
            );
        }
        stop.send(()).unwrap();
        running.await.unwrap();
        let applied = store.applied.lock().unwrap().clone();
        let mut values: Vec<usize> = Vec::new();
        let mut ended = std::collections::HashMap::new();
        for line in &applied {
            let (series, rest) = line.split_once(" v=").unwrap();
            let (v, time) = rest.split_once(' ').unwrap();
            let device: u8 = series.trim_start_matches("m,d=d").parse().unwrap();
            values.push(v.parse().unwrap());
            ended.insert(
                (device, time.parse::<u8>().unwrap()),
                v.parse::<usize>().unwrap(),
            );
        }
        values.sort_unstable();
        assert_eq!(
            values,
            (0..n).collect::<Vec<_>>(),
            "seed {seed}: each line once"
        );
        assert_eq!(
            ended, last,
            "seed {seed}: the store ends as written in order"
        );
        store.most_busy.load(std::sync::atomic::Ordering::SeqCst)
    }

    #[test]
    fn writes_in_flight_land_in_any_order_and_the_store_ends_as_if_written_in_order() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let most = rt.block_on(async {
            let mut most = 0;
            for seed in 0..16 {
                most = most.max(writes_in_flight_case(seed).await);
            }
            most
        });
        assert!(
            most >= 2,
            "the writes were never in flight together ({most})"
        );
    }

    #[test]
    fn answers_by_status() {
        assert_eq!(classify(Some(204), None, ""), Answer::Accepted);
        assert_eq!(
            classify(Some(429), Some("7"), ""),
            Answer::Retry(Some(Duration::from_secs(7)))
        );
        assert_eq!(classify(Some(503), None, ""), Answer::Retry(None));
        assert_eq!(classify(None, None, ""), Answer::Retry(None));
        assert_eq!(classify(Some(413), None, ""), Answer::TooLarge);
        assert_eq!(
            classify(Some(400), None, "unable to parse"),
            Answer::Refused {
                status: 400,
                message: "unable to parse".into()
            }
        );
    }

    #[test]
    fn a_refused_line_is_isolated_and_the_rest_goes_through() {
        // The store refuses any batch holding the line "bad"; bisecting must end with exactly
        // that line dead-lettered and every other line accepted, in order.
        let store = |lines: &[u8]| {
            if lines.split(|b| *b == b'\n').any(|l| l == b"bad") {
                Answer::Refused {
                    status: 400,
                    message: "unable to parse 'bad'".into(),
                }
            } else {
                Answer::Accepted
            }
        };
        let mut queue: std::collections::VecDeque<Vec<u8>> =
            [b"a\nb\nbad\nc\nd\ne\n".to_vec()].into();
        let (mut stored, mut dead) = (Vec::new(), Vec::new());
        let mut backoff = Backoff::new(100, 1000);
        let mut rounds = 0;
        while let Some(batch) = queue.pop_front() {
            rounds += 1;
            assert!(rounds < 50, "bounded");
            match next_step(&batch, store(&batch), &mut backoff) {
                Step::Delete => stored.extend_from_slice(&batch),
                Step::Split(parts) => {
                    for p in parts.into_iter().rev() {
                        queue.push_front(p.0);
                    }
                }
                Step::DeadLetter { status, message } => dead.push((batch, status, message)),
                Step::RetryIn(_) => unreachable!("the store answered"),
            }
        }
        assert_eq!(stored, b"a\nb\nc\nd\ne\n".to_vec(), "in order, none lost");
        assert_eq!(
            dead,
            vec![(b"bad\n".to_vec(), 400, "unable to parse 'bad'".to_string())]
        );
    }

    #[test]
    fn too_large_splits_until_one_line_then_dead_letters_it() {
        let mut b = Backoff::new(100, 1000);
        assert_eq!(
            next_step(b"a\nb\nc\n", Answer::TooLarge, &mut b),
            Step::Split(vec![(b"a\n".to_vec(), 1), (b"b\nc\n".to_vec(), 2)])
        );
        assert!(matches!(
            next_step(b"a\n", Answer::TooLarge, &mut b),
            Step::DeadLetter { status: 413, .. }
        ));
        // A retry without Retry-After waits the back-off, within its bounds.
        match next_step(b"a\n", Answer::Retry(None), &mut b) {
            Step::RetryIn(d) => {
                assert!(d >= Duration::from_millis(100) && d <= Duration::from_millis(1000))
            }
            s => panic!("{s:?}"),
        }
    }
}
