//! The owned result of one request, and the one place that copies results out of a
//! [`WhisperState`]. Its renderers (text, SRT, WebVTT, JSON) are in `render.rs`.

use std::time::Duration;

use super::Backend;
use crate::WhisperState;

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

    /// The transcript of `state`'s last [`full`](WhisperState::full) run, made on `backend`:
    /// every segment with its tokens, and the language whisper.cpp used or detected
    /// (`unknown` when it reports none). Retry flag and timings are left at their defaults.
    ///
    /// This is what the [`Recognizer`](super::Recognizer) returns, for code that drives a
    /// state itself (the command-line tool does), so that the same renderers apply.
    pub fn from_state(state: &WhisperState, backend: Backend) -> Transcript {
        let (segments, language) = read_state(state, &|cs| cs);
        Transcript::assemble(segments, language, backend)
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

/// Copies the segments (with all their tokens) and the language out of `state`, with
/// whisper.cpp's timestamps (centiseconds) mapped into the recording's by `to_recording` (the
/// identity, or a chunk's offset).
pub(crate) fn read_state(
    state: &WhisperState,
    to_recording: &dyn Fn(i64) -> i64,
) -> (Vec<Segment>, String) {
    let first_special = state.first_special_token();
    let at = |cs: i64| centis(to_recording(cs));
    let segments = state
        .as_iter()
        .map(|segment| {
            let tokens = (0..segment.n_tokens())
                .filter_map(|i| segment.get_token(i))
                .map(|token| {
                    let data = token.token_data();
                    Token {
                        id: data.id,
                        text: token
                            .to_str_lossy()
                            .map(|t| t.into_owned())
                            .unwrap_or_default(),
                        p: data.p,
                        plog: data.plog,
                        start: at(data.t0),
                        end: at(data.t1),
                        special: data.id >= first_special,
                    }
                })
                .collect();
            Segment {
                start: at(segment.start_timestamp()),
                end: at(segment.end_timestamp()),
                text: segment
                    .to_str_lossy()
                    .map(|t| t.into_owned())
                    .unwrap_or_default(),
                no_speech_probability: segment.no_speech_probability(),
                speaker_turn_next: segment.next_segment_speaker_turn(),
                tokens,
            }
        })
        .collect();
    let language = crate::get_lang_str(state.full_lang_id_from_state())
        .unwrap_or("unknown")
        .to_owned();
    (segments, language)
}

/// Centiseconds (whisper's unit) to a duration; negative values become zero.
pub(crate) fn centis(cs: i64) -> Duration {
    Duration::from_millis(u64::try_from(cs).unwrap_or(0).saturating_mul(10))
}
