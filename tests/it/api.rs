//! The API over a whole gateway and a real broker: health, an error body end to end, and the
//! metrics format. Every error case is checked without a gateway in `src/api/tests.rs`.

use crate::common::*;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_an_error_body_and_metrics_through_a_whole_gateway() {
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

    let (status, body) = get(&format!("{api}/api/v1/sites/nope")).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"]["code"], "not_found", "{body}");
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
