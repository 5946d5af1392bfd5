//! Start the gateway: sources → core → sinks and API, with one broadcast shutdown.

use crate::api::{self, Shared};
use crate::cluster::ClusterStatus;
use crate::config::{Config, LoadedConfig};
use crate::core::alarms::rules::AlarmRules;
use crate::core::alarms::view::AlarmView;
use crate::core::resume::ResumeState;
use crate::core::{Core, DeviceState, Inventory, Outputs, Receipt, SourceEvent};
use crate::model::now_ms;
use crate::sinks::alarm_board::BoardQueue;
use crate::sinks::outbox::Outbox;
use crate::sinks::record::IndicatorPoint;
use crate::sinks::route::Router;
use crate::sinks::store::{self, StoreQueue};
use crate::sinks::Record;
use crate::sources::{self, SourceContext, SourceStatus};
use crate::state::{Checkpoint, Journal, JournalMsg, StateError};
use crate::telemetry::{Clock, Metrics, OutboxStatus, StoreStatus};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinHandle;

/// Channel sizes. Policies: source → core blocks (back-pressure to the broker); core →
/// journal blocks (transitions are never dropped); core → outbox commit blocks (readings are
/// never dropped; indicator snapshots and audit copies from other tasks are dropped and
/// counted when it is full, see `sinks::store`).
const SOURCE_QUEUE: usize = 16_384;
const JOURNAL_QUEUE: usize = 1_024;
const CORE_BATCH: usize = 1_024;
const PERSIST_EVERY: Duration = Duration::from_secs(5);
/// Requests from the API to the core task (acknowledgements). Blocks the API caller when full.
const COMMAND_QUEUE: usize = 256;
/// The gateway's own client must subscribe to the embedded broker within this time.
const EMBEDDED_SUBSCRIBE_WITHIN: Duration = Duration::from_secs(30);

pub use crate::api::Command;

pub use super::error::StartError;

/// A running gateway.
pub struct Gateway {
    pub api_addr: SocketAddr,
    /// Where the GB/T 28181 endpoint listens, UDP and TCP (`None` without `[video]`).
    pub video_addr: Option<SocketAddr>,
    pub shared: Arc<Shared>,
    shutdown: broadcast::Sender<()>,
    tasks: Vec<JoinHandle<()>>,
    journal_thread: Option<std::thread::JoinHandle<()>>,
}

impl Gateway {
    /// Stop every task and wait for them; the journal is flushed last.
    pub async fn stop(mut self) {
        let _ = self.shutdown.send(());
        for t in self.tasks.drain(..) {
            let _ = t.await;
        }
        if let Some(j) = self.journal_thread.take() {
            let _ = tokio::task::spawn_blocking(move || j.join()).await;
        }
    }

    pub fn shutdown_signal(&self) -> broadcast::Receiver<()> {
        self.shutdown.subscribe()
    }
}

/// Install the rustls crypto provider once (rumqttc's TLS uses the process default).
fn init_tls() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

pub async fn start(loaded: LoadedConfig) -> Result<Gateway, StartError> {
    start_with(loaded, Clock::system()).await
}

/// The embedded broker, with `[mqtt] embedded = true`: the sources then connect to it.
async fn embedded_broker(
    cfg: &mut Config,
    metrics: &Arc<Metrics>,
    audit: &Arc<crate::sinks::audit::AuditLog>,
) -> Result<Option<super::broker::Embedded>, StartError> {
    if !cfg.mqtt.embedded {
        return Ok(None);
    }
    let e = super::broker::start_embedded(cfg, metrics.clone(), audit.clone()).await?;
    cfg.mqtt.url = format!("mqtt://{}", e.internal);
    Ok(Some(e))
}

/// Start on `clock`: what decides deadlines, offline transitions and indicator windows, and
/// stamps what the sources receive (a manual clock in tests).
pub async fn start_with(loaded: LoadedConfig, clock: Clock) -> Result<Gateway, StartError> {
    init_tls();
    let running = super::reload::Running::of(&loaded);
    let mut cfg: Config = loaded.config;
    cluster_mqtt(&mut cfg);
    let api_tls = check_api(&cfg).await?;
    let (mut journal, outbox) = open_files(&cfg)?;
    let audit = Arc::new(
        crate::sinks::audit::AuditLog::open(&cfg.gateway.data_dir)
            .map_err(|e| StartError::Audit(cfg.gateway.data_dir.clone(), e))?,
    );
    let files = super::config_view::config_files(&loaded.files);
    let retain_closed = Duration::from_secs(cfg.alarms.retain_closed_s);
    let (mut core, closed_alarms) =
        restore_core(&cfg, &mut journal, retain_closed, clock.now_ms())?;
    let view = super::config_view::config_view(&cfg, &files, &crate::config::summary(&cfg));
    let metrics = Arc::new(Metrics::new());
    let embedded = embedded_broker(&mut cfg, &metrics, &audit).await?;
    let mut source_status = SourceStatus::default();
    let saved = saved_files(&cfg, &journal)?;
    let sources = super::registry::sources(&cfg, &metrics, &clock, &mut source_status, &saved)?;
    // Release the configuration's copy of the inventory: at 100k devices it matters.
    cfg.inventory = Default::default();

    let mqtt_status = source_status.mqtt.clone();
    let store_status = Arc::new(StoreStatus::new(cfg.store.is_some()));
    let outbox_status = Arc::new(OutboxStatus::default());
    let evaluator = Arc::new(crate::report::evaluate::Evaluator {
        journal: Arc::new(crate::state::ReadPool::new(&cfg.gateway.data_dir)),
        inventory: crate::report::evaluate::live(core.inventory.clone()),
        settings: cfg.indicators.clone(),
        targets: cfg.targets.clone(),
    });
    let (cmd_tx, cmd_rx) = mpsc::channel(COMMAND_QUEUE);
    let (outlet, events) = crate::api::events::channel();
    let (src_tx, src_rx) = mpsc::channel::<SourceEvent>(SOURCE_QUEUE);
    let shared = Arc::new(Shared {
        events,
        config_view: view,
        ack_limits: (cfg.mqtt.max_id_bytes, cfg.mqtt.max_note_bytes),
        audit: audit.clone(),
        commands: cmd_tx,
        evaluator,
        read_model: arc_swap::ArcSwap::from_pointee(core.snapshot(None)),
        core: Mutex::new(core),
        metrics: metrics.clone(),
        mqtt: mqtt_status.clone(),
        store: store_status.clone(),
        outbox_status: outbox_status.clone(),
        outbox: outbox.clone(),
        modbus: source_status.modbus.clone(),
        ingest: source_status.http.clone(),
        mines: source_status.mines.clone(),
        clock: clock.clone(),
        overview: Default::default(),
        cluster: cluster_status(&cfg, &journal),
        // Cluster mode: the sources' channel feeds the relay.
        into_stream: cfg.cluster.as_ref().map(|_| src_tx.clone()),
    });
    let (shutdown, _) = broadcast::channel(4);
    let mut tasks = Vec::new();
    let cluster_metrics = spawn_cluster(&cfg, &shared, &clock, &shutdown, &mut tasks);

    // True while the outbox holds commits (its budget, the disk floor): Modbus polling pauses.
    let (hold_tx, hold_rx) = tokio::sync::watch::channel(false);
    let store_queue = spawn_store(
        &cfg,
        outbox.as_ref(),
        &shared,
        hold_tx,
        &shutdown,
        &mut tasks,
    )?;

    audit_start(&audit, &store_queue, &files, &cfg);

    let (journal_tx, journal_rx) = mpsc::channel(JOURNAL_QUEUE);
    let journal_thread = std::thread::Builder::new()
        .name("journal".into())
        .spawn(move || journal.serve(journal_rx))
        .ok();

    let core_rx = core_input(
        &cfg,
        &shared,
        cluster_metrics,
        &store_queue,
        (src_rx, source_status.files.clone()),
        &shutdown,
        &mut tasks,
    );
    let cx = SourceContext {
        events: src_tx,
        metrics: metrics.clone(),
        hold: hold_rx,
        shutdown: shutdown.clone(),
        clock: clock.clone(),
        owns: site_owner(&shared),
    };
    spawn_sources(sources, cx, &mut tasks);

    // Platforms are let in only once the gateway reads what they publish: the broker
    // acknowledges a QoS 1 message whether anyone is subscribed or not.
    if let Some(e) = embedded {
        let addr = e
            .open_when_subscribed(&mqtt_status, EMBEDDED_SUBSCRIBE_WITHIN)
            .await?;
        tracing::info!(listen = %addr, "embedded MQTT broker accepting platforms");
    }

    let board = spawn_board(
        &cfg,
        &shared,
        retain_closed,
        closed_alarms,
        &shutdown,
        &mut tasks,
    )?;

    spawn_cadence(&shared, &store_queue, &shutdown, &mut tasks);
    let indicator_every =
        Duration::from_secs(cfg.store.as_ref().map_or(60, |s| s.indicator_interval_s));
    let (reloader, pending) = super::reload::spawn(running, &shared, &shutdown, &mut tasks);
    tasks.push(tokio::spawn(core_task(
        shared.clone(),
        core_rx,
        (cmd_rx, reloader, pending),
        (board, outlet),
        store_queue,
        journal_tx,
        indicator_every,
        shutdown.subscribe(),
    )));

    let api_addr = serve_api(&cfg, &shared, api_tls, &shutdown, &mut tasks).await?;
    tracing::info!(api = %api_addr, tls = cfg.api.tls_cert_file.is_some(), "API listening");

    Ok(Gateway {
        api_addr,
        video_addr: source_status.video,
        shared,
        shutdown,
        tasks,
        journal_thread,
    })
}

/// The audit log writes to the store too; its first entry is the configuration loaded.
fn audit_start(
    audit: &crate::sinks::audit::AuditLog,
    store: &Option<StoreQueue>,
    files: &impl serde::Serialize,
    cfg: &Config,
) {
    audit.set_store(store.clone());
    let detail = serde_json::json!({ "files": files, "tokens": cfg.tokens.len() });
    audit.record("config_loaded", "gateway", "local", 1, detail);
}

fn spawn_sources(
    sources: Vec<Box<dyn crate::sources::Source>>,
    cx: SourceContext,
    tasks: &mut Vec<JoinHandle<()>>,
) {
    for source in sources {
        tracing::debug!(source = source.name(), "starting source");
        tasks.extend(source.spawn(&cx));
    }
}

/// What the core applies: the sources' events; in cluster mode the readings stream (the
/// sources feed the stream through the relay, and `files` turns its files into events).
fn core_input(
    cfg: &Config,
    shared: &Arc<Shared>,
    metrics: Option<Arc<crate::cluster::ClusterMetrics>>,
    store: &Option<StoreQueue>,
    (sources, files): (
        mpsc::Receiver<SourceEvent>,
        Option<crate::core::event::Files>,
    ),
    shutdown: &broadcast::Sender<()>,
    tasks: &mut Vec<JoinHandle<()>>,
) -> mpsc::Receiver<SourceEvent> {
    let (Some(settings), Some(status), Some(metrics)) = (&cfg.cluster, &shared.cluster, metrics)
    else {
        return sources;
    };
    let (core_tx, core_rx) = mpsc::channel::<SourceEvent>(SOURCE_QUEUE);
    let path = super::cluster::DataPath {
        settings: settings.clone(),
        status: status.clone(),
        metrics,
        shared: shared.clone(),
        store: store.clone(),
        clock: shared.clock.clone(),
        files,
        data_dir: cfg.gateway.data_dir.clone(),
    };
    tasks.push(tokio::spawn(path.run(sources, core_tx, shutdown.clone())));
    core_rx
}

/// With a store: closed indicator windows written as they close.
fn spawn_cadence(
    shared: &Arc<Shared>,
    store: &Option<StoreQueue>,
    shutdown: &broadcast::Sender<()>,
    tasks: &mut Vec<JoinHandle<()>>,
) {
    if let Some(q) = store {
        let (ev, q, rx) = (shared.evaluator.clone(), q.clone(), shutdown.subscribe());
        let writes = writes_region(shared);
        let clock = shared.clock.clone();
        tasks.push(tokio::spawn(super::cadence::run(ev, q, clock, writes, rx)));
    }
}

/// Cluster mode: each instance keeps its own broker session (the broker holds what it
/// was given while it is away) in the shared subscription of the group.
fn cluster_mqtt(cfg: &mut Config) {
    if let Some(c) = &cfg.cluster {
        cfg.mqtt.shared = true;
        cfg.mqtt.client_id = format!("{}-{}", cfg.mqtt.client_id, c.instance_id);
    }
}

/// Cluster mode: whether this instance owns a site's partition now (its Modbus units, its
/// transitions and alarm records are this instance's to poll and store).
fn site_owner(shared: &Shared) -> Option<crate::sources::Owns> {
    let status = shared.cluster.clone()?;
    let partitions = status.view().partitions;
    let owns = move |site: &str| status.owns(crate::core::cluster::partition_of(site, partitions));
    Some(Arc::new(owns))
}

/// Whether this instance writes the deployment-wide records (indicator snapshots and
/// windows): alone, always; in cluster mode, while it owns partition 0.
fn writes_region(shared: &Shared) -> super::cadence::Writes {
    match &shared.cluster {
        Some(status) => {
            let status = status.clone();
            Arc::new(move || status.owns(0))
        }
        None => Arc::new(|| true),
    }
}

/// Cluster mode: the lease loop (docs/scaling.md). Nothing without `[cluster]`.
fn spawn_cluster(
    cfg: &Config,
    shared: &Arc<Shared>,
    clock: &Clock,
    shutdown: &broadcast::Sender<()>,
    tasks: &mut Vec<tokio::task::JoinHandle<()>>,
) -> Option<Arc<crate::cluster::ClusterMetrics>> {
    let (Some(settings), Some(status)) = (&cfg.cluster, &shared.cluster) else {
        return None;
    };
    let metrics = crate::cluster::ClusterMetrics::register(&shared.metrics);
    let task =
        crate::cluster::ClusterTask::new(settings, status.clone(), metrics.clone(), clock.clone());
    tracing::info!(
        instance = %settings.instance_id,
        partitions = settings.partitions,
        nats = ?settings.nats_urls,
        "cluster mode: sharing partitions through NATS leases"
    );
    tasks.push(tokio::spawn(task.run(shutdown.subscribe())));
    Some(metrics)
}

/// Refuse an open API off loopback, and read the API's certificate: a bad one stops the
/// start before anything runs.
async fn check_api(
    cfg: &Config,
) -> Result<Option<axum_server::tls_rustls::RustlsConfig>, StartError> {
    if cfg.tokens.is_empty() {
        if !cfg.api.listen.ip().is_loopback() {
            return Err(StartError::OpenApi(cfg.api.listen));
        }
        tracing::warn!(listen = %cfg.api.listen, "no [[tokens]]: the API is open to anyone on this machine (loopback only)");
    }
    match (&cfg.api.tls_cert_file, &cfg.api.tls_key_file) {
        (Some(c), Some(k)) => axum_server::tls_rustls::RustlsConfig::from_pem_file(c, k)
            .await
            .map(Some)
            .map_err(|e| StartError::ApiTls(format!("{} / {}", c.display(), k.display()), e)),
        _ => Ok(None),
    }
}

/// The core with what the journal knew: liveness, open alarms, the registry brought up to
/// the inventory; and the alarms closed within `retain_closed` (and a week) for the board.
fn restore_core(
    cfg: &Config,
    journal: &mut Journal,
    retain_closed: Duration,
    now: i64,
) -> Result<(Core, ClosedAlarms), StartError> {
    // Cluster mode: links are the stream's, changed only by what it carries.
    let closed = match cfg.cluster {
        None => journal.close_open_links()?,
        Some(_) => 0,
    };
    if closed > 0 {
        tracing::warn!(
            links = closed,
            "the last run did not stop cleanly; its links are closed at its last recorded activity"
        );
    }
    let mut core = Core::new(
        Inventory::from_config(&cfg.inventory),
        (cfg.gateway.max_future_skew_s * 1000) as i64,
        cfg.gateway.recent_rejections,
    );
    core.set_recent_values(cfg.gateway.recent_values);
    restore(&mut core, journal)?;
    core.set_alarm_settings(cfg.alarms.clone());
    core.set_alarm_rules(AlarmRules::from_config(
        &cfg.alarms,
        &cfg.inventory,
        &core.inventory,
    ));
    declare_saved(&mut core, cfg, &saved_files(cfg, journal)?)?;
    let open_alarms = journal.load_open_alarms(&core.inventory)?;
    if !open_alarms.is_empty() {
        tracing::info!(
            alarms = open_alarms.len(),
            "open alarms restored from the journal"
        );
    }
    core.alarms.restore(journal.next_alarm_id()?, open_alarms);
    let closed_alarms =
        journal.closed_alarms_since(now - retain_closed.as_millis() as i64 - 7 * 86_400_000)?;
    // Cluster mode: every instance must date the configured units alike, whenever it
    // started; they count from the start of any window (docs/scaling.md).
    let registered_at = if cfg.cluster.is_some() { 0 } else { now };
    if cfg.cluster.is_some() {
        resume(&mut core, journal);
        core.track_checkpoints();
    }
    let changed = journal.sync_registry(&core.inventory, registered_at)?;
    if changed > 0 {
        tracing::info!(
            units = changed,
            "inventory changes recorded in the registry history"
        );
    }
    Ok((core, closed_alarms))
}

/// With a store: the group commit into the outbox and the forwarder from it. Returns the
/// queue the core hands records to.
fn spawn_store(
    cfg: &Config,
    outbox: Option<&SharedOutbox>,
    shared: &Shared,
    hold_tx: tokio::sync::watch::Sender<bool>,
    shutdown: &broadcast::Sender<()>,
    tasks: &mut Vec<JoinHandle<()>>,
) -> Result<Option<StoreQueue>, StartError> {
    let (metrics, store_status, outbox_status) =
        (&shared.metrics, &shared.store, &shared.outbox_status);
    Ok(match (&cfg.store, outbox) {
        (Some(s), Some(outbox)) => {
            let client = store::StoreClient::new(s)?;
            let (queue, rx) = StoreQueue::new(s.queue_capacity, CORE_BATCH, metrics.clone());
            let committed = Arc::new(tokio::sync::Notify::new());
            let freed = Arc::new(tokio::sync::Notify::new());
            outbox_status.enable(cfg.outbox.max_bytes);
            {
                let o = outbox.lock().unwrap_or_else(|p| p.into_inner());
                let b = o.backlog()?;
                crate::sinks::commit::publish_backlog(outbox_status, metrics, &b);
                if b.batches > 0 {
                    tracing::info!(points = b.points, bytes = b.bytes, file = %o.path().display(),
                        "the outbox holds points from before the start; replaying them to the store first");
                }
            }
            let fresh = Arc::new(crate::sinks::fresh::Fresh::new(
                crate::sinks::fresh::FRESH_BYTES,
            ));
            let committer = crate::sinks::commit::Committer {
                outbox: outbox.clone(),
                fresh: fresh.clone(),
                rx,
                max_points: s.batch_size,
                max_group_bytes: (cfg.outbox.wal_max_bytes / 4) as usize,
                interval: Duration::from_millis(cfg.outbox.commit_interval_ms),
                committed: committed.clone(),
                freed: freed.clone(),
                hold: hold_tx,
                metrics: metrics.clone(),
                status: outbox_status.clone(),
            };
            tasks.push(tokio::spawn(committer.run(shutdown.subscribe())));
            let forwarder = crate::sinks::forward::Forwarder {
                outbox: outbox.clone(),
                fresh,
                client,
                max_points: s.batch_size as u64,
                url: s.url.clone(),
                committed,
                freed,
                metrics: metrics.clone(),
                store: store_status.clone(),
                status: outbox_status.clone(),
                in_flight: s.writes_in_flight,
            };
            tasks.push(tokio::spawn(forwarder.run(shutdown.subscribe())));
            tracing::info!(url = %s.url, bucket = %s.bucket, outbox = %cfg.gateway.data_dir.join("outbox.db").display(),
                max_bytes = cfg.outbox.max_bytes, "writing to the store through the outbox");
            Some(queue)
        }
        _ => {
            tracing::warn!(
                "no [store] configured: readings are not stored, only served by the API"
            );
            None
        }
    })
}

/// The alarm board: its own MQTT connection, publishing alarm states retained; what is open
/// is published again at once, since states may have changed while the gateway was down.
fn spawn_board(
    cfg: &Config,
    shared: &Shared,
    retain_closed: Duration,
    closed_alarms: ClosedAlarms,
    shutdown: &broadcast::Sender<()>,
    tasks: &mut Vec<JoinHandle<()>>,
) -> Result<BoardQueue, StartError> {
    let metrics = &shared.metrics;
    let board = BoardQueue::new(&cfg.mqtt.topic_prefix);
    {
        let mut opts = sources::mqtt::options(&cfg.mqtt)?;
        let id = format!("{}-alarms", cfg.mqtt.client_id);
        opts.set_client_id(id);
        let run = board.clone().run(
            opts,
            retain_closed,
            closed_alarms,
            (cfg.mqtt.reconnect_min_ms, cfg.mqtt.reconnect_max_ms),
            metrics.clone(),
            shutdown.subscribe(),
        );
        tasks.push(tokio::spawn(run));
        // Republish what is open: states may have changed while the gateway was down.
        let core = shared.core();
        let now = shared.clock.now_ms();
        for r in core.alarms.open_alarms() {
            board.publish(&AlarmView::of(r, &core.inventory, now, false));
        }
        metrics.alarms_active.set(core.alarms.active_count() as i64);
    }

    Ok(board)
}

/// Serve the API on `api.listen` (HTTPS with `tls`) until shutdown; returns its address.
async fn serve_api(
    cfg: &Config,
    shared: &Arc<Shared>,
    api_tls: Option<axum_server::tls_rustls::RustlsConfig>,
    shutdown: &broadcast::Sender<()>,
    tasks: &mut Vec<JoinHandle<()>>,
) -> Result<SocketAddr, StartError> {
    let (metrics, audit) = (&shared.metrics, &shared.audit);
    let listener = tokio::net::TcpListener::bind(cfg.api.listen)
        .await
        .map_err(|e| StartError::ApiBind(cfg.api.listen, e))?;
    let api_addr = listener
        .local_addr()
        .map_err(|e| StartError::ApiBind(cfg.api.listen, e))?;
    let rate = (cfg.api.rate_limit_per_s, cfg.api.rate_limit_burst);
    let auth =
        api::auth::Auth::new(&cfg.tokens, rate, metrics.clone(), audit.clone()).map(Arc::new);
    let app = api::router(
        shared.clone(),
        auth,
        cfg.api.max_body_bytes,
        &cfg.api.cors_origins,
    );
    let mut rx = shutdown.subscribe();
    match api_tls {
        None => tasks.push(tokio::spawn(async move {
            use axum::serve::ListenerExt;
            let app = app.into_make_service_with_connect_info::<SocketAddr>();
            // No Nagle: a kept-alive client's next answer must not wait for the ACK of the
            // last (40 ms of delayed ACK per push request otherwise).
            let listener = listener.tap_io(|tcp| {
                let _ = tcp.set_nodelay(true);
            });
            let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
                let _ = rx.recv().await;
            });
            if let Err(e) = serve.await {
                tracing::error!(error = %e, "API server stopped");
            }
        })),
        Some(tls) => {
            let std_listener = listener
                .into_std()
                .map_err(|e| StartError::ApiBind(cfg.api.listen, e))?;
            let handle = axum_server::Handle::new();
            let stop = handle.clone();
            tasks.push(tokio::spawn(async move {
                let _ = rx.recv().await;
                stop.graceful_shutdown(Some(Duration::from_secs(2)));
            }));
            tasks.push(tokio::spawn(async move {
                let serve = axum_server::from_tcp_rustls(std_listener, tls)
                    .map(|a| a.acceptor(axum_server::accept::NoDelayAcceptor::new()))
                    .handle(handle)
                    .serve(app.into_make_service_with_connect_info::<SocketAddr>());
                if let Err(e) = serve.await {
                    tracing::error!(error = %e, "API server (TLS) stopped");
                }
            }));
        }
    }
    Ok(api_addr)
}

/// Alarms closed recently, (site, id, closed at), for the board to keep retained a while.
type ClosedAlarms = Vec<(String, u64, i64)>;

/// The outbox, shared by the commit, the forwarder and the API.
type SharedOutbox = Arc<Mutex<Outbox>>;

/// The journal and (with a store) the outbox, checked, with their disk guards. Opened before
/// anything connects: a damaged file stops the start here, with its path.
fn open_files(cfg: &Config) -> Result<(Journal, Option<SharedOutbox>), StartError> {
    use crate::state::space::{Reserve, Watermark};
    let (dir, o) = (&cfg.gateway.data_dir, &cfg.outbox);
    let mut journal = Journal::open_with(dir, cfg.gateway.on_damaged_file, now_ms())?;
    if cfg.cluster.is_some() {
        if let Err(why) = resumable(&journal) {
            drop(journal);
            rebuild_from_stream(dir, &why);
            journal = Journal::open_with(dir, cfg.gateway.on_damaged_file, now_ms())?;
        }
        journal.commit_at_checkpoints();
    }
    // One reserve on the disk of data_dir, for whichever file meets a full disk first.
    let reserve = Arc::new(Reserve::open(dir, o.reserve_bytes));
    journal.guard_disk(reserve.clone(), o.wal_max_bytes)?;
    if cfg.store.is_none() {
        return Ok((journal, None));
    }
    let mut outbox = Outbox::open(dir, o.max_bytes, cfg.gateway.on_damaged_file, now_ms())?;
    let floor = Watermark::new(o.min_free_bytes, o.min_free_percent);
    outbox.guard_disk(floor, reserve, o.wal_max_bytes)?;
    Ok((journal, Some(Arc::new(Mutex::new(outbox)))))
}

/// Cluster mode: this boot's status, at the checkpoint it resumes from if any.
fn cluster_status(cfg: &Config, journal: &Journal) -> Option<Arc<ClusterStatus>> {
    let status = Arc::new(ClusterStatus::new(cfg.cluster.as_ref()?));
    if let Ok(Some(c)) = journal.checkpoint() {
        status.resume_at(c.sequence, c.stream_ms, c.stream_created_ns);
    }
    Some(status)
}

/// Cluster mode: the journal's last checkpoint and the core's state kept with it, when this
/// instance can resume from them; else why not.
fn resumable(journal: &Journal) -> Result<(crate::state::Resumed, ResumeState), String> {
    let c = (journal.checkpoint().map_err(|e| e.to_string())?)
        .ok_or_else(|| "no checkpoint in it".to_string())?;
    let state = ResumeState::from_bytes(&c.state).map_err(|e| e.to_string())?;
    Ok((c, state))
}

/// Cluster mode: this instance's journal is derived from the readings stream; without a
/// checkpoint to resume from it is rebuilt from the stream's start, and what it held is
/// set aside (the outbox, which holds writes not yet stored, stays).
fn rebuild_from_stream(dir: &std::path::Path, why: &str) {
    let mut removed = false;
    for name in ["state.db", "state.db-wal", "state.db-shm"] {
        removed |= std::fs::remove_file(dir.join(name)).is_ok();
    }
    if removed {
        tracing::info!(dir = %dir.display(), why, "cluster mode: state.db is rebuilt from the readings stream");
    }
}

/// Cluster mode: the mines' state at the checkpoint this instance resumes from (none
/// without one).
fn saved_files(
    cfg: &Config,
    journal: &Journal,
) -> Result<Vec<crate::core::event::FileSave>, StateError> {
    match (&cfg.cluster, cfg.mine_files.enabled) {
        (Some(_), true) => journal.saved_files(),
        _ => Ok(Vec::new()),
    }
}

/// Cluster mode: the points the mines' CDDYs in the checkpoint declared join the inventory
/// again, before the journal's alarms and the core's state are put back (their outputs
/// are in the journal already).
fn declare_saved(
    core: &mut Core,
    cfg: &Config,
    saved: &[crate::core::event::FileSave],
) -> Result<(), StartError> {
    if saved.is_empty() {
        return Ok(());
    }
    let declared = sources::mine_files::saved_declarations(&cfg.inventory, &cfg.mine_files, saved)?;
    let mut out = Outputs::default();
    for sd in declared {
        core.apply(SourceEvent::Devices(Box::new(sd)), &mut out);
    }
    Ok(())
}

/// Cluster mode: put back the core's state kept with the journal's checkpoint.
fn resume(core: &mut Core, journal: &Journal) {
    let Ok(Some(c)) = journal.checkpoint() else {
        return;
    };
    let saved = journal.saved_devices().unwrap_or_default();
    let entries: Vec<_> = (saved.iter())
        .filter_map(|b| crate::core::resume::DeviceEntry::from_bytes(b).ok())
        .collect();
    if entries.len() < saved.len() {
        tracing::warn!(unreadable = saved.len() - entries.len(), "cluster mode: some devices' entries in the checkpoint cannot be read; those devices start as never seen until their next reading");
    }
    if let Ok(state) = ResumeState::from_bytes(&c.state) {
        let devices = core.resume(&state, &entries);
        tracing::info!(
            sequence = c.sequence,
            devices,
            "cluster mode: resumed from the checkpoint; the stream is applied from the message after it"
        );
    }
}

/// Put back what the journal knew: state, last seen, fault, per device still registered.
fn restore(core: &mut Core, journal: &Journal) -> Result<(), StateError> {
    let mut restored = 0usize;
    for snap in journal.load_latest()? {
        let Ok(d) = core.inventory.lookup(&snap.site, &snap.device) else {
            continue; // removed from the inventory since
        };
        let (state, since, last_seen) = match snap.last_transition {
            Some((true, at)) => (
                DeviceState::Online,
                at,
                Some(snap.last_seen_ms.map_or(at, |s| s.max(at))),
            ),
            Some((false, at)) => (DeviceState::Offline, at, snap.last_seen_ms),
            None => continue,
        };
        core.liveness
            .restore(d, state, Some(since), last_seen, snap.fault);
        restored += 1;
    }
    if restored > 0 {
        tracing::info!(devices = restored, "liveness restored from the journal");
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn core_task(
    shared: Arc<Shared>,
    mut rx: mpsc::Receiver<SourceEvent>,
    (mut commands, reloader, mut pending): (
        mpsc::Receiver<Command>,
        super::reload::Reloader,
        mpsc::Receiver<super::reload::Pending>,
    ),
    (board, outlet): (BoardQueue, crate::api::events::Outlet),
    store: Option<StoreQueue>,
    journal: mpsc::Sender<JournalMsg>,
    indicator_every: Duration,
    mut shutdown: broadcast::Receiver<()>,
) {
    let metrics = shared.metrics.clone();
    let mut ctx = Dispatch {
        out: Outputs::default(),
        router: Router::new(
            shared.audit.clone(),
            store,
            board,
            metrics.clone(),
            shared.clock.clone(),
        ),
        clock: shared.clock.clone(),
        read: super::publish::Publisher::new(outlet),
        reloader,
    };
    let mut buf = Vec::with_capacity(CORE_BATCH);
    let mut persist = tokio::time::interval(PERSIST_EVERY);
    let mut indicators = tokio::time::interval(indicator_every);
    // Cluster mode: time comes from the stream (its ticks), not from this clock.
    let wall_ticks = shared.cluster.is_none();
    if let Some(owns) = site_owner(&shared) {
        ctx.router.set_owner(owns);
    }
    let region = writes_region(&shared);
    let mut saved_seen: Vec<Option<i64>> = {
        let core = shared.core();
        (0..core.inventory.devices.len() as u32)
            .map(|d| core.liveness.last_seen(d))
            .collect()
    };
    loop {
        let next = shared.core().next_deadline();
        let now = ctx.clock.now_ms();
        let wake = match next {
            Some(t) => t.min(now + 86_400_000),
            None => now + 3_600_000,
        };
        let publish_at = ctx.read.due();
        tokio::select! {
            n = rx.recv_many(&mut buf, CORE_BATCH) => {
                if n == 0 { break }
                let mut seen = (&mut saved_seen, &journal);
                if ctx.take(&shared, &mut buf, &mut seen).await.is_err() {
                    break;
                }
            }
            _ = ctx.clock.sleep_until(wake), if wall_ticks => {
                let msgs = ctx.apply(&shared, &mut buf, Some(ctx.clock.now_ms()));
                if ctx.router.deliver(&journal, msgs).await.is_err() {
                    break;
                }
            }
            _ = tokio::time::sleep_until(publish_at.unwrap_or_else(tokio::time::Instant::now)), if publish_at.is_some() => {
                ctx.read.publish(&mut shared.core(), &shared.read_model);
            }
            Some(cmd) = commands.recv() => {
                let (msgs, reply) = ctx.command(&shared, cmd);
                let sent = ctx.router.deliver(&journal, msgs).await;
                reply();
                if sent.is_err() {
                    break;
                }
            }
            Some((p, via, reply)) = pending.recv() => {
                let (msgs, outcome) = ctx.reload(&shared, &p);
                let sent = ctx.router.deliver(&journal, msgs).await;
                if let Ok(r) = &outcome {
                    ctx.reloader.applied(&p);
                    shared.audit.record("config_reloaded", &via, "local", 1, serde_json::json!(r));
                }
                super::reload::log(&via, &outcome);
                let _ = reply.send(outcome);
                if sent.is_err() {
                    break;
                }
            }
            _ = persist.tick() => {
                update_device_gauges(&shared.core(), &metrics);
                let rows = last_seen_changes(&shared, &mut saved_seen);
                if !rows.is_empty() && journal.send(JournalMsg::LastSeen(rows)).await.is_err() {
                    break;
                }
                let lat = ctx.router.take_latency(&shared.core().inventory);
                if !lat.is_empty() && journal.send(JournalMsg::Latency(lat)).await.is_err() {
                    break;
                }
            }
            _ = indicators.tick() => {
                if let (Some(q), true) = (ctx.router.store(), region()) {
                    q.push_all(indicator_records(&shared.core(), ctx.clock.now_ms()));
                }
            }
            _ = shutdown.recv() => {
                // Sources stop on the same signal; take what they still hand over (their
                // last link-down events among it) until they have all let go.
                let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
                while let Ok(n) = tokio::time::timeout_at(deadline, rx.recv_many(&mut buf, CORE_BATCH)).await {
                    if n == 0 {
                        break;
                    }
                    let msgs = ctx.apply(&shared, &mut buf, None);
                    if ctx.router.deliver(&journal, msgs).await.is_err() {
                        break;
                    }
                }
                break;
            }
        }
    }
    let rows = last_seen_changes(&shared, &mut saved_seen);
    if !rows.is_empty() {
        let _ = journal.send(JournalMsg::LastSeen(rows)).await;
    }
    let lat = ctx.router.take_latency(&shared.core().inventory);
    if !lat.is_empty() {
        let _ = journal.send(JournalMsg::Latency(lat)).await;
    }
}

/// The core task's state: the core's outputs of a round, where they go, and the read model.
struct Dispatch {
    out: Outputs,
    router: Router,
    /// The runtime's clock: acknowledgements are dated by it.
    clock: Clock,
    /// Publishes the read model the API answers from.
    read: super::publish::Publisher,
    /// Reads the files for a reload off this task.
    reloader: super::reload::Reloader,
}

impl Dispatch {
    /// Route a round's outputs, noting first what the live feed tells the console.
    fn route(&mut self, core: &Core) -> Vec<JournalMsg> {
        self.read.note(core, &self.out, self.clock.now_ms());
        self.router.route(core, &mut self.out)
    }

    /// Apply a batch of events and persist what they did; in cluster mode, at each stream
    /// position among them, what came before it and then a checkpoint.
    async fn take(
        &mut self,
        shared: &Shared,
        buf: &mut Vec<SourceEvent>,
        (saved_seen, journal): &mut (&mut Vec<Option<i64>>, &mpsc::Sender<JournalMsg>),
    ) -> Result<(), ()> {
        while let Some(i) = (buf.iter()).position(|e| matches!(e, SourceEvent::Position { .. })) {
            let rest = buf.split_off(i + 1);
            let Some(SourceEvent::Position {
                sequence,
                now_ms,
                saved,
            }) = buf.pop()
            else {
                unreachable!("found above");
            };
            let msgs = self.apply(shared, buf, None);
            self.router.deliver(journal, msgs).await.map_err(|_| ())?;
            self.checkpoint(shared, journal, saved_seen, (sequence, now_ms, saved))
                .await?;
            *buf = rest;
        }
        let msgs = self.apply(shared, buf, None);
        self.router.deliver(journal, msgs).await.map_err(|_| ())
    }

    /// Cluster mode: everything up to stream `sequence` is applied and on its way to the
    /// journal; the last seen times, latencies and the core's own state join it, and the
    /// journal commits them all as the checkpoint at `sequence` (docs/scaling.md).
    async fn checkpoint(
        &mut self,
        shared: &Shared,
        journal: &mpsc::Sender<JournalMsg>,
        saved_seen: &mut Vec<Option<i64>>,
        (sequence, stream_ms, files): (u64, i64, Vec<crate::core::event::FileSave>),
    ) -> Result<(), ()> {
        let rows = last_seen_changes(shared, saved_seen);
        let lat = self.router.take_latency(&shared.core().inventory);
        let took = std::time::Instant::now();
        let (state, devices) = shared.core().resume_state(false);
        let state = state.to_bytes();
        let devices = (devices.into_iter())
            .map(|e| {
                let entry = e.to_bytes();
                (e.site, e.device, entry)
            })
            .collect();
        let status = shared.cluster.clone();
        let stream_created_ns = status.as_ref().map_or(0, |s| s.stream_created_ns());
        if let Some(s) = &status {
            s.set_checkpoint_cost(took.elapsed());
        }
        let done = Receipt::new(move |committed| {
            if let (true, Some(s)) = (committed, &status) {
                s.set_checkpoint(sequence, stream_ms);
            }
        });
        let msgs = [
            (!rows.is_empty()).then_some(JournalMsg::LastSeen(rows)),
            (!lat.is_empty()).then_some(JournalMsg::Latency(lat)),
            Some(JournalMsg::Checkpoint(Box::new(Checkpoint {
                sequence,
                stream_ms,
                stream_created_ns,
                state,
                devices,
                files,
                done: Some(done),
            }))),
        ];
        for m in msgs.into_iter().flatten() {
            journal.send(m).await.map_err(|_| ())?;
        }
        Ok(())
    }

    /// Apply a batch of source events (or, with `tick`, advance the clock) under one lock
    /// and route what came out; returns what the journal must persist.
    fn apply(
        &mut self,
        shared: &Shared,
        buf: &mut Vec<SourceEvent>,
        tick: Option<i64>,
    ) -> Vec<JournalMsg> {
        let mut core = shared.core();
        for ev in buf.drain(..) {
            core.apply(ev, &mut self.out);
        }
        if let Some(now) = tick {
            core.tick(now, &mut self.out);
        }
        let msgs = self.route(&core);
        self.read.changed(&mut core, &shared.read_model);
        publish_inventory(&core, shared);
        msgs
    }

    /// Apply a reload's inventory now, between batches; returns what to persist (the
    /// registry rows at this time) and the answer.
    fn reload(
        &mut self,
        shared: &Shared,
        p: &super::reload::Prepared,
    ) -> (Vec<JournalMsg>, crate::api::ReloadOutcome) {
        let mut core = shared.core();
        let now = self.clock.now_ms();
        let res = core.reload_inventory(&p.loaded.config.inventory, now, &mut self.out);
        let msgs = self.route(&core);
        self.read.publish(&mut core, &shared.read_model);
        publish_inventory(&core, shared);
        let file = p.loaded.files.first().map(|f| f.display().to_string());
        let outcome = res
            .map(|tally| super::reload::report(p, now, tally))
            .map_err(|conflicts| {
                let problem = |message| crate::api::ReloadProblem {
                    file: file.clone().unwrap_or_default(),
                    key: "devices".into(),
                    message,
                };
                conflicts.into_iter().map(problem).collect()
            });
        (msgs, outcome)
    }

    /// Run an API command under the core lock; returns what to persist and how to answer
    /// (called after the journal has the change, so an answered ack is on its way to disk).
    fn command(
        &mut self,
        shared: &Shared,
        cmd: Command,
    ) -> (Vec<JournalMsg>, Box<dyn FnOnce() + Send>) {
        let mut core = shared.core();
        match cmd {
            // Read off this task; applied by `reload` when it validated.
            Command::Reload { via, reply } => {
                self.reloader.start(via, reply);
                (Vec::new(), Box::new(|| {}))
            }
            Command::Ack {
                id,
                site,
                by,
                note,
                via,
                reply,
            } => {
                let res = core.acknowledge(
                    id,
                    site.as_deref(),
                    &by,
                    &note,
                    &via,
                    self.clock.now_ms(),
                    &mut self.out,
                );
                let msgs = self.route(&core);
                self.read.changed(&mut core, &shared.read_model);
                (
                    msgs,
                    Box::new(move || {
                        let _ = reply.send(res);
                    }),
                )
            }
        }
    }
}

/// The indicator evaluator reads the inventory the core has (units joined or left).
fn publish_inventory(core: &Core, shared: &Shared) {
    if !Arc::ptr_eq(&shared.evaluator.inventory.load(), &core.inventory) {
        shared.evaluator.inventory.store(core.inventory.clone());
    }
}

fn update_device_gauges(core: &Core, metrics: &Metrics) {
    let c = core.counts(None);
    for (state, n) in [
        ("online", c.online),
        ("offline", c.offline),
        ("never", c.never),
    ] {
        metrics
            .devices
            .get_or_create(&crate::telemetry::metrics_state(state))
            .set(n as i64);
    }
}

fn last_seen_changes(
    shared: &Shared,
    saved: &mut Vec<Option<i64>>,
) -> Vec<(String, String, i64, bool)> {
    let core = shared.core();
    let inv = &core.inventory;
    // Devices that joined since: nothing saved yet.
    saved.resize(inv.devices.len(), None);
    let mut rows = Vec::new();
    for (i, slot) in saved.iter_mut().enumerate() {
        let seen = core.liveness.last_seen(i as u32);
        if seen != *slot {
            if let Some(t) = seen {
                let d = &inv.devices[i];
                rows.push((
                    inv.sites[d.site as usize].id.to_string(),
                    d.id.to_string(),
                    t,
                    core.liveness.is_faulty(i as u32),
                ));
            }
            *slot = seen;
        }
    }
    rows
}

/// Snapshot online rates for each site and the region.
pub fn indicator_records(core: &Core, now: i64) -> Vec<Record> {
    let mut out = Vec::with_capacity(core.inventory.sites.len() + 1);
    let mut push = |scope: &'static str, id: Arc<str>, rate: crate::core::stats::Rate| {
        out.push(Record::Indicator(Box::new(IndicatorPoint {
            indicator: "online_rate",
            qualifier: None,
            scope,
            scope_id: id,
            window: Arc::from("now"),
            at_ms: now,
            value: rate.value,
            numerator: rate.numerator as f64,
            denominator: rate.denominator as f64,
            target: None,
            completion: None,
        })))
    };
    push(
        "region",
        Arc::from("region"),
        core.counts(None).online_rate(),
    );
    for (i, s) in core.inventory.sites.iter().enumerate() {
        if s.removed {
            continue;
        }
        push(
            "site",
            s.id.clone(),
            core.counts(Some(i as u32)).online_rate(),
        );
    }
    out
}
