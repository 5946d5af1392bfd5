//! mine-sim: a coal mine's KJ safety-monitoring system as the uploader of its national
//! networking files (煤安监办〔2019〕42号 附件2, MT/T 1201): point definitions (CDDY), real-time
//! values (CDSS), anomalies (YCBJ), substations (FZDY, FZSS), and personnel positioning
//! (JZSS, RYSS).
//!
//! Everything here is pure: a mine's description ([`MineSpec`]), its readings at a slot
//! ([`readings`]), the text of each file (`cddy`, `cdss`, …), its name ([`file_name`]), its
//! bytes ([`encode`]) and the order a mine hands its files to the transport ([`Sequencer`]).
//! The transports (FTP, a folder) are in `simulators/bin/mine_sim.rs`.
//!
//! This writer is written from the file layout alone and on purpose shares nothing with the
//! gateway's parser (`sources::mine_files::format`): each checks the other.
//!
//! Point codes are `<mine code>01<MN|KG><4-digit sequence>` (system `01`, the safety
//! monitoring system; the sequence counts all the mine's points from 0001), substations are
//! `<mine code>F<3 digits>`, base stations `<mine code>J<3 digits>`, personnel cards
//! `<mine code>R<4 digits>` and areas `<mine code>Q<2 digits>`. See docs/mine-files.md.

use std::fmt::Write as _;
use time::{OffsetDateTime, UtcOffset};

/// `-9999`: the layout's "no value" for a number.
pub const NO_VALUE: &str = "-9999";
/// The safety-monitoring system's code in point codes.
pub const SYSTEM_CODE: &str = "01";
/// The longest point code the layout allows.
pub const MAX_CODE_LEN: usize = 32;

/// 测点状态 bits.
pub mod status {
    pub const NORMAL: u8 = 0;
    pub const ALARM: u8 = 1;
    pub const CUT: u8 = 2;
    pub const CALIBRATION: u8 = 4;
    pub const OVER_RANGE: u8 = 8;
    pub const SUBSTATION_FAULT: u8 = 16;
    pub const NOT_POLLED: u8 = 32;
    pub const PAUSED: u8 = 64;
    pub const SENSOR_FAULT: u8 = 128;
}

/// The sensor types the simulator knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SensorKind {
    /// 0001 环境瓦斯, %.
    Methane,
    /// 0002 风速, m/s.
    Wind,
    /// 0003 温度, ℃.
    Temperature,
    /// 0004 一氧化碳, ppm.
    CarbonMonoxide,
    /// 0012 氧气, %.
    Oxygen,
    /// 1001 局部通风机 (on/off).
    LocalFan,
    /// 1015 馈电 (on/off).
    PowerFeed,
}

/// The thresholds of an analog point, `None` = `-9999`.
#[derive(Debug, Clone, Copy, Default)]
struct Limits {
    high: Option<f64>,
    low: Option<f64>,
    up_alarm: Option<f64>,
    up_clear: Option<f64>,
    low_alarm: Option<f64>,
    low_clear: Option<f64>,
    up_cut: Option<f64>,
    up_restore: Option<f64>,
    low_cut: Option<f64>,
    low_restore: Option<f64>,
}

impl SensorKind {
    /// Every 20 points of a mine: 12 methane, 2 wind, 2 CO, 1 temperature, 1 oxygen, 1 local
    /// fan and 1 power-feed point, interleaved so a small mine has some of each.
    const MIX: [SensorKind; 20] = {
        use SensorKind::*;
        [
            Methane,
            Wind,
            LocalFan,
            Methane,
            CarbonMonoxide,
            Methane,
            Temperature,
            Methane,
            Oxygen,
            Methane,
            PowerFeed,
            Methane,
            Methane,
            CarbonMonoxide,
            Methane,
            Wind,
            Methane,
            Methane,
            Methane,
            Methane,
        ]
    };

    /// The kind of a mine's `j`-th point (from 0).
    pub fn of_point(j: usize) -> SensorKind {
        SensorKind::MIX[j % SensorKind::MIX.len()]
    }

    /// 传感器类型 (the type code).
    pub fn type_code(self) -> &'static str {
        match self {
            SensorKind::Methane => "0001",
            SensorKind::Wind => "0002",
            SensorKind::Temperature => "0003",
            SensorKind::CarbonMonoxide => "0004",
            SensorKind::Oxygen => "0012",
            SensorKind::LocalFan => "1001",
            SensorKind::PowerFeed => "1015",
        }
    }

    /// 传感器类型名称.
    pub fn name(self) -> &'static str {
        match self {
            SensorKind::Methane => "环境瓦斯",
            SensorKind::Wind => "风速",
            SensorKind::Temperature => "温度",
            SensorKind::CarbonMonoxide => "一氧化碳",
            SensorKind::Oxygen => "氧气",
            SensorKind::LocalFan => "局部通风机",
            SensorKind::PowerFeed => "馈电",
        }
    }

    /// 数值类型: `MN` analog, `KG` on/off.
    pub fn value_type(self) -> &'static str {
        if self.is_switch() {
            "KG"
        } else {
            "MN"
        }
    }

    pub fn is_switch(self) -> bool {
        matches!(self, SensorKind::LocalFan | SensorKind::PowerFeed)
    }

    /// 单位 (empty for on/off points).
    pub fn unit(self) -> &'static str {
        match self {
            SensorKind::Methane | SensorKind::Oxygen => "%",
            SensorKind::Wind => "m/s",
            SensorKind::Temperature => "℃",
            SensorKind::CarbonMonoxide => "ppm",
            SensorKind::LocalFan | SensorKind::PowerFeed => "",
        }
    }

    fn limits(self) -> Limits {
        let l = |high: f64, low: f64| Limits {
            high: Some(high),
            low: Some(low),
            ..Limits::default()
        };
        match self {
            SensorKind::Methane => Limits {
                up_alarm: Some(1.0),
                up_clear: Some(1.0),
                up_cut: Some(1.5),
                up_restore: Some(0.9),
                ..l(4.0, 0.0)
            },
            SensorKind::Wind => Limits {
                up_alarm: Some(8.0),
                up_clear: Some(8.0),
                low_alarm: Some(0.3),
                low_clear: Some(0.3),
                ..l(15.0, 0.0)
            },
            SensorKind::Temperature => Limits {
                up_alarm: Some(26.0),
                up_clear: Some(26.0),
                ..l(40.0, 0.0)
            },
            SensorKind::CarbonMonoxide => Limits {
                up_alarm: Some(24.0),
                up_clear: Some(24.0),
                ..l(500.0, 0.0)
            },
            SensorKind::Oxygen => Limits {
                low_alarm: Some(18.0),
                low_clear: Some(18.0),
                ..l(25.0, 0.0)
            },
            SensorKind::LocalFan | SensorKind::PowerFeed => Limits::default(),
        }
    }

    /// 开描述 and 停描述 of an on/off point.
    fn descriptions(self) -> (&'static str, &'static str) {
        match self {
            SensorKind::LocalFan => ("开", "停"),
            SensorKind::PowerFeed => ("有电", "无电"),
            _ => ("", ""),
        }
    }

    /// A normal value, chosen by `h` (a hash of the point and the slot): well inside the
    /// thresholds; on/off points are on (1).
    pub fn normal_value(self, h: u64) -> f64 {
        let r = |n: u64| (h % n) as f64;
        match self {
            SensorKind::Methane => 0.10 + r(30) / 100.0,
            SensorKind::Wind => 1.50 + r(150) / 100.0,
            SensorKind::Temperature => 20.0 + r(50) / 10.0,
            SensorKind::CarbonMonoxide => r(8),
            SensorKind::Oxygen => 20.50 + r(40) / 100.0,
            SensorKind::LocalFan | SensorKind::PowerFeed => 1.0,
        }
    }
}

/// A substation (分站).
#[derive(Debug, Clone, PartialEq)]
pub struct Substation {
    pub code: String,
    pub location: String,
    pub xyz: (f64, f64, f64),
}

/// A monitoring point (测点).
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub code: String,
    pub kind: SensorKind,
    /// Index into [`MineSpec::substations`].
    pub substation: usize,
    pub location: String,
    pub xyz: (f64, f64, f64),
}

/// One mine's KJ system: what its files describe.
#[derive(Debug, Clone, PartialEq)]
pub struct MineSpec {
    pub code: String,
    pub name: String,
    /// The mine's local time, which every time in its files and its file names is in.
    pub offset: UtcOffset,
    pub system_model: String,
    pub system_name: String,
    pub maker: String,
    /// 安标有效期, `yyyy-MM-dd`.
    pub cert_valid: String,
    pub substations: Vec<Substation>,
    pub points: Vec<Point>,
    /// People underground (RYSS records; 0: no JZSS/RYSS files).
    pub people: usize,
}

const AREAS: [&str; 6] = [
    "1201工作面",
    "1201回风巷",
    "1201进风巷",
    "主要回风巷",
    "中央变电所",
    "井底车场",
];

const NAMES: [&str; 8] = [
    "张伟", "王芳", "李强", "刘洋", "陈杰", "杨磊", "赵军", "黄勇",
];

/// A field may not contain the layout's separators.
fn check_text(what: &str, s: &str) -> Result<(), String> {
    if s.contains([';', '~', '|', '\r', '\n']) {
        return Err(format!(
            "{what} {s:?} may not contain `;`, `~`, `|` or a line break"
        ));
    }
    Ok(())
}

impl MineSpec {
    /// A mine of `points` points spread round-robin over `substations` substations (point `j`
    /// is on substation `j % substations`), the sensor mix of [`SensorKind::of_point`].
    pub fn new(
        code: &str,
        name: &str,
        points: usize,
        substations: usize,
        offset: UtcOffset,
    ) -> Result<MineSpec, String> {
        if code.is_empty() || !code.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(format!(
                "mine code {code:?} must be non-empty ASCII letters and digits"
            ));
        }
        if code.len() + 8 > MAX_CODE_LEN {
            return Err(format!(
                "mine code {code:?} is too long: point codes (the mine code and 8 more) must fit in {MAX_CODE_LEN} characters"
            ));
        }
        check_text("the mine name", name)?;
        if !(1..=9999).contains(&points) {
            return Err(format!("--points must be 1 to 9999, not {points}"));
        }
        if !(1..=999).contains(&substations) {
            return Err(format!("--substations must be 1 to 999, not {substations}"));
        }
        let substations: Vec<Substation> = (0..substations)
            .map(|s| Substation {
                code: format!("{code}F{:03}", s + 1),
                location: format!("{}分站", AREAS[s % AREAS.len()]),
                xyz: (1000.0 + 50.0 * s as f64, 2000.0, -350.0),
            })
            .collect();
        let points = (0..points)
            .map(|j| {
                let kind = SensorKind::of_point(j);
                let s = j % substations.len();
                Point {
                    code: format!("{code}{SYSTEM_CODE}{}{:04}", kind.value_type(), j + 1),
                    kind,
                    substation: s,
                    location: format!("{}{}#{}", AREAS[j % AREAS.len()], kind.name(), j + 1),
                    xyz: (1000.0 + 50.0 * s as f64 + j as f64, 2010.0, -350.0),
                }
            })
            .collect();
        Ok(MineSpec {
            code: code.to_string(),
            name: name.to_string(),
            offset,
            system_model: "KJ90X".to_string(),
            system_name: "煤矿安全监控系统".to_string(),
            maker: "safegate模拟".to_string(),
            cert_valid: "2029-12-31".to_string(),
            substations,
            points,
            people: 0,
        })
    }

    /// The index of the point a fault's code names in this mine: the full point code, or the
    /// part after the mine code (`01MN0001`), which names that point in every mine.
    pub fn point_index(&self, code: &str) -> Option<usize> {
        self.points.iter().position(|p| {
            p.code == code
                || p.code
                    .strip_prefix(self.code.as_str())
                    .is_some_and(|rest| rest == code)
        })
    }

    /// The index of the substation a fault names: its full code, or the part after the mine
    /// code (`F003`).
    pub fn substation_index(&self, code: &str) -> Option<usize> {
        self.substations.iter().position(|s| {
            s.code == code
                || s.code
                    .strip_prefix(self.code.as_str())
                    .is_some_and(|rest| rest == code)
        })
    }
}

/// `yyyy-MM-dd HH:mm:ss` at the mine's offset.
pub fn local_time(offset: UtcOffset, at_ms: i64) -> String {
    let t = at(offset, at_ms);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        t.year(),
        t.month() as u8,
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

fn at(offset: UtcOffset, at_ms: i64) -> OffsetDateTime {
    let t = OffsetDateTime::from_unix_timestamp(at_ms.div_euclid(1000))
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    t.to_offset(offset)
}

/// The file types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileKind {
    Cddy,
    Cdss,
    Ycbj,
    Fzdy,
    Fzss,
    Jzss,
    Ryss,
}

impl FileKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FileKind::Cddy => "CDDY",
            FileKind::Cdss => "CDSS",
            FileKind::Ycbj => "YCBJ",
            FileKind::Fzdy => "FZDY",
            FileKind::Fzss => "FZSS",
            FileKind::Jzss => "JZSS",
            FileKind::Ryss => "RYSS",
        }
    }
}

/// `<mine code>_<TYPE>_<yyyyMMddHHmmss>.txt`, the time local at `offset`.
pub fn file_name(mine_code: &str, kind: FileKind, offset: UtcOffset, at_ms: i64) -> String {
    let t = at(offset, at_ms);
    format!(
        "{mine_code}_{}_{:04}{:02}{:02}{:02}{:02}{:02}.txt",
        kind.as_str(),
        t.year(),
        t.month() as u8,
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// A number with two decimals, or `-9999`.
fn num(v: Option<f64>) -> String {
    match v {
        Some(v) => format!("{v:.2}"),
        None => NO_VALUE.to_string(),
    }
}

fn coord(v: f64) -> String {
    format!("{v:.1}")
}

/// Builds a file: fields joined by `;`, each record ended by `~`, the file by `||`.
struct Doc(String);

impl Doc {
    fn new() -> Doc {
        Doc(String::with_capacity(256))
    }
    fn record<S: AsRef<str>>(&mut self, fields: &[S]) {
        for (i, f) in fields.iter().enumerate() {
            if i > 0 {
                self.0.push(';');
            }
            self.0.push_str(f.as_ref());
        }
        self.0.push('~');
    }
    fn end(mut self) -> String {
        self.0.push_str("||");
        self.0
    }
}

/// The 3-field header of every file but CDDY: 矿井编码;矿井名称;数据时间.
fn short_header(mine: &MineSpec, time: &str) -> Doc {
    let mut d = Doc::new();
    d.record(&[mine.code.as_str(), mine.name.as_str(), time]);
    d
}

/// CDDY: the point definitions, 7-field header and 24 fields a point.
pub fn cddy(mine: &MineSpec, at_ms: i64) -> String {
    let t = local_time(mine.offset, at_ms);
    let mut d = Doc::new();
    d.record(&[
        mine.code.as_str(),
        &mine.name,
        &mine.system_model,
        &mine.system_name,
        &mine.maker,
        &mine.cert_valid,
        &t,
    ]);
    for p in &mine.points {
        let l = p.kind.limits();
        let (on, off) = p.kind.descriptions();
        d.record(&[
            p.code.as_str(),
            SYSTEM_CODE,
            &mine.substations[p.substation].code,
            p.kind.type_code(),
            p.kind.value_type(),
            p.kind.unit(),
            &num(l.high),
            &num(l.low),
            &num(l.up_alarm),
            &num(l.up_clear),
            &num(l.low_alarm),
            &num(l.low_clear),
            &num(l.up_cut),
            &num(l.up_restore),
            &num(l.low_cut),
            &num(l.low_restore),
            on,
            off,
            &p.location,
            &coord(p.xyz.0),
            &coord(p.xyz.1),
            &coord(p.xyz.2),
            "",
            &t,
        ]);
    }
    d.end()
}

/// One point's value and 测点状态 at a slot.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reading {
    /// `None`: `-9999`.
    pub value: Option<f64>,
    pub status: u8,
}

/// 测点状态 as written: decimal (`3`) or the 8-character binary spelling (`00000011`).
pub fn status_text(status: u8, binary: bool) -> String {
    if binary {
        format!("{status:08b}")
    } else {
        status.to_string()
    }
}

fn value_text(kind: SensorKind, v: Option<f64>) -> String {
    match v {
        Some(v) if kind.is_switch() => format!("{}", v.round() as i64),
        v => num(v),
    }
}

/// CDSS: the real-time values, one 7-field record a point; `readings[j]` is point `j`'s.
pub fn cdss(mine: &MineSpec, at_ms: i64, readings: &[Reading], status_binary: bool) -> String {
    let t = local_time(mine.offset, at_ms);
    let mut d = short_header(mine, &t);
    for (p, r) in mine.points.iter().zip(readings) {
        d.record(&[
            p.code.as_str(),
            p.kind.name(),
            &p.location,
            &value_text(p.kind, r.value),
            p.kind.unit(),
            &status_text(r.status, status_binary),
            &t,
        ]);
    }
    d.end()
}

/// FZDY: the substations, 6 fields each.
pub fn fzdy(mine: &MineSpec, at_ms: i64) -> String {
    let t = local_time(mine.offset, at_ms);
    let mut d = short_header(mine, &t);
    for s in &mine.substations {
        d.record(&[
            s.code.as_str(),
            &s.location,
            &coord(s.xyz.0),
            &coord(s.xyz.1),
            &coord(s.xyz.2),
            &t,
        ]);
    }
    d.end()
}

/// FZSS: each substation's 运行状态 (0 通信正常, 1 通信中断) and 供电状态 (1 交流);
/// `down[s]`: substation `s` is not communicating.
pub fn fzss(mine: &MineSpec, at_ms: i64, down: &[bool]) -> String {
    let t = local_time(mine.offset, at_ms);
    let mut d = short_header(mine, &t);
    for (i, s) in mine.substations.iter().enumerate() {
        let run = if down.get(i).copied().unwrap_or(false) {
            "1"
        } else {
            "0"
        };
        d.record(&[s.code.as_str(), run, "1", &t]);
    }
    d.end()
}

/// JZSS: the personnel-positioning base stations (one beside each substation, `…J001`), all
/// communicating on mains power.
pub fn jzss(mine: &MineSpec, at_ms: i64) -> String {
    let t = local_time(mine.offset, at_ms);
    let mut d = short_header(mine, &t);
    for s in 0..mine.substations.len() {
        d.record(&[base_station(mine, s).as_str(), "0", "1", &t]);
    }
    d.end()
}

fn base_station(mine: &MineSpec, s: usize) -> String {
    format!("{}J{:03}", mine.code, s + 1)
}

/// RYSS: the people underground, 15 fields each (出入井标志 1 = 入井, underground). Person `k` went
/// down an hour before `start_ms` (the run's first data time) and reached its area and base
/// station (number `k % substations`) half an hour before it; 出井时刻 is empty.
pub fn ryss(mine: &MineSpec, at_ms: i64, start_ms: i64) -> String {
    let t = local_time(mine.offset, at_ms);
    let down = local_time(mine.offset, start_ms - 3_600_000);
    let arrived = local_time(mine.offset, start_ms - 1_800_000);
    let mut d = short_header(mine, &t);
    for k in 0..mine.people {
        let s = k % mine.substations.len();
        d.record(&[
            format!("{}R{:04}", mine.code, k + 1).as_str(),
            &format!("{}{}", NAMES[k % NAMES.len()], k + 1),
            // 出入井标志: 1 入井 (underground).
            "1",
            &down,
            "",
            &format!("{}Q{:02}", mine.code, s % 100 + 1),
            &arrived,
            &base_station(mine, s),
            &arrived,
            // 劳动组织方式, 距离基站距离, 人员工作状态, 是否矿领导, 是否特种人员, 行进轨迹.
            "三八制",
            "",
            "正常",
            "0",
            "0",
            "",
        ]);
    }
    d.end()
}

/// One anomaly (异常) of a YCBJ file.
#[derive(Debug, Clone, PartialEq)]
pub struct Anomaly {
    /// Index into [`MineSpec::points`].
    pub point: usize,
    /// 异常类型: `001` 超限报警, `002` 断电报警, ….
    pub kind: &'static str,
    pub start_ms: i64,
    pub end_ms: i64,
    pub max: (f64, i64),
    pub min: (f64, i64),
    pub avg: f64,
    pub reason: String,
    /// 处理措施, 录入时间 (ms) and 录入人; `None`: the three fields are empty.
    pub measure: Option<(String, i64, String)>,
}

/// YCBJ: the anomalies, 17 fields each.
pub fn ycbj(mine: &MineSpec, at_ms: i64, anomalies: &[Anomaly]) -> String {
    let lt = |ms| local_time(mine.offset, ms);
    let t = lt(at_ms);
    let mut d = short_header(mine, &t);
    for a in anomalies {
        let Some(p) = mine.points.get(a.point) else {
            continue;
        };
        let (measure, entered, who) = match &a.measure {
            Some((m, at, who)) => (m.clone(), lt(*at), who.clone()),
            None => (String::new(), String::new(), String::new()),
        };
        d.record(&[
            p.code.as_str(),
            p.kind.name(),
            &p.location,
            p.kind.unit(),
            a.kind,
            &lt(a.start_ms),
            &lt(a.end_ms),
            &num(Some(a.max.0)),
            &lt(a.max.1),
            &num(Some(a.min.0)),
            &lt(a.min.1),
            &num(Some(a.avg)),
            &a.reason,
            &measure,
            &entered,
            &who,
            &t,
        ]);
    }
    d.end()
}

/// The bytes of a file: UTF-8, or GBK (GB18030's two-byte subset, every character the
/// writer uses has one) when `gbk`.
pub fn encode(text: &str, gbk: bool) -> Vec<u8> {
    if gbk {
        encoding_rs::GBK.encode(text).0.into_owned()
    } else {
        text.as_bytes().to_vec()
    }
}

/// A line break after every record's `~` (some KJ systems write one record a line).
pub fn with_line_breaks(text: &str) -> String {
    text.replace('~', "~\r\n")
}

/// A window of data times, seconds after the run's start: `[from_s, to_s)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub from_s: u64,
    pub to_s: u64,
}

impl Window {
    pub fn contains(&self, t_s: u64) -> bool {
        self.from_s <= t_s && t_s < self.to_s
    }
}

/// A time offset: seconds, or with an `s`, `m` or `h` suffix.
fn parse_offset_s(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (n, mul) = match s.as_bytes().last() {
        Some(b's') => (&s[..s.len() - 1], 1),
        Some(b'm') => (&s[..s.len() - 1], 60),
        Some(b'h') => (&s[..s.len() - 1], 3600),
        _ => (s, 1),
    };
    n.parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mul))
        .ok_or_else(|| format!("{s:?} is not a time after the start (like 600, 90s, 10m, 1h)"))
}

/// `from..to`, seconds after the start (or with `s`/`m`/`h`), `from < to`.
pub fn parse_window(s: &str) -> Result<Window, String> {
    let (a, b) = s
        .split_once("..")
        .ok_or_else(|| format!("{s:?} is not a window `from..to` (seconds after the start)"))?;
    let w = Window {
        from_s: parse_offset_s(a)?,
        to_s: parse_offset_s(b)?,
    };
    if w.from_s >= w.to_s {
        return Err(format!(
            "window {s:?} is empty: `from` must come before `to`"
        ));
    }
    Ok(w)
}

/// `CODE@from..to`.
pub fn parse_fault(s: &str) -> Result<(String, Window), String> {
    let (code, w) = s
        .split_once('@')
        .ok_or_else(|| format!("{s:?} is not `CODE@from..to`"))?;
    if code.is_empty() {
        return Err(format!("{s:?} has no code before `@`"));
    }
    Ok((code.to_string(), parse_window(w)?))
}

/// The faults of a run, by code (a full code, or the part after the mine code: every mine).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Faults {
    /// FZSS 通信中断 and its points' status 16 (value `-9999`).
    pub substation_down: Vec<(String, Window)>,
    /// Status 128, value `-9999`.
    pub sensor: Vec<(String, Window)>,
    /// Status 2 (断电).
    pub cut: Vec<(String, Window)>,
    /// Value 1.30 %, status 1, and a YCBJ record once it is over.
    pub methane: Vec<(String, Window)>,
}

impl Faults {
    /// An error naming a fault whose code is no point (or substation) of `mine`, or a methane
    /// excursion on a point that does not measure methane.
    pub fn check(&self, mine: &MineSpec) -> Result<(), String> {
        for (c, _) in &self.substation_down {
            if mine.substation_index(c).is_none() {
                return Err(format!(
                    "--fault-substation-down {c}: mine {} has no such substation (codes {}F001 …, or F001 …)",
                    mine.code, mine.code
                ));
            }
        }
        for (flag, list) in [("--fault-sensor", &self.sensor), ("--fault-cut", &self.cut)] {
            for (c, _) in list {
                if mine.point_index(c).is_none() {
                    return Err(format!(
                        "{flag} {c}: mine {} has no such point (codes like {}",
                        mine.code, mine.points[0].code
                    ) + " or the part after the mine code)");
                }
            }
        }
        for (c, _) in &self.methane {
            match mine.point_index(c) {
                Some(j) if mine.points[j].kind == SensorKind::Methane => {}
                Some(_) => {
                    return Err(format!(
                        "--methane-excursion {c}: that point does not measure methane"
                    ))
                }
                None => {
                    return Err(format!(
                        "--methane-excursion {c}: mine {} has no such point",
                        mine.code
                    ))
                }
            }
        }
        Ok(())
    }
}

/// A small, fixed hash (splitmix64): the same values for the same point and slot, run after run.
fn mix(a: u64, b: u64) -> u64 {
    let mut z = a
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(b)
        .wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Every point's reading at data time `t_s` (seconds after the start) of slot `slot`.
/// A substation down hides its points (value `-9999`, status 16); a sensor fault is `-9999`
/// with status 128; a methane excursion reads 1.30 with status 1; a cut adds status 2.
pub fn readings(mine: &MineSpec, slot: u64, t_s: u64, faults: &Faults) -> Vec<Reading> {
    let down = substations_down(mine, t_s, faults);
    let active = |list: &[(String, Window)], j: usize| {
        list.iter()
            .any(|(c, w)| w.contains(t_s) && mine.point_index(c) == Some(j))
    };
    mine.points
        .iter()
        .enumerate()
        .map(|(j, p)| {
            if down[p.substation] {
                return Reading {
                    value: None,
                    status: status::SUBSTATION_FAULT,
                };
            }
            if active(&faults.sensor, j) {
                return Reading {
                    value: None,
                    status: status::SENSOR_FAULT,
                };
            }
            let mut r = Reading {
                value: Some(p.kind.normal_value(mix(j as u64, slot))),
                status: status::NORMAL,
            };
            if p.kind == SensorKind::Methane && active(&faults.methane, j) {
                r = Reading {
                    value: Some(EXCURSION_VALUE),
                    status: status::ALARM,
                };
            }
            if active(&faults.cut, j) {
                r.status |= status::CUT;
            }
            r
        })
        .collect()
}

/// A methane excursion's value, %: over the 1.0 % alarm, under the 1.5 % cut.
pub const EXCURSION_VALUE: f64 = 1.3;

/// Which substations are down at `t_s`.
pub fn substations_down(mine: &MineSpec, t_s: u64, faults: &Faults) -> Vec<bool> {
    let mut down = vec![false; mine.substations.len()];
    for (c, w) in &faults.substation_down {
        if let (true, Some(s)) = (w.contains(t_s), mine.substation_index(c)) {
            down[s] = true;
        }
    }
    down
}

/// What a run writes, the same for every mine.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Data time of slot 0, epoch ms; slot `i` is at `start_ms + i · interval_s`.
    pub start_ms: i64,
    pub interval_s: u64,
    /// Slots in the run (`None`: until stopped), for a YCBJ of an excursion still open at the end.
    pub slots: Option<u64>,
    /// CDDY and FZDY at slot 0 and every this many slots (0: only at slot 0).
    pub cddy_every: u64,
    pub status_binary: bool,
    pub gbk: bool,
    pub line_breaks: bool,
    pub faults: Faults,
    /// YCBJ records carry 处理措施, 录入时间 and 录入人.
    pub ycbj_measure: bool,
    /// Slot whose CDSS loses its `||`.
    pub truncate: Option<u64>,
    /// Slot whose CDSS carries another mine's code (name and header).
    pub wrong_mine_code: Option<u64>,
    /// Slot whose CDSS is uploaded twice.
    pub duplicate: Option<u64>,
    /// Slot whose CDSS is held back and uploaded `late_by` slots later (or at the end).
    pub late_file: Option<u64>,
    pub late_by: u64,
    /// Data times in this window are not uploaded at all.
    pub gap: Option<Window>,
}

impl Plan {
    pub fn at_ms(&self, slot: u64) -> i64 {
        self.start_ms
            .saturating_add((slot.saturating_mul(self.interval_s) as i64).saturating_mul(1000))
    }

    fn t_s(&self, slot: u64) -> u64 {
        slot.saturating_mul(self.interval_s)
    }

    /// The first and last slot inside `w`, if any.
    fn slots_in(&self, w: Window) -> Option<(u64, u64)> {
        let iv = self.interval_s.max(1);
        let first = w.from_s.div_ceil(iv);
        let last = (w.to_s - 1) / iv;
        (first <= last).then_some((first, last))
    }
}

/// A file ready for the transport.
#[derive(Debug, Clone, PartialEq)]
pub struct OutFile {
    pub name: String,
    pub kind: FileKind,
    pub bytes: Vec<u8>,
    /// Point records (CDSS only).
    pub points: usize,
    pub slot: u64,
}

/// Another mine's code for `--wrong-mine-code`: the last digit moved on by 5 (or a letter
/// appended if the code does not end with a digit).
pub fn wrong_code(code: &str) -> String {
    match code.as_bytes().last() {
        Some(&b) if b.is_ascii_digit() => {
            let d = (b - b'0' + 5) % 10;
            format!("{}{d}", &code[..code.len() - 1])
        }
        _ => format!("{code}X"),
    }
}

/// The anomalies whose YCBJ record belongs to `slot`: an excursion's record comes with the
/// first slot after it (its 结束时间), or with the run's last slot if it is still on.
pub fn anomalies(mine: &MineSpec, plan: &Plan, slot: u64) -> Vec<Anomaly> {
    let mut out = Vec::new();
    for (c, w) in &plan.faults.methane {
        let (Some(j), Some((first, last))) = (mine.point_index(c), plan.slots_in(*w)) else {
            continue;
        };
        let report_at = match plan.slots {
            Some(n) if last + 1 >= n => n.saturating_sub(1),
            _ => last + 1,
        };
        if report_at != slot || first > slot {
            continue;
        }
        let start = plan.at_ms(first);
        let end = plan.at_ms(slot);
        out.push(Anomaly {
            point: j,
            kind: "001",
            start_ms: start,
            end_ms: end,
            max: (EXCURSION_VALUE, start),
            min: (EXCURSION_VALUE, start),
            avg: EXCURSION_VALUE,
            reason: "瓦斯涌出".to_string(),
            measure: plan
                .ycbj_measure
                .then(|| ("加强通风，撤出人员".to_string(), end, "调度员".to_string())),
        });
    }
    out
}

/// The files of one mine's slot, in upload order: CDDY and FZDY (when due), CDSS, FZSS,
/// JZSS and RYSS (with people), YCBJ (when an excursion is over). Gaps, late and duplicate
/// files are the [`Sequencer`]'s.
pub fn slot_files(mine: &MineSpec, plan: &Plan, slot: u64) -> Vec<OutFile> {
    let at_ms = plan.at_ms(slot);
    let t_s = plan.t_s(slot);
    let mut out = Vec::with_capacity(6);
    let mut push = |kind: FileKind, code: &str, text: String, points: usize| {
        let text = if plan.line_breaks {
            with_line_breaks(&text)
        } else {
            text
        };
        out.push(OutFile {
            name: file_name(code, kind, mine.offset, at_ms),
            kind,
            bytes: encode(&text, plan.gbk),
            points,
            slot,
        });
    };
    let code = mine.code.as_str();
    if slot == 0 || (plan.cddy_every > 0 && slot % plan.cddy_every == 0) {
        push(FileKind::Cddy, code, cddy(mine, at_ms), 0);
        push(FileKind::Fzdy, code, fzdy(mine, at_ms), 0);
    }
    let r = readings(mine, slot, t_s, &plan.faults);
    let mut text = if plan.wrong_mine_code == Some(slot) {
        let mut other = mine.clone();
        other.code = wrong_code(&mine.code);
        cdss(&other, at_ms, &r, plan.status_binary)
    } else {
        cdss(mine, at_ms, &r, plan.status_binary)
    };
    if plan.truncate == Some(slot) {
        text.truncate(text.len() - 2);
    }
    let cdss_code = if plan.wrong_mine_code == Some(slot) {
        wrong_code(code)
    } else {
        code.to_string()
    };
    push(FileKind::Cdss, &cdss_code, text, mine.points.len());
    let down = substations_down(mine, t_s, &plan.faults);
    push(FileKind::Fzss, code, fzss(mine, at_ms, &down), 0);
    if mine.people > 0 {
        push(FileKind::Jzss, code, jzss(mine, at_ms), 0);
        push(FileKind::Ryss, code, ryss(mine, at_ms, plan.start_ms), 0);
    }
    let a = anomalies(mine, plan, slot);
    if !a.is_empty() {
        push(FileKind::Ycbj, code, ycbj(mine, at_ms, &a), 0);
    }
    out
}

/// One mine's upload order: skips the gap, holds the late file back, repeats the duplicate.
#[derive(Debug, Default)]
pub struct Sequencer {
    held: Vec<(u64, OutFile)>,
    /// Slots not uploaded because they fell in the gap.
    pub gapped: u64,
}

impl Sequencer {
    /// What to upload for `slot`, in order.
    pub fn slot(&mut self, mine: &MineSpec, plan: &Plan, slot: u64) -> Vec<OutFile> {
        let mut out = Vec::new();
        if plan.gap.is_some_and(|g| g.contains(plan.t_s(slot))) {
            // Nothing at all in the gap, a held file neither.
            self.gapped += 1;
            return out;
        }
        for f in slot_files(mine, plan, slot) {
            let cdss = f.kind == FileKind::Cdss;
            if cdss && plan.late_file == Some(slot) {
                self.held.push((slot + plan.late_by.max(1), f));
                continue;
            }
            if cdss && plan.duplicate == Some(slot) {
                out.push(f.clone());
            }
            out.push(f);
        }
        let (due, keep): (Vec<_>, Vec<_>) = std::mem::take(&mut self.held)
            .into_iter()
            .partition(|(at, _)| *at <= slot);
        self.held = keep;
        out.extend(due.into_iter().map(|(_, f)| f));
        out
    }

    /// Files still held when the run ends.
    pub fn finish(&mut self) -> Vec<OutFile> {
        std::mem::take(&mut self.held)
            .into_iter()
            .map(|(_, f)| f)
            .collect()
    }
}

/// Parses `yyyy-MM-dd HH:mm:ss` (or with a `T`) as a time at `offset`, to epoch ms.
pub fn parse_local(s: &str, offset: UtcOffset) -> Result<i64, String> {
    let bad = || format!("{s:?} is not a time `yyyy-MM-dd HH:mm:ss`");
    let b = s.trim().as_bytes();
    if b.len() != 19 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b' ' | b'T') {
        return Err(bad());
    }
    let n = |r: std::ops::Range<usize>| -> Result<u32, String> {
        std::str::from_utf8(&b[r])
            .ok()
            .filter(|t| t.bytes().all(|c| c.is_ascii_digit()))
            .and_then(|t| t.parse().ok())
            .ok_or_else(bad)
    };
    let month = time::Month::try_from(n(5..7)? as u8).map_err(|_| bad())?;
    let date = time::Date::from_calendar_date(n(0..4)? as i32, month, n(8..10)? as u8)
        .map_err(|_| bad())?;
    let tm = time::Time::from_hms(n(11..13)? as u8, n(14..16)? as u8, n(17..19)? as u8)
        .map_err(|_| bad())?;
    if b[13] != b':' || b[16] != b':' {
        return Err(bad());
    }
    Ok(date.with_time(tm).assume_offset(offset).unix_timestamp() * 1000)
}

/// Parses `+08:00` (or `-05:30`, `Z`).
pub fn parse_offset(s: &str) -> Result<UtcOffset, String> {
    let bad = || format!("{s:?} is not a UTC offset like +08:00");
    if s == "Z" || s == "z" {
        return Ok(UtcOffset::UTC);
    }
    let b = s.as_bytes();
    if b.len() != 6 || !matches!(b[0], b'+' | b'-') || b[3] != b':' {
        return Err(bad());
    }
    let h: i8 = s[1..3].parse().map_err(|_| bad())?;
    let m: i8 = s[4..6].parse().map_err(|_| bad())?;
    let sign = if b[0] == b'-' { -1 } else { 1 };
    UtcOffset::from_hms(sign * h, sign * m, 0).map_err(|_| bad())
}

/// Mine `k`'s code when a run has many: the first code plus `k`, keeping its width (leading
/// zeros) — `150621011038`, `150621011039`, ….
pub fn nth_code(first: &str, k: u64) -> Result<String, String> {
    let n: u128 = first
        .parse()
        .map_err(|_| format!("--first-code {first:?} must be all digits"))?;
    let c = n
        .checked_add(k as u128)
        .ok_or_else(|| format!("--first-code {first:?} + {k} overflows"))?;
    let mut s = String::new();
    let _ = write!(s, "{c:0width$}", width = first.len());
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CST: UtcOffset = match UtcOffset::from_hms(8, 0, 0) {
        Ok(o) => o,
        Err(_) => UtcOffset::UTC,
    };

    /// 2026-12-01 08:00:00 +08:00.
    const T0: i64 = 1_796_083_200_000;

    fn mine() -> MineSpec {
        MineSpec::new("150621011038", "测试煤矿", 3, 1, CST).unwrap()
    }

    fn plan() -> Plan {
        Plan {
            start_ms: T0,
            interval_s: 60,
            slots: Some(10),
            cddy_every: 0,
            status_binary: false,
            gbk: false,
            line_breaks: false,
            faults: Faults::default(),
            ycbj_measure: false,
            truncate: None,
            wrong_mine_code: None,
            duplicate: None,
            late_file: None,
            late_by: 3,
            gap: None,
        }
    }

    /// Records of a file (without the `||`), each split into fields.
    fn records(text: &str) -> Vec<Vec<&str>> {
        let body = text.strip_suffix("||").expect("ends with ||");
        assert!(body.ends_with('~'));
        body[..body.len() - 1]
            .split('~')
            .map(|r| r.split(';').collect())
            .collect()
    }

    fn text(f: &OutFile) -> &str {
        std::str::from_utf8(&f.bytes).unwrap()
    }

    #[test]
    fn times_and_names_are_local() {
        assert_eq!(local_time(CST, T0), "2026-12-01 08:00:00");
        assert_eq!(local_time(UtcOffset::UTC, T0), "2026-12-01 00:00:00");
        assert_eq!(
            file_name("150621011038", FileKind::Cdss, CST, T0 + 61_500),
            "150621011038_CDSS_20261201080101.txt"
        );
        assert_eq!(parse_local("2026-12-01 08:00:00", CST), Ok(T0));
        assert_eq!(parse_local("2026-12-01T08:00:00", CST), Ok(T0));
        assert!(parse_local("2026-13-01 08:00:00", CST).is_err());
        assert!(parse_local("2026-12-01 08:00", CST).is_err());
        assert_eq!(parse_offset("+08:00"), Ok(CST));
        assert!(parse_offset("08:00").is_err());
    }

    #[test]
    fn point_codes_and_mix() {
        let m = mine();
        let codes: Vec<_> = m.points.iter().map(|p| p.code.as_str()).collect();
        assert_eq!(
            codes,
            [
                "15062101103801MN0001",
                "15062101103801MN0002",
                "15062101103801KG0003"
            ]
        );
        assert_eq!(m.substations[0].code, "150621011038F001");
        let big = MineSpec::new("150621011038", "m", 300, 10, CST).unwrap();
        let methane = big
            .points
            .iter()
            .filter(|p| p.kind == SensorKind::Methane)
            .count();
        let switches = big.points.iter().filter(|p| p.kind.is_switch()).count();
        assert_eq!((methane, switches), (180, 30));
        let mut all: Vec<_> = big.points.iter().map(|p| &p.code).collect();
        all.dedup();
        assert_eq!(all.len(), 300);
        assert!(all.iter().all(|c| c.len() <= MAX_CODE_LEN));
        assert_eq!(big.points[11].substation, 1);
        assert!(MineSpec::new("x".repeat(25).as_str(), "m", 1, 1, CST).is_err());
        assert!(MineSpec::new("1506", "a;b", 1, 1, CST).is_err());
        assert_eq!(m.point_index("01MN0002"), Some(1));
        assert_eq!(m.point_index("15062101103801KG0003"), Some(2));
        assert_eq!(m.substation_index("F001"), Some(0));
        assert_eq!(m.substation_index("F002"), None);
    }

    #[test]
    fn cddy_exact() {
        let t = cddy(&mine(), T0);
        let ts = "2026-12-01 08:00:00";
        let expected = format!(
            "150621011038;测试煤矿;KJ90X;煤矿安全监控系统;safegate模拟;2029-12-31;{ts}~\
             15062101103801MN0001;01;150621011038F001;0001;MN;%;4.00;0.00;1.00;1.00;-9999;-9999;1.50;0.90;-9999;-9999;;;1201工作面环境瓦斯#1;1000.0;2010.0;-350.0;;{ts}~\
             15062101103801MN0002;01;150621011038F001;0002;MN;m/s;15.00;0.00;8.00;8.00;0.30;0.30;-9999;-9999;-9999;-9999;;;1201回风巷风速#2;1001.0;2010.0;-350.0;;{ts}~\
             15062101103801KG0003;01;150621011038F001;1001;KG;;-9999;-9999;-9999;-9999;-9999;-9999;-9999;-9999;-9999;-9999;开;停;1201进风巷局部通风机#3;1002.0;2010.0;-350.0;;{ts}~||"
        );
        assert_eq!(t, expected);
        let r = records(&t);
        assert_eq!(r[0].len(), 7);
        assert!(r[1..].iter().all(|f| f.len() == 24));
    }

    #[test]
    fn cdss_exact_with_statuses() {
        let m = mine();
        let r = [
            Reading {
                value: Some(0.25),
                status: status::NORMAL,
            },
            Reading {
                value: None,
                status: status::SENSOR_FAULT,
            },
            Reading {
                value: Some(1.0),
                status: status::ALARM | status::CUT,
            },
        ];
        let ts = "2026-12-01 08:00:00";
        assert_eq!(
            cdss(&m, T0, &r, false),
            format!(
                "150621011038;测试煤矿;{ts}~\
                 15062101103801MN0001;环境瓦斯;1201工作面环境瓦斯#1;0.25;%;0;{ts}~\
                 15062101103801MN0002;风速;1201回风巷风速#2;-9999;m/s;128;{ts}~\
                 15062101103801KG0003;局部通风机;1201进风巷局部通风机#3;1;;3;{ts}~||"
            )
        );
        let bin = cdss(&m, T0, &r, true);
        let recs = records(&bin);
        assert_eq!(recs[0].len(), 3);
        assert!(recs[1..].iter().all(|f| f.len() == 7));
        let st: Vec<_> = recs[1..].iter().map(|f| f[5]).collect();
        assert_eq!(st, ["00000000", "10000000", "00000011"]);
    }

    #[test]
    fn substation_files_exact() {
        let m = MineSpec::new("150621011038", "测试煤矿", 3, 2, CST).unwrap();
        let ts = "2026-12-01 08:00:00";
        assert_eq!(
            fzdy(&m, T0),
            format!(
                "150621011038;测试煤矿;{ts}~\
                 150621011038F001;1201工作面分站;1000.0;2000.0;-350.0;{ts}~\
                 150621011038F002;1201回风巷分站;1050.0;2000.0;-350.0;{ts}~||"
            )
        );
        assert_eq!(
            fzss(&m, T0, &[false, true]),
            format!(
                "150621011038;测试煤矿;{ts}~150621011038F001;0;1;{ts}~150621011038F002;1;1;{ts}~||"
            )
        );
        assert!(records(&fzdy(&m, T0))[1..].iter().all(|f| f.len() == 6));
        assert!(records(&fzss(&m, T0, &[]))[1..]
            .iter()
            .all(|f| f.len() == 4));
    }

    #[test]
    fn people_files() {
        let mut m = mine();
        m.people = 2;
        let ts = "2026-12-01 08:00:00";
        assert_eq!(
            jzss(&m, T0),
            format!("150621011038;测试煤矿;{ts}~150621011038J001;0;1;{ts}~||")
        );
        let r = ryss(&m, T0, T0);
        assert_eq!(
            records(&r)[1],
            [
                "150621011038R0001",
                "张伟1",
                "1",
                "2026-12-01 07:00:00",
                "",
                "150621011038Q01",
                "2026-12-01 07:30:00",
                "150621011038J001",
                "2026-12-01 07:30:00",
                "三八制",
                "",
                "正常",
                "0",
                "0",
                ""
            ]
        );
        assert_eq!(records(&r).len(), 3);
    }

    #[test]
    fn faults_change_readings() {
        let m = MineSpec::new("150621011038", "测试煤矿", 4, 2, CST).unwrap();
        let w = Window {
            from_s: 60,
            to_s: 120,
        };
        let f = Faults {
            substation_down: vec![("F002".into(), w)],
            sensor: vec![("01MN0001".into(), w)],
            cut: vec![("15062101103801KG0003".into(), w)],
            methane: vec![],
        };
        f.check(&m).unwrap();
        let r = readings(&m, 1, 60, &f);
        // points 1 and 3 are on substation F002.
        assert_eq!(
            r.iter().map(|r| r.status).collect::<Vec<_>>(),
            [128, 16, 2, 16]
        );
        assert_eq!((r[0].value, r[1].value), (None, None));
        assert!(r[2].value.is_some());
        let before = readings(&m, 0, 0, &f);
        assert!(before.iter().all(|r| r.status == 0 && r.value.is_some()));
        // the values are the same run after run.
        assert_eq!(before, readings(&m, 0, 0, &f));
        assert!(Faults {
            methane: vec![("01MN0002".into(), w)],
            ..Faults::default()
        }
        .check(&m)
        .is_err());
        assert!(Faults {
            cut: vec![("01MN0099".into(), w)],
            ..Faults::default()
        }
        .check(&m)
        .is_err());
    }

    #[test]
    fn methane_excursion_and_its_ycbj() {
        let m = mine();
        for measure in [false, true] {
            let mut p = plan();
            p.ycbj_measure = measure;
            p.faults.methane = vec![("01MN0001".into(), parse_window("60..180").unwrap())];
            let at = |slot| {
                let f = slot_files(&m, &p, slot);
                let c = f.iter().find(|f| f.kind == FileKind::Cdss).unwrap();
                records(text(c))[1][3..6].join(";")
            };
            assert_eq!(at(1), "1.30;%;1");
            assert_eq!(at(2), "1.30;%;1");
            assert!(at(3).ends_with(";%;0"));
            assert!(slot_files(&m, &p, 2)
                .iter()
                .all(|f| f.kind != FileKind::Ycbj));
            let f = slot_files(&m, &p, 3);
            let y = f.iter().find(|f| f.kind == FileKind::Ycbj).unwrap();
            assert_eq!(y.name, "150621011038_YCBJ_20261201080300.txt");
            let r = records(text(y));
            assert_eq!(r.len(), 2);
            assert_eq!(r[1].len(), 17);
            let tail = if measure {
                "加强通风，撤出人员;2026-12-01 08:03:00;调度员"
            } else {
                ";;"
            };
            assert_eq!(
                r[1].join(";"),
                format!(
                    "15062101103801MN0001;环境瓦斯;1201工作面环境瓦斯#1;%;001;\
                     2026-12-01 08:01:00;2026-12-01 08:03:00;1.30;2026-12-01 08:01:00;\
                     1.30;2026-12-01 08:01:00;1.30;瓦斯涌出;{tail};2026-12-01 08:03:00"
                )
            );
        }
        // still on at the run's last slot: reported with it.
        let mut p = plan();
        p.slots = Some(3);
        p.faults.methane = vec![("01MN0001".into(), parse_window("60..1h").unwrap())];
        assert!(slot_files(&m, &p, 2)
            .iter()
            .any(|f| f.kind == FileKind::Ycbj));
    }

    #[test]
    fn slot_order_cddy_every_and_faulty_files() {
        let m = mine();
        let mut p = plan();
        p.cddy_every = 5;
        let kinds = |slot| {
            slot_files(&m, &p, slot)
                .iter()
                .map(|f| f.kind.as_str())
                .collect::<Vec<_>>()
        };
        assert_eq!(kinds(0), ["CDDY", "FZDY", "CDSS", "FZSS"]);
        assert_eq!(kinds(1), ["CDSS", "FZSS"]);
        assert_eq!(kinds(5), ["CDDY", "FZDY", "CDSS", "FZSS"]);
        p.truncate = Some(2);
        p.wrong_mine_code = Some(3);
        let f = slot_files(&m, &p, 2);
        assert!(text(&f[0]).ends_with('~') && !text(&f[0]).ends_with("||"));
        assert!(text(&f[1]).ends_with("||"));
        let f = slot_files(&m, &p, 3);
        assert_eq!(f[0].name, "150621011033_CDSS_20261201080300.txt");
        assert!(text(&f[0]).starts_with("150621011033;"));
        assert_eq!(f[1].name, "150621011038_FZSS_20261201080300.txt");
        p.line_breaks = true;
        assert!(text(&slot_files(&m, &p, 1)[1]).contains("~\r\n"));
    }

    #[test]
    fn sequencer_gap_late_duplicate() {
        let m = mine();
        let mut p = plan();
        p.gap = Some(parse_window("2m..4m").unwrap());
        p.duplicate = Some(1);
        p.late_file = Some(0);
        p.late_by = 2;
        let mut s = Sequencer::default();
        let names = |v: Vec<OutFile>| {
            v.into_iter()
                .map(|f| format!("{}{}", f.kind.as_str(), f.slot))
                .collect::<Vec<_>>()
        };
        assert_eq!(names(s.slot(&m, &p, 0)), ["CDDY0", "FZDY0", "FZSS0"]);
        assert_eq!(names(s.slot(&m, &p, 1)), ["CDSS1", "CDSS1", "FZSS1"]);
        // slots 2 and 3 are in the gap: the late file, due at 2, waits for its end.
        assert!(s.slot(&m, &p, 2).is_empty());
        assert!(s.slot(&m, &p, 3).is_empty());
        assert_eq!(names(s.slot(&m, &p, 4)), ["CDSS4", "FZSS4", "CDSS0"]);
        assert_eq!(s.gapped, 2);
        p.late_file = Some(4);
        s.slot(&m, &p, 4);
        assert_eq!(names(s.finish()), ["CDSS4"]);
    }

    #[test]
    fn gbk_round_trip() {
        let mut p = plan();
        p.gbk = true;
        let m = MineSpec::new("150621011038", "测试煤矿", 20, 2, CST).unwrap();
        for f in slot_files(&m, &p, 0) {
            let (back, _, bad) = encoding_rs::GBK.decode(&f.bytes);
            assert!(!bad, "{}", f.name);
            p.gbk = false;
            let utf8 = slot_files(&m, &p, 0);
            p.gbk = true;
            let same = utf8.iter().find(|u| u.name == f.name).unwrap();
            assert_eq!(back, text(same));
            assert_ne!(f.bytes, same.bytes);
        }
        // ℃ is in GBK.
        assert_eq!(encode("℃", true), [0xA1, 0xE6]);
    }

    #[test]
    fn windows_codes_and_wrong_codes() {
        assert_eq!(
            parse_window("10m..1h"),
            Ok(Window {
                from_s: 600,
                to_s: 3600
            })
        );
        assert!(parse_window("5..5").is_err());
        assert!(parse_window("5").is_err());
        assert_eq!(
            parse_fault("F003@0..60"),
            Ok((
                "F003".to_string(),
                Window {
                    from_s: 0,
                    to_s: 60
                }
            ))
        );
        assert!(parse_fault("@0..60").is_err());
        assert_eq!(nth_code("0150", 12).unwrap(), "0162");
        assert!(nth_code("15a", 1).is_err());
        assert_eq!(wrong_code("150621011038"), "150621011033");
        assert_eq!(wrong_code("MINE"), "MINEX");
    }
}
