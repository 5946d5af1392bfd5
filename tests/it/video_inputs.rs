//! Property tests of the GB/T 28181 core's input parsers and registry: any bytes a device or
//! an attacker sends are refused with a reason or read, never a panic; the framing never
//! claims more than it holds; and whatever the events, an online device is before its
//! deadline. `PROPTEST_CASES=20000 cargo test --test it video_inputs` runs them longer.

use proptest::prelude::*;
use proptest::test_runner::Config as ProptestConfig;
use safegate::sources::video::session::{Link, Register, Registry, Timing};
use safegate::sources::video::{digest, manscdp, sip};

fn cases(n: u32) -> ProptestConfig {
    let mut c = ProptestConfig::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        c.cases = n;
    }
    c.failure_persistence = None;
    c
}

const CATALOG: &str = "<?xml version=\"1.0\" encoding=\"GB2312\"?>\r\n<Response>\r\n\
    <CmdType>Catalog</CmdType>\r\n<SN>7</SN>\r\n<DeviceID>34020000001180000001</DeviceID>\r\n\
    <SumNum>2</SumNum>\r\n<DeviceList Num=\"2\">\r\n<Item>\r\n\
    <DeviceID>34020000001310000001</DeviceID>\r\n<Name>Cam &amp; 1</Name>\r\n\
    <Status>ON</Status>\r\n</Item>\r\n<Item>\r\n<DeviceID>34020000001310000002</DeviceID>\r\n\
    <Status>VLOST</Status>\r\n</Item>\r\n</DeviceList>\r\n</Response>\r\n";

const MESSAGE: &str = "MESSAGE sip:34020000002000000001@3402000000 SIP/2.0\r\n\
    Via: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK9\r\n\
    From: <sip:34020000001180000001@3402000000>;tag=1\r\n\
    To: <sip:34020000002000000001@3402000000>\r\n\
    Call-ID: m1\r\nCSeq: 3 MESSAGE\r\nContent-Type: Application/MANSCDP+xml\r\n\
    Content-Length: 12\r\n\r\n<Notify/>\r\n\r\n";

/// Random bytes, or a valid input with one byte changed, a cut, or a splice of random bytes.
fn mangled(valid: &'static str) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..300),
        (any::<prop::sample::Index>(), any::<u8>()).prop_map(move |(i, b)| {
            let mut v = valid.as_bytes().to_vec();
            let at = i.index(v.len());
            v[at] = b;
            v
        }),
        any::<prop::sample::Index>().prop_map(move |i| {
            let v = valid.as_bytes();
            v[..i.index(v.len())].to_vec()
        }),
        (
            any::<prop::sample::Index>(),
            prop::collection::vec(any::<u8>(), 1..40)
        )
            .prop_map(move |(i, junk)| {
                let mut v = valid.as_bytes().to_vec();
                let at = i.index(v.len());
                v.splice(at..at, junk);
                v
            }),
    ]
}

proptest! {
    #![proptest_config(cases(2000))]

    /// MANSCDP: read or refused with one of the documented reasons.
    #[test]
    fn manscdp_bodies_are_read_or_refused_by_reason(body in mangled(CATALOG), max in 0usize..600) {
        match manscdp::parse(&body, max) {
            Ok(_) => prop_assert!(body.len() <= max),
            Err(e) => prop_assert!([
                "too_large", "bad_charset", "xml_doctype", "xml_entity", "xml_malformed",
                "unknown_cmdtype", "bad_field",
            ].contains(&e.code()), "{e}"),
        }
    }

    /// SIP: a datagram is read or refused by reason; a stream frame never claims more bytes
    /// than it holds or than the bound.
    #[test]
    fn sip_bytes_are_read_or_refused_and_frames_stay_in_bounds(bytes in mangled(MESSAGE), max in 0usize..600) {
        match sip::read_datagram(&bytes, max) {
            Ok(m) => prop_assert!(bytes.len() <= max && !m.device_id.is_empty()),
            Err(e) => prop_assert!([
                "too_large", "content_length", "sip_malformed", "sip_missing_header",
            ].contains(&e.code()), "{e}"),
        }
        match sip::frame(&bytes, max) {
            Ok(sip::Frame::Message(n)) => {
                prop_assert!(n <= bytes.len() && n <= max);
                let _ = sip::read(&bytes[..n]);
            }
            Ok(sip::Frame::Ping(n)) => prop_assert!(n >= 1 && n <= bytes.len()),
            Ok(sip::Frame::Incomplete) => prop_assert!(bytes.len() <= max),
            Err(e) => prop_assert!(["too_large", "content_length"].contains(&e.code())),
        }
    }

    /// Digest: any header is read or refused; a response computed for any nc, cnonce and
    /// realm text verifies with its password and with no other.
    #[test]
    fn digest_headers_are_read_and_any_nc_realm_verifies(
        junk in "\\PC{0,200}",
        nc in "[0-9A-Za-z]{1,12}",
        cnonce in "[ -~]{0,20}",
        realm in "[ -~]{0,30}",
        password in "[ -~]{1,20}",
    ) {
        let _ = digest::parse(&junk);
        let mut c = digest::Credentials {
            username: "34020000001320000001".into(),
            realm: realm.clone(),
            nonce: "n".into(),
            uri: "sip:34020000002000000001@3402000000".into(),
            qop: Some("auth".into()),
            nc: Some(nc.clone()),
            cnonce: Some(cnonce.clone()),
            ..Default::default()
        };
        c.response = digest::expected(&c, "REGISTER", &password).unwrap();
        let header = format!(
            "Digest username=\"{}\", realm=\"{}\", nonce=\"n\", uri=\"{}\", response=\"{}\", qop=auth, nc={nc}, cnonce=\"{}\"",
            c.username, quoted(&realm), c.uri, c.response, quoted(&cnonce)
        );
        let read = digest::parse(&header).unwrap();
        prop_assert_eq!(&read, &c);
        prop_assert!(digest::verify(&read, "REGISTER", &password).is_ok());
        let other = format!("{password}x");
        prop_assert!(digest::verify(&read, "REGISTER", &other).is_err());
    }
}

/// A quoted-string's content: `\` and `"` escaped (RFC 7230 §3.2.6).
fn quoted(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

#[derive(Debug, Clone)]
enum Event {
    Register { expires: u64, new_call: bool },
    Keepalive,
    Close,
    Tick,
}

fn event() -> impl Strategy<Value = (u32, Event)> {
    let e = prop_oneof![
        (0u64..400, any::<bool>())
            .prop_map(|(expires, new_call)| Event::Register { expires, new_call }),
        Just(Event::Keepalive),
        Just(Event::Close),
        Just(Event::Tick),
    ];
    (0u32..200_000, e)
}

proptest! {
    #![proptest_config(cases(500))]

    /// Whatever the order and spacing of registrations, keepalives, closes and ticks, a
    /// device the registry says is online is strictly before its deadline, and after an
    /// event that applies deadlines (all but a close) the next one is in the future.
    #[test]
    fn an_online_device_is_always_before_its_deadline(events in prop::collection::vec(event(), 1..60)) {
        const ID: &str = "34020000001180000001";
        let timing = Timing { nonce_ttl_ms: u64::MAX / 4, ..Timing::default() };
        let mut r = Registry::new(timing, "3402000000", "pw", [(ID.to_string(), None)]);
        let link = Link::Tcp { conn: 1, peer: "127.0.0.1:5061".parse().unwrap() };
        let mut now = 1_700_000_000_000i64;
        let challenge = r.register(now, &Register {
            device_id: ID, call_id: "c0", cseq: 1, expires: Some(60), authorization: None, link,
        }, "n0");
        prop_assert_eq!(challenge.reply.map(|r| r.status()), Some(401));
        let mut c = digest::Credentials {
            username: ID.into(), realm: "3402000000".into(), nonce: "n0".into(),
            uri: "sip:34020000002000000001@3402000000".into(), ..Default::default()
        };
        c.response = digest::expected(&c, "REGISTER", "pw").unwrap();
        let auth = format!(
            "Digest username=\"{ID}\", realm=\"3402000000\", nonce=\"n0\", uri=\"{}\", response=\"{}\"",
            c.uri, c.response
        );
        let (mut call, mut cseq) = (0u32, 1u32);
        for (dt, e) in events {
            now += i64::from(dt);
            let applies = !matches!(e, Event::Close);
            match e {
                Event::Register { expires, new_call } => {
                    if new_call { call += 1; }
                    cseq += 1;
                    let call_id = format!("c{call}");
                    r.register(now, &Register {
                        device_id: ID, call_id: &call_id, cseq, expires: Some(expires),
                        authorization: Some(&auth), link,
                    }, "n");
                }
                Event::Keepalive => {
                    let msg = manscdp::Message::Keepalive { sn: 1, device_id: ID.into() };
                    r.message(now, ID, link, msg);
                }
                Event::Close => { r.connection_closed(1); }
                Event::Tick => { r.tick(now); }
            }
            if r.is_online(ID) {
                let until = r.online_until(ID);
                prop_assert!(until.is_some_and(|u| now < u), "online at {} until {:?}", now, until);
            }
            if applies {
                let next = r.next_deadline();
                prop_assert!(next.is_none_or(|n| n > now), "next {:?} at {}", next, now);
            }
        }
    }
}
