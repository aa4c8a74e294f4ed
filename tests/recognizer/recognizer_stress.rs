//! 200 requests from 16 threads through a recognizer with 4 states on the CPU: every transcript
//! equals the one its clip gets alone, overload errors come only from a deliberately small
//! queue, and resident memory stays flat after warm-up.

use crate::common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use whisper_steady::recognizer::{RecognizeError, RecognizeOptions, Recognizer, RecognizerConfig};

/// Three clips of jfk.wav (start, end in seconds, and what is said), cut at pauses.
const CLIPS: [(f32, f32, &str); 3] = [
    (0.0, 2.6, "And so my fellow Americans"),
    (3.0, 7.9, "ask not what your country can do for you"),
    (8.0, 11.0, "ask what you can do for your country"),
];

/// Encodes the clip's 20 ms frames plus 4 s (less margin made tiny.en repeat the first clip)
/// instead of the full 30 s window: a fifth of the encoder's work, which keeps 200 requests
/// affordable on a small CI machine.
fn options(clip: &[f32]) -> RecognizeOptions {
    let frames = clip.len() / 320 + 200;
    let mut options = RecognizeOptions::new();
    options.audio_ctx = Some(frames as u32);
    options
}

fn clips() -> Vec<Vec<f32>> {
    let jfk = common::read_wav_16k_mono(&common::shared_audio("jfk.wav"));
    CLIPS
        .iter()
        .map(|&(from, to, _)| jfk[(from * 16_000.0) as usize..(to * 16_000.0) as usize].to_vec())
        .collect()
}

/// Resident memory of this process, in bytes (Linux; `None` elsewhere).
fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

fn recognizer(queue_limit: usize) -> Option<Recognizer> {
    let model = common::model_path()?;
    let mut config = RecognizerConfig::new(model);
    config.use_gpu = false;
    config.workers = 4;
    config.threads_per_worker = 1;
    config.queue_limit = queue_limit;
    Some(Recognizer::new(config).expect("the recognizer starts"))
}

#[test]
fn two_hundred_requests_from_sixteen_threads() {
    const REQUESTS: usize = 200;
    const THREADS: usize = 16;
    let Some(recognizer) = recognizer(REQUESTS) else {
        return;
    };
    let clips = clips();

    // The reference: each clip alone, one after the other.
    let reference: Vec<String> = clips
        .iter()
        .zip(CLIPS)
        .map(|(clip, (_, _, said))| {
            let text = recognizer
                .transcribe(clip.clone(), options(clip))
                .unwrap()
                .text;
            let wer = common::wer(said, &text);
            assert!(
                wer <= 0.25,
                "clip {said:?} alone gave {text:?} (WER {wer:.2})"
            );
            text
        })
        .collect();

    let next = AtomicUsize::new(0);
    let done = AtomicUsize::new(0);
    let warm_rss = Mutex::new(None);
    let wrong = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..THREADS {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= REQUESTS {
                    break;
                }
                let clip = i % clips.len();
                match recognizer.transcribe(clips[clip].clone(), options(&clips[clip])) {
                    Ok(t) if t.text == reference[clip] => {}
                    other => wrong.lock().unwrap().push((i, format!("{other:?}"))),
                }
                if done.fetch_add(1, Ordering::Relaxed) + 1 == 20 {
                    *warm_rss.lock().unwrap() = resident_bytes();
                }
            });
        }
    });
    let wrong = wrong.into_inner().unwrap();
    assert!(
        wrong.is_empty(),
        "{} requests went wrong: {wrong:?}",
        wrong.len()
    );

    let health = recognizer.health();
    assert_eq!(health.requests.completed, (REQUESTS + clips.len()) as u64);
    assert_eq!(health.requests.rejected_overloaded, 0);
    assert_eq!(health.requests.failed, 0);
    assert_eq!(health.queue_depth, 0);

    if let (Some(warm), Some(end)) = (warm_rss.into_inner().unwrap(), resident_bytes()) {
        let growth = end.saturating_sub(warm);
        eprintln!(
            "resident memory: {} MiB after 20 requests, {} MiB after {REQUESTS} (+{} KiB)",
            warm >> 20,
            end >> 20,
            growth >> 10
        );
        assert!(
            growth < 16 << 20,
            "resident memory grew by {} MiB between request 20 and request {REQUESTS}",
            growth >> 20
        );
    }
}

#[test]
fn a_small_queue_refuses_the_excess_and_serves_the_rest() {
    const THREADS: usize = 16;
    let Some(recognizer) = recognizer(2) else {
        return;
    };
    let clip = clips().swap_remove(0);
    let reference = recognizer
        .transcribe(clip.clone(), options(&clip))
        .unwrap()
        .text;

    let start = std::sync::Barrier::new(THREADS);
    let outcomes: Vec<Result<String, RecognizeError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..THREADS)
            .map(|_| {
                scope.spawn(|| {
                    start.wait();
                    recognizer
                        .submit(clip.clone(), options(&clip))
                        .map(|ticket| ticket.wait().map(|t| t.text))
                        .and_then(|r| r)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let overloaded = outcomes
        .iter()
        .filter(|o| matches!(o, Err(RecognizeError::Overloaded { queue_limit: 2 })))
        .count();
    let served: Vec<_> = outcomes.iter().filter_map(|o| o.as_ref().ok()).collect();
    assert_eq!(
        overloaded + served.len(),
        THREADS,
        "only overload errors and transcripts: {outcomes:?}"
    );
    // At most 4 running and 2 waiting when all 16 arrive at once.
    assert!(
        overloaded >= THREADS - 6,
        "{overloaded} refused: {outcomes:?}"
    );
    assert!(served.len() >= 2, "{outcomes:?}");
    assert!(served.iter().all(|t| **t == reference), "{served:?}");
    let health = recognizer.health();
    assert_eq!(health.requests.rejected_overloaded, overloaded as u64);
    // Refused requests left nothing behind.
    std::thread::sleep(Duration::from_millis(10));
    assert_eq!(recognizer.health().queue_depth, 0);
}

#[test]
fn clones_share_the_workers() {
    let Some(recognizer) = recognizer(8) else {
        return;
    };
    let other = recognizer.clone();
    let clip = Arc::new(clips().swap_remove(2));
    let a = recognizer.submit(clip.to_vec(), options(&clip)).unwrap();
    let b = other.submit(clip.to_vec(), options(&clip)).unwrap();
    assert_ne!(a.id(), b.id());
    assert_eq!(a.wait().unwrap().text, b.wait().unwrap().text);
    assert_eq!(recognizer.health().requests.completed, 2);
}

/// Set (to `THREADS OUT_FILE`) by the test below in the process it starts to run
/// [`threads_cpu_time_entry`].
#[cfg(unix)]
const CPU_RUN_ENV: &str = "WHISPER_STEADY_TEST_CPU_RUN";

/// In a process started by the test below: transcribes jfk.wav with the threads it is given and
/// writes the process's CPU time (seconds, user and system) and the text to its file. A no-op
/// in a test run.
#[cfg(unix)]
#[test]
fn threads_cpu_time_entry() {
    let Ok(spec) = std::env::var(CPU_RUN_ENV) else {
        return;
    };
    let (threads, out) = spec.split_once(' ').unwrap();
    let mut config = RecognizerConfig::new(common::model_path().unwrap());
    config.use_gpu = false;
    config.workers = 1;
    config.threads_per_worker = threads.parse().unwrap();
    let recognizer = Recognizer::new(config).expect("the recognizer starts");
    let jfk = common::read_wav_16k_mono(&common::shared_audio("jfk.wav"));
    let text = recognizer
        .transcribe(jfk, RecognizeOptions::new())
        .expect("jfk.wav is transcribed")
        .text;
    // SAFETY: getrusage fills the struct it is given.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        assert_eq!(libc::getrusage(libc::RUSAGE_SELF, &mut usage), 0);
        usage
    };
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    let cpu = seconds(usage.ru_utime) + seconds(usage.ru_stime);
    std::fs::write(out, format!("{cpu}\t{text}")).unwrap();
}

/// ggml's CPU threads wait for each other after every node of the graph. Before patch 0022 a
/// waiting thread spun on its core, so with more runnable threads than cores (here twice as many
/// threads as cores; in a server, other requests or a CPU quota) it kept the core from the thread
/// it waited for: jfk.wav took 26 s with 4 threads on 2 cores instead of 0.65 s with 2, and
/// burnt 53.5 s of CPU time instead of 1.75 s. Now the extra threads cost what sharing the
/// cores costs. Measured in CPU time, in a process of its own for each: the time that waiting
/// threads burn, which the other tests running beside this one cannot inflate as they do the
/// wall-clock time.
#[cfg(unix)]
#[test]
fn more_threads_than_cores_cost_in_proportion_not_thirty_times() {
    if common::model_path().is_none() {
        return;
    }
    let cores = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .min(8);
    let dir = tempfile::tempdir().unwrap();
    let run = |threads: usize| -> (f64, String) {
        let out = dir.path().join(format!("{threads}.txt"));
        let status = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                &common::exact(module_path!(), "threads_cpu_time_entry"),
                "--exact",
                "--test-threads=1",
            ])
            .env(CPU_RUN_ENV, format!("{threads} {}", out.display()))
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(status.success());
        let written = std::fs::read_to_string(&out).unwrap();
        let (cpu, text) = written.split_once('\t').unwrap();
        (cpu.parse().unwrap(), text.to_owned())
    };
    let (alone, text) = run(cores);
    let (crowded, crowded_text) = run(2 * cores);
    assert_eq!(crowded_text, text);
    assert!(
        crowded < alone * 3.0 + 1.0,
        "{} threads on {cores} cores took {crowded:.2} s of CPU time; {cores} threads {alone:.2} s",
        2 * cores
    );
}
