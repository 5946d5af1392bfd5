//! `GET /api/v1/devices/{site}/{id}/history`: a device's online/offline timeline over a
//! window, its state when the window began, and its recent readings (the last
//! `gateway.recent_values`), through Mosquitto on the gateway's clock.

use crate::common::*;
use safegate::sources::mqtt::payload::parse_rfc3339_ms;
use serde_json::{json, Value};
use std::time::Duration;

fn at(v: &Value) -> i64 {
    parse_rfc3339_ms(v.as_str().unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_s_timeline_and_its_last_readings() {
    let _load = shared().await;
    let mq = Mosquitto::start();
    let inv = Inventory::park("p1")
        .detector("a", 0.2)
        .with("offline_after_s = 1")
        .detector("quiet", 60.0)
        .to_toml();
    // The inventory follows the [gateway] section TestConfig writes: a key before its first
    // table is a gateway setting.
    let inv = format!("recent_values = 4\n\n{inv}");
    let cfg = TestConfig::new(&settings(&mq.url(), "gw-history", None), &inv);
    let clock = test_clock();
    let (_gw, api) = start_ready_on(&cfg, clock.clock()).await;
    let p = Publisher::connect(mq.port, "pub-history").await;
    let t0 = clock.now_ms();
    let url = |q: &str| format!("{api}/api/v1/devices/p1/a/history{q}");

    // Six readings 200 ms apart (lel 0..5): the last four are kept.
    for i in 0..6 {
        p.send(
            "safegate/v1/p1/a/data",
            json!({"values": {"lel": i}, "ts": clock.now_ms()}).to_string(),
        )
        .await;
        wait_json(&url(""), Duration::from_secs(10), |v| {
            v["values"]
                .as_array()
                .and_then(|a| a.last())
                .map(|x| &x["value"])
                == Some(&json!(i as f64))
        })
        .await;
        clock.advance(Duration::from_millis(200));
    }
    // Silent for 2 s: offline.
    clock.advance(Duration::from_secs(2));
    let v = wait_json(&url(""), Duration::from_secs(10), |v| {
        v["transitions"].as_array().is_some_and(|t| t.len() == 2)
    })
    .await;
    let values: Vec<f64> = v["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["value"].as_f64().unwrap())
        .collect();
    assert_eq!(values, vec![2.0, 3.0, 4.0, 5.0], "{v}");
    let ts: Vec<i64> = v["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| at(&x["ts"]))
        .collect();
    assert_eq!(ts, (2..6).map(|i| t0 + i * 200).collect::<Vec<_>>());
    assert_eq!(v["channel"], "lel");
    assert_eq!(v["unit"], "%LEL");
    let tr = v["transitions"].as_array().unwrap();
    assert_eq!(tr[0]["online"], true);
    assert_eq!(at(&tr[0]["at"]), t0, "online at its first reading");
    assert_eq!(tr[1]["online"], false);
    assert_eq!(
        at(&tr[1]["at"]),
        t0 + 5 * 200 + 1_000,
        "offline 1 s after its last"
    );
    assert_eq!(v["state_at_from"], "never", "24 h back it had not reported");
    assert_eq!(v["truncated"], false);

    // A window that starts while it was online: its state then, and only what follows.
    let from = t0 + 500;
    let (status, w) = get(&url(&format!("?from={from}"))).await;
    assert_eq!(status, 200, "{w}");
    assert_eq!(w["state_at_from"], "online");
    assert_eq!(w["transitions"].as_array().unwrap().len(), 1);
    assert_eq!(at(&w["from"]), from);
    assert_eq!(at(&w["to"]), clock.now_ms());

    // A device that never reported: no transitions, no values.
    let (status, q) = get(&format!("{api}/api/v1/devices/p1/quiet/history")).await;
    assert_eq!(status, 200, "{q}");
    assert_eq!(
        (
            q["state_at_from"].as_str(),
            q["transitions"].as_array().map(Vec::len)
        ),
        (Some("never"), Some(0))
    );
    assert!(q["values"].as_array().unwrap().is_empty() && q["channel"].is_null());

    // Errors that name the problem.
    let (status, e) = get(&format!("{api}/api/v1/devices/p1/nope/history")).await;
    assert_eq!(status, 404);
    assert!(
        e["error"]["message"].as_str().unwrap().contains("\"nope\""),
        "{e}"
    );
    let (status, e) = get(&url("?from=0")).await;
    assert_eq!(status, 400, "a window of 56 years: {e}");
    assert!(e["error"]["message"].as_str().unwrap().contains("31 days"));
}
