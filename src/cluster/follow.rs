//! Following the readings stream: every instance applies every partition's envelopes, in
//! the stream's one order and at the stream's time (`core::cluster::follow`), to its own
//! core. So every instance holds the same liveness, alarms and journal, and answers the
//! region's figures without asking another.

use super::metrics::ClusterMetrics;
use super::stream::Readings;
use super::ClusterStatus;
use crate::core::cluster::envelope::Envelope;
use crate::core::cluster::follow::StreamClock;
use crate::core::event::{Files, SourceEvent};
use crate::telemetry::RateLimitedLog;
use futures::StreamExt;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, mpsc};

/// The core task checkpoints after this much wall time with something new applied: the
/// most a restart applies again, and how far the journal (so the API's history) trails
/// the stream. Longer when a checkpoint costs the core task more than a twentieth of it
/// ([`COST_SHARE`]): 100,000 devices all changed take about 0.1 s (docs/scaling.md).
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);
const COST_SHARE: u32 = 20;

pub struct Follower {
    pub readings: Readings,
    pub core: mpsc::Sender<SourceEvent>,
    pub status: Arc<ClusterStatus>,
    pub metrics: Arc<ClusterMetrics>,
    /// Turns a file from the stream into its events (the mine files' intake), when this
    /// instance takes files.
    pub files: Option<Files>,
}

impl Follower {
    /// Apply the stream from after the checkpoint this boot resumed from, or from its
    /// start (docs/scaling.md, "Checkpoints"), following it until shutdown.
    pub async fn run(self, mut shutdown: broadcast::Receiver<()>) {
        let warn = RateLimitedLog::new(10_000);
        let view = self.status.view();
        let mut clock = StreamClock {
            now_ms: view.stream_time_ms,
            sequence: view.applied_sequence,
        };
        let mut first = view.resumed_from.is_some();
        let mut marked = Marker::new(clock.sequence);
        loop {
            let messages = tokio::select! {
                m = self.readings.follow(clock.sequence + 1) => m,
                _ = shutdown.recv() => return,
            };
            let mut messages = match messages {
                Ok(m) => m,
                Err(e) => {
                    if let Some(suppressed) = warn.allow("follow", crate::model::now_ms()) {
                        tracing::warn!(error = %e, suppressed, "cannot follow the readings stream yet; trying again");
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                        _ = shutdown.recv() => return,
                    }
                }
            };
            loop {
                let next = tokio::select! {
                    n = messages.next() => Some(n),
                    _ = tokio::time::sleep_until(marked.due()) => None,
                    _ = shutdown.recv() => return,
                };
                let Some(next) = next else {
                    // Nothing new for a while: checkpoint what was applied.
                    if marked.mark(&self, clock).await.is_err() {
                        return;
                    }
                    continue;
                };
                let Some(Ok((seq, payload))) = next else {
                    break;
                };
                if std::mem::take(&mut first) {
                    self.check_gap(clock.sequence, seq);
                }
                if self.apply(&mut clock, seq, &payload, &warn).await.is_err() {
                    return; // the core stopped
                }
                if marked.due() <= tokio::time::Instant::now()
                    && marked.mark(&self, clock).await.is_err()
                {
                    return;
                }
            }
        }
    }

    /// A resumed boot's first message should follow its checkpoint; the stream's retention
    /// may have dropped what came between.
    fn check_gap(&self, checkpoint: u64, first: u64) {
        let gap = first.saturating_sub(checkpoint + 1);
        if gap > 0 {
            self.status.set_gap(gap);
            tracing::error!(checkpoint, first, missing = gap, "the readings stream no longer holds the messages after this instance's checkpoint (its retention passed them): this instance's history misses them; figures over that time are not those of the other instances");
        }
    }

    /// One envelope to the core (a file as its events). What cannot be applied is skipped,
    /// counted and logged (at most every 10 s per kind).
    async fn apply(
        &self,
        clock: &mut StreamClock,
        seq: u64,
        payload: &[u8],
        warn: &RateLimitedLog,
    ) -> Result<(), ()> {
        let now = crate::model::now_ms();
        let ev = Envelope::from_json(payload).and_then(|env| clock.admit(seq, env));
        match ev {
            Ok(SourceEvent::File(f)) => match &self.files {
                Some(files) => {
                    for ev in files.apply(f).await {
                        self.core.send(ev).await.map_err(|_| ())?;
                    }
                    self.metrics.count(&self.metrics.followed, "applied", 1);
                }
                None => {
                    self.metrics.count(&self.metrics.followed, "unreadable", 1);
                    if let Some(suppressed) = warn.allow("file", now) {
                        tracing::warn!(sequence = seq, file = %f.name, suppressed, "readings stream: a file for a source this instance does not run (is [mine_files] the same on every instance?), skipped");
                    }
                }
            },
            Ok(ev) => {
                self.core.send(ev).await.map_err(|_| ())?;
                self.metrics.count(&self.metrics.followed, "applied", 1);
            }
            Err(e) => {
                clock.sequence = clock.sequence.max(seq);
                self.metrics.count(&self.metrics.followed, "unreadable", 1);
                if let Some(suppressed) = warn.allow("unreadable", now) {
                    tracing::warn!(sequence = seq, error = %e, suppressed, "readings stream: an envelope this gateway cannot read, skipped");
                }
            }
        }
        self.status.set_applied(*clock);
        Ok(())
    }
}

/// When the follower tells the core task the position it has handed over: every
/// [`CHECKPOINT_EVERY`], when something new was applied.
struct Marker {
    sequence: u64,
    at: tokio::time::Instant,
    every: Duration,
}

impl Marker {
    fn new(sequence: u64) -> Marker {
        Marker {
            sequence,
            at: tokio::time::Instant::now(),
            every: CHECKPOINT_EVERY,
        }
    }

    fn due(&self) -> tokio::time::Instant {
        self.at + self.every
    }

    /// Tell the core task the position `clock` (unless nothing new was applied), with the
    /// mines' state there.
    async fn mark(&mut self, f: &Follower, clock: StreamClock) -> Result<(), ()> {
        self.at = tokio::time::Instant::now();
        self.every = CHECKPOINT_EVERY.max(f.status.checkpoint_cost() * COST_SHARE);
        if clock.sequence == self.sequence {
            return Ok(());
        }
        self.sequence = clock.sequence;
        // The follower applies files one at a time: the mines are at this position now.
        let saved = match &f.files {
            Some(files) => files.saved().await,
            None => Vec::new(),
        };
        let ev = SourceEvent::Position {
            sequence: clock.sequence,
            now_ms: clock.now_ms,
            saved,
        };
        f.core.send(ev).await.map_err(|_| ())
    }
}
