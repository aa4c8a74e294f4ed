//! The model validator (`whisper_steady::model`): synthetic models with one defect each, the
//! errors the safe API gives for them, the real model when present, and the regression inputs
//! found by fuzzing (`fuzz/`).

use crate::common;

use std::time::Instant;

use test_support::synthetic_model::{Synth, Tensor};
use whisper_steady::ggml::{DefectKind, ModelDefect};
use whisper_steady::model::{validate_bytes, validate_file};
use whisper_steady::{WhisperContext, WhisperContextParameters, WhisperError};

fn cpu() -> WhisperContextParameters<'static> {
    let mut p = WhisperContextParameters::default();
    p.use_gpu(false);
    p
}

fn defect(bytes: &[u8]) -> ModelDefect {
    let d = validate_bytes(bytes).expect_err("the validator refuses the model");
    // The safe API refuses it the same way, before whisper.cpp sees it.
    match WhisperContext::new_from_buffer_with_params(bytes, cpu()) {
        Err(WhisperError::InvalidModel(api)) => assert_eq!(api, d),
        other => panic!("expected InvalidModel, got {other:?}"),
    }
    d
}

/// Overwrites the `i32` at `offset`.
fn put(bytes: &mut [u8], offset: usize, v: i32) {
    bytes[offset..offset + 4].copy_from_slice(&v.to_le_bytes());
}

#[test]
fn synthetic_model_is_valid_and_loads() {
    for synth in [
        Synth::default(),
        Synth {
            ftype: 0,
            ..Synth::default()
        },
        Synth {
            n_vocab: 51865,
            n_state: 64,
            n_head: 2,
            n_mels: 80,
            ftype: 2002,
            tokens: vec![],
            ..Synth::default()
        },
    ] {
        let bytes = synth.build();
        let info = validate_bytes(&bytes).unwrap();
        assert_eq!(info.n_tensors, synth.tensors().len());
        assert_eq!(info.file_size, bytes.len() as u64);
        assert_eq!(info.hparams.n_vocab, synth.n_vocab);
        assert_eq!(info.multilingual, synth.n_vocab >= 51865);
        assert_eq!(info.model_type, "unknown");
        let ctx = WhisperContext::new_from_buffer_with_params(&bytes, cpu())
            .expect("whisper.cpp loads the synthetic model");
        assert_eq!(ctx.n_vocab(), synth.n_vocab);
        assert_eq!(ctx.model_n_audio_state(), synth.n_state);
    }
    let q = validate_bytes(
        &Synth {
            n_state: 32,
            ftype: 2002,
            ..Synth::default()
        }
        .build(),
    )
    .unwrap();
    assert_eq!(q.weight_type, "q4_0");
    assert_eq!(q.qnt_version, 2);
}

#[test]
fn file_and_buffer_agree_and_missing_file_is_init_error() {
    let bytes = Synth::default().build();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("synthetic.bin");
    std::fs::write(&path, &bytes).unwrap();
    assert_eq!(
        validate_file(&path).unwrap(),
        validate_bytes(&bytes).unwrap()
    );
    WhisperContext::new_with_params(&path, cpu()).expect("loads from a file");

    let mut bad = bytes.clone();
    bad.truncate(bytes.len() - 1);
    std::fs::write(&path, &bad).unwrap();
    let from_file = validate_file(&path).unwrap_err();
    assert_eq!(from_file, validate_bytes(&bad).unwrap_err());
    assert!(matches!(
        WhisperContext::new_with_params(&path, cpu()),
        Err(WhisperError::InvalidModel(d)) if d == from_file
    ));

    let missing = dir.path().join("missing.bin");
    assert!(matches!(
        validate_file(&missing).unwrap_err().kind(),
        DefectKind::Io(std::io::ErrorKind::NotFound)
    ));
    assert!(matches!(
        WhisperContext::new_with_params(&missing, cpu()),
        Err(WhisperError::InitError)
    ));
}

#[test]
fn header_defects() {
    let good = Synth::default().build();
    let mut b = good.clone();
    b[0] ^= 1;
    assert!(matches!(defect(&b).kind(), DefectKind::BadMagic { .. }));
    assert_eq!(
        defect(&good[..10]).to_string(),
        "n_audio_ctx at offset 8: truncated: needs 4 bytes, only 2 remain in the file"
    );

    let cases: &[(usize, i32, &str)] = &[
        (4, 100, "n_vocab at offset 4: 100 is outside the accepted range 51864..=51866"),
        (4, 51867, "n_vocab at offset 4: 51867 is outside the accepted range 51864..=51866"),
        (8, 0, "n_audio_ctx at offset 8: 0 is outside the accepted range 1..=1500"),
        (8, 1501, "n_audio_ctx at offset 8: 1501 is outside the accepted range 1..=1500"),
        (12, -1, "n_audio_state at offset 12: -1 is outside the accepted range 1..=8192"),
        (16, 0, "n_audio_head at offset 16: 0 is outside the accepted range 1..=256"),
        (20, i32::MAX, "n_audio_layer at offset 20: 2147483647 is outside the accepted range 1..=128"),
        (24, 15, "n_text_ctx at offset 24: 15 is outside the accepted range 16..=448"),
        (28, 2, "n_text_state at offset 28: 2 does not match n_audio_state 1"),
        (32, i32::MIN, "n_text_head at offset 32: -2147483648 is outside the accepted range 1..=256"),
        (36, 0, "n_text_layer at offset 36: 0 is outside the accepted range 1..=128"),
        (40, 513, "n_mels at offset 40: 513 is outside the accepted range 1..=512"),
        (44, -1, "ftype at offset 44: -1 is outside the accepted range 0..=2999"),
        (44, 4, "ftype at offset 44: ftype 4 is not a weight type whisper.cpp can load"),
        (44, 5, "ftype at offset 44: ftype 5 is not a weight type whisper.cpp can load"),
        (44, 2999, "ftype at offset 44: ftype 2999 is not a weight type whisper.cpp can load"),
        (44, 2, "n_audio_state at offset 12: 1 is not a multiple of the block size 32 of the weight type q4_0"),
        (44, 1012, "n_audio_state at offset 12: 1 is not a multiple of the block size 256 of the weight type q4_K"),
    ];
    for &(offset, value, message) in cases {
        let mut b = good.clone();
        put(&mut b, offset, value);
        assert_eq!(
            defect(&b).to_string(),
            message,
            "field at {offset} = {value}"
        );
    }

    let mut s = Synth {
        n_state: 6,
        n_head: 4,
        ..Synth::default()
    }
    .build();
    assert_eq!(
        defect(&s).to_string(),
        "n_audio_state at offset 12: 6 is not a multiple of n_audio_head 4"
    );
    put(&mut s, 16, 3);
    assert_eq!(
        defect(&s).to_string(),
        "n_text_state at offset 28: 6 is not a multiple of n_text_head 4"
    );
}

#[test]
fn filter_and_vocabulary_defects() {
    let good = Synth::default().build();
    let mut b = good.clone();
    put(&mut b, 48, 80);
    assert_eq!(
        defect(&b).to_string(),
        "mel filters n_mel at offset 48: 80 does not match n_mels 1"
    );
    let mut b = good.clone();
    put(&mut b, 52, 400);
    assert_eq!(
        defect(&b).to_string(),
        "mel filters n_fft at offset 52: 400 does not match 1 + WHISPER_N_FFT/2 = 201"
    );
    assert!(matches!(
        defect(&good[..100]).kind(),
        DefectKind::Truncated {
            needed: 804,
            available: 44
        }
    ));

    let vocab = 56 + 804;
    let mut b = good.clone();
    put(&mut b, vocab, 51865);
    assert_eq!(
        defect(&b).to_string(),
        "vocabulary count at offset 860: 51865 is outside the accepted range 0..=51864"
    );
    put(&mut b, vocab, -1);
    assert!(matches!(
        defect(&b).kind(),
        DefectKind::OutOfRange { value: -1, .. }
    ));
    let mut b = good.clone();
    put(&mut b, vocab + 4, -1);
    assert_eq!(
        defect(&b).to_string(),
        "vocabulary at offset 864: token 0 is 4294967295 bytes long, more than 1024"
    );
    let mut b = good.clone();
    put(&mut b, vocab + 4, 1000);
    b.truncate(vocab + 8 + 999);
    assert!(matches!(
        defect(&b).kind(),
        DefectKind::Truncated { needed: 1000, .. }
    ));
}

/// The file with the record of tensor `name` replaced by `edit(record)`.
fn edit_tensor(name: &str, edit: impl Fn(&Tensor, Vec<u8>) -> Option<Vec<u8>>) -> Vec<u8> {
    Synth::default().build_with(|t, rec| {
        if t.name == name {
            edit(t, rec)
        } else {
            Some(rec)
        }
    })
}

#[test]
fn tensor_defects() {
    let q = "decoder.blocks.0.attn.query.weight";
    // Shape: the second dimension 1 -> 2 (and the data grown to match).
    let b = edit_tensor(q, |_, mut rec| {
        rec[16..20].copy_from_slice(&2i32.to_le_bytes());
        rec.extend_from_slice(&[0, 0]);
        Some(rec)
    });
    let d = defect(&b);
    assert!(d.is_tensor());
    assert_eq!(d.subject(), q);
    assert!(
        d.to_string()
            .ends_with("dims [1, 2] do not match [n_text_state, n_text_state] = [1, 1]"),
        "{d}"
    );
    assert!(d
        .to_string()
        .starts_with(&format!("tensor `{q}` at offset ")));

    let cases: Vec<(Vec<u8>, &str)> = vec![
        (
            edit_tensor(q, |_, mut rec| {
                rec[0..4].copy_from_slice(&5i32.to_le_bytes());
                Some(rec)
            }),
            "5 dimensions, expected 1 to 4",
        ),
        (
            edit_tensor(q, |_, mut rec| {
                rec[0..4].copy_from_slice(&(-1i32).to_le_bytes());
                Some(rec)
            }),
            "-1 dimensions, expected 1 to 4",
        ),
        (
            edit_tensor(q, |_, mut rec| {
                rec[4..8].copy_from_slice(&0i32.to_le_bytes());
                Some(rec)
            }),
            "name length 0 is outside 1..=64",
        ),
        (
            edit_tensor(q, |_, mut rec| {
                rec[4..8].copy_from_slice(&(-7i32).to_le_bytes());
                Some(rec)
            }),
            "name length -7 is outside 1..=64",
        ),
        (
            edit_tensor(q, |_, mut rec| {
                rec[8..12].copy_from_slice(&0i32.to_le_bytes());
                Some(rec)
            }),
            "stored as f32 but whisper.cpp expects f16 for this model",
        ),
        (
            edit_tensor(q, |_, mut rec| {
                rec[8..12].copy_from_slice(&4i32.to_le_bytes());
                Some(rec)
            }),
            "stored as type 4 but whisper.cpp expects f16 for this model",
        ),
        (
            edit_tensor(q, |_, mut rec| {
                rec[20] = b'X';
                Some(rec)
            }),
            "not a tensor whisper.cpp expects for these hyperparameters",
        ),
        (
            edit_tensor(q, |_, _| None),
            "missing from the file (49 of the 50 tensors present)",
        ),
        (
            edit_tensor(q, |_, rec| Some([rec.clone(), rec].concat())),
            "present twice",
        ),
        (
            edit_tensor("decoder.blocks.0.cross_attn.out.bias", |_, mut rec| {
                rec.extend_from_slice(&[1, 2, 3]);
                Some(rec)
            }),
            "3 bytes after the last complete tensor",
        ),
    ];
    for (bytes, message) in cases {
        let d = defect(&bytes);
        assert!(d.to_string().contains(message), "{d} / {message}");
    }

    // An n_dims=4 tensor with a trailing 1 is what the loader accepts; anything else is not.
    let b = edit_tensor("encoder.ln_post.bias", |_, rec| {
        let mut out = 4i32.to_le_bytes().to_vec();
        out.extend_from_slice(&rec[4..16]);
        out.extend_from_slice(
            &[1i32.to_le_bytes(), 1i32.to_le_bytes(), 1i32.to_le_bytes()].concat(),
        );
        out.extend_from_slice(&rec[16..]);
        Some(out)
    });
    validate_bytes(&b).expect("trailing unit dimensions are fine");
    let b = edit_tensor("encoder.ln_post.bias", |_, rec| {
        let mut out = 4i32.to_le_bytes().to_vec();
        out.extend_from_slice(&rec[4..16]);
        out.extend_from_slice(
            &[1i32.to_le_bytes(), 1i32.to_le_bytes(), 2i32.to_le_bytes()].concat(),
        );
        out.extend_from_slice(&rec[16..]);
        Some(out)
    });
    assert!(matches!(
        defect(&b).kind(),
        DefectKind::WrongShape { n_dims: 4, .. }
    ));

    // Every truncation inside the tensor table is refused.
    let good = Synth::default().build();
    let start = Synth::default().head().len();
    for cut in (start + 1..good.len()).step_by(997) {
        let d = validate_bytes(&good[..cut]).unwrap_err();
        assert!(
            matches!(
                d.kind(),
                DefectKind::Truncated { .. } | DefectKind::TrailingBytes { .. }
            ),
            "{cut}: {d}"
        );
    }
    // A file that ends right after the vocabulary has every tensor missing (whisper.cpp
    // would load it as an "empty model for testing" with uninitialized weights).
    assert!(matches!(
        defect(&good[..start]).kind(),
        DefectKind::MissingTensor { found: 0, .. }
    ));
}

#[test]
fn invalid_model_error_is_copy_and_displays_the_defect() {
    let mut b = Synth::default().build();
    put(&mut b, 4, 7);
    let e = WhisperContext::new_from_buffer_with_params(&b, cpu()).unwrap_err();
    let copy = e;
    assert_eq!(
        copy.to_string(),
        "Invalid model: n_vocab at offset 4: 7 is outside the accepted range 51864..=51866"
    );
    let _still_usable = e;
    let long = edit_tensor("decoder.ln.bias", |_, rec| {
        let name = [b"decoder.ln.bias" as &[u8], &[0xff; 40]].concat();
        let mut out = rec[..4].to_vec();
        out.extend_from_slice(&(name.len() as i32).to_le_bytes());
        out.extend_from_slice(&rec[8..16]);
        out.extend_from_slice(&name);
        Some(out)
    });
    let d = defect(&long);
    assert!(d.subject().starts_with("decoder.ln.bias\\xff"), "{d}");
    assert!(d.subject().ends_with("..."));
    assert!(d.subject().len() <= whisper_steady::ggml::DEFECT_NAME_CAPACITY);
}

/// The real model validates, and validation costs a small fraction of loading it.
#[test]
fn real_model_validates_quickly() {
    let Some(path) = common::model_path() else {
        return;
    };
    let t = Instant::now();
    let info = validate_file(&path).expect("the test model is valid");
    let validate_file_time = t.elapsed();
    let bytes = std::fs::read(&path).unwrap();
    let t = Instant::now();
    assert_eq!(validate_bytes(&bytes).unwrap(), info);
    let validate_bytes_time = t.elapsed();
    let t = Instant::now();
    let ctx = WhisperContext::new_from_buffer_with_params(&bytes, cpu()).unwrap();
    let load_time = t.elapsed();
    assert_eq!(ctx.n_vocab(), info.hparams.n_vocab);
    assert_eq!(ctx.model_n_text_layer(), info.hparams.n_text_layer);
    assert_eq!(info.n_tensors, 167);
    println!(
        "{}: {info:?}\nvalidate_file {validate_file_time:?}, validate_bytes {validate_bytes_time:?}, \
         new_from_buffer_with_params (validation included) {load_time:?}",
        path.display()
    );
}
