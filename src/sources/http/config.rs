//! `[ingest]`: readings pushed over HTTPS (`POST /api/v1/ingest/{site}`, on the API's
//! listener and with its TLS). A key left out takes its value from `Default` below, the one
//! place the defaults are written.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngestSettings {
    /// Serve the push endpoints. Default true (they need a `platform` or `admin` token
    /// once `[[tokens]]` are configured, like every other endpoint).
    pub enabled: bool,
    /// Larger request bodies are refused with 413. Default 1048576 (1 MiB).
    pub max_body_bytes: usize,
    /// A request with more readings is refused whole (`batch_too_large`). Default 10000.
    pub max_records: usize,
    /// How long a request waits for its readings to be committed before it is answered
    /// 503 (the readings may still be committed: pushing again is safe, the store keeps one
    /// point per device and time). Default 30 s.
    pub commit_timeout_s: u64,
}

impl Default for IngestSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            max_body_bytes: 1024 * 1024,
            max_records: 10_000,
            commit_timeout_s: 30,
        }
    }
}

impl IngestSettings {
    /// The section's own rules; `err(key, message)` collects a problem.
    pub fn problems(&self, err: &mut dyn FnMut(&str, String)) {
        if !(1..=64 * 1024 * 1024).contains(&self.max_body_bytes) {
            err(
                "ingest.max_body_bytes",
                format!("{} is not between 1 and 67108864", self.max_body_bytes),
            );
        }
        if !(1..=100_000).contains(&self.max_records) {
            err(
                "ingest.max_records",
                format!("{} is not between 1 and 100000", self.max_records),
            );
        }
        if !(1..=600).contains(&self.commit_timeout_s) {
            err(
                "ingest.commit_timeout_s",
                format!("{} is not between 1 and 600", self.commit_timeout_s),
            );
        }
    }
}
