//! Online drift monitoring: the rows a model is served, in windows of a fixed count (or of a
//! time span: a window also closes when it is old enough), compared
//! with the reference saved with the model at training (`reference.parquet` in its package) by
//! the drift engine, feature by feature and for the prediction. Each window's result goes to
//! `/metrics` gauges and, when the data set drifted, to a callback (the binary records a
//! `drift.detected` event).

use std::sync::{Arc, Mutex};

use kaizen_data::Table;
use kaizen_data::arrow::array::{ArrayRef, Float64Array, RecordBatch, StringArray};
use kaizen_data::arrow::datatypes::{DataType, Field, Schema};
use kaizen_drift::{Dataset, DriftOptions, DriftReport};
use kaizen_ml::{ColumnData, Frame};

use crate::model::{Prediction, ServedModel};

/// The column of predictions in both windows: the value, or the last class's probability.
pub const PREDICTION: &str = "prediction";

/// The fewest rows a window closed by age is compared with (fewer say little).
pub const MIN_TIMED_ROWS: usize = 30;

/// Called with each window's report when the data set drifted.
pub type OnDrift = Arc<dyn Fn(&ServedModel, &DriftReport) + Send + Sync>;

/// The last window's result, for `/metrics`.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub windows: u64,
    pub drifted_windows: u64,
    pub share: f64,
    pub drifted: bool,
    /// Per column: the statistic and whether it drifted.
    pub columns: Vec<(String, f64, bool)>,
}

struct Buffer {
    started: std::time::Instant,
    names: Vec<String>,
    columns: Vec<ColumnData>,
    predictions: Vec<f64>,
}

/// A monitor for one model version.
pub struct Monitor {
    pub version: String,
    reference: Arc<Dataset>,
    window: usize,
    /// A window also closes when it is this old and holds at least [`MIN_TIMED_ROWS`].
    max_age: Option<std::time::Duration>,
    buffer: Mutex<Option<Buffer>>,
    pub snapshot: Arc<Mutex<Snapshot>>,
    on_drift: Option<OnDrift>,
}

fn prediction_value(p: &Prediction) -> f64 {
    match p {
        Prediction::Value(v) => *v,
        Prediction::Embedding(_) => f64::NAN,
        Prediction::Class { probabilities, .. } => {
            probabilities.last().map_or(f64::NAN, |(_, v)| *v)
        }
    }
}

/// A frame (and predictions) as an Arrow table.
fn table(frame: &Frame, predictions: &[f64]) -> Table {
    let mut fields = Vec::new();
    let mut arrays: Vec<ArrayRef> = Vec::new();
    for (name, column) in frame.names.iter().zip(&frame.columns) {
        match column {
            ColumnData::Numeric(v) => {
                fields.push(Field::new(name, DataType::Float64, true));
                arrays.push(Arc::new(Float64Array::from(
                    v.iter()
                        .map(|x| (!x.is_nan()).then_some(*x))
                        .collect::<Vec<_>>(),
                )));
            }
            ColumnData::Text(v) => {
                fields.push(Field::new(name, DataType::Utf8, true));
                arrays.push(Arc::new(StringArray::from(v.clone())));
            }
        }
    }
    fields.push(Field::new(PREDICTION, DataType::Float64, true));
    arrays.push(Arc::new(Float64Array::from(predictions.to_vec())));
    let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)
        .expect("columns of equal length");
    Table::from_batch(batch)
}

impl Monitor {
    /// A monitor of `model` against its package's reference (the training rows of `kaizen
    /// train`, the latest training feature rows of a forecast), or `None` when the package has
    /// none (models packaged before references were saved).
    pub fn for_model(
        model: &ServedModel,
        window: usize,
        max_age: Option<std::time::Duration>,
        on_drift: Option<OnDrift>,
    ) -> Option<Monitor> {
        let file = model.package.meta.extra.get("reference")?.as_str()?;
        let path = model.package.dir.join(file);
        let reference = kaizen_data::read_parquet(&path).ok()?;
        let frame = Frame::from_table(&reference).ok()?;
        // The reference's predictions, so that prediction drift compares like with like.
        let predictions: Vec<f64> = model
            .score(&frame)
            .ok()?
            .iter()
            .map(prediction_value)
            .collect();
        let inputs: Vec<&str> = model.inputs().iter().map(|c| c.name.as_str()).collect();
        let mut kept = Frame::new(Vec::new());
        for (name, column) in frame.names.iter().zip(&frame.columns) {
            if inputs.contains(&name.as_str()) {
                kept.names.push(name.clone());
                kept.columns.push(column.clone());
            }
        }
        let reference = Dataset::from_table(path, table(&kept, &predictions));
        Some(Monitor {
            version: model.version.clone(),
            reference: Arc::new(reference),
            window: window.max(10),
            max_age,
            buffer: Mutex::new(None),
            snapshot: Arc::new(Mutex::new(Snapshot::default())),
            on_drift,
        })
    }

    /// Adds served rows; a full window is compared with the reference on a thread of its own.
    pub fn observe(&self, model: &Arc<ServedModel>, frame: &Frame, predictions: &[Prediction]) {
        let full = {
            let mut guard = self.buffer.lock().unwrap_or_else(|e| e.into_inner());
            let buffer = guard.get_or_insert_with(|| Buffer {
                started: std::time::Instant::now(),
                names: frame.names.clone(),
                columns: frame
                    .columns
                    .iter()
                    .map(|c| match c {
                        ColumnData::Numeric(_) => ColumnData::Numeric(Vec::new()),
                        ColumnData::Text(_) => ColumnData::Text(Vec::new()),
                    })
                    .collect(),
                predictions: Vec::new(),
            });
            if buffer.names != frame.names {
                return;
            }
            for (into, from) in buffer.columns.iter_mut().zip(&frame.columns) {
                match (into, from) {
                    (ColumnData::Numeric(a), ColumnData::Numeric(b)) => a.extend_from_slice(b),
                    (ColumnData::Text(a), ColumnData::Text(b)) => a.extend(b.iter().cloned()),
                    _ => return,
                }
            }
            buffer
                .predictions
                .extend(predictions.iter().map(prediction_value));
            let rows = buffer.predictions.len();
            let aged = self
                .max_age
                .is_some_and(|age| rows >= MIN_TIMED_ROWS && buffer.started.elapsed() >= age);
            if rows >= self.window || aged {
                guard.take()
            } else {
                None
            }
        };
        let Some(full) = full else { return };
        let reference = Arc::clone(&self.reference);
        let snapshot = Arc::clone(&self.snapshot);
        let on_drift = self.on_drift.clone();
        let model = Arc::clone(model);
        std::thread::spawn(move || {
            let frame = Frame {
                names: full.names,
                columns: full.columns,
            };
            let current = Dataset::from_table("window", table(&frame, &full.predictions));
            let report = match kaizen_drift::compare(&reference, &current, &DriftOptions::default())
            {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(error = %e, "drift monitoring failed for a window");
                    return;
                }
            };
            {
                let mut s = snapshot.lock().unwrap_or_else(|e| e.into_inner());
                s.windows += 1;
                s.drifted_windows += u64::from(report.dataset.drifted);
                s.share = report.dataset.share;
                s.drifted = report.dataset.drifted;
                s.columns = report
                    .columns
                    .iter()
                    .map(|c| (c.column.clone(), c.statistic, c.drifted))
                    .collect();
            }
            if report.dataset.drifted
                && let Some(callback) = on_drift
            {
                callback(&model, &report);
            }
        });
    }

    /// The gauges of the last window.
    pub fn render(&self, labels: &str) -> String {
        let s = self
            .snapshot
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let mut out = String::new();
        out.push_str("# HELP kaizen_drift_windows_total Windows of served rows compared with the reference.\n# TYPE kaizen_drift_windows_total counter\n");
        out.push_str(&format!("kaizen_drift_windows_total{{{labels}}} {}\nkaizen_drift_windows_drifted_total{{{labels}}} {}\n", s.windows, s.drifted_windows));
        out.push_str("# HELP kaizen_drift_share Share of drifted columns in the last window.\n# TYPE kaizen_drift_share gauge\n");
        out.push_str(&format!("kaizen_drift_share{{{labels}}} {}\n", s.share));
        out.push_str("# HELP kaizen_feature_drift_score The last window's drift statistic per column (prediction included).\n# TYPE kaizen_feature_drift_score gauge\n");
        for (column, statistic, drifted) in &s.columns {
            let column = column.replace('"', "'");
            out.push_str(&format!(
                "kaizen_feature_drift_score{{{labels},feature=\"{column}\"}} {statistic}\n"
            ));
            out.push_str(&format!(
                "kaizen_feature_drifted{{{labels},feature=\"{column}\"}} {}\n",
                u8::from(*drifted)
            ));
        }
        out
    }
}

/// Called once per served version when its live error falls behind what its test split
/// promised: `(model, live value, expected value)`.
pub type OnDegraded = Arc<dyn Fn(&ServedModel, f64, f64) + Send + Sync>;

/// The metric the live window is compared on: MAE for regression, accuracy otherwise, and the
/// model's value of it on its test split (from the package's metrics).
fn expected_metric(model: &ServedModel) -> Option<f64> {
    // Forecast packages have backtest metrics instead of a test split.
    let keys: &[&str] = match model.task() {
        kaizen_ml::Task::Regression => &["test_mae", "backtest_mae"],
        _ => &["test_accuracy"],
    };
    let metrics = &model.package.meta.metrics;
    keys.iter()
        .find_map(|k| metrics.get(*k).copied())
        .filter(|v| v.is_finite())
}

struct PerformanceState {
    version: String,
    regression: bool,
    expected: Option<f64>,
    window: std::collections::VecDeque<f64>,
    degraded: bool,
}

/// Performance drift: the feedback of the version being served, over a sliding window, against
/// the model's test metric. Degraded when the live MAE is more than `tolerance` (a share) above
/// the test MAE, or the live accuracy more than `tolerance` (points) below the test accuracy,
/// over at least `min_rows` rows with feedback.
pub struct PerformanceWatch {
    pub tolerance: f64,
    pub min_rows: usize,
    pub window: usize,
    on_degraded: Option<OnDegraded>,
    state: Mutex<PerformanceState>,
}

impl PerformanceWatch {
    pub fn new(tolerance: f64, on_degraded: Option<OnDegraded>) -> PerformanceWatch {
        PerformanceWatch {
            tolerance,
            min_rows: 100,
            window: 1000,
            on_degraded,
            state: Mutex::new(PerformanceState {
                version: String::new(),
                regression: true,
                expected: None,
                window: std::collections::VecDeque::new(),
                degraded: false,
            }),
        }
    }

    /// Scores (absolute errors, or 1/0 for right/wrong labels) of rows that `version` answered,
    /// while `model` is the version being served.
    pub fn observe(&self, model: &ServedModel, version: &str, scores: &[f64]) {
        let verdict = {
            let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
            if s.version != model.version {
                *s = PerformanceState {
                    version: model.version.clone(),
                    regression: model.task() == kaizen_ml::Task::Regression,
                    expected: expected_metric(model),
                    window: std::collections::VecDeque::new(),
                    degraded: false,
                };
            }
            if version != s.version {
                return;
            }
            for &score in scores {
                if s.window.len() >= self.window {
                    s.window.pop_front();
                }
                s.window.push_back(score);
            }
            let live = s.window.iter().sum::<f64>() / s.window.len().max(1) as f64;
            match s.expected {
                Some(expected) if !s.degraded && s.window.len() >= self.min_rows => {
                    let degraded = if s.regression {
                        live > expected * (1.0 + self.tolerance)
                    } else {
                        live < expected - self.tolerance
                    };
                    s.degraded = degraded;
                    degraded.then_some((live, expected))
                }
                _ => None,
            }
        };
        if let (Some((live, expected)), Some(callback)) = (verdict, &self.on_degraded) {
            callback(model, live, expected);
        }
    }

    /// Gauges: the live value, the expected one, and whether the version degraded.
    pub fn render(&self, labels: &str) -> String {
        let s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let metric = if s.regression { "mae" } else { "accuracy" };
        let mut out = format!(
            "# HELP kaizen_performance_expected The served version's {metric} on its test split.\n# TYPE kaizen_performance_expected gauge\n"
        );
        if let Some(expected) = s.expected {
            out.push_str(&format!(
                "kaizen_performance_expected{{{labels},metric=\"{metric}\"}} {expected}\n"
            ));
        }
        if !s.window.is_empty() {
            let live = s.window.iter().sum::<f64>() / s.window.len() as f64;
            out.push_str(&format!(
                "# HELP kaizen_performance_live The served version's {metric} over its last rows with feedback.\n# TYPE kaizen_performance_live gauge\nkaizen_performance_live{{{labels},metric=\"{metric}\"}} {live}\n"
            ));
        }
        out.push_str(&format!(
            "# HELP kaizen_performance_degraded 1 when the live {metric} fell behind the test split's by more than the tolerance.\n# TYPE kaizen_performance_degraded gauge\nkaizen_performance_degraded{{{labels}}} {}\n",
            u8::from(s.degraded)
        ));
        out
    }
}
