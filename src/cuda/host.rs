//! Host builds of the CUDA-free headers that the patch series adds, for the patch regression
//! tests in `tests/`. Not part of the public API: nothing here touches a GPU, and the types model
//! the bookkeeping only.

use std::ffi::{c_char, c_int, c_void, CStr, CString};

#[repr(C)]
#[derive(Default)]
struct RawSnapshot {
    pools_vmm: i64,
    pools_legacy: i64,
    bytes_reserved: i64,
    bytes_in_use: i64,
    peak_bytes_in_use: i64,
    bytes_waiting_reclaim: i64,
    out_of_order_frees: u64,
    rejected_frees: u64,
}

extern "C" {
    fn ws_pool_bench(imp: c_int, workload: c_int, depth: c_int, pairs: u64, seed: u64) -> f64;
    fn ws_ledger_new() -> *mut c_void;
    fn ws_ledger_drop(ledger: *mut c_void);
    fn ws_ledger_alloc(ledger: *mut c_void, size: usize) -> usize;
    fn ws_ledger_free(ledger: *mut c_void, offset: usize, size: usize) -> c_int;
    fn ws_ledger_used(ledger: *const c_void) -> usize;
    fn ws_ledger_waiting(ledger: *const c_void) -> usize;
    fn ws_ledger_live_bytes(ledger: *const c_void) -> usize;
    fn ws_ledger_blocks(ledger: *const c_void) -> usize;
    fn ws_ledger_out_of_order(ledger: *const c_void) -> u64;
    fn ws_ledger_rejected(ledger: *const c_void) -> u64;
    fn ws_parse_env_bool(value: *const c_char) -> c_int;
    fn ws_pool_decide(
        policy: c_int,
        force_legacy: c_int,
        use_vmm: c_int,
        reason: *mut *const c_char,
    ) -> c_int;
    fn ws_counters_new() -> *mut c_void;
    fn ws_counters_drop(counters: *mut c_void);
    fn ws_counters_pool(counters: *mut c_void, vmm: c_int, created: c_int);
    fn ws_counters_reserved(counters: *mut c_void, delta: i64);
    fn ws_counters_in_use(counters: *mut c_void, delta: i64);
    fn ws_counters_waiting(counters: *mut c_void, delta: i64);
    fn ws_counters_out_of_order(counters: *mut c_void);
    fn ws_counters_rejected(counters: *mut c_void);
    fn ws_counters_snapshot(counters: *const c_void, out: *mut RawSnapshot);
}

/// What a free did to the ledger (`ggml_cuda_vmm_free_result`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FreeResult {
    /// The block was on top: it and the freed blocks below it were reclaimed.
    Reclaimed,
    /// The block was not on top: marked, reclaimed later.
    Deferred,
    /// No block starts at that offset: rejected.
    Unknown,
    /// The size does not match the block: rejected.
    SizeMismatch,
    /// The block was already freed: rejected.
    Double,
}

/// The VMM pool's ledger of live blocks (patch 0001), compiled for the host.
pub struct Ledger(*mut c_void);

// SAFETY: the ledger is a plain C++ object with no thread affinity; &mut self serializes access.
unsafe impl Send for Ledger {}

impl Ledger {
    /// An empty ledger.
    pub fn new() -> Ledger {
        // SAFETY: allocation only; checked for null below.
        let ptr = unsafe { ws_ledger_new() };
        assert!(!ptr.is_null(), "out of memory");
        Ledger(ptr)
    }

    /// Reserves `size` bytes on top of the stack; returns their offset.
    pub fn alloc(&mut self, size: usize) -> usize {
        // SAFETY: self.0 is a live ledger.
        unsafe { ws_ledger_alloc(self.0, size) }
    }

    /// Frees the block at `offset` of `size` bytes.
    pub fn free(&mut self, offset: usize, size: usize) -> FreeResult {
        // SAFETY: self.0 is a live ledger.
        match unsafe { ws_ledger_free(self.0, offset, size) } {
            0 => FreeResult::Reclaimed,
            1 => FreeResult::Deferred,
            2 => FreeResult::Unknown,
            3 => FreeResult::SizeMismatch,
            4 => FreeResult::Double,
            other => panic!("unexpected free result {other}"),
        }
    }

    /// End of the highest block (upstream's `pool_used`).
    pub fn used(&self) -> usize {
        // SAFETY: self.0 is a live ledger.
        unsafe { ws_ledger_used(self.0) }
    }

    /// Bytes freed out of order and not reclaimed yet.
    pub fn waiting(&self) -> usize {
        // SAFETY: self.0 is a live ledger.
        unsafe { ws_ledger_waiting(self.0) }
    }

    /// Bytes of live blocks.
    pub fn live_bytes(&self) -> usize {
        // SAFETY: self.0 is a live ledger.
        unsafe { ws_ledger_live_bytes(self.0) }
    }

    /// Blocks recorded (live and waiting).
    pub fn blocks(&self) -> usize {
        // SAFETY: self.0 is a live ledger.
        unsafe { ws_ledger_blocks(self.0) }
    }

    /// Frees that were not on top.
    pub fn out_of_order(&self) -> u64 {
        // SAFETY: self.0 is a live ledger.
        unsafe { ws_ledger_out_of_order(self.0) }
    }

    /// Frees rejected.
    pub fn rejected(&self) -> u64 {
        // SAFETY: self.0 is a live ledger.
        unsafe { ws_ledger_rejected(self.0) }
    }
}

impl Default for Ledger {
    fn default() -> Self {
        Ledger::new()
    }
}

impl Drop for Ledger {
    fn drop(&mut self) {
        // SAFETY: self.0 came from ws_ledger_new and is dropped once.
        unsafe { ws_ledger_drop(self.0) }
    }
}

/// How an environment value parses (`ggml_cuda_env_bool`, patch 0002).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnvBool {
    /// The variable is not set.
    Unset,
    /// 1/true/yes/on.
    True,
    /// 0/false/no/off.
    False,
    /// Anything else: warned about and ignored.
    Invalid,
}

impl EnvBool {
    fn to_raw(self) -> c_int {
        match self {
            EnvBool::Unset => 0,
            EnvBool::True => 1,
            EnvBool::False => 2,
            EnvBool::Invalid => 3,
        }
    }
}

/// Parses an environment value as the patched ggml-cuda does. `None` is an unset variable.
/// Values with an interior NUL cannot come from the environment and parse as `Invalid`.
pub fn parse_env_bool(value: Option<&str>) -> EnvBool {
    let owned = match value.map(CString::new) {
        None => None,
        Some(Ok(c)) => Some(c),
        Some(Err(_)) => return EnvBool::Invalid,
    };
    let ptr = owned.as_ref().map_or(std::ptr::null(), |c| c.as_ptr());
    // SAFETY: ptr is null or a valid NUL-terminated string that outlives the call.
    match unsafe { ws_parse_env_bool(ptr) } {
        0 => EnvBool::Unset,
        1 => EnvBool::True,
        2 => EnvBool::False,
        _ => EnvBool::Invalid,
    }
}

/// The pool the patched `new_pool_for_device` picks: `(legacy, reason)`.
pub fn pool_decide(
    policy: crate::cuda::PoolPolicy,
    force_legacy: EnvBool,
    use_vmm: EnvBool,
) -> (bool, Option<&'static str>) {
    let policy = c_int::from(policy.to_raw());
    let mut reason: *const c_char = std::ptr::null();
    // SAFETY: reason is a valid out-pointer; the function stores null or a static string.
    let legacy =
        unsafe { ws_pool_decide(policy, force_legacy.to_raw(), use_vmm.to_raw(), &mut reason) };
    let reason = if reason.is_null() {
        None
    } else {
        // SAFETY: non-null reasons are static NUL-terminated literals.
        unsafe { CStr::from_ptr(reason) }.to_str().ok()
    };
    (legacy != 0, reason)
}

/// A snapshot of [`Counters`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CountersSnapshot {
    /// VMM pools alive.
    pub pools_vmm: i64,
    /// Legacy pools alive.
    pub pools_legacy: i64,
    /// Bytes reserved.
    pub bytes_reserved: i64,
    /// Bytes in use.
    pub bytes_in_use: i64,
    /// Peak bytes in use.
    pub peak_bytes_in_use: i64,
    /// Bytes waiting for reclaim.
    pub bytes_waiting_reclaim: i64,
    /// Out-of-order frees.
    pub out_of_order_frees: u64,
    /// Rejected frees.
    pub rejected_frees: u64,
}

/// One set of pool counters (patch 0003), compiled for the host. Its methods take `&self`: the
/// counters are atomics, safe to update from many threads.
pub struct Counters(*mut c_void);

// SAFETY: every operation on the C++ object is an atomic read-modify-write or load.
unsafe impl Send for Counters {}
// SAFETY: as above.
unsafe impl Sync for Counters {}

impl Counters {
    /// Zeroed counters.
    pub fn new() -> Counters {
        // SAFETY: allocation only; checked for null below.
        let ptr = unsafe { ws_counters_new() };
        assert!(!ptr.is_null(), "out of memory");
        Counters(ptr)
    }

    /// A pool of the given kind was created (`true`) or destroyed (`false`).
    pub fn pool(&self, vmm: bool, created: bool) {
        // SAFETY: self.0 is live; the operation is atomic.
        unsafe { ws_counters_pool(self.0, vmm as c_int, created as c_int) }
    }

    /// Reserved bytes changed by `delta`.
    pub fn reserved(&self, delta: i64) {
        // SAFETY: self.0 is live; the operation is atomic.
        unsafe { ws_counters_reserved(self.0, delta) }
    }

    /// Bytes in use changed by `delta` (updates the peak).
    pub fn in_use(&self, delta: i64) {
        // SAFETY: self.0 is live; the operation is atomic.
        unsafe { ws_counters_in_use(self.0, delta) }
    }

    /// Bytes waiting for reclaim changed by `delta`.
    pub fn waiting(&self, delta: i64) {
        // SAFETY: self.0 is live; the operation is atomic.
        unsafe { ws_counters_waiting(self.0, delta) }
    }

    /// One out-of-order free.
    pub fn out_of_order(&self) {
        // SAFETY: self.0 is live; the operation is atomic.
        unsafe { ws_counters_out_of_order(self.0) }
    }

    /// One rejected free.
    pub fn rejected(&self) {
        // SAFETY: self.0 is live; the operation is atomic.
        unsafe { ws_counters_rejected(self.0) }
    }

    /// Reads every counter.
    pub fn snapshot(&self) -> CountersSnapshot {
        let mut raw = RawSnapshot::default();
        // SAFETY: self.0 is live and `raw` has the layout of ws_counters_snapshot.
        unsafe { ws_counters_snapshot(self.0, &mut raw) };
        CountersSnapshot {
            pools_vmm: raw.pools_vmm,
            pools_legacy: raw.pools_legacy,
            bytes_reserved: raw.bytes_reserved,
            bytes_in_use: raw.bytes_in_use,
            peak_bytes_in_use: raw.peak_bytes_in_use,
            bytes_waiting_reclaim: raw.bytes_waiting_reclaim,
            out_of_order_frees: raw.out_of_order_frees,
            rejected_frees: raw.rejected_frees,
        }
    }
}

impl Default for Counters {
    fn default() -> Self {
        Counters::new()
    }
}

impl Drop for Counters {
    fn drop(&mut self) {
        // SAFETY: self.0 came from ws_counters_new and is dropped once.
        unsafe { ws_counters_drop(self.0) }
    }
}

/// The pool microbenchmark of `csrc/pool_host.cpp`: nanoseconds per alloc/free pair of
/// upstream's LIFO bookkeeping (`ledger == false`, LIFO workload only) or of patch 0001's ledger
/// behind the pool's mutex (`ledger == true`), with `depth` live blocks, LIFO frees or
/// pseudo-random out-of-order frees. `None` for an impossible combination (upstream
/// bookkeeping cannot take out-of-order frees).
pub fn pool_bench(ledger: bool, out_of_order: bool, depth: u32, pairs: u64) -> Option<f64> {
    let depth = c_int::try_from(depth).ok()?;
    // SAFETY: plain computation on the host; arguments are checked by the C side.
    let ns = unsafe {
        ws_pool_bench(
            c_int::from(ledger),
            c_int::from(out_of_order),
            depth,
            pairs,
            0x5eed,
        )
    };
    (ns >= 0.0).then_some(ns)
}
