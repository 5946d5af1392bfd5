//! A fault-injecting HTTP proxy in front of the real VictoriaMetrics: it forwards InfluxDB 2
//! writes unchanged and records, in order, what the store accepted. On request it answers as
//! InfluxDB does in the cases VictoriaMetrics never produces: 429 with `Retry-After`, and a
//! 400 refusal of a batch holding a line it will not take (InfluxDB's field type conflict).
//! It is not a store: every accepted point is in VictoriaMetrics.

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use std::sync::{Arc, Mutex};
use std::time::Instant;

#[derive(Default, Clone)]
pub struct Rules {
    /// Refuse (400) every batch holding a reading of this device.
    pub refuse_device: Option<String>,
    /// Refuse (413) any write whose body is larger than this.
    pub max_body_bytes: Option<usize>,
    /// Answer the first N writes with 429 and `Retry-After: retry_after_s`.
    pub throttle_first: u32,
    pub retry_after_s: u64,
}

#[derive(Default)]
struct Log {
    /// Bodies the store accepted, in order.
    accepted: Vec<String>,
    /// (when, status answered) for every write.
    answers: Vec<(Instant, u16)>,
}

#[derive(Clone)]
struct Ctx {
    upstream: String,
    rules: Rules,
    log: Arc<Mutex<Log>>,
    http: reqwest::Client,
}

pub struct StoreProxy {
    pub port: u16,
    log: Arc<Mutex<Log>>,
    task: tokio::task::JoinHandle<()>,
}

impl StoreProxy {
    pub async fn start(upstream: String, rules: Rules) -> StoreProxy {
        let log = Arc::new(Mutex::new(Log::default()));
        let ctx = Ctx {
            upstream,
            rules,
            log: log.clone(),
            http: reqwest::Client::new(),
        };
        let app = axum::Router::new()
            .route("/api/v2/write", axum::routing::post(write))
            .with_state(ctx);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        StoreProxy { port, log, task }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Every line the store accepted, in the order it was written.
    pub fn accepted_lines(&self) -> Vec<String> {
        let log = self.log.lock().unwrap();
        log.accepted
            .iter()
            .flat_map(|b| b.lines().map(str::to_string).collect::<Vec<_>>())
            .filter(|l| !l.trim().is_empty())
            .collect()
    }

    pub fn answers(&self) -> Vec<(Instant, u16)> {
        self.log.lock().unwrap().answers.clone()
    }
}

impl Drop for StoreProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn write(State(c): State<Ctx>, RawQuery(q): RawQuery, body: Bytes) -> Response {
    let text = String::from_utf8_lossy(&body).to_string();
    let now = Instant::now();
    let throttled = {
        let log = c.log.lock().unwrap();
        log.answers.len() < c.rules.throttle_first as usize
    };
    let answer = |status: u16| {
        c.log.lock().unwrap().answers.push((now, status));
    };
    if throttled {
        answer(429);
        return (
            StatusCode::TOO_MANY_REQUESTS,
            [("Retry-After", c.rules.retry_after_s.to_string())],
            r#"{"code":"too many requests","message":"write limit reached"}"#,
        )
            .into_response();
    }
    if c.rules.max_body_bytes.is_some_and(|max| body.len() > max) {
        answer(413);
        return (
            StatusCode::PAYLOAD_TOO_LARGE,
            r#"{"code":"request too large","message":"unable to read data: points batch is too large"}"#,
        )
            .into_response();
    }
    if let Some(d) = &c.rules.refuse_device {
        let tag = format!("device={d}");
        if let Some(line) = text
            .lines()
            .find(|l| l.starts_with("reading,") && l.split([',', ' ']).any(|part| part == tag))
        {
            answer(400);
            let msg = format!(
                r#"{{"code":"invalid","message":"partial write: field type conflict: input field \"lel\" on measurement \"reading\" is type float, already exists as type integer: {}"}}"#,
                line.replace('"', "'")
            );
            return (StatusCode::BAD_REQUEST, msg).into_response();
        }
    }
    let url = format!("{}/api/v2/write?{}", c.upstream, q.unwrap_or_default());
    match c.http.post(url).body(body).send().await {
        Ok(r) => {
            let status = r.status().as_u16();
            answer(status);
            if r.status().is_success() {
                c.log.lock().unwrap().accepted.push(text);
            }
            let body = r.text().await.unwrap_or_default();
            (StatusCode::from_u16(status).unwrap(), body).into_response()
        }
        Err(e) => {
            // The store is down: what a load balancer in front of it would answer.
            answer(503);
            (StatusCode::SERVICE_UNAVAILABLE, e.to_string()).into_response()
        }
    }
}
