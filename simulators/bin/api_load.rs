//! api-load: concurrent clients GET the given API paths in turn (or, with `--push N`, POST
//! batches of N generated readings to them: HTTP push), flat out or at a total rate, until
//! `--requests` are done, `--seconds` have passed or SIGINT; then prints the request rate (and
//! readings rate) and latency percentiles. Each client keeps its connection alive. Loopback
//! only (a load tool, not a way to flood a gateway).

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
    /// POST batches of this many readings (devices d0… in turn, each reading a new time of
    /// its device) instead of GETs; a request counts as done when answered 200.
    #[arg(long)]
    push: Option<usize>,
    /// Devices the pushed readings take turns over.
    #[arg(long, default_value_t = 1000)]
    devices: usize,
    /// `native` (a JSON array of readings) or `ministry` (the envelope, for a mapping).
    #[arg(long, value_enum, default_value = "native")]
    format: safegate::simulators::loadgen::Format,
    /// Trust this PEM certificate (an HTTPS API with a self-signed certificate).
    #[arg(long)]
    ca: Option<std::path::PathBuf>,
}

/// The body of push request `n`: readings `n * per .. (n + 1) * per` of the run, reading `g`
/// for device `g % devices` at its `g / devices`-th time step (ms, or s for the envelope,
/// whose times are whole seconds) after `first`.
fn push_body(a: &Args, n: u64, per: usize, first_s: i64) -> String {
    use safegate::simulators::loadgen::{beijing_time, Format};
    let devices = a.devices.max(1) as u64;
    let g0 = n * per as u64;
    match a.format {
        Format::Native => {
            let items: Vec<String> = (g0..g0 + per as u64)
                .map(|g| {
                    let ts = first_s * 1000 + (g / devices) as i64;
                    let v = (g % 20) as f64 + 0.5;
                    format!(
                        r#"{{"device":"d{}","ts":{ts},"values":{{"v":{v:?}}}}}"#,
                        g % devices
                    )
                })
                .collect();
            format!("[{}]", items.join(","))
        }
        Format::Ministry => {
            let items: Vec<String> = (g0..g0 + per as u64)
                .map(|g| {
                    let t = beijing_time(first_s + (g / devices) as i64);
                    let v = (g % 20) as f64 + 0.5;
                    format!(
                        r#"{{"pointCode":"d{}","sensorType":"0001","pointValue":{v:?},"valueUnit":"%LEL","pointStatus":"00000000","dataTime":"{t}"}}"#,
                        g % devices
                    )
                })
                .collect();
            format!(
                r#"{{"dataId":"{n}","enterpriseCode":"bench","gatewayCode":"gw1","collectTime":"{}","isConnectDataSource":true,"reportType":"report","dataType":"realtime","datas":[{}]}}"#,
                beijing_time(first_s),
                items.join(",")
            )
        }
    }
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
    first_s: i64,
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
        let url = format!("{}{path}", a.url);
        let mut req = match a.push {
            Some(per) => http
                .post(url)
                .header("content-type", "application/json")
                .body(push_body(&a, n, per, first_s)),
            None => http.get(url),
        };
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
    let mut builder = reqwest::Client::builder().timeout(Duration::from_secs(30));
    if let Some(ca) = &a.ca {
        match std::fs::read(ca).map(|pem| reqwest::Certificate::from_pem(&pem)) {
            Ok(Ok(c)) => builder = builder.add_root_certificate(c),
            Ok(Err(e)) => return fail(&format!("--ca {}: {e}", ca.display())),
            Err(e) => return fail(&format!("--ca {}: {e}", ca.display())),
        }
    }
    // Pushed readings span the run's requests, ending before now: none is in the future.
    let first_s = {
        let per = a.push.unwrap_or(0) as u64;
        let steps = a.requests.saturating_mul(per) / a.devices.max(1) as u64;
        let steps_s = if a.format == safegate::simulators::loadgen::Format::Native {
            steps / 1000
        } else {
            steps
        };
        safegate::model::now_ms() / 1000 - steps_s as i64 - 2
    };
    let http = match builder.build() {
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
        .map(|_| {
            let (a, http, issued) = (a.clone(), http.clone(), issued.clone());
            tokio::spawn(client(a, http, issued, start, stop, first_s))
        })
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
    if let Some(per) = a.push {
        println!(
            "readings {} in {elapsed:.3} s ({:.0} readings/s)",
            micros.len() * per,
            (micros.len() * per) as f64 / elapsed.max(1e-9)
        );
    }
    if let Some(e) = first_error {
        eprintln!("api-load: first error: {e}");
    }
    std::process::ExitCode::SUCCESS
}

fn fail(e: &str) -> std::process::ExitCode {
    eprintln!("api-load: {e}");
    std::process::ExitCode::FAILURE
}
