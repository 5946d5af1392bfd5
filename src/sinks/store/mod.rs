//! The way to the store: the in-memory queue in front of the outbox commit (`StoreQueue`),
//! and the HTTP client the forwarder writes with (`StoreClient`).
//!
//! Queue policy: bounded. The core task waits when it is full (back-pressure up to the
//! sources: nothing accepted is dropped). Side producers that must never stall (indicator
//! snapshots, audit copies) use `push`, which drops and counts when it is full; both are kept
//! elsewhere too (recomputable from the journal; `audit.log`).
//!
//! Beside it, the rest of the way: `commit` (group commit into the outbox), `outbox` (the
//! durable queue on disk), `forward` (outbox to store), `fresh` (committed batches handed to
//! the forwarder in memory), `overlap` (the points two writes in flight must not share) and
//! `record` (the line-protocol shapes).

pub mod commit;
pub mod config;
pub mod forward;
pub mod fresh;
pub mod outbox;
pub mod overlap;
pub mod record;

use crate::core::Receipt;
use crate::model::now_ms;
use crate::telemetry::{Metrics, RateLimitedLog};
use config::StoreSettings;
use record::Record;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store.url {0:?} is not a usable URL: {1}")]
    BadUrl(String, String),
    #[error("cannot build the HTTP client for the store: {0}")]
    Client(String),
}

/// What travels to the outbox commit, in order.
#[derive(Debug)]
pub enum Item {
    Records(Vec<Record>),
    /// Complete these once everything queued before them is committed.
    Receipts(Vec<Receipt>),
}

impl Item {
    pub fn points(&self) -> usize {
        match self {
            Item::Records(r) => r.len(),
            Item::Receipts(_) => 0,
        }
    }
}

/// The sending side, cloned by every producer.
#[derive(Clone)]
pub struct StoreQueue {
    tx: mpsc::Sender<Item>,
    metrics: Arc<Metrics>,
    warn: Arc<RateLimitedLog>,
}

impl StoreQueue {
    /// A queue holding about `capacity_points` records in chunks of `chunk` (the core's round).
    pub fn new(
        capacity_points: usize,
        chunk: usize,
        metrics: Arc<Metrics>,
    ) -> (StoreQueue, mpsc::Receiver<Item>) {
        let (tx, rx) = mpsc::channel((capacity_points / chunk.max(1)).max(8));
        let q = StoreQueue {
            tx,
            metrics,
            warn: Arc::new(RateLimitedLog::new(10_000)),
        };
        (q, rx)
    }

    /// Wait for room (the block policy). Errors only when the commit task has stopped.
    pub async fn send(&self, item: Item) -> Result<(), ()> {
        self.tx.send(item).await.map_err(|_| ())
    }

    /// Never waits: when the queue is full the record is dropped and counted.
    pub fn push(&self, r: Record) {
        self.push_all(vec![r]);
    }

    /// [`StoreQueue::push`] for records that go together (one round's indicator snapshots):
    /// they take one slot of the queue, not one each, so 1,000 sites' snapshots do not
    /// fill it; when it is full they are dropped together and counted.
    pub fn push_all(&self, records: Vec<Record>) {
        if records.is_empty() {
            return;
        }
        let n = records.len() as u64;
        if self.tx.try_send(Item::Records(records)).is_err() {
            self.metrics.store_points_dropped.inc_by(n);
            if let Some(suppressed) = self.warn.allow("store_queue_full", now_ms()) {
                tracing::warn!(
                    suppressed,
                    "store queue full: an indicator snapshot or audit copy was dropped (the outbox is behind; see /readyz)"
                );
            }
        }
    }
}

/// The store's answer to one write: status (none when no answer came), `Retry-After`, body.
#[derive(Debug)]
pub struct WriteAnswer {
    pub status: Option<u16>,
    pub retry_after: Option<String>,
    pub body: String,
}

/// Writes line protocol to InfluxDB 2's `/api/v2/write` (VictoriaMetrics takes the same).
///
/// Why reqwest and not influxdb2's `write_line_protocol`: the forwarder must honour
/// `Retry-After` on 429/503, and influxdb2 0.5 keeps only the status and body of an error.
/// The points themselves are still built with influxdb2's `DataPoint` (see `record`); this
/// sends the request influxdb2 would send, with the same query and `Token` header.
#[derive(Clone)]
pub struct StoreClient {
    http: reqwest::Client,
    url: url::Url,
    token: Option<String>,
}

/// InfluxDB 2's write endpoint under `base`, for `org` and `bucket`, with millisecond times
/// (as every line the gateway writes). The benchmark's reference writer uses it too.
pub fn write_url(base: &str, org: &str, bucket: &str) -> Result<url::Url, url::ParseError> {
    let mut url = url::Url::parse(base)?.join("api/v2/write")?;
    url.query_pairs_mut()
        .append_pair("org", org)
        .append_pair("bucket", bucket)
        .append_pair("precision", "ms");
    Ok(url)
}

impl StoreClient {
    pub fn new(s: &StoreSettings) -> Result<StoreClient, StoreError> {
        let url = write_url(&s.url, &s.org, &s.bucket)
            .map_err(|e| StoreError::BadUrl(s.url.clone(), e.to_string()))?;
        let token = s
            .token_env
            .as_ref()
            .and_then(|v| std::env::var(v).ok())
            .filter(|t| !t.is_empty());
        let http = reqwest::Client::builder()
            .timeout(Duration::from_millis(s.timeout_ms))
            .build()
            .map_err(|e| StoreError::Client(e.to_string()))?;
        Ok(StoreClient { http, url, token })
    }

    pub async fn write(&self, body: bytes::Bytes) -> WriteAnswer {
        let mut req = self
            .http
            .post(self.url.clone())
            .header("Content-Type", "text/plain; charset=utf-8")
            .body(body);
        if let Some(t) = &self.token {
            req = req.header("Authorization", format!("Token {t}"));
        }
        match req.send().await {
            Ok(resp) => {
                let status = resp.status().as_u16();
                let retry_after = resp
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
                let body = resp.text().await.unwrap_or_default();
                WriteAnswer {
                    status: Some(status),
                    retry_after,
                    body,
                }
            }
            Err(e) => WriteAnswer {
                status: None,
                retry_after: None,
                body: e.to_string(),
            },
        }
    }
}

#[cfg(test)]
mod queue_tests {
    use super::record::Tags;
    use super::*;

    fn state(i: usize) -> Record {
        Record::DeviceState {
            tags: Tags {
                site: "s".into(),
                device: format!("d{i}").into(),
                kind: "temperature",
                enterprise: None,
                zone: None,
                system: None,
                gas: None,
            },
            at_ms: i as i64,
            online: true,
            cause: "reading",
        }
    }

    /// 1,001 snapshots of one round take one slot of a queue of 8; once the queue is full a
    /// batch is dropped whole, and counted record by record.
    #[test]
    fn records_pushed_together_take_one_slot_and_are_dropped_together() {
        let metrics = Arc::new(Metrics::new());
        let (q, mut rx) = StoreQueue::new(8, 1, metrics.clone());
        q.push_all((0..1001).map(state).collect());
        let Ok(Item::Records(first)) = rx.try_recv() else {
            panic!("one item")
        };
        assert_eq!(first.len(), 1001);
        for i in 0..8 {
            q.push(state(i));
        }
        q.push_all((0..5).map(state).collect());
        assert_eq!(metrics.store_points_dropped.get(), 5);
        q.push_all(vec![]);
        assert_eq!(metrics.store_points_dropped.get(), 5, "nothing to drop");
    }
}
