//! The video core against an independent device implementation, gb28181-rs (a GB/T 28181
//! device-side library), byte for byte but without sockets: its REGISTER is read by
//! `sip`, decided by the registry, our 401 is read back by gb28181-rs, which computes its
//! own digest answer (its own MD5 code), and that answer registers. The end-to-end test over
//! UDP and TCP, with its keepalives and catalog, comes with the transports.

use gb28181_rs::{build_digest_auth, build_register_request, parse_401_challenge, SipMessage};
use safegate::sources::video::session::{Link, Register, Registry, Reply, Timing};
use safegate::sources::video::sip;

const DEVICE: &str = "34020000001320000001";
const SERVER: &str = "34020000002000000001";
const DOMAIN: &str = "3402000000";
const T0: i64 = 1_700_000_000_000;

fn registry(password: &str) -> Registry {
    Registry::new(
        Timing::default(),
        DOMAIN,
        password,
        [(DEVICE.to_string(), None)],
    )
}

/// The device's REGISTER (`auth` its Authorization header, if any) through our reading,
/// decision and reply, and the reply as the device reads it.
fn exchange(r: &mut Registry, now: i64, cseq: u32, auth: Option<&str>) -> (Reply, SipMessage) {
    let request = build_register_request(
        DEVICE,
        "127.0.0.1",
        5070,
        SERVER,
        DOMAIN,
        3600,
        auth,
        "peer-call-1",
        cseq,
        "tag1",
        "peer",
    )
    .serialize();
    let m = sip::read_datagram(request.as_bytes(), 65_535).expect("gb28181-rs's REGISTER reads");
    assert_eq!(m.device_id, DEVICE);
    let req = Register {
        device_id: &m.device_id,
        call_id: &m.call_id,
        cseq: m.cseq,
        expires: m.expires,
        authorization: m.authorization.as_deref(),
        link: Link::Udp("127.0.0.1:5070".parse().unwrap()),
    };
    let reply = r
        .register(now, &req, &format!("nonce{cseq}"))
        .reply
        .expect("a reply");
    let bytes = sip::respond(&m.request, &reply, "gw");
    let text = String::from_utf8(bytes).unwrap();
    let back = SipMessage::parse(&text).expect("gb28181-rs reads our reply");
    (reply, back)
}

/// The device's answer to our challenge, computed by gb28181-rs.
fn answer(challenge: &SipMessage, password: &str) -> String {
    let c = parse_401_challenge(challenge).expect("gb28181-rs reads our WWW-Authenticate");
    assert_eq!(c.realm, DOMAIN);
    assert_eq!(c.qop.as_deref(), Some("auth"));
    build_digest_auth(
        DEVICE,
        &c.realm,
        password,
        &c.nonce,
        &format!("sip:{SERVER}@{DOMAIN}"),
        "REGISTER",
        c.algorithm.as_deref().unwrap_or(""),
        c.qop.as_deref(),
    )
}

#[test]
fn a_gb28181_rs_device_registers_with_its_own_digest_and_a_wrong_password_is_refused() {
    let mut r = registry("12345678");
    let (reply, challenge) = exchange(&mut r, T0, 1, None);
    assert_eq!(reply.status(), 401);
    assert_eq!(challenge.status_code.map(|s| s.code()), Some(401));
    let auth = answer(&challenge, "12345678");
    assert!(auth.contains("nc=00000001"), "{auth}");
    let (reply, ok) = exchange(&mut r, T0 + 30, 2, Some(&auth));
    assert!(
        matches!(reply, Reply::Registered { expires: 3600, .. }),
        "{reply:?}"
    );
    assert_eq!(ok.status_code.map(|s| s.code()), Some(200));
    assert_eq!(ok.get_header("Expires"), Some("3600"));
    assert_eq!(ok.get_header("Date"), Some("2023-11-15T06:13:20.030"));
    assert!(r.is_online(DEVICE));

    let mut r = registry("12345678");
    let (_, challenge) = exchange(&mut r, T0, 1, None);
    let wrong = answer(&challenge, "87654321");
    let (reply, refused) = exchange(&mut r, T0 + 30, 2, Some(&wrong));
    assert_eq!(
        reply,
        Reply::Forbidden {
            reason: "wrong_password"
        }
    );
    assert_eq!(refused.status_code.map(|s| s.code()), Some(403));
    assert!(!r.is_online(DEVICE));
}
