//! `kaizen train-classifier`: a text classifier for people with a few hundred labeled examples.
//! The texts are embedded by a frozen sentence-embedding model, a multinomial
//! logistic-regression head (kaizen-ml's `logistic`, L-BFGS on linfa) is trained over the
//! embeddings of a stratified, seeded train part, and scored on the held-out part. The job is
//! one tracked run (params, metrics, a confusion matrix) whose package (the head, and the
//! embedder it needs by name and hash) is registered as a model version.
//!
//! The embedding model is the caller's: this crate does not run neural networks, it takes a
//! function from texts to vectors.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;

use kaizen_core::{Metric, Param, now_millis};
use kaizen_data::{Fractions, SplitSpec, Table};
use kaizen_ml::linear::LogisticParams;
use kaizen_ml::metrics::{classification, confusion_svg};
use kaizen_ml::{ColumnData, FittedModel, Frame, LearnerSpec, Matrix, Task, fit};
use kaizen_tracking::{Actor, Services};
use serde::Serialize;
use serde_json::json;

use crate::error::{Result, TrainError};
use crate::forecast::{Progress, put_artifact};
use crate::package::Lineage;
use crate::pretrained::{EmbedderRef, PretrainedMeta, PretrainedTask, write_classifier_package};
use crate::runs::{self, slug};

/// Texts to embedding vectors, one per text in order; an error is a message.
pub type EmbedFn =
    Arc<dyn Fn(Vec<String>) -> std::result::Result<Vec<Vec<f32>>, String> + Send + Sync>;

/// Everything `kaizen train-classifier` is asked.
#[derive(Debug, Clone)]
pub struct ClassifierJob {
    /// The data file (CSV or Parquet), for the run's params and the lineage.
    pub data: PathBuf,
    pub text_column: String,
    pub label_column: String,
    /// The share of each class held out for the metrics.
    pub test_fraction: f64,
    pub seed: u64,
    /// The inverse of the head's L2 penalty (scikit-learn's `C`).
    pub c: f64,
    pub max_iterations: u64,
    pub model_name: String,
    pub experiment: String,
    pub user: String,
    pub repo_dir: PathBuf,
}

impl ClassifierJob {
    /// The defaults: 20% held out, seed 42, `C = 10`, the model named after the data file and
    /// the label column, experiment `train-classifier`.
    pub fn new(
        data: PathBuf,
        text_column: impl Into<String>,
        label_column: impl Into<String>,
    ) -> ClassifierJob {
        let label_column = label_column.into();
        let stem = data
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "texts".into());
        ClassifierJob {
            model_name: format!("{}-{}", slug(&stem), slug(&label_column)),
            data,
            text_column: text_column.into(),
            label_column,
            test_fraction: 0.2,
            seed: 42,
            c: 10.0,
            max_iterations: 500,
            experiment: "train-classifier".into(),
            user: "kaizen".into(),
            repo_dir: PathBuf::from("."),
        }
    }
}

/// What the job did, in the shape `kaizen train-classifier --json` prints.
#[derive(Debug, Clone, Serialize)]
pub struct ClassifierSummary {
    pub text_column: String,
    pub label_column: String,
    /// Class `i` is `labels[i]`.
    pub labels: Vec<String>,
    pub embedder: EmbedderRef,
    /// Rows per part (`train`, `test`) and rows left out for a missing text or label.
    pub rows: BTreeMap<String, usize>,
    /// Metrics by part, then by name: `accuracy`, `macro_f1`, `log_loss`.
    pub metrics: BTreeMap<String, BTreeMap<String, f64>>,
    /// Per test row that the head got wrong: at most 10, `(text, actual, predicted)`.
    pub errors: Vec<(String, String, String)>,
    pub model_name: String,
    pub model_version: String,
    pub run_id: String,
}

/// A class label's text: strings as they are, whole numbers without `.0`.
fn label_text(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

/// The texts and labels of a table part; rows missing either (or with a blank text) are
/// dropped and counted.
struct Labeled {
    texts: Vec<String>,
    labels: Vec<String>,
    dropped: usize,
}

fn labeled(table: &Table, job: &ClassifierJob) -> Result<Labeled> {
    let frame = Frame::from_table(table)?;
    let column = |name: &str, flag: &str| {
        frame.column(name).ok_or_else(|| {
            TrainError::invalid(format!(
                "{flag} {name}: the data has no column `{name}` (columns: {})",
                frame.names.join(", ")
            ))
        })
    };
    let texts = match column(&job.text_column, "--text-col")? {
        ColumnData::Text(v) => v.clone(),
        ColumnData::Numeric(_) => {
            return Err(TrainError::invalid(format!(
                "--text-col {}: the column holds numbers, not text",
                job.text_column
            )));
        }
    };
    let labels: Vec<Option<String>> = match column(&job.label_column, "--label-col")? {
        ColumnData::Text(v) => v
            .iter()
            .map(|l| {
                l.as_ref()
                    .map(|l| l.trim().to_string())
                    .filter(|l| !l.is_empty())
            })
            .collect(),
        ColumnData::Numeric(v) => v
            .iter()
            .map(|&x| x.is_finite().then(|| label_text(x)))
            .collect(),
    };
    let mut out = Labeled {
        texts: Vec::new(),
        labels: Vec::new(),
        dropped: 0,
    };
    for (text, label) in texts.into_iter().zip(labels) {
        match (text.filter(|t| !t.trim().is_empty()), label) {
            (Some(t), Some(l)) => {
                out.texts.push(t);
                out.labels.push(l);
            }
            _ => out.dropped += 1,
        }
    }
    Ok(out)
}

/// The embeddings of `texts` as a matrix with features `e0`, `e1`, ...
fn embed_matrix(embed: &EmbedFn, texts: &[String], dim: usize) -> Result<Matrix> {
    let vectors =
        embed(texts.to_vec()).map_err(|e| TrainError::invalid(format!("embedding failed: {e}")))?;
    if vectors.len() != texts.len() || vectors.iter().any(|v| v.len() != dim) {
        return Err(TrainError::invalid(format!(
            "the embedder answered {} vectors for {} texts (of {dim} numbers each expected)",
            vectors.len(),
            texts.len()
        )));
    }
    let columns: Vec<Vec<f64>> = (0..dim)
        .map(|j| vectors.iter().map(|v| f64::from(v[j])).collect())
        .collect();
    Ok(Matrix::from_columns(feature_names(dim), columns))
}

/// The head's feature names: `e0` .. `e{dim-1}`.
pub fn feature_names(dim: usize) -> Vec<String> {
    (0..dim).map(|i| format!("e{i}")).collect()
}

fn metrics_of(head: &FittedModel, x: &Matrix, y: &[f64]) -> BTreeMap<String, f64> {
    let m = classification(y, &head.predict_proba(x));
    BTreeMap::from([
        ("accuracy".to_string(), m.accuracy),
        ("macro_f1".to_string(), m.f1),
        ("log_loss".to_string(), m.log_loss),
    ])
}

/// Splits, embeds, trains and scores, tracked as one run; registers the package.
pub async fn run_text_classifier(
    services: &Services,
    job: &ClassifierJob,
    table: &Table,
    embedder: &EmbedderRef,
    embed: EmbedFn,
    progress: &dyn Progress,
) -> Result<ClassifierSummary> {
    if !(job.test_fraction > 0.0 && job.test_fraction < 1.0) {
        return Err(TrainError::invalid(format!(
            "--test-size {} must be above 0 and below 1",
            job.test_fraction
        )));
    }
    if !(job.c > 0.0 && job.c.is_finite()) {
        return Err(TrainError::invalid(format!(
            "--c {} must be a positive number",
            job.c
        )));
    }
    if table.num_rows() == 0 {
        return Err(TrainError::invalid(format!(
            "{} has no rows of data",
            job.data.display()
        )));
    }
    // Every check on the whole table before anything is embedded or tracked.
    let whole = labeled(table, job)?;
    if whole.texts.is_empty() {
        return Err(TrainError::invalid(format!(
            "{} has no row with both a text in `{}` and a label in `{}`",
            job.data.display(),
            job.text_column,
            job.label_column
        )));
    }
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for l in &whole.labels {
        *counts.entry(l.as_str()).or_default() += 1;
    }
    let labels: Vec<String> = counts.keys().map(|l| l.to_string()).collect();
    if labels.len() < 2 {
        return Err(TrainError::invalid(format!(
            "the label column `{}` has {} class ({}); a classifier needs 2 or more",
            job.label_column,
            labels.len(),
            labels.join(", ")
        )));
    }
    let thin: Vec<String> = counts
        .iter()
        .filter(|(_, n)| **n < 2)
        .map(|(l, n)| format!("`{l}` ({n})"))
        .collect();
    if !thin.is_empty() {
        return Err(TrainError::invalid(format!(
            "every class needs at least 2 examples (one to train on, one to test); too few: {}",
            thin.join(", ")
        )));
    }
    let task = if labels.len() == 2 {
        Task::Binary
    } else {
        Task::Multiclass {
            classes: labels.len(),
        }
    };

    // Stratified by the label, so every class is in both parts in its share.
    let spec = SplitSpec::Stratified {
        column: job.label_column.clone(),
        fractions: Fractions::new([
            ("train", 1.0 - job.test_fraction),
            ("test", job.test_fraction),
        ]),
        seed: job.seed,
    };
    let parts = kaizen_data::split(table, &spec).map_err(kaizen_ml::MlError::from)?;
    let train = labeled(&parts[0].1, job)?;
    let test = labeled(&parts[1].1, job)?;
    if test.texts.is_empty() {
        return Err(TrainError::invalid(format!(
            "--test-size {} leaves no rows to test on; give more data or a larger share",
            job.test_fraction
        )));
    }
    let missing: BTreeSet<&String> = labels
        .iter()
        .filter(|l| !train.labels.contains(*l))
        .collect();
    if !missing.is_empty() {
        return Err(TrainError::invalid(format!(
            "the train part has no example of {}; give more data or a smaller --test-size",
            missing.into_iter().cloned().collect::<Vec<_>>().join(", ")
        )));
    }
    let index: BTreeMap<&str, f64> = labels
        .iter()
        .enumerate()
        .map(|(i, l)| (l.as_str(), i as f64))
        .collect();
    let y_train: Vec<f64> = train.labels.iter().map(|l| index[l.as_str()]).collect();
    let y_test: Vec<f64> = test.labels.iter().map(|l| index[l.as_str()]).collect();
    progress.step(&format!(
        "data: {} rows ({} train, {} test{}), {} classes: {}",
        train.texts.len() + test.texts.len(),
        train.texts.len(),
        test.texts.len(),
        if whole.dropped > 0 {
            format!(", {} without text or label left out", whole.dropped)
        } else {
            String::new()
        },
        labels.len(),
        labels.join(", ")
    ));

    let run_id = runs::start(
        services,
        runs::JobRun {
            experiment: &job.experiment,
            user: &job.user,
            parent_run_id: None,
            source: "kaizen train-classifier",
            task: "train-classifier",
            run_name: format!("classifier-{}", slug(&job.label_column)),
        },
    )
    .await?;
    let data = Prepared {
        task,
        labels,
        train,
        test,
        y_train,
        y_test,
        dropped: whole.dropped,
    };
    let outcome = run_tracked(services, job, &run_id, embedder, embed, data, progress).await;
    runs::finish(services, &run_id, outcome).await
}

/// The parts, checked and labeled.
struct Prepared {
    task: Task,
    labels: Vec<String>,
    train: Labeled,
    test: Labeled,
    y_train: Vec<f64>,
    y_test: Vec<f64>,
    dropped: usize,
}

async fn run_tracked(
    services: &Services,
    job: &ClassifierJob,
    run_id: &str,
    embedder: &EmbedderRef,
    embed: EmbedFn,
    data: Prepared,
    progress: &dyn Progress,
) -> Result<ClassifierSummary> {
    let run = services.tracking.get_run(run_id).await?;
    let params = vec![
        Param::new("data", job.data.display().to_string()),
        Param::new("text_column", job.text_column.clone()),
        Param::new("label_column", job.label_column.clone()),
        Param::new("embedder", embedder.name.clone()),
        Param::new("embedder_sha256", embedder.sha256.clone()),
        Param::new("embedding_dim", embedder.dim.to_string()),
        Param::new("head", "logistic"),
        Param::new("c", job.c.to_string()),
        Param::new("max_iterations", job.max_iterations.to_string()),
        Param::new("test_size", job.test_fraction.to_string()),
        Param::new("seed", job.seed.to_string()),
        Param::new("classes", data.labels.join(",")),
        Param::new("rows_train", data.train.texts.len().to_string()),
        Param::new("rows_test", data.test.texts.len().to_string()),
    ];
    services
        .tracking
        .log_batch(run_id, &[], &params, &[])
        .await?;

    progress.step(&format!(
        "embedding {} texts with {}",
        data.train.texts.len() + data.test.texts.len(),
        embedder.name
    ));
    let dim = embedder.dim;
    let (train_texts, test_texts) = (data.train.texts.clone(), data.test.texts.clone());
    let embed_all = Arc::clone(&embed);
    let (x_train, x_test) = tokio::task::spawn_blocking(move || -> Result<(Matrix, Matrix)> {
        Ok((
            embed_matrix(&embed_all, &train_texts, dim)?,
            embed_matrix(&embed_all, &test_texts, dim)?,
        ))
    })
    .await
    .map_err(|e| TrainError::invalid(format!("embedding stopped: {e}")))??;

    let spec = LearnerSpec::Logistic(LogisticParams {
        c: Some(job.c),
        alpha: None,
        max_iterations: job.max_iterations,
        ..LogisticParams::default()
    });
    let (task, y_train) = (data.task, data.y_train.clone());
    let fit_x = x_train.clone();
    let head = tokio::task::spawn_blocking(move || fit(&spec, task, &fit_x, &y_train, None))
        .await
        .map_err(|e| TrainError::invalid(format!("training stopped: {e}")))??;

    let metrics = BTreeMap::from([
        (
            "train".to_string(),
            metrics_of(&head, &x_train, &data.y_train),
        ),
        ("test".to_string(), metrics_of(&head, &x_test, &data.y_test)),
    ]);
    progress.step(&format!(
        "logistic head: accuracy train {:.4}, test {:.4}; test macro-F1 {:.4}, log-loss {:.4}",
        metrics["train"]["accuracy"],
        metrics["test"]["accuracy"],
        metrics["test"]["macro_f1"],
        metrics["test"]["log_loss"],
    ));
    let now = now_millis();
    let batch: Vec<Metric> = metrics
        .iter()
        .flat_map(|(part, values)| {
            values
                .iter()
                .filter(|(_, v)| v.is_finite())
                .map(move |(name, v)| Metric::new(format!("{part}_{name}"), *v, now, 0))
        })
        .collect();
    services
        .tracking
        .log_batch(run_id, &batch, &[], &[])
        .await?;

    // The confusion matrix and the report, on the test part.
    let proba = head.predict_proba(&x_test);
    let scored = classification(&data.y_test, &proba);
    put_artifact(
        services,
        &run.info.artifact_uri,
        "confusion.svg",
        confusion_svg(&scored.confusion, &data.labels).into_bytes(),
    )
    .await?;
    let mut errors = Vec::new();
    for (i, p) in proba.iter().enumerate() {
        let best = kaizen_ml::metrics::argmax(p);
        if best != data.y_test[i] as usize && errors.len() < 10 {
            errors.push((
                data.test.texts[i].clone(),
                data.test.labels[i].clone(),
                data.labels[best].clone(),
            ));
        }
    }
    let report = json!({
        "labels": data.labels,
        "metrics": metrics,
        "test_confusion": scored.confusion,
        "test_errors": errors,
    });
    let bytes =
        serde_json::to_vec_pretty(&report).map_err(|e| TrainError::invalid(e.to_string()))?;
    put_artifact(services, &run.info.artifact_uri, "metrics.json", bytes).await?;

    // The package: the head and the embedder it needs, registered.
    let package_dir = tempfile::tempdir().map_err(|e| TrainError::io(std::env::temp_dir(), e))?;
    let datasets = vec![job.data.display().to_string()];
    let mut meta = PretrainedMeta::new(
        PretrainedTask::TextClassifier,
        job.text_column.clone(),
        embedder.clone(),
        Lineage::current(run_id, &datasets, None, &job.repo_dir),
    );
    meta.labels = data.labels.clone();
    meta.metrics = metrics["test"]
        .iter()
        .map(|(k, v)| (format!("test_{k}"), *v))
        .collect();
    write_classifier_package(package_dir.path(), &head, &meta, &data.test.texts)?;
    let actor = Actor {
        user: Some(job.user.clone()),
        reason: Some("kaizen train-classifier".into()),
    };
    let version = crate::register::register_dir(
        services,
        run_id,
        package_dir.path(),
        &job.model_name,
        &actor,
        crate::pretrained::version_tags(&meta, run_id),
        &datasets,
    )
    .await?;
    let model_version = version.version.to_string();
    progress.step(&format!(
        "registered: models:/{}/{}",
        job.model_name, model_version
    ));

    Ok(ClassifierSummary {
        text_column: job.text_column.clone(),
        label_column: job.label_column.clone(),
        labels: data.labels,
        embedder: embedder.clone(),
        rows: BTreeMap::from([
            ("train".to_string(), data.train.texts.len()),
            ("test".to_string(), data.test.texts.len()),
            ("dropped".to_string(), data.dropped),
        ]),
        metrics,
        errors,
        model_name: job.model_name.clone(),
        model_version,
        run_id: run_id.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use kaizen_data::arrow::array::{ArrayRef, Float64Array, RecordBatch, StringArray};
    use kaizen_data::arrow::datatypes::{DataType, Field, Schema};

    fn table(texts: Vec<Option<&str>>, labels: Vec<Option<f64>>) -> Table {
        let schema = Schema::new(vec![
            Field::new("t", DataType::Utf8, true),
            Field::new("y", DataType::Float64, true),
        ]);
        let arrays: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from(texts)),
            Arc::new(Float64Array::from(labels)),
        ];
        Table::from_batch(RecordBatch::try_new(Arc::new(schema), arrays).unwrap())
    }

    #[test]
    fn rows_without_text_or_label_are_left_out_and_labels_are_text() {
        let job = ClassifierJob::new("d.csv".into(), "t", "y");
        let t = table(
            vec![Some("a"), None, Some("  "), Some("d"), Some("e")],
            vec![Some(1.0), Some(2.0), Some(1.0), None, Some(2.5)],
        );
        let l = labeled(&t, &job).unwrap();
        assert_eq!(l.texts, ["a", "e"]);
        assert_eq!(l.labels, ["1", "2.5"]);
        assert_eq!(l.dropped, 3);

        let bad = ClassifierJob::new("d.csv".into(), "text", "y");
        let err = labeled(&t, &bad).err().unwrap().to_string();
        assert!(
            err.contains("--text-col text: the data has no column `text` (columns: t, y)"),
            "{err}"
        );
        let numeric = ClassifierJob::new("d.csv".into(), "y", "t");
        let err = labeled(&t, &numeric).err().unwrap().to_string();
        assert!(err.contains("holds numbers, not text"), "{err}");
    }

    #[test]
    fn embeddings_become_a_matrix() {
        let embed: EmbedFn = Arc::new(|texts: Vec<String>| {
            Ok(texts.iter().map(|t| vec![t.len() as f32, 1.0]).collect())
        });
        let x = embed_matrix(&embed, &["ab".into(), "abc".into()], 2).unwrap();
        assert_eq!(x.names, ["e0", "e1"]);
        assert_eq!(x.column(0), [2.0, 3.0]);
        assert_eq!(x.column(1), [1.0, 1.0]);
        let err = embed_matrix(&embed, &["ab".into()], 3)
            .unwrap_err()
            .to_string();
        assert!(err.contains("of 3 numbers each expected"), "{err}");
    }
}
