//! console-load: the console in headless Chromium, for the benchmarks (scripts/bench-console.sh).
//! Starts Debian's chromedriver on a free loopback port and speaks WebDriver to it directly
//! (a few JSON calls). Two modes, bounded in count and time:
//!
//! - `load`: `--loads` cold loads of `{url}/#overview`, each in a fresh browser profile;
//!   per load, from navigation to the overview's figures drawn (the page's
//!   `performance.mark("overview-drawn")`), and the bytes transferred by type (the Resource
//!   Timing API); then the medians. One JSON line per load, a summary line at the end.
//! - `hold`: `--pages` windows of the console in one browser, held open `--seconds` (the
//!   live feed on in each), then closed; prints how many were live.
//!
//! The gateway must run without `[[tokens]]` (on loopback): the page then asks for nothing.

use clap::{Parser, Subcommand};
use serde_json::{json, Value};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(about = "The console in headless Chromium: load times and open pages")]
struct Args {
    /// The gateway's API; must be on a loopback address.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    #[command(subcommand)]
    cmd: Mode,
}

#[derive(Subcommand)]
enum Mode {
    Load {
        #[arg(long, default_value_t = 10)]
        loads: u32,
    },
    Hold {
        #[arg(long, default_value_t = 10)]
        pages: u32,
        #[arg(long, default_value_t = 60.0)]
        seconds: f64,
    },
}

/// chromedriver in its own process group, killed (with its Chromium) on drop.
struct Driver {
    child: Child,
    base: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("--")
            .arg(format!("-{}", self.child.id()))
            .status();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(9515)
}

fn start_driver() -> Result<Driver, String> {
    let port = free_port();
    let child = Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .arg("--allowed-ips=127.0.0.1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .map_err(|e| format!("start chromedriver (Debian chromium-driver): {e}"))?;
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            return Err("chromedriver did not listen within 20 s".into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(Driver {
        child,
        base: format!("http://127.0.0.1:{port}"),
    })
}

struct Session<'a> {
    http: &'a reqwest::Client,
    url: String,
    _profile: Profile,
}

/// A fresh Chromium profile directory, removed on drop (each load starts cold).
struct Profile(std::path::PathBuf);

impl Profile {
    fn new() -> Result<Profile, String> {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("console-load-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        Ok(Profile(dir))
    }
}

impl Drop for Profile {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl<'a> Session<'a> {
    async fn new(http: &'a reqwest::Client, d: &Driver) -> Result<Session<'a>, String> {
        let profile = Profile::new()?;
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": "/usr/bin/chromium", "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run",
                format!("--user-data-dir={}", profile.0.display()),
                "--window-size=1440,900",
            ]},
        }}});
        let v = call(
            http,
            reqwest::Method::POST,
            &format!("{}/session", d.base),
            caps,
        )
        .await?;
        let id = v["sessionId"].as_str().ok_or("no session id")?;
        Ok(Session {
            http,
            url: format!("{}/session/{id}", d.base),
            _profile: profile,
        })
    }

    async fn post(&self, path: &str, body: Value) -> Result<Value, String> {
        let url = format!("{}{path}", self.url);
        call(self.http, reqwest::Method::POST, &url, body).await
    }

    async fn js(&self, script: &str) -> Result<Value, String> {
        self.post("/execute/sync", json!({"script": script, "args": []}))
            .await
    }

    async fn quit(self) {
        let _ = call(self.http, reqwest::Method::DELETE, &self.url, json!({})).await;
    }
}

async fn call(
    http: &reqwest::Client,
    m: reqwest::Method,
    url: &str,
    body: Value,
) -> Result<Value, String> {
    let r = http.request(m, url).json(&body).send().await;
    let v: Value = r
        .map_err(|e| e.to_string())?
        .json()
        .await
        .map_err(|e| e.to_string())?;
    match v["value"].get("error") {
        Some(e) => Err(format!("{url}: {e}: {}", v["value"]["message"])),
        None => Ok(v["value"].clone()),
    }
}

/// Poll `script` until it returns something other than null, within `limit`.
async fn until(s: &Session<'_>, script: &str, limit: Duration) -> Result<Value, String> {
    let deadline = Instant::now() + limit;
    loop {
        let v = s.js(script).await?;
        if !v.is_null() {
            return Ok(v);
        }
        if Instant::now() > deadline {
            return Err(format!("the page did not get there within {limit:?}"));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

const MEASURE: &str = r#"
const drawn = performance.getEntriesByName("overview-drawn")[0];
if (!drawn) return null;
const nav = performance.getEntriesByType("navigation")[0];
const by = {};
for (const r of [nav, ...performance.getEntriesByType("resource")]) {
  const u = new URL(r.name);
  const ext = u.pathname.endsWith(".js") ? "js" : u.pathname.endsWith(".css") ? "css"
    : u.pathname.startsWith("/api/") ? "api" : r === nav ? "html" : "other";
  const b = by[ext] || (by[ext] = {count: 0, transfer: 0, body: 0});
  b.count += 1; b.transfer += r.transferSize; b.body += r.encodedBodySize;
}
return {drawn_ms: drawn.startTime, dom_content_loaded_ms: nav.domContentLoadedEventEnd, bytes: by};
"#;

async fn load(d: &Driver, url: &str, loads: u32) -> Result<(), String> {
    let http = reqwest::Client::new();
    let mut drawn = Vec::new();
    let mut static_kb = Vec::new();
    for i in 0..loads.min(100) {
        let s = Session::new(&http, d).await?;
        s.post("/url", json!({"url": format!("{url}/#overview")}))
            .await?;
        let m = until(&s, MEASURE, Duration::from_secs(30)).await?;
        s.quit().await;
        let b = &m["bytes"];
        let kb = |k: &str| b[k]["transfer"].as_f64().unwrap_or(0.0) / 1024.0;
        let statics = kb("js") + kb("css");
        println!(
            "{}",
            json!({"load": i + 1, "measured": m, "js_css_kb": statics})
        );
        drawn.push(m["drawn_ms"].as_f64().unwrap_or(f64::NAN));
        static_kb.push(statics);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
    };
    let (min, max) = (
        drawn.iter().copied().fold(f64::INFINITY, f64::min),
        drawn.iter().copied().fold(0.0, f64::max),
    );
    println!(
        "{}",
        json!({"summary": {"loads": drawn.len(), "drawn_ms_median": median(&mut drawn),
            "drawn_ms_min": min, "drawn_ms_max": max, "js_css_kb_median": median(&mut static_kb)}})
    );
    Ok(())
}

async fn hold(d: &Driver, url: &str, pages: u32, seconds: f64) -> Result<(), String> {
    let http = reqwest::Client::new();
    let s = Session::new(&http, d).await?;
    for i in 0..pages.min(50) {
        if i > 0 {
            let w = s.post("/window/new", json!({"type": "tab"})).await?;
            let handle = w["handle"].as_str().ok_or("no window handle")?.to_string();
            s.post("/window", json!({"handle": handle})).await?;
        }
        s.post("/url", json!({"url": format!("{url}/#site")}))
            .await?;
        let live = "return document.getElementById('live').dataset.state === 'open' ? true : null";
        until(&s, live, Duration::from_secs(30)).await?;
    }
    println!("{}", json!({"pages_live": pages.min(50)}));
    // Until the time is up or SIGTERM/SIGINT: then the browser is closed (the driver's
    // process group killed on drop), so no page outlives the phase it was opened for.
    let hold = tokio::time::sleep(Duration::from_secs_f64(seconds.clamp(0.0, 3600.0)));
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| e.to_string())?;
    tokio::select! {
        _ = hold => {}
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    s.quit().await;
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    let a = Args::parse();
    let loopback = url::Url::parse(&a.url)
        .ok()
        .and_then(|u| u.host_str().map(|h| h == "127.0.0.1" || h == "localhost"))
        .unwrap_or(false);
    if !loopback {
        eprintln!("--url must be a loopback address, got {}", a.url);
        return std::process::ExitCode::from(2);
    }
    let r = match start_driver() {
        Err(e) => Err(e),
        Ok(d) => match a.cmd {
            Mode::Load { loads } => load(&d, &a.url, loads).await,
            Mode::Hold { pages, seconds } => hold(&d, &a.url, pages, seconds).await,
        },
    };
    match r {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("console-load: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
