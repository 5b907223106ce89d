//! Series from a transactions table: one dense, zero-filled series per group key at a daily or
//! weekly frequency.

use std::collections::BTreeMap;

use chrono::{Datelike, NaiveDate, NaiveDateTime};
use kaizen_data::Table;
use kaizen_data::arrow::array::{Array, ArrayRef, AsArray};
use kaizen_data::arrow::compute::{cast, concat};
use kaizen_data::arrow::datatypes::{DataType, Date32Type, Float64Type};
use serde::{Deserialize, Serialize};

use crate::error::{MlError, Result};

/// The period of a series.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Freq {
    /// One value per day.
    #[serde(rename = "D")]
    Daily,
    /// One value per week, weeks starting on Monday.
    #[serde(rename = "W")]
    Weekly,
}

impl Freq {
    pub fn parse(s: &str) -> Result<Freq> {
        match s {
            "D" | "d" | "daily" => Ok(Freq::Daily),
            "W" | "w" | "weekly" => Ok(Freq::Weekly),
            other => Err(MlError::invalid(format!(
                "unknown frequency '{other}': use D (daily) or W (weekly)"
            ))),
        }
    }

    /// The seasonal period in periods: a week of days, a year of weeks.
    pub fn season(self) -> usize {
        match self {
            Freq::Daily => 7,
            Freq::Weekly => 52,
        }
    }

    pub fn days(self) -> i32 {
        match self {
            Freq::Daily => 1,
            Freq::Weekly => 7,
        }
    }

    pub fn code(self) -> &'static str {
        match self {
            Freq::Daily => "D",
            Freq::Weekly => "W",
        }
    }

    /// The period holding `day` (days since 1970-01-01), as the day its period starts.
    fn period_start(self, day: i32) -> i32 {
        match self {
            Freq::Daily => day,
            // 1970-01-01 was a Thursday; Monday is 3 days earlier.
            Freq::Weekly => day - (day + 3).rem_euclid(7),
        }
    }
}

/// Which columns make the series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeriesSpec {
    pub date_column: String,
    pub target_column: String,
    #[serde(default)]
    pub group_columns: Vec<String>,
    pub freq: Freq,
}

/// Aligned series: every series covers the same periods, from `start` (a day number) in steps
/// of the frequency; periods without rows are 0.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesSet {
    pub spec: SeriesSpec,
    /// The group values of each series, in `spec.group_columns` order.
    pub keys: Vec<Vec<String>>,
    pub values: Vec<Vec<f64>>,
    /// The first period's start, in days since 1970-01-01.
    pub start: i32,
}

impl SeriesSet {
    pub fn periods(&self) -> usize {
        self.values.first().map_or(0, Vec::len)
    }

    /// The start day of period `t`.
    pub fn day(&self, t: usize) -> i32 {
        self.start + t as i32 * self.spec.freq.days()
    }

    /// The series' key for people: group values joined with `/` (`all` without groups).
    pub fn label(&self, s: usize) -> String {
        if self.keys[s].is_empty() {
            "all".into()
        } else {
            self.keys[s].join("/")
        }
    }
}

/// Days since 1970-01-01 as a date.
pub fn date_of(day: i32) -> NaiveDate {
    NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch") + chrono::Duration::days(i64::from(day))
}

fn day_of(date: NaiveDate) -> i32 {
    (date - NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch")).num_days() as i32
}

fn column(table: &Table, name: &str, role: &str) -> Result<ArrayRef> {
    let index = table.schema().index_of(name).map_err(|_| {
        let names: Vec<&str> = table
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .collect();
        MlError::invalid(format!(
            "the {role} column '{name}' is not in the data (columns: {})",
            names.join(", ")
        ))
    })?;
    let parts: Vec<&dyn Array> = table
        .batches()
        .iter()
        .map(|b| b.column(index).as_ref())
        .collect();
    if parts.is_empty() {
        return Ok(kaizen_data::arrow::array::new_empty_array(
            table.schema().field(index).data_type(),
        ));
    }
    concat(&parts).map_err(|e| MlError::invalid(format!("column '{name}': {e}")))
}

fn parse_date_text(text: &str) -> Option<NaiveDate> {
    let text = text.trim();
    for format in ["%Y-%m-%d", "%Y/%m/%d", "%Y%m%d"] {
        if let Ok(d) = NaiveDate::parse_from_str(text, format) {
            return Some(d);
        }
    }
    for format in [
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%dT%H:%M:%S%.f",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(text.trim_end_matches('Z'), format) {
            return Some(t.date());
        }
    }
    None
}

/// The date column as day numbers; errors name the column, the row and the value.
fn days(array: &ArrayRef, name: &str) -> Result<Vec<i32>> {
    let null_err = |row: usize| {
        MlError::invalid(format!(
            "the date column '{name}' is empty in row {}",
            row + 1
        ))
    };
    match array.data_type() {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
            let text = cast(array, &DataType::Utf8)
                .map_err(|e| MlError::invalid(format!("column '{name}': {e}")))?;
            let text = text.as_string::<i32>();
            (0..text.len())
                .map(|row| {
                    if text.is_null(row) {
                        return Err(null_err(row));
                    }
                    let value = text.value(row);
                    parse_date_text(value).map(day_of).ok_or_else(|| {
                        MlError::invalid(format!(
                            "the date column '{name}' has a value that is not a date in row {}: '{value}' (expected YYYY-MM-DD)",
                            row + 1
                        ))
                    })
                })
                .collect()
        }
        DataType::Date32 | DataType::Date64 | DataType::Timestamp(_, _) => {
            let dates = cast(array, &DataType::Date32)
                .map_err(|e| MlError::invalid(format!("column '{name}': {e}")))?;
            let dates = dates.as_primitive::<Date32Type>();
            (0..dates.len())
                .map(|row| {
                    if dates.is_null(row) {
                        Err(null_err(row))
                    } else {
                        Ok(dates.value(row))
                    }
                })
                .collect()
        }
        other => Err(MlError::invalid(format!(
            "the date column '{name}' has type {other}, not a date or text"
        ))),
    }
}

fn numbers(array: &ArrayRef, name: &str) -> Result<Vec<f64>> {
    let values = match array.data_type() {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
            let text = cast(array, &DataType::Utf8)
                .map_err(|e| MlError::invalid(format!("column '{name}': {e}")))?;
            let text = text.as_string::<i32>();
            return (0..text.len())
                .map(|row| {
                    if text.is_null(row) {
                        return Ok(0.0);
                    }
                    let value = text.value(row);
                    value.trim().parse::<f64>().map_err(|_| {
                        MlError::invalid(format!(
                            "the target column '{name}' has text in row {}: '{value}' (expected a number)",
                            row + 1
                        ))
                    })
                })
                .collect();
        }
        DataType::Boolean | DataType::Date32 | DataType::Date64 | DataType::Timestamp(_, _) => {
            return Err(MlError::invalid(format!(
                "the target column '{name}' has type {}, not a number",
                array.data_type()
            )));
        }
        _ => cast(array, &DataType::Float64)
            .map_err(|e| MlError::invalid(format!("the target column '{name}': {e}")))?,
    };
    let values = values.as_primitive::<Float64Type>();
    // A missing quantity is no sale.
    Ok((0..values.len())
        .map(|row| {
            if values.is_null(row) {
                0.0
            } else {
                values.value(row)
            }
        })
        .collect())
}

fn texts(array: &ArrayRef, name: &str) -> Result<Vec<String>> {
    let text = cast(array, &DataType::Utf8)
        .map_err(|e| MlError::invalid(format!("the group column '{name}': {e}")))?;
    let text = text.as_string::<i32>();
    (0..text.len())
        .map(|row| {
            if text.is_null(row) || text.value(row).trim().is_empty() {
                Err(MlError::invalid(format!(
                    "the group column '{name}' is empty in row {}: every row needs a group",
                    row + 1
                )))
            } else {
                Ok(text.value(row).to_string())
            }
        })
        .collect()
}

/// Sums the target per group and period, and fills periods without rows with 0.
pub fn build_series(table: &Table, spec: &SeriesSpec) -> Result<SeriesSet> {
    if table.num_rows() == 0 {
        return Err(MlError::invalid("the data has no rows"));
    }
    let dates = days(
        &column(table, &spec.date_column, "date")?,
        &spec.date_column,
    )?;
    let target = column(table, &spec.target_column, "target")?;
    if let Some(bad) = non_finite(&target)? {
        return Err(MlError::invalid(format!(
            "the target column '{}' has a value that is not a finite number: {bad}",
            spec.target_column
        )));
    }
    let target = numbers(&target, &spec.target_column)?;
    let groups = spec
        .group_columns
        .iter()
        .map(|g| texts(&column(table, g, "group")?, g))
        .collect::<Result<Vec<_>>>()?;

    let freq = spec.freq;
    let periods: Vec<i32> = dates.iter().map(|&d| freq.period_start(d)).collect();
    let first = *periods.iter().min().expect("rows");
    let last = *periods.iter().max().expect("rows");
    let length = ((last - first) / freq.days()) as usize + 1;

    let mut index: BTreeMap<Vec<String>, usize> = BTreeMap::new();
    let mut keys = Vec::new();
    let mut values: Vec<Vec<f64>> = Vec::new();
    for row in 0..periods.len() {
        let key: Vec<String> = groups.iter().map(|g| g[row].clone()).collect();
        let s = *index.entry(key.clone()).or_insert_with(|| {
            keys.push(key);
            values.push(vec![0.0; length]);
            keys.len() - 1
        });
        let t = ((periods[row] - first) / freq.days()) as usize;
        values[s][t] += target[row];
    }
    // Series in key order, so output is stable whatever the row order.
    let mut order: Vec<usize> = (0..keys.len()).collect();
    order.sort_by(|&a, &b| keys[a].cmp(&keys[b]));
    Ok(SeriesSet {
        spec: spec.clone(),
        keys: order.iter().map(|&s| keys[s].clone()).collect(),
        values: order.iter().map(|&s| values[s].clone()).collect(),
        start: first,
    })
}

/// The first NaN or infinite value of a float column, as text.
fn non_finite(array: &ArrayRef) -> Result<Option<f64>> {
    if !matches!(array.data_type(), DataType::Float32 | DataType::Float64) {
        return Ok(None);
    }
    let values = cast(array, &DataType::Float64).map_err(|e| MlError::invalid(e.to_string()))?;
    let values = values.as_primitive::<Float64Type>();
    Ok((0..values.len())
        .filter(|&i| !values.is_null(i))
        .map(|i| values.value(i))
        .find(|v| !v.is_finite()))
}

/// Calendar features of a day: day of week (Monday 0), day of month, month, ISO week.
pub fn calendar(day: i32) -> [f64; 4] {
    let date = date_of(day);
    [
        f64::from(date.weekday().num_days_from_monday()),
        f64::from(date.day()),
        f64::from(date.month()),
        f64::from(date.iso_week().week()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use kaizen_data::arrow::array::{Float64Array, Int64Array, RecordBatch, StringArray};
    use kaizen_data::arrow::datatypes::{Field, Schema};
    use std::sync::Arc;

    fn table(dates: &[&str], skus: &[&str], units: Vec<i64>) -> Table {
        let schema = Arc::new(Schema::new(vec![
            Field::new("day", DataType::Utf8, true),
            Field::new("sku", DataType::Utf8, true),
            Field::new("units", DataType::Int64, true),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(dates.to_vec())),
                Arc::new(StringArray::from(skus.to_vec())),
                Arc::new(Int64Array::from(units)),
            ],
        )
        .unwrap();
        Table::from_batch(batch)
    }

    fn spec(freq: Freq) -> SeriesSpec {
        SeriesSpec {
            date_column: "day".into(),
            target_column: "units".into(),
            group_columns: vec!["sku".into()],
            freq,
        }
    }

    #[test]
    fn daily_series_are_summed_aligned_and_zero_filled() {
        let t = table(
            &["2024-01-03", "2024-01-01", "2024-01-01", "2024-01-02"],
            &["b", "a", "a", "b"],
            vec![5, 1, 2, 7],
        );
        let s = build_series(&t, &spec(Freq::Daily)).unwrap();
        assert_eq!(s.keys, vec![vec!["a".to_string()], vec!["b".to_string()]]);
        assert_eq!(s.values, vec![vec![3.0, 0.0, 0.0], vec![0.0, 7.0, 5.0]]);
        assert_eq!(date_of(s.day(0)).to_string(), "2024-01-01");
    }

    #[test]
    fn weekly_periods_start_on_monday() {
        // 2024-01-01 is a Monday; 2024-01-07 a Sunday of the same week.
        let t = table(
            &["2024-01-07", "2024-01-01", "2024-01-08"],
            &["a", "a", "a"],
            vec![1, 2, 4],
        );
        let s = build_series(&t, &spec(Freq::Weekly)).unwrap();
        assert_eq!(s.values, vec![vec![3.0, 4.0]]);
        assert_eq!(date_of(s.start).to_string(), "2024-01-01");
    }

    #[test]
    fn bad_input_names_the_column_and_value() {
        let t = table(&["2024-01-01", "yesterday"], &["a", "a"], vec![1, 2]);
        let err = build_series(&t, &spec(Freq::Daily))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("'day'") && err.contains("'yesterday'") && err.contains("row 2"),
            "{err}"
        );

        let t = table(&["2024-01-01"], &[""], vec![1]);
        let err = build_series(&t, &spec(Freq::Daily))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("group column 'sku' is empty in row 1"),
            "{err}"
        );

        let mut bad = spec(Freq::Daily);
        bad.target_column = "sku".into();
        let t = table(&["2024-01-01"], &["x1"], vec![1]);
        let err = build_series(&t, &bad).unwrap_err().to_string();
        assert!(
            err.contains("target column 'sku' has text in row 1: 'x1'"),
            "{err}"
        );

        let mut missing = spec(Freq::Daily);
        missing.date_column = "date".into();
        let err = build_series(&t, &missing).unwrap_err().to_string();
        assert!(
            err.contains("date column 'date' is not in the data"),
            "{err}"
        );
    }

    #[test]
    fn nan_targets_are_refused() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("day", DataType::Utf8, true),
            Field::new("units", DataType::Float64, true),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(vec!["2024-01-01"])),
                Arc::new(Float64Array::from(vec![f64::NAN])),
            ],
        )
        .unwrap();
        let mut s = spec(Freq::Daily);
        s.group_columns.clear();
        let err = build_series(&Table::from_batch(batch), &s)
            .unwrap_err()
            .to_string();
        assert!(err.contains("not a finite number"), "{err}");
    }
}
