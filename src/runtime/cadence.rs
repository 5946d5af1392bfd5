//! Closed windows (hourly, daily) of every indicator, for every scope, written to the store
//! as they close, so evaluators can chart measured values without asking the API.

use crate::core::indicators::Scope;
use crate::report::evaluate::Evaluator;
use crate::report::{display_value, parse_scope};
use crate::sinks::record::IndicatorPoint;
use crate::sinks::store::StoreQueue;
use crate::sinks::Record;
use crate::telemetry::Clock;
use rust_decimal::prelude::ToPrimitive;
use std::sync::Arc;
use tokio::sync::broadcast;

const HOUR: i64 = 3_600_000;
#[cfg(test)]
const DAY: i64 = 86_400_000;

/// The next boundary of `size` after `now`, aligned to the UTC offset.
pub fn next_boundary(now: i64, size: i64, offset_ms: i64) -> i64 {
    ((now + offset_ms).div_euclid(size) + 1) * size - offset_ms
}

/// Records for every indicator of every scope over [from, to).
pub fn window_records(ev: &Evaluator, from: i64, to: i64, window: &str) -> Vec<Record> {
    let window: Arc<str> = Arc::from(window);
    let (inv, c) = match ev.evaluate(from, to, to) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, window = %window, "cannot evaluate indicators for the store");
            return Vec::new();
        }
    };
    let inv = &*inv;
    let mut scopes = vec![(Scope::Region, "region", Arc::<str>::from("region"))];
    scopes.extend(
        inv.sites
            .iter()
            .enumerate()
            .filter(|(_, s)| !s.removed)
            .map(|(i, s)| (Scope::Site(i as u32), "site", s.id.clone())),
    );
    scopes.extend(
        inv.enterprises
            .iter()
            .enumerate()
            .filter(|(_, e)| !e.removed)
            .map(|(i, e)| (Scope::Enterprise(i as u32), "enterprise", e.id.clone())),
    );
    let mut out = Vec::new();
    for (scope, kind, id) in scopes {
        for ind in c.indicators(inv, scope) {
            let target = ev.targets.iter().find(|t| {
                t.declared.is_none()
                    && t.indicator == ind.id
                    && parse_scope(inv, &t.scope) == Some(scope)
                    && (t.qualifier.is_none() || t.qualifier == ind.qualifier)
            });
            let shown = display_value(&ind);
            let completion = match (target, shown) {
                (Some(t), Some(v)) => {
                    crate::core::indicators::targets::completion(v, t.value, t.comparator).to_f64()
                }
                _ => None,
            };
            out.push(Record::Indicator(Box::new(IndicatorPoint {
                indicator: ind.id,
                qualifier: ind.qualifier.clone(),
                scope: kind,
                scope_id: id.clone(),
                window: window.clone(),
                at_ms: from,
                value: ind.value(),
                numerator: ind.numerator,
                denominator: ind.denominator,
                target: target.and_then(|t| t.value.to_f64()),
                completion,
            })));
        }
    }
    out
}

/// Whether this instance writes the deployment-wide records now (always alone; in cluster
/// mode, the owner of partition 0).
pub type Writes = Arc<dyn Fn() -> bool + Send + Sync>;

pub async fn run(
    ev: Arc<Evaluator>,
    queue: StoreQueue,
    clock: Clock,
    writes: Writes,
    mut shutdown: broadcast::Receiver<()>,
) {
    let offset = ev.settings.utc_offset_h * HOUR;
    let sizes: Vec<(i64, String)> = ev
        .settings
        .store_windows
        .iter()
        .filter_map(|w| crate::model::parse_window(w).map(|ms| (ms, w.clone())))
        .collect();
    if sizes.is_empty() {
        return;
    }
    loop {
        let now = clock.now_ms();
        let (at, due): (i64, Vec<(i64, String)>) = {
            let next = sizes
                .iter()
                .map(|(s, _)| next_boundary(now, *s, offset))
                .min()
                .unwrap_or(now + HOUR);
            (
                next,
                sizes
                    .iter()
                    .filter(|(s, _)| next_boundary(now, *s, offset) == next)
                    .cloned()
                    .collect(),
            )
        };
        tokio::select! {
            _ = shutdown.recv() => return,
            _ = clock.sleep_until(at + 50) => {}
        }
        for (size, name) in due {
            if !writes() {
                continue;
            }
            let ev = ev.clone();
            let label = name.clone();
            let records =
                tokio::task::spawn_blocking(move || window_records(&ev, at - size, at, &label))
                    .await
                    .unwrap_or_default();
            tracing::info!(
                window = %name,
                records = records.len(),
                "indicator window written to the store"
            );
            queue.push_all(records);
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn window_lengths() {
        use crate::model::parse_window;
        assert_eq!(parse_window("15m"), Some(900_000));
        assert_eq!(parse_window("1d"), Some(super::DAY));
        assert_eq!(parse_window("2s"), Some(2_000));
        for bad in ["", "h", "0h", "1w", "1.5h", "-1h"] {
            assert_eq!(parse_window(bad), None, "{bad}");
        }
    }

    #[test]
    fn boundaries_align_to_the_offset() {
        // 2026-01-01T00:30:00Z; Beijing midnight is 16:00Z.
        let now = 1_767_227_400_000;
        let off = 8 * super::HOUR;
        assert_eq!(
            super::next_boundary(now, super::HOUR, off),
            1_767_229_200_000
        );
        assert_eq!(
            super::next_boundary(now, super::DAY, off),
            1_767_283_200_000
        );
    }
}
