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
