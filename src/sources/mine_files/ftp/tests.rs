//! The server against real clients (curl, Python's ftplib) as subprocesses, on 127.0.0.1.

use super::folder::{is_temporary, name_ok, resolve, BadPath};
use super::*;
use crate::sources::mine_files::{TakeError, Taken, Upload, Via};
use futures::future::BoxFuture;
use std::path::Path;
use std::process::Stdio;
use tokio::sync::{oneshot, watch};

const MINE: &str = "150781013671";
const PW: &str = "s3cret-one";
const OTHER: &str = "150781013672";
const OTHER_PW: &str = "s3cret-two";
const NAME: &str = "150781013671_AQSS_20261201120000.txt";
const NAME2: &str = "150781013671_AQSS_20261201120005.txt";
const NAME3: &str = "150781013671_AQSS_20261201120010.txt";
/// Generous: a bound on waits for things that happen in milliseconds, not a pause.
const WAIT: Duration = Duration::from_secs(30);

/// Records what it is given; answers `reply`, after `gate` is released when one is set.
struct TestTaker {
    got: Mutex<Vec<Upload>>,
    reply: Mutex<Result<Taken, TakeError>>,
    /// Files by these names are refused so.
    refuse: Mutex<HashMap<String, TakeError>>,
    gate: Mutex<Option<oneshot::Receiver<()>>>,
    calls: watch::Sender<usize>,
}

impl TestTaker {
    fn new() -> Arc<TestTaker> {
        Arc::new(TestTaker {
            got: Mutex::new(Vec::new()),
            reply: Mutex::new(Ok(Taken::Applied {
                accepted: 1,
                refused: 0,
            })),
            refuse: Mutex::new(HashMap::new()),
            gate: Mutex::new(None),
            calls: watch::Sender::new(0),
        })
    }

    fn answer(&self, r: Result<Taken, TakeError>) {
        *self.reply.lock().unwrap() = r;
    }

    fn got(&self) -> Vec<Upload> {
        self.got.lock().unwrap().clone()
    }

    async fn wait_calls(&self, n: usize) {
        let mut rx = self.calls.subscribe();
        tokio::time::timeout(WAIT, rx.wait_for(|c| *c >= n))
            .await
            .expect("the taker was called in time")
            .unwrap();
    }
}

impl Taker for TestTaker {
    fn take(&self, upload: Upload) -> BoxFuture<'static, Result<Taken, TakeError>> {
        let reply = match self.refuse.lock().unwrap().get(&upload.name) {
            Some(e) => Err(e.clone()),
            None => self.reply.lock().unwrap().clone(),
        };
        self.got.lock().unwrap().push(upload);
        let gate = self.gate.lock().unwrap().take();
        self.calls.send_modify(|c| *c += 1);
        Box::pin(async move {
            if let Some(g) = gate {
                let _ = g.await;
            }
            reply
        })
    }
}

struct Harness {
    addr: SocketAddr,
    taker: Arc<TestTaker>,
    metrics: Metrics,
    stop: broadcast::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), FtpError>>,
    dir: tempfile::TempDir,
}

fn logins() -> HashMap<String, String> {
    HashMap::from([(MINE.into(), PW.into()), (OTHER.into(), OTHER_PW.into())])
}

fn test_settings() -> MineFilesSettings {
    MineFilesSettings {
        enabled: true,
        listen: "127.0.0.1:0".into(),
        passive_ports: [47100, 47899],
        ..MineFilesSettings::default()
    }
}

async fn start_with(edit: impl FnOnce(&mut MineFilesSettings, &Path)) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = test_settings();
    edit(&mut settings, dir.path());
    let taker = TestTaker::new();
    let metrics = Metrics::new();
    let server = FtpServer::build(
        &settings,
        logins(),
        taker.clone(),
        &metrics,
        Clock::system(),
    )
    .unwrap();
    let addr = server.local_addr();
    assert_ne!(addr.port(), 0);
    let (stop, rx) = broadcast::channel(1);
    let task = tokio::spawn(server.run(rx));
    Harness {
        addr,
        taker,
        metrics,
        stop,
        task,
        dir,
    }
}

async fn start() -> Harness {
    start_with(|_, _| {}).await
}

impl Harness {
    fn file(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }

    fn url(&self, path: &str) -> String {
        format!("ftp://127.0.0.1:{}/{path}", self.addr.port())
    }

    fn curl(&self, file: &Path, path: &str, user: &str, extra: &[&str]) -> tokio::process::Command {
        let mut c = tokio::process::Command::new("curl");
        c.args(["-sS", "-v", "--max-time", "60", "-T"])
            .arg(file)
            .arg(self.url(path))
            .args(["--user", user])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        c
    }

    async fn curl_run(&self, file: &Path, path: &str, user: &str, extra: &[&str]) -> (i32, String) {
        let out = tokio::time::timeout(WAIT, self.curl(file, path, user, extra).output())
            .await
            .expect("curl ended in time")
            .expect("curl runs");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// The value of a metric line starting with `prefix` (0 when absent).
    fn metric(&self, prefix: &str) -> f64 {
        self.metrics
            .encode()
            .lines()
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        tokio::time::timeout(WAIT, self.task)
            .await
            .expect("the server stopped in time")
            .unwrap()
            .unwrap();
    }
}

fn user(code: &str, pw: &str) -> String {
    format!("{code}:{pw}")
}

/// Run a Python script with `python3 -c`, its arguments after; (exit code, stdout, stderr).
async fn python(script: &str, args: &[String]) -> (i32, String, String) {
    let out = tokio::time::timeout(
        WAIT,
        tokio::process::Command::new("python3")
            .arg("-c")
            .arg(script)
            .args(args)
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("python ended in time")
    .expect("python3 runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn curl_uploads_and_the_taker_gets_the_exact_bytes_and_name() {
    let h = start().await;
    let bytes: Vec<u8> = (0..70_000u32).map(|i| (i % 251) as u8).collect();
    let f = h.file(NAME, &bytes);
    let (code, err) = h.curl_run(&f, "", &user(MINE, PW), &[]).await;
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("< 226"), "{err}");
    let got = h.taker.got();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].name, NAME);
    assert_eq!(got[0].bytes, bytes);
    assert_eq!(got[0].login.as_deref(), Some(MINE));
    assert_eq!(got[0].via, Via::Ftp);
    assert!(got[0].received_ms > 0);
    assert_eq!(
        h.metric("safegate_mine_files_ftp_uploads_total{outcome=\"applied\"}"),
        1.0
    );
    h.taker.answer(Ok(Taken::Duplicate));
    let (code, err) = h.curl_run(&f, "", &user(MINE, PW), &[]).await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        h.metric("safegate_mine_files_ftp_uploads_total{outcome=\"duplicate\"}"),
        1.0
    );
    h.stop().await;
}

#[tokio::test]
async fn a_retry_from_the_taker_is_451_and_curl_fails() {
    let h = start().await;
    h.taker.answer(Err(TakeError::Retry("holding".into())));
    let f = h.file(NAME, b"x||");
    let (code, err) = h.curl_run(&f, "", &user(MINE, PW), &[]).await;
    assert_ne!(code, 0, "{err}");
    assert!(err.contains("< 451"), "{err}");
    assert!(!err.contains("< 226"), "{err}");
    assert_eq!(h.taker.got().len(), 1);
    assert_eq!(
        h.metric("safegate_mine_files_ftp_uploads_total{outcome=\"retry\"}"),
        1.0
    );
    h.stop().await;
}

#[tokio::test]
async fn a_refusal_or_an_incomplete_file_is_a_55x_and_curl_fails() {
    let h = start().await;
    let f = h.file(NAME, b"x");
    for answer in [
        TakeError::Refused {
            reason: "bad_header",
            detail: "line 1".into(),
        },
        TakeError::Incomplete,
    ] {
        h.taker.answer(Err(answer));
        let (code, err) = h.curl_run(&f, "", &user(MINE, PW), &[]).await;
        assert_ne!(code, 0, "{err}");
        assert!(err.contains("< 551"), "{err}");
        assert!(!err.contains("< 226"), "{err}");
    }
    assert_eq!(
        h.metric("safegate_mine_files_ftp_uploads_total{outcome=\"refused\"}"),
        2.0
    );
    h.stop().await;
}

#[tokio::test]
async fn a_wrong_password_or_an_unknown_mine_is_refused_at_login() {
    let h = start().await;
    let f = h.file(NAME, b"x||");
    for u in [user(MINE, "wrong"), user(MINE, OTHER_PW), user("999", PW)] {
        let (code, err) = h.curl_run(&f, "", &u, &[]).await;
        // 67: "the user name, password, or similar was not accepted".
        assert_eq!(code, 67, "{err}");
        assert!(err.contains("< 530"), "{err}");
    }
    assert!(h.taker.got().is_empty());
    assert_eq!(
        h.metric("safegate_mine_files_ftp_logins_refused_total"),
        3.0
    );
    h.stop().await;
}

#[tokio::test]
async fn dot_dot_and_another_mines_folder_are_refused() {
    let h = start().await;
    let f = h.file(NAME, b"x||");
    // curl's default: CWD into each folder, then STOR the name. (`%2e%2e`: curl drops a
    // plain `..` from the URL even with --path-as-is.)
    let (code, err) = h
        .curl_run(&f, "%2e%2e/etc/", &user(MINE, PW), &["--path-as-is"])
        .await;
    assert!(err.contains("> CWD .."), "{err}");
    assert_ne!(code, 0, "{err}");
    assert!(err.contains("< 550"), "{err}");
    // The whole path in the STOR.
    let (code, err) = h
        .curl_run(
            &f,
            &format!("%2e%2e/%2e%2e/{NAME}"),
            &user(MINE, PW),
            &["--path-as-is", "--ftp-method", "nocwd"],
        )
        .await;
    assert_ne!(code, 0, "{err}");
    assert!(err.contains("> STOR ../../"), "{err}");
    assert!(err.contains("< 553"), "{err}");
    for method in ["multicwd", "nocwd"] {
        let (code, err) = h
            .curl_run(
                &f,
                &format!("{OTHER}/{NAME}"),
                &user(MINE, PW),
                &["--ftp-method", method],
            )
            .await;
        assert_ne!(code, 0, "{method}: {err}");
        assert!(err.contains("< 550"), "{method}: {err}");
    }
    // A control character in a name: curl refuses to send one; Python's ftplib does (below).
    assert!(h.taker.got().is_empty());
    // The two STORs (a refused CWD is no upload).
    assert_eq!(
        h.metric("safegate_mine_files_ftp_uploads_total{outcome=\"bad_name\"}"),
        2.0
    );
    // Its own code as a folder is just a folder.
    let (code, err) = h
        .curl_run(
            &f,
            &format!("{MINE}/"),
            &user(MINE, PW),
            &["--ftp-create-dirs"],
        )
        .await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(h.taker.got()[0].name, NAME);
    h.stop().await;
}

#[tokio::test]
async fn a_file_over_max_file_bytes_is_refused_and_never_taken() {
    let h = start_with(|s, _| s.max_file_bytes = 10_000).await;
    // Within what is read on and dropped: the client hears the 552.
    let f = h.file(NAME, &vec![b'a'; 30_000]);
    let (code, err) = h.curl_run(&f, "", &user(MINE, PW), &[]).await;
    assert_ne!(code, 0, "{err}");
    assert!(err.contains("< 552"), "{err}");
    // Far over it: the data connection is closed; never a 226.
    let f = h.file(NAME, &vec![b'a'; 2_000_000]);
    let (code, err) = h.curl_run(&f, "", &user(MINE, PW), &[]).await;
    assert_ne!(code, 0, "{err}");
    assert!(!err.contains("< 226"), "{err}");
    assert!(h.taker.got().is_empty());
    assert_eq!(
        h.metric("safegate_mine_files_ftp_uploads_total{outcome=\"too_large\"}"),
        2.0
    );
    // Exactly the bound is taken.
    let f = h.file(NAME, &vec![b'a'; 10_000]);
    let (code, err) = h.curl_run(&f, "", &user(MINE, PW), &[]).await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(h.taker.got()[0].bytes.len(), 10_000);
    h.stop().await;
}

#[tokio::test]
async fn the_session_over_max_sessions_is_refused_with_421() {
    use tokio::io::AsyncBufReadExt;
    let h = start_with(|s, _| s.max_sessions = 2).await;
    // Two sessions, open (greeted) and idle.
    let mut held = Vec::new();
    for _ in 0..2 {
        let tcp = tokio::net::TcpStream::connect(h.addr).await.unwrap();
        let mut r = tokio::io::BufReader::new(tcp);
        let mut line = String::new();
        tokio::time::timeout(WAIT, r.read_line(&mut line))
            .await
            .unwrap()
            .unwrap();
        assert!(line.starts_with("220 "), "{line}");
        held.push(r);
    }
    let f = h.file(NAME, b"x||");
    let (code, err) = h.curl_run(&f, "", &user(MINE, PW), &[]).await;
    assert_ne!(code, 0, "{err}");
    assert!(err.contains("421 Too many sessions"), "{err}");
    assert!(h.taker.got().is_empty());
    assert_eq!(
        h.metric("safegate_mine_files_ftp_sessions_total{outcome=\"busy\"}"),
        1.0
    );
    // One ends: the next is served.
    drop(held.pop());
    tokio::time::timeout(WAIT, async {
        while h.metric("safegate_mine_files_ftp_sessions_open") > 1.0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the session's end was seen");
    let (code, err) = h.curl_run(&f, "", &user(MINE, PW), &[]).await;
    assert_eq!(code, 0, "{err}");
    h.stop().await;
}

#[tokio::test]
async fn the_226_waits_for_the_taker() {
    let h = start().await;
    let (release, gate) = oneshot::channel();
    *h.taker.gate.lock().unwrap() = Some(gate);
    let f = h.file(NAME, b"all of it||");
    let mut child = h.curl(&f, "", &user(MINE, PW), &[]).spawn().unwrap();
    h.taker.wait_calls(1).await;
    // The file is whole at the taker, which has not answered: curl must still wait.
    assert!(
        child.try_wait().unwrap().is_none(),
        "curl ended before the taker answered"
    );
    let early = tokio::time::timeout(Duration::from_millis(700), child.wait()).await;
    assert!(
        early.is_err(),
        "curl ended before the taker answered: {early:?}"
    );
    assert!(child.try_wait().unwrap().is_none());
    release.send(()).unwrap();
    let out = tokio::time::timeout(WAIT, child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("< 226"), "{err}");
    assert_eq!(h.taker.got()[0].bytes, b"all of it||");
    h.stop().await;
}

const PY_SESSION: &str = r#"
import ftplib, io, sys
host, port, user, pw, name, name2, name3 = sys.argv[1:8]
f = ftplib.FTP()
f.connect(host, int(port), timeout=20)
f.login(user, pw)
print("pwd", f.pwd())
print("stor", f.storbinary("STOR " + name, io.BytesIO(b"root||")))
print("mkd", f.mkd("20261201"))
print("cwd", f.cwd("20261201"))
print("stor", f.storbinary("STOR " + name2, io.BytesIO(b"dated||")))
tmp = name3 + ".part"
print("stor", f.storbinary("STOR " + tmp, io.BytesIO(b"renamed||")))
print("size", f.size(tmp))
print("list", sorted(f.nlst()))
print("rnfr", f.sendcmd("RNFR " + tmp))
print("rnto", f.sendcmd("RNTO " + name3))
print("size", f.size(name3))
print("dele", f.delete(name3))
print("list", sorted(f.nlst()))
print("cdup", f.cwd(".."))
print("list", sorted(f.nlst()))
try:
    f.storbinary("STOR bad\x01name.txt", io.BytesIO(b"x"))
except ftplib.error_perm as e:
    print("control", e)
try:
    f.storbinary("STOR refused.txt", io.BytesIO(b"no"))
except ftplib.error_perm as e:
    print("refused", e)
print("why", f.sendcmd("SITE WHY"))
try:
    f.retrbinary("RETR " + name, lambda b: None)
except ftplib.error_perm as e:
    print("retr", e)
f.quit()
"#;

#[tokio::test]
async fn python_ftplib_logs_in_makes_a_dated_folder_and_renames_a_temporary_upload() {
    let h = start().await;
    h.taker.refuse.lock().unwrap().insert(
        "refused.txt".into(),
        TakeError::Refused {
            reason: "bad_name",
            detail: "not a networking file".into(),
        },
    );
    let args = [
        "127.0.0.1".to_string(),
        h.addr.port().to_string(),
        MINE.into(),
        PW.into(),
        NAME.into(),
        NAME2.into(),
        NAME3.into(),
    ];
    let (code, out, err) = python(PY_SESSION, &args).await;
    assert_eq!(code, 0, "{out}\n{err}");
    let got = h.taker.got();
    let names: Vec<&str> = got.iter().map(|u| u.name.as_str()).collect();
    assert_eq!(names, [NAME, NAME2, NAME3, "refused.txt"], "{out}");
    assert_eq!(got[1].bytes, b"dated||");
    assert_eq!(got[2].bytes, b"renamed||");
    let expected = [
        "pwd /".to_string(),
        "stor 226 File successfully written".into(),
        // libunftp's 257 has the path unquoted, so ftplib reads no name from it.
        "mkd ".into(),
        "cwd 250 Successfully changed working directory".into(),
        "stor 226 File successfully written".into(),
        "stor 226 File successfully written".into(),
        "size 9".into(),
        format!("list ['{NAME2}', '{NAME3}.part']"),
        "rnfr 350 Tell me, what would you like the new name to be?".into(),
        "rnto 250 Renamed".into(),
        "size 9".into(),
        "dele 250 Successfully removed".into(),
        format!("list ['{NAME2}']"),
        "cdup 250 OK".into(),
        format!("list ['{NAME}', '20261201']"),
        "control 553 File name not allowed".into(),
        "refused 551 Page type unknown".into(),
        "why 200 refused.txt: bad_name: not a networking file".into(),
        "retr 550 Permission denied".into(),
    ];
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines, expected, "{err}");
    h.stop().await;
}

const PY_FTPS: &str = r#"
import ftplib, io, ssl, sys
host, port, user, pw, name, ca = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6]
ctx = ssl.create_default_context(cafile=ca)
# libunftp closes a data connection without TLS's close_notify: ftplib's unwrap() after
# STOR would fail on that without this (docs/mine-files.md, "FTPS").
ctx.options |= ssl.OP_IGNORE_UNEXPECTED_EOF
f = ftplib.FTP_TLS(context=ctx)
f.connect(host, port, timeout=20)
f.login(user, pw)
f.prot_p()
print("stor", f.storbinary("STOR " + name, io.BytesIO(b"over tls||")))
f.quit()
"#;

fn write_test_certificate(dir: &Path) -> (PathBuf, PathBuf) {
    let cert =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string(), "localhost".to_string()])
            .unwrap();
    let (c, k) = (dir.join("ftp.crt"), dir.join("ftp.key"));
    std::fs::write(&c, cert.cert.pem()).unwrap();
    std::fs::write(&k, cert.key_pair.serialize_pem()).unwrap();
    (c, k)
}

#[tokio::test]
async fn ftps_with_python_ftplib_and_curl() {
    let h = start_with(|s, dir| {
        let (c, k) = write_test_certificate(dir);
        s.tls_cert_file = Some(c);
        s.tls_key_file = Some(k);
    })
    .await;
    let ca = h.dir.path().join("ftp.crt");
    let args = [
        "127.0.0.1".to_string(),
        h.addr.port().to_string(),
        MINE.into(),
        PW.into(),
        NAME.into(),
        ca.display().to_string(),
    ];
    let (code, out, err) = python(PY_FTPS, &args).await;
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("stor 226"), "{out}");
    assert_eq!(h.taker.got()[0].bytes, b"over tls||");
    let f = h.file("curl.txt", b"curl over tls||");
    let ca = ca.display().to_string();
    let (code, err) = h
        .curl_run(&f, "", &user(MINE, PW), &["--ssl-reqd", "--cacert", &ca])
        .await;
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("< 226"), "{err}");
    assert_eq!(h.taker.got()[1].bytes, b"curl over tls||");
    h.stop().await;
}

#[tokio::test]
async fn shutdown_ends_open_sessions_and_run() {
    use tokio::io::AsyncReadExt;
    let h = start().await;
    let mut tcp = tokio::net::TcpStream::connect(h.addr).await.unwrap();
    let mut buf = [0u8; 256];
    let n = tokio::time::timeout(WAIT, tcp.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert!(buf[..n].starts_with(b"220 "));
    h.stop().await;
    // The session was closed: reading ends.
    let mut rest = Vec::new();
    tokio::time::timeout(WAIT, tcp.read_to_end(&mut rest))
        .await
        .expect("the session was closed")
        .ok();
}

#[test]
fn names_and_paths_stay_inside_the_mines_folder() {
    let shared = Shared {
        taker: TestTaker::new(),
        metrics: FtpMetrics::register(&Metrics::new()),
        clock: Clock::system(),
        warn: RateLimitedLog::new(1000),
        max_file_bytes: 10,
        mines: [MINE.to_string(), OTHER.to_string()].into(),
        recent: Mutex::default(),
    };
    let r = |p: &str| resolve(Path::new(p), MINE, &shared);
    assert_eq!(r("/a/./b/../c.txt").unwrap(), ["a", "c.txt"]);
    assert_eq!(r("/a/..").unwrap(), Vec::<String>::new());
    assert_eq!(r("/x/../../y"), Err(BadPath::AboveRoot));
    assert_eq!(r("/../y"), Err(BadPath::AboveRoot));
    assert_eq!(r(&format!("/{OTHER}/a.txt")), Err(BadPath::OtherMine));
    assert_eq!(r(&format!("/d/{OTHER}")), Err(BadPath::OtherMine));
    assert_eq!(r(&format!("/{MINE}/a.txt")).unwrap(), [MINE, "a.txt"]);
    assert_eq!(r("/a\\b.txt"), Err(BadPath::BadName));
    assert_eq!(r("/a\u{1}b.txt"), Err(BadPath::BadName));
    assert_eq!(r("/a\nb.txt"), Err(BadPath::BadName));
    assert_eq!(r(&format!("/{}", "n".repeat(256))), Err(BadPath::BadName));
    assert_eq!(r("/..."), Err(BadPath::BadName));
    assert!(name_ok(NAME) && name_ok("数据.txt"));
    assert!(!name_ok("") && !name_ok("."));
    assert!(is_temporary("a.txt.TMP") && is_temporary("a.part") && is_temporary("a.filepart"));
    assert!(!is_temporary(NAME));
}

#[test]
fn passwords_are_compared_whole() {
    let shared = Arc::new(Shared {
        taker: TestTaker::new(),
        metrics: FtpMetrics::register(&Metrics::new()),
        clock: Clock::system(),
        warn: RateLimitedLog::new(1000),
        max_file_bytes: 10,
        mines: HashSet::new(),
        recent: Mutex::default(),
    });
    let l = auth::MineLogins::new(&logins(), shared);
    assert!(l.check(MINE, PW));
    assert!(!l.check(MINE, &PW[..PW.len() - 1]));
    assert!(!l.check(MINE, &format!("{PW}x")));
    assert!(!l.check(MINE, ""));
    assert!(!l.check(MINE, OTHER_PW));
    assert!(!l.check("nobody", PW));
    assert!(format!("{l:?}").contains("mines: 2") && !format!("{l:?}").contains(PW));
}

#[test]
fn build_errors_say_what_to_change() {
    let dir = tempfile::tempdir().unwrap();
    let build = |s: &MineFilesSettings, logins: HashMap<String, String>| {
        FtpServer::build(
            s,
            logins,
            TestTaker::new(),
            &Metrics::new(),
            Clock::system(),
        )
        .err()
    };
    let with = |edit: &dyn Fn(&mut MineFilesSettings)| {
        let mut s = test_settings();
        edit(&mut s);
        build(&s, logins()).expect("an error").to_string()
    };
    assert!(with(&|s| s.listen = "ftp.example:21".into()).contains("mine_files.listen"));
    assert!(with(&|s| s.listen = String::new()).contains("mine_files.listen is empty"));
    assert!(with(&|s| s.passive_ports = [50100, 50000]).contains("mine_files.passive_ports"));
    assert!(with(&|s| s.passive_ports = [0, 10]).contains("mine_files.passive_ports"));
    let missing = dir.path().join("missing.pem");
    let m = missing.clone();
    let e = with(&|s| {
        s.tls_cert_file = Some(m.clone());
        s.tls_key_file = Some(m.clone());
    });
    assert!(
        e.contains("cannot read the FTPS certificate") && e.contains("missing.pem"),
        "{e}"
    );
    let (c, _) = write_test_certificate(dir.path());
    let e = with(&|s| {
        s.tls_cert_file = Some(c.clone());
        s.tls_key_file = Some(c.clone());
    });
    assert!(e.contains("cannot read the FTPS key"), "{e}");
    assert!(with(&|s| s.tls_cert_file = Some(c.clone())).contains("together"));
    // Another certificate's key.
    let other = tempfile::tempdir().unwrap();
    let (_, other_key) = write_test_certificate(other.path());
    let e = with(&|s| {
        s.tls_cert_file = Some(c.clone());
        s.tls_key_file = Some(other_key.clone());
    });
    assert!(e.contains("cannot be used"), "{e}");
    assert!(build(&test_settings(), HashMap::new())
        .unwrap()
        .to_string()
        .contains("no mine has an upload password"));
    // The port is taken.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let e = with(&|s| s.listen = format!("127.0.0.1:{port}"));
    assert!(
        e.contains(&format!("cannot listen on 127.0.0.1:{port}")),
        "{e}"
    );
}

const PY_RENAME: &str = r#"
import ftplib, io, sys
host, port, user, pw, name = sys.argv[1:6]
f = ftplib.FTP()
f.connect(host, int(port), timeout=20)
f.login(user, pw)
f.storbinary("STOR " + name + ".tmp", io.BytesIO(b"held||"))
f.sendcmd("RNFR " + name + ".tmp")
print(f.sendcmd("RNTO " + name), flush=True)
f.quit()
"#;

#[tokio::test]
async fn the_renames_250_waits_for_the_taker() {
    let h = start().await;
    let (release, gate) = oneshot::channel();
    *h.taker.gate.lock().unwrap() = Some(gate);
    let mut child = tokio::process::Command::new("python3")
        .arg("-c")
        .arg(PY_RENAME)
        .args([
            "127.0.0.1".to_string(),
            h.addr.port().to_string(),
            MINE.into(),
            PW.into(),
            NAME.into(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    // The temporary STOR is held, not taken: the first call is the rename's.
    h.taker.wait_calls(1).await;
    assert_eq!(h.taker.got()[0].name, NAME);
    assert!(
        child.try_wait().unwrap().is_none(),
        "RNTO answered before the taker"
    );
    let early = tokio::time::timeout(Duration::from_millis(700), child.wait()).await;
    assert!(early.is_err(), "RNTO answered before the taker: {early:?}");
    release.send(()).unwrap();
    let out = tokio::time::timeout(WAIT, child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout.trim(), "250 Renamed");
    assert_eq!(h.taker.got()[0].bytes, b"held||");
    h.stop().await;
}

#[tokio::test]
async fn temporary_files_are_held_within_a_bound_and_taken_only_when_renamed() {
    use unftp_core::storage::{ErrorKind, Metadata as _, StorageBackend};
    let taker = TestTaker::new();
    let shared = Arc::new(Shared {
        taker: taker.clone(),
        metrics: FtpMetrics::register(&Metrics::new()),
        clock: Clock::system(),
        warn: RateLimitedLog::new(1000),
        max_file_bytes: 100,
        mines: [MINE.to_string()].into(),
        recent: Mutex::default(),
    });
    let mine = auth::Mine { code: MINE.into() };
    let folder = Folder::new(shared);
    let put = |name: &'static str| {
        folder.put(
            &mine,
            std::io::Cursor::new(b"data||".to_vec()),
            PathBuf::from(name),
            0,
        )
    };
    assert_eq!(put("/a.tmp").await.unwrap(), 6);
    assert_eq!(put("/b.part").await.unwrap(), 6);
    // The same name again replaces; a third name is over the bound.
    assert_eq!(put("/b.part").await.unwrap(), 6);
    assert_eq!(
        put("/c.tmp").await.unwrap_err().kind(),
        ErrorKind::ExceededStorageAllocationError
    );
    assert!(taker.got().is_empty());
    assert_eq!(folder.metadata(&mine, "/a.tmp").await.unwrap().len(), 6);
    // A held file renamed to another temporary name stays held.
    folder.rename(&mine, "/a.tmp", "/a2.tmp").await.unwrap();
    assert!(taker.got().is_empty());
    // Only a held file can be renamed.
    assert_eq!(
        folder
            .rename(&mine, "/nothing.tmp", "/x.txt")
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::PermanentFileNotAvailable
    );
    // A rename the taker cannot take now is a 451.
    taker.answer(Err(TakeError::Retry("holding".into())));
    assert_eq!(
        folder
            .rename(&mine, "/a2.tmp", "/a.txt")
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::LocalError
    );
    assert_eq!(taker.got()[0].name, "a.txt");
    // ... and the file is still held, to be renamed again.
    taker.answer(Ok(Taken::Duplicate));
    folder.rename(&mine, "/a2.tmp", "/a.txt").await.unwrap();
    assert_eq!(taker.got()[1].bytes, b"data||");
    assert!(folder.metadata(&mine, "/a2.tmp").await.is_err());
    // Deleted before renaming: never taken.
    folder.del(&mine, "/b.part").await.unwrap();
    assert!(folder.metadata(&mine, "/b.part").await.is_err());
    assert_eq!(taker.got().len(), 2);
    // A resumed upload is refused; so is a download.
    assert_eq!(
        folder
            .put(&mine, std::io::Cursor::new(vec![1]), "/r.txt", 5)
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::CommandNotImplemented
    );
    assert!(folder.get(&mine, "/a.txt", 0).await.is_err());
}

#[tokio::test]
async fn login_attempts_from_one_address_are_checked_one_at_a_time() {
    use unftp_core::auth::{Authenticator, ChannelEncryptionState, Credentials};
    let shared = Arc::new(Shared {
        taker: TestTaker::new(),
        metrics: FtpMetrics::register(&Metrics::new()),
        clock: Clock::system(),
        warn: RateLimitedLog::new(1000),
        max_file_bytes: 10,
        mines: HashSet::new(),
        recent: Mutex::default(),
    });
    let l = Arc::new(auth::MineLogins::new(&logins(), shared));
    let creds = |pw: &str, ip: [u8; 4]| Credentials {
        password: Some(pw.into()),
        certificate_chain: None,
        source_ip: ip.into(),
        command_channel_security: ChannelEncryptionState::Plaintext,
    };
    let start = tokio::time::Instant::now();
    let attempt = |pw: &'static str, ip: [u8; 4]| {
        let l = l.clone();
        tokio::spawn(async move {
            let r = l.authenticate(MINE, &creds(pw, ip)).await.is_ok();
            (r, start.elapsed())
        })
    };
    // Pipelined: two wrong guesses, then the right password, from one address; and the
    // right password from another. (Real time: the refusals' delay is a second each.)
    let guesses: Vec<_> = ["a", "b"].map(|pw| attempt(pw, [10, 0, 0, 1])).into();
    tokio::task::yield_now().await;
    let right = attempt(PW, [10, 0, 0, 1]);
    let elsewhere = attempt(PW, [10, 0, 0, 2]);
    for g in guesses {
        assert!(!g.await.unwrap().0);
    }
    let (ok, took) = right.await.unwrap();
    assert!(ok);
    assert!(took >= Duration::from_secs(2), "{took:?}");
    let (ok, took) = elsewhere.await.unwrap();
    assert!(ok && took < Duration::from_secs(1), "{took:?}");
}
