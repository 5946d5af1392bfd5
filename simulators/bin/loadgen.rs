//! loadgen: publish at a target rate for benchmarks; prepare persistent sessions; generate
//! large inventories.

use clap::{Parser, Subcommand};
use safegate::simulators::loadgen::{self, LoadOptions};
use std::time::Duration;

#[derive(Parser)]
#[command(about = "Load generator for safegate benchmarks (bounded in count and time)")]
struct Args {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Publish `count` readings to {prefix}/{site}/d{i}/data.
    Publish {
        #[arg(long, default_value = "127.0.0.1:1883")]
        broker: String,
        #[arg(long, default_value = "safegate/v1")]
        prefix: String,
        #[arg(long, default_value = "bench")]
        site: String,
        #[arg(long, default_value_t = 1000)]
        devices: usize,
        #[arg(long, default_value_t = 100_000)]
        count: u64,
        /// Messages per second (default: flat out).
        #[arg(long)]
        rate: Option<u64>,
        #[arg(long, default_value_t = 0)]
        qos: u8,
        #[arg(long, default_value_t = 300)]
        max_duration_s: u64,
        /// Every n-th reading of each device is an alarm (60.5 %LEL); the others stay low.
        #[arg(long)]
        alarm_every: Option<u64>,
        /// `native`: {prefix}/{site}/d{i}/data; `ministry`: the ministry-family envelope,
        /// one point each, on ministry/{site}/up (for a mapping).
        #[arg(long, value_enum, default_value = "native")]
        format: loadgen::Format,
        /// Readings per message (native: on {prefix}/{site}/batch; ministry: points per
        /// envelope); `--count` is messages.
        #[arg(long, default_value_t = 1)]
        per_message: usize,
    },
    /// Create a persistent session so the broker queues messages for it.
    Session {
        #[arg(long, default_value = "127.0.0.1:1883")]
        broker: String,
        #[arg(long)]
        client_id: String,
        #[arg(long)]
        filter: String,
        #[arg(long, default_value_t = 0)]
        qos: u8,
    },
    /// Print an inventory of N MQTT devices in one site.
    Inventory {
        #[arg(long, default_value = "bench")]
        site: String,
        #[arg(long)]
        devices: usize,
        #[arg(long, default_value_t = 10.0)]
        interval_s: f64,
    },
}

fn split(broker: &str) -> Result<(String, u16), String> {
    let (h, p) = broker
        .rsplit_once(':')
        .ok_or_else(|| format!("--broker must be host:port, got {broker:?}"))?;
    Ok((
        h.to_string(),
        p.parse().map_err(|_| format!("bad port in {broker:?}"))?,
    ))
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let r = match Args::parse().cmd {
        Cmd::Publish {
            broker,
            prefix,
            site,
            devices,
            count,
            rate,
            qos,
            max_duration_s,
            alarm_every,
            format,
            per_message,
        } => match split(&broker) {
            Ok((host, port)) => {
                let o = LoadOptions {
                    host,
                    port,
                    prefix,
                    site,
                    devices,
                    count,
                    rate,
                    qos,
                    max_duration: Duration::from_secs(max_duration_s),
                    alarm_every,
                    format,
                    per_message,
                };
                loadgen::publish(&o).await.map(|r| {
                    println!(
                        "sent {} in {:.3} s ({:.0} msg/s)",
                        r.sent,
                        r.elapsed.as_secs_f64(),
                        r.sent as f64 / r.elapsed.as_secs_f64()
                    );
                })
            }
            Err(e) => Err(e),
        },
        Cmd::Session {
            broker,
            client_id,
            filter,
            qos,
        } => match split(&broker) {
            Ok((h, p)) => loadgen::prepare_session(&h, p, &client_id, &filter, qos).await,
            Err(e) => Err(e),
        },
        Cmd::Inventory {
            site,
            devices,
            interval_s,
        } => {
            print!("{}", loadgen::inventory_toml(&site, devices, interval_s));
            Ok(())
        }
    };
    match r {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("loadgen: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
