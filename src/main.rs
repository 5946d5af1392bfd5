use clap::{Parser, Subcommand};
use safegate::config;
use std::path::PathBuf;
use std::process::ExitCode;

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
    CheckConfig { file: PathBuf },
    /// The demo: embedded broker, a simulated park and mine, and the API.
    Demo(safegate::runtime::demo::DemoArgs),
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::CheckConfig { file } => match config::load(&file) {
            Ok(loaded) => {
                print!("{}", config::summary(&loaded.config));
                println!("configuration OK: {}", file.display());
                ExitCode::SUCCESS
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
                let gw = safegate::runtime::start(loaded).await?;
                wait_for_signal().await;
                tracing::info!("shutting down");
                gw.stop().await;
                Ok(())
            })
        }
        Cmd::Demo(args) => {
            init_logging();
            run_async(safegate::runtime::demo::run(args))
        }
    }
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
    match rt.block_on(f) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
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
