//! Group commit into the outbox: records from the core are encoded as line protocol and
//! committed in batches bounded by size and time (one fsync each); the receipts queued behind
//! them are completed only after their commit. At the disk budget, the commit waits for the
//! forwarder to drain, and sets `hold` so polled sources pause: nothing is dropped.

use super::outbox::{Outbox, OutboxError};
use super::record::LineEncoder;
use super::store::Item;
use crate::core::Receipt;
use crate::telemetry::{now_ms, Metrics, OutboxStatus, RateLimitedLog};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{broadcast, mpsc, watch, Notify};

/// How long an idle queue may hold back a partial batch.
const LINGER: Duration = Duration::from_millis(5);
/// At shutdown the core still hands over what its sources give up (for up to 2 s): keep
/// committing until the queue has been idle this long, within `SHUTDOWN_GRACE` in all.
const SHUTDOWN_IDLE: Duration = Duration::from_millis(300);
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

pub struct Committer {
    pub outbox: Arc<Mutex<Outbox>>,
    pub rx: mpsc::Receiver<Item>,
    pub max_points: usize,
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

impl Committer {
    /// Run until shutdown, then commit what still arrives until the queue falls idle.
    pub async fn run(mut self, mut shutdown: broadcast::Receiver<()>) {
        let mut grace_until: Option<tokio::time::Instant> = None;
        let mut items: Vec<Item> = Vec::new();
        let mut body = Vec::with_capacity(self.max_points * 128);
        let mut encoder = LineEncoder::default();
        let warn = RateLimitedLog::new(10_000);
        let mut stopping = false;
        loop {
            let mut points = 0usize;
            if !stopping {
                tokio::select! {
                    _ = shutdown.recv() => stopping = true,
                    n = self.rx.recv_many(&mut items, 64) => if n == 0 { stopping = true },
                }
            }
            points += items.iter().map(Item::points).sum::<usize>();
            if !stopping {
                // Commit when the batch is full, `interval` after its first item, or as soon
                // as the queue has been idle for LINGER.
                let deadline = tokio::time::Instant::now() + self.interval;
                while points < self.max_points {
                    let idle = tokio::time::Instant::now() + LINGER;
                    let before = items.len();
                    tokio::select! {
                        _ = shutdown.recv() => { stopping = true; break }
                        _ = tokio::time::sleep_until(deadline.min(idle)) => break,
                        n = self.rx.recv_many(&mut items, 64) => if n == 0 { stopping = true; break },
                    }
                    points += items[before..].iter().map(Item::points).sum::<usize>();
                }
            }
            if stopping {
                let until = *grace_until
                    .get_or_insert_with(|| tokio::time::Instant::now() + SHUTDOWN_GRACE);
                while points < self.max_points {
                    let idle = tokio::time::Instant::now() + SHUTDOWN_IDLE;
                    match tokio::time::timeout_at(idle.min(until), self.rx.recv()).await {
                        Ok(Some(i)) => {
                            points += i.points();
                            items.push(i);
                        }
                        _ => break,
                    }
                }
            }
            self.metrics.store_queue_depth.set(self.rx.len() as i64);
            if items.is_empty() {
                if stopping {
                    return;
                }
                continue;
            }
            body.clear();
            let mut encoded = 0u32;
            let mut receipts: Vec<Receipt> = Vec::new();
            for item in items.drain(..) {
                match item {
                    Item::Records(rs) => {
                        for r in rs {
                            match encoder.encode(&r, &mut body) {
                                Ok(()) => encoded += 1,
                                Err(e) => {
                                    tracing::error!(error = %e, record = ?r, "cannot encode a point; skipped")
                                }
                            }
                        }
                    }
                    Item::Receipts(rs) => receipts.extend(rs),
                }
            }
            if !body.is_empty() && !self.commit(&body, encoded, stopping, &warn).await {
                // Shutting down with this batch uncommitted: its receipts are dropped, so
                // its messages stay unacknowledged and the broker delivers them again.
                return;
            }
            receipts.into_iter().for_each(Receipt::done);
        }
    }

    /// Commit one batch, waiting at the budget; false when shutdown came first.
    async fn commit(
        &mut self,
        body: &[u8],
        points: u32,
        stopping: bool,
        warn: &RateLimitedLog,
    ) -> bool {
        let mut backoff = crate::backoff::Backoff::new(100, 5_000);
        loop {
            let outbox = self.outbox.clone();
            let lines = body.to_vec();
            let r = tokio::task::spawn_blocking(move || {
                let mut o = outbox.lock().unwrap_or_else(|p| p.into_inner());
                let r = o.append(&lines, points, now_ms());
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
            match r {
                Ok(_) => {
                    self.metrics.outbox_commits.inc();
                    if *self.hold.borrow() {
                        tracing::info!(
                            "outbox below its budget again: acknowledging and polling resume"
                        );
                        let _ = self.hold.send(false);
                        self.status.set_full(false);
                        self.metrics.outbox_full.set(0);
                    }
                    self.committed.notify_one();
                    return true;
                }
                Err(OutboxError::Full { used, max }) => {
                    if !*self.hold.borrow() {
                        tracing::warn!(used, max, "outbox at its disk budget: MQTT acknowledgements held and Modbus polling paused until the store drains it");
                        let _ = self.hold.send(true);
                        self.status.set_full(true);
                        self.metrics.outbox_full.set(1);
                    }
                    if stopping {
                        return false;
                    }
                    // The forwarder wakes us when it frees space; poll too, in case.
                    let _ = tokio::time::timeout(Duration::from_millis(500), self.freed.notified())
                        .await;
                }
                Err(e) => {
                    if let Some(suppressed) = warn.allow("outbox_commit", now_ms()) {
                        tracing::error!(error = %e, suppressed, "cannot commit to the outbox; retrying (nothing is acknowledged meanwhile)");
                    }
                    if stopping {
                        return false;
                    }
                    tokio::time::sleep(backoff.next_delay()).await;
                }
            }
        }
    }
}

pub fn publish_backlog(status: &OutboxStatus, metrics: &Metrics, b: &super::outbox::Backlog) {
    status.set_backlog(b.bytes, b.points, b.batches, b.oldest_ms);
    metrics.outbox_bytes.set(b.bytes as i64);
    metrics.outbox_points.set(b.points as i64);
    let age = b.oldest_ms.map_or(0, |t| (now_ms() - t).max(0) / 1000);
    metrics.outbox_oldest_age_s.set(age);
}
