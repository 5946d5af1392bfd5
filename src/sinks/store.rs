//! The store writer: batches records by size and time, writes them as line protocol through
//! the influxdb2 crate, and retries failed batches with back-off.
//!
//! Queue policy: the queue in front of the writer is bounded (`store.queue_capacity` points).
//! When it is full, new points are dropped and counted (`safegate_store_points_dropped_total`),
//! so a store outage can never stall ingest or liveness. The durable outbox replaces this.

use super::record::Record;
use crate::backoff::Backoff;
use crate::config::StoreSettings;
use crate::telemetry::{now_ms, Metrics, RateLimitedLog, StoreHealth, StoreStatus};
use influxdb2::api::write::TimestampPrecision;
use influxdb2::RequestError;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, mpsc};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store.url {0:?} is not a usable URL: {1}")]
    BadUrl(String, String),
    #[error("cannot build the HTTP client for the store: {0}")]
    Client(String),
}

/// How long an idle queue may hold back a partial batch.
const LINGER: Duration = Duration::from_millis(20);

/// The sending side used by the core task: never blocks.
#[derive(Clone)]
pub struct StoreQueue {
    tx: mpsc::Sender<Record>,
    metrics: Arc<Metrics>,
    warn: Arc<RateLimitedLog>,
}

impl StoreQueue {
    pub fn push(&self, r: Record) {
        if self.tx.try_send(r).is_err() {
            self.metrics.store_points_dropped.inc();
            if let Some(suppressed) = self.warn.allow("store_queue_full", now_ms()) {
                tracing::warn!(
                    suppressed,
                    "store queue full: dropping new points (is the store down? see /readyz)"
                );
            }
        }
    }
}

pub struct StoreWriter {
    settings: StoreSettings,
    client: influxdb2::Client,
    rx: mpsc::Receiver<Record>,
    metrics: Arc<Metrics>,
    status: Arc<StoreStatus>,
}

pub fn channel(
    settings: &StoreSettings,
    metrics: Arc<Metrics>,
    status: Arc<StoreStatus>,
) -> Result<(StoreQueue, StoreWriter), StoreError> {
    url::Url::parse(&settings.url)
        .map_err(|e| StoreError::BadUrl(settings.url.clone(), e.to_string()))?;
    let token = settings
        .token_env
        .as_ref()
        .and_then(|v| std::env::var(v).ok())
        .unwrap_or_default();
    let http = reqwest::Client::builder().timeout(Duration::from_millis(settings.timeout_ms));
    let client = influxdb2::ClientBuilder::with_builder(
        http,
        settings.url.clone(),
        settings.org.clone(),
        token,
    )
    .build()
    .map_err(|e| StoreError::Client(e.to_string()))?;
    let (tx, rx) = mpsc::channel(settings.queue_capacity);
    Ok((
        StoreQueue {
            tx,
            metrics: metrics.clone(),
            warn: Arc::new(RateLimitedLog::new(10_000)),
        },
        StoreWriter {
            settings: settings.clone(),
            client,
            rx,
            metrics,
            status,
        },
    ))
}

impl StoreWriter {
    /// Run until shutdown; then flush what is queued, once, with a short deadline.
    pub async fn run(mut self, mut shutdown: broadcast::Receiver<()>) {
        let flush = Duration::from_millis(self.settings.flush_interval_ms);
        let max = self.settings.batch_size;
        let mut batch: Vec<Record> = Vec::with_capacity(max);
        let mut body = Vec::with_capacity(max * 128);
        let mut backoff = Backoff::new(200, 30_000);
        let warn = RateLimitedLog::new(10_000);
        let mut stopping = false;
        let mut encoder = super::record::LineEncoder::default();
        loop {
            // Fill a batch: up to `max` points, or whatever came within `flush` of the first.
            if !stopping && batch.is_empty() {
                tokio::select! {
                    _ = shutdown.recv() => stopping = true,
                    n = self.rx.recv_many(&mut batch, max) => if n == 0 { stopping = true },
                }
            }
            if !stopping {
                // Write when the batch is full, when `flush` has passed since its first point,
                // or as soon as the queue has been idle for LINGER: a burst's tail is not held
                // back for the whole flush interval.
                let deadline = tokio::time::Instant::now() + flush;
                while batch.len() < max {
                    let room = max - batch.len();
                    let idle = tokio::time::Instant::now() + LINGER;
                    tokio::select! {
                        _ = shutdown.recv() => { stopping = true; break }
                        _ = tokio::time::sleep_until(deadline.min(idle)) => break,
                        n = self.rx.recv_many(&mut batch, room) => if n == 0 { stopping = true; break },
                    }
                }
            }
            if stopping {
                while batch.len() < max {
                    match self.rx.try_recv() {
                        Ok(r) => batch.push(r),
                        Err(_) => break,
                    }
                }
            }
            self.metrics.store_queue_depth.set(self.rx.len() as i64);
            if batch.is_empty() {
                if stopping {
                    return;
                }
                continue;
            }
            body.clear();
            let mut points = 0u64;
            for r in batch.drain(..) {
                match encoder.encode(&r, &mut body) {
                    Ok(()) => points += 1,
                    Err(e) => {
                        tracing::error!(error = %e, record = ?r, "cannot encode a point; skipped")
                    }
                }
            }
            let payload = bytes::Bytes::copy_from_slice(&body);
            loop {
                match self.write(payload.clone()).await {
                    Ok(()) => {
                        self.metrics.store_points_written.inc_by(points);
                        self.status.set(StoreHealth::Ok, None);
                        backoff.reset();
                        break;
                    }
                    Err(WriteFailure::Rejected(msg)) => {
                        // Retrying the same bytes cannot succeed.
                        self.metrics.store_write_failures.inc();
                        self.metrics.store_points_dropped.inc_by(points);
                        tracing::error!(error = %msg, points, "store rejected a batch; it is dropped");
                        break;
                    }
                    Err(WriteFailure::Retry(msg)) => {
                        self.metrics.store_write_failures.inc();
                        self.status.set(StoreHealth::Failing, Some(msg.clone()));
                        if let Some(suppressed) = warn.allow("store_write", now_ms()) {
                            tracing::warn!(url = %self.settings.url, error = %msg, suppressed, "store write failed; retrying with back-off");
                        }
                        if stopping {
                            tracing::warn!(points, "shutting down with an unwritten batch");
                            return;
                        }
                        tokio::select! {
                            _ = shutdown.recv() => stopping = true,
                            _ = tokio::time::sleep(backoff.next_delay()) => {}
                        }
                        self.metrics.store_queue_depth.set(self.rx.len() as i64);
                    }
                }
            }
        }
    }

    async fn write(&self, body: bytes::Bytes) -> Result<(), WriteFailure> {
        let r = self
            .client
            .write_line_protocol_with_precision(
                &self.settings.org,
                &self.settings.bucket,
                body,
                TimestampPrecision::Milliseconds,
            )
            .await;
        match r {
            Ok(()) => Ok(()),
            Err(RequestError::Http { status, text })
                if status.is_client_error() && status.as_u16() != 408 && status.as_u16() != 429 =>
            {
                Err(WriteFailure::Rejected(format!("HTTP {status}: {text}")))
            }
            Err(e) => Err(WriteFailure::Retry(e.to_string())),
        }
    }
}

enum WriteFailure {
    Retry(String),
    Rejected(String),
}
