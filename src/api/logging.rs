//! whisper.cpp and ggml log routing.

use std::ffi::{c_char, c_void, CStr};
use std::sync::Once;

use crate::sys;

/// A ggml log level.
#[cfg_attr(any(not(windows), target_env = "gnu"), repr(u32))]
#[cfg_attr(all(windows, not(target_env = "gnu")), repr(i32))]
#[derive(Debug)]
pub enum GGMLLogLevel {
    /// No level.
    None = sys::ggml_log_level_GGML_LOG_LEVEL_NONE,
    /// Information.
    Info = sys::ggml_log_level_GGML_LOG_LEVEL_INFO,
    /// Warning.
    Warn = sys::ggml_log_level_GGML_LOG_LEVEL_WARN,
    /// Error.
    Error = sys::ggml_log_level_GGML_LOG_LEVEL_ERROR,
    /// Debug output.
    Debug = sys::ggml_log_level_GGML_LOG_LEVEL_DEBUG,
    /// Continuation of the previous message.
    Cont = sys::ggml_log_level_GGML_LOG_LEVEL_CONT,
    /// A level this crate does not know.
    Unknown(sys::ggml_log_level),
}

impl From<sys::ggml_log_level> for GGMLLogLevel {
    fn from(level: sys::ggml_log_level) -> Self {
        match level {
            sys::ggml_log_level_GGML_LOG_LEVEL_NONE => GGMLLogLevel::None,
            sys::ggml_log_level_GGML_LOG_LEVEL_INFO => GGMLLogLevel::Info,
            sys::ggml_log_level_GGML_LOG_LEVEL_WARN => GGMLLogLevel::Warn,
            sys::ggml_log_level_GGML_LOG_LEVEL_ERROR => GGMLLogLevel::Error,
            sys::ggml_log_level_GGML_LOG_LEVEL_DEBUG => GGMLLogLevel::Debug,
            sys::ggml_log_level_GGML_LOG_LEVEL_CONT => GGMLLogLevel::Cont,
            other => GGMLLogLevel::Unknown(other),
        }
    }
}

/// Redirect all whisper.cpp and GGML logs to logging hooks installed by this crate.
///
/// Messages go to the `log` crate with feature `log_backend`, to `tracing` with
/// `tracing_backend` (both: to both), and are dropped otherwise. Installed once per process and
/// permanent.
pub fn install_logging_hooks() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| set_log_callback(log_trampoline));
}

impl GGMLLogLevel {
    /// The `log` level of a message at this level.
    #[cfg_attr(not(any(unix, feature = "log_backend")), allow(dead_code))]
    pub(crate) fn log_level(&self) -> log::Level {
        match self {
            GGMLLogLevel::Error => log::Level::Error,
            GGMLLogLevel::Warn => log::Level::Warn,
            GGMLLogLevel::Info | GGMLLogLevel::Cont | GGMLLogLevel::None => log::Level::Info,
            GGMLLogLevel::Debug | GGMLLogLevel::Unknown(_) => log::Level::Debug,
        }
    }
}

/// Sends whisper.cpp's and ggml's messages to `callback` (this module's hooks, or a worker
/// process's tagged lines, `recognizer::isolation`).
pub(crate) fn set_log_callback(
    callback: unsafe extern "C" fn(sys::ggml_log_level, *const c_char, *mut c_void),
) {
    // SAFETY: the callback is a plain function valid for the whole process and ignores its user
    // data.
    unsafe {
        sys::whisper_log_set(Some(callback), std::ptr::null_mut());
        sys::ggml_log_set(Some(callback), std::ptr::null_mut());
    }
}

unsafe extern "C" fn log_trampoline(
    level: sys::ggml_log_level,
    text: *const c_char,
    _user_data: *mut c_void,
) {
    if text.is_null() {
        return;
    }
    // SAFETY: ggml passes a NUL-terminated message valid for the duration of the call.
    let text = unsafe { CStr::from_ptr(text) }.to_string_lossy();
    let text = text.trim_end();
    if text.is_empty() {
        return;
    }
    // A panic in a logger must not unwind into C.
    let _ = std::panic::catch_unwind(|| emit(GGMLLogLevel::from(level), text));
}

#[allow(unused_variables)]
fn emit(level: GGMLLogLevel, text: &str) {
    #[cfg(feature = "log_backend")]
    log::log!(target: "whisper_cpp", level.log_level(), "{text}");
    #[cfg(feature = "tracing_backend")]
    match &level {
        GGMLLogLevel::Error => tracing::error!(target: "whisper_cpp", "{text}"),
        GGMLLogLevel::Warn => tracing::warn!(target: "whisper_cpp", "{text}"),
        GGMLLogLevel::Info | GGMLLogLevel::Cont | GGMLLogLevel::None => {
            tracing::info!(target: "whisper_cpp", "{text}")
        }
        GGMLLogLevel::Debug | GGMLLogLevel::Unknown(_) => {
            tracing::debug!(target: "whisper_cpp", "{text}")
        }
    }
}
