//! Sentence embeddings with a BERT-family encoder in Hugging Face layout (`config.json`,
//! `tokenizer.json`, `model.safetensors`), pooled and normalized the way the model's
//! sentence-transformers configuration says (`1_Pooling/config.json`, `modules.json`): for
//! all-MiniLM-L6-v2, the mean of the token states under the attention mask, then L2 norm.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use serde::Deserialize;
use tokenizers::{PaddingParams, PaddingStrategy, Tokenizer, TruncationParams};

use crate::bert::{BertModel, Config};
use crate::error::{InferError, Result};

/// Texts encoded per forward pass; texts are sorted by length first so a batch pads little.
const BATCH: usize = 32;

/// How token states become one vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pooling {
    Mean,
    Cls,
    Max,
}

/// A loaded sentence-embedding model.
pub struct Embedder {
    model: BertModel,
    tokenizer: Tokenizer,
    /// The same tokenizer without truncation or padding, to count a text's tokens (copying a
    /// tokenizer per call took 5 ms, its vocabulary's hash map).
    counter: Tokenizer,
    device: Device,
    name: String,
    dim: usize,
    max_tokens: usize,
    pooling: Pooling,
    normalize: bool,
}

impl std::fmt::Debug for Embedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Embedder")
            .field("name", &self.name)
            .field("dim", &self.dim)
            .field("max_tokens", &self.max_tokens)
            .field("pooling", &self.pooling)
            .field("normalize", &self.normalize)
            .finish()
    }
}

#[derive(Deserialize)]
struct PoolingConfig {
    #[serde(default)]
    pooling_mode_cls_token: bool,
    #[serde(default)]
    pooling_mode_max_tokens: bool,
}

#[derive(Deserialize)]
struct SentenceBertConfig {
    max_seq_length: Option<usize>,
}

#[derive(Deserialize)]
struct Module {
    #[serde(rename = "type")]
    kind: String,
}

impl Embedder {
    /// Loads the model in `dir` on the CPU.
    pub fn load(dir: &Path) -> Result<Self> {
        Self::load_on(dir, Device::Cpu)
    }

    /// Loads the model in `dir` on `device`.
    pub fn load_on(dir: &Path, device: Device) -> Result<Self> {
        if !dir.is_dir() {
            return Err(InferError::ModelNotFound {
                dir: dir.to_path_buf(),
                hint: String::new(),
            });
        }
        let config_path = dir.join("config.json");
        let config: Config = read_json(&config_path)?;
        let tokenizer_path = dir.join("tokenizer.json");
        require(&tokenizer_path)?;
        let mut tokenizer =
            Tokenizer::from_file(&tokenizer_path).map_err(|e| InferError::InvalidModel {
                path: tokenizer_path.clone(),
                reason: e.to_string(),
            })?;
        let weights = dir.join("model.safetensors");
        require(&weights)?;

        // sentence-transformers truncates at `max_seq_length`, not at the tokenizer file's
        // own truncation, and never beyond the position table.
        let st_config = dir.join("sentence_bert_config.json");
        let max_tokens = if st_config.is_file() {
            read_json::<SentenceBertConfig>(&st_config)?.max_seq_length
        } else {
            None
        }
        .unwrap_or(config.max_position_embeddings)
        .min(config.max_position_embeddings);
        let pad_id = tokenizer
            .get_padding()
            .map(|p| p.pad_id)
            .or_else(|| tokenizer.token_to_id("[PAD]"))
            .unwrap_or(config.pad_token_id as u32);
        let pad_token = tokenizer
            .id_to_token(pad_id)
            .unwrap_or_else(|| "[PAD]".to_string());
        let mut counter = tokenizer.clone();
        counter
            .with_truncation(None)
            .map_err(|e| InferError::InvalidModel {
                path: tokenizer_path.clone(),
                reason: e.to_string(),
            })?;
        counter.with_padding(None);
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: max_tokens,
                ..Default::default()
            }))
            .map_err(|e| InferError::InvalidModel {
                path: tokenizer_path.clone(),
                reason: e.to_string(),
            })?;
        tokenizer.with_padding(Some(PaddingParams {
            strategy: PaddingStrategy::BatchLongest,
            pad_id,
            pad_token,
            ..Default::default()
        }));

        let pooling_path = dir.join("1_Pooling").join("config.json");
        let pooling = if pooling_path.is_file() {
            let p: PoolingConfig = read_json(&pooling_path)?;
            if p.pooling_mode_cls_token {
                Pooling::Cls
            } else if p.pooling_mode_max_tokens {
                Pooling::Max
            } else {
                Pooling::Mean
            }
        } else {
            Pooling::Mean
        };
        let modules_path = dir.join("modules.json");
        let normalize = if modules_path.is_file() {
            read_json::<Vec<Module>>(&modules_path)?
                .iter()
                .any(|m| m.kind.ends_with(".Normalize"))
        } else {
            true
        };

        // SAFETY: the weights file is mapped read-only; candle copies what it keeps.
        let vb = unsafe { VarBuilder::from_mmaped_safetensors(&[&weights], DType::F32, &device) }
            .map_err(|e| InferError::InvalidModel {
            path: weights.clone(),
            reason: e.to_string(),
        })?;
        let model = BertModel::load(vb, &config).map_err(|e| InferError::InvalidModel {
            path: weights.clone(),
            reason: e.to_string(),
        })?;
        let name = dir
            .canonicalize()
            .unwrap_or_else(|_| dir.to_path_buf())
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "model".to_string());
        tracing::debug!(model = %name, max_tokens, ?pooling, normalize, "loaded embedding model");
        Ok(Embedder {
            model,
            tokenizer,
            counter,
            device,
            name,
            dim: config.hidden_size,
            max_tokens,
            pooling,
            normalize,
        })
    }

    /// The model's name: its directory's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The length of an embedding.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The tokens a text is cut to (special tokens included).
    pub fn max_tokens(&self) -> usize {
        self.max_tokens
    }

    /// The number of tokens of `text` before truncation, special tokens included.
    pub fn count_tokens(&self, text: &str) -> Result<usize> {
        Ok(self
            .count_tokens_each(&[text])?
            .first()
            .copied()
            .unwrap_or(0))
    }

    /// The number of tokens of each text before truncation, special tokens included, in order.
    pub fn count_tokens_each<S: AsRef<str>>(&self, texts: &[S]) -> Result<Vec<usize>> {
        texts
            .iter()
            .map(|text| {
                self.counter
                    .encode(text.as_ref(), true)
                    .map(|e| e.len())
                    .map_err(|e| InferError::Tokenizer(e.to_string()))
            })
            .collect()
    }

    /// One embedding per text, in order.
    pub fn embed<S: AsRef<str> + Sync>(&self, texts: &[S]) -> Result<Vec<Vec<f32>>> {
        kaizen_kernels::on_thread_pool(|| self.embed_sorted(texts))
    }

    fn embed_sorted<S: AsRef<str>>(&self, texts: &[S]) -> Result<Vec<Vec<f32>>> {
        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.sort_by_key(|&i| texts[i].as_ref().len());
        let mut out = vec![Vec::new(); texts.len()];
        for chunk in order.chunks(BATCH) {
            let batch: Vec<&str> = chunk.iter().map(|&i| texts[i].as_ref()).collect();
            let vectors = self.embed_batch(&batch)?;
            for (&i, v) in chunk.iter().zip(vectors) {
                out[i] = v;
            }
        }
        Ok(out)
    }

    fn embed_batch(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        let encodings = self
            .tokenizer
            .encode_batch(texts.to_vec(), true)
            .map_err(|e| InferError::Tokenizer(e.to_string()))?;
        let len = encodings.first().map_or(0, |e| e.len());
        let n = encodings.len();
        let mut ids = Vec::with_capacity(n * len);
        let mut mask = Vec::with_capacity(n * len);
        for e in &encodings {
            ids.extend_from_slice(e.get_ids());
            mask.extend_from_slice(e.get_attention_mask());
        }
        let ids = Tensor::from_vec(ids, (n, len), &self.device)?;
        let mask = Tensor::from_vec(mask, (n, len), &self.device)?;
        let type_ids = ids.zeros_like()?;
        let states = self.model.forward(&ids, &type_ids, Some(&mask))?;
        let mask = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
        let pooled = match self.pooling {
            Pooling::Mean => {
                let sum = states.broadcast_mul(&mask)?.sum(1)?;
                let count = mask.sum(1)?.clamp(1e-9f32, f32::MAX)?;
                sum.broadcast_div(&count)?
            }
            Pooling::Cls => states.narrow(1, 0, 1)?.squeeze(1)?,
            Pooling::Max => {
                // Padding must never win the max.
                let masked = states.broadcast_add(&((mask - 1.0)? * 1e9)?)?;
                masked.max(1)?
            }
        };
        let pooled = if self.normalize {
            let norm = pooled
                .sqr()?
                .sum_keepdim(1)?
                .sqrt()?
                .clamp(1e-12f32, f32::MAX)?;
            pooled.broadcast_div(&norm)?
        } else {
            pooled
        };
        Ok(pooled.to_vec2::<f32>()?)
    }
}

pub(crate) fn require(path: &Path) -> Result<()> {
    if path.is_file() {
        Ok(())
    } else {
        Err(InferError::InvalidModel {
            path: path.to_path_buf(),
            reason: "missing (a model directory holds config.json, tokenizer.json and \
                     model.safetensors)"
                .to_string(),
        })
    }
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    require(path)?;
    let bytes = std::fs::read(path).map_err(|source| InferError::Read {
        path: PathBuf::from(path),
        source,
    })?;
    serde_json::from_slice(&bytes).map_err(|e| InferError::InvalidModel {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

/// Cosine similarity of two vectors (0 when either is zero).
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    if na == 0.0 || nb == 0.0 {
        0.0
    } else {
        dot / (na * nb)
    }
}
