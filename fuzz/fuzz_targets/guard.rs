//! The embedded broker's guard on any bytes from a client, after its CONNECT. Byte 0 picks
//! the identity (a platform, the gateway, an unknown login) and the size limit; the rest is
//! the stream. Frames are taken as the guard takes them and judged; a CONNECT frame is also
//! parsed, as the first packet is. No panic; every frame is exactly as long as its header says;
//! a whole PUBLISH is forwarded only when the ACL allows its topic.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use rumqttc::mqttbytes::v4::{Connect, Publish};
use rumqttc::mqttbytes::PacketType;
use safegate::config::broker_acl::Acl;
use safegate::runtime::broker_guard::{take_frame, Session, Verdict};
use std::path::Path;
use std::sync::OnceLock;

fn acl() -> &'static Acl {
    static ACL: OnceLock<Acl> = OnceLock::new();
    ACL.get_or_init(|| {
        let text = "[[sites]]\nid = \"p1\"\nname = \"P1\"\nkind = \"park\"\nplatforms = [\"plat-a\"]\n\n[[sites]]\nid = \"p2\"\nname = \"P2\"\nkind = \"park\"\nplatforms = [\"plat-b\"]\n";
        let cfg = safegate::config::load_str(Path::new("t.toml"), text, Path::new("."))
            .expect("the fuzz ACL loads")
            .config;
        Acl::from_config(&cfg, "safegate")
    })
}

fuzz_target!(|data: &[u8]| {
    let [first, rest @ ..] = data else {
        return;
    };
    let who = ["plat-a", "plat-b", "safegate", "nobody"][(*first & 3) as usize];
    let max = if first & 4 != 0 { 64 } else { 1 << 16 };
    let mut buf = BytesMut::from(rest);
    let mut session = Session::new(acl(), who);
    while let Ok(Some((fh, frame))) = take_frame(&mut buf, max) {
        assert_eq!(frame.len(), fh.frame_length());
        let publish = match fh.packet_type() {
            Ok(PacketType::Connect) => {
                let _ = Connect::read(fh, frame.clone());
                None
            }
            Ok(PacketType::Publish) => Publish::read(fh, frame.clone()).ok(),
            _ => None,
        };
        let v = session.inspect(fh, &frame);
        if let (Some(p), Verdict::Forward) = (&publish, &v) {
            assert!(acl().may_publish(who, &p.topic), "forwarded {:?} for {who}", p.topic);
        }
        if matches!(v, Verdict::Close(_)) {
            break;
        }
    }
});
