//! Coal mines' networking files (煤安监办〔2019〕42号 附件2, MT/T 1201.1/1201.3-2023): the point
//! definitions, real-time values, anomalies, substations and personnel-positioning files a
//! mine's KJ system already uploads every few seconds, taken over an embedded FTP(S) server
//! or from a watched folder. See docs/mine-files.md.
//!
//! The transports (`ftp`, `watch`) only receive whole files and hand each to a [`Taker`];
//! they answer their sender (the FTP 226, the move to `done/`) with what the taker returns,
//! which is only after the file's readings are committed.

pub mod config;
pub mod format;
pub mod ftp;
pub mod metrics;
pub mod watch;

use futures::future::BoxFuture;

/// How a file arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    Ftp,
    Folder,
}

/// A complete file, as a transport received it.
#[derive(Debug, Clone)]
pub struct Upload {
    /// The mine the transport vouches for: the FTP login. `None` from the watched folder,
    /// where the file name's code is all there is.
    pub login: Option<String>,
    /// The file's own name, without any folder (`<mine code>_<TYPE>_<yyyyMMddHHmmss>.txt`).
    pub name: String,
    pub bytes: Vec<u8>,
    /// When the transport had it whole, epoch ms (the gateway's clock).
    pub received_ms: i64,
    pub via: Via,
}

/// What became of a file that was taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Taken {
    /// Its records were applied and committed; `refused` of them were refused one by one.
    Applied { accepted: usize, refused: usize },
    /// The same file (name and content) was applied before: nothing was done again.
    Duplicate,
}

/// Why a file was not taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TakeError {
    /// Refused for good: sending it again unchanged will not help (FTP: a 55x reply; the
    /// watched folder moves it to `quarantine/` with the reason beside it).
    #[error("{reason}: {detail}")]
    Refused {
        reason: &'static str,
        detail: String,
    },
    /// Not taken now, nothing of it committed: the gateway is holding, stopping, or the
    /// commit failed (FTP: 451, the uploader retries; the folder leaves it for the next scan).
    #[error("not taken now, send it again: {0}")]
    Retry(String),
    /// The file does not end with `||`: over FTP it is refused, the watched folder waits for
    /// the rest of it.
    #[error("the file is incomplete: it does not end with `||`")]
    Incomplete,
}

/// Takes a whole file: parses it, applies it to the core and returns once it is committed.
/// The transports hold it as `Arc<dyn Taker>`.
pub trait Taker: Send + Sync + 'static {
    fn take(&self, upload: Upload) -> BoxFuture<'static, Result<Taken, TakeError>>;
}

pub mod apply;
pub mod compliance;
pub mod intake;
pub mod kept;
mod saved;
pub mod status;

use crate::core::inventory::{InventoryConfig, SiteConfig};
use crate::model::SystemKind;
use crate::telemetry::{Clock, Metrics};
use config::MineFilesSettings;
use std::collections::HashMap;
use std::sync::Arc;

/// Why the source cannot start, for the operator.
#[derive(Debug, thiserror::Error)]
pub enum MineFilesError {
    #[error("site {site:?}: environment variable {env:?} (upload_password_env) is not set; the mine could not log in")]
    MissingPassword { site: String, env: String },
    #[error("site {site:?}: timezone {value:?} is not an offset like \"+08:00\"")]
    BadTimezone { site: String, value: String },
    #[error(transparent)]
    Ftp(#[from] ftp::FtpError),
    #[error(transparent)]
    Watch(#[from] watch::WatchError),
}

/// The mine sites of the inventory: those with a `mine_code`.
pub fn mine_sites<P>(
    inv: &InventoryConfig<P>,
    settings: &MineFilesSettings,
) -> Result<Vec<apply::MineSite>, MineFilesError> {
    let first_system = |site: &SiteConfig, kind: SystemKind| {
        inv.systems
            .iter()
            .find(|s| s.site == site.id && s.kind == kind)
            .map(|s| s.id.clone())
    };
    let mut out = Vec::new();
    for s in &inv.sites {
        let Some(code) = &s.mine_code else { continue };
        let tz = s.timezone.as_deref().unwrap_or("+08:00");
        let tz_offset_s = format::parse_tz(tz).ok_or_else(|| MineFilesError::BadTimezone {
            site: s.id.clone(),
            value: tz.to_string(),
        })?;
        out.push(apply::MineSite {
            site: s.id.clone(),
            mine_code: code.clone(),
            tz_offset_s,
            kj_system: first_system(s, SystemKind::MajorHazard),
            positioning_system: first_system(s, SystemKind::Positioning),
            offline_after_s: settings.upload_timeout_s as f64,
        });
    }
    Ok(out)
}

/// FTP logins: mine code → password, from each site's `upload_password_env`.
fn logins(sites: &[SiteConfig]) -> Result<HashMap<String, String>, MineFilesError> {
    let mut out = HashMap::new();
    for s in sites {
        let (Some(code), Some(env)) = (&s.mine_code, &s.upload_password_env) else {
            continue;
        };
        let pw = std::env::var(env).map_err(|_| MineFilesError::MissingPassword {
            site: s.id.clone(),
            env: env.clone(),
        })?;
        out.insert(code.clone(), pw);
    }
    Ok(out)
}

/// The source the registry starts: the intake, and the transports that feed it.
pub struct MineFilesSource {
    intake: Arc<intake::Intake>,
    clock: Clock,
    ftp: Option<ftp::FtpServer>,
    watch: Option<watch::FolderWatch>,
}

impl MineFilesSource {
    pub fn build<P>(
        settings: &MineFilesSettings,
        inv: &InventoryConfig<P>,
        metrics: &Metrics,
        clock: &Clock,
        status: Arc<status::MinesStatus>,
        data_dir: &std::path::Path,
        cluster: Option<&[crate::core::event::FileSave]>,
    ) -> Result<MineFilesSource, MineFilesError> {
        let m = metrics::MineMetrics::register(metrics);
        let kept = kept::Kept::at(data_dir.join("mine_files"));
        let sites = mine_sites(inv, settings)?;
        let relay = cluster.is_some();
        let saved = cluster.unwrap_or_default();
        let intake = Arc::new(intake::Intake::new(sites, kept, m, status, relay, saved));
        let taker: Arc<dyn Taker> = Arc::new(intake::IntakeTaker(intake.clone()));
        let ftp = if settings.listen.is_empty() {
            None
        } else {
            let logins = logins(&inv.sites)?;
            Some(ftp::FtpServer::build(
                settings,
                logins,
                taker.clone(),
                metrics,
                clock.clone(),
            )?)
        };
        let watch = watch::FolderWatch::build(settings, taker, metrics, clock.clone())?;
        Ok(MineFilesSource {
            intake,
            clock: clock.clone(),
            ftp,
            watch,
        })
    }
}

impl MineFilesSource {
    /// Cluster mode: how this instance applies the files of the readings stream.
    pub fn stream_files(&self) -> crate::core::event::Files {
        Arc::new(intake::StreamFiles(self.intake.clone()))
    }
}

impl super::Source for MineFilesSource {
    fn name(&self) -> &'static str {
        "mine_files"
    }

    fn spawn(self: Box<Self>, cx: &super::SourceContext) -> Vec<tokio::task::JoinHandle<()>> {
        self.intake
            .connect(Some((cx.events.clone(), cx.hold.clone())));
        let (intake, ftp, watch, now) = (self.intake, self.ftp, self.watch, self.clock.now_ms());
        let (ftp_stop, watch_stop) = (cx.shutdown.subscribe(), cx.shutdown.subscribe());
        // The kept point definitions first: a file taken before them would find no points.
        let replayed = intake.clone();
        let transports = tokio::spawn(async move {
            replayed.replay_kept(now).await;
            let ftp = ftp.map(|f| tokio::spawn(run_ftp(f, ftp_stop)));
            let watch = watch.map(|w| tokio::spawn(w.run(watch_stop)));
            for t in [ftp, watch].into_iter().flatten() {
                let _ = t.await;
            }
        });
        let mut stop = cx.shutdown.subscribe();
        let unlink = tokio::spawn(async move {
            let _ = stop.recv().await;
            intake.connect(None);
        });
        vec![transports, unlink]
    }
}

async fn run_ftp(ftp: ftp::FtpServer, stop: tokio::sync::broadcast::Receiver<()>) {
    if let Err(e) = ftp.run(stop).await {
        tracing::error!(error = %e, "the mine files' FTP server stopped");
    }
}

/// Cluster mode: what each mine's CDDY in the checkpoint declares, as it declared it then:
/// put back into the core's inventory before the stream is applied from the checkpoint on.
pub fn saved_declarations<P>(
    inv: &InventoryConfig<P>,
    settings: &MineFilesSettings,
    saved: &[crate::core::event::FileSave],
) -> Result<Vec<crate::core::SiteDevices>, MineFilesError> {
    let mut out = Vec::new();
    for site in mine_sites(inv, settings)? {
        let Some(save) = saved.iter().find(|f| f.key == site.mine_code) else {
            continue;
        };
        let (_, events, _) = saved::restore(&site, &save.state, save.definition.as_ref());
        out.extend(events.into_iter().filter_map(|e| match e {
            crate::core::SourceEvent::Devices(sd) => Some(*sd),
            _ => None,
        }));
    }
    Ok(out)
}

/// What each mine's kept CDDY declares, as a gateway starting now would declare it: for the
/// `safegate report` command, which reads the persisted state without running the sources,
/// so that its inventory holds the same points (and findings) as the running gateway's.
/// A kept file that no longer parses declares nothing (the running gateway would refuse it
/// the same way); the error says which.
pub fn kept_declarations<P>(
    inv: &InventoryConfig<P>,
    settings: &MineFilesSettings,
    data_dir: &std::path::Path,
    at_ms: i64,
) -> Result<(Vec<crate::core::SiteDevices>, Vec<String>), MineFilesError> {
    let kept = kept::Kept::at(data_dir.join("mine_files"));
    let mut out = Vec::new();
    let mut problems = Vec::new();
    for site in mine_sites(inv, settings)? {
        let Some((name, bytes)) = kept.last(&site.mine_code) else {
            continue;
        };
        let parsed = match format::parse_file(&name, &bytes, site.tz_offset_s) {
            Ok(p) => p,
            Err(e) => {
                problems.push(format!("kept CDDY {name} of site {:?}: {e}", site.site));
                continue;
            }
        };
        let mut state = apply::MineState::default();
        let (events, _) = apply::apply(&name, &parsed, &site, &mut state, at_ms);
        out.extend(events.into_iter().filter_map(|e| match e {
            crate::core::SourceEvent::Devices(sd) => Some(*sd),
            _ => None,
        }));
    }
    Ok((out, problems))
}
