//! Test harness: real Mosquitto and VictoriaMetrics processes on free loopback ports, the
//! gateway in-process, and small HTTP/MQTT helpers. Nothing is mocked.
#![allow(dead_code)]

pub mod browser;
pub mod inventory;
pub mod nats;
pub mod proxy;
pub mod sipp;

pub use inventory::Inventory;

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
pub use safegate::telemetry::{Clock, ManualClock};
use serde_json::Value;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// All the integration tests share one process. The one that measures Modbus poll periods runs
/// alone (`alone`): on a 2-core machine the brokers, stores, gateways and Python servers of the
/// tests beside it ate into its slack. Every other test that starts them holds `shared` while it
/// runs; the two-minute store outage does not: it is light, and waiting for it would idle a
/// test thread for minutes. Nor do the synchronous tests (configuration checks, properties),
/// which start no broker or store.
static LOAD: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

pub async fn shared() -> tokio::sync::RwLockReadGuard<'static, ()> {
    LOAD.read().await
}

pub async fn alone() -> tokio::sync::RwLockWriteGuard<'static, ()> {
    LOAD.write().await
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind an ephemeral port")
        .local_addr()
        .unwrap()
        .port()
}

fn wait_port(port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{what} did not start listening on 127.0.0.1:{port} within 20 s");
}

pub fn which(bin: &str) -> PathBuf {
    for dir in ["/usr/sbin", "/usr/bin", "/usr/local/bin", "/usr/local/sbin"] {
        let p = Path::new(dir).join(bin);
        if p.exists() {
            return p;
        }
    }
    panic!("{bin} is not installed: run ./scripts/test.sh, which installs it")
}

/// A Mosquitto broker on a free loopback port. Killed on drop.
pub struct Mosquitto {
    pub port: u16,
    pub dir: tempfile::TempDir,
    child: Option<Child>,
    /// A whole configuration instead of the default plain listener.
    conf: Option<String>,
}

impl Mosquitto {
    pub fn start() -> Mosquitto {
        let dir = tempfile::tempdir().unwrap();
        let mut m = Mosquitto {
            port: free_port(),
            dir,
            child: None,
            conf: None,
        };
        m.spawn();
        m
    }

    /// A broker with the configuration `conf(port, dir)` writes (TLS listeners, ACLs …).
    pub fn start_with(conf: impl FnOnce(u16, &Path) -> String) -> Mosquitto {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let text = conf(port, dir.path());
        let mut m = Mosquitto {
            port,
            dir,
            child: None,
            conf: Some(text),
        };
        m.spawn();
        m
    }

    fn spawn(&mut self) {
        // Started as root, Mosquitto drops to its own user: let it write its persistence file.
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(self.dir.path(), std::fs::Permissions::from_mode(0o777));
        let conf = self.dir.path().join("mosquitto.conf");
        let text = self.conf.clone().unwrap_or_else(|| {
            format!(
                "listener {} 127.0.0.1\nallow_anonymous true\npersistence true\npersistence_location {}/\nmax_queued_messages 0\nlog_dest none\n",
                self.port,
                self.dir.path().display()
            )
        });
        std::fs::write(&conf, text).unwrap();
        let child = Command::new(which("mosquitto"))
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start mosquitto");
        self.child = Some(child);
        wait_port(self.port, "mosquitto");
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SIGTERM lets it save its persistence file, like a service restart.
            let _ = Command::new("kill").arg(c.id().to_string()).status();
            let _ = c.wait();
        }
    }

    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// VictoriaMetrics, standing in for InfluxDB 2 (same `/api/v2/write`). Killed on drop.
pub struct Victoria {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
    args: Vec<String>,
}

impl Victoria {
    pub fn start() -> Victoria {
        Victoria::start_with_args(&[])
    }

    /// With these flags too (`-dedup.minScrapeInterval=1ms`, as a replicated deployment).
    pub fn start_with_args(args: &[&str]) -> Victoria {
        let mut v = Victoria {
            port: free_port(),
            dir: tempfile::tempdir().unwrap(),
            child: None,
            args: args.iter().map(|a| a.to_string()).collect(),
        };
        v.spawn();
        v
    }

    fn spawn(&mut self) {
        let child = Command::new(which("victoria-metrics"))
            .arg(format!("-httpListenAddr=127.0.0.1:{}", self.port))
            .arg(format!("-storageDataPath={}", self.dir.path().display()))
            .arg("-retentionPeriod=100y")
            .arg("-loggerLevel=ERROR")
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start victoria-metrics");
        self.child = Some(child);
        wait_port(self.port, "victoria-metrics");
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill").arg(c.id().to_string()).status();
            let _ = c.wait();
        }
    }

    pub fn start_again(&mut self) {
        self.spawn();
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Every sample of the series matching `selector`, as (labels, values, timestamps).
    pub async fn export(&self, selector: &str) -> Vec<Series> {
        let http = reqwest::Client::new();
        let _ = http
            .get(format!("{}/internal/force_flush", self.url()))
            .send()
            .await;
        let body = http
            .get(format!("{}/api/v1/export", self.url()))
            .query(&[("match[]", selector)])
            .send()
            .await
            .expect("export from victoria-metrics")
            .text()
            .await
            .unwrap();
        body.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                let v: Value = serde_json::from_str(l).expect("export line is JSON");
                Series {
                    labels: v["metric"].clone(),
                    values: v["values"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|x| x.as_f64().unwrap())
                        .collect(),
                    timestamps: v["timestamps"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|x| x.as_i64().unwrap())
                        .collect(),
                }
            })
            .collect()
    }

    /// Poll `export` until `done` holds, or panic after `within`.
    pub async fn wait_for(
        &self,
        selector: &str,
        within: Duration,
        done: impl Fn(&[Series]) -> bool,
    ) -> Vec<Series> {
        let deadline = Instant::now() + within;
        loop {
            let s = self.export(selector).await;
            if done(&s) {
                return s;
            }
            if Instant::now() > deadline {
                panic!("store never satisfied the condition for {selector}; last export: {s:?}");
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

impl Victoria {
    /// VictoriaMetrics' own count of the rows it was sent over InfluxDB line protocol since
    /// it started (`vm_rows_inserted_total{type="influx"}`): what the gateway posted,
    /// duplicates included.
    pub async fn rows_inserted(&self) -> f64 {
        let text = reqwest::get(format!("{}/metrics", self.url()))
            .await
            .expect("victoria-metrics /metrics")
            .text()
            .await
            .unwrap();
        metric(&text, "vm_rows_inserted_total{type=\"influx\"}").unwrap_or(0.0)
    }
}

impl Drop for Victoria {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

#[derive(Debug, Clone)]
pub struct Series {
    pub labels: Value,
    pub values: Vec<f64>,
    pub timestamps: Vec<i64>,
}

impl Series {
    pub fn label(&self, k: &str) -> &str {
        self.labels[k].as_str().unwrap_or("")
    }
}

/// A configuration file written to a temp dir; `inventory` is TOML appended after settings.
pub struct TestConfig {
    pub dir: tempfile::TempDir,
    pub path: PathBuf,
}

impl TestConfig {
    pub fn new(settings: &str, inventory: &str) -> TestConfig {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("safegate.toml");
        let text = format!(
            "{settings}\n[gateway]\ndata_dir = \"{}\"\n\n{inventory}",
            dir.path().join("state").display()
        );
        std::fs::write(&path, text).unwrap();
        TestConfig { dir, path }
    }

    pub fn load(&self) -> safegate::config::LoadedConfig {
        safegate::config::load(&self.path).unwrap_or_else(|e| panic!("config: {e:?}"))
    }
}

/// Settings for a gateway on `mqtt_url`, optionally writing to `store_url`, API on port 0.
pub fn settings(mqtt_url: &str, client_id: &str, store_url: Option<&str>) -> String {
    let mut s = format!(
        "[mqtt]\nurl = \"{mqtt_url}\"\nclient_id = \"{client_id}\"\nreconnect_min_ms = 100\nreconnect_max_ms = 1000\n\n[api]\nlisten = \"127.0.0.1:0\"\n\n"
    );
    if let Some(u) = store_url {
        s.push_str(&format!(
            "[store]\nurl = \"{u}\"\norg = \"safety\"\nbucket = \"safegate\"\nflush_interval_ms = 100\nbatch_size = 500\n\n"
        ));
    }
    s
}

/// Connect a client and drive its event loop in the background (retrying after errors), counting
/// the broker's PUBACKs; returns once the broker accepted the connection.
async fn drive_client(
    o: MqttOptions,
    cap: usize,
) -> (
    AsyncClient,
    std::sync::Arc<std::sync::atomic::AtomicU64>,
    tokio::task::JoinHandle<()>,
) {
    let (client, mut el) = AsyncClient::new(o, cap);
    let acked = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let (tx, rx) = tokio::sync::oneshot::channel();
    let mut tx = Some(tx);
    let a = acked.clone();
    let task = tokio::spawn(async move {
        loop {
            match el.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    if let Some(t) = tx.take() {
                        let _ = t.send(());
                    }
                }
                Ok(Event::Incoming(Packet::PubAck(_))) => {
                    a.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    });
    tokio::time::timeout(Duration::from_secs(10), rx)
        .await
        .expect("publisher connected within 10 s")
        .unwrap();
    (client, acked, task)
}

/// A publishing MQTT client, driven in the background.
pub struct Publisher {
    pub client: AsyncClient,
    acked: std::sync::Arc<std::sync::atomic::AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Publisher {
    pub async fn connect(port: u16, id: &str) -> Publisher {
        let mut o = MqttOptions::new(id, "127.0.0.1", port);
        o.set_keep_alive(Duration::from_secs(30));
        Publisher::connect_with(o).await
    }

    /// Connect with these options (TLS, credentials …); returns once the broker accepted.
    pub async fn connect_with(o: MqttOptions) -> Publisher {
        let (client, acked, task) = drive_client(o, 1000).await;
        Publisher {
            client,
            acked,
            task,
        }
    }

    /// Wait until the broker has acknowledged `n` QoS 1 messages of this client (so it has
    /// routed, or refused, each of them).
    pub async fn wait_acked(&self, n: u64) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.acked.load(std::sync::atomic::Ordering::Relaxed) < n {
            assert!(
                Instant::now() < deadline,
                "the broker acknowledged fewer than {n}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub async fn send(&self, topic: &str, payload: impl Into<Vec<u8>>) {
        self.client
            .publish(topic, QoS::AtLeastOnce, false, payload.into())
            .await
            .expect("publish");
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub async fn get(url: &str) -> (u16, Value) {
    let r = reqwest::get(url).await.expect("HTTP GET");
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

pub async fn get_text(url: &str) -> String {
    reqwest::get(url).await.unwrap().text().await.unwrap()
}

/// Start the gateway on `cfg` and wait until it is subscribed to MQTT; returns it and the
/// API's base URL.
pub async fn start_ready(cfg: &TestConfig) -> (safegate::runtime::Gateway, String) {
    start_ready_on(cfg, Clock::system()).await
}

/// `start_ready` on `clock` (a `test_clock`'s handle).
pub async fn start_ready_on(
    cfg: &TestConfig,
    clock: Clock,
) -> (safegate::runtime::Gateway, String) {
    let gw = safegate::runtime::start_with(cfg.load(), clock)
        .await
        .unwrap();
    let api = format!("http://{}", gw.api_addr);
    wait_json(&format!("{api}/readyz"), Duration::from_secs(20), |v| {
        v["mqtt"]["connected"] == true
    })
    .await;
    (gw, api)
}

/// Poll `url` until `done` holds on its JSON, or panic after `within`.
pub async fn wait_json(url: &str, within: Duration, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let (_, v) = get(url).await;
        if done(&v) {
            return v;
        }
        if Instant::now() > deadline {
            panic!("{url} never satisfied the condition; last: {v}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Value of a Prometheus sample line `name{labels} value` in `/metrics` text.
pub fn metric(text: &str, name_and_labels: &str) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let (k, v) = l.rsplit_once(' ')?;
        (k == name_and_labels).then(|| v.parse().ok())?
    })
}

pub fn now_ms() -> i64 {
    safegate::telemetry::now_ms()
}

/// A clock for a gateway that stands still until the test advances it. It starts an hour
/// behind the wall clock, so that what reads the wall clock (the `report` command measures up
/// to its now) sees every time the gateway stamped as past. Readings stamped by the test must
/// take their `ts` from it.
pub fn test_clock() -> ManualClock {
    ManualClock::new(now_ms() - 3_600_000)
}

/// Publish a reading (`lel` 1) of each of `devices` of `site` and wait until the gateway has
/// them all (`seen_now`).
pub async fn report_now(
    clock: &ManualClock,
    p: &Publisher,
    api: &str,
    site: &str,
    devices: &[&str],
) {
    for d in devices {
        p.send(
            &format!("safegate/v1/{site}/{d}/data"),
            r#"{"values":{"lel":1}}"#,
        )
        .await;
    }
    seen_now(clock, api, site, devices).await;
}

/// Wait until the gateway has seen each of `devices` of `site` at `clock`'s now: what they
/// sent is in, and the clock can move on.
pub async fn seen_now(clock: &ManualClock, api: &str, site: &str, devices: &[&str]) {
    let now = clock.now_ms();
    let seen = |v: &Value, d: &str| {
        let at = device(v, d)["last_seen"].as_str();
        at.and_then(safegate::sources::mqtt::payload::parse_rfc3339_ms) == Some(now)
    };
    let url = format!("{api}/api/v1/devices?site={site}");
    wait_json(&url, Duration::from_secs(10), |v| {
        devices.iter().all(|d| seen(v, d))
    })
    .await;
}

/// Wait until the gateway has acknowledged to the broker every message it took: stopped after
/// this, it is delivered none of them again.
pub async fn acks_sent(api: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let m = get_text(&format!("{api}/metrics")).await;
        if metric(&m, "safegate_mqtt_acks_pending") == Some(0.0) {
            return;
        }
        assert!(Instant::now() < deadline, "acknowledgements pending: {m}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One indicator (by id and qualifier, `None` for none) from a `GET /api/v1/indicators` answer.
pub fn indicator(answer: &Value, id: &str, qualifier: Option<&str>) -> Value {
    answer["indicators"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|i| {
            i["id"] == id
                && match qualifier {
                    None => i["qualifier"].is_null(),
                    Some(q) => i["qualifier"] == q,
                }
        })
        .unwrap_or_else(|| panic!("{id} {qualifier:?} in {answer}"))
        .clone()
}

/// One device from a `GET /api/v1/devices` listing.
pub fn device<'a>(list: &'a Value, id: &str) -> &'a Value {
    list["devices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["id"] == id)
        .unwrap_or_else(|| panic!("device {id} not listed in {list}"))
}

impl Mosquitto {
    /// A broker with the tuned settings shipped in `config/mosquitto/mosquitto.conf` (from its
    /// marker line down), persistence in the test's directory.
    pub fn start_tuned() -> Mosquitto {
        let shipped = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("config/mosquitto/mosquitto.conf"),
        )
        .expect("config/mosquitto/mosquitto.conf");
        let tuning = shipped
            .split_once("# --- safegate tuning")
            .expect("marker line in the shipped mosquitto.conf")
            .1
            .to_string();
        Mosquitto::start_with(move |port, dir| {
            format!(
                "listener {port} 127.0.0.1\nallow_anonymous true\npersistence_location {}/\nlog_dest none\n# --- safegate tuning{tuning}",
                dir.display()
            )
        })
    }
}

/// The gateway as its own process (the `safegate` binary), so a test can `kill -9` it.
/// Its log goes to `gateway.log` beside the configuration.
pub struct GatewayProc {
    child: Option<Child>,
    config: PathBuf,
    log: PathBuf,
    pub api: String,
}

impl GatewayProc {
    /// Not started yet; `api_port` must be the one in the configuration.
    pub fn new(cfg: &TestConfig, api_port: u16) -> GatewayProc {
        GatewayProc {
            child: None,
            config: cfg.path.clone(),
            log: cfg.dir.path().join("gateway.log"),
            api: format!("http://127.0.0.1:{api_port}"),
        }
    }

    pub fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_safegate"))
            .arg("run")
            .arg("--config")
            .arg(&self.config)
            .env("RUST_LOG", "info")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start the safegate binary");
        self.child = Some(child);
    }

    /// Start and wait until it is subscribed to MQTT.
    pub async fn start_ready(&mut self) {
        self.spawn();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = reqwest::get(format!("{}/readyz", self.api)).await {
                let v: Value = r.json().await.unwrap_or(Value::Null);
                if v["mqtt"]["connected"] == true {
                    return;
                }
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!(
                    "gateway exited ({status}) before it was ready:\n{}",
                    self.log()
                );
            }
            assert!(
                Instant::now() < deadline,
                "gateway not ready in 30 s:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Once the process has exited on its own, within `within`: its status.
    pub async fn exited(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Some(status) = self.child.as_mut()?.try_wait().ok().flatten() {
                self.child = None;
                return Some(status);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        None
    }

    /// SIGKILL: no shutdown code runs.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGSTOP / SIGCONT: freeze the process (its sockets stay open, nothing is read).
    pub fn pause(&self, frozen: bool) {
        if let Some(c) = &self.child {
            let sig = if frozen { "-STOP" } else { "-CONT" };
            let _ = Command::new("kill")
                .arg(sig)
                .arg(c.id().to_string())
                .status();
        }
    }

    /// SIGTERM and wait: the gateway's orderly shutdown.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill").arg(c.id().to_string()).status();
            let _ = c.wait();
        }
    }

    /// SIGTERM without waiting (see `wait_exit`).
    /// Send `sig` (`-HUP`, …) to the process.
    pub fn signal(&self, sig: &str) {
        if let Some(c) = &self.child {
            let _ = Command::new("kill")
                .arg(sig)
                .arg(c.id().to_string())
                .status();
        }
    }

    pub fn terminate(&self) {
        if let Some(c) = &self.child {
            let _ = Command::new("kill").arg(c.id().to_string()).status();
        }
    }

    /// Wait up to `within` for the process to exit by itself.
    pub async fn wait_exit(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Some(s) = self.child.as_mut()?.try_wait().unwrap() {
                self.child = None;
                return Some(s);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        None
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Wait until the log contains `text` (panics after `within`, with the log).
    pub async fn wait_log(&self, text: &str, within: Duration) {
        let deadline = Instant::now() + within;
        while !self.log().contains(text) {
            assert!(
                Instant::now() < deadline,
                "no {text:?} in the log within {within:?}:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for GatewayProc {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A QoS 1 publisher with a persistent session that counts the broker's PUBACKs, so a test
/// knows when the broker has taken responsibility for everything it sent. rumqttc sends
/// unacknowledged messages again after a reconnect.
pub struct AckedPublisher {
    pub client: AsyncClient,
    acked: std::sync::Arc<std::sync::atomic::AtomicU64>,
    sent: u64,
    task: tokio::task::JoinHandle<()>,
}

impl AckedPublisher {
    pub async fn connect(port: u16, id: &str) -> AckedPublisher {
        let mut o = MqttOptions::new(id, "127.0.0.1", port);
        o.set_keep_alive(Duration::from_secs(30));
        o.set_clean_session(false);
        o.set_inflight(200);
        let (client, acked, task) = drive_client(o, 10_000).await;
        AckedPublisher {
            client,
            acked,
            sent: 0,
            task,
        }
    }

    pub async fn send(&mut self, topic: &str, payload: impl Into<Vec<u8>>) {
        self.client
            .publish(topic, QoS::AtLeastOnce, false, payload.into())
            .await
            .expect("publish");
        self.sent += 1;
    }

    /// Wait until the broker acknowledged every message sent (panics after `within`).
    pub async fn wait_acked(&self, within: Duration) {
        let deadline = Instant::now() + within;
        while self.acked.load(std::sync::atomic::Ordering::Relaxed) < self.sent {
            assert!(
                Instant::now() < deadline,
                "broker acknowledged {} of {} messages",
                self.acked.load(std::sync::atomic::Ordering::Relaxed),
                self.sent
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for AckedPublisher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A small tmpfs mounted at `path` (the test runs as root, as CI does), for tests that must
/// meet a really full disk. Unmounted on drop whatever happened (lazily if still busy), so
/// drop it after the processes using it: declare it before them.
pub struct SmallDisk {
    pub path: PathBuf,
}

impl SmallDisk {
    pub fn mount(path: &Path, bytes: u64) -> SmallDisk {
        std::fs::create_dir_all(path).unwrap();
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={bytes},mode=0755"),
                "tmpfs",
            ])
            .arg(path)
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "mounting a {bytes}-byte tmpfs at {} needs root (CAP_SYS_ADMIN), as CI has: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        SmallDisk {
            path: path.to_path_buf(),
        }
    }

    /// Free bytes as an unprivileged writer sees them.
    pub fn free(&self) -> u64 {
        let s = rustix::fs::statvfs(&self.path).expect("statvfs");
        s.f_bavail * s.f_frsize
    }

    /// Another process (`dd`) fills the disk to the last block: 64 KiB blocks, then what is
    /// left of less than one in 4 KiB blocks.
    pub fn fill(&self) {
        for (file, bs) in [("filler", "64k"), ("filler2", "4k")] {
            let status = Command::new("dd")
                .arg("if=/dev/zero")
                .arg(format!("of={}", self.path.join(file).display()))
                .arg(format!("bs={bs}"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .expect("run dd");
            // dd ends with "No space left on device": that is the point.
            assert!(!status.success(), "dd stopped before the disk was full");
        }
    }

    pub fn unfill(&self) {
        for f in ["filler", "filler2"] {
            let _ = std::fs::remove_file(self.path.join(f));
        }
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let ok = Command::new("umount")
            .arg(&self.path)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            let _ = Command::new("umount").arg("-l").arg(&self.path).status();
        }
    }
}

/// `safegate report --format json` for [from, to).
pub fn report_command(config: &std::path::Path, from: i64, to: i64) -> serde_json::Value {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_safegate"))
        .args(["report", "--config"])
        .arg(config)
        .args([
            "--from",
            &from.to_string(),
            "--to",
            &to.to_string(),
            "--format",
            "json",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}
