//! The web console in a real browser: headless Chromium over WebDriver against a gateway on
//! real Mosquitto, with tokens. The page loads in Chinese and switches to English; a viewer
//! sees no acknowledge button (and a forged POST with its token is refused); an operator
//! acknowledges an alarm with a note and the API records the token's name; a new alarm and a
//! device going silent reach the open page through the live feed, without a reload; field
//! text (a site name, a note) that looks like HTML is shown as text.

use crate::common::browser::Browser;
use crate::common::*;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::time::Duration;

pub(crate) const VIEWER: &str = "tok-console-viewer";
pub(crate) const OPERATOR: &str = "tok-console-operator";
/// A site name as a careless (or hostile) configuration might have it.
const SITE_NAME: &str = "<img src=x onerror=alert(1)>";
const NOTE: &str = "<script>window.pwned = 1</script>valve closed";

pub(crate) fn tokens() -> String {
    [
        ("view-desk", "viewer", VIEWER),
        ("op-desk", "operator", OPERATOR),
    ]
    .iter()
    .map(|(name, role, tok)| {
        format!(
            "[[tokens]]\nname = \"{name}\"\nrole = \"{role}\"\nsha256 = \"{}\"\n\n",
            hex::encode(Sha256::digest(tok.as_bytes()))
        )
    })
    .collect()
}

pub(crate) async fn api_get(url: &str, token: &str) -> Value {
    let r = reqwest::Client::new()
        .get(url)
        .bearer_auth(token)
        .send()
        .await
        .expect("HTTP GET");
    r.json().await.unwrap_or(Value::Null)
}

/// Poll the API (with a token) until `done` holds.
pub(crate) async fn api_wait(url: &str, token: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = std::time::Instant::now() + browser::WAIT;
    loop {
        let v = api_get(url, token).await;
        if done(&v) {
            return v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{url} never satisfied the condition; last: {v}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn open_alarm<'a>(list: &'a Value, device: &str) -> Option<&'a Value> {
    list["alarms"]
        .as_array()?
        .iter()
        .find(|a| a["device"] == device)
}

/// Sign in with `token` and wait until every view has its data.
pub(crate) async fn sign_in(b: &Browser, api: &str, token: &str) {
    b.c().goto(&format!("{api}/")).await.unwrap();
    b.wait_text("#login h2", "the login form", |t| !t.is_empty())
        .await;
    b.type_into("#token", token).await;
    b.click("#login-form button[type=submit]").await;
    b.wait_js("return document.body.dataset.ready === 'true'", "signed in")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_in_chromium_live_with_roles_and_text_only() {
    let _load = shared().await;
    let mq = Mosquitto::start();
    let inv = Inventory::default()
        .site("p1", SITE_NAME, "park")
        .detector("g1", 60.0)
        .detector("g2", 60.0)
        .detector("o1", 0.5)
        .with("offline_after_s = 1")
        .to_toml();
    let cfg = TestConfig::new(
        &format!("{}{}", settings(&mq.url(), "gw-console", None), tokens()),
        &inv,
    );
    let clock = test_clock();
    let (_gw, api) = start_ready_on(&cfg, clock.clock()).await;
    let p = Publisher::connect(mq.port, "pub-console").await;
    let data = |d: &str| format!("safegate/v1/p1/{d}/data");
    p.send(&data("g1"), json!({"values": {"lel": 30}}).to_string())
        .await;
    p.send(&data("o1"), json!({"values": {"lel": 1}}).to_string())
        .await;
    p.send(&data("g2"), json!({"values": {"lel": 1}}).to_string())
        .await;
    let alarms_url = format!("{api}/api/v1/alarms?state=open");
    let list = api_wait(&alarms_url, VIEWER, |v| open_alarm(v, "g1").is_some()).await;
    let g1 = open_alarm(&list, "g1").unwrap()["id"].as_u64().unwrap();
    api_wait(&format!("{api}/api/v1/devices"), VIEWER, |v| {
        v["devices"]
            .as_array()
            .is_some_and(|d| d.iter().all(|d| d["state"] == "online"))
    })
    .await;

    let b = Browser::start(1440, 900).await;

    // Chinese first, on the login page; the English switch changes the labels.
    b.c().goto(&format!("{api}/")).await.unwrap();
    b.wait_text("#login h2", "the login form in Chinese", |t| {
        t == "请输入访问令牌"
    })
    .await;
    assert_eq!(b.js("return document.documentElement.lang").await, "zh-CN");
    assert_eq!(b.text("h1").await.unwrap(), "安全监测网关 · 控制台");
    b.click("#lang").await;
    b.wait_text("#login h2", "English", |t| t == "Enter an access token")
        .await;
    assert_eq!(b.text("h1").await.unwrap(), "safegate · console");
    assert_eq!(b.js("return document.documentElement.lang").await, "en");
    b.click("#lang").await;
    b.wait_text("#login h2", "back to Chinese", |t| t == "请输入访问令牌")
        .await;
    // The token goes in the tab's session storage only: not in the URL, not in a cookie.
    sign_in(&b, &api, VIEWER).await;
    assert_eq!(b.js("return document.cookie").await, "");
    assert!(!b
        .js("return location.href")
        .await
        .to_string()
        .contains(VIEWER));
    assert_eq!(
        b.js("return sessionStorage.getItem('safegate.token')")
            .await,
        VIEWER
    );

    // The overview: the site's name is text, not markup.
    b.wait_text(
        "#sites tr[data-site=p1] td[data-col=name]",
        "the site name",
        |t| t == SITE_NAME,
    )
    .await;
    assert_eq!(b.count("img").await, 0, "no element was made from a name");
    b.wait_text("#region-online", "3 devices online", |t| t == "3")
        .await;
    assert_eq!(b.text("#region-rate").await.unwrap(), "100.0%");
    assert!(b.text("#who").await.unwrap().contains("view-desk"));
    assert!(
        !b.shown("nav button[data-view=indicators]").await,
        "not for a viewer"
    );

    // A viewer's board: the alarm, no acknowledge button; the API refuses the forged POST.
    b.click("nav button[data-view=alarms]").await;
    let row = format!("#alarms tr[data-alarm='{g1}']");
    b.wait_text(&format!("{row} td[data-col=state]"), "g1's alarm", |t| {
        t == "未消除 · 未确认"
    })
    .await;
    assert_eq!(b.count(&format!("{row} button.ack")).await, 0);
    assert_eq!(
        b.count("button.ack").await,
        0,
        "no acknowledge button at all"
    );
    let forged = reqwest::Client::new()
        .post(format!("{api}/api/v1/alarms/{g1}/ack"))
        .bearer_auth(VIEWER)
        .json(&json!({"by": "view-desk", "note": "forged"}))
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status().as_u16(), 403);

    // An operator acknowledges on the page with a note.
    b.click("#logout").await;
    sign_in(&b, &api, OPERATOR).await;
    assert!(
        !b.shown("nav button[data-view=indicators]").await,
        "not for an operator"
    );
    b.click("nav button[data-view=alarms]").await;
    b.click(&format!("{row} button.ack")).await;
    b.wait_text("#ack-title", "the dialog", |t| t.contains(&g1.to_string()))
        .await;
    b.type_into("#ack-note", NOTE).await;
    b.click("#ack-submit").await;
    b.wait_text(&format!("{row} td[data-col=state]"), "acknowledged", |t| {
        t == "未消除 · 已确认"
    })
    .await;
    let shown = b.text(&format!("{row} td[data-col=ack]")).await.unwrap();
    assert_eq!(shown, NOTE, "the note is shown as text");
    assert_eq!(b.count("script").await, 1, "only the console's own module");
    assert_eq!(b.js("return window.pwned === undefined").await, true);
    let acked = api_get(&format!("{api}/api/v1/alarms/{g1}"), OPERATOR).await;
    assert_eq!(acked["acknowledged_by"], "op-desk", "{acked}");
    assert_eq!(acked["acknowledged_via"], "http:op-desk", "{acked}");
    assert_eq!(acked["note"], NOTE, "{acked}");

    // Live, without a reload (the marker would be gone): a new alarm reaches the board …
    b.js("window.__same_page = 1; return true").await;
    p.send(&data("g2"), json!({"values": {"lel": 40}}).to_string())
        .await;
    let list = api_wait(&alarms_url, OPERATOR, |v| open_alarm(v, "g2").is_some()).await;
    let g2 = open_alarm(&list, "g2").unwrap()["id"].as_u64().unwrap();
    b.wait_text(
        &format!("#alarms tr[data-alarm='{g2}'] td[data-col=state]"),
        "g2's alarm, live",
        |t| t == "未消除 · 未确认",
    )
    .await;
    assert_eq!(
        b.count(&format!("#alarms tr[data-alarm='{g2}'] button.ack"))
            .await,
        1,
        "an operator may acknowledge it"
    );
    // … and o1 going silent turns offline in the overview's counts.
    b.click("nav button[data-view=overview]").await;
    clock.advance(Duration::from_secs(2));
    b.wait_text("#region-offline", "o1 offline, live", |t| t == "1")
        .await;
    assert_eq!(b.text("#region-online").await.unwrap(), "2");
    assert_eq!(
        b.text("#sites tr[data-site=p1] td[data-col=offline]")
            .await
            .unwrap(),
        "1"
    );
    assert_eq!(
        b.js("return window.__same_page === 1").await,
        true,
        "no reload"
    );
    assert_eq!(b.text("#live").await.unwrap(), "实时");

    // The site view pages on the server; its search finds o1, offline.
    b.click("nav button[data-view=site]").await;
    b.type_into("#f-q", "o1").await;
    b.wait_text("#page-range", "one match", |t| t.contains("共 1 条"))
        .await;
    let state = "#devices tr[data-device=o1] td[data-col=state]";
    b.wait_text(state, "o1's row", |t| t == "离线").await;
    // With the right "since": when its silence passed offline_after_s, as the API says.
    let list = api_get(&format!("{api}/api/v1/devices?q=o1"), OPERATOR).await;
    let since = list["devices"][0]["state_since"]
        .as_str()
        .unwrap()
        .to_string();
    let want = b
        .js(&format!(
            "return new Date('{since}').toLocaleString('zh-CN', {{hour12: false}})"
        ))
        .await;
    let shown = b
        .text("#devices tr[data-device=o1] td[data-col=since]")
        .await;
    assert_eq!(
        Some(want.as_str().unwrap()),
        shown.as_deref(),
        "since {since}"
    );

    // Screenshots of each view (in the tests' scratch directory, target/tmp).
    for view in ["overview", "site", "alarms"] {
        b.click(&format!("nav button[data-view={view}]")).await;
        b.screenshot(&format!("console-{view}")).await;
    }
    b.click("nav button[data-view=site]").await;

    // In English every label changed: no Chinese text left but the data's, no missing key.
    b.click("#lang").await;
    b.wait_text(state, "o1 in English", |t| t == "offline")
        .await;
    for view in ["overview", "alarms", "site"] {
        b.click(&format!("nav button[data-view={view}]")).await;
        let body = b.text("main").await.unwrap();
        assert!(!body.contains('⟦'), "a missing label on {view}: {body}");
        let chinese: Vec<char> = body
            .chars()
            .filter(|c| ('\u{4e00}'..='\u{9fff}').contains(c))
            .collect();
        assert!(
            chinese
                .iter()
                .all(|c| "联网在线率覆盖预警响应接入".contains(*c)),
            "{view} in English still shows {chinese:?}"
        );
    }
    // Nothing went wrong on the page: no script error, no policy violation, no failed load
    // but the sign-in probe's 401 (that is how the page learns it needs a token).
    let bad: Vec<Value> = b
        .console_log()
        .await
        .into_iter()
        .filter(|e| e["level"] == "SEVERE" || e["level"] == "WARNING")
        .filter(|e| {
            let m = e["message"].as_str().unwrap_or("");
            !(m.contains("/api/v1/whoami") && m.contains("401"))
        })
        .collect();
    assert!(bad.is_empty(), "the page's console: {bad:?}");
    b.close().await;
}

/// Read the stream until an event named `name` arrives; returns its data.
async fn next_event(resp: &mut reqwest::Response, buf: &mut String, name: &str) -> Value {
    let deadline = tokio::time::Instant::now() + browser::WAIT;
    loop {
        while let Some(end) = buf.find("\n\n") {
            let block: String = buf.drain(..end + 2).collect();
            let event = block.lines().find_map(|l| l.strip_prefix("event: "));
            let data = block.lines().find_map(|l| l.strip_prefix("data: "));
            if let (Some(e), Some(d)) = (event, data) {
                if e == name {
                    return serde_json::from_str(d).unwrap();
                }
            }
        }
        let chunk = tokio::time::timeout_at(deadline, resp.chunk())
            .await
            .unwrap_or_else(|_| panic!("no {name} event within {:?}", browser::WAIT))
            .expect("the stream");
        let chunk = chunk.unwrap_or_else(|| panic!("the stream ended before a {name} event"));
        buf.push_str(std::str::from_utf8(&chunk).unwrap());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_feed_over_http_and_a_stop_with_streams_open() {
    let _load = shared().await;
    let mq = Mosquitto::start();
    let inv = Inventory::park("p1").detectors(&["a", "b"], 60.0).to_toml();
    let cfg = TestConfig::new(&settings(&mq.url(), "gw-console-sse", None), &inv);
    let (gw, api) = start_ready(&cfg).await;
    let mut streams = Vec::new();
    for _ in 0..3 {
        let r = reqwest::get(format!("{api}/api/v1/events")).await.unwrap();
        assert_eq!(r.status().as_u16(), 200);
        let ct = r.headers()["content-type"].to_str().unwrap().to_string();
        assert_eq!(ct, "text/event-stream");
        streams.push((r, String::new()));
    }
    for (r, buf) in &mut streams {
        let hello = next_event(r, buf, "hello").await;
        assert_eq!(hello["throttle_ms"], 1000, "{hello}");
    }
    let p = Publisher::connect(mq.port, "pub-console-sse").await;
    p.send(
        "safegate/v1/p1/a/data",
        json!({"values": {"lel": 30}}).to_string(),
    )
    .await;
    // Every client hears of a's first reading (never → online) and its alarm.
    for (r, buf) in &mut streams {
        let mut devices = Vec::new();
        let mut alarms = Vec::new();
        while devices.is_empty() || alarms.is_empty() {
            let c = next_event(r, buf, "changes").await;
            devices.extend(c["devices"].as_array().unwrap().clone());
            alarms.extend(c["alarms"].as_array().unwrap().clone());
        }
        assert_eq!(devices[0]["device"], "a", "{devices:?}");
        assert_eq!(devices[0]["state"], "online", "{devices:?}");
        assert_eq!(alarms[0]["device"], "a", "{alarms:?}");
        assert_eq!(alarms[0]["state"], "active_unacked", "{alarms:?}");
    }
    // Stopping does not wait on open streams; they end.
    tokio::time::timeout(Duration::from_secs(15), gw.stop())
        .await
        .expect("the gateway stops with streams open");
    for (r, _) in &mut streams {
        let rest = tokio::time::timeout(browser::WAIT, async {
            while let Ok(Some(_)) = r.chunk().await {}
        })
        .await;
        assert!(rest.is_ok(), "the stream ended");
    }
}

const EVALUATOR: &str = "tok-console-evaluator";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_self_evaluation_on_the_page_is_the_apis_and_so_is_its_csv() {
    let _load = shared().await;
    let mq = Mosquitto::start();
    let target = |indicator: &str, scope: &str, weight: u32| {
        format!(
            "[[targets]]\nindicator = \"{indicator}\"\nscope = \"{scope}\"\ncomparator = \">=\"\n\
             value = 100\nlabel = \"联网在线率\"\nlevel1 = \"产出指标\"\nlevel2 = \"质量指标\"\n\
             weight = {weight}\n\n"
        )
    };
    let inv = Inventory::park("p1")
        .enterprise("e1", "E-One")
        .detectors(&["a", "b"], 60.0)
        .raw(&target("online_rate", "region", 10))
        .raw(&target("device_build_rate", "region", 5))
        .raw(&target("online_rate", "site:p1", 4))
        .to_toml();
    let token = format!(
        "[[tokens]]\nname = \"eval-desk\"\nrole = \"evaluator\"\nsha256 = \"{}\"\n",
        hex::encode(Sha256::digest(EVALUATOR.as_bytes()))
    );
    let cfg = TestConfig::new(
        &format!("{}{token}", settings(&mq.url(), "gw-console-report", None)),
        &inv,
    );
    let (_gw, api) = start_ready(&cfg).await;
    let p = Publisher::connect(mq.port, "pub-console-report").await;
    // With a timestamp 250 ms old: a latency for the trends' p95.
    let ts = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
        - 250;
    p.send(
        "safegate/v1/p1/a/data",
        json!({"values": {"lel": 1}, "ts": ts}).to_string(),
    )
    .await;
    // a's time online is in the evaluation (b never reports: a shortfall with a reason).
    api_wait(&format!("{api}/api/v1/report"), EVALUATOR, |v| {
        v["rows"][0]["numerator"].as_f64().is_some_and(|n| n > 0.0)
    })
    .await;
    // and its latency too (kept by the minute: it reaches the evaluation a little later).
    api_wait(&format!("{api}/api/v1/indicators"), EVALUATOR, |v| {
        v["indicators"].as_array().is_some_and(|l| {
            l.iter()
                .any(|i| i["id"] == "latency_p95_ms" && i["value"].is_number())
        })
    })
    .await;

    let b = Browser::start(1440, 900).await;
    sign_in(&b, &api, EVALUATOR).await;
    b.click("nav button[data-view=indicators]").await;
    b.click("#report-window input[value=today]").await;
    let midnight = b
        .js("const n = new Date(); return new Date(n.getFullYear(), n.getMonth(), n.getDate()).toISOString()")
        .await;
    let midnight = midnight.as_str().unwrap();
    b.wait_js(
        &format!("return document.getElementById('report-range').dataset.from === '{midnight}'"),
        "today's report",
    )
    .await;
    let to = b
        .js("return document.getElementById('report-range').dataset.to")
        .await;
    let window = format!("from={midnight}&to={}", to.as_str().unwrap()).replace('+', "%2B");
    let want = api_get(&format!("{api}/api/v1/report?{window}"), EVALUATOR).await;
    let all = want["rows"].as_array().unwrap();
    assert_eq!(all.len(), 3, "{want}");
    // The region is the scope shown first: its rows only.
    let rows: Vec<(usize, &Value)> = all
        .iter()
        .enumerate()
        .filter(|(_, r)| r["scope"] == "region")
        .collect();
    assert_eq!(rows.len(), 2);
    assert_eq!(b.count("#report tbody tr").await, rows.len());
    for &(i, r) in &rows {
        let cell = |col: &str| format!("#report tr[data-row='{i}'] td[data-col={col}]");
        let pct = |v: &Value| v.as_str().map_or(String::new(), |s| format!("{s}%"));
        assert_eq!(
            b.text(&cell("label")).await.unwrap(),
            r["label"].as_str().unwrap()
        );
        assert_eq!(
            b.text(&cell("target")).await.unwrap(),
            r["target"].as_str().unwrap()
        );
        assert_eq!(
            b.text(&cell("actual")).await.unwrap(),
            r["actual"].as_str().unwrap()
        );
        assert_eq!(
            b.text(&cell("completion")).await.unwrap(),
            pct(&r["completion_pct"])
        );
        assert_eq!(
            b.text(&cell("deviation")).await.unwrap(),
            pct(&r["deviation_pct"])
        );
        assert_eq!(
            b.text(&cell("weight")).await.unwrap(),
            r["weight"].as_str().unwrap()
        );
        let score = r["score"].as_str().unwrap_or("");
        assert_eq!(b.text(&cell("score")).await.unwrap(), score);
        let reasons = r["reasons"].as_array().unwrap();
        assert!(!reasons.is_empty(), "b never reported: {r}");
        b.click(&format!("{} summary", cell("reasons"))).await;
        reasons_are_worded(&b, &cell("reasons"), reasons, "zh").await;
    }
    let region_score: rust_decimal::Decimal = rows
        .iter()
        .filter_map(|(_, r)| r["score"].as_str())
        .map(|s| s.parse::<rust_decimal::Decimal>().unwrap())
        .sum();
    assert_eq!(
        b.text("#report-score").await.unwrap(),
        region_score.normalize().to_string()
    );
    // The downloaded CSV is the API's, byte for byte, for the same window.
    b.click(".downloads button[data-format=csv]").await;
    let csv = b.downloaded("self-evaluation.csv").await;
    let api_csv = reqwest::Client::new()
        .get(format!("{api}/api/v1/report?{window}&format=csv"))
        .bearer_auth(EVALUATOR)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(csv, api_csv.to_vec(), "the CSV as the API sends it");
    b.screenshot("console-indicators").await;

    // A site picked in the scope selector: its rows, and every measured indicator of it for
    // the window the page used, as the API has them.
    assert_eq!(
        b.count("#report-scope option[value='enterprise:e1']").await,
        1,
        "the enterprise is a scope"
    );
    b.js(
        "const s = document.getElementById('report-scope'); s.value = 'site:p1'; \
          s.dispatchEvent(new Event('change')); return true",
    )
    .await;
    b.wait_js(
        "return document.getElementById('report-range').dataset.scope === 'site:p1' && \
         document.querySelectorAll('#report tbody tr').length === 1",
        "the site's rows",
    )
    .await;
    let to = b
        .js("return document.getElementById('report-range').dataset.to")
        .await;
    let window = format!("from={midnight}&to={}", to.as_str().unwrap()).replace('+', "%2B");
    let site_row = 2;
    assert_eq!(
        b.count(&format!("#report tbody tr[data-row='{site_row}']"))
            .await,
        1
    );
    let inds = api_get(
        &format!("{api}/api/v1/indicators?scope=site:p1&{window}"),
        EVALUATOR,
    )
    .await;
    indicators_are_the_apis(&b, &inds).await;
    b.screenshot("console-indicators-scope").await;

    // 趋势: each hour of the last 24 is the API's indicators for that hour, region and site.
    b.click("nav button[data-view=trends]").await;
    for scope in ["region", "site:p1"] {
        if scope != "region" {
            b.js(&format!(
                "const s = document.getElementById('trend-scope'); s.value = '{scope}'; \
                 s.dispatchEvent(new Event('change')); return true"
            ))
            .await;
        }
        trend_rows_are_the_apis(&b, &api, scope).await;
    }
    assert!(
        b.count("#trend-chart svg polyline[data-series=online_rate]")
            .await
            >= 1,
        "the online rate is drawn"
    );
    b.screenshot("console-trends").await;

    b.click("#lang").await;
    b.wait_text("#trends thead th", "the trends in English", |t| {
        t == "Period from"
    })
    .await;
    assert_english("trends", &b.text("#view-trends").await.unwrap());
    b.click("nav button[data-view=indicators]").await;
    b.wait_text("#report thead th", "the table in English", |t| {
        t == "Level 1"
    })
    .await;
    assert_eq!(b.text(".downloads span").await.unwrap(), "Download");
    // The reasons in English, from the same fields.
    let want = api_get(&format!("{api}/api/v1/report?{window}"), EVALUATOR).await;
    let cell = format!("#report tr[data-row='{site_row}'] td[data-col=reasons]");
    b.click(&format!("{cell} summary")).await;
    let reasons = want["rows"][site_row]["reasons"].as_array().unwrap();
    reasons_are_worded(&b, &cell, reasons, "en").await;
    assert_english("indicators", &b.text("#report-indicators").await.unwrap());
    assert_no_console_errors(&b).await;
    b.close().await;
}

/// The reasons of a row as the page words them in `lang`: one line per listed reason, each
/// with the API's share and the unit's id; in Chinese no English left but the ids, in English
/// no Chinese.
async fn reasons_are_worded(b: &Browser, cell: &str, reasons: &[Value], lang: &str) {
    let lines = b
        .js(&format!(
            "return [...document.querySelectorAll(\"{cell} li\")].map(l => l.textContent)"
        ))
        .await;
    let lines = lines.as_array().unwrap();
    assert!(lines.len() >= reasons.len(), "{lines:?}");
    for (line, r) in lines.iter().zip(reasons) {
        let line = line.as_str().unwrap();
        let share = r["share"].as_str().unwrap().parse::<f64>().unwrap() * 100.0;
        assert!(line.starts_with(&format!("{share:.2}% · ")), "{line} {r}");
        let id = r["id"].as_str().unwrap();
        assert!(line.contains(id), "{line}");
        let note = r["note"].as_str().unwrap();
        if lang == "zh" {
            let rest = line
                .replace(id, "")
                .replace(r["site"].as_str().unwrap(), "");
            assert!(
                !rest.chars().any(|c| c.is_ascii_alphabetic()),
                "English left in the Chinese reason: {line}"
            );
            assert!(
                rest.chars().any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c)),
                "{line}"
            );
        } else {
            assert!(
                !line.chars().any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c)),
                "Chinese left in the English reason: {line}"
            );
            // The English wording says what the API's note says (up to its first figure:
            // times are the browser's).
            let head = note
                .split(|c: char| c.is_ascii_digit())
                .next()
                .unwrap()
                .trim();
            assert!(line.contains(head), "{line} / {note}");
        }
    }
}

/// The scope's indicator table: a row per indicator of the API's answer, each figure as the
/// API has it (numerator and denominator whole or to 2 decimals).
async fn indicators_are_the_apis(b: &Browser, inds: &Value) {
    let list = inds["indicators"].as_array().unwrap();
    assert!(list.len() >= 5, "{inds}");
    assert_eq!(b.count("#report-indicators tbody tr").await, list.len());
    let pct = |v: &Value| v.as_str().map_or(String::new(), |s| format!("{s}%"));
    for (n, i) in list.iter().enumerate() {
        let cell = |col: &str| {
            format!(
                "#report-indicators tbody tr:nth-child({}) td[data-col={col}]",
                n + 1
            )
        };
        let row = b
            .js(&format!(
                "return document.querySelector('#report-indicators tbody tr:nth-child({})').dataset.id",
                n + 1
            ))
            .await;
        assert_eq!(row, i["id"], "in the API's order");
        let display = i["display"].as_str().unwrap_or("—");
        assert_eq!(b.text(&cell("value")).await.unwrap(), display, "{i}");
        // Whole; to 2 decimals from 1; below, 3 significant digits.
        let ratio = b
            .js(&format!(
                "const u = (v) => Number.isInteger(v) ? String(v) : \
                 Math.abs(v) >= 1 ? v.toFixed(2) : v.toPrecision(3); \
                 return `${{u({})}} / ${{u({})}}`",
                i["numerator"], i["denominator"]
            ))
            .await;
        assert_eq!(b.text(&cell("ratio")).await.unwrap(), ratio, "{i}");
        let target = match i["target"].as_object() {
            None => String::new(),
            Some(t) => {
                let sym = if t["comparator"] == ">=" {
                    "≥"
                } else {
                    "≤"
                };
                let v: rust_decimal::Decimal = t["value"].as_str().unwrap().parse().unwrap();
                let unit = match i["unit"].as_str().unwrap() {
                    "ratio" => "%",
                    "milliseconds" => " ms",
                    _ => "",
                };
                format!("{sym}{}{unit}", v.normalize())
            }
        };
        assert_eq!(b.text(&cell("target")).await.unwrap(), target, "{i}");
        assert_eq!(
            b.text(&cell("completion")).await.unwrap(),
            pct(&i["completion_pct"])
        );
        assert_eq!(
            b.text(&cell("deviation")).await.unwrap(),
            pct(&i["deviation_pct"])
        );
    }
    // The site's online-rate target applies: completion shown.
    let online = list.iter().position(|i| i["id"] == "online_rate").unwrap();
    assert!(list[online]["completion_pct"].is_string(), "{inds}");
}

/// The trends table of `scope` once drawn: 24 hourly rows, newest first, each cell the
/// API's value for the period the page asked (formatted as the page formats a rate).
async fn trend_rows_are_the_apis(b: &Browser, api: &str, scope: &str) {
    let first = format!("#trends tbody tr:first-child[data-scope='{scope}']");
    b.wait_js(
        &format!("return document.querySelectorAll(\"#trends tbody tr[data-scope='{scope}']\").length === 24"),
        "24 hours",
    )
    .await;
    assert!(b.shown(&first).await);
    let periods = b
        .js("return [...document.querySelectorAll('#trends tbody tr')].map(r => [r.dataset.from, r.dataset.to])")
        .await;
    let periods = periods.as_array().unwrap();
    let mut measured = 0;
    let mut latencies = 0;
    for (i, p) in periods.iter().enumerate() {
        let (from, to) = (p[0].as_str().unwrap(), p[1].as_str().unwrap());
        let q = format!("scope={scope}&from={from}&to={to}").replace('+', "%2B");
        let v = api_get(&format!("{api}/api/v1/indicators?{q}"), EVALUATOR).await;
        for id in ["online_rate", "coverage_rate"] {
            let value = v["indicators"]
                .as_array()
                .unwrap()
                .iter()
                .find(|x| x["id"] == id && x["qualifier"].is_null())
                .map_or(Value::Null, |x| x["value"].clone());
            let want = b
                .js(&format!(
                    "const v = {value}; return v === null ? '—' : `${{(v * 100).toFixed(1)}}%`"
                ))
                .await;
            let cell = format!("#trends tbody tr:nth-child({}) td[data-col={id}]", i + 1);
            assert_eq!(
                b.text(&cell).await.unwrap(),
                want.as_str().unwrap(),
                "{scope} {from} {id}"
            );
            measured += usize::from(id == "online_rate" && !value.is_null());
        }
        let p95 = v["indicators"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["id"] == "latency_p95_ms")
            .map_or(Value::Null, |x| x["value"].clone());
        let want = match p95.as_f64() {
            None => "—".to_string(),
            Some(ms) => format!("{ms} ms"),
        };
        let cell = format!(
            "#trends tbody tr:nth-child({}) td[data-col=latency_p95_ms]",
            i + 1
        );
        assert_eq!(b.text(&cell).await.unwrap(), want, "{scope} {from} p95");
        latencies += usize::from(!p95.is_null());
    }
    assert!(latencies >= 1, "a's reading had a timestamp: {scope}");
    assert!(measured >= 1, "the hour in progress has a's time online");
}

pub(crate) const ADMIN: &str = "tok-console-admin";
const MINE: &str = "150621011040";

/// No Chinese left in `text` but the indicator names, and no missing label.
pub(crate) fn assert_english(view: &str, text: &str) {
    assert!(!text.contains('⟦'), "a missing label on {view}: {text}");
    let chinese: Vec<char> = text
        .chars()
        .filter(|c| ('\u{4e00}'..='\u{9fff}').contains(c))
        .collect();
    assert!(
        chinese
            .iter()
            .all(|c| "联网在线率覆盖预警响应接入".contains(*c)),
        "{view} in English still shows {chinese:?}"
    );
}

/// The 输入 test's gateway: a park with a detector and a Modbus device on `dead` (nothing
/// listens there), a mine taking files from `watch`, an admin and a viewer token.
fn inputs_config(mq: &str, dead: u16, watch: &std::path::Path) -> TestConfig {
    let modbus = format!(
        "[[devices]]\nid = \"m1\"\nsite = \"p1\"\nkind = \"gas_combustible\"\nprotocol = \"modbus\"\n\
         interval_s = 0.5\n[devices.modbus]\ntransport = \"tcp\"\naddress = \"127.0.0.1:{dead}\"\nunit = 1\n\
         timeout_ms = 300\nregisters = [{{ channel = \"lel\", table = \"holding\", address = 0, type = \"u16\" }}]\n"
    );
    // A mine whose files come from a folder: one 测点定义 (CDDY) file.
    std::env::set_var("SAFEGATE_TEST_CONSOLE_MINE_PW", "kj-console-1");
    let mine = format!(
        "[[sites]]\nid = \"m1\"\nname = \"示范煤矿\"\nkind = \"mine\"\nmine_code = \"{MINE}\"\n\
         upload_password_env = \"SAFEGATE_TEST_CONSOLE_MINE_PW\"\n\n[[systems]]\nid = \"kj\"\nsite = \"m1\"\n\
         kind = \"major_hazard\"\n\n"
    );
    let inv = Inventory::park("p1")
        .detector("g1", 60.0)
        .raw(&modbus)
        .raw(&mine)
        .to_toml();
    let section = format!(
        "[mine_files]\nenabled = true\nlisten = \"\"\nwatch_dir = \"{}\"\nsettle_ms = 200\nwatch_scan_ms = 100\n\n",
        watch.display()
    );
    let tokens: String = [
        ("admin-desk", "admin", ADMIN),
        ("view-desk", "viewer", VIEWER),
    ]
    .iter()
    .map(|(name, role, tok)| {
        format!(
            "[[tokens]]\nname = \"{name}\"\nrole = \"{role}\"\nsha256 = \"{}\"\n\n",
            hex::encode(Sha256::digest(tok.as_bytes()))
        )
    })
    .collect();
    TestConfig::new(
        &format!(
            "{}{section}{tokens}",
            settings(mq, "gw-console-inputs", None)
        ),
        &inv,
    )
}

/// A mine's 测点定义 (CDDY) file of two points, written in `watch`; its name.
fn drop_cddy(watch: &std::path::Path) -> String {
    let at = (now_ms() - 60_000) / 1000 * 1000;
    let (stamp, _) = crate::mine_files::local(at);
    let recs: Vec<String> = ["MN0001", "MN0002"]
        .iter()
        .map(|p| format!("{MINE}{p};01;{MINE}F001;0001;MN;%CH4;4.00;0.00;0.80;0.80;-9999;-9999;-9999;-9999;-9999;-9999;;;巷道;;;;;{stamp}"))
        .collect();
    crate::mine_files::mine_file(
        watch,
        MINE,
        "CDDY",
        at,
        "KJ95X;安全监控系统;厂家;2028-12-31;",
        &recs,
        0,
    )
    .0
}

/// The page's console: no script error, no policy violation, no failed load but the
/// sign-in probe's 401 (that is how the page learns it needs a token).
pub(crate) async fn assert_no_console_errors(b: &Browser) {
    let bad: Vec<Value> = b
        .console_log()
        .await
        .into_iter()
        .filter(|e| e["level"] == "SEVERE" || e["level"] == "WARNING")
        .filter(|e| {
            let m = e["message"].as_str().unwrap_or("");
            !(m.contains("/api/v1/whoami") && m.contains("401"))
        })
        .collect();
    assert!(bad.is_empty(), "the page's console: {bad:?}");
}

/// The 输入 view's rejections, by reason and the recent ones, as the API's `rej` lists them
/// (nothing new came in since).
async fn rejections_are_the_apis(b: &Browser, rej: &Value) {
    for reason in ["malformed_json", "unknown_device"] {
        let n = rej["counts"][reason].as_u64().unwrap().to_string();
        let row = format!("#rejections tr[data-reason={reason}]");
        b.wait_text(&format!("{row} td[data-col=count]"), reason, |t| t == n)
            .await;
        assert_eq!(
            b.text(&format!("{row} td[data-col=code]")).await.unwrap(),
            reason
        );
    }
    assert_eq!(
        b.text("#rejections tr[data-reason=malformed_json] td[data-col=reason]")
            .await
            .unwrap(),
        "JSON 格式错误"
    );
    // The recent ones, newest first, as the API lists them (nothing new came in since).
    let recent = rej["recent"].as_array().unwrap();
    assert_eq!(b.count("#recent-rejections tbody tr").await, recent.len());
    for (i, r) in recent.iter().enumerate() {
        let cell = |col: &str| {
            format!(
                "#recent-rejections tbody tr:nth-child({}) td[data-col={col}]",
                i + 1
            )
        };
        assert_eq!(
            b.text(&cell("topic")).await.unwrap(),
            r["topic"].as_str().unwrap()
        );
        assert_eq!(
            b.text(&cell("detail")).await.unwrap(),
            r["detail"].as_str().unwrap()
        );
    }
}

/// The mine's row: its last CDDY file (name, lag), files and records, as the API's `m`.
async fn mine_row_is_the_apis(b: &Browser, m: &Value, cddy: &str) {
    // The mine's last file, as the API has it.
    let mine_row = format!("#mines tr[data-mine='{MINE}']");
    let files = b
        .text(&format!("{mine_row} td[data-col=last_files]"))
        .await
        .unwrap();
    assert!(files.starts_with(&format!("CDDY：{cddy}（")), "{files}");
    let lag = (m["last_files"]["CDDY"]["lag_ms"].as_f64().unwrap() / 1000.0).round();
    assert!(files.contains(&format!("延迟 {lag} 秒")), "{files}");
    for col in ["files_applied", "records_accepted", "records_refused"] {
        assert_eq!(
            b.text(&format!("{mine_row} td[data-col={col}]"))
                .await
                .unwrap(),
            m[col].to_string(),
            "{col}"
        );
    }
    assert_eq!(
        b.text(&format!("{mine_row} td[data-col=site]"))
            .await
            .unwrap(),
        "m1"
    );
}

/// The 输入 view: rejections by reason and the recent ones (admin), a Modbus endpoint that
/// cannot connect with its error, a mine with one file: each as the API has it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_inputs_view_shows_the_apis_rejections_and_endpoints() {
    let _load = shared().await;
    let mq = Mosquitto::start();
    let dead = free_port();
    let watch = tempfile::tempdir().unwrap();
    let cfg = inputs_config(&mq.url(), dead, watch.path());
    let (_gw, api) = start_ready(&cfg).await;
    let p = Publisher::connect(mq.port, "pub-console-inputs").await;
    p.send("safegate/v1/p1/g1/data", "{not json".to_string())
        .await;
    p.send(
        "safegate/v1/p1/ghost/data",
        json!({"values": {"lel": 1}}).to_string(),
    )
    .await;
    let rej_url = format!("{api}/api/v1/rejections");
    let rej = api_wait(&rej_url, ADMIN, |v| {
        v["counts"]["malformed_json"].as_u64() >= Some(1)
            && v["counts"]["unknown_device"].as_u64() >= Some(1)
    })
    .await;
    let ep_url = format!("{api}/api/v1/endpoints");
    let eps = api_wait(&ep_url, VIEWER, |v| {
        v["endpoints"][0]["last_error"].is_string()
    })
    .await;
    let key = eps["endpoints"][0]["endpoint"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(key, format!("tcp://127.0.0.1:{dead}"), "{eps}");
    let cddy = drop_cddy(watch.path());
    let mines = api_wait(&format!("{api}/api/v1/mines"), VIEWER, |v| {
        v["mines"][0]["last_files"]["CDDY"]["name"] == cddy.as_str()
    })
    .await;

    // The API's document: open on a gateway with tokens, and linked from the page.
    let doc = reqwest::get(format!("{api}/api/v1/openapi.json"))
        .await
        .unwrap();
    assert_eq!(doc.status().as_u16(), 200);
    let doc: Value = doc.json().await.unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."), "{doc}");
    assert!(doc["paths"]["/api/v1/rejections"]["get"].is_object());

    let b = Browser::start(1440, 900).await;
    sign_in(&b, &api, ADMIN).await;
    assert_eq!(
        b.js("return document.getElementById('api-doc').getAttribute('href')")
            .await,
        "/api/v1/openapi.json"
    );
    b.click("nav button[data-view=inputs]").await;
    rejections_are_the_apis(&b, &rej).await;
    // The endpoint that nothing answers: down, with the API's error as text.
    let ep_row = format!("#endpoints tr[data-endpoint='{key}']");
    b.wait_text(
        &format!("{ep_row} td[data-col=state]"),
        "the endpoint",
        |t| t == "断开",
    )
    .await;
    let now = api_get(&ep_url, VIEWER).await;
    assert_eq!(
        b.text(&format!("{ep_row} td[data-col=last_error]"))
            .await
            .unwrap(),
        now["endpoints"][0]["last_error"].as_str().unwrap()
    );
    assert_eq!(
        b.text(&format!("{ep_row} td[data-col=devices]"))
            .await
            .unwrap(),
        "1"
    );
    assert_eq!(
        b.text("#endpoints-summary").await.unwrap(),
        "共 1 个端点，1 个断开"
    );
    mine_row_is_the_apis(&b, &mines["mines"][0], &cddy).await;
    assert!(!b.shown("#mines-none").await);
    b.screenshot("console-inputs").await;

    b.click("#lang").await;
    b.wait_text(
        "#rejections tr[data-reason=malformed_json] td[data-col=reason]",
        "English",
        |t| t == "Malformed JSON",
    )
    .await;
    assert_eq!(
        b.text(&format!("{ep_row} td[data-col=state]"))
            .await
            .unwrap(),
        "down"
    );
    assert_eq!(
        b.text("#endpoints-summary").await.unwrap(),
        "1 endpoints, 1 down"
    );
    assert_english("inputs", &b.text("#view-inputs").await.unwrap());
    b.click("#lang").await;

    // A viewer sees the endpoints and mines, and is told rejections are for administrators.
    b.click("#logout").await;
    sign_in(&b, &api, VIEWER).await;
    b.click("nav button[data-view=inputs]").await;
    b.wait_text(
        &format!("{ep_row} td[data-col=state]"),
        "the viewer's endpoints",
        |t| t == "断开",
    )
    .await;
    assert!(b.shown("#rejections-admin").await);
    assert!(!b.shown("#rejections").await);
    assert_no_console_errors(&b).await;
    b.close().await;
}

/// The 大屏 wall (`/?view=wall`) at 1920×1080: the region's figures and each site's in turn,
/// as `/api/v1/sites` has them, rotating by itself; a device going silent reaches it live.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wall_rotates_through_the_sites_and_follows_the_live_feed() {
    let _load = shared().await;
    let mq = Mosquitto::start();
    let inv = Inventory::default()
        .site("p1", "一号园区", "park")
        .detector("a1", 60.0)
        .detector("a2", 0.5)
        .with("offline_after_s = 1")
        .site("p2", "二号园区", "park")
        .detector("b1", 60.0)
        .detector("b2", 60.0)
        .to_toml();
    let cfg = TestConfig::new(
        &format!(
            "{}{}",
            settings(&mq.url(), "gw-console-wall", None),
            tokens()
        ),
        &inv,
    );
    let clock = test_clock();
    let (_gw, api) = start_ready_on(&cfg, clock.clock()).await;
    let p = Publisher::connect(mq.port, "pub-console-wall").await;
    for (site, dev, lel) in [("p1", "a1", 1), ("p1", "a2", 1), ("p2", "b1", 40)] {
        let topic = format!("safegate/v1/{site}/{dev}/data");
        p.send(&topic, json!({"values": {"lel": lel}}).to_string())
            .await;
    }
    let sites_url = format!("{api}/api/v1/sites");
    let want = api_wait(&sites_url, VIEWER, |v| {
        v["region"]["devices"]["online"] == 3 && v["region"]["alarms"]["active"] == 1
    })
    .await;

    let b = Browser::start(1920, 1080).await;
    b.c()
        .goto(&format!("{api}/?view=wall&rotate=3"))
        .await
        .unwrap();
    b.wait_text("#login h2", "the login form", |t| !t.is_empty())
        .await;
    b.type_into("#token", VIEWER).await;
    b.click("#login-form button[type=submit]").await;
    b.wait_js("return document.body.dataset.ready === 'true'", "signed in")
        .await;
    assert!(b.shown("#view-wall").await);
    assert!(!b.shown(".bar").await, "no chrome on the wall");
    assert!(!b.shown("#view-overview").await);
    assert_eq!(b.text("#view-wall h1").await.unwrap(), "安全监测大屏");
    let region = &want["region"];
    b.wait_text("#wall-region-online", "the region", |t| t == "3")
        .await;
    for (id, v) in [
        ("counted", &region["devices"]["counted"]),
        ("offline", &region["devices"]["offline"]),
        ("never", &region["devices"]["never"]),
        ("alarms-active", &region["alarms"]["active"]),
        ("alarms-unacked", &region["alarms"]["unacknowledged"]),
    ] {
        let shown = b.text(&format!("#wall-region-{id}")).await.unwrap();
        assert_eq!(shown, v.to_string(), "{id}");
    }
    assert_eq!(b.text("#wall-region-rate").await.unwrap(), "75.0%");
    // Each site in turn, by itself, with the API's figures.
    let mut seen = Vec::new();
    for _ in 0..2 {
        let next = b
            .js("return document.getElementById('wall-site').dataset.site || ''")
            .await;
        let id = next.as_str().unwrap().to_string();
        let current = id.clone();
        if !id.is_empty() {
            let s = want["sites"]
                .as_array()
                .unwrap()
                .iter()
                .find(|s| s["id"] == id.as_str())
                .unwrap();
            assert_eq!(
                b.text("#wall-site-name").await.unwrap(),
                s["name"].as_str().unwrap()
            );
            for (col, v) in [
                ("online", &s["devices"]["online"]),
                ("counted", &s["devices"]["counted"]),
                ("alarms-active", &s["alarms"]["active"]),
            ] {
                let shown = b.text(&format!("#wall-site-{col}")).await.unwrap();
                assert_eq!(shown, v.to_string(), "{id} {col}");
            }
            seen.push(id);
        }
        b.wait_js(
            &format!(
                "return (document.getElementById('wall-site').dataset.site || '') !== '{current}'"
            ),
            "the next site",
        )
        .await;
    }
    seen.sort();
    seen.dedup();
    assert_eq!(seen, ["p1", "p2"], "both sites shown in turn");
    b.screenshot("console-wall").await;

    // a2 goes silent: the wall's offline count follows, without a reload.
    b.js("window.__same_page = 1; return true").await;
    clock.advance(Duration::from_secs(2));
    b.wait_text("#wall-region-offline", "a2 offline, live", |t| t == "1")
        .await;
    assert_eq!(b.text("#wall-region-online").await.unwrap(), "2");
    assert_eq!(b.js("return window.__same_page === 1").await, true);
    assert_eq!(b.text("#wall-live").await.unwrap(), "实时");

    // In English (the choice the page keeps), every label.
    b.js("localStorage.setItem('safegate.lang', 'en'); location.reload(); return true")
        .await;
    b.wait_js("return document.body.dataset.ready === 'true'", "reloaded")
        .await;
    b.wait_text("#view-wall h1", "English", |t| {
        t == "Safety monitoring wall"
    })
    .await;
    let text = b.text("#view-wall").await.unwrap();
    let names: String = ["一号园区", "二号园区"].concat();
    let without_names: String = text.chars().filter(|c| !names.contains(*c)).collect();
    assert_english("wall", &without_names);
    assert_no_console_errors(&b).await;
    b.close().await;
}

/// The console's dictionary, to read the labels the page should show.
fn dictionary() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/src/api/console/assets/i18n.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// A time as the page writes it (`i18n.js`'s `time`), by the browser; "—" when missing.
async fn local_time(b: &Browser, lang: &str, iso: &Value) -> String {
    let Some(iso) = iso.as_str() else {
        return "—".into();
    };
    let v = b
        .js(&format!(
            "return new Date('{iso}').toLocaleString('{lang}', {{hour12: false}})"
        ))
        .await;
    v.as_str().unwrap().to_string()
}

fn or_dash(v: &Value) -> String {
    match v {
        Value::Null => "—".into(),
        Value::String(s) => s.clone(),
        // As JavaScript writes a number: 30, not 30.0.
        Value::Number(n) => n.as_f64().unwrap().to_string(),
        v => v.to_string(),
    }
}

/// Each row of a table: its `data-alarm` (or `data-event`), then each cell's text.
async fn table_rows(b: &Browser, css: &str) -> Vec<Vec<String>> {
    let v = b
        .js(&format!(
            "return [...document.querySelectorAll('{css} tbody tr')].map((tr) => \
             [tr.dataset.alarm || tr.dataset.event, ...[...tr.cells].map((td) => td.textContent)])"
        ))
        .await;
    serde_json::from_value(v).unwrap()
}

/// Set the history's filters (by the page's own controls), search, and wait for the answer
/// to be shown; returns the query the page sent.
async fn search_history(b: &Browser, state: &str, device: &str, want: &str) -> String {
    b.click(&format!("#h-state option[value='{state}']")).await;
    b.js("document.getElementById('h-device').value = ''; return true")
        .await;
    if !device.is_empty() {
        b.type_into("#h-device", device).await;
    }
    b.click("#h-apply").await;
    let script =
        format!("return document.getElementById('alarm-history').dataset.query === '{want}'");
    b.wait_js(&script, &format!("the history for {want}")).await;
    want.to_string()
}

/// The history on the page is exactly the API's answer to the page's query: the same alarms
/// in the same order (newest first), each cell as the dictionary labels the API's values.
async fn history_is_the_apis(b: &Browser, api: &str, query: &str, lang: &str) -> Vec<u64> {
    let dict = &dictionary()[lang];
    let list = api_get(&format!("{api}/api/v1/alarms?{query}"), OPERATOR).await;
    let mut want = Vec::new();
    for a in list["alarms"].as_array().unwrap() {
        let label = |k: String| {
            dict[&k]
                .as_str()
                .unwrap_or_else(|| panic!("{k}"))
                .to_string()
        };
        want.push(vec![
            a["id"].to_string(),
            a["id"].to_string(),
            or_dash(&a["site"]),
            or_dash(&a["device"]),
            label(format!("alarm.type.{}", a["type"].as_str().unwrap())),
            label(format!(
                "level.{}.{}",
                a["scheme"].as_str().unwrap(),
                a["level"]
            )),
            label(format!("alarm.state.{}", a["state"].as_str().unwrap())),
            local_time(b, lang, &a["raised_at"]).await,
            local_time(b, lang, &a["cleared_at"]).await,
            or_dash(&a["acknowledged_by"]),
            local_time(b, lang, &a["acknowledged_at"]).await,
        ]);
    }
    assert_eq!(table_rows(b, "#alarm-history").await, want, "{query}");
    assert!(!b.shown("#history-more").await, "no more than the limit");
    list["alarms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_u64().unwrap())
        .collect()
}

/// The lifecycle dialog shows `GET /api/v1/alarms/{id}`: every event in order with its time,
/// level, value, who, the note and the way, and the response time and the deadline's outcome.
async fn lifecycle_is_the_apis(b: &Browser, api: &str, id: u64, lang: &str) -> Value {
    let dict = &dictionary()[lang];
    b.wait_js(
        &format!(
            "return document.getElementById('alarm-dialog').dataset.alarm === '{id}' && \
             document.getElementById('alarm-dialog').open"
        ),
        "the lifecycle dialog",
    )
    .await;
    let a = api_get(&format!("{api}/api/v1/alarms/{id}"), OPERATOR).await;
    let scheme = a["scheme"].as_str().unwrap();
    let mut want = Vec::new();
    for e in a["events"].as_array().unwrap() {
        let event = e["event"].as_str().unwrap();
        want.push(vec![
            event.to_string(),
            local_time(b, lang, &e["at"]).await,
            dict[format!("alarm.event.{event}")]
                .as_str()
                .unwrap()
                .into(),
            dict[format!("level.{scheme}.{}", e["level"])]
                .as_str()
                .unwrap()
                .into(),
            or_dash(&e["value"]),
            or_dash(&e["by"]),
            or_dash(&e["note"]),
            or_dash(&e["via"]),
        ]);
    }
    assert_eq!(table_rows(b, "#alarm-events").await, want, "{a}");
    let field = |f: &str| format!("#alarm-summary dd[data-field={f}]");
    let outcome = format!("alarm.outcome.{}", a["outcome"].as_str().unwrap());
    assert_eq!(
        b.text(&field("outcome")).await.as_deref(),
        dict[outcome].as_str()
    );
    let response = match a["response_s"].as_f64() {
        Some(s) => {
            let s = s as u64;
            format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
        }
        None => "—".into(),
    };
    assert_eq!(b.text(&field("response")).await.unwrap(), response);
    let script = format!(
        "return document.querySelector('{}').textContent",
        field("note")
    );
    assert_eq!(b.js(&script).await, a["note"].as_str().unwrap_or("—"));
    assert_eq!(
        b.text(&field("acked_by")).await.unwrap(),
        or_dash(&a["acknowledged_by"])
    );
    a
}

/// No Chinese left in `css`'s text (but the indicator names and `allowed`), and no label missing.
async fn no_chinese(b: &Browser, css: &str, allowed: &str) {
    let body = b
        .js(&format!("return document.querySelector('{css}').innerText"))
        .await;
    let body = body.as_str().unwrap();
    assert!(!body.contains('⟦'), "a missing label in {css}: {body}");
    let chinese: Vec<char> = body
        .chars()
        .filter(|c| ('\u{4e00}'..='\u{9fff}').contains(c))
        .filter(|c| !"联网在线率覆盖预警响应接入".contains(*c) && !allowed.contains(*c))
        .collect();
    assert!(
        chinese.is_empty(),
        "{css} in English still shows {chinese:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_alarm_history_and_an_alarms_lifecycle_are_the_apis() {
    let _load = shared().await;
    let mq = Mosquitto::start();
    let inv = Inventory::default()
        .site("p1", "Park one", "park")
        .detector("g1", 60.0)
        .detector("g2", 60.0)
        .to_toml();
    let cfg = TestConfig::new(
        &format!(
            "{}{}",
            settings(&mq.url(), "gw-console-history", None),
            tokens()
        ),
        &inv,
    );
    let clock = test_clock();
    let (_gw, api) = start_ready_on(&cfg, clock.clock()).await;
    let p = Publisher::connect(mq.port, "pub-console-history").await;
    let data = |d: &str| format!("safegate/v1/p1/{d}/data");
    // g1: raised, escalated; g2: raised. Then g1 is acknowledged (with a note that looks like
    // markup) and cleared: closed.
    for v in [30, 55] {
        p.send(&data("g1"), json!({"values": {"lel": v}}).to_string())
            .await;
    }
    p.send(&data("g2"), json!({"values": {"lel": 40}}).to_string())
        .await;
    let all = format!("{api}/api/v1/alarms");
    let list = api_wait(&all, OPERATOR, |v| {
        open_alarm(v, "g2").is_some() && open_alarm(v, "g1").is_some_and(|a| a["level"] == 2)
    })
    .await;
    let id = |d: &str| open_alarm(&list, d).unwrap()["id"].as_u64().unwrap();
    let (g1, g2) = (id("g1"), id("g2"));
    clock.advance(Duration::from_secs(20));
    let note = "<b>bold</b> valve closed, area ventilated";
    let r = reqwest::Client::new()
        .post(format!("{api}/api/v1/alarms/{g1}/ack"))
        .bearer_auth(OPERATOR)
        .json(&json!({"by": "op-desk", "note": note}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    clock.advance(Duration::from_secs(10));
    p.send(&data("g1"), json!({"values": {"lel": 1}}).to_string())
        .await;
    let one = format!("{api}/api/v1/alarms/{g1}");
    let g1_view = api_wait(&one, OPERATOR, |v| v["state"] == "cleared_acked").await;
    let kinds: Vec<&str> = g1_view["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["raised", "escalated", "acknowledged", "cleared"]);

    let b = Browser::start(1440, 900).await;
    sign_in(&b, &api, OPERATOR).await;
    b.click("nav button[data-view=alarms]").await;
    // Opened: every alarm, newest first.
    b.wait_js(
        "return document.getElementById('alarm-history').dataset.query === 'limit=201'",
        "the history",
    )
    .await;
    assert_eq!(
        history_is_the_apis(&b, &api, "limit=201", "zh-CN").await,
        [g2, g1]
    );
    // By state: closed (cleared and acknowledged) is g1 alone.
    let q = search_history(&b, "cleared_acked", "", "state=cleared_acked&limit=201").await;
    assert_eq!(history_is_the_apis(&b, &api, &q, "zh-CN").await, [g1]);
    // Open: g2 alone.
    let q = search_history(&b, "open", "", "state=open&limit=201").await;
    assert_eq!(history_is_the_apis(&b, &api, &q, "zh-CN").await, [g2]);
    // By device, every state.
    let q = search_history(&b, "", "g1", "device=g1&limit=201").await;
    assert_eq!(history_is_the_apis(&b, &api, &q, "zh-CN").await, [g1]);
    // By the day g1 was raised (from its midnight to the next, in the browser's zone).
    let raised = g1_view["raised_ms"].as_i64().unwrap();
    let window = b
        .js(&format!(
            "const d = new Date({raised}); \
             const day = d.getFullYear() + '-' + String(d.getMonth() + 1).padStart(2, '0') + \
             '-' + String(d.getDate()).padStart(2, '0'); \
             document.getElementById('h-from').value = day; \
             document.getElementById('h-to').value = day; \
             const from = new Date(d.getFullYear(), d.getMonth(), d.getDate()); \
             const to = new Date(d.getFullYear(), d.getMonth(), d.getDate() + 1); \
             return 'from=' + from.getTime() + '&to=' + to.getTime()"
        ))
        .await;
    let want = format!("{}&limit=201", window.as_str().unwrap());
    let q = search_history(&b, "", "", &want).await;
    assert_eq!(history_is_the_apis(&b, &api, &q, "zh-CN").await, [g2, g1]);
    b.screenshot("console-alarm-history").await;

    // g1's lifecycle from the history: four events in order, who and the note as text.
    b.click(&format!(
        "#alarm-history tr[data-alarm='{g1}'] button.alarm-open"
    ))
    .await;
    let a = lifecycle_is_the_apis(&b, &api, g1, "zh-CN").await;
    assert_eq!(a["events"][2]["by"], "op-desk", "{a}");
    assert_eq!(a["events"][2]["note"], note, "{a}");
    assert_eq!(a["events"][2]["via"], "http:op-desk", "{a}");
    assert_eq!(a["outcome"], "responded", "{a}");
    assert_eq!(b.count("#alarm-dialog b").await, 0, "the note is text");
    b.screenshot("console-alarm-lifecycle").await;
    b.click("#alarm-close").await;
    // g2's from the board: raised only, not acknowledged.
    b.click(&format!("#alarms tr[data-alarm='{g2}'] button.alarm-open"))
        .await;
    let a = lifecycle_is_the_apis(&b, &api, g2, "zh-CN").await;
    assert_eq!(a["events"].as_array().unwrap().len(), 1, "{a}");
    b.click("#alarm-close").await;

    // In English: the same rows with English labels, the lifecycle too, no Chinese left.
    b.click("#lang").await;
    b.wait_text("#h-apply", "English", |t| t == "Search").await;
    history_is_the_apis(&b, &api, &want, "en").await;
    no_chinese(&b, "#view-alarms", "").await;
    b.click(&format!(
        "#alarm-history tr[data-alarm='{g1}'] button.alarm-open"
    ))
    .await;
    lifecycle_is_the_apis(&b, &api, g1, "en").await;
    no_chinese(&b, "#alarm-dialog", "").await;
    b.click("#alarm-close").await;

    let bad: Vec<Value> = b
        .console_log()
        .await
        .into_iter()
        .filter(|e| e["level"] == "SEVERE" || e["level"] == "WARNING")
        .filter(|e| {
            let m = e["message"].as_str().unwrap_or("");
            !(m.contains("/api/v1/whoami") && m.contains("401"))
        })
        .collect();
    assert!(bad.is_empty(), "the page's console: {bad:?}");
    b.close().await;
}
