//! whisper-steady: whisper.cpp speech recognition for Rust, on CPUs and NVIDIA GPUs, without
//! the CUDA memory-pool abort that takes down concurrent servers.
//!
//! This crate builds a pinned whisper.cpp 1.8.3 with a small series of patches (see the README
//! and `patches/`): a CUDA virtual-memory pool that survives out-of-order frees without handing
//! out memory twice, a run-time switch to the legacy pool, and pool statistics.
//!
//! Layout:
//! - [`sys`]: the raw bindgen bindings, with whisper-rs-sys's names;
//! - [`cuda`]: the pool policy and statistics added by the patches.

#![deny(missing_docs)]

pub mod convert;
pub mod cuda;
pub mod sys;

/// The whisper.cpp version this crate was built from (the pinned upstream, `1.8.3`).
pub const WHISPER_CPP_VERSION: &str = env!("WHISPER_STEADY_CPP_VERSION");

/// The version string whisper.cpp reports at run time (`whisper_version()`).
pub fn whisper_cpp_runtime_version() -> &'static str {
    // SAFETY: whisper_version returns a pointer to a static NUL-terminated string.
    unsafe { std::ffi::CStr::from_ptr(sys::whisper_version()) }
        .to_str()
        .unwrap_or("")
}

/// whisper.cpp's description of the CPU and backend features compiled in
/// (`whisper_print_system_info()`).
pub fn system_info() -> String {
    // whisper_print_system_info rebuilds one process-wide static string on every call, so calls
    // must not overlap.
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    // SAFETY: the returned pointer is a NUL-terminated string that stays valid until the next
    // call, which the lock above excludes until we have copied it.
    unsafe { std::ffi::CStr::from_ptr(sys::whisper_print_system_info()) }
        .to_string_lossy()
        .into_owned()
}

/// The README's Rust examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
