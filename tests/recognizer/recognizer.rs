//! The Recognizer on the real model: results, failover, deadlines, cancellation, validation,
//! shutdown and async use.

use crate::common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use whisper_steady::recognizer::{
    devices, fitted_audio_ctx, Backend, BreakerState, FaultInjection, GpuDevices, HealthStatus,
    RecognizeError, RecognizeOptions, Recognizer, RecognizerConfig, RecognizerError,
};

fn jfk() -> Vec<f32> {
    common::read_wav_16k_mono(&common::shared_audio("jfk.wav"))
}

/// "ask what you can do for your country" (jfk.wav from 8 s), with a short encoder window so
/// that tests needing many runs stay quick (see tests/recognizer/recognizer_stress.rs).
fn short_clip() -> (Vec<f32>, RecognizeOptions) {
    let clip = jfk()[8 * 16_000..11 * 16_000].to_vec();
    let mut options = RecognizeOptions::new();
    options.audio_ctx = Some((clip.len() / 320 + 200) as u32);
    (clip, options)
}

fn config() -> Option<RecognizerConfig> {
    Some(config_for(common::model_path()?))
}

/// One CPU worker with two threads on the model at `path`.
fn config_for(path: std::path::PathBuf) -> RecognizerConfig {
    let mut config = RecognizerConfig::new(path);
    config.use_gpu = false;
    config.workers = 1;
    config.threads_per_worker = 2;
    config
}

fn cpu_only_build() -> bool {
    devices().iter().all(|d| d.kind == "cpu")
}

/// Polls `cond` until it holds (panics after a minute: something hangs).
fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let until = Instant::now() + Duration::from_secs(60);
    while !cond() {
        assert!(Instant::now() < until, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn transcript_has_text_segments_tokens_language_and_timings() {
    let Some(mut config) = config() else { return };
    config.use_gpu = false;
    let recognizer = Recognizer::new(config).unwrap();
    let mut options = RecognizeOptions::new();
    options.token_timestamps = true;
    let t = recognizer.transcribe(jfk(), options).unwrap();

    let wer = common::wer(common::JFK_TEXT, &t.text);
    assert!(wer <= 0.1, "{:?} (WER {wer:.2})", t.text);
    assert_eq!(t.language, "en");
    assert_eq!(t.backend, Backend::Cpu);
    assert!(!t.retried_on_cpu);
    assert!(!t.segments.is_empty());
    let mut last_end = Duration::ZERO;
    for s in &t.segments {
        assert!(s.start >= last_end && s.end > s.start, "{s:?}");
        assert!(s.end <= Duration::from_secs(12), "{s:?}");
        last_end = s.end;
        let words: String = s
            .tokens
            .iter()
            .filter(|k| !k.special)
            .map(|k| k.text.as_str())
            .collect();
        assert_eq!(words, s.text, "the text tokens spell the segment");
        assert!(s.tokens.iter().all(|k| (0.0..=1.0).contains(&k.p)));
    }
    let confidence = t.confidence();
    assert!(confidence > 0.5 && confidence <= 1.0, "{confidence}");
    assert!(t.timings.processing > Duration::ZERO);
    assert!(t.timings.total >= t.timings.processing + t.timings.queued);

    // Beam search gives the same speech.
    let mut beams = RecognizeOptions::new();
    beams.beam_size = Some(4);
    let b = recognizer.transcribe(jfk(), beams).unwrap();
    assert!(
        common::wer(common::JFK_TEXT, &b.text) <= 0.1,
        "{:?}",
        b.text
    );
}

#[test]
fn the_encoder_window_is_fitted_to_short_clips_without_changing_the_words() {
    // 20 ms per position plus the 200-position margin; 26 s and more keep the full window.
    assert_eq!(fitted_audio_ctx(11 * 16_000, 1500), Some(550 + 200));
    assert_eq!(fitted_audio_ctx(1, 1500), Some(201));
    assert_eq!(fitted_audio_ctx(0, 1500), Some(200));
    assert_eq!(fitted_audio_ctx(26 * 16_000 - 320, 1500), Some(1499));
    assert_eq!(fitted_audio_ctx(26 * 16_000, 1500), None);
    assert_eq!(fitted_audio_ctx(usize::MAX, 1500), None);

    let Some(mut config) = config() else { return };
    // Opt-in: it costs words on speech it was not tuned on (see its rustdoc).
    assert!(!config.fit_audio_ctx, "the default");
    let full = Recognizer::new(config.clone()).unwrap();
    config.fit_audio_ctx = true;
    let fitted = Recognizer::new(config).unwrap();
    let audio = jfk();
    let a = fitted
        .transcribe(audio.clone(), RecognizeOptions::new())
        .unwrap();
    let b = full.transcribe(audio, RecognizeOptions::new()).unwrap();
    assert_eq!(common::words(&a.text), common::words(&b.text));
    assert!(
        common::wer(common::JFK_TEXT, &a.text) <= 0.1,
        "{:?}",
        a.text
    );
    // The segments still end within the audio.
    assert!(a.segments.last().unwrap().end <= Duration::from_millis(11_100));
}

#[test]
fn use_gpu_without_a_gpu_runs_on_the_cpu_and_says_so() {
    let Some(mut config) = config() else { return };
    if !cpu_only_build() {
        eprintln!("skipped: this build has a GPU device");
        return;
    }
    // A GPU when there is one: none in this build, so the CPU, as configured (and why).
    config.use_gpu = true;
    config.fallback_to_cpu = false;
    let recognizer = Recognizer::new(config.clone()).unwrap();
    assert_eq!(recognizer.main_backend(), Backend::Cpu);
    let health = recognizer.health();
    assert_eq!(health.status, HealthStatus::Ok);
    let reason = health.failover.gpu_unavailable.clone().unwrap();
    assert!(reason.contains("no GPU device"), "{reason}");
    assert_eq!(health.lanes.len(), 1);
    let (clip, options) = short_clip();
    let t = recognizer
        .transcribe(clip.clone(), options.clone())
        .unwrap();
    assert_eq!(t.backend, Backend::Cpu);
    drop(recognizer);

    // A GPU asked for: degraded without one, an error without fallback.
    config.require_gpu = true;
    config.fallback_to_cpu = true;
    let recognizer = Recognizer::new(config.clone()).unwrap();
    let health = recognizer.health();
    assert_eq!(health.status, HealthStatus::Degraded);
    assert!(health.failover.require_gpu);
    assert_eq!(
        recognizer.transcribe(clip, options).unwrap().backend,
        Backend::Cpu
    );
    drop(recognizer);
    config.fallback_to_cpu = false;
    match Recognizer::new(config.clone()) {
        Err(RecognizerError::GpuUnavailable { reason }) => {
            assert!(reason.contains("no GPU device"), "{reason}")
        }
        other => panic!("expected GpuUnavailable, got {other:?}"),
    }
    config.use_gpu = false;
    match config.validate() {
        Err(e) => assert_eq!(
            (e.field, e.to_string()),
            ("require_gpu", "require_gpu needs use_gpu".into())
        ),
        Ok(()) => panic!("require_gpu without use_gpu"),
    }
}

#[test]
fn a_gpu_context_that_cannot_be_created_falls_back_to_the_cpu() {
    let Some(mut config) = config() else { return };
    config.use_gpu = true;
    let mut faults = FaultInjection::new();
    faults.fail_gpu_context = true;
    config.fault_injection = Some(faults);
    let recognizer = Recognizer::new(config).unwrap();
    assert_eq!(recognizer.main_backend(), Backend::Cpu);
    let reason = recognizer.health().failover.gpu_unavailable.unwrap();
    assert!(reason.contains("injected"), "{reason}");
}

#[test]
fn gpu_failures_are_retried_on_the_cpu_and_open_the_breaker() {
    let Some(mut config) = config() else { return };
    let (clip, options) = short_clip();
    let reference = {
        let r = Recognizer::new(config.clone()).unwrap();
        r.transcribe(clip.clone(), options.clone()).unwrap().text
    };

    let failing = Arc::new(AtomicBool::new(true));
    let gpu_attempts = Arc::new(AtomicUsize::new(0));
    let mut faults = FaultInjection::new();
    faults.simulate_gpu = true;
    faults.fail_attempt = Some({
        let (failing, gpu_attempts) = (Arc::clone(&failing), Arc::clone(&gpu_attempts));
        Arc::new(move |site| {
            if site.backend != Backend::Gpu {
                return false;
            }
            gpu_attempts.fetch_add(1, Ordering::SeqCst);
            failing.load(Ordering::SeqCst)
        })
    });
    config.use_gpu = true;
    config.fallback_to_cpu = true;
    config.breaker_threshold = 2;
    // Long enough that the requests below, slow on a loaded machine, all fall inside it.
    config.breaker_cooldown = Duration::from_secs(10);
    config.fault_injection = Some(faults);
    let recognizer = Recognizer::new(config).unwrap();
    assert_eq!(recognizer.main_backend(), Backend::Gpu);
    assert_eq!(recognizer.health().lanes.len(), 2);

    // Two failures: each request is retried on the CPU and not lost; the second opens the
    // breaker.
    for n in 1..=2 {
        let t = recognizer
            .transcribe(clip.clone(), options.clone())
            .unwrap();
        assert_eq!((t.backend, t.retried_on_cpu), (Backend::Cpu, true));
        assert_eq!(t.text, reference);
        assert_eq!(recognizer.health().failover.gpu_failures, n);
    }
    let health = recognizer.health();
    assert!(matches!(health.failover.breaker, BreakerState::Open { .. }));
    assert_eq!(health.failover.breaker_trips, 1);
    assert_eq!(health.failover.retried_on_cpu, 2);
    assert_eq!(health.status, HealthStatus::Degraded);
    assert_eq!(health.lanes[0].failed, 2);

    // While open, requests go straight to the CPU: the GPU is not tried.
    let t = recognizer
        .transcribe(clip.clone(), options.clone())
        .unwrap();
    assert_eq!((t.backend, t.retried_on_cpu), (Backend::Cpu, false));
    assert_eq!(gpu_attempts.load(Ordering::SeqCst), 2);
    assert_eq!(recognizer.health().failover.diverted_to_cpu, 1);

    // After the cool-down one request probes the GPU; it works now, which closes the breaker.
    failing.store(false, Ordering::SeqCst);
    eventually("the cool-down ends", || {
        recognizer.health().failover.breaker == BreakerState::HalfOpen
    });
    let t = recognizer
        .transcribe(clip.clone(), options.clone())
        .unwrap();
    assert_eq!((t.backend, t.retried_on_cpu), (Backend::Gpu, false));
    assert_eq!(t.text, reference);
    let health = recognizer.health();
    assert_eq!(health.failover.breaker, BreakerState::Closed);
    assert_eq!(health.failover.consecutive_gpu_failures, 0);
    assert_eq!(health.status, HealthStatus::Ok);
    assert_eq!(health.requests.completed, 4);
    assert_eq!(health.requests.failed, 0);
}

#[test]
fn a_gpu_failure_without_fallback_is_reported() {
    let Some(mut config) = config() else { return };
    let mut faults = FaultInjection::new();
    faults.simulate_gpu = true;
    faults.fail_attempt = Some(Arc::new(|_| true));
    config.use_gpu = true;
    config.fallback_to_cpu = false;
    config.fault_injection = Some(faults);
    let recognizer = Recognizer::new(config).unwrap();
    let (clip, options) = short_clip();
    match recognizer.transcribe(clip, options) {
        Err(RecognizeError::Failed {
            backend: Backend::Gpu,
            ..
        }) => {}
        other => panic!("expected a GPU failure, got {other:?}"),
    }
    assert_eq!(recognizer.health().requests.failed, 1);
}

#[test]
fn deadlines_stop_running_and_queued_requests() {
    let Some(config) = config() else { return };
    let recognizer = Recognizer::new(config).unwrap();

    // Running: aborted through whisper.cpp's abort callback.
    let err = recognizer
        .transcribe(
            jfk(),
            RecognizeOptions::new().deadline(Duration::from_millis(50)),
        )
        .unwrap_err();
    assert!(
        matches!(err, RecognizeError::DeadlineExceeded { deadline } if deadline == Duration::from_millis(50)),
        "{err:?}"
    );

    // Queued behind a long request: expires without running.
    let long = recognizer.submit(jfk(), RecognizeOptions::new()).unwrap();
    eventually("the long request runs", || {
        recognizer.health().lanes[0].busy == 1
    });
    let (clip, options) = short_clip();
    let short = recognizer
        .submit(
            clip.clone(),
            options.clone().deadline(Duration::from_millis(10)),
        )
        .unwrap();
    assert!(long.wait().is_ok());
    assert!(matches!(
        short.wait(),
        Err(RecognizeError::DeadlineExceeded { .. })
    ));

    // Neither counts as a failure, and the worker's state still works.
    let t = recognizer.transcribe(clip, options).unwrap();
    assert!(common::wer("ask what you can do for your country", &t.text) <= 0.25);
    let health = recognizer.health();
    assert_eq!(health.requests.deadline_exceeded, 2);
    assert_eq!(health.requests.failed, 0);
    assert_eq!(health.lanes[0].failed, 0);
}

#[test]
fn cancelling_or_dropping_a_ticket_stops_its_request() {
    let Some(mut config) = config() else { return };
    config.default_deadline = Some(Duration::from_secs(600));
    let recognizer = Recognizer::new(config).unwrap();

    let running = recognizer.submit(jfk(), RecognizeOptions::new()).unwrap();
    eventually("the request runs", || {
        recognizer.health().lanes[0].busy == 1
    });
    let queued = recognizer.submit(jfk(), RecognizeOptions::new()).unwrap();
    running.cancel();
    assert!(matches!(running.wait(), Err(RecognizeError::Cancelled)));
    // The queued one now runs; dropping its ticket stops it too.
    eventually("the queued request runs", || {
        recognizer.health().queue_depth == 0
    });
    drop(queued);
    eventually("the dropped request is cancelled", || {
        recognizer.health().requests.cancelled == 2
    });
    let health = recognizer.health();
    assert_eq!(health.requests.completed, 0);
    assert_eq!(health.requests.failed, 0);
    assert_eq!(health.lanes[0].busy, 0);

    let (clip, options) = short_clip();
    assert!(recognizer.transcribe(clip, options).is_ok());
}

#[test]
fn invalid_requests_and_configurations_are_refused_with_the_reason() {
    let Some(config) = config() else { return };
    let recognizer = Recognizer::new(config.clone()).unwrap();
    let audio = vec![0.0f32; 16_000];
    let invalid = |options: RecognizeOptions, audio: Vec<f32>| -> String {
        match recognizer.submit(audio, options) {
            Err(e @ (RecognizeError::InvalidOptions(_) | RecognizeError::InvalidAudio(_))) => {
                e.to_string()
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
    };
    let opts = RecognizeOptions::new;
    assert!(invalid(opts(), Vec::new()).contains("no samples"));
    let mut nan = audio.clone();
    nan[7] = f32::NAN;
    assert!(invalid(opts(), nan).contains("sample 7"));
    assert!(invalid(opts().language("xx"), audio.clone()).contains("\"xx\""));
    assert!(invalid(opts().language("de"), audio.clone()).contains("English-only"));
    let mut o = opts();
    o.translate = true;
    assert!(invalid(o, audio.clone()).contains("translate"));
    for beams in [0, 9] {
        let mut o = opts();
        o.beam_size = Some(beams);
        assert!(invalid(o, audio.clone()).contains("beam_size"));
    }
    let mut o = opts();
    o.temperature = Some(1.5);
    assert!(invalid(o, audio.clone()).contains("temperature"));
    for frames in [0, 1501] {
        let mut o = opts();
        o.audio_ctx = Some(frames);
        assert!(invalid(o, audio.clone()).contains("audio_ctx"));
    }
    assert!(invalid(opts().deadline(Duration::ZERO), audio.clone()).contains("deadline"));
    let mut o = opts();
    o.initial_prompt = Some("a\0b".into());
    assert!(invalid(o, audio.clone()).contains("NUL"));
    assert_eq!(recognizer.health().requests.submitted, 0);
    // "auto" and upper case are accepted ("AUTO" on an English-only model is English).
    for language in ["EN", "AUTO", " auto "] {
        let (clip, mut options) = short_clip();
        options.language = Some(language.into());
        let transcript = recognizer.transcribe(clip, options);
        assert_eq!(transcript.expect(language).language, "en", "{language}");
    }

    let mut bad = config.clone();
    bad.workers = 0;
    assert!(matches!(
        Recognizer::new(bad),
        Err(RecognizerError::InvalidConfig(why)) if why.contains("workers")
    ));
    let mut bad = config.clone();
    bad.model_path = "no/such/model.bin".into();
    let err = Recognizer::new(bad).unwrap_err();
    assert!(err.to_string().contains("no/such/model.bin"), "{err}");
}

#[test]
fn a_multilingual_model_detects_the_language_and_translates() {
    let Some(path) = common::multilingual_model_path() else {
        return;
    };
    let recognizer = Recognizer::new(config_for(path)).unwrap();
    let t = recognizer
        .transcribe(jfk(), RecognizeOptions::new().language("auto"))
        .unwrap();
    assert_eq!(t.language, "en", "{:?}", t.text);
    let wer = common::wer(common::JFK_TEXT, &t.text);
    assert!(wer <= 0.1, "{:?} (WER {wer:.2})", t.text);
    // Translation (into English), refused on an English-only model, is accepted here.
    let (clip, mut options) = short_clip();
    options.translate = true;
    let t = recognizer.transcribe(clip, options).unwrap();
    let wer = common::wer("ask what you can do for your country", &t.text);
    assert!(wer <= 0.2, "{:?} (WER {wer:.2})", t.text);
}

#[test]
fn trims_run_by_hand_and_once_per_idle_period() {
    let Some(mut config) = config() else { return };
    config.idle_trim_after = Some(Duration::from_millis(100));
    let recognizer = Recognizer::new(config.clone()).unwrap();
    let cleanup = || recognizer.health().cleanup;
    // Nothing ran yet: nothing to trim, however long it stays idle.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(cleanup().trims, 0);
    assert_eq!(cleanup().idle_trim_after, Some(Duration::from_millis(100)));

    let (clip, options) = short_clip();
    recognizer
        .transcribe(clip.clone(), options.clone())
        .unwrap();
    eventually("the idle trim runs", || cleanup().idle_trims == 1);
    // Once per idle period: still one after three more idle times.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(cleanup().trims, 1);
    // The next request starts a new idle period, and the recognizer still works.
    recognizer.transcribe(clip, options).unwrap();
    eventually("the second idle trim runs", || cleanup().idle_trims == 2);

    let report = recognizer.trim();
    let after = cleanup();
    assert_eq!((after.trims, after.idle_trims), (3, 2));
    if cpu_only_build() {
        // Without CUDA a trim is a no-op that says so.
        assert!(!report.cuda_available);
        assert_eq!((report.pools, report.bytes_released), (0, 0));
        assert_eq!(after.bytes_released, 0);
    }

    let mut bad = config;
    bad.idle_trim_after = Some(Duration::ZERO);
    assert!(matches!(
        Recognizer::new(bad),
        Err(RecognizerError::InvalidConfig(why)) if why.contains("idle_trim_after")
    ));
}

#[test]
fn shutdown_finishes_queued_requests_and_refuses_new_ones() {
    let Some(mut config) = config() else { return };
    config.queue_limit = 8;
    let recognizer = Recognizer::new(config).unwrap();
    let (clip, options) = short_clip();
    let tickets: Vec<_> = (0..3)
        .map(|_| recognizer.submit(clip.clone(), options.clone()).unwrap())
        .collect();
    let other = recognizer.clone();
    recognizer.shutdown();
    for ticket in tickets {
        assert!(ticket.is_finished());
        assert!(
            ticket.wait().is_ok(),
            "a queued request was lost in shutdown"
        );
    }
    assert!(matches!(
        other.submit(clip, options),
        Err(RecognizeError::ShuttingDown)
    ));
    assert_eq!(other.health().status, HealthStatus::ShuttingDown);
    assert_eq!(other.health().requests.completed, 3);
}

#[test]
fn awaiting_in_a_single_threaded_runtime_does_not_block_it() {
    let Some(mut config) = config() else { return };
    config.workers = 2;
    config.threads_per_worker = 1;
    config.queue_limit = 8;
    let recognizer = Recognizer::new(config).unwrap();
    let (clip, options) = short_clip();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let ticks = Arc::new(AtomicUsize::new(0));
    let texts = runtime.block_on(async {
        let ticker = {
            let ticks = Arc::clone(&ticks);
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    ticks.fetch_add(1, Ordering::Relaxed);
                }
            })
        };
        // Four tickets in flight at once (tickets are futures), then one more through the
        // async convenience method.
        let tickets: Vec<_> = (0..4)
            .map(|_| recognizer.submit(clip.clone(), options.clone()).unwrap())
            .collect();
        let mut texts = Vec::new();
        for ticket in tickets {
            texts.push(ticket.await.unwrap().text);
        }
        let last = recognizer.transcribe_async(clip.clone(), options.clone());
        texts.push(last.await.unwrap().text);
        ticker.abort();
        texts
    });
    // The one runtime thread kept ticking while four transcriptions ran (each takes far more
    // than 5 ms), so awaiting never blocked it.
    assert!(ticks.load(Ordering::Relaxed) >= 10, "{ticks:?}");
    assert!(texts.iter().all(|t| t == &texts[0]), "{texts:?}");
    assert!(common::wer("ask what you can do for your country", &texts[0]) <= 0.25);
}

/// A recognizer on `devices` simulated GPUs (each runs on the CPU), one worker each, whose
/// attempts fail on the devices `failing` holds at the time.
fn simulated_gpus(
    devices: &[i32],
    failing: &Arc<std::sync::Mutex<Vec<i32>>>,
    fallback_to_cpu: bool,
) -> Option<Recognizer> {
    let mut config = config()?;
    config.use_gpu = true;
    config.fallback_to_cpu = fallback_to_cpu;
    config.gpu_devices = GpuDevices::List(devices.to_vec());
    config.threads_per_worker = 1;
    config.breaker_threshold = 2;
    // Long enough that every request below falls inside it on a loaded machine.
    config.breaker_cooldown = Duration::from_secs(600);
    let mut faults = FaultInjection::new();
    faults.simulate_gpu = true;
    faults.fail_attempt = Some({
        let failing = Arc::clone(failing);
        Arc::new(move |site| {
            site.device
                .is_some_and(|d| failing.lock().unwrap().contains(&d))
        })
    });
    config.fault_injection = Some(faults);
    Some(Recognizer::new(config).unwrap())
}

#[test]
fn requests_go_to_the_least_loaded_of_several_gpus() {
    let failing = Arc::new(std::sync::Mutex::new(Vec::new()));
    let Some(recognizer) = simulated_gpus(&[0, 1, 2], &failing, false) else {
        return;
    };
    let health = recognizer.health();
    let lanes: Vec<_> = health.lanes.iter().map(|l| (l.backend, l.device)).collect();
    assert_eq!(
        lanes,
        [
            (Backend::Gpu, Some(0)),
            (Backend::Gpu, Some(1)),
            (Backend::Gpu, Some(2))
        ],
        "one lane per device, no CPU lane without fallback_to_cpu"
    );
    let (clip, options) = short_clip();
    // Submitted together: each device has one worker, so each takes one.
    let tickets: Vec<_> = (0..3)
        .map(|_| recognizer.submit(clip.clone(), options.clone()).unwrap())
        .collect();
    let mut devices: Vec<_> = tickets
        .into_iter()
        .map(|t| {
            let t = t.wait().unwrap();
            assert!(common::wer("ask what you can do for your country", &t.text) <= 0.25);
            (t.backend, t.device.unwrap())
        })
        .collect();
    devices.sort_by_key(|d| d.1);
    assert_eq!(
        devices,
        [(Backend::Gpu, 0), (Backend::Gpu, 1), (Backend::Gpu, 2)]
    );
    let health = recognizer.health();
    assert!(health.lanes.iter().all(|l| l.succeeded == 1), "{health:?}");
    assert_eq!(health.status, HealthStatus::Ok);
    assert_eq!(health.requests.completed, 3);
}

#[test]
fn a_failing_gpu_hands_its_requests_to_another_then_to_the_cpu() {
    let failing = Arc::new(std::sync::Mutex::new(vec![0]));
    let Some(recognizer) = simulated_gpus(&[0, 1], &failing, true) else {
        return;
    };
    let (clip, options) = short_clip();
    let reference = recognizer
        .transcribe(clip.clone(), {
            let mut cpu = options.clone();
            cpu.use_gpu = Some(false);
            cpu
        })
        .unwrap()
        .text;

    // GPU 0 is idle and first: it takes each request, fails, and GPU 1 runs it. The second
    // failure opens GPU 0's breaker; GPU 1's stays closed and nothing goes to the CPU.
    for n in 1..=2 {
        let t = recognizer
            .transcribe(clip.clone(), options.clone())
            .unwrap();
        assert_eq!(
            (t.backend, t.device, t.retried_on_cpu),
            (Backend::Gpu, Some(1), false)
        );
        assert_eq!(t.text, reference);
        assert_eq!(recognizer.health().failover.retried_on_other_gpu, n);
    }
    let health = recognizer.health();
    assert!(matches!(
        health.lanes[0].breaker,
        Some(BreakerState::Open { .. })
    ));
    assert_eq!(health.lanes[1].breaker, Some(BreakerState::Closed));
    assert_eq!(health.lanes[2].breaker, None, "the CPU lane has no breaker");
    assert_eq!((health.lanes[0].failed, health.lanes[1].succeeded), (2, 2));
    assert_eq!(health.lanes[0].consecutive_failures, 2);
    assert!(matches!(health.failover.breaker, BreakerState::Open { .. }));
    assert_eq!(health.failover.breaker_trips, 1);
    assert_eq!(health.status, HealthStatus::Degraded);

    // With GPU 0's breaker open, requests go straight to GPU 1: GPU 0 is not tried.
    let t = recognizer
        .transcribe(clip.clone(), options.clone())
        .unwrap();
    assert_eq!((t.device, t.retried_on_cpu), (Some(1), false));
    assert_eq!(recognizer.health().lanes[0].failed, 2);

    // GPU 1 fails too: its requests go to the CPU; its second failure opens its breaker, and
    // then requests are diverted to the CPU without trying a GPU.
    failing.lock().unwrap().push(1);
    for _ in 0..2 {
        let t = recognizer
            .transcribe(clip.clone(), options.clone())
            .unwrap();
        assert_eq!(
            (t.backend, t.device, t.retried_on_cpu),
            (Backend::Cpu, None, true)
        );
        assert_eq!(t.text, reference);
    }
    let t = recognizer
        .transcribe(clip.clone(), options.clone())
        .unwrap();
    assert_eq!((t.backend, t.retried_on_cpu), (Backend::Cpu, false));
    let health = recognizer.health();
    assert_eq!(health.failover.diverted_to_cpu, 1);
    assert_eq!(health.failover.retried_on_cpu, 2);
    assert_eq!(health.failover.retried_on_other_gpu, 2);
    assert_eq!(health.failover.gpu_failures, 4);
    assert_eq!(health.failover.breaker_trips, 2);
    assert_eq!(health.requests.completed, 7);
    assert_eq!(health.requests.failed, 0);
}

#[test]
fn shutdown_waits_for_requests_retried_between_gpus() {
    // No CPU lane: GPU 0's failures can only go to GPU 1, whose worker must not stop while
    // they may still come.
    let failing = Arc::new(std::sync::Mutex::new(vec![0]));
    let Some(recognizer) = simulated_gpus(&[0, 1], &failing, false) else {
        return;
    };
    let (clip, options) = short_clip();
    let tickets: Vec<_> = (0..4)
        .map(|_| recognizer.submit(clip.clone(), options.clone()).unwrap())
        .collect();
    recognizer.shutdown();
    for ticket in tickets {
        let t = ticket.wait().unwrap();
        assert_eq!(t.device, Some(1));
    }
    let health = recognizer.health();
    assert_eq!(health.requests.completed, 4);
    assert!(health.lanes[0].failed >= 1);
}

#[test]
fn a_gpu_that_cannot_start_is_left_out_and_said() {
    let Some(mut config) = config() else { return };
    config.use_gpu = true;
    config.gpu_devices = GpuDevices::List(vec![0, 1]);
    let mut faults = FaultInjection::new();
    faults.simulate_gpu = true;
    faults.fail_gpu_devices = vec![1];
    config.fault_injection = Some(faults.clone());
    let recognizer = Recognizer::new(config.clone()).unwrap();
    let health = recognizer.health();
    let lanes: Vec<_> = health.lanes.iter().map(|l| l.device).collect();
    assert_eq!(lanes, [Some(0), None]);
    assert_eq!(health.failover.unavailable_devices.len(), 1);
    assert_eq!(health.failover.unavailable_devices[0].device, 1);
    assert!(health.failover.gpu_unavailable.is_none());
    assert_eq!(health.status, HealthStatus::Degraded);
    let (clip, options) = short_clip();
    assert_eq!(
        recognizer.transcribe(clip, options).unwrap().device,
        Some(0)
    );
    drop(recognizer);

    // None starts: the CPU, with every reason; without fallback, an error.
    faults.fail_gpu_devices = vec![0, 1];
    config.fault_injection = Some(faults);
    let recognizer = Recognizer::new(config.clone()).unwrap();
    assert_eq!(recognizer.main_backend(), Backend::Cpu);
    let reason = recognizer.health().failover.gpu_unavailable.unwrap();
    assert!(
        reason.contains("GPU 0: ") && reason.contains("GPU 1: "),
        "{reason}"
    );
    drop(recognizer);
    config.fallback_to_cpu = false;
    assert!(matches!(
        Recognizer::new(config),
        Err(RecognizerError::GpuUnavailable { .. })
    ));
}

#[test]
fn all_gpus_and_bad_device_lists() {
    let Some(mut config) = config() else { return };
    config.use_gpu = true;
    config.gpu_devices = GpuDevices::All;
    let mut faults = FaultInjection::new();
    faults.simulate_gpu = true;
    faults.simulated_device_count = 2;
    config.fault_injection = Some(faults);
    let recognizer = Recognizer::new(config.clone()).unwrap();
    let lanes: Vec<_> = recognizer.health().lanes.iter().map(|l| l.device).collect();
    assert_eq!(lanes, [Some(0), Some(1), None]);
    drop(recognizer);

    for (list, says) in [
        (vec![], "at least one"),
        (vec![0, 0], "twice"),
        (vec![-1], "negative"),
        ((0..64).collect(), "at most 63"),
    ] {
        config.gpu_devices = GpuDevices::List(list);
        match Recognizer::new(config.clone()) {
            Err(RecognizerError::InvalidConfig(why)) => assert!(why.contains(says), "{why}"),
            other => panic!("expected InvalidConfig, got {other:?}"),
        }
    }
}

#[test]
fn streaming_delivers_each_segment_as_its_window_is_decoded() {
    let Some(config) = config() else { return };
    let recognizer = Recognizer::new(config).unwrap();
    // jfk.wav four times: 44 s, two of whisper's 30 s windows.
    let audio: Vec<f32> = std::iter::repeat_n(jfk(), 4).flatten().collect();
    let (tx, rx) = std::sync::mpsc::channel();
    let started = Instant::now();
    let ticket = recognizer
        .submit_streaming(audio, RecognizeOptions::new(), move |s| {
            tx.send((s, started.elapsed())).unwrap();
        })
        .unwrap();
    let t = ticket.wait().unwrap();
    let done = started.elapsed();
    // The sender was dropped before the ticket was ready: the channel is closed.
    let got: Vec<_> = rx.try_iter().collect();
    assert!(matches!(
        rx.try_recv(),
        Err(std::sync::mpsc::TryRecvError::Disconnected)
    ));
    assert_eq!(got.len(), t.segments.len());
    for (i, ((s, _), segment)) in got.iter().zip(&t.segments).enumerate() {
        assert_eq!(s.index, i);
        assert_eq!(
            (s.start, s.end, &s.text),
            (segment.start, segment.end, &segment.text)
        );
    }
    // The first window's segments came while the second was still being decoded.
    let first = got[0].1;
    let last = got.last().unwrap().1;
    assert!(
        last - first > Duration::from_millis(200) && first < done,
        "first {first:?}, last {last:?}, done {done:?}"
    );
    assert!(got.iter().any(|(s, _)| s.start >= Duration::from_secs(30)));
}

#[test]
fn reservations_hold_places_in_the_queue_until_used_or_dropped() {
    let Some(mut config) = config() else { return };
    config.queue_limit = 2;
    let recognizer = Recognizer::new(config).unwrap();
    let overloaded = |r: &Result<_, RecognizeError>| {
        matches!(r, Err(RecognizeError::Overloaded { queue_limit: 2 }))
    };
    let first = recognizer.reserve().unwrap();
    let second = recognizer.reserve().unwrap();
    assert_eq!(recognizer.health().queue_reserved, 2);
    // Held places count against the limit: neither a third place nor a plain submit.
    assert!(overloaded(&recognizer.reserve().map(|_| ())));
    let (clip, options) = short_clip();
    assert!(overloaded(
        &recognizer.submit(clip.clone(), options.clone()).map(|_| ())
    ));
    // A dropped reservation gives its place back.
    drop(second);
    assert_eq!(recognizer.health().queue_reserved, 1);
    // A used one hands it to its request, which is never refused for a full queue.
    let ticket = first.submit(clip.clone(), options.clone()).unwrap();
    assert_eq!(recognizer.health().queue_reserved, 0);
    // An invalid request through a reservation fails, and its place comes back.
    let third = recognizer.reserve().unwrap();
    assert!(matches!(
        third.submit(Vec::new(), options.clone()),
        Err(RecognizeError::InvalidAudio(_))
    ));
    assert_eq!(recognizer.health().queue_reserved, 0);
    let t = ticket.wait().unwrap();
    let wer = common::wer("ask what you can do for your country", &t.text);
    assert!(wer <= 0.2, "{:?}", t.text);
    // Shutdown refuses reservations.
    recognizer.shutdown();
    assert!(matches!(
        recognizer.reserve(),
        Err(RecognizeError::ShuttingDown)
    ));
}

#[test]
fn a_cancelled_long_request_stops_during_the_spectrogram() {
    let Some(config) = config() else { return };
    let threads = config.threads_per_worker;
    // 20 minutes of quiet noise: its spectrogram alone takes a while.
    let mut seed = 1u32;
    let audio: Vec<f32> = (0..20 * 60 * 16_000)
        .map(|_| {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (seed >> 16) as f32 / 65_536.0 * 0.02 - 0.01
        })
        .collect();
    // What the spectrogram costs here, through the call that cannot be aborted.
    let ctx = common::context().unwrap();
    let mut state = ctx.create_state().unwrap();
    let started = Instant::now();
    state.pcm_to_mel(&audio, threads).unwrap();
    let spectrogram = started.elapsed();
    drop(state);

    let recognizer = Recognizer::new(config).unwrap();
    let deadline = Duration::from_millis(200);
    let mut options = RecognizeOptions::new();
    options.deadline = Some(deadline);
    let started = Instant::now();
    let outcome = recognizer.transcribe(audio, options);
    let took = started.elapsed();
    assert!(
        matches!(outcome, Err(RecognizeError::DeadlineExceeded { .. })),
        "{outcome:?}"
    );
    // Patch 0012: the worker stops within milliseconds of the deadline, not after the
    // spectrogram of the whole recording.
    eprintln!("spectrogram alone {spectrogram:?}; request past its deadline ended after {took:?}");
    assert!(
        took < deadline + spectrogram / 3,
        "ended after {took:?}; the spectrogram alone takes {spectrogram:?}"
    );
    eventually("the worker is free", || {
        recognizer.health().lanes[0].busy == 0
    });
}

/// Submits `audio` `n` times at once (so that both workers of a two-worker recognizer take
/// some) and returns the texts.
fn texts(
    recognizer: &Recognizer,
    audio: &[f32],
    options: &RecognizeOptions,
    n: usize,
) -> Vec<String> {
    (0..n)
        .map(|_| recognizer.submit(audio.to_vec(), options.clone()).unwrap())
        .collect::<Vec<_>>()
        .into_iter()
        .map(|ticket| ticket.wait().unwrap().text)
        .collect()
}

/// Every request samples from its own seed (patch 0013): the same clip gives one text on any
/// worker after any history, and another seed gives another text, the same every time too.
fn one_text_after_any_history(
    config: RecognizerConfig,
    clip: Vec<f32>,
    options: RecognizeOptions,
    others: &[(Vec<f32>, RecognizeOptions)],
) {
    let mut config = config;
    config.workers = 2;
    config.threads_per_worker = 1;
    config.queue_limit = 16;
    let recognizer = Recognizer::new(config).unwrap();
    let reference = texts(&recognizer, &clip, &options, 1).remove(0);
    // Unrelated requests that sample, on both workers: their generators move on.
    for (audio, options) in others {
        texts(&recognizer, audio, options, 2);
    }
    let again = texts(&recognizer, &clip, &options, 10);
    assert!(
        again.iter().all(|t| *t == reference),
        "{reference:?} then {again:?}"
    );
    let mut other_seed = options.clone();
    other_seed.seed = 1;
    let seeded = texts(&recognizer, &clip, &other_seed, 4);
    assert!(seeded.iter().all(|t| *t == seeded[0]), "{seeded:?}");
    // The clip does sample: its text depends on the seed.
    assert_ne!(seeded[0], reference, "the clip must fall back to sampling");
    eprintln!("seed 0: {reference:?}; seed 1: {:?}", seeded[0]);
}

#[test]
fn the_same_clip_gives_one_text_after_any_history() {
    // Forced sampling: tiny.en at temperature 1.
    let Some(config) = config() else { return };
    let mut options = RecognizeOptions::new();
    options.temperature = Some(1.0);
    let mut other = options.clone();
    other.seed = 7;
    let (clip, _) = short_clip();
    one_text_after_any_history(config, jfk(), options, &[(clip, other)]);

    // The temperature fallback: whisper base translating a French question (espeak-ng), whose
    // greedy decoding fails whisper's checks.
    let Some(path) = common::multilingual_model_path() else {
        return;
    };
    let Some(question) = common::espeak("fr", "Comment dit-on tuff en anglais ?") else {
        return;
    };
    let Some(other) = common::espeak("fr", "Où se trouve la gare la plus proche ?") else {
        return;
    };
    let mut options = RecognizeOptions::new().language("fr");
    options.translate = true;
    // Non-speech tokens left unsuppressed: with the speech guard's suppression this clip's
    // greedy decoding passes whisper's checks, and the test is about the fallback's sampling.
    options.sound_tags = true;
    let mut sampled = options.clone();
    sampled.temperature = Some(0.8);
    one_text_after_any_history(
        config_for(path),
        question,
        options,
        &[(other, sampled), (jfk(), RecognizeOptions::new())],
    );
}

#[test]
fn client_mistakes_are_answered_as_such_and_never_count_as_device_failures() {
    let Some(mut config) = config() else { return };
    // A simulated GPU with a breaker that one failure would open.
    let mut faults = FaultInjection::new();
    faults.simulate_gpu = true;
    config.fault_injection = Some(faults);
    config.use_gpu = true;
    config.fallback_to_cpu = true;
    config.breaker_threshold = 1;
    let recognizer = Recognizer::new(config).unwrap();
    let (clip, options) = short_clip();

    // Not audio: refused before queueing, by the same rule as WhisperState::full's.
    let mut loud = clip.clone();
    loud[100] = 2.0e6;
    match recognizer.submit(loud, options.clone()) {
        Err(RecognizeError::InvalidAudio(why)) => assert!(why.contains("±1"), "{why}"),
        other => panic!("expected InvalidAudio, got {other:?}"),
    }

    // Prompts are measured in tokens and cut to the last ones whisper conditions on: runs that
    // whisper.cpp's tokenizer could not take (and that were refused as a server error) are
    // answered, quickly.
    // More tokens than whisper's prompt window (223).
    let steer = [common::JFK_TEXT; 12].join(" ");
    let prompted = |prompt: String| {
        let mut o = options.clone();
        o.initial_prompt = Some(prompt);
        let start = Instant::now();
        let t = recognizer.transcribe(clip.clone(), o).unwrap();
        assert_eq!((t.backend, t.retried_on_cpu), (Backend::Gpu, false));
        (t.text, start.elapsed())
    };
    // (A prompt whose last 223 tokens are blanks is taken too, but it makes tiny.en's decoding
    // fall back to sampling for a minute or two here: these long ones end in words.)
    for prompt in [
        "a".repeat(1025),
        "中".repeat(350),
        format!("{} {steer}", " ".repeat(1500)),
        format!("{} {steer}", "b".repeat(100_000)),
    ] {
        let (text, took) = prompted(prompt.clone());
        assert!(
            text.to_lowercase()
                .contains("what you can do for your country"),
            "{text:?}"
        );
        eprintln!("{} bytes: {took:.1?} {text:?}", prompt.len());
        assert!(
            took < Duration::from_secs(30),
            "{} bytes: {took:?}",
            prompt.len()
        );
    }
    // Only the last tokens count: a prompt of more than whisper's window is the same as its end.
    assert_eq!(
        prompted(format!("{} {steer}", "a".repeat(5_000))).0,
        prompted(steer).0
    );

    let health = recognizer.health();
    assert_eq!(health.status, HealthStatus::Ok);
    assert_eq!(health.requests.failed, 0);
    assert_eq!(health.requests.invalid, 0);
    assert_eq!(health.failover.gpu_failures, 0);
    assert_eq!(health.failover.retried_on_cpu, 0);
    assert_eq!(health.failover.breaker, BreakerState::Closed);
    assert!(
        health.lanes.iter().all(|l| l.failed == 0),
        "{:?}",
        health.lanes
    );
}
