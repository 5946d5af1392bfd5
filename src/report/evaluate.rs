//! Evaluating indicators from the persisted history: shared by the API, the `report`
//! command and the store cadence. Blocking (SQLite): call from `spawn_blocking`.

use crate::core::config::indicators::{IndicatorSettings, TargetConfig};
use crate::core::indicators::{compute, Computation};
use crate::core::inventory::Inventory;
use crate::state::{ReadPool, StateError};
use std::sync::Arc;

/// What an evaluation needs besides the window.
#[derive(Debug, Clone)]
pub struct Evaluator {
    /// Read connections to `data_dir/state.db`, kept open between queries.
    pub journal: Arc<ReadPool>,
    pub inventory: Arc<Inventory>,
    pub settings: IndicatorSettings,
    pub targets: Vec<TargetConfig>,
}

impl Evaluator {
    pub fn compute(&self, from: i64, to: i64, now: i64) -> Result<Computation, StateError> {
        let history = self
            .journal
            .with(|j| j.load_history(&self.inventory, from, to.min(now)))?;
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
