//! Corrupted copies of the real model never crash the process: ~220 deterministic variants of
//! `WHISPER_STEADY_TEST_MODEL` (truncations in the header, the filters, the vocabulary, the
//! tensor headers and the data; bit flips and overwritten values in the hyperparameters, the
//! vocabulary lengths, the tensor `n_dims`/name length/type/dimension/name fields and the
//! weights) are loaded through the safe API in child processes under a 3 GiB address-space
//! limit. Every child must exit normally, each variant either loading or refused with
//! `WhisperError::InvalidModel`.
//!
//! The children are this test binary run again (test `corruption_child`) with
//! `WHISPER_STEADY_CORRUPTION_VARIANTS` naming their variants; `ulimit -v` through `sh` sets the
//! limit. Skips without the model (see `tests/common`).

use crate::common;

use std::io::Write;
use std::process::{Command, Stdio};

use whisper_steady::{
    install_logging_hooks, WhisperContext, WhisperContextParameters, WhisperError,
};

/// Selects the variants a child runs (comma-separated indices).
const VARIANTS_ENV: &str = "WHISPER_STEADY_CORRUPTION_VARIANTS";
/// Address-space limit of a child, in KiB (3 GiB).
const LIMIT_KIB: u64 = 3 << 20;
/// Variants per child.
const BATCH: usize = 28;

#[derive(Debug, Clone)]
enum Mutation {
    /// Keep the first `n` bytes.
    Truncate(usize),
    /// Flip bit `bit` of byte `at`.
    Flip { at: usize, bit: u8 },
    /// Overwrite the little-endian `i32` at `at`.
    Set { at: usize, value: i32 },
}

#[derive(Debug, Clone)]
struct Variant {
    what: String,
    mutation: Mutation,
    /// Load from a temporary file rather than from memory.
    via_file: bool,
}

fn i32_at(b: &[u8], at: usize) -> i32 {
    i32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

/// Offsets of the structure of a valid model: tensor records as
/// `(header offset, n_dims, name length, data offset, data length)`, and the vocabulary's
/// start and token length fields.
struct Structure {
    filters: usize,
    vocab: usize,
    token_lens: Vec<usize>,
    tensors_start: usize,
    tensors: Vec<(usize, usize, usize, usize, usize)>,
}

fn structure(b: &[u8]) -> Structure {
    let filters = 48;
    let n_mel = i32_at(b, filters) as usize;
    let n_fft = i32_at(b, filters + 4) as usize;
    let vocab = filters + 8 + n_mel * n_fft * 4;
    let n_tokens = i32_at(b, vocab) as usize;
    let mut at = vocab + 4;
    let mut token_lens = Vec::new();
    for _ in 0..n_tokens {
        token_lens.push(at);
        at += 4 + i32_at(b, at) as usize;
    }
    let tensors_start = at;
    let mut tensors = Vec::new();
    while at < b.len() {
        let n_dims = i32_at(b, at) as usize;
        let len = i32_at(b, at + 4) as usize;
        let ty = i32_at(b, at + 8);
        let mut n = 1usize;
        for k in 0..n_dims {
            n *= i32_at(b, at + 12 + 4 * k) as usize;
        }
        let bytes = match ty {
            0 => n * 4,
            1 => n * 2,
            t => panic!("the test model should be f32/f16, found type {t}"),
        };
        let data = at + 12 + 4 * n_dims + len;
        tensors.push((at, n_dims, len, data, bytes));
        at = data + bytes;
    }
    Structure {
        filters,
        vocab,
        token_lens,
        tensors_start,
        tensors,
    }
}

/// The variants, derived from the model's own structure (deterministic).
fn variants(b: &[u8]) -> Vec<Variant> {
    let s = structure(b);
    let mut v = Vec::new();
    let mut add = |what: String, mutation: Mutation| {
        v.push(Variant {
            what,
            mutation,
            via_file: false,
        })
    };
    // Truncations.
    for n in [0, 1, 3, 4, 7, 20, 47, 48, 50, 55] {
        add(
            format!("truncated to {n} bytes (header)"),
            Mutation::Truncate(n),
        );
    }
    for n in [s.filters + 8, s.filters + 1000, s.vocab - 1] {
        add(
            format!("truncated to {n} (mel filters)"),
            Mutation::Truncate(n),
        );
    }
    for n in [
        s.vocab,
        s.vocab + 2,
        s.vocab + 4,
        s.vocab + 1000,
        (s.vocab + s.tensors_start) / 2,
        s.tensors_start - 1,
    ] {
        add(
            format!("truncated to {n} (vocabulary)"),
            Mutation::Truncate(n),
        );
    }
    let picked = [0, 1, 2, 5, 50, 100, s.tensors.len() - 1];
    for &i in &picked {
        let (at, n_dims, len, data, bytes) = s.tensors[i];
        for (n, where_) in [
            (at + 2, "n_dims"),
            (at + 6, "name length"),
            (at + 10, "type"),
            (at + 12 + 2, "dims"),
            (at + 12 + 4 * n_dims + len / 2, "name"),
            (data, "data start"),
            (data + bytes / 2, "data middle"),
            (data + bytes - 1, "data end"),
        ] {
            add(
                format!("truncated to {n} (tensor {i}: {where_})"),
                Mutation::Truncate(n),
            );
        }
    }
    // The end of the file: a whole record short, and a few stray bytes left.
    add(
        "last tensor dropped".into(),
        Mutation::Truncate(s.tensors.last().unwrap().0),
    );
    add("12 bytes short".into(), Mutation::Truncate(b.len() - 12));
    add("13 bytes short".into(), Mutation::Truncate(b.len() - 13));

    // Bit flips in the hyperparameters: low bit, a middle bit and the sign bit of each.
    for field in 0..11 {
        let at = 4 + 4 * field;
        for (byte, bit) in [(0, 0), (1, 3), (3, 7)] {
            add(
                format!("hparam {field}: flip bit {bit} of byte {byte}"),
                Mutation::Flip { at: at + byte, bit },
            );
        }
    }
    add("magic flipped".into(), Mutation::Flip { at: 0, bit: 0 });
    for (at, name) in [
        (s.filters, "filters n_mel"),
        (s.filters + 4, "filters n_fft"),
        (s.vocab, "vocabulary count"),
    ] {
        for (byte, bit) in [(0, 0), (2, 1), (3, 7)] {
            add(
                format!("{name}: flip bit {bit} of byte {byte}"),
                Mutation::Flip { at: at + byte, bit },
            );
        }
    }
    for k in [0, 1, 255, 1000, 20000, s.token_lens.len() - 1] {
        let at = s.token_lens[k];
        add(
            format!("token {k} length: flip bit 4"),
            Mutation::Flip { at, bit: 4 },
        );
        add(
            format!("token {k} length: flip bit 31"),
            Mutation::Flip { at: at + 3, bit: 7 },
        );
    }
    // Tensor header fields.
    for &i in &picked {
        let (at, _, len, _, _) = s.tensors[i];
        for (off, bit, field) in [
            (0, 0, "n_dims bit 0"),
            (0, 2, "n_dims bit 2"),
            (3, 7, "n_dims sign"),
            (4, 0, "name length bit 0"),
            (4, 5, "name length bit 5"),
            (7, 7, "name length sign"),
            (8, 0, "type bit 0"),
            (8, 1, "type bit 1"),
            (12, 0, "dim 0 bit 0"),
            (13, 2, "dim 0 bit 10"),
            (15, 7, "dim 0 sign"),
        ] {
            add(
                format!("tensor {i}: flip {field}"),
                Mutation::Flip { at: at + off, bit },
            );
        }
        let name = at + 12 + 4 * s.tensors[i].1;
        add(
            format!("tensor {i}: flip name byte 0"),
            Mutation::Flip { at: name, bit: 0 },
        );
        add(
            format!("tensor {i}: flip last name byte"),
            Mutation::Flip {
                at: name + len - 1,
                bit: 5,
            },
        );
    }
    // Overwritten values.
    let (t0, ..) = s.tensors[0];
    let (t50, ..) = s.tensors[50];
    for (at, value, what) in [
        (4, 0, "n_vocab = 0"),
        (4, i32::MAX, "n_vocab = i32::MAX"),
        (8, -1500, "n_audio_ctx = -1500"),
        (20, 100_000, "n_audio_layer = 100000"),
        (36, 0, "n_text_layer = 0"),
        (44, 4, "ftype = 4 (ggml asserts)"),
        (44, 2002, "ftype = 2002 (q4_0 with f16 data)"),
        (s.filters, i32::MAX, "n_mel = i32::MAX"),
        (s.filters + 4, -1, "n_fft = -1"),
        (s.vocab, i32::MAX, "vocabulary count = i32::MAX"),
        (s.token_lens[3], i32::MAX, "token length = i32::MAX"),
        (t0, 5, "n_dims = 5 (stack overflow in the loader)"),
        (t0, 1000, "n_dims = 1000"),
        (t0 + 4, -1, "name length = -1"),
        (t0 + 4, 0, "name length = 0"),
        (t0 + 4, i32::MAX, "name length = i32::MAX"),
        (t0 + 8, 4, "type = 4 (removed type)"),
        (t0 + 8, 40, "type = 40 (past GGML_TYPE_COUNT)"),
        (t0 + 8, -1, "type = -1"),
        (t0 + 12, 0, "dim 0 = 0"),
        (t0 + 12, -3, "dim 0 = -3"),
        (t50 + 12, i32::MAX, "tensor 50 dim 0 = i32::MAX"),
    ] {
        add(format!("set {what}"), Mutation::Set { at, value });
    }
    // Weight data: these load (whisper.cpp cannot tell), and must not crash either.
    for &i in &[0usize, 4, 60, 150, s.tensors.len() - 1] {
        let (_, _, _, data, bytes) = s.tensors[i];
        add(
            format!("tensor {i}: flip a data bit"),
            Mutation::Flip {
                at: data + bytes / 3,
                bit: 6,
            },
        );
    }
    // Every eighth variant goes through a file instead of a buffer.
    for (k, var) in v.iter_mut().enumerate() {
        var.via_file = k % 8 == 3;
    }
    v
}

/// Runs the variants named in the environment (child side).
#[test]
fn corruption_child() {
    let Ok(list) = std::env::var(VARIANTS_ENV) else {
        return;
    };
    install_logging_hooks();
    let path = std::env::var_os("WHISPER_STEADY_TEST_MODEL").expect("the parent passes the model");
    let mut bytes = std::fs::read(&path).unwrap();
    let all = variants(&bytes);
    let dir = tempfile::tempdir().unwrap();
    let mut out = std::io::stdout().lock();
    for i in list.split(',').map(|i| i.parse::<usize>().unwrap()) {
        let v = &all[i];
        writeln!(out, "BEGIN {i}").unwrap();
        out.flush().unwrap();
        let (len, saved) = match v.mutation {
            Mutation::Truncate(n) => (n, None),
            Mutation::Flip { at, bit } => {
                let old = bytes[at..at + 1].to_vec();
                bytes[at] ^= 1 << bit;
                (bytes.len(), Some((at, old)))
            }
            Mutation::Set { at, value } => {
                let old = bytes[at..at + 4].to_vec();
                bytes[at..at + 4].copy_from_slice(&value.to_le_bytes());
                (bytes.len(), Some((at, old)))
            }
        };
        let result = load(&bytes[..len], v.via_file, dir.path());
        if let Some((at, old)) = saved {
            bytes[at..at + old.len()].copy_from_slice(&old);
        }
        writeln!(out, "END {i} {result}").unwrap();
    }
}

/// Loads a variant; the outcome as one word and the message.
fn load(bytes: &[u8], via_file: bool, dir: &std::path::Path) -> String {
    let mut params = WhisperContextParameters::default();
    params.use_gpu(false);
    let result = if via_file {
        let path = dir.join("variant.bin");
        std::fs::write(&path, bytes).unwrap();
        WhisperContext::new_with_params(&path, params)
    } else {
        WhisperContext::new_from_buffer_with_params(bytes, params)
    };
    match result {
        Ok(_) => "loaded".into(),
        Err(WhisperError::InvalidModel(d)) => format!("invalid {d}"),
        Err(e) => format!("other {e}"),
    }
}

#[test]
fn corrupted_models_never_crash() {
    let Some(path) = common::model_path() else {
        return;
    };
    let bytes = std::fs::read(&path).unwrap();
    let all = variants(&bytes);
    drop(bytes);
    let exe = std::env::current_exe().unwrap();
    let batches: Vec<Vec<usize>> = (0..all.len())
        .collect::<Vec<_>>()
        .chunks(BATCH)
        .map(<[usize]>::to_vec)
        .collect();
    let start = std::time::Instant::now();
    let (mut loaded, mut invalid, mut other) = (0, 0, Vec::new());
    // Two children at a time.
    for pair in batches.chunks(2) {
        let children: Vec<_> = pair
            .iter()
            .map(|batch| {
                let list = batch
                    .iter()
                    .map(usize::to_string)
                    .collect::<Vec<_>>()
                    .join(",");
                let child = Command::new("sh")
                    .arg("-c")
                    .arg(format!("ulimit -v {LIMIT_KIB} && exec \"$0\" \"$@\""))
                    .arg(&exe)
                    .args([
                        &common::exact(module_path!(), "corruption_child"),
                        "--exact",
                        "--nocapture",
                        "--test-threads=1",
                    ])
                    .env(VARIANTS_ENV, list)
                    .env("WHISPER_STEADY_TEST_MODEL", &path)
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap();
                (batch, child)
            })
            .collect();
        for (batch, child) in children {
            let output = child.wait_with_output().unwrap();
            let stdout = String::from_utf8_lossy(&output.stdout);
            let mut ended = Vec::new();
            for line in stdout.lines() {
                if let Some(rest) = line.strip_prefix("END ") {
                    let (i, result) = rest.split_once(' ').unwrap();
                    let i: usize = i.parse().unwrap();
                    ended.push(i);
                    match result.split_once(' ').map_or(result, |r| r.0) {
                        "loaded" => loaded += 1,
                        "invalid" => invalid += 1,
                        _ => other.push(format!("{}: {result}", all[i].what)),
                    }
                }
            }
            let crashed = batch.iter().find(|i| !ended.contains(i));
            assert!(
                output.status.success() && crashed.is_none(),
                "child for variants {batch:?} ended with {} at variant {:?} ({:?})\nstdout:\n{stdout}\nstderr:\n{}",
                output.status,
                crashed,
                crashed.map(|&i| &all[i]),
                String::from_utf8_lossy(&output.stderr)
            );
        }
    }
    println!(
        "{} corrupted variants in {:?}: {loaded} loaded, {invalid} refused as InvalidModel, {} other errors, 0 crashes",
        all.len(),
        start.elapsed(),
        other.len()
    );
    assert!(
        other.is_empty(),
        "a variant the validator accepted failed in whisper.cpp: {other:#?}"
    );
    assert!(all.len() >= 200);
    assert!(invalid > 150);
}
