//! The original API: `POST /api/upload`, `DELETE /api/upload/{id}` and `POST /api/recognize`,
//! on the shared [`pipeline`](crate::pipeline).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Extension;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use whisper_steady::recognizer::seconds;

use crate::auth::Caller;
use crate::error::{ApiError, Style};
use crate::pipeline::{admit, extension_of, transcribe};
use crate::AppState;

/// `?filename=` of an upload, to keep its extension (a hint for the decoder).
#[derive(Debug, Deserialize)]
pub(crate) struct UploadQuery {
    filename: Option<String>,
}

/// `POST /api/upload`: the body is the audio; answers its id in storage.
pub(crate) async fn upload(
    State(state): State<Arc<AppState>>,
    query: Result<Query<UploadQuery>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let body = body?;
    if body.is_empty() {
        return Err(ApiError::bad_request(
            "the body is empty: send the audio bytes",
        ));
    }
    let Query(query) = query?;
    let extension = query.filename.and_then(|n| extension_of(&n));
    let storage = state.storage.clone();
    let size = body.len();
    let id = tokio::task::spawn_blocking(move || storage.store(&body, extension.as_deref()))
        .await
        .map_err(|_| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "upload failed"))??;
    Ok(Json(
        json!({"success": true, "id": id, "audio_path": id, "size": size}),
    ))
}

/// `DELETE /api/upload/{id}`: deletes an upload before it expires.
pub(crate) async fn delete_upload(
    State(state): State<Arc<AppState>>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let Path(id) = id?;
    let storage = state.storage.clone();
    let key = id.clone();
    let size = tokio::task::spawn_blocking(move || storage.delete(&key))
        .await
        .map_err(|_| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "delete failed"))??;
    Ok(Json(json!({"success": true, "id": id, "size": size})))
}

/// The original request.
#[derive(Debug, Deserialize)]
pub(crate) struct RecognizeRequest {
    audio_path: String,
    language: Option<String>,
    use_gpu: Option<bool>,
    beam_size: Option<u32>,
    temperature: Option<f32>,
    seed: Option<u32>,
    /// The model (a name of `recognition.models` or an alias; default: the default model).
    model: Option<String>,
    /// Keep whisper's sound descriptions and transcribe audio without detected speech.
    #[serde(default)]
    sound_tags: bool,
}

/// `POST /api/recognize`.
pub(crate) async fn recognize(
    State(state): State<Arc<AppState>>,
    caller: Option<Extension<Caller>>,
    request: Result<Json<RecognizeRequest>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let Json(request) = request?;
    // The queue first: a full one refuses before the file is read.
    let admission = admit(&state, request.model.as_deref(), caller, Style::Original).await?;
    let storage = state.storage.clone();
    let name = request.audio_path.clone();
    let bytes = tokio::task::spawn_blocking(move || {
        let path = storage.resolve(&name)?;
        storage.read(&name, &path)
    })
    .await
    .map_err(|_| ApiError::bad_request("audio_path could not be checked"))??;
    let mut options = state.options(
        admission.lease.defaults(),
        request.language.as_deref(),
        request.use_gpu,
        request.beam_size,
        request.temperature,
        None,
    );
    options.seed = request.seed.unwrap_or_default();
    options.sound_tags = request.sound_tags;
    let extension = extension_of(&request.audio_path);
    let (t, decoded) = transcribe(
        &state,
        admission,
        Bytes::from(bytes),
        extension,
        options,
        Style::Original,
    )
    .await?;
    Ok(Json(json!({
        "success": true,
        "text": t.text,
        "confidence": t.confidence(),
        "language": t.language,
        "language_probability": t.language_probability,
        "no_speech": t.no_speech,
        "duration": decoded.seconds,
        "warnings": decoded.warnings,
        "processing_time_ms": t.timings.processing.as_millis() as u64,
        "queue_time_ms": t.timings.queued.as_millis() as u64,
        "backend": t.backend.as_str(),
        "retried_on_cpu": t.retried_on_cpu,
        "segments": t.segments.iter().map(|s| json!({
            "start": seconds(s.start),
            "end": seconds(s.end),
            "text": s.text.trim(),
        })).collect::<Vec<_>>(),
    })))
}
