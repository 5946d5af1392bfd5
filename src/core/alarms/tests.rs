//! The alarm book on hand-built timelines, through the core as the gateway drives it.

use super::lifecycle::Outcome;
use super::rules::AlarmRules;
use super::{AckError, AlarmChange, AlarmType, EventKind};
use crate::core::event::{Origin, RawReading, ReadingStatus, SourceEvent};
use crate::core::{Core, Inventory, Outputs};
use std::sync::Arc;

pub(crate) const T0: i64 = 1_790_000_000_000;

const CFG: &str = r#"
[alarms]
response_deadline_s = { level1 = 60, level2 = 30 }

[[sites]]
id = "p1"
name = "Park"
kind = "park"

[[sites]]
id = "m1"
name = "Mine"
kind = "mine"
alarms = { scheme = "four_colour", response_deadline_s = 20 }

[[sites]]
id = "p2"
name = "Closed park"
kind = "park"
status = "suspended"

[[devices]]
id = "lel"
site = "p1"
kind = "gas_combustible"
protocol = "mqtt"
interval_s = 1

[[devices]]
id = "slow"
site = "p1"
kind = "gas_combustible"
protocol = "mqtt"
interval_s = 1
alarm = { raise_after = 2, clear_after = 2 }

[[devices]]
id = "planned"
site = "p1"
kind = "gas_combustible"
protocol = "mqtt"
interval_s = 1
status = "planned"

[[devices]]
id = "slope"
site = "m1"
kind = "slope_displacement"
protocol = "mqtt"
interval_s = 1
alarm = { levels = [10, 20, 30, 40], rate_per_day = [100, 200, 300, 400], rate_window = "1h" }

[[devices]]
id = "ch4"
site = "m1"
kind = "methane"
protocol = "mqtt"
interval_s = 1
alarm = { levels = [0.5, 0.75, 1.0, 1.5] }

[[devices]]
id = "x"
site = "p2"
kind = "gas_combustible"
protocol = "mqtt"
interval_s = 1
"#;

pub(crate) fn core() -> Core {
    let f = crate::core::config::inventory::test_file(CFG);
    let inv = Inventory::from_config(&f.inventory);
    let rules = AlarmRules::from_config(&f.alarms, &f.inventory, &inv);
    let mut c = Core::new(inv, 60_000, 10);
    c.set_alarm_rules(rules);
    c
}

fn reading(site: &str, dev: &str, at: i64, v: f64, status: ReadingStatus) -> SourceEvent {
    SourceEvent::Reading {
        reading: RawReading {
            site: site.into(),
            device: dev.into(),
            ts_ms: Some(at),
            values: vec![("v".into(), v)],
            status,
            cause: None,
        },
        origin: Origin {
            topic: Arc::from("t"),
            element: None,
        },
        received_ms: at,
    }
}

/// Feed (device, seconds after T0, value) readings; return the alarm changes.
pub(crate) fn feed(c: &mut Core, site: &str, dev: &str, vals: &[(i64, f64)]) -> Vec<AlarmChange> {
    let mut out = Outputs::default();
    for (s, v) in vals {
        c.apply(
            reading(site, dev, T0 + s * 1000, *v, ReadingStatus::Normal),
            &mut out,
        );
    }
    out.alarms
}

pub(crate) fn kinds(ch: &[AlarmChange]) -> Vec<(u64, EventKind, u8)> {
    ch.iter()
        .map(|c| (c.record.id, c.event.kind, c.event.level))
        .collect()
}

#[test]
fn a_value_alarm_raises_escalates_and_clears_with_hysteresis() {
    let mut c = core();
    let ch = feed(
        &mut c,
        "p1",
        "lel",
        &[
            (0, 10.0),
            (1, 26.0),
            (2, 24.0),
            (3, 60.0),
            (4, 23.0),
            (5, 22.0),
        ],
    );
    assert_eq!(
        kinds(&ch),
        vec![
            (1, EventKind::Raised, 1),
            (1, EventKind::Escalated, 2),
            (1, EventKind::Cleared, 2),
        ]
    );
    let r = &ch[2].record;
    assert_eq!(r.kind, AlarmType::Value);
    assert_eq!(r.alarm.raised_ms, T0 + 1000);
    assert_eq!(
        r.alarm.cleared_ms,
        Some(T0 + 5000),
        "22 < 22.5 (90 % of 25)"
    );
    assert_eq!(r.value, Some(26.0));
    assert_eq!(r.peak, Some(60.0));
    // Level 1: 60 s from the raise; level 2 reached at +3 s: 30 s from then, earlier.
    assert_eq!(r.deadline_ms, T0 + 3000 + 30_000);
    assert_eq!(r.events.len(), 3);
    // A new crossing is a new alarm.
    let again = feed(&mut c, "p1", "lel", &[(6, 30.0)]);
    assert_eq!(kinds(&again), vec![(2, EventKind::Raised, 1)]);
}

#[test]
fn raise_after_and_clear_after_need_consecutive_readings() {
    let mut c = core();
    let ch = feed(
        &mut c,
        "p1",
        "slow",
        &[(0, 30.0), (1, 10.0), (2, 30.0), (3, 30.0)],
    );
    assert_eq!(kinds(&ch), vec![(1, EventKind::Raised, 1)]);
    assert_eq!(ch[0].record.alarm.raised_ms, T0 + 3000);
    let ch = feed(
        &mut c,
        "p1",
        "slow",
        &[(4, 10.0), (5, 30.0), (6, 10.0), (7, 10.0)],
    );
    assert_eq!(kinds(&ch), vec![(1, EventKind::Cleared, 1)]);
    assert_eq!(ch[0].record.alarm.cleared_ms, Some(T0 + 7000));
}

#[test]
fn four_colours_with_site_deadline() {
    let mut c = core();
    let ch = feed(&mut c, "m1", "ch4", &[(0, 0.6), (1, 1.2), (2, 1.6)]);
    assert_eq!(
        kinds(&ch),
        vec![
            (1, EventKind::Raised, 1),
            (1, EventKind::Escalated, 3),
            (1, EventKind::Escalated, 4)
        ]
    );
    let r = &ch[2].record;
    assert_eq!(r.scheme.level_name(r.level()), "红");
    assert_eq!(r.scheme.level_name(2), "黄");
    // The site gives one deadline for every level: 20 s from the raise.
    assert_eq!(r.deadline_ms, T0 + 20_000);
}

#[test]
fn slope_rate_over_a_sliding_window() {
    let mut c = core();
    // 1 mm per 6 minutes = 240 mm/d over the 1 h window: level 2 (200 mm/d); absolute
    // values stay under the 10 mm level.
    let vals: Vec<(i64, f64)> = (0..=9).map(|i| (i * 360, i as f64)).collect();
    let ch = feed(&mut c, "m1", "slope", &vals);
    let rate: Vec<_> = ch
        .iter()
        .filter(|c| c.record.kind == AlarmType::Rate)
        .collect();
    assert_eq!(rate.len(), 1, "{:?}", kinds(&ch));
    assert_eq!(rate[0].event.kind, EventKind::Raised);
    assert_eq!(rate[0].event.level, 2);
    assert!((rate[0].event.value.unwrap() - 240.0).abs() < 1e-6);
    assert_eq!(rate[0].record.alarm.raised_ms, T0 + 360_000);
    // The absolute levels hold too: 10 mm raises a value alarm. (Readings 6 minutes apart
    // also make the device go offline and back between them, with offline alarms.)
    let ch = feed(&mut c, "m1", "slope", &[(3600, 10.0)]);
    let value: Vec<_> = ch
        .iter()
        .filter(|c| c.record.kind == AlarmType::Value)
        .collect();
    assert_eq!(value.len(), 1);
    assert_eq!(value[0].event.kind, EventKind::Raised);
}

#[test]
fn offline_alarms_follow_liveness_for_built_devices_of_active_sites() {
    let mut c = core();
    let mut out = Outputs::default();
    for d in ["lel", "slow"] {
        c.apply(reading("p1", d, T0, 1.0, ReadingStatus::Normal), &mut out);
    }
    c.apply(reading("p2", "x", T0, 1.0, ReadingStatus::Normal), &mut out);
    out.clear();
    c.tick(T0 + 3_000, &mut out);
    let offline: Vec<_> = out
        .alarms
        .iter()
        .filter(|a| a.record.kind == AlarmType::Offline)
        .collect();
    assert_eq!(offline.len(), 2, "x is in a suspended site");
    assert!(offline
        .iter()
        .all(|a| a.record.alarm.raised_ms == T0 + 3_000));
    out.clear();
    c.apply(
        reading("p1", "lel", T0 + 4_000, 1.0, ReadingStatus::Normal),
        &mut out,
    );
    assert_eq!(out.alarms.len(), 1);
    assert_eq!(out.alarms[0].event.kind, EventKind::Cleared);
    assert_eq!(out.alarms[0].record.alarm.cleared_ms, Some(T0 + 4_000));
}

#[test]
fn fault_readings_raise_fault_alarms_and_do_not_drive_thresholds() {
    let mut c = core();
    let mut out = Outputs::default();
    c.apply(
        reading("p1", "lel", T0, 80.0, ReadingStatus::Fault),
        &mut out,
    );
    c.apply(
        reading("p1", "lel", T0 + 1000, 80.0, ReadingStatus::Fault),
        &mut out,
    );
    c.apply(
        reading("p1", "lel", T0 + 2000, 90.0, ReadingStatus::Maintenance),
        &mut out,
    );
    assert_eq!(kinds(&out.alarms), vec![(1, EventKind::Raised, 1)]);
    assert_eq!(out.alarms[0].record.kind, AlarmType::Fault);
    out.clear();
    c.apply(
        reading("p1", "lel", T0 + 3000, 5.0, ReadingStatus::Normal),
        &mut out,
    );
    assert_eq!(kinds(&out.alarms), vec![(1, EventKind::Cleared, 1)]);
}

#[test]
fn acknowledgements_outcomes_and_errors() {
    let mut c = core();
    feed(&mut c, "p1", "lel", &[(0, 30.0)]); // alarm 1, deadline +60 s
    feed(&mut c, "m1", "ch4", &[(0, 0.6)]); // alarm 2, site m1
    let mut out = Outputs::default();
    let r = c
        .acknowledge(1, None, "op", "checked", "http", T0 + 59_000, &mut out)
        .unwrap();
    assert!(r.first);
    assert_eq!(r.record.outcome(T0 + 100_000), Outcome::Responded);
    assert_eq!(out.alarms.len(), 1);
    assert_eq!(out.alarms[0].event.kind, EventKind::Acknowledged);
    // Idempotent: the first acknowledgement stands, nothing is emitted.
    out.clear();
    let again = c
        .acknowledge(1, None, "other", "x", "mqtt", T0 + 70_000, &mut out)
        .unwrap();
    assert!(!again.first);
    assert_eq!(again.record.alarm.ack.as_ref().unwrap().by, "op");
    assert!(out.alarms.is_empty());
    // Unknown id, another site's alarm: errors, nothing changes.
    assert_eq!(
        c.acknowledge(99, None, "op", "", "http", T0, &mut out),
        Err(AckError::Unknown(99))
    );
    assert!(matches!(
        c.acknowledge(2, Some("p1"), "op", "", "mqtt", T0, &mut out),
        Err(AckError::WrongSite { id: 2, .. })
    ));
    assert!(c.alarms.get(2).unwrap().alarm.ack.is_none());
    assert!(out.alarms.is_empty());
    // Late: 20 s deadline on m1.
    let late = c
        .acknowledge(2, Some("m1"), "op", "", "mqtt", T0 + 21_000, &mut out)
        .unwrap();
    assert_eq!(late.record.outcome(T0 + 30_000), Outcome::Late);
    // Cleared and acknowledged: final, still answers a repeated ack.
    feed(&mut c, "p1", "lel", &[(80, 1.0)]);
    assert!(c.alarms.get(1).unwrap().is_final());
    assert!(
        !c.acknowledge(1, Some("p1"), "op", "", "http", T0 + 90_000, &mut out)
            .unwrap()
            .first
    );
}

/// An alarm cleared but not acknowledged stays in memory until someone acknowledges it: its
/// history is held at its exact size (found by the soak, where 24,000 such alarms grew the
/// gateway by a quarter more than their events needed).
#[test]
fn an_unacknowledged_cleared_alarm_holds_its_events_at_their_size() {
    let mut c = core();
    let ch = feed(
        &mut c,
        "p1",
        "lel",
        &[(0, 10.0), (1, 26.0), (2, 60.0), (3, 5.0)],
    );
    let id = ch[0].record.id;
    let kept = c.alarms.get(id).expect("kept until acknowledged");
    assert!(kept.alarm.cleared_ms.is_some());
    assert_eq!((kept.events.len(), kept.events.capacity()), (3, 3));
}

fn recorded(dev: &str, raised_s: i64, cleared_s: Option<i64>, ack_s: Option<i64>) -> SourceEvent {
    use super::{Recorded, RecordedAck};
    SourceEvent::RecordedAlarm(Box::new(crate::core::event::RecordedAlarm {
        site: "m1".into(),
        device: dev.into(),
        alarm: Recorded {
            kind: AlarmType::Value,
            level: 1,
            priority: None,
            raised_ms: T0 + raised_s * 1000,
            cleared_ms: cleared_s.map(|s| T0 + s * 1000),
            ack: ack_s.map(|s| RecordedAck {
                by: "张工".into(),
                note: "加强通风".into(),
                at_ms: T0 + s * 1000,
            }),
            value: Some(1.3),
            match_ms: 60_000,
        },
        origin: Origin {
            topic: Arc::from("mine_files/x_YCBJ_y.txt"),
            element: Some(2),
        },
        received_ms: T0 + 600_000,
    }))
}

#[test]
fn a_recorded_alarm_is_raised_cleared_and_acknowledged_at_its_own_times() {
    let mut c = core();
    let mut out = Outputs::default();
    c.apply(recorded("ch4", 100, Some(160), Some(110)), &mut out);
    assert_eq!(
        kinds(&out.alarms),
        vec![
            (1, EventKind::Raised, 1),
            (1, EventKind::Cleared, 1),
            (1, EventKind::Acknowledged, 1)
        ]
    );
    let r = &out.alarms[2].record;
    assert_eq!(r.alarm.raised_ms, T0 + 100_000);
    assert_eq!(r.alarm.cleared_ms, Some(T0 + 160_000));
    let ack = r.alarm.ack.as_ref().expect("acknowledged");
    assert_eq!((ack.by.as_str(), ack.at_ms), ("张工", T0 + 110_000));
    assert_eq!(ack.via, "mine_file");
    // Site m1 answers level 1 within 20 s: acknowledged 10 s after the raise is in time.
    assert_eq!(r.outcome(T0 + 1_000_000), Outcome::Responded);
    // The same record in a later file changes nothing.
    let mut again = Outputs::default();
    c.apply(recorded("ch4", 100, Some(160), Some(110)), &mut again);
    assert!(again.alarms.is_empty(), "{:?}", kinds(&again.alarms));
}

#[test]
fn a_recorded_alarm_is_the_gateway_s_own_alarm_of_the_same_excursion() {
    let mut c = core();
    // The gateway raised a value alarm from the readings at +95 s (0.6 > 0.5).
    let raised = feed(&mut c, "m1", "ch4", &[(95, 0.6)]);
    assert_eq!(kinds(&raised), vec![(1, EventKind::Raised, 1)]);
    // The mine's record starts at +100 s, still open, with no response yet: the same alarm.
    let mut out = Outputs::default();
    c.apply(recorded("ch4", 100, None, None), &mut out);
    assert!(out.alarms.is_empty(), "{:?}", kinds(&out.alarms));
    // Later the record ends and carries its response: alarm 1 is cleared and acknowledged.
    c.apply(recorded("ch4", 100, Some(200), Some(150)), &mut out);
    assert_eq!(
        kinds(&out.alarms),
        vec![(1, EventKind::Cleared, 1), (1, EventKind::Acknowledged, 1)]
    );
    // Acknowledged 55 s after the raise, past the 20 s deadline: late.
    assert_eq!(out.alarms[1].record.outcome(T0 + 1_000_000), Outcome::Late);
}

#[test]
fn a_recorded_alarm_without_a_response_stays_unacknowledged() {
    let mut c = core();
    let mut out = Outputs::default();
    c.apply(recorded("ch4", 100, Some(130), None), &mut out);
    let r = &out.alarms.last().expect("changes").record;
    assert!(r.alarm.ack.is_none());
    assert_eq!(r.outcome(T0 + 1_000_000), Outcome::Missed);
    // For an unknown point it is refused, named.
    let mut out = Outputs::default();
    c.apply(recorded("nope", 100, None, None), &mut out);
    assert_eq!(out.rejections.len(), 1);
    assert_eq!(
        out.rejections[0].reason,
        crate::model::Reason::UnknownDevice
    );
}

#[test]
fn a_stored_reading_moves_neither_liveness_nor_alarms() {
    let mut c = core();
    let mut out = Outputs::default();
    let SourceEvent::Reading {
        reading,
        origin,
        received_ms,
    } = reading("m1", "ch4", T0, 0.9, ReadingStatus::Normal)
    else {
        unreachable!()
    };
    c.apply(
        SourceEvent::Stored {
            reading,
            origin,
            received_ms,
        },
        &mut out,
    );
    assert_eq!(out.readings.len(), 1, "stored");
    assert!(
        out.alarms.is_empty(),
        "0.9 is over 0.5, but a stored reading raises nothing"
    );
    assert!(
        out.transitions.is_empty(),
        "and does not bring the device online"
    );
    let d = c.inventory.lookup("m1", "ch4").expect("device");
    assert!(c.last_reading(d).is_none());
}

#[test]
fn a_faulty_reading_may_come_without_a_value_a_normal_one_may_not() {
    let mut c = core();
    let empty = |status| SourceEvent::Reading {
        reading: RawReading {
            site: "m1".into(),
            device: "ch4".into(),
            ts_ms: Some(T0),
            values: Vec::new(),
            status,
            cause: None,
        },
        origin: Origin {
            topic: Arc::from("t"),
            element: None,
        },
        received_ms: T0,
    };
    let mut out = Outputs::default();
    c.apply(empty(ReadingStatus::Fault), &mut out);
    assert_eq!(out.readings.len(), 1);
    assert_eq!(kinds(&out.alarms), vec![(1, EventKind::Raised, 1)]);
    assert_eq!(out.alarms[0].record.kind, AlarmType::Fault);
    c.apply(empty(ReadingStatus::Normal), &mut out);
    assert_eq!(out.rejections.len(), 1);
    assert_eq!(out.rejections[0].reason, crate::model::Reason::EmptyValues);
}
