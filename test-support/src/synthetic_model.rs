//! A generator of small, synthetic whisper.cpp model files (zero weights, minimal widths) that
//! the validator and whisper.cpp's loader accept. Used by the model tests and to write the fuzz
//! seeds; it holds no real weights.

/// The shape of a synthetic model. `Default` is the smallest one whisper.cpp loads: an
/// English-only vocabulary (51864 rows, which dominate the ~105 KB), one block each side,
/// width 1, one mel band.
#[derive(Debug, Clone)]
pub struct Synth {
    /// Vocabulary size (rows of the token embedding).
    pub n_vocab: i32,
    /// Encoder positions.
    pub n_audio_ctx: i32,
    /// The width of both sides.
    pub n_state: i32,
    /// Attention heads of both sides.
    pub n_head: i32,
    /// Encoder blocks.
    pub n_audio_layer: i32,
    /// Decoder positions.
    pub n_text_ctx: i32,
    /// Decoder blocks.
    pub n_text_layer: i32,
    /// Mel bands.
    pub n_mels: i32,
    /// 0 (f32), 1 (f16) or 2002 (q4_0, needs `n_state % 32 == 0`).
    pub ftype: i32,
    /// Vocabulary entries written (whisper.cpp names the rest up to `n_vocab`).
    pub tokens: Vec<Vec<u8>>,
}

impl Default for Synth {
    fn default() -> Self {
        Synth {
            n_vocab: 51864,
            n_audio_ctx: 4,
            n_state: 1,
            n_head: 1,
            n_audio_layer: 1,
            n_text_ctx: 16,
            n_text_layer: 1,
            n_mels: 1,
            ftype: 1,
            tokens: vec![b"!".to_vec(), b"\"".to_vec(), b"hello".to_vec()],
        }
    }
}

/// One tensor of the table: name, dims innermost first, ggml type.
#[derive(Debug, Clone)]
pub struct Tensor {
    /// whisper.cpp's name.
    pub name: String,
    /// The dimensions, innermost first.
    pub dims: Vec<i32>,
    /// The ggml type id.
    pub ggml_type: i32,
}

impl Tensor {
    /// Bytes of data.
    pub fn nbytes(&self) -> usize {
        let n: usize = self.dims.iter().map(|&d| d as usize).product();
        match self.ggml_type {
            0 => n * 4,
            1 => n * 2,
            2 => n / 32 * 18,
            t => panic!("synthetic models use f32, f16 or q4_0, not {t}"),
        }
    }
}

impl Synth {
    /// The weight type of `ftype`.
    fn wtype(&self) -> i32 {
        match self.ftype % 1000 {
            0 => 0,
            1 => 1,
            2 => 2,
            f => panic!("unsupported synthetic ftype {f}"),
        }
    }

    /// The tensor table, in whisper.cpp's creation order.
    pub fn tensors(&self) -> Vec<Tensor> {
        let n = self.n_state;
        let w = self.wtype();
        let v = if w == 0 { 0 } else { 1 };
        let mut t = Vec::new();
        let mut add = |name: String, dims: &[i32], ty: i32| {
            t.push(Tensor {
                name,
                dims: dims.to_vec(),
                ggml_type: ty,
            })
        };
        add(
            "encoder.positional_embedding".into(),
            &[n, self.n_audio_ctx],
            0,
        );
        add("encoder.conv1.weight".into(), &[3, self.n_mels, n], v);
        add("encoder.conv1.bias".into(), &[1, n], 0);
        add("encoder.conv2.weight".into(), &[3, n, n], v);
        add("encoder.conv2.bias".into(), &[1, n], 0);
        add("encoder.ln_post.weight".into(), &[n], 0);
        add("encoder.ln_post.bias".into(), &[n], 0);
        let block = |prefix: &str, cross: bool, add: &mut dyn FnMut(String, &[i32], i32)| {
            add(format!("{prefix}mlp_ln.weight"), &[n], 0);
            add(format!("{prefix}mlp_ln.bias"), &[n], 0);
            add(format!("{prefix}mlp.0.weight"), &[n, 4 * n], w);
            add(format!("{prefix}mlp.0.bias"), &[4 * n], 0);
            add(format!("{prefix}mlp.2.weight"), &[4 * n, n], w);
            add(format!("{prefix}mlp.2.bias"), &[n], 0);
            let attns: &[&str] = if cross {
                &["attn", "cross_attn"]
            } else {
                &["attn"]
            };
            for a in attns {
                add(format!("{prefix}{a}_ln.weight"), &[n], 0);
                add(format!("{prefix}{a}_ln.bias"), &[n], 0);
                add(format!("{prefix}{a}.query.weight"), &[n, n], w);
                add(format!("{prefix}{a}.query.bias"), &[n], 0);
                add(format!("{prefix}{a}.key.weight"), &[n, n], w);
                add(format!("{prefix}{a}.value.weight"), &[n, n], w);
                add(format!("{prefix}{a}.value.bias"), &[n], 0);
                add(format!("{prefix}{a}.out.weight"), &[n, n], w);
                add(format!("{prefix}{a}.out.bias"), &[n], 0);
            }
        };
        for i in 0..self.n_audio_layer {
            block(&format!("encoder.blocks.{i}."), false, &mut add);
        }
        add(
            "decoder.positional_embedding".into(),
            &[n, self.n_text_ctx],
            0,
        );
        add(
            "decoder.token_embedding.weight".into(),
            &[n, self.n_vocab],
            w,
        );
        add("decoder.ln.weight".into(), &[n], 0);
        add("decoder.ln.bias".into(), &[n], 0);
        for i in 0..self.n_text_layer {
            block(&format!("decoder.blocks.{i}."), true, &mut add);
        }
        t
    }

    /// The header, mel filters and vocabulary.
    pub fn head(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let i32s = |out: &mut Vec<u8>, v: &[i32]| {
            for x in v {
                out.extend_from_slice(&x.to_le_bytes());
            }
        };
        i32s(&mut out, &[0x6767_6d6c]);
        i32s(
            &mut out,
            &[
                self.n_vocab,
                self.n_audio_ctx,
                self.n_state,
                self.n_head,
                self.n_audio_layer,
                self.n_text_ctx,
                self.n_state,
                self.n_head,
                self.n_text_layer,
                self.n_mels,
                self.ftype,
            ],
        );
        i32s(&mut out, &[self.n_mels, 201]);
        for k in 0..self.n_mels * 201 {
            out.extend_from_slice(&(k as f32 * 1e-3).to_le_bytes());
        }
        i32s(&mut out, &[self.tokens.len() as i32]);
        for tok in &self.tokens {
            i32s(&mut out, &[tok.len() as i32]);
            out.extend_from_slice(tok);
        }
        out
    }

    /// One tensor record: header, name and zero data.
    pub fn tensor_record(t: &Tensor) -> Vec<u8> {
        let mut out = Vec::new();
        for x in [t.dims.len() as i32, t.name.len() as i32, t.ggml_type] {
            out.extend_from_slice(&x.to_le_bytes());
        }
        for d in &t.dims {
            out.extend_from_slice(&d.to_le_bytes());
        }
        out.extend_from_slice(t.name.as_bytes());
        out.resize(out.len() + t.nbytes(), 0);
        out
    }

    /// The whole file.
    pub fn build(&self) -> Vec<u8> {
        let mut out = self.head();
        for t in self.tensors() {
            out.extend_from_slice(&Self::tensor_record(&t));
        }
        out
    }

    /// The file with each tensor record passed through `edit` first (return `None` to drop it).
    pub fn build_with(&self, mut edit: impl FnMut(&Tensor, Vec<u8>) -> Option<Vec<u8>>) -> Vec<u8> {
        let mut out = self.head();
        for t in self.tensors() {
            if let Some(rec) = edit(&t, Self::tensor_record(&t)) {
                out.extend_from_slice(&rec);
            }
        }
        out
    }
}
