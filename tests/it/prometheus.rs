//! `/metrics` as Prometheus reads it: `promtool check metrics` finds no problem in a live
//! gateway's answer, and a real Prometheus server scraping it (with a `scrape` token) keeps
//! each counter typed as a counter, with its help (its metadata API says so).

use crate::common::*;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SCRAPE_TOKEN: &str = "tok-scrape-prom";
/// What Prometheus 2.x sends when it scrapes.
const PROMETHEUS_ACCEPT: &str = "application/openmetrics-text;version=1.0.0,\
    application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

/// A gateway with a `scrape` token and one reading in (so the histogram and the counters
/// have samples), on a real broker.
struct Scraped {
    _mq: Mosquitto,
    _cfg: TestConfig,
    gw: safegate::runtime::Gateway,
    api: String,
}

async fn gateway(client_id: &str) -> Scraped {
    let mq = Mosquitto::start();
    let tokens = format!(
        "[[tokens]]\nname = \"prometheus\"\nrole = \"scrape\"\nsha256 = \"{}\"\n\n",
        hex::encode(Sha256::digest(SCRAPE_TOKEN.as_bytes()))
    );
    let inv = Inventory::park("p1").detector("g1", 60.0).to_toml();
    let cfg = TestConfig::new(
        &format!("{}{tokens}", settings(&mq.url(), client_id, None)),
        &inv,
    );
    let gw = safegate::runtime::start(cfg.load()).await.unwrap();
    let api = format!("http://{}", gw.api_addr);
    wait_json(&format!("{api}/readyz"), Duration::from_secs(20), |v| {
        v["mqtt"]["connected"] == true
    })
    .await;
    let p = Publisher::connect(mq.port, &format!("{client_id}-pub")).await;
    p.send("safegate/v1/p1/g1/data", r#"{"values":{"lel":1}}"#)
        .await;
    p.send("safegate/v1/p1/g1/data", "not json").await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, body) = scrape(&api, None).await;
        let accepted = metric(&body, "safegate_readings_accepted_total");
        let rejected = metric(
            &body,
            "safegate_readings_rejected_total{reason=\"malformed_json\"}",
        );
        if accepted == Some(1.0) && rejected == Some(1.0) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the readings never counted:\n{body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Scraped {
        _mq: mq,
        _cfg: cfg,
        gw,
        api,
    }
}

/// `GET /metrics` with the scrape token and `accept`: (content type, body).
async fn scrape(api: &str, accept: Option<&str>) -> (String, String) {
    let mut r = reqwest::Client::new()
        .get(format!("{api}/metrics"))
        .bearer_auth(SCRAPE_TOKEN);
    if let Some(a) = accept {
        r = r.header("accept", a);
    }
    let resp = r.send().await.expect("GET /metrics");
    assert_eq!(resp.status(), 200);
    let ct = resp.headers()["content-type"].to_str().unwrap().to_string();
    (ct, resp.text().await.unwrap())
}

/// `# TYPE` lines of an exposition: family name → type.
fn declared(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_once(' '))
        .map(|(n, t)| (n.to_string(), t.to_string()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promtool_finds_no_problem_in_either_format_of_a_live_gateway() {
    let _load = shared().await;
    let g = gateway("gw-promtool").await;

    // Prometheus asks for OpenMetrics and gets it, with its content type.
    let (ct, open) = scrape(&g.api, Some(PROMETHEUS_ACCEPT)).await;
    assert_eq!(
        ct, "application/openmetrics-text; version=1.0.0; charset=utf-8",
        "{open}"
    );
    assert!(open.ends_with("# EOF\n"), "{open}");
    let om = declared(&open);
    assert_eq!(
        om.get("safegate_messages_received").map(String::as_str),
        Some("counter"),
        "{open}"
    );

    // Any other client gets the classic text format, which promtool lints.
    let (ct, classic) = scrape(&g.api, None).await;
    assert_eq!(ct, "text/plain; version=0.0.4; charset=utf-8");
    assert!(!classic.contains("# EOF"), "{classic}");
    let cl = declared(&classic);
    let counters: Vec<&String> = om
        .iter()
        .filter(|(_, t)| *t == "counter")
        .map(|(n, _)| n)
        .collect();
    assert!(counters.len() >= 10, "the gateway's counters: {counters:?}");
    for c in &counters {
        assert_eq!(
            cl.get(&format!("{c}_total")).map(String::as_str),
            Some("counter"),
            "{c} in the classic text:\n{classic}"
        );
    }
    let mut child = Command::new(which("promtool"))
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start promtool");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(classic.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.trim().is_empty(),
        "promtool check metrics ({}) said:\n{said}",
        out.status
    );
    println!(
        "promtool check metrics: no problem in {} families ({} counters)",
        cl.len(),
        counters.len()
    );
    g.gw.stop().await;
}

/// A Prometheus server on a free loopback port with its own storage, scraping `target` every
/// second with the scrape token. Killed on drop.
struct Prometheus {
    url: String,
    _dir: tempfile::TempDir,
    child: Child,
}

impl Prometheus {
    fn start(target: &str) -> Prometheus {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let conf = dir.path().join("prometheus.yml");
        std::fs::write(
            &conf,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n\
                 scrape_configs:\n  - job_name: safegate\n    authorization:\n      type: Bearer\n      \
                 credentials: {SCRAPE_TOKEN}\n    static_configs:\n      - targets: ['{target}']\n"
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
        let child = Command::new(which("prometheus"))
            .arg(format!("--config.file={}", conf.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--log.level=warn")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start prometheus");
        Prometheus {
            url: format!("http://127.0.0.1:{port}"),
            _dir: dir,
            child,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("prometheus.log")).unwrap_or_default()
    }

    /// `GET` an API path's `data`, `None` until the server answers with `success`.
    async fn data(&self, path: &str) -> Option<Value> {
        let r = reqwest::get(format!("{}{path}", self.url)).await.ok()?;
        let v: Value = r.json().await.ok()?;
        (v["status"] == "success").then(|| v["data"].clone())
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prometheus_server_scrapes_the_counters_as_counters_with_their_help() {
    let _load = shared().await;
    let g = gateway("gw-prometheus").await;
    let (_, open) = scrape(&g.api, Some(PROMETHEUS_ACCEPT)).await;
    // The counters that have samples (a labelled family with no child yet has none).
    let counters: Vec<String> = declared(&open)
        .into_iter()
        .filter(|(n, t)| t == "counter" && open.contains(&format!("\n{n}_total")))
        .map(|(n, _)| n)
        .collect();
    assert!(counters.len() >= 10, "{counters:?}");

    let prom = Prometheus::start(g.api.trim_start_matches("http://"));
    // Scraped, with the token: the target is up, and the metadata of every counter is in.
    let deadline = Instant::now() + Duration::from_secs(60);
    let (up, meta) = loop {
        let up = prom.data("/api/v1/query?query=up").await;
        let meta = prom.data("/api/v1/metadata").await;
        let all_in = meta
            .as_ref()
            .is_some_and(|m| counters.iter().all(|c| m.get(c).is_some()));
        let is_up = up
            .as_ref()
            .is_some_and(|u| u["result"][0]["value"][1] == "1");
        if let (Some(up), Some(meta), true) = (up, meta, all_in && is_up) {
            break (up, meta);
        }
        assert!(
            Instant::now() < deadline,
            "Prometheus had not scraped the gateway in 60 s; its log:\n{}",
            prom.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(up["result"][0]["value"][1], "1", "{up}");
    for c in &counters {
        let m = &meta[c][0];
        assert_eq!(m["type"], "counter", "{c}: {m}");
        assert!(
            !m["help"].as_str().unwrap_or("").is_empty(),
            "{c} has its help: {m}"
        );
        assert!(meta.get(format!("{c}_total")).is_none(), "{c}: {meta}");
    }
    // The samples are stored under their OpenMetrics names.
    let q = "/api/v1/query?query=safegate_readings_accepted_total";
    let v = prom.data(q).await.expect("query the accepted readings");
    assert_eq!(v["result"][0]["value"][1], "1", "{v}");
    println!(
        "prometheus: {} counters typed counter, with help, in its metadata",
        counters.len()
    );
    g.gw.stop().await;
}
