//! Audio helpers beyond whisper-rs's: sample-rate conversion to whisper's 16 kHz, and (cargo
//! feature `audio`) one decoder from WAV, MP3, FLAC and OGG Vorbis bytes to 16 kHz mono.

#[cfg(feature = "audio")]
mod decode;
mod resample;

#[cfg(feature = "audio")]
pub use decode::{decode, DecodeError, Decoded, MIN_SECONDS};
pub use resample::resample;

/// The sample rate whisper models take (Hz).
pub const WHISPER_SAMPLE_RATE: u32 = 16_000;
