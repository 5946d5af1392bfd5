//! What devices' conditions do to their time (docs/indicators.md, "Conditions"): time under
//! maintenance while online is not counted at all; for a coal mine's points (protocol
//! `mine_files`), time faulty while online is counted but not online, named by its cause.
//! Other devices' faults keep them online (reachable), as before.

use super::intervals::{self as iv, Span};
use crate::core::Condition;
use std::sync::Arc;

/// One device's condition timeline: (from, condition, cause), time-ordered.
pub type Conditions = [(i64, Condition, Option<Arc<str>>)];

/// The spans before `end` where the condition was `want`, each with its cause.
fn segments(c: &Conditions, end: i64, want: Condition) -> Vec<(Span, Option<Arc<str>>)> {
    let mut out = Vec::new();
    for (k, (at, cond, cause)) in c.iter().enumerate() {
        if *at >= end {
            break;
        }
        let until = c.get(k + 1).map_or(end, |n| n.0.min(end));
        if *cond == want && *at < until {
            out.push(((*at, until), cause.clone()));
        }
    }
    out
}

/// A device's time with its conditions applied.
#[derive(Debug, Default, PartialEq)]
pub struct Applied {
    /// Online while counted, maintenance out (for the unit's counted time too).
    pub maintenance: Vec<Span>,
    /// Faulty while online and counted as down, with the cause of each span.
    pub faults: Vec<(Span, Option<Arc<str>>)>,
}

impl Applied {
    /// The fault spans alone, sorted and disjoint.
    pub fn fault_spans(&self) -> Vec<Span> {
        self.faults.iter().map(|(s, _)| *s).collect()
    }
}

/// Apply `c` to a device online over `online` (before `end`): maintenance while online, and,
/// when `fault_is_down`, fault while online and not under maintenance.
pub fn apply(c: &Conditions, online: &[Span], end: i64, fault_is_down: bool) -> Applied {
    if c.is_empty() {
        return Applied::default();
    }
    let maint: Vec<Span> = segments(c, end, Condition::Maintenance)
        .into_iter()
        .map(|(s, _)| s)
        .collect();
    let maintenance = iv::intersect(online, &maint);
    let mut faults = Vec::new();
    if fault_is_down {
        for (span, cause) in segments(c, end, Condition::Fault) {
            for s in iv::intersect(online, &[span]) {
                faults.push((s, cause.clone()));
            }
        }
    }
    Applied {
        maintenance,
        faults,
    }
}

/// Time of each cause in `faults` within `within`, the largest first (then by name).
pub fn by_cause(
    faults: &[(Span, Option<Arc<str>>)],
    within: &[Span],
) -> Vec<(Option<Arc<str>>, i64)> {
    let mut out: Vec<(Option<Arc<str>>, i64)> = Vec::new();
    for (s, cause) in faults {
        let t = iv::overlap(&[*s], within);
        if t == 0 {
            continue;
        }
        match out.iter_mut().find(|(c, _)| c == cause) {
            Some((_, sum)) => *sum += t,
            None => out.push((cause.clone(), t)),
        }
    }
    out.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cause(s: &str) -> Option<Arc<str>> {
        Some(s.into())
    }

    #[test]
    fn maintenance_counts_only_while_online_and_faults_only_when_they_are_down() {
        let c = vec![
            (10, Condition::Maintenance, cause("标校")),
            (30, Condition::Normal, None),
            (50, Condition::Fault, cause("传感器故障")),
            (80, Condition::Fault, cause("substation F003 通信中断")),
            (90, Condition::Normal, None),
        ];
        // Online [0, 20) and [40, 100).
        let online = [(0, 20), (40, 100)];
        let a = apply(&c, &online, 100, true);
        assert_eq!(a.maintenance, vec![(10, 20)]);
        assert_eq!(
            a.faults,
            vec![
                ((50, 80), cause("传感器故障")),
                ((80, 90), cause("substation F003 通信中断"))
            ]
        );
        assert_eq!(a.fault_spans(), vec![(50, 80), (80, 90)]);
        // Not a mine's point: faults stay online.
        assert_eq!(apply(&c, &online, 100, false).faults, vec![]);
        // The window's end cuts the last condition.
        let a = apply(&c, &online, 60, true);
        assert_eq!(a.faults, vec![((50, 60), cause("传感器故障"))]);
    }

    #[test]
    fn causes_add_up_within_the_window_largest_first() {
        let f = vec![
            ((0, 10), cause("a")),
            ((20, 50), cause("b")),
            ((60, 70), cause("a")),
            ((80, 90), None),
        ];
        assert_eq!(
            by_cause(&f, &[(5, 100)]),
            vec![(cause("b"), 30), (cause("a"), 15), (None, 10)]
        );
        assert_eq!(by_cause(&f, &[(100, 200)]), vec![]);
    }
}
