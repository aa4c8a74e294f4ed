//! What a library caller can get wrong in a request, checked once before it is queued.
//!
//! The raw safe API keeps its own safety net (`api/state/checks.rs`); the server turns HTTP
//! input into [`RecognizeOptions`] and leaves these checks to this module.

use super::{RecognizeError, RecognizeOptions, Shared, MAX_BEAMS, MAX_SAMPLES};

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
    let multilingual = shared.lanes[0].ctx.is_multilingual();
    let language = match options.language.as_deref().map(str::trim) {
        None | Some("") | Some("auto") => {
            if multilingual {
                "auto".to_owned()
            } else {
                "en".to_owned()
            }
        }
        Some(code) => {
            let code = code.to_ascii_lowercase();
            if crate::get_lang_id(&code).is_none() {
                return Err(RecognizeError::InvalidOptions(format!(
                    "language {code:?} is not one whisper knows (use a code such as \"en\", or \"auto\")"
                )));
            }
            if !multilingual && code != "en" {
                return Err(RecognizeError::InvalidOptions(format!(
                    "language {code:?}: the model is English-only"
                )));
            }
            code
        }
    };
    if options.translate && !multilingual {
        return Err(RecognizeError::InvalidOptions(
            "translate: the model is English-only".into(),
        ));
    }
    if let Some(beams) = options.beam_size {
        if !(1..=MAX_BEAMS).contains(&beams) {
            return Err(RecognizeError::InvalidOptions(format!(
                "beam_size must be between 1 and {MAX_BEAMS} (got {beams})"
            )));
        }
    }
    if let Some(t) = options.temperature {
        if !(0.0..=1.0).contains(&t) {
            return Err(RecognizeError::InvalidOptions(format!(
                "temperature must be between 0.0 and 1.0 (got {t})"
            )));
        }
    }
    if let Some(frames) = options.audio_ctx {
        let max = shared.lanes[0].ctx.n_audio_ctx().max(1) as u32;
        if !(1..=max).contains(&frames) {
            return Err(RecognizeError::InvalidOptions(format!(
                "audio_ctx must be between 1 and {max} frames (got {frames})"
            )));
        }
    }
    if let Some(prompt) = &options.initial_prompt {
        if prompt.contains('\0') {
            return Err(RecognizeError::InvalidOptions(
                "initial_prompt contains a NUL character".into(),
            ));
        }
    }
    if options.deadline.is_some_and(|d| d.is_zero()) {
        return Err(RecognizeError::InvalidOptions(
            "deadline must be longer than zero".into(),
        ));
    }
    if options.use_gpu == Some(false) && shared.cpu_lane().is_none() {
        return Err(RecognizeError::InvalidOptions(
            "use_gpu=false: this recognizer has no CPU workers (set fallback_to_cpu)".into(),
        ));
    }
    Ok(language)
}
