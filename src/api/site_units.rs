//! `GET /api/v1/sites/{id}/zones` and `/systems`: a site's zones with their coverage now
//! and its systems with their quorum state now, from the published read model — what the
//! console's 站点 view shows beside the device table.

use super::{ApiError, Shared};
use crate::core::indicators::engine::system_kind_str;
use crate::core::snapshot::Snapshot;
use crate::core::stats::Counts;
use axum::extract::{Path, State};
use axum::Json;
use serde_json::{json, Value};
use std::sync::Arc;

fn site_of(snap: &Snapshot, id: &str) -> Result<u32, ApiError> {
    snap.inventory
        .site(id)
        .ok_or_else(|| ApiError::NotFound(format!("site {id:?} is not in the inventory")))
}

fn counts_json(c: &Counts) -> Value {
    json!({
        "devices": c.planned,
        "counted": c.counted,
        "online": c.counted_online,
        "offline": c.offline,
        "never": c.never,
    })
}

#[utoipa::path(
    get,
    path = "/api/v1/sites/{id}/zones",
    tag = "inventory",
    security(("bearer" = [])),
    summary = "A site's zones, each covered now or not (覆盖率's unit); viewer",
    params(("id" = String, Path, description = "The site's id")),
    responses(
        (status = 200, description = "The site's zones", body = super::schemas::SiteZones),
        (status = 404, description = "No such site", body = crate::api::ErrorBody),
        (status = 401, description = "No token, or not a valid one", body = crate::api::ErrorBody),
        (status = 403, description = "The token's role may not call this", body = crate::api::ErrorBody)
    )
)]
pub(super) async fn zones(
    State(s): State<Arc<Shared>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let snap = s.read_model.load_full();
    let site = site_of(&snap, &id)?;
    let (counts, _) = snap.group_counts(site);
    let inv = &snap.inventory;
    let zones: Vec<Value> = (0..inv.zones.len())
        .filter(|&z| inv.zones[z].site == site && !inv.zones[z].removed)
        .map(|z| {
            let c = &counts[z];
            let mut v = counts_json(c);
            v["id"] = json!(&*inv.zones[z].id);
            v["name"] = json!(&inv.zones[z].name);
            // As 覆盖率 counts it: at least one assigned device online.
            v["covered"] = json!(c.counted_online >= 1);
            v
        })
        .collect();
    let covered = zones.iter().filter(|z| z["covered"] == true).count();
    Ok(Json(json!({
        "site": id,
        "total": zones.len(),
        "covered": covered,
        "zones": zones,
    })))
}

#[utoipa::path(
    get,
    path = "/api/v1/sites/{id}/systems",
    tag = "inventory",
    security(("bearer" = [])),
    summary = "A site's systems, each online now or not by the online quorum; viewer",
    params(("id" = String, Path, description = "The site's id")),
    responses(
        (status = 200, description = "The site's systems", body = super::schemas::SiteSystems),
        (status = 404, description = "No such site", body = crate::api::ErrorBody),
        (status = 401, description = "No token, or not a valid one", body = crate::api::ErrorBody),
        (status = 403, description = "The token's role may not call this", body = crate::api::ErrorBody)
    )
)]
pub(super) async fn systems(
    State(s): State<Arc<Shared>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let snap = s.read_model.load_full();
    let site = site_of(&snap, &id)?;
    let (_, counts) = snap.group_counts(site);
    let inv = &snap.inventory;
    let quorum = s.evaluator.settings.policy().online_quorum;
    let systems: Vec<Value> = (0..inv.systems.len())
        .filter(|&i| inv.systems[i].site == site && !inv.systems[i].removed)
        .map(|i| {
            let sys = &inv.systems[i];
            let c = &counts[i];
            let need = quorum.need(c.counted as usize) as u64;
            let mut v = counts_json(c);
            v["id"] = json!(&*sys.id);
            v["name"] = json!(sys.name);
            v["kind"] = json!(system_kind_str(sys.kind));
            v["status"] = json!(sys.status.as_str());
            v["need"] = json!(need);
            v["quorum_met"] = json!(c.counted > 0 && c.counted_online >= need);
            v
        })
        .collect();
    Ok(Json(json!({
        "site": id,
        "quorum": quorum,
        "total": systems.len(),
        "systems": systems,
    })))
}
