//! `config.json`: the original server's shape plus our keys, with an embedded default for
//! everything but the model. Unknown keys and wrong types are refused with the key's path.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer};
use whisper_steady::catalog::VadChoice;
use whisper_steady::recognizer::{
    GpuDevices, Isolation, LongAudio, RecognizeError, RecognizeOptions, RecognizerConfig,
};

/// The whole file.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// `server`: listening, CORS, limits.
    pub server: ServerConfig,
    /// `recognition`: the model and the recognizer.
    pub recognition: RecognitionConfig,
    /// `storage`: where uploads live.
    pub storage: StorageConfig,
    /// `logging`: level and file.
    pub logging: LoggingConfig,
    /// `auth`: API keys and their limits (default: none; everyone who reaches the port may
    /// call the API).
    pub auth: AuthConfig,
    /// `wyoming`: the Wyoming protocol server for Home Assistant (default: off).
    pub wyoming: WyomingConfig,
}

/// `wyoming`: speech-to-text over the Wyoming protocol (Home Assistant's voice pipeline), on
/// its own TCP port.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct WyomingConfig {
    /// The TCP port (default: none, the server is off; 10300 is Wyoming's usual one; 0 picks a
    /// free one).
    pub port: Option<u16>,
    /// The address to listen on (default: `server.host`).
    pub host: Option<String>,
    /// Connections at once (default 16); one more is answered with an `error` event.
    pub max_connections: usize,
    /// Wyoming has no authentication: with API keys configured, a Wyoming listener on an
    /// address other than loopback is refused at start unless this is set (default `false`).
    pub allow_unauthenticated: bool,
    /// English commands shorter than this many seconds are encoded in a window fitted to them
    /// (the command plus 4 s, [`whisper_steady::recognizer::FIT_AUDIO_CTX_MARGIN`]) instead of
    /// whisper's whole 30 s window (default 6; 0 turns it off). Voice commands are short, and
    /// the 30 s window is most of their time; measured on held-out commands (bench/RESULTS.md,
    /// docs/wyoming.md). Other languages, and a language left to detection, keep the full
    /// window: on German commands the fitted window cost words.
    pub fit_window_below_seconds: f64,
}

impl Default for WyomingConfig {
    fn default() -> Self {
        WyomingConfig {
            port: None,
            host: None,
            max_connections: 16,
            allow_unauthenticated: false,
            fit_window_below_seconds: 6.0,
        }
    }
}

/// `auth`: who may call the server, and how much.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// The API keys (also from `keys_file` and the environment variable `RECOGNIZER_API_KEYS`).
    /// With any key configured, every API endpoint needs `Authorization: Bearer KEY` (a
    /// WebSocket may send it as the subprotocol `openai-insecure-api-key.KEY` instead).
    pub keys: Vec<ApiKey>,
    /// A JSON file holding a list of keys as `keys` does, read at start and again on SIGHUP.
    pub keys_file: Option<PathBuf>,
    /// The keys that may call `/admin/*` (and `/metrics` with `protect_metrics`); they may
    /// also call the API, without limits. With any key configured, the admin endpoints need one
    /// of these from every address.
    pub admin_keys: Vec<ApiKey>,
    /// Whether `/metrics` needs an admin key (default `false`: open, like `/health`).
    pub protect_metrics: bool,
    /// Without keys: the most requests per minute one client address may make (default: no
    /// limit); more are answered 429 with `Retry-After`.
    pub per_address_requests_per_minute: Option<u32>,
}

/// One API key. Its secret is never logged (`Debug` shows the name only).
#[derive(Clone, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ApiKey {
    /// Who it is, for `/metrics` and the log (required, unique).
    pub name: String,
    /// The key itself, or
    pub key: Option<String>,
    /// its sha256 in hex (`printf %s KEY | sha256sum`), so the file holds no secret.
    pub key_sha256: Option<String>,
    /// The most requests per minute (default: no limit).
    pub requests_per_minute: Option<u32>,
    /// The most seconds of audio per hour (default: no limit).
    pub audio_seconds_per_hour: Option<u32>,
    /// The most requests (or live sessions) at once (default: no limit).
    pub max_concurrent: Option<u32>,
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKey")
            .field("name", &self.name)
            .field("requests_per_minute", &self.requests_per_minute)
            .field("audio_seconds_per_hour", &self.audio_seconds_per_hour)
            .field("max_concurrent", &self.max_concurrent)
            .finish_non_exhaustive()
    }
}

/// `server`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Address to listen on (default `0.0.0.0`).
    pub host: String,
    /// Port (default 8080; 0 picks a free one).
    pub port: u16,
    /// CORS response headers.
    pub cors: CorsConfig,
    /// Largest request body in bytes (default 100 MiB); more is answered 413.
    pub max_upload_bytes: u64,
    /// Longest a recognition may take, queueing included, in seconds (default 300); longer is
    /// answered 504.
    pub request_timeout_seconds: f64,
    /// Longest the client may take to send a whole request body, in seconds (default 60),
    /// counted from its request's head; a body that takes longer, stalls or is shorter than
    /// its declared length is answered 400.
    pub body_timeout_seconds: f64,
    /// The least average rate a request body must arrive at, in bytes per second, after its
    /// first 5 s (default 1024; 0 turns the check off); a slower body is answered 400.
    pub min_body_bytes_per_second: u64,
    /// Longest the client may take to send a request's head (request line and headers), in
    /// seconds (default 10), counted from the connection's start or, on a kept-alive
    /// connection, from the end of the previous response; then the connection is closed.
    pub header_timeout_seconds: f64,
    /// A connection on which nothing was sent or received for this long, in seconds (default
    /// 60), is closed (after the response in progress, if any).
    pub idle_timeout_seconds: f64,
    /// Connections open at once (default 1024); more wait in the listen backlog until one
    /// closes. Kept under the open-files limit, whose soft value is raised at start where the
    /// hard one allows (a warning says when it cannot be).
    pub max_connections: usize,
    /// Answer the admin endpoints (`POST /admin/trim`) from any address (default `false`: only
    /// from loopback, 127.0.0.0/8 and ::1; others get 403).
    pub admin_from_any_address: bool,
    /// Live transcription WebSockets (`GET /v1/live`) open at once (default 8); one more is
    /// answered 503. Each runs at most one recognition at a time, about one a second while
    /// someone speaks: with the default of at most 4 workers, 8 streams keep them busy, and
    /// more would make every stream lag instead of refusing one.
    pub max_live_connections: usize,
    /// A live connection that sends no audio for this long, in seconds (default 60), is closed
    /// with 1008; pings, empty frames and text do not count as audio.
    pub live_idle_seconds: f64,
    /// The longest a live connection may last, in seconds (default 3600); then the final of
    /// what was said is sent and it is closed with 1008 (the client opens a new one).
    pub live_max_session_seconds: f64,
    /// Uploads decoded at once (default: the number of cores). Decoding starts only for a
    /// request that has a place in the recognition queue, so at most `queue_limit` uploads
    /// wait for one of these.
    pub max_concurrent_decodes: Option<usize>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            host: "0.0.0.0".into(),
            port: 8080,
            cors: CorsConfig::default(),
            max_upload_bytes: 100 << 20,
            request_timeout_seconds: 300.0,
            body_timeout_seconds: 60.0,
            min_body_bytes_per_second: 1024,
            header_timeout_seconds: 10.0,
            idle_timeout_seconds: 60.0,
            max_connections: 1024,
            admin_from_any_address: false,
            max_live_connections: 8,
            live_idle_seconds: 60.0,
            live_max_session_seconds: 3600.0,
            max_concurrent_decodes: None,
        }
    }
}

/// A header value given as one string (`"GET, POST"`) or as a list.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum HeaderList {
    /// `"GET, POST"`.
    One(String),
    /// `["GET", "POST"]`.
    Many(Vec<String>),
}

impl HeaderList {
    /// The items, trimmed, empty ones left out.
    pub fn items(&self) -> Vec<String> {
        let raw: Vec<&str> = match self {
            HeaderList::One(s) => s.split(',').collect(),
            HeaderList::Many(v) => v.iter().map(String::as_str).collect(),
        };
        raw.into_iter()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    }
}

/// `server.cors`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct CorsConfig {
    /// `Access-Control-Allow-Origin` (default `*`; empty turns CORS off).
    pub allow_origin: String,
    /// Allowed methods (default `GET, POST, OPTIONS`).
    pub allow_methods: HeaderList,
    /// Allowed request headers (default `Content-Type, Authorization`).
    pub allow_headers: HeaderList,
}

impl Default for CorsConfig {
    fn default() -> Self {
        CorsConfig {
            allow_origin: "*".into(),
            allow_methods: HeaderList::One("GET, POST, OPTIONS".into()),
            allow_headers: HeaderList::One("Content-Type, Authorization".into()),
        }
    }
}

/// `recognition`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct RecognitionConfig {
    /// The ggml model file, or a known model's name (`base.en`; fetched into the model cache
    /// when missing): the one-model shorthand of `models`. No default: `--model`, this key or
    /// `models`.
    pub model_path: Option<PathBuf>,
    /// Several models, by the name requests use (`"model"`): each a model file or a known
    /// model's name, or an object with `path` and what it overrides (`workers`,
    /// `threads_per_worker`, `default_params`). Not together with `model_path`.
    pub models: BTreeMap<String, ModelSetting>,
    /// The model of requests that name none (and of `/v1/live`, Wyoming without a name):
    /// needed with several `models`; the only one otherwise.
    pub default_model: Option<String>,
    /// Other names for configured models (default: `whisper-1`, `gpt-4o-transcribe` and
    /// `gpt-4o-mini-transcribe`, what OpenAI's clients send, for the default model). A request
    /// naming neither a model nor an alias is refused (400 with code `model_not_found`).
    pub model_aliases: Option<BTreeMap<String, String>>,
    /// How many models may be loaded at once ([`ModelCacheConfig`]).
    pub model_cache: ModelCacheConfig,
    /// Defaults of every request.
    pub default_params: DefaultParams,
    /// Run on the CPU when the GPU is unavailable or fails (default `true`).
    pub fallback_to_cpu: bool,
    /// The GPUs to use: a list of ggml GPU indices (`[0, 1]`) or `"all"` (default: GPU 0). Each
    /// gets `workers` states and its own breaker; requests go to the least-loaded one, and a
    /// request that fails on one is retried on another, then on the CPU.
    pub gpu_devices: Option<GpuDevicesSetting>,
    /// Requests that run at once (default: the recognizer's, cores / 4 between 1 and 4).
    pub workers: Option<usize>,
    /// Requests that may wait (default `4 * workers`); more are answered 429.
    pub queue_limit: Option<usize>,
    /// Threads per request (default: cores / workers).
    pub threads_per_worker: Option<usize>,
    /// Longest audio accepted, in seconds after decoding (default 3 hours).
    pub max_audio_seconds: f64,
    /// The speech detector (the recognizer's `vad_model`): `"silero"` (the default: Silero VAD
    /// 6.2.0 from the model cache, fetched there at start when missing; a server that cannot
    /// get it says so loudly and runs without), `"off"`, or the path of a ggml VAD model. With
    /// it, audio without speech is answered with no words (without whisper), and audio over
    /// 30 s decoded greedily is transcribed as its speech, in chunks cut at pauses
    /// (`long_audio`).
    #[serde(deserialize_with = "vad_choice")]
    pub vad_model: VadChoice,
    /// States one request's chunks may use at once (default 1; the recognizer's
    /// `chunk_states`).
    pub chunk_states: Option<usize>,
    /// Seconds with nothing queued or running after which the CUDA pools' unused memory goes
    /// back to the driver, once per idle period (default: never; the recognizer's
    /// `idle_trim_after`).
    pub idle_trim_seconds: Option<f64>,
    /// The languages detection may choose (codes or English names, e.g. `["zh", "en"]`;
    /// default empty: every language the model has). A request without a language gets the
    /// most probable of them; one naming a language outside the list is refused with 400. Each
    /// must be a language the model has (the recognizer's `detect_languages`).
    pub detect_languages: Vec<String>,
    /// Where whisper runs (the recognizer's `isolation`): `"auto"` (the default: each GPU
    /// lane in a worker process, so that a native failure there is a failover and not the
    /// server's end; threads on a machine without a GPU), `"process"` or `"thread"`. `/health`
    /// says which is in effect.
    #[serde(deserialize_with = "word_choice")]
    pub isolation: Isolation,
    /// How long audio with speech detection is decoded (the recognizer's `long_audio`):
    /// `"chunks_when_greedy"` (the default: speech chunks when greedy, whisper's own windows
    /// under beam search, which `default_params.beam_size` 5 asks for), `"chunks"` or
    /// `"windows"`.
    #[serde(deserialize_with = "word_choice")]
    pub long_audio: LongAudio,
}

impl Default for RecognitionConfig {
    fn default() -> Self {
        RecognitionConfig {
            model_path: None,
            models: BTreeMap::new(),
            default_model: None,
            model_aliases: None,
            model_cache: ModelCacheConfig::default(),
            default_params: DefaultParams::default(),
            fallback_to_cpu: true,
            gpu_devices: None,
            workers: None,
            queue_limit: None,
            threads_per_worker: None,
            max_audio_seconds: 3.0 * 3600.0,
            vad_model: VadChoice::Silero,
            chunk_states: None,
            idle_trim_seconds: None,
            detect_languages: Vec::new(),
            isolation: Isolation::Auto,
            long_audio: LongAudio::default(),
        }
    }
}

/// One entry of `recognition.models`: a path or known name, or that with overrides.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum ModelSetting {
    /// A model file or a known model's name.
    Path(PathBuf),
    /// The same, with settings of its own.
    Detailed(ModelOverrides),
}

/// `recognition.models.NAME` as an object.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ModelOverrides {
    /// A model file or a known model's name.
    pub path: PathBuf,
    /// Requests that run at once on this model (default: `recognition.workers`).
    pub workers: Option<usize>,
    /// Threads per request on this model (default: `recognition.threads_per_worker`, or the
    /// cores shared among the workers of the models that may be loaded at once).
    pub threads_per_worker: Option<usize>,
    /// Request defaults of this model (default: `recognition.default_params`).
    pub default_params: Option<DefaultParams>,
}

/// `recognition.model_cache`: the models loaded at once. A request for a model that is not
/// loaded loads it (waiting up to its deadline), after unloading the least recently used idle
/// model when the new one would not fit; when none can be unloaded it is answered 503 with
/// `Retry-After`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ModelCacheConfig {
    /// Models loaded at once (default: all of them).
    pub max_loaded: Option<usize>,
    /// Bytes of model files loaded at once (default: no limit).
    pub max_bytes: Option<u64>,
    /// A model other than the default with no request for this long is unloaded: its
    /// contexts and states freed, the CUDA pools trimmed (default: never). The next request
    /// loads it again.
    pub idle_unload_seconds: Option<f64>,
    /// The most bytes the model cache on disk may hold: at start, cached models other than
    /// this server's are deleted, least recently used first, until it fits (default: no
    /// limit).
    pub max_disk_bytes: Option<u64>,
    /// Keep the default model loaded whatever the budget and idleness say (default `true`);
    /// `false` lets it be unloaded like the others (the next request loads it again).
    pub pin_default: bool,
}

impl Default for ModelCacheConfig {
    fn default() -> Self {
        ModelCacheConfig {
            max_loaded: None,
            max_bytes: None,
            idle_unload_seconds: None,
            max_disk_bytes: None,
            pin_default: true,
        }
    }
}

/// One configured model, as [`Config::model_specs`] reads it: its name, what was written
/// for it, and its settings with the overrides applied.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelSpec {
    /// The name requests use.
    pub name: String,
    /// A model file or a known model's name, as written.
    pub written: PathBuf,
    /// Its workers, if set for it or for all.
    pub workers: Option<usize>,
    /// Its threads per worker, if set for it or for all.
    pub threads_per_worker: Option<usize>,
    /// Its request defaults.
    pub default_params: DefaultParams,
}

/// The aliases of the default model when `recognition.model_aliases` is not set.
pub const DEFAULT_MODEL_ALIASES: [&str; 3] =
    ["whisper-1", "gpt-4o-transcribe", "gpt-4o-mini-transcribe"];

/// [`DEFAULT_MODEL_ALIASES`], each naming `model`.
pub fn default_model_aliases(model: &str) -> BTreeMap<String, String> {
    DEFAULT_MODEL_ALIASES
        .iter()
        .map(|a| ((*a).to_owned(), model.to_owned()))
        .collect()
}

/// The name a model is known by when it is given as `model_path` (or `--model`): a known
/// model's name as written, otherwise the file's name without `.bin`.
pub fn model_name_of(written: &Path) -> String {
    let text = written.to_string_lossy();
    if whisper_steady::catalog::find(&text).is_some() {
        return text.into_owned();
    }
    written
        .file_name()
        .map(|n| n.to_string_lossy().trim_end_matches(".bin").to_owned())
        .unwrap_or_else(|| text.into_owned())
}

/// `recognition.vad_model` as written: `"silero"`, `"off"` or a path.
fn vad_choice<'de, D: Deserializer<'de>>(d: D) -> Result<VadChoice, D::Error> {
    let written = String::deserialize(d)?;
    Ok(written.parse().unwrap_or_else(|never| match never {}))
}

/// A setting written as one of its words (`recognition.isolation`: `"auto"`, `"process"` or
/// `"thread"`; `recognition.long_audio`), read by its type's `FromStr`.
fn word_choice<'de, D: Deserializer<'de>, T: std::str::FromStr<Err = String>>(
    d: D,
) -> Result<T, D::Error> {
    String::deserialize(d)?
        .parse()
        .map_err(serde::de::Error::custom)
}

/// `recognition.gpu_devices`: `[0, 1]` or `"all"`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum GpuDevicesSetting {
    /// GPU indices, each at most once.
    List(Vec<i32>),
    /// `"all"`: every GPU found at start.
    Word(String),
}

impl GpuDevicesSetting {
    /// The recognizer's setting (the list's contents are checked by the recognizer).
    pub fn to_library(&self) -> Result<GpuDevices, ConfigError> {
        match self {
            GpuDevicesSetting::List(list) => Ok(GpuDevices::List(list.clone())),
            GpuDevicesSetting::Word(word) if word.trim().eq_ignore_ascii_case("all") => {
                Ok(GpuDevices::All)
            }
            GpuDevicesSetting::Word(word) => Err(ConfigError(format!(
                "config key `recognition.gpu_devices`: {word:?} is neither \"all\" nor a list of GPU indices such as [0, 1]"
            ))),
        }
    }
}

/// `recognition.default_params`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct DefaultParams {
    /// The spoken language, or `"auto"` (default) to detect it.
    pub language: String,
    /// Where the workers run: `"auto"` (default), `true` or `false` ([`UseGpu`]).
    pub use_gpu: UseGpu,
    /// Beam search width; 1 decodes greedily (default 5, as whisper.cpp's CLI).
    pub beam_size: u32,
    /// Decoding temperature (default 0.0).
    pub temperature: f32,
}

impl Default for DefaultParams {
    fn default() -> Self {
        DefaultParams {
            language: "auto".into(),
            use_gpu: UseGpu::Auto,
            beam_size: 5,
            temperature: 0.0,
        }
    }
}

/// `recognition.default_params.use_gpu`: where the workers run.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(try_from = "UseGpuValue")]
pub enum UseGpu {
    /// `"auto"` (the default): on a GPU when there is one. A build or machine without any
    /// runs on the CPU, and `/health` says `ok` (with `failover.gpu_unavailable` saying why).
    #[default]
    Auto,
    /// `true`: a GPU is expected. Running without one (none here, or one that cannot be used)
    /// is `/health` `degraded`, and a start error without `fallback_to_cpu`.
    Required,
    /// `false`: on the CPU.
    Off,
}

/// `use_gpu` as written: a boolean or a word.
#[derive(Deserialize)]
#[serde(untagged)]
enum UseGpuValue {
    Flag(bool),
    Word(String),
}

impl TryFrom<UseGpuValue> for UseGpu {
    type Error = String;

    fn try_from(value: UseGpuValue) -> Result<Self, String> {
        match value {
            UseGpuValue::Flag(true) => Ok(UseGpu::Required),
            UseGpuValue::Flag(false) => Ok(UseGpu::Off),
            UseGpuValue::Word(word) if word.trim().eq_ignore_ascii_case("auto") => Ok(UseGpu::Auto),
            UseGpuValue::Word(word) => Err(format!("{word:?} is none of \"auto\", true or false")),
        }
    }
}

/// `storage`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    /// Where uploads are stored and the only place `audio_path` may name (default `./storage`).
    pub dir: PathBuf,
    /// Smaller uploads and files are refused (default 44 bytes, a WAV header).
    pub min_file_size_bytes: u64,
    /// The most bytes all uploads together may hold (default 4 GiB: 40 uploads of the default
    /// `server.max_upload_bytes`, small beside a disk, large beside the minutes between an
    /// upload and its recognition). A full quota first evicts expired uploads, then answers 507.
    pub max_bytes: u64,
    /// How long an upload is kept, in seconds (default 86400, one day: the original API
    /// recognizes an upload by its id right after uploading it, and a day leaves room for
    /// retries without keeping audio forever). Expired uploads are deleted by a sweep every
    /// minute (or every retention period, if shorter) and when the quota is full.
    pub retention_seconds: f64,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            dir: PathBuf::from("storage"),
            min_file_size_bytes: 44,
            max_bytes: 4 << 30,
            retention_seconds: 86_400.0,
        }
    }
}

/// `logging`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct LoggingConfig {
    /// `error`, `warn`, `info` (default), `debug` or `trace`.
    pub level: String,
    /// Append logs to this file instead of stderr (default: none).
    pub file: Option<PathBuf>,
}

impl Default for LoggingConfig {
    fn default() -> Self {
        LoggingConfig {
            level: "info".into(),
            file: None,
        }
    }
}

/// A configuration that cannot be used; the message names the key.
#[derive(Debug)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// Parses a configuration, naming the key of any unknown field or wrong type.
    pub fn from_json(text: &str) -> Result<Config, ConfigError> {
        let de = &mut serde_json::Deserializer::from_str(text);
        let config: Config = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            if path.is_empty() || path == "." {
                ConfigError(format!("config: {inner}"))
            } else {
                ConfigError(format!("config key `{path}`: {inner}"))
            }
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Reads and parses a file.
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError(format!("cannot read {}: {e}", path.display())))?;
        Self::from_json(&text).map_err(|e| ConfigError(format!("{}: {e}", path.display())))
    }

    /// Checks values that parse but make no sense.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key: &str, why: &str| Err(ConfigError(format!("config key `{key}`: {why}")));
        if self.server.max_live_connections == 0 {
            return bad("server.max_live_connections", "must be at least 1");
        }
        if self.server.max_concurrent_decodes == Some(0) {
            return bad("server.max_concurrent_decodes", "must be at least 1");
        }
        if self.server.max_upload_bytes == 0 {
            return bad("server.max_upload_bytes", "must be at least 1");
        }
        let timeout = self.server.request_timeout_seconds;
        if !(timeout.is_finite() && timeout > 0.0 && timeout <= 86_400.0) {
            return bad(
                "server.request_timeout_seconds",
                "must be between 0 and 86400 seconds",
            );
        }
        if self.wyoming.max_connections == 0 {
            return bad("wyoming.max_connections", "must be at least 1");
        }
        let fit = self.wyoming.fit_window_below_seconds;
        if !(fit.is_finite() && (0.0..=30.0).contains(&fit)) {
            return bad(
                "wyoming.fit_window_below_seconds",
                "must be between 0 (off) and 30 seconds",
            );
        }
        if self.server.max_connections == 0 {
            return bad("server.max_connections", "must be at least 1");
        }
        for (key, value) in [
            (
                "server.header_timeout_seconds",
                self.server.header_timeout_seconds,
            ),
            (
                "server.idle_timeout_seconds",
                self.server.idle_timeout_seconds,
            ),
            ("server.live_idle_seconds", self.server.live_idle_seconds),
            (
                "server.live_max_session_seconds",
                self.server.live_max_session_seconds,
            ),
        ] {
            if !(value.is_finite() && value > 0.0 && value <= 86_400.0) {
                return bad(key, "must be between 0 and 86400 seconds");
            }
        }
        let body = self.server.body_timeout_seconds;
        if !(body.is_finite() && body > 0.0 && body <= 86_400.0) {
            return bad(
                "server.body_timeout_seconds",
                "must be between 0 and 86400 seconds",
            );
        }
        // The defaults are request options: the library's checks, one key at a time.
        let params = &self.recognition.default_params;
        let one = |set: &dyn Fn(&mut RecognizeOptions)| {
            let mut options = RecognizeOptions::new();
            set(&mut options);
            options.check().map_err(|e| match e {
                RecognizeError::InvalidOptions(why) => why,
                other => other.to_string(),
            })
        };
        for (key, result) in [
            ("beam_size", one(&|o| o.beam_size = Some(params.beam_size))),
            (
                "temperature",
                one(&|o| o.temperature = Some(params.temperature)),
            ),
            (
                "language",
                one(&|o| o.language = Some(params.language.clone())),
            ),
        ] {
            if let Err(why) = result {
                return bad(&format!("recognition.default_params.{key}"), &why);
            }
        }
        if let Some(idle) = self.recognition.idle_trim_seconds {
            if !(idle.is_finite() && idle > 0.0 && idle <= 1e9) {
                return bad(
                    "recognition.idle_trim_seconds",
                    "must be more than 0 and at most 1e9",
                );
            }
        }
        self.validate_models()?;
        // The recognizer's settings: the library's ranges, named by their key here.
        let specs = self.model_specs();
        let checked = if specs.is_empty() {
            vec![None]
        } else {
            specs.iter().map(Some).collect()
        };
        for spec in checked {
            let rc = match spec {
                Some(spec) => self.recognizer_config_for(spec, PathBuf::new())?,
                None => self.recognizer_config(PathBuf::new())?,
            };
            if let Err(e) = rc.validate() {
                let key = match (e.field, spec) {
                    ("idle_trim_after", _) => "recognition.idle_trim_seconds".to_owned(),
                    ("default_deadline", _) => "server.request_timeout_seconds".to_owned(),
                    ("use_gpu" | "require_gpu", _) => {
                        "recognition.default_params.use_gpu".to_owned()
                    }
                    (field, Some(spec)) if !self.recognition.models.is_empty() => {
                        format!("recognition.models.{}.{field}", spec.name)
                    }
                    (field, _) => format!("recognition.{field}"),
                };
                return bad(&key, &e.why);
            }
        }
        let max_audio = self.recognition.max_audio_seconds;
        if !(max_audio.is_finite() && max_audio > 0.0) {
            return bad("recognition.max_audio_seconds", "must be more than 0");
        }
        if self.storage.dir.as_os_str().is_empty() {
            return bad("storage.dir", "must not be empty");
        }
        if self.storage.max_bytes == 0 {
            return bad("storage.max_bytes", "must be at least 1");
        }
        let retention = self.storage.retention_seconds;
        if !(retention.is_finite() && retention > 0.0 && retention <= 1e9) {
            return bad(
                "storage.retention_seconds",
                "must be more than 0 and at most 1e9",
            );
        }
        if !["error", "warn", "info", "debug", "trace"].contains(&self.logging.level.as_str()) {
            return bad(
                "logging.level",
                "must be one of error, warn, info, debug, trace",
            );
        }
        Ok(())
    }

    /// The recognizer this configuration asks for, on `model`: the one reading of the
    /// `recognition` section (and of `server.request_timeout_seconds`, the requests' default
    /// deadline) into the library's [`RecognizerConfig`]; its ranges are the library's
    /// ([`RecognizerConfig::validate`], which [`validate`](Self::validate) runs). Durations must
    /// be valid ([`validate`](Self::validate) checks them first).
    pub fn recognizer_config(&self, model: PathBuf) -> Result<RecognizerConfig, ConfigError> {
        let recognition = &self.recognition;
        let mut rc = RecognizerConfig::new(model);
        (rc.use_gpu, rc.require_gpu) = match recognition.default_params.use_gpu {
            UseGpu::Auto => (true, false),
            UseGpu::Required => (true, true),
            UseGpu::Off => (false, false),
        };
        rc.fallback_to_cpu = recognition.fallback_to_cpu;
        if let Some(devices) = &recognition.gpu_devices {
            rc.gpu_devices = devices.to_library()?;
        }
        if let Some(workers) = recognition.workers {
            rc.workers = workers;
            rc.queue_limit = 4 * workers;
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
            rc.threads_per_worker = (cores / workers.max(1)).max(1);
        }
        if let Some(limit) = recognition.queue_limit {
            rc.queue_limit = limit;
        }
        if let Some(threads) = recognition.threads_per_worker {
            rc.threads_per_worker = threads;
        }
        // No network here: `AppState::new` fetched the named model into the cache first.
        rc.vad_model = match &recognition.vad_model {
            VadChoice::Silero => whisper_steady::catalog::cached_vad(),
            VadChoice::Off => None,
            VadChoice::File(path) => Some(path.clone()),
        };
        rc.idle_trim_after = recognition.idle_trim_seconds.map(Duration::from_secs_f64);
        rc.detect_languages = recognition.detect_languages.clone();
        rc.isolation = recognition.isolation;
        rc.long_audio = recognition.long_audio;
        if let Some(states) = recognition.chunk_states {
            rc.chunk_states = states;
        }
        rc.default_deadline = Some(self.request_timeout());
        Ok(rc)
    }

    /// Checks `models`, `default_model`, `model_aliases` and `model_cache` against each other.
    fn validate_models(&self) -> Result<(), ConfigError> {
        let bad = |key: &str, why: String| Err(ConfigError(format!("config key `{key}`: {why}")));
        let r = &self.recognition;
        if r.model_path.is_some() && !r.models.is_empty() {
            return bad(
                "recognition.models",
                "set either `model_path` (or --model: one model) or `models`, not both".into(),
            );
        }
        for (name, setting) in &r.models {
            if name.trim().is_empty() || name.trim() != name {
                return bad(
                    "recognition.models",
                    format!("the name {name:?} is empty or has spaces around it"),
                );
            }
            let path = match setting {
                ModelSetting::Path(p) => p,
                ModelSetting::Detailed(o) => &o.path,
            };
            if path.as_os_str().is_empty() {
                return bad(
                    &format!("recognition.models.{name}"),
                    "names no model file".into(),
                );
            }
        }
        let specs = self.model_specs();
        let names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
        match &r.default_model {
            Some(d) if !names.is_empty() && !names.contains(&d.as_str()) => {
                return bad(
                    "recognition.default_model",
                    format!("{d:?} is not one of the models ({})", names.join(", ")),
                )
            }
            None if names.len() > 1 => {
                return bad(
                    "recognition.default_model",
                    format!(
                        "with several models one must be the default (one of {})",
                        names.join(", ")
                    ),
                )
            }
            _ => {}
        }
        if let Some(aliases) = &r.model_aliases {
            for (alias, target) in aliases {
                if names.contains(&alias.as_str()) {
                    return bad(
                        "recognition.model_aliases",
                        format!("{alias:?} is a model's own name"),
                    );
                }
                if !names.is_empty() && !names.contains(&target.as_str()) {
                    return bad(
                        "recognition.model_aliases",
                        format!("{alias:?} names {target:?}, which is not one of the models"),
                    );
                }
            }
        }
        if r.model_cache.max_loaded == Some(0) {
            return bad(
                "recognition.model_cache.max_loaded",
                "must be at least 1".into(),
            );
        }
        if let Some(idle) = r.model_cache.idle_unload_seconds {
            if !(idle.is_finite() && idle > 0.0 && idle <= 1e9) {
                return bad(
                    "recognition.model_cache.idle_unload_seconds",
                    "must be more than 0 and at most 1e9".into(),
                );
            }
        }
        if r.model_cache.max_disk_bytes == Some(0) {
            return bad(
                "recognition.model_cache.max_disk_bytes",
                "must be at least 1".into(),
            );
        }
        if r.model_cache.max_bytes == Some(0) {
            return bad(
                "recognition.model_cache.max_bytes",
                "must be at least 1".into(),
            );
        }
        Ok(())
    }

    /// The configured models in name order: those of `models`, or the one of `model_path`
    /// (named by [`model_name_of`]); none before a model is given.
    pub fn model_specs(&self) -> Vec<ModelSpec> {
        let r = &self.recognition;
        if let Some(path) = &r.model_path {
            return vec![ModelSpec {
                name: model_name_of(path),
                written: path.clone(),
                workers: r.workers,
                threads_per_worker: r.threads_per_worker,
                default_params: r.default_params.clone(),
            }];
        }
        r.models
            .iter()
            .map(|(name, setting)| match setting {
                ModelSetting::Path(path) => ModelSpec {
                    name: name.clone(),
                    written: path.clone(),
                    workers: r.workers,
                    threads_per_worker: r.threads_per_worker,
                    default_params: r.default_params.clone(),
                },
                ModelSetting::Detailed(o) => ModelSpec {
                    name: name.clone(),
                    written: o.path.clone(),
                    workers: o.workers.or(r.workers),
                    threads_per_worker: o.threads_per_worker.or(r.threads_per_worker),
                    default_params: o
                        .default_params
                        .clone()
                        .unwrap_or_else(|| r.default_params.clone()),
                },
            })
            .collect()
    }

    /// The default model's name: `default_model`, or the only model.
    pub fn default_model_name(&self) -> Option<String> {
        let specs = self.model_specs();
        match (&self.recognition.default_model, specs.as_slice()) {
            (Some(name), _) => Some(name.clone()),
            (None, [only]) => Some(only.name.clone()),
            _ => None,
        }
    }

    /// Each alias with the model it names: `model_aliases`, or [`DEFAULT_MODEL_ALIASES`] for
    /// the default model.
    pub fn model_aliases(&self) -> BTreeMap<String, String> {
        match (&self.recognition.model_aliases, self.default_model_name()) {
            (Some(aliases), _) => aliases.clone(),
            (None, Some(default)) => default_model_aliases(&default),
            (None, None) => BTreeMap::new(),
        }
    }

    /// How many models may be loaded at once.
    pub fn models_at_once(&self) -> usize {
        let n = self.model_specs().len().max(1);
        self.recognition
            .model_cache
            .max_loaded
            .map_or(n, |m| m.min(n))
    }

    /// The recognizer of one configured model on `model` (its file): [`recognizer_config`]
    /// with the model's own workers, threads and `use_gpu`. Unless threads are set, the cores
    /// are shared among the workers of the models that may be loaded at once, so that no more
    /// threads run than there are cores.
    ///
    /// [`recognizer_config`]: Self::recognizer_config
    pub fn recognizer_config_for(
        &self,
        spec: &ModelSpec,
        model: PathBuf,
    ) -> Result<RecognizerConfig, ConfigError> {
        let mut rc = self.recognizer_config(model)?;
        (rc.use_gpu, rc.require_gpu) = match spec.default_params.use_gpu {
            UseGpu::Auto => (true, false),
            UseGpu::Required => (true, true),
            UseGpu::Off => (false, false),
        };
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        if let Some(workers) = spec.workers {
            rc.workers = workers;
            if self.recognition.queue_limit.is_none() {
                rc.queue_limit = 4 * workers;
            }
        }
        rc.threads_per_worker = match spec.threads_per_worker {
            Some(threads) => threads,
            None => (cores / (rc.workers.max(1) * self.models_at_once())).max(1),
        };
        Ok(rc)
    }

    /// The request timeout.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs_f64(self.server.request_timeout_seconds)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn several_models_need_a_default_and_exclude_model_path() {
        let both = r#"{"recognition": {"model_path": "tiny.en", "models": {"a": "tiny.en"}}}"#;
        let e = Config::from_json(both).unwrap_err().0;
        assert!(
            e.contains("recognition.models") && e.contains("not both"),
            "{e}"
        );
        let two = r#"{"recognition": {"models": {"a": "tiny.en", "b": "base"}}}"#;
        let e = Config::from_json(two).unwrap_err().0;
        assert!(e.contains("recognition.default_model"), "{e}");
        let wrong =
            r#"{"recognition": {"models": {"a": "tiny.en", "b": "base"}, "default_model": "c"}}"#;
        assert!(Config::from_json(wrong).is_err());
        let alias = r#"{"recognition": {"models": {"a": "tiny.en"}, "model_aliases": {"x": "z"}}}"#;
        let e = Config::from_json(alias).unwrap_err().0;
        assert!(e.contains("model_aliases"), "{e}");
        let good = r#"{"recognition": {"models": {"a": "tiny.en", "b": {"path": "base", "workers": 2,
            "default_params": {"language": "de"}}}, "default_model": "b"}}"#;
        let c = Config::from_json(good).unwrap();
        let specs = c.model_specs();
        assert_eq!(specs.len(), 2);
        assert_eq!(specs[1].workers, Some(2));
        assert_eq!(specs[1].default_params.language, "de");
        assert_eq!(specs[0].default_params.language, "auto");
        assert_eq!(c.default_model_name().as_deref(), Some("b"));
        assert_eq!(c.model_aliases()["whisper-1"], "b");
        // The shorthand is named by the known name as written, or the file's name.
        let one = Config::from_json(r#"{"recognition": {"model_path": "tiny.en"}}"#).unwrap();
        assert_eq!(one.model_specs()[0].name, "tiny.en");
        let file =
            Config::from_json(r#"{"recognition": {"model_path": "/m/ggml-small.bin"}}"#).unwrap();
        assert_eq!(file.model_specs()[0].name, "ggml-small");
    }

    #[test]
    fn everything_but_the_model_has_a_default() {
        let c = Config::from_json("{}").unwrap();
        assert_eq!(c.server.port, 8080);
        assert_eq!(c.recognition.default_params.language, "auto");
        assert_eq!(c.recognition.model_path, None);
        assert_eq!(
            c.server.cors.allow_methods.items(),
            ["GET", "POST", "OPTIONS"]
        );
    }

    #[test]
    fn the_kubernetes_manifests_hold_a_valid_config_and_a_long_enough_grace_period() {
        let k8s = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/k8s");
        let map = std::fs::read_to_string(k8s.join("configmap.yaml")).unwrap();
        let json: Vec<&str> = map
            .lines()
            .skip_while(|l| !l.contains("config.json: |"))
            .skip(1)
            .collect();
        let c = Config::from_json(&json.join("\n")).unwrap();
        let deployment = std::fs::read_to_string(k8s.join("deployment.yaml")).unwrap();
        let grace: f64 = deployment
            .lines()
            .find_map(|l| l.trim().strip_prefix("terminationGracePeriodSeconds:"))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        // SIGTERM drains the requests in flight: the grace period must outlast the deadline
        assert!(
            grace > c.server.request_timeout_seconds + 10.0,
            "{grace} vs {}",
            c.server.request_timeout_seconds
        );
    }

    #[test]
    fn the_users_shape_parses() {
        let c = Config::from_json(
            r#"{
              "server": {"host": "127.0.0.1", "port": 9000,
                         "cors": {"allow_origin": "https://a.example", "allow_methods": ["GET", "POST"],
                                  "allow_headers": "Content-Type"}},
              "recognition": {"model_path": "m.bin",
                              "default_params": {"language": "en", "use_gpu": false, "beam_size": 1, "temperature": 0.2},
                              "fallback_to_cpu": false, "workers": 2, "queue_limit": 3},
              "storage": {"dir": "/var/lib/rec", "min_file_size_bytes": 100},
              "logging": {"level": "debug", "file": "rec.log"}
            }"#,
        )
        .unwrap();
        assert_eq!(c.server.port, 9000);
        assert_eq!(c.server.cors.allow_methods.items(), ["GET", "POST"]);
        assert_eq!(c.recognition.workers, Some(2));
        assert_eq!(c.recognition.default_params.use_gpu, UseGpu::Off);
        assert_eq!(c.logging.file.as_deref(), Some(Path::new("rec.log")));
    }

    #[test]
    fn unknown_keys_and_wrong_types_name_the_key() {
        let e = Config::from_json(r#"{"server": {"prot": 1}}"#)
            .unwrap_err()
            .0;
        assert!(
            e.contains("server.prot") && e.contains("unknown field"),
            "{e}"
        );
        // Each bad value, and the key its error must name.
        for (json, key) in [
            (
                r#"{"recognition": {"default_params": {"beam_size": "5"}}}"#,
                "recognition.default_params.beam_size",
            ),
            (
                r#"{"recognition": {"default_params": {"beam_size": 0}}}"#,
                "recognition.default_params.beam_size",
            ),
            (r#"{"logging": {"level": "loud"}}"#, "logging.level"),
            (r#"{"server": {"port": 70000}}"#, "server.port"),
            (
                r#"{"recognition": {"idle_trim_seconds": 0}}"#,
                "recognition.idle_trim_seconds",
            ),
            (
                r#"{"recognition": {"chunk_states": 0}}"#,
                "recognition.chunk_states",
            ),
            (
                r#"{"recognition": {"long_audio": "sometimes"}}"#,
                "recognition.long_audio",
            ),
            (r#"{"storage": {"max_bytes": 0}}"#, "storage.max_bytes"),
            (
                r#"{"storage": {"retention_seconds": -1}}"#,
                "storage.retention_seconds",
            ),
            (
                r#"{"storage": {"retention_seconds": 1e12}}"#,
                "storage.retention_seconds",
            ),
            (
                r#"{"recognition": {"gpu_devices": "most"}}"#,
                "recognition.gpu_devices",
            ),
            (
                r#"{"recognition": {"gpu_devices": {"a": 1}}}"#,
                "recognition.gpu_devices",
            ),
            // The recognizer's own ranges, named by their key here.
            (r#"{"recognition": {"workers": 0}}"#, "recognition.workers"),
            (
                r#"{"recognition": {"threads_per_worker": 600}}"#,
                "recognition.threads_per_worker",
            ),
            (
                r#"{"recognition": {"chunk_states": 65}}"#,
                "recognition.chunk_states",
            ),
            (
                r#"{"recognition": {"gpu_devices": [0, 0]}}"#,
                "recognition.gpu_devices",
            ),
            (
                r#"{"recognition": {"default_params": {"use_gpu": "maybe"}}}"#,
                "recognition.default_params.use_gpu",
            ),
            (
                r#"{"recognition": {"default_params": {"use_gpu": 1}}}"#,
                "recognition.default_params.use_gpu",
            ),
        ] {
            let e = Config::from_json(json).unwrap_err().0;
            assert!(e.contains(key), "{json}: {e}");
        }
        let c = Config::from_json(
            r#"{"recognition": {"vad_model": "ggml-silero.bin", "chunk_states": 2}}"#,
        )
        .unwrap();
        assert_eq!(
            c.recognition.vad_model,
            VadChoice::File("ggml-silero.bin".into())
        );
        assert_eq!(Config::default().recognition.vad_model, VadChoice::Silero);
        for (json, choice) in [
            (r#""silero""#, VadChoice::Silero),
            (r#""off""#, VadChoice::Off),
        ] {
            let c = Config::from_json(&format!(r#"{{"recognition": {{"vad_model": {json}}}}}"#))
                .unwrap();
            assert_eq!(c.recognition.vad_model, choice);
        }
        assert_eq!(c.recognition.chunk_states, Some(2));
        for (json, devices) in [
            (r#"[0, 1]"#, GpuDevices::List(vec![0, 1])),
            (r#""all""#, GpuDevices::All),
            (r#""ALL""#, GpuDevices::All),
        ] {
            let c = Config::from_json(&format!(r#"{{"recognition": {{"gpu_devices": {json}}}}}"#))
                .unwrap();
            let parsed = c.recognition.gpu_devices.unwrap().to_library().unwrap();
            assert_eq!(parsed, devices, "{json}");
        }
        let e = Config::from_json("[1]").unwrap_err().0;
        assert!(e.starts_with("config"), "{e}");
    }

    #[test]
    fn use_gpu_is_auto_true_or_false() {
        for (json, use_gpu, (wanted, required)) in [
            ("{}", UseGpu::Auto, (true, false)),
            (r#""auto""#, UseGpu::Auto, (true, false)),
            (r#"" AUTO ""#, UseGpu::Auto, (true, false)),
            ("true", UseGpu::Required, (true, true)),
            ("false", UseGpu::Off, (false, false)),
        ] {
            let text = if json == "{}" {
                json.to_owned()
            } else {
                format!(r#"{{"recognition": {{"default_params": {{"use_gpu": {json}}}}}}}"#)
            };
            let c = Config::from_json(&text).unwrap();
            assert_eq!(c.recognition.default_params.use_gpu, use_gpu, "{json}");
            let rc = c.recognizer_config(PathBuf::from("m.bin")).unwrap();
            assert_eq!((rc.use_gpu, rc.require_gpu), (wanted, required), "{json}");
        }
    }
}
