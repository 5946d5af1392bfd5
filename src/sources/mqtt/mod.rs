//! MQTT ingest: a persistent-session rumqttc client with our own reconnect back-off.

mod client;
pub mod config;
pub mod metrics;
pub mod payload;
pub mod signature;

pub use client::{options, run, MqttSourceError};
pub use payload::Limits;

use crate::core::inventory::SiteConfig;
use crate::telemetry::LinkStatus;
use config::MqttSettings;
use signature::{MissingKey, SigningKeys};
use std::sync::Arc;

/// The MQTT source: one persistent-session client subscribed to the gateway's topics.
pub struct MqttSource {
    settings: MqttSettings,
    keys: SigningKeys,
    /// Topics read through a mapping (subscribed beside the gateway's own).
    mapped: super::Mapped,
    status: Arc<LinkStatus>,
    metrics: Arc<metrics::MqttMetrics>,
}

impl MqttSource {
    /// From `[mqtt]` and the sites' signing keys (read from the environment variables the
    /// sites name: a missing one stops the start, naming the site and the variable).
    pub fn build(
        settings: &MqttSettings,
        sites: &[SiteConfig],
        mapped: &super::Mapped,
        gateway_metrics: &crate::telemetry::Metrics,
        status: &super::SourceStatus,
    ) -> Result<MqttSource, MissingKey> {
        Ok(MqttSource {
            settings: settings.clone(),
            keys: SigningKeys::from_config(sites)?,
            mapped: mapped.clone(),
            status: status.mqtt.clone(),
            metrics: metrics::MqttMetrics::register(gateway_metrics),
        })
    }
}

impl super::Source for MqttSource {
    fn name(&self) -> &'static str {
        "mqtt"
    }

    fn spawn(self: Box<Self>, cx: &super::SourceContext) -> Vec<tokio::task::JoinHandle<()>> {
        let (tx, rx, clock) = (cx.events.clone(), cx.shutdown.subscribe(), cx.clock.clone());
        let me = *self;
        vec![tokio::spawn(async move {
            if let Err(e) = run(me, tx, clock, rx).await {
                tracing::error!(error = %e, "MQTT source stopped");
            }
        })]
    }
}
