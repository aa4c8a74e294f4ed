//! Speech: espeak-ng sentences, the speech guard, languages.
//!
//! One test binary with a module per topic (ripgrep's layout): each binary links
//! whisper.cpp, so fewer binaries build and link faster.

#[path = "../common/mod.rs"]
mod common;

mod speech_espeak;
mod speech_guard;
mod speech_languages;
