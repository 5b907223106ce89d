//! Route tables. Each MLflow endpoint is mounted under `/api/2.0/...` and `/ajax-api/2.0/...`.

mod artifacts;
mod logged_models;
pub(crate) mod pipelines;
mod registry;
mod tracking;

use axum::Json;
use axum::Router;
use axum::routing::{MethodRouter, get};
use serde_json::{Value, json};

use crate::AppState;
use crate::error::ApiError;

pub type ApiResult = Result<Json<Value>, ApiError>;

pub fn empty() -> ApiResult {
    Ok(Json(json!({})))
}

/// A field the request must carry, non-empty, with MLflow's message when it does not.
pub(crate) fn required(field: Option<String>, name: &str) -> Result<String, ApiError> {
    field
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ApiError::invalid(format!("Missing value for required parameter '{name}'.")))
}

/// Mounts `route` at `/api/<version>/mlflow<path>` and `/ajax-api/<version>/mlflow<path>`.
pub(crate) fn mlflow(
    router: Router<AppState>,
    version: &str,
    path: &str,
    route: MethodRouter<AppState>,
) -> Router<AppState> {
    router
        .route(&format!("/api/{version}/mlflow{path}"), route.clone())
        .route(&format!("/ajax-api/{version}/mlflow{path}"), route)
}

pub fn router(state: AppState) -> Router<AppState> {
    let mut r = Router::new()
        .route("/health", get(|| async { "OK" }))
        .route("/version", get(|| async { env!("CARGO_PKG_VERSION") }));
    r = tracking::routes(r);
    r = logged_models::routes(r);
    r = registry::routes(r);
    r = pipelines::routes(r);
    if state.config.serve_artifacts {
        r = artifacts::routes(r);
    }
    r
}

/// The identity of the caller, for audit records.
pub(crate) fn actor(
    identity: Option<&crate::Identity>,
    reason: Option<String>,
) -> kaizen_tracking::Actor {
    kaizen_tracking::Actor {
        user: identity.and_then(|i| i.user.clone()),
        reason,
    }
}
