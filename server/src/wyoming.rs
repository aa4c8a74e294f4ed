//! Speech-to-text over the Wyoming protocol, the one Home Assistant's voice pipeline speaks
//! (its Wyoming integration, and the wyoming-faster-whisper add-on most users run).
//!
//! Framing, as the `wyoming` Python package writes it: one JSON line per event
//! (`{"type", "data"?, "data_length"?, "payload_length"?, "version"?}`), then `data_length`
//! bytes of JSON merged into `data`, then `payload_length` bytes of payload (audio). Events:
//!
//! - `describe` → `info`: one `asr` program with the loaded model and its languages,
//!   `supports_transcript_streaming: true`;
//! - `transcribe` {`name`?, `language`?} sets the language of what follows (none or `auto`:
//!   detected);
//! - `audio-start` {`rate`, `width`, `channels`}, `audio-chunk`s (the same fields and PCM as
//!   payload), `audio-stop` → `transcript-start`, a `transcript-chunk` {`text`} per segment as
//!   whisper decodes it, `transcript-stop`, then `transcript` {`text`, `language`};
//! - `ping` → `pong`; anything else is ignored, as Wyoming servers do (`select-program`, say).
//!
//! Audio: 8 to 384 kHz, 8/16/24/32-bit signed little-endian PCM (8-bit unsigned), 1 to 8
//! channels (averaged); at most `recognition.max_audio_seconds`. Refusals (bad events, a full
//! queue, a limit) are `error` events {`text`, `code`}; a malformed frame also closes the
//! connection. Limits: `wyoming.max_connections` at once, and a connection that sends no event
//! for `server.live_idle_seconds` is closed. Recognitions go through the same [`Recognizer`]
//! queue as HTTP requests.
//!
//! [`Recognizer`]: whisper_steady::recognizer::Recognizer

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Map, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use whisper_steady::audio::{resample, MAX_SAMPLE_RATE, MIN_SAMPLE_RATE, WHISPER_SAMPLE_RATE};
use whisper_steady::recognizer::DecodedSegment;

use crate::error::Style;
use crate::models::ModelError;
use crate::pipeline::recognizer_error;
use crate::AppState;

/// The longest JSON header line.
const MAX_HEADER_BYTES: usize = 64 * 1024;
/// The largest `data` block.
const MAX_DATA_BYTES: usize = 64 * 1024;
/// The largest payload (one audio chunk): a second of 8-channel 32-bit audio at 32 kHz.
const MAX_PAYLOAD_BYTES: usize = 1 << 20;
/// The most channels accepted.
const MAX_CHANNELS: u64 = 8;

/// One event as it arrived.
#[derive(Debug)]
struct Event {
    kind: String,
    data: Map<String, Value>,
    payload: Vec<u8>,
}

/// Why a connection ends: the client left, or sent something that is not Wyoming.
#[derive(Debug)]
enum Fault {
    Gone,
    Malformed(String),
}

/// Reads one event; `Ok(None)` at the end of the stream.
async fn read_event<R: tokio::io::AsyncBufRead + Unpin>(
    reader: &mut R,
) -> Result<Option<Event>, Fault> {
    let mut line = Vec::new();
    let read = (&mut *reader)
        .take(MAX_HEADER_BYTES as u64 + 1)
        .read_until(b'\n', &mut line)
        .await
        .map_err(|_| Fault::Gone)?;
    if read == 0 {
        return Ok(None);
    }
    if !line.ends_with(b"\n") {
        return Err(if line.len() > MAX_HEADER_BYTES {
            Fault::Malformed(format!(
                "an event's header line is over {MAX_HEADER_BYTES} bytes"
            ))
        } else {
            Fault::Gone
        });
    }
    let header: Map<String, Value> = match serde_json::from_slice(&line) {
        Ok(Value::Object(header)) => header,
        _ => {
            return Err(Fault::Malformed(
                "an event's header is one line of JSON: {\"type\": ...}".into(),
            ))
        }
    };
    let kind = header
        .get("type")
        .and_then(Value::as_str)
        .ok_or_else(|| Fault::Malformed("an event without a \"type\"".into()))?
        .to_owned();
    let mut data = match header.get("data") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(data)) => data.clone(),
        Some(_) => return Err(Fault::Malformed("\"data\" is not an object".into())),
    };
    let length = |key: &str, max: usize| -> Result<usize, Fault> {
        match header.get(key) {
            None | Some(Value::Null) => Ok(0),
            Some(v) => match v.as_u64() {
                Some(n) if n as usize <= max => Ok(n as usize),
                Some(n) => Err(Fault::Malformed(format!(
                    "{key} {n} is over the limit of {max} bytes"
                ))),
                None => Err(Fault::Malformed(format!("{key} is not a byte count"))),
            },
        }
    };
    let data_length = length("data_length", MAX_DATA_BYTES)?;
    let payload_length = length("payload_length", MAX_PAYLOAD_BYTES)?;
    if data_length > 0 {
        let mut extra = vec![0u8; data_length];
        reader
            .read_exact(&mut extra)
            .await
            .map_err(|_| Fault::Gone)?;
        match serde_json::from_slice(&extra) {
            Ok(Value::Object(more)) => data.extend(more),
            _ => {
                return Err(Fault::Malformed(
                    "the data block is not a JSON object".into(),
                ))
            }
        }
    }
    let mut payload = vec![0u8; payload_length];
    reader
        .read_exact(&mut payload)
        .await
        .map_err(|_| Fault::Gone)?;
    Ok(Some(Event {
        kind,
        data,
        payload,
    }))
}

/// Writes one event as the `wyoming` package does (data inline as a `data_length` block).
async fn write_event<W: tokio::io::AsyncWrite + Unpin>(
    writer: &mut W,
    kind: &str,
    data: Value,
) -> std::io::Result<()> {
    let mut header = json!({"type": kind, "version": "1.10.2"});
    let data_bytes = match &data {
        Value::Object(map) if !map.is_empty() => Some(serde_json::to_vec(&data)?),
        _ => None,
    };
    if let Some(bytes) = &data_bytes {
        header["data_length"] = json!(bytes.len());
    }
    let mut out = serde_json::to_vec(&header)?;
    out.push(b'\n');
    if let Some(bytes) = data_bytes {
        out.extend_from_slice(&bytes);
    }
    writer.write_all(&out).await?;
    writer.flush().await
}

/// The PCM format of a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Format {
    rate: u32,
    width: usize,
    channels: usize,
}

impl Format {
    /// The format an `audio-start` or `audio-chunk` declares, checked.
    fn of(data: &Map<String, Value>) -> Result<Format, String> {
        let field = |key: &str| {
            data.get(key)
                .and_then(Value::as_u64)
                .ok_or_else(|| format!("audio events carry \"{key}\" (a whole number)"))
        };
        let (rate, width, channels) = (field("rate")?, field("width")?, field("channels")?);
        if !(u64::from(MIN_SAMPLE_RATE)..=u64::from(MAX_SAMPLE_RATE)).contains(&rate) {
            return Err(format!(
                "rate {rate}: accepted are {MIN_SAMPLE_RATE} to {MAX_SAMPLE_RATE} Hz"
            ));
        }
        if !(1..=4).contains(&width) {
            return Err(format!("width {width}: accepted are 1 to 4 bytes"));
        }
        if !(1..=MAX_CHANNELS).contains(&channels) {
            return Err(format!(
                "channels {channels}: accepted are 1 to {MAX_CHANNELS}"
            ));
        }
        Ok(Format {
            rate: rate as u32,
            width: width as usize,
            channels: channels as usize,
        })
    }

    /// Appends `pcm`'s frames, channels averaged, to `out`.
    fn decode(self, pcm: &[u8], out: &mut Vec<f32>) -> Result<(), String> {
        let frame = self.width * self.channels;
        if pcm.len() % frame != 0 {
            return Err(format!(
                "a chunk of {} bytes is not a whole number of {frame}-byte frames",
                pcm.len()
            ));
        }
        let sample = whisper_steady::audio::pcm_sample;
        let scale = 1.0 / self.channels as f32;
        out.extend(
            pcm.chunks_exact(frame)
                .map(|f| f.chunks_exact(self.width).map(sample).sum::<f32>() * scale),
        );
        Ok(())
    }
}

/// One utterance being received.
struct Utterance {
    format: Format,
    samples: Vec<f32>,
}

/// The `info` event: one ASR program with the loaded model.
fn info(state: &AppState) -> Value {
    let all_languages: Vec<&str> = (0..=whisper_steady::get_lang_max_id())
        .filter_map(whisper_steady::get_lang_str)
        .collect();
    let languages = |m: &crate::models::Model| {
        if m.multilingual {
            all_languages.clone()
        } else {
            vec!["en"]
        }
    };
    let whisper = json!({"name": "OpenAI", "url": "https://github.com/openai/whisper"});
    // The default model first (what a client that names none gets), then the others.
    let default = state.models.default_model();
    let models: Vec<Value> = std::iter::once(default)
        .chain(
            state
                .models
                .all()
                .iter()
                .filter(|m| !std::ptr::eq(*m, default)),
        )
        .map(|m| {
            json!({
                "name": m.name,
                "attribution": whisper,
                "installed": true,
                "description": format!("Whisper ({})", m.name),
                "version": null,
                "languages": languages(m),
            })
        })
        .collect();
    json!({
        "asr": [{
            "name": "whisper-steady",
            "attribution": {"name": "whisper-steady", "url": "https://github.com/ggml-org/whisper.cpp"},
            "installed": true,
            "description": "whisper.cpp speech recognition (recognizer-server)",
            "version": env!("CARGO_PKG_VERSION"),
            "models": models,
            "supports_transcript_streaming": true,
        }],
        "tts": [], "handle": [], "intent": [], "wake": [], "mic": [], "snd": [],
    })
}

/// An `error` event's data.
fn error(text: impl Into<String>, code: &str) -> Value {
    json!({"text": text.into(), "code": code})
}

/// Serves Wyoming connections on `listener` until `stop` turns true; connections in progress
/// finish the utterance they are in.
pub(crate) async fn serve(
    listener: TcpListener,
    state: Arc<AppState>,
    mut stop: watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(state.config.wyoming.max_connections));
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.changed() => break,
        };
        let Ok((stream, _peer)) = accepted else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let _ = stream.set_nodelay(true);
        let state = Arc::clone(&state);
        match Arc::clone(&slots).try_acquire_owned() {
            Ok(permit) => {
                tokio::spawn(async move {
                    connection(stream, state).await;
                    drop(permit);
                });
            }
            Err(_) => {
                let max = state.config.wyoming.max_connections;
                tokio::spawn(async move {
                    let mut stream = stream;
                    let message = format!(
                        "all {max} Wyoming connections are in use (wyoming.max_connections)"
                    );
                    let _ = write_event(&mut stream, "error", error(message, "busy")).await;
                });
            }
        }
    }
}

/// One connection, until the client leaves, goes quiet or breaks the framing.
async fn connection(stream: TcpStream, state: Arc<AppState>) {
    let (reader, mut writer) = stream.into_split();
    let mut reader = BufReader::new(reader);
    let idle = Duration::from_secs_f64(state.config.server.live_idle_seconds);
    let max_seconds = state.config.recognition.max_audio_seconds;
    let mut language: Option<String> = None;
    // The model the last `transcribe` named (`None`: the default).
    let mut model: Option<String> = None;
    let mut utterance: Option<Utterance> = None;
    loop {
        let event = match tokio::time::timeout(idle, read_event(&mut reader)).await {
            Err(_) => {
                let text = format!("no event for {} s", idle.as_secs_f64());
                let _ = write_event(&mut writer, "error", error(text, "timeout")).await;
                return;
            }
            Ok(Ok(Some(event))) => event,
            Ok(Ok(None)) | Ok(Err(Fault::Gone)) => return,
            Ok(Err(Fault::Malformed(why))) => {
                let _ = write_event(&mut writer, "error", error(why, "malformed")).await;
                return;
            }
        };
        let reply = match event.kind.as_str() {
            "describe" => write_event(&mut writer, "info", info(&state)).await,
            "ping" => {
                let text = event.data.get("text").cloned().unwrap_or(Value::Null);
                write_event(&mut writer, "pong", json!({"text": text})).await
            }
            "transcribe" => {
                match event
                    .data
                    .get("language")
                    .and_then(Value::as_str)
                    .map(str::trim)
                {
                    None | Some("") => language = None,
                    Some(code) => language = Some(code.to_owned()),
                }
                model = event
                    .data
                    .get("name")
                    .and_then(Value::as_str)
                    .map(str::to_owned);
                Ok(())
            }
            "audio-start" => match Format::of(&event.data) {
                Ok(format) => {
                    utterance = Some(Utterance {
                        format,
                        samples: Vec::new(),
                    });
                    Ok(())
                }
                Err(why) => write_event(&mut writer, "error", error(why, "bad_audio")).await,
            },
            "audio-chunk" => {
                let added = match (Format::of(&event.data), utterance.as_mut()) {
                    (Err(why), _) => Err(why),
                    (Ok(format), None) => {
                        // A client that sends audio without audio-start.
                        let mut u = Utterance {
                            format,
                            samples: Vec::new(),
                        };
                        let added = format.decode(&event.payload, &mut u.samples);
                        utterance = Some(u);
                        added
                    }
                    (Ok(format), Some(u)) if format != u.format => Err(format!(
                        "the audio format changed within an utterance ({:?} to {format:?})",
                        u.format
                    )),
                    (Ok(format), Some(u)) => format.decode(&event.payload, &mut u.samples),
                };
                let too_long = utterance.as_ref().is_some_and(|u| {
                    u.samples.len() as f64 / f64::from(u.format.rate) > max_seconds
                });
                match added {
                    Err(why) => {
                        utterance = None;
                        write_event(&mut writer, "error", error(why, "bad_audio")).await
                    }
                    Ok(()) if too_long => {
                        utterance = None;
                        let why = format!(
                            "the audio is longer than the limit of {max_seconds} seconds \
                             (recognition.max_audio_seconds)"
                        );
                        write_event(&mut writer, "error", error(why, "too_long")).await
                    }
                    Ok(()) => Ok(()),
                }
            }
            "audio-stop" => match utterance.take() {
                Some(u) => {
                    transcribe(&state, &mut writer, u, language.clone(), model.clone()).await
                }
                None => write_event(&mut writer, "transcript", json!({"text": ""})).await,
            },
            // Unknown events are dropped, as Wyoming servers do.
            _ => Ok(()),
        };
        if reply.is_err() {
            return; // the client is gone
        }
    }
}

/// Recognizes an utterance and answers it: `transcript-start`, a `transcript-chunk` per
/// segment as it is decoded, `transcript-stop`, `transcript`; or an `error` event.
async fn transcribe<W: tokio::io::AsyncWrite + Unpin>(
    state: &Arc<AppState>,
    writer: &mut W,
    utterance: Utterance,
    language: Option<String>,
    model: Option<String>,
) -> std::io::Result<()> {
    let lease = match state.lease(model.as_deref()).await {
        Ok(lease) => lease,
        Err(e) => {
            let code = match e {
                ModelError::Unknown { .. } => "unknown_model",
                _ => "overloaded",
            };
            return write_event(writer, "error", error(e.to_string(), code)).await;
        }
    };
    let recognizer = lease.recognizer();
    let fail = |e| recognizer_error(recognizer, e, Style::OpenAi);
    let admitted = match recognizer.reserve() {
        Ok(reservation) => reservation,
        Err(e) => {
            let e = fail(e);
            return write_event(writer, "error", error(e.message, "overloaded")).await;
        }
    };
    let seconds = utterance.samples.len() as f64 / f64::from(utterance.format.rate);
    if seconds < whisper_steady::audio::MIN_SECONDS {
        // Too short for whisper: nothing was said.
        return write_event(writer, "transcript", json!({"text": ""})).await;
    }
    let rate = utterance.format.rate;
    let samples = tokio::task::spawn_blocking(move || {
        resample(&utterance.samples, rate, WHISPER_SAMPLE_RATE)
    })
    .await
    .unwrap_or_default();
    let mut options = state.options(
        lease.defaults(),
        language.as_deref(),
        None,
        None,
        None,
        None,
    );
    // Measured on English commands only (bench/RESULTS.md): other languages, and a language
    // still to be detected, keep whisper's full window.
    let english = !recognizer.context().is_multilingual()
        || options
            .language
            .as_deref()
            .is_some_and(|l| l.eq_ignore_ascii_case("en"));
    if english && seconds < state.config.wyoming.fit_window_below_seconds {
        let positions = recognizer.context().n_audio_ctx().max(0) as u32;
        options.audio_ctx = whisper_steady::recognizer::fitted_audio_ctx(samples.len(), positions);
    }
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<DecodedSegment>();
    let ticket = match admitted.submit_streaming(samples, options, move |segment| {
        let _ = tx.send(segment);
    }) {
        Ok(ticket) => ticket,
        Err(e) => {
            let e = fail(e);
            let code = if e.status.is_client_error() {
                "bad_request"
            } else {
                "failed"
            };
            return write_event(writer, "error", error(e.message, code)).await;
        }
    };
    let start = match &language {
        Some(code) if code != "auto" => json!({"language": code}),
        _ => json!({}),
    };
    write_event(writer, "transcript-start", start).await?;
    while let Some(segment) = rx.recv().await {
        let text = if segment.index == 0 {
            segment.text.trim_start().to_owned()
        } else {
            segment.text
        };
        write_event(writer, "transcript-chunk", json!({"text": text})).await?;
    }
    match ticket.await {
        Ok(t) => {
            write_event(writer, "transcript-stop", json!({})).await?;
            let text = t.text.trim();
            write_event(
                writer,
                "transcript",
                json!({"text": text, "language": t.language}),
            )
            .await
        }
        Err(e) => {
            let e = fail(e);
            write_event(writer, "transcript-stop", json!({})).await?;
            write_event(writer, "error", error(e.message, "failed")).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn events_are_framed_as_the_wyoming_package_frames_them() {
        // A header with data inline, a data block and a payload, then one without either.
        let block = br#"{"width": 2, "channels": 1}"#;
        let mut input: Vec<u8> = format!(
            "{{\"type\": \"audio-chunk\", \"data\": {{\"rate\": 16000}}, \"data_length\": {}, \
             \"payload_length\": 4, \"version\": \"1.10.2\"}}\n",
            block.len()
        )
        .into_bytes();
        input.extend_from_slice(block);
        input.extend_from_slice(&[1, 0, 2, 0]);
        input.extend_from_slice(b"{\"type\": \"describe\"}\n");
        let mut reader = BufReader::new(&input[..]);
        let e = read_event(&mut reader).await.unwrap().unwrap();
        assert_eq!(e.kind, "audio-chunk");
        assert_eq!(e.data["rate"], 16000);
        assert_eq!(e.data["width"], 2);
        assert_eq!(e.payload, [1, 0, 2, 0]);
        let f = Format::of(&e.data).unwrap();
        let mut samples = Vec::new();
        f.decode(&e.payload, &mut samples).unwrap();
        assert_eq!(samples, [1.0 / 32_768.0, 2.0 / 32_768.0]);
        let e = read_event(&mut reader).await.unwrap().unwrap();
        assert_eq!(e.kind, "describe");
        assert!(read_event(&mut reader).await.unwrap().is_none());

        let mut out = Vec::new();
        write_event(&mut out, "transcript", json!({"text": "hi"}))
            .await
            .unwrap();
        let text = String::from_utf8(out).unwrap();
        let (line, data) = text.split_once('\n').unwrap();
        let header: Value = serde_json::from_str(line).unwrap();
        assert_eq!(header["type"], "transcript");
        assert_eq!(header["data_length"], data.len());
        assert_eq!(serde_json::from_str::<Value>(data).unwrap()["text"], "hi");
    }

    #[tokio::test]
    async fn malformed_frames_are_named() {
        for (input, why) in [
            (b"not json\n".to_vec(), "one line of JSON"),
            (b"{\"data\": {}}\n".to_vec(), "without a \"type\""),
            (
                b"{\"type\": \"x\", \"payload_length\": 99999999}\n".to_vec(),
                "over the limit",
            ),
            (vec![b'{'; MAX_HEADER_BYTES + 10], "header line is over"),
        ] {
            let mut reader = BufReader::new(&input[..]);
            match read_event(&mut reader).await {
                Err(Fault::Malformed(m)) => assert!(m.contains(why), "{m}"),
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn formats_are_checked_and_decoded() {
        let data = |rate: u64, width: u64, channels: u64| {
            json!({"rate": rate, "width": width, "channels": channels})
                .as_object()
                .unwrap()
                .clone()
        };
        assert!(Format::of(&data(1, 2, 1)).unwrap_err().contains("rate 1"));
        assert!(Format::of(&data(16_000, 5, 1))
            .unwrap_err()
            .contains("width"));
        assert!(Format::of(&data(16_000, 2, 9))
            .unwrap_err()
            .contains("channels"));
        // Stereo 24-bit: (+0.5, -0.5) averages to 0; 8-bit unsigned 192 is +0.5.
        let f = Format::of(&data(48_000, 3, 2)).unwrap();
        let mut out = Vec::new();
        f.decode(&[0, 0, 0x40, 0, 0, 0xc0], &mut out).unwrap();
        assert_eq!(out, [0.0]);
        assert!(f.decode(&[0; 5], &mut out).is_err());
        let f = Format::of(&data(8_000, 1, 1)).unwrap();
        let mut out = Vec::new();
        f.decode(&[192], &mut out).unwrap();
        assert_eq!(out, [0.5]);
    }
}
