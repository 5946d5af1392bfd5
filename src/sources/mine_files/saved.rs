//! Cluster mode: a mine's state as a checkpoint keeps it, and put back from it (see
//! docs/scaling.md, "Checkpoints"). Its points and findings come from its definitions file
//! (the CDDY), applied again to an empty state as a single gateway does with its kept CDDY
//! at start; the rest (stations, substations' places, the latest data time of each file
//! type, people underground, alarm bits) is kept as it is.

use super::apply::{apply, MineSite, MineState};
use super::format::{self, FileType, StationState};
use crate::core::event::{Definition, SourceEvent};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Default, Serialize, Deserialize)]
struct Kept {
    base_stations: Vec<StationState>,
    substations: Vec<StationState>,
    substation_places: BTreeMap<String, String>,
    /// By file type code ("CDSS" …).
    latest: BTreeMap<String, i64>,
    people_underground: Option<u32>,
    alarm_bits: BTreeMap<String, (i64, u8)>,
}

/// The part of `state` its definitions do not give back.
pub(super) fn to_bytes(state: &MineState) -> Vec<u8> {
    let kept = Kept {
        base_stations: state.base_stations.values().cloned().collect(),
        substations: state.substations.values().cloned().collect(),
        substation_places: state.substation_places.clone(),
        latest: (state.latest.iter())
            .map(|(t, ms)| (t.as_str().to_string(), *ms))
            .collect(),
        people_underground: state.people_underground,
        alarm_bits: state.alarm_bits.clone(),
    };
    serde_json::to_vec(&kept).unwrap_or_default()
}

/// The mine's state from a checkpoint, and the events its definitions make (the declaration
/// of its points, for the core's inventory); a part that cannot be read is left empty, and
/// the error says which.
pub(super) fn restore(
    site: &MineSite,
    state: &[u8],
    definition: Option<&Definition>,
) -> (MineState, Vec<SourceEvent>, Option<String>) {
    let mut mine = MineState::default();
    let mut events = Vec::new();
    let mut problem = None;
    if let Some(d) = definition {
        match format::parse_file(&d.name, &d.bytes, site.tz_offset_s) {
            Ok(parsed) => events = apply(&d.name, &parsed, site, &mut mine, d.received_ms).0,
            Err(e) => problem = Some(format!("its CDDY {} no longer parses: {e}", d.name)),
        }
    }
    match serde_json::from_slice::<Kept>(state) {
        Ok(k) => {
            let by_code = |v: Vec<StationState>| v.into_iter().map(|s| (s.code.clone(), s));
            mine.base_stations = by_code(k.base_stations).collect();
            mine.substations = by_code(k.substations).collect();
            mine.substation_places = k.substation_places;
            mine.latest = (k.latest.iter())
                .filter_map(|(t, ms)| Some((FileType::from_code(t)?, *ms)))
                .collect();
            mine.people_underground = k.people_underground;
            mine.alarm_bits = k.alarm_bits;
        }
        Err(e) => problem = Some(format!("its kept state cannot be read: {e}")),
    }
    (mine, events, problem)
}
