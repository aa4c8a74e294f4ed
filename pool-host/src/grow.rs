//! Patch 0020 on the host: a pool's growth that finds no room makes room once, with the pool's
//! lock released, and tries again (`pool-grow.h`); the per-pool cap's parsing. The pool's steps
//! are the caller's closures: tests pass fakes.

use std::any::Any;
use std::ffi::{c_char, c_int, c_void, CString};
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};

type GrowFn = unsafe extern "C" fn(*mut c_void) -> c_int;
type RoomFn = unsafe extern "C" fn(*mut c_void);

extern "C" {
    fn ws_grow_lock_new() -> *mut c_void;
    fn ws_grow_lock_drop(lock: *mut c_void);
    fn ws_grow_lock_held(lock: *mut c_void) -> c_int;
    fn ws_pool_grow(lock: *mut c_void, grow: GrowFn, room: RoomFn, user: *mut c_void) -> c_int;
    fn ws_pool_cap_parse(value: *const c_char) -> usize;
}

/// A pool's lock (a C++ `std::mutex`), as `ggml_cuda_pool_grow` takes and releases it.
pub struct GrowLock(*mut c_void);

// SAFETY: a std::mutex may be used from any thread.
unsafe impl Send for GrowLock {}
unsafe impl Sync for GrowLock {}

impl GrowLock {
    pub fn new() -> GrowLock {
        // SAFETY: allocation only; checked for null below.
        let raw = unsafe { ws_grow_lock_new() };
        assert!(!raw.is_null(), "out of memory");
        GrowLock(raw)
    }

    /// Whether some thread holds it. Ask from a thread that does not (another one than the
    /// growing thread while it grows): asking from the holder is undefined in C++.
    pub fn held_elsewhere(&self) -> bool {
        // SAFETY: self.0 is live; see above for the thread.
        unsafe { ws_grow_lock_held(self.0) != 0 }
    }

    /// `ggml_cuda_pool_grow` with this lock: `grow` (true: there is room now) runs with the
    /// lock held; when it finds no room, `make_room` runs with the lock released, then `grow`
    /// once more. Returns whether the pool has room in the end.
    pub fn grow(&self, grow: &mut dyn FnMut() -> bool, make_room: &mut dyn FnMut()) -> bool {
        let mut steps = Steps {
            grow,
            make_room,
            panic: None,
        };
        let user = (&mut steps as *mut Steps).cast::<c_void>();
        // SAFETY: self.0 is live; `user` outlives the call and the trampolines know its type.
        let status = unsafe { ws_pool_grow(self.0, grow_trampoline, room_trampoline, user) };
        if let Some(panic) = steps.panic {
            resume_unwind(panic);
        }
        status == 0
    }
}

impl Default for GrowLock {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for GrowLock {
    fn drop(&mut self) {
        // SAFETY: created by ws_grow_lock_new, dropped once.
        unsafe { ws_grow_lock_drop(self.0) }
    }
}

/// The caller's steps, reached from C; a panic in one is kept and resumed after the C call.
struct Steps<'a> {
    grow: &'a mut dyn FnMut() -> bool,
    make_room: &'a mut dyn FnMut(),
    panic: Option<Box<dyn Any + Send>>,
}

unsafe extern "C" fn grow_trampoline(user: *mut c_void) -> c_int {
    // SAFETY: `user` is the Steps that GrowLock::grow passed for the duration of the call.
    let steps = unsafe { &mut *user.cast::<Steps>() };
    if steps.panic.is_some() {
        return 0;
    }
    match catch_unwind(AssertUnwindSafe(|| (steps.grow)())) {
        Ok(true) => 0,
        Ok(false) => 1,
        Err(panic) => {
            steps.panic = Some(panic);
            0
        }
    }
}

unsafe extern "C" fn room_trampoline(user: *mut c_void) {
    // SAFETY: as above.
    let steps = unsafe { &mut *user.cast::<Steps>() };
    if steps.panic.is_some() {
        return;
    }
    if let Err(panic) = catch_unwind(AssertUnwindSafe(|| (steps.make_room)())) {
        steps.panic = Some(panic);
    }
}

/// The cap of one pool that `WHISPER_STEADY_CUDA_POOL_MAX_BYTES = value` sets (0: none).
pub fn pool_cap_parse(value: &str) -> usize {
    let value = CString::new(value).expect("no NUL");
    // SAFETY: a valid C string for the duration of the call.
    unsafe { ws_pool_cap_parse(value.as_ptr()) }
}
