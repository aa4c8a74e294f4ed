//! Sounds without speech, made the same way every time (a fixed-seed generator), at 16 kHz:
//! what the speech guard's tests send. The bench set (bench/speechless_set.py, made by sox) has
//! more of them, and the guard's thresholds were chosen there, not on these.

/// Samples per second.
pub const RATE: usize = 16_000;

/// A small fixed-seed generator (xorshift), uniform in -1..1.
struct Noise(u64);

impl Noise {
    fn next(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
}

/// `seconds` of digital silence.
pub fn silence(seconds: f32) -> Vec<f32> {
    vec![0.0; (seconds * RATE as f32) as usize]
}

/// White noise at `level` (peak amplitude).
pub fn white_noise(seconds: f32, level: f32, seed: u64) -> Vec<f32> {
    let mut noise = Noise(seed | 1);
    (0..(seconds * RATE as f32) as usize)
        .map(|_| noise.next() * level)
        .collect()
}

/// Brown (red) noise: integrated white noise, kept from drifting, scaled to `level` peak.
pub fn brown_noise(seconds: f32, level: f32, seed: u64) -> Vec<f32> {
    let mut noise = Noise(seed | 1);
    let mut x = 0.0f32;
    let raw: Vec<f32> = (0..(seconds * RATE as f32) as usize)
        .map(|_| {
            x = 0.998 * x + 0.02 * noise.next();
            x
        })
        .collect();
    normalize(raw, level)
}

/// Pink noise (Paul Kellett's economy filter over white noise), scaled to `level` peak.
pub fn pink_noise(seconds: f32, level: f32, seed: u64) -> Vec<f32> {
    let mut noise = Noise(seed | 1);
    let (mut b0, mut b1, mut b2) = (0.0f32, 0.0f32, 0.0f32);
    let raw: Vec<f32> = (0..(seconds * RATE as f32) as usize)
        .map(|_| {
            let w = noise.next();
            b0 = 0.99765 * b0 + w * 0.0990460;
            b1 = 0.96300 * b1 + w * 0.2965164;
            b2 = 0.57000 * b2 + w * 1.0526913;
            b0 + b1 + b2 + w * 0.1848
        })
        .collect();
    normalize(raw, level)
}

/// Mains hum at `hz` (50 or 60) with its third and fifth harmonics, `level` peak.
pub fn hum(seconds: f32, hz: f32, level: f32) -> Vec<f32> {
    let raw: Vec<f32> = (0..(seconds * RATE as f32) as usize)
        .map(|i| {
            let t = i as f32 / RATE as f32;
            let w = std::f32::consts::TAU * hz * t;
            w.sin() + 0.5 * (3.0 * w).sin() + 0.25 * (5.0 * w).sin()
        })
        .collect();
    normalize(raw, level)
}

/// A melody: `notes` (Hz) in turn over `seconds`, each a sine with soft edges, `level` peak.
pub fn tones(seconds: f32, notes: &[f32], level: f32) -> Vec<f32> {
    let n = (seconds * RATE as f32) as usize;
    let per = n / notes.len().max(1);
    (0..n)
        .map(|i| {
            let hz = notes[(i / per.max(1)).min(notes.len() - 1)];
            let k = i % per.max(1);
            let edge = ((k.min(per - k) as f32) / (0.02 * RATE as f32)).min(1.0);
            level * edge * (std::f32::consts::TAU * hz * i as f32 / RATE as f32).sin()
        })
        .collect()
}

/// `samples` as a 16 kHz mono 16-bit PCM WAV file.
pub fn wav_bytes(samples: &[f32]) -> Vec<u8> {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: RATE as u32,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut out = std::io::Cursor::new(Vec::new());
    let mut writer = hound::WavWriter::new(&mut out, spec).expect("a WAV writer");
    for s in samples {
        writer
            .write_sample((s.clamp(-1.0, 1.0) * 32767.0) as i16)
            .expect("a sample");
    }
    writer.finalize().expect("a WAV file");
    out.into_inner()
}

fn normalize(mut samples: Vec<f32>, level: f32) -> Vec<f32> {
    let peak = samples.iter().fold(0.0f32, |m, s| m.max(s.abs()));
    if peak > 0.0 {
        for s in &mut samples {
            *s *= level / peak;
        }
    }
    samples
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sounds_are_repeatable_and_within_their_level() {
        assert_eq!(white_noise(1.0, 0.1, 7), white_noise(1.0, 0.1, 7));
        for sound in [
            white_noise(1.0, 0.1, 7),
            brown_noise(1.0, 0.1, 7),
            pink_noise(1.0, 0.1, 7),
            hum(1.0, 50.0, 0.1),
            tones(1.0, &[440.0, 660.0], 0.1),
        ] {
            assert_eq!(sound.len(), RATE);
            let peak = sound.iter().fold(0.0f32, |m, s| m.max(s.abs()));
            assert!(peak > 0.05 && peak <= 0.1001, "{peak}");
        }
    }
}
