//! Smoke test of `safegate demo`: it starts on a fresh machine with nothing installed (embedded
//! broker, built-in inventory, in-process simulator) and serves live, non-trivial rates.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_starts_and_serves_rates() {
    let _load = crate::common::shared().await;
    let api_port = crate::common::free_port();
    let data = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_safegate"))
        .args([
            "demo",
            "--api",
            &format!("127.0.0.1:{api_port}"),
            "--broker",
            "127.0.0.1:0",
        ])
        .args(["--duration-s", "60", "--data-dir"])
        .arg(data.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let api = format!("http://127.0.0.1:{api_port}");
    let deadline = Instant::now() + Duration::from_secs(45);
    let mut last = serde_json::Value::Null;
    let ok = loop {
        if let Ok(r) = reqwest::get(format!("{api}/api/v1/sites")).await {
            last = r.json().await.unwrap_or_default();
            let rate = &last["region"]["online_rate"];
            let n = rate["numerator"].as_u64().unwrap_or(0);
            let d = rate["denominator"].as_u64().unwrap_or(0);
            // Live and non-trivial: most devices online, the silent ones not.
            if n > d / 2 && n < d && last["sites"].as_array().is_some_and(|s| s.len() == 2) {
                break true;
            }
        }
        if Instant::now() > deadline {
            break false;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let devices: serde_json::Value = reqwest::get(format!("{api}/api/v1/devices?state=never"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    // Part of the fleet is polled over Modbus from the in-process modbus-sim.
    let modbus: serde_json::Value = reqwest::get(format!("{api}/api/v1/devices?site=zd-park"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let endpoints: serde_json::Value = reqwest::get(format!("{api}/api/v1/endpoints"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    // The demo mine uploads its networking files by FTP: its points joined, its files are in.
    let mine = crate::common::wait_json(
        &format!("{api}/api/v1/mines/652201000001"),
        Duration::from_secs(20),
        |v| v["last_files"]["CDSS"].is_object(),
    )
    .await;
    // The mine's two NVRs register by GB/T 28181 and their cameras join from the catalogs:
    // 8 cameras, one OFF on each NVR (never online), the others online.
    let video = crate::common::wait_json(
        &format!("{api}/api/v1/devices?site=hm-mine&kind=video&limit=50"),
        Duration::from_secs(20),
        |v| {
            let on = |id: &str| {
                v["devices"]
                    .as_array()
                    .is_some_and(|d| d.iter().any(|x| x["id"] == id && x["state"] == "online"))
            };
            on("nvr-portal") && on("nvr-conveyor") && on("65220100001320000007")
        },
    )
    .await;
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    let cameras: Vec<&serde_json::Value> = video["devices"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["declared"] == "video")
        .collect();
    assert_eq!(cameras.len(), 8, "{video}");
    let off = cameras.iter().filter(|d| d["state"] != "online").count();
    assert_eq!(off, 2, "the OFF camera of each NVR: {video}");
    assert_eq!(mine["points"], 24, "{mine}");
    assert_eq!(mine["records_refused"], 0, "{mine}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        ok,
        "demo never served a live rate; last /api/v1/sites: {last}"
    );
    let lel = modbus["devices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["id"] == "mb-lel-01")
        .unwrap_or_else(|| panic!("mb-lel-01 not listed: {modbus}"));
    assert_eq!(lel["state"], "online", "{lel}");
    assert!(lel["last_values"]["lel"].is_number(), "{lel}");
    assert_eq!(endpoints["total"], 2, "{endpoints}");
    assert!(
        devices["total"].as_u64().unwrap() > 0,
        "the demo keeps some devices silent"
    );
    assert!(
        stdout.contains(&format!("{api}/api/v1/sites")),
        "prints the URLs:\n{stdout}"
    );
}
