//! Synthesized speech: sentences spoken by espeak-ng (voice en-gb, 130 words per minute),
//! converted to 16 kHz mono 16-bit by sox without dither (`-D`) so the audio is deterministic,
//! then transcribed. Needs the model (see tests/common) and espeak-ng + sox (Debian packages);
//! skips without them unless `WHISPER_STEADY_REQUIRE_MODEL=1`.

mod common;

use std::path::Path;
use std::process::Command;

use common::{context, read_wav_16k_mono, wer};
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

fn tool_available(name: &str) -> bool {
    Command::new(name)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

fn synthesize(text: &str, dir: &Path, index: usize) -> Vec<f32> {
    let raw = dir.join(format!("raw{index}.wav"));
    let wav = dir.join(format!("s{index}.wav"));
    let status = Command::new("espeak-ng")
        .args(["-v", "en-gb", "-s", "130", "-w"])
        .arg(&raw)
        .arg(text)
        .status()
        .expect("espeak-ng runs");
    assert!(status.success());
    let status = Command::new("sox")
        .arg("-D")
        .arg(&raw)
        .args(["-r", "16000", "-c", "1", "-b", "16"])
        .arg(&wav)
        .status()
        .expect("sox runs");
    assert!(status.success());
    read_wav_16k_mono(&wav)
}

#[test]
fn synthesized_sentences_transcribe_with_low_wer() {
    let Some(ctx) = context() else { return };
    let required = std::env::var("WHISPER_STEADY_REQUIRE_MODEL").is_ok_and(|v| v == "1");
    if !tool_available("espeak-ng") || !tool_available("sox") {
        assert!(
            !required,
            "espeak-ng and sox are required (apt-get install espeak-ng sox)"
        );
        eprintln!("skipped: espeak-ng or sox is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut errors = 0.0;
    let mut words = 0.0;
    for (i, sentence) in SENTENCES.iter().enumerate() {
        let audio = synthesize(sentence, dir.path(), i);
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
