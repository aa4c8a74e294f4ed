//! The original API: `POST /api/upload` and `POST /api/recognize`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;
use whisper_steady::recognizer::{RecognizeError, RecognizeOptions, Transcript};

use crate::error::{ApiError, Style};
use crate::storage::is_safe_extension;
use crate::{AppState, Timer};
use whisper_steady::audio::{self, Decoded};

/// Decodes audio off the runtime. The samples are for the recognizer to take (moved, not
/// copied); the rest describes the audio.
pub(crate) async fn decode(
    state: &Arc<AppState>,
    bytes: Vec<u8>,
    extension: Option<String>,
    style: Style,
) -> Result<Decoded, ApiError> {
    let max_seconds = state.config.recognition.max_audio_seconds;
    tokio::task::spawn_blocking(move || audio::decode(&bytes, extension.as_deref(), max_seconds))
        .await
        .map_err(|_| ApiError::bad_request("the audio could not be decoded").style(style))?
        .map_err(|e| ApiError::from(e).style(style))
}

/// A refusal or failure of the recognizer as the client's error.
pub(crate) fn recognize_error(state: &AppState, e: RecognizeError, style: Style) -> ApiError {
    ApiError::from_recognize(e, || state.recognizer.health()).style(style)
}

/// Decodes audio off the runtime, then runs the recognizer and awaits the result.
pub(crate) async fn transcribe(
    state: &Arc<AppState>,
    bytes: Vec<u8>,
    extension: Option<String>,
    options: RecognizeOptions,
    style: Style,
) -> Result<(Transcript, Decoded), ApiError> {
    let mut decoded = decode(state, bytes, extension, style).await?;
    let ticket = state
        .recognizer
        .submit(std::mem::take(&mut decoded.samples), options)
        .map_err(|e| recognize_error(state, e, style))?;
    // Dropping this future (the client went away) drops the ticket, which cancels the request.
    let transcript = ticket.await.map_err(|e| recognize_error(state, e, style))?;
    Ok((transcript, decoded))
}

/// `?filename=` of an upload, to keep its extension (a hint for the decoder).
#[derive(Debug, Deserialize)]
pub(crate) struct UploadQuery {
    filename: Option<String>,
}

/// The extension of a file name, if it is a safe one.
pub(crate) fn extension_of(name: &str) -> Option<String> {
    let ext = std::path::Path::new(name).extension()?.to_str()?;
    is_safe_extension(ext).then(|| ext.to_ascii_lowercase())
}

/// `POST /api/upload`: the body is the audio; answers its id in storage.
pub(crate) async fn upload(
    State(state): State<Arc<AppState>>,
    query: Result<Query<UploadQuery>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let timer = Timer::start("upload");
    let result = async {
        let body = body.map_err(|e| ApiError::new(e.status(), e.body_text()))?;
        if body.is_empty() {
            return Err(ApiError::bad_request(
                "the body is empty: send the audio bytes",
            ));
        }
        let Query(query) = query.map_err(|e| ApiError::new(e.status(), e.body_text()))?;
        let extension = query.filename.and_then(|n| extension_of(&n));
        let storage = state.storage.clone();
        let size = body.len();
        let id = tokio::task::spawn_blocking(move || storage.store(&body, extension.as_deref()))
            .await
            .map_err(|_| {
                ApiError::new(
                    axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                    "upload failed",
                )
            })??;
        Ok(Json(
            json!({"success": true, "id": id, "audio_path": id, "size": size}),
        ))
    }
    .await;
    finish(&state, timer, result)
}

/// `DELETE /api/upload/{id}`: deletes an upload before it expires.
pub(crate) async fn delete_upload(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Response {
    let timer = Timer::start("delete_upload");
    let storage = state.storage.clone();
    let key = id.clone();
    let result = tokio::task::spawn_blocking(move || storage.delete(&key))
        .await
        .map_err(|_| {
            ApiError::new(
                axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                "delete failed",
            )
        })
        .and_then(|r| r.map_err(ApiError::from))
        .map(|size| Json(json!({"success": true, "id": id, "size": size})));
    finish(&state, timer, result)
}

/// The original request.
#[derive(Debug, Deserialize)]
pub(crate) struct RecognizeRequest {
    audio_path: String,
    language: Option<String>,
    use_gpu: Option<bool>,
    beam_size: Option<u32>,
    temperature: Option<f32>,
}

/// `POST /api/recognize`.
pub(crate) async fn recognize(
    State(state): State<Arc<AppState>>,
    request: Result<Json<RecognizeRequest>, JsonRejection>,
) -> Response {
    let timer = Timer::start("recognize");
    let result = async {
        let Json(request) = request.map_err(|e| ApiError::new(e.status(), e.body_text()))?;
        let storage = state.storage.clone();
        let name = request.audio_path.clone();
        let bytes = tokio::task::spawn_blocking(move || {
            let path = storage.resolve(&name)?;
            storage.read(&name, &path)
        })
        .await
        .map_err(|_| ApiError::bad_request("audio_path could not be checked"))??;
        let options = state.options(
            request.language.as_deref(),
            request.use_gpu,
            request.beam_size,
            request.temperature,
            None,
        );
        let extension = extension_of(&request.audio_path);
        let (t, decoded) = transcribe(&state, bytes, extension, options, Style::Original).await?;
        Ok(Json(json!({
            "success": true,
            "text": t.text,
            "confidence": t.confidence(),
            "language": t.language,
            "duration": decoded.seconds,
            "warnings": decoded.warnings,
            "processing_time_ms": t.timings.processing.as_millis() as u64,
            "queue_time_ms": t.timings.queued.as_millis() as u64,
            "backend": t.backend.as_str(),
            "retried_on_cpu": t.retried_on_cpu,
            "segments": t.segments.iter().map(|s| json!({
                "start": s.start.as_secs_f64(),
                "end": s.end.as_secs_f64(),
                "text": s.text.trim(),
            })).collect::<Vec<_>>(),
        })))
    }
    .await;
    finish(&state, timer, result)
}

/// Records the outcome and turns the result into a response.
pub(crate) fn finish<T: IntoResponse>(
    state: &AppState,
    timer: Timer,
    result: Result<T, ApiError>,
) -> Response {
    match result {
        Ok(ok) => {
            timer.finish(state, "ok");
            ok.into_response()
        }
        Err(e) => {
            timer.finish(state, e.outcome());
            if e.status.is_server_error() {
                log::warn!("{} {}", e.status, e.message);
            }
            e.into_response()
        }
    }
}
