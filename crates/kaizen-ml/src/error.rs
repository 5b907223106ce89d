//! The error of every fallible function in this crate.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum MlError {
    /// The input does not fit what was asked (a column that is missing, a value that does not
    /// parse, an empty group); the message names the column or value.
    #[error("{0}")]
    Invalid(String),
    /// A learner failed to fit.
    #[error("training {learner} failed: {message}")]
    Fit { learner: String, message: String },
    #[error(transparent)]
    Data(#[from] kaizen_data::DataError),
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

impl MlError {
    pub fn invalid(message: impl Into<String>) -> Self {
        MlError::Invalid(message.into())
    }
}

pub type Result<T, E = MlError> = std::result::Result<T, E>;
