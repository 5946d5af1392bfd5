//! video-sim: GB/T 28181 NVRs and their cameras against the gateway's SIP endpoint over UDP:
//! each registers with its digest, keeps alive every `--keepalive-ms`, answers the catalog
//! query with its channels. Bounded in time; prints one JSON summary line on stdout (devices
//! registered, keepalives sent and answered, the keepalive → 200 round trip p50/p99).
//! The devices themselves are `safegate::simulators::video`'s; see docs/video.md.

use clap::Parser;
use safegate::simulators::video::{self, VideoFleet, VideoStats};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(about = "GB/T 28181 NVRs keeping alive with the gateway's SIP endpoint", long_about = None)]
struct Args {
    /// The gateway's SIP endpoint (its `[video] listen`).
    #[arg(long, default_value = "127.0.0.1:5060")]
    server: SocketAddr,
    /// The gateway's `[video] server_id`.
    #[arg(long, default_value = "34020000002000000001")]
    server_id: String,
    /// The SIP domain (default: the first 10 digits of the server ID).
    #[arg(long)]
    domain: Option<String>,
    /// The environment variable holding the devices' password.
    #[arg(long, default_value = "SAFEGATE_VIDEO_PASSWORD")]
    password_env: String,
    /// NVRs, IDs `<domain>118<0000001…>`.
    #[arg(long, default_value_t = 2)]
    nvrs: usize,
    /// Cameras per NVR, IDs `<domain>132<…>`; the last of each is OFF.
    #[arg(long, default_value_t = 4)]
    channels: usize,
    /// Keepalive interval (60 s on real devices; compress it to load the gateway).
    #[arg(long, default_value_t = 60_000)]
    keepalive_ms: u64,
    /// Source addresses 127.0.0.2, .3, …: the gateway bounds messages per address.
    #[arg(long, default_value_t = 1)]
    sources: u8,
    /// Stop after this many seconds.
    #[arg(long, default_value_t = 30)]
    duration_s: u64,
    /// Leave the first this many seconds out of the round-trip figures (registration).
    #[arg(long, default_value_t = 0)]
    warmup_s: u64,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let a = Args::parse();
    let password = std::env::var(&a.password_env)
        .map_err(|_| format!("environment variable {} is not set", a.password_env))?;
    let domain = a
        .domain
        .clone()
        .unwrap_or_else(|| a.server_id.chars().take(10).collect());
    let sources: Vec<IpAddr> = (0..a.sources.max(1))
        .map(|i| IpAddr::from([127, 0, 0, 2 + i.min(250)]))
        .collect();
    let fleet = VideoFleet {
        server: a.server,
        server_id: a.server_id.clone(),
        domain: domain.clone(),
        password,
        keepalive: Duration::from_millis(a.keepalive_ms.max(1)),
        devices: video::nvrs(&domain, a.nvrs, a.channels),
        sources,
    };
    let stats = Arc::new(VideoStats::default());
    let (stop, _) = tokio::sync::broadcast::channel(1);
    let run = tokio::spawn(video::run(fleet, stats.clone(), stop.clone()));
    let start = Instant::now();
    tokio::time::sleep(Duration::from_secs(a.warmup_s)).await;
    let sent0 = stats.keepalives.load(Ordering::Relaxed);
    let ok0 = stats.keepalive_ok.load(Ordering::Relaxed);
    if let Ok(mut v) = stats.rtt_us.lock() {
        v.clear();
    }
    let measured = Instant::now();
    tokio::time::sleep(Duration::from_secs(a.duration_s.saturating_sub(a.warmup_s))).await;
    let secs = measured.elapsed().as_secs_f64();
    let _ = stop.send(());
    let _ = run.await;
    let load = |x: &std::sync::atomic::AtomicU64| x.load(Ordering::Relaxed);
    let (sent, ok) = (
        load(&stats.keepalives) - sent0,
        load(&stats.keepalive_ok) - ok0,
    );
    let summary = serde_json::json!({
        "nvrs": a.nvrs,
        "registered": load(&stats.registered),
        "refused": load(&stats.refused),
        "catalogs": load(&stats.catalogs),
        "keepalives_sent": sent,
        "keepalives_answered": ok,
        "keepalives_per_s": (ok as f64 / secs).round(),
        "rtt_p50_us": stats.rtt_quantile(0.5),
        "rtt_p99_us": stats.rtt_quantile(0.99),
        "rtt_max_us": stats.rtt_quantile(1.0),
        "seconds": start.elapsed().as_secs_f64(),
    });
    println!("{summary}");
    Ok(())
}
