//! A model package ready to score: the raw columns it takes and predictions as labels, values
//! and probabilities.

use std::path::Path;
use std::sync::Arc;

use kaizen_ml::preprocess::Encoder;
use kaizen_ml::{ColumnData, Frame, Matrix, Preprocessor, Task};
use kaizen_tracking::Services;
use kaizen_train::Package;

use crate::error::{Result, ServeError};
use crate::onnx::OnnxServed;
use crate::pretrained::PretrainedServed;

/// What values a raw input column takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputKind {
    /// Numbers (`null` is missing).
    Number,
    /// Text (`null` is missing).
    Text,
    /// A category: text or numbers.
    Category,
}

impl InputKind {
    /// The name used in messages and `/health` (MLflow's type names where they exist).
    pub fn name(self) -> &'static str {
        match self {
            InputKind::Number => "double",
            InputKind::Text => "string",
            InputKind::Category => "category",
        }
    }
}

/// One raw input column of a served model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputColumn {
    pub name: String,
    pub kind: InputKind,
}

/// One row's prediction.
#[derive(Debug, Clone, PartialEq)]
pub enum Prediction {
    /// Regression: the value.
    Value(f64),
    /// Classification: the most probable label and every class's probability, in class order.
    Class {
        label: String,
        probabilities: Vec<(String, f64)>,
    },
    /// A sentence embedder: the text's embedding.
    Embedding(Vec<f32>),
}

impl Prediction {
    /// The JSON of `{"predictions": [...]}`: the value, or the label (a number when the label
    /// is one, as scikit-learn models answer through MLflow), or with `probabilities`
    /// `{"label": ..., "probabilities": {"label": p, ...}}`.
    pub fn to_json(&self, probabilities: bool) -> serde_json::Value {
        match self {
            Prediction::Value(v) => serde_json::json!(v),
            Prediction::Embedding(v) => serde_json::json!(v),
            Prediction::Class {
                label,
                probabilities: p,
            } => {
                let label = label_json(label);
                if probabilities {
                    let map: serde_json::Map<String, serde_json::Value> = p
                        .iter()
                        .map(|(l, v)| (l.clone(), serde_json::json!(v)))
                        .collect();
                    serde_json::json!({"label": label, "probabilities": map})
                } else {
                    label
                }
            }
        }
    }
}

fn label_json(label: &str) -> serde_json::Value {
    match label.parse::<i64>() {
        Ok(n) => n.into(),
        Err(_) => match label.parse::<f64>() {
            Ok(v) if v.is_finite() => serde_json::json!(v),
            _ => label.into(),
        },
    }
}

/// A loaded package: a version of a registered model, or a package directory; or an ONNX
/// model a user brought (an MLflow `onnx` directory or a `.onnx` file).
#[derive(Debug, Clone)]
pub struct ServedModel {
    /// The registered model's name, or the package directory.
    pub name: String,
    /// The version number, or empty for a directory.
    pub version: String,
    /// The package; for an ONNX model, a descriptor of it (flavor `onnx`, its task, columns
    /// and labels) whose `model` is never used.
    pub package: Package,
    preprocessor: Option<Preprocessor>,
    labels: Option<Vec<String>>,
    inputs: Vec<InputColumn>,
    /// The ONNX model that scores, for models users bring.
    onnx: Option<Arc<OnnxServed>>,
    /// The pretrained model that scores (an embedder, a text classifier).
    pretrained: Option<Arc<PretrainedServed>>,
}

impl ServedModel {
    /// A package as served under `name` and `version`. A package of `kaizen train` takes the
    /// columns of its preprocessor (`meta.extra["preprocessor"]`); others (forecast packages)
    /// take their features as numbers.
    pub fn new(
        name: impl Into<String>,
        version: impl Into<String>,
        package: Package,
    ) -> Result<Self> {
        let extra = &package.meta.extra;
        let preprocessor: Option<Preprocessor> = match extra.get("preprocessor") {
            Some(raw) if !raw.is_null() => {
                Some(serde_json::from_value(raw.clone()).map_err(|e| {
                    ServeError::Package(kaizen_train::TrainError::Inconsistent {
                        path: package.dir.clone(),
                        message: format!("its preprocessor cannot be read: {e}"),
                    })
                })?)
            }
            _ => None,
        };
        let labels: Option<Vec<String>> = extra
            .get("labels")
            .and_then(|l| serde_json::from_value(l.clone()).ok());
        let inputs = match &preprocessor {
            Some(p) => p
                .columns
                .iter()
                .map(|c| InputColumn {
                    name: c.name.clone(),
                    kind: match c.encoder {
                        Encoder::Numeric { .. } => InputKind::Number,
                        Encoder::OneHot { .. } | Encoder::Ordinal { .. } => InputKind::Category,
                        Encoder::Tfidf { .. } | Encoder::Hashing { .. } => InputKind::Text,
                    },
                })
                .collect(),
            None => package
                .model
                .features
                .iter()
                .map(|f| InputColumn {
                    name: f.clone(),
                    kind: InputKind::Number,
                })
                .collect(),
        };
        Ok(ServedModel {
            name: name.into(),
            version: version.into(),
            package,
            preprocessor,
            labels,
            inputs,
            onnx: None,
            pretrained: None,
        })
    }

    /// The package in `dir`, named by its path; or the ONNX model there (an MLflow model
    /// directory with the `onnx` flavor, or a `.onnx` file).
    pub fn from_dir(dir: &Path) -> Result<Self> {
        if crate::pretrained::is_pretrained_model(dir) {
            return ServedModel::from_pretrained(dir.display().to_string(), "", dir);
        }
        if crate::onnx::is_onnx_model(dir) {
            return ServedModel::from_onnx(dir.display().to_string(), "", dir);
        }
        let package = kaizen_train::read_package(dir)?;
        ServedModel::new(dir.display().to_string(), "", package)
    }

    /// The ONNX model at `path` (an MLflow `onnx` directory or a `.onnx` file) as served under
    /// `name` and `version`.
    pub fn from_onnx(
        name: impl Into<String>,
        version: impl Into<String>,
        path: &Path,
    ) -> Result<Self> {
        let onnx = OnnxServed::load(path)?;
        let features: Vec<String> = onnx.inputs.iter().map(|c| c.name.clone()).collect();
        let model = kaizen_ml::FittedModel {
            task: onnx.task,
            features: features.clone(),
            learner: "onnx".into(),
            params: kaizen_ml::learner::ModelParams::Linear {
                coefficients: Vec::new(),
                intercepts: Vec::new(),
                link: kaizen_ml::learner::Link::Identity,
            },
            best_iteration: None,
        };
        let meta = kaizen_train::PackageMeta {
            format_version: kaizen_train::package::FORMAT_VERSION,
            flavor: "onnx".into(),
            task: onnx.task,
            learner: onnx.producer().to_string(),
            signature: kaizen_train::package::Signature {
                inputs: features
                    .iter()
                    .zip(&onnx.dtypes)
                    .map(|(name, dtype)| kaizen_train::package::ColumnSpec {
                        name: name.clone(),
                        dtype: dtype.clone(),
                    })
                    .collect(),
                outputs: Vec::new(),
            },
            metrics: Default::default(),
            lineage: Default::default(),
            created_at: 0,
            onnx: onnx
                .file
                .file_name()
                .map(|f| f.to_string_lossy().into_owned()),
            onnx_error: None,
            extra: serde_json::json!({"labels": onnx.labels}),
        };
        let dir = if path.is_dir() {
            path.to_path_buf()
        } else {
            path.parent().map(Path::to_path_buf).unwrap_or_default()
        };
        Ok(ServedModel {
            name: name.into(),
            version: version.into(),
            package: Package { dir, meta, model },
            preprocessor: None,
            labels: Some(onnx.labels.clone()),
            inputs: onnx.inputs.clone(),
            onnx: Some(Arc::new(onnx)),
            pretrained: None,
        })
    }

    /// The pretrained package at `dir` (an embedder, or a text classifier with the embedder it
    /// needs) as served under `name` and `version`.
    pub fn from_pretrained(
        name: impl Into<String>,
        version: impl Into<String>,
        dir: &Path,
    ) -> Result<Self> {
        let served = PretrainedServed::load(dir)?;
        let meta = &served.meta;
        let (task, labels) = match meta.task {
            kaizen_train::pretrained::PretrainedTask::Embed => (Task::Regression, None),
            kaizen_train::pretrained::PretrainedTask::TextClassifier => (
                match meta.labels.len() {
                    2 => Task::Binary,
                    classes => Task::Multiclass { classes },
                },
                Some(meta.labels.clone()),
            ),
        };
        let model = kaizen_ml::FittedModel {
            task,
            features: vec![meta.text_column.clone()],
            learner: meta.task.as_str().into(),
            params: kaizen_ml::learner::ModelParams::Linear {
                coefficients: Vec::new(),
                intercepts: Vec::new(),
                link: kaizen_ml::learner::Link::Identity,
            },
            best_iteration: None,
        };
        let package_meta = kaizen_train::PackageMeta {
            format_version: kaizen_train::package::FORMAT_VERSION,
            flavor: kaizen_train::pretrained::PRETRAINED_FLAVOR.into(),
            task,
            learner: meta.task.as_str().into(),
            signature: kaizen_train::package::Signature {
                inputs: vec![kaizen_train::package::ColumnSpec {
                    name: meta.text_column.clone(),
                    dtype: "string".into(),
                }],
                outputs: Vec::new(),
            },
            metrics: meta.metrics.clone(),
            lineage: meta.lineage.clone(),
            created_at: meta.created_at,
            onnx: None,
            onnx_error: None,
            extra: serde_json::json!({
                "labels": labels,
                "embedder": meta.embedder,
                "pretrained_task": meta.task,
            }),
        };
        let inputs = vec![InputColumn {
            name: meta.text_column.clone(),
            kind: InputKind::Text,
        }];
        Ok(ServedModel {
            name: name.into(),
            version: version.into(),
            package: Package {
                dir: dir.to_path_buf(),
                meta: package_meta,
                model,
            },
            preprocessor: None,
            labels,
            inputs,
            onnx: None,
            pretrained: Some(Arc::new(served)),
        })
    }

    /// Whether a pretrained model scores (its requests run a neural network: never inline).
    pub fn is_pretrained(&self) -> bool {
        self.pretrained.is_some()
    }

    /// Whether the model answers embeddings rather than values or labels.
    pub fn is_embedding(&self) -> bool {
        self.pretrained
            .as_ref()
            .is_some_and(|p| p.meta.task == kaizen_train::pretrained::PretrainedTask::Embed)
    }

    /// The task's name in `/health`: `regression`, `binary`, `multiclass` or `embedding`.
    pub fn task_name(&self) -> &'static str {
        if self.is_embedding() {
            "embedding"
        } else {
            kaizen_train::tabular::task_name(self.task())
        }
    }

    /// Whether an ONNX model a user brought scores (not a kaizen package).
    pub fn is_onnx(&self) -> bool {
        self.onnx.is_some()
    }

    /// Version (or alias) `version_or_alias` of the registered model `name`.
    pub async fn from_registry(
        services: &Services,
        name: &str,
        version_or_alias: &str,
    ) -> Result<Self> {
        let (version, dir) =
            kaizen_train::register::version_dir(services, name, version_or_alias).await?;
        if crate::pretrained::is_pretrained_model(&dir) {
            let (name, version) = (name.to_string(), version.version.to_string());
            return tokio::task::spawn_blocking(move || {
                ServedModel::from_pretrained(name, version, &dir)
            })
            .await
            .map_err(|e| ServeError::Pretrained {
                path: std::path::PathBuf::new(),
                message: format!("loading stopped: {e}"),
            })?;
        }
        if crate::onnx::is_onnx_model(&dir) {
            return ServedModel::from_onnx(name, version.version.to_string(), &dir);
        }
        let package = kaizen_train::read_package(&dir)?;
        ServedModel::new(name, version.version.to_string(), package)
    }

    /// The raw columns a request must carry, in order.
    pub fn inputs(&self) -> &[InputColumn] {
        &self.inputs
    }

    pub fn task(&self) -> Task {
        self.package.meta.task
    }

    /// The class labels, class `i` being `labels()[i]` (classification).
    pub fn labels(&self) -> Vec<String> {
        let classes = match self.task() {
            Task::Regression => 0,
            Task::Binary => 2,
            Task::Multiclass { classes } => classes,
        };
        match &self.labels {
            Some(l) if l.len() == classes => l.clone(),
            _ => (0..classes).map(|i| i.to_string()).collect(),
        }
    }

    /// `frame` (a table read from a file) in the shape [`ServedModel::score`] takes: the input
    /// columns only, categories and text as the preprocessing reads them. A missing column or
    /// text where numbers are expected is refused by name.
    pub fn conform(&self, frame: &Frame) -> Result<Frame> {
        let mut columns = Vec::with_capacity(self.inputs.len());
        for input in &self.inputs {
            let data = frame.column(&input.name).ok_or_else(|| {
                ServeError::bad_request(format!(
                    "missing column `{}`; the model takes: {}",
                    input.name,
                    self.input_names()
                ))
            })?;
            let data = match (input.kind, data) {
                (InputKind::Number, ColumnData::Text(_)) => {
                    return Err(ServeError::bad_request(format!(
                        "column `{}` is text; the model takes numbers there",
                        input.name
                    )));
                }
                (InputKind::Text, ColumnData::Numeric(v)) => ColumnData::Text(
                    v.iter()
                        .map(|x| (!x.is_nan()).then(|| x.to_string()))
                        .collect(),
                ),
                (_, d) => d.clone(),
            };
            columns.push((input.name.clone(), data));
        }
        Ok(Frame::new(columns))
    }

    /// The input names, for messages.
    pub fn input_names(&self) -> String {
        self.inputs
            .iter()
            .map(|c| c.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The feature matrix of `frame`: through the package's preprocessor, or its features taken
    /// directly.
    fn features(&self, frame: &Frame) -> Result<Matrix> {
        if let Some(p) = &self.preprocessor {
            return p.transform(frame).map_err(ServeError::Scoring);
        }
        let mut data = Vec::with_capacity(frame.rows() * self.inputs.len());
        for f in &self.package.model.features {
            data.extend_from_slice(frame.numeric(f).map_err(ServeError::Scoring)?);
        }
        Ok(Matrix {
            rows: frame.rows(),
            names: self.package.model.features.clone(),
            data,
        })
    }

    /// One prediction per row of `frame` (which holds the input columns).
    pub fn score(&self, frame: &Frame) -> Result<Vec<Prediction>> {
        if let Some(onnx) = &self.onnx {
            return onnx.score(frame);
        }
        if let Some(pretrained) = &self.pretrained {
            return pretrained.score(frame);
        }
        if frame.rows() == 0 {
            return Ok(Vec::new());
        }
        let x = self.features(frame)?;
        let model = &self.package.model;
        if self.task() == Task::Regression {
            return Ok(model
                .predict(&x)
                .into_iter()
                .map(Prediction::Value)
                .collect());
        }
        let labels = self.labels();
        Ok(model
            .predict_proba(&x)
            .into_iter()
            .map(|p| {
                let best = p
                    .iter()
                    .enumerate()
                    .fold((0, f64::NEG_INFINITY), |best, (k, &v)| {
                        if v > best.1 { (k, v) } else { best }
                    })
                    .0;
                Prediction::Class {
                    label: labels
                        .get(best)
                        .cloned()
                        .unwrap_or_else(|| best.to_string()),
                    probabilities: labels.iter().cloned().zip(p).collect(),
                }
            })
            .collect())
    }
}
