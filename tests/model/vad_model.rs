//! whisper.cpp's voice activity detection with the real Silero VAD model, converted from the
//! silero-vad package by `whisper-steady convert-silero`.
//!
//! The model comes from `WHISPER_STEADY_TEST_VAD_MODEL` (`scripts/fetch-vad-model.sh` makes it
//! and prints its path). Without it these tests print why and pass, unless
//! `WHISPER_STEADY_REQUIRE_MODEL=1`, which turns the skip into a failure. The transcription
//! test also needs `WHISPER_STEADY_TEST_MODEL`. `WHISPER_STEADY_TEST_VAD_ONNX`, when set, names
//! the package's `silero_vad.onnx` and adds a check that converting it gives the pinned file.

use crate::common;

use common::{context, env_file, jfk, vad_model_path, wer, JFK_TEXT};
use whisper_steady::{
    FullParams, SamplingStrategy, WhisperVadContext, WhisperVadContextParams, WhisperVadParams,
};

/// What the silero-vad package (6.2.0, `silero_vad.onnx` under onnxruntime 1.32) finds in
/// jfk.wav, produced once with `scripts/silero-reference.py UNPACKED_WHEEL jfk.wav`: the
/// package's own `get_speech_timestamps` with its default parameters (threshold 0.5, min speech
/// 250 ms, min silence 100 ms, padding 30 ms), as (start, end) in samples at 16 kHz.
const PACKAGE_SEGMENTS: [(u32, u32); 4] = [
    (5152, 36320),
    (52256, 71136),
    (86048, 122848),
    (130592, 169952),
];

/// The package's speech probability of each 512-sample window of jfk.wav (same run, rounded to
/// three decimals).
#[rustfmt::skip]
const PACKAGE_PROBS: [f32; 344] = [
    0.002, 0.085, 0.302, 0.133, 0.083, 0.043, 0.055, 0.053, 0.031, 0.038, 0.343, 0.946,
    0.933, 0.857, 0.973, 0.988, 0.990, 0.989, 0.996, 0.994, 0.982, 0.994, 0.995, 0.995,
    0.991, 0.985, 0.989, 0.986, 0.970, 0.976, 0.993, 0.996, 0.998, 0.998, 0.996, 0.994,
    0.992, 0.992, 0.999, 0.999, 0.998, 0.996, 0.997, 0.999, 0.997, 0.998, 0.996, 0.996,
    0.995, 0.996, 0.995, 0.997, 0.999, 0.999, 1.000, 1.000, 0.999, 0.999, 0.999, 0.999,
    0.999, 0.999, 1.000, 0.999, 0.998, 0.999, 0.991, 0.984, 0.947, 0.679, 0.324, 0.124,
    0.061, 0.058, 0.029, 0.031, 0.072, 0.040, 0.047, 0.046, 0.055, 0.029, 0.018, 0.018,
    0.015, 0.019, 0.013, 0.011, 0.012, 0.023, 0.028, 0.016, 0.010, 0.008, 0.014, 0.009,
    0.011, 0.013, 0.015, 0.009, 0.011, 0.010, 0.328, 0.987, 0.994, 0.997, 0.997, 0.996,
    0.995, 0.994, 0.991, 0.990, 0.995, 0.994, 0.996, 0.999, 0.993, 0.972, 0.713, 0.393,
    0.207, 0.067, 0.030, 0.106, 0.594, 0.886, 0.998, 0.999, 0.999, 0.999, 0.999, 0.998,
    0.995, 0.968, 0.946, 0.944, 0.767, 0.383, 0.136, 0.044, 0.032, 0.046, 0.066, 0.037,
    0.028, 0.026, 0.019, 0.055, 0.040, 0.036, 0.034, 0.023, 0.020, 0.037, 0.054, 0.033,
    0.036, 0.052, 0.027, 0.046, 0.037, 0.057, 0.059, 0.024, 0.024, 0.049, 0.095, 0.039,
    0.037, 0.990, 0.999, 0.999, 0.999, 0.999, 0.998, 0.999, 1.000, 1.000, 1.000, 1.000,
    1.000, 1.000, 1.000, 0.999, 0.999, 0.998, 0.999, 1.000, 0.999, 1.000, 1.000, 1.000,
    0.999, 0.997, 1.000, 1.000, 1.000, 1.000, 1.000, 1.000, 1.000, 1.000, 0.999, 1.000,
    0.999, 0.999, 1.000, 1.000, 0.999, 1.000, 1.000, 1.000, 1.000, 1.000, 1.000, 1.000,
    0.999, 0.997, 0.990, 1.000, 1.000, 1.000, 1.000, 1.000, 1.000, 1.000, 1.000, 1.000,
    1.000, 1.000, 1.000, 1.000, 1.000, 1.000, 1.000, 0.999, 0.997, 0.884, 0.428, 0.206,
    0.074, 0.047, 0.026, 0.025, 0.077, 0.038, 0.043, 0.032, 0.021, 0.024, 0.017, 0.024,
    0.056, 0.049, 0.025, 0.079, 0.996, 0.999, 0.999, 1.000, 1.000, 0.999, 1.000, 0.999,
    0.999, 0.998, 0.988, 0.971, 0.797, 0.793, 1.000, 1.000, 1.000, 1.000, 0.999, 1.000,
    1.000, 0.997, 1.000, 1.000, 1.000, 1.000, 1.000, 1.000, 1.000, 1.000, 0.999, 0.999,
    0.999, 1.000, 1.000, 0.999, 1.000, 1.000, 1.000, 1.000, 1.000, 1.000, 1.000, 1.000,
    1.000, 1.000, 0.999, 0.999, 0.999, 1.000, 0.999, 1.000, 1.000, 1.000, 1.000, 0.998,
    0.999, 0.998, 0.999, 1.000, 1.000, 1.000, 1.000, 0.998, 0.997, 0.997, 0.987, 0.989,
    0.976, 0.987, 0.969, 0.869, 0.557, 0.273, 0.561, 0.144, 0.186, 0.077, 0.121, 0.055,
    0.075, 0.049, 0.076, 0.163, 0.074, 0.513, 0.876, 0.638,
];

/// How closely whisper.cpp must agree with the package. whisper.cpp runs the same network but
/// feeds each 512-sample window on its own (reflection-padded), where the package puts the
/// previous window's last 64 samples in front of it, so its probabilities differ a little:
/// on jfk.wav the mean difference is 0.010, the largest 0.20 (at a speech onset), and the
/// windows on either side of 0.5 differ in 2 of 344. Segment boundaries (whisper.cpp's port of
/// the package's rules on those probabilities) moved by at most 36 ms.
const SEGMENT_TOLERANCE_S: f32 = 0.1;
const MEAN_PROB_TOLERANCE: f32 = 0.03;
const MAX_PROB_TOLERANCE: f32 = 0.3;
const MIN_DECISION_AGREEMENT: f32 = 0.98;

/// The converted model's sha256 (silero-vad 6.2.0's `silero_vad.onnx`, version 6.2.0
/// recorded); it is also the sha256 of upstream whisper.cpp's own
/// `models/for-tests-silero-v6.2.0-ggml.bin`, converted from the package's TorchScript model.
const MODEL_SHA256: &str = "2aa269b785eeb53a82983a20501ddf7c1d9c48e33ab63a41391ac6c9f7fb6987";

/// The fetch script that provides the VAD test inputs.
const VAD_SCRIPT: &str = "scripts/fetch-vad-model.sh";

/// The converted Silero VAD model, or `None` (after printing why).
fn vad_model() -> Option<String> {
    vad_model_path().map(|p| p.to_str().unwrap().to_owned())
}

fn vad_context(model: &str) -> WhisperVadContext {
    let mut params = WhisperVadContextParams::new();
    params.set_n_threads(1);
    WhisperVadContext::new(model, params).expect("whisper.cpp loads the converted VAD model")
}

/// Greedy English decoding on 2 threads, printing nothing; with VAD through `vad_model`.
fn jfk_params(vad_model: Option<&str>) -> FullParams<'static, 'static> {
    let mut params = FullParams::new(SamplingStrategy::Greedy { best_of: 1 });
    params.set_language(Some("en"));
    params.set_n_threads(2);
    params.set_print_progress(false);
    params.set_print_realtime(false);
    params.set_print_timestamps(false);
    if vad_model.is_some() {
        params.set_vad_model_path(vad_model);
        params.enable_vad(true);
        params.set_vad_params(WhisperVadParams::new());
    }
    params
}

fn seconds(samples: u32) -> f32 {
    samples as f32 / 16_000.0
}

#[test]
fn jfk_speech_matches_the_package() {
    let Some(model) = vad_model() else { return };
    let mut vad = vad_context(&model);
    let audio = jfk();

    vad.detect_speech(&audio).unwrap();
    let probs = vad.probabilities().to_vec();
    assert_eq!(
        probs.len(),
        PACKAGE_PROBS.len(),
        "one probability per window"
    );
    let diffs: Vec<f32> = probs
        .iter()
        .zip(PACKAGE_PROBS)
        .map(|(a, b)| (a - b).abs())
        .collect();
    let mean = diffs.iter().sum::<f32>() / diffs.len() as f32;
    let max = diffs.iter().copied().fold(0.0, f32::max);
    let agree = probs
        .iter()
        .zip(PACKAGE_PROBS)
        .filter(|(a, b)| (**a >= 0.5) == (*b >= 0.5))
        .count() as f32
        / probs.len() as f32;
    eprintln!("probabilities vs the package: mean |diff| {mean:.4}, max {max:.3}, decisions agree {agree:.4}");
    assert!(mean <= MEAN_PROB_TOLERANCE, "mean |diff| {mean}");
    assert!(max <= MAX_PROB_TOLERANCE, "max |diff| {max}");
    assert!(
        agree >= MIN_DECISION_AGREEMENT,
        "decisions agree on {agree}"
    );

    let segments: Vec<(f32, f32)> = vad
        .segments_from_probabilities(WhisperVadParams::new())
        .unwrap()
        .map(|s| (s.start / 100.0, s.end / 100.0))
        .collect();
    let expected: Vec<(f32, f32)> = PACKAGE_SEGMENTS
        .iter()
        .map(|&(s, e)| (seconds(s), seconds(e)))
        .collect();
    eprintln!("whisper.cpp: {segments:?}\npackage:     {expected:?}");
    assert_eq!(
        segments.len(),
        expected.len(),
        "{segments:?} vs {expected:?}"
    );
    for (got, want) in segments.iter().zip(&expected) {
        assert!(
            (got.0 - want.0).abs() <= SEGMENT_TOLERANCE_S
                && (got.1 - want.1).abs() <= SEGMENT_TOLERANCE_S,
            "segment {got:?} vs the package's {want:?}"
        );
    }

    // The one-call pipeline gives the same segments.
    let again: Vec<(f32, f32)> = vad
        .segments_from_samples(WhisperVadParams::new(), &audio)
        .unwrap()
        .map(|s| (s.start / 100.0, s.end / 100.0))
        .collect();
    assert_eq!(again, segments);
}

#[test]
fn silence_has_no_speech() {
    let Some(model) = vad_model() else { return };
    let mut vad = vad_context(&model);
    // 5 s of digital silence, and 5 s of faint noise (-60 dBFS), deterministic.
    let zeros = vec![0.0f32; 5 * 16_000];
    let mut s: u32 = 12345;
    let noise: Vec<f32> = (0..5 * 16_000)
        .map(|_| {
            s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            ((s >> 8) as f32 / (1u32 << 24) as f32 - 0.5) * 0.002
        })
        .collect();
    for (what, audio) in [("silence", zeros), ("faint noise", noise)] {
        let segments = vad
            .segments_from_samples(WhisperVadParams::new(), &audio)
            .unwrap();
        assert_eq!(segments.num_segments(), 0, "{what}");
        let max = vad.probabilities().iter().copied().fold(0.0, f32::max);
        assert!(max < 0.5, "{what}: speech probability up to {max}");
    }
}

#[test]
fn transcription_with_vad_gives_jfk() {
    let Some(model) = vad_model() else { return };
    let Some(ctx) = context() else { return };
    let params = jfk_params(Some(&model));

    let mut state = ctx.create_state().unwrap();
    state.full(params, &jfk()).expect("whisper_full with VAD");
    let segments: Vec<_> = state.as_iter().collect();
    let text: String = segments.iter().map(|s| s.to_string()).collect();
    let error = wer(JFK_TEXT, &text);
    eprintln!("with VAD: {text:?} (WER {error:.3})");
    assert!(error <= 0.05, "{text}");
    // Timestamps are mapped back onto the original audio: the speech starts after the VAD's
    // first segment begins (0.32 s) and ends before the audio does (11 s).
    let first = segments.first().unwrap();
    let last = segments.last().unwrap();
    assert!(
        first.start_timestamp() >= 20,
        "starts at {} cs",
        first.start_timestamp()
    );
    assert!(
        last.end_timestamp() <= 1100,
        "ends at {} cs",
        last.end_timestamp()
    );
}

/// Patch 0004: a run without VAD after a run with VAD on the same state must not map its
/// timestamps through the first run's table (upstream reset the table only inside the VAD).
#[test]
fn a_plain_run_after_a_vad_run_has_a_fresh_states_timestamps() {
    let Some(model) = vad_model() else { return };
    let Some(ctx) = context() else { return };
    let params = |vad: bool| jfk_params(vad.then_some(model.as_str()));
    let timestamps = |state: &whisper_steady::WhisperState| -> Vec<(i64, i64)> {
        state
            .as_iter()
            .map(|s| (s.start_timestamp(), s.end_timestamp()))
            .collect()
    };
    // The VAD run: 5 s of silence before the speech, so its table shifts times by about 5 s.
    let mut shifted = vec![0.0f32; 5 * 16_000];
    shifted.extend(jfk());
    let mut reused = ctx.create_state().unwrap();
    reused.full(params(true), &shifted).expect("the VAD run");
    let with_vad = timestamps(&reused);
    assert!(
        with_vad.first().unwrap().0 >= 450,
        "the VAD run maps back past the silence: {with_vad:?}"
    );

    reused.full(params(false), &jfk()).expect("the plain run");
    let mut fresh = ctx.create_state().unwrap();
    fresh
        .full(params(false), &jfk())
        .expect("the plain run on a fresh state");
    assert_eq!(timestamps(&reused), timestamps(&fresh));
}

#[test]
fn converting_the_package_model_gives_the_pinned_file() {
    let Some(onnx) = env_file("WHISPER_STEADY_TEST_VAD_ONNX", VAD_SCRIPT) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("ggml-silero.bin");
    let version = Some("6.2.0".parse().unwrap());
    whisper_steady::convert::convert_silero_vad(&onnx, &out, version).unwrap();
    let bytes = std::fs::read(&out).unwrap();
    use sha2::Digest;
    let hash: String = sha2::Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(hash, MODEL_SHA256);
}
