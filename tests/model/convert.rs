//! The CTranslate2 → whisper.cpp converter (`whisper_steady::convert`): malformed inputs give
//! errors (never panics), the mel filterbank and GPT-2 byte decoding match independent
//! references, a synthetic model converts into a file whisper.cpp loads, and, when a real model
//! is at hand (`WHISPER_STEADY_TEST_MODEL_CT2`), the converted model transcribes jfk.wav.

use std::collections::BTreeSet;
use std::ffi::{CStr, CString};
use std::path::{Path, PathBuf};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use whisper_steady::convert::{
    convert_ct2, convert_ct2_dir, convert_ct2_tokens, decode_gpt2_token, f16_to_f32, f32_to_f16,
    gpt2_byte, mel_filterbank, parse_vocabulary_json, parse_vocabulary_txt, ConvertError,
    ConvertReport, Hparams, WHISPER_N_FFT, WHISPER_SAMPLE_RATE,
};
use whisper_steady::model::{ModelFile, TensorData};
use whisper_steady::sys;

// ---------------------------------------------------------------------------------------------
// Synthetic CTranslate2 models
// ---------------------------------------------------------------------------------------------

const F32: u8 = 0;
const I8: u8 = 1;
const I16: u8 = 2;
const F16: u8 = 4;

/// One variable of a synthetic `model.bin`.
#[derive(Clone)]
struct Var {
    name: String,
    shape: Vec<u32>,
    dtype: u8,
    data: Vec<u8>,
}

/// A `model.bin` under construction.
#[derive(Clone)]
struct Ct2 {
    version: i32,
    spec: String,
    vars: Vec<Var>,
    aliases: Vec<(String, String)>,
}

/// A deterministic value for element `i` of variable `name`, small enough for f16.
fn value(name: &str, i: usize) -> f32 {
    let seed = name.bytes().fold(0x811c_9dc5u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    let x = seed.wrapping_add((i as u32).wrapping_mul(0x9e37_79b9));
    let x = (x ^ (x >> 15)).wrapping_mul(0x2c1b_3c6d);
    ((x >> 8) as f32 / (1u32 << 24) as f32 - 0.5) * 0.25
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u16 + 1).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
    out.push(0);
}

impl Ct2 {
    fn new() -> Self {
        Ct2 {
            version: 6,
            spec: "WhisperSpec".into(),
            vars: Vec::new(),
            aliases: Vec::new(),
        }
    }

    fn float(&mut self, name: &str, shape: &[u32], dtype: u8) {
        let n: usize = shape.iter().map(|&d| d as usize).product();
        let mut data = Vec::new();
        for i in 0..n {
            let v = value(name, i);
            match dtype {
                F32 => data.extend_from_slice(&v.to_le_bytes()),
                F16 => data.extend_from_slice(&f32_to_f16(v).to_le_bytes()),
                _ => unreachable!(),
            }
        }
        self.vars.push(Var {
            name: name.into(),
            shape: shape.to_vec(),
            dtype,
            data,
        });
    }

    fn scalar(&mut self, name: &str, dtype: u8, bytes: &[u8]) {
        self.vars.push(Var {
            name: name.into(),
            shape: vec![],
            dtype,
            data: bytes.to_vec(),
        });
    }

    fn var_mut(&mut self, name: &str) -> &mut Var {
        self.vars.iter_mut().find(|v| v.name == name).unwrap()
    }

    fn remove(&mut self, name: &str) {
        self.vars.retain(|v| v.name != name);
    }

    fn bytes(&self) -> Vec<u8> {
        self.encode().0
    }

    /// The bytes of `model.bin`, and the offsets of every byte that is structure (counts,
    /// names, ranks, dimensions, types and sizes) rather than variable data.
    fn encode(&self) -> (Vec<u8>, Vec<usize>) {
        let mut out = Vec::new();
        let mut structure = Vec::new();
        out.extend_from_slice(&self.version.to_le_bytes());
        put_str(&mut out, &self.spec);
        out.extend_from_slice(&3i32.to_le_bytes());
        out.extend_from_slice(&(self.vars.len() as u32).to_le_bytes());
        for v in &self.vars {
            let start = out.len();
            put_str(&mut out, &v.name);
            out.push(v.shape.len() as u8);
            for d in &v.shape {
                out.extend_from_slice(&d.to_le_bytes());
            }
            out.push(v.dtype);
            out.extend_from_slice(&(v.data.len() as u32).to_le_bytes());
            structure.extend(start..out.len());
            out.extend_from_slice(&v.data);
        }
        let start = out.len();
        out.extend_from_slice(&(self.aliases.len() as u32).to_le_bytes());
        for (a, t) in &self.aliases {
            put_str(&mut out, a);
            put_str(&mut out, t);
        }
        structure.extend(start..out.len());
        (out, structure)
    }
}

/// Width, heads and layer counts of the synthetic model; the rest is Whisper's.
const D: u32 = 8;
const HEADS: i16 = 2;
const ENC_LAYERS: u32 = 2;
const DEC_LAYERS: u32 = 1;
const N_VOCAB: u32 = 51864;
const N_MELS: u32 = 80;

/// A complete, tiny Whisper model in CTranslate2's layout (variables in its sorted order),
/// mostly f16 with the encoder's blocks in f32.
fn synthetic_model() -> Ct2 {
    let d = D;
    let mut m = Ct2::new();
    m.scalar("decoder/activation", I8, &[3]);
    m.scalar("decoder/alignment_heads", I16, &0i16.to_le_bytes());
    m.float("decoder/embeddings/weight", &[N_VOCAB, d], F16);
    for i in 0..DEC_LAYERS {
        let p = format!("decoder/layer_{i}");
        for (sub, lin) in [
            ("attention", &[(d, d), (2 * d, d), (d, d)][..]),
            ("ffn", &[(4 * d, d), (d, 4 * d)][..]),
            ("self_attention", &[(3 * d, d), (d, d)][..]),
        ] {
            m.float(&format!("{p}/{sub}/layer_norm/beta"), &[d], F16);
            m.float(&format!("{p}/{sub}/layer_norm/gamma"), &[d], F16);
            for (k, &(o, i)) in lin.iter().enumerate() {
                m.float(&format!("{p}/{sub}/linear_{k}/bias"), &[o], F16);
                m.float(&format!("{p}/{sub}/linear_{k}/weight"), &[o, i], F16);
            }
        }
    }
    m.float("decoder/layer_norm/beta", &[d], F16);
    m.float("decoder/layer_norm/gamma", &[d], F16);
    m.scalar("decoder/num_heads", I16, &HEADS.to_le_bytes());
    m.float("decoder/position_encodings/encodings", &[448, d], F16);
    m.scalar("decoder/pre_norm", I8, &[1]);
    m.float("encoder/conv1/bias", &[d], F16);
    m.float("encoder/conv1/weight", &[d, N_MELS, 3], F16);
    m.float("encoder/conv2/bias", &[d], F32);
    m.float("encoder/conv2/weight", &[d, d, 3], F32);
    for i in 0..ENC_LAYERS {
        let p = format!("encoder/layer_{i}");
        for (sub, lin) in [
            ("ffn", &[(4 * d, d), (d, 4 * d)][..]),
            ("self_attention", &[(3 * d, d), (d, d)][..]),
        ] {
            m.float(&format!("{p}/{sub}/layer_norm/beta"), &[d], F32);
            m.float(&format!("{p}/{sub}/layer_norm/gamma"), &[d], F32);
            for (k, &(o, i)) in lin.iter().enumerate() {
                m.float(&format!("{p}/{sub}/linear_{k}/bias"), &[o], F32);
                m.float(&format!("{p}/{sub}/linear_{k}/weight"), &[o, i], F32);
            }
        }
    }
    m.float("encoder/layer_norm/beta", &[d], F16);
    m.float("encoder/layer_norm/gamma", &[d], F16);
    m.scalar("encoder/num_heads", I16, &HEADS.to_le_bytes());
    m.float("encoder/position_encodings/encodings", &[1500, d], F16);
    m.aliases.push((
        "decoder/projection/weight".into(),
        "decoder/embeddings/weight".into(),
    ));
    m
}

/// GPT-2's byte-to-character table, built the way GPT-2's `bytes_to_unicode` builds it.
fn gpt2_table() -> Vec<char> {
    let mut bs: Vec<u32> = (u32::from(b'!')..=u32::from(b'~'))
        .chain(0xa1..=0xac)
        .chain(0xae..=0xff)
        .collect();
    let mut cs = bs.clone();
    let mut n = 0;
    for b in 0..256 {
        if !bs.contains(&b) {
            bs.push(b);
            cs.push(256 + n);
            n += 1;
        }
    }
    let mut table = vec!['\0'; 256];
    for (b, c) in bs.iter().zip(&cs) {
        table[*b as usize] = char::from_u32(*c).unwrap();
    }
    table
}

/// A vocabulary.txt for the synthetic model: the 256 single bytes, filler tokens, then
/// `<|endoftext|>` at 50256 and special tokens.
fn synthetic_vocabulary() -> String {
    let mut out: String = gpt2_table().iter().flat_map(|&c| [c, '\n']).collect();
    for i in 256..N_VOCAB as usize {
        match i {
            0..=50255 => out.push_str(&format!("tok{i}")),
            50256 => out.push_str("<|endoftext|>"),
            _ => out.push_str(&format!("<|special{i}|>")),
        }
        out.push('\n');
    }
    out
}

fn convert(model: &[u8], vocab: &str) -> Result<(ConvertReport, Vec<u8>), ConvertError> {
    let mut out = Vec::new();
    let result = convert_ct2(model, vocab, &mut out);
    if result.is_err() {
        assert!(out.is_empty(), "nothing is written for a malformed input");
    }
    result.map(|r| (r, out))
}

fn convert_err(model: &[u8], vocab: &str) -> ConvertError {
    let err = convert(model, vocab).expect_err("conversion fails");
    // Every error is displayable and a std error.
    fn is_std_error<E: std::error::Error>(_: &E) {}
    is_std_error(&err);
    assert!(!err.to_string().is_empty());
    err
}

// ---------------------------------------------------------------------------------------------
// Reading the ggml output back
// ---------------------------------------------------------------------------------------------

/// The f32 values of a tensor, whichever of f16/f32 it is stored in.
fn values(t: &TensorData<'_>) -> Vec<f32> {
    match t.ggml_type {
        0 => t
            .data
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect(),
        1 => t
            .data
            .chunks_exact(2)
            .map(|c| f16_to_f32(u16::from_le_bytes(c.try_into().unwrap())))
            .collect(),
        other => panic!("type {other}"),
    }
}

// ---------------------------------------------------------------------------------------------
// The synthetic model converts, deterministically, into what whisper.cpp expects
// ---------------------------------------------------------------------------------------------

#[test]
fn a_synthetic_model_converts() {
    let model = synthetic_model().bytes();
    let vocab = synthetic_vocabulary();
    let (report, out) = convert(&model, &vocab).expect("converts");
    let d = D as i32;
    assert_eq!(
        report.hparams,
        Hparams {
            n_vocab: N_VOCAB as i32,
            n_audio_ctx: 1500,
            n_audio_state: d,
            n_audio_head: HEADS.into(),
            n_audio_layer: ENC_LAYERS as i32,
            n_text_ctx: 448,
            n_text_state: d,
            n_text_head: HEADS.into(),
            n_text_layer: DEC_LAYERS as i32,
            n_mels: N_MELS as i32,
            ftype: 1,
        }
    );
    assert!(!report.hparams.is_multilingual());
    assert_eq!(report.bytes, out.len() as u64);
    assert_eq!(report.tokens, 50256);

    // Parsed by the library's reader, after its validator: every tensor whisper.cpp creates
    // for these hyperparameters is there with its shape and type, and nothing else.
    let file = ModelFile::parse(&out).expect("the converted model is valid");
    assert_eq!(file.hparams, report.hparams);
    assert_eq!(file.mel_shape, (80, 201));
    assert_eq!(
        file.mel_filters,
        mel_filterbank(WHISPER_SAMPLE_RATE, WHISPER_N_FFT, 80)
    );
    assert_eq!(file.tokens.len(), 50256);
    for (i, t) in file.tokens.iter().take(256).enumerate() {
        assert_eq!(t, &[i as u8], "token {i}");
    }
    assert_eq!(file.tokens[300], b"tok300");

    let names: BTreeSet<String> = file.tensors.iter().map(|t| t.name.clone()).collect();
    assert_eq!(names.len(), file.tensors.len(), "no tensor twice");
    assert_eq!(report.tensors, file.tensors.len());
    let n_tensors = 11 + 15 * ENC_LAYERS + 24 * DEC_LAYERS;
    assert_eq!(file.tensors.len(), n_tensors as usize);

    let get = |name: &str| file.tensors.iter().find(|t| t.name == name).unwrap();
    // Types and (reversed) dimensions, as whisper_model_load checks them.
    for t in &file.tensors {
        let want_f16 = t.dims.len() >= 2
            && !t.name.ends_with("positional_embedding")
            && !t.name.ends_with(".bias");
        assert_eq!(t.ggml_type, i32::from(want_f16), "{}", t.name);
    }
    assert_eq!(get("encoder.conv1.weight").dims, [3, 80, d]);
    assert_eq!(get("encoder.conv1.bias").dims, [1, d]);
    assert_eq!(get("encoder.conv2.bias").dims, [1, d]);
    assert_eq!(get("encoder.positional_embedding").dims, [d, 1500]);
    assert_eq!(get("decoder.positional_embedding").dims, [d, 448]);
    assert_eq!(
        get("decoder.token_embedding.weight").dims,
        [d, N_VOCAB as i32]
    );
    assert_eq!(get("encoder.blocks.1.mlp.0.weight").dims, [d, 4 * d]);
    assert_eq!(get("encoder.blocks.1.mlp.2.weight").dims, [4 * d, d]);
    assert_eq!(get("decoder.blocks.0.cross_attn.key.weight").dims, [d, d]);

    // The fused projections are split by rows: query, key, value; key, value.
    let n = D as usize;
    let source = |name: &str, range: std::ops::Range<usize>| -> Vec<f32> {
        range.map(|i| value(name, i)).collect()
    };
    let f16_round =
        |v: Vec<f32>| -> Vec<f32> { v.into_iter().map(|x| f16_to_f32(f32_to_f16(x))).collect() };
    let qkv = "encoder/layer_1/self_attention/linear_0";
    assert_eq!(
        values(get("encoder.blocks.1.attn.key.weight")),
        f16_round(source(&format!("{qkv}/weight"), n * n..2 * n * n))
    );
    assert_eq!(
        values(get("encoder.blocks.1.attn.value.bias")),
        source(&format!("{qkv}/bias"), 2 * n..3 * n)
    );
    assert_eq!(
        values(get("encoder.blocks.1.attn.query.bias")),
        source(&format!("{qkv}/bias"), 0..n)
    );
    let kv = "decoder/layer_0/attention/linear_1";
    assert_eq!(
        values(get("decoder.blocks.0.cross_attn.value.weight")),
        f16_round(source(&format!("{kv}/weight"), n * n..2 * n * n))
    );
    assert_eq!(
        values(get("decoder.blocks.0.cross_attn.value.bias")),
        f16_round(source(&format!("{kv}/bias"), n..2 * n))
    );
    assert_eq!(
        values(get("decoder.blocks.0.mlp_ln.weight")),
        f16_round(source("decoder/layer_0/ffn/layer_norm/gamma", 0..n))
    );
    assert_eq!(
        values(get("encoder.ln_post.bias")),
        f16_round(source("encoder/layer_norm/beta", 0..n))
    );

    // Same input, same bytes.
    let (_, again) = convert(&model, &vocab).unwrap();
    assert!(again == out, "the output is deterministic");
}

#[test]
fn whisper_cpp_loads_a_converted_synthetic_model() {
    let dir = tempfile::tempdir().unwrap();
    let model_dir = dir.path().join("ct2");
    std::fs::create_dir(&model_dir).unwrap();
    std::fs::write(model_dir.join("model.bin"), synthetic_model().bytes()).unwrap();
    std::fs::write(model_dir.join("vocabulary.txt"), synthetic_vocabulary()).unwrap();
    let out = dir.path().join("ggml-synthetic.bin");
    let report = convert_ct2_dir(&model_dir, &out).expect("converts");
    assert_eq!(std::fs::metadata(&out).unwrap().len(), report.bytes);
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers.len(), 2, "no temporary file left: {leftovers:?}");

    let ctx = load(&out);
    assert!(!ctx.is_null(), "whisper.cpp rejected the converted model");
    // SAFETY: ctx is a live context from whisper_init_from_file_with_params.
    unsafe {
        assert_eq!(sys::whisper_model_n_vocab(ctx), N_VOCAB as i32);
        assert_eq!(sys::whisper_is_multilingual(ctx), 0);
        assert_eq!(sys::whisper_model_n_audio_layer(ctx), ENC_LAYERS as i32);
        assert_eq!(sys::whisper_model_n_mels(ctx), N_MELS as i32);
        sys::whisper_free(ctx);
    }
}

#[test]
fn a_vocabulary_json_folder_converts_like_vocabulary_txt() {
    let vocab = synthetic_vocabulary();
    let json = format!(
        "[{}]",
        parse_vocabulary_txt(&vocab)
            .iter()
            .map(|t| format!("\"{}\"", t.replace('\\', "\\\\").replace('"', "\\\"")))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("model.bin"), synthetic_model().bytes()).unwrap();
    std::fs::write(dir.path().join("vocabulary.json"), json).unwrap();
    let out = dir.path().join("out.bin");
    convert_ct2_dir(dir.path(), &out).expect("converts");
    let (_, expected) = convert(&synthetic_model().bytes(), &vocab).unwrap();
    assert!(std::fs::read(&out).unwrap() == expected);
}

#[test]
fn a_folder_without_model_files_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.bin");
    let err = convert_ct2_dir(dir.path(), &out).unwrap_err();
    assert!(matches!(err, ConvertError::MissingFile(_)), "{err}");
    std::fs::write(dir.path().join("model.bin"), synthetic_model().bytes()).unwrap();
    let err = convert_ct2_dir(dir.path(), &out).unwrap_err();
    assert!(err.to_string().contains("vocabulary.txt"), "{err}");
    assert!(!out.exists());
}

// ---------------------------------------------------------------------------------------------
// Malformed inputs: errors, not panics
// ---------------------------------------------------------------------------------------------

#[test]
fn every_truncation_is_an_error() {
    let model = synthetic_model().bytes();
    let vocab = synthetic_vocabulary();
    let cuts = (0..4096)
        .chain((4096..model.len()).step_by(4099))
        .chain(model.len() - 64..model.len());
    for cut in cuts {
        let err = convert_err(&model[..cut], &vocab);
        assert!(
            matches!(
                err,
                ConvertError::Truncated { .. } | ConvertError::Format(_)
            ),
            "cut at {cut}: {err}"
        );
    }
}

#[test]
fn trailing_bytes_are_an_error() {
    let mut model = synthetic_model().bytes();
    model.push(0);
    let err = convert_err(&model, &synthetic_vocabulary());
    assert!(matches!(err, ConvertError::Format(_)), "{err}");
}

/// The header of a model.bin (version, spec, revision), then a variable count.
fn header(count: u32) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&6i32.to_le_bytes());
    put_str(&mut out, "WhisperSpec");
    out.extend_from_slice(&3i32.to_le_bytes());
    out.extend_from_slice(&count.to_le_bytes());
    out
}

#[test]
fn huge_counts_and_sizes_are_errors_without_allocating() {
    let vocab = "";
    // A variable count far beyond the data.
    let err = convert_err(&header(u32::MAX), vocab);
    assert!(matches!(err, ConvertError::Truncated { .. }), "{err}");

    // A byte count far beyond the data.
    let mut m = header(1);
    put_str(&mut m, "encoder/conv1/bias");
    m.push(1);
    m.extend_from_slice(&8u32.to_le_bytes());
    m.push(F16);
    m.extend_from_slice(&u32::MAX.to_le_bytes());
    m.extend_from_slice(&[0; 16]);
    let err = convert_err(&m, vocab);
    assert!(
        matches!(err, ConvertError::Truncated { needed, .. } if needed == u32::MAX as usize),
        "{err}"
    );

    // Dimensions whose product overflows, with an empty payload.
    let mut m = header(1);
    put_str(&mut m, "x");
    m.push(4);
    for _ in 0..4 {
        m.extend_from_slice(&u32::MAX.to_le_bytes());
    }
    m.push(F32);
    m.extend_from_slice(&0u32.to_le_bytes());
    m.extend_from_slice(&0u32.to_le_bytes());
    let err = convert_err(&m, vocab);
    assert!(matches!(err, ConvertError::Format(_)), "{err}");

    // A rank of 255 with too few dimensions present.
    let mut m = header(1);
    put_str(&mut m, "x");
    m.push(255);
    m.extend_from_slice(&[1; 40]);
    let err = convert_err(&m, vocab);
    assert!(matches!(err, ConvertError::Truncated { .. }), "{err}");

    // A name length beyond the data.
    let mut m = header(1);
    m.extend_from_slice(&u16::MAX.to_le_bytes());
    m.extend_from_slice(b"abc");
    let err = convert_err(&m, vocab);
    assert!(matches!(err, ConvertError::Truncated { .. }), "{err}");

    // An alias count beyond the data.
    let mut m = header(0);
    m.extend_from_slice(&u32::MAX.to_le_bytes());
    let err = convert_err(&m, vocab);
    assert!(matches!(err, ConvertError::Truncated { .. }), "{err}");
}

#[test]
fn a_byte_count_that_disagrees_with_the_shape_is_an_error() {
    let mut m = synthetic_model();
    m.var_mut("encoder/conv1/bias").shape = vec![D + 1];
    let err = convert_err(&m.bytes(), &synthetic_vocabulary());
    assert!(matches!(err, ConvertError::Format(_)), "{err}");
    assert!(err.to_string().contains("encoder/conv1/bias"), "{err}");
}

#[test]
fn an_unknown_dtype_is_an_error() {
    let mut m = synthetic_model();
    m.var_mut("encoder/conv1/bias").dtype = 42;
    let err = convert_err(&m.bytes(), &synthetic_vocabulary());
    assert!(
        matches!(err, ConvertError::UnsupportedDtype { dtype: 42, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("unknown"), "{err}");
}

#[test]
fn integer_weights_are_errors() {
    // int16 where floats are needed.
    let mut m = synthetic_model();
    m.var_mut("encoder/conv1/bias").dtype = I16;
    let err = convert_err(&m.bytes(), &synthetic_vocabulary());
    assert!(
        matches!(err, ConvertError::UnsupportedDtype { dtype: I16, .. }),
        "{err}"
    );

    // int8 weights with a scale: an int8-quantized model.
    let mut m = synthetic_model();
    let name = "encoder/layer_0/ffn/linear_0/weight";
    let w = m.var_mut(name);
    w.dtype = I8;
    w.data.truncate(w.data.len() / 4);
    m.float("encoder/layer_0/ffn/linear_0/weight_scale", &[4 * D], F32);
    let err = convert_err(&m.bytes(), &synthetic_vocabulary());
    assert!(matches!(err, ConvertError::Quantized { .. }), "{err}");
    assert!(err.to_string().contains(name), "{err}");
}

#[test]
fn wrong_versions_and_specs_are_errors() {
    let vocab = synthetic_vocabulary();
    let mut m = synthetic_model();
    m.version = 7;
    let err = convert_err(&m.bytes(), &vocab);
    assert!(matches!(err, ConvertError::UnsupportedVersion(7)), "{err}");

    let mut m = synthetic_model();
    m.spec = "TransformerSpec".into();
    let err = convert_err(&m.bytes(), &vocab);
    assert!(matches!(err, ConvertError::NotWhisper { .. }), "{err}");
}

#[test]
fn missing_unexpected_and_misshapen_variables_are_errors() {
    let vocab = synthetic_vocabulary();

    let mut m = synthetic_model();
    m.remove("decoder/layer_0/attention/layer_norm/gamma");
    let err = convert_err(&m.bytes(), &vocab);
    assert!(matches!(err, ConvertError::MissingVariable(_)), "{err}");

    let mut m = synthetic_model();
    m.remove("encoder/num_heads");
    let err = convert_err(&m.bytes(), &vocab);
    assert!(matches!(err, ConvertError::MissingVariable(_)), "{err}");

    // A layer beyond the others: its missing siblings are reported.
    let mut m = synthetic_model();
    m.float("encoder/layer_3/ffn/layer_norm/beta", &[D], F16);
    let err = convert_err(&m.bytes(), &vocab);
    assert!(
        matches!(&err, ConvertError::MissingVariable(n) if n.starts_with("encoder/layer_2/")),
        "{err}"
    );

    let mut m = synthetic_model();
    m.float("encoder/extra/weight", &[D, D], F16);
    let err = convert_err(&m.bytes(), &vocab);
    assert!(matches!(err, ConvertError::UnexpectedVariable(_)), "{err}");

    // Unknown scalars are settings, and ignored.
    let mut m = synthetic_model();
    m.scalar("decoder/some_new_flag", I8, &[1]);
    convert(&m.bytes(), &vocab).expect("an unknown scalar is ignored");

    let mut m = synthetic_model();
    let name = "decoder/layer_0/ffn/linear_0/weight";
    m.remove(name);
    m.float(name, &[3 * D, D], F16);
    let err = convert_err(&m.bytes(), &vocab);
    assert!(
        matches!(&err, ConvertError::Shape { name: n, .. } if n == name),
        "{err}"
    );

    // Heads that do not divide the width.
    let mut m = synthetic_model();
    m.var_mut("decoder/num_heads").data = 3i16.to_le_bytes().to_vec();
    let err = convert_err(&m.bytes(), &vocab);
    assert!(matches!(err, ConvertError::Hparams(_)), "{err}");

    // A dangling alias.
    let mut m = synthetic_model();
    m.aliases.push(("a".into(), "nowhere".into()));
    let err = convert_err(&m.bytes(), &vocab);
    assert!(matches!(err, ConvertError::Format(_)), "{err}");

    // A duplicate variable.
    let mut m = synthetic_model();
    let v = m.vars[5].clone();
    m.vars.push(v);
    let err = convert_err(&m.bytes(), &vocab);
    assert!(matches!(err, ConvertError::Format(_)), "{err}");
}

#[test]
fn a_mismatched_vocabulary_is_an_error() {
    let model = synthetic_model().bytes();
    let vocab = synthetic_vocabulary();

    let short: String = vocab.lines().skip(1).map(|l| format!("{l}\n")).collect();
    let err = convert_err(&model, &short);
    assert!(matches!(err, ConvertError::Vocabulary(_)), "{err}");

    let no_eot = vocab.replace("<|endoftext|>", "<|other|>");
    let err = convert_err(&model, &no_eot);
    assert!(matches!(err, ConvertError::Vocabulary(_)), "{err}");

    let bad_char = vocab.replace("tok300\n", "tok€\n");
    let err = convert_err(&model, &bad_char);
    assert!(err.to_string().contains("token 300"), "{err}");
}

#[test]
fn random_corruption_never_panics() {
    let (model, structure) = synthetic_model().encode();
    let text = synthetic_vocabulary();
    let vocab = parse_vocabulary_txt(&text);
    let mut rng = SmallRng::seed_from_u64(0x5eed);
    for round in 0..300 {
        let mut m = model.clone();
        for _ in 0..rng.random_range(1..=3) {
            // Mostly the structure (names, ranks, dimensions, types, sizes), sometimes anywhere;
            // half the time with a byte that keeps names readable.
            let at = if round % 10 == 0 {
                rng.random_range(0..m.len())
            } else {
                structure[rng.random_range(0..structure.len())]
            };
            m[at] = if rng.random() {
                b"0123456789_/abcdelnorty"[rng.random_range(0..23)]
            } else {
                rng.random()
            };
        }
        let mut out = Vec::new();
        let r = convert_ct2_tokens(&m, &vocab, &mut out);
        if r.is_err() {
            assert!(out.is_empty());
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Mel filterbank, GPT-2 bytes, vocabulary files, f16
// ---------------------------------------------------------------------------------------------

/// Values of OpenAI Whisper's `assets/mel_filters.npz` (made with librosa), an independent
/// reference: (row, column, value), and the row's first and last non-zero column.
#[test]
fn the_mel_filterbank_matches_whispers_tables() {
    let m = mel_filterbank(WHISPER_SAMPLE_RATE, WHISPER_N_FFT, 80);
    assert_eq!(m.len(), 80 * 201);
    let at = |r: usize, c: usize| m[r * 201 + c];
    let close = |a: f32, b: f64| ((f64::from(a) - b) / b).abs() < 1e-6;
    for (r, c, v) in [
        (0, 1, 0.024_862_594_902_515_41),
        (1, 1, 0.001_990_821_911_022_067),
        (1, 2, 0.022_871_771_827_340_126),
        (10, 10, 0.019_908_217_713_236_81),
        (10, 11, 0.004_954_374_860_972_166),
        (39, 40, 0.001_418_047_584_593_296),
        (39, 42, 0.010_089_744_813_740_253),
        (40, 43, 0.014_735_566_452_145_576),
        (79, 186, 0.000_366_741_674_952_209),
        (79, 188, 0.001_299_398_369_155_824_2),
    ] {
        assert!(close(at(r, c), v), "[{r}][{c}] = {} != {v}", at(r, c));
    }
    for (r, first, last) in [
        (0, 1, 1),
        (1, 1, 2),
        (39, 40, 43),
        (40, 42, 44),
        (79, 186, 199),
    ] {
        let nz: Vec<usize> = (0..201).filter(|&c| at(r, c) != 0.0).collect();
        assert_eq!((nz[0], *nz.last().unwrap()), (first, last), "row {r}");
    }
    assert!(m.iter().all(|&v| v >= 0.0));
    let total: f64 = m.iter().map(|&v| f64::from(v)).sum();
    assert!((total - 1.999_024_092_387_117).abs() < 1e-6, "{total}");

    let m = mel_filterbank(WHISPER_SAMPLE_RATE, WHISPER_N_FFT, 128);
    let at = |r: usize, c: usize| m[r * 201 + c];
    for (r, c, v) in [
        (0, 1, 0.012_373_986_653_983_593),
        (64, 42, 0.006_749_682_594_090_7),
        (64, 43, 0.018_091_518_431_901_932),
        (127, 191, 0.000_475_695_094_792_172_3),
        (127, 193, 0.002_758_648_479_357_362),
    ] {
        assert!(close(at(r, c), v), "[{r}][{c}] = {} != {v}", at(r, c));
    }
}

#[test]
fn gpt2_byte_level_tokens_decode_to_bytes() {
    let table = gpt2_table();
    for (b, &c) in table.iter().enumerate() {
        assert_eq!(gpt2_byte(c), Some(b as u8), "{c:?}");
    }
    let all: String = table.iter().collect();
    assert_eq!(
        decode_gpt2_token(&all).unwrap(),
        (0..=255).collect::<Vec<u8>>()
    );

    assert_eq!(decode_gpt2_token("Ġhello").unwrap(), b" hello");
    assert_eq!(decode_gpt2_token("ĊĊ").unwrap(), b"\n\n");
    assert_eq!(decode_gpt2_token("ĠâĢ¦").unwrap(), b" \xe2\x80\xa6");
    assert_eq!(decode_gpt2_token("ĉ").unwrap(), b"\t");
    assert_eq!(decode_gpt2_token("Ń").unwrap(), [0xad]);
    assert_eq!(decode_gpt2_token("").unwrap(), b"");
    for bad in ["€", "ń", " ", "a b", "\n", "\u{ad}"] {
        assert_eq!(decode_gpt2_token(bad), None, "{bad:?}");
    }
}

#[test]
fn vocabulary_files_parse() {
    assert_eq!(parse_vocabulary_txt("a\nb\n"), ["a", "b"]);
    assert_eq!(parse_vocabulary_txt("a\nb"), ["a", "b"]);
    assert_eq!(
        parse_vocabulary_txt("a\u{2028}b\n\rc\n"),
        ["a\u{2028}b", "\rc"]
    );

    let tokens =
        parse_vocabulary_json(" [\"a\", \"\\u0120b\" ,\"\\\"q\\\"\\\\\", \"\\ud83d\\ude00\"] ")
            .unwrap();
    assert_eq!(tokens, ["a", "Ġb", "\"q\"\\", "😀"]);
    assert!(parse_vocabulary_json("[]").unwrap().is_empty());
    for bad in [
        "",
        "[",
        "[\"a\"",
        "[\"a\",]",
        "[\"a\"] x",
        "{}",
        "[1]",
        "[\"\\ud83d\"]",
        "[\"\\x\"]",
        "[\"\\u12\"]",
    ] {
        let err = parse_vocabulary_json(bad).unwrap_err();
        assert!(matches!(err, ConvertError::Vocabulary(_)), "{bad:?}: {err}");
    }
}

#[test]
fn f16_conversion_rounds_like_ieee() {
    for h in 0..=u16::MAX {
        let f = f16_to_f32(h);
        if f.is_nan() {
            assert!(f16_to_f32(f32_to_f16(f)).is_nan());
        } else {
            assert_eq!(f32_to_f16(f), h, "{h:#06x} -> {f}");
        }
    }
    let cases: [(f32, u16); 12] = [
        (1.0, 0x3c00),
        (1.0 + 1.0 / 2048.0, 0x3c00),        // tie, to even
        (1.0 + 3.0 / 2048.0, 0x3c02),        // tie, to even (up)
        (1.0 + 1.0 / 2048.0 + 1e-7, 0x3c01), // above the tie
        (65504.0, 0x7bff),
        (65519.0, 0x7bff),
        (65520.0, 0x7c00), // rounds to infinity
        (-1e10, 0xfc00),
        (5.960_464_5e-8, 0x0001), // 2^-24, the smallest subnormal
        (2.980_232_2e-8, 0x0000), // 2^-25: tie, to even (zero)
        (2.980_232_3e-8 * 1.000_001, 0x0001),
        (-0.0, 0x8000),
    ];
    for (f, h) in cases {
        assert_eq!(f32_to_f16(f), h, "{f:e}");
    }
    assert_eq!(f32_to_f16(f32::INFINITY), 0x7c00);
    assert!(f16_to_f32(f32_to_f16(f32::NAN)).is_nan());
}

// ---------------------------------------------------------------------------------------------
// A real model: convert, load, transcribe
// ---------------------------------------------------------------------------------------------

/// The CTranslate2 model folder to test with (`WHISPER_STEADY_TEST_MODEL_CT2`), if any.
fn real_model_dir() -> Option<PathBuf> {
    match std::env::var_os("WHISPER_STEADY_TEST_MODEL_CT2") {
        Some(p) if !p.is_empty() => Some(PathBuf::from(p)),
        _ => {
            test_support::skip_or_fail(
                "WHISPER_STEADY_TEST_MODEL_CT2 (a CTranslate2 Whisper model folder) is not set",
                "scripts/fetch-test-model.sh",
            );
            None
        }
    }
}

fn load(path: &Path) -> *mut sys::whisper_context {
    let c_path = CString::new(path.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path and default parameters; null is the failure.
    unsafe {
        let mut params = sys::whisper_context_default_params();
        params.use_gpu = false;
        sys::whisper_init_from_file_with_params(c_path.as_ptr(), params)
    }
}

#[test]
fn a_real_model_converts_and_transcribes_jfk() {
    let Some(model_dir) = real_model_dir() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("ggml-converted.bin");
    let report = convert_ct2_dir(&model_dir, &out).expect("the model converts");
    eprintln!("converted: {report:?}");

    let samples = test_support::jfk();
    assert!(samples.len() > 16_000 * 10, "jfk.wav is about 11 s");

    let ctx = load(&out);
    assert!(!ctx.is_null(), "whisper.cpp rejected the converted model");
    let mut text = String::new();
    // SAFETY: ctx is live until whisper_free; samples outlive the call; segment texts are
    // NUL-terminated strings owned by ctx, copied before the next call.
    unsafe {
        let mut params = sys::whisper_full_default_params(
            sys::whisper_sampling_strategy_WHISPER_SAMPLING_GREEDY,
        );
        params.n_threads = std::thread::available_parallelism()
            .map_or(2, |n| n.get())
            .min(8) as i32;
        params.print_progress = false;
        params.print_realtime = false;
        params.print_timestamps = false;
        let rc = sys::whisper_full(ctx, params, samples.as_ptr(), samples.len() as i32);
        assert_eq!(rc, 0, "whisper_full failed");
        for i in 0..sys::whisper_full_n_segments(ctx) {
            let seg = CStr::from_ptr(sys::whisper_full_get_segment_text(ctx, i));
            text.push_str(&seg.to_string_lossy());
        }
        sys::whisper_free(ctx);
    }
    eprintln!("transcript: {text}");
    assert_eq!(
        whisper_steady::wer::words(&text),
        whisper_steady::wer::words(test_support::JFK_TEXT)
    );
}
