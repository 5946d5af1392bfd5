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
    /// Apply the stream from its start (this instance's state is rebuilt from it at every
    /// start, see docs/scaling.md), following it until shutdown.
    pub async fn run(self, mut shutdown: broadcast::Receiver<()>) {
        let warn = RateLimitedLog::new(10_000);
        let mut clock = StreamClock::default();
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
                    n = messages.next() => n,
                    _ = shutdown.recv() => return,
                };
                let Some(Ok((seq, payload))) = next else {
                    break;
                };
                if self.apply(&mut clock, seq, &payload, &warn).await.is_err() {
                    return; // the core stopped
                }
            }
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
