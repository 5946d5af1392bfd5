//! The source registry: the sources the gateway runs, each built from its part of the
//! configuration. Adding a source is a folder under `src/sources/` (its section, checks,
//! build, tasks, status and metrics; see `docs/architecture.md`) and one line below.

use super::error::StartError;
use crate::config::Config;
use crate::sources::{http, modbus, mqtt, Source, SourceStatus};
use crate::telemetry::{Clock, Metrics};
use std::sync::Arc;

pub fn sources(
    cfg: &Config,
    metrics: &Metrics,
    clock: &Clock,
    status: &mut SourceStatus,
) -> Result<Vec<Box<dyn Source>>, StartError> {
    let mut built: Vec<Box<dyn Source>> = vec![
        Box::new(mqtt::MqttSource::build(
            &cfg.mqtt,
            &cfg.inventory.sites,
            metrics,
            status,
        )?),
        Box::new(modbus::ModbusSource::build(&cfg.inventory, metrics, status)),
    ];
    if cfg.ingest.enabled {
        let sites = &cfg.inventory.sites;
        let ingest =
            http::HttpIngest::build(&cfg.ingest, &cfg.mqtt, sites, metrics, clock.clone())?;
        let ingest = Arc::new(ingest);
        status.http = Some(ingest.clone());
        built.push(Box::new(http::HttpSource::new(ingest)));
    }
    Ok(built)
}
