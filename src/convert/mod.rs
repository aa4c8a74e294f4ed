//! Model conversion into whisper.cpp's ggml format.
//!
//! [`quantize_file`] rewrites the weight matrices of an f32/f16 whisper.cpp model in one of
//! ggml's block-quantized types ([`QuantType`]: q4_0 to q8_0).
//!
//! [`convert_ct2_dir`] turns a CTranslate2 Whisper model folder (as used by faster-whisper:
//! `model.bin` plus `vocabulary.txt` or `vocabulary.json`) into the single `ggml-*.bin` file
//! that whisper.cpp loads. [`convert_ct2`] does the same from buffers.
//!
//! What the conversion does:
//! - reads `model.bin`, checking every size against the bytes present before using it;
//! - maps CTranslate2's variables to whisper.cpp's tensor names, splitting the fused
//!   query/key/value and key/value projections and dropping the key biases, which whisper.cpp
//!   does not have and which cannot change the attention's result;
//! - writes matrices and convolution kernels as f16 and every vector, the convolution biases and
//!   the positional embeddings as f32 (`ftype` 1, what whisper.cpp expects of such a file);
//! - computes the Slaney mel filterbank the model file must carry ([`mel_filterbank`]);
//! - writes the tokens before `<|endoftext|>` as raw bytes ([`decode_gpt2_token`]); whisper.cpp
//!   names the special tokens itself, and tells English-only from multilingual models by
//!   `n_vocab`, the embedding's row count.
//!
//! The output depends on the input alone: the same model gives the same bytes.
//!
//! [`convert_silero_vad`] turns the Silero VAD ONNX model of the PyPI package `silero-vad` into
//! the ggml VAD model that whisper.cpp's native voice activity detection loads
//! ([`crate::WhisperVadContext`], or `FullParams::set_vad_model_path`); see [`silero`] for
//! the format.

mod ct2;
mod error;
mod floats;
mod layout;
mod mel;
mod onnx;
mod quantize;
pub mod silero;
mod vocab;

use std::fs;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

pub use crate::ggml::Hparams;
pub use error::ConvertError;
pub use floats::{f16_to_f32, f32_to_f16};
pub use mel::{mel_filterbank, WHISPER_N_FFT, WHISPER_SAMPLE_RATE};
pub use quantize::{quantize, quantize_file, QuantType, QuantizeReport};
pub use silero::{convert_silero_vad, convert_silero_vad_onnx, SileroReport, SileroVersion};
pub use vocab::{decode_gpt2_token, gpt2_byte, parse_vocabulary_json, parse_vocabulary_txt};

use crate::ggml::{GgmlWriter, MAX_TOKEN_LEN, MEL_N_FFT};

// The file's filterbank has a row per frequency bin of whisper's FFT.
const _: () = assert!(WHISPER_N_FFT / 2 + 1 == MEL_N_FFT as usize);

/// The token that ends the regular vocabulary; whisper.cpp adds it and those after it itself.
const END_OF_TEXT: &str = "<|endoftext|>";

/// What a conversion wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConvertReport {
    /// The model's hyper parameters, as written.
    pub hparams: Hparams,
    /// Tensors written.
    pub tensors: usize,
    /// Vocabulary entries written (the tokens before `<|endoftext|>`).
    pub tokens: usize,
    /// Bytes written in all.
    pub bytes: u64,
}

/// Converts the CTranslate2 Whisper model in `model_dir` (`model.bin` and `vocabulary.txt`, or
/// `vocabulary.json`) into a whisper.cpp model file at `out`.
///
/// The file is written beside `out` under a temporary name and renamed into place once
/// complete, so `out` never holds a partial model.
pub fn convert_ct2_dir(model_dir: &Path, out: &Path) -> Result<ConvertReport, ConvertError> {
    let model_path = model_dir.join("model.bin");
    if !model_path.is_file() {
        return Err(ConvertError::MissingFile(model_path));
    }
    let model_bin = fs::read(&model_path)
        .map_err(|e| ConvertError::io(format!("reading {}", model_path.display()), e))?;

    let txt = model_dir.join("vocabulary.txt");
    let json = model_dir.join("vocabulary.json");
    let read = |p: &Path| {
        fs::read_to_string(p).map_err(|e| ConvertError::io(format!("reading {}", p.display()), e))
    };
    let tokens: Vec<String> = if txt.is_file() {
        parse_vocabulary_txt(&read(&txt)?)
            .into_iter()
            .map(str::to_owned)
            .collect()
    } else if json.is_file() {
        parse_vocabulary_json(&read(&json)?)?
    } else {
        return Err(ConvertError::MissingFile(txt));
    };

    write_atomically(out, |w| convert_ct2_tokens(&model_bin, &tokens, w))
}

/// Writes `out` through `write` under a temporary name beside it, syncs, and renames it into
/// place, so `out` never holds a partial file; the temporary file is removed on failure.
pub(crate) fn write_atomically<R>(
    out: &Path,
    write: impl FnOnce(&mut BufWriter<fs::File>) -> Result<R, ConvertError>,
) -> Result<R, ConvertError> {
    let tmp = partial_path(out)?;
    let result = (|| {
        let file = fs::File::create(&tmp)
            .map_err(|e| ConvertError::io(format!("creating {}", out.display()), e))?;
        let mut w = BufWriter::with_capacity(1 << 20, file);
        let report = write(&mut w)?;
        let file = w
            .into_inner()
            .map_err(|e| ConvertError::io(format!("writing {}", out.display()), e.into_error()))?;
        file.sync_all()
            .map_err(|e| ConvertError::io(format!("writing {}", out.display()), e))?;
        fs::rename(&tmp, out).map_err(|e| {
            ConvertError::io(
                format!("renaming {} to {}", tmp.display(), out.display()),
                e,
            )
        })?;
        Ok(report)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// The temporary name `out` is written under: hidden, in the same folder.
fn partial_path(out: &Path) -> Result<PathBuf, ConvertError> {
    let name = out.file_name().ok_or_else(|| {
        ConvertError::io(
            format!("output path {}", out.display()),
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "names no file"),
        )
    })?;
    let mut tmp = std::ffi::OsString::from(".");
    tmp.push(name);
    tmp.push(format!(".partial-{}", std::process::id()));
    Ok(out.with_file_name(tmp))
}

/// Converts a CTranslate2 Whisper model from memory: `model_bin` is the content of
/// `model.bin`, `vocabulary` that of `vocabulary.txt` (one token per line).
///
/// Everything is checked before the first byte is written, so a malformed input leaves `out`
/// untouched; only an error of `out` itself can leave it partly written.
pub fn convert_ct2(
    model_bin: &[u8],
    vocabulary: &str,
    out: &mut impl Write,
) -> Result<ConvertReport, ConvertError> {
    convert(model_bin, || parse_vocabulary_txt(vocabulary), out)
}

/// Like [`convert_ct2`], with the vocabulary given as a list of tokens (as spelled in
/// CTranslate2's vocabulary files, in GPT-2's byte-level alphabet).
pub fn convert_ct2_tokens<S: AsRef<str>>(
    model_bin: &[u8],
    tokens: &[S],
    out: &mut impl Write,
) -> Result<ConvertReport, ConvertError> {
    convert(model_bin, || tokens, out)
}

/// The conversion; the vocabulary is only looked at once the model has been checked.
fn convert<S: AsRef<str>, T: AsRef<[S]>>(
    model_bin: &[u8],
    tokens: impl FnOnce() -> T,
    out: &mut impl Write,
) -> Result<ConvertReport, ConvertError> {
    let model = ct2::Model::parse(model_bin)?;
    let plan = layout::plan(&model)?;
    let h = plan.hparams;

    let vocab = vocabulary_bytes(tokens().as_ref(), h.n_vocab as usize)?;
    let filters = mel_filterbank(WHISPER_SAMPLE_RATE, WHISPER_N_FFT, h.n_mels as usize);

    let io_err = |e| ConvertError::io("writing the model", e);
    let mut w = GgmlWriter::new(out);
    w.header(&h).map_err(io_err)?;
    w.mel_filters(h.n_mels, MEL_N_FFT, &filters)
        .map_err(io_err)?;
    w.vocabulary(&vocab).map_err(io_err)?;
    for t in &plan.tensors {
        let data = floats::convert_floats(t.data, t.dtype, t.ty).ok_or_else(|| {
            ConvertError::UnsupportedDtype {
                name: t.source.clone(),
                dtype: t.dtype.id(),
            }
        })?;
        w.tensor(&t.name, &t.shape, t.ty, &data).map_err(io_err)?;
    }
    w.flush().map_err(io_err)?;

    Ok(ConvertReport {
        hparams: h,
        tensors: plan.tensors.len(),
        tokens: vocab.len(),
        bytes: w.written(),
    })
}

/// The regular tokens (those before `<|endoftext|>`) as raw bytes, after checking that the
/// vocabulary matches the model's embedding and that each token is one whisper.cpp reads (at
/// most [`MAX_TOKEN_LEN`] bytes, as the validator requires).
fn vocabulary_bytes<S: AsRef<str>>(
    tokens: &[S],
    n_vocab: usize,
) -> Result<Vec<Vec<u8>>, ConvertError> {
    if tokens.len() != n_vocab {
        return Err(ConvertError::Vocabulary(format!(
            "{} tokens for a model with {n_vocab} embedding rows",
            tokens.len()
        )));
    }
    let eot = tokens
        .iter()
        .position(|t| t.as_ref() == END_OF_TEXT)
        .ok_or_else(|| ConvertError::Vocabulary(format!("no {END_OF_TEXT} token")))?;
    tokens[..eot]
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let t = t.as_ref();
            let bytes = decode_gpt2_token(t).ok_or_else(|| {
                ConvertError::Vocabulary(format!(
                    "token {i} ({t:?}) is not in GPT-2's byte-level alphabet"
                ))
            })?;
            if bytes.len() > MAX_TOKEN_LEN as usize {
                return Err(ConvertError::Vocabulary(format!(
                    "token {i} is {} bytes long; whisper.cpp reads at most {MAX_TOKEN_LEN}",
                    bytes.len()
                )));
            }
            Ok(bytes)
        })
        .collect()
}
