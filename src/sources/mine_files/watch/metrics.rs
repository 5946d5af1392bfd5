//! The watched folder's Prometheus metrics (`safegate_mine_files_watch_*`). Names are part of
//! the contract.

use crate::telemetry::Metrics;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use std::sync::Arc;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    pub kind: &'static str,
}

#[derive(Debug)]
pub struct WatchMetrics {
    /// Files handled, by outcome (`applied`, `duplicate`, `quarantined`, `retry`,
    /// `incomplete`, `changed`, `vanished`, `failed`).
    pub files: Family<OutcomeLabel, Counter>,
    /// Files moved to `quarantine/`, by reason (the taker's, or `too_large`, `truncated`,
    /// `bad_name`).
    pub quarantined: Family<ReasonLabel, Counter>,
    /// Trouble with the folder, by kind (`non_utf8_name`, `read_dir`, `metadata`,
    /// `not_a_file`, `too_deep`, `read`, `move`, `quarantine`, `sweep`).
    pub scan_errors: Family<KindLabel, Counter>,
    /// Scans of the folder done.
    pub scans: Counter,
    /// Dated folders removed from `done/` by the sweep.
    pub swept: Counter,
}

impl WatchMetrics {
    /// Make the metrics and register them with the gateway's.
    pub fn register(metrics: &Metrics) -> Arc<WatchMetrics> {
        let m = WatchMetrics {
            files: Family::default(),
            quarantined: Family::default(),
            scan_errors: Family::default(),
            scans: Counter::default(),
            swept: Counter::default(),
        };
        metrics.register(
            "safegate_mine_files_watch_files",
            "Files from the watched folder by outcome (applied, duplicate, quarantined, retry, incomplete, changed, vanished, failed)",
            m.files.clone(),
        );
        metrics.register(
            "safegate_mine_files_watch_quarantined",
            "Files from the watched folder moved to quarantine/, by reason",
            m.quarantined.clone(),
        );
        metrics.register(
            "safegate_mine_files_watch_scan_errors",
            "Trouble reading or moving in the watched folder, by kind (non_utf8_name, read_dir, metadata, not_a_file, too_deep, read, move, quarantine, sweep)",
            m.scan_errors.clone(),
        );
        metrics.register(
            "safegate_mine_files_watch_scans",
            "Scans of the watched folder",
            m.scans.clone(),
        );
        metrics.register(
            "safegate_mine_files_watch_swept",
            "Dated folders older than keep_days removed from done/",
            m.swept.clone(),
        );
        Arc::new(m)
    }

    pub fn outcome(&self, outcome: &'static str) {
        self.files.get_or_create(&OutcomeLabel { outcome }).inc();
    }

    pub fn quarantine(&self, reason: &'static str) {
        self.quarantined
            .get_or_create(&ReasonLabel { reason })
            .inc();
    }

    pub fn error(&self, kind: &'static str) {
        self.scan_errors.get_or_create(&KindLabel { kind }).inc();
    }

    /// The count of one kind of trouble (for tests and status).
    pub fn errors_of(&self, kind: &'static str) -> u64 {
        self.scan_errors.get_or_create(&KindLabel { kind }).get()
    }
}
