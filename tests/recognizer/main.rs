//! The Recognizer: lanes, queue, deadlines, failover, long audio, stress.
//!
//! One test binary with a module per topic (ripgrep's layout): each binary links
//! whisper.cpp, so fewer binaries build and link faster.

#[path = "../common/mod.rs"]
mod common;

#[cfg(unix)]
mod isolation;
mod recognizer;
mod recognizer_long;
mod recognizer_stress;
