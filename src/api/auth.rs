//! Bearer tokens and roles on the API. Tokens are configured as their SHA-256 only; a
//! presented token is hashed and compared in constant time with every configured hash.
//! `/healthz`, `/readyz`, `/api/v1/openapi.json` and the console's page and files stay open;
//! everything else needs a role (see [`needed`]).

use super::config::TokenConfig;
use crate::model::Role;
use crate::telemetry::Metrics;
use axum::extract::{Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use subtle::ConstantTimeEq;

/// Who made a request, for the handlers (acknowledgements record it).
#[derive(Debug, Clone)]
pub struct Caller {
    pub name: Arc<str>,
    pub role: Role,
}

type Limiter = governor::DefaultKeyedRateLimiter<Arc<str>>;

pub struct Auth {
    tokens: Vec<([u8; 32], Caller)>,
    metrics: Arc<Metrics>,
    audit: Arc<crate::sinks::audit::AuditLog>,
    /// Requests per token name.
    limiter: Limiter,
}

/// What an endpoint needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    Open,
    /// `admin`, or a `scrape` token.
    Metrics,
    Role(Role),
    /// `POST /api/v1/ingest/…`: `platform` (for its own sites, checked by the handler) or
    /// `admin`.
    Ingest,
}

/// The role matrix, by method and path.
pub fn needed(method: &Method, path: &str) -> Need {
    match path {
        // The console's page and files: it asks for a token itself (its data needs one).
        "/" => Need::Open,
        p if p.starts_with("/console/") => Need::Open,
        "/healthz" | "/readyz" => Need::Open,
        // The API's shape, not its data: integrators' tools and the console's link need no token.
        "/api/v1/openapi.json" => Need::Open,
        "/metrics" => Need::Metrics,
        "/api/v1/rejections" | "/api/v1/config" | "/api/v1/config/reload" | "/api/v1/outbox" => {
            Need::Role(Role::Admin)
        }
        "/api/v1/indicators" | "/api/v1/report" => Need::Role(Role::Evaluator),
        p if *method == Method::POST && p.starts_with("/api/v1/ingest/") => Need::Ingest,
        p if *method == Method::POST && p.starts_with("/api/v1/alarms/") && p.ends_with("/ack") => {
            Need::Role(Role::Operator)
        }
        _ => Need::Role(Role::Viewer),
    }
}

fn allowed(need: Need, role: Role) -> bool {
    match need {
        Need::Open => true,
        Need::Metrics => matches!(role, Role::Admin | Role::Scrape),
        Need::Ingest => matches!(role, Role::Platform | Role::Admin),
        // The machine roles do only their one thing.
        Need::Role(r) => !matches!(role, Role::Scrape | Role::Platform) && role >= r,
    }
}

/// The peer's address, when the server was started with connection info.
pub fn peer(req: &Request) -> String {
    req.extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map_or_else(|| "-".to_string(), |c| c.0.to_string())
}

fn refuse(status: StatusCode, code: &str, message: String) -> Response {
    let body = Json(serde_json::json!({"error": {"code": code, "message": message}}));
    let mut r = (status, body).into_response();
    if status == StatusCode::UNAUTHORIZED {
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer"),
        );
    }
    r
}

impl Auth {
    /// `None` when no tokens are configured: the API is open (the caller checks it listens
    /// on loopback only).
    pub fn new(
        tokens: &[TokenConfig],
        rate: (u32, u32),
        metrics: Arc<Metrics>,
        audit: Arc<crate::sinks::audit::AuditLog>,
    ) -> Option<Auth> {
        if tokens.is_empty() {
            return None;
        }
        let tokens = tokens
            .iter()
            .filter_map(|t| {
                let mut h = [0u8; 32];
                hex::decode_to_slice(t.sha256.trim(), &mut h).ok()?;
                Some((
                    h,
                    Caller {
                        name: t.name.as_str().into(),
                        role: t.role,
                    },
                ))
            })
            .collect();
        let per_s = std::num::NonZeroU32::new(rate.0.max(1)).unwrap_or(std::num::NonZeroU32::MIN);
        let burst = std::num::NonZeroU32::new(rate.1.max(1)).unwrap_or(std::num::NonZeroU32::MIN);
        let limiter =
            governor::RateLimiter::keyed(governor::Quota::per_second(per_s).allow_burst(burst));
        Some(Auth {
            tokens,
            metrics,
            audit,
            limiter,
        })
    }

    /// The caller a presented token belongs to. Every configured hash is compared, in
    /// constant time, whatever matched before.
    fn identify(&self, token: &str) -> Option<&Caller> {
        let presented: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let mut found = None;
        for (h, caller) in &self.tokens {
            if bool::from(h.ct_eq(&presented)) {
                found = Some(caller);
            }
        }
        found
    }

    fn fail(&self, reason: &'static str, who: &str, from: &str) {
        self.metrics
            .api_refused
            .get_or_create(&crate::telemetry::ReasonLabel { reason })
            .inc();
        self.audit.refused(reason, who, from);
    }
}

pub async fn check(State(auth): State<Arc<Auth>>, mut req: Request, next: Next) -> Response {
    let need = needed(req.method(), req.uri().path());
    if need == Need::Open {
        return next.run(req).await;
    }
    let from = peer(&req);
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim);
    let Some(token) = presented.filter(|t| !t.is_empty()) else {
        auth.fail("missing_token", "-", &from);
        return refuse(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "this endpoint needs an `Authorization: Bearer <token>` header".into(),
        );
    };
    let Some(caller) = auth.identify(token).cloned() else {
        auth.fail("invalid_token", "-", &from);
        return refuse(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "the token is not valid".into(),
        );
    };
    if !allowed(need, caller.role) {
        auth.fail("wrong_role", &caller.name, &from);
        let wants = match need {
            Need::Metrics => "admin or scrape".to_string(),
            Need::Role(r) => format!("{} or above", r.as_str()),
            Need::Ingest => "platform (for its own sites) or admin".to_string(),
            Need::Open => unreachable!("open endpoints return above"),
        };
        return refuse(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!(
                "token {:?} has role {}; this endpoint needs {wants}",
                &*caller.name,
                caller.role.as_str()
            ),
        );
    }
    if auth.limiter.check_key(&caller.name).is_err() {
        auth.fail("rate_limited", &caller.name, &from);
        let mut r = refuse(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!(
                "token {:?} is over its request rate (api.rate_limit_per_s); retry in a second",
                &*caller.name
            ),
        );
        r.headers_mut()
            .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
        return r;
    }
    req.extensions_mut().insert(caller);
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_matrix() {
        let get = Method::GET;
        let post = Method::POST;
        assert_eq!(needed(&get, "/healthz"), Need::Open);
        assert_eq!(needed(&get, "/metrics"), Need::Metrics);
        assert_eq!(needed(&get, "/"), Need::Open);
        assert_eq!(needed(&get, "/api/v1/openapi.json"), Need::Open);
        assert_eq!(needed(&get, "/console/app.js"), Need::Open);
        assert_eq!(needed(&get, "/api/v1/whoami"), Need::Role(Role::Viewer));
        assert_eq!(needed(&get, "/api/v1/events"), Need::Role(Role::Viewer));
        assert_eq!(needed(&get, "/api/v1/sites"), Need::Role(Role::Viewer));
        assert_eq!(
            needed(&post, "/api/v1/alarms/7/ack"),
            Need::Role(Role::Operator)
        );
        assert_eq!(needed(&get, "/api/v1/alarms/7"), Need::Role(Role::Viewer));
        assert_eq!(needed(&get, "/api/v1/report"), Need::Role(Role::Evaluator));
        assert_eq!(needed(&get, "/api/v1/rejections"), Need::Role(Role::Admin));
        assert_eq!(
            needed(&Method::POST, "/api/v1/config/reload"),
            Need::Role(Role::Admin)
        );
        assert!(allowed(Need::Role(Role::Viewer), Role::Admin));
        assert!(!allowed(Need::Role(Role::Viewer), Role::Scrape));
        assert!(!allowed(Need::Role(Role::Evaluator), Role::Operator));
        assert!(allowed(Need::Metrics, Role::Scrape));
        assert!(!allowed(Need::Metrics, Role::Evaluator));
        assert_eq!(needed(&post, "/api/v1/ingest/p1"), Need::Ingest);
        assert_eq!(needed(&post, "/api/v1/ingest/p1/acme"), Need::Ingest);
        assert!(allowed(Need::Ingest, Role::Platform));
        assert!(allowed(Need::Ingest, Role::Admin));
        assert!(!allowed(Need::Ingest, Role::Operator));
        assert!(!allowed(Need::Role(Role::Viewer), Role::Platform));
        assert!(!allowed(Need::Metrics, Role::Platform));
    }
}
