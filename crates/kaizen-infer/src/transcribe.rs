//! Speech to text with Whisper in Hugging Face layout (`config.json`, `tokenizer.json`,
//! `model.safetensors`; `kaizen models import --from ctranslate2` makes one from
//! faster-whisper's files), on kaizen's own Whisper encoder and cached decoder (`whisper.rs`)
//! over candle.
//!
//! Decoding follows OpenAI's `transcribe()`: the audio is cut into 30-second windows of log-mel
//! frames; in each the decoder predicts text and timestamp tokens under Whisper's logit rules
//! (suppressed tokens, no blank at the start, timestamps in pairs and never decreasing, the first
//! timestamp within 1 s), greedily first. A window whose text is too repetitive (its zlib
//! compression ratio above 2.4, the sign of a decoding loop) or too unlikely (average log
//! probability below -1) is decoded again by sampling at temperatures 0.2, 0.4, … 1.0 until one
//! passes (one sample per temperature, where OpenAI keeps the best of five); the sampler is
//! seeded by the window's position, so the same audio always gives the same text. A window
//! whose first prediction is "no speech" with low confidence is skipped; the next window starts
//! at the last complete timestamp, so a word cut by the window's end is heard again whole.

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::whisper::{self as m, Config};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use tokenizers::Tokenizer;

use crate::audio::{self, Audio};
use crate::embed::Embedder;
use crate::error::{InferError, Result};
use crate::summarize::Summary;
use crate::whisper::{Decoder, Encoder};

/// At most this many tokens are sampled per window (Whisper's `n_text_ctx // 2`).
const SAMPLE_LEN: usize = 224;
/// Seconds per timestamp token.
const TIME_PRECISION: f64 = 0.02;
/// Mel frames per timestamp step (`N_FRAMES / n_audio_ctx`).
const INPUT_STRIDE: usize = 2;
/// The first timestamp may be at most this many steps in (1 s).
const MAX_INITIAL_TIMESTAMP: u32 = 50;

/// One stretch of speech with its time in the audio.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Segment {
    /// Seconds from the start of the audio.
    pub start: f64,
    pub end: f64,
    pub text: String,
}

/// What `kaizen transcribe --json` and `POST /v1/transcribe` answer.
#[derive(Debug, Clone, Serialize)]
pub struct Transcript {
    pub text: String,
    pub segments: Vec<Segment>,
    pub model: String,
    pub audio_seconds: f64,
}

/// Told after each 30-second window; the binary draws a progress bar with it.
pub trait Progress: Sync {
    /// `done` of `total` seconds of audio are transcribed.
    fn advance(&self, done: f64, total: f64);
}

/// No progress reported.
impl Progress for () {
    fn advance(&self, _done: f64, _total: f64) {}
}

#[derive(Deserialize)]
struct ExtraConfig {
    #[serde(default)]
    begin_suppress_tokens: Vec<u32>,
}

/// The special tokens decoding needs, read from the tokenizer.
#[derive(Debug, Clone)]
struct Specials {
    sot: u32,
    eot: u32,
    no_timestamps: u32,
    timestamp_begin: u32,
    no_speech: Option<u32>,
}

/// A loaded Whisper model.
pub struct Transcriber {
    encoder: Encoder,
    decoder: Decoder,
    tokenizer: Tokenizer,
    config: Config,
    filters: Vec<f32>,
    specials: Specials,
    /// `<|startoftranscript|>`, and for multilingual models `<|en|><|transcribe|>`.
    sot_sequence: Vec<u32>,
    suppress: Vec<u32>,
    begin_suppress: Vec<u32>,
    device: Device,
    name: String,
}

impl std::fmt::Debug for Transcriber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transcriber")
            .field("name", &self.name)
            .field("config", &self.config)
            .finish()
    }
}

impl Transcriber {
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
        let config_bytes = read(&config_path)?;
        let invalid = |path: &Path, reason: String| InferError::InvalidModel {
            path: path.to_path_buf(),
            reason,
        };
        let config: Config = serde_json::from_slice(&config_bytes)
            .map_err(|e| invalid(&config_path, format!("not a Whisper config: {e}")))?;
        let extra: ExtraConfig = serde_json::from_slice(&config_bytes)
            .map_err(|e| invalid(&config_path, e.to_string()))?;
        let tokenizer_path = dir.join("tokenizer.json");
        read(&tokenizer_path)?;
        let tokenizer = Tokenizer::from_file(&tokenizer_path)
            .map_err(|e| invalid(&tokenizer_path, e.to_string()))?;
        let token = |name: &str| tokenizer.token_to_id(name);
        let need = |name: &str| {
            token(name).ok_or_else(|| invalid(&tokenizer_path, format!("no `{name}` token")))
        };
        let no_timestamps = need(m::NO_TIMESTAMPS_TOKEN)?;
        let specials = Specials {
            sot: need(m::SOT_TOKEN)?,
            eot: need(m::EOT_TOKEN)?,
            no_timestamps,
            timestamp_begin: no_timestamps + 1,
            no_speech: m::NO_SPEECH_TOKENS.iter().find_map(|&t| token(t)),
        };
        if specials.timestamp_begin as usize >= config.vocab_size {
            return Err(invalid(
                &config_path,
                format!(
                    "vocab_size {} leaves no room for timestamp tokens after {}",
                    config.vocab_size, no_timestamps
                ),
            ));
        }
        // English-only models start with <|startoftranscript|> alone; multilingual ones are
        // told the language and the task.
        let multilingual = config.vocab_size >= 51_865;
        let mut sot_sequence = vec![specials.sot];
        if multilingual {
            sot_sequence.push(need("<|en|>")?);
            sot_sequence.push(need(m::TRANSCRIBE_TOKEN)?);
        }
        // Whisper suppresses the task and start tokens besides the configured ones.
        let mut suppress = config.suppress_tokens.clone();
        for name in [
            m::TRANSCRIBE_TOKEN,
            m::TRANSLATE_TOKEN,
            m::SOT_TOKEN,
            "<|startofprev|>",
            "<|startoflm|>",
        ] {
            suppress.extend(token(name));
        }
        suppress.extend(specials.no_speech);
        suppress.retain(|&t| (t as usize) < config.vocab_size);
        suppress.sort_unstable();
        suppress.dedup();
        let mut begin_suppress = extra.begin_suppress_tokens;
        if begin_suppress.is_empty() {
            // transformers' default: a blank (" ") and end-of-text.
            begin_suppress.extend(tokenizer.token_to_id("Ġ"));
            begin_suppress.push(specials.eot);
        }
        begin_suppress.retain(|&t| (t as usize) < config.vocab_size);

        let weights = dir.join("model.safetensors");
        read_len(&weights)?;
        // SAFETY: the weights file is mapped read-only; candle copies what it keeps.
        let vb = unsafe { VarBuilder::from_mmaped_safetensors(&[&weights], DType::F32, &device) }
            .map_err(|e| invalid(&weights, e.to_string()))?;
        let encoder = Encoder::load(&vb, &config).map_err(|e| invalid(&weights, e.to_string()))?;
        let decoder = Decoder::load(&vb, &config).map_err(|e| invalid(&weights, e.to_string()))?;
        let filters = audio::mel_filters(audio::SAMPLE_RATE, m::N_FFT, config.num_mel_bins);
        let name = dir
            .canonicalize()
            .unwrap_or_else(|_| dir.to_path_buf())
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "whisper".to_string());
        tracing::debug!(model = %name, multilingual, "loaded a Whisper model");
        Ok(Transcriber {
            encoder,
            decoder,
            tokenizer,
            config,
            filters,
            specials,
            sot_sequence,
            suppress,
            begin_suppress,
            device,
            name,
        })
    }

    /// The model's name: its directory's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Transcribes 16 kHz mono audio.
    pub fn transcribe(&self, audio: &Audio) -> Result<Transcript> {
        self.transcribe_with(audio, &())
    }

    /// Transcribes, telling `progress` after each window.
    pub fn transcribe_with(&self, audio: &Audio, progress: &dyn Progress) -> Result<Transcript> {
        kaizen_kernels::on_thread_pool(|| self.transcribe_on_pool(audio, progress))
    }

    fn transcribe_on_pool(&self, audio: &Audio, progress: &dyn Progress) -> Result<Transcript> {
        let total = audio.seconds();
        if audio.samples.is_empty() {
            return Err(InferError::invalid("the audio is empty"));
        }
        let n_mels = self.config.num_mel_bins;
        let mel = audio::log_mel(
            &audio.samples,
            &self.filters,
            m::N_FFT,
            m::HOP_LENGTH,
            n_mels,
        );
        let mel_len = mel.len() / n_mels;
        let mel = Tensor::from_vec(mel, (1, n_mels, mel_len), &self.device)?;
        let content_frames = (audio.samples.len() / m::HOP_LENGTH).min(mel_len);
        let mut segments = Vec::new();
        let mut seek = 0;
        while seek < content_frames {
            let time_offset = (seek * m::HOP_LENGTH) as f64 / m::SAMPLE_RATE as f64;
            let segment_size = (content_frames - seek).min(m::N_FRAMES);
            let segment_seconds = (segment_size * m::HOP_LENGTH) as f64 / m::SAMPLE_RATE as f64;
            // Whisper pads a short window with zeros to the 30 s the encoder was trained on.
            let mut window = mel.narrow(2, seek, segment_size)?;
            if segment_size < m::N_FRAMES {
                let pad = Tensor::zeros(
                    (1, n_mels, m::N_FRAMES - segment_size),
                    DType::F32,
                    &self.device,
                )?;
                window = Tensor::cat(&[&window, &pad], 2)?;
            }
            let features = self.encoder.forward(&window)?;
            let decoded = self.decode_with_fallback(&features, seek)?;
            let skip = decoded.no_speech_prob > m::NO_SPEECH_THRESHOLD
                && decoded.avg_logprob <= m::LOGPROB_THRESHOLD;
            let advance = if skip {
                tracing::debug!(
                    time_offset,
                    no_speech_prob = decoded.no_speech_prob,
                    "no speech in this window"
                );
                segment_size
            } else {
                let (found, advance) =
                    self.segments(&decoded.tokens, time_offset, segment_seconds, segment_size)?;
                segments.extend(found);
                advance
            };
            // A window always moves on, even when its only timestamp is <|0.00|>.
            seek += advance.clamp(1, segment_size);
            progress.advance(
                ((seek * m::HOP_LENGTH) as f64 / m::SAMPLE_RATE as f64).min(total),
                total,
            );
        }
        for s in &mut segments {
            s.end = s.end.min(total).max(s.start);
        }
        let text = segments
            .iter()
            .map(|s| s.text.as_str())
            .collect::<Vec<_>>()
            .join(" ");
        Ok(Transcript {
            text,
            segments,
            model: self.name.clone(),
            audio_seconds: total,
        })
    }

    /// One window's tokens: greedy, then sampled at rising temperatures while the text looks
    /// like a decoding loop or is too unlikely, unless the window is silence (Whisper's
    /// `decode_with_fallback`). `seek` seeds the sampler.
    fn decode_with_fallback(&self, features: &Tensor, seek: usize) -> Result<Decoded> {
        let mut rng = StdRng::seed_from_u64(seek as u64);
        let mut decoded = self.decode_window(features, 0.0, &mut rng)?;
        for &temperature in &m::TEMPERATURES[1..] {
            let ratio = compression_ratio(&self.text(&decoded.tokens)?);
            let unlikely = decoded.avg_logprob < m::LOGPROB_THRESHOLD;
            let silence = decoded.no_speech_prob > m::NO_SPEECH_THRESHOLD && unlikely;
            if silence || (ratio <= m::COMPRESSION_RATIO_THRESHOLD && !unlikely) {
                break;
            }
            tracing::debug!(
                seek,
                compression_ratio = ratio,
                avg_logprob = decoded.avg_logprob,
                temperature,
                "decoding the window again"
            );
            decoded = self.decode_window(features, temperature, &mut rng)?;
        }
        Ok(decoded)
    }

    /// The text of sampled tokens (timestamps and special tokens left out).
    fn text(&self, tokens: &[u32]) -> Result<String> {
        let text_tokens: Vec<u32> = tokens
            .iter()
            .copied()
            .filter(|&t| t < self.specials.eot)
            .collect();
        self.tokenizer
            .decode(&text_tokens, true)
            .map_err(|e| InferError::Tokenizer(e.to_string()))
    }

    /// One decoding of a window's encoder features: the most likely token at each step at
    /// temperature 0, a sample of the tempered distribution above it.
    fn decode_window(
        &self,
        features: &Tensor,
        temperature: f64,
        rng: &mut StdRng,
    ) -> Result<Decoded> {
        let mut state = self.decoder.start(features)?;
        let mut tokens = self.sot_sequence.clone();
        let sample_begin = tokens.len();
        let mut sum_logprob = 0f64;
        let mut no_speech_prob = 0f64;
        let max_tokens = self.config.max_target_positions;
        for step in 0..SAMPLE_LEN {
            if tokens.len() >= max_tokens {
                break;
            }
            // The first step runs the start sequence; each later one the token it chose.
            let new = &tokens[state.len()..];
            let hidden = self.decoder.forward(new, &mut state)?;
            if step == 0
                && let Some(no_speech) = self.specials.no_speech
            {
                // The probability of "no speech" at <|startoftranscript|>, before any rule.
                let logits = self.decoder.logits(&hidden.narrow(0, 0, 1)?)?;
                no_speech_prob = softmax_at(&logits, no_speech as usize);
            }
            let mut logits = self.decoder.logits(&hidden.narrow(0, new.len() - 1, 1)?)?;
            self.apply_rules(&mut logits, &tokens[sample_begin..]);
            let next = if temperature > 0.0 {
                sample(&logits, temperature, rng)
            } else {
                argmax(&logits)
            };
            sum_logprob += log_softmax_at(&logits, next);
            if next as u32 == self.specials.eot {
                break;
            }
            tokens.push(next as u32);
        }
        let sampled = tokens.split_off(sample_begin);
        Ok(Decoded {
            avg_logprob: sum_logprob / (sampled.len() + 1) as f64,
            tokens: sampled,
            no_speech_prob,
        })
    }

    /// Whisper's logit filters, in its order: SuppressBlank, SuppressTokens,
    /// ApplyTimestampRules.
    fn apply_rules(&self, logits: &mut [f32], sampled: &[u32]) {
        let ninf = f32::NEG_INFINITY;
        if sampled.is_empty() {
            for &t in &self.begin_suppress {
                logits[t as usize] = ninf;
            }
        }
        for &t in &self.suppress {
            logits[t as usize] = ninf;
        }
        timestamp_rules(
            logits,
            sampled,
            self.specials.timestamp_begin as usize,
            self.specials.eot as usize,
            self.specials.no_timestamps as usize,
        );
    }

    /// The segments of a window's tokens and how many mel frames to move on, as Whisper's
    /// `transcribe()` cuts them.
    fn segments(
        &self,
        tokens: &[u32],
        time_offset: f64,
        segment_seconds: f64,
        segment_size: usize,
    ) -> Result<(Vec<Segment>, usize)> {
        let tb = self.specials.timestamp_begin;
        let is_ts = |t: u32| t >= tb;
        let n = tokens.len();
        let single_timestamp_ending = n >= 2 && !is_ts(tokens[n - 2]) && is_ts(tokens[n - 1]);
        let consecutive: Vec<usize> = (1..n)
            .filter(|&i| is_ts(tokens[i - 1]) && is_ts(tokens[i]))
            .collect();
        let mut segments = Vec::new();
        if !consecutive.is_empty() {
            let mut slices = consecutive;
            if single_timestamp_ending {
                slices.push(n);
            }
            let mut last_slice = 0;
            for &current in &slices {
                let sliced = &tokens[last_slice..current];
                let start = (sliced[0].saturating_sub(tb)) as f64 * TIME_PRECISION;
                let end = (sliced[sliced.len() - 1].saturating_sub(tb)) as f64 * TIME_PRECISION;
                self.push_segment(
                    &mut segments,
                    sliced,
                    time_offset + start,
                    time_offset + end,
                )?;
                last_slice = current;
            }
            let advance = if single_timestamp_ending {
                segment_size
            } else {
                (tokens[last_slice - 1].saturating_sub(tb)) as usize * INPUT_STRIDE
            };
            Ok((segments, advance))
        } else {
            let mut duration = segment_seconds;
            if let Some(&last) = tokens.iter().rev().find(|&&t| is_ts(t))
                && last != tb
            {
                duration = (last - tb) as f64 * TIME_PRECISION;
            }
            self.push_segment(&mut segments, tokens, time_offset, time_offset + duration)?;
            Ok((segments, segment_size))
        }
    }

    fn push_segment(
        &self,
        segments: &mut Vec<Segment>,
        tokens: &[u32],
        start: f64,
        end: f64,
    ) -> Result<()> {
        let text = self.text(tokens)?;
        let text = text.trim();
        if !text.is_empty() {
            segments.push(Segment {
                start: round_ms(start),
                end: round_ms(end),
                text: text.to_string(),
            });
        }
        Ok(())
    }
}

/// An extractive summary of a transcript's text in at most `sentences` of its sentences
/// (`kaizen summarize`'s); `None` when nothing was said.
pub fn summarize_transcript(
    embedder: &Embedder,
    text: &str,
    sentences: usize,
) -> Result<Option<Summary>> {
    if text.trim().is_empty() {
        return Ok(None);
    }
    crate::summarize(embedder, text, sentences).map(Some)
}

/// Reads a WAV file and transcribes it.
pub fn transcribe_file(
    transcriber: &Transcriber,
    path: &Path,
    progress: &dyn Progress,
) -> Result<Transcript> {
    let audio = audio::read_wav_file(path)?;
    transcriber.transcribe_with(&audio, progress)
}

struct Decoded {
    /// The sampled tokens, without the start sequence and end-of-text.
    tokens: Vec<u32>,
    avg_logprob: f64,
    no_speech_prob: f64,
}

/// Whisper's `ApplyTimestampRules` on one sequence's logits (`sampled`: the tokens after the
/// start sequence).
fn timestamp_rules(
    logits: &mut [f32],
    sampled: &[u32],
    timestamp_begin: usize,
    eot: usize,
    no_timestamps: usize,
) {
    let ninf = f32::NEG_INFINITY;
    let vocab = logits.len();
    let tb = timestamp_begin.min(vocab);
    logits[no_timestamps] = ninf;
    let is_ts = |t: u32| t as usize >= timestamp_begin;
    if let Some(&last) = sampled.last() {
        let last_was_timestamp = is_ts(last);
        let penultimate_was_timestamp = sampled.len() < 2 || is_ts(sampled[sampled.len() - 2]);
        if last_was_timestamp {
            if penultimate_was_timestamp {
                logits[tb..].fill(ninf);
            } else {
                logits[..eot.min(vocab)].fill(ninf);
            }
        }
        if let Some(&last_ts) = sampled.iter().rev().find(|&&t| is_ts(t)) {
            // Timestamps never decrease, and a segment is never empty.
            let limit = if last_was_timestamp && !penultimate_was_timestamp {
                last_ts as usize
            } else {
                last_ts as usize + 1
            };
            logits[tb..limit.clamp(tb, vocab)].fill(ninf);
        }
    } else {
        // The first token is a timestamp, at most 1 s in.
        logits[..tb].fill(ninf);
        let last_allowed = tb + MAX_INITIAL_TIMESTAMP as usize;
        if last_allowed + 1 < vocab {
            logits[last_allowed + 1..].fill(ninf);
        }
    }
    // When the timestamps together are likelier than any text token, take a timestamp.
    let log_probs = log_softmax(logits);
    let timestamp_logprob = logsumexp(&log_probs[tb..]);
    let max_text = log_probs[..tb]
        .iter()
        .copied()
        .fold(f64::NEG_INFINITY, f64::max);
    if timestamp_logprob > max_text {
        logits[..tb].fill(ninf);
    }
}

fn argmax(values: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in values.iter().enumerate() {
        if v > values[best] {
            best = i;
        }
    }
    best
}

/// A token drawn from `softmax(logits / temperature)`; suppressed tokens (-∞) are never drawn.
fn sample(logits: &[f32], temperature: f64, rng: &mut StdRng) -> usize {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    if max == f64::NEG_INFINITY {
        return argmax(logits);
    }
    let weights: Vec<f64> = logits
        .iter()
        .map(|&l| ((l as f64 - max) / temperature).exp())
        .collect();
    let mut draw = rng.random::<f64>() * weights.iter().sum::<f64>();
    for (i, &w) in weights.iter().enumerate() {
        if draw < w {
            return i;
        }
        draw -= w;
    }
    // Rounding left the draw past the last weight: the last token with any.
    weights.iter().rposition(|&w| w > 0.0).unwrap_or(0)
}

/// The UTF-8 length of `text` over its zlib-compressed length (Whisper's check for a decoding
/// loop: repeated text compresses well).
fn compression_ratio(text: &str) -> f64 {
    use std::io::Write;
    if text.is_empty() {
        return 0.0;
    }
    let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    // Writing to memory cannot fail; a failure would only skip the check.
    match encoder
        .write_all(text.as_bytes())
        .and_then(|()| encoder.finish())
    {
        Ok(compressed) if !compressed.is_empty() => text.len() as f64 / compressed.len() as f64,
        _ => 0.0,
    }
}

fn log_softmax(logits: &[f32]) -> Vec<f64> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    if max == f64::NEG_INFINITY {
        return vec![f64::NEG_INFINITY; logits.len()];
    }
    let sum: f64 = logits.iter().map(|&l| (l as f64 - max).exp()).sum();
    let log_sum = max + sum.ln();
    logits.iter().map(|&l| l as f64 - log_sum).collect()
}

fn log_softmax_at(logits: &[f32], i: usize) -> f64 {
    log_softmax(logits)[i]
}

fn softmax_at(logits: &[f32], i: usize) -> f64 {
    log_softmax_at(logits, i).exp()
}

fn logsumexp(values: &[f64]) -> f64 {
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if max == f64::NEG_INFINITY {
        return max;
    }
    max + values.iter().map(|v| (v - max).exp()).sum::<f64>().ln()
}

fn round_ms(seconds: f64) -> f64 {
    (seconds * 1000.0).round() / 1000.0
}

fn read(path: &Path) -> Result<Vec<u8>> {
    read_len(path)?;
    std::fs::read(path).map_err(|source| InferError::Read {
        path: path.to_path_buf(),
        source,
    })
}

fn read_len(path: &Path) -> Result<()> {
    if path.is_file() {
        Ok(())
    } else {
        Err(InferError::InvalidModel {
            path: path.to_path_buf(),
            reason: "missing (a Whisper model directory holds config.json, tokenizer.json and \
                     model.safetensors; `kaizen models import --from ctranslate2` makes one)"
                .to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TB: usize = 10;
    const EOT: usize = 5;
    const NO_TS: usize = 9;

    fn allowed(logits: &[f32]) -> Vec<usize> {
        (0..logits.len())
            .filter(|&i| logits[i] > f32::NEG_INFINITY)
            .collect()
    }

    /// Text tokens at 0, timestamps unlikely enough that they never win as a group.
    fn logits() -> Vec<f32> {
        let mut logits = vec![0f32; TB + 20];
        logits[TB..].fill(-10.0);
        logits
    }

    #[test]
    fn the_first_token_is_a_timestamp_within_one_second() {
        let mut logits = vec![0f32; TB + 100];
        timestamp_rules(&mut logits, &[], TB, EOT, NO_TS);
        assert_eq!(allowed(&logits), (TB..=TB + 50).collect::<Vec<_>>());
    }

    #[test]
    fn timestamps_come_in_pairs_and_never_decrease() {
        let ts = |i: usize| (TB + i) as u32;
        // After text then one timestamp: a timestamp not below it, or end-of-text.
        let mut l = logits();
        timestamp_rules(&mut l, &[ts(0), 1, ts(4)], TB, EOT, NO_TS);
        let ok = allowed(&l);
        assert!(ok.contains(&EOT) && ok.contains(&(TB + 4)) && ok.contains(&(TB + 19)));
        assert!(!ok.contains(&1) && !ok.contains(&(TB + 3)) && !ok.contains(&NO_TS));
        // After a pair of timestamps: text only.
        let mut l = logits();
        timestamp_rules(&mut l, &[ts(0), 1, ts(4), ts(4)], TB, EOT, NO_TS);
        assert!(allowed(&l).iter().all(|&t| t < TB));
        // The first timestamp alone counts as a pair: text follows.
        let mut l = logits();
        timestamp_rules(&mut l, &[ts(0)], TB, EOT, NO_TS);
        assert!(allowed(&l).iter().all(|&t| t < TB));
        // After text, a timestamp earlier than or equal to the last is refused.
        let mut l = logits();
        timestamp_rules(&mut l, &[ts(3), 1], TB, EOT, NO_TS);
        let ok = allowed(&l);
        assert!(!ok.contains(&(TB + 3)) && ok.contains(&(TB + 4)) && ok.contains(&1));
    }

    #[test]
    fn likely_timestamps_win_over_any_single_text_token() {
        // Text tokens share little mass each; the timestamps together hold more.
        let mut logits = vec![0f32; TB + 20];
        logits[1] = 2.0;
        for l in &mut logits[TB..] {
            *l = 1.5;
        }
        timestamp_rules(&mut logits, &[(TB + 2) as u32, 3], TB, EOT, NO_TS);
        assert!(allowed(&logits).iter().all(|&t| t >= TB));
    }

    #[test]
    fn a_decoding_loop_compresses_well_and_speech_does_not() {
        let looped = "I'm going to go to the store. ".repeat(8);
        assert!(compression_ratio(&looped) > m::COMPRESSION_RATIO_THRESHOLD);
        let speech = "The tide mill ground grain twice a day, and the miller kept a log of \
                      every tide, the weather and the sacks he carried to the village.";
        assert!(compression_ratio(speech) < m::COMPRESSION_RATIO_THRESHOLD);
        assert_eq!(compression_ratio(""), 0.0);
    }

    #[test]
    fn sampling_never_draws_a_suppressed_token_and_repeats_with_its_seed() {
        let mut logits = vec![0f32, 2.0, 1.0, 3.0];
        logits[3] = f32::NEG_INFINITY;
        let draws = |seed| {
            let mut rng = StdRng::seed_from_u64(seed);
            (0..200)
                .map(|_| sample(&logits, 1.0, &mut rng))
                .collect::<Vec<_>>()
        };
        let first = draws(7);
        assert!(first.iter().all(|&t| t < 3), "a suppressed token was drawn");
        assert!(
            (0..3).all(|t| first.contains(&t)),
            "every allowed token turns up"
        );
        assert_eq!(first, draws(7));
        // A low temperature is all but greedy.
        let mut rng = StdRng::seed_from_u64(1);
        assert!((0..50).all(|_| sample(&logits, 0.01, &mut rng) == 1));
    }

    #[test]
    fn softmax_helpers_are_stable() {
        let logits = [1000f32, 1000.0, f32::NEG_INFINITY];
        assert!((softmax_at(&logits, 0) - 0.5).abs() < 1e-12);
        assert_eq!(softmax_at(&logits, 2), 0.0);
        assert_eq!(argmax(&[0.0, 3.0, 3.0, -1.0]), 1);
        assert!((logsumexp(&[0.0, 0.0]) - 2f64.ln()).abs() < 1e-12);
    }
}
