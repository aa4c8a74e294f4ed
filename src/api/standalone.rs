//! Free functions that need no context.

use std::ffi::{c_int, c_void, CStr, CString};
use std::sync::OnceLock;

use crate::sys;

/// Return the id of the specified language, or `None` if whisper.cpp does not know it (or the
/// string contains a NUL byte).
pub fn get_lang_id(lang: &str) -> Option<c_int> {
    let lang = CString::new(lang).ok()?;
    // SAFETY: valid NUL-terminated string; whisper_lang_id only reads a static table.
    let id = unsafe { sys::whisper_lang_id(lang.as_ptr()) };
    (id >= 0).then_some(id)
}

/// Return the ID of the maximum language (ie the number of languages - 1)
pub fn get_lang_max_id() -> i32 {
    // SAFETY: reads a static table.
    unsafe { sys::whisper_lang_max_id() }
}

fn static_str(ptr: *const std::ffi::c_char) -> Option<&'static str> {
    if ptr.is_null() {
        return None;
    }
    // SAFETY: whisper.cpp's language names are static NUL-terminated literals.
    unsafe { CStr::from_ptr(ptr) }.to_str().ok()
}

/// Get the short string of the specified language id (e.g. 2 -> "de").
pub fn get_lang_str(id: i32) -> Option<&'static str> {
    // SAFETY: returns null for unknown ids, otherwise a static string.
    static_str(unsafe { sys::whisper_lang_str(id) })
}

/// Get the full string of the specified language name (e.g. 2 -> "german").
pub fn get_lang_str_full(id: i32) -> Option<&'static str> {
    // SAFETY: returns null for unknown ids, otherwise a static string.
    static_str(unsafe { sys::whisper_lang_str_full(id) })
}

/// Callback to control logging output: default behaviour is to print to stderr.
///
/// # Safety
/// The callback is called from whatever thread whisper.cpp logs on, with `user_data` passed
/// through; both must stay valid for as long as whisper.cpp may log. This sets whisper.cpp's
/// logger only; see [`install_logging_hooks`](crate::install_logging_hooks) for both loggers.
pub unsafe fn set_log_callback(log_callback: crate::WhisperLogCallback, user_data: *mut c_void) {
    // SAFETY: forwarded to the caller's contract.
    unsafe { sys::whisper_log_set(log_callback, user_data) }
}

/// Get the current `whisper.cpp` version.
pub fn get_whisper_version() -> &'static str {
    // SAFETY: whisper_version returns a static NUL-terminated string.
    static_str(unsafe { sys::whisper_version() }).unwrap_or("")
}

/// Print system information.
///
/// whisper.cpp rebuilds the text in one process-wide buffer on every call, so the first answer
/// is kept and returned from then on (the compiled-in features do not change).
pub fn print_system_info() -> &'static str {
    static INFO: OnceLock<String> = OnceLock::new();
    INFO.get_or_init(|| {
        // SAFETY: the pointer is valid until the next call, which OnceLock excludes here; we copy
        // the text before returning. Other callers of the raw function are not synchronized with
        // this one, which is why the safe API never calls it again.
        unsafe { CStr::from_ptr(sys::whisper_print_system_info()) }
            .to_string_lossy()
            .into_owned()
    })
}

/// Programmatically exposes the information provided by `print_system_info`
#[derive(Debug)]
pub struct SystemInfo {
    /// The CPU backend uses AVX.
    pub avx: bool,
    /// The CPU backend uses AVX2.
    pub avx2: bool,
    /// The CPU backend uses FMA.
    pub fma: bool,
    /// The CPU backend uses F16C.
    pub f16c: bool,
}

impl Default for SystemInfo {
    fn default() -> Self {
        // SAFETY: plain queries of compile-time flags.
        unsafe {
            SystemInfo {
                avx: sys::ggml_cpu_has_avx() != 0,
                avx2: sys::ggml_cpu_has_avx2() != 0,
                fma: sys::ggml_cpu_has_fma() != 0,
                f16c: sys::ggml_cpu_has_f16c() != 0,
            }
        }
    }
}
