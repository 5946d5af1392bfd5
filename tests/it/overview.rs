//! `GET /api/v1/overview` end to end: two parks with zones, a Modbus endpoint where nothing
//! listens and a mine with no uploads yet. Its "now" figures are the sites listing's; its
//! window figures are exactly `/api/v1/indicators`' for the region and each site; its
//! targets carry the window's value; the endpoint counts as down and the mine as late; a
//! window's figures are kept 30 s by the gateway's clock, computed again ahead in the
//! background past 15 s, and when asked after 30 s.

use crate::common::*;
use serde_json::Value;
use std::time::Duration;

const MINE: &str = "650100000001";

fn inv() -> String {
    let modbus = format!(
        "[[devices]]\nid = \"mb1\"\nsite = \"p2\"\nkind = \"gas_combustible\"\nprotocol = \"modbus\"\n\
         interval_s = 0.5\n[devices.modbus]\ntransport = \"tcp\"\naddress = \"127.0.0.1:{}\"\nunit = 1\n\
         timeout_ms = 300\nregisters = [{{ channel = \"lel\", table = \"holding\", address = 0, type = \"u16\" }}]\n\n",
        free_port()
    );
    let mine = format!(
        "[[sites]]\nid = \"m1\"\nname = \"Mine\"\nkind = \"mine\"\nmine_code = \"{MINE}\"\n\
         upload_password_env = \"SAFEGATE_TEST_OVERVIEW_MINE_PW\"\n\n"
    );
    Inventory::park("p1")
        .zone("z1", "Z1")
        .zone("z2", "Z2")
        .detector("a", 0.2)
        .with("offline_after_s = 1")
        .with("zone = \"z1\"")
        .detector("b", 0.2)
        .with("offline_after_s = 1")
        .with("zone = \"z2\"")
        .detector("c", 0.2)
        .with("offline_after_s = 1")
        .site("p2", "Park two", "park")
        .detector("x", 0.2)
        .with("offline_after_s = 1")
        .raw(&modbus)
        .raw(&mine)
        .raw(
            "[[targets]]\nindicator = \"online_rate\"\ncomparator = \">=\"\nvalue = 95\n\
             label = \"联网在线率\"\nweight = 10\n\n\
             [[targets]]\nindicator = \"coverage_rate\"\nscope = \"site:p1\"\ncomparator = \">=\"\n\
             value = 90\nlabel = \"公共区域监测监控设备覆盖率\"\nweight = 10\n\n",
        )
        .to_toml()
}

fn exact(indicators: &Value, id: &str) -> Value {
    let i = indicators["indicators"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] == id && i["qualifier"].is_null())
        .unwrap_or_else(|| panic!("{id} missing in {indicators}"));
    serde_json::json!([i["exact"]["num"], i["exact"]["den"]])
}

fn site<'a>(o: &'a Value, id: &str) -> &'a Value {
    o["sites"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == id)
        .unwrap_or_else(|| panic!("site {id} missing in {o}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_overview_equals_the_listings_and_the_indicators_and_keeps_itself_current() {
    let _load = shared().await;
    let mq = Mosquitto::start();
    std::env::set_var("SAFEGATE_TEST_OVERVIEW_MINE_PW", "kj-ov-1");
    let watch = tempfile::tempdir().unwrap();
    let settings = settings(&mq.url(), "gw-overview", None)
        + &format!(
            "[mine_files]\nenabled = true\nlisten = \"\"\nwatch_dir = \"{}\"\n\n",
            watch.path().display()
        );
    let cfg = TestConfig::new(&settings, &inv());
    let clock = test_clock();
    let (_gw, api) = start_ready_on(&cfg, clock.clock()).await;
    let p = Publisher::connect(mq.port, "pub-overview").await;
    let t0 = clock.now_ms();
    report_now(&clock, &p, &api, "p1", &["a", "b", "c"]).await;
    report_now(&clock, &p, &api, "p2", &["x"]).await;
    // b and x fall silent: after 2 s they are offline; a and c go on.
    for _ in 0..10 {
        clock.advance(Duration::from_millis(200));
        report_now(&clock, &p, &api, "p1", &["a", "c"]).await;
    }
    wait_json(
        &format!("{api}/api/v1/devices?state=offline"),
        Duration::from_secs(20),
        |v| v["total"] == 2,
    )
    .await;
    // The Modbus endpoint has failed a poll (its device is in p2).
    wait_json(
        &format!("{api}/api/v1/endpoints"),
        Duration::from_secs(20),
        |v| v["endpoints"][0]["last_error"].is_string(),
    )
    .await;
    let t1 = clock.now_ms();

    let url = format!("{api}/api/v1/overview?from={t0}");
    let (status, o) = get(&url).await;
    assert_eq!(status, 200, "{o}");
    assert_eq!(o["window"]["from"], safegate::model::rfc3339_ms(t0));
    assert_eq!(
        o["window"]["to"],
        safegate::model::rfc3339_ms(t1),
        "an open window ends now"
    );
    assert_eq!(o["window"]["computed_at"], safegate::model::rfc3339_ms(t1));

    // Now: the sites listing's counts and rates.
    let (_, sites) = get(&format!("{api}/api/v1/sites")).await;
    let r = &o["region"];
    for k in ["counted", "online", "offline", "never", "faulty"] {
        assert_eq!(r[k], sites["region"]["devices"][k], "region {k}");
    }
    assert_eq!(r["online_rate"], sites["region"]["online_rate"]["value"]);
    for s in sites["sites"].as_array().unwrap() {
        let v = site(&o, s["id"].as_str().unwrap());
        assert_eq!(v["name"], s["name"]);
        for k in ["counted", "online", "offline", "never"] {
            assert_eq!(v[k], s["devices"][k], "{} {k}", s["id"]);
        }
        assert_eq!(v["online_rate"], s["online_rate"]["value"]);
        assert_eq!(v["alarms_active"], s["alarms"]["active"]);
        assert_eq!(v["alarms_unacked"], s["alarms"]["unacknowledged"]);
    }
    assert_eq!(r["offline"], 2);
    assert!(
        r["alarms_active"].as_u64().unwrap() >= 2,
        "offline alarms: {o}"
    );

    // The window: exactly the indicators' ratios, region and each site.
    for (scope, got) in [
        ("region".to_string(), &r["window"]),
        ("site:p1".into(), &site(&o, "p1")["window"]),
        ("site:p2".into(), &site(&o, "p2")["window"]),
        ("site:m1".into(), &site(&o, "m1")["window"]),
    ] {
        let (status, ind) = get(&format!(
            "{api}/api/v1/indicators?scope={scope}&from={t0}&to={t1}"
        ))
        .await;
        assert_eq!(status, 200, "{ind}");
        for id in ["online_rate", "coverage_rate", "alarm_response_rate"] {
            assert_eq!(got[id], exact(&ind, id), "{scope} {id}");
        }
    }
    let p1 = &site(&o, "p1")["window"];
    assert!(p1["online_rate"][0].as_i64().unwrap() > 0);
    assert!(p1["online_rate"][0].as_i64() < p1["online_rate"][1].as_i64());
    assert!(p1["coverage_rate"][1].as_i64().unwrap() > 0, "p1 has zones");

    // Targets: the region's online rate and p1's coverage, with the window's value.
    let targets = o["targets"].as_array().unwrap();
    assert_eq!(targets.len(), 2, "{o}");
    let (_, ind) = get(&format!("{api}/api/v1/indicators?from={t0}&to={t1}")).await;
    let online = ind["indicators"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] == "online_rate")
        .unwrap();
    let t = targets.iter().find(|t| t["scope"] == "region").unwrap();
    assert_eq!(t["indicator"], "online_rate");
    assert_eq!(t["actual"], online["display"]);
    assert_eq!(t["completion_pct"], online["completion_pct"]);
    let t = targets.iter().find(|t| t["scope"] == "site:p1").unwrap();
    assert_eq!(t["indicator"], "coverage_rate");

    // Inputs: the endpoint is down (its device's site too), the mine late (no upload yet).
    assert_eq!(
        (r["endpoints"].as_u64(), r["endpoints_down"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(site(&o, "p2")["endpoints_down"], 1);
    assert_eq!(site(&o, "p1")["endpoints_down"], 0);
    assert_eq!(
        (r["mines"].as_u64(), r["mines_late"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(
        site(&o, "m1")["mine"],
        serde_json::json!({"code": MINE, "late": true})
    );
    assert!(site(&o, "p1")["mine"].is_null());

    // The window is kept 30 s by the gateway's clock: 10 s on, the same computation (while
    // the now figures move: a reports again) …
    clock.advance(Duration::from_secs(10));
    report_now(&clock, &p, &api, "p1", &["a"]).await;
    let (_, o2) = get(&url).await;
    assert_eq!(o2["window"], o["window"], "kept");
    // … and past half its life (15 s) computed again in the background, unasked, up to the
    // gateway's now (it keeps doing so while the overview was asked for in the last 10 min) …
    clock.advance(Duration::from_secs(6));
    let t15 = clock.now_ms();
    let ahead = wait_json(&url, Duration::from_secs(20), |v| {
        v["window"]["computed_at"] != o["window"]["computed_at"]
    })
    .await;
    assert_eq!(
        ahead["window"]["computed_at"],
        safegate::model::rfc3339_ms(t15)
    );
    assert_eq!(ahead["window"]["to"], safegate::model::rfc3339_ms(t15));
    // … so 31 s on the answer is up to the new now.
    clock.advance(Duration::from_secs(31));
    let t2 = clock.now_ms();
    let (_, o3) = get(&url).await;
    assert_eq!(o3["window"]["computed_at"], safegate::model::rfc3339_ms(t2));
    assert_eq!(o3["window"]["to"], safegate::model::rfc3339_ms(t2));
    // Any other window is answered from the same evaluation (kept by site), and equals the
    // indicators': one ending in the past …
    let mid = (t0 + t1) / 2;
    let past = format!("{api}/api/v1/overview?from={t0}&to={mid}");
    let (_, o5) = get(&past).await;
    assert_eq!(o5["window"]["computed_at"], safegate::model::rfc3339_ms(t2));
    // … and one starting three days back, off the hour: the evaluation keeps only hours and
    // midnights that far back, so that window is evaluated on its own.
    let old = t0 - 3 * 86_400_000 + 7;
    let (_, o6) = get(&format!("{api}/api/v1/overview?from={old}&to={t2}")).await;
    assert_eq!(o6["window"]["from"], safegate::model::rfc3339_ms(old));
    for (o, from, to) in [(&o5, t0, mid), (&o6, old, t2)] {
        let (_, ind) = get(&format!("{api}/api/v1/indicators?from={from}&to={to}")).await;
        for id in ["online_rate", "coverage_rate", "alarm_response_rate"] {
            assert_eq!(
                o["region"]["window"][id],
                exact(&ind, id),
                "[{from}, {to}) {id}"
            );
        }
    }
    // A window that starts after now (a browser clock ahead at midnight) is empty, not an
    // error, when its end is left to now.
    let later = t2 + 60_000;
    let (status, o4) = get(&format!("{api}/api/v1/overview?from={later}")).await;
    assert_eq!(status, 200, "{o4}");
    assert_eq!(
        o4["region"]["window"]["online_rate"],
        serde_json::json!([0, 0])
    );
    assert_eq!(
        o4["region"]["counted"], o3["region"]["counted"],
        "now is still now"
    );
    // A bad window is a 400 that names the parameter.
    let (status, e) = get(&format!("{api}/api/v1/overview?from=yesterday")).await;
    assert_eq!(status, 400);
    assert!(
        e["error"]["message"].as_str().unwrap().contains("from"),
        "{e}"
    );
}
