//! Parameters that used to abort the process through the safe API.

use crate::common;

use whisper_steady::{FullParams, SamplingStrategy, WhisperError};

fn full_with(adjust: impl FnOnce(&mut FullParams)) -> Option<Result<(), WhisperError>> {
    let ctx = common::context()?;
    let mut state = ctx.create_state().unwrap();
    let mut params = FullParams::new(SamplingStrategy::Greedy { best_of: 1 });
    params.set_language(Some("en"));
    adjust(&mut params);
    let silence = vec![0.0f32; 16_000];
    Some(state.full(params, &silence))
}

#[test]
fn thread_counts_outside_one_to_512_are_an_error_not_an_abort() {
    // whisper.cpp threw a C++ exception through the C API for these (the process aborted:
    // "Rust cannot catch foreign exceptions"), or hit ggml's 512-thread limit.
    for n in [0, -5, 513, 100_000, i32::MIN] {
        let Some(result) = full_with(|p| p.set_n_threads(n)) else {
            return;
        };
        assert!(
            matches!(result, Err(WhisperError::InvalidThreadCount)),
            "{n} threads: {result:?}"
        );
    }
    for n in [1, 2] {
        let Some(result) = full_with(|p| p.set_n_threads(n)) else {
            return;
        };
        assert!(result.is_ok(), "{n} threads: {result:?}");
    }
}
