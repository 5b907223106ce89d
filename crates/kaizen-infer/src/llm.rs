//! A small instruct LLM from one GGUF file (llama architecture, quantized weights, the tokenizer
//! in the file's metadata): SmolLM2-135M-Instruct by default. The weights run on candle's
//! quantized llama; the tokenizer is rebuilt from `tokenizer.ggml.*` as a Hugging Face
//! tokenizer (byte-level BPE), so no `tokenizer.json` is needed beside the file.
//!
//! Generation is greedy by default, so a summary or an answer is the same on every run; a
//! temperature turns sampling on, seeded.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use candle_core::Device;
use candle_core::quantized::{GgmlDType, QTensor, gguf_file};
use candle_transformers::generation::LogitsProcessor;
use serde::Serialize;
use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::BPE;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::{AddedToken, Tokenizer};

use crate::error::{InferError, Result};
use crate::llama::Weights;

/// GGUF's token type of control tokens (`<|im_start|>`, `<|endoftext|>`, ...).
const TOKEN_TYPE_CONTROL: i32 = 3;
/// Tokens looked back at by the repetition penalty (llama.cpp's default window).
const REPEAT_WINDOW: usize = 64;

/// How text is generated.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerateOptions {
    /// The most tokens generated.
    pub max_new_tokens: usize,
    /// Sampling temperature; `None` or 0 is greedy.
    pub temperature: Option<f64>,
    /// Nucleus sampling (with a temperature only).
    pub top_p: Option<f64>,
    /// The seed of sampling.
    pub seed: u64,
    /// Divides the logits of tokens among the last 64 (1.0: off). Small models loop without it.
    pub repeat_penalty: f32,
    /// Keep generating past the end of the turn, up to `max_new_tokens` (for benchmarks).
    pub ignore_eos: bool,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        GenerateOptions {
            max_new_tokens: 256,
            temperature: None,
            top_p: None,
            seed: 299_792_458,
            repeat_penalty: 1.1,
            ignore_eos: false,
        }
    }
}

/// One message of a chat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub role: &'static str,
    pub content: String,
}

impl Message {
    pub fn system(content: impl Into<String>) -> Self {
        Message {
            role: "system",
            content: content.into(),
        }
    }

    pub fn user(content: impl Into<String>) -> Self {
        Message {
            role: "user",
            content: content.into(),
        }
    }
}

/// What a generation produced, with its token counts and timings.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Generation {
    pub text: String,
    pub prompt_tokens: usize,
    pub generated_tokens: usize,
    /// Why generation stopped: `"eos"` (the model ended its turn) or `"length"`.
    pub stop: &'static str,
    /// Seconds to read the prompt (prefill).
    pub prompt_seconds: f64,
    /// Seconds to generate the new tokens.
    pub generate_seconds: f64,
}

impl Generation {
    pub fn prompt_tokens_per_second(&self) -> f64 {
        rate(self.prompt_tokens, self.prompt_seconds)
    }

    pub fn generated_tokens_per_second(&self) -> f64 {
        rate(self.generated_tokens, self.generate_seconds)
    }
}

fn rate(tokens: usize, seconds: f64) -> f64 {
    if seconds > 0.0 {
        tokens as f64 / seconds
    } else {
        0.0
    }
}

/// A loaded GGUF chat model. Cloning is cheap (the weights are shared); each generation has
/// its own attention cache.
#[derive(Clone)]
pub struct Llm {
    weights: Arc<Weights>,
    tokenizer: Tokenizer,
    name: String,
    path: PathBuf,
    context: usize,
    bos: Option<u32>,
    /// Tokens that end the assistant's turn.
    stop_tokens: Vec<u32>,
    chat: ChatFormat,
}

impl std::fmt::Debug for Llm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Llm")
            .field("name", &self.name)
            .field("path", &self.path)
            .field("context", &self.context)
            .field("chat", &self.chat)
            .finish()
    }
}

/// How messages become a prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChatFormat {
    /// `<|im_start|>role\ncontent<|im_end|>\n` (SmolLM2, Qwen, ...).
    ChatMl,
    /// Contents one after another, for base models without a chat template.
    Plain,
}

impl Llm {
    /// Loads a GGUF file, or the one `.gguf` file in a directory, on the CPU.
    pub fn load(path: &Path) -> Result<Self> {
        Self::load_on(path, Device::Cpu)
    }

    pub fn load_on(path: &Path, device: Device) -> Result<Self> {
        let file = gguf_path(path)?;
        let invalid = |reason: String| InferError::InvalidModel {
            path: file.clone(),
            reason,
        };
        let mut reader = std::fs::File::open(&file).map_err(|source| InferError::Read {
            path: file.clone(),
            source,
        })?;
        let content = gguf_file::Content::read(&mut reader)
            .map_err(|e| invalid(format!("not a readable GGUF file: {e}")))?;
        let arch = meta_string(&content, "general.architecture").unwrap_or_default();
        if arch != "llama" {
            return Err(invalid(format!(
                "architecture `{arch}` is not supported; kaizen runs GGUF models of the llama \
                 architecture (SmolLM2, Llama, TinyLlama, ...)"
            )));
        }
        let tokenizer = tokenizer_from_gguf(&content).map_err(invalid)?;
        let context = content
            .metadata
            .get("llama.context_length")
            .and_then(|v| v.to_u32().ok())
            .map_or(2048, |n| n as usize);
        let token_id = |key: &str| content.metadata.get(key).and_then(|v| v.to_u32().ok());
        let add_bos = content
            .metadata
            .get("tokenizer.ggml.add_bos_token")
            .and_then(|v| v.to_bool().ok())
            .unwrap_or(true);
        let bos = token_id("tokenizer.ggml.bos_token_id").filter(|_| add_bos);
        let mut stop_tokens: Vec<u32> = token_id("tokenizer.ggml.eos_token_id")
            .into_iter()
            .collect();
        let template = meta_string(&content, "tokenizer.chat_template").unwrap_or_default();
        let chat = if template.contains("<|im_start|>") {
            for t in ["<|im_end|>", "<|endoftext|>"] {
                if let Some(id) = tokenizer.token_to_id(t) {
                    stop_tokens.push(id);
                }
            }
            ChatFormat::ChatMl
        } else {
            ChatFormat::Plain
        };
        stop_tokens.sort_unstable();
        stop_tokens.dedup();
        if stop_tokens.is_empty() {
            return Err(invalid(
                "the file names no end-of-sequence token (tokenizer.ggml.eos_token_id)".into(),
            ));
        }
        let name = meta_string(&content, "general.name")
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| {
                file.file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default()
            });
        let weights = Weights::load(&content, &mut reader, &device, context, requantize)
            .map_err(|e| invalid(format!("cannot load the weights: {e}")))?;
        Ok(Llm {
            weights: Arc::new(weights),
            tokenizer,
            name,
            path: file,
            context,
            bos,
            stop_tokens,
            chat,
        })
    }

    /// The model's name (GGUF's `general.name`, else the file's stem).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The GGUF file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The context length the model was trained for, in tokens.
    pub fn context_tokens(&self) -> usize {
        self.context
    }

    /// Tokens of `text` as the model reads it (no special tokens).
    pub fn count_tokens(&self, text: &str) -> Result<usize> {
        Ok(self.encode(text)?.len())
    }

    /// The token ids of `text`; control tokens written in the text are read as such.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let encoding = self
            .tokenizer
            .encode(text, false)
            .map_err(|e| InferError::Tokenizer(e.to_string()))?;
        Ok(encoding.get_ids().to_vec())
    }

    /// The text of `ids`, control tokens left out.
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.tokenizer
            .decode(ids, true)
            .map_err(|e| InferError::Tokenizer(e.to_string()))
    }

    /// The prompt of a chat, ready for the assistant's answer.
    pub fn chat_prompt(&self, messages: &[Message]) -> String {
        let mut prompt = String::new();
        match self.chat {
            ChatFormat::ChatMl => {
                for m in messages {
                    prompt.push_str("<|im_start|>");
                    prompt.push_str(m.role);
                    prompt.push('\n');
                    prompt.push_str(&m.content);
                    prompt.push_str("<|im_end|>\n");
                }
                prompt.push_str("<|im_start|>assistant\n");
            }
            ChatFormat::Plain => {
                for m in messages {
                    prompt.push_str(&m.content);
                    prompt.push_str("\n\n");
                }
            }
        }
        prompt
    }

    /// Tokens a chat's prompt takes around its contents (the template's markup).
    pub fn chat_overhead_tokens(&self, messages: &[Message]) -> Result<usize> {
        let empty: Vec<Message> = messages
            .iter()
            .map(|m| Message {
                role: m.role,
                content: String::new(),
            })
            .collect();
        Ok(self.count_tokens(&self.chat_prompt(&empty))? + usize::from(self.bos.is_some()))
    }

    /// The assistant's answer to `messages`.
    pub fn chat(&self, messages: &[Message], options: &GenerateOptions) -> Result<Generation> {
        self.generate(&self.chat_prompt(messages), options)
    }

    /// Continues `prompt` until the model ends its turn or `max_new_tokens` are written.
    pub fn generate(&self, prompt: &str, options: &GenerateOptions) -> Result<Generation> {
        kaizen_kernels::on_thread_pool(|| self.generate_on_pool(prompt, options))
    }

    fn generate_on_pool(&self, prompt: &str, options: &GenerateOptions) -> Result<Generation> {
        let mut ids: Vec<u32> = self.bos.into_iter().collect();
        ids.extend(self.encode(prompt)?);
        if ids.is_empty() {
            return Err(InferError::invalid("the prompt is empty"));
        }
        let room = self.context.saturating_sub(ids.len());
        if room == 0 {
            return Err(InferError::invalid(format!(
                "the prompt has {} tokens; the model's context holds {}",
                ids.len(),
                self.context
            )));
        }
        let max_new = options.max_new_tokens.min(room);
        let mut cache = self.weights.cache(ids.len() + max_new);
        let temperature = options.temperature.filter(|t| *t > 0.0);
        let mut sampler = LogitsProcessor::new(options.seed, temperature, options.top_p);

        let started = Instant::now();
        let mut logits = self.weights.forward(&ids, &mut cache)?;
        let prompt_seconds = started.elapsed().as_secs_f64();

        let started = Instant::now();
        let prompt_tokens = ids.len();
        let mut generated: Vec<u32> = Vec::new();
        let mut stop = "length";
        while generated.len() < max_new {
            let mut step = logits.to_dtype(candle_core::DType::F32)?;
            if options.repeat_penalty != 1.0 {
                let start = ids.len().saturating_sub(REPEAT_WINDOW);
                step = candle_transformers::utils::apply_repeat_penalty(
                    &step,
                    options.repeat_penalty,
                    &ids[start..],
                )?;
            }
            let next = sampler.sample(&step)?;
            if !options.ignore_eos && self.stop_tokens.contains(&next) {
                stop = "eos";
                break;
            }
            generated.push(next);
            ids.push(next);
            if generated.len() == max_new {
                break;
            }
            logits = self.weights.forward(&[next], &mut cache)?;
        }
        let generate_seconds = started.elapsed().as_secs_f64();
        Ok(Generation {
            text: self.decode(&generated)?.trim().to_string(),
            prompt_tokens,
            generated_tokens: generated.len(),
            stop,
            prompt_seconds,
            generate_seconds,
        })
    }
}

/// Quantizations that candle multiplies with scalar code only are requantized to Q8_0, which
/// has AVX2 (and NEON) kernels. Q8_0 holds every value of a 4- or 5-bit block to within 1/254
/// of the block's largest, so the model is the file's model; it takes about 1.7 times the memory
/// of Q4_1 and generates several times faster.
fn requantize(tensor: QTensor) -> candle_core::Result<QTensor> {
    let slow = match tensor.dtype() {
        // kaizen's own kernel multiplies Q4_1 as it is (`kaizen-kernels`), on a CPU with AVX2;
        // elsewhere (a GPU included) the weights are requantized as before.
        GgmlDType::Q4_1 => !(tensor.device().is_cpu() && kaizen_kernels::q4_1::supported()),
        GgmlDType::Q5_0 | GgmlDType::Q5_1 => true,
        _ => false,
    };
    let fits = tensor.shape().dims().last().is_some_and(|d| d % 32 == 0);
    if !(slow && fits) {
        return Ok(tensor);
    }
    let device = tensor.device();
    QTensor::quantize(&tensor.dequantize(&device)?, GgmlDType::Q8_0)
}

/// The GGUF file at `path`: the file itself, or the only `.gguf` file in a directory.
pub fn gguf_path(path: &Path) -> Result<PathBuf> {
    if path.is_file() {
        return Ok(path.to_path_buf());
    }
    if !path.is_dir() {
        return Err(InferError::ModelNotFound {
            dir: path.to_path_buf(),
            hint: String::new(),
        });
    }
    let entries = std::fs::read_dir(path).map_err(|source| InferError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "gguf"))
        .collect();
    files.sort();
    match files.len() {
        1 => Ok(files.remove(0)),
        0 => Err(InferError::InvalidModel {
            path: path.to_path_buf(),
            reason: "the directory has no .gguf file".into(),
        }),
        n => Err(InferError::InvalidModel {
            path: path.to_path_buf(),
            reason: format!("the directory has {n} .gguf files; name one of them"),
        }),
    }
}

fn meta_string(content: &gguf_file::Content, key: &str) -> Option<String> {
    content
        .metadata
        .get(key)
        .and_then(|v| v.to_string().ok())
        .cloned()
}

/// The Hugging Face tokenizer that a GGUF file's `tokenizer.ggml.*` metadata describes. Only
/// byte-level BPE (`gpt2`, the tokenizer of SmolLM2, Llama 3, Qwen, ...) is rebuilt; a
/// SentencePiece (`llama`) vocabulary is refused with its name.
fn tokenizer_from_gguf(content: &gguf_file::Content) -> std::result::Result<Tokenizer, String> {
    let md = &content.metadata;
    let model = md
        .get("tokenizer.ggml.model")
        .and_then(|v| v.to_string().ok())
        .ok_or("the file has no tokenizer (tokenizer.ggml.model)")?;
    if model != "gpt2" {
        return Err(format!(
            "tokenizer `{model}` is not supported; kaizen rebuilds byte-level BPE (`gpt2`) \
             tokenizers from GGUF"
        ));
    }
    let strings = |key: &str| -> std::result::Result<Vec<String>, String> {
        let values = md
            .get(key)
            .ok_or_else(|| format!("the tokenizer has no {key}"))?
            .to_vec()
            .map_err(|_| format!("{key} is not an array"))?;
        values
            .iter()
            .map(|v| {
                v.to_string()
                    .cloned()
                    .map_err(|_| format!("{key} holds a value that is not a string"))
            })
            .collect()
    };
    let tokens = strings("tokenizer.ggml.tokens")?;
    let merges: Vec<(String, String)> = strings("tokenizer.ggml.merges")?
        .into_iter()
        .map(|m| {
            m.split_once(' ')
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .ok_or_else(|| format!("merge `{m}` is not two tokens"))
        })
        .collect::<std::result::Result<_, _>>()?;
    let types: Vec<i32> = match md.get("tokenizer.ggml.token_type") {
        Some(v) => v
            .to_vec()
            .map_err(|_| "tokenizer.ggml.token_type is not an array".to_string())?
            .iter()
            .map(|t| t.to_i32().unwrap_or(1))
            .collect(),
        None => vec![1; tokens.len()],
    };
    let vocab: tokenizers::models::bpe::Vocab = tokens
        .iter()
        .enumerate()
        .map(|(i, t)| (t.clone(), i as u32))
        .collect();
    let bpe = BPE::builder()
        .vocab_and_merges(vocab, merges)
        .build()
        .map_err(|e| format!("the BPE vocabulary is inconsistent: {e}"))?;
    let mut tokenizer = Tokenizer::new(bpe);
    // llama.cpp's pre-tokenizers: SmolLM2's splits every digit first; all use GPT-2's regex.
    let pre = md
        .get("tokenizer.ggml.pre")
        .and_then(|v| v.to_string().ok())
        .map(String::as_str)
        .unwrap_or("default");
    let byte_level = ByteLevel::new(false, true, true);
    if pre == "smollm" {
        tokenizer.with_pre_tokenizer(Some(Sequence::new(vec![
            Digits::new(true).into(),
            byte_level.into(),
        ])));
    } else {
        tokenizer.with_pre_tokenizer(Some(byte_level));
    }
    tokenizer.with_decoder(Some(ByteLevelDecoder::default()));
    let control: Vec<AddedToken> = tokens
        .iter()
        .zip(&types)
        .filter(|(_, t)| **t == TOKEN_TYPE_CONTROL)
        .map(|(s, _)| AddedToken::from(s.clone(), true))
        .collect();
    tokenizer
        .add_special_tokens(control)
        .map_err(|e| format!("the control tokens cannot be added: {e}"))?;
    Ok(tokenizer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_model_is_named() {
        let err = Llm::load(Path::new("/nonexistent/smollm2")).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/smollm2"), "{err}");
    }

    #[test]
    fn a_file_that_is_not_gguf_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.gguf");
        std::fs::write(&path, b"not a gguf file at all").unwrap();
        let err = Llm::load(&path).unwrap_err();
        assert!(
            err.to_string().contains("not a readable GGUF file"),
            "{err}"
        );
    }

    #[test]
    fn a_directory_needs_exactly_one_gguf() {
        let dir = tempfile::tempdir().unwrap();
        let err = gguf_path(dir.path()).unwrap_err();
        assert!(err.to_string().contains("no .gguf file"), "{err}");
        std::fs::write(dir.path().join("a.gguf"), b"").unwrap();
        assert_eq!(gguf_path(dir.path()).unwrap(), dir.path().join("a.gguf"));
        std::fs::write(dir.path().join("b.gguf"), b"").unwrap();
        let err = gguf_path(dir.path()).unwrap_err();
        assert!(err.to_string().contains("2 .gguf files"), "{err}");
    }
}
