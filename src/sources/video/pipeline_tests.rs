//! The pure pieces together, on the bytes a camera sends: a REGISTER read by `sip`, decided
//! by the registry (its digest computed apart, in Python), the reply written by `sip`; then a
//! keepalive MESSAGE whose GB2312 body `manscdp` reads. No socket: the transports only move
//! these bytes.

use super::manscdp;
use super::session::{Link, Registry, Reply, Timing};
use super::sip;

const T0: i64 = 1_700_000_000_000;

fn register_bytes(cseq: u32, authorization: &str) -> Vec<u8> {
    format!(
        "REGISTER sip:34020000002000000001@3402000000 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:5070;rport;branch=z9hG4bK{cseq}\r\n\
         From: <sip:34020000001320000001@3402000000>;tag=77\r\n\
         To: <sip:34020000001320000001@3402000000>\r\n\
         Call-ID: reg-1@127.0.0.1\r\n\
         CSeq: {cseq} REGISTER\r\n\
         Contact: <sip:34020000001320000001@127.0.0.1:5070>\r\n\
         {authorization}Max-Forwards: 70\r\n\
         Expires: 3600\r\n\
         Content-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

fn decide(r: &mut Registry, now: i64, bytes: &[u8], nonce: &str) -> (Reply, String) {
    let m = sip::read_datagram(bytes, 65_535).expect("a request");
    let req = m.register(Link::Udp("127.0.0.1:5070".parse().unwrap()));
    let reply = r.register(now, &req, nonce).reply.expect("a reply");
    let text = String::from_utf8(sip::respond(&m.request, &reply, "gw")).unwrap();
    (reply, text)
}

#[test]
fn a_camera_registers_with_digest_and_keeps_alive_from_its_own_bytes() {
    let known = [("34020000001320000001".to_string(), None)];
    let mut r = Registry::new(Timing::default(), "3402000000", "12345678", known);
    let (reply, text) = decide(&mut r, T0, &register_bytes(1, ""), "9bd055");
    assert_eq!(reply.status(), 401);
    assert!(text.contains(
        "WWW-Authenticate: Digest realm=\"3402000000\", nonce=\"9bd055\", qop=\"auth\", algorithm=MD5\r\n"
    ));
    // Python: HA1 = md5("34020000001320000001:3402000000:12345678"), HA2 =
    // md5("REGISTER:sip:34020000002000000001@3402000000"), response =
    // md5(HA1 + ":9bd055:00000001:0a4f113b:auth:" + HA2) = 5c08f6b8a902f9b9ed0206359b0deb9f.
    let auth = "Authorization: Digest username=\"34020000001320000001\", realm=\"3402000000\", \
        nonce=\"9bd055\", uri=\"sip:34020000002000000001@3402000000\", \
        response=\"5c08f6b8a902f9b9ed0206359b0deb9f\", algorithm=MD5, qop=auth, nc=00000001, \
        cnonce=\"0a4f113b\"\r\n";
    let (reply, text) = decide(&mut r, T0 + 40, &register_bytes(2, auth), "unused");
    assert_eq!(reply.status(), 200, "{text}");
    assert!(text.starts_with("SIP/2.0 200 OK\r\n"));
    assert!(text.contains("Expires: 3600\r\n"));
    assert!(text.contains("Date: 2023-11-15T06:13:20.040\r\n"));
    assert!(text.contains("CSeq: 2 REGISTER\r\n"));
    assert!(r.is_online("34020000001320000001"));

    // A keepalive whose body declares GB2312 (and has a GB2312 name in it: "中文").
    let mut body = b"<?xml version=\"1.0\" encoding=\"GB2312\"?>\r\n<Notify>\r\n\
        <CmdType>Keepalive</CmdType>\r\n<SN>5</SN>\r\n<DeviceID>34020000001320000001</DeviceID>\r\n\
        <Status>OK</Status>\r\n<Info>"
        .to_vec();
    body.extend_from_slice(&[0xd6, 0xd0, 0xce, 0xc4]);
    body.extend_from_slice(b"</Info>\r\n</Notify>\r\n");
    let mut msg = format!(
        "MESSAGE sip:34020000002000000001@3402000000 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:5070;rport;branch=z9hG4bKk1\r\n\
         From: <sip:34020000001320000001@3402000000>;tag=78\r\n\
         To: <sip:34020000002000000001@3402000000>\r\n\
         Call-ID: ka-1@127.0.0.1\r\nCSeq: 20 MESSAGE\r\n\
         Content-Type: Application/MANSCDP+xml\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    msg.extend_from_slice(&body);
    let m = sip::read_datagram(&msg, 65_535).unwrap();
    let parsed = manscdp::parse(m.request.body(), 65_535).unwrap();
    let link = Link::Udp("127.0.0.1:5070".parse().unwrap());
    let d = r.message(T0 + 100_000, &m.device_id, link, parsed);
    assert_eq!(d.reply, Some(Reply::Accepted));
    assert_eq!(
        r.online_until("34020000001320000001"),
        Some(T0 + 100_000 + 180_000)
    );
    let text = String::from_utf8(sip::respond(&m.request, &Reply::Accepted, "gw")).unwrap();
    assert!(text.starts_with("SIP/2.0 200 OK\r\n") && text.contains("CSeq: 20 MESSAGE\r\n"));
}
