//! Quantizing a whisper.cpp model: the weight matrices of an f32/f16 ggml model file rewritten in
//! one of ggml's block-quantized types.
//!
//! whisper.cpp creates every weight matrix of the model (attention projections, MLP layers, the
//! token embedding) with the model's weight type, which it derives from the `ftype` field of the
//! header; convolution kernels stay f16, and vectors, convolution biases and positional
//! embeddings stay f32. A quantized file therefore quantizes exactly the two-dimensional tensors
//! whose names end in `.weight`, copies every other tensor unchanged, and writes
//! `ftype = GGML_QNT_VERSION * 1000 + ggml_ftype`, as whisper.cpp's own quantizer does. The
//! quantization itself is ggml's (`ggml_quantize_chunk`), so the blocks are bit-for-bit what
//! whisper.cpp's tools produce.

use std::fmt;
use std::fs;
use std::io::{BufReader, Read, Write};
use std::path::Path;
use std::str::FromStr;

use super::ggml::{GgmlWriter, MAGIC};
use super::{f16_to_f32, write_atomically, ConvertError, Hparams};
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
    /// Tensors copied unchanged.
    pub copied: usize,
    /// Bytes of tensor data read.
    pub tensor_bytes_in: u64,
    /// Bytes of tensor data written.
    pub tensor_bytes_out: u64,
    /// Bytes written in all.
    pub bytes: u64,
}

/// Largest tensor, vocabulary entry count and mel filterbank accepted; far above any Whisper
/// model, and low enough that a corrupt size cannot make the quantizer allocate the machine.
const MAX_TENSOR_BYTES: u64 = 4 << 30;
const MAX_VOCAB: i32 = 1 << 20;
const MAX_TOKEN_BYTES: u32 = 1 << 16;
const MAX_MEL_VALUES: i64 = 1 << 20;
const MAX_NAME_BYTES: i32 = 1024;

/// Quantizes the whisper.cpp model file `input` (f32 or f16 weights) into `output`.
///
/// The file is written beside `output` under a temporary name and renamed into place once
/// complete, so `output` never holds a partial model.
pub fn quantize_file(
    input: &Path,
    output: &Path,
    quant_type: QuantType,
) -> Result<QuantizeReport, ConvertError> {
    let file = fs::File::open(input)
        .map_err(|e| ConvertError::io(format!("opening {}", input.display()), e))?;
    let mut reader = BufReader::with_capacity(1 << 20, file);
    write_atomically(output, |w| quantize(&mut reader, w, quant_type))
}

/// Quantizes a whisper.cpp model read from `input` into `out`. Malformed input is reported as
/// [`ConvertError::Model`]; nothing in the input can make this panic or allocate more than
/// 4 GiB for one tensor.
pub fn quantize(
    input: &mut impl Read,
    out: &mut impl Write,
    quant_type: QuantType,
) -> Result<QuantizeReport, ConvertError> {
    let mut r = Reader {
        inner: input,
        offset: 0,
    };
    let mut w = GgmlWriter::new(out);
    let io_err = |e| ConvertError::io("writing the model", e);

    let magic = r.u32("magic")?;
    if magic != MAGIC {
        return Err(ConvertError::Model(format!(
            "bad magic 0x{magic:08x}: not a whisper.cpp (ggml) model file"
        )));
    }
    let mut h = Hparams {
        n_vocab: r.i32("n_vocab")?,
        n_audio_ctx: r.i32("n_audio_ctx")?,
        n_audio_state: r.i32("n_audio_state")?,
        n_audio_head: r.i32("n_audio_head")?,
        n_audio_layer: r.i32("n_audio_layer")?,
        n_text_ctx: r.i32("n_text_ctx")?,
        n_text_state: r.i32("n_text_state")?,
        n_text_head: r.i32("n_text_head")?,
        n_text_layer: r.i32("n_text_layer")?,
        n_mels: r.i32("n_mels")?,
        ftype: r.i32("ftype")?,
    };
    let source_ftype = h.ftype.rem_euclid(sys::GGML_QNT_VERSION_FACTOR as i32);
    if h.ftype < 0 || !(0..=1).contains(&source_ftype) || h.ftype >= 1000 {
        return Err(ConvertError::Model(format!(
            "ftype {} is already quantized or unknown; quantize a model with f32 or f16 weights",
            h.ftype
        )));
    }
    h.ftype =
        (sys::GGML_QNT_VERSION * sys::GGML_QNT_VERSION_FACTOR) as i32 + quant_type.ggml_ftype();
    w.header(&h).map_err(io_err)?;

    // Mel filterbank, copied.
    let n_mel = r.i32("mel filter rows")?;
    let n_fft = r.i32("mel filter columns")?;
    let values = i64::from(n_mel) * i64::from(n_fft);
    if n_mel <= 0 || n_fft <= 0 || values > MAX_MEL_VALUES {
        return Err(ConvertError::Model(format!(
            "mel filterbank of {n_mel} x {n_fft} values"
        )));
    }
    let filters = r.bytes(values as usize * 4, "mel filterbank")?;
    w.raw_i32s(&[n_mel, n_fft]).map_err(io_err)?;
    w.raw(&filters).map_err(io_err)?;

    // Vocabulary, copied.
    let n_tokens = r.i32("vocabulary size")?;
    if !(0..=MAX_VOCAB).contains(&n_tokens) {
        return Err(ConvertError::Model(format!(
            "vocabulary of {n_tokens} tokens"
        )));
    }
    w.raw_i32s(&[n_tokens]).map_err(io_err)?;
    for i in 0..n_tokens {
        let len = r.u32("token length")?;
        if len > MAX_TOKEN_BYTES {
            return Err(ConvertError::Model(format!(
                "token {i} is {len} bytes long"
            )));
        }
        let token = r.bytes(len as usize, "token")?;
        w.raw(&len.to_le_bytes()).map_err(io_err)?;
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
    let mut names = std::collections::HashSet::new();
    while let Some(header) = r.tensor_header()? {
        if !names.insert(header.name.clone()) {
            return Err(ConvertError::Model(format!(
                "tensor {:?} appears twice",
                header.name
            )));
        }
        let elements = header
            .dims
            .iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(d as u64))
            .unwrap_or(u64::MAX);
        let element_bytes = match header.ttype {
            0 => 4,
            1 => 2,
            other => {
                return Err(ConvertError::Model(format!(
                    "tensor {:?} has ggml type {other}; only f32 (0) and f16 (1) tensors can be \
                     quantized",
                    header.name
                )))
            }
        };
        let in_bytes = elements.saturating_mul(element_bytes);
        if in_bytes > MAX_TENSOR_BYTES {
            return Err(ConvertError::Model(format!(
                "tensor {:?} announces {in_bytes} bytes",
                header.name
            )));
        }
        let data = r.bytes(in_bytes as usize, "tensor data")?;
        report.tensor_bytes_in += in_bytes;

        let quantize_this = header.dims.len() == 2 && header.name.ends_with(".weight");
        let (ttype, out) = if quantize_this {
            let n_per_row = header.dims[0] as i64;
            let nrows = header.dims[1] as i64;
            let block = quant_block(quant_type);
            if n_per_row % block != 0 {
                return Err(ConvertError::Model(format!(
                    "tensor {:?} has rows of {n_per_row} values, not a multiple of {}'s block \
                     size {block}",
                    header.name, quant_type
                )));
            }
            let floats = to_f32(&data, header.ttype);
            report.quantized += 1;
            (
                quant_type.ggml_type() as i32,
                quantize_rows(quant_type, &floats, nrows, n_per_row),
            )
        } else {
            report.copied += 1;
            (header.ttype, data)
        };
        w.raw_i32s(&[header.dims.len() as i32, header.name.len() as i32, ttype])
            .map_err(io_err)?;
        w.raw_i32s(&header.dims).map_err(io_err)?;
        w.raw(header.name.as_bytes()).map_err(io_err)?;
        w.raw(&out).map_err(io_err)?;
        report.tensor_bytes_out += out.len() as u64;
    }
    if report.quantized == 0 {
        return Err(ConvertError::Model(
            "the model has no weight matrices to quantize".into(),
        ));
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
    if ttype == 0 {
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

/// One tensor's header as stored in the file.
struct TensorHeader {
    name: String,
    ttype: i32,
    /// Innermost first, as ggml stores them.
    dims: Vec<i32>,
}

/// A reader that knows its offset, for error messages.
struct Reader<'a, R: Read> {
    inner: &'a mut R,
    offset: u64,
}

impl<R: Read> Reader<'_, R> {
    fn fill(&mut self, buf: &mut [u8], what: &str) -> Result<(), ConvertError> {
        self.inner.read_exact(buf).map_err(|e| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                ConvertError::Model(format!(
                    "the file ends inside the {what} at byte {}",
                    self.offset
                ))
            } else {
                ConvertError::io("reading the model", e)
            }
        })?;
        self.offset += buf.len() as u64;
        Ok(())
    }

    fn u32(&mut self, what: &str) -> Result<u32, ConvertError> {
        let mut b = [0u8; 4];
        self.fill(&mut b, what)?;
        Ok(u32::from_le_bytes(b))
    }

    fn i32(&mut self, what: &str) -> Result<i32, ConvertError> {
        Ok(self.u32(what)? as i32)
    }

    fn bytes(&mut self, len: usize, what: &str) -> Result<Vec<u8>, ConvertError> {
        // Read in steps so that a corrupt length fails at the end of the file, not in the
        // allocator.
        let mut out = Vec::new();
        let mut left = len;
        while left > 0 {
            let step = left.min(64 << 20);
            let start = out.len();
            out.resize(start + step, 0);
            self.fill(&mut out[start..], what)?;
            left -= step;
        }
        Ok(out)
    }

    /// The next tensor header, or `None` at a clean end of file.
    fn tensor_header(&mut self) -> Result<Option<TensorHeader>, ConvertError> {
        let mut first = [0u8; 4];
        let mut got = 0;
        while got < 4 {
            match self.inner.read(&mut first[got..]) {
                Ok(0) if got == 0 => return Ok(None),
                Ok(0) => {
                    return Err(ConvertError::Model(format!(
                        "the file ends inside a tensor header at byte {}",
                        self.offset
                    )))
                }
                Ok(n) => got += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(ConvertError::io("reading the model", e)),
            }
        }
        self.offset += 4;
        let n_dims = i32::from_le_bytes(first);
        let name_len = self.i32("tensor header")?;
        let ttype = self.i32("tensor header")?;
        if !(1..=4).contains(&n_dims) {
            return Err(ConvertError::Model(format!(
                "a tensor header at byte {} announces {n_dims} dimensions",
                self.offset - 12
            )));
        }
        if !(1..=MAX_NAME_BYTES).contains(&name_len) {
            return Err(ConvertError::Model(format!(
                "a tensor name of {name_len} bytes at byte {}",
                self.offset
            )));
        }
        let mut dims = Vec::with_capacity(n_dims as usize);
        for _ in 0..n_dims {
            let d = self.i32("tensor dimensions")?;
            if d <= 0 {
                return Err(ConvertError::Model(format!(
                    "a tensor dimension of {d} at byte {}",
                    self.offset - 4
                )));
            }
            dims.push(d);
        }
        let name = self.bytes(name_len as usize, "tensor name")?;
        let name = String::from_utf8(name)
            .map_err(|_| ConvertError::Model("a tensor name is not UTF-8".into()))?;
        Ok(Some(TensorHeader { name, ttype, dims }))
    }
}
