//! MQTT over mutual TLS to a real Mosquitto whose ACL `safegate broker-acl` generated from the
//! inventory: a platform's readings for its own site arrive; for another site, and forged
//! alarm-board states, the broker refuses them; a client without a certificate cannot connect.
//! And the same rules on the embedded broker, where safegate's guard enforces them.

use crate::common::*;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS, TlsConfiguration, Transport};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::Duration;

struct Pki {
    ca_pem: String,
    ca: rcgen::Certificate,
    ca_key: KeyPair,
}

impl Pki {
    fn new() -> Pki {
        let ca_key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.distinguished_name
            .push(DnType::CommonName, "safegate test CA");
        p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca = p.self_signed(&ca_key).unwrap();
        Pki {
            ca_pem: ca.pem(),
            ca,
            ca_key,
        }
    }

    /// (certificate PEM, key PEM) for `cn`, signed by the CA.
    fn issue(&self, cn: &str, server: bool) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let sans = if server {
            vec!["127.0.0.1".to_string()]
        } else {
            vec![]
        };
        let mut p = CertificateParams::new(sans).unwrap();
        p.distinguished_name.push(DnType::CommonName, cn);
        p.extended_key_usages = vec![if server {
            ExtendedKeyUsagePurpose::ServerAuth
        } else {
            ExtendedKeyUsagePurpose::ClientAuth
        }];
        let cert = p.signed_by(&key, &self.ca, &self.ca_key).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    /// The CA and a server certificate for 127.0.0.1 named `cn`, as files in `dir`:
    /// (CA, certificate, key).
    fn server_files(&self, dir: &Path, cn: &str) -> (PathBuf, PathBuf, PathBuf) {
        let (cert, key) = self.issue(cn, true);
        (
            write(dir, "ca.pem", &self.ca_pem),
            write(dir, "server.pem", &cert),
            write(dir, "server.key", &key),
        )
    }
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// Sites p1 and p2, a detector each; `plat_a` may publish for p1, `plat_b` for p2.
fn inv(plat_a: &str, plat_b: &str) -> String {
    Inventory::default()
        .site("p1", "Park one", "park")
        .with(&format!("platforms = [\"{plat_a}\"]"))
        .detector("d1", 60.0)
        .site("p2", "Park two", "park")
        .with(&format!("platforms = [\"{plat_b}\"]"))
        .detector("d2", 60.0)
        .to_toml()
}

/// The first thing a new client with options `o` hears, within 10 s.
async fn first_answer(o: MqttOptions) -> Result<Event, rumqttc::ConnectionError> {
    let (_c, mut el) = AsyncClient::new(o, 10);
    tokio::time::timeout(Duration::from_secs(10), el.poll())
        .await
        .expect("an answer within 10 s")
}

/// A client with options `o` is refused at connect with `code`.
async fn refused_with(o: MqttOptions, code: rumqttc::ConnectReturnCode) {
    let r = first_answer(o).await;
    assert!(
        matches!(r, Err(rumqttc::ConnectionError::ConnectionRefused(c)) if c == code),
        "expected CONNACK {code:?}: {r:?}"
    );
}

/// A client with options `o` gets no CONNACK at all.
async fn never_connects(o: MqttOptions) {
    let r = first_answer(o).await;
    assert!(
        !matches!(r, Ok(Event::Incoming(Packet::ConnAck(_)))),
        "{r:?}"
    );
}

/// A platform's client over TLS with its certificate; returns once connected.
async fn platform(port: u16, pki: &Pki, cn: &str) -> Publisher {
    let (cert, key) = pki.issue(cn, false);
    let mut o = MqttOptions::new(cn, "127.0.0.1", port);
    o.set_transport(Transport::Tls(TlsConfiguration::Simple {
        ca: pki.ca_pem.clone().into_bytes(),
        alpn: None,
        client_auth: Some((cert.into_bytes(), key.into_bytes())),
    }));
    Publisher::connect_with(o).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn platforms_publish_only_for_their_own_sites_over_mutual_tls() {
    let _load = shared().await;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let pki = Pki::new();
    let work = tempfile::tempdir().unwrap();
    let (ca, server_cert, server_key) = pki.server_files(work.path(), "broker");
    let (gcert, gkey) = pki.issue("safegate", false);
    let (gw_cert, gw_key) = (
        write(work.path(), "gw.pem", &gcert),
        write(work.path(), "gw.key", &gkey),
    );

    // The gateway's configuration, then the ACL generated from it by the binary.
    let settings_for = |port: u16| {
        format!(
            "[mqtt]\nurl = \"mqtts://127.0.0.1:{port}\"\nclient_id = \"gw-tls\"\nca_file = \"{}\"\nclient_cert_file = \"{}\"\nclient_key_file = \"{}\"\nreconnect_min_ms = 100\nreconnect_max_ms = 1000\n\n[api]\nlisten = \"127.0.0.1:0\"\n",
            ca.display(),
            gw_cert.display(),
            gw_key.display()
        )
    };
    let acl_cfg = TestConfig::new(&settings_for(1), &inv("plat-a", "plat-b"));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_safegate"))
        .args(["broker-acl", "--config"])
        .arg(&acl_cfg.path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let acl = write(work.path(), "acl", &String::from_utf8(out.stdout).unwrap());

    let conf = |port: u16, dir: &Path| {
        format!(
            "listener {port} 127.0.0.1\ncafile {}\ncertfile {}\nkeyfile {}\nrequire_certificate true\nuse_identity_as_username true\nacl_file {}\npersistence false\nlog_dest file {}/mosquitto.log\nlog_type all\n# Started as root (CI), Mosquitto would drop to its own user and could not write the\n# test's log; as any other user this line does nothing.\nuser root\n",
            ca.display(),
            server_cert.display(),
            server_key.display(),
            acl.display(),
            dir.display()
        )
    };
    let mq = Mosquitto::start_with(conf);
    let cfg = TestConfig::new(&settings_for(mq.port), &inv("plat-a", "plat-b"));
    let (gw, api) = start_ready(&cfg).await;

    // Kept alive for the test: dropping a Publisher stops its connection.
    let (pa, pb) = (
        platform(mq.port, &pki, "plat-a").await,
        platform(mq.port, &pki, "plat-b").await,
    );
    let (a, b) = (&pa.client, &pb.client);
    let reading = |v: f64| json!({"values": {"lel": v}}).to_string();
    // plat-a: its own site, then another site's device, then a forged alarm-board state.
    a.publish(
        "safegate/v1/p1/d1/data",
        QoS::AtLeastOnce,
        false,
        reading(1.0),
    )
    .await
    .unwrap();
    a.publish(
        "safegate/v1/p2/d2/data",
        QoS::AtLeastOnce,
        false,
        reading(66.0),
    )
    .await
    .unwrap();
    a.publish(
        "safegate/v1/p1/alarms/99",
        QoS::AtLeastOnce,
        true,
        json!({"state": "cleared_acked"}).to_string(),
    )
    .await
    .unwrap();
    // Routed or refused by the broker before plat-b's reading is: had plat-a's d2 reading gone
    // through, it would reach the gateway first.
    pa.wait_acked(3).await;
    // plat-b: its own site.
    b.publish(
        "safegate/v1/p2/d2/data",
        QoS::AtLeastOnce,
        false,
        reading(5.0),
    )
    .await
    .unwrap();

    let devs = wait_json(
        &format!("{api}/api/v1/devices"),
        Duration::from_secs(20),
        |v| device(v, "d2")["last_values"]["lel"] == json!(5.0),
    )
    .await;
    assert_eq!(device(&devs, "d1")["last_values"]["lel"], json!(1.0));
    let text = get_text(&format!("{api}/metrics")).await;
    assert_eq!(
        metric(&text, "safegate_readings_accepted_total"),
        Some(2.0),
        "plat-a's reading for p2 never reached the gateway"
    );
    let log = std::fs::read_to_string(mq.dir.path().join("mosquitto.log")).unwrap_or_default();
    assert!(
        log.contains("Denied PUBLISH from plat-a") && log.contains("safegate/v1/p2/d2/data"),
        "the broker refused it:\n{log}"
    );
    assert!(log.contains("safegate/v1/p1/alarms/99"), "{log}");

    // No certificate, no connection.
    let mut o = MqttOptions::new("intruder", "127.0.0.1", mq.port);
    o.set_transport(Transport::Tls(TlsConfiguration::Simple {
        ca: pki.ca_pem.clone().into_bytes(),
        alpn: None,
        client_auth: None,
    }));
    never_connects(o).await;
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_password_file_and_acl_with_usernames() {
    let _load = shared().await;
    std::env::set_var("SAFEGATE_TEST_GW_MQTT_PW", "gateway-secret");
    let work = tempfile::tempdir().unwrap();
    let settings_for = |port: u16| {
        format!(
            "[mqtt]\nurl = \"mqtt://127.0.0.1:{port}\"\nclient_id = \"gw-pw\"\nusername = \"safegate\"\npassword_env = \"SAFEGATE_TEST_GW_MQTT_PW\"\nreconnect_min_ms = 100\nreconnect_max_ms = 1000\n\n[api]\nlisten = \"127.0.0.1:0\"\n"
        )
    };
    let acl_cfg = TestConfig::new(&settings_for(1), &inv("plat-a", "plat-b"));
    let (acl, passwd) = (work.path().join("acl"), work.path().join("passwd"));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_safegate"))
        .args(["broker-acl", "--config"])
        .arg(&acl_cfg.path)
        .arg("--passwords-out")
        .arg(&passwd)
        .env("SAFEGATE_MQTT_PASSWORD_PLAT_A", "a-secret")
        .env("SAFEGATE_MQTT_PASSWORD_PLAT_B", "b-secret")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(&acl, &out.stdout).unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&passwd).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // A missing password is named, and nothing is written.
    let missing = std::process::Command::new(env!("CARGO_BIN_EXE_safegate"))
        .args(["broker-acl", "--config"])
        .arg(&acl_cfg.path)
        .arg("--passwords-out")
        .arg(work.path().join("never"))
        .env("SAFEGATE_MQTT_PASSWORD_PLAT_A", "a-secret")
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("SAFEGATE_MQTT_PASSWORD_PLAT_B"));
    assert!(!work.path().join("never").exists());

    let conf = |port: u16, dir: &Path| {
        format!(
            "listener {port} 127.0.0.1\nallow_anonymous false\npassword_file {}\nacl_file {}\npersistence false\nlog_dest file {}/mosquitto.log\nlog_type all\nuser root\n",
            passwd.display(),
            acl.display(),
            dir.display()
        )
    };
    let mq = Mosquitto::start_with(conf);
    let cfg = TestConfig::new(&settings_for(mq.port), &inv("plat-a", "plat-b"));
    let (gw, api) = start_ready(&cfg).await;
    let connect = |user: &str, pw: &str| {
        let mut o = MqttOptions::new(format!("{user}-client"), "127.0.0.1", mq.port);
        o.set_credentials(user, pw);
        AsyncClient::new(o, 10)
    };
    // plat-a with its password: its own site arrives, another site's is denied.
    let (a, mut ela) = connect("plat-a", "a-secret");
    let drive = tokio::spawn(async move { while ela.poll().await.is_ok() {} });
    let reading = |v: f64| json!({"values": {"lel": v}}).to_string();
    a.publish(
        "safegate/v1/p2/d2/data",
        QoS::AtLeastOnce,
        false,
        reading(66.0),
    )
    .await
    .unwrap();
    a.publish(
        "safegate/v1/p1/d1/data",
        QoS::AtLeastOnce,
        false,
        reading(1.0),
    )
    .await
    .unwrap();
    wait_json(
        &format!("{api}/api/v1/devices"),
        Duration::from_secs(20),
        |v| device(v, "d1")["last_values"]["lel"] == json!(1.0),
    )
    .await;
    let devs = get(&format!("{api}/api/v1/devices")).await.1;
    assert_eq!(
        device(&devs, "d2")["state"],
        "never",
        "denied by the broker"
    );
    // A wrong password is refused at connect.
    let (_c, mut elw) = connect("plat-b", "wrong");
    let first = tokio::time::timeout(Duration::from_secs(10), elw.poll())
        .await
        .expect("an answer within 10 s");
    assert!(
        !matches!(first, Ok(Event::Incoming(Packet::ConnAck(ref c))) if c.code == rumqttc::ConnectReturnCode::Success),
        "{first:?}"
    );
    drive.abort();
    gw.stop().await;
}

/// A gateway on its embedded broker behind the guard: sites p1 and p2 of `inv` with platforms
/// `{tag}-plat-a` and `{tag}-plat-b` (passwords `a-pass` and `b-pass` in the environment), the
/// gateway logging in as `safegate`; `extra` adds `[mqtt]` settings, one per line.
async fn embedded_gateway(
    tag: &str,
    extra: &str,
) -> (TestConfig, u16, safegate::runtime::Gateway, String) {
    let up = tag.to_uppercase();
    std::env::set_var(format!("SAFEGATE_TEST_{up}_GW_PW"), "gw-pass");
    std::env::set_var(format!("SAFEGATE_MQTT_PASSWORD_{up}_PLAT_A"), "a-pass");
    std::env::set_var(format!("SAFEGATE_MQTT_PASSWORD_{up}_PLAT_B"), "b-pass");
    let port = free_port();
    let settings = format!(
        "[mqtt]\nembedded = true\nlisten = \"127.0.0.1:{port}\"\n{extra}client_id = \"gw-{tag}\"\nusername = \"safegate\"\npassword_env = \"SAFEGATE_TEST_{up}_GW_PW\"\nreconnect_min_ms = 100\nreconnect_max_ms = 1000\n\n[api]\nlisten = \"127.0.0.1:0\"\n"
    );
    let inv = inv(&format!("{tag}-plat-a"), &format!("{tag}-plat-b"));
    let cfg = TestConfig::new(&settings, &inv);
    let (gw, api) = start_ready(&cfg).await;
    (cfg, port, gw, api)
}

/// The next packet the platform received, within 10 s.
async fn next(rx: &mut tokio::sync::mpsc::UnboundedReceiver<Packet>) -> Packet {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("a packet within 10 s")
        .expect("the connection is up")
}

/// The embedded broker: safegate's guard enforces the inventory's ACL itself. A platform's
/// reading for its own site arrives; for another site (QoS 0, 1 and 2) and a forged alarm
/// state are dropped, acknowledged so its session goes on, counted and audited; subscribing
/// to another site's board fails, to its own board works; a last will on another site's
/// topic and bad logins cannot connect.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedded_broker_enforces_the_same_acl_itself() {
    let _load = shared().await;
    let (cfg, port, gw, api) = embedded_gateway("guard", "").await;
    let login = |user: &str, pw: &str| {
        let mut o = MqttOptions::new(format!("{user}-c"), "127.0.0.1", port);
        o.set_credentials(user, pw);
        o.set_keep_alive(Duration::from_secs(30));
        AsyncClient::new(o, 100)
    };
    // Platform A: every packet it receives goes to the test.
    let (a, mut ela) = login("guard-plat-a", "a-pass");
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let drive = tokio::spawn(async move {
        while let Ok(ev) = ela.poll().await {
            if let Event::Incoming(p) = ev {
                let _ = tx.send(p);
            }
        }
    });
    assert!(
        matches!(next(&mut rx).await, Packet::ConnAck(c) if c.code == rumqttc::ConnectReturnCode::Success)
    );
    let reading = |v: f64| json!({"values": {"lel": v}}).to_string();
    // Another site at QoS 1, 2 and 0, and a forged alarm-board state: each dropped by the
    // guard, and the QoS 1 and 2 ones still acknowledged to the platform.
    a.publish(
        "safegate/v1/p2/d2/data",
        QoS::AtLeastOnce,
        false,
        reading(66.0),
    )
    .await
    .unwrap();
    assert!(
        matches!(next(&mut rx).await, Packet::PubAck(_)),
        "denied but acknowledged"
    );
    a.publish(
        "safegate/v1/p2/d2/data",
        QoS::ExactlyOnce,
        false,
        reading(67.0),
    )
    .await
    .unwrap();
    assert!(matches!(next(&mut rx).await, Packet::PubRec(_)));
    assert!(matches!(next(&mut rx).await, Packet::PubComp(_)));
    a.publish(
        "safegate/v1/p2/d2/data",
        QoS::AtMostOnce,
        false,
        reading(68.0),
    )
    .await
    .unwrap();
    a.publish(
        "safegate/v1/p1/alarms/1",
        QoS::AtLeastOnce,
        true,
        json!({"state": "cleared_acked"}).to_string(),
    )
    .await
    .unwrap();
    assert!(matches!(next(&mut rx).await, Packet::PubAck(_)));
    // Another site's board: refused; its own board: granted, and the gateway's states arrive.
    a.subscribe("safegate/v1/p2/alarms/+", QoS::AtLeastOnce)
        .await
        .unwrap();
    match next(&mut rx).await {
        Packet::SubAck(s) => {
            assert_eq!(s.return_codes, vec![rumqttc::SubscribeReasonCode::Failure])
        }
        p => panic!("expected a SUBACK, got {p:?}"),
    }
    a.subscribe("safegate/v1/p1/alarms/+", QoS::AtLeastOnce)
        .await
        .unwrap();
    assert!(
        matches!(next(&mut rx).await, Packet::SubAck(s) if s.return_codes == vec![rumqttc::SubscribeReasonCode::Success(QoS::AtLeastOnce)])
    );
    // Its own site, on the same connection: arrives, and raises an alarm on the board.
    a.publish(
        "safegate/v1/p1/d1/data",
        QoS::AtLeastOnce,
        false,
        reading(30.0),
    )
    .await
    .unwrap();
    wait_json(
        &format!("{api}/api/v1/devices"),
        Duration::from_secs(20),
        |v| device(v, "d1")["last_values"]["lel"] == json!(30.0),
    )
    .await;
    let board = loop {
        match next(&mut rx).await {
            Packet::Publish(p) if p.topic.starts_with("safegate/v1/p1/alarms/") => break p,
            _ => continue,
        }
    };
    let state: serde_json::Value = serde_json::from_slice(&board.payload).unwrap();
    assert_eq!(state["device"], "d1");
    assert_eq!(state["state"], "active_unacked");
    // Platform B, for its own site: arrives.
    let (b, mut elb) = login("guard-plat-b", "b-pass");
    let drive_b = tokio::spawn(async move { while elb.poll().await.is_ok() {} });
    b.publish(
        "safegate/v1/p2/d2/data",
        QoS::AtLeastOnce,
        false,
        reading(2.0),
    )
    .await
    .unwrap();
    wait_json(
        &format!("{api}/api/v1/devices"),
        Duration::from_secs(20),
        |v| device(v, "d2")["last_values"]["lel"] == json!(2.0),
    )
    .await;
    // Wrong password, unknown user, no login at all: refused at connect.
    for (user, pw) in [("guard-plat-b", "wrong"), ("nobody", "x")] {
        let mut o = MqttOptions::new(format!("{user}-c"), "127.0.0.1", port);
        o.set_credentials(user, pw);
        refused_with(o, rumqttc::ConnectReturnCode::BadUserNamePassword).await;
    }
    // A last will on another site's state topic: the broker would publish it for A later.
    let mut o = MqttOptions::new("guard-plat-a-will", "127.0.0.1", port);
    o.set_credentials("guard-plat-a", "a-pass");
    o.set_last_will(rumqttc::LastWill::new(
        "safegate/v1/p2/d2/state",
        "offline",
        QoS::AtLeastOnce,
        true,
    ));
    refused_with(o, rumqttc::ConnectReturnCode::NotAuthorized).await;
    refused_with(
        MqttOptions::new("anon-c", "127.0.0.1", port),
        rumqttc::ConnectReturnCode::NotAuthorized,
    )
    .await;
    // Counted by reason, and in the audit trail with who and from where.
    let metrics = get_text(&format!("{api}/metrics")).await;
    let refused = |r: &str| {
        metric(
            &metrics,
            &format!("safegate_broker_refused_total{{reason=\"{r}\"}}"),
        )
    };
    assert_eq!(refused("publish_denied"), Some(4.0), "{metrics}");
    assert_eq!(
        metric(&metrics, "safegate_readings_accepted_total"),
        Some(2.0),
        "only the two readings for their own sites reached the gateway"
    );
    assert_eq!(refused("subscribe_denied"), Some(1.0));
    assert_eq!(refused("bad_login"), Some(3.0));
    assert_eq!(refused("will_denied"), Some(1.0));
    let audit = std::fs::read_to_string(cfg.dir.path().join("state/audit.log")).unwrap();
    let lines: Vec<serde_json::Value> = audit
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|l: &serde_json::Value| l["action"] == "mqtt_refused")
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l["who"] == "guard-plat-a" && l["detail"]["reason"] == "publish_denied"),
        "{lines:?}"
    );
    assert!(lines
        .iter()
        .all(|l| l["from"].as_str().unwrap().starts_with("127.0.0.1")));
    drive.abort();
    drive_b.abort();
    gw.stop().await;
}

/// The embedded broker over mutual TLS: the guard takes each client's identity from its
/// certificate's common name (as Mosquitto's `use_identity_as_username`) and applies the same
/// ACL; an unknown name, a missing certificate and plain TCP are refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedded_broker_over_mutual_tls_takes_identities_from_certificates() {
    let _load = shared().await;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let pki = Pki::new();
    let work = tempfile::tempdir().unwrap();
    let (ca, scert, skey) = pki.server_files(work.path(), "embedded broker");
    let extra = format!(
        "listen_tls_cert_file = \"{}\"\nlisten_tls_key_file = \"{}\"\nlisten_tls_client_ca_file = \"{}\"\n",
        scert.display(),
        skey.display(),
        ca.display()
    );
    let (_cfg, port, gw, api) = embedded_gateway("tls", &extra).await;
    let reading = |v: f64| json!({"values": {"lel": v}}).to_string();
    let lel_of = |d: &'static str, v: f64| {
        move |devs: &serde_json::Value| device(devs, d)["last_values"]["lel"] == json!(v)
    };
    let devices = format!("{api}/api/v1/devices");
    // Platform A, by its certificate alone: another site's reading is dropped, its own arrives.
    let a = platform(port, &pki, "tls-plat-a").await;
    a.send("safegate/v1/p2/d2/data", reading(66.0)).await;
    a.send("safegate/v1/p1/d1/data", reading(1.0)).await;
    wait_json(&devices, Duration::from_secs(20), lel_of("d1", 1.0)).await;
    let b = platform(port, &pki, "tls-plat-b").await;
    b.send("safegate/v1/p2/d2/data", reading(2.0)).await;
    wait_json(&devices, Duration::from_secs(20), lel_of("d2", 2.0)).await;

    // A certificate from the same CA, for a name the inventory does not know.
    let (cert, key) = pki.issue("stranger", false);
    let mut o = MqttOptions::new("stranger", "127.0.0.1", port);
    o.set_transport(Transport::Tls(TlsConfiguration::Simple {
        ca: pki.ca_pem.clone().into_bytes(),
        alpn: None,
        client_auth: Some((cert.into_bytes(), key.into_bytes())),
    }));
    refused_with(o, rumqttc::ConnectReturnCode::NotAuthorized).await;
    // No client certificate, and no TLS at all: no connection.
    let mut o = MqttOptions::new("no-cert", "127.0.0.1", port);
    o.set_transport(Transport::Tls(TlsConfiguration::Simple {
        ca: pki.ca_pem.clone().into_bytes(),
        alpn: None,
        client_auth: None,
    }));
    never_connects(o).await;
    never_connects(MqttOptions::new("plain", "127.0.0.1", port)).await;

    let metrics = get_text(&format!("{api}/metrics")).await;
    let refused = |r: &str| {
        metric(
            &metrics,
            &format!("safegate_broker_refused_total{{reason=\"{r}\"}}"),
        )
    };
    assert_eq!(refused("publish_denied"), Some(1.0), "{metrics}");
    assert_eq!(refused("bad_login"), Some(1.0), "the stranger");
    assert!(
        refused("tls_refused") >= Some(2.0),
        "no certificate, no TLS"
    );
    assert_eq!(
        metric(&metrics, "safegate_readings_accepted_total"),
        Some(2.0)
    );
    drop((a, b));
    gw.stop().await;
}

/// The guard serves at most `listen_max_connections` clients at once: one more is closed at
/// accept and counted, the ones connected keep working, and a freed slot is taken again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedded_broker_guard_bounds_its_connections() {
    let _load = shared().await;
    let (_cfg, port, gw, api) = embedded_gateway("cap", "listen_max_connections = 2\n").await;
    let opts = |id: &str, user: &str, pw: &str| {
        let mut o = MqttOptions::new(id, "127.0.0.1", port);
        o.set_credentials(user, pw);
        o.set_keep_alive(Duration::from_secs(30));
        o
    };
    let first = Publisher::connect_with(opts("cap-1", "cap-plat-a", "a-pass")).await;
    let second = Publisher::connect_with(opts("cap-2", "cap-plat-b", "b-pass")).await;
    // A third client: closed before any CONNACK.
    never_connects(opts("cap-3", "cap-plat-a", "a-pass")).await;
    // The connected ones keep working.
    second
        .send(
            "safegate/v1/p2/d2/data",
            json!({"values": {"lel": 3.0}}).to_string(),
        )
        .await;
    let devices = format!("{api}/api/v1/devices");
    wait_json(&devices, Duration::from_secs(20), |v| {
        device(v, "d2")["last_values"]["lel"] == json!(3.0)
    })
    .await;
    // A slot freed is a slot taken again.
    first.client.disconnect().await.unwrap();
    drop(first);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let again = loop {
        let (c, mut el) = AsyncClient::new(opts("cap-4", "cap-plat-a", "a-pass"), 10);
        if let Ok(Ok(Event::Incoming(Packet::ConnAck(_)))) =
            tokio::time::timeout(Duration::from_secs(5), el.poll()).await
        {
            break (
                c,
                tokio::spawn(async move { while el.poll().await.is_ok() {} }),
            );
        }
        assert!(tokio::time::Instant::now() < deadline, "no slot was freed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    again
        .0
        .publish(
            "safegate/v1/p1/d1/data",
            QoS::AtLeastOnce,
            false,
            json!({"values": {"lel": 4.0}}).to_string(),
        )
        .await
        .unwrap();
    wait_json(&devices, Duration::from_secs(20), |v| {
        device(v, "d1")["last_values"]["lel"] == json!(4.0)
    })
    .await;
    let metrics = get_text(&format!("{api}/metrics")).await;
    assert!(
        metric(
            &metrics,
            "safegate_broker_refused_total{reason=\"too_many_connections\"}"
        ) >= Some(1.0),
        "{metrics}"
    );
    again.1.abort();
    gw.stop().await;
}
