//! MQTT over mutual TLS to a real Mosquitto whose ACL `safegate broker-acl` generated from the
//! inventory: a platform's readings for its own site arrive; for another site, and forged
//! alarm-board states, the broker refuses them; a client without a certificate cannot connect.

mod common;

use common::*;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS, TlsConfiguration, Transport};
use serde_json::json;
use std::path::Path;
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
}

const INV: &str = r#"
[[sites]]
id = "p1"
name = "Park one"
kind = "park"
platforms = ["plat-a"]

[[sites]]
id = "p2"
name = "Park two"
kind = "park"
platforms = ["plat-b"]

[[devices]]
id = "d1"
site = "p1"
kind = "gas_combustible"
protocol = "mqtt"
interval_s = 60

[[devices]]
id = "d2"
site = "p2"
kind = "gas_combustible"
protocol = "mqtt"
interval_s = 60
"#;

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
    let _ = rustls::crypto::ring::default_provider().install_default();
    let pki = Pki::new();
    let work = tempfile::tempdir().unwrap();
    let w = |name: &str, text: &str| {
        let p = work.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let ca = w("ca.pem", &pki.ca_pem);
    let (scert, skey) = pki.issue("broker", true);
    let (server_cert, server_key) = (w("server.pem", &scert), w("server.key", &skey));
    let (gcert, gkey) = pki.issue("safegate", false);
    let (gw_cert, gw_key) = (w("gw.pem", &gcert), w("gw.key", &gkey));

    // The gateway's configuration, then the ACL generated from it by the binary.
    let settings_for = |port: u16| {
        format!(
            "[mqtt]\nurl = \"mqtts://127.0.0.1:{port}\"\nclient_id = \"gw-tls\"\nca_file = \"{}\"\nclient_cert_file = \"{}\"\nclient_key_file = \"{}\"\nreconnect_min_ms = 100\nreconnect_max_ms = 1000\n\n[api]\nlisten = \"127.0.0.1:0\"\n",
            ca.display(),
            gw_cert.display(),
            gw_key.display()
        )
    };
    let acl_cfg = TestConfig::new(&settings_for(1), INV);
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
    let acl = w("acl", &String::from_utf8(out.stdout).unwrap());

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
    let cfg = TestConfig::new(&settings_for(mq.port), INV);
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
    tokio::time::sleep(Duration::from_millis(500)).await;
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
    let (_c, mut el) = AsyncClient::new(o, 10);
    let first = tokio::time::timeout(Duration::from_secs(10), el.poll())
        .await
        .expect("an answer within 10 s");
    assert!(
        !matches!(first, Ok(Event::Incoming(Packet::ConnAck(_)))),
        "a client without a certificate must not connect: {first:?}"
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_password_file_and_acl_with_usernames() {
    std::env::set_var("SAFEGATE_TEST_GW_MQTT_PW", "gateway-secret");
    let work = tempfile::tempdir().unwrap();
    let settings_for = |port: u16| {
        format!(
            "[mqtt]\nurl = \"mqtt://127.0.0.1:{port}\"\nclient_id = \"gw-pw\"\nusername = \"safegate\"\npassword_env = \"SAFEGATE_TEST_GW_MQTT_PW\"\nreconnect_min_ms = 100\nreconnect_max_ms = 1000\n\n[api]\nlisten = \"127.0.0.1:0\"\n"
        )
    };
    let acl_cfg = TestConfig::new(&settings_for(1), INV);
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
    let cfg = TestConfig::new(&settings_for(mq.port), INV);
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
