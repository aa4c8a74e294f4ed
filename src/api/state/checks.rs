//! The checks [`WhisperState::full`](super::WhisperState::full) makes before it hands audio and
//! parameters to `whisper_full_with_state`.
//!
//! whisper.cpp trusts its caller: some values made it loop forever (a temperature schedule
//! with no temperature in it, a duration far past the end of the audio), read outside the
//! spectrogram (a negative offset), abort the process (an out-of-range prompt token, a
//! temperature step so small that the schedule fills memory) or decode NaN. Each such value is
//! either refused here with [`WhisperError::GenericError`] and one of the codes below, or, where
//! whisper.cpp's own semantics give it a meaning, normalized to it. `WhisperState::full`
//! documents the table.

use std::ffi::{c_int, CStr, CString};

use crate::sys;
use crate::WhisperError;

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
/// The initial prompt has a run of characters that whisper.cpp's tokenizer cannot take.
pub(crate) const PROMPT_RUN_TOO_LONG: c_int = -110;

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

/// The initial prompt is cut to its last this many bytes (whisper.cpp uses only the last
/// `n_text_ctx / 2` tokens of it, 224 for every released model: about a kilobyte of English).
pub(crate) const MAX_PROMPT_BYTES: usize = 16 * 1024;

/// The longest run of one character class (ASCII letters, ASCII digits, whitespace, anything
/// else) accepted in the initial prompt. whisper.cpp's tokenizer (std::regex and a greedy
/// longest match) takes time cubic in such a run and recursion as deep as it: 6,000 spaces took
/// 7 s, 30,000 letters overflowed a 2 MiB thread stack.
pub(crate) const MAX_PROMPT_RUN: usize = 1024;

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

/// What `full` passes to whisper.cpp: the parameters after normalization, and a replacement
/// prompt that they may point into (it must live until whisper.cpp returns).
pub(crate) struct Checked {
    pub(crate) fp: sys::whisper_full_params,
    _prompt: Option<CString>,
}

fn refuse(code: c_int, why: std::fmt::Arguments<'_>) -> WhisperError {
    log::error!(target: "whisper_steady", "whisper_full refused: {why}");
    WhisperError::GenericError(code)
}

/// Checks `data` and `fp` for a run on `ctx`; see the module documentation.
///
/// # Safety
/// The pointers in `fp` (language, prompt, prompt tokens) must be null or valid, as the
/// `FullParams` that owns or borrows them guarantees.
pub(crate) unsafe fn check(
    ctx: *mut sys::whisper_context,
    mut fp: sys::whisper_full_params,
    data: &[f32],
) -> Result<Checked, WhisperError> {
    check_audio(data)?;
    check_floats(&mut fp)?;
    check_window(&mut fp, data.len())?;
    // SAFETY: forwarded from the caller.
    unsafe {
        check_language(fp.language)?;
        check_prompt_tokens(ctx, &fp)?;
    }
    // SAFETY: forwarded from the caller.
    let prompt = unsafe { prepare_prompt(&fp) }?;
    if let Some(prompt) = &prompt {
        fp.initial_prompt = prompt.as_ptr();
    }
    Ok(Checked {
        fp,
        _prompt: prompt,
    })
}

fn check_audio(data: &[f32]) -> Result<(), WhisperError> {
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

fn check_floats(fp: &mut sys::whisper_full_params) -> Result<(), WhisperError> {
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

fn check_window(fp: &mut sys::whisper_full_params, n_samples: usize) -> Result<(), WhisperError> {
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
unsafe fn check_language(language: *const std::ffi::c_char) -> Result<(), WhisperError> {
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
) -> Result<(), WhisperError> {
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

/// The character classes of whisper.cpp's pre-tokenizer regex (in the C locale).
fn class(b: u8) -> u8 {
    match b {
        b'a'..=b'z' | b'A'..=b'Z' => 0,
        b'0'..=b'9' => 1,
        b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c => 2,
        _ => 3,
    }
}

/// The longest run of bytes of one character class in `text`. whisper.cpp's tokenizer takes
/// time cubic in it and recursion as deep as it, so runs over [`MAX_PROMPT_RUN`] are refused
/// wherever text reaches the tokenizer (the initial prompt, `WhisperContext::tokenize`).
pub(crate) fn longest_class_run(text: &[u8]) -> usize {
    let mut run = 0usize;
    let mut longest = 0usize;
    for (i, &b) in text.iter().enumerate() {
        run = if i > 0 && class(text[i - 1]) == class(b) {
            run + 1
        } else {
            1
        };
        longest = longest.max(run);
    }
    longest
}

/// The initial prompt cut to its last [`MAX_PROMPT_BYTES`] (at a word boundary), or `None` when
/// it is short enough as it is; refused when it has a run longer than [`MAX_PROMPT_RUN`].
///
/// # Safety
/// `fp.initial_prompt` is null or a valid NUL-terminated string.
unsafe fn prepare_prompt(fp: &sys::whisper_full_params) -> Result<Option<CString>, WhisperError> {
    // whisper.cpp tokenizes the prompt only when no prompt tokens are given.
    if fp.initial_prompt.is_null() || !fp.prompt_tokens.is_null() {
        return Ok(None);
    }
    // SAFETY: the caller's contract.
    let bytes = unsafe { CStr::from_ptr(fp.initial_prompt) }.to_bytes();
    let mut start = 0;
    if bytes.len() > MAX_PROMPT_BYTES {
        start = bytes.len() - MAX_PROMPT_BYTES;
        // Start at the next whitespace, so that the words kept tokenize as they did in the whole
        // prompt; if there is none, at the next UTF-8 character.
        start = match bytes[start..].iter().position(|&b| class(b) == 2) {
            Some(i) => start + i,
            None => {
                start
                    + bytes[start..]
                        .iter()
                        .position(|&b| (b as i8) >= -0x40)
                        .unwrap_or(0)
            }
        };
    }
    let kept = &bytes[start..];
    let longest = longest_class_run(kept);
    if longest > MAX_PROMPT_RUN {
        return Err(refuse(
            PROMPT_RUN_TOO_LONG,
            format_args!(
                "the initial prompt has a run of {longest} bytes without a word boundary (the limit is {MAX_PROMPT_RUN})"
            ),
        ));
    }
    if start == 0 {
        return Ok(None);
    }
    log::debug!(
        target: "whisper_steady",
        "initial prompt of {} bytes cut to its last {} (whisper.cpp uses only its last tokens)",
        bytes.len(),
        kept.len()
    );
    Ok(Some(
        CString::new(kept).expect("a suffix of a C string has no NUL byte"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_follow_the_tokenizer_regex() {
        assert_eq!(class(b'a'), class(b'Z'));
        assert_ne!(class(b'a'), class(b'1'));
        assert_eq!(class(b' '), class(b'\n'));
        assert_eq!(class(0xc3), class(b'.'));
    }
}
