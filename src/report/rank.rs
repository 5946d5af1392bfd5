//! Ranking a shortfall's reasons, the share of the shortfall each explains, folding the long
//! tail, and the human durations every reason text uses. The rules are written down in
//! `docs/indicators.md` ("Reasons behind a shortfall").

use super::Reason;
use rust_decimal::Decimal;
use serde::Serialize;

/// Reasons are listed, largest first, until the listed ones explain at least this percentage
/// of the shortfall …
pub const FOLD_SHARE_PCT: i128 = 95;
/// … or this many are listed; the rest are folded into one line. A single remaining reason is
/// listed rather than folded.
pub const FOLD_MAX: usize = 10;
/// Decimals of the API's `share` (a ratio in [0, 1]).
pub const SHARE_DP: u32 = 6;

/// What a row's shortfall is measured in, and how much of it there is: the sum of its
/// reasons' weights (for `unit_ms`, the unit-time counted but not online: `exact.den −
/// exact.num` of the indicator).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Shortfall {
    /// `unit_ms` (time-weighted rates), `units` (count rates: one per unit or alarm),
    /// `polls` (failed polls).
    pub unit: &'static str,
    #[serde(serialize_with = "as_i64")]
    pub total: i128,
    /// Every reason, listed and folded.
    pub reasons: usize,
}

/// The reasons not listed, as one line.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Folded {
    pub count: usize,
    /// The largest `cost_ms` among them (they are ranked, so it is the first folded one's).
    pub max_cost_ms: i64,
    pub total_cost_ms: i64,
    /// Their share of the shortfall together; with the listed shares it adds up to 1.
    pub share: Decimal,
    /// Their weight in the shortfall's unit (see [`Shortfall`]).
    #[serde(skip)]
    pub(super) weight: i128,
}

fn as_i64<S: serde::Serializer>(v: &i128, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_i64((*v).clamp(i64::MIN as i128, i64::MAX as i128) as i64)
}

/// Largest weight first, then largest cost, then site and id: deterministic.
pub fn rank(out: &mut [Reason]) {
    out.sort_by(|a, b| {
        b.weight
            .cmp(&a.weight)
            .then(b.cost_ms.cmp(&a.cost_ms))
            .then(a.site.cmp(&b.site))
            .then(a.id.cmp(&b.id))
    });
}

/// How many of the ranked reasons to list: until they explain [`FOLD_SHARE_PCT`] of `total`
/// or [`FOLD_MAX`] are listed, and never leaving exactly one to fold.
pub fn listed(ranked: &[Reason], total: i128) -> usize {
    let mut sum = 0i128;
    let mut n = 0;
    for r in ranked {
        if n == FOLD_MAX || (n > 0 && sum * 100 >= FOLD_SHARE_PCT * total) {
            break;
        }
        sum += r.weight;
        n += 1;
    }
    if ranked.len() == n + 1 {
        n + 1
    } else {
        n
    }
}

/// `weights` apportioned to `10^dp` parts of `total` by the largest remainder: each part is
/// its exact share rounded down or up to `dp` decimals, and the parts add up to exactly 1
/// (ties go to the earlier, higher-ranked entry). All zero when `total` is 0.
pub fn apportion(weights: &[i128], total: i128, dp: u32) -> Vec<Decimal> {
    if total <= 0 {
        return vec![Decimal::ZERO; weights.len()];
    }
    let one = 10i128.pow(dp);
    let mut parts: Vec<(i128, i128)> = weights
        .iter()
        .map(|w| (w * one / total, w * one % total))
        .collect();
    let given: i128 = parts.iter().map(|p| p.0).sum();
    let mut order: Vec<usize> = (0..parts.len()).collect();
    order.sort_by(|&a, &b| parts[b].1.cmp(&parts[a].1).then(a.cmp(&b)));
    let left = (one - given).max(0) as usize;
    for &i in order.iter().take(left) {
        parts[i].0 += 1;
    }
    parts
        .iter()
        .map(|p| Decimal::from_i128_with_scale(p.0, dp))
        .collect()
}

/// Rank `all`, fold the tail unless `fold` is false, and give every listed reason (and the
/// folded line) its share. Returns the listed reasons, the folded line and the shortfall.
pub fn arrange(
    mut all: Vec<Reason>,
    unit: &'static str,
    fold: bool,
) -> (Vec<Reason>, Option<Folded>, Option<Shortfall>) {
    if all.is_empty() {
        return (all, None, None);
    }
    rank(&mut all);
    let total: i128 = all.iter().map(|r| r.weight).sum();
    let n = if fold { listed(&all, total) } else { all.len() };
    let tail: Vec<Reason> = all.split_off(n);
    let folded = (!tail.is_empty()).then(|| Folded {
        count: tail.len(),
        max_cost_ms: tail.iter().map(|r| r.cost_ms).max().unwrap_or(0),
        total_cost_ms: tail.iter().map(|r| r.cost_ms).sum(),
        share: Decimal::ZERO,
        weight: tail.iter().map(|r| r.weight).sum(),
    });
    let shortfall = Shortfall {
        unit,
        total,
        reasons: n + tail.len(),
    };
    let mut folded = folded;
    let shares = apportion(&weights(&all, folded.as_ref()), total, SHARE_DP);
    for (r, s) in all.iter_mut().zip(&shares) {
        r.share = *s;
    }
    if let Some(f) = folded.as_mut() {
        f.share = shares[shares.len() - 1];
    }
    (all, folded, Some(shortfall))
}

/// The weights of the listed reasons, then the folded line's.
pub(super) fn weights(listed: &[Reason], folded: Option<&Folded>) -> Vec<i128> {
    listed
        .iter()
        .map(|r| r.weight)
        .chain(folded.map(|f| f.weight))
        .collect()
}

const S: i64 = 1_000;
const MIN: i64 = 60 * S;
const H: i64 = 60 * MIN;
const D: i64 = 24 * H;

/// A duration for people: its two largest units, the second truncated and left out when
/// zero: "2 d 3 h", "3 h 12 min", "40 min", "1 min 5 s", "25 s", "350 ms", "0 s".
pub fn human(ms: i64) -> String {
    let ms = ms.max(0);
    let two = |big: i64, bu: &str, small: i64, su: &str| {
        let (a, b) = (ms / big, ms % big / small);
        if b == 0 {
            format!("{a} {bu}")
        } else {
            format!("{a} {bu} {b} {su}")
        }
    };
    match ms {
        0 => "0 s".into(),
        x if x < S => format!("{x} ms"),
        x if x < MIN => format!("{} s", x / S),
        x if x < H => two(MIN, "min", S, "s"),
        x if x < D => two(H, "h", MIN, "min"),
        _ => two(D, "d", H, "h"),
    }
}

/// The smallest round duration strictly above `ms`: 1 s, 1 min, 10 min, 1 h, 1 d, then whole
/// days. The folded line says its reasons are each under it.
pub fn bound_above(ms: i64) -> i64 {
    [S, MIN, 10 * MIN, H, D]
        .into_iter()
        .find(|&b| b > ms)
        .unwrap_or((ms / D + 1) * D)
}

/// The folded line, bilingual as the report's headings: "另有 25 项 and 25 more, each under
/// 1 min (largest 42 s, 3 min 10 s in all)".
pub fn folded_text(f: &Folded) -> String {
    let mut s = format!("另有 {n} 项 and {n} more", n = f.count);
    if f.max_cost_ms > 0 {
        s.push_str(&format!(
            ", each under {} (largest {}, {} in all)",
            human(bound_above(f.max_cost_ms)),
            human(f.max_cost_ms),
            human(f.total_cost_ms)
        ));
    }
    s
}

/// The shortfall as the report prints it above a row's reasons.
pub fn shortfall_text(s: &Shortfall) -> String {
    let what = match s.unit {
        "unit_ms" => format!(
            "{} of unit-time counted but not online",
            human(s.total.clamp(0, i64::MAX as i128) as i64)
        ),
        "polls" => format!("{} failed poll(s)", s.total),
        _ => format!("{} unit(s)", s.total),
    };
    format!("缺口 Shortfall: {what}; {} reason(s)", s.reasons)
}

/// A share as a percentage with 2 decimals, "42.13%".
pub fn pct_text(share: Decimal) -> String {
    format!("{}%", (share * Decimal::ONE_HUNDRED).round_dp(2))
}
