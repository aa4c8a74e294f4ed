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

/// How ggml's CPU instruction sets were chosen when this crate was built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CpuTarget {
    /// The build machine's CPU (`GGML_NATIVE=ON`): fast there, may not run on older CPUs.
    Native,
    /// Exactly the target features rustc enabled (portable; SSE2 only on plain x86-64).
    RustcTarget,
}

/// The CPU build of ggml inside this crate: what it was compiled for and why (docs/building.md,
/// "CPU flags"; chosen by `WHISPER_STEADY_CPU`, RUSTFLAGS and whether cargo built for its own host).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuBuild {
    /// What ggml was compiled for.
    pub target: CpuTarget,
    /// Why, in one sentence from the build script.
    pub reason: &'static str,
}

/// How this crate's ggml was compiled for the CPU. [`SystemInfo`] says which instruction sets
/// that gave; [`print_system_info`] prints them all.
pub fn cpu_build() -> CpuBuild {
    CpuBuild {
        target: match env!("WHISPER_STEADY_CPU_TARGET") {
            "native" => CpuTarget::Native,
            _ => CpuTarget::RustcTarget,
        },
        reason: env!("WHISPER_STEADY_CPU_REASON"),
    }
}

/// A warning when this process runs a slow build: ggml compiled without AVX2 on a CPU that has
/// AVX2 (several times slower; docs/building.md, "CPU flags"). `None` when ggml has AVX2, the CPU lacks it,
/// or the CPU is not x86. The first model load logs it (target `whisper_steady`, level warn).
pub fn slow_cpu_build_warning() -> Option<String> {
    #[cfg(any(target_arch = "x86_64", target_arch = "x86"))]
    {
        if SystemInfo::default().avx2 || !std::is_x86_feature_detected!("avx2") {
            return None;
        }
        Some(format!(
            "whisper-steady: ggml was built without AVX2 ({}) and this CPU has AVX2: speech \
             recognition runs several times slower than it could. Rebuild without \
             WHISPER_STEADY_CPU=portable, or with RUSTFLAGS=\"-C target-cpu=x86-64-v3\" for \
             binaries that ship to AVX2 machines",
            cpu_build().reason
        ))
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "x86")))]
    {
        None
    }
}

/// Logs [`slow_cpu_build_warning`] once per process (target `whisper_steady`, level warn); called
/// when a model is loaded.
pub(crate) fn warn_if_slow_cpu_build() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        if let Some(warning) = slow_cpu_build_warning() {
            log::warn!(target: "whisper_steady", "{warning}");
        }
    });
}
