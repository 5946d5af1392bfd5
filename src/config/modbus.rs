//! `[devices.modbus]`: how the gateway polls one Modbus device, and its register map.
//!
//! Validation of these maps (overlaps, types that do not fit their table, addresses past
//! 65535, endpoint settings that disagree) lives in `validate.rs` with the rest.

use serde::Deserialize;

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
