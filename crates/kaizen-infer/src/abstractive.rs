//! Abstractive summaries: new text written by a model, either a small instruct LLM from a GGUF
//! file (SmolLM2-135M-Instruct by default) or a T5-family sequence-to-sequence model.
//!
//! A text longer than the model reads at once is cut into chunks of whole sentences that fit
//! its window, each chunk overlapping the previous one by a few sentences so that nothing said
//! across a cut is lost; each chunk is summarized (map), the partial summaries are joined and
//! summarized again (reduce), as many rounds as it takes for them to fit one window.

use std::path::Path;

use serde::Serialize;

use crate::error::{InferError, Result};
use crate::llm::{GenerateOptions, Llm, Message};
use crate::sentences::split_sentences;
use crate::seq2seq::{Seq2Seq, is_seq2seq_dir};

/// The input window of an LLM's summary call unless asked otherwise: a small model reads
/// a few pages well, not its whole trained context, and attention grows with the square.
pub const DEFAULT_LLM_WINDOW: usize = 1536;
/// The most reduce rounds; each round divides the text by at least two, so this is never
/// reached by a text that can be summarized at all.
const MAX_ROUNDS: usize = 12;
/// Tokens kept free in a window for the joining of sentences (a space may add a token).
const SLACK: usize = 8;

/// What writes the summary.
#[derive(Debug, Clone)]
pub enum Writer {
    Llm(Box<Llm>),
    Seq2Seq(Box<Seq2Seq>),
}

/// How an abstractive summary is made.
#[derive(Debug, Clone, PartialEq)]
pub struct AbstractiveOptions {
    /// The number of sentences asked for; the summary is cut to this many.
    pub sentences: usize,
    /// The most tokens the final summary has.
    pub max_new_tokens: usize,
    /// Input tokens per model call (a chunk and its prompt); at most the model's context.
    pub window_tokens: Option<usize>,
    /// Tokens of the previous chunk repeated at the start of the next [default: 64, at most an
    /// eighth of a chunk].
    pub overlap_tokens: Option<usize>,
}

impl Default for AbstractiveOptions {
    fn default() -> Self {
        AbstractiveOptions {
            sentences: 3,
            max_new_tokens: 160,
            window_tokens: None,
            overlap_tokens: None,
        }
    }
}

/// An abstractive summary and how it was made.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Abstract {
    pub summary: String,
    /// The model's name.
    pub model: String,
    /// Chunks of the input summarized in the map step (1: the text fit one window).
    pub chunks: usize,
    /// Reduce rounds after the map step (each a summary of summaries; 0 when the text fit).
    pub rounds: usize,
    /// The input window in tokens.
    pub window_tokens: usize,
}

impl Writer {
    /// A GGUF file (or a directory with one) is an LLM; a directory whose `config.json` says
    /// `model_type: "t5"` is a sequence-to-sequence model.
    pub fn load(path: &Path) -> Result<Self> {
        if !path.exists() {
            return Err(InferError::ModelNotFound {
                dir: path.to_path_buf(),
                hint: String::new(),
            });
        }
        if path.is_dir() && is_seq2seq_dir(path) {
            return Ok(Writer::Seq2Seq(Box::new(Seq2Seq::load(path)?)));
        }
        let is_gguf_dir = path.is_dir()
            && std::fs::read_dir(path).is_ok_and(|entries| {
                entries
                    .filter_map(|e| e.ok())
                    .any(|e| e.path().extension().is_some_and(|x| x == "gguf"))
            });
        if path.extension().is_some_and(|x| x == "gguf") || is_gguf_dir || path.is_file() {
            return Ok(Writer::Llm(Box::new(Llm::load(path)?)));
        }
        Err(InferError::InvalidModel {
            path: path.to_path_buf(),
            reason: "neither a GGUF file nor a T5 model directory (config.json with \
                     model_type \"t5\", tokenizer.json, model.safetensors)"
                .into(),
        })
    }

    pub fn name(&self) -> &str {
        match self {
            Writer::Llm(m) => m.name(),
            Writer::Seq2Seq(m) => m.name(),
        }
    }

    /// The model's own limit on input tokens.
    pub fn context_tokens(&self) -> usize {
        match self {
            Writer::Llm(m) => m.context_tokens(),
            Writer::Seq2Seq(m) => m.context_tokens(),
        }
    }

    fn count_tokens(&self, text: &str) -> Result<usize> {
        match self {
            Writer::Llm(m) => m.count_tokens(text),
            Writer::Seq2Seq(m) => m.count_tokens(text),
        }
    }

    fn messages(text: &str, sentences: usize) -> Vec<Message> {
        let unit = if sentences == 1 {
            "one sentence".to_string()
        } else {
            format!("at most {sentences} sentences")
        };
        vec![
            Message::system(
                "You summarize texts faithfully. You write only the summary, in plain prose, \
                 using only facts stated in the text.",
            ),
            Message::user(format!("Summarize this text in {unit}:\n\n{text}")),
        ]
    }

    /// Tokens a call spends around the text: the prompt's instructions and markup, or the
    /// task prefix. The text's own budget is the window minus these.
    fn overhead_tokens(&self, sentences: usize) -> Result<usize> {
        match self {
            Writer::Llm(m) => m.chat_overhead_tokens(&Self::messages("", sentences)),
            Writer::Seq2Seq(m) => m.count_tokens(m.prefix()),
        }
    }

    /// One model call: the summary of `text`, which fits a window.
    fn write(&self, text: &str, sentences: usize, max_new_tokens: usize) -> Result<String> {
        match self {
            Writer::Llm(m) => {
                let options = GenerateOptions {
                    max_new_tokens,
                    ..GenerateOptions::default()
                };
                Ok(m.chat(&Self::messages(text, sentences), &options)?.text)
            }
            Writer::Seq2Seq(m) => m.generate(text, max_new_tokens),
        }
    }
}

/// Summarizes `text` with `writer`, chunked and reduced when it does not fit one window.
pub fn summarize_abstractive(
    writer: &Writer,
    text: &str,
    options: &AbstractiveOptions,
) -> Result<Abstract> {
    if options.sentences == 0 {
        return Err(InferError::invalid(
            "the number of sentences must be at least 1",
        ));
    }
    if options.max_new_tokens == 0 {
        return Err(InferError::invalid("max_new_tokens must be at least 1"));
    }
    if text.trim().is_empty() {
        return Err(InferError::invalid("the text to summarize is empty"));
    }
    let default_window = match writer {
        Writer::Llm(_) => DEFAULT_LLM_WINDOW,
        Writer::Seq2Seq(_) => writer.context_tokens(),
    };
    let window = options
        .window_tokens
        .unwrap_or(default_window)
        .min(writer.context_tokens());
    let overhead = writer.overhead_tokens(options.sentences)?;
    // An LLM's answer shares its context with the prompt.
    let answer_room = match writer {
        Writer::Llm(_) => options.max_new_tokens,
        Writer::Seq2Seq(_) => 0,
    };
    let budget = window
        .checked_sub(overhead + answer_room + SLACK)
        .filter(|b| *b >= 32)
        .ok_or_else(|| {
            InferError::invalid(format!(
                "a window of {window} tokens leaves no room for the text: the prompt takes \
                 {overhead} and the summary {answer_room}; use a larger window"
            ))
        })?;
    let overlap = options.overlap_tokens.unwrap_or((budget / 8).min(64));
    if overlap >= budget / 2 {
        return Err(InferError::invalid(format!(
            "an overlap of {overlap} tokens must be under half of the text's budget per chunk \
             ({budget})"
        )));
    }
    // A partial summary takes at most a third of a chunk, so every round shrinks the text.
    let partial_tokens = options.max_new_tokens.min(budget / 3).max(1);

    let mut current = text.to_string();
    let mut chunks_in_map = 0;
    let mut rounds = 0;
    loop {
        let tokens = writer.count_tokens(&current)?;
        if tokens <= budget {
            // The summary never runs longer than the text it summarizes.
            let limit = options.max_new_tokens.min(tokens.max(8));
            let written = writer.write(&current, options.sentences, limit)?;
            if chunks_in_map == 0 {
                chunks_in_map = 1;
            } else {
                // The summary of the chunks' summaries is a reduce round too.
                rounds += 1;
            }
            let summary = first_sentences(&written, options.sentences);
            if summary.is_empty() {
                return Err(InferError::Unsupported(format!(
                    "the model `{}` wrote no summary for this text",
                    writer.name()
                )));
            }
            return Ok(Abstract {
                summary,
                model: writer.name().to_string(),
                chunks: chunks_in_map,
                rounds,
                window_tokens: window,
            });
        }
        if rounds == MAX_ROUNDS {
            return Err(InferError::invalid(format!(
                "the text still has {tokens} tokens after {MAX_ROUNDS} rounds of summaries"
            )));
        }
        let chunks = chunk_by_tokens(&current, budget, overlap, |s| writer.count_tokens(s))?;
        if chunks_in_map == 0 {
            chunks_in_map = chunks.len();
        } else {
            // The chunks' summaries did not fit one window: summarized in chunks again.
            rounds += 1;
        }
        tracing::debug!(chunks = chunks.len(), tokens, "summarizing chunks");
        let mut partials = Vec::with_capacity(chunks.len());
        for chunk in &chunks {
            let partial = writer.write(chunk, options.sentences, partial_tokens)?;
            if !partial.trim().is_empty() {
                partials.push(partial.trim().to_string());
            }
        }
        if partials.is_empty() {
            return Err(InferError::Unsupported(format!(
                "the model `{}` wrote nothing for any chunk of the text",
                writer.name()
            )));
        }
        current = partials.join("\n");
    }
}

/// The first `n` sentences of `text` (all of it when it has no sentence ends).
fn first_sentences(text: &str, n: usize) -> String {
    let sentences = split_sentences(text);
    if sentences.is_empty() {
        return text.trim().to_string();
    }
    sentences.into_iter().take(n).collect::<Vec<_>>().join(" ")
}

/// Cuts `text` into chunks of whole sentences of at most `budget` tokens, each starting with
/// the last sentences of the previous chunk that fit in `overlap` tokens. A sentence longer
/// than the budget is cut at word boundaries.
pub fn chunk_by_tokens(
    text: &str,
    budget: usize,
    overlap: usize,
    count: impl Fn(&str) -> Result<usize>,
) -> Result<Vec<String>> {
    let mut pieces: Vec<(String, usize)> = Vec::new();
    for sentence in split_sentences(text) {
        let n = count(&sentence)?;
        if n <= budget {
            pieces.push((sentence, n));
        } else {
            for part in split_long(&sentence, budget, &count)? {
                let n = count(&part)?;
                pieces.push((part, n));
            }
        }
    }
    let mut chunks = Vec::new();
    let mut start = 0;
    while start < pieces.len() {
        let mut end = start;
        let mut used = 0;
        while end < pieces.len() && used + pieces[end].1 <= budget {
            used += pieces[end].1;
            end += 1;
        }
        let end = end.max(start + 1);
        chunks.push(
            pieces[start..end]
                .iter()
                .map(|(s, _)| s.as_str())
                .collect::<Vec<_>>()
                .join(" "),
        );
        if end == pieces.len() {
            break;
        }
        // The next chunk repeats the tail of this one, within the overlap, and always moves on.
        let mut next = end;
        let mut repeated = 0;
        while next > start + 1 && repeated + pieces[next - 1].1 <= overlap {
            repeated += pieces[next - 1].1;
            next -= 1;
        }
        start = next;
    }
    Ok(chunks)
}

/// Cuts one over-long sentence into parts of at most `budget` tokens at word boundaries.
fn split_long(
    sentence: &str,
    budget: usize,
    count: &impl Fn(&str) -> Result<usize>,
) -> Result<Vec<String>> {
    let mut parts = Vec::new();
    let mut current = String::new();
    for word in sentence.split_whitespace() {
        let candidate = if current.is_empty() {
            word.to_string()
        } else {
            format!("{current} {word}")
        };
        if !current.is_empty() && count(&candidate)? > budget {
            parts.push(std::mem::replace(&mut current, word.to_string()));
        } else {
            current = candidate;
        }
    }
    if !current.is_empty() {
        parts.push(current);
    }
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Result<usize> {
        Ok(s.split_whitespace().count())
    }

    #[test]
    fn chunks_fit_the_budget_and_overlap() {
        let text = (0..40)
            .map(|i| format!("Sentence number {i} has five words."))
            .collect::<Vec<_>>()
            .join(" ");
        // Each sentence is 6 words; 4 sentences per chunk, one repeated.
        let chunks = chunk_by_tokens(&text, 24, 6, words).unwrap();
        assert!(chunks.iter().all(|c| words(c).unwrap() <= 24));
        assert!(chunks[0].starts_with("Sentence number 0 "));
        assert!(chunks[1].starts_with("Sentence number 3 "), "{}", chunks[1]);
        assert!(
            chunks
                .last()
                .unwrap()
                .ends_with("Sentence number 39 has five words.")
        );
        // Every sentence is in some chunk, in order.
        let joined = chunks.join(" ");
        for i in 0..40 {
            assert!(joined.contains(&format!("number {i} ")), "{i}");
        }
    }

    #[test]
    fn a_sentence_longer_than_the_budget_is_cut_at_words() {
        let long = (0..50)
            .map(|i| format!("w{i}"))
            .collect::<Vec<_>>()
            .join(" ")
            + ".";
        let chunks = chunk_by_tokens(&long, 20, 0, words).unwrap();
        assert_eq!(chunks.len(), 3);
        assert!(chunks.iter().all(|c| words(c).unwrap() <= 20));
        assert_eq!(chunks.join(" "), long);
    }

    #[test]
    fn first_sentences_cuts_to_the_count() {
        assert_eq!(
            first_sentences("One is here. Two is there. Three.", 2),
            "One is here. Two is there."
        );
        assert_eq!(first_sentences("no end", 2), "no end");
    }
}
