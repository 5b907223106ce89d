//! The crate's error type: expected errors caused by the input, apart from internal ones.

use std::path::PathBuf;

/// `Result` with [`DriftError`] as the default error.
pub type Result<T, E = DriftError> = std::result::Result<T, E>;

/// Everything that can go wrong computing drift.
#[derive(Debug, thiserror::Error)]
pub enum DriftError {
    /// Reading a file failed (missing file, unknown format, a value that does not parse).
    #[error(transparent)]
    Data(#[from] kaizen_data::DataError),

    #[error("failed to read `{}`: {detail}", path.display())]
    Read { path: PathBuf, detail: String },

    #[error("column `{column}` is not in {side} `{}` (columns: {available})", path.display())]
    UnknownColumn {
        column: String,
        side: &'static str,
        path: PathBuf,
        available: String,
    },

    #[error(
        "unknown drift test `{test}` (tests: ks, wasserstein, chisquare, z, jensenshannon, psi, kl_div, hellinger, anderson, cramer_von_mises, energy_distance)"
    )]
    UnknownTest { test: String },

    #[error(
        "test `{test}` does not apply to {kind} column `{column}` (it takes {allowed} columns)"
    )]
    TestNotApplicable {
        test: &'static str,
        column: String,
        kind: &'static str,
        allowed: &'static str,
    },

    #[error("column `{column}` of {side} `{}` has no values after dropping missing and infinite values", path.display())]
    EmptyColumn {
        column: String,
        side: &'static str,
        path: PathBuf,
    },

    #[error("column `{column}` has type {data_type} in {side} `{}`; drift needs numbers, text or booleans", path.display())]
    UnsupportedType {
        column: String,
        data_type: String,
        side: &'static str,
        path: PathBuf,
    },

    #[error("column `{column}` is numeric in the current data but not in reference `{}`", path.display())]
    MixedTypes { column: String, path: PathBuf },

    #[error("test `{test}` on column `{column}` needs {needs}")]
    TooFewValues {
        test: &'static str,
        column: String,
        needs: &'static str,
    },

    #[error("invalid option: {0}")]
    InvalidOption(String),

    #[error("no columns to compare: the two files share no column of a supported type")]
    NoColumns,

    #[error("failed to write `{}`", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("internal error: {0}")]
    Internal(String),
}

impl DriftError {
    /// True for errors that are not caused by the caller's input.
    pub fn is_internal(&self) -> bool {
        match self {
            DriftError::Data(e) => e.is_internal(),
            DriftError::Internal(_) => true,
            _ => false,
        }
    }
}
