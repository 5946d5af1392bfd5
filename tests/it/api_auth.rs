//! Tokens and roles on the API: every endpoint with no token, a bad token and each role.

use crate::common::*;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::time::Duration;

const ROLES: [(&str, &str); 6] = [
    ("scrape", "tok-scrape-1"),
    ("platform", "tok-platform-1"),
    ("viewer", "tok-viewer-1"),
    ("operator", "tok-operator-1"),
    ("evaluator", "tok-evaluator-1"),
    ("admin", "tok-admin-1"),
];

fn tokens_toml() -> String {
    ROLES
        .iter()
        .map(|(role, tok)| {
            format!(
                "[[tokens]]\nname = \"{role}-desk\"\nrole = \"{role}\"\nsha256 = \"{}\"\n\n",
                hex::encode(Sha256::digest(tok.as_bytes()))
            )
        })
        .collect()
}

/// Park p1 with one detector, g1; its platform pushes with the platform token.
fn inv() -> String {
    Inventory::park("p1")
        .with("platforms = [\"platform-desk\"]")
        .detector("g1", 60.0)
        .to_toml()
}

async fn call(method: &str, url: &str, token: Option<&str>) -> (u16, Value, Option<String>) {
    let c = reqwest::Client::new();
    let mut r = match method {
        "POST" => c.post(url).json(&json!({"by": "tester"})),
        _ => c.get(url),
    };
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    let resp = r.send().await.expect("HTTP request");
    let code = resp.status().as_u16();
    let www = resp
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_string());
    // The live feed streams until the gateway stops: its status is enough.
    let stream = resp
        .headers()
        .get("content-type")
        .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
    let text = match stream {
        true => String::new(),
        false => resp.text().await.unwrap(),
    };
    (
        code,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
        www,
    )
}

fn rank(role: &str) -> u8 {
    match role {
        "viewer" => 1,
        "operator" => 2,
        "evaluator" => 3,
        "admin" => 4,
        _ => 0,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_endpoint_with_no_token_a_bad_token_and_each_role() {
    let _load = shared().await;
    let mq = Mosquitto::start();
    let cfg = TestConfig::new(
        &format!("{}{}", settings(&mq.url(), "gw-auth", None), tokens_toml()),
        &inv(),
    );
    let gw = safegate::runtime::start(cfg.load()).await.unwrap();
    let api = format!("http://{}", gw.api_addr);

    // (method, path, what it needs): "open", "metrics" (admin or scrape), or a minimum role.
    let matrix = [
        ("GET", "/", "open"),
        ("GET", "/console/app.js", "open"),
        ("GET", "/healthz", "open"),
        ("GET", "/readyz", "open"),
        ("GET", "/api/v1/openapi.json", "open"),
        ("GET", "/metrics", "metrics"),
        ("GET", "/api/v1/overview", "viewer"),
        ("GET", "/api/v1/sites", "viewer"),
        ("GET", "/api/v1/sites/p1", "viewer"),
        ("GET", "/api/v1/sites/p1/zones", "viewer"),
        ("GET", "/api/v1/sites/p1/systems", "viewer"),
        ("GET", "/api/v1/devices", "viewer"),
        ("GET", "/api/v1/devices/p1/g1/history", "viewer"),
        ("GET", "/api/v1/endpoints", "viewer"),
        ("GET", "/api/v1/mines", "viewer"),
        ("GET", "/api/v1/mines/150621011038", "viewer"),
        ("GET", "/api/v1/alarms", "viewer"),
        ("GET", "/api/v1/alarms/1", "viewer"),
        ("POST", "/api/v1/alarms/1/ack", "operator"),
        ("GET", "/api/v1/indicators", "evaluator"),
        ("GET", "/api/v1/report", "evaluator"),
        ("GET", "/api/v1/rejections", "admin"),
        ("GET", "/api/v1/config", "admin"),
        ("POST", "/api/v1/config/reload", "admin"),
        ("GET", "/api/v1/outbox", "admin"),
        ("GET", "/api/v1/whoami", "viewer"),
        ("GET", "/api/v1/events", "viewer"),
        ("POST", "/api/v1/ingest/p1", "ingest"),
        ("POST", "/api/v1/ingest/p1/m", "ingest"),
    ];
    // Every route the router serves is in the matrix (a new endpoint must be added here).
    let routes = concat!(
        include_str!("../../src/api/routes.rs"),
        include_str!("../../src/api/ingest.rs")
    );
    for line in routes
        .lines()
        .filter(|l| l.trim_start().starts_with(".route(\""))
    {
        let path = line.split('"').nth(1).unwrap().replace("{id}", "X");
        let path = path
            .replace("{site}", "X")
            .replace("{mapping}", "X")
            .replace("{code}", "X")
            .replace("{*path}", "X");
        let method = if line.contains("post(") {
            "POST"
        } else {
            "GET"
        };
        assert!(
            matrix.iter().any(|(m, p, _)| *m == method
                && p.split('/').count() == path.split('/').count()
                && p.split('/')
                    .zip(path.split('/'))
                    .all(|(a, b)| a == b || b == "X")),
            "{method} {path} is served but not in the role matrix"
        );
    }
    let mut refused = 0;
    for (method, path, need) in matrix {
        let url = format!("{api}{path}");
        let (code, body, www) = call(method, &url, None).await;
        if need == "open" {
            assert!(code == 200 || code == 503, "{path} is open: {code} {body}");
        } else {
            assert_eq!(code, 401, "{path} without a token: {body}");
            assert_eq!(body["error"]["code"], "unauthorized", "{body}");
            assert_eq!(www.as_deref(), Some("Bearer"));
            let (code, body, _) = call(method, &url, Some("not-a-token")).await;
            assert_eq!(code, 401, "{path} with a bad token: {body}");
            refused += 2;
        }
        for (role, tok) in ROLES {
            let ok = match need {
                "open" => true,
                "metrics" => role == "admin" || role == "scrape",
                "ingest" => role == "admin" || role == "platform",
                min => rank(role) >= rank(min),
            };
            let (code, body, _) = call(method, &url, Some(tok)).await;
            if ok {
                assert!(
                    code != 401 && code != 403,
                    "{role} may {method} {path}: got {code} {body}"
                );
            } else {
                assert_eq!(code, 403, "{role} may not {method} {path}: {body}");
                assert_eq!(body["error"]["code"], "forbidden");
                let msg = body["error"]["message"].as_str().unwrap();
                assert!(msg.contains(&format!("role {role}")), "{msg}");
                refused += 1;
            }
        }
    }
    // The configuration as admins see it: no secrets, tokens by name and role.
    let (_, cfgv, _) = call("GET", &format!("{api}/api/v1/config"), Some("tok-admin-1")).await;
    assert_eq!(cfgv["tokens"].as_array().unwrap().len(), 6, "{cfgv}");
    assert!(
        cfgv["summary"].as_str().unwrap().contains("devices: 1"),
        "{cfgv}"
    );
    for (_, tok) in ROLES {
        let hash = hex::encode(Sha256::digest(tok.as_bytes()));
        assert!(!cfgv.to_string().contains(&hash), "no token hash in {cfgv}");
    }
    // Refusals are counted by reason.
    let (_, text, _) = call("GET", &format!("{api}/metrics"), Some("tok-admin-1")).await;
    let text = text.as_str().unwrap().to_string();
    let sum: f64 = ["missing_token", "invalid_token", "wrong_role"]
        .iter()
        .filter_map(|r| {
            metric(
                &text,
                &format!("safegate_api_refused_total{{reason=\"{r}\"}}"),
            )
        })
        .sum();
    assert_eq!(sum, refused as f64, "{text}");

    // An operator's acknowledgement records the token's name.
    let p = Publisher::connect(mq.port, "pub-auth").await;
    let ready = |v: &Value| v["mqtt"]["connected"] == true;
    wait_json(&format!("{api}/readyz"), Duration::from_secs(20), ready).await;
    p.send("safegate/v1/p1/g1/data", r#"{"values":{"lel":30}}"#)
        .await;
    let list_url = format!("{api}/api/v1/alarms");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let id = loop {
        let (_, v, _) = call("GET", &list_url, Some("tok-viewer-1")).await;
        if let Some(id) = v["alarms"][0]["id"].as_u64() {
            break id;
        }
        assert!(tokio::time::Instant::now() < deadline, "no alarm: {v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let (code, body, _) = call(
        "POST",
        &format!("{api}/api/v1/alarms/{id}/ack"),
        Some("tok-operator-1"),
    )
    .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["alarm"]["acknowledged_via"], "http:operator-desk");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_tokens_the_api_is_refused_off_loopback() {
    let _load = shared().await;
    let cfg = TestConfig::new(
        "[mqtt]\nurl = \"mqtt://127.0.0.1:1\"\n\n[api]\nlisten = \"0.0.0.0:0\"\n",
        &inv(),
    );
    let err = match safegate::runtime::start(cfg.load()).await {
        Ok(gw) => {
            gw.stop().await;
            panic!("an open API on 0.0.0.0 must be refused");
        }
        Err(e) => e.to_string(),
    };
    assert!(
        err.contains("refusing to serve the API on 0.0.0.0:0 without [[tokens]]"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_rate_per_token_and_body_size_are_bounded() {
    let _load = shared().await;
    let cfg = TestConfig::new(
        &format!(
            "[mqtt]\nurl = \"mqtt://127.0.0.1:1\"\n\n[api]\nlisten = \"127.0.0.1:0\"\nrate_limit_per_s = 1\nrate_limit_burst = 5\nmax_body_bytes = 4096\n\n{}",
            tokens_toml()
        ),
        &inv(),
    );
    let gw = safegate::runtime::start(cfg.load()).await.unwrap();
    let api = format!("http://{}", gw.api_addr);
    let url = format!("{api}/api/v1/sites");
    let mut codes = Vec::new();
    for _ in 0..10 {
        codes.push(call("GET", &url, Some("tok-viewer-1")).await.0);
    }
    assert!(
        codes[..5].iter().all(|c| *c == 200),
        "the burst passes: {codes:?}"
    );
    let limited = codes.iter().filter(|c| **c == 429).count();
    assert!(limited >= 4, "beyond the burst, 1/s: {codes:?}");
    let r = reqwest::Client::new()
        .get(&url)
        .bearer_auth("tok-viewer-1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 429);
    assert_eq!(r.headers()["retry-after"], "1");
    // Another token has its own budget.
    assert_eq!(call("GET", &url, Some("tok-admin-1")).await.0, 200);

    // A body over api.max_body_bytes: 413, and the gateway keeps serving.
    let big = json!({"by": "op", "note": "x".repeat(10_000)});
    let r = reqwest::Client::new()
        .post(format!("{api}/api/v1/alarms/1/ack"))
        .bearer_auth("tok-operator-1")
        .json(&big)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 413);
    let body: Value = r.json().await.unwrap_or(Value::Null);
    assert_eq!(body["error"]["code"], "payload_too_large", "{body}");
    assert_eq!(call("GET", &format!("{api}/healthz"), None).await.0, 200);
    gw.stop().await;
}

async fn preflight(url: &str, origin: &str) -> (u16, Option<String>) {
    let r = reqwest::Client::new()
        .request(reqwest::Method::OPTIONS, url)
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "authorization")
        .send()
        .await
        .unwrap();
    let allow = r
        .headers()
        .get("access-control-allow-origin")
        .map(|v| v.to_str().unwrap().to_string());
    (r.status().as_u16(), allow)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_is_closed_unless_an_origin_is_configured() {
    let _load = shared().await;
    for (extra, allowed) in [
        ("", false),
        ("cors_origins = [\"https://ops.example.org\"]\n", true),
    ] {
        let cfg = TestConfig::new(
            &format!(
                "[mqtt]\nurl = \"mqtt://127.0.0.1:1\"\n\n[api]\nlisten = \"127.0.0.1:0\"\n{extra}\n{}",
                tokens_toml()
            ),
            &inv(),
        );
        let gw = safegate::runtime::start(cfg.load()).await.unwrap();
        let url = format!("http://{}/api/v1/alarms/1/ack", gw.api_addr);
        let (_, allow) = preflight(&url, "https://ops.example.org").await;
        if allowed {
            assert_eq!(allow.as_deref(), Some("https://ops.example.org"));
        } else {
            assert_eq!(allow, None, "closed by default");
        }
        // Another origin is never allowed.
        let (_, other) = preflight(&url, "https://evil.example.com").await;
        assert_eq!(other, None);
        // A simple cross-origin GET gets no allow header either (the browser withholds it).
        let r = reqwest::Client::new()
            .get(format!("http://{}/api/v1/sites", gw.api_addr))
            .bearer_auth("tok-viewer-1")
            .header("origin", "https://evil.example.com")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
        assert!(r.headers().get("access-control-allow-origin").is_none());
        gw.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_serves_https_with_the_configured_certificate() {
    let _load = shared().await;
    let cert =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string(), "localhost".to_string()])
            .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (cert_path, key_path) = (dir.path().join("api.crt"), dir.path().join("api.key"));
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.key_pair.serialize_pem()).unwrap();
    let cfg = TestConfig::new(
        &format!(
            "[mqtt]\nurl = \"mqtt://127.0.0.1:1\"\n\n[api]\nlisten = \"127.0.0.1:0\"\ntls_cert_file = \"{}\"\ntls_key_file = \"{}\"\n\n{}",
            cert_path.display(),
            key_path.display(),
            tokens_toml()
        ),
        &inv(),
    );
    let gw = safegate::runtime::start(cfg.load()).await.unwrap();
    let port = gw.api_addr.port();
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(cert.cert.pem().as_bytes()).unwrap())
        .build()
        .unwrap();
    let r = client
        .get(format!("https://127.0.0.1:{port}/api/v1/sites"))
        .bearer_auth("tok-viewer-1")
        .send()
        .await
        .expect("HTTPS with the configured certificate");
    assert_eq!(r.status().as_u16(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["sites"][0]["id"], "p1");
    // Plain HTTP on the TLS port gets no API answer.
    let plain = reqwest::get(format!("http://127.0.0.1:{port}/healthz")).await;
    assert!(
        plain.map_or(true, |r| r.status().as_u16() != 200),
        "plain HTTP must not be served"
    );
    // A client that does not trust the certificate refuses the connection.
    assert!(reqwest::get(format!("https://127.0.0.1:{port}/healthz"))
        .await
        .is_err());
    gw.stop().await;

    // A missing key file stops the start, naming the files.
    let bad = TestConfig::new(
        &format!(
            "[mqtt]\nurl = \"mqtt://127.0.0.1:1\"\n\n[api]\nlisten = \"127.0.0.1:0\"\ntls_cert_file = \"{}\"\ntls_key_file = \"/nonexistent/api.key\"\n",
            cert_path.display()
        ),
        &inv(),
    );
    match safegate::runtime::start(bad.load()).await {
        Ok(gw) => {
            gw.stop().await;
            panic!("must not start without the key file");
        }
        Err(e) => assert!(e.to_string().contains("/nonexistent/api.key"), "{e}"),
    }
}

fn audit_lines(cfg: &TestConfig) -> Vec<Value> {
    std::fs::read_to_string(cfg.dir.path().join("state/audit.log"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("an audit line is JSON"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_trail_records_the_configuration_acknowledgements_and_refusals() {
    let _load = shared().await;
    let mq = Mosquitto::start();
    let vm = Victoria::start();
    let cfg = TestConfig::new(
        &format!(
            "{}{}",
            settings(&mq.url(), "gw-audit", Some(&vm.url())),
            tokens_toml()
        ),
        &inv(),
    );
    let (gw, api) = start_ready(&cfg).await;

    // The configuration in force, with the main file's SHA-256.
    let lines = audit_lines(&cfg);
    let loaded = lines
        .iter()
        .find(|l| l["action"] == "config_loaded")
        .unwrap();
    let main = std::fs::read(&cfg.path).unwrap();
    assert_eq!(
        loaded["detail"]["files"][0]["sha256"],
        hex::encode(Sha256::digest(&main))
    );
    assert_eq!(loaded["detail"]["tokens"], ROLES.len());

    // Five refusals in a burst are one line, naming the reason and the peer.
    for _ in 0..5 {
        assert_eq!(
            call("GET", &format!("{api}/api/v1/sites"), Some("bad"))
                .await
                .0,
            401
        );
    }
    let refused: Vec<Value> = audit_lines(&cfg)
        .into_iter()
        .filter(|l| l["action"] == "api_refused")
        .collect();
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(refused[0]["detail"]["reason"], "invalid_token");
    assert!(refused[0]["from"]
        .as_str()
        .unwrap()
        .starts_with("127.0.0.1:"));

    // Acknowledgements over HTTP and MQTT: who, when, from where.
    let p = Publisher::connect(mq.port, "pub-audit").await;
    p.send("safegate/v1/p1/g1/data", r#"{"values":{"lel":30}}"#)
        .await;
    p.send("safegate/v1/p1/g1/data", r#"{"values":{"lel":1}}"#)
        .await;
    p.send("safegate/v1/p1/g1/data", r#"{"values":{"lel":31}}"#)
        .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let ids = loop {
        let (_, v, _) = call("GET", &format!("{api}/api/v1/alarms"), Some("tok-viewer-1")).await;
        let ids: Vec<u64> = v["alarms"]
            .as_array()
            .map(|a| a.iter().filter_map(|x| x["id"].as_u64()).collect())
            .unwrap_or_default();
        if ids.len() == 2 {
            break ids;
        }
        assert!(tokio::time::Instant::now() < deadline, "{v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let (code, _, _) = call(
        "POST",
        &format!("{api}/api/v1/alarms/{}/ack", ids[0]),
        Some("tok-operator-1"),
    )
    .await;
    assert_eq!(code, 200);
    p.send(
        &format!("safegate/v1/p1/alarms/{}/ack", ids[1]),
        r#"{"by":"platform-p1","note":"on it"}"#,
    )
    .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let acks = loop {
        let acks: Vec<Value> = audit_lines(&cfg)
            .into_iter()
            .filter(|l| l["action"] == "alarm_acknowledged")
            .collect();
        if acks.len() == 2 {
            break acks;
        }
        assert!(tokio::time::Instant::now() < deadline, "{acks:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let http = acks
        .iter()
        .find(|a| a["detail"]["alarm"] == ids[0])
        .unwrap();
    assert_eq!(http["who"], "tester");
    assert_eq!(http["detail"]["via"], "http:operator-desk");
    assert!(
        http["from"].as_str().unwrap().starts_with("127.0.0.1:"),
        "{http}"
    );
    let mqtt = acks
        .iter()
        .find(|a| a["detail"]["alarm"] == ids[1])
        .unwrap();
    assert_eq!(mqtt["who"], "platform-p1");
    assert_eq!(
        mqtt["from"],
        format!("mqtt p1/alarms/{}/ack", ids[1]),
        "{mqtt}"
    );

    // The same events in the store, measurement audit.
    vm.wait_for(
        r#"{__name__="audit_count"}"#,
        Duration::from_secs(20),
        |s| {
            ["config_loaded", "api_refused", "alarm_acknowledged"]
                .iter()
                .all(|a| s.iter().any(|x| x.label("action") == *a))
        },
    )
    .await;
    gw.stop().await;
}
