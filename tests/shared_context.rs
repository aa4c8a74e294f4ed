//! The user's crash as a regression test (patch 0006, the per-state lock).
//!
//! One context, 8 threads, each calling `whisper_full` 4 times on the context's default state
//! through the raw bindings, with jfk.wav. The scenario is `examples/shared_context_race.rs`,
//! included here so that the in-process tests and the subprocess run the same code.

mod common;

#[path = "../examples/shared_context_race.rs"]
mod race;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use race::{hammer, transcribe, Hold, SharedContext};
use whisper_steady::sys;

const THREADS: usize = 8;
const CALLS: usize = 4;

fn setup() -> Option<(SharedContext, Vec<f32>)> {
    let model = common::model_path()?;
    let samples = race::read_wav(&common::shared_audio("jfk.wav")).expect("jfk.wav reads");
    Some((
        SharedContext::load_on(&model, false).expect("the model loads"),
        samples,
    ))
}

const HOLD: Hold = (sys::whisper_lock, sys::whisper_unlock);

#[test]
fn holding_the_lock_across_full_and_reading_gives_every_caller_its_own_transcript() {
    let Some((ctx, samples)) = setup() else {
        return;
    };
    let reference = transcribe(&ctx, &samples, Some(HOLD));
    assert_eq!(reference.ret, 0);
    assert!(
        common::wer(&reference.text, common::JFK_TEXT) < 0.1,
        "the sequential transcript is not jfk's speech: {:?}",
        reference.text
    );
    let calls = hammer(&ctx, &samples, THREADS, CALLS, Some(HOLD));
    assert_eq!(calls.len(), THREADS * CALLS);
    for (i, call) in calls.iter().enumerate() {
        assert_eq!(
            call, &reference,
            "call {i} differs from the sequential transcript"
        );
    }
}

#[test]
fn without_the_callers_lock_nothing_crashes_and_every_call_succeeds() {
    let Some((ctx, samples)) = setup() else {
        return;
    };
    let calls = hammer(&ctx, &samples, THREADS, CALLS, None);
    assert_eq!(calls.len(), THREADS * CALLS);
    for (i, call) in calls.iter().enumerate() {
        assert_eq!(call.ret, 0, "call {i} failed");
        assert!(!call.text.trim().is_empty(), "call {i} read no text");
    }
}

#[test]
fn the_lock_is_recursive_and_try_lock_sees_another_holder() {
    let Some((ctx, _)) = setup() else { return };
    // SAFETY: lock/unlock pairs on live states; the extra state is freed after its last use.
    unsafe {
        // A thread holding the default state's lock may call functions that take it inside.
        sys::whisper_lock(ctx.raw());
        assert_eq!(sys::whisper_full_n_segments(ctx.raw()), 0);
        sys::whisper_unlock(ctx.raw());

        let state = SendPtr(sys::whisper_init_state(ctx.raw()));
        assert!(!state.0.is_null());
        let try_elsewhere = move || {
            std::thread::spawn(move || {
                let state = state;
                let taken = sys::whisper_state_try_lock(state.0);
                if taken {
                    sys::whisper_state_unlock(state.0);
                }
                taken
            })
            .join()
            .unwrap()
        };
        sys::whisper_state_lock(state.0);
        assert!(
            sys::whisper_state_try_lock(state.0),
            "the lock is not recursive"
        );
        sys::whisper_state_unlock(state.0);
        assert!(!try_elsewhere(), "another thread took a held lock");
        sys::whisper_state_unlock(state.0);
        assert!(try_elsewhere(), "a released lock could not be taken");
        sys::whisper_free_state(state.0);

        // Null states are ignored rather than dereferenced.
        sys::whisper_state_lock(std::ptr::null_mut());
        sys::whisper_state_unlock(std::ptr::null_mut());
        assert!(!sys::whisper_state_try_lock(std::ptr::null_mut()));
    }
}

#[derive(Clone, Copy)]
struct SendPtr(*mut sys::whisper_state);
// SAFETY: only passed to the lock functions, which are thread-safe with patch 0006.
unsafe impl Send for SendPtr {}

/// Builds `examples/shared_context_race.rs` with patch 0006 left out (and 0012, 0016 and 0018,
/// whose hunks change code that 0006 adds), in a target folder of its own, and returns the
/// executable.
fn build_unpatched_example() -> PathBuf {
    let target = Path::new(env!("CARGO_TARGET_TMPDIR")).join("without-0006");
    let status = Command::new(env!("CARGO"))
        .args(["build", "--locked", "--example", "shared_context_race"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("CARGO_TARGET_DIR", &target)
        .env("WHISPER_STEADY_PATCH_EXCLUDE", "0006,0012,0016,0018")
        .status()
        .expect("cargo runs");
    assert!(
        status.success(),
        "building the example without patch 0006 failed"
    );
    let exe = target.join("debug").join("examples").join(format!(
        "shared_context_race{}",
        std::env::consts::EXE_SUFFIX
    ));
    assert!(exe.is_file(), "{} was not built", exe.display());
    exe
}

/// Runs the unpatched example once; `Err` describes how it misbehaved. ggml's abort handler
/// forks a debugger to print a backtrace, and the fork keeps the output pipes open after the
/// program died: backtraces are turned off, the output goes to files, and a run that hangs is
/// killed after a while (and counts as misbehaving: a server that hangs is down too).
fn run_unpatched(exe: &Path, model: &Path, wav: &Path, dir: &Path) -> Result<(), String> {
    let (out_path, err_path) = (dir.join("stdout"), dir.join("stderr"));
    let mut child = Command::new(exe)
        .arg(model)
        .arg(wav)
        .args([THREADS.to_string(), "2".to_string()])
        .env("GGML_NO_BACKTRACE", "1")
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .spawn()
        .expect("the example starts");
    let until = Instant::now() + Duration::from_secs(600);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() > until {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let stdout = std::fs::read_to_string(&out_path).unwrap_or_default();
    let stderr = std::fs::read_to_string(&err_path).unwrap_or_default();
    let Some(status) = status else {
        return Err("hung for 10 minutes".into());
    };
    assert_ne!(
        status.code(),
        Some(2),
        "the example could not start its work:\n{stderr}"
    );
    if status.success() {
        return Ok(());
    }
    let detail = stderr
        .lines()
        .chain(stdout.lines())
        .find(|l| l.contains("GGML_ASSERT") || l.contains("some calls failed"))
        .unwrap_or("")
        .to_owned();
    Err(format!("{status} {detail}"))
}

/// The same scenario against a build without patch 0006 must misbehave (die by a signal, fail a
/// call, read another transcript, or hang), or this file would not guard the patch. The race is
/// a race: up to 5 runs, of which one must misbehave. Upstream died in the first run every time
/// this was tried (SIGABRT, `GGML_ASSERT(!sched->is_alloc) failed`).
#[test]
fn without_patch_0006_the_same_scenario_misbehaves() {
    let Some(model) = common::model_path() else {
        return;
    };
    let exe = build_unpatched_example();
    let wav = common::shared_audio("jfk.wav");
    let dir = tempfile::tempdir().unwrap();
    for run in 1..=5 {
        match run_unpatched(&exe, &model, &wav, dir.path()) {
            Ok(()) => eprintln!("run {run}: every call succeeded"),
            Err(how) => {
                eprintln!("run {run} misbehaved: {how}");
                return;
            }
        }
    }
    panic!("without patch 0006 five runs succeeded; the test no longer guards the patch");
}
