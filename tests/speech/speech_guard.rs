//! The speech guard (`whisper_steady::recognizer::speech`): no words out of silence or noise,
//! and none lost from speech. Sounds without speech from `test_support::sounds` (the guard's
//! thresholds were chosen on another set, bench/speechless_set.py), speech from jfk.wav and
//! espeak-ng.
//!
//! Needs the tiny.en model and the Silero VAD model (`WHISPER_STEADY_TEST_MODEL`,
//! `WHISPER_STEADY_TEST_VAD_MODEL`), and the multilingual base for its own test
//! (`WHISPER_STEADY_TEST_MODEL_MULTILINGUAL`); skips without them (see tests/common).

use crate::common;

use std::path::PathBuf;

use common::{jfk, model_path, multilingual_model_path, vad_model_path, wer, JFK_TEXT};
use test_support::sounds;
use whisper_steady::recognizer::{RecognizeOptions, Recognizer, RecognizerConfig};

/// A one-worker recognizer on the CPU, with the speech detector when `vad` names one.
fn recognizer(model: PathBuf, vad: Option<PathBuf>) -> Recognizer {
    let mut config = RecognizerConfig::new(model);
    config.use_gpu = false;
    config.workers = 1;
    config.vad_model = vad;
    Recognizer::new(config).expect("the recognizer starts")
}

/// Sounds without speech, named: the kinds of the bench set, with other seeds and levels.
fn no_speech() -> Vec<(&'static str, Vec<f32>)> {
    vec![
        ("silence", sounds::silence(8.0)),
        ("white noise", sounds::white_noise(8.0, 0.08, 3)),
        ("pink noise", sounds::pink_noise(8.0, 0.2, 5)),
        ("brown noise", sounds::brown_noise(8.0, 0.3, 11)),
        ("quiet brown noise", sounds::brown_noise(8.0, 0.01, 13)),
        ("hum", sounds::hum(8.0, 50.0, 0.1)),
        (
            "tones",
            sounds::tones(8.0, &[262.0, 330.0, 392.0, 523.0, 392.0, 330.0], 0.2),
        ),
    ]
}

fn assert_no_words(recognizer: &Recognizer, language: Option<&str>, model: &str) {
    for (name, audio) in no_speech() {
        let mut options = RecognizeOptions::new();
        options.language = language.map(str::to_owned);
        let t = recognizer.transcribe(audio, options).unwrap();
        assert_eq!(t.text, "", "{model}, {name}: words out of no speech");
        assert!(t.segments.is_empty(), "{model}, {name}: {:?}", t.segments);
        assert!(t.no_speech, "{model}, {name}: no_speech not set");
    }
}

#[test]
fn no_words_from_silence_noise_hum_or_tones_on_tiny_en() {
    let (Some(model), Some(vad)) = (model_path(), vad_model_path()) else {
        return;
    };
    assert_no_words(&recognizer(model, Some(vad)), None, "tiny.en");
}

#[test]
fn no_words_from_silence_noise_hum_or_tones_on_the_multilingual_model() {
    let (Some(model), Some(vad)) = (multilingual_model_path(), vad_model_path()) else {
        return;
    };
    let recognizer = recognizer(model, Some(vad));
    // Detection is where multilingual models invent the most (brown noise in Japanese).
    assert_no_words(&recognizer, None, "base, detected");
    assert_no_words(&recognizer, Some("de"), "base, German");
}

#[test]
fn the_guard_costs_no_words_of_speech() {
    let (Some(model), Some(vad)) = (model_path(), vad_model_path()) else {
        return;
    };
    let recognizer = recognizer(model, Some(vad));
    let guarded = recognizer
        .transcribe(jfk(), RecognizeOptions::new())
        .unwrap();
    let mut unguarded = RecognizeOptions::new();
    unguarded.sound_tags = true;
    let unguarded = recognizer.transcribe(jfk(), unguarded).unwrap();
    assert_eq!(guarded.text, unguarded.text);
    assert!(!guarded.no_speech);
    assert!(wer(JFK_TEXT, &guarded.text) < 0.15, "{}", guarded.text);
    // Quiet speech is still speech (about -30 dBFS).
    let Some(speech) = common::espeak("en-us", "Please turn off the lights in the kitchen.") else {
        return;
    };
    let quiet: Vec<f32> = speech.iter().map(|s| s * 0.03).collect();
    let t = recognizer
        .transcribe(quiet, RecognizeOptions::new())
        .unwrap();
    assert!(!t.no_speech, "quiet speech taken for none");
    assert!(
        wer("please turn off the lights in the kitchen", &t.text) < 0.5,
        "{}",
        t.text
    );
}

#[test]
fn a_word_alone_is_speech() {
    let (Some(model), Some(vad)) = (model_path(), vad_model_path()) else {
        return;
    };
    let recognizer = recognizer(model, Some(vad));
    // "Go." at 200 words per minute is voiced for less than the detector's default 250 ms.
    for word in ["Go", "Yes", "Stop"] {
        let Some(wav) = test_support::espeak_wav_at("en-us", 200, &format!("{word}.")) else {
            return;
        };
        let mut audio = sounds::silence(0.5);
        audio.extend(test_support::samples_of(&wav));
        audio.extend(sounds::silence(0.5));
        let t = recognizer
            .transcribe(audio, RecognizeOptions::new())
            .unwrap();
        assert!(!t.no_speech, "{word:?} taken for no speech");
        assert!(t.text.contains(word), "{word:?}: {:?}", t.text);
    }
}

#[test]
fn sound_tags_keeps_whispers_descriptions_and_no_vad_still_drops_them() {
    let Some(model) = model_path() else {
        return;
    };
    // Without a speech detector: non-speech tokens suppressed, descriptions dropped.
    let plain = recognizer(model, None);
    let t = plain
        .transcribe(sounds::silence(8.0), RecognizeOptions::new())
        .unwrap();
    assert_eq!(t.text, "");
    assert!(t.no_speech);
    // Asked for: whisper's own output on silence, `[BLANK_AUDIO]` on tiny.en.
    let mut options = RecognizeOptions::new();
    options.sound_tags = true;
    let t = plain.transcribe(sounds::silence(8.0), options).unwrap();
    assert!(!t.no_speech);
    assert!(t.text.contains("BLANK_AUDIO"), "{:?}", t.text);
}
