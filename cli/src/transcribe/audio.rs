//! WAV input: PCM integer samples of up to 32 bits or 32-bit float, any number of channels
//! (averaged into one), any sample rate from 1 kHz to 768 kHz (resampled to 16 kHz).

use std::fmt;
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::Path;

use hound::{SampleFormat, WavReader};

use whisper_steady::audio::resample;

/// The sample rate whisper.cpp expects.
pub const WHISPER_SAMPLE_RATE: u32 = 16_000;
/// Lowest accepted sample rate.
const MIN_RATE: u32 = 1_000;
/// Highest accepted sample rate.
const MAX_RATE: u32 = 768_000;

/// What the WAV file held before conversion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WavInfo {
    /// Its sample rate, in Hz.
    pub sample_rate: u32,
    /// Its number of channels.
    pub channels: u16,
    /// Its number of frames (samples per channel) read.
    pub frames: usize,
    /// Whether the file ended before the length that its header gives.
    pub truncated: bool,
}

/// Audio ready for whisper.cpp: mono, 16 kHz, samples in -1.0..=1.0.
#[derive(Debug, Clone)]
pub struct Audio {
    /// The samples.
    pub samples: Vec<f32>,
    /// What the file held.
    pub info: WavInfo,
}

/// Why a WAV file could not be used. Its message names no file; the caller adds that.
#[derive(Debug)]
pub enum AudioError {
    /// The file could not be opened or read.
    Io(io::Error),
    /// The file is not a well-formed WAV file, or one in an encoding that cannot be read.
    Wav(hound::Error),
    /// A well-formed WAV file in a sample format this tool does not read.
    Unsupported(String),
    /// The file holds no samples.
    Empty,
}

impl fmt::Display for AudioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AudioError::Io(err) => write!(f, "{err}"),
            AudioError::Wav(hound::Error::IoError(err)) => write!(f, "{err}"),
            AudioError::Wav(hound::Error::FormatError(reason)) => {
                write!(f, "not a readable WAV file ({reason})")
            }
            AudioError::Wav(hound::Error::Unsupported) => {
                f.write_str("unsupported WAV encoding (compressed or unknown format)")
            }
            AudioError::Wav(err) => write!(f, "not a readable WAV file ({err})"),
            AudioError::Unsupported(what) => write!(f, "unsupported WAV format: {what}"),
            AudioError::Empty => f.write_str("the file contains no audio samples"),
        }
    }
}

impl std::error::Error for AudioError {}

impl AudioError {
    /// Whether converting the file with another tool would help.
    pub fn needs_conversion(&self) -> bool {
        matches!(self, AudioError::Wav(_) | AudioError::Unsupported(_))
    }
}

/// Reads the WAV file at `path` and converts it for whisper.cpp.
pub fn load_wav(path: &Path) -> Result<Audio, AudioError> {
    let file = File::open(path).map_err(AudioError::Io)?;
    decode_wav(BufReader::new(file))
}

/// Decodes a WAV stream and converts it for whisper.cpp (see the module documentation).
pub fn decode_wav<R: Read>(reader: R) -> Result<Audio, AudioError> {
    let reader = WavReader::new(reader).map_err(AudioError::Wav)?;
    let spec = reader.spec();
    match (spec.sample_format, spec.bits_per_sample) {
        (SampleFormat::Int, 1..=32) | (SampleFormat::Float, 32) => {}
        (SampleFormat::Int, bits) => {
            return Err(AudioError::Unsupported(format!(
                "{bits}-bit integer samples (supported: up to 32-bit integer, 32-bit float)"
            )))
        }
        (SampleFormat::Float, bits) => {
            return Err(AudioError::Unsupported(format!(
                "{bits}-bit float samples (supported: up to 32-bit integer, 32-bit float)"
            )))
        }
    }
    if !(MIN_RATE..=MAX_RATE).contains(&spec.sample_rate) {
        return Err(AudioError::Unsupported(format!(
            "sample rate {} Hz (supported: {} Hz to {} Hz)",
            spec.sample_rate, MIN_RATE, MAX_RATE
        )));
    }
    let channels = usize::from(spec.channels);
    let frames_in_header = reader.len() as usize / channels.max(1);
    let (mono, truncated) = match spec.sample_format {
        SampleFormat::Float => mix_down(reader.into_samples::<f32>(), channels, frames_in_header)?,
        SampleFormat::Int => {
            let scale = 1.0 / (1u64 << (spec.bits_per_sample - 1)) as f32;
            let samples = reader
                .into_samples::<i32>()
                .map(|s| s.map(|v| v as f32 * scale));
            mix_down(samples, channels, frames_in_header)?
        }
    };
    if mono.is_empty() {
        return Err(AudioError::Empty);
    }
    let info = WavInfo {
        sample_rate: spec.sample_rate,
        channels: spec.channels,
        frames: mono.len(),
        truncated,
    };
    let samples = if spec.sample_rate == WHISPER_SAMPLE_RATE {
        mono
    } else {
        resample(&mono, spec.sample_rate, WHISPER_SAMPLE_RATE)
    };
    Ok(Audio { samples, info })
}

/// Whether a read error means that the data ended early. hound 3.5 reports that as an
/// `Other` error with a fixed message; other readers say `UnexpectedEof`.
fn is_short_read(err: &io::Error) -> bool {
    err.kind() == io::ErrorKind::UnexpectedEof
        || (err.kind() == io::ErrorKind::Other && err.to_string() == "Failed to read enough bytes.")
}

/// Averages interleaved frames of `channels` samples into one sample each. A file that ends
/// early (shorter than its header says) keeps what was read, and the second value is `true`;
/// a partial last frame is dropped.
fn mix_down(
    samples: impl Iterator<Item = Result<f32, hound::Error>>,
    channels: usize,
    frames_hint: usize,
) -> Result<(Vec<f32>, bool), AudioError> {
    let mut out = Vec::with_capacity(frames_hint);
    let mut sum = 0.0f32;
    let mut count = 0;
    for sample in samples {
        match sample {
            Ok(value) => {
                sum += value;
                count += 1;
                if count == channels {
                    out.push(sum / channels as f32);
                    sum = 0.0;
                    count = 0;
                }
            }
            Err(hound::Error::IoError(err)) if is_short_read(&err) => {
                return Ok((out, true));
            }
            Err(err) => return Err(AudioError::Wav(err)),
        }
    }
    Ok((out, false))
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use hound::{WavSpec, WavWriter};

    use super::*;

    /// A WAV file of `samples`, in memory.
    fn wav<S: hound::Sample + Copy>(spec: WavSpec, samples: &[S]) -> Vec<u8> {
        let mut bytes = Cursor::new(Vec::new());
        let mut writer = WavWriter::new(&mut bytes, spec).unwrap();
        for &s in samples {
            writer.write_sample(s).unwrap();
        }
        writer.finalize().unwrap();
        bytes.into_inner()
    }

    /// A WAV header description.
    fn spec(channels: u16, sample_rate: u32, bits: u16, format: SampleFormat) -> WavSpec {
        WavSpec {
            channels,
            sample_rate,
            bits_per_sample: bits,
            sample_format: format,
        }
    }

    #[test]
    fn sixteen_bit_mono() {
        let bytes = wav(
            spec(1, 16_000, 16, SampleFormat::Int),
            &[0i16, 16384, -32768, 32767],
        );
        let audio = decode_wav(Cursor::new(bytes)).unwrap();
        assert_eq!(audio.samples, [0.0, 0.5, -1.0, 32767.0 / 32768.0]);
        assert_eq!(
            audio.info,
            WavInfo {
                sample_rate: 16_000,
                channels: 1,
                frames: 4,
                truncated: false
            }
        );
    }

    #[test]
    fn twenty_four_bit_stereo_is_averaged() {
        let half = 1 << 22; // 0.5 at 24 bits
        let bytes = wav(
            spec(2, 16_000, 24, SampleFormat::Int),
            &[half, 0, -half, -half, half, -half],
        );
        let audio = decode_wav(Cursor::new(bytes)).unwrap();
        assert_eq!(audio.samples, [0.25, -0.5, 0.0]);
        assert_eq!(audio.info.channels, 2);
        assert_eq!(audio.info.frames, 3);
    }

    #[test]
    fn thirty_two_bit_int_and_eight_bit() {
        let bytes = wav(
            spec(1, 16_000, 32, SampleFormat::Int),
            &[i32::MIN, 1 << 30, 0],
        );
        let audio = decode_wav(Cursor::new(bytes)).unwrap();
        assert_eq!(audio.samples, [-1.0, 0.5, 0.0]);

        let bytes = wav(spec(1, 16_000, 8, SampleFormat::Int), &[-128i8, 64, 0]);
        let audio = decode_wav(Cursor::new(bytes)).unwrap();
        assert_eq!(audio.samples, [-1.0, 0.5, 0.0]);
    }

    #[test]
    fn float_stereo() {
        let bytes = wav(
            spec(2, 16_000, 32, SampleFormat::Float),
            &[0.5f32, 1.0, -1.0, 0.0],
        );
        let audio = decode_wav(Cursor::new(bytes)).unwrap();
        assert_eq!(audio.samples, [0.75, -0.5]);
    }

    #[test]
    fn other_rates_are_resampled() {
        let samples: Vec<f32> = (0..44_100).map(|n| (n as f32 * 0.01).sin() * 0.1).collect();
        let bytes = wav(spec(1, 44_100, 32, SampleFormat::Float), &samples);
        let audio = decode_wav(Cursor::new(bytes)).unwrap();
        assert_eq!(audio.samples.len(), 16_000);
        assert_eq!(audio.info.sample_rate, 44_100);
        assert_eq!(audio.info.frames, 44_100);
    }

    #[test]
    fn no_samples_is_an_error() {
        let bytes = wav::<i16>(spec(1, 16_000, 16, SampleFormat::Int), &[]);
        let err = decode_wav(Cursor::new(bytes)).unwrap_err();
        assert!(matches!(err, AudioError::Empty), "{err}");
        assert_eq!(err.to_string(), "the file contains no audio samples");
    }

    #[test]
    fn not_a_wav_file() {
        let err = decode_wav(Cursor::new(b"hello, this is text".to_vec())).unwrap_err();
        assert!(err.needs_conversion());
        assert_eq!(
            err.to_string(),
            "not a readable WAV file (no RIFF tag found)"
        );
    }

    #[test]
    fn unsupported_rate() {
        let bytes = wav(spec(1, 500, 16, SampleFormat::Int), &[0i16; 10]);
        let err = decode_wav(Cursor::new(bytes)).unwrap_err();
        assert!(err.to_string().contains("sample rate 500 Hz"), "{err}");
    }

    #[test]
    fn truncated_file_keeps_what_was_read() {
        let mut bytes = wav(spec(1, 16_000, 16, SampleFormat::Int), &[1000i16; 100]);
        bytes.truncate(bytes.len() - 101); // 50.5 samples short
        let audio = decode_wav(Cursor::new(bytes)).unwrap();
        assert!(audio.info.truncated);
        assert_eq!(audio.samples.len(), 49);
    }
}
