//! kaizen-drift: data drift between a reference and a current data set, with the statistics and
//! the default choices of Evidently 0.7 (and scipy's numbers), computed column by column on Arrow
//! data.
//!
//! - [`compare`] two [`Dataset`]s (CSV, Parquet or JSON lines, read as pandas would) with
//!   [`DriftOptions`] into a [`DriftReport`]: per column the test, statistic, p-value, threshold
//!   and verdict; the data set verdict; data quality (missing shares, new categories, values
//!   outside the reference range).
//! - [`DriftReport::to_json`], [`DriftReport::to_table`] and [`DriftReport::to_html`] (one
//!   self-contained page with SVG charts).
//! - [`stats`]: the statistics themselves (KS with scipy's exact and asymptotic p-values,
//!   Wasserstein, energy distance, Anderson-Darling, Cramér-von Mises, chi-square, Z, Jensen-
//!   Shannon, PSI, KL, Hellinger).
//!
//! Errors are [`DriftError`]; [`DriftError::is_internal`] separates the few that are not caused
//! by the input.

mod column;
mod engine;
mod error;
mod html;
mod report;
pub mod stats;
mod test;

pub use column::{Dataset, Values};
pub use engine::{DriftOptions, compare};
pub use error::{DriftError, Result};
pub use report::{ColumnDrift, ColumnQuality, DatasetDrift, DriftReport, Histogram};
pub use test::{ColumnType, Comparison, Test, default_test};

/// Opens both files and compares them.
pub fn compare_files(
    reference: &std::path::Path,
    current: &std::path::Path,
    options: &DriftOptions,
) -> Result<DriftReport> {
    let (r, c) = std::thread::scope(|s| {
        let r = s.spawn(|| Dataset::open(reference));
        let c = Dataset::open(current);
        (r.join(), c)
    });
    let r = r.map_err(|_| DriftError::Internal("reading the reference panicked".into()))??;
    compare(&r, &c?, options)
}
