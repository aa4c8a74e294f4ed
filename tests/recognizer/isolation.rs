//! Worker processes (`isolation = process`) on the CPU: a worker killed or aborted inside
//! whisper.cpp mid-request loses no request, is started again, and is reported.

use crate::common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use whisper_steady::recognizer::{
    Backend, FaultInjection, HealthStatus, Isolation, RecognizeOptions, Recognizer,
    RecognizerConfig, RecognizerError, WorkerProgram,
};

/// In a worker process started by these tests, serves its parent; a no-op in a test run.
#[test]
fn worker_entry() {
    whisper_steady::recognizer::run_worker_if_child();
}

/// This test binary, running only `worker_entry`: the worker program of these tests.
fn this_binary_as_worker() -> WorkerProgram {
    let mut program = WorkerProgram::current_exe().unwrap();
    program.args = vec![
        common::exact(module_path!(), "worker_entry").into(),
        "--exact".into(),
        "--test-threads=1".into(),
    ];
    program
}

fn isolated_config() -> Option<RecognizerConfig> {
    let mut config = RecognizerConfig::new(common::model_path()?);
    config.use_gpu = false;
    config.workers = 2;
    config.threads_per_worker = 1;
    config.queue_limit = 16;
    config.isolation = Isolation::Process;
    config.worker_program = Some(this_binary_as_worker());
    Some(config)
}

fn jfk() -> Vec<f32> {
    common::read_wav_16k_mono(&common::shared_audio("jfk.wav"))
}

fn assert_jfk(text: &str) {
    let wer = common::wer(common::JFK_TEXT, text);
    assert!(wer <= 0.1, "{text:?} (WER {wer})");
}

fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let until = Instant::now() + Duration::from_secs(120);
    while !cond() {
        assert!(Instant::now() < until, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

#[test]
fn a_worker_process_killed_with_six_requests_in_flight_loses_none() {
    let Some(config) = isolated_config() else {
        return;
    };
    let recognizer = Recognizer::new(config).unwrap();
    let health = recognizer.health();
    assert_eq!(health.isolation, Isolation::Process);
    let process = health.lanes[0].process.clone().expect("an isolated lane");
    let pid = process.pid.expect("running");
    assert_eq!(
        (process.state, process.starts, process.deaths),
        ("running", 1, 0)
    );

    let tickets: Vec<_> = (0..6)
        .map(|_| recognizer.submit(jfk(), RecognizeOptions::new()).unwrap())
        .collect();
    eventually("two requests run in the worker", || {
        recognizer.health().lanes[0].busy == 2
    });
    std::thread::sleep(Duration::from_millis(300));
    unsafe { libc_kill(pid) };
    for ticket in tickets {
        let transcript = ticket.wait().expect("answered despite the kill");
        assert_jfk(&transcript.text);
        assert_eq!(transcript.backend, Backend::Cpu);
    }
    let health = recognizer.health();
    let process = health.lanes[0].process.clone().unwrap();
    assert_eq!((process.starts, process.deaths), (2, 1), "{process:?}");
    assert_ne!(process.pid, Some(pid));
    let cause = process.last_cause.unwrap();
    assert!(cause.contains("SIGKILL"), "{cause}");
    assert_eq!(health.requests.completed, 6);
    assert!(!alive(pid));
    // One death is not "again and again".
    assert_eq!(health.status, HealthStatus::Ok);

    // The worker process ends with the recognizer.
    let new_pid = process.pid.unwrap();
    drop(recognizer);
    assert!(
        !alive(new_pid),
        "the worker process outlived its recognizer"
    );
}

/// SIGKILL, as the out-of-memory killer would send.
unsafe fn libc_kill(pid: u32) {
    extern "C" {
        fn kill(pid: i32, sig: i32) -> i32;
    }
    assert_eq!(kill(pid as i32, 9), 0);
}

#[test]
fn an_abort_inside_whisper_in_a_gpu_worker_process_is_a_failover_to_the_cpu() {
    let Some(mut config) = isolated_config() else {
        return;
    };
    // A simulated GPU lane in a worker process, and the CPU lane in this one.
    config.use_gpu = true;
    config.workers = 1;
    config.cpu_workers = 1;
    config.breaker_threshold = 10;
    let mut faults = FaultInjection::new();
    faults.simulate_gpu = true;
    // The first three requests abort their worker process from inside whisper.cpp.
    faults.abort_process = Some(Arc::new(|site| {
        site.backend == Backend::Gpu && site.request <= 3
    }));
    config.fault_injection = Some(faults);
    let recognizer = Recognizer::new(config).unwrap();
    let health = recognizer.health();
    assert!(health.lanes[0].process.is_some());
    assert!(
        health.lanes[1].process.is_none(),
        "the CPU lane is the refuge"
    );
    let running = || {
        eventually("the worker process is back", || {
            recognizer.health().lanes[0].process.clone().unwrap().state == "running"
        })
    };

    let first = recognizer
        .transcribe(jfk(), RecognizeOptions::new())
        .unwrap();
    assert_jfk(&first.text);
    assert!(first.retried_on_cpu);
    assert_eq!(first.backend, Backend::Cpu);
    let health = recognizer.health();
    let process = health.lanes[0].process.clone().unwrap();
    assert_eq!(process.deaths, 1);
    let cause = process.last_cause.unwrap();
    assert!(cause.contains("SIGABRT"), "{cause}");
    assert_eq!(health.failover.retried_on_cpu, 1);
    assert_eq!(
        health.lanes[0].consecutive_failures, 1,
        "the breaker heard of it"
    );

    // A worker that keeps dying makes the recognizer degraded.
    for _ in 2..=3 {
        running();
        let t = recognizer
            .transcribe(jfk(), RecognizeOptions::new())
            .unwrap();
        assert!(t.retried_on_cpu);
        assert_jfk(&t.text);
    }
    running();
    let health = recognizer.health();
    assert_eq!(health.lanes[0].process.clone().unwrap().recent_deaths, 3);
    assert_eq!(health.status, HealthStatus::Degraded);

    let fourth = recognizer
        .transcribe(jfk(), RecognizeOptions::new())
        .unwrap();
    assert_jfk(&fourth.text);
    assert_eq!(fourth.backend, Backend::Gpu);
    assert!(!fourth.retried_on_cpu);
}

#[test]
fn a_program_that_is_no_worker_is_refused_with_the_reason() {
    let Some(mut config) = isolated_config() else {
        return;
    };
    config.worker_program = Some(WorkerProgram {
        program: "true".into(),
        args: Vec::new(),
        env: Vec::new(),
    });
    match Recognizer::new(config) {
        Err(RecognizerError::WorkerProcess { reason }) => {
            assert!(reason.contains("run_worker_if_child"), "{reason}")
        }
        other => panic!("{:?}", other.map(|_| ())),
    }
}

#[test]
fn segments_stream_cancellation_and_deadlines_cross_to_the_worker_process() {
    let Some(config) = isolated_config() else {
        return;
    };
    let recognizer = Recognizer::new(config).unwrap();
    // Segments arrive as they are decoded, the same as the transcript's.
    let (tx, rx) = std::sync::mpsc::channel();
    let ticket = recognizer
        .submit_streaming(jfk(), RecognizeOptions::new(), move |s| {
            let _ = tx.send(s.text);
        })
        .unwrap();
    let transcript = ticket.wait().unwrap();
    let streamed: Vec<String> = rx.iter().collect();
    let segments: Vec<String> = transcript.segments.iter().map(|s| s.text.clone()).collect();
    assert!(!streamed.is_empty());
    assert_eq!(streamed, segments);

    // A cancelled request stops in the worker, well before its 30 s of audio are done.
    let long: Vec<f32> = jfk().repeat(3);
    let ticket = recognizer
        .submit(long.clone(), RecognizeOptions::new())
        .unwrap();
    eventually("the request runs", || {
        recognizer.health().lanes[0].busy == 1
    });
    std::thread::sleep(Duration::from_millis(200));
    let cancelled_at = Instant::now();
    ticket.cancel();
    assert!(matches!(
        ticket.wait(),
        Err(whisper_steady::recognizer::RecognizeError::Cancelled)
    ));
    // (Cancelled, not a transcript: the worker stopped it. Loose bound: a loaded machine.)
    assert!(cancelled_at.elapsed() < Duration::from_secs(10));

    // So does one whose deadline passes.
    let options = RecognizeOptions::new().deadline(Duration::from_millis(500));
    let started = Instant::now();
    let outcome = recognizer.submit(long, options).unwrap().wait();
    assert!(
        matches!(
            outcome,
            Err(whisper_steady::recognizer::RecognizeError::DeadlineExceeded { .. })
        ),
        "{outcome:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    let health = recognizer.health();
    assert_eq!(health.lanes[0].process.clone().unwrap().deaths, 0);
    assert_eq!(health.requests.cancelled, 1);
    assert_eq!(health.requests.deadline_exceeded, 1);
}

#[test]
fn a_start_that_fails_after_the_worker_process_started_leaves_no_process() {
    let Some(mut config) = isolated_config() else {
        return;
    };
    // The worker process starts (the lanes come first), then the language list is refused.
    config.detect_languages = vec!["no-such-language".into()];
    let marker = "--skip=isolation-failed-start-marker";
    config
        .worker_program
        .as_mut()
        .unwrap()
        .args
        .push(marker.into());
    let error = Recognizer::new(config).expect_err("refused");
    assert!(
        matches!(error, RecognizerError::InvalidConfig(_)),
        "{error}"
    );
    let workers_left = || {
        std::fs::read_dir("/proc")
            .unwrap()
            .filter_map(|e| std::fs::read(e.ok()?.path().join("cmdline")).ok())
            .filter(|cmdline| String::from_utf8_lossy(cmdline).contains(marker))
            .count()
    };
    eventually("the worker process is gone", || workers_left() == 0);
}

/// What this process's logger has received: level, target, message.
static LOGGED: std::sync::Mutex<Vec<(log::Level, String, String)>> =
    std::sync::Mutex::new(Vec::new());

struct Keep;

impl log::Log for Keep {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, record: &log::Record<'_>) {
        let entry = (
            record.level(),
            record.target().to_owned(),
            record.args().to_string(),
        );
        LOGGED.lock().unwrap().push(entry);
    }
    fn flush(&self) {}
}

#[test]
fn a_worker_process_logs_through_this_process_logger() {
    let Some(mut config) = isolated_config() else {
        return;
    };
    config.workers = 1;
    // (Other tests' workers log here too from now on; this one looks for its own.)
    log::set_logger(&Keep).unwrap();
    log::set_max_level(log::LevelFilter::Trace);
    let recognizer = Recognizer::new(config).unwrap();
    let pid = recognizer.health().lanes[0]
        .process
        .clone()
        .unwrap()
        .pid
        .unwrap();
    assert_jfk(
        &recognizer
            .transcribe(jfk(), RecognizeOptions::new())
            .unwrap()
            .text,
    );
    recognizer.shutdown();
    // whisper.cpp's messages in the worker, at their level, with whisper.cpp's target and the
    // worker's name, as the same messages of this process would be (with the hooks installed).
    let ours = format!("[cpu worker {pid}] ");
    let theirs = || -> Vec<(log::Level, String, String)> {
        LOGGED
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, _, message)| message.starts_with(&ours))
            .cloned()
            .collect()
    };
    eventually("the worker's model load is logged here", || {
        theirs().iter().any(|(level, target, message)| {
            *level == log::Level::Info
                && target == "whisper_cpp"
                && message.contains("whisper_model_load: n_vocab")
        })
    });
    // No line of the protocol's tags leaks into a message.
    let theirs = theirs();
    assert!(
        theirs.iter().all(|(_, _, m)| !m.contains('\u{1}')),
        "{theirs:?}"
    );
}
