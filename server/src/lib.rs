//! recognizer-server: the user's HTTP recognition service on whisper-steady's
//! [`Recognizer`](whisper_steady::recognizer::Recognizer).
//!
//! Endpoints: `GET /health`, `POST /api/upload`, `POST /api/recognize` (the original API),
//! `POST /v1/audio/transcriptions`, `POST /v1/audio/translations`, `GET /v1/models` (OpenAI-
//! compatible), `GET /v1/live` (WebSocket), `GET /` (the web page) and `GET /metrics`
//! (Prometheus: one middleware, [`metrics`], counts every route; errors all go through one
//! type that renders either API's error shape). The
//! binary (`src/main.rs`) reads the configuration, sets up logging and calls [`serve`]; the
//! tests call the same functions on a loopback port.

#![deny(missing_docs)]

mod admin;
mod auth;
mod body;
pub mod config;
mod connection;
mod error;
mod health;
mod live;
pub mod metrics;
pub mod models;
mod openai;
mod original;
mod pipeline;
mod realtime;
mod routes;
mod state;
pub mod storage;
mod turns;
mod wyoming;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

pub use config::Config;
pub(crate) use routes::endpoint_label;
pub use routes::router;
pub use state::{AppState, StartError};

/// Serves until `shutdown` completes, then finishes the requests in flight (HTTP and
/// recognition) and returns. Every connection is held to the limits of `server` in the
/// configuration: `max_connections`, `header_timeout_seconds`, `idle_timeout_seconds`,
/// `body_timeout_seconds` and `min_body_bytes_per_second`.
pub async fn serve(
    listener: TcpListener,
    state: Arc<AppState>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_all(listener, None, state, shutdown).await
}

/// Where the Wyoming server is to listen (`wyoming.port`, `wyoming.host` or `server.host`),
/// `None` when it is off. Wyoming has no authentication: with API keys configured, an address
/// other than loopback is refused unless `wyoming.allow_unauthenticated` is set.
pub fn wyoming_address(config: &Config) -> Result<Option<(String, u16)>, StartError> {
    let Some(port) = config.wyoming.port else {
        return Ok(None);
    };
    let host = config
        .wyoming
        .host
        .clone()
        .unwrap_or_else(|| config.server.host.clone());
    let has_keys = !config.auth.keys.is_empty()
        || !config.auth.admin_keys.is_empty()
        || config.auth.keys_file.is_some()
        || std::env::var_os(auth::KEYS_VARIABLE).is_some();
    let loopback = host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if has_keys && !loopback && !config.wyoming.allow_unauthenticated {
        return Err(StartError(format!(
            "the Wyoming server would listen on {host}:{port} without authentication while the \
             HTTP API needs keys: listen on 127.0.0.1 (wyoming.host), or set \
             wyoming.allow_unauthenticated if the network is trusted"
        )));
    }
    Ok(Some((host, port)))
}

/// [`serve`], and the Wyoming server on `wyoming` when given (`wyoming` in the configuration;
/// bind it at [`wyoming_address`]). Both stop when `shutdown` completes.
pub async fn serve_all(
    listener: TcpListener,
    wyoming: Option<TcpListener>,
    state: Arc<AppState>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let wyoming =
        wyoming.map(|listener| tokio::spawn(wyoming::serve(listener, Arc::clone(&state), stop_rx)));
    let shutdown = async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    };
    let app = router(Arc::clone(&state));
    // Expired uploads go every minute, or every retention period if that is shorter (but not
    // more often than ten times a second).
    let sweeper = {
        let storage = state.storage.clone();
        let period = storage
            .usage()
            .retention
            .clamp(Duration::from_millis(100), Duration::from_secs(60));
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(period);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                let storage = storage.clone();
                let _ = tokio::task::spawn_blocking(move || storage.sweep()).await;
            }
        })
    };
    // Models idle for `model_cache.idle_unload_seconds` are unloaded.
    let unloader = state.models.idle_check_period().map(|period| {
        let state = Arc::clone(&state);
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(period);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                state.models.unload_idle().await;
            }
        })
    });
    let limits = connection::Limits::of(&state.config.server);
    connection::accept_loop(listener, app, limits, shutdown).await;
    sweeper.abort();
    if let Some(unloader) = unloader {
        unloader.abort();
    }
    if let Some(wyoming) = wyoming {
        let _ = wyoming.await;
    }
    let models = Arc::clone(&state);
    // Joins the workers after the last queued request; blocking, so off the runtime.
    let _ = tokio::task::spawn_blocking(move || models.models.shutdown()).await;
    Ok(())
}
