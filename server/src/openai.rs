//! OpenAI's audio API, so that existing OpenAI clients work against this server:
//! `POST /v1/audio/transcriptions` and `POST /v1/audio/translations` (multipart form with
//! `file`, `model`, `language` (transcriptions), `prompt`, `response_format` (json, text, srt,
//! vtt, verbose_json), `temperature`, `timestamp_granularities[]` (word, segment), `stream`
//! (Server-Sent Events), our `seed` (where decoding samples; default 0) and our `sound_tags`
//! (`true` keeps whisper's sound descriptions and transcribes audio without detected speech)),
//! and
//! `GET /v1/models`, `GET /v1/models/{id}`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::multipart::{Multipart, MultipartRejection};
use axum::extract::rejection::PathRejection;
use axum::extract::{Path as AxumPath, State};
use axum::http::header;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::{json, Value};
use whisper_steady::recognizer::{seconds, DecodedSegment, RecognizeOptions, Transcript};

use crate::auth::Caller;
use crate::error::{ApiError, Style};
use crate::models::Model;
use crate::pipeline::{admit, decode, extension_of, recognizer_error, transcribe, Admission};
use crate::AppState;
use whisper_steady::audio::Decoded;

/// The response formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Json,
    Text,
    Srt,
    Vtt,
    VerboseJson,
}

impl Format {
    fn parse(s: &str) -> Option<Format> {
        Some(match s {
            "json" => Format::Json,
            "text" => Format::Text,
            "srt" => Format::Srt,
            "vtt" => Format::Vtt,
            "verbose_json" => Format::VerboseJson,
            _ => return None,
        })
    }
}

#[derive(Default)]
struct Form {
    file: Option<(Bytes, Option<String>)>,
    language: Option<String>,
    prompt: Option<String>,
    format: Option<String>,
    temperature: Option<String>,
    seed: Option<String>,
    sound_tags: Option<String>,
    granularities: Vec<String>,
    stream: Option<String>,
    model: Option<String>,
}

/// What the client asked for: transcription in the audio's language or translation to English.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Task {
    Transcribe,
    Translate,
}

impl Task {
    fn as_str(self) -> &'static str {
        match self {
            Task::Transcribe => "transcribe",
            Task::Translate => "translate",
        }
    }
}

/// Which timings `verbose_json` carries (`timestamp_granularities[]`; segments when none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Granularity {
    words: bool,
    segments: bool,
}

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::bad_request(message).style(Style::OpenAi)
}

async fn read_form(multipart: Result<Multipart, MultipartRejection>) -> Result<Form, ApiError> {
    let mut multipart = multipart.map_err(|e| {
        ApiError::new(
            e.status(),
            format!("expected multipart/form-data: {}", e.body_text()),
        )
        .style(Style::OpenAi)
    })?;
    let mut form = Form::default();
    loop {
        let field = match multipart.next_field().await {
            Ok(Some(field)) => field,
            Ok(None) => break,
            Err(e) => {
                return Err(ApiError::new(
                    e.status(),
                    format!("malformed multipart body: {}", e.body_text()),
                )
                .style(Style::OpenAi))
            }
        };
        let name = field.name().unwrap_or_default().to_owned();
        let filename = field.file_name().map(str::to_owned);
        let data = field.bytes().await.map_err(|e| {
            ApiError::new(
                e.status(),
                format!("malformed multipart body: {}", e.body_text()),
            )
            .style(Style::OpenAi)
        })?;
        let text = || {
            String::from_utf8(data.to_vec())
                .map_err(|_| bad(format!("field `{name}` is not UTF-8 text")))
        };
        match name.as_str() {
            "file" => form.file = Some((data, filename)),
            "language" => form.language = Some(text()?),
            "prompt" => form.prompt = Some(text()?),
            "response_format" => form.format = Some(text()?),
            "temperature" => form.temperature = Some(text()?),
            "seed" => form.seed = Some(text()?),
            "sound_tags" => form.sound_tags = Some(text()?),
            "timestamp_granularities[]" | "timestamp_granularities" => {
                form.granularities.push(text()?)
            }
            "stream" => form.stream = Some(text()?),
            "model" => form.model = Some(text()?),
            // `include[]` and the like: accepted, not needed.
            _ => {}
        }
    }
    Ok(form)
}

/// `POST /v1/audio/transcriptions`.
pub(crate) async fn transcriptions(
    State(state): State<Arc<AppState>>,
    caller: Option<Extension<Caller>>,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<Response, ApiError> {
    run(&state, caller, multipart, Task::Transcribe).await
}

/// `POST /v1/audio/translations`: the speech translated to English (a multilingual model is
/// needed; an English-only one answers 400 and says so).
pub(crate) async fn translations(
    State(state): State<Arc<AppState>>,
    caller: Option<Extension<Caller>>,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<Response, ApiError> {
    run(&state, caller, multipart, Task::Translate).await
}

/// The form, parsed once into options and a response format, then the recognition.
async fn run(
    state: &Arc<AppState>,
    caller: Option<Extension<Caller>>,
    multipart: Result<Multipart, MultipartRejection>,
    task: Task,
) -> Result<Response, ApiError> {
    let form = read_form(multipart).await?;
    let (bytes, filename) = form
        .file
        .ok_or_else(|| bad("missing the `file` field (the audio)"))?;
    if bytes.is_empty() {
        return Err(bad("the `file` field is empty"));
    }
    let stream = match form.stream.as_deref().map(str::trim) {
        None | Some("") | Some("false") => false,
        Some("true") => true,
        Some(other) => return Err(bad(format!("stream {other:?} is neither true nor false"))),
    };
    let format = match form.format.as_deref().map(str::trim) {
        None | Some("") => Format::Json,
        Some(f) => Format::parse(f).ok_or_else(|| {
            bad(format!(
                "response_format {f:?} is not one of json, text, srt, vtt, verbose_json"
            ))
        })?,
    };
    if stream && !matches!(format, Format::Json | Format::Text) {
        return Err(bad(
            "stream=true sends the text as transcript.text.delta events: response_format must \
             be json or text (leave stream out for srt, vtt and verbose_json)",
        ));
    }
    let mut granularity = Granularity {
        words: false,
        segments: form.granularities.is_empty(),
    };
    for g in &form.granularities {
        match g.trim() {
            "word" => granularity.words = true,
            "segment" => granularity.segments = true,
            other => {
                return Err(bad(format!(
                    "timestamp_granularities[] {other:?} is not one of word, segment"
                )))
            }
        }
    }
    if !form.granularities.is_empty() && format != Format::VerboseJson {
        return Err(bad(
            "timestamp_granularities[] needs response_format verbose_json",
        ));
    }
    let temperature = match form.temperature.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(t) => Some(
            t.parse::<f32>()
                .map_err(|_| bad(format!("temperature {t:?} is not a number")))?,
        ),
    };
    let language = match task {
        Task::Transcribe => form.language.as_deref(),
        // the source language is detected; the output is English
        Task::Translate => None,
    };
    let seed = match form.seed.as_deref().map(str::trim) {
        None | Some("") => 0,
        Some(seed) => seed.parse::<u32>().map_err(|_| {
            bad(format!(
                "seed {seed:?} is not a whole number from 0 to {}",
                u32::MAX
            ))
        })?,
    };
    let sound_tags = match form.sound_tags.as_deref().map(str::trim) {
        None | Some("") | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(bad(format!(
                "sound_tags {other:?} is neither true nor false"
            )))
        }
    };
    let admission = admit(state, form.model.as_deref(), caller, Style::OpenAi).await?;
    let mut options = state.options(
        admission.lease.defaults(),
        language,
        None,
        None,
        temperature,
        form.prompt,
    );
    options.seed = seed;
    options.sound_tags = sound_tags;
    options.translate = task == Task::Translate;
    options.token_timestamps = granularity.words;
    let temperature = options.temperature.unwrap_or(0.0);
    let extension = filename.as_deref().and_then(extension_of);
    if stream {
        return stream_events(state, admission, bytes, extension, options).await;
    }
    let (t, decoded) =
        transcribe(state, admission, bytes, extension, options, Style::OpenAi).await?;
    let request = Request {
        task,
        granularity,
        temperature,
    };
    Ok(render(format, &t, &decoded, request))
}

/// `stream=true`: Server-Sent Events as OpenAI sends them, a `transcript.text.delta` event
/// for each segment as it is decoded (the recognizer's segment callback), then
/// `transcript.text.done` with the whole text, or, when the recognition fails after the
/// response began, an `{"error": ...}` event. Errors found before (bad audio, a full queue)
/// are answered as usual. A client that goes away drops the stream, whose ticket cancels the
/// recognition.
async fn stream_events(
    state: &Arc<AppState>,
    admission: Admission,
    bytes: Bytes,
    extension: Option<String>,
    options: RecognizeOptions,
) -> Result<Response, ApiError> {
    let caller = admission.caller.as_ref();
    let mut decoded = decode(state, caller, bytes, extension, Style::OpenAi).await?;
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<DecodedSegment>();
    let samples = std::mem::take(&mut decoded.samples);
    let lease = admission.lease;
    let ticket = admission
        .reservation
        .submit_streaming(samples, options, move |segment| {
            // The receiver is gone only when the client is: nothing to deliver then.
            let _ = tx.send(segment);
        })
        .map_err(|e| recognizer_error(lease.recognizer(), e, Style::OpenAi))?;
    // The lease goes with the stream: the model stays loaded until the last event.
    let lease = Arc::new(lease);
    let events = futures_util::stream::unfold(Some((rx, ticket)), move |open| {
        let lease = Arc::clone(&lease);
        async move {
            let (mut rx, ticket) = open?;
            let (event, open) = match rx.recv().await {
                Some(segment) => {
                    let text = if segment.index == 0 {
                        segment.text.trim_start()
                    } else {
                        &segment.text
                    };
                    let delta = json!({"type": "transcript.text.delta", "delta": text});
                    (delta, Some((rx, ticket)))
                }
                // The request ended (its segment sender is dropped first): its outcome.
                None => match ticket.await {
                    Ok(t) => (
                        json!({"type": "transcript.text.done", "text": t.text}),
                        None,
                    ),
                    Err(e) => (
                        recognizer_error(lease.recognizer(), e, Style::OpenAi).body(),
                        None,
                    ),
                },
            };
            let event = Event::default().data(event.to_string());
            Some((Ok::<_, std::convert::Infallible>(event), open))
        }
    });
    let response = Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response();
    Ok(with_audio_warnings(response, &decoded.warnings))
}

/// What shapes a `verbose_json` response besides the transcript.
#[derive(Debug, Clone, Copy)]
struct Request {
    task: Task,
    granularity: Granularity,
    /// The request's (first) temperature.
    temperature: f32,
}

/// A model object as OpenAI's API lists it, with what this server adds: whether the model is
/// loaded, and for an alias the model it names.
fn model_json(model: &Model, id: &str, loaded: bool) -> Value {
    let created = std::fs::metadata(&model.path)
        .ok()
        .and_then(|m| m.modified().ok())
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs());
    let mut object = json!({"id": id, "object": "model", "created": created, "owned_by": "whisper-steady", "loaded": loaded});
    if id != model.name {
        object["alias_of"] = json!(model.name);
    }
    object
}

/// Every id a request may name: the models, then the aliases.
fn model_list(state: &AppState) -> Vec<Value> {
    let models = state.models.all().iter().map(|m| (m.name.as_str(), m));
    models
        .chain(state.models.aliases())
        .map(|(id, m)| model_json(m, id, m.is_loaded()))
        .collect()
}

/// `GET /v1/models`: the configured models (whether each is loaded), then their aliases.
pub(crate) async fn models(State(state): State<Arc<AppState>>) -> Json<Value> {
    Json(json!({"object": "list", "data": model_list(&state)}))
}

/// `GET /v1/models/{id}`: one of them, or 404.
pub(crate) async fn model(
    State(state): State<Arc<AppState>>,
    id: Result<AxumPath<String>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let AxumPath(id) = id.map_err(|e| ApiError::from(e).style(Style::OpenAi))?;
    model_list(&state)
        .into_iter()
        .find(|m| m["id"] == id.as_str())
        .map(Json)
        .ok_or_else(|| {
            ApiError::new(
                axum::http::StatusCode::NOT_FOUND,
                format!("the model {id:?} does not exist; GET /v1/models lists the models"),
            )
            .style(Style::OpenAi)
        })
}

/// The response in the asked format. Warnings about the audio (a truncated file) go into the
/// JSON formats as `warnings` and, for every format, into the `X-Audio-Warnings` header.
fn render(format: Format, t: &Transcript, decoded: &Decoded, request: Request) -> Response {
    with_audio_warnings(render_body(format, t, decoded, request), &decoded.warnings)
}

/// Adds the `X-Audio-Warnings` header when the audio's decoding said something.
fn with_audio_warnings(mut response: Response, warnings: &[String]) -> Response {
    if !warnings.is_empty() {
        if let Ok(value) = header::HeaderValue::from_str(&warnings.join("; ")) {
            response.headers_mut().insert(AUDIO_WARNINGS, value);
        }
    }
    response
}

/// The header that carries warnings about the audio.
const AUDIO_WARNINGS: &str = "x-audio-warnings";

fn render_body(format: Format, t: &Transcript, decoded: &Decoded, request: Request) -> Response {
    let duration = decoded.seconds;
    let with_warnings = |mut body: serde_json::Value| {
        if !decoded.warnings.is_empty() {
            body["warnings"] = json!(decoded.warnings);
        }
        Json(body).into_response()
    };
    match format {
        Format::Json => with_warnings(json!({"text": t.text})),
        Format::Text => text("text/plain; charset=utf-8", format!("{}\n", t.text)),
        Format::Srt => text("application/x-subrip; charset=utf-8", t.to_srt()),
        Format::Vtt => text("text/vtt; charset=utf-8", t.to_vtt()),
        Format::VerboseJson => {
            let language = match request.task {
                // OpenAI reports the output's language for translations
                Task::Translate => "english",
                Task::Transcribe => whisper_steady::get_lang_id(&t.language)
                    .and_then(whisper_steady::get_lang_str_full)
                    .unwrap_or(&t.language),
            };
            let mut body = json!({
                "task": request.task.as_str(),
                "language": language,
                "duration": duration,
                "text": t.text,
            });
            // Our extra field: how sure the detection of the spoken language was (absent when
            // the request named the language).
            if let Some(p) = t.language_probability {
                body["language_probability"] = json!(p);
            }
            // Our extra field: true when the audio held no speech (the text is then empty).
            body["no_speech"] = json!(t.no_speech);
            if request.granularity.segments {
                body["segments"] = segments_json(t, request.temperature);
            }
            if request.granularity.words {
                body["words"] = json!(words(t, duration));
            }
            with_warnings(body)
        }
    }
}

/// `verbose_json` segments. `avg_logprob`, `no_speech_prob`, `tokens` and `compression_ratio`
/// are the real values (the mean log probability of the text tokens; whisper's no-speech
/// probability; the text tokens' ids; the text's length over its zlib-compressed length, as
/// OpenAI computes it). whisper.cpp does not report two of OpenAI's fields per segment:
/// `temperature` is the request's (first) temperature, and `seek` is the segment's start in
/// 10 ms frames rather than the start of its 30-second window.
fn segments_json(t: &Transcript, temperature: f32) -> serde_json::Value {
    json!(t
        .segments
        .iter()
        .enumerate()
        .map(|(i, s)| {
            json!({
                "id": i,
                "seek": s.start.as_millis() / 10,
                "start": seconds(s.start),
                "end": seconds(s.end),
                "text": s.text,
                "tokens": s.text_tokens().map(|k| k.id).collect::<Vec<_>>(),
                "temperature": temperature,
                "avg_logprob": s.avg_logprob(),
                "compression_ratio": compression_ratio(&s.text),
                "no_speech_prob": s.no_speech_probability,
            })
        })
        .collect::<Vec<_>>())
}

/// The text's length over its zlib-compressed length (OpenAI's `compression_ratio`; high values
/// mean repetition).
fn compression_ratio(text: &str) -> f64 {
    use std::io::Write;
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    // writing into a Vec cannot fail
    let compressed = z
        .write_all(text.as_bytes())
        .and_then(|()| z.finish())
        .map_or(0, |c| c.len());
    if compressed == 0 {
        return 0.0;
    }
    text.len() as f64 / compressed as f64
}

/// `verbose_json`'s `words`: the transcript's ([`Transcript::words`]: characters in Chinese and
/// Japanese, spaced words elsewhere), with times made monotonic and kept inside the audio.
fn words(t: &Transcript, duration: f64) -> Vec<serde_json::Value> {
    let mut floor = 0.0f64;
    t.words()
        .into_iter()
        .map(|w| {
            let start = seconds(w.start).max(floor).min(duration);
            let end = seconds(w.end).max(start).min(duration);
            floor = start;
            json!({"word": w.text, "start": start, "end": end})
        })
        .collect()
}

fn text(content_type: &'static str, body: String) -> Response {
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compression_ratio_is_high_for_repetition() {
        let plain = compression_ratio(
            " And so my fellow Americans, ask not what your country can do for you",
        );
        let repeated = compression_ratio(&" thank you".repeat(40));
        assert!(plain > 0.8 && plain < 1.6, "{plain}");
        assert!(repeated > 5.0, "{repeated}");
    }
}
