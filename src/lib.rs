//! whisper-steady: whisper.cpp speech recognition for Rust, on CPUs and NVIDIA GPUs, without
//! the CUDA memory-pool abort that takes down concurrent servers.
//!
//! It is a drop-in replacement for whisper-rs 0.16: depend on it as
//! `whisper-rs = { package = "whisper-steady", version = "..." }` and existing code keeps
//! compiling (see `COMPAT.md` for the few deliberate differences, all soundness fixes).
//!
//! Most users will be looking for nothing more than [`WhisperState::full`] to run a full
//! transcription pipeline. You can get a [`WhisperState`] by first creating a [`WhisperContext`]
//! using [`WhisperContext::new_with_params`], and then calling [`WhisperContext::create_state`].
//! Use one state per concurrent worker; the model is shared.
//!
//! Layout:
//! - the crate root: the whisper-rs compatible safe API (`src/api/`);
//! - [`sys`]: the raw bindgen bindings, with whisper-rs-sys's names (also re-exported as
//!   `whisper_rs_sys` with feature `raw-api`);
//! - [`cuda`]: the CUDA pool policy and statistics added by the patch series;
//! - [`ggml`]: the model file format (read, written, its limits and defects), under
//!   [`model`] (validation) and [`convert`] (conversion, quantization);
//! - [`device`]: the devices ggml knows in this build (below the API and the recognizer);
//! - [`recognizer`]: the concurrency layer: a pool of states with a bounded queue, deadlines,
//!   cancellation, GPU→CPU failover and a health report;
//! - [`audio`]: resampling to whisper's 16 kHz;
//! - [`convert`]: model conversion into whisper.cpp's format;
//! - [`wer`]: word error rate, as the tests and `gpu-check` measure transcripts.

#![deny(missing_docs)]

mod api;
pub mod audio;
pub mod catalog;
pub mod convert;
pub mod cuda;
pub mod device;
pub mod ggml;
pub mod model;
pub mod recognizer;
pub mod sys;
pub mod wer;

/// The raw bindings under whisper-rs's name (feature `raw-api`). No semver guarantee.
#[cfg(feature = "raw-api")]
pub use sys as whisper_rs_sys;

/// The `vulkan` module of whisper-rs (feature `vulkan`).
#[cfg(feature = "vulkan")]
pub mod vulkan {
    pub use crate::api::vulkan::*;
}

pub use api::abort::install_abort_report;
pub use api::context::{
    DtwMode, DtwModelPreset, DtwParameters, WhisperContext, WhisperContextParameters,
};
pub use api::error::WhisperError;
pub use api::grammar::{WhisperGrammarElement, WhisperGrammarElementType};
pub use api::logging::{install_logging_hooks, GGMLLogLevel};
pub use api::params::{FullParams, SamplingStrategy, SegmentCallbackData};
pub use api::standalone::*;
pub use api::state::{WhisperSegment, WhisperState, WhisperStateSegmentIterator, WhisperToken};
pub use api::utilities::*;
pub use api::vad::*;

/// The raw context type.
pub type WhisperSysContext = sys::whisper_context;
/// The raw state type.
pub type WhisperSysState = sys::whisper_state;
/// Per-token data: id, probabilities, timestamps (including DTW's `t_dtw`).
pub type WhisperTokenData = sys::whisper_token_data;
/// A token id.
pub type WhisperTokenId = sys::whisper_token;
/// Raw new-segment callback.
pub type WhisperNewSegmentCallback = sys::whisper_new_segment_callback;
/// Raw encoder-begin callback.
pub type WhisperStartEncoderCallback = sys::whisper_encoder_begin_callback;
/// Raw progress callback.
pub type WhisperProgressCallback = sys::whisper_progress_callback;
/// Raw logits-filter callback.
pub type WhisperLogitsFilterCallback = sys::whisper_logits_filter_callback;
/// Raw abort callback.
pub type WhisperAbortCallback = sys::ggml_abort_callback;
/// Raw log callback.
pub type WhisperLogCallback = sys::ggml_log_callback;
/// A DTW alignment head: text layer and head index.
pub type DtwAhead = sys::whisper_ahead;

/// The version of whisper.cpp that this crate was linked with (the pinned `1.8.3`).
pub static WHISPER_CPP_VERSION: &str = env!("WHISPER_STEADY_CPP_VERSION");

/// The README's Rust examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

/// docs/recognizer.md's Rust examples, compiled as doctests.
#[cfg(doctest)]
#[doc = include_str!("../docs/recognizer.md")]
struct RecognizerDoctests;

/// docs/cuda.md's Rust examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../docs/cuda.md")]
struct CudaDoctests;

/// docs/models.md's Rust example, compiled as a doctest (it needs the `download` feature).
#[cfg(all(doctest, feature = "download"))]
#[doc = include_str!("../docs/models.md")]
struct ModelsDoctests;

/// Compile-time thread-safety guarantees of every handle type: these lines fail to compile if a
/// change makes one of them lose `Send` or `Sync`.
const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    send_sync::<WhisperContext>();
    send_sync::<WhisperState>();
    send_sync::<WhisperSegment<'static>>();
    send_sync::<WhisperToken<'static, 'static>>();
    send_sync::<WhisperStateSegmentIterator<'static>>();
    send_sync::<FullParams<'static, 'static>>();
    send_sync::<WhisperVadContext>();
    send_sync::<recognizer::Recognizer>();
    send_sync::<recognizer::Ticket>();
    send_sync::<recognizer::Reservation>();
    send_sync::<recognizer::Transcript>();
    send_sync::<recognizer::Health>();
    send_sync::<recognizer::RecognizerConfig>();
    send_sync::<recognizer::RecognizeOptions>();
    send_sync::<recognizer::RecognizeError>();
    send_sync::<recognizer::RecognizerError>();
    send_sync::<CpuBuild>();
    send_sync::<cuda::TrimReport>();
};
