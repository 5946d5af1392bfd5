//! Compliance findings: a mine's CDDY thresholds checked against 煤矿安全规程. Pure: a
//! point definition in, findings out. A finding changes no alarm and no indicator (the
//! mine's own thresholds still drive its points' alarms); it is listed in the report so an
//! auditor sees a setting the rules do not allow (docs/mine-files.md, "Compliance findings").

use super::format::{PointDef, ValueType};
use crate::core::inventory::Finding;
use crate::model::DeviceKind;

/// Where the methane limits are written: the table of methane sensors' 报警 / 断电 / 复电
/// concentrations by place.
pub const METHANE_BASIS: &str = "煤矿安全规程 第四百九十八条 (甲烷传感器报警、断电、复电浓度表)";
/// Where the CO limit is written: the table of the highest allowed harmful-gas
/// concentrations underground (CO 0.0024 %).
pub const CO_BASIS: &str = "煤矿安全规程 第一百三十五条 (井下有害气体最高允许浓度, CO 0.0024%)";

/// Methane limits for a place, in %CH4: alarm at most, cut at most, restore below.
struct MethaneLimits {
    alarm: f64,
    cut: f64,
    restore_below: f64,
}

/// The working places' limits (采煤、掘进工作面 and their return airways): the loosest the
/// table allows there. A 专用排瓦斯巷 is allowed 2.5 %.
fn methane_limits(location: &str) -> MethaneLimits {
    if location.contains("专用排瓦斯巷") {
        return MethaneLimits {
            alarm: 2.5,
            cut: 2.5,
            restore_below: 2.5,
        };
    }
    MethaneLimits {
        alarm: 1.0,
        cut: 1.5,
        restore_below: 1.0,
    }
}

/// The allowed CO concentration, ppm (0.0024 %).
const CO_LIMIT_PPM: f64 = 24.0;

/// A declared value in percent: `%`, `%CH4` and the full-width `％` are percent, `ppm` is
/// converted; `None` for a unit the rules' table is not in (no finding is made then).
fn as_percent(v: f64, unit: &str) -> Option<f64> {
    let u = unit.trim().to_ascii_lowercase();
    if u.is_empty() || u.starts_with('%') || u.starts_with('％') {
        Some(v)
    } else if u == "ppm" {
        Some(v / 10_000.0)
    } else {
        None
    }
}

/// A declared value in ppm (`ppm`, or percent converted).
fn as_ppm(v: f64, unit: &str) -> Option<f64> {
    let u = unit.trim().to_ascii_lowercase();
    if u.is_empty() || u == "ppm" {
        Some(v)
    } else {
        as_percent(v, unit).map(|p| p * 10_000.0)
    }
}

/// What is wrong with one point's thresholds, for a point of `kind`.
pub fn findings(p: &PointDef, kind: DeviceKind) -> Vec<Finding> {
    if p.value_type != ValueType::Analog {
        return vec![];
    }
    match kind {
        DeviceKind::Methane => methane(p),
        DeviceKind::CarbonMonoxide => carbon_monoxide(p),
        _ => vec![],
    }
}

fn finding(p: &PointDef, check: &'static str, declared: Option<f64>, limit: String) -> Finding {
    let (what, basis) = match check {
        "methane_alarm_missing" | "methane_alarm_too_high" => ("上限报警门限", METHANE_BASIS),
        "methane_cut_missing" | "methane_cut_too_high" => ("上限断电门限", METHANE_BASIS),
        "methane_restore_too_high" => ("上限复电门限", METHANE_BASIS),
        _ => ("上限报警门限", CO_BASIS),
    };
    let value = match declared {
        Some(v) => format!("{v} {}", p.unit),
        None => "empty".to_string(),
    };
    let text = format!(
        "point {} ({}) declares {what} {value}; the rules allow {limit}",
        p.code,
        if p.location.is_empty() {
            "no location"
        } else {
            &p.location
        }
    );
    Finding {
        unit: p.code.clone(),
        check,
        declared,
        limit,
        basis,
        text,
    }
}

fn methane(p: &PointDef) -> Vec<Finding> {
    let pct = |v: f64| as_percent(v, &p.unit);
    let lim = methane_limits(&p.location);
    let mut out = Vec::new();
    let over = |v: Option<f64>, max: f64| v.and_then(pct).is_some_and(|x| x > max + 1e-9);
    match p.alarm_high {
        None => out.push(finding(
            p,
            "methane_alarm_missing",
            None,
            format!("≤ {} %CH4", lim.alarm),
        )),
        v if over(v, lim.alarm) => out.push(finding(
            p,
            "methane_alarm_too_high",
            v,
            format!("≤ {} %CH4", lim.alarm),
        )),
        _ => {}
    }
    match p.cut_high {
        None => out.push(finding(
            p,
            "methane_cut_missing",
            None,
            format!("≤ {} %CH4", lim.cut),
        )),
        v if over(v, lim.cut) => out.push(finding(
            p,
            "methane_cut_too_high",
            v,
            format!("≤ {} %CH4", lim.cut),
        )),
        _ => {}
    }
    let restore_high = p
        .restore_high
        .and_then(pct)
        .is_some_and(|x| x >= lim.restore_below - 1e-9);
    if restore_high {
        out.push(finding(
            p,
            "methane_restore_too_high",
            p.restore_high,
            format!("< {} %CH4", lim.restore_below),
        ));
    }
    out
}

fn carbon_monoxide(p: &PointDef) -> Vec<Finding> {
    let limit = format!("≤ {CO_LIMIT_PPM} ppm");
    match p.alarm_high {
        None => vec![finding(p, "co_alarm_missing", None, limit)],
        Some(v) if as_ppm(v, &p.unit).is_some_and(|x| x > CO_LIMIT_PPM + 1e-9) => {
            vec![finding(p, "co_alarm_too_high", Some(v), limit)]
        }
        _ => vec![],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::mine_files::format::{parse_file, Record};

    const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/mine/");

    /// (point, check, declared) of every finding of a sample CDDY.
    fn of(stem: &str) -> Vec<(String, &'static str, Option<f64>)> {
        let name = format!("150621011038_CDDY_{stem}.txt");
        let bytes = std::fs::read(format!("{DIR}{name}")).unwrap();
        let f = parse_file(&name, &bytes, 8 * 3600).unwrap();
        f.records
            .iter()
            .filter_map(|(_, r)| match r {
                Record::Point(p) => Some(p),
                _ => None,
            })
            .flat_map(|p| {
                let kind =
                    crate::sources::mine_files::format::sensor_kind(&p.sensor_type, p.value_type);
                findings(p, kind)
            })
            .map(|f| (f.unit, f.check, f.declared))
            .collect()
    }

    #[test]
    fn loose_thresholds_are_found_point_by_point() {
        let p = |n: &str| format!("150621011038MN000{n}");
        assert_eq!(
            of("20260301120000"),
            vec![
                (p("1"), "methane_alarm_too_high", Some(1.5)),
                (p("1"), "methane_cut_too_high", Some(2.0)),
                (p("1"), "methane_restore_too_high", Some(1.2)),
                (p("2"), "methane_cut_missing", None),
                // MN0005: a 专用排瓦斯巷 is allowed 2.5 / 2.5 / below 2.5.
                (p("4"), "co_alarm_too_high", Some(50.0)),
                // MN0006: 0.0024 % is 24 ppm, the limit itself; the wind speed is not checked.
            ]
        );
    }

    #[test]
    fn the_first_sample_s_only_finding_is_a_restore_at_the_limit() {
        // MN0002 restores at 1.00 %: the rules want below 1.0 %.
        assert_eq!(
            of("20260301080000"),
            vec![(
                "150621011038MN0002".to_string(),
                "methane_restore_too_high",
                Some(1.0)
            )]
        );
    }

    #[test]
    fn a_finding_names_the_point_its_place_the_value_and_the_rule() {
        let name = "150621011038_CDDY_20260301120000.txt";
        let bytes = std::fs::read(format!("{DIR}{name}")).unwrap();
        let f = parse_file(name, &bytes, 8 * 3600).unwrap();
        let Some((_, Record::Point(p))) = f.records.first() else {
            panic!("a point first")
        };
        let found = findings(p, DeviceKind::Methane);
        assert_eq!(
            found[0].text,
            "point 150621011038MN0001 (一采区回风巷甲烷T2) declares 上限报警门限 1.5 %CH4; the rules allow ≤ 1 %CH4"
        );
        assert_eq!(found[0].basis, METHANE_BASIS);
        assert_eq!(found[0].limit, "≤ 1 %CH4");
    }

    #[test]
    fn units_convert_and_unknown_units_are_not_judged() {
        assert_eq!(as_percent(0.8, "%CH4"), Some(0.8));
        assert_eq!(as_percent(0.8, "％"), Some(0.8));
        assert_eq!(as_percent(10_000.0, "ppm"), Some(1.0));
        assert_eq!(as_percent(3.0, "mg/m3"), None);
        assert!(as_ppm(0.0024, "%").is_some_and(|x| (x - 24.0).abs() < 1e-9));
        assert_eq!(as_ppm(30.0, "PPM"), Some(30.0));
    }

    #[test]
    fn switches_and_other_kinds_have_no_findings() {
        let name = "150621011038_CDDY_20260301080000.txt";
        let bytes = std::fs::read(format!("{DIR}{name}")).unwrap();
        let f = parse_file(name, &bytes, 8 * 3600).unwrap();
        for (_, r) in &f.records {
            let Record::Point(p) = r else { continue };
            if p.value_type != ValueType::Analog {
                assert!(findings(p, DeviceKind::Methane).is_empty(), "{}", p.code);
            }
        }
        let Some((_, Record::Point(wind))) = f.records.get(2) else {
            panic!("wind speed third")
        };
        assert!(findings(wind, DeviceKind::WindSpeed).is_empty());
    }
}
