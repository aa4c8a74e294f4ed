//! Patch 0006 and `whisper_full_parallel`: the workers run the user's encoder-begin callback,
//! and a callback that calls a ctx form of the API (`whisper_full_n_segments(ctx)`, which takes
//! the default state's lock) hung forever while the caller held that lock joining the workers.
//! The scenario runs in a child process with a time limit, so that a hang fails the test
//! instead of stalling the suite.
//!
//! Patch 0016: while `whisper_full_parallel` joins its workers with the lock released, another
//! thread's `whisper_full(ctx)` replaced the default state's results and the merge appended the
//! workers' segments to them; and a run without VAD restored the VAD table of an earlier run.

use crate::common;

#[path = "../../examples/shared_context_race.rs"]
#[allow(dead_code)]
mod race;

use std::ffi::{c_void, CStr, CString};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Mutex};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use race::{Hold, SharedContext};
use whisper_steady::sys;

/// Patch 0006's lock of the default state, held across a whisper_full and its reading.
const HOLD: Hold = (sys::whisper_lock, sys::whisper_unlock);

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
    let ctx = SharedContext::load_on(&model, false).expect("the model loads");
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
            &common::exact(
                module_path!(),
                "child_full_parallel_with_a_reentrant_callback",
            ),
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

/// One segment as the default state reports it: start, end (centiseconds) and text.
type Segment = (i64, i64, String);

/// The default state's segments.
///
/// # Safety
/// `ctx` must be live, and no other thread may write its default state meanwhile.
unsafe fn segments(ctx: *mut sys::whisper_context) -> Vec<Segment> {
    // SAFETY: forwarded to the caller's contract.
    unsafe {
        (0..sys::whisper_full_n_segments(ctx))
            .map(|i| {
                let text = CStr::from_ptr(sys::whisper_full_get_segment_text(ctx, i));
                (
                    sys::whisper_full_get_segment_t0(ctx, i),
                    sys::whisper_full_get_segment_t1(ctx, i),
                    text.to_string_lossy().into_owned(),
                )
            })
            .collect()
    }
}

/// `whisper_full_parallel` with two processors of one thread each; returns its value.
fn full_parallel(ctx: &SharedContext, samples: &[f32], params: sys::whisper_full_params) -> i32 {
    // SAFETY: a live context; the samples outlive the call; the callbacks in `params`, if any,
    // are plain functions whose user data outlives the call.
    unsafe {
        sys::whisper_full_parallel(ctx.raw(), params, samples.as_ptr(), samples.len() as i32, 2)
    }
}

/// What the worker's encoder-begin callback does: once, on a thread other than the caller's
/// (the worker), it lets the intruder run and waits until it has transcribed.
struct Gate {
    caller: ThreadId,
    armed: AtomicBool,
    go: Mutex<Option<mpsc::Sender<()>>>,
    done: Mutex<Option<mpsc::Receiver<()>>>,
    /// Whether the intruder finished while the worker waited (false: it timed out).
    intruded: AtomicBool,
}

unsafe extern "C" fn hold_the_worker(
    _ctx: *mut sys::whisper_context,
    _state: *mut sys::whisper_state,
    user_data: *mut c_void,
) -> bool {
    // SAFETY: user_data is the Gate the test passes; it outlives whisper_full_parallel.
    let gate = unsafe { &*user_data.cast::<Gate>() };
    if std::thread::current().id() != gate.caller && gate.armed.swap(false, Ordering::SeqCst) {
        if let Some(go) = gate.go.lock().unwrap().take() {
            go.send(()).ok();
        }
        if let Some(done) = gate.done.lock().unwrap().take() {
            let ok = done.recv_timeout(Duration::from_secs(300)).is_ok();
            gate.intruded.store(ok, Ordering::SeqCst);
        }
    }
    true
}

#[test]
fn another_threads_whisper_full_during_the_join_leaves_the_parallel_results_alone() {
    let Some(model) = common::model_path() else {
        return;
    };
    let jfk = common::jfk();
    let ctx = SharedContext::load_on(&model, false).expect("the model loads");
    // The parallel run alone: the reference.
    assert_eq!(full_parallel(&ctx, &jfk, race::quiet_greedy_params(1)), 0);
    // SAFETY: no other thread uses the context.
    let reference = unsafe { segments(ctx.raw()) };
    assert!(!reference.is_empty());
    // The same run while another thread transcribes the first four seconds on the same
    // context: it takes the default state's lock when the parallel call releases it to join
    // its worker, which the gate holds until the intruder is done.
    let intruder_audio = &jfk[..4 * 16_000];
    let (go_tx, go_rx) = mpsc::channel();
    let (done_tx, done_rx) = mpsc::channel();
    let gate = Gate {
        caller: std::thread::current().id(),
        armed: AtomicBool::new(true),
        go: Mutex::new(Some(go_tx)),
        done: Mutex::new(Some(done_rx)),
        intruded: AtomicBool::new(false),
    };
    let shared = &ctx;
    let (parallel, intruder) = std::thread::scope(|scope| {
        let intruder = scope.spawn(move || {
            go_rx.recv().expect("the worker lets the intruder in");
            let call = race::transcribe(shared, intruder_audio, Some(HOLD));
            done_tx.send(()).ok();
            call
        });
        let mut params = race::quiet_greedy_params(1);
        params.encoder_begin_callback = Some(hold_the_worker);
        params.encoder_begin_callback_user_data = (&gate as *const Gate).cast_mut().cast();
        let ret = full_parallel(&ctx, &jfk, params);
        (ret, intruder.join().expect("the intruder"))
    });
    assert_eq!(parallel, 0);
    assert!(
        gate.intruded.load(Ordering::SeqCst),
        "the intruder did not run during the join"
    );
    assert_eq!(intruder.ret, 0);
    assert!(
        intruder.text.to_lowercase().contains("fellow americans"),
        "{:?}",
        intruder.text
    );
    // SAFETY: every other thread has finished.
    let after = unsafe { segments(ctx.raw()) };
    assert_eq!(
        after, reference,
        "the parallel call's results were merged into another request's"
    );
}

#[test]
fn a_parallel_run_without_vad_keeps_no_vad_table() {
    let (Some(model), Some(vad_model)) = (common::model_path(), common::vad_model_path()) else {
        return;
    };
    let vad_model = CString::new(vad_model.to_string_lossy().into_owned()).unwrap();
    let jfk = common::jfk();
    // a second of silence first, so that VAD's table maps times away from the identity
    let mut padded = vec![0.0f32; 16_000];
    padded.extend_from_slice(&jfk);
    let ctx = SharedContext::load_on(&model, false).expect("the model loads");
    let with_vad = || {
        let mut params = race::quiet_greedy_params(1);
        params.vad = true;
        params.vad_model_path = vad_model.as_ptr();
        params
    };
    assert_eq!(
        full_parallel(&ctx, &padded, race::quiet_greedy_params(1)),
        0
    );
    // SAFETY: no other thread uses the context.
    let reference = unsafe { segments(ctx.raw()) };
    // SAFETY: a live context and samples; the model path outlives the call.
    let ret =
        unsafe { sys::whisper_full(ctx.raw(), with_vad(), padded.as_ptr(), padded.len() as i32) };
    assert_eq!(ret, 0);
    // SAFETY: as above.
    let vad_run = unsafe { segments(ctx.raw()) };
    assert_ne!(
        vad_run.iter().map(|s| (s.0, s.1)).collect::<Vec<_>>(),
        reference.iter().map(|s| (s.0, s.1)).collect::<Vec<_>>(),
        "the VAD run must have a table that moves timestamps for this test to mean anything"
    );
    assert_eq!(
        full_parallel(&ctx, &padded, race::quiet_greedy_params(1)),
        0
    );
    // SAFETY: as above.
    let again = unsafe { segments(ctx.raw()) };
    assert_eq!(
        again, reference,
        "a run without VAD mapped its timestamps through the previous run's VAD table"
    );
    // With VAD and no speech at all: no segments (the earlier results are not handed back).
    let silence = vec![0.0f32; 3 * 16_000];
    assert_eq!(full_parallel(&ctx, &silence, with_vad()), 0);
    // SAFETY: as above.
    let none = unsafe { segments(ctx.raw()) };
    assert!(none.is_empty(), "{none:?}");
}
