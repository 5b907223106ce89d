//! The serving error and its one table of HTTP statuses and MLflow error codes.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

pub type Result<T> = std::result::Result<T, ServeError>;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The request does not fit the protocol or the model's columns (expected; 400).
    #[error("{0}")]
    BadRequest(String),
    /// The body is over the limit (413).
    #[error("the request body is larger than the limit of {limit} bytes")]
    TooLarge { limit: usize },
    /// A content type other than JSON or CSV (415).
    #[error("unsupported content type `{0}`; send application/json or text/csv")]
    UnsupportedMediaType(String),
    /// The package cannot be loaded or read (at start-up).
    #[error(transparent)]
    Package(#[from] kaizen_train::TrainError),
    /// An ONNX model cannot be loaded: not a model, an operator kaizen does not run, inputs
    /// or outputs it cannot map to columns and predictions (at start-up).
    #[error("ONNX model {}: {message}", path.display())]
    Onnx {
        path: std::path::PathBuf,
        message: String,
    },
    /// A pretrained package cannot be served: its embedding model is missing, has other weights
    /// than it was trained on, or does not load (at start-up).
    #[error("pretrained model {}: {message}", path.display())]
    Pretrained {
        path: std::path::PathBuf,
        message: String,
    },
    /// A pretrained model failed on a request's texts (internal; 500, logged, not shown).
    #[error("inference failed: {0}")]
    Inference(#[source] kaizen_infer::InferError),
    /// Scoring failed inside the model (internal; 500, logged, not shown).
    #[error("scoring failed: {0}")]
    Scoring(#[source] kaizen_ml::MlError),
}

impl ServeError {
    pub fn bad_request(message: impl Into<String>) -> Self {
        ServeError::BadRequest(message.into())
    }

    /// The HTTP status and MLflow's error code of this error.
    pub fn status(&self) -> (StatusCode, &'static str) {
        match self {
            ServeError::BadRequest(_) => (StatusCode::BAD_REQUEST, "BAD_REQUEST"),
            ServeError::TooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "BAD_REQUEST"),
            ServeError::UnsupportedMediaType(_) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "BAD_REQUEST")
            }
            ServeError::Package(_)
            | ServeError::Onnx { .. }
            | ServeError::Pretrained { .. }
            | ServeError::Inference(_)
            | ServeError::Scoring(_) => (StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL_ERROR"),
        }
    }
}

impl IntoResponse for ServeError {
    fn into_response(self) -> Response {
        let (status, code) = self.status();
        let message = if status.is_server_error() {
            tracing::error!(error = %self, "invocation failed");
            "internal error; see the server log".to_string()
        } else {
            self.to_string()
        };
        let body = serde_json::json!({"error_code": code, "message": message});
        (status, Json(body)).into_response()
    }
}
