//! ONNX fixtures: one model per kind the export supports, fitted on seeded data with missing
//! values. With `KAIZEN_ONNX_CHECK_DIR` set, writes `{kind}.onnx`, `{kind}.input.json` (the rows,
//! NaN as null) and `{kind}.native.json` (kaizen's own predictions) there, for
//! `tests/e2e/test_onnx.py` to score with onnxruntime; without it, checks that every kind exports.

use std::path::PathBuf;

use kaizen_ml::learner::{GbdtParams, GrowPolicy};
use kaizen_ml::linear::{LinearParams, LogisticParams, PenaltyParams};
use kaizen_ml::preprocess::PreprocessSpec;
use kaizen_ml::{
    ColumnData, FittedModel, Frame, LearnerSpec, Matrix, Preprocessor, Task, fit, fit_pipeline,
};
use serde_json::json;

/// SplitMix64, for seeded data without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    }
}

const NAMES: [&str; 4] = ["x0", "x1", "x2", "x3"];

struct Data {
    /// With NaN in x0 and x2 (about 8% each).
    gappy: Matrix,
    /// The same without NaN.
    clean: Matrix,
    regression: Vec<f64>,
    binary: Vec<f64>,
    multiclass: Vec<f64>,
}

fn data(rows: usize) -> Data {
    let mut rng = Rng(7);
    let mut columns: Vec<Vec<f64>> = (0..4).map(|_| Vec::with_capacity(rows)).collect();
    let (mut regression, mut binary, mut multiclass) = (vec![], vec![], vec![]);
    for _ in 0..rows {
        let x: Vec<f64> = (0..4).map(|j| rng.next() * 10.0 - 5.0 + j as f64).collect();
        let noise = rng.next() - 0.5;
        let score = 0.8 * x[0] - 0.5 * x[1] + 0.3 * x[2] * x[3].signum() + noise;
        regression.push(score + 3.0);
        binary.push(f64::from(score > 0.0));
        multiclass.push(if score < -1.5 {
            0.0
        } else if score < 1.5 {
            1.0
        } else {
            2.0
        });
        for (c, v) in columns.iter_mut().zip(x) {
            c.push(v);
        }
    }
    let names: Vec<String> = NAMES.iter().map(|s| s.to_string()).collect();
    let clean = Matrix::from_columns(names.clone(), columns.clone());
    for j in [0, 2] {
        for v in columns[j].iter_mut() {
            if rng.next() < 0.08 {
                *v = f64::NAN;
            }
        }
    }
    Data {
        gappy: Matrix::from_columns(names, columns),
        clean,
        regression,
        binary,
        multiclass,
    }
}

fn frame(x: &Matrix) -> Frame {
    Frame::new(
        (0..x.cols())
            .map(|j| {
                (
                    x.names[j].clone(),
                    ColumnData::Numeric(x.column(j).to_vec()),
                )
            })
            .collect(),
    )
}

fn numeric_spec() -> PreprocessSpec {
    serde_json::from_value(json!({"columns": [
        {"name": "x0", "encoding": "numeric", "impute": "median", "scale": true},
        {"name": "x1", "encoding": "numeric", "scale": true},
        {"name": "x2", "encoding": "numeric", "impute": {"constant": -1.0}},
        {"name": "x3", "encoding": "numeric"}
    ]}))
    .unwrap()
}

fn gbdt() -> LearnerSpec {
    LearnerSpec::Gbdt(GbdtParams {
        iterations: 40,
        max_depth: 5,
        grow_policy: GrowPolicy::LossGuide,
        max_leaves: 15,
        ..GbdtParams::default()
    })
}

/// A fitted model, the preprocessor in front of it if any, and the rows to score.
struct Fixture {
    kind: &'static str,
    model: FittedModel,
    preprocessor: Option<Preprocessor>,
    input: Matrix,
}

fn fixtures() -> Vec<Fixture> {
    let d = data(600);
    let plain = |kind, spec: LearnerSpec, task, x: &Matrix, y: &[f64]| Fixture {
        kind,
        model: fit(&spec, task, x, y, None).unwrap(),
        preprocessor: None,
        input: x.clone(),
    };
    let piped = |kind, spec: LearnerSpec, task, y: &[f64]| {
        let pipeline =
            fit_pipeline(&spec, &numeric_spec(), task, &frame(&d.gappy), y, None).unwrap();
        Fixture {
            kind,
            model: pipeline.model,
            preprocessor: Some(pipeline.preprocessor),
            input: d.gappy.clone(),
        }
    };
    let multiclass = Task::Multiclass { classes: 3 };
    vec![
        plain(
            "linear",
            LearnerSpec::Linear(LinearParams::default()),
            Task::Regression,
            &d.clean,
            &d.regression,
        ),
        piped(
            "ridge_preprocessed",
            LearnerSpec::Ridge(PenaltyParams::default()),
            Task::Regression,
            &d.regression,
        ),
        piped(
            "logistic_binary_preprocessed",
            LearnerSpec::Logistic(LogisticParams::default()),
            Task::Binary,
            &d.binary,
        ),
        plain(
            "logistic_multiclass",
            LearnerSpec::Logistic(LogisticParams {
                max_iterations: 300,
                ..LogisticParams::default()
            }),
            multiclass,
            &d.clean,
            &d.multiclass,
        ),
        plain(
            "gbdt_regression",
            gbdt(),
            Task::Regression,
            &d.gappy,
            &d.regression,
        ),
        plain("gbdt_binary", gbdt(), Task::Binary, &d.gappy, &d.binary),
        plain(
            "gbdt_multiclass",
            gbdt(),
            multiclass,
            &d.gappy,
            &d.multiclass,
        ),
    ]
}

fn native(fixture: &Fixture) -> serde_json::Value {
    let x = match &fixture.preprocessor {
        Some(p) => p.transform(&frame(&fixture.input)).unwrap(),
        None => fixture.input.clone(),
    };
    match fixture.model.task {
        Task::Regression => json!({"task": "regression", "values": fixture.model.predict(&x)}),
        _ => json!({"task": "classification", "probabilities": fixture.model.predict_proba(&x)}),
    }
}

#[test]
fn every_kind_exports_and_writes_fixtures_on_request() {
    let out = std::env::var_os("KAIZEN_ONNX_CHECK_DIR").map(PathBuf::from);
    for fixture in fixtures() {
        let bytes = fixture
            .model
            .to_onnx_with(fixture.preprocessor.as_ref())
            .unwrap();
        assert!(bytes.len() > 100, "{}: {} bytes", fixture.kind, bytes.len());
        let Some(dir) = &out else { continue };
        std::fs::create_dir_all(dir).unwrap();
        let rows: Vec<Vec<f64>> = (0..fixture.input.rows)
            .map(|i| fixture.input.row(i))
            .collect();
        let input = json!({"columns": fixture.input.names, "rows": rows});
        std::fs::write(dir.join(format!("{}.onnx", fixture.kind)), &bytes).unwrap();
        std::fs::write(
            dir.join(format!("{}.input.json", fixture.kind)),
            input.to_string(),
        )
        .unwrap();
        std::fs::write(
            dir.join(format!("{}.native.json", fixture.kind)),
            native(&fixture).to_string(),
        )
        .unwrap();
    }
}
