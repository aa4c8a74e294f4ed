//! The quantizer (`whisper_steady::convert::quantize_file`) on the real tiny.en model: the
//! quantized files load in whisper.cpp, announce the quantized weight type, are smaller, and
//! transcribe jfk.wav as well as the f16 model; malformed inputs are refused with a message.

use crate::common;

use std::fs;

use test_support::synthetic_model::Synth;
use whisper_steady::convert::{f32_to_f16, quantize, quantize_file, ConvertError, QuantType};
use whisper_steady::{FullParams, SamplingStrategy, WhisperContext, WhisperContextParameters};

fn transcribe(model: &std::path::Path, audio: &[f32]) -> String {
    let mut params = WhisperContextParameters::default();
    params.use_gpu(false);
    let ctx = WhisperContext::new_with_params(model, params).expect("the quantized model loads");
    let mut state = ctx.create_state().expect("state");
    let mut p = FullParams::new(SamplingStrategy::Greedy { best_of: 1 });
    p.set_n_threads(2);
    p.set_language(Some("en"));
    p.set_print_progress(false);
    p.set_print_realtime(false);
    p.set_print_special(false);
    state.full(p, audio).expect("whisper_full");
    state
        .as_iter()
        .map(|s| s.to_str_lossy().unwrap().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn quantized_models_load_shrink_and_transcribe_jfk() {
    let Some(model) = common::model_path() else {
        return;
    };
    let audio = common::jfk();
    let reference = transcribe(&model, &audio);
    let wer_f16 = common::wer(common::JFK_TEXT, &reference);
    assert!(wer_f16 <= 0.1, "f16 model: {reference:?}");
    let f16_size = fs::metadata(&model).unwrap().len();
    let dir = tempfile::tempdir().unwrap();

    // (type, expected ftype, upper bound of size relative to the f16 file)
    for (ty, ftype, max_ratio) in [
        (QuantType::Q8_0, 2007, 0.60),
        (QuantType::Q5_0, 2008, 0.42),
        (QuantType::Q4_0, 2002, 0.38),
    ] {
        let out = dir.path().join(format!("ggml-tiny.en-{ty}.bin"));
        let report = quantize_file(&model, &out, ty).expect("quantize");
        assert_eq!(report.hparams.ftype, ftype, "{ty}");
        // tiny has 4 encoder blocks (6 matrices each), 4 decoder blocks (10 each), and the
        // token embedding.
        assert_eq!(report.quantized, 4 * 6 + 4 * 10 + 1, "{ty}");
        let size = fs::metadata(&out).unwrap().len();
        assert_eq!(size, report.bytes);
        let ratio = size as f64 / f16_size as f64;
        assert!(
            ratio < max_ratio,
            "{ty}: {size} bytes, {ratio:.2} of the f16 file"
        );

        let mut params = WhisperContextParameters::default();
        params.use_gpu(false);
        let ctx = WhisperContext::new_with_params(&out, params).unwrap();
        assert_eq!(
            ctx.model_ftype(),
            ftype % 1000,
            "{ty}: whisper.cpp's view of ftype"
        );
        drop(ctx);

        let text = transcribe(&out, &audio);
        let wer = common::wer(common::JFK_TEXT, &text);
        eprintln!("{ty}: {size} bytes ({ratio:.2} of f16), WER {wer:.3}: {text}");
        assert!(
            wer <= wer_f16 + 0.05,
            "{ty}: WER {wer} vs f16 {wer_f16}: {text:?}"
        );
    }

    // Quantizing twice is refused: the input is no longer f32/f16.
    let q8 = dir.path().join("ggml-tiny.en-q8_0.bin");
    let err = quantize_file(&q8, &dir.path().join("again.bin"), QuantType::Q5_0).unwrap_err();
    assert!(err.to_string().contains("already quantized"), "{err}");
    assert!(!dir.path().join("again.bin").exists());
}

/// An f32 model quantizes into the file whisper.cpp expects: whisper.cpp creates the
/// convolution kernels of every quantized model f16, so they are converted, and the result is
/// the same, byte for byte, as quantizing the f16 model with the same weights (values f16 holds
/// exactly); it passes the validator and loads.
#[test]
fn an_f32_model_quantizes_like_its_f16_twin() {
    let model = |ftype: i32| {
        let synth = Synth {
            n_state: 32,
            ftype,
            ..Synth::default()
        };
        synth.build_with(|t, mut record| {
            let n = t.nbytes();
            let at = record.len() - n;
            let value = |i: usize| (i % 64) as f32 / 64.0 - 0.5;
            let data: Vec<u8> = match t.ggml_type {
                0 => (0..n / 4).flat_map(|i| value(i).to_le_bytes()).collect(),
                _ => (0..n / 2)
                    .flat_map(|i| f32_to_f16(value(i)).to_le_bytes())
                    .collect(),
            };
            record[at..].copy_from_slice(&data);
            Some(record)
        })
    };
    let quantized = |bytes: Vec<u8>| {
        let mut out = Vec::new();
        let report = quantize(&mut bytes.as_slice(), &mut out, QuantType::Q8_0).expect("quantize");
        (out, report)
    };
    let ((from_f32, report), (from_f16, _)) = (quantized(model(0)), quantized(model(1)));
    // One block each side: 6 + 10 matrices, and the token embedding.
    assert_eq!(report.quantized, 6 + 10 + 1);
    let info = whisper_steady::model::validate_bytes(&from_f32).expect("whisper.cpp's layout");
    assert_eq!(info.weight_type, "q8_0");
    assert!(
        from_f32 == from_f16,
        "the f32 and f16 models quantize differently"
    );
    let mut params = WhisperContextParameters::default();
    params.use_gpu(false);
    WhisperContext::new_from_buffer_with_params(&from_f32, params).expect("whisper.cpp loads it");
}

#[test]
fn quantizing_is_deterministic() {
    let Some(model) = common::model_path() else {
        return;
    };
    let bytes = fs::read(&model).unwrap();
    let mut a = Vec::new();
    let mut b = Vec::new();
    quantize(&mut bytes.as_slice(), &mut a, QuantType::Q5_1).unwrap();
    quantize(&mut bytes.as_slice(), &mut b, QuantType::Q5_1).unwrap();
    assert!(a == b, "two quantizations of the same model differ");
}

#[test]
fn malformed_models_are_refused_with_a_message() {
    let Some(model) = common::model_path() else {
        return;
    };
    let bytes = fs::read(&model).unwrap();
    let run = |input: &[u8]| {
        let mut out = Vec::new();
        quantize(&mut &input[..], &mut out, QuantType::Q8_0)
    };
    let model_err = |r: Result<_, ConvertError>| match r {
        Err(ConvertError::Model(msg)) => msg,
        other => panic!("expected ConvertError::Model, got {other:?}"),
    };

    // Every refusal is the validator's (the quantizer validates first), named by field.
    let refused = |input: &[u8], expected: &str| {
        let msg = model_err(run(input));
        assert!(
            msg.starts_with("not a valid whisper.cpp model: ") && msg.contains(expected),
            "expected {expected:?} in {msg:?}"
        );
    };
    refused(b"", "magic at offset 0: truncated");
    refused(b"GGUF....", "not a ggml model");
    // Cut inside the header, the mel filters, the vocabulary and a tensor's data.
    for cut in [20, 60, 1000, 200_000, bytes.len() - 1] {
        refused(&bytes[..cut], "truncated");
    }
    // A tensor header announcing 9 dimensions: find the first tensor (after the vocabulary).
    let mut corrupt = bytes.clone();
    let first_tensor = first_tensor_offset(&bytes);
    corrupt[first_tensor..first_tensor + 4].copy_from_slice(&9i32.to_le_bytes());
    refused(&corrupt, "9 dimensions");
    // A huge dimension: refused before anything that size is allocated.
    let mut corrupt = bytes.clone();
    corrupt[first_tensor + 12..first_tensor + 16].copy_from_slice(&i32::MAX.to_le_bytes());
    refused(&corrupt, "do not match");
    // An ftype ggml has no weight type for.
    let mut corrupt = bytes.clone();
    corrupt[44..48].copy_from_slice(&5i32.to_le_bytes());
    refused(&corrupt, "ftype 5 is not a weight type");
    // A valid but already quantized model: refused by the quantizer itself.
    let mut q8 = Vec::new();
    quantize(&mut &bytes[..], &mut q8, QuantType::Q8_0).unwrap();
    let msg = model_err(run(&q8));
    assert!(msg.contains("already quantized"), "{msg}");
}

/// Offset of the first tensor header: after the magic, 11 hyper parameters, the mel filters
/// and the vocabulary.
fn first_tensor_offset(b: &[u8]) -> usize {
    let i32_at = |o: usize| i32::from_le_bytes(b[o..o + 4].try_into().unwrap());
    let mut o = 48;
    let (n_mel, n_fft) = (i32_at(o) as usize, i32_at(o + 4) as usize);
    o += 8 + n_mel * n_fft * 4;
    let n_tokens = i32_at(o) as usize;
    o += 4;
    for _ in 0..n_tokens {
        o += 4 + i32_at(o) as usize;
    }
    o
}
