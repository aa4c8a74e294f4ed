//! The server's models: one [`Recognizer`] per configured model (`recognition.models`, or the one
//! of `model_path`), each with its own lanes and states over the same GPUs and CPU, chosen per
//! request by name or alias. The default model is loaded at start and stays; another is loaded
//! by the first request for it, within `recognition.model_cache` (`max_loaded`, `max_bytes`):
//! a model that would not fit first unloads the least recently used idle one, and when none can
//! be unloaded the request is answered 503 with `Retry-After`. Loading and unloading happen one
//! at a time, off the async runtime; requests for a model being loaded wait up to their
//! deadline.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use whisper_steady::recognizer::{Recognizer, RecognizerConfig};

use crate::config::{DefaultParams, ModelCacheConfig};
use crate::error::ApiError;

/// One configured model.
pub struct Model {
    /// The name requests use.
    pub name: String,
    /// Its file.
    pub path: PathBuf,
    /// Its request defaults.
    pub default_params: DefaultParams,
    /// The size of its file, what it counts against `model_cache.max_bytes`.
    pub bytes: u64,
    /// Whether it knows languages besides English (from its file's header, read at start).
    pub multilingual: bool,
    /// The recognizer it is loaded with (rebuilt from this on every load).
    config: RecognizerConfig,
    /// Kept loaded whatever the budget says (the default model).
    pinned: bool,
    /// The recognizer while loaded.
    loaded: Mutex<Option<Recognizer>>,
    /// Requests and sessions using it now ([`Lease`]s); only a model with none is unloaded.
    in_flight: Arc<AtomicUsize>,
    /// When a lease on it was last taken or given back: idle time counts from the end of the
    /// last request, so a request longer than `idle_unload_seconds` does not unload the model
    /// the moment it ends.
    last_used: Arc<Mutex<Instant>>,
    /// Requests leased it so far.
    requests: AtomicU64,
    /// Times it was loaded (reloads included).
    loads: AtomicU64,
    /// How long its last load took.
    load_time: Mutex<Option<Duration>>,
    /// Its file's size and modification time when it was last loaded.
    loaded_file: Mutex<Option<FileStamp>>,
}

/// What tells a replaced model file from the one loaded: its size and modification time.
type FileStamp = (u64, Option<std::time::SystemTime>);

fn file_stamp(path: &std::path::Path) -> Option<FileStamp> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.len(), meta.modified().ok()))
}

impl Model {
    /// Whether it is loaded now.
    pub fn is_loaded(&self) -> bool {
        lock(&self.loaded).is_some()
    }

    /// How long its last load took, in seconds; `None` before its first load.
    pub fn load_seconds(&self) -> Option<f64> {
        lock(&self.load_time).map(|d| d.as_secs_f64())
    }
}

/// What a model's state is, for `/v1/models` and `/health`.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelStatus {
    /// Its name.
    pub name: String,
    /// Whether it is loaded.
    pub loaded: bool,
    /// Whether it is the default model.
    pub default: bool,
    /// The size of its file.
    pub bytes: u64,
    /// Requests so far.
    pub requests: u64,
    /// Times it was loaded (reloads included).
    pub loads: u64,
    /// Requests and sessions on it now.
    pub in_flight: usize,
    /// How long its last load took, in seconds.
    pub load_seconds: Option<f64>,
    /// Seconds since it was last used.
    pub idle_seconds: f64,
}

/// A model in use by one request or session: its recognizer, kept loaded until the lease is
/// dropped.
pub struct Lease {
    recognizer: Recognizer,
    in_flight: Arc<AtomicUsize>,
    last_used: Arc<Mutex<Instant>>,
    name: String,
    defaults: DefaultParams,
}

impl Lease {
    /// The model's request defaults.
    pub fn defaults(&self) -> &DefaultParams {
        &self.defaults
    }

    /// The recognizer.
    pub fn recognizer(&self) -> &Recognizer {
        &self.recognizer
    }

    /// The model's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        // Before the count goes down: an unload that sees no lease also sees this time.
        *lock(&self.last_used) = Instant::now();
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Why a request got no model.
#[derive(Debug, Clone, PartialEq)]
pub enum ModelError {
    /// The name is neither a model nor an alias (a client's mistake: 400).
    Unknown {
        /// What the request asked for.
        requested: String,
        /// The names it may use.
        known: Vec<String>,
    },
    /// Nothing could be unloaded to make room (503, try again later).
    NoRoom(String),
    /// The model did not load in time for the request (504).
    Timeout(String),
    /// The model could not be loaded (500).
    Load(String),
    /// Not done: the default model is never unloaded (409).
    Refused(String),
}

impl std::fmt::Display for ModelError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ModelError::Unknown { requested, known } => write!(
                f,
                "the model {requested:?} does not exist on this server; it has {} \
                 (GET /v1/models lists them)",
                known.join(", ")
            ),
            ModelError::NoRoom(why)
            | ModelError::Timeout(why)
            | ModelError::Load(why)
            | ModelError::Refused(why) => f.write_str(why),
        }
    }
}

impl From<ModelError> for ApiError {
    fn from(e: ModelError) -> Self {
        let status = match &e {
            ModelError::Unknown { .. } => StatusCode::BAD_REQUEST,
            ModelError::NoRoom(_) => StatusCode::SERVICE_UNAVAILABLE,
            ModelError::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
            ModelError::Load(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ModelError::Refused(_) => StatusCode::CONFLICT,
        };
        let mut error = ApiError::new(status, e.to_string());
        if matches!(e, ModelError::NoRoom(_)) {
            error.retry_after = Some(5);
        }
        error
    }
}

/// The configured models and the budget they are loaded within.
pub struct Models {
    models: Vec<Model>,
    default: usize,
    aliases: BTreeMap<String, usize>,
    max_loaded: usize,
    max_bytes: Option<u64>,
    idle_unload: Option<Duration>,
    /// One load or unload at a time.
    loading: tokio::sync::Mutex<()>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A model to be served: its name, file, recognizer settings and request defaults, and a
/// recognizer when it is already loaded.
pub struct ModelPlan {
    /// The name requests use.
    pub name: String,
    /// The model file.
    pub path: PathBuf,
    /// Its recognizer's settings.
    pub config: RecognizerConfig,
    /// Its request defaults.
    pub default_params: DefaultParams,
    /// Its recognizer, when the caller has made it.
    pub recognizer: Option<Recognizer>,
}

impl Models {
    /// The models of `plans`, the default one named `default` (loaded now when the plan has
    /// no recognizer), with `aliases` (alias → model name) and the budget.
    pub fn new(
        plans: Vec<ModelPlan>,
        default: &str,
        aliases: &BTreeMap<String, String>,
        budget: &ModelCacheConfig,
    ) -> Result<Models, String> {
        let (max_loaded, max_bytes) = (budget.max_loaded, budget.max_bytes);
        let index_of = |name: &str| plans.iter().position(|p| p.name == name);
        let default = index_of(default).ok_or_else(|| format!("no model named {default:?}"))?;
        let aliases = aliases
            .iter()
            .map(|(alias, target)| {
                index_of(target)
                    .map(|i| (alias.clone(), i))
                    .ok_or_else(|| format!("the alias {alias:?} names no model ({target:?})"))
            })
            .collect::<Result<_, _>>()?;
        let n = plans.len();
        let models = plans
            .into_iter()
            .enumerate()
            .map(|(i, plan)| Model {
                bytes: std::fs::metadata(&plan.path).map_or(0, |m| m.len()),
                // whisper's multilingual vocabularies have 51865 tokens or more (tiny.en 51864).
                multilingual: whisper_steady::model::validate_file(&plan.path)
                    .is_ok_and(|info| info.hparams.n_vocab >= 51865),
                name: plan.name,
                path: plan.path,
                default_params: plan.default_params,
                config: plan.config,
                pinned: i == default && budget.pin_default,
                loaded: Mutex::new(plan.recognizer),
                in_flight: Arc::new(AtomicUsize::new(0)),
                last_used: Arc::new(Mutex::new(Instant::now())),
                requests: AtomicU64::new(0),
                loads: AtomicU64::new(0),
                load_time: Mutex::new(None),
                loaded_file: Mutex::new(None),
            })
            .collect();
        let models = Models {
            models,
            default,
            aliases,
            max_loaded: max_loaded.unwrap_or(n).clamp(1, n.max(1)),
            max_bytes,
            idle_unload: budget.idle_unload_seconds.map(Duration::from_secs_f64),
            loading: tokio::sync::Mutex::new(()),
        };
        let first = &models.models[default];
        if lock(&first.loaded).is_none() {
            let started = Instant::now();
            let recognizer = Recognizer::new(first.config.clone()).map_err(|e| e.to_string())?;
            *lock(&first.load_time) = Some(started.elapsed());
            *lock(&first.loaded) = Some(recognizer);
        }
        *lock(&first.loaded_file) = file_stamp(&first.path);
        first.loads.fetch_add(1, Ordering::Relaxed);
        Ok(models)
    }

    /// The default model.
    pub fn default_model(&self) -> &Model {
        &self.models[self.default]
    }

    /// A loaded model's recognizer, the default model's when it is loaded (it is loaded at
    /// start, and stays unless `model_cache.pin_default` is false); `None` when no model is
    /// loaded.
    pub fn loaded_recognizer(&self) -> Option<Recognizer> {
        std::iter::once(self.default_model())
            .chain(&self.models)
            .find_map(|m| lock(&m.loaded).clone())
    }

    /// Every model, in name order.
    pub fn all(&self) -> &[Model] {
        &self.models
    }

    /// The aliases, with the model each names.
    pub fn aliases(&self) -> impl Iterator<Item = (&str, &Model)> {
        self.aliases
            .iter()
            .map(|(alias, &i)| (alias.as_str(), &self.models[i]))
    }

    /// The model a request names (`None` or empty: the default), or why none.
    pub fn find(&self, requested: Option<&str>) -> Result<&Model, ModelError> {
        let requested = requested.map(str::trim).filter(|r| !r.is_empty());
        let Some(name) = requested else {
            return Ok(self.default_model());
        };
        if let Some(model) = self.models.iter().find(|m| m.name == name) {
            return Ok(model);
        }
        if let Some(&i) = self.aliases.get(name) {
            return Ok(&self.models[i]);
        }
        let mut known: Vec<String> = self.models.iter().map(|m| m.name.clone()).collect();
        known.extend(self.aliases.keys().cloned());
        Err(ModelError::Unknown {
            requested: name.to_owned(),
            known,
        })
    }

    /// The model a request names, loaded (waiting for it at most `wait`), leased for the
    /// request's lifetime.
    pub async fn lease(
        &self,
        requested: Option<&str>,
        wait: Duration,
    ) -> Result<Lease, ModelError> {
        let model = self.find(requested)?;
        if let Some(lease) = Self::lease_loaded(model) {
            return Ok(lease);
        }
        let deadline = Instant::now() + wait;
        let _loading = tokio::time::timeout(wait, self.loading.lock())
            .await
            .map_err(|_| {
                ModelError::Timeout(format!(
                    "the model {} was not loaded within the request's deadline",
                    model.name
                ))
            })?;
        // Loaded while this request waited for its turn?
        if let Some(lease) = Self::lease_loaded(model) {
            return Ok(lease);
        }
        self.make_room(model).await?;
        let remaining = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(remaining, Self::load_into(model)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(e),
            // The load's future is dropped with this request (its recognizer, made off the
            // runtime, is dropped when done): the next request loads again.
            Err(_) => {
                return Err(ModelError::Timeout(format!(
                    "the model {} was not loaded within the request's deadline",
                    model.name
                )))
            }
        }
        Self::lease_loaded(model)
            .ok_or_else(|| ModelError::Load(format!("{} was unloaded", model.name)))
    }

    /// Makes a recognizer for `model` from its file, off the runtime, and puts it in place
    /// (a recognizer already there is replaced: requests on it finish on it). Called with the
    /// loading lock held.
    async fn load_into(model: &Model) -> Result<(), ModelError> {
        let config = model.config.clone();
        let name = model.name.clone();
        let stamp = file_stamp(&model.path);
        log::info!("loading the model {name} ({} MB)", model.bytes / 1_000_000);
        let started = Instant::now();
        let made = tokio::task::spawn_blocking(move || Recognizer::new(config)).await;
        let recognizer = match made {
            Ok(Ok(recognizer)) => recognizer,
            Ok(Err(e)) => {
                return Err(ModelError::Load(format!(
                    "the model {name} could not be loaded: {e}"
                )))
            }
            Err(_) => return Err(ModelError::Load(format!("loading the model {name} failed"))),
        };
        *lock(&model.load_time) = Some(started.elapsed());
        log::info!(
            "model {name} loaded in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        // The old recognizer, if any, goes when the last request on it does: requests on it
        // finish there, new ones get the new one.
        let old = lock(&model.loaded).replace(recognizer);
        *lock(&model.loaded_file) = stamp;
        model.loads.fetch_add(1, Ordering::Relaxed);
        if let Some(old) = old {
            // Dropping a clone is cheap; the last one joins its (idle) workers.
            tokio::task::spawn_blocking(move || drop(old));
        }
        Ok(())
    }

    /// Loads the model `name` (an admin's request), or, when it is loaded, loads it again from
    /// its file beside the one serving, which takes over when ready: requests in flight finish
    /// on the old one, none fails. Returns whether it was a reload.
    pub async fn load(&self, name: &str) -> Result<bool, ModelError> {
        let model = self.find(Some(name))?;
        let _loading = self.loading.lock().await;
        let reload = lock(&model.loaded).is_some();
        if !reload {
            self.make_room(model).await?;
        }
        Self::load_into(model).await?;
        Ok(reload)
    }

    /// Unloads the model `name` (an admin's request) once the requests on it are done; later
    /// ones load it again. The default model is never unloaded (409). Returns whether it was
    /// loaded.
    pub async fn unload_named(&self, name: &str) -> Result<bool, ModelError> {
        let model = self.find(Some(name))?;
        if model.pinned {
            return Err(ModelError::Refused(format!(
                "{} is the default model, which stays loaded (recognition.model_cache.pin_default)",
                model.name
            )));
        }
        let _loading = self.loading.lock().await;
        while lock(&model.loaded).is_some() {
            if Self::unload(model).await {
                return Ok(true);
            }
            // In use: wait for its requests.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(false)
    }

    /// Loads again, beside the serving one, every loaded model whose file changed on disk
    /// since it was loaded (SIGHUP): the new one takes over when ready, and requests in flight
    /// finish on the old. Returns the names swapped, and those that failed with why (they keep
    /// serving the old one).
    pub async fn reload_changed(&self) -> (Vec<String>, Vec<(String, String)>) {
        let (mut swapped, mut failed) = (Vec::new(), Vec::new());
        for model in &self.models {
            let _loading = self.loading.lock().await;
            let changed = lock(&model.loaded).is_some()
                && *lock(&model.loaded_file) != file_stamp(&model.path);
            if changed {
                match Self::load_into(model).await {
                    Ok(()) => swapped.push(model.name.clone()),
                    Err(e) => failed.push((model.name.clone(), e.to_string())),
                }
            }
        }
        (swapped, failed)
    }

    /// A lease on `model` if it is loaded. The count goes up under the same lock an unload
    /// takes, so an unload never takes a model a lease is being made on.
    fn lease_loaded(model: &Model) -> Option<Lease> {
        let loaded = lock(&model.loaded);
        let recognizer = loaded.as_ref()?.clone();
        model.in_flight.fetch_add(1, Ordering::AcqRel);
        drop(loaded);
        model.requests.fetch_add(1, Ordering::Relaxed);
        *lock(&model.last_used) = Instant::now();
        Some(Lease {
            recognizer,
            in_flight: Arc::clone(&model.in_flight),
            last_used: Arc::clone(&model.last_used),
            name: model.name.clone(),
            defaults: model.default_params.clone(),
        })
    }

    /// Unloads least recently used idle models until `model` fits the budget (called with the
    /// loading lock held).
    async fn make_room(&self, model: &Model) -> Result<(), ModelError> {
        loop {
            let loaded: Vec<&Model> = self
                .models
                .iter()
                .filter(|m| lock(&m.loaded).is_some())
                .collect();
            let bytes: u64 = loaded.iter().map(|m| m.bytes).sum();
            let fits_count = loaded.len() < self.max_loaded;
            let fits_bytes = self.max_bytes.is_none_or(|max| bytes + model.bytes <= max);
            if fits_count && fits_bytes {
                return Ok(());
            }
            let victim = loaded
                .iter()
                .filter(|m| !m.pinned && m.in_flight.load(Ordering::Acquire) == 0)
                .min_by_key(|m| *lock(&m.last_used));
            let Some(victim) = victim else {
                return Err(ModelError::NoRoom(format!(
                    "the model {} needs room ({} loaded of recognition.model_cache.max_loaded \
                     {}; {} bytes) and every loaded model is in use or pinned; try again later",
                    model.name,
                    loaded.len(),
                    self.max_loaded,
                    bytes
                )));
            };
            if !Self::unload(victim).await {
                // Leased meanwhile: look again.
                tokio::task::yield_now().await;
            }
        }
    }

    /// How often [`unload_idle`](Self::unload_idle) should run: a quarter of the idle time
    /// (between 0.1 and 10 s); `None` when models are never unloaded for idleness.
    pub fn idle_check_period(&self) -> Option<Duration> {
        self.idle_unload
            .map(|idle| (idle / 4).clamp(Duration::from_millis(100), Duration::from_secs(10)))
    }

    /// Unloads every model but the default that has had no request for
    /// `model_cache.idle_unload_seconds` and is not in use.
    pub async fn unload_idle(&self) {
        let Some(idle) = self.idle_unload else {
            return;
        };
        let is_idle = |m: &Model| {
            !m.pinned
                && m.in_flight.load(Ordering::Acquire) == 0
                && lock(&m.last_used).elapsed() >= idle
                && lock(&m.loaded).is_some()
        };
        for model in &self.models {
            if is_idle(model) {
                let _loading = self.loading.lock().await;
                if is_idle(model) {
                    Self::unload(model).await;
                }
            }
        }
    }

    /// Unloads `model` if nothing uses it: its recognizer finishes and frees its contexts and
    /// states, off the runtime. Returns whether it did.
    async fn unload(model: &Model) -> bool {
        let recognizer = {
            let mut loaded = lock(&model.loaded);
            if model.in_flight.load(Ordering::Acquire) != 0 {
                return false;
            }
            loaded.take()
        };
        let Some(recognizer) = recognizer else {
            return false;
        };
        let name = model.name.clone();
        let _ = tokio::task::spawn_blocking(move || {
            let before = resident_bytes();
            recognizer.shutdown();
            drop(recognizer);
            let trimmed = whisper_steady::cuda::trim();
            let after = resident_bytes();
            log::info!(
                "model {name} unloaded: resident memory {} -> {} MB, {} bytes of CUDA pools \
                 returned to the driver",
                before.unwrap_or(0) / 1_000_000,
                after.unwrap_or(0) / 1_000_000,
                trimmed.bytes_released
            );
        })
        .await;
        true
    }

    /// Every model's status, in name order.
    pub fn status(&self) -> Vec<ModelStatus> {
        self.models
            .iter()
            .enumerate()
            .map(|(i, m)| ModelStatus {
                name: m.name.clone(),
                loaded: m.is_loaded(),
                default: i == self.default,
                bytes: m.bytes,
                requests: m.requests.load(Ordering::Relaxed),
                loads: m.loads.load(Ordering::Relaxed),
                in_flight: m.in_flight.load(Ordering::Acquire),
                load_seconds: m.load_seconds(),
                idle_seconds: lock(&m.last_used).elapsed().as_secs_f64(),
            })
            .collect()
    }

    /// Shuts every loaded model down (requests in flight finish first).
    pub fn shutdown(&self) {
        for model in &self.models {
            let recognizer = lock(&model.loaded).clone();
            if let Some(recognizer) = recognizer {
                recognizer.shutdown();
            }
        }
    }
}

/// The process's resident memory (Linux: `/proc/self/statm`); `None` elsewhere.
pub fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // The page size of every Linux target this server is built for.
    Some(pages * 4096)
}
