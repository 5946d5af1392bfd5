//! End to end on real parts: Mosquitto → gateway → VictoriaMetrics (InfluxDB 2 write API),
//! and the HTTP API.

use crate::common::*;
use safegate::sources::mqtt::payload::parse_rfc3339_ms;
use safegate::telemetry::rfc3339_ms;
use serde_json::json;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(20);

async fn wait_ready(api: &str) {
    wait_json(&format!("{api}/readyz"), WAIT, |v| {
        v["mqtt"]["connected"] == true
    })
    .await;
}

/// Park p1 with enterprise e1 and zone z1, no devices yet.
fn park() -> Inventory {
    Inventory::default()
        .site("p1", "Park one", "park")
        .enterprise("e1", "Enterprise one")
        .zone("z1", "Gate")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readings_reach_the_api_and_the_store_with_tags_and_timestamps() {
    let _load = shared().await;
    let mq = Mosquitto::start();
    let vm = Victoria::start();
    let inv = park()
        .detector("d0", 10.0)
        .with("zone = \"z1\"")
        .detectors(&["d1", "d2", "d3"], 10.0)
        .device("d4", "gas_toxic", 10.0)
        .with("gas = \"H2S\"")
        .with("enterprise = \"e1\"")
        .to_toml();
    let cfg = TestConfig::new(&settings(&mq.url(), "gw-t1", Some(&vm.url())), &inv);
    let gw = safegate::runtime::start(cfg.load()).await.unwrap();
    let api = format!("http://{}", gw.api_addr);
    wait_ready(&api).await;

    let publisher = Publisher::connect(mq.port, "pub-t1").await;
    let ts0 = now_ms() - 60_000;
    for i in 0..5i64 {
        let body = json!({"ts": ts0 + i * 1000, "values": {"lel": i as f64 + 0.5, "temp": 20.25}});
        publisher
            .send(&format!("safegate/v1/p1/d{i}/data"), body.to_string())
            .await;
    }
    let list = wait_json(&format!("{api}/api/v1/devices?site=p1"), WAIT, |v| {
        v["devices"]
            .as_array()
            .is_some_and(|a| a.len() == 5 && a.iter().all(|d| d["state"] == "online"))
    })
    .await;
    for i in 0..5i64 {
        let d = device(&list, &format!("d{i}"));
        assert_eq!(d["last_values"]["lel"], json!(i as f64 + 0.5));
        assert_eq!(d["last_values"]["temp"], json!(20.25));
        assert_eq!(d["last_ts"], json!(rfc3339_ms(ts0 + i * 1000)));
        // Latency = receive time − ts, and ts was set (60 − i) s before publishing.
        let lat = d["latency_ms"].as_i64().unwrap();
        let floor = 60_000 - i * 1000;
        assert!((floor..floor + 10_000).contains(&lat), "latency {lat}");
    }

    let series = vm
        .wait_for(r#"{__name__="reading_lel"}"#, WAIT, |s| s.len() == 5)
        .await;
    for s in &series {
        let i: i64 = s.label("device")[1..].parse().unwrap();
        assert_eq!(s.label("site"), "p1");
        assert_eq!(
            s.label("kind"),
            if i == 4 {
                "gas_toxic"
            } else {
                "gas_combustible"
            }
        );
        assert_eq!(s.timestamps, vec![ts0 + i * 1000], "timestamp of d{i}");
        assert_eq!(s.values, vec![i as f64 + 0.5]);
        if i == 0 {
            assert_eq!(s.label("zone"), "z1");
        }
        if i == 4 {
            assert_eq!(s.label("enterprise"), "e1");
            assert_eq!(s.label("gas"), "H2S");
        }
    }
    // Each first reading is an online transition in the store too.
    vm.wait_for(r#"{__name__="device_state_online"}"#, WAIT, |s| {
        s.len() == 5 && s.iter().all(|x| x.values == vec![1.0])
    })
    .await;
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_device_goes_offline_at_its_deadline_and_the_rate_is_exact() {
    let _load = shared().await;
    let mq = Mosquitto::start();
    let vm = Victoria::start();
    let mut inv = park();
    for d in ["d0", "d1", "d2", "d3"] {
        inv = inv.detector(d, 0.5).with("offline_after_s = 1.5");
    }
    // A suspended device and a planned one are outside the rate's denominator.
    let inv = inv
        .device("s1", "temperature", 1.0)
        .with("status = \"suspended\"")
        .device("n1", "temperature", 1.0)
        .with("status = \"planned\"")
        .to_toml();
    let s = settings(&mq.url(), "gw-t2", Some(&vm.url()))
        .replace("[store]\n", "[store]\nindicator_interval_s = 1\n")
        + "[indicators]\nstore_windows = [\"2s\"]\nutc_offset_h = 0\n\n";
    let cfg = TestConfig::new(&s, &inv);
    let clock = test_clock();
    let gw = safegate::runtime::start_with(cfg.load(), clock.clock())
        .await
        .unwrap();
    let api = format!("http://{}", gw.api_addr);
    wait_ready(&api).await;
    let publisher = Publisher::connect(mq.port, "pub-t2").await;

    // d3 reports once; the others keep reporting every 500 ms for 4.5 s, past two closings of
    // the 2 s store window.
    report_now(&clock, &publisher, &api, "p1", &["d0", "d1", "d2", "d3"]).await;
    for _ in 0..9 {
        clock.advance(Duration::from_millis(500));
        report_now(&clock, &publisher, &api, "p1", &["d0", "d1", "d2"]).await;
    }
    let list = wait_json(
        &format!("{api}/api/v1/devices?site=p1&state=offline"),
        WAIT,
        |v| v["total"] == 1,
    )
    .await;
    let d3 = device(&list, "d3");
    let last_seen = parse_rfc3339_ms(d3["last_seen"].as_str().unwrap()).unwrap();
    let since = parse_rfc3339_ms(d3["state_since"].as_str().unwrap()).unwrap();
    assert_eq!(
        since,
        last_seen + 1500,
        "offline exactly offline_after_s after the last reading"
    );

    let site = get(&format!("{api}/api/v1/sites/p1")).await.1;
    assert_eq!(site["online_rate"]["numerator"], 3);
    assert_eq!(site["online_rate"]["denominator"], 4);
    assert_eq!(site["online_rate"]["value"], 0.75);
    assert_eq!(site["devices"]["planned"], 6);
    assert_eq!(site["devices"]["never"], 2);
    assert_eq!(site["devices"]["suspended"], 1);
    let region = get(&format!("{api}/api/v1/sites")).await.1;
    assert_eq!(region["region"]["online_rate"]["value"], 0.75);

    // The transition is in the store with its exact time.
    let s = vm
        .wait_for(
            r#"{__name__="device_state_online",device="d3"}"#,
            WAIT,
            |s| s.iter().map(|x| x.values.len()).sum::<usize>() == 2,
        )
        .await;
    let mut points: Vec<(i64, f64)> = s
        .iter()
        .flat_map(|x| x.timestamps.iter().copied().zip(x.values.iter().copied()))
        .collect();
    points.sort_by_key(|p| p.0);
    assert_eq!(points[1], (last_seen + 1500, 0.0));

    // Periodic indicator snapshots reach the store with numerator and denominator.
    for (field, want) in [("value", 0.75), ("numerator", 3.0), ("denominator", 4.0)] {
        let sel = format!(
            r#"{{__name__="indicator_{field}",indicator="online_rate",scope="site",scope_id="p1"}}"#
        );
        vm.wait_for(&sel, WAIT, |s| {
            s.iter().any(|x| x.values.last() == Some(&want))
        })
        .await;
    }
    // Closed windows of every indicator, for every scope, as they close.
    let closed = vm
        .wait_for(
            r#"{__name__="indicator_denominator",window="2s",indicator="online_rate",scope="site",scope_id="p1"}"#,
            WAIT,
            // The first window started before the devices were registered; later ones
            // count all 4 for the whole window.
            |s| s.iter().any(|x| x.values.contains(&4.0)),
        )
        .await;
    assert!(
        closed[0].timestamps.iter().all(|t| t % 2_000 == 0),
        "stamped at window starts"
    );
    vm.wait_for(
        r#"{__name__="indicator_denominator",window="2s",indicator="system_count",scope="region",qualifier="slope_monitoring"}"#,
        WAIT,
        |s| !s.is_empty(),
    )
    .await;
    vm.wait_for(
        r#"{__name__="indicator_value",scope="region",scope_id="region"}"#,
        WAIT,
        |s| s.iter().any(|x| x.values.last() == Some(&0.75)),
    )
    .await;
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_input_is_rejected_by_reason_and_the_good_ones_around_it_arrive() {
    let _load = shared().await;
    let mq = Mosquitto::start();
    let vm = Victoria::start();
    let inv = park()
        .detector("good", 10.0)
        .site("p2", "Park two", "park")
        .detector("q1", 10.0)
        .to_toml();
    let mut s = settings(&mq.url(), "gw-t3", Some(&vm.url()));
    s = s.replace(
        "[mqtt]\n",
        "[mqtt]\nmax_payload_bytes = 1024\nmax_batch_len = 5\n",
    );
    let cfg = TestConfig::new(&s, &inv);
    let gw = safegate::runtime::start(cfg.load()).await.unwrap();
    let api = format!("http://{}", gw.api_addr);
    wait_ready(&api).await;
    let p = Publisher::connect(mq.port, "pub-t3").await;

    let ts0 = now_ms() - 10_000;
    let mut good = 0i64;
    let data = "safegate/v1/p1/good/data";
    let bad: Vec<(&str, String, &str)> = vec![
        (data, "{\"values\": {\"v\": 1".into(), "malformed_json"),
        (data, r#"{"values": {"v": NaN}}"#.into(), "malformed_json"),
        (
            "safegate/v1/nowhere/good/data",
            r#"{"values":{"v":1}}"#.into(),
            "unknown_site",
        ),
        (
            "safegate/v1/p1/ghost/data",
            r#"{"values":{"v":1}}"#.into(),
            "unknown_device",
        ),
        (
            "safegate/v1/p1/q1/data",
            r#"{"values":{"v":1}}"#.into(),
            "wrong_site",
        ),
        (data, r#"{"values":{"v":"high"}}"#.into(), "invalid_value"),
        (data, r#"{"values":{}}"#.into(), "empty_values"),
        (
            data,
            format!(r#"{{"ts":{},"values":{{"v":1}}}}"#, now_ms() + 3_600_000),
            "future_timestamp",
        ),
        (
            data,
            r#"{"ts":"yesterday","values":{"v":1}}"#.into(),
            "bad_timestamp",
        ),
        (
            data,
            r#"{"ts":1767196800,"values":{"v":1}}"#.into(),
            "bad_timestamp",
        ),
        (
            data,
            format!(r#"{{"values":{{"v":1}},"pad":"{}"}}"#, "x".repeat(2000)),
            "payload_too_large",
        ),
        (
            "safegate/v1/p1/good/telemetry",
            r#"{"values":{"v":1}}"#.into(),
            "bad_topic",
        ),
        (
            "safegate/v1/p1/batch",
            format!(
                "[{}]",
                [r#"{"device":"good","values":{"v":1}}"#; 6].join(",")
            ),
            "batch_too_large",
        ),
    ];
    for (topic, payload, _) in &bad {
        good += 1;
        p.send(
            data,
            format!(r#"{{"ts":{},"values":{{"v":{good}}}}}"#, ts0 + good),
        )
        .await;
        p.send(topic, payload.clone()).await;
    }
    // A batch whose second element is bad: only that element is rejected.
    good += 1;
    p.send(
        "safegate/v1/p1/batch",
        format!(r#"[{{"device":"good","ts":{},"values":{{"v":{good}}}}},{{"device":"ghost","values":{{"v":1}}}}]"#, ts0 + good),
    )
    .await;
    good += 1;
    p.send(
        data,
        format!(r#"{{"ts":{},"values":{{"v":{good}}}}}"#, ts0 + good),
    )
    .await;

    let rej = wait_json(&format!("{api}/api/v1/rejections"), WAIT, |v| {
        v["counts"]
            .as_object()
            .unwrap()
            .values()
            .map(|n| n.as_u64().unwrap())
            .sum::<u64>()
            == 14
    })
    .await;
    let mut expected = std::collections::BTreeMap::<&str, u64>::new();
    for (_, _, reason) in &bad {
        *expected.entry(reason).or_default() += 1;
    }
    *expected.entry("unknown_device").or_default() += 1; // the batch element
    for (reason, n) in &expected {
        assert_eq!(
            rej["counts"][*reason],
            json!(n),
            "count of {reason} in {rej}"
        );
    }
    let recent = rej["recent"].as_array().unwrap();
    assert!(recent
        .iter()
        .any(|r| r["reason"] == "unknown_device" && r["element"] == 1));
    assert!(recent
        .iter()
        .all(|r| r["topic"].as_str().unwrap().starts_with("safegate/v1/")));

    let list = wait_json(&format!("{api}/api/v1/devices?site=p1"), WAIT, |v| {
        device(v, "good")["last_values"]["v"] == json!(good as f64)
    })
    .await;
    assert_eq!(device(&list, "good")["state"], "online");
    let m = get_text(&format!("{api}/metrics")).await;
    assert_eq!(
        metric(&m, "safegate_readings_accepted_total"),
        Some(good as f64)
    );
    for (reason, n) in &expected {
        let key = format!("safegate_readings_rejected_total{{reason=\"{reason}\"}}");
        assert_eq!(metric(&m, &key), Some(*n as f64), "{key}");
    }
    // Every good reading is in the store, in order.
    let s = vm
        .wait_for(r#"{__name__="reading_v",device="good"}"#, WAIT, |s| {
            s.iter().map(|x| x.values.len()).sum::<usize>() == good as usize
        })
        .await;
    let mut got: Vec<(i64, f64)> = s
        .iter()
        .flat_map(|x| x.timestamps.iter().copied().zip(x.values.iter().copied()))
        .collect();
    got.sort_by_key(|p| p.0);
    let want: Vec<(i64, f64)> = (1..=good).map(|k| (ts0 + k, k as f64)).collect();
    assert_eq!(got, want);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn survives_a_broker_restart_and_a_store_outage() {
    let _load = shared().await;
    let mut mq = Mosquitto::start();
    let mut vm = Victoria::start();
    let inv = park().detector("d0", 10.0).to_toml();
    let cfg = TestConfig::new(&settings(&mq.url(), "gw-t4", Some(&vm.url())), &inv);
    let gw = safegate::runtime::start(cfg.load()).await.unwrap();
    let api = format!("http://{}", gw.api_addr);
    wait_ready(&api).await;
    let ts0 = now_ms() - 30_000;
    let send = |p: &Publisher, k: i64| {
        let body = format!(r#"{{"ts":{},"values":{{"v":{k}}}}}"#, ts0 + k);
        let c = p.client.clone();
        async move {
            c.publish(
                "safegate/v1/p1/d0/data",
                rumqttc::QoS::AtLeastOnce,
                false,
                body,
            )
            .await
            .unwrap()
        }
    };
    let accepted = |n: u64| {
        let api = api.clone();
        async move {
            let deadline = std::time::Instant::now() + WAIT;
            loop {
                let m = get_text(&format!("{api}/metrics")).await;
                // At least: a message whose PUBACK had not reached the broker when it
                // restarted is delivered again (at-least-once; the store overwrites it).
                if metric(&m, "safegate_readings_accepted_total").is_some_and(|a| a >= n as f64) {
                    return;
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "never accepted {n}: {m}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    {
        let p = Publisher::connect(mq.port, "pub-t4a").await;
        for k in 1..=5 {
            send(&p, k).await;
        }
        accepted(5).await;
    }

    mq.restart();
    let ready = wait_json(&format!("{api}/readyz"), WAIT, |v| {
        v["mqtt"]["connected"] == true && v["mqtt"]["reconnects"].as_u64().unwrap() >= 1
    })
    .await;
    assert_eq!(ready["ready"], true);
    {
        let p = Publisher::connect(mq.port, "pub-t4b").await;
        for k in 6..=10 {
            send(&p, k).await;
        }
        accepted(10).await;

        vm.stop();
        for k in 11..=20 {
            send(&p, k).await;
        }
        accepted(20).await;
    }
    let r = wait_json(&format!("{api}/readyz"), WAIT, |v| {
        v["store"]["health"] == "failing"
    })
    .await;
    assert_eq!(r["ready"], false);
    let (code, _) = get(&format!("{api}/readyz")).await;
    assert_eq!(code, 503);

    vm.start_again();
    let s = vm
        .wait_for(
            r#"{__name__="reading_v",device="d0"}"#,
            Duration::from_secs(60),
            |s| {
                s.iter()
                    .flat_map(|x| x.timestamps.iter())
                    .collect::<std::collections::BTreeSet<_>>()
                    .len()
                    == 20
            },
        )
        .await;
    // Every reading, each timestamp once whatever was delivered twice.
    let ts: std::collections::BTreeSet<i64> = s.iter().flat_map(|x| x.timestamps.clone()).collect();
    assert_eq!(ts, (1..=20).map(|k| ts0 + k).collect());
    wait_json(&format!("{api}/readyz"), WAIT, |v| {
        v["store"]["health"] == "ok"
    })
    .await;
    let m = get_text(&format!("{api}/metrics")).await;
    assert!(metric(&m, "safegate_store_write_failures_total").unwrap() >= 1.0);
    assert_eq!(metric(&m, "safegate_store_points_dropped_total"), Some(0.0));
    gw.stop().await;
}
