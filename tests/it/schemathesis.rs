//! The OpenAPI document checked against a running gateway by schemathesis (PyPI), property
//! based: every operation, once without a token and once with an admin token; no 5xx, and
//! every answer's status, content type, headers and body as the document says.

use crate::common::*;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const ADMIN_TOKEN: &str = "tok-schemathesis-admin";
/// The mine's `mine_code`, as the schemathesis configuration names it.
const MINE: &str = "150621011038";
/// Cases schemathesis generates per operation and phase: enough for every phase to try each
/// parameter's edges, few enough that both runs take well under two minutes here.
const MAX_EXAMPLES: &str = "40";
/// A fixed seed: a failure found once is found again on the next run.
const SEED: &str = "17";
/// What each answer is checked for. `not_a_server_error`: no 5xx;
/// `status_code_conformance`, `content_type_conformance`, `response_headers_conformance`,
/// `response_schema_conformance`: status, content type, headers and body as documented.
const CHECKS: &str = "not_a_server_error,status_code_conformance,content_type_conformance,\
    response_headers_conformance,response_schema_conformance";

/// Parameters that need a value the gateway knows, else every case is a 404; `{alarm}` is
/// an alarm's id.
const CONFIG: &str = r#"
[[operations]]
include-path-regex = "^/api/v1/alarms/\\{id\\}"
parameters = { "path.id" = "{alarm}" }

[[operations]]
include-path-regex = "^/api/v1/sites/\\{id\\}"
parameters = { "path.id" = "p1" }

[[operations]]
include-path = "/api/v1/devices/{site}/{id}/history"
parameters = { "path.site" = "p1", "path.id" = "g1" }

[[operations]]
include-path-regex = "^/api/v1/ingest/"
parameters = { "path.site" = "p1" }

[[operations]]
include-path = "/api/v1/mines/{code}"
parameters = { "path.code" = "150621011038" }

[[operations]]
include-path = "/console/{path}"
parameters = { "path.path" = "app.js" }
"#;

/// What one run did, from its JSON report.
struct Run {
    cases: u64,
    operations: u64,
    seconds: f64,
}

/// `schemathesis run` against `api` with `extra` arguments, its report in `dir`; panics with
/// its output unless it exits 0 with no failure.
fn schemathesis(api: &str, dir: &Path, name: &str, alarm: u64, extra: &[&str]) -> Run {
    let config = CONFIG.replace("{alarm}", &alarm.to_string());
    std::fs::write(dir.join("schemathesis.toml"), config).unwrap();
    let report = dir.join(format!("{name}.json"));
    let out = dir.join(format!("{name}.out"));
    let log = std::fs::File::create(&out).unwrap();
    let mut child = Command::new("python3")
        .args(["-m", "schemathesis.cli", "--no-color", "--config-file"])
        .arg(dir.join("schemathesis.toml"))
        .arg("run")
        .arg(format!("{api}/api/v1/openapi.json"))
        .args([
            "--url",
            api,
            "--checks",
            CHECKS,
            "--max-examples",
            MAX_EXAMPLES,
        ])
        .args(["--seed", SEED, "--workers", "2", "--request-timeout", "10"])
        .args(["--generation-database", "none", "--report", "json"])
        .arg("--report-json-path")
        .arg(&report)
        .args(extra)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("python3 runs (scripts/test.sh installs it)");
    let deadline = Instant::now() + Duration::from_secs(300);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "schemathesis ({name}) ran over 300 s:\n{}",
                std::fs::read_to_string(&out).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let said = std::fs::read_to_string(&out).unwrap_or_default();
    assert!(
        !said.contains("No module named schemathesis"),
        "schemathesis is not installed: run ./scripts/test.sh, which installs it"
    );
    assert!(status.success(), "schemathesis ({name}) {status}:\n{said}");
    let r: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap())
        .unwrap_or_else(|e| panic!("{name}'s JSON report: {e}\n{said}"));
    let t = &r["test_cases"];
    assert_eq!(t["with_failures"], 0, "{name}: {t}\n{said}");
    assert_eq!(t["errored"], 0, "{name}: {t}\n{said}");
    let ops = &r["operations"];
    assert_eq!(ops["tested"], ops["selected"], "{name}: {ops}\n{said}");
    assert_eq!(ops["errored"], 0, "{name}: {ops}\n{said}");
    Run {
        cases: t["generated"].as_u64().unwrap(),
        operations: ops["tested"].as_u64().unwrap(),
        seconds: r["running_time"].as_f64().unwrap_or(0.0),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_5xx_and_no_answer_off_its_schema_with_and_without_a_token() {
    let _load = shared().await;
    let mq = Mosquitto::start();
    let vm = Victoria::start();
    let tokens = format!(
        "[[tokens]]\nname = \"admin-desk\"\nrole = \"admin\"\nsha256 = \"{}\"\n\n",
        hex::encode(Sha256::digest(ADMIN_TOKEN.as_bytes()))
    );
    // Thousands of requests in seconds: the per-token limit (429) is not what is tested.
    let settings = settings(&mq.url(), "gw-schemathesis", Some(&vm.url())).replace(
        "[api]\n",
        "[api]\nrate_limit_per_s = 100000\nrate_limit_burst = 100000\n",
    ) + "[ingest]\n\n"
        + &tokens
        // A target row, so the indicators answer with a target, a completion and a deviation.
        + "[[targets]]\nindicator = \"online_rate\"\ncomparator = \">=\"\nvalue = 95\nlabel = \"联网在线率\"\nweight = 10\n\n";
    // A Modbus device on a port where nothing listens: the endpoints answer, and the device
    // listing's Modbus counters, carry its errors.
    let modbus = format!(
        "[[devices]]\nid = \"m1\"\nsite = \"p1\"\nkind = \"gas_combustible\"\nprotocol = \"modbus\"\n\
         interval_s = 0.5\n[devices.modbus]\ntransport = \"tcp\"\naddress = \"127.0.0.1:{}\"\nunit = 1\n\
         timeout_ms = 300\nregisters = [{{ channel = \"lel\", table = \"holding\", address = 0, type = \"u16\" }}]\n",
        free_port()
    );
    // A mine taking files from a folder (none yet): the mines answer lists it.
    std::env::set_var("SAFEGATE_TEST_SCHEMATHESIS_MINE_PW", "kj-st-1");
    let mine = format!(
        "[[sites]]\nid = \"m1\"\nname = \"Mine\"\nkind = \"mine\"\nmine_code = \"{MINE}\"\n\
         upload_password_env = \"SAFEGATE_TEST_SCHEMATHESIS_MINE_PW\"\n\n"
    );
    let inv = Inventory::park("p1")
        .with("platforms = [\"admin-desk\"]")
        .detectors(&["g1", "g2"], 60.0)
        .raw(&modbus)
        .raw(&mine)
        .to_toml();
    let watch = tempfile::tempdir().unwrap();
    let settings = settings
        + &format!(
            "[mine_files]\nenabled = true\nlisten = \"\"\nwatch_dir = \"{}\"\n\n",
            watch.path().display()
        );
    let cfg = TestConfig::new(&settings, &inv);
    let gw = safegate::runtime::start(cfg.load()).await.unwrap();
    let api = format!("http://{}", gw.api_addr);
    wait_json(&format!("{api}/readyz"), Duration::from_secs(20), |v| {
        v["ready"] == true
    })
    .await;
    let p = Publisher::connect(mq.port, "schemathesis-pub").await;
    p.send("safegate/v1/p1/g1/data", r#"{"values":{"lel":1}}"#)
        .await;
    // A message that is not JSON: a rejection, listed in the recent ones.
    p.send("safegate/v1/p1/g1/data", "not json").await;
    // g2 says it is faulty: a fault alarm, so the alarm listing, one alarm and its
    // acknowledgement answer with real alarms.
    p.send(
        "safegate/v1/p1/g2/data",
        r#"{"values":{"lel":1},"status":"fault"}"#,
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(20);
    let alarm = loop {
        let answer = |path: String| async move {
            let r = reqwest::Client::new().get(path).bearer_auth(ADMIN_TOKEN);
            r.send().await.unwrap().json::<Value>().await.unwrap()
        };
        let online = answer(format!("{api}/api/v1/devices?site=p1&state=online")).await;
        let alarms = answer(format!("{api}/api/v1/alarms?device=g2")).await;
        let endpoints = answer(format!("{api}/api/v1/endpoints")).await;
        let failed = endpoints["endpoints"][0]["last_error"].is_string();
        if let (2, Some(id), true) = (
            online["total"].as_u64().unwrap_or(0),
            alarms["alarms"][0]["id"].as_u64(),
            failed,
        ) {
            break id;
        }
        assert!(
            Instant::now() < deadline,
            "g1 and g2 online, g2's fault alarm, m1's failed poll: {online} {alarms} {endpoints}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };

    let mines: Value = reqwest::Client::new()
        .get(format!("{api}/api/v1/mines/{MINE}"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(mines["mine_code"], MINE, "{mines}");

    let dir = tempfile::tempdir().unwrap();
    let (a, d) = (api.clone(), dir.path().to_path_buf());
    let open = tokio::task::spawn_blocking(move || schemathesis(&a, &d, "no-token", alarm, &[]))
        .await
        .unwrap();
    let (a, d) = (api.clone(), dir.path().to_path_buf());
    let header = format!("Authorization: Bearer {ADMIN_TOKEN}");
    // The live feed streams until the gateway stops: with a token it is left out (its
    // answers are tested in api_auth and console).
    let admin = tokio::task::spawn_blocking(move || {
        schemathesis(
            &a,
            &d,
            "admin",
            alarm,
            &["-H", &header, "--exclude-path", "/api/v1/events"],
        )
    })
    .await
    .unwrap();
    assert!(open.operations >= 24, "{} operations", open.operations);
    assert!(admin.operations >= 23, "{} operations", admin.operations);
    assert!(open.cases >= 500 && admin.cases >= 500);
    println!(
        "schemathesis: no token {} cases over {} operations in {:.1} s; admin token {} cases over {} operations in {:.1} s",
        open.cases, open.operations, open.seconds, admin.cases, admin.operations, admin.seconds
    );
    // It took what was posted and the gateway still serves.
    let (status, _) = get(&format!("{api}/healthz")).await;
    assert_eq!(status, 200);
    gw.stop().await;
}
