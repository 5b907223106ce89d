//! kaizen-infer's integration tests: the HTTP routes without a socket, the OpenAI-compatible
//! provider against a stand-in server on a local port, and the embedder, the summarizer and
//! question answering on all-MiniLM-L6-v2 when it is installed (`scripts/setup.sh` copies it to
//! `models/`; `KAIZEN_MODELS` points elsewhere). Without the model those tests say so and pass;
//! the e2e suite requires it.

use std::path::PathBuf;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use kaizen_infer::{Embedder, InferConfig, InferState, router, summarize};

mod ask;
mod llm;
mod transcribe;
use serde_json::{Value, json};
use tower::ServiceExt;

fn model_dir() -> Option<PathBuf> {
    let root = std::env::var_os("KAIZEN_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models"));
    let dir = root.join("all-MiniLM-L6-v2");
    if dir.join("model.safetensors").is_file() {
        Some(dir)
    } else {
        eprintln!(
            "skipped: no model at {} (run scripts/setup.sh)",
            dir.display()
        );
        None
    }
}

async fn post(app: &axum::Router, path: &str, body: &str) -> (StatusCode, Value) {
    let request = Request::post(path)
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

fn app(model: PathBuf) -> axum::Router {
    app_with_text(model, PathBuf::from("/nonexistent/textblob"))
}

fn app_with_text(model: PathBuf, text_data: PathBuf) -> axum::Router {
    router(InferState::new(config(model, text_data)))
}

fn config(model: PathBuf, text_data: PathBuf) -> InferConfig {
    InferConfig {
        embed_model: model,
        text_data,
        local_model: PathBuf::from("/nonexistent/llm"),
        transcribe_model: PathBuf::from("/nonexistent/whisper"),
        wiki_api: kaizen_infer::DEFAULT_WIKI_API.to_string(),
        allow_fetch: false,
        llm_base_url: None,
        llm_model: None,
        llm_api_key: None,
    }
}

fn article() -> String {
    std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/fixtures/pretrained/article.txt"),
    )
    .unwrap()
}

#[tokio::test]
async fn http_errors_in_mlflow_shape() {
    let app = app(PathBuf::from("/nonexistent/model"));
    let cases = [
        (
            "/v1/embed",
            r#"{"texts": []}"#,
            StatusCode::BAD_REQUEST,
            "INVALID_PARAMETER_VALUE",
        ),
        (
            "/v1/embed",
            "{not json",
            StatusCode::BAD_REQUEST,
            "MALFORMED_REQUEST",
        ),
        (
            "/v1/embed",
            r#"{"texts": ["a"], "text": "b"}"#,
            StatusCode::BAD_REQUEST,
            "INVALID_PARAMETER_VALUE",
        ),
        (
            "/v1/embed",
            r#"{"texts": ["a"]}"#,
            StatusCode::SERVICE_UNAVAILABLE,
            "TEMPORARILY_UNAVAILABLE",
        ),
        (
            "/v1/summarize",
            r#"{"text": "One. Two.", "method": "abstractive"}"#,
            StatusCode::SERVICE_UNAVAILABLE,
            "TEMPORARILY_UNAVAILABLE",
        ),
        (
            "/v1/summarize",
            r#"{"text": "One. Two.", "method": "abstractive", "max_tokens": 0}"#,
            StatusCode::BAD_REQUEST,
            "INVALID_PARAMETER_VALUE",
        ),
        (
            "/v1/summarize",
            r#"{"text": "x", "method": "magic"}"#,
            StatusCode::BAD_REQUEST,
            "INVALID_PARAMETER_VALUE",
        ),
        (
            "/v1/summarize",
            r#"{"url": "http://127.0.0.1:9/"}"#,
            StatusCode::BAD_REQUEST,
            "INVALID_PARAMETER_VALUE",
        ),
        (
            "/v1/summarize",
            r#"{"text": "   "}"#,
            StatusCode::BAD_REQUEST,
            "INVALID_PARAMETER_VALUE",
        ),
        (
            "/v1/sentiment",
            r#"{"text": "fine", "language": "en"}"#,
            StatusCode::BAD_REQUEST,
            "MALFORMED_REQUEST",
        ),
        (
            "/v1/sentiment",
            r#"{"text": " \n "}"#,
            StatusCode::BAD_REQUEST,
            "INVALID_PARAMETER_VALUE",
        ),
        (
            "/v1/sentiment",
            r#"{"text": "fine"}"#,
            StatusCode::SERVICE_UNAVAILABLE,
            "TEMPORARILY_UNAVAILABLE",
        ),
        (
            "/v1/phrases",
            r#"{"wiki": "Rust"}"#,
            StatusCode::BAD_REQUEST,
            "INVALID_PARAMETER_VALUE",
        ),
        (
            "/v1/phrases",
            r#"{"text": "fine"}"#,
            StatusCode::SERVICE_UNAVAILABLE,
            "TEMPORARILY_UNAVAILABLE",
        ),
    ];
    for (path, body, status, code) in cases {
        let (got, json) = post(&app, path, body).await;
        assert_eq!(got, status, "{path} {body}: {json}");
        assert_eq!(json["error_code"], code, "{path} {body}: {json}");
        assert!(json["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    // The model's path stays in the server log.
    let (_, json) = post(&app, "/v1/embed", r#"{"text": "a"}"#).await;
    assert!(!json["message"].as_str().unwrap().contains("/nonexistent"));
}

#[test]
fn a_batch_embeds_as_its_texts_alone() {
    let Some(dir) = model_dir() else { return };
    let embedder = Embedder::load(&dir).unwrap();
    assert_eq!((embedder.dim(), embedder.max_tokens()), (384, 256));
    let texts = [
        "short",
        "A much longer sentence that needs many more tokens than the first one does.",
        "Mid-length text, with punctuation!",
    ];
    let batch = embedder.embed(&texts).unwrap();
    for (text, vector) in texts.iter().zip(&batch) {
        let alone = &embedder.embed(&[text]).unwrap()[0];
        let norm: f32 = vector.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5);
        assert!(
            kaizen_infer::cosine(vector, alone) > 1.0 - 1e-6,
            "padding changed {text:?}"
        );
    }
    // Truncation: past 256 tokens, more text changes nothing.
    let long = "word ".repeat(600);
    let longer = format!("{long} and then something else entirely");
    assert!(embedder.count_tokens(&long).unwrap() > 256);
    let v = embedder.embed(&[long.as_str(), longer.as_str()]).unwrap();
    assert!(kaizen_infer::cosine(&v[0], &v[1]) > 1.0 - 1e-6);
    assert!(embedder.embed::<&str>(&[]).unwrap().is_empty());
}

#[test]
fn summaries_are_sentences_of_the_input_in_order() {
    let Some(dir) = model_dir() else { return };
    let embedder = Embedder::load(&dir).unwrap();
    let text = article();
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    for n in [1, 4] {
        let summary = summarize(&embedder, &text, n).unwrap();
        assert_eq!(summary.sentences.len(), n);
        let positions: Vec<usize> = summary
            .sentences
            .iter()
            .map(|s| {
                flat.find(s.as_str())
                    .unwrap_or_else(|| panic!("not in the input: {s}"))
            })
            .collect();
        assert!(positions.windows(2).all(|w| w[0] < w[1]), "{positions:?}");
        assert_eq!(summary.input_chars, text.chars().count());
    }
    let short = summarize(&embedder, "Only one sentence here.", 3).unwrap();
    assert_eq!(short.sentences, ["Only one sentence here."]);
}

#[tokio::test]
async fn http_embed_and_summarize_with_the_model() {
    let Some(dir) = model_dir() else { return };
    let app = app(dir);
    let (status, body) = post(&app, "/v1/embed", &json!({"texts": ["a", "b"]}).to_string()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["embeddings"].as_array().unwrap().len(), 2);
    assert_eq!(body["model"], "all-MiniLM-L6-v2");
    let text = "The council met on Monday. It approved the budget for schools. Parents had asked \
                for more teachers. The mayor said the vote was close.";
    let (status, body) = post(
        &app,
        "/v1/summarize",
        &json!({"text": text, "sentences": 2}).to_string(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["sentences"].as_array().unwrap().len(), 2);
    assert_eq!(body["method"], "extractive");
}

/// pattern.en's files, a few entries each, in the layout setup copies from textblob.
fn text_data() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("en-sentiment.xml"),
        r#"<?xml version="1.0" encoding="utf-8"?>
<sentiment language="en">
<word form="great" pos="JJ" polarity="0.8" subjectivity="0.75" intensity="1.0" />
<word form="slow" pos="JJ" polarity="-0.3" subjectivity="0.4" intensity="1.0" />
</sentiment>
"#,
    )
    .unwrap();
    std::fs::write(
        dir.path().join("en-lexicon.txt"),
        "the DT\nThe DT\ngreat JJ\nmodel NN\nserver NN\nis VBZ\nslow JJ\n. .\n",
    )
    .unwrap();
    dir
}

#[tokio::test]
async fn sentiment_and_noun_phrases_over_http() {
    let data = text_data();
    let app = app_with_text(
        PathBuf::from("/nonexistent/model"),
        data.path().to_path_buf(),
    );
    let (status, json) = post(&app, "/v1/sentiment", r#"{"text": "A great model."}"#).await;
    assert_eq!(status, StatusCode::OK, "{json}");
    assert!(
        (json["polarity"].as_f64().unwrap() - 0.8).abs() < 1e-12,
        "{json}"
    );
    assert!(
        (json["subjectivity"].as_f64().unwrap() - 0.75).abs() < 1e-12,
        "{json}"
    );
    assert_eq!(json["label"], "positive");
    assert_eq!(json["assessments"][0]["words"][0], "great");

    let (status, json) = post(&app, "/v1/sentiment", r#"{"text": "The server is slow."}"#).await;
    assert_eq!(status, StatusCode::OK, "{json}");
    assert_eq!(json["label"], "negative", "{json}");

    let (status, json) = post(
        &app,
        "/v1/phrases",
        r#"{"text": "The great model server is slow."}"#,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{json}");
    assert_eq!(
        json["phrases"],
        serde_json::json!(["great model server"]),
        "{json}"
    );
}
