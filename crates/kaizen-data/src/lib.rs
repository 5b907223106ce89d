//! kaizen-data: the data engine for pipeline steps, on Arrow and DataFusion.
//!
//! - [`read`] CSV, Parquet and JSON-lines files into a [`Table`]; [`write_parquet`] and
//!   [`read_parquet`].
//! - [`sql`] over named in-memory tables (DataFusion); [`sql_files`] and [`sql_to_parquet`] over
//!   files, streamed; [`describe_file`] for the dataset catalog.
//! - [`validate`] a table against a [`ValidationSpec`] (TOML or JSON).
//! - [`split`] a table into named parts: random, stratified or by time.
//! - [`profile`] a table's columns, as JSON or one HTML page ([`Profile::to_html`]).
//!
//! Everything is synchronous and in memory; errors are [`DataError`]. Arrow and Parquet types
//! are DataFusion's re-exports ([`datafusion::arrow`], [`datafusion::parquet`]), re-exported here
//! as [`arrow`] and [`parquet`] so that callers use the same versions.

mod error;
mod files;
mod html;
mod profile;
mod read;
mod split;
mod sql;
mod table;
mod types;
mod validate;

pub use datafusion::arrow;
pub use datafusion::parquet;

pub use error::{DataError, Result};
pub use files::{
    FileSummary, FileTable, SqlOutput, describe_file, json_rows, sql_files, sql_to_parquet,
    table_references, text_rows,
};
pub use profile::{
    Bin, ColumnKind, ColumnProfile, Correlations, MAX_BINS, NumericStats, Profile, QUANTILES,
    Quantile, TOP_VALUES, ValueCount, profile,
};
pub use read::{Format, ReadOptions, Source, read, read_parquet, write_parquet};
pub use split::{Fractions, SplitSpec, split};
pub use sql::{sql, sql_async};
pub use table::Table;
pub use types::{parse_type, type_name};
pub use validate::{
    ColumnSpec, Failure, MAX_EXAMPLES, RowCount, ValidationReport, ValidationSpec, validate,
};
