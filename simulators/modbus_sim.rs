//! modbus-sim: a Modbus server (tokio-modbus) that serves the Modbus devices of a safegate
//! configuration, with values that change over time (or stay fixed, for tests) and fault
//! modes per unit that can be switched at run time: no answer, exception, dropped
//! connection, slow answer, and a set fault bit in the status register.
//!
//! Values are a pure function of (type, register index, unit, time), so a test can compute
//! what the gateway must read: [`raw_value`] and [`expected_values`].

use crate::config::modbus::{
    DataType, ModbusConfig, RegisterConfig, StatusConfig, Table, Transport,
};
use crate::config::{Config, UnitStatus};
use crate::sources::modbus::decode::encode_words;
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_modbus::server::Service;
use tokio_modbus::{ExceptionCode, Request, Response, SlaveRequest};

/// How a unit misbehaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Fault {
    #[default]
    None,
    /// The request is swallowed: the client times out.
    NoAnswer,
    /// Every request is answered with this exception code.
    Exception(u8),
    /// The connection the request came on is closed without an answer.
    DropConnection,
    /// The answer comes after this delay.
    Slow(Duration),
    /// Answers normally, with every fault bit of the status register set.
    StatusFault,
}

impl std::str::FromStr for Fault {
    type Err = String;
    /// `none`, `silent`, `exception:2`, `drop`, `slow:1500` (ms), `status`.
    fn from_str(s: &str) -> Result<Fault, String> {
        let (k, v) = s.split_once(':').unwrap_or((s, ""));
        let num = |v: &str| {
            v.parse::<u64>()
                .map_err(|_| format!("{s:?}: {v:?} is not a number"))
        };
        Ok(match k {
            "none" => Fault::None,
            "silent" => Fault::NoAnswer,
            "exception" => Fault::Exception(num(v)? as u8),
            "drop" => Fault::DropConnection,
            "slow" => Fault::Slow(Duration::from_millis(num(v)?)),
            "status" => Fault::StatusFault,
            _ => {
                return Err(format!(
                    "{s:?}: fault is none, silent, exception:CODE, drop, slow:MS or status"
                ))
            }
        })
    }
}

/// The raw value register `k` of a unit holds at `t_s` seconds (0 when values are fixed).
/// Fixed values (t_s = 0) are exactly representable, distinct per register and unit, and
/// exercise both words of 32-bit types and the sign of signed ones.
pub fn raw_value(t: DataType, k: usize, unit: u8, t_s: f64) -> f64 {
    let k = (k + unit as usize * 7) as f64;
    let wave = (t_s / 10.0 * std::f64::consts::TAU).sin();
    let w = (wave * 10.0).round();
    match t {
        DataType::U16 => 1000.0 + 37.0 * k + w,
        DataType::I16 => -(500.0 + 37.0 * k) + w,
        DataType::U32 => 70_000.0 + 1001.0 * k + w,
        DataType::I32 => -(70_000.0 + 1001.0 * k) + w,
        DataType::F32 => 12.5 + 0.25 * k + (wave * 64.0).round() / 64.0,
        DataType::Bool => ((k as u64 + (t_s / 5.0) as u64) % 2) as f64,
    }
}

/// Channel values the gateway must read from `m` served with fixed values.
pub fn expected_values(m: &ModbusConfig) -> Vec<(String, f64)> {
    m.registers
        .iter()
        .enumerate()
        .map(|(k, r)| {
            let raw = raw_value(r.data_type, k, m.unit, 0.0);
            (r.channel.clone(), raw * r.scale + r.offset)
        })
        .collect()
}

/// A unit's register map, indexed by table and address.
#[derive(Debug)]
struct UnitMap {
    unit: u8,
    registers: Vec<RegisterConfig>,
    status: Option<StatusConfig>,
    /// (table, address) → (register index or usize::MAX for status, word within it).
    cells: BTreeMap<(u8, u16), (usize, u16)>,
    /// Lowest and highest mapped address per table.
    bounds: HashMap<u8, (u16, u16)>,
}

impl UnitMap {
    fn new(m: &ModbusConfig) -> UnitMap {
        let mut cells = BTreeMap::new();
        let mut bounds: HashMap<u8, (u16, u16)> = HashMap::new();
        let mut add = |t: Table, a: u32, w: u16, idx: usize| {
            for j in 0..w {
                let Ok(addr) = u16::try_from(a + j as u32) else {
                    continue;
                };
                cells.insert((t as u8, addr), (idx, j));
                let b = bounds.entry(t as u8).or_insert((addr, addr));
                b.0 = b.0.min(addr);
                b.1 = b.1.max(addr);
            }
        };
        for (k, r) in m.registers.iter().enumerate() {
            let w = if r.table.is_bits() {
                1
            } else {
                r.data_type.width()
            };
            add(r.table, r.address, w, k);
        }
        if let Some(s) = &m.status {
            add(s.table, s.address, 1, usize::MAX);
        }
        UnitMap {
            unit: m.unit,
            registers: m.registers.clone(),
            status: m.status.clone(),
            cells,
            bounds,
        }
    }

    /// Words (or bits as 0/1) of `count` cells from `start`, or the exception a device gives.
    fn read(
        &self,
        t: Table,
        start: u16,
        count: u16,
        t_s: f64,
        fault: Fault,
    ) -> Result<Vec<u16>, ExceptionCode> {
        if count == 0 {
            return Err(ExceptionCode::IllegalDataValue);
        }
        let last = start as u32 + count as u32 - 1;
        let Some(&(lo, hi)) = self.bounds.get(&(t as u8)) else {
            return Err(ExceptionCode::IllegalDataAddress);
        };
        if start < lo || last > hi as u32 {
            return Err(ExceptionCode::IllegalDataAddress);
        }
        let mut cache: HashMap<usize, Vec<u16>> = HashMap::new();
        let mut out = Vec::with_capacity(count as usize);
        for a in start..=(last as u16) {
            let v = match self.cells.get(&(t as u8, a)) {
                None => 0,
                Some(&(usize::MAX, _)) => {
                    let mask = self.status.as_ref().map_or(0xFFFF, |s| s.fault_mask);
                    match (fault == Fault::StatusFault, t.is_bits()) {
                        (false, _) => 0,
                        (true, true) => 1,
                        (true, false) => mask,
                    }
                }
                Some(&(k, j)) => {
                    let words = cache.entry(k).or_insert_with(|| {
                        let r = &self.registers[k];
                        let raw = raw_value(r.data_type, k, self.unit, t_s);
                        encode_words(r.data_type, r.word_order, r.byte_swap, raw)
                    });
                    words.get(j as usize).copied().unwrap_or(0)
                }
            };
            out.push(v);
        }
        Ok(out)
    }
}

/// Fault modes by (endpoint address, unit), shared with whoever drives the simulation.
#[derive(Debug, Default)]
pub struct Faults {
    map: Mutex<HashMap<(String, u8), Fault>>,
}

impl Faults {
    pub fn set(&self, address: &str, unit: u8, f: Fault) {
        let mut m = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if f == Fault::None {
            m.remove(&(address.to_string(), unit));
        } else {
            m.insert((address.to_string(), unit), f);
        }
    }
    fn get(&self, address: &str, unit: u8) -> Fault {
        let m = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if m.is_empty() {
            return Fault::None;
        }
        m.get(&(address.to_string(), unit))
            .copied()
            .unwrap_or_default()
    }
}

/// One served endpoint: its units and their shared state.
#[derive(Debug)]
struct Endpoint {
    address: String,
    units: HashMap<u8, UnitMap>,
    faults: Arc<Faults>,
    changing: bool,
    start: Instant,
    requests: Arc<AtomicU64>,
}

impl Endpoint {
    fn t_s(&self) -> f64 {
        if self.changing {
            (self.start.elapsed().as_millis() / 100) as f64 / 10.0
        } else {
            0.0
        }
    }
}

type Answer = Result<Option<Response>, ExceptionCode>;

#[derive(Clone)]
struct SimService {
    ep: Arc<Endpoint>,
    /// Set to make this connection close (fault `drop`).
    kill: Arc<AtomicBool>,
}

impl Service for SimService {
    type Request = SlaveRequest<'static>;
    type Response = Option<Response>;
    type Exception = ExceptionCode;
    type Future = Pin<Box<dyn Future<Output = Answer> + Send>>;

    fn call(&self, req: Self::Request) -> Self::Future {
        self.ep.requests.fetch_add(1, Ordering::Relaxed);
        let Some(unit) = self.ep.units.get(&req.slave) else {
            // No such unit on the line: nobody answers.
            return Box::pin(std::future::ready(Ok(None)));
        };
        let fault = self.ep.faults.get(&self.ep.address, req.slave);
        let answer = || -> Answer {
            let t_s = self.ep.t_s();
            let words = |t, a, n| unit.read(t, a, n, t_s, fault);
            let bits = |v: Vec<u16>| v.into_iter().map(|x| x != 0).collect::<Vec<bool>>();
            Ok(Some(match req.request {
                Request::ReadHoldingRegisters(a, n) => {
                    Response::ReadHoldingRegisters(words(Table::Holding, a, n)?)
                }
                Request::ReadInputRegisters(a, n) => {
                    Response::ReadInputRegisters(words(Table::Input, a, n)?)
                }
                Request::ReadCoils(a, n) => Response::ReadCoils(bits(words(Table::Coil, a, n)?)),
                Request::ReadDiscreteInputs(a, n) => {
                    Response::ReadDiscreteInputs(bits(words(Table::Discrete, a, n)?))
                }
                _ => return Err(ExceptionCode::IllegalFunction),
            }))
        };
        match fault {
            Fault::NoAnswer => Box::pin(std::future::ready(Ok(None))),
            Fault::Exception(c) => Box::pin(std::future::ready(Err(ExceptionCode::new(c)))),
            Fault::DropConnection => {
                self.kill.store(true, Ordering::Relaxed);
                Box::pin(std::future::ready(Ok(None)))
            }
            Fault::Slow(d) => {
                let a = answer();
                Box::pin(async move {
                    tokio::time::sleep(d).await;
                    a
                })
            }
            Fault::None | Fault::StatusFault => Box::pin(std::future::ready(answer())),
        }
    }
}

/// A TCP stream that reads as closed once its connection is killed.
#[derive(Debug)]
struct Killable {
    inner: TcpStream,
    kill: Arc<AtomicBool>,
}

impl AsyncRead for Killable {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if self.kill.load(Ordering::Relaxed) {
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Killable {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The simulator: what it serves and the handle to change faults.
pub struct ModbusSim {
    pub faults: Arc<Faults>,
    pub requests: Arc<AtomicU64>,
    endpoints: Vec<(String, Transport, Arc<Endpoint>)>,
}

impl ModbusSim {
    /// Serve every built Modbus TCP (and RTU-over-TCP) device of `cfg`; `changing` makes values
    /// move (a 10 s sine), otherwise they stay at [`expected_values`].
    pub fn from_config(cfg: &Config, changing: bool) -> ModbusSim {
        let faults = Arc::new(Faults::default());
        let requests = Arc::new(AtomicU64::new(0));
        let start = Instant::now();
        let mut by_addr: BTreeMap<String, (Transport, HashMap<u8, UnitMap>)> = BTreeMap::new();
        for d in &cfg.inventory.devices {
            let Some(m) = &d.modbus else { continue };
            if d.status != UnitStatus::Built {
                continue;
            }
            let key = match m.transport {
                Transport::Rtu => m.serial.clone().unwrap_or_default(),
                _ => m.address.clone().unwrap_or_default(),
            };
            by_addr
                .entry(key)
                .or_insert_with(|| (m.transport, HashMap::new()))
                .1
                .insert(m.unit, UnitMap::new(m));
        }
        let endpoints = by_addr
            .into_iter()
            .map(|(address, (transport, units))| {
                let ep = Arc::new(Endpoint {
                    address: address.clone(),
                    units,
                    faults: faults.clone(),
                    changing,
                    start,
                    requests: requests.clone(),
                });
                (address, transport, ep)
            })
            .collect();
        ModbusSim {
            faults,
            requests,
            endpoints,
        }
    }

    /// Serve only the endpoints whose address (or serial path) passes `keep`.
    pub fn retain(&mut self, keep: impl Fn(&str) -> bool) {
        self.endpoints.retain(|(a, _, _)| keep(a));
    }

    /// Addresses (TCP `host:port` or serial paths) and the units each serves.
    pub fn endpoints(&self) -> Vec<(String, Transport, Vec<u8>)> {
        self.endpoints
            .iter()
            .map(|(a, t, e)| {
                let mut u: Vec<u8> = e.units.keys().copied().collect();
                u.sort_unstable();
                (a.clone(), *t, u)
            })
            .collect()
    }

    /// Listen on every TCP endpoint (Modbus TCP, or RTU framing for `rtu_over_tcp`) and
    /// serve until the returned tasks are aborted. Binding errors are returned at once.
    pub async fn serve_tcp(&self) -> std::io::Result<Vec<tokio::task::JoinHandle<()>>> {
        let mut tasks = Vec::new();
        for (address, transport, ep) in &self.endpoints {
            match transport {
                Transport::Tcp => {
                    let listener = TcpListener::bind(address.as_str()).await?;
                    tasks.push(tokio::spawn(serve_mbap(listener, ep.clone())));
                }
                Transport::RtuOverTcp => {
                    let listener = TcpListener::bind(address.as_str()).await?;
                    tasks.push(tokio::spawn(serve_rtu_over_tcp(listener, ep.clone())));
                }
                Transport::Rtu => {}
            }
        }
        Ok(tasks)
    }

    /// Serve the units of serial endpoint `config_path` on the serial device `open_path`
    /// (for a pseudo-terminal pair, the other end of the gateway's).
    pub fn serve_serial(
        &self,
        config_path: &str,
        open_path: &str,
        baud: u32,
    ) -> std::io::Result<tokio::task::JoinHandle<()>> {
        let ep = self
            .endpoints
            .iter()
            .find(|(a, t, _)| a == config_path && *t == Transport::Rtu)
            .map(|(_, _, e)| e.clone())
            .ok_or_else(|| {
                std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    format!("no rtu endpoint {config_path:?} in the configuration"),
                )
            })?;
        let port = tokio_serial::SerialStream::open(&tokio_serial::new(open_path, baud))
            .map_err(std::io::Error::other)?;
        let server = tokio_modbus::server::rtu::Server::new(port);
        let svc = SimService {
            ep,
            kill: Arc::new(AtomicBool::new(false)),
        };
        Ok(tokio::spawn(async move {
            if let Err(e) = server.serve_forever(svc).await {
                tracing::warn!(error = %e, "modbus-sim serial server stopped");
            }
        }))
    }
}

/// One accepted TCP connection: a service for the endpoint, and the stream wrapped so a
/// fault mode can drop it.
fn accept(stream: TcpStream, ep: Arc<Endpoint>) -> (SimService, Killable) {
    let _ = stream.set_nodelay(true);
    let kill = Arc::new(AtomicBool::new(false));
    let svc = SimService {
        ep,
        kill: kill.clone(),
    };
    (
        svc,
        Killable {
            inner: stream,
            kill,
        },
    )
}

async fn serve_mbap(listener: TcpListener, ep: Arc<Endpoint>) {
    let server = tokio_modbus::server::tcp::Server::new(listener);
    let on_connected = |stream: TcpStream, _addr| {
        let ep = ep.clone();
        async move { Ok(Some(accept(stream, ep))) }
    };
    if let Err(e) = server.serve(&on_connected, |_e| {}).await {
        tracing::warn!(error = %e, "modbus-sim TCP server stopped");
    }
}

/// RTU framing over TCP, as a serial-to-Ethernet server's raw socket carries it.
async fn serve_rtu_over_tcp(listener: TcpListener, ep: Arc<Endpoint>) {
    let server = tokio_modbus::server::rtu_over_tcp::Server::new(listener);
    let on_connected = |stream: TcpStream, _addr| {
        let ep = ep.clone();
        async move { Ok(Some(accept(stream, ep))) }
    };
    if let Err(e) = server.serve(&on_connected, |_e| {}).await {
        tracing::warn!(error = %e, "modbus-sim RTU-over-TCP server stopped");
    }
}
