//! api-load: concurrent clients GET the given API paths in turn, flat out or at a total rate,
//! until `--requests` are done, `--seconds` have passed or SIGINT; then prints the request
//! rate and latency percentiles. Loopback only (a load tool, not a way to flood a gateway).

use clap::Parser;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(about = "HTTP load on the gateway's API (bounded in count and time)")]
struct Args {
    /// The API's base URL; must be on a loopback address.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// A path to GET (repeat for several: each client takes them in turn).
    #[arg(long = "path", required = true)]
    paths: Vec<String>,
    #[arg(long, default_value_t = 8)]
    clients: usize,
    /// Requests in all, at most.
    #[arg(long, default_value_t = 1_000_000)]
    requests: u64,
    #[arg(long, default_value_t = 60.0)]
    seconds: f64,
    /// Requests per second over all clients (default: flat out).
    #[arg(long)]
    rate: Option<f64>,
    /// A bearer token, when the API has `[[tokens]]`.
    #[arg(long)]
    token: Option<String>,
}

/// What one client saw: latencies of its successful requests (µs) and its failures.
#[derive(Default)]
struct Seen {
    micros: Vec<u64>,
    errors: u64,
    first_error: Option<String>,
}

async fn client(
    a: Arc<Args>,
    http: reqwest::Client,
    issued: Arc<AtomicU64>,
    start: Instant,
    stop: Instant,
) -> Seen {
    let mut seen = Seen::default();
    let mut k = 0usize;
    while Instant::now() < stop {
        let n = issued.fetch_add(1, Ordering::Relaxed);
        if n >= a.requests {
            break;
        }
        if let Some(r) = a.rate {
            let due = start + Duration::from_secs_f64(n as f64 / r);
            tokio::time::sleep_until(due.into()).await;
        }
        let path = &a.paths[k % a.paths.len()];
        k += 1;
        let mut req = http.get(format!("{}{path}", a.url));
        if let Some(t) = &a.token {
            req = req.bearer_auth(t);
        }
        let t0 = Instant::now();
        let res = match req.send().await {
            Ok(r) if r.status().is_success() => {
                r.bytes().await.map(|_| ()).map_err(|e| e.to_string())
            }
            Ok(r) => Err(format!("{path}: HTTP {}", r.status())),
            Err(e) => Err(format!("{path}: {e}")),
        };
        match res {
            Ok(()) => seen.micros.push(t0.elapsed().as_micros() as u64),
            Err(e) => {
                seen.errors += 1;
                seen.first_error.get_or_insert(e);
            }
        }
    }
    seen
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let a = Arc::new(Args::parse());
    let loopback = url::Url::parse(&a.url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .is_some_and(|h| {
            h == "localhost"
                || h.trim_matches(['[', ']'])
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        });
    if !loopback {
        eprintln!("api-load only targets loopback addresses, not {}", a.url);
        return std::process::ExitCode::from(2);
    }
    let http = match reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("api-load: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let start = Instant::now();
    let stop = start + Duration::from_secs_f64(a.seconds.max(0.0));
    let issued = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = (0..a.clients.max(1))
        .map(|_| tokio::spawn(client(a.clone(), http.clone(), issued.clone(), start, stop)))
        .collect();
    let all = futures::future::join_all(tasks);
    tokio::pin!(all);
    let done = tokio::select! {
        d = &mut all => d,
        _ = tokio::signal::ctrl_c() => {
            // Stop issuing; what is in flight finishes (each request is bounded by its timeout).
            issued.store(u64::MAX / 2, Ordering::Relaxed);
            all.await
        }
    };
    let elapsed = start.elapsed().as_secs_f64();
    let mut micros = Vec::new();
    let (mut errors, mut first_error) = (0u64, None);
    for s in done.into_iter().flatten() {
        micros.extend(s.micros);
        errors += s.errors;
        first_error = first_error.or(s.first_error);
    }
    micros.sort_unstable();
    println!(
        "requests {} errors {errors} in {elapsed:.3} s ({:.0} req/s); latency ms p50 {:.2} p99 {:.2} max {:.2}",
        micros.len(),
        micros.len() as f64 / elapsed.max(1e-9),
        percentile(&micros, 0.50),
        percentile(&micros, 0.99),
        percentile(&micros, 1.0),
    );
    if let Some(e) = first_error {
        eprintln!("api-load: first error: {e}");
    }
    std::process::ExitCode::SUCCESS
}
