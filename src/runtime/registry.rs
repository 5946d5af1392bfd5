//! The source registry: the sources the gateway runs, each built from its part of the
//! configuration. Adding a source is a folder under `src/sources/` (its section, checks,
//! build, tasks, status and metrics; see `docs/architecture.md`) and one line below.

use super::error::StartError;
use crate::config::Config;
use crate::sources::{modbus, mqtt, Source, SourceStatus};
use crate::telemetry::Metrics;

pub fn sources(
    cfg: &Config,
    metrics: &Metrics,
    status: &mut SourceStatus,
) -> Result<Vec<Box<dyn Source>>, StartError> {
    Ok(vec![
        Box::new(mqtt::MqttSource::build(
            &cfg.mqtt,
            &cfg.inventory.sites,
            metrics,
            status,
        )?),
        Box::new(modbus::ModbusSource::build(&cfg.inventory, metrics, status)),
    ])
}
