//! Fuzzes the model validator, and whisper.cpp's loader behind it: any input either is refused
//! with a `ModelDefect` or, when it is accepted, loads in whisper.cpp (the validator and the
//! loader must agree). Loading costs ~50 ms and most accepted inputs differ from one already
//! loaded only in weight bytes, which the loader copies blindly; so an accepted input is loaded
//! when its summary and first 4 KiB have not been loaded before in this process (and is at
//! most 4 MiB).

#![no_main]

use std::collections::HashSet;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Mutex;

use libfuzzer_sys::fuzz_target;
use whisper_steady::model::validate_bytes;
use whisper_steady::{install_logging_hooks, WhisperContext, WhisperContextParameters};

fuzz_target!(|data: &[u8]| {
    install_logging_hooks();
    match validate_bytes(data) {
        Err(defect) => {
            // The message is always printable.
            let _ = defect.to_string();
        }
        Ok(info) => {
            assert_eq!(info.file_size, data.len() as u64);
            static LOADED: Mutex<Option<HashSet<u64>>> = Mutex::new(None);
            let mut h = DefaultHasher::new();
            format!("{info:?}").hash(&mut h);
            data[..data.len().min(4096)].hash(&mut h);
            let new = LOADED
                .lock()
                .unwrap()
                .get_or_insert_with(HashSet::new)
                .insert(h.finish());
            if new && data.len() <= 4 << 20 {
                let mut params = WhisperContextParameters::default();
                params.use_gpu(false);
                let ctx = WhisperContext::new_from_buffer_with_params(data, params)
                    .expect("whisper.cpp loads every model the validator accepts");
                assert_eq!(ctx.n_vocab(), info.hparams.n_vocab);
            }
        }
    }
});
