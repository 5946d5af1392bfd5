//! The gateway's own GB/T 28181 endpoint, end to end: SIPp (Debian `sip-tester`) plays an
//! NVR from hand-written scenarios (`tests/it/sipp/`) over UDP against the running gateway.
//! Registration with digest brings the NVR online in `/api/v1/devices`; its catalog's
//! channels join the inventory; without keepalives the NVR and its channel go offline at
//! exactly last keepalive + keepalive_s × keepalive_misses (on the test clock); a keepalive
//! brings them back and a channel's OFF change takes it offline alone; an unknown
//! ID and a wrong password are refused 403 and counted in metrics and `/api/v1/rejections`.
//! The device library gb28181-rs, over a UDP socket of the test, registers an NVR with its
//! own digest and pages a catalog of 8 channels, one OFF. Bad input over UDP and TCP (not
//! SIP, oversized, wrong Content-Length, DOCTYPE, unknown CmdType) is refused by reason and
//! disturbs nothing. The 联网在线率 over a scripted outage is the hand-computed one.

use crate::common::*;
use safegate::sources::mqtt::payload::parse_rfc3339_ms;
use serde_json::Value;
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
    config_with(mq, port, "", "")
}

/// [`config`] with `video` added to the `[video]` section and `devices` to the inventory.
fn config_with(mq: &str, port: u16, video: &str, devices: &str) -> TestConfig {
    std::env::set_var(PASSWORD_ENV, PASSWORD);
    let video = format!(
        "[video]\nlisten = \"127.0.0.1:{port}\"\nserver_id = \"{SERVER}\"\n\
         password_env = \"{PASSWORD_ENV}\"\nkeepalive_s = {KEEPALIVE_S}\nkeepalive_misses = {MISSES}\n\
         max_message_bytes = 4096\n{video}\n"
    );
    let inventory = devices.to_string()
        + &format!(
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
    let keys = [
        ("device", device),
        ("server", SERVER),
        ("domain", DOMAIN),
        ("ch_on", CH_ON),
        ("ch_off", CH_OFF),
    ];
    crate::common::sipp::run(port, transport, scenario, &keys, (device, password)).await
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
    assert_eq!(nvr["gb_id"], NVR, "{nvr}");
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
    assert_eq!(
        on["gb_id"], CH_ON,
        "a channel's GB/T 28181 ID is its id: {on}"
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
    assert_eq!(
        metric(
            &metrics,
            "safegate_video_catalogs_total{state=\"complete\"}"
        ),
        Some(1.0),
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
async fn a_device_with_its_own_password_registers_with_it_and_not_with_the_shared_one() {
    let _load = shared().await;
    const OWN_ENV: &str = "SAFEGATE_TEST_VIDEO_NVR2_PASSWORD";
    const NVR2: &str = "34020000001180000002";
    std::env::set_var(OWN_ENV, "nvr2-own-9");
    let mq = Mosquitto::start();
    let port = free_port();
    let video = format!("device_password_env = {{ \"{NVR2}\" = \"{OWN_ENV}\" }}\n");
    let devices = format!(
        "[[devices]]\nid = \"nvr2\"\nsite = \"p1\"\nkind = \"video\"\nsystem = \"cctv\"\n\
         protocol = \"gb28181\"\ngb_id = \"{NVR2}\"\ninterval_s = 60\n\n"
    );
    let cfg = config_with(&mq.url(), port, &video, &devices);
    let (_gw, api) = start_ready(&cfg).await;

    // The shared password is refused for NVR2; its own is taken; NVR1 keeps the shared one.
    sipp(port, "gb_register_refused.xml", NVR2, PASSWORD).await;
    sipp(port, "gb_register.xml", NVR2, "nvr2-own-9").await;
    sipp(port, "gb_register.xml", NVR, PASSWORD).await;
    let v = wait_json(&devices_url(&api), WAIT, |v| {
        device(v, "nvr2")["state"] == "online" && device(v, "nvr1")["state"] == "online"
    })
    .await;
    assert_eq!(device(&v, "nvr2")["protocol"], "gb28181", "{v}");
    let metrics = get_text(&format!("{api}/metrics")).await;
    assert_eq!(
        metric(
            &metrics,
            "safegate_video_refused_total{reason=\"wrong_password\"}"
        ),
        Some(1.0),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_password_variable_left_unset_stops_the_start_with_its_name() {
    let _load = shared().await;
    let mq = Mosquitto::start();
    let port = free_port();
    let video =
        "device_password_env = { \"34020000001180000001\" = \"SAFEGATE_TEST_VIDEO_UNSET\" }\n";
    let cfg = config_with(&mq.url(), port, video, "");
    std::env::remove_var("SAFEGATE_TEST_VIDEO_UNSET");
    match safegate::runtime::start(cfg.load()).await {
        Ok(gw) => {
            gw.stop().await;
            panic!("must not start without the device's password");
        }
        Err(e) => {
            let e = e.to_string();
            assert!(
                e.contains("device_password_env") && e.contains("SAFEGATE_TEST_VIDEO_UNSET"),
                "{e}"
            );
        }
    }
}

#[tokio::test]
async fn over_tcp_a_closed_connection_takes_the_nvr_offline_at_once() {
    let _load = shared().await;
    let mq = Mosquitto::start();
    // Port 0: the gateway says where it is bound, UDP and TCP alike.
    let cfg = config(&mq.url(), 0);
    let clock = test_clock();
    let (gw, api) = start_ready_on(&cfg, clock.clock()).await;
    let port = gw.video_addr.expect("the video endpoint's address").port();
    assert_ne!(port, 0);
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

/// The datagrams from the gateway on `socket` until `enough` holds for them (in either
/// order: a reply and the gateway's own request may cross).
async fn datagrams(
    socket: &tokio::net::UdpSocket,
    enough: impl Fn(&[String]) -> bool,
) -> Vec<String> {
    let mut buf = vec![0u8; 65_536];
    let mut got = Vec::new();
    while !enough(&got) {
        let (n, _) = tokio::time::timeout(WAIT, socket.recv_from(&mut buf))
            .await
            .unwrap_or_else(|_| panic!("no more datagrams from the gateway; got {got:?}"))
            .unwrap();
        got.push(String::from_utf8_lossy(&buf[..n]).to_string());
    }
    got
}

#[tokio::test]
async fn alarm_notifications_raise_video_alarms_by_priority_once_each_and_are_answered() {
    let _load = shared().await;
    let mq = Mosquitto::start();
    let port = free_port();
    let cfg = config(&mq.url(), port);
    let (_gw, api) = start_ready(&cfg).await;
    sipp(port, "gb_nvr.xml", NVR, PASSWORD).await;
    wait_json(&devices_url(&api), WAIT, |v| {
        has(v, CH_ON) && device(v, CH_ON)["state"] == "online"
    })
    .await;

    // SIPp: the channel's alarm at priority 1, the same SN again, the NVR's at priority 3.
    sipp(port, "gb_alarm.xml", NVR, PASSWORD).await;
    // One more from a socket of ours, without a priority: the gateway's standard response
    // comes back to where the device last spoke from.
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let body = format!(
        "<?xml version=\"1.0\"?><Notify><CmdType>Alarm</CmdType><SN>9</SN>\
         <DeviceID>{NVR}</DeviceID><AlarmMethod>2</AlarmMethod></Notify>"
    );
    socket
        .send_to(&nvr_message(&body, None), format!("127.0.0.1:{port}"))
        .await
        .unwrap();
    let is_answer = |t: &String| {
        t.starts_with("MESSAGE ")
            && t.contains("<CmdType>Alarm</CmdType>")
            && t.contains("<SN>9</SN>")
    };
    let got = datagrams(&socket, |g| {
        g.iter().any(|t| t.starts_with("SIP/2.0 200")) && g.iter().any(is_answer)
    })
    .await;
    let answer = got.iter().find(|t| is_answer(t)).unwrap();
    assert!(answer.contains("<Response>"), "{answer}");
    assert!(answer.contains("<Result>OK</Result>"), "{answer}");
    assert!(
        answer.contains(&format!("<DeviceID>{NVR}</DeviceID>")),
        "{answer}"
    );

    // Three alarms of type video (SN 7 once), levels on the default two-level scheme:
    // priority 1 → 2, priority 3 → 1, none → 1. Each cleared at once, open until acknowledged.
    let url = format!("{api}/api/v1/alarms?site=p1&type=video");
    let v = wait_json(&url, WAIT, |v| {
        v["alarms"].as_array().is_some_and(|a| a.len() >= 3)
    })
    .await;
    let alarms = v["alarms"].as_array().unwrap();
    let mut got: Vec<(String, u64, String)> = alarms
        .iter()
        .map(|a| {
            (
                a["device"].as_str().unwrap_or("").to_string(),
                a["level"].as_u64().unwrap_or(0),
                a["state"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    got.sort();
    let want = |d: &str, l| (d.to_string(), l, "cleared_unacked".to_string());
    assert_eq!(
        got,
        vec![want(CH_ON, 2), want("nvr1", 1), want("nvr1", 1)],
        "{v}"
    );
    let metrics = get_text(&format!("{api}/metrics")).await;
    assert_eq!(
        metric(
            &metrics,
            "safegate_alarm_events_total{alarm_type=\"video\",event=\"raised\"}"
        ),
        Some(3.0),
        "{metrics}"
    );
}

/// A response from the gateway on `socket`, the gateway's own requests (catalog query,
/// SUBSCRIBE) left aside.
async fn response(socket: &tokio::net::UdpSocket) -> gb28181_rs::SipMessage {
    let mut buf = vec![0u8; 65_536];
    loop {
        let (n, _) = tokio::time::timeout(WAIT, socket.recv_from(&mut buf))
            .await
            .expect("a datagram from the gateway")
            .unwrap();
        let text = String::from_utf8_lossy(&buf[..n]).to_string();
        if text.starts_with("SIP/2.0 ") {
            return gb28181_rs::SipMessage::parse(&text).expect("gb28181-rs reads the response");
        }
    }
}

fn peer_channel(n: u32, status: &str) -> gb28181_rs::manscdp::ChannelItem {
    gb28181_rs::manscdp::ChannelItem {
        device_id: format!("340200000013100000{n:02}"),
        name: format!("通道{n}"),
        manufacturer: "peer".into(),
        model: "nvr".into(),
        owner: String::new(),
        civil_code: DOMAIN.into(),
        address: String::new(),
        parental: 0,
        parent_id: NVR.into(),
        safety_way: 0,
        register_way: 1,
        secrecy: 0,
        status: status.into(),
        ip_address: String::new(),
        port: 0,
        longitude: 0.0,
        latitude: 0.0,
        ptz_type: None,
        photoelectric_imaging_type: None,
    }
}

#[tokio::test]
async fn a_gb28181_rs_nvr_with_8_channels_joins_over_udp_with_its_off_channel_not_online() {
    use gb28181_rs::client::{build_catalog_response_page, build_keepalive_notify};
    use gb28181_rs::{build_digest_auth, build_register_request, parse_401_challenge};
    let _load = shared().await;
    let mq = Mosquitto::start();
    let port = free_port();
    let cfg = config(&mq.url(), port);
    let (_gw, api) = start_ready(&cfg).await;
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let me = socket.local_addr().unwrap().port();
    let gw = format!("127.0.0.1:{port}");
    let register = |auth: Option<&str>, cseq: u32| {
        build_register_request(
            NVR,
            "127.0.0.1",
            me,
            SERVER,
            DOMAIN,
            3600,
            auth,
            "peer-call-1",
            cseq,
            "tag1",
            "peer",
        )
        .serialize()
    };
    socket
        .send_to(register(None, 1).as_bytes(), &gw)
        .await
        .unwrap();
    let challenge = response(&socket).await;
    assert_eq!(challenge.status_code.map(|s| s.code()), Some(401));
    let c = parse_401_challenge(&challenge).expect("gb28181-rs reads the challenge");
    let auth = build_digest_auth(
        NVR,
        &c.realm,
        PASSWORD,
        &c.nonce,
        &format!("sip:{SERVER}@{DOMAIN}"),
        "REGISTER",
        c.algorithm.as_deref().unwrap_or(""),
        c.qop.as_deref(),
    );
    socket
        .send_to(register(Some(&auth), 2).as_bytes(), &gw)
        .await
        .unwrap();
    let ok = response(&socket).await;
    assert_eq!(ok.status_code.map(|s| s.code()), Some(200));
    assert!(ok.get_header("Date").is_some());
    let ka = build_keepalive_notify("9", NVR, DOMAIN, "127.0.0.1", me, "OK", 3).unwrap();
    socket
        .send_to(ka.serialize().as_bytes(), &gw)
        .await
        .unwrap();
    assert_eq!(
        response(&socket).await.status_code.map(|s| s.code()),
        Some(200)
    );
    // Eight channels, the fifth OFF, in gb28181-rs's pages of three.
    let channels: Vec<_> = (1..=8)
        .map(|n| peer_channel(n, if n == 5 { "OFF" } else { "ON" }))
        .collect();
    for (i, chunk) in channels.chunks(3).enumerate() {
        let page = build_catalog_response_page(
            "41",
            NVR,
            DOMAIN,
            "127.0.0.1",
            me,
            10 + i as u32,
            chunk,
            8,
        )
        .unwrap();
        socket
            .send_to(page.serialize().as_bytes(), &gw)
            .await
            .unwrap();
        assert_eq!(
            response(&socket).await.status_code.map(|s| s.code()),
            Some(200)
        );
    }
    let online = |v: &Value| {
        (1..=8)
            .filter(|n| {
                let id = format!("340200000013100000{n:02}");
                has(v, &id) && device(v, &id)["state"] == "online"
            })
            .count()
    };
    let v = wait_json(&devices_url(&api), WAIT, |v| online(v) == 7).await;
    assert_eq!(device(&v, "nvr1")["state"], "online");
    let off = device(&v, "34020000001310000005");
    assert_eq!(off["declared"], "video", "{off}");
    assert_ne!(off["state"], "online", "{off}");
}

#[tokio::test]
async fn the_video_systems_online_rate_over_a_scripted_outage_is_the_hand_computed_one() {
    let _load = shared().await;
    let mq = Mosquitto::start();
    let port = free_port();
    let cfg = config(&mq.url(), port);
    let clock = test_clock();
    let (_gw, api) = start_ready_on(&cfg, clock.clock()).await;
    // T0: REGISTER and a keepalive; nothing more until T0 + 30 s (offline at T0 + 15 s);
    // a keepalive at T0 + 30 s brings it back until the window's end at T0 + 40 s.
    let t0 = clock.now_ms();
    sipp(port, "gb_register.xml", NVR, PASSWORD).await;
    wait_json(&devices_url(&api), WAIT, |v| {
        device(v, "nvr1")["state"] == "online"
    })
    .await;
    clock.advance(Duration::from_secs(30));
    wait_json(&devices_url(&api), WAIT, |v| {
        device(v, "nvr1")["state"] == "offline"
    })
    .await;
    sipp(port, "gb_keepalive.xml", NVR, PASSWORD).await;
    wait_json(&devices_url(&api), WAIT, |v| {
        device(v, "nvr1")["state"] == "online"
    })
    .await;
    clock.advance(Duration::from_secs(10));
    // 联网在线率 over [T0, T0 + 40 s): online 15 s + 10 s = 25,000 of 40,000 unit-ms.
    let (t1, t2) = (t0, t0 + 40_000);
    let (status, ind) = get(&format!(
        "{api}/api/v1/indicators?scope=site:p1&from={t1}&to={t2}"
    ))
    .await;
    assert_eq!(status, 200, "{ind}");
    let online = indicator(&ind, "online_rate", None);
    assert_eq!(online["exact"]["num"], 25_000, "{online}");
    assert_eq!(online["exact"]["den"], 40_000, "{online}");
}

/// A MESSAGE from the NVR with `body`, declaring `length` (the body's own when `None`).
fn nvr_message(body: &str, length: Option<&str>) -> Vec<u8> {
    let length = length.map_or(body.len().to_string(), str::to_string);
    format!(
        "MESSAGE sip:{SERVER}@{DOMAIN} SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:5999;rport;branch=z9hG4bKbad\r\n\
         From: <sip:{NVR}@{DOMAIN}>;tag=bad\r\nTo: <sip:{SERVER}@{DOMAIN}>\r\n\
         Call-ID: bad-input-1\r\nCSeq: 9 MESSAGE\r\n\
         Content-Type: Application/MANSCDP+xml\r\nContent-Length: {length}\r\n\r\n{body}"
    )
    .into_bytes()
}

#[tokio::test]
async fn bad_inputs_over_udp_and_tcp_are_refused_by_reason_and_disturb_nothing() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let _load = shared().await;
    let mq = Mosquitto::start();
    let port = free_port();
    let cfg = config(&mq.url(), port);
    let (_gw, api) = start_ready(&cfg).await;
    sipp(port, "gb_register.xml", NVR, PASSWORD).await;
    wait_json(&devices_url(&api), WAIT, |v| {
        device(v, "nvr1")["state"] == "online"
    })
    .await;

    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let gw = format!("127.0.0.1:{port}");
    let doctype = "<?xml version=\"1.0\"?><!DOCTYPE a [<!ENTITY b \"bbbb\">]><Notify>&b;</Notify>";
    let unknown = format!(
        "<?xml version=\"1.0\"?><Notify><CmdType>Teleport</CmdType><SN>1</SN>\
         <DeviceID>{NVR}</DeviceID></Notify>"
    );
    let inputs: Vec<(Vec<u8>, Option<u16>)> = vec![
        (b"hello\r\n\r\n".to_vec(), None),
        (vec![b'A'; 5000], None),
        (nvr_message("<Notify/>", Some("500")), None),
        (nvr_message(doctype, None), Some(400)),
        (nvr_message(&unknown, None), Some(400)),
    ];
    for (bytes, answer) in inputs {
        socket.send_to(&bytes, &gw).await.unwrap();
        if let Some(code) = answer {
            let r = response(&socket).await;
            assert_eq!(r.status_code.map(|s| s.code()), Some(code));
        }
    }
    // Over TCP, a Content-Length that is not a number: refused, and the connection closed.
    let mut tcp = tokio::net::TcpStream::connect(&gw).await.unwrap();
    tcp.write_all(&nvr_message("<Notify/>", Some("abc")))
        .await
        .unwrap();
    let mut rest = Vec::new();
    let n = tokio::time::timeout(WAIT, tcp.read_to_end(&mut rest))
        .await
        .expect("the gateway closes the connection")
        .unwrap_or(0);
    assert_eq!(n, 0, "no answer on an unframed stream");

    let want = [
        ("sip_malformed", 1.0),
        ("too_large", 1.0),
        ("content_length", 2.0),
        ("xml_doctype", 1.0),
        ("unknown_cmdtype", 1.0),
    ];
    let mut text = String::new();
    for _ in 0..200 {
        text = get_text(&format!("{api}/metrics")).await;
        let all = want.iter().all(|(reason, n)| {
            metric(
                &text,
                &format!("safegate_video_refused_total{{reason=\"{reason}\"}}"),
            ) == Some(*n)
        });
        if all {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for (reason, n) in want {
        let got = metric(
            &text,
            &format!("safegate_video_refused_total{{reason=\"{reason}\"}}"),
        );
        assert_eq!(got, Some(n), "{reason}: {text}");
    }
    let rej = wait_json(&format!("{api}/api/v1/rejections"), WAIT, |v| {
        v["counts"]["manscdp_malformed"] == 2
    })
    .await;
    assert_eq!(rej["counts"]["sip_malformed"], 3, "{rej}");
    assert_eq!(rej["counts"]["payload_too_large"], 1, "{rej}");
    // Nothing else disturbed: the NVR is online and its keepalive is taken.
    sipp(port, "gb_keepalive.xml", NVR, PASSWORD).await;
    let (_, v) = get(&devices_url(&api)).await;
    assert_eq!(device(&v, "nvr1")["state"], "online", "{v}");
}
