//! The CUDA memory pool: which pool new backends use, and what the pools hold.
//!
//! Both come from the patch series: `0002` (run-time pool choice) and `0003` (statistics). In a
//! build without the `cuda` feature there is no pool: [`set_pool_policy`] only records the
//! choice, and [`pool_stats`] says that CUDA is not available.

#[cfg(not(feature = "cuda"))]
use std::sync::atomic::{AtomicU8, Ordering};

/// Which CUDA memory pool new ggml CUDA backends (one per `whisper_state`) get.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum PoolPolicy {
    /// Follow the environment (`GGML_CUDA_FORCE_LEGACY_POOL`, `GGML_USE_VMM`), otherwise use the
    /// virtual-memory pool where the device supports it. The default.
    #[default]
    Auto,
    /// The virtual-memory pool where the device supports it, whatever the environment says.
    Vmm,
    /// The legacy pool (`cudaMalloc`'d buffers, best-fit reuse), whatever the environment says.
    Legacy,
}

impl PoolPolicy {
    /// The value of `enum ggml_cuda_pool_policy` (patch 0002), as the C API takes it.
    pub fn to_raw(self) -> u8 {
        match self {
            PoolPolicy::Auto => 0,
            PoolPolicy::Vmm => 1,
            PoolPolicy::Legacy => 2,
        }
    }

    fn from_raw(raw: u8) -> PoolPolicy {
        match raw {
            1 => PoolPolicy::Vmm,
            2 => PoolPolicy::Legacy,
            _ => PoolPolicy::Auto,
        }
    }
}

/// Without CUDA there is no pool to configure; the choice is only recorded for `pool_policy`.
#[cfg(not(feature = "cuda"))]
static RECORDED_POLICY: AtomicU8 = AtomicU8::new(0);

/// Chooses the pool for CUDA backends created from now on. Pools are created when a backend
/// first needs one, so call this before creating contexts and states. Without the `cuda`
/// feature this only records the choice (see [`pool_policy`]).
pub fn set_pool_policy(policy: PoolPolicy) {
    #[cfg(not(feature = "cuda"))]
    RECORDED_POLICY.store(policy.to_raw(), Ordering::SeqCst);
    #[cfg(feature = "cuda")]
    // SAFETY: plain store of a valid enum value into an atomic inside ggml-cuda.
    unsafe {
        crate::sys::ggml_backend_cuda_set_pool_policy(policy.to_raw() as _);
    }
}

/// The policy in effect for new pools.
pub fn pool_policy() -> PoolPolicy {
    #[cfg(feature = "cuda")]
    {
        // SAFETY: plain atomic load inside ggml-cuda.
        let raw = unsafe { crate::sys::ggml_backend_cuda_get_pool_policy() };
        PoolPolicy::from_raw(raw as u8)
    }
    #[cfg(not(feature = "cuda"))]
    {
        PoolPolicy::from_raw(RECORDED_POLICY.load(Ordering::SeqCst))
    }
}

/// Process-wide statistics of every CUDA memory pool (all devices, all backends).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct PoolStats {
    /// False when this build has no CUDA backend: every other field is then zero and means
    /// nothing.
    pub cuda_available: bool,
    /// Virtual-memory pools alive.
    pub vmm_pools: u64,
    /// Legacy pools alive.
    pub legacy_pools: u64,
    /// Device memory the pools hold (mapped into the VMM range, or `cudaMalloc`'d).
    pub bytes_reserved: u64,
    /// Bytes handed out and not freed.
    pub bytes_in_use: u64,
    /// The highest `bytes_in_use` seen since the process started.
    pub peak_bytes_in_use: u64,
    /// Frees that were not on top of a VMM pool's stack. Non-zero means two users shared one
    /// backend (one `whisper_state`) at the same time.
    pub out_of_order_frees: u64,
    /// Bytes in VMM pool holes: freed out of order, reused first by later allocations, and
    /// reclaimed once they become the top of the pool's stack.
    pub bytes_waiting_reclaim: u64,
    /// Frees of unknown pointers, with a wrong size, or double frees; each was ignored. The sum
    /// of the three kinds below.
    pub rejected_frees: u64,
    /// Rejected frees of a pointer where no block starts, or outside the pool (patch 0010).
    pub rejected_unknown_frees: u64,
    /// Rejected frees whose size did not match the block (patch 0010).
    pub rejected_size_mismatch_frees: u64,
    /// Rejected frees of a block already freed (patch 0010).
    pub rejected_double_frees: u64,
}

/// Reads the pool statistics. Without the `cuda` feature, returns a value whose
/// [`cuda_available`](PoolStats::cuda_available) is false.
pub fn pool_stats() -> PoolStats {
    #[cfg(feature = "cuda")]
    {
        let mut raw = crate::sys::ggml_cuda_pool_stats {
            pools_vmm: 0,
            pools_legacy: 0,
            bytes_reserved: 0,
            bytes_in_use: 0,
            peak_bytes_in_use: 0,
            bytes_waiting_reclaim: 0,
            out_of_order_frees: 0,
            rejected_frees: 0,
            rejected_unknown_frees: 0,
            rejected_size_mismatch_frees: 0,
            rejected_double_frees: 0,
        };
        // SAFETY: `raw` is a valid, writable struct of the layout the function fills.
        unsafe { crate::sys::ggml_backend_cuda_get_pool_stats(&mut raw) };
        PoolStats {
            cuda_available: true,
            vmm_pools: raw.pools_vmm,
            legacy_pools: raw.pools_legacy,
            bytes_reserved: raw.bytes_reserved,
            bytes_in_use: raw.bytes_in_use,
            peak_bytes_in_use: raw.peak_bytes_in_use,
            out_of_order_frees: raw.out_of_order_frees,
            bytes_waiting_reclaim: raw.bytes_waiting_reclaim,
            rejected_frees: raw.rejected_frees,
            rejected_unknown_frees: raw.rejected_unknown_frees,
            rejected_size_mismatch_frees: raw.rejected_size_mismatch_frees,
            rejected_double_frees: raw.rejected_double_frees,
        }
    }
    #[cfg(not(feature = "cuda"))]
    {
        PoolStats::default()
    }
}

/// What [`trim`] gave back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct TrimReport {
    /// False in a build without CUDA: there was nothing to trim and nothing was done.
    pub cuda_available: bool,
    /// True when the trim was refused and not attempted (patch 0014): this build uses CUDA
    /// graphs (`GGML_CUDA_GRAPHS=ON`), which replay the addresses of pool memory, and
    /// `GGML_CUDA_DISABLE_GRAPHS` is not set. Every other figure is then zero.
    pub refused_cuda_graphs: bool,
    /// CUDA pools visited (one per backend that has allocated on a device).
    pub pools: u64,
    /// Bytes of device memory returned to the driver.
    pub bytes_released: u64,
    /// Pools that had memory to give back and first waited for the work queued on their
    /// backend's streams (patch 0014).
    pub pools_waited: u64,
    /// Pools where that wait or the release failed (a CUDA error, such as an earlier kernel's
    /// fault): they keep what they hold.
    pub pools_failed: u64,
}

/// Returns the device memory that CUDA pools hold and that no block handed out covers to the
/// driver (patches 0009 and 0014): a virtual-memory pool unmaps the physical memory above its
/// highest block in use, a legacy pool frees its cached buffers; pools grow again on demand,
/// which costs the next large request a fresh allocation.
///
/// What holds: ggml frees a pool's temporary on the host as soon as it has queued the kernel
/// that uses it, so a pool with something to give back first waits, with its lock held, until
/// the work queued on its backend's streams has finished (a pool that knows no streams waits
/// for its whole device); meanwhile that backend's next pool allocation waits too. A pool
/// whose wait fails keeps its memory ([`TrimReport::pools_failed`]). In a build with CUDA
/// graphs the trim is refused unless `GGML_CUDA_DISABLE_GRAPHS` is set
/// ([`TrimReport::refused_cuda_graphs`]). It may be called from any thread. Growing a
/// pool again when the device has no memory left (another process took what a trim gave back)
/// first has the other pools give back what they do not use and tries once more (patch 0020),
/// then aborts the process (ggml's pool interface has no error path): run the GPU in a worker
/// process ([`recognizer::Isolation`](crate::recognizer::Isolation)) to contain that. In a build without CUDA it does
/// nothing and says so ([`TrimReport::cuda_available`] is false).
pub fn trim() -> TrimReport {
    #[cfg(feature = "cuda")]
    {
        let mut raw = crate::sys::ggml_cuda_trim_report {
            pools: 0,
            bytes_released: 0,
            refused_cuda_graphs: 0,
            pools_waited: 0,
            pools_failed: 0,
        };
        // SAFETY: `raw` is a valid, writable struct of the layout the function fills.
        unsafe { crate::sys::ggml_backend_cuda_trim_pools(&mut raw) };
        TrimReport {
            cuda_available: true,
            refused_cuda_graphs: raw.refused_cuda_graphs != 0,
            pools: raw.pools,
            bytes_released: raw.bytes_released,
            pools_waited: raw.pools_waited,
            pools_failed: raw.pools_failed,
        }
    }
    #[cfg(not(feature = "cuda"))]
    {
        TrimReport::default()
    }
}

/// What [`pool_selftest`] and [`pool_selftest_threads`] found: the device self-test of patches
/// 0007 and 0011. Every figure about the pool is the tested pool's own, not the process-wide
/// statistics, so other pools in the process cannot disturb it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PoolSelftest {
    /// The device tested.
    pub device: i32,
    /// True when the pool under test was the virtual-memory pool, false for the legacy pool.
    pub vmm: bool,
    /// Threads that shared the pool.
    pub threads: i32,
    /// Allocations and frees performed.
    pub operations: u64,
    /// Most blocks alive at once.
    pub max_live_blocks: u64,
    /// Live-block read-backs performed.
    pub blocks_verified: u64,
    /// Bytes read back from the device and compared.
    pub bytes_verified: u64,
    /// Bytes that did not hold their block's pattern (0 expected).
    pub pattern_mismatches: u64,
    /// New blocks that overlapped a live block of any thread (0 expected).
    pub overlaps: u64,
    /// Out-of-order frees the pool counted (VMM: more than 0).
    pub out_of_order_frees: u64,
    /// Rejected frees the pool counted (0 expected).
    pub rejected_frees: u64,
    /// Most bytes alive at once (an upper bound: sizes rounded up, counted before allocating).
    pub peak_bytes_in_use: u64,
    /// Device memory the pool held after the frees (its largest).
    pub bytes_reserved: u64,
    /// VMM: the most patch 0001 allows it to hold (peak live + (peak blocks - 1) x largest
    /// block + one granule); 0 for the legacy pool.
    pub reserved_bound: u64,
    /// The pool's bytes in use after everything was freed (0 expected).
    pub bytes_in_use_after: i64,
    /// The pool's bytes in holes after everything was freed (0 expected).
    pub bytes_waiting_after: u64,
    /// VMM: whether the first allocation after draining was at the pool's base; `None` for the
    /// legacy pool.
    pub base_after_drain: Option<bool>,
    /// Bytes the pool's trim returned to the driver (all it held expected).
    pub trim_released: u64,
    /// The driver's free device memory before the trim.
    pub driver_free_before_trim: u64,
    /// The driver's free device memory after the trim (more expected).
    pub driver_free_after_trim: u64,
    /// Whether an allocation after the trim held its byte pattern.
    pub alloc_after_trim: bool,
    /// Wall time of the test in microseconds.
    pub elapsed_us: i64,
    /// True when every check passed.
    pub passed: bool,
    /// `ok`, or what failed.
    pub message: String,
}

/// Runs the one-thread self-test of the pool a new backend gets on `device`; see
/// [`pool_selftest_threads`].
pub fn pool_selftest(device: i32, operations: u32, seed: u64) -> Result<PoolSelftest, String> {
    pool_selftest_threads(device, 1, operations, seed)
}

/// Runs patches 0007/0011's self-test of the pool a new backend gets on `device`: `threads`
/// threads (1 to 64) share it and perform `operations` allocations and frees between them in a
/// pseudo-random order seeded by `seed` (most frees out of order), every live block filled with
/// its own byte pattern on the device and read back after every operation, every new block
/// checked for overlap with every live one. Then, from the pool's own figures: nothing in use or
/// waiting after the frees, the VMM pool within patch 0001's bound and back at its base, and a
/// trim that gives all its memory back to the driver and leaves a working pool.
///
/// The pool kind follows [`pool_policy`] and the environment, as for any backend. Returns the
/// report (with [`passed`](PoolSelftest::passed) false when a check failed), or an error when
/// the test could not run: no CUDA in this build, no such device, or a CUDA error.
pub fn pool_selftest_threads(
    device: i32,
    threads: u32,
    operations: u32,
    seed: u64,
) -> Result<PoolSelftest, String> {
    #[cfg(feature = "cuda")]
    {
        let ops = i32::try_from(operations).map_err(|_| "too many operations".to_string())?;
        let threads = i32::try_from(threads).map_err(|_| "too many threads".to_string())?;
        // SAFETY: the report is plain data; zeroed is a valid value, and the function fills it.
        let mut raw: crate::sys::ggml_cuda_pool_selftest_report = unsafe { std::mem::zeroed() };
        // SAFETY: `raw` is a valid, writable report; the other arguments are checked by the C side.
        let ret = unsafe {
            crate::sys::ggml_backend_cuda_pool_selftest_threads(
                device, threads, ops, seed, &mut raw,
            )
        };
        let message = {
            let bytes: Vec<u8> = raw
                .message
                .iter()
                .take_while(|&&c| c != 0)
                .map(|&c| c as u8)
                .collect();
            String::from_utf8_lossy(&bytes).into_owned()
        };
        if ret < 0 {
            return Err(message);
        }
        Ok(PoolSelftest {
            device: raw.device,
            vmm: raw.vmm != 0,
            threads: raw.threads,
            operations: raw.operations,
            max_live_blocks: raw.max_live_blocks,
            blocks_verified: raw.blocks_verified,
            bytes_verified: raw.bytes_verified,
            pattern_mismatches: raw.pattern_mismatches,
            overlaps: raw.overlaps,
            out_of_order_frees: raw.out_of_order_frees,
            rejected_frees: raw.rejected_frees,
            peak_bytes_in_use: raw.peak_bytes_in_use,
            bytes_reserved: raw.bytes_reserved,
            reserved_bound: raw.reserved_bound,
            bytes_in_use_after: raw.bytes_in_use_after,
            bytes_waiting_after: raw.bytes_waiting_after,
            base_after_drain: (raw.base_after_drain >= 0).then_some(raw.base_after_drain == 1),
            trim_released: raw.trim_released,
            driver_free_before_trim: raw.driver_free_before_trim,
            driver_free_after_trim: raw.driver_free_after_trim,
            alloc_after_trim: raw.alloc_after_trim == 1,
            elapsed_us: raw.elapsed_us,
            passed: ret == 0,
            message,
        })
    }
    #[cfg(not(feature = "cuda"))]
    {
        let _ = (device, threads, operations, seed);
        Err("this build has no CUDA backend (build with the `cuda` feature)".to_string())
    }
}

impl PoolStats {
    /// The statistics of two processes' pools together (the recognizer's and its worker
    /// processes'): counts and bytes added, `cuda_available` if either has CUDA. The peak is
    /// the sum of the peaks, an upper bound of the peak together.
    pub fn combined(self, other: PoolStats) -> PoolStats {
        PoolStats {
            cuda_available: self.cuda_available || other.cuda_available,
            vmm_pools: self.vmm_pools + other.vmm_pools,
            legacy_pools: self.legacy_pools + other.legacy_pools,
            bytes_reserved: self.bytes_reserved + other.bytes_reserved,
            bytes_in_use: self.bytes_in_use + other.bytes_in_use,
            peak_bytes_in_use: self.peak_bytes_in_use + other.peak_bytes_in_use,
            out_of_order_frees: self.out_of_order_frees + other.out_of_order_frees,
            bytes_waiting_reclaim: self.bytes_waiting_reclaim + other.bytes_waiting_reclaim,
            rejected_frees: self.rejected_frees + other.rejected_frees,
            rejected_unknown_frees: self.rejected_unknown_frees + other.rejected_unknown_frees,
            rejected_size_mismatch_frees: self.rejected_size_mismatch_frees
                + other.rejected_size_mismatch_frees,
            rejected_double_frees: self.rejected_double_frees + other.rejected_double_frees,
        }
    }
}

impl TrimReport {
    /// Two processes' trims together (the recognizer's and its worker processes'): pools and
    /// bytes added; `cuda_available` and `refused_cuda_graphs` if either says so.
    pub fn combined(self, other: TrimReport) -> TrimReport {
        TrimReport {
            cuda_available: self.cuda_available || other.cuda_available,
            refused_cuda_graphs: self.refused_cuda_graphs || other.refused_cuda_graphs,
            pools: self.pools + other.pools,
            bytes_released: self.bytes_released + other.bytes_released,
            pools_waited: self.pools_waited + other.pools_waited,
            pools_failed: self.pools_failed + other.pools_failed,
        }
    }
}
