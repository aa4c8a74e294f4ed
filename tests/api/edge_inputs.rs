//! Audio and parameters at and past their edges, through the safe API: each gets a defined
//! outcome (an error or a correct result), within a time bound.
//!
//! Every case runs in a child process (this test binary again, told by an environment variable
//! to run one case): a regression that makes whisper.cpp loop fails its case at the time
//! bound, and one that aborts the process fails it with the signal, instead of hanging or
//! killing the whole run. The child's output goes to a file (ggml's abort handler forks gdb,
//! which would hold a pipe open).

use crate::common;

use std::fs::File;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use whisper_steady::{FullParams, SamplingStrategy, WhisperContext, WhisperError, WhisperState};

/// Names the case a child process runs.
const CHILD: &str = "WHISPER_STEADY_EDGE_CASE";

/// Runs `body` in a child process and fails if it fails, dies or runs past `limit`.
fn bounded(name: &str, limit: Duration, body: fn(&WhisperContext)) {
    if std::env::var(CHILD).as_deref() == Ok(name) {
        let ctx = common::context().expect("the parent checked that the model exists");
        body(&ctx);
        return;
    }
    if common::model_path().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("child.log");
    let log = File::create(&log_path).unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([&common::exact(module_path!(), name), "--exact"])
        .args(["--nocapture", "--include-ignored"])
        .args(["--test-threads", "1"])
        .env(CHILD, name)
        .env("GGML_NO_BACKTRACE", "1")
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let start = Instant::now();
    let tail = || {
        let text = std::fs::read_to_string(&log_path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    };
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{name}: still running after {limit:?}, killed (whisper.cpp looping?)\n{}",
                tail()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{name}: child {status}\n{}", tail());
    eprintln!("{name}: passed in {:.1?}", start.elapsed());
}

/// A test `$name` that runs `$body` in a child process, bounded to `$secs` seconds.
macro_rules! case {
    ($(#[$attr:meta])* $name:ident, $secs:expr, $body:expr) => {
        $(#[$attr])*
        #[test]
        fn $name() {
            bounded(stringify!($name), Duration::from_secs($secs), $body);
        }
    };
}

/// Parameters that keep a run cheap: English, two threads, no temperature fallback.
fn cheap<'a, 'b>() -> FullParams<'a, 'b> {
    let mut params = FullParams::new(SamplingStrategy::Greedy { best_of: 1 });
    params.set_language(Some("en"));
    params.set_n_threads(2);
    params.set_temperature_inc(0.0);
    params
}

/// `cheap()` with a short encoder window (1.3 s) and at most 16 tokens per window: for silence
/// and clips of a second (a prompt of spaces, say, makes the decoder babble 220 tokens).
fn cheaper<'a, 'b>() -> FullParams<'a, 'b> {
    let mut params = cheap();
    params.set_audio_ctx(64);
    params.set_max_tokens(16);
    params
}

fn run(
    ctx: &WhisperContext,
    params: FullParams,
    audio: &[f32],
) -> (Result<(), WhisperError>, WhisperState) {
    let mut state = ctx.create_state().unwrap();
    let result = state.full(params, audio);
    (result, state)
}

/// The transcript, without whisper's `[BLANK_AUDIO]` markers.
fn text(state: &WhisperState) -> String {
    state
        .as_iter()
        .map(|s| s.to_string())
        .filter(|s| s.trim() != "[BLANK_AUDIO]")
        .collect()
}

fn code(result: Result<(), WhisperError>) -> Option<i32> {
    match result {
        Err(WhisperError::GenericError(code)) => Some(code),
        _ => None,
    }
}

/// A `FullParams` setter of an `f32`.
type Setter = for<'p, 'a, 'b> fn(&'p mut FullParams<'a, 'b>, f32);

fn silence(seconds: f32) -> Vec<f32> {
    vec![0.0; (16_000.0 * seconds) as usize]
}

case!(
    /// Each refused input: the error, at once (nothing reaches whisper.cpp).
    refused_inputs_are_errors,
    60,
    refused_inputs_are_errors_body
);

fn refused_inputs_are_errors_body(ctx: &WhisperContext) {
    let one_second = silence(1.0);
    let refused = |what: &str, want: i32, adjust: &dyn Fn(&mut FullParams), audio: &[f32]| {
        let mut params = cheaper();
        adjust(&mut params);
        let start = Instant::now();
        let (result, state) = run(ctx, params, audio);
        assert_eq!(code(result), Some(want), "{what}: {result:?}");
        assert_eq!(state.full_n_segments(), 0, "{what}");
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{what} took {:?}",
            start.elapsed()
        );
    };
    let keep = &|_: &mut FullParams| {};

    let mut audio = one_second.clone();
    for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
        audio[8000] = bad;
        refused(&format!("sample {bad}"), -101, keep, &audio);
    }
    for loud in [1.0e7, -3.0e9, 1.0e30, f32::MAX] {
        audio[8000] = loud;
        refused(&format!("sample {loud}"), -102, keep, &audio);
    }
    for t in [f32::NAN, f32::INFINITY, -0.5] {
        refused(
            &format!("temperature {t}"),
            -103,
            &move |p| p.set_temperature(t),
            &one_second,
        );
    }
    for inc in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY, 1e-9, 0.001] {
        refused(
            &format!("temperature_inc {inc}"),
            -104,
            &move |p| p.set_temperature_inc(inc),
            &one_second,
        );
    }
    let nan = f32::NAN;
    let setters: [(&str, Setter); 8] = [
        ("entropy_thold", |p, v| p.set_entropy_thold(v)),
        ("logprob_thold", |p, v| p.set_logprob_thold(v)),
        ("no_speech_thold", |p, v| p.set_no_speech_thold(v)),
        ("length_penalty", |p, v| p.set_length_penalty(v)),
        ("thold_pt", |p, v| p.set_thold_pt(v)),
        ("thold_ptsum", |p, v| p.set_thold_ptsum(v)),
        ("max_initial_ts", |p, v| p.set_max_initial_ts(v)),
        ("grammar_penalty", |p, v| p.set_grammar_penalty(v)),
    ];
    for (name, set) in setters {
        refused(
            &format!("{name} NaN"),
            -105,
            &move |p| set(p, nan),
            &one_second,
        );
    }
    for ms in [-1, -100_000, i32::MIN] {
        refused(
            &format!("offset_ms {ms}"),
            -106,
            &move |p| p.set_offset_ms(ms),
            &one_second,
        );
    }
    for ms in [-5, i32::MIN] {
        refused(
            &format!("duration_ms {ms}"),
            -107,
            &move |p| p.set_duration_ms(ms),
            &one_second,
        );
    }
    for lang in ["xx", "klingon", "EN "] {
        refused(
            &format!("language {lang:?}"),
            -108,
            &move |p| p.set_language(Some(lang)),
            &one_second,
        );
    }
    let n_vocab = ctx.n_vocab();
    for token in [-1, n_vocab, i32::MAX] {
        let tokens: &'static [i32] = Box::leak(Box::new([50_000.min(n_vocab - 1), token]));
        refused(
            &format!("prompt token {token}"),
            -109,
            &move |p| p.set_tokens(tokens),
            &one_second,
        );
    }
    // whisper.cpp's own refusals.
    refused(
        "audio_ctx 100000",
        -5,
        &|p| p.set_audio_ctx(100_000),
        &one_second,
    );
    for strategy in [
        SamplingStrategy::Greedy { best_of: 9 },
        SamplingStrategy::Greedy { best_of: i32::MAX },
        SamplingStrategy::BeamSearch {
            beam_size: 100,
            patience: -1.0,
        },
    ] {
        let mut params = FullParams::new(strategy.clone());
        params.set_language(Some("en"));
        let (result, _) = run(ctx, params, &one_second);
        assert_eq!(code(result), Some(-4), "{strategy:?}: {result:?}");
    }
    // And the API's.
    let (result, _) = run(ctx, cheaper(), &[]);
    assert!(
        matches!(result, Err(WhisperError::NoSamples)),
        "empty: {result:?}"
    );
}

case!(
    /// Inputs from 1 sample to just under 100 ms: no segments, no out-of-bounds read.
    a_few_samples_give_no_segments,
    60,
    a_few_samples_give_no_segments_body
);

fn a_few_samples_give_no_segments_body(ctx: &WhisperContext) {
    for n in [1, 2, 10, 200, 201, 1599] {
        let audio: Vec<f32> = (0..n).map(|i| ((i as f32) * 0.3).sin() * 0.5).collect();
        let (result, state) = run(ctx, cheaper(), &audio);
        assert!(result.is_ok(), "{n} samples: {result:?}");
        assert_eq!(state.full_n_segments(), 0, "{n} samples");
    }
    // And the spectrogram alone.
    let mut state = ctx.create_state().unwrap();
    state.pcm_to_mel(&[0.25], 1).unwrap();
}

case!(
    /// Values whisper.cpp gives a meaning to run and finish: silence stays (nearly) empty.
    accepted_edge_values_finish,
    240,
    accepted_edge_values_finish_body
);

fn accepted_edge_values_finish_body(ctx: &WhisperContext) {
    let one_second = silence(1.0);
    let finishes = |what: &str, adjust: &dyn Fn(&mut FullParams)| {
        let mut params = cheaper();
        adjust(&mut params);
        eprintln!("{what}: starts");
        let start = Instant::now();
        let (result, state) = run(ctx, params, &one_second);
        assert!(result.is_ok(), "{what}: {result:?}");
        let text = text(&state);
        assert!(text.len() < 200, "{what}: {text:?}");
        eprintln!("{what}: ok in {:.1?}, {text:?}", start.elapsed());
    };
    finishes(
        "temperature 1.5, temperature_inc 0.2 (normalized: no fallback)",
        &|p| {
            p.set_temperature(1.5);
            p.set_temperature_inc(0.2);
        },
    );
    finishes("temperature 1e30", &|p| p.set_temperature(1.0e30));
    finishes("temperature_inc -1 (no fallback)", &|p| {
        p.set_temperature_inc(-1.0)
    });
    finishes("temperature 0.9, temperature_inc 0.05 (3 steps)", &|p| {
        p.set_temperature(0.9);
        p.set_temperature_inc(0.05);
    });
    finishes("duration_ms i32::MAX (normalized: to the end)", &|p| {
        p.set_duration_ms(i32::MAX)
    });
    finishes("offset_ms i32::MAX (past the end: nothing)", &|p| {
        p.set_offset_ms(i32::MAX)
    });
    finishes("offset_ms and duration_ms i32::MAX", &|p| {
        p.set_offset_ms(i32::MAX);
        p.set_duration_ms(i32::MAX);
    });
    finishes("max_len -1 with token timestamps", &|p| {
        p.set_token_timestamps(true);
        p.set_max_len(-1);
    });
    finishes("max_len 1 with token timestamps", &|p| {
        p.set_token_timestamps(true);
        p.set_max_len(1);
    });
    finishes("max_tokens -1", &|p| p.set_max_tokens(-1));
    finishes("max_tokens 1", &|p| p.set_max_tokens(1));
    finishes("audio_ctx -7 (the model's)", &|p| p.set_audio_ctx(-7));
    finishes("audio_ctx 1", &|p| p.set_audio_ctx(1));
    finishes("n_max_text_ctx -1", &|p| p.set_n_max_text_ctx(-1));
    finishes("n_max_text_ctx i32::MAX", &|p| {
        p.set_n_max_text_ctx(i32::MAX)
    });
    finishes("infinite thresholds", &|p| {
        p.set_entropy_thold(f32::INFINITY);
        p.set_logprob_thold(f32::NEG_INFINITY);
        p.set_no_speech_thold(f32::INFINITY);
        p.set_length_penalty(f32::INFINITY);
    });
    finishes("language auto on an English model", &|p| {
        p.set_language(Some("auto"))
    });
    finishes("language de on an English model (ignored)", &|p| {
        p.set_language(Some("de"))
    });
    finishes("600 KB initial prompt (its last 223 tokens)", &|p| {
        p.set_initial_prompt(Box::leak(" hello".repeat(100_000).into_boxed_str()));
    });
    finishes("1000-space run in the prompt", &|p| {
        p.set_initial_prompt(Box::leak(
            format!("a{}b", " ".repeat(1000)).into_boxed_str(),
        ));
    });
    // Prompts of 100 KB without a word boundary: whisper.cpp's tokenizer takes time cubic in
    // such a word (6,000 spaces took 7 s; 30,000 letters overflowed its stack), and they were
    // refused (-110). Tokenized in linear time now, and taken.
    for (what, unit, n) in [
        ("letters", "a", 100_000),
        ("spaces", " ", 100_000),
        ("digits", "7", 100_000),
        ("Chinese characters", "中", 34_000),
        ("é", "é", 50_000),
    ] {
        let prompt: &'static str =
            Box::leak(format!("hello {} world", unit.repeat(n)).into_boxed_str());
        let start = Instant::now();
        finishes(&format!("prompt with a run of {n} {what}"), &move |p| {
            p.set_initial_prompt(prompt)
        });
        // Tokenizing and a cheap decoding of one second of silence: about a second on an idle
        // machine (whisper.cpp's tokenizer: minutes, or a stack overflow).
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "a run of {n} {what}: {:?}",
            start.elapsed()
        );
    }
    finishes("empty prompt tokens", &|p| p.set_tokens(&[]));
    let mut params = FullParams::new(SamplingStrategy::Greedy { best_of: -3 });
    params.set_language(Some("en"));
    params.set_audio_ctx(64);
    params.set_temperature(0.5);
    params.set_temperature_inc(0.0);
    assert!(run(ctx, params, &one_second).0.is_ok(), "best_of -3");
    let mut params = FullParams::new(SamplingStrategy::BeamSearch {
        beam_size: 0,
        patience: f32::NAN,
    });
    params.set_language(Some("en"));
    params.set_audio_ctx(64);
    assert!(run(ctx, params, &one_second).0.is_ok(), "beam_size 0");
}

case!(
    /// Real speech with edge parameters still transcribes.
    speech_with_edge_parameters_transcribes,
    180,
    speech_with_edge_parameters_transcribes_body
);

fn speech_with_edge_parameters_transcribes_body(ctx: &WhisperContext) {
    let jfk = common::jfk();
    let check = |what: &str, adjust: &dyn Fn(&mut FullParams)| {
        let mut params = cheap();
        adjust(&mut params);
        let start = Instant::now();
        let (result, state) = run(ctx, params, &jfk);
        result.unwrap_or_else(|e| panic!("{what}: {e}"));
        let text = text(&state);
        let wer = common::wer(common::JFK_TEXT, &text);
        eprintln!("{what}: WER {wer:.2} in {:.1?}: {text}", start.elapsed());
        assert!(wer < 0.2, "{what}: {text:?}");
    };
    check("duration past the end", &|p| p.set_duration_ms(3_600_000));
    // Offset into the clip: only the second half.
    let mut params = cheap();
    params.set_offset_ms(5_500);
    let (result, state) = run(ctx, params, &jfk);
    result.unwrap();
    let text = text(&state).to_lowercase();
    assert!(text.contains("ask what you can do"), "{text}");
    assert!(!text.contains("fellow"), "{text}");
}

case!(
    /// Panics in the safe callbacks are caught at the C boundary: the run goes on (progress,
    /// segment) or stops with an error (abort), and the process lives.
    panicking_callbacks_do_not_unwind_into_c,
    120,
    panicking_callbacks_do_not_unwind_into_c_body
);

fn panicking_callbacks_do_not_unwind_into_c_body(ctx: &WhisperContext) {
    let clip: Vec<f32> = common::jfk()[..16_000 * 3].to_vec();
    let mut params = cheap();
    params.set_audio_ctx(256);
    params.set_progress_callback_safe(|p: i32| panic!("progress callback panics at {p}%"));
    let seen = Arc::new(Mutex::new(0));
    let count = Arc::clone(&seen);
    params.set_segment_callback_safe(move |_s: whisper_steady::SegmentCallbackData| {
        *count.lock().unwrap() += 1;
        panic!("segment callback panics");
    });
    let (result, state) = run(ctx, params, &clip);
    assert!(result.is_ok(), "{result:?}");
    assert!(state.full_n_segments() > 0);
    assert!(*seen.lock().unwrap_or_else(|p| p.into_inner()) > 0);

    let mut params = cheap();
    params.set_audio_ctx(256);
    params.set_abort_callback_safe(|| panic!("abort callback panics"));
    let (result, _) = run(ctx, params, &clip);
    assert!(
        result.is_err(),
        "a panicking abort callback stops the run: {result:?}"
    );
}

case!(
    /// Long audio: 5 minutes of silence with the JFK clip at the end, at full context.
    five_minutes_of_audio,
    600,
    five_minutes_of_audio_body
);

fn five_minutes_of_audio_body(ctx: &WhisperContext) {
    let mut audio = silence(289.0);
    audio.extend(common::jfk());
    let start = Instant::now();
    let (result, state) = run(ctx, cheap(), &audio);
    result.unwrap();
    let text = text(&state);
    eprintln!(
        "5 min: {:.1?}, {} segments",
        start.elapsed(),
        state.full_n_segments()
    );
    assert!(common::wer(common::JFK_TEXT, &text) < 0.3, "{text}");
    let last = state.get_segment(state.full_n_segments() - 1).unwrap();
    assert!(
        last.start_timestamp() >= 28_000,
        "the speech starts at 289 s: {last:?}"
    );
}

case!(
    /// 30 minutes (the JFK clip every 5 minutes, silence between): slow on two cores, run with
    /// `cargo test --release --test edge_inputs -- --ignored thirty_minutes_of_audio`.
    #[ignore = "minutes on two cores; see the comment"]
    thirty_minutes_of_audio,
    900,
    thirty_minutes_of_audio_body
);

fn thirty_minutes_of_audio_body(ctx: &WhisperContext) {
    let jfk = common::jfk();
    let mut audio = Vec::new();
    for _ in 0..6 {
        audio.extend(silence(289.0));
        audio.extend(&jfk);
    }
    let start = Instant::now();
    let (result, state) = run(ctx, cheap(), &audio);
    result.unwrap();
    let text = text(&state).to_lowercase();
    eprintln!(
        "30 min: {:.1?}, {} segments",
        start.elapsed(),
        state.full_n_segments()
    );
    assert!(text.matches("fellow americans").count() >= 5, "{text}");
}
