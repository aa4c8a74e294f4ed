//! Transcribe a WAV file and print the segments with their timestamps.
//!
//! ```sh
//! cargo run --release --example basic_use -- MODEL.bin AUDIO.wav
//! ```
//!
//! The WAV must be 16 kHz; mono or stereo, 16-bit integer or 32-bit float.

use whisper_steady::{
    convert_integer_to_float_audio, convert_stereo_to_mono_audio, FullParams, SamplingStrategy,
    WhisperContext, WhisperContextParameters,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(model), Some(wav)) = (args.next(), args.next()) else {
        eprintln!("usage: basic_use MODEL.bin AUDIO.wav");
        std::process::exit(2);
    };

    let mut reader = hound::WavReader::open(&wav)?;
    let spec = reader.spec();
    if spec.sample_rate != 16_000 {
        return Err(format!("{wav} is {} Hz; whisper needs 16 kHz", spec.sample_rate).into());
    }
    let samples: Vec<f32> = match spec.sample_format {
        hound::SampleFormat::Int if spec.bits_per_sample == 16 => {
            let ints = reader.samples::<i16>().collect::<Result<Vec<_>, _>>()?;
            let mut floats = vec![0.0; ints.len()];
            convert_integer_to_float_audio(&ints, &mut floats)?;
            floats
        }
        hound::SampleFormat::Float => reader.samples::<f32>().collect::<Result<_, _>>()?,
        _ => return Err("only 16-bit integer or 32-bit float WAV is supported".into()),
    };
    let audio = match spec.channels {
        1 => samples,
        2 => {
            let mut mono = vec![0.0; samples.len() / 2];
            convert_stereo_to_mono_audio(&samples, &mut mono)?;
            mono
        }
        n => return Err(format!("{n} channels are not supported").into()),
    };

    let ctx = WhisperContext::new_with_params(&model, WhisperContextParameters::default())?;
    let mut state = ctx.create_state()?;
    let mut params = FullParams::new(SamplingStrategy::BeamSearch {
        beam_size: 5,
        patience: -1.0,
    });
    params.set_language(Some("en"));
    params.set_print_progress(false);
    params.set_print_realtime(false);
    state.full(params, &audio)?;

    for segment in state.as_iter() {
        println!(
            "[{:>7.2}s -> {:>7.2}s] {}",
            segment.start_timestamp() as f64 / 100.0,
            segment.end_timestamp() as f64 / 100.0,
            segment
        );
    }
    Ok(())
}
