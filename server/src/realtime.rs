//! `GET /v1/realtime`: OpenAI's Realtime API in transcription mode, so that the official SDKs
//! (`client.realtime.connect`), agent frameworks and browser code written for OpenAI can stream
//! audio to this server.
//!
//! A transcription session as OpenAI documents it (GA): the client sends `session.update` with
//! `session.type = "transcription"` (or the beta `transcription_session.update`), then
//! `input_audio_buffer.append` {`audio`: base64} events; the server finds turns
//! (`turn_detection` `server_vad`, the default) or waits for `input_audio_buffer.commit`
//! (`turn_detection: null`), and answers each turn with `input_audio_buffer.speech_started` /
//! `speech_stopped` (with VAD), `input_audio_buffer.committed`, `conversation.item.added`, a
//! `conversation.item.input_audio_transcription.delta` per segment as whisper decodes it, and
//! `…completed` with the transcript. Audio: `audio/pcm` (16-bit little-endian mono, 24 kHz as
//! OpenAI has it; other rates from 8 to 48 kHz are accepted too), `audio/pcmu` and
//! `audio/pcma` (G.711, 8 kHz). Bad events get an `error` event in OpenAI's shape; the socket
//! stays open. Turns, limits and the reader task are those of `/v1/live` ([`crate::turns`]).
//! Not supported: conversations and responses (`session.type = "realtime"`), WebRTC,
//! ephemeral client secrets.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{close_code, Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::response::Response;
use axum::Extension;
use base64::Engine as _;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use whisper_steady::audio::{StreamResampler, WHISPER_SAMPLE_RATE};
use whisper_steady::recognizer::{DecodedSegment, RecognizeOptions};

use crate::auth::Caller;
use crate::config::DefaultParams;
use crate::error::{ApiError, Style};
use crate::models::ModelError;
use crate::pipeline::recognizer_error;
use crate::turns::{close, live_slot, samples, Stream, Turns, QUIET_OVER_FLOOR};
use crate::AppState;

/// Messages read ahead of the recognitions.
const QUEUED_MESSAGES: usize = 64;
/// The largest message: a second of 48 kHz audio in base64, with room for JSON around it.
const MAX_MESSAGE_BYTES: usize = 256 * 1024;

/// The input audio's encoding.
#[derive(Debug, Clone, Copy, PartialEq)]
enum InputFormat {
    /// 16-bit signed little-endian mono PCM at this rate.
    Pcm(u32),
    /// G.711 µ-law, 8 kHz.
    Pcmu,
    /// G.711 A-law, 8 kHz.
    Pcma,
}

impl InputFormat {
    fn rate(self) -> u32 {
        match self {
            InputFormat::Pcm(rate) => rate,
            InputFormat::Pcmu | InputFormat::Pcma => 8_000,
        }
    }

    /// The GA `format` object.
    fn to_json(self) -> Value {
        match self {
            InputFormat::Pcm(rate) => json!({"type": "audio/pcm", "rate": rate}),
            InputFormat::Pcmu => json!({"type": "audio/pcmu"}),
            InputFormat::Pcma => json!({"type": "audio/pcma"}),
        }
    }

    /// The beta name.
    fn beta_name(self) -> &'static str {
        match self {
            InputFormat::Pcm(_) => "pcm16",
            InputFormat::Pcmu => "g711_ulaw",
            InputFormat::Pcma => "g711_alaw",
        }
    }

    /// Decodes bytes to samples at [`rate`](Self::rate).
    fn decode(self, bytes: &[u8]) -> Result<Vec<f32>, String> {
        match self {
            InputFormat::Pcm(_) if bytes.len() % 2 != 0 => Err(format!(
                "audio/pcm is 16-bit: an even number of bytes (got {})",
                bytes.len()
            )),
            InputFormat::Pcm(_) => Ok(whisper_steady::audio::pcm16_to_f32(bytes)),
            InputFormat::Pcmu => Ok(bytes.iter().map(|&b| ulaw(b)).collect()),
            InputFormat::Pcma => Ok(bytes.iter().map(|&b| alaw(b)).collect()),
        }
    }
}

/// G.711 µ-law to a sample in [-1, 1].
fn ulaw(byte: u8) -> f32 {
    let u = !byte;
    let exponent = (u >> 4) & 0x07;
    let mantissa = i32::from(u & 0x0f);
    let magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84;
    let value = if u & 0x80 != 0 { -magnitude } else { magnitude };
    value as f32 / 32_768.0
}

/// G.711 A-law to a sample in [-1, 1].
fn alaw(byte: u8) -> f32 {
    let a = byte ^ 0x55;
    let exponent = (a >> 4) & 0x07;
    let mantissa = i32::from(a & 0x0f);
    let magnitude = match exponent {
        0 => (mantissa << 4) + 8,
        e => ((mantissa << 4) + 0x108) << (e - 1),
    };
    let value = if a & 0x80 != 0 { magnitude } else { -magnitude };
    value as f32 / 32_768.0
}

/// `server_vad`'s settings.
#[derive(Debug, Clone, Copy, PartialEq)]
struct ServerVad {
    threshold: f32,
    prefix_padding_ms: u32,
    silence_duration_ms: u32,
}

impl ServerVad {
    const DEFAULT: ServerVad = ServerVad {
        threshold: 0.5,
        prefix_padding_ms: 300,
        silence_duration_ms: 500,
    };

    /// The turn finder for these settings: the threshold (0 to 1, 0.5 by default) scales how
    /// far over the noise floor a frame must be to count as speech (0.5: as `/v1/live`).
    fn turns(self) -> Turns {
        Turns {
            silence: samples(f64::from(self.silence_duration_ms) / 1000.0),
            prefix: samples(f64::from(self.prefix_padding_ms) / 1000.0),
            over_floor: QUIET_OVER_FLOOR * (0.5 + self.threshold),
        }
    }

    fn to_json(self) -> Value {
        json!({
            "type": "server_vad",
            "threshold": self.threshold,
            "prefix_padding_ms": self.prefix_padding_ms,
            "silence_duration_ms": self.silence_duration_ms,
        })
    }
}

/// A transcription session's settings.
#[derive(Debug, Clone, PartialEq)]
struct Session {
    id: String,
    format: InputFormat,
    model: String,
    language: Option<String>,
    prompt: Option<String>,
    /// `None`: the client commits (`turn_detection: null`).
    vad: Option<ServerVad>,
}

impl Session {
    fn new(id: String) -> Session {
        Session {
            id,
            format: InputFormat::Pcm(24_000),
            model: "whisper-1".into(),
            language: None,
            prompt: None,
            vad: Some(ServerVad::DEFAULT),
        }
    }

    fn transcription_json(&self) -> Value {
        json!({"model": self.model, "language": self.language, "prompt": self.prompt.clone().unwrap_or_default()})
    }

    /// How turns are found: with VAD as its settings say; without, the whole buffer is kept
    /// until the client commits (or it reaches the longest utterance).
    fn turns(&self) -> Turns {
        match self.vad {
            Some(vad) => vad.turns(),
            None => Turns {
                silence: usize::MAX,
                prefix: samples(crate::turns::MAX_UTTERANCE),
                over_floor: QUIET_OVER_FLOOR,
            },
        }
    }

    fn vad_json(&self) -> Value {
        self.vad.map_or(Value::Null, ServerVad::to_json)
    }

    /// The GA session object.
    fn to_json(&self) -> Value {
        json!({
            "type": "transcription",
            "object": "realtime.transcription_session",
            "id": self.id,
            "audio": {"input": {
                "format": self.format.to_json(),
                "transcription": self.transcription_json(),
                "turn_detection": self.vad_json(),
                "noise_reduction": null,
            }},
            "include": null,
        })
    }

    /// The beta session object.
    fn to_beta_json(&self) -> Value {
        json!({
            "id": self.id,
            "object": "realtime.transcription_session",
            "input_audio_format": self.format.beta_name(),
            "input_audio_transcription": self.transcription_json(),
            "turn_detection": self.vad_json(),
            "input_audio_noise_reduction": null,
        })
    }

    /// Applies a GA `session` object; unknown keys are ignored, wrong values refused.
    fn update(&mut self, session: &Value) -> Result<(), Refusal> {
        if let Some(kind) = session.get("type").and_then(Value::as_str) {
            if kind != "transcription" {
                return Err(Refusal::new(
                    "invalid_value",
                    format!(
                        "session.type {kind:?}: this server runs transcription sessions only \
                         (\"transcription\"); conversations and responses are not supported"
                    ),
                    Some("session.type"),
                ));
            }
        }
        let input = &session["audio"]["input"];
        if let Some(format) = input.get("format").filter(|f| !f.is_null()) {
            self.format = parse_format(format)?;
        }
        if let Some(t) = input.get("transcription").filter(|t| !t.is_null()) {
            self.transcription(t)?;
        }
        if let Some(vad) = input.get("turn_detection") {
            self.vad = parse_vad(vad)?;
        }
        Ok(())
    }

    /// Applies a beta `transcription_session.update` `session` object.
    fn update_beta(&mut self, session: &Value) -> Result<(), Refusal> {
        if let Some(name) = session.get("input_audio_format").and_then(Value::as_str) {
            self.format = match name {
                "pcm16" => InputFormat::Pcm(24_000),
                "g711_ulaw" => InputFormat::Pcmu,
                "g711_alaw" => InputFormat::Pcma,
                other => {
                    return Err(Refusal::new(
                        "invalid_value",
                        format!("input_audio_format {other:?}: one of pcm16, g711_ulaw, g711_alaw"),
                        Some("session.input_audio_format"),
                    ))
                }
            };
        }
        if let Some(t) = session
            .get("input_audio_transcription")
            .filter(|t| !t.is_null())
        {
            self.transcription(t)?;
        }
        if let Some(vad) = session.get("turn_detection") {
            self.vad = parse_vad(vad)?;
        }
        Ok(())
    }

    fn transcription(&mut self, t: &Value) -> Result<(), Refusal> {
        if let Some(model) = t.get("model").and_then(Value::as_str) {
            self.model = model.to_owned();
        }
        match t.get("language") {
            None => {}
            Some(Value::Null) => self.language = None,
            Some(Value::String(code)) if code.trim().is_empty() => self.language = None,
            Some(Value::String(code)) => self.language = Some(code.trim().to_owned()),
            Some(_) => {
                return Err(Refusal::new(
                    "invalid_value",
                    "transcription.language is a language code such as \"en\"".into(),
                    Some("session.audio.input.transcription.language"),
                ))
            }
        }
        if let Some(prompt) = t.get("prompt") {
            self.prompt = prompt.as_str().map(str::to_owned).filter(|p| !p.is_empty());
        }
        Ok(())
    }

    /// The recognizer's options for a turn, on a model with `defaults`.
    fn options(&self, state: &AppState, defaults: &DefaultParams) -> RecognizeOptions {
        state.options(
            defaults,
            self.language.as_deref(),
            None,
            Some(1),
            None,
            self.prompt.clone(),
        )
    }
}

fn parse_format(format: &Value) -> Result<InputFormat, Refusal> {
    let bad = |message: String| {
        Refusal::new("invalid_value", message, Some("session.audio.input.format"))
    };
    match format.get("type").and_then(Value::as_str) {
        Some("audio/pcm") => {
            let rate = format.get("rate").and_then(Value::as_u64).unwrap_or(24_000);
            if !(8_000..=48_000).contains(&rate) {
                return Err(bad(format!(
                    "audio/pcm at {rate} Hz: OpenAI's rate is 24000 (8000 to 48000 accepted)"
                )));
            }
            Ok(InputFormat::Pcm(rate as u32))
        }
        Some("audio/pcmu") => Ok(InputFormat::Pcmu),
        Some("audio/pcma") => Ok(InputFormat::Pcma),
        other => Err(bad(format!(
            "format type {other:?}: one of audio/pcm, audio/pcmu, audio/pcma"
        ))),
    }
}

fn parse_vad(vad: &Value) -> Result<Option<ServerVad>, Refusal> {
    if vad.is_null() {
        return Ok(None);
    }
    let bad = |message: String| Refusal::new("invalid_value", message, Some("turn_detection"));
    match vad.get("type").and_then(Value::as_str) {
        Some("server_vad") | None => {}
        Some("semantic_vad") => {
            return Err(bad(
                "semantic_vad is not supported: use server_vad or null".into()
            ))
        }
        Some(other) => return Err(bad(format!("turn_detection type {other:?}"))),
    }
    let mut settings = ServerVad::DEFAULT;
    if let Some(t) = vad.get("threshold").and_then(Value::as_f64) {
        if !(0.0..=1.0).contains(&t) {
            return Err(bad(format!("threshold {t}: from 0 to 1")));
        }
        settings.threshold = t as f32;
    }
    let ms = |key: &str, max: u64| -> Result<Option<u32>, Refusal> {
        match vad.get(key).and_then(Value::as_u64) {
            Some(v) if v <= max => Ok(Some(v as u32)),
            Some(v) => Err(bad(format!("{key} {v}: at most {max}"))),
            None => Ok(None),
        }
    };
    if let Some(v) = ms("prefix_padding_ms", 2_000)? {
        settings.prefix_padding_ms = v;
    }
    if let Some(v) = ms("silence_duration_ms", 10_000)? {
        settings.silence_duration_ms = v.max(100);
    }
    Ok(Some(settings))
}

/// An `error` event's `error`.
#[derive(Debug)]
struct Refusal {
    code: &'static str,
    message: String,
    param: Option<&'static str>,
}

impl Refusal {
    fn new(code: &'static str, message: String, param: Option<&'static str>) -> Refusal {
        Refusal {
            code,
            message,
            param,
        }
    }
}

/// `GET /v1/realtime` (also `?intent=transcription`, `?model=...`): upgrades while a live
/// connection is free (the limit `server.max_live_connections` is shared with `/v1/live`).
pub(crate) async fn realtime(
    State(state): State<Arc<AppState>>,
    caller: Option<Extension<Caller>>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let ws = ws.map_err(|e| ApiError::from(e).style(Style::OpenAi))?;
    let permit = live_slot(&state)?;
    let caller = caller.map(|Extension(c)| c);
    // Browsers send ["realtime", "openai-insecure-api-key.KEY"]: `realtime` is answered.
    Ok(ws
        .max_message_size(MAX_MESSAGE_BYTES)
        .protocols(["realtime"])
        .on_upgrade(move |socket| async move {
            Connection::new(state, socket, caller).run().await;
            drop(permit);
        }))
}

type Sender = futures_util::stream::SplitSink<WebSocket, Message>;

/// One connection's state.
struct Connection {
    state: Arc<AppState>,
    sender: Option<Sender>,
    socket: Option<WebSocket>,
    caller: Option<Caller>,
    session: Session,
    /// Whether the client speaks the beta protocol (`transcription_session.update`).
    beta: bool,
    stream: Stream,
    resampler: StreamResampler,
    next_id: u64,
    /// The item the current turn will be, once speech started (or audio came, without VAD).
    item: Option<String>,
    previous_item: Option<String>,
    /// Whether `speech_started` was sent for the current turn.
    started: bool,
}

impl Connection {
    fn new(state: Arc<AppState>, socket: WebSocket, caller: Option<Caller>) -> Connection {
        let session = Session::new("sess_0".into());
        let turns = session.turns();
        Connection {
            resampler: StreamResampler::new(session.format.rate(), WHISPER_SAMPLE_RATE),
            stream: Stream::new(turns),
            state,
            sender: None,
            socket: Some(socket),
            caller,
            session,
            beta: false,
            next_id: 1,
            item: None,
            previous_item: None,
            started: false,
        }
    }

    fn id(&mut self, prefix: &str) -> String {
        let id = format!("{prefix}_{:012}", self.next_id);
        self.next_id += 1;
        id
    }

    /// Sends a server event (an `event_id` is added); false when the client is gone.
    async fn send(&mut self, mut event: Value) -> bool {
        event["event_id"] = json!(self.id("event"));
        let Some(sender) = self.sender.as_mut() else {
            return false;
        };
        sender
            .send(Message::Text(event.to_string().into()))
            .await
            .is_ok()
    }

    async fn error(&mut self, refusal: Refusal, client_event: Option<String>) -> bool {
        self.send(json!({
            "type": "error",
            "error": {
                "type": "invalid_request_error",
                "code": refusal.code,
                "message": refusal.message,
                "param": refusal.param,
                "event_id": client_event,
            },
        }))
        .await
    }

    async fn run(mut self) {
        let socket = self.socket.take().expect("the socket");
        let (sender, mut receiver) = socket.split();
        self.sender = Some(sender);
        let (tx, mut rx) = tokio::sync::mpsc::channel(QUEUED_MESSAGES);
        let reader = tokio::spawn(async move {
            while let Some(message) = receiver.next().await {
                if tx.send(message).await.is_err() {
                    break;
                }
            }
        });
        self.session.id = self.id("sess");
        let created = json!({"type": "session.created", "session": self.session.to_json()});
        if !self.send(created).await {
            reader.abort();
            return;
        }
        let config = &self.state.config.server;
        let idle = Duration::from_secs_f64(config.live_idle_seconds);
        let longest = Duration::from_secs_f64(config.live_max_session_seconds);
        let ends = tokio::time::Instant::now() + longest;
        let mut last_audio = tokio::time::Instant::now();
        let ending: Option<(u16, String)> = loop {
            let wait_until = ends.min(last_audio + idle);
            let Ok(next) = tokio::time::timeout_at(wait_until, rx.recv()).await else {
                let message = if wait_until == ends {
                    format!(
                        "the session reached its limit of {} s (server.live_max_session_seconds)",
                        longest.as_secs_f64()
                    )
                } else {
                    format!(
                        "no audio for {} s (server.live_idle_seconds)",
                        idle.as_secs_f64()
                    )
                };
                // What was said before the limit is not lost.
                self.commit(false).await;
                let refusal = Refusal::new("session_expired", message.clone(), None);
                self.error(refusal, None).await;
                break Some((close_code::POLICY, message));
            };
            let message = match next {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => break None,
                Some(Ok(message)) => message,
            };
            let text = match message {
                Message::Text(text) => text,
                Message::Binary(_) => {
                    let refusal = Refusal::new(
                        "invalid_event",
                        "events are JSON text messages; audio goes base64-encoded in \
                         input_audio_buffer.append"
                            .into(),
                        None,
                    );
                    if !self.error(refusal, None).await {
                        break None;
                    }
                    continue;
                }
                Message::Ping(_) | Message::Pong(_) => continue,
                Message::Close(_) => break None,
            };
            let received = self.stream.received;
            if !self.event(text.as_str()).await {
                break None; // the client is gone
            }
            if self.stream.received > received {
                last_audio = tokio::time::Instant::now();
            }
        };
        if let (Some((code, message)), Some(sender)) = (ending, self.sender.as_mut()) {
            close(sender, &mut rx, code, &message).await;
        }
        reader.abort();
    }

    /// Handles one client event; false when the client is gone.
    async fn event(&mut self, text: &str) -> bool {
        let Ok(event) = serde_json::from_str::<Value>(text) else {
            let refusal = Refusal::new("invalid_json", "the event is not JSON".into(), None);
            return self.error(refusal, None).await;
        };
        let client_event = event
            .get("event_id")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let kind = event.get("type").and_then(Value::as_str).unwrap_or("");
        let outcome: Result<bool, Refusal> = match kind {
            "session.update" => {
                let update = self.session.update(&event["session"]);
                match update {
                    Ok(()) => {
                        self.reconfigure();
                        let session = self.session.to_json();
                        Ok(self
                            .send(json!({"type": "session.updated", "session": session}))
                            .await)
                    }
                    Err(e) => Err(e),
                }
            }
            "transcription_session.update" => {
                self.beta = true;
                match self.session.update_beta(&event["session"]) {
                    Ok(()) => {
                        self.reconfigure();
                        let session = self.session.to_beta_json();
                        Ok(self
                            .send(json!({"type": "transcription_session.updated", "session": session}))
                            .await)
                    }
                    Err(e) => Err(e),
                }
            }
            "input_audio_buffer.append" => self.append(&event).await,
            "input_audio_buffer.commit" => {
                let seconds = self.stream.utterance.len() as f64 / f64::from(WHISPER_SAMPLE_RATE);
                if seconds < 0.1 {
                    Err(Refusal::new(
                        "input_audio_buffer_commit_empty",
                        format!(
                            "buffer too small: expected at least 100 ms of audio, got {:.0} ms",
                            seconds * 1000.0
                        ),
                        None,
                    ))
                } else {
                    Ok(self.commit(true).await)
                }
            }
            "input_audio_buffer.clear" => {
                self.stream.clear();
                self.item = None;
                self.started = false;
                Ok(self
                    .send(json!({"type": "input_audio_buffer.cleared"}))
                    .await)
            }
            "" => Err(Refusal::new(
                "invalid_event",
                "the event has no \"type\"".into(),
                Some("type"),
            )),
            other
                if other.starts_with("response.")
                    || other.starts_with("conversation.")
                    || other == "output_audio_buffer.clear" =>
            {
                Err(Refusal::new(
                    "unsupported_event",
                    format!(
                        "{other}: this server runs transcription sessions only (no \
                         conversation, no responses)"
                    ),
                    Some("type"),
                ))
            }
            other => Err(Refusal::new(
                "invalid_event",
                format!("unknown event type {other:?}"),
                Some("type"),
            )),
        };
        match outcome {
            Ok(alive) => alive,
            Err(refusal) => self.error(refusal, client_event).await,
        }
    }

    /// After a session update: the turn finder and the resampler follow the new settings (a
    /// turn in progress is kept).
    fn reconfigure(&mut self) {
        let mut stream = Stream::new(self.session.turns());
        stream.push_samples(&std::mem::take(&mut self.stream.utterance));
        stream.received = self.stream.received;
        self.stream = stream;
        self.resampler = StreamResampler::new(self.session.format.rate(), WHISPER_SAMPLE_RATE);
    }

    async fn append(&mut self, event: &Value) -> Result<bool, Refusal> {
        let Some(audio) = event.get("audio").and_then(Value::as_str) else {
            return Err(Refusal::new(
                "invalid_value",
                "input_audio_buffer.append needs \"audio\": base64-encoded audio".into(),
                Some("audio"),
            ));
        };
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(audio)
            .map_err(|e| {
                Refusal::new(
                    "invalid_value",
                    format!("audio is not base64: {e}"),
                    Some("audio"),
                )
            })?;
        let samples = self
            .session
            .format
            .decode(&bytes)
            .map_err(|m| Refusal::new("invalid_value", m, Some("audio")))?;
        let converted = self.resampler.push(&samples);
        // Push in 20 ms steps so that a turn is found where it ends, however big the append.
        for piece in converted.chunks(samples_per(0.02)) {
            self.stream.push_samples(piece);
            if self.session.vad.is_some() {
                if self.stream.speech && !self.started {
                    self.started = true;
                    let item = self.id("item");
                    self.item = Some(item.clone());
                    let start_ms = self.stream.start as u64 * 1000 / u64::from(WHISPER_SAMPLE_RATE);
                    let started = json!({
                        "type": "input_audio_buffer.speech_started",
                        "audio_start_ms": start_ms,
                        "item_id": item,
                    });
                    if !self.send(started).await {
                        return Ok(false);
                    }
                }
                if self.stream.final_due() && !self.commit(false).await {
                    return Ok(false);
                }
            } else if self.stream.too_long() && !self.commit(true).await {
                // Without VAD the buffer is committed at the longest utterance.
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Commits the current turn and transcribes it: `speech_stopped` (with VAD), `committed`,
    /// `conversation.item.added`, deltas, `completed`. `manual`: the client asked (or the
    /// buffer is full), so even quiet audio is transcribed. False when the client is gone.
    async fn commit(&mut self, manual: bool) -> bool {
        let speech = self.stream.speech;
        let (audio, start) = self.stream.take();
        self.started = false;
        if audio.is_empty() || (!manual && !speech) {
            self.item = None;
            return true;
        }
        let item = match self.item.take() {
            Some(item) => item,
            None => self.id("item"),
        };
        let ms = |n: usize| n as u64 * 1000 / u64::from(WHISPER_SAMPLE_RATE);
        if self.session.vad.is_some() && speech {
            let stopped = json!({
                "type": "input_audio_buffer.speech_stopped",
                "audio_end_ms": ms(start + audio.len()),
                "item_id": item,
            });
            if !self.send(stopped).await {
                return false;
            }
        }
        let previous = self.previous_item.replace(item.clone());
        let committed = json!({
            "type": "input_audio_buffer.committed",
            "item_id": item,
            "previous_item_id": previous,
        });
        let added = json!({
            "type": "conversation.item.added",
            "previous_item_id": previous,
            "item": {
                "id": item, "object": "realtime.item", "type": "message", "role": "user",
                "status": "completed",
                "content": [{"type": "input_audio", "transcript": null}],
            },
        });
        if !self.send(committed).await || !self.send(added).await {
            return false;
        }
        let seconds = audio.len() as f64 / f64::from(WHISPER_SAMPLE_RATE);
        if let Err(e) = self
            .state
            .auth
            .charge_audio(self.caller.as_ref(), seconds, Style::OpenAi)
        {
            return self
                .transcription_failed(&item, "quota_exceeded", e.message)
                .await;
        }
        let mut audio = audio;
        if audio.len() < samples(1.0) {
            audio.resize(samples(1.0), 0.0); // whisper needs a little context
        }
        // The session's model (a name or alias of /v1/models), kept loaded for the turn.
        let lease = match self.state.lease(Some(&self.session.model)).await {
            Ok(lease) => lease,
            Err(e) => {
                let code = match e {
                    ModelError::Unknown { .. } => "model_not_found",
                    _ => "transcription_failed",
                };
                return self.transcription_failed(&item, code, e.to_string()).await;
            }
        };
        let options = self.session.options(&self.state, lease.defaults());
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<DecodedSegment>();
        let submitted = lease
            .recognizer()
            .submit_streaming(audio, options, move |s| {
                let _ = tx.send(s);
            });
        let ticket = match submitted {
            Ok(ticket) => ticket,
            Err(e) => {
                let e = recognizer_error(lease.recognizer(), e, Style::OpenAi);
                return self
                    .transcription_failed(&item, "transcription_failed", e.message)
                    .await;
            }
        };
        while let Some(segment) = rx.recv().await {
            let delta = if segment.index == 0 {
                segment.text.trim_start().to_owned()
            } else {
                segment.text
            };
            let event = json!({
                "type": "conversation.item.input_audio_transcription.delta",
                "item_id": item, "content_index": 0, "delta": delta,
            });
            if !self.send(event).await {
                return false;
            }
        }
        match ticket.await {
            Ok(t) => {
                let completed = json!({
                    "type": "conversation.item.input_audio_transcription.completed",
                    "item_id": item, "content_index": 0,
                    "transcript": t.text.trim(),
                    "usage": {"type": "duration", "seconds": seconds},
                });
                self.send(completed).await
            }
            Err(e) => {
                let e = recognizer_error(lease.recognizer(), e, Style::OpenAi);
                self.transcription_failed(&item, "transcription_failed", e.message)
                    .await
            }
        }
    }

    async fn transcription_failed(&mut self, item: &str, code: &str, message: String) -> bool {
        self.send(json!({
            "type": "conversation.item.input_audio_transcription.failed",
            "item_id": item, "content_index": 0,
            "error": {"type": "transcription_error", "code": code, "message": message, "param": null},
        }))
        .await
    }
}

/// Samples of 16 kHz audio in `seconds`.
fn samples_per(seconds: f64) -> usize {
    samples(seconds).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn g711_decodes_as_the_standard_tables() {
        // µ-law: 0xff and 0x7f are zero, 0x00 the largest negative, 0x80 the largest positive.
        assert_eq!(ulaw(0xff), 0.0);
        assert_eq!(ulaw(0x7f), 0.0);
        assert_eq!((ulaw(0x00) * 32_768.0) as i32, -32_124);
        assert_eq!((ulaw(0x80) * 32_768.0) as i32, 32_124);
        // A-law: 0xd5 is the smallest positive step (8), 0x55 the smallest negative.
        assert_eq!((alaw(0xd5) * 32_768.0) as i32, 8);
        assert_eq!((alaw(0x55) * 32_768.0) as i32, -8);
        assert_eq!((alaw(0xaa) * 32_768.0) as i32, 32_256);
        assert_eq!((alaw(0x2a) * 32_768.0) as i32, -32_256);
    }

    #[test]
    fn sessions_update_in_both_shapes_and_refuse_what_they_cannot_do() {
        let mut s = Session::new("sess_1".into());
        s.update(&json!({
            "type": "transcription",
            "audio": {"input": {
                "format": {"type": "audio/pcmu"},
                "transcription": {"model": "gpt-4o-transcribe", "language": "en", "prompt": "JFK"},
                "turn_detection": null,
            }},
        }))
        .unwrap();
        assert_eq!(s.format, InputFormat::Pcmu);
        assert_eq!(s.language.as_deref(), Some("en"));
        assert_eq!(s.prompt.as_deref(), Some("JFK"));
        assert_eq!(s.vad, None);
        assert_eq!(s.to_json()["audio"]["input"]["turn_detection"], Value::Null);
        let e = s.update(&json!({"type": "realtime"})).unwrap_err();
        assert!(
            e.message.contains("transcription sessions only"),
            "{}",
            e.message
        );
        let e = s
            .update(&json!({"audio": {"input": {"format": {"type": "audio/opus"}}}}))
            .unwrap_err();
        assert_eq!(e.param, Some("session.audio.input.format"));
        let mut b = Session::new("sess_2".into());
        b.update_beta(&json!({
            "input_audio_format": "g711_alaw",
            "input_audio_transcription": {"model": "whisper-1"},
            "turn_detection": {"type": "server_vad", "silence_duration_ms": 800},
        }))
        .unwrap();
        assert_eq!(b.format, InputFormat::Pcma);
        assert_eq!(b.vad.unwrap().silence_duration_ms, 800);
        assert_eq!(b.to_beta_json()["input_audio_format"], "g711_alaw");
    }
}
