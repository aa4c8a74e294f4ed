//! Audio helpers beyond whisper-rs's: sample-rate conversion to whisper's 16 kHz.

mod resample;

pub use resample::resample;

/// The sample rate whisper models take (Hz).
pub const WHISPER_SAMPLE_RATE: u32 = 16_000;
