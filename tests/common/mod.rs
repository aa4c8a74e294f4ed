//! Shared helpers of the tests that need the real model and real speech.
//!
//! The model comes from `WHISPER_STEADY_TEST_MODEL` (a ggml file; `scripts/fetch-test-model.sh`
//! builds one and prints its path). Without it these tests print why and pass, unless
//! `WHISPER_STEADY_REQUIRE_MODEL=1` (set by `.ci/run`), which turns the skip into a failure.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use whisper_steady::{WhisperContext, WhisperContextParameters};

/// The reference transcript of jfk.wav.
pub const JFK_TEXT: &str = "And so my fellow Americans ask not what your country can do for you ask what you can do for your country";

fn required(what: &str, script: &str) {
    let required = std::env::var("WHISPER_STEADY_REQUIRE_MODEL").is_ok_and(|v| v == "1");
    assert!(
        !required,
        "WHISPER_STEADY_REQUIRE_MODEL=1 but {what}; run {script}"
    );
    eprintln!("skipped: {what} (see {script})");
}

/// The file the test-input variable `var` names, or `None` (after printing why) when it is
/// absent and not required; `script` is the fetch script that makes it.
pub fn env_file(var: &str, script: &str) -> Option<PathBuf> {
    match std::env::var_os(var) {
        Some(path) if Path::new(&path).is_file() => Some(PathBuf::from(path)),
        Some(path) => {
            let missing = format!("{var}={} does not exist", Path::new(&path).display());
            required(&missing, script);
            None
        }
        None => {
            required(&format!("{var} is not set"), script);
            None
        }
    }
}

/// The test model, or `None` (after printing why) when it is absent and not required.
pub fn model_path() -> Option<PathBuf> {
    env_file("WHISPER_STEADY_TEST_MODEL", "scripts/fetch-test-model.sh")
}

/// The converted Silero VAD model (`WHISPER_STEADY_TEST_VAD_MODEL`), or `None` (after printing
/// why) when it is absent and not required.
pub fn vad_model_path() -> Option<PathBuf> {
    env_file(
        "WHISPER_STEADY_TEST_VAD_MODEL",
        "scripts/fetch-vad-model.sh",
    )
}

/// One context per test binary, shared by its tests (loading takes a while).
pub fn context() -> Option<Arc<WhisperContext>> {
    static CONTEXT: OnceLock<Option<Arc<WhisperContext>>> = OnceLock::new();
    CONTEXT
        .get_or_init(|| {
            let path = model_path()?;
            let mut params = WhisperContextParameters::default();
            params.use_gpu(false);
            Some(Arc::new(
                WhisperContext::new_with_params(&path, params).expect("the test model loads"),
            ))
        })
        .clone()
}

/// The shared speech samples folder (outside the project; CI has it too).
pub fn shared_audio(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("shared")
        .join("audio")
        .join(name)
}

/// Reads a WAV file as 16 kHz mono f32 (the files used here are already 16 kHz).
pub fn read_wav_16k_mono(path: &Path) -> Vec<f32> {
    let mut reader = hound::WavReader::open(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let spec = reader.spec();
    assert_eq!(spec.sample_rate, 16_000, "{} is not 16 kHz", path.display());
    let samples: Vec<f32> = match spec.sample_format {
        hound::SampleFormat::Int => reader
            .samples::<i32>()
            .map(|s| s.unwrap() as f32 / (1i64 << (spec.bits_per_sample - 1)) as f32)
            .collect(),
        hound::SampleFormat::Float => reader.samples::<f32>().map(|s| s.unwrap()).collect(),
    };
    let channels = spec.channels as usize;
    samples
        .chunks(channels)
        .map(|frame| frame.iter().sum::<f32>() / channels as f32)
        .collect()
}

/// jfk.wav as 16 kHz mono f32.
pub fn jfk() -> Vec<f32> {
    read_wav_16k_mono(&shared_audio("jfk.wav"))
}

/// Lowercase words with punctuation removed (apostrophes kept).
pub fn words(text: &str) -> Vec<String> {
    text.to_lowercase()
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || c == '\'' {
                c
            } else {
                ' '
            }
        })
        .collect::<String>()
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

/// Word error rate: word-level edit distance divided by the reference length.
pub fn wer(reference: &str, hypothesis: &str) -> f64 {
    let r = words(reference);
    let h = words(hypothesis);
    let mut row: Vec<usize> = (0..=h.len()).collect();
    for (i, rw) in r.iter().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, hw) in h.iter().enumerate() {
            let cost = if rw == hw { 0 } else { 1 };
            let next = (row[j] + 1).min(row[j + 1] + 1).min(prev + cost);
            prev = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[h.len()] as f64 / r.len().max(1) as f64
}
