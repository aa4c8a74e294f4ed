//! Failures on demand, for tests of failover (feature `fault-injection`; without it the
//! recognizer never injects anything and these types are not exported).

// Without the feature nothing sets the hook; the recognizer still asks, and gets `false`.
#![cfg_attr(not(feature = "fault-injection"), allow(dead_code))]

use std::sync::Arc;

use super::Backend;

/// Decides, for each attempt, whether to make it fail.
pub type FaultFn = dyn Fn(FaultSite) -> bool + Send + Sync;

/// Failure injection for tests of failover. A failing attempt is really run and really fails:
/// whisper.cpp's abort callback stops it at once, and whisper.cpp returns its error code.
#[derive(Clone)]
#[non_exhaustive]
pub struct FaultInjection {
    /// Treat the main backend as a GPU even when it is the CPU, so that a build without a GPU
    /// can exercise GPU→CPU failover. The "GPU" workers run on the CPU, one lane per
    /// simulated device of `gpu_devices`.
    pub simulate_gpu: bool,
    /// Fail the creation of the GPU context, as a missing device or driver would.
    pub fail_gpu_context: bool,
    /// Fail the creation of the GPU context on these devices only (by index), as a device
    /// that is missing or out of memory would.
    pub fail_gpu_devices: Vec<i32>,
    /// Pretend that ggml found this many GPUs, for [`GpuDevices::All`] with `simulate_gpu`.
    pub simulated_device_count: usize,
    /// Called before each attempt; `true` makes that attempt fail.
    pub fail_attempt: Option<Arc<FaultFn>>,
    /// Called before each attempt in a worker process (with process isolation); `true` makes
    /// the process abort from inside whisper.cpp (its abort callback calls `abort()`), as a
    /// failed native assertion would.
    pub abort_process: Option<Arc<FaultFn>>,
}

impl FaultInjection {
    /// No faults and no simulation; set the fields you need.
    pub fn new() -> Self {
        FaultInjection {
            simulate_gpu: false,
            fail_gpu_context: false,
            fail_gpu_devices: Vec::new(),
            simulated_device_count: 0,
            fail_attempt: None,
            abort_process: None,
        }
    }
}

impl Default for FaultInjection {
    fn default() -> Self {
        Self::new()
    }
}

/// Where an attempt is about to run, for [`FaultInjection::fail_attempt`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct FaultSite {
    /// The backend of the worker.
    pub backend: Backend,
    /// The GPU's index for a GPU worker; `None` on the CPU.
    pub device: Option<i32>,
    /// The worker's index in its lane (on that device, or on the CPU).
    pub worker: usize,
    /// The request's id.
    pub request: u64,
}
