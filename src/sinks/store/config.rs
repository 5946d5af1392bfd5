//! `[store]` (the InfluxDB 2 write endpoint) and `[outbox]` (the durable queue before it).
//! A key left out takes its value from `Default`, the one place the defaults are written.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreSettings {
    /// InfluxDB 2 base URL, e.g. `http://127.0.0.1:8086`.
    pub url: String,
    pub org: String,
    pub bucket: String,
    /// Name of the environment variable holding the API token (empty or unset: no token).
    pub token_env: Option<String>,
    /// Points per write request. Default 5000.
    pub batch_size: usize,
    /// Accepted so older files load; unused since the outbox (the forwarder writes what is
    /// committed at once). Default 1000 ms.
    pub flush_interval_ms: u64,
    /// Records held in memory on their way to the outbox commit. When full, readings wait
    /// (back-pressure to the sources); indicator snapshots and audit copies are dropped and
    /// counted (both are recomputable or kept elsewhere). Default 200000.
    pub queue_capacity: usize,
    /// Cadence of site and region indicator snapshots. Default 60 s.
    pub indicator_interval_s: u64,
    /// Per-request timeout. Default 10000 ms.
    pub timeout_ms: u64,
    /// Writes the forwarder keeps in flight at once, each on its own connection, so the store
    /// parses one while the next travels. With 1, each device's points reach the store in the
    /// order they were committed. With more, writes may land in any order, but two writes in
    /// flight never hold the same point (series and time), so the store ends as if they had
    /// been written one after the other; after a failed write the forwarder goes back to one
    /// at a time until it is through. Worth it when the store has cores of its own (see
    /// docs/performance.md). 1 to 16. Default 1.
    pub writes_in_flight: usize,
}

impl Default for StoreSettings {
    /// No store is configured without a `[store]` section; these fill the keys a section
    /// leaves out, and the empty url, org and bucket are refused by `problems`.
    fn default() -> Self {
        Self {
            url: String::new(),
            org: String::new(),
            bucket: String::new(),
            token_env: None,
            batch_size: 5000,
            flush_interval_ms: 1000,
            queue_capacity: 200_000,
            indicator_interval_s: 60,
            timeout_ms: 10_000,
            writes_in_flight: 1,
        }
    }
}

/// `[outbox]`: the durable queue on disk between the core and the store (`data_dir/outbox.db`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutboxSettings {
    /// Disk budget for pending line protocol, bytes. When it is reached the gateway stops
    /// acknowledging MQTT messages and pauses Modbus polling until the store drains the
    /// backlog; nothing is dropped. Default 1073741824 (1 GiB).
    pub max_bytes: u64,
    /// Group commit: records are committed (one fsync) at least this often while they arrive;
    /// an MQTT acknowledgement waits for its commit. Default 50 ms.
    pub commit_interval_ms: u64,
    /// Free-space watermark on the filesystem of `data_dir`: below it the gateway holds MQTT
    /// acknowledgements and pauses Modbus polling, as at the budget. The floor in effect is
    /// the smaller of this and `min_free_percent` of the filesystem. Default 268435456 (256 MiB).
    pub min_free_bytes: u64,
    /// The same floor as a share of the filesystem's size, for small disks. Default 5.
    pub min_free_percent: f64,
    /// A file of this size (`data_dir/space.reserve`) kept so that deletes and checkpoints
    /// have room when another process fills the disk; released then, written again once
    /// space returns. 0: none. Default 8388608 (8 MiB).
    pub reserve_bytes: u64,
    /// Bound on the write-ahead log of `outbox.db` and `state.db`: checkpointed at this size
    /// and truncated back to it after each checkpoint. Default 4194304 (4 MiB).
    pub wal_max_bytes: u64,
}

impl Default for OutboxSettings {
    fn default() -> Self {
        Self {
            max_bytes: 1 << 30,
            commit_interval_ms: 50,
            min_free_bytes: 256 << 20,
            min_free_percent: 5.0,
            reserve_bytes: 8 << 20,
            wal_max_bytes: 4 << 20,
        }
    }
}

impl StoreSettings {
    /// The section's own rules; `err(key, message)` collects a problem.
    pub fn problems(&self, err: &mut dyn FnMut(&str, String)) {
        match url::Url::parse(&self.url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => {}
            _ if self.url.is_empty() => err(
                "store.url",
                "is required: the InfluxDB 2 base URL, like http://127.0.0.1:8086".into(),
            ),
            _ => err(
                "store.url",
                format!("{:?} must look like http://host:port", self.url),
            ),
        }
        if self.org.is_empty() || self.bucket.is_empty() {
            err("store.bucket", "org and bucket must not be empty".into());
        }
        if self.batch_size == 0 || self.queue_capacity < self.batch_size {
            err(
                "store.queue_capacity",
                format!(
                    "batch_size ({}) must be positive and queue_capacity ({}) at least batch_size",
                    self.batch_size, self.queue_capacity
                ),
            );
        }
        if !(1..=16).contains(&self.writes_in_flight) {
            err(
                "store.writes_in_flight",
                format!(
                    "{} is not between 1 and 16 (writes the forwarder keeps in flight at once)",
                    self.writes_in_flight
                ),
            );
        }
        if self.indicator_interval_s == 0 || self.flush_interval_ms == 0 {
            err(
                "store.indicator_interval_s",
                "indicator_interval_s and flush_interval_ms must be positive".into(),
            );
        }
    }
}

impl OutboxSettings {
    /// The section's own rules (checked when a store is configured: without one there is
    /// no outbox).
    pub fn problems(&self, err: &mut dyn FnMut(&str, String)) {
        if self.max_bytes < 4096 {
            err(
                "outbox.max_bytes",
                format!(
                    "{} is below 4096: the outbox could not hold even one batch",
                    self.max_bytes
                ),
            );
        }
        if self.commit_interval_ms == 0 {
            err("outbox.commit_interval_ms", "must be positive".into());
        }
        let pct = self.min_free_percent;
        if !(pct.is_finite() && (0.0..=100.0).contains(&pct)) {
            err(
                "outbox.min_free_percent",
                format!("{pct} is not a share of the disk between 0 and 100"),
            );
        }
        if self.wal_max_bytes < 65_536 {
            err(
                "outbox.wal_max_bytes",
                format!(
                    "{} is below 65536: SQLite would checkpoint on nearly every commit",
                    self.wal_max_bytes
                ),
            );
        }
    }
}
