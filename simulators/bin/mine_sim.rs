//! mine-sim: coal mines' KJ systems uploading their networking files (CDDY, CDSS, FZDY, FZSS,
//! YCBJ, and JZSS/RYSS with `--people`) by FTP(S) or into a folder, on the clock or flat out,
//! with faults. Bounded in files and time; prints one JSON summary line on stdout.
//! The files themselves are `safegate::simulators::mine`'s; see docs/mine-files.md.

use clap::Parser;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use safegate::simulators::mine::{
    self, Faults, FileKind, MineSpec, OutFile, Plan, Sequencer, Window,
};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use suppaftp::tokio::{AsyncRustlsConnector, AsyncRustlsFtpStream};
use suppaftp::types::FileType;
use suppaftp::{FtpError, Mode};

#[derive(Parser)]
#[command(
    about = "A coal mine's KJ system uploading its networking files (MT/T 1201) by FTP or into a folder",
    long_about = None
)]
struct Args {
    /// The mine's code (also its FTP login).
    #[arg(long, conflicts_with_all = ["mines", "first_code"], required_unless_present = "mines")]
    mine_code: Option<String>,
    /// Simulate this many mines, coded `--first-code`, +1, +2, … (digits, width kept).
    #[arg(long, requires = "first_code")]
    mines: Option<u64>,
    #[arg(long, requires = "mines")]
    first_code: Option<String>,
    /// The mine's name (with many mines: this and the mine's number, from 1).
    #[arg(long, default_value = "模拟煤矿")]
    mine_name: String,
    /// Points per mine: 12 in 20 methane, the rest wind, CO, temperature, O2 and on/off.
    #[arg(long, default_value_t = 30)]
    points: usize,
    /// Substations per mine; point j is on substation j % S.
    #[arg(long, default_value_t = 3)]
    substations: usize,
    /// People underground per mine: JZSS and RYSS files every interval (0: none).
    #[arg(long, default_value_t = 0)]
    people: usize,
    /// Seconds between data times: one CDSS and FZSS per interval per mine.
    #[arg(long, default_value_t = 10)]
    interval_s: u64,
    /// CDDY and FZDY first and every this many intervals (0: first only).
    #[arg(long, default_value_t = 0)]
    cddy_every: u64,
    /// Intervals per mine (each: a CDSS, an FZSS, …). Default 10 without --duration-s.
    #[arg(long)]
    files: Option<u64>,
    /// Stop after this many seconds, whatever was sent.
    #[arg(long)]
    duration_s: Option<f64>,
    /// Data time of the first interval, `yyyy-MM-dd HH:mm:ss` local (default: now).
    #[arg(long)]
    start: Option<String>,
    /// The mines' local time.
    #[arg(long, default_value = "+08:00", allow_hyphen_values = true)]
    utc_offset: String,
    /// Upload to this FTP server (host:port); login = mine code.
    #[arg(long, conflicts_with = "dir", required_unless_present = "dir")]
    ftp: Option<String>,
    /// The environment variable holding the FTP password (the same for every mine).
    #[arg(long, requires = "ftp")]
    password_env: Option<String>,
    /// Write the files into this folder instead (`NAME.tmp`, then renamed to NAME).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Explicit FTPS (AUTH TLS, PROT P); needs --ca or --insecure.
    #[arg(long, requires = "ftp")]
    ftps: bool,
    /// PEM file of the CA(s) the server's certificate must chain to.
    #[arg(long, requires = "ftps", conflicts_with = "insecure")]
    ca: Option<PathBuf>,
    /// Accept any server certificate (tests only).
    #[arg(long, requires = "ftps")]
    insecure: bool,
    /// The name the server's certificate is checked against (default: the --ftp host).
    #[arg(long, requires = "ftps")]
    tls_name: Option<String>,
    /// Data connections by EPSV rather than PASV.
    #[arg(long, requires = "ftp")]
    epsv: bool,
    /// Mines uploading at the same time.
    #[arg(long, default_value_t = 1)]
    concurrency: usize,
    /// Files per second over all mines, instead of one interval per --interval-s.
    #[arg(long, conflicts_with = "fast")]
    rate: Option<f64>,
    /// No waiting: files back to back, with the same data times.
    #[arg(long)]
    fast: bool,
    /// The first interval uploaded (data time `--start` + K × `--interval-s`): with K > 0 a run
    /// continues one whose CDDY/FZDY were sent (they come at interval 0 and every
    /// `--cddy-every` only); `--files` counts from K.
    #[arg(long, default_value_t = 0)]
    from_interval: u64,
    /// Upload only files of these types, comma-separated (`CDSS`, `FZSS,CDSS`); default all.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Attempts after the first for a 4xx reply or a broken connection (back-off 0.1 s, doubling to 5 s).
    #[arg(long, default_value_t = 5)]
    retries: u32,
    /// Seconds for one attempt (connect, log in, store).
    #[arg(long, default_value_t = 10.0)]
    timeout_s: f64,
    /// `F003@from..to` (seconds after the start, or 10m, 1h): substation down.
    #[arg(long, value_parser = mine::parse_fault)]
    fault_substation_down: Vec<(String, Window)>,
    /// `CODE@from..to`: sensor fault (status 128).
    #[arg(long, value_parser = mine::parse_fault)]
    fault_sensor: Vec<(String, Window)>,
    /// `CODE@from..to`: power cut (status 2).
    #[arg(long, value_parser = mine::parse_fault)]
    fault_cut: Vec<(String, Window)>,
    /// `CODE@from..to`: methane at 1.30 % (status 1) and a YCBJ record after.
    #[arg(long, value_parser = mine::parse_fault)]
    methane_excursion: Vec<(String, Window)>,
    /// YCBJ records carry 处理措施, 录入时间 and 录入人.
    #[arg(long)]
    ycbj_measure: bool,
    /// Hold interval N's CDSS back and upload it --late-by intervals later.
    #[arg(long)]
    late_file: Option<u64>,
    #[arg(long, default_value_t = 5)]
    late_by: u64,
    /// Upload interval N's CDSS twice.
    #[arg(long)]
    duplicate: Option<u64>,
    /// Encode the files in GBK.
    #[arg(long)]
    gbk: bool,
    /// Interval N's CDSS has no `||`.
    #[arg(long)]
    truncate: Option<u64>,
    /// Interval N's CDSS carries another mine's code (name and header).
    #[arg(long)]
    wrong_mine_code: Option<u64>,
    /// `from..to`: upload nothing with data times in this window.
    #[arg(long, value_parser = mine::parse_window)]
    gap: Option<Window>,
    /// 测点状态 as 8 binary digits instead of decimal.
    #[arg(long)]
    status_binary: bool,
    /// A line break after every record.
    #[arg(long)]
    line_breaks: bool,
}

/// How uploads are paced.
#[derive(Debug, Clone, Copy)]
enum Pace {
    /// Interval i at the run's start + i · interval.
    Clock,
    /// File k (over all mines) at the start + k / rate.
    Rate(f64),
    Fast,
}

/// Where files go.
enum Sink {
    Dir(PathBuf),
    Ftp(FtpConfig),
}

struct FtpConfig {
    addr: String,
    password: String,
    tls: Option<(tokio_rustls::TlsConnector, String)>,
    mode: Mode,
}

struct Run {
    mines: Vec<MineSpec>,
    plan: Plan,
    sink: Sink,
    pace: Pace,
    interval: Duration,
    concurrency: usize,
    deadline: Option<Duration>,
    retries: u32,
    timeout: Duration,
    /// The first interval uploaded (`plan.slots` is the end, exclusive).
    first: u64,
    /// Only these types are uploaded (empty: all).
    only: Vec<FileKind>,
}

/// What the run did (one worker's, then summed).
#[derive(Debug, Default)]
struct Stats {
    /// Files whose upload ended (accepted, refused or given up), each once.
    sent: u64,
    ok: u64,
    refused: u64,
    /// Given up after the retries (or timed out).
    failed: u64,
    retries: u64,
    /// Replies per attempt: `226`, `451`, `550`, …, `io` (a broken connection), `timeout`,
    /// `written` (the folder).
    replies: BTreeMap<String, u64>,
    /// Bytes of the accepted files.
    bytes: u64,
    /// Point records in the accepted CDSS files.
    points: u64,
    /// Intervals of the mines not uploaded for the gap.
    gapped: u64,
}

impl Stats {
    fn reply(&mut self, code: &str) {
        *self.replies.entry(code.to_string()).or_default() += 1;
    }
    fn add(&mut self, o: Stats) {
        self.sent += o.sent;
        self.ok += o.ok;
        self.refused += o.refused;
        self.failed += o.failed;
        self.retries += o.retries;
        self.bytes += o.bytes;
        self.points += o.points;
        self.gapped += o.gapped;
        for (k, v) in o.replies {
            *self.replies.entry(k).or_default() += v;
        }
    }
}

/// At most this many warnings on stderr, so a run refused by the thousand stays readable.
const MAX_WARNINGS: u64 = 20;
static WARNINGS: AtomicU64 = AtomicU64::new(0);

fn warn(msg: String) {
    let n = WARNINGS.fetch_add(1, Ordering::Relaxed);
    if n < MAX_WARNINGS {
        eprintln!("mine-sim: {msg}");
    } else if n == MAX_WARNINGS {
        eprintln!("mine-sim: further warnings left out");
    }
}

/// Accepts any server certificate (`--insecure`), still checking the handshake's signatures.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

fn tls_connector(
    ca: Option<&PathBuf>,
    insecure: bool,
) -> Result<tokio_rustls::TlsConnector, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?;
    let config = match (ca, insecure) {
        (_, true) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
            .with_no_client_auth(),
        (Some(ca), false) => {
            let mut roots = rustls::RootCertStore::empty();
            let certs = CertificateDer::pem_file_iter(ca)
                .map_err(|e| format!("--ca {}: {e}", ca.display()))?;
            for c in certs {
                let c = c.map_err(|e| format!("--ca {}: {e}", ca.display()))?;
                roots
                    .add(c)
                    .map_err(|e| format!("--ca {}: {e}", ca.display()))?;
            }
            if roots.is_empty() {
                return Err(format!("--ca {}: no certificate in it", ca.display()));
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        (None, false) => return Err("--ftps needs --ca FILE or --insecure".to_string()),
    };
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn setup(a: Args) -> Result<Run, String> {
    let offset = mine::parse_offset(&a.utc_offset)?;
    if a.interval_s == 0 {
        return Err("--interval-s must be at least 1".to_string());
    }
    if a.concurrency == 0 {
        return Err("--concurrency must be at least 1".to_string());
    }
    let codes: Vec<String> = match (&a.mine_code, a.mines, &a.first_code) {
        (Some(c), _, _) => vec![c.clone()],
        (None, Some(n), Some(first)) if n > 0 && n <= 100_000 => (0..n)
            .map(|k| mine::nth_code(first, k))
            .collect::<Result<_, _>>()?,
        (None, Some(n), Some(_)) => return Err(format!("--mines must be 1 to 100000, not {n}")),
        _ => return Err("give --mine-code, or --mines N with --first-code C".to_string()),
    };
    let single = codes.len() == 1;
    let mines = codes
        .iter()
        .enumerate()
        .map(|(k, c)| {
            let name = if single {
                a.mine_name.clone()
            } else {
                format!("{}{}", a.mine_name, k + 1)
            };
            let mut m = MineSpec::new(c, &name, a.points, a.substations, offset)?;
            m.people = a.people;
            Ok(m)
        })
        .collect::<Result<Vec<_>, String>>()?;
    let faults = Faults {
        substation_down: a.fault_substation_down,
        sensor: a.fault_sensor,
        cut: a.fault_cut,
        methane: a.methane_excursion,
    };
    faults.check(&mines[0])?;
    let pace = match (a.rate, a.fast) {
        (Some(r), _) if r.is_finite() && r > 0.0 => Pace::Rate(r),
        (Some(r), _) => return Err(format!("--rate must be a positive number, not {r}")),
        (None, true) => Pace::Fast,
        (None, false) => Pace::Clock,
    };
    let deadline = match a.duration_s {
        Some(d) if d.is_finite() && d > 0.0 && d < 1e9 => Some(Duration::from_secs_f64(d)),
        Some(d) => return Err(format!("--duration-s must be positive, not {d}")),
        None => None,
    };
    let slots = match (a.files, deadline, pace) {
        (Some(n), _, _) => Some(n),
        (None, Some(d), Pace::Clock) => Some(d.as_secs().div_ceil(a.interval_s).max(1)),
        (None, Some(_), _) => None,
        (None, None, _) => Some(10),
    };
    // The plan's slots end the run (exclusive): intervals `--from-interval` up to it.
    let slots = slots.map(|n| n.saturating_add(a.from_interval));
    let only = a
        .only
        .iter()
        .map(|t| {
            [
                FileKind::Cddy,
                FileKind::Cdss,
                FileKind::Ycbj,
                FileKind::Fzdy,
                FileKind::Fzss,
                FileKind::Jzss,
                FileKind::Ryss,
            ]
            .into_iter()
            .find(|k| k.as_str().eq_ignore_ascii_case(t.trim()))
            .ok_or_else(|| format!("--only: {t:?} is not a file type (CDDY, CDSS, FZSS, …)"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if !(a.timeout_s.is_finite() && a.timeout_s > 0.0 && a.timeout_s < 1e6) {
        return Err(format!("--timeout-s must be positive, not {}", a.timeout_s));
    }
    let start_ms = match &a.start {
        Some(s) => mine::parse_local(s, offset)?,
        None => now_ms().div_euclid(1000) * 1000,
    };
    let sink = match (a.ftp, a.dir) {
        (Some(addr), None) => {
            let var = a
                .password_env
                .ok_or("--ftp needs --password-env VAR (the variable holding the password)")?;
            let password = std::env::var(&var)
                .map_err(|_| format!("--password-env {var}: the variable is not set"))?;
            let host = addr
                .rsplit_once(':')
                .filter(|(_, p)| p.parse::<u16>().is_ok())
                .map(|(h, _)| h.trim_matches(['[', ']']).to_string())
                .ok_or_else(|| format!("--ftp must be host:port, got {addr:?}"))?;
            let tls = if a.ftps {
                let name = a.tls_name.unwrap_or(host);
                ServerName::try_from(name.clone())
                    .map_err(|e| format!("TLS name {name:?}: {e}"))?;
                Some((tls_connector(a.ca.as_ref(), a.insecure)?, name))
            } else {
                None
            };
            Sink::Ftp(FtpConfig {
                addr,
                password,
                tls,
                mode: if a.epsv {
                    Mode::ExtendedPassive
                } else {
                    Mode::Passive
                },
            })
        }
        (None, Some(dir)) => {
            std::fs::create_dir_all(&dir).map_err(|e| format!("--dir {}: {e}", dir.display()))?;
            Sink::Dir(dir)
        }
        _ => return Err("give --ftp HOST:PORT or --dir PATH".to_string()),
    };
    let plan = Plan {
        start_ms,
        interval_s: a.interval_s,
        slots,
        cddy_every: a.cddy_every,
        status_binary: a.status_binary,
        gbk: a.gbk,
        line_breaks: a.line_breaks,
        faults,
        ycbj_measure: a.ycbj_measure,
        truncate: a.truncate,
        wrong_mine_code: a.wrong_mine_code,
        duplicate: a.duplicate,
        late_file: a.late_file,
        late_by: a.late_by,
        gap: a.gap,
    };
    Ok(Run {
        concurrency: a.concurrency.min(mines.len()),
        mines,
        plan,
        sink,
        pace,
        interval: Duration::from_secs(a.interval_s),
        deadline,
        retries: a.retries,
        timeout: Duration::from_secs_f64(a.timeout_s),
        first: a.from_interval,
        only,
    })
}

/// Why one attempt failed.
enum Failure {
    /// The server replied with this code.
    Reply(u32, String),
    /// No usable reply: the connection is dropped and opened again.
    Io(String),
    /// TLS failed (a certificate not trusted, …): trying again will not help.
    Tls(String),
}

impl From<FtpError> for Failure {
    fn from(e: FtpError) -> Failure {
        match e {
            FtpError::UnexpectedResponse(r) => {
                let code = r.status.code();
                let text = String::from_utf8_lossy(&r.body);
                // The body is the reply line, its code included.
                let text = text.trim();
                let text = text
                    .strip_prefix(code.to_string().as_str())
                    .unwrap_or(text)
                    .trim_start_matches(['-', ' ']);
                Failure::Reply(code, text.to_string())
            }
            FtpError::SecureError(e) => Failure::Tls(e),
            e => Failure::Io(e.to_string()),
        }
    }
}

async fn open(
    cfg: &FtpConfig,
    login: &str,
    timeout: Duration,
) -> Result<AsyncRustlsFtpStream, Failure> {
    let addr = tokio::net::lookup_host(&cfg.addr)
        .await
        .map_err(|e| Failure::Io(format!("{}: {e}", cfg.addr)))?
        .next()
        .ok_or_else(|| Failure::Io(format!("{}: no address", cfg.addr)))?;
    let mut s = AsyncRustlsFtpStream::connect_timeout(addr, timeout).await?;
    if let Some((connector, name)) = &cfg.tls {
        s = s
            .into_secure(AsyncRustlsConnector::from(connector.clone()), name)
            .await?;
    }
    s.login(login, cfg.password.as_str()).await?;
    s.transfer_type(FileType::Binary).await?;
    s.set_mode(cfg.mode);
    Ok(s)
}

async fn attempt(
    cfg: &FtpConfig,
    conn: &mut Option<AsyncRustlsFtpStream>,
    login: &str,
    f: &OutFile,
    timeout: Duration,
) -> Result<(), Failure> {
    let c = match conn {
        Some(c) => c,
        None => conn.insert(open(cfg, login, timeout).await?),
    };
    c.put_file(&f.name, &mut f.bytes.as_slice()).await?;
    Ok(())
}

/// One file to the server: 226 is done; a 4xx (451: not taken now) or a broken connection
/// is tried again after a back-off, at most `retries` times; a 5xx is a refusal.
async fn ftp_put(
    run: &Run,
    cfg: &FtpConfig,
    conn: &mut Option<AsyncRustlsFtpStream>,
    login: &str,
    f: &OutFile,
    st: &mut Stats,
) {
    let mut backoff = Duration::from_millis(100);
    let mut last = String::new();
    for n in 0..=run.retries {
        if n > 0 {
            st.retries += 1;
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
        match tokio::time::timeout(run.timeout, attempt(cfg, conn, login, f, run.timeout)).await {
            Ok(Ok(())) => {
                st.reply("226");
                st.ok += 1;
                st.bytes += f.bytes.len() as u64;
                st.points += f.points as u64;
                return;
            }
            Ok(Err(Failure::Reply(code, text))) => {
                st.reply(&code.to_string());
                if (500..600).contains(&code) {
                    st.refused += 1;
                    warn(format!("{login}: {} refused: {code} {text}", f.name));
                    if code == 530 {
                        *conn = None;
                    }
                    return;
                }
                if code == 421 || !(400..500).contains(&code) {
                    *conn = None;
                }
                last = format!("{code} {text}");
            }
            Ok(Err(Failure::Tls(e))) => {
                st.reply("tls");
                st.failed += 1;
                *conn = None;
                warn(format!("{login}: {} not sent, TLS: {e}", f.name));
                return;
            }
            Ok(Err(Failure::Io(e))) => {
                st.reply("io");
                *conn = None;
                last = e;
            }
            Err(_) => {
                st.reply("timeout");
                *conn = None;
                last = format!("no answer in {:.1} s", run.timeout.as_secs_f64());
            }
        }
    }
    st.failed += 1;
    warn(format!(
        "{login}: {} given up after {} attempts: {last}",
        f.name,
        run.retries + 1
    ));
}

async fn dir_put(dir: &std::path::Path, f: &OutFile, st: &mut Stats) {
    let tmp = dir.join(format!("{}.tmp", f.name));
    let r = async {
        tokio::fs::write(&tmp, &f.bytes).await?;
        tokio::fs::rename(&tmp, dir.join(&f.name)).await
    }
    .await;
    match r {
        Ok(()) => {
            st.reply("written");
            st.ok += 1;
            st.bytes += f.bytes.len() as u64;
            st.points += f.points as u64;
        }
        Err(e) => {
            st.reply("io");
            st.failed += 1;
            warn(format!("{}: {e}", tmp.display()));
        }
    }
}

/// One mine's uploader state.
struct MineState {
    index: usize,
    seq: Sequencer,
    conn: Option<AsyncRustlsFtpStream>,
}

/// Uploads the files of mines `w`, `w + concurrency`, …, interval by interval.
async fn worker(run: Arc<Run>, w: usize, t0: Instant, tickets: Arc<AtomicU64>) -> Stats {
    let mut st = Stats::default();
    let mut mines: Vec<MineState> = (w..run.mines.len())
        .step_by(run.concurrency)
        .map(|index| MineState {
            index,
            seq: Sequencer::default(),
            conn: None,
        })
        .collect();
    let past_deadline = || run.deadline.is_some_and(|d| t0.elapsed() >= d);
    let slots = run.plan.slots.unwrap_or(u64::MAX);
    'run: for slot in run.first..slots {
        if past_deadline() {
            break;
        }
        if let Pace::Clock = run.pace {
            let at = t0
                + run
                    .interval
                    .saturating_mul((slot - run.first).min(u32::MAX as u64) as u32);
            if run.deadline.is_some_and(|d| at > t0 + d) {
                break;
            }
            tokio::time::sleep_until(at.into()).await;
        }
        for m in &mut mines {
            let mut files = m.seq.slot(&run.mines[m.index], &run.plan, slot);
            files.retain(|f| run.only.is_empty() || run.only.contains(&f.kind));
            for f in files {
                if !matches!(run.pace, Pace::Clock) && past_deadline() {
                    break 'run;
                }
                send(&run, m, &f, t0, &tickets, &mut st).await;
            }
        }
    }
    for m in &mut mines {
        let mut held = m.seq.finish();
        held.retain(|f| run.only.is_empty() || run.only.contains(&f.kind));
        for f in held {
            if past_deadline() {
                break;
            }
            send(&run, m, &f, t0, &tickets, &mut st).await;
        }
        st.gapped += m.seq.gapped;
        if let Some(mut c) = m.conn.take() {
            let _ = tokio::time::timeout(Duration::from_secs(2), c.quit()).await;
        }
    }
    st
}

async fn send(
    run: &Run,
    m: &mut MineState,
    f: &OutFile,
    t0: Instant,
    tickets: &AtomicU64,
    st: &mut Stats,
) {
    if let Pace::Rate(r) = run.pace {
        let k = tickets.fetch_add(1, Ordering::Relaxed);
        let at = t0 + Duration::from_secs_f64((k as f64 / r).min(1e9));
        tokio::time::sleep_until(at.into()).await;
    }
    st.sent += 1;
    match &run.sink {
        Sink::Dir(dir) => dir_put(dir, f, st).await,
        Sink::Ftp(cfg) => {
            let login = run.mines[m.index].code.clone();
            ftp_put(run, cfg, &mut m.conn, &login, f, st).await
        }
    }
}

async fn go(run: Run) -> Stats {
    let run = Arc::new(run);
    let t0 = Instant::now();
    let tickets = Arc::new(AtomicU64::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..run.concurrency {
        tasks.spawn(worker(run.clone(), w, t0, tickets.clone()));
    }
    let mut total = Stats::default();
    while let Some(r) = tasks.join_next().await {
        match r {
            Ok(s) => total.add(s),
            Err(e) => warn(format!("a worker stopped: {e}")),
        }
    }
    total
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let run = match setup(Args::parse()) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("mine-sim: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let (mines, points) = (run.mines.len(), run.mines[0].points.len());
    let mode = match run.sink {
        Sink::Dir(_) => "dir",
        Sink::Ftp(FtpConfig { tls: Some(_), .. }) => "ftps",
        Sink::Ftp(_) => "ftp",
    };
    let t0 = Instant::now();
    let st = go(run).await;
    let elapsed = t0.elapsed().as_secs_f64();
    let per_s = |n: u64| {
        if elapsed > 0.0 {
            n as f64 / elapsed
        } else {
            0.0
        }
    };
    let summary = serde_json::json!({
        "mode": mode,
        "mines": mines,
        "points_per_mine": points,
        "files_sent": st.sent,
        "files_ok": st.ok,
        "files_refused": st.refused,
        "files_failed": st.failed,
        "retries": st.retries,
        "replies": st.replies,
        "bytes": st.bytes,
        "points": st.points,
        "gapped_intervals": st.gapped,
        "elapsed_s": (elapsed * 1000.0).round() / 1000.0,
        "files_per_s": (per_s(st.ok) * 10.0).round() / 10.0,
        "points_per_s": per_s(st.points).round(),
    });
    println!("{summary}");
    if st.failed > 0 {
        std::process::ExitCode::from(2)
    } else {
        std::process::ExitCode::SUCCESS
    }
}
