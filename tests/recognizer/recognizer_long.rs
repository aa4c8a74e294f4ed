//! Long audio through a [`Recognizer`] with a VAD model: speech cut at silences into chunks,
//! transcribed on two states at once, stitched back in the recording's time.
//!
//! Needs `WHISPER_STEADY_TEST_MODEL` and `WHISPER_STEADY_TEST_VAD_MODEL`; without them these
//! tests print why and pass, unless `WHISPER_STEADY_REQUIRE_MODEL=1`.

use crate::common;

use std::time::Duration;

use common::{jfk, model_path, vad_model_path, wer, JFK_TEXT};
use whisper_steady::recognizer::{
    LongAudio, RecognizeError, RecognizeOptions, Recognizer, RecognizerConfig, RecognizerError,
};

const RATE: usize = 16_000;

/// One CPU worker of 2 threads with 2 chunk states, with the VAD model or without.
fn config(vad: bool) -> Option<RecognizerConfig> {
    let model = model_path()?;
    let mut config = RecognizerConfig::new(model);
    config.use_gpu = false;
    config.workers = 1;
    config.threads_per_worker = 2;
    config.chunk_states = 2;
    if vad {
        config.vad_model = Some(vad_model_path()?);
    }
    Some(config)
}

fn recognizer(vad: bool) -> Option<Recognizer> {
    Some(Recognizer::new(config(vad)?).expect("the recognizer starts"))
}

fn silence(seconds: f64) -> Vec<f32> {
    vec![0.0; (seconds * RATE as f64) as usize]
}

/// jfk.wav three times with pauses: 2 s, jfk, 4 s, jfk, 4 s, jfk, 3 s (about 46 s), and where
/// each copy starts, in seconds.
fn three_jfks() -> (Vec<f32>, Vec<f64>) {
    let speech = jfk();
    let mut audio = silence(2.0);
    let mut starts = Vec::new();
    for pause in [4.0, 4.0, 3.0] {
        starts.push(audio.len() as f64 / RATE as f64);
        audio.extend(&speech);
        audio.extend(silence(pause));
    }
    (audio, starts)
}

#[test]
fn long_audio_in_chunks_keeps_every_word_and_the_recordings_time() {
    let Some(chunked) = recognizer(true) else {
        return;
    };
    let (audio, starts) = three_jfks();
    let seconds = audio.len() as f64 / RATE as f64;
    let reference = [JFK_TEXT; 3].join(" ");

    let mut options = RecognizeOptions::new();
    options.token_timestamps = true;
    let transcript = chunked
        .transcribe(audio.clone(), options)
        .expect("a transcript");
    let error = wer(&reference, &transcript.text);
    eprintln!("chunked: {:?} (WER {error:.3})", transcript.text);
    assert!(transcript.chunks >= 1, "greedy long audio goes in chunks");
    for s in &transcript.segments {
        eprintln!("  [{:?} - {:?}] {}", s.start, s.end, s.text);
    }
    assert!(error <= 0.05, "{}", transcript.text);

    // In order and inside the recording, although the pauses between the copies (4 s) were
    // shortened to 0.6 s in the chunk: times are the recording's.
    let segments = &transcript.segments;
    for pair in segments.windows(2) {
        assert!(pair[0].start <= pair[1].start, "{pair:?}");
    }
    for s in segments {
        assert!(
            s.start <= s.end && s.end.as_secs_f64() <= seconds + 0.01,
            "{s:?}"
        );
    }
    // Each copy's first word ("And") where that copy's speech starts (0.3 s into jfk.wav).
    let ands: Vec<f64> = segments
        .iter()
        .flat_map(|s| &s.tokens)
        .filter(|t| t.text.trim() == "And")
        .map(|t| t.start.as_secs_f64())
        .collect();
    eprintln!("\"And\" at {ands:?} s; copies start at {starts:?} s");
    assert_eq!(ands.len(), 3, "{ands:?}");
    for (at, start) in ands.iter().zip(&starts) {
        assert!(
            (start - 0.2..=start + 1.5).contains(at),
            "the copy at {start} s starts at {at} s"
        );
    }
    let last_end = segments.last().unwrap().end.as_secs_f64();
    assert!(
        (starts[2] + 10.0..=starts[2] + 11.1).contains(&last_end),
        "the last copy ends at {last_end} s"
    );

    // Whisper's own windows over the same audio find the same words.
    let Some(whole) = recognizer(false) else {
        return;
    };
    let plain = whole
        .transcribe(audio, RecognizeOptions::new())
        .expect("a transcript");
    eprintln!("whole: {:?}", plain.text);
    assert!(wer(&reference, &plain.text) <= 0.05, "{}", plain.text);
}

/// Beam search, asked for accuracy, keeps whisper.cpp's own windows for long audio by default
/// (`LongAudio::ChunksWhenGreedy`: chunks cost it 8 % more word errors on held-out recordings);
/// `LongAudio::Chunks` chunks it too.
#[test]
fn long_audio_under_beam_search_keeps_whispers_windows_unless_told() {
    let Some(by_default) = recognizer(true) else {
        return;
    };
    let (audio, _) = three_jfks();
    let reference = [JFK_TEXT; 3].join(" ");
    let mut beam = RecognizeOptions::new();
    beam.beam_size = Some(5);
    let windows = by_default
        .transcribe(audio.clone(), beam.clone())
        .expect("a transcript");
    assert_eq!(windows.chunks, 0);
    assert!(wer(&reference, &windows.text) <= 0.05, "{}", windows.text);

    let mut config = config(true).unwrap();
    config.long_audio = LongAudio::Chunks;
    let chunked = Recognizer::new(config)
        .unwrap()
        .transcribe(audio, beam)
        .expect("a transcript");
    assert!(chunked.chunks >= 1);
    assert!(wer(&reference, &chunked.text) <= 0.05, "{}", chunked.text);
}

#[test]
fn long_silence_gives_an_empty_transcript() {
    let Some(chunked) = recognizer(true) else {
        return;
    };
    let transcript = chunked
        .transcribe(silence(40.0), RecognizeOptions::new())
        .expect("a transcript");
    assert_eq!(transcript.text, "");
    assert!(transcript.segments.is_empty());
    assert_eq!(transcript.language, "en");
}

#[test]
fn a_deadline_stops_every_chunk_and_the_worker_goes_on() {
    let Some(chunked) = recognizer(true) else {
        return;
    };
    let (audio, _) = three_jfks();
    let late = chunked.transcribe(
        audio.clone(),
        RecognizeOptions::new().deadline(Duration::from_millis(300)),
    );
    assert!(
        matches!(late, Err(RecognizeError::DeadlineExceeded { .. })),
        "{late:?}"
    );
    let transcript = chunked
        .transcribe(audio, RecognizeOptions::new())
        .expect("the next request");
    assert!(wer(&[JFK_TEXT; 3].join(" "), &transcript.text) <= 0.05);
    let health = chunked.health();
    assert_eq!(health.requests.deadline_exceeded, 1);
    assert_eq!(health.requests.completed, 1);
}

#[test]
fn a_missing_vad_model_is_a_clear_startup_error() {
    let Some(model) = model_path() else { return };
    let mut config = RecognizerConfig::new(model);
    config.use_gpu = false;
    config.vad_model = Some("no-such-vad-model.bin".into());
    let error = Recognizer::new(config).expect_err("a missing VAD model");
    assert!(
        matches!(error, RecognizerError::VadModelLoad { .. }),
        "{error:?}"
    );
    assert!(
        error.to_string().contains("no-such-vad-model.bin"),
        "{error}"
    );
}
