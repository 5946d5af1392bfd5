//! The indicator engine end to end: a scenario fleet published through Mosquitto with a
//! known online/offline schedule; the API, the report (three formats) and the `report`
//! command agree with the scenario; a restart in the middle of the window changes nothing.

use crate::common::*;
use safegate::sources::mqtt::payload::parse_rfc3339_ms;
use serde_json::Value;
use std::collections::BTreeSet;
use std::time::Duration;

/// Park p1: a in enterprise e1 and zone z1, d in e2 and z2, b, c and e in neither; every
/// detector reports every 200 ms and is offline 1 s after its last reading. The targets of
/// the report.
fn inv() -> String {
    const OFFLINE: &str = "offline_after_s = 1";
    Inventory::park("p1")
        .enterprise("e1", "E1")
        .enterprise("e2", "E2")
        .zone("z1", "Z1")
        .zone("z2", "Z2")
        .detector("a", 0.2)
        .with(OFFLINE)
        .with("enterprise = \"e1\"")
        .with("zone = \"z1\"")
        .detector("b", 0.2)
        .with(OFFLINE)
        .detector("c", 0.2)
        .with(OFFLINE)
        .detector("d", 0.2)
        .with(OFFLINE)
        .with("enterprise = \"e2\"")
        .with("zone = \"z2\"")
        .detector("e", 0.2)
        .with(OFFLINE)
        .raw(TARGETS)
        .to_toml()
}

const TARGETS: &str = r#"[[targets]]
indicator = "online_rate"
comparator = ">="
value = 100
label = "联网在线率"
level1 = "产出指标"
level2 = "质量指标"
weight = 10

[[targets]]
indicator = "coverage_rate"
comparator = ">="
value = 80
label = "公共区域监测监控设备覆盖率"
level1 = "产出指标"
level2 = "数量指标"
weight = 10

[[targets]]
indicator = "enterprise_access_rate"
comparator = ">="
value = 90
label = "聚集区内化工企业平台接入聚集区平台率"
level1 = "产出指标"
level2 = "数量指标"
weight = 10

[[targets]]
indicator = "device_build_rate"
comparator = ">="
value = 90
label = "监测设备建设任务完成率"
level1 = "产出指标"
level2 = "数量指标"
weight = 5

[[targets]]
indicator = "budget_execution"
comparator = ">="
value = 13135
declared = 4945.46
unit = "万元"
label = "预算执行率"
level1 = "预算执行"
weight = 10
"#;

fn ind<'a>(v: &'a Value, id: &str) -> &'a Value {
    v["indicators"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] == id)
        .unwrap_or_else(|| panic!("{id} missing in {v}"))
}

fn row<'a>(r: &'a Value, indicator: &str) -> &'a Value {
    r["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["indicator"] == indicator)
        .unwrap()
}

fn reason_ids(row: &Value) -> BTreeSet<String> {
    row["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect()
}

fn since(list: &Value, id: &str) -> i64 {
    let d = list["devices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["id"] == id)
        .unwrap();
    parse_rfc3339_ms(d["state_since"].as_str().unwrap()).unwrap()
}

/// `ms` of the scenario in steps of 200 ms (the devices' interval): the clock moves on a
/// step, then `reporting` report.
async fn run_for(ms: u64, clock: &ManualClock, p: &Publisher, api: &str, reporting: &[&str]) {
    for _ in 0..ms / 200 {
        clock.advance(Duration::from_millis(200));
        report_now(clock, p, api, "p1", reporting).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario_values_reports_and_a_restart_mid_window() {
    let _load = shared().await;
    let mq = Mosquitto::start();
    let cfg = TestConfig::new(&settings(&mq.url(), "gw-ind", None), &inv());
    let clock = test_clock();
    let gw = safegate::runtime::start_with(cfg.load(), clock.clock())
        .await
        .unwrap();
    let api = format!("http://{}", gw.api_addr);
    wait_json(&format!("{api}/readyz"), Duration::from_secs(20), |v| {
        v["ready"] == true
    })
    .await;

    // a and b report every 200 ms throughout; e until told to stop; c once; d never.
    let p = Publisher::connect(mq.port, "pub-ind").await;
    report_now(&clock, &p, &api, "p1", &["a", "b", "c", "e"]).await;
    // c is offline_after_s = 1 past its reading.
    run_for(1000, &clock, &p, &api, &["a", "b", "e"]).await;
    wait_json(
        &format!("{api}/api/v1/devices?state=offline"),
        Duration::from_secs(10),
        |v| v["total"] == 1,
    )
    .await;
    let t1 = clock.now_ms();
    run_for(1000, &clock, &p, &api, &["a", "b", "e"]).await;
    p.send("safegate/v1/p1/e/state", "offline").await;
    let list = wait_json(
        &format!("{api}/api/v1/devices?state=offline"),
        Duration::from_secs(10),
        |v| v["total"] == 2,
    )
    .await;
    let te = since(&list, "e");
    run_for(1000, &clock, &p, &api, &["a", "b"]).await;
    let t2 = clock.now_ms();
    let w = (t2 - t1) as f64;

    // Ground truth over [t1, t2): a, b online throughout; c offline; d never; e until te.
    let q = format!("{api}/api/v1/indicators?from={t1}&to={t2}");
    let (status, v) = get(&q).await;
    assert_eq!(status, 200, "{v}");
    let (_, site) = get(&format!(
        "{api}/api/v1/indicators?scope=site:p1&from={t1}&to={t2}"
    ))
    .await;
    for k in ["value", "numerator", "denominator"] {
        assert_eq!(
            ind(&site, "online_rate")[k],
            ind(&v, "online_rate")[k],
            "one site: region = site"
        );
    }
    let online = ind(&v, "online_rate");
    let num = 2 * (t2 - t1) + (te - t1);
    assert_eq!(online["exact"]["num"], num, "unit-milliseconds online");
    assert_eq!(
        online["exact"]["den"],
        5 * (t2 - t1),
        "unit-milliseconds counted"
    );
    assert!((online["numerator"].as_f64().unwrap() - num as f64 / w).abs() < 1e-9);
    assert_eq!(online["denominator"].as_f64().unwrap(), 5.0);
    assert_eq!(ind(&v, "online_rate_at_end")["value"], 0.4);
    assert_eq!(
        ind(&v, "coverage_rate")["value"],
        0.5,
        "z1 covered by a, z2 only has d"
    );
    assert_eq!(
        ind(&v, "device_build_rate")["value"],
        0.8,
        "4 of 5 have reported"
    );
    assert_eq!(ind(&v, "enterprise_access_rate")["value"], 0.5);
    assert_eq!(
        ind(&v, "enterprise_platform_rate")["value"],
        0.5,
        "e1 pushed data, e2 neither"
    );
    let cov = ind(&v, "coverage_rate");
    assert_eq!(cov["target"]["value"], "80");
    assert_eq!(cov["completion_pct"], "62.50");
    assert_eq!(cov["deviation_pct"], "37.50");
    // Latency: readings had no ts, so there is none to report.
    assert_eq!(ind(&v, "latency_p50_ms")["value"], Value::Null);

    // The report names exactly the units behind each shortfall.
    let (_, report) = get(&format!(
        "{api}/api/v1/report?from={t1}&to={t2}&format=json"
    ))
    .await;
    let r_online = row(&report, "online_rate");
    assert_eq!(
        reason_ids(r_online),
        ["c", "d", "e"].map(String::from).into()
    );
    let d_reason = r_online["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["id"] == "d")
        .unwrap();
    assert_eq!(d_reason["never_reported"], true);
    // The same in a code and its parameters, for a reader to word in its language.
    assert_eq!(d_reason["note_code"], "device_never_reported");
    assert!(d_reason["note_params"]["counted_ms"].is_i64(), "{d_reason}");
    let e_reason = r_online["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["id"] == "e")
        .unwrap();
    assert_eq!(
        parse_rfc3339_ms(e_reason["longest_from"].as_str().unwrap()),
        Some(te),
        "the outage is dated from the transition"
    );
    assert_eq!(e_reason["down_ms"], t2 - te);
    assert_eq!(e_reason["note_code"], "device_down");
    assert_eq!(e_reason["note_params"]["outages"], 1);
    assert_eq!(e_reason["note_params"]["offline_ms"], t2 - te);
    assert_eq!(e_reason["cost_ms"], t2 - te);
    // Ranked by cost (c and d the whole window, then e), shares of the missing unit-time.
    let costs: Vec<i64> = r_online["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["cost_ms"].as_i64().unwrap())
        .collect();
    assert!(costs.windows(2).all(|w| w[0] >= w[1]), "{costs:?}");
    assert_eq!(
        r_online["shortfall"]["total"],
        5 * (t2 - t1) - num,
        "exact.den - exact.num"
    );
    assert_eq!(r_online["shortfall"]["unit"], "unit_ms");
    let shares: f64 = r_online["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["share"].as_str().unwrap().parse::<f64>().unwrap())
        .sum();
    assert!((shares - 1.0).abs() < 1e-9, "{shares}");
    assert_eq!(
        r_online["folded"],
        Value::Null,
        "three reasons: none folded"
    );
    let (_, all) = get(&format!(
        "{api}/api/v1/report?from={t1}&to={t2}&reasons=all"
    ))
    .await;
    assert_eq!(all["rows"], report["rows"], "nothing to fold here");
    let (status, _) = get(&format!("{api}/api/v1/report?reasons=some")).await;
    assert_eq!(status, 400);
    assert_eq!(
        reason_ids(row(&report, "coverage_rate")),
        ["z2".to_string()].into()
    );
    assert_eq!(
        reason_ids(row(&report, "enterprise_access_rate")),
        ["e2".to_string()].into()
    );
    assert_eq!(
        reason_ids(row(&report, "device_build_rate")),
        ["d".to_string()].into()
    );
    let budget = row(&report, "budget_execution");
    assert_eq!(
        (budget["source"].as_str(), budget["completion_pct"].as_str()),
        (Some("declared"), Some("37.65"))
    );
    assert_eq!(budget["score"], "3.77");

    // CSV: UTF-8 with BOM, parses back into the same table.
    let csv_bytes = reqwest::get(format!("{api}/api/v1/report?from={t1}&to={t2}&format=csv"))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert!(csv_bytes.starts_with("\u{feff}".as_bytes()), "BOM first");
    let mut rd = csv::Reader::from_reader(&csv_bytes[3..]);
    let headers = rd.headers().unwrap().clone();
    assert_eq!(&headers[0], "一级指标");
    assert_eq!(&headers[5], "完成率");
    let recs: Vec<csv::StringRecord> = rd.records().map(Result::unwrap).collect();
    assert_eq!(recs.len(), 5);
    let budget = recs.iter().find(|r| &r[2] == "预算执行率").unwrap();
    assert_eq!(
        (&budget[5], &budget[6], &budget[8]),
        ("37.65%", "62.35%", "3.77")
    );
    let cov = recs
        .iter()
        .find(|r| &r[2] == "公共区域监测监控设备覆盖率")
        .unwrap();
    assert_eq!((&cov[4], &cov[5]), ("50.00%", "62.50%"));
    assert!(cov[11].contains("zone p1/z2"), "{:?}", &cov[11]);

    let md = get_text(&format!(
        "{api}/api/v1/report?from={t1}&to={t2}&format=markdown"
    ))
    .await;
    assert!(md.contains("| 一级指标 | 二级指标 | 三级指标 |"), "{md}");
    assert!(
        md.contains("device p1/d: never reported since its registration"),
        "{md}"
    );
    assert!(md.contains("缺口 Shortfall:"), "{md}");
    assert!(
        md.contains("| 预算执行率 | ≥13135万元 | 4945.46万元 | 37.65% | 62.35% |"),
        "{md}"
    );

    // The report command, from the persisted state, agrees with the API.
    let cli = report_command(&cfg.path, t1, t2);
    assert_eq!(cli["rows"], report["rows"]);

    // Restart in the middle of a window: [t1, t3) spans it, and a step of it passes while the
    // gateway is down.
    gw.stop().await;
    clock.advance(Duration::from_millis(200));
    let gw = safegate::runtime::start_with(cfg.load(), clock.clock())
        .await
        .unwrap();
    let api = format!("http://{}", gw.api_addr);
    wait_json(&format!("{api}/readyz"), Duration::from_secs(20), |v| {
        v["ready"] == true
    })
    .await;
    let (_, again) = get(&format!("{api}/api/v1/indicators?from={t1}&to={t2}")).await;
    assert_eq!(
        again["indicators"], v["indicators"],
        "the closed window is unchanged"
    );
    report_now(&clock, &p, &api, "p1", &["a", "b"]).await;
    run_for(800, &clock, &p, &api, &["a", "b"]).await;
    let t3 = clock.now_ms();
    let (_, span) = get(&format!(
        "{api}/api/v1/indicators?scope=site:p1&from={t1}&to={t3}"
    ))
    .await;
    let num3 = 2 * (t3 - t1) + (te - t1);
    let online = ind(&span, "online_rate");
    assert_eq!(
        online["exact"]["num"], num3,
        "a and b stay online across the restart: {span}"
    );
    assert_eq!(online["exact"]["den"], 5 * (t3 - t1));
    gw.stop().await;

    // With no gateway running at all, the report command reads the same history.
    let offline = report_command(&cfg.path, t1, t2);
    assert_eq!(offline["rows"], report["rows"]);
}
