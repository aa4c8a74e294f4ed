//! `whisper-steady convert-silero`: Silero VAD ONNX model → whisper.cpp ggml VAD model.

use std::error::Error;
use std::path::PathBuf;

use clap::Args;
use whisper_steady::convert::{convert_silero_vad, SileroVersion};

use crate::convert::sha256_file;

/// Arguments of `convert-silero`.
#[derive(Debug, Args)]
pub struct ConvertSileroArgs {
    /// The Silero VAD ONNX model (`silero_vad/data/silero_vad.onnx` in the PyPI package
    /// `silero-vad`).
    pub onnx_file: PathBuf,
    /// The whisper.cpp VAD model file to write (e.g. `ggml-silero-v6.2.0.bin`); replaced if it
    /// exists.
    pub out_file: PathBuf,
    /// The silero-vad version the model comes from, recorded in the file (whisper.cpp logs it;
    /// the ONNX file does not say). Without it the file records 0.0.0.
    #[arg(long, value_name = "MAJOR.MINOR.PATCH")]
    pub silero_version: Option<String>,
    /// Skip computing the output's SHA-256.
    #[arg(long)]
    pub no_hash: bool,
}

/// Runs the conversion and prints a short report on stdout.
pub fn run(args: &ConvertSileroArgs) -> Result<(), Box<dyn Error>> {
    let version = args
        .silero_version
        .as_deref()
        .map(str::parse::<SileroVersion>)
        .transpose()?;
    let report = convert_silero_vad(&args.onnx_file, &args.out_file, version)?;
    println!("wrote {}", args.out_file.display());
    println!(
        "  tensors: {} (ONNX name prefix {:?})",
        report.tensors,
        if report.source_prefix.is_empty() {
            ""
        } else {
            &report.source_prefix
        }
    );
    println!("  version: {}", report.version);
    println!("  bytes:   {}", report.bytes);
    if !args.no_hash {
        println!("  sha256:  {}", sha256_file(&args.out_file)?);
    }
    Ok(())
}
