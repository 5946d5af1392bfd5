//! `safegate demo`: the gateway on its embedded broker, a simulated park and mine publishing
//! through it (some devices deliberately silent, some going quiet after a while), and the API.
//! Needs nothing but this binary: the demo configuration is built in.

use crate::config;
use crate::simulators::fleet::{self, FleetOptions};
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

const MAIN: &str = include_str!("../../config/demo/safegate.toml");
const PARK: &str = include_str!("../../config/demo/inventory/park.toml");
const MINE: &str = include_str!("../../config/demo/inventory/mine.toml");

#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// API address (port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub api: SocketAddr,
    /// Embedded broker address (port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:1883")]
    pub broker: SocketAddr,
    /// Stop after this many seconds (default: until Ctrl-C).
    #[arg(long)]
    pub duration_s: Option<u64>,
    /// Where the demo keeps its state (default: a fresh temporary directory).
    #[arg(long)]
    pub data_dir: Option<std::path::PathBuf>,
}

fn free_port(addr: SocketAddr) -> std::io::Result<SocketAddr> {
    if addr.port() != 0 {
        return Ok(addr);
    }
    std::net::TcpListener::bind(addr)?.local_addr()
}

pub async fn run(args: DemoArgs) -> Result<(), Box<dyn std::error::Error>> {
    let dir = match &args.data_dir {
        Some(d) => d.clone(),
        None => std::env::temp_dir().join(format!("safegate-demo-{}", std::process::id())),
    };
    let conf = dir.join("config");
    std::fs::create_dir_all(conf.join("inventory"))?;
    std::fs::write(conf.join("inventory/park.toml"), PARK)?;
    std::fs::write(conf.join("inventory/mine.toml"), MINE)?;
    let main = conf.join("safegate.toml");
    std::fs::write(&main, MAIN)?;
    let mut loaded = config::load(&main).map_err(|errs| {
        errs.iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    })?;
    let broker = free_port(args.broker)?;
    loaded.config.mqtt.listen = broker;
    loaded.config.api.listen = args.api;
    loaded.config.gateway.data_dir = dir.join("state");
    let cfg = loaded.config.clone();
    let gw = crate::runtime::start(loaded).await?;

    let opts = FleetOptions {
        host: broker.ip().to_string(),
        port: broker.port(),
        prefix: cfg.mqtt.topic_prefix.clone(),
        client_id: "demo-park-sim".into(),
        silent_fraction: 0.15,
        flaky_fraction: 0.10,
        stop_after: Duration::from_secs(40),
        latency_ms: 80,
        jitter_ms: 120,
        malformed_rate: 0.02,
        seed: 2023,
        duration: args.duration_s.map(Duration::from_secs),
    };
    let devices = fleet::devices_from_config(&cfg, &opts);
    let silent = devices.iter().filter(|d| d.silent).count();
    let flaky = devices.iter().filter(|d| d.flaky).count();
    let sim = tokio::spawn(fleet::run(opts, devices.clone(), gw.shutdown_signal()));

    let base = format!("http://{}", gw.api_addr);
    println!("safegate demo is running (state in {}).", dir.display());
    println!(
        "  fleet: {} simulated MQTT devices, {} silent from the start, {} go quiet after 40 s, ~2% malformed messages",
        devices.len(),
        silent,
        flaky
    );
    println!("  embedded broker: mqtt://{broker}");
    println!("  sites and online rates: {base}/api/v1/sites");
    println!("  devices:                {base}/api/v1/devices");
    println!("  offline devices:        {base}/api/v1/devices?state=offline");
    println!("  rejected inputs:        {base}/api/v1/rejections");
    println!("  metrics:                {base}/metrics");
    println!("  readiness:              {base}/readyz");
    println!("Press Ctrl-C to stop.");

    match args.duration_s {
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
    gw.stop().await;
    let _ = sim.await;
    if args.data_dir.is_none() {
        let _ = std::fs::remove_dir_all(Path::new(&dir));
    }
    Ok(())
}
