//! Questions answered from a context: retrieval and extractive answers on the real model, the
//! OpenAI-compatible provider against a stand-in server on a local port, and `POST /v1/ask`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::HeaderMap;
use kaizen_infer::ask::{self, OpenAi, Provider};
use kaizen_infer::{ErrorKind, InferError, Passage};

use super::*;

const COST: &str =
    "The plant cost 212 million euros, of which the regional government paid about a third.";

/// What a stand-in provider answers and what it was asked: each request's `Authorization`
/// header and JSON body.
type Reply = (StatusCode, String);
type Seen = Vec<(Option<String>, Value)>;

/// A stand-in for an OpenAI-compatible API at `{url}/chat/completions`.
struct StandIn {
    url: String,
    reply: Arc<Mutex<Reply>>,
    seen: Arc<Mutex<Seen>>,
}

impl StandIn {
    async fn start() -> StandIn {
        let reply = Arc::new(Mutex::new(completion("It cost 212 million euros.")));
        let seen: Arc<Mutex<Seen>> = Arc::default();
        let (r, s) = (Arc::clone(&reply), Arc::clone(&seen));
        let app = axum::Router::new().route(
            "/v1/chat/completions",
            axum::routing::post(move |headers: HeaderMap, body: axum::body::Bytes| {
                let (r, s) = (Arc::clone(&r), Arc::clone(&s));
                async move {
                    let auth = headers
                        .get("authorization")
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_string);
                    let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
                    s.lock().unwrap().push((auth, body));
                    let (status, text) = r.lock().unwrap().clone();
                    (status, [("content-type", "application/json")], text)
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/v1", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.ok() });
        StandIn { url, reply, seen }
    }

    fn answer(&self, status: StatusCode, body: String) {
        *self.reply.lock().unwrap() = (status, body);
    }

    fn last(&self) -> (Option<String>, Value) {
        self.seen.lock().unwrap().last().cloned().unwrap()
    }
}

fn completion(text: &str) -> Reply {
    let body = json!({
        "id": "chatcmpl-1", "object": "chat.completion", "model": "tiny-llm",
        "choices": [{"index": 0, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": text}}],
    });
    (StatusCode::OK, body.to_string())
}

fn openai_error(message: &str) -> String {
    json!({"error": {"message": message, "type": "invalid_request_error",
                     "code": "invalid_api_key", "param": null}})
    .to_string()
}

fn flat(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[test]
fn retrieval_ranks_the_passages_by_the_question() {
    let Some(dir) = model_dir() else { return };
    let embedder = Embedder::load(&dir).unwrap();
    let text = article();
    let question = "How much did the plant cost?";
    let all = ask::retrieve(&embedder, &text, question, ask::MAX_TOP_K).unwrap();
    // The article has fewer passages than the most retrieved: all are back, in context order,
    // each a run of the article's sentences within the model's token limit.
    let n = all.passages.len();
    assert!((8..ask::MAX_TOP_K).contains(&n), "{n} passages");
    for (i, passage) in all.passages.iter().enumerate() {
        assert_eq!(passage.index, i);
        assert!(
            flat(&text).contains(&passage.text),
            "not in the article: {}",
            passage.text
        );
        assert!(embedder.count_tokens(&passage.text).unwrap() <= embedder.max_tokens());
    }
    // Neighbours share a sentence, so every sentence is in some passage.
    for sentence in kaizen_infer::sentences::split_sentences(&text) {
        assert!(all.passages.iter().any(|p| p.text.contains(&sentence)));
    }
    // The three best of them, in context order, with the same scores.
    let top = ask::retrieve(&embedder, &text, question, 3).unwrap();
    let mut ranked: Vec<&Passage> = all.passages.iter().collect();
    ranked.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut want: Vec<usize> = ranked[..3].iter().map(|p| p.index).collect();
    want.sort_unstable();
    let got: Vec<usize> = top.passages.iter().map(|p| p.index).collect();
    assert_eq!(got, want);
    for p in &top.passages {
        assert!((p.score - all.passages[p.index].score).abs() < 1e-5);
    }
    assert!(ranked[0].text.contains(COST), "best: {}", ranked[0].text);
    assert!(ranked[0].score > ranked[ranked.len() - 1].score + 0.2);
}

#[test]
fn extractive_answers_are_the_sentence_that_answers() {
    let Some(dir) = model_dir() else { return };
    let embedder = Embedder::load(&dir).unwrap();
    let text = article();
    let cases = [
        ("How much did the plant cost?", COST),
        (
            "Why did the engineers choose the channel?",
            "Engineers chose the channel because the tide there is strong and predictable.",
        ),
        (
            "How many homes can the plant supply?",
            "Over a year, the operator says, that is enough to supply roughly 41,000 homes.",
        ),
    ];
    for (question, want) in cases {
        let answer = ask::answer_extractive(&embedder, &text, question, 3).unwrap();
        assert_eq!(answer.answer, want, "{question}");
        assert_eq!(answer.method, Provider::Extractive);
        assert_eq!(answer.model, "all-MiniLM-L6-v2");
        assert_eq!(answer.question, question);
        assert_eq!(answer.passages.len(), 3);
        assert!(answer.passages.iter().any(|p| p.text.contains(want)));
    }
    let answer =
        ask::answer_extractive(&embedder, &text, "How much did the plant cost?", 1).unwrap();
    assert_eq!(answer.passages.len(), 1);
    let json = serde_json::to_value(&answer).unwrap();
    let keys = |v: &Value| {
        let mut keys: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        keys
    };
    assert_eq!(
        keys(&json),
        ["answer", "method", "model", "passages", "question"]
    );
    assert_eq!(json["method"], "extractive");
    assert_eq!(keys(&json["passages"][0]), ["index", "score", "text"]);

    // A context without sentence punctuation is read line by line.
    let lines = "Capital: Paris\nPopulation: 2 million";
    let answer = ask::answer_extractive(&embedder, lines, "What is the capital?", 3).unwrap();
    assert_eq!(answer.answer, "Capital: Paris");

    for (context, question, top_k) in [
        (text.as_str(), " ", 3),
        (" \n ", "Why?", 3),
        (text.as_str(), "Why?", 0),
        (text.as_str(), "Why?", ask::MAX_TOP_K + 1),
    ] {
        let err = ask::answer_extractive(&embedder, context, question, top_k).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Invalid, "{err}");
    }
}

#[tokio::test]
async fn the_openai_provider_sends_the_passages_and_reads_the_answer() {
    let stand_in = StandIn::start().await;
    let passages = [
        Passage {
            text: "The plant sits in the narrow channel.".into(),
            score: 0.3,
            index: 1,
        },
        Passage {
            text: COST.into(),
            score: 0.8,
            index: 4,
        },
    ];
    let llm = OpenAi::new(&stand_in.url, "tiny-llm", Some("sk-test".into())).unwrap();
    let text = llm.complete("How much?", &passages).await.unwrap();
    assert_eq!(text, "It cost 212 million euros.");
    let (auth, body) = stand_in.last();
    assert_eq!(auth.as_deref(), Some("Bearer sk-test"));
    assert_eq!(body["model"], "tiny-llm");
    assert_eq!(body["temperature"], 0);
    assert_eq!(body["messages"][0]["content"], ask::SYSTEM_PROMPT);
    let user = body["messages"][1]["content"].as_str().unwrap();
    assert!(user.contains(&format!("[2] {COST}")) && user.ends_with("Question: How much?"));

    // Local servers need no key: then no header at all.
    let llm = OpenAi::new(&stand_in.url, "tiny-llm", None).unwrap();
    llm.complete("How much?", &passages).await.unwrap();
    assert_eq!(stand_in.last().0, None);
}

#[tokio::test]
async fn provider_errors_name_the_provider_the_status_and_the_message() {
    let stand_in = StandIn::start().await;
    let llm = OpenAi::new(&stand_in.url, "tiny-llm", Some("sk-wrong".into())).unwrap();
    let passages = [Passage {
        text: COST.into(),
        score: 0.8,
        index: 0,
    }];
    let failure = |e: InferError| match &e {
        InferError::Provider { status, .. } => {
            assert_eq!(e.kind(), ErrorKind::Unavailable);
            (*status, e.to_string())
        }
        other => panic!("not a provider error: {other}"),
    };

    stand_in.answer(
        StatusCode::UNAUTHORIZED,
        openai_error("Incorrect API key provided: sk-wrong"),
    );
    let (status, message) = failure(llm.complete("Q?", &passages).await.unwrap_err());
    assert_eq!(status, Some(401));
    for needle in ["openai", "401", "Incorrect API key provided", &stand_in.url] {
        assert!(message.contains(needle), "{needle} not in {message}");
    }

    stand_in.answer(StatusCode::OK, "{\"choices\": [".into());
    let (status, message) = failure(llm.complete("Q?", &passages).await.unwrap_err());
    assert_eq!(status, Some(200));
    assert!(message.contains("not JSON"), "{message}");

    stand_in.answer(StatusCode::OK, json!({"choices": []}).to_string());
    let (_, message) = failure(llm.complete("Q?", &passages).await.unwrap_err());
    assert!(message.contains("choices[0].message.content"), "{message}");

    // A port nobody listens on, and one that accepts but never answers.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed_url = format!("http://{}/v1", closed.local_addr().unwrap());
    drop(closed);
    let llm = OpenAi::new(&closed_url, "tiny-llm", None).unwrap();
    let (status, message) = failure(llm.complete("Q?", &passages).await.unwrap_err());
    assert_eq!(status, None);
    assert!(message.contains("cannot connect"), "{message}");
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_url = format!("http://{}/v1", silent.local_addr().unwrap());
    let llm = OpenAi::new(&silent_url, "tiny-llm", None)
        .unwrap()
        .with_timeout(Duration::from_secs(1));
    let (status, message) = failure(llm.complete("Q?", &passages).await.unwrap_err());
    assert_eq!(status, None);
    assert!(message.contains("no answer within 1 s"), "{message}");
    drop(silent);
}

#[tokio::test]
async fn http_ask_refuses_bad_requests_before_any_work() {
    let app = app(PathBuf::from("/nonexistent/model"));
    let bad = StatusCode::BAD_REQUEST;
    let cases = [
        (
            json!({"question": "", "text": "Some text."}),
            bad,
            "INVALID_PARAMETER_VALUE",
        ),
        (
            json!({"text": "Some text."}),
            bad,
            "INVALID_PARAMETER_VALUE",
        ),
        (
            // Neither the embedding model nor the local LLM is installed here.
            json!({"question": "Q?", "text": "Some text.", "provider": "local"}),
            StatusCode::SERVICE_UNAVAILABLE,
            "TEMPORARILY_UNAVAILABLE",
        ),
        (
            json!({"question": "Q?", "text": "x", "provider": "gpt"}),
            bad,
            "INVALID_PARAMETER_VALUE",
        ),
        // The server has no LLM provider configured.
        (
            json!({"question": "Q?", "text": "x", "provider": "openai"}),
            bad,
            "INVALID_PARAMETER_VALUE",
        ),
        (
            json!({"question": "Q?", "text": "x", "model": "m"}),
            bad,
            "INVALID_PARAMETER_VALUE",
        ),
        (
            json!({"question": "Q?", "text": "x", "top_k": 0}),
            bad,
            "INVALID_PARAMETER_VALUE",
        ),
        (
            json!({"question": "Q?", "text": "x", "top_k": 51}),
            bad,
            "INVALID_PARAMETER_VALUE",
        ),
        (
            json!({"question": "Q?", "text": "x", "top_k": -1}),
            bad,
            "MALFORMED_REQUEST",
        ),
        // A caller never names the provider's address.
        (
            json!({"question": "Q?", "text": "x", "provider": "openai", "base_url": "http://10.0.0.1/v1"}),
            bad,
            "MALFORMED_REQUEST",
        ),
        (
            json!({"question": "Q?", "url": "http://127.0.0.1:9/"}),
            bad,
            "INVALID_PARAMETER_VALUE",
        ),
        (
            json!({"question": "Q?", "text": "x", "wiki": "Rust"}),
            bad,
            "INVALID_PARAMETER_VALUE",
        ),
        (
            json!({"question": "Q?", "text": "  "}),
            bad,
            "INVALID_PARAMETER_VALUE",
        ),
        (
            json!({"question": "Q?", "text": "Some text."}),
            StatusCode::SERVICE_UNAVAILABLE,
            "TEMPORARILY_UNAVAILABLE",
        ),
    ];
    for (body, status, code) in cases {
        let (got, json) = post(&app, "/v1/ask", &body.to_string()).await;
        assert_eq!(got, status, "{body}: {json}");
        assert_eq!(json["error_code"], code, "{body}: {json}");
        assert!(json["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
}

#[tokio::test]
async fn http_ask_extractive_and_through_the_configured_provider() {
    let Some(dir) = model_dir() else { return };
    let text = article();
    let question = "How much did the plant cost?";

    let app = app(dir.clone());
    let (status, json) = post(
        &app,
        "/v1/ask",
        &json!({"question": question, "text": text}).to_string(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{json}");
    assert_eq!(json["answer"], COST);
    assert_eq!(json["method"], "extractive");
    assert_eq!(json["model"], "all-MiniLM-L6-v2");
    assert_eq!(json["question"], question);
    assert_eq!(json["passages"].as_array().unwrap().len(), 3);

    let stand_in = StandIn::start().await;
    let mut config = config(dir, PathBuf::from("/nonexistent/textblob"));
    config.llm_base_url = Some(stand_in.url.clone());
    config.llm_model = Some("tiny-llm".into());
    config.llm_api_key = Some("sk-server".into());
    let app = router(InferState::new(config));
    let body = json!({"question": question, "text": text, "provider": "openai", "top_k": 2});
    let (status, json) = post(&app, "/v1/ask", &body.to_string()).await;
    assert_eq!(status, StatusCode::OK, "{json}");
    assert_eq!(json["answer"], "It cost 212 million euros.");
    assert_eq!(json["method"], "openai");
    assert_eq!(json["model"], "tiny-llm");
    assert_eq!(json["passages"].as_array().unwrap().len(), 2);
    let (auth, sent) = stand_in.last();
    assert_eq!(auth.as_deref(), Some("Bearer sk-server"));
    assert_eq!(sent["model"], "tiny-llm");
    let user = sent["messages"][1]["content"].as_str().unwrap();
    assert!(user.contains(COST) && user.contains(question), "{user}");

    // A request may pick the model, never the address.
    let body =
        json!({"question": question, "text": text, "provider": "openai", "model": "big-llm"});
    let (status, json) = post(&app, "/v1/ask", &body.to_string()).await;
    assert_eq!(status, StatusCode::OK, "{json}");
    assert_eq!(
        (&json["model"], &stand_in.last().1["model"]),
        (&json!("big-llm"), &json!("big-llm"))
    );

    // The provider's failure is the server's; its message stays in the server log.
    stand_in.answer(
        StatusCode::UNAUTHORIZED,
        openai_error("Incorrect API key provided"),
    );
    let (status, json) = post(&app, "/v1/ask", &body.to_string()).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{json}");
    assert_eq!(json["error_code"], "TEMPORARILY_UNAVAILABLE");
    let message = json["message"].as_str().unwrap();
    assert!(
        message.contains("401") && !message.contains("Incorrect"),
        "{message}"
    );
}
