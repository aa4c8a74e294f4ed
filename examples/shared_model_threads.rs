//! One model, one state per thread: the pattern that never shares a CUDA memory pool.
//!
//! ```sh
//! cargo run --release --example shared_model_threads -- MODEL.bin AUDIO.wav [THREADS]
//! ```
//!
//! The WAV must be 16 kHz mono 16-bit. Every thread transcribes it and prints its text.

use std::sync::Arc;

use whisper_steady::{
    convert_integer_to_float_audio, FullParams, SamplingStrategy, WhisperContext,
    WhisperContextParameters,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 2 {
        eprintln!("usage: shared_model_threads MODEL.bin AUDIO.wav [THREADS]");
        std::process::exit(2);
    }
    let workers: usize = args.get(2).map(|s| s.parse()).transpose()?.unwrap_or(2);

    let mut reader = hound::WavReader::open(&args[1])?;
    let spec = reader.spec();
    if spec.sample_rate != 16_000 || spec.channels != 1 || spec.bits_per_sample != 16 {
        return Err("expected a 16 kHz mono 16-bit WAV".into());
    }
    let ints = reader.samples::<i16>().collect::<Result<Vec<_>, _>>()?;
    let mut audio = vec![0.0; ints.len()];
    convert_integer_to_float_audio(&ints, &mut audio)?;
    let audio = Arc::new(audio);

    let ctx = Arc::new(WhisperContext::new_with_params(
        &args[0],
        WhisperContextParameters::default(),
    )?);
    let handles: Vec<_> = (0..workers)
        .map(|worker| {
            let (ctx, audio) = (Arc::clone(&ctx), Arc::clone(&audio));
            std::thread::spawn(move || -> Result<String, whisper_steady::WhisperError> {
                // Each worker has its own state: its own buffers, backend and memory pool.
                let mut state = ctx.create_state()?;
                let mut params = FullParams::new(SamplingStrategy::Greedy { best_of: 1 });
                params.set_n_threads(1);
                params.set_language(Some("en"));
                state.full(params, &audio)?;
                let text: Vec<String> = state.as_iter().map(|s| s.to_string()).collect();
                Ok(format!("worker {worker}:{}", text.join("")))
            })
        })
        .collect();
    for handle in handles {
        println!("{}", handle.join().expect("worker panicked")?);
    }
    Ok(())
}
