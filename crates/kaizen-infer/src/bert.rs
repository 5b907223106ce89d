//! The BERT encoder (Hugging Face `BertModel` without its pooler) on candle-nn, reading the
//! weight names of `transformers` checkpoints (`embeddings.*`, `encoder.layer.N.*`, optionally
//! under `bert.`).
//!
//! Written here rather than taken from candle-transformers, which compiles its 120-odd model
//! families as one crate and would add minutes to every cold build for one encoder.

use candle_core::{DType, Module, Result, Tensor};
use candle_nn::{Embedding, LayerNorm, VarBuilder, embedding, layer_norm};
use serde::Deserialize;

use crate::dense::Dense;

/// The fields of `config.json` the encoder needs.
#[derive(Debug, Clone, Deserialize)]
pub struct Config {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    #[serde(default = "default_act")]
    pub hidden_act: String,
    pub max_position_embeddings: usize,
    #[serde(default = "default_type_vocab")]
    pub type_vocab_size: usize,
    #[serde(default = "default_eps")]
    pub layer_norm_eps: f64,
    #[serde(default)]
    pub pad_token_id: usize,
    #[serde(default)]
    pub position_embedding_type: Option<String>,
}

fn default_act() -> String {
    "gelu".to_string()
}
fn default_type_vocab() -> usize {
    2
}
fn default_eps() -> f64 {
    1e-12
}

#[derive(Debug, Clone, Copy)]
enum Activation {
    /// The exact (erf) GELU of `transformers`' `"gelu"`.
    Gelu,
    /// The tanh approximation (`"gelu_new"`, `"gelu_pytorch_tanh"`).
    GeluTanh,
    Relu,
}

impl Activation {
    fn parse(name: &str) -> Result<Self> {
        match name {
            "gelu" => Ok(Activation::Gelu),
            "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => Ok(Activation::GeluTanh),
            "relu" => Ok(Activation::Relu),
            other => candle_core::bail!("unsupported hidden_act `{other}`"),
        }
    }

    fn apply(self, x: &Tensor) -> Result<Tensor> {
        match self {
            Activation::Gelu => kaizen_kernels::gelu_erf(x),
            Activation::GeluTanh => x.gelu(),
            Activation::Relu => x.relu(),
        }
    }
}

struct Embeddings {
    word: Embedding,
    position: Embedding,
    token_type: Embedding,
    norm: LayerNorm,
}

impl Embeddings {
    fn load(vb: VarBuilder, c: &Config) -> Result<Self> {
        Ok(Embeddings {
            word: embedding(c.vocab_size, c.hidden_size, vb.pp("word_embeddings"))?,
            position: embedding(
                c.max_position_embeddings,
                c.hidden_size,
                vb.pp("position_embeddings"),
            )?,
            token_type: embedding(
                c.type_vocab_size,
                c.hidden_size,
                vb.pp("token_type_embeddings"),
            )?,
            norm: layer_norm(c.hidden_size, c.layer_norm_eps, vb.pp("LayerNorm"))?,
        })
    }

    fn forward(&self, ids: &Tensor, type_ids: &Tensor) -> Result<Tensor> {
        let (_, len) = ids.dims2()?;
        let positions = Tensor::arange(0u32, len as u32, ids.device())?;
        let x = self
            .word
            .forward(ids)?
            .add(&self.token_type.forward(type_ids)?)?
            .broadcast_add(&self.position.forward(&positions)?)?;
        self.norm.forward(&x)
    }
}

/// Where a batch's real tokens are among its padded positions. Every projection runs over the
/// real tokens only (half the positions of a typical batch are padding); attention, a small
/// part of the work, runs on the padded layout, which it masks.
struct Packing {
    /// The padded position of each real token, in order.
    real: Tensor,
    /// The packed row of each padded position (row 0 for padding: a finite value it masks).
    padded: Tensor,
}

impl Packing {
    /// `None` when the batch has no padding to skip.
    fn new(mask: &[u32], device: &candle_core::Device) -> Result<Option<Self>> {
        let real: Vec<u32> = (0..mask.len() as u32)
            .filter(|&i| mask[i as usize] != 0)
            .collect();
        if real.is_empty() || real.len() == mask.len() {
            return Ok(None);
        }
        let mut padded = vec![0u32; mask.len()];
        for (row, &position) in real.iter().enumerate() {
            padded[position as usize] = row as u32;
        }
        let count = real.len();
        Ok(Some(Packing {
            real: Tensor::from_vec(real, count, device)?,
            padded: Tensor::from_vec(padded, mask.len(), device)?,
        }))
    }
}

struct Layer {
    /// query, key and value stacked: `3 · hidden` columns, one product for the three.
    qkv: Dense,
    attention_out: Dense,
    attention_norm: LayerNorm,
    intermediate: Dense,
    output: Dense,
    output_norm: LayerNorm,
    heads: usize,
    head_dim: usize,
    activation: Activation,
}

impl Layer {
    fn load(vb: VarBuilder, c: &Config, activation: Activation) -> Result<Self> {
        let h = c.hidden_size;
        let attention = vb.pp("attention");
        let this = attention.pp("self");
        Ok(Layer {
            qkv: Dense::load(&[this.pp("query"), this.pp("key"), this.pp("value")], h, h)?,
            attention_out: Dense::load(&[attention.pp("output").pp("dense")], h, h)?,
            attention_norm: layer_norm(
                h,
                c.layer_norm_eps,
                attention.pp("output").pp("LayerNorm"),
            )?,
            intermediate: Dense::load(
                &[vb.pp("intermediate").pp("dense")],
                h,
                c.intermediate_size,
            )?,
            output: Dense::load(&[vb.pp("output").pp("dense")], c.intermediate_size, h)?,
            output_norm: layer_norm(h, c.layer_norm_eps, vb.pp("output").pp("LayerNorm"))?,
            heads: c.num_attention_heads,
            head_dim: h / c.num_attention_heads,
            activation,
        })
    }

    /// `x`: the rows of the batch's real tokens (all `batch · len` positions when `packing` is
    /// `None`), `(rows, hidden)`; `bias`: (batch, 1, 1, len), 0 for tokens and a large negative
    /// number for padding. Every projection is one product over all the batch's rows.
    fn forward(&self, x: &Tensor, bias: &Tensor, packing: Option<&Packing>) -> Result<Tensor> {
        let (b, _, _, len) = bias.dims4()?;
        let hidden = self.heads * self.head_dim;
        let qkv = self.qkv.forward(x)?;
        let qkv = match packing {
            Some(p) => qkv.index_select(&p.padded, 0)?,
            None => qkv,
        };
        let split = |part: usize| -> Result<Tensor> {
            qkv.narrow(1, part * hidden, hidden)?
                .reshape((b, len, self.heads, self.head_dim))?
                .transpose(1, 2)?
                .contiguous()
        };
        let (q, k, v) = (split(0)?, split(1)?, split(2)?);
        let scale = 1.0 / (self.head_dim as f64).sqrt();
        let scores = (q.matmul(&k.t()?)? * scale)?.broadcast_add(bias)?;
        let probs = candle_nn::ops::softmax_last_dim(&scores)?;
        let context = probs
            .matmul(&v)?
            .transpose(1, 2)?
            .reshape((b * len, hidden))?;
        let context = match packing {
            Some(p) => context.index_select(&p.real, 0)?,
            None => context,
        };
        let attended = self
            .attention_norm
            .forward(&(self.attention_out.forward(&context)? + x)?)?;
        let inner = self
            .activation
            .apply(&self.intermediate.forward(&attended)?)?;
        self.output_norm
            .forward(&(self.output.forward(&inner)? + attended)?)
    }
}

/// The encoder: token ids to the last layer's hidden states.
pub struct BertModel {
    embeddings: Embeddings,
    layers: Vec<Layer>,
}

impl BertModel {
    pub fn load(vb: VarBuilder, c: &Config) -> Result<Self> {
        if c.num_attention_heads == 0 || !c.hidden_size.is_multiple_of(c.num_attention_heads) {
            candle_core::bail!(
                "hidden_size {} is not a multiple of num_attention_heads {}",
                c.hidden_size,
                c.num_attention_heads
            );
        }
        if let Some(kind) = c.position_embedding_type.as_deref()
            && kind != "absolute"
        {
            candle_core::bail!("unsupported position_embedding_type `{kind}`");
        }
        let vb = if vb.contains_tensor("bert.embeddings.word_embeddings.weight") {
            vb.pp("bert")
        } else {
            vb
        };
        let activation = Activation::parse(&c.hidden_act)?;
        let encoder = vb.pp("encoder").pp("layer");
        let layers = (0..c.num_hidden_layers)
            .map(|i| Layer::load(encoder.pp(i), c, activation))
            .collect::<Result<Vec<_>>>()?;
        Ok(BertModel {
            embeddings: Embeddings::load(vb.pp("embeddings"), c)?,
            layers,
        })
    }

    /// `ids`, `type_ids`, `mask`: (batch, len) u32; `mask` is 1 for tokens and 0 for padding.
    pub fn forward(
        &self,
        ids: &Tensor,
        type_ids: &Tensor,
        mask: Option<&Tensor>,
    ) -> Result<Tensor> {
        let (b, len) = ids.dims2()?;
        let x = self.embeddings.forward(ids, type_ids)?;
        let hidden = x.dim(2)?;
        let x = x.reshape((b * len, hidden))?;
        let mask = match mask {
            Some(m) => m.to_dtype(DType::U32)?,
            None => ids.ones_like()?.to_dtype(DType::U32)?,
        };
        let packing = Packing::new(&mask.flatten_all()?.to_vec1::<u32>()?, ids.device())?;
        // (1 - mask) * min, as `transformers` builds its extended attention mask.
        let bias = ((mask.to_dtype(DType::F32)? - 1.0)? * f64::from(f32::MAX))?
            .unsqueeze(1)?
            .unsqueeze(1)?;
        let mut x = match &packing {
            Some(p) => x.index_select(&p.real, 0)?,
            None => x,
        };
        for layer in &self.layers {
            x = layer.forward(&x, &bias, packing.as_ref())?;
        }
        // Padding positions get a copy of a real row: finite, and masked by every pooling.
        let x = match &packing {
            Some(p) => x.index_select(&p.padded, 0)?,
            None => x,
        };
        x.reshape((b, len, hidden))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn packing_maps_real_tokens_both_ways() {
        // Two texts of four positions: three tokens and one of padding, then two and two.
        let mask = [1, 1, 1, 0, 1, 1, 0, 0];
        let p = Packing::new(&mask, &Device::Cpu).unwrap().unwrap();
        assert_eq!(p.real.to_vec1::<u32>().unwrap(), [0, 1, 2, 4, 5]);
        assert_eq!(p.padded.to_vec1::<u32>().unwrap(), [0, 1, 2, 0, 3, 4, 0, 0]);
        // Nothing to skip without padding.
        assert!(Packing::new(&[1, 1, 1], &Device::Cpu).unwrap().is_none());
    }
}
