//! [`ModelDefect`]: what is wrong with a model file, where, and in which field or tensor.

use std::fmt;

use super::layout::{type_name, SHAPES};

/// How many bytes of a tensor name a [`ModelDefect`] keeps (names whisper.cpp knows are at
/// most 42 bytes; longer, unknown names are cut and marked with `...`).
pub const DEFECT_NAME_CAPACITY: usize = 44;

/// A header field or section of the model file, as defects name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Field {
    /// The file as a whole.
    File,
    /// The magic.
    Magic,
    /// Hyperparameter `n_vocab`.
    NVocab,
    /// Hyperparameter `n_audio_ctx`.
    NAudioCtx,
    /// Hyperparameter `n_audio_state`.
    NAudioState,
    /// Hyperparameter `n_audio_head`.
    NAudioHead,
    /// Hyperparameter `n_audio_layer`.
    NAudioLayer,
    /// Hyperparameter `n_text_ctx`.
    NTextCtx,
    /// Hyperparameter `n_text_state`.
    NTextState,
    /// Hyperparameter `n_text_head`.
    NTextHead,
    /// Hyperparameter `n_text_layer`.
    NTextLayer,
    /// Hyperparameter `n_mels`.
    NMels,
    /// Hyperparameter `ftype`.
    Ftype,
    /// `n_mel` of the mel filterbank.
    MelNMel,
    /// `n_fft` of the mel filterbank.
    MelNFft,
    /// whisper.cpp's `1 + WHISPER_N_FFT / 2`, what `n_fft` must equal.
    WhisperNFft,
    /// The filterbank's values.
    MelFilters,
    /// The vocabulary's entry count.
    VocabularyCount,
    /// A vocabulary entry's length.
    VocabularyTokenLength,
    /// A vocabulary entry's bytes.
    VocabularyToken,
    /// The tensor table as a whole.
    TensorTable,
    /// A tensor record's `n_dims`, name length and type.
    TensorHeader,
    /// A tensor record's dimensions.
    TensorDims,
    /// A tensor record's name.
    TensorName,
}

impl Field {
    /// The name messages use (`n_audio_head`, `mel filters n_fft`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Field::File => "file",
            Field::Magic => "magic",
            Field::NVocab => "n_vocab",
            Field::NAudioCtx => "n_audio_ctx",
            Field::NAudioState => "n_audio_state",
            Field::NAudioHead => "n_audio_head",
            Field::NAudioLayer => "n_audio_layer",
            Field::NTextCtx => "n_text_ctx",
            Field::NTextState => "n_text_state",
            Field::NTextHead => "n_text_head",
            Field::NTextLayer => "n_text_layer",
            Field::NMels => "n_mels",
            Field::Ftype => "ftype",
            Field::MelNMel => "mel filters n_mel",
            Field::MelNFft => "mel filters n_fft",
            Field::WhisperNFft => "1 + WHISPER_N_FFT/2 =",
            Field::MelFilters => "mel filters",
            Field::VocabularyCount => "vocabulary count",
            Field::VocabularyTokenLength => "vocabulary",
            Field::VocabularyToken => "vocabulary token",
            Field::TensorTable => "tensor table",
            Field::TensorHeader => "tensor header",
            Field::TensorDims => "tensor dimensions",
            Field::TensorName => "tensor name",
        }
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A tensor's expected shape in terms of the hyperparameters, e.g. `[n_text_state, n_vocab]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ShapeFormula(pub(crate) u8);

impl ShapeFormula {
    /// The formula as text.
    pub fn as_str(self) -> &'static str {
        SHAPES.get(self.0 as usize).copied().unwrap_or("?")
    }
}

impl fmt::Display for ShapeFormula {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What is wrong. The subject (a header field, a section or a tensor) and the offset are on
/// the [`ModelDefect`] that carries this.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DefectKind {
    /// The file could not be opened or read (not a defect of its content).
    Io(std::io::ErrorKind),
    /// The subject needs `needed` bytes at the offset but only `available` remain.
    Truncated {
        /// Bytes the subject needs.
        needed: u64,
        /// Bytes left in the file from the offset.
        available: u64,
    },
    /// The file does not start with ggml's magic `0x67676d6c`.
    BadMagic {
        /// The first four bytes, as a little-endian `u32`.
        found: u32,
    },
    /// A number outside the range whisper.cpp can handle.
    OutOfRange {
        /// The value in the file.
        value: i32,
        /// Smallest accepted value.
        min: i32,
        /// Largest accepted value.
        max: i32,
    },
    /// A number that must be a multiple of another field (a state of its head count).
    NotMultiple {
        /// The value in the file.
        value: i32,
        /// The field it must be a multiple of.
        of: Field,
        /// That field's value.
        divisor: i32,
    },
    /// A number that must equal another field.
    NotEqual {
        /// The value in the file.
        value: i32,
        /// The field it must equal.
        other: Field,
        /// That field's value.
        expected: i32,
    },
    /// `ftype` names no weight type whisper.cpp can load (ggml aborts on these).
    UnsupportedFtype {
        /// The raw `ftype`.
        ftype: i32,
    },
    /// The weight type works in blocks that do not divide the model's state size.
    BlockSize {
        /// The state size.
        value: i32,
        /// ggml's type id of the weights.
        ggml_type: i32,
        /// Its block size.
        block: i32,
    },
    /// A vocabulary entry longer than any token can be.
    TokenTooLong {
        /// The token's index.
        index: u32,
        /// Its length in bytes.
        len: u32,
        /// The longest accepted.
        max: u32,
    },
    /// A tensor name length that is zero, negative or longer than any known name.
    BadNameLength {
        /// The length in the file.
        length: i32,
        /// The longest accepted.
        max: i32,
    },
    /// A tensor with a dimension count outside `1..=4`.
    BadDimCount {
        /// The count in the file.
        n_dims: i32,
    },
    /// A tensor name whisper.cpp does not know for these hyperparameters.
    UnknownTensor,
    /// A tensor present twice.
    DuplicateTensor {
        /// Where its first copy starts.
        first_offset: u64,
    },
    /// A tensor whisper.cpp needs is not in the file.
    MissingTensor {
        /// How many tensors the file holds.
        found: u32,
        /// How many these hyperparameters need.
        expected: u32,
    },
    /// A tensor whose dimensions differ from what the hyperparameters give.
    WrongShape {
        /// The dimensions in the file, innermost first (unused ones are 1).
        found: [i32; 4],
        /// How many of them the file lists.
        n_dims: u8,
        /// The expected dimensions, innermost first.
        expected: [i32; 3],
        /// The expected shape in terms of the hyperparameters.
        shape: ShapeFormula,
    },
    /// A tensor stored in another ggml type than whisper.cpp allocates for it.
    WrongType {
        /// ggml's type id in the file.
        found: i32,
        /// The type whisper.cpp expects.
        expected: i32,
    },
    /// Bytes after the last complete tensor.
    TrailingBytes {
        /// How many.
        count: u64,
    },
}

/// What a defect is about.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Subject {
    /// A header field or a section.
    Field(Field),
    /// A tensor, by the (possibly cut) name read from the file.
    Tensor {
        name: [u8; DEFECT_NAME_CAPACITY],
        len: u8,
    },
}

/// A precise description of why a model file was refused: the kind of defect, the byte offset
/// it was found at, the field, section or tensor it concerns, and the values involved.
///
/// It is `Copy` (no allocation) so that [`WhisperError::InvalidModel`](crate::WhisperError)
/// can carry it. `Display` gives one line, for example
/// ``tensor `decoder.blocks.3.attn.query.weight` at offset 41234: dims [384, 385] do not match
/// [n_text_state, n_text_state] = [384, 384]``.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct ModelDefect {
    kind: DefectKind,
    offset: u64,
    subject: Subject,
}

impl ModelDefect {
    /// A defect of a header field or section.
    pub(crate) fn field(kind: DefectKind, offset: u64, field: Field) -> Self {
        ModelDefect {
            kind,
            offset,
            subject: Subject::Field(field),
        }
    }

    /// A defect of a tensor; `name` is the raw name, escaped and cut to fit.
    pub(crate) fn tensor(kind: DefectKind, offset: u64, name: &[u8]) -> Self {
        let mut buf = [0u8; DEFECT_NAME_CAPACITY];
        let mut len = 0;
        let escaped = name.escape_ascii();
        let mut cut = false;
        for b in escaped {
            if len == DEFECT_NAME_CAPACITY - 3 {
                cut = true;
                break;
            }
            buf[len] = b;
            len += 1;
        }
        if cut {
            buf[len..len + 3].copy_from_slice(b"...");
            len += 3;
        }
        ModelDefect {
            kind,
            offset,
            subject: Subject::Tensor {
                name: buf,
                len: len as u8,
            },
        }
    }

    /// What is wrong.
    pub fn kind(&self) -> DefectKind {
        self.kind
    }

    /// The byte offset in the file where the defective field, entry or tensor starts.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The header field (`n_audio_head`), section (`mel filters`, `vocabulary`) or tensor name
    /// (ASCII-escaped and cut to [`DEFECT_NAME_CAPACITY`] bytes) the defect concerns.
    pub fn subject(&self) -> &str {
        match &self.subject {
            Subject::Field(f) => f.as_str(),
            // The bytes come from `escape_ascii` and `...`: always ASCII.
            Subject::Tensor { name, len } => {
                std::str::from_utf8(&name[..*len as usize]).unwrap_or("?")
            }
        }
    }

    /// The header field or section the defect concerns, or `None` for a tensor.
    pub fn field_name(&self) -> Option<Field> {
        match self.subject {
            Subject::Field(f) => Some(f),
            Subject::Tensor { .. } => None,
        }
    }

    /// Whether the defect concerns a tensor (then [`subject`](Self::subject) is its name).
    pub fn is_tensor(&self) -> bool {
        matches!(self.subject, Subject::Tensor { .. })
    }
}

impl fmt::Debug for ModelDefect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ModelDefect")
            .field("kind", &self.kind)
            .field("offset", &self.offset)
            .field("subject", &self.subject())
            .finish()
    }
}

fn dims(f: &mut fmt::Formatter<'_>, d: &[impl fmt::Display]) -> fmt::Result {
    f.write_str("[")?;
    for (i, v) in d.iter().enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        write!(f, "{v}")?;
    }
    f.write_str("]")
}

impl fmt::Display for ModelDefect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_tensor() {
            write!(f, "tensor `{}`", self.subject())?;
        } else {
            f.write_str(self.subject())?;
        }
        write!(f, " at offset {}: ", self.offset)?;
        match self.kind {
            DefectKind::Io(kind) => write!(f, "cannot read the file ({kind})"),
            DefectKind::Truncated { needed, available } => write!(
                f,
                "truncated: needs {needed} bytes, only {available} remain in the file"
            ),
            DefectKind::BadMagic { found } => write!(
                f,
                "not a ggml model (magic {found:#010x}, expected 0x67676d6c)"
            ),
            DefectKind::OutOfRange { value, min, max } => {
                write!(f, "{value} is outside the accepted range {min}..={max}")
            }
            DefectKind::NotMultiple { value, of, divisor } => {
                write!(f, "{value} is not a multiple of {of} {divisor}")
            }
            DefectKind::NotEqual {
                value,
                other,
                expected,
            } => write!(f, "{value} does not match {other} {expected}"),
            DefectKind::UnsupportedFtype { ftype } => {
                write!(f, "ftype {ftype} is not a weight type whisper.cpp can load")
            }
            DefectKind::BlockSize {
                value,
                ggml_type,
                block,
            } => write!(
                f,
                "{value} is not a multiple of the block size {block} of the weight type {}",
                type_name(ggml_type)
            ),
            DefectKind::TokenTooLong { index, len, max } => {
                write!(f, "token {index} is {len} bytes long, more than {max}")
            }
            DefectKind::BadNameLength { length, max } => {
                write!(f, "name length {length} is outside 1..={max}")
            }
            DefectKind::BadDimCount { n_dims } => {
                write!(f, "{n_dims} dimensions, expected 1 to 4")
            }
            DefectKind::UnknownTensor => {
                f.write_str("not a tensor whisper.cpp expects for these hyperparameters")
            }
            DefectKind::DuplicateTensor { first_offset } => {
                write!(f, "present twice (first at offset {first_offset})")
            }
            DefectKind::MissingTensor { found, expected } => write!(
                f,
                "missing from the file ({found} of the {expected} tensors present)"
            ),
            DefectKind::WrongShape {
                found,
                n_dims,
                expected,
                shape,
            } => {
                f.write_str("dims ")?;
                dims(f, &found[..(n_dims as usize).min(4)])?;
                write!(f, " do not match {shape} = ")?;
                let rank = (shape.as_str().matches(',').count() + 1).min(3);
                dims(f, &expected[..rank])
            }
            DefectKind::WrongType { found, expected } => write!(
                f,
                "stored as {} but whisper.cpp expects {} for this model",
                type_name(found),
                type_name(expected)
            ),
            DefectKind::TrailingBytes { count } => {
                write!(f, "{count} bytes after the last complete tensor")
            }
        }
    }
}

impl std::error::Error for ModelDefect {}
