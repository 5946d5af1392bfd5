//! Each formula on hand-built timelines (window [0, 100 000) ms unless said otherwise).

use super::engine::*;
use super::history::*;
use crate::core::inventory::Inventory;

const INV: &str = r#"
[[sites]]
id = "park"
name = "Park"
kind = "park"

[[sites]]
id = "mine"
name = "Mine"
kind = "mine"

[[sites]]
id = "old"
name = "Suspended park"
kind = "park"
status = "suspended"

[[enterprises]]
id = "e1"
site = "park"
name = "E1"
platform = "built"

[[enterprises]]
id = "e2"
site = "park"
name = "E2"

[[enterprises]]
id = "e3"
site = "park"
name = "E3"

[[zones]]
id = "z1"
site = "park"
name = "Z1"

[[zones]]
id = "z2"
site = "park"
name = "Z2 (no devices)"

[[systems]]
id = "s1"
site = "mine"
kind = "slope_monitoring"

[[devices]]
id = "p0"
site = "park"
kind = "gas_combustible"
enterprise = "e1"
zone = "z1"
protocol = "mqtt"
interval_s = 1

[[devices]]
id = "p1"
site = "park"
kind = "gas_combustible"
enterprise = "e2"
zone = "z1"
protocol = "mqtt"
interval_s = 1

[[devices]]
id = "m0"
site = "mine"
kind = "slope_displacement"
system = "s1"
protocol = "mqtt"
interval_s = 1

[[devices]]
id = "m1"
site = "mine"
kind = "slope_displacement"
system = "s1"
protocol = "mqtt"
interval_s = 1

[[devices]]
id = "o0"
site = "old"
kind = "gas_combustible"
protocol = "mqtt"
interval_s = 1
"#;

const W: i64 = 100_000;

fn inv() -> Inventory {
    Inventory::from_config(&crate::core::config::inventory::test_file(INV).inventory)
}

fn dev(inv: &Inventory, id: &str) -> usize {
    inv.devices.iter().position(|d| &*d.id == id).unwrap()
}

fn get<'a>(v: &'a [Indicator], id: &str) -> &'a Indicator {
    v.iter().find(|i| i.id == id).unwrap()
}

fn run(inv: &Inventory, h: &History, policy: Policy) -> Computation {
    compute(inv, h, 0, W, i64::MAX, policy)
}

fn park(inv: &Inventory) -> Scope {
    Scope::Site(inv.site("park").unwrap())
}

#[test]
fn a_window_that_cuts_an_outage_in_half() {
    let inv = inv();
    let mut h = History::registered_at(&inv, -50_000);
    // p0 online throughout; p1 offline from -20 000 to 40 000: 40 % of the window down.
    h.devices[dev(&inv, "p0")].transitions = vec![(-50_000, true)];
    h.devices[dev(&inv, "p1")].transitions =
        vec![(-50_000, true), (-20_000, false), (40_000, true)];
    let c = run(&inv, &h, Policy::default());
    let v = c.indicators(&inv, park(&inv));
    let r = get(&v, "online_rate");
    assert_eq!((r.ratio.num, r.ratio.den), (160_000, 200_000));
    assert_eq!(r.value(), Some(0.8));
    assert_eq!((r.numerator, r.denominator), (1.6, 2.0));
    let f = &c.devices[dev(&inv, "p1")];
    assert_eq!(
        (f.down_ms, f.outages, f.longest),
        (40_000, 1, Some((0, 40_000)))
    );
    // Both online at the end.
    assert_eq!(get(&v, "online_rate_at_end").value(), Some(1.0));
}

#[test]
fn a_device_added_or_suspended_mid_window() {
    let inv = inv();
    let mut h = History::registered_at(&inv, -1);
    let (p0, p1) = (dev(&inv, "p0"), dev(&inv, "p1"));
    // p0 always online. p1 registered at 50 000 and online from then on.
    h.devices[p0].transitions = vec![(-1, true)];
    h.devices[p1].status = vec![(50_000, Reg::Built)];
    h.devices[p1].transitions = vec![(50_000, true)];
    let v = run(&inv, &h, Policy::default()).indicators(&inv, park(&inv));
    let r = get(&v, "online_rate");
    assert_eq!((r.ratio.num, r.ratio.den), (150_000, 150_000));
    assert_eq!(r.denominator, 1.5);

    // p1 suspended at 50 000 while offline: under "active" it stops counting, under
    // "planned" it keeps counting as down.
    h.devices[p1].status = vec![(-1, Reg::Built), (50_000, Reg::Suspended)];
    h.devices[p1].transitions = vec![];
    let active = run(&inv, &h, Policy::default()).indicators(&inv, park(&inv));
    let r = get(&active, "online_rate");
    assert_eq!((r.ratio.num, r.ratio.den), (100_000, 150_000));
    let planned = Policy {
        denominator: Denominator::Planned,
        ..Policy::default()
    };
    let r2 = run(&inv, &h, planned).indicators(&inv, park(&inv));
    let r2 = get(&r2, "online_rate");
    assert_eq!((r2.ratio.num, r2.ratio.den), (100_000, 200_000));
}

#[test]
fn a_suspended_site_counts_only_under_the_planned_policy() {
    let inv = inv();
    let h = History::registered_at(&inv, -1);
    let old = Scope::Site(inv.site("old").unwrap());
    let active = run(&inv, &h, Policy::default()).indicators(&inv, old);
    assert_eq!(get(&active, "online_rate").ratio.den, 0);
    assert_eq!(get(&active, "online_rate").value(), None);
    let planned = Policy {
        denominator: Denominator::Planned,
        ..Policy::default()
    };
    let p = run(&inv, &h, planned).indicators(&inv, old);
    assert_eq!(
        get(&p, "online_rate").ratio,
        Ratio {
            num: 0,
            den: W as i128
        }
    );
    // The region under "planned": park devices + the mine's system + the old park's device.
    let region = run(&inv, &h, planned).indicators(&inv, Scope::Region);
    assert_eq!(get(&region, "online_rate").denominator, 4.0);
}

#[test]
fn a_system_whose_quorum_flips() {
    let inv = inv();
    let mut h = History::registered_at(&inv, -1);
    let (m0, m1) = (dev(&inv, "m0"), dev(&inv, "m1"));
    h.devices[m0].transitions = vec![(0, true), (60_000, false)];
    h.devices[m1].transitions = vec![(30_000, true)];
    let mine = Scope::Site(inv.site("mine").unwrap());
    let rate = |q| {
        let p = Policy {
            online_quorum: q,
            ..Policy::default()
        };
        let v = run(&inv, &h, p).indicators(&inv, mine);
        get(&v, "online_rate").ratio
    };
    // any: online 0–100 000; all: only 30 000–60 000 when both are.
    assert_eq!(
        rate(Quorum::Any),
        Ratio {
            num: 100_000,
            den: 100_000
        }
    );
    assert_eq!(
        rate(Quorum::All),
        Ratio {
            num: 30_000,
            den: 100_000
        }
    );
    assert_eq!(
        rate(Quorum::Fraction(0.5)),
        Ratio {
            num: 100_000,
            den: 100_000
        }
    );
    // system_count: online ≥ 90 % only under "any".
    let p = Policy {
        online_quorum: Quorum::All,
        ..Policy::default()
    };
    let v = run(&inv, &h, p).indicators(&inv, mine);
    let slope = v
        .iter()
        .find(|i| i.id == "system_count" && i.qualifier.as_deref() == Some("slope_monitoring"))
        .unwrap();
    assert_eq!((slope.numerator, slope.denominator), (0.0, 1.0));
    let v = run(&inv, &h, Policy::default()).indicators(&inv, mine);
    let slope = v
        .iter()
        .find(|i| i.id == "system_count" && i.qualifier.as_deref() == Some("slope_monitoring"))
        .unwrap();
    assert_eq!((slope.numerator, slope.denominator), (1.0, 1.0));
    // Mine devices are not online-rate units when mines count systems …
    let region = run(&inv, &h, Policy::default()).indicators(&inv, Scope::Region);
    assert_eq!(get(&region, "online_rate").denominator, 3.0);
    // … and are when they count devices.
    let by_dev = Policy {
        mine_units: MineUnits::Devices,
        ..Policy::default()
    };
    let v = run(&inv, &h, by_dev).indicators(&inv, mine);
    assert_eq!(
        get(&v, "online_rate").ratio,
        Ratio {
            num: 60_000 + 70_000,
            den: 200_000
        }
    );
}

#[test]
fn zones_with_no_devices_are_never_covered() {
    let inv = inv();
    let mut h = History::registered_at(&inv, -1);
    h.devices[dev(&inv, "p0")].transitions = vec![(0, true), (50_000, false)];
    h.devices[dev(&inv, "p1")].transitions = vec![(25_000, true), (75_000, false)];
    let v = run(&inv, &h, Policy::default()).indicators(&inv, park(&inv));
    // z1 covered 0–75 000 (either device), z2 never: (75 000 + 0) / 200 000.
    assert_eq!(
        get(&v, "coverage_rate").ratio,
        Ratio {
            num: 75_000,
            den: 200_000
        }
    );
}

#[test]
fn builds_platforms_and_access() {
    let inv = inv();
    let mut h = History::registered_at(&inv, -1);
    // p1 (of e2) reported once, before the window: it has pushed data but was not online in it.
    h.devices[dev(&inv, "p1")].transitions = vec![(-1, true), (-0, false)];
    h.devices[dev(&inv, "p0")].transitions = vec![(10, true), (20, false)];
    let v = run(&inv, &h, Policy::default()).indicators(&inv, Scope::Region);
    // 2 of 5 registered devices have reported.
    assert_eq!(get(&v, "device_build_rate").ratio, Ratio { num: 2, den: 5 });
    // e1 platform built; e2 pushed data; e3 neither.
    assert_eq!(
        get(&v, "enterprise_platform_rate").ratio,
        Ratio { num: 2, den: 3 }
    );
    // Only e1 had a device online in the window.
    assert_eq!(
        get(&v, "enterprise_access_rate").ratio,
        Ratio { num: 1, den: 3 }
    );
    let e2 = Scope::Enterprise(1);
    let v = run(&inv, &h, Policy::default()).indicators(&inv, e2);
    assert_eq!(
        get(&v, "enterprise_access_rate").ratio,
        Ratio { num: 0, den: 1 }
    );
}

#[test]
fn latency_percentiles_and_link_stability() {
    let inv = inv();
    let mut h = History::registered_at(&inv, -1);
    let ps = inv.site("park").unwrap() as usize;
    h.latency[ps] = (1..=100).map(|ms| (latency_bucket(ms), 1)).collect();
    h.links = vec![(
        "mqtt".into(),
        vec![(-5, true), (10_000, false), (30_000, true)],
    )];
    let v = run(&inv, &h, Policy::default()).indicators(&inv, Scope::Region);
    assert_eq!(get(&v, "latency_p50_ms").numerator, 50.0);
    assert_eq!(get(&v, "latency_p95_ms").numerator, 95.0);
    assert_eq!(get(&v, "latency_p99_ms").numerator, 99.0);
    assert_eq!(
        get(&v, "link_stability").ratio,
        Ratio {
            num: 80_000,
            den: 100_000
        }
    );
}

#[test]
fn time_after_now_is_not_measured() {
    let inv = inv();
    let mut h = History::registered_at(&inv, -1);
    h.devices[dev(&inv, "p0")].transitions = vec![(0, true)];
    let c = compute(&inv, &h, 0, W, 40_000, Policy::default());
    assert_eq!(c.to, 40_000);
    let v = c.indicators(&inv, park(&inv));
    assert_eq!(
        get(&v, "online_rate").ratio,
        Ratio {
            num: 40_000,
            den: 80_000
        }
    );
}

#[test]
fn alarm_response_rate_by_scope_type_and_level() {
    use crate::core::alarms::AlarmType;
    let inv = inv();
    let mut h = History::registered_at(&inv, -1);
    let fact = |id, d: &str, t, level, raised, deadline, ack| AlarmFact {
        id,
        device: dev(&inv, d) as u32,
        alarm_type: t,
        level,
        raised_ms: raised,
        deadline_ms: deadline,
        ack_ms: ack,
    };
    h.alarms = vec![
        // Acknowledged exactly at the deadline: responded.
        fact(1, "p0", AlarmType::Value, 1, 1_000, 1_900, Some(1_900)),
        // One millisecond late.
        fact(2, "p0", AlarmType::Value, 2, 2_000, 2_300, Some(2_301)),
        // Never acknowledged, deadline passed: missed.
        fact(3, "p1", AlarmType::Offline, 1, 3_000, 3_900, None),
        fact(4, "m0", AlarmType::Rate, 1, 4_000, 4_900, Some(4_500)),
        // Deadline at `to`, not before it: pending, in neither count.
        fact(5, "m1", AlarmType::Fault, 1, 90_000, W, None),
        // Acknowledged, but its deadline is after `to`: pending too (the rate of a closed
        // window never changes later).
        fact(6, "p1", AlarmType::Value, 1, 95_000, 200_000, Some(96_000)),
    ];
    let c = run(&inv, &h, Policy::default());
    let of = |scope, q: Option<&str>| {
        let v = c.indicators(&inv, scope);
        let r = |id: &str| {
            v.iter()
                .find(|i| i.id == id && i.qualifier.as_deref() == q)
                .map(|i| (i.ratio.num, i.ratio.den))
                .unwrap()
        };
        let counts = q
            .is_none()
            .then(|| (r("alarms_pending").0, r("alarms_raised").0));
        (r("alarm_response_rate"), counts)
    };
    let site = |id| Scope::Site(inv.site(id).unwrap());
    let ent = |id: &str| {
        Scope::Enterprise(inv.enterprises.iter().position(|e| &*e.id == id).unwrap() as u32)
    };
    assert_eq!(of(Scope::Region, None), ((2, 4), Some((2, 6))));
    assert_eq!(of(site("park"), None), ((1, 3), Some((1, 4))));
    assert_eq!(of(site("mine"), None), ((1, 1), Some((1, 2))));
    assert_eq!(of(ent("e1"), None), ((1, 2), Some((0, 2))));
    assert_eq!(of(ent("e2"), None), ((0, 1), Some((1, 2))));
    assert_eq!(of(Scope::Region, Some("type:value")).0, (1, 2));
    assert_eq!(of(Scope::Region, Some("type:offline")).0, (0, 1));
    assert_eq!(of(Scope::Region, Some("type:rate")).0, (1, 1));
    assert_eq!(of(Scope::Region, Some("type:fault")).0, (0, 0));
    assert_eq!(of(Scope::Region, Some("level:1")).0, (2, 3));
    assert_eq!(of(Scope::Region, Some("level:2")).0, (0, 1));
    assert_eq!(of(site("park"), Some("level:2")).0, (0, 1));
}

/// The order of the rows is part of the API (responses and reports list them as computed).
#[test]
fn rows_come_in_the_documented_order_with_their_qualifiers() {
    let inv = inv();
    let mut h = History::registered_at(&inv, -1);
    h.links = vec![("mqtt".into(), vec![(-5, true)])];
    h.polls = vec![("plc".into(), 9, 1)];
    let rows = |scope| -> Vec<(&'static str, Option<String>)> {
        run(&inv, &h, Policy::default())
            .indicators(&inv, scope)
            .into_iter()
            .map(|i| (i.id, i.qualifier))
            .collect()
    };
    let q = |s: &str| Some(s.to_string());
    let mut expected = vec![
        ("online_rate", None),
        ("online_rate_at_end", None),
        ("coverage_rate", None),
        ("device_build_rate", None),
        ("enterprise_platform_rate", None),
        ("enterprise_access_rate", None),
        ("system_count", q("slope_monitoring")),
        ("system_count", q("video_monitoring")),
        ("system_count", q("ai_video")),
        ("system_count", q("major_hazard")),
        ("system_count", q("positioning")),
        ("latency_p50_ms", None),
        ("latency_p95_ms", None),
        ("latency_p99_ms", None),
        ("alarm_response_rate", None),
        ("alarm_response_rate", q("type:value")),
        ("alarm_response_rate", q("type:rate")),
        ("alarm_response_rate", q("type:offline")),
        ("alarm_response_rate", q("type:fault")),
        ("alarm_response_rate", q("type:video")),
        ("alarm_response_rate", q("level:1")),
        ("alarm_response_rate", q("level:2")),
        ("alarms_pending", None),
        ("alarms_raised", None),
        ("link_stability", q("mqtt")),
        ("poll_success_ratio", q("plc")),
    ];
    assert_eq!(rows(Scope::Region), expected);
    // Links belong to the gateway, not to a site.
    expected.truncate(expected.len() - 2);
    assert_eq!(rows(park(&inv)), expected);
    // Zones, systems and latency belong to sites, not enterprises.
    expected.retain(|(id, _)| {
        !matches!(*id, "coverage_rate" | "system_count") && !id.starts_with("latency_")
    });
    assert_eq!(rows(Scope::Enterprise(0)), expected);
}

/// Counted time before a device's first reading is `never`: in `down_ms` (the rate counts
/// it) but in `never_ms`, not an outage.
#[test]
fn time_before_the_first_reading_is_never_not_an_outage() {
    let inv = inv();
    let mut h = History::registered_at(&inv, 0);
    h.devices[dev(&inv, "p0")].transitions = vec![(3_000, true)];
    h.devices[dev(&inv, "p1")].transitions = vec![(20_000, true), (60_000, false)];
    let c = run(&inv, &h, Policy::default());
    let f = &c.devices[dev(&inv, "p0")];
    assert_eq!(
        (f.down_ms, f.never_ms, f.outages, f.longest),
        (3_000, 3_000, 0, None)
    );
    assert_eq!(
        (f.registered_ms, f.first_reading_ms),
        (Some(0), Some(3_000))
    );
    let f = &c.devices[dev(&inv, "p1")];
    assert_eq!(
        (f.down_ms, f.never_ms, f.outages, f.longest),
        (60_000, 20_000, 1, Some((60_000, 100_000)))
    );
}

/// Maintenance while online is not counted, for any device; fault while online is down time
/// for a coal mine's point only, named by its cause, and is not an outage.
#[test]
fn maintenance_is_not_counted_and_a_mine_point_s_fault_is_down() {
    use crate::core::Condition;
    let mut inv = inv();
    let p0 = dev(&inv, "p0");
    let mut h = History::registered_at(&inv, -1);
    h.devices[p0].transitions = vec![(0, true)];
    h.devices[p0].conditions = vec![
        (20_000, Condition::Fault, Some("传感器故障".into())),
        (40_000, Condition::Normal, None),
        (60_000, Condition::Maintenance, Some("标校".into())),
        (70_000, Condition::Normal, None),
    ];
    // An MQTT detector: its fault keeps it online; its maintenance is not counted.
    let f = &run(&inv, &h, Policy::default()).devices[p0];
    assert_eq!((f.counted_ms, f.online_ms), (90_000, 90_000));
    assert_eq!((f.down_ms, f.fault_ms, f.maintenance_ms), (0, 0, 10_000));
    // A mine's point: the 20 s of 传感器故障 are counted, not online, and not an outage.
    inv.devices[p0].protocol = crate::model::Protocol::MineFiles;
    let f = &run(&inv, &h, Policy::default()).devices[p0];
    assert_eq!((f.counted_ms, f.online_ms), (90_000, 70_000));
    assert_eq!((f.down_ms, f.fault_ms, f.outages), (20_000, 20_000, 0));
    assert_eq!(f.fault_causes, vec![(Some("传感器故障".into()), 20_000)]);
    // Conditions say nothing while offline: silent from 30 s to 50 s, the fault costs 10 s.
    h.devices[p0].transitions = vec![(0, true), (30_000, false), (50_000, true)];
    let f = &run(&inv, &h, Policy::default()).devices[p0];
    assert_eq!((f.down_ms, f.fault_ms, f.outages), (30_000, 10_000, 1));
}

/// The overview's one-walk sums are the per-scope indicators', for the region and each site,
/// under both ways of counting a mine, with outages, a quorum, zones and alarms.
#[test]
fn headlines_equal_the_indicators_of_each_scope() {
    use crate::core::alarms::AlarmType;
    let inv = inv();
    let mut h = History::registered_at(&inv, -1);
    h.devices[dev(&inv, "p0")].transitions = vec![(0, true), (40_000, false), (70_000, true)];
    h.devices[dev(&inv, "p1")].transitions = vec![(10_000, true)];
    h.devices[dev(&inv, "m0")].transitions = vec![(0, true), (60_000, false)];
    h.devices[dev(&inv, "m1")].transitions = vec![(30_000, true)];
    h.devices[dev(&inv, "o0")].transitions = vec![(0, true)];
    let fact = |id, d: &str, deadline, ack| AlarmFact {
        id,
        device: dev(&inv, d) as u32,
        alarm_type: AlarmType::Value,
        level: 1,
        raised_ms: 1_000,
        deadline_ms: deadline,
        ack_ms: ack,
    };
    h.alarms = vec![
        fact(1, "p0", 2_000, Some(1_500)),
        fact(2, "p1", 2_000, None),
        fact(3, "m0", 3_000, Some(2_000)),
        fact(4, "m1", W + 1, None),
    ];
    for mine_units in [MineUnits::Systems, MineUnits::Devices] {
        let policy = Policy {
            mine_units,
            online_quorum: Quorum::All,
            ..Policy::default()
        };
        let c = run(&inv, &h, policy);
        let (region, sites) = c.headlines(&inv);
        let scopes = std::iter::once((Scope::Region, &region)).chain(
            sites
                .iter()
                .enumerate()
                .map(|(i, s)| (Scope::Site(i as u32), s)),
        );
        for (scope, head) in scopes {
            let v = c.indicators(&inv, scope);
            let want = |id: &str| {
                v.iter()
                    .find(|i| i.id == id && i.qualifier.is_none())
                    .cloned()
                    .unwrap()
            };
            assert_eq!(head.online_rate, want("online_rate"), "{scope:?}");
            assert_eq!(head.coverage_rate, want("coverage_rate"), "{scope:?}");
            let r = want("alarm_response_rate");
            assert_eq!(head.alarm_response_rate, r, "{scope:?}");
        }
        assert_eq!(region.alarm_response_rate.ratio, Ratio { num: 2, den: 3 });
    }
}

mod ledger {
    use super::*;
    use crate::core::alarms::AlarmType;
    use crate::core::indicators::headline::Headline;
    use crate::core::indicators::ledger::{self, FINE_MS, HOURLY_MS};
    use crate::core::Condition;
    use proptest::prelude::*;

    const HOUR: i64 = 3_600_000;
    const DAY: i64 = 24 * HOUR;
    /// 2026-11-01T00:00:00+08:00; the histories run 20 days from there.
    const T0: i64 = 1_793_462_400_000;
    const END: i64 = T0 + 20 * DAY;
    const OFFSET: i64 = 8 * HOUR;

    /// Per device: (offset, online) changes; per alarm: (device, raised, deadline after, ack after).
    type Case = (
        Vec<Vec<(i64, bool)>>,
        Vec<(usize, i64, i64, Option<i64>)>,
        Vec<(usize, i64, u8)>,
    );

    fn history(inv: &Inventory, (changes, alarms, conds): &Case) -> History {
        let mut h = History::registered_at(inv, T0 - 1);
        for (d, ch) in changes.iter().enumerate() {
            let mut t: Vec<(i64, bool)> = ch.iter().map(|&(at, on)| (T0 + at, on)).collect();
            t.sort_by_key(|x| x.0);
            t.dedup_by_key(|x| x.0);
            h.devices[d].transitions = t;
        }
        for &(d, at, c) in conds {
            let c = [Condition::Normal, Condition::Fault, Condition::Maintenance][c as usize % 3];
            h.devices[d].conditions.push((T0 + at, c, None));
        }
        for dh in &mut h.devices {
            dh.conditions.sort_by_key(|x| x.0);
            dh.conditions.dedup_by_key(|x| x.0);
        }
        h.alarms = alarms
            .iter()
            .enumerate()
            .map(|(id, &(d, raised, after, ack))| AlarmFact {
                id: id as u64,
                device: d as u32,
                alarm_type: AlarmType::Value,
                level: 1,
                raised_ms: T0 + raised,
                deadline_ms: T0 + raised + after,
                ack_ms: ack.map(|a| T0 + raised + a),
            })
            .collect();
        h
    }

    /// What the journal loads for [from, to): the alarms raised in it.
    fn direct(
        inv: &Inventory,
        h: &History,
        from: i64,
        to: i64,
        p: Policy,
    ) -> (Headline, Vec<Headline>) {
        let mut h = h.clone();
        h.alarms.retain(|a| from <= a.raised_ms && a.raised_ms < to);
        compute(inv, &h, from, to, to, p).headlines(inv)
    }

    /// Instants a ledger ending at END keeps: local midnights, hours of its last 14 days,
    /// any millisecond of its last 2 days.
    fn kept() -> impl Strategy<Value = i64> {
        prop_oneof![
            (0i64..21).prop_map(|d| T0 + d * DAY),
            (0i64..(HOURLY_MS / HOUR)).prop_map(|h| END - HOURLY_MS + h * HOUR),
            (0i64..FINE_MS).prop_map(|ms| END - FINE_MS + ms),
        ]
    }

    fn case() -> impl Strategy<Value = Case> {
        let t = 0i64..20 * DAY;
        (
            prop::collection::vec(prop::collection::vec((t.clone(), any::<bool>()), 0..8), 5),
            prop::collection::vec(
                (
                    0usize..5,
                    t.clone(),
                    0i64..DAY,
                    prop::option::of(0i64..2 * DAY),
                ),
                0..6,
            ),
            prop::collection::vec((0usize..5, t, 0u8..3), 0..4),
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
        /// Every window the ledger keeps both ends of is the engine's own evaluation of it,
        /// to the unit-millisecond, under both ways of counting a mine.
        #[test]
        fn a_kept_window_is_the_engines_evaluation(c in case(), a in kept(), b in kept(), systems in any::<bool>()) {
            let inv = inv();
            let h = history(&inv, &c);
            let policy = Policy {
                mine_units: if systems { MineUnits::Systems } else { MineUnits::Devices },
                ..Policy::default()
            };
            let start = ledger::start(END, OFFSET);
            let mut loaded = h.clone();
            loaded.alarms.retain(|x| start <= x.raised_ms && x.raised_ms < END);
            let (l, _) = ledger::build(&inv, &loaded, (start, END), END, policy, OFFSET);
            let (from, to) = (a.min(b), a.max(b));
            let got = l.headlines(from, to);
            prop_assert!(got.is_some(), "window [{from}, {to}) not kept");
            prop_assert_eq!(got.unwrap(), direct(&inv, &h, from, to, policy));
        }
    }

    /// An instant before the last two days that is neither an hour (last 14 days) nor a local
    /// midnight is not kept: the caller evaluates that window itself.
    #[test]
    fn an_instant_off_the_grid_is_not_answered() {
        let inv = inv();
        let h = History::registered_at(&inv, T0 - 1);
        let start = ledger::start(END, OFFSET);
        let (l, _) = ledger::build(&inv, &h, (start, END), END, Policy::default(), OFFSET);
        assert!(l.headlines(END - 3 * DAY + 1, END).is_none());
        assert!(l.headlines(END, END + 1).is_none());
        assert!(l.headlines(END - 3 * DAY, END).is_some());
        assert!(l.headlines(T0, END - FINE_MS + 1).is_some());
        // T0 is local midnight: the hour after it, 20 days back, is not kept.
        assert!(l.headlines(T0 + HOUR, END).is_none());
    }
}
