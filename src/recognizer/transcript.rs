//! The owned result of one request.

use std::time::Duration;

use super::Backend;

/// One recognized request: text, segments, language, timings. Owns everything (no borrow of a
/// state), so it can be sent anywhere and kept as long as needed.
#[derive(Debug, Clone, PartialEq)]
pub struct Transcript {
    /// The text of every segment, concatenated, with surrounding whitespace trimmed.
    pub text: String,
    /// The segments, in order.
    pub segments: Vec<Segment>,
    /// The spoken language (detected, or the one requested), as whisper's short code (`en`).
    pub language: String,
    /// Where it ran.
    pub backend: Backend,
    /// The GPU it ran on (ggml's index); `None` on the CPU.
    pub device: Option<i32>,
    /// Whether a GPU attempt failed and the request was retried on the CPU.
    pub retried_on_cpu: bool,
    /// How long each step took.
    pub timings: Timings,
}

impl Transcript {
    /// A transcript of `segments` (in order), in `language`, made on `backend`; the text is
    /// theirs concatenated, retry flag and timings are left for the worker to fill in.
    pub(crate) fn assemble(segments: Vec<Segment>, language: String, backend: Backend) -> Self {
        let text = segments
            .iter()
            .map(|s| s.text.as_str())
            .collect::<String>()
            .trim()
            .to_owned();
        Transcript {
            text,
            segments,
            language,
            backend,
            device: None,
            retried_on_cpu: false,
            timings: Timings::default(),
        }
    }

    /// The mean probability of the text tokens (special tokens such as timestamps left out),
    /// between 0 and 1; 0 when there are none. A rough confidence score.
    pub fn confidence(&self) -> f32 {
        let (sum, n) = self
            .segments
            .iter()
            .flat_map(|s| &s.tokens)
            .filter(|t| !t.special)
            .fold((0.0f64, 0usize), |(sum, n), t| {
                (sum + f64::from(t.p), n + 1)
            });
        if n == 0 {
            0.0
        } else {
            (sum / n as f64) as f32
        }
    }
}

/// One segment of a transcript.
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    /// Start, from the beginning of the audio.
    pub start: Duration,
    /// End, from the beginning of the audio.
    pub end: Duration,
    /// The text, as whisper produced it (usually with a leading space).
    pub text: String,
    /// The probability that the segment holds no speech.
    pub no_speech_probability: f32,
    /// Whether the next segment is predicted to be another speaker (tinydiarize models).
    pub speaker_turn_next: bool,
    /// The tokens, special ones included.
    pub tokens: Vec<Token>,
}

/// One token of a segment.
#[derive(Debug, Clone, PartialEq)]
pub struct Token {
    /// The token id in the model's vocabulary.
    pub id: i32,
    /// Its text (bytes that are not valid UTF-8 on their own are replaced).
    pub text: String,
    /// Its probability.
    pub p: f32,
    /// Its log probability.
    pub plog: f32,
    /// Start, when token timestamps were requested (otherwise whisper's rough estimate or 0).
    pub start: Duration,
    /// End, as `start`.
    pub end: Duration,
    /// Whether it is a special token (end of text, timestamps, language tags).
    pub special: bool,
}

/// How long a request spent where.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Timings {
    /// From submission until a worker took it (summed over attempts).
    pub queued: Duration,
    /// Running whisper.cpp (summed over attempts).
    pub processing: Duration,
    /// From submission until the result was ready.
    pub total: Duration,
}

/// Centiseconds (whisper's unit) to a duration; negative values become zero.
pub(crate) fn centis(cs: i64) -> Duration {
    Duration::from_millis(u64::try_from(cs).unwrap_or(0).saturating_mul(10))
}
