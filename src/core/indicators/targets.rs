//! Targets, completion, deviation and score, computed as the self-evaluation computes them:
//! in decimal arithmetic (never binary floats), percentages rounded half-up to 2 decimals.
//!
//! - `>=` target: completion = min(actual / target, 1)
//! - `<=` target: completion = 1 when actual ≤ target, else target / actual
//! - deviation = 100 % − completion (both as the rounded percentages, so a row adds to 100)
//! - score = weight × completion (unrounded completion), rounded to 2 decimals

use rust_decimal::prelude::*;
use rust_decimal::RoundingStrategy;
use serde::Serialize;

pub use crate::core::config::indicators::{de_decimal, de_opt_decimal, Comparator};

/// Half-up to 2 decimals, always shown with 2 (50 → 50.00), as the report prints them.
fn round2(x: Decimal) -> Decimal {
    let mut r = x.round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero);
    r.rescale(2);
    r
}

/// Completion as an unrounded fraction in [0, 1].
pub fn completion(actual: Decimal, target: Decimal, cmp: Comparator) -> Decimal {
    let one = Decimal::ONE;
    match cmp {
        Comparator::AtLeast => {
            if target <= Decimal::ZERO {
                one
            } else {
                (actual / target).min(one).max(Decimal::ZERO)
            }
        }
        Comparator::AtMost => {
            if actual <= target || actual <= Decimal::ZERO {
                one
            } else {
                (target / actual).max(Decimal::ZERO)
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Assessment {
    /// Completion rate, percent, 2 decimals.
    pub completion_pct: Decimal,
    /// Deviation rate, percent, 2 decimals.
    pub deviation_pct: Decimal,
    /// Points.
    pub score: Decimal,
}

pub fn assess(actual: Decimal, target: Decimal, cmp: Comparator, weight: Decimal) -> Assessment {
    let c = completion(actual, target, cmp);
    let completion_pct = round2(c * Decimal::ONE_HUNDRED);
    Assessment {
        completion_pct,
        deviation_pct: Decimal::ONE_HUNDRED - completion_pct,
        score: round2(weight * c),
    }
}

/// An exact ratio as a percentage, rounded half-up to 2 decimals.
pub fn ratio_pct(num: i128, den: i128) -> Option<Decimal> {
    if den == 0 {
        return None;
    }
    let n = Decimal::from_i128_with_scale(num, 0);
    let d = Decimal::from_i128_with_scale(den, 0);
    Some(round2(n * Decimal::ONE_HUNDRED / d))
}

/// An exact ratio as a percentage, unrounded (for completion).
pub fn ratio_pct_exact(num: i128, den: i128) -> Option<Decimal> {
    if den == 0 {
        return None;
    }
    let n = Decimal::from_i128_with_scale(num, 0);
    let d = Decimal::from_i128_with_scale(den, 0);
    n.checked_mul(Decimal::ONE_HUNDRED)
        .and_then(|x| x.checked_div(d))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    /// The 2023 self-evaluation's own figures.
    #[test]
    fn the_reports_test_vectors() {
        let ge = Comparator::AtLeast;
        let cases = [
            ("26.5", "90", "29.44", "70.56"),
            ("17.5", "90", "19.44", "80.56"),
            ("15", "80", "18.75", "81.25"),
            ("12.5", "80", "15.63", "84.37"),
            ("42.5", "95", "44.74", "55.26"),
            ("22", "24", "91.67", "8.33"),
            ("10", "27", "37.04", "62.96"),
            ("4945.46", "13135", "37.65", "62.35"),
        ];
        for (actual, target, c, dev) in cases {
            let a = assess(d(actual), d(target), ge, d("10"));
            assert_eq!(a.completion_pct, d(c), "{actual} vs {target}");
            assert_eq!(a.deviation_pct, d(dev), "{actual} vs {target}");
        }
        // 51 of 84 networked: 60.71 %.
        assert_eq!(ratio_pct(51, 84), Some(d("60.71")));
        // Budget execution at 10 points scores 3.77.
        assert_eq!(
            assess(d("4945.46"), d("13135"), ge, d("10")).score,
            d("3.77")
        );
    }

    #[test]
    fn completion_caps_and_mirrors() {
        assert_eq!(
            completion(d("120"), d("100"), Comparator::AtLeast),
            Decimal::ONE
        );
        assert_eq!(
            completion(d("50"), d("100"), Comparator::AtMost),
            Decimal::ONE
        );
        assert_eq!(completion(d("200"), d("100"), Comparator::AtMost), d("0.5"));
        assert_eq!(
            assess(d("200"), d("100"), Comparator::AtMost, d("4")).score,
            d("2.00")
        );
    }

    #[test]
    fn toml_numbers_keep_their_decimal_spelling() {
        #[derive(serde::Deserialize)]
        struct T {
            #[serde(deserialize_with = "de_decimal")]
            v: Decimal,
        }
        let t: T = toml::from_str("v = 4945.46").unwrap();
        assert_eq!(t.v, d("4945.46"));
        let t: T = toml::from_str("v = \"12.5\"").unwrap();
        assert_eq!(t.v, d("12.5"));
        let t: T = toml::from_str("v = 90").unwrap();
        assert_eq!(t.v, d("90"));
    }
}
