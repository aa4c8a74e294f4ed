//! The `whisper-steady` command-line tool.
//!
//! One subcommand per variant of [`Command`], each implemented in its own module.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod convert;
mod convert_silero;
mod gpu_check;
mod models;
mod quantize;
mod race;
mod transcribe;

/// whisper.cpp speech recognition tools.
#[derive(Debug, Parser)]
#[command(name = "whisper-steady", version, about)]
struct Cli {
    /// What to do.
    #[command(subcommand)]
    command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
enum Command {
    /// Convert a CTranslate2 (faster-whisper) Whisper model folder into a whisper.cpp model file.
    ConvertCt2(convert::ConvertCt2Args),
    /// Convert the Silero VAD ONNX model of the PyPI package silero-vad into the ggml VAD model
    /// that whisper.cpp's voice activity detection loads.
    ConvertSilero(convert_silero::ConvertSileroArgs),
    /// Prove the CUDA fixes on this machine's GPU (pool self-tests, shared-context scenario,
    /// 4 states x 50 requests, CUDA vs CPU text and speed); prints a table, writes JSON.
    GpuCheck(gpu_check::GpuCheckArgs),
    /// whisper.cpp's published models by name: `list`, `download NAME` (into the cache,
    /// resumable, verified), `path NAME`.
    Models(models::ModelsArgs),
    /// Quantize the weight matrices of an f32/f16 whisper.cpp model (q4_0, q4_1, q5_0, q5_1,
    /// q8_0).
    Quantize(quantize::QuantizeArgs),
    /// Transcribe (or translate) the speech in a WAV file; print it, and write text, SRT, WebVTT
    /// or JSON files.
    Transcribe(transcribe::TranscribeArgs),
}

fn main() -> ExitCode {
    // Started as a recognizer's worker process: serve it, and nothing else.
    whisper_steady::recognizer::run_worker_if_child();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::ConvertCt2(args) => convert::run(&args),
        Command::ConvertSilero(args) => convert_silero::run(&args),
        Command::GpuCheck(args) => gpu_check::run(&args),
        Command::Models(args) => models::run(&args),
        Command::Quantize(args) => quantize::run(&args),
        Command::Transcribe(args) => transcribe::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            let message = err.to_string();
            eprintln!("error: {message}");
            let mut source = err.source();
            while let Some(s) = source {
                // Some errors already show their cause in their own message.
                let cause = s.to_string();
                if !message.contains(&cause) {
                    eprintln!("  caused by: {cause}");
                }
                source = s.source();
            }
            ExitCode::FAILURE
        }
    }
}
