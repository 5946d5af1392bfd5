//! The video core against SIPp (Debian `sip-tester`), an independent SIP implementation with
//! its own digest code, playing a GB/T 28181 device from hand-written scenarios
//! (`tests/it/sipp/`). The gateway side here is the core behind a bare UDP loop in the test
//! (read, decide, reply), which isolates the core; the same peer against the running
//! gateway's endpoint is `video_gateway.rs`.

use safegate::sources::video::session::{Change, Decision, Link, Registry, Timing};
use safegate::sources::video::{manscdp, sip};
use std::sync::{Arc, Mutex};
use tokio::net::UdpSocket;

const DEVICE: &str = "34020000001180000001";
const SERVER: &str = "34020000002000000001";
const DOMAIN: &str = "3402000000";

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// What the loop saw: every decision's changes, and the status of every reply, in order.
#[derive(Default)]
struct Seen {
    changes: Vec<Change>,
    statuses: Vec<u16>,
}

/// Answers each datagram on `socket` as the core decides, until the task is aborted.
async fn serve(socket: UdpSocket, registry: Arc<Mutex<Registry>>, seen: Arc<Mutex<Seen>>) {
    let mut buf = vec![0u8; 65_535];
    let mut nonce = 0u32;
    loop {
        let Ok((n, peer)) = socket.recv_from(&mut buf).await else {
            return;
        };
        let Ok(m) = sip::read_datagram(&buf[..n], 65_535) else {
            continue;
        };
        let link = Link::Udp(peer);
        let decision: Decision = {
            let mut r = registry.lock().unwrap();
            match m.method().to_string().as_str() {
                "REGISTER" => {
                    nonce += 1;
                    let req = m.register(link);
                    r.register(now_ms(), &req, &format!("sippnonce{nonce}"))
                }
                "MESSAGE" => match manscdp::parse(m.request.body(), 65_535) {
                    Ok(msg) => r.message(now_ms(), &m.device_id, link, msg),
                    Err(_) => continue,
                },
                _ => continue,
            }
        };
        {
            let mut s = seen.lock().unwrap();
            s.changes.extend(decision.changes);
            s.statuses
                .extend(decision.reply.as_ref().map(|r| r.status()));
        }
        if let Some(reply) = decision.reply {
            let bytes = sip::respond(&m.request, &reply, "gw");
            let _ = socket.send_to(&bytes, peer).await;
        }
    }
}

/// Runs `scenario` once with SIPp as device `DEVICE` with `password`; its exit status says
/// whether every message it expected came.
async fn run_sipp(scenario: &str, password: &str) -> (Arc<Mutex<Registry>>, Seen) {
    let registry = Arc::new(Mutex::new(Registry::new(
        Timing::default(),
        DOMAIN,
        "12345678",
        [(DEVICE.to_string(), None)],
    )));
    let seen: Arc<Mutex<Seen>> = Arc::default();
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let port = socket.local_addr().unwrap().port();
    let server = tokio::spawn(serve(socket, registry.clone(), seen.clone()));
    let keys = [("device", DEVICE), ("server", SERVER), ("domain", DOMAIN)];
    crate::common::sipp::run(port, "u1", scenario, &keys, (DEVICE, password)).await;
    server.abort();
    let seen = std::mem::take(&mut *seen.lock().unwrap());
    (registry, seen)
}

#[tokio::test]
async fn sipp_registers_with_its_own_digest_and_keeps_alive() {
    let (registry, seen) = run_sipp("gb_register.xml", "12345678").await;
    // 401 to the bare REGISTER, 200 to SIPp's digest answer, 200 to the keepalive.
    assert_eq!(seen.statuses, vec![401, 200, 200]);
    assert_eq!(
        seen.changes,
        vec![Change::Online {
            device_id: DEVICE.into()
        }]
    );
    assert!(registry.lock().unwrap().is_online(DEVICE));
}

#[tokio::test]
async fn sipp_with_a_wrong_password_is_refused_403_and_counted() {
    let (registry, seen) = run_sipp("gb_register_refused.xml", "wrong-password").await;
    assert_eq!(seen.statuses, vec![401, 403]);
    assert_eq!(
        seen.changes,
        vec![Change::Refused {
            device_id: DEVICE.into(),
            reason: "wrong_password"
        }]
    );
    assert!(!registry.lock().unwrap().is_online(DEVICE));
}
