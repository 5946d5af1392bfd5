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
        /// Spread the devices over this many sites `{site}-0` … (as `inventory --sites`).
        #[arg(long, default_value_t = 1)]
        sites: usize,
        #[arg(long, default_value_t = 100_000)]
        count: u64,
        /// Messages per second (default: flat out). A paced run stamps readings from the
        /// clock, unique per device (the envelope: at most one point per device a second), and
        /// reports the rate it achieved and how far it fell behind.
        #[arg(long)]
        rate: Option<u64>,
        #[arg(long, default_value_t = 0)]
        qos: u8,
        #[arg(long, default_value_t = 300)]
        max_duration_s: u64,
        /// Every n-th reading of each device is an alarm (60.5 %LEL); the others stay low.
        #[arg(long)]
        alarm_every: Option<u64>,
        /// Shift device d's alarms by d readings: one alarm in every n readings of the run,
        /// steadily, instead of all devices at once.
        #[arg(long, requires = "alarm_every")]
        alarm_spread: bool,
        /// `native`: {prefix}/{site}/d{i}/data; `ministry`: the ministry-family envelope,
        /// one point each, on ministry/{site}/up (for a mapping).
        #[arg(long, value_enum, default_value = "native")]
        format: loadgen::Format,
        /// Readings per message (native: on {prefix}/{site}/batch; ministry: points per
        /// envelope); `--count` is messages.
        #[arg(long, default_value_t = 1)]
        per_message: usize,
        /// Print progress (sent, due, lag, unacknowledged) to stderr every this many seconds.
        #[arg(long)]
        progress_s: Option<f64>,
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
    /// Print an inventory of N MQTT devices in one site (or spread over `--sites`).
    Inventory {
        #[arg(long, default_value = "bench")]
        site: String,
        #[arg(long)]
        devices: usize,
        /// Spread the devices over this many parks `{site}-0` …, each with `--zones` zones.
        #[arg(long, default_value_t = 1)]
        sites: usize,
        #[arg(long, default_value_t = 0)]
        zones: usize,
        #[arg(long, default_value_t = 10.0)]
        interval_s: f64,
        /// Each device's offline_after_s (default: the gateway's, 3 × interval_s).
        #[arg(long)]
        offline_after_s: Option<f64>,
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

/// `--progress-s` as a duration; refused when not a positive number of seconds.
fn progress(s: Option<f64>) -> Result<Option<Duration>, String> {
    match s {
        None => Ok(None),
        Some(s) if s.is_finite() && s > 0.0 && s < 1e9 => Ok(Some(Duration::from_secs_f64(s))),
        Some(s) => Err(format!(
            "--progress-s must be a positive number of seconds, not {s}"
        )),
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let r = match Args::parse().cmd {
        Cmd::Publish {
            broker,
            prefix,
            site,
            devices,
            sites,
            count,
            rate,
            qos,
            max_duration_s,
            alarm_every,
            format,
            per_message,
            alarm_spread,
            progress_s,
        } => match (split(&broker), progress(progress_s)) {
            (Ok((host, port)), Ok(progress)) => {
                let o = LoadOptions {
                    host,
                    port,
                    prefix,
                    site,
                    devices,
                    sites,
                    count,
                    rate,
                    qos,
                    max_duration: Duration::from_secs(max_duration_s),
                    alarm_every,
                    format,
                    per_message,
                    alarm_spread,
                    progress,
                };
                loadgen::publish(&o).await.map(|r| {
                    println!(
                        "sent {} in {:.3} s ({:.0} msg/s)",
                        r.sent,
                        r.elapsed.as_secs_f64(),
                        r.sent as f64 / r.elapsed.as_secs_f64()
                    );
                    if o.alarm_every.is_some() {
                        println!("readings {} alarms {}", r.readings, r.alarms);
                    }
                    if let Some(p) = r.pace {
                        // One line a script can read: the target against what was held.
                        println!(
                            "pace target {} achieved {:.1} msg/s over {:.3} s; late {:.3} s; max lag {} messages ({:.3} s) at {:.1} s; unsent at stop {}; max unacknowledged {}",
                            p.rate,
                            p.achieved(r.sent),
                            p.send_elapsed.as_secs_f64(),
                            p.late_s(r.sent),
                            p.max_lag,
                            p.max_lag as f64 / p.rate.max(1) as f64,
                            p.max_lag_at.as_secs_f64(),
                            p.final_lag,
                            p.max_unacked
                        );
                    }
                })
            }
            (Err(e), _) | (_, Err(e)) => Err(e),
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
            sites,
            zones,
            interval_s,
            offline_after_s,
        } => {
            let toml = match (sites, zones) {
                (0 | 1, 0) => {
                    loadgen::inventory_toml_offline(&site, devices, interval_s, offline_after_s)
                }
                _ => loadgen::inventory_sites_toml(
                    &site,
                    devices,
                    sites,
                    zones,
                    (interval_s, offline_after_s),
                ),
            };
            print!("{toml}");
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
