//! What whisper.cpp 1.8.3's `whisper_model_load` expects: the ggml types it can allocate, the
//! `ftype`s it maps to them, and the tensor table it builds from the hyperparameters.

use std::collections::HashMap;

/// ggml type ids used here (`enum ggml_type`).
pub(crate) const GGML_TYPE_F32: i32 = 0;
/// `GGML_TYPE_F16`.
pub(crate) const GGML_TYPE_F16: i32 = 1;

/// `(id, name, block size, bytes per block)` of every ggml type a whisper model can hold,
/// as ggml 1.8.3 defines them (`ggml_type_name`, `ggml_blck_size`, `ggml_type_size`).
const TYPES: &[(i32, &str, u64, u64)] = &[
    (0, "f32", 1, 4),
    (1, "f16", 1, 2),
    (2, "q4_0", 32, 18),
    (3, "q4_1", 32, 20),
    (6, "q5_0", 32, 22),
    (7, "q5_1", 32, 24),
    (8, "q8_0", 32, 34),
    (10, "q2_K", 256, 84),
    (11, "q3_K", 256, 110),
    (12, "q4_K", 256, 144),
    (13, "q5_K", 256, 176),
    (14, "q6_K", 256, 210),
    (16, "iq2_xxs", 256, 66),
    (17, "iq2_xs", 256, 74),
    (18, "iq3_xxs", 256, 98),
    (19, "iq1_s", 256, 50),
    (20, "iq4_nl", 32, 18),
    (21, "iq3_s", 256, 110),
    (22, "iq2_s", 256, 82),
    (23, "iq4_xs", 256, 136),
    (29, "iq1_m", 256, 56),
    (30, "bf16", 1, 2),
    (39, "mxfp4", 32, 17),
];

/// A ggml type's name, or `type N` for ids a whisper model cannot hold.
pub(crate) fn type_name(id: i32) -> TypeName {
    TypeName(id)
}

/// Displays a ggml type id by name.
pub(crate) struct TypeName(i32);

impl std::fmt::Display for TypeName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match TYPES.iter().find(|t| t.0 == self.0) {
            Some(t) => f.write_str(t.1),
            None => write!(f, "type {}", self.0),
        }
    }
}

/// The name of a known type (`"?"` for others).
pub(crate) fn static_type_name(id: i32) -> &'static str {
    TYPES.iter().find(|t| t.0 == id).map_or("?", |t| t.1)
}

/// Block size and bytes per block of a known type.
pub(crate) fn type_layout(id: i32) -> Option<(u64, u64)> {
    TYPES.iter().find(|t| t.0 == id).map(|t| (t.2, t.3))
}

/// `GGML_QNT_VERSION_FACTOR`: `ftype` carries the quantization version in its thousands.
pub(crate) const QNT_VERSION_FACTOR: i32 = crate::sys::GGML_QNT_VERSION_FACTOR as i32;
/// The quantization version the pinned ggml writes (`GGML_QNT_VERSION`), the highest it reads.
pub(crate) const QNT_VERSION_MAX: i32 = crate::sys::GGML_QNT_VERSION as i32;

/// The weight type of a file type (`ggml_ftype_to_ggml_type`), or `None` where ggml would
/// abort (`GGML_ASSERT(wtype != GGML_TYPE_COUNT)`).
pub(crate) fn ftype_to_type(ftype: i32) -> Option<i32> {
    Some(match ftype {
        0 => 0,   // ALL_F32
        1 => 1,   // MOSTLY_F16
        2 => 2,   // Q4_0
        3 => 3,   // Q4_1
        7 => 8,   // Q8_0
        8 => 6,   // Q5_0
        9 => 7,   // Q5_1
        10 => 10, // Q2_K
        11 => 11, // Q3_K
        12 => 12, // Q4_K
        13 => 13, // Q5_K
        14 => 14, // Q6_K
        15 => 16, // IQ2_XXS
        16 => 17, // IQ2_XS
        17 => 18, // IQ3_XXS
        18 => 19, // IQ1_S
        19 => 20, // IQ4_NL
        20 => 21, // IQ3_S
        21 => 22, // IQ2_S
        22 => 23, // IQ4_XS
        23 => 29, // IQ1_M
        24 => 30, // BF16
        25 => 39, // MXFP4
        _ => return None,
    })
}

/// The tensor shapes in terms of the hyperparameters, as messages show them.
pub(crate) const SHAPES: &[&str] = &[
    "[1, n_audio_state]",
    "[3, n_audio_state, n_audio_state]",
    "[3, n_mels, n_audio_state]",
    "[4*n_audio_state, n_audio_state]",
    "[4*n_audio_state]",
    "[4*n_text_state, n_text_state]",
    "[n_audio_state, 4*n_audio_state]",
    "[n_audio_state, n_audio_ctx]",
    "[n_audio_state, n_audio_state]",
    "[n_audio_state]",
    "[n_text_state, 4*n_text_state]",
    "[n_text_state, n_text_ctx]",
    "[n_text_state, n_text_state]",
    "[n_text_state, n_vocab]",
    "[n_text_state]",
    "[4*n_text_state]",
];

/// The index of a shape in [`SHAPES`].
fn shape_id(s: &str) -> super::ShapeFormula {
    super::ShapeFormula(
        SHAPES
            .iter()
            .position(|x| *x == s)
            .expect("shape in the table") as u8,
    )
}

/// A tensor whisper.cpp creates: its name, shape (innermost first, padded with 1) and type.
#[derive(Debug, Clone)]
pub(crate) struct ExpectedTensor {
    pub name: String,
    pub ne: [i64; 3],
    /// The shape in terms of the hyperparameters, for messages.
    pub shape: super::ShapeFormula,
    pub ggml_type: i32,
}

impl ExpectedTensor {
    /// Whether a tensor header's dimensions (`ne`, padded with 1) are this tensor's shape.
    pub(crate) fn has_shape(&self, ne: [i32; 4]) -> bool {
        ne.map(i64::from) == [self.ne[0], self.ne[1], self.ne[2], 1]
    }
}

/// The position of each tensor of `tensors` (an [`expected_tensors`] table), by name.
pub(crate) fn index_by_name(tensors: &[ExpectedTensor]) -> HashMap<&[u8], usize> {
    tensors
        .iter()
        .enumerate()
        .map(|(i, t)| (t.name.as_bytes(), i))
        .collect()
}

/// The kinds of tensor shapes, with how they read in messages.
#[derive(Clone, Copy)]
enum Shape {
    /// `[n_audio_state]` / `[n_text_state]`.
    State(&'static str),
    /// `[4*n_state]`.
    State4(&'static str),
    /// `[n_state, n_state]`.
    Square(&'static str),
    /// `[n_state, 4*n_state]`.
    Up(&'static str),
    /// `[4*n_state, n_state]`.
    Down(&'static str),
}

/// Which of the three type classes a tensor is allocated with.
#[derive(Clone, Copy)]
enum Class {
    /// Always f32.
    F32,
    /// The weight type of `ftype`.
    Weight,
}

const ENC: &str = "n_audio_state";
const DEC: &str = "n_text_state";

/// Per encoder block (`encoder.blocks.N.`), in whisper.cpp's creation order.
const ENCODER_BLOCK: &[(&str, Shape, Class)] = &[
    ("mlp_ln.weight", Shape::State(ENC), Class::F32),
    ("mlp_ln.bias", Shape::State(ENC), Class::F32),
    ("mlp.0.weight", Shape::Up(ENC), Class::Weight),
    ("mlp.0.bias", Shape::State4(ENC), Class::F32),
    ("mlp.2.weight", Shape::Down(ENC), Class::Weight),
    ("mlp.2.bias", Shape::State(ENC), Class::F32),
    ("attn_ln.weight", Shape::State(ENC), Class::F32),
    ("attn_ln.bias", Shape::State(ENC), Class::F32),
    ("attn.query.weight", Shape::Square(ENC), Class::Weight),
    ("attn.query.bias", Shape::State(ENC), Class::F32),
    ("attn.key.weight", Shape::Square(ENC), Class::Weight),
    ("attn.value.weight", Shape::Square(ENC), Class::Weight),
    ("attn.value.bias", Shape::State(ENC), Class::F32),
    ("attn.out.weight", Shape::Square(ENC), Class::Weight),
    ("attn.out.bias", Shape::State(ENC), Class::F32),
];

/// Per decoder block (`decoder.blocks.N.`), in whisper.cpp's creation order.
const DECODER_BLOCK: &[(&str, Shape, Class)] = &[
    ("mlp_ln.weight", Shape::State(DEC), Class::F32),
    ("mlp_ln.bias", Shape::State(DEC), Class::F32),
    ("mlp.0.weight", Shape::Up(DEC), Class::Weight),
    ("mlp.0.bias", Shape::State4(DEC), Class::F32),
    ("mlp.2.weight", Shape::Down(DEC), Class::Weight),
    ("mlp.2.bias", Shape::State(DEC), Class::F32),
    ("attn_ln.weight", Shape::State(DEC), Class::F32),
    ("attn_ln.bias", Shape::State(DEC), Class::F32),
    ("attn.query.weight", Shape::Square(DEC), Class::Weight),
    ("attn.query.bias", Shape::State(DEC), Class::F32),
    ("attn.key.weight", Shape::Square(DEC), Class::Weight),
    ("attn.value.weight", Shape::Square(DEC), Class::Weight),
    ("attn.value.bias", Shape::State(DEC), Class::F32),
    ("attn.out.weight", Shape::Square(DEC), Class::Weight),
    ("attn.out.bias", Shape::State(DEC), Class::F32),
    ("cross_attn_ln.weight", Shape::State(DEC), Class::F32),
    ("cross_attn_ln.bias", Shape::State(DEC), Class::F32),
    ("cross_attn.query.weight", Shape::Square(DEC), Class::Weight),
    ("cross_attn.query.bias", Shape::State(DEC), Class::F32),
    ("cross_attn.key.weight", Shape::Square(DEC), Class::Weight),
    ("cross_attn.value.weight", Shape::Square(DEC), Class::Weight),
    ("cross_attn.value.bias", Shape::State(DEC), Class::F32),
    ("cross_attn.out.weight", Shape::Square(DEC), Class::Weight),
    ("cross_attn.out.bias", Shape::State(DEC), Class::F32),
];

fn shape_of(shape: Shape, n: i64) -> ([i64; 3], &'static str) {
    match shape {
        Shape::State(s) => ([n, 1, 1], s_pick(s, "[n_text_state]", "[n_audio_state]")),
        Shape::State4(s) => (
            [4 * n, 1, 1],
            s_pick(s, "[4*n_text_state]", "[4*n_audio_state]"),
        ),
        Shape::Square(s) => (
            [n, n, 1],
            s_pick(
                s,
                "[n_text_state, n_text_state]",
                "[n_audio_state, n_audio_state]",
            ),
        ),
        Shape::Up(s) => (
            [n, 4 * n, 1],
            s_pick(
                s,
                "[n_text_state, 4*n_text_state]",
                "[n_audio_state, 4*n_audio_state]",
            ),
        ),
        Shape::Down(s) => (
            [4 * n, n, 1],
            s_pick(
                s,
                "[4*n_text_state, n_text_state]",
                "[4*n_audio_state, n_audio_state]",
            ),
        ),
    }
}

fn s_pick(s: &'static str, dec: &'static str, enc: &'static str) -> &'static str {
    if s == ENC {
        enc
    } else {
        dec
    }
}

/// Every tensor `whisper_model_load` creates for the hyperparameters `h` with weight type
/// `wtype`, with the shape and type it allocates (`vtype`, the convolution type, is f32 for f32
/// models and f16 otherwise): the validator's and the converter's target.
pub(crate) fn expected_tensors(h: &super::Hparams, wtype: i32) -> Vec<ExpectedTensor> {
    let (n_audio_layer, n_text_layer) = (h.n_audio_layer as usize, h.n_text_layer as usize);
    let vtype = if wtype == GGML_TYPE_F32 {
        GGML_TYPE_F32
    } else {
        GGML_TYPE_F16
    };
    let n = h.n_audio_state as i64;
    let mut v = Vec::with_capacity(11 + 15 * n_audio_layer + 24 * n_text_layer);
    let mut push = |name: String, ne: [i64; 3], shape: &'static str, ggml_type: i32| {
        v.push(ExpectedTensor {
            name,
            ne,
            shape: shape_id(shape),
            ggml_type,
        })
    };
    let f32 = GGML_TYPE_F32;
    push(
        "encoder.positional_embedding".into(),
        [n, h.n_audio_ctx as i64, 1],
        "[n_audio_state, n_audio_ctx]",
        f32,
    );
    push(
        "encoder.conv1.weight".into(),
        [3, h.n_mels as i64, n],
        "[3, n_mels, n_audio_state]",
        vtype,
    );
    push(
        "encoder.conv1.bias".into(),
        [1, n, 1],
        "[1, n_audio_state]",
        f32,
    );
    push(
        "encoder.conv2.weight".into(),
        [3, n, n],
        "[3, n_audio_state, n_audio_state]",
        vtype,
    );
    push(
        "encoder.conv2.bias".into(),
        [1, n, 1],
        "[1, n_audio_state]",
        f32,
    );
    push(
        "encoder.ln_post.weight".into(),
        [n, 1, 1],
        "[n_audio_state]",
        f32,
    );
    push(
        "encoder.ln_post.bias".into(),
        [n, 1, 1],
        "[n_audio_state]",
        f32,
    );
    let class_type = |c: Class| match c {
        Class::F32 => f32,
        Class::Weight => wtype,
    };
    for i in 0..n_audio_layer {
        for &(suffix, shape, class) in ENCODER_BLOCK {
            let (ne, desc) = shape_of(shape, n);
            push(
                format!("encoder.blocks.{i}.{suffix}"),
                ne,
                desc,
                class_type(class),
            );
        }
    }
    push(
        "decoder.positional_embedding".into(),
        [n, h.n_text_ctx as i64, 1],
        "[n_text_state, n_text_ctx]",
        f32,
    );
    push(
        "decoder.token_embedding.weight".into(),
        [n, h.n_vocab as i64, 1],
        "[n_text_state, n_vocab]",
        wtype,
    );
    push("decoder.ln.weight".into(), [n, 1, 1], "[n_text_state]", f32);
    push("decoder.ln.bias".into(), [n, 1, 1], "[n_text_state]", f32);
    for i in 0..n_text_layer {
        for &(suffix, shape, class) in DECODER_BLOCK {
            let (ne, desc) = shape_of(shape, n);
            push(
                format!("decoder.blocks.{i}.{suffix}"),
                ne,
                desc,
                class_type(class),
            );
        }
    }
    v
}
