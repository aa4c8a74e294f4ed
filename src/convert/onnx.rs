//! A minimal reader for the tensors stored in an ONNX model file.
//!
//! An ONNX file is one protobuf message, `ModelProto` (the schema is `onnx/onnx.proto` in the
//! ONNX repository). The converter needs only the constant tensors, which an exporter stores in
//! two places: as `initializer`s of a graph, and as the `value` attribute of `Constant` nodes;
//! both may sit in the main graph or in subgraphs (the branches of an `If` node, the body of a
//! `Loop`), at any depth. This reader walks the message tree and returns every such tensor with
//! its name, shape, data type and little-endian data, borrowed from the input where it can be.
//!
//! Only the fields below are decoded; every other field is skipped by its wire type, as any
//! protobuf reader does:
//!
//! | message | fields read |
//! |---|---|
//! | `ModelProto` | 7 `graph` |
//! | `GraphProto` | 1 `node`, 5 `initializer` |
//! | `NodeProto` | 2 `output`, 4 `op_type`, 5 `attribute` |
//! | `AttributeProto` | 1 `name`, 5 `t`, 6 `g`, 11 `graphs` |
//! | `TensorProto` | 1 `dims`, 2 `data_type`, 4 `float_data`, 8 `name`, 9 `raw_data`, 14 `data_location` |
//!
//! Every length is checked against the bytes that remain before it is used, nesting is limited
//! to [`MAX_DEPTH`] messages, and a malformed message is a [`ConvertError::Onnx`] that names the
//! byte offset: nothing here panics or allocates more than the input's size.

use std::borrow::Cow;

use super::ConvertError;

/// The deepest nesting of messages accepted (a graph inside a node inside a graph ... counts
/// one level per message). Real models need a handful; the limit keeps a hostile file from
/// exhausting the stack.
pub(crate) const MAX_DEPTH: usize = 64;

/// ONNX's `TensorProto.DataType.FLOAT`.
pub(crate) const DATA_TYPE_FLOAT: i32 = 1;

/// A constant tensor found in the model.
#[derive(Debug, Clone)]
pub(crate) struct Tensor<'a> {
    /// The name the graph knows it by: the initializer's name, or the output of the `Constant`
    /// node that produces it.
    pub(crate) name: String,
    /// The dimensions, outermost first.
    pub(crate) dims: Vec<i64>,
    /// ONNX's data type id (1 is `FLOAT`).
    pub(crate) data_type: i32,
    /// The elements, little-endian, for `FLOAT` tensors; `raw_data` for the other types.
    pub(crate) data: Cow<'a, [u8]>,
    /// Whether the data lives in an external file (`data_location` = `EXTERNAL`).
    pub(crate) external: bool,
}

/// Every constant tensor of the ONNX model in `bytes`, in the order met.
pub(crate) fn tensors(bytes: &[u8]) -> Result<Vec<Tensor<'_>>, ConvertError> {
    let mut out = Vec::new();
    let mut graphs = 0;
    for field in Fields::new(bytes, 0, "ModelProto") {
        let field = field?;
        if field.number == 7 {
            let graph = field.message("ModelProto.graph")?;
            read_graph(graph, 1, &mut out)?;
            graphs += 1;
        }
    }
    if graphs == 0 {
        return Err(onnx_error(
            0,
            "the ModelProto has no graph (not an ONNX model?)",
        ));
    }
    Ok(out)
}

fn onnx_error(offset: usize, msg: impl std::fmt::Display) -> ConvertError {
    ConvertError::Onnx(format!("at byte {offset}: {msg}"))
}

/// A message's bytes and where they start in the file (for error messages).
#[derive(Clone, Copy)]
struct Message<'a> {
    bytes: &'a [u8],
    offset: usize,
}

fn read_graph<'a>(
    graph: Message<'a>,
    depth: usize,
    out: &mut Vec<Tensor<'a>>,
) -> Result<(), ConvertError> {
    if depth > MAX_DEPTH {
        return Err(onnx_error(
            graph.offset,
            format!("graphs nested more than {MAX_DEPTH} levels deep"),
        ));
    }
    for field in Fields::new(graph.bytes, graph.offset, "GraphProto") {
        let field = field?;
        match field.number {
            1 => read_node(field.message("GraphProto.node")?, depth + 1, out)?,
            5 => {
                let tensor = read_tensor(field.message("GraphProto.initializer")?)?;
                out.push(tensor);
            }
            _ => {}
        }
    }
    Ok(())
}

fn read_node<'a>(
    node: Message<'a>,
    depth: usize,
    out: &mut Vec<Tensor<'a>>,
) -> Result<(), ConvertError> {
    let mut first_output: Option<String> = None;
    let mut op_type = String::new();
    let mut value: Option<Tensor<'a>> = None;
    for field in Fields::new(node.bytes, node.offset, "NodeProto") {
        let field = field?;
        match field.number {
            2 if first_output.is_none() => first_output = Some(field.string("NodeProto.output")?),
            4 => op_type = field.string("NodeProto.op_type")?,
            5 => {
                let attribute = field.message("NodeProto.attribute")?;
                if let Some(t) = read_attribute(attribute, depth + 1, out)? {
                    value = Some(t);
                }
            }
            _ => {}
        }
    }
    // A `Constant` node's `value` tensor is known to the graph by the node's output name.
    if op_type == "Constant" {
        if let (Some(mut tensor), Some(name)) = (value, first_output) {
            tensor.name = name;
            out.push(tensor);
        }
    }
    Ok(())
}

/// Reads an attribute: walks its subgraphs, and returns its tensor if it is named `value`.
fn read_attribute<'a>(
    attribute: Message<'a>,
    depth: usize,
    out: &mut Vec<Tensor<'a>>,
) -> Result<Option<Tensor<'a>>, ConvertError> {
    let mut name = String::new();
    let mut tensor = None;
    for field in Fields::new(attribute.bytes, attribute.offset, "AttributeProto") {
        let field = field?;
        match field.number {
            1 => name = field.string("AttributeProto.name")?,
            5 => tensor = Some(read_tensor(field.message("AttributeProto.t")?)?),
            6 | 11 => read_graph(field.message("AttributeProto.g")?, depth + 1, out)?,
            _ => {}
        }
    }
    Ok(tensor.filter(|_| name == "value"))
}

fn read_tensor(tensor: Message<'_>) -> Result<Tensor<'_>, ConvertError> {
    let mut name = String::new();
    let mut dims = Vec::new();
    let mut data_type = 0;
    let mut raw: Option<&[u8]> = None;
    // `float_data`: packed runs are borrowed; single (unpacked) values are collected.
    let mut floats_packed: Vec<&[u8]> = Vec::new();
    let mut floats_single: Vec<u8> = Vec::new();
    let mut external = false;
    for field in Fields::new(tensor.bytes, tensor.offset, "TensorProto") {
        let field = field?;
        match (field.number, field.value) {
            (1, Value::Varint(v)) => dims.push(v as i64),
            (1, Value::Bytes(b)) => {
                let mut at = 0;
                while at < b.len() {
                    let (v, n) = varint(&b[at..]).ok_or_else(|| {
                        onnx_error(field.offset + at, "bad packed TensorProto.dims")
                    })?;
                    dims.push(v as i64);
                    at += n;
                }
            }
            (2, Value::Varint(v)) => {
                data_type = i32::try_from(v as i64).map_err(|_| {
                    onnx_error(
                        field.offset,
                        format!("TensorProto.data_type {v} out of range"),
                    )
                })?
            }
            (4, Value::Bytes(b)) => {
                if b.len() % 4 != 0 {
                    return Err(onnx_error(
                        field.offset,
                        "packed TensorProto.float_data is not a whole number of floats",
                    ));
                }
                floats_packed.push(b);
            }
            (4, Value::Fixed32(b)) => floats_single.extend_from_slice(&b),
            (8, Value::Bytes(b)) => name = utf8(b, field.offset, "TensorProto.name")?,
            (9, Value::Bytes(b)) => raw = Some(b),
            (14, Value::Varint(v)) => external = v == 1,
            (1 | 2 | 4 | 8 | 9 | 14, _) => {
                return Err(onnx_error(
                    field.offset,
                    format!("TensorProto field {} has the wrong wire type", field.number),
                ))
            }
            _ => {}
        }
    }
    let data: Cow<'_, [u8]> = match raw {
        Some(raw) => Cow::Borrowed(raw),
        None if floats_single.is_empty() && floats_packed.len() <= 1 => {
            Cow::Borrowed(floats_packed.first().copied().unwrap_or(&[]))
        }
        None => {
            let mut all = floats_packed.concat();
            all.extend_from_slice(&floats_single);
            Cow::Owned(all)
        }
    };
    Ok(Tensor {
        name,
        dims,
        data_type,
        data,
        external,
    })
}

fn utf8(b: &[u8], offset: usize, what: &str) -> Result<String, ConvertError> {
    String::from_utf8(b.to_vec()).map_err(|_| onnx_error(offset, format!("{what} is not UTF-8")))
}

/// A field's value, by wire type.
#[derive(Debug, Clone, Copy)]
enum Value<'a> {
    Varint(u64),
    Fixed64,
    Bytes(&'a [u8]),
    Fixed32([u8; 4]),
}

/// One field of a message.
struct Field<'a> {
    number: u64,
    value: Value<'a>,
    /// Offset of the field's value in the file.
    offset: usize,
}

impl<'a> Field<'a> {
    fn bytes(&self, what: &str) -> Result<&'a [u8], ConvertError> {
        match self.value {
            Value::Bytes(b) => Ok(b),
            _ => Err(onnx_error(
                self.offset,
                format!("{what} is not length-delimited"),
            )),
        }
    }

    fn message(&self, what: &str) -> Result<Message<'a>, ConvertError> {
        Ok(Message {
            bytes: self.bytes(what)?,
            offset: self.offset,
        })
    }

    fn string(&self, what: &str) -> Result<String, ConvertError> {
        utf8(self.bytes(what)?, self.offset, what)
    }
}

/// The fields of one message, in order; the first malformed one ends the iteration with an
/// error.
struct Fields<'a> {
    bytes: &'a [u8],
    at: usize,
    base: usize,
    message: &'static str,
    failed: bool,
}

impl<'a> Fields<'a> {
    fn new(bytes: &'a [u8], base: usize, message: &'static str) -> Self {
        Fields {
            bytes,
            at: 0,
            base,
            message,
            failed: false,
        }
    }

    fn next_field(&mut self) -> Result<Field<'a>, ConvertError> {
        let start = self.base + self.at;
        let rest = &self.bytes[self.at..];
        let (key, n) = varint(rest)
            .ok_or_else(|| onnx_error(start, format!("bad field key in a {}", self.message)))?;
        self.at += n;
        let number = key >> 3;
        if number == 0 {
            return Err(onnx_error(
                start,
                format!("field number 0 in a {}", self.message),
            ));
        }
        let offset = self.base + self.at;
        let rest = &self.bytes[self.at..];
        let truncated = || {
            onnx_error(
                offset,
                format!(
                    "field {number} of a {} runs past the end of the message (truncated file?)",
                    self.message
                ),
            )
        };
        let value = match key & 7 {
            0 => {
                let (v, n) = varint(rest).ok_or_else(truncated)?;
                self.at += n;
                Value::Varint(v)
            }
            1 => {
                if rest.len() < 8 {
                    return Err(truncated());
                }
                self.at += 8;
                Value::Fixed64
            }
            2 => {
                let (len, n) = varint(rest).ok_or_else(truncated)?;
                let body = usize::try_from(len)
                    .ok()
                    .and_then(|len| rest.get(n..n.checked_add(len)?))
                    .ok_or_else(truncated)?;
                self.at += n + body.len();
                return Ok(Field {
                    number,
                    value: Value::Bytes(body),
                    offset: offset + n,
                });
            }
            5 => {
                let b: [u8; 4] = rest
                    .get(..4)
                    .and_then(|b| b.try_into().ok())
                    .ok_or_else(truncated)?;
                self.at += 4;
                Value::Fixed32(b)
            }
            wire => {
                return Err(onnx_error(
                    start,
                    format!(
                        "unsupported wire type {wire} (field {number} of a {})",
                        self.message
                    ),
                ))
            }
        };
        Ok(Field {
            number,
            value,
            offset,
        })
    }
}

impl<'a> Iterator for Fields<'a> {
    type Item = Result<Field<'a>, ConvertError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.at >= self.bytes.len() {
            return None;
        }
        let field = self.next_field();
        self.failed = field.is_err();
        Some(field)
    }
}

/// A base-128 varint at the start of `b`: its value and length, or `None` if it is cut off or
/// longer than ten bytes.
fn varint(b: &[u8]) -> Option<(u64, usize)> {
    let mut v: u64 = 0;
    for (i, &byte) in b.iter().enumerate().take(10) {
        v |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((v, i + 1));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(number: u64, wire: u64) -> Vec<u8> {
        enc_varint((number << 3) | wire)
    }

    fn enc_varint(mut v: u64) -> Vec<u8> {
        let mut out = Vec::new();
        loop {
            let b = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(b);
                return out;
            }
            out.push(b | 0x80);
        }
    }

    fn len_field(number: u64, body: &[u8]) -> Vec<u8> {
        let mut out = key(number, 2);
        out.extend(enc_varint(body.len() as u64));
        out.extend_from_slice(body);
        out
    }

    #[test]
    fn varints() {
        assert_eq!(varint(&[0x01]), Some((1, 1)));
        assert_eq!(varint(&[0xac, 0x02]), Some((300, 2)));
        assert_eq!(varint(&[0x80]), None);
        assert_eq!(varint(&[0xff; 11]), None);
        assert_eq!(varint(&enc_varint(u64::MAX)), Some((u64::MAX, 10)));
    }

    #[test]
    fn initializers_and_constants_in_subgraphs() {
        // TensorProto: dims [2] (packed), FLOAT, name "w", raw_data 2 floats.
        let mut init = len_field(1, &[2]);
        init.extend(key(2, 0));
        init.push(1);
        init.extend(len_field(8, b"w"));
        init.extend(len_field(9, &[0, 0, 128, 63, 0, 0, 0, 64]));
        // A Constant node in a subgraph, its tensor given as unpacked float_data.
        let mut value = key(1, 0);
        value.push(1);
        value.extend(key(2, 0));
        value.push(1);
        value.extend(key(4, 5));
        value.extend(1.5f32.to_le_bytes());
        let mut attr = len_field(1, b"value");
        attr.extend(len_field(5, &value));
        let mut node = len_field(2, b"c_out");
        node.extend(len_field(4, b"Constant"));
        node.extend(len_field(5, &attr));
        let sub = len_field(1, &node);
        let mut if_attr = len_field(1, b"then_branch");
        if_attr.extend(len_field(6, &sub));
        let mut if_node = len_field(4, b"If");
        if_node.extend(len_field(5, &if_attr));
        let mut graph = len_field(1, &if_node);
        graph.extend(len_field(5, &init));
        let mut model = key(1, 0);
        model.push(8);
        model.extend(len_field(7, &graph));

        let t = tensors(&model).unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(t[0].name, "c_out");
        assert_eq!(t[0].dims, [1]);
        assert_eq!(&*t[0].data, &1.5f32.to_le_bytes());
        assert_eq!(t[1].name, "w");
        assert_eq!(t[1].dims, [2]);
        assert_eq!(t[1].data_type, DATA_TYPE_FLOAT);
        assert_eq!(t[1].data.len(), 8);

        // Every truncation is an error, never a panic.
        for n in 0..model.len() {
            let _ = tensors(&model[..n]);
        }
        assert!(tensors(&model[..model.len() - 1]).is_err());
    }

    #[test]
    fn deep_nesting_is_refused() {
        // node -> attribute -> graph -> node -> ... far deeper than MAX_DEPTH.
        let mut graph: Vec<u8> = Vec::new();
        for _ in 0..(MAX_DEPTH * 2) {
            let attr = len_field(6, &graph);
            let node = len_field(5, &attr);
            graph = len_field(1, &node);
        }
        let model = len_field(7, &graph);
        let err = tensors(&model).unwrap_err().to_string();
        assert!(err.contains("nested"), "{err}");
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(tensors(b"").is_err());
        assert!(tensors(b"lmgg\x0a\x00\x00\x00silero-16k").is_err());
        assert!(tensors(&[0x0f, 0x00]).is_err()); // wire type 7
        assert!(tensors(&[0x3a, 0xff, 0xff, 0xff, 0xff, 0x0f]).is_err()); // graph longer than the file
    }
}
