//! The transcription loop, written against whisper-rs 0.16's API only. It is compiled twice:
//! against whisper-rs itself (`bench/whisper-rs-bench`) and against whisper-steady under the
//! crate name `whisper_rs` (`bench/steady-bench`), so both run the same code with the same
//! (whisper-rs's) defaults.

use std::time::Instant;

use whisper_rs::{FullParams, SamplingStrategy, WhisperContext, WhisperContextParameters};

/// Loads a model on the CPU.
pub fn load(model: &str) -> WhisperContext {
    let mut params = WhisperContextParameters::default();
    params.use_gpu(false);
    WhisperContext::new_with_params(model, params).expect("the model loads")
}

/// Transcribes `audio` `runs` times on one state with greedy decoding and `threads` threads;
/// returns each run's seconds (whisper_full and reading the text) and the last text.
pub fn run(ctx: &WhisperContext, audio: &[f32], threads: i32, runs: usize) -> (Vec<f64>, String) {
    let mut state = ctx.create_state().expect("a state");
    let mut times = Vec::new();
    let mut text = String::new();
    for _ in 0..runs {
        let mut params = FullParams::new(SamplingStrategy::Greedy { best_of: 1 });
        params.set_n_threads(threads);
        params.set_language(Some("en"));
        params.set_print_progress(false);
        params.set_print_realtime(false);
        params.set_print_special(false);
        params.set_print_timestamps(false);
        let start = Instant::now();
        state.full(params, audio).expect("whisper_full");
        text = state
            .as_iter()
            .map(|s| s.to_str_lossy().expect("text").into_owned())
            .collect::<Vec<_>>()
            .join("");
        times.push(start.elapsed().as_secs_f64());
    }
    (times, text)
}

/// Reads a 16 kHz mono 16-bit WAV file.
pub fn read_wav(path: &str) -> Vec<f32> {
    let mut reader = hound::WavReader::open(path).expect("a WAV file");
    let spec = reader.spec();
    assert!(
        spec.sample_rate == 16_000 && spec.channels == 1 && spec.bits_per_sample == 16,
        "{path}: expected 16 kHz mono 16-bit"
    );
    reader
        .samples::<i16>()
        .map(|s| f32::from(s.expect("a sample")) / 32768.0)
        .collect()
}

/// Prints one JSON line per audio file: engine, threads, per-run seconds, text.
pub fn report(engine: &str, threads: i32, audio: &str, times: &[f64], text: &str) {
    let times: Vec<String> = times.iter().map(|t| format!("{t:.4}")).collect();
    println!(
        "{{\"engine\":\"{engine}\",\"threads\":{threads},\"audio\":{audio:?},\"times\":[{}],\"text\":{text:?}}}",
        times.join(",")
    );
}

/// Parses `MODEL THREADS RUNS AUDIO...`.
pub fn args(args: impl Iterator<Item = String>) -> (String, i32, usize, Vec<String>) {
    let a: Vec<String> = args.collect();
    assert!(a.len() >= 4, "usage: MODEL THREADS RUNS AUDIO.wav...");
    (
        a[0].clone(),
        a[1].parse().expect("THREADS"),
        a[2].parse().expect("RUNS"),
        a[3..].to_vec(),
    )
}
