//! The registry's rules, event by event, with time as an input: registration and digest
//! decisions, the online deadline to the millisecond, catalogs, alarms, closed connections.

use super::digest;
use super::manscdp::{Alarm, CatalogItem, CatalogPage, ChannelStatus, Message};
use super::session::*;

const NVR: &str = "34020000001180000001";
const OTHER: &str = "34020000001180000002";
const REALM: &str = "3402000000";
const PASSWORD: &str = "12345678";
const T0: i64 = 1_700_000_000_000;

fn udp() -> Link {
    Link::Udp("127.0.0.1:15060".parse().unwrap())
}

fn tcp(conn: u64) -> Link {
    Link::Tcp {
        conn,
        peer: "127.0.0.1:15061".parse().unwrap(),
    }
}

fn registry() -> Registry {
    Registry::new(
        Timing::default(),
        REALM,
        PASSWORD,
        [
            (NVR.to_string(), None),
            (OTHER.to_string(), Some("own-password".to_string())),
        ],
    )
}

/// An `Authorization` header answering `nonce` with `password` (qop=auth, nc as given).
fn auth(user: &str, nonce: &str, password: &str) -> String {
    let mut c = digest::Credentials {
        username: user.into(),
        realm: REALM.into(),
        nonce: nonce.into(),
        uri: format!("sip:34020000002000000001@{REALM}"),
        qop: Some("auth".into()),
        nc: Some("00000001".into()),
        cnonce: Some("c0ffee".into()),
        ..Default::default()
    };
    c.response = digest::expected(&c, "REGISTER", password).unwrap();
    format!(
        "Digest username=\"{}\", realm=\"{}\", nonce=\"{}\", uri=\"{}\", response=\"{}\", \
         algorithm=MD5, qop=auth, nc=00000001, cnonce=\"c0ffee\"",
        c.username, c.realm, c.nonce, c.uri, c.response
    )
}

fn req<'a>(
    id: &'a str,
    call: &'a str,
    cseq: u32,
    expires: Option<u64>,
    a: Option<&'a str>,
) -> Register<'a> {
    Register {
        device_id: id,
        call_id: call,
        cseq,
        expires,
        authorization: a,
        link: udp(),
    }
}

/// Challenged at `now`, then registered at `now` for `expires` seconds.
fn register(r: &mut Registry, now: i64, id: &str, call: &str, expires: u64) -> Decision {
    let first = r.register(now, &req(id, call, 1, Some(expires), None), "nonce-1");
    assert_eq!(first.reply.as_ref().map(Reply::status), Some(401));
    let a = auth(
        id,
        "nonce-1",
        if id == OTHER {
            "own-password"
        } else {
            PASSWORD
        },
    );
    r.register(now, &req(id, call, 2, Some(expires), Some(&a)), "nonce-2")
}

fn keepalive(r: &mut Registry, now: i64, id: &str) -> Decision {
    let msg = Message::Keepalive {
        sn: 1,
        device_id: id.into(),
    };
    r.message(now, id, udp(), msg)
}

fn offline(id: &str, cause: OfflineCause) -> Change {
    Change::Offline {
        device_id: id.into(),
        cause,
    }
}

fn online(id: &str) -> Change {
    Change::Online {
        device_id: id.into(),
    }
}

#[test]
fn a_challenge_then_the_right_answer_registers_with_date_and_queries_the_catalog() {
    let mut r = registry();
    let d = r.register(T0, &req(NVR, "call-1", 1, Some(3600), None), "abc");
    assert_eq!(
        d.reply,
        Some(Reply::Challenge {
            www_authenticate: "Digest realm=\"3402000000\", nonce=\"abc\", qop=\"auth\", \
                               algorithm=MD5"
                .into()
        })
    );
    assert!(d.changes.is_empty() && !r.is_online(NVR));
    let a = auth(NVR, "abc", PASSWORD);
    let d = r.register(T0 + 5, &req(NVR, "call-1", 2, Some(3600), Some(&a)), "x");
    assert_eq!(
        d.reply,
        Some(Reply::Registered {
            expires: 3600,
            // T0 + 5 ms at +08:00 (Python: datetime.fromtimestamp(1700000000.005, UTC+8)).
            date: "2023-11-15T06:13:20.005".into()
        })
    );
    assert_eq!(d.changes, vec![online(NVR)]);
    assert!(matches!(
        &d.actions[..],
        [Action::QueryCatalog { device_id, .. }, Action::SubscribeCatalog { .. }] if device_id == NVR
    ));
    assert!(r.is_online(NVR));
    assert_eq!(
        sip_date(1_700_000_000_123, 8 * 3600),
        "2023-11-15T06:13:20.123"
    );
}

#[test]
fn wrong_password_unknown_id_missing_expires_and_bad_headers_are_refused_by_reason() {
    let mut r = registry();
    let refused = |d: &Decision| match &d.reply {
        Some(Reply::Forbidden { reason } | Reply::BadRequest { reason }) => {
            assert_eq!(
                d.changes,
                vec![Change::Refused {
                    device_id: match &d.changes[0] {
                        Change::Refused { device_id, .. } => device_id.clone(),
                        _ => unreachable!(),
                    },
                    reason
                }]
            );
            (d.reply.as_ref().unwrap().status(), *reason)
        }
        other => panic!("not refused: {other:?}"),
    };
    r.register(T0, &req(NVR, "c", 1, Some(3600), None), "n");
    let wrong = auth(NVR, "n", "00000000");
    let d = r.register(T0, &req(NVR, "c", 2, Some(3600), Some(&wrong)), "m");
    assert_eq!(refused(&d), (403, "wrong_password"));
    // OTHER has its own password: the shared one does not open it.
    r.register(T0, &req(OTHER, "c", 1, Some(3600), None), "n");
    let shared = auth(OTHER, "n", PASSWORD);
    let d = r.register(T0, &req(OTHER, "c", 2, Some(3600), Some(&shared)), "m");
    assert_eq!(refused(&d), (403, "wrong_password"));
    // An unknown ID is challenged like any, then refused even with the right password.
    let stranger = "34020000001320000099";
    let d = r.register(T0, &req(stranger, "c", 1, Some(3600), None), "n");
    assert_eq!(d.reply.as_ref().map(Reply::status), Some(401));
    let right = auth(stranger, "n", PASSWORD);
    let d = r.register(T0, &req(stranger, "c", 2, Some(3600), Some(&right)), "m");
    assert_eq!(refused(&d), (403, "unknown_device"));
    let d = r.register(T0, &req(NVR, "c", 1, None, None), "n");
    assert_eq!(refused(&d), (400, "missing_expires"));
    let d = r.register(
        T0,
        &req(NVR, "c", 3, Some(60), Some("Digest nonsense")),
        "n",
    );
    assert_eq!(refused(&d), (400, "digest_malformed"));
    let theirs = auth(OTHER, "n", "own-password");
    let d = r.register(T0, &req(NVR, "c", 4, Some(60), Some(&theirs)), "n");
    assert_eq!(refused(&d), (403, "username_mismatch"));
    assert!(!r.is_online(NVR) && !r.is_online(OTHER));
}

#[test]
fn an_old_or_foreign_nonce_gets_a_stale_challenge() {
    let mut r = registry();
    r.register(T0, &req(NVR, "c", 1, Some(3600), None), "n1");
    let a = auth(NVR, "n1", PASSWORD);
    // 300 s later the nonce is stale: the answer was right, so `stale=true`.
    let d = r.register(T0 + 300_000, &req(NVR, "c", 2, Some(3600), Some(&a)), "n2");
    assert!(
        matches!(&d.reply, Some(Reply::Challenge { www_authenticate })
        if www_authenticate.contains("nonce=\"n2\"") && www_authenticate.ends_with("stale=true"))
    );
    let never = auth(NVR, "never-issued", PASSWORD);
    let d = r.register(T0, &req(NVR, "c", 3, Some(3600), Some(&never)), "n3");
    assert!(
        matches!(&d.reply, Some(Reply::Challenge { www_authenticate }) if www_authenticate.contains("stale=true"))
    );
    // The fresh one works.
    let a = auth(NVR, "n3", PASSWORD);
    let d = r.register(T0 + 1, &req(NVR, "c", 4, Some(3600), Some(&a)), "n4");
    assert_eq!(d.reply.as_ref().map(Reply::status), Some(200));
}

#[test]
fn a_refresh_on_the_same_call_id_extends_and_expires_zero_unregisters() {
    let mut r = registry();
    register(&mut r, T0, NVR, "call-1", 600);
    let a = auth(NVR, "nonce-1", PASSWORD);
    // A refresh: no new online change, no new catalog query; the expiry moves.
    let d = r.register(
        T0 + 100_000,
        &req(NVR, "call-1", 3, Some(600), Some(&a)),
        "n",
    );
    assert_eq!(d.reply.as_ref().map(Reply::status), Some(200));
    assert!(d.changes.is_empty() && d.actions.is_empty());
    assert_eq!(r.online_until(NVR), Some(T0 + 100_000 + 180_000));
    // The same CSeq again (a UDP retransmission): 200, nothing changes.
    let d = r.register(
        T0 + 100_001,
        &req(NVR, "call-1", 3, Some(600), Some(&a)),
        "n",
    );
    assert_eq!(d.reply.as_ref().map(Reply::status), Some(200));
    assert_eq!(r.online_until(NVR), Some(T0 + 100_000 + 180_000));
    // A lower CSeq on the same Call-ID: refused.
    let d = r.register(
        T0 + 100_002,
        &req(NVR, "call-1", 2, Some(600), Some(&a)),
        "n",
    );
    assert_eq!(
        d.reply,
        Some(Reply::BadRequest {
            reason: "cseq_out_of_order"
        })
    );
    // A new Call-ID (the device restarted): a new registration, a new catalog query.
    let d = r.register(
        T0 + 200_000,
        &req(NVR, "call-2", 1, Some(999_999), Some(&a)),
        "n",
    );
    assert!(matches!(
        d.reply,
        Some(Reply::Registered {
            expires: 86_400,
            ..
        })
    ));
    assert_eq!(d.actions.len(), 2);
    let d = r.register(T0 + 250_000, &req(NVR, "call-2", 2, Some(0), Some(&a)), "n");
    assert!(matches!(
        d.reply,
        Some(Reply::Registered { expires: 0, .. })
    ));
    assert_eq!(d.changes, vec![offline(NVR, OfflineCause::Unregistered)]);
    assert_eq!(r.online_until(NVR), None);
    assert_eq!(
        keepalive(&mut r, T0 + 250_001, NVR).reply,
        Some(Reply::Forbidden {
            reason: "not_registered"
        })
    );
}

#[test]
fn keepalives_stopping_take_the_device_offline_at_last_keepalive_plus_interval_times_misses() {
    let mut r = registry();
    register(&mut r, T0, NVR, "c", 3600);
    // Registered at T0: until T0 + 60 000 × 3.
    assert_eq!(r.online_until(NVR), Some(T0 + 180_000));
    let d = keepalive(&mut r, T0 + 59_500, NVR);
    assert_eq!(d.reply, Some(Reply::Accepted));
    assert!(d.changes.is_empty());
    let last = T0 + 119_250;
    keepalive(&mut r, last, NVR);
    let deadline = last + 180_000;
    assert_eq!(r.online_until(NVR), Some(deadline));
    assert_eq!(r.next_deadline(), Some(deadline));
    assert!(r.tick(deadline - 1).changes.is_empty());
    assert!(r.is_online(NVR));
    assert_eq!(
        r.tick(deadline).changes,
        vec![offline(NVR, OfflineCause::KeepaliveTimeout)]
    );
    assert!(!r.is_online(NVR));
    assert!(r.tick(deadline + 1).changes.is_empty());
    // Still registered: the next keepalive brings it back.
    let d = keepalive(&mut r, deadline + 5_000, NVR);
    assert_eq!(d.changes, vec![online(NVR)]);
    assert_eq!(r.online_until(NVR), Some(deadline + 5_000 + 180_000));
}

#[test]
fn a_keepalive_at_the_deadline_itself_comes_after_the_offline() {
    let mut r = registry();
    register(&mut r, T0, NVR, "c", 3600);
    let d = keepalive(&mut r, T0 + 180_000, NVR);
    assert_eq!(
        d.changes,
        vec![offline(NVR, OfflineCause::KeepaliveTimeout), online(NVR)]
    );
}

#[test]
fn a_registration_shorter_than_the_keepalive_window_ends_first() {
    let mut r = registry();
    register(&mut r, T0, NVR, "c", 100);
    keepalive(&mut r, T0 + 60_000, NVR);
    // min(T0 + 100 000, T0 + 60 000 + 180 000).
    assert_eq!(r.online_until(NVR), Some(T0 + 100_000));
    assert!(r.tick(T0 + 99_999).changes.is_empty());
    assert_eq!(
        r.tick(T0 + 100_000).changes,
        vec![offline(NVR, OfflineCause::RegistrationExpired)]
    );
    assert_eq!(
        keepalive(&mut r, T0 + 100_001, NVR).reply,
        Some(Reply::Forbidden {
            reason: "not_registered"
        })
    );
    assert_eq!(r.next_deadline(), None);
}

#[test]
fn a_closed_tcp_connection_is_offline_at_once_for_its_devices_only() {
    let mut r = registry();
    let a = auth(NVR, "n", PASSWORD);
    r.register(T0, &req(NVR, "c", 1, Some(3600), None), "n");
    let mut over_tcp = req(NVR, "c", 2, Some(3600), Some(&a));
    over_tcp.link = tcp(7);
    r.register(T0, &over_tcp, "m");
    register(&mut r, T0, OTHER, "c", 3600);
    assert!(r.connection_closed(8).changes.is_empty());
    assert_eq!(
        r.connection_closed(7).changes,
        vec![offline(NVR, OfflineCause::ConnectionClosed)]
    );
    assert!(!r.is_online(NVR) && r.is_online(OTHER));
    assert_eq!(
        keepalive(&mut r, T0 + 1, NVR).reply,
        Some(Reply::Forbidden {
            reason: "not_registered"
        })
    );
}

fn item(n: u32, status: ChannelStatus, event: Option<&str>) -> CatalogItem {
    CatalogItem {
        device_id: format!("340200000013100000{n:02}"),
        name: format!("Cam {n}"),
        parent_id: Some(NVR.into()),
        status,
        status_raw: String::new(),
        event: event.map(str::to_string),
    }
}

fn page(sn: u32, sum: u32, items: Vec<CatalogItem>, is_notify: bool) -> Message {
    Message::Catalog(CatalogPage {
        sn,
        device_id: NVR.into(),
        sum_num: sum,
        items,
        is_notify,
    })
}

#[test]
fn catalog_pages_make_the_channels_and_a_missing_one_times_out() {
    let mut r = registry();
    let d = register(&mut r, T0, NVR, "c", 3600);
    let Action::QueryCatalog { sn, .. } = d.actions[0].clone() else {
        panic!("a query");
    };
    let on = ChannelStatus::Online;
    let d = r.message(
        T0 + 10,
        NVR,
        udp(),
        page(sn, 3, vec![item(2, on, None)], false),
    );
    assert_eq!(d.reply, Some(Reply::Accepted));
    assert!(d.changes.is_empty());
    let rest = vec![item(1, on, None), item(3, ChannelStatus::Offline, None)];
    let d = r.message(T0 + 20, NVR, udp(), page(sn, 3, rest, false));
    let Some(Change::Catalog { device_id, items }) = d.changes.first() else {
        panic!("a catalog: {d:?}");
    };
    assert_eq!(device_id, NVR);
    let got: Vec<(u32, ChannelStatus)> = items
        .iter()
        .map(|i| (i.device_id[18..].parse().unwrap(), i.status))
        .collect();
    assert_eq!(got, vec![(1, on), (2, on), (3, ChannelStatus::Offline)]);
    // A catalog missing a page: given up 30 s after its first page.
    r.message(
        T0 + 1_000,
        NVR,
        udp(),
        page(99, 2, vec![item(1, on, None)], false),
    );
    assert!(r.tick(T0 + 30_999).changes.is_empty());
    assert_eq!(
        r.tick(T0 + 31_000).changes,
        vec![Change::CatalogTimedOut {
            device_id: NVR.into(),
            sn: 99,
            have: 1,
            of: 2
        }]
    );
    // Too many items announced: refused.
    let d = r.message(T0 + 2_000, NVR, udp(), page(100, 10_001, vec![], false));
    assert_eq!(
        d.reply,
        Some(Reply::BadRequest {
            reason: "catalog_too_large"
        })
    );
}

#[test]
fn the_catalog_is_queried_again_each_interval_while_registered() {
    let mut r = registry();
    register(&mut r, T0, NVR, "c", 86_400);
    // Keepalives every minute keep it online through the hour.
    for m in 1..=59 {
        assert!(keepalive(&mut r, T0 + m * 60_000, NVR).actions.is_empty());
    }
    let due = T0 + 3_600_000;
    assert_eq!(r.next_deadline(), Some(due));
    assert!(r.tick(due - 1).actions.is_empty());
    let d = r.tick(due);
    assert!(matches!(&d.actions[..], [Action::QueryCatalog { device_id, .. }] if device_id == NVR));
    assert!(r.tick(due + 1).actions.is_empty());
    // Any event reaching the device runs its deadlines first: the next query rides on the
    // keepalive that comes at or after it.
    let d = keepalive(&mut r, due + 3_600_000, NVR);
    assert_eq!(d.reply, Some(Reply::Accepted));
    assert!(matches!(&d.actions[..], [Action::QueryCatalog { .. }]));
}

#[test]
fn subscribed_changes_and_alarms_are_reported_and_alarms_answered() {
    let mut r = registry();
    register(&mut r, T0, NVR, "c", 3600);
    let changes = vec![
        item(1, ChannelStatus::Online, Some("OFF")),
        item(2, ChannelStatus::Online, Some("VLOST")),
        item(3, ChannelStatus::Online, Some("DEL")),
        item(4, ChannelStatus::Online, Some("ADD")),
    ];
    let d = r.message(T0 + 1, NVR, udp(), page(5, 4, changes, true));
    let got: Vec<ChannelChange> = d
        .changes
        .iter()
        .map(|c| match c {
            Change::Channel { change, .. } => change.clone(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        got,
        vec![
            ChannelChange::Status(ChannelStatus::Offline),
            ChannelChange::Status(ChannelStatus::Faulty),
            ChannelChange::Removed,
            ChannelChange::Status(ChannelStatus::Online),
        ]
    );
    let alarm = Alarm {
        sn: 42,
        device_id: "34020000001340000001".into(),
        priority: Some(1),
        method: Some(5),
        alarm_type: Some(2),
        time: None,
        description: None,
    };
    let d = r.message(T0 + 2, NVR, udp(), Message::Alarm(alarm.clone()));
    assert_eq!(d.reply, Some(Reply::Accepted));
    assert_eq!(
        d.changes,
        vec![Change::Alarm {
            device_id: NVR.into(),
            alarm: alarm.clone()
        }]
    );
    assert_eq!(
        d.actions,
        vec![Action::AnswerAlarm {
            device_id: NVR.into(),
            sn: 42,
            link: udp()
        }]
    );
    // A message is not a keepalive: the deadline did not move.
    assert_eq!(r.online_until(NVR), Some(T0 + 180_000));
    // The same SN again (its 200 lost): answered again, raised once.
    let again = r.message(T0 + 3, NVR, udp(), Message::Alarm(alarm.clone()));
    assert_eq!(again.reply, Some(Reply::Accepted));
    assert_eq!(again.actions, d.actions);
    assert!(again.changes.is_empty(), "{:?}", again.changes);
    let next = Alarm {
        sn: 43,
        ..alarm.clone()
    };
    let d = r.message(T0 + 4, NVR, udp(), Message::Alarm(next));
    assert_eq!(d.changes.len(), 1, "a new SN is a new alarm");
    let d = r.message(T0, "34020000001320000099", udp(), Message::Alarm(alarm));
    assert_eq!(
        d.reply,
        Some(Reply::Forbidden {
            reason: "unknown_device"
        })
    );
}

#[test]
fn a_register_after_an_unnoticed_expiry_ends_the_old_registration_first() {
    let mut r = registry();
    register(&mut r, T0, NVR, "c", 60);
    let a = auth(NVR, "nonce-1", PASSWORD);
    // No tick ran since the expiry at T0 + 60 000; the same Call-ID comes back after it.
    let d = r.register(T0 + 61_000, &req(NVR, "c", 3, Some(60), Some(&a)), "n");
    assert_eq!(d.reply.as_ref().map(Reply::status), Some(200));
    assert_eq!(
        d.changes,
        vec![offline(NVR, OfflineCause::RegistrationExpired), online(NVR)]
    );
    // The old registration is gone: this is a new one, with its catalog query.
    assert!(matches!(
        &d.actions[..],
        [Action::QueryCatalog { .. }, Action::SubscribeCatalog { .. }]
    ));
    assert_eq!(r.online_until(NVR), Some(T0 + 121_000));
}

#[test]
fn the_deadline_index_agrees_with_a_scan_of_every_device_through_a_busy_hour() {
    // 40 devices; registrations of several lengths, keepalives, silences, refreshes,
    // unregistrations and ticks in a fixed pseudo-random order.
    let ids: Vec<String> = (1..=40).map(|i| format!("3402000000118{i:07}")).collect();
    let mut r = Registry::new(
        Timing::default(),
        REALM,
        PASSWORD,
        ids.iter().map(|id| (id.clone(), None)),
    );
    let mut seed: u64 = 0x5eed;
    let mut next = |n: u64| {
        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        (seed >> 33) % n
    };
    let mut now = T0;
    for step in 0..3_000 {
        now += next(5_000) as i64;
        let id = &ids[next(ids.len() as u64) as usize];
        match next(10) {
            0 | 1 => {
                let expires = [0, 60, 600, 3600][next(4) as usize];
                register(&mut r, now, id, &format!("call-{id}"), expires);
            }
            2..=6 => {
                keepalive(&mut r, now, id);
            }
            _ => {
                r.tick(now);
            }
        }
        assert_eq!(
            r.next_deadline(),
            r.next_deadline_by_scan(),
            "step {step} at {now}"
        );
    }
}
