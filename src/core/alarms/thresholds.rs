//! Level thresholds with `raise_after`, hysteresis clearing, escalation, and a
//! rate-of-change rule for slope displacement.
//!
//! A rule has one to four ascending raise levels (two levels 一级/二级, or four colours
//! 蓝/黄/橙/红). A reading's instantaneous level is the highest level whose threshold it
//! reaches. An alarm is raised (or escalated) once readings have been above the current
//! level for `raise_after` consecutive readings; it never de-escalates, and it clears once
//! readings have stayed below the clear level for `clear_after` consecutive readings. The
//! clear level is `clear_below` when given (methane: power is restored below 1.0 %), else
//! `hysteresis` × the first raise level, so noise around a threshold does not flap.

use crate::model::DeviceKind;
use std::collections::VecDeque;

#[derive(Debug, Clone, PartialEq)]
pub struct LevelRule {
    /// Ascending raise thresholds; level n (1-based) is reached at `levels[n - 1]`.
    pub levels: Vec<f64>,
    pub raise_after: u32,
    pub clear_after: u32,
    /// Clear below this fraction of the first level (default 0.9) …
    pub hysteresis: f64,
    /// … or below this value, when set.
    pub clear_below: Option<f64>,
}

impl LevelRule {
    pub fn new(levels: Vec<f64>) -> LevelRule {
        LevelRule {
            levels,
            raise_after: 1,
            clear_after: 1,
            hysteresis: 0.9,
            clear_below: None,
        }
    }

    /// The level a single value reaches (0 = none).
    pub fn level_of(&self, v: f64) -> u8 {
        self.levels.iter().take_while(|t| v >= **t).count() as u8
    }

    pub fn clear_level(&self) -> f64 {
        self.clear_below
            .unwrap_or(self.levels.first().copied().unwrap_or(f64::INFINITY) * self.hysteresis)
    }
}

/// What one reading did to the alarm of a (device, channel).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Raised(u8),
    Escalated { from: u8, to: u8 },
    Cleared,
}

/// The evaluation state of one (device, channel): a few bytes, updated in O(1).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LevelState {
    /// Current alarm level, 0 when no alarm is active.
    pub level: u8,
    /// Consecutive readings above the current level, and the lowest level they all reached.
    above: u32,
    above_level: u8,
    /// Consecutive readings below the clear level.
    below: u32,
}

impl LevelState {
    /// The state of an alarm already active at `level` (restored after a restart).
    pub fn resume(level: u8) -> LevelState {
        LevelState {
            level,
            ..LevelState::default()
        }
    }

    pub fn observe(&mut self, rule: &LevelRule, v: f64) -> Option<Change> {
        let k = rule.level_of(v);
        if k > self.level {
            self.above_level = if self.above == 0 {
                k
            } else {
                self.above_level.min(k)
            };
            self.above += 1;
        } else {
            self.above = 0;
        }
        if self.level > 0 && v < rule.clear_level() {
            self.below += 1;
        } else {
            self.below = 0;
        }
        if self.above >= rule.raise_after.max(1) {
            let from = self.level;
            self.level = self.above_level;
            self.above = 0;
            self.below = 0;
            return Some(if from == 0 {
                Change::Raised(self.level)
            } else {
                Change::Escalated {
                    from,
                    to: self.level,
                }
            });
        }
        if self.level > 0 && self.below >= rule.clear_after.max(1) {
            *self = LevelState::default();
            return Some(Change::Cleared);
        }
        None
    }
}

/// Rate of change over a sliding window (slope displacement, mm per day), with levels.
#[derive(Debug, Clone, PartialEq)]
pub struct RateRule {
    pub window_ms: i64,
    /// Ascending rate thresholds per day.
    pub levels: LevelRule,
}

/// Samples kept for a rate rule: at most about `RATE_SAMPLES`, spread over the window (one
/// per `window / RATE_SAMPLES`, plus the newest), so the rate is measured over the whole
/// window whatever the reporting interval, in bounded memory and O(1) per reading.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RateState {
    samples: VecDeque<(i64, f64)>,
    pub level: LevelState,
}

const RATE_SAMPLES: usize = 64;

impl RateState {
    /// The rate per day over the window ending at `ts`, once the window holds two samples
    /// at least a tenth of the window apart.
    pub fn observe(&mut self, rule: &RateRule, ts: i64, v: f64) -> (Option<f64>, Option<Change>) {
        while self
            .samples
            .front()
            .is_some_and(|(t, _)| ts - t > rule.window_ms)
        {
            self.samples.pop_front();
        }
        // The newest sample stands in for its slot until the next slot begins.
        let step = (rule.window_ms / RATE_SAMPLES as i64).max(1);
        let n = self.samples.len();
        if n >= 2 && ts - self.samples[n - 2].0 < step {
            self.samples[n - 1] = (ts, v);
        } else {
            self.samples.push_back((ts, v));
        }
        if self.samples.len() > RATE_SAMPLES + 2 {
            self.samples.pop_front();
        }
        let (t0, v0) = self.samples[0];
        let span = ts - t0;
        if span < rule.window_ms / 10 || span <= 0 {
            return (None, None);
        }
        let per_day = (v - v0) / span as f64 * 86_400_000.0;
        (Some(per_day), self.level.observe(&rule.levels, per_day))
    }
}

/// Occupational exposure limits used for toxic gases, in ppm at 20 °C and 101.325 kPa
/// (GBZ 2.1-2019 mg/m³ × 24.04 ÷ molar mass; MAC where there is one, else PC-TWA). See the
/// research notes for sources and confidence.
pub fn toxic_oel_ppm(gas: &str) -> Option<f64> {
    let (mg_m3, molar_mass) = match gas.to_ascii_uppercase().as_str() {
        "H2S" => (10.0, 34.08),
        "CO" => (20.0, 28.01),
        "NH3" => (20.0, 17.03),
        "CL2" => (1.0, 70.90),
        "SO2" => (5.0, 64.07),
        "HCN" => (1.0, 27.03),
        _ => return None,
    };
    Some(mg_m3 * 24.04 / molar_mass)
}

/// The default level rule of a device kind (two levels, or one where the rule has one).
pub fn default_rule(kind: DeviceKind, gas: Option<&str>) -> Option<LevelRule> {
    Some(match kind {
        // GB/T 50493-2019: level 1 at 25 %LEL, level 2 at 50 %LEL.
        DeviceKind::GasCombustible => LevelRule::new(vec![25.0, 50.0]),
        // GB/T 50493-2019: 100 % and 200 % of the occupational exposure limit.
        DeviceKind::GasToxic => {
            let oel = toxic_oel_ppm(gas?)?;
            LevelRule::new(vec![oel, 2.0 * oel])
        }
        // 煤矿安全规程 (working face): alarm at 1.0 %, power-off at 1.5 %, restore below 1.0 %.
        DeviceKind::Methane => LevelRule {
            clear_below: Some(1.0),
            ..LevelRule::new(vec![1.0, 1.5])
        },
        // 煤矿安全规程: CO 0.0024 % (24 ppm).
        DeviceKind::CarbonMonoxide => LevelRule::new(vec![24.0]),
        // 煤矿安全规程: work stops above 30 °C.
        DeviceKind::Temperature => LevelRule::new(vec![30.0]),
        _ => return None,
    })
}

/// Slope displacement: 10 mm/d over one day (GB 51214-2017 commentary, a reference value;
/// sites are expected to set their own).
pub fn default_slope_rate() -> RateRule {
    RateRule {
        window_ms: 86_400_000,
        levels: LevelRule::new(vec![10.0]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(rule: &LevelRule, values: &[f64]) -> Vec<Option<Change>> {
        let mut s = LevelState::default();
        values.iter().map(|v| s.observe(rule, *v)).collect()
    }

    #[test]
    fn crossing_raises_and_hysteresis_clears() {
        let r = LevelRule::new(vec![25.0, 50.0]);
        let got = run(&r, &[10.0, 26.0, 24.0, 23.0, 22.0]);
        // 24 and 23 are below 25 but above 22.5 (90 %): the alarm holds; 22 clears it.
        assert_eq!(
            got,
            vec![
                None,
                Some(Change::Raised(1)),
                None,
                None,
                Some(Change::Cleared)
            ]
        );
    }

    #[test]
    fn raise_after_needs_consecutive_readings() {
        let r = LevelRule {
            raise_after: 3,
            ..LevelRule::new(vec![25.0, 50.0])
        };
        let got = run(&r, &[30.0, 30.0, 10.0, 30.0, 30.0, 30.0]);
        assert_eq!(got[..5], [None, None, None, None, None]);
        assert_eq!(got[5], Some(Change::Raised(1)));
    }

    #[test]
    fn escalation_keeps_the_alarm_and_never_steps_down() {
        let r = LevelRule::new(vec![25.0, 50.0]);
        let got = run(&r, &[30.0, 60.0, 30.0, 10.0]);
        assert_eq!(
            got,
            vec![
                Some(Change::Raised(1)),
                Some(Change::Escalated { from: 1, to: 2 }),
                None,
                Some(Change::Cleared)
            ]
        );
        // A jump straight to level 2 raises at level 2.
        assert_eq!(run(&r, &[55.0])[0], Some(Change::Raised(2)));
    }

    #[test]
    fn clear_after_needs_consecutive_low_readings() {
        let r = LevelRule {
            clear_after: 2,
            ..LevelRule::new(vec![25.0])
        };
        let got = run(&r, &[30.0, 10.0, 26.0, 10.0, 10.0]);
        assert_eq!(
            got,
            vec![
                Some(Change::Raised(1)),
                None,
                None,
                None,
                Some(Change::Cleared)
            ]
        );
    }

    #[test]
    fn four_colour_scheme() {
        // 蓝 / 黄 / 橙 / 红
        let r = LevelRule::new(vec![10.0, 20.0, 30.0, 40.0]);
        assert_eq!(r.level_of(5.0), 0);
        assert_eq!(r.level_of(25.0), 2);
        assert_eq!(r.level_of(45.0), 4);
        let got = run(&r, &[12.0, 33.0, 41.0]);
        assert_eq!(got[2], Some(Change::Escalated { from: 3, to: 4 }));
    }

    #[test]
    fn methane_restores_below_one_percent() {
        let r = default_rule(DeviceKind::Methane, None).unwrap();
        let got = run(&r, &[0.8, 1.6, 1.2, 0.99]);
        assert_eq!(
            got,
            vec![None, Some(Change::Raised(2)), None, Some(Change::Cleared)]
        );
    }

    #[test]
    fn toxic_defaults_follow_the_exposure_limit() {
        let r = default_rule(DeviceKind::GasToxic, Some("H2S")).unwrap();
        assert!((r.levels[0] - 7.054).abs() < 0.01, "{:?}", r.levels);
        assert!((r.levels[1] - 2.0 * r.levels[0]).abs() < 1e-9);
        assert_eq!(default_rule(DeviceKind::GasToxic, Some("XYZ")), None);
        assert_eq!(default_rule(DeviceKind::Video, None), None);
    }

    #[test]
    fn slope_rate_over_a_sliding_window() {
        let rule = default_slope_rate();
        let mut s = RateState::default();
        let h = 3_600_000;
        // 0.2 mm/h = 4.8 mm/d: no alarm; then 1 mm/h = 24 mm/d over the last hours.
        let mut changes = vec![];
        for i in 0..24 {
            changes.push(s.observe(&rule, i * h, 0.2 * i as f64).1);
        }
        assert!(changes.iter().all(Option::is_none));
        let (rate, _) = s.observe(&rule, 24 * h, 4.8);
        assert!((rate.unwrap() - 4.8).abs() < 1e-9);
        let mut raised = None;
        for i in 25..40 {
            let (_, c) = s.observe(&rule, i * h, 4.8 + (i - 24) as f64);
            raised = raised.or(c);
        }
        assert_eq!(raised, Some(Change::Raised(1)));
    }

    #[test]
    fn the_rate_spans_the_whole_window_at_any_reporting_interval() {
        // One reading a minute for two days, rising 12 mm/d: measured over the day, not over
        // the last 64 readings (which span an hour, under the tenth of a window needed).
        let rule = default_slope_rate();
        let mut s = RateState::default();
        let min = 60_000;
        let mut raised = None;
        let mut last = None;
        for i in 0..2 * 1440 {
            let (rate, c) = s.observe(&rule, i * min, 12.0 * i as f64 / 1440.0);
            raised = raised.or(c.map(|c| (i, c)));
            last = rate.or(last);
            assert!(s.samples.len() <= RATE_SAMPLES + 2);
        }
        assert!((last.unwrap() - 12.0).abs() < 1e-6, "{last:?}");
        let (i, c) = raised.expect("12 mm/d is over the 10 mm/d level");
        assert_eq!(c, Change::Raised(1));
        // Raised once the window spans a tenth of a day (144 minutes), not later.
        assert!((144..=170).contains(&i), "raised at minute {i}");
        let span = s.samples.back().unwrap().0 - s.samples[0].0;
        assert!(
            span > 86_400_000 - 2 * 86_400_000 / 64,
            "window used: {span} ms"
        );
    }
}
