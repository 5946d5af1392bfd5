//! Every table of the format in one place: each file type's header and record fields (by their
//! Chinese names, in file order), the sensor type codes, the point status bits, the anomaly
//! codes, the run and power states and the personnel flags. A regional variant (another field
//! order, an extra field, another code) is a change here: the record builders look fields up by
//! name, not by position.
//!
//! Sources: 煤安监办〔2019〕42号 附件2, MT/T 1201.1-2023 (安全监控) and MT/T 1201.3-2023 (井下人员
//!位置); see docs/mine-files.md ("File format") for what each table rests on.

use super::name::FileType;
use super::records::{AnomalyKind, PowerState, RunState, ValueType};
use crate::model::DeviceKind;

/// One file type's layout: the header's fields and each record's fields, in file order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    pub file_type: FileType,
    /// The name's TYPE part (`CDDY`).
    pub code: &'static str,
    /// What the file holds, in Chinese, for messages and docs.
    pub zh: &'static str,
    /// The header's fields: the first is the mine code, the second its name; the data time is
    /// the last of these. A header may carry more fields after them (kept, not read).
    pub header: &'static [&'static str],
    /// The fields of every record; a record with another count is refused.
    pub fields: &'static [&'static str],
    /// A real-time file (a snapshot taken every few seconds), as opposed to a definition file.
    pub realtime: bool,
}

/// The header of most files.
const HEADER_SHORT: &[&str] = &["矿井编码", "矿井名称", "数据时间"];

/// The header of the point definitions (CDDY).
const HEADER_CDDY: &[&str] = &[
    "矿井编码",
    "矿井名称",
    "系统型号",
    "系统名称",
    "生产厂家",
    "安标有效期",
    "数据时间",
];

const FIELDS_CDDY: &[&str] = &[
    "测点编码",
    "系统编码",
    "分站编码",
    "传感器类型",
    "数值类型",
    "单位",
    "高量程",
    "低量程",
    "上限报警门限",
    "上限解报门限",
    "下限报警门限",
    "下限解报门限",
    "上限断电门限",
    "上限复电门限",
    "下限断电门限",
    "下限复电门限",
    "开描述",
    "停描述",
    "安装位置",
    "X",
    "Y",
    "Z",
    "传感器关联关系",
    "数据时间",
];

const FIELDS_CDSS: &[&str] = &[
    "测点编码",
    "传感器类型名称",
    "安装位置",
    "监测值",
    "单位",
    "测点状态",
    "数据时间",
];

const FIELDS_YCBJ: &[&str] = &[
    "测点编码",
    "传感器类型名称",
    "安装位置",
    "单位",
    "异常类型",
    "开始时间",
    "结束时间",
    "最大值",
    "最大值时刻",
    "最小值",
    "最小值时刻",
    "平均值",
    "异常原因",
    "处理措施",
    "录入时间",
    "录入人",
    "数据时间",
];

const FIELDS_FZDY: &[&str] = &["分站编码", "安装位置", "X", "Y", "Z", "数据时间"];

const FIELDS_FZSS: &[&str] = &["分站编码", "运行状态", "供电状态", "数据时间"];

const FIELDS_JZSS: &[&str] = &["基站编码", "运行状态", "供电状态", "数据时间"];

/// 人员实时数据 (MT/T 1201.3-2023): 15 fields.
const FIELDS_RYSS: &[&str] = &[
    "人员卡编码",
    "姓名",
    "出入井标志",
    "入井时刻",
    "出井时刻",
    "区域编码",
    "进入当前区域时刻",
    "基站编码",
    "进入当前所处基站时刻",
    "劳动组织方式",
    "距离基站距离",
    "人员工作状态",
    "是否矿领导",
    "是否特种人员",
    "行进轨迹",
];

/// 基站定义: 6 fields, of which only the first two are documented in what was read (see the
/// docs); the other four are kept as they are.
const FIELDS_RYJZ: &[&str] = &["基站编码", "基站位置", "字段3", "字段4", "字段5", "字段6"];

/// 区域定义: 4 fields.
const FIELDS_RYQY: &[&str] = &["区域类型", "区域编码", "核定人数", "区域名称"];

const CDDY: Layout = layout(
    FileType::Cddy,
    "CDDY",
    "测点定义",
    HEADER_CDDY,
    FIELDS_CDDY,
    false,
);
const CDSS: Layout = layout(
    FileType::Cdss,
    "CDSS",
    "测点实时数据",
    HEADER_SHORT,
    FIELDS_CDSS,
    true,
);
const YCBJ: Layout = layout(
    FileType::Ycbj,
    "YCBJ",
    "异常报警",
    HEADER_SHORT,
    FIELDS_YCBJ,
    false,
);
const FZDY: Layout = layout(
    FileType::Fzdy,
    "FZDY",
    "分站定义",
    HEADER_SHORT,
    FIELDS_FZDY,
    false,
);
const FZSS: Layout = layout(
    FileType::Fzss,
    "FZSS",
    "分站实时状态",
    HEADER_SHORT,
    FIELDS_FZSS,
    true,
);
const JZSS: Layout = layout(
    FileType::Jzss,
    "JZSS",
    "基站实时状态",
    HEADER_SHORT,
    FIELDS_JZSS,
    true,
);
const RYSS: Layout = layout(
    FileType::Ryss,
    "RYSS",
    "人员实时数据",
    HEADER_SHORT,
    FIELDS_RYSS,
    true,
);
const RYJZ: Layout = layout(
    FileType::Ryjz,
    "RYJZ",
    "基站定义",
    HEADER_SHORT,
    FIELDS_RYJZ,
    false,
);
const RYQY: Layout = layout(
    FileType::Ryqy,
    "RYQY",
    "区域定义",
    HEADER_SHORT,
    FIELDS_RYQY,
    false,
);

/// Every supported file type's layout.
pub const LAYOUTS: &[Layout] = &[CDDY, CDSS, YCBJ, FZDY, FZSS, JZSS, RYSS, RYJZ, RYQY];

const fn layout(
    file_type: FileType,
    code: &'static str,
    zh: &'static str,
    header: &'static [&'static str],
    fields: &'static [&'static str],
    realtime: bool,
) -> Layout {
    Layout {
        file_type,
        code,
        zh,
        header,
        fields,
        realtime,
    }
}

/// The layout of a file type.
pub fn layout_of(file_type: FileType) -> &'static Layout {
    match file_type {
        FileType::Cddy => &CDDY,
        FileType::Cdss => &CDSS,
        FileType::Ycbj => &YCBJ,
        FileType::Fzdy => &FZDY,
        FileType::Fzss => &FZSS,
        FileType::Jzss => &JZSS,
        FileType::Ryss => &RYSS,
        FileType::Ryjz => &RYJZ,
        FileType::Ryqy => &RYQY,
    }
}

/// A numeric field with this value has no valid value (`None`); so has an empty one.
pub const NO_VALUE: f64 = -9999.0;

/// The record separator, the field separator, the end of the file, and the full-width
/// separator some editors put in (refused).
pub const RECORD_END: char = '~';
pub const FIELD_SEP: char = ';';
pub const FILE_END: &str = "||";
pub const FULL_WIDTH_SEP: char = '；';

/// The longest record code (测点编码, 分站编码…) accepted; national codes are about 20.
pub const CODE_MAX_CHARS: usize = 64;

/// 数值类型.
pub const VALUE_TYPES: &[(&str, ValueType)] = &[
    ("MN", ValueType::Analog),
    ("KG", ValueType::Switch),
    ("LJ", ValueType::Cumulative),
    ("DT", ValueType::MultiState),
];

/// 传感器类型 (MT/T 1201.1-2023 数据字典): code, Chinese name, and the gateway's kind for an
/// analog point of it (`Other` where the gateway has no kind of its own). A point's 数值类型
/// decides first: KG/DT are `Switch`, LJ `Cumulative` whatever the sensor type.
pub const SENSOR_TYPES: &[(&str, &str, DeviceKind)] = &[
    ("0001", "环境瓦斯", DeviceKind::Methane),
    ("0002", "风速", DeviceKind::WindSpeed),
    ("0003", "环境温度", DeviceKind::Temperature),
    ("0004", "一氧化碳", DeviceKind::CarbonMonoxide),
    ("0005", "风压", DeviceKind::Other),
    ("0006", "负压", DeviceKind::Other),
    ("0007", "水池水位", DeviceKind::Other),
    ("0008", "煤位", DeviceKind::Other),
    ("0009", "硫化氢", DeviceKind::Other),
    ("0010", "水温度", DeviceKind::Other),
    ("0011", "高低浓度瓦斯", DeviceKind::Methane),
    ("0012", "氧气", DeviceKind::Oxygen),
    ("0013", "二氧化碳", DeviceKind::CarbonDioxide),
    ("0014", "粉尘", DeviceKind::Other),
    ("0015", "电压", DeviceKind::Other),
    ("0016", "频率", DeviceKind::Other),
    ("0017", "电流", DeviceKind::Other),
    ("0018", "湿度", DeviceKind::Other),
    ("0019", "风量", DeviceKind::Other),
    ("0020", "顶板离层位移", DeviceKind::Other),
    ("0021", "坝体位移", DeviceKind::Other),
    ("0022", "管道瓦斯", DeviceKind::Other),
    ("0023", "管道温度", DeviceKind::Other),
    ("0024", "水质", DeviceKind::Other),
    ("0025", "管道压力", DeviceKind::Other),
    ("0026", "轴承温度", DeviceKind::Other),
    ("0027", "噪声", DeviceKind::Other),
    ("0028", "电机温度", DeviceKind::Other),
    ("0029", "水库水位", DeviceKind::Other),
    ("0030", "浸润线", DeviceKind::Other),
    ("0031", "降雨量", DeviceKind::Other),
    ("0032", "液压压力", DeviceKind::Other),
    ("0033", "围岩应力", DeviceKind::Other),
    ("0034", "钻孔应力", DeviceKind::Other),
    ("0035", "锚杆应力", DeviceKind::Other),
    ("0036", "混合瓦斯流量", DeviceKind::Other),
    ("0037", "纯瓦斯流量", DeviceKind::Other),
    ("0038", "管道一氧化碳", DeviceKind::Other),
    ("0039", "氢气", DeviceKind::Other),
    ("0040", "管道流量", DeviceKind::Other),
    ("0041", "二氧化氮", DeviceKind::Other),
    ("0042", "二氧化硫", DeviceKind::Other),
    ("0043", "激光甲烷", DeviceKind::Methane),
    ("0044", "氨气", DeviceKind::Other),
    ("0045", "氮气", DeviceKind::Other),
    ("0046", "乙烯", DeviceKind::Other),
    ("0047", "乙烷", DeviceKind::Other),
    ("0048", "压强", DeviceKind::Other),
    ("0049", "液位", DeviceKind::Other),
    ("0050", "物位", DeviceKind::Other),
    ("0051", "开度", DeviceKind::Other),
    ("0052", "高度", DeviceKind::Other),
    ("0053", "流量", DeviceKind::Other),
    ("1001", "局部通风机", DeviceKind::Switch),
    ("1002", "风门", DeviceKind::Switch),
    ("1003", "风筒状态", DeviceKind::Switch),
    ("1004", "设备开停", DeviceKind::Switch),
    ("1005", "开关", DeviceKind::Switch),
    ("1006", "风向", DeviceKind::Switch),
    ("1007", "煤仓空满", DeviceKind::Switch),
    ("1008", "烟雾", DeviceKind::Switch),
    ("1009", "断电器", DeviceKind::Switch),
    ("1010", "主通风机", DeviceKind::Switch),
    ("1011", "馈电器", DeviceKind::Switch),
    ("1012", "声光报警器", DeviceKind::Switch),
    ("1013", "计量开停控制器", DeviceKind::Switch),
    ("1014", "控制量", DeviceKind::Switch),
    ("1015", "馈电", DeviceKind::Switch),
    ("3001", "产量", DeviceKind::Cumulative),
    ("3002", "瓦斯抽放量", DeviceKind::Cumulative),
    ("3003", "排水量", DeviceKind::Cumulative),
    ("3004", "钩数", DeviceKind::Cumulative),
    ("3005", "水流量", DeviceKind::Cumulative),
    ("4001", "分站", DeviceKind::Other),
    ("4002", "电源状态", DeviceKind::Other),
];

/// 测点状态 bits (0 is 正常: no bit set).
pub const STATUS_BITS: &[(u16, &str)] = &[
    (1, "报警"),
    (2, "断电"),
    (4, "标校"),
    (8, "超量程"),
    (16, "分站故障"),
    (32, "不巡检"),
    (64, "暂停"),
    (128, "传感器故障"),
];

/// The name of status 0.
pub const STATUS_NORMAL: &str = "正常";

/// The highest status a record may carry (all defined bits set).
pub const STATUS_MAX: u16 = 255;

/// 异常类型: code (leading zeros optional), kind, snake_case name, Chinese name.
pub const ANOMALY_KINDS: &[(u16, AnomalyKind, &str, &str)] = &[
    (1, AnomalyKind::OverLimit, "over_limit", "超限报警"),
    (2, AnomalyKind::CutOff, "cut_off", "断电报警"),
    (3, AnomalyKind::FeedAbnormal, "feed_abnormal", "馈电异常"),
    (
        4,
        AnomalyKind::SensorDisconnected,
        "sensor_disconnected",
        "传感器断线",
    ),
    (
        5,
        AnomalyKind::StationPowerOff,
        "station_power_off",
        "基站断电",
    ),
    (
        6,
        AnomalyKind::StationUnreachable,
        "station_unreachable",
        "基站不通",
    ),
    (7, AnomalyKind::Calibrating, "calibrating", "标校"),
    (8, AnomalyKind::OverRange, "over_range", "超量程"),
    (
        9,
        AnomalyKind::OverUpperWarning,
        "over_upper_warning",
        "超上限预警",
    ),
    (
        10,
        AnomalyKind::UnderLowerWarning,
        "under_lower_warning",
        "超下限预警",
    ),
];

/// 运行状态 of a substation (FZSS) or a base station (JZSS).
pub const RUN_STATES: &[(&str, RunState, &str)] = &[
    ("0", RunState::Normal, "通信正常"),
    ("1", RunState::CommInterrupted, "通信中断"),
    ("2", RunState::Fault, "故障"),
    ("9", RunState::Unknown, "未知"),
];

/// 供电状态 of a substation (FZSS) or a base station (JZSS).
pub const POWER_STATES: &[(&str, PowerState, &str)] = &[
    ("0", PowerState::Dc, "直流供电"),
    ("1", PowerState::Ac, "交流供电"),
    ("2", PowerState::PowerFault, "电源故障"),
    ("9", PowerState::Unknown, "未知"),
];

/// 出入井标志 (RYSS): the codes accepted, and the one meaning the person is underground.
pub const IN_OUT_FLAGS: &[(&str, &str)] = &[("0", "井口"), ("1", "入井"), ("2", "出井")];
pub const IN_OUT_UNDERGROUND: &str = "1";

/// 是否矿领导 / 是否特种人员 (RYSS).
pub const YES_NO: &[(&str, bool)] = &[("0", false), ("1", true)];

/// 行进轨迹 (RYSS): `基站&时间,基站&时间…`.
pub const TRACK_SEP: char = ',';
pub const TRACK_PAIR_SEP: char = '&';
