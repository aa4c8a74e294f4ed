//! The error type of the whisper-rs compatible API.

use std::ffi::{c_int, NulError};
use std::str::Utf8Error;

use crate::ggml::ModelDefect;

/// Everything the safe API can fail with. The variants and their messages are whisper-rs's, so
/// code that matches on them keeps working.
///
/// whisper.cpp also logs details of most failures; see [`install_logging_hooks`](crate::install_logging_hooks)
/// to route those logs to `log` or `tracing`.
#[derive(Debug, Copy, Clone)]
pub enum WhisperError {
    /// Failed to create a new context.
    InitError,
    /// User didn't initialize spectrogram
    SpectrogramNotInitialized,
    /// Encode was not called.
    EncodeNotComplete,
    /// Decode was not called.
    DecodeNotComplete,
    /// Failed to calculate the spectrogram for some reason.
    UnableToCalculateSpectrogram,
    /// Failed to evaluate model.
    UnableToCalculateEvaluation,
    /// Failed to run the encoder
    FailedToEncode,
    /// Failed to run the decoder
    FailedToDecode,
    /// Invalid number of mel bands.
    InvalidMelBands,
    /// Invalid thread count
    InvalidThreadCount,
    /// Invalid UTF-8 detected in a string from Whisper.
    InvalidUtf8 {
        /// Length of the invalid sequence, if known.
        error_len: Option<usize>,
        /// Bytes that were valid before it.
        valid_up_to: usize,
    },
    /// A null byte was detected in a user-provided string.
    NullByteInString {
        /// Position of the null byte.
        idx: usize,
    },
    /// Whisper returned a null pointer.
    NullPointer,
    /// Generic whisper error. Varies depending on the function.
    GenericError(c_int),
    /// Whisper failed to convert the provided text into tokens, or the tokens given to
    /// [`WhisperState::decode`](crate::WhisperState::decode) are not valid: an id outside the
    /// vocabulary, none at all, or more than the text context holds with `n_past`.
    InvalidText,
    /// Creating a state pointer failed. Check stderr for more information.
    FailedToCreateState,
    /// No samples were provided.
    NoSamples,
    /// Input and output slices were not the same length.
    InputOutputLengthMismatch {
        /// Length of the input.
        input_len: usize,
        /// Length of the output.
        output_len: usize,
    },
    /// Input slice was not an even number of samples.
    HalfSampleMissing(usize),
    /// The model file was refused before whisper.cpp read it (not in whisper-rs, whose loader
    /// could abort the process on such files): the defect says what is wrong and where. See
    /// [`model::validate_file`](crate::model::validate_file).
    InvalidModel(ModelDefect),
}

impl From<Utf8Error> for WhisperError {
    fn from(e: Utf8Error) -> Self {
        WhisperError::InvalidUtf8 {
            error_len: e.error_len(),
            valid_up_to: e.valid_up_to(),
        }
    }
}

impl From<NulError> for WhisperError {
    fn from(e: NulError) -> Self {
        WhisperError::NullByteInString {
            idx: e.nul_position(),
        }
    }
}

impl std::fmt::Display for WhisperError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use WhisperError::*;
        match self {
            InitError => f.write_str("Failed to create a new whisper context."),
            SpectrogramNotInitialized => f.write_str("User didn't initialize spectrogram."),
            EncodeNotComplete => f.write_str("Encode was not called."),
            DecodeNotComplete => f.write_str("Decode was not called."),
            UnableToCalculateSpectrogram => {
                f.write_str("Failed to calculate the spectrogram for some reason.")
            }
            UnableToCalculateEvaluation => f.write_str("Failed to evaluate model."),
            FailedToEncode => f.write_str("Failed to run the encoder."),
            FailedToDecode => f.write_str("Failed to run the decoder."),
            InvalidMelBands => f.write_str("Invalid number of mel bands."),
            InvalidThreadCount => f.write_str("Invalid thread count."),
            InvalidUtf8 {
                valid_up_to,
                error_len: Some(len),
            } => write!(
                f,
                "Invalid UTF-8 detected in a string from Whisper. Index: {valid_up_to}, Length: {len}."
            ),
            InvalidUtf8 {
                valid_up_to,
                error_len: None,
            } => write!(
                f,
                "Invalid UTF-8 detected in a string from Whisper. Index: {valid_up_to}."
            ),
            NullByteInString { idx } => write!(
                f,
                "A null byte was detected in a user-provided string. Index: {idx}"
            ),
            NullPointer => f.write_str("Whisper returned a null pointer."),
            InvalidText => f.write_str("Whisper failed to convert the provided text into tokens."),
            FailedToCreateState => f.write_str("Creating a state pointer failed."),
            GenericError(code) => write!(
                f,
                "Generic whisper error. Varies depending on the function. Error code: {code}"
            ),
            NoSamples => f.write_str("Input sample buffer was empty."),
            InputOutputLengthMismatch {
                input_len,
                output_len,
            } => write!(
                f,
                "Input and output slices were not the same length. Input: {input_len}, Output: {output_len}"
            ),
            HalfSampleMissing(size) => write!(
                f,
                "Input slice was not an even number of samples, got {size}, expected {}",
                size + 1
            ),
            InvalidModel(defect) => write!(f, "Invalid model: {defect}"),
        }
    }
}

impl std::error::Error for WhisperError {}
