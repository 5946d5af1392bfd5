//! Alarm thresholds: the per-reading evaluation (pure, O(1) per reading) that the alarm
//! lifecycle builds on. Sources of the default values: `docs/research/alarm-thresholds.md`.

pub mod thresholds;
