//! The setters that leaked in whisper-rs (a `CString::into_raw` per call) free what they replace.
//! A counting global allocator measures the bytes this test binary holds.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::sync::Mutex;

use whisper_steady::{FullParams, SamplingStrategy, WhisperVadContext, WhisperVadContextParams};

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: forwards to the system allocator and only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::SeqCst);
        // SAFETY: same layout contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::SeqCst);
        // SAFETY: ptr came from System.alloc with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Tests in this binary run one at a time so that the counter sees only one of them.
static SERIAL: Mutex<()> = Mutex::new(());

/// Slack for allocations the test harness makes on other threads while a test measures (a
/// thread being spawned for the next test, say). Every leak checked here is far larger.
const SLACK: isize = 64 * 1024;

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

fn live() -> isize {
    LIVE.load(Ordering::SeqCst)
}

#[test]
fn string_setters_do_not_leak() {
    let _serial = serial();
    let long = "x".repeat(1000);
    let mut params = FullParams::new(SamplingStrategy::Greedy { best_of: 1 });
    // Warm up so that one-time allocations are not counted.
    params.set_language(Some("en"));
    params.set_initial_prompt(&long);
    params.set_vad_model_path(Some(&long));
    let before = live();
    for _ in 0..10_000 {
        // Long strings, so that a leak of any one of them is far above the slack.
        params.set_language(Some(long.as_str()));
        params.set_initial_prompt(&long);
        params.set_vad_model_path(Some(&long));
    }
    let grown = live() - before;
    // whisper-rs leaks over 20 MB here (10,000 x ~2 KB).
    assert!(grown <= SLACK, "{grown} bytes retained after 10,000 calls");
    drop(params);
}

#[test]
fn callbacks_and_clones_are_freed() {
    let _serial = serial();
    let before = live();
    for _ in 0..1000 {
        let mut params = FullParams::new(SamplingStrategy::Greedy { best_of: 1 });
        let payload = vec![0u8; 4096];
        params.set_progress_callback_safe(move |_p: i32| {
            let _ = payload.len();
        });
        params.set_abort_callback_safe(|| false);
        params.set_segment_callback_safe(|_s: whisper_steady::SegmentCallbackData| {});
        params.set_language(Some("de"));
        let clone = params.clone();
        drop(params);
        drop(clone);
    }
    let grown = live() - before;
    assert!(
        grown <= SLACK,
        "{grown} bytes retained after 1,000 params with callbacks"
    );
}

#[test]
fn vad_context_errors_do_not_leak() {
    let _serial = serial();
    let path = "/nonexistent/whisper-steady-vad-model.bin";
    assert!(WhisperVadContext::new(path, WhisperVadContextParams::default()).is_err());
    let before = live();
    // whisper-rs leaked the path (about 40 bytes) on every call: 400 KB here.
    for _ in 0..10_000 {
        assert!(WhisperVadContext::new(path, WhisperVadContextParams::default()).is_err());
    }
    let grown = live() - before;
    assert!(grown <= SLACK, "{grown} bytes retained");
    assert!(matches!(
        WhisperVadContext::new("a\0b", WhisperVadContextParams::default()),
        Err(whisper_steady::WhisperError::NullByteInString { idx: 1 })
    ));
}
