//! Audio helpers beyond whisper-rs's: sample-rate conversion to whisper's 16 kHz, and (cargo
//! feature `audio`) one decoder from WAV, MP3, FLAC and OGG Vorbis bytes to 16 kHz mono.

#[cfg(feature = "audio")]
mod decode;
mod resample;

#[cfg(feature = "audio")]
pub use decode::{decode, DecodeError, Decoded, MIN_SECONDS};
pub use resample::{resample, StreamResampler};

/// One little-endian integer PCM sample as a sample in [-1, 1): one byte is unsigned 8-bit
/// (WAV's), two, three and four bytes are signed 16-, 24- and 32-bit. The one reading of raw
/// PCM for the streaming protocols (`/v1/live`, `/v1/realtime`, Wyoming).
pub fn pcm_sample(bytes: &[u8]) -> f32 {
    match *bytes {
        [b] => (f32::from(b) - 128.0) / 128.0,
        [a, b] => f32::from(i16::from_le_bytes([a, b])) / 32_768.0,
        [a, b, c] => (i32::from_le_bytes([0, a, b, c]) >> 8) as f32 / 8_388_608.0,
        [a, b, c, d] => i32::from_le_bytes([a, b, c, d]) as f32 / 2_147_483_648.0,
        _ => 0.0,
    }
}

/// Little-endian 16-bit PCM as samples in [-1, 1) (a trailing odd byte is left out).
pub fn pcm16_to_f32(bytes: &[u8]) -> Vec<f32> {
    bytes.chunks_exact(2).map(pcm_sample).collect()
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pcm_samples_of_every_width() {
        assert_eq!(pcm_sample(&[128]), 0.0);
        assert_eq!(pcm_sample(&[0]), -1.0);
        assert_eq!(pcm_sample(&[0x00, 0x80]), -1.0);
        assert_eq!(pcm_sample(&[0x00, 0x40]), 0.5);
        assert_eq!(pcm_sample(&[0x00, 0x00, 0xC0]), -0.5);
        assert_eq!(pcm_sample(&[0x00, 0x00, 0x00, 0x40]), 0.5);
        assert_eq!(
            pcm16_to_f32(&[0x00, 0x40, 0x00, 0xC0, 0x7F]),
            vec![0.5, -0.5]
        );
    }
}
