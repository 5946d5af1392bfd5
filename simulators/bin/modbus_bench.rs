//! modbus-bench: request rate of one Modbus TCP connection (the gateway's client stack,
//! tokio-modbus, used the way the gateway uses it: one request at a time, each bounded by a
//! timeout). Loopback only; bounded by `--seconds`.

use clap::Parser;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio_modbus::client::Reader;
use tokio_modbus::slave::{Slave, SlaveContext};

#[derive(Parser)]
#[command(about = "Requests per second on one Modbus TCP connection")]
struct Args {
    /// Server address; must be a loopback address.
    #[arg(long, default_value = "127.0.0.1:1502")]
    addr: SocketAddr,
    #[arg(long, default_value_t = 1)]
    unit: u8,
    #[arg(long, default_value_t = 0)]
    start: u16,
    /// Holding registers per request.
    #[arg(long, default_value_t = 10)]
    count: u16,
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    let a = Args::parse();
    if !a.addr.ip().is_loopback() {
        eprintln!("modbus-bench only targets loopback addresses");
        return std::process::ExitCode::from(2);
    }
    let stream = match tokio::net::TcpStream::connect(a.addr).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("cannot connect to {}: {e}", a.addr);
            return std::process::ExitCode::from(1);
        }
    };
    let _ = stream.set_nodelay(true);
    let mut ctx = tokio_modbus::client::tcp::attach(stream);
    ctx.set_slave(Slave(a.unit));
    let deadline = Instant::now() + Duration::from_secs_f64(a.seconds);
    let started = Instant::now();
    let (mut ok, mut failed) = (0u64, 0u64);
    while Instant::now() < deadline {
        match tokio::time::timeout(
            Duration::from_secs(1),
            ctx.read_holding_registers(a.start, a.count),
        )
        .await
        {
            Ok(Ok(Ok(w))) if w.len() == a.count as usize => ok += 1,
            _ => failed += 1,
        }
    }
    let secs = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds().unwrap_or(f64::NAN);
    println!(
        "tokio-modbus requests={ok} failed={failed} seconds={secs:.2} rps={:.0} cpu_s={cpu:.2} per_cpu_s={:.0}",
        ok as f64 / secs,
        ok as f64 / cpu
    );
    std::process::ExitCode::SUCCESS
}

/// User + system CPU time of this process so far, from /proc (Linux).
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name; utime and stime are the 14th and 15th.
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}
