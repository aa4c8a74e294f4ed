//! A worker process's log messages, carried to its parent on the worker's standard error.
//!
//! In a worker, whisper.cpp's and ggml's messages and the library's `log` records become one
//! line each, tagged with their level and target ([`install_in_worker`]). The parent reads each
//! worker's standard error ([`Line::parse`]) and hands every message to its own `log` logger at
//! that level and target ([`pass_on`]), so the program's filter and destination apply to its
//! workers as to itself (the server's `logging.level` and `logging.file`: whisper.cpp's
//! information lines stay out of the log unless it is `debug`). A parent without a logger
//! prints the warnings and errors to its standard error (before, every line). Untagged lines,
//! what a failing process prints itself (a failed `GGML_ASSERT`, a CUDA error), are warnings.

use std::ffi::{c_char, c_void, CStr};
use std::io::Write;

use log::{Level, LevelFilter, Log, Metadata, Record};

use crate::GGMLLogLevel;

/// What starts a tagged line; a control character no message begins with.
const TAG: &str = "\u{1}whisper-steady-log ";
/// The target of whisper.cpp's and ggml's messages (as `install_logging_hooks` names it).
const WHISPER_TARGET: &str = "whisper_cpp";
/// The target of the untagged lines of a worker's standard error.
const UNTAGGED_TARGET: &str = "whisper_steady::worker";

/// One line of a worker's standard error, as the parent reads it.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Line<'a> {
    /// The level it was logged at (`Warn` for untagged lines).
    pub(super) level: Level,
    /// The target it was logged with.
    pub(super) target: &'a str,
    /// The message.
    pub(super) message: &'a str,
}

impl<'a> Line<'a> {
    /// Reads a line (without its newline).
    pub(super) fn parse(line: &'a str) -> Line<'a> {
        let untagged = Line {
            level: Level::Warn,
            target: UNTAGGED_TARGET,
            message: line,
        };
        let Some(rest) = line.strip_prefix(TAG) else {
            return untagged;
        };
        let mut parts = rest.splitn(3, ' ');
        let (Some(level), Some(target), Some(message)) = (parts.next(), parts.next(), parts.next())
        else {
            return untagged;
        };
        match level.parse::<Level>() {
            Ok(level) => Line {
                level,
                target,
                message,
            },
            Err(_) => untagged,
        }
    }
}

/// Hands a worker's line to this process's `log` logger, its message prefixed with `worker`
/// (the lane's name); without a logger, prints warnings and errors to standard error.
pub(super) fn pass_on(worker: &str, line: &Line<'_>) {
    if log::max_level() == LevelFilter::Off {
        if line.level <= Level::Warn {
            eprintln!("[{worker}] {}", line.message);
        }
        return;
    }
    log::log!(target: line.target, line.level, "[{worker}] {}", line.message);
}

/// The tagged line of one message.
fn write_line(level: Level, target: &str, message: &str) {
    // One message, one line: a newline inside it would start an untagged line.
    let message = message.trim_end().replace(['\n', '\r'], " ");
    if message.is_empty() {
        return;
    }
    let line = format!("{TAG}{level} {target} {message}\n");
    // One write per line, so that lines of several threads do not interleave.
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

/// In a worker process: whisper.cpp's and ggml's messages and the library's `log` records go
/// to standard error as tagged lines, up to `Debug` (the parent filters).
pub(super) fn install_in_worker() {
    crate::api::logging::set_log_callback(worker_trampoline);
    // A program that set a logger before `run_worker_if_child` keeps it.
    if log::set_logger(&WorkerLogger).is_ok() {
        log::set_max_level(LevelFilter::Debug);
    }
}

/// The worker's `log` logger: tagged lines on standard error.
struct WorkerLogger;

impl Log for WorkerLogger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= Level::Debug
    }

    fn log(&self, record: &Record<'_>) {
        if self.enabled(record.metadata()) {
            write_line(record.level(), record.target(), &record.args().to_string());
        }
    }

    fn flush(&self) {}
}

/// whisper.cpp's and ggml's log callback in a worker.
unsafe extern "C" fn worker_trampoline(
    level: crate::sys::ggml_log_level,
    text: *const c_char,
    _user_data: *mut c_void,
) {
    if text.is_null() {
        return;
    }
    // SAFETY: ggml passes a NUL-terminated message valid for the duration of the call.
    let text = unsafe { CStr::from_ptr(text) }.to_string_lossy();
    let level = GGMLLogLevel::from(level).log_level();
    // A panic must not unwind into C.
    let _ = std::panic::catch_unwind(|| write_line(level, WHISPER_TARGET, &text));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tagged_lines_keep_level_target_and_message() {
        let line = format!("{TAG}INFO whisper_cpp whisper_model_load: n_vocab = 51864");
        assert_eq!(
            Line::parse(&line),
            Line {
                level: Level::Info,
                target: "whisper_cpp",
                message: "whisper_model_load: n_vocab = 51864",
            }
        );
        let line = format!("{TAG}DEBUG whisper_steady::recognizer request 3: a b  c");
        assert_eq!(Line::parse(&line).message, "request 3: a b  c");
        assert_eq!(Line::parse(&line).level, Level::Debug);
    }

    #[test]
    fn anything_else_is_a_warning_as_it_stands() {
        for text in [
            "ggml.c:1234: GGML_ASSERT(ptr == pool_addr) failed",
            &format!("{TAG}LOUD whisper_cpp text"),
            &format!("{TAG}INFO"),
            "",
        ] {
            assert_eq!(
                Line::parse(text),
                Line {
                    level: Level::Warn,
                    target: UNTAGGED_TARGET,
                    message: text,
                }
            );
        }
    }
}
