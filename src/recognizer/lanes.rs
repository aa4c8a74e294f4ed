//! The lanes (one per GPU, and the CPU's) and the routing of requests among them: which lanes
//! are made at start, which lane a request goes to, and which GPU a failed request tries next.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::breaker::Breaker;
use super::faults::FaultInjection;
use super::isolation::{Supervisor, WorkerConfig, WorkerProgram};
use super::UnavailableDevice;
use super::{lock, Backend, Job, Queues, RecognizeError, RecognizerConfig, Shared};
use crate::{WhisperContext, WhisperContextParameters, WhisperError};

/// What a lane runs on: named, so that no code reads meaning into a lane's position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LaneKind {
    /// Workers on one GPU (with `simulate_gpu`, a simulated one that runs on the CPU).
    Gpu {
        /// ggml's index of the GPU.
        device: i32,
    },
    /// Workers on the CPU: the only lane without a GPU, or the fallback lane beside the GPUs.
    Cpu,
}

impl LaneKind {
    pub(crate) fn backend(self) -> Backend {
        match self {
            LaneKind::Gpu { .. } => Backend::Gpu,
            LaneKind::Cpu => Backend::Cpu,
        }
    }

    pub(crate) fn device(self) -> Option<i32> {
        match self {
            LaneKind::Gpu { device } => Some(device),
            LaneKind::Cpu => None,
        }
    }
}

impl std::fmt::Display for LaneKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LaneKind::Gpu { device } => write!(f, "gpu{device}"),
            LaneKind::Cpu => f.write_str("cpu"),
        }
    }
}

/// A group of workers on one device, sharing one copy of the model.
pub(crate) struct Lane {
    pub(crate) kind: LaneKind,
    /// The model in this process: the lane's own, or for an isolated lane a CPU copy that
    /// answers for the model (its vocabulary, its sizes) while the worker process computes.
    pub(crate) ctx: Arc<WhisperContext>,
    /// The worker process of an isolated lane; `None` when its workers are threads here.
    pub(crate) process: Option<Arc<Supervisor>>,
    pub(crate) workers: usize,
    pub(crate) busy: AtomicUsize,
    pub(crate) succeeded: AtomicU64,
    pub(crate) failed: AtomicU64,
    /// This GPU's circuit breaker; `None` on the CPU.
    pub(crate) breaker: Option<Mutex<Breaker>>,
}

/// A lane's worker process ends with the lane: at the recognizer's end (after its worker
/// threads, which hold the lanes), and when `Recognizer::new` fails after starting it.
impl Drop for Lane {
    fn drop(&mut self) {
        if let Some(process) = &self.process {
            process.close();
        }
    }
}

impl Lane {
    /// Whether it runs on a GPU (its kind says so; the breaker follows from it).
    pub(crate) fn is_gpu(&self) -> bool {
        self.kind.backend() == Backend::Gpu
    }
}

/// The model on `device`, or on the CPU for `None`.
pub(super) fn load_context(
    config: &RecognizerConfig,
    device: Option<i32>,
) -> Result<Arc<WhisperContext>, WhisperError> {
    let mut params = WhisperContextParameters::default();
    params.use_gpu(device.is_some());
    params.gpu_device(device.unwrap_or(config.gpu_device));
    params.flash_attn(config.flash_attn);
    WhisperContext::new_with_params(&config.model_path, params).map(Arc::new)
}

/// Starts the worker process of an isolated lane on `gpu` (`None`: the CPU).
pub(super) fn start_worker_process(
    config: &RecognizerConfig,
    kind: LaneKind,
    gpu: Option<i32>,
    workers: usize,
) -> Result<Arc<Supervisor>, String> {
    let program = match &config.worker_program {
        Some(p) => p.clone(),
        None => WorkerProgram::current_exe().map_err(|e| format!("the running program: {e}"))?,
    };
    let worker = WorkerConfig {
        model_path: config.model_path.clone(),
        gpu,
        flash_attn: config.flash_attn,
        fit_audio_ctx: config.fit_audio_ctx,
        vad_model: config.vad_model.clone(),
        chunk_states: config.chunk_states,
        long_audio: config.long_audio,
        workers,
        threads_per_worker: config.threads_per_worker,
        idle_trim_after: config.idle_trim_after,
        detect_languages: config.detect_languages.clone(),
    };
    Supervisor::start(kind.to_string(), program, worker)
}

/// The GPU lanes that can be made, the devices that could not (with why), and whether the
/// build or the machine has no GPU at all. With `isolate`, each lane's model is in a worker
/// process and `model_here` gives the copy this process keeps.
pub(super) fn gpu_lanes(
    config: &RecognizerConfig,
    faults: &FaultInjection,
    isolate: bool,
    model_here: &mut dyn FnMut() -> Result<Arc<WhisperContext>, WhisperError>,
) -> (Vec<Lane>, Vec<UnavailableDevice>, bool) {
    let found = if faults.simulate_gpu {
        faults.simulated_device_count
    } else {
        crate::device::gpu_device_count()
    };
    let none_here = found == 0
        && !faults.simulate_gpu
        && !faults.fail_gpu_context
        && faults.fail_gpu_devices.is_empty();
    let mut lanes = Vec::new();
    let mut unavailable = Vec::new();
    for device in config.gpu_devices.resolve(config.gpu_device, found) {
        let kind = LaneKind::Gpu { device };
        let attempt = if faults.fail_gpu_context || faults.fail_gpu_devices.contains(&device) {
            Err("GPU context creation failed (injected fault)".to_owned())
        } else if isolate && (faults.simulate_gpu || (found > 0 && (device as usize) < found)) {
            // A simulated GPU's worker process runs on the CPU.
            let gpu = (!faults.simulate_gpu).then_some(device);
            start_worker_process(config, kind, gpu, config.workers)
                .map_err(|e| format!("GPU worker process: {e}"))
                .and_then(|process| {
                    let here = model_here().map_err(|e| format!("the model on the CPU: {e}"))?;
                    Ok((here, Some(process)))
                })
        } else if faults.simulate_gpu {
            // A simulated GPU runs on the CPU.
            load_context(config, None)
                .map(|ctx| (ctx, None))
                .map_err(|e| e.to_string())
        } else if found == 0 {
            Err("no GPU device in this build or on this machine".to_owned())
        } else if device as usize >= found {
            Err(format!("there is no GPU {device}: ggml found {found}"))
        } else {
            load_context(config, Some(device))
                .map(|ctx| (ctx, None))
                .map_err(|e| format!("GPU context: {e}"))
        };
        match attempt {
            Ok((ctx, process)) => lanes.push(Lane::new(kind, ctx, process, config.workers, config)),
            Err(reason) => unavailable.push(UnavailableDevice { device, reason }),
        }
    }
    (lanes, unavailable, none_here)
}

impl Lane {
    /// A lane of `workers` workers; a GPU lane gets its circuit breaker (the configured
    /// threshold and cooldown), the CPU lane none.
    pub(super) fn new(
        kind: LaneKind,
        ctx: Arc<WhisperContext>,
        process: Option<Arc<Supervisor>>,
        workers: usize,
        config: &RecognizerConfig,
    ) -> Self {
        let breaker = match kind {
            LaneKind::Gpu { .. } => Some(Breaker::new(
                config.breaker_threshold,
                config.breaker_cooldown,
            )),
            LaneKind::Cpu => None,
        };
        Lane {
            kind,
            ctx,
            process,
            workers,
            busy: AtomicUsize::new(0),
            succeeded: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            breaker: breaker.map(Mutex::new),
        }
    }

    /// Requests queued for it or running on it.
    fn load(&self, queued: usize) -> usize {
        queued + self.busy.load(Ordering::Relaxed)
    }
}

/// The main lane of lanes made in order (GPUs first, then the CPU): the first.
pub(super) fn main_lane(lanes: &[Lane]) -> &Lane {
    &lanes[0]
}

impl Shared {
    /// The main lane: the first GPU's, or the CPU's on a machine without one (`lanes[0]`, the
    /// one place that says so). It answers for the model (its context) and the main backend.
    pub(crate) fn main_lane(&self) -> &Lane {
        main_lane(&self.lanes)
    }

    /// The index of the lane that runs on the CPU, if any.
    pub(crate) fn cpu_lane(&self) -> Option<usize> {
        self.lanes.iter().position(|l| l.kind == LaneKind::Cpu)
    }

    /// Picks the lane for a new request (called with the queue locked): the least-loaded GPU
    /// whose breaker lets it through, else the CPU lane; without a CPU lane the GPUs keep the
    /// request whatever their breakers say.
    pub(super) fn route(&self, queues: &Queues, job: &Job) -> Result<usize, RecognizeError> {
        let cpu = self.cpu_lane();
        if job.options.use_gpu == Some(false) {
            return cpu.ok_or(RecognizeError::InvalidOptions(
                "use_gpu=false without CPU workers".into(),
            ));
        }
        let by_load = self.gpu_lanes_by_load(queues, 0);
        if by_load.is_empty() {
            return Ok(cpu.unwrap_or(0));
        }
        let Some(cpu) = cpu else {
            return Ok(by_load[0]);
        };
        match self.pick_gpu(&by_load, Instant::now()) {
            Some(lane) => Ok(lane),
            None => {
                self.counters.diverted.fetch_add(1, Ordering::Relaxed);
                Ok(cpu)
            }
        }
    }

    /// The GPU lanes outside `tried` (a set of lane bits), least loaded first (requests queued
    /// or running per worker), in configured order among equals.
    pub(crate) fn gpu_lanes_by_load(&self, queues: &Queues, tried: u64) -> Vec<usize> {
        let mut lanes: Vec<usize> = (0..self.lanes.len())
            .filter(|&i| self.lanes[i].is_gpu() && tried & (1 << i) == 0)
            .collect();
        let load = |i: usize| self.lanes[i].load(queues.lanes[i].len());
        // a/wa < b/wb without division; a stable sort keeps the configured order on ties.
        lanes.sort_by(|&a, &b| {
            (load(a) * self.lanes[b].workers).cmp(&(load(b) * self.lanes[a].workers))
        });
        lanes
    }

    /// The first of `candidates` whose breaker is closed, else the first that may probe now
    /// (half-open); `None` when every breaker keeps requests off.
    pub(crate) fn pick_gpu(&self, candidates: &[usize], now: Instant) -> Option<usize> {
        let breaker = |i: usize| self.lanes[i].breaker.as_ref().map(lock);
        candidates
            .iter()
            .copied()
            .find(|&i| breaker(i).is_some_and(|b| b.is_closed()))
            .or_else(|| {
                candidates
                    .iter()
                    .copied()
                    .find(|&i| breaker(i).is_some_and(|mut b| b.allow(now)))
            })
    }
}
