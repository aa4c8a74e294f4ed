//! `recognizer-server`: starts the HTTP recognition service.
//!
//! `recognizer-server --model ggml-base.bin` starts with the embedded defaults;
//! `--config config.json` reads the original server's configuration file (see docs/server.md, "config.json").
//! SIGTERM or Ctrl-C stops taking connections, finishes the requests in flight and exits.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Mutex;

use clap::Parser;
use recognizer_server::{serve_all, wyoming_address, AppState, Config};
use tracing_subscriber::EnvFilter;

/// The command line.
#[derive(Debug, Parser)]
#[command(
    name = "recognizer-server",
    version,
    about = "HTTP speech recognition on whisper.cpp"
)]
struct Args {
    /// The configuration file (JSON); every key has a default except the model.
    #[arg(long, value_name = "PATH")]
    config: Option<PathBuf>,
    /// The ggml model file, or a known model's name such as `base.en` (fetched into the model
    /// cache when missing); overrides recognition.model_path.
    #[arg(long, value_name = "PATH|NAME")]
    model: Option<PathBuf>,
    /// Address to listen on (overrides server.host).
    #[arg(long)]
    host: Option<String>,
    /// Port to listen on (overrides server.port; 0 picks a free one).
    #[arg(long)]
    port: Option<u16>,
    /// Also serve the Wyoming protocol (Home Assistant) on this TCP port (overrides
    /// wyoming.port; 10300 is the usual one).
    #[arg(long, value_name = "PORT")]
    wyoming_port: Option<u16>,
    /// The address of the Wyoming server (overrides wyoming.host; default: the HTTP host).
    #[arg(long, value_name = "HOST")]
    wyoming_host: Option<String>,
}

fn load_config(args: &Args) -> Result<Config, String> {
    let mut config = match &args.config {
        Some(path) => Config::from_file(path).map_err(|e| e.to_string())?,
        None => Config::default(),
    };
    if let Some(model) = &args.model {
        config.recognition.model_path = Some(model.clone());
    }
    if let Some(host) = &args.host {
        config.server.host = host.clone();
    }
    if let Some(port) = args.port {
        config.server.port = port;
    }
    if let Some(port) = args.wyoming_port {
        config.wyoming.port = Some(port);
    }
    if let Some(host) = &args.wyoming_host {
        config.wyoming.host = Some(host.clone());
    }
    config.validate().map_err(|e| e.to_string())?;
    Ok(config)
}

/// Logs go to `logging.file` (appended) or stderr, at `logging.level` (`RUST_LOG` overrides).
/// The `log` records of the library (the recognizer's messages) are captured too, and so are
/// whisper.cpp's and ggml's own messages (target `whisper_cpp`), at `warn` and above unless
/// `logging.level` is `debug` or `trace`: their information lines (the model's shape at load,
/// ten lines of speech detection per request) would otherwise fill the log.
fn init_logging(config: &Config) -> Result<(), String> {
    let level = &config.logging.level;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| match level.as_str() {
        "debug" | "trace" => EnvFilter::new(level),
        _ => EnvFilter::new(format!("{level},whisper_cpp=warn")),
    });
    whisper_steady::install_logging_hooks();
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match &config.logging.file {
        Some(path) => {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| format!("cannot open the log file {}: {e}", path.display()))?;
            builder
                .with_ansi(false)
                .with_writer(Mutex::new(file))
                .init();
        }
        None => builder.with_writer(std::io::stderr).init(),
    }
    Ok(())
}

/// Registers the SIGTERM and SIGINT handlers now (not when the future is first polled: a signal
/// that arrived between "listening" and the first poll would otherwise kill the process with
/// the default action) and returns the future that completes on either.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    let signals = {
        use tokio::signal::unix::{signal, SignalKind};
        (
            signal(SignalKind::terminate()).ok(),
            signal(SignalKind::interrupt()).ok(),
        )
    };
    async move {
        #[cfg(unix)]
        {
            let (mut term, mut int) = signals;
            let term = async {
                match term.as_mut() {
                    Some(s) => drop(s.recv().await),
                    None => std::future::pending::<()>().await,
                }
            };
            let int = async {
                match int.as_mut() {
                    Some(s) => drop(s.recv().await),
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                _ = term => {},
                _ = int => {},
            }
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("shutting down: finishing the requests in flight");
    }
}

/// SIGHUP reads the API keys again (`auth.keys_file`, `RECOGNIZER_API_KEYS`; a file that
/// cannot be used keeps the keys in force, and the log says why), and loads again every loaded
/// model whose file was replaced on disk, beside the one serving, which takes over when ready
/// (requests in flight finish on the old one; one that fails to load keeps the old).
fn reload_on_sighup(state: std::sync::Arc<AppState>) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let Ok(mut hangups) = signal(SignalKind::hangup()) else {
            return;
        };
        tokio::spawn(async move {
            while hangups.recv().await.is_some() {
                match state.reload_keys() {
                    Ok(n) => tracing::info!("SIGHUP: {n} API keys in force"),
                    Err(e) => tracing::error!("SIGHUP: the keys in force stay: {e}"),
                }
                let (swapped, failed) = state.models.reload_changed().await;
                for name in swapped {
                    tracing::info!(
                        "SIGHUP: the model {name} was replaced on disk: now serving the new file"
                    );
                }
                for (name, why) in failed {
                    tracing::error!("SIGHUP: the model {name} keeps its old file: {why}");
                }
            }
        });
    }
    #[cfg(not(unix))]
    let _ = state;
}

fn main() -> ExitCode {
    // Started as a recognizer's worker process: serve it, and nothing else.
    whisper_steady::recognizer::run_worker_if_child();
    let args = Args::parse();
    let config = match load_config(&args) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = init_logging(&config) {
        eprintln!("error: {e}");
        return ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        let address = (config.server.host.clone(), config.server.port);
        let wyoming = wyoming_address(&config).map_err(|e| e.to_string())?;
        let state = AppState::new(config).map_err(|e| e.to_string())?;
        let listener = tokio::net::TcpListener::bind(address.clone())
            .await
            .map_err(|e| format!("cannot listen on {}:{}: {e}", address.0, address.1))?;
        let local = listener.local_addr().map_err(|e| e.to_string())?;
        let default = state.models.default_model();
        tracing::info!(
            "listening on http://{local} (default model {}: backend {}, {} workers)",
            default.name,
            state
                .recognizer()
                .map_or("none loaded", |r| r.main_backend().as_str()),
            state.recognizer().map_or(0, |r| r.config().workers)
        );
        let wyoming = match wyoming {
            Some((host, port)) => {
                let listener = tokio::net::TcpListener::bind((host.as_str(), port))
                    .await
                    .map_err(|e| format!("cannot listen for Wyoming on {host}:{port}: {e}"))?;
                let wyoming_local = listener.local_addr().map_err(|e| e.to_string())?;
                tracing::info!("wyoming listening on {wyoming_local}");
                Some((listener, wyoming_local))
            }
            None => None,
        };
        let shutdown = shutdown_signal();
        reload_on_sighup(std::sync::Arc::clone(&state));
        // The tests and scripts read these lines to find the ports.
        println!("listening on http://{local}");
        if let Some((_, wyoming_local)) = &wyoming {
            println!("wyoming listening on {wyoming_local}");
        }
        serve_all(listener, wyoming.map(|(l, _)| l), state, shutdown)
            .await
            .map_err(|e| e.to_string())
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
