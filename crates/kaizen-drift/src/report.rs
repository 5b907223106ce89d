//! The drift report: per-column results, the data set verdict and data quality, as JSON
//! (`to_json`) and as a text table (`to_table`). Non-finite statistics (a chi-square with a
//! category the reference lacks is infinite) are written as JSON `null`.

use serde::Serialize;

use crate::test::{ColumnType, Test};

/// The outcome of comparing two data sets.
#[derive(Debug, Clone, Serialize)]
pub struct DriftReport {
    pub columns: Vec<ColumnDrift>,
    pub dataset: DatasetDrift,
    pub reference_rows: usize,
    pub current_rows: usize,
    pub quality: Vec<ColumnQuality>,
}

/// One column's test.
#[derive(Debug, Clone, Serialize)]
pub struct ColumnDrift {
    pub column: String,
    #[serde(rename = "type")]
    pub kind: ColumnType,
    pub test: Test,
    /// The test statistic (KS D, chi-square, z, A², T) or the distance.
    pub statistic: f64,
    /// The p-value for tests that have one.
    pub p_value: Option<f64>,
    pub threshold: f64,
    pub drifted: bool,
    /// Missing and infinite values dropped, reference and current together.
    pub missing: usize,
    /// What is compared with the threshold (Evidently's `drift_score`): the p-value when there is
    /// one, else the statistic.
    pub score: f64,
    pub missing_reference: usize,
    pub missing_current: usize,
    /// Values compared after dropping missing ones.
    pub reference_count: usize,
    pub current_count: usize,
    #[serde(skip)]
    pub histogram: Histogram,
}

/// The data set verdict.
#[derive(Debug, Clone, Serialize)]
pub struct DatasetDrift {
    pub drifted_columns: usize,
    pub columns: usize,
    pub share: f64,
    pub share_threshold: f64,
    pub drifted: bool,
}

/// Data quality of one column, computed in the same pass.
#[derive(Debug, Clone, Serialize)]
pub struct ColumnQuality {
    pub column: String,
    pub missing_reference: usize,
    pub missing_current: usize,
    pub missing_share_reference: f64,
    pub missing_share_current: f64,
    /// Categories of the current data that the reference lacks (the first 20).
    pub new_categories: Vec<String>,
    pub new_category_count: usize,
    /// Current values below the reference's minimum or above its maximum.
    pub out_of_range: usize,
    pub reference_min: Option<f64>,
    pub reference_max: Option<f64>,
}

/// Shares of reference and current per bin (numeric) or category, for the HTML report.
#[derive(Debug, Clone, Default)]
pub struct Histogram {
    /// Bin edges (one more than bins) for numeric columns, else category labels.
    pub labels: Vec<String>,
    pub reference: Vec<f64>,
    pub current: Vec<f64>,
    pub numeric: bool,
}

impl DriftReport {
    /// The JSON report: `{"columns": [...], "dataset": {...}, "quality": {...}}`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "columns": self.columns,
            "dataset": self.dataset,
            "quality": {
                "reference_rows": self.reference_rows,
                "current_rows": self.current_rows,
                "columns": self.quality,
            },
        })
    }

    /// A table for people.
    pub fn to_table(&self) -> String {
        let mut rows: Vec<[String; 8]> = vec![[
            "COLUMN".into(),
            "TYPE".into(),
            "TEST".into(),
            "STATISTIC".into(),
            "P-VALUE".into(),
            "THRESHOLD".into(),
            "DRIFT".into(),
            "MISSING".into(),
        ]];
        for c in &self.columns {
            rows.push([
                c.column.clone(),
                c.kind.as_str().into(),
                c.test.name().into(),
                fmt_num(c.statistic),
                c.p_value.map(fmt_num).unwrap_or_else(|| "-".into()),
                fmt_num(c.threshold),
                if c.drifted { "yes".into() } else { "no".into() },
                c.missing.to_string(),
            ]);
        }
        let widths: Vec<usize> = (0..8)
            .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
            .collect();
        let mut out = String::new();
        for r in &rows {
            let line: Vec<String> = r
                .iter()
                .zip(&widths)
                .map(|(v, w)| format!("{v:<w$}"))
                .collect();
            out.push_str(line.join("  ").trim_end());
            out.push('\n');
        }
        let d = &self.dataset;
        out.push_str(&format!(
            "\n{} of {} columns drifted (share {:.3}, threshold {}): data set {}\n",
            d.drifted_columns,
            d.columns,
            d.share,
            d.share_threshold,
            if d.drifted { "DRIFTED" } else { "not drifted" }
        ));
        let notes: Vec<String> = self
            .quality
            .iter()
            .filter_map(|q| {
                let mut parts = Vec::new();
                if q.new_category_count > 0 {
                    parts.push(format!(
                        "{} new categories ({})",
                        q.new_category_count,
                        q.new_categories.join(", ")
                    ));
                }
                if q.out_of_range > 0 {
                    parts.push(format!(
                        "{} values outside the reference range",
                        q.out_of_range
                    ));
                }
                (!parts.is_empty()).then(|| format!("  {}: {}", q.column, parts.join("; ")))
            })
            .collect();
        if !notes.is_empty() {
            out.push_str("\nquality:\n");
            for n in notes {
                out.push_str(&n);
                out.push('\n');
            }
        }
        out
    }
}

pub(crate) fn fmt_num(x: f64) -> String {
    if !x.is_finite() {
        return format!("{x}");
    }
    if x != 0.0 && (x.abs() < 1e-4 || x.abs() >= 1e6) {
        format!("{x:.4e}")
    } else {
        format!("{x:.4}")
    }
}
