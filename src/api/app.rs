//! The API's router: every route, the token check, CORS and the security headers, put
//! together (the handlers are in `routes.rs` and the modules beside it). The OpenAPI document
//! (`openapi.rs`) describes exactly these routes; its test reads this file.

use super::{ApiError, Shared};
use axum::routing::{get, post};
use axum::Router;
use std::sync::Arc;

/// The API; with `auth`, every endpoint but the console's files, `/healthz`, `/readyz` and
/// `/api/v1/openapi.json` needs a token of the right role.
pub fn router(
    shared: Arc<Shared>,
    auth: Option<Arc<super::auth::Auth>>,
    max_body_bytes: usize,
    cors_origins: &[String],
) -> Router {
    let pushes = super::ingest::routes(&shared);
    let r = Router::new()
        .route("/", get(super::console::index))
        .route("/console/{*path}", get(super::console::asset))
        .route("/healthz", get(super::routes::healthz))
        .route("/readyz", get(super::routes::readyz))
        .route("/metrics", get(super::routes::metrics))
        .route("/api/v1/overview", get(super::overview::overview))
        .route("/api/v1/sites", get(super::routes::sites))
        .route("/api/v1/sites/{id}", get(super::routes::site))
        .route("/api/v1/sites/{id}/zones", get(super::site_units::zones))
        .route(
            "/api/v1/sites/{id}/systems",
            get(super::site_units::systems),
        )
        .route("/api/v1/devices", get(super::routes::devices))
        .route(
            "/api/v1/devices/{site}/{id}/history",
            get(super::history::history),
        )
        .route("/api/v1/rejections", get(super::routes::rejections))
        .route("/api/v1/indicators", get(super::indicators::indicators))
        .route("/api/v1/report", get(super::indicators::report))
        .route("/api/v1/endpoints", get(super::routes::endpoints))
        .route("/api/v1/mines", get(super::routes::mines))
        .route("/api/v1/mines/{code}", get(super::routes::mine))
        .route("/api/v1/config", get(super::routes::config))
        .route("/api/v1/config/reload", post(super::routes::reload))
        .route("/api/v1/outbox", get(super::routes::outbox))
        .route("/api/v1/alarms", get(super::alarms::list))
        .route("/api/v1/alarms/{id}", get(super::alarms::get_one))
        .route("/api/v1/alarms/{id}/ack", post(super::alarms::ack))
        .route("/api/v1/whoami", get(super::routes::whoami))
        .route("/api/v1/cluster", get(super::cluster::cluster))
        .route("/api/v1/events", get(super::events::events))
        .route("/api/v1/openapi.json", get(super::openapi::openapi_json));
    // The push routes keep their own body limit: the API's default one is set outside them.
    let r = match pushes {
        Some(p) => r.merge(p),
        None => r,
    };
    let r = r
        .fallback(|| async {
            ApiError::NotFound("no such endpoint; see README for the API".into())
        })
        .with_state(shared)
        .layer(axum::extract::DefaultBodyLimit::max(max_body_bytes));
    let r = match auth {
        Some(a) => r.layer(axum::middleware::from_fn_with_state(a, super::auth::check)),
        None => r,
    };
    // Outermost, so a browser's preflight is answered before the token check. Without
    // configured origins there is no CORS layer at all: browsers refuse cross-origin calls.
    let origins: Vec<axum::http::HeaderValue> =
        cors_origins.iter().filter_map(|o| o.parse().ok()).collect();
    if origins.is_empty() {
        return super::console::security_headers(r);
    }
    let r = r.layer(
        tower_http::cors::CorsLayer::new()
            .allow_origin(origins)
            .allow_methods([axum::http::Method::GET, axum::http::Method::POST])
            .allow_headers([
                axum::http::header::AUTHORIZATION,
                axum::http::header::CONTENT_TYPE,
            ]),
    );
    super::console::security_headers(r)
}
