//! The crash that started this crate, as code: one whisper.cpp context shared by many threads,
//! each calling `whisper_full` on the context's default state through the raw C API, as the
//! request handlers of a C++ server do. `gpu-check` runs it on the GPU (rows `shared-unlocked`
//! and `shared-locked`); `examples/shared_context_race.rs` is it as a program, and
//! `tests/shared_context.rs` runs it in-process (both include this file).

use std::ffi::{c_int, CStr};
use std::path::Path;
use std::sync::Barrier;

use whisper_steady::sys;

/// A raw context whose default state is shared by every thread, as in the user's server.
pub struct SharedContext(*mut sys::whisper_context);

// SAFETY: the pointer is only passed to whisper.cpp, whose thread safety is what this program
// examines; the context is freed once, in Drop, after every thread has been joined.
unsafe impl Send for SharedContext {}
// SAFETY: as above.
unsafe impl Sync for SharedContext {}

impl SharedContext {
    /// Loads a model with its default state, on the GPU when `use_gpu` and the build has one.
    pub fn load_on(model: &Path, use_gpu: bool) -> Result<Self, String> {
        let path = std::ffi::CString::new(model.to_string_lossy().into_owned())
            .map_err(|_| format!("{} contains a NUL byte", model.display()))?;
        // SAFETY: default parameters by value; a valid C string.
        let ctx = unsafe {
            let mut params = sys::whisper_context_default_params();
            params.use_gpu = use_gpu;
            sys::whisper_init_from_file_with_params(path.as_ptr(), params)
        };
        if ctx.is_null() {
            return Err(format!("whisper.cpp could not load {}", model.display()));
        }
        Ok(SharedContext(ctx))
    }

    /// The raw pointer.
    pub fn raw(&self) -> *mut sys::whisper_context {
        self.0
    }
}

impl Drop for SharedContext {
    fn drop(&mut self) {
        // SAFETY: created by whisper_init_from_file_with_params, freed once.
        unsafe { sys::whisper_free(self.0) }
    }
}

/// What one `whisper_full` call returned, and the text read after it.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    /// The return value of `whisper_full`.
    pub ret: c_int,
    /// The segments' text, joined.
    pub text: String,
}

/// Functions that lock and unlock the default state (patch 0006's `whisper_lock` and
/// `whisper_unlock`), held across `whisper_full` and the reading of its segments.
pub type Hold = (
    unsafe extern "C" fn(*mut sys::whisper_context),
    unsafe extern "C" fn(*mut sys::whisper_context),
);

/// Greedy English decoding with `threads` threads, printing nothing, without temperature
/// fallback: it samples from the state's random generator, so repeated calls could
/// legitimately differ. Without it every correct call gives the same text.
pub fn quiet_greedy_params(threads: c_int) -> sys::whisper_full_params {
    // SAFETY: returns a parameter struct by value; the language is a static C string.
    let mut params = unsafe {
        sys::whisper_full_default_params(sys::whisper_sampling_strategy_WHISPER_SAMPLING_GREEDY)
    };
    params.n_threads = threads;
    params.language = c"en".as_ptr();
    params.print_progress = false;
    params.print_realtime = false;
    params.print_timestamps = false;
    params.print_special = false;
    params.temperature_inc = 0.0;
    params
}

/// One `whisper_full` on the default state, then the reading of its segments.
pub fn transcribe(ctx: &SharedContext, samples: &[f32], hold: Option<Hold>) -> Call {
    let n_samples = c_int::try_from(samples.len()).expect("a clip shorter than 2^31 samples");
    // SAFETY: raw calls on a live context with a valid sample slice; the lock functions, when
    // given, are patch 0006's, and every lock is paired with an unlock.
    unsafe {
        let params = quiet_greedy_params(2);
        if let Some((lock, _)) = hold {
            lock(ctx.raw());
        }
        let ret = sys::whisper_full(ctx.raw(), params, samples.as_ptr(), n_samples);
        let mut text = String::new();
        for i in 0..sys::whisper_full_n_segments(ctx.raw()) {
            let ptr = sys::whisper_full_get_segment_text(ctx.raw(), i);
            if !ptr.is_null() {
                text.push_str(&CStr::from_ptr(ptr).to_string_lossy());
            }
        }
        if let Some((_, unlock)) = hold {
            unlock(ctx.raw());
        }
        Call { ret, text }
    }
}

/// `threads` threads, released together, each calling [`transcribe`] `calls` times on the one
/// shared context. Returns every call, thread by thread.
pub fn hammer(
    ctx: &SharedContext,
    samples: &[f32],
    threads: usize,
    calls: usize,
    hold: Option<Hold>,
) -> Vec<Call> {
    let start = Barrier::new(threads);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    start.wait();
                    (0..calls)
                        .map(|_| transcribe(ctx, samples, hold))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("a caller thread panicked"))
            .collect()
    })
}
