//! The ggml model file that whisper.cpp's `whisper_model_load` reads, in one place: the magic,
//! the hyperparameters with named fields and their accepted ranges, the ggml type table, the
//! tensor table whisper.cpp builds, the defects a file can have, a streaming reader and the
//! writer. It is the lowest layer of the model code and imports none above it: the validator
//! (`model`), the converter and quantizer (`convert`) and the catalog (`catalog`) are built on
//! it, and this module is the one path to [`Hparams`], [`MAGIC`] and the defect types.
//!
//! Layout (little-endian `i32`s unless said otherwise): the magic `0x67676d6c`; the
//! hyperparameters `n_vocab, n_audio_ctx, n_audio_state, n_audio_head, n_audio_layer,
//! n_text_ctx, n_text_state, n_text_head, n_text_layer, n_mels, ftype`; the mel filterbank as
//! `n_mel, n_fft` and `n_mel * n_fft` `f32`s; the vocabulary as a count and, per token, a `u32`
//! length and the token's bytes; then until the end of the file, per tensor: `n_dims`, the
//! name's length, the ggml type, the dimensions innermost first, the name, and the data.

mod defect;
pub(crate) mod layout;
pub(crate) mod reader;
pub(crate) mod source;
pub(crate) mod writer;

pub use defect::{DefectKind, Field, ModelDefect, ShapeFormula, DEFECT_NAME_CAPACITY};
pub(crate) use writer::{GgmlType, GgmlWriter};

/// The file magic, `"ggml"` as a little-endian `u32`.
pub const MAGIC: u32 = 0x6767_6d6c;
/// The longest vocabulary entry accepted, in bytes (whisper's longest token has 128).
pub const MAX_TOKEN_LEN: u32 = 1024;
/// The longest tensor name accepted, in bytes (whisper.cpp's longest has 42).
pub const MAX_TENSOR_NAME_LEN: i32 = 64;
/// `n_fft` of the mel filterbank: `1 + WHISPER_N_FFT / 2`.
pub const MEL_N_FFT: i32 = 201;

/// The hyper parameters written at the head of a whisper.cpp model file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hparams {
    /// Vocabulary size (rows of the token embedding); 51864 for English-only models.
    pub n_vocab: i32,
    /// Encoder positions (1500 for 30 s of audio).
    pub n_audio_ctx: i32,
    /// Encoder width.
    pub n_audio_state: i32,
    /// Encoder attention heads.
    pub n_audio_head: i32,
    /// Encoder blocks.
    pub n_audio_layer: i32,
    /// Decoder positions (448).
    pub n_text_ctx: i32,
    /// Decoder width.
    pub n_text_state: i32,
    /// Decoder attention heads.
    pub n_text_head: i32,
    /// Decoder blocks.
    pub n_text_layer: i32,
    /// Mel bands of the input (80, or 128 for large-v3).
    pub n_mels: i32,
    /// The file type: the weight matrices' type as ggml's `ftype` (0 f32, 1 f16, 2 q4_0, ...),
    /// plus the quantization version times 1000 in a quantized file (2008 is q5_0).
    pub ftype: i32,
}

/// One hyperparameter in file order: its field, where it is, how to get and set it, and the
/// values the validator accepts.
pub(crate) struct HparamField {
    /// The field, as defects name it.
    pub(crate) field: Field,
    /// Its offset in the file.
    pub(crate) offset: u64,
    /// Reads it from [`Hparams`].
    pub(crate) get: fn(&Hparams) -> i32,
    /// Writes it into [`Hparams`].
    pub(crate) set: fn(&mut Hparams, i32),
    /// The smallest value accepted.
    pub(crate) min: i32,
    /// The largest value accepted.
    pub(crate) max: i32,
}

macro_rules! hparam_fields {
    ($(($index:expr, $name:ident, $field:ident, $min:expr, $max:expr)),* $(,)?) => {
        [$(HparamField {
            field: Field::$field,
            offset: 4 + 4 * $index,
            get: |h| h.$name,
            set: |h, v| h.$name = v,
            min: $min,
            max: $max,
        }),*]
    };
}

impl Hparams {
    /// Every hyperparameter in file order, with the range the validator accepts (why each:
    /// the table in [`crate::model`]'s documentation).
    pub(crate) const FIELDS: [HparamField; 11] = hparam_fields![
        (0, n_vocab, NVocab, 51864, 51866),
        (1, n_audio_ctx, NAudioCtx, 1, 1500),
        (2, n_audio_state, NAudioState, 1, 8192),
        (3, n_audio_head, NAudioHead, 1, 256),
        (4, n_audio_layer, NAudioLayer, 1, 128),
        (5, n_text_ctx, NTextCtx, 16, 448),
        (6, n_text_state, NTextState, 1, 8192),
        (7, n_text_head, NTextHead, 1, 256),
        (8, n_text_layer, NTextLayer, 1, 128),
        (9, n_mels, NMels, 1, 512),
        (10, ftype, Ftype, 0, 2999),
    ];

    /// Whether whisper.cpp will treat the model as multilingual (it decides by `n_vocab`).
    pub fn is_multilingual(&self) -> bool {
        self.n_vocab >= 51865
    }

    /// The table row of `field` (a hyperparameter).
    pub(crate) fn field(field: Field) -> &'static HparamField {
        Self::FIELDS
            .iter()
            .find(|f| f.field == field)
            .expect("a hyperparameter field")
    }
}
