//! What a site, device, system or token is, and what state it is declared in.
//! The names are the TOML values and the API's strings.

use serde::{Deserialize, Serialize};

/// See `gateway.on_damaged_file`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OnDamage {
    #[default]
    Refuse,
    MoveAside,
}

/// What a token may do. Each role can do what the one before it can, and more: `viewer`
/// reads sites, devices, alarms and endpoints; `operator` also acknowledges alarms;
/// `evaluator` also reads indicators and reports; `admin` also rejections and metrics.
/// `scrape` reads `/metrics` only; `platform` only pushes readings over HTTP
/// (`POST /api/v1/ingest/{site}`), for the sites that list its name in `platforms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Scrape,
    Platform,
    Viewer,
    Operator,
    Evaluator,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Scrape => "scrape",
            Role::Platform => "platform",
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Evaluator => "evaluator",
            Role::Admin => "admin",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SiteKind {
    Park,
    Mine,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum SiteStatus {
    #[default]
    Active,
    Suspended,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum PlatformStatus {
    #[default]
    None,
    Building,
    Built,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SystemKind {
    SlopeMonitoring,
    VideoMonitoring,
    AiVideo,
    MajorHazard,
    Positioning,
}

impl SystemKind {
    pub const ALL: [SystemKind; 5] = [
        SystemKind::SlopeMonitoring,
        SystemKind::VideoMonitoring,
        SystemKind::AiVideo,
        SystemKind::MajorHazard,
        SystemKind::Positioning,
    ];
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum UnitStatus {
    Planned,
    #[default]
    Built,
    Suspended,
}

impl UnitStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            UnitStatus::Planned => "planned",
            UnitStatus::Built => "built",
            UnitStatus::Suspended => "suspended",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceKind {
    /// Combustible gas, %LEL.
    GasCombustible,
    /// Toxic gas, ppm; `gas` names which.
    GasToxic,
    /// Methane, %CH4.
    Methane,
    /// Carbon monoxide, ppm.
    CarbonMonoxide,
    /// °C.
    Temperature,
    /// m.
    WaterLevel,
    /// mm.
    SlopeDisplacement,
    /// J.
    Microseismic,
    /// MPa.
    RoofPressure,
    Positioning,
    Video,
    /// Wind speed, m/s (a coal mine's 风速 sensor).
    WindSpeed,
    /// Oxygen, %.
    Oxygen,
    /// Carbon dioxide, %.
    CarbonDioxide,
    /// An on/off or multi-state point (fans, dampers, power feed: 开关量 `KG`, 多态 `DT`).
    Switch,
    /// A cumulative point (累计量 `LJ`: flow, volume).
    Cumulative,
    /// A monitored point of a kind the gateway has no name for (a mine's other sensor types).
    Other,
}

impl DeviceKind {
    pub const ALL: [DeviceKind; 17] = [
        DeviceKind::GasCombustible,
        DeviceKind::GasToxic,
        DeviceKind::Methane,
        DeviceKind::CarbonMonoxide,
        DeviceKind::Temperature,
        DeviceKind::WaterLevel,
        DeviceKind::SlopeDisplacement,
        DeviceKind::Microseismic,
        DeviceKind::RoofPressure,
        DeviceKind::Positioning,
        DeviceKind::Video,
        DeviceKind::WindSpeed,
        DeviceKind::Oxygen,
        DeviceKind::CarbonDioxide,
        DeviceKind::Switch,
        DeviceKind::Cumulative,
        DeviceKind::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DeviceKind::GasCombustible => "gas_combustible",
            DeviceKind::GasToxic => "gas_toxic",
            DeviceKind::Methane => "methane",
            DeviceKind::CarbonMonoxide => "carbon_monoxide",
            DeviceKind::Temperature => "temperature",
            DeviceKind::WaterLevel => "water_level",
            DeviceKind::SlopeDisplacement => "slope_displacement",
            DeviceKind::Microseismic => "microseismic",
            DeviceKind::RoofPressure => "roof_pressure",
            DeviceKind::Positioning => "positioning",
            DeviceKind::Video => "video",
            DeviceKind::WindSpeed => "wind_speed",
            DeviceKind::Oxygen => "oxygen",
            DeviceKind::CarbonDioxide => "carbon_dioxide",
            DeviceKind::Switch => "switch",
            DeviceKind::Cumulative => "cumulative",
            DeviceKind::Other => "other",
        }
    }

    pub fn parse(s: &str) -> Option<DeviceKind> {
        DeviceKind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// The unit of the kind's main channel, for display.
    pub fn unit(self) -> &'static str {
        match self {
            DeviceKind::GasCombustible => "%LEL",
            DeviceKind::GasToxic | DeviceKind::CarbonMonoxide => "ppm",
            DeviceKind::Methane => "%CH4",
            DeviceKind::Temperature => "°C",
            DeviceKind::WaterLevel => "m",
            DeviceKind::SlopeDisplacement => "mm",
            DeviceKind::Microseismic => "J",
            DeviceKind::RoofPressure => "MPa",
            DeviceKind::WindSpeed => "m/s",
            DeviceKind::Oxygen | DeviceKind::CarbonDioxide => "%",
            DeviceKind::Positioning
            | DeviceKind::Video
            | DeviceKind::Switch
            | DeviceKind::Cumulative
            | DeviceKind::Other => "",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    Mqtt,
    Modbus,
    /// A coal mine's networking files (CDDY/CDSS…), uploaded by FTP or dropped in a folder.
    MineFiles,
    /// GB/T 28181 video signalling (SIP REGISTER, keepalives, catalogs): an NVR, camera or
    /// lower platform with a `gb_id`, or a channel its catalog declared (docs/video.md).
    Gb28181,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Mqtt => "mqtt",
            Protocol::Modbus => "modbus",
            Protocol::MineFiles => "mine_files",
            Protocol::Gb28181 => "gb28181",
        }
    }
}

/// How levels are named: 一级/二级, or 蓝/黄/橙/红.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Scheme {
    #[default]
    TwoLevel,
    FourColour,
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::TwoLevel => "two_level",
            Scheme::FourColour => "four_colour",
        }
    }

    pub fn max_levels(self) -> usize {
        match self {
            Scheme::TwoLevel => 2,
            Scheme::FourColour => 4,
        }
    }

    /// The level's name as operators say it.
    pub fn level_name(self, level: u8) -> &'static str {
        match (self, level) {
            (Scheme::TwoLevel, 1) => "一级",
            (Scheme::TwoLevel, _) => "二级",
            (Scheme::FourColour, 1) => "蓝",
            (Scheme::FourColour, 2) => "黄",
            (Scheme::FourColour, 3) => "橙",
            (Scheme::FourColour, _) => "红",
        }
    }

    pub fn parse(s: &str) -> Option<Scheme> {
        match s {
            "two_level" => Some(Scheme::TwoLevel),
            "four_colour" => Some(Scheme::FourColour),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AlarmType {
    /// A reading crossed a level threshold.
    Value,
    /// The rate of change over a sliding window crossed a level (slope displacement).
    Rate,
    /// A built device went silent past its `offline_after_s`.
    Offline,
    /// A reading with status fault (a device self-test, a Modbus fault bit).
    Fault,
    /// A video device's own alarm notification (GB/T 28181 `Notify` `Alarm`).
    Video,
}

impl AlarmType {
    pub const ALL: [AlarmType; 5] = [
        AlarmType::Value,
        AlarmType::Rate,
        AlarmType::Offline,
        AlarmType::Fault,
        AlarmType::Video,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            AlarmType::Value => "value",
            AlarmType::Rate => "rate",
            AlarmType::Offline => "offline",
            AlarmType::Fault => "fault",
            AlarmType::Video => "video",
        }
    }
    pub fn parse(s: &str) -> Option<AlarmType> {
        AlarmType::ALL.into_iter().find(|t| t.as_str() == s)
    }
}
