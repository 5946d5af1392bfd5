//! Evaluating indicators from the persisted history: shared by the API, the `report`
//! command and the store cadence. Blocking (SQLite): call from `spawn_blocking`.

use crate::config::{IndicatorSettings, TargetConfig};
use crate::core::indicators::{compute, Computation};
use crate::core::inventory::Inventory;
use crate::state::{Journal, StateError};
use std::path::PathBuf;
use std::sync::Arc;

/// What an evaluation needs besides the window.
#[derive(Debug, Clone)]
pub struct Evaluator {
    pub data_dir: PathBuf,
    pub inventory: Arc<Inventory>,
    pub settings: IndicatorSettings,
    pub targets: Vec<TargetConfig>,
}

impl Evaluator {
    pub fn compute(&self, from: i64, to: i64, now: i64) -> Result<Computation, StateError> {
        let journal = Journal::open_read(&self.data_dir)?;
        let history = journal.load_history(&self.inventory, from, to.min(now))?;
        Ok(compute(
            &self.inventory,
            &history,
            from,
            to,
            now,
            self.settings.policy(),
        ))
    }
}

pub use crate::model::parse_time;
