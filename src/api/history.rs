//! `GET /api/v1/devices/{site}/{id}/history`: one device's liveness over a window (default
//! the last 24 h) — its state when the window began and every online/offline transition in
//! it, from the journal — and its recent readings (the core's last `gateway.recent_values`),
//! for the console's timeline and chart of the device.

use super::indicators::parse_window;
use super::{ApiError, Shared};
use crate::model::rfc3339_ms;
use axum::extract::{rejection::QueryRejection, Path, Query, State};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;

/// Transitions listed at most; a device flapping more in the window says `truncated`.
const MAX_TRANSITIONS: usize = 10_000;
/// The longest window asked for.
const MAX_WINDOW_MS: i64 = 31 * 86_400_000;

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// The window's start, RFC 3339 or epoch milliseconds; default 24 h before `to`.
    from: Option<String>,
    /// The window's end; default now. At most 31 days after `from`.
    to: Option<String>,
}

#[utoipa::path(
    get,
    path = "/api/v1/devices/{site}/{id}/history",
    tag = "inventory",
    security(("bearer" = [])),
    summary = "One device's online/offline timeline over a window and its recent readings; viewer",
    params(
        ("site" = String, Path, description = "The device's site"),
        ("id" = String, Path, description = "The device's id"),
        HistoryQuery
    ),
    responses(
        (status = 200, description = "The device's timeline and recent readings", body = super::schemas::DeviceHistory),
        (status = 400, description = "A query parameter is not valid", body = crate::api::ErrorBody),
        (status = 404, description = "No such device in that site", body = crate::api::ErrorBody),
        (status = 500, description = "The journal could not be read", body = crate::api::ErrorBody),
        (status = 401, description = "No token, or not a valid one", body = crate::api::ErrorBody),
        (status = 403, description = "The token's role may not call this", body = crate::api::ErrorBody)
    )
)]
pub(super) async fn history(
    State(s): State<Arc<Shared>>,
    Path((site, id)): Path<(String, String)>,
    q: Result<Query<HistoryQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) = q?;
    let now = s.clock.now_ms();
    let (from, to) = parse_window(&q.from, &q.to, now)?;
    if to - from > MAX_WINDOW_MS {
        return Err(ApiError::BadRequest(
            "the window is longer than 31 days: ask for a shorter one".into(),
        ));
    }
    let snap = s.read_model.load_full();
    let idx = snap.inventory.lookup(&site, &id).map_err(|_| {
        ApiError::NotFound(format!(
            "no device {:?} in site {:?} (see GET /api/v1/devices?site=…)",
            crate::core::event::shorten(&id, 64),
            crate::core::event::shorten(&site, 64)
        ))
    })?;
    let unit = snap.inventory.devices[idx as usize].kind.unit();
    let (channel, values) = {
        let core = s.core();
        let (c, v) = core.recent_values(idx);
        (c.map(str::to_string), v)
    };
    let pool = s.evaluator.journal.clone();
    let (site_q, id_q) = (site.clone(), id.clone());
    let window = (from, to.min(now));
    // A window up to now includes a change at now (the device's state now), which [from,
    // now) would leave out.
    let query = (from, if to >= now { now + 1 } else { to });
    let (before, rows) = tokio::task::spawn_blocking(move || {
        pool.with(|j| j.timeline_of(&site_q, &id_q, query, MAX_TRANSITIONS + 1))
    })
    .await
    .map_err(|e| ApiError::Internal(format!("journal query failed: {e}")))?
    .map_err(|e| ApiError::Internal(e.to_string()))?;
    let truncated = rows.len() > MAX_TRANSITIONS;
    let transitions: Vec<Value> = rows
        .iter()
        .take(MAX_TRANSITIONS)
        .map(|t| json!({"at": rfc3339_ms(t.at_ms), "online": t.online, "cause": t.cause}))
        .collect();
    let state_at_from = match before {
        None => "never",
        Some(true) => "online",
        Some(false) => "offline",
    };
    Ok(Json(json!({
        "site": site,
        "device": id,
        "from": rfc3339_ms(from),
        "to": rfc3339_ms(window.1),
        "state_at_from": state_at_from,
        "transitions": transitions,
        "truncated": truncated,
        "channel": channel,
        "unit": unit,
        "values": values
            .iter()
            .map(|(t, v)| json!({"ts": rfc3339_ms(*t), "value": v}))
            .collect::<Vec<_>>(),
    })))
}
