//! What can go wrong polling a Modbus device, worded for the operator who must fix it.
//! Three families, counted apart: timeouts (no answer in time), transport errors (the link
//! itself: refused, reset, garbled), and exceptions (the device answered, and refused).

use tokio_modbus::ExceptionCode;

#[derive(Debug, thiserror::Error)]
pub enum ModbusError {
    #[error("cannot connect to {endpoint}: {source} (is the device or serial server powered, reachable and listening on that port?)")]
    Connect {
        endpoint: String,
        source: std::io::Error,
    },
    #[error("cannot open serial port {path}: {source} (check the device path, that no other program holds it, and permissions)")]
    Serial {
        path: String,
        source: tokio_serial::Error,
    },
    #[error("not connected to {endpoint} (reconnecting, next attempt in {retry_in_ms} ms)")]
    NotConnected { endpoint: String, retry_in_ms: u64 },
    #[error("unit {unit} did not answer {what} within {timeout_ms} ms (check the unit id, wiring and line settings; a unit that keeps failing is polled less often until it answers)")]
    Timeout {
        unit: u8,
        what: String,
        timeout_ms: u64,
    },
    #[error("the link to {endpoint} failed while reading {what} from unit {unit}: {detail} (the connection was closed, reset or garbled; reconnecting)")]
    Transport {
        endpoint: String,
        unit: u8,
        what: String,
        detail: String,
    },
    #[error("unit {unit} answered {what} with exception 0x{code:02x} ({}): {}", exception_name(*code), exception_hint(*code))]
    Exception { unit: u8, what: String, code: u8 },
    #[error("unit {unit} answered {what} with {got} values, {expected} were asked for")]
    ShortAnswer {
        unit: u8,
        what: String,
        got: usize,
        expected: usize,
    },
}

/// How a failure is counted and whether the connection survives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Timeout,
    Transport,
    Exception,
}

impl ModbusError {
    pub fn kind(&self) -> Kind {
        match self {
            ModbusError::Timeout { .. } => Kind::Timeout,
            ModbusError::Exception { .. } => Kind::Exception,
            _ => Kind::Transport,
        }
    }
}

pub fn exception_code(e: ExceptionCode) -> u8 {
    u8::from(e)
}

pub fn exception_name(code: u8) -> &'static str {
    match code {
        0x01 => "illegal function",
        0x02 => "illegal data address",
        0x03 => "illegal data value",
        0x04 => "server device failure",
        0x05 => "acknowledge",
        0x06 => "server device busy",
        0x08 => "memory parity error",
        0x0A => "gateway path unavailable",
        0x0B => "gateway target device failed to respond",
        _ => "non-standard exception",
    }
}

fn exception_hint(code: u8) -> &'static str {
    match code {
        0x01 => "the device does not serve this table; check `table` in the register map",
        0x02 => "the device has no register there; check `address` and `type` (0-based addresses: register 40001 is holding address 0)",
        0x03 => "the device refuses a request this long; lower `max_gap` so fewer registers are read at once",
        0x04 | 0x08 => "the device reports an internal fault; see its own diagnostics",
        0x05 | 0x06 => "the device is busy; it is polled again next period",
        0x0A | 0x0B => "the serial gateway cannot reach this unit; check the unit id and the RS-485 line behind the gateway",
        _ => "see the device's manual",
    }
}
