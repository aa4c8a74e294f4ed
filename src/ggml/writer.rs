//! The writer of the ggml model file (the format is described in [`super`]).

use std::io::{self, Write};

use super::{Hparams, MAGIC};

/// The ggml tensor types the converter writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GgmlType {
    F32,
    F16,
}

impl GgmlType {
    /// ggml's type id (`GGML_TYPE_F32` = 0, `GGML_TYPE_F16` = 1).
    pub(crate) fn id(self) -> i32 {
        match self {
            GgmlType::F32 => 0,
            GgmlType::F16 => 1,
        }
    }
}

/// A writer that counts the bytes it passes on.
pub(crate) struct GgmlWriter<W: Write> {
    out: W,
    written: u64,
}

impl<W: Write> GgmlWriter<W> {
    pub(crate) fn new(out: W) -> Self {
        GgmlWriter { out, written: 0 }
    }

    /// Bytes written so far.
    pub(crate) fn written(&self) -> u64 {
        self.written
    }

    fn bytes(&mut self, b: &[u8]) -> io::Result<()> {
        self.out.write_all(b)?;
        self.written += b.len() as u64;
        Ok(())
    }

    fn i32(&mut self, v: i32) -> io::Result<()> {
        self.bytes(&v.to_le_bytes())
    }

    /// Bytes passed on as they are (the quantizer copies sections of an existing file).
    pub(crate) fn raw(&mut self, b: &[u8]) -> io::Result<()> {
        self.bytes(b)
    }

    /// Little-endian `i32`s passed on as they are.
    pub(crate) fn raw_i32s(&mut self, values: &[i32]) -> io::Result<()> {
        let mut buf = Vec::with_capacity(values.len() * 4);
        for v in values {
            buf.extend_from_slice(&v.to_le_bytes());
        }
        self.bytes(&buf)
    }

    /// The magic and the hyper parameters.
    pub(crate) fn header(&mut self, h: &Hparams) -> io::Result<()> {
        self.bytes(&MAGIC.to_le_bytes())?;
        for field in Hparams::FIELDS {
            self.i32((field.get)(h))?;
        }
        Ok(())
    }

    /// The mel filterbank, `n_mel` rows of `n_fft` values.
    pub(crate) fn mel_filters(&mut self, n_mel: i32, n_fft: i32, data: &[f32]) -> io::Result<()> {
        self.i32(n_mel)?;
        self.i32(n_fft)?;
        let mut buf = Vec::with_capacity(data.len() * 4);
        for v in data {
            buf.extend_from_slice(&v.to_le_bytes());
        }
        self.bytes(&buf)
    }

    /// The vocabulary, each token as raw bytes. Lengths must fit an `i32` (checked by the caller).
    pub(crate) fn vocabulary(&mut self, tokens: &[Vec<u8>]) -> io::Result<()> {
        self.i32(tokens.len() as i32)?;
        let mut buf = Vec::new();
        for t in tokens {
            buf.extend_from_slice(&(t.len() as u32).to_le_bytes());
            buf.extend_from_slice(t);
        }
        self.bytes(&buf)
    }

    /// One tensor. `shape` is in PyTorch order (outermost first); ggml stores it reversed.
    pub(crate) fn tensor(
        &mut self,
        name: &str,
        shape: &[i32],
        ty: GgmlType,
        data: &[u8],
    ) -> io::Result<()> {
        self.i32(shape.len() as i32)?;
        self.i32(name.len() as i32)?;
        self.i32(ty.id())?;
        for &d in shape.iter().rev() {
            self.i32(d)?;
        }
        self.bytes(name.as_bytes())?;
        self.bytes(data)
    }

    /// Flushes the underlying writer.
    pub(crate) fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}
