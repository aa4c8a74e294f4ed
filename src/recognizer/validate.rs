//! What a library caller can get wrong in a request, checked once before it is queued: the
//! audio, [`RecognizeOptions::check`] (what needs no model), and what depends on the model and
//! the lanes.
//!
//! The raw safe API keeps its own safety net (`api/state/checks.rs`); the server turns HTTP
//! input into [`RecognizeOptions`] and leaves these checks to this module.

use super::{RecognizeError, RecognizeOptions, Shared, MAX_SAMPLES};

/// Checks a request before it is queued; returns the language to pass to whisper.cpp.
pub(super) fn validate(
    shared: &Shared,
    audio: &[f32],
    options: &RecognizeOptions,
) -> Result<String, RecognizeError> {
    if audio.is_empty() {
        return Err(RecognizeError::InvalidAudio("no samples".into()));
    }
    if audio.len() > MAX_SAMPLES {
        return Err(RecognizeError::InvalidAudio(format!(
            "{} samples is more than whisper.cpp accepts ({MAX_SAMPLES})",
            audio.len()
        )));
    }
    if let Some(i) = audio.iter().position(|s| !s.is_finite()) {
        return Err(RecognizeError::InvalidAudio(format!(
            "sample {i} is not a finite number"
        )));
    }
    options.check()?;
    let multilingual = shared.lanes[0].ctx.is_multilingual();
    let language = match options.language_code() {
        None if multilingual => "auto".to_owned(),
        None => "en".to_owned(),
        // A language whisper knows (checked above).
        Some(code) if !multilingual && code != "en" => {
            return Err(RecognizeError::InvalidOptions(format!(
                "language {code:?}: the model is English-only"
            )));
        }
        Some(code) => code,
    };
    if options.translate && !multilingual {
        return Err(RecognizeError::InvalidOptions(
            "translate: the model is English-only".into(),
        ));
    }
    if let Some(frames) = options.audio_ctx {
        let max = shared.lanes[0].ctx.n_audio_ctx().max(1) as u32;
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
