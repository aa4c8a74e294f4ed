//! Where each CTranslate2 Whisper variable goes in a whisper.cpp model.
//!
//! CTranslate2 fuses some projections that whisper.cpp keeps apart: self-attention stores
//! query, key and value as one `3d × d` matrix (`self_attention/linear_0`, in that order), and
//! cross-attention stores key and value as one `2d × d` matrix (`attention/linear_1`). Splitting
//! them is a matter of taking row ranges, which are contiguous in the row-major data, so every
//! whisper.cpp tensor is one contiguous slice of one CTranslate2 variable. Nothing needs a
//! transpose: both sides store `[out, in]` row-major, and ggml lists the dimensions reversed.
//!
//! CTranslate2 gives the key projections a bias (all zeros for Whisper); whisper.cpp's have
//! none and it rejects tensors it does not know, so the key bias is left out. That is exact for
//! any values: a key bias adds `q · b` to every score of a query, the same for all keys, which
//! softmax cancels.

use std::collections::{HashMap, HashSet};
use std::ops::Range;

use super::ct2::{DType, Model, Variable};
use super::{ConvertError, Hparams};
use crate::ggml::layout::expected_tensors;
use crate::ggml::GgmlType;

/// The `ftype` written: large weights in f16, as whisper.cpp's own converter does by default.
pub(crate) const FTYPE_F16: i32 = 1;

/// One tensor of the output and where its data comes from.
pub(crate) struct Planned<'a> {
    /// whisper.cpp's name.
    pub(crate) name: String,
    /// Shape in PyTorch order (outermost first).
    pub(crate) shape: Vec<i32>,
    /// The type written.
    pub(crate) ty: GgmlType,
    /// The CTranslate2 variable the data comes from.
    pub(crate) source: String,
    /// Its element type.
    pub(crate) dtype: DType,
    /// The slice of its data.
    pub(crate) data: &'a [u8],
}

/// The output's hyper parameters and tensors, in writing order.
pub(crate) struct Plan<'a> {
    pub(crate) hparams: Hparams,
    pub(crate) tensors: Vec<Planned<'a>>,
}

/// Variables that describe the model rather than hold weights; ignored (as is every other
/// scalar, which CTranslate2 uses for such settings).
const METADATA: &[&str] = &["decoder/alignment_heads", "decoder/alignment_layer"];

/// The output projection, which Whisper ties to the token embedding (CTranslate2 stores it as an
/// alias of `decoder/embeddings/weight`).
const PROJECTION: &str = "decoder/projection/weight";

/// Maps the model's variables to whisper.cpp's tensors, checking every shape and type.
pub(crate) fn plan<'a>(model: &Model<'a>) -> Result<Plan<'a>, ConvertError> {
    let mut p = Planner {
        model,
        used: HashSet::new(),
        tensors: Vec::new(),
    };

    // The dimensions, from the variables that define them.
    let emb = p.float_var("decoder/embeddings/weight")?;
    let (n_vocab, d) = rank2(emb)?;
    let enc_pos = p.float_var("encoder/position_encodings/encodings")?;
    let (n_audio_ctx, d_audio) = rank2(enc_pos)?;
    let dec_pos = p.float_var("decoder/position_encodings/encodings")?;
    let (n_text_ctx, d_text) = rank2(dec_pos)?;
    let conv1 = p.float_var("encoder/conv1/weight")?;
    let n_mels = match conv1.shape[..] {
        [_, n, _] => n,
        _ => return Err(shape_error(conv1, &[d, 0, 3])),
    };
    if d_audio != d || d_text != d {
        return Err(ConvertError::Hparams(format!(
            "embedding width {d}, encoder positions {d_audio}, decoder positions {d_text}: \
             whisper.cpp needs one model width"
        )));
    }
    let n_audio_head = p.heads("encoder/num_heads", d)?;
    let n_text_head = p.heads("decoder/num_heads", d)?;
    let n_audio_layer = count_layers(model, "encoder/")?;
    let n_text_layer = count_layers(model, "decoder/")?;
    for (what, v) in [
        ("n_vocab", n_vocab),
        ("model width", d),
        ("n_audio_ctx", n_audio_ctx),
        ("n_text_ctx", n_text_ctx),
        ("n_mels", n_mels),
        ("encoder layers", n_audio_layer),
        ("decoder layers", n_text_layer),
    ] {
        if v == 0 || 4 * v > i32::MAX as usize {
            return Err(ConvertError::Hparams(format!("{what} = {v}")));
        }
    }
    let hparams = Hparams {
        n_vocab: n_vocab as i32,
        n_audio_ctx: n_audio_ctx as i32,
        n_audio_state: d as i32,
        n_audio_head,
        n_audio_layer: n_audio_layer as i32,
        n_text_ctx: n_text_ctx as i32,
        n_text_state: d as i32,
        n_text_head,
        n_text_layer: n_text_layer as i32,
        n_mels: n_mels as i32,
        ftype: FTYPE_F16,
    };

    // Encoder.
    p.whole(
        "encoder.conv1.weight",
        "encoder/conv1/weight",
        &[d, n_mels, 3],
    )?;
    p.conv_bias("encoder.conv1.bias", "encoder/conv1/bias", d)?;
    p.whole("encoder.conv2.weight", "encoder/conv2/weight", &[d, d, 3])?;
    p.conv_bias("encoder.conv2.bias", "encoder/conv2/bias", d)?;
    p.whole_f32(
        "encoder.positional_embedding",
        "encoder/position_encodings/encodings",
        &[n_audio_ctx, d],
    )?;
    for i in 0..n_audio_layer {
        let src = format!("encoder/layer_{i}");
        let dst = format!("encoder.blocks.{i}");
        p.self_attention(&src, &dst, d)?;
        p.ffn(&src, &dst, d)?;
    }
    p.layer_norm("encoder.ln_post", "encoder/layer_norm", d)?;

    // Decoder.
    p.whole_f32(
        "decoder.positional_embedding",
        "decoder/position_encodings/encodings",
        &[n_text_ctx, d],
    )?;
    p.whole(
        "decoder.token_embedding.weight",
        "decoder/embeddings/weight",
        &[n_vocab, d],
    )?;
    for i in 0..n_text_layer {
        let src = format!("decoder/layer_{i}");
        let dst = format!("decoder.blocks.{i}");
        p.self_attention(&src, &dst, d)?;
        p.cross_attention(&src, &dst, d)?;
        p.ffn(&src, &dst, d)?;
    }
    p.layer_norm("decoder.ln", "decoder/layer_norm", d)?;

    p.check_leftovers()?;
    let plan = Plan {
        hparams,
        tensors: p.tensors,
    };
    check_against_format(&plan)?;
    Ok(plan)
}

/// The plan against the format: hyperparameters the validator accepts, and exactly the tensors
/// whisper.cpp creates for them (the table in [`crate::ggml::layout`]), each with the shape and
/// type it allocates, in no other order than the file needs (any). A model that passes, with a
/// vocabulary `vocabulary_bytes` accepts, loads.
fn check_against_format(plan: &Plan<'_>) -> Result<(), ConvertError> {
    let h = &plan.hparams;
    let wtype = crate::model::check_hparams(h)
        .map_err(|d| ConvertError::Hparams(format!("whisper.cpp would refuse the model: {d}")))?;
    let expected = expected_tensors(h, wtype);
    let planned: HashMap<&str, &Planned<'_>> =
        plan.tensors.iter().map(|t| (t.name.as_str(), t)).collect();
    for e in &expected {
        let t = planned.get(e.name.as_str()).ok_or_else(|| {
            ConvertError::Format(format!("no source for whisper.cpp's tensor {}", e.name))
        })?;
        // ggml lists dimensions innermost first, padded with 1; the plan outermost first.
        let mut ne = [1i64; 3];
        for (d, &n) in ne.iter_mut().zip(t.shape.iter().rev()) {
            *d = i64::from(n);
        }
        if ne != e.ne || t.ty.id() != e.ggml_type {
            return Err(ConvertError::Format(format!(
                "tensor {} would be written as {:?} {:?}; whisper.cpp allocates {:?} of type {}",
                e.name, t.shape, t.ty, e.ne, e.ggml_type
            )));
        }
    }
    if planned.len() != expected.len() || plan.tensors.len() != expected.len() {
        return Err(ConvertError::Format(format!(
            "{} tensors planned, whisper.cpp creates {}",
            plan.tensors.len(),
            expected.len()
        )));
    }
    Ok(())
}

struct Planner<'m, 'a> {
    model: &'m Model<'a>,
    used: HashSet<String>,
    tensors: Vec<Planned<'a>>,
}

impl<'m, 'a> Planner<'m, 'a> {
    /// A variable that must exist, marked as used.
    fn var(&mut self, name: &str) -> Result<&'m Variable<'a>, ConvertError> {
        let v = self
            .model
            .get(name)
            .ok_or_else(|| ConvertError::MissingVariable(name.to_string()))?;
        self.used.insert(v.name.clone());
        Ok(v)
    }

    /// A variable that must exist and hold floating-point values.
    fn float_var(&mut self, name: &str) -> Result<&'m Variable<'a>, ConvertError> {
        let v = self.var(name)?;
        match v.dtype {
            DType::F32 | DType::F16 | DType::BF16 => Ok(v),
            DType::I8 if self.is_quantized(name) => Err(ConvertError::Quantized {
                name: v.name.clone(),
            }),
            other => Err(ConvertError::UnsupportedDtype {
                name: v.name.clone(),
                dtype: other.id(),
            }),
        }
    }

    /// Whether `name` has an int8 quantization scale beside it.
    fn is_quantized(&self, name: &str) -> bool {
        let scale = match name.strip_suffix("weight") {
            Some(prefix) => format!("{prefix}weight_scale"),
            None => format!("{name}_scale"),
        };
        self.model.get(&scale).is_some()
    }

    /// A float variable of exactly the given shape.
    fn shaped(&mut self, name: &str, shape: &[usize]) -> Result<&'m Variable<'a>, ConvertError> {
        let v = self.float_var(name)?;
        if v.shape != shape {
            return Err(shape_error(v, shape));
        }
        Ok(v)
    }

    /// Emits rows `rows` (of the first dimension) of `v` under `name`, with shape `shape`.
    fn emit(
        &mut self,
        name: String,
        v: &'m Variable<'a>,
        rows: Range<usize>,
        shape: &[usize],
        ty: GgmlType,
    ) {
        let row_elems = v.shape.iter().skip(1).product::<usize>();
        let size = v.dtype.size();
        let data = &v.data[rows.start * row_elems * size..rows.end * row_elems * size];
        debug_assert_eq!(data.len() / size, shape.iter().product::<usize>());
        self.tensors.push(Planned {
            name,
            // Every dimension was checked against limits that fit an i32 in `plan`.
            shape: shape.iter().map(|&d| d as i32).collect(),
            ty,
            source: v.name.clone(),
            dtype: v.dtype,
            data,
        });
    }

    /// A weight copied whole: f16 for matrices and convolution kernels, f32 for vectors.
    fn whole(&mut self, dst: &str, src: &str, shape: &[usize]) -> Result<(), ConvertError> {
        let v = self.shaped(src, shape)?;
        let ty = if shape.len() >= 2 {
            GgmlType::F16
        } else {
            GgmlType::F32
        };
        self.emit(dst.to_string(), v, 0..shape[0], shape, ty);
        Ok(())
    }

    /// A tensor copied whole as f32 (the positional embeddings).
    fn whole_f32(&mut self, dst: &str, src: &str, shape: &[usize]) -> Result<(), ConvertError> {
        let v = self.shaped(src, shape)?;
        self.emit(dst.to_string(), v, 0..shape[0], shape, GgmlType::F32);
        Ok(())
    }

    /// A convolution bias: `(n)` in CTranslate2, `(n, 1)` in f32 for whisper.cpp.
    fn conv_bias(&mut self, dst: &str, src: &str, n: usize) -> Result<(), ConvertError> {
        let v = self.shaped(src, &[n])?;
        self.emit(dst.to_string(), v, 0..n, &[n, 1], GgmlType::F32);
        Ok(())
    }

    /// A linear layer whose weight and bias are taken whole.
    fn linear(&mut self, dst: &str, src: &str, out: usize, inp: usize) -> Result<(), ConvertError> {
        self.whole(
            &format!("{dst}.weight"),
            &format!("{src}/weight"),
            &[out, inp],
        )?;
        self.whole(&format!("{dst}.bias"), &format!("{src}/bias"), &[out])
    }

    /// A layer norm: `gamma`/`beta` become `weight`/`bias`.
    fn layer_norm(&mut self, dst: &str, src: &str, d: usize) -> Result<(), ConvertError> {
        self.whole(&format!("{dst}.weight"), &format!("{src}/gamma"), &[d])?;
        self.whole(&format!("{dst}.bias"), &format!("{src}/beta"), &[d])
    }

    /// Projections fused row-wise in one linear layer of `parts.len() * d` outputs: each part
    /// names its output (without `.weight`) and whether its bias is written.
    fn split_linear(
        &mut self,
        src: &str,
        d: usize,
        parts: &[(&str, bool)],
    ) -> Result<(), ConvertError> {
        let n = parts.len() * d;
        let w = self.shaped(&format!("{src}/weight"), &[n, d])?;
        let b = self.shaped(&format!("{src}/bias"), &[n])?;
        for (k, &(dst, with_bias)) in parts.iter().enumerate() {
            let rows = k * d..(k + 1) * d;
            self.emit(
                format!("{dst}.weight"),
                w,
                rows.clone(),
                &[d, d],
                GgmlType::F16,
            );
            if with_bias {
                self.emit(format!("{dst}.bias"), b, rows, &[d], GgmlType::F32);
            }
        }
        Ok(())
    }

    /// Self-attention: fused query/key/value, output projection, layer norm.
    fn self_attention(&mut self, src: &str, dst: &str, d: usize) -> Result<(), ConvertError> {
        let s = format!("{src}/self_attention");
        self.split_linear(
            &format!("{s}/linear_0"),
            d,
            &[
                (&format!("{dst}.attn.query"), true),
                (&format!("{dst}.attn.key"), false),
                (&format!("{dst}.attn.value"), true),
            ],
        )?;
        self.linear(&format!("{dst}.attn.out"), &format!("{s}/linear_1"), d, d)?;
        self.layer_norm(&format!("{dst}.attn_ln"), &format!("{s}/layer_norm"), d)
    }

    /// Cross-attention: query, fused key/value, output projection, layer norm.
    fn cross_attention(&mut self, src: &str, dst: &str, d: usize) -> Result<(), ConvertError> {
        let s = format!("{src}/attention");
        self.linear(
            &format!("{dst}.cross_attn.query"),
            &format!("{s}/linear_0"),
            d,
            d,
        )?;
        self.split_linear(
            &format!("{s}/linear_1"),
            d,
            &[
                (&format!("{dst}.cross_attn.key"), false),
                (&format!("{dst}.cross_attn.value"), true),
            ],
        )?;
        self.linear(
            &format!("{dst}.cross_attn.out"),
            &format!("{s}/linear_2"),
            d,
            d,
        )?;
        self.layer_norm(
            &format!("{dst}.cross_attn_ln"),
            &format!("{s}/layer_norm"),
            d,
        )
    }

    /// The feed-forward block: `d → 4d → d`, and its layer norm.
    fn ffn(&mut self, src: &str, dst: &str, d: usize) -> Result<(), ConvertError> {
        let s = format!("{src}/ffn");
        self.linear(&format!("{dst}.mlp.0"), &format!("{s}/linear_0"), 4 * d, d)?;
        self.linear(&format!("{dst}.mlp.2"), &format!("{s}/linear_1"), d, 4 * d)?;
        self.layer_norm(&format!("{dst}.mlp_ln"), &format!("{s}/layer_norm"), d)
    }

    /// The head count stored in `name`, which must divide the model width.
    fn heads(&mut self, name: &str, d: usize) -> Result<i32, ConvertError> {
        let v = self.var(name)?;
        let n = v.int_scalar()?;
        if n <= 0 || n > i64::from(i32::MAX) || d % n as usize != 0 {
            return Err(ConvertError::Hparams(format!(
                "{name} = {n} does not divide the model width {d}"
            )));
        }
        Ok(n as i32)
    }

    /// Rejects weights left unplaced, so that no part of the model is silently dropped.
    fn check_leftovers(&self) -> Result<(), ConvertError> {
        for v in &self.model.variables {
            if self.used.contains(&v.name) || v.shape.is_empty() || METADATA.contains(&&*v.name) {
                continue;
            }
            if v.name == PROJECTION {
                // Stored as a variable rather than an alias: fine while it is the embedding.
                let emb = self.model.get("decoder/embeddings/weight");
                if emb.is_some_and(|e| e.data == v.data && e.dtype == v.dtype) {
                    continue;
                }
                return Err(ConvertError::Format(format!(
                    "{PROJECTION} differs from the token embedding; whisper.cpp ties the two"
                )));
            }
            if v.name.ends_with("_scale") {
                return Err(ConvertError::Quantized {
                    name: v.name.clone(),
                });
            }
            return Err(ConvertError::UnexpectedVariable(v.name.clone()));
        }
        Ok(())
    }
}

/// The number of `<prefix>layer_<n>/...` blocks: one more than the highest `n`. Names must match
/// exactly: `encoder/layer_norm/...` is not a block.
fn count_layers(model: &Model<'_>, prefix: &str) -> Result<usize, ConvertError> {
    let mut count = 0usize;
    for v in &model.variables {
        let Some(rest) = v
            .name
            .strip_prefix(prefix)
            .and_then(|r| r.strip_prefix("layer_"))
        else {
            continue;
        };
        let Some((index, _)) = rest.split_once('/') else {
            continue;
        };
        if index.is_empty() || !index.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let n: usize = index.parse().ok().filter(|&n| n < 100_000).ok_or_else(|| {
            ConvertError::Format(format!("layer index too large in {:?}", v.name))
        })?;
        count = count.max(n + 1);
    }
    Ok(count)
}

/// The two dimensions of a matrix variable.
fn rank2(v: &Variable<'_>) -> Result<(usize, usize), ConvertError> {
    match v.shape[..] {
        [a, b] => Ok((a, b)),
        _ => Err(ConvertError::Format(format!(
            "variable {:?} should be a matrix, has shape {:?}",
            v.name, v.shape
        ))),
    }
}

fn shape_error(v: &Variable<'_>, expected: &[usize]) -> ConvertError {
    ConvertError::Shape {
        name: v.name.clone(),
        expected: expected.to_vec(),
        found: v.shape.clone(),
    }
}
