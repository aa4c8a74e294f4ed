//! The converter's error type.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// Why a conversion failed.
///
/// Every malformed input is reported through this type: the converter never panics on bad data
/// and checks every size read from the input against the bytes actually present before it
/// allocates anything.
#[derive(Debug)]
#[non_exhaustive]
pub enum ConvertError {
    /// Reading an input file or writing the output failed.
    Io {
        /// What was being done, with the path involved when there is one.
        context: String,
        /// The underlying error.
        source: io::Error,
    },
    /// A required input file is missing from the model folder.
    MissingFile(PathBuf),
    /// `model.bin` ends before a field it announces.
    Truncated {
        /// The field being read.
        what: String,
        /// Byte offset of the field in `model.bin`.
        offset: usize,
        /// Bytes the field needs.
        needed: usize,
        /// Bytes left in the file at that offset.
        available: usize,
    },
    /// `model.bin` uses a binary format version this converter does not read.
    UnsupportedVersion(i32),
    /// `model.bin` holds a model other than Whisper.
    NotWhisper {
        /// The model specification named in the file.
        spec: String,
    },
    /// A structural problem in `model.bin` (bad size, duplicate name, trailing bytes, ...).
    Format(String),
    /// A variable uses a data type the converter cannot handle where it appears.
    UnsupportedDtype {
        /// The variable's name.
        name: String,
        /// CTranslate2's data type id.
        dtype: u8,
    },
    /// The model stores int8-quantized weights (a `weight_scale` variable), which the converter
    /// does not dequantize.
    Quantized {
        /// The first quantized weight found.
        name: String,
    },
    /// A variable the Whisper architecture needs is missing.
    MissingVariable(String),
    /// A variable that the converter does not know how to place in a whisper.cpp model.
    UnexpectedVariable(String),
    /// A variable's shape disagrees with the model's dimensions.
    Shape {
        /// The variable's name.
        name: String,
        /// The shape the model's dimensions call for.
        expected: Vec<usize>,
        /// The shape found in the file.
        found: Vec<usize>,
    },
    /// The model's dimensions cannot be represented or used by whisper.cpp.
    Hparams(String),
    /// The vocabulary is malformed or does not match the model.
    Vocabulary(String),
    /// A whisper.cpp model file given to the quantizer is malformed or cannot be quantized.
    Model(String),
    /// An ONNX file is not a well-formed protobuf `ModelProto` (truncated, bad lengths or wire
    /// types); the message names the byte offset.
    Onnx(String),
    /// The input to the Silero VAD converter is not a usable Silero VAD model (another format,
    /// a missing 16 kHz network, a tensor of the wrong shape or type, non-finite weights), or a
    /// Silero version string is malformed.
    SileroVad(String),
}

impl fmt::Display for ConvertError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConvertError::Io { context, source } => write!(f, "{context}: {source}"),
            ConvertError::MissingFile(path) => write!(f, "missing file {}", path.display()),
            ConvertError::Truncated {
                what,
                offset,
                needed,
                available,
            } => write!(
                f,
                "model.bin is truncated or corrupt: {what} at byte {offset} needs {needed} bytes, \
                 {available} left"
            ),
            ConvertError::UnsupportedVersion(v) => write!(
                f,
                "unsupported CTranslate2 binary version {v} (this converter reads versions \
                 {}..={})",
                super::ct2::MIN_VERSION,
                super::ct2::MAX_VERSION
            ),
            ConvertError::NotWhisper { spec } => {
                write!(f, "model.bin holds a {spec:?} model, not a Whisper model")
            }
            ConvertError::Format(msg) => write!(f, "malformed model.bin: {msg}"),
            ConvertError::UnsupportedDtype { name, dtype } => write!(
                f,
                "variable {name:?} has data type {} which cannot be converted here",
                super::ct2::dtype_name(*dtype)
            ),
            ConvertError::Quantized { name } => write!(
                f,
                "variable {name:?} is int8-quantized; convert the model with CTranslate2's \
                 float16 or float32 quantization instead"
            ),
            ConvertError::MissingVariable(name) => {
                write!(f, "model.bin lacks the Whisper variable {name:?}")
            }
            ConvertError::UnexpectedVariable(name) => write!(
                f,
                "model.bin holds variable {name:?}, which has no place in a whisper.cpp model"
            ),
            ConvertError::Shape {
                name,
                expected,
                found,
            } => write!(
                f,
                "variable {name:?} has shape {found:?}, expected {expected:?}"
            ),
            ConvertError::Hparams(msg) => write!(f, "unsupported model dimensions: {msg}"),
            ConvertError::Vocabulary(msg) => write!(f, "bad vocabulary: {msg}"),
            ConvertError::Model(msg) => write!(f, "whisper.cpp model: {msg}"),
            ConvertError::Onnx(msg) => write!(f, "malformed ONNX file: {msg}"),
            ConvertError::SileroVad(msg) => write!(f, "Silero VAD model: {msg}"),
        }
    }
}

impl std::error::Error for ConvertError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ConvertError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl ConvertError {
    /// An I/O error with what was being done.
    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> Self {
        ConvertError::Io {
            context: context.into(),
            source,
        }
    }
}
