//! The checks [`WhisperState::full`](super::WhisperState::full) makes before it hands audio and
//! parameters to `whisper_full_with_state`.
//!
//! whisper.cpp trusts its caller: some values made it loop forever (a temperature schedule
//! with no temperature in it, a duration far past the end of the audio), read outside the
//! spectrogram (a negative offset), abort the process (an out-of-range prompt token, a
//! temperature step so small that the schedule fills memory) or decode NaN. Each such value is
//! either refused here with [`WhisperError::GenericError`] and one of the codes below, or, where
//! whisper.cpp's own semantics give it a meaning, normalized to it. `WhisperState::full`
//! documents the table; [`fault_of`] tells, for any error of `full`, whether it refused the
//! caller's input, and which part of it (the recognizer answers such a request as the client's
//! mistake, never as a failure of its device).

use std::ffi::{c_int, CStr};

use crate::api::context::WhisperInnerContext;
use crate::sys;
use crate::{WhisperError, WhisperTokenId};

/// An audio sample is NaN or infinite.
pub(crate) const AUDIO_NOT_FINITE: c_int = -101;
/// An audio sample is further from zero than [`MAX_SAMPLE_MAGNITUDE`].
pub(crate) const AUDIO_OUT_OF_RANGE: c_int = -102;
/// `temperature` is NaN, infinite or negative.
pub(crate) const BAD_TEMPERATURE: c_int = -103;
/// `temperature_inc` is NaN or infinite, or so small that the temperature schedule would have
/// more than [`MAX_TEMPERATURES`] steps.
pub(crate) const BAD_TEMPERATURE_INC: c_int = -104;
/// A threshold or penalty is NaN.
pub(crate) const NAN_THRESHOLD: c_int = -105;
/// `offset_ms` is negative.
pub(crate) const NEGATIVE_OFFSET: c_int = -106;
/// `duration_ms` is negative.
pub(crate) const NEGATIVE_DURATION: c_int = -107;
/// The language is not one whisper.cpp knows.
pub(crate) const UNKNOWN_LANGUAGE: c_int = -108;
/// A prompt token (`set_tokens`) is not a token of the model.
pub(crate) const BAD_PROMPT_TOKEN: c_int = -109;
/// whisper.cpp's own refusal of more than 8 decoders (`best_of` or `beam_size`).
const TOO_MANY_DECODERS: c_int = -4;
/// whisper.cpp's own refusal of an `audio_ctx` larger than the model's.
const AUDIO_CTX_TOO_LARGE: c_int = -5;

/// What the caller got wrong when `full` refused its input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fault {
    /// The audio: empty, not finite, or not audio at all (far beyond ±1).
    Audio,
    /// A parameter.
    Parameters,
}

/// Every refusal of `full` that is the caller's mistake: its code, what it is about, and a
/// short description.
const REFUSALS: [(c_int, Fault, &str); 11] = [
    (
        AUDIO_NOT_FINITE,
        Fault::Audio,
        "a sample is NaN or infinite",
    ),
    (
        AUDIO_OUT_OF_RANGE,
        Fault::Audio,
        "a sample is beyond ±1,000,000 (PCM lies within ±1)",
    ),
    (
        BAD_TEMPERATURE,
        Fault::Parameters,
        "the temperature is NaN, infinite or negative",
    ),
    (
        BAD_TEMPERATURE_INC,
        Fault::Parameters,
        "the temperature increment is unusable",
    ),
    (
        NAN_THRESHOLD,
        Fault::Parameters,
        "a threshold or penalty is NaN",
    ),
    (NEGATIVE_OFFSET, Fault::Parameters, "the offset is negative"),
    (
        NEGATIVE_DURATION,
        Fault::Parameters,
        "the duration is negative",
    ),
    (
        UNKNOWN_LANGUAGE,
        Fault::Parameters,
        "the language is not one whisper knows",
    ),
    (
        BAD_PROMPT_TOKEN,
        Fault::Parameters,
        "a prompt token is not a token of the model",
    ),
    (
        TOO_MANY_DECODERS,
        Fault::Parameters,
        "more than 8 beams or candidates",
    ),
    (
        AUDIO_CTX_TOO_LARGE,
        Fault::Parameters,
        "audio_ctx is larger than the model's",
    ),
];

/// Whether `error`, returned by [`WhisperState::full`](super::WhisperState::full), refused the
/// caller's input rather than failed: what was wrong, and a description. `None` for a
/// failure (of the device, of memory, of whisper.cpp).
pub(crate) fn fault_of(error: &WhisperError) -> Option<(Fault, &'static str)> {
    match error {
        WhisperError::NoSamples => Some((Fault::Audio, "no samples")),
        WhisperError::GenericError(code) => REFUSALS
            .iter()
            .find(|(c, _, _)| c == code)
            .map(|&(_, fault, why)| (fault, why)),
        _ => None,
    }
}

/// A refusal: its code, and why, for the log and for a caller that checks before running.
#[derive(Debug)]
pub(crate) struct Refusal {
    pub(crate) code: c_int,
    pub(crate) why: String,
}

impl From<Refusal> for WhisperError {
    fn from(refusal: Refusal) -> Self {
        // The caller's mistake, not a fault of the library: at debug level, so that input
        // cannot fill a log.
        log::debug!(target: "whisper_steady", "whisper_full refused: {}", refusal.why);
        WhisperError::GenericError(refusal.code)
    }
}

/// Samples further from zero than this are refused. PCM in floating point lies within ±1;
/// a million times full scale is not audio (integer PCM passed as floats is the usual cause),
/// and around 1e17 whisper.cpp's spectrogram overflows to infinity, which turns into NaN in
/// the model.
pub(crate) const MAX_SAMPLE_MAGNITUDE: f32 = 1.0e6;

/// The longest temperature schedule accepted (whisper.cpp's default, 0.0 by 0.2, has 6 steps).
/// Each step is a whole re-decode of a window that failed; a step too small to change the
/// temperature made whisper.cpp grow the schedule until memory ran out.
pub(crate) const MAX_TEMPERATURES: f32 = 100.0;

/// whisper.cpp's temperature schedule stops below this (`1.0f + 1e-6f`).
const SCHEDULE_END: f32 = 1.0 + 1e-6;

/// whisper.cpp's spectrogram reflects the first 200 samples after the first one, reading
/// `samples[1..=200]` whatever the length: shorter input was read out of bounds.
pub(crate) const MIN_MEL_SAMPLES: usize = 201;

/// `data`, or a copy padded with zeros (silence) to [`MIN_MEL_SAMPLES`] when it is shorter. Such
/// audio (under 13 ms) gives no segments either way: whisper.cpp skips anything under 100 ms.
pub(crate) fn padded_for_mel(data: &[f32]) -> std::borrow::Cow<'_, [f32]> {
    if data.len() >= MIN_MEL_SAMPLES {
        return std::borrow::Cow::Borrowed(data);
    }
    let mut padded = data.to_vec();
    padded.resize(MIN_MEL_SAMPLES, 0.0);
    std::borrow::Cow::Owned(padded)
}

/// The audio rate whisper.cpp expects.
const SAMPLE_RATE: i64 = 16_000;

/// What `full` passes to whisper.cpp: the parameters after normalization, and the prompt's
/// tokens that they may point at (they must live until whisper.cpp returns).
pub(crate) struct Checked {
    pub(crate) fp: sys::whisper_full_params,
    _prompt: Option<Vec<WhisperTokenId>>,
}

fn refuse(code: c_int, why: std::fmt::Arguments<'_>) -> Refusal {
    Refusal {
        code,
        why: why.to_string(),
    }
}

/// Checks `data` and `fp` for a run on `ctx`; see the module documentation.
///
/// # Safety
/// The pointers in `fp` (language, prompt, prompt tokens) must be null or valid, as the
/// `FullParams` that owns or borrows them guarantees.
pub(crate) unsafe fn check(
    ctx: &WhisperInnerContext,
    mut fp: sys::whisper_full_params,
    data: &[f32],
) -> Result<Checked, WhisperError> {
    check_audio(data)?;
    check_floats(&mut fp)?;
    check_window(&mut fp, data.len())?;
    // SAFETY: forwarded from the caller.
    unsafe {
        check_language(fp.language)?;
        check_prompt_tokens(ctx.ctx, &fp)?;
    }
    // SAFETY: forwarded from the caller.
    let prompt = unsafe { prompt_tokens(ctx, &fp) };
    if let Some(tokens) = &prompt {
        fp.prompt_tokens = tokens.as_ptr();
        fp.prompt_n_tokens = tokens.len() as c_int;
    }
    Ok(Checked {
        fp,
        _prompt: prompt,
    })
}

/// Refuses audio that is not finite or far beyond ±1 (the checks of `full` on its samples; a
/// caller that queues audio runs them before queueing).
pub(crate) fn check_audio(data: &[f32]) -> Result<(), Refusal> {
    // Two passes (a non-finite sample is reported before a loud one wherever each is); each
    // under a millisecond per minute of audio.
    if let Some(i) = data.iter().position(|s| !s.is_finite()) {
        return Err(refuse(
            AUDIO_NOT_FINITE,
            format_args!("audio sample {i} is {}", data[i]),
        ));
    }
    if let Some(i) = data.iter().position(|s| s.abs() > MAX_SAMPLE_MAGNITUDE) {
        return Err(refuse(
            AUDIO_OUT_OF_RANGE,
            format_args!(
                "audio sample {i} is {} (PCM lies within ±1; the limit is ±{MAX_SAMPLE_MAGNITUDE})",
                data[i]
            ),
        ));
    }
    Ok(())
}

fn check_floats(fp: &mut sys::whisper_full_params) -> Result<(), Refusal> {
    let t = fp.temperature;
    if !t.is_finite() || t < 0.0 {
        return Err(refuse(
            BAD_TEMPERATURE,
            format_args!("temperature {t} (must be finite and at least 0)"),
        ));
    }
    let inc = fp.temperature_inc;
    if !inc.is_finite() {
        return Err(refuse(
            BAD_TEMPERATURE_INC,
            format_args!("temperature_inc {inc} (must be finite; 0 or less disables fallback)"),
        ));
    }
    if inc > 0.0 {
        if t >= SCHEDULE_END {
            // whisper.cpp's schedule is [t, t + inc, ...] below 1.0, empty when t starts above
            // it, and an empty schedule never advanced through the audio. One decode at `t`
            // is what such a schedule can mean: no fallback.
            fp.temperature_inc = 0.0;
        } else if (SCHEDULE_END - t) / inc > MAX_TEMPERATURES {
            return Err(refuse(
                BAD_TEMPERATURE_INC,
                format_args!(
                    "temperature_inc {inc} from {t} makes more than {MAX_TEMPERATURES} fallback temperatures"
                ),
            ));
        }
    }
    let named = [
        ("entropy_thold", fp.entropy_thold),
        ("logprob_thold", fp.logprob_thold),
        ("no_speech_thold", fp.no_speech_thold),
        ("length_penalty", fp.length_penalty),
        ("thold_pt", fp.thold_pt),
        ("thold_ptsum", fp.thold_ptsum),
        ("max_initial_ts", fp.max_initial_ts),
        ("grammar_penalty", fp.grammar_penalty),
    ];
    if let Some((name, _)) = named.iter().find(|(_, v)| v.is_nan()) {
        return Err(refuse(NAN_THRESHOLD, format_args!("{name} is NaN")));
    }
    Ok(())
}

fn check_window(fp: &mut sys::whisper_full_params, n_samples: usize) -> Result<(), Refusal> {
    if fp.offset_ms < 0 {
        return Err(refuse(
            NEGATIVE_OFFSET,
            format_args!("offset_ms {} is negative", fp.offset_ms),
        ));
    }
    if fp.duration_ms < 0 {
        return Err(refuse(
            NEGATIVE_DURATION,
            format_args!(
                "duration_ms {} is negative (0 means to the end)",
                fp.duration_ms
            ),
        ));
    }
    // whisper.cpp decodes from offset to offset + duration, silence included when that runs
    // past the end of the audio: i32::MAX ms was 600 hours of it. The audio ends where it
    // ends, which is what duration 0 says.
    let audio_ms = n_samples as i64 * 1000 / SAMPLE_RATE;
    if fp.duration_ms > 0 && i64::from(fp.offset_ms) + i64::from(fp.duration_ms) >= audio_ms {
        fp.duration_ms = 0;
    }
    Ok(())
}

/// # Safety
/// `language` is null or a valid NUL-terminated string.
unsafe fn check_language(language: *const std::ffi::c_char) -> Result<(), Refusal> {
    if language.is_null() {
        return Ok(());
    }
    // SAFETY: the caller's contract.
    let code = unsafe { CStr::from_ptr(language) };
    let bytes = code.to_bytes();
    if bytes.is_empty() || bytes == b"auto" {
        return Ok(());
    }
    // SAFETY: valid C string; whisper_lang_id reads a static table.
    if unsafe { sys::whisper_lang_id(language) } < 0 {
        return Err(refuse(
            UNKNOWN_LANGUAGE,
            format_args!(
                "language {:?} is not one whisper.cpp knows (use a code such as \"en\", or \"auto\")",
                code.to_string_lossy()
            ),
        ));
    }
    Ok(())
}

/// # Safety
/// `fp.prompt_tokens` is null or points at `fp.prompt_n_tokens` tokens.
unsafe fn check_prompt_tokens(
    ctx: *mut sys::whisper_context,
    fp: &sys::whisper_full_params,
) -> Result<(), Refusal> {
    if fp.prompt_tokens.is_null() || fp.prompt_n_tokens <= 0 {
        return Ok(());
    }
    // SAFETY: the caller's contract (`set_tokens` borrows the slice for the params' lifetime).
    let tokens =
        unsafe { std::slice::from_raw_parts(fp.prompt_tokens, fp.prompt_n_tokens as usize) };
    // SAFETY: reads the model's hyperparameters.
    let n_vocab = unsafe { sys::whisper_n_vocab(ctx) };
    if let Some(t) = tokens.iter().find(|&&t| t < 0 || t >= n_vocab) {
        // whisper.cpp fed it to the decoder: GGML_ASSERT in get_rows, and the process died.
        return Err(refuse(
            BAD_PROMPT_TOKEN,
            format_args!(
                "prompt token {t} is not a token of this model (0 to {})",
                n_vocab - 1
            ),
        ));
    }
    Ok(())
}

/// The initial prompt as the tokens whisper.cpp conditions on, or `None` when there is no
/// prompt to tokenize (none, or prompt tokens given, which whisper.cpp then uses instead).
///
/// whisper.cpp tokenizes the prompt itself, in time cubic in its longest word, and then takes
/// only its last `min(n_max_text_ctx, n_text_ctx / 2) - 1` tokens (223 for every released
/// model; at least one). Here it is tokenized in linear time ([`Vocab`](crate::api::tokenizer::Vocab))
/// and only those last tokens are passed: a prompt of any length and language gives what
/// whisper.cpp's own tokenizer would have given, without its cost.
///
/// # Safety
/// `fp.initial_prompt` is null or a valid NUL-terminated string.
unsafe fn prompt_tokens(
    ctx: &WhisperInnerContext,
    fp: &sys::whisper_full_params,
) -> Option<Vec<WhisperTokenId>> {
    if fp.initial_prompt.is_null() || !fp.prompt_tokens.is_null() {
        return None;
    }
    // SAFETY: the caller's contract.
    let text = unsafe { CStr::from_ptr(fp.initial_prompt) }.to_bytes();
    // SAFETY: reads the model's hyperparameters.
    let n_text_ctx = unsafe { sys::whisper_n_text_ctx(ctx.ctx) };
    let window = fp.n_max_text_ctx.min(n_text_ctx / 2);
    let keep = usize::try_from(window - 1).unwrap_or(0).max(1);
    let tokens = ctx.vocab().tokenize_last(text, keep);
    log::debug!(
        target: "whisper_steady",
        "initial prompt of {} bytes: its last {} tokens passed (whisper conditions on at most {keep})",
        text.len(),
        tokens.len()
    );
    Some(tokens)
}
