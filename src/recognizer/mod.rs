//! The concurrency layer: a [`Recognizer`] serves many concurrent requests correctly.
//!
//! One model ([`WhisperContext`]) is shared by N worker threads, each with its own
//! [`WhisperState`](crate::WhisperState) (its own buffers and, with CUDA, its own backend and
//! memory pool), so no two requests ever share a state. Requests wait in a bounded queue: when
//! it is full, [`Recognizer::submit`] refuses at once with [`RecognizeError::Overloaded`]
//! instead of letting memory and latency grow. Each request may carry a deadline and can be
//! cancelled; both stop a running transcription through whisper.cpp's abort callback.
//!
//! With `use_gpu`, the main workers run on the GPU. If no GPU context can be created and
//! `fallback_to_cpu` is set, the recognizer runs on the CPU and says so once in the log; if a
//! GPU transcription fails, the request is retried on a CPU worker, and after
//! `breaker_threshold` consecutive GPU failures requests go to the CPU for `breaker_cooldown`
//! (a circuit breaker). [`Recognizer::health`] reports all of it; it never resets a device.
//!
//! Results are owned [`Transcript`]s. A [`Ticket`] is waited on with [`Ticket::wait`] or
//! `.await`ed: the worker threads drive it, so async code needs no `spawn_blocking`.
//!
//! ```no_run
//! use whisper_steady::recognizer::{RecognizeOptions, Recognizer, RecognizerConfig};
//!
//! let mut config = RecognizerConfig::new("ggml-base.en.bin");
//! config.workers = 2;
//! let recognizer = Recognizer::new(config)?;
//! let audio: Vec<f32> = vec![0.0; 16_000]; // 16 kHz mono
//! let transcript = recognizer.transcribe(audio, RecognizeOptions::new())?;
//! println!("{}", transcript.text);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod breaker;
mod chunk;
mod config;
mod error;
mod health;
mod ticket;
mod transcript;
mod worker;

pub use breaker::BreakerState;
pub use config::{
    default_workers, fitted_audio_ctx, Backend, FaultFn, FaultInjection, FaultSite,
    RecognizeOptions, RecognizerConfig, FIT_AUDIO_CTX_MARGIN,
};
pub use error::{RecognizeError, RecognizerError};
pub use health::{
    devices, CleanupHealth, DeviceInfo, FailoverHealth, Health, HealthStatus, LaneHealth,
    RequestCounters,
};
pub use ticket::Ticket;
pub use transcript::{Segment, Timings, Token, Transcript};

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::{WhisperContext, WhisperContextParameters, WhisperError};
use breaker::Breaker;
use ticket::Slot;

/// Longest audio accepted: whisper.cpp counts samples in a C `int`.
const MAX_SAMPLES: usize = i32::MAX as usize;

/// whisper.cpp's limit on decoders (beams).
const MAX_BEAMS: u32 = 8;

/// A pool of worker states over one shared model, with a bounded queue, deadlines,
/// cancellation and GPU→CPU failover. Cheap to clone: clones share the workers. The last clone
/// to be dropped shuts the recognizer down (see [`shutdown`](Self::shutdown)).
#[derive(Clone)]
pub struct Recognizer {
    owner: Arc<Owner>,
}

/// Joins the workers when the last handle goes.
struct Owner {
    shared: Arc<Shared>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl Drop for Owner {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl Owner {
    fn shutdown(&self) {
        self.shared.close();
        let threads = std::mem::take(&mut *lock(&self.threads));
        for thread in threads {
            // A worker that panicked has already failed its request; nothing more to do.
            let _ = thread.join();
        }
    }
}

/// A group of workers on one backend, sharing one model.
pub(crate) struct Lane {
    pub(crate) backend: Backend,
    pub(crate) ctx: Arc<WhisperContext>,
    pub(crate) workers: usize,
    pub(crate) busy: AtomicUsize,
    pub(crate) succeeded: AtomicU64,
    pub(crate) failed: AtomicU64,
}

/// A request on its way through the queue.
pub(crate) struct Job {
    pub(crate) id: u64,
    pub(crate) audio: Vec<f32>,
    pub(crate) options: RecognizeOptions,
    pub(crate) language: String,
    pub(crate) slot: Arc<Slot>,
    pub(crate) submitted: Instant,
    pub(crate) deadline: Option<(Instant, Duration)>,
    pub(crate) enqueued: Instant,
    pub(crate) timings: Timings,
    pub(crate) retried_on_cpu: bool,
}

#[derive(Default)]
pub(crate) struct Queues {
    /// Index 0: the main lane; 1: the CPU fallback lane.
    pub(crate) lanes: [VecDeque<Job>; 2],
    pub(crate) closed: bool,
    /// Since when nothing has been queued or running, for `idle_trim_after`: `None` while busy,
    /// before the first request, and once this idle period's trim has run.
    pub(crate) idle_since: Option<Instant>,
}

#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) submitted: AtomicU64,
    pub(crate) rejected: AtomicU64,
    pub(crate) completed: AtomicU64,
    pub(crate) failed: AtomicU64,
    pub(crate) deadline: AtomicU64,
    pub(crate) cancelled: AtomicU64,
    pub(crate) gpu_failures: AtomicU64,
    pub(crate) retried: AtomicU64,
    pub(crate) diverted: AtomicU64,
    pub(crate) trims: AtomicU64,
    pub(crate) idle_trims: AtomicU64,
    pub(crate) bytes_trimmed: AtomicU64,
}

/// Everything the workers and the handles share.
pub(crate) struct Shared {
    pub(crate) config: RecognizerConfig,
    /// Index 0: main; 1: the CPU fallback lane, when the main lane is a GPU.
    pub(crate) lanes: Vec<Lane>,
    pub(crate) queues: Mutex<Queues>,
    pub(crate) ready: [Condvar; 2],
    pub(crate) breaker: Mutex<Breaker>,
    pub(crate) counters: Counters,
    pub(crate) gpu_unavailable: Option<String>,
    pub(crate) next_id: AtomicU64,
    pub(crate) started: Instant,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section here leaves its data consistent at each step, so a panic in one
    // (there should be none) must not take the recognizer down with poisoning.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A VAD context for one worker: on the CPU, one thread (it runs beside the transcription).
fn load_vad(path: &std::path::Path) -> Result<crate::WhisperVadContext, RecognizerError> {
    let mut params = crate::WhisperVadContextParams::new();
    params.set_n_threads(1);
    params.set_use_gpu(false);
    let error = |error| RecognizerError::VadModelLoad {
        path: path.to_owned(),
        error,
    };
    let text = path.to_str().ok_or(error(WhisperError::InvalidUtf8 {
        error_len: None,
        valid_up_to: 0,
    }))?;
    crate::WhisperVadContext::new(text, params).map_err(error)
}

fn load_context(config: &RecognizerConfig, gpu: bool) -> Result<Arc<WhisperContext>, WhisperError> {
    let mut params = WhisperContextParameters::default();
    params.use_gpu(gpu);
    params.gpu_device(config.gpu_device);
    params.flash_attn(config.flash_attn);
    WhisperContext::new_with_params(&config.model_path, params).map(Arc::new)
}

impl Recognizer {
    /// Loads the model, creates the worker states and starts their threads.
    pub fn new(config: RecognizerConfig) -> Result<Self, RecognizerError> {
        crate::install_abort_report();
        config.validate().map_err(RecognizerError::InvalidConfig)?;
        if !config.model_path.is_file() {
            return Err(RecognizerError::ModelLoad {
                path: config.model_path.clone(),
                error: WhisperError::InitError,
            });
        }
        let faults = config.fault_injection.clone().unwrap_or_default();

        // The main lane: the GPU when wanted and possible, else the CPU.
        let mut gpu_unavailable = None;
        let mut main = None;
        if config.use_gpu {
            let attempt = if faults.fail_gpu_context {
                Err("GPU context creation failed (injected fault)".to_owned())
            } else if faults.simulate_gpu {
                load_context(&config, true).map_err(|e| e.to_string())
            } else if !health::has_gpu_device() {
                Err("no GPU device in this build or on this machine".to_owned())
            } else {
                load_context(&config, true).map_err(|e| format!("GPU context: {e}"))
            };
            match attempt {
                Ok(ctx) => main = Some((Backend::Gpu, ctx)),
                Err(reason) if config.fallback_to_cpu => {
                    log::warn!(
                        target: "whisper_steady::recognizer",
                        "use_gpu is set but the GPU is unavailable ({reason}); running on the CPU"
                    );
                    gpu_unavailable = Some(reason);
                }
                Err(reason) => return Err(RecognizerError::GpuUnavailable { reason }),
            }
        }
        let (main_backend, main_ctx) = match main {
            Some(main) => main,
            None => (
                Backend::Cpu,
                load_context(&config, false).map_err(|error| RecognizerError::ModelLoad {
                    path: config.model_path.clone(),
                    error,
                })?,
            ),
        };

        let mut lanes = vec![Lane::new(main_backend, main_ctx, config.workers)];
        if main_backend == Backend::Gpu && config.fallback_to_cpu {
            let ctx = load_context(&config, false).map_err(|error| RecognizerError::ModelLoad {
                path: config.model_path.clone(),
                error,
            })?;
            lanes.push(Lane::new(Backend::Cpu, ctx, config.cpu_workers));
        }

        // Every state is created before any thread starts, so a failure leaves nothing behind.
        let mut states = Vec::new();
        for (index, lane) in lanes.iter().enumerate() {
            for worker in 0..lane.workers {
                let state =
                    lane.ctx
                        .create_state()
                        .map_err(|error| RecognizerError::StateInit {
                            backend: lane.backend,
                            error,
                        })?;
                let vad = config.vad_model.as_deref().map(load_vad).transpose()?;
                let work = worker::Workspace {
                    state,
                    helpers: Vec::new(),
                    vad,
                };
                states.push((index, worker, work));
            }
        }

        let shared = Arc::new(Shared {
            breaker: Mutex::new(Breaker::new(
                config.breaker_threshold,
                config.breaker_cooldown,
            )),
            config,
            lanes,
            queues: Mutex::new(Queues::default()),
            ready: [Condvar::new(), Condvar::new()],
            counters: Counters::default(),
            gpu_unavailable,
            next_id: AtomicU64::new(1),
            started: Instant::now(),
        });
        let owner = Owner {
            shared: Arc::clone(&shared),
            threads: Mutex::new(Vec::new()),
        };
        for (lane, worker, state) in states {
            let shared = Arc::clone(&shared);
            let name = format!("whisper-{}-{worker}", shared.lanes[lane].backend);
            let thread = std::thread::Builder::new()
                .name(name)
                .spawn(move || worker::run(shared, lane, worker, state))
                .map_err(RecognizerError::Spawn)?; // Owner's drop stops the ones started
            lock(&owner.threads).push(thread);
        }
        Ok(Recognizer {
            owner: Arc::new(owner),
        })
    }

    fn shared(&self) -> &Shared {
        &self.owner.shared
    }

    /// Queues a request and returns its [`Ticket`] at once. `audio` is 16 kHz mono PCM in
    /// [-1, 1]. Fails at once, queuing nothing, when the audio or options are invalid, when
    /// `queue_limit` requests are already waiting ([`RecognizeError::Overloaded`]), or during
    /// shutdown.
    pub fn submit(
        &self,
        audio: Vec<f32>,
        options: RecognizeOptions,
    ) -> Result<Ticket, RecognizeError> {
        let shared = self.shared();
        let language = validate(shared, &audio, &options)?;
        let submitted = Instant::now();
        let deadline = options
            .deadline
            .or(shared.config.default_deadline)
            .and_then(|d| submitted.checked_add(d).map(|at| (at, d)));
        let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
        let slot = Arc::new(Slot::default());
        let job = Job {
            id,
            audio,
            options,
            language,
            slot: Arc::clone(&slot),
            submitted,
            deadline,
            enqueued: submitted,
            timings: Timings::default(),
            retried_on_cpu: false,
        };

        let mut queues = lock(&shared.queues);
        if queues.closed {
            return Err(RecognizeError::ShuttingDown);
        }
        let waiting: usize = queues.lanes.iter().map(VecDeque::len).sum();
        if waiting >= shared.config.queue_limit {
            drop(queues);
            shared.counters.rejected.fetch_add(1, Ordering::Relaxed);
            return Err(RecognizeError::Overloaded {
                queue_limit: shared.config.queue_limit,
            });
        }
        let lane = shared.route(&job)?;
        queues.lanes[lane].push_back(job);
        queues.idle_since = None;
        drop(queues);
        shared.counters.submitted.fetch_add(1, Ordering::Relaxed);
        shared.ready[lane].notify_one();
        Ok(Ticket::new(id, slot))
    }

    /// Submits and waits: the blocking form of [`submit`](Self::submit). Do not call it on an
    /// async executor thread; `.await` [`transcribe_async`](Self::transcribe_async) there.
    pub fn transcribe(
        &self,
        audio: Vec<f32>,
        options: RecognizeOptions,
    ) -> Result<Transcript, RecognizeError> {
        self.submit(audio, options)?.wait()
    }

    /// Submits and awaits, without blocking the executor.
    pub async fn transcribe_async(
        &self,
        audio: Vec<f32>,
        options: RecognizeOptions,
    ) -> Result<Transcript, RecognizeError> {
        self.submit(audio, options)?.await
    }

    /// The backend of the main workers.
    pub fn main_backend(&self) -> Backend {
        self.shared().lanes[0].backend
    }

    /// The shared model of the main workers (to query its vocabulary, say).
    pub fn context(&self) -> &Arc<WhisperContext> {
        &self.shared().lanes[0].ctx
    }

    /// The configuration it was built with.
    pub fn config(&self) -> &RecognizerConfig {
        &self.shared().config
    }

    /// A snapshot of workers, queue, failover, devices and CUDA pools. Only reads.
    pub fn health(&self) -> Health {
        self.shared().health()
    }

    /// Returns the device memory that the CUDA pools hold and nobody uses to the driver
    /// ([`cuda::trim`](crate::cuda::trim)): requests running now keep theirs, later ones map
    /// what they need again (a cost of milliseconds). Counted in
    /// [`Health::cleanup`]. On a build without CUDA it does nothing and says so
    /// ([`TrimReport::cuda_available`](crate::cuda::TrimReport::cuda_available) is false).
    ///
    /// Whisper's own buffers (model weights, each state's compute buffers) are not pool memory
    /// and stay: they are what the next request needs at once.
    pub fn trim(&self) -> crate::cuda::TrimReport {
        self.shared().trim(false)
    }

    /// Stops taking requests ([`RecognizeError::ShuttingDown`]), lets the workers finish
    /// every request already queued or running, and waits for them. Other clones see the
    /// recognizer shut down too. Dropping the last clone does the same.
    pub fn shutdown(&self) {
        self.owner.shutdown();
    }
}

impl std::fmt::Debug for Recognizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shared = self.shared();
        f.debug_struct("Recognizer")
            .field("main_backend", &shared.lanes[0].backend)
            .field("lanes", &shared.lanes.len())
            .field("config", &shared.config)
            .finish()
    }
}

impl Lane {
    fn new(backend: Backend, ctx: Arc<WhisperContext>, workers: usize) -> Self {
        Lane {
            backend,
            ctx,
            workers,
            busy: AtomicUsize::new(0),
            succeeded: AtomicU64::new(0),
            failed: AtomicU64::new(0),
        }
    }
}

/// Checks a request before it is queued; returns the language to pass to whisper.cpp.
fn validate(
    shared: &Shared,
    audio: &[f32],
    options: &RecognizeOptions,
) -> Result<String, RecognizeError> {
    if audio.is_empty() {
        return Err(RecognizeError::InvalidAudio("no samples".into()));
    }
    if audio.len() > MAX_SAMPLES {
        return Err(RecognizeError::InvalidAudio(format!(
            "{} samples is more than whisper.cpp accepts ({MAX_SAMPLES})",
            audio.len()
        )));
    }
    if let Some(i) = audio.iter().position(|s| !s.is_finite()) {
        return Err(RecognizeError::InvalidAudio(format!(
            "sample {i} is not a finite number"
        )));
    }
    let multilingual = shared.lanes[0].ctx.is_multilingual();
    let language = match options.language.as_deref().map(str::trim) {
        None | Some("") | Some("auto") => {
            if multilingual {
                "auto".to_owned()
            } else {
                "en".to_owned()
            }
        }
        Some(code) => {
            let code = code.to_ascii_lowercase();
            if crate::get_lang_id(&code).is_none() {
                return Err(RecognizeError::InvalidOptions(format!(
                    "language {code:?} is not one whisper knows (use a code such as \"en\", or \"auto\")"
                )));
            }
            if !multilingual && code != "en" {
                return Err(RecognizeError::InvalidOptions(format!(
                    "language {code:?}: the model is English-only"
                )));
            }
            code
        }
    };
    if options.translate && !multilingual {
        return Err(RecognizeError::InvalidOptions(
            "translate: the model is English-only".into(),
        ));
    }
    if let Some(beams) = options.beam_size {
        if !(1..=MAX_BEAMS).contains(&beams) {
            return Err(RecognizeError::InvalidOptions(format!(
                "beam_size must be between 1 and {MAX_BEAMS} (got {beams})"
            )));
        }
    }
    if let Some(t) = options.temperature {
        if !(0.0..=1.0).contains(&t) {
            return Err(RecognizeError::InvalidOptions(format!(
                "temperature must be between 0.0 and 1.0 (got {t})"
            )));
        }
    }
    if let Some(frames) = options.audio_ctx {
        let max = shared.lanes[0].ctx.n_audio_ctx().max(1) as u32;
        if !(1..=max).contains(&frames) {
            return Err(RecognizeError::InvalidOptions(format!(
                "audio_ctx must be between 1 and {max} frames (got {frames})"
            )));
        }
    }
    if let Some(prompt) = &options.initial_prompt {
        if prompt.contains('\0') {
            return Err(RecognizeError::InvalidOptions(
                "initial_prompt contains a NUL character".into(),
            ));
        }
    }
    if options.deadline.is_some_and(|d| d.is_zero()) {
        return Err(RecognizeError::InvalidOptions(
            "deadline must be longer than zero".into(),
        ));
    }
    if options.use_gpu == Some(false) && shared.cpu_lane().is_none() {
        return Err(RecognizeError::InvalidOptions(
            "use_gpu=false: this recognizer has no CPU workers (set fallback_to_cpu)".into(),
        ));
    }
    Ok(language)
}

impl Shared {
    /// The index of the lane that runs on the CPU, if any.
    pub(crate) fn cpu_lane(&self) -> Option<usize> {
        self.lanes.iter().position(|l| l.backend == Backend::Cpu)
    }

    /// Picks the lane for a new request (called with the queue locked).
    fn route(&self, job: &Job) -> Result<usize, RecognizeError> {
        if self.lanes[0].backend == Backend::Cpu {
            return Ok(0);
        }
        let cpu = self.cpu_lane();
        if job.options.use_gpu == Some(false) {
            return cpu.ok_or(RecognizeError::InvalidOptions(
                "use_gpu=false without CPU workers".into(),
            ));
        }
        let Some(cpu) = cpu else { return Ok(0) };
        let mut breaker = lock(&self.breaker);
        let now = Instant::now();
        if breaker.allow(now) {
            Ok(0)
        } else {
            self.counters.diverted.fetch_add(1, Ordering::Relaxed);
            Ok(cpu)
        }
    }

    /// Runs a trim and counts it.
    pub(crate) fn trim(&self, idle: bool) -> crate::cuda::TrimReport {
        let report = crate::cuda::trim();
        self.counters.trims.fetch_add(1, Ordering::Relaxed);
        if idle {
            self.counters.idle_trims.fetch_add(1, Ordering::Relaxed);
        }
        self.counters
            .bytes_trimmed
            .fetch_add(report.bytes_released, Ordering::Relaxed);
        if report.bytes_released > 0 {
            log::info!(
                target: "whisper_steady::recognizer",
                "{} trim: {} bytes of CUDA pool memory returned to the driver ({} pools)",
                if idle { "idle" } else { "requested" },
                report.bytes_released,
                report.pools
            );
        }
        report
    }

    /// Refuses new requests and wakes every worker so that they drain their queue and stop.
    fn close(&self) {
        lock(&self.queues).closed = true;
        for ready in &self.ready {
            ready.notify_all();
        }
    }

    fn health(&self) -> Health {
        let now = Instant::now();
        let (queued, closed) = {
            let q = lock(&self.queues);
            ([q.lanes[0].len(), q.lanes[1].len()], q.closed)
        };
        let (breaker, consecutive, trips) = {
            let b = lock(&self.breaker);
            (b.state(now), b.consecutive_failures(), b.trips())
        };
        let has_gpu_lane = self.lanes[0].backend == Backend::Gpu;
        let breaker = if has_gpu_lane {
            breaker
        } else {
            BreakerState::Closed
        };
        let lanes: Vec<LaneHealth> = self
            .lanes
            .iter()
            .enumerate()
            .map(|(i, lane)| {
                let busy = lane.busy.load(Ordering::Relaxed).min(lane.workers);
                LaneHealth {
                    backend: lane.backend,
                    workers: lane.workers,
                    busy,
                    idle: lane.workers - busy,
                    queued: queued[i],
                    succeeded: lane.succeeded.load(Ordering::Relaxed),
                    failed: lane.failed.load(Ordering::Relaxed),
                }
            })
            .collect();
        let c = &self.counters;
        let status = if closed {
            HealthStatus::ShuttingDown
        } else if self.gpu_unavailable.is_some() || breaker != BreakerState::Closed {
            HealthStatus::Degraded
        } else {
            HealthStatus::Ok
        };
        Health {
            status,
            main_backend: self.lanes[0].backend,
            devices: devices(),
            pool: crate::cuda::pool_stats(),
            lanes,
            queue_depth: queued.iter().sum(),
            queue_limit: self.config.queue_limit,
            failover: FailoverHealth {
                use_gpu: self.config.use_gpu,
                fallback_to_cpu: self.config.fallback_to_cpu,
                gpu_unavailable: self.gpu_unavailable.clone(),
                breaker,
                consecutive_gpu_failures: consecutive,
                gpu_failures: c.gpu_failures.load(Ordering::Relaxed),
                retried_on_cpu: c.retried.load(Ordering::Relaxed),
                diverted_to_cpu: c.diverted.load(Ordering::Relaxed),
                breaker_trips: trips,
            },
            cleanup: CleanupHealth {
                trims: c.trims.load(Ordering::Relaxed),
                idle_trims: c.idle_trims.load(Ordering::Relaxed),
                bytes_released: c.bytes_trimmed.load(Ordering::Relaxed),
                idle_trim_after: self.config.idle_trim_after,
            },
            requests: RequestCounters {
                submitted: c.submitted.load(Ordering::Relaxed),
                rejected_overloaded: c.rejected.load(Ordering::Relaxed),
                completed: c.completed.load(Ordering::Relaxed),
                failed: c.failed.load(Ordering::Relaxed),
                deadline_exceeded: c.deadline.load(Ordering::Relaxed),
                cancelled: c.cancelled.load(Ordering::Relaxed),
            },
            model: self.config.model_path.display().to_string(),
            version: env!("CARGO_PKG_VERSION"),
            whisper_cpp_version: crate::WHISPER_CPP_VERSION,
            uptime: now - self.started,
        }
    }
}
