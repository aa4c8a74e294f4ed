//! Model file validation: every byte whisper.cpp's loader trusts is checked first.
//!
//! whisper.cpp 1.8.3's `whisper_model_load` reads a ggml model file with almost no checks: a
//! bad `ftype` hits a `GGML_ASSERT` (abort), a negative size makes `std::vector` throw through
//! the C API (abort), more than four tensor dimensions overwrite its stack, a negative or huge
//! hyperparameter asserts in ggml or allocates gigabytes, a truncated file leaves tensors
//! half-filled, and a `n_vocab` outside whisper's vocabularies makes the special token ids
//! point past the logits. [`WhisperContext::new_with_params`](crate::WhisperContext::new_with_params)
//! and [`new_from_buffer_with_params`](crate::WhisperContext::new_from_buffer_with_params)
//! therefore run [`validate_file`] / [`validate_bytes`] first and answer
//! [`WhisperError::InvalidModel`](crate::WhisperError::InvalidModel) for a file they refuse.
//!
//! What is checked, in file order:
//! - the magic `0x67676d6c`;
//! - the hyperparameters ([`Hparams`]), each within the range below; both widths equal (the
//!   loader `assert`s it), each a multiple of its head count; `ftype % 1000` one of the file
//!   types ggml maps to a weight type, its quantization version (`ftype / 1000`) at most 2; the
//!   width a multiple of the weight type's block size;
//! - the mel filterbank: `n_mel` equal to `n_mels`, `n_fft` equal to 201 (`1 + 400 / 2`, what
//!   the spectrogram code indexes), and its `n_mel * n_fft` floats present;
//! - the vocabulary: a count between 0 and `n_vocab` (whisper.cpp names the rest itself), each
//!   token at most [`MAX_TOKEN_LEN`] bytes and inside the file;
//! - the tensor table, until the end of the file: a dimension count of 1 to 4, a name length
//!   of 1 to [`MAX_TENSOR_NAME_LEN`](crate::ggml::MAX_TENSOR_NAME_LEN), a name whisper.cpp creates for these layer counts, the
//!   dimensions it allocates (compared as its loader does: the first three equal, the element
//!   counts equal), exactly the ggml type it allocates (f32 vectors, biases and positional
//!   embeddings; f16 convolutions, f32 in f32 models; the `ftype`'s weight type for the
//!   matrices and the token embedding), the data inside the file, no tensor twice, none
//!   missing, and no bytes after the last one.
//!
//! Because every tensor must be present with exactly the shape the hyperparameters give, the
//! memory whisper.cpp allocates for the weights is bounded by the file's size.
//!
//! | field | accepted | why |
//! |---|---|---|
//! | `n_vocab` | 51864..=51866 | whisper's vocabularies; whisper.cpp hard-codes the special token ids and the language count from it |
//! | `n_audio_ctx` | 1..=1500 | 30 s of audio is 1500 encoder positions |
//! | `n_text_ctx` | 16..=448 | whisper's decoder context; room for the start sequence and a prompt |
//! | `n_audio_state`, `n_text_state` | 1..=8192, equal | the loader asserts equality |
//! | `n_audio_head`, `n_text_head` | 1..=256, dividing the state | head size |
//! | `n_audio_layer`, `n_text_layer` | 1..=128 | sizes of whisper.cpp's tensor tables |
//! | `n_mels` | 1..=512 | must equal the filterbank's `n_mel` |
//! | `ftype` | 0..=2999, see above | `ggml_ftype_to_ggml_type` aborts on others |
//!
//! For files the validator reads the headers through a buffer and seeks over the tensor data,
//! so checking a model costs a small fraction of loading it. A file can still change between
//! the check and whisper.cpp's read; load models from storage nobody else writes to.

mod file;

pub use file::{ModelFile, TensorData};

use std::path::Path;

use crate::ggml::{DefectKind, Field, Hparams, ModelDefect, MAGIC, MAX_TOKEN_LEN, MEL_N_FFT};

use crate::ggml::layout::{
    expected_tensors, ftype_to_type, index_by_name, static_type_name, type_layout,
    QNT_VERSION_FACTOR, QNT_VERSION_MAX,
};
use crate::ggml::reader::{Reader, TensorHeader};
use crate::ggml::source::{FileSource, SliceSource, Source};

/// What a valid model file holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelInfo {
    /// The hyperparameters, as in the file (`ftype` raw, with its quantization version).
    pub hparams: Hparams,
    /// The quantization version, `ftype / 1000`.
    pub qnt_version: i32,
    /// The ggml type of the weight matrices (`"f16"`, `"q5_0"`, ...).
    pub weight_type: &'static str,
    /// whisper.cpp's size name from `n_audio_layer` (`"tiny"`, `"base"`, `"small"`,
    /// `"medium"`, `"large"`, or `"unknown"`).
    pub model_type: &'static str,
    /// Whether whisper.cpp treats the model as multilingual (`n_vocab >= 51865`).
    pub multilingual: bool,
    /// Vocabulary entries in the file (whisper.cpp names the others up to `n_vocab` itself).
    pub n_tokens: u32,
    /// Tensors in the file (all that whisper.cpp needs).
    pub n_tensors: usize,
    /// Bytes of tensor data, what whisper.cpp allocates for the weights.
    pub tensor_bytes: u64,
    /// Size of the file or buffer.
    pub file_size: u64,
}

/// Validates the model file at `path` without reading its tensor data into memory.
///
/// An error of the file itself (missing, unreadable) is a defect of kind
/// [`DefectKind::Io`].
pub fn validate_file(path: impl AsRef<Path>) -> Result<ModelInfo, ModelDefect> {
    let io = |e: std::io::Error| ModelDefect::field(DefectKind::Io(e.kind()), 0, Field::File);
    let file = std::fs::File::open(path.as_ref()).map_err(io)?;
    let len = file.metadata().map_err(io)?.len();
    validate(FileSource::new(file, len))
}

/// Validates a model held in memory.
pub fn validate_bytes(bytes: &[u8]) -> Result<ModelInfo, ModelDefect> {
    validate(SliceSource::new(bytes))
}

fn model_type(n_audio_layer: i32) -> &'static str {
    match n_audio_layer {
        4 => "tiny",
        6 => "base",
        12 => "small",
        24 => "medium",
        32 => "large",
        _ => "unknown",
    }
}

/// The hyperparameters' checks (ranges, equal widths, head counts dividing them, a loadable
/// `ftype` whose weight type's block divides the width); returns the weight type. The
/// converter checks what it is about to write with it too.
pub(crate) fn check_hparams(h: &Hparams) -> Result<i32, ModelDefect> {
    for f in &Hparams::FIELDS {
        let value = (f.get)(h);
        if value < f.min || value > f.max {
            return Err(ModelDefect::field(
                DefectKind::OutOfRange {
                    value,
                    min: f.min,
                    max: f.max,
                },
                f.offset,
                f.field,
            ));
        }
    }
    if h.n_text_state != h.n_audio_state {
        return Err(ModelDefect::field(
            DefectKind::NotEqual {
                value: h.n_text_state,
                other: Field::NAudioState,
                expected: h.n_audio_state,
            },
            Hparams::field(Field::NTextState).offset,
            Field::NTextState,
        ));
    }
    for (state, head) in [
        (Field::NAudioState, Field::NAudioHead),
        (Field::NTextState, Field::NTextHead),
    ] {
        let (state, head) = (Hparams::field(state), Hparams::field(head));
        let (value, divisor) = ((state.get)(h), (head.get)(h));
        if value % divisor != 0 {
            return Err(ModelDefect::field(
                DefectKind::NotMultiple {
                    value,
                    of: head.field,
                    divisor,
                },
                state.offset,
                state.field,
            ));
        }
    }
    let qnt_version = h.ftype / QNT_VERSION_FACTOR;
    let base_ftype = h.ftype % QNT_VERSION_FACTOR;
    let wtype = match ftype_to_type(base_ftype) {
        Some(t) if qnt_version <= QNT_VERSION_MAX => t,
        _ => {
            return Err(ModelDefect::field(
                DefectKind::UnsupportedFtype { ftype: h.ftype },
                Hparams::field(Field::Ftype).offset,
                Field::Ftype,
            ))
        }
    };
    let (block, _) = type_layout(wtype).expect("every mapped weight type is in the table");
    if h.n_audio_state as u64 % block != 0 {
        return Err(ModelDefect::field(
            DefectKind::BlockSize {
                value: h.n_audio_state,
                ggml_type: wtype,
                block: block as i32,
            },
            Hparams::field(Field::NAudioState).offset,
            Field::NAudioState,
        ));
    }
    Ok(wtype)
}

/// The validator: the format's [`Reader`] plus a check after every read.
fn validate(src: impl Source) -> Result<ModelInfo, ModelDefect> {
    let mut src = Reader::new(src);
    let file_size = src.len();
    let magic = src.magic()?;
    if magic != MAGIC {
        return Err(ModelDefect::field(
            DefectKind::BadMagic { found: magic },
            0,
            Field::Magic,
        ));
    }

    // Hyperparameters.
    let h = src.hparams()?;
    let wtype = check_hparams(&h)?;
    let qnt_version = h.ftype / QNT_VERSION_FACTOR;

    // Mel filterbank.
    let at = src.pos();
    let n_mel = src.i32(Field::MelNMel)?;
    if n_mel != h.n_mels {
        return Err(ModelDefect::field(
            DefectKind::NotEqual {
                value: n_mel,
                other: Field::NMels,
                expected: h.n_mels,
            },
            at,
            Field::MelNMel,
        ));
    }
    let at = src.pos();
    let n_fft = src.i32(Field::MelNFft)?;
    if n_fft != MEL_N_FFT {
        return Err(ModelDefect::field(
            DefectKind::NotEqual {
                value: n_fft,
                other: Field::WhisperNFft,
                expected: MEL_N_FFT,
            },
            at,
            Field::MelNFft,
        ));
    }
    src.skip(n_mel as u64 * n_fft as u64 * 4, Field::MelFilters)?;

    // Vocabulary.
    let at = src.pos();
    let n_tokens = src.i32(Field::VocabularyCount)?;
    if n_tokens < 0 || n_tokens > h.n_vocab {
        return Err(ModelDefect::field(
            DefectKind::OutOfRange {
                value: n_tokens,
                min: 0,
                max: h.n_vocab,
            },
            at,
            Field::VocabularyCount,
        ));
    }
    for index in 0..n_tokens as u32 {
        let at = src.pos();
        let len = src.i32(Field::VocabularyTokenLength)? as u32;
        if len > MAX_TOKEN_LEN {
            return Err(ModelDefect::field(
                DefectKind::TokenTooLong {
                    index,
                    len,
                    max: MAX_TOKEN_LEN,
                },
                at,
                Field::VocabularyTokenLength,
            ));
        }
        src.skip(len as u64, Field::VocabularyToken)?;
    }

    // Tensors.
    let expected = expected_tensors(&h, wtype);
    let index = index_by_name(&expected);
    let mut seen: Vec<Option<u64>> = vec![None; expected.len()];
    let mut n_tensors = 0usize;
    let mut tensor_bytes = 0u64;
    while let Some(header) = src.tensor_header()? {
        let TensorHeader {
            at,
            n_dims,
            ne,
            ggml_type: ttype,
            ref name,
        } = header;
        let tensor_defect = |kind| ModelDefect::tensor(kind, at, name);
        let Some(&i) = index.get(name.as_slice()) else {
            return Err(tensor_defect(DefectKind::UnknownTensor));
        };
        if let Some(first_offset) = seen[i] {
            return Err(tensor_defect(DefectKind::DuplicateTensor { first_offset }));
        }
        let t = &expected[i];
        if !t.has_shape(ne) {
            return Err(tensor_defect(DefectKind::WrongShape {
                found: ne,
                n_dims: n_dims as u8,
                expected: [t.ne[0] as i32, t.ne[1] as i32, t.ne[2] as i32],
                shape: t.shape,
            }));
        }
        if ttype != t.ggml_type {
            return Err(tensor_defect(DefectKind::WrongType {
                found: ttype,
                expected: t.ggml_type,
            }));
        }
        let (block, _) = type_layout(t.ggml_type).expect("expected types are known");
        if t.ne[0] as u64 % block != 0 {
            // Unreachable after the block-size check of the state; kept as a guard.
            return Err(ModelDefect::field(
                DefectKind::BlockSize {
                    value: t.ne[0] as i32,
                    ggml_type: t.ggml_type,
                    block: block as i32,
                },
                at,
                Field::TensorDims,
            ));
        }
        // The header's dimensions and type are the expected ones by now.
        let nbytes = header.data_len().expect("expected types are known");
        src.tensor_data(nbytes, name, false)?;
        seen[i] = Some(at);
        n_tensors += 1;
        tensor_bytes += nbytes;
    }
    if let Some(i) = seen.iter().position(Option::is_none) {
        return Err(ModelDefect::tensor(
            DefectKind::MissingTensor {
                found: n_tensors as u32,
                expected: expected.len() as u32,
            },
            file_size,
            expected[i].name.as_bytes(),
        ));
    }

    Ok(ModelInfo {
        hparams: h,
        qnt_version,
        weight_type: static_type_name(wtype),
        model_type: model_type(h.n_audio_layer),
        multilingual: h.is_multilingual(),
        n_tokens: n_tokens as u32,
        n_tensors,
        tensor_bytes,
        file_size,
    })
}
