//! Group commit into the outbox: records from the core are encoded as line protocol and
//! committed in batches bounded by size and time (one fsync each); the receipts queued behind
//! them are completed only after their commit. At the disk budget, or below the free-space
//! floor of the disk, the commit waits (for the forwarder to drain, or for space), and sets
//! `hold` so polled sources pause: nothing is dropped.

use super::fresh::Fresh;
use super::outbox::{Batch, Outbox, OutboxError};
use super::record::LineEncoder;
use super::Item;
use crate::core::Receipt;
use crate::model::now_ms;
use crate::telemetry::{DiskSnapshot, Metrics, OutboxStatus, RateLimitedLog};
use bytes::Bytes;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{broadcast, mpsc, watch, Notify};

/// Batches one commit may hold when a backlog is waiting (16 × `store.batch_size` points).
const GROUP_ROWS: usize = 16;
/// How long an idle queue may hold back a partial batch.
const LINGER: Duration = Duration::from_millis(5);
/// At shutdown the core still hands over what its sources give up (for up to 2 s): keep
/// committing until the queue has been idle this long, within `SHUTDOWN_GRACE` in all.
const SHUTDOWN_IDLE: Duration = Duration::from_millis(300);
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

pub struct Committer {
    pub outbox: Arc<Mutex<Outbox>>,
    /// Committed batches go here too, for the forwarder.
    pub fresh: Arc<Fresh>,
    pub rx: mpsc::Receiver<Item>,
    pub max_points: usize,
    /// A group commit stops adding batches at this many bytes of lines (a quarter of
    /// `outbox.wal_max_bytes`), so one transaction stays within the WAL bound's allowance.
    pub max_group_bytes: usize,
    pub interval: Duration,
    /// Wakes the forwarder after a commit.
    pub committed: Arc<Notify>,
    /// Wakes us when the forwarder freed space.
    pub freed: Arc<Notify>,
    /// True while at the budget: polled sources wait.
    pub hold: watch::Sender<bool>,
    pub metrics: Arc<Metrics>,
    pub status: Arc<OutboxStatus>,
}

/// While idle, the disk is measured this often, so health and the reserve stay current.
const DISK_REFRESH: Duration = Duration::from_secs(5);

/// Why commits wait: the outbox's own budget, or the disk's free-space floor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hold {
    Budget,
    Disk,
}

impl Committer {
    /// Run until shutdown, then commit what still arrives until the queue falls idle.
    pub async fn run(mut self, mut shutdown: broadcast::Receiver<()>) {
        let mut grace_until: Option<tokio::time::Instant> = None;
        let mut items: Vec<Item> = Vec::new();
        // Received but beyond the current commit: the next one starts with them.
        let mut pending: VecDeque<Item> = VecDeque::new();
        let mut buf: Vec<Item> = Vec::new();
        let mut encoder = LineEncoder::default();
        let warn = RateLimitedLog::new(10_000);
        let mut stopping = false;
        let mut held = None;
        let max = self.max_points;
        loop {
            let mut points = 0usize;
            take(&mut pending, &mut items, &mut points, max);
            if items.is_empty() && !stopping {
                // Idle: what the last commit pulled in by `try_recv` is no longer queued, and
                // the gauge must not go on showing it until the next record arrives.
                self.metrics.store_queue_depth.set(self.rx.len() as i64);
                tokio::select! {
                    _ = shutdown.recv() => stopping = true,
                    n = self.rx.recv_many(&mut buf, 64) => if n == 0 { stopping = true },
                    _ = tokio::time::sleep(DISK_REFRESH) => {
                        self.refresh_disk().await;
                        continue;
                    }
                }
                pending.extend(buf.drain(..));
                take(&mut pending, &mut items, &mut points, max);
            }
            if !stopping {
                // Commit when the batch is full, `interval` after its first item, or as soon
                // as the queue has been idle for LINGER.
                let deadline = tokio::time::Instant::now() + self.interval;
                while points < max {
                    let idle = tokio::time::Instant::now() + LINGER;
                    tokio::select! {
                        _ = shutdown.recv() => { stopping = true; break }
                        _ = tokio::time::sleep_until(deadline.min(idle)) => break,
                        n = self.rx.recv_many(&mut buf, 64) => if n == 0 { stopping = true; break },
                    }
                    pending.extend(buf.drain(..));
                    take(&mut pending, &mut items, &mut points, max);
                }
            }
            if stopping {
                let until = *grace_until
                    .get_or_insert_with(|| tokio::time::Instant::now() + SHUTDOWN_GRACE);
                loop {
                    take(&mut pending, &mut items, &mut points, max);
                    if points >= max {
                        break;
                    }
                    let idle = tokio::time::Instant::now() + SHUTDOWN_IDLE;
                    match tokio::time::timeout_at(idle.min(until), self.rx.recv()).await {
                        Ok(Some(i)) => pending.push_back(i),
                        _ => break,
                    }
                }
            }
            self.metrics.store_queue_depth.set(self.rx.len() as i64);
            if items.is_empty() {
                if stopping && pending.is_empty() {
                    return;
                }
                continue;
            }
            // Everything already waiting goes into the same transaction, as further batches
            // of at most `max` points each: one fsync for all of them.
            let mut rows = Vec::new();
            let mut receipts: Vec<Receipt> = Vec::new();
            let mut group_bytes = 0usize;
            loop {
                if let Some(row) = encode(&mut items, &mut receipts, &mut encoder, &warn) {
                    group_bytes += row.0.len();
                    rows.push(row);
                }
                if rows.len() >= GROUP_ROWS || group_bytes >= self.max_group_bytes {
                    break;
                }
                let mut points = 0usize;
                while pending.iter().map(Item::points).sum::<usize>() < max {
                    match self.rx.try_recv() {
                        Ok(i) => pending.push_back(i),
                        Err(_) => break,
                    }
                }
                take(&mut pending, &mut items, &mut points, max);
                if items.is_empty() {
                    break;
                }
            }
            let mut wait = Wait {
                shutdown: &mut shutdown,
                stopping: &mut stopping,
                held: &mut held,
                warn: &warn,
            };
            if !rows.is_empty() && !self.commit(rows, &mut wait).await {
                // Shutting down with these batches uncommitted: their receipts are dropped, so
                // their messages stay unacknowledged and the broker delivers them again.
                return;
            }
            receipts.into_iter().for_each(Receipt::done);
        }
    }

    /// Measure the disk while idle (it may fill or free up with nothing to commit).
    async fn refresh_disk(&self) {
        let outbox = self.outbox.clone();
        let r = tokio::task::spawn_blocking(move || {
            let mut o = outbox.lock().unwrap_or_else(|p| p.into_inner());
            o.refresh_disk();
            o.backlog()
        })
        .await;
        if let Ok(Ok(b)) = r {
            publish_backlog(&self.status, &self.metrics, &b);
        }
    }

    /// Commit one batch, waiting at the budget or the disk floor; false when shutdown came
    /// first (then nothing of the batch is acknowledged).
    async fn commit(&mut self, rows: Vec<(Bytes, u32)>, wait: &mut Wait<'_>) -> bool {
        let mut backoff = crate::backoff::Backoff::new(100, 5_000);
        let rows = Arc::new(rows);
        // A group over the budget goes in one batch at a time: the outbox takes at most one
        // batch beyond its budget (when empty, so no batch can wedge it), never a group.
        let (mut from, mut single) = (0, false);
        loop {
            let to = if single { from + 1 } else { rows.len() };
            let outbox = self.outbox.clone();
            let (all, fresh) = (rows.clone(), self.fresh.clone());
            let r = tokio::task::spawn_blocking(move || {
                let mut o = outbox.lock().unwrap_or_else(|p| p.into_inner());
                let r = commit_rows(&mut o, &fresh, &all[from..to], now_ms());
                (r, o.backlog())
            })
            .await;
            let (r, backlog) = match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::error!(error = %e, "outbox commit task failed");
                    return false;
                }
            };
            if let Ok(b) = backlog {
                publish_backlog(&self.status, &self.metrics, &b);
            }
            let pause = match r {
                Ok(_) => {
                    self.metrics.outbox_commits.inc();
                    self.committed.notify_one();
                    from = to;
                    if from < rows.len() {
                        continue;
                    }
                    self.set_hold(wait, None);
                    return true;
                }
                Err(OutboxError::Full { .. }) if to - from > 1 => {
                    single = true;
                    continue;
                }
                Err(e) if e.is_hold() => {
                    let why = match e {
                        OutboxError::Full { .. } => Hold::Budget,
                        _ => Hold::Disk,
                    };
                    if *wait.held != Some(why) {
                        if let Some(suppressed) = wait.warn.allow("hold", now_ms()) {
                            tracing::warn!(reason = %e, suppressed, "MQTT acknowledgements held and Modbus polling paused");
                        }
                    }
                    self.set_hold(wait, Some(why));
                    // The forwarder wakes us when it frees space; poll too, for the disk.
                    Duration::from_millis(500)
                }
                Err(e) => {
                    if let Some(suppressed) = wait.warn.allow("outbox_commit", now_ms()) {
                        tracing::error!(error = %e, suppressed, "cannot commit to the outbox; retrying (nothing is acknowledged meanwhile)");
                    }
                    backoff.next_delay()
                }
            };
            if *wait.stopping {
                return false;
            }
            tokio::select! {
                _ = wait.shutdown.recv() => { *wait.stopping = true; return false }
                _ = self.freed.notified() => {}
                _ = tokio::time::sleep(pause) => {}
            }
        }
    }

    /// Enter, change or leave back-pressure; polled sources follow `hold`.
    fn set_hold(&self, wait: &mut Wait<'_>, now: Option<Hold>) {
        let held = &mut *wait.held;
        if *held == now {
            return;
        }
        if now.is_none() {
            // At the budget, hold and resume can alternate with every commit: rate-limited.
            if let Some(suppressed) = wait.warn.allow("resume", now_ms()) {
                tracing::info!(
                    suppressed,
                    "the outbox takes commits again: acknowledging and polling resume"
                );
            }
        }
        let _ = self.hold.send(now.is_some());
        let budget = now == Some(Hold::Budget);
        self.status.set_full(budget);
        self.metrics.outbox_full.set(budget as i64);
        *held = now;
    }
}

/// Commit `rows` and hand them to the forwarder. Called under the outbox's lock, so a batch
/// the forwarder can see in the file is already in the fresh queue (or its gap is marked),
/// never pushed after the forwarder has posted it from the file.
pub fn commit_rows(
    o: &mut Outbox,
    fresh: &Fresh,
    rows: &[(Bytes, u32)],
    at: i64,
) -> Result<Vec<i64>, OutboxError> {
    let ids = o.append_all(rows, at)?;
    fresh.push(ids.iter().zip(rows).map(|(id, (lines, points))| Batch {
        id: *id,
        lines: lines.clone(),
        points: *points,
        created_ms: at,
    }));
    Ok(ids)
}

/// Encode `items` (emptied) as one batch of line protocol: its lines and points, or `None`
/// when there was nothing to write; the receipts among them go to `receipts`.
fn encode(
    items: &mut Vec<Item>,
    receipts: &mut Vec<Receipt>,
    encoder: &mut LineEncoder,
    warn: &RateLimitedLog,
) -> Option<(Bytes, u32)> {
    let mut body = Vec::with_capacity(items.iter().map(Item::points).sum::<usize>() * 96);
    let mut encoded = 0u32;
    for item in items.drain(..) {
        match item {
            Item::Records(rs) => {
                for r in rs {
                    match encoder.encode(&r, &mut body) {
                        Ok(()) => encoded += 1,
                        Err(e) => {
                            if let Some(suppressed) = warn.allow("encode", now_ms()) {
                                tracing::error!(error = %e, record = ?r, suppressed, "cannot encode a point; skipped");
                            }
                        }
                    }
                }
            }
            Item::Receipts(rs) => receipts.extend(rs),
        }
    }
    (!body.is_empty()).then(|| (Bytes::from(body), encoded))
}

/// Move items from `pending` into `items` in order while the commit has fewer than `max`
/// points, so one commit (one transaction) holds at most `max` points plus one chunk.
fn take(pending: &mut VecDeque<Item>, items: &mut Vec<Item>, points: &mut usize, max: usize) {
    while *points < max {
        let Some(i) = pending.pop_front() else { break };
        *points += i.points();
        items.push(i);
    }
}

/// What a commit waits with: the shutdown signal, and the run's state across batches.
struct Wait<'a> {
    shutdown: &'a mut broadcast::Receiver<()>,
    stopping: &'a mut bool,
    held: &'a mut Option<Hold>,
    warn: &'a RateLimitedLog,
}

pub fn publish_backlog(status: &OutboxStatus, metrics: &Metrics, b: &super::outbox::Backlog) {
    status.set_backlog(b.bytes, b.points, b.batches, b.oldest_ms);
    metrics.outbox_bytes.set(b.bytes as i64);
    metrics.outbox_points.set(b.points as i64);
    let age = b.oldest_ms.map_or(0, |t| (now_ms() - t).max(0) / 1000);
    metrics.outbox_oldest_age_s.set(age);
    let d = b.disk;
    if d.measured {
        status.set_disk(DiskSnapshot {
            measured: true,
            low: d.low,
            free_bytes: d.free,
            floor_bytes: d.floor,
            reserve_bytes: d.reserve_held,
        });
        metrics
            .disk_free_bytes
            .set(d.free.min(i64::MAX as u64) as i64);
        metrics
            .disk_floor_bytes
            .set(d.floor.min(i64::MAX as u64) as i64);
        metrics.disk_low.set(d.low as i64);
        metrics.disk_reserve_bytes.set(d.reserve_held as i64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::ReadingStatus;
    use crate::model::OnDamage;
    use crate::sinks::store::record::{Record, Tags};

    fn reading(i: i64) -> Record {
        Record::Reading {
            tags: Tags {
                site: "p1".into(),
                device: format!("d{i}").into(),
                kind: "gas_toxic",
                enterprise: None,
                zone: None,
                system: None,
                gas: None,
            },
            ts_ms: 1_700_000_000_000 + i,
            ts_from_gateway: false,
            status: ReadingStatus::Normal,
            values: vec![("ppm".into(), 1.0)],
        }
    }

    /// Records the grouped commit took with `try_recv` leave the queue: once idle, the depth
    /// gauge says 0, not what it read before the group was gathered.
    #[tokio::test]
    async fn the_queue_depth_falls_to_zero_when_idle() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = Arc::new(Mutex::new(
            Outbox::open(dir.path(), 1 << 20, OnDamage::Refuse, 1).unwrap(),
        ));
        let (tx, rx) = mpsc::channel(256);
        let metrics = Arc::new(Metrics::new());
        let fresh = Arc::new(Fresh::new(1 << 20));
        let committed = Arc::new(Notify::new());
        let c = Committer {
            outbox: outbox.clone(),
            fresh,
            rx,
            max_points: 64,
            max_group_bytes: 1 << 20,
            interval: Duration::from_millis(50),
            committed: committed.clone(),
            freed: Arc::default(),
            hold: watch::channel(false).0,
            metrics: metrics.clone(),
            status: Arc::default(),
        };
        // Queued before the committer runs: one receive takes 64, a full batch, so the depth
        // is read with 10 still queued, and the group's second batch takes them by try_recv.
        const N: i64 = 74;
        for i in 0..N {
            tx.send(Item::Records(vec![reading(i)])).await.unwrap();
        }
        let (stop, _) = broadcast::channel(1);
        let task = tokio::spawn(c.run(stop.subscribe()));
        let until = tokio::time::Instant::now() + Duration::from_secs(10);
        let committed_points = || outbox.lock().unwrap().backlog().unwrap().points;
        while committed_points() < N as u64 || metrics.store_queue_depth.get() != 0 {
            let depth = metrics.store_queue_depth.get();
            let n = committed_points();
            assert!(
                tokio::time::Instant::now() < until,
                "depth {depth} with {n} committed"
            );
            tokio::time::timeout(Duration::from_millis(100), committed.notified())
                .await
                .ok();
        }
        stop.send(()).unwrap();
        task.await.unwrap();
    }
}
