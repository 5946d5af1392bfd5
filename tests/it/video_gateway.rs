//! The gateway's own GB/T 28181 endpoint, end to end: SIPp (Debian `sip-tester`) plays an
//! NVR from hand-written scenarios (`tests/it/sipp/`) over UDP against the running gateway.
//! Registration with digest brings the NVR online in `/api/v1/devices`; its catalog's
//! channels join the inventory; without keepalives the NVR and its channel go offline at
//! exactly last keepalive + keepalive_s × keepalive_misses (on the test clock); a keepalive
//! brings them back and a channel's OFF change takes it offline alone; an unknown
//! ID and a wrong password are refused 403 and counted in metrics and `/api/v1/rejections`.

use crate::common::*;
use safegate::sources::mqtt::payload::parse_rfc3339_ms;
use serde_json::Value;
use std::path::Path;
use std::time::Duration;

const NVR: &str = "34020000001180000001";
const CH_ON: &str = "34020000001320000001";
const CH_OFF: &str = "34020000001320000002";
const STRANGER: &str = "34020000001180000099";
const SERVER: &str = "34020000002000000001";
const DOMAIN: &str = "3402000000";
const PASSWORD_ENV: &str = "SAFEGATE_TEST_VIDEO_PASSWORD";
const PASSWORD: &str = "12345678";
const KEEPALIVE_S: i64 = 5;
const MISSES: i64 = 3;
const WAIT: Duration = Duration::from_secs(20);

fn config(mq: &str, port: u16) -> TestConfig {
    std::env::set_var(PASSWORD_ENV, PASSWORD);
    let video = format!(
        "[video]\nlisten = \"127.0.0.1:{port}\"\nserver_id = \"{SERVER}\"\n\
         password_env = \"{PASSWORD_ENV}\"\nkeepalive_s = {KEEPALIVE_S}\nkeepalive_misses = {MISSES}\n\n"
    );
    let inventory = format!(
        "[[sites]]\nid = \"p1\"\nname = \"Mine one\"\nkind = \"mine\"\n\n\
         [[systems]]\nid = \"cctv\"\nsite = \"p1\"\nkind = \"video_monitoring\"\n\n\
         [[devices]]\nid = \"nvr1\"\nsite = \"p1\"\nkind = \"video\"\nsystem = \"cctv\"\n\
         protocol = \"gb28181\"\ngb_id = \"{NVR}\"\ninterval_s = 60\n\n"
    );
    TestConfig::new(
        &format!("{}{video}", settings(mq, "gw-video-e2e", None)),
        &inventory,
    )
}

/// Runs `scenario` once as device `device` with `password` against the gateway on `port`
/// over UDP; panics unless SIPp got every message it expected.
async fn sipp(port: u16, scenario: &str, device: &str, password: &str) {
    sipp_over("u1", port, scenario, device, password).await
}

/// As [`sipp`], over SIPp's transport `transport` (`u1` UDP, `t1` one TCP connection).
async fn sipp_over(transport: &str, port: u16, scenario: &str, device: &str, password: &str) {
    let dir = tempfile::tempdir().unwrap();
    let file = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/it/sipp")
        .join(scenario);
    let errors = dir.path().join("errors.log");
    let mut cmd = std::process::Command::new(which("sipp"));
    cmd.arg(format!("127.0.0.1:{port}"))
        .arg("-sf")
        .arg(&file)
        .args(["-t", transport, "-m", "1", "-i", "127.0.0.1", "-p"])
        .arg(free_port().to_string())
        .args(["-key", "device", device, "-key", "server", SERVER])
        .args(["-key", "domain", DOMAIN, "-key", "ch_on", CH_ON])
        .args(["-key", "ch_off", CH_OFF, "-au", device, "-ap", password])
        .args([
            "-nostdin",
            "-timeout",
            "30s",
            "-timeout_error",
            "-trace_err",
        ])
        .arg("-error_file")
        .arg(&errors)
        .current_dir(dir.path());
    let out = tokio::task::spawn_blocking(move || cmd.output().expect("sipp runs"))
        .await
        .unwrap();
    let log = std::fs::read_to_string(&errors).unwrap_or_default();
    assert!(
        out.status.success(),
        "sipp {scenario} failed ({}):\n{log}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

fn devices_url(api: &str) -> String {
    format!("{api}/api/v1/devices?site=p1&limit=100")
}

fn has(v: &Value, id: &str) -> bool {
    v["devices"]
        .as_array()
        .is_some_and(|d| d.iter().any(|x| x["id"] == id))
}

fn since(v: &Value, id: &str) -> Option<i64> {
    device(v, id)["state_since"]
        .as_str()
        .and_then(parse_rfc3339_ms)
}

#[tokio::test]
async fn an_nvr_registers_over_sipp_its_channels_join_and_silence_takes_them_offline_on_time() {
    let _load = shared().await;
    let mq = Mosquitto::start();
    let port = free_port();
    let cfg = config(&mq.url(), port);
    let clock = test_clock();
    let (_gw, api) = start_ready_on(&cfg, clock.clock()).await;

    // REGISTER with SIPp's digest, a keepalive and a catalog of two channels, at T0.
    let t0 = clock.now_ms();
    sipp(port, "gb_nvr.xml", NVR, PASSWORD).await;
    let v = wait_json(&devices_url(&api), WAIT, |v| {
        has(v, "nvr1") && device(v, "nvr1")["state"] == "online" && has(v, CH_ON)
    })
    .await;
    let nvr = device(&v, "nvr1");
    assert_eq!(nvr["protocol"], "gb28181", "{nvr}");
    assert_eq!(nvr["offline_after_s"], 15.0, "keepalive_s × misses: {nvr}");
    assert_eq!(since(&v, "nvr1"), Some(t0));
    let on = device(&v, CH_ON);
    assert_eq!(
        (
            on["declared"].as_str(),
            on["system"].as_str(),
            on["kind"].as_str()
        ),
        (Some("video"), Some("cctv"), Some("video")),
        "{on}"
    );
    let v = wait_json(&devices_url(&api), WAIT, |v| {
        has(v, CH_ON) && device(v, CH_ON)["state"] == "online"
    })
    .await;
    assert_eq!(since(&v, CH_ON), Some(t0));
    // The OFF channel is in the inventory and not online.
    assert!(has(&v, CH_OFF), "{v}");
    assert_ne!(device(&v, CH_OFF)["state"], "online");

    // A keepalive 4 s later moves the deadline to T1 + 15 s.
    clock.advance(Duration::from_secs(4));
    let t1 = clock.now_ms();
    sipp(port, "gb_keepalive.xml", NVR, PASSWORD).await;
    wait_json(&devices_url(&api), WAIT, |v| {
        device(v, "nvr1")["last_seen"]
            .as_str()
            .and_then(parse_rfc3339_ms)
            == Some(t1)
    })
    .await;
    // Past T0 + 15 s, still online.
    clock.advance(Duration::from_secs(12));
    let (_, v) = get(&devices_url(&api)).await;
    assert_eq!(device(&v, "nvr1")["state"], "online", "{v}");
    assert_eq!(device(&v, CH_ON)["state"], "online", "{v}");
    // Past T1 + 15 s: the NVR and its channel are offline, each at exactly T1 + 15 s.
    clock.advance(Duration::from_secs(4));
    let deadline = t1 + KEEPALIVE_S * MISSES * 1000;
    let v = wait_json(&devices_url(&api), WAIT, |v| {
        device(v, "nvr1")["state"] == "offline" && device(v, CH_ON)["state"] == "offline"
    })
    .await;
    assert_eq!(since(&v, "nvr1"), Some(deadline), "{v}");
    assert_eq!(since(&v, CH_ON), Some(deadline), "{v}");

    // A keepalive brings both back (the registration stands); then the channel's OFF
    // change takes it offline alone, at that change's time.
    clock.advance(Duration::from_secs(1));
    let t2 = clock.now_ms();
    sipp(port, "gb_keepalive.xml", NVR, PASSWORD).await;
    let v = wait_json(&devices_url(&api), WAIT, |v| {
        device(v, "nvr1")["state"] == "online" && device(v, CH_ON)["state"] == "online"
    })
    .await;
    assert_eq!((since(&v, "nvr1"), since(&v, CH_ON)), (Some(t2), Some(t2)));
    clock.advance(Duration::from_secs(1));
    let t3 = clock.now_ms();
    sipp(port, "gb_channel_off.xml", NVR, PASSWORD).await;
    let v = wait_json(&devices_url(&api), WAIT, |v| {
        device(v, CH_ON)["state"] == "offline"
    })
    .await;
    assert_eq!(since(&v, CH_ON), Some(t3), "{v}");
    assert_eq!(device(&v, "nvr1")["state"], "online", "{v}");
    let metrics = get_text(&format!("{api}/metrics")).await;
    assert_eq!(
        metric(
            &metrics,
            "safegate_video_messages_total{method=\"REGISTER\"}"
        ),
        Some(2.0),
        "{metrics}"
    );
}

#[tokio::test]
async fn an_unknown_id_and_a_wrong_password_are_refused_403_and_counted() {
    let _load = shared().await;
    let mq = Mosquitto::start();
    let port = free_port();
    let cfg = config(&mq.url(), port);
    let (_gw, api) = start_ready(&cfg).await;

    // The scenario expects the 401 and then the 403.
    sipp(port, "gb_register_refused.xml", STRANGER, PASSWORD).await;
    sipp(port, "gb_register_refused.xml", NVR, "wrong-password").await;
    let rej = wait_json(&format!("{api}/api/v1/rejections"), WAIT, |v| {
        v["counts"]["unknown_device"] == 1 && v["counts"]["digest_refused"] == 1
    })
    .await;
    let recent = rej["recent"].as_array().cloned().unwrap_or_default();
    let unknown = recent
        .iter()
        .find(|r| r["reason"] == "unknown_device")
        .expect("an unknown_device rejection");
    let origin = unknown["topic"].as_str().unwrap_or("");
    assert!(
        origin.starts_with("gb28181 udp 127.0.0.1:") && origin.contains("Call-ID "),
        "{unknown}"
    );
    assert!(origin.contains(STRANGER), "{unknown}");
    let metrics = get_text(&format!("{api}/metrics")).await;
    for reason in ["unknown_device", "wrong_password"] {
        assert_eq!(
            metric(
                &metrics,
                &format!("safegate_video_refused_total{{reason=\"{reason}\"}}")
            ),
            Some(1.0),
            "{reason}: {metrics}"
        );
    }
    // Nothing joined for the stranger, and the NVR never came online.
    let (_, v) = get(&devices_url(&api)).await;
    assert!(!has(&v, STRANGER), "{v}");
    assert_eq!(device(&v, "nvr1")["state"], "never", "{v}");
}

#[tokio::test]
async fn over_tcp_a_closed_connection_takes_the_nvr_offline_at_once() {
    let _load = shared().await;
    let mq = Mosquitto::start();
    let port = free_port();
    let cfg = config(&mq.url(), port);
    let clock = test_clock();
    let (_gw, api) = start_ready_on(&cfg, clock.clock()).await;
    let t0 = clock.now_ms();
    // SIPp registers and keeps alive over one TCP connection, then exits: it closes.
    sipp_over("t1", port, "gb_register.xml", NVR, PASSWORD).await;
    let v = wait_json(&devices_url(&api), WAIT, |v| {
        device(v, "nvr1")["state"] == "offline"
    })
    .await;
    // Online at T0, offline at T0 (the clock stood still): not at a keepalive deadline.
    assert_eq!(since(&v, "nvr1"), Some(t0), "{v}");
    assert_eq!(
        device(&v, "nvr1")["last_seen"]
            .as_str()
            .and_then(parse_rfc3339_ms),
        Some(t0)
    );
    let metrics = get_text(&format!("{api}/metrics")).await;
    assert_eq!(
        metric(
            &metrics,
            "safegate_video_transitions_total{state=\"offline\"}"
        ),
        Some(1.0),
        "{metrics}"
    );
}
