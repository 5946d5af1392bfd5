//! modbus-sim: serve the Modbus devices of a safegate configuration (see
//! `simulators/modbus_sim.rs`), with changing values and per-unit fault modes.

use clap::Parser;
use safegate::simulators::modbus_sim::{Fault, ModbusSim};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Parser)]
#[command(
    about = "Serve the Modbus devices of a safegate config (Modbus TCP, RTU over TCP, RTU on a serial device)"
)]
struct Args {
    #[arg(long)]
    config: PathBuf,
    /// Keep every value fixed at its documented starting value (for checking a map).
    #[arg(long)]
    fixed: bool,
    /// `ADDRESS/UNIT=MODE`, MODE one of none, silent, exception:CODE, drop, slow:MS, status.
    /// Repeatable. ADDRESS is the device's `address` (or `serial`) as in the config.
    #[arg(long = "fault")]
    faults: Vec<String>,
    /// `CONFIG_SERIAL=DEVICE[:BAUD]`: serve the units of the rtu endpoint whose `serial` is
    /// CONFIG_SERIAL on DEVICE (e.g. the other end of a socat pseudo-terminal pair).
    #[arg(long = "serial")]
    serial: Vec<String>,
    /// Stop after this many seconds (default: until Ctrl-C).
    #[arg(long)]
    duration_s: Option<u64>,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let a = Args::parse();
    let loaded = match safegate::config::load(&a.config) {
        Ok(l) => l,
        Err(errs) => {
            for e in errs {
                eprintln!("{e}");
            }
            return std::process::ExitCode::from(2);
        }
    };
    let sim = ModbusSim::from_config(&loaded.config, !a.fixed);
    for f in &a.faults {
        let parsed = f.split_once('=').and_then(|(target, mode)| {
            let (addr, unit) = target.rsplit_once('/')?;
            Some((addr, unit.parse::<u8>().ok()?, mode.parse::<Fault>()))
        });
        match parsed {
            Some((addr, unit, Ok(mode))) => sim.faults.set(addr, unit, mode),
            Some((_, _, Err(e))) => {
                eprintln!("--fault {e}");
                return std::process::ExitCode::from(2);
            }
            None => {
                eprintln!("--fault {f:?} must look like ADDRESS/UNIT=MODE");
                return std::process::ExitCode::from(2);
            }
        }
    }
    let mut tasks = match sim.serve_tcp().await {
        Ok(t) => t,
        Err(e) => {
            eprintln!("cannot listen: {e}");
            return std::process::ExitCode::from(1);
        }
    };
    for s in &a.serial {
        let Some((cfg_path, dev)) = s.split_once('=') else {
            eprintln!("--serial {s:?} must look like CONFIG_SERIAL=DEVICE[:BAUD]");
            return std::process::ExitCode::from(2);
        };
        let (dev, baud) = match dev.rsplit_once(':') {
            Some((d, b)) if b.parse::<u32>().is_ok() => (d, b.parse().unwrap_or(9600)),
            _ => (dev, 9600),
        };
        match sim.serve_serial(cfg_path, dev, baud) {
            Ok(t) => tasks.push(t),
            Err(e) => {
                eprintln!("--serial {s}: {e}");
                return std::process::ExitCode::from(1);
            }
        }
    }
    for (addr, transport, units) in sim.endpoints() {
        println!("serving {} {addr} units {units:?}", transport.as_str());
    }
    match a.duration_s {
        Some(s) => {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(s)) => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        None => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
    for t in tasks {
        t.abort();
    }
    std::process::ExitCode::SUCCESS
}
