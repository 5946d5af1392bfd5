//! The embedded FTP(S) server the mines upload to (docs/mine-files.md, "FTP and FTPS").
//!
//! Built on libunftp: its control and data channels, with a storage backend of our own
//! ([`folder::Folder`]: a virtual folder per mine, no file system) and an authenticator
//! ([`auth::MineLogins`]: mine code and password). The accept loop is ours, so that the
//! session bound, the bound address and the shutdown are ours too: each accepted
//! connection is served by `Server::service`.
//!
//! A file's 226 is its commit. libunftp sends the 226 only after the backend's `put`
//! returns: in `src/server/datachan.rs`, `DataCommandExecutor::exec_stor` awaits
//! `self.storage.put(..)` and only on its `Ok` sends `ControlChanMsg::WrittenData` to the
//! control loop, which `PrimaryEventHandler::handle_internal_msg` in
//! `src/server/controlchan/control_loop.rs` turns into `226 File successfully written`; an
//! `Err` becomes `ControlChanMsg::StorageError`, a reply by the error's kind. Our `put`
//! returns only when the taker has (`Folder::take`), so the 226 follows the commit.
//! Likewise RNTO (`src/server/controlchan/commands/rnto.rs`) replies 250 only after
//! `storage.rename(..)` returns, which takes a held temporary file.
//!
//! What libunftp does not let a backend do: put its own text in a reply. The 55x/451 code
//! is chosen by the error's kind and the text is libunftp's; the taker's reason is logged
//! (rate-limited) and `SITE WHY` answers it to the session that was refused.

pub mod auth;
pub mod folder;
#[cfg(test)]
mod tests;

use crate::sources::mine_files::config::MineFilesSettings;
use crate::sources::mine_files::metrics::FtpMetrics;
use crate::sources::mine_files::Taker;
use crate::telemetry::{Clock, Metrics, RateLimitedLog};
use async_trait::async_trait;
use folder::{Folder, RecentList};
use libunftp::options::{Reply, ReplyCode, SiteCommandContext, SiteCommandHandler};
use libunftp::{Server, ServerBuilder};
use std::collections::{HashMap, HashSet};
use std::net::{Shutdown, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::sync::{broadcast, Semaphore};
use tokio::task::JoinSet;

/// How long open sessions get to end after the shutdown before they are cut.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// The greeting (220).
const GREETING: &str = "safegate: upload your mine's networking files";

/// Why the server could not be built or run; each says what to change.
#[derive(Debug, thiserror::Error)]
pub enum FtpError {
    #[error("mine_files.listen is empty: no FTP server is to run (give an address such as 0.0.0.0:2121)")]
    NoListen,
    #[error("mine_files.listen {listen:?} is not an IP address and port (e.g. 0.0.0.0:2121)")]
    BadListen { listen: String },
    #[error("cannot listen on {addr} for mine files: {source} (is another server on that port, or is the address not this machine's?)")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("mine_files.passive_ports [{from}, {to}] is not a range of ports: give [first, last] with 1 <= first <= last")]
    BadPortRange { from: u16, to: u16 },
    #[error("mine_files.tls_cert_file and tls_key_file must be given together (FTPS), or neither (plain FTP)")]
    TlsHalf,
    #[error("cannot read the FTPS certificate {path}: {detail} (mine_files.tls_cert_file: a PEM file of the server's certificate chain)")]
    Cert { path: PathBuf, detail: String },
    #[error("cannot read the FTPS key {path}: {detail} (mine_files.tls_key_file: a PEM file of the certificate's private key)")]
    Key { path: PathBuf, detail: String },
    #[error("the FTPS certificate and key cannot be used: {detail} (does the key belong to the certificate?)")]
    Tls { detail: String },
    #[error(
        "no mine has an upload password, so no mine could log in: give the mines' FTP passwords"
    )]
    NoLogins,
    #[error("mine files FTP: {0}")]
    Io(#[from] std::io::Error),
}

/// What the sessions share: the taker, the counts, the mines' recent uploads.
pub struct Shared {
    taker: Arc<dyn Taker>,
    metrics: Arc<FtpMetrics>,
    clock: Clock,
    warn: RateLimitedLog,
    max_file_bytes: usize,
    /// The mines' codes: another mine's code is not a folder one may enter.
    mines: HashSet<String>,
    recent: Mutex<HashMap<String, RecentList>>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("max_file_bytes", &self.max_file_bytes)
            .field("mines", &self.mines.len())
            .finish_non_exhaustive()
    }
}

/// `SITE WHY`: the reason for this session's last refused upload (libunftp's 55x replies
/// cannot carry it).
#[derive(Debug)]
struct Why;

#[async_trait]
impl SiteCommandHandler<Folder, auth::Mine> for Why {
    async fn handle(&self, ctx: &SiteCommandContext<Folder, auth::Mine>) -> Reply {
        match ctx.storage.last_refusal() {
            Some(why) => {
                Reply::new_with_string(ReplyCode::CommandOkay, why.escape_debug().to_string())
            }
            None => Reply::new(
                ReplyCode::CommandOkay,
                "no upload was refused in this session",
            ),
        }
    }
}

/// The server, bound: [`FtpServer::local_addr`] tells where, [`FtpServer::run`] serves.
pub struct FtpServer {
    listener: std::net::TcpListener,
    local_addr: SocketAddr,
    passive_ports: std::ops::RangeInclusive<u16>,
    idle_timeout_s: u64,
    max_sessions: usize,
    tls: Option<(PathBuf, PathBuf)>,
    shared: Arc<Shared>,
    logins: Arc<auth::MineLogins>,
}

impl FtpServer {
    /// Check the settings, read the certificate and key, and bind `listen`. `logins` are the
    /// mines' codes and upload passwords.
    pub fn build(
        settings: &MineFilesSettings,
        logins: HashMap<String, String>,
        taker: Arc<dyn Taker>,
        metrics: &Metrics,
        clock: Clock,
    ) -> Result<FtpServer, FtpError> {
        if settings.listen.is_empty() {
            return Err(FtpError::NoListen);
        }
        let addr: SocketAddr = settings.listen.parse().map_err(|_| FtpError::BadListen {
            listen: settings.listen.clone(),
        })?;
        let [from, to] = settings.passive_ports;
        if from == 0 || from > to {
            return Err(FtpError::BadPortRange { from, to });
        }
        if logins.is_empty() {
            return Err(FtpError::NoLogins);
        }
        let tls = match (&settings.tls_cert_file, &settings.tls_key_file) {
            (None, None) => None,
            (Some(cert), Some(key)) => {
                check_tls_files(cert, key)?;
                Some((cert.clone(), key.clone()))
            }
            _ => return Err(FtpError::TlsHalf),
        };
        let shared = Arc::new(Shared {
            taker,
            metrics: FtpMetrics::register(metrics),
            clock,
            warn: RateLimitedLog::new(30_000),
            max_file_bytes: settings.max_file_bytes,
            mines: logins.keys().cloned().collect(),
            recent: Mutex::new(HashMap::new()),
        });
        let logins = Arc::new(auth::MineLogins::new(&logins, shared.clone()));
        let listener =
            std::net::TcpListener::bind(addr).map_err(|source| FtpError::Bind { addr, source })?;
        listener.set_nonblocking(true)?;
        let local_addr = listener.local_addr()?;
        let server = FtpServer {
            listener,
            local_addr,
            passive_ports: from..=to,
            idle_timeout_s: settings.idle_timeout_s.max(1),
            max_sessions: settings.max_sessions.max(1),
            tls,
            shared,
            logins,
        };
        // libunftp's own check of the TLS setup (the key matching the certificate).
        server.session_server().map_err(|e| FtpError::Tls {
            detail: error_chain(&e),
        })?;
        Ok(server)
    }

    /// The address the control port is bound to (the port when `listen` gave port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// A libunftp server for one session (`Server::service` takes it whole).
    fn session_server(&self) -> Result<Server<Folder, auth::Mine>, libunftp::ServerError> {
        let shared = self.shared.clone();
        let mut b = ServerBuilder::with_user_detail_provider(
            Box::new(move || Folder::new(shared.clone())),
            Arc::new(auth::MineDetails),
        )
        .authenticator(self.logins.clone())
        .greeting(GREETING)
        .passive_ports(self.passive_ports.clone())
        .idle_session_timeout(self.idle_timeout_s)
        .logger(slog::Logger::root(slog::Discard, slog::o!()))
        .site_command("WHY", Why);
        if let Some((cert, key)) = &self.tls {
            b = b.ftps(cert.clone(), key.clone());
        }
        b.build()
    }

    /// Serve until `shutdown` (a message or its sender dropped): then stop accepting, close
    /// the open sessions and wait a little for them to end.
    pub async fn run(self, mut shutdown: broadcast::Receiver<()>) -> Result<(), FtpError> {
        let listener = tokio::net::TcpListener::from_std(self.listener.try_clone()?)?;
        let permits = Arc::new(Semaphore::new(self.max_sessions));
        let open: Arc<Mutex<HashMap<u64, std::net::TcpStream>>> = Arc::default();
        let mut sessions = JoinSet::new();
        let mut next_id = 0u64;
        tracing::info!(addr = %self.local_addr, tls = self.tls.is_some(), "mine files FTP server listening");
        loop {
            tokio::select! {
                _ = shutdown.recv() => break,
                Some(_) = sessions.join_next(), if !sessions.is_empty() => {}
                accepted = listener.accept() => {
                    let (tcp, peer) = match accepted {
                        Ok(a) => a,
                        Err(e) => {
                            if let Some(suppressed) = self.shared.warn.allow("accept", self.shared.clock.now_ms()) {
                                tracing::warn!(error = %e, suppressed, "mine files FTP: cannot accept a connection");
                            }
                            // Out of descriptors, say: not a busy loop.
                            tokio::time::sleep(Duration::from_millis(100)).await;
                            continue;
                        }
                    };
                    next_id += 1;
                    self.admit(tcp, peer, next_id, &permits, &open, &mut sessions);
                }
            }
        }
        drop(listener);
        for s in open.lock().unwrap_or_else(|p| p.into_inner()).values() {
            let _ = s.shutdown(Shutdown::Both);
        }
        let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
            while sessions.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            sessions.abort_all();
        }
        tracing::info!("mine files FTP server stopped");
        Ok(())
    }

    /// Serve one connection, or refuse it (421) when `max_sessions` are open.
    fn admit(
        &self,
        tcp: tokio::net::TcpStream,
        peer: SocketAddr,
        id: u64,
        permits: &Arc<Semaphore>,
        open: &Arc<Mutex<HashMap<u64, std::net::TcpStream>>>,
        sessions: &mut JoinSet<()>,
    ) {
        let refuse = |mut tcp: tokio::net::TcpStream, line: String| async move {
            let _ = tokio::time::timeout(Duration::from_secs(2), async {
                let _ = tcp.write_all(line.as_bytes()).await;
                let _ = tcp.shutdown().await;
            })
            .await;
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            self.shared.metrics.session("busy");
            if let Some(suppressed) = self.shared.warn.allow("busy", self.shared.clock.now_ms()) {
                tracing::warn!(from = %peer, max_sessions = self.max_sessions, suppressed,
                    "mine files FTP: a session over max_sessions was refused");
            }
            let line = format!(
                "421 Too many sessions ({} open, the most this server takes): try again later\r\n",
                self.max_sessions
            );
            sessions.spawn(refuse(tcp, line));
            return;
        };
        let server = match self.session_server() {
            Ok(s) => s,
            Err(e) => {
                if let Some(suppressed) =
                    self.shared.warn.allow("setup", self.shared.clock.now_ms())
                {
                    tracing::warn!(error = %error_chain(&e), suppressed,
                        "mine files FTP: cannot set a session up (are the certificate and key still readable?)");
                }
                sessions.spawn(refuse(
                    tcp,
                    "421 Service not available now: try again later\r\n".into(),
                ));
                return;
            }
        };
        // A second handle on the socket, to close the session at shutdown: libunftp's
        // `service` has no shutdown of its own.
        let (tcp, dup) = match with_second_handle(tcp) {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(error = %e, "mine files FTP: cannot take a connection");
                return;
            }
        };
        open.lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, dup);
        self.shared.metrics.session("accepted");
        let shared = self.shared.clone();
        let open = open.clone();
        sessions.spawn(async move {
            let _permit = permit;
            let _open = OpenSession::new(shared, open, id);
            let _ = server.service(tcp).await;
        });
    }
}

/// Counts a session open while it lives and forgets its socket when it ends.
struct OpenSession {
    shared: Arc<Shared>,
    open: Arc<Mutex<HashMap<u64, std::net::TcpStream>>>,
    id: u64,
}

impl OpenSession {
    fn new(
        shared: Arc<Shared>,
        open: Arc<Mutex<HashMap<u64, std::net::TcpStream>>>,
        id: u64,
    ) -> Self {
        shared.metrics.sessions_open.inc();
        OpenSession { shared, open, id }
    }
}

impl Drop for OpenSession {
    fn drop(&mut self) {
        self.shared.metrics.sessions_open.dec();
        self.open
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.id);
    }
}

/// The connection, and a second handle on its socket.
fn with_second_handle(
    tcp: tokio::net::TcpStream,
) -> std::io::Result<(tokio::net::TcpStream, std::net::TcpStream)> {
    let std = tcp.into_std()?;
    let dup = std.try_clone()?;
    Ok((tokio::net::TcpStream::from_std(std)?, dup))
}

/// Check that the certificate and key files can be read and hold what they should.
fn check_tls_files(cert: &PathBuf, key: &PathBuf) -> Result<(), FtpError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let cert_pem = std::fs::read(cert).map_err(|e| FtpError::Cert {
        path: cert.clone(),
        detail: e.to_string(),
    })?;
    let certs: Vec<CertificateDer> = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| FtpError::Cert {
            path: cert.clone(),
            detail: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(FtpError::Cert {
            path: cert.clone(),
            detail: "no certificate (-----BEGIN CERTIFICATE-----) in it".into(),
        });
    }
    let key_pem = std::fs::read(key).map_err(|e| FtpError::Key {
        path: key.clone(),
        detail: e.to_string(),
    })?;
    PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| FtpError::Key {
        path: key.clone(),
        detail: format!("no private key in it ({e})"),
    })?;
    Ok(())
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}
