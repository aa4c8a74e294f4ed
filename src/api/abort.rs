//! Last words before an abort: where ggml still aborts the process (`GGML_ASSERT`,
//! `GGML_ABORT`, a CUDA error), [`install_abort_report`] makes it write one structured report
//! first, to stderr and to the `log` crate.

use std::cell::Cell;
use std::ffi::{c_char, CStr};
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicPtr, Ordering};
use std::sync::Once;
use std::time::Duration;

use crate::sys;

/// The first line of a report.
const BEGIN: &str = "whisper-steady abort report begin";
/// The last line of a report.
const END: &str = "whisper-steady abort report end";
/// The prefix of every line between them.
const PREFIX: &str = "whisper-steady abort:";

static INSTALL: Once = Once::new();
/// The callback that was installed before ours (another library's), called after ours.
static PREVIOUS: AtomicPtr<()> = AtomicPtr::new(std::ptr::null_mut());
/// Set by the first thread that reports; the process dies when it returns.
static REPORTING: AtomicBool = AtomicBool::new(false);

thread_local! {
    /// Whether this thread is writing a report (an abort inside the report itself, say a CUDA
    /// error while reading device memory, must not start another).
    static IN_REPORT: Cell<bool> = const { Cell::new(false) };
}

extern "C" {
    /// ggml's backtrace printer (ggml-impl.h), which its default abort path calls; it honours
    /// `GGML_NO_BACKTRACE`.
    fn ggml_print_backtrace();
}

/// Makes every abort inside ggml (`GGML_ASSERT`, `GGML_ABORT`, CUDA errors) write a report
/// before the process dies: the abort message, this crate's and whisper.cpp's versions, the
/// thread, the devices ggml knows and the CUDA pool statistics. The report is a block of lines,
/// all between `whisper-steady abort report begin` and `whisper-steady abort report end` and
/// each starting with `whisper-steady abort:`, written to stderr and then logged (`log` crate,
/// level error, target `whisper_steady::abort`); ggml's own backtrace follows (unless
/// `GGML_NO_BACKTRACE` is set), and then the process aborts as before (SIGABRT).
///
/// Idempotent: the first call installs ggml's abort callback and later calls do nothing. A
/// callback installed before the first call (by other code using `ggml_set_abort_callback`)
/// still runs, after the report. [`Recognizer::new`](crate::recognizer::Recognizer::new) calls
/// this.
///
/// Not covered: `abort()` calls that do not go through ggml (whisper.cpp's `WHISPER_ASSERT`),
/// C++ exceptions that escape whisper.cpp (Rust aborts with "Rust cannot catch foreign
/// exceptions") and signals such as SIGSEGV.
pub fn install_abort_report() {
    INSTALL.call_once(|| {
        // SAFETY: sets a process-wide function pointer; `report` never unwinds.
        let previous = unsafe { sys::ggml_set_abort_callback(Some(report)) };
        if let Some(previous) = previous {
            PREVIOUS.store(previous as *mut (), Ordering::SeqCst);
        }
    });
}

/// Writes to file descriptor 2 directly: no lock that the aborting thread (or a stuck one)
/// could hold, no buffering that abort() would throw away.
fn write_stderr(text: &str) {
    #[cfg(unix)]
    {
        use std::os::fd::FromRawFd;
        // SAFETY: fd 2 stays open; ManuallyDrop keeps this File from closing it.
        let mut file = std::mem::ManuallyDrop::new(unsafe { std::fs::File::from_raw_fd(2) });
        let _ = file.write_all(text.as_bytes());
    }
    #[cfg(not(unix))]
    {
        let _ = std::io::stderr().write_all(text.as_bytes());
    }
}

fn line(text: std::fmt::Arguments<'_>) -> String {
    format!("{PREFIX} {text}\n")
}

/// The lines that need nothing but the message: safe whatever state the process is in.
fn head(message: &str) -> String {
    let thread = std::thread::current();
    let mut out = String::new();
    out.push_str(BEGIN);
    out.push('\n');
    out += &line(format_args!("message: {}", message.trim_end()));
    out += &line(format_args!(
        "versions: whisper-steady {}, whisper.cpp {}",
        env!("CARGO_PKG_VERSION"),
        crate::WHISPER_CPP_VERSION
    ));
    out += &line(format_args!(
        "thread: {} ({:?})",
        thread.name().unwrap_or("unnamed"),
        thread.id()
    ));
    out += &line(format_args!("process: {}", std::process::id()));
    out
}

/// The devices and the pools: these call into the backends (a GPU's memory query), which may
/// abort again if the device is what failed; the caller writes the head first.
fn tail() -> String {
    let mut out = String::new();
    let devices = crate::device::devices();
    if devices.is_empty() {
        out += &line(format_args!("devices: none"));
    }
    for (i, d) in devices.iter().enumerate() {
        out += &line(format_args!(
            "device {i}: {} ({}, {}), {} MiB free of {} MiB",
            d.name,
            d.kind,
            d.description,
            d.memory_free >> 20,
            d.memory_total >> 20
        ));
    }
    let pool = crate::cuda::pool_stats();
    if pool.cuda_available {
        out += &line(format_args!(
            "cuda pools: vmm {} legacy {}, reserved {} B, in use {} B (peak {} B), waiting reclaim {} B, out-of-order frees {}, rejected frees {}",
            pool.vmm_pools,
            pool.legacy_pools,
            pool.bytes_reserved,
            pool.bytes_in_use,
            pool.peak_bytes_in_use,
            pool.bytes_waiting_reclaim,
            pool.out_of_order_frees,
            pool.rejected_frees
        ));
    } else {
        out += &line(format_args!("cuda pools: no CUDA in this build"));
    }
    out
}

/// ggml's abort callback. Runs in C, on the aborting thread, just before `abort()`: it must not
/// unwind, and it takes no lock that the aborting code could hold.
unsafe extern "C" fn report(message: *const c_char) {
    let message = if message.is_null() {
        String::from("(no message)")
    } else {
        // SAFETY: ggml passes its NUL-terminated message buffer.
        unsafe { CStr::from_ptr(message) }
            .to_string_lossy()
            .into_owned()
    };
    // Nothing below should panic; if it does, the panic stops here (and the process aborts as
    // it was about to).
    let _ = std::panic::catch_unwind(|| write_report(&message));
    let previous = PREVIOUS.load(Ordering::SeqCst);
    if previous.is_null() {
        // SAFETY: ggml's own printer, as its default abort path calls it.
        unsafe { ggml_print_backtrace() };
    } else {
        // SAFETY: stored from ggml_set_abort_callback's return value, a callback of this type.
        let previous: unsafe extern "C" fn(*const c_char) =
            unsafe { std::mem::transmute(previous) };
        // SAFETY: called as ggml would have called it.
        unsafe { previous(message_ptr(&message).as_ptr()) };
    }
}

fn message_ptr(message: &str) -> std::ffi::CString {
    std::ffi::CString::new(message.replace('\0', " ")).unwrap_or_default()
}

fn write_report(message: &str) {
    if IN_REPORT.with(|r| r.replace(true)) {
        // An abort while this thread writes its report (a device query that failed too).
        let nested = line(format_args!(
            "abort while reporting: {}",
            message.trim_end()
        ));
        write_stderr(&format!("{nested}{END}\n"));
        log::error!(target: "whisper_steady::abort", "{}", nested.trim_end());
        return;
    }
    if REPORTING.swap(true, Ordering::SeqCst) {
        // Another thread is reporting and will abort the process when done: say what this
        // thread hit, then wait for that (abort() right away would cut its report short).
        let other = line(format_args!("also aborting: {}", message.trim_end()));
        write_stderr(&other);
        std::thread::sleep(Duration::from_secs(10));
        return;
    }
    let head = head(message);
    write_stderr(&head);
    let tail = tail();
    write_stderr(&format!("{tail}{END}\n"));
    log::error!(target: "whisper_steady::abort", "{head}{tail}{END}");
}
