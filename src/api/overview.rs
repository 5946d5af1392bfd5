//! `GET /api/v1/overview`: what the console's 总览 and the wall show, in one small answer —
//! the region and each site now (counts, 联网在线率, alarms), over a window (联网在线率
//! time-weighted, 覆盖率, 预警响应率, as exact ratios), against their `[[targets]]`, with the
//! Modbus endpoints down and the mines whose uploads are late. Never the device list.
//!
//! The window's figures are an evaluation over the history (the same as
//! `/api/v1/indicators`'), which at 100,000 devices takes longer than an overview may; they
//! are kept for [`WINDOW_TTL_MS`] per window, computed again in the background once half of
//! that has passed and the window is asked for again, and the answer says when they were
//! computed.

use super::indicators::{evaluate, parse_window, target_for};
use super::{ApiError, Shared};
use crate::core::indicators::headline::Headline;
use crate::core::indicators::ledger::Ledger;
use crate::core::indicators::targets::assess;
use crate::core::indicators::{Indicator, Scope};
use crate::core::Inventory;
use crate::model::rfc3339_ms;
use crate::report::{display_value, format_value};
use axum::extract::{rejection::QueryRejection, Query, State};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// How long a window's figures are reused (by the gateway's clock). An open window (to
/// now) is recomputed after this; the overview's "now" figures are always current.
pub const WINDOW_TTL_MS: i64 = 30_000;
/// Windows kept at once (the console's presets and a few custom ones).
const CACHE_WINDOWS: usize = 8;

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct OverviewQuery {
    /// The window's start, RFC 3339 or epoch milliseconds; default 24 h before `to`.
    from: Option<String>,
    /// The window's end; default now.
    to: Option<String>,
}

/// A window's figures, as computed once.
#[derive(Debug)]
struct WindowFigures {
    computed_ms: i64,
    from: i64,
    to: i64,
    region: Value,
    /// By site index.
    sites: Vec<Value>,
    targets: Vec<Value>,
}

/// A requested window: (from, to), `to` `None` for "up to now".
type Key = (i64, Option<i64>);

/// How long after the last overview the ledger is still kept current in the background, so
/// an operator coming back to the page does not wait for an evaluation.
pub const KEEP_WARM_MS: i64 = 10 * 60_000;

/// One evaluation kept by site ([`Ledger`]), with when and on which inventory.
#[derive(Debug)]
struct Kept {
    computed_ms: i64,
    inv: Arc<Inventory>,
    ledger: Ledger,
}

/// The window figures kept between requests: the ledger, which answers most windows, and
/// by requested window those it does not.
#[derive(Debug, Default)]
pub struct Cache {
    ledger: Mutex<Option<Arc<Kept>>>,
    /// When the overview was last asked for (ms): the ledger's keeper stops 10 min after.
    last_asked_ms: std::sync::atomic::AtomicI64,
    /// Whether a keeper task is renewing the ledger.
    keeper: std::sync::atomic::AtomicBool,
    windows: Mutex<HashMap<Key, Arc<WindowFigures>>>,
    /// Windows being computed again in the background (one refresh at a time each).
    refreshing: Mutex<std::collections::HashSet<Key>>,
}

impl Cache {
    fn ledger(&self, now: i64) -> Option<Arc<Kept>> {
        let l = self.ledger.lock().unwrap_or_else(|p| p.into_inner());
        l.as_ref()
            .filter(|k| now - k.computed_ms < WINDOW_TTL_MS && k.computed_ms <= now)
            .cloned()
    }

    fn put_ledger(&self, k: Arc<Kept>) {
        *self.ledger.lock().unwrap_or_else(|p| p.into_inner()) = Some(k);
    }

    fn get(&self, key: Key, now: i64) -> Option<Arc<WindowFigures>> {
        let m = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        m.get(&key)
            .filter(|w| now - w.computed_ms < WINDOW_TTL_MS && w.computed_ms <= now)
            .cloned()
    }

    /// Whether the caller is to refresh `key` (no refresh of it is under way).
    fn start_refresh(&self, key: Key) -> bool {
        let mut r = self.refreshing.lock().unwrap_or_else(|p| p.into_inner());
        r.insert(key)
    }

    fn end_refresh(&self, key: Key) {
        let mut r = self.refreshing.lock().unwrap_or_else(|p| p.into_inner());
        r.remove(&key);
    }

    fn put(&self, key: Key, w: Arc<WindowFigures>) {
        let mut m = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        if m.len() >= CACHE_WINDOWS && !m.contains_key(&key) {
            // Drop the oldest computation: presets come back, odd windows do not.
            if let Some(k) = m.iter().min_by_key(|(_, w)| w.computed_ms).map(|(k, _)| *k) {
                m.remove(&k);
            }
        }
        m.insert(key, w);
    }
}

/// An exact ratio as `[numerator, denominator]` (unit-milliseconds for the online rate and
/// coverage, alarms for the response rate); `[0, 0]` when nothing was counted.
fn exact(i: &Indicator) -> Value {
    json!([i.ratio.num as i64, i.ratio.den as i64])
}

fn window_json(h: &Headline) -> Value {
    json!({
        "online_rate": exact(&h.online_rate),
        "coverage_rate": exact(&h.coverage_rate),
        "alarm_response_rate": exact(&h.alarm_response_rate),
    })
}

/// The `[[targets]]` rows on the overview's three indicators, region and sites, each with
/// the window's actual value and its completion.
fn targets_json(s: &Shared, inv: &Inventory, region: &Headline, sites: &[Headline]) -> Vec<Value> {
    let scopes = std::iter::once((Scope::Region, "region".to_string(), region)).chain(
        sites
            .iter()
            .enumerate()
            .filter(|(i, _)| !inv.sites[*i].removed)
            .map(|(i, h)| {
                (
                    Scope::Site(i as u32),
                    format!("site:{}", inv.sites[i].id),
                    h,
                )
            }),
    );
    let mut out = Vec::new();
    for (scope, name, h) in scopes {
        for ind in [&h.online_rate, &h.coverage_rate, &h.alarm_response_rate] {
            let Some(t) = target_for(&s.evaluator.targets, inv, scope, ind) else {
                continue;
            };
            let shown = display_value(ind);
            let a = shown.map(|v| assess(v, t.value, t.comparator, t.weight));
            out.push(json!({
                "scope": name,
                "indicator": ind.id,
                "comparator": t.comparator,
                "target": t.value,
                "label": t.label,
                "actual": shown.map(|v| format_value(v, ind.unit)),
                "completion_pct": a.map(|a| a.completion_pct),
            }));
        }
    }
    out
}

/// Builds the ledger up to now and keeps it.
async fn build_ledger(s: &Arc<Shared>) -> Result<Arc<Kept>, ApiError> {
    let ev = s.evaluator.clone();
    let now = s.clock.now_ms();
    let (inv, ledger) = tokio::task::spawn_blocking(move || ev.ledger(now))
        .await
        .map_err(|e| ApiError::Internal(format!("evaluation task failed: {e}")))?
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let k = Arc::new(Kept {
        computed_ms: now,
        inv,
        ledger,
    });
    s.overview.put_ledger(k.clone());
    Ok(k)
}

/// Renews the ledger every half of its life while the overview was asked for in the last
/// [`KEEP_WARM_MS`], so no request waits for an evaluation; then stops.
fn keep_warm(s: &Arc<Shared>) {
    use std::sync::atomic::Ordering;
    if s.overview.keeper.swap(true, Ordering::AcqRel) {
        return;
    }
    let s = s.clone();
    tokio::spawn(async move {
        loop {
            let next = s.clock.now_ms() + WINDOW_TTL_MS / 2;
            s.clock.sleep_until(next).await;
            let last = s.overview.last_asked_ms.load(Ordering::Acquire);
            if s.clock.now_ms() - last > KEEP_WARM_MS {
                break;
            }
            if let Err(e) = build_ledger(&s).await {
                tracing::warn!(error = %e, "cannot renew the overview's figures");
            }
        }
        s.overview.keeper.store(false, Ordering::Release);
    });
}

/// The window's figures from the ledger, when it keeps both ends of the window.
async fn from_ledger(
    s: &Arc<Shared>,
    from: i64,
    to: i64,
    open: bool,
) -> Result<Option<Arc<WindowFigures>>, ApiError> {
    let now = s.clock.now_ms();
    s.overview
        .last_asked_ms
        .store(now, std::sync::atomic::Ordering::Release);
    let k = match s.overview.ledger(now) {
        Some(k) => k,
        None => build_ledger(s).await?,
    };
    keep_warm(s);
    // An open window ends where the ledger does, as a kept window's figures would.
    let to = if open { k.ledger.to } else { to };
    let Some((region, sites)) = k.ledger.headlines(from, to) else {
        return Ok(None);
    };
    Ok(Some(Arc::new(WindowFigures {
        computed_ms: k.computed_ms,
        from,
        to,
        region: window_json(&region),
        sites: sites.iter().map(window_json).collect(),
        targets: targets_json(s, &k.inv, &region, &sites),
    })))
}

async fn window_figures(
    s: &Arc<Shared>,
    from: i64,
    to: i64,
    open: bool,
) -> Result<Arc<WindowFigures>, ApiError> {
    if let Some(w) = from_ledger(s, from, to, open).await? {
        return Ok(w);
    }
    let now = s.clock.now_ms();
    let key = (from, (!open).then_some(to));
    if let Some(w) = s.overview.get(key, now) {
        // Refresh ahead: past half its life a window is computed again in the background,
        // so a page that keeps asking never waits for an evaluation.
        if now - w.computed_ms >= WINDOW_TTL_MS / 2 && s.overview.start_refresh(key) {
            let s = s.clone();
            tokio::spawn(async move {
                let to = if open { s.clock.now_ms() } else { to };
                if let Ok(w) = compute_window(&s, from, to).await {
                    s.overview.put(key, w);
                }
                s.overview.end_refresh(key);
            });
        }
        return Ok(w);
    }
    let w = compute_window(s, from, to).await?;
    s.overview.put(key, w.clone());
    Ok(w)
}

async fn compute_window(
    s: &Arc<Shared>,
    from: i64,
    to: i64,
) -> Result<Arc<WindowFigures>, ApiError> {
    let now = s.clock.now_ms();
    let (inv, c) = evaluate(s, from, to).await?;
    let (region, sites) = c.headlines(&inv);
    Ok(Arc::new(WindowFigures {
        computed_ms: now,
        from: c.from,
        to: c.to,
        region: window_json(&region),
        sites: sites.iter().map(window_json).collect(),
        targets: targets_json(s, &inv, &region, &sites),
    }))
}

/// Modbus endpoints down (not connected, or paused), in all and by site of their devices.
/// In cluster mode an endpoint another instance polls is that instance's to show.
fn endpoints_down(s: &Shared, inv: &Inventory) -> (usize, usize, Vec<usize>) {
    use std::sync::atomic::Ordering::Relaxed;
    let mut by_site = vec![0; inv.sites.len()];
    let mut down = 0;
    for e in &s.modbus.endpoints {
        let up = e.link.connected() && !e.paused.load(Relaxed);
        if up || e.elsewhere.load(Relaxed) {
            continue;
        }
        down += 1;
        let mut sites: Vec<u32> = e.devices.iter().filter_map(|d| inv.site(&d.site)).collect();
        sites.sort_unstable();
        sites.dedup();
        for i in sites {
            by_site[i as usize] += 1;
        }
    }
    (s.modbus.endpoints.len(), down, by_site)
}

/// The window asked for. Unlike the indicators', a window that starts after now (a browser
/// whose clock is ahead, just after midnight) is not refused when `to` is left to now: it
/// is empty, and its figures are 0 ÷ 0.
fn overview_window(q: &OverviewQuery, now: i64) -> Result<(i64, i64), ApiError> {
    match parse_window(&q.from, &q.to, now) {
        Err(e) if q.to.is_none() => {
            let from = q.from.as_deref().and_then(crate::model::parse_time);
            match from {
                Some(from) if from >= now => Ok((from, from)),
                _ => Err(e),
            }
        }
        w => w,
    }
}

#[utoipa::path(
    get,
    path = "/api/v1/overview",
    tag = "inventory",
    security(("bearer" = [])),
    summary = "The region and each site now and over a window, against their targets; viewer",
    params(OverviewQuery),
    responses(
        (status = 200, description = "The overview", body = super::schemas::Overview),
        (status = 400, description = "A query parameter is not valid", body = crate::api::ErrorBody),
        (status = 500, description = "The evaluation failed", body = crate::api::ErrorBody),
        (status = 401, description = "No token, or not a valid one", body = crate::api::ErrorBody),
        (status = 403, description = "The token's role may not call this", body = crate::api::ErrorBody)
    )
)]
pub(super) async fn overview(
    State(s): State<Arc<Shared>>,
    q: Result<Query<OverviewQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) = q?;
    let now = s.clock.now_ms();
    let (from, to) = overview_window(&q, now)?;
    let w = window_figures(&s, from, to, to >= now).await?;
    let snap = s.read_model.load_full();
    let inv = &snap.inventory;
    let (endpoints, down, down_by_site) = endpoints_down(&s, inv);
    let mines = s.mines.lateness(now);
    let sites: Vec<Value> = (0..inv.sites.len())
        .filter(|&i| !inv.sites[i].removed)
        .map(|i| {
            let site = &inv.sites[i];
            let c = &snap.sites[i];
            let mine = mines
                .iter()
                .find(|m| m.site == *site.id)
                .map(|m| json!({"code": &m.mine_code, "late": m.late}));
            json!({
                "id": &*site.id,
                "name": &site.name,
                "kind": site.kind,
                "status": site.status,
                "counted": c.counted,
                "online": c.online,
                "offline": c.offline,
                "never": c.never,
                "faulty": c.faulty,
                "online_rate": c.online_rate().value,
                "alarms_active": snap.site_alarms[i].active,
                "alarms_unacked": snap.site_alarms[i].unacknowledged,
                "endpoints_down": down_by_site[i],
                "mine": mine,
                "window": w.sites.get(i).cloned().unwrap_or(Value::Null),
            })
        })
        .collect();
    let r = &snap.region;
    Ok(Json(json!({
        "now": rfc3339_ms(now),
        "window": {
            "from": rfc3339_ms(w.from),
            "to": rfc3339_ms(w.to),
            "computed_at": rfc3339_ms(w.computed_ms),
        },
        "region": {
            "counted": r.counted,
            "online": r.online,
            "offline": r.offline,
            "never": r.never,
            "faulty": r.faulty,
            "online_rate": r.online_rate().value,
            "alarms_active": snap.region_alarms.active,
            "alarms_unacked": snap.region_alarms.unacknowledged,
            "endpoints": endpoints,
            "endpoints_down": down,
            "mines": mines.len(),
            "mines_late": mines.iter().filter(|m| m.late).count(),
            "window": w.region,
        },
        "targets": w.targets,
        "sites": sites,
    })))
}
