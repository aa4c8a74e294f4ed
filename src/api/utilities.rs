//! Audio sample helpers.

use crate::WhisperError;

/// Convert an array of 16 bit mono audio samples to a vector of 32 bit floats.
///
/// `output` must have the same length as `samples`.
///
/// ```
/// let samples = [0i16, 16384, -32768];
/// let mut out = [0.0f32; 3];
/// whisper_steady::convert_integer_to_float_audio(&samples, &mut out).unwrap();
/// assert_eq!(out, [0.0, 0.5, -1.0]);
/// ```
pub fn convert_integer_to_float_audio(
    samples: &[i16],
    output: &mut [f32],
) -> Result<(), WhisperError> {
    if samples.len() != output.len() {
        return Err(WhisperError::InputOutputLengthMismatch {
            input_len: samples.len(),
            output_len: output.len(),
        });
    }
    for (sample, out) in samples.iter().zip(output.iter_mut()) {
        *out = f32::from(*sample) / 32768.0;
    }
    Ok(())
}

/// Convert 32-bit floating point stereo PCM audio to 32-bit floating point mono PCM audio.
///
/// `input` holds interleaved left/right samples; `output` must be half as long.
///
/// ```
/// let stereo = [0.5f32, 1.0, -1.0, 0.0];
/// let mut mono = [0.0f32; 2];
/// whisper_steady::convert_stereo_to_mono_audio(&stereo, &mut mono).unwrap();
/// assert_eq!(mono, [0.75, -0.5]);
/// ```
pub fn convert_stereo_to_mono_audio(input: &[f32], output: &mut [f32]) -> Result<(), WhisperError> {
    if input.len() % 2 != 0 {
        return Err(WhisperError::HalfSampleMissing(input.len()));
    }
    let frames = input.len() / 2;
    if output.len() != frames {
        return Err(WhisperError::InputOutputLengthMismatch {
            input_len: frames,
            output_len: output.len(),
        });
    }
    for (pair, out) in input.chunks_exact(2).zip(output.iter_mut()) {
        *out = (pair[0] + pair[1]) / 2.0;
    }
    Ok(())
}
