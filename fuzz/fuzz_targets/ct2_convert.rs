//! Fuzzes the CTranslate2 → ggml converter from memory. The input is a little-endian `u16`
//! vocabulary size (capped at 51866, whisper's largest) followed by `model.bin`; the vocabulary
//! is synthetic (`<|endoftext|>` at index 256 or the last one). A conversion either fails with
//! an error or writes a file that the model validator accepts (the converter checks its plan
//! against the same format table).

#![no_main]

use libfuzzer_sys::fuzz_target;
use whisper_steady::convert::convert_ct2_tokens;
use whisper_steady::model::validate_bytes;

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let n = (u16::from_le_bytes([data[0], data[1]]) as usize).min(51866);
    let eot = n.saturating_sub(1).min(256);
    let tokens: Vec<String> = (0..n)
        .map(|i| {
            if i == eot {
                "<|endoftext|>".to_string()
            } else {
                format!("t{i}")
            }
        })
        .collect();
    let mut out = Vec::new();
    match convert_ct2_tokens(&data[2..], &tokens, &mut out) {
        Ok(report) => {
            assert_eq!(report.bytes, out.len() as u64);
            validate_bytes(&out).expect("a converted model validates");
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
