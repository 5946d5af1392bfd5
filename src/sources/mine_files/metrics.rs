//! The mine files' Prometheus metrics (`safegate_mine_files_*`). Names are part of the
//! contract.

use crate::telemetry::Metrics;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use std::sync::Arc;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    pub outcome: &'static str,
}

/// The FTP server's counts.
#[derive(Debug)]
pub struct FtpMetrics {
    /// Control connections by outcome: `accepted`, `busy` (over `max_sessions`, refused 421).
    pub sessions: Family<OutcomeLabel, Counter>,
    /// Sessions open now.
    pub sessions_open: Gauge,
    /// Logins refused (unknown mine code or wrong password).
    pub logins_refused: Counter,
    /// Uploads by outcome: `applied`, `duplicate`, `refused`, `retry`, `too_large`, `bad_name`.
    pub uploads: Family<OutcomeLabel, Counter>,
}

impl FtpMetrics {
    /// Make the metrics and register them with the gateway's.
    pub fn register(metrics: &Metrics) -> Arc<FtpMetrics> {
        let m = FtpMetrics {
            sessions: Family::default(),
            sessions_open: Gauge::default(),
            logins_refused: Counter::default(),
            uploads: Family::default(),
        };
        metrics.register(
            "safegate_mine_files_ftp_sessions",
            "FTP control connections by outcome (accepted, busy: over max_sessions, refused 421)",
            m.sessions.clone(),
        );
        metrics.register(
            "safegate_mine_files_ftp_sessions_open",
            "FTP sessions open now",
            m.sessions_open.clone(),
        );
        metrics.register(
            "safegate_mine_files_ftp_logins_refused",
            "FTP logins refused (unknown mine code or wrong password)",
            m.logins_refused.clone(),
        );
        metrics.register(
            "safegate_mine_files_ftp_uploads",
            "Files uploaded over FTP by outcome (applied, duplicate, refused, retry, too_large, bad_name)",
            m.uploads.clone(),
        );
        Arc::new(m)
    }

    pub fn session(&self, outcome: &'static str) {
        self.sessions.get_or_create(&OutcomeLabel { outcome }).inc();
    }

    pub fn upload(&self, outcome: &'static str) {
        self.uploads.get_or_create(&OutcomeLabel { outcome }).inc();
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FileLabel {
    pub file_type: &'static str,
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EncodingLabel {
    pub encoding: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RecordLabel {
    pub outcome: &'static str,
}

#[derive(Debug, Default)]
pub struct MineMetrics {
    /// Files by type and outcome (applied, partial, duplicate, refused, retry, incomplete).
    pub files: Family<FileLabel, Counter>,
    /// Records of applied files, accepted or refused.
    pub records: Family<RecordLabel, Counter>,
    /// Files by the encoding they were decoded from.
    pub encodings: Family<EncodingLabel, Counter>,
    /// Files older than one of their type already applied (`late_file`).
    pub late: Counter,
    /// Files applied before, taken again and not re-applied (`duplicate_file`).
    pub duplicate: Counter,
}

impl MineMetrics {
    /// Make the metrics and register them with the gateway's.
    pub fn register(metrics: &Metrics) -> Arc<MineMetrics> {
        let m = MineMetrics::default();
        metrics.register(
            "safegate_mine_files_taken",
            "Mine networking files by type and outcome (applied, partial, duplicate, refused, retry, incomplete)",
            m.files.clone(),
        );
        metrics.register(
            "safegate_mine_files_records",
            "Records of applied mine files, accepted or refused",
            m.records.clone(),
        );
        metrics.register(
            "safegate_mine_files_encodings",
            "Mine files by the encoding they were written in (utf8, gb18030)",
            m.encodings.clone(),
        );
        metrics.register(
            "safegate_mine_files_late",
            "Mine files older than one of their type already applied: stored, liveness not rewound",
            m.late.clone(),
        );
        metrics.register(
            "safegate_mine_files_duplicate",
            "Mine files (same name and content) taken again and not re-applied",
            m.duplicate.clone(),
        );
        Arc::new(m)
    }

    pub fn file(&self, file_type: &'static str, outcome: &'static str) {
        self.files
            .get_or_create(&FileLabel { file_type, outcome })
            .inc();
    }

    pub fn records(&self, accepted: usize, refused: usize) {
        let by = |outcome| self.records.get_or_create(&RecordLabel { outcome }).clone();
        by("accepted").inc_by(accepted as u64);
        by("refused").inc_by(refused as u64);
    }

    pub fn encoding(&self, encoding: &'static str) {
        self.encodings
            .get_or_create(&EncodingLabel { encoding })
            .inc();
    }
}
