//! Labeled traffic: the rows a model was served joined with the ground truth posted for them
//! (`inference_log` JOIN `feedback` on the request id), as a table of the input columns and the
//! target. Retraining reads it to learn from what production looks like now.
//!
//! Only answered requests count (status 200, not the shadow's copies); when several feedback
//! records name the same request, the last one wins; feedback whose row count differs from the
//! request's is skipped and counted.

use std::collections::HashMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use kaizen_data::Table;
use kaizen_data::arrow::array::{ArrayRef, Float64Array, RecordBatch, StringArray};
use kaizen_data::arrow::datatypes::{DataType, Field, Schema};
use serde::Deserialize;
use serde_json::Value;

/// Which served rows to take.
#[derive(Debug, Clone)]
pub struct TrafficQuery {
    /// The registered model's name (the `model` of the log records).
    pub model: String,
    /// The column the actual values go in.
    pub target: String,
    /// Only requests at or after this time (milliseconds since the epoch).
    pub since_ms: i64,
    /// At most this many rows, the most recent ones.
    pub max_rows: usize,
}

/// What was found.
#[derive(Debug, Clone)]
pub struct LabeledTraffic {
    /// The input columns and the target; `None` when no row is labeled.
    pub table: Option<Table>,
    pub rows: usize,
    /// Requests in the window that were answered.
    pub requests: usize,
    /// Answered requests with feedback.
    pub labeled_requests: usize,
    /// Feedback records skipped because their row count differs from the request's.
    pub mismatched: usize,
}

#[derive(Deserialize)]
struct LoggedRequest {
    request_id: String,
    timestamp: i64,
    model: String,
    variant: String,
    inputs: String,
    rows: u64,
    status: u16,
}

#[derive(Deserialize)]
struct LoggedFeedback {
    request_id: String,
    actual: String,
}

#[derive(Debug, thiserror::Error)]
pub enum TrafficError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot build the traffic table: {0}")]
    Table(String),
}

/// The `.jsonl` segments of a log directory, oldest first (their names start with the time).
fn segments(dir: &Path) -> Result<Vec<PathBuf>, TrafficError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(TrafficError::Io {
                path: dir.to_path_buf(),
                source,
            });
        }
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .collect();
    files.sort();
    Ok(files)
}

/// Every line of every segment that parses as `T`; a torn last line (a crash mid-write) or a
/// foreign line is skipped.
fn read_lines<T: for<'de> Deserialize<'de>>(
    dir: &Path,
    mut each: impl FnMut(T),
) -> Result<(), TrafficError> {
    for path in segments(dir)? {
        let file = std::fs::File::open(&path).map_err(|source| TrafficError::Io {
            path: path.clone(),
            source,
        })?;
        for line in std::io::BufReader::new(file).lines() {
            let line = line.map_err(|source| TrafficError::Io {
                path: path.clone(),
                source,
            })?;
            if let Ok(record) = serde_json::from_str::<T>(&line) {
                each(record);
            }
        }
    }
    Ok(())
}

/// A column being built: numbers while every value is one, else text.
#[derive(Default)]
struct Column {
    values: Vec<Value>,
}

impl Column {
    fn array(&self) -> (DataType, ArrayRef) {
        let numeric = self.values.iter().all(|v| v.is_null() || v.is_number());
        if numeric {
            let values: Vec<Option<f64>> = self.values.iter().map(Value::as_f64).collect();
            (DataType::Float64, Arc::new(Float64Array::from(values)))
        } else {
            let values: Vec<Option<String>> = self
                .values
                .iter()
                .map(|v| match v {
                    Value::Null => None,
                    Value::String(s) => Some(s.clone()),
                    other => Some(other.to_string()),
                })
                .collect();
            (DataType::Utf8, Arc::new(StringArray::from(values)))
        }
    }
}

/// The labeled traffic of `query` from the inference log in `log_dir` and the feedback in
/// `feedback_dir`.
pub fn labeled_traffic(
    log_dir: &Path,
    feedback_dir: &Path,
    query: &TrafficQuery,
) -> Result<LabeledTraffic, TrafficError> {
    let mut actual: HashMap<String, Vec<Value>> = HashMap::new();
    read_lines(feedback_dir, |f: LoggedFeedback| {
        let values = match serde_json::from_str::<Value>(&f.actual) {
            Ok(Value::Array(values)) => values,
            Ok(one) => vec![one],
            Err(_) => return,
        };
        actual.insert(f.request_id, values);
    })?;
    let mut requests: Vec<LoggedRequest> = Vec::new();
    read_lines(log_dir, |r: LoggedRequest| {
        if r.status == 200
            && r.model == query.model
            && !r.variant.starts_with("shadow:")
            && r.timestamp >= query.since_ms
        {
            requests.push(r);
        }
    })?;
    requests.sort_by_key(|r| r.timestamp);
    let answered = requests.len();
    let mut labeled = 0;
    let mut mismatched = 0;
    // Newest first, so that the row cap keeps the most recent rows.
    let mut kept: Vec<(Value, Vec<Value>)> = Vec::new();
    let mut rows = 0usize;
    for request in requests.iter().rev() {
        if rows >= query.max_rows {
            break;
        }
        let Some(values) = actual.get(&request.request_id) else {
            continue;
        };
        if values.len() as u64 != request.rows {
            mismatched += 1;
            continue;
        }
        let Ok(inputs) = serde_json::from_str::<Value>(&request.inputs) else {
            continue;
        };
        if !inputs.is_object() {
            continue;
        }
        labeled += 1;
        rows += values.len();
        kept.push((inputs, values.clone()));
    }
    kept.reverse();
    let mut names: Vec<String> = Vec::new();
    let mut columns: HashMap<String, Column> = HashMap::new();
    let mut target = Column::default();
    let mut total = 0usize;
    for (inputs, values) in &kept {
        let n = values.len();
        if let Some(object) = inputs.as_object() {
            for name in object.keys() {
                if name == &query.target {
                    continue;
                }
                if !columns.contains_key(name) {
                    names.push(name.clone());
                    columns.insert(
                        name.clone(),
                        Column {
                            values: vec![Value::Null; total],
                        },
                    );
                }
            }
            for name in &names {
                let column = columns.get_mut(name).expect("inserted above");
                match object.get(name) {
                    Some(Value::Array(cells)) if cells.len() == n => {
                        column.values.extend(cells.iter().cloned())
                    }
                    _ => column.values.extend(std::iter::repeat_n(Value::Null, n)),
                }
            }
        }
        target.values.extend(values.iter().cloned());
        total += n;
    }
    let table = if total == 0 {
        None
    } else {
        let mut fields = Vec::with_capacity(names.len() + 1);
        let mut arrays: Vec<ArrayRef> = Vec::with_capacity(names.len() + 1);
        for name in &names {
            let (dtype, array) = columns[name].array();
            fields.push(Field::new(name, dtype, true));
            arrays.push(array);
        }
        let (dtype, array) = target.array();
        fields.push(Field::new(&query.target, dtype, true));
        arrays.push(array);
        let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)
            .map_err(|e| TrafficError::Table(e.to_string()))?;
        Some(Table::from_batch(batch))
    };
    Ok(LabeledTraffic {
        table,
        rows: total,
        requests: answered,
        labeled_requests: labeled,
        mismatched,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::{FeedbackLog, FeedbackRecord, InferenceLog, InferenceRecord};

    fn request(
        id: &str,
        t: i64,
        model: &str,
        variant: &str,
        inputs: &str,
        rows: u64,
    ) -> InferenceRecord {
        InferenceRecord {
            request_id: id.into(),
            timestamp: t,
            model: model.into(),
            version: "1".into(),
            variant: variant.into(),
            inputs: inputs.into(),
            outputs: "[]".into(),
            rows,
            latency_ms: 1.0,
            status: 200,
        }
    }

    fn feedback(id: &str, actual: &str) -> FeedbackRecord {
        FeedbackRecord {
            request_id: id.into(),
            timestamp: 0,
            actual: actual.into(),
            matched: true,
        }
    }

    #[test]
    fn joins_requests_with_their_feedback() {
        let dir = tempfile::tempdir().unwrap();
        let (log, writer) = InferenceLog::open(&dir.path().join("log"), 100).unwrap();
        log.record(request(
            "a",
            10,
            "m",
            "default",
            r#"{"x":[1.0,2.0],"kind":["p","q"]}"#,
            2,
        ));
        log.record(request(
            "b",
            20,
            "m",
            "default",
            r#"{"x":[3.0],"kind":["r"]}"#,
            1,
        ));
        log.record(request(
            "old",
            1,
            "m",
            "default",
            r#"{"x":[9.0],"kind":["z"]}"#,
            1,
        ));
        log.record(request(
            "other",
            30,
            "n",
            "default",
            r#"{"x":[5.0],"kind":["s"]}"#,
            1,
        ));
        log.record(request(
            "shadow",
            30,
            "m",
            "shadow:c",
            r#"{"x":[6.0],"kind":["t"]}"#,
            1,
        ));
        log.record(request(
            "unlabeled",
            40,
            "m",
            "default",
            r#"{"x":[7.0],"kind":["u"]}"#,
            1,
        ));
        drop(log);
        writer.join();
        let (fb, writer) = FeedbackLog::open(&dir.path().join("fb"), 100).unwrap();
        fb.record(feedback("a", "[10, 20]"));
        fb.record(feedback("b", "5"));
        fb.record(feedback("b", "30"));
        fb.record(feedback("old", "[1]"));
        fb.record(feedback("other", "[1]"));
        fb.record(feedback("shadow", "[1]"));
        drop(fb);
        writer.join();
        let query = TrafficQuery {
            model: "m".into(),
            target: "y".into(),
            since_ms: 5,
            max_rows: 100,
        };
        let found =
            labeled_traffic(&dir.path().join("log"), &dir.path().join("fb"), &query).unwrap();
        assert_eq!(
            (found.rows, found.requests, found.labeled_requests),
            (3, 3, 2)
        );
        let table = found.table.unwrap();
        let rows = kaizen_data::json_rows(&table);
        assert_eq!(
            serde_json::Value::Array(rows),
            serde_json::json!([
                {"x": 1.0, "kind": "p", "y": 10.0},
                {"x": 2.0, "kind": "q", "y": 20.0},
                {"x": 3.0, "kind": "r", "y": 30.0},
            ])
        );
        // The cap keeps the newest rows.
        let capped = labeled_traffic(
            &dir.path().join("log"),
            &dir.path().join("fb"),
            &TrafficQuery {
                max_rows: 1,
                ..query
            },
        )
        .unwrap();
        assert_eq!(capped.rows, 1);
    }

    #[test]
    fn mismatched_feedback_and_missing_logs() {
        let dir = tempfile::tempdir().unwrap();
        let (log, writer) = InferenceLog::open(&dir.path().join("log"), 100).unwrap();
        log.record(request("a", 10, "m", "default", r#"{"x":[1.0,2.0]}"#, 2));
        drop(log);
        writer.join();
        let (fb, writer) = FeedbackLog::open(&dir.path().join("fb"), 100).unwrap();
        fb.record(feedback("a", "[10]"));
        drop(fb);
        writer.join();
        let query = TrafficQuery {
            model: "m".into(),
            target: "y".into(),
            since_ms: 0,
            max_rows: 100,
        };
        let found =
            labeled_traffic(&dir.path().join("log"), &dir.path().join("fb"), &query).unwrap();
        assert!(found.table.is_none());
        assert_eq!(found.mismatched, 1);
        let none =
            labeled_traffic(&dir.path().join("nope"), &dir.path().join("nope2"), &query).unwrap();
        assert_eq!((none.rows, none.requests), (0, 0));
    }
}
