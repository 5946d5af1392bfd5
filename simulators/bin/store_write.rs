//! store-write: the reference for the batch benchmark. Posts readings straight to the store's
//! `/api/v2/write` (InfluxDB 2, or VictoriaMetrics which takes the same), as the gateway would
//! write them, so the gateway's end-to-end rate can be quoted as a share of what the store
//! itself takes in the same run (`scripts/bench-ingest.sh`, phases T and R).
//!
//! The points are exactly those of `loadgen publish --per-message N` for the same site and
//! device count: reading `g` is device `d{g % devices}` at ms `ts0 + g` with
//! `loadgen::value(g)`, encoded by the gateway's own `LineEncoder`. Every body is built
//! before the clock starts, so the figure is the store's (and the HTTP client's), not ours.
//! Loopback only; bounded by `--max-duration-s`.

use clap::Parser;
use safegate::core::ReadingStatus;
use safegate::simulators::loadgen;
use safegate::sinks::store::record::{LineEncoder, Record, Tags};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(about = "Write readings straight to the store, timed (the benchmark's reference)")]
struct Args {
    /// The store's base URL; must be a loopback address.
    #[arg(long, default_value = "http://127.0.0.1:8428")]
    url: String,
    #[arg(long, default_value = "bench")]
    org: String,
    #[arg(long, default_value = "bench")]
    bucket: String,
    #[arg(long, default_value = "bench")]
    site: String,
    #[arg(long, default_value_t = 1000)]
    devices: usize,
    /// Points in all.
    #[arg(long, default_value_t = 500_000)]
    count: u64,
    /// Lines per request (the gateway's `store.batch_size` is 5000).
    #[arg(long, default_value_t = 5000)]
    per_body: usize,
    /// Keep-alive connections posting in parallel (bodies are taken in order).
    #[arg(long, default_value_t = 1)]
    connections: usize,
    /// Time of reading 0, ms since the epoch (default: `count` ms ago).
    #[arg(long)]
    ts0: Option<i64>,
    #[arg(long, default_value_t = 300)]
    max_duration_s: u64,
}

/// Line protocol for readings `0 .. count`, in bodies of `per_body` lines.
fn bodies(a: &Args, ts0: i64) -> Result<Vec<Vec<u8>>, String> {
    let site: Arc<str> = a.site.as_str().into();
    let devices = a.devices.max(1);
    let tags: Vec<Tags> = (0..devices)
        .map(|d| Tags {
            site: site.clone(),
            device: format!("d{d}").into(),
            kind: "gas_combustible",
            enterprise: None,
            zone: None,
            system: None,
            gas: None,
        })
        .collect();
    let mut enc = LineEncoder::default();
    let mut out = Vec::new();
    let mut body = Vec::new();
    for g in 0..a.count {
        let r = Record::Reading {
            tags: tags[(g % devices as u64) as usize].clone(),
            ts_ms: ts0 + g as i64,
            ts_from_gateway: false,
            status: ReadingStatus::Normal,
            values: vec![("v".into(), loadgen::value(g, devices, None))],
        };
        enc.encode(&r, &mut body).map_err(|e| e.to_string())?;
        if (g + 1) % a.per_body.max(1) as u64 == 0 {
            out.push(std::mem::take(&mut body));
        }
    }
    if !body.is_empty() {
        out.push(body);
    }
    Ok(out)
}

async fn run(a: Args) -> Result<String, String> {
    let base = url::Url::parse(&a.url).map_err(|e| format!("--url: {e}"))?;
    if !matches!(base.host_str(), Some("127.0.0.1" | "localhost" | "[::1]")) {
        return Err(format!("--url {} is not a loopback address", a.url));
    }
    let url = safegate::sinks::store::write_url(base.as_str(), &a.org, &a.bucket)
        .map_err(|e| e.to_string())?;
    let ts0 = a
        .ts0
        .unwrap_or_else(|| safegate::model::now_ms() - a.count as i64);
    let bodies = Arc::new(bodies(&a, ts0)?);
    let bytes: usize = bodies.iter().map(Vec::len).sum();
    let next = Arc::new(AtomicUsize::new(0));
    // The first write creates the series in the store, which costs far more than the rest.
    let first_ms = Arc::new(std::sync::OnceLock::new());
    let deadline = Instant::now() + Duration::from_secs(a.max_duration_s);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..a.connections.max(1) {
        // One client per connection, so each task keeps its own keep-alive connection.
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(1)
            .build()
            .map_err(|e| e.to_string())?;
        let (bodies, next, url, first_ms) =
            (bodies.clone(), next.clone(), url.clone(), first_ms.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(body) = bodies.get(i) else {
                    return Ok(());
                };
                if Instant::now() > deadline {
                    return Err("--max-duration-s reached".to_string());
                }
                let resp = http
                    .post(url.clone())
                    .header("Content-Type", "text/plain; charset=utf-8")
                    .body(body.clone())
                    .send()
                    .await
                    .map_err(|e| format!("body {i}: {e}"))?;
                if i == 0 {
                    let _ = first_ms.set(start.elapsed().as_secs_f64() * 1000.0);
                }
                let status = resp.status();
                if !status.is_success() {
                    let text = resp.text().await.unwrap_or_default();
                    return Err(format!("body {i}: HTTP {status}: {text}"));
                }
            }
        }));
    }
    for t in tasks {
        t.await.map_err(|e| e.to_string())??;
    }
    let s = start.elapsed().as_secs_f64();
    Ok(format!(
        "wrote {} points in {s:.3} s ({:.0} points/s; {} bodies, {bytes} bytes, {} connection(s), first body answered after {:.1} ms, ts0 {ts0})",
        a.count,
        a.count as f64 / s,
        bodies.len(),
        a.connections.max(1),
        first_ms.get().copied().unwrap_or(0.0)
    ))
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run(Args::parse()).await {
        Ok(line) => {
            println!("{line}");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("store-write: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
