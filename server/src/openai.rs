//! `POST /v1/audio/transcriptions`, as OpenAI's API has it: multipart form with `file`, `model`,
//! `language`, `prompt`, `response_format` (json, text, srt, vtt, verbose_json) and
//! `temperature`, so that existing OpenAI clients work against this server.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::multipart::{Multipart, MultipartRejection};
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;
use whisper_steady::recognizer::Transcript;

use crate::audio::Decoded;
use crate::error::{ApiError, Style};
use crate::recognize::{extension_of, finish, transcribe};
use crate::{AppState, Timer};

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
    file: Option<(Vec<u8>, Option<String>)>,
    language: Option<String>,
    prompt: Option<String>,
    format: Option<String>,
    temperature: Option<String>,
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
            "file" => form.file = Some((data.to_vec(), filename)),
            "language" => form.language = Some(text()?),
            "prompt" => form.prompt = Some(text()?),
            "response_format" => form.format = Some(text()?),
            "temperature" => form.temperature = Some(text()?),
            // `model`, `timestamp_granularities[]` and the like: accepted, not needed.
            _ => {}
        }
    }
    Ok(form)
}

/// `POST /v1/audio/transcriptions`.
pub(crate) async fn transcriptions(
    State(state): State<Arc<AppState>>,
    multipart: Result<Multipart, MultipartRejection>,
) -> Response {
    let timer = Timer::start("transcriptions");
    let result = async {
        let form = read_form(multipart).await?;
        let (bytes, filename) = form
            .file
            .ok_or_else(|| bad("missing the `file` field (the audio)"))?;
        if bytes.is_empty() {
            return Err(bad("the `file` field is empty"));
        }
        let format = match form.format.as_deref().map(str::trim) {
            None | Some("") => Format::Json,
            Some(f) => Format::parse(f).ok_or_else(|| {
                bad(format!(
                    "response_format {f:?} is not one of json, text, srt, vtt, verbose_json"
                ))
            })?,
        };
        let temperature = match form.temperature.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(t) => Some(
                t.parse::<f32>()
                    .map_err(|_| bad(format!("temperature {t:?} is not a number")))?,
            ),
        };
        let options = state.options(
            form.language.as_deref(),
            None,
            None,
            temperature,
            form.prompt,
        );
        let extension = filename.as_deref().and_then(extension_of);
        let (t, decoded) = transcribe(&state, bytes, extension, options, Style::OpenAi).await?;
        Ok(render(format, &t, &decoded))
    }
    .await;
    finish(&state, timer, result)
}

/// The response in the asked format. Warnings about the audio (a truncated file) go into the
/// JSON formats as `warnings` and, for every format, into the `X-Audio-Warnings` header.
fn render(format: Format, t: &Transcript, decoded: &Decoded) -> Response {
    let mut response = render_body(format, t, decoded);
    if !decoded.warnings.is_empty() {
        if let Ok(value) = header::HeaderValue::from_str(&decoded.warnings.join("; ")) {
            response.headers_mut().insert(AUDIO_WARNINGS, value);
        }
    }
    response
}

/// The header that carries warnings about the audio.
const AUDIO_WARNINGS: &str = "x-audio-warnings";

fn render_body(format: Format, t: &Transcript, decoded: &Decoded) -> Response {
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
        Format::Srt => text("application/x-subrip; charset=utf-8", srt(t)),
        Format::Vtt => text("text/vtt; charset=utf-8", vtt(t)),
        Format::VerboseJson => {
            let language = whisper_steady::get_lang_id(&t.language)
                .and_then(whisper_steady::get_lang_str_full)
                .unwrap_or(&t.language);
            with_warnings(json!({
                "task": "transcribe",
                "language": language,
                "duration": duration,
                "text": t.text,
                "segments": t.segments.iter().enumerate().map(|(i, s)| {
                    let text_tokens: Vec<_> = s.tokens.iter().filter(|k| !k.special).collect();
                    let avg_logprob = if text_tokens.is_empty() {
                        0.0
                    } else {
                        text_tokens.iter().map(|k| f64::from(k.plog)).sum::<f64>() / text_tokens.len() as f64
                    };
                    json!({
                        "id": i,
                        "seek": 0,
                        "start": s.start.as_secs_f64(),
                        "end": s.end.as_secs_f64(),
                        "text": s.text,
                        "tokens": text_tokens.iter().map(|k| k.id).collect::<Vec<_>>(),
                        "temperature": 0.0,
                        "avg_logprob": avg_logprob,
                        "compression_ratio": 1.0,
                        "no_speech_prob": s.no_speech_probability,
                    })
                }).collect::<Vec<_>>(),
            }))
        }
    }
}

fn text(content_type: &'static str, body: String) -> Response {
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

/// `HH:MM:SS{sep}mmm`.
fn timestamp(d: Duration, sep: char) -> String {
    let ms = d.as_millis();
    format!(
        "{:02}:{:02}:{:02}{sep}{:03}",
        ms / 3_600_000,
        ms / 60_000 % 60,
        ms / 1000 % 60,
        ms % 1000
    )
}

fn srt(t: &Transcript) -> String {
    t.segments
        .iter()
        .enumerate()
        .map(|(i, s)| {
            format!(
                "{}\n{} --> {}\n{}\n\n",
                i + 1,
                timestamp(s.start, ','),
                timestamp(s.end, ','),
                s.text.trim()
            )
        })
        .collect()
}

fn vtt(t: &Transcript) -> String {
    let mut out = String::from("WEBVTT\n\n");
    for s in &t.segments {
        out.push_str(&format!(
            "{} --> {}\n{}\n\n",
            timestamp(s.start, '.'),
            timestamp(s.end, '.'),
            s.text.trim()
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps() {
        assert_eq!(
            timestamp(Duration::from_millis(3_723_456), ','),
            "01:02:03,456"
        );
        assert_eq!(timestamp(Duration::ZERO, '.'), "00:00:00.000");
    }
}
