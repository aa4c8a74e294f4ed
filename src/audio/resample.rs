//! Sample-rate conversion with a windowed-sinc (band-limited) interpolator.
//!
//! Each output sample is a weighted sum of the input samples within [`ZERO_CROSSINGS`] lobes
//! of a low-pass kernel on either side of its position. The kernel is a sinc whose cut-off is
//! [`CUTOFF`] of the lower of the two Nyquist frequencies (so downsampling first removes what
//! would alias), under a Blackman window. The weights are tabulated once per output phase:
//! exactly when the reduced ratio of the rates has at most [`MAX_PHASES`] phases (every common
//! rate: 8, 11.025, 22.05, 44.1, 48, 96 kHz...), otherwise at the nearest of [`MAX_PHASES`]
//! evenly spaced phases, a timing error below 1/8192 of an input sample. Each phase's weights
//! are normalised to sum to 1, so a constant signal passes unchanged. The signal is taken as
//! zero outside the input.
//!
//! The work and the table are bounded whatever the rates: the kernel widens with the ratio of
//! the input rate to the output rate, so beyond [`MAX_RATIO`] the input is first averaged over
//! groups of samples (a box filter, an integer decimation) to bring the ratio under it. The
//! table then holds at most [`MAX_PHASES`] × 2·⌈16·[`MAX_RATIO`]/0.95⌉ weights (17 MB); no
//! audio decoder produces such rates (`decode` refuses anything above
//! [`MAX_SAMPLE_RATE`](super::MAX_SAMPLE_RATE)), so this only keeps a caller's mistake or a
//! hostile header from asking for gigabytes.

/// Kernel half-width, in zero crossings of the sinc (at the cut-off frequency).
const ZERO_CROSSINGS: f64 = 16.0;
/// Cut-off as a fraction of the lower Nyquist frequency (leaves room for the transition band).
const CUTOFF: f64 = 0.95;
/// Most tabulated phases.
const MAX_PHASES: u64 = 4096;
/// The largest ratio of input rate to output rate the kernel is built for; beyond it the input
/// is first averaged over groups of samples.
const MAX_RATIO: u64 = 32;

/// Greatest common divisor.
fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// The low-pass kernel at `x` input samples from the output position: `fc·sinc(fc·x)` under a
/// Blackman window that is zero at ±`half`.
fn kernel(x: f64, fc: f64, half: f64) -> f64 {
    let u = x / half;
    if u.abs() >= 1.0 {
        return 0.0;
    }
    let window = 0.42
        + 0.5 * (std::f64::consts::PI * u).cos()
        + 0.08 * (2.0 * std::f64::consts::PI * u).cos();
    let y = std::f64::consts::PI * fc * x;
    let sinc = if y == 0.0 { 1.0 } else { y.sin() / y };
    fc * sinc * window
}

/// Dot product, in eight independent lanes so that it vectorizes.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0.0f32; 8];
    let (a8, b8) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = a8
        .remainder()
        .iter()
        .zip(b8.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in a8.zip(b8) {
        for ((lane, x), y) in lanes.iter_mut().zip(x).zip(y) {
            *lane += x * y;
        }
    }
    lanes.iter().sum::<f32>() + tail
}

/// Resamples `input` from `from` Hz to `to` Hz (see the module documentation for the method).
///
/// The output has `ceil(len · to / from)` samples; sample `n` is the signal at input position
/// `n · from / to`. Equal rates, or a zero rate, return the input unchanged. Its memory is the
/// output plus a table of at most 17 MB, whatever the rates (see the module documentation).
pub fn resample(input: &[f32], from: u32, to: u32) -> Vec<f32> {
    if from == to || from == 0 || to == 0 || input.is_empty() {
        return input.to_vec();
    }
    let (from, to) = (u64::from(from), u64::from(to));
    // Groups of `group` samples averaged into one bring the ratio under MAX_RATIO; the input
    // rate then counts in 1/group-ths: `from / (to · group)` is the ratio left.
    let group = from.div_ceil(to * MAX_RATIO);
    if group > 1 {
        let group_len = usize::try_from(group).unwrap_or(usize::MAX);
        let averaged: Vec<f32> = input
            .chunks(group_len)
            .map(|c| c.iter().sum::<f32>() / c.len() as f32)
            .collect();
        return sinc_resample(&averaged, from, to * group);
    }
    sinc_resample(input, from, to)
}

/// The windowed-sinc interpolation from `from` to `to` (any units, a ratio of at most
/// [`MAX_RATIO`] when downsampling).
fn sinc_resample(input: &[f32], from: u64, to: u64) -> Vec<f32> {
    let g = gcd(from, to);
    let (up, down) = (to / g, from / g);
    let phases = up.min(MAX_PHASES);

    let fc = CUTOFF * (to as f64 / from as f64).min(1.0);
    let half = ZERO_CROSSINGS / fc;
    // Output position q + p/phases reads inputs q+1-side ..= q+side.
    let side = half.ceil() as usize;
    let taps = 2 * side;
    let mut table = vec![0.0f32; phases as usize * taps];
    let mut weights = vec![0.0f64; taps];
    for (p, row) in table.chunks_exact_mut(taps).enumerate() {
        let frac = p as f64 / phases as f64;
        for (j, w) in weights.iter_mut().enumerate() {
            *w = kernel(frac + (side as f64 - 1.0 - j as f64), fc, half);
        }
        let sum: f64 = weights.iter().sum();
        for (out, w) in row.iter_mut().zip(&weights) {
            *out = (w / sum) as f32;
        }
    }

    let out_len = (input.len() as u64 * up).div_ceil(down);
    let mut out = Vec::with_capacity(out_len as usize);
    for n in 0..out_len {
        let pos = n * down; // in 1/up-ths of an input sample
        let mut q = pos / up;
        let mut p = if phases == up {
            pos % up
        } else {
            ((pos % up) * phases + up / 2) / up
        };
        if p == phases {
            p = 0;
            q += 1;
        }
        let row = &table[p as usize * taps..(p as usize + 1) * taps];
        let start = q as i64 + 1 - side as i64;
        let value = if start >= 0 && start as usize + taps <= input.len() {
            let start = start as usize;
            dot(&input[start..start + taps], row)
        } else {
            row.iter()
                .enumerate()
                .filter_map(|(j, w)| {
                    let i = start + j as i64;
                    usize::try_from(i)
                        .ok()
                        .and_then(|i| input.get(i))
                        .map(|x| x * w)
                })
                .sum()
        };
        out.push(value);
    }
    out
}

/// [`resample`] for audio that arrives in pieces: the output is the same as resampling the
/// whole signal at once (not piece by piece, which would put a click at every seam), only
/// delayed by a few input samples of look-ahead until [`finish`](Self::finish).
///
/// It keeps the last samples of what it was given (twice the kernel's reach, a few hundred at
/// the most) and resamples each new piece with that context on either side.
///
/// ```
/// use whisper_steady::audio::{resample, StreamResampler};
/// let signal: Vec<f32> = (0..24_000).map(|i| (i as f32 * 0.05).sin()).collect();
/// let mut stream = StreamResampler::new(24_000, 16_000);
/// let mut out = Vec::new();
/// for piece in signal.chunks(2_400) {
///     out.extend(stream.push(piece));
/// }
/// out.extend(stream.finish());
/// assert_eq!(out, resample(&signal, 24_000, 16_000));
/// ```
#[derive(Debug, Clone)]
pub struct StreamResampler {
    from: u32,
    to: u32,
    /// Input samples per step of the reduced ratio (`from / gcd`): pieces are cut at multiples
    /// of it, where input and output positions meet exactly.
    step: usize,
    /// Context kept on each side, a multiple of `step` beyond the kernel's reach.
    margin: usize,
    /// Input not yet turned into output, preceded by up to `margin` samples of context.
    held: Vec<f32>,
    /// How many of `held`'s first samples are context only (already turned into output).
    context: usize,
}

impl StreamResampler {
    /// A resampler from `from` Hz to `to` Hz (as [`resample`]: equal or zero rates pass the
    /// audio through).
    pub fn new(from: u32, to: u32) -> StreamResampler {
        let passthrough = from == to || from == 0 || to == 0;
        let (f, t) = (u64::from(from.max(1)), u64::from(to.max(1)));
        let step = if passthrough {
            1
        } else {
            (f / gcd(f, t)) as usize
        };
        // The kernel reaches ZERO_CROSSINGS / fc input samples to either side.
        let fc = CUTOFF * (t as f64 / f as f64).min(1.0);
        let reach = (ZERO_CROSSINGS / fc).ceil() as usize + 2;
        let margin = if passthrough || from > to.saturating_mul(MAX_RATIO as u32) {
            0 // passthrough, or rates where averaging comes first: no exact seams; see push
        } else {
            reach.div_ceil(step) * step
        };
        StreamResampler {
            from,
            to,
            step,
            margin,
            held: Vec::new(),
            context: 0,
        }
    }

    /// Adds `piece`; returns the output that is now final.
    pub fn push(&mut self, piece: &[f32]) -> Vec<f32> {
        if self.margin == 0 {
            // Equal rates pass through; extreme ratios are resampled piece by piece.
            return resample(piece, self.from, self.to);
        }
        self.held.extend_from_slice(piece);
        // Output is final for input up to `ready`: a multiple of the step, `margin` before
        // the end.
        let ready = (self.held.len().saturating_sub(self.margin) / self.step) * self.step;
        if ready <= self.context {
            return Vec::new();
        }
        let out = self.convert(self.context, ready);
        // Keep `margin` samples of context before `ready`, and everything after it.
        let keep_from = ready - self.margin.min(ready);
        self.held.drain(..keep_from);
        self.context = ready - keep_from;
        out
    }

    /// The rest of the output: the signal is taken as ending here.
    pub fn finish(&mut self) -> Vec<f32> {
        if self.margin == 0 || self.held.len() <= self.context {
            self.held.clear();
            self.context = 0;
            return Vec::new();
        }
        let end = self.held.len();
        let out = self.convert(self.context, end);
        self.held.clear();
        self.context = 0;
        out
    }

    /// The output for `held[start..end]` (start a multiple of the step), with `held`'s other
    /// samples as context.
    fn convert(&self, start: usize, end: usize) -> Vec<f32> {
        let all = resample(&self.held, self.from, self.to);
        let (up, down) = {
            let (f, t) = (self.from as usize, self.to as usize);
            let g = gcd(f as u64, t as u64) as usize;
            (t / g, f / g)
        };
        // Output n sits at input n·down/up: the outputs for [start, end) are those with
        // start ≤ n·down/up < end.
        let first = start / down * up;
        let last = (end * up).div_ceil(down).min(all.len());
        all[first.min(last)..last].to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `len` samples of a unit sine of `freq` Hz at `rate` Hz.
    fn sine(freq: f64, rate: u32, len: usize) -> Vec<f32> {
        (0..len)
            .map(|n| (2.0 * std::f64::consts::PI * freq * n as f64 / f64::from(rate)).sin() as f32)
            .collect()
    }

    /// Largest difference between `got` and `want`, away from the edges.
    fn max_error(got: &[f32], want: &[f32], margin: usize) -> f32 {
        assert_eq!(got.len(), want.len());
        got[margin..got.len() - margin]
            .iter()
            .zip(&want[margin..want.len() - margin])
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max)
    }

    /// Root mean square.
    fn rms(x: &[f32]) -> f32 {
        (x.iter().map(|v| v * v).sum::<f32>() / x.len() as f32).sqrt()
    }

    #[test]
    fn lengths() {
        assert_eq!(resample(&vec![0.0; 44_100], 44_100, 16_000).len(), 16_000);
        assert_eq!(resample(&vec![0.0; 48_000], 48_000, 16_000).len(), 16_000);
        assert_eq!(resample(&vec![0.0; 8000], 8000, 16_000).len(), 16_000);
        assert_eq!(resample(&[0.0; 3], 48_000, 16_000).len(), 1);
        assert_eq!(resample(&[0.0; 4], 48_000, 16_000).len(), 2);
        assert_eq!(resample(&[], 44_100, 16_000).len(), 0);
    }

    #[test]
    fn equal_rates_are_unchanged() {
        let x = sine(440.0, 16_000, 1000);
        assert_eq!(resample(&x, 16_000, 16_000), x);
    }

    #[test]
    fn in_band_tones_survive() {
        for (from, len) in [
            (44_100, 44_100),
            (48_000, 48_000),
            (8000, 8000),
            (22_050, 22_050),
        ] {
            for freq in [100.0, 1000.0, 3000.0] {
                let got = resample(&sine(freq, from, len), from, 16_000);
                let want = sine(freq, 16_000, got.len());
                let err = max_error(&got, &want, 200);
                assert!(err < 2e-3, "{from} Hz, {freq} Hz tone: error {err}");
            }
        }
    }

    #[test]
    fn uncommon_rate_uses_quantized_phases() {
        // 44 101 and 16 000 are coprime: 16 000 phases, more than MAX_PHASES.
        let got = resample(&sine(1000.0, 44_101, 44_101), 44_101, 16_000);
        assert_eq!(got.len(), 16_000);
        let want = sine(1000.0, 16_000, got.len());
        // Sample n sits at input n·44101/16000, i.e. time n/16000 s exactly.
        let err = max_error(&got, &want, 200);
        assert!(err < 3e-3, "error {err}");
    }

    #[test]
    fn tones_above_the_new_nyquist_are_removed() {
        // 12 kHz at 48 kHz would alias to 4 kHz at 16 kHz without the low-pass filter.
        let got = resample(&sine(12_000.0, 48_000, 48_000), 48_000, 16_000);
        let level = rms(&got[200..got.len() - 200]);
        assert!(level < 1e-3, "rms {level}");
        let got = resample(&sine(10_000.0, 44_100, 44_100), 44_100, 16_000);
        let level = rms(&got[200..got.len() - 200]);
        assert!(level < 1e-3, "rms {level}");
    }

    #[test]
    fn constant_passes_unchanged() {
        let got = resample(&vec![0.5; 10_000], 44_100, 16_000);
        let err = got[100..got.len() - 100]
            .iter()
            .map(|v| (v - 0.5).abs())
            .fold(0.0, f32::max);
        assert!(err < 1e-5, "error {err}");
    }

    #[test]
    fn absurd_rates_stay_bounded_and_keep_the_signal() {
        // A header's 1 GHz: 100,000 samples to 16 kHz are 2 samples; the kernel alone would
        // have been 2·10⁶ taps × 4096 phases (34 GB) without the averaging.
        let started = std::time::Instant::now();
        let got = resample(&vec![0.5; 100_000], 1_000_000_000, 16_000);
        assert_eq!(got.len(), 2);
        // 20 MHz, a 1 kHz tone: 10,000 input samples per output... still a 1 kHz tone.
        let got = resample(&sine(1000.0, 20_000_000, 20_000_000), 20_000_000, 16_000);
        assert_eq!(got.len(), 16_000);
        let want = sine(1000.0, 16_000, got.len());
        let err = max_error(&got, &want, 200);
        assert!(err < 5e-2, "error {err}");
        // 1 Hz up to 16 kHz: a small kernel, the output as long as the ratio says.
        assert_eq!(resample(&[0.25; 3], 1, 16_000).len(), 48_000);
        assert!(
            started.elapsed() < std::time::Duration::from_secs(20),
            "{:?}",
            started.elapsed()
        );
    }

    #[test]
    fn streamed_pieces_give_the_whole_signals_output() {
        for (from, to) in [
            (24_000, 16_000),
            (8_000, 16_000),
            (44_100, 16_000),
            (16_000, 16_000),
        ] {
            let signal = sine(440.0, from, from as usize * 2 + 17);
            let want = resample(&signal, from, to);
            for piece in [1, 160, 2_399, 24_000] {
                let mut stream = StreamResampler::new(from, to);
                let mut got = Vec::new();
                for p in signal.chunks(piece) {
                    got.extend(stream.push(p));
                }
                got.extend(stream.finish());
                assert_eq!(got.len(), want.len(), "{from}->{to}, pieces of {piece}");
                let err = got
                    .iter()
                    .zip(&want)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0.0, f32::max);
                assert!(err < 1e-6, "{from}->{to}, pieces of {piece}: error {err}");
            }
        }
    }

    #[test]
    fn upsampling_keeps_the_original_samples() {
        // Every second output sample lies on an input sample.
        let x = sine(1000.0, 8000, 4000);
        let got = resample(&x, 8000, 16_000);
        let err = got
            .iter()
            .step_by(2)
            .zip(&x)
            .skip(100)
            .take(3800)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        assert!(err < 2e-3, "error {err}");
    }
}
