//! The presets a mapping starts from. A key the mapping sets replaces the preset's whole (a
//! `status_map` given replaces the preset's map, it does not add to it). Where each shape
//! comes from: `docs/mappings.md` ("Presets").

use super::config::{ChannelConfig, MappingConfig, Paths, Preset};
use std::collections::BTreeMap;

/// `cfg` with every key it leaves out taken from its preset.
pub fn resolve(cfg: &MappingConfig) -> MappingConfig {
    let base = match cfg.preset {
        Preset::Safegate => safegate(),
        Preset::Ministry => ministry(),
        Preset::None => MappingConfig::default(),
    };
    MappingConfig {
        name: cfg.name.clone(),
        preset: cfg.preset,
        topics: cfg.topics.clone(),
        records: cfg.records.clone().or(base.records),
        site: cfg.site.clone().or(base.site),
        device: cfg.device.clone().or(base.device),
        time: cfg.time.clone().or(base.time),
        time_format: cfg.time_format.clone().or(base.time_format),
        timezone: cfg.timezone.clone().or(base.timezone),
        status: cfg.status.clone().or(base.status),
        status_map: cfg.status_map.clone().or(base.status_map),
        status_default: cfg.status_default.clone().or(base.status_default),
        values: cfg.values.clone().or(base.values),
        rename: cfg.rename.clone().or(base.rename),
        channels: cfg.channels.clone().or(base.channels),
    }
}

fn map(pairs: &[(&str, &str)]) -> Option<BTreeMap<String, String>> {
    Some(
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
}

/// The native batch element `{"device", "ts", "values", "status"}` in a JSON array: what
/// `{prefix}/{site}/batch` carries.
pub fn safegate() -> MappingConfig {
    MappingConfig {
        records: Some("$[*]".into()),
        site: Some("{site}".into()),
        device: Some("{$.device}".into()),
        time: Some("$.ts".into()),
        time_format: Some("auto".into()),
        status: Some("$.status".into()),
        status_map: map(&[
            ("normal", "normal"),
            ("fault", "fault"),
            ("maintenance", "maintenance"),
        ]),
        status_default: Some("reject".into()),
        values: Some("$.values".into()),
        ..MappingConfig::default()
    }
}

/// The ministry-family envelope: `{"dataId", "enterpriseCode", "gatewayCode", "collectTime",
/// …, "datas": [{"pointCode", "sensorType", "pointValue", "valueUnit", "pointStatus",
/// "dataTime"}]}`, times `yyyy-MM-dd HH:mm:ss` in China Standard Time.
pub fn ministry() -> MappingConfig {
    MappingConfig {
        records: Some("$.datas[*]".into()),
        site: Some("{site}".into()),
        device: Some("{$.pointCode}".into()),
        time: Some(Paths::Many(vec![
            "$.dataTime".into(),
            "msg:$.collectTime".into(),
        ])),
        time_format: Some("yyyy-MM-dd HH:mm:ss".into()),
        timezone: Some("+08:00".into()),
        status: Some("$.pointStatus".into()),
        // Our reading of the field practice: "0" or eight zeros is normal, any other code a
        // fault of the point. Overridable with status_map / status_default.
        status_map: map(&[("0", "normal"), ("00000000", "normal")]),
        status_default: Some("fault".into()),
        channels: Some(vec![ChannelConfig {
            name: "value".into(),
            path: "$.pointValue".into(),
            scale: 1.0,
            offset: 0.0,
        }]),
        ..MappingConfig::default()
    }
}
