//! The endpoint on a device's bytes, with no socket: registration with digest, the catalog
//! queries it sends, the channels it declares, and the offline states at their exact times.

use super::config::VideoSettings;
use super::digest::{self, Credentials};
use super::endpoint::{Endpoint, Output};
use super::fleet::{Fleet, Known};
use super::metrics::VideoMetrics;
use super::session::Registry;
use crate::core::{Reason, SourceEvent};
use crate::telemetry::Metrics;
use std::collections::HashMap;
use std::net::SocketAddr;

const NVR: &str = "34020000001180000001";
const CH_ON: &str = "34020000001320000001";
const CH_OFF: &str = "34020000001320000002";
const T0: i64 = 1_700_000_000_000;

fn endpoint() -> Endpoint {
    endpoint_at(200)
}

fn endpoint_at(address_rate_per_s: u32) -> Endpoint {
    let settings = VideoSettings {
        address_rate_per_s,
        server_id: "34020000002000000001".into(),
        password_env: Some("X".into()),
        keepalive_s: 10,
        keepalive_misses: 2,
        ..VideoSettings::default()
    };
    let known: HashMap<String, Known> = [(
        NVR.to_string(),
        Known {
            site: "m1".into(),
            device: "nvr1".into(),
            system: Some("cctv".into()),
        },
    )]
    .into();
    let ids = known.keys().map(|k| (k.clone(), None));
    let registry = Registry::new(settings.timing(), settings.domain(), "pw", ids);
    let fleet = Fleet::new(known, 10.0, 20.0);
    let m = VideoMetrics::register(&Metrics::new());
    Endpoint::new(
        &settings,
        registry,
        fleet,
        m,
        "127.0.0.1:5060".parse().unwrap(),
    )
}

fn peer() -> SocketAddr {
    "127.0.0.1:5070".parse().unwrap()
}

fn register(device: &str, cseq: u32, expires: u32, auth: &str) -> Vec<u8> {
    format!(
        "REGISTER sip:34020000002000000001@3402000000 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:5070;rport;branch=z9hG4bK{cseq}\r\n\
         From: <sip:{device}@3402000000>;tag=1\r\nTo: <sip:{device}@3402000000>\r\n\
         Call-ID: reg@127.0.0.1\r\nCSeq: {cseq} REGISTER\r\n{auth}Expires: {expires}\r\n\
         Content-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

fn message(body: &str) -> Vec<u8> {
    format!(
        "MESSAGE sip:34020000002000000001@3402000000 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:5070;rport;branch=z9hG4bKm\r\n\
         From: <sip:{NVR}@3402000000>;tag=2\r\nTo: <sip:34020000002000000001@3402000000>\r\n\
         Call-ID: msg@127.0.0.1\r\nCSeq: 20 MESSAGE\r\n\
         Content-Type: Application/MANSCDP+xml\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn text(out: &Output) -> String {
    String::from_utf8(out.reply.clone().expect("a reply")).unwrap()
}

/// The Authorization header answering the 401 in `challenge` for `device` with `password`.
fn answer(challenge: &str, device: &str, password: &str) -> String {
    let nonce = challenge
        .split("nonce=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("a nonce");
    let mut c = Credentials {
        username: device.into(),
        realm: "3402000000".into(),
        nonce: nonce.into(),
        uri: "sip:34020000002000000001@3402000000".into(),
        qop: Some("auth".into()),
        nc: Some("00000001".into()),
        cnonce: Some("abc".into()),
        algorithm: Some("MD5".into()),
        ..Credentials::default()
    };
    c.response = digest::expected(&c, "REGISTER", password).unwrap();
    format!(
        "Authorization: Digest username=\"{device}\", realm=\"3402000000\", nonce=\"{nonce}\", \
         uri=\"{}\", response=\"{}\", algorithm=MD5, qop=auth, nc=00000001, cnonce=\"abc\"\r\n",
        c.uri, c.response
    )
}

/// Registers the NVR at T0 for `expires` seconds; returns the 200's output.
fn registered(ep: &mut Endpoint, expires: u32) -> Output {
    let out = ep.datagram(&register(NVR, 1, expires, ""), peer(), T0);
    assert!(text(&out).starts_with("SIP/2.0 401 "), "{}", text(&out));
    let auth = answer(&text(&out), NVR, "pw");
    ep.datagram(&register(NVR, 2, expires, &auth), peer(), T0)
}

fn states(events: &[SourceEvent]) -> Vec<(String, bool, i64)> {
    events
        .iter()
        .filter_map(|e| match e {
            SourceEvent::DeviceState {
                device,
                online,
                received_ms,
                ..
            } => Some((device.clone(), *online, *received_ms)),
            _ => None,
        })
        .collect()
}

fn readings(events: &[SourceEvent]) -> Vec<(String, i64)> {
    events
        .iter()
        .filter_map(|e| match e {
            SourceEvent::Reading {
                reading,
                received_ms,
                ..
            } => Some((reading.device.to_string(), *received_ms)),
            _ => None,
        })
        .collect()
}

const CATALOG: &str = "<?xml version=\"1.0\"?><Response><CmdType>Catalog</CmdType><SN>1</SN>\
    <DeviceID>34020000001180000001</DeviceID><SumNum>3</SumNum><DeviceList Num=\"3\">\
    <Item><DeviceID>34020000001320000001</DeviceID><Name>Gate</Name><Status>ON</Status></Item>\
    <Item><DeviceID>34020000001320000002</DeviceID><Name>Tank</Name><Status>OFF</Status></Item>\
    <Item><DeviceID>34020000002150000001</DeviceID><Name>Group</Name><Status>ON</Status></Item>\
    </DeviceList></Response>";

#[test]
fn a_registration_reads_the_device_alive_and_queries_and_subscribes_its_catalog() {
    let mut ep = endpoint();
    let out = registered(&mut ep, 3600);
    assert!(
        text(&out).starts_with("SIP/2.0 200 OK\r\n"),
        "{}",
        text(&out)
    );
    assert_eq!(readings(&out.events), vec![("nvr1".to_string(), T0)]);
    let sent: Vec<String> = out
        .requests
        .iter()
        .map(|(_, b)| String::from_utf8(b.clone()).unwrap())
        .collect();
    assert_eq!(sent.len(), 2, "{sent:?}");
    assert!(sent[0].starts_with(&format!("MESSAGE sip:{NVR}@127.0.0.1:5070 SIP/2.0\r\n")));
    assert!(sent[0].contains("<CmdType>Catalog</CmdType>"));
    assert!(sent[1].starts_with("SUBSCRIBE ") && sent[1].contains("Event: Catalog\r\n"));
    // The device's answer to the query is no input to refuse.
    let ok = ep.datagram(b"SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n", peer(), T0);
    assert!(ok.reply.is_none() && ok.events.is_empty());
}

#[test]
fn catalog_channels_are_declared_and_follow_their_status_and_their_device() {
    let mut ep = endpoint();
    registered(&mut ep, 3600);
    let out = ep.datagram(&message(CATALOG), peer(), T0 + 10);
    assert!(text(&out).starts_with("SIP/2.0 200 OK\r\n"));
    let SourceEvent::Devices(sd) = &out.events[0] else {
        panic!("a declaration first: {:?}", out.events);
    };
    let ids: Vec<&str> = sd.devices.iter().map(|d| d.id.as_str()).collect();
    // The business group (215) is not a channel.
    assert_eq!(ids, vec![CH_ON, CH_OFF]);
    assert_eq!(&*sd.source, "video");
    let d = &sd.devices[0];
    assert_eq!(
        (d.system.as_deref(), d.offline_after_s, d.gb_id.as_deref()),
        (Some("cctv"), Some(20.0), Some(CH_ON))
    );
    assert_eq!(readings(&out.events), vec![(CH_ON.to_string(), T0 + 10)]);
    assert_eq!(
        states(&out.events),
        vec![(CH_OFF.to_string(), false, T0 + 10)]
    );
    // A keepalive reads the NVR and its ON channel alive, not the OFF one.
    let ka = "<?xml version=\"1.0\"?><Notify><CmdType>Keepalive</CmdType><SN>2</SN>\
              <DeviceID>34020000001180000001</DeviceID></Notify>";
    let out = ep.datagram(&message(ka), peer(), T0 + 5_000);
    assert_eq!(
        readings(&out.events),
        vec![
            ("nvr1".to_string(), T0 + 5_000),
            (CH_ON.to_string(), T0 + 5_000)
        ]
    );
    // Expires: 0 ends it: the NVR and both channels offline at that time.
    let out = ep.datagram(&register(NVR, 3, 0, ""), peer(), T0 + 6_000);
    let auth = answer(&text(&out), NVR, "pw");
    let out = ep.datagram(&register(NVR, 4, 0, &auth), peer(), T0 + 6_000);
    let at = T0 + 6_000;
    assert_eq!(
        states(&out.events),
        vec![
            ("nvr1".to_string(), false, at),
            (CH_ON.to_string(), false, at),
            (CH_OFF.to_string(), false, at)
        ]
    );
}

#[test]
fn an_expired_registration_is_offline_at_its_expiry_and_a_closed_tcp_at_once() {
    // 362 messages at once: above the default rate bound, which is not what this is about.
    let mut ep = endpoint_at(1_000_000);
    registered(&mut ep, 3600);
    // Keepalives every 10 s keep it alive; the registration expires at T0 + 3600 s.
    for k in 1..=360 {
        let ka = format!(
            "<?xml version=\"1.0\"?><Notify><CmdType>Keepalive</CmdType><SN>{k}</SN>\
             <DeviceID>{NVR}</DeviceID></Notify>"
        );
        let out = ep.datagram(&message(&ka), peer(), T0 + k * 9_990);
        assert!(states(&out.events).is_empty(), "{k}");
    }
    let out = ep.tick_until(T0 + 4_000_000);
    assert_eq!(
        states(&out.events),
        vec![("nvr1".to_string(), false, T0 + 3_600_000)]
    );

    // Over TCP: the connection's close is the offline, at its time.
    let mut ep = endpoint();
    let first = ep.stream(&register(NVR, 1, 3600, ""), 7, peer(), T0);
    let auth = answer(&text(&first), NVR, "pw");
    let out = ep.stream(&register(NVR, 2, 3600, &auth), 7, peer(), T0);
    assert!(text(&out).starts_with("SIP/2.0 200 OK\r\n"));
    let out = ep.closed(7, peer(), T0 + 1_234);
    assert_eq!(
        states(&out.events),
        vec![("nvr1".to_string(), false, T0 + 1_234)]
    );
}

#[test]
fn refusals_are_the_cores_rejections_with_where_they_came_from() {
    let mut ep = endpoint();
    let reasons = |out: &Output| -> Vec<(Reason, String)> {
        out.events
            .iter()
            .filter_map(|e| match e {
                SourceEvent::Rejected(r) => Some((r.reason, r.origin.topic.to_string())),
                _ => None,
            })
            .collect()
    };
    // An unknown ID with the right password: 403, unknown_device.
    let stranger = "34020000001180000099";
    let out = ep.datagram(&register(stranger, 1, 3600, ""), peer(), T0);
    let auth = answer(&text(&out), stranger, "pw");
    let out = ep.datagram(&register(stranger, 2, 3600, &auth), peer(), T0);
    assert!(text(&out).starts_with("SIP/2.0 403 "));
    let r = reasons(&out);
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!(r[0].0, Reason::UnknownDevice);
    assert!(
        r[0].1
            .starts_with("gb28181 udp 127.0.0.1:5070 Call-ID reg@127.0.0.1 CSeq 2"),
        "{r:?}"
    );
    // A wrong password.
    let out = ep.datagram(&register(NVR, 1, 3600, ""), peer(), T0);
    let auth = answer(&text(&out), NVR, "nope");
    let out = ep.datagram(&register(NVR, 2, 3600, &auth), peer(), T0);
    assert_eq!(reasons(&out)[0].0, Reason::DigestRefused);
    // Garbage, and a DOCTYPE body (400, counted).
    let out = ep.datagram(b"hello\r\n\r\n", peer(), T0);
    assert_eq!(reasons(&out)[0].0, Reason::SipMalformed);
    assert!(out.reply.is_none());
    let bomb = "<?xml version=\"1.0\"?><!DOCTYPE x [<!ENTITY a \"aaaa\">]><Notify/>";
    let out = ep.datagram(&message(bomb), peer(), T0);
    assert!(text(&out).starts_with("SIP/2.0 400 "));
    assert_eq!(reasons(&out)[0].0, Reason::ManscdpMalformed);
    // A MESSAGE from the known NVR, not registered: 403.
    let ka = "<?xml version=\"1.0\"?><Notify><CmdType>Keepalive</CmdType><SN>2</SN>\
              <DeviceID>34020000001180000001</DeviceID></Notify>";
    let out = ep.datagram(&message(ka), peer(), T0);
    assert_eq!(reasons(&out)[0].0, Reason::NotRegistered);
}

#[test]
fn a_flood_from_one_address_is_refused_past_its_rate() {
    let mut ep = endpoint_at(1);
    let mut limited = 0;
    // One per second: of ten at once, the first is read (and refused as garbage), the
    // rest are refused for the rate (one more may pass if a second goes by meanwhile).
    for _ in 0..10 {
        let out = ep.datagram(b"hello\r\n\r\n", peer(), T0);
        let rate = out
            .events
            .iter()
            .any(|e| matches!(e, SourceEvent::Rejected(r) if r.reason == Reason::RateLimited));
        limited += usize::from(rate);
    }
    assert!(limited >= 8, "{limited}");
}
