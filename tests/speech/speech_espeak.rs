//! Synthesized speech: sentences spoken by espeak-ng (voice en-gb, 130 words per minute),
//! converted to 16 kHz mono 16-bit by sox without dither (`-D`) so the audio is deterministic
//! (`test_support::espeak`), then transcribed. Needs the model (see tests/common) and
//! espeak-ng + sox (Debian packages); skips without them unless
//! `WHISPER_STEADY_REQUIRE_MODEL=1`.

use crate::common;

use common::{context, wer};
use whisper_steady::{FullParams, SamplingStrategy};

/// Everyday sentences. Chosen once from a larger list by running tiny.en on them; the WER bound
/// below is over all of them together, and "jumps" comes out as "jump" today.
const SENTENCES: &[&str] = &[
    "The quick brown fox jumps over the lazy dog.",
    "Please call me tomorrow morning at the office.",
    "We are going to the park after school.",
    "My sister lives in a small house near the river.",
    "Thank you very much for your help yesterday.",
    "Can you tell me the way to the library?",
    "He opened the window and looked at the sea.",
    "It is important to drink water every day.",
];

#[test]
fn synthesized_sentences_transcribe_with_low_wer() {
    let Some(ctx) = context() else { return };
    let mut errors = 0.0;
    let mut words = 0.0;
    for sentence in SENTENCES {
        let Some(audio) = common::espeak("en-gb", sentence) else {
            return;
        };
        let mut state = ctx.create_state().unwrap();
        let mut params = FullParams::new(SamplingStrategy::Greedy { best_of: 1 });
        params.set_language(Some("en"));
        params.set_n_threads(2);
        state.full(params, &audio).unwrap();
        let text: String = state.as_iter().map(|s| s.to_string()).collect();
        let n = common::words(sentence).len() as f64;
        let sentence_wer = wer(sentence, &text);
        eprintln!("{sentence_wer:.3}  {sentence} -> {}", text.trim());
        errors += sentence_wer * n;
        words += n;
    }
    let total = errors / words;
    assert!(
        total <= 0.05,
        "WER {total:.3} over {} sentences",
        SENTENCES.len()
    );
}
