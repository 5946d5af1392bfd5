//! API error shapes and status codes, and the metrics format.

use crate::common::*;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_json_with_the_right_status() {
    let _load = shared().await;
    let mq = Mosquitto::start();
    let inv = Inventory::default()
        .site("p1", "P", "park")
        .device("d", "temperature", 5.0)
        .to_toml();
    let cfg = TestConfig::new(&settings(&mq.url(), "gw-api", None), &inv);
    let gw = safegate::runtime::start(cfg.load()).await.unwrap();
    let api = format!("http://{}", gw.api_addr);
    wait_json(&format!("{api}/readyz"), Duration::from_secs(20), |v| {
        v["ready"] == true
    })
    .await;

    let cases = [
        ("/api/v1/sites/nope", 404, "not_found"),
        ("/api/v1/devices?site=nope", 404, "not_found"),
        ("/api/v1/devices?state=sleeping", 400, "bad_request"),
        ("/api/v1/devices?kind=plasma", 400, "bad_request"),
        ("/api/v1/devices?limit=0", 400, "bad_request"),
        ("/api/v1/devices?limit=abc", 400, "bad_request"),
        ("/api/v1/devices?colour=red", 400, "bad_request"),
        ("/api/v2/nothing", 404, "not_found"),
    ];
    for (path, code, kind) in cases {
        let (status, body) = get(&format!("{api}{path}")).await;
        assert_eq!(status, code, "{path}: {body}");
        assert_eq!(body["error"]["code"], kind, "{path}: {body}");
        assert!(
            !body["error"]["message"].as_str().unwrap().is_empty(),
            "{path}: a message the operator can act on"
        );
    }
    let (status, body) = get(&format!("{api}/healthz")).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("ok")));
    let (_, ready) = get(&format!("{api}/readyz")).await;
    assert_eq!(ready["store"]["health"], "disabled");

    let (status, never) = get(&format!(
        "{api}/api/v1/devices?state=never&kind=temperature"
    ))
    .await;
    assert_eq!(status, 200);
    assert_eq!(never["total"], 1);

    let m = get_text(&format!("{api}/metrics")).await;
    assert_eq!(metric(&m, "safegate_mqtt_connected"), Some(1.0));
    assert_eq!(
        metric(
            &m,
            "safegate_readings_rejected_total{reason=\"malformed_json\"}"
        ),
        Some(0.0),
        "every reason is present from the start"
    );
    gw.stop().await;
}
