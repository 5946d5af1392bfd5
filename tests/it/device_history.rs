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

    // Back online at now: the window up to now lists the change at now (its state now).
    p.send(
        "safegate/v1/p1/a/data",
        json!({"values": {"lel": 9}}).to_string(),
    )
    .await;
    let v = wait_json(&url(""), Duration::from_secs(10), |v| {
        v["transitions"].as_array().is_some_and(|t| t.len() == 3)
    })
    .await;
    assert_eq!(v["transitions"][2]["online"], true);
    assert_eq!(at(&v["transitions"][2]["at"]), clock.now_ms());
    assert_eq!(at(&v["to"]), clock.now_ms());

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

/// A site's zones (covered when an assigned device is online), its systems (online by the
/// quorum of their counted devices) and the device listing filtered by zone and system.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_site_s_zones_and_systems_now_and_the_devices_of_each() {
    let _load = shared().await;
    let mq = Mosquitto::start();
    let inv = Inventory::park("p1")
        .zone("z1", "东区")
        .zone("z2", "西区")
        .zone("z3", "空区")
        .detector("a", 60.0)
        .with("zone = \"z1\"")
        .detector("b", 60.0)
        .with("zone = \"z2\"")
        .site("k1", "一号煤矿", "mine")
        .raw(
            "[[systems]]\nid = \"s1\"\nsite = \"k1\"\nkind = \"slope_monitoring\"\nname = \"边坡\"\n\n\
             [[systems]]\nid = \"s2\"\nsite = \"k1\"\nkind = \"major_hazard\"\n\n",
        )
        .detector("m0", 60.0)
        .with("system = \"s1\"")
        .detector("m1", 60.0)
        .with("system = \"s1\"")
        .detector("n0", 60.0)
        .with("system = \"s2\"")
        .to_toml();
    // All of a system's counted devices online for it to be.
    let inv = inv.replacen(
        "[[sites]]",
        "[indicators]\nonline_quorum = \"all\"\n\n[[sites]]",
        1,
    );
    let cfg = TestConfig::new(&settings(&mq.url(), "gw-units", None), &inv);
    let (_gw, api) = start_ready_on(&cfg, test_clock().clock()).await;
    let p = Publisher::connect(mq.port, "pub-units").await;
    for d in ["a", "m0", "n0"] {
        p.send(
            &format!(
                "safegate/v1/{}/{d}/data",
                if d == "a" { "p1" } else { "k1" }
            ),
            json!({"values": {"lel": 1}}).to_string(),
        )
        .await;
    }
    wait_json(
        &format!("{api}/api/v1/devices?state=online"),
        Duration::from_secs(10),
        |v| v["total"] == 3,
    )
    .await;

    let (status, z) = get(&format!("{api}/api/v1/sites/p1/zones")).await;
    assert_eq!(status, 200, "{z}");
    assert_eq!(
        (z["total"].as_u64(), z["covered"].as_u64()),
        (Some(3), Some(1))
    );
    let zone = |id: &str| {
        z["zones"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["id"] == id)
            .unwrap()
            .clone()
    };
    assert_eq!(zone("z1")["covered"], true);
    assert_eq!(zone("z1")["name"], "东区");
    assert_eq!(
        (
            zone("z2")["covered"].as_bool(),
            zone("z2")["never"].as_u64()
        ),
        (Some(false), Some(1))
    );
    assert_eq!(
        (
            zone("z3")["covered"].as_bool(),
            zone("z3")["devices"].as_u64()
        ),
        (Some(false), Some(0))
    );

    let (status, s) = get(&format!("{api}/api/v1/sites/k1/systems")).await;
    assert_eq!(status, 200, "{s}");
    assert_eq!(s["quorum"], "All");
    let sys = |id: &str| {
        s["systems"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["id"] == id)
            .unwrap()
            .clone()
    };
    assert_eq!(sys("s1")["name"], "边坡");
    assert_eq!(sys("s1")["kind"], "slope_monitoring");
    assert_eq!(
        (
            sys("s1")["counted"].as_u64(),
            sys("s1")["online"].as_u64(),
            sys("s1")["need"].as_u64()
        ),
        (Some(2), Some(1), Some(2))
    );
    assert_eq!(
        sys("s1")["quorum_met"],
        false,
        "one of two online under \"all\""
    );
    assert_eq!(sys("s2")["quorum_met"], true);
    assert!(sys("s2")["name"].is_null());

    let ids = |v: &Value| -> Vec<String> {
        v["devices"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["id"].as_str().unwrap().to_string())
            .collect()
    };
    let (_, d) = get(&format!("{api}/api/v1/devices?site=p1&zone=z1")).await;
    assert_eq!(
        (ids(&d), d["total"].as_u64()),
        (vec!["a".to_string()], Some(1))
    );
    let (_, d) = get(&format!(
        "{api}/api/v1/devices?site=k1&system=s1&state=online"
    ))
    .await;
    assert_eq!(
        (ids(&d), d["total"].as_u64()),
        (vec!["m0".to_string()], Some(1))
    );
    let (status, e) = get(&format!("{api}/api/v1/devices?zone=z1")).await;
    assert_eq!(status, 400, "{e}");
    assert!(e["error"]["message"]
        .as_str()
        .unwrap()
        .contains("needs site"));
    let (status, e) = get(&format!("{api}/api/v1/devices?site=k1&system=s9")).await;
    assert_eq!(status, 404, "{e}");
    let (status, _) = get(&format!("{api}/api/v1/sites/nope/zones")).await;
    assert_eq!(status, 404);
}
