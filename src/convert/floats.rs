//! Floating-point conversions: CTranslate2's element types into the ggml types the converter
//! writes, and IEEE half precision both ways.

use super::ct2::DType;
use crate::ggml::GgmlType;

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
