//! `POST /api/v1/ingest/{site}` and `/api/v1/ingest/{site}/{mapping}`: readings pushed over
//! HTTP(S). The answer comes once the readings are committed (see `sources::http`):
//! 200 all stored, 207 some elements refused (listed with their index, the others stored),
//! 422 every element refused, 400 / 413 the request refused whole, 503 not now.

use super::auth::Caller;
use super::{ApiError, Shared};
use crate::core::{Reason, Rejection};
use crate::sources::http::{Push, PushError, Pushed};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Extension, Json, Router};
use serde_json::json;
use std::sync::Arc;

/// The push routes, with their own body limit (`ingest.max_body_bytes`).
pub fn routes(shared: &Arc<Shared>) -> Option<Router<Arc<Shared>>> {
    let limit = shared.ingest.as_ref()?.settings().max_body_bytes;
    Some(
        Router::new()
            .route("/api/v1/ingest/{site}", post(native))
            .route("/api/v1/ingest/{site}/{mapping}", post(mapped))
            .layer(axum::extract::DefaultBodyLimit::max(limit)),
    )
}

#[utoipa::path(
    post,
    path = "/api/v1/ingest/{site}",
    tag = "inputs",
    security(("bearer" = [])),
    summary = "Readings pushed in the native JSON shape; platform (its sites) or admin",
    params(("site" = String, Path, description = "The site's id")),
    request_body(content = String, description = "JSON readings (docs/ingest)", content_type = "application/json"),
    responses(
        (status = 200, description = "All stored", body = super::schemas::PushAnswer),
        (status = 207, description = "Some elements refused (listed), the others stored", body = super::schemas::PushAnswer),
        (status = 422, description = "Every element refused", body = super::schemas::PushAnswer),
        (status = 400, description = "The request refused whole", body = super::schemas::PushRefusedWhole),
        (status = 413, description = "The body or batch is too large", body = super::schemas::PushRefusedWhole),
        (status = 404, description = "No such site, or push is off", body = crate::api::ErrorBody),
        (status = 503, description = "Not now (holding, stopping, not durable, timeout)", body = crate::api::ErrorBody),
        (status = 401, description = "No token, or not a valid one", body = crate::api::ErrorBody),
        (status = 403, description = "The token's role may not call this", body = crate::api::ErrorBody)
    )
)]
pub(super) async fn native(
    State(s): State<Arc<Shared>>,
    Path(site): Path<String>,
    caller: Option<Extension<Caller>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    push(&s, &site, None, caller, body).await
}

#[utoipa::path(
    post,
    path = "/api/v1/ingest/{site}/{mapping}",
    tag = "inputs",
    security(("bearer" = [])),
    summary = "Readings pushed in a vendor's shape, read by a configured mapping; platform (its sites) or admin",
    params(("site" = String, Path, description = "The site's id"), ("mapping" = String, Path, description = "The mapping's name")),
    request_body(content = String, description = "The vendor's JSON", content_type = "application/json"),
    responses(
        (status = 200, description = "All stored", body = super::schemas::PushAnswer),
        (status = 207, description = "Some elements refused (listed), the others stored", body = super::schemas::PushAnswer),
        (status = 422, description = "Every element refused", body = super::schemas::PushAnswer),
        (status = 400, description = "The request refused whole", body = super::schemas::PushRefusedWhole),
        (status = 413, description = "The body or batch is too large", body = super::schemas::PushRefusedWhole),
        (status = 404, description = "No such site or mapping, or push is off", body = crate::api::ErrorBody),
        (status = 503, description = "Not now (holding, stopping, not durable, timeout)", body = crate::api::ErrorBody),
        (status = 401, description = "No token, or not a valid one", body = crate::api::ErrorBody),
        (status = 403, description = "The token's role may not call this", body = crate::api::ErrorBody)
    )
)]
pub(super) async fn mapped(
    State(s): State<Arc<Shared>>,
    Path((site, mapping)): Path<(String, String)>,
    caller: Option<Extension<Caller>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    push(&s, &site, Some(&mapping), caller, body).await
}

async fn push(
    s: &Shared,
    site: &str,
    mapping: Option<&str>,
    caller: Option<Extension<Caller>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let Some(ingest) = &s.ingest else {
        return Err(ApiError::NotFound(
            "HTTP push is off (ingest.enabled)".into(),
        ));
    };
    let body = body.map_err(|e| match e {
        BytesRejection::FailedToBufferBody(_) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError::TooLarge(format!(
                "the body is over {} bytes (ingest.max_body_bytes); split the batch",
                ingest.settings().max_body_bytes
            ))
        }
        other => ApiError::BadRequest(other.body_text()),
    })?;
    let p = Push {
        site,
        mapping,
        body: &body,
        caller: caller.as_ref().map(|c| (&*c.name, c.role)),
    };
    match ingest.push(p).await {
        Ok(pushed) => Ok(answer(pushed)),
        Err(e) => Err(match e {
            PushError::UnknownSite(_) | PushError::UnknownMapping(_) => {
                ApiError::NotFound(e.to_string())
            }
            PushError::NotYourSite { .. } => ApiError::Forbidden(e.to_string()),
            PushError::Holding
            | PushError::Stopping
            | PushError::NotDurable
            | PushError::Timeout(_) => ApiError::Unavailable(e.to_string()),
        }),
    }
}

/// The status and body for a committed request.
fn answer(p: Pushed) -> Response {
    let whole = p.refused.iter().find(|r| r.origin.element.is_none());
    let status = match whole {
        Some(r) if matches!(r.reason, Reason::BatchTooLarge | Reason::PayloadTooLarge) => {
            StatusCode::PAYLOAD_TOO_LARGE
        }
        Some(_) => StatusCode::BAD_REQUEST,
        None if p.refused.is_empty() => StatusCode::OK,
        None if p.accepted == 0 => StatusCode::UNPROCESSABLE_ENTITY,
        None => StatusCode::MULTI_STATUS,
    };
    let refused: Vec<_> = p.refused.iter().map(refusal).collect();
    let mut body = json!({"accepted": p.accepted, "refused": refused});
    if let Some(r) = whole {
        body["error"] = json!({"code": r.reason.as_str(), "message": r.detail});
    }
    (status, Json(body)).into_response()
}

fn refusal(r: &Rejection) -> serde_json::Value {
    json!({
        "element": r.origin.element,
        "reason": r.reason.as_str(),
        "detail": r.detail,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::schemas::{answered, must_fit, PushAnswer, PushRefusedWhole};
    use crate::core::Origin;

    fn refused(element: Option<u32>, reason: Reason) -> Rejection {
        Rejection {
            reason,
            origin: Origin {
                topic: "http:p1".into(),
                element,
            },
            detail: "why".into(),
            received_ms: 1,
        }
    }

    /// Each answer of a committed push (200, 207, 422, 413 with the reason) reads into
    /// `schemas::PushAnswer`; a body refused before it was read is the error alone, which
    /// `PushRefusedWhole` takes and `PushAnswer` does not.
    #[tokio::test]
    async fn the_push_answers_read_into_their_shapes() {
        let push = |accepted, refused| Pushed { accepted, refused };
        let element = || refused(Some(1), Reason::ALL[0]);
        let whole = refused(None, Reason::BatchTooLarge);
        for (pushed, want) in [
            (push(2, vec![]), 200),
            (push(1, vec![element()]), 207),
            (push(0, vec![element()]), 422),
            (push(0, vec![whole]), 413),
        ] {
            let (status, v) = answered(answer(pushed)).await;
            assert_eq!(status, want, "{v}");
            must_fit::<PushAnswer>(&v);
            must_fit::<PushRefusedWhole>(&v);
        }
        let r = ApiError::TooLarge("over".into()).into_response();
        let (status, v) = answered(r).await;
        assert_eq!(status, 413);
        must_fit::<PushRefusedWhole>(&v);
        assert!(serde_json::from_value::<PushAnswer>(v).is_err());
    }
}
