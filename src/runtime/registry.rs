//! The source registry: the sources the gateway runs, each built from its part of the
//! configuration. Adding a source is a folder under `src/sources/` (its section, checks,
//! build, tasks, status and metrics; see `docs/architecture.md`) and one line below.

use super::error::StartError;
use crate::config::Config;
use crate::sources::mapping::{metrics::MappingMetrics, Mappings};
use crate::sources::{http, mine_files, modbus, mqtt, video, Mapped, Source, SourceStatus};
use crate::telemetry::{Clock, Metrics};
use std::sync::Arc;

pub fn sources(
    cfg: &Config,
    metrics: &Metrics,
    clock: &Clock,
    status: &mut SourceStatus,
    saved: &[crate::core::event::FileSave],
) -> Result<Vec<Box<dyn Source>>, StartError> {
    // Compiled once for every source that reads platforms' own shapes (the configuration's
    // check has compiled them already, so this does not fail in practice).
    let mapped = Mapped {
        mappings: Arc::new(
            Mappings::compile(&cfg.mappings).map_err(|p| StartError::Mappings(p.len()))?,
        ),
        metrics: MappingMetrics::register(metrics),
    };
    let sites = &cfg.inventory.sites;
    let mut built: Vec<Box<dyn Source>> = vec![
        Box::new(mqtt::MqttSource::build(
            &cfg.mqtt, sites, &mapped, metrics, status,
        )?),
        Box::new(modbus::ModbusSource::build(&cfg.inventory, metrics, status)),
    ];
    if cfg.ingest.enabled {
        let (settings, clock) = (&cfg.ingest, clock.clone());
        let ingest = http::HttpIngest::build(settings, &cfg.mqtt, sites, &mapped, metrics, clock)?;
        let ingest = Arc::new(ingest);
        status.http = Some(ingest.clone());
        built.push(Box::new(http::HttpSource::new(ingest)));
    }
    let mut files = None;
    if cfg.mine_files.enabled {
        let (settings, status) = (&cfg.mine_files, status.mines.clone());
        let inv = &cfg.inventory;
        let data_dir = &cfg.gateway.data_dir;
        // Cluster mode: the mines' state of the checkpoint this instance resumes from.
        let cluster = cfg.cluster.as_ref().map(|_| saved);
        let src = mine_files::MineFilesSource::build(
            settings, inv, metrics, clock, status, data_dir, cluster,
        )?;
        files = Some(src.stream_files());
        built.push(Box::new(src));
    }
    if let Some(settings) = &cfg.video {
        let src = video::VideoSource::build(settings, &cfg.inventory, metrics, clock)?;
        status.video = Some(src.local_addr());
        built.push(Box::new(src));
    }
    status.files = files;
    Ok(built)
}
