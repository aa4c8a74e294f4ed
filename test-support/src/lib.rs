//! What the workspace's tests share (a dev-dependency only; never part of a published crate):
//! the rule for skipping tests whose model is absent, the shared speech samples, the reference
//! text of jfk.wav, WAV reading and small synthetic model files ([`synthetic_model`]). The word error rate is the library's
//! (`whisper_steady::wer`), so that tests, the CLI's `gpu-check` and the benchmarks count words
//! alike. This crate does not depend on whisper-steady (a test that did would see two copies of
//! its types).
//!
//! The model comes from `WHISPER_STEADY_TEST_MODEL` (a ggml file; `scripts/fetch-test-model.sh`
//! builds one and prints its path), the multilingual one from
//! `WHISPER_STEADY_TEST_MODEL_MULTILINGUAL` (`scripts/fetch-multilingual-test-model.sh`).
//! Without them the tests that need them print why and pass,
//! unless `WHISPER_STEADY_REQUIRE_MODEL=1` (set by `.ci/run`), which turns the skip into a
//! failure.

#![deny(missing_docs)]

pub mod sounds;
pub mod synthetic_model;

use std::path::{Path, PathBuf};

/// The reference transcript of jfk.wav.
pub const JFK_TEXT: &str = "And so my fellow Americans ask not what your country can do for you ask what you can do for your country";

/// Whether a missing test input is a failure (`WHISPER_STEADY_REQUIRE_MODEL=1`, as in CI)
/// rather than a reason to skip.
pub fn inputs_required() -> bool {
    std::env::var("WHISPER_STEADY_REQUIRE_MODEL").is_ok_and(|v| v == "1")
}

/// Skips (prints why) or, when inputs are required, fails: `what` is missing, `script` makes it.
pub fn skip_or_fail(what: &str, script: &str) {
    assert!(
        !inputs_required(),
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
            skip_or_fail(&missing, script);
            None
        }
        None => {
            skip_or_fail(&format!("{var} is not set"), script);
            None
        }
    }
}

/// The test model (`WHISPER_STEADY_TEST_MODEL`), or `None` (after printing why) when it is
/// absent and not required.
pub fn model_path() -> Option<PathBuf> {
    env_file("WHISPER_STEADY_TEST_MODEL", "scripts/fetch-test-model.sh")
}

/// The multilingual test model (`WHISPER_STEADY_TEST_MODEL_MULTILINGUAL`: Whisper base, which
/// detects the language and translates; `scripts/fetch-multilingual-test-model.sh` builds it),
/// or `None` (after printing why) when it is absent and not required.
pub fn multilingual_model_path() -> Option<PathBuf> {
    env_file(
        "WHISPER_STEADY_TEST_MODEL_MULTILINGUAL",
        "scripts/fetch-multilingual-test-model.sh",
    )
}

/// The converted Silero VAD model (`WHISPER_STEADY_TEST_VAD_MODEL`), or `None` (after printing
/// why) when it is absent and not required.
pub fn vad_model_path() -> Option<PathBuf> {
    env_file(
        "WHISPER_STEADY_TEST_VAD_MODEL",
        "scripts/fetch-vad-model.sh",
    )
}

/// A file of the shared speech samples, which live beside the repository (CI has them too).
pub fn shared_audio(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/audio")
        .join(name)
}

/// Reads a 16 kHz WAV file (integer or float samples, any channels, averaged) as mono f32.
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

/// Speech by espeak-ng in `voice` (`"en-gb"`, `"fr"`, ...) at 130 words per minute, made 16 kHz
/// mono 16-bit by sox without dither (`-D`), so that the same text gives the same bytes on
/// every run: the WAV file's bytes. `None` (after printing why) when espeak-ng or sox is
/// missing and inputs are not required (`apt-get install espeak-ng sox`).
pub fn espeak_wav(voice: &str, text: &str) -> Option<Vec<u8>> {
    espeak_wav_at(voice, 130, text)
}

/// [`espeak_wav`] at `words_per_minute`.
pub fn espeak_wav_at(voice: &str, words_per_minute: u32, text: &str) -> Option<Vec<u8>> {
    use std::process::Command;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let runs = |tool: &str| {
        Command::new(tool)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if !runs("espeak-ng") || !runs("sox") {
        skip_or_fail(
            "espeak-ng or sox is not installed",
            "apt-get install espeak-ng sox",
        );
        return None;
    }
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let stem = format!(
        "whisper-steady-espeak-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    let raw = std::env::temp_dir().join(format!("{stem}-raw.wav"));
    let wav = std::env::temp_dir().join(format!("{stem}.wav"));
    let spoke = Command::new("espeak-ng")
        .args(["-v", voice, "-s", &words_per_minute.to_string(), "-w"])
        .arg(&raw)
        .arg(text)
        .status()
        .expect("espeak-ng runs");
    assert!(spoke.success(), "espeak-ng -v {voice} failed");
    let converted = Command::new("sox")
        .arg("-D")
        .arg(&raw)
        .args(["-r", "16000", "-c", "1", "-b", "16"])
        .arg(&wav)
        .status()
        .expect("sox runs");
    assert!(converted.success(), "sox failed");
    let bytes = std::fs::read(&wav).expect("sox wrote the WAV file");
    let _ = std::fs::remove_file(raw);
    let _ = std::fs::remove_file(wav);
    Some(bytes)
}

/// [`espeak_wav`]'s speech as 16 kHz mono f32.
pub fn espeak(voice: &str, text: &str) -> Option<Vec<f32>> {
    Some(samples_of(&espeak_wav(voice, text)?))
}

/// The samples of a 16-bit WAV file's bytes (as [`espeak_wav`] makes) as f32.
pub fn samples_of(wav: &[u8]) -> Vec<f32> {
    let mut reader = hound::WavReader::new(std::io::Cursor::new(wav)).expect("a WAV file");
    reader
        .samples::<i16>()
        .map(|s| f32::from(s.unwrap()) / 32768.0)
        .collect()
}
