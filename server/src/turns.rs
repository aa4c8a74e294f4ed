//! What the live protocols (`/v1/live`, `/v1/realtime`) share: turns in a stream of speech
//! (audio comes in, an utterance ends at a pause, quiet under an adaptive noise floor, or at
//! [`MAX_UTTERANCE`] s, and quiet before speech is not kept beyond a prefix; bounded: the
//! utterance is at most [`MAX_UTTERANCE`] s plus what one push adds), the connection limit
//! ([`live_slot`]) and the close that lets the client see its code ([`close`]).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use axum::http::StatusCode;
use futures_util::SinkExt;
use tokio::sync::OwnedSemaphorePermit;
use whisper_steady::audio::WHISPER_SAMPLE_RATE;

use crate::error::{ApiError, Style};
use crate::AppState;

/// How long the client's messages are still read after the server's close, waiting for the
/// client's close.
pub(crate) const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// One of the `server.max_live_connections` live connections, or 503 with `Retry-After`.
pub(crate) fn live_slot(state: &Arc<AppState>) -> Result<OwnedSemaphorePermit, ApiError> {
    Arc::clone(&state.live_connections)
        .try_acquire_owned()
        .map_err(|_| {
            let mut e = ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "all {} live connections are in use (server.max_live_connections); try \
                     again later",
                    state.config.server.max_live_connections
                ),
            )
            .style(Style::OpenAi);
            e.retry_after = Some(5);
            e
        })
}

/// Sends a close frame with `code` and `reason` (cut to 120 characters), then reads the
/// client's messages from `rx` until its own close (at most [`CLOSE_GRACE`]): closing with its
/// data unread would reset the connection, and the client would see 1006 instead of the code.
pub(crate) async fn close(
    sender: &mut futures_util::stream::SplitSink<WebSocket, Message>,
    rx: &mut tokio::sync::mpsc::Receiver<Result<Message, axum::Error>>,
    code: u16,
    reason: &str,
) {
    let reason: String = reason.chars().take(120).collect();
    let frame = CloseFrame {
        code,
        reason: reason.into(),
    };
    if sender.send(Message::Close(Some(frame))).await.is_ok() {
        let _ = tokio::time::timeout(CLOSE_GRACE, async {
            while let Some(Ok(message)) = rx.recv().await {
                if matches!(message, Message::Close(_)) {
                    break;
                }
            }
        })
        .await;
    }
}

/// Seconds of new audio between two partial results.
pub const PARTIAL_EVERY: f64 = 1.0;
/// The longest utterance, in seconds: its final is forced there (under whisper's 30 s window).
pub const MAX_UTTERANCE: f64 = 25.0;

/// How turns are found.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Turns {
    /// Quiet samples after speech that end an utterance.
    pub(crate) silence: usize,
    /// Quiet samples kept before speech.
    pub(crate) prefix: usize,
    /// A 20 ms frame is quiet under this many times the noise floor.
    pub(crate) over_floor: f32,
}

/// 20 ms, the unit of the quiet detector.
const FRAME: usize = WHISPER_SAMPLE_RATE as usize / 50;
/// A 20 ms frame is quiet when its RMS is under this many times the noise floor: the 10th
/// percentile of the last [`FLOOR_FRAMES`] frames' RMS. Chosen on jfk.wav, whose floor is
/// about 0.008 and whose pauses between phrases stay under 0.02 (found: the pauses ending at
/// 2.7, 4.9 and 8.1 s); a fixed -40 dBFS found none of them, nor did a floor that only
/// followed the quietest frame.
pub(crate) const QUIET_OVER_FLOOR: f32 = 2.5;
/// The frames the noise floor is taken over: 3 s.
const FLOOR_FRAMES: usize = 150;
/// The lowest quiet threshold (about -46 dBFS), for digital silence.
const QUIET_MIN: f32 = 0.005;

pub(crate) const fn samples(seconds: f64) -> usize {
    (seconds * WHISPER_SAMPLE_RATE as f64) as usize
}

/// The audio of one connection and where the current utterance stands.
pub(crate) struct Stream {
    /// How turns are found.
    turns: Turns,
    /// The current utterance (with up to `turns.prefix` samples of quiet before it).
    pub(crate) utterance: Vec<f32>,
    /// Where `utterance` starts, in samples of the stream.
    pub(crate) start: usize,
    /// Whether `utterance` holds speech.
    pub(crate) speech: bool,
    /// Quiet samples at its end.
    quiet: usize,
    /// `utterance.len()` at the last partial.
    pub(crate) partial_at: usize,
    /// Samples of the current 20 ms frame not yet judged, and their sum of squares.
    pending: usize,
    pending_energy: f32,
    /// The RMS of the last [`FLOOR_FRAMES`] frames, for the noise floor.
    recent: std::collections::VecDeque<f32>,
    /// Samples received on the connection.
    pub(crate) received: usize,
}

impl Stream {
    /// An empty stream that finds turns as `turns` says.
    pub(crate) fn new(turns: Turns) -> Stream {
        Stream {
            turns,
            utterance: Vec::new(),
            start: 0,
            speech: false,
            quiet: 0,
            partial_at: 0,
            pending: 0,
            pending_energy: 0.0,
            recent: std::collections::VecDeque::new(),
            received: 0,
        }
    }

    /// Appends 16-bit PCM (little-endian).
    pub(crate) fn push(&mut self, pcm: &[u8]) {
        self.push_samples(&whisper_steady::audio::pcm16_to_f32(pcm));
    }

    /// Appends 16 kHz samples.
    pub(crate) fn push_samples(&mut self, samples: &[f32]) {
        self.received += samples.len();
        for &s in samples {
            self.utterance.push(s);
            self.pending += 1;
            self.pending_energy += s * s;
            if self.pending == FRAME {
                let rms = (self.pending_energy / FRAME as f32).sqrt();
                if self.recent.len() == FLOOR_FRAMES {
                    self.recent.pop_front();
                }
                self.recent.push_back(rms);
                let mut sorted: Vec<f32> = self.recent.iter().copied().collect();
                sorted.sort_by(f32::total_cmp);
                let floor = sorted[sorted.len() / 10];
                if rms < (floor * self.turns.over_floor).max(QUIET_MIN) {
                    self.quiet += FRAME;
                } else {
                    self.speech = true;
                    self.quiet = 0;
                }
                self.pending = 0;
                self.pending_energy = 0.0;
            }
        }
        if !self.speech && self.utterance.len() > self.turns.prefix {
            // Nothing said yet: keep only the prefix.
            let drop = self.utterance.len() - self.turns.prefix;
            self.utterance.drain(..drop);
            self.start += drop;
            self.partial_at = 0;
        }
    }

    /// Whether a pause of `turns.silence` ended an utterance with speech.
    pub(crate) fn utterance_ended(&self) -> bool {
        self.speech && self.quiet >= self.turns.silence
    }

    /// Whether the utterance reached [`MAX_UTTERANCE`].
    pub(crate) fn too_long(&self) -> bool {
        self.utterance.len() >= samples(MAX_UTTERANCE)
    }

    /// Whether the utterance must be finished before more audio is added.
    pub(crate) fn final_due(&self) -> bool {
        self.utterance_ended() || self.too_long()
    }

    /// Whether a partial is due ([`PARTIAL_EVERY`] s of new speech).
    pub(crate) fn partial_due(&self) -> bool {
        self.speech && self.utterance.len() - self.partial_at >= samples(PARTIAL_EVERY)
    }

    /// Takes the utterance for its final; the stream goes on after it.
    pub(crate) fn take(&mut self) -> (Vec<f32>, usize) {
        let start = self.start;
        let utterance = std::mem::take(&mut self.utterance);
        self.start += utterance.len();
        self.speech = false;
        self.quiet = 0;
        self.partial_at = 0;
        (utterance, start)
    }

    /// Drops the current utterance (a client's `clear`); the stream goes on after it.
    pub(crate) fn clear(&mut self) {
        let _ = self.take();
    }
}
