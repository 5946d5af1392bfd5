use super::{ApiError, Shared};
use crate::core::ingest::LastReading;
use crate::core::snapshot::{AlarmCounts, Snapshot};
use crate::core::stats::{Counts, Rate};
use crate::core::{DeviceIdx, DeviceState, Inventory, SiteIdx};
use crate::model::rfc3339_ms;
use crate::model::{DeviceKind, SiteStatus};
use crate::telemetry::StoreHealth;
use axum::extract::{rejection::QueryRejection, Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::sync::Arc;

/// `GET /api/v1/whoami`: the caller's token name and role, so the console shows only what
/// the role may do. Without `[[tokens]]` the API is open (loopback only): `admin`, no name.
#[utoipa::path(
    get,
    path = "/api/v1/whoami",
    tag = "inventory",
    security(("bearer" = [])),
    summary = "The caller's token name and role; viewer",
    responses(
        (status = 200, description = "The caller", body = super::schemas::Whoami),
        (status = 401, description = "No token, or not a valid one", body = crate::api::ErrorBody),
        (status = 403, description = "The token's role may not call this", body = crate::api::ErrorBody)
    )
)]
pub(super) async fn whoami(caller: Option<axum::Extension<super::auth::Caller>>) -> Json<Value> {
    match caller {
        Some(axum::Extension(c)) => Json(json!({
            "auth": true,
            "name": &*c.name,
            "role": c.role.as_str(),
        })),
        None => Json(json!({"auth": false, "name": null, "role": "admin"})),
    }
}

#[utoipa::path(
    get,
    path = "/api/v1/config",
    tag = "admin",
    security(("bearer" = [])),
    summary = "The configuration in force, secrets left out; admin",
    responses(
        (status = 200, description = "The configuration in force", body = super::schemas::ConfigView),
        (status = 401, description = "No token, or not a valid one", body = crate::api::ErrorBody),
        (status = 403, description = "The token's role may not call this", body = crate::api::ErrorBody)
    )
)]
pub(super) async fn config(State(s): State<Arc<Shared>>) -> Json<Value> {
    Json(s.config_view.clone())
}

/// Re-read the configuration files and apply their inventory: 200 with what changed and
/// what needs a restart, 422 with the located problems (nothing changed).
#[utoipa::path(
    post,
    path = "/api/v1/config/reload",
    tag = "admin",
    security(("bearer" = [])),
    summary = "Re-read the configuration files and apply their inventory; admin",
    responses(
        (status = 200, description = "Applied: what changed, what waits for a restart", body = super::schemas::ReloadApplied),
        (status = 422, description = "Not applied: the problems, located; nothing changed", body = super::schemas::ReloadRefused),
        (status = 503, description = "The gateway is stopping", body = crate::api::ErrorBody),
        (status = 401, description = "No token, or not a valid one", body = crate::api::ErrorBody),
        (status = 403, description = "The token's role may not call this", body = crate::api::ErrorBody)
    )
)]
pub(super) async fn reload(
    State(s): State<Arc<Shared>>,
    caller: Option<axum::Extension<super::auth::Caller>>,
) -> Result<Response, ApiError> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let via = match caller {
        Some(axum::Extension(c)) => format!("http:{}", c.name),
        None => "http".into(),
    };
    let unavailable = || ApiError::Unavailable("the gateway is shutting down".into());
    let cmd = super::Command::Reload { via, reply: tx };
    s.commands.send(cmd).await.map_err(|_| unavailable())?;
    Ok(reload_answer(rx.await.map_err(|_| unavailable())?))
}

/// 200 with the reload's report, or 422 with its problems.
fn reload_answer(outcome: super::command::ReloadOutcome) -> Response {
    match outcome {
        Ok(report) => Json(json!({"applied": true, "reload": report})).into_response(),
        Err(problems) => (
            axum::http::StatusCode::UNPROCESSABLE_ENTITY,
            Json(json!({
                "applied": false,
                "error": {
                    "code": "invalid_config",
                    "message": format!("the configuration was not reloaded ({} problem(s)); nothing changed", problems.len()),
                },
                "problems": problems,
            })),
        )
            .into_response(),
    }
}

/// Alive (always 200 while the process serves), with the outbox's backlog and budget.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "health",
    security(()),
    summary = "Alive, with the outbox's backlog",
    responses(
        (status = 200, description = "Always while the process serves", body = super::schemas::Health)
    )
)]
pub(super) async fn healthz(State(s): State<Arc<Shared>>) -> Json<Value> {
    Json(json!({"status": "ok", "outbox": outbox_json(&s)}))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct OutboxQuery {
    /// Dead letters to list, oldest first. Default 100, at most 10000.
    limit: Option<u32>,
}

/// The outbox: backlog, budget and the lines the store refused for good (admin).
#[utoipa::path(
    get,
    path = "/api/v1/outbox",
    tag = "admin",
    security(("bearer" = [])),
    summary = "The outbox: backlog, budget and dead letters; admin",
    params(OutboxQuery),
    responses(
        (status = 200, description = "The outbox", body = super::schemas::OutboxListing),
        (status = 400, description = "A query parameter is not valid", body = crate::api::ErrorBody),
        (status = 500, description = "The outbox could not be read", body = crate::api::ErrorBody),
        (status = 401, description = "No token, or not a valid one", body = crate::api::ErrorBody),
        (status = 403, description = "The token's role may not call this", body = crate::api::ErrorBody)
    )
)]
pub(super) async fn outbox(
    State(s): State<Arc<Shared>>,
    q: Result<Query<OutboxQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) = q?;
    let limit = q.limit.unwrap_or(100).min(10_000);
    let mut body = outbox_json(&s);
    if let Some(o) = s.outbox.clone() {
        let list = tokio::task::spawn_blocking(move || {
            o.lock()
                .unwrap_or_else(|p| p.into_inner())
                .dead_letters(limit)
        })
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .map_err(|e| ApiError::Internal(e.to_string()))?;
        body["dead_letter_lines"] = list
            .into_iter()
            .map(|d| {
                json!({
                    "line": String::from_utf8_lossy(&d.line).trim_end(),
                    "status": d.status,
                    "store_said": d.message,
                    "at": rfc3339_ms(d.at_ms),
                })
            })
            .collect();
    }
    Ok(Json(body))
}

/// The outbox as health shows it: backlog, oldest pending age, budget state.
fn outbox_json(s: &Shared) -> Value {
    let o = s.outbox_status.snapshot();
    if !o.enabled {
        return json!({"enabled": false});
    }
    json!({
        "enabled": true,
        "state": if o.full { "full" } else if o.disk.low { "disk_low" } else { "ok" },
        "backlog_bytes": o.bytes,
        "max_bytes": o.max_bytes,
        "backlog_points": o.points,
        "backlog_batches": o.batches,
        "oldest_pending": o.oldest_ms.map(rfc3339_ms),
        "oldest_pending_age_s": o.oldest_ms.map(|t| (crate::model::now_ms() - t).max(0) as f64 / 1000.0),
        "dead_letters": o.dead_letters,
        "disk": o.disk,
    })
}

#[utoipa::path(
    get,
    path = "/readyz",
    tag = "health",
    security(()),
    summary = "Ready: MQTT connected and the store taking writes",
    responses(
        (status = 200, description = "Ready", body = super::schemas::Ready),
        (status = 503, description = "Not ready (the same body, saying which part is not)", body = super::schemas::Ready)
    )
)]
pub(super) async fn readyz(State(s): State<Arc<Shared>>) -> Response {
    let mqtt_ok = s.mqtt.connected();
    let store = s.store.health();
    // At the budget or the disk floor the gateway holds acknowledgements: not ready for more.
    let o = s.outbox_status.snapshot();
    let store_ok = store != StoreHealth::Failing && !o.full && !o.disk.low;
    let body = json!({
        "ready": mqtt_ok && store_ok,
        "mqtt": {
            "connected": mqtt_ok,
            "reconnects": s.mqtt.reconnects(),
            "since": rfc3339_ms(s.mqtt.since_ms()),
            "last_error": s.mqtt.last_error(),
        },
        "store": {"health": store, "last_error": s.store.last_error()},
        "outbox": outbox_json(&s),
    });
    let code = if mqtt_ok && store_ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(body)).into_response()
}

/// The OpenMetrics content type `/metrics` answers to a client that accepts it.
const OPEN_METRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// The classic text format's, for every other client.
const CLASSIC_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Whether an `Accept` header takes OpenMetrics text (any version, a q above 0): Prometheus
/// asks for it first; `curl` and `promtool`'s users get the classic text format.
fn accepts_open_metrics(accept: &str) -> bool {
    accept.split(',').any(|range| {
        let mut parts = range.split(';').map(str::trim);
        let media = parts.next().unwrap_or("");
        let refused = parts.any(|p| {
            p.strip_prefix("q=")
                .and_then(|q| q.parse::<f32>().ok())
                .is_some_and(|q| q <= 0.0)
        });
        media.eq_ignore_ascii_case("application/openmetrics-text") && !refused
    })
}

/// Counters and gauges, in the format the client accepts.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "health",
    security(("bearer" = [])),
    summary = "Counters and gauges (Prometheus); admin or a scrape token",
    responses(
        (status = 200, description = "The metrics: OpenMetrics 1.0 text when `Accept` takes \
            `application/openmetrics-text` (as Prometheus sends), else the classic text format 0.0.4",
            content(
                (String = "application/openmetrics-text"),
                (String = "text/plain")
            )),
        (status = 401, description = "No token, or not a valid one", body = crate::api::ErrorBody),
        (status = 403, description = "The token's role may not call this", body = crate::api::ErrorBody)
    )
)]
pub(super) async fn metrics(
    State(s): State<Arc<Shared>>,
    headers: axum::http::HeaderMap,
) -> Response {
    let open = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(accepts_open_metrics);
    let (content_type, body) = match open {
        true => (OPEN_METRICS, s.metrics.encode()),
        false => (CLASSIC_TEXT, s.metrics.encode_classic()),
    };
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::VARY, "accept"),
        ],
        body,
    )
        .into_response()
}

/// One site: its counts, 联网在线率 now and alarm counts.
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct SiteView {
    id: String,
    name: String,
    /// `park`, `enterprise` or `mine`.
    #[schema(value_type = String)]
    kind: crate::model::SiteKind,
    /// The site's status in the inventory (`active`, …).
    #[schema(value_type = String)]
    status: SiteStatus,
    /// `{"total", "counted", "online", "offline", "never", "faulty", …}`.
    #[schema(value_type = super::schemas::Counts)]
    devices: Counts,
    /// `{"numerator", "denominator", "value"}`; `value` null when nothing is counted.
    #[schema(value_type = super::schemas::Rate)]
    online_rate: Rate,
    /// `{"active", "unacknowledged", …}`.
    #[schema(value_type = super::schemas::AlarmCounts)]
    alarms: AlarmCounts,
    /// The site's enterprises (removed ones left out), in the inventory's order: each a
    /// scope `enterprise:{id}` of `/api/v1/indicators`.
    enterprises: Vec<EnterpriseRef>,
}

/// An enterprise of a site.
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct EnterpriseRef {
    id: String,
    name: String,
}

/// The region: every site together. A shape of `GET /api/v1/sites`' answer for the
/// document, never built: the handler writes the answer as JSON (its test reads it back).
#[allow(dead_code)]
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Region {
    #[schema(value_type = super::schemas::Counts)]
    devices: serde_json::Value,
    /// 联网在线率 now.
    #[schema(value_type = super::schemas::Rate)]
    online_rate: serde_json::Value,
    #[schema(value_type = super::schemas::AlarmCounts)]
    alarms: serde_json::Value,
}

/// `GET /api/v1/sites`.
#[allow(dead_code)]
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Sites {
    region: Region,
    /// Each site of the inventory, in its order (removed sites left out).
    #[schema(value_type = Vec<SiteView>)]
    sites: Vec<serde_json::Value>,
}

fn site_view(snap: &Snapshot, idx: SiteIdx) -> SiteView {
    let s = &snap.inventory.sites[idx as usize];
    let counts = snap.sites[idx as usize];
    SiteView {
        id: s.id.to_string(),
        name: s.name.clone(),
        kind: s.kind,
        status: s.status,
        devices: counts,
        online_rate: counts.online_rate(),
        alarms: snap.site_alarms[idx as usize],
        enterprises: snap
            .inventory
            .enterprises
            .iter()
            .filter(|e| e.site == idx && !e.removed)
            .map(|e| EnterpriseRef {
                id: e.id.to_string(),
                name: e.name.clone(),
            })
            .collect(),
    }
}

#[utoipa::path(
    get,
    path = "/api/v1/sites",
    tag = "inventory",
    security(("bearer" = [])),
    summary = "The region and each site: device counts, 联网在线率 now, alarm counts; viewer",
    responses(
        (status = 200, description = "The region and each site", body = Sites),
        (status = 401, description = "No token, or not a valid one", body = crate::api::ErrorBody),
        (status = 403, description = "The token's role may not call this", body = crate::api::ErrorBody)
    )
)]
pub(super) async fn sites(State(s): State<Arc<Shared>>) -> Json<Value> {
    let snap = s.read_model.load_full();
    let region = snap.region;
    let sites: Vec<SiteView> = (0..snap.inventory.sites.len() as u32)
        .filter(|&i| !snap.inventory.sites[i as usize].removed)
        .map(|i| site_view(&snap, i))
        .collect();
    Json(json!({
        "region": {
            "devices": region,
            "online_rate": region.online_rate(),
            "alarms": snap.region_alarms,
        },
        "sites": sites,
    }))
}

#[utoipa::path(
    get,
    path = "/api/v1/sites/{id}",
    tag = "inventory",
    security(("bearer" = [])),
    summary = "One site; viewer",
    params(("id" = String, Path, description = "The site's id")),
    responses(
        (status = 200, description = "The site", body = SiteView),
        (status = 404, description = "No such site", body = crate::api::ErrorBody),
        (status = 401, description = "No token, or not a valid one", body = crate::api::ErrorBody),
        (status = 403, description = "The token's role may not call this", body = crate::api::ErrorBody)
    )
)]
pub(super) async fn site(
    State(s): State<Arc<Shared>>,
    Path(id): Path<String>,
) -> Result<Json<SiteView>, ApiError> {
    let snap = s.read_model.load_full();
    let idx = snap
        .inventory
        .site(&id)
        .ok_or_else(|| ApiError::NotFound(format!("site {id:?} is not in the inventory")))?;
    Ok(Json(site_view(&snap, idx)))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct DevicesQuery {
    /// Only this site's devices.
    site: Option<String>,
    /// `online`, `offline` or `never`.
    state: Option<String>,
    /// A device kind (`gas_toxic`, `temperature`, …).
    kind: Option<String>,
    /// Only the devices of this zone of `site` (needs `site`).
    zone: Option<String>,
    /// Only the devices of this system of `site` (needs `site`).
    system: Option<String>,
    /// Devices whose id contains this (case-insensitive for ASCII letters), at most 256 bytes.
    q: Option<String>,
    /// Devices to skip (default 0).
    #[serde(default)]
    #[param(required = false)]
    offset: usize,
    /// Devices in the page: default 1000, 1 to 100000.
    limit: Option<usize>,
}

const DEFAULT_LIMIT: usize = 1000;
const MAX_LIMIT: usize = 100_000;
/// The longest `q` of a device listing (device ids are shorter).
const MAX_SEARCH_BYTES: usize = 256;

/// The filters of a device listing, checked.
struct DeviceFilter {
    site: Option<SiteIdx>,
    state: Option<DeviceState>,
    kind: Option<DeviceKind>,
    /// `q`, lower-cased; `None` when absent or empty.
    search: Option<String>,
    limit: usize,
    /// Indices into the inventory's zones and systems.
    zone: Option<u32>,
    system: Option<u32>,
}

fn device_filter(q: &DevicesQuery, inv: &Inventory) -> Result<DeviceFilter, ApiError> {
    let state = match q.state.as_deref() {
        None => None,
        Some(v) => Some(DeviceState::parse(v).ok_or_else(|| {
            ApiError::BadRequest(format!("state {v:?} is not online, offline or never"))
        })?),
    };
    let kind = match q.kind.as_deref() {
        None => None,
        Some(v) => Some(
            DeviceKind::parse(v)
                .ok_or_else(|| ApiError::BadRequest(format!("kind {v:?} is not a device kind")))?,
        ),
    };
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT);
    if limit == 0 || limit > MAX_LIMIT {
        return Err(ApiError::BadRequest(format!(
            "limit must be between 1 and {MAX_LIMIT}"
        )));
    }
    let site =
        match q.site.as_deref() {
            None => None,
            Some(id) => Some(inv.site(id).ok_or_else(|| {
                ApiError::NotFound(format!("site {id:?} is not in the inventory"))
            })?),
        };
    if q.q.as_ref().is_some_and(|t| t.len() > MAX_SEARCH_BYTES) {
        return Err(ApiError::BadRequest(format!(
            "q must be at most {MAX_SEARCH_BYTES} bytes"
        )));
    }
    let search =
        q.q.as_deref()
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_ascii_lowercase);
    let (zone, system) = groups(q, inv, site)?;
    Ok(DeviceFilter {
        site,
        state,
        kind,
        search,
        limit,
        zone,
        system,
    })
}

/// The `zone` and `system` filters, resolved in `site` (their ids are a site's own).
fn groups(
    q: &DevicesQuery,
    inv: &Inventory,
    site: Option<SiteIdx>,
) -> Result<(Option<u32>, Option<u32>), ApiError> {
    let find = |what: &str, want: &Option<String>, ids: Vec<(u32, &str)>| {
        let Some(want) = want.as_deref() else {
            return Ok(None);
        };
        let Some(site) = site else {
            return Err(ApiError::BadRequest(format!(
                "{what} needs site: {what} ids are a site's own"
            )));
        };
        let site_id = &inv.sites[site as usize].id;
        ids.iter()
            .position(|&(s, id)| s == site && id == want)
            .map(|p| Some(p as u32))
            .ok_or_else(|| ApiError::NotFound(format!("site {site_id:?} has no {what} {want:?}")))
    };
    let zones = inv.zones.iter().map(|z| (z.site, &*z.id)).collect();
    let systems = inv.systems.iter().map(|x| (x.site, &*x.id)).collect();
    Ok((
        find("zone", &q.zone, zones)?,
        find("system", &q.system, systems)?,
    ))
}

#[utoipa::path(
    get,
    path = "/api/v1/devices",
    tag = "inventory",
    security(("bearer" = [])),
    summary = "Devices, filtered and paged on the server; viewer",
    params(DevicesQuery),
    responses(
        (status = 200, description = "A page of devices", body = DeviceList),
        (status = 400, description = "A query parameter is not valid", body = crate::api::ErrorBody),
        (status = 404, description = "The site is not in the inventory", body = crate::api::ErrorBody),
        (status = 401, description = "No token, or not a valid one", body = crate::api::ErrorBody),
        (status = 403, description = "The token's role may not call this", body = crate::api::ErrorBody)
    )
)]
pub(super) async fn devices(
    State(s): State<Arc<Shared>>,
    q: Result<Query<DevicesQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = q?;
    let snap = s.read_model.load_full();
    let f = device_filter(&q, &snap.inventory)?;
    let inv = &snap.inventory;
    // A site's devices from its index, not by a scan of the fleet.
    let all = 0..snap.devices_len() as DeviceIdx;
    let candidates = || -> Box<dyn Iterator<Item = DeviceIdx> + '_> {
        match f.site {
            Some(site) => Box::new(snap.site_devices(site).iter().copied()),
            None => Box::new(all.clone().filter(|&i| !inv.devices[i as usize].removed)),
        }
    };
    let matches = |i: &DeviceIdx| {
        let d = &inv.devices[*i as usize];
        f.kind.is_none_or(|k| k == d.kind)
            && f.zone.is_none_or(|z| d.zone == Some(z))
            && f.system.is_none_or(|x| d.system == Some(x))
            && f.state.is_none_or(|st| st == snap.device(*i).state)
            && f.search.as_deref().is_none_or(|t| id_contains(&d.id, t))
    };
    // Without a kind or a search, the total is in the counts and the scan stops at the
    // page's end.
    let grouped = f.zone.is_some() || f.system.is_some();
    let total = match (f.kind, &f.search, grouped) {
        (None, None, false) => {
            let c = f.site.map_or(snap.region, |i| snap.sites[i as usize]);
            f.state.map_or(c.planned, |st| c.in_state(st)) as usize
        }
        _ => candidates().filter(matches).count(),
    };
    let modbus = |i: DeviceIdx| {
        let d = &inv.devices[i as usize];
        let site = &inv.sites[d.site as usize].id;
        s.modbus.device(site, &d.id).map(|m| m.to_json())
    };
    let devices = candidates()
        .filter(matches)
        .skip(q.offset)
        .take(f.limit)
        .map(|i| device_view(&snap, i, modbus(i)))
        .collect();
    let list = DeviceList {
        devices,
        limit: f.limit,
        offset: q.offset,
        total,
    };
    Ok(Json(list).into_response())
}

/// `id` contains `needle` (already lower-case), ASCII letters compared without case.
fn id_contains(id: &str, needle: &str) -> bool {
    let (h, n) = (id.as_bytes(), needle.as_bytes());
    n.is_empty()
        || h.windows(n.len())
            .any(|w| w.iter().zip(n).all(|(a, b)| a.to_ascii_lowercase() == *b))
}

/// One device of a listing. Serialized directly, not through a `serde_json::Value` (a
/// third of the allocations per row); fields in alphabetical order, as the `json!` object
/// this replaced wrote them, so the bytes are the same.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(description = "One device: its place, kind, state and since when, and its last reading.")]
pub(super) struct DeviceView<'a> {
    /// `config`, or the name of the source that declared it.
    declared: &'a str,
    enterprise: Option<&'a str>,
    faulty: bool,
    gas: Option<&'a str>,
    /// The GB/T 28181 ID of a `gb28181` device; absent for other protocols.
    #[serde(skip_serializing_if = "Option::is_none")]
    gb_id: Option<&'a str>,
    id: &'a str,
    interval_s: f64,
    kind: &'static str,
    last_seen: Option<String>,
    last_status: Option<&'static str>,
    last_ts: Option<String>,
    last_values: std::collections::BTreeMap<&'a str, f64>,
    latency_ms: Option<i64>,
    /// The Modbus device's counters, for Modbus devices.
    #[schema(value_type = Option<super::schemas::ModbusPolling>)]
    modbus: Option<Value>,
    offline_after_s: f64,
    protocol: &'static str,
    site: &'a str,
    state: &'static str,
    state_since: Option<String>,
    status: &'static str,
    system: Option<&'a str>,
    unit: &'static str,
    zone: Option<&'a str>,
}

/// A page of devices and the total that match the filters.
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct DeviceList<'a> {
    devices: Vec<DeviceView<'a>>,
    limit: usize,
    offset: usize,
    total: usize,
}

fn device_view<'a>(snap: &'a Snapshot, i: DeviceIdx, modbus: Option<Value>) -> DeviceView<'a> {
    let inv = &snap.inventory;
    let d = &inv.devices[i as usize];
    let row = snap.device(i);
    let last = row.last();
    DeviceView {
        declared: d.declared.as_str(),
        enterprise: d.enterprise.map(|e| &*inv.enterprises[e as usize].id),
        faulty: row.faulty(),
        gas: d.gas.as_deref(),
        gb_id: d.gb_id.as_deref(),
        id: &d.id,
        interval_s: d.interval_ms as f64 / 1000.0,
        kind: d.kind.as_str(),
        last_seen: row.last_seen().map(rfc3339_ms),
        last_status: last.map(|l| l.status.as_str()),
        last_ts: last.map(|l| rfc3339_ms(l.ts_ms)),
        last_values: last
            .map(|l| l.values.iter().map(|(k, v)| (&**k, *v)).collect())
            .unwrap_or_default(),
        latency_ms: last.and_then(LastReading::latency_ms),
        modbus,
        offline_after_s: d.offline_after_ms as f64 / 1000.0,
        protocol: d.protocol.as_str(),
        site: &inv.sites[d.site as usize].id,
        state: row.state.as_str(),
        state_since: row.since().map(rfc3339_ms),
        status: d.status.as_str(),
        system: d.system.map(|x| &*inv.systems[x as usize].id),
        unit: d.kind.unit(),
        zone: d.zone.map(|z| &*inv.zones[z as usize].id),
    }
}

#[utoipa::path(
    get,
    path = "/api/v1/rejections",
    tag = "inputs",
    security(("bearer" = [])),
    summary = "Rejected input by reason, and the recent ones; admin",
    responses(
        (status = 200, description = "Rejected input by reason, and the recent ones", body = super::schemas::Rejections),
        (status = 401, description = "No token, or not a valid one", body = crate::api::ErrorBody),
        (status = 403, description = "The token's role may not call this", body = crate::api::ErrorBody)
    )
)]
pub(super) async fn rejections(State(s): State<Arc<Shared>>) -> Json<Value> {
    let snap = s.read_model.load_full();
    let counts: serde_json::Map<String, Value> = snap
        .rejections()
        .map(|(r, n)| (r.as_str().to_string(), json!(n)))
        .collect();
    let recent: Vec<Value> = snap
        .recent_rejections
        .iter()
        .rev()
        .map(|r| {
            json!({
                "at": rfc3339_ms(r.received_ms),
                "reason": r.reason,
                "topic": &*r.origin.topic,
                "element": r.origin.element,
                "detail": r.detail,
            })
        })
        .collect();
    Json(json!({"counts": counts, "recent": recent}))
}

/// Modbus endpoints (shared connections) with their per-endpoint counters.
#[utoipa::path(
    get,
    path = "/api/v1/endpoints",
    tag = "inputs",
    security(("bearer" = [])),
    summary = "Modbus endpoints (shared connections) with their counters and last error; viewer",
    responses(
        (status = 200, description = "Every Modbus endpoint", body = super::schemas::Endpoints),
        (status = 401, description = "No token, or not a valid one", body = crate::api::ErrorBody),
        (status = 403, description = "The token's role may not call this", body = crate::api::ErrorBody)
    )
)]
pub(super) async fn endpoints(State(s): State<Arc<Shared>>) -> Json<Value> {
    let list: Vec<Value> = s.modbus.endpoints.iter().map(|e| e.to_json()).collect();
    Json(json!({"total": list.len(), "endpoints": list}))
}

/// Every mine with its files' state (empty without `[mine_files]`).
#[utoipa::path(
    get,
    path = "/api/v1/mines",
    tag = "inputs",
    security(("bearer" = [])),
    summary = "Every mine with its networking files' state; viewer",
    responses(
        (status = 200, description = "Every mine", body = super::schemas::Mines),
        (status = 401, description = "No token, or not a valid one", body = crate::api::ErrorBody),
        (status = 403, description = "The token's role may not call this", body = crate::api::ErrorBody)
    )
)]
pub(super) async fn mines(State(s): State<Arc<Shared>>) -> Json<Value> {
    let list = s.mines.all();
    Json(json!({"total": list.len(), "mines": list}))
}

#[utoipa::path(
    get,
    path = "/api/v1/mines/{code}",
    tag = "inputs",
    security(("bearer" = [])),
    summary = "One mine by its mine_code; viewer",
    params(("code" = String, Path, description = "The site's mine_code")),
    responses(
        (status = 200, description = "The mine", body = super::schemas::Mine),
        (status = 404, description = "No site has this mine_code", body = crate::api::ErrorBody),
        (status = 401, description = "No token, or not a valid one", body = crate::api::ErrorBody),
        (status = 403, description = "The token's role may not call this", body = crate::api::ErrorBody)
    )
)]
pub(super) async fn mine(
    State(s): State<Arc<Shared>>,
    Path(code): Path<String>,
) -> Result<Json<Value>, ApiError> {
    match s.mines.get(&code) {
        Some(m) => Ok(Json(json!(m))),
        None => Err(ApiError::NotFound(format!(
            "no site has mine_code {:?} (see GET /api/v1/mines)",
            crate::core::event::shorten(&code, 40)
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::{Core, Origin, Outputs, RawReading, ReadingStatus, SourceEvent};

    #[test]
    fn open_metrics_is_served_to_whom_accepts_it() {
        // What Prometheus 2.x sends.
        let prom = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;\
            version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert!(accepts_open_metrics(prom));
        assert!(accepts_open_metrics("Application/OpenMetrics-Text"));
        assert!(!accepts_open_metrics("*/*"));
        assert!(!accepts_open_metrics("text/plain"));
        assert!(!accepts_open_metrics("application/openmetrics-text; q=0"));
        assert!(!accepts_open_metrics(""));
    }

    /// The `json!` object the listing wrote before `DeviceView`, kept as the reference.
    fn reference(snap: &Snapshot, i: DeviceIdx) -> Value {
        let inv = &snap.inventory;
        let d = &inv.devices[i as usize];
        let row = snap.device(i);
        let last = row.last();
        let mut values = serde_json::Map::new();
        if let Some(l) = last {
            for (k, v) in l.values.iter() {
                values.insert(k.to_string(), json!(v));
            }
        }
        json!({
            "declared": d.declared.as_str(),
            "id": &*d.id,
            "site": &*inv.sites[d.site as usize].id,
            "kind": d.kind.as_str(),
            "gas": d.gas.as_deref(),
            "enterprise": d.enterprise.map(|e| &*inv.enterprises[e as usize].id),
            "zone": d.zone.map(|z| &*inv.zones[z as usize].id),
            "system": d.system.map(|x| &*inv.systems[x as usize].id),
            "protocol": d.protocol.as_str(),
            "status": d.status.as_str(),
            "state": row.state.as_str(),
            "state_since": row.since().map(rfc3339_ms),
            "faulty": row.faulty(),
            "last_seen": row.last_seen().map(rfc3339_ms),
            "last_ts": last.map(|l| rfc3339_ms(l.ts_ms)),
            "last_status": last.map(|l| l.status.as_str()),
            "last_values": values,
            "unit": d.kind.unit(),
            "latency_ms": last.and_then(LastReading::latency_ms),
            "interval_s": d.interval_ms as f64 / 1000.0,
            "offline_after_s": d.offline_after_ms as f64 / 1000.0,
            "modbus": Option::<Value>::None,
        })
    }

    /// A site lists its enterprises, the scopes the console offers besides the region and
    /// the sites.
    #[test]
    fn a_site_lists_its_enterprises() {
        let text = "[[sites]]\nid = \"p1\"\nname = \"P1\"\nkind = \"park\"\n\n\
            [[sites]]\nid = \"p2\"\nname = \"P2\"\nkind = \"park\"\n\n\
            [[enterprises]]\nid = \"e1\"\nname = \"化工一厂\"\nsite = \"p1\"\n\n\
            [[enterprises]]\nid = \"e2\"\nname = \"E2\"\nsite = \"p1\"\n";
        let f = crate::core::config::inventory::test_file(text);
        let mut core = Core::new(
            crate::core::Inventory::from_config(&f.inventory),
            60_000,
            10,
        );
        let snap = core.snapshot(None);
        let v = serde_json::to_value(site_view(&snap, 0)).unwrap();
        assert_eq!(
            v["enterprises"],
            json!([{"id": "e1", "name": "化工一厂"}, {"id": "e2", "name": "E2"}])
        );
        let v = serde_json::to_value(site_view(&snap, 1)).unwrap();
        assert_eq!(v["enterprises"], json!([]));
    }

    #[test]
    fn a_device_row_is_written_byte_for_byte_as_before() {
        let text = r#"
[[sites]]
id = "p1"
name = "P1"
kind = "park"

[[enterprises]]
id = "e1"
name = "E1"
site = "p1"

[[devices]]
id = "a"
site = "p1"
enterprise = "e1"
kind = "gas_toxic"
gas = "H2S"
protocol = "mqtt"
interval_s = 1.5

[[devices]]
id = "b"
site = "p1"
kind = "temperature"
protocol = "mqtt"
interval_s = 10
"#;
        let f = crate::core::config::inventory::test_file(text);
        let mut core = Core::new(
            crate::core::Inventory::from_config(&f.inventory),
            60_000,
            10,
        );
        let mut out = Outputs::default();
        core.apply(
            SourceEvent::Reading {
                reading: RawReading {
                    site: "p1".into(),
                    device: "a".into(),
                    ts_ms: Some(1_700_000_000_000),
                    values: vec![("z".into(), 1.25), ("ppm".into(), 3e-7), ("b".into(), -0.0)],
                    status: ReadingStatus::Fault,
                    cause: None,
                },
                origin: Origin {
                    topic: Arc::from("t"),
                    element: None,
                },
                received_ms: 1_700_000_000_123,
            },
            &mut out,
        );
        let snap = core.snapshot(None);
        for i in 0..2 {
            let new = serde_json::to_string(&device_view(&snap, i, None)).unwrap();
            assert_eq!(new, reference(&snap, i).to_string());
        }
    }

    /// Both answers of a reload, made by the handler's own function, read into their
    /// documented shapes (`schemas::ReloadApplied`, `schemas::ReloadRefused`).
    #[tokio::test]
    async fn the_reload_answers_read_into_their_shapes() {
        use super::super::command::{ReloadProblem, ReloadReport};
        use super::super::schemas::{answered, must_fit, ReloadApplied, ReloadRefused};
        let mut inventory = crate::core::InventoryTally::default();
        inventory.devices.added = 2;
        inventory.sites.changed = 1;
        let report = ReloadReport {
            at: "2026-01-01T00:00:00.000Z".into(),
            at_ms: 1,
            files: vec!["safegate.toml".into()],
            inventory,
            needs_restart: vec!["mqtt.url".into()],
        };
        let (status, v) = answered(reload_answer(Ok(report))).await;
        assert_eq!(status, 200);
        must_fit::<ReloadApplied>(&v);
        let problem = ReloadProblem {
            file: "safegate.toml".into(),
            key: "devices[0].kind".into(),
            message: "unknown kind".into(),
        };
        let (status, v) = answered(reload_answer(Err(vec![problem]))).await;
        assert_eq!(status, 422);
        must_fit::<ReloadRefused>(&v);
        assert!(serde_json::from_value::<ReloadApplied>(v).is_err());
    }
}
