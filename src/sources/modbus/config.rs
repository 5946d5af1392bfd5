//! `[devices.modbus]`: how the gateway polls one Modbus device, and its register map.
//!
//! Its validation (overlaps, types that do not fit their table, addresses past 65535, link
//! settings out of range) is here too; settings shared by devices on one endpoint are
//! compared by the configuration, which sees them all.

use crate::model::id_problem;
use serde::Deserialize;
use std::collections::HashMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Transport {
    /// Modbus TCP (MBAP framing) to `address`.
    Tcp,
    /// RTU framing on a serial line (`serial`, `baud`, …).
    Rtu,
    /// RTU framing through a TCP serial server at `address`.
    RtuOverTcp,
}

impl Transport {
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Tcp => "tcp",
            Transport::Rtu => "rtu",
            Transport::RtuOverTcp => "rtu_over_tcp",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, serde::Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Parity {
    #[default]
    None,
    Even,
    Odd,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Table {
    /// Function 03, 16-bit words.
    Holding,
    /// Function 04, 16-bit words.
    Input,
    /// Function 01, bits.
    Coil,
    /// Function 02, bits.
    Discrete,
}

impl Table {
    pub fn is_bits(self) -> bool {
        matches!(self, Table::Coil | Table::Discrete)
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Table::Holding => "holding",
            Table::Input => "input",
            Table::Coil => "coil",
            Table::Discrete => "discrete",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DataType {
    U16,
    I16,
    U32,
    I32,
    F32,
    Bool,
}

impl DataType {
    /// How many 16-bit registers (or bits, for `bool`) the value occupies.
    pub fn width(self) -> u16 {
        match self {
            DataType::U16 | DataType::I16 | DataType::Bool => 1,
            DataType::U32 | DataType::I32 | DataType::F32 => 2,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            DataType::U16 => "u16",
            DataType::I16 => "i16",
            DataType::U32 => "u32",
            DataType::I32 => "i32",
            DataType::F32 => "f32",
            DataType::Bool => "bool",
        }
    }
}

/// Which 16-bit word of a 32-bit value comes first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, serde::Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum WordOrder {
    /// High word at the lower address (Modbus convention, "ABCD").
    #[default]
    Big,
    /// Low word first ("CDAB").
    Little,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RegisterConfig {
    /// Name of the reading's value (`lel`, `temp`, …).
    pub channel: String,
    pub table: Table,
    /// 0-based protocol address (0…65535).
    pub address: u32,
    #[serde(rename = "type")]
    pub data_type: DataType,
    /// Default big.
    #[serde(default)]
    pub word_order: WordOrder,
    /// Swap the two bytes of every word ("BADC" / "DCBA"). Default false.
    #[serde(default)]
    pub byte_swap: bool,
    /// value = raw × scale + offset. Default 1.0.
    #[serde(default = "one")]
    pub scale: f64,
    /// Default 0.0.
    #[serde(default)]
    pub offset: f64,
}

fn one() -> f64 {
    1.0
}

/// A register (or bit) whose set bits in `fault_mask` mark the reading as `fault`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StatusConfig {
    pub table: Table,
    pub address: u32,
    /// Default 0xFFFF: any bit set is a fault (for a coil or discrete input: the bit set).
    #[serde(default = "all_bits")]
    pub fault_mask: u16,
}

fn all_bits() -> u16 {
    0xFFFF
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ModbusConfig {
    pub transport: Transport,
    /// `host:port`, for `tcp` and `rtu_over_tcp`.
    #[serde(default)]
    pub address: Option<String>,
    /// Serial device path, for `rtu`.
    #[serde(default)]
    pub serial: Option<String>,
    /// Default 9600.
    #[serde(default = "default_baud")]
    pub baud: u32,
    /// Default none.
    #[serde(default)]
    pub parity: Parity,
    /// 5…8, default 8.
    #[serde(default = "default_data_bits")]
    pub data_bits: u8,
    /// 1 or 2, default 1.
    #[serde(default = "default_stop_bits")]
    pub stop_bits: u8,
    /// Unit (slave) id, 0…247. Default 1.
    #[serde(default = "default_unit")]
    pub unit: u8,
    /// Poll period in seconds; default the device's `interval_s`.
    #[serde(default)]
    pub poll_s: Option<f64>,
    /// Bound on every request (and on connecting). Default 1000 ms.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Extra attempts of a request after a connection error (reset, broken pipe) within one
    /// poll, once reconnected. Timeouts are never retried within a poll. Default 1.
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// Ranges at most this many registers (or bits) apart are read in one request (the gap
    /// is read and discarded).
    /// Default 8.
    #[serde(default = "default_max_gap")]
    pub max_gap: u16,
    /// Longest interval between polls of a unit that keeps failing. Default 30 s.
    #[serde(default = "default_backoff_max")]
    pub backoff_max_s: f64,
    pub registers: Vec<RegisterConfig>,
    #[serde(default)]
    pub status: Option<StatusConfig>,
}

fn default_baud() -> u32 {
    9600
}
fn default_data_bits() -> u8 {
    8
}
fn default_stop_bits() -> u8 {
    1
}
fn default_unit() -> u8 {
    1
}
fn default_timeout_ms() -> u64 {
    1000
}
fn default_retries() -> u32 {
    1
}
fn default_max_gap() -> u16 {
    8
}
fn default_backoff_max() -> f64 {
    30.0
}

impl ModbusConfig {
    /// The shared link this device is reached through: devices with the same key share one
    /// connection and their requests are serialized.
    pub fn endpoint_key(&self) -> String {
        match self.transport {
            Transport::Tcp => format!("tcp://{}", self.address.as_deref().unwrap_or("")),
            Transport::RtuOverTcp => {
                format!("rtu+tcp://{}", self.address.as_deref().unwrap_or(""))
            }
            Transport::Rtu => format!("rtu://{}", self.serial.as_deref().unwrap_or("")),
        }
    }
}

impl crate::core::inventory::ProtocolSection for ModbusConfig {
    fn first_channel(&self) -> Option<&str> {
        self.registers.first().map(|r| r.channel.as_str())
    }
}

// The map's own rules, checked by `check-config` and at start for every Modbus device.

/// Longest Modbus poll period and back-off: a day.
const MAX_PERIOD_S: f64 = 86_400.0;

/// Problems in one device's Modbus settings and register map, as (key under `modbus.`, message).
pub fn modbus_problems(m: &ModbusConfig, interval_s: f64) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut err = |k: &str, msg: String| out.push((k.to_string(), msg));
    link_problems(m, interval_s, &mut err);
    register_problems(m, &mut err);
    out
}

/// The transport, serial settings, unit, poll period, timeout, retries and back-off.
fn link_problems(m: &ModbusConfig, interval_s: f64, err: &mut dyn FnMut(&str, String)) {
    match m.transport {
        Transport::Tcp | Transport::RtuOverTcp => {
            match m.address.as_deref() {
                None => err(
                    "address",
                    format!(
                        "transport {:?} needs address = \"host:port\"",
                        m.transport.as_str()
                    ),
                ),
                Some(a) => {
                    let ok = a.rsplit_once(':').is_some_and(|(h, p)| {
                        !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0)
                    });
                    if !ok {
                        err(
                            "address",
                            format!("{a:?} must look like host:port (port 1…65535)"),
                        );
                    }
                }
            }
            if m.serial.is_some() {
                err(
                    "serial",
                    format!(
                        "transport {:?} takes address, not serial",
                        m.transport.as_str()
                    ),
                );
            }
        }
        Transport::Rtu => {
            if m.serial.as_deref().is_none_or(str::is_empty) {
                err(
                    "serial",
                    "transport \"rtu\" needs serial = \"/dev/ttyUSB0\" (the serial device)".into(),
                );
            }
            if m.address.is_some() {
                err("address", "transport \"rtu\" takes serial, not address (for a serial server use rtu_over_tcp)".into());
            }
        }
    }
    if m.baud == 0 {
        err("baud", "must be positive".into());
    }
    if !(5..=8).contains(&m.data_bits) {
        err("data_bits", format!("{} is not 5, 6, 7 or 8", m.data_bits));
    }
    if !(1..=2).contains(&m.stop_bits) {
        err("stop_bits", format!("{} is not 1 or 2", m.stop_bits));
    }
    if m.unit > 247 {
        err(
            "unit",
            format!("{} is past 247, the highest unit id", m.unit),
        );
    }
    if let Some(p) = m.poll_s {
        if !(p.is_finite() && p > 0.0 && p <= MAX_PERIOD_S) {
            err(
                "poll_s",
                format!(
                    "must be a positive number of seconds up to {MAX_PERIOD_S} (a day), not {p}"
                ),
            );
        }
    }
    let poll_s = m.poll_s.unwrap_or(interval_s);
    if m.timeout_ms == 0 {
        err("timeout_ms", "must be positive".into());
    } else if poll_s.is_finite() && poll_s > 0.0 && m.timeout_ms as f64 > poll_s * 1000.0 {
        err(
            "timeout_ms",
            format!(
                "{} ms is longer than the poll period ({poll_s} s): one slow answer would make the device miss its period",
                m.timeout_ms
            ),
        );
    }
    if m.retries > 5 {
        err("retries", format!("{} is more than 5", m.retries));
    }
    if !(m.backoff_max_s.is_finite()
        && m.backoff_max_s >= poll_s
        && m.backoff_max_s <= MAX_PERIOD_S)
    {
        err(
            "backoff_max_s",
            format!(
                "{} must be a number of seconds not below the poll period ({poll_s} s) and at most {MAX_PERIOD_S}",
                m.backoff_max_s
            ),
        );
    }
}

/// The register map: each register's table, address, type and channel, the status register,
/// and overlaps between registers.
fn register_problems(m: &ModbusConfig, err: &mut dyn FnMut(&str, String)) {
    if m.registers.is_empty() {
        err(
            "registers",
            "a modbus device needs at least one register".into(),
        );
    }
    // (table, first, last, index) of every valid register, for the overlap check.
    let mut spans: Vec<(Table, u32, u32, usize)> = Vec::new();
    let mut channels: HashMap<&str, usize> = HashMap::new();
    for (i, r) in m.registers.iter().enumerate() {
        let key = |f: &str| format!("registers[{i}].{f}");
        if let Some(p) = id_problem(&r.channel) {
            err(&key("channel"), p.replace("id", "channel"));
        }
        if crate::core::RESERVED_CHANNELS.contains(&r.channel.as_str()) {
            err(
                &key("channel"),
                format!(
                    "{:?} is a field the gateway writes itself; name the channel otherwise",
                    r.channel
                ),
            );
        }
        if let Some(first) = channels.insert(&r.channel, i) {
            err(
                &key("channel"),
                format!(
                    "channel {:?} is already read by registers[{first}]",
                    r.channel
                ),
            );
        }
        let bits = r.table.is_bits();
        match (bits, r.data_type) {
            (true, DataType::Bool) | (false, _) => {}
            (true, t) => err(
                &key("type"),
                format!(
                    "a {} holds single bits: its type can only be bool, not {}",
                    r.table.as_str(),
                    t.as_str()
                ),
            ),
        }
        if bits && (r.word_order != Default::default() || r.byte_swap) {
            err(
                &key("word_order"),
                format!(
                    "word_order and byte_swap mean nothing for a {}",
                    r.table.as_str()
                ),
            );
        }
        if r.data_type.width() == 1 && r.word_order != Default::default() {
            err(
                &key("word_order"),
                format!(
                    "a {} is one word: word_order does not apply",
                    r.data_type.as_str()
                ),
            );
        }
        let last = r.address + r.data_type.width() as u32 - 1;
        if last > 65_535 {
            err(
                &key("address"),
                format!(
                    "{} {} at {} ends at {last}, past 65535, the last Modbus address",
                    r.data_type.as_str(),
                    r.table.as_str(),
                    r.address
                ),
            );
            continue;
        }
        if !(r.scale.is_finite() && r.scale != 0.0) {
            err(
                &key("scale"),
                format!("must be a finite non-zero number, not {}", r.scale),
            );
        }
        if !r.offset.is_finite() {
            err(&key("offset"), format!("must be finite, not {}", r.offset));
        }
        spans.push((r.table, r.address, last, i));
    }
    if let Some(s) = &m.status {
        if s.address > 65_535 {
            err(
                "status.address",
                format!("{} is past 65535, the last Modbus address", s.address),
            );
        } else {
            spans.push((s.table, s.address, s.address, usize::MAX));
        }
        if s.fault_mask == 0 {
            err("status.fault_mask", "0 would never mark a fault".into());
        }
    }
    spans.sort_by_key(|&(t, a, _, _)| (t.as_str(), a));
    for w in spans.windows(2) {
        let (t0, _, last0, i0) = w[0];
        let (t1, first1, _, i1) = w[1];
        if t0 == t1 && first1 <= last0 {
            let name = |i: usize| {
                if i == usize::MAX {
                    "status".to_string()
                } else {
                    format!("registers[{i}]")
                }
            };
            err(
                &format!("{}.address", name(i1)),
                format!(
                    "overlaps {}: {} address {first1} would be read by both",
                    name(i0),
                    t1.as_str()
                ),
            );
        }
    }
}
