//! Extractive summaries: split the text into sentences, embed them, score each by its
//! centrality in the similarity graph (continuous LexRank: PageRank over cosine similarities),
//! pick with maximal marginal relevance so that near-duplicates are not both chosen, and return
//! the picks in input order. Abstractive summaries are written by a model instead
//! ([`crate::abstractive`]) and reported in the same [`Summary`] shape.

use serde::Serialize;

use crate::abstractive::{AbstractiveOptions, Writer};
use crate::embed::Embedder;
use crate::error::{InferError, Result};
use crate::sentences::split_sentences;

/// How a summary is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// Sentences of the input, ranked by embedding centrality.
    #[default]
    Extractive,
    /// New text written by a model: a small instruct LLM (GGUF) or a T5-family
    /// sequence-to-sequence model, chunked and reduced when the text is long.
    Abstractive,
}

impl std::str::FromStr for Method {
    type Err = InferError;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "extractive" => Ok(Method::Extractive),
            "abstractive" => Ok(Method::Abstractive),
            other => Err(InferError::invalid(format!(
                "unknown summary method `{other}`: expected extractive or abstractive"
            ))),
        }
    }
}

/// The most sentences a text may have; the similarity graph is quadratic in them.
pub const MAX_SENTENCES: usize = 5_000;
/// Sentences shorter than this many words are never picked (captions, bylines, fragments),
/// unless the text has nothing longer.
const MIN_WORDS: usize = 4;
/// Weight of centrality against redundancy in maximal marginal relevance.
const MMR_LAMBDA: f32 = 0.7;

/// A summary made of sentences of the input.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    /// The chosen sentences joined by spaces.
    pub summary: String,
    /// The chosen sentences in input order.
    pub sentences: Vec<String>,
    pub method: Method,
    /// The embedding model's name.
    pub model: String,
    /// Characters of the input text.
    pub input_chars: usize,
    /// Abstractive only: chunks of the input summarized first (1 when it fit one window).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chunks: Option<usize>,
    /// Abstractive only: rounds of summaries of the chunks' summaries.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rounds: Option<usize>,
    /// Abstractive only: the model's input window in tokens.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window_tokens: Option<usize>,
}

/// Summarizes `text` with a writing model (see [`crate::abstractive`]).
pub fn summarize_abstractive(
    writer: &Writer,
    text: &str,
    options: &AbstractiveOptions,
) -> Result<Summary> {
    let written = crate::abstractive::summarize_abstractive(writer, text, options)?;
    let mut sentences = split_sentences(&written.summary);
    if sentences.is_empty() {
        // Written text without sentence punctuation is one sentence.
        sentences.push(written.summary.clone());
    }
    Ok(Summary {
        sentences,
        summary: written.summary,
        method: Method::Abstractive,
        model: written.model,
        input_chars: text.chars().count(),
        chunks: Some(written.chunks),
        rounds: Some(written.rounds),
        window_tokens: Some(written.window_tokens),
    })
}

/// Summarizes `text` in at most `max_sentences` of its own sentences.
pub fn summarize(embedder: &Embedder, text: &str, max_sentences: usize) -> Result<Summary> {
    if max_sentences == 0 {
        return Err(InferError::invalid(
            "the number of sentences must be at least 1",
        ));
    }
    if text.trim().is_empty() {
        return Err(InferError::invalid("the text to summarize is empty"));
    }
    let sentences = split_sentences(text);
    if sentences.is_empty() {
        return Err(InferError::invalid(
            "the text has no sentences to summarize (only headings or whitespace)",
        ));
    }
    if sentences.len() > MAX_SENTENCES {
        return Err(InferError::invalid(format!(
            "the text has {} sentences; at most {MAX_SENTENCES} can be summarized at once",
            sentences.len()
        )));
    }
    let mut candidates: Vec<usize> = (0..sentences.len())
        .filter(|&i| sentences[i].split_whitespace().count() >= MIN_WORDS)
        .collect();
    if candidates.is_empty() {
        candidates = (0..sentences.len()).collect();
    }
    let picked = if candidates.len() <= max_sentences {
        candidates
    } else {
        let texts: Vec<&str> = candidates.iter().map(|&i| sentences[i].as_str()).collect();
        let embeddings = embedder.embed(&texts)?;
        let similarity = similarity_matrix(&embeddings);
        let scores = centrality(&similarity);
        let mut chosen: Vec<usize> = mmr(&similarity, &scores, max_sentences, MMR_LAMBDA)
            .into_iter()
            .map(|k| candidates[k])
            .collect();
        chosen.sort_unstable();
        chosen
    };
    let sentences: Vec<String> = picked.into_iter().map(|i| sentences[i].clone()).collect();
    Ok(Summary {
        summary: sentences.join(" "),
        sentences,
        method: Method::Extractive,
        model: embedder.name().to_string(),
        input_chars: text.chars().count(),
        chunks: None,
        rounds: None,
        window_tokens: None,
    })
}

/// Cosine similarities of unit-length (or any) vectors.
pub fn similarity_matrix(vectors: &[Vec<f32>]) -> Vec<Vec<f32>> {
    let norms: Vec<f32> = vectors
        .iter()
        .map(|v| v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12))
        .collect();
    let n = vectors.len();
    let mut s = vec![vec![0.0; n]; n];
    for i in 0..n {
        s[i][i] = 1.0;
        for j in i + 1..n {
            let dot: f32 = vectors[i].iter().zip(&vectors[j]).map(|(a, b)| a * b).sum();
            let c = dot / (norms[i] * norms[j]);
            s[i][j] = c;
            s[j][i] = c;
        }
    }
    s
}

/// Continuous LexRank: the stationary distribution of a random walk over the sentences with
/// transition weights proportional to positive similarity (damping 0.85), scaled to a maximum
/// of 1.
pub fn centrality(similarity: &[Vec<f32>]) -> Vec<f32> {
    let n = similarity.len();
    if n == 0 {
        return Vec::new();
    }
    let weights: Vec<Vec<f32>> = similarity
        .iter()
        .enumerate()
        .map(|(i, row)| {
            let mut w: Vec<f32> = row
                .iter()
                .enumerate()
                .map(|(j, &s)| if i == j { 0.0 } else { s.max(0.0) })
                .collect();
            let total: f32 = w.iter().sum();
            if total > 0.0 {
                w.iter_mut().for_each(|x| *x /= total);
            } else {
                w.iter_mut().for_each(|x| *x = 1.0 / n as f32);
            }
            w
        })
        .collect();
    let damping = 0.85f32;
    let mut rank = vec![1.0 / n as f32; n];
    for _ in 0..100 {
        let mut next = vec![(1.0 - damping) / n as f32; n];
        for (i, row) in weights.iter().enumerate() {
            for (j, w) in row.iter().enumerate() {
                next[j] += damping * rank[i] * w;
            }
        }
        let delta: f32 = next.iter().zip(&rank).map(|(a, b)| (a - b).abs()).sum();
        rank = next;
        if delta < 1e-7 {
            break;
        }
    }
    let max = rank.iter().copied().fold(f32::MIN, f32::max).max(1e-12);
    rank.iter().map(|r| r / max).collect()
}

/// Maximal marginal relevance: repeatedly the item with the best
/// `lambda * score - (1 - lambda) * (greatest similarity to an item already chosen)`; ties go to
/// the earlier item. Returns the chosen indices in the order they were chosen.
pub fn mmr(similarity: &[Vec<f32>], scores: &[f32], k: usize, lambda: f32) -> Vec<usize> {
    let n = scores.len();
    let mut chosen: Vec<usize> = Vec::with_capacity(k.min(n));
    let mut redundancy = vec![f32::MIN; n];
    while chosen.len() < k.min(n) {
        let mut best: Option<(usize, f32)> = None;
        for i in 0..n {
            if chosen.contains(&i) {
                continue;
            }
            let penalty = if chosen.is_empty() {
                0.0
            } else {
                redundancy[i]
            };
            let value = lambda * scores[i] - (1.0 - lambda) * penalty;
            if best.is_none_or(|(_, b)| value > b) {
                best = Some((i, value));
            }
        }
        let Some((pick, _)) = best else { break };
        chosen.push(pick);
        for (i, r) in redundancy.iter_mut().enumerate() {
            *r = r.max(similarity[pick][i]);
        }
    }
    chosen
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn centrality_favors_the_sentence_close_to_the_others() {
        // Three vectors near the x axis and one outlier; the middle of the cluster is central.
        let v = vec![
            vec![1.0, 0.1, 0.0],
            vec![1.0, 0.0, 0.0],
            vec![1.0, -0.1, 0.0],
            vec![0.0, 0.0, 1.0],
        ];
        let scores = centrality(&similarity_matrix(&v));
        assert_eq!(scores[1], 1.0);
        assert!(scores[3] < scores[0] && scores[3] < scores[2]);
    }

    #[test]
    fn mmr_skips_near_duplicates() {
        // 0 and 1 are duplicates with the best scores; 2 is different and scores lower.
        let v = vec![vec![1.0, 0.0], vec![1.0, 0.001], vec![0.0, 1.0]];
        let s = similarity_matrix(&v);
        let picked = mmr(&s, &[1.0, 0.99, 0.6], 2, 0.7);
        assert_eq!(picked, vec![0, 2]);
        // Relevance alone (lambda 1) takes both duplicates.
        assert_eq!(mmr(&s, &[1.0, 0.99, 0.6], 2, 1.0), vec![0, 1]);
    }

    #[test]
    fn mmr_returns_at_most_k_and_handles_empty() {
        let s = similarity_matrix(&[vec![1.0], vec![1.0]]);
        assert_eq!(mmr(&s, &[0.5, 0.5], 5, 0.7).len(), 2);
        assert!(mmr(&[], &[], 3, 0.7).is_empty());
        assert!(centrality(&[]).is_empty());
    }

    #[test]
    fn methods_parse() {
        assert_eq!("extractive".parse::<Method>().unwrap(), Method::Extractive);
        assert_eq!(
            "abstractive".parse::<Method>().unwrap(),
            Method::Abstractive
        );
        assert!("magic".parse::<Method>().is_err());
    }
}
