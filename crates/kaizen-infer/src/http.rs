//! The HTTP face of pretrained models: `POST /v1/embed`, `/v1/summarize`, `/v1/sentiment` and
//! `/v1/phrases` as a router that `kaizen server` mounts beside the tracking API. Each model (or
//! data set) is loaded on the first request that needs it and shared; inference runs on the
//! blocking pool. Errors use MLflow's `{"error_code",
//! "message"}` shape, and a caller's mistake is never a 5xx.

use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::OnceCell;

use crate::Embedder;
use crate::error::{ErrorKind, InferError};
use crate::source::Source;
use crate::summarize::{Method, summarize};

/// The largest request body, in bytes.
const MAX_BODY: usize = 16 * 1024 * 1024;
/// The most texts one `/v1/embed` request may carry.
const MAX_TEXTS: usize = 4096;

/// Where the routes find their model and sources.
#[derive(Debug, Clone)]
pub struct InferConfig {
    /// The sentence-embedding model directory.
    pub embed_model: PathBuf,
    /// pattern.en's data files (TextBlob's), for sentiment and noun phrases.
    pub text_data: PathBuf,
    /// The MediaWiki API that `{"wiki": TITLE}` reads.
    pub wiki_api: String,
    /// Whether `{"url": ...}` and `{"wiki": ...}` may make the server fetch pages. Off, a
    /// public server cannot be turned into a proxy for addresses only it can reach.
    pub allow_fetch: bool,
}

/// The routes' shared state: the configuration and the model once loaded.
#[derive(Clone)]
pub struct InferState {
    config: Arc<InferConfig>,
    embedder: Arc<OnceCell<Arc<Embedder>>>,
    lexicon: Arc<OnceCell<Arc<kaizen_text::Lexicon>>>,
    tagger: Arc<OnceCell<Arc<kaizen_text::Tagger>>>,
}

impl InferState {
    pub fn new(config: InferConfig) -> Self {
        InferState {
            config: Arc::new(config),
            embedder: Arc::new(OnceCell::new()),
            lexicon: Arc::new(OnceCell::new()),
            tagger: Arc::new(OnceCell::new()),
        }
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

/// `POST /v1/embed`, `/v1/summarize`, `/v1/sentiment` and `/v1/phrases`, and their pages
/// under `/app`.
pub fn router(state: InferState) -> Router {
    Router::new()
        .route("/v1/embed", post(embed))
        .route("/v1/summarize", post(summarize_route))
        .route("/v1/sentiment", post(sentiment_route))
        .route("/v1/phrases", post(phrases_route))
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
    let body = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "REQUEST_LIMIT_EXCEEDED",
                format!("the request body is larger than {MAX_BODY} bytes"),
            )
        } else {
            ApiError::new(StatusCode::BAD_REQUEST, "MALFORMED_REQUEST", e.body_text())
        }
    })?;
    serde_json::from_slice(&body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "MALFORMED_REQUEST",
            format!("the request body is not the expected JSON: {e}"),
        )
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
    Ok(axum::Json(json!({"embeddings": embeddings, "model": model, "dim": dim})).into_response())
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
}

fn default_sentences() -> usize {
    3
}

async fn summarize_route(
    State(state): State<InferState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let request: SummarizeRequest = parse_body(body)?;
    let method: Method = request.method.as_deref().unwrap_or("extractive").parse()?;
    let source = state.source(request.text, request.url, request.wiki)?;
    method.ensure_supported()?;
    let doc = source.load().await?;
    let embedder = state.embedder().await?;
    let n = request.sentences;
    let summary = tokio::task::spawn_blocking(move || summarize(&embedder, &doc.text, n, method))
        .await
        .map_err(|e| ApiError::internal(&e))??;
    Ok(axum::Json(summary).into_response())
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
