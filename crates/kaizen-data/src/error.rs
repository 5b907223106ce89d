//! The crate's one error type.

use std::path::PathBuf;

use datafusion::arrow::error::ArrowError;
use datafusion::error::DataFusionError;
use datafusion::parquet::errors::ParquetError;

/// `Result` with [`DataError`] as the default error.
pub type Result<T, E = DataError> = std::result::Result<T, E>;

/// Everything that can go wrong in kaizen-data.
///
/// Most variants are *expected* errors caused by the input (a missing file, a value that does not
/// parse, an unknown column); [`DataError::is_internal`] tells the few that are not.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("file `{}` does not exist", path.display())]
    NotFound { path: PathBuf },

    #[error("failed to access `{}`", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("cannot tell the format of `{}` from its extension (expected .csv, .parquet, .jsonl or .json); pass the format explicitly", path.display())]
    UnknownFormat { path: PathBuf },

    #[error("failed to read {format} file `{}`: {source}", path.display())]
    Parse {
        path: PathBuf,
        format: crate::Format,
        #[source]
        source: ArrowError,
    },

    #[error("failed to read Parquet file `{}`", path.display())]
    ParquetRead {
        path: PathBuf,
        #[source]
        source: ParquetError,
    },

    #[error("failed to write Parquet file `{}`", path.display())]
    ParquetWrite {
        path: PathBuf,
        #[source]
        source: ParquetError,
    },

    #[error(
        "unknown type `{type_name}` for column `{column}` (try int64, float64, utf8, bool, date32, timestamp)"
    )]
    UnknownType { column: String, type_name: String },

    #[error("column `{column}` not found (columns: {available})")]
    ColumnNotFound { column: String, available: String },

    #[error("column `{column}` of `{}`: value `{value}` at row {row} does not parse as {data_type}", path.display())]
    InvalidValue {
        path: PathBuf,
        column: String,
        /// 1-based data row (the header line is not counted).
        row: usize,
        value: String,
        data_type: String,
    },

    #[error("column `{column}` has type {data_type}, but {operation} needs {expected}")]
    ColumnType {
        column: String,
        data_type: String,
        operation: &'static str,
        expected: &'static str,
    },

    #[error("column `{column}` has {count} null values; {operation} needs a value on every row")]
    NullsNotAllowed {
        column: String,
        count: usize,
        operation: &'static str,
    },

    #[error("invalid split spec: {reason}")]
    InvalidSplit { reason: String },

    #[error("invalid validation spec: {reason}")]
    InvalidSpec { reason: String },

    #[error("failed to parse validation spec as TOML")]
    SpecToml(#[source] toml::de::Error),

    #[error("failed to parse validation spec as JSON")]
    SpecJson(#[source] serde_json::Error),

    #[error("table `{name}` is passed twice to the SQL query")]
    DuplicateTable { name: String },

    #[error("SQL query failed: {source}")]
    Sql {
        #[source]
        source: DataFusionError,
    },

    #[error("batch schema does not match the table schema: {detail}")]
    SchemaMismatch { detail: String },

    #[error("internal Arrow error while {context}")]
    Arrow {
        context: &'static str,
        #[source]
        source: ArrowError,
    },

    #[error("internal error: {0}")]
    Internal(String),
}

impl DataError {
    /// True for errors that are not caused by the caller's input.
    pub fn is_internal(&self) -> bool {
        matches!(self, DataError::Arrow { .. } | DataError::Internal(_))
    }

    pub(crate) fn arrow(context: &'static str) -> impl FnOnce(ArrowError) -> DataError {
        move |source| DataError::Arrow { context, source }
    }
}
