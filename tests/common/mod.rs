//! Shared helpers of the tests that need the real model and real speech: the workspace's
//! `test-support` (skip rule, samples, jfk reference, WAV reading), the library's word error
//! rate, and one context per test binary.

#![allow(dead_code, unused_imports)]

use std::sync::{Arc, OnceLock};

pub use test_support::{
    env_file, espeak, espeak_wav, jfk, model_path, multilingual_model_path, read_wav_16k_mono,
    shared_audio, vad_model_path, JFK_TEXT,
};
pub use whisper_steady::wer::{word_error_rate as wer, words};
use whisper_steady::{WhisperContext, WhisperContextParameters};

/// One context per test binary, shared by its tests (loading takes a while).
pub fn context() -> Option<Arc<WhisperContext>> {
    static CONTEXT: OnceLock<Option<Arc<WhisperContext>>> = OnceLock::new();
    CONTEXT
        .get_or_init(|| {
            let path = model_path()?;
            let mut params = WhisperContextParameters::default();
            params.use_gpu(false);
            Some(Arc::new(
                WhisperContext::new_with_params(&path, params).expect("the test model loads"),
            ))
        })
        .clone()
}

/// The name libtest gives test `name` of the module `module_path` (as `module_path!()` spells
/// it: the binary's crate, then the module), for running that one test again in a child
/// process with `--exact`.
pub fn exact(module_path: &str, name: &str) -> String {
    match module_path.split_once("::") {
        Some((_crate, module)) => format!("{module}::{name}"),
        None => name.to_string(),
    }
}
