//! The whisper-rs-compatible API: conformance, edge cases, audio formats, fuzz seeds, aborts.
//!
//! One test binary with a module per topic (ripgrep's layout): each binary links
//! whisper.cpp, so fewer binaries build and link faster.

#[path = "../common/mod.rs"]
mod common;

mod abort_report;
mod audio_formats;
mod beam_search;
mod conformance;
mod edge_inputs;
mod edge_params;
mod full_parallel;
mod fuzz_seeds;
mod smoke;
