//! A model file held in memory, split into its sections: for tools and tests that look inside
//! a model (the converter's tests compare what it wrote with what it read).

use crate::ggml::reader::Reader;
use crate::ggml::source::SliceSource;
use crate::ggml::{Field, Hparams, ModelDefect};

/// One tensor record of a [`ModelFile`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorData<'a> {
    /// The name (whisper.cpp's, e.g. `encoder.conv1.weight`).
    pub name: String,
    /// The dimensions as stored: innermost first.
    pub dims: Vec<i32>,
    /// The ggml type id (0 f32, 1 f16, 8 q8_0, ...).
    pub ggml_type: i32,
    /// The data, as stored.
    pub data: &'a [u8],
}

/// A valid model file in memory, section by section.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelFile<'a> {
    /// The hyperparameters.
    pub hparams: Hparams,
    /// The mel filterbank's rows (`n_mel`) and columns (`n_fft`).
    pub mel_shape: (i32, i32),
    /// The filterbank, row by row.
    pub mel_filters: Vec<f32>,
    /// The vocabulary entries, as stored.
    pub tokens: Vec<&'a [u8]>,
    /// The tensors, in file order.
    pub tensors: Vec<TensorData<'a>>,
}

impl<'a> ModelFile<'a> {
    /// Validates `bytes` ([`validate_bytes`](super::validate_bytes)) and splits them into sections.
    pub fn parse(bytes: &'a [u8]) -> Result<ModelFile<'a>, ModelDefect> {
        super::validate_bytes(bytes)?;
        let mut r = Reader::new(SliceSource::new(bytes));
        // The slice of the `n` bytes the reader has just passed.
        let behind = |r: &Reader<SliceSource<'a>>, n: u64| {
            let end = r.pos() as usize;
            &bytes[end - n as usize..end]
        };
        r.magic()?;
        let hparams = r.hparams()?;
        let mel_shape = (r.i32(Field::MelNMel)?, r.i32(Field::MelNFft)?);
        let n = mel_shape.0 as u64 * mel_shape.1 as u64 * 4;
        r.skip(n, Field::MelFilters)?;
        let mel_filters = behind(&r, n)
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        let n_tokens = r.i32(Field::VocabularyCount)?;
        let mut tokens = Vec::with_capacity(n_tokens as usize);
        for _ in 0..n_tokens {
            let len = r.i32(Field::VocabularyTokenLength)? as u32 as u64;
            r.skip(len, Field::VocabularyToken)?;
            tokens.push(behind(&r, len));
        }
        let mut tensors = Vec::new();
        while let Some(t) = r.tensor_header()? {
            let n = t
                .data_len()
                .expect("the validator accepted only known types");
            r.tensor_data(n, &t.name, false)?;
            tensors.push(TensorData {
                name: String::from_utf8_lossy(&t.name).into_owned(),
                dims: t.ne[..t.n_dims as usize].to_vec(),
                ggml_type: t.ggml_type,
                data: behind(&r, n),
            });
        }
        Ok(ModelFile {
            hparams,
            mel_shape,
            mel_filters,
            tokens,
            tensors,
        })
    }
}
