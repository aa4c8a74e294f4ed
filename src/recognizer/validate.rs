//! What a library caller can get wrong in a request, checked once before it is queued: the
//! audio (by the rules of `WhisperState::full`, `api/state/checks.rs`, run here so that a
//! refusal is the caller's error and never reaches a worker), [`RecognizeOptions::check`] (what
//! needs no model), and what depends on the model and the lanes.
//!
//! The server turns HTTP input into [`RecognizeOptions`] and leaves these checks to this
//! module.

use super::language::RunLanguage;
use super::{RecognizeError, RecognizeOptions, Shared, MAX_SAMPLES};
use crate::api::state::checks;

/// Checks a request before it is queued; returns the language to pass to whisper.cpp.
pub(super) fn validate(
    shared: &Shared,
    audio: &[f32],
    options: &RecognizeOptions,
) -> Result<RunLanguage, RecognizeError> {
    if audio.is_empty() {
        return Err(RecognizeError::InvalidAudio("no samples".into()));
    }
    if audio.len() > MAX_SAMPLES {
        return Err(RecognizeError::InvalidAudio(format!(
            "{} samples is more than whisper.cpp accepts ({MAX_SAMPLES})",
            audio.len()
        )));
    }
    checks::check_audio(audio).map_err(|refusal| RecognizeError::InvalidAudio(refusal.why))?;
    validate_options(shared, options)
}

/// Checks a request's options, what needs no model and what does; returns the language to
/// pass to whisper.cpp.
pub(super) fn validate_options(
    shared: &Shared,
    options: &RecognizeOptions,
) -> Result<RunLanguage, RecognizeError> {
    options.check()?;
    let language = options.language_on(&shared.languages)?;
    if let Some(frames) = options.audio_ctx {
        let max = shared.main_lane().ctx.n_audio_ctx().max(1) as u32;
        if !(1..=max).contains(&frames) {
            return Err(RecognizeError::InvalidOptions(format!(
                "audio_ctx must be between 1 and {max} frames (got {frames})"
            )));
        }
    }
    if options.use_gpu == Some(false) && shared.cpu_lane().is_none() {
        return Err(RecognizeError::InvalidOptions(
            "use_gpu=false: this recognizer has no CPU workers (set fallback_to_cpu)".into(),
        ));
    }
    Ok(language)
}
