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
/// with no uploads and a slope system of two points, targets on the region's online rate
/// and p1's coverage.
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
             upload_password_env = \"SAFEGATE_TEST_VIEWS_MINE_PW\"\n\n\
             [[systems]]\nid = \"s1\"\nsite = \"m1\"\nkind = \"slope_monitoring\"\nname = \"边坡监测\"\n\n"
        ))
        .raw(
            "[[devices]]\nid = \"k1\"\nsite = \"m1\"\nkind = \"slope_displacement\"\nsystem = \"s1\"\n\
             protocol = \"mqtt\"\ninterval_s = 60\n\n\
             [[devices]]\nid = \"k2\"\nsite = \"m1\"\nkind = \"slope_displacement\"\nsystem = \"s1\"\n\
             protocol = \"mqtt\"\ninterval_s = 60\n\n",
        )
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

/// Pick `value` in the select `id` as a user would (the page listens for `change`).
async fn choose(b: &Browser, id: &str, value: &str) {
    b.wait_js(
        &format!(
            "return [...document.getElementById('{id}').options].some(o => o.value === '{value}')"
        ),
        "the option",
    )
    .await;
    b.js(&format!(
        "const s = document.getElementById('{id}'); s.value = '{value}'; \
         s.dispatchEvent(new Event('change')); return true"
    ))
    .await;
}

/// The timeline's spans as the page drew them: (state, from ms, to ms).
async fn drawn_spans(b: &Browser) -> Vec<(String, i64, i64)> {
    let v = b
        .js("return [...document.querySelectorAll('#dd-timeline rect')].map(r => [r.dataset.state, Number(r.dataset.from), Number(r.dataset.to)])")
        .await;
    v.as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r[0].as_str().unwrap().to_string(),
                r[1].as_i64().unwrap(),
                r[2].as_i64().unwrap(),
            )
        })
        .collect()
}

/// The spans the API's history `h` describes: the state at its start, then each change.
fn spans_of(h: &Value) -> Vec<(String, i64, i64)> {
    use safegate::sources::mqtt::payload::parse_rfc3339_ms as ms;
    let from = ms(h["from"].as_str().unwrap()).unwrap();
    let to = ms(h["to"].as_str().unwrap()).unwrap();
    let mut out = Vec::new();
    let (mut at, mut state) = (from, h["state_at_from"].as_str().unwrap().to_string());
    for t in h["transitions"].as_array().unwrap() {
        let t0 = ms(t["at"].as_str().unwrap()).unwrap();
        if t0 > at {
            out.push((state.clone(), at, t0));
        }
        at = at.max(t0);
        state = if t["online"] == true {
            "online"
        } else {
            "offline"
        }
        .into();
    }
    out.push((state, at, to.max(at + 1)));
    out
}

/// The device detail shown is the API's history for the page's window.
async fn detail_is_the_apis(b: &Browser, api: &str, site: &str, id: &str) -> Value {
    b.wait_js(
        &format!("const d = document.getElementById('device-detail'); return !d.hidden && d.dataset.device === '{id}'"),
        "the device's detail",
    )
    .await;
    let from = b
        .js("return document.getElementById('device-detail').dataset.from")
        .await;
    let from = from.as_str().unwrap().replace('+', "%2B");
    let h = api_get(
        &format!("{api}/api/v1/devices/{site}/{id}/history?from={from}"),
        VIEWER,
    )
    .await;
    let want = spans_of(&h);
    // The page's window ended when it asked; the API's ends now: the same but the last end.
    let got = drawn_spans(b).await;
    assert_eq!(got.len(), want.len(), "{got:?} vs {want:?}");
    for (g, w) in got.iter().zip(&want).take(want.len() - 1) {
        assert_eq!(g, w);
    }
    let (gl, wl) = (got.last().unwrap(), want.last().unwrap());
    assert_eq!(
        (&gl.0, gl.1),
        (&wl.0, wl.1),
        "the last span's state and start"
    );
    let rows = b.count("#dd-transitions tbody tr").await;
    assert_eq!(rows, h["transitions"].as_array().unwrap().len());
    let values = h["values"].as_array().unwrap().len();
    assert_eq!(b.count("#dd-values tbody tr").await, values);
    let points = b
        .js("const p = document.querySelector('#dd-chart polyline'); return p ? p.points.numberOfItems : 0")
        .await;
    assert_eq!(
        points.as_u64(),
        Some(values as u64),
        "a point per kept reading"
    );
    h
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_site_view_zones_systems_and_a_device_s_timeline_are_the_apis() {
    let _load = shared().await;
    let mq = Mosquitto::start();
    let watch = tempfile::tempdir().unwrap();
    let cfg = views_config(&mq.url(), watch.path(), "gw-console-site");
    let clock = test_clock();
    let (_gw, api) = start_ready_on(&cfg, clock.clock()).await;
    let p = Publisher::connect(mq.port, "pub-console-site").await;
    let send = |site: &'static str, dev: &'static str, lel: f64| {
        let topic = format!("safegate/v1/{site}/{dev}/data");
        (topic, json!({"values": {"lel": lel}}).to_string())
    };
    for (site, dev, lel) in [
        ("p1", "a", 1.0),
        ("p1", "b", 2.5),
        ("p2", "x", 1.0),
        ("m1", "k1", 0.3),
    ] {
        let (topic, body) = send(site, dev, lel);
        p.send(&topic, body).await;
    }
    api_wait(&format!("{api}/api/v1/sites"), VIEWER, |v| {
        v["region"]["devices"]["online"] == 4
    })
    .await;
    clock.advance(std::time::Duration::from_secs(3));
    api_wait(
        &format!("{api}/api/v1/devices?state=offline"),
        VIEWER,
        |v| v["total"] == 1,
    )
    .await;

    let b = Browser::start(1440, 900).await;
    sign_in(&b, &api, VIEWER).await;
    b.click("nav button[data-view=site]").await;
    choose(&b, "f-site", "p1").await;
    b.wait_js(
        "return !document.getElementById('site-units').hidden",
        "the zones",
    )
    .await;
    let z = api_get(&format!("{api}/api/v1/sites/p1/zones"), VIEWER).await;
    for zone in z["zones"].as_array().unwrap() {
        let row = format!("#zones tr[data-zone={}]", zone["id"].as_str().unwrap());
        let covered = if zone["covered"] == true {
            "已覆盖"
        } else {
            "未覆盖"
        };
        b.wait_text(
            &format!("{row} td[data-col=covered]"),
            "the zone's coverage",
            |t| t == covered,
        )
        .await;
        assert_eq!(
            b.text(&format!("{row} td[data-col=name]")).await.unwrap(),
            zone["name"]
        );
        assert_eq!(
            b.text(&format!("{row} td[data-col=online]")).await.unwrap(),
            zone["online"].to_string()
        );
    }
    assert_eq!(
        b.text("#zones-summary").await.unwrap(),
        "1 / 2 个区域已覆盖"
    );
    assert!(b.shown("#systems-none").await, "a park has no systems");

    // The zone filter lists only its devices, as the API does.
    choose(&b, "f-zone", "z2").await;
    b.wait_js("return document.querySelectorAll('#devices tbody tr').length === 1 && document.querySelector('#devices tbody tr').dataset.device === 'b'", "z2's device").await;
    let d = api_get(&format!("{api}/api/v1/devices?site=p1&zone=z2"), VIEWER).await;
    assert_eq!(d["total"], 1);
    b.screenshot("console-site").await;

    // b's detail: never, online at its reading, offline 1 s after; its one value kept.
    b.click("#devices tr[data-device=b] button.device-open")
        .await;
    let h = detail_is_the_apis(&b, &api, "p1", "b").await;
    let states: Vec<String> = drawn_spans(&b).await.into_iter().map(|s| s.0).collect();
    assert_eq!(states, ["never", "online", "offline"], "{h}");
    assert_eq!(
        b.text("#dd-values tbody tr td.num").await.unwrap(),
        "2.5 %LEL"
    );
    // b reports again: the open detail follows the live feed, no reload.
    let (topic, body) = send("p1", "b", 3.5);
    p.send(&topic, body).await;
    b.wait_js(
        "const r = [...document.querySelectorAll('#dd-timeline rect')]; return r.length === 4 && r[3].dataset.state === 'online'",
        "b online again on the open page",
    )
    .await;
    detail_is_the_apis(&b, &api, "p1", "b").await;
    b.screenshot("console-device").await;

    // A mine's system: online by the quorum ("any") with one of two points.
    choose(&b, "f-site", "m1").await;
    b.wait_text(
        "#systems tr[data-system=s1] td[data-col=quorum]",
        "the system",
        |t| t == "在线",
    )
    .await;
    let s = api_get(&format!("{api}/api/v1/sites/m1/systems"), VIEWER).await;
    let s1 = &s["systems"][0];
    for col in ["counted", "online", "need"] {
        let shown = b
            .text(&format!("#systems tr[data-system=s1] td[data-col={col}]"))
            .await
            .unwrap();
        assert_eq!(shown, s1[col].to_string(), "{col}");
    }
    assert_eq!(
        (
            s1["counted"].as_u64(),
            s1["online"].as_u64(),
            s1["need"].as_u64()
        ),
        (Some(2), Some(1), Some(1))
    );

    b.click("#lang").await;
    b.wait_text(
        "#systems tr[data-system=s1] td[data-col=quorum]",
        "English",
        |t| t == "online",
    )
    .await;
    let text = b.text("#view-site").await.unwrap();
    let names = [
        "一号园区",
        "二号园区",
        "一号煤矿",
        "边坡监测",
        "东区",
        "西区",
    ];
    assert_english("site", &names.iter().fold(text, |t, n| t.replace(n, "")));
    assert_no_console_errors(&b).await;
    b.close().await;
}

/// The gateway's `safegate_event_streams` now.
async fn streams(api: &str) -> f64 {
    let text = reqwest::get(format!("{api}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    metric(&text, "safegate_event_streams").unwrap_or(-1.0)
}

/// Eight tabs of the console in one browser: over HTTP/1.1 a browser keeps six connections to
/// a host, so a stream per tab would leave the seventh waiting. The tabs share one stream (the
/// gateway counts one), every tab follows the live feed, and when the tab holding the stream
/// closes another takes it over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_tabs_share_one_live_stream_and_hand_it_on() {
    let _load = shared().await;
    let mq = Mosquitto::start();
    let inv = Inventory::default()
        .site("p1", "一号园区", "park")
        .detector("a", 0.5)
        .with("offline_after_s = 1")
        .detector("b", 0.5)
        .with("offline_after_s = 1")
        .detector("c", 60.0)
        .to_toml();
    // No tokens (loopback): the tabs need no sign-in each.
    let cfg = TestConfig::new(&settings(&mq.url(), "gw-console-tabs", None), &inv);
    let clock = test_clock();
    let (_gw, api) = start_ready_on(&cfg, clock.clock()).await;
    let p = Publisher::connect(mq.port, "pub-console-tabs").await;
    for d in ["a", "b", "c"] {
        let topic = format!("safegate/v1/p1/{d}/data");
        p.send(&topic, json!({"values": {"lel": 1}}).to_string())
            .await;
    }
    wait_json(
        &format!("{api}/api/v1/devices?state=online"),
        std::time::Duration::from_secs(10),
        |v| v["total"] == 3,
    )
    .await;

    let b = Browser::start(1440, 900).await;
    let mut tabs = Vec::new();
    for i in 0..8 {
        if i > 0 {
            let w = b.c().new_window(true).await.unwrap();
            b.c().switch_to_window(w.handle).await.unwrap();
        }
        b.c().goto(&format!("{api}/#overview")).await.unwrap();
        b.wait_js(
            "return document.body.dataset.ready === 'true' && document.getElementById('live').dataset.state === 'open'",
            &format!("tab {} signed in and live", i + 1),
        )
        .await;
        tabs.push(b.c().window().await.unwrap());
    }
    assert_eq!(streams(&api).await, 1.0, "one stream for the eight tabs");

    // a falls silent: every tab shows it offline, without a reload.
    clock.advance(std::time::Duration::from_millis(600));
    p.send(
        "safegate/v1/p1/b/data",
        json!({"values": {"lel": 1}}).to_string(),
    )
    .await;
    clock.advance(std::time::Duration::from_millis(600));
    for (i, t) in tabs.iter().enumerate() {
        b.c().switch_to_window(t.clone()).await.unwrap();
        b.wait_text(
            "#region-offline",
            &format!("a offline in tab {}", i + 1),
            |t| t == "1",
        )
        .await;
    }

    // The first tab (which took the stream) closes: another holds it, and the rest follow on.
    b.c().switch_to_window(tabs[0].clone()).await.unwrap();
    b.c().close_window().await.unwrap();
    let deadline = std::time::Instant::now() + browser::WAIT;
    while streams(&api).await != 1.0 {
        assert!(
            std::time::Instant::now() < deadline,
            "no tab took the stream over"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    clock.advance(std::time::Duration::from_millis(1200));
    for (i, t) in tabs.iter().enumerate().skip(1) {
        b.c().switch_to_window(t.clone()).await.unwrap();
        b.wait_text(
            "#region-offline",
            &format!("b offline in tab {}", i + 1),
            |t| t == "2",
        )
        .await;
        assert_no_console_errors(&b).await;
    }
    b.close().await;
}
