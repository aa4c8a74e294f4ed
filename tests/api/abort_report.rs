//! `install_abort_report`: a real `GGML_ASSERT` in a child process writes the report block to
//! stderr (and the log) before the process dies of SIGABRT. Needs no model.
//!
//! The child's output goes to a file, not a pipe: ggml's backtrace printer forks gdb, which
//! would hold a pipe open (it is turned off here with `GGML_NO_BACKTRACE` anyway).

use crate::common;
use std::fs::File;
use std::process::Command;
use std::time::{Duration, Instant};

const CHILD: &str = "WHISPER_STEADY_ABORT_CHILD";

/// A logger that writes records to stderr with a marker, to see that the report reached `log`.
struct Stderr;

impl log::Log for Stderr {
    fn enabled(&self, _: &log::Metadata) -> bool {
        true
    }
    fn log(&self, record: &log::Record) {
        eprintln!(
            "LOG {} {}: {}",
            record.level(),
            record.target(),
            record.args()
        );
    }
    fn flush(&self) {}
}

/// The child: install the report (twice: idempotent) and trip ggml's device-index assertion.
fn child(mode: &str) {
    log::set_logger(&Stderr).unwrap();
    log::set_max_level(log::LevelFilter::Error);
    if mode == "installed" {
        whisper_steady::install_abort_report();
        whisper_steady::install_abort_report();
    }
    // SAFETY: not safe at all, on purpose: GGML_ASSERT(index < ggml_backend_dev_count()).
    let dev = unsafe { whisper_steady::sys::ggml_backend_dev_get(1_000_000) };
    println!("not reached: {dev:?}");
}

fn run_child(mode: &str) -> (std::process::ExitStatus, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("stderr");
    let out = File::create(&path).unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            &common::exact(module_path!(), "child_process"),
            "--exact",
            "--nocapture",
            "--include-ignored",
        ])
        .env(CHILD, mode)
        .env("GGML_NO_BACKTRACE", "1")
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap();
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("the child did not die within 60 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    (status, std::fs::read_to_string(&path).unwrap())
}

#[test]
#[ignore = "run by the tests below, in a child process"]
fn child_process() {
    if let Ok(mode) = std::env::var(CHILD) {
        child(&mode);
    }
}

#[cfg(unix)]
fn died_of_sigabrt(status: std::process::ExitStatus) -> bool {
    use std::os::unix::process::ExitStatusExt;
    status.signal() == Some(6)
}

#[cfg(not(unix))]
fn died_of_sigabrt(status: std::process::ExitStatus) -> bool {
    !status.success()
}

#[test]
fn a_ggml_assert_writes_the_report_then_aborts() {
    let (status, output) = run_child("installed");
    assert!(died_of_sigabrt(status), "{status}\n{output}");
    assert!(!output.contains("not reached"), "{output}");
    let begin = output
        .find("whisper-steady abort report begin")
        .unwrap_or_else(|| panic!("no report:\n{output}"));
    let end = output[begin..]
        .find("whisper-steady abort report end")
        .unwrap_or_else(|| panic!("no report end:\n{output}"));
    let block = &output[begin..begin + end];
    eprintln!("{block}");
    let lines: Vec<&str> = block.lines().skip(1).collect();
    assert!(
        lines
            .iter()
            .all(|l| l.starts_with("whisper-steady abort: ")),
        "{block}"
    );
    for expected in [
        "GGML_ASSERT(index < ggml_backend_dev_count()) failed",
        "ggml-backend-reg.cpp",
        &format!("whisper-steady {}", env!("CARGO_PKG_VERSION")),
        &format!("whisper.cpp {}", whisper_steady::WHISPER_CPP_VERSION),
        "device 0: CPU (cpu",
        "cuda pools:",
        "thread: ",
    ] {
        assert!(block.contains(expected), "{expected:?} missing:\n{block}");
    }
    // And the same block through the log crate, at error level.
    assert!(
        output.contains("LOG ERROR whisper_steady::abort: whisper-steady abort report begin"),
        "{output}"
    );
}

#[test]
fn without_it_ggml_aborts_as_before() {
    let (status, output) = run_child("plain");
    assert!(died_of_sigabrt(status), "{status}\n{output}");
    assert!(output.contains("GGML_ASSERT(index < ggml_backend_dev_count()) failed"));
    assert!(!output.contains("abort report"), "{output}");
}
