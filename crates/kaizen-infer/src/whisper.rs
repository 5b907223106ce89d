//! Whisper's audio encoder and text decoder (Hugging Face weight names).
//!
//! candle-transformers' Whisper is the reference this follows (same weights, same layer order;
//! the tests check both against it). It is kaizen's own for three reasons:
//!
//! - **GELU**: Whisper is trained with the exact (erf) GELU; candle-transformers uses the tanh
//!   approximation, on one thread, in scalar code. Here it is the exact one, vectorized
//!   (`kaizen_kernels::gelu_erf`).
//! - **Encoder attention** runs one head at a time: a head's 1500 × 1500 scores are 9 MB, which
//!   the allocator reuses, where all heads at once are a fresh 54 MB mapping per layer whose
//!   page faults cost more than the softmax over it.
//! - **Decoder caches**: candle-transformers' decoder keeps no self-attention cache, so step `t`
//!   of a window runs all `t` tokens through every layer again, and the cost of a window grows
//!   with the square of its length. Here each step runs only the new token:
//!
//! - **Self-attention** keys and values of earlier tokens are kept per layer, preallocated and
//!   appended in place (candle-nn's `KvCache`).
//! - **Cross-attention** keys and values of the encoder's frames are projected once per window
//!   ([`Decoder::start`]), as one product for k and v together.
//! - The q, k and v projections of self-attention are one matrix.
//! - The logits are computed only for the rows asked for, through an int8 (Q8_0) copy of the
//!   token embedding: the output projection is the largest matrix of the model (51864 × 384
//!   for tiny), read once per token, and its int8 copy is a quarter of the bytes (CTranslate2's
//!   int8 models do the same).

use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{D, Device, Module, Result, Tensor};
use candle_nn::kv_cache::KvCache;
use candle_nn::{Conv1d, Conv1dConfig, LayerNorm, VarBuilder};
use candle_transformers::models::whisper::Config;

use crate::attention::attend_in_place;
use crate::dense::Dense;

fn layer_norm(size: usize, vb: VarBuilder) -> Result<LayerNorm> {
    Ok(LayerNorm::new(
        vb.get(size, "weight")?,
        vb.get(size, "bias")?,
        1e-5,
    ))
}

/// The projections `names` of the same input (each `size × size`, `k_proj` without a bias)
/// stacked into one matrix.
fn stacked(size: usize, names: &[&str], vb: &VarBuilder) -> Result<Dense> {
    let parts = names
        .iter()
        .map(|name| {
            let vb = vb.pp(name);
            let bias = if *name == "k_proj" {
                Tensor::zeros(size, candle_core::DType::F32, vb.device())?
            } else {
                vb.get(size, "bias")?
            };
            Ok((vb.get((size, size), "weight")?, bias))
        })
        .collect::<Result<Vec<_>>>()?;
    Dense::stacked(parts)
}

/// The activation of both halves: the exact GELU (the tests swap in candle's tanh form to
/// compare with candle-transformers).
type Activation = fn(&Tensor) -> Result<Tensor>;

fn gelu(x: &Tensor) -> Result<Tensor> {
    kaizen_kernels::gelu_erf(x)
}

fn conv1d(inputs: usize, outputs: usize, stride: usize, vb: VarBuilder) -> Result<Conv1d> {
    let config = Conv1dConfig {
        padding: 1,
        stride,
        dilation: 1,
        groups: 1,
        cudnn_fwd_algo: None,
    };
    Ok(Conv1d::new(
        vb.get((outputs, inputs, 3), "weight")?,
        Some(vb.get(outputs, "bias")?),
        config,
    ))
}

/// The width of each of `n_head` attention heads over `d` values.
fn head_dim(d: usize, n_head: usize) -> Result<usize> {
    if n_head == 0 || !d.is_multiple_of(n_head) {
        candle_core::bail!("{n_head} attention heads do not divide a width of {d}");
    }
    Ok(d / n_head)
}

/// Whisper's sinusoidal positions, `(length, channels)`: sines then cosines.
fn sinusoids(length: usize, channels: usize, device: &Device) -> Result<Tensor> {
    let half = channels / 2;
    let increment = 10_000f32.ln() / (half.max(2) - 1) as f32;
    let mut values = Vec::with_capacity(length * channels);
    for t in 0..length {
        let angles = (0..half).map(|i| t as f32 * (-(i as f32) * increment).exp());
        values.extend(angles.clone().map(f32::sin));
        values.extend(angles.map(f32::cos));
    }
    Tensor::from_vec(values, (length, channels), device)
}

/// A block's feed-forward half: `x + fc2(act(fc1(ln(x))))`, the same in both halves.
#[derive(Debug, Clone)]
struct Mlp {
    ln: LayerNorm,
    fc1: Dense,
    fc2: Dense,
}

impl Mlp {
    fn load(d: usize, vb: &VarBuilder) -> Result<Self> {
        Ok(Mlp {
            ln: layer_norm(d, vb.pp("final_layer_norm"))?,
            fc1: Dense::load(&[vb.pp("fc1")], d, 4 * d)?,
            fc2: Dense::load(&[vb.pp("fc2")], 4 * d, d)?,
        })
    }

    /// `x` with the block's feed-forward output added.
    fn residual(&self, x: Tensor, act: Activation) -> Result<Tensor> {
        let h = act(&self.fc1.forward(&self.ln.forward(&x)?)?)?;
        x + self.fc2.forward(&h)?
    }
}

#[derive(Debug, Clone)]
struct EncoderBlock {
    attn_ln: LayerNorm,
    /// q, k and v stacked: `3 · d` rows.
    qkv: Dense,
    out: Dense,
    mlp: Mlp,
}

/// The audio encoder's weights, shared by every transcription.
#[derive(Debug, Clone)]
pub(crate) struct Encoder {
    conv1: Conv1d,
    conv2: Conv1d,
    /// `(n_audio_ctx, d)`.
    positions: Tensor,
    blocks: Vec<EncoderBlock>,
    ln_post: LayerNorm,
    n_head: usize,
    head_dim: usize,
    activation: Activation,
}

impl Encoder {
    /// Loads `model.encoder.*` of a Hugging Face Whisper checkpoint (`vb` at the root).
    pub(crate) fn load(vb: &VarBuilder, config: &Config) -> Result<Self> {
        let vb = vb.pp("model.encoder");
        let d = config.d_model;
        let n_head = config.encoder_attention_heads;
        let head_dim = head_dim(d, n_head)?;
        let blocks = (0..config.encoder_layers)
            .map(|i| {
                let vb = vb.pp(format!("layers.{i}"));
                let attn = vb.pp("self_attn");
                Ok(EncoderBlock {
                    attn_ln: layer_norm(d, vb.pp("self_attn_layer_norm"))?,
                    qkv: stacked(d, &["q_proj", "k_proj", "v_proj"], &attn)?,
                    out: Dense::load(&[attn.pp("out_proj")], d, d)?,
                    mlp: Mlp::load(d, &vb)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Encoder {
            conv1: conv1d(config.num_mel_bins, d, 1, vb.pp("conv1"))?,
            conv2: conv1d(d, d, 2, vb.pp("conv2"))?,
            positions: sinusoids(config.max_source_positions, d, vb.device())?,
            blocks,
            ln_post: layer_norm(d, vb.pp("layer_norm"))?,
            n_head,
            head_dim,
            activation: gelu,
        })
    }

    /// A window of log-mel frames, `(1, n_mels, frames)`, to the features the decoder attends
    /// to, `(1, frames / 2, d)`.
    pub(crate) fn forward(&self, mel: &Tensor) -> Result<Tensor> {
        let act = self.activation;
        let x = act(&self.conv1.forward(mel)?)?;
        let x = act(&self.conv2.forward(&x)?)?;
        let x = x.squeeze(0)?.t()?.contiguous()?;
        let (frames, d) = x.dims2()?;
        if frames > self.positions.dim(0)? {
            candle_core::bail!(
                "{frames} frames exceed the encoder's {} positions",
                self.positions.dim(0)?
            );
        }
        let mut x = x.add(&self.positions.narrow(0, 0, frames)?)?;
        let scale = 1.0 / (self.head_dim as f64).sqrt();
        for block in &self.blocks {
            let qkv = block.qkv.forward(&block.attn_ln.forward(&x)?)?;
            let heads = (0..self.n_head)
                .map(|h| {
                    let part = |which: usize| {
                        qkv.narrow(1, which * d + h * self.head_dim, self.head_dim)?
                            .contiguous()
                    };
                    let q = (part(0)? * scale)?;
                    let att = candle_nn::ops::softmax_last_dim(&q.matmul(&part(1)?.t()?)?)?;
                    att.matmul(&part(2)?)
                })
                .collect::<Result<Vec<_>>>()?;
            x = (x + block.out.forward(&Tensor::cat(&heads, D::Minus1)?)?)?;
            x = block.mlp.residual(x, act)?;
        }
        self.ln_post.forward(&x)?.unsqueeze(0)
    }
}

#[derive(Debug, Clone)]
struct Block {
    self_ln: LayerNorm,
    /// q, k and v of self-attention, stacked: `3 · d` rows.
    self_qkv: Dense,
    self_out: Dense,
    cross_ln: LayerNorm,
    cross_q: Dense,
    /// k and v of cross-attention, stacked: `2 · d` rows.
    cross_kv: Dense,
    cross_out: Dense,
    mlp: Mlp,
}

/// The decoder's weights, shared by every transcription.
#[derive(Debug, Clone)]
pub(crate) struct Decoder {
    /// `(vocab, d)`: looked up for the input tokens.
    embedding: Tensor,
    /// The same matrix in int8 (Q8_0), for the logits.
    output: std::sync::Arc<QMatMul>,
    /// `(n_text_ctx, d)`.
    positions: Tensor,
    blocks: Vec<Block>,
    ln: LayerNorm,
    n_head: usize,
    head_dim: usize,
    activation: Activation,
}

/// What one window's decoding remembers between steps.
pub(crate) struct DecoderState {
    self_kv: Vec<KvCache>,
    /// Per layer: the frames' keys and values, `(heads, frames, head_dim)` each.
    cross_kv: Vec<(Tensor, Tensor)>,
}

impl DecoderState {
    /// The number of tokens already decoded.
    pub(crate) fn len(&self) -> usize {
        self.self_kv.first().map_or(0, |c| c.current_seq_len())
    }
}

impl Decoder {
    /// Loads `model.decoder.*` of a Hugging Face Whisper checkpoint (`vb` at the root).
    pub(crate) fn load(vb: &VarBuilder, config: &Config) -> Result<Self> {
        let vb = vb.pp("model.decoder");
        let d = config.d_model;
        let n_head = config.decoder_attention_heads;
        let head_dim = head_dim(d, n_head)?;
        let embedding = vb.get((config.vocab_size, d), "embed_tokens.weight")?;
        // Q8_0 packs rows in blocks of 32 values; another width keeps the f32 matrix.
        let output = if d.is_multiple_of(GgmlDType::Q8_0.block_size()) {
            QMatMul::from_qtensor(QTensor::quantize(&embedding, GgmlDType::Q8_0)?)?
        } else {
            QMatMul::Tensor(embedding.clone())
        };
        let positions = vb.get((config.max_target_positions, d), "embed_positions.weight")?;
        let blocks = (0..config.decoder_layers)
            .map(|i| {
                let vb = vb.pp(format!("layers.{i}"));
                let self_attn = vb.pp("self_attn");
                let cross_attn = vb.pp("encoder_attn");
                Ok(Block {
                    self_ln: layer_norm(d, vb.pp("self_attn_layer_norm"))?,
                    self_qkv: stacked(d, &["q_proj", "k_proj", "v_proj"], &self_attn)?,
                    self_out: Dense::load(&[self_attn.pp("out_proj")], d, d)?,
                    cross_ln: layer_norm(d, vb.pp("encoder_attn_layer_norm"))?,
                    cross_q: Dense::load(&[cross_attn.pp("q_proj")], d, d)?,
                    cross_kv: stacked(d, &["k_proj", "v_proj"], &cross_attn)?,
                    cross_out: Dense::load(&[cross_attn.pp("out_proj")], d, d)?,
                    mlp: Mlp::load(d, &vb)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Decoder {
            embedding,
            output: std::sync::Arc::new(output),
            positions,
            blocks,
            ln: layer_norm(d, vb.pp("layer_norm"))?,
            n_head,
            head_dim,
            activation: gelu,
        })
    }

    /// A window's state: the cross-attention keys and values of the encoder's `features`,
    /// `(1, frames, d)`, and empty self-attention caches.
    pub(crate) fn start(&self, features: &Tensor) -> Result<DecoderState> {
        let features = features.squeeze(0)?;
        let frames = features.dim(0)?;
        let d = self.n_head * self.head_dim;
        let cross_kv = self
            .blocks
            .iter()
            .map(|block| {
                let kv = block.cross_kv.forward(&features)?;
                let k = self.heads(&kv.narrow(1, 0, d)?, frames)?;
                let v = self.heads(&kv.narrow(1, d, d)?, frames)?;
                Ok((k, v))
            })
            .collect::<Result<Vec<_>>>()?;
        let capacity = self.positions.dim(0)?;
        Ok(DecoderState {
            self_kv: (0..self.blocks.len())
                .map(|_| KvCache::new(1, capacity))
                .collect(),
            cross_kv,
        })
    }

    /// `(rows, d)` as `(heads, rows, head_dim)`.
    fn heads(&self, x: &Tensor, rows: usize) -> Result<Tensor> {
        x.reshape((rows, self.n_head, self.head_dim))?
            .transpose(0, 1)?
            .contiguous()
    }

    /// `(heads, rows, head_dim)` back to `(rows, d)`.
    fn merge(&self, x: &Tensor, rows: usize) -> Result<Tensor> {
        x.transpose(0, 1)?
            .reshape((rows, self.n_head * self.head_dim))
    }

    /// Attention of `q` (`(heads, rows, head_dim)`, already scaled) over `k` and `v`, as
    /// `(rows, d)`. One token reads the keys and values in place (products would copy them at
    /// every step); several take the products, under `mask`.
    fn attend(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        mask: Option<&Tensor>,
        rows: usize,
    ) -> Result<Tensor> {
        if rows == 1
            && let Some(y) = attend_in_place(q, k, v, 1.0)
        {
            return y;
        }
        let att = q.matmul(&k.t()?)?;
        let att = match mask {
            Some(mask) => att.broadcast_add(mask)?,
            None => att,
        };
        let y = candle_nn::ops::softmax_last_dim(&att)?.matmul(v)?;
        self.merge(&y, rows)
    }

    /// Runs `ids`, the tokens after those already in `state`, and answers their hidden states
    /// after the final layer norm, `(ids.len(), d)`.
    pub(crate) fn forward(&self, ids: &[u32], state: &mut DecoderState) -> Result<Tensor> {
        let rows = ids.len();
        let start = state.len();
        let device = self.embedding.device();
        if start + rows > self.positions.dim(0)? {
            candle_core::bail!(
                "{} tokens exceed the decoder's {} positions",
                start + rows,
                self.positions.dim(0)?
            );
        }
        let ids = Tensor::new(ids, device)?;
        let mut x = self
            .embedding
            .embedding(&ids)?
            .add(&self.positions.narrow(0, start, rows)?)?;
        let mask = (rows > 1)
            .then(|| causal_mask(rows, start, device))
            .transpose()?;
        let d = self.n_head * self.head_dim;
        let scale = 1.0 / (self.head_dim as f64).sqrt();
        for ((block, self_kv), (cross_k, cross_v)) in self
            .blocks
            .iter()
            .zip(state.self_kv.iter_mut())
            .zip(state.cross_kv.iter())
        {
            let qkv = block.self_qkv.forward(&block.self_ln.forward(&x)?)?;
            let q = (self.heads(&qkv.narrow(1, 0, d)?, rows)? * scale)?;
            let k = self.heads(&qkv.narrow(1, d, d)?, rows)?;
            let v = self.heads(&qkv.narrow(1, 2 * d, d)?, rows)?;
            let (k, v) = self_kv.append(&k, &v)?;
            let y = self.attend(&q, &k, &v, mask.as_ref(), rows)?;
            x = (x + block.self_out.forward(&y)?)?;

            let q = block.cross_q.forward(&block.cross_ln.forward(&x)?)?;
            let q = (self.heads(&q, rows)? * scale)?;
            let y = self.attend(&q, cross_k, cross_v, None, rows)?;
            x = (x + block.cross_out.forward(&y)?)?;

            x = block.mlp.residual(x, self.activation)?;
        }
        self.ln.forward(&x)
    }

    /// The logits of one hidden state, `(1, d)` → `vocab` values.
    pub(crate) fn logits(&self, hidden: &Tensor) -> Result<Vec<f32>> {
        self.output.forward(hidden)?.squeeze(0)?.to_vec1()
    }
}

/// The additive causal mask of `rows` new tokens after `start` cached ones: `(rows, start +
/// rows)`, 0 where a token may look and -∞ where it may not.
fn causal_mask(rows: usize, start: usize, device: &Device) -> Result<Tensor> {
    let keys = start + rows;
    let mask: Vec<f32> = (0..rows)
        .flat_map(|i| {
            (0..keys).map(move |j| {
                if j > start + i {
                    f32::NEG_INFINITY
                } else {
                    0.0
                }
            })
        })
        .collect();
    Tensor::from_vec(mask, (rows, keys), device)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::DType;
    use candle_nn::VarMap;
    use candle_transformers::models::whisper::model::Whisper;
    use kaizen_kernels::max_abs;

    const D: usize = 32;

    fn config() -> Config {
        serde_json::from_value(serde_json::json!({
            "num_mel_bins": 8,
            "max_source_positions": 6,
            "d_model": D,
            "encoder_attention_heads": 2,
            "encoder_layers": 1,
            "vocab_size": 40,
            "max_target_positions": 12,
            "decoder_attention_heads": 4,
            "decoder_layers": 2,
        }))
        .unwrap()
    }

    /// Random weights under Hugging Face's names, as candle-transformers' Whisper loads them.
    fn random_model() -> (VarMap, Config) {
        let config = config();
        let map = VarMap::new();
        let vb = VarBuilder::from_varmap(&map, DType::F32, &Device::Cpu);
        // Loading through candle-transformers creates every tensor with its shape.
        Whisper::load(&vb, config.clone()).unwrap();
        for var in map.all_vars() {
            let random = Tensor::randn(0f32, 0.3, var.shape(), &Device::Cpu).unwrap();
            var.set(&random).unwrap();
        }
        (map, config)
    }

    #[test]
    fn the_cached_decoder_matches_candle_transformers() {
        let (map, config) = random_model();
        let vb = VarBuilder::from_varmap(&map, DType::F32, &Device::Cpu);
        let mut reference = Whisper::load(&vb, config.clone()).unwrap();
        let mut decoder = Decoder::load(&vb, &config).unwrap();
        decoder.activation = tanh_gelu;
        let features = Tensor::randn(0f32, 1.0, (1, 6, D), &Device::Cpu).unwrap();
        let tokens = [3u32, 17, 5, 29, 11, 2];

        // Reference: every step runs the whole sequence again.
        let input = Tensor::new(&tokens[..], &Device::Cpu)
            .unwrap()
            .unsqueeze(0)
            .unwrap();
        let expected = reference
            .decoder
            .forward(&input, &features, true)
            .unwrap()
            .squeeze(0)
            .unwrap();

        // Ours: a prompt of three, then one token at a time.
        let mut state = decoder.start(&features).unwrap();
        let mut rows = vec![decoder.forward(&tokens[..3], &mut state).unwrap()];
        for &t in &tokens[3..] {
            rows.push(decoder.forward(&[t], &mut state).unwrap());
        }
        assert_eq!(state.len(), tokens.len());
        let got = Tensor::cat(&rows, 0).unwrap();
        let diff = max_abs(&(&got - expected).unwrap());
        assert!(diff < 1e-4, "hidden states differ by {diff}");

        // The int8 logits stay within the quantization error of the f32 ones.
        let last = got.narrow(0, tokens.len() - 1, 1).unwrap();
        let logits = Tensor::new(decoder.logits(&last).unwrap(), &Device::Cpu).unwrap();
        let expected = reference
            .decoder
            .final_linear(&last.unsqueeze(0).unwrap())
            .unwrap()
            .flatten_all()
            .unwrap();
        let scale = expected
            .abs()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        let diff = max_abs(&(logits - &expected).unwrap());
        assert!(
            diff < 0.05 * scale,
            "logits differ by {diff} (largest {scale})"
        );
    }

    /// candle-transformers' GELU, to compare with it.
    fn tanh_gelu(x: &Tensor) -> Result<Tensor> {
        x.gelu()
    }

    #[test]
    fn the_encoder_matches_candle_transformers() {
        let (map, config) = random_model();
        let vb = VarBuilder::from_varmap(&map, DType::F32, &Device::Cpu);
        let mut reference = Whisper::load(&vb, config.clone()).unwrap();
        let mut encoder = Encoder::load(&vb, &config).unwrap();
        // 12 mel frames: 6 positions after the strided convolution.
        let mel = Tensor::randn(0f32, 1.0, (1, 8, 12), &Device::Cpu).unwrap();
        let expected = reference.encoder.forward(&mel, true).unwrap();
        encoder.activation = tanh_gelu;
        let got = encoder.forward(&mel).unwrap();
        assert_eq!(got.dims(), [1, 6, D]);
        let diff = max_abs(&(&got - &expected).unwrap());
        assert!(diff < 1e-4, "features differ by {diff}");
        // The exact GELU moves the features a little, not a lot.
        encoder.activation = gelu;
        let exact = encoder.forward(&mel).unwrap();
        let moved = max_abs(&(&exact - &expected).unwrap());
        assert!(
            moved > 0.0 && moved < 0.1,
            "the exact GELU moved the features by {moved}"
        );
        // More frames than positions are refused.
        let long = Tensor::zeros((1, 8, 14), DType::F32, &Device::Cpu).unwrap();
        let err = encoder.forward(&long).unwrap_err();
        assert!(err.to_string().contains("7 frames exceed"), "{err}");
    }

    #[test]
    fn the_mask_hides_later_tokens_only() {
        let mask: Vec<Vec<f32>> = causal_mask(2, 3, &Device::Cpu).unwrap().to_vec2().unwrap();
        let inf = f32::NEG_INFINITY;
        assert_eq!(mask, [[0.0, 0.0, 0.0, 0.0, inf], [0.0; 5]]);
    }

    #[test]
    fn too_many_tokens_are_an_error() {
        let (map, config) = random_model();
        let vb = VarBuilder::from_varmap(&map, DType::F32, &Device::Cpu);
        let decoder = Decoder::load(&vb, &config).unwrap();
        let features = Tensor::zeros((1, 6, D), DType::F32, &Device::Cpu).unwrap();
        let mut state = decoder.start(&features).unwrap();
        let err = decoder.forward(&[1; 13], &mut state).unwrap_err();
        assert!(err.to_string().contains("13 tokens exceed"), "{err}");
    }
}
