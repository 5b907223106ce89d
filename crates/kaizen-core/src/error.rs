//! The domain error: a kind that callers branch on, and a message meant for people.

/// What went wrong, in the terms a client can act on. The HTTP layer maps each kind to MLflow's
/// `error_code` and status in one table; nothing below it knows about HTTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// An id or name that does not exist (MLflow `RESOURCE_DOES_NOT_EXIST`).
    NotFound,
    /// Creating something whose name is taken (MLflow `RESOURCE_ALREADY_EXISTS`).
    AlreadyExists,
    /// Bad input: wrong type, out of range, malformed (MLflow `INVALID_PARAMETER_VALUE`).
    InvalidParameter,
    /// The entity exists but is in a state that forbids the operation (MLflow `INVALID_STATE`).
    InvalidState,
    /// The request body exceeds the configured limit.
    TooLarge,
    /// A bug or a failure of a backing service; its message is logged, not shown to clients.
    Internal,
}

/// The error every domain operation returns.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Error {
    pub kind: ErrorKind,
    pub message: String,
    #[source]
    pub source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            source: None,
        }
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, message)
    }

    pub fn already_exists(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::AlreadyExists, message)
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidParameter, message)
    }

    pub fn invalid_state(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidState, message)
    }

    /// An internal failure, keeping its cause for the logs.
    pub fn internal(
        message: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self {
            kind: ErrorKind::Internal,
            message: message.into(),
            source: Some(Box::new(source)),
        }
    }

    pub fn is_not_found(&self) -> bool {
        self.kind == ErrorKind::NotFound
    }
}
