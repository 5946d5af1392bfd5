//! Indicators over any time window, targets and the self-evaluation table.

pub mod conditions;
pub mod engine;
pub mod headline;
pub mod history;
pub mod intervals;
pub mod ledger;
pub mod targets;

pub use engine::{
    compute, Computation, Denominator, Indicator, IndicatorId, MineUnits, Policy, Quorum, Scope,
    Unit, UnknownIndicator,
};
pub use history::{DeviceHistory, History, Reg};

#[cfg(test)]
mod tests;
