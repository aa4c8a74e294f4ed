//! Writes the fuzz seed corpora under `fuzz/seeds/` (run with `--ignored` after a format
//! change), and checks that the committed seeds still behave as intended: the synthetic models
//! validate (and convert), the others are refused. Only synthetic inputs, no model weights.

use std::path::{Path, PathBuf};

use test_support::synthetic_model::Synth;
use whisper_steady::convert::convert_ct2_tokens;
use whisper_steady::model::validate_bytes;

fn seeds(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz")
        .join("seeds")
        .join(target)
}

/// `(file name, bytes, valid)` of the model_validate seeds.
fn model_seeds() -> Vec<(&'static str, Vec<u8>, bool)> {
    let synth = Synth::default();
    let full = synth.build();
    let head = synth.head();
    vec![
        ("synthetic-f16.bin", full.clone(), true),
        (
            "synthetic-f32-multilingual.bin",
            Synth {
                n_vocab: 51865,
                ftype: 0,
                ..Synth::default()
            }
            .build(),
            true,
        ),
        ("header-and-vocabulary.bin", head.clone(), false),
        (
            "first-tensors.bin",
            full[..head.len() + 400].to_vec(),
            false,
        ),
    ]
}

/// A small CTranslate2 `model.bin` (format version 6) with the variables the converter reads:
/// width 4, 2 heads, one block each side, 4 mel bands, 8/16 positions, `n_vocab` rows.
fn ct2_model(n_vocab: u32, f32_weights: bool) -> Vec<u8> {
    let d = 4u32;
    let mut vars: Vec<(String, Vec<u32>, u8, Vec<u8>)> = Vec::new();
    let float = |vars: &mut Vec<(String, Vec<u32>, u8, Vec<u8>)>, name: &str, shape: &[u32]| {
        let n: u32 = shape.iter().product();
        let (dtype, width) = if f32_weights { (0u8, 4) } else { (4u8, 2) };
        vars.push((
            name.into(),
            shape.to_vec(),
            dtype,
            vec![0u8; (n * width) as usize],
        ));
    };
    let scalar =
        |vars: &mut Vec<(String, Vec<u32>, u8, Vec<u8>)>, name: &str, dtype: u8, b: &[u8]| {
            vars.push((name.into(), vec![], dtype, b.to_vec()));
        };
    scalar(&mut vars, "decoder/activation", 1, &[3]);
    scalar(&mut vars, "decoder/alignment_heads", 2, &0i16.to_le_bytes());
    float(&mut vars, "decoder/embeddings/weight", &[n_vocab, d]);
    for (sub, lin) in [
        ("attention", &[(d, d), (2 * d, d), (d, d)][..]),
        ("ffn", &[(4 * d, d), (d, 4 * d)][..]),
        ("self_attention", &[(3 * d, d), (d, d)][..]),
    ] {
        float(
            &mut vars,
            &format!("decoder/layer_0/{sub}/layer_norm/beta"),
            &[d],
        );
        float(
            &mut vars,
            &format!("decoder/layer_0/{sub}/layer_norm/gamma"),
            &[d],
        );
        for (k, &(o, i)) in lin.iter().enumerate() {
            float(
                &mut vars,
                &format!("decoder/layer_0/{sub}/linear_{k}/bias"),
                &[o],
            );
            float(
                &mut vars,
                &format!("decoder/layer_0/{sub}/linear_{k}/weight"),
                &[o, i],
            );
        }
    }
    float(&mut vars, "decoder/layer_norm/beta", &[d]);
    float(&mut vars, "decoder/layer_norm/gamma", &[d]);
    scalar(&mut vars, "decoder/num_heads", 2, &2i16.to_le_bytes());
    float(&mut vars, "decoder/position_encodings/encodings", &[16, d]);
    scalar(&mut vars, "decoder/pre_norm", 1, &[1]);
    float(&mut vars, "encoder/conv1/bias", &[d]);
    float(&mut vars, "encoder/conv1/weight", &[d, 4, 3]);
    float(&mut vars, "encoder/conv2/bias", &[d]);
    float(&mut vars, "encoder/conv2/weight", &[d, d, 3]);
    for (sub, lin) in [
        ("ffn", &[(4 * d, d), (d, 4 * d)][..]),
        ("self_attention", &[(3 * d, d), (d, d)][..]),
    ] {
        float(
            &mut vars,
            &format!("encoder/layer_0/{sub}/layer_norm/beta"),
            &[d],
        );
        float(
            &mut vars,
            &format!("encoder/layer_0/{sub}/layer_norm/gamma"),
            &[d],
        );
        for (k, &(o, i)) in lin.iter().enumerate() {
            float(
                &mut vars,
                &format!("encoder/layer_0/{sub}/linear_{k}/bias"),
                &[o],
            );
            float(
                &mut vars,
                &format!("encoder/layer_0/{sub}/linear_{k}/weight"),
                &[o, i],
            );
        }
    }
    float(&mut vars, "encoder/layer_norm/beta", &[d]);
    float(&mut vars, "encoder/layer_norm/gamma", &[d]);
    scalar(&mut vars, "encoder/num_heads", 2, &2i16.to_le_bytes());
    float(&mut vars, "encoder/position_encodings/encodings", &[8, d]);

    let put_str = |out: &mut Vec<u8>, s: &str| {
        out.extend_from_slice(&(s.len() as u16 + 1).to_le_bytes());
        out.extend_from_slice(s.as_bytes());
        out.push(0);
    };
    let mut out = Vec::new();
    out.extend_from_slice(&6i32.to_le_bytes());
    put_str(&mut out, "WhisperSpec");
    out.extend_from_slice(&3i32.to_le_bytes());
    out.extend_from_slice(&(vars.len() as u32).to_le_bytes());
    for (name, shape, dtype, data) in &vars {
        put_str(&mut out, name);
        out.push(shape.len() as u8);
        for s in shape {
            out.extend_from_slice(&s.to_le_bytes());
        }
        out.push(*dtype);
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        out.extend_from_slice(data);
    }
    out.extend_from_slice(&1u32.to_le_bytes());
    put_str(&mut out, "decoder/projection/weight");
    put_str(&mut out, "decoder/embeddings/weight");
    out
}

/// The fuzz target's input: a `u16` vocabulary size, then `model.bin`.
fn ct2_input(n_vocab: u16, model: &[u8]) -> Vec<u8> {
    [&n_vocab.to_le_bytes()[..], model].concat()
}

/// The fuzz target's synthetic vocabulary.
fn ct2_tokens(n: usize) -> Vec<String> {
    let eot = n.saturating_sub(1).min(256);
    (0..n)
        .map(|i| {
            if i == eot {
                "<|endoftext|>".into()
            } else {
                format!("t{i}")
            }
        })
        .collect()
}

fn ct2_seeds() -> Vec<(&'static str, Vec<u8>, bool)> {
    vec![
        // Well-formed, but with a vocabulary whisper.cpp cannot load (it hard-codes the special
        // tokens of 51864..=51866 entries): the converter refuses what the validator would.
        (
            "ct2-f16-300.bin",
            ct2_input(300, &ct2_model(300, false)),
            false,
        ),
        (
            "ct2-f32-260.bin",
            ct2_input(260, &ct2_model(260, true)),
            false,
        ),
        (
            "ct2-vocab-mismatch.bin",
            ct2_input(299, &ct2_model(300, false)),
            false,
        ),
    ]
}

#[test]
#[ignore = "writes fuzz/seeds; run after changing the generators"]
fn write_fuzz_seeds() {
    for (target, set) in [
        ("model_validate", model_seeds()),
        ("ct2_convert", ct2_seeds()),
    ] {
        let dir = seeds(target);
        std::fs::create_dir_all(&dir).unwrap();
        for (name, bytes, _) in set {
            std::fs::write(dir.join(name), bytes).unwrap();
        }
    }
}

#[test]
fn fuzz_seeds_are_current_and_behave() {
    for (name, bytes, valid) in model_seeds() {
        let committed = std::fs::read(seeds("model_validate").join(name)).unwrap();
        assert!(
            committed == bytes,
            "{name} is stale: run `cargo test --test fuzz_seeds -- --ignored`"
        );
        assert_eq!(validate_bytes(&bytes).is_ok(), valid, "{name}");
    }
    for (name, bytes, converts) in ct2_seeds() {
        let committed = std::fs::read(seeds("ct2_convert").join(name)).unwrap();
        assert!(
            committed == bytes,
            "{name} is stale: run `cargo test --test fuzz_seeds -- --ignored`"
        );
        let n = u16::from_le_bytes([bytes[0], bytes[1]]) as usize;
        let mut out = Vec::new();
        let result = convert_ct2_tokens(&bytes[2..], &ct2_tokens(n), &mut out);
        assert_eq!(result.is_ok(), converts, "{name}: {result:?}");
    }
}
