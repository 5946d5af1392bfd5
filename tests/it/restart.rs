//! Liveness transitions are persisted under data_dir and survive a gateway restart.

use crate::common::*;
use std::time::Duration;

/// Mine m1: a reports every 500 ms and is offline 1 s after its last reading; b every 10 s.
fn inv() -> String {
    Inventory::default()
        .site("m1", "Mine", "mine")
        .device("a", "methane", 0.5)
        .with("offline_after_s = 1")
        .device("b", "methane", 10.0)
        .to_toml()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transitions_and_state_survive_a_restart() {
    let _load = shared().await;
    let mq = Mosquitto::start();
    let cfg = TestConfig::new(&settings(&mq.url(), "gw-restart", None), &inv());
    let api_of = |gw: &safegate::runtime::Gateway| format!("http://{}", gw.api_addr);

    let clock = test_clock();
    let gw = safegate::runtime::start_with(cfg.load(), clock.clock())
        .await
        .unwrap();
    let api = api_of(&gw);
    wait_json(&format!("{api}/readyz"), Duration::from_secs(20), |v| {
        v["mqtt"]["connected"] == true
    })
    .await;
    let p = Publisher::connect(mq.port, "pub-restart").await;
    p.send("safegate/v1/m1/a/data", r#"{"values":{"ch4":0.2}}"#)
        .await;
    p.send("safegate/v1/m1/b/data", r#"{"values":{"ch4":0.3}}"#)
        .await;
    seen_now(&clock, &api, "m1", &["a", "b"]).await;
    // a goes silent and offline; b stays online.
    clock.advance(Duration::from_secs(1));
    let before = wait_json(
        &format!("{api}/api/v1/devices"),
        Duration::from_secs(20),
        |v| v["devices"][0]["state"] == "offline" && v["devices"][1]["state"] == "online",
    )
    .await;
    // Nothing for the broker to deliver again after the restart (it would bring a back).
    acks_sent(&api).await;
    gw.stop().await;

    let gw = safegate::runtime::start_with(cfg.load(), clock.clock())
        .await
        .unwrap();
    let api = api_of(&gw);
    let (_, after) = get(&format!("{api}/api/v1/devices")).await;
    for i in 0..2 {
        for k in ["state", "state_since", "last_seen"] {
            assert_eq!(
                after["devices"][i][k], before["devices"][i][k],
                "device {i} {k}"
            );
        }
    }
    let (_, site) = get(&format!("{api}/api/v1/sites/m1")).await;
    assert_eq!(site["online_rate"]["numerator"], 1);
    assert_eq!(site["devices"]["reported"], 2);
    gw.stop().await;

    // The journal holds every transition with its time.
    let j = safegate::state::Journal::open(&cfg.dir.path().join("state")).unwrap();
    let (_, a) = j.timeline_of("m1", "a", (0, i64::MAX), 100).unwrap();
    assert_eq!(a.len(), 2, "{a:?}");
    assert!(a[0].online && !a[1].online);
    assert_eq!(
        a[1].at_ms - a[0].at_ms,
        1000,
        "offline exactly offline_after_s after the only reading"
    );
    assert_eq!(a[1].cause, "silence");
}
