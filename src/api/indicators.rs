//! `GET /api/v1/indicators` and `GET /api/v1/report`.

use super::{ApiError, Shared};
use crate::core::config::indicators::TargetConfig;
use crate::core::indicators::targets::assess;
use crate::core::indicators::{Computation, Indicator, Scope};
use crate::core::Inventory;
use crate::model::parse_time;
use crate::model::rfc3339_ms;
use crate::report::{self, display_value, parse_scope};
use axum::extract::{rejection::QueryRejection, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;

const DAY_MS: i64 = 86_400_000;

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct WindowQuery {
    /// `/api/v1/indicators` only: `region` (default), `site:{id}` or `enterprise:{id}`.
    scope: Option<String>,
    /// The window's start, RFC 3339 or epoch milliseconds; default 24 h before `to`.
    from: Option<String>,
    /// The window's end; default now.
    to: Option<String>,
    /// `/api/v1/report` only: `json` (default), `csv` or `markdown`.
    format: Option<String>,
    /// `/api/v1/report` only: `folded` (default) or `all` reasons.
    reasons: Option<String>,
}

fn window(q: &WindowQuery, now: i64) -> Result<(i64, i64), ApiError> {
    parse_window(&q.from, &q.to, now)
}

/// `from` and `to` of a query: RFC 3339 or epoch ms; `to` defaults to now, `from` to 24 h
/// before `to`; an empty window is refused.
pub(super) fn parse_window(
    from: &Option<String>,
    to: &Option<String>,
    now: i64,
) -> Result<(i64, i64), ApiError> {
    let t = |name: &str, v: &Option<String>| -> Result<Option<i64>, ApiError> {
        v.as_deref()
            .map(|s| {
                parse_time(s).ok_or_else(|| {
                    ApiError::BadRequest(format!(
                        "{name}={s:?} is neither RFC 3339 (2026-01-01T00:00:00+08:00) nor epoch milliseconds"
                    ))
                })
            })
            .transpose()
    };
    let to = t("to", to)?.unwrap_or(now);
    let from = t("from", from)?.unwrap_or(to - DAY_MS);
    if from >= to {
        return Err(ApiError::BadRequest(format!(
            "the window is empty: from ({}) must be before to ({})",
            rfc3339_ms(from),
            rfc3339_ms(to)
        )));
    }
    Ok((from, to))
}

/// The measured `[[targets]]` row of indicator `i` in `scope`, if one is set.
pub(super) fn target_for<'a>(
    targets: &'a [TargetConfig],
    inv: &Inventory,
    scope: Scope,
    i: &Indicator,
) -> Option<&'a TargetConfig> {
    targets.iter().find(|t| {
        t.declared.is_none()
            && t.indicator == i.id
            && parse_scope(inv, &t.scope) == Some(scope)
            && (t.qualifier.is_none() || t.qualifier == i.qualifier)
    })
}

pub(super) async fn evaluate(
    s: &Arc<Shared>,
    from: i64,
    to: i64,
) -> Result<(Arc<crate::core::Inventory>, Computation), ApiError> {
    let ev = s.evaluator.clone();
    let now = s.clock.now_ms();
    tokio::task::spawn_blocking(move || ev.evaluate(from, to, now))
        .await
        .map_err(|e| ApiError::Internal(format!("evaluation task failed: {e}")))?
        .map_err(|e| ApiError::Internal(e.to_string()))
}

#[utoipa::path(
    get,
    path = "/api/v1/indicators",
    tag = "indicators",
    security(("bearer" = [])),
    summary = "Indicators of a scope over a window (default the last 24 h); evaluator",
    params(WindowQuery),
    responses(
        (status = 200, description = "The indicators of the scope over the window", body = super::schemas::Indicators),
        (status = 400, description = "A query parameter is not valid", body = crate::api::ErrorBody),
        (status = 404, description = "The scope is not in the inventory", body = crate::api::ErrorBody),
        (status = 500, description = "The evaluation failed", body = crate::api::ErrorBody),
        (status = 401, description = "No token, or not a valid one", body = crate::api::ErrorBody),
        (status = 403, description = "The token's role may not call this", body = crate::api::ErrorBody)
    )
)]
pub async fn indicators(
    State(s): State<Arc<Shared>>,
    q: Result<Query<WindowQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) = q?;
    if q.reasons.is_some() {
        return Err(ApiError::BadRequest(
            "`reasons` applies to /api/v1/report; indicators carry no reasons".into(),
        ));
    }
    let (from, to) = window(&q, s.clock.now_ms())?;
    let scope_text = q.scope.clone().unwrap_or_else(|| "region".into());
    let (inv, c) = evaluate(&s, from, to).await?;
    let scope = parse_scope(&inv, &scope_text).ok_or_else(|| {
        ApiError::NotFound(format!(
            "scope {scope_text:?} is not region, site:{{id}} or enterprise:{{id}} of the inventory"
        ))
    })?;
    let targets = &s.evaluator.targets;
    let list: Vec<Value> = c
        .indicators(&inv, scope)
        .into_iter()
        .map(|i| {
            let target = target_for(targets, &inv, scope, &i);
            let shown = display_value(&i);
            let a = match (target, shown) {
                (Some(t), Some(v)) => Some(assess(v, t.value, t.comparator, t.weight)),
                _ => None,
            };
            json!({
                "id": i.id,
                "qualifier": i.qualifier,
                "unit": i.unit,
                "value": i.value(),
                "display": shown.map(|v| report::format_value(v, i.unit)),
                "numerator": i.numerator,
                "denominator": i.denominator,
                // The exact ratio (unit-milliseconds for time-weighted rates), for auditors.
                "exact": {"num": i.ratio.num as i64, "den": i.ratio.den as i64},
                "target": target.map(|t| json!({"comparator": t.comparator, "value": t.value, "label": t.label})),
                "completion_pct": a.map(|a| a.completion_pct),
                "deviation_pct": a.map(|a| a.deviation_pct),
            })
        })
        .collect();
    Ok(Json(json!({
        "scope": scope_text,
        "from": rfc3339_ms(c.from),
        "to": rfc3339_ms(c.to),
        "policy": c.policy,
        "indicators": list,
    })))
}

#[utoipa::path(
    get,
    path = "/api/v1/report",
    tag = "indicators",
    security(("bearer" = [])),
    summary = "The self-evaluation report (自评表) for a window, as JSON, CSV or Markdown; evaluator",
    params(WindowQuery),
    responses(
        (status = 200, description = "The report: JSON with format=json (the default), CSV with format=csv, \
            Markdown with format=markdown",
            content(
                (super::schemas::Report = "application/json"),
                (String = "text/csv"),
                (String = "text/markdown")
            )),
        (status = 400, description = "A query parameter is not valid", body = crate::api::ErrorBody),
        (status = 500, description = "The evaluation failed", body = crate::api::ErrorBody),
        (status = 401, description = "No token, or not a valid one", body = crate::api::ErrorBody),
        (status = 403, description = "The token's role may not call this", body = crate::api::ErrorBody)
    )
)]
pub async fn report(
    State(s): State<Arc<Shared>>,
    q: Result<Query<WindowQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = q?;
    if q.scope.is_some() {
        return Err(ApiError::BadRequest(
            "the report's rows carry their own scopes ([[targets]] scope); drop `scope`".into(),
        ));
    }
    let format = q.format.clone().unwrap_or_else(|| "json".into());
    if !matches!(format.as_str(), "json" | "csv" | "markdown") {
        return Err(ApiError::BadRequest(format!(
            "format {format:?} is not json, csv or markdown"
        )));
    }
    let listing = match q.reasons.as_deref() {
        None | Some("folded") => report::Listing::Folded,
        Some("all") => report::Listing::All,
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "reasons {other:?} is not folded or all"
            )))
        }
    };
    let (from, to) = window(&q, s.clock.now_ms())?;
    let (inv, c) = evaluate(&s, from, to).await?;
    let r = report::build_with(&inv, &c, &s.evaluator.targets, listing);
    Ok(match format.as_str() {
        "csv" => {
            let body = report::to_csv(&r).map_err(|e| ApiError::Internal(e.to_string()))?;
            (
                [
                    (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
                    (
                        header::CONTENT_DISPOSITION,
                        "attachment; filename=\"self-evaluation.csv\"",
                    ),
                ],
                body,
            )
                .into_response()
        }
        "markdown" => (
            [(header::CONTENT_TYPE, "text/markdown; charset=utf-8")],
            report::to_markdown(&r),
        )
            .into_response(),
        _ => Json(r).into_response(),
    })
}
