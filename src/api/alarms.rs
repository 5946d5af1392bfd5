//! `GET /api/v1/alarms`, `GET /api/v1/alarms/{id}`, `POST /api/v1/alarms/{id}/ack`.

use super::Command;
use super::{ApiError, Shared};
use crate::core::alarms::view::AlarmView;
use crate::core::alarms::AckError;
use crate::model::parse_time;
use crate::state::{AlarmFilter, Journal};
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;

const STATES: [&str; 6] = [
    "active_unacked",
    "active_acked",
    "cleared_unacked",
    "cleared_acked",
    "active",
    "open",
];

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only this site's alarms.
    site: Option<String>,
    /// Only this device's alarms.
    device: Option<String>,
    /// `active_unacked`, `active_acked`, `cleared_unacked`, `cleared_acked`, `active` or
    /// `open` (not both cleared and acknowledged).
    state: Option<String>,
    /// `value`, `rate`, `offline` or `fault`.
    #[serde(rename = "type")]
    alarm_type: Option<String>,
    /// Raised at or after (RFC 3339 or epoch milliseconds).
    from: Option<String>,
    /// Raised before.
    to: Option<String>,
    /// At most this many (default 1000, 1 to 100000).
    limit: Option<usize>,
}

fn alarm_id(s: &str) -> Result<u64, ApiError> {
    s.parse().map_err(|_| {
        ApiError::NotFound(format!("{s:?} is not an alarm id (alarm ids are numbers)"))
    })
}

async fn with_journal<T: Send + 'static>(
    s: &Arc<Shared>,
    f: impl FnOnce(&Journal) -> Result<T, crate::state::StateError> + Send + 'static,
) -> Result<T, ApiError> {
    let pool = s.evaluator.journal.clone();
    tokio::task::spawn_blocking(move || pool.with(f))
        .await
        .map_err(|e| ApiError::Internal(format!("state query failed: {e}")))?
        .map_err(|e| ApiError::Internal(e.to_string()))
}

#[utoipa::path(
    get,
    path = "/api/v1/alarms",
    tag = "alarms",
    security(("bearer" = [])),
    summary = "Alarms from the journal, newest first; viewer",
    params(ListQuery),
    responses(
        (status = 200, description = "The alarms, newest first", body = super::schemas::AlarmList),
        (status = 400, description = "A query parameter is not valid", body = crate::api::ErrorBody),
        (status = 404, description = "The site is not in the inventory", body = crate::api::ErrorBody),
        (status = 500, description = "The journal could not be read", body = crate::api::ErrorBody),
        (status = 401, description = "No token, or not a valid one", body = crate::api::ErrorBody),
        (status = 403, description = "The token's role may not call this", body = crate::api::ErrorBody)
    )
)]
pub async fn list(
    State(s): State<Arc<Shared>>,
    q: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) = q?;
    let time = |name: &str, v: &Option<String>| -> Result<Option<i64>, ApiError> {
        v.as_deref()
            .map(|t| {
                parse_time(t).ok_or_else(|| {
                    ApiError::BadRequest(format!(
                        "{name}={t:?} is neither RFC 3339 nor epoch milliseconds"
                    ))
                })
            })
            .transpose()
    };
    if let Some(st) = q.state.as_deref().filter(|st| !STATES.contains(st)) {
        return Err(ApiError::BadRequest(format!(
            "state={st:?} is not one of {}",
            STATES.join(", ")
        )));
    }
    if let Some(t) = q
        .alarm_type
        .as_deref()
        .filter(|t| crate::core::alarms::AlarmType::parse(t).is_none())
    {
        return Err(ApiError::BadRequest(format!(
            "type={t:?} is not value, rate, offline or fault"
        )));
    }
    if let Some(site) = q.site.as_deref() {
        if s.evaluator.inventory().site(site).is_none() {
            return Err(ApiError::NotFound(format!(
                "site {site:?} is not in the inventory"
            )));
        }
    }
    let f = AlarmFilter {
        site: q.site,
        device: q.device,
        state: q.state,
        alarm_type: q.alarm_type,
        from: time("from", &q.from)?,
        to: time("to", &q.to)?,
        limit: q.limit.unwrap_or(1000).clamp(1, 100_000),
    };
    let now = s.clock.now_ms();
    let alarms = with_journal(&s, move |j| j.alarms(&f, now)).await?;
    Ok(Json(json!({"count": alarms.len(), "alarms": alarms})))
}

#[utoipa::path(
    get,
    path = "/api/v1/alarms/{id}",
    tag = "alarms",
    security(("bearer" = [])),
    summary = "One alarm with its full history; viewer",
    params(("id" = String, Path, description = "The alarm's id (a number)")),
    responses(
        (status = 200, description = "The alarm with its history", body = super::schemas::Alarm),
        (status = 404, description = "No such alarm", body = crate::api::ErrorBody),
        (status = 401, description = "No token, or not a valid one", body = crate::api::ErrorBody),
        (status = 403, description = "The token's role may not call this", body = crate::api::ErrorBody)
    )
)]
pub async fn get_one(
    State(s): State<Arc<Shared>>,
    Path(id): Path<String>,
) -> Result<Json<AlarmView>, ApiError> {
    let id = alarm_id(&id)?;
    let now = s.clock.now_ms();
    // The live book first (it is ahead of the disk by the journal's write delay).
    let live = {
        let core = s.core();
        core.alarms
            .get(id)
            .map(|r| AlarmView::of(r, &core.inventory, now, true))
    };
    if let Some(v) = live {
        return Ok(Json(v));
    }
    with_journal(&s, move |j| j.alarm(id, now))
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("no alarm {id}")))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AckBody {
    /// Who acknowledged (1 to `mqtt.max_id_bytes` bytes).
    by: String,
    /// What was done (at most `max_note_bytes`).
    #[serde(default)]
    note: String,
    /// Acknowledge only if the alarm belongs to this site.
    site: Option<String>,
}

#[utoipa::path(
    post,
    path = "/api/v1/alarms/{id}/ack",
    tag = "alarms",
    security(("bearer" = [])),
    summary = "Acknowledge an alarm; operator",
    params(("id" = String, Path, description = "The alarm's id (a number)")),
    request_body = AckBody,
    responses(
        (status = 200, description = "Acknowledged now, or already (the first acknowledgement stands)", body = super::schemas::AckAnswer),
        (status = 400, description = "A query parameter is not valid", body = crate::api::ErrorBody),
        (status = 404, description = "No such alarm, or of another site", body = crate::api::ErrorBody),
        (status = 413, description = "The body is over api.max_body_bytes", body = crate::api::ErrorBody),
        (status = 500, description = "The gateway is stopping", body = crate::api::ErrorBody),
        (status = 503, description = "Cluster mode: NATS has not taken the acknowledgement within 10 s (it stays queued), or this instance has not applied it yet", body = crate::api::ErrorBody),
        (status = 401, description = "No token, or not a valid one", body = crate::api::ErrorBody),
        (status = 403, description = "The token's role may not call this", body = crate::api::ErrorBody)
    )
)]
pub async fn ack(
    State(s): State<Arc<Shared>>,
    Path(id): Path<String>,
    caller: Option<axum::Extension<super::auth::Caller>>,
    peer: Option<axum::Extension<axum::extract::ConnectInfo<std::net::SocketAddr>>>,
    body: Result<Json<AckBody>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let id = alarm_id(&id)?;
    let Json(b) = body.map_err(|e| {
        if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
            return ApiError::TooLarge("the body is larger than api.max_body_bytes allows".into());
        }
        ApiError::BadRequest(format!(
            "the body must be JSON {{\"by\": \"…\", \"note\": \"…\"}}: {}",
            e.body_text()
        ))
    })?;
    let (max_by, max_note) = s.ack_limits;
    if b.by.trim().is_empty() || b.by.len() > max_by {
        return Err(ApiError::BadRequest(format!(
            "\"by\" must name who acknowledged, 1 to {max_by} bytes"
        )));
    }
    if b.note.len() > max_note {
        return Err(ApiError::BadRequest(format!(
            "\"note\" is {} bytes, the limit is {max_note}",
            b.note.len()
        )));
    }
    let by = b.by.clone();
    let via = match caller {
        Some(axum::Extension(c)) => format!("http:{}", c.name),
        None => "http".into(),
    };
    let now = s.clock.now_ms();
    let res = if s.cluster.is_some() {
        let asked = super::cluster_ack::Asked {
            id,
            site: b.site.clone(),
            by: b.by,
            note: b.note,
            via,
        };
        match super::cluster_ack::acknowledge(&s, asked).await? {
            Some((view, first)) => Ok((view, first)),
            None => Err(AckError::Unknown(id)),
        }
    } else {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let cmd = Command::Ack {
            id,
            site: b.site.clone(),
            by: b.by,
            note: b.note,
            via,
            reply: tx,
        };
        let unavailable = || ApiError::Internal("the gateway is shutting down".into());
        s.commands.send(cmd).await.map_err(|_| unavailable())?;
        let res = rx.await.map_err(|_| unavailable())?;
        let inv = s.evaluator.inventory();
        res.map(|r| (AlarmView::of(&r.record, &inv, now, true), r.first))
    };
    match res {
        Ok((view, first)) => {
            if first {
                s.audit.record(
                    "alarm_acknowledged",
                    &by,
                    &peer.map_or_else(|| "-".into(), |p| p.0 .0.to_string()),
                    1,
                    json!({
                        "alarm": id,
                        "site": view.site,
                        "device": view.device,
                        "via": view.acknowledged_via,
                        "note": view.note,
                        "outcome": view.outcome,
                    }),
                );
            }
            Ok(Json(json!({
                "acknowledged": first,
                "message": if first {
                    format!("alarm {id} acknowledged")
                } else {
                    format!("alarm {id} was already acknowledged; the first acknowledgement stands")
                },
                "alarm": view,
            })))
        }
        Err(AckError::WrongSite { alarm_site, .. }) => Err(ApiError::NotFound(format!(
            "alarm {id} belongs to site {:?}, not {:?}; nothing was changed",
            s.evaluator.inventory().sites[alarm_site as usize].id,
            b.site.unwrap_or_default()
        ))),
        Err(AckError::Unknown(_)) => {
            // Closed long ago and no longer in memory: it was acknowledged then.
            match with_journal(&s, move |j| j.alarm(id, now)).await? {
                Some(v) if v.acknowledged_ms.is_none() => Err(ApiError::NotFound(format!(
                    "alarm {id} is of device {:?}, which is no longer in the inventory; nothing was changed",
                    v.device
                ))),
                Some(v) if v.site == *b.site.as_deref().unwrap_or(&v.site) => Ok(Json(json!({
                    "acknowledged": false,
                    "message": format!("alarm {id} was already acknowledged; the first acknowledgement stands"),
                    "alarm": v,
                }))),
                Some(v) => Err(ApiError::NotFound(format!(
                    "alarm {id} belongs to site {:?}, not {:?}; nothing was changed",
                    v.site,
                    b.site.unwrap_or_default()
                ))),
                None => Err(ApiError::NotFound(format!("no alarm {id}; nothing was changed"))),
            }
        }
    }
}
