//! The API on its own: a router over a hand-built `Shared`, called with `oneshot`, without a
//! gateway, a broker or a store (the API imports no runtime, so nothing else is needed).

use super::*;
use crate::core::config::inventory::test_file;
use crate::core::{Core, Inventory};
use crate::report::evaluate::Evaluator;
use crate::telemetry::StoreStatus;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use tower::ServiceExt;

const INV: &str = "[[sites]]\nid = \"p1\"\nname = \"P\"\nkind = \"park\"\n\n\
    [[devices]]\nid = \"d\"\nsite = \"p1\"\nkind = \"temperature\"\nprotocol = \"mqtt\"\ninterval_s = 5\n";

fn shared(dir: &std::path::Path) -> Arc<Shared> {
    shared_live(dir).0
}

/// A `Shared` and the outlet of its live feed (`GET /api/v1/events` answers 503 once the
/// outlet is dropped, as when the gateway stops).
pub(super) fn shared_live(dir: &std::path::Path) -> (Arc<Shared>, events::Outlet) {
    let f = test_file(INV);
    let (outlet, events) = events::channel();
    let mut core = Core::new(Inventory::from_config(&f.inventory), 60_000, 10);
    let (commands, _) = tokio::sync::mpsc::channel(1);
    let shared = Arc::new(Shared {
        events,
        read_model: arc_swap::ArcSwap::from_pointee(core.snapshot(None)),
        evaluator: Arc::new(Evaluator {
            journal: Arc::new(crate::state::ReadPool::new(dir)),
            inventory: crate::report::evaluate::live(core.inventory.clone()),
            settings: Default::default(),
            targets: Vec::new(),
        }),
        core: Mutex::new(core),
        config_view: serde_json::json!({}),
        ack_limits: (128, 2000),
        audit: Arc::new(crate::sinks::audit::AuditLog::open(dir).unwrap()),
        commands,
        metrics: Arc::new(Metrics::new()),
        mqtt: Arc::default(),
        store: Arc::new(StoreStatus::new(false)),
        outbox_status: Arc::default(),
        outbox: None,
        modbus: Arc::default(),
        ingest: None,
        mines: Default::default(),
        clock: Default::default(),
        overview: Default::default(),
        cluster: None,
        into_stream: None,
    });
    (shared, outlet)
}

async fn get(app: &axum::Router, path: &str) -> (StatusCode, serde_json::Value) {
    let req = Request::get(path).body(Body::empty()).unwrap();
    let res = app.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let bytes = axum::body::to_bytes(res.into_body(), 1 << 20)
        .await
        .unwrap();
    (status, serde_json::from_slice(&bytes).unwrap_or_default())
}

#[tokio::test]
async fn errors_are_json_with_the_right_status_and_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let app = router(shared(dir.path()), None, 65_536, &[]);
    for (path, code, kind) in [
        ("/api/v1/sites/nope", 404, "not_found"),
        ("/api/v1/devices?site=nope", 404, "not_found"),
        ("/api/v1/devices?state=sleeping", 400, "bad_request"),
        ("/api/v1/devices?kind=plasma", 400, "bad_request"),
        ("/api/v1/devices?limit=0", 400, "bad_request"),
        ("/api/v1/devices?limit=abc", 400, "bad_request"),
        ("/api/v1/devices?colour=red", 400, "bad_request"),
        ("/api/v2/nothing", 404, "not_found"),
    ] {
        let (status, body) = get(&app, path).await;
        assert_eq!(status.as_u16(), code, "{path}: {body}");
        assert_eq!(body["error"]["code"], kind, "{path}: {body}");
        assert!(
            !body["error"]["message"].as_str().unwrap_or("").is_empty(),
            "{path}: a message the operator can act on"
        );
    }
    let (status, never) = get(&app, "/api/v1/devices?state=never&kind=temperature").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(never["total"], 1, "{never}");
    let (_, ready) = get(&app, "/readyz").await;
    assert_eq!(ready["store"]["health"], "disabled", "{ready}");
}

#[tokio::test]
async fn devices_are_found_by_a_part_of_their_id_and_paged() {
    let dir = tempfile::tempdir().unwrap();
    let app = router(shared(dir.path()), None, 65_536, &[]);
    for (query, total, ids) in [
        ("q=d", 1, vec!["d"]),
        ("q=D", 1, vec!["d"]),
        ("q=x", 0, vec![]),
        ("q=%20", 1, vec!["d"]),
        ("q=d&state=online", 0, vec![]),
        ("q=d&kind=temperature&offset=1", 1, vec![]),
    ] {
        let (status, v) = get(&app, &format!("/api/v1/devices?{query}")).await;
        assert_eq!(status, StatusCode::OK, "{query}: {v}");
        assert_eq!(v["total"], total, "{query}: {v}");
        let got: Vec<&str> = v["devices"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["id"].as_str().unwrap())
            .collect();
        assert_eq!(got, ids, "{query}");
    }
    let long = "a".repeat(300);
    let (status, v) = get(&app, &format!("/api/v1/devices?q={long}")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
}
