//! `whisper-steady convert-ct2`: CTranslate2 Whisper model folder → whisper.cpp model file.

use std::error::Error;
use std::path::{Path, PathBuf};

use clap::Args;
use whisper_steady::convert::{convert_ct2_dir, ConvertReport};

/// Arguments of `convert-ct2`.
#[derive(Debug, Args)]
pub struct ConvertCt2Args {
    /// The CTranslate2 model folder (`model.bin` and `vocabulary.txt` or `vocabulary.json`).
    pub model_dir: PathBuf,
    /// The whisper.cpp model file to write (e.g. `ggml-tiny.en.bin`); replaced if it exists.
    pub out_file: PathBuf,
    /// Skip computing the output's SHA-256.
    #[arg(long)]
    pub no_hash: bool,
}

/// Runs the conversion and prints a short report on stdout.
pub fn run(args: &ConvertCt2Args) -> Result<(), Box<dyn Error>> {
    let report = convert_ct2_dir(&args.model_dir, &args.out_file)?;
    print_report(&args.out_file, &report);
    if !args.no_hash {
        println!("  sha256:  {}", sha256_file(&args.out_file)?);
    }
    Ok(())
}

fn print_report(out: &Path, r: &ConvertReport) {
    let h = &r.hparams;
    println!("wrote {}", out.display());
    println!("  tensors: {}", r.tensors);
    println!(
        "  n_vocab: {} ({}), {} regular tokens written",
        h.n_vocab,
        if h.is_multilingual() {
            "multilingual"
        } else {
            "English-only"
        },
        r.tokens
    );
    println!(
        "  layers:  encoder {}, decoder {} (width {}, heads {}/{}, {} mel bands)",
        h.n_audio_layer, h.n_text_layer, h.n_audio_state, h.n_audio_head, h.n_text_head, h.n_mels
    );
    println!("  bytes:   {}", r.bytes);
}

/// The SHA-256 of a file, in hex (the library's, which verifies downloads).
pub(crate) use whisper_steady::catalog::sha256_file;
