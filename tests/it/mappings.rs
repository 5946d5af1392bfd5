//! Platforms' own payloads, mapped by configuration alone: the ministry-family envelope over
//! MQTT (through Mosquitto) and over HTTPS (with curl), and a vendor's shape, land the same
//! readings in VictoriaMetrics as the equivalent native messages.

use crate::common::*;
use crate::http_push::{https_settings, token};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::time::Duration;

/// Four parks with the same two detectors: `nat` gets native messages, `mq` the envelope over
/// MQTT, `hp` the envelope over HTTPS, `vd` a vendor's shape over MQTT.
fn inv() -> String {
    let mut inv = Inventory::default();
    for site in ["nat", "mq", "hp", "vd"] {
        inv = inv
            .site(site, site, "park")
            .with("platforms = [\"plat\"]")
            .detectors(&["g1", "g2"], 3600.0);
    }
    inv.to_toml()
}

const MAPPINGS: &str = r#"
[[mappings]]
name = "ministry-mqtt"
preset = "ministry"
topics = ["ministry/+/up"]
site = "{topic:1}"

[[mappings]]
name = "ministry"
preset = "ministry"

# A vendor's own shape: one message per gateway, values as strings, epoch seconds, status codes.
[[mappings]]
name = "acme"
preset = "none"
topics = ["acme/+/telemetry"]
records = "$.points[*]"
site = "{topic:1}"
device = "{$.id}"
time = "msg:$.ts"
time_format = "epoch_s"
status = "$.st"
status_map = { "0" = "normal", "1" = "fault" }
channels = [{ name = "value", path = "$.val" }]

# The envelope, with the site taken from its enterpriseCode rather than from the URL.
[[mappings]]
name = "by-code"
preset = "ministry"
site = "{msg:$.enterpriseCode}"
"#;

/// `yyyy-MM-dd HH:mm:ss` at UTC+8 of epoch ms (whole seconds).
fn beijing(ms: i64) -> String {
    safegate::simulators::loadgen::beijing_time(ms / 1000)
}

fn envelope(t1: i64, t2: i64) -> String {
    let point = |dev: &str, t: i64, v: f64, st: &str| {
        json!({"pointCode": dev, "sensorType": "0001", "pointValue": v, "valueUnit": "%LEL",
               "pointStatus": st, "dataTime": beijing(t)})
    };
    json!({
        "dataId": "x-1", "enterpriseCode": "E01", "gatewayCode": "GW01",
        "collectTime": beijing(t2), "isConnectDataSource": true,
        "reportType": "report", "dataType": "realtime",
        "datas": [point("g1", t1, 12.5, "00000000"), point("g2", t1, 3.0, "0"),
                  point("g1", t2, 13.0, "00000001"), point("g2", t2, 4.5, "00000000")]
    })
    .to_string()
}

/// (device, ts, value, status_code) of one site in the store.
async fn stored(vm: &Victoria, site: &str) -> BTreeSet<(String, i64, String, String)> {
    let mut out = BTreeSet::new();
    let values = vm
        .export(&format!("reading_value{{site=\"{site}\"}}"))
        .await;
    let codes = vm
        .export(&format!("reading_status_code{{site=\"{site}\"}}"))
        .await;
    for s in &values {
        let code = codes
            .iter()
            .find(|c| c.label("device") == s.label("device"))
            .expect("a status_code series beside each value series");
        for (ts, v) in s.timestamps.iter().zip(&s.values) {
            let i = code.timestamps.iter().position(|t| t == ts).unwrap();
            out.insert((
                s.label("device").to_string(),
                *ts,
                format!("{v}"),
                format!("{}", code.values[i]),
            ));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ministry_envelope_and_a_vendor_shape_store_what_native_messages_store() {
    let _load = shared().await;
    let mq = Mosquitto::start();
    let vm = Victoria::start();
    let dir = tempfile::tempdir().unwrap();
    let (settings, ca) = https_settings(&mq.url(), "gw-mappings", Some(&vm.url()), dir.path());
    let settings = settings
        + MAPPINGS
        + &token("plat", "platform", "tok-plat")
        + &token("root", "admin", "tok-admin");
    let cfg = TestConfig::new(&settings, &inv());
    let gw = safegate::runtime::start(cfg.load()).await.unwrap();
    let base = format!("https://127.0.0.1:{}", gw.api_addr.port());
    wait_subscribed(&base, &ca).await;
    let p = Publisher::connect(mq.port, "pub-mappings").await;
    let t1 = (now_ms() / 1000 - 120) * 1000;
    let t2 = t1 + 60_000;

    // Native: the batch topic.
    let native = json!([
        {"device": "g1", "ts": t1, "values": {"value": 12.5}},
        {"device": "g2", "ts": t1, "values": {"value": 3.0}},
        {"device": "g1", "ts": t2, "values": {"value": 13.0}, "status": "fault"},
        {"device": "g2", "ts": t2, "values": {"value": 4.5}},
    ]);
    p.send("safegate/v1/nat/batch", native.to_string()).await;
    // The envelope over MQTT, and over HTTPS with curl.
    p.send("ministry/mq/up", envelope(t1, t2)).await;
    let file = dir.path().join("envelope.json");
    std::fs::write(&file, envelope(t1, t2)).unwrap();
    let out = std::process::Command::new("curl")
        .args(["-sS", "--fail-with-body", "--cacert"])
        .arg(&ca)
        .args(["-H", "Authorization: Bearer tok-plat"])
        .args(["-H", "Content-Type: application/json", "--data-binary"])
        .arg(format!("@{}", file.display()))
        .arg(format!("{base}/api/v1/ingest/hp/ministry"))
        .output()
        .expect("run curl");
    let answer = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "curl: {answer} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let answer: Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(answer["accepted"], 4, "{answer}");
    // A vendor's shape, mapped by configuration alone.
    let vendor = |t: i64, a: &str, b: &str, st: u8| {
        json!({"gw": "G7", "ts": t / 1000, "points": [
            {"id": "g1", "val": a, "st": st}, {"id": "g2", "val": b, "st": 0}]})
        .to_string()
    };
    p.send("acme/vd/telemetry", vendor(t1, "12.5", " 3 ", 0))
        .await;
    p.send("acme/vd/telemetry", vendor(t2, "13.0", "4.5", 1))
        .await;

    let want = {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let s = stored(&vm, "nat").await;
            if s.len() == 4 {
                break s;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "native readings: {s:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    assert!(
        want.iter()
            .any(|(d, t, _, code)| d == "g1" && *t == t2 && code != "0"),
        "the native fault is stored with its status: {want:?}"
    );
    for site in ["mq", "hp", "vd"] {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let got = stored(&vm, site).await;
            if got == want {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "site {site} stores {got:?}, native stores {want:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    let (_, rej) = get_with(&base, &ca, "/api/v1/rejections").await;
    assert_eq!(rej["recent"], json!([]), "nothing was refused: {rej}");

    // A bad record is reported with its index, the mapping and the path; the others stored.
    let c = crate::http_push::https_client(&ca);
    let mut env: Value = serde_json::from_str(&envelope(t1 + 1_000, t2 + 1_000)).unwrap();
    env["datas"][1]["pointValue"] = json!("abc");
    env["datas"][2]["pointCode"] = json!("zz");
    let url = format!("{base}/api/v1/ingest/hp/ministry");
    let (code, v) = crate::http_push::post(&c, &url, "tok-plat", env.to_string()).await;
    assert_eq!((code, &v["accepted"]), (207, &json!(2)), "{v}");
    let refused = v["refused"].as_array().unwrap();
    assert_eq!(refused.len(), 2, "{v}");
    assert_eq!(
        (&refused[0]["element"], &refused[0]["reason"]),
        (&json!(1), &json!("invalid_value"))
    );
    let detail = refused[0]["detail"].as_str().unwrap();
    assert!(
        detail.contains("ministry") && detail.contains("$.pointValue"),
        "{detail}"
    );
    assert_eq!(
        (&refused[1]["element"], &refused[1]["reason"]),
        (&json!(2), &json!("unknown_device"))
    );
    // Records naming another site than the URL's are refused: a push speaks for one site.
    env["enterpriseCode"] = json!("mq");
    let url = format!("{base}/api/v1/ingest/hp/by-code");
    let (code, v) = crate::http_push::post(&c, &url, "tok-plat", env.to_string()).await;
    assert_eq!(code, 422, "{v}");
    let reasons: Vec<&str> = v["refused"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["reason"].as_str().unwrap())
        .collect();
    let want = ["wrong_site", "invalid_value", "wrong_site", "wrong_site"];
    assert_eq!(reasons, want, "{v}");
    let url = format!("{base}/api/v1/ingest/hp/nope");
    let (code, _) = crate::http_push::post(&c, &url, "tok-plat", env.to_string()).await;
    assert_eq!(code, 404, "an unknown mapping");
    let r = c
        .get(format!("{base}/metrics"))
        .bearer_auth("tok-admin")
        .send()
        .await
        .unwrap();
    let m = r.text().await.unwrap();
    let key = "safegate_mapping_refused_total{mapping=\"ministry\",reason=\"invalid_value\"}";
    assert_eq!(metric(&m, key), Some(1.0), "{key}");
    let key = "safegate_mapping_records_total{mapping=\"acme\",outcome=\"mapped\"}";
    assert_eq!(metric(&m, key), Some(4.0), "{key}");
    gw.stop().await;
}

/// GET over HTTPS with the test CA and the admin token.
async fn get_with(base: &str, ca: &std::path::Path, path: &str) -> (u16, Value) {
    let c = crate::http_push::https_client(ca);
    let r = c
        .get(format!("{base}{path}"))
        .bearer_auth("tok-admin")
        .send()
        .await
        .unwrap();
    let code = r.status().as_u16();
    (code, r.json().await.unwrap_or(Value::Null))
}

/// Until the gateway is subscribed (its own topics and the mappings'), as `/readyz` says.
async fn wait_subscribed(base: &str, ca: &std::path::Path) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (_, v) = get_with(base, ca, "/readyz").await;
        if v["mqtt"]["connected"] == true {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "not subscribed: {v}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A site that requires signatures holds pushes and mapped MQTT messages to it: the envelope
/// `{"payload", "signature"}` with its key is taken, unsigned or forged is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_pushes_and_signed_mapped_messages_are_held_to_the_site_key() {
    use safegate::sources::mqtt::signature::sign;
    let _load = shared().await;
    std::env::set_var("SAFEGATE_TEST_KEY_MAPPED", "key-of-the-signed-park");
    let key = b"key-of-the-signed-park".as_slice();
    let mq = Mosquitto::start();
    let inv = Inventory::default()
        .site("sg", "Signed park", "park")
        .with("require_signature = true")
        .with("signing_key_env = \"SAFEGATE_TEST_KEY_MAPPED\"")
        .detectors(&["g1", "g2"], 3600.0)
        .to_toml();
    // Over HTTP the site is the URL's; over MQTT a topic level.
    let mapping = "[[mappings]]\nname = \"ministry\"\npreset = \"ministry\"\n\n[[mappings]]\nname = \"ministry-mqtt\"\npreset = \"ministry\"\ntopics = [\"ministry/+/up\"]\nsite = \"{topic:1}\"\n";
    let cfg = TestConfig::new(&(settings(&mq.url(), "gw-map-sign", None) + mapping), &inv);
    let (gw, api) = start_ready(&cfg).await;
    let signed = |inner: &str, k: &[u8]| {
        format!(
            r#"{{"payload": {inner}, "signature": "{}"}}"#,
            sign(k, inner.as_bytes())
        )
    };
    let t = (now_ms() / 1000 - 60) * 1000;
    let env = envelope(t, t + 1_000);
    let native = json!([{"device": "g1", "ts": t + 5_000, "values": {"value": 1.0}}]).to_string();
    let c = reqwest::Client::new();
    let push = |path: &str, body: String| {
        let url = format!("{api}/api/v1/ingest/sg{path}");
        let c = c.clone();
        async move {
            let r = c.post(url).body(body).send().await.unwrap();
            let code = r.status().as_u16();
            (code, r.json::<Value>().await.unwrap())
        }
    };
    // HTTP: signed with the site's key is taken; unsigned and forged are refused whole.
    let (code, v) = push("", signed(&native, key)).await;
    assert_eq!((code, &v["accepted"]), (200, &json!(1)), "{v}");
    let (code, v) = push("/ministry", signed(&env, key)).await;
    assert_eq!((code, &v["accepted"]), (200, &json!(4)), "{v}");
    let (code, v) = push("/ministry", env.clone()).await;
    assert_eq!(
        (code, &v["error"]["code"]),
        (400, &json!("missing_signature")),
        "{v}"
    );
    let (code, v) = push("", signed(&native, b"another key")).await;
    assert_eq!(
        (code, &v["error"]["code"]),
        (400, &json!("bad_signature")),
        "{v}"
    );
    // MQTT on a mapped topic: each mapped reading is held to its site's rule.
    let p = Publisher::connect(mq.port, "pub-map-sign").await;
    p.send("ministry/sg/up", envelope(t + 10_000, t + 11_000))
        .await;
    p.send(
        "ministry/sg/up",
        signed(&envelope(t + 20_000, t + 21_000), b"forged"),
    )
    .await;
    p.send(
        "ministry/sg/up",
        signed(&envelope(t + 30_000, t + 31_000), key),
    )
    .await;
    let rej = wait_json(
        &format!("{api}/api/v1/rejections"),
        Duration::from_secs(20),
        |v| v["counts"]["missing_signature"] == 5 && v["counts"]["bad_signature"] == 5,
    )
    .await;
    assert!(
        rej["recent"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["topic"] == "ministry/sg/up" && r["element"] == 3),
        "mapped refusals name the topic and the record: {rej}"
    );
    // The signed envelope's readings arrive: the devices have been seen at its times.
    let want = safegate::model::rfc3339_ms(t + 31_000);
    wait_json(
        &format!("{api}/api/v1/devices?site=sg"),
        Duration::from_secs(20),
        |v| v.to_string().contains(&want[..19]),
    )
    .await;
    gw.stop().await;
}
