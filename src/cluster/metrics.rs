//! The cluster's Prometheus metrics (`safegate_cluster_*`).

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

#[derive(Debug)]
pub struct ClusterMetrics {
    /// Partitions this instance works on now.
    pub owned: Gauge,
    /// Lease rounds, by outcome (`ok`, `failed`).
    pub rounds: Family<OutcomeLabel, Counter>,
    /// Partitions taken (`started`), handed over (`handed_over`), or given up because their
    /// safe time ran out or the lease was lost (`lost`).
    pub changes: Family<OutcomeLabel, Counter>,
    /// Events put into the readings stream (`stored`, `duplicate`: JetStream had it).
    pub published: Family<OutcomeLabel, Counter>,
    /// Publish attempts that failed and were tried again (NATS away or electing).
    pub publish_errors: Family<OutcomeLabel, Counter>,
    /// Envelopes applied from the stream (`applied`), or unreadable (`unreadable`).
    pub followed: Family<OutcomeLabel, Counter>,
    /// Readings a partition writer committed to the outbox (`committed`), and batches whose
    /// acknowledgement was lost afterwards (`ack_lost`: JetStream delivers them again).
    pub stored: Family<OutcomeLabel, Counter>,
}

impl ClusterMetrics {
    pub fn register(metrics: &Metrics) -> Arc<ClusterMetrics> {
        let m = ClusterMetrics {
            owned: Gauge::default(),
            rounds: Family::default(),
            changes: Family::default(),
            published: Family::default(),
            publish_errors: Family::default(),
            followed: Family::default(),
            stored: Family::default(),
        };
        metrics.register(
            "safegate_cluster_partitions_owned",
            "Partitions this instance works on now",
            m.owned.clone(),
        );
        metrics.register(
            "safegate_cluster_rounds",
            "Lease rounds with the NATS bucket, by outcome (ok, failed)",
            m.rounds.clone(),
        );
        metrics.register(
            "safegate_cluster_partition_changes",
            "Partitions started, handed_over or lost by this instance",
            m.changes.clone(),
        );
        metrics.register(
            "safegate_cluster_published",
            "Events this instance put into the readings stream, by outcome (stored, duplicate)",
            m.published.clone(),
        );
        metrics.register(
            "safegate_cluster_publish_errors",
            "Publishes to the readings stream tried again (NATS away or electing)",
            m.publish_errors.clone(),
        );
        metrics.register(
            "safegate_cluster_followed",
            "Envelopes of the readings stream applied (applied) or unreadable (unreadable)",
            m.followed.clone(),
        );
        metrics.register(
            "safegate_cluster_stored",
            "Readings this instance's partition writers committed to the outbox (committed), batches whose acknowledgement was lost (ack_lost)",
            m.stored.clone(),
        );
        Arc::new(m)
    }

    pub fn count(&self, family: &Family<OutcomeLabel, Counter>, outcome: &'static str, n: usize) {
        family
            .get_or_create(&OutcomeLabel { outcome })
            .inc_by(n as u64);
    }
}
