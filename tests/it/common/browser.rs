//! Headless Chromium driven over WebDriver: Debian's `chromedriver` on a free loopback port,
//! a fresh profile per browser, and `fantoccini` as the client. Dropping a [`Browser`] kills
//! chromedriver and the Chromium it started (one process group), whatever happened.

use super::{free_port, wait_port, which};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a condition on the page may take (the page, a fetch, a live event).
pub const WAIT: Duration = Duration::from_secs(20);

pub struct Browser {
    client: Option<Client>,
    driver: Child,
    _profile: tempfile::TempDir,
    downloads: tempfile::TempDir,
}

impl Browser {
    /// Chromium at `width`×`height`, headless, with nothing of its own on the network.
    pub async fn start(width: u32, height: u32) -> Browser {
        let port = free_port();
        let profile = tempfile::tempdir().unwrap();
        let driver = Command::new(which("chromedriver"))
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own group, so that Drop kills Chromium too (chromedriver's child).
            .process_group(0)
            .spawn()
            .expect("start chromedriver (./scripts/test.sh installs chromium-driver)");
        let mut b = Browser {
            client: None,
            driver,
            _profile: profile,
            downloads: tempfile::tempdir().unwrap(),
        };
        wait_port(port, "chromedriver");
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            &format!("--user-data-dir={}", b._profile.path().display()),
            &format!("--window-size={width},{height}"),
        ];
        let caps = json!({
            "browserName": "chrome",
            // The page's console, read by `console_log`.
            "goog:loggingPrefs": {"browser": "ALL"},
            "goog:chromeOptions": {
                "binary": which("chromium").display().to_string(),
                "args": args,
                "prefs": {
                    "download.default_directory": b.downloads.path().display().to_string(),
                    "download.prompt_for_download": false,
                },
            },
        });
        let Value::Object(caps) = caps else {
            unreachable!()
        };
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .expect("a WebDriver session with headless Chromium");
        b.client = Some(client);
        b
    }

    pub fn c(&self) -> &Client {
        self.client.as_ref().expect("the session is open")
    }

    /// End the session (Chromium quits); Drop kills what is left.
    pub async fn close(mut self) {
        if let Some(c) = self.client.take() {
            let _ = c.close().await;
        }
    }

    /// Wait until the browser has downloaded `name` (in its own download folder); its bytes.
    pub async fn downloaded(&self, name: &str) -> Vec<u8> {
        let path = self.downloads.path().join(name);
        let deadline = Instant::now() + WAIT;
        loop {
            // Chromium writes `name.crdownload` and renames it when complete.
            if let Ok(bytes) = std::fs::read(&path) {
                return bytes;
            }
            assert!(Instant::now() < deadline, "{name} was never downloaded");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Whether the first element matching `css` is displayed (false when there is none).
    pub async fn shown(&self, css: &str) -> bool {
        match self.c().find(Locator::Css(css)).await {
            Ok(e) => e.is_displayed().await.unwrap_or(false),
            Err(_) => false,
        }
    }

    /// The rendered text of the first element matching `css`, if there is one.
    pub async fn text(&self, css: &str) -> Option<String> {
        let e = self.c().find(Locator::Css(css)).await.ok()?;
        e.text().await.ok()
    }

    /// How many elements match `css`.
    pub async fn count(&self, css: &str) -> usize {
        self.c()
            .find_all(Locator::Css(css))
            .await
            .map_or(0, |v| v.len())
    }

    /// Wait until the text of `css` satisfies `done`; returns it, or panics after [`WAIT`]
    /// naming `what` and the last text seen.
    pub async fn wait_text(&self, css: &str, what: &str, done: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let t = self.text(css).await;
            if let Some(t) = t.as_deref().filter(|t| done(t)) {
                return t.to_string();
            }
            assert!(
                Instant::now() < deadline,
                "{what}: `{css}` never got there; last text {t:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Wait until a script (`return …`) answers `true`.
    pub async fn wait_js(&self, script: &str, what: &str) {
        let deadline = Instant::now() + WAIT;
        loop {
            let v = self.c().execute(script, vec![]).await;
            if matches!(v, Ok(Value::Bool(true))) {
                return;
            }
            assert!(Instant::now() < deadline, "{what}: last {v:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn js(&self, script: &str) -> Value {
        self.c().execute(script, vec![]).await.expect(script)
    }

    /// What the page wrote to its console since the last call (console.error, CSP
    /// violations, failed loads): chromedriver's log endpoint, entries `{level, message}`.
    pub async fn console_log(&self) -> Vec<Value> {
        let v = self
            .c()
            .issue_cmd(BrowserLog)
            .await
            .expect("the browser's log");
        v.as_array().cloned().unwrap_or_default()
    }

    /// A PNG of the window, into the tests' scratch directory; returns its path.
    pub async fn screenshot(&self, name: &str) -> std::path::PathBuf {
        let png = self.c().screenshot().await.expect("a screenshot");
        let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap();
        path
    }

    pub async fn click(&self, css: &str) {
        let e = self
            .c()
            .wait()
            .at_most(WAIT)
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"));
        e.click()
            .await
            .unwrap_or_else(|e| panic!("click {css}: {e}"));
    }

    pub async fn type_into(&self, css: &str, text: &str) {
        let e = self.c().find(Locator::Css(css)).await.expect(css);
        e.send_keys(text).await.expect(css);
    }
}

/// chromedriver's `POST /session/{id}/se/log` for the `browser` log (not in W3C WebDriver).
#[derive(Debug)]
struct BrowserLog;

impl fantoccini::wd::WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(
        &self,
        base: &url::Url,
        session: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base.join(&format!("session/{}/se/log", session.unwrap_or_default()))
    }

    fn method_and_body(&self, _: &url::Url) -> (axum::http::Method, Option<String>) {
        let body = json!({"type": "browser"}).to_string();
        (axum::http::Method::POST, Some(body))
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // The negative pid is the group: chromedriver and every Chromium process.
        let group = format!("-{}", self.driver.id());
        let _ = Command::new("kill")
            .args(["-KILL", "--", &group])
            .stderr(Stdio::null())
            .status();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
