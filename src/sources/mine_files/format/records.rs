//! The typed records, and how one record's fields become one: each field is looked up by its
//! Chinese name in the type's layout (tables.rs), so a reordered variant needs no change here.

use super::error::{RecordError, RecordReason};
use super::name::{parse_local_time, shorten, FileType};
use super::tables::{self, Layout};
use crate::model::DeviceKind;
use std::fmt;
use time::UtcOffset;

/// One record of a file.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    /// CDDY.
    Point(PointDef),
    /// CDSS.
    Value(PointValue),
    /// YCBJ.
    Anomaly(Anomaly),
    /// FZDY.
    Substation(SubstationDef),
    /// FZSS.
    SubstationState(StationState),
    /// JZSS.
    BaseStation(StationState),
    /// RYSS.
    Person(PersonRecord),
    /// RYJZ.
    BaseStationDef(BaseStationDef),
    /// RYQY.
    Area(AreaDef),
}

/// 数值类型.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ValueType {
    /// `MN` 模拟量.
    Analog,
    /// `KG` 开关量.
    Switch,
    /// `LJ` 累计量.
    Cumulative,
    /// `DT` 多态量.
    MultiState,
}

/// A point definition (CDDY).
#[derive(Debug, Clone, PartialEq)]
pub struct PointDef {
    pub code: String,
    pub system_code: String,
    pub substation: String,
    pub sensor_type: String,
    pub value_type: ValueType,
    pub unit: String,
    pub range_high: Option<f64>,
    pub range_low: Option<f64>,
    pub alarm_high: Option<f64>,
    pub alarm_high_clear: Option<f64>,
    pub alarm_low: Option<f64>,
    pub alarm_low_clear: Option<f64>,
    pub cut_high: Option<f64>,
    pub restore_high: Option<f64>,
    pub cut_low: Option<f64>,
    pub restore_low: Option<f64>,
    pub on_desc: String,
    pub off_desc: String,
    pub location: String,
    pub xyz: [Option<f64>; 3],
    pub relation: String,
    pub data_ms: i64,
}

/// A point's real-time value (CDSS).
#[derive(Debug, Clone, PartialEq)]
pub struct PointValue {
    pub code: String,
    pub type_name: String,
    pub location: String,
    /// `None` for an empty field or `-9999`. A switch point's is 0 or 1.
    pub value: Option<f64>,
    pub unit: String,
    pub status: PointStatus,
    pub data_ms: i64,
}

/// 测点状态: a bitmask, 0 being 正常.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct PointStatus(pub u16);

impl PointStatus {
    pub const ALARM: u16 = 1;
    pub const CUT: u16 = 2;
    pub const CALIBRATING: u16 = 4;
    pub const OVER_RANGE: u16 = 8;
    pub const SUBSTATION_FAULT: u16 = 16;
    pub const NOT_POLLED: u16 = 32;
    pub const PAUSED: u16 = 64;
    pub const SENSOR_FAULT: u16 = 128;

    pub fn is_alarm(self) -> bool {
        self.0 & Self::ALARM != 0
    }

    pub fn is_cut(self) -> bool {
        self.0 & Self::CUT != 0
    }

    /// Calibrating, not polled or paused: the value says nothing of the air.
    pub fn is_maintenance(self) -> bool {
        self.0 & (Self::CALIBRATING | Self::NOT_POLLED | Self::PAUSED) != 0
    }

    /// The substation or the sensor is faulty.
    pub fn is_fault(self) -> bool {
        self.0 & (Self::SUBSTATION_FAULT | Self::SENSOR_FAULT) != 0
    }

    /// The Chinese names of the bits set, or `["正常"]`.
    pub fn names(self) -> Vec<&'static str> {
        let names: Vec<_> = tables::STATUS_BITS
            .iter()
            .filter(|(bit, _)| self.0 & bit != 0)
            .map(|(_, name)| *name)
            .collect();
        if names.is_empty() {
            vec![tables::STATUS_NORMAL]
        } else {
            names
        }
    }

    /// Parses a 测点状态.
    ///
    /// The national layout writes it in decimal (`0`…`255`); some KJ systems write the byte in
    /// binary, as 8 characters. The rule: exactly 8 characters, all `0` or `1`, are binary;
    /// anything else is decimal. The rule is ambiguous only for a decimal status written with
    /// leading zeros to 8 digits of 0s and 1s (`00000010` is read as 2, where decimal would be
    /// 10 = 报警|超量程); no system is known to pad decimals that way. A status over 255 (a
    /// bit the layout does not define) is refused.
    pub fn parse(s: &str) -> Option<PointStatus> {
        let binary = s.len() == 8 && s.bytes().all(|b| b == b'0' || b == b'1');
        let value = if binary {
            u16::from_str_radix(s, 2).ok()?
        } else if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
            s.parse::<u16>().ok()?
        } else {
            return None;
        };
        (value <= tables::STATUS_MAX).then_some(PointStatus(value))
    }
}

/// An anomaly (YCBJ).
#[derive(Debug, Clone, PartialEq)]
pub struct Anomaly {
    pub code: String,
    pub type_name: String,
    pub location: String,
    pub unit: String,
    pub kind: AnomalyKind,
    pub start_ms: i64,
    /// `None` while it lasts.
    pub end_ms: Option<i64>,
    pub max: Option<f64>,
    pub max_ms: Option<i64>,
    pub min: Option<f64>,
    pub min_ms: Option<i64>,
    pub avg: Option<f64>,
    pub cause: String,
    /// Empty when no measure was entered yet.
    pub measure: String,
    pub entered_ms: Option<i64>,
    pub entered_by: String,
    pub data_ms: i64,
}

/// 异常类型 (`001`…`010`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AnomalyKind {
    OverLimit,
    CutOff,
    FeedAbnormal,
    SensorDisconnected,
    StationPowerOff,
    StationUnreachable,
    Calibrating,
    OverRange,
    OverUpperWarning,
    UnderLowerWarning,
}

impl AnomalyKind {
    fn entry(self) -> Option<&'static (u16, AnomalyKind, &'static str, &'static str)> {
        tables::ANOMALY_KINDS.iter().find(|e| e.1 == self)
    }

    /// snake_case.
    pub fn as_str(self) -> &'static str {
        self.entry().map_or("", |e| e.2)
    }

    /// The Chinese name.
    pub fn zh(self) -> &'static str {
        self.entry().map_or("", |e| e.3)
    }

    /// `001`, `1`: leading zeros are optional.
    pub fn from_code(s: &str) -> Option<AnomalyKind> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let n: u16 = s.parse().ok()?;
        tables::ANOMALY_KINDS.iter().find(|e| e.0 == n).map(|e| e.1)
    }
}

/// A substation's definition (FZDY).
#[derive(Debug, Clone, PartialEq)]
pub struct SubstationDef {
    pub code: String,
    pub location: String,
    pub xyz: [Option<f64>; 3],
    pub data_ms: i64,
}

/// A substation's (FZSS) or a base station's (JZSS) state.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StationState {
    pub code: String,
    pub run: RunState,
    pub power: PowerState,
    pub data_ms: i64,
}

/// 运行状态.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum RunState {
    Normal,
    CommInterrupted,
    Fault,
    Unknown,
}

/// 供电状态.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum PowerState {
    Dc,
    Ac,
    PowerFault,
    Unknown,
}

/// One person's real-time record (RYSS). Its `Debug` leaves the name out.
#[derive(Clone, PartialEq)]
pub struct PersonRecord {
    pub card: String,
    /// Personal data: never logged (not in `Debug`).
    pub name: String,
    /// 出入井标志 is `1` (入井).
    pub underground: bool,
    /// 出入井标志 as written: `0`, `1` or `2` (see tables.rs).
    pub in_out_flag: String,
    pub entered_ms: Option<i64>,
    pub left_ms: Option<i64>,
    pub area: String,
    pub area_ms: Option<i64>,
    pub station: String,
    pub station_ms: Option<i64>,
    /// 劳动组织方式 (e.g. 三八制).
    pub shift_mode: String,
    /// 距离基站距离, m.
    pub distance_m: Option<f64>,
    /// 人员工作状态 as written (e.g. 正常, 求救).
    pub work_status: String,
    pub is_leader: Option<bool>,
    pub is_special: Option<bool>,
    /// 行进轨迹: the base stations passed, each with when.
    pub track: Vec<TrackPoint>,
}

impl fmt::Debug for PersonRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PersonRecord")
            .field("card", &self.card)
            .field("name", &"<redacted>")
            .field("underground", &self.underground)
            .field("in_out_flag", &self.in_out_flag)
            .field("entered_ms", &self.entered_ms)
            .field("left_ms", &self.left_ms)
            .field("area", &self.area)
            .field("area_ms", &self.area_ms)
            .field("station", &self.station)
            .field("station_ms", &self.station_ms)
            .field("shift_mode", &self.shift_mode)
            .field("distance_m", &self.distance_m)
            .field("work_status", &self.work_status)
            .field("is_leader", &self.is_leader)
            .field("is_special", &self.is_special)
            .field("track", &self.track)
            .finish()
    }
}

/// A base station passed, and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackPoint {
    pub station: String,
    pub at_ms: Option<i64>,
}

/// A base station's definition (RYJZ): its code and location; the other fields are kept as
/// they are (not documented in the sources read, see docs/mine-files.md).
#[derive(Debug, Clone, PartialEq)]
pub struct BaseStationDef {
    pub code: String,
    pub location: String,
    pub rest: Vec<String>,
}

/// An area's definition (RYQY).
#[derive(Debug, Clone, PartialEq)]
pub struct AreaDef {
    pub code: String,
    /// 区域类型 as written.
    pub kind: String,
    /// 核定人数.
    pub capacity: Option<u32>,
    pub name: String,
}

/// The gateway's kind of a point: its 数值类型 first (KG/DT a switch, LJ cumulative), then its
/// sensor type.
pub fn sensor_kind(sensor_type: &str, value_type: ValueType) -> DeviceKind {
    match value_type {
        ValueType::Switch | ValueType::MultiState => DeviceKind::Switch,
        ValueType::Cumulative => DeviceKind::Cumulative,
        ValueType::Analog => sensor_entry(sensor_type).map_or(DeviceKind::Other, |e| e.2),
    }
}

/// The Chinese name of a sensor type code.
pub fn sensor_name(sensor_type: &str) -> Option<&'static str> {
    sensor_entry(sensor_type).map(|e| e.1)
}

fn sensor_entry(code: &str) -> Option<&'static (&'static str, &'static str, DeviceKind)> {
    tables::SENSOR_TYPES.iter().find(|e| e.0 == code)
}

/// One record's fields, read by name.
pub(crate) struct Fields<'a> {
    pub number: u32,
    pub layout: &'static Layout,
    pub values: Vec<&'a str>,
    pub offset: UtcOffset,
}

type Res<T> = Result<T, RecordError>;

impl<'a> Fields<'a> {
    fn raw(&self, name: &str) -> &'a str {
        self.layout
            .fields
            .iter()
            .position(|n| *n == name)
            .and_then(|i| self.values.get(i).copied())
            .unwrap_or("")
    }

    fn refuse<T>(&self, reason: RecordReason, name: &str, why: &str) -> Res<T> {
        Err(RecordError {
            record: self.number,
            reason,
            detail: format!("{name} `{}` {why}", shorten(self.raw(name))),
        })
    }

    fn text(&self, name: &str) -> String {
        self.raw(name).to_string()
    }

    /// A record's own code: there, and an identifier (no blanks or control characters, at
    /// most `tables::CODE_MAX_CHARS`), since the gateway keys the point by it.
    fn code(&self, name: &str) -> Res<String> {
        let s = self.raw(name);
        if s.is_empty() {
            return self.refuse(RecordReason::EmptyCode, name, "is empty");
        }
        let identifier = s.chars().count() <= tables::CODE_MAX_CHARS
            && !s.chars().any(|c| c.is_whitespace() || c.is_control());
        if !identifier {
            return self.refuse(RecordReason::BadCode, name, "is not a code");
        }
        Ok(self.text(name))
    }

    /// Empty or `-9999` → `None`.
    fn num(&self, name: &str) -> Res<Option<f64>> {
        let s = self.raw(name);
        if s.is_empty() {
            return Ok(None);
        }
        match s.parse::<f64>() {
            Ok(v) if v == tables::NO_VALUE => Ok(None),
            Ok(v) if v.is_finite() && !s.bytes().any(|b| b.is_ascii_alphabetic()) => Ok(Some(v)),
            _ => self.refuse(RecordReason::BadNumber, name, "is not a number"),
        }
    }

    fn xyz(&self) -> Res<[Option<f64>; 3]> {
        Ok([self.num("X")?, self.num("Y")?, self.num("Z")?])
    }

    fn time(&self, name: &str) -> Res<i64> {
        match self.opt_time(name)? {
            Some(t) => Ok(t),
            None => self.refuse(RecordReason::BadTime, name, "is empty"),
        }
    }

    fn opt_time(&self, name: &str) -> Res<Option<i64>> {
        let s = self.raw(name);
        if s.is_empty() {
            return Ok(None);
        }
        match parse_local_time(s, self.offset) {
            Some(t) => Ok(Some(t)),
            None => self.refuse(RecordReason::BadTime, name, "is not yyyy-MM-dd HH:mm:ss"),
        }
    }

    /// A code of a table.
    fn lookup<T: Copy>(&self, name: &str, table: &[(&str, T, &str)]) -> Res<T> {
        let s = self.raw(name);
        match table.iter().find(|e| e.0 == s) {
            Some(e) => Ok(e.1),
            None => self.refuse(RecordReason::BadCode, name, "is not a known code"),
        }
    }

    fn yes_no(&self, name: &str) -> Res<Option<bool>> {
        let s = self.raw(name);
        if s.is_empty() {
            return Ok(None);
        }
        match tables::YES_NO.iter().find(|e| e.0 == s) {
            Some(e) => Ok(Some(e.1)),
            None => self.refuse(RecordReason::BadCode, name, "is not 0 or 1"),
        }
    }
}

/// Builds the record of a file type from its fields (their count already checked).
pub(crate) fn build(file_type: FileType, f: &Fields<'_>) -> Res<Record> {
    match file_type {
        FileType::Cddy => point_def(f).map(Record::Point),
        FileType::Cdss => point_value(f).map(Record::Value),
        FileType::Ycbj => anomaly(f).map(Record::Anomaly),
        FileType::Fzdy => substation(f).map(Record::Substation),
        FileType::Fzss => station_state(f, "分站编码").map(Record::SubstationState),
        FileType::Jzss => station_state(f, "基站编码").map(Record::BaseStation),
        FileType::Ryss => person(f).map(Record::Person),
        FileType::Ryjz => base_station_def(f).map(Record::BaseStationDef),
        FileType::Ryqy => area(f).map(Record::Area),
    }
}

fn value_type(f: &Fields<'_>) -> Res<ValueType> {
    let s = f.raw("数值类型");
    match tables::VALUE_TYPES.iter().find(|e| e.0 == s) {
        Some(e) => Ok(e.1),
        None => f.refuse(RecordReason::BadCode, "数值类型", "is not MN, KG, LJ or DT"),
    }
}

fn point_def(f: &Fields<'_>) -> Res<PointDef> {
    Ok(PointDef {
        code: f.code("测点编码")?,
        system_code: f.text("系统编码"),
        substation: f.text("分站编码"),
        sensor_type: f.text("传感器类型"),
        value_type: value_type(f)?,
        unit: f.text("单位"),
        range_high: f.num("高量程")?,
        range_low: f.num("低量程")?,
        alarm_high: f.num("上限报警门限")?,
        alarm_high_clear: f.num("上限解报门限")?,
        alarm_low: f.num("下限报警门限")?,
        alarm_low_clear: f.num("下限解报门限")?,
        cut_high: f.num("上限断电门限")?,
        restore_high: f.num("上限复电门限")?,
        cut_low: f.num("下限断电门限")?,
        restore_low: f.num("下限复电门限")?,
        on_desc: f.text("开描述"),
        off_desc: f.text("停描述"),
        location: f.text("安装位置"),
        xyz: f.xyz()?,
        relation: f.text("传感器关联关系"),
        data_ms: f.time("数据时间")?,
    })
}

fn point_value(f: &Fields<'_>) -> Res<PointValue> {
    let code = f.code("测点编码")?;
    let value = f.num("监测值")?;
    let status = match PointStatus::parse(f.raw("测点状态")) {
        Some(s) => s,
        None => {
            return f.refuse(
                RecordReason::BadCode,
                "测点状态",
                "is not a status (0…255, or 8 binary digits)",
            )
        }
    };
    Ok(PointValue {
        code,
        type_name: f.text("传感器类型名称"),
        location: f.text("安装位置"),
        value,
        unit: f.text("单位"),
        status,
        data_ms: f.time("数据时间")?,
    })
}

fn anomaly(f: &Fields<'_>) -> Res<Anomaly> {
    let code = f.code("测点编码")?;
    let kind = match AnomalyKind::from_code(f.raw("异常类型")) {
        Some(k) => k,
        None => return f.refuse(RecordReason::BadCode, "异常类型", "is not 001…010"),
    };
    Ok(Anomaly {
        code,
        type_name: f.text("传感器类型名称"),
        location: f.text("安装位置"),
        unit: f.text("单位"),
        kind,
        start_ms: f.time("开始时间")?,
        end_ms: f.opt_time("结束时间")?,
        max: f.num("最大值")?,
        max_ms: f.opt_time("最大值时刻")?,
        min: f.num("最小值")?,
        min_ms: f.opt_time("最小值时刻")?,
        avg: f.num("平均值")?,
        cause: f.text("异常原因"),
        measure: f.text("处理措施"),
        entered_ms: f.opt_time("录入时间")?,
        entered_by: f.text("录入人"),
        data_ms: f.time("数据时间")?,
    })
}

fn substation(f: &Fields<'_>) -> Res<SubstationDef> {
    Ok(SubstationDef {
        code: f.code("分站编码")?,
        location: f.text("安装位置"),
        xyz: f.xyz()?,
        data_ms: f.time("数据时间")?,
    })
}

fn station_state(f: &Fields<'_>, code_field: &str) -> Res<StationState> {
    Ok(StationState {
        code: f.code(code_field)?,
        run: f.lookup("运行状态", tables::RUN_STATES)?,
        power: f.lookup("供电状态", tables::POWER_STATES)?,
        data_ms: f.time("数据时间")?,
    })
}

fn person(f: &Fields<'_>) -> Res<PersonRecord> {
    let card = f.code("人员卡编码")?;
    let flag = f.raw("出入井标志");
    if !tables::IN_OUT_FLAGS.iter().any(|e| e.0 == flag) {
        return f.refuse(RecordReason::BadCode, "出入井标志", "is not 0, 1 or 2");
    }
    Ok(PersonRecord {
        card,
        name: f.text("姓名"),
        underground: flag == tables::IN_OUT_UNDERGROUND,
        in_out_flag: flag.to_string(),
        entered_ms: f.opt_time("入井时刻")?,
        left_ms: f.opt_time("出井时刻")?,
        area: f.text("区域编码"),
        area_ms: f.opt_time("进入当前区域时刻")?,
        station: f.text("基站编码"),
        station_ms: f.opt_time("进入当前所处基站时刻")?,
        shift_mode: f.text("劳动组织方式"),
        distance_m: f.num("距离基站距离")?,
        work_status: f.text("人员工作状态"),
        is_leader: f.yes_no("是否矿领导")?,
        is_special: f.yes_no("是否特种人员")?,
        track: track(f)?,
    })
}

/// `基站&时间,基站&时间…`; an entry without `&` is a station with no time.
fn track(f: &Fields<'_>) -> Res<Vec<TrackPoint>> {
    let s = f.raw("行进轨迹");
    let mut points = Vec::new();
    for entry in s.split(tables::TRACK_SEP).map(str::trim) {
        if entry.is_empty() {
            continue;
        }
        let (station, at) = entry
            .split_once(tables::TRACK_PAIR_SEP)
            .unwrap_or((entry, ""));
        let at = at.trim();
        let at_ms = if at.is_empty() {
            None
        } else {
            match parse_local_time(at, f.offset) {
                Some(t) => Some(t),
                None => return f.refuse(RecordReason::BadTime, "行进轨迹", "has a bad time"),
            }
        };
        points.push(TrackPoint {
            station: station.trim().to_string(),
            at_ms,
        });
    }
    Ok(points)
}

fn base_station_def(f: &Fields<'_>) -> Res<BaseStationDef> {
    let code = f.code("基站编码")?;
    let documented = ["基站编码", "基站位置"];
    let rest = f
        .layout
        .fields
        .iter()
        .filter(|n| !documented.contains(n))
        .map(|n| f.text(n))
        .collect();
    Ok(BaseStationDef {
        code,
        location: f.text("基站位置"),
        rest,
    })
}

fn area(f: &Fields<'_>) -> Res<AreaDef> {
    let code = f.code("区域编码")?;
    let capacity = match f.raw("核定人数") {
        "" => None,
        s => match s.parse::<u32>() {
            Ok(n) => Some(n),
            Err(_) => return f.refuse(RecordReason::BadNumber, "核定人数", "is not a count"),
        },
    };
    Ok(AreaDef {
        code,
        kind: f.text("区域类型"),
        capacity,
        name: f.text("区域名称"),
    })
}
