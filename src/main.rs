use clap::{Parser, Subcommand};
use safegate::config;
use std::path::PathBuf;
use std::process::ExitCode;

#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Return freed memory to the system within a second, from a background thread, so a large
/// inventory's parse does not stay resident. (jemalloc is unprefixed: it reads `malloc_conf`.)
#[allow(non_upper_case_globals)]
#[export_name = "malloc_conf"]
pub static malloc_conf: &[u8; 60] =
    b"background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0\0";

/// safegate: measures the safety-monitoring indicators of chemical parks and mines from live
/// telemetry (MQTT in, InfluxDB 2 out, HTTP API for operators and evaluators).
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the gateway.
    Run {
        #[arg(long)]
        config: PathBuf,
    },
    /// Check a configuration and print a summary; lists every error and exits non-zero.
    ///
    /// With `--sample FILE --mapping NAME`: also print what that JSON message becomes through
    /// the mapping (one line per reading or refusal); exits 1 if any record is refused.
    CheckConfig {
        file: PathBuf,
        /// A JSON message to run through a mapping.
        #[arg(long, requires = "mapping")]
        sample: Option<PathBuf>,
        /// The `[[mappings]]` name to run the sample through.
        #[arg(long, requires = "sample")]
        mapping: Option<String>,
        /// The MQTT topic the sample arrived on (for `{topic:N}`).
        #[arg(long)]
        topic: Option<String>,
        /// The site of the HTTP URL (for `{site}`).
        #[arg(long)]
        site: Option<String>,
    },
    /// Print the self-evaluation report for a window from the persisted state (no running
    /// gateway needed).
    Report {
        #[arg(long)]
        config: PathBuf,
        /// RFC 3339 or epoch milliseconds.
        #[arg(long)]
        from: String,
        /// RFC 3339 or epoch milliseconds (default: now).
        #[arg(long)]
        to: Option<String>,
        /// json, csv or markdown.
        #[arg(long, default_value = "markdown")]
        format: String,
        /// List every reason behind a shortfall instead of folding the tail.
        #[arg(long)]
        all_reasons: bool,
    },
    /// The demo: embedded broker, a simulated park and mine, and the API.
    #[cfg(feature = "demo")]
    Demo(safegate::runtime::demo::DemoArgs),
    /// Print the external broker's ACL file, generated from the inventory: each platform may
    /// publish only under the sites that list it in `platforms`.
    BrokerAcl {
        #[arg(long)]
        config: PathBuf,
        /// Only `mosquitto` for now.
        #[arg(long, default_value = "mosquitto")]
        format: String,
        /// The gateway's MQTT username (or client-certificate CN).
        #[arg(long, default_value = "safegate")]
        gateway_user: String,
        /// Also write Mosquitto's password file here, with each identity's password from
        /// SAFEGATE_MQTT_PASSWORD_<ID> (the gateway's from mqtt.password_env).
        #[arg(long)]
        passwords_out: Option<PathBuf>,
    },
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| "info,rumqttd=warn,rumqttc=warn".into());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .init();
}

fn print_errors(errors: &[config::ConfigError]) {
    eprintln!("configuration has {} error(s):", errors.len());
    for e in errors {
        eprintln!("  - {e}");
    }
}

/// `check-config --sample`: run one JSON message through a mapping and print what it becomes;
/// 0 if every record maps, 1 if any is refused, 2 if it cannot be tried.
fn check_sample(
    c: &config::Config,
    sample: &std::path::Path,
    name: &str,
    topic: Option<&str>,
    site: Option<&str>,
) -> ExitCode {
    use safegate::sources::mapping::{sample::describe, Input, Limits, Mappings};
    let mappings = match Mappings::compile(&c.mappings) {
        Ok(m) => m,
        Err(_) => return ExitCode::from(2), // validated by load: not reached
    };
    let Some(m) = mappings.get(name) else {
        let names: Vec<&str> = c.mappings.iter().map(|m| m.name.as_str()).collect();
        eprintln!(
            "no mapping named {name:?} (the configuration has: {})",
            names.join(", ")
        );
        return ExitCode::from(2);
    };
    let payload = match std::fs::read(sample) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("cannot read {}: {e}", sample.display());
            return ExitCode::from(2);
        }
    };
    let limits = Limits {
        max_records: c.mqtt.max_batch_len,
        max_channels: c.mqtt.max_channels,
        max_id_bytes: c.mqtt.max_id_bytes,
        max_channel_name_bytes: c.mqtt.max_channel_name_bytes,
    };
    let origin = topic.map_or_else(
        || format!("POST /api/v1/ingest/{}/{name}", site.unwrap_or("{site}")),
        str::to_string,
    );
    let input = Input {
        payload: &payload,
        topic,
        site,
        origin: origin.into(),
        received_ms: safegate::model::now_ms(),
    };
    let mut out = Vec::new();
    m.apply(&input, &limits, &mut out);
    let mut refused = false;
    for ev in &out {
        refused |= matches!(ev, safegate::core::SourceEvent::Rejected(_));
        if let Some(line) = describe(ev) {
            println!("{line}");
        }
    }
    if refused {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::CheckConfig {
            file,
            sample,
            mapping,
            topic,
            site,
        } => match config::load(&file) {
            Ok(loaded) => {
                print!("{}", config::summary(&loaded.config));
                println!("configuration OK: {}", file.display());
                match (sample, mapping) {
                    (Some(sample), Some(name)) => check_sample(
                        &loaded.config,
                        &sample,
                        &name,
                        topic.as_deref(),
                        site.as_deref(),
                    ),
                    _ => ExitCode::SUCCESS,
                }
            }
            Err(errors) => {
                print_errors(&errors);
                ExitCode::from(2)
            }
        },
        Cmd::Run { config: file } => {
            init_logging();
            let loaded = match config::load(&file) {
                Ok(l) => l,
                Err(errors) => {
                    print_errors(&errors);
                    return ExitCode::from(2);
                }
            };
            run_async(async move {
                let gw = tokio::select! {
                    gw = safegate::runtime::start(loaded) => gw?,
                    _ = wait_for_signal() => return Ok(()),
                };
                wait_for_signal().await;
                stop_within_bound(gw).await;
                Ok(())
            })
        }
        Cmd::Report {
            config: file,
            from,
            to,
            format,
            all_reasons,
        } => match report(&file, &from, to.as_deref(), &format, all_reasons) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(2)
            }
        },
        #[cfg(feature = "demo")]
        Cmd::Demo(args) => {
            init_logging();
            run_async(safegate::runtime::demo::run(args))
        }
        Cmd::BrokerAcl {
            config: file,
            format,
            gateway_user,
            passwords_out,
        } => {
            if format != "mosquitto" {
                eprintln!("error: --format {format:?} is not supported (mosquitto)");
                return ExitCode::from(2);
            }
            match config::load(&file) {
                Ok(loaded) => {
                    if let Some(out) = &passwords_out {
                        let text = match config::broker_acl::mosquitto_passwords(
                            &loaded.config,
                            &gateway_user,
                        ) {
                            Ok(t) => t,
                            Err(missing) => {
                                eprintln!("error: passwords missing from the environment:");
                                for m in missing {
                                    eprintln!("  - {m}");
                                }
                                return ExitCode::from(2);
                            }
                        };
                        if let Err(e) = write_private(out, &text) {
                            eprintln!("error: cannot write {}: {e}", out.display());
                            return ExitCode::from(2);
                        }
                    }
                    print!(
                        "{}",
                        config::broker_acl::mosquitto(
                            &loaded.config,
                            &gateway_user,
                            &file.display().to_string()
                        )
                    );
                    ExitCode::SUCCESS
                }
                Err(errors) => {
                    print_errors(&errors);
                    ExitCode::from(2)
                }
            }
        }
    }
}

/// Write a file only its owner can read (a password file).
fn write_private(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(text.as_bytes())
}

fn run_async<F>(f: F) -> ExitCode
where
    F: std::future::Future<Output = Result<(), Box<dyn std::error::Error>>>,
{
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = match rt.block_on(f) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    };
    // A blocking task stuck on a dead disk must not hold the exit.
    rt.shutdown_timeout(std::time::Duration::from_secs(1));
    code
}

/// SIGTERM ends the process within this bound whatever the disk, store or broker state
/// (docs/durability.md): the commit grace is 3 s, the core's 2 s, the API's 2 s.
const STOP_BOUND: std::time::Duration = std::time::Duration::from_secs(10);

/// Stop in order, but never for longer than `STOP_BOUND`, and at once on a second signal.
/// Whatever was not committed by then was never acknowledged: the broker delivers it again.
async fn stop_within_bound(gw: safegate::runtime::Gateway) {
    tracing::info!(bound_s = STOP_BOUND.as_secs(), "shutting down");
    tokio::select! {
        _ = gw.stop() => tracing::info!("stopped"),
        _ = tokio::time::sleep(STOP_BOUND) => tracing::error!(bound_s = STOP_BOUND.as_secs(),
            "the orderly stop did not finish in time; exiting anyway (what was not committed was not acknowledged and is delivered again)"),
        _ = wait_for_signal() => tracing::warn!("a second signal: exiting now (what was not committed was not acknowledged)"),
    }
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

/// The inventory files' units and the points of each mine's kept CDDY (in cluster mode, the
/// CDDY in the journal's checkpoint): what the running gateway holds after a start.
fn report_inventory(cfg: &config::Config, now: i64) -> Result<safegate::core::Inventory, String> {
    use safegate::sources::mine_files;
    let mut inv = safegate::core::Inventory::from_config(&cfg.inventory);
    let (declared, problems) = if cfg.cluster.is_some() && cfg.mine_files.enabled {
        let journal = safegate::state::Journal::open_read(&cfg.gateway.data_dir);
        let saved = journal.and_then(|j| j.saved_files());
        let saved = saved.map_err(|e| e.to_string())?;
        let declared = mine_files::saved_declarations(&cfg.inventory, &cfg.mine_files, &saved);
        (declared.map_err(|e| e.to_string())?, Vec::new())
    } else {
        mine_files::kept_declarations(&cfg.inventory, &cfg.mine_files, &cfg.gateway.data_dir, now)
            .map_err(|e| e.to_string())?
    };
    for p in problems {
        eprintln!("warning: {p}");
    }
    for sd in &declared {
        safegate::core::live::apply_site_devices(&mut inv, sd, &[]);
    }
    Ok(inv)
}

fn report(
    file: &std::path::Path,
    from: &str,
    to: Option<&str>,
    format: &str,
    all_reasons: bool,
) -> Result<(), String> {
    use safegate::model::parse_time;
    use safegate::report::evaluate::Evaluator;
    use std::io::Write;
    let loaded = config::load(file).map_err(|errs| {
        errs.iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    })?;
    let now = safegate::telemetry::now_ms();
    let from = parse_time(from)
        .ok_or_else(|| format!("--from {from:?} is neither RFC 3339 nor epoch ms"))?;
    let to = match to {
        Some(t) => {
            parse_time(t).ok_or_else(|| format!("--to {t:?} is neither RFC 3339 nor epoch ms"))?
        }
        None => now,
    };
    if from >= to {
        return Err("--from must be before --to".into());
    }
    let cfg = loaded.config;
    let ev = Evaluator {
        journal: std::sync::Arc::new(safegate::state::ReadPool::new(&cfg.gateway.data_dir)),
        inventory: safegate::report::evaluate::live(std::sync::Arc::new(report_inventory(
            &cfg, now,
        )?)),
        settings: cfg.indicators.clone(),
        targets: cfg.targets.clone(),
    };
    let c = ev.compute(from, to, now).map_err(|e| e.to_string())?;
    let listing = if all_reasons {
        safegate::report::Listing::All
    } else {
        safegate::report::Listing::Folded
    };
    let r = safegate::report::build_with(&ev.inventory(), &c, &ev.targets, listing);
    let mut out = std::io::stdout().lock();
    let written = match format {
        "json" => serde_json::to_writer_pretty(&mut out, &r).map_err(|e| e.to_string()),
        "csv" => safegate::report::to_csv(&r)
            .map_err(|e| e.to_string())
            .and_then(|b| out.write_all(&b).map_err(|e| e.to_string())),
        "markdown" => out
            .write_all(safegate::report::to_markdown(&r).as_bytes())
            .map_err(|e| e.to_string()),
        other => return Err(format!("--format {other:?} is not json, csv or markdown")),
    };
    written
}
