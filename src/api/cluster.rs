//! `GET /api/v1/cluster`: this instance's view of the cluster (docs/scaling.md): which
//! partitions it works on now, the members it sees and every lease's holder.

use super::Shared;
use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};
use std::sync::Arc;

#[utoipa::path(
    get,
    path = "/api/v1/cluster",
    tag = "health",
    security(("bearer" = [])),
    summary = "This instance's partitions, the members and the lease holders; viewer",
    responses(
        (status = 200, description = "The cluster as this instance sees it; `cluster` is null without `[cluster]`", body = super::schemas::ClusterAnswer),
        (status = 401, description = "No token, or not a valid one", body = crate::api::ErrorBody),
        (status = 403, description = "The token's role may not call this", body = crate::api::ErrorBody)
    )
)]
pub(super) async fn cluster(State(s): State<Arc<Shared>>) -> Json<Value> {
    match &s.cluster {
        Some(c) => Json(json!({"enabled": true, "cluster": c.view()})),
        None => Json(json!({"enabled": false, "cluster": null})),
    }
}
