//! A whisper-rs 0.16 program: nothing here knows about whisper-steady.

use std::ffi::c_int;
use std::sync::{Arc, Mutex};

use whisper_rs::{
    convert_integer_to_float_audio, convert_stereo_to_mono_audio, get_lang_str,
    install_logging_hooks, print_system_info, DtwMode, DtwModelPreset, DtwParameters, FullParams,
    SamplingStrategy, SegmentCallbackData, SystemInfo, WhisperContext, WhisperContextParameters,
    WhisperError, WhisperState, WhisperTokenData, WHISPER_CPP_VERSION,
};

fn load_audio(path: &str) -> Vec<f32> {
    let mut reader = hound::WavReader::open(path).expect("wav opens");
    let spec = reader.spec();
    let ints: Vec<i16> = reader
        .samples::<i16>()
        .map(|s| s.expect("sample"))
        .collect();
    let mut floats = vec![0.0f32; ints.len()];
    convert_integer_to_float_audio(&ints, &mut floats).expect("convert");
    if spec.channels == 2 {
        let mut mono = vec![0.0f32; floats.len() / 2];
        convert_stereo_to_mono_audio(&floats, &mut mono).expect("mono");
        mono
    } else {
        floats
    }
}

fn print_segments(state: &WhisperState) -> Result<String, WhisperError> {
    let mut all = String::new();
    for i in 0..state.full_n_segments() {
        let segment = state.get_segment(i).ok_or(WhisperError::NullPointer)?;
        let first: Option<WhisperTokenData> = segment.get_token(0).map(|t| t.token_data());
        println!(
            "[{} - {}] {} (first token t_dtw {})",
            segment.start_timestamp(),
            segment.end_timestamp(),
            segment.to_str_lossy()?,
            first.map_or(-1, |t| t.t_dtw)
        );
        all.push_str(segment.to_str()?);
    }
    Ok(all)
}

fn main() -> Result<(), WhisperError> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 3 {
        eprintln!("usage: {} MODEL WAV", args[0]);
        std::process::exit(2);
    }
    install_logging_hooks();
    let info = SystemInfo::default();
    println!("whisper.cpp {WHISPER_CPP_VERSION}, avx2: {}", info.avx2);
    let _ = print_system_info();

    let mut context_param = WhisperContextParameters::default();
    context_param.dtw_parameters.mode = DtwMode::ModelPreset {
        model_preset: DtwModelPreset::TinyEn,
    };
    let _custom = DtwParameters {
        mode: DtwMode::Custom {
            aheads: &[whisper_rs::DtwAhead {
                n_text_layer: 2,
                n_head: 1,
            }],
        },
        dtw_mem_size: 1024 * 1024 * 128,
    };
    context_param.use_gpu(false);
    let ctx = WhisperContext::new_with_params(&args[1], context_param)?;
    let audio = load_audio(&args[2]);

    let mut state = ctx.create_state()?;
    let mut params = FullParams::new(SamplingStrategy::Greedy { best_of: 1 });
    params.set_n_threads(2 as c_int);
    params.set_translate(false);
    params.set_language(Some("en"));
    params.set_token_timestamps(true);
    params.set_print_special(false);
    params.set_print_progress(false);
    params.set_print_realtime(false);
    params.set_print_timestamps(false);
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&lines);
    params.set_segment_callback_safe(move |data: SegmentCallbackData| {
        sink.lock().unwrap().push(data.text);
    });
    params.set_progress_callback_safe(|p: i32| eprint!("\r{p}%"));
    eprintln!();
    state.full(params, &audio[..])?;
    let text = print_segments(&state)?;
    println!(
        "language: {:?}",
        get_lang_str(state.full_lang_id_from_state())
    );
    println!("callback saw {} segments", lines.lock().unwrap().len());

    let tokens = ctx.tokenize("ask not what your country can do for you", 64)?;
    let back: Vec<String> = tokens
        .iter()
        .map(|&t| ctx.token_to_str_lossy(t).map(|s| s.into_owned()))
        .collect::<Result<_, _>>()?;
    println!("tokens: {}", back.join("|"));

    let raw_greedy = whisper_rs::whisper_rs_sys::whisper_sampling_strategy_WHISPER_SAMPLING_GREEDY;
    println!("raw greedy strategy id: {raw_greedy}");
    println!("TEXT:{}", text.trim());
    Ok(())
}
