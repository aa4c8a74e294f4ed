//! The original API: `POST /api/upload` and `POST /api/recognize`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Extension;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use whisper_steady::recognizer::{RecognizeError, RecognizeOptions, Reservation, Transcript};

use crate::auth::Caller;
use crate::error::{ApiError, Style};
use crate::storage::is_safe_extension;
use crate::AppState;
use whisper_steady::audio::{self, Decoded};

/// A request let in: its place in the recognition queue and who sent it (its key is charged
/// for the audio once it is decoded).
pub(crate) struct Admission {
    pub(crate) reservation: Reservation,
    pub(crate) caller: Option<Caller>,
}

/// Takes a place in the recognition queue for a request, before any work is done on its audio
/// (a full queue answers 429 at once).
pub(crate) fn admit(
    state: &AppState,
    caller: Option<Extension<Caller>>,
    style: Style,
) -> Result<Admission, ApiError> {
    let reservation = state
        .recognizer
        .reserve()
        .map_err(|e| recognize_error(state, e, style))?;
    Ok(Admission {
        reservation,
        caller: caller.map(|Extension(c)| c),
    })
}

/// Decodes audio off the runtime, at most `server.max_concurrent_decodes` at once (callers
/// hold a [`Reservation`], so at most `queue_limit` wait for a turn). The bytes are the
/// request's own (not copied); the samples are for the recognizer to take (moved, not
/// copied); the rest describes the audio.
///
/// The decoded length is charged to the caller's key (`audio_seconds_per_hour`: 429 when it
/// is spent).
pub(crate) async fn decode(
    state: &Arc<AppState>,
    caller: Option<&Caller>,
    bytes: Bytes,
    extension: Option<String>,
    style: Style,
) -> Result<Decoded, ApiError> {
    let max_seconds = state.config.recognition.max_audio_seconds;
    let permit = Arc::clone(&state.decodes)
        .acquire_owned()
        .await
        .map_err(|_| {
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "shutting down").style(style)
        })?;
    let decoded = tokio::task::spawn_blocking(move || {
        let decoded = audio::decode(&bytes, extension.as_deref(), max_seconds);
        drop(permit);
        decoded
    })
    .await
    .map_err(|_| ApiError::bad_request("the audio could not be decoded").style(style))?
    .map_err(|e| ApiError::from(e).style(style))?;
    state.auth.charge_audio(caller, decoded.seconds, style)?;
    Ok(decoded)
}

/// A refusal or failure of the recognizer as the client's error.
pub(crate) fn recognize_error(state: &AppState, e: RecognizeError, style: Style) -> ApiError {
    ApiError::from_recognize(e, || state.recognizer.health()).style(style)
}

/// Decodes audio off the runtime, then runs the recognizer in the place the admission holds
/// and awaits the result.
pub(crate) async fn transcribe(
    state: &Arc<AppState>,
    admission: Admission,
    bytes: Bytes,
    extension: Option<String>,
    options: RecognizeOptions,
    style: Style,
) -> Result<(Transcript, Decoded), ApiError> {
    let mut decoded = decode(state, admission.caller.as_ref(), bytes, extension, style).await?;
    let ticket = admission
        .reservation
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
    let admission = admit(&state, caller, Style::Original)?;
    let storage = state.storage.clone();
    let name = request.audio_path.clone();
    let bytes = tokio::task::spawn_blocking(move || {
        let path = storage.resolve(&name)?;
        storage.read(&name, &path)
    })
    .await
    .map_err(|_| ApiError::bad_request("audio_path could not be checked"))??;
    let mut options = state.options(
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
            "start": s.start.as_secs_f64(),
            "end": s.end.as_secs_f64(),
            "text": s.text.trim(),
        })).collect::<Vec<_>>(),
    })))
}
