//! The one table from domain errors to MLflow's error codes and HTTP statuses.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use kaizen_core::{Error, ErrorKind};
use serde_json::json;

/// An error answered to a client as `{"error_code": ..., "message": ...}`.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "INVALID_PARAMETER_VALUE", message)
    }

    pub fn malformed(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "MALFORMED_REQUEST", message)
    }

    pub fn too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "REQUEST_LIMIT_EXCEEDED",
            format!("Request body exceeds the limit of {limit} bytes (set with --max-body-size)"),
        )
    }
}

/// MLflow's code and status for each kind of domain error. Client errors are never 5xx: the
/// MLflow client retries 5xx answers with backoff.
fn code_and_status(kind: ErrorKind) -> (&'static str, StatusCode) {
    match kind {
        ErrorKind::NotFound => ("RESOURCE_DOES_NOT_EXIST", StatusCode::NOT_FOUND),
        ErrorKind::AlreadyExists => ("RESOURCE_ALREADY_EXISTS", StatusCode::BAD_REQUEST),
        ErrorKind::InvalidParameter => ("INVALID_PARAMETER_VALUE", StatusCode::BAD_REQUEST),
        ErrorKind::InvalidState => ("INVALID_STATE", StatusCode::BAD_REQUEST),
        ErrorKind::TooLarge => ("REQUEST_LIMIT_EXCEEDED", StatusCode::PAYLOAD_TOO_LARGE),
        ErrorKind::Internal => ("INTERNAL_ERROR", StatusCode::INTERNAL_SERVER_ERROR),
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        let (code, status) = code_and_status(e.kind);
        if e.kind == ErrorKind::Internal {
            // Internals are logged with their cause, never shown.
            let cause = e.source.as_ref().map(|s| s.to_string()).unwrap_or_default();
            tracing::error!(error = %e.message, %cause, "internal error");
            return Self::new(status, code, "Internal error; see the server log");
        }
        Self::new(status, code, e.message)
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

pub async fn not_found_route(uri: axum::http::Uri, method: axum::http::Method) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "ENDPOINT_NOT_FOUND",
        format!("No endpoint {method} {}", uri.path()),
    )
}

pub async fn method_not_allowed(uri: axum::http::Uri, method: axum::http::Method) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "ENDPOINT_NOT_FOUND",
        format!("{} does not accept {method}", uri.path()),
    )
}

pub fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("a request handler panicked");
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "INTERNAL_ERROR",
        "Internal error; see the server log",
    )
    .into_response()
}
