//! Model files: loading, validation, corruption, conversion, quantization, the VAD model.
//!
//! One test binary with a module per topic (ripgrep's layout): each binary links
//! whisper.cpp, so fewer binaries build and link faster.

#[path = "../common/mod.rs"]
mod common;

mod convert;
mod model_api;
mod model_corruption;
mod model_validate;
mod quantize;
mod vad_convert;
mod vad_model;
