//! Writer for the ggml model file that whisper.cpp's `whisper_model_load` reads.
//!
//! Layout (little-endian `i32`s unless said otherwise): the magic `0x67676d6c`; the hyper
//! parameters `n_vocab, n_audio_ctx, n_audio_state, n_audio_head, n_audio_layer, n_text_ctx,
//! n_text_state, n_text_head, n_text_layer, n_mels, ftype`; the mel filterbank as `n_mel, n_fft`
//! and `n_mel * n_fft` `f32`s; the vocabulary as a count and, per token, a `u32` length and the
//! token's bytes; then until the end of the file, per tensor: `n_dims`, the name's length, the
//! ggml type, the dimensions innermost first, the name, and the data.

use std::io::{self, Write};

use super::ct2::DType;
use super::Hparams;

/// The file magic, `"ggml"` as a little-endian `u32`.
pub(crate) const MAGIC: u32 = 0x6767_6d6c;

/// The ggml tensor types the converter writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GgmlType {
    F32,
    F16,
}

impl GgmlType {
    /// ggml's type id (`GGML_TYPE_F32` = 0, `GGML_TYPE_F16` = 1).
    fn id(self) -> i32 {
        match self {
            GgmlType::F32 => 0,
            GgmlType::F16 => 1,
        }
    }
}

/// A writer that counts the bytes it passes on.
pub(crate) struct GgmlWriter<W: Write> {
    out: W,
    written: u64,
}

impl<W: Write> GgmlWriter<W> {
    pub(crate) fn new(out: W) -> Self {
        GgmlWriter { out, written: 0 }
    }

    /// Bytes written so far.
    pub(crate) fn written(&self) -> u64 {
        self.written
    }

    fn bytes(&mut self, b: &[u8]) -> io::Result<()> {
        self.out.write_all(b)?;
        self.written += b.len() as u64;
        Ok(())
    }

    fn i32(&mut self, v: i32) -> io::Result<()> {
        self.bytes(&v.to_le_bytes())
    }

    /// Bytes passed on as they are (the quantizer copies sections of an existing file).
    pub(crate) fn raw(&mut self, b: &[u8]) -> io::Result<()> {
        self.bytes(b)
    }

    /// Little-endian `i32`s passed on as they are.
    pub(crate) fn raw_i32s(&mut self, values: &[i32]) -> io::Result<()> {
        let mut buf = Vec::with_capacity(values.len() * 4);
        for v in values {
            buf.extend_from_slice(&v.to_le_bytes());
        }
        self.bytes(&buf)
    }

    /// The magic and the hyper parameters.
    pub(crate) fn header(&mut self, h: &Hparams) -> io::Result<()> {
        self.bytes(&MAGIC.to_le_bytes())?;
        for v in [
            h.n_vocab,
            h.n_audio_ctx,
            h.n_audio_state,
            h.n_audio_head,
            h.n_audio_layer,
            h.n_text_ctx,
            h.n_text_state,
            h.n_text_head,
            h.n_text_layer,
            h.n_mels,
            h.ftype,
        ] {
            self.i32(v)?;
        }
        Ok(())
    }

    /// The mel filterbank, `n_mel` rows of `n_fft` values.
    pub(crate) fn mel_filters(&mut self, n_mel: i32, n_fft: i32, data: &[f32]) -> io::Result<()> {
        self.i32(n_mel)?;
        self.i32(n_fft)?;
        let mut buf = Vec::with_capacity(data.len() * 4);
        for v in data {
            buf.extend_from_slice(&v.to_le_bytes());
        }
        self.bytes(&buf)
    }

    /// The vocabulary, each token as raw bytes. Lengths must fit an `i32` (checked by the caller).
    pub(crate) fn vocabulary(&mut self, tokens: &[Vec<u8>]) -> io::Result<()> {
        self.i32(tokens.len() as i32)?;
        let mut buf = Vec::new();
        for t in tokens {
            buf.extend_from_slice(&(t.len() as u32).to_le_bytes());
            buf.extend_from_slice(t);
        }
        self.bytes(&buf)
    }

    /// One tensor. `shape` is in PyTorch order (outermost first); ggml stores it reversed.
    pub(crate) fn tensor(
        &mut self,
        name: &str,
        shape: &[i32],
        ty: GgmlType,
        data: &[u8],
    ) -> io::Result<()> {
        self.i32(shape.len() as i32)?;
        self.i32(name.len() as i32)?;
        self.i32(ty.id())?;
        for &d in shape.iter().rev() {
            self.i32(d)?;
        }
        self.bytes(name.as_bytes())?;
        self.bytes(data)
    }

    /// Flushes the underlying writer.
    pub(crate) fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// Converts little-endian elements of a floating-point CTranslate2 type into `to`.
/// Returns `None` for a non-float source type.
pub(crate) fn convert_floats(src: &[u8], from: DType, to: GgmlType) -> Option<Vec<u8>> {
    let out = match (from, to) {
        (DType::F16, GgmlType::F16) | (DType::F32, GgmlType::F32) => src.to_vec(),
        (DType::F16, GgmlType::F32) => {
            map_elements::<2, 4>(src, |b| f16_to_f32(u16::from_le_bytes(b)).to_le_bytes())
        }
        (DType::F32, GgmlType::F16) => {
            map_elements::<4, 2>(src, |b| f32_to_f16(f32::from_le_bytes(b)).to_le_bytes())
        }
        (DType::BF16, GgmlType::F32) => {
            map_elements::<2, 4>(src, |b| bf16_to_f32(u16::from_le_bytes(b)).to_le_bytes())
        }
        (DType::BF16, GgmlType::F16) => map_elements::<2, 2>(src, |b| {
            f32_to_f16(bf16_to_f32(u16::from_le_bytes(b))).to_le_bytes()
        }),
        _ => return None,
    };
    Some(out)
}

fn map_elements<const I: usize, const O: usize>(
    src: &[u8],
    f: impl Fn([u8; I]) -> [u8; O],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(src.len() / I * O);
    for chunk in src.chunks_exact(I) {
        let mut b = [0u8; I];
        b.copy_from_slice(chunk);
        out.extend_from_slice(&f(b));
    }
    out
}

/// IEEE half-precision bits to `f32` (exact).
pub fn f16_to_f32(h: u16) -> f32 {
    let sign = u32::from(h & 0x8000) << 16;
    let exp = u32::from((h >> 10) & 0x1f);
    let man = u32::from(h & 0x3ff);
    let bits = match (exp, man) {
        (0, 0) => sign,
        (0, _) => {
            // Subnormal: man * 2^-24, exactly representable as a normal f32.
            let v = man as f32 * (1.0 / 16_777_216.0);
            return if sign != 0 { -v } else { v };
        }
        (0x1f, 0) => sign | 0x7f80_0000,
        (0x1f, _) => sign | 0x7fc0_0000 | (man << 13),
        _ => sign | ((exp + 112) << 23) | (man << 13),
    };
    f32::from_bits(bits)
}

/// `f32` to IEEE half-precision bits, rounding to nearest with ties to even (as numpy and
/// PyTorch do); values beyond the half range become infinities, NaNs stay NaNs.
pub fn f32_to_f16(x: f32) -> u16 {
    let bits = x.to_bits();
    let sign = ((bits >> 16) & 0x8000) as u16;
    let exp = ((bits >> 23) & 0xff) as i32;
    let man = bits & 0x007f_ffff;
    if exp == 0xff {
        return if man == 0 {
            sign | 0x7c00
        } else {
            sign | 0x7e00 | (man >> 13) as u16
        };
    }
    // The exponent in half precision's bias.
    let e = exp - 127 + 15;
    if e >= 0x1f {
        return sign | 0x7c00;
    }
    if e <= 0 {
        // A half subnormal (or zero): the result is full * 2^(exp - 150) / 2^-24, i.e. the
        // 24-bit significand shifted right by 14 - e, rounded.
        let shift = (14 - e) as u32;
        if shift > 24 {
            return sign;
        }
        let full = man | 0x0080_0000;
        return sign | round_shift(full, shift) as u16;
    }
    // Normal: drop 13 mantissa bits with rounding; a carry ripples into the exponent, which is
    // the right result (up to infinity).
    let h = ((e as u32) << 10) | (man >> 13);
    let rem = man & 0x1fff;
    let h = if rem > 0x1000 || (rem == 0x1000 && h & 1 == 1) {
        h + 1
    } else {
        h
    };
    sign | h as u16
}

/// `v >> shift` (1 ≤ shift ≤ 24) rounded to nearest, ties to even.
fn round_shift(v: u32, shift: u32) -> u32 {
    let q = v >> shift;
    let rem = v & ((1 << shift) - 1);
    let half = 1 << (shift - 1);
    if rem > half || (rem == half && q & 1 == 1) {
        q + 1
    } else {
        q
    }
}

/// bfloat16 bits to `f32` (exact).
fn bf16_to_f32(h: u16) -> f32 {
    f32::from_bits(u32::from(h) << 16)
}
