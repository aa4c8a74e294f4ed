//! The way every HTTP request for a transcription takes (the original API and OpenAI's):
//! admission into the recognition queue, decoding off the runtime (charged to the caller's key),
//! the recognizer, and its refusals as the client's errors.

use std::sync::Arc;

use axum::body::Bytes;
use axum::http::StatusCode;
use axum::Extension;
use whisper_steady::audio::{self, Decoded};
use whisper_steady::recognizer::{
    RecognizeError, RecognizeOptions, Recognizer, Reservation, Transcript,
};

use crate::auth::Caller;
use crate::error::{ApiError, Style};
use crate::models::Lease;
use crate::storage::is_safe_extension;
use crate::AppState;

/// A request let in: the model it asked for (kept loaded while the request lasts), its place
/// in that model's recognition queue and who sent it (its key is charged for the audio once it
/// is decoded).
pub(crate) struct Admission {
    pub(crate) reservation: Reservation,
    pub(crate) caller: Option<Caller>,
    pub(crate) lease: Lease,
}

/// Finds the model a request names (`None`: the default; an unknown name is a 400), loads it
/// if need be (waiting at most the request timeout), and takes a place in its recognition
/// queue, before any work is done on the audio (a full queue answers 429 at once).
pub(crate) async fn admit(
    state: &AppState,
    model: Option<&str>,
    caller: Option<Extension<Caller>>,
    style: Style,
) -> Result<Admission, ApiError> {
    let lease = state
        .lease(model)
        .await
        .map_err(|e| ApiError::from(e).style(style))?;
    let reservation = lease
        .recognizer()
        .reserve()
        .map_err(|e| recognizer_error(lease.recognizer(), e, style))?;
    Ok(Admission {
        reservation,
        caller: caller.map(|Extension(c)| c),
        lease,
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

/// A refusal or failure of `recognizer` as the client's error.
pub(crate) fn recognizer_error(
    recognizer: &Recognizer,
    e: RecognizeError,
    style: Style,
) -> ApiError {
    ApiError::from_recognize(e, || recognizer.health()).style(style)
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
    let recognizer = admission.lease.recognizer();
    let ticket = admission
        .reservation
        .submit(std::mem::take(&mut decoded.samples), options)
        .map_err(|e| recognizer_error(recognizer, e, style))?;
    // Dropping this future (the client went away) drops the ticket, which cancels the request.
    let transcript = ticket
        .await
        .map_err(|e| recognizer_error(recognizer, e, style))?;
    Ok((transcript, decoded))
}

/// The extension of a file name, if it is a safe one.
pub(crate) fn extension_of(name: &str) -> Option<String> {
    let ext = std::path::Path::new(name).extension()?.to_str()?;
    is_safe_extension(ext).then(|| ext.to_ascii_lowercase())
}
