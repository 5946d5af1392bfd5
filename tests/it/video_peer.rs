//! The video core against an independent device implementation, gb28181-rs (a GB/T 28181
//! device-side library), byte for byte but without sockets: its REGISTER is read by
//! `sip`, decided by the registry, our 401 is read back by gb28181-rs, which computes its
//! own digest answer (its own MD5 code), and that answer registers; its keepalive and its
//! paged catalog answer (written in the attribute form) are read and gathered. The
//! end-to-end test over UDP and TCP comes with the transports.

use gb28181_rs::client::{build_catalog_response_page, build_keepalive_notify};
use gb28181_rs::manscdp::ChannelItem;
use gb28181_rs::{build_digest_auth, build_register_request, parse_401_challenge, SipMessage};
use safegate::sources::video::manscdp::{self, ChannelStatus};
use safegate::sources::video::session::{Change, Link, Registry, Reply, Timing};
use safegate::sources::video::sip;

/// An NVR (type code 118).
const DEVICE: &str = "34020000001180000001";
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
    let req = m.register(Link::Udp("127.0.0.1:5070".parse().unwrap()));
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

fn channel(n: u32, status: &str) -> ChannelItem {
    ChannelItem {
        device_id: format!("340200000013100000{n:02}"),
        name: format!("通道{n}"),
        manufacturer: "peer".into(),
        model: "nvr".into(),
        owner: String::new(),
        civil_code: DOMAIN.into(),
        address: String::new(),
        parental: 0,
        parent_id: DEVICE.into(),
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

/// A MESSAGE gb28181-rs built, through our reading into the registry.
fn deliver(
    r: &mut Registry,
    now: i64,
    msg: &SipMessage,
) -> safegate::sources::video::session::Decision {
    let bytes = msg.serialize();
    let m = sip::read_datagram(bytes.as_bytes(), 65_535).expect("gb28181-rs's MESSAGE reads");
    let body = manscdp::parse(m.request.body(), 65_535).expect("its body reads");
    r.message(
        now,
        &m.device_id,
        Link::Udp("127.0.0.1:5070".parse().unwrap()),
        body,
    )
}

#[test]
fn a_gb28181_rs_nvr_keeps_alive_and_its_paged_catalog_of_8_channels_is_gathered() {
    let mut r = registry("12345678");
    let (_, challenge) = exchange(&mut r, T0, 1, None);
    let auth = answer(&challenge, "12345678");
    let (reply, _) = exchange(&mut r, T0, 2, Some(&auth));
    assert_eq!(reply.status(), 200);

    let ka = build_keepalive_notify("9", DEVICE, DOMAIN, "127.0.0.1", 5070, "OK", 3).unwrap();
    let d = deliver(&mut r, T0 + 60_000, &ka);
    assert_eq!(d.reply, Some(Reply::Accepted));
    assert_eq!(r.online_until(DEVICE), Some(T0 + 60_000 + 180_000));

    // Eight channels, the fifth OFF, in pages of three as gb28181-rs pages them (SumNum the
    // total on every page); delivered out of order, one page twice.
    let channels: Vec<ChannelItem> = (1..=8)
        .map(|n| channel(n, if n == 5 { "OFF" } else { "ON" }))
        .collect();
    let pages: Vec<SipMessage> = channels
        .chunks(3)
        .enumerate()
        .map(|(i, chunk)| {
            build_catalog_response_page(
                "41",
                DEVICE,
                DOMAIN,
                "127.0.0.1",
                5070,
                10 + i as u32,
                chunk,
                8,
            )
            .unwrap()
        })
        .collect();
    let mut catalog = None;
    for (k, i) in [2usize, 0, 0, 1].into_iter().enumerate() {
        let d = deliver(&mut r, T0 + 61_000 + k as i64, &pages[i]);
        assert_eq!(d.reply, Some(Reply::Accepted));
        if let Some(Change::Catalog { items, .. }) = d.changes.into_iter().next() {
            assert!(catalog.is_none());
            catalog = Some(items);
        }
    }
    let items = catalog.expect("the catalog completes on its last page");
    assert_eq!(items.len(), 8);
    let statuses: Vec<ChannelStatus> = items.iter().map(|i| i.status).collect();
    let mut want = vec![ChannelStatus::Online; 8];
    want[4] = ChannelStatus::Offline;
    assert_eq!(statuses, want);
    assert_eq!(items[0].name, "通道1");
    // Its pages carry no ParentID: the channels belong to the NVR that sent them.
    assert_eq!(items[0].parent_id, None);
    assert_eq!(manscdp::type_code(&items[0].device_id), Some(131));
}
