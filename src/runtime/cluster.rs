//! Cluster mode's data path (docs/scaling.md), wired: the relay puts what the sources accept
//! into the readings stream; the follower applies the whole stream to this instance's core;
//! the ticker gives the stream time for the partitions this instance owns; each owned
//! partition's writer stores its readings through the outbox and acknowledges them only once
//! committed.

use crate::api::Shared;
use crate::cluster::stream::{Readings, Taken};
use crate::cluster::{ClusterMetrics, ClusterSettings, ClusterStatus};
use crate::core::cluster::envelope::Envelope;
use crate::core::{Receipt, SourceEvent};
use crate::sinks::store::{Item, StoreQueue};
use crate::sinks::Record;
use crate::telemetry::{Clock, RateLimitedLog};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::task::JoinHandle;

/// Each owner ticks its partitions this often: the finest step of the stream's time when
/// no reading arrives (an offline transition is dated at its deadline all the same).
const TICK_EVERY: Duration = Duration::from_secs(1);
/// Ticks run this far behind the clock: another instance's relay may still be putting in
/// readings it accepted a moment ago (after a NATS election, all of them at once). Only
/// the noticing of a silence waits for it; the transition is dated at the deadline.
const TICK_LAG_MS: i64 = 1_000;
/// Readings a partition writer takes at once, and how long it waits for the first.
const WRITE_BATCH: usize = 1_000;
const WRITE_WAIT: Duration = Duration::from_millis(500);

pub struct DataPath {
    pub settings: ClusterSettings,
    pub status: Arc<ClusterStatus>,
    pub metrics: Arc<ClusterMetrics>,
    pub shared: Arc<Shared>,
    pub store: Option<StoreQueue>,
    pub clock: Clock,
    /// What turns a file from the stream into its events (`[mine_files]`), if anything.
    pub files: Option<crate::core::event::Files>,
    /// `gateway.data_dir`: where state.db is.
    pub data_dir: std::path::PathBuf,
}

/// The checkpoint this instance resumed from is of a readings stream that was deleted
/// since (the one there now was created anew and numbers its messages from 1 again):
/// applying it from the checkpoint's sequence would skip or repeat what it holds. Its
/// state.db is set aside and the process stops; started again, it rebuilds from the stream.
fn set_aside_and_exit(data_dir: &std::path::Path, checkpoint_stream_ns: i64) -> ! {
    let suffix = format!("other-stream-{}", crate::model::now_ms());
    for name in ["state.db", "state.db-wal", "state.db-shm"] {
        let from = data_dir.join(name);
        let to = data_dir.join(name.replacen("state.db", &format!("state.db.{suffix}"), 1));
        let _ = std::fs::rename(&from, &to);
    }
    tracing::error!(data_dir = %data_dir.display(), checkpoint_stream_ns, set_aside = %format!("state.db.{suffix}"), "the readings stream was created anew since this instance's checkpoint, which is of the one deleted: state.db is set aside and the gateway stops; start it again and it rebuilds its state from the stream");
    std::process::exit(78)
}

impl DataPath {
    /// Run until shutdown: open the stream (waiting for NATS), then the relay from `sources`,
    /// the follower into `core`, the ticker and the partition writers.
    pub async fn run(
        self,
        sources: mpsc::Receiver<SourceEvent>,
        core: mpsc::Sender<SourceEvent>,
        shutdown: broadcast::Sender<()>,
    ) {
        let mut stop = shutdown.subscribe();
        let opened = tokio::select! {
            r = open(&self.settings) => r,
            _ = stop.recv() => None,
        };
        let Some(mut readings) = opened else { return };
        if let Some(old) = self.status.set_stream(readings.created_ns()) {
            set_aside_and_exit(&self.data_dir, old);
        }
        let held_since = Arc::new(AtomicI64::new(i64::MAX));
        let relay = crate::cluster::ingress::Relay {
            readings: readings.clone(),
            partitions: self.settings.partitions,
            core: core.clone(),
            metrics: self.metrics.clone(),
            held_since: held_since.clone(),
            warn: Arc::new(RateLimitedLog::new(10_000)),
        };
        let follower = crate::cluster::follow::Follower {
            readings: readings.clone(),
            core,
            status: self.status.clone(),
            metrics: self.metrics.clone(),
            files: self.files.clone(),
        };
        let mut tasks = vec![
            tokio::spawn(relay.run(sources, shutdown.subscribe())),
            tokio::spawn(follower.run(shutdown.subscribe())),
            tokio::spawn(tick(
                (readings.clone(), held_since),
                self.status.clone(),
                self.clock.clone(),
                shutdown.subscribe(),
            )),
        ];
        if let Some(q) = self.store.clone() {
            let w = Writers {
                readings,
                metrics: self.metrics.clone(),
                status: self.status.clone(),
                shared: self.shared.clone(),
                store: q,
                partitions: self.settings.partitions,
                files: self.files.clone(),
            };
            tasks.push(tokio::spawn(w.run(shutdown)));
        }
        for t in tasks {
            let _ = t.await;
        }
    }
}

/// Connect and bind to the readings stream, trying until NATS answers.
async fn open(s: &ClusterSettings) -> Option<Readings> {
    let warn = RateLimitedLog::new(30_000);
    let client = match crate::cluster::connect(s).await {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "cluster mode: no data path");
            return None;
        }
    };
    loop {
        match Readings::open(client.clone(), s).await {
            Ok(r) => return Some(r),
            Err(e) => {
                if let Some(suppressed) = warn.allow("open", crate::model::now_ms()) {
                    tracing::warn!(error = %e, suppressed, "the readings stream is not reachable yet; nothing is acknowledged until it is");
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// Every second, the time into each partition this instance owns: its clock less
/// [`TICK_LAG`], and never past an event its relay still holds.
async fn tick(
    (readings, held_since): (Readings, Arc<AtomicI64>),
    status: Arc<ClusterStatus>,
    clock: Clock,
    mut shutdown: broadcast::Receiver<()>,
) {
    let mut every = tokio::time::interval(TICK_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let me = status.me().instance.clone();
    loop {
        tokio::select! {
            _ = every.tick() => {}
            _ = shutdown.recv() => return,
        }
        let at = (clock.now_ms() - TICK_LAG_MS).min(held_since.load(Ordering::Relaxed));
        let env = Envelope::tick(&me, at);
        let owned = status.view().owned;
        let sends = owned.into_iter().map(|p| {
            let (r, env, status) = (&readings, &env, &status);
            async move {
                // Only while still owned: a tick after the safe time could move time for a
                // partition another instance now owns.
                if status.owns(p) {
                    let _ = r.publish(p, env, TICK_EVERY).await;
                }
            }
        });
        futures::future::join_all(sends).await;
    }
}

/// One writer per owned partition, started when it is taken and ended when it is not.
struct Writers {
    readings: Readings,
    metrics: Arc<ClusterMetrics>,
    status: Arc<ClusterStatus>,
    shared: Arc<Shared>,
    store: StoreQueue,
    partitions: u32,
    files: Option<crate::core::event::Files>,
}

impl Writers {
    async fn run(self, shutdown: broadcast::Sender<()>) {
        let mut stop = shutdown.subscribe();
        let mut running: BTreeMap<u32, JoinHandle<()>> = BTreeMap::new();
        let mut every = tokio::time::interval(Duration::from_millis(200));
        loop {
            tokio::select! {
                _ = every.tick() => {}
                _ = stop.recv() => break,
            }
            running.retain(|_, h| !h.is_finished());
            for p in 0..self.partitions {
                if self.status.owns(p) && !running.contains_key(&p) {
                    let w = Writer {
                        partition: p,
                        readings: self.readings.clone(),
                        metrics: self.metrics.clone(),
                        status: self.status.clone(),
                        shared: self.shared.clone(),
                        store: self.store.clone(),
                        files: self.files.clone(),
                    };
                    running.insert(p, tokio::spawn(w.run(shutdown.subscribe())));
                }
            }
        }
        for (_, h) in running {
            let _ = h.await;
        }
    }
}

struct Writer {
    partition: u32,
    readings: Readings,
    metrics: Arc<ClusterMetrics>,
    status: Arc<ClusterStatus>,
    shared: Arc<Shared>,
    store: StoreQueue,
    files: Option<crate::core::event::Files>,
}

impl Writer {
    /// While the partition is owned: take its readings from its durable consumer, commit
    /// them to the outbox, then acknowledge each of them. What a dead owner took but did not
    /// acknowledge comes again to the next (the store keeps one sample per point).
    async fn run(self, mut shutdown: broadcast::Receiver<()>) {
        let p = self.partition;
        let consumer = tokio::select! {
            c = self.readings.consumer(p, Duration::from_secs(30)) => c,
            _ = shutdown.recv() => return,
        };
        let Ok(consumer) = consumer.inspect_err(|e| tracing::warn!(partition = p, error = %e, "partition writer not started; tried again on the next round")) else {
            return;
        };
        while self.status.owns(p) {
            let batch = tokio::select! {
                b = consumer.fetch(WRITE_BATCH, WRITE_WAIT) => b,
                _ = shutdown.recv() => return,
            };
            let Ok(batch) = batch else {
                // NATS away or electing: ask again shortly, not in a tight loop.
                tokio::time::sleep(WRITE_WAIT).await;
                continue;
            };
            let Some(last) = batch.last() else { continue };
            // The core checks a reading against the inventory as of the stream position it
            // has applied: a mine's points join it with their CDDY, so wait for the batch.
            if !self.applied(last.stream_sequence, &mut shutdown).await {
                return;
            }
            let events = self.events(&batch).await;
            let records = self.records(events);
            let n = records.len();
            if !self.commit(records).await {
                return; // not durable: left unacknowledged, delivered again
            }
            self.metrics.count(&self.metrics.stored, "committed", n);
            if let Err(e) = crate::cluster::stream::ack_batch(&batch).await {
                self.metrics.count(&self.metrics.stored, "ack_lost", 1);
                tracing::debug!(partition = p, error = %e, "acknowledgement lost; the batch comes again");
            }
        }
    }

    /// Until this instance's follower has applied the stream up to `sequence`; false at
    /// shutdown.
    async fn applied(&self, sequence: u64, shutdown: &mut broadcast::Receiver<()>) -> bool {
        while self.status.view().applied_sequence < sequence {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(20)) => {}
                _ = shutdown.recv() => return false,
            }
        }
        true
    }

    /// A batch's events, a file's as its readings.
    async fn events(&self, batch: &[Taken]) -> Vec<SourceEvent> {
        let mut out = Vec::with_capacity(batch.len());
        for ev in batch
            .iter()
            .filter_map(|t| t.envelope.clone().ok()?.event().ok())
        {
            match (ev, &self.files) {
                (SourceEvent::File(f), Some(files)) => out.extend(files.readings(&f).await),
                (ev, _) => out.push(ev),
            }
        }
        out
    }

    /// The store records of a batch's readings, as the core accepts them.
    fn records(&self, events: Vec<SourceEvent>) -> Vec<Record> {
        let core = self.shared.core();
        events
            .into_iter()
            .filter_map(|ev| core.accept_for_store(ev))
            .map(|a| Record::reading(&core.inventory, a))
            .collect()
    }

    /// Into the outbox, waiting for its commit: whether the records are durable.
    async fn commit(&self, records: Vec<Record>) -> bool {
        if !records.is_empty() && self.store.send(Item::Records(records)).await.is_err() {
            return false;
        }
        let (tx, rx) = oneshot::channel();
        let tx = Mutex::new(Some(tx));
        let receipt = Receipt::new(move |durable| {
            if let Some(tx) = tx.lock().ok().and_then(|mut t| t.take()) {
                let _ = tx.send(durable);
            }
        });
        if self
            .store
            .send(Item::Receipts(vec![receipt]))
            .await
            .is_err()
        {
            return false;
        }
        rx.await.unwrap_or(false)
    }
}
