//! HTTP(S) push (`POST /api/v1/ingest/{site}`): who may push for which site, what each answer
//! says, and that what was answered 200 is in the store, also across a `kill -9`.

use crate::common::*;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::path::Path;
use std::time::Duration;

/// p1 (pushed by plat-a) with g1 and g2, p2 (pushed by plat-b) with g3.
fn inv() -> String {
    Inventory::default()
        .site("p1", "Park one", "park")
        .with("platforms = [\"plat-a\"]")
        .detectors(&["g1", "g2"], 60.0)
        .site("p2", "Park two", "park")
        .with("platforms = [\"plat-b\"]")
        .detector("g3", 60.0)
        .to_toml()
}

pub fn token(name: &str, role: &str, secret: &str) -> String {
    format!(
        "[[tokens]]\nname = \"{name}\"\nrole = \"{role}\"\nsha256 = \"{}\"\n\n",
        hex::encode(Sha256::digest(secret.as_bytes()))
    )
}

/// A self-signed certificate for 127.0.0.1 in `dir`, and the `[api]` lines that serve it.
pub fn tls(dir: &Path) -> (String, std::path::PathBuf) {
    let cert =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string(), "localhost".to_string()])
            .unwrap();
    let (c, k) = (dir.join("api.crt"), dir.join("api.key"));
    std::fs::write(&c, cert.cert.pem()).unwrap();
    std::fs::write(&k, cert.key_pair.serialize_pem()).unwrap();
    let api = format!(
        "tls_cert_file = \"{}\"\ntls_key_file = \"{}\"\n",
        c.display(),
        k.display()
    );
    (api, c)
}

/// Settings for a gateway on `mq` (and `store`) whose API serves HTTPS with a certificate
/// made in `dir`; and that certificate, for the clients to trust.
pub fn https_settings(
    mq: &str,
    client_id: &str,
    store: Option<&str>,
    dir: &Path,
) -> (String, std::path::PathBuf) {
    let (tls_lines, ca) = tls(dir);
    let s = settings(mq, client_id, store).replace("[api]\n", &format!("[api]\n{tls_lines}"));
    (s, ca)
}

pub fn https_client(ca: &Path) -> reqwest::Client {
    let pem = std::fs::read(ca).unwrap();
    reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
        .build()
        .unwrap()
}

pub async fn post(c: &reqwest::Client, url: &str, tok: &str, body: String) -> (u16, Value) {
    let r = c
        .post(url)
        .bearer_auth(tok)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("push request");
    let code = r.status().as_u16();
    let text = r.text().await.unwrap();
    (
        code,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn reading(dev: &str, ts: i64, v: f64) -> Value {
    json!({"device": dev, "ts": ts, "values": {"lel": v}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_platform_pushes_for_its_own_sites_and_each_answer_says_what_was_stored() {
    let _load = shared().await;
    let mq = Mosquitto::start();
    let vm = Victoria::start();
    let dir = tempfile::tempdir().unwrap();
    let (settings, ca) = https_settings(&mq.url(), "gw-push", Some(&vm.url()), dir.path());
    let settings = settings
        + "[ingest]\nmax_body_bytes = 131072\n\n"
        + &token("plat-a", "platform", "tok-a")
        + &token("plat-b", "platform", "tok-b")
        + &token("desk", "viewer", "tok-view")
        + &token("root", "admin", "tok-admin");
    let cfg = TestConfig::new(&settings, &inv());
    let gw = safegate::runtime::start(cfg.load()).await.unwrap();
    let base = format!("https://127.0.0.1:{}", gw.api_addr.port());
    let c = https_client(&ca);
    let (p1, p2) = (
        format!("{base}/api/v1/ingest/p1"),
        format!("{base}/api/v1/ingest/p2"),
    );
    let t0 = now_ms() - 60_000;

    // Its own site: stored, then answered.
    let batch = json!([reading("g1", t0, 1.0), reading("g2", t0, 2.0)]).to_string();
    let (code, v) = post(&c, &p1, "tok-a", batch.clone()).await;
    assert_eq!((code, &v["accepted"]), (200, &json!(2)), "{v}");
    assert_eq!(v["refused"], json!([]));

    // Another platform's site, a reading role, and an unknown site: nothing is taken.
    let (code, v) = post(
        &c,
        &p2,
        "tok-a",
        json!([reading("g3", t0, 9.0)]).to_string(),
    )
    .await;
    assert_eq!(code, 403, "{v}");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("plat-a"),
        "{v}"
    );
    let (code, v) = post(&c, &p1, "tok-view", batch.clone()).await;
    assert_eq!(code, 403, "a viewer may not push: {v}");
    let (code, _) = post(&c, &format!("{base}/api/v1/ingest/p9"), "tok-admin", batch).await;
    assert_eq!(code, 404);
    // plat-b may push for p2; an admin for any site.
    let (code, v) = post(
        &c,
        &p2,
        "tok-b",
        json!([reading("g3", t0, 3.0)]).to_string(),
    )
    .await;
    assert_eq!(code, 200, "{v}");
    let (code, _) = post(
        &c,
        &p1,
        "tok-admin",
        json!([reading("g1", t0 + 1_000, 4.0)]).to_string(),
    )
    .await;
    assert_eq!(code, 200);

    // Bad elements are listed with their index; the others are stored.
    let mixed = json!([
        reading("g1", t0 + 2_000, 5.0),
        {"device": "g2", "ts": t0 + 2_000, "values": {"lel": "high"}},
        reading("nope", t0 + 2_000, 6.0),
        reading("g2", t0 + 3_000, 7.0),
    ]);
    let (code, v) = post(&c, &p1, "tok-a", mixed.to_string()).await;
    assert_eq!(code, 207, "{v}");
    assert_eq!(v["accepted"], 2, "{v}");
    let refused: Vec<(i64, &str)> = v["refused"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["element"].as_i64().unwrap(),
                r["reason"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        refused,
        vec![(1, "invalid_value"), (2, "unknown_device")],
        "{v}"
    );
    // Every element refused: 422; not a batch at all: 400.
    let (code, v) = post(
        &c,
        &p1,
        "tok-a",
        json!([reading("nope", t0, 1.0)]).to_string(),
    )
    .await;
    assert_eq!((code, &v["accepted"]), (422, &json!(0)), "{v}");
    let (code, v) = post(&c, &p1, "tok-a", "{not json".into()).await;
    assert_eq!(code, 400, "{v}");
    assert_eq!(v["error"]["code"], "malformed_json", "{v}");

    // The push limit, not the API's 64 KiB: 1,200 readings (~80 KB) pass, 160 KB do not.
    let big: Vec<Value> = (0..1_200)
        .map(|i| reading(if i % 2 == 0 { "g1" } else { "g2" }, t0 + 10_000 + i, 1.0))
        .collect();
    let body = serde_json::to_string(&big).unwrap();
    assert!(
        body.len() > 65_536 && body.len() < 131_072,
        "{}",
        body.len()
    );
    let (code, v) = post(&c, &p1, "tok-a", body).await;
    assert_eq!((code, &v["accepted"]), (200, &json!(1_200)), "{v}");
    let (code, v) = post(&c, &p1, "tok-a", format!("[{}]", " ".repeat(160_000))).await;
    assert_eq!(code, 413, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("ingest.max_body_bytes"),
        "{v}"
    );

    // An independent client: curl over HTTPS with the CA, a body from a file.
    let file = dir.path().join("push.json");
    std::fs::write(&file, json!([reading("g2", t0 + 4_000, 8.0)]).to_string()).unwrap();
    let out = std::process::Command::new("curl")
        .args(["-sS", "--fail-with-body", "--cacert"])
        .arg(&ca)
        .args([
            "-H",
            "Authorization: Bearer tok-a",
            "-H",
            "Content-Type: application/json",
        ])
        .arg("--data-binary")
        .arg(format!("@{}", file.display()))
        .arg(&p1)
        .output()
        .expect("run curl");
    assert!(
        out.status.success(),
        "curl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["accepted"], 1, "{v}");

    // What was answered is in the store, and nothing else.
    let g1: Vec<i64> = [t0, t0 + 1_000, t0 + 2_000]
        .into_iter()
        .chain((0..1_200).filter(|i| i % 2 == 0).map(|i| t0 + 10_000 + i))
        .collect();
    let g2: Vec<i64> = [t0, t0 + 3_000, t0 + 4_000]
        .into_iter()
        .chain((0..1_200).filter(|i| i % 2 == 1).map(|i| t0 + 10_000 + i))
        .collect();
    for (dev, want) in [("g1", g1), ("g2", g2), ("g3", vec![t0])] {
        let sel = format!("{{__name__=\"reading_lel\",device=\"{dev}\"}}");
        let s = vm
            .wait_for(&sel, Duration::from_secs(20), |s| {
                s.first().is_some_and(|x| x.timestamps.len() >= want.len())
            })
            .await;
        let mut got = s[0].timestamps.clone();
        got.sort();
        let mut want = want.clone();
        want.sort();
        assert_eq!(got, want, "{dev}");
    }
    let r = c
        .get(format!("{base}/metrics"))
        .bearer_auth("tok-admin")
        .send()
        .await
        .unwrap();
    let m = r.text().await.unwrap();
    for (outcome, n) in [
        ("committed", 5.0),
        ("partial", 1.0),
        ("refused", 2.0),
        ("forbidden", 1.0),
        ("unknown_site", 1.0),
    ] {
        let key = format!("safegate_ingest_requests_total{{outcome=\"{outcome}\"}}");
        assert_eq!(metric(&m, &key), Some(n), "{key}");
    }
    gw.stop().await;
}

/// A pushing task; it returns the `(device, ts)` of the readings answered 200.
type Pusher = tokio::task::JoinHandle<Vec<(String, i64)>>;

/// Push batches from `workers` tasks until `requests` were answered 200 in all; returns the
/// `(device, ts)` of every reading in a 200 answer, and the running count of those answers.
fn pushers(
    url: String,
    workers: usize,
    requests: usize,
) -> (std::sync::Arc<std::sync::atomic::AtomicUsize>, Vec<Pusher>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let ok = std::sync::Arc::new(AtomicUsize::new(0));
    let ts0 = now_ms() - 3_600_000;
    let tasks = (0..workers)
        .map(|w| {
            let (url, ok) = (url.clone(), ok.clone());
            tokio::spawn(async move {
                let c = reqwest::Client::new();
                let mut stored = Vec::new();
                let mut seq = 0i64;
                while ok.load(Ordering::Relaxed) < requests {
                    // Each worker writes its own devices' times: no two requests share a point.
                    let items: Vec<(String, i64)> = (0..50)
                        .map(|i| (format!("d{}", i % 10), ts0 + (seq * 50 + i) * 10 + w as i64))
                        .collect();
                    seq += 1;
                    let body: Vec<Value> =
                        items.iter().map(|(d, ts)| reading(d, *ts, 1.0)).collect();
                    let sent = c.post(&url).json(&body).send().await;
                    match sent {
                        Ok(r) if r.status().as_u16() == 200 => {
                            stored.extend(items);
                            ok.fetch_add(1, Ordering::Relaxed);
                        }
                        // Killed mid-request, restarting, or 503 while it drains: push again
                        // later; whether it was stored is not known, so it is not counted.
                        _ => tokio::time::sleep(Duration::from_millis(20)).await,
                    }
                }
                stored
            })
        })
        .collect();
    (ok, tasks)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_pushes_loses_no_request_that_was_answered_200() {
    use std::collections::{BTreeMap, BTreeSet};
    use std::sync::atomic::Ordering;
    let _load = shared().await;
    let mq = Mosquitto::start();
    let vm = Victoria::start();
    let api_port = free_port();
    let ids: Vec<String> = (0..10).map(|i| format!("d{i}")).collect();
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    let cfg = TestConfig::new(
        &settings(&mq.url(), "gw-push-kill", Some(&vm.url())).replace(
            "listen = \"127.0.0.1:0\"",
            &format!("listen = \"127.0.0.1:{api_port}\""),
        ),
        &Inventory::park("p1").detectors(&ids, 3600.0).to_toml(),
    );
    let mut gw = GatewayProc::new(&cfg, api_port);
    gw.start_ready().await;
    let (ok, tasks) = pushers(format!("{}/api/v1/ingest/p1", gw.api), 4, 600);
    for at in [150, 350] {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while ok.load(Ordering::Relaxed) < at {
            assert!(
                std::time::Instant::now() < deadline,
                "pushes stalled:\n{}",
                gw.log()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        gw.kill9();
        eprintln!(
            "SIGKILL after {} answered pushes",
            ok.load(Ordering::Relaxed)
        );
        gw.start_ready().await;
    }
    let mut want: BTreeMap<String, BTreeSet<i64>> = BTreeMap::new();
    for t in tasks {
        for (d, ts) in t.await.unwrap() {
            want.entry(d).or_default().insert(ts);
        }
    }
    let answered: usize = want.values().map(BTreeSet::len).sum();
    assert!(answered >= 600 * 50, "{answered}");
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        let mut got: BTreeMap<String, BTreeSet<i64>> = BTreeMap::new();
        for s in vm.export("reading_lel{site=\"p1\"}").await {
            got.entry(s.label("device").to_string())
                .or_default()
                .extend(s.timestamps.iter().copied());
        }
        let missing: usize = want
            .iter()
            .map(|(d, ts)| {
                ts.difference(got.get(d).unwrap_or(&BTreeSet::new()))
                    .count()
            })
            .sum();
        if missing == 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{missing} of {answered} readings answered 200 are not in the store"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_outbox_answers_503_with_retry_after_and_takes_pushes_again_once_drained() {
    let _load = shared().await;
    let mq = Mosquitto::start();
    let mut vm = Victoria::start();
    vm.stop();
    let cfg = TestConfig::new(
        &(settings(&mq.url(), "gw-push-full", Some(&vm.url()))
            + "[outbox]\nmax_bytes = 16384\ncommit_interval_ms = 20\n\n[ingest]\ncommit_timeout_s = 2\n\n"),
        &Inventory::park("p1").detectors(&["g1", "g2"], 3600.0).to_toml(),
    );
    let gw = safegate::runtime::start(cfg.load()).await.unwrap();
    let api = format!("http://{}", gw.api_addr);
    let c = reqwest::Client::new();
    let t0 = now_ms() - 3_600_000;
    let mut answered: Vec<i64> = Vec::new();
    let mut refused = None;
    // The store is down: the outbox fills its 16 KiB budget within a few dozen pushes.
    for n in 0..500i64 {
        let items: Vec<Value> = (0..20)
            .map(|i| reading("g1", t0 + n * 20 + i, 1.0))
            .collect();
        let r = c
            .post(format!("{api}/api/v1/ingest/p1"))
            .json(&items)
            .send()
            .await
            .unwrap();
        match r.status().as_u16() {
            200 => answered.extend((0..20).map(|i| t0 + n * 20 + i)),
            503 => {
                let retry = r.headers().get("retry-after").cloned();
                refused = Some((retry, r.json::<Value>().await.unwrap()));
                break;
            }
            other => panic!("push {n}: {other} {}", r.text().await.unwrap()),
        }
    }
    let (retry, body) = refused.expect("a full outbox refuses pushes");
    assert!(retry.is_some(), "503 says when to retry: {body}");
    let msg = body["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("holding") || msg.contains("not committed"),
        "{msg}"
    );
    let (_, h) = get(&format!("{api}/healthz")).await;
    assert_eq!(h["outbox"]["state"], "full", "{h}");

    // The store returns: the backlog drains and pushes are taken again.
    vm.start_again();
    wait_json(&format!("{api}/healthz"), Duration::from_secs(60), |v| {
        v["outbox"]["state"] == "ok"
    })
    .await;
    let last = now_ms() - 1_000;
    let (code, v) = post(
        &c,
        &format!("{api}/api/v1/ingest/p1"),
        "-",
        json!([reading("g1", last, 2.0)]).to_string(),
    )
    .await;
    assert_eq!(code, 200, "{v}");
    answered.push(last);
    let s = vm
        .wait_for("reading_lel{device=\"g1\"}", Duration::from_secs(30), |s| {
            s.first()
                .is_some_and(|x| x.timestamps.len() >= answered.len())
        })
        .await;
    let stored: std::collections::BTreeSet<i64> = s[0].timestamps.iter().copied().collect();
    assert!(
        answered.iter().all(|t| stored.contains(t)),
        "every push answered 200 is stored"
    );
    gw.stop().await;
}
