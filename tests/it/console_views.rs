//! The console's 总览 and 站点 views in headless Chromium, against the API they read: the
//! overview's figures now and over the chosen window (with targets, endpoints down, late
//! mines) are `/api/v1/overview`'s for the window the page asked.

use crate::common::browser::Browser;
use crate::common::*;
use crate::console::{api_get, api_wait, assert_english, assert_no_console_errors, sign_in};
use crate::console::{tokens, VIEWER};
use serde_json::{json, Value};

const MINE: &str = "650100000009";

/// Two parks (p1 with two zones, p2 with a Modbus device where nothing listens), a mine
/// with no uploads, targets on the region's online rate and p1's coverage.
fn views_config(mq: &str, watch: &std::path::Path, name: &str) -> TestConfig {
    let modbus = format!(
        "[[devices]]\nid = \"mb1\"\nsite = \"p2\"\nkind = \"gas_combustible\"\nprotocol = \"modbus\"\n\
         interval_s = 0.5\n[devices.modbus]\ntransport = \"tcp\"\naddress = \"127.0.0.1:{}\"\nunit = 1\n\
         timeout_ms = 300\nregisters = [{{ channel = \"lel\", table = \"holding\", address = 0, type = \"u16\" }}]\n\n",
        free_port()
    );
    std::env::set_var("SAFEGATE_TEST_VIEWS_MINE_PW", "kj-views-1");
    let inv = Inventory::default()
        .site("p1", "一号园区", "park")
        .zone("z1", "东区")
        .zone("z2", "西区")
        .detector("a", 60.0)
        .with("zone = \"z1\"")
        .detector("b", 0.5)
        .with("offline_after_s = 1")
        .with("zone = \"z2\"")
        .site("p2", "二号园区", "park")
        .detector("x", 60.0)
        .raw(&modbus)
        .raw(&format!(
            "[[sites]]\nid = \"m1\"\nname = \"一号煤矿\"\nkind = \"mine\"\nmine_code = \"{MINE}\"\n\
             upload_password_env = \"SAFEGATE_TEST_VIEWS_MINE_PW\"\n\n"
        ))
        .raw(
            "[[targets]]\nindicator = \"online_rate\"\ncomparator = \">=\"\nvalue = 95\n\
             label = \"联网在线率\"\nweight = 10\n\n\
             [[targets]]\nindicator = \"coverage_rate\"\nscope = \"site:p1\"\ncomparator = \">=\"\n\
             value = 90\nlabel = \"公共区域监测监控设备覆盖率\"\nweight = 10\n\n",
        )
        .to_toml();
    let settings = format!(
        "{}{}[mine_files]\nenabled = true\nlisten = \"\"\nwatch_dir = \"{}\"\n\n",
        settings(mq, name, None),
        tokens(),
        watch.display()
    );
    TestConfig::new(&settings, &inv)
}

/// `[num, den]` as the page shows it: per cent with two decimals, or —.
fn pct(pair: &Value) -> String {
    let (n, d) = (pair[0].as_i64().unwrap(), pair[1].as_i64().unwrap());
    if d == 0 {
        return "—".into();
    }
    format!("{:.2}%", n as f64 / d as f64 * 100.0)
}

/// The overview as the page asked it (its window's start is on the form).
async fn overview_of_page(b: &Browser, api: &str) -> Value {
    let from = b
        .js("return document.getElementById('overview-window').dataset.from")
        .await;
    let from = from.as_str().expect("the page's window").to_string();
    let q = serde_json::json!({ "from": from });
    let url = format!(
        "{api}/api/v1/overview?from={}",
        q["from"].as_str().unwrap().replace('+', "%2B")
    );
    api_get(&url, VIEWER).await
}

/// Every figure of the overview on the page equals the API's answer `o`.
async fn overview_is_the_apis(b: &Browser, o: &Value) {
    let r = &o["region"];
    for (id, key) in [
        ("window-rate", "online_rate"),
        ("coverage", "coverage_rate"),
        ("response", "alarm_response_rate"),
    ] {
        let shown = b.text(&format!("#region-{id}")).await.unwrap();
        assert_eq!(shown, pct(&r["window"][key]), "region {key}");
    }
    for k in ["counted", "online", "offline", "never", "faulty"] {
        let shown = b.text(&format!("#region-{k}")).await.unwrap();
        assert_eq!(shown, r[k].to_string(), "region {k}");
    }
    for s in o["sites"].as_array().unwrap() {
        let row = format!("#sites tr[data-site={}]", s["id"].as_str().unwrap());
        let cell = |col: &str| format!("{row} td[data-col={col}]");
        let w = &s["window"];
        for (col, key) in [
            ("window_rate", "online_rate"),
            ("coverage", "coverage_rate"),
            ("response", "alarm_response_rate"),
        ] {
            let shown = b.text(&cell(col)).await.unwrap();
            assert!(shown.starts_with(&pct(&w[key])), "{row} {col}: {shown}");
        }
        for k in ["counted", "online", "offline", "never", "endpoints_down"] {
            let shown = b.text(&cell(k)).await.unwrap();
            assert_eq!(shown, s[k].to_string(), "{row} {k}");
        }
        assert_eq!(b.text(&cell("name")).await.unwrap(), s["name"]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_overview_on_the_page_is_the_apis_for_its_window() {
    let _load = shared().await;
    let mq = Mosquitto::start();
    let watch = tempfile::tempdir().unwrap();
    let cfg = views_config(&mq.url(), watch.path(), "gw-console-overview");
    let clock = test_clock();
    let (_gw, api) = start_ready_on(&cfg, clock.clock()).await;
    let p = Publisher::connect(mq.port, "pub-console-overview").await;
    for (site, dev) in [("p1", "a"), ("p1", "b"), ("p2", "x")] {
        let topic = format!("safegate/v1/{site}/{dev}/data");
        p.send(&topic, json!({"values": {"lel": 1}}).to_string())
            .await;
    }
    api_wait(&format!("{api}/api/v1/sites"), VIEWER, |v| {
        v["region"]["devices"]["online"] == 3
    })
    .await;
    // b falls silent; the endpoint fails its polls.
    clock.advance(std::time::Duration::from_secs(3));
    api_wait(&format!("{api}/api/v1/overview"), VIEWER, |v| {
        v["region"]["offline"] == 1 && v["region"]["endpoints_down"] == 1
    })
    .await;

    let b = Browser::start(1440, 900).await;
    sign_in(&b, &api, VIEWER).await;
    b.wait_text("#region-endpoints-down", "the endpoint down", |t| {
        t == "1 / 1"
    })
    .await;
    let o = overview_of_page(&b, &api).await;
    overview_is_the_apis(&b, &o).await;
    assert_eq!(b.text("#region-mines-late").await.unwrap(), "1 / 1");
    assert_eq!(
        b.text("#sites tr[data-site=m1] td[data-col=mine]")
            .await
            .unwrap(),
        "超时"
    );
    assert_eq!(
        b.text("#sites tr[data-site=p1] td[data-col=mine]")
            .await
            .unwrap(),
        "—"
    );
    // The targets: the region's online rate and p1's coverage say theirs.
    let target = b.text("#region-window-rate-target").await.unwrap();
    assert!(target.contains(">= 95%"), "{target}");
    let t = o["targets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["scope"] == "region")
        .unwrap();
    if let Some(c) = t["completion_pct"].as_str() {
        assert!(target.contains(&format!("{c}%")), "{target} vs {t}");
    }
    let cov = b
        .text("#sites tr[data-site=p1] td[data-col=coverage]")
        .await
        .unwrap();
    assert!(cov.ends_with("/ >= 90%"), "{cov}");
    b.screenshot("console-overview").await;

    // Another window: the figures follow, as the API has them for it.
    let before = b
        .js("return document.getElementById('overview-window').dataset.from")
        .await;
    b.click("#overview-window input[value=year]").await;
    b.wait_js(
        &format!("return document.getElementById('overview-window').dataset.from !== {before}"),
        "the year's window",
    )
    .await;
    let o = overview_of_page(&b, &api).await;
    overview_is_the_apis(&b, &o).await;

    // In English every label is.
    b.click("#lang").await;
    b.wait_text(
        "#sites tr[data-site=m1] td[data-col=mine]",
        "English",
        |t| t == "late",
    )
    .await;
    let text = b.text("#view-overview").await.unwrap();
    let names = ["一号园区", "二号园区", "一号煤矿"];
    let stripped = names.iter().fold(text, |t, n| t.replace(n, ""));
    assert_english("overview", &stripped);
    assert_no_console_errors(&b).await;
    b.close().await;
}
