//! park-sim: publish readings for every MQTT device of a safegate configuration.

use clap::Parser;
use safegate::simulators::fleet::{self, FleetOptions};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Parser)]
#[command(about = "Publish simulated readings for the MQTT devices of a safegate config")]
struct Args {
    #[arg(long)]
    config: PathBuf,
    /// Broker host:port (default: the config's mqtt.url or embedded listen address).
    #[arg(long)]
    broker: Option<String>,
    #[arg(long, default_value_t = 0.0)]
    silent: f64,
    #[arg(long, default_value_t = 0.0)]
    flaky: f64,
    #[arg(long, default_value_t = 60)]
    stop_after_s: u64,
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    #[arg(long, default_value_t = 0)]
    jitter_ms: u64,
    #[arg(long, default_value_t = 0.0)]
    malformed_rate: f64,
    /// Probability that a reading is a leak spike over the kind's alarm level.
    #[arg(long, default_value_t = 0.0)]
    spike_rate: f64,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Stop after this many seconds (default: run until Ctrl-C).
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
    let cfg = loaded.config;
    let broker = a.broker.unwrap_or_else(|| {
        if cfg.mqtt.embedded {
            cfg.mqtt.listen.to_string()
        } else {
            cfg.mqtt.url.trim_start_matches("mqtt://").to_string()
        }
    });
    let Some((host, port)) = broker
        .rsplit_once(':')
        .and_then(|(h, p)| Some((h.to_string(), p.parse().ok()?)))
    else {
        eprintln!("--broker must be host:port, got {broker:?}");
        return std::process::ExitCode::from(2);
    };
    let opts = FleetOptions {
        host,
        port,
        prefix: cfg.mqtt.topic_prefix.clone(),
        client_id: format!("park-sim-{}", std::process::id()),
        silent_fraction: a.silent,
        flaky_fraction: a.flaky,
        stop_after: Duration::from_secs(a.stop_after_s),
        latency_ms: a.latency_ms,
        jitter_ms: a.jitter_ms,
        malformed_rate: a.malformed_rate,
        spike_rate: a.spike_rate,
        seed: a.seed,
        duration: a.duration_s.map(Duration::from_secs),
    };
    let devices = fleet::devices_from_config(&cfg, &opts);
    let silent = devices.iter().filter(|d| d.silent).count();
    eprintln!(
        "park-sim: {} devices ({} silent) → {}:{}",
        devices.len(),
        silent,
        opts.host,
        opts.port
    );
    let (tx, rx) = tokio::sync::broadcast::channel(1);
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        let _ = tx.send(());
    });
    let report = fleet::run(opts, devices, rx).await;
    eprintln!(
        "park-sim: published {} ({} malformed)",
        report.published, report.malformed
    );
    std::process::ExitCode::SUCCESS
}
