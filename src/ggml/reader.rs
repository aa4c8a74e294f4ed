//! The streaming reader of the ggml model file: section by section over a [`Source`], each
//! read checked against the bytes that remain, failures as [`ModelDefect`]s. It reads; the
//! validator ([`crate::model`]) decides what is acceptable.

use super::layout::type_layout;
use super::source::Source;
use super::{DefectKind, Field, Hparams, ModelDefect, MAX_TENSOR_NAME_LEN};

/// A tensor record's header.
pub(crate) struct TensorHeader {
    /// Where the record starts.
    pub(crate) at: u64,
    /// `n_dims`, 1 to 4.
    pub(crate) n_dims: i32,
    /// The dimensions, innermost first, padded with 1.
    pub(crate) ne: [i32; 4],
    /// The ggml type id.
    pub(crate) ggml_type: i32,
    /// The name's bytes (1 to [`MAX_TENSOR_NAME_LEN`]).
    pub(crate) name: Vec<u8>,
}

impl TensorHeader {
    /// The bytes of data that follow the header, from its dimensions and its type's block
    /// layout (saturating, so that no dimensions overflow it: the reader then finds too few
    /// bytes); `None` for a type whisper.cpp cannot hold.
    pub(crate) fn data_len(&self) -> Option<u64> {
        let (block, block_bytes) = type_layout(self.ggml_type)?;
        let elements = self.ne[..self.n_dims as usize]
            .iter()
            .fold(1u64, |n, &d| n.saturating_mul(d as u32 as u64));
        Some((elements / block).saturating_mul(block_bytes))
    }
}

/// Reads a model file's sections in order.
pub(crate) struct Reader<S: Source> {
    src: S,
}

impl<S: Source> Reader<S> {
    /// A reader at the start of `src`.
    pub(crate) fn new(src: S) -> Self {
        Reader { src }
    }

    /// The length of the file.
    pub(crate) fn len(&self) -> u64 {
        self.src.len()
    }

    /// The offset of the next read.
    pub(crate) fn pos(&self) -> u64 {
        self.src.pos()
    }

    /// An `i32` field, refusing a truncated file.
    pub(crate) fn i32(&mut self, what: Field) -> Result<i32, ModelDefect> {
        let mut b = [0u8; 4];
        self.fill(&mut b, what)?;
        Ok(i32::from_le_bytes(b))
    }

    /// Exactly `buf.len()` bytes of `what`.
    fn fill(&mut self, buf: &mut [u8], what: Field) -> Result<(), ModelDefect> {
        let at = self.src.pos();
        self.src.need(buf.len() as u64, |needed, available| {
            ModelDefect::field(DefectKind::Truncated { needed, available }, at, what)
        })?;
        self.src
            .read(buf)
            .map_err(|e| ModelDefect::field(DefectKind::Io(e.kind()), at, what))
    }

    /// The next `n` bytes, checked to exist: read into a new buffer when `keep`, else
    /// skipped. `defect` says what a failure is about, given the kind and the offset.
    fn take(
        &mut self,
        n: u64,
        keep: bool,
        defect: impl Fn(DefectKind, u64) -> ModelDefect,
    ) -> Result<Option<Vec<u8>>, ModelDefect> {
        let at = self.src.pos();
        self.src.need(n, |needed, available| {
            defect(DefectKind::Truncated { needed, available }, at)
        })?;
        let io = |e: std::io::Error| defect(DefectKind::Io(e.kind()), at);
        if keep {
            let mut buf = vec![0u8; n as usize];
            self.src.read(&mut buf).map_err(io)?;
            Ok(Some(buf))
        } else {
            self.src.skip(n).map_err(io)?;
            Ok(None)
        }
    }

    /// `n` bytes of `what`, read (for copying) after checking that they exist.
    pub(crate) fn bytes(&mut self, n: u64, what: Field) -> Result<Vec<u8>, ModelDefect> {
        let bytes = self.take(n, true, |kind, at| ModelDefect::field(kind, at, what))?;
        Ok(bytes.unwrap_or_default())
    }

    /// Moves over the next `n` bytes, which belong to `what`.
    pub(crate) fn skip(&mut self, n: u64, what: Field) -> Result<(), ModelDefect> {
        self.take(n, false, |kind, at| ModelDefect::field(kind, at, what))
            .map(drop)
    }

    /// `n` bytes of a tensor's data: read when `keep`, else skipped. Defects name the tensor.
    pub(crate) fn tensor_data(
        &mut self,
        n: u64,
        name: &[u8],
        keep: bool,
    ) -> Result<Option<Vec<u8>>, ModelDefect> {
        self.take(n, keep, |kind, at| ModelDefect::tensor(kind, at, name))
    }

    /// The magic, as read.
    pub(crate) fn magic(&mut self) -> Result<u32, ModelDefect> {
        Ok(self.i32(Field::Magic)? as u32)
    }

    /// The hyperparameters, as read (no range checks).
    pub(crate) fn hparams(&mut self) -> Result<Hparams, ModelDefect> {
        let mut h = Hparams {
            n_vocab: 0,
            n_audio_ctx: 0,
            n_audio_state: 0,
            n_audio_head: 0,
            n_audio_layer: 0,
            n_text_ctx: 0,
            n_text_state: 0,
            n_text_head: 0,
            n_text_layer: 0,
            n_mels: 0,
            ftype: 0,
        };
        for field in &Hparams::FIELDS {
            let value = self.i32(field.field)?;
            (field.set)(&mut h, value);
        }
        Ok(h)
    }

    /// The next tensor record's header, or `None` at the end of the file. Refuses a record
    /// too short to be one, a dimension count outside 1 to 4 and a name length outside 1 to
    /// [`MAX_TENSOR_NAME_LEN`] (whisper.cpp's loader writes those into fixed arrays).
    pub(crate) fn tensor_header(&mut self) -> Result<Option<TensorHeader>, ModelDefect> {
        let at = self.src.pos();
        let remaining = self.src.len().saturating_sub(at);
        if remaining == 0 {
            return Ok(None);
        }
        if remaining < 12 {
            return Err(ModelDefect::field(
                DefectKind::TrailingBytes { count: remaining },
                at,
                Field::TensorTable,
            ));
        }
        let n_dims = self.i32(Field::TensorHeader)?;
        let length = self.i32(Field::TensorHeader)?;
        let ggml_type = self.i32(Field::TensorHeader)?;
        if !(1..=4).contains(&n_dims) {
            return Err(ModelDefect::field(
                DefectKind::BadDimCount { n_dims },
                at,
                Field::TensorHeader,
            ));
        }
        if !(1..=MAX_TENSOR_NAME_LEN).contains(&length) {
            return Err(ModelDefect::field(
                DefectKind::BadNameLength {
                    length,
                    max: MAX_TENSOR_NAME_LEN,
                },
                at,
                Field::TensorHeader,
            ));
        }
        let mut ne = [1i32; 4];
        for d in ne.iter_mut().take(n_dims as usize) {
            *d = self.i32(Field::TensorDims)?;
        }
        let mut name = vec![0u8; length as usize];
        self.fill(&mut name, Field::TensorName)?;
        Ok(Some(TensorHeader {
            at,
            n_dims,
            ne,
            ggml_type,
            name,
        }))
    }
}
