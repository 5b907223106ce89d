//! The error of every fallible function in this crate.

use std::path::PathBuf;

use kaizen_core::ErrorKind;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum TrainError {
    /// A file a model package must have is not there.
    #[error("model package file `{}` is missing", path.display())]
    MissingFile { path: PathBuf },
    /// A package written by another (newer or older) format.
    #[error("model package `{}` has format_version {found}; this kaizen reads version {expected}", path.display())]
    FormatVersion {
        path: PathBuf,
        found: String,
        expected: u32,
    },
    /// A package whose parts disagree: the model's features against the signature, the model's
    /// task against the descriptor, an example with other columns.
    #[error("model package `{}` is inconsistent: {message}", path.display())]
    Inconsistent { path: PathBuf, message: String },
    #[error("cannot read `{}`: {source}", path.display())]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("`{}`: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A search space key the learner does not have, or a value it does not accept.
    #[error("search space key `{key}` = {value}: {message}")]
    BadSetting {
        key: String,
        value: String,
        message: String,
    },
    /// A metric asked for by name that the scores do not have.
    #[error("no metric `{metric}` (available: {})", available.join(", "))]
    UnknownMetric {
        metric: String,
        available: Vec<String>,
    },
    /// Bad input that is not one of the cases above; the message names the value.
    #[error("{0}")]
    Invalid(String),
    /// No trial of a search produced a usable value of the metric.
    #[error("no trial of the search produced a number for `{metric}`{}", first_error.as_ref().map(|e| format!(" (first error: {e})")).unwrap_or_default())]
    NoSuccessfulTrial {
        metric: String,
        first_error: Option<String>,
    },
    #[error(transparent)]
    Ml(#[from] kaizen_ml::MlError),
    /// A tracking, registry or artifact store call failed.
    #[error(transparent)]
    Core(#[from] kaizen_core::Error),
}

impl TrainError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        let path = path.into();
        if source.kind() == std::io::ErrorKind::NotFound {
            TrainError::MissingFile { path }
        } else {
            TrainError::Io { path, source }
        }
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        TrainError::Invalid(message.into())
    }

    /// The domain kind of the error, so callers can tell bad input (exit code 1) from failures
    /// (exit code 2) as for every other kaizen error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            TrainError::MissingFile { .. } => ErrorKind::NotFound,
            TrainError::FormatVersion { .. }
            | TrainError::Inconsistent { .. }
            | TrainError::Json { .. }
            | TrainError::BadSetting { .. }
            | TrainError::UnknownMetric { .. }
            | TrainError::Invalid(_)
            | TrainError::NoSuccessfulTrial { .. }
            | TrainError::Ml(_) => ErrorKind::InvalidParameter,
            TrainError::Io { .. } => ErrorKind::Internal,
            TrainError::Core(e) => e.kind,
        }
    }
}

pub type Result<T, E = TrainError> = std::result::Result<T, E>;
