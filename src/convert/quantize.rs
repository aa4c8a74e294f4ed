//! Quantizing a whisper.cpp model: the weight matrices of an f32/f16 ggml model file rewritten in
//! one of ggml's block-quantized types.
//!
//! whisper.cpp creates every weight matrix of the model (attention projections, MLP layers, the
//! token embedding) with the model's weight type, which it derives from the `ftype` field of the
//! header; convolution kernels stay f16, and vectors, convolution biases and positional
//! embeddings stay f32. A quantized file therefore writes each tensor in the type whisper.cpp
//! creates it with (the tensor table in `crate::ggml`, the validator's): the weight matrices
//! quantized, the convolution kernels f16 (converted when the input is an f32 model), every
//! other tensor unchanged; and `ftype = GGML_QNT_VERSION * 1000 + ggml_ftype`, as whisper.cpp's
//! own quantizer does. The quantization itself is ggml's (`ggml_quantize_chunk`), so the blocks
//! are bit-for-bit what whisper.cpp's tools produce.

use std::fmt;
use std::fs;
use std::io::{Read, Write};
use std::path::Path;
use std::str::FromStr;

use super::ct2::DType;
use super::floats::convert_floats;
use super::{f16_to_f32, write_atomically, ConvertError, Hparams};
use crate::ggml::layout::{
    expected_tensors, ftype_to_type, index_by_name, GGML_TYPE_F16, GGML_TYPE_F32,
    QNT_VERSION_FACTOR, QNT_VERSION_MAX,
};
use crate::ggml::reader::Reader;
use crate::ggml::source::{FileSource, SliceSource, Source};
use crate::ggml::{Field, GgmlType, GgmlWriter, ModelDefect, MEL_N_FFT};
use crate::sys;

/// The block-quantized weight types a model can be quantized to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum QuantType {
    /// 4-bit, blocks of 32 with one f16 scale (4.5 bits per weight).
    Q4_0,
    /// 4-bit, blocks of 32 with an f16 scale and minimum (5 bits per weight).
    Q4_1,
    /// 5-bit, blocks of 32 with one f16 scale (5.5 bits per weight).
    Q5_0,
    /// 5-bit, blocks of 32 with an f16 scale and minimum (6 bits per weight).
    Q5_1,
    /// 8-bit, blocks of 32 with one f16 scale (8.5 bits per weight).
    Q8_0,
}

impl QuantType {
    /// Every type, in the order of [`name`](QuantType::name)s usually listed.
    pub const ALL: [QuantType; 5] = [
        QuantType::Q4_0,
        QuantType::Q4_1,
        QuantType::Q5_0,
        QuantType::Q5_1,
        QuantType::Q8_0,
    ];

    /// The lowercase name used by whisper.cpp's tools (`q5_0`, ...).
    pub fn name(self) -> &'static str {
        match self {
            QuantType::Q4_0 => "q4_0",
            QuantType::Q4_1 => "q4_1",
            QuantType::Q5_0 => "q5_0",
            QuantType::Q5_1 => "q5_1",
            QuantType::Q8_0 => "q8_0",
        }
    }

    /// ggml's tensor type (`enum ggml_type`).
    fn ggml_type(self) -> sys::ggml_type {
        match self {
            QuantType::Q4_0 => sys::ggml_type_GGML_TYPE_Q4_0,
            QuantType::Q4_1 => sys::ggml_type_GGML_TYPE_Q4_1,
            QuantType::Q5_0 => sys::ggml_type_GGML_TYPE_Q5_0,
            QuantType::Q5_1 => sys::ggml_type_GGML_TYPE_Q5_1,
            QuantType::Q8_0 => sys::ggml_type_GGML_TYPE_Q8_0,
        }
    }

    /// ggml's file type (`enum ggml_ftype`), the `ftype` a model file announces.
    fn ggml_ftype(self) -> i32 {
        match self {
            QuantType::Q4_0 => sys::ggml_ftype_GGML_FTYPE_MOSTLY_Q4_0,
            QuantType::Q4_1 => sys::ggml_ftype_GGML_FTYPE_MOSTLY_Q4_1,
            QuantType::Q5_0 => sys::ggml_ftype_GGML_FTYPE_MOSTLY_Q5_0,
            QuantType::Q5_1 => sys::ggml_ftype_GGML_FTYPE_MOSTLY_Q5_1,
            QuantType::Q8_0 => sys::ggml_ftype_GGML_FTYPE_MOSTLY_Q8_0,
        }
    }
}

impl fmt::Display for QuantType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for QuantType {
    type Err = String;

    /// Parses `q4_0`, `q4_1`, `q5_0`, `q5_1` or `q8_0` (case-insensitive).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.trim().to_ascii_lowercase();
        QuantType::ALL
            .into_iter()
            .find(|t| t.name() == lower)
            .ok_or_else(|| {
                let names: Vec<&str> = QuantType::ALL.iter().map(|t| t.name()).collect();
                format!(
                    "unknown quantization type {s:?}; expected one of {}",
                    names.join(", ")
                )
            })
    }
}

/// What a quantization wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuantizeReport {
    /// The hyper parameters written (`ftype` is the quantized one).
    pub hparams: Hparams,
    /// The type the weight matrices were quantized to.
    pub quant_type: QuantType,
    /// Tensors quantized.
    pub quantized: usize,
    /// Tensors copied: unchanged, or (an f32 model's convolution kernels) as f16.
    pub copied: usize,
    /// Bytes of tensor data read.
    pub tensor_bytes_in: u64,
    /// Bytes of tensor data written.
    pub tensor_bytes_out: u64,
    /// Bytes written in all.
    pub bytes: u64,
}

/// Quantizes the whisper.cpp model file `input` (f32 or f16 weights) into `output`.
///
/// The input is validated first ([`crate::model::validate_file`]: a file whisper.cpp would not
/// load is refused with the validator's message), then copied section by section, reading one
/// tensor at a time. The file is written beside `output` under a temporary name and renamed
/// into place once complete, so `output` never holds a partial model.
pub fn quantize_file(
    input: &Path,
    output: &Path,
    quant_type: QuantType,
) -> Result<QuantizeReport, ConvertError> {
    let valid = crate::model::validate_file(input).map_err(refused)?;
    let file = fs::File::open(input)
        .map_err(|e| ConvertError::io(format!("opening {}", input.display()), e))?;
    let len = file
        .metadata()
        .map_err(|e| ConvertError::io(format!("opening {}", input.display()), e))?
        .len();
    write_atomically(output, |w| {
        copy_quantized(
            Reader::new(FileSource::new(file, len)),
            &valid.hparams,
            w,
            quant_type,
        )
    })
}

/// Quantizes a whisper.cpp model read from `input` into `out`. The whole input is read into
/// memory first (to validate it before writing anything; [`quantize_file`] reads a file in
/// place). Malformed input is reported as [`ConvertError::Model`] with the validator's message;
/// nothing in the input can make this panic.
pub fn quantize(
    input: &mut impl Read,
    out: &mut impl Write,
    quant_type: QuantType,
) -> Result<QuantizeReport, ConvertError> {
    let mut bytes = Vec::new();
    input
        .read_to_end(&mut bytes)
        .map_err(|e| ConvertError::io("reading the model", e))?;
    let valid = crate::model::validate_bytes(&bytes).map_err(refused)?;
    copy_quantized(
        Reader::new(SliceSource::new(&bytes)),
        &valid.hparams,
        out,
        quant_type,
    )
}

/// A model the validator refused.
fn refused(defect: ModelDefect) -> ConvertError {
    ConvertError::Model(format!("not a valid whisper.cpp model: {defect}"))
}

/// Copies a validated model from `r` to `out`, each tensor written in the type whisper.cpp
/// creates it with in the quantized model: weight matrices quantized, convolution kernels f16
/// (converted when the input is f32), the rest unchanged. `valid` is what the validator read;
/// whatever differs from it (the file changed in between) is refused before it is used.
fn copy_quantized(
    mut r: Reader<impl Source>,
    valid: &Hparams,
    out: &mut impl Write,
    quant_type: QuantType,
) -> Result<QuantizeReport, ConvertError> {
    let changed =
        |what: String| ConvertError::Model(format!("the model changed while read: {what}"));
    let model = |d: ModelDefect| changed(d.to_string());
    let io_err = |e| ConvertError::io("writing the model", e);
    let mut w = GgmlWriter::new(out);

    r.magic().map_err(model)?;
    let mut h = r.hparams().map_err(model)?;
    if h != *valid {
        return Err(changed("its hyperparameters differ".into()));
    }
    let Some(wtype_in @ (GGML_TYPE_F32 | GGML_TYPE_F16)) = ftype_to_type(h.ftype) else {
        return Err(ConvertError::Model(format!(
            "ftype {} is already quantized; quantize a model with f32 or f16 weights",
            h.ftype
        )));
    };
    let wtype_out = quant_type.ggml_type() as i32;
    // The two tables list the same tensors in the same order.
    let (tensors_in, tensors_out) = (
        expected_tensors(&h, wtype_in),
        expected_tensors(&h, wtype_out),
    );
    let index = index_by_name(&tensors_in);
    h.ftype = QNT_VERSION_MAX * QNT_VERSION_FACTOR + quant_type.ggml_ftype();
    w.header(&h).map_err(io_err)?;

    // Mel filterbank, copied.
    let n_mel = r.i32(Field::MelNMel).map_err(model)?;
    let n_fft = r.i32(Field::MelNFft).map_err(model)?;
    if (n_mel, n_fft) != (h.n_mels, MEL_N_FFT) {
        return Err(changed(format!("its filterbank is {n_mel} x {n_fft}")));
    }
    let filters = r
        .bytes(n_mel as u64 * n_fft as u64 * 4, Field::MelFilters)
        .map_err(model)?;
    w.raw_i32s(&[n_mel, n_fft]).map_err(io_err)?;
    w.raw(&filters).map_err(io_err)?;

    // Vocabulary, copied (each read is checked against the bytes that remain).
    let n_tokens = r.i32(Field::VocabularyCount).map_err(model)?;
    w.raw_i32s(&[n_tokens]).map_err(io_err)?;
    for _ in 0..n_tokens {
        let len = r.i32(Field::VocabularyTokenLength).map_err(model)?;
        let token = r
            .bytes(len as u32 as u64, Field::VocabularyToken)
            .map_err(model)?;
        w.raw_i32s(&[len]).map_err(io_err)?;
        w.raw(&token).map_err(io_err)?;
    }

    let mut report = QuantizeReport {
        hparams: h,
        quant_type,
        quantized: 0,
        copied: 0,
        tensor_bytes_in: 0,
        tensor_bytes_out: 0,
        bytes: 0,
    };
    while let Some(t) = r.tensor_header().map_err(model)? {
        let name = String::from_utf8_lossy(&t.name).into_owned();
        // Shape and type as validated, so the sizes below are the validated ones.
        let validated = |&i: &usize| {
            let e = &tensors_in[i];
            e.ggml_type == t.ggml_type && e.has_shape(t.ne)
        };
        let Some(i) = index.get(t.name.as_slice()).copied().filter(validated) else {
            return Err(changed(format!("tensor {name:?} is not the one validated")));
        };
        let in_bytes = t.data_len().expect("f32 and f16 are known types");
        let data = r
            .tensor_data(in_bytes, &t.name, true)
            .map_err(model)?
            .unwrap_or_default();
        report.tensor_bytes_in += in_bytes;

        let target = tensors_out[i].ggml_type;
        let out = if target == t.ggml_type {
            report.copied += 1;
            data
        } else if target == GGML_TYPE_F16 {
            // An f32 model's convolution kernel (the only f32 tensor whisper.cpp makes f16).
            report.copied += 1;
            convert_floats(&data, DType::F32, GgmlType::F16).expect("f32 to f16 is defined")
        } else {
            // A weight matrix: rows of ne[0] values, which the validator found to be whole
            // blocks of every quantized type.
            let (n_per_row, nrows) = (i64::from(t.ne[0]), i64::from(t.ne[1]));
            let block = quant_block(quant_type);
            if n_per_row % block != 0 {
                return Err(ConvertError::Model(format!(
                    "tensor {name:?} has rows of {n_per_row} values, not a multiple of {}'s \
                     block size {block}",
                    quant_type
                )));
            }
            report.quantized += 1;
            quantize_rows(quant_type, &to_f32(&data, t.ggml_type), nrows, n_per_row)
        };
        w.raw_i32s(&[t.n_dims, t.name.len() as i32, target])
            .map_err(io_err)?;
        w.raw_i32s(&t.ne[..t.n_dims as usize]).map_err(io_err)?;
        w.raw(&t.name).map_err(io_err)?;
        w.raw(&out).map_err(io_err)?;
        report.tensor_bytes_out += out.len() as u64;
    }
    w.flush().map_err(io_err)?;
    report.bytes = w.written();
    Ok(report)
}

fn quant_block(t: QuantType) -> i64 {
    // SAFETY: pure lookup in ggml's type table for a valid type.
    unsafe { sys::ggml_blck_size(t.ggml_type()) }
}

fn to_f32(data: &[u8], ttype: i32) -> Vec<f32> {
    if ttype == GGML_TYPE_F32 {
        data.chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    } else {
        data.chunks_exact(2)
            .map(|c| f16_to_f32(u16::from_le_bytes([c[0], c[1]])))
            .collect()
    }
}

/// Quantizes `nrows` rows of `n_per_row` values with ggml, spreading the rows over the machine's
/// cores. `floats.len() == nrows * n_per_row` and `n_per_row` is a multiple of the block size.
fn quantize_rows(t: QuantType, floats: &[f32], nrows: i64, n_per_row: i64) -> Vec<u8> {
    let ty = t.ggml_type();
    // SAFETY: pure functions of a valid type and a positive row length.
    let row_bytes = unsafe { sys::ggml_row_size(ty, n_per_row) };
    let mut out = vec![0u8; row_bytes * nrows as usize];
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(nrows.max(1) as usize);
    let rows_per_chunk = (nrows as usize).div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        for (i, dst) in out.chunks_mut(rows_per_chunk * row_bytes).enumerate() {
            let first_row = i * rows_per_chunk;
            let rows = dst.len() / row_bytes;
            let src = &floats[first_row * n_per_row as usize..][..rows * n_per_row as usize];
            scope.spawn(move || {
                // SAFETY: `src` holds `rows * n_per_row` floats and `dst` `rows * row_bytes`
                // bytes; ggml writes exactly that for a type that needs no importance matrix
                // (none of QuantType's does). Starting at 0 within each chunk keeps ggml's
                // offsets inside the slices. ggml_quantize_chunk initializes its tables under
                // its own lock, so concurrent calls are fine.
                let written = unsafe {
                    sys::ggml_quantize_chunk(
                        ty,
                        src.as_ptr(),
                        dst.as_mut_ptr().cast(),
                        0,
                        rows as i64,
                        n_per_row,
                        std::ptr::null(),
                    )
                };
                debug_assert_eq!(written, dst.len());
            });
        }
    });
    out
}
