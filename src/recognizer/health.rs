//! The health report: what the recognizer and the devices are doing, read without side
//! effects (nothing here resets or reinitializes a device).

use std::ffi::CStr;
use std::time::Duration;

use super::{Backend, BreakerState};
use crate::cuda::PoolStats;
use crate::sys;

/// A snapshot of a [`Recognizer`](super::Recognizer).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Health {
    /// `Ok` when the main backend is the one configured and its breaker is closed; `Degraded`
    /// when running on the CPU in place of the GPU or with the breaker not closed; `ShuttingDown`
    /// once shutdown began.
    pub status: HealthStatus,
    /// The backend that takes requests normally.
    pub main_backend: Backend,
    /// The devices ggml knows in this build, with their memory.
    pub devices: Vec<DeviceInfo>,
    /// The CUDA memory pools (patch 0003); `cuda_available` is false without CUDA.
    pub pool: PoolStats,
    /// The worker lanes: the main one, then the CPU fallback lane when there is one.
    pub lanes: Vec<LaneHealth>,
    /// Requests waiting, over all lanes.
    pub queue_depth: usize,
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

/// One device as ggml reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceInfo {
    /// ggml's name (`CPU`, `CUDA0`, ...).
    pub name: String,
    /// The description (the CPU model, the GPU name).
    pub description: String,
    /// `cpu`, `gpu`, `igpu` or `accel`.
    pub kind: &'static str,
    /// Free memory in bytes, as the device reports it.
    pub memory_free: u64,
    /// Total memory in bytes.
    pub memory_total: u64,
}

/// One group of worker states on one backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaneHealth {
    /// The backend.
    pub backend: Backend,
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
}

/// GPU failover, as configured and as it went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailoverHealth {
    /// `use_gpu` from the configuration.
    pub use_gpu: bool,
    /// `fallback_to_cpu` from the configuration.
    pub fallback_to_cpu: bool,
    /// Why the GPU is not the main backend although `use_gpu` is set; `None` otherwise.
    pub gpu_unavailable: Option<String>,
    /// The circuit breaker (closed when there is no GPU lane).
    pub breaker: BreakerState,
    /// Consecutive GPU failures now.
    pub consecutive_gpu_failures: u32,
    /// GPU attempts that failed, in all.
    pub gpu_failures: u64,
    /// Requests retried on the CPU after a GPU failure.
    pub retried_on_cpu: u64,
    /// Requests sent to the CPU because the breaker was open.
    pub diverted_to_cpu: u64,
    /// Times the breaker opened.
    pub breaker_trips: u64,
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

fn c_text(ptr: *const std::ffi::c_char) -> String {
    if ptr.is_null() {
        return String::new();
    }
    // SAFETY: ggml returns NUL-terminated strings that live as long as the device registry.
    unsafe { CStr::from_ptr(ptr) }
        .to_string_lossy()
        .into_owned()
}

/// The devices ggml knows in this build (the CPU always; GPUs with their backend's feature),
/// with free and total memory. Only queries: no device is initialized anew or reset.
pub fn devices() -> Vec<DeviceInfo> {
    // SAFETY: the registry's functions take indices below its count and return devices that
    // live for the whole process; the memory query writes two integers.
    unsafe {
        (0..sys::ggml_backend_dev_count())
            .map(|i| sys::ggml_backend_dev_get(i))
            .filter(|dev| !dev.is_null())
            .map(|dev| {
                let (mut free, mut total) = (0usize, 0usize);
                sys::ggml_backend_dev_memory(dev, &mut free, &mut total);
                DeviceInfo {
                    name: c_text(sys::ggml_backend_dev_name(dev)),
                    description: c_text(sys::ggml_backend_dev_description(dev)),
                    kind: match sys::ggml_backend_dev_type(dev) {
                        sys::ggml_backend_dev_type_GGML_BACKEND_DEVICE_TYPE_CPU => "cpu",
                        sys::ggml_backend_dev_type_GGML_BACKEND_DEVICE_TYPE_GPU => "gpu",
                        sys::ggml_backend_dev_type_GGML_BACKEND_DEVICE_TYPE_IGPU => "igpu",
                        _ => "accel",
                    },
                    memory_free: free as u64,
                    memory_total: total as u64,
                }
            })
            .collect()
    }
}

/// Whether ggml has a GPU device (discrete or integrated) in this build and on this machine.
pub(crate) fn has_gpu_device() -> bool {
    devices()
        .iter()
        .any(|d| d.kind == "gpu" || d.kind == "igpu")
}
