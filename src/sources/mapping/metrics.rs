//! The mappings' Prometheus metrics (`safegate_mapping_*`). Names are part of the contract.
//! The `mapping` label is a configured name (`[a-z0-9_-]`, at most 64), so the families stay
//! as small as the configuration.

use crate::core::SourceEvent;
use crate::telemetry::Metrics;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use std::sync::Arc;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    pub mapping: String,
    /// `mapped` or `refused`.
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MappingReasonLabel {
    pub mapping: String,
    pub reason: &'static str,
}

#[derive(Debug, Default)]
pub struct MappingMetrics {
    /// Records mapped to a reading, or refused (a whole message refused counts once).
    pub records: Family<OutcomeLabel, Counter>,
    /// Refusals by reason.
    pub refused: Family<MappingReasonLabel, Counter>,
    /// The two `records` counters of each mapping seen, so that counting a message costs a
    /// lookup, not a label allocation.
    by_mapping: std::sync::RwLock<std::collections::HashMap<String, [Counter; 2]>>,
}

impl MappingMetrics {
    /// Make the metrics and register them with the gateway's.
    pub fn register(metrics: &Metrics) -> Arc<MappingMetrics> {
        let m = MappingMetrics::default();
        metrics.register(
            "safegate_mapping_records",
            "Records a payload mapping turned into a reading (outcome=mapped) or refused (outcome=refused)",
            m.records.clone(),
        );
        metrics.register(
            "safegate_mapping_refused",
            "Records or messages a payload mapping refused, by reason",
            m.refused.clone(),
        );
        Arc::new(m)
    }

    /// Count what one `Mapping::apply` produced.
    pub fn count(&self, mapping: &str, out: &[SourceEvent]) {
        let (mut mapped, mut refused) = (0u64, 0u64);
        for ev in out {
            match ev {
                SourceEvent::Reading { .. } => mapped += 1,
                SourceEvent::Rejected(r) => {
                    refused += 1;
                    self.refused
                        .get_or_create(&MappingReasonLabel {
                            mapping: mapping.to_string(),
                            reason: r.reason.as_str(),
                        })
                        .inc();
                }
                _ => {}
            }
        }
        let add = |[m, r]: &[Counter; 2]| {
            if mapped > 0 {
                m.inc_by(mapped);
            }
            if refused > 0 {
                r.inc_by(refused);
            }
        };
        let known = self.by_mapping.read().unwrap_or_else(|p| p.into_inner());
        match known.get(mapping) {
            Some(c) => add(c),
            None => {
                drop(known);
                add(&self.counters(mapping));
            }
        }
    }

    fn counters(&self, mapping: &str) -> [Counter; 2] {
        if let Some(c) = self
            .by_mapping
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(mapping)
        {
            return c.clone();
        }
        let c = ["mapped", "refused"].map(|outcome| {
            let label = OutcomeLabel {
                mapping: mapping.to_string(),
                outcome,
            };
            self.records.get_or_create(&label).clone()
        });
        let mut map = self.by_mapping.write().unwrap_or_else(|p| p.into_inner());
        map.insert(mapping.to_string(), c.clone());
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::{Origin, RawReading, ReadingStatus, Rejection};
    use crate::model::Reason;

    #[test]
    fn readings_and_refusals_are_counted_by_mapping_outcome_and_reason() {
        let metrics = Metrics::new();
        let m = MappingMetrics::register(&metrics);
        let origin = Origin {
            topic: "t".into(),
            element: Some(0),
        };
        let reading = SourceEvent::Reading {
            reading: RawReading {
                site: "s".into(),
                device: "d".into(),
                ts_ms: None,
                values: vec![("v".into(), 1.0)],
                status: ReadingStatus::Normal,
                cause: None,
            },
            origin: origin.clone(),
            received_ms: 0,
        };
        let refused = SourceEvent::Rejected(Rejection {
            reason: Reason::MappingFailed,
            origin,
            detail: String::new(),
            received_ms: 0,
        });
        m.count("acme", &[reading.clone(), reading, refused]);
        let text = metrics.encode();
        assert!(
            text.contains(r#"safegate_mapping_records_total{mapping="acme",outcome="mapped"} 2"#),
            "{text}"
        );
        assert!(
            text.contains(r#"safegate_mapping_records_total{mapping="acme",outcome="refused"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(
                r#"safegate_mapping_refused_total{mapping="acme",reason="mapping_failed"} 1"#
            ),
            "{text}"
        );
    }
}
