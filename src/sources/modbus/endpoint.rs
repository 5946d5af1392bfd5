//! One task per endpoint (a TCP address or a serial line): one connection, requests to its
//! units serialized on it, each bounded by the unit's `timeout_ms`.
//!
//! Scheduling: every unit has a fixed-rate schedule (`poll_s`), staggered across the period.
//! A unit that times out costs its neighbours that one timeout and the rest of its poll is
//! skipped; after two failed polls in a row it is polled less often (period × 2^(n−1), capped
//! at `backoff_max_s`) until it answers again. A timeout also renews the connection, so a late
//! answer can never be taken for the next request's. Connection failures make the endpoint
//! reconnect with capped, jittered exponential back-off; polls due meanwhile fail at once.

use super::config::{Parity, RegisterConfig, StatusConfig, Table};
use super::decode::{decode_words, scaled};
use super::error::{exception_code, Kind, ModbusError};
use super::plan::{Request, Target};
use super::status::{Counted, DeviceStatus, EndpointStatus};
use crate::backoff::Backoff;
use crate::core::{Origin, RawReading, ReadingStatus, SourceEvent};
use crate::model::now_ms;
use crate::telemetry::{Clock, RateLimitedLog};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::ops::ControlFlow;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::{broadcast, mpsc};
use tokio::time::Instant;
use tokio_modbus::client::{Context, Reader};
use tokio_modbus::slave::{Slave, SlaveContext};

/// Endpoint reconnect back-off bounds.
const RECONNECT_MIN_MS: u64 = 100;
const RECONNECT_MAX_MS: u64 = 10_000;

#[derive(Debug, Clone)]
pub enum Link {
    Tcp(String),
    RtuOverTcp(String),
    Serial {
        path: String,
        baud: u32,
        parity: Parity,
        data_bits: u8,
        stop_bits: u8,
    },
}

#[derive(Debug)]
pub struct DeviceSpec {
    pub site: String,
    pub device: String,
    pub unit: u8,
    pub period: Duration,
    pub timeout: Duration,
    pub retries: u32,
    pub backoff_max: Duration,
    pub registers: Vec<RegisterConfig>,
    pub status: Option<StatusConfig>,
    pub requests: Vec<Request>,
    pub origin: Arc<str>,
    pub stats: Arc<DeviceStatus>,
}

#[derive(Debug)]
pub struct EndpointSpec {
    pub key: String,
    pub link: Link,
    pub connect_timeout: Duration,
    pub devices: Vec<DeviceSpec>,
    pub status: Arc<EndpointStatus>,
    /// Stamps the polls and link changes handed to the core (a test's clock, or the wall's).
    pub clock: Clock,
}

async fn connect(link: &Link, key: &str, timeout: Duration) -> Result<Context, ModbusError> {
    let conn_err = |source| ModbusError::Connect {
        endpoint: key.to_string(),
        source,
    };
    match link {
        Link::Tcp(addr) | Link::RtuOverTcp(addr) => {
            let s = tokio::time::timeout(timeout, TcpStream::connect(addr.as_str()))
                .await
                .map_err(|_| {
                    conn_err(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        format!("no connection within {} ms", timeout.as_millis()),
                    ))
                })?
                .map_err(conn_err)?;
            let _ = s.set_nodelay(true);
            Ok(match link {
                Link::Tcp(_) => tokio_modbus::client::tcp::attach(s),
                _ => tokio_modbus::client::rtu::attach(s),
            })
        }
        Link::Serial {
            path,
            baud,
            parity,
            data_bits,
            stop_bits,
        } => {
            use tokio_serial::{DataBits, StopBits};
            let b = tokio_serial::new(path.as_str(), *baud)
                .parity(match parity {
                    Parity::None => tokio_serial::Parity::None,
                    Parity::Even => tokio_serial::Parity::Even,
                    Parity::Odd => tokio_serial::Parity::Odd,
                })
                .data_bits(match data_bits {
                    5 => DataBits::Five,
                    6 => DataBits::Six,
                    7 => DataBits::Seven,
                    _ => DataBits::Eight,
                })
                .stop_bits(if *stop_bits == 2 {
                    StopBits::Two
                } else {
                    StopBits::One
                });
            let port =
                tokio_serial::SerialStream::open(&b).map_err(|source| ModbusError::Serial {
                    path: path.clone(),
                    source,
                })?;
            Ok(tokio_modbus::client::rtu::attach(port))
        }
    }
}

enum Data {
    Words(Vec<u16>),
    Bits(Vec<bool>),
}

fn describe(r: &Request) -> String {
    format!(
        "{} {}..={}",
        r.table.as_str(),
        r.start,
        r.start as u32 + r.count as u32 - 1
    )
}

async fn read(ctx: &mut Context, r: &Request) -> tokio_modbus::Result<Data> {
    Ok(match r.table {
        Table::Holding => ctx
            .read_holding_registers(r.start, r.count)
            .await?
            .map(Data::Words),
        Table::Input => ctx
            .read_input_registers(r.start, r.count)
            .await?
            .map(Data::Words),
        Table::Coil => ctx.read_coils(r.start, r.count).await?.map(Data::Bits),
        Table::Discrete => ctx
            .read_discrete_inputs(r.start, r.count)
            .await?
            .map(Data::Bits),
    })
}

/// What one poll of one unit produced.
struct Polled {
    values: crate::core::event::Values,
    fault: bool,
    /// Exceptions answered to some of the requests (the rest were read).
    exceptions: Vec<ModbusError>,
}

/// Read every planned request of `d`. A timeout or link error ends the poll (the unit is
/// not answering or the link is gone); an exception only loses that request's registers.
async fn poll_unit(ctx: &mut Context, key: &str, d: &DeviceSpec) -> Result<Polled, ModbusError> {
    ctx.set_slave(Slave(d.unit));
    let mut out = Polled {
        values: Vec::with_capacity(d.registers.len()),
        fault: false,
        exceptions: Vec::new(),
    };
    for r in &d.requests {
        let data = match tokio::time::timeout(d.timeout, read(ctx, r)).await {
            Err(_) => {
                return Err(ModbusError::Timeout {
                    unit: d.unit,
                    what: describe(r),
                    timeout_ms: d.timeout.as_millis() as u64,
                })
            }
            Ok(Err(e)) => {
                return Err(ModbusError::Transport {
                    endpoint: key.to_string(),
                    unit: d.unit,
                    what: describe(r),
                    detail: e.to_string(),
                })
            }
            Ok(Ok(Err(code))) => {
                out.exceptions.push(ModbusError::Exception {
                    unit: d.unit,
                    what: describe(r),
                    code: exception_code(code),
                });
                continue;
            }
            Ok(Ok(Ok(data))) => data,
        };
        let got = match &data {
            Data::Words(w) => w.len(),
            Data::Bits(b) => b.len(),
        };
        if got < r.count as usize {
            return Err(ModbusError::ShortAnswer {
                unit: d.unit,
                what: describe(r),
                got,
                expected: r.count as usize,
            });
        }
        for &(target, off, width) in &r.slots {
            let (o, w) = (off as usize, width as usize);
            let word: Option<f64> = match (&data, target) {
                (Data::Bits(b), _) => b.get(o).map(|&x| x as u8 as f64),
                (Data::Words(ws), Target::Register(i)) => {
                    let reg = &d.registers[i];
                    decode_words(reg.data_type, reg.word_order, reg.byte_swap, &ws[o..o + w])
                }
                (Data::Words(ws), Target::Status) => ws.get(o).map(|&x| x as f64),
            };
            let Some(raw) = word else { continue };
            match target {
                Target::Register(i) => {
                    let reg = &d.registers[i];
                    out.values
                        .push((reg.channel.as_str().into(), scaled(reg, raw)));
                }
                Target::Status => {
                    let mask = d.status.as_ref().map_or(0xFFFF, |s| s.fault_mask);
                    out.fault = (raw as u16) & mask != 0;
                }
            }
        }
    }
    Ok(out)
}

/// How long a unit that has failed `fails` polls in a row waits before its next poll:
/// `None` (its normal period) after a single failure, then period × 2^(fails−1), capped.
pub fn unit_backoff(period: Duration, fails: u32, cap: Duration) -> Option<Duration> {
    (fails >= 2).then(|| {
        period
            .saturating_mul(1u32 << (fails - 1).min(16))
            .min(cap.max(period))
    })
}

/// What decides whether a unit's turn is taken: the outbox's hold, the site's owner in
/// cluster mode, shutdown.
pub struct Turn {
    /// True while the outbox is at its disk budget: no poll starts, since a poll whose
    /// readings cannot be committed would only be lost. Polling resumes on schedule after.
    pub hold: tokio::sync::watch::Receiver<bool>,
    /// Cluster mode: a unit is polled only by the owner of its site's partition.
    pub owns: Option<crate::sources::Owns>,
    pub shutdown: broadcast::Receiver<()>,
}

/// Poll every unit of `ep` on its schedule until shutdown.
pub async fn run(ep: EndpointSpec, tx: mpsc::Sender<SourceEvent>, mut turn: Turn) {
    let start = Instant::now();
    let mut heap = schedule(&ep.devices, start);
    let mut e = Endpoint::new(ep, tx, start);
    if turn.owns.is_some() {
        (e.shared, e.link_up) = (true, None);
    }
    while let Some(Reverse((due, i))) = heap.pop() {
        if !wait_turn(due, &e.ep.status, &mut turn.hold, &mut turn.shutdown).await {
            break;
        }
        if !e.owned(i, turn.owns.as_ref()) {
            heap.push(Reverse((later(due, e.ep.devices[i].period), i)));
            continue;
        }
        e.poll_started(i);
        let outcome = e.poll(i).await;
        let ControlFlow::Continue(next) = e.settle(i, due, outcome).await else {
            break; // the core has stopped
        };
        heap.push(Reverse((next, i)));
    }
    e.stop().await;
}

/// The first of `due + k × period` (k ≥ 1) after now.
fn later(due: Instant, period: Duration) -> Instant {
    let (now, mut next) = (Instant::now(), due + period);
    while next <= now {
        next += period;
    }
    next
}

/// Each unit's first poll, staggered across its period so the units of an endpoint do not
/// all fall due at once.
fn schedule(devices: &[DeviceSpec], start: Instant) -> BinaryHeap<Reverse<(Instant, usize)>> {
    let n = devices.len().max(1);
    devices
        .iter()
        .enumerate()
        .map(|(i, d)| Reverse((start + d.period.mul_f64(i as f64 / n as f64), i)))
        .collect()
}

/// Wait until `due`, and then while the outbox holds commits. False at shutdown.
async fn wait_turn(
    due: Instant,
    status: &EndpointStatus,
    hold: &mut tokio::sync::watch::Receiver<bool>,
    shutdown: &mut broadcast::Receiver<()>,
) -> bool {
    tokio::select! {
        _ = tokio::time::sleep_until(due) => {}
        _ = shutdown.recv() => return false,
    }
    if *hold.borrow() {
        tracing::info!(endpoint = %status.key, "Modbus polling paused: the outbox holds commits (its budget or the disk's free-space floor)");
        // Shown in /api/v1/endpoints, so an operator (and a test) sees why polls stopped.
        status.paused.store(true, Ordering::Relaxed);
        let go_on = tokio::select! {
            _ = hold.wait_for(|h| !*h) => true,
            _ = shutdown.recv() => false,
        };
        status.paused.store(false, Ordering::Relaxed);
        return go_on;
    }
    true
}

/// The endpoint's one connection, and when to try again after it failed.
struct Conn {
    ctx: Option<Context>,
    ever_connected: bool,
    backoff: Backoff,
    reconnect_at: Instant,
}

impl Conn {
    /// Connected, or why not: still inside the reconnect back-off, or the attempt failed.
    async fn ensure(
        &mut self,
        ep: &EndpointSpec,
        warn: &RateLimitedLog,
    ) -> Result<(), ModbusError> {
        if self.ctx.is_some() {
            return Ok(());
        }
        let st = &ep.status;
        let now = Instant::now();
        if now < self.reconnect_at {
            return Err(ModbusError::NotConnected {
                endpoint: ep.key.clone(),
                retry_in_ms: (self.reconnect_at - now).as_millis() as u64,
            });
        }
        match connect(&ep.link, &ep.key, ep.connect_timeout).await {
            Ok(c) => {
                self.ctx = Some(c);
                if self.ever_connected {
                    st.reconnects.inc();
                    st.link.count_reconnect();
                }
                self.ever_connected = true;
                st.link.set_connected(now_ms());
                st.connected.set(1);
                self.backoff.reset();
                Ok(())
            }
            Err(e) => {
                self.reconnect_at = Instant::now() + self.backoff.next_delay();
                if st.link.set_disconnected(now_ms(), e.to_string()) {
                    if let Some(suppressed) = warn.allow("unreachable", now_ms()) {
                        tracing::warn!(endpoint = %ep.key, error = %e, suppressed, "Modbus endpoint unreachable");
                    }
                }
                st.connected.set(0);
                Err(e)
            }
        }
    }

    /// The link failed under a poll: drop it (the next poll reconnects).
    fn lost(&mut self, ep: &EndpointSpec, warn: &RateLimitedLog, e: &ModbusError) {
        self.ctx = None;
        let st = &ep.status;
        if st.link.set_disconnected(now_ms(), e.to_string()) {
            if let Some(suppressed) = warn.allow("lost", now_ms()) {
                tracing::warn!(endpoint = %ep.key, error = %e, suppressed, "Modbus connection lost");
            }
        }
        st.connected.set(0);
    }
}

/// One endpoint's polling task: its units, connection, and what the core was last told.
/// Its async methods take `&mut self`: `Context` is not `Sync`, so a `&Endpoint` held across
/// an await would make the task's future not `Send`.
struct Endpoint {
    ep: EndpointSpec,
    tx: mpsc::Sender<SourceEvent>,
    conn: Conn,
    /// When each unit's current poll started (its achieved period).
    last_start: Vec<Option<Instant>>,
    link_name: Arc<str>,
    /// The link state last sent to the core.
    /// `None` until told (cluster mode: this instance may take over a link another one saw
    /// go up, so its first state is always told; alone, the link starts down).
    link_up: Option<bool>,
    /// A flapping endpoint must not flood the log: one line per kind per 10 s.
    warn: RateLimitedLog,
    /// The sites of its units, each once.
    sites: Vec<String>,
    /// Cluster mode: the link's state belongs to whichever instance polls it; a stop or a
    /// handover here tells the core nothing (the next owner carries it on).
    shared: bool,
}

impl Endpoint {
    fn new(ep: EndpointSpec, tx: mpsc::Sender<SourceEvent>, start: Instant) -> Endpoint {
        let mut sites: Vec<String> = ep.devices.iter().map(|d| d.site.clone()).collect();
        sites.sort_unstable();
        sites.dedup();
        Endpoint {
            sites,
            last_start: vec![None; ep.devices.len()],
            link_name: Arc::from(format!("modbus:{}", ep.key)),
            ep,
            tx,
            conn: Conn {
                ctx: None,
                ever_connected: false,
                backoff: Backoff::new(RECONNECT_MIN_MS, RECONNECT_MAX_MS),
                reconnect_at: start,
            },
            link_up: Some(false),
            warn: RateLimitedLog::new(10_000),
            shared: false,
        }
    }

    /// Whether unit `i` is this instance's to poll now (always, alone). While no unit of the
    /// endpoint is, its connection is let go: many Modbus TCP devices serve one master only.
    fn owned(&mut self, i: usize, owns: Option<&crate::sources::Owns>) -> bool {
        let Some(owns) = owns else { return true };
        if owns(&self.ep.devices[i].site) {
            self.ep.status.elsewhere.store(false, Ordering::Relaxed);
            return true;
        }
        // The achieved period restarts when this instance polls the unit again.
        self.last_start[i] = None;
        // Asked once a site, not once a unit (an endpoint's units are mostly of one site).
        if !self.sites.iter().any(|site| owns(site)) {
            self.ep.status.elsewhere.store(true, Ordering::Relaxed);
            // Another instance tells the link's state meanwhile; taken back, this one tells
            // its own first.
            self.link_up = None;
            if self.conn.ctx.take().is_some() {
                let st = &self.ep.status;
                st.link
                    .set_disconnected(now_ms(), "polled by the owner of its sites".into());
                st.connected.set(0);
            }
        }
        false
    }

    /// Count the poll of unit `i` and the period since its last one.
    fn poll_started(&mut self, i: usize) {
        let d = &self.ep.devices[i];
        let started = Instant::now();
        if let Some(p) = self.last_start[i] {
            d.stats
                .record_period(started.duration_since(p).as_secs_f64() * 1000.0);
        }
        self.last_start[i] = Some(started);
        d.stats.count(Counted::Poll);
    }

    /// Poll unit `i`, connecting first if need be. A link error is retried on a new connection
    /// up to the unit's `retries`; a timeout is not (the unit is not answering).
    async fn poll(&mut self, i: usize) -> Result<Polled, ModbusError> {
        let d = &self.ep.devices[i];
        let mut attempt = 0u32;
        loop {
            self.conn.ensure(&self.ep, &self.warn).await?;
            let Some(c) = self.conn.ctx.as_mut() else {
                continue;
            };
            match poll_unit(c, &self.ep.key, d).await {
                Ok(p) => return Ok(p),
                Err(e) if e.kind() == Kind::Timeout => {
                    // A late answer must not be read as the next request's: renew the link.
                    self.conn.ctx = None;
                    return Err(e);
                }
                Err(e) => {
                    self.conn.lost(&self.ep, &self.warn, &e);
                    if attempt < d.retries {
                        attempt += 1;
                        continue;
                    }
                    return Err(e);
                }
            }
        }
    }

    /// Tell the core how the poll of unit `i` (due at `due`) went, keep its statistics, and
    /// work out when it is next due. Break when the core has stopped.
    async fn settle(
        &mut self,
        i: usize,
        due: Instant,
        outcome: Result<Polled, ModbusError>,
    ) -> ControlFlow<(), Instant> {
        let finished_ms = self.ep.clock.now_ms();
        let ok = matches!(&outcome, Ok(p) if p.exceptions.is_empty());
        self.report(ok, finished_ms).await?;
        let period = self.ep.devices[i].period;
        let mut next = later(due, period);
        match outcome {
            Ok(p) => self.answered(i, p, finished_ms).await?,
            Err(e) => {
                // The back-off ends later than now.
                if let Some(backoff_until) = self.failed(i, &e, finished_ms) {
                    next = backoff_until;
                }
            }
        }
        ControlFlow::Continue(next)
    }

    /// Link up/down and every poll's outcome go to the core, for 稳定性 (link stability and
    /// poll success ratio) over any window.
    async fn report(&mut self, ok: bool, finished_ms: i64) -> ControlFlow<()> {
        let connected = self.ep.status.link.connected();
        if self.link_up != Some(connected) {
            self.link_up = Some(connected);
            let ev = SourceEvent::Link {
                link: self.link_name.clone(),
                up: connected,
                at_ms: finished_ms,
            };
            self.send(ev).await?;
        }
        let ev = SourceEvent::Poll {
            link: self.link_name.clone(),
            ok,
            at_ms: finished_ms,
        };
        self.send(ev).await
    }

    /// Unit `i` answered (perhaps with exceptions to some requests): its statistics, and its
    /// reading to the core if any register was read.
    async fn answered(&mut self, i: usize, p: Polled, finished_ms: i64) -> ControlFlow<()> {
        let d = &self.ep.devices[i];
        let complete = p.exceptions.is_empty();
        for e in &p.exceptions {
            if let ModbusError::Exception { code, .. } = e {
                d.stats.count_exception(*code);
            }
        }
        d.stats.consecutive_failures.store(0, Ordering::Relaxed);
        d.stats.backoff_until_ms.store(0, Ordering::Relaxed);
        if complete {
            d.stats.count(Counted::Success);
            d.stats
                .last_success_ms
                .store(finished_ms, Ordering::Relaxed);
            d.stats.set_error(None);
        } else {
            d.stats
                .set_error(p.exceptions.first().map(|e| e.to_string()));
        }
        if p.values.is_empty() {
            return ControlFlow::Continue(());
        }
        let ev = SourceEvent::Reading {
            reading: RawReading {
                site: d.site.as_str().into(),
                device: d.device.as_str().into(),
                ts_ms: Some(finished_ms),
                values: p.values,
                status: if p.fault {
                    ReadingStatus::Fault
                } else {
                    ReadingStatus::Normal
                },
                cause: None,
            },
            origin: Origin {
                topic: d.origin.clone(),
                element: None,
            },
            received_ms: finished_ms,
        };
        self.send(ev).await
    }

    /// The poll of unit `i` failed: its statistics, and the end of its back-off when it has
    /// failed often enough to be polled less often. A connection failure is the endpoint's,
    /// not the unit's, and backs off the endpoint instead.
    fn failed(&mut self, i: usize, e: &ModbusError, finished_ms: i64) -> Option<Instant> {
        let d = &self.ep.devices[i];
        match e.kind() {
            Kind::Timeout => d.stats.count(Counted::Timeout),
            _ => d.stats.count(Counted::TransportError),
        };
        let unit_failure = !matches!(
            e,
            ModbusError::NotConnected { .. }
                | ModbusError::Connect { .. }
                | ModbusError::Serial { .. }
        );
        let mut next = None;
        if unit_failure {
            let fails = d.stats.consecutive_failures.fetch_add(1, Ordering::Relaxed) + 1;
            if let Some(delay) = unit_backoff(d.period, fails, d.backoff_max) {
                next = Some(Instant::now() + delay);
                d.stats
                    .backoff_until_ms
                    .store(finished_ms + delay.as_millis() as i64, Ordering::Relaxed);
                // The back-off interval is not an achieved period.
                self.last_start[i] = None;
            }
        }
        d.stats.set_error(Some(e.to_string()));
        next
    }

    async fn send(&mut self, ev: SourceEvent) -> ControlFlow<()> {
        match self.tx.send(ev).await {
            Ok(()) => ControlFlow::Continue(()),
            Err(_) => ControlFlow::Break(()),
        }
    }

    /// At shutdown: the link's last state for the core, if it was up, and health.
    async fn stop(self) {
        if self.link_up == Some(true) && !self.shared {
            let _ = self
                .tx
                .send(SourceEvent::Link {
                    link: self.link_name,
                    up: false,
                    at_ms: self.ep.clock.now_ms(),
                })
                .await;
        }
        self.ep.status.connected.set(0);
    }
}

#[cfg(test)]
mod tests {
    use super::unit_backoff;
    use std::time::Duration;

    #[test]
    fn a_failing_unit_backs_off_exponentially_up_to_the_cap() {
        let p = Duration::from_millis(500);
        let cap = Duration::from_secs(5);
        let got: Vec<Option<u128>> = (0..8)
            .map(|n| unit_backoff(p, n, cap).map(|d| d.as_millis()))
            .collect();
        assert_eq!(
            got,
            vec![
                None,
                None,
                Some(1000),
                Some(2000),
                Some(4000),
                Some(5000),
                Some(5000),
                Some(5000)
            ]
        );
        // Never below the period, never overflowing.
        assert_eq!(unit_backoff(p, 2, Duration::ZERO), Some(p));
        assert_eq!(unit_backoff(p, u32::MAX, cap), Some(cap));
    }
}
