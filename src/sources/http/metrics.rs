//! The HTTP push source's Prometheus metrics (`safegate_ingest_*`). Names are part of the
//! contract.

use crate::telemetry::Metrics;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use std::sync::Arc;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    pub outcome: &'static str,
}

#[derive(Debug)]
pub struct IngestMetrics {
    /// Push requests by outcome (`committed`, `partial`, `refused`, `holding`, ...).
    pub requests: Family<OutcomeLabel, Counter>,
    /// Readings committed from push requests.
    pub readings: Counter,
    /// The gateway's `safegate_messages_received`, shared: a request is one message.
    pub messages_received: Counter,
}

impl IngestMetrics {
    /// Make the metrics and register them with the gateway's.
    pub fn register(metrics: &Metrics) -> Arc<IngestMetrics> {
        let m = IngestMetrics {
            requests: Family::default(),
            readings: Counter::default(),
            messages_received: metrics.messages_received.clone(),
        };
        metrics.register(
            "safegate_ingest_requests",
            "HTTP push requests by outcome (committed, partial, refused, holding, not_durable, timeout, stopping, forbidden, unknown_site, unknown_mapping)",
            m.requests.clone(),
        );
        metrics.register(
            "safegate_ingest_readings",
            "Readings committed from HTTP push requests",
            m.readings.clone(),
        );
        Arc::new(m)
    }

    pub fn outcome(&self, outcome: &'static str) {
        self.requests.get_or_create(&OutcomeLabel { outcome }).inc();
    }
}
