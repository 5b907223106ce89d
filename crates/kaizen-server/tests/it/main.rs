//! HTTP-level tests of the server without a socket: `app(state).oneshot(request)`.

mod bad_input;

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use kaizen_server::{AppState, ServerConfig, app};
use kaizen_tracking::Services;
use serde_json::Value;
use tower::ServiceExt;

pub struct TestServer {
    pub router: axum::Router,
    pub dir: tempfile::TempDir,
}

impl TestServer {
    pub async fn new(max_body_bytes: usize) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let services = Services::open(
            &format!("sqlite://{}/k.db", dir.path().display()),
            &format!("file://{}/artifacts", dir.path().display()),
        )
        .await
        .unwrap();
        let state = AppState {
            services,
            config: Arc::new(ServerConfig {
                max_body_bytes,
                serve_artifacts: true,
                ..Default::default()
            }),
        };
        Self {
            router: app(state),
            dir,
        }
    }

    pub async fn call(
        &self,
        method: Method,
        uri: &str,
        body: impl Into<Body>,
    ) -> (StatusCode, Value) {
        let req = Request::builder()
            .method(method)
            .uri(uri)
            .header("content-type", "application/json")
            .body(body.into())
            .unwrap();
        let resp = self.router.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let value = serde_json::from_slice(&bytes)
            .unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into()));
        (status, value)
    }

    pub async fn post(&self, uri: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, uri, body.to_string()).await
    }

    pub async fn get(&self, uri: &str) -> (StatusCode, Value) {
        self.call(Method::GET, uri, Body::empty()).await
    }

    pub async fn new_run(&self) -> String {
        let (status, v) = self
            .post(
                "/api/2.0/mlflow/runs/create",
                serde_json::json!({"experiment_id": "0"}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{v}");
        v["run"]["info"]["run_id"].as_str().unwrap().to_string()
    }
}
