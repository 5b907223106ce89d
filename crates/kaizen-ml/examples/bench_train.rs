//! The kaizen side of `benches/train` (`make bench-train`): trains gradient-boosted trees on a
//! CSV, scores a test CSV and prints one JSON line (`train_seconds`, metrics); it can also write
//! the test predictions and the ONNX model, so the bench can compare onnxruntime with them.
//!
//! ```text
//! cargo build --release -p kaizen-ml --example bench_train
//! target/release/examples/bench_train --train train.csv --test test.csv --target target \
//!     --task binary --iterations 200 --learning-rate 0.1 --max-leaves 31 --nbins 255 \
//!     --min-leaf-weight 1 --l2 1 --threads 2 --predictions preds.json --onnx model.onnx
//! ```

use std::collections::HashMap;
use std::time::Instant;

use kaizen_data::{ReadOptions, Source, read};
use kaizen_ml::learner::{GbdtParams, GrowPolicy};
use kaizen_ml::metrics::{classification, regression};
use kaizen_ml::{ColumnData, Frame, LearnerSpec, Matrix, Task, fit};
use serde_json::json;

fn load(path: &str, target: &str) -> Result<(Matrix, Vec<f64>), String> {
    let table = read(&Source::path(path), &ReadOptions::default()).map_err(|e| e.to_string())?;
    let frame = Frame::from_table(&table).map_err(|e| e.to_string())?;
    let (features, y) = frame.split_off(target).map_err(|e| e.to_string())?;
    let ColumnData::Numeric(y) = y else {
        return Err(format!("{target} is not numeric"));
    };
    let mut columns = Vec::new();
    for (name, column) in features.names.iter().zip(&features.columns) {
        match column {
            ColumnData::Numeric(v) => columns.push(v.clone()),
            ColumnData::Text(_) => return Err(format!("column {name} is text")),
        }
    }
    Ok((Matrix::from_columns(features.names.clone(), columns), y))
}

fn run() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut options: HashMap<String, String> = HashMap::new();
    for pair in args.chunks(2) {
        let [key, value] = pair else {
            return Err(format!("{} has no value", pair[0]));
        };
        let key = key
            .strip_prefix("--")
            .ok_or_else(|| format!("unexpected argument {key}"))?;
        options.insert(key.to_string(), value.clone());
    }
    let required = |key: &str| {
        options
            .get(key)
            .cloned()
            .ok_or_else(|| format!("--{key} is required"))
    };
    let number = |key: &str, default: f64| -> Result<f64, String> {
        options.get(key).map_or(Ok(default), |v| {
            v.parse().map_err(|_| format!("--{key}: not a number: {v}"))
        })
    };
    let target = required("target")?;
    let task = match required("task")?.as_str() {
        "binary" => Task::Binary,
        "regression" => Task::Regression,
        other => return Err(format!("--task binary|regression, not {other}")),
    };
    let params = GbdtParams {
        iterations: number("iterations", 200.0)? as usize,
        learning_rate: number("learning-rate", 0.1)?,
        max_depth: number("max-depth", 64.0)? as usize,
        max_leaves: number("max-leaves", 31.0)? as usize,
        min_leaf_weight: number("min-leaf-weight", 1.0)?,
        l2: number("l2", 1.0)?,
        nbins: number("nbins", 255.0)? as u16,
        grow_policy: match options.get("grow-policy").map(String::as_str) {
            None | Some("loss_guide") => GrowPolicy::LossGuide,
            Some("depth_wise") => GrowPolicy::DepthWise,
            Some(other) => return Err(format!("--grow-policy loss_guide|depth_wise, not {other}")),
        },
        threads: options.get("threads").map(|v| v.parse().unwrap_or(0)),
        ..GbdtParams::default()
    };
    let (x, y) = load(&required("train")?, &target)?;
    let (test_x, test_y) = load(&required("test")?, &target)?;

    let started = Instant::now();
    let model = fit(&LearnerSpec::Gbdt(params), task, &x, &y, None).map_err(|e| e.to_string())?;
    let train_seconds = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let predictions = model.predict(&test_x);
    let predict_seconds = started.elapsed().as_secs_f64();

    let metrics = match task {
        Task::Regression => json!({"rmse": regression(&test_y, &predictions).rmse}),
        _ => {
            let m = classification(&test_y, &model.predict_proba(&test_x));
            json!({"accuracy": m.accuracy, "auc": m.auc, "log_loss": m.log_loss})
        }
    };
    if let Some(path) = options.get("predictions") {
        std::fs::write(path, json!(predictions).to_string()).map_err(|e| format!("{path}: {e}"))?;
    }
    if let Some(path) = options.get("onnx") {
        let bytes = model.to_onnx().map_err(|e| e.to_string())?;
        std::fs::write(path, bytes).map_err(|e| format!("{path}: {e}"))?;
    }
    println!(
        "{}",
        json!({
            "train_seconds": train_seconds,
            "predict_seconds": predict_seconds,
            "rows": x.rows,
            "features": x.cols(),
            "trees": match &model.params {
                kaizen_ml::learner::ModelParams::Trees { ensembles } => ensembles[0].trees.len(),
                _ => 0,
            },
            "metrics": metrics,
        })
    );
    Ok(())
}

fn main() {
    if let Err(message) = run() {
        eprintln!("bench_train: {message}");
        std::process::exit(1);
    }
}
