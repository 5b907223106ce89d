//! The llama architecture's forward pass over GGUF weights: the local LLM's model.
//!
//! candle-transformers' `quantized_llama` is the reference this follows (same tensors, same
//! interleaved rotary embedding, same results to float rounding). It is kaizen's own because the
//! costs that matter on a CPU lie outside the quantized kernels:
//!
//! - **Prefill** (the prompt, many rows at once) multiplies each weight matrix dequantized to
//!   f32 with a blocked GEMM (candle's `gemm`), instead of one quantized dot product per row and
//!   column: a 576-row matrix costs a few hundred microseconds to dequantize and is then used by
//!   every prompt row. Nothing dequantized is kept, so memory stays that of the quantized model.
//! - **Decode** (one row) keeps the quantized dot products, which read 4 to 8 times fewer bytes.
//! - The attention cache is preallocated and appended in place (not concatenated per token),
//!   and grouped-query attention multiplies each key/value head with its group of query heads
//!   (no repeated copies of the keys and values).
//! - The q, k and v projections are one matrix, and so are the gate and up projections: one
//!   quantization of the activations and one pass of the thread pool instead of three and two.

use std::sync::Arc;

#[cfg(test)]
use candle_core::quantized::GgmlDType;
use candle_core::quantized::{QMatMul, QStorage, QTensor, gguf_file};
use candle_core::{D, Device, IndexOp, Module, Result, Tensor};
use candle_nn::kv_cache::KvCache;

use kaizen_kernels::Q4_1Matrix;

use crate::attention::attend_in_place;

/// From this many rows on, a projection dequantizes its weights and runs a GEMM.
const GEMM_MIN_ROWS: usize = 16;

/// The hyper-parameters a forward pass needs, read from the GGUF metadata.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub n_layer: usize,
    pub n_head: usize,
    pub n_kv_head: usize,
    pub head_dim: usize,
    pub rms_eps: f64,
    pub rope_base: f32,
    pub rope_dim: usize,
}

impl Config {
    pub(crate) fn from_gguf(content: &gguf_file::Content) -> Result<Self> {
        let get = |key: &str| {
            content
                .metadata
                .get(key)
                .ok_or_else(|| candle_core::Error::Msg(format!("the file has no `{key}`")))
        };
        let n_embd = get("llama.embedding_length")?.to_u32()? as usize;
        let n_head = get("llama.attention.head_count")?.to_u32()? as usize;
        let n_kv_head = get("llama.attention.head_count_kv")
            .and_then(|v| v.to_u32())
            .map_or(n_head, |n| n as usize);
        if n_head == 0
            || n_kv_head == 0
            || !n_embd.is_multiple_of(n_head)
            || !n_head.is_multiple_of(n_kv_head)
        {
            candle_core::bail!(
                "{n_head} attention heads over {n_kv_head} key/value heads do not divide an \
                 embedding of {n_embd}"
            );
        }
        let head_dim = n_embd / n_head;
        let rope_dim = get("llama.rope.dimension_count")
            .and_then(|v| v.to_u32())
            .map_or(head_dim, |n| n as usize);
        if rope_dim == 0 || rope_dim > head_dim || !rope_dim.is_multiple_of(2) {
            candle_core::bail!(
                "a rotary dimension of {rope_dim} does not fit heads of {head_dim} values"
            );
        }
        let n_layer = get("llama.block_count")?.to_u32()? as usize;
        Ok(Config {
            n_layer,
            n_head,
            n_kv_head,
            head_dim,
            rms_eps: get("llama.attention.layer_norm_rms_epsilon")?.to_f32()? as f64,
            rope_base: get("llama.rope.freq_base")
                .and_then(|v| v.to_f32())
                .unwrap_or(10_000.0),
            rope_dim,
        })
    }
}

/// A projection `x · Wᵀ` by a quantized weight matrix of `out` rows.
#[derive(Debug)]
struct Linear {
    weight: Arc<QTensor>,
    quantized: QMatMul,
    /// Q4_1 weights for the few-row products, where candle has no SIMD kernel for them.
    q4_1: Option<Q4_1Matrix>,
}

impl Linear {
    fn new(weight: QTensor) -> Result<Self> {
        let weight = Arc::new(weight);
        Ok(Linear {
            quantized: QMatMul::from_arc(weight.clone())?,
            q4_1: Q4_1Matrix::from_qtensor(&weight)?,
            weight,
        })
    }

    /// `x` is `(rows, in)`; the answer `(rows, out)`.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let rows = x.dim(0)?;
        let is_quantized = matches!(self.quantized, QMatMul::QTensor(_));
        if is_quantized && rows >= GEMM_MIN_ROWS {
            let w = self.weight.dequantize(x.device())?;
            return x.matmul(&w.t()?);
        }
        if let Some(q4_1) = &self.q4_1
            && x.device().is_cpu()
        {
            let (inputs, outputs) = (q4_1.cols(), q4_1.rows());
            let values: Vec<f32> = x.flatten_all()?.to_vec1()?;
            let mut out = vec![0f32; rows * outputs];
            for (row, y) in values
                .chunks_exact(inputs)
                .zip(out.chunks_exact_mut(outputs))
            {
                q4_1.gemv(row, y);
            }
            return Tensor::from_vec(out, (rows, outputs), x.device());
        }
        self.quantized.forward(x)
    }
}

/// The rows of several weight matrices of one type and width, stacked into one matrix, so that
/// their projections of the same input are one product.
fn stack_rows(parts: &[QTensor], device: &Device) -> Result<QTensor> {
    let dtype = parts[0].dtype();
    let width = parts[0].shape().dims2()?.1;
    let mut rows = 0;
    let mut bytes = Vec::new();
    for part in parts {
        let (r, w) = part.shape().dims2()?;
        if part.dtype() != dtype || w != width {
            candle_core::bail!(
                "cannot stack a {:?} matrix of width {w} onto a {dtype:?} one of width {width}",
                part.dtype()
            );
        }
        rows += r;
        bytes.extend_from_slice(&part.data()?);
    }
    let storage = QStorage::from_data(std::borrow::Cow::Owned(bytes), device, dtype)?;
    QTensor::new(storage, (rows, width))
}

#[derive(Debug)]
struct Block {
    attn_norm: Tensor,
    /// q, k and v stacked: `(n_head + 2 n_kv_head) · head_dim` rows.
    qkv: Linear,
    attn_out: Linear,
    ffn_norm: Tensor,
    /// gate and up stacked: `2 · ffn` rows.
    gate_up: Linear,
    down: Linear,
    ffn: usize,
}

/// A loaded model's weights, shared by every generation.
#[derive(Debug)]
pub(crate) struct Weights {
    config: Config,
    embedding: Arc<QTensor>,
    blocks: Vec<Block>,
    norm: Tensor,
    output: Linear,
    /// `cos` and `sin` of the rotary angles, `(context, rope_dim / 2)`.
    cos: Tensor,
    sin: Tensor,
}

/// What one generation remembers between forward passes: the attention cache of every block.
pub(crate) struct Cache {
    kv: Vec<KvCache>,
}

impl Cache {
    /// The number of positions already processed.
    pub(crate) fn len(&self) -> usize {
        self.kv.first().map_or(0, |c| c.current_seq_len())
    }
}

impl Weights {
    /// Loads the model; `convert` may change a tensor's quantization on the way (it gets the
    /// tensor's name).
    pub(crate) fn load<R: std::io::Read + std::io::Seek>(
        content: &gguf_file::Content,
        reader: &mut R,
        device: &Device,
        context: usize,
        convert: impl Fn(QTensor) -> Result<QTensor>,
    ) -> Result<Self> {
        let config = Config::from_gguf(content)?;
        let mut tensor = |name: &str| content.tensor(reader, name, device);
        let vector = |t: QTensor| t.dequantize(device);
        let embedding = tensor("token_embd.weight")?;
        let output = match tensor("output.weight") {
            Ok(t) => convert(t)?,
            // Tied embeddings: the output projection is the embedding table.
            Err(_) => convert(embedding.clone_quantized(device)?)?,
        };
        let norm = vector(tensor("output_norm.weight")?)?;
        let mut blocks = Vec::with_capacity(config.n_layer);
        for i in 0..config.n_layer {
            let mut t = |what: &str| tensor(&format!("blk.{i}.{what}.weight"));
            let q = convert(t("attn_q")?)?;
            let k = convert(t("attn_k")?)?;
            let v = convert(t("attn_v")?)?;
            let gate = convert(t("ffn_gate")?)?;
            let up = convert(t("ffn_up")?)?;
            let ffn = gate.shape().dims2()?.0;
            blocks.push(Block {
                attn_norm: vector(t("attn_norm")?)?,
                qkv: Linear::new(stack_rows(&[q, k, v], device)?)?,
                attn_out: Linear::new(convert(t("attn_output")?)?)?,
                ffn_norm: vector(t("ffn_norm")?)?,
                gate_up: Linear::new(stack_rows(&[gate, up], device)?)?,
                down: Linear::new(convert(t("ffn_down")?)?)?,
                ffn,
            });
        }
        let (cos, sin) = rotary_angles(&config, context, device)?;
        Ok(Weights {
            config,
            embedding: Arc::new(embedding),
            blocks,
            norm,
            output: Linear::new(output)?,
            cos,
            sin,
        })
    }

    /// An empty cache with room for `capacity` positions (it grows if needed).
    pub(crate) fn cache(&self, capacity: usize) -> Cache {
        Cache {
            kv: (0..self.config.n_layer)
                .map(|_| KvCache::new(1, capacity.max(1)))
                .collect(),
        }
    }

    /// Runs `ids` (the positions after those in `cache`) through the model and answers the
    /// logits of the last one, `(vocab,)`.
    pub(crate) fn forward(&self, ids: &[u32], cache: &mut Cache) -> Result<Tensor> {
        let c = &self.config;
        let seq = ids.len();
        let start = cache.len();
        let device = self.norm.device();
        let ids = Tensor::new(ids, device)?;
        let mut x = self.embedding.embedding(&ids)?;
        let cos = self.cos.narrow(0, start, seq)?;
        let sin = self.sin.narrow(0, start, seq)?;
        let n_rep = c.n_head / c.n_kv_head;
        let mask = (seq > 1)
            .then(|| causal_mask(seq, n_rep, start, device))
            .transpose()?;
        let scale = 1.0 / (c.head_dim as f64).sqrt();
        for (block, kv) in self.blocks.iter().zip(cache.kv.iter_mut()) {
            let h = candle_nn::ops::rms_norm(&x, &block.attn_norm, c.rms_eps as f32)?;
            let qkv = block.qkv.forward(&h)?;
            let heads = |from: usize, n: usize| {
                qkv.narrow(1, from * c.head_dim, n * c.head_dim)?
                    .reshape((seq, n, c.head_dim))?
                    .transpose(0, 1)?
                    .contiguous()
            };
            let q = rotate(&heads(0, c.n_head)?, &cos, &sin, c.rope_dim)?;
            let k = rotate(&heads(c.n_head, c.n_kv_head)?, &cos, &sin, c.rope_dim)?;
            let v = heads(c.n_head + c.n_kv_head, c.n_kv_head)?;
            let (k, v) = kv.append(&k, &v)?;
            let y = match (seq == 1).then(|| attend_in_place(&q, &k, &v, scale)) {
                Some(Some(y)) => y?,
                _ => {
                    // Each key/value head answers its `n_rep` query heads: their rows, one
                    // after another.
                    let q = q.reshape((c.n_kv_head, n_rep * seq, c.head_dim))?;
                    let att = (q.matmul(&k.t()?)? * scale)?;
                    let att = match &mask {
                        Some(mask) => att.broadcast_add(mask)?,
                        None => att,
                    };
                    let att = candle_nn::ops::softmax_last_dim(&att)?;
                    att.matmul(&v)?
                        .reshape((c.n_head, seq, c.head_dim))?
                        .transpose(0, 1)?
                        .reshape((seq, c.n_head * c.head_dim))?
                }
            };
            x = (x + block.attn_out.forward(&y)?)?;

            let h = candle_nn::ops::rms_norm(&x, &block.ffn_norm, c.rms_eps as f32)?;
            let gate_up = block.gate_up.forward(&h)?;
            let gate = gate_up.narrow(1, 0, block.ffn)?;
            let up = gate_up.narrow(1, block.ffn, block.ffn)?;
            let act = (candle_nn::ops::silu(&gate)? * up)?;
            x = (x + block.down.forward(&act)?)?;
        }
        let last = x.i((seq - 1..seq, ..))?;
        let last = candle_nn::ops::rms_norm(&last, &self.norm, c.rms_eps as f32)?;
        self.output.forward(&last)?.squeeze(0)
    }
}

/// Rotates the first `rope_dim` values of each head in adjacent pairs (GGUF's llama layout);
/// `x` is `(heads, seq, head_dim)`.
fn rotate(x: &Tensor, cos: &Tensor, sin: &Tensor, rope_dim: usize) -> Result<Tensor> {
    let head_dim = x.dim(D::Minus1)?;
    if rope_dim == head_dim {
        return candle_nn::rotary_emb::rope_i(&x.unsqueeze(0)?, cos, sin)?.squeeze(0);
    }
    let rotated = x
        .narrow(D::Minus1, 0, rope_dim)?
        .contiguous()?
        .unsqueeze(0)?;
    let rotated = candle_nn::rotary_emb::rope_i(&rotated, cos, sin)?.squeeze(0)?;
    let rest = x.narrow(D::Minus1, rope_dim, head_dim - rope_dim)?;
    Tensor::cat(&[&rotated, &rest], D::Minus1)
}

/// The rotary angles of positions `0..context`.
fn rotary_angles(config: &Config, context: usize, device: &Device) -> Result<(Tensor, Tensor)> {
    let half = config.rope_dim / 2;
    let inverse: Vec<f32> = (0..half)
        .map(|i| {
            1.0 / config
                .rope_base
                .powf((2 * i) as f32 / config.rope_dim as f32)
        })
        .collect();
    let mut angles = Vec::with_capacity(context * half);
    for position in 0..context {
        angles.extend(inverse.iter().map(|f| position as f32 * f));
    }
    let angles = Tensor::from_vec(angles, (context, half), device)?;
    Ok((angles.cos()?, angles.sin()?))
}

/// The additive causal mask of `seq` new positions after `start` cached ones, for query rows
/// laid out as `n_rep` groups of `seq`: `(n_rep · seq, start + seq)`, 0 or -∞.
fn causal_mask(seq: usize, n_rep: usize, start: usize, device: &Device) -> Result<Tensor> {
    let keys = start + seq;
    let mut mask = Vec::with_capacity(n_rep * seq * keys);
    for _ in 0..n_rep {
        for row in 0..seq {
            let position = start + row;
            mask.extend((0..keys).map(|key| {
                if key <= position {
                    0.0
                } else {
                    f32::NEG_INFINITY
                }
            }));
        }
    }
    Tensor::from_vec(mask, (n_rep * seq, keys), device)
}

/// A quantized tensor's copy (QTensor is not `Clone`).
trait CloneQuantized {
    fn clone_quantized(&self, device: &Device) -> Result<QTensor>;
}

impl CloneQuantized for QTensor {
    fn clone_quantized(&self, device: &Device) -> Result<QTensor> {
        let storage = QStorage::from_data(self.data()?, device, self.dtype())?;
        QTensor::new(storage, self.shape().clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kaizen_kernels::max_abs;

    /// The largest absolute value of `t`.
    #[test]
    fn the_mask_hides_later_positions_for_every_query_group() {
        let mask = causal_mask(2, 2, 1, &Device::Cpu).unwrap();
        let rows: Vec<Vec<f32>> = mask.to_vec2().unwrap();
        let inf = f32::NEG_INFINITY;
        let expected = vec![
            vec![0.0, 0.0, inf],
            vec![0.0, 0.0, 0.0],
            vec![0.0, 0.0, inf],
            vec![0.0, 0.0, 0.0],
        ];
        assert_eq!(rows, expected);
    }

    #[test]
    fn stacked_matrices_multiply_as_their_parts() {
        let device = Device::Cpu;
        let a = Tensor::randn(0f32, 1.0, (4, 64), &device).unwrap();
        let b = Tensor::randn(0f32, 1.0, (8, 64), &device).unwrap();
        let x = Tensor::randn(0f32, 1.0, (3, 64), &device).unwrap();
        let qa = QTensor::quantize(&a, GgmlDType::Q8_0).unwrap();
        let qb = QTensor::quantize(&b, GgmlDType::Q8_0).unwrap();
        let separate = Tensor::cat(
            &[
                QMatMul::from_qtensor(qa.clone_quantized(&device).unwrap())
                    .unwrap()
                    .forward(&x)
                    .unwrap(),
                QMatMul::from_qtensor(qb.clone_quantized(&device).unwrap())
                    .unwrap()
                    .forward(&x)
                    .unwrap(),
            ],
            1,
        )
        .unwrap();
        let stacked = Linear::new(stack_rows(&[qa, qb], &device).unwrap())
            .unwrap()
            .forward(&x)
            .unwrap();
        assert_eq!(max_abs(&(separate - stacked).unwrap()), 0.0);
    }

    #[test]
    fn the_gemm_path_agrees_with_the_quantized_one() {
        let device = Device::Cpu;
        let w = Tensor::randn(0f32, 1.0, (48, 128), &device).unwrap();
        let x = Tensor::randn(0f32, 1.0, (GEMM_MIN_ROWS, 128), &device).unwrap();
        let linear = Linear::new(QTensor::quantize(&w, GgmlDType::Q8_0).unwrap()).unwrap();
        let gemm = linear.forward(&x).unwrap();
        let quantized = linear.quantized.forward(&x).unwrap();
        // The quantized path also rounds the activations to 8 bits.
        let scale = max_abs(&gemm);
        let diff = max_abs(&(gemm - quantized).unwrap());
        assert!(diff < 0.02 * scale, "{diff} vs {scale}");
    }
}
