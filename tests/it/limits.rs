//! Input bounds through a real broker: each limit refuses its message with a reason, the
//! gateway keeps serving, and the good readings around the bad ones arrive.

use crate::common::*;
use serde_json::{json, Value};
use std::time::Duration;

/// Park p1 with one detector, g1.
fn inv() -> String {
    Inventory::park("p1").detector("g1", 60.0).to_toml()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_limit_refuses_its_message_and_the_good_ones_arrive() {
    let _load = shared().await;
    let mq = Mosquitto::start();
    let settings = settings(&mq.url(), "gw-limits", None).replace(
        "reconnect_min_ms",
        "max_payload_bytes = 2048\nmax_batch_len = 5\nmax_channels = 8\nmax_id_bytes = 32\nmax_channel_name_bytes = 16\nmax_note_bytes = 100\nreconnect_min_ms",
    );
    let cfg = TestConfig::new(&settings, &inv());
    let (gw, api) = start_ready(&cfg).await;
    let p = Publisher::connect(mq.port, "pub-limits").await;
    let good = |i: u32| json!({"values": {"lel": i as f64}}).to_string();
    let many: serde_json::Map<String, Value> =
        (0..9).map(|i| (format!("c{i}"), json!(1.0))).collect();
    let long_id = "d".repeat(1000);
    let bad: Vec<(String, String, &str)> = vec![
        (
            "safegate/v1/p1/g1/data".into(),
            json!({"values": {"lel": 1.0}, "pad": "x".repeat(3000)}).to_string(),
            "payload_too_large",
        ),
        (
            "safegate/v1/p1/batch".into(),
            json!((0..6)
                .map(|_| json!({"device": "g1", "values": {"lel": 1}}))
                .collect::<Vec<_>>())
            .to_string(),
            "batch_too_large",
        ),
        (
            "safegate/v1/p1/g1/data".into(),
            json!({ "values": many }).to_string(),
            "too_many_channels",
        ),
        (
            format!("safegate/v1/p1/{long_id}/data"),
            good(1),
            "bad_topic",
        ),
        (
            "safegate/v1/p1/g1/data".into(),
            json!({"values": {"c".repeat(100): 1.0}}).to_string(),
            "invalid_value",
        ),
        // The configured bounds, below the defaults: a 40-byte id, a 20-byte channel name, a
        // 200-byte acknowledgement note.
        (
            format!("safegate/v1/p1/{}/data", "e".repeat(40)),
            good(2),
            "bad_topic",
        ),
        (
            "safegate/v1/p1/g1/data".into(),
            json!({"values": {"c".repeat(20): 1.0}}).to_string(),
            "invalid_value",
        ),
        (
            "safegate/v1/p1/alarms/1/ack".into(),
            json!({"by": "platform", "note": "n".repeat(200)}).to_string(),
            "invalid_value",
        ),
    ];
    let mut sent_good = 0;
    for (i, (topic, payload, _)) in bad.iter().enumerate() {
        p.send("safegate/v1/p1/g1/data", good(i as u32)).await;
        sent_good += 1;
        p.send(topic, payload.clone()).await;
    }
    p.send("safegate/v1/p1/g1/data", good(99)).await;
    sent_good += 1;
    let rej = wait_json(
        &format!("{api}/api/v1/rejections"),
        Duration::from_secs(20),
        |v| {
            let n: u64 = v["counts"]
                .as_object()
                .map_or(0, |m| m.values().filter_map(|x| x.as_u64()).sum());
            n >= bad.len() as u64
        },
    )
    .await;
    for (_, _, r) in &bad {
        let want = bad.iter().filter(|(_, _, x)| x == r).count();
        assert_eq!(rej["counts"][r], want, "{r}: {rej}");
    }
    let details = rej.to_string();
    for what in [
        "mqtt.max_id_bytes",
        "mqtt.max_channel_name_bytes",
        "mqtt.max_note_bytes",
    ] {
        assert!(details.contains(what), "{what}: {details}");
    }
    // The long id is named, shortened, never copied whole into the log.
    let text = rej.to_string();
    assert!(!text.contains(&long_id), "{text}");
    let metrics = wait_json(
        &format!("{api}/api/v1/devices"),
        Duration::from_secs(20),
        |v| device(v, "g1")["last_values"]["lel"] == json!(99.0),
    )
    .await;
    let _ = metrics;
    let text = get_text(&format!("{api}/metrics")).await;
    assert_eq!(
        metric(&text, "safegate_readings_accepted_total"),
        Some(sent_good as f64)
    );
    gw.stop().await;
}
