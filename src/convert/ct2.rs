//! Reader for CTranslate2's `model.bin`.
//!
//! Layout of the versions read here (4 to 6), all little-endian: an `i32` binary version, the
//! specification name and an `i32` revision; a `u32` variable count; per variable its name, a
//! `u8` rank, `rank` `u32` dimensions, a `u8` data type id and a `u32` byte count followed by the
//! data; then a `u32` alias count and per alias two names (the alias, then its target).
//! Strings are a `u16` length followed by that many bytes, the last of which is a NUL.
//!
//! The reader borrows the variables' data from the input buffer and checks every length against
//! the bytes that remain before using it, so a corrupted count cannot cause a large allocation.

use std::collections::HashMap;

use super::ConvertError;

/// The oldest binary version read: version 4 introduced data type ids.
pub(crate) const MIN_VERSION: i32 = 4;
/// The newest binary version read (CTranslate2 4.x writes version 6).
pub(crate) const MAX_VERSION: i32 = 6;

/// CTranslate2's data types, by their id in `model.bin`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DType {
    F32,
    I8,
    I16,
    I32,
    F16,
    BF16,
}

impl DType {
    fn from_id(id: u8) -> Option<DType> {
        Some(match id {
            0 => DType::F32,
            1 => DType::I8,
            2 => DType::I16,
            3 => DType::I32,
            4 => DType::F16,
            5 => DType::BF16,
            _ => return None,
        })
    }

    /// CTranslate2's id for this type.
    pub(crate) fn id(self) -> u8 {
        match self {
            DType::F32 => 0,
            DType::I8 => 1,
            DType::I16 => 2,
            DType::I32 => 3,
            DType::F16 => 4,
            DType::BF16 => 5,
        }
    }

    /// Bytes per element.
    pub(crate) fn size(self) -> usize {
        match self {
            DType::I8 => 1,
            DType::I16 | DType::F16 | DType::BF16 => 2,
            DType::F32 | DType::I32 => 4,
        }
    }
}

/// A readable name for a data type id, known or not.
pub(crate) fn dtype_name(id: u8) -> String {
    match DType::from_id(id) {
        Some(DType::F32) => "float32".into(),
        Some(DType::I8) => "int8".into(),
        Some(DType::I16) => "int16".into(),
        Some(DType::I32) => "int32".into(),
        Some(DType::F16) => "float16".into(),
        Some(DType::BF16) => "bfloat16".into(),
        None => format!("unknown (id {id})"),
    }
}

/// One variable of the model, its data borrowed from the input.
#[derive(Debug)]
pub(crate) struct Variable<'a> {
    pub(crate) name: String,
    pub(crate) shape: Vec<usize>,
    pub(crate) dtype: DType,
    pub(crate) data: &'a [u8],
}

impl Variable<'_> {
    /// The value of an integer scalar (rank 0, one element).
    pub(crate) fn int_scalar(&self) -> Result<i64, ConvertError> {
        if !self.shape.is_empty() {
            return Err(ConvertError::Shape {
                name: self.name.clone(),
                expected: vec![],
                found: self.shape.clone(),
            });
        }
        let d = self.data;
        Ok(match self.dtype {
            DType::I8 => i64::from(d[0] as i8),
            DType::I16 => i64::from(i16::from_le_bytes([d[0], d[1]])),
            DType::I32 => i64::from(i32::from_le_bytes([d[0], d[1], d[2], d[3]])),
            _ => {
                return Err(ConvertError::UnsupportedDtype {
                    name: self.name.clone(),
                    dtype: self.dtype.id(),
                })
            }
        })
    }
}

/// A parsed `model.bin`.
#[derive(Debug)]
pub(crate) struct Model<'a> {
    pub(crate) variables: Vec<Variable<'a>>,
    /// Alias name to the name of the variable it stands for.
    pub(crate) aliases: HashMap<String, String>,
    index: HashMap<String, usize>,
}

impl<'a> Model<'a> {
    /// Parses `model.bin`, borrowing the variables' data from `buf`.
    pub(crate) fn parse(buf: &'a [u8]) -> Result<Model<'a>, ConvertError> {
        let mut r = Reader { buf, pos: 0 };
        let version = r.i32("binary version")?;
        if !(MIN_VERSION..=MAX_VERSION).contains(&version) {
            return Err(ConvertError::UnsupportedVersion(version));
        }
        let spec = r.string("specification name")?;
        let _revision = r.i32("specification revision")?;
        if spec != "WhisperSpec" {
            return Err(ConvertError::NotWhisper { spec });
        }

        let count = r.u32("variable count")?;
        let mut variables = Vec::new();
        let mut index = HashMap::new();
        for i in 0..count {
            let name = r.string(&format!("name of variable {i}"))?;
            let rank = usize::from(r.u8(&format!("rank of {name:?}"))?);
            let dims = r.take(rank * 4, &format!("dimensions of {name:?}"))?;
            let shape: Vec<usize> = dims
                .chunks_exact(4)
                .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]) as usize)
                .collect();
            let dtype_id = r.u8(&format!("data type of {name:?}"))?;
            let num_bytes = r.u32(&format!("byte count of {name:?}"))? as usize;
            let data = r.take(num_bytes, &format!("data of {name:?}"))?;
            let dtype = DType::from_id(dtype_id).ok_or_else(|| ConvertError::UnsupportedDtype {
                name: name.clone(),
                dtype: dtype_id,
            })?;
            let elements = shape
                .iter()
                .try_fold(1usize, |acc, &d| acc.checked_mul(d))
                .and_then(|n| n.checked_mul(dtype.size()));
            if elements != Some(num_bytes) {
                return Err(ConvertError::Format(format!(
                    "variable {name:?} of shape {shape:?} and type {} has {num_bytes} bytes",
                    dtype_name(dtype_id)
                )));
            }
            if index.insert(name.clone(), variables.len()).is_some() {
                return Err(ConvertError::Format(format!(
                    "variable {name:?} appears twice"
                )));
            }
            variables.push(Variable {
                name,
                shape,
                dtype,
                data,
            });
        }

        // Aliases exist from version 3 on, so in every version read here.
        let mut aliases = HashMap::new();
        let count = r.u32("alias count")?;
        for i in 0..count {
            let alias = r.string(&format!("name of alias {i}"))?;
            let target = r.string(&format!("target of alias {alias:?}"))?;
            if index.contains_key(&alias) || aliases.contains_key(&alias) {
                return Err(ConvertError::Format(format!(
                    "alias {alias:?} reuses an existing name"
                )));
            }
            if !index.contains_key(&target) {
                return Err(ConvertError::Format(format!(
                    "alias {alias:?} points at {target:?}, which is not a variable"
                )));
            }
            aliases.insert(alias, target);
        }
        if r.pos != buf.len() {
            return Err(ConvertError::Format(format!(
                "{} unexpected bytes after the last field (at byte {})",
                buf.len() - r.pos,
                r.pos
            )));
        }
        Ok(Model {
            variables,
            aliases,
            index,
        })
    }

    /// The variable called `name`, through an alias if need be.
    pub(crate) fn get(&self, name: &str) -> Option<&Variable<'a>> {
        let name = self.aliases.get(name).map_or(name, String::as_str);
        self.index.get(name).map(|&i| &self.variables[i])
    }
}

/// A cursor over `model.bin` that checks each read against the bytes left.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], ConvertError> {
        let available = self.buf.len() - self.pos;
        if n > available {
            return Err(ConvertError::Truncated {
                what: what.to_string(),
                offset: self.pos,
                needed: n,
                available,
            });
        }
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    fn u8(&mut self, what: &str) -> Result<u8, ConvertError> {
        Ok(self.take(1, what)?[0])
    }

    fn u16(&mut self, what: &str) -> Result<u16, ConvertError> {
        let b = self.take(2, what)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    fn u32(&mut self, what: &str) -> Result<u32, ConvertError> {
        let b = self.take(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn i32(&mut self, what: &str) -> Result<i32, ConvertError> {
        let b = self.take(4, what)?;
        Ok(i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// A `u16`-length string; like CTranslate2, the text ends at the first NUL.
    fn string(&mut self, what: &str) -> Result<String, ConvertError> {
        let start = self.pos;
        let len = usize::from(self.u16(what)?);
        let bytes = self.take(len, what)?;
        let text = bytes.split(|&b| b == 0).next().unwrap_or_default();
        String::from_utf8(text.to_vec())
            .map_err(|_| ConvertError::Format(format!("{what} at byte {start} is not valid UTF-8")))
    }
}
