//! What a recognizer is built from, and what a request may ask for.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use super::faults::{FaultFn, FaultInjection, FaultSite};
use super::isolation::{Isolation, WorkerProgram};
use super::language::RunLanguage;
use super::RecognizeError;

/// Where a transcription runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Backend {
    /// A GPU context (CUDA, Vulkan, Metal, ... as built).
    Gpu,
    /// The CPU.
    Cpu,
}

impl Backend {
    /// `"gpu"` or `"cpu"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Gpu => "gpu",
            Backend::Cpu => "cpu",
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How to build a [`Recognizer`](super::Recognizer). Start from [`RecognizerConfig::new`] and
/// set the fields you need; every field has a documented default.
#[derive(Clone)]
#[non_exhaustive]
pub struct RecognizerConfig {
    /// The ggml model file.
    pub model_path: PathBuf,
    /// Run on the GPU when there is one (default `true`). A build or machine without any GPU
    /// runs on the CPU, said once in the log and in
    /// [`FailoverHealth::gpu_unavailable`](super::FailoverHealth::gpu_unavailable), with
    /// status `Ok` unless `require_gpu` is set. A GPU that is there but whose context cannot be
    /// created is a failure: see `fallback_to_cpu`.
    pub use_gpu: bool,
    /// The GPU was asked for (default `false`; needs `use_gpu`): running without one, in a
    /// build or on a machine that has none too, is status `Degraded`, and an error at start
    /// without `fallback_to_cpu`. Set it where a GPU is expected, so that its absence shows.
    pub require_gpu: bool,
    /// When a GPU that is there (or a required one) cannot be used, run on the CPU (said once
    /// in the log) instead of failing to start; and when a GPU transcription fails, retry it on
    /// the CPU (default `true`). With a GPU, this loads the model a second time, into host
    /// memory, for the CPU workers.
    pub fallback_to_cpu: bool,
    /// The GPU to use (default 0) when `gpu_devices` is [`GpuDevices::Single`].
    pub gpu_device: i32,
    /// The GPUs to use (default [`GpuDevices::Single`]: only `gpu_device`). With several, each
    /// gets its own lane: its own copy of the model on that device and `workers` states, its
    /// own circuit breaker. Requests wait in one bounded queue (`queue_limit` over all lanes)
    /// and go to the least-loaded device whose breaker is closed; a request that fails on one
    /// device is retried on another it has not failed on, then on the CPU
    /// (`fallback_to_cpu`). A device whose context cannot be created is left out (said in the
    /// log and in [`FailoverHealth::unavailable_devices`](super::FailoverHealth)) as long as
    /// one device works or `fallback_to_cpu` is set.
    pub gpu_devices: GpuDevices,
    /// Use flash attention (default `false`).
    pub flash_attn: bool,
    /// When a request leaves [`RecognizeOptions::audio_ctx`] unset and its audio is shorter
    /// than the encoder's 30 s window, encode only the audio plus a margin of
    /// [`FIT_AUDIO_CTX_MARGIN`] frames (4 s) instead of the whole window, padded with silence
    /// (default `false`). Audio of 26 s or more always gets the full window.
    ///
    /// Opt-in because it trades words for speed: it halves the encoder's time on short clips
    /// (jfk.wav 0.45x whisper-rs's time), but on the synthesized held-out set of
    /// bench/wer_set.py (55 clips of 2-25 s, 1,416 words, never tuned on) tiny.en made 245 word
    /// errors with it against 229 with whisper's full window; a margin of 400 frames, or a floor
    /// of 750 frames, made 242 (bench/RESULTS.md, 2026-11-30). Use it where latency matters more
    /// than about one word in a hundred.
    pub fit_audio_ctx: bool,
    /// A Silero VAD model in whisper.cpp's ggml format (default none: the library does no
    /// network I/O; `Some(whisper_steady::catalog::download_vad()?)` with the `download`
    /// feature fetches the named model `silero` into the cache, as the server and the CLI do by
    /// default; `scripts/fetch-vad-model.sh` and `whisper-steady convert-silero` make the file
    /// too). With it, every request first goes through the speech detector: audio in which it
    /// finds no speech is answered with no words and [`Transcript::no_speech`](super::Transcript)
    /// without running whisper, and segments wholly outside the speech are dropped (the
    /// [speech guard](super::speech); a request's `sound_tags` turns it off). Audio longer than
    /// 30 s (decoded greedily, with the default [`long_audio`](Self::long_audio)) is
    /// transcribed as its speech only: each stretch of speech keeps 0.3 s of the
    /// silence around it (longer pauses are shortened, silence is skipped), and the stretches
    /// are packed into chunks of at most 28 s, cut at the widest pauses, each decoded in one
    /// encoder window; segments and token times are mapped back to the recording. Audio of
    /// 30 s or less with speech, or a failing VAD (logged), goes through whisper.cpp whole.
    /// Each worker loads its own copy (under 1 MB) and runs it on one thread.
    ///
    /// Long audio: on the 24 held-out long recordings of bench/wer_set.py (3,552 words,
    /// 2 cores, tiny.en), greedy, chunks took 47.7 s instead of 60.1 s for whisper.cpp's windows
    /// over the whole recordings (faster-whisper float32: 62.6 s) and made 536 word errors
    /// where the windows made 519; on the recordings it was tuned on, 137 instead of 153
    /// (docs/speech.md, "Long recordings").
    pub vad_model: Option<PathBuf>,
    /// How many states one worker may use at once for the chunks of one long request (needs
    /// `vad_model`; default 1): its own and up to `chunk_states - 1` more, made on first use
    /// and kept (each costs a state's memory), splitting its `threads_per_worker` between them
    /// (on the CPU, never more states than `threads_per_worker`). On 2 cores, two states of one
    /// thread were no faster than one of two on the tuning recordings (18.6 s vs 18.4 s), so
    /// the default is one; with more cores per worker, or on a GPU, measure 2.
    pub chunk_states: usize,
    /// Which long requests (with `vad_model`) go in speech chunks and which through whisper.cpp's
    /// own windows (default [`LongAudio::ChunksWhenGreedy`]).
    pub long_audio: LongAudio,
    /// Worker states on the main backend, per GPU with several `gpu_devices`: how many
    /// requests run at once on each (default [`default_workers`]).
    pub workers: usize,
    /// Threads each worker gives whisper.cpp (default: the machine's cores divided by
    /// `workers`, at least 1).
    pub threads_per_worker: usize,
    /// Worker states on the CPU when the main backend is a GPU and `fallback_to_cpu` is set
    /// (default 1).
    pub cpu_workers: usize,
    /// Requests that may wait for a worker, over all lanes; one more is refused with
    /// [`RecognizeError::Overloaded`](super::RecognizeError::Overloaded) (default
    /// `4 * workers`; with several GPUs, consider raising it by as many times).
    pub queue_limit: usize,
    /// The deadline of requests that set none, counted from submission (default: none).
    pub default_deadline: Option<Duration>,
    /// After this long with nothing queued or running, trim: return the CUDA pools' unused
    /// memory to the driver, as [`Recognizer::trim`](super::Recognizer::trim) does (default:
    /// never). Once per idle period. Off by default because a dedicated server gains nothing
    /// from it and its next request pays for mapping memory again; set it (a minute, say) when
    /// the GPU is shared with other processes that need memory between bursts.
    pub idle_trim_after: Option<Duration>,
    /// Consecutive failures on one GPU that open its circuit breaker: requests then go to the
    /// other GPUs, or to the CPU when none is left (default 3).
    pub breaker_threshold: u32,
    /// How long the breaker stays open before one request probes the GPU again (default 30 s).
    pub breaker_cooldown: Duration,
    /// Failures on demand, for testing failover (feature `fault-injection`, for tests only).
    #[cfg(feature = "fault-injection")]
    pub fault_injection: Option<FaultInjection>,
    /// The languages detection may choose (whisper's codes or English names, e.g.
    /// `["zh", "en"]`; default empty: every language the model has). A request without a
    /// language gets the most probable of them; one that asks for a language outside the list is
    /// refused with [`RecognizeError::InvalidOptions`](super::RecognizeError::InvalidOptions).
    /// Every one must be a language the model has a token for
    /// ([`Recognizer::new`](super::Recognizer::new) refuses the configuration otherwise).
    pub detect_languages: Vec<String>,
    /// Where the lanes' whisper contexts run (default [`Isolation::Auto`]: each GPU lane in a
    /// worker process of its own, so that a native failure there is a failover and not the
    /// end of this process; threads on a machine without a GPU lane). See
    /// [`isolation`](super::isolation).
    pub isolation: Isolation,
    /// The program started as a worker process (default `None`: the running executable,
    /// whose `main` must call [`run_worker_if_child`](super::run_worker_if_child) first).
    pub worker_program: Option<WorkerProgram>,
}

impl fmt::Debug for RecognizerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecognizerConfig")
            .field("model_path", &self.model_path)
            .field("use_gpu", &self.use_gpu)
            .field("require_gpu", &self.require_gpu)
            .field("fallback_to_cpu", &self.fallback_to_cpu)
            .field("gpu_device", &self.gpu_device)
            .field("gpu_devices", &self.gpu_devices)
            .field("flash_attn", &self.flash_attn)
            .field("fit_audio_ctx", &self.fit_audio_ctx)
            .field("vad_model", &self.vad_model)
            .field("chunk_states", &self.chunk_states)
            .field("long_audio", &self.long_audio)
            .field("workers", &self.workers)
            .field("threads_per_worker", &self.threads_per_worker)
            .field("cpu_workers", &self.cpu_workers)
            .field("queue_limit", &self.queue_limit)
            .field("default_deadline", &self.default_deadline)
            .field("idle_trim_after", &self.idle_trim_after)
            .field("breaker_threshold", &self.breaker_threshold)
            .field("breaker_cooldown", &self.breaker_cooldown)
            .field("detect_languages", &self.detect_languages)
            .field("isolation", &self.isolation)
            .field("worker_program", &self.worker_program)
            .finish()
    }
}

/// The most GPUs one recognizer drives (lanes are tracked in a 64-bit set, one bit kept for
/// the CPU).
pub const MAX_GPU_DEVICES: usize = 63;

/// Which GPUs a [`Recognizer`](super::Recognizer) uses ([`RecognizerConfig::gpu_devices`]).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum GpuDevices {
    /// The one [`RecognizerConfig::gpu_device`] names (the default).
    #[default]
    Single,
    /// These devices, by ggml's GPU index (0, 1, ...; no repeats, at most
    /// [`MAX_GPU_DEVICES`]).
    List(Vec<i32>),
    /// Every GPU ggml finds in this build on this machine, when the recognizer starts.
    All,
}

impl GpuDevices {
    /// The device indices, given how many GPUs ggml reports (`All` only needs that).
    pub(crate) fn resolve(&self, single: i32, found: usize) -> Vec<i32> {
        match self {
            GpuDevices::Single => vec![single],
            GpuDevices::List(list) => list.clone(),
            GpuDevices::All => (0..found.min(MAX_GPU_DEVICES) as i32).collect(),
        }
    }
}

/// The machine's cores (at least 1).
fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// How a long request (over 30 s, with [`RecognizerConfig::vad_model`] and speech in it) is
/// decoded: in chunks of its speech (pauses shortened, silence left out: faster, but each chunk
/// is decoded without the text before it) or in whisper.cpp's own 30 s windows over the whole
/// recording (speech detection still keeps words out of silence).
///
/// On 24 held-out long recordings (docs/speech.md, "Long recordings"; tiny.en, 2 cores) chunks
/// took 0.79x the windows' time greedy with 3 % more word errors (on the tune recordings 10 %
/// fewer), and 0.96x under beam search of 5 with 8 % more (on the tune recordings 4 % more):
/// so beam search, which is asked for accuracy, keeps the windows by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum LongAudio {
    /// Chunks when the request decodes greedily, whisper.cpp's windows under beam search (the
    /// default).
    #[default]
    ChunksWhenGreedy,
    /// Always chunks (the fastest; the default before beam search was measured).
    Chunks,
    /// Always whisper.cpp's windows.
    Windows,
}

impl LongAudio {
    /// Whether a long request decoding with `beam_size` beams goes in chunks.
    pub fn chunks(self, beam_size: Option<u32>) -> bool {
        match self {
            LongAudio::ChunksWhenGreedy => beam_size.unwrap_or(1) <= 1,
            LongAudio::Chunks => true,
            LongAudio::Windows => false,
        }
    }
}

impl std::str::FromStr for LongAudio {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "chunks_when_greedy" => Ok(LongAudio::ChunksWhenGreedy),
            "chunks" => Ok(LongAudio::Chunks),
            "windows" => Ok(LongAudio::Windows),
            other => Err(format!(
                "unknown long_audio {other:?}: use \"chunks_when_greedy\", \"chunks\" or \"windows\""
            )),
        }
    }
}

/// Frames (20 ms each) of context [`RecognizerConfig::fit_audio_ctx`] adds after the audio.
/// With less, tiny.en repeated the last sentence of short clips (16 and 64 frames were too few
/// in the stress test; 200 were enough there and on every clip measured since).
pub const FIT_AUDIO_CTX_MARGIN: u32 = 200;

/// The encoder context [`RecognizerConfig::fit_audio_ctx`] chooses for `samples` of 16 kHz
/// audio on a model with `n_audio_ctx` positions, or `None` for the full window.
pub fn fitted_audio_ctx(samples: usize, n_audio_ctx: u32) -> Option<u32> {
    // One encoder position is 20 ms: 320 samples.
    let positions = u32::try_from(samples.div_ceil(320)).ok()?;
    let ctx = positions.checked_add(FIT_AUDIO_CTX_MARGIN)?;
    (ctx < n_audio_ctx).then_some(ctx)
}

/// The default number of worker states: one per four cores, between 1 and 4.
///
/// Why: on the CPU, one transcription already uses several cores well (the encoder's matrix
/// products), so more states than cores/4 only split the same cores while multiplying memory
/// (each state holds its own compute buffers: about 150 MB for tiny, over 1 GB for large
/// models); a few states do help, because the decoder of one request scales poorly and
/// overlaps well with the encoder of another. On a GPU, two or more states keep the device busy
/// while one of them does its CPU-side work (spectrogram, sampling); the same number is a sound
/// start there. Measure with your model and raise `workers` if the device stays idle.
pub fn default_workers() -> usize {
    (cores() / 4).clamp(1, 4)
}

impl RecognizerConfig {
    /// The faults to inject: none without feature `fault-injection`.
    pub(crate) fn faults(&self) -> FaultInjection {
        #[cfg(feature = "fault-injection")]
        if let Some(faults) = &self.fault_injection {
            return faults.clone();
        }
        FaultInjection::new()
    }

    /// Whether the attempt at `site` is to fail (never without feature `fault-injection`).
    pub(crate) fn fail_attempt(&self, site: FaultSite) -> bool {
        self.fault_hook(site, |f| f.fail_attempt.as_ref())
    }

    /// Whether the attempt at `site` is to abort its worker process from inside whisper.cpp
    /// (never without feature `fault-injection`).
    pub(crate) fn abort_process(&self, site: FaultSite) -> bool {
        self.fault_hook(site, |f| f.abort_process.as_ref())
    }

    /// What the hook `pick` chooses of the injected faults says of `site` (false without one,
    /// and always without feature `fault-injection`).
    fn fault_hook(
        &self,
        site: FaultSite,
        pick: impl Fn(&FaultInjection) -> Option<&std::sync::Arc<FaultFn>>,
    ) -> bool {
        #[cfg(feature = "fault-injection")]
        if let Some(hook) = self.fault_injection.as_ref().and_then(&pick) {
            return hook(site);
        }
        let _ = (site, pick);
        false
    }

    /// The defaults, for a model file.
    pub fn new(model_path: impl Into<PathBuf>) -> Self {
        let workers = default_workers();
        RecognizerConfig {
            model_path: model_path.into(),
            use_gpu: true,
            require_gpu: false,
            fallback_to_cpu: true,
            gpu_device: 0,
            gpu_devices: GpuDevices::Single,
            flash_attn: false,
            fit_audio_ctx: false,
            vad_model: None,
            chunk_states: 1,
            long_audio: LongAudio::default(),
            workers,
            threads_per_worker: (cores() / workers).max(1),
            cpu_workers: 1,
            queue_limit: 4 * workers,
            default_deadline: None,
            idle_trim_after: None,
            breaker_threshold: 3,
            breaker_cooldown: Duration::from_secs(30),
            #[cfg(feature = "fault-injection")]
            fault_injection: None,
            detect_languages: Vec::new(),
            isolation: Isolation::Auto,
            worker_program: None,
        }
    }

    /// Checks every value's range, as [`Recognizer::new`](super::Recognizer::new) does before
    /// it loads anything (a service can check its configuration with it at start). The error
    /// names the field.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        let bad = |field: &'static str, why: String| Err(InvalidSetting { field, why });
        if self.workers == 0 {
            return bad("workers", "must be at least 1".into());
        }
        if !(1..=64).contains(&self.chunk_states) {
            return bad(
                "chunk_states",
                format!("must be between 1 and 64 (got {})", self.chunk_states),
            );
        }
        if !(1..=512).contains(&self.threads_per_worker) {
            return bad(
                "threads_per_worker",
                format!(
                    "must be between 1 and 512 (got {})",
                    self.threads_per_worker
                ),
            );
        }
        if self.require_gpu && !self.use_gpu {
            return bad("require_gpu", "needs use_gpu".into());
        }
        if self.use_gpu && self.fallback_to_cpu && self.cpu_workers == 0 {
            return bad(
                "cpu_workers",
                "must be at least 1 when use_gpu and fallback_to_cpu are set".into(),
            );
        }
        if self.breaker_threshold == 0 {
            return bad("breaker_threshold", "must be at least 1".into());
        }
        if self.gpu_device < 0 {
            return bad(
                "gpu_device",
                format!("must not be negative (got {})", self.gpu_device),
            );
        }
        if let GpuDevices::List(list) = &self.gpu_devices {
            if list.is_empty() {
                return bad("gpu_devices", "must name at least one device".into());
            }
            if list.len() > MAX_GPU_DEVICES {
                return bad(
                    "gpu_devices",
                    format!(
                        "names {} devices; at most {MAX_GPU_DEVICES} are supported",
                        list.len()
                    ),
                );
            }
            if let Some(d) = list.iter().find(|d| **d < 0) {
                return bad(
                    "gpu_devices",
                    format!("must not hold a negative index (got {d})"),
                );
            }
            for (i, d) in list.iter().enumerate() {
                if list[..i].contains(d) {
                    return bad("gpu_devices", format!("names device {d} twice"));
                }
            }
        }
        if self.default_deadline.is_some_and(|d| d.is_zero()) {
            return bad("default_deadline", "must be longer than zero".into());
        }
        if self.idle_trim_after.is_some_and(|d| d.is_zero()) {
            return bad("idle_trim_after", "must be longer than zero".into());
        }
        for name in &self.detect_languages {
            if !matches!(super::language::parse_language(name), Ok(Some(_))) {
                return bad(
                    "detect_languages",
                    format!("{name:?} is not a language whisper knows (use codes such as \"en\")"),
                );
            }
        }
        Ok(())
    }
}

/// A [`RecognizerConfig`] value out of range ([`RecognizerConfig::validate`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct InvalidSetting {
    /// The field (`"workers"`, `"gpu_devices"`, ...).
    pub field: &'static str,
    /// What is wrong with it (`"must be at least 1"`).
    pub why: String,
}

impl fmt::Display for InvalidSetting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.field, self.why)
    }
}

impl std::error::Error for InvalidSetting {}

/// whisper.cpp's limit on decoders (beams): the most [`RecognizeOptions::beam_size`] may ask
/// for.
pub const MAX_BEAMS: u32 = 8;

/// The candidates greedy decoding samples when the temperature fallback runs (whisper's
/// `best_of`, as in OpenAI's whisper and whisper.cpp's CLI).
const GREEDY_BEST_OF: i32 = 5;

/// What one request asks for. The default transcribes in the spoken language (English on
/// English-only models) with greedy decoding and whisper's temperature fallback.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct RecognizeOptions {
    /// The spoken language as whisper's code (`"en"`, `"de"`, ...), or `None`/`"auto"` to
    /// detect it.
    pub language: Option<String>,
    /// Translate into English.
    pub translate: bool,
    /// Beam search with this many beams (1 to 8); `None` or 1 decodes greedily.
    pub beam_size: Option<u32>,
    /// The initial decoding temperature (0.0 to 1.0; default 0.0). Higher values sample.
    pub temperature: Option<f32>,
    /// Text that precedes the audio, to steer spelling and style.
    pub initial_prompt: Option<String>,
    /// Compute per-token timestamps.
    pub token_timestamps: bool,
    /// The encoder's context in 20 ms frames (whisper.cpp's `audio_ctx`, at most the model's
    /// 1500). `None` leaves the choice to [`RecognizerConfig::fit_audio_ctx`] (the clip plus a
    /// margin for clips under 26 s, otherwise the full 30 s window, as whisper was trained). A
    /// value applies to every 30 s window of the request, so one smaller than the audio cuts it.
    pub audio_ctx: Option<u32>,
    /// `Some(false)` runs this request on the CPU even when the recognizer has a GPU (needs
    /// `fallback_to_cpu`); `None` or `Some(true)` uses the recognizer's main backend.
    pub use_gpu: Option<bool>,
    /// Give up after this long, counted from submission (overrides the recognizer's
    /// `default_deadline`).
    pub deadline: Option<Duration>,
    /// The seed of the random generators that sample when decoding runs at a temperature above
    /// 0: the temperature fallback (when greedy decoding of a window fails whisper's checks) or
    /// a [`temperature`](Self::temperature) above 0 (default 0). Every request starts from it,
    /// so the same audio with the same options gives the same text on any worker of the same
    /// backend, whatever ran there before; another seed may sample other words.
    pub seed: u32,
    /// Keep whisper's sound descriptions (`[Music]`, `(wind howling)`, `[BLANK_AUDIO]`) and
    /// transcribe audio in which the speech detector finds no speech, as whisper alone would
    /// (default `false`: the [speech guard](super::speech) answers such audio with no words and
    /// suppresses non-speech tokens). For subtitles that describe sounds.
    pub sound_tags: bool,
}

impl RecognizeOptions {
    /// The defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// The same, with a language.
    pub fn language(mut self, language: impl Into<String>) -> Self {
        self.language = Some(language.into());
        self
    }

    /// The same, with a deadline.
    pub fn deadline(mut self, deadline: Duration) -> Self {
        self.deadline = Some(deadline);
        self
    }

    /// The checks that need no model: a language whisper knows (its code or its English name,
    /// in any case; or `auto`), at most [`MAX_BEAMS`] beams, a temperature from 0 to 1, a
    /// prompt without NUL, a deadline longer than zero. [`Recognizer::submit`](super::Recognizer::submit)
    /// runs them with those that need the model; a service can run them on its configured
    /// defaults at start. The error names the option first (`beam_size must be ...`).
    ///
    /// A prompt of any length is accepted: whisper conditions on at most the last
    /// `n_text_ctx / 2 - 1` tokens of it (223 for every released model), so a longer one is
    /// tokenized and cut to its last tokens, as whisper and OpenAI's API do.
    pub fn check(&self) -> Result<(), RecognizeError> {
        let invalid = |message: String| Err(RecognizeError::InvalidOptions(message));
        self.language_asked()?;
        if let Some(beams) = self.beam_size {
            if !(1..=MAX_BEAMS).contains(&beams) {
                return invalid(format!(
                    "beam_size must be between 1 and {MAX_BEAMS} (got {beams})"
                ));
            }
        }
        if let Some(t) = self.temperature {
            if !(0.0..=1.0).contains(&t) {
                return invalid(format!("temperature must be between 0.0 and 1.0 (got {t})"));
            }
        }
        if self
            .initial_prompt
            .as_deref()
            .is_some_and(|p| p.contains('\0'))
        {
            return invalid("initial_prompt contains a NUL character".into());
        }
        if self.deadline.is_some_and(|d| d.is_zero()) {
            return invalid("deadline must be longer than zero".into());
        }
        Ok(())
    }

    /// The encoder context for `samples` of audio on a model with `n_audio_ctx` positions:
    /// [`audio_ctx`](Self::audio_ctx) when set, else the fitted one when the recognizer has
    /// [`fit_audio_ctx`](RecognizerConfig::fit_audio_ctx), else `None` (the full window).
    pub(crate) fn audio_ctx_for(&self, samples: usize, n_audio_ctx: u32, fit: bool) -> Option<u32> {
        self.audio_ctx.or_else(|| {
            fit.then(|| fitted_audio_ctx(samples, n_audio_ctx))
                .flatten()
        })
    }

    /// whisper.cpp's parameters for this request: the one place where options become
    /// [`FullParams`](crate::FullParams), for every worker and chunk. `language` is
    /// [`language_on`](Self::language_on)'s, `audio_ctx` [`audio_ctx_for`](Self::audio_ctx_for)'s;
    /// callbacks are the caller's to add.
    pub(crate) fn full_params(
        &self,
        language: RunLanguage,
        threads: usize,
        audio_ctx: Option<u32>,
    ) -> crate::FullParams<'static, 'static> {
        let strategy = match self.beam_size {
            Some(beams) if beams > 1 => crate::SamplingStrategy::BeamSearch {
                beam_size: beams.min(MAX_BEAMS) as i32,
                patience: -1.0,
            },
            _ => crate::SamplingStrategy::Greedy {
                best_of: GREEDY_BEST_OF,
            },
        };
        let mut params = crate::FullParams::new(strategy);
        params.set_n_threads(threads.min(i32::MAX as usize) as i32);
        params.set_language(Some(language.code));
        params.set_detect_languages(&language.detect_ids());
        params.set_translate(self.translate);
        // Requests are independent: no text of an earlier request may steer this one, and
        // every request samples from its own seed.
        params.set_no_context(true);
        params.set_seed(self.seed);
        params.set_print_progress(false);
        params.set_print_realtime(false);
        params.set_print_special(false);
        params.set_print_timestamps(false);
        params.set_token_timestamps(self.token_timestamps);
        // Sound descriptions are not words (OpenAI whisper suppresses them by default too).
        params.set_suppress_nst(!self.sound_tags);
        if let Some(frames) = audio_ctx {
            params.set_audio_ctx(frames.min(i32::MAX as u32) as i32);
        }
        if let Some(t) = self.temperature {
            params.set_temperature(t);
        }
        if let Some(prompt) = &self.initial_prompt {
            params.set_initial_prompt(prompt);
        }
        params
    }
}
