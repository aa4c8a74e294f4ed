//! The crash that started this crate, as a program: one whisper.cpp context shared by many
//! threads, each calling `whisper_full` on the context's default state through the raw C API, as
//! the request handlers of a C++ server do.
//!
//! ```sh
//! cargo run --release --example shared_context_race -- MODEL.bin AUDIO.wav [THREADS] [CALLS]
//! ```
//!
//! The WAV must be 16 kHz mono 16-bit. The program first transcribes it once on its own (the
//! reference), then lets THREADS threads (default 8) call `whisper_full` CALLS times each
//! (default 2) at once, and prints every call's return value and transcript. It exits with 0
//! when every call returned 0 with the reference transcript, with 1 otherwise.
//!
//! Upstream whisper.cpp aborts (`GGML_ASSERT(!sched->is_alloc)`) or crashes here, even on the
//! CPU. With patch 0006 every call succeeds, one after the other. `tests/shared_context.rs` runs
//! this code in-process (with and without holding the lock) and as a subprocess built without
//! patch 0006. The scenario itself is `cli/src/race.rs` (also `gpu-check`'s).

use std::path::Path;

#[path = "../cli/src/race.rs"]
mod scenario;

pub use scenario::*;

/// Reads a 16 kHz mono 16-bit WAV as f32 samples.
pub fn read_wav(path: &Path) -> Result<Vec<f32>, String> {
    let mut reader =
        hound::WavReader::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let spec = reader.spec();
    if spec.sample_rate != 16_000 || spec.channels != 1 || spec.bits_per_sample != 16 {
        return Err(format!("{}: expected 16 kHz mono 16-bit", path.display()));
    }
    reader
        .samples::<i16>()
        .map(|s| s.map(|v| f32::from(v) / 32768.0))
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: {e}", path.display()))
}

#[allow(dead_code)] // the tests include this file for its functions, not for main
fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 2 {
        eprintln!("usage: shared_context_race MODEL.bin AUDIO.wav [THREADS] [CALLS]");
        std::process::exit(2);
    }
    let number = |i: usize, default: usize| match args.get(i) {
        None => default,
        Some(s) => s.parse().unwrap_or_else(|_| {
            eprintln!("not a count: {s}");
            std::process::exit(2)
        }),
    };
    let (threads, calls) = (number(2, 8), number(3, 2));
    let run = || -> Result<bool, String> {
        let samples = read_wav(Path::new(&args[1]))?;
        let ctx = SharedContext::load_on(Path::new(&args[0]), false)?;
        let reference = transcribe(&ctx, &samples, None);
        println!("reference ret={} text={:?}", reference.ret, reference.text);
        let results = hammer(&ctx, &samples, threads, calls, None);
        let mut good = reference.ret == 0;
        for (i, call) in results.iter().enumerate() {
            println!("call {i} ret={} text={:?}", call.ret, call.text);
            good &= *call == reference;
        }
        Ok(good)
    };
    match run() {
        Ok(true) => println!("every call succeeded with the reference transcript"),
        Ok(false) => {
            println!("some calls failed or returned another transcript");
            std::process::exit(1)
        }
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2)
        }
    }
}
