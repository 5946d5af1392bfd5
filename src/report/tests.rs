//! Reasons: ranking, shares, folding and their texts, on hand-built timelines
//! (window [0, 100 000) ms unless said otherwise).

use super::*;
use crate::core::indicators::engine::compute;
use crate::core::indicators::history::History;
use crate::core::indicators::Policy;

const INV: &str = r#"
[[sites]]
id = "park"
name = "Park"
kind = "park"

[[devices]]
id = "p0"
site = "park"
kind = "gas_combustible"
protocol = "mqtt"
interval_s = 1

[[devices]]
id = "p1"
site = "park"
kind = "gas_combustible"
protocol = "mqtt"
interval_s = 1
"#;

const W: i64 = 100_000;

fn inv(text: &str) -> Inventory {
    Inventory::from_config(&crate::core::config::inventory::test_file(text).inventory)
}

fn dev(inv: &Inventory, id: &str) -> usize {
    inv.devices.iter().position(|d| &*d.id == id).unwrap()
}

/// A device registered at the window's start whose first reading came 3 s later, online
/// ever since: those 3 s are `never`, not an outage. The old text was
/// "device park/p0: offline 0.00 h in the window (1 outage(s))".
#[test]
fn time_before_the_first_reading_is_not_an_outage() {
    let inv = inv(INV);
    let mut h = History::registered_at(&inv, 0);
    h.devices[dev(&inv, "p0")].transitions = vec![(3_000, true)];
    h.devices[dev(&inv, "p1")].transitions = vec![(0, true)];
    let c = compute(&inv, &h, 0, W, i64::MAX, Policy::default());
    let r = reasons(&inv, &c, "online_rate", Scope::Region, None);
    assert_eq!(r.len(), 1);
    let text = r[0].summary();
    assert!(!text.contains("offline"), "{text}");
    assert!(!text.contains("0.00 h"), "{text}");
    assert_eq!(r[0].outages, 0);
    assert_eq!((r[0].down_ms, r[0].cost_ms), (3_000, 3_000));
    assert_eq!(r[0].longest_from, None, "no outage to date");
    assert!(!r[0].never_reported);
    assert_eq!(
        text,
        "device park/p0: no reading yet for 3 s of the window after its registration \
         1970-01-01T00:00:00.000Z (first reading 1970-01-01T00:00:03.000Z)"
    );
    assert_eq!(r[0].share, Decimal::ONE);
}

/// A device that never reported is "never reported since its registration", its cost the
/// time it was counted; an outage after a late first reading is an outage, the time before
/// it is not.
#[test]
fn never_reported_and_a_late_first_reading() {
    let inv = inv(INV);
    let mut h = History::registered_at(&inv, 10_000);
    h.devices[dev(&inv, "p1")].transitions = vec![(40_000, true), (70_000, false)];
    let c = compute(&inv, &h, 0, W, i64::MAX, Policy::default());
    let r = reasons(&inv, &c, "online_rate", Scope::Region, None);
    let ids: Vec<&str> = r.iter().map(|x| x.id.as_str()).collect();
    assert_eq!(ids, ["p0", "p1"], "90 s before 60 s");
    assert_eq!(r[0].cost_ms, 90_000);
    assert!(r[0].never_reported);
    assert_eq!(
        r[0].note,
        "never reported since its registration 1970-01-01T00:00:10.000Z (1 min 30 s counted in the window)"
    );
    assert_eq!(r[1].cost_ms, 60_000);
    assert_eq!(r[1].outages, 1);
    assert_eq!(c.devices[dev(&inv, "p1")].never_ms, 30_000);
    assert_eq!(
        r[1].note,
        "offline 30 s in the window (1 outage); no reading yet for 30 s of the window after \
         its registration 1970-01-01T00:00:10.000Z (first reading 1970-01-01T00:00:40.000Z)"
    );
    assert_eq!(
        (r[1].longest_from.as_deref(), r[1].longest_to.as_deref()),
        (
            Some("1970-01-01T00:01:10.000Z"),
            Some("1970-01-01T00:01:40.000Z")
        )
    );
    // device_build_rate: the same device, one unit of the count, ranked by its waiting time.
    let b = reasons(&inv, &c, "device_build_rate", Scope::Region, None);
    assert_eq!(b.len(), 1);
    assert_eq!((b[0].cost_ms, b[0].share), (90_000, Decimal::ONE));
    assert!(b[0]
        .note
        .starts_with("never reported since its registration"));
}

/// `n` park devices d00, d01, … registered before the window.
fn many(n: usize) -> String {
    let mut s = String::from("[[sites]]\nid = \"park\"\nname = \"Park\"\nkind = \"park\"\n");
    for i in 0..n {
        s.push_str(&format!(
            "[[devices]]\nid = \"d{i:02}\"\nsite = \"park\"\nkind = \"gas_combustible\"\nprotocol = \"mqtt\"\ninterval_s = 1\n"
        ));
    }
    s
}

/// Devices offline for `down[i]` ms at the end of a window of `w` ms.
fn offline_at_end(inv: &Inventory, down: &[i64], w: i64) -> Computation {
    let mut h = History::registered_at(inv, -1);
    for (i, d) in down.iter().enumerate() {
        h.devices[i].transitions = if *d > 0 {
            vec![(-1, true), (w - d, false)]
        } else {
            vec![(-1, true)]
        };
    }
    compute(inv, &h, 0, w, i64::MAX, Policy::default())
}

#[test]
fn ranked_by_cost_then_site_then_id_and_shares_add_up() {
    let inv = inv(&many(5));
    let c = offline_at_end(&inv, &[10_000, 50_000, 10_000, 0, 30_000], W);
    let r = reasons(&inv, &c, "online_rate", Scope::Region, None);
    let got: Vec<(&str, i64)> = r.iter().map(|x| (x.id.as_str(), x.cost_ms)).collect();
    assert_eq!(
        got,
        [
            ("d01", 50_000),
            ("d04", 30_000),
            ("d00", 10_000),
            ("d02", 10_000)
        ]
    );
    // The shortfall is the missing unit-time: exact.den − exact.num of the indicator.
    let ind = c
        .indicators(&inv, Scope::Region)
        .into_iter()
        .find(|i| i.id == "online_rate")
        .unwrap();
    let total: i64 = r.iter().map(|x| x.cost_ms).sum();
    assert_eq!(total as i128, ind.ratio.den - ind.ratio.num);
    let shares: Vec<String> = r.iter().map(|x| x.share.to_string()).collect();
    assert_eq!(shares, ["0.500000", "0.300000", "0.100000", "0.100000"]);
    assert_eq!(r.iter().map(|x| x.share).sum::<Decimal>(), Decimal::ONE);
}

#[test]
fn shares_are_apportioned_to_add_up_exactly() {
    let s = rank::apportion(&[1, 1, 1], 3, 2);
    assert_eq!(
        s.iter().map(|x| x.to_string()).collect::<Vec<_>>(),
        ["0.34", "0.33", "0.33"]
    );
    let s = rank::apportion(&[2, 1, 1, 1, 1, 1, 1], 8, 2);
    assert_eq!(s.iter().sum::<Decimal>(), Decimal::ONE);
    assert_eq!(s[0].to_string(), "0.25");
    assert_eq!(
        rank::apportion(&[0, 0], 0, 2),
        [Decimal::ZERO, Decimal::ZERO]
    );
}

fn target(indicator: &str) -> TargetConfig {
    toml::from_str(&format!(
        "indicator = \"{indicator}\"\ncomparator = \">=\"\nvalue = \"100\"\nlabel = \"联网在线率\"\nweight = \"10\""
    ))
    .unwrap()
}

/// Two long outages and 28 of under a minute in a day: the two are 97 % of the shortfall, so
/// the rest fold into one line; `Listing::All` keeps them.
#[test]
fn the_long_tail_folds_into_one_line() {
    let day = 86_400_000;
    let inv = inv(&many(30));
    let mut down = vec![3 * 3_600_000 + 12 * 60_000, 2 * 3_600_000];
    down.extend((0..28).map(|i| 10_000 + i * 1_000)); // 10 s … 37 s
    let c = offline_at_end(&inv, &down, day);
    let t = [target("online_rate")];
    let report = build(&inv, &c, &t);
    let row = &report.rows[0];
    assert_eq!(row.reasons.len(), 2);
    let f = row.folded.as_ref().unwrap();
    let tail: i64 = (0..28).map(|i| 10_000 + i * 1_000).sum();
    assert_eq!(
        (f.count, f.max_cost_ms, f.total_cost_ms),
        (28, 37_000, tail)
    );
    let sf = row.shortfall.as_ref().unwrap();
    assert_eq!((sf.unit, sf.reasons), ("unit_ms", 30));
    assert_eq!(sf.total, down.iter().sum::<i64>() as i128);
    assert_eq!(
        row.reasons.iter().map(|r| r.share).sum::<Decimal>() + f.share,
        Decimal::ONE
    );
    assert_eq!(
        rank::folded_text(f),
        "另有 28 项 and 28 more, each under 1 min (largest 37 s, 10 min 58 s in all)"
    );
    let md = to_markdown(&report);
    assert!(
        md.contains("- 3.40% · 另有 28 项 and 28 more, each under 1 min"),
        "{md}"
    );
    assert!(
        md.contains("- 59.45% · device park/d00: offline 3 h 12 min in the window (1 outage)"),
        "{md}"
    );
    assert!(
        md.contains("- 37.15% · device park/d01: offline 2 h in the window"),
        "{md}"
    );
    assert!(
        md.contains(
            "缺口 Shortfall: 5 h 22 min of unit-time counted but not online; 30 reason(s)."
        ),
        "{md}"
    );
    let csv = String::from_utf8(to_csv(&report).unwrap()).unwrap();
    assert!(csv.contains("3.40% · 另有 28 项 and 28 more"), "{csv}");

    let all = build_with(&inv, &c, &t, Listing::All);
    assert_eq!(all.rows[0].reasons.len(), 30);
    assert!(all.rows[0].folded.is_none());
    assert_eq!(all.rows[0].reasons[29].id, "d02", "the smallest last");
}

/// At most `FOLD_MAX` are listed even when they explain less than `FOLD_SHARE_PCT`; a lone
/// remaining reason is listed, not folded.
#[test]
fn folding_caps_the_list_and_never_folds_one() {
    let inv = inv(&many(12));
    let c = offline_at_end(&inv, &[10_000; 12], W);
    let t = [target("online_rate")];
    let row = &build(&inv, &c, &t).rows[0];
    assert_eq!(row.reasons.len(), FOLD_MAX);
    assert_eq!(row.folded.as_ref().unwrap().count, 2);
    assert_eq!(
        rank::folded_text(row.folded.as_ref().unwrap()),
        "另有 2 项 and 2 more, each under 1 min (largest 10 s, 20 s in all)"
    );

    let inv = inv_n(11);
    let c = offline_at_end(&inv, &[10_000; 11], W);
    let row = &build(&inv, &c, &t).rows[0];
    assert_eq!(row.reasons.len(), 11);
    assert!(row.folded.is_none());
}

fn inv_n(n: usize) -> Inventory {
    inv(&many(n))
}

#[test]
fn human_durations() {
    let cases = [
        (0, "0 s"),
        (350, "350 ms"),
        (25_000, "25 s"),
        (25_999, "25 s"),
        (65_000, "1 min 5 s"),
        (40 * 60_000, "40 min"),
        (3 * 3_600_000 + 12 * 60_000 + 59_000, "3 h 12 min"),
        (3_600_000, "1 h"),
        (2 * 86_400_000 + 3 * 3_600_000, "2 d 3 h"),
    ];
    for (ms, want) in cases {
        assert_eq!(human(ms), want, "{ms}");
    }
    assert_eq!(rank::bound_above(59_999), 60_000);
    assert_eq!(rank::bound_above(60_000), 600_000);
    assert_eq!(rank::bound_above(86_400_000), 2 * 86_400_000);
}

/// Findings a source declared are listed after the table in JSON, Markdown and CSV; a
/// removed site's are not.
#[test]
fn compliance_findings_are_listed_in_every_format() {
    use crate::core::inventory::Finding;
    let mut inv = inv(INV);
    let f = Finding {
        unit: "150621011038MN0001".into(),
        check: "methane_alarm_too_high",
        declared: Some(1.5),
        limit: "≤ 1 %CH4".into(),
        basis: "煤矿安全规程",
        text: "point 150621011038MN0001 (回风巷) declares 上限报警门限 1.5 %CH4".into(),
    };
    inv.findings
        .insert((0, "mine_files".into()), vec![f.clone()].into());
    let h = History::registered_at(&inv, 0);
    let c = compute(&inv, &h, 0, W, i64::MAX, Policy::default());
    let report = build(&inv, &c, &[target("online_rate")]);
    assert_eq!(report.findings.len(), 1);
    let row = &report.findings[0];
    assert_eq!(
        (row.site.as_str(), row.source.as_str(), row.unit.as_str()),
        ("park", "mine_files", "150621011038MN0001")
    );
    assert_eq!(
        (row.check, row.declared),
        ("methane_alarm_too_high", Some(1.5))
    );
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["findings"][0]["limit"], "≤ 1 %CH4");
    let md = to_markdown(&report);
    assert!(md.contains("## 合规发现"), "{md}");
    assert!(
        md.contains("| park | 150621011038MN0001 | methane_alarm_too_high | 1.5 | ≤ 1 %CH4 | 煤矿安全规程 |"),
        "{md}"
    );
    let bytes = to_csv(&report).unwrap();
    let rows: Vec<csv::StringRecord> = csv::Reader::from_reader(&bytes[3..])
        .records()
        .collect::<Result<_, _>>()
        .expect("a rectangular CSV: every row as wide as the header");
    assert!(rows
        .iter()
        .any(|r| &r[0] == "合规发现 compliance findings" && &r[1] == "站点"));
    let found = rows.iter().find(|r| &r[2] == "150621011038MN0001").unwrap();
    assert_eq!(
        (&found[1], &found[3], &found[4]),
        ("park", "methane_alarm_too_high", "1.5")
    );
    // A site that left the inventory takes its findings with it.
    inv.sites[0].removed = true;
    assert!(findings::rows(&inv).is_empty());
}

/// Reasons of several codes, for the shape tests (`api::schemas`) and this module's.
pub(crate) fn sample_reasons() -> Vec<Reason> {
    let inv = inv(INV);
    let mut h = History::registered_at(&inv, 10_000);
    h.devices[dev(&inv, "p1")].transitions = vec![(40_000, true), (70_000, false)];
    let c = compute(&inv, &h, 0, W, i64::MAX, Policy::default());
    let mut r = reasons(&inv, &c, "online_rate", Scope::Region, None);
    r.extend(reasons(&inv, &c, "device_build_rate", Scope::Region, None));
    r
}

/// Every reason carries a code of `NOTE_CODES` and only that code's parameters, so a
/// reader can word each in its own language; the English `note` stays for scripts.
#[test]
fn each_reason_has_a_known_code_and_its_parameters() {
    let r = sample_reasons();
    let codes: Vec<&str> = r.iter().map(|x| x.note_code).collect();
    assert_eq!(
        codes,
        [
            "device_never_reported",
            "device_down",
            "device_not_reported_status"
        ]
    );
    for x in &r {
        let (_, names) = NOTE_CODES.iter().find(|(c, _)| *c == x.note_code).unwrap();
        let params = x.note_params.as_object().unwrap();
        for k in params.keys() {
            assert!(names.contains(&k.as_str()), "{} has {k}", x.note_code);
        }
        assert!(!x.note.is_empty());
    }
    let down = &r[1].note_params;
    assert_eq!(down["offline_ms"], 30_000);
    assert_eq!(down["outages"], 1);
    assert_eq!(down["never_ms"], 30_000);
    assert_eq!(down["first_reading"], "1970-01-01T00:00:40.000Z");
    assert_eq!(r[0].note_params["counted_ms"], 90_000);
}
