//! The mel filterbank whisper.cpp needs in the model file.
//!
//! OpenAI's Whisper ships its filterbank as a NumPy file made with
//! `librosa.filters.mel(sr=16000, n_fft=400, n_mels=N)` (Slaney's mel scale and area
//! normalization); CTranslate2 models do not carry it. This module computes the same matrix,
//! following librosa's arithmetic step by step in `f64` with the same two roundings to `f32`,
//! so that the result matches the shipped tables.

pub use crate::audio::WHISPER_SAMPLE_RATE;
/// The FFT size of Whisper's spectrogram (25 ms windows at 16 kHz).
pub const WHISPER_N_FFT: usize = 400;

/// Slaney's mel scale: linear below 1 kHz (3 mels per 200 Hz), logarithmic above.
const F_SP: f64 = 200.0 / 3.0;
const MIN_LOG_HZ: f64 = 1000.0;
const MIN_LOG_MEL: f64 = MIN_LOG_HZ / F_SP;

fn log_step() -> f64 {
    6.4f64.ln() / 27.0
}

fn hz_to_mel(hz: f64) -> f64 {
    if hz >= MIN_LOG_HZ {
        MIN_LOG_MEL + (hz / MIN_LOG_HZ).ln() / log_step()
    } else {
        hz / F_SP
    }
}

fn mel_to_hz(mel: f64) -> f64 {
    if mel >= MIN_LOG_MEL {
        MIN_LOG_HZ * (log_step() * (mel - MIN_LOG_MEL)).exp()
    } else {
        F_SP * mel
    }
}

/// NumPy's `linspace(start, stop, num)` (endpoint included).
fn linspace(start: f64, stop: f64, num: usize) -> Vec<f64> {
    if num == 1 {
        return vec![start];
    }
    let step = (stop - start) / (num - 1) as f64;
    let mut out: Vec<f64> = (0..num).map(|i| i as f64 * step + start).collect();
    out[num - 1] = stop;
    out
}

/// The Slaney-normalized triangular mel filterbank of librosa's
/// `filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels, fmin=0, fmax=sample_rate/2,
/// htk=False, norm="slaney")`: `n_mels` rows of `n_fft / 2 + 1` values, row-major.
///
/// For Whisper, `mel_filterbank(WHISPER_SAMPLE_RATE, WHISPER_N_FFT, 80)` (or 128 for large-v3).
pub fn mel_filterbank(sample_rate: u32, n_fft: usize, n_mels: usize) -> Vec<f32> {
    let n_bins = n_fft / 2 + 1;
    let nyquist = f64::from(sample_rate) / 2.0;
    let fft_freqs = linspace(0.0, nyquist, n_bins);
    let mel_freqs: Vec<f64> = linspace(hz_to_mel(0.0), hz_to_mel(nyquist), n_mels + 2)
        .into_iter()
        .map(mel_to_hz)
        .collect();

    let mut weights = Vec::with_capacity(n_mels * n_bins);
    for i in 0..n_mels {
        let lower_width = mel_freqs[i + 1] - mel_freqs[i];
        let upper_width = mel_freqs[i + 2] - mel_freqs[i + 1];
        let enorm = 2.0 / (mel_freqs[i + 2] - mel_freqs[i]);
        for &f in &fft_freqs {
            let lower = -(mel_freqs[i] - f) / lower_width;
            let upper = (mel_freqs[i + 2] - f) / upper_width;
            let w = if upper < lower { upper } else { lower };
            // np.maximum(0, w): negatives become +0; a zero (even -0.0) is kept as it is.
            let w = if w < 0.0 { 0.0 } else { w };
            // librosa stores into an f32 array, then scales that array in f64 and stores again.
            let stored = w as f32;
            weights.push((f64::from(stored) * enorm) as f32);
        }
    }
    weights
}
