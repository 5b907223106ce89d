//! Sequence-to-sequence summaries with a T5-family model in Hugging Face layout (`config.json`,
//! `tokenizer.json`, `model.safetensors`): the text, after the model's task prefix
//! (`summarize: ` unless `task_specific_params.summarization.prefix` says otherwise), is
//! encoded once, and the decoder writes greedily until its end-of-sequence token.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::t5::{Config, T5ForConditionalGeneration};
use serde::Deserialize;
use tokenizers::Tokenizer;

use crate::embed::require;
use crate::error::{InferError, Result};

/// The input length when `config.json` gives none (T5's `n_positions`).
const DEFAULT_MAX_INPUT: usize = 512;

/// A loaded T5-family model. Cloning is cheap (weights are shared) and gives its own cache.
#[derive(Clone)]
pub struct Seq2Seq {
    model: T5ForConditionalGeneration,
    tokenizer: Tokenizer,
    device: Device,
    name: String,
    prefix: String,
    max_input: usize,
    max_new_tokens: usize,
    eos: u32,
    decoder_start: u32,
}

impl std::fmt::Debug for Seq2Seq {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Seq2Seq")
            .field("name", &self.name)
            .field("prefix", &self.prefix)
            .field("max_input", &self.max_input)
            .finish()
    }
}

/// The fields of `config.json` that candle's `Config` does not read.
#[derive(Deserialize)]
struct Extra {
    model_type: Option<String>,
    #[serde(default)]
    is_encoder_decoder: Option<bool>,
    n_positions: Option<usize>,
    #[serde(default)]
    task_specific_params: Option<TaskParams>,
}

#[derive(Deserialize)]
struct TaskParams {
    summarization: Option<SummarizationParams>,
}

#[derive(Deserialize)]
struct SummarizationParams {
    prefix: Option<String>,
    max_length: Option<usize>,
}

/// Whether `dir` holds a T5-family model (its `config.json` says `model_type: "t5"`).
pub fn is_seq2seq_dir(dir: &Path) -> bool {
    std::fs::read(dir.join("config.json"))
        .ok()
        .and_then(|bytes| serde_json::from_slice::<Extra>(&bytes).ok())
        .and_then(|extra| extra.model_type)
        .is_some_and(|t| t == "t5")
}

impl Seq2Seq {
    /// Loads the model in `dir` on the CPU.
    pub fn load(dir: &Path) -> Result<Self> {
        Self::load_on(dir, Device::Cpu)
    }

    pub fn load_on(dir: &Path, device: Device) -> Result<Self> {
        if !dir.is_dir() {
            return Err(InferError::ModelNotFound {
                dir: dir.to_path_buf(),
                hint: String::new(),
            });
        }
        let config_path = dir.join("config.json");
        let bytes = std::fs::read(&config_path).map_err(|source| InferError::Read {
            path: config_path.clone(),
            source,
        })?;
        let invalid = |path: &PathBuf, reason: String| InferError::InvalidModel {
            path: path.clone(),
            reason,
        };
        let extra: Extra = serde_json::from_slice(&bytes)
            .map_err(|e| invalid(&config_path, format!("not a model configuration: {e}")))?;
        if extra.model_type.as_deref() != Some("t5") {
            return Err(invalid(
                &config_path,
                format!(
                    "model_type {} is not a sequence-to-sequence model kaizen runs (t5)",
                    extra.model_type.as_deref().unwrap_or("(none)")
                ),
            ));
        }
        if extra.is_encoder_decoder == Some(false) {
            return Err(invalid(
                &config_path,
                "the model is not an encoder-decoder (is_encoder_decoder is false)".into(),
            ));
        }
        let mut config: Config = serde_json::from_slice(&bytes)
            .map_err(|e| invalid(&config_path, format!("not a T5 configuration: {e}")))?;
        // candle's loader asserts this; the check above already refused the other case.
        config.is_encoder_decoder = true;
        config.use_cache = true;
        if config.vocab_size == 0 || config.d_model == 0 || config.num_heads == 0 {
            return Err(invalid(
                &config_path,
                "vocab_size, d_model and num_heads must be positive".into(),
            ));
        }
        let tokenizer_path = dir.join("tokenizer.json");
        require(&tokenizer_path)?;
        let tokenizer = Tokenizer::from_file(&tokenizer_path)
            .map_err(|e| invalid(&tokenizer_path, e.to_string()))?;
        let weights = dir.join("model.safetensors");
        require(&weights)?;
        // SAFETY: the file is mapped read-only; kaizen never writes a model file it has loaded.
        let vb = unsafe { VarBuilder::from_mmaped_safetensors(&[&weights], DType::F32, &device) }
            .map_err(|e| invalid(&weights, e.to_string()))?;
        let model = T5ForConditionalGeneration::load(vb, &config)
            .map_err(|e| invalid(&weights, format!("does not fit config.json: {e}")))?;
        let summarization = extra.task_specific_params.and_then(|p| p.summarization);
        let prefix = summarization
            .as_ref()
            .and_then(|s| s.prefix.clone())
            .unwrap_or_else(|| "summarize: ".to_string());
        let max_new_tokens = summarization
            .as_ref()
            .and_then(|s| s.max_length)
            .unwrap_or(200);
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "t5".into());
        Ok(Seq2Seq {
            model,
            tokenizer,
            device,
            name,
            prefix,
            max_input: extra.n_positions.unwrap_or(DEFAULT_MAX_INPUT),
            max_new_tokens,
            eos: config.eos_token_id as u32,
            decoder_start: config.decoder_start_token_id.unwrap_or(config.pad_token_id) as u32,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The longest input the model reads at once, in tokens (its task prefix included).
    pub fn context_tokens(&self) -> usize {
        self.max_input
    }

    /// The task prefix put before every input.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The most tokens a summary has unless asked otherwise (`task_specific_params`).
    pub fn default_max_new_tokens(&self) -> usize {
        self.max_new_tokens
    }

    /// Tokens of `text` as the encoder reads it (with the end-of-sequence token).
    pub fn count_tokens(&self, text: &str) -> Result<usize> {
        Ok(self.encode(text)?.len())
    }

    fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let encoding = self
            .tokenizer
            .encode(text, true)
            .map_err(|e| InferError::Tokenizer(e.to_string()))?;
        Ok(encoding.get_ids().to_vec())
    }

    /// The model's output for `text` (the task prefix is added here), at most `max_new_tokens`.
    pub fn generate(&self, text: &str, max_new_tokens: usize) -> Result<String> {
        let mut ids = self.encode(&format!("{}{}", self.prefix, text))?;
        if ids.is_empty() {
            return Err(InferError::invalid("the text to summarize is empty"));
        }
        // Longer input than the model reads: cut, keeping the end-of-sequence token.
        if ids.len() > self.max_input {
            let last = *ids.last().unwrap_or(&self.eos);
            ids.truncate(self.max_input - 1);
            ids.push(last);
        }
        let mut model = self.model.clone();
        model.clear_kv_cache();
        let input = Tensor::new(ids.as_slice(), &self.device)?.unsqueeze(0)?;
        let encoded = model.encode(&input)?;
        let mut output = vec![self.decoder_start];
        for step in 0..max_new_tokens {
            // With the cache, only the newest token is fed after the first step.
            let fed = if step == 0 {
                &output[..]
            } else {
                &output[output.len() - 1..]
            };
            let decoder_input = Tensor::new(fed, &self.device)?.unsqueeze(0)?;
            let logits = model.decode(&decoder_input, &encoded)?.squeeze(0)?;
            let next = logits.argmax(0)?.to_scalar::<u32>()?;
            if next == self.eos {
                break;
            }
            output.push(next);
        }
        let text = self
            .tokenizer
            .decode(&output[1..], true)
            .map_err(|e| InferError::Tokenizer(e.to_string()))?;
        Ok(text.trim().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_config_that_is_not_t5_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("config.json"), r#"{"model_type": "bert"}"#).unwrap();
        assert!(!is_seq2seq_dir(dir.path()));
        let err = Seq2Seq::load(dir.path()).unwrap_err();
        assert!(err.to_string().contains("model_type bert"), "{err}");
    }

    #[test]
    fn a_missing_directory_is_named() {
        let err = Seq2Seq::load(Path::new("/nonexistent/t5-small")).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/t5-small"), "{err}");
    }
}
