//! Signed messages through a real broker: good, missing and forged signatures, with
//! `require_signature` on (site s1) and off (site s2, which has a key but accepts unsigned).

use crate::common::*;
use safegate::sources::mqtt::signature::sign;
use serde_json::json;
use std::time::Duration;

/// s1 requires signatures with its key, s2 checks them when there are any; a detector each.
fn inv() -> String {
    Inventory::default()
        .site("s1", "Signed park", "park")
        .with("require_signature = true")
        .with("signing_key_env = \"SAFEGATE_TEST_KEY_S1\"")
        .detector("d1", 60.0)
        .site("s2", "Optional park", "park")
        .with("signing_key_env = \"SAFEGATE_TEST_KEY_S2\"")
        .detector("d2", 60.0)
        .to_toml()
}

fn signed(key: &[u8], inner: &str) -> String {
    format!(
        r#"{{"payload": {inner}, "signature": "{}"}}"#,
        sign(key, inner.as_bytes())
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn good_missing_and_forged_signatures_with_require_signature_on_and_off() {
    let _load = shared().await;
    let (k1, k2) = (b"key-of-site-one".as_slice(), b"key-of-site-two".as_slice());
    std::env::set_var("SAFEGATE_TEST_KEY_S1", "key-of-site-one");
    std::env::set_var("SAFEGATE_TEST_KEY_S2", "key-of-site-two");
    let mq = Mosquitto::start();
    let cfg = TestConfig::new(&settings(&mq.url(), "gw-signing", None), &inv());
    let (gw, api) = start_ready(&cfg).await;
    let p = Publisher::connect(mq.port, "pub-signing").await;
    let reading = |v: f64| json!({"values": {"lel": v}}).to_string();
    let (t1, t2) = ("safegate/v1/s1/d1/data", "safegate/v1/s2/d2/data");

    // s1 requires signatures.
    p.send(t1, signed(k1, &reading(1.0))).await; // good
    p.send(t1, reading(2.0)).await; // missing
    p.send(t1, signed(k2, &reading(3.0))).await; // forged: another site's key
    p.send(t1, signed(k1, &reading(4.0)).replace("4.0", "9.0"))
        .await; // tampered
    p.send("safegate/v1/s1/d1/state", signed(k1, "\"offline\""))
        .await; // good, a state
                // s2 has a key but does not require it.
    p.send(t2, signed(k2, &reading(5.0))).await; // good
    p.send(t2, reading(6.0)).await; // unsigned: accepted
    p.send(t2, signed(k1, &reading(7.0))).await; // forged

    let rej = wait_json(
        &format!("{api}/api/v1/rejections"),
        Duration::from_secs(20),
        |v| v["counts"]["bad_signature"] == 3 && v["counts"]["missing_signature"] == 1,
    )
    .await;
    assert!(
        rej.to_string().contains("requires signed messages"),
        "{rej}"
    );
    let devs = wait_json(
        &format!("{api}/api/v1/devices"),
        Duration::from_secs(20),
        |v| device(v, "d2")["last_values"]["lel"] == json!(6.0),
    )
    .await;
    let d1 = device(&devs, "d1");
    assert_eq!(
        d1["last_values"]["lel"],
        json!(1.0),
        "only the good one: {d1}"
    );
    assert_eq!(
        d1["state"], "offline",
        "the signed state message counted: {d1}"
    );
    let text = get_text(&format!("{api}/metrics")).await;
    assert_eq!(metric(&text, "safegate_readings_accepted_total"), Some(3.0));
    assert_eq!(
        metric(
            &text,
            "safegate_readings_rejected_total{reason=\"bad_signature\"}"
        ),
        Some(3.0)
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_key_variable_stops_the_start_with_its_name() {
    let _load = shared().await;
    let inv = inv().replace("SAFEGATE_TEST_KEY_S1", "SAFEGATE_TEST_KEY_UNSET_9");
    let cfg = TestConfig::new(
        "[mqtt]\nurl = \"mqtt://127.0.0.1:1\"\n\n[api]\nlisten = \"127.0.0.1:0\"\n",
        &inv,
    );
    match safegate::runtime::start(cfg.load()).await {
        Ok(gw) => {
            gw.stop().await;
            panic!("must not start without the key");
        }
        Err(e) => assert!(e.to_string().contains("SAFEGATE_TEST_KEY_UNSET_9"), "{e}"),
    }
}
