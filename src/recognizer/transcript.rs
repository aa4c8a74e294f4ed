//! The owned result of one request, and the one place that copies results out of a
//! [`WhisperState`]. Its renderers (text, SRT, WebVTT, JSON) are in `render.rs`.

use std::time::Duration;

use super::Backend;
use crate::WhisperState;

/// One recognized request: text, segments, language, timings. Owns everything (no borrow of a
/// state), so it can be sent anywhere and kept as long as needed.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Transcript {
    /// The text of every segment, concatenated, with surrounding whitespace trimmed.
    pub text: String,
    /// The segments, in order.
    pub segments: Vec<Segment>,
    /// The spoken language (detected, or the one requested), as whisper's short code (`en`).
    pub language: String,
    /// When the language was detected, the probability whisper's detection gave it, between 0
    /// and 1 (for a request in chunks, the first chunk's); `None` when the request named the
    /// language (or there was no speech to detect it in).
    pub language_probability: Option<f32>,
    /// Where it ran.
    pub backend: Backend,
    /// The GPU it ran on (ggml's index); `None` on the CPU.
    pub device: Option<i32>,
    /// Whether the audio held no speech: the speech detector found none, or whisper wrote
    /// nothing but sound descriptions or what it calls silence (see [`speech`](super::speech)).
    /// The text is then empty.
    pub no_speech: bool,
    /// Whether a GPU attempt failed and the request was retried on the CPU.
    pub retried_on_cpu: bool,
    /// How many chunks of its speech a long request was decoded in; 0 when whisper.cpp's own
    /// windows took it whole ([`LongAudio`](super::LongAudio)).
    #[serde(default)]
    pub chunks: usize,
    /// How long each step took.
    pub timings: Timings,
}

impl Transcript {
    /// A transcript of `segments` (in order), in `language`, made on `backend`; the text is
    /// theirs concatenated, retry flag and timings are left for the worker to fill in.
    pub(crate) fn assemble(segments: Vec<Segment>, language: Spoken, backend: Backend) -> Self {
        let text = segments
            .iter()
            .map(|s| s.text.as_str())
            .collect::<String>()
            .trim()
            .to_owned();
        Transcript {
            text,
            segments,
            language: language.code,
            language_probability: language.probability,
            backend,
            device: None,
            no_speech: false,
            retried_on_cpu: false,
            chunks: 0,
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
        text_token_mean(self.segments.iter().flat_map(|s| &s.tokens), |t| t.p)
    }
}

/// The mean of `value` over the text tokens of `tokens` (special tokens left out); 0 without any.
pub(crate) fn text_token_mean<'t>(
    tokens: impl Iterator<Item = &'t Token>,
    value: impl Fn(&Token) -> f32,
) -> f32 {
    let (sum, n) = tokens
        .filter(|t| !t.special)
        .fold((0.0f64, 0usize), |(sum, n), t| {
            (sum + f64::from(value(t)), n + 1)
        });
    if n == 0 {
        0.0
    } else {
        (sum / n as f64) as f32
    }
}

/// One segment of a transcript.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
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

impl Segment {
    /// The text tokens (special ones such as timestamps left out), as every rendering lists
    /// them.
    pub fn text_tokens(&self) -> impl Iterator<Item = &Token> {
        self.tokens.iter().filter(|t| !t.special)
    }

    /// The mean log probability of the text tokens (OpenAI's `avg_logprob`); 0 without any.
    pub fn avg_logprob(&self) -> f32 {
        text_token_mean(self.tokens.iter(), |t| t.plog)
    }
}

/// One token of a segment.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Token {
    /// The token id in the model's vocabulary.
    pub id: i32,
    /// The characters that end in this token. A character whose UTF-8 bytes are split across
    /// tokens (common in Chinese and Japanese) belongs whole to the token that completes it, so
    /// the token that holds only its first bytes has empty text; the texts of a segment's tokens
    /// joined are the segment's text. Bytes that never form a character are replaced (U+FFFD).
    pub text: String,
    /// The token's own bytes in the vocabulary (possibly part of a character).
    pub bytes: Vec<u8>,
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

/// One word of a transcript, with the times of its tokens ([`Transcript::words`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Word {
    /// The word, without surrounding spaces and punctuation.
    pub text: String,
    /// When its first token starts.
    pub start: Duration,
    /// When its last token ends.
    pub end: Duration,
}

/// Whether `c` is written without spaces between words, so that each character counts as one
/// word: Han ideographs (CJK blocks and extensions), kana, Bopomofo.
fn is_unspaced(c: char) -> bool {
    matches!(c as u32,
        0x3040..=0x30FF      // Hiragana, Katakana
        | 0x3100..=0x312F    // Bopomofo
        | 0x31F0..=0x31FF    // Katakana phonetic extensions
        | 0x3400..=0x4DBF    // CJK extension A
        | 0x4E00..=0x9FFF    // CJK unified ideographs
        | 0xF900..=0xFAFF    // CJK compatibility ideographs
        | 0xFF66..=0xFF9F    // halfwidth Katakana
        | 0x20000..=0x3FFFF) // CJK extensions B and later
}

impl Transcript {
    /// The words of the text tokens, with their times (meaningful with
    /// [`token_timestamps`](super::RecognizeOptions::token_timestamps)): a token that starts
    /// with a space, or the first of a segment, starts a word, and the others (word pieces,
    /// punctuation) continue it; in scripts written without spaces (`is_unspaced`: Chinese,
    /// Japanese) every character is a word, timed by an equal share of its token. Punctuation
    /// around a word is dropped (apostrophes kept); a word with nothing else is left out.
    pub fn words(&self) -> Vec<Word> {
        // (text, start, end, open to continuation)
        let mut pieces: Vec<(String, Duration, Duration, bool)> = Vec::new();
        for segment in &self.segments {
            let mut first = true;
            // A character split across tokens starts with the first of them.
            let mut pending: Option<Duration> = None;
            for token in segment.text_tokens() {
                let start = pending.take().unwrap_or(token.start).min(token.end);
                if token.text.is_empty() {
                    pending = Some(start);
                    continue;
                }
                let chars = token.text.chars().count() as u32;
                let share = (token.end - start) / chars.max(1);
                let mut at = start;
                let mut rest = String::new();
                let mut rest_start = start;
                for c in token.text.chars() {
                    let next = at + share;
                    if is_unspaced(c) {
                        if !rest.is_empty() {
                            push_piece(
                                &mut pieces,
                                &mut first,
                                std::mem::take(&mut rest),
                                rest_start,
                                at,
                            );
                        }
                        pieces.push((c.to_string(), at, next, false));
                        first = false;
                        rest_start = next;
                    } else {
                        if rest.is_empty() {
                            rest_start = at;
                        }
                        rest.push(c);
                    }
                    at = next;
                }
                if !rest.is_empty() {
                    push_piece(&mut pieces, &mut first, rest, rest_start, token.end);
                }
            }
        }
        pieces
            .into_iter()
            .filter_map(|(text, start, end, _)| {
                let word = text
                    .trim()
                    .trim_matches(|c: char| !c.is_alphanumeric() && c != '\'')
                    .to_owned();
                (!word.is_empty()).then_some(Word {
                    text: word,
                    start,
                    end: end.max(start),
                })
            })
            .collect()
    }
}

/// Adds `text` (spaced script) to the last piece when it continues it (no leading space, not
/// the segment's first, the last piece open), else as a new piece.
fn push_piece(
    pieces: &mut Vec<(String, Duration, Duration, bool)>,
    first: &mut bool,
    text: String,
    start: Duration,
    end: Duration,
) {
    match pieces.last_mut() {
        Some(last) if !*first && last.3 && !text.starts_with(' ') => {
            last.0.push_str(&text);
            last.2 = last.2.max(end);
        }
        _ => pieces.push((text, start, end, true)),
    }
    *first = false;
}

/// The language of one run: whisper's code and, when it was detected, the probability.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Spoken {
    /// whisper's code, or `unknown`.
    pub(crate) code: String,
    /// The detection's probability of `code`; `None` when the language was given.
    pub(crate) probability: Option<f32>,
}

/// How long a request spent where.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
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
) -> (Vec<Segment>, Spoken) {
    let first_special = state.first_special_token();
    let at = |cs: i64| centis(to_recording(cs));
    let segments = state
        .as_iter()
        .map(|segment| {
            let raw: Vec<(crate::WhisperTokenData, Vec<u8>)> = (0..segment.n_tokens())
                .filter_map(|i| segment.get_token(i))
                .map(|token| {
                    let bytes = token.to_bytes().map(<[u8]>::to_vec).unwrap_or_default();
                    (token.token_data(), bytes)
                })
                .collect();
            let texts = token_texts(raw.iter().map(|(_, bytes)| bytes.as_slice()));
            let tokens = raw
                .into_iter()
                .zip(texts)
                .map(|((data, bytes), text)| Token {
                    id: data.id,
                    text,
                    bytes,
                    p: data.p,
                    plog: data.plog,
                    start: at(data.t0),
                    end: at(data.t1),
                    special: data.id >= first_special,
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
    let language = Spoken {
        code: crate::get_lang_str(state.full_lang_id_from_state())
            .unwrap_or("unknown")
            .to_owned(),
        probability: state.full_lang_probability(),
    };
    (segments, language)
}

/// The text of each token of a segment from their bytes: the characters that end in it (a
/// character split across tokens is decoded once, whole, at the token that completes it); bytes
/// that can never form a character, and an incomplete one at the end, are replaced (U+FFFD).
fn token_texts<'a>(tokens: impl Iterator<Item = &'a [u8]>) -> Vec<String> {
    let mut texts: Vec<String> = Vec::new();
    let mut pending: Vec<u8> = Vec::new();
    for bytes in tokens {
        pending.extend_from_slice(bytes);
        let mut text = String::new();
        loop {
            match std::str::from_utf8(&pending) {
                Ok(valid) => {
                    text.push_str(valid);
                    pending.clear();
                    break;
                }
                Err(e) => {
                    let valid = e.valid_up_to();
                    text.push_str(&String::from_utf8_lossy(&pending[..valid]));
                    match e.error_len() {
                        // An incomplete character at the end: wait for the next token.
                        None => {
                            pending.drain(..valid);
                            break;
                        }
                        // Bytes that are no character: replaced, then go on.
                        Some(bad) => {
                            text.push(char::REPLACEMENT_CHARACTER);
                            pending.drain(..valid + bad);
                        }
                    }
                }
            }
        }
        texts.push(text);
    }
    if !pending.is_empty() {
        if let Some(last) = texts.last_mut() {
            last.push_str(&String::from_utf8_lossy(&pending));
        }
    }
    texts
}

/// Centiseconds (whisper's unit) to a duration; negative values become zero.
pub(crate) fn centis(cs: i64) -> Duration {
    Duration::from_millis(u64::try_from(cs).unwrap_or(0).saturating_mul(10))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(ms: u64) -> Duration {
        Duration::from_millis(ms)
    }

    fn token(text: &str, start: u64, end: u64) -> Token {
        Token {
            id: 1,
            text: text.to_owned(),
            bytes: text.as_bytes().to_vec(),
            p: 1.0,
            plog: 0.0,
            start: ms(start),
            end: ms(end),
            special: false,
        }
    }

    #[test]
    fn a_character_split_across_tokens_is_decoded_whole() {
        // "你好" is E4 BD A0 E5 A5 BD; whisper's tokens may cut inside a character.
        let bytes: [&[u8]; 3] = [b" \xE4\xBD", b"\xA0\xE5", b"\xA5\xBD!"];
        assert_eq!(token_texts(bytes.into_iter()), [" ", "你", "好!"]);
        // Bytes that are no character, and an unfinished one at the end, are replaced.
        let bytes: [&[u8]; 2] = [b"a\xFFb", b"\xE4\xBD"];
        assert_eq!(token_texts(bytes.into_iter()), ["a\u{FFFD}b", "\u{FFFD}"]);
    }

    #[test]
    fn chinese_words_are_characters_and_english_words_are_spaced() {
        let segment = Segment {
            start: ms(0),
            end: ms(2000),
            text: "我们好。 Hello world".into(),
            no_speech_probability: 0.0,
            speaker_turn_next: false,
            tokens: vec![
                token("", 0, 100),
                token("我们", 100, 500),
                token("好。", 500, 900),
                token(" Hel", 1000, 1200),
                token("lo", 1200, 1400),
                token(" world", 1500, 2000),
            ],
        };
        let t = Transcript::assemble(
            vec![segment],
            Spoken {
                code: "zh".into(),
                probability: Some(0.9),
            },
            Backend::Cpu,
        );
        let words: Vec<(String, u128, u128)> = t
            .words()
            .into_iter()
            .map(|w| (w.text, w.start.as_millis(), w.end.as_millis()))
            .collect();
        assert_eq!(
            words,
            [
                ("我".into(), 0, 250),
                ("们".into(), 250, 500),
                ("好".into(), 500, 700),
                ("Hello".into(), 1000, 1400),
                ("world".into(), 1500, 2000),
            ]
        );
        assert_eq!(t.language_probability, Some(0.9));
    }
}
