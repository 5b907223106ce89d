//! The one error type of pretrained-model inference, with the kind that tells a caller's mistake
//! from a failure of ours.

use std::path::PathBuf;

/// What kind of failure an [`InferError`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Bad input: empty text, an unknown method, a malformed model directory.
    Invalid,
    /// Something named that does not exist: a model directory, a file, a Wikipedia page.
    NotFound,
    /// A source or an LLM provider that did not answer or answered with an error.
    Unavailable,
    /// A feature asked for that is not built yet.
    Unsupported,
    /// A failure of the inference engine itself.
    Internal,
}

#[derive(Debug, thiserror::Error)]
pub enum InferError {
    #[error("model directory `{}` not found{hint}", dir.display())]
    ModelNotFound { dir: PathBuf, hint: String },
    #[error("model file `{}`: {reason}", path.display())]
    InvalidModel { path: PathBuf, reason: String },
    #[error("cannot read `{}`", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    InvalidInput(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{url}: {reason}")]
    Fetch { url: String, reason: String },
    #[error("{0}")]
    Unsupported(String),
    /// An LLM provider that did not answer, answered with an error, or answered something
    /// that is not a chat completion. `status` is the provider's HTTP status when it answered.
    #[error("the {provider} provider at {url}: {reason}")]
    Provider {
        provider: &'static str,
        url: String,
        status: Option<u16>,
        reason: String,
    },
    #[error("inference failed: {0}")]
    Engine(#[from] candle_core::Error),
    #[error("tokenizer failed: {0}")]
    Tokenizer(String),
}

impl InferError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            InferError::ModelNotFound { .. } | InferError::NotFound(_) => ErrorKind::NotFound,
            InferError::Read { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                ErrorKind::NotFound
            }
            InferError::InvalidModel { .. }
            | InferError::Read { .. }
            | InferError::InvalidInput(_) => ErrorKind::Invalid,
            InferError::Fetch { .. } | InferError::Provider { .. } => ErrorKind::Unavailable,
            InferError::Unsupported(_) => ErrorKind::Unsupported,
            InferError::Engine(_) | InferError::Tokenizer(_) => ErrorKind::Internal,
        }
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        InferError::InvalidInput(message.into())
    }
}

pub type Result<T, E = InferError> = std::result::Result<T, E>;
