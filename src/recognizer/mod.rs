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
mod faults;
mod health;
pub mod isolation;
mod lanes;
mod language;
mod render;
mod reservation;
pub mod speech;
mod stream;
mod ticket;
mod transcript;
mod trim;
mod validate;
mod worker;

/// The device list, re-exported where it was first published (it lives in [`crate::device`]).
pub use crate::device::{devices, DeviceInfo};
pub use breaker::BreakerState;
pub use config::{
    default_workers, fitted_audio_ctx, Backend, GpuDevices, InvalidSetting, LongAudio,
    RecognizeOptions, RecognizerConfig, FIT_AUDIO_CTX_MARGIN, MAX_BEAMS, MAX_GPU_DEVICES,
};
pub use error::{RecognizeError, RecognizerError};
#[cfg(feature = "fault-injection")]
pub use faults::{FaultFn, FaultInjection, FaultSite};
pub use health::{
    CleanupHealth, FailoverHealth, Health, HealthStatus, LaneHealth, RequestCounters,
    UnavailableDevice,
};
pub use isolation::{run_worker_if_child, Isolation, WorkerProcessHealth, WorkerProgram};
pub use render::{seconds, subtitle_timestamp};
pub use reservation::Reservation;
pub use stream::{DecodedSegment, SegmentFn};
pub use ticket::Ticket;
pub use transcript::{Segment, Timings, Token, Transcript, Word};

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::{WhisperContext, WhisperError};
use lanes::{gpu_lanes, load_context, main_lane, Lane, LaneKind};
use ticket::Slot;

/// Longest audio accepted: whisper.cpp counts samples in a C `int`.
const MAX_SAMPLES: usize = i32::MAX as usize;

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
        // Their workers are done: the worker processes may go.
        for lane in &self.shared.lanes {
            if let Some(process) = &lane.process {
                process.close();
            }
        }
    }
}

/// A request on its way through the queue.
pub(crate) struct Job {
    pub(crate) id: u64,
    pub(crate) audio: Vec<f32>,
    pub(crate) options: RecognizeOptions,
    /// The language whisper.cpp runs it in ([`RecognizeOptions::language_on`]).
    pub(crate) language: language::RunLanguage,
    pub(crate) slot: Arc<Slot>,
    pub(crate) submitted: Instant,
    pub(crate) deadline: Option<(Instant, Duration)>,
    pub(crate) enqueued: Instant,
    pub(crate) timings: Timings,
    pub(crate) retried_on_cpu: bool,
    /// The lanes (bit `1 << index`) whose attempt at it failed, so that a retry goes elsewhere.
    pub(crate) tried: u64,
    /// Times a worker process died running it (it is run once more on its lane after one).
    pub(crate) deaths: u32,
    /// Where its segments go as they are decoded ([`Recognizer::submit_streaming`]).
    pub(crate) segments: Option<Arc<Mutex<stream::Emitter>>>,
}

pub(crate) struct Queues {
    /// One queue per lane, in the order of [`Shared::lanes`].
    pub(crate) lanes: Vec<VecDeque<Job>>,
    pub(crate) closed: bool,
    /// Places held by [`Reservation`]s: counted against the queue limit with the queued.
    pub(crate) reserved: usize,
    /// Since when nothing has been queued or running, for `idle_trim_after`: `None` while busy,
    /// before the first request, and once this idle period's trim has run.
    pub(crate) idle_since: Option<Instant>,
}

impl Queues {
    /// Whether `limit` requests are waiting or reserved.
    fn is_full(&self, limit: usize) -> bool {
        self.lanes.iter().map(VecDeque::len).sum::<usize>() + self.reserved >= limit
    }
}

/// How a request gets its place in the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admission {
    /// It asks for one as it is submitted: refused when the queue is full.
    Ask,
    /// A [`Reservation`] holds one for it.
    Reserved,
}

#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) submitted: AtomicU64,
    pub(crate) rejected: AtomicU64,
    pub(crate) completed: AtomicU64,
    pub(crate) failed: AtomicU64,
    pub(crate) invalid: AtomicU64,
    pub(crate) deadline: AtomicU64,
    pub(crate) cancelled: AtomicU64,
    pub(crate) gpu_failures: AtomicU64,
    pub(crate) retried: AtomicU64,
    pub(crate) retried_on_gpu: AtomicU64,
    pub(crate) diverted: AtomicU64,
    pub(crate) trims: AtomicU64,
    pub(crate) idle_trims: AtomicU64,
    pub(crate) bytes_trimmed: AtomicU64,
}

/// Everything the workers and the handles share.
pub(crate) struct Shared {
    pub(crate) config: RecognizerConfig,
    /// The isolation in effect: `Process` when a lane runs in a worker process.
    pub(crate) isolation: Isolation,
    /// The languages of the model and the allow-list of detection, read once at start.
    pub(crate) languages: language::LanguageRules,
    /// The GPU lanes in the order of `gpu_devices`, then the CPU lane when there is one (the
    /// first lane is the main one).
    pub(crate) lanes: Vec<Lane>,
    pub(crate) queues: Mutex<Queues>,
    /// One per lane: its workers wait on it for requests.
    pub(crate) ready: Vec<Condvar>,
    pub(crate) counters: Counters,
    /// Why no GPU lane runs although `use_gpu` is set.
    pub(crate) gpu_unavailable: Option<String>,
    /// Whether running without a GPU lane is a degradation: a GPU was required, or one is
    /// there but could not be used (not when the build or the machine has none).
    pub(crate) gpu_absence_degrades: bool,
    /// The configured GPUs left out because their context could not be created.
    pub(crate) unavailable_devices: Vec<UnavailableDevice>,
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

impl Recognizer {
    /// Loads the model, creates the worker states and starts their threads.
    pub fn new(config: RecognizerConfig) -> Result<Self, RecognizerError> {
        crate::install_abort_report();
        config
            .validate()
            .map_err(|e| RecognizerError::InvalidConfig(e.to_string()))?;
        if !config.model_path.is_file() {
            return Err(RecognizerError::ModelLoad {
                path: config.model_path.clone(),
                error: WhisperError::InitError,
            });
        }
        let faults = config.faults();
        if config.isolation != Isolation::Thread && isolation::is_unserved_child() {
            return Err(RecognizerError::InvalidConfig(
                "isolation: this program was started as a worker process but did not call \
                 whisper_steady::recognizer::run_worker_if_child() first in main"
                    .into(),
            ));
        }
        // GPU lanes are isolated unless threads are asked for (a simulated GPU is the CPU:
        // only when asked for; without Unix there are no worker processes: threads); a lone
        // CPU lane only when asked for.
        let isolate_gpus = match config.isolation {
            Isolation::Thread => false,
            Isolation::Process => true,
            Isolation::Auto => !faults.simulate_gpu && cfg!(unix),
        };
        // The copy of the model on the CPU in this process, loaded once: the CPU lane's, and the
        // one that answers for the model when the lanes' models are in worker processes.
        let mut model_here: Option<Arc<WhisperContext>> = None;
        let mut cpu_model = || -> Result<Arc<WhisperContext>, WhisperError> {
            if let Some(ctx) = &model_here {
                return Ok(Arc::clone(ctx));
            }
            let ctx = load_context(&config, None)?;
            model_here = Some(Arc::clone(&ctx));
            Ok(ctx)
        };

        // The GPU lanes, when wanted and possible; a GPU that fails is left out if another works.
        let (mut lanes, unavailable_devices, no_gpu_here) = if config.use_gpu {
            gpu_lanes(&config, &faults, isolate_gpus, &mut cpu_model)
        } else {
            (Vec::new(), Vec::new(), false)
        };
        let mut gpu_unavailable = None;
        // Without any GPU in the build or on the machine, the CPU is what `use_gpu` asks for
        // unless a GPU was required.
        let gpu_absence_degrades = config.require_gpu || !no_gpu_here;
        if config.use_gpu && lanes.is_empty() {
            let reason = match unavailable_devices.as_slice() {
                [] => "no GPU device in this build or on this machine".to_owned(),
                [one] => one.reason.clone(),
                many => many
                    .iter()
                    .map(|d| format!("GPU {}: {}", d.device, d.reason))
                    .collect::<Vec<_>>()
                    .join("; "),
            };
            if gpu_absence_degrades {
                if !config.fallback_to_cpu {
                    return Err(RecognizerError::GpuUnavailable { reason });
                }
                log::warn!(
                    target: "whisper_steady::recognizer",
                    "use_gpu is set but the GPU is unavailable ({reason}); running on the CPU"
                );
            } else {
                log::info!(
                    target: "whisper_steady::recognizer",
                    "running on the CPU: {reason}"
                );
            }
            gpu_unavailable = Some(reason);
        } else {
            for d in &unavailable_devices {
                log::warn!(
                    target: "whisper_steady::recognizer",
                    "GPU {} is left out ({}); running on the other GPUs",
                    d.device,
                    d.reason
                );
            }
        }
        // The CPU lane: the only one without a GPU, the fallback beside them with one.
        if lanes.is_empty() || config.fallback_to_cpu {
            let workers = if lanes.is_empty() {
                config.workers
            } else {
                config.cpu_workers
            };
            let alone = lanes.is_empty();
            let ctx = cpu_model().map_err(|error| RecognizerError::ModelLoad {
                path: config.model_path.clone(),
                error,
            })?;
            let process = if alone && config.isolation == Isolation::Process {
                let process = lanes::start_worker_process(&config, LaneKind::Cpu, None, workers)
                    .map_err(|reason| RecognizerError::WorkerProcess { reason })?;
                Some(process)
            } else {
                None
            };
            lanes.push(Lane::new(LaneKind::Cpu, ctx, process, workers, &config));
        }
        let isolation = if lanes.iter().any(|l| l.process.is_some()) {
            Isolation::Process
        } else {
            Isolation::Thread
        };

        // The allow-list of detected languages names languages the model has.
        let languages =
            language::LanguageRules::new(&main_lane(&lanes).ctx, &config.detect_languages)
                .map_err(|why| {
                    RecognizerError::InvalidConfig(format!("detect_languages: {why}"))
                })?;

        // Every state is created before any thread starts, so a failure leaves nothing behind.
        let mut states = Vec::new();
        for (index, lane) in lanes.iter().enumerate() {
            for worker in 0..lane.workers {
                if let Some(process) = &lane.process {
                    states.push((index, worker, worker::Engine::Process(Arc::clone(process))));
                    continue;
                }
                let state =
                    lane.ctx
                        .create_state()
                        .map_err(|error| RecognizerError::StateInit {
                            backend: lane.kind.backend(),
                            error,
                        })?;
                let vad = config.vad_model.as_deref().map(load_vad).transpose()?;
                let work = worker::Workspace {
                    state,
                    helpers: Vec::new(),
                    vad,
                };
                states.push((index, worker, worker::Engine::Threads(work)));
            }
        }

        let shared = Arc::new(Shared {
            config,
            isolation,
            languages,
            queues: Mutex::new(Queues {
                lanes: lanes.iter().map(|_| VecDeque::new()).collect(),
                closed: false,
                reserved: 0,
                idle_since: None,
            }),
            ready: lanes.iter().map(|_| Condvar::new()).collect(),
            lanes,
            counters: Counters::default(),
            gpu_unavailable,
            gpu_absence_degrades,
            unavailable_devices,
            next_id: AtomicU64::new(1),
            started: Instant::now(),
        });
        let owner = Owner {
            shared: Arc::clone(&shared),
            threads: Mutex::new(Vec::new()),
        };
        for (lane, worker, state) in states {
            let shared = Arc::clone(&shared);
            let name = format!("whisper-{}-{worker}", shared.lanes[lane].kind);
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
        self.submit_job(audio, options, None, Admission::Ask)
    }

    /// Takes a place in the queue for a request whose audio is not ready yet (an upload still
    /// to be decoded), or refuses at once as [`submit`](Self::submit) would: with
    /// [`RecognizeError::Overloaded`] when `queue_limit` requests are already waiting or
    /// reserved, or during shutdown. The place counts against `queue_limit` until the
    /// [`Reservation`] is used or dropped, so work done before submitting is only done for
    /// requests the queue can take.
    pub fn reserve(&self) -> Result<Reservation, RecognizeError> {
        let shared = self.shared();
        let mut queues = lock(&shared.queues);
        if queues.closed {
            return Err(RecognizeError::ShuttingDown);
        }
        if queues.is_full(shared.config.queue_limit) {
            drop(queues);
            shared.counters.rejected.fetch_add(1, Ordering::Relaxed);
            return Err(RecognizeError::Overloaded {
                queue_limit: shared.config.queue_limit,
            });
        }
        queues.reserved += 1;
        drop(queues);
        Ok(Reservation::new(self.clone()))
    }

    /// As [`submit`](Self::submit), and `on_segment` receives each segment as soon as it is
    /// decoded, in order, each once (also across a GPU→CPU retry, whose first segments are
    /// skipped up to the number already delivered), from a worker thread: keep it quick (send
    /// it on a channel, say). Whisper decodes 30 s windows, so a segment arrives when its window
    /// is done; with a VAD model, when its chunk is. `on_segment` is dropped when the request
    /// ends, before the ticket is ready, which closes a channel it sends on.
    pub fn submit_streaming(
        &self,
        audio: Vec<f32>,
        options: RecognizeOptions,
        on_segment: impl FnMut(DecodedSegment) + Send + 'static,
    ) -> Result<Ticket, RecognizeError> {
        let emitter = stream::Emitter::new(Box::new(on_segment));
        self.submit_job(
            audio,
            options,
            Some(Arc::new(Mutex::new(emitter))),
            Admission::Ask,
        )
    }

    fn submit_job(
        &self,
        audio: Vec<f32>,
        options: RecognizeOptions,
        segments: Option<Arc<Mutex<stream::Emitter>>>,
        admission: Admission,
    ) -> Result<Ticket, RecognizeError> {
        let shared = self.shared();
        let language = validate::validate(shared, &audio, &options)?;
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
            deaths: 0,
            tried: 0,
            segments,
        };

        let mut queues = lock(&shared.queues);
        if queues.closed {
            return Err(RecognizeError::ShuttingDown);
        }
        if admission == Admission::Ask && queues.is_full(shared.config.queue_limit) {
            drop(queues);
            shared.counters.rejected.fetch_add(1, Ordering::Relaxed);
            return Err(RecognizeError::Overloaded {
                queue_limit: shared.config.queue_limit,
            });
        }
        let lane = shared.route(&queues, &job)?;
        if admission == Admission::Reserved {
            // The reservation's place becomes the request's.
            queues.reserved = queues.reserved.saturating_sub(1);
        }
        queues.lanes[lane].push_back(job);
        queues.idle_since = None;
        drop(queues);
        shared.counters.submitted.fetch_add(1, Ordering::Relaxed);
        shared.ready[lane].notify_one();
        Ok(Ticket::new(id, slot))
    }

    /// The checks [`submit`](Self::submit) runs on options, without audio: those of
    /// [`RecognizeOptions::check`] and those that need the model and the lanes (an English-only
    /// model refuses another language and translation; `audio_ctx` within the model's window;
    /// CPU workers for `use_gpu: Some(false)`). A service can check options it holds for many
    /// requests (a stream's, its configured defaults) once.
    pub fn check_options(&self, options: &RecognizeOptions) -> Result<(), RecognizeError> {
        validate::validate_options(self.shared(), options).map(|_| ())
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
        self.shared().main_lane().kind.backend()
    }

    /// The shared model of the main workers (to query its vocabulary, say).
    pub fn context(&self) -> &Arc<WhisperContext> {
        &self.shared().main_lane().ctx
    }

    /// The configuration it was built with.
    pub fn config(&self) -> &RecognizerConfig {
        &self.shared().config
    }

    /// A snapshot of workers, queue, failover, devices and CUDA pools. Only reads.
    pub fn health(&self) -> Health {
        health::assemble(self.shared())
    }

    /// Returns the device memory that the CUDA pools hold and that no block handed out covers
    /// to the driver ([`cuda::trim`](crate::cuda::trim)): requests running now keep theirs,
    /// later ones map what they need again (a cost of milliseconds). A pool with something to
    /// give back first waits for the GPU work its worker has queued, and that worker's next
    /// allocation waits for the trim. Refused, and logged, in a build with CUDA graphs unless
    /// `GGML_CUDA_DISABLE_GRAPHS` is set
    /// ([`TrimReport::refused_cuda_graphs`](crate::cuda::TrimReport::refused_cuda_graphs)).
    /// Counted in [`Health::cleanup`]. On a build without CUDA it does nothing and says so
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
            .field("main_backend", &shared.main_lane().kind.backend())
            .field("lanes", &shared.lanes.len())
            .field("config", &shared.config)
            .finish()
    }
}
impl Shared {
    /// Refuses new requests and wakes every worker so that they drain their queue and stop.
    fn close(&self) {
        lock(&self.queues).closed = true;
        for ready in &self.ready {
            ready.notify_all();
        }
    }
}
