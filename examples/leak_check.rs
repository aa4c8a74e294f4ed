//! Many short transcriptions through the safe API and through the `Recognizer`, for a leak
//! checker to watch (`scripts/leak-check.sh` runs it under LeakSanitizer).
//!
//! ```sh
//! cargo run --release --example leak_check -- MODEL.bin AUDIO.wav [ITERATIONS]
//! ```
//!
//! Each iteration transcribes the first 2 s of the 16 kHz WAV with a short encoder window, on
//! one thread (ggml's spinning thread barrier crawls under a sanitizer on a busy machine).
//! The safe-API half creates and drops a state per iteration (and a context every 25); the
//! recognizer half submits to a recognizer that is then shut down and dropped. Everything is
//! dropped before `main` returns, so whatever a leak checker finds at exit was lost.

use std::time::Instant;

use whisper_steady::recognizer::{RecognizeOptions, Recognizer, RecognizerConfig};
use whisper_steady::{FullParams, SamplingStrategy, WhisperContext, WhisperContextParameters};

fn read_clip(path: &str) -> Result<Vec<f32>, Box<dyn std::error::Error>> {
    let mut reader = hound::WavReader::open(path)?;
    let spec = reader.spec();
    if spec.sample_rate != 16_000 {
        return Err(format!("{path} is {} Hz; 16 kHz needed", spec.sample_rate).into());
    }
    let scale = (1i64 << (spec.bits_per_sample - 1)) as f32;
    let samples: Vec<f32> = match spec.sample_format {
        hound::SampleFormat::Int => reader
            .samples::<i32>()
            .map(|s| s.map(|s| s as f32 / scale))
            .collect::<Result<_, _>>()?,
        hound::SampleFormat::Float => reader.samples::<f32>().collect::<Result<_, _>>()?,
    };
    let channels = spec.channels as usize;
    let mono: Vec<f32> = samples
        .chunks(channels)
        .map(|f| f.iter().sum::<f32>() / channels as f32)
        .collect();
    Ok(mono[..mono.len().min(32_000)].to_vec())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // With a GPU its lane runs in a worker process: this program started again.
    whisper_steady::recognizer::run_worker_if_child();
    let mut args = std::env::args().skip(1);
    let (Some(model), Some(wav)) = (args.next(), args.next()) else {
        eprintln!("usage: leak_check MODEL.bin AUDIO.wav [ITERATIONS]");
        std::process::exit(2);
    };
    let iterations: usize = args.next().map_or(Ok(100), |n| n.parse())?;
    let clip = read_clip(&wav)?;

    // The safe API: contexts, states, full().
    let start = Instant::now();
    let mut words = 0;
    let mut ctx = None;
    for i in 0..iterations {
        if i % 25 == 0 {
            let mut params = WhisperContextParameters::default();
            params.use_gpu(false);
            ctx = Some(WhisperContext::new_with_params(&model, params)?);
        }
        let ctx = ctx.as_ref().expect("created above");
        let mut state = ctx.create_state()?;
        let mut params = FullParams::new(SamplingStrategy::Greedy { best_of: 1 });
        params.set_language(Some("en"));
        params.set_n_threads(1);
        params.set_audio_ctx(128);
        params.set_temperature_inc(0.0);
        params.set_initial_prompt("President Kennedy.");
        params.set_max_tokens(32);
        params.set_progress_callback_safe(|_p: i32| {});
        params.set_segment_callback_safe(|_s: whisper_steady::SegmentCallbackData| {});
        state.full(params, &clip)?;
        for segment in state.as_iter() {
            words += segment.to_str_lossy()?.split_whitespace().count();
        }
    }
    drop(ctx);
    println!(
        "safe API: {iterations} transcriptions, {words} words, {:.1?}",
        start.elapsed()
    );

    // The recognizer.
    let start = Instant::now();
    let mut config = RecognizerConfig::new(&model);
    config.use_gpu = false;
    config.workers = 1;
    config.threads_per_worker = 1;
    let recognizer = Recognizer::new(config)?;
    let mut words = 0;
    for _ in 0..iterations {
        // The model's full window: with a short one, the clip's cut-off last word sends the
        // recognizer's temperature fallback through all six temperatures.
        let options = RecognizeOptions::new().language("en");
        let transcript = recognizer.submit(clip.clone(), options)?.wait()?;
        words += transcript.text.split_whitespace().count();
    }
    recognizer.shutdown();
    drop(recognizer);
    println!(
        "recognizer: {iterations} transcriptions, {words} words, {:.1?}",
        start.elapsed()
    );
    Ok(())
}
