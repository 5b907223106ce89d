//! CTranslate2 models (`model.bin`, the format of faster-whisper) read and converted to Hugging
//! Face layout, so that candle loads them: `import_whisper` turns a `WhisperSpec` into
//! `config.json` and `model.safetensors` with the names of transformers'
//! `WhisperForConditionalGeneration`, and copies `tokenizer.json`.
//!
//! The format, as CTranslate2's `python/ctranslate2/specs/model_spec.py` writes it and
//! `src/models/model.cc` reads it (all integers little-endian): `u32` binary version; from
//! version 2 the spec name and a `u32` spec revision; `u32` number of variables, each a name,
//! a `u8` rank, `rank` × `u32` dimensions, then (version 4 on) a `u8` type id
//! (`float32, int8, int16, int32, float16, bfloat16`) and a `u32` byte count, or (before 4) a
//! `u8` item size and a `u32` element count, then the data; from version 3, `u32` number of
//! aliases, each an alias and the variable it names. Strings are a `u16` length that counts a
//! trailing NUL, then the bytes. Quantized weights (`int8`, `int16`) come with a
//! `<name>_scale` variable: the float value is the integer divided by the scale (one scale per
//! output row for `int8`, one for the tensor for `int16`).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use serde_json::{Value, json};

use crate::error::{InferError, Result};

/// The newest binary version this reader knows (CTranslate2 4.x writes 6).
const MAX_BINARY_VERSION: u32 = 6;

/// The element type of a variable, in CTranslate2's order of type ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ct2DType {
    F32,
    I8,
    I16,
    I32,
    F16,
    BF16,
}

impl Ct2DType {
    fn from_id(id: u8) -> Option<Self> {
        Some(match id {
            0 => Ct2DType::F32,
            1 => Ct2DType::I8,
            2 => Ct2DType::I16,
            3 => Ct2DType::I32,
            4 => Ct2DType::F16,
            5 => Ct2DType::BF16,
            _ => return None,
        })
    }

    /// Before binary version 4 only the item size was stored.
    fn from_item_size(size: u8) -> Option<Self> {
        Some(match size {
            4 => Ct2DType::F32,
            2 => Ct2DType::I16,
            1 => Ct2DType::I8,
            _ => return None,
        })
    }

    pub fn size(self) -> usize {
        match self {
            Ct2DType::I8 => 1,
            Ct2DType::I16 | Ct2DType::F16 | Ct2DType::BF16 => 2,
            Ct2DType::F32 | Ct2DType::I32 => 4,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Ct2DType::F32 => "float32",
            Ct2DType::I8 => "int8",
            Ct2DType::I16 => "int16",
            Ct2DType::I32 => "int32",
            Ct2DType::F16 => "float16",
            Ct2DType::BF16 => "bfloat16",
        }
    }
}

/// One variable of a model: its shape, type and raw little-endian data.
#[derive(Debug, Clone)]
pub struct Variable {
    pub shape: Vec<usize>,
    pub dtype: Ct2DType,
    pub data: Vec<u8>,
}

impl Variable {
    /// A scalar integer variable (`num_heads` and the like).
    fn as_int(&self) -> Option<i64> {
        if !self.shape.is_empty() {
            return None;
        }
        let d = &self.data;
        Some(match self.dtype {
            Ct2DType::I8 => i8::from_le_bytes([d[0]]) as i64,
            Ct2DType::I16 => i16::from_le_bytes([d[0], d[1]]) as i64,
            Ct2DType::I32 => i32::from_le_bytes([d[0], d[1], d[2], d[3]]) as i64,
            _ => return None,
        })
    }
}

/// A parsed `model.bin`.
#[derive(Debug, Clone)]
pub struct Ct2Model {
    pub binary_version: u32,
    /// The spec's name, `WhisperSpec` for Whisper.
    pub spec: String,
    pub revision: u32,
    pub variables: BTreeMap<String, Variable>,
    /// Alias → the variable it stands for (tied weights).
    pub aliases: BTreeMap<String, String>,
}

impl Ct2Model {
    /// Reads `model.bin`.
    pub fn read(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|source| InferError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&bytes).map_err(|reason| InferError::InvalidModel {
            path: path.to_path_buf(),
            reason,
        })
    }

    /// Parses the bytes of a `model.bin`; the error says what is wrong and where.
    pub fn parse(bytes: &[u8]) -> std::result::Result<Self, String> {
        let mut r = Reader { bytes, pos: 0 };
        let binary_version = r.u32("the binary version")?;
        if binary_version == 0 || binary_version > MAX_BINARY_VERSION {
            return Err(format!(
                "binary version {binary_version} is not supported (this reader knows 1 to \
                 {MAX_BINARY_VERSION}; is this a CTranslate2 model.bin?)"
            ));
        }
        let (spec, revision) = if binary_version >= 2 {
            (r.string("the spec name")?, r.u32("the spec revision")?)
        } else {
            (String::new(), 1)
        };
        let count = r.u32("the number of variables")?;
        let mut variables = BTreeMap::new();
        for _ in 0..count {
            let name = r.string("a variable name")?;
            let rank = r.u8("a rank")? as usize;
            let mut shape = Vec::with_capacity(rank);
            for _ in 0..rank {
                shape.push(r.u32("a dimension")? as usize);
            }
            let (dtype, num_bytes) = if binary_version >= 4 {
                let id = r.u8("a type id")?;
                let dtype = Ct2DType::from_id(id)
                    .ok_or_else(|| format!("variable `{name}` has unknown type id {id}"))?;
                (dtype, r.u32("a byte count")? as usize)
            } else {
                let size = r.u8("an item size")?;
                let dtype = Ct2DType::from_item_size(size)
                    .ok_or_else(|| format!("variable `{name}` has unknown item size {size}"))?;
                (dtype, r.u32("an element count")? as usize * size as usize)
            };
            let expected = shape.iter().product::<usize>() * dtype.size();
            if num_bytes != expected {
                return Err(format!(
                    "variable `{name}` of shape {shape:?} and type {} has {num_bytes} bytes, \
                     not {expected}",
                    dtype.name()
                ));
            }
            let data = r.take(num_bytes, "variable data")?.to_vec();
            variables.insert(name, Variable { shape, dtype, data });
        }
        let mut aliases = BTreeMap::new();
        if binary_version >= 3 {
            let count = r.u32("the number of aliases")?;
            for _ in 0..count {
                let alias = r.string("an alias")?;
                let target = r.string("an alias target")?;
                if !variables.contains_key(&target) {
                    return Err(format!(
                        "alias `{alias}` names `{target}`, which is not stored"
                    ));
                }
                aliases.insert(alias, target);
            }
        }
        if r.pos != bytes.len() {
            return Err(format!(
                "{} bytes left over after the last variable",
                bytes.len() - r.pos
            ));
        }
        Ok(Ct2Model {
            binary_version,
            spec,
            revision,
            variables,
            aliases,
        })
    }

    /// The variable named `name`, following an alias.
    pub fn get(&self, name: &str) -> Option<&Variable> {
        let name = self.aliases.get(name).map_or(name, String::as_str);
        self.variables.get(name)
    }

    /// The variable as a float tensor: float data as stored (float16 stays float16), quantized
    /// integers divided by their `_scale` variable into float32.
    pub fn tensor(&self, name: &str) -> std::result::Result<Tensor, String> {
        let var = self
            .get(name)
            .ok_or_else(|| format!("variable `{name}` is missing"))?;
        let raw = |dtype| {
            Tensor::from_raw_buffer(&var.data, dtype, &var.shape, &Device::Cpu)
                .map_err(|e| format!("variable `{name}`: {e}"))
        };
        match var.dtype {
            Ct2DType::F32 => raw(DType::F32),
            Ct2DType::F16 => raw(DType::F16),
            Ct2DType::BF16 => raw(DType::BF16),
            Ct2DType::I8 | Ct2DType::I16 => self.dequantize(name, var),
            Ct2DType::I32 => Err(format!("variable `{name}` is int32, not a weight")),
        }
    }

    fn dequantize(&self, name: &str, var: &Variable) -> std::result::Result<Tensor, String> {
        let scale_name = format!("{name}_scale");
        let scale = self.tensor(&scale_name).map_err(|_| {
            format!(
                "variable `{name}` is {} without a `{scale_name}`",
                var.dtype.name()
            )
        })?;
        let scale: Vec<f32> = scale
            .to_dtype(DType::F32)
            .and_then(|s| s.flatten_all())
            .and_then(|s| s.to_vec1())
            .map_err(|e| format!("variable `{scale_name}`: {e}"))?;
        let values: Vec<f32> = match var.dtype {
            Ct2DType::I8 => var.data.iter().map(|&b| b as i8 as f32).collect(),
            _ => var
                .data
                .chunks_exact(2)
                .map(|b| i16::from_le_bytes([b[0], b[1]]) as f32)
                .collect(),
        };
        let rows = match scale.len() {
            1 => 1,
            n if var.shape.first() == Some(&n) => n,
            n => {
                return Err(format!(
                    "variable `{name}` of shape {:?} has {n} scales",
                    var.shape
                ));
            }
        };
        let per_row = values.len() / rows.max(1);
        let floats: Vec<f32> = values
            .iter()
            .enumerate()
            .map(|(i, v)| v / scale[(i / per_row.max(1)).min(rows - 1)])
            .collect();
        Tensor::from_vec(floats, var.shape.as_slice(), &Device::Cpu)
            .map_err(|e| format!("variable `{name}`: {e}"))
    }

    /// A scalar integer variable.
    fn int(&self, name: &str) -> std::result::Result<i64, String> {
        self.get(name)
            .and_then(Variable::as_int)
            .ok_or_else(|| format!("scalar `{name}` is missing"))
    }

    /// How many `{prefix}/layer_N/` blocks there are.
    fn layers(&self, prefix: &str) -> usize {
        let start = format!("{prefix}/layer_");
        self.variables
            .keys()
            .filter_map(|k| k.strip_prefix(&start))
            .filter_map(|rest| rest.split('/').next()?.parse::<usize>().ok())
            .map(|i| i + 1)
            .max()
            .unwrap_or(0)
    }

    fn dim(&self, name: &str, axis: usize) -> std::result::Result<usize, String> {
        let var = self
            .get(name)
            .ok_or_else(|| format!("variable `{name}` is missing"))?;
        var.shape.get(axis).copied().ok_or_else(|| {
            format!(
                "variable `{name}` of shape {:?} has no axis {axis}",
                var.shape
            )
        })
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &str) -> std::result::Result<&'a [u8], String> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.bytes.len());
        let Some(end) = end else {
            return Err(format!(
                "the file ends at byte {} while reading {what} of {n} bytes at byte {} \
                 (truncated?)",
                self.bytes.len(),
                self.pos
            ));
        };
        let slice = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(slice)
    }

    fn u8(&mut self, what: &str) -> std::result::Result<u8, String> {
        Ok(self.take(1, what)?[0])
    }

    fn u32(&mut self, what: &str) -> std::result::Result<u32, String> {
        let b = self.take(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn string(&mut self, what: &str) -> std::result::Result<String, String> {
        let at = self.pos;
        let b = self.take(2, what)?;
        let len = u16::from_le_bytes([b[0], b[1]]) as usize;
        if len == 0 {
            return Err(format!("{what} at byte {at} has length 0"));
        }
        let raw = self.take(len, what)?;
        let text = &raw[..len - 1];
        String::from_utf8(text.to_vec()).map_err(|_| format!("{what} at byte {at} is not UTF-8"))
    }
}

/// What `import_whisper` wrote.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ImportSummary {
    /// The spec of the source model (`WhisperSpec`).
    pub spec: String,
    /// The directory written.
    pub out: PathBuf,
    /// The element types of the source's weights, e.g. `["float16"]`.
    pub source_dtypes: Vec<String>,
    /// How many tensors `model.safetensors` holds.
    pub tensors: usize,
    /// The `config.json` written.
    pub config: Value,
}

/// Converts the CTranslate2 Whisper model in `src` (`model.bin`, `config.json`,
/// `tokenizer.json`) into Hugging Face layout in `out` (created if needed).
pub fn import_whisper(src: &Path, out: &Path) -> Result<ImportSummary> {
    if !src.is_dir() {
        return Err(InferError::ModelNotFound {
            dir: src.to_path_buf(),
            hint: String::new(),
        });
    }
    let bin = src.join("model.bin");
    if !bin.is_file() {
        return Err(InferError::InvalidModel {
            path: bin,
            reason: "missing (a CTranslate2 model directory holds model.bin, config.json and \
                     tokenizer.json)"
                .to_string(),
        });
    }
    let tokenizer_src = src.join("tokenizer.json");
    if !tokenizer_src.is_file() {
        return Err(InferError::InvalidModel {
            path: tokenizer_src,
            reason: "missing: the Hugging Face tokenizer of the model is needed (faster-whisper \
                     models ship it beside model.bin)"
                .to_string(),
        });
    }
    let model = Ct2Model::read(&bin)?;
    if model.spec != "WhisperSpec" {
        return Err(InferError::Unsupported(format!(
            "`{}` holds a {} model; only Whisper models (WhisperSpec) can be imported",
            bin.display(),
            if model.spec.is_empty() {
                "spec-less (binary version 1)"
            } else {
                model.spec.as_str()
            }
        )));
    }
    let ct2_config_path = src.join("config.json");
    let ct2_config: Value = if ct2_config_path.is_file() {
        let bytes = std::fs::read(&ct2_config_path).map_err(|source| InferError::Read {
            path: ct2_config_path.clone(),
            source,
        })?;
        serde_json::from_slice(&bytes).map_err(|e| InferError::InvalidModel {
            path: ct2_config_path.clone(),
            reason: e.to_string(),
        })?
    } else {
        json!({})
    };
    let tokenizer =
        tokenizers::Tokenizer::from_file(&tokenizer_src).map_err(|e| InferError::InvalidModel {
            path: tokenizer_src.clone(),
            reason: e.to_string(),
        })?;
    let invalid = |reason: String| InferError::InvalidModel {
        path: bin.clone(),
        reason,
    };
    let tensors = whisper_tensors(&model).map_err(invalid)?;
    let config = whisper_config(&model, &ct2_config, &tokenizer).map_err(invalid)?;

    std::fs::create_dir_all(out).map_err(|source| InferError::Read {
        path: out.to_path_buf(),
        source,
    })?;
    let weights = out.join("model.safetensors");
    candle_core::safetensors::save(&tensors, &weights).map_err(|e| InferError::InvalidModel {
        path: weights.clone(),
        reason: format!("cannot write: {e}"),
    })?;
    let write = |name: &str, value: &Value| -> Result<()> {
        let path = out.join(name);
        let text = serde_json::to_string_pretty(value).unwrap_or_default() + "\n";
        std::fs::write(&path, text).map_err(|source| InferError::Read { path, source })
    };
    write("config.json", &config)?;
    write(
        "generation_config.json",
        &generation_config(&config, &ct2_config),
    )?;
    let tokenizer_out = out.join("tokenizer.json");
    std::fs::copy(&tokenizer_src, &tokenizer_out).map_err(|source| InferError::Read {
        path: tokenizer_out,
        source,
    })?;
    let mut source_dtypes: Vec<String> = model
        .variables
        .values()
        .filter(|v| !v.shape.is_empty())
        .map(|v| v.dtype.name().to_string())
        .collect();
    source_dtypes.sort();
    source_dtypes.dedup();
    tracing::info!(out = %out.display(), tensors = tensors.len(), "imported a Whisper model");
    Ok(ImportSummary {
        spec: model.spec,
        out: out.to_path_buf(),
        source_dtypes,
        tensors: tensors.len(),
        config,
    })
}

/// The weights under transformers' names. CTranslate2 fuses self-attention's q, k and v (and
/// cross-attention's k and v) into one linear layer, with a zero bias for k, which has none.
fn whisper_tensors(model: &Ct2Model) -> std::result::Result<HashMap<String, Tensor>, String> {
    let mut out = HashMap::new();
    let mut put = |name: String, tensor: Tensor| {
        out.insert(name, tensor);
    };
    let t = |name: &str| model.tensor(name);
    let split = |tensor: &Tensor, parts: usize, i: usize, name: &str| {
        let rows = tensor.dim(0).map_err(|e| e.to_string())?;
        if rows % parts != 0 {
            return Err(format!(
                "variable `{name}` has {rows} rows, not a multiple of {parts}"
            ));
        }
        let n = rows / parts;
        tensor
            .narrow(0, i * n, n)
            .and_then(|t| t.contiguous())
            .map_err(|e| e.to_string())
    };
    let linear = |put: &mut dyn FnMut(String, Tensor), from: &str, to: &str| {
        put(format!("{to}.weight"), t(&format!("{from}/weight"))?);
        put(format!("{to}.bias"), t(&format!("{from}/bias"))?);
        Ok::<_, String>(())
    };
    let norm = |put: &mut dyn FnMut(String, Tensor), from: &str, to: &str| {
        put(format!("{to}.weight"), t(&format!("{from}/gamma"))?);
        put(format!("{to}.bias"), t(&format!("{from}/beta"))?);
        Ok::<_, String>(())
    };
    // `names` are the projections of the fused layer `from`, in order; k has no bias.
    let fused = |put: &mut dyn FnMut(String, Tensor), from: &str, to: &str, names: &[&str]| {
        let weight_name = format!("{from}/weight");
        let bias_name = format!("{from}/bias");
        let weight = t(&weight_name)?;
        let bias = t(&bias_name)?;
        for (i, proj) in names.iter().enumerate() {
            put(
                format!("{to}.{proj}.weight"),
                split(&weight, names.len(), i, &weight_name)?,
            );
            if *proj != "k_proj" {
                put(
                    format!("{to}.{proj}.bias"),
                    split(&bias, names.len(), i, &bias_name)?,
                );
            }
        }
        Ok::<_, String>(())
    };

    // The self-attention and feed-forward blocks of a layer, the same in encoder and decoder.
    let self_attention = |put: &mut dyn FnMut(String, Tensor), from: &str, to: &str| {
        fused(
            put,
            &format!("{from}/self_attention/linear_0"),
            &format!("{to}.self_attn"),
            &["q_proj", "k_proj", "v_proj"],
        )?;
        linear(
            put,
            &format!("{from}/self_attention/linear_1"),
            &format!("{to}.self_attn.out_proj"),
        )?;
        norm(
            put,
            &format!("{from}/self_attention/layer_norm"),
            &format!("{to}.self_attn_layer_norm"),
        )
    };
    let feed_forward = |put: &mut dyn FnMut(String, Tensor), from: &str, to: &str| {
        linear(put, &format!("{from}/ffn/linear_0"), &format!("{to}.fc1"))?;
        linear(put, &format!("{from}/ffn/linear_1"), &format!("{to}.fc2"))?;
        norm(
            put,
            &format!("{from}/ffn/layer_norm"),
            &format!("{to}.final_layer_norm"),
        )
    };

    for (from, to) in [("encoder/conv1", "conv1"), ("encoder/conv2", "conv2")] {
        linear(&mut put, from, &format!("model.encoder.{to}"))?;
    }
    put(
        "model.encoder.embed_positions.weight".into(),
        t("encoder/position_encodings/encodings")?,
    );
    norm(&mut put, "encoder/layer_norm", "model.encoder.layer_norm")?;
    for i in 0..model.layers("encoder") {
        let from = format!("encoder/layer_{i}");
        let to = format!("model.encoder.layers.{i}");
        self_attention(&mut put, &from, &to)?;
        feed_forward(&mut put, &from, &to)?;
    }

    put(
        "model.decoder.embed_tokens.weight".into(),
        t("decoder/embeddings/weight")?,
    );
    put(
        "model.decoder.embed_positions.weight".into(),
        t("decoder/position_encodings/encodings")?,
    );
    norm(&mut put, "decoder/layer_norm", "model.decoder.layer_norm")?;
    for i in 0..model.layers("decoder") {
        let from = format!("decoder/layer_{i}");
        let to = format!("model.decoder.layers.{i}");
        self_attention(&mut put, &from, &to)?;
        linear(
            &mut put,
            &format!("{from}/attention/linear_0"),
            &format!("{to}.encoder_attn.q_proj"),
        )?;
        fused(
            &mut put,
            &format!("{from}/attention/linear_1"),
            &format!("{to}.encoder_attn"),
            &["k_proj", "v_proj"],
        )?;
        linear(
            &mut put,
            &format!("{from}/attention/linear_2"),
            &format!("{to}.encoder_attn.out_proj"),
        )?;
        norm(
            &mut put,
            &format!("{from}/attention/layer_norm"),
            &format!("{to}.encoder_attn_layer_norm"),
        )?;
        feed_forward(&mut put, &from, &to)?;
    }
    // The output projection is tied to the token embeddings (an alias in model.bin); only a
    // projection stored on its own is written, as transformers does for untied weights.
    if model.variables.contains_key("decoder/projection/weight") {
        put("proj_out.weight".into(), t("decoder/projection/weight")?);
    }
    Ok(out)
}

/// transformers' `WhisperConfig`, with the dimensions read from the weights' shapes.
fn whisper_config(
    model: &Ct2Model,
    ct2_config: &Value,
    tokenizer: &tokenizers::Tokenizer,
) -> std::result::Result<Value, String> {
    let d_model = model.dim("decoder/embeddings/weight", 1)?;
    let vocab_size = model.dim("decoder/embeddings/weight", 0)?;
    let encoder_layers = model.layers("encoder");
    let decoder_layers = model.layers("decoder");
    if encoder_layers == 0 || decoder_layers == 0 {
        return Err("no encoder or decoder layers".to_string());
    }
    let token = |name: &str| {
        tokenizer
            .token_to_id(name)
            .ok_or_else(|| format!("the tokenizer has no `{name}` token"))
    };
    let eot = token("<|endoftext|>")?;
    let sot = token("<|startoftranscript|>")?;
    let no_timestamps = token("<|notimestamps|>")?;
    let ids = |key: &str| -> Vec<u64> {
        ct2_config
            .get(key)
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_u64).collect())
            .unwrap_or_default()
    };
    Ok(json!({
        "architectures": ["WhisperForConditionalGeneration"],
        "model_type": "whisper",
        "activation_function": "gelu",
        "num_mel_bins": model.dim("encoder/conv1/weight", 1)?,
        "d_model": d_model,
        "encoder_layers": encoder_layers,
        "encoder_attention_heads": model.int("encoder/num_heads")?,
        "encoder_ffn_dim": model.dim("encoder/layer_0/ffn/linear_0/weight", 0)?,
        "decoder_layers": decoder_layers,
        "decoder_attention_heads": model.int("decoder/num_heads")?,
        "decoder_ffn_dim": model.dim("decoder/layer_0/ffn/linear_0/weight", 0)?,
        "max_source_positions": model.dim("encoder/position_encodings/encodings", 0)?,
        "max_target_positions": model.dim("decoder/position_encodings/encodings", 0)?,
        "vocab_size": vocab_size,
        "scale_embedding": false,
        "tie_word_embeddings": !model.variables.contains_key("decoder/projection/weight"),
        "bos_token_id": eot,
        "eos_token_id": eot,
        "pad_token_id": eot,
        "decoder_start_token_id": sot,
        "suppress_tokens": ids("suppress_ids"),
        "begin_suppress_tokens": ids("suppress_ids_begin"),
        "no_timestamps_token_id": no_timestamps,
        "torch_dtype": "float32",
    }))
}

/// transformers' `generation_config.json`: the decoding settings CTranslate2 kept.
fn generation_config(config: &Value, ct2_config: &Value) -> Value {
    let mut out = json!({
        "suppress_tokens": config["suppress_tokens"],
        "begin_suppress_tokens": config["begin_suppress_tokens"],
        "no_timestamps_token_id": config["no_timestamps_token_id"],
        "decoder_start_token_id": config["decoder_start_token_id"],
        "bos_token_id": config["bos_token_id"],
        "eos_token_id": config["eos_token_id"],
        "pad_token_id": config["pad_token_id"],
        "max_length": config["max_target_positions"],
        "is_multilingual": config["vocab_size"].as_u64().is_some_and(|v| v >= 51865),
    });
    if let Some(heads) = ct2_config.get("alignment_heads") {
        out["alignment_heads"] = heads.clone();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes a model.bin the way CTranslate2's `_serialize` does.
    struct Writer(Vec<u8>);

    impl Writer {
        fn string(&mut self, s: &str) {
            self.0
                .extend_from_slice(&((s.len() + 1) as u16).to_le_bytes());
            self.0.extend_from_slice(s.as_bytes());
            self.0.push(0);
        }
        fn u32(&mut self, v: u32) {
            self.0.extend_from_slice(&v.to_le_bytes());
        }
        fn var(&mut self, name: &str, shape: &[u32], type_id: u8, data: &[u8]) {
            self.string(name);
            self.0.push(shape.len() as u8);
            for d in shape {
                self.u32(*d);
            }
            self.0.push(type_id);
            self.u32(data.len() as u32);
            self.0.extend_from_slice(data);
        }
    }

    fn f32_bytes(v: &[f32]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    fn sample() -> Vec<u8> {
        let mut w = Writer(Vec::new());
        w.u32(6);
        w.string("WhisperSpec");
        w.u32(3);
        w.u32(4);
        w.var("a/weight", &[2, 2], 0, &f32_bytes(&[1.0, 2.0, 3.0, 4.0]));
        // int8 rows [10, -20] and [127, 0] with scales 10 and 127.
        w.var("b/weight", &[2, 2], 1, &[10u8, (-20i8) as u8, 127, 0]);
        w.var("b/weight_scale", &[2], 0, &f32_bytes(&[10.0, 127.0]));
        w.var("n/num_heads", &[], 2, &6i16.to_le_bytes());
        w.u32(1);
        w.string("c/weight");
        w.string("a/weight");
        w.0
    }

    #[test]
    fn reads_variables_dequantizes_int8_and_follows_aliases() {
        let model = Ct2Model::parse(&sample()).unwrap();
        assert_eq!(model.binary_version, 6);
        assert_eq!(model.spec, "WhisperSpec");
        assert_eq!(model.revision, 3);
        assert_eq!(model.variables.len(), 4);
        assert_eq!(model.int("n/num_heads").unwrap(), 6);
        let a: Vec<Vec<f32>> = model.tensor("a/weight").unwrap().to_vec2().unwrap();
        assert_eq!(a, vec![vec![1.0, 2.0], vec![3.0, 4.0]]);
        let c: Vec<Vec<f32>> = model.tensor("c/weight").unwrap().to_vec2().unwrap();
        assert_eq!(c, a);
        let b: Vec<Vec<f32>> = model.tensor("b/weight").unwrap().to_vec2().unwrap();
        assert_eq!(b, vec![vec![1.0, -2.0], vec![1.0, 0.0]]);
    }

    #[test]
    fn truncated_and_foreign_files_are_refused_with_a_reason() {
        let bytes = sample();
        let err = Ct2Model::parse(&bytes[..bytes.len() - 3]).unwrap_err();
        assert!(err.contains("truncated"), "{err}");
        let err = Ct2Model::parse(b"PK\x03\x04 not a model").unwrap_err();
        assert!(err.contains("binary version"), "{err}");
        let mut extra = bytes.clone();
        extra.push(0);
        assert!(Ct2Model::parse(&extra).unwrap_err().contains("left over"));
    }

    #[test]
    fn a_payload_that_does_not_match_its_shape_is_refused() {
        let mut w = Writer(Vec::new());
        w.u32(6);
        w.string("WhisperSpec");
        w.u32(3);
        w.u32(1);
        w.var("a/weight", &[2, 2], 0, &f32_bytes(&[1.0, 2.0, 3.0]));
        w.u32(0);
        let err = Ct2Model::parse(&w.0).unwrap_err();
        assert!(err.contains("not 16"), "{err}");
    }

    #[test]
    fn fused_attention_is_split_into_transformers_names() {
        // A one-layer, d_model 2 Whisper with every variable the import reads.
        let d = 2u32;
        let mut w = Writer(Vec::new());
        let mut vars: Vec<(String, Vec<u32>, Vec<f32>)> = Vec::new();
        let mut add = |name: &str, shape: &[u32]| {
            let n: u32 = shape.iter().product();
            let values = (0..n).map(|i| i as f32).collect();
            vars.push((name.to_string(), shape.to_vec(), values));
        };
        for conv in ["encoder/conv1", "encoder/conv2"] {
            add(&format!("{conv}/weight"), &[d, 3, 3]);
            add(&format!("{conv}/bias"), &[d]);
        }
        add("encoder/position_encodings/encodings", &[4, d]);
        add("decoder/position_encodings/encodings", &[4, d]);
        add("decoder/embeddings/weight", &[5, d]);
        for ln in ["encoder/layer_norm", "decoder/layer_norm"] {
            add(&format!("{ln}/gamma"), &[d]);
            add(&format!("{ln}/beta"), &[d]);
        }
        for stack in ["encoder", "decoder"] {
            let p = format!("{stack}/layer_0");
            add(&format!("{p}/self_attention/linear_0/weight"), &[3 * d, d]);
            add(&format!("{p}/self_attention/linear_0/bias"), &[3 * d]);
            add(&format!("{p}/self_attention/linear_1/weight"), &[d, d]);
            add(&format!("{p}/self_attention/linear_1/bias"), &[d]);
            for ln in ["self_attention/layer_norm", "ffn/layer_norm"] {
                add(&format!("{p}/{ln}/gamma"), &[d]);
                add(&format!("{p}/{ln}/beta"), &[d]);
            }
            add(&format!("{p}/ffn/linear_0/weight"), &[4 * d, d]);
            add(&format!("{p}/ffn/linear_0/bias"), &[4 * d]);
            add(&format!("{p}/ffn/linear_1/weight"), &[d, 4 * d]);
            add(&format!("{p}/ffn/linear_1/bias"), &[d]);
        }
        let p = "decoder/layer_0/attention";
        add(&format!("{p}/linear_0/weight"), &[d, d]);
        add(&format!("{p}/linear_0/bias"), &[d]);
        add(&format!("{p}/linear_1/weight"), &[2 * d, d]);
        add(&format!("{p}/linear_1/bias"), &[2 * d]);
        add(&format!("{p}/linear_2/weight"), &[d, d]);
        add(&format!("{p}/linear_2/bias"), &[d]);
        add(&format!("{p}/layer_norm/gamma"), &[d]);
        add(&format!("{p}/layer_norm/beta"), &[d]);
        w.u32(6);
        w.string("WhisperSpec");
        w.u32(3);
        w.u32(vars.len() as u32 + 2);
        for (name, shape, values) in &vars {
            w.var(name, shape, 0, &f32_bytes(values));
        }
        w.var("encoder/num_heads", &[], 2, &1i16.to_le_bytes());
        w.var("decoder/num_heads", &[], 2, &1i16.to_le_bytes());
        w.u32(1);
        w.string("decoder/projection/weight");
        w.string("decoder/embeddings/weight");
        let model = Ct2Model::parse(&w.0).unwrap();

        let tensors = whisper_tensors(&model).unwrap();
        let get =
            |name: &str| -> Vec<f32> { tensors[name].flatten_all().unwrap().to_vec1().unwrap() };
        let attn = "model.encoder.layers.0.self_attn";
        assert_eq!(get(&format!("{attn}.q_proj.weight")), [0.0, 1.0, 2.0, 3.0]);
        assert_eq!(get(&format!("{attn}.k_proj.weight")), [4.0, 5.0, 6.0, 7.0]);
        assert_eq!(
            get(&format!("{attn}.v_proj.weight")),
            [8.0, 9.0, 10.0, 11.0]
        );
        assert_eq!(get(&format!("{attn}.q_proj.bias")), [0.0, 1.0]);
        assert_eq!(get(&format!("{attn}.v_proj.bias")), [4.0, 5.0]);
        assert!(!tensors.contains_key(&format!("{attn}.k_proj.bias")));
        let cross = "model.decoder.layers.0.encoder_attn";
        assert_eq!(get(&format!("{cross}.k_proj.weight")), [0.0, 1.0, 2.0, 3.0]);
        assert_eq!(get(&format!("{cross}.v_proj.weight")), [4.0, 5.0, 6.0, 7.0]);
        assert_eq!(get(&format!("{cross}.v_proj.bias")), [2.0, 3.0]);
        assert_eq!(get("model.decoder.layer_norm.weight"), [0.0, 1.0]);
        // Tied: no separate projection.
        assert!(!tensors.contains_key("proj_out.weight"));
        // What candle's Whisper loads: every name it asks for is there.
        assert!(tensors.contains_key("model.decoder.embed_positions.weight"));
        assert!(tensors.contains_key("model.encoder.layers.0.fc2.bias"));
        assert_eq!(model.layers("encoder"), 1);
        assert_eq!(model.dim("decoder/embeddings/weight", 0).unwrap(), 5);
    }
}
