//! What a parsed file means for the core: the events it becomes. Pure and synchronous: the
//! mine's state and the arrival time are arguments, so every rule here is unit-tested
//! without a transport (docs/mine-files.md, "Meaning").

use super::format::{
    Anomaly, AnomalyKind, FileType, ParsedFile, PointDef, PointValue, Record, RecordReason,
    RunState, StationState, ValueType,
};
use crate::core::alarms::{AlarmType, Recorded, RecordedAck};
use crate::core::config::alarms::AlarmRuleConfig;
use crate::core::event::RecordedAlarm;
use crate::core::inventory::{DeviceConfig, Finding};
use crate::core::{Origin, RawReading, ReadingStatus, Reason, Rejection, SiteDevices, SourceEvent};
use crate::model::{DeviceKind, Protocol, UnitStatus};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// The source name units joined from files are declared by.
pub const SOURCE: &str = "mine_files";

/// A configured mine site, as the files need it.
#[derive(Debug, Clone)]
pub struct MineSite {
    pub site: String,
    pub mine_code: String,
    pub tz_offset_s: i32,
    /// The site's safety-monitoring (KJ) system: its first system of kind `major_hazard`.
    pub kj_system: Option<String>,
    /// Its personnel-positioning system: its first system of kind `positioning`.
    pub positioning_system: Option<String>,
    /// A point, base station or people count not renewed by a real-time file this long
    /// after the last one's arrival is offline (`mine_files.upload_timeout_s`).
    pub offline_after_s: f64,
}

impl MineSite {
    /// The device that carries the mine's count of people underground (RYSS).
    pub fn people_device(&self) -> String {
        format!("{}-RYSS", self.mine_code)
    }
}

/// What the gateway knows of one mine between files.
#[derive(Debug, Default, Clone)]
pub struct MineState {
    /// Points of the last CDDY, by code.
    pub points: BTreeMap<String, Point>,
    /// Base stations seen in JZSS files.
    pub base_stations: BTreeMap<String, StationState>,
    /// Substations' last state (FZSS), by code.
    pub substations: BTreeMap<String, StationState>,
    /// Substations' locations (FZDY), by code.
    pub substation_places: BTreeMap<String, String>,
    /// The latest data time applied, per file type: an older file is late.
    pub latest: HashMap<FileType, i64>,
    /// People underground by the last RYSS.
    pub people_underground: Option<u32>,
    /// Points whose last CDSS status said 报警 or 断电: since when, at which level.
    pub alarm_bits: BTreeMap<String, (i64, u8)>,
    /// The last CDDY's thresholds the rules do not allow (see [`super::compliance`]),
    /// shared with the inventory's copy.
    pub findings: Arc<[Finding]>,
}

/// A point as the real-time files need it.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub kind: DeviceKind,
    pub channel: &'static str,
    /// Shared by the points of one substation.
    pub substation: Arc<str>,
    pub location: Box<str>,
    /// The mine's own thresholds as an alarm rule (see [`alarm_rule`]), shared by the
    /// points with the same thresholds: a mine's points hold a few rules, not one each.
    pub rule: Option<Arc<AlarmRuleConfig>>,
}

/// What applying a file does besides its events.
#[derive(Debug, Default, PartialEq)]
pub struct Applied {
    /// Its data time is older than a file of its type already applied: its readings are
    /// stored, liveness and last values are not rewound.
    pub late: bool,
    /// Records refused before the core saw them (the parser's and this module's).
    pub refused: usize,
}

/// The events of one parsed file, and what it changed in the mine's state.
pub fn apply(
    name: &str,
    file: &ParsedFile,
    site: &MineSite,
    state: &mut MineState,
    received_ms: i64,
) -> (Vec<SourceEvent>, Applied) {
    let ty = file.name.file_type;
    let data_ms = file.header.data_ms;
    let late = state.latest.get(&ty).is_some_and(|t| data_ms < *t);
    if !late {
        state.latest.insert(ty, data_ms);
    }
    let cx = Cx {
        file,
        site,
        received_ms,
        late,
        topic: format!("mine_files/{name}").into(),
    };
    let mut events = Vec::new();
    for r in &file.refused {
        events.push(cx.rejected(r.record, record_reason(r.reason), r.detail.clone()));
    }
    match ty {
        FileType::Cddy => cddy(&cx, state, &mut events),
        FileType::Fzdy => fzdy(&cx, state),
        FileType::Fzss => fzss(&cx, state),
        FileType::Cdss => cdss(&cx, state, &mut events),
        FileType::Jzss => jzss(&cx, state, &mut events),
        FileType::Ryss => ryss(&cx, state, &mut events),
        FileType::Ycbj => ycbj(&cx, state, &mut events),
        _ => {}
    }
    let refused = events
        .iter()
        .filter(|e| matches!(e, SourceEvent::Rejected(_)))
        .count();
    (events, Applied { late, refused })
}

/// The gateway's reason for a record the parser refused.
fn record_reason(r: RecordReason) -> Reason {
    match r {
        RecordReason::WrongFieldCount => Reason::WrongFieldCount,
        RecordReason::BadNumber => Reason::InvalidValue,
        RecordReason::BadTime => Reason::BadTimestamp,
        RecordReason::BadCode | RecordReason::EmptyCode => Reason::BadCode,
    }
}

/// What every record of one file shares.
struct Cx<'a> {
    file: &'a ParsedFile,
    site: &'a MineSite,
    received_ms: i64,
    late: bool,
    topic: Arc<str>,
}

impl Cx<'_> {
    fn origin(&self, record: u32) -> Origin {
        Origin {
            topic: self.topic.clone(),
            element: Some(record),
        }
    }

    fn rejected(&self, record: u32, reason: Reason, detail: String) -> SourceEvent {
        SourceEvent::Rejected(Rejection {
            reason,
            origin: self.origin(record),
            detail,
            received_ms: self.received_ms,
        })
    }

    fn reading(&self, record: u32, device: &str, reading: Reading) -> SourceEvent {
        let raw = RawReading {
            site: self.site.site.as_str().into(),
            device: device.into(),
            ts_ms: Some(reading.ts_ms),
            values: reading.values,
            status: reading.status,
            cause: reading.cause,
        };
        let origin = self.origin(record);
        let received_ms = self.received_ms;
        if self.late {
            SourceEvent::Stored {
                reading: raw,
                origin,
                received_ms,
            }
        } else {
            SourceEvent::Reading {
                reading: raw,
                origin,
                received_ms,
            }
        }
    }
}

struct Reading {
    ts_ms: i64,
    values: crate::core::event::Values,
    status: ReadingStatus,
    cause: Option<Arc<str>>,
}

/// The device kind's channel, so a mine's methane is stored as MQTT methane detectors' is.
fn channel(kind: DeviceKind) -> &'static str {
    crate::core::alarms::rules::default_channel(kind)
}

fn cddy(cx: &Cx<'_>, state: &mut MineState, events: &mut Vec<SourceEvent>) {
    if cx.late {
        return; // an older definition never replaces a newer one
    }
    let Some(system) = &cx.site.kj_system else {
        events.push(cx.rejected(
            1,
            Reason::MineNotConfigured,
            format!(
                "site {:?} has no system of kind major_hazard to hold its CDDY points; add one to the inventory",
                cx.site.site
            ),
        ));
        return;
    };
    let _ = system;
    let mut points = BTreeMap::new();
    let mut findings = Vec::new();
    let (mut stations, mut rules) = (Vec::new(), Vec::new());
    for (n, rec) in &cx.file.records {
        let Record::Point(p) = rec else { continue };
        if points.contains_key(&p.code) {
            events.push(cx.rejected(
                *n,
                Reason::BadCode,
                format!(
                    "point {:?} is defined twice; the first definition is kept",
                    p.code
                ),
            ));
            continue;
        }
        let kind = super::format::sensor_kind(&p.sensor_type, p.value_type);
        findings.extend(super::compliance::findings(p, kind));
        let point = Point {
            kind,
            channel: channel(kind),
            substation: interned(&mut stations, &p.substation),
            location: p.location.as_str().into(),
            rule: alarm_rule(p).map(|r| shared_rule(&mut rules, *r)),
        };
        points.insert(p.code.clone(), point);
    }
    state.points = points;
    state.findings = findings.into();
    events.push(devices_event(cx, state));
}

/// `s` as one of `seen`, added when new.
fn interned(seen: &mut Vec<Arc<str>>, s: &str) -> Arc<str> {
    if let Some(x) = seen.iter().find(|x| &***x == s) {
        return x.clone();
    }
    let x: Arc<str> = s.into();
    seen.push(x.clone());
    x
}

/// `rule` as one of `seen`, added when new.
fn shared_rule(
    seen: &mut Vec<Arc<AlarmRuleConfig>>,
    rule: AlarmRuleConfig,
) -> Arc<AlarmRuleConfig> {
    if let Some(x) = seen.iter().find(|x| ***x == rule) {
        return x.clone();
    }
    let x = Arc::new(rule);
    seen.push(x.clone());
    x
}

/// The mine's own thresholds from its CDDY as the point's alarm rule: 上限报警 level 1,
/// 上限断电 level 2, cleared below 上限解报. Points without an upper alarm threshold
/// (switches, lower-limit points) keep their kind's default rule, if it has one.
pub fn alarm_rule(p: &PointDef) -> Option<Box<AlarmRuleConfig>> {
    if p.value_type != ValueType::Analog {
        return None;
    }
    let alarm = p.alarm_high?;
    let mut levels = vec![alarm];
    if let Some(cut) = p.cut_high.filter(|c| *c > alarm) {
        levels.push(cut);
    }
    Some(Box::new(AlarmRuleConfig {
        channel: None,
        levels: Some(levels),
        clear_below: p.alarm_high_clear.filter(|c| *c <= alarm),
        ..AlarmRuleConfig::default()
    }))
}

/// Every unit this source declares for the site, as one replacement: the CDDY's points, the
/// base stations seen, and the people count once a positioning system exists.
fn devices_event(cx: &Cx<'_>, state: &MineState) -> SourceEvent {
    let site = cx.site;
    let unit = |id: &str, kind, system: &Option<String>, name: &str| DeviceConfig {
        id: id.to_string(),
        site: site.site.clone(),
        kind,
        name: Some(name.to_string()).filter(|n| !n.is_empty()),
        gas: None,
        enterprise: None,
        zone: None,
        system: system.clone(),
        protocol: Protocol::MineFiles,
        gb_id: None,
        interval_s: (site.offline_after_s / 3.0).max(1.0),
        status: UnitStatus::Built,
        offline_after_s: Some(site.offline_after_s),
        modbus: None,
        alarm: None,
    };
    let mut devices = Vec::new();
    for (code, p) in &state.points {
        let mut d = unit(code, p.kind, &site.kj_system, &p.location);
        d.alarm = p.rule.as_deref().cloned().map(Box::new);
        devices.push(d);
    }
    if site.positioning_system.is_some() {
        for code in state.base_stations.keys() {
            devices.push(unit(
                code,
                DeviceKind::Positioning,
                &site.positioning_system,
                "",
            ));
        }
        let people = site.people_device();
        devices.push(unit(
            &people,
            DeviceKind::Positioning,
            &site.positioning_system,
            "井下人数",
        ));
    }
    SourceEvent::Devices(Box::new(SiteDevices {
        source: SOURCE.into(),
        site: site.site.clone(),
        devices,
        findings: state.findings.clone(),
        at_ms: cx.received_ms,
    }))
}

fn fzdy(cx: &Cx<'_>, state: &mut MineState) {
    if cx.late {
        return;
    }
    state.substation_places = cx
        .file
        .records
        .iter()
        .filter_map(|(_, r)| match r {
            Record::Substation(s) => Some((s.code.clone(), s.location.clone())),
            _ => None,
        })
        .collect();
}

fn fzss(cx: &Cx<'_>, state: &mut MineState) {
    if cx.late {
        return;
    }
    for (_, r) in &cx.file.records {
        if let Record::SubstationState(s) = r {
            state.substations.insert(s.code.clone(), s.clone());
        }
    }
}

/// What a substation's last state says against its points, if anything: "substation
/// <code> 通信中断" or "… 故障" (the substation's code as the mine writes it).
fn substation_down(state: &MineState, code: &str) -> Option<String> {
    let s = state.substations.get(code)?;
    let what = match s.run {
        RunState::CommInterrupted => "通信中断",
        RunState::Fault => "故障",
        _ => return None,
    };
    Some(format!("substation {code} {what}"))
}

/// A point's status as the gateway's, with what made it: 分站故障 / 传感器故障, or its
/// substation's 通信中断 / 故障, make it faulty; 标校, 不巡检, 暂停 are maintenance; anything
/// else is normal. The cause is the substation's state, or the status bits' names.
pub fn point_status(
    v: &PointValue,
    substation_down: Option<String>,
) -> (ReadingStatus, Option<Arc<str>>) {
    let bits = |keep: fn(&&str) -> bool| -> Arc<str> {
        let names: Vec<&str> = v.status.names().into_iter().filter(keep).collect();
        names.join("+").into()
    };
    if let Some(why) = substation_down {
        (ReadingStatus::Fault, Some(why.into()))
    } else if v.status.is_fault() {
        let cause = bits(|n| matches!(*n, "分站故障" | "传感器故障"));
        (ReadingStatus::Fault, Some(cause))
    } else if v.status.is_maintenance() {
        let cause = bits(|n| matches!(*n, "标校" | "不巡检" | "暂停"));
        (ReadingStatus::Maintenance, Some(cause))
    } else {
        (ReadingStatus::Normal, None)
    }
}

fn cdss(cx: &Cx<'_>, state: &mut MineState, events: &mut Vec<SourceEvent>) {
    for (n, rec) in &cx.file.records {
        let Record::Value(v) = rec else { continue };
        let Some(p) = state.points.get(&v.code) else {
            events.push(cx.rejected(
                *n,
                Reason::UnknownDevice,
                format!(
                    "point {:?} is not in the mine's last CDDY (upload the CDDY that defines it)",
                    v.code
                ),
            ));
            continue;
        };
        let (status, cause) = point_status(v, substation_down(state, &p.substation));
        let values = match v.value {
            Some(x) => vec![(crate::core::event::Channel::from(p.channel), x)],
            None => Vec::new(),
        };
        if values.is_empty() && status == ReadingStatus::Normal {
            events.push(cx.rejected(
                *n,
                Reason::InvalidValue,
                format!(
                    "point {:?} has no valid value (-9999) but a normal status",
                    v.code
                ),
            ));
            continue;
        }
        let reading = Reading {
            ts_ms: v.data_ms,
            values,
            status,
            cause,
        };
        events.push(cx.reading(*n, &v.code, reading));
        if !cx.late {
            alarm_bits(cx, state, *n, v, events);
        }
    }
}

/// The mine's own 报警 / 断电 bits are authoritative: a point whose status sets one has a
/// value alarm (level 1, or 2 for 断电) from that record's time, whatever the thresholds say,
/// until a record without them clears it. The gateway's own alarm from the same readings is
/// the same alarm (see `AlarmBook::record`), so an excursion both see is raised once.
fn alarm_bits(
    cx: &Cx<'_>,
    state: &mut MineState,
    n: u32,
    v: &PointValue,
    events: &mut Vec<SourceEvent>,
) {
    let level = if v.status.is_cut() {
        2
    } else {
        u8::from(v.status.is_alarm())
    };
    let (raised_ms, level, cleared_ms) = match (state.alarm_bits.get(&v.code).copied(), level) {
        (None, 0) | (Some(_), 1..) => return,
        (None, l) => {
            state.alarm_bits.insert(v.code.clone(), (v.data_ms, l));
            (v.data_ms, l, None)
        }
        (Some((since, l)), 0) => {
            state.alarm_bits.remove(&v.code);
            (since, l, Some(v.data_ms))
        }
    };
    let alarm = Recorded {
        kind: AlarmType::Value,
        level,
        priority: None,
        raised_ms,
        cleared_ms,
        ack: None,
        value: v.value,
        match_ms: (cx.site.offline_after_s * 1000.0) as i64,
    };
    events.push(SourceEvent::RecordedAlarm(Box::new(RecordedAlarm {
        site: cx.site.site.clone(),
        device: v.code.clone(),
        alarm,
        origin: cx.origin(n),
        received_ms: cx.received_ms,
    })));
}

/// A base station's state as the gateway's status, with its cause.
fn station_status(s: &StationState) -> (ReadingStatus, Option<Arc<str>>) {
    match s.run {
        RunState::Normal => (ReadingStatus::Normal, None),
        RunState::CommInterrupted => (ReadingStatus::Fault, Some("基站通信中断".into())),
        RunState::Fault => (ReadingStatus::Fault, Some("基站故障".into())),
        RunState::Unknown => (ReadingStatus::Maintenance, Some("基站状态未知".into())),
    }
}

fn jzss(cx: &Cx<'_>, state: &mut MineState, events: &mut Vec<SourceEvent>) {
    if cx.site.positioning_system.is_none() {
        events.push(cx.rejected(
            1,
            Reason::MineNotConfigured,
            format!(
                "site {:?} has no system of kind positioning for its base stations; add one to the inventory",
                cx.site.site
            ),
        ));
        return;
    }
    let mut joined = false;
    for (_, rec) in &cx.file.records {
        if let Record::BaseStation(s) = rec {
            joined |= state
                .base_stations
                .insert(s.code.clone(), s.clone())
                .is_none();
        }
    }
    if joined && !cx.late {
        events.push(devices_event(cx, state));
    }
    for (n, rec) in &cx.file.records {
        if let Record::BaseStation(s) = rec {
            let (status, cause) = station_status(s);
            let reading = Reading {
                ts_ms: s.data_ms,
                values: vec![("up".into(), f64::from(u8::from(s.run == RunState::Normal)))],
                status,
                cause,
            };
            events.push(cx.reading(*n, &s.code, reading));
        }
    }
}

fn ryss(cx: &Cx<'_>, state: &mut MineState, events: &mut Vec<SourceEvent>) {
    if cx.site.positioning_system.is_none() {
        events.push(cx.rejected(
            1,
            Reason::MineNotConfigured,
            format!(
                "site {:?} has no system of kind positioning for its people count; add one to the inventory",
                cx.site.site
            ),
        ));
        return;
    }
    let down = cx
        .file
        .records
        .iter()
        .filter(|(_, r)| matches!(r, Record::Person(p) if p.underground))
        .count() as u32;
    if !cx.late {
        if state.people_underground.is_none() {
            events.push(devices_event(cx, state));
        }
        state.people_underground = Some(down);
    }
    let reading = Reading {
        ts_ms: cx.file.header.data_ms,
        values: vec![("people".into(), f64::from(down))],
        status: ReadingStatus::Normal,
        cause: None,
    };
    events.push(cx.reading(1, &cx.site.people_device(), reading));
}

/// The alarm an anomaly type is, as (type, level); `None` for calibration (标校), which is
/// maintenance, not an alarm.
pub fn anomaly_alarm(k: AnomalyKind) -> Option<(AlarmType, u8)> {
    Some(match k {
        AnomalyKind::OverLimit | AnomalyKind::OverUpperWarning | AnomalyKind::UnderLowerWarning => {
            (AlarmType::Value, 1)
        }
        AnomalyKind::CutOff => (AlarmType::Value, 2),
        AnomalyKind::FeedAbnormal
        | AnomalyKind::SensorDisconnected
        | AnomalyKind::StationPowerOff
        | AnomalyKind::StationUnreachable
        | AnomalyKind::OverRange => (AlarmType::Fault, 1),
        AnomalyKind::Calibrating => return None,
    })
}

/// A recorded 处理措施 with its 录入时间 is the mine's response; 录入人 is who gave it.
fn response(a: &Anomaly) -> Option<RecordedAck> {
    let note = a.measure.trim();
    let at_ms = a.entered_ms?;
    (!note.is_empty()).then(|| RecordedAck {
        by: match a.entered_by.trim() {
            "" => "mine".to_string(),
            by => by.to_string(),
        },
        note: note.to_string(),
        at_ms,
    })
}

/// The mine's anomaly log: each record raises (at 开始时间), clears (at 结束时间) and
/// acknowledges (at 录入时间) the point's alarm. Late files apply too: records carry their
/// own times.
fn ycbj(cx: &Cx<'_>, state: &MineState, events: &mut Vec<SourceEvent>) {
    for (n, rec) in &cx.file.records {
        let Record::Anomaly(a) = rec else { continue };
        let known = state.points.contains_key(&a.code) || state.base_stations.contains_key(&a.code);
        if !known {
            events.push(cx.rejected(
                *n,
                Reason::UnknownDevice,
                format!(
                    "point {:?} of the anomaly is not in the mine's last CDDY",
                    a.code
                ),
            ));
            continue;
        }
        let Some((kind, level)) = anomaly_alarm(a.kind) else {
            continue;
        };
        let alarm = Recorded {
            kind,
            level,
            priority: None,
            raised_ms: a.start_ms,
            cleared_ms: a.end_ms,
            ack: response(a),
            value: a.max,
            match_ms: (cx.site.offline_after_s * 1000.0) as i64,
        };
        events.push(SourceEvent::RecordedAlarm(Box::new(RecordedAlarm {
            site: cx.site.site.clone(),
            device: a.code.clone(),
            alarm,
            origin: cx.origin(*n),
            received_ms: cx.received_ms,
        })));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::config::alarms::AlarmRuleConfig;

    const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/mine/");
    const MINE: &str = "150621011038";
    /// 2026-03-01 08:00:00 +08:00.
    const T8: i64 = 1_772_323_200_000;

    fn site() -> MineSite {
        MineSite {
            site: "m1".into(),
            mine_code: MINE.into(),
            tz_offset_s: 8 * 3600,
            kj_system: Some("kj".into()),
            positioning_system: Some("rydw".into()),
            offline_after_s: 300.0,
        }
    }

    fn file(stem: &str) -> (String, ParsedFile) {
        let name = format!("{MINE}_{stem}.txt");
        let bytes = std::fs::read(format!("{DIR}{name}")).expect("sample file");
        let parsed = super::super::format::parse_file(&name, &bytes, 8 * 3600).expect("parses");
        (name, parsed)
    }

    fn run(stem: &str, st: &mut MineState, at: i64) -> (Vec<SourceEvent>, Applied) {
        let (name, f) = file(stem);
        apply(&name, &f, &site(), st, at)
    }

    /// (device, values, status) of each reading.
    type Seen = (String, crate::core::event::Values, ReadingStatus);

    fn readings(evs: &[SourceEvent]) -> Vec<Seen> {
        evs.iter()
            .filter_map(|e| match e {
                SourceEvent::Reading { reading: r, .. }
                | SourceEvent::Stored { reading: r, .. } => {
                    Some((r.device.to_string(), r.values.clone(), r.status))
                }
                _ => None,
            })
            .collect()
    }

    fn refusals(evs: &[SourceEvent]) -> Vec<(Reason, Option<u32>)> {
        evs.iter()
            .filter_map(|e| match e {
                SourceEvent::Rejected(r) => Some((r.reason, r.origin.element)),
                _ => None,
            })
            .collect()
    }

    fn defined() -> MineState {
        let mut st = MineState::default();
        run("CDDY_20260301080000", &mut st, T8 + 1_000);
        st
    }

    /// Points of one substation share its code, and points with equal thresholds their rule:
    /// a mine's 300 points hold a few of each, not 300 copies.
    #[test]
    fn points_share_their_substation_and_equal_rules() {
        let st = defined();
        let p = |c: &str| &st.points[&format!("{MINE}{c}")];
        assert!(Arc::ptr_eq(
            &p("MN0001").substation,
            &p("MN0002").substation
        ));
        assert!(!Arc::ptr_eq(
            &p("MN0001").substation,
            &p("MN0003").substation
        ));
        let mut seen = Vec::new();
        let a = shared_rule(
            &mut seen,
            AlarmRuleConfig {
                levels: Some(vec![0.8]),
                ..Default::default()
            },
        );
        let b = shared_rule(
            &mut seen,
            AlarmRuleConfig {
                levels: Some(vec![0.8]),
                ..Default::default()
            },
        );
        let c = shared_rule(
            &mut seen,
            AlarmRuleConfig {
                levels: Some(vec![1.0]),
                ..Default::default()
            },
        );
        assert!(Arc::ptr_eq(&a, &b) && !Arc::ptr_eq(&a, &c));
        assert_eq!(seen.len(), 2);
    }

    /// The CDDY's loose thresholds travel with its points, as findings for the report.
    #[test]
    fn a_cddy_s_findings_travel_with_its_points() {
        let mut st = MineState::default();
        let (evs, _) = run("CDDY_20260301120000", &mut st, T8 + 1_000);
        let [SourceEvent::Devices(d)] = evs.as_slice() else {
            panic!("one devices event: {evs:?}")
        };
        let checks: Vec<&str> = d.findings.iter().map(|f| f.check).collect();
        assert_eq!(
            checks,
            [
                "methane_alarm_too_high",
                "methane_cut_too_high",
                "methane_restore_too_high",
                "methane_cut_missing",
                "co_alarm_too_high"
            ]
        );
        assert_eq!(st.findings, d.findings);
        // A later real-time file that declares units again carries them still.
        let (evs, _) = run("JZSS_20260301080500", &mut st, T8 + 2_000);
        let again = evs.iter().find_map(|e| match e {
            SourceEvent::Devices(d) => Some(d.findings.len()),
            _ => None,
        });
        assert_eq!(again, Some(5), "the base stations joined with the points");
    }

    #[test]
    fn a_cddy_declares_its_points_with_the_mine_s_own_thresholds() {
        let mut st = MineState::default();
        let (evs, applied) = run("CDDY_20260301080000", &mut st, T8 + 1_000);
        assert_eq!(applied, Applied::default());
        let [SourceEvent::Devices(d)] = evs.as_slice() else {
            panic!("one devices event: {evs:?}")
        };
        assert_eq!(
            (d.site.as_str(), d.at_ms, &*d.source),
            ("m1", T8 + 1_000, SOURCE)
        );
        let kinds: Vec<(&str, DeviceKind, Option<&str>)> = d
            .devices
            .iter()
            .map(|x| (x.id.as_str(), x.kind, x.system.as_deref()))
            .collect();
        let m = |s: &'static str| -> &'static str { s };
        assert!(kinds.contains(&(m("150621011038MN0001"), DeviceKind::Methane, Some("kj"))));
        assert!(kinds.contains(&(m("150621011038MN0003"), DeviceKind::WindSpeed, Some("kj"))));
        assert!(kinds.contains(&(
            m("150621011038MN0004"),
            DeviceKind::CarbonMonoxide,
            Some("kj")
        )));
        assert!(kinds.contains(&(m("150621011038KG0001"), DeviceKind::Switch, Some("kj"))));
        // The people count of the positioning system joins with the points.
        assert!(kinds.contains(&(
            m("150621011038-RYSS"),
            DeviceKind::Positioning,
            Some("rydw")
        )));
        let rule = |id: &str| {
            d.devices
                .iter()
                .find(|x| x.id == id)
                .and_then(|x| x.alarm.as_deref().cloned())
        };
        // 上限报警 0.80, 上限断电 1.20, 上限解报 0.75.
        assert_eq!(
            rule("150621011038MN0002"),
            Some(AlarmRuleConfig {
                levels: Some(vec![0.8, 1.2]),
                clear_below: Some(0.75),
                ..AlarmRuleConfig::default()
            })
        );
        // 断电 at the alarm threshold adds no second level; a switch keeps its kind's rule.
        assert_eq!(
            rule("150621011038MN0001").and_then(|r| r.levels),
            Some(vec![0.8])
        );
        assert_eq!(rule("150621011038KG0001"), None);
        let dev = &d.devices[0];
        assert_eq!(
            (dev.protocol, dev.offline_after_s),
            (Protocol::MineFiles, Some(300.0))
        );
    }

    #[test]
    fn cdss_values_become_readings_with_the_gateway_s_statuses() {
        let mut st = defined();
        let (evs, applied) = run("CDSS_20260301080500", &mut st, T8 + 301_000);
        assert!(!applied.late);
        let r = readings(&evs);
        let get = |id: &str| r.iter().find(|x| x.0 == id).cloned().expect(id);
        assert_eq!(
            get("150621011038MN0001"),
            (
                "150621011038MN0001".into(),
                vec![("ch4".into(), 0.32)],
                ReadingStatus::Normal
            )
        );
        // 报警 + 断电 (3) are alarms, not faults: the value speaks for itself.
        assert_eq!(get("150621011038MN0002").2, ReadingStatus::Normal);
        assert_eq!(get("150621011038MN0003").1, vec![("m_s".into(), 2.4)]);
        // -9999 with 传感器故障 (128): a fault with no value.
        assert_eq!(get("150621011038MN0004").1, vec![]);
        assert_eq!(get("150621011038MN0004").2, ReadingStatus::Fault);
        // 分站故障 in the binary spelling 00010000.
        assert_eq!(get("150621011038KG0002").2, ReadingStatus::Fault);
        let SourceEvent::Reading {
            reading,
            origin,
            received_ms,
        } = &evs[0]
        else {
            panic!("a reading first")
        };
        // Device time is the record's 数据时间; liveness runs on the arrival.
        assert_eq!(
            (reading.ts_ms, *received_ms),
            (Some(T8 + 300_000), T8 + 301_000)
        );
        assert_eq!(
            origin.to_string(),
            format!("mine_files/{MINE}_CDSS_20260301080500.txt [element 2]")
        );
    }

    #[test]
    fn a_substation_s_comm_interruption_makes_its_points_faulty() {
        let mut st = defined();
        // F002 reports 通信中断 at 08:05.
        run("FZSS_20260301080500", &mut st, T8 + 300_500);
        let (evs, _) = run("CDSS_20260301080500", &mut st, T8 + 301_000);
        let r = readings(&evs);
        let status = |id: &str| r.iter().find(|x| x.0 == id).expect(id).2;
        assert_eq!(
            status("150621011038MN0003"),
            ReadingStatus::Fault,
            "on F002, status 0"
        );
        assert_eq!(
            status("150621011038MN0001"),
            ReadingStatus::Normal,
            "on F001"
        );
    }

    #[test]
    fn bad_records_are_refused_alone_with_their_record_numbers() {
        let mut st = defined();
        let (evs, applied) = run("CDSS_20260301081500", &mut st, T8 + 901_000);
        let refused = refusals(&evs);
        assert_eq!(applied.refused, refused.len());
        assert!(
            refused.contains(&(Reason::WrongFieldCount, Some(3))),
            "{refused:?}"
        );
        assert!(
            refused.contains(&(Reason::InvalidValue, Some(4))),
            "2,4: {refused:?}"
        );
        assert!(
            refused.contains(&(Reason::BadTimestamp, Some(5))),
            "8:15: {refused:?}"
        );
        let ok: Vec<String> = readings(&evs).into_iter().map(|r| r.0).collect();
        assert!(
            ok.contains(&"150621011038MN0001".to_string()),
            "the good ones arrive: {ok:?}"
        );
    }

    #[test]
    fn a_point_no_cddy_defined_is_refused_by_name() {
        let mut st = MineState::default();
        let (evs, _) = run("CDSS_20260301080500", &mut st, T8 + 301_000);
        assert!(readings(&evs).is_empty());
        assert_eq!(refusals(&evs)[0], (Reason::UnknownDevice, Some(2)));
    }

    #[test]
    fn a_late_file_is_stored_without_moving_the_mine_s_state() {
        let mut st = defined();
        run("CDSS_20260301081500", &mut st, T8 + 901_000);
        let (evs, applied) = run("CDSS_20260301080500", &mut st, T8 + 902_000);
        assert!(applied.late);
        assert!(evs.iter().any(|e| matches!(e, SourceEvent::Stored { .. })));
        assert!(!evs.iter().any(|e| matches!(e, SourceEvent::Reading { .. })));
        assert_eq!(st.latest[&FileType::Cdss], T8 + 900_000);
    }

    #[test]
    fn a_mine_without_a_kj_system_is_told_what_to_add() {
        let (name, f) = file("CDDY_20260301080000");
        let s = MineSite {
            kj_system: None,
            ..site()
        };
        let (evs, _) = apply(&name, &f, &s, &mut MineState::default(), T8);
        assert_eq!(refusals(&evs), vec![(Reason::MineNotConfigured, Some(1))]);
    }

    #[test]
    fn anomaly_records_raise_clear_and_answer_the_point_s_alarm() {
        let mut st = defined();
        let (evs, _) = run("YCBJ_20260301090000", &mut st, T8 + 3_601_000);
        let alarms: Vec<&RecordedAlarm> = evs
            .iter()
            .filter_map(|e| match e {
                SourceEvent::RecordedAlarm(a) => Some(&**a),
                _ => None,
            })
            .collect();
        assert_eq!(alarms.len(), 2);
        let ch4 = &alarms[0].alarm;
        assert_eq!(alarms[0].device, "150621011038MN0002");
        assert_eq!((ch4.kind, ch4.level), (AlarmType::Value, 1));
        assert_eq!(ch4.raised_ms, T8 + 270_000, "08:04:30");
        assert_eq!(ch4.cleared_ms, Some(T8 + 730_000), "08:12:10");
        let ack = ch4.ack.as_ref().expect("处理措施 recorded");
        assert_eq!((ack.by.as_str(), ack.at_ms), ("王工", T8 + 1_800_000));
        assert!(ack.note.starts_with("加强通风"));
        assert_eq!(ch4.value, Some(1.25));
        // 004 传感器断线, ongoing, nothing recorded: a fault alarm left unanswered.
        let co = &alarms[1].alarm;
        assert_eq!(
            (co.kind, co.cleared_ms, co.ack.is_none()),
            (AlarmType::Fault, None, true)
        );
    }

    #[test]
    fn the_mine_s_alarm_bits_raise_and_clear_the_point_s_alarm() {
        let mut st = defined();
        let (name, mut f) = file("CDSS_20260301080500");
        let (evs, _) = apply(&name, &f, &site(), &mut st, T8 + 301_000);
        let recorded = |evs: &[SourceEvent]| -> Vec<(String, u8, i64, Option<i64>)> {
            evs.iter()
                .filter_map(|e| match e {
                    SourceEvent::RecordedAlarm(a) => Some((
                        a.device.clone(),
                        a.alarm.level,
                        a.alarm.raised_ms,
                        a.alarm.cleared_ms,
                    )),
                    _ => None,
                })
                .collect()
        };
        // MN0002's status 3 (报警 + 断电): a level-2 alarm from the record's time.
        let mn2 = "150621011038MN0002".to_string();
        assert_eq!(recorded(&evs), vec![(mn2.clone(), 2, T8 + 300_000, None)]);
        // The same bits again say nothing new; bits gone clear it at that record's time.
        let (evs, _) = apply(&name, &f, &site(), &mut st, T8 + 302_000);
        assert!(recorded(&evs).is_empty());
        for (_, r) in &mut f.records {
            if let Record::Value(v) = r {
                v.status = super::super::format::PointStatus(0);
                v.data_ms = T8 + 360_000;
            }
        }
        f.header.data_ms = T8 + 360_000;
        let (evs, _) = apply(&name, &f, &site(), &mut st, T8 + 361_000);
        assert_eq!(
            recorded(&evs),
            vec![(mn2, 2, T8 + 300_000, Some(T8 + 360_000))]
        );
    }

    #[test]
    fn calibration_is_maintenance_not_an_alarm() {
        assert_eq!(anomaly_alarm(AnomalyKind::Calibrating), None);
        assert_eq!(
            anomaly_alarm(AnomalyKind::CutOff),
            Some((AlarmType::Value, 2))
        );
    }

    #[test]
    fn base_stations_join_and_people_underground_are_counted() {
        let mut st = defined();
        let (evs, _) = run("JZSS_20260301080500", &mut st, T8 + 301_000);
        let SourceEvent::Devices(d) = &evs[0] else {
            panic!("the base stations join first: {evs:?}")
        };
        assert!(d.devices.iter().any(|x| x.id == "150621011038J002"));
        let r = readings(&evs);
        assert!(r.contains(&(
            "150621011038J002".into(),
            vec![("up".into(), 0.0)],
            ReadingStatus::Fault
        )));
        let (evs, _) = run("RYSS_20260301080500", &mut st, T8 + 302_000);
        // 张三 went down (flag 1), 李四 came up (flag 2).
        assert_eq!(
            readings(&evs),
            vec![(
                "150621011038-RYSS".into(),
                vec![("people".into(), 1.0)],
                ReadingStatus::Normal
            )]
        );
        assert_eq!(st.people_underground, Some(1));
    }
}
