//! Questions answered from a context. The context is cut into passages (windows of consecutive
//! sentences that overlap by one sentence and fit the embedder's token limit); the passages
//! closest to the question by embedding cosine are retrieved; the answer is then either the
//! retrieved sentence closest to the question (`extractive`: nothing is generated) or what an
//! OpenAI-compatible chat model writes from the retrieved passages alone (`openai`).

use std::ops::Range;
use std::time::Duration;

use serde::Serialize;
use serde_json::{Value, json};

use crate::embed::{Embedder, cosine};
use crate::error::{InferError, Result};
use crate::sentences::split_sentences;

/// Passages retrieved when the caller does not say.
pub const DEFAULT_TOP_K: usize = 3;
/// The most passages one question may retrieve; more would only dilute an LLM's prompt.
pub const MAX_TOP_K: usize = 50;
/// The most sentences a context may have (every passage is embedded once per question).
pub const MAX_SENTENCES: usize = 20_000;
/// The OpenAI API; any OpenAI-compatible server (vLLM, llama.cpp, Ollama) works the same.
pub const DEFAULT_OPENAI_BASE_URL: &str = "https://api.openai.com/v1";
/// The environment variable the command line reads the provider's API key from by default.
pub const DEFAULT_API_KEY_ENV: &str = "OPENAI_API_KEY";
/// Tells the model to stay inside the retrieved passages.
pub const SYSTEM_PROMPT: &str = "You answer questions using only the numbered passages of \
    context in the user's message. If the passages do not contain the answer, say that the \
    context does not say. Answer briefly and add no facts that are not in the passages.";

/// Sentences per passage: short enough that a passage is about one thing, long enough to carry
/// the sentence around an answer.
const PASSAGE_SENTENCES: usize = 3;
/// Sentences shared by neighbouring passages, so an answer that spans a cut is whole in one.
const OVERLAP: usize = 1;
/// Sentences shorter than this many words (captions, fragments) are not extractive answers
/// unless the passages have nothing longer.
const MIN_WORDS: usize = 4;
/// The longest an LLM provider may take to answer; generation is slow on small servers.
const PROVIDER_TIMEOUT: Duration = Duration::from_secs(120);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest provider answer read.
const MAX_PROVIDER_ANSWER: usize = 4 * 1024 * 1024;
/// The most characters of a provider's non-JSON error body quoted in a message.
const MAX_QUOTED: usize = 300;

/// Who writes the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub enum Provider {
    /// The retrieved sentence closest to the question; nothing is generated.
    #[default]
    #[serde(rename = "extractive")]
    Extractive,
    /// An OpenAI-compatible chat-completions API.
    #[serde(rename = "openai")]
    OpenAi,
    /// A small instruct LLM (GGUF) run by kaizen itself, SmolLM2-135M-Instruct by default.
    #[serde(rename = "local")]
    Local,
}

impl Provider {
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Extractive => "extractive",
            Provider::OpenAi => "openai",
            Provider::Local => "local",
        }
    }
}

impl std::str::FromStr for Provider {
    type Err = InferError;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "extractive" => Ok(Provider::Extractive),
            "openai" => Ok(Provider::OpenAi),
            "local" => Ok(Provider::Local),
            other => Err(InferError::invalid(format!(
                "unknown provider `{other}`: expected extractive, openai or local"
            ))),
        }
    }
}

/// A passage of the context with its similarity to the question.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Passage {
    /// Its sentences joined by spaces.
    pub text: String,
    /// Cosine similarity of its embedding to the question's.
    pub score: f32,
    /// Its position among all the passages of the context, from 0.
    pub index: usize,
}

/// An answer and the passages it was drawn from.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Answer {
    pub answer: String,
    /// `extractive` (a sentence of the context) or `openai` (generated text).
    pub method: Provider,
    /// The embedding model for extractive answers, the LLM for generated ones.
    pub model: String,
    /// The retrieved passages in context order.
    pub passages: Vec<Passage>,
    pub question: String,
}

/// The passages retrieved for a question, with what an extractive answer needs.
#[derive(Debug, Clone)]
pub struct Retrieval {
    /// The retrieved passages in context order.
    pub passages: Vec<Passage>,
    sentences: Vec<String>,
    /// The sentences of each retrieved passage, parallel to `passages`.
    ranges: Vec<Range<usize>>,
    question_vector: Vec<f32>,
}

impl Retrieval {
    /// The answer with these passages as its evidence.
    pub fn into_answer(
        self,
        answer: String,
        method: Provider,
        model: &str,
        question: &str,
    ) -> Answer {
        Answer {
            answer,
            method,
            model: model.to_string(),
            passages: self.passages,
            question: question.to_string(),
        }
    }
}

/// Refuses an empty question.
pub fn check_question(question: &str) -> Result<()> {
    if question.trim().is_empty() {
        Err(InferError::invalid("the question is empty"))
    } else {
        Ok(())
    }
}

/// Refuses a number of passages outside 1..=[`MAX_TOP_K`].
pub fn check_top_k(top_k: usize) -> Result<()> {
    if (1..=MAX_TOP_K).contains(&top_k) {
        Ok(())
    } else {
        Err(InferError::invalid(format!(
            "the number of passages to retrieve must be between 1 and {MAX_TOP_K}, not {top_k}"
        )))
    }
}

/// Cuts sentences of `tokens[i]` tokens each into windows: at most `max_sentences` sentences
/// and `budget` tokens per window (a sentence longer than the budget is a window alone), each
/// window starting `overlap` sentences before the end of the previous one unless that would add
/// nothing new. Every sentence is in at least one window; windows are in order.
pub fn passage_windows(
    tokens: &[usize],
    budget: usize,
    max_sentences: usize,
    overlap: usize,
) -> Vec<Range<usize>> {
    let n = tokens.len();
    let extend = |start: usize| {
        let mut end = start + 1;
        let mut total = tokens[start];
        while end < n && end - start < max_sentences.max(1) && total + tokens[end] <= budget {
            total += tokens[end];
            end += 1;
        }
        end
    };
    let mut windows = Vec::new();
    let mut start = 0;
    while start < n {
        let end = extend(start);
        windows.push(start..end);
        if end >= n {
            break;
        }
        let back = end.saturating_sub(overlap).max(start + 1);
        start = if back < end && extend(back) > end {
            back
        } else {
            end
        };
    }
    windows
}

/// The indices of the `k` best scores (ties to the earlier), in index order.
pub fn top_k_in_order(scores: &[f32], k: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    // A stable sort keeps the earlier of equal scores first.
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    order.truncate(k);
    order.sort_unstable();
    order
}

/// The sentences of the context; a context without sentence punctuation (a list, a few
/// headings) is taken line by line rather than refused.
fn context_sentences(context: &str) -> Vec<String> {
    let sentences = split_sentences(context);
    if !sentences.is_empty() {
        return sentences;
    }
    context
        .lines()
        .map(|line| line.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|line| !line.is_empty())
        .collect()
}

/// The `top_k` passages of `context` closest to `question`, in context order.
pub fn retrieve(
    embedder: &Embedder,
    context: &str,
    question: &str,
    top_k: usize,
) -> Result<Retrieval> {
    check_question(question)?;
    check_top_k(top_k)?;
    if context.trim().is_empty() {
        return Err(InferError::invalid("the context is empty"));
    }
    let sentences = context_sentences(context);
    if sentences.len() > MAX_SENTENCES {
        return Err(InferError::invalid(format!(
            "the context has {} sentences; at most {MAX_SENTENCES} can be searched at once",
            sentences.len()
        )));
    }
    // Counts include the special tokens ([CLS], [SEP]) once per text; a passage has them once.
    let overhead = embedder.count_tokens("")?;
    let budget = embedder.max_tokens().saturating_sub(overhead).max(1);
    let tokens: Vec<usize> = embedder
        .count_tokens_each(&sentences)?
        .into_iter()
        .map(|t| t.saturating_sub(overhead))
        .collect();
    let windows = passage_windows(&tokens, budget, PASSAGE_SENTENCES, OVERLAP);
    let texts: Vec<String> = windows
        .iter()
        .map(|w| sentences[w.clone()].join(" "))
        .collect();
    let mut inputs: Vec<&str> = Vec::with_capacity(texts.len() + 1);
    inputs.push(question.trim());
    inputs.extend(texts.iter().map(String::as_str));
    let mut vectors = embedder.embed(&inputs)?.into_iter();
    let question_vector = vectors
        .next()
        .ok_or_else(|| InferError::invalid("the question could not be embedded"))?;
    let scores: Vec<f32> = vectors.map(|v| cosine(&question_vector, &v)).collect();
    let picked = top_k_in_order(&scores, top_k);
    let passages = picked
        .iter()
        .map(|&i| Passage {
            text: texts[i].clone(),
            score: scores[i],
            index: i,
        })
        .collect();
    let ranges = picked.iter().map(|&i| windows[i].clone()).collect();
    Ok(Retrieval {
        passages,
        sentences,
        ranges,
        question_vector,
    })
}

/// The sentence of the retrieved passages closest to the question (ties to the earlier).
pub fn extract(embedder: &Embedder, retrieval: &Retrieval) -> Result<String> {
    let mut indices: Vec<usize> = retrieval.ranges.iter().flat_map(Clone::clone).collect();
    indices.sort_unstable();
    indices.dedup();
    let long: Vec<usize> = indices
        .iter()
        .copied()
        .filter(|&i| retrieval.sentences[i].split_whitespace().count() >= MIN_WORDS)
        .collect();
    let candidates = if long.is_empty() { indices } else { long };
    let texts: Vec<&str> = candidates
        .iter()
        .map(|&i| retrieval.sentences[i].as_str())
        .collect();
    let vectors = embedder.embed(&texts)?;
    let mut best: Option<(usize, f32)> = None;
    for (&i, v) in candidates.iter().zip(&vectors) {
        let score = cosine(&retrieval.question_vector, v);
        if best.is_none_or(|(_, b)| score > b) {
            best = Some((i, score));
        }
    }
    best.map(|(i, _)| retrieval.sentences[i].clone())
        .ok_or_else(|| InferError::invalid("the context has no sentences"))
}

/// Answers `question` with the sentence of `context` that the retrieved passages hold closest
/// to it.
pub fn answer_extractive(
    embedder: &Embedder,
    context: &str,
    question: &str,
    top_k: usize,
) -> Result<Answer> {
    let retrieval = retrieve(embedder, context, question, top_k)?;
    let answer = extract(embedder, &retrieval)?;
    Ok(retrieval.into_answer(answer, Provider::Extractive, embedder.name(), question))
}

/// An OpenAI-compatible chat-completions API.
#[derive(Clone)]
pub struct OpenAi {
    base_url: String,
    model: String,
    api_key: Option<String>,
    timeout: Duration,
}

impl std::fmt::Debug for OpenAi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key never reaches a log.
        f.debug_struct("OpenAi")
            .field("base_url", &self.base_url)
            .field("model", &self.model)
            .field("api_key", &self.api_key.as_ref().map(|_| "<set>"))
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl OpenAi {
    /// A provider at `base_url` (for example `https://api.openai.com/v1`) answering with
    /// `model`; without a key no `Authorization` header is sent (local servers need none).
    pub fn new(base_url: &str, model: &str, api_key: Option<String>) -> Result<Self> {
        let model = model.trim();
        if model.is_empty() {
            return Err(InferError::invalid(
                "the openai provider needs the name of a model",
            ));
        }
        let parsed = url::Url::parse(base_url.trim()).map_err(|e| {
            InferError::invalid(format!("`{base_url}` is not a provider base URL: {e}"))
        })?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(InferError::invalid(format!(
                "`{base_url}`: the provider's base URL must be http or https"
            )));
        }
        Ok(OpenAi {
            base_url: base_url.trim().trim_end_matches('/').to_string(),
            model: model.to_string(),
            api_key: api_key.filter(|k| !k.trim().is_empty()),
            timeout: PROVIDER_TIMEOUT,
        })
    }

    /// The longest the provider may take to answer (120 s by default).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    pub fn model(&self) -> &str {
        &self.model
    }

    /// `{base_url}/chat/completions`.
    pub fn endpoint(&self) -> String {
        format!("{}/chat/completions", self.base_url)
    }

    /// The chat-completions request: the system prompt, then the numbered passages and the
    /// question; temperature 0 so that the same context gives the same answer.
    pub fn request_body(&self, question: &str, passages: &[Passage]) -> Value {
        json!({
            "model": self.model,
            "messages": [
                {"role": "system", "content": SYSTEM_PROMPT},
                {"role": "user", "content": user_message(question, passages)},
            ],
            "temperature": 0,
        })
    }

    /// The provider's answer to `question` from `passages`.
    pub async fn complete(&self, question: &str, passages: &[Passage]) -> Result<String> {
        let url = self.endpoint();
        let error = |status: Option<u16>, reason: String| InferError::Provider {
            provider: Provider::OpenAi.as_str(),
            url: url.clone(),
            status,
            reason,
        };
        let client = reqwest::Client::builder()
            .timeout(self.timeout)
            .connect_timeout(CONNECT_TIMEOUT.min(self.timeout))
            // A redirect would turn the POST into a GET; the status says more.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("kaizen/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| error(None, e.to_string()))?;
        let mut request = client
            .post(&url)
            .json(&self.request_body(question, passages));
        if let Some(key) = &self.api_key {
            request = request.bearer_auth(key);
        }
        let describe = |e: &reqwest::Error| crate::source::describe_http_error(e, self.timeout);
        let mut response = request
            .send()
            .await
            .map_err(|e| error(None, describe(&e)))?;
        let status = response.status();
        let code = Some(status.as_u16());
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| error(code, format!("answered {status}, then {}", describe(&e))))?
        {
            if body.len() + chunk.len() > MAX_PROVIDER_ANSWER {
                return Err(error(
                    code,
                    format!("answered {status} with more than {MAX_PROVIDER_ANSWER} bytes"),
                ));
            }
            body.extend_from_slice(&chunk);
        }
        if !status.is_success() {
            return Err(error(
                code,
                format!("answered {status}: {}", error_message(&body)),
            ));
        }
        tracing::debug!(%url, model = %self.model, bytes = body.len(), "LLM provider answered");
        parse_completion(&body)
            .map_err(|reason| error(code, format!("answered {status} with {reason}")))
    }
}

/// The most tokens of a local LLM's answer unless asked otherwise.
pub const DEFAULT_ANSWER_TOKENS: usize = 200;

/// The answer of a local LLM to `question` from `passages`: the same prompt as an
/// OpenAI-compatible provider gets, generated greedily (the same context gives the same answer).
pub fn answer_local(
    llm: &crate::llm::Llm,
    question: &str,
    passages: &[Passage],
    max_new_tokens: usize,
) -> Result<String> {
    let messages = [
        crate::llm::Message::system(SYSTEM_PROMPT),
        crate::llm::Message::user(user_message(question, passages)),
    ];
    let options = crate::llm::GenerateOptions {
        max_new_tokens,
        ..crate::llm::GenerateOptions::default()
    };
    let generation = llm.chat(&messages, &options)?;
    if generation.text.is_empty() {
        return Err(InferError::Unsupported(format!(
            "the local LLM `{}` wrote no answer",
            llm.name()
        )));
    }
    Ok(generation.text)
}

/// The user's message: the passages numbered from 1 in context order, then the question.
pub fn user_message(question: &str, passages: &[Passage]) -> String {
    let mut message = String::from("Context:\n");
    for (n, passage) in passages.iter().enumerate() {
        message.push_str(&format!("[{}] {}\n\n", n + 1, passage.text));
    }
    message.push_str("Question: ");
    message.push_str(question.trim());
    message
}

/// The message of a provider's error answer: OpenAI's `{"error": {"message": ...}}` (or a bare
/// `{"error": "..."}`), else the start of the body.
pub fn error_message(body: &[u8]) -> String {
    if let Ok(json) = serde_json::from_slice::<Value>(body) {
        let message = json
            .pointer("/error/message")
            .or_else(|| json.get("error"))
            .or_else(|| json.get("message"))
            .and_then(Value::as_str);
        if let Some(message) = message {
            return message.to_string();
        }
    }
    let text = String::from_utf8_lossy(body);
    let text: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if text.is_empty() {
        return "(empty body)".to_string();
    }
    match text.char_indices().nth(MAX_QUOTED) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text,
    }
}

/// The text of a chat completion, `choices[0].message.content`; the error says what was wrong.
pub fn parse_completion(body: &[u8]) -> std::result::Result<String, String> {
    let json: Value = serde_json::from_slice(body)
        .map_err(|e| format!("a body that is not JSON ({e}): {}", error_message(body)))?;
    if json.get("error").is_some_and(|e| !e.is_null()) {
        return Err(format!("an error: {}", error_message(body)));
    }
    match json.pointer("/choices/0/message/content") {
        Some(Value::String(text)) if !text.trim().is_empty() => Ok(text.trim().to_string()),
        Some(Value::String(_)) => Err("an empty answer".to_string()),
        _ => Err("JSON without `choices[0].message.content`".to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(tokens: &[usize], budget: usize, expected: &[Range<usize>]) {
        assert_eq!(
            passage_windows(tokens, budget, PASSAGE_SENTENCES, OVERLAP),
            expected,
            "tokens {tokens:?}, budget {budget}"
        );
    }

    #[test]
    // One window is written as a one-element slice of ranges on purpose.
    #[allow(clippy::single_range_in_vec_init)]
    fn windows_of_three_overlap_by_one() {
        check(&[], 100, &[]);
        check(&[10], 100, &[0..1]);
        check(&[10, 10], 100, &[0..2]);
        check(&[10, 10, 10], 100, &[0..3]);
        check(&[10; 4], 100, &[0..3, 2..4]);
        check(&[10; 7], 100, &[0..3, 2..5, 4..7]);
        check(&[10; 8], 100, &[0..3, 2..5, 4..7, 6..8]);
    }

    #[test]
    fn windows_respect_the_token_budget() {
        // Two sentences fit, three do not.
        check(&[40, 40, 40, 40], 100, &[0..2, 1..3, 2..4]);
        // A sentence over the budget is a window alone; no window is a subset of another.
        check(&[10, 300, 10, 10], 100, &[0..1, 1..2, 2..4]);
        check(&[300, 300], 100, &[0..1, 1..2]);
        // 60 + 60 does not fit: restarting at the overlap would add nothing new.
        check(&[30, 60, 60, 30], 100, &[0..2, 2..4]);
    }

    #[test]
    fn every_sentence_is_in_a_window_in_order() {
        for n in 0..40 {
            let tokens: Vec<usize> = (0..n).map(|i| (i * 37) % 90 + 1).collect();
            let windows = passage_windows(&tokens, 100, 3, 1);
            let mut covered = vec![false; n];
            for w in &windows {
                assert!(!w.is_empty() && w.len() <= 3);
                assert!(w.len() == 1 || tokens[w.clone()].iter().sum::<usize>() <= 100);
                w.clone().for_each(|i| covered[i] = true);
            }
            assert!(covered.iter().all(|&c| c), "n = {n}: {windows:?}");
            assert!(
                windows
                    .windows(2)
                    .all(|p| p[0].start < p[1].start && p[0].end < p[1].end)
            );
        }
    }

    #[test]
    fn top_k_keeps_context_order_and_breaks_ties_early() {
        assert_eq!(top_k_in_order(&[0.1, 0.9, 0.5, 0.7], 2), vec![1, 3]);
        assert_eq!(top_k_in_order(&[0.5, 0.5, 0.5], 2), vec![0, 1]);
        assert_eq!(top_k_in_order(&[0.2], 3), vec![0]);
        assert_eq!(top_k_in_order(&[f32::NAN, 0.1], 1), vec![0]);
        assert!(top_k_in_order(&[], 3).is_empty());
    }

    #[test]
    fn providers_parse() {
        assert_eq!(
            "extractive".parse::<Provider>().unwrap(),
            Provider::Extractive
        );
        assert_eq!("openai".parse::<Provider>().unwrap(), Provider::OpenAi);
        assert_eq!("local".parse::<Provider>().unwrap(), Provider::Local);
        assert!("gpt".parse::<Provider>().is_err());
        assert_eq!(
            serde_json::to_value(Provider::OpenAi).unwrap(),
            json!("openai")
        );
    }

    #[test]
    fn the_request_numbers_the_passages_and_ends_with_the_question() {
        let provider =
            OpenAi::new("http://127.0.0.1:9/v1/", "small-model", Some(String::new())).unwrap();
        assert_eq!(
            provider.endpoint(),
            "http://127.0.0.1:9/v1/chat/completions"
        );
        // An empty key is no key.
        assert!(provider.api_key.is_none());
        let passages = [
            Passage {
                text: "First passage.".into(),
                score: 0.5,
                index: 2,
            },
            Passage {
                text: "Second passage.".into(),
                score: 0.7,
                index: 5,
            },
        ];
        let body = provider.request_body(" What? ", &passages);
        assert_eq!(body["model"], "small-model");
        assert_eq!(body["temperature"], 0);
        assert_eq!(body["messages"][0]["role"], "system");
        assert_eq!(body["messages"][0]["content"], SYSTEM_PROMPT);
        assert_eq!(body["messages"][1]["role"], "user");
        assert_eq!(
            body["messages"][1]["content"],
            "Context:\n[1] First passage.\n\n[2] Second passage.\n\nQuestion: What?"
        );
    }

    #[test]
    fn bad_provider_settings_are_refused() {
        assert!(OpenAi::new("http://localhost:8000/v1", " ", None).is_err());
        assert!(OpenAi::new("localhost:8000", "m", None).is_err());
        assert!(OpenAi::new("ftp://localhost/v1", "m", None).is_err());
        let debug = format!(
            "{:?}",
            OpenAi::new("http://h/v1", "m", Some("sk-secret".into())).unwrap()
        );
        assert!(!debug.contains("sk-secret"), "{debug}");
    }

    #[test]
    fn provider_answers_and_errors_are_read() {
        let ok = br#"{"id":"x","choices":[{"index":0,"message":{"role":"assistant",
            "content":"  Twelve turbines. "},"finish_reason":"stop"}]}"#;
        assert_eq!(parse_completion(ok).unwrap(), "Twelve turbines.");
        assert!(
            parse_completion(b"<html>")
                .unwrap_err()
                .contains("not JSON")
        );
        assert!(parse_completion(br#"{"choices":[]}"#).is_err());
        let refusal = br#"{"choices":[{"message":{"content":null}}]}"#;
        assert!(parse_completion(refusal).is_err());
        let empty = br#"{"choices":[{"message":{"content":" "}}]}"#;
        assert_eq!(parse_completion(empty).unwrap_err(), "an empty answer");

        let openai = br#"{"error":{"message":"Incorrect API key provided","type":"invalid_request_error","code":"invalid_api_key"}}"#;
        assert_eq!(error_message(openai), "Incorrect API key provided");
        assert_eq!(
            error_message(br#"{"error":"model not found"}"#),
            "model not found"
        );
        assert_eq!(error_message(b""), "(empty body)");
        let long = "x ".repeat(1000);
        assert!(error_message(long.as_bytes()).len() < 400);
        assert!(error_message("é".repeat(500).as_bytes()).ends_with("..."));
    }
}
