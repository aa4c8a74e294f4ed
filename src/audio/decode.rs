//! Audio bytes (WAV in any PCM or float format, MP3, FLAC, OGG Vorbis; any rate, any channels)
//! to 16 kHz mono samples: symphonia decodes, the channels are averaged, [`resample`] converts
//! the rate. The one decoder of the CLI and the server (cargo feature `audio`).

use std::fmt;
use std::io::Cursor;

use super::{resample, MAX_SAMPLE_RATE, MIN_SAMPLE_RATE, WHISPER_SAMPLE_RATE};
use symphonia::core::audio::SampleBuffer;
use symphonia::core::codecs::{DecoderOptions, CODEC_TYPE_NULL};
use symphonia::core::errors::Error as SymError;
use symphonia::core::formats::FormatOptions;
use symphonia::core::io::{MediaSourceStream, MediaSourceStreamOptions};
use symphonia::core::meta::MetadataOptions;
use symphonia::core::probe::Hint;

/// Decoded audio, ready for whisper.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Decoded {
    /// 16 kHz mono samples in [-1, 1] (move them into a recognizer: `std::mem::take`).
    pub samples: Vec<f32>,
    /// The duration in seconds.
    pub seconds: f64,
    /// The file's sample rate.
    pub sample_rate: u32,
    /// The file's channels (averaged into one).
    pub channels: usize,
    /// Whether the file ends before the length its header declares (said in `warnings`).
    pub truncated: bool,
    /// What a user should know about how the audio was read (a truncated file, damaged
    /// frames skipped).
    pub warnings: Vec<String>,
}

/// The shortest audio whisper can use, in seconds: whisper.cpp skips anything shorter.
pub const MIN_SECONDS: f64 = 0.1;

/// Why bytes are not audio whisper can use. The message is meant for the user (it names no
/// file; a caller adds that).
#[derive(Debug, Clone, PartialEq)]
pub struct DecodeError(pub String);

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DecodeError {}

/// Decodes `bytes` (`extension`, when known, helps the format probe) and converts them to
/// 16 kHz mono. Audio longer than `max_seconds` is refused, and so is a sample rate outside
/// [`MIN_SAMPLE_RATE`]..=[`MAX_SAMPLE_RATE`].
///
/// Bounded by construction: the rate and the length the header declares are checked before
/// anything is decoded, the decoded length again as it grows, so the memory it takes is at most
/// about `max_seconds` of audio at the file's rate plus the same at 16 kHz, whatever the header
/// claims. Never panics: a panic inside the decoders on hostile input is turned into an error
/// too.
pub fn decode(
    bytes: &[u8],
    extension: Option<&str>,
    max_seconds: f64,
) -> Result<Decoded, DecodeError> {
    if bytes.is_empty() {
        return Err(DecodeError("the audio is empty".into()));
    }
    // A WAV header's rate is read before the decoder sees it (a rate of 0 panics inside it).
    if let Some(rate) = wav_sample_rate(bytes) {
        check_rate(rate)?;
    }
    match std::panic::catch_unwind(|| decode_inner(bytes, extension, max_seconds)) {
        Ok(result) => result,
        Err(_) => Err(DecodeError(
            "the audio could not be decoded (the decoder rejected its contents)".into(),
        )),
    }
}

fn decode_inner(
    bytes: &[u8],
    extension: Option<&str>,
    max_seconds: f64,
) -> Result<Decoded, DecodeError> {
    let source = MediaSourceStream::new(
        Box::new(Cursor::new(bytes.to_vec())),
        MediaSourceStreamOptions::default(),
    );
    let mut hint = Hint::new();
    if let Some(ext) = extension {
        hint.with_extension(ext);
    }
    let probed = symphonia::default::get_probe()
        .format(
            &hint,
            source,
            &FormatOptions::default(),
            &MetadataOptions::default(),
        )
        .map_err(|e| {
            DecodeError(format!(
                "unsupported or unrecognized audio format (expected WAV, MP3, FLAC or OGG): {e}"
            ))
        })?;
    let mut format = probed.format;
    let track = format
        .tracks()
        .iter()
        .find(|t| t.codec_params.codec != CODEC_TYPE_NULL)
        .ok_or_else(|| DecodeError("the file holds no audio track".into()))?;
    let track_id = track.id;
    let mut decoder = symphonia::default::get_codecs()
        .make(&track.codec_params, &DecoderOptions::default())
        .map_err(|e| DecodeError(format!("unsupported audio codec: {e}")))?;

    let declared_frames = track.codec_params.n_frames;
    let mut rate = track.codec_params.sample_rate.unwrap_or(0);
    // What the header says is checked before any decoding: a lie here costs nothing yet. Its
    // length only when the bytes could hold it (a frame takes at least a byte in every
    // uncompressed format), so that a file that is cut short, or streamed with an "unknown"
    // length, is decoded as far as it goes (and checked as it grows) instead.
    if rate != 0 {
        check_rate(rate)?;
        if let Some(frames) = declared_frames.filter(|&f| f <= bytes.len() as u64) {
            check_length(frames, rate, max_seconds)?;
        }
    }
    let mut damaged = 0u64;
    let mut mono: Vec<f32> = Vec::new();
    let mut buffer: Option<SampleBuffer<f32>> = None;
    let mut frames_limit = u64::MAX;
    let mut channels_seen = 0;
    loop {
        let packet = match format.next_packet() {
            Ok(packet) => packet,
            // The end of the stream (or of a truncated one).
            Err(SymError::IoError(_)) | Err(SymError::ResetRequired) => break,
            Err(e) => return Err(DecodeError(format!("the audio is malformed: {e}"))),
        };
        if packet.track_id() != track_id {
            continue;
        }
        let decoded = match decoder.decode(&packet) {
            Ok(decoded) => decoded,
            // A damaged frame: skip it, as players do, and say so.
            Err(SymError::DecodeError(_)) => {
                damaged += 1;
                continue;
            }
            Err(SymError::IoError(_)) => break,
            Err(e) => return Err(DecodeError(format!("the audio cannot be decoded: {e}"))),
        };
        let spec = *decoded.spec();
        check_rate(spec.rate)?;
        if rate != spec.rate {
            if !mono.is_empty() {
                return Err(DecodeError(
                    "the sample rate changes within the audio".into(),
                ));
            }
            rate = spec.rate;
        }
        if frames_limit == u64::MAX {
            frames_limit = (max_seconds * f64::from(rate)) as u64;
        }
        let channels = spec.channels.count().max(1);
        channels_seen = channels;
        let buf = match &mut buffer {
            Some(buf) if buf.capacity() >= decoded.capacity() * channels => buf,
            _ => buffer.insert(SampleBuffer::new(decoded.capacity() as u64, spec)),
        };
        buf.copy_interleaved_ref(decoded);
        let scale = 1.0 / channels as f32;
        mono.extend(
            buf.samples()
                .chunks_exact(channels)
                .map(|frame| frame.iter().sum::<f32>() * scale),
        );
        if mono.len() as u64 > frames_limit {
            return Err(too_long(max_seconds));
        }
    }
    if mono.is_empty() || rate == 0 {
        return Err(DecodeError("the audio holds no samples".into()));
    }
    let seconds = mono.len() as f64 / f64::from(rate);
    let mut warnings = Vec::new();
    // more than 10 ms missing: the file ends before its header says it does
    let truncated = declared_frames
        .is_some_and(|declared| declared > mono.len() as u64 + u64::from(rate / 100));
    if let Some(declared) = declared_frames.filter(|_| truncated) {
        warnings.push(format!(
            "truncated: the header declares {:.3} s, {seconds:.3} s decoded",
            declared as f64 / f64::from(rate)
        ));
    }
    if damaged > 0 {
        warnings.push(format!("{damaged} damaged frames skipped"));
    }
    if seconds < MIN_SECONDS {
        let mut message =
            format!("the audio is {seconds:.3} s long; whisper needs at least {MIN_SECONDS} s");
        for w in &warnings {
            message.push_str(" (");
            message.push_str(w);
            message.push(')');
        }
        return Err(DecodeError(message));
    }
    let samples = resample(&mono, rate, WHISPER_SAMPLE_RATE);
    if samples.iter().any(|s| !s.is_finite()) {
        return Err(DecodeError(
            "the audio holds samples that are not numbers".into(),
        ));
    }
    Ok(Decoded {
        samples,
        seconds,
        sample_rate: rate,
        channels: channels_seen,
        truncated,
        warnings,
    })
}

/// The sample rate in a WAV file's `fmt ` chunk, if `bytes` start as a RIFF WAVE file and
/// have one.
fn wav_sample_rate(bytes: &[u8]) -> Option<u32> {
    if bytes.len() < 12 || &bytes[..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
        return None;
    }
    let mut at = 12usize;
    while let Some(header) = bytes.get(at..at.checked_add(8)?) {
        let len = u32::from_le_bytes(header[4..8].try_into().ok()?) as usize;
        if &header[..4] == b"fmt " {
            let rate = bytes.get(at + 12..at + 16)?;
            return Some(u32::from_le_bytes(rate.try_into().ok()?));
        }
        // chunks are padded to an even length
        at = at.checked_add(8)?.checked_add(len)?.checked_add(len & 1)?;
    }
    None
}

/// Refuses a sample rate outside [`MIN_SAMPLE_RATE`]..=[`MAX_SAMPLE_RATE`].
fn check_rate(rate: u32) -> Result<(), DecodeError> {
    if (MIN_SAMPLE_RATE..=MAX_SAMPLE_RATE).contains(&rate) {
        Ok(())
    } else {
        Err(DecodeError(format!(
            "the audio declares a sample rate of {rate} Hz; accepted are \
             {MIN_SAMPLE_RATE} to {MAX_SAMPLE_RATE} Hz"
        )))
    }
}

/// Refuses a declared length over `max_seconds`.
fn check_length(frames: u64, rate: u32, max_seconds: f64) -> Result<(), DecodeError> {
    if frames as f64 / f64::from(rate) > max_seconds {
        Err(too_long(max_seconds))
    } else {
        Ok(())
    }
}

fn too_long(max_seconds: f64) -> DecodeError {
    DecodeError(format!(
        "the audio is longer than the limit of {max_seconds} seconds"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A WAV file: `format` 1 (PCM) or 3 (float), `bits` per sample, samples already encoded.
    fn wav_raw(format: u16, bits: u16, rate: u32, channels: u16, data: &[u8]) -> Vec<u8> {
        let block = channels * bits / 8;
        let mut out = Vec::new();
        out.extend_from_slice(b"RIFF");
        out.extend_from_slice(&(36 + data.len() as u32).to_le_bytes());
        out.extend_from_slice(b"WAVEfmt ");
        out.extend_from_slice(&16u32.to_le_bytes());
        out.extend_from_slice(&format.to_le_bytes());
        out.extend_from_slice(&channels.to_le_bytes());
        out.extend_from_slice(&rate.to_le_bytes());
        out.extend_from_slice(&(rate * u32::from(block)).to_le_bytes());
        out.extend_from_slice(&block.to_le_bytes());
        out.extend_from_slice(&bits.to_le_bytes());
        out.extend_from_slice(b"data");
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        out.extend_from_slice(data);
        out
    }

    /// A WAV file of 16-bit PCM.
    fn wav(rate: u32, channels: u16, frames: &[i16]) -> Vec<u8> {
        let data: Vec<u8> = frames.iter().flat_map(|s| s.to_le_bytes()).collect();
        wav_raw(1, 16, rate, channels, &data)
    }

    #[test]
    fn float_24_bit_and_8_bit_wav_at_other_rates() {
        // Float32 stereo at 44.1 kHz, both channels 0.25: half a second.
        let data: Vec<u8> = (0..22_050 * 2)
            .flat_map(|_| 0.25f32.to_le_bytes())
            .collect();
        let d = decode(&wav_raw(3, 32, 44_100, 2, &data), None, 60.0).unwrap();
        assert_eq!(d.samples.len(), 8_000);
        assert!(
            (d.samples[4_000] - 0.25).abs() < 1e-3,
            "{}",
            d.samples[4_000]
        );
        // 24-bit mono at 22.05 kHz, -0.5.
        let v: i32 = -(1 << 22);
        let data: Vec<u8> = (0..22_050)
            .flat_map(|_| v.to_le_bytes()[..3].to_vec())
            .collect();
        let d = decode(&wav_raw(1, 24, 22_050, 1, &data), None, 60.0).unwrap();
        assert!(
            (d.samples[8_000] + 0.5).abs() < 1e-3,
            "{}",
            d.samples[8_000]
        );
        // 8-bit unsigned mono at 8 kHz, silence (128) with one loud half.
        let data: Vec<u8> = (0..8_000)
            .map(|i| if i < 4_000 { 128 } else { 192 })
            .collect();
        let d = decode(&wav_raw(1, 8, 8_000, 1, &data), None, 60.0).unwrap();
        assert_eq!(d.samples.len(), 16_000);
        assert!(d.samples[4_000].abs() < 1e-3 && (d.samples[12_000] - 0.5).abs() < 1e-2);
    }

    #[test]
    fn stereo_48k_becomes_mono_16k() {
        // One second of stereo: left +0.5, right -0.25 (mean 0.125).
        let frames: Vec<i16> = (0..48_000).flat_map(|_| [16_384i16, -8_192]).collect();
        let d = decode(&wav(48_000, 2, &frames), Some("wav"), 60.0).unwrap();
        assert!((d.seconds - 1.0).abs() < 1e-9);
        assert_eq!(d.samples.len(), 16_000);
        assert!(
            (d.samples[8_000] - 0.125).abs() < 1e-3,
            "{}",
            d.samples[8_000]
        );
    }

    #[test]
    fn garbage_empty_and_overlong_input_are_errors() {
        assert!(decode(b"", None, 60.0).unwrap_err().0.contains("empty"));
        let noise: Vec<u8> = (0..4096u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        assert!(decode(&noise, None, 60.0).is_err());
        let header_only = wav(16_000, 1, &[]);
        assert!(decode(&header_only, Some("wav"), 60.0).is_err());
        let two_seconds = wav(16_000, 1, &[0; 32_000]);
        assert!(decode(&two_seconds, Some("wav"), 1.0)
            .unwrap_err()
            .0
            .contains("longer"));
        let truncated = &wav(16_000, 1, &[100; 16_000])[..1000];
        let d = decode(truncated, Some("wav"), 60.0);
        assert!(d.is_err() || d.unwrap().samples.len() < 16_000);
    }

    #[test]
    fn rates_outside_the_accepted_range_are_refused_before_decoding() {
        // The red team's header: 1,000,000,001 Hz of 8-bit audio (104 MB would have made a
        // 34 GB filter table); the same refusal for 20 MHz, 1 Hz, 0 Hz and just outside.
        let data = vec![128u8; 104_000];
        for rate in [1_000_000_001, 20_000_000, 384_001, 7_999, 1, 0] {
            let started = std::time::Instant::now();
            let e = decode(&wav_raw(1, 8, rate, 1, &data), Some("wav"), 10_800.0).unwrap_err();
            assert!(
                e.0.contains("sample rate") && e.0.contains("8000 to 384000 Hz"),
                "{rate}: {e}"
            );
            assert!(
                started.elapsed() < std::time::Duration::from_secs(1),
                "{rate}"
            );
        }
        for rate in [8_000, 384_000] {
            let data = vec![128u8; rate as usize / 5];
            assert!(decode(&wav_raw(1, 8, rate, 1, &data), Some("wav"), 60.0).is_ok());
        }
    }

    #[test]
    fn a_declared_length_over_the_limit_is_refused_from_the_header() {
        // 20 s of 16-bit audio declared and present, a limit of 10 s.
        let e = decode(&wav(16_000, 1, &[0; 320_000]), Some("wav"), 10.0).unwrap_err();
        assert!(e.0.contains("longer than the limit of 10 seconds"), "{e}");
        // A streamed WAV whose header says "unknown length" (0xFFFFFFFF): decoded as far as
        // it goes, not refused for what it cannot hold.
        let mut streamed = wav(16_000, 1, &[1000; 16_000]);
        streamed[40..44].copy_from_slice(&u32::MAX.to_le_bytes());
        streamed[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        let d = decode(&streamed, Some("wav"), 10.0).unwrap();
        assert!((d.seconds - 1.0).abs() < 0.01, "{}", d.seconds);
        // ...and still stopped by the limit while it grows.
        let mut long = wav(16_000, 1, &[1000; 320_000]);
        long[40..44].copy_from_slice(&u32::MAX.to_le_bytes());
        long[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        let e = decode(&long, Some("wav"), 10.0).unwrap_err();
        assert!(e.0.contains("longer than the limit"), "{e}");
    }

    #[test]
    fn a_truncated_file_is_decoded_as_far_as_it_goes_and_says_so() {
        // 11 s declared, 2 s present
        let full = wav(16_000, 1, &[300; 176_000]);
        let cut = &full[..44 + 2 * 32_000];
        let d = decode(cut, Some("wav"), 60.0).unwrap();
        assert!((d.seconds - 2.0).abs() < 0.01, "{}", d.seconds);
        assert_eq!(
            d.warnings,
            ["truncated: the header declares 11.000 s, 2.000 s decoded"]
        );
        // whole files have no warning
        assert!(decode(&full, Some("wav"), 60.0)
            .unwrap()
            .warnings
            .is_empty());
        // 8 ms present: less than whisper can use, a clear error that also says why
        let e = decode(&full[..44 + 256], Some("wav"), 60.0).unwrap_err().0;
        assert!(
            e.contains("0.008 s long") && e.contains("at least 0.1 s") && e.contains("truncated"),
            "{e}"
        );
        // a short whole file: the same error, without the warning
        let e = decode(&wav(16_000, 1, &[0; 800]), Some("wav"), 60.0)
            .unwrap_err()
            .0;
        assert!(
            e.contains("0.050 s long") && !e.contains("truncated"),
            "{e}"
        );
    }
}
