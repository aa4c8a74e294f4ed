//! Patch 0006 and `whisper_full_parallel`: the workers run the user's encoder-begin callback,
//! and a callback that calls a ctx form of the API (`whisper_full_n_segments(ctx)`, which takes
//! the default state's lock) hung forever while the caller held that lock joining the workers.
//! The scenario runs in a child process with a time limit, so that a hang fails the test
//! instead of stalling the suite.

mod common;

#[path = "../examples/shared_context_race.rs"]
#[allow(dead_code)]
mod race;

use std::ffi::c_void;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use race::SharedContext;
use whisper_steady::sys;

const CHILD: &str = "WHISPER_STEADY_FULL_PARALLEL_CHILD";
const LIMIT: Duration = Duration::from_secs(180);

/// Counts the callback's calls; every call also reads the default state through a ctx form.
static CALLS: AtomicUsize = AtomicUsize::new(0);

unsafe extern "C" fn encoder_begin(
    ctx: *mut sys::whisper_context,
    _state: *mut sys::whisper_state,
    _user_data: *mut c_void,
) -> bool {
    // SAFETY: ctx is the live context whisper.cpp passes in.
    let segments = unsafe { sys::whisper_full_n_segments(ctx) };
    assert!(segments >= 0);
    CALLS.fetch_add(1, Ordering::SeqCst);
    true
}

/// The child: whisper_full_parallel over jfk.wav with two processors and the callback above.
#[test]
#[ignore = "run by callbacks_on_the_workers_may_use_the_context_forms in a child process"]
fn child_full_parallel_with_a_reentrant_callback() {
    if std::env::var_os(CHILD).is_none() {
        return;
    }
    let model = common::model_path().expect("the parent checked the model");
    let samples = race::read_wav(&common::shared_audio("jfk.wav")).expect("jfk.wav reads");
    let ctx = SharedContext::load(&model).expect("the model loads");
    // SAFETY: the callback is a plain function without user data; samples outlive the call;
    // the context is valid.
    let (ret, n_segments, text) = unsafe {
        let mut params = race::quiet_greedy_params(1);
        params.encoder_begin_callback = Some(encoder_begin);
        let ret = sys::whisper_full_parallel(
            ctx.raw(),
            params,
            samples.as_ptr(),
            samples.len() as i32,
            2,
        );
        let n = sys::whisper_full_n_segments(ctx.raw());
        let text: String = (0..n)
            .map(|i| {
                std::ffi::CStr::from_ptr(sys::whisper_full_get_segment_text(ctx.raw(), i))
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        (ret, n, text)
    };
    println!(
        "RESULT ret={ret} segments={n_segments} callbacks={} text={text:?}",
        CALLS.load(Ordering::SeqCst)
    );
    assert_eq!(ret, 0);
    assert!(n_segments > 0);
    assert!(
        CALLS.load(Ordering::SeqCst) >= 2,
        "both chunks began an encoder"
    );
    assert!(text.to_lowercase().contains("country"), "{text:?}");
}

#[test]
fn callbacks_on_the_workers_may_use_the_context_forms() {
    if common::model_path().is_none() {
        return;
    }
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_full_parallel_with_a_reentrant_callback",
            "--ignored",
            "--nocapture",
        ])
        .env(CHILD, "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the test binary starts");
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > LIMIT {
            child.kill().ok();
            child.wait().ok();
            panic!("whisper_full_parallel hung for {LIMIT:?}: the callback deadlocked");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut out = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut out).unwrap();
    assert!(status.success(), "the child failed: {out}");
    assert!(out.contains("RESULT ret=0"), "{out}");
}
