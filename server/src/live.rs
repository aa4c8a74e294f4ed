//! `GET /v1/live`: live transcription over a WebSocket, a sliding window over the Recognizer.
//!
//! The protocol (documented in docs/live.md), chosen over OpenAI's `/v1/realtime` because that
//! one is a session protocol for its conversational models (sessions, conversation items,
//! response events, base64 audio in JSON) of which a transcriber would use a corner, while a
//! browser or a script needs four messages:
//!
//! - client → server: binary frames of 16 kHz mono PCM, signed 16-bit little-endian (an even
//!   number of bytes, at most [`MAX_FRAME_BYTES`]); optionally first a text frame
//!   `{"type": "start", "language": "en"}`; a text frame `{"type": "stop"}` to finish.
//! - server → client: `{"type": "partial", "text"}` while an utterance goes on (about every
//!   [`PARTIAL_EVERY`] s of new audio), `{"type": "final", "text", "start", "end", "language",
//!   "language_probability"}` when it ends (a pause of [`PAUSE`] s, [`MAX_UTTERANCE`] s of
//!   speech, or stop; times in seconds of the stream; the language's code, and the probability
//!   of its detection, `null` when it was not detected), `{"type": "done"}` after stop, then a
//!   normal close. Without a language (or with `auto`), each final detects it until one is
//!   detected with a probability of at least [`CONFIDENT`]: that language is then kept for the
//!   rest of the connection. Bad input gets
//!   `{"type": "error", "message"}` and a close with code 1007 (bad audio), 1003 (a text frame
//!   that is not one of the two, or a language the model cannot take: the recognizer's own
//!   check, at the start) or 1009 (a frame over the size limit).
//!
//! Memory per connection is bounded: the current utterance is at most [`MAX_UTTERANCE`] s plus
//! one frame (its final is forced there as the audio arrives, however fast it comes), silence
//! before speech is not kept beyond [`PAUSE`] s, and one recognition runs at a time per
//! connection (frames wait in the socket meanwhile). Connections are limited by
//! `server.max_live_connections` (one more is answered 503), their time by
//! `server.live_max_session_seconds`, and a connection that sends no audio for
//! `server.live_idle_seconds` is closed (pings and empty frames do not count as audio). A close
//! is sent, then the client's messages are read until its own close (at most
//! [`CLOSE_GRACE`](crate::turns::CLOSE_GRACE)), so that the client sees the code, not a reset.
//!
//! [`PARTIAL_EVERY`]: crate::turns::PARTIAL_EVERY
//! [`MAX_UTTERANCE`]: crate::turns::MAX_UTTERANCE

use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{close_code, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::response::Response;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use whisper_steady::audio::WHISPER_SAMPLE_RATE;
use whisper_steady::recognizer::{
    fitted_audio_ctx, RecognizeError, RecognizeOptions, Recognizer, Transcript,
};

use crate::auth::Caller;
use crate::error::{ApiError, Style};
use crate::models::Lease;
use crate::pipeline::recognizer_error;
use crate::turns::{close, live_slot, samples, Stream, Turns, QUIET_OVER_FLOOR};
use crate::AppState;

/// The largest binary frame: one second of audio.
pub const MAX_FRAME_BYTES: usize = 2 * WHISPER_SAMPLE_RATE as usize;
/// Messages read ahead of the recognitions (at most this many seconds of audio).
const QUEUED_FRAMES: usize = 64;
/// Seconds of quiet after speech that end an utterance (and kept before speech).
const PAUSE: f64 = 0.6;

/// The probability of a detected language from which a connection keeps it (for its partials
/// and the utterances after): whisper base gave 0.9 and more on clear speech in its languages,
/// and below 0.6 where it hesitated between two (docs/languages.md).
pub const CONFIDENT: f32 = 0.8;

/// How `/v1/live` finds turns.
const LIVE_TURNS: Turns = Turns {
    silence: samples(PAUSE),
    prefix: samples(PAUSE),
    over_floor: QUIET_OVER_FLOOR,
};

/// `GET /v1/live`: upgrades to a WebSocket while a connection is free.
pub(crate) async fn live(
    State(state): State<Arc<AppState>>,
    caller: Option<axum::Extension<Caller>>,
    query: Result<Query<LiveQuery>, QueryRejection>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    // The caller (its key's concurrency slot included) stays with the session.
    let caller = caller.map(|axum::Extension(c)| c);
    let ws = ws.map_err(|e| ApiError::from(e).style(Style::OpenAi))?;
    let Query(query) = query.map_err(|e| ApiError::from(e).style(Style::OpenAi))?;
    let permit = live_slot(&state)?;
    // The model (`?model=`, default: the default model), kept loaded while the session lasts.
    let lease = state
        .lease(query.model.as_deref())
        .await
        .map_err(|e| ApiError::from(e).style(Style::OpenAi))?;
    // A browser that sent its key as a subprotocol also offers `live`, which is selected
    // (a browser fails a handshake whose offered protocols are all left unanswered).
    Ok(ws
        .max_message_size(MAX_FRAME_BYTES + 1024)
        .protocols(["live"])
        .on_upgrade(move |socket| async move {
            session(state, socket, caller, &lease).await;
            drop(permit);
        }))
}

/// `/v1/live`'s query.
#[derive(Debug, serde::Deserialize)]
pub(crate) struct LiveQuery {
    /// The model (a name or alias of `/v1/models`).
    model: Option<String>,
}

/// Why a session ends early: a close code and what the client is told.
struct Refusal {
    code: u16,
    message: String,
}

type Sender = futures_util::stream::SplitSink<WebSocket, Message>;

async fn send(socket: &mut Sender, value: Value) -> bool {
    socket
        .send(Message::Text(value.to_string().into()))
        .await
        .is_ok()
}

/// The options of a stream's recognitions: its language, greedy decoding.
fn stream_options(state: &AppState, language: &Option<String>) -> RecognizeOptions {
    let mut options = RecognizeOptions::new();
    options.language = language.clone();
    options.beam_size = Some(1);
    options.deadline = Some(state.config.request_timeout());
    options
}

/// A recognition refused or failed: the client's mistake closes with 1007 (the audio) or 1003
/// (an option), anything else with 1011.
fn recognition_refusal(recognizer: &Recognizer, e: RecognizeError) -> Refusal {
    let code = match e {
        RecognizeError::InvalidAudio(_) => close_code::INVALID,
        RecognizeError::InvalidOptions(_) => close_code::UNSUPPORTED,
        _ => close_code::ERROR,
    };
    Refusal {
        code,
        message: recognizer_error(recognizer, e, Style::OpenAi).message,
    }
}

/// Transcribes `audio`; whisper needs a little context, so very short audio is padded.
async fn transcribe(
    state: &Arc<AppState>,
    recognizer: &Recognizer,
    audio: Vec<f32>,
    language: &Option<String>,
    fitted: bool,
) -> Result<Transcript, Refusal> {
    let mut audio = audio;
    if audio.len() < samples(1.0) {
        audio.resize(samples(1.0), 0.0);
    }
    let mut options = stream_options(state, language);
    if fitted {
        // Partials: the window fitted to the audio, about twice as fast (the final decodes
        // with whisper's full window).
        let n_audio_ctx = recognizer.context().n_audio_ctx().max(0) as u32;
        options.audio_ctx = fitted_audio_ctx(audio.len(), n_audio_ctx);
    }
    let ticket = recognizer
        .submit(audio, options)
        .map_err(|e| recognition_refusal(recognizer, e))?;
    ticket.await.map_err(|e| recognition_refusal(recognizer, e))
}

/// Sends the final of the current utterance (nothing when it holds no speech); a language
/// detected with a probability of at least [`CONFIDENT`] becomes the connection's `language`.
async fn finish_utterance(
    state: &Arc<AppState>,
    recognizer: &Recognizer,
    socket: &mut Sender,
    stream: &mut Stream,
    language: &mut Option<String>,
    caller: Option<&Caller>,
) -> Result<bool, Refusal> {
    let speech = stream.speech;
    let (utterance, start) = stream.take();
    if !speech {
        return Ok(true);
    }
    let seconds = |n: usize| n as f64 / f64::from(WHISPER_SAMPLE_RATE);
    let end = start + utterance.len();
    // The key pays for what it had transcribed: each utterance once, at its final.
    state
        .auth
        .charge_audio(caller, seconds(utterance.len()), Style::OpenAi)
        .map_err(|e| Refusal {
            code: close_code::POLICY,
            message: e.message,
        })?;
    let t = transcribe(state, recognizer, utterance, language, false).await?;
    if t.no_speech {
        // The speech guard found none: no final, and no language learnt from it.
        return Ok(true);
    }
    if t.language_probability.is_some_and(|p| p >= CONFIDENT) {
        *language = Some(t.language.clone());
    }
    let message = json!({
        "type": "final",
        "text": t.text,
        "start": seconds(start),
        "end": seconds(end),
        "language": t.language,
        "language_probability": t.language_probability,
    });
    Ok(send(socket, message).await)
}

/// What one message from the client asks for.
enum Step {
    /// Audio was added (or nothing to do: a ping, a start).
    Go,
    /// Finish: the final of what is left, `done`, a normal close.
    Stop,
    /// The client is gone.
    Gone,
    /// Close with this code, after saying why.
    Refuse(Refusal),
}

/// Applies one message from the client (audio is only appended here; recognitions run once
/// every message waiting has been applied, so that they never lag behind the stream).
fn apply(
    state: &AppState,
    recognizer: &Recognizer,
    message: Result<Message, axum::Error>,
    stream: &mut Stream,
    language: &mut Option<String>,
    first: bool,
) -> Step {
    let refuse = |code, message: String| Step::Refuse(Refusal { code, message });
    let message = match message {
        Ok(message) => message,
        Err(e) => {
            let why = e.to_string().to_ascii_lowercase();
            return if why.contains("too long")
                || why.contains("size")
                || why.contains("space limit")
            {
                refuse(
                    close_code::SIZE,
                    format!("a frame is over the limit of {MAX_FRAME_BYTES} bytes"),
                )
            } else {
                Step::Gone
            };
        }
    };
    match message {
        Message::Binary(pcm) if pcm.len() % 2 != 0 || pcm.len() > MAX_FRAME_BYTES => refuse(
            close_code::INVALID,
            format!(
                "audio frames are 16 kHz mono signed 16-bit little-endian PCM: an even number of \
                 bytes, at most {MAX_FRAME_BYTES} (got {})",
                pcm.len()
            ),
        ),
        Message::Binary(pcm) => {
            stream.push(&pcm);
            Step::Go
        }
        Message::Text(text) => {
            let parsed: Option<Value> = serde_json::from_str(text.as_str()).ok();
            match parsed.as_ref().and_then(|v| v["type"].as_str()) {
                Some("stop") => Step::Stop,
                Some("start") if first => {
                    // The recognizer's own rules ("EN", "auto", an English-only model), once.
                    let requested = parsed.as_ref().and_then(|v| v["language"].as_str());
                    let requested = requested.map(str::to_owned);
                    match recognizer.check_options(&stream_options(state, &requested)) {
                        Ok(()) => {
                            *language = requested;
                            Step::Go
                        }
                        Err(e) => refuse(close_code::UNSUPPORTED, e.to_string()),
                    }
                }
                _ => refuse(
                    close_code::UNSUPPORTED,
                    "text frames are {\"type\": \"start\", \"language\"} (first) or \
                     {\"type\": \"stop\"}; audio goes in binary frames"
                        .into(),
                ),
            }
        }
        Message::Close(_) => Step::Gone,
        Message::Ping(_) | Message::Pong(_) => Step::Go,
    }
}

/// One connection, until stop, close or bad input. A reader task takes the client's messages
/// off the socket as they come (at most [`QUEUED_FRAMES`] wait); this loop applies all that
/// wait, then runs at most one recognition: the final when an utterance ended, else a partial
/// when one is due.
async fn session(state: Arc<AppState>, socket: WebSocket, caller: Option<Caller>, lease: &Lease) {
    let recognizer = lease.recognizer();
    let caller = caller.as_ref();
    let (mut sender, mut receiver) = socket.split();
    let (tx, mut rx) = tokio::sync::mpsc::channel(QUEUED_FRAMES);
    let reader = tokio::spawn(async move {
        while let Some(message) = receiver.next().await {
            if tx.send(message).await.is_err() {
                break;
            }
        }
    });
    let mut stream = Stream::new(LIVE_TURNS);
    let mut language: Option<String> = None;
    let mut first = true;
    let idle = Duration::from_secs_f64(state.config.server.live_idle_seconds);
    let longest = Duration::from_secs_f64(state.config.server.live_max_session_seconds);
    let ends = tokio::time::Instant::now() + longest;
    let mut last_audio = tokio::time::Instant::now();
    let refusal = 'session: loop {
        let wait_until = ends.min(last_audio + idle);
        let Ok(next) = tokio::time::timeout_at(wait_until, rx.recv()).await else {
            let message = if wait_until == ends {
                format!(
                    "the session reached its limit of {} s (server.live_max_session_seconds); \
                     open a new one",
                    longest.as_secs_f64()
                )
            } else {
                format!(
                    "no audio for {} s (server.live_idle_seconds)",
                    idle.as_secs_f64()
                )
            };
            // What was said before the limit is not lost.
            if let Err(e) = finish_utterance(
                &state,
                recognizer,
                &mut sender,
                &mut stream,
                &mut language,
                caller,
            )
            .await
            {
                log::debug!("live: the last final failed: {}", e.message);
            }
            break Some(Refusal {
                code: close_code::POLICY,
                message,
            });
        };
        let Some(message) = next else { break None };
        let received = stream.received;
        let mut step = apply(
            &state,
            recognizer,
            message,
            &mut stream,
            &mut language,
            first,
        );
        first = false;
        // Apply what waits, but stop where a final is due: the utterance cap holds however
        // fast the audio comes.
        while matches!(step, Step::Go) && !stream.final_due() {
            match rx.try_recv() {
                Ok(message) => {
                    step = apply(
                        &state,
                        recognizer,
                        message,
                        &mut stream,
                        &mut language,
                        false,
                    )
                }
                Err(_) => break,
            }
        }
        if stream.received > received {
            last_audio = tokio::time::Instant::now();
        }
        let outcome = match step {
            Step::Gone => break None,
            Step::Refuse(refusal) => break Some(refusal),
            Step::Stop => {
                match finish_utterance(
                    &state,
                    recognizer,
                    &mut sender,
                    &mut stream,
                    &mut language,
                    caller,
                )
                .await
                {
                    Ok(true) => {
                        send(&mut sender, json!({"type": "done"})).await;
                        break Some(Refusal {
                            code: close_code::NORMAL,
                            message: String::new(),
                        });
                    }
                    other => other,
                }
            }
            Step::Go if stream.final_due() => {
                finish_utterance(
                    &state,
                    recognizer,
                    &mut sender,
                    &mut stream,
                    &mut language,
                    caller,
                )
                .await
            }
            Step::Go if stream.partial_due() => {
                stream.partial_at = stream.utterance.len();
                match transcribe(
                    &state,
                    recognizer,
                    stream.utterance.clone(),
                    &language,
                    true,
                )
                .await
                {
                    Ok(t) => {
                        Ok(send(&mut sender, json!({"type": "partial", "text": t.text})).await)
                    }
                    Err(refusal) => Err(refusal),
                }
            }
            Step::Go => Ok(true),
        };
        match outcome {
            Ok(true) => {}
            Ok(false) => break 'session None, // the client is gone
            Err(refusal) => break Some(refusal),
        }
    };
    if let Some(Refusal { code, message }) = refusal {
        if !message.is_empty() {
            send(&mut sender, json!({"type": "error", "message": message})).await;
        }
        close(&mut sender, &mut rx, code, &message).await;
    }
    reader.abort();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::turns::MAX_UTTERANCE;

    /// A tone whose loudness rises and falls three times a second, as syllables do.
    fn speech_like(i: usize) -> f32 {
        let t = i as f32 / whisper_steady::audio::WHISPER_SAMPLE_RATE as f32;
        let envelope = 0.2 + 0.8 * (std::f32::consts::PI * 3.0 * t).sin().abs();
        0.3 * envelope * (i as f32 * 0.05).sin()
    }

    fn pcm(samples: impl IntoIterator<Item = f32>) -> Vec<u8> {
        samples
            .into_iter()
            .flat_map(|s| ((s * 32767.0) as i16).to_le_bytes())
            .collect()
    }

    #[test]
    fn quiet_before_speech_is_not_kept_and_a_pause_ends_an_utterance() {
        let mut s = Stream::new(LIVE_TURNS);
        s.push(&pcm(std::iter::repeat_n(0.0, samples(5.0))));
        assert_eq!(s.utterance.len(), samples(PAUSE));
        assert_eq!(s.start, samples(5.0) - samples(PAUSE));
        assert!(!s.speech && !s.partial_due());
        let tone = (0..samples(1.5)).map(speech_like);
        s.push(&pcm(tone));
        assert!(s.speech && s.partial_due() && !s.utterance_ended());
        s.push(&pcm(std::iter::repeat_n(0.0, samples(PAUSE))));
        assert!(s.utterance_ended());
        let (utterance, start) = s.take();
        assert_eq!(start, samples(5.0) - samples(PAUSE));
        assert_eq!(
            utterance.len(),
            samples(PAUSE) + samples(1.5) + samples(PAUSE)
        );
        assert_eq!(s.start, samples(5.0) + samples(1.5) + samples(PAUSE));
        assert!(!s.speech && s.utterance.is_empty());
    }

    #[test]
    fn speech_is_cut_at_the_longest_utterance() {
        let mut s = Stream::new(LIVE_TURNS);
        let tone = (0..samples(MAX_UTTERANCE)).map(speech_like);
        s.push(&pcm(tone));
        assert!(s.too_long());
    }
}
