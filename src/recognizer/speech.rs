//! The speech guard: no words out of silence or noise. Whisper writes something for any audio
//! (`[BLANK_AUDIO]`, `(wind howling)`, `♪♪♪`, and from multilingual models stock phrases such as
//! `ご視聴ありがとうございました`, "thanks for watching", on brown noise); the guard keeps only what
//! was said, from three signals:
//!
//! 1. **The speech detector** (Silero VAD, the recognizer's `vad_model`): audio in which it
//!    finds no speech is not given to whisper at all, and a segment that lies wholly outside
//!    the speech it found (by more than [`OUTSIDE_SPEECH_MARGIN`]) is dropped.
//! 2. **Sound descriptions**: non-speech tokens are suppressed while decoding (whisper.cpp's
//!    `suppress_nst`, what OpenAI's whisper does by default), and a segment that is nothing but
//!    a description in brackets or parentheses, music signs or punctuation is dropped.
//! 3. **Whisper's own rule**: a segment whose no-speech probability is over
//!    [`NO_SPEECH_PROBABILITY`] while its mean token log-probability is under
//!    [`LOW_LOG_PROBABILITY`] is dropped (OpenAI whisper's thresholds, kept as they are).
//!
//! A request that sets [`RecognizeOptions::sound_tags`](super::RecognizeOptions::sound_tags)
//! keeps whisper's output as it was (descriptions included, no gate), for subtitles that want
//! `[Music]`.
//!
//! How it was chosen: bench/speechless_set.py makes silence, room tone, white/pink/brown noise
//! at several levels, mains hum, music-like tones, applause- and rain-like noise, and quiet or
//! noisy speech, in a tune split and a held-out split; on tiny.en and the multilingual base, the
//! detector found no speech in any non-speech clip of either split and found every spoken one
//! (bench/RESULTS.md, "No words without speech").

use std::time::Duration;

use super::chunk::Span;
use super::transcript::Segment;

/// A segment further than this from every stretch of detected speech is not speech.
pub const OUTSIDE_SPEECH_MARGIN: Duration = Duration::from_secs(1);

/// Whisper's no-speech threshold (OpenAI whisper's `no_speech_threshold`).
pub const NO_SPEECH_PROBABILITY: f32 = 0.6;

/// Whisper's log-probability threshold (OpenAI whisper's `logprob_threshold`).
pub const LOW_LOG_PROBABILITY: f32 = -1.0;

/// Whether `text` holds no words: only descriptions in brackets or parentheses (`[Music]`,
/// `(wind howling)`, `*laughs*`), music signs, punctuation and spaces.
pub fn is_sound_tag(text: &str) -> bool {
    let mut depth = 0usize;
    let mut star = false;
    for c in text.chars() {
        match c {
            '[' | '(' | '（' | '【' => depth += 1,
            ']' | ')' | '）' | '】' => depth = depth.saturating_sub(1),
            '*' => star = !star,
            _ if depth > 0 || star => {}
            c if c.is_whitespace() || c.is_ascii_punctuation() => {}
            '♪' | '♫' | '♬' | '♩' | '…' | '。' | '、' | '「' | '」' => {}
            _ => return false,
        }
    }
    true
}

/// The mean log-probability of a segment's text tokens (special tokens left out); 0 without any.
pub fn mean_log_probability(segment: &Segment) -> f32 {
    super::transcript::text_token_mean(segment.tokens.iter(), |t| t.plog)
}

/// Whether whisper itself calls `segment` silence: no-speech probability over
/// [`NO_SPEECH_PROBABILITY`] and mean log-probability under [`LOW_LOG_PROBABILITY`].
pub fn whisper_says_no_speech(segment: &Segment) -> bool {
    segment.no_speech_probability > NO_SPEECH_PROBABILITY
        && mean_log_probability(segment) < LOW_LOG_PROBABILITY
}

/// Whether `start..end` lies wholly outside `speech` (sample spans at 16 kHz), each widened by
/// [`OUTSIDE_SPEECH_MARGIN`].
pub(crate) fn outside_speech(start: Duration, end: Duration, speech: &[Span]) -> bool {
    let margin = OUTSIDE_SPEECH_MARGIN.as_secs_f64();
    let (start, end) = (start.as_secs_f64(), end.as_secs_f64());
    let seconds = |samples: usize| samples as f64 / f64::from(crate::audio::WHISPER_SAMPLE_RATE);
    !speech
        .iter()
        .any(|s| start <= seconds(s.end) + margin && end >= seconds(s.start) - margin)
}

/// The segments that hold speech: `segments` without sound descriptions, without those whisper
/// calls silence, and, when the detector ran (`speech`), without those wholly outside the
/// speech it found.
pub(crate) fn keep_speech(segments: Vec<Segment>, speech: Option<&[Span]>) -> Vec<Segment> {
    segments
        .into_iter()
        .filter(|s| !not_words(&s.text, s.start, s.end, speech) && !whisper_says_no_speech(s))
        .collect()
}

/// The rules that need only a segment's text and times (what a streamed segment has): a sound
/// description, or, when the detector ran (`speech`), wholly outside the speech it found.
pub(crate) fn not_words(
    text: &str,
    start: Duration,
    end: Duration,
    speech: Option<&[Span]>,
) -> bool {
    is_sound_tag(text) || speech.is_some_and(|speech| outside_speech(start, end, speech))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptions_music_and_punctuation_are_not_words() {
        for tag in [
            "[BLANK_AUDIO]",
            " (wind howling)",
            "[Music]",
            "♪♪♪",
            " ♪ ♪",
            "*laughs*",
            ".",
            "",
            " [BEEPING] (buzzer) ",
            "（音楽）",
        ] {
            assert!(is_sound_tag(tag), "{tag:?}");
        }
        for words in [
            " And so my fellow Americans",
            "ご視聴ありがとうございました",
            "I'm sorry.",
            "BELL RINGS",
            "[Music] then words",
            "42",
        ] {
            assert!(!is_sound_tag(words), "{words:?}");
        }
    }

    #[test]
    fn outside_speech_has_a_margin() {
        let rate = crate::audio::WHISPER_SAMPLE_RATE as usize;
        let speech = [Span {
            start: 2 * rate,
            end: 4 * rate,
        }];
        let s = |a: f64, b: f64| (Duration::from_secs_f64(a), Duration::from_secs_f64(b));
        for (a, b) in [s(2.5, 3.0), s(0.0, 10.0), s(4.5, 6.0), s(0.0, 1.5)] {
            assert!(!outside_speech(a, b, &speech), "{a:?}..{b:?}");
        }
        for (a, b) in [s(5.5, 8.0), s(0.0, 0.5)] {
            assert!(outside_speech(a, b, &speech), "{a:?}..{b:?}");
        }
        assert!(outside_speech(s(0.0, 1.0).0, s(0.0, 1.0).1, &[]));
    }
}
