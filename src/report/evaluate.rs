//! Evaluating indicators from the persisted history: shared by the API, the `report`
//! command and the store cadence. Blocking (SQLite): call from `spawn_blocking`.

use crate::core::config::indicators::{IndicatorSettings, TargetConfig};
use crate::core::indicators::ledger::{self, Ledger};
use crate::core::indicators::{compute, Computation};
use crate::core::inventory::Inventory;
use crate::state::{ReadPool, StateError};
use std::sync::Arc;

/// What an evaluation needs besides the window.
#[derive(Debug, Clone)]
pub struct Evaluator {
    /// Read connections to `data_dir/state.db`, kept open between queries.
    pub journal: Arc<ReadPool>,
    /// The inventory in force: swapped by the core task when units join or leave (read with
    /// [`Evaluator::inventory`]).
    pub inventory: LiveInventory,
    pub settings: IndicatorSettings,
    pub targets: Vec<TargetConfig>,
}

/// The inventory in force, shared by the core task (which swaps it) and its readers.
pub type LiveInventory = Arc<arc_swap::ArcSwap<Inventory>>;

/// A [`LiveInventory`] holding `inv`.
pub fn live(inv: Arc<Inventory>) -> LiveInventory {
    Arc::new(arc_swap::ArcSwap::new(inv))
}

impl Evaluator {
    /// The inventory in force now.
    pub fn inventory(&self) -> Arc<Inventory> {
        self.inventory.load_full()
    }

    pub fn compute(&self, from: i64, to: i64, now: i64) -> Result<Computation, StateError> {
        self.evaluate(from, to, now).map(|(_, c)| c)
    }

    /// [`Evaluator::compute`], with the inventory it was computed on (read the computation
    /// with that one: a unit may join meanwhile).
    pub fn evaluate(
        &self,
        from: i64,
        to: i64,
        now: i64,
    ) -> Result<(Arc<Inventory>, Computation), StateError> {
        let inv = self.inventory();
        let history = self
            .journal
            .with(|j| j.load_history(&inv, from, to.min(now)))?;
        let c = compute(&inv, &history, from, to, now, self.settings.policy());
        Ok((inv, c))
    }

    /// One evaluation up to `now`, kept by site so that the overview's figures for any window
    /// it keeps are a subtraction ([`ledger`]); with the inventory it was built on.
    pub fn ledger(&self, now: i64) -> Result<(Arc<Inventory>, Ledger), StateError> {
        let inv = self.inventory();
        let offset = self.settings.utc_offset_h * 3_600_000;
        let from = ledger::start(now, offset);
        let history = self.journal.with(|j| j.load_timelines(&inv, from, now))?;
        let policy = self.settings.policy();
        let (l, _) = ledger::build(&inv, &history, (from, now), now, policy, offset);
        Ok((inv, l))
    }
}
