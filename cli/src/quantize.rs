//! `whisper-steady quantize`: f32/f16 whisper.cpp model → block-quantized model (q4_0 … q8_0).

use std::error::Error;
use std::path::PathBuf;
use std::time::Instant;

use clap::Args;
use whisper_steady::convert::{quantize_file, QuantType};

/// Arguments of `quantize`.
#[derive(Debug, Args)]
pub struct QuantizeArgs {
    /// The whisper.cpp model file with f32 or f16 weights (e.g. `ggml-tiny.en.bin`).
    pub model: PathBuf,
    /// The quantized model file to write; replaced if it exists.
    pub out_file: PathBuf,
    /// The weight type: q4_0, q4_1, q5_0, q5_1 or q8_0.
    #[arg(long = "type", short = 't', value_parser = parse_type)]
    pub quant_type: QuantType,
}

fn parse_type(s: &str) -> Result<QuantType, String> {
    s.parse()
}

/// Quantizes the model and prints a short report on stdout.
pub fn run(args: &QuantizeArgs) -> Result<(), Box<dyn Error>> {
    if args.model == args.out_file {
        return Err("the output file must differ from the input model".into());
    }
    let start = Instant::now();
    let r = quantize_file(&args.model, &args.out_file, args.quant_type)?;
    println!("wrote {}", args.out_file.display());
    println!(
        "  type:    {} (ftype {}), {} matrices quantized, {} tensors copied",
        r.quant_type, r.hparams.ftype, r.quantized, r.copied
    );
    println!(
        "  tensors: {:.1} MB -> {:.1} MB",
        r.tensor_bytes_in as f64 / 1e6,
        r.tensor_bytes_out as f64 / 1e6
    );
    println!("  bytes:   {}", r.bytes);
    println!("  time:    {:.2} s", start.elapsed().as_secs_f64());
    Ok(())
}
