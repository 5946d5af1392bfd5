//! Reloading the configuration at runtime (SIGHUP, `POST /api/v1/config/reload`): the files
//! the gateway started with are read and validated exactly as at start, off the core task;
//! the core task then applies the inventory's difference between two batches, dated by its
//! clock, and journals the registry rows with that round. Nothing else is applied: the
//! sections read only at start are listed as needing a restart, and a change the sources
//! would need to follow (a site's signing or platform keys, its mine keys, a Modbus device)
//! refuses the reload, naming the key.

use crate::api::{ReloadOutcome, ReloadProblem, ReloadReport};
use crate::config::{Config, ConfigError, LoadedConfig};
use crate::model::Protocol;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, oneshot};

/// What the running gateway was started with, as far as a reload compares it.
#[derive(Debug, Clone)]
pub struct Running {
    main_file: PathBuf,
    /// Each section read only at start, as text (compared, never shown: it may hold the
    /// names of secrets' variables).
    sections: Vec<(&'static str, String)>,
    /// Per site: the keys sources hold from start (signature, platforms, mine login).
    sites: BTreeMap<String, String>,
    /// Per Modbus device (site, id): its polling plan's inputs.
    modbus: BTreeMap<(String, String), String>,
}

/// The keys of a site that sources read at start.
const SITE_KEYS: &str =
    "require_signature, signing_key_env, platforms, mine_code, upload_password_env, timezone";

fn site_fingerprint(s: &crate::config::SiteConfig) -> String {
    format!(
        "{:?}",
        (
            s.require_signature,
            &s.signing_key_env,
            &s.platforms,
            &s.mine_code,
            &s.upload_password_env,
            &s.timezone
        )
    )
}

impl Running {
    pub fn of(loaded: &LoadedConfig) -> Running {
        // Spelled out, without `..`: a new section must be placed here (applied on reload,
        // or listed as needing a restart).
        let Config {
            include: _,
            gateway,
            mqtt,
            store,
            outbox,
            api,
            ingest,
            mine_files,
            video,
            cluster,
            indicators,
            targets,
            alarms,
            tokens,
            mappings,
            inventory,
        } = &loaded.config;
        let sections = vec![
            ("[gateway]", format!("{gateway:?}")),
            ("[mqtt]", format!("{mqtt:?}")),
            ("[store]", format!("{store:?}")),
            ("[outbox]", format!("{outbox:?}")),
            ("[api]", format!("{api:?}")),
            ("[ingest]", format!("{ingest:?}")),
            ("[mine_files]", format!("{mine_files:?}")),
            ("[video]", format!("{video:?}")),
            ("[cluster]", format!("{cluster:?}")),
            ("[indicators]", format!("{indicators:?}")),
            ("[[targets]]", format!("{targets:?}")),
            ("[alarms]", format!("{alarms:?}")),
            ("[[tokens]]", format!("{tokens:?}")),
            ("[[mappings]]", format!("{mappings:?}")),
        ];
        let sites = inventory
            .sites
            .iter()
            .map(|s| (s.id.clone(), site_fingerprint(s)))
            .collect();
        let modbus = inventory
            .devices
            .iter()
            .filter(|d| d.protocol == Protocol::Modbus || d.modbus.is_some())
            .map(|d| {
                let plan = format!("{:?}", (d.protocol, &d.modbus, d.interval_s));
                ((d.site.clone(), d.id.clone()), plan)
            })
            .collect();
        Running {
            main_file: loaded.files.first().cloned().unwrap_or_default(),
            sections,
            sites,
            modbus,
        }
    }
}

/// A reload read and checked, for the core task to apply.
pub struct Prepared {
    pub loaded: LoadedConfig,
    pub needs_restart: Vec<String>,
    running: Running,
}

fn problem(e: ConfigError) -> ReloadProblem {
    ReloadProblem {
        file: e.file.display().to_string(),
        key: e.key,
        message: e.message,
    }
}

/// Read and validate the files again (blocking), and compare them with what runs.
pub fn prepare(running: &Running) -> Result<Prepared, Vec<ReloadProblem>> {
    let loaded = crate::config::load(&running.main_file)
        .map_err(|errs| errs.into_iter().map(problem).collect::<Vec<_>>())?;
    let new = Running::of(&loaded);
    let mut problems = Vec::new();
    let inv = &loaded.config.inventory;
    for (i, s) in inv.sites.iter().enumerate() {
        let was = running.sites.get(&s.id).cloned().unwrap_or_else(|| {
            site_fingerprint(&crate::config::SiteConfig {
                id: String::new(),
                name: String::new(),
                kind: s.kind,
                status: Default::default(),
                alarms: None,
                require_signature: false,
                signing_key_env: None,
                platforms: Vec::new(),
                mine_code: None,
                upload_password_env: None,
                timezone: None,
            })
        });
        if new.sites[&s.id] != was {
            let (file, key) = loaded.locate("sites", loaded.origins.sites[i], &s.id);
            problems.push(ConfigError {
                file,
                key,
                message: format!(
                    "a site's {SITE_KEYS} are read by the sources at start: this change needs a restart (nothing was reloaded)"
                ),
            });
        }
    }
    for (i, d) in inv.devices.iter().enumerate() {
        let key = (d.site.clone(), d.id.clone());
        if new.modbus.get(&key) != running.modbus.get(&key) {
            let (file, at) = loaded.locate("devices", loaded.origins.devices[i], &d.id);
            problems.push(ConfigError {
                file,
                key: format!("{at}.modbus"),
                message: "Modbus polling plans are built at start: adding, changing or removing a Modbus device needs a restart (nothing was reloaded)".into(),
            });
        }
    }
    for (site, id) in running
        .modbus
        .keys()
        .filter(|k| !new.modbus.contains_key(*k))
    {
        problems.push(ConfigError {
            file: running.main_file.clone(),
            key: format!("devices (id {id:?}, site {site:?})"),
            message: "this Modbus device is no longer in the files: Modbus polling plans are built at start, so removing one needs a restart (nothing was reloaded)".into(),
        });
    }
    if !problems.is_empty() {
        return Err(problems.into_iter().map(problem).collect());
    }
    let needs_restart = running
        .sections
        .iter()
        .zip(&new.sections)
        .filter(|(a, b)| a.1 != b.1)
        .map(|(a, _)| {
            format!(
                "{} differs from the running configuration: not applied until a restart",
                a.0
            )
        })
        .collect();
    Ok(Prepared {
        loaded,
        needs_restart,
        running: new,
    })
}

/// A reload on its way: prepared off the core task, then applied by it.
pub type Pending = (Prepared, String, oneshot::Sender<ReloadOutcome>);

/// Starts reloads for the core task: reads the files on a blocking thread and hands what
/// validated back to the core task on `apply`.
#[derive(Clone)]
pub struct Reloader {
    running: Arc<Mutex<Running>>,
    apply: mpsc::Sender<Pending>,
}

impl Reloader {
    pub fn new(running: Running) -> (Reloader, mpsc::Receiver<Pending>) {
        let (apply, rx) = mpsc::channel(4);
        let r = Reloader {
            running: Arc::new(Mutex::new(running)),
            apply,
        };
        (r, rx)
    }

    /// Read and check the files; what validates goes to the core task, problems straight
    /// back to the caller.
    pub fn start(&self, via: String, reply: oneshot::Sender<ReloadOutcome>) {
        let (running, apply) = (self.running.clone(), self.apply.clone());
        tokio::spawn(async move {
            let prepared = tokio::task::spawn_blocking(move || {
                let r = running.lock().unwrap_or_else(|p| p.into_inner()).clone();
                prepare(&r)
            })
            .await;
            match prepared {
                Ok(Ok(p)) => {
                    let _ = apply.send((p, via, reply)).await;
                }
                Ok(Err(problems)) => {
                    let _ = reply.send(Err(problems));
                }
                Err(e) => {
                    let _ = reply.send(Err(vec![ReloadProblem {
                        file: String::new(),
                        key: String::new(),
                        message: format!("the reload task failed: {e}"),
                    }]));
                }
            }
        });
    }

    /// A reload was applied: what runs now is compared against next time (the sections
    /// that need a restart stay as they were started).
    pub fn applied(&self, p: &Prepared) {
        let mut r = self.running.lock().unwrap_or_else(|p| p.into_inner());
        r.sites = p.running.sites.clone();
        r.modbus = p.running.modbus.clone();
    }
}

/// The answer to a reload the core applied at `at_ms`.
pub fn report(p: &Prepared, at_ms: i64, inventory: crate::core::InventoryTally) -> ReloadReport {
    ReloadReport {
        at: crate::model::rfc3339_ms(at_ms),
        at_ms,
        files: p
            .loaded
            .files
            .iter()
            .map(|f| f.display().to_string())
            .collect(),
        inventory,
        needs_restart: p.needs_restart.clone(),
    }
}

/// Log a reload's outcome (the API's caller sees it too; SIGHUP has only the log).
pub fn log(via: &str, outcome: &ReloadOutcome) {
    match outcome {
        Ok(r) => {
            tracing::info!(via, at = %r.at, inventory = ?r.inventory, "configuration reloaded: inventory applied");
            for n in &r.needs_restart {
                tracing::warn!(via, "reload: {n}");
            }
        }
        Err(problems) => {
            for p in problems {
                tracing::error!(via, file = %p.file, key = %p.key, "reload refused: {}", p.message);
            }
        }
    }
}

/// The reloader for the core task, and (on Unix) the task that reloads on SIGHUP.
pub fn spawn(
    running: Running,
    shared: &crate::api::Shared,
    shutdown: &tokio::sync::broadcast::Sender<()>,
    tasks: &mut Vec<tokio::task::JoinHandle<()>>,
) -> (Reloader, mpsc::Receiver<Pending>) {
    #[cfg(unix)]
    tasks.push(tokio::spawn(on_sighup(
        shared.commands.clone(),
        shutdown.subscribe(),
    )));
    #[cfg(not(unix))]
    let _ = (shared, shutdown, tasks);
    Reloader::new(running)
}

/// Reload on SIGHUP until shutdown.
#[cfg(unix)]
pub async fn on_sighup(
    commands: mpsc::Sender<crate::api::Command>,
    mut shutdown: tokio::sync::broadcast::Receiver<()>,
) {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut hup) = signal(SignalKind::hangup()) else {
        tracing::warn!("cannot listen for SIGHUP: reload through POST /api/v1/config/reload");
        return;
    };
    loop {
        tokio::select! {
            got = hup.recv() => {
                if got.is_none() {
                    return;
                }
                tracing::info!("SIGHUP: reloading the configuration files");
                let (tx, rx) = oneshot::channel();
                let cmd = crate::api::Command::Reload { via: "sighup".into(), reply: tx };
                if commands.send(cmd).await.is_err() {
                    return;
                }
                // The core task logs the outcome.
                let _ = rx.await;
            }
            _ = shutdown.recv() => return,
        }
    }
}
