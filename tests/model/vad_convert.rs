//! The Silero VAD converter on synthetic ONNX files (no download needed): the layout of what it
//! writes, whisper.cpp loading it, and clean errors on malformed input.
//!
//! The synthetic models are protobuf messages built here by hand with the Silero tensors'
//! names and shapes and pseudo-random weights; the real model's tests are in
//! `tests/model/vad_model.rs`.

use std::io::Cursor;

use whisper_steady::convert::{
    convert_silero_vad, convert_silero_vad_onnx, f16_to_f32, ConvertError, SileroVersion,
};
use whisper_steady::{WhisperVadContext, WhisperVadContextParams, WhisperVadParams};

/// The ggml file's tensors as whisper.cpp 1.8.3's loader wants them: name, ggml dimensions
/// (innermost first), type (0 f32, 1 f16). Written down from upstream's
/// `for-tests-silero-v6.2.0-ggml.bin`, independently of the converter's own table.
const EXPECTED: [(&str, &[i32], i32); 15] = [
    ("_model.encoder.0.reparam_conv.weight", &[3, 129, 128], 1),
    ("_model.encoder.0.reparam_conv.bias", &[128], 0),
    ("_model.encoder.1.reparam_conv.weight", &[3, 128, 64], 1),
    ("_model.encoder.1.reparam_conv.bias", &[64], 0),
    ("_model.encoder.2.reparam_conv.weight", &[3, 64, 64], 1),
    ("_model.encoder.2.reparam_conv.bias", &[64], 0),
    ("_model.encoder.3.reparam_conv.weight", &[3, 64, 128], 1),
    ("_model.encoder.3.reparam_conv.bias", &[128], 0),
    ("_model.decoder.rnn.weight_ih", &[128, 512], 0),
    ("_model.decoder.rnn.weight_hh", &[128, 512], 0),
    ("_model.decoder.rnn.bias_ih", &[512], 0),
    ("_model.decoder.rnn.bias_hh", &[512], 0),
    ("_model.decoder.decoder.2.weight", &[128], 1),
    ("_model.decoder.decoder.2.bias", &[], 0),
    ("_model.stft.forward_basis_buffer", &[256, 1, 258], 1),
];

/// The 16 kHz network's parameters in the ONNX file: PyTorch name and shape.
const PARAMS_16K: [(&str, &[u64]); 15] = [
    ("stft.forward_basis_buffer", &[258, 1, 256]),
    ("encoder.0.reparam_conv.weight", &[128, 129, 3]),
    ("encoder.0.reparam_conv.bias", &[128]),
    ("encoder.1.reparam_conv.weight", &[64, 128, 3]),
    ("encoder.1.reparam_conv.bias", &[64]),
    ("encoder.2.reparam_conv.weight", &[64, 64, 3]),
    ("encoder.2.reparam_conv.bias", &[64]),
    ("encoder.3.reparam_conv.weight", &[128, 64, 3]),
    ("encoder.3.reparam_conv.bias", &[128]),
    ("decoder.rnn.weight_ih", &[512, 128]),
    ("decoder.rnn.weight_hh", &[512, 128]),
    ("decoder.rnn.bias_ih", &[512]),
    ("decoder.rnn.bias_hh", &[512]),
    ("decoder.decoder.2.weight", &[1, 128, 1]),
    ("decoder.decoder.2.bias", &[1]),
];

// --- a minimal protobuf writer -------------------------------------------------------------

fn varint(mut v: u64, out: &mut Vec<u8>) {
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

fn field_varint(number: u64, v: u64, out: &mut Vec<u8>) {
    varint(number << 3, out);
    varint(v, out);
}

fn field_bytes(number: u64, body: &[u8], out: &mut Vec<u8>) {
    varint((number << 3) | 2, out);
    varint(body.len() as u64, out);
    out.extend_from_slice(body);
}

/// A `TensorProto` with packed dims, a data type and `raw_data`.
fn tensor_proto(name: &str, dims: &[u64], data_type: u64, raw: &[u8]) -> Vec<u8> {
    let mut t = Vec::new();
    let mut packed = Vec::new();
    for &d in dims {
        varint(d, &mut packed);
    }
    field_bytes(1, &packed, &mut t);
    field_varint(2, data_type, &mut t);
    field_bytes(8, name.as_bytes(), &mut t);
    field_bytes(9, raw, &mut t);
    t
}

/// A `Constant` node whose output is `output`.
fn constant_node(output: &str, tensor: &[u8]) -> Vec<u8> {
    let mut attr = Vec::new();
    field_bytes(1, b"value", &mut attr);
    field_bytes(5, tensor, &mut attr);
    let mut node = Vec::new();
    field_bytes(2, output.as_bytes(), &mut node);
    field_bytes(4, b"Constant", &mut node);
    field_bytes(5, &attr, &mut node);
    node
}

/// Deterministic weights in [-0.25, 0.25).
fn weights(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.5
        })
        .collect()
}

fn le_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// The 16 kHz parameters as (name, dims, raw data), named `prefix` + PyTorch name.
fn params(prefix: &str) -> Vec<(String, Vec<u64>, Vec<u8>)> {
    PARAMS_16K
        .iter()
        .enumerate()
        .map(|(i, (name, dims))| {
            let n = dims.iter().product::<u64>() as usize;
            (
                format!("{prefix}{name}"),
                dims.to_vec(),
                le_bytes(&weights(n, i as u64 + 1)),
            )
        })
        .collect()
}

/// A model whose graph holds `tensors` as initializers (like `silero_vad_16k_op15.onnx`).
fn model_with_initializers(tensors: &[(String, Vec<u64>, Vec<u8>)], data_type: u64) -> Vec<u8> {
    let mut graph = Vec::new();
    for (name, dims, raw) in tensors {
        field_bytes(5, &tensor_proto(name, dims, data_type, raw), &mut graph);
    }
    let mut model = Vec::new();
    field_varint(1, 8, &mut model);
    field_bytes(7, &graph, &mut model);
    model
}

/// A model like `silero_vad.onnx`: an `If` node whose branches hold the 16 kHz and an 8 kHz
/// network as `Constant` nodes.
fn model_with_branches() -> Vec<u8> {
    let branch = |prefix: &str, eight_k: bool| {
        let mut g = Vec::new();
        for (name, mut dims, raw) in params(prefix) {
            let mut raw = raw;
            if eight_k && name.ends_with("stft.forward_basis_buffer") {
                dims = vec![130, 1, 128];
                raw = le_bytes(&weights(130 * 128, 99));
            }
            let short = name.rsplit("__").next().unwrap().to_owned();
            field_bytes(
                1,
                &constant_node(&name, &tensor_proto(&short, &dims, 1, &raw)),
                &mut g,
            );
        }
        g
    };
    let mut if_node = Vec::new();
    field_bytes(4, b"If", &mut if_node);
    for (attr_name, prefix, eight_k) in [
        ("then_branch", "If_0_then_branch__Inline_0__", false),
        ("else_branch", "If_0_else_branch__Inline_0__", true),
    ] {
        let mut attr = Vec::new();
        field_bytes(1, attr_name.as_bytes(), &mut attr);
        field_bytes(6, &branch(prefix, eight_k), &mut attr);
        field_bytes(5, &attr, &mut if_node);
    }
    let mut graph = Vec::new();
    field_bytes(1, &if_node, &mut graph);
    let mut model = Vec::new();
    field_bytes(7, &graph, &mut model);
    model
}

fn convert(onnx: &[u8]) -> Result<Vec<u8>, ConvertError> {
    let mut out = Vec::new();
    let version = Some("6.2.0".parse().unwrap());
    convert_silero_vad_onnx(onnx, version, &mut out)?;
    Ok(out)
}

// --- reading the ggml file back ------------------------------------------------------------

struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn i32(&mut self) -> i32 {
        let v = i32::from_le_bytes(self.b[self.at..self.at + 4].try_into().unwrap());
        self.at += 4;
        v
    }
    fn bytes(&mut self, n: usize) -> &[u8] {
        self.at += n;
        &self.b[self.at - n..self.at]
    }
}

#[test]
fn writes_what_the_loader_reads() {
    let input = params("model.");
    let file = convert(&model_with_initializers(&input, 1)).unwrap();
    let mut r = Reader { b: &file, at: 0 };
    assert_eq!(r.i32() as u32, 0x6767_6d6c, "magic");
    let n = r.i32() as usize;
    assert_eq!(r.bytes(n), b"silero-16k");
    assert_eq!([r.i32(), r.i32(), r.i32()], [6, 2, 0], "version");
    assert_eq!([r.i32(), r.i32()], [512, 64], "window, context");
    assert_eq!(r.i32(), 4, "encoder layers");
    for layer in [[129, 128, 3], [128, 64, 3], [64, 64, 3], [64, 128, 3]] {
        assert_eq!([r.i32(), r.i32(), r.i32()], layer);
    }
    assert_eq!([r.i32(), r.i32(), r.i32(), r.i32()], [128, 128, 128, 1]);

    // Tensors in upstream's order; the source tensor of each, by PyTorch name.
    for (name, dims, ty) in EXPECTED {
        let n_dims = r.i32();
        let len = r.i32() as usize;
        let got_ty = r.i32();
        let got_dims: Vec<i32> = (0..n_dims).map(|_| r.i32()).collect();
        assert_eq!(std::str::from_utf8(r.bytes(len)).unwrap(), name);
        assert_eq!((got_dims.as_slice(), got_ty), (dims, ty), "{name}");
        let elements: i32 = dims.iter().product();
        let data = r.bytes(elements as usize * if ty == 1 { 2 } else { 4 });
        let source = &input
            .iter()
            .find(|(n, _, _)| n.strip_prefix("model.") == name.strip_prefix("_model."))
            .unwrap()
            .2;
        let source: Vec<f32> = source
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        let written: Vec<f32> = if ty == 1 {
            data.chunks_exact(2)
                .map(|c| f16_to_f32(u16::from_le_bytes([c[0], c[1]])))
                .collect()
        } else {
            data.chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                .collect()
        };
        assert_eq!(written.len(), source.len(), "{name}");
        for (w, s) in written.iter().zip(&source) {
            // f16 keeps 11 significant bits: within half an ulp, 2^-12 relative.
            let tolerance = if ty == 1 {
                s.abs() / 2048.0 + 1e-7
            } else {
                0.0
            };
            assert!((w - s).abs() <= tolerance, "{name}: {w} vs {s}");
        }
    }
    assert_eq!(r.at, file.len(), "nothing after the last tensor");
}

#[test]
fn picks_the_16k_network_of_an_if_node() {
    let onnx = model_with_branches();
    let mut out = Vec::new();
    let report = convert_silero_vad_onnx(&onnx, None, &mut out).unwrap();
    assert_eq!(report.source_prefix, "If_0_then_branch__Inline_0__");
    assert_eq!(report.tensors, 15);
    assert_eq!(report.bytes, out.len() as u64);
    assert_eq!(report.version, SileroVersion::default());
    // The same weights as initializers give the same file.
    let flat = convert(&model_with_initializers(&params("model."), 1)).unwrap();
    let mut versioned = Vec::new();
    convert_silero_vad_onnx(&onnx, Some("6.2.0".parse().unwrap()), &mut versioned).unwrap();
    assert_eq!(versioned, flat);
}

#[test]
fn whisper_cpp_loads_the_converted_file() {
    let dir = tempfile::tempdir().unwrap();
    let onnx = dir.path().join("silero_vad.onnx");
    let out = dir.path().join("ggml-silero.bin");
    std::fs::write(&onnx, model_with_branches()).unwrap();
    convert_silero_vad(&onnx, &out, Some("6.2.0".parse().unwrap())).unwrap();

    let mut params = WhisperVadContextParams::new();
    params.set_n_threads(1);
    let mut vad = WhisperVadContext::new(out.to_str().unwrap(), params)
        .expect("whisper.cpp loads the converted model");
    // 1 s of a tone: random weights give meaningless probabilities, but 32 of them, in [0, 1].
    let audio: Vec<f32> = (0..16_000)
        .map(|i| 0.3 * (i as f32 * 440.0 * std::f32::consts::TAU / 16_000.0).sin())
        .collect();
    vad.detect_speech(&audio).unwrap();
    let probs = vad.probabilities();
    assert_eq!(probs.len(), 32);
    assert!(probs.iter().all(|p| (0.0..=1.0).contains(p)), "{probs:?}");
    vad.segments_from_probabilities(WhisperVadParams::new())
        .unwrap();
}

fn error_of(onnx: &[u8]) -> String {
    match convert(onnx) {
        Ok(_) => panic!("converted a malformed input"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn wrong_magic_and_garbage_are_errors() {
    let ggml = convert(&model_with_initializers(&params("model."), 1)).unwrap();
    assert!(error_of(&ggml).contains("already a ggml file"));
    assert!(error_of(b"PK\x03\x04rest of a zip").contains("zip archive"));
    assert!(error_of(b"").contains("empty"));
    assert!(error_of(b"GGUF\x03\x00\x00\x00").contains("GGUF"));
    assert!(error_of(b"\x0a\x0b\x0c hello, not protobuf").contains("malformed ONNX"));
    // A well-formed protobuf message without a graph.
    assert!(error_of(&[0x08, 0x08]).contains("no graph"));
    // A graph without Silero tensors.
    let other = model_with_initializers(&[("conv.weight".into(), vec![2], vec![0; 8])], 1);
    assert!(error_of(&other).contains("no tensor named"));
}

#[test]
fn truncated_input_is_an_error_never_a_panic() {
    let onnx = model_with_branches();
    let mut checked = 0;
    let mut at = 0;
    while at < onnx.len() {
        assert!(convert(&onnx[..at]).is_err(), "truncated at {at}");
        checked += 1;
        // Every byte at the start (headers), then a stride through the weights.
        at += if at < 4096 { 1 } else { 4093 };
    }
    assert!(checked > 4096);
    // Truncated exactly at the end of a message boundary inside the file still fails: the
    // last tensor is missing its data or the graph runs past the end.
    assert!(convert(&onnx[..onnx.len() - 1]).is_err());

    // Flipped bytes, in the headers and spread through the file: an error or a conversion,
    // never a panic (each try converts the whole model, so they are few in a debug build).
    let spread = (0..64).step_by(8).map(|k| onnx.len() * k / 64);
    for i in (0..64).chain(spread) {
        let mut bad = onnx.clone();
        bad[i] ^= 0xff;
        let _ = convert(&bad);
    }
}

#[test]
fn bad_tensors_are_named() {
    let base = params("model.");

    let mut missing = base.clone();
    missing.retain(|(n, _, _)| !n.ends_with("rnn.bias_hh"));
    assert!(error_of(&model_with_initializers(&missing, 1))
        .contains("no tensor \"model.decoder.rnn.bias_hh\""));

    let mut shape = base.clone();
    shape[2].1 = vec![64, 2];
    let e = error_of(&model_with_initializers(&shape, 1));
    assert!(
        e.contains("encoder.0.reparam_conv.bias") && e.contains("shape [64, 2]"),
        "{e}"
    );

    let mut short = base.clone();
    short[4].2.truncate(12);
    let e = error_of(&model_with_initializers(&short, 1));
    assert!(e.contains("holds 12 bytes"), "{e}");

    let e = error_of(&model_with_initializers(&base, 11));
    assert!(e.contains("data type 11"), "{e}");

    let mut nan = base.clone();
    nan[9].2[8..12].copy_from_slice(&f32::NAN.to_le_bytes());
    let e = error_of(&model_with_initializers(&nan, 1));
    assert!(e.contains("weight_ih") && e.contains("non-finite"), "{e}");

    let mut eight_k = base.clone();
    eight_k[0].1 = vec![130, 1, 128];
    eight_k[0].2 = le_bytes(&weights(130 * 128, 5));
    let e = error_of(&model_with_initializers(&eight_k, 1));
    assert!(e.contains("no 16 kHz network"), "{e}");

    let mut twice = base.clone();
    twice.extend(params("other."));
    let e = error_of(&model_with_initializers(&twice, 1));
    assert!(e.contains("2 16 kHz networks"), "{e}");

    let mut duplicate = base.clone();
    duplicate.push(base[3].clone());
    let e = error_of(&model_with_initializers(&duplicate, 1));
    assert!(e.contains("two tensors"), "{e}");
}

#[test]
fn a_failed_conversion_leaves_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let onnx = dir.path().join("silero_vad.onnx");
    let out = dir.path().join("out.bin");
    let model = model_with_initializers(&params("model."), 1);
    std::fs::write(&onnx, &model[..model.len() / 2]).unwrap();
    assert!(convert_silero_vad(&onnx, &out, None).is_err());
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        1,
        "only the input"
    );

    let missing = dir.path().join("missing.onnx");
    assert!(matches!(
        convert_silero_vad(&missing, &out, None),
        Err(ConvertError::MissingFile(_))
    ));
}

#[test]
fn versions_parse() {
    let v: SileroVersion = "6.2.0".parse().unwrap();
    assert_eq!((v.major, v.minor, v.patch), (6, 2, 0));
    assert_eq!(v.to_string(), "6.2.0");
    for bad in [
        "",
        "6.2",
        "6.2.0.1",
        "a.b.c",
        "-1.0.0",
        "6..0",
        "99999999999.0.0",
    ] {
        assert!(bad.parse::<SileroVersion>().is_err(), "{bad:?}");
    }
    // The version is only recorded: a Cursor works as an output too.
    let mut out = Cursor::new(Vec::new());
    convert_silero_vad_onnx(&model_with_initializers(&params(""), 1), None, &mut out).unwrap();
    assert_eq!(
        &out.get_ref()[18..30],
        &[0u8; 12],
        "0.0.0 without a version"
    );
}
