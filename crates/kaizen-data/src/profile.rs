//! Column statistics of a table ([`Profile`]), as JSON or as one self-contained HTML page.

use std::collections::{HashMap, HashSet};

use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::compute::{CastOptions, cast_with_options};
use datafusion::arrow::datatypes::{DataType, Float64Type, Int64Type};
use datafusion::arrow::row::{RowConverter, SortField};
use serde::{Deserialize, Serialize};

use crate::types::{display_strings, is_numeric, is_temporal, type_name};
use crate::{DataError, Result, Table};

/// Most frequent values kept for categorical columns.
pub const TOP_VALUES: usize = 10;
/// Most histogram bins for numeric columns.
pub const MAX_BINS: usize = 20;
/// Quantiles reported for numeric columns.
pub const QUANTILES: [f64; 5] = [0.05, 0.25, 0.5, 0.75, 0.95];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    pub rows: u64,
    pub columns: Vec<ColumnProfile>,
    /// Pearson correlations of the numeric columns (pairwise complete rows); None when a pair has
    /// fewer than two rows or no variance.
    pub correlations: Correlations,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ColumnKind {
    Numeric,
    Temporal,
    Categorical,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColumnProfile {
    pub name: String,
    pub data_type: String,
    pub kind: ColumnKind,
    /// Non-null values.
    pub count: u64,
    pub missing: u64,
    pub missing_fraction: f64,
    /// Distinct non-null values.
    pub distinct: u64,
    /// Numeric columns: statistics of the finite values.
    pub numeric: Option<NumericStats>,
    /// Temporal columns: earliest and latest value as text.
    pub min_text: Option<String>,
    pub max_text: Option<String>,
    /// Categorical columns: the most frequent values, most frequent first.
    pub top_values: Vec<ValueCount>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NumericStats {
    pub min: f64,
    pub max: f64,
    pub mean: f64,
    /// Sample standard deviation (0 for one value).
    pub std: f64,
    pub quantiles: Vec<Quantile>,
    pub histogram: Vec<Bin>,
    /// NaN and infinite values, left out of the statistics.
    pub non_finite: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Quantile {
    pub q: f64,
    pub value: f64,
}

/// A histogram bin `[lower, upper)`; the last bin includes its upper edge.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Bin {
    pub lower: f64,
    pub upper: f64,
    pub count: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ValueCount {
    pub value: String,
    pub count: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Correlations {
    pub columns: Vec<String>,
    pub matrix: Vec<Vec<Option<f64>>>,
}

/// Profiles every column of `table`.
pub fn profile(table: &Table) -> Result<Profile> {
    let batch = table.concat()?;
    let rows = batch.num_rows();
    let mut columns = Vec::new();
    let mut numeric: Vec<(String, Vec<Option<f64>>)> = Vec::new();
    for (field, array) in batch.schema().fields().iter().zip(batch.columns()) {
        let t = array.data_type();
        let missing = array.null_count();
        let count = rows - missing;
        let mut p = ColumnProfile {
            name: field.name().clone(),
            data_type: type_name(t),
            kind: ColumnKind::Categorical,
            count: count as u64,
            missing: missing as u64,
            missing_fraction: if rows == 0 {
                0.0
            } else {
                missing as f64 / rows as f64
            },
            distinct: distinct(array)? as u64,
            numeric: None,
            min_text: None,
            max_text: None,
            top_values: Vec::new(),
        };
        if is_numeric(t) {
            p.kind = ColumnKind::Numeric;
            let values = as_f64(array)?;
            p.numeric = numeric_stats(&values);
            numeric.push((p.name.clone(), values));
        } else if is_temporal(t) {
            p.kind = ColumnKind::Temporal;
            // Compare the underlying integers (days or ticks), show the values as text.
            let ticks = cast_with_options(array, &DataType::Int64, &CastOptions::default())
                .map_err(DataError::arrow("casting times to int64"))?;
            let ticks = ticks.as_primitive::<Int64Type>();
            let present = || (0..ticks.len()).filter(|&i| ticks.is_valid(i));
            let texts = display_strings(array.as_ref())?;
            p.min_text = present()
                .min_by_key(|&i| ticks.value(i))
                .and_then(|i| texts[i].clone());
            p.max_text = present()
                .max_by_key(|&i| ticks.value(i))
                .and_then(|i| texts[i].clone());
        } else {
            p.top_values = top_values(array)?;
        }
        columns.push(p);
    }
    Ok(Profile {
        rows: rows as u64,
        columns,
        correlations: correlations(&numeric),
    })
}

fn as_f64(array: &ArrayRef) -> Result<Vec<Option<f64>>> {
    let cast = cast_with_options(array, &DataType::Float64, &CastOptions::default())
        .map_err(DataError::arrow("casting to float64"))?;
    Ok(cast.as_primitive::<Float64Type>().iter().collect())
}

fn distinct(array: &ArrayRef) -> Result<usize> {
    let converter = RowConverter::new(vec![SortField::new(array.data_type().clone())])
        .map_err(DataError::arrow("encoding rows"))?;
    let rows = converter
        .convert_columns(std::slice::from_ref(array))
        .map_err(DataError::arrow("encoding rows"))?;
    let set: HashSet<_> = (0..array.len())
        .filter(|&i| array.is_valid(i))
        .map(|i| rows.row(i))
        .collect();
    Ok(set.len())
}

fn top_values(array: &ArrayRef) -> Result<Vec<ValueCount>> {
    let mut counts: HashMap<String, u64> = HashMap::new();
    for v in display_strings(array.as_ref())?.into_iter().flatten() {
        *counts.entry(v).or_default() += 1;
    }
    let mut counts: Vec<ValueCount> = counts
        .into_iter()
        .map(|(value, count)| ValueCount { value, count })
        .collect();
    counts.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.value.cmp(&b.value)));
    counts.truncate(TOP_VALUES);
    Ok(counts)
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    let pos = q * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

fn numeric_stats(values: &[Option<f64>]) -> Option<NumericStats> {
    let present: Vec<f64> = values.iter().flatten().copied().collect();
    let mut finite: Vec<f64> = present.iter().copied().filter(|v| v.is_finite()).collect();
    let non_finite = (present.len() - finite.len()) as u64;
    if finite.is_empty() {
        return None;
    }
    finite.sort_by(f64::total_cmp);
    let n = finite.len() as f64;
    let mean = finite.iter().sum::<f64>() / n;
    let var = if finite.len() > 1 {
        finite.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)
    } else {
        0.0
    };
    let (min, max) = (finite[0], finite[finite.len() - 1]);
    let mut distinct = finite.clone();
    distinct.dedup();
    let bins = distinct.len().clamp(1, MAX_BINS);
    let width = (max - min) / bins as f64;
    let mut histogram: Vec<Bin> = (0..bins)
        .map(|i| Bin {
            lower: min + width * i as f64,
            upper: if i + 1 == bins {
                max
            } else {
                min + width * (i + 1) as f64
            },
            count: 0,
        })
        .collect();
    for v in &finite {
        let i = if width > 0.0 {
            (((v - min) / width) as usize).min(bins - 1)
        } else {
            0
        };
        histogram[i].count += 1;
    }
    Some(NumericStats {
        min,
        max,
        mean,
        std: var.sqrt(),
        quantiles: QUANTILES
            .iter()
            .map(|&q| Quantile {
                q,
                value: quantile(&finite, q),
            })
            .collect(),
        histogram,
        non_finite,
    })
}

fn pearson(a: &[Option<f64>], b: &[Option<f64>]) -> Option<f64> {
    let pairs: Vec<(f64, f64)> = a
        .iter()
        .zip(b)
        .filter_map(|(x, y)| Some((x.filter(|v| v.is_finite())?, y.filter(|v| v.is_finite())?)))
        .collect();
    if pairs.len() < 2 {
        return None;
    }
    let n = pairs.len() as f64;
    let (mx, my) = (
        pairs.iter().map(|p| p.0).sum::<f64>() / n,
        pairs.iter().map(|p| p.1).sum::<f64>() / n,
    );
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (x, y) in pairs {
        sxy += (x - mx) * (y - my);
        sxx += (x - mx).powi(2);
        syy += (y - my).powi(2);
    }
    let r = sxy / (sxx * syy).sqrt();
    r.is_finite().then(|| r.clamp(-1.0, 1.0))
}

fn correlations(numeric: &[(String, Vec<Option<f64>>)]) -> Correlations {
    Correlations {
        columns: numeric.iter().map(|(n, _)| n.clone()).collect(),
        matrix: numeric
            .iter()
            .map(|(_, a)| numeric.iter().map(|(_, b)| pearson(a, b)).collect())
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sales() -> Table {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.csv");
        let mut text = String::from("date,store,units,price\n");
        for i in 0..50 {
            let store = ["a", "b", "c"][i % 3];
            let units = if i % 10 == 9 {
                String::new()
            } else {
                (i % 7).to_string()
            };
            text.push_str(&format!(
                "2024-01-{:02},{store},{units},{}\n",
                i % 28 + 1,
                i as f64 * 0.5
            ));
        }
        std::fs::write(&p, text).unwrap();
        let mut options = crate::ReadOptions::default();
        options.types.insert("date".into(), "date32".into());
        crate::read(&crate::Source::path(&p), &options).unwrap()
    }

    #[test]
    fn profiles_numeric_categorical_and_temporal_columns() {
        let p = profile(&sales()).unwrap();
        assert_eq!(p.rows, 50);
        let units = p.columns.iter().find(|c| c.name == "units").unwrap();
        assert_eq!((units.count, units.missing, units.distinct), (45, 5, 7));
        let stats = units.numeric.as_ref().unwrap();
        assert_eq!((stats.min, stats.max), (0.0, 6.0));
        assert_eq!(stats.histogram.iter().map(|b| b.count).sum::<u64>(), 45);
        assert_eq!(stats.quantiles[2].q, 0.5);
        let price = p
            .columns
            .iter()
            .find(|c| c.name == "price")
            .unwrap()
            .numeric
            .as_ref()
            .unwrap();
        assert_eq!(price.mean, 12.25);
        let store = p.columns.iter().find(|c| c.name == "store").unwrap();
        assert_eq!(store.kind, ColumnKind::Categorical);
        assert_eq!(
            store.top_values[0],
            ValueCount {
                value: "a".into(),
                count: 17
            }
        );
        let date = p.columns.iter().find(|c| c.name == "date").unwrap();
        assert_eq!(date.min_text.as_deref(), Some("2024-01-01"));
        assert_eq!(date.max_text.as_deref(), Some("2024-01-28"));
        assert_eq!(p.correlations.columns, ["units", "price"]);
        assert_eq!(p.correlations.matrix[0][0], Some(1.0));
        let json = serde_json::to_value(&p).unwrap();
        assert_eq!(json["columns"][2]["numeric"]["max"], serde_json::json!(6.0));
    }

    #[test]
    fn empty_and_constant_columns_do_not_panic() {
        let t = sales();
        let empty = t.take(&[]).unwrap();
        let p = profile(&empty).unwrap();
        assert!(
            p.columns
                .iter()
                .all(|c| c.numeric.is_none() && c.count == 0)
        );
        let one = profile(&t.take(&[0, 0]).unwrap()).unwrap();
        assert_eq!(one.correlations.matrix[0][1], None);
        assert!(one.to_html().contains("<svg"));
        assert!(p.to_html().starts_with("<!DOCTYPE html>"));
    }
}
