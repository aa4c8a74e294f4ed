//! Patches 0014 and 0015 on the host: a trim's order of waiting and releasing (`pool-trim.h`),
//! a VMM pool's books with the pool's exact free sequence (`vmm-ledger.h`), the size check of a
//! request, and the registry of pools that a trim visits. The device is whatever the caller's
//! closures make of it: tests pass a fake one.

use std::any::Any;
use std::ffi::{c_char, c_int, c_void, CString};
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex, Weak};

use super::{CountersSnapshot, FreeResult, LegacyBook, Mappings, RawSnapshot};

type FenceFn = unsafe extern "C" fn(*mut c_void) -> c_int;
type UnmapFn = unsafe extern "C" fn(*mut c_void, usize, usize) -> c_int;
type DeviceFreeFn = unsafe extern "C" fn(*mut c_void, *mut c_void, usize) -> c_int;
type LogFn = unsafe extern "C" fn(*mut c_void, c_int, c_int, u64);
type VisitFn = unsafe extern "C" fn(*mut c_void, *mut c_void);

extern "C" {
    fn ws_trim_refused_for_graphs(graphs_compiled: c_int, disable_env: *const c_char) -> c_int;
    fn ws_mappings_trim(
        mappings: *mut c_void,
        used: usize,
        fence: FenceFn,
        unmap: UnmapFn,
        user: *mut c_void,
        status: *mut c_int,
    ) -> usize;
    fn ws_legacy_trim(
        book: *mut c_void,
        fence: FenceFn,
        device_free: DeviceFreeFn,
        user: *mut c_void,
        status: *mut c_int,
    ) -> usize;
    fn ws_vmm_round_request(size: usize, rounded: *mut usize) -> c_int;
    fn ws_vmm_pool_new(granule: usize, log: Option<LogFn>, user: *mut c_void) -> *mut c_void;
    fn ws_vmm_pool_drop(pool: *mut c_void);
    fn ws_vmm_pool_alloc(pool: *mut c_void, size: usize, actual: *mut usize) -> usize;
    fn ws_vmm_pool_free(pool: *mut c_void, offset: usize, size: usize, inside: c_int) -> c_int;
    fn ws_vmm_pool_trim(
        pool: *mut c_void,
        fence: FenceFn,
        unmap: UnmapFn,
        user: *mut c_void,
        status: *mut c_int,
    ) -> usize;
    fn ws_vmm_pool_mapped(pool: *mut c_void) -> usize;
    fn ws_vmm_pool_used(pool: *mut c_void) -> usize;
    fn ws_vmm_pool_counters(pool: *mut c_void, out: *mut RawSnapshot);
    fn ws_registry_new() -> *mut c_void;
    fn ws_registry_drop(registry: *mut c_void);
    fn ws_registry_add(registry: *mut c_void, pool: *mut c_void);
    fn ws_registry_remove(registry: *mut c_void, pool: *mut c_void);
    fn ws_registry_size(registry: *mut c_void) -> usize;
    fn ws_registry_for_each(registry: *mut c_void, visit: VisitFn, user: *mut c_void) -> usize;
}

/// The VMM pool's address range (`CUDA_POOL_VMM_MAX_SIZE`, 32 GiB): the largest request it takes.
pub const VMM_MAX_SIZE: usize = 1 << 35;

/// What one pool's trim did (`ggml_cuda_trim_status`, patch 0014).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrimStatus {
    /// Nothing to give back; nothing was waited for.
    Nothing,
    /// The pool's streams were waited for, then the memory was given back.
    Released,
    /// Waiting for the streams failed: nothing was given back.
    FenceFailed,
    /// The streams were waited for, but giving a chunk or buffer back failed: it and the ones
    /// not reached stay in the pool.
    ReleaseFailed,
}

/// A trim's status and the bytes it gave back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrimOutcome {
    /// What happened.
    pub status: TrimStatus,
    /// Bytes given back.
    pub released: usize,
}

impl TrimOutcome {
    fn from_raw(status: c_int, released: usize) -> TrimOutcome {
        let status = match status {
            0 => TrimStatus::Nothing,
            1 => TrimStatus::Released,
            2 => TrimStatus::FenceFailed,
            3 => TrimStatus::ReleaseFailed,
            other => panic!("unexpected trim status {other}"),
        };
        TrimOutcome { status, released }
    }
}

/// Whether the patched `ggml_backend_cuda_trim_pools` refuses: CUDA graphs compiled in and
/// `GGML_CUDA_DISABLE_GRAPHS` unset (`disable_env` is its value, `None` when unset). Values with
/// an interior NUL cannot come from the environment and count as set.
pub fn trim_refused_for_graphs(graphs_compiled: bool, disable_env: Option<&str>) -> bool {
    let owned = disable_env.map(|v| CString::new(v).unwrap_or_default());
    let ptr = owned.as_ref().map_or(std::ptr::null(), |c| c.as_ptr());
    // SAFETY: ptr is null or a valid NUL-terminated string that outlives the call.
    unsafe { ws_trim_refused_for_graphs(c_int::from(graphs_compiled), ptr) != 0 }
}

/// The VMM pool's rounding of a request to 128 bytes (patch 0015), or `None` when the request is
/// larger than the pool's address range ([`VMM_MAX_SIZE`]).
pub fn vmm_round_request(size: usize) -> Option<usize> {
    let mut rounded = 0usize;
    // SAFETY: a pure function; `rounded` is a valid out-pointer.
    (unsafe { ws_vmm_round_request(size, &mut rounded) } != 0).then_some(rounded)
}

/// The caller's fence and release closures, reached from C through the trampolines below. A
/// panic inside one is caught, reported to C as a failure, and resumed once the C call returns.
struct Device<'a> {
    fence: &'a mut dyn FnMut() -> bool,
    release: &'a mut dyn FnMut(usize, usize) -> bool,
    panic: Option<Box<dyn Any + Send>>,
}

impl Device<'_> {
    fn guard(&mut self, f: impl FnOnce(&mut Self) -> bool) -> c_int {
        if self.panic.is_some() {
            return 0;
        }
        match catch_unwind(AssertUnwindSafe(|| f(self))) {
            Ok(ok) => c_int::from(ok),
            Err(payload) => {
                self.panic = Some(payload);
                0
            }
        }
    }
}

/// Runs a C trim `call(user, &mut status) -> released` whose trampolines reach `fence` and
/// `release` through `user`, then resumes a panic caught in either.
fn trim_through(
    fence: &mut dyn FnMut() -> bool,
    release: &mut dyn FnMut(usize, usize) -> bool,
    call: impl FnOnce(*mut c_void, &mut c_int) -> usize,
) -> TrimOutcome {
    let mut device = Device {
        fence,
        release,
        panic: None,
    };
    let mut status = 0;
    let released = call((&mut device as *mut Device<'_>).cast(), &mut status);
    if let Some(payload) = device.panic.take() {
        resume_unwind(payload);
    }
    TrimOutcome::from_raw(status, released)
}

unsafe extern "C" fn fence_trampoline(user: *mut c_void) -> c_int {
    // SAFETY: `user` is the Device that Device::run passed for the duration of the call.
    let device = unsafe { &mut *user.cast::<Device<'_>>() };
    device.guard(|d| (d.fence)())
}

unsafe extern "C" fn unmap_trampoline(user: *mut c_void, offset: usize, size: usize) -> c_int {
    // SAFETY: as in fence_trampoline.
    let device = unsafe { &mut *user.cast::<Device<'_>>() };
    device.guard(|d| (d.release)(offset, size))
}

unsafe extern "C" fn free_trampoline(user: *mut c_void, ptr: *mut c_void, size: usize) -> c_int {
    // SAFETY: as in fence_trampoline.
    let device = unsafe { &mut *user.cast::<Device<'_>>() };
    device.guard(|d| (d.release)(ptr as usize, size))
}

impl Mappings {
    /// The VMM pool's trim (patch 0014) of these chunks when the highest block in use ends at
    /// `used`: when a chunk lies wholly above it, `fence()` (false: waiting failed) and then
    /// `unmap(offset, size)` (false: the driver refused) for each such chunk, highest first.
    pub fn trim_with(
        &mut self,
        used: usize,
        mut fence: impl FnMut() -> bool,
        mut unmap: impl FnMut(usize, usize) -> bool,
    ) -> TrimOutcome {
        let raw = self.0;
        trim_through(&mut fence, &mut unmap, |user, status| {
            // SAFETY: `raw` is live; the trampolines get `user`, valid for the call.
            unsafe { ws_mappings_trim(raw, used, fence_trampoline, unmap_trampoline, user, status) }
        })
    }
}

impl LegacyBook {
    /// The legacy pool's trim (patch 0014): with the book's lock held, `fence()` when a buffer
    /// is cached, then `device_free(address, size)` for each cached buffer (false: the driver
    /// refused, and that buffer and the rest stay cached). A buffer the driver took is freed.
    pub fn trim_with(
        &self,
        mut fence: impl FnMut() -> bool,
        mut device_free: impl FnMut(usize, usize) -> bool,
    ) -> TrimOutcome {
        let raw = self.0;
        trim_through(&mut fence, &mut device_free, |user, status| {
            // SAFETY: `raw` is live; the trampolines get `user`, valid for the call.
            unsafe { ws_legacy_trim(raw, fence_trampoline, free_trampoline, user, status) }
        })
    }
}

/// What [`HostVmmPool`] hands its log callback: the free that is to be logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VmmLogEvent {
    /// The ledger's verdict (`Unknown` for a pointer outside the pool).
    pub result: FreeResult,
    /// The pointer lay outside the pool.
    pub outside: bool,
    /// The pool's rejected frees so far, this one included.
    pub n_rejected: u64,
}

/// The log callback of a [`HostVmmPool`]; it may use the pool again.
pub type VmmLog = Box<dyn Fn(&HostVmmPool, VmmLogEvent) + Send + Sync>;

/// A VMM pool's host-side books as `ggml_cuda_pool_vmm` keeps them (patches 0001, 0009, 0014,
/// 0015): ledger, mapped chunks (grown by whole granules) and counters behind one mutex, frees
/// through the pool's own sequence (books and counters under the mutex, the log callback after
/// it), trims through `pool-trim.h` under the mutex. Methods take `&self`: many threads may
/// share it.
pub struct HostVmmPool {
    raw: *mut c_void,
    log: Option<VmmLog>,
    panic: Mutex<Option<Box<dyn Any + Send>>>,
}

// SAFETY: every operation on the C++ object holds its mutex; the log callback is Send + Sync.
unsafe impl Send for HostVmmPool {}
// SAFETY: as above.
unsafe impl Sync for HostVmmPool {}

unsafe extern "C" fn log_trampoline(user: *mut c_void, result: c_int, outside: c_int, n: u64) {
    // SAFETY: `user` is the address of the HostVmmPool inside its Arc, which outlives every call
    // on it (the C object is dropped with it).
    let pool = unsafe { &*user.cast::<HostVmmPool>() };
    let Some(log) = pool.log.as_ref() else { return };
    let event = VmmLogEvent {
        result: FreeResult::from_raw(result),
        outside: outside != 0,
        n_rejected: n,
    };
    if let Err(payload) = catch_unwind(AssertUnwindSafe(|| log(pool, event))) {
        pool.panic
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_or_insert(payload);
    }
}

impl HostVmmPool {
    /// An empty pool that maps memory in chunks of `granule` bytes, logging through `log`.
    pub fn new(granule: usize, log: Option<VmmLog>) -> Arc<HostVmmPool> {
        Arc::new_cyclic(|weak: &Weak<HostVmmPool>| {
            let user = weak.as_ptr().cast_mut().cast::<c_void>();
            let callback: Option<LogFn> = log.is_some().then_some(log_trampoline as LogFn);
            // SAFETY: allocation only; `user` is where this pool will live.
            let raw = unsafe { ws_vmm_pool_new(granule, callback, user) };
            assert!(!raw.is_null(), "out of memory");
            HostVmmPool {
                raw,
                log,
                panic: Mutex::new(None),
            }
        })
    }

    fn resume_log_panic(&self) {
        let payload = self.panic.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(payload) = payload {
            resume_unwind(payload);
        }
    }

    /// Allocates `size` bytes as the pool does: `(offset, rounded size)`, or `None` for a
    /// request larger than the pool's address range.
    pub fn alloc(&self, size: usize) -> Option<(usize, usize)> {
        let mut actual = 0usize;
        // SAFETY: self.raw is live; `actual` is a valid out-pointer.
        let offset = unsafe { ws_vmm_pool_alloc(self.raw, size, &mut actual) };
        (offset != usize::MAX).then_some((offset, actual))
    }

    /// Frees the block at `offset` of `size` (rounded) bytes.
    pub fn free(&self, offset: usize, size: usize) -> FreeResult {
        // SAFETY: self.raw is live.
        let result = unsafe { ws_vmm_pool_free(self.raw, offset, size, 1) };
        self.resume_log_panic();
        FreeResult::from_raw(result)
    }

    /// Frees a pointer that lies outside the pool.
    pub fn free_outside(&self, size: usize) -> FreeResult {
        // SAFETY: self.raw is live.
        let result = unsafe { ws_vmm_pool_free(self.raw, 0, size, 0) };
        self.resume_log_panic();
        FreeResult::from_raw(result)
    }

    /// The pool's trim, with its mutex held: see [`Mappings::trim_with`].
    pub fn trim_with(
        &self,
        mut fence: impl FnMut() -> bool,
        mut unmap: impl FnMut(usize, usize) -> bool,
    ) -> TrimOutcome {
        let raw = self.raw;
        trim_through(&mut fence, &mut unmap, |user, status| {
            // SAFETY: `raw` is live; the trampolines get `user`, valid for the call.
            unsafe { ws_vmm_pool_trim(raw, fence_trampoline, unmap_trampoline, user, status) }
        })
    }

    /// Bytes mapped.
    pub fn mapped(&self) -> usize {
        // SAFETY: self.raw is live.
        unsafe { ws_vmm_pool_mapped(self.raw) }
    }

    /// End of the highest block in use.
    pub fn used(&self) -> usize {
        // SAFETY: self.raw is live.
        unsafe { ws_vmm_pool_used(self.raw) }
    }

    /// The pool's own counters.
    pub fn counters(&self) -> CountersSnapshot {
        let mut raw = RawSnapshot::default();
        // SAFETY: self.raw is live and `raw` has the layout of ws_counters_snapshot.
        unsafe { ws_vmm_pool_counters(self.raw, &mut raw) };
        raw.into()
    }
}

impl Drop for HostVmmPool {
    fn drop(&mut self) {
        // SAFETY: self.raw came from ws_vmm_pool_new and is dropped once.
        unsafe { ws_vmm_pool_drop(self.raw) }
    }
}

/// The registry of pools that a trim visits (patch 0015), compiled for the host; pools are
/// plain non-zero numbers here. Methods take `&self`: many threads may share it.
pub struct PoolRegistry(*mut c_void);

// SAFETY: every operation on the C++ object holds its mutex.
unsafe impl Send for PoolRegistry {}
// SAFETY: as above.
unsafe impl Sync for PoolRegistry {}

unsafe extern "C" fn visit_trampoline(user: *mut c_void, pool: *mut c_void) {
    // SAFETY: `user` is the closure PoolRegistry::for_each passed for the duration of the call.
    let visit = unsafe { &mut *user.cast::<&mut dyn FnMut(usize)>() };
    visit(pool as usize);
}

impl PoolRegistry {
    /// An empty registry.
    pub fn new() -> PoolRegistry {
        // SAFETY: allocation only; checked for null below.
        let raw = unsafe { ws_registry_new() };
        assert!(!raw.is_null(), "out of memory");
        PoolRegistry(raw)
    }

    /// Registers `pool` (non-zero), as a pool's constructor does.
    pub fn add(&self, pool: usize) {
        assert_ne!(pool, 0);
        // SAFETY: self.0 is live; the pool is an opaque address.
        unsafe { ws_registry_add(self.0, pool as *mut c_void) }
    }

    /// Waits until no trim works on `pool`, then forgets it, as a pool's destructor does.
    pub fn remove(&self, pool: usize) {
        // SAFETY: self.0 is live; the pool is an opaque address.
        unsafe { ws_registry_remove(self.0, pool as *mut c_void) }
    }

    /// Pools registered.
    pub fn len(&self) -> usize {
        // SAFETY: self.0 is live.
        unsafe { ws_registry_size(self.0) }
    }

    /// Whether no pool is registered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Visits every pool as a trim does: pinned, without the registry's lock held. `visit` must
    /// not panic (it runs inside C++; a panic aborts the process). Returns the pools visited.
    pub fn for_each(&self, mut visit: impl FnMut(usize)) -> usize {
        let mut visit: &mut dyn FnMut(usize) = &mut visit;
        let user = (&mut visit as *mut &mut dyn FnMut(usize)).cast::<c_void>();
        // SAFETY: self.0 is live; `user` points at `visit` for the duration of the call.
        unsafe { ws_registry_for_each(self.0, visit_trampoline, user) }
    }
}

impl Default for PoolRegistry {
    fn default() -> Self {
        PoolRegistry::new()
    }
}

impl Drop for PoolRegistry {
    fn drop(&mut self) {
        // SAFETY: self.0 came from ws_registry_new and is dropped once.
        unsafe { ws_registry_drop(self.0) }
    }
}
