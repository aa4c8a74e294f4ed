//! Host builds of the CUDA-free headers that the patch series adds, for the patch regression
//! tests (`tests/pool/`) and the pool microbenchmark (`steady-bench pool`). Test scaffolding,
//! not published with whisper-steady: nothing here touches a GPU, and the types model the
//! bookkeeping only.

use std::ffi::{c_char, c_int, c_void, CStr, CString};

// Every handle may move between and be shared by threads, as the patched headers allow.
const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    send_sync::<LegacyBook>();
    send_sync::<GrowLock>();
};

mod grow;
mod trim;

pub use grow::{pool_cap_parse, GrowLock};
pub use trim::{
    trim_refused_for_graphs, vmm_round_request, HostVmmPool, PoolRegistry, TrimOutcome, TrimStatus,
    VmmLog, VmmLogEvent, VMM_MAX_SIZE,
};

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
    rejected_unknown: u64,
    rejected_size_mismatch: u64,
    rejected_double: u64,
}

extern "C" {
    fn ws_pool_bench(imp: c_int, workload: c_int, depth: c_int, pairs: u64, seed: u64) -> f64;
    fn ws_ledger_new() -> *mut c_void;
    fn ws_ledger_drop(ledger: *mut c_void);
    fn ws_ledger_alloc(ledger: *mut c_void, size: usize) -> usize;
    fn ws_ledger_free(ledger: *mut c_void, offset: usize, size: usize) -> c_int;
    fn ws_ledger_place(ledger: *const c_void, size: usize) -> usize;
    fn ws_ledger_holes(ledger: *const c_void) -> usize;
    fn ws_ledger_log_rejected(n_rejected: u64) -> c_int;
    fn ws_ledger_used(ledger: *const c_void) -> usize;
    fn ws_ledger_waiting(ledger: *const c_void) -> usize;
    fn ws_ledger_live_bytes(ledger: *const c_void) -> usize;
    fn ws_ledger_blocks(ledger: *const c_void) -> usize;
    fn ws_ledger_out_of_order(ledger: *const c_void) -> u64;
    fn ws_ledger_rejected(ledger: *const c_void) -> u64;
    fn ws_parse_env_bool(value: *const c_char) -> c_int;
    fn ws_mappings_new() -> *mut c_void;
    fn ws_mappings_drop(mappings: *mut c_void);
    fn ws_mappings_add(mappings: *mut c_void, bytes: usize);
    fn ws_mappings_mapped(mappings: *const c_void) -> usize;
    fn ws_mappings_release_above(
        mappings: *mut c_void,
        used: usize,
        out: *mut usize,
        capacity: usize,
    ) -> usize;
    fn ws_legacy_new() -> *mut c_void;
    fn ws_legacy_drop(book: *mut c_void);
    fn ws_legacy_alloc(
        book: *mut c_void,
        size: usize,
        actual_size: *mut usize,
        fresh: *mut c_int,
    ) -> *mut c_void;
    fn ws_legacy_free(book: *mut c_void, ptr: *mut c_void, size: usize) -> c_int;
    fn ws_legacy_drain(book: *mut c_void) -> usize;
    fn ws_legacy_pool_size(book: *mut c_void) -> usize;
    fn ws_legacy_cached_bytes(book: *mut c_void) -> usize;
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
    fn ws_counters_rejected(counters: *mut c_void, kind: c_int);
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
    /// The block is already a hole: rejected.
    Double,
}

impl FreeResult {
    /// The value of a `ggml_cuda_vmm_free_result`.
    fn from_raw(raw: c_int) -> FreeResult {
        match raw {
            0 => FreeResult::Reclaimed,
            1 => FreeResult::Deferred,
            2 => FreeResult::Unknown,
            3 => FreeResult::SizeMismatch,
            4 => FreeResult::Double,
            other => panic!("unexpected free result {other}"),
        }
    }
}

/// Whether the VMM pool logs its `n_rejected`-th rejected free (1-based): the first and then
/// every 1000th; all are counted.
pub fn log_rejected(n_rejected: u64) -> bool {
    // SAFETY: a pure function of its argument.
    unsafe { ws_ledger_log_rejected(n_rejected) != 0 }
}

/// The VMM pool's ledger of blocks and holes (patch 0001), compiled for the host.
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

    /// Reserves `size` bytes in the first hole that holds them, else on top of the stack;
    /// returns their offset.
    pub fn alloc(&mut self, size: usize) -> usize {
        // SAFETY: self.0 is a live ledger.
        unsafe { ws_ledger_alloc(self.0, size) }
    }

    /// Frees the block at `offset` of `size` bytes.
    pub fn free(&mut self, offset: usize, size: usize) -> FreeResult {
        // SAFETY: self.0 is a live ledger.
        FreeResult::from_raw(unsafe { ws_ledger_free(self.0, offset, size) })
    }

    /// The offset [`alloc`](Self::alloc) would return for `size` bytes, changing nothing.
    pub fn place(&self, size: usize) -> usize {
        // SAFETY: self.0 is a live ledger.
        unsafe { ws_ledger_place(self.0, size) }
    }

    /// Holes: freed ranges below the top (neighbouring holes are merged).
    pub fn holes(&self) -> usize {
        // SAFETY: self.0 is a live ledger.
        unsafe { ws_ledger_holes(self.0) }
    }

    /// End of the highest block (upstream's `pool_used`).
    pub fn used(&self) -> usize {
        // SAFETY: self.0 is a live ledger.
        unsafe { ws_ledger_used(self.0) }
    }

    /// Bytes in holes: freed out of order, reusable, not reclaimed yet.
    pub fn waiting(&self) -> usize {
        // SAFETY: self.0 is a live ledger.
        unsafe { ws_ledger_waiting(self.0) }
    }

    /// Bytes of live blocks.
    pub fn live_bytes(&self) -> usize {
        // SAFETY: self.0 is a live ledger.
        unsafe { ws_ledger_live_bytes(self.0) }
    }

    /// Blocks recorded (live blocks and holes).
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

/// The chunks of physical memory a VMM pool has mapped (patch 0009), compiled for the host.
pub struct Mappings(*mut c_void);

// SAFETY: a plain C++ object with no thread affinity; &mut self serializes changes.
unsafe impl Send for Mappings {}

impl Mappings {
    /// Nothing mapped.
    pub fn new() -> Mappings {
        // SAFETY: allocation only; checked for null below.
        let ptr = unsafe { ws_mappings_new() };
        assert!(!ptr.is_null(), "out of memory");
        Mappings(ptr)
    }

    /// Records a chunk of `bytes` mapped at the end, as the pool does when it grows.
    pub fn add(&mut self, bytes: usize) {
        // SAFETY: self.0 is live.
        unsafe { ws_mappings_add(self.0, bytes) }
    }

    /// Bytes mapped.
    pub fn mapped(&self) -> usize {
        // SAFETY: self.0 is live.
        unsafe { ws_mappings_mapped(self.0) }
    }

    /// What a trim releases when the highest block in use ends at `used`: the chunks, as
    /// `(offset, size)`, highest first; they are removed.
    pub fn release_above(&mut self, used: usize) -> Vec<(usize, usize)> {
        let mut out = vec![0usize; 2 * 4096];
        // SAFETY: self.0 is live; `out` holds 4096 pairs.
        let n = unsafe { ws_mappings_release_above(self.0, used, out.as_mut_ptr(), 4096) };
        assert!(n <= 4096, "more chunks than the test buffer holds");
        out.chunks(2).take(n).map(|p| (p[0], p[1])).collect()
    }
}

impl Default for Mappings {
    fn default() -> Self {
        Mappings::new()
    }
}

impl Drop for Mappings {
    fn drop(&mut self) {
        // SAFETY: self.0 came from ws_mappings_new and is dropped once.
        unsafe { ws_mappings_drop(self.0) }
    }
}

/// A buffer handed out by [`LegacyBook::alloc`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LegacyBuffer {
    /// Its address (host memory from `malloc`, standing in for device memory).
    pub ptr: *mut u8,
    /// Its size: at least the request (a cached buffer may be larger).
    pub size: usize,
    /// True when it was newly obtained from the "device" rather than taken from the cache.
    pub fresh: bool,
}

// SAFETY: a plain address and size; whoever holds it owns the buffer until it is freed.
unsafe impl Send for LegacyBuffer {}

/// The legacy CUDA pool's bookkeeping (patch 0008), compiled for the host with `malloc` as the
/// device allocator. Its methods take `&self`: every operation holds the book's own mutex, as
/// in the pool, so that many threads may share one book.
pub struct LegacyBook(*mut c_void);

// SAFETY: every operation on the C++ object holds its mutex.
unsafe impl Send for LegacyBook {}
// SAFETY: as above.
unsafe impl Sync for LegacyBook {}

impl LegacyBook {
    /// An empty book.
    pub fn new() -> LegacyBook {
        // SAFETY: allocation only; checked for null below.
        let ptr = unsafe { ws_legacy_new() };
        assert!(!ptr.is_null(), "out of memory");
        LegacyBook(ptr)
    }

    /// Takes the best-fitting cached buffer, or a new one of about `size * 1.05` bytes.
    pub fn alloc(&self, size: usize) -> LegacyBuffer {
        let (mut actual, mut fresh) = (0usize, 0 as c_int);
        // SAFETY: self.0 is a live book; both out-pointers are valid.
        let ptr = unsafe { ws_legacy_alloc(self.0, size, &mut actual, &mut fresh) };
        assert!(!ptr.is_null(), "malloc failed");
        LegacyBuffer {
            ptr: ptr.cast(),
            size: actual,
            fresh: fresh != 0,
        }
    }

    /// Returns a buffer; true when it was cached, false when the cache was full and it went
    /// back to the "device".
    ///
    /// # Safety
    /// `buffer` must come from this book's [`alloc`](Self::alloc) and not be freed yet.
    pub unsafe fn free(&self, buffer: LegacyBuffer) -> bool {
        // SAFETY: forwarded to the caller's contract.
        unsafe { ws_legacy_free(self.0, buffer.ptr.cast(), buffer.size) != 0 }
    }

    /// Gives every cached buffer back; returns the bytes released.
    pub fn drain(&self) -> usize {
        // SAFETY: self.0 is a live book.
        unsafe { ws_legacy_drain(self.0) }
    }

    /// Bytes obtained from the "device" and not given back (handed out plus cached).
    pub fn pool_size(&self) -> usize {
        // SAFETY: self.0 is a live book.
        unsafe { ws_legacy_pool_size(self.0) }
    }

    /// Bytes in the cache.
    pub fn cached_bytes(&self) -> usize {
        // SAFETY: self.0 is a live book.
        unsafe { ws_legacy_cached_bytes(self.0) }
    }
}

impl Default for LegacyBook {
    fn default() -> Self {
        LegacyBook::new()
    }
}

impl Drop for LegacyBook {
    fn drop(&mut self) {
        // SAFETY: self.0 came from ws_legacy_new and is dropped once; it frees the cached
        // buffers (buffers still handed out belong to their holders).
        unsafe { ws_legacy_drop(self.0) }
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
    policy: whisper_steady::cuda::PoolPolicy,
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
    /// Rejected as unknown (patch 0010).
    pub rejected_unknown: u64,
    /// Rejected for a wrong size (patch 0010).
    pub rejected_size_mismatch: u64,
    /// Rejected as double frees (patch 0010).
    pub rejected_double: u64,
}

/// Why a pool ignored a free (patch 0010's `ggml_cuda_pool_reject_kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectKind {
    /// No block starts at the pointer, or it lies outside the pool.
    Unknown,
    /// A block starts there with another size.
    SizeMismatch,
    /// The block was already freed.
    Double,
}

impl RejectKind {
    /// The kind of a rejected ledger free; `None` for a free that was accepted.
    pub fn of(result: FreeResult) -> Option<RejectKind> {
        match result {
            FreeResult::Reclaimed | FreeResult::Deferred => None,
            FreeResult::Unknown => Some(RejectKind::Unknown),
            FreeResult::SizeMismatch => Some(RejectKind::SizeMismatch),
            FreeResult::Double => Some(RejectKind::Double),
        }
    }
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

    /// One rejected free of the given kind (counted in the total and in its kind).
    pub fn rejected(&self, kind: RejectKind) {
        let raw = match kind {
            RejectKind::Unknown => 0,
            RejectKind::SizeMismatch => 1,
            RejectKind::Double => 2,
        };
        // SAFETY: self.0 is live; the operation is atomic; `raw` is a valid kind.
        unsafe { ws_counters_rejected(self.0, raw) }
    }

    /// Reads every counter.
    pub fn snapshot(&self) -> CountersSnapshot {
        let mut raw = RawSnapshot::default();
        // SAFETY: self.0 is live and `raw` has the layout of ws_counters_snapshot.
        unsafe { ws_counters_snapshot(self.0, &mut raw) };
        raw.into()
    }
}

impl From<RawSnapshot> for CountersSnapshot {
    fn from(raw: RawSnapshot) -> CountersSnapshot {
        CountersSnapshot {
            pools_vmm: raw.pools_vmm,
            pools_legacy: raw.pools_legacy,
            bytes_reserved: raw.bytes_reserved,
            bytes_in_use: raw.bytes_in_use,
            peak_bytes_in_use: raw.peak_bytes_in_use,
            bytes_waiting_reclaim: raw.bytes_waiting_reclaim,
            out_of_order_frees: raw.out_of_order_frees,
            rejected_frees: raw.rejected_frees,
            rejected_unknown: raw.rejected_unknown,
            rejected_size_mismatch: raw.rejected_size_mismatch,
            rejected_double: raw.rejected_double,
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
