//! Silero VAD → whisper.cpp's ggml VAD model.
//!
//! whisper.cpp 1.8.3 runs voice activity detection with the 16 kHz Silero VAD network (v5/v6:
//! an STFT as a convolution, four convolution layers, an LSTM cell and a 1×1 convolution), read
//! from a ggml file by `whisper_vad_init_with_params`. Upstream makes that file with
//! `models/convert-silero-vad-to-ggml.py`, which needs PyTorch; [`convert_silero_vad`] makes the
//! same file, byte for byte, from the ONNX export that the PyPI package `silero-vad` ships
//! (`silero_vad/data/silero_vad.onnx`, or `silero_vad_16k_op15.onnx`), in Rust alone.
//!
//! Why the ONNX file and not the package's TorchScript archive (`silero_vad.jit`): ONNX is one
//! published protobuf schema, and its constants are plain little-endian float tensors that a
//! small protobuf reader (the private module `convert::onnx`, about 300 lines) can find; the
//! TorchScript archive would need a zip reader, a subset of Python's pickle machine and
//! PyTorch's storage conventions, which have changed between PyTorch versions. Both files carry
//! the same weights: for silero-vad 6.2.0 the output is byte for byte upstream's
//! `models/for-tests-silero-v6.2.0-ggml.bin`, which upstream converted from the TorchScript
//! model.
//!
//! The file written (little-endian `i32`s unless said otherwise):
//!
//! 1. the magic `0x67676d6c`;
//! 2. the model type as an `i32` length and bytes: `silero-16k`;
//! 3. the Silero version as three `i32`s (only logged by whisper.cpp; ONNX files do not record
//!    it, so the caller passes it, see [`SileroVersion`]);
//! 4. the window (512 samples) and context (64 samples) sizes;
//! 5. the encoder layer count (4) and per layer its input channels, output channels and kernel
//!    size: `129 128 3`, `128 64 3`, `64 64 3`, `64 128 3`;
//! 6. the LSTM input and hidden sizes (128, 128) and the final convolution's input and output
//!    channels (128, 1);
//! 7. per tensor, in the order of [`TENSORS`]: `n_dims`, the name's length, the ggml type
//!    (0 f32, 1 f16), the dimensions innermost first, the name and the data. PyTorch's
//!    dimensions of size 1 are squeezed out except in the STFT basis, as upstream does (the
//!    final convolution's bias becomes a 0-dimensional tensor of one element).
//!
//! The ONNX file may hold several copies of the network: `silero_vad.onnx` has a 16 kHz and an
//! 8 kHz branch, each a set of `Constant` nodes whose names end in the PyTorch parameter names
//! (`...encoder.0.reparam_conv.weight`). The converter groups the tensors by the prefix before
//! those names and takes the one group whose STFT basis has the 16 kHz shape, which must hold
//! all 15 tensors; it checks every shape, type and size, and refuses non-finite weights, before
//! writing anything.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::io::Write;
use std::path::Path;
use std::str::FromStr;

use super::floats::f32_to_f16;
use super::onnx::{self, DATA_TYPE_FLOAT};
use super::{write_atomically, ConvertError};
use crate::ggml::{GgmlType, GgmlWriter, MAGIC};

/// The model type string whisper.cpp's loader reads (and logs).
pub const SILERO_MODEL_TYPE: &str = "silero-16k";
/// Samples per window the network reads at 16 kHz.
pub const SILERO_WINDOW: i32 = 512;
/// Samples of context the network carries from one window to the next at 16 kHz.
pub const SILERO_CONTEXT: i32 = 64;

/// The encoder's convolution layers as (input channels, output channels, kernel size).
const ENCODER: [[i32; 3]; 4] = [[129, 128, 3], [128, 64, 3], [64, 64, 3], [64, 128, 3]];
/// LSTM input and hidden sizes.
const LSTM: [i32; 2] = [128, 128];
/// Final convolution input and output channels.
const FINAL_CONV: [i32; 2] = [128, 1];
/// Upstream's prefix of every tensor name in the ggml file.
const GGML_PREFIX: &str = "_model.";

/// One tensor of the ggml file and where it comes from.
#[derive(Debug, Clone, Copy)]
pub struct SileroTensor {
    /// The PyTorch parameter name, which the ONNX constant's name ends with.
    pub source: &'static str,
    /// Its PyTorch shape in the 16 kHz model, outermost first.
    pub shape: &'static [i64],
    /// The shape written (outermost first; the file stores it reversed), after squeezing.
    pub written: &'static [i32],
    /// Whether it is written as f16 (else f32), as whisper.cpp's loader expects.
    pub f16: bool,
}

/// The tensors of the ggml file, in upstream's order; the ggml name is `_model.` + `source`.
pub const TENSORS: [SileroTensor; 15] = [
    t(
        "encoder.0.reparam_conv.weight",
        &[128, 129, 3],
        &[128, 129, 3],
        true,
    ),
    t("encoder.0.reparam_conv.bias", &[128], &[128], false),
    t(
        "encoder.1.reparam_conv.weight",
        &[64, 128, 3],
        &[64, 128, 3],
        true,
    ),
    t("encoder.1.reparam_conv.bias", &[64], &[64], false),
    t(
        "encoder.2.reparam_conv.weight",
        &[64, 64, 3],
        &[64, 64, 3],
        true,
    ),
    t("encoder.2.reparam_conv.bias", &[64], &[64], false),
    t(
        "encoder.3.reparam_conv.weight",
        &[128, 64, 3],
        &[128, 64, 3],
        true,
    ),
    t("encoder.3.reparam_conv.bias", &[128], &[128], false),
    t("decoder.rnn.weight_ih", &[512, 128], &[512, 128], false),
    t("decoder.rnn.weight_hh", &[512, 128], &[512, 128], false),
    t("decoder.rnn.bias_ih", &[512], &[512], false),
    t("decoder.rnn.bias_hh", &[512], &[512], false),
    t("decoder.decoder.2.weight", &[1, 128, 1], &[128], true),
    t("decoder.decoder.2.bias", &[1], &[], false),
    t(
        "stft.forward_basis_buffer",
        &[258, 1, 256],
        &[258, 1, 256],
        true,
    ),
];

const fn t(
    source: &'static str,
    shape: &'static [i64],
    written: &'static [i32],
    f16: bool,
) -> SileroTensor {
    SileroTensor {
        source,
        shape,
        written,
        f16,
    }
}

/// Index of the STFT basis in [`TENSORS`]; its shape tells the 16 kHz network from the 8 kHz.
const STFT: usize = 14;

/// The Silero VAD version recorded in the ggml file (`major.minor.patch`).
///
/// whisper.cpp only logs it. ONNX files do not carry it, so the caller states it, normally the
/// version of the `silero-vad` package the file came from; without one the file says `0.0.0`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SileroVersion {
    /// Major version (6 for silero-vad 6.2.0).
    pub major: i32,
    /// Minor version.
    pub minor: i32,
    /// Patch version.
    pub patch: i32,
}

impl fmt::Display for SileroVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

impl FromStr for SileroVersion {
    type Err = ConvertError;

    /// Parses `major.minor.patch` (non-negative integers), e.g. `6.2.0`.
    fn from_str(s: &str) -> Result<Self, ConvertError> {
        let bad = || ConvertError::SileroVad(format!("version {s:?} is not major.minor.patch"));
        let mut parts = s.trim().split('.').map(|p| {
            if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            p.parse::<i32>().map_err(|_| bad())
        });
        let mut next = || parts.next().unwrap_or_else(|| Err(bad()));
        let version = SileroVersion {
            major: next()?,
            minor: next()?,
            patch: next()?,
        };
        if parts.next().is_some() {
            return Err(bad());
        }
        Ok(version)
    }
}

/// What a Silero VAD conversion wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SileroReport {
    /// The version recorded in the file.
    pub version: SileroVersion,
    /// The prefix of the ONNX names the tensors were taken from (e.g.
    /// `If_0_then_branch__Inline_0__` in `silero_vad.onnx`, `model.` in the opset-15 export).
    pub source_prefix: String,
    /// Tensors written (15).
    pub tensors: usize,
    /// Bytes written in all.
    pub bytes: u64,
}

/// Converts the Silero VAD ONNX model at `input` (`silero_vad.onnx` from the PyPI package
/// `silero-vad`) into whisper.cpp's ggml VAD model at `output`, recording `version` (see
/// [`SileroVersion`]).
///
/// The file is written beside `output` under a temporary name and renamed into place once
/// complete, so `output` never holds a partial model; a malformed input is an error before
/// anything is written.
pub fn convert_silero_vad(
    input: &Path,
    output: &Path,
    version: Option<SileroVersion>,
) -> Result<SileroReport, ConvertError> {
    if !input.is_file() {
        return Err(ConvertError::MissingFile(input.to_path_buf()));
    }
    let bytes =
        fs::read(input).map_err(|e| ConvertError::io(format!("reading {}", input.display()), e))?;
    // Parse and check before creating the output.
    let plan = plan(&bytes)?;
    write_atomically(output, |w| write(&plan, version.unwrap_or_default(), w))
}

/// Like [`convert_silero_vad`], from the ONNX file's bytes into `out`.
///
/// Everything is checked before the first byte is written, so a malformed input leaves `out`
/// untouched; only an error of `out` itself can leave it partly written.
pub fn convert_silero_vad_onnx(
    onnx: &[u8],
    version: Option<SileroVersion>,
    out: &mut impl Write,
) -> Result<SileroReport, ConvertError> {
    let plan = plan(onnx)?;
    write(&plan, version.unwrap_or_default(), out)
}

/// The checked tensors, in [`TENSORS`] order, as little-endian f32 data.
struct Plan<'a> {
    prefix: String,
    data: Vec<Cow<'a, [u8]>>,
}

fn plan(bytes: &[u8]) -> Result<Plan<'_>, ConvertError> {
    if let Some(kind) = known_other_format(bytes) {
        return Err(ConvertError::SileroVad(format!(
            "the input is {kind}, not an ONNX model; give the package's silero_vad.onnx"
        )));
    }
    let mut tensors = onnx::tensors(bytes)?;

    // Group the tensors whose names end in a Silero parameter name by what comes before it.
    let mut groups: BTreeMap<String, [Option<usize>; TENSORS.len()]> = BTreeMap::new();
    for (i, tensor) in tensors.iter().enumerate() {
        for (k, spec) in TENSORS.iter().enumerate() {
            let Some(prefix) = tensor.name.strip_suffix(spec.source) else {
                continue;
            };
            if !(prefix.is_empty() || prefix.ends_with(['.', '_', '/'])) {
                continue;
            }
            let slot = &mut groups.entry(prefix.to_owned()).or_default()[k];
            if slot.is_some() {
                return Err(ConvertError::SileroVad(format!(
                    "two tensors are named {:?}",
                    tensor.name
                )));
            }
            *slot = Some(i);
        }
    }

    let is_16k = |slots: &[Option<usize>; TENSORS.len()]| {
        slots[STFT].is_some_and(|i| tensors[i].dims == TENSORS[STFT].shape)
    };
    let candidates: Vec<&String> = groups
        .iter()
        .filter(|(_, slots)| is_16k(slots))
        .map(|(prefix, _)| prefix)
        .collect();
    let prefix = match candidates.as_slice() {
        [one] => (*one).clone(),
        [] => {
            let found: Vec<String> = groups
                .iter()
                .filter_map(|(p, s)| s[STFT].map(|i| format!("{p}: {:?}", tensors[i].dims)))
                .collect();
            return Err(ConvertError::SileroVad(if found.is_empty() {
                format!(
                    "no tensor named ...{} (is this silero_vad.onnx?)",
                    TENSORS[STFT].source
                )
            } else {
                format!(
                    "no 16 kHz network: the STFT bases have shapes {}, the 16 kHz one is {:?}",
                    found.join(", "),
                    TENSORS[STFT].shape
                )
            }));
        }
        many => {
            return Err(ConvertError::SileroVad(format!(
                "{} 16 kHz networks (name prefixes {:?}); expected one",
                many.len(),
                many
            )))
        }
    };
    let slots = groups[&prefix];

    let mut order = Vec::with_capacity(TENSORS.len());
    for (spec, slot) in TENSORS.iter().zip(slots) {
        let name = format!("{prefix}{}", spec.source);
        let i = slot.ok_or_else(|| ConvertError::SileroVad(format!("no tensor {name:?}")))?;
        let tensor = &tensors[i];
        if tensor.external {
            return Err(ConvertError::SileroVad(format!(
                "tensor {name:?} keeps its data in an external file, which is not supported"
            )));
        }
        if tensor.data_type != DATA_TYPE_FLOAT {
            return Err(ConvertError::SileroVad(format!(
                "tensor {name:?} has ONNX data type {}, expected 1 (float)",
                tensor.data_type
            )));
        }
        if tensor.dims != spec.shape {
            return Err(ConvertError::SileroVad(format!(
                "tensor {name:?} has shape {:?}, expected {:?}",
                tensor.dims, spec.shape
            )));
        }
        let elements: i64 = spec.shape.iter().product();
        if tensor.data.len() as u64 != elements as u64 * 4 {
            return Err(ConvertError::SileroVad(format!(
                "tensor {name:?} holds {} bytes, its shape {:?} needs {}",
                tensor.data.len(),
                spec.shape,
                elements * 4
            )));
        }
        if let Some(bad) = tensor
            .data
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .find(|v| !v.is_finite())
        {
            return Err(ConvertError::SileroVad(format!(
                "tensor {name:?} holds the non-finite value {bad}"
            )));
        }
        order.push(i);
    }

    let data = order
        .iter()
        .map(|&i| std::mem::take(&mut tensors[i].data))
        .collect();
    Ok(Plan { prefix, data })
}

fn write(
    plan: &Plan<'_>,
    version: SileroVersion,
    out: &mut impl Write,
) -> Result<SileroReport, ConvertError> {
    let io_err = |e| ConvertError::io("writing the VAD model", e);
    let mut w = GgmlWriter::new(out);
    let mut header = Vec::new();
    header.extend_from_slice(&MAGIC.to_le_bytes());
    let mut ints: Vec<i32> = vec![SILERO_MODEL_TYPE.len() as i32];
    let push = |h: &mut Vec<u8>, v: &[i32]| {
        for x in v {
            h.extend_from_slice(&x.to_le_bytes());
        }
    };
    push(&mut header, &ints);
    header.extend_from_slice(SILERO_MODEL_TYPE.as_bytes());
    ints.clear();
    ints.extend([version.major, version.minor, version.patch]);
    ints.extend([SILERO_WINDOW, SILERO_CONTEXT, ENCODER.len() as i32]);
    for layer in ENCODER {
        ints.extend(layer);
    }
    ints.extend(LSTM);
    ints.extend(FINAL_CONV);
    push(&mut header, &ints);
    w.raw(&header).map_err(io_err)?;

    for (spec, data) in TENSORS.iter().zip(&plan.data) {
        let (ty, bytes) = if spec.f16 {
            let mut b = Vec::with_capacity(data.len() / 2);
            for c in data.chunks_exact(4) {
                let v = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
                b.extend_from_slice(&f32_to_f16(v).to_le_bytes());
            }
            (GgmlType::F16, b)
        } else {
            (GgmlType::F32, data.to_vec())
        };
        let name = format!("{GGML_PREFIX}{}", spec.source);
        w.tensor(&name, spec.written, ty, &bytes).map_err(io_err)?;
    }
    w.flush().map_err(io_err)?;
    Ok(SileroReport {
        version,
        source_prefix: plan.prefix.clone(),
        tensors: TENSORS.len(),
        bytes: w.written(),
    })
}

/// Names formats that are easily mistaken for the ONNX file.
fn known_other_format(bytes: &[u8]) -> Option<&'static str> {
    if bytes.starts_with(b"PK\x03\x04") {
        Some("a zip archive (the TorchScript silero_vad.jit, or the wheel itself?)")
    } else if bytes.starts_with(&MAGIC.to_le_bytes()) {
        Some("already a ggml file")
    } else if bytes.starts_with(b"GGUF") {
        Some("a GGUF file")
    } else if bytes.is_empty() {
        Some("empty")
    } else {
        None
    }
}
