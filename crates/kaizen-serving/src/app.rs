//! The HTTP application: `POST /invocations`, `GET /ping`, `GET /health`, `GET /version`, all
//! behind one layer stack.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, RawQuery, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use crate::error::{Result, ServeError};
use crate::log::{FeedbackLog, FeedbackRecord, InferenceLog, InferenceRecord};
use crate::model::ServedModel;
use crate::monitor::{Monitor, OnDrift};
use crate::parse;

/// Settings of a model server.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// The largest request body accepted, in bytes (larger: 413).
    pub max_body_bytes: usize,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            max_body_bytes: 16 * 1024 * 1024,
        }
    }
}

/// The model being served, swapped atomically when a new version takes over: a request takes
/// the current model once and finishes on it, so a swap never fails a request in flight.
#[derive(Debug)]
pub struct ModelSlot(std::sync::RwLock<Arc<ServedModel>>);

impl ModelSlot {
    pub fn new(model: ServedModel) -> ModelSlot {
        ModelSlot(std::sync::RwLock::new(Arc::new(model)))
    }

    pub fn current(&self) -> Arc<ServedModel> {
        Arc::clone(&self.0.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// Puts `model` in place and answers the one it replaced.
    pub fn swap(&self, model: ServedModel) -> Arc<ServedModel> {
        let mut slot = self.0.write().unwrap_or_else(|e| e.into_inner());
        std::mem::replace(&mut *slot, Arc::new(model))
    }
}

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub model: Arc<ModelSlot>,
    pub config: Arc<ServeConfig>,
    /// Where every request is logged; `None` logs nothing.
    pub log: Option<InferenceLog>,
    /// Where ground truth from `POST /feedback` is logged.
    pub feedback_log: Option<FeedbackLog>,
    /// The traffic split: each request goes to one variant by weight (the first is `model`).
    pub variants: Arc<Vec<Variant>>,
    /// Scores a copy of every answered request; its answers are logged, never returned.
    pub shadow: Option<Arc<Variant>>,
    /// A header whose value pins a caller to a variant (sticky A/B); else the request id decides.
    pub sticky_header: Option<String>,
    /// Drift monitoring of the first variant's model, rebuilt when its version changes.
    pub monitor: Option<Arc<MonitorSlot>>,
    /// Recent predictions by request id, for joining feedback to them.
    pub recent: Arc<std::sync::Mutex<Recent>>,
    /// Performance drift of the first variant's served version, from feedback.
    pub performance: Option<Arc<crate::monitor::PerformanceWatch>>,
}

/// How many recent requests keep their predictions for feedback, and how many feedbacks the
/// live metrics cover.
const RECENT_REQUESTS: usize = 100_000;
const LIVE_WINDOW: usize = 1000;

/// Recent predictions (by request id) and the live window of their errors.
#[derive(Debug, Default)]
pub struct Recent {
    /// The version that answered and its predictions.
    predictions: std::collections::HashMap<String, (String, Vec<Value>)>,
    order: std::collections::VecDeque<String>,
    /// Per matched row: the absolute error (regression) or 1/0 for a right/wrong label.
    window: std::collections::VecDeque<f64>,
    feedback: u64,
    unmatched: u64,
}

impl Recent {
    fn remember(&mut self, request_id: &str, version: &str, predictions: Vec<Value>) {
        if request_id.is_empty() {
            return;
        }
        if self.order.len() >= RECENT_REQUESTS
            && let Some(old) = self.order.pop_front()
        {
            self.predictions.remove(&old);
        }
        self.order.push_back(request_id.to_string());
        self.predictions
            .insert(request_id.to_string(), (version.to_string(), predictions));
    }

    fn live(&self) -> Option<f64> {
        (!self.window.is_empty())
            .then(|| self.window.iter().sum::<f64>() / self.window.len() as f64)
    }
}

/// Drift monitoring settings and the monitor of the version being served.
pub struct MonitorSlot {
    pub window: usize,
    /// Windows also close at this age (with enough rows).
    pub max_age: Option<std::time::Duration>,
    pub on_drift: Option<OnDrift>,
    current: std::sync::Mutex<Option<Arc<Monitor>>>,
}

impl MonitorSlot {
    pub fn new(window: usize, on_drift: Option<OnDrift>) -> MonitorSlot {
        MonitorSlot {
            window,
            max_age: None,
            on_drift,
            current: std::sync::Mutex::new(None),
        }
    }

    /// The monitor of `model`'s version (built on first use, or after a swap).
    fn for_model(&self, model: &ServedModel) -> Option<Arc<Monitor>> {
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        if current.as_ref().is_none_or(|m| m.version != model.version) {
            *current = Monitor::for_model(model, self.window, self.max_age, self.on_drift.clone())
                .map(Arc::new);
        }
        current.clone()
    }

    fn render(&self, labels: &str) -> String {
        let current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        current
            .as_ref()
            .map(|m| m.render(labels))
            .unwrap_or_default()
    }
}

/// One arm of a traffic split.
#[derive(Debug)]
pub struct Variant {
    /// Its name in logs and metrics (the alias it serves, or `default`).
    pub name: String,
    pub weight: u32,
    pub slot: Arc<ModelSlot>,
    pub metrics: Metrics,
}

impl Variant {
    pub fn new(name: impl Into<String>, weight: u32, model: ServedModel) -> Variant {
        Variant {
            name: name.into(),
            weight,
            slot: Arc::new(ModelSlot::new(model)),
            metrics: Metrics::default(),
        }
    }
}

impl AppState {
    /// One model, all traffic.
    pub fn new(model: ServedModel, config: ServeConfig, log: Option<InferenceLog>) -> AppState {
        AppState::with_variants(vec![Variant::new("default", 1, model)], None, config, log)
    }

    /// A weighted split over `variants` (at least one, weights not all 0) and an optional shadow.
    pub fn with_variants(
        variants: Vec<Variant>,
        shadow: Option<Variant>,
        config: ServeConfig,
        log: Option<InferenceLog>,
    ) -> AppState {
        assert!(!variants.is_empty(), "at least one variant");
        AppState {
            model: Arc::clone(&variants[0].slot),
            config: Arc::new(config),
            log,
            feedback_log: None,
            variants: Arc::new(variants),
            shadow: shadow.map(Arc::new),
            sticky_header: None,
            monitor: None,
            recent: Arc::new(std::sync::Mutex::new(Recent::default())),
            performance: None,
        }
    }

    /// The variant of a request: by the sticky header's value when there is one, else by its
    /// request id, hashed onto the weights.
    fn choose(&self, headers: &HeaderMap, request_id: &str) -> &Variant {
        if self.variants.len() == 1 {
            return &self.variants[0];
        }
        let key = self
            .sticky_header
            .as_deref()
            .and_then(|h| headers.get(h))
            .and_then(|v| v.to_str().ok())
            .unwrap_or(request_id);
        let total: u64 = self.variants.iter().map(|v| u64::from(v.weight)).sum();
        let mut point = fnv1a(key.as_bytes()) % total.max(1);
        for variant in self.variants.iter() {
            if point < u64::from(variant.weight) {
                return variant;
            }
            point -= u64::from(variant.weight);
        }
        &self.variants[0]
    }
}

/// FNV-1a, then a finalizer so that nearby keys spread: a stable hash for traffic splits.
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h
}

/// Latency histogram buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// Request counters and a latency histogram for `/metrics`.
#[derive(Debug, Default)]
pub struct Metrics {
    requests_ok: AtomicU64,
    requests_client_error: AtomicU64,
    requests_server_error: AtomicU64,
    rows: AtomicU64,
    buckets: [AtomicU64; BUCKETS.len()],
    latency_count: AtomicU64,
    /// Microseconds, summed.
    latency_sum_us: AtomicU64,
}

impl Metrics {
    fn observe(&self, status: StatusCode, rows: u64, seconds: f64) {
        let counter = if status.is_success() {
            &self.requests_ok
        } else if status.is_client_error() {
            &self.requests_client_error
        } else {
            &self.requests_server_error
        };
        counter.fetch_add(1, Ordering::Relaxed);
        self.rows.fetch_add(rows, Ordering::Relaxed);
        for (bucket, bound) in self.buckets.iter().zip(BUCKETS) {
            if seconds <= bound {
                bucket.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.latency_count.fetch_add(1, Ordering::Relaxed);
        self.latency_sum_us
            .fetch_add((seconds * 1e6) as u64, Ordering::Relaxed);
    }

    /// The Prometheus text exposition, labelled with the model, version and variant.
    fn render(&self, labels: &str, log: Option<&InferenceLog>) -> String {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let mut out = String::new();
        out.push_str("# HELP kaizen_requests_total Scoring requests by outcome.\n# TYPE kaizen_requests_total counter\n");
        for (outcome, c) in [
            ("ok", &self.requests_ok),
            ("client_error", &self.requests_client_error),
            ("server_error", &self.requests_server_error),
        ] {
            out.push_str(&format!(
                "kaizen_requests_total{{{labels},outcome=\"{outcome}\"}} {}\n",
                get(c)
            ));
        }
        out.push_str("# HELP kaizen_rows_scored_total Rows scored.\n# TYPE kaizen_rows_scored_total counter\n");
        out.push_str(&format!(
            "kaizen_rows_scored_total{{{labels}}} {}\n",
            get(&self.rows)
        ));
        out.push_str("# HELP kaizen_request_duration_seconds Time to answer a scoring request.\n# TYPE kaizen_request_duration_seconds histogram\n");
        for (bucket, bound) in self.buckets.iter().zip(BUCKETS) {
            out.push_str(&format!(
                "kaizen_request_duration_seconds_bucket{{{labels},le=\"{bound}\"}} {}\n",
                get(bucket)
            ));
        }
        let count = get(&self.latency_count);
        out.push_str(&format!(
            "kaizen_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {count}\n"
        ));
        out.push_str(&format!(
            "kaizen_request_duration_seconds_sum{{{labels}}} {}\n",
            get(&self.latency_sum_us) as f64 / 1e6
        ));
        out.push_str(&format!(
            "kaizen_request_duration_seconds_count{{{labels}}} {count}\n"
        ));
        if let Some(log) = log {
            out.push_str("# HELP kaizen_inference_log_queue_depth Records waiting to be written to the inference log.\n# TYPE kaizen_inference_log_queue_depth gauge\n");
            out.push_str(&format!(
                "kaizen_inference_log_queue_depth {}\n",
                log.stats.depth()
            ));
            out.push_str("# HELP kaizen_inference_log_dropped_total Records dropped because the queue was full.\n# TYPE kaizen_inference_log_dropped_total counter\n");
            out.push_str(&format!(
                "kaizen_inference_log_dropped_total {}\n",
                get(&log.stats.dropped)
            ));
            out.push_str("# HELP kaizen_inference_log_written_total Records written to the inference log.\n# TYPE kaizen_inference_log_written_total counter\n");
            out.push_str(&format!(
                "kaizen_inference_log_written_total {}\n",
                get(&log.stats.written)
            ));
        }
        out
    }
}

const REQUEST_ID: &str = "x-request-id";

/// The whole application, without a socket.
pub fn app(state: AppState) -> Router {
    let limit = state.config.max_body_bytes;
    Router::new()
        .route("/invocations", post(invocations))
        .route("/ping", get(|| async { StatusCode::OK }))
        .route("/health", get(health))
        .route("/version", get(|| async { env!("CARGO_PKG_VERSION") }))
        .route("/metrics", get(metrics))
        .route("/feedback", post(feedback))
        .route("/openapi.json", get(openapi))
        .fallback(not_found)
        // The one stack every route goes through; authentication goes here.
        .layer(DefaultBodyLimit::max(limit))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .layer(middleware::from_fn(request_id))
        .with_state(state)
}

/// Model servers side by side under `prefix` paths (`/serve/NAME/ALIAS`), for mounting inside
/// another application (`kaizen server --serve`).
pub fn mount(servers: Vec<(String, AppState)>) -> Router {
    servers
        .into_iter()
        .fold(Router::new(), |router, (prefix, state)| {
            router.nest(&prefix, app(state))
        })
}

/// Serves [`app`] on `listener` until `shutdown` resolves, then drains in-flight requests for up
/// to ten seconds.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = axum::serve(listener, app(state)).with_graceful_shutdown(async move {
        shutdown.await;
        let _ = tx.send(());
    });
    let drain = async move {
        let _ = rx.await;
        tokio::time::sleep(std::time::Duration::from_secs(10)).await;
    };
    tokio::select! {
        r = server => r,
        _ = drain => {
            tracing::warn!("in-flight requests did not finish within 10 s; exiting");
            Ok(())
        }
    }
}

/// Keeps the caller's `x-request-id` or makes one, and echoes it on the response.
async fn request_id(mut request: Request, next: Next) -> Response {
    let id = request
        .headers()
        .get(REQUEST_ID)
        .cloned()
        .unwrap_or_else(|| {
            HeaderValue::from_str(&uuid::Uuid::new_v4().simple().to_string())
                .expect("a uuid is a header value")
        });
    request.headers_mut().insert(REQUEST_ID, id.clone());
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let started = Instant::now();
    let mut response = next.run(request).await;
    // The access log: one structured line per request.
    tracing::info!(
        target: "kaizen::access",
        request_id = id.to_str().unwrap_or_default(),
        %method,
        path,
        status = response.status().as_u16(),
        latency_ms = started.elapsed().as_secs_f64() * 1000.0,
        variant = response
            .headers()
            .get("x-kaizen-variant")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default(),
    );
    response.headers_mut().insert(REQUEST_ID, id);
    response
}

/// The OpenAPI 3 description of the model server's routes.
async fn openapi() -> Json<Value> {
    let error = json!({"$ref": "#/components/schemas/Error"});
    let json_error = |description: &str| json!({"description": description, "content": {"application/json": {"schema": error}}});
    Json(json!({
        "openapi": "3.0.3",
        "info": {"title": "kaizen model server", "version": env!("CARGO_PKG_VERSION"),
                 "description": "MLflow's scoring protocol, feedback, health and metrics."},
        "paths": {
            "/invocations": {"post": {
                "summary": "Score rows",
                "parameters": [{"name": "probabilities", "in": "query", "schema": {"type": "boolean"}}],
                "requestBody": {"required": true, "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/ScoringRequest"}},
                    "text/csv": {"schema": {"type": "string"}}
                }},
                "responses": {
                    "200": {"description": "One prediction per row", "content": {"application/json": {"schema": {
                        "type": "object", "properties": {"predictions": {"type": "array", "items": {}}}}}}},
                    "400": json_error("Malformed body, missing or unknown column, wrong type"),
                    "413": json_error("Body over the limit"),
                    "415": json_error("Unsupported content type"),
                    "500": json_error("Scoring failed")
                }
            }},
            "/feedback": {"post": {
                "summary": "Ground truth for a logged request",
                "requestBody": {"required": true, "content": {"application/json": {"schema": {
                    "type": "object", "required": ["request_id", "actual"],
                    "properties": {"request_id": {"type": "string"}, "actual": {}}}}}},
                "responses": {"200": {"description": "Recorded", "content": {"application/json": {"schema": {
                    "type": "object", "properties": {"request_id": {"type": "string"}, "matched": {"type": "boolean"}}}}}},
                    "400": json_error("Malformed feedback")}
            }},
            "/ping": {"get": {"summary": "Liveness", "responses": {"200": {"description": "Alive"}}}},
            "/health": {"get": {"summary": "The model served", "responses": {"200": {"description": "Model, version, task, inputs"}}}},
            "/version": {"get": {"summary": "kaizen's version", "responses": {"200": {"description": "Version text"}}}},
            "/metrics": {"get": {"summary": "Prometheus metrics", "responses": {"200": {"description": "Text exposition format"}}}},
            "/openapi.json": {"get": {"summary": "This document", "responses": {"200": {"description": "OpenAPI 3"}}}}
        },
        "components": {"schemas": {
            "Error": {"type": "object", "required": ["error_code", "message"],
                      "properties": {"error_code": {"type": "string"}, "message": {"type": "string"}}},
            "ScoringRequest": {"type": "object", "description": "Exactly one of the input fields.",
                "properties": {
                    "dataframe_split": {"type": "object", "properties": {
                        "columns": {"type": "array", "items": {"type": "string"}},
                        "data": {"type": "array", "items": {"type": "array", "items": {}}}}},
                    "dataframe_records": {"type": "array", "items": {"type": "object"}},
                    "instances": {},
                    "inputs": {},
                    "params": {"type": "object", "properties": {"probabilities": {"type": "boolean"}}}
                }}
        }}
    }))
}

async fn not_found() -> Response {
    let body = json!({
        "error_code": "ENDPOINT_NOT_FOUND",
        "message": "no such endpoint; the model server answers /invocations, /ping, /health, /version",
    });
    (StatusCode::NOT_FOUND, Json(body)).into_response()
}

async fn health(State(state): State<AppState>) -> Json<Value> {
    let model = state.model.current();
    let inputs: Vec<Value> = model
        .inputs()
        .iter()
        .map(|c| json!({"name": c.name, "type": c.kind.name()}))
        .collect();
    Json(json!({
        "status": "ok",
        "model": model.name,
        "version": model.version,
        "task": model.task_name(),
        "inputs": inputs,
    }))
}

/// `?probabilities=true` (or `1`).
fn query_probabilities(query: Option<&str>) -> bool {
    query.unwrap_or_default().split('&').any(|pair| {
        matches!(
            pair.split_once('='),
            Some(("probabilities", "true" | "1" | "True"))
        )
    })
}

async fn metrics(State(state): State<AppState>) -> Response {
    let model = state.model.current();
    let label_of = |variant: &Variant| {
        let m = variant.slot.current();
        format!(
            "model=\"{}\",version=\"{}\",variant=\"{}\"",
            m.name.replace('"', "'"),
            m.version.replace('"', "'"),
            variant.name.replace('"', "'")
        )
    };
    let labels = label_of(&state.variants[0]);
    let mut text = String::new();
    let arms = state.variants.iter().chain(state.shadow.as_deref());
    for (i, variant) in arms.enumerate() {
        let body = variant.metrics.render(
            &label_of(variant),
            if i == 0 { state.log.as_ref() } else { None },
        );
        // HELP and TYPE lines once per metric name.
        for line in body.lines() {
            if i > 0 && line.starts_with('#') {
                continue;
            }
            text.push_str(line);
            text.push('\n');
        }
    }
    if let Some(monitor) = &state.monitor {
        text.push_str(&monitor.render(&labels));
    }
    if let Some(watch) = &state.performance {
        text.push_str(&watch.render(&labels));
    }
    if let Ok(recent) = state.recent.lock() {
        let name = match model.task() {
            kaizen_ml::Task::Regression => "kaizen_live_mae",
            _ => "kaizen_live_accuracy",
        };
        text.push_str(&format!(
            "# HELP {name} Over the last {LIVE_WINDOW} rows with feedback.\n# TYPE {name} gauge\n"
        ));
        if let Some(v) = recent.live() {
            text.push_str(&format!("{name}{{{labels}}} {v}\n"));
        }
        text.push_str("# HELP kaizen_feedback_total Feedback received, by whether its request was still known.\n# TYPE kaizen_feedback_total counter\n");
        text.push_str(&format!(
            "kaizen_feedback_total{{matched=\"true\"}} {}\nkaizen_feedback_total{{matched=\"false\"}} {}\n",
            recent.feedback - recent.unmatched,
            recent.unmatched
        ));
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

/// Scores the request, then counts it and logs it (request id, inputs, outputs, latency,
/// status) whatever the outcome.
async fn invocations(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: RawQuery,
    body: std::result::Result<Bytes, BytesRejection>,
) -> Response {
    let started = Instant::now();
    let timestamp = kaizen_core::now_millis();
    let request_id = headers
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let raw = body.as_ref().ok().cloned();
    let variant_index = {
        let chosen = state.choose(&headers, &request_id);
        state
            .variants
            .iter()
            .position(|v| std::ptr::eq(v, chosen))
            .unwrap_or(0)
    };
    let variant = &state.variants[variant_index];
    let model = variant.slot.current();
    let shadow_copy = state
        .shadow
        .as_ref()
        .map(|_| (headers.clone(), query.0.clone()));
    let observe = variant_index == 0;
    let outcome = score_request(
        state.clone(),
        Arc::clone(&model),
        observe,
        headers,
        query,
        body,
    )
    .await;
    let seconds = started.elapsed().as_secs_f64();
    let (status, rows, inputs, outputs, response) = match outcome {
        Ok((inputs, rows, predictions)) => {
            let labels: Vec<Value> = predictions
                .iter()
                .map(|p| p.get("label").cloned().unwrap_or_else(|| p.clone()))
                .collect();
            // Embeddings take no feedback, and would hold megabytes per request.
            if !model.is_embedding()
                && let Ok(mut recent) = state.recent.lock()
            {
                recent.remember(&request_id, &model.version, labels);
            }
            let outputs = Value::Array(predictions);
            let body = json!({"predictions": outputs});
            if let (Some(shadow), Some((headers, query)), Some(raw)) =
                (state.shadow.clone(), shadow_copy, raw.clone())
            {
                tokio::spawn(run_shadow(
                    state.clone(),
                    shadow,
                    headers,
                    query,
                    raw,
                    request_id.clone(),
                    timestamp,
                ));
            }
            (
                StatusCode::OK,
                rows,
                inputs,
                outputs.to_string(),
                Json(body).into_response(),
            )
        }
        Err(e) => {
            let (status, _) = e.status();
            let inputs = raw
                .map(|b| String::from_utf8_lossy(&b[..b.len().min(65_536)]).into_owned())
                .unwrap_or_default();
            (status, 0, inputs, e.to_string(), e.into_response())
        }
    };
    variant.metrics.observe(status, rows, seconds);
    if let Some(log) = &state.log {
        log.record(InferenceRecord {
            request_id,
            timestamp,
            model: model.name.clone(),
            version: model.version.clone(),
            variant: variant.name.clone(),
            inputs,
            outputs,
            rows,
            latency_ms: seconds * 1000.0,
            status: status.as_u16(),
        });
    }
    let mut response = response;
    if let Ok(name) = HeaderValue::from_str(&variant.name) {
        response.headers_mut().insert("x-kaizen-variant", name);
    }
    // Which version answered: during a hot swap, callers can tell.
    if !model.version.is_empty()
        && let Ok(version) = HeaderValue::from_str(&model.version)
    {
        response
            .headers_mut()
            .insert("x-kaizen-model-version", version);
    }
    response
}

/// Scores a copy of an answered request with the shadow variant, after the answer went out;
/// the result is logged (variant `shadow:NAME`) and counted, never returned.
async fn run_shadow(
    state: AppState,
    shadow: Arc<Variant>,
    headers: HeaderMap,
    query: Option<String>,
    raw: Bytes,
    request_id: String,
    timestamp: i64,
) {
    let started = Instant::now();
    let model = shadow.slot.current();
    let outcome = score_request(
        state.clone(),
        Arc::clone(&model),
        false,
        headers,
        RawQuery(query),
        Ok(raw),
    )
    .await;
    let seconds = started.elapsed().as_secs_f64();
    let (status, rows, inputs, outputs) = match outcome {
        Ok((inputs, rows, predictions)) => (
            StatusCode::OK,
            rows,
            inputs,
            Value::Array(predictions).to_string(),
        ),
        Err(e) => (e.status().0, 0, String::new(), e.to_string()),
    };
    shadow.metrics.observe(status, rows, seconds);
    if let Some(log) = &state.log {
        log.record(InferenceRecord {
            request_id,
            timestamp,
            model: model.name.clone(),
            version: model.version.clone(),
            variant: format!("shadow:{}", shadow.name),
            inputs,
            outputs,
            rows,
            latency_ms: seconds * 1000.0,
            status: status.as_u16(),
        });
    }
}

/// `POST /feedback {"request_id": ..., "actual": x | [x, ...]}`: the ground truth of a logged
/// request, one value per row. It is logged (the `feedback` table) and, while the request is
/// still in memory, counted in the live metrics (MAE, or accuracy for classifiers).
async fn feedback(
    State(state): State<AppState>,
    body: std::result::Result<Bytes, BytesRejection>,
) -> Result<Json<Value>> {
    let body = body.map_err(|e| ServeError::bad_request(format!("cannot read the body: {e}")))?;
    let value: Value = serde_json::from_slice(&body)
        .map_err(|e| ServeError::bad_request(format!("the body is not JSON: {e}")))?;
    let request_id = value
        .get("request_id")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ServeError::bad_request("`request_id` (a string) is required"))?
        .to_string();
    let actual: Vec<Value> = match value.get("actual") {
        Some(Value::Array(values)) => values.clone(),
        Some(Value::Null) | None => {
            return Err(ServeError::bad_request(
                "`actual` (a value or a list) is required",
            ));
        }
        Some(one) => vec![one.clone()],
    };
    if state.model.current().is_embedding() {
        return Err(ServeError::bad_request(
            "an embedding model takes no feedback: it has no right answer to compare",
        ));
    }
    let regression = state.model.current().task() == kaizen_ml::Task::Regression;
    let mut matched = false;
    {
        let mut recent = state.recent.lock().unwrap_or_else(|e| e.into_inner());
        recent.feedback += 1;
        let known = recent.predictions.get(&request_id).cloned();
        match known {
            Some((version, predicted)) => {
                if predicted.len() != actual.len() {
                    recent.feedback -= 1;
                    return Err(ServeError::bad_request(format!(
                        "request `{request_id}` had {} row(s); `actual` has {} value(s)",
                        predicted.len(),
                        actual.len()
                    )));
                }
                let mut scores = Vec::with_capacity(actual.len());
                for (p, a) in predicted.iter().zip(&actual) {
                    if regression {
                        let a = a.as_f64().ok_or_else(|| {
                            ServeError::bad_request(format!("`actual` value {a} is not a number"))
                        })?;
                        scores.push((p.as_f64().unwrap_or(f64::NAN) - a).abs());
                    } else {
                        let text = |v: &Value| match v {
                            Value::String(s) => s.clone(),
                            other => other.to_string(),
                        };
                        scores.push(f64::from(u8::from(text(p) == text(a))));
                    }
                }
                if let Some(watch) = &state.performance {
                    watch.observe(&state.model.current(), &version, &scores);
                }
                for score in scores {
                    if recent.window.len() >= LIVE_WINDOW {
                        recent.window.pop_front();
                    }
                    recent.window.push_back(score);
                }
                matched = true;
            }
            None => recent.unmatched += 1,
        }
    }
    if let Some(log) = &state.feedback_log {
        log.record(FeedbackRecord {
            request_id: request_id.clone(),
            timestamp: kaizen_core::now_millis(),
            actual: Value::Array(actual).to_string(),
            matched,
        });
    }
    Ok(Json(json!({"request_id": request_id, "matched": matched})))
}

/// The input columns as one JSON object, NaN as null, written straight to text (it runs on the
/// request path of every logged request).
fn frame_json(frame: &kaizen_ml::Frame) -> String {
    use serde::ser::{SerializeMap, Serializer};
    let mut out = Vec::with_capacity(24 * frame.names.len() * frame.rows().max(1) + 2);
    let mut serializer = serde_json::Serializer::new(&mut out);
    let written = serializer
        .serialize_map(Some(frame.names.len()))
        .and_then(|mut map| {
            for (name, column) in frame.names.iter().zip(&frame.columns) {
                // serde_json writes a non-finite f64 as null, and None as null.
                match column {
                    kaizen_ml::ColumnData::Numeric(v) => map.serialize_entry(name, v)?,
                    kaizen_ml::ColumnData::Text(v) => map.serialize_entry(name, v)?,
                }
            }
            map.end()
        });
    match written {
        Ok(()) => String::from_utf8(out).unwrap_or_default(),
        Err(e) => {
            tracing::error!(error = %e, "cannot encode the inputs for the inference log");
            String::new()
        }
    }
}

/// Bodies up to this size are parsed and scored without leaving the request's task.
const INLINE_BODY_BYTES: usize = 16 * 1024;

async fn score_request(
    state: AppState,
    model: Arc<ServedModel>,
    observe: bool,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: std::result::Result<Bytes, BytesRejection>,
) -> Result<(String, u64, Vec<Value>)> {
    let body = body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ServeError::TooLarge {
                limit: state.config.max_body_bytes,
            }
        } else {
            ServeError::bad_request(format!("cannot read the body: {rejection}"))
        }
    })?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json");
    let media = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let mut probabilities = query_probabilities(query.as_deref());
    let monitor = if observe { state.monitor.clone() } else { None };
    // The inputs as JSON only feed the inference log; without one, skip the encoding.
    let log_inputs = state.log.is_some();
    // Small bodies score on the request's own task: a hand-off to the blocking pool costs
    // more than the scoring of a few rows and adds its wake-ups to the tail latency.
    let inline = body.len() <= INLINE_BODY_BYTES && !model.is_pretrained();
    let mut work = move || {
        let frame = match media.as_str() {
            "text/csv" => parse::parse_csv(&body, model.inputs())?,
            "application/json" | "" => {
                let parsed = parse::parse_json(&body, model.inputs())?;
                probabilities |= parsed.probabilities;
                parsed.frame
            }
            other => return Err(ServeError::UnsupportedMediaType(other.to_string())),
        };
        let predictions = model.score(&frame)?;
        if let Some(slot) = &monitor
            && let Some(m) = slot.for_model(&model)
        {
            m.observe(&model, &frame, &predictions);
        }
        Ok((
            predictions,
            probabilities,
            if log_inputs {
                frame_json(&frame)
            } else {
                String::new()
            },
            frame.rows() as u64,
        ))
    };
    let (predictions, with_probabilities, inputs, rows) = if inline {
        work()?
    } else {
        tokio::task::spawn_blocking(work).await.map_err(|e| {
            ServeError::Scoring(kaizen_ml::MlError::invalid(format!(
                "scoring task failed: {e}"
            )))
        })??
    };
    let predictions: Vec<Value> = predictions
        .iter()
        .map(|p| p.to_json(with_probabilities))
        .collect();
    Ok((inputs, rows, predictions))
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use http_body_util::BodyExt;
    use kaizen_ml::{LearnerSpec, Matrix, Task, fit};
    use kaizen_train::{Lineage, PackageMeta, write_package};
    use tower::ServiceExt;

    use super::*;

    /// A package of `y = 2a + b + 1` with no preprocessor, served from a directory.
    fn state(dir: &std::path::Path, max_body_bytes: usize) -> AppState {
        let a: Vec<f64> = (0..20).map(f64::from).collect();
        let b: Vec<f64> = (0..20).map(|i| f64::from(i % 3)).collect();
        let y: Vec<f64> = a.iter().zip(&b).map(|(a, b)| 2.0 * a + b + 1.0).collect();
        let x = Matrix::from_columns(vec!["a".into(), "b".into()], vec![a, b]);
        let spec: LearnerSpec = serde_json::from_value(json!({"learner": "linear"})).unwrap();
        let model = fit(&spec, Task::Regression, &x, &y, None).unwrap();
        write_package(
            dir,
            &model,
            PackageMeta::new(&model, Lineage::default()),
            &x,
        )
        .unwrap();
        AppState::new(
            ServedModel::from_dir(dir).unwrap(),
            ServeConfig { max_body_bytes },
            None,
        )
    }

    async fn call(
        state: &AppState,
        method: &str,
        uri: &str,
        content_type: &str,
        body: &str,
    ) -> (StatusCode, HeaderMap, Value) {
        let request = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::CONTENT_TYPE, content_type)
            .body(Body::from(body.to_string()))
            .unwrap();
        let response = app(state.clone()).oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        (status, headers, value)
    }

    fn close(predictions: &Value, expected: &[f64]) {
        let got: Vec<f64> = predictions["predictions"]
            .as_array()
            .unwrap_or_else(|| panic!("{predictions}"))
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        assert_eq!(got.len(), expected.len(), "{predictions}");
        for (g, e) in got.iter().zip(expected) {
            assert!((g - e).abs() < 1e-6, "{got:?} vs {expected:?}");
        }
    }

    #[tokio::test]
    async fn invocations_in_json_and_csv() {
        let dir = tempfile::tempdir().unwrap();
        let state = state(dir.path(), 1 << 20);
        let json_type = "application/json";
        let body = r#"{"dataframe_split": {"columns": ["a", "b"], "data": [[1, 0], [3, 2]]}}"#;
        let (status, headers, v) = call(&state, "POST", "/invocations", json_type, body).await;
        assert_eq!(status, StatusCode::OK, "{v}");
        assert!(headers.contains_key(REQUEST_ID));
        close(&v, &[3.0, 9.0]);
        let (_, _, v) = call(
            &state,
            "POST",
            "/invocations",
            "text/csv",
            "b,a\n0,1\n2,3\n",
        )
        .await;
        close(&v, &[3.0, 9.0]);
        let (_, _, v) = call(
            &state,
            "POST",
            "/invocations",
            json_type,
            r#"{"inputs": {"a": [], "b": []}}"#,
        )
        .await;
        close(&v, &[]);

        let (status, _, v) = call(
            &state,
            "POST",
            "/invocations",
            json_type,
            r#"{"instances": [{"a": 1}]}"#,
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(v["error_code"], "BAD_REQUEST");
        assert!(
            v["message"]
                .as_str()
                .unwrap()
                .contains("missing column `b`"),
            "{v}"
        );
        let (status, _, v) = call(&state, "POST", "/invocations", json_type, "{").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(
            v["message"].as_str().unwrap().contains("malformed JSON"),
            "{v}"
        );
        let (status, _, v) = call(&state, "POST", "/invocations", "text/plain", "a").await;
        assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{v}");
    }

    #[tokio::test]
    async fn a_body_over_the_limit_is_413() {
        let dir = tempfile::tempdir().unwrap();
        let state = state(dir.path(), 64);
        let body = format!(r#"{{"instances": [{}]}}"#, vec!["[1, 2]"; 40].join(", "));
        let (status, _, v) = call(&state, "POST", "/invocations", "application/json", &body).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{v}");
        assert_eq!(v["error_code"], "BAD_REQUEST");
        assert!(v["message"].as_str().unwrap().contains("64 bytes"), "{v}");
    }

    #[tokio::test]
    async fn ping_health_version() {
        let dir = tempfile::tempdir().unwrap();
        let state = state(dir.path(), 1 << 20);
        let (status, _, v) = call(&state, "GET", "/ping", "", "").await;
        assert_eq!((status, v), (StatusCode::OK, Value::String(String::new())));
        let (status, _, v) = call(&state, "GET", "/health", "", "").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(v["status"], "ok");
        assert_eq!(v["task"], "regression");
        assert_eq!(v["inputs"][1], json!({"name": "b", "type": "double"}));
        let (_, _, v) = call(&state, "GET", "/version", "", "").await;
        assert_eq!(v, Value::String(env!("CARGO_PKG_VERSION").into()));
        let (status, _, v) = call(&state, "GET", "/nope", "", "").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(v["error_code"], "ENDPOINT_NOT_FOUND");
    }

    #[test]
    fn logged_inputs_are_columns_with_nan_and_missing_as_null() {
        let frame = kaizen_ml::Frame::new(vec![
            (
                "x \"q\"".to_string(),
                kaizen_ml::ColumnData::Numeric(vec![1.5, f64::NAN]),
            ),
            (
                "t".to_string(),
                kaizen_ml::ColumnData::Text(vec![Some("a".into()), None]),
            ),
        ]);
        let text = frame_json(&frame);
        let parsed: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(parsed, json!({"x \"q\"": [1.5, null], "t": ["a", null]}));
        // Columns keep the frame's order.
        assert!(text.starts_with("{\"x"), "{text}");
    }
}
