//! Audio helpers beyond whisper-rs's: sample-rate conversion to whisper's 16 kHz, and (cargo
//! feature `audio`) one decoder from WAV, MP3, FLAC and OGG Vorbis bytes to 16 kHz mono.

#[cfg(feature = "audio")]
mod decode;
mod resample;

#[cfg(feature = "audio")]
pub use decode::{decode, DecodeError, Decoded, MIN_SECONDS};
pub use resample::{resample, StreamResampler};

/// The sample rate whisper models take (Hz).
pub const WHISPER_SAMPLE_RATE: u32 = 16_000;

/// The lowest sample rate `decode` (feature `audio`) accepts (Hz): telephone audio. Below it a
/// file says little that whisper could hear, and each byte would become many samples (a 1 Hz
/// header turns 21 KB into 3 hours of 16 kHz audio).
pub const MIN_SAMPLE_RATE: u32 = 8_000;

/// The highest sample rate `decode` (feature `audio`) accepts (Hz): the highest rate audio
/// hardware records at. Above it a header is a lie or an attack (the resampler's work grows
/// with the ratio).
pub const MAX_SAMPLE_RATE: u32 = 384_000;
