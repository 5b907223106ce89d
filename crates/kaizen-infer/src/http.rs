//! The HTTP face of pretrained models: `POST /v1/embed`, `/v1/summarize`, `/v1/ask`,
//! `/v1/sentiment`, `/v1/phrases` and `/v1/transcribe` as a router that `kaizen server` mounts
//! beside the tracking API. Each model (or data set) is loaded on the first request that needs it
//! and shared; inference runs on the blocking pool. Errors use MLflow's `{"error_code",
//! "message"}` shape, and a caller's mistake is never a 5xx.

use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::rejection::QueryRejection;
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::OnceCell;

use crate::abstractive::{AbstractiveOptions, Writer};
use crate::ask::{self, OpenAi, Provider};
use crate::error::{ErrorKind, InferError};
use crate::source::Source;
use crate::summarize::{Method, summarize, summarize_abstractive};
use crate::transcribe::{Transcriber, summarize_transcript};
use crate::{Embedder, audio};

/// The largest request body, in bytes.
const MAX_BODY: usize = 16 * 1024 * 1024;
/// The largest WAV body of `/v1/transcribe`, in bytes (about 17 minutes of 16 kHz 16-bit mono).
const MAX_AUDIO_BODY: usize = 32 * 1024 * 1024;
/// The most texts one `/v1/embed` request may carry.
const MAX_TEXTS: usize = 4096;

/// Where the routes find their model, sources and LLM provider.
#[derive(Clone)]
pub struct InferConfig {
    /// The sentence-embedding model directory.
    pub embed_model: PathBuf,
    /// pattern.en's data files (TextBlob's), for sentiment and noun phrases.
    pub text_data: PathBuf,
    /// The model that writes: abstractive summaries and `{"provider": "local"}` answers. A GGUF
    /// instruct LLM (a file, or a directory with one) or a T5 model directory.
    pub local_model: PathBuf,
    /// The Whisper model directory (Hugging Face layout) of `/v1/transcribe`.
    pub transcribe_model: PathBuf,
    /// The MediaWiki API that `{"wiki": TITLE}` reads.
    pub wiki_api: String,
    /// Whether `{"url": ...}` and `{"wiki": ...}` may make the server fetch pages. Off, a
    /// public server cannot be turned into a proxy for addresses only it can reach.
    pub allow_fetch: bool,
    /// The base URL of the OpenAI-compatible provider of `/v1/ask` (`{"provider": "openai"}`);
    /// the OpenAI API when only a model or a key is set. The provider is off while all three
    /// `llm_` fields are unset, and a request never names the URL: callers must not make the
    /// server call addresses of their choosing.
    pub llm_base_url: Option<String>,
    /// The LLM used when a request names none.
    pub llm_model: Option<String>,
    /// Sent as `Authorization: Bearer`; no header without it.
    pub llm_api_key: Option<String>,
}

impl std::fmt::Debug for InferConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key never reaches a log.
        f.debug_struct("InferConfig")
            .field("embed_model", &self.embed_model)
            .field("text_data", &self.text_data)
            .field("local_model", &self.local_model)
            .field("transcribe_model", &self.transcribe_model)
            .field("wiki_api", &self.wiki_api)
            .field("allow_fetch", &self.allow_fetch)
            .field("llm_base_url", &self.llm_base_url)
            .field("llm_model", &self.llm_model)
            .field("llm_api_key", &self.llm_api_key.as_ref().map(|_| "<set>"))
            .finish()
    }
}

/// The routes' shared state: the configuration and the model once loaded.
#[derive(Clone)]
pub struct InferState {
    config: Arc<InferConfig>,
    embedder: Arc<OnceCell<Arc<Embedder>>>,
    lexicon: Arc<OnceCell<Arc<kaizen_text::Lexicon>>>,
    tagger: Arc<OnceCell<Arc<kaizen_text::Tagger>>>,
    writer: Arc<OnceCell<Arc<Writer>>>,
    transcriber: Arc<OnceCell<Arc<Transcriber>>>,
}

impl InferState {
    pub fn new(config: InferConfig) -> Self {
        InferState {
            config: Arc::new(config),
            embedder: Arc::new(OnceCell::new()),
            lexicon: Arc::new(OnceCell::new()),
            tagger: Arc::new(OnceCell::new()),
            writer: Arc::new(OnceCell::new()),
            transcriber: Arc::new(OnceCell::new()),
        }
    }

    /// The local writing model, loaded on first use (like the embedding model).
    async fn writer(&self) -> Result<Arc<Writer>, ApiError> {
        self.writer
            .get_or_try_init(|| async {
                let path = self.config.local_model.clone();
                let loaded = tokio::task::spawn_blocking(move || Writer::load(&path))
                    .await
                    .map_err(|e| ApiError::internal(&e))?;
                match loaded {
                    Ok(model) => Ok(Arc::new(model)),
                    Err(e) => {
                        tracing::error!(error = %e, "cannot load the local writing model");
                        Err(ApiError::new(
                            StatusCode::SERVICE_UNAVAILABLE,
                            "TEMPORARILY_UNAVAILABLE",
                            "the local writing model (an instruct LLM in GGUF) is not installed \
                             on this server (see the server log; docs/pretrained.md says how to \
                             get it)",
                        ))
                    }
                }
            })
            .await
            .cloned()
    }

    /// The embedding model, loaded on first use; a failed load is retried by the next request.
    async fn embedder(&self) -> Result<Arc<Embedder>, ApiError> {
        self.embedder
            .get_or_try_init(|| async {
                let dir = self.config.embed_model.clone();
                let loaded = tokio::task::spawn_blocking(move || Embedder::load(&dir))
                    .await
                    .map_err(|e| ApiError::internal(&e))?;
                match loaded {
                    Ok(model) => Ok(Arc::new(model)),
                    Err(e) => {
                        tracing::error!(error = %e, "cannot load the embedding model");
                        Err(ApiError::new(
                            StatusCode::SERVICE_UNAVAILABLE,
                            "TEMPORARILY_UNAVAILABLE",
                            "the embedding model is not installed on this server (see the server \
                             log; docs/pretrained.md says how to get it)",
                        ))
                    }
                }
            })
            .await
            .cloned()
    }

    /// The Whisper model, loaded on first use (like the embedding model).
    async fn transcriber(&self) -> Result<Arc<Transcriber>, ApiError> {
        self.transcriber
            .get_or_try_init(|| async {
                let dir = self.config.transcribe_model.clone();
                let loaded = tokio::task::spawn_blocking(move || Transcriber::load(&dir))
                    .await
                    .map_err(|e| ApiError::internal(&e))?;
                match loaded {
                    Ok(model) => Ok(Arc::new(model)),
                    Err(e) => {
                        tracing::error!(error = %e, "cannot load the speech model");
                        Err(ApiError::new(
                            StatusCode::SERVICE_UNAVAILABLE,
                            "TEMPORARILY_UNAVAILABLE",
                            "the speech model (Whisper) is not installed on this server (see \
                             the server log; docs/pretrained.md says how to get it)",
                        ))
                    }
                }
            })
            .await
            .cloned()
    }

    /// The sentiment lexicon, loaded on first use (like the embedding model).
    async fn lexicon(&self) -> Result<Arc<kaizen_text::Lexicon>, ApiError> {
        let dir = self.config.text_data.clone();
        self.lexicon
            .get_or_try_init(|| load_text_data(move || kaizen_text::Lexicon::load(&dir)))
            .await
            .cloned()
    }

    /// The part-of-speech tagger, loaded on first use.
    async fn tagger(&self) -> Result<Arc<kaizen_text::Tagger>, ApiError> {
        let dir = self.config.text_data.clone();
        self.tagger
            .get_or_try_init(|| load_text_data(move || kaizen_text::Tagger::load(&dir)))
            .await
            .cloned()
    }

    /// The server's OpenAI-compatible provider answering with `model`, else with its default
    /// model.
    fn llm(&self, model: Option<&str>) -> Result<OpenAi, ApiError> {
        let config = &self.config;
        if config.llm_base_url.is_none()
            && config.llm_model.is_none()
            && config.llm_api_key.is_none()
        {
            return Err(ApiError::invalid(
                "this server has no LLM provider (start it with KAIZEN_LLM_BASE_URL and \
                 KAIZEN_LLM_MODEL set); use the extractive provider",
            ));
        }
        let model = model
            .filter(|m| !m.trim().is_empty())
            .or(config.llm_model.as_deref())
            .ok_or_else(|| {
                ApiError::invalid("give `model`: this server has no default LLM (KAIZEN_LLM_MODEL)")
            })?;
        let base_url = config
            .llm_base_url
            .as_deref()
            .unwrap_or(ask::DEFAULT_OPENAI_BASE_URL);
        OpenAi::new(base_url, model, config.llm_api_key.clone()).map_err(|e| {
            tracing::error!(error = %e, "the LLM provider is misconfigured");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "TEMPORARILY_UNAVAILABLE",
                "this server's LLM provider is misconfigured (see the server log)",
            )
        })
    }

    /// The text a request names: `text` as is; `url` and `wiki` only where fetching is allowed.
    fn source(
        &self,
        text: Option<String>,
        url: Option<String>,
        wiki: Option<String>,
    ) -> Result<Source, ApiError> {
        match (text, url, wiki) {
            (Some(text), None, None) => Ok(Source::Text(text)),
            (None, Some(url), None) if self.config.allow_fetch => Ok(Source::Url(url)),
            (None, None, Some(title)) if self.config.allow_fetch => Ok(Source::Wiki {
                title,
                api: self.config.wiki_api.clone(),
            }),
            (None, Some(_), None) | (None, None, Some(_)) => Err(ApiError::invalid(
                "this server does not fetch pages (start it with --allow-fetch); send `text`",
            )),
            _ => Err(ApiError::invalid(
                "give exactly one of `text`, `url` or `wiki`",
            )),
        }
    }
}

/// Loads pattern.en's data on the blocking pool; missing data is the server's state, not the
/// caller's mistake (503), and a later request tries again.
async fn load_text_data<T: Send + 'static>(
    load: impl FnOnce() -> Result<T, kaizen_text::TextError> + Send + 'static,
) -> Result<Arc<T>, ApiError> {
    match tokio::task::spawn_blocking(load)
        .await
        .map_err(|e| ApiError::internal(&e))?
    {
        Ok(loaded) => Ok(Arc::new(loaded)),
        Err(e) => {
            tracing::error!(error = %e, "cannot load the text data");
            Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "TEMPORARILY_UNAVAILABLE",
                "the text data (pattern.en's files from textblob) is not installed on this \
                 server (see the server log; docs/pretrained.md says how to get it)",
            ))
        }
    }
}

/// `POST /v1/embed`, `/v1/summarize`, `/v1/ask`, `/v1/sentiment`, `/v1/phrases` and
/// `/v1/transcribe`, and their pages under `/app`.
pub fn router(state: InferState) -> Router {
    Router::new()
        .route("/v1/embed", post(embed))
        .route("/v1/summarize", post(summarize_route))
        .route("/v1/ask", post(ask_route))
        .route("/v1/sentiment", post(sentiment_route))
        .route("/v1/phrases", post(phrases_route))
        .route(
            "/v1/transcribe",
            post(transcribe_route).layer(DefaultBodyLimit::max(MAX_AUDIO_BODY)),
        )
        .route("/app", get(crate::ui::index))
        .route("/app/{task}", get(crate::ui::page))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(state)
}

/// An error answered as `{"error_code": ..., "message": ...}`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "INVALID_PARAMETER_VALUE", message)
    }

    fn internal(error: &dyn std::fmt::Display) -> Self {
        tracing::error!(%error, "pretrained-model request failed");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "INTERNAL_ERROR",
            "internal error; see the server log",
        )
    }
}

impl From<InferError> for ApiError {
    fn from(e: InferError) -> Self {
        match e.kind() {
            ErrorKind::Invalid => ApiError::invalid(e.to_string()),
            ErrorKind::NotFound => ApiError::new(
                StatusCode::NOT_FOUND,
                "RESOURCE_DOES_NOT_EXIST",
                e.to_string(),
            ),
            // The page named by the caller did not answer: their input, not our failure.
            ErrorKind::Unavailable => ApiError::invalid(e.to_string()),
            ErrorKind::Unsupported => ApiError::new(
                StatusCode::NOT_IMPLEMENTED,
                "NOT_IMPLEMENTED",
                e.to_string(),
            ),
            ErrorKind::Internal => ApiError::internal(&e),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            axum::Json(json!({"error_code": self.code, "message": self.message})),
        )
            .into_response()
    }
}

fn parse_body<T: serde::de::DeserializeOwned>(
    body: Result<Bytes, BytesRejection>,
) -> Result<T, ApiError> {
    let body = body_bytes(body, MAX_BODY)?;
    serde_json::from_slice(&body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "MALFORMED_REQUEST",
            format!("the request body is not the expected JSON: {e}"),
        )
    })
}

/// The body, or the error for one over `limit` bytes or one that could not be read.
fn body_bytes(body: Result<Bytes, BytesRejection>, limit: usize) -> Result<Bytes, ApiError> {
    body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "REQUEST_LIMIT_EXCEEDED",
                format!("the request body is larger than {limit} bytes"),
            )
        } else {
            ApiError::new(StatusCode::BAD_REQUEST, "MALFORMED_REQUEST", e.body_text())
        }
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EmbedRequest {
    /// Several texts, or...
    texts: Option<Vec<String>>,
    /// ...one.
    text: Option<String>,
}

async fn embed(
    State(state): State<InferState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let request: EmbedRequest = parse_body(body)?;
    let texts = match (request.texts, request.text) {
        (Some(texts), None) => texts,
        (None, Some(text)) => vec![text],
        _ => return Err(ApiError::invalid("give either `texts` (a list) or `text`")),
    };
    if texts.is_empty() {
        return Err(ApiError::invalid("`texts` is empty"));
    }
    if texts.len() > MAX_TEXTS {
        return Err(ApiError::invalid(format!(
            "{} texts in one request; at most {MAX_TEXTS}",
            texts.len()
        )));
    }
    let embedder = state.embedder().await?;
    let model = embedder.name().to_string();
    let dim = embedder.dim();
    let embeddings = tokio::task::spawn_blocking(move || embedder.embed(&texts))
        .await
        .map_err(|e| ApiError::internal(&e))??;
    Ok(axum::Json(EmbedResponse {
        embeddings,
        model,
        dim,
    })
    .into_response())
}

/// What `POST /v1/embed` answers. Typed rather than a `json!` value, so that each f32 prints in
/// its shortest form (`-0.03587836`) instead of through f64 (`-0.03587836027145386`): half
/// the body, the same values.
#[derive(serde::Serialize)]
struct EmbedResponse {
    embeddings: Vec<Vec<f32>>,
    model: String,
    dim: usize,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SummarizeRequest {
    text: Option<String>,
    url: Option<String>,
    wiki: Option<String>,
    #[serde(default = "default_sentences")]
    sentences: usize,
    #[serde(default)]
    method: Option<String>,
    /// Abstractive: the most tokens of the summary.
    max_tokens: Option<usize>,
    /// Abstractive: input tokens per model call (chunks of long texts).
    window_tokens: Option<usize>,
}

fn default_sentences() -> usize {
    3
}

/// The most tokens an abstractive summary or a local answer may ask for.
const MAX_NEW_TOKENS: usize = 1024;

async fn summarize_route(
    State(state): State<InferState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let request: SummarizeRequest = parse_body(body)?;
    let method: Method = request.method.as_deref().unwrap_or("extractive").parse()?;
    let source = state.source(request.text, request.url, request.wiki)?;
    let n = request.sentences;
    if method == Method::Extractive {
        if request.max_tokens.is_some() || request.window_tokens.is_some() {
            return Err(ApiError::invalid(
                "`max_tokens` and `window_tokens` are for the abstractive method",
            ));
        }
        let doc = source.load().await?;
        let embedder = state.embedder().await?;
        let summary = tokio::task::spawn_blocking(move || summarize(&embedder, &doc.text, n))
            .await
            .map_err(|e| ApiError::internal(&e))??;
        return Ok(axum::Json(summary).into_response());
    }
    let mut options = AbstractiveOptions {
        sentences: n,
        ..AbstractiveOptions::default()
    };
    if let Some(max) = request.max_tokens {
        if max == 0 || max > MAX_NEW_TOKENS {
            return Err(ApiError::invalid(format!(
                "`max_tokens` must be between 1 and {MAX_NEW_TOKENS}"
            )));
        }
        options.max_new_tokens = max;
    }
    options.window_tokens = request.window_tokens;
    let doc = source.load().await?;
    let writer = state.writer().await?;
    let summary =
        tokio::task::spawn_blocking(move || summarize_abstractive(&writer, &doc.text, &options))
            .await
            .map_err(|e| ApiError::internal(&e))??;
    Ok(axum::Json(summary).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AskRequest {
    #[serde(default)]
    question: String,
    text: Option<String>,
    url: Option<String>,
    wiki: Option<String>,
    #[serde(default = "default_top_k")]
    top_k: usize,
    provider: Option<String>,
    /// The LLM of the openai provider; its URL and key are the server's.
    model: Option<String>,
}

fn default_top_k() -> usize {
    ask::DEFAULT_TOP_K
}

/// `POST /v1/ask`: the passages of the text closest to the question, and the answer: the
/// closest sentence (extractive) or the server's LLM provider's text (openai).
async fn ask_route(
    State(state): State<InferState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let request: AskRequest = parse_body(body)?;
    let provider: Provider = request
        .provider
        .as_deref()
        .unwrap_or("extractive")
        .parse()?;
    // Everything the request alone can settle is checked before a page is fetched.
    ask::check_question(&request.question)?;
    ask::check_top_k(request.top_k)?;
    let llm = match provider {
        Provider::OpenAi => Some(state.llm(request.model.as_deref())?),
        _ if request.model.is_some() => {
            return Err(ApiError::invalid(
                "`model` names the LLM of the openai provider; extractive answers use the \
                 server's embedding model",
            ));
        }
        _ => None,
    };
    let source = state.source(request.text, request.url, request.wiki)?;
    let doc = source.load().await?;
    let embedder = state.embedder().await?;
    let (question, top_k) = (request.question, request.top_k);
    if provider == Provider::Local {
        let writer = state.writer().await?;
        let Writer::Llm(local) = writer.as_ref() else {
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "TEMPORARILY_UNAVAILABLE",
                "this server's local model is a sequence-to-sequence model; answers need an \
                 instruct LLM (GGUF)",
            ));
        };
        let local = local.clone();
        let answer = tokio::task::spawn_blocking(move || -> Result<_, InferError> {
            let retrieval = ask::retrieve(&embedder, &doc.text, &question, top_k)?;
            let text = ask::answer_local(
                &local,
                &question,
                &retrieval.passages,
                ask::DEFAULT_ANSWER_TOKENS,
            )?;
            Ok(retrieval.into_answer(text, Provider::Local, local.name(), &question))
        })
        .await
        .map_err(|e| ApiError::internal(&e))??;
        return Ok(axum::Json(answer).into_response());
    }
    let Some(llm) = llm else {
        let answer = tokio::task::spawn_blocking(move || {
            ask::answer_extractive(&embedder, &doc.text, &question, top_k)
        })
        .await
        .map_err(|e| ApiError::internal(&e))??;
        return Ok(axum::Json(answer).into_response());
    };
    let asked = question.clone();
    let retrieval =
        tokio::task::spawn_blocking(move || ask::retrieve(&embedder, &doc.text, &asked, top_k))
            .await
            .map_err(|e| ApiError::internal(&e))??;
    let text = llm
        .complete(&question, &retrieval.passages)
        .await
        .map_err(provider_failure)?;
    let answer = retrieval.into_answer(text, Provider::OpenAi, llm.model(), &question);
    Ok(axum::Json(answer).into_response())
}

/// A failure of the server's LLM provider is the server's (503), not the caller's; what the
/// provider said stays in the server log.
fn provider_failure(e: InferError) -> ApiError {
    let InferError::Provider {
        provider, status, ..
    } = &e
    else {
        return e.into();
    };
    tracing::error!(error = %e, "the LLM provider failed");
    let what = match status {
        Some(status) => format!("answered HTTP {status}"),
        None => "did not answer".to_string(),
    };
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "TEMPORARILY_UNAVAILABLE",
        format!("this server's LLM provider ({provider}) {what}; see the server log"),
    )
}

/// A request for sentiment or noun phrases: one of `text`, `url` or `wiki`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TextRequest {
    text: Option<String>,
    url: Option<String>,
    wiki: Option<String>,
}

impl TextRequest {
    /// The request's text, read from its source; empty text is refused.
    async fn load(self, state: &InferState) -> Result<String, ApiError> {
        let doc = state.source(self.text, self.url, self.wiki)?.load().await?;
        kaizen_text::check_text(&doc.text)
            .map_err(|_| ApiError::invalid("the text is empty: there is nothing to analyse"))?;
        Ok(doc.text)
    }
}

/// `POST /v1/sentiment`: TextBlob's polarity and subjectivity, a label, and the assessments.
async fn sentiment_route(
    State(state): State<InferState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let text = parse_body::<TextRequest>(body)?.load(&state).await?;
    let lexicon = state.lexicon().await?;
    let sentiment = tokio::task::spawn_blocking(move || lexicon.sentiment(&text))
        .await
        .map_err(|e| ApiError::internal(&e))?;
    Ok(axum::Json(sentiment).into_response())
}

/// `POST /v1/phrases`: the noun phrases, lower-cased, in order.
async fn phrases_route(
    State(state): State<InferState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let text = parse_body::<TextRequest>(body)?.load(&state).await?;
    let tagger = state.tagger().await?;
    let phrases = tokio::task::spawn_blocking(move || kaizen_text::noun_phrases(&tagger, &text))
        .await
        .map_err(|e| ApiError::internal(&e))?;
    Ok(axum::Json(json!({ "phrases": phrases })).into_response())
}

/// The query of `/v1/transcribe`; the body is the WAV file itself.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TranscribeQuery {
    #[serde(default)]
    summarize: bool,
    #[serde(default = "default_sentences")]
    sentences: usize,
}

/// `POST /v1/transcribe[?summarize=true&sentences=N]` with a WAV file as the body
/// (`Content-Type: audio/wav`): the transcript with timed segments, and with `summarize` an
/// extractive summary of it.
async fn transcribe_route(
    State(state): State<InferState>,
    query: Result<Query<TranscribeQuery>, QueryRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::invalid(e.body_text()))?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if content_type.starts_with("multipart/") || content_type.starts_with("application/json") {
        return Err(ApiError::invalid(format!(
            "send the WAV file itself as the body (Content-Type: audio/wav), not {content_type}"
        )));
    }
    if query.summarize && query.sentences == 0 {
        return Err(ApiError::invalid("`sentences` must be at least 1"));
    }
    let body = body_bytes(body, MAX_AUDIO_BODY)?;
    // The audio is checked before any model is loaded: a bad file is the caller's 400 even on
    // a server without the model.
    let audio = tokio::task::spawn_blocking(move || audio::decode_wav(&body))
        .await
        .map_err(|e| ApiError::internal(&e))??;
    let transcriber = state.transcriber().await?;
    let transcript = tokio::task::spawn_blocking(move || transcriber.transcribe(&audio))
        .await
        .map_err(|e| ApiError::internal(&e))??;
    let mut answer = serde_json::to_value(&transcript).map_err(|e| ApiError::internal(&e))?;
    if query.summarize {
        let embedder = state.embedder().await?;
        let n = query.sentences;
        let text = transcript.text;
        let summary =
            tokio::task::spawn_blocking(move || summarize_transcript(&embedder, &text, n))
                .await
                .map_err(|e| ApiError::internal(&e))??;
        answer["summary"] = serde_json::to_value(summary).map_err(|e| ApiError::internal(&e))?;
    }
    Ok(axum::Json(answer).into_response())
}
