//! The live inventory: while 1,000 devices stream readings through Mosquitto, the TOML
//! inventory is changed and reloaded, over the API and by SIGHUP to the gateway process.
//! Nothing is dropped, the MQTT link stays up, and the indicators count the new units from
//! the reload time and the removed one until then.

use crate::common::*;
use safegate::simulators::loadgen::{self, LoadOptions};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::time::Duration;

const N: usize = 1_000;
const WAIT: Duration = Duration::from_secs(60);
const ADMIN: &str = "tok-admin-live";
const VIEWER: &str = "tok-viewer-live";

fn tokens() -> String {
    [("admin", ADMIN), ("viewer", VIEWER)]
        .iter()
        .map(|(role, tok)| {
            format!(
                "[[tokens]]\nname = \"{role}-desk\"\nrole = \"{role}\"\nsha256 = \"{}\"\n\n",
                hex::encode(Sha256::digest(tok.as_bytes()))
            )
        })
        .collect()
}

/// The fleet d0 … d999 of park p1, with `extra` TOML after it.
fn inventory(extra: &str) -> String {
    format!("{}{extra}", loadgen::inventory_toml("p1", N, 5.0))
}

const GONE: &str = "[[devices]]\nid = \"gone\"\nsite = \"p1\"\nkind = \"gas_combustible\"\nprotocol = \"mqtt\"\ninterval_s = 5.0\n\n";
const NEW1: &str = "[[devices]]\nid = \"new1\"\nsite = \"p1\"\nkind = \"gas_combustible\"\nprotocol = \"mqtt\"\ninterval_s = 5.0\n\n";
const SITE2: &str = "[[sites]]\nid = \"p2\"\nname = \"Park two\"\nkind = \"park\"\n\n[[devices]]\nid = \"n2\"\nsite = \"p2\"\nkind = \"gas_combustible\"\nprotocol = \"mqtt\"\ninterval_s = 5.0\n\n";
const NEW3: &str = "[[devices]]\nid = \"new3\"\nsite = \"p1\"\nkind = \"gas_combustible\"\nprotocol = \"mqtt\"\ninterval_s = 5.0\n\n";

async fn call(method: &str, url: &str, token: &str) -> (u16, Value) {
    let c = reqwest::Client::new();
    let r = match method {
        "POST" => c.post(url),
        _ => c.get(url),
    };
    let resp = r.bearer_auth(token).send().await.expect("HTTP request");
    let code = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (
        code,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// Poll `url` as admin until `done` holds.
async fn wait_admin(url: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let (_, v) = call("GET", url, ADMIN).await;
        if done(&v) {
            return v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{url}: last answer {v}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn accepted(api: &str) -> f64 {
    let resp = reqwest::Client::new()
        .get(format!("{api}/metrics"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    metric(
        &resp.text().await.unwrap(),
        "safegate_readings_accepted_total",
    )
    .unwrap_or(0.0)
}

fn ids(list: &Value) -> Vec<String> {
    let mut v: Vec<String> = list["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap().to_string())
        .collect();
    v.sort();
    v
}

/// The registry rows of `device`: (at, status).
fn registry(db: &std::path::Path, device: &str) -> Vec<(i64, String)> {
    let c = rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .unwrap();
    let mut st = c
        .prepare(
            "SELECT r.at_ms, r.status FROM registry r JOIN units u ON r.unit = u.key
             WHERE u.kind = 'device' AND u.id = ?1 ORDER BY r.id",
        )
        .unwrap();
    let rows = st
        .query_map([device], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap();
    rows.map(Result::unwrap).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_while_1000_devices_stream_drops_nothing_and_counts_from_its_time() {
    let _load = shared().await;
    let mq = Mosquitto::start_tuned();
    let vm = Victoria::start();
    let api_port = free_port();
    let settings = settings(&mq.url(), "gw-live", Some(&vm.url())).replace(
        "listen = \"127.0.0.1:0\"",
        &format!("listen = \"127.0.0.1:{api_port}\""),
    ) + &tokens();
    let cfg = TestConfig::new(&settings, &inventory(GONE));
    let main_text = std::fs::read_to_string(&cfg.path).unwrap();
    let rewrite = |to: &str| {
        let text = main_text.replace(GONE, "") + to;
        std::fs::write(&cfg.path, text).unwrap();
    };
    let db = cfg.dir.path().join("state").join("state.db");
    let mut gw = GatewayProc::new(&cfg, api_port);
    gw.start_ready().await;
    let api = gw.api.clone();
    let (_, ready) = call("GET", &format!("{api}/readyz"), ADMIN).await;
    let link_since = ready["mqtt"]["since"].clone();
    let from = now_ms();

    // 10,000 readings, 1,000 a second, each device in turn.
    let o = LoadOptions {
        sites: 1,
        host: "127.0.0.1".into(),
        port: mq.port,
        prefix: "safegate/v1".into(),
        site: "p1".into(),
        devices: N,
        count: 10_000,
        rate: Some(1_000),
        qos: 1,
        max_duration: Duration::from_secs(120),
        alarm_every: None,
        alarm_spread: false,
        format: loadgen::Format::Native,
        per_message: 1,
        progress: None,
    };
    let load = tokio::spawn(async move { loadgen::publish(&o).await });
    while accepted(&api).await < 1_500.0 {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // A non-admin may not reload; an invalid file changes nothing and is located.
    let reload_url = format!("{api}/api/v1/config/reload");
    let (code, _) = call("POST", &reload_url, VIEWER).await;
    assert_eq!(code, 403);
    rewrite(&format!("{GONE}[[devices]]\nid = \"bad\"\nsite = \"nowhere\"\nkind = \"gas_combustible\"\nprotocol = \"mqtt\"\ninterval_s = 5.0\n"));
    let (code, body) = call("POST", &reload_url, ADMIN).await;
    assert_eq!(code, 422, "{body}");
    assert_eq!(body["applied"], false);
    let p = &body["problems"][0];
    assert!(
        p["file"].as_str().unwrap().ends_with("safegate.toml"),
        "{body}"
    );
    assert!(p["key"].as_str().unwrap().starts_with("devices["), "{body}");
    assert!(p["key"].as_str().unwrap().contains("bad"), "{body}");
    let (_, list) = call("GET", &format!("{api}/api/v1/devices?limit=2000"), ADMIN).await;
    assert_eq!(list["total"], N + 1, "nothing changed");

    // Over the API: new1 and site p2 with n2 join, gone leaves.
    rewrite(&format!("{NEW1}{SITE2}"));
    let (code, body) = call("POST", &reload_url, ADMIN).await;
    assert_eq!(code, 200, "{body}");
    let r = &body["reload"];
    let at1 = r["at_ms"].as_i64().unwrap();
    assert_eq!(r["inventory"]["devices"]["added"], 2, "{body}");
    assert_eq!(r["inventory"]["devices"]["removed"], 1, "{body}");
    assert_eq!(r["inventory"]["sites"]["added"], 1, "{body}");
    assert_eq!(r["needs_restart"], serde_json::json!([]), "{body}");
    let list = wait_admin(&format!("{api}/api/v1/devices?limit=2000"), |v| {
        v["total"] == N + 2
    })
    .await;
    let got = ids(&list);
    assert!(got.contains(&"new1".to_string()) && got.contains(&"n2".to_string()));
    assert!(!got.contains(&"gone".to_string()));
    let new1 = device(&list, "new1");
    assert_eq!(new1["declared"], "config");
    let (code, site2) = call("GET", &format!("{api}/api/v1/sites/p2"), ADMIN).await;
    assert_eq!((code, site2["devices"]["planned"].clone()), (200, 1.into()));

    // By SIGHUP to the process: new3 joins; a changed [api] section is listed, not applied.
    let text = main_text
        .replace(GONE, "")
        .replace("reconnect_max_ms = 1000", "reconnect_max_ms = 2000");
    std::fs::write(&cfg.path, format!("{text}{NEW1}{SITE2}{NEW3}")).unwrap();
    let before_hup = now_ms();
    gw.signal("-HUP");
    wait_admin(&format!("{api}/api/v1/devices?site=p1&limit=2000"), |v| {
        v["total"] == N + 2
    })
    .await;
    let seen_hup = now_ms();
    gw.wait_log("configuration reloaded", WAIT).await;
    gw.wait_log("[mqtt] differs from the running configuration", WAIT)
        .await;

    let report = load.await.unwrap().expect("loadgen");
    assert_eq!(report.sent, 10_000);
    // Every reading accepted and stored; the link never dropped.
    while accepted(&api).await < report.sent as f64 {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(accepted(&api).await, report.sent as f64);
    vm.wait_for(r#"{__name__="reading_v",site="p1"}"#, WAIT, |s| {
        s.iter().map(|x| x.values.len()).sum::<usize>() == report.sent as usize
    })
    .await;
    let (_, ready) = call("GET", &format!("{api}/readyz"), ADMIN).await;
    assert_eq!(ready["mqtt"]["reconnects"], 0, "{ready}");
    assert_eq!(ready["mqtt"]["since"], link_since, "{ready}");
    let (_, rej) = call("GET", &format!("{api}/api/v1/rejections"), ADMIN).await;
    assert!(
        rej["recent"].as_array().is_none_or(|r| r.is_empty()),
        "{rej}"
    );

    // The registry rows are at the reload times.
    assert_eq!(registry(&db, "new1"), vec![(at1, "built".to_string())]);
    assert_eq!(registry(&db, "n2"), vec![(at1, "built".to_string())]);
    let gone = registry(&db, "gone");
    assert_eq!(gone.len(), 2, "{gone:?}");
    assert_eq!(gone[1], (at1, "removed".to_string()));
    let new3 = registry(&db, "new3");
    assert_eq!(new3.len(), 1, "{new3:?}");
    let at2 = new3[0].0;
    assert!(
        (before_hup..=seen_hup).contains(&at2),
        "{before_hup} {at2} {seen_hup}"
    );

    // The online rate's denominator over a window spanning both reloads, in unit-ms: the
    // fleet for the whole window, gone until the first reload, new1 and n2 from it, new3
    // from the second.
    let to = seen_hup + 500;
    while now_ms() <= to {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let w = to - from;
    let want = N as i64 * w + (at1 - from) + 2 * (to - at1) + (to - at2);
    let (code, ind) = call(
        "GET",
        &format!("{api}/api/v1/indicators?from={from}&to={to}"),
        ADMIN,
    )
    .await;
    assert_eq!(code, 200, "{ind}");
    let rate = ind["indicators"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] == "online_rate")
        .unwrap();
    assert_eq!(rate["exact"]["den"], want, "{rate}");
    gw.stop();
}

/// The store's tags follow a reload: a device moved to another zone has its next readings
/// stored with the new zone (the line encoder's cached tags used to keep the old one).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_moved_to_another_zone_by_a_reload_is_stored_with_its_new_zone() {
    let _load = shared().await;
    let mq = Mosquitto::start();
    let vm = Victoria::start();
    let zones = "[[zones]]\nid = \"z1\"\nsite = \"p1\"\nname = \"Zone one\"\n\n[[zones]]\nid = \"z2\"\nsite = \"p1\"\nname = \"Zone two\"\n\n";
    let inventory = Inventory::park("p1")
        .raw(zones)
        .detector("d1", 60.0)
        .with("zone = \"z1\"")
        .to_toml();
    let cfg = TestConfig::new(&settings(&mq.url(), "gw-zone", Some(&vm.url())), &inventory);
    let (gw, api) = start_ready(&cfg).await;
    let publisher = Publisher::connect(mq.port, "pub-zone").await;
    let ts0 = now_ms() - 10_000;
    let send = |ts: i64, v: f64| {
        let body = serde_json::json!({"ts": ts, "values": {"lel": v}}).to_string();
        let p = &publisher;
        async move { p.send("safegate/v1/p1/d1/data", body).await }
    };
    let points = |s: &[Series]| s.iter().map(|x| x.values.len()).sum::<usize>();
    send(ts0, 1.0).await;
    vm.wait_for(r#"{__name__="reading_lel",zone="z1"}"#, WAIT, |s| {
        points(s) == 1
    })
    .await;

    let text = std::fs::read_to_string(&cfg.path).unwrap();
    std::fs::write(&cfg.path, text.replace("zone = \"z1\"", "zone = \"z2\"")).unwrap();
    let r = reqwest::Client::new()
        .post(format!("{api}/api/v1/config/reload"))
        .send()
        .await
        .unwrap();
    let (code, body): (u16, Value) = (r.status().as_u16(), r.json().await.unwrap());
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        body["reload"]["inventory"]["devices"]["changed"], 1,
        "{body}"
    );

    send(ts0 + 1_000, 2.0).await;
    let z2 = vm
        .wait_for(r#"{__name__="reading_lel",zone="z2"}"#, WAIT, |s| {
            points(s) == 1
        })
        .await;
    assert_eq!(z2[0].values, vec![2.0]);
    let z1 = vm.export(r#"{__name__="reading_lel",zone="z1"}"#).await;
    assert_eq!(
        z1.iter().flat_map(|s| s.values.clone()).collect::<Vec<_>>(),
        vec![1.0]
    );
    gw.stop().await;
}
