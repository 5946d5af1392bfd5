//! Ingress in cluster mode: what the sources accept goes into the readings stream, each
//! event to its site's partition, and a message's receipt (its MQTT PUBACK, its HTTP answer)
//! completes only once JetStream acknowledged every event before it. Nothing reaches this
//! instance's core directly but what is local to it (its own refusals of unreadable input);
//! the core applies the stream (`follow.rs`), as every other instance does.

use super::metrics::ClusterMetrics;
use super::stream::Readings;
use crate::core::cluster::envelope::{Envelope, EnvelopeError};
use crate::core::cluster::partition_of;
use crate::core::event::{Reason, SourceEvent};
use crate::core::Receipt;
use futures::stream::FuturesOrdered;
use futures::StreamExt;
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, mpsc};

/// Publishes awaiting JetStream's answer; beyond this the relay stops taking events, and
/// the sources' channel fills (back-pressure to the broker, as a slow core gives).
const IN_FLIGHT: usize = 4_096;
/// One publish attempt's bound; the relay tries again after it, for as long as NATS is away
/// (the message stays unacknowledged meanwhile, held by the broker).
const ATTEMPT: Duration = Duration::from_secs(10);
const BATCH: usize = 1_024;

type Pending = Pin<Box<dyn Future<Output = Done> + Send>>;

enum Done {
    Published(bool),
    /// Refused for good (too large for a NATS message): the message it is part of is not
    /// acknowledged, and nothing behind it waits for it.
    Refused,
    Receipt(Receipt),
}

pub struct Relay {
    pub readings: Readings,
    pub partitions: u32,
    /// This instance's core: only local events (refusals) go straight to it.
    pub core: mpsc::Sender<SourceEvent>,
    pub metrics: Arc<ClusterMetrics>,
    /// The ingress time of the oldest event not yet in the stream (`i64::MAX`: none): this
    /// instance's ticks stay behind it, so a stalled publish (a NATS election) does not let
    /// time pass the readings it holds.
    pub held_since: Arc<AtomicI64>,
    /// Refusals logged at most every 10 s.
    pub warn: Arc<crate::telemetry::RateLimitedLog>,
}

/// Publishes and receipts in the order they came, with the publishes' ingress times (they
/// complete in that order too).
#[derive(Default)]
struct Queue {
    futures: FuturesOrdered<Pending>,
    times: VecDeque<i64>,
}

impl Queue {
    fn publish(&mut self, at: i64, f: Pending) {
        self.futures.push_back(f);
        self.times.push_back(at);
    }

    fn receipt(&mut self, r: Receipt) {
        self.futures.push_back(Box::pin(async { Done::Receipt(r) }));
    }

    fn len(&self) -> usize {
        self.futures.len()
    }

    fn oldest(&self) -> i64 {
        self.times.front().copied().unwrap_or(i64::MAX)
    }
}

impl Relay {
    pub async fn run(
        self,
        mut rx: mpsc::Receiver<SourceEvent>,
        mut shutdown: broadcast::Receiver<()>,
    ) {
        let mut pending = Queue::default();
        let mut buf = Vec::with_capacity(BATCH);
        let mut open = true;
        // An event refused since the last receipt: that receipt fails.
        let mut refused = false;
        while open || pending.len() > 0 {
            tokio::select! {
                n = rx.recv_many(&mut buf, BATCH), if open && pending.len() < IN_FLIGHT => {
                    if n == 0 { open = false; }
                    for ev in buf.drain(..) {
                        if self.take(ev, &mut pending).await.is_err() {
                            return;
                        }
                    }
                    self.held_since.store(pending.oldest(), Ordering::Relaxed);
                }
                Some(done) = pending.futures.next() => match done {
                    Done::Published(duplicate) => {
                        pending.times.pop_front();
                        self.held_since.store(pending.oldest(), Ordering::Relaxed);
                        let outcome = if duplicate { "duplicate" } else { "stored" };
                        self.metrics.count(&self.metrics.published, outcome, 1);
                    }
                    Done::Refused => {
                        pending.times.pop_front();
                        self.held_since.store(pending.oldest(), Ordering::Relaxed);
                        self.metrics.count(&self.metrics.published, "too_large", 1);
                        refused = true;
                    }
                    // Every publish before it went through, or its message had one refused
                    // (dropped: not durable, so not acknowledged).
                    Done::Receipt(r) if std::mem::take(&mut refused) => drop(r),
                    Done::Receipt(r) => r.done(),
                },
                _ = shutdown.recv() => return,
            }
        }
    }

    /// One source event: published, or handed to the core when it is local.
    async fn take(&self, ev: SourceEvent, pending: &mut Queue) -> Result<(), ()> {
        match ev {
            SourceEvent::Checkpoint(r) => pending.receipt(r),
            SourceEvent::Message(m) => {
                let m = *m;
                for e in m.events {
                    // The sender is told of the refusals made here (a refusal by the core,
                    // an unknown device, is made later, on every instance, from the stream).
                    if let (SourceEvent::Rejected(r), Ok(mut refused)) = (&e, m.refused.lock()) {
                        refused.push(r.clone());
                    }
                    Box::pin(self.take(e, pending)).await?;
                }
                pending.receipt(m.receipt);
            }
            // This instance's own MQTT connection is not the deployment's: every instance
            // must journal the same history (docs/scaling.md). A polled link is its owner's.
            SourceEvent::Link { link, .. } | SourceEvent::Poll { link, .. }
                if &*link == crate::core::event::MQTT_LINK => {}
            ev => match Envelope::of(&ev) {
                Ok(env) => pending.publish(env.received_ms, self.publish(env)),
                Err(EnvelopeError::NotFinite(ch)) => {
                    let mut ev = ev;
                    let detail = format!("channel {ch:?} is not a finite number");
                    ev.refuse(Reason::InvalidValue, detail);
                    self.core.send(ev).await.map_err(|_| ())?;
                }
                // Refusals of unreadable input: counted where they were made.
                Err(_) => self.core.send(ev).await.map_err(|_| ())?,
            },
        }
        Ok(())
    }

    /// Publish until JetStream takes it (or the relay stops); an envelope too large for a
    /// NATS message is refused at once, logged at most every 10 s.
    fn publish(&self, env: Envelope) -> Pending {
        let (readings, metrics) = (self.readings.clone(), self.metrics.clone());
        let p = partition_of(env.partition_key(), self.partitions);
        let warn = self.warn.clone();
        Box::pin(async move {
            loop {
                match readings.publish(p, &env, ATTEMPT).await {
                    Ok(a) => return Done::Published(a.duplicate),
                    Err(e @ crate::cluster::ClusterError::TooLarge { .. }) => {
                        if let Some(suppressed) = warn.allow("too_large", crate::model::now_ms()) {
                            tracing::warn!(error = %e, suppressed, "not put into the readings stream, and not acknowledged to its sender");
                        }
                        return Done::Refused;
                    }
                    // NATS away or electing: the message waits, unacknowledged (a stop
                    // drops this future, and the receipt fails with it).
                    Err(e) => {
                        metrics.count(&metrics.publish_errors, "retried", 1);
                        tracing::debug!(error = %e, "publish to the readings stream, retrying");
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                }
            }
        })
    }
}
