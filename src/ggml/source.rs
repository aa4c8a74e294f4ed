//! The bytes being validated: a buffer, or a file read through a buffer with seeks over the
//! tensor data.

use std::fs::File;
use std::io::{self, BufReader, Read};

/// A positioned byte source of known length.
pub(crate) trait Source {
    /// Total length.
    fn len(&self) -> u64;
    /// Current offset.
    fn pos(&self) -> u64;
    /// Reads exactly `buf.len()` bytes (the caller checked they exist with [`need`](Self::need)).
    fn read(&mut self, buf: &mut [u8]) -> io::Result<()>;
    /// Moves `n` bytes forward (checked likewise).
    fn skip(&mut self, n: u64) -> io::Result<()>;

    /// `Ok` if `n` bytes remain from the current offset, else the error `truncated(n, left)`.
    fn need<E>(&self, n: u64, truncated: impl FnOnce(u64, u64) -> E) -> Result<(), E> {
        let available = self.len().saturating_sub(self.pos());
        if n > available {
            Err(truncated(n, available))
        } else {
            Ok(())
        }
    }
}

/// A model in memory.
pub(crate) struct SliceSource<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> SliceSource<'a> {
    pub(crate) fn new(data: &'a [u8]) -> Self {
        SliceSource { data, pos: 0 }
    }
}

impl Source for SliceSource<'_> {
    fn len(&self) -> u64 {
        self.data.len() as u64
    }

    fn pos(&self) -> u64 {
        self.pos as u64
    }

    fn read(&mut self, buf: &mut [u8]) -> io::Result<()> {
        let end = self
            .pos
            .checked_add(buf.len())
            .filter(|&e| e <= self.data.len())
            .ok_or(io::ErrorKind::UnexpectedEof)?;
        buf.copy_from_slice(&self.data[self.pos..end]);
        self.pos = end;
        Ok(())
    }

    fn skip(&mut self, n: u64) -> io::Result<()> {
        let end = usize::try_from(n)
            .ok()
            .and_then(|n| self.pos.checked_add(n))
            .filter(|&e| e <= self.data.len())
            .ok_or(io::ErrorKind::UnexpectedEof)?;
        self.pos = end;
        Ok(())
    }
}

/// A model file: headers through a 64 KiB buffer, tensor data skipped with seeks.
pub(crate) struct FileSource {
    reader: BufReader<File>,
    pos: u64,
    len: u64,
}

impl FileSource {
    pub(crate) fn new(file: File, len: u64) -> Self {
        FileSource {
            reader: BufReader::with_capacity(64 * 1024, file),
            pos: 0,
            len,
        }
    }
}

impl Source for FileSource {
    fn len(&self) -> u64 {
        self.len
    }

    fn pos(&self) -> u64 {
        self.pos
    }

    fn read(&mut self, buf: &mut [u8]) -> io::Result<()> {
        self.reader.read_exact(buf)?;
        self.pos += buf.len() as u64;
        Ok(())
    }

    fn skip(&mut self, n: u64) -> io::Result<()> {
        let step = i64::try_from(n).map_err(|_| io::ErrorKind::InvalidInput)?;
        self.reader.seek_relative(step)?;
        self.pos += n;
        Ok(())
    }
}
