//! The health report: what the recognizer and the devices are doing, read without side
//! effects (nothing here resets or reinitializes a device).

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::isolation::{Isolation, Supervisor, WorkerProcessHealth};
use super::{lock, Backend, BreakerState, Shared};
use crate::cuda::PoolStats;
use crate::device::{devices, DeviceInfo};

/// A snapshot of a [`Recognizer`](super::Recognizer).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Health {
    /// `Ok` when the recognizer runs as configured and every GPU's breaker is closed (on the
    /// CPU of a build or machine without any GPU too, unless `require_gpu` is set);
    /// `Degraded` when running on the CPU in place of a GPU that is there or was required,
    /// without a configured GPU that failed to start, with a breaker not closed, or with a
    /// worker process not running or dying again and again (3 deaths in 10 minutes);
    /// `ShuttingDown` once shutdown began.
    pub status: HealthStatus,
    /// The backend that takes requests normally.
    pub main_backend: Backend,
    /// The isolation in effect: [`Isolation::Process`] when a lane runs in a worker process,
    /// else [`Isolation::Thread`].
    pub isolation: Isolation,
    /// The devices ggml knows in this build, with their memory.
    pub devices: Vec<DeviceInfo>,
    /// The CUDA memory pools (patch 0003) of this process and its worker processes together;
    /// `cuda_available` is false without CUDA.
    pub pool: PoolStats,
    /// The worker lanes: one per GPU in the order of `gpu_devices`, then the CPU lane when
    /// there is one (the only lane without a GPU).
    pub lanes: Vec<LaneHealth>,
    /// Requests waiting, over all lanes.
    pub queue_depth: usize,
    /// Places in the queue held by [`Reservation`](super::Reservation)s (uploads being
    /// decoded), counted against `queue_limit` with `queue_depth`.
    pub queue_reserved: usize,
    /// The configured queue limit.
    pub queue_limit: usize,
    /// GPU failover.
    pub failover: FailoverHealth,
    /// Request counters since start.
    pub requests: RequestCounters,
    /// Memory given back to the driver ([`Recognizer::trim`](super::Recognizer::trim) and
    /// `idle_trim_after`).
    pub cleanup: CleanupHealth,
    /// The model file.
    pub model: String,
    /// This crate's version.
    pub version: &'static str,
    /// The whisper.cpp version.
    pub whisper_cpp_version: &'static str,
    /// Time since the recognizer started.
    pub uptime: Duration,
}

/// The overall state, for load balancers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealthStatus {
    /// As configured.
    Ok,
    /// Serving, but not as configured (see [`FailoverHealth`]).
    Degraded,
    /// Finishing its last requests; takes no new ones.
    ShuttingDown,
}

impl HealthStatus {
    /// `"ok"`, `"degraded"` or `"shutting_down"`.
    pub fn as_str(self) -> &'static str {
        match self {
            HealthStatus::Ok => "ok",
            HealthStatus::Degraded => "degraded",
            HealthStatus::ShuttingDown => "shutting_down",
        }
    }
}

/// One group of worker states on one device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaneHealth {
    /// The backend.
    pub backend: Backend,
    /// The GPU's index (ggml's) for a GPU lane; `None` for the CPU.
    pub device: Option<i32>,
    /// This GPU's circuit breaker; `None` for the CPU.
    pub breaker: Option<BreakerState>,
    /// Consecutive failures on this GPU now (0 for the CPU).
    pub consecutive_failures: u32,
    /// Worker states.
    pub workers: usize,
    /// Workers running a request now.
    pub busy: usize,
    /// Workers waiting for one.
    pub idle: usize,
    /// Requests waiting for this lane.
    pub queued: usize,
    /// Attempts that produced a transcript.
    pub succeeded: u64,
    /// Attempts that whisper.cpp failed (cancellations and deadlines are not failures).
    pub failed: u64,
    /// The lane's worker process, when it is isolated ([`Isolation::Process`]).
    pub process: Option<WorkerProcessHealth>,
}

/// GPU failover, as configured and as it went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailoverHealth {
    /// `use_gpu` from the configuration.
    pub use_gpu: bool,
    /// `require_gpu` from the configuration.
    pub require_gpu: bool,
    /// `fallback_to_cpu` from the configuration.
    pub fallback_to_cpu: bool,
    /// Why the GPU is not the main backend although `use_gpu` is set (also when the build or
    /// the machine has no GPU, which is not a degradation unless `require_gpu` is set); `None`
    /// otherwise.
    pub gpu_unavailable: Option<String>,
    /// Configured GPUs whose context could not be created (the others run without them).
    pub unavailable_devices: Vec<UnavailableDevice>,
    /// The circuit breaker: with one GPU its own; with several the most restrictive of theirs
    /// (open if one is open, else half-open if one is, else closed; each GPU's own is in
    /// [`LaneHealth::breaker`]); closed when there is no GPU lane.
    pub breaker: BreakerState,
    /// Consecutive failures now, on the GPU with the most.
    pub consecutive_gpu_failures: u32,
    /// GPU attempts that failed, in all.
    pub gpu_failures: u64,
    /// Requests retried on the CPU after a GPU failure.
    pub retried_on_cpu: u64,
    /// Requests retried on another GPU after a failure on one.
    pub retried_on_other_gpu: u64,
    /// Requests sent to the CPU because the breaker was open.
    pub diverted_to_cpu: u64,
    /// Times a breaker opened, over all GPUs.
    pub breaker_trips: u64,
}

/// A configured GPU that is not used: its context could not be created at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnavailableDevice {
    /// ggml's index of the GPU.
    pub device: i32,
    /// Why.
    pub reason: String,
}

/// Outcomes of requests since start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RequestCounters {
    /// Accepted into the queue.
    pub submitted: u64,
    /// Refused because the queue was full.
    pub rejected_overloaded: u64,
    /// Finished with a transcript.
    pub completed: u64,
    /// Finished with a whisper.cpp failure.
    pub failed: u64,
    /// Accepted, then refused by whisper.cpp's input checks as the caller's mistake
    /// ([`RecognizeError::InvalidAudio`](super::RecognizeError::InvalidAudio) or
    /// [`InvalidOptions`](super::RecognizeError::InvalidOptions)): not failures, never retried.
    /// The checks before queueing refuse such requests at once, so this stays 0 unless they
    /// miss a case.
    pub invalid: u64,
    /// Finished because their deadline passed.
    pub deadline_exceeded: u64,
    /// Cancelled by their caller.
    pub cancelled: u64,
}

/// Trims since start: by hand ([`Recognizer::trim`](super::Recognizer::trim)) and after idle
/// time (`idle_trim_after`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CleanupHealth {
    /// Trims run (on a build without CUDA too, where each was a no-op).
    pub trims: u64,
    /// Of those, the ones `idle_trim_after` started.
    pub idle_trims: u64,
    /// Device memory they returned to the driver, in all.
    pub bytes_released: u64,
    /// The configured idle time before an automatic trim (`None`: never).
    pub idle_trim_after: Option<Duration>,
}

/// The order of breaker states in the overall view: the least available first.
fn severity(state: BreakerState) -> u8 {
    match state {
        BreakerState::Open { .. } => 2,
        BreakerState::HalfOpen => 1,
        BreakerState::Closed => 0,
    }
}

/// The health report of a recognizer's shared state. Only reads.
pub(super) fn assemble(shared: &Shared) -> Health {
    let now = Instant::now();
    let (queued, reserved, closed): (Vec<usize>, usize, bool) = {
        let q = lock(&shared.queues);
        (
            q.lanes.iter().map(|l| l.len()).collect(),
            q.reserved,
            q.closed,
        )
    };
    let mut trips = 0;
    let lanes: Vec<LaneHealth> = shared
        .lanes
        .iter()
        .zip(&queued)
        .map(|(lane, &queued)| {
            let busy = lane.busy.load(Ordering::Relaxed).min(lane.workers);
            let (breaker, consecutive_failures) = match &lane.breaker {
                Some(b) => {
                    let b = lock(b);
                    trips += b.trips();
                    (Some(b.state(now)), b.consecutive_failures())
                }
                None => (None, 0),
            };
            LaneHealth {
                backend: lane.kind.backend(),
                device: lane.kind.device(),
                breaker,
                consecutive_failures,
                workers: lane.workers,
                busy,
                idle: lane.workers - busy,
                queued,
                succeeded: lane.succeeded.load(Ordering::Relaxed),
                failed: lane.failed.load(Ordering::Relaxed),
                process: lane.process.as_ref().map(|p| p.health()),
            }
        })
        .collect();
    let breaker = lanes
        .iter()
        .filter_map(|l| l.breaker)
        .max_by_key(|&b| severity(b))
        .unwrap_or(BreakerState::Closed);
    let consecutive = lanes
        .iter()
        .map(|l| l.consecutive_failures)
        .max()
        .unwrap_or(0);
    let c = &shared.counters;
    let status = if closed {
        HealthStatus::ShuttingDown
    } else if ((shared.gpu_unavailable.is_some() || !shared.unavailable_devices.is_empty())
        && shared.gpu_absence_degrades)
        || lanes
            .iter()
            .any(|l| l.breaker.is_some_and(|b| b != BreakerState::Closed))
        || lanes
            .iter()
            .filter_map(|l| l.process.as_ref())
            .any(Supervisor::degrades)
    {
        HealthStatus::Degraded
    } else {
        HealthStatus::Ok
    };
    Health {
        status,
        main_backend: shared.main_lane().kind.backend(),
        isolation: shared.isolation,
        devices: devices(),
        // This process's pools and its worker processes'.
        pool: shared
            .lanes
            .iter()
            .filter_map(|lane| lane.process.as_ref()?.pool_stats())
            .fold(crate::cuda::pool_stats(), crate::cuda::PoolStats::combined),
        queue_depth: queued.iter().sum(),
        lanes,
        queue_reserved: reserved,
        queue_limit: shared.config.queue_limit,
        failover: FailoverHealth {
            use_gpu: shared.config.use_gpu,
            require_gpu: shared.config.require_gpu,
            fallback_to_cpu: shared.config.fallback_to_cpu,
            gpu_unavailable: shared.gpu_unavailable.clone(),
            unavailable_devices: shared.unavailable_devices.clone(),
            breaker,
            consecutive_gpu_failures: consecutive,
            gpu_failures: c.gpu_failures.load(Ordering::Relaxed),
            retried_on_cpu: c.retried.load(Ordering::Relaxed),
            retried_on_other_gpu: c.retried_on_gpu.load(Ordering::Relaxed),
            diverted_to_cpu: c.diverted.load(Ordering::Relaxed),
            breaker_trips: trips,
        },
        cleanup: CleanupHealth {
            trims: c.trims.load(Ordering::Relaxed),
            idle_trims: c.idle_trims.load(Ordering::Relaxed),
            bytes_released: c.bytes_trimmed.load(Ordering::Relaxed),
            idle_trim_after: shared.config.idle_trim_after,
        },
        requests: RequestCounters {
            submitted: c.submitted.load(Ordering::Relaxed),
            rejected_overloaded: c.rejected.load(Ordering::Relaxed),
            completed: c.completed.load(Ordering::Relaxed),
            failed: c.failed.load(Ordering::Relaxed),
            invalid: c.invalid.load(Ordering::Relaxed),
            deadline_exceeded: c.deadline.load(Ordering::Relaxed),
            cancelled: c.cancelled.load(Ordering::Relaxed),
        },
        model: shared.config.model_path.display().to_string(),
        version: env!("CARGO_PKG_VERSION"),
        whisper_cpp_version: crate::WHISPER_CPP_VERSION,
        uptime: now - shared.started,
    }
}
