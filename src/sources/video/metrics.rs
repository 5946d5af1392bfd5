//! The video endpoint's Prometheus metrics (`safegate_video_*`). Names and labels are part of
//! the contract; labels are small fixed sets.

use crate::telemetry::Metrics;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use std::sync::Arc;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MethodLabel {
    pub method: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabel {
    pub state: &'static str,
}

#[derive(Debug)]
pub struct VideoMetrics {
    /// SIP requests received, by method (`REGISTER`, `MESSAGE`, `NOTIFY`, `other`), and
    /// `response` for answers to the gateway's own requests.
    pub messages: Family<MethodLabel, Counter>,
    /// Inputs refused, by reason (the labels of docs/video.md's refusal tables).
    pub refused: Family<ReasonLabel, Counter>,
    /// Devices' changes of state as the registry decided them (`online`, `offline`).
    pub transitions: Family<StateLabel, Counter>,
    /// Catalogs by outcome: `complete`, `timed_out` (pages missing `catalog_timeout_s`
    /// after the first).
    pub catalogs: Family<StateLabel, Counter>,
}

impl VideoMetrics {
    pub fn register(metrics: &Metrics) -> Arc<VideoMetrics> {
        let m = VideoMetrics {
            messages: Family::default(),
            refused: Family::default(),
            transitions: Family::default(),
            catalogs: Family::default(),
        };
        metrics.register(
            "safegate_video_messages",
            "GB/T 28181 SIP messages received, by method (REGISTER, MESSAGE, NOTIFY, other, response)",
            m.messages.clone(),
        );
        metrics.register(
            "safegate_video_refused",
            "GB/T 28181 inputs refused, by reason (docs/video.md)",
            m.refused.clone(),
        );
        metrics.register(
            "safegate_video_transitions",
            "GB/T 28181 devices going online or offline, as the registry decided",
            m.transitions.clone(),
        );
        metrics.register(
            "safegate_video_catalogs",
            "GB/T 28181 catalogs gathered, by outcome (complete, timed_out)",
            m.catalogs.clone(),
        );
        Arc::new(m)
    }

    pub fn catalog(&self, state: &'static str) {
        self.catalogs.get_or_create(&StateLabel { state }).inc();
    }

    pub fn message(&self, method: &'static str) {
        self.messages.get_or_create(&MethodLabel { method }).inc();
    }

    pub fn refused(&self, reason: &'static str) {
        self.refused.get_or_create(&ReasonLabel { reason }).inc();
    }

    pub fn transition(&self, online: bool) {
        let state = if online { "online" } else { "offline" };
        self.transitions.get_or_create(&StateLabel { state }).inc();
    }
}
