//! The console's files, the headers of every response, `whoami` and the live feed's access,
//! called with `oneshot` on the router; and the dictionary against what the files use.

use super::CSP;
use crate::api::config::TokenConfig;
use crate::api::router;
use crate::model::Role;
use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use tower::ServiceExt;

const TOKENS: [(&str, Role, &str); 3] = [
    ("desk-view", Role::Viewer, "tok-v"),
    ("desk-op", Role::Operator, "tok-o"),
    ("scraper", Role::Scrape, "tok-s"),
];

fn app(dir: &std::path::Path, tokens: bool) -> (axum::Router, crate::api::events::Outlet) {
    let (shared, outlet) = crate::api::tests::shared_live(dir);
    let auth = tokens.then(|| {
        let list: Vec<TokenConfig> = TOKENS
            .iter()
            .map(|(name, role, tok)| TokenConfig {
                name: name.to_string(),
                role: *role,
                sha256: hex::encode(Sha256::digest(tok.as_bytes())),
            })
            .collect();
        let a = crate::api::auth::Auth::new(
            &list,
            (1000, 1000),
            shared.metrics.clone(),
            shared.audit.clone(),
        );
        Arc::new(a.expect("tokens configured"))
    });
    (router(shared, auth, 65_536, &[]), outlet)
}

async fn call(
    app: &axum::Router,
    path: &str,
    token: Option<&str>,
) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
    let mut req = Request::get(path);
    if let Some(t) = token {
        req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    let res = app
        .clone()
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let (parts, body) = res.into_parts();
    let bytes = axum::body::to_bytes(body, 1 << 20).await.unwrap();
    (parts.status, parts.headers, bytes.to_vec())
}

fn ctype(h: &axum::http::HeaderMap) -> &str {
    h.get(header::CONTENT_TYPE)
        .map_or("", |v| v.to_str().unwrap())
}

#[tokio::test]
async fn the_page_and_its_files_are_served_open_with_their_types_and_a_strict_policy() {
    let dir = tempfile::tempdir().unwrap();
    let (app, _outlet) = app(dir.path(), true);
    let (status, h, body) = call(&app, "/", None).await;
    assert_eq!(status, StatusCode::OK, "the page needs no token");
    assert_eq!(ctype(&h), "text/html; charset=utf-8");
    let html = String::from_utf8(body).unwrap();
    assert!(html.contains(r#"<script type="module" src="/console/app.js">"#));
    let handler = html.split(" on").skip(1).any(|rest| {
        let name: String = rest.chars().take_while(char::is_ascii_lowercase).collect();
        !name.is_empty() && rest[name.len()..].starts_with('=')
    });
    assert!(
        !html.contains("<script>") && !html.contains(" style=") && !handler,
        "no inline script, style or handler in the page"
    );
    for (path, want) in [
        ("/console/app.js", "text/javascript; charset=utf-8"),
        ("/console/live.js", "text/javascript; charset=utf-8"),
        ("/console/console.css", "text/css; charset=utf-8"),
        ("/console/i18n.json", "application/json; charset=utf-8"),
    ] {
        let (status, h, body) = call(&app, path, None).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert_eq!(ctype(&h), want, "{path}");
        assert!(!body.is_empty(), "{path}");
        assert_eq!(h[header::CACHE_CONTROL], "no-cache", "{path}");
    }
    let (status, h, body) = call(&app, "/console/nope.js", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let err: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(err["error"]["code"], "not_found", "{err}");
    assert_eq!(h[header::CONTENT_SECURITY_POLICY], CSP, "on errors too");
    // Every response carries the policy: the page, a file, an API answer, a refusal.
    for (path, token) in [
        ("/", None),
        ("/console/app.js", None),
        ("/healthz", None),
        ("/api/v1/sites", Some("tok-v")),
        ("/api/v1/sites", None),
    ] {
        let (_, h, _) = call(&app, path, token).await;
        assert_eq!(h[header::CONTENT_SECURITY_POLICY], CSP, "{path}");
        assert_eq!(h[header::X_CONTENT_TYPE_OPTIONS], "nosniff", "{path}");
        assert_eq!(h[header::X_FRAME_OPTIONS], "DENY", "{path}");
    }
    assert!(CSP.contains("default-src 'self'") && CSP.contains("script-src 'self'"));
    assert!(!CSP.contains("unsafe"), "no unsafe-inline or unsafe-eval");
}

#[tokio::test]
async fn an_unchanged_file_is_not_sent_again() {
    let dir = tempfile::tempdir().unwrap();
    let (app, _outlet) = app(dir.path(), false);
    let (_, h, _) = call(&app, "/console/app.js", None).await;
    let etag = h[header::ETAG].to_str().unwrap().to_string();
    let req = Request::get("/console/app.js")
        .header(header::IF_NONE_MATCH, &etag)
        .body(Body::empty())
        .unwrap();
    let res = app.clone().oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::NOT_MODIFIED);
}

#[tokio::test]
async fn whoami_names_the_token_and_its_role() {
    let dir = tempfile::tempdir().unwrap();
    let (app, _outlet) = app(dir.path(), true);
    let (status, _, _) = call(&app, "/api/v1/whoami", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _, _) = call(&app, "/api/v1/whoami", Some("wrong")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    for (name, role, tok) in &TOKENS[..2] {
        let (status, _, body) = call(&app, "/api/v1/whoami", Some(tok)).await;
        assert_eq!(status, StatusCode::OK);
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["name"], *name, "{v}");
        assert_eq!(v["role"], role.as_str(), "{v}");
        assert_eq!(v["auth"], true, "{v}");
    }
    let (status, _, _) = call(&app, "/api/v1/whoami", Some("tok-s")).await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "a scrape token is no console user"
    );
    let (open, _outlet2) = self::app(dir.path(), false);
    let (status, _, body) = call(&open, "/api/v1/whoami", None).await;
    assert_eq!(status, StatusCode::OK);
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["role"], "admin", "an open API lets everything: {v}");
    assert_eq!(v["auth"], false, "{v}");
}

#[tokio::test]
async fn the_live_feed_needs_a_viewer_and_greets_first() {
    let dir = tempfile::tempdir().unwrap();
    let (app, outlet) = app(dir.path(), true);
    let (status, _, _) = call(&app, "/api/v1/events", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _, _) = call(&app, "/api/v1/events", Some("tok-s")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let req = Request::get("/api/v1/events")
        .header(header::AUTHORIZATION, "Bearer tok-v")
        .body(Body::empty())
        .unwrap();
    let res = app.clone().oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(ctype(res.headers()), "text/event-stream");
    let mut body = res.into_body().into_data_stream();
    let first = futures::StreamExt::next(&mut body).await.unwrap().unwrap();
    let text = String::from_utf8(first.to_vec()).unwrap();
    assert!(text.starts_with("event: hello\n"), "{text}");
    assert!(text.contains(r#""throttle_ms":1000"#), "{text}");
    // The gateway stops: the stream ends (a graceful shutdown does not wait on it), and a
    // new client is told to come back.
    drop(outlet);
    assert!(futures::StreamExt::next(&mut body).await.is_none());
    let (status, _, _) = call(&app, "/api/v1/events", Some("tok-v")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
}

/// The files of the console, for the dictionary check.
fn asset_text(name: &str) -> String {
    let f = super::Assets::get(name).unwrap_or_else(|| panic!("{name} is embedded"));
    String::from_utf8(f.data.into_owned()).unwrap()
}

/// Keys made from a value the API sends (every value it may send has its label); the
/// levels' Chinese are checked to be the API's `level_name`.
fn value_keys(zh: &serde_json::Map<String, serde_json::Value>) -> Vec<String> {
    let mut used = Vec::new();
    for st in [
        crate::core::DeviceState::Online,
        crate::core::DeviceState::Offline,
        crate::core::DeviceState::Never,
    ] {
        used.push(format!("state.{}", st.as_str()));
    }
    for k in crate::model::DeviceKind::ALL {
        used.push(format!("kind.{}", k.as_str()));
    }
    for c in crate::core::liveness::Cause::ALL {
        used.push(format!("cause.{}", c.as_str()));
    }
    for k in crate::model::SystemKind::ALL {
        used.push(format!(
            "syskind.{}",
            crate::core::indicators::engine::system_kind_str(k)
        ));
    }
    for t in crate::model::AlarmType::ALL {
        used.push(format!("alarm.type.{}", t.as_str()));
    }
    for st in [
        "active_unacked",
        "active_acked",
        "cleared_unacked",
        "cleared_acked",
    ] {
        used.push(format!("alarm.state.{st}"));
    }
    // An alarm's lifecycle: every event kind and every outcome the API may send.
    use crate::core::alarms::book::EventKind;
    use crate::core::alarms::lifecycle::Outcome;
    for e in [
        EventKind::Raised,
        EventKind::Escalated,
        EventKind::Acknowledged,
        EventKind::Cleared,
    ] {
        used.push(format!("alarm.event.{}", e.as_str()));
    }
    for o in [
        Outcome::Responded,
        Outcome::Late,
        Outcome::Missed,
        Outcome::Pending,
    ] {
        used.push(format!(
            "alarm.outcome.{}",
            crate::core::alarms::view::outcome_str(o)
        ));
    }
    // Levels as the API names them (`level_name`), in Chinese the same words.
    for scheme in [
        crate::model::Scheme::TwoLevel,
        crate::model::Scheme::FourColour,
    ] {
        for level in 1..=scheme.max_levels() as u8 {
            let key = format!("level.{}.{level}", scheme.as_str());
            assert_eq!(
                zh.get(&key),
                Some(&scheme.level_name(level).into()),
                "{key}"
            );
        }
    }
    for r in [Role::Viewer, Role::Operator, Role::Evaluator, Role::Admin] {
        used.push(format!("role.{}", r.as_str()));
    }
    for s in ["measured", "declared"] {
        used.push(format!("source.{s}"));
    }
    // The 指标 view: every reason's code, unit and status, every indicator, the durations.
    for (code, _) in crate::report::NOTE_CODES {
        used.push(format!("report.note.{code}"));
    }
    for u in ["device", "system", "zone", "enterprise", "link", "alarm"] {
        used.push(format!("report.unit.{u}"));
    }
    for st in [
        crate::model::UnitStatus::Planned,
        crate::model::UnitStatus::Built,
        crate::model::UnitStatus::Suspended,
    ] {
        used.push(format!("report.status.{}", st.as_str()));
    }
    for id in crate::core::indicators::engine::IndicatorId::ALL {
        used.push(format!("report.ind.{}", id.name()));
    }
    for u in ["ms", "s", "min", "h", "d"] {
        used.push(format!("report.dur.{u}"));
    }
    for s in ["connecting", "open", "closed"] {
        used.push(format!("live.{s}"));
    }
    // The 输入 view: every rejection reason, a Modbus link's states.
    for r in crate::model::Reason::ALL {
        used.push(format!("reason.{}", r.as_str()));
    }
    for s in ["up", "down", "paused"] {
        used.push(format!("link.{s}"));
    }
    used
}

/// Each reason's wording names exactly its code's parameters, in both languages.
fn notes_name_their_parameters(
    zh: &serde_json::Map<String, serde_json::Value>,
    en: &serde_json::Map<String, serde_json::Value>,
) {
    // A down device's parts are worded one by one (`report.part.*`).
    for (code, names) in crate::report::NOTE_CODES {
        for lang in [zh, en] {
            let text = lang[&format!("report.note.{code}")].as_str().unwrap();
            let holes: Vec<&str> = text
                .split('{')
                .skip(1)
                .map(|p| p.split('}').next().unwrap())
                .collect();
            if *code == "device_down" {
                assert_eq!(holes, ["parts"]);
                continue;
            }
            let mut holes = holes.clone();
            holes.sort();
            let mut want = names.to_vec();
            want.sort();
            assert_eq!(holes, want, "report.note.{code}: {text}");
        }
    }
}

#[test]
fn every_label_the_console_uses_is_in_both_languages() {
    let dict: serde_json::Value = serde_json::from_str(&asset_text("i18n.json")).unwrap();
    let zh = dict["zh-CN"].as_object().unwrap();
    let en = dict["en"].as_object().unwrap();
    let mut zh_keys: Vec<&String> = zh.keys().collect();
    let mut en_keys: Vec<&String> = en.keys().collect();
    zh_keys.sort();
    en_keys.sort();
    assert_eq!(zh_keys, en_keys, "the two languages have the same keys");
    for (k, v) in zh.iter().chain(en.iter()) {
        assert!(!v.as_str().unwrap_or("").trim().is_empty(), "{k} is empty");
    }
    // Keys written out in the page (data-i18n="…") and in the modules (t("…")).
    let mut used = Vec::new();
    let html = asset_text("index.html");
    for part in html.split("data-i18n=\"").skip(1) {
        used.push(part.split('"').next().unwrap().to_string());
    }
    for name in super::Assets::iter().filter(|n| n.ends_with(".js")) {
        let js = asset_text(&name);
        for (at, _) in js.match_indices("t(\"") {
            let before = js[..at].chars().next_back().unwrap_or(' ');
            if before.is_alphanumeric() || before == '_' {
                continue; // onEvent("…"), not t("…")
            }
            let key = js[at + 3..].split('"').next().unwrap();
            used.push(key.to_string());
        }
    }
    used.extend(value_keys(zh));
    assert!(used.len() > 60, "the scan found the labels: {}", used.len());
    for k in &used {
        assert!(zh.contains_key(k), "{k} is used but not in i18n.json");
    }
    notes_name_their_parameters(zh, en);
    // The dictionary's kinds are the gateway's kinds (the kind filter lists them).
    let kinds = zh.keys().filter(|k| k.starts_with("kind.")).count();
    assert_eq!(kinds, crate::model::DeviceKind::ALL.len());
    // The indicator names as in the 自评表.
    assert_eq!(zh["ind.online_rate"], "联网在线率");
    assert_eq!(zh["ind.coverage_rate"], "公共区域监测监控设备覆盖率");
    assert_eq!(zh["ind.alarm_response_rate"], "预警响应率");
}

#[test]
fn the_modules_never_make_markup_or_styles_from_strings() {
    for name in super::Assets::iter().filter(|n| n.ends_with(".js")) {
        let js = asset_text(&name);
        for banned in [
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
            ".style",
            "setAttribute",
            "eval(",
            "new Function",
        ] {
            assert!(!js.contains(banned), "{name} uses {banned}");
        }
    }
}
