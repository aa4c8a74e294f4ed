//! The closures behind `FullParams`'s safe callback setters, and the C trampolines that call
//! them.
//!
//! Each closure lives in an `Arc<Mutex<..>>` owned by the `FullParams` (and shared by its
//! clones); whisper.cpp gets a thin pointer to the mutex as user data. The mutex makes the
//! `FnMut` exclusive even when whisper.cpp calls from several threads or two cloned params run
//! at once, and the closures must be `Send` because whisper.cpp may call them on its worker
//! threads. A panic inside a closure is caught: it must not unwind into C.

use std::ffi::{c_int, c_void, CStr};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex};

use crate::sys;
use crate::SegmentCallbackData;

/// A boxed closure behind a mutex; `Arc::as_ptr` of it is the C user data.
pub(crate) type Shared<F> = Arc<Mutex<Box<F>>>;

/// The progress closure.
pub(crate) type ProgressFn = dyn FnMut(i32) + Send;
/// The abort closure.
pub(crate) type AbortFn = dyn FnMut() -> bool + Send;

/// The segment closure, and whether it wants invalid UTF-8 replaced (`true`) or such segments
/// skipped (`false`).
pub(crate) struct SegmentCallback {
    pub(crate) lossy: bool,
    pub(crate) closure: Mutex<Box<dyn FnMut(SegmentCallbackData) + Send>>,
}

pub(crate) fn share<F: ?Sized>(closure: Box<F>) -> Shared<F> {
    Arc::new(Mutex::new(closure))
}

/// The C user data for a callback cell: the `Arc`'s pointer, or null when there is none.
pub(crate) fn user_data<T>(cell: &Option<Arc<T>>) -> *mut c_void {
    cell.as_ref()
        .map_or(std::ptr::null_mut(), |c| Arc::as_ptr(c) as *mut c_void)
}

/// Runs `f` with the closure locked; a panic becomes `on_panic`.
fn call<F: ?Sized, R>(cell: &Mutex<Box<F>>, on_panic: R, f: impl FnOnce(&mut F) -> R) -> R {
    let mut guard = cell.lock().unwrap_or_else(|p| p.into_inner());
    catch_unwind(AssertUnwindSafe(|| f(&mut **guard))).unwrap_or(on_panic)
}

pub(crate) unsafe extern "C" fn progress_trampoline(
    _ctx: *mut sys::whisper_context,
    _state: *mut sys::whisper_state,
    progress: c_int,
    user_data: *mut c_void,
) {
    // SAFETY: user data is the `Arc::as_ptr` of a `Shared<ProgressFn>` that the FullParams
    // passed to whisper_full keeps alive for the whole call.
    let cell = unsafe { &*(user_data as *const Mutex<Box<ProgressFn>>) };
    // whisper.cpp reports past 100 when its last window reaches beyond the audio (3030 for one
    // second of it); a percentage is what the callback was promised.
    call(cell, (), |f| f(progress.clamp(0, 100)));
}

pub(crate) unsafe extern "C" fn abort_trampoline(user_data: *mut c_void) -> bool {
    // SAFETY: as in progress_trampoline, for a `Shared<AbortFn>`.
    let cell = unsafe { &*(user_data as *const Mutex<Box<AbortFn>>) };
    // A panicking abort callback stops the computation.
    call(cell, true, |f| f())
}

pub(crate) unsafe extern "C" fn segment_trampoline(
    _ctx: *mut sys::whisper_context,
    state: *mut sys::whisper_state,
    n_new: c_int,
    user_data: *mut c_void,
) {
    // SAFETY: as in progress_trampoline, for an `Arc<SegmentCallback>`.
    let callback = unsafe { &*(user_data as *const SegmentCallback) };
    // SAFETY: whisper.cpp calls this from whisper_full with the state it is filling; reading
    // its finished segments is what the callback is for.
    let n_segments = unsafe { sys::whisper_full_n_segments_from_state(state) };
    for i in (n_segments - n_new).max(0)..n_segments {
        // SAFETY: i is in bounds; the text pointer is valid during the callback.
        let (text, t0, t1) = unsafe {
            let text = sys::whisper_full_get_segment_text_from_state(state, i);
            (
                text,
                sys::whisper_full_get_segment_t0_from_state(state, i),
                sys::whisper_full_get_segment_t1_from_state(state, i),
            )
        };
        if text.is_null() {
            continue;
        }
        // SAFETY: non-null NUL-terminated string owned by the state.
        let text = unsafe { CStr::from_ptr(text) };
        let text = if callback.lossy {
            text.to_string_lossy().into_owned()
        } else {
            match text.to_str() {
                Ok(t) => t.to_owned(),
                Err(_) => continue,
            }
        };
        let data = SegmentCallbackData {
            segment: i,
            start_timestamp: t0,
            end_timestamp: t1,
            text,
        };
        call(&callback.closure, (), |f| f(data));
    }
}
