//! The one-command tabular model (`kaizen train`): a table split into train, validation and test
//! parts, preprocessing chosen per column and fitted on the train part, a hyperparameter search
//! scored on the validation part (nested runs), the best model refit the same way, metrics per
//! part with their charts, the package (with its fitted preprocessing and class labels), the
//! registered version and the gate on the test part.
//!
//! The test part is used once: the search and early stopping see only the validation part.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;

use kaizen_core::{Metric, Param, now_millis};
use kaizen_data::{Fractions, SplitSpec, Table};
use kaizen_ml::learner::GbdtParams;
use kaizen_ml::linear::{LinearParams, LogisticParams, PenaltyParams, TextLinearParams};
use kaizen_ml::metrics::{classification, confusion_svg, regression, residuals_svg};
use kaizen_ml::preprocess::{ColumnSpec, Encoding, Impute};
use kaizen_ml::{
    ColumnData, FittedModel, Frame, LearnerSpec, Matrix, PreprocessSpec, Preprocessor, Task, fit,
};
use kaizen_tracking::{Actor, Services};
use serde::Serialize;
use serde_json::{Value, json};

use crate::error::{Result, TrainError};
use crate::forecast::{Progress, put_artifact};
use crate::gate::{GateDecision, GateRule, HeldOut, gate_with};
use crate::package::{Lineage, Package, PackageMeta, write_package};
use crate::register::register_package;
use crate::runs::{self, slug};
use crate::search::{SearchSpace, Strategy, search};

/// A target with at most this many distinct integer values is taken for classes.
pub const MAX_AUTO_CLASSES: usize = 10;

/// Everything `kaizen train` is asked.
#[derive(Debug, Clone)]
pub struct TrainJob {
    /// The data file (CSV or Parquet), for the run's params and the lineage.
    pub data: PathBuf,
    /// The column to predict.
    pub target: String,
    /// `None`: from the target (text, or at most 10 distinct integers, is classification, binary
    /// with 2 classes; anything else regression). A `Multiclass` task's class count is taken from
    /// the data.
    pub task: Option<Task>,
    pub learner: LearnerSpec,
    /// Values to try per learner setting; empty: no search, the learner as given.
    pub space: SearchSpace,
    pub strategy: Strategy,
    pub max_parallel: usize,
    /// Text columns vectorized as words (TF-IDF, or the text_linear learner's `text`) instead of
    /// one-hot categories.
    pub text_columns: Vec<String>,
    /// A column whose values are segments the gate checks one by one.
    pub segment: Option<String>,
    pub valid_fraction: f64,
    pub test_fraction: f64,
    pub seed: u64,
    pub model_name: String,
    /// The alias the gate moves (`champion`); `None` registers without gating.
    pub alias: Option<String>,
    /// `None`: the task's default rule (see [`default_rule`]).
    pub rule: Option<GateRule>,
    pub experiment: String,
    /// The step run to nest under, when a pipeline runs the job.
    pub parent_run_id: Option<String>,
    /// Lineage: data set names (`name@version`); empty: the data file.
    pub datasets: Vec<String>,
    pub user: String,
    pub repo_dir: PathBuf,
}

impl TrainJob {
    /// The defaults of `kaizen train`: gradient-boosted trees with early stopping, no search, a
    /// 60/20/20 split seeded with 42, the `champion` alias under the task's default rule.
    pub fn new(data: PathBuf, target: impl Into<String>) -> TrainJob {
        let target = target.into();
        let stem = data
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "model".into());
        TrainJob {
            model_name: format!("{}-{}", slug(&stem), slug(&target)),
            data,
            target,
            task: None,
            learner: default_learner("gbdt").expect("gbdt is a learner"),
            space: SearchSpace::default(),
            strategy: Strategy::Grid,
            max_parallel: 2,
            text_columns: Vec::new(),
            segment: None,
            valid_fraction: 0.2,
            test_fraction: 0.2,
            seed: 42,
            alias: Some("champion".into()),
            rule: None,
            experiment: "train".into(),
            parent_run_id: None,
            datasets: Vec::new(),
            user: "kaizen".into(),
            repo_dir: PathBuf::from("."),
        }
    }
}

/// The learners `kaizen train --learner` takes.
pub const LEARNERS: [&str; 6] = [
    "gbdt",
    "linear",
    "ridge",
    "lasso",
    "logistic",
    "text_linear",
];

/// The training table saved in a package, the reference of drift monitoring.
pub const REFERENCE_FILE: &str = "reference.parquet";

/// A learner by name with `kaizen train`'s defaults: trees with 500 rounds at 0.05 and early
/// stopping after 30 rounds without improvement on the validation part, logistic regression with
/// up to 500 iterations, the others as their defaults.
pub fn default_learner(name: &str) -> Result<LearnerSpec> {
    Ok(match name {
        "gbdt" => LearnerSpec::Gbdt(GbdtParams {
            iterations: 500,
            learning_rate: 0.05,
            max_depth: 4,
            early_stopping_rounds: Some(30),
            seed: 42,
            ..GbdtParams::default()
        }),
        "linear" => LearnerSpec::Linear(LinearParams::default()),
        "ridge" => LearnerSpec::Ridge(PenaltyParams::default()),
        "lasso" => LearnerSpec::Lasso(PenaltyParams::default()),
        "logistic" => LearnerSpec::Logistic(LogisticParams {
            max_iterations: 500,
            ..LogisticParams::default()
        }),
        "text_linear" => LearnerSpec::TextLinear(TextLinearParams::default()),
        other => {
            return Err(TrainError::invalid(format!(
                "unknown learner `{other}` (learners: {})",
                LEARNERS.join(", ")
            )));
        }
    })
}

/// The gate's rule when none is given: accuracy (higher is better) for classification, RMSE for
/// regression, 1% better overall; segments are checked (5% worse at most) only when there are
/// segments.
pub fn default_rule(task: Task, segments: bool) -> GateRule {
    let (metric, lower_is_better) = match task {
        Task::Regression => ("rmse", true),
        _ => ("accuracy", false),
    };
    GateRule {
        metric: metric.into(),
        lower_is_better,
        min_improvement: 0.01,
        max_segment_regression: segments.then_some(0.05),
    }
}

/// Whether `learner` can learn `task`, before any run starts.
fn check_learner(learner: &LearnerSpec, task: Task) -> Result<()> {
    let fits = match learner {
        LearnerSpec::Linear(_) | LearnerSpec::Ridge(_) | LearnerSpec::Lasso(_) => {
            task == Task::Regression
        }
        LearnerSpec::Logistic(_) => task != Task::Regression,
        LearnerSpec::Gbdt(_) | LearnerSpec::TextLinear(_) => true,
    };
    if fits {
        return Ok(());
    }
    let instead = if task == Task::Regression {
        "gbdt, linear, ridge, lasso or text_linear"
    } else {
        "gbdt, logistic or text_linear"
    };
    Err(TrainError::invalid(format!(
        "the learner {} does not do {} tasks; use {instead}",
        learner.name(),
        task_name(task)
    )))
}

/// The task's name as printed and logged: `regression`, `binary` or `multiclass`.
pub fn task_name(task: Task) -> &'static str {
    match task {
        Task::Regression => "regression",
        Task::Binary => "binary",
        Task::Multiclass { .. } => "multiclass",
    }
}

/// Metrics by split (`train`, `valid`, `test`), then by name.
pub type SplitMetrics = BTreeMap<String, BTreeMap<String, f64>>;

/// What the job did, in the shape `kaizen train --json` prints.
#[derive(Debug, Clone, Serialize)]
pub struct TrainSummary {
    pub task: String,
    pub target: String,
    /// The class labels, class `i` being `labels[i]` (classification only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub labels: Option<Vec<String>>,
    pub learner: String,
    pub features: usize,
    /// Rows per split.
    pub rows: BTreeMap<String, usize>,
    pub metrics: SplitMetrics,
    pub model_name: String,
    pub model_version: String,
    pub run_id: String,
    pub best_params: Value,
    pub trials: usize,
    pub gate: Option<GateDecision>,
    pub champion_version: Option<String>,
}

/// How target values become labels.
#[derive(Debug, Clone, PartialEq)]
enum Target {
    Values,
    /// Class `i` is `labels[i]`.
    Classes(Vec<String>),
}

/// A class label's text: strings as they are, integers without `.0`.
fn label_of(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

/// The task and the labels of the target column `name`.
fn detect(name: &str, column: &ColumnData, asked: Option<Task>) -> Result<(Task, Target)> {
    let labels: Vec<String> = match column {
        ColumnData::Text(values) => {
            if asked == Some(Task::Regression) {
                return Err(TrainError::invalid(format!(
                    "the target column `{name}` is text; a regression task needs a numeric target \
                     (or use --task binary or multiclass)"
                )));
            }
            let set: BTreeSet<&str> = values.iter().flatten().map(String::as_str).collect();
            set.into_iter().map(str::to_string).collect()
        }
        ColumnData::Numeric(values) => {
            let mut distinct: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
            if distinct.is_empty() {
                return Err(TrainError::invalid(format!(
                    "the target column `{name}` has no values"
                )));
            }
            distinct.sort_by(f64::total_cmp);
            distinct.dedup();
            let classes =
                distinct.len() <= MAX_AUTO_CLASSES && distinct.iter().all(|v| v.fract() == 0.0);
            match asked {
                Some(Task::Regression) => return Ok((Task::Regression, Target::Values)),
                None if !classes => return Ok((Task::Regression, Target::Values)),
                _ => distinct.into_iter().map(label_of).collect(),
            }
        }
    };
    let n = labels.len();
    if n < 2 {
        return Err(TrainError::invalid(format!(
            "the target column `{name}` has {n} class(es) ({}); classification needs 2 or more",
            labels.join(", ")
        )));
    }
    let task = match asked {
        Some(Task::Binary) if n != 2 => {
            return Err(TrainError::invalid(format!(
                "the target column `{name}` has {n} classes, not 2, for a binary task; use --task multiclass"
            )));
        }
        Some(Task::Multiclass { .. }) => Task::Multiclass { classes: n },
        _ if n == 2 => Task::Binary,
        _ => Task::Multiclass { classes: n },
    };
    Ok((task, Target::Classes(labels)))
}

/// Target values as numbers to learn: values, or class indices; missing (or unknown) is NaN.
fn encode(column: &ColumnData, target: &Target) -> Vec<f64> {
    match target {
        Target::Values => match column {
            ColumnData::Numeric(v) => v.clone(),
            ColumnData::Text(v) => vec![f64::NAN; v.len()],
        },
        Target::Classes(labels) => {
            let index: BTreeMap<&str, usize> = labels
                .iter()
                .enumerate()
                .map(|(i, l)| (l.as_str(), i))
                .collect();
            let class = |label: Option<String>| {
                label
                    .and_then(|l| index.get(l.as_str()).copied())
                    .map_or(f64::NAN, |i| i as f64)
            };
            match column {
                ColumnData::Numeric(v) => v
                    .iter()
                    .map(|&v| class(v.is_finite().then(|| label_of(v))))
                    .collect(),
                ColumnData::Text(v) => v.iter().map(|l| class(l.clone())).collect(),
            }
        }
    }
}

/// One split: the features, and the target as numbers.
struct Part {
    frame: Frame,
    y: Vec<f64>,
}

fn part(name: &str, table: &Table, job: &TrainJob, target: &Target) -> Result<Part> {
    let (frame, column) = Frame::from_table(table)?.split_off(&job.target)?;
    let y = encode(&column, target);
    let keep: Vec<usize> = (0..y.len()).filter(|&i| y[i].is_finite()).collect();
    if keep.is_empty() {
        return Err(TrainError::invalid(format!(
            "the {name} part has no rows with a value of `{}`; the data has too few rows",
            job.target
        )));
    }
    if keep.len() == y.len() {
        return Ok(Part { frame, y });
    }
    Ok(Part {
        frame: frame.take_rows(&keep),
        y: keep.iter().map(|&i| y[i]).collect(),
    })
}

/// The preprocessing of every input column: numbers imputed with the mean (and standardized for
/// the linear learners), `--text` columns as words, other text as one-hot categories.
fn preprocess_spec(frame: &Frame, job: &TrainJob) -> Result<PreprocessSpec> {
    for name in job.text_columns.iter().chain(&job.segment) {
        if frame.column(name).is_none() {
            return Err(TrainError::invalid(format!(
                "no column `{name}` (columns: {})",
                frame.names.join(", ")
            )));
        }
    }
    let scale = !matches!(job.learner, LearnerSpec::Gbdt(_));
    let (words, all_text) = match &job.learner {
        LearnerSpec::TextLinear(p) => (p.text.clone(), job.text_columns.is_empty()),
        _ => (
            Encoding::Tfidf {
                min_df: 1,
                max_features: 1000,
            },
            false,
        ),
    };
    let mut columns = Vec::new();
    for (name, data) in frame.names.iter().zip(&frame.columns) {
        let as_text = all_text || job.text_columns.contains(name);
        let encoding = match data {
            ColumnData::Numeric(_) if job.text_columns.contains(name) => {
                return Err(TrainError::invalid(format!(
                    "--text column `{name}` is numeric, not text"
                )));
            }
            ColumnData::Numeric(_) => Encoding::Numeric {
                impute: Impute::Mean,
                scale,
            },
            ColumnData::Text(_) if as_text => words.clone(),
            ColumnData::Text(_) => Encoding::OneHot { max_categories: 50 },
        };
        columns.push(ColumnSpec {
            name: name.clone(),
            encoding,
        });
    }
    if columns.is_empty() {
        return Err(TrainError::invalid(format!(
            "the data has no column but the target `{}`",
            job.target
        )));
    }
    Ok(PreprocessSpec { columns })
}

/// The preprocessed splits the trials share.
struct Prepared {
    task: Task,
    train: (Matrix, Vec<f64>),
    valid: (Matrix, Vec<f64>),
    test: (Matrix, Vec<f64>),
}

/// Fits `spec` on the train part (early stopping on the validation part).
fn fit_on(data: &Prepared, spec: &LearnerSpec) -> Result<FittedModel> {
    Ok(fit(
        spec,
        data.task,
        &data.train.0,
        &data.train.1,
        Some((&data.valid.0, &data.valid.1)),
    )?)
}

/// The metrics of `model` on `x`/`y`, by name.
fn score(model: &FittedModel, x: &Matrix, y: &[f64]) -> BTreeMap<String, f64> {
    let pairs = match model.task {
        Task::Regression => regression(y, &model.predict(x)).to_pairs(),
        _ => classification(y, &model.predict_proba(x)).to_pairs(),
    };
    pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

/// Reads the data, splits it and runs the whole job, tracked as one run (nested under
/// `parent_run_id` when set).
pub async fn run_train(
    services: &Services,
    job: &TrainJob,
    table: &Table,
    progress: &dyn Progress,
) -> Result<TrainSummary> {
    if !(job.valid_fraction > 0.0 && job.test_fraction > 0.0)
        || job.valid_fraction + job.test_fraction >= 1.0
    {
        return Err(TrainError::invalid(format!(
            "the validation ({}) and test ({}) fractions must be above 0 and leave rows to train on",
            job.valid_fraction, job.test_fraction
        )));
    }
    let whole = Frame::from_table(table)?;
    let (_, column) = whole.split_off(&job.target)?;
    let (task, target) = detect(&job.target, &column, job.task)?;
    drop(whole);
    check_learner(&job.learner, task)?;

    let fractions = Fractions::new([
        ("train", 1.0 - job.valid_fraction - job.test_fraction),
        ("valid", job.valid_fraction),
        ("test", job.test_fraction),
    ]);
    let spec = match task {
        Task::Regression => SplitSpec::Random {
            fractions,
            seed: job.seed,
        },
        _ => SplitSpec::Stratified {
            column: job.target.clone(),
            fractions,
            seed: job.seed,
        },
    };
    let parts = kaizen_data::split(table, &spec).map_err(kaizen_ml::MlError::from)?;
    let train = part("train", &parts[0].1, job, &target)?;
    let valid = part("validation", &parts[1].1, job, &target)?;
    let test = part("test", &parts[2].1, job, &target)?;

    let preprocess = preprocess_spec(&train.frame, job)?;
    let preprocessor = Preprocessor::fit(&train.frame, &preprocess)?;
    let prepared = Arc::new(Prepared {
        task,
        train: (preprocessor.transform(&train.frame)?, train.y),
        valid: (preprocessor.transform(&valid.frame)?, valid.y),
        test: (preprocessor.transform(&test.frame)?, test.y.clone()),
    });
    progress.step(&format!(
        "data: {} rows ({} train, {} validation, {} test), {} task on `{}`{}, {} features",
        table.num_rows(),
        prepared.train.1.len(),
        prepared.valid.1.len(),
        prepared.test.1.len(),
        task_name(task),
        job.target,
        match &target {
            Target::Classes(labels) => format!(" (classes: {})", labels.join(", ")),
            Target::Values => String::new(),
        },
        preprocessor.features.len()
    ));

    let run_id = runs::start(
        services,
        runs::JobRun {
            experiment: &job.experiment,
            user: &job.user,
            parent_run_id: job.parent_run_id.as_deref(),
            source: "kaizen train",
            task: "train",
            run_name: format!("train-{}", slug(&job.target)),
        },
    )
    .await?;
    let outcome = run_tracked(
        services,
        job,
        &run_id,
        &target,
        &preprocessor,
        &prepared,
        &test.frame,
        &parts[0].1,
        progress,
    )
    .await;
    runs::finish(services, &run_id, outcome).await
}

#[allow(clippy::too_many_arguments)]
async fn run_tracked(
    services: &Services,
    job: &TrainJob,
    run_id: &str,
    target: &Target,
    preprocessor: &Preprocessor,
    data: &Arc<Prepared>,
    test_frame: &Frame,
    reference: &kaizen_data::Table,
    progress: &dyn Progress,
) -> Result<TrainSummary> {
    let task = data.task;
    let run = services.tracking.get_run(run_id).await?;
    let rule = job
        .rule
        .clone()
        .unwrap_or_else(|| default_rule(task, job.segment.is_some()));
    let learner_json = serde_json::to_value(&job.learner).unwrap_or(Value::Null);
    let params = vec![
        Param::new("data", job.data.display().to_string()),
        Param::new("target_column", job.target.clone()),
        Param::new("task", task_name(task)),
        Param::new("learner", job.learner.name()),
        Param::new("learner_params", compact(&learner_json)),
        Param::new("text_columns", job.text_columns.join(",")),
        Param::new("valid_fraction", job.valid_fraction.to_string()),
        Param::new("test_fraction", job.test_fraction.to_string()),
        Param::new("seed", job.seed.to_string()),
        Param::new("features", preprocessor.features.len().to_string()),
        Param::new("rows_train", data.train.1.len().to_string()),
        Param::new("rows_valid", data.valid.1.len().to_string()),
        Param::new("rows_test", data.test.1.len().to_string()),
    ];
    services
        .tracking
        .log_batch(run_id, &[], &params, &[])
        .await?;

    // The search: every trial trained on the train part and scored on the validation part.
    let (best, trials) = if job.space.0.is_empty() {
        (job.learner.clone(), 0)
    } else {
        progress.step(&format!(
            "search: {} combination(s) of {}, scored by validation {}",
            job.space.size(),
            job.space.0.keys().cloned().collect::<Vec<_>>().join(", "),
            rule.metric
        ));
        let objective_data = Arc::clone(data);
        let result = search(
            services,
            &run.info.experiment_id,
            run_id,
            &job.learner,
            &job.space,
            &job.strategy,
            job.max_parallel,
            &rule.metric,
            rule.lower_is_better,
            move |spec| {
                let model = fit_on(&objective_data, spec).map_err(|e| e.to_string())?;
                let mut metrics = score(&model, &objective_data.valid.0, &objective_data.valid.1);
                if let Some(best) = model.best_iteration {
                    metrics.insert("best_iteration".into(), best as f64);
                }
                Ok(metrics)
            },
        )
        .await?;
        progress.step(&format!(
            "search: best validation {} {:.4} with {}",
            rule.metric,
            result
                .best_metrics
                .get(&rule.metric)
                .copied()
                .unwrap_or(f64::NAN),
            compact(&serde_json::to_value(&result.best).unwrap_or(Value::Null))
        ));
        (result.best, result.trials.len())
    };

    // The best refit as its trial was: on the train part, early stopping on the validation part.
    let fit_data = Arc::clone(data);
    let spec = best.clone();
    let model = tokio::task::spawn_blocking(move || fit_on(&fit_data, &spec))
        .await
        .map_err(|e| TrainError::invalid(format!("training stopped: {e}")))??;
    let mut best_params = serde_json::to_value(&best).unwrap_or(Value::Null);
    if let (Some(rounds), Value::Object(map)) = (model.best_iteration, &mut best_params) {
        map.insert("best_iteration".into(), json!(rounds));
    }

    let mut metrics = SplitMetrics::new();
    for (split, (x, y)) in [
        ("train", &data.train),
        ("valid", &data.valid),
        ("test", &data.test),
    ] {
        metrics.insert(split.to_string(), score(&model, x, y));
    }
    let headline = match task {
        Task::Regression => "rmse",
        _ => "accuracy",
    };
    progress.step(&format!(
        "{}: {headline} train {:.4}, validation {:.4}, test {:.4}",
        model.learner,
        metrics["train"].get(headline).copied().unwrap_or(f64::NAN),
        metrics["valid"].get(headline).copied().unwrap_or(f64::NAN),
        metrics["test"].get(headline).copied().unwrap_or(f64::NAN),
    ));
    log_metrics(services, run_id, &metrics).await?;

    // The charts and the report, on the test part.
    let labels = match target {
        Target::Classes(labels) => Some(labels.clone()),
        Target::Values => None,
    };
    let (x_test, y_test) = &data.test;
    let mut report = json!({ "task": task_name(task), "metrics": metrics });
    match task {
        Task::Regression => {
            let svg = residuals_svg(y_test, &model.predict(x_test));
            put_artifact(
                services,
                &run.info.artifact_uri,
                "residuals.svg",
                svg.into_bytes(),
            )
            .await?;
        }
        _ => {
            let m = classification(y_test, &model.predict_proba(x_test));
            let svg = confusion_svg(&m.confusion, labels.as_deref().unwrap_or_default());
            put_artifact(
                services,
                &run.info.artifact_uri,
                "confusion.svg",
                svg.into_bytes(),
            )
            .await?;
            report["labels"] = json!(labels);
            report["test_confusion"] = json!(m.confusion);
        }
    }
    let bytes =
        serde_json::to_vec_pretty(&report).map_err(|e| TrainError::invalid(e.to_string()))?;
    put_artifact(services, &run.info.artifact_uri, "metrics.json", bytes).await?;

    // Package and register.
    let package_dir = tempfile::tempdir().map_err(|e| TrainError::io(std::env::temp_dir(), e))?;
    let datasets = if job.datasets.is_empty() {
        vec![job.data.display().to_string()]
    } else {
        job.datasets.clone()
    };
    let mut meta = PackageMeta::new(
        &model,
        Lineage::current(run_id, &datasets, None, &job.repo_dir),
    );
    meta.metrics = ["valid", "test"]
        .iter()
        .flat_map(|split| {
            metrics[*split]
                .iter()
                .map(move |(k, v)| (format!("{split}_{k}"), *v))
        })
        .collect();
    meta.extra = json!({
        "target": job.target,
        "preprocessor": preprocessor,
        "labels": labels,
        // The training rows, for drift monitoring of what the model is served.
        "reference": REFERENCE_FILE,
    });
    write_package(package_dir.path(), &model, meta, x_test)?;
    let reference_path = package_dir.path().join(REFERENCE_FILE);
    kaizen_data::write_parquet(reference, &reference_path).map_err(kaizen_ml::MlError::from)?;
    let actor = Actor {
        user: Some(job.user.clone()),
        reason: Some("kaizen train".into()),
    };
    let version = register_package(
        services,
        run_id,
        package_dir.path(),
        &job.model_name,
        &actor,
    )
    .await?;
    let model_version = version.version.to_string();
    progress.step(&format!(
        "registered: models:/{}/{}",
        job.model_name, model_version
    ));

    // The gate: the challenger and the champion on the test part.
    let mut decision = None;
    let mut champion_version = None;
    if let Some(alias) = &job.alias {
        let segments = match &job.segment {
            Some(name) => Some(segment_labels(test_frame, name)?),
            None => None,
        };
        let heldout = HeldOut {
            x: x_test.clone(),
            y: y_test.clone(),
            segments: segments.clone(),
        };
        let ours = (preprocessor.clone(), labels.clone());
        let frame = test_frame.clone();
        let y_ours = y_test.clone();
        let champion_rows = move |champion: &Package| -> Result<Option<HeldOut>> {
            champion_heldout(champion, &ours, &frame, &y_ours, &segments)
        };
        let d = gate_with(
            services,
            &job.model_name,
            &model_version,
            alias,
            &rule,
            &heldout,
            &actor,
            &champion_rows,
        )
        .await?;
        progress.step(&format!("gate: {}", d.summary()));
        champion_version = Some(d.holder().to_string());
        decision = Some(d);
    }

    Ok(TrainSummary {
        task: task_name(task).to_string(),
        target: job.target.clone(),
        labels,
        learner: model.learner.clone(),
        features: preprocessor.features.len(),
        rows: [
            ("train", data.train.1.len()),
            ("valid", data.valid.1.len()),
            ("test", data.test.1.len()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect(),
        metrics,
        model_name: job.model_name.clone(),
        model_version,
        run_id: run_id.to_string(),
        best_params,
        trials,
        gate: decision,
        champion_version,
    })
}

/// The segment of every row: the column's values as text (missing: empty).
fn segment_labels(frame: &Frame, name: &str) -> Result<Vec<String>> {
    let column = frame.column(name).ok_or_else(|| {
        TrainError::invalid(format!(
            "no segment column `{name}` (columns: {})",
            frame.names.join(", ")
        ))
    })?;
    Ok(match column {
        ColumnData::Text(v) => v.iter().map(|s| s.clone().unwrap_or_default()).collect(),
        ColumnData::Numeric(v) => v
            .iter()
            .map(|&v| {
                if v.is_nan() {
                    String::new()
                } else {
                    label_of(v)
                }
            })
            .collect(),
    })
}

/// The test rows as the champion sees them, when it was trained with another preprocessing or
/// other class labels than the challenger (`None`: the challenger's rows do).
fn champion_heldout(
    champion: &Package,
    ours: &(Preprocessor, Option<Vec<String>>),
    frame: &Frame,
    y: &[f64],
    segments: &Option<Vec<String>>,
) -> Result<Option<HeldOut>> {
    let Some(raw) = champion.meta.extra.get("preprocessor") else {
        return Ok(None);
    };
    let theirs: Preprocessor = serde_json::from_value(raw.clone()).map_err(|e| {
        TrainError::invalid(format!("the champion's preprocessor cannot be read: {e}"))
    })?;
    let their_labels: Option<Vec<String>> = champion
        .meta
        .extra
        .get("labels")
        .and_then(|l| serde_json::from_value(l.clone()).ok());
    if theirs == ours.0 && their_labels == ours.1 {
        return Ok(None);
    }
    let y = match (&ours.1, &their_labels) {
        (Some(mine), Some(theirs)) if mine != theirs => y
            .iter()
            .map(|&class| {
                let label = &mine[class as usize];
                theirs
                    .iter()
                    .position(|l| l == label)
                    .map(|i| i as f64)
                    .ok_or_else(|| {
                        TrainError::invalid(format!(
                            "the champion knows the classes [{}], not `{label}`",
                            theirs.join(", ")
                        ))
                    })
            })
            .collect::<Result<Vec<_>>>()?,
        _ => y.to_vec(),
    };
    Ok(Some(HeldOut {
        x: theirs.transform(frame)?,
        y,
        segments: segments.clone(),
    }))
}

async fn log_metrics(services: &Services, run_id: &str, metrics: &SplitMetrics) -> Result<()> {
    let now = now_millis();
    let batch: Vec<Metric> = metrics
        .iter()
        .flat_map(|(split, values)| {
            values
                .iter()
                .filter(|(_, v)| v.is_finite())
                .map(move |(name, v)| Metric::new(format!("{split}_{name}"), *v, now, 0))
        })
        .collect();
    services
        .tracking
        .log_batch(run_id, &batch, &[], &[])
        .await?;
    Ok(())
}

/// A learner spec's settings as `key=value` pairs, without the learner's name.
pub fn compact(v: &Value) -> String {
    match v {
        Value::Object(map) => map
            .iter()
            .filter(|(k, _)| k.as_str() != "learner")
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" "),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_the_task_from_the_target() {
        let text = ColumnData::Text(vec![Some("b".into()), Some("a".into()), None]);
        let (task, target) = detect("y", &text, None).unwrap();
        assert_eq!(task, Task::Binary);
        assert_eq!(target, Target::Classes(vec!["a".into(), "b".into()]));
        assert_eq!(encode(&text, &target)[..2], [1.0, 0.0]);
        let err = detect("y", &text, Some(Task::Regression))
            .unwrap_err()
            .to_string();
        assert!(err.contains("`y` is text"), "{err}");

        let codes = ColumnData::Numeric(vec![3.0, 1.0, 2.0, f64::NAN]);
        let (task, target) = detect("y", &codes, None).unwrap();
        assert_eq!(task, Task::Multiclass { classes: 3 });
        let y = encode(&codes, &target);
        assert_eq!(y[..3], [2.0, 0.0, 1.0]);
        assert!(y[3].is_nan());
        assert!(detect("y", &codes, Some(Task::Binary)).is_err());

        let values = ColumnData::Numeric((0..20).map(|i| i as f64 * 0.5).collect());
        assert_eq!(detect("y", &values, None).unwrap().0, Task::Regression);
        let many = ColumnData::Numeric((0..11).map(f64::from).collect());
        assert_eq!(detect("y", &many, None).unwrap().0, Task::Regression);
    }

    #[test]
    fn learners_by_name() {
        for name in LEARNERS {
            assert_eq!(default_learner(name).unwrap().name(), name);
        }
        assert!(default_learner("svm").is_err());
        assert_eq!(slug("Breast Cancer"), "breast-cancer");
    }
}
