//! What the API shows of each mine (`GET /api/v1/mines`, `/api/v1/mines/{code}`): the last
//! file of each type with its data time and arrival lag, files and records taken and
//! refused, substations and base stations with their states, people underground.

use super::apply::{MineSite, MineState};
use super::format::{ParsedFile, PowerState, RunState};
use super::{TakeError, Taken, Upload};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Mutex;

#[derive(Debug, Default)]
pub struct MinesStatus {
    mines: Mutex<BTreeMap<String, MineView>>,
    /// Per mine code: how long after a real-time file's arrival the next is due
    /// (`mine_files.upload_timeout_s`).
    due_ms: Mutex<BTreeMap<String, i64>>,
}

/// Whether a mine's uploads are late: no 测点实时数据 (CDSS) file arrived within
/// `upload_timeout_s`, or none ever did.
#[derive(Debug, Clone, PartialEq)]
pub struct Lateness {
    pub site: String,
    pub mine_code: String,
    pub late: bool,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct MineView {
    pub mine_code: String,
    pub site: String,
    /// The last file applied of each type (`CDSS`, `CDDY`, …).
    pub last_files: BTreeMap<&'static str, LastFile>,
    pub files_applied: u64,
    pub files_duplicate: u64,
    /// Files refused whole, by reason.
    pub files_refused: BTreeMap<&'static str, u64>,
    pub records_accepted: u64,
    pub records_refused: u64,
    pub points: usize,
    pub substations: Vec<StationView>,
    pub base_stations: Vec<StationView>,
    /// By the last personnel file (RYSS); names are never kept.
    pub people_underground: Option<u32>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LastFile {
    pub name: String,
    pub data_ms: i64,
    pub received_ms: i64,
    /// Arrival − data time, ms: how late the mine's uploader delivers.
    pub lag_ms: i64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct StationView {
    pub code: String,
    pub location: Option<String>,
    pub run: &'static str,
    pub power: &'static str,
    pub data_ms: i64,
}

fn run_str(r: RunState) -> &'static str {
    match r {
        RunState::Normal => "normal",
        RunState::CommInterrupted => "comm_interrupted",
        RunState::Fault => "fault",
        RunState::Unknown => "unknown",
    }
}

fn power_str(p: PowerState) -> &'static str {
    match p {
        PowerState::Dc => "dc",
        PowerState::Ac => "ac",
        PowerState::PowerFault => "power_fault",
        PowerState::Unknown => "unknown",
    }
}

impl MinesStatus {
    pub(super) fn register(&self, site: &MineSite) {
        let due = (site.offline_after_s * 1000.0) as i64;
        let mut d = self.due_ms.lock().unwrap_or_else(|p| p.into_inner());
        d.insert(site.mine_code.clone(), due);
        drop(d);
        let mut m = self.mines.lock().unwrap_or_else(|p| p.into_inner());
        m.entry(site.mine_code.clone()).or_insert_with(|| MineView {
            mine_code: site.mine_code.clone(),
            site: site.site.clone(),
            ..MineView::default()
        });
    }

    pub(super) fn file_applied(
        &self,
        site: &MineSite,
        file: &ParsedFile,
        up: &Upload,
        taken: &Taken,
        state: &MineState,
    ) {
        let mut m = self.mines.lock().unwrap_or_else(|p| p.into_inner());
        let Some(v) = m.get_mut(&site.mine_code) else {
            return;
        };
        if let Taken::Applied { accepted, refused } = taken {
            v.files_applied += 1;
            v.records_accepted += *accepted as u64;
            v.records_refused += *refused as u64;
        }
        let data_ms = file.header.data_ms;
        let newer = v
            .last_files
            .get(file.name.file_type.as_str())
            .is_none_or(|l| l.data_ms <= data_ms);
        if newer {
            v.last_files.insert(
                file.name.file_type.as_str(),
                LastFile {
                    name: up.name.clone(),
                    data_ms,
                    received_ms: up.received_ms,
                    lag_ms: up.received_ms - data_ms,
                },
            );
        }
        v.points = state.points.len();
        v.people_underground = state.people_underground;
        v.substations = state
            .substations
            .values()
            .map(|s| StationView {
                code: s.code.clone(),
                location: state.substation_places.get(&s.code).cloned(),
                run: run_str(s.run),
                power: power_str(s.power),
                data_ms: s.data_ms,
            })
            .collect();
        v.base_stations = state
            .base_stations
            .values()
            .map(|s| StationView {
                code: s.code.clone(),
                location: None,
                run: run_str(s.run),
                power: power_str(s.power),
                data_ms: s.data_ms,
            })
            .collect();
    }

    /// A file of a known mine taken but not applied (a duplicate, a refusal).
    pub fn file_not_applied(&self, mine_code: &str, res: &Result<Taken, TakeError>) {
        let mut m = self.mines.lock().unwrap_or_else(|p| p.into_inner());
        let Some(v) = m.get_mut(mine_code) else {
            return;
        };
        match res {
            Ok(Taken::Duplicate) => v.files_duplicate += 1,
            Err(TakeError::Refused { reason, .. }) => {
                *v.files_refused.entry(reason).or_default() += 1
            }
            _ => {}
        }
    }

    pub fn all(&self) -> Vec<MineView> {
        let m = self.mines.lock().unwrap_or_else(|p| p.into_inner());
        m.values().cloned().collect()
    }

    /// Every mine, late or not at `now`.
    pub fn lateness(&self, now_ms: i64) -> Vec<Lateness> {
        let due = self
            .due_ms
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let m = self.mines.lock().unwrap_or_else(|p| p.into_inner());
        m.values()
            .map(|v| {
                let last = v.last_files.get("CDSS").map(|f| f.received_ms);
                let due = due.get(&v.mine_code).copied().unwrap_or(i64::MAX);
                Lateness {
                    site: v.site.clone(),
                    mine_code: v.mine_code.clone(),
                    late: last.is_none_or(|t| now_ms.saturating_sub(t) > due),
                }
            })
            .collect()
    }

    pub fn get(&self, mine_code: &str) -> Option<MineView> {
        let m = self.mines.lock().unwrap_or_else(|p| p.into_inner());
        m.get(mine_code).cloned()
    }
}
