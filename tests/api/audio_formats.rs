//! The library's one decoder (`audio::decode`, feature `audio`, which the CLI and the server
//! use): FLAC and OGG Vorbis (made from jfk.wav with sox) decode to the same 16 kHz audio as
//! the WAV. Skipped without sox, unless `WHISPER_STEADY_REQUIRE_MODEL=1` (CI, which installs it).

#![cfg(feature = "audio")]

use crate::common;

use std::process::Command;

use whisper_steady::audio::decode;

fn rms(x: &[f32]) -> f64 {
    (x.iter().map(|&v| f64::from(v) * f64::from(v)).sum::<f64>() / x.len() as f64).sqrt()
}

#[test]
fn flac_and_ogg_decode_like_the_wav() {
    let wav_path = common::shared_audio("jfk.wav");
    let wav = decode(&std::fs::read(&wav_path).unwrap(), Some("wav"), 60.0).unwrap();
    let dir = tempfile::tempdir().unwrap();
    for ext in ["flac", "ogg"] {
        let out = dir.path().join(format!("jfk.{ext}"));
        let made = Command::new("sox").arg(&wav_path).arg(&out).status();
        if !made.as_ref().is_ok_and(|s| s.success()) {
            let required = std::env::var("WHISPER_STEADY_REQUIRE_MODEL").is_ok_and(|v| v == "1");
            assert!(!required, "sox could not write {ext}: {made:?}");
            eprintln!("skipped {ext}: sox unavailable");
            continue;
        }
        let bytes = std::fs::read(&out).unwrap();
        // No extension hint: the format is recognized from the bytes.
        let d = decode(&bytes, None, 60.0).unwrap_or_else(|e| panic!("{ext}: {e}"));
        assert!(
            (d.seconds - wav.seconds).abs() < 0.05,
            "{ext}: {} s",
            d.seconds
        );
        let n = wav.samples.len().min(d.samples.len());
        let diff: Vec<f32> = (0..n).map(|i| d.samples[i] - wav.samples[i]).collect();
        let (signal, error) = (rms(&wav.samples[..n]), rms(&diff));
        // Lossless FLAC is (nearly) exact; Vorbis is lossy but close in level and shape.
        eprintln!("{ext}: error/signal = {:.5}", error / signal);
        let limit = if ext == "flac" { 1e-3 } else { 0.25 };
        assert!(
            error / signal < limit,
            "{ext}: error/signal = {}",
            error / signal
        );
        assert!(
            (rms(&d.samples[..n]) / signal - 1.0).abs() < 0.2,
            "{ext}: level differs"
        );
    }
}
