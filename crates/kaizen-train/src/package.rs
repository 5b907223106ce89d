//! Model packages: a self-describing directory that `kaizen serve` loads and MLflow tooling
//! recognizes.
//!
//! ```text
//! kaizen-model.json   PackageMeta: format, task, signature, metrics, lineage, ONNX status
//! model.json          the FittedModel
//! input_example.json  the first rows in MLflow's `dataframe_split` shape
//! model.onnx          when the model exports to ONNX
//! MLmodel             MLflow's descriptor (flavors `kaizen` and `onnx`)
//! ```
//!
//! `kaizen-model.json` is written last, so a directory without it is not a package.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use kaizen_ml::{FittedModel, Matrix, Task};
use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError};

/// The package format this crate writes and reads.
pub const FORMAT_VERSION: u32 = 1;
pub const FLAVOR: &str = "kaizen";
pub const META_FILE: &str = "kaizen-model.json";
pub const MODEL_FILE: &str = "model.json";
pub const EXAMPLE_FILE: &str = "input_example.json";
pub const ONNX_FILE: &str = "model.onnx";
pub const MLMODEL_FILE: &str = "MLmodel";
/// Rows kept in `input_example.json`.
const EXAMPLE_ROWS: usize = 5;

/// One column of a signature, with MLflow's type name (`double`, `long`, `string`, ...).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColumnSpec {
    pub name: String,
    pub dtype: String,
}

impl ColumnSpec {
    pub fn double(name: impl Into<String>) -> Self {
        ColumnSpec {
            name: name.into(),
            dtype: "double".into(),
        }
    }
}

/// What a model takes and gives, column by column.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Signature {
    pub inputs: Vec<ColumnSpec>,
    pub outputs: Vec<ColumnSpec>,
}

impl Signature {
    /// The model's features as `double` inputs, and one `prediction` output (the value, P(1) or
    /// the class, as [`FittedModel::predict`] answers).
    pub fn for_model(model: &FittedModel) -> Signature {
        Signature {
            inputs: model.features.iter().map(ColumnSpec::double).collect(),
            outputs: vec![ColumnSpec::double("prediction")],
        }
    }

    fn input_names(&self) -> Vec<&str> {
        self.inputs.iter().map(|c| c.name.as_str()).collect()
    }

    /// MLflow's JSON form of a column list (`[{"type": "double", "name": "x", "required": true}]`).
    pub(crate) fn mlflow_json(columns: &[ColumnSpec]) -> String {
        // Written by hand to keep MLflow's key order whatever serde_json's map is.
        let text = |s: &str| serde_json::Value::from(s).to_string();
        let list: Vec<String> = columns
            .iter()
            .map(|c| {
                format!(
                    r#"{{"type": {}, "name": {}, "required": true}}"#,
                    text(&c.dtype),
                    text(&c.name)
                )
            })
            .collect();
        format!("[{}]", list.join(", "))
    }
}

/// Where a model came from.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Lineage {
    /// The run that trained it.
    pub run_id: String,
    /// The data sets it was trained on (`name@version` for cataloged ones).
    #[serde(default)]
    pub datasets: Vec<String>,
    #[serde(default)]
    pub pipeline: Option<String>,
    #[serde(default)]
    pub git_commit: Option<String>,
    /// Whether the working tree had uncommitted changes.
    #[serde(default)]
    pub git_dirty: Option<bool>,
    pub kaizen_version: String,
}

impl Lineage {
    /// The lineage of a model trained now by this kaizen, in the git repository (if any) at
    /// `repo_dir`.
    pub fn current(
        run_id: &str,
        datasets: &[String],
        pipeline: Option<&str>,
        repo_dir: &Path,
    ) -> Lineage {
        let (git_commit, git_dirty) = git_state(repo_dir);
        Lineage {
            run_id: run_id.to_string(),
            datasets: datasets.to_vec(),
            pipeline: pipeline.map(str::to_string),
            git_commit,
            git_dirty,
            kaizen_version: env!("CARGO_PKG_VERSION").to_string(),
        }
    }
}

/// The commit checked out at `dir` and whether the tree has changes (untracked files count);
/// `(None, None)` outside a repository or without git.
pub fn git_state(dir: &Path) -> (Option<String>, Option<bool>) {
    let git = |args: &[&str]| {
        Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let Some(commit) = git(&["rev-parse", "HEAD"]).filter(|c| !c.is_empty()) else {
        return (None, None);
    };
    let dirty = git(&["status", "--porcelain"]).map(|s| !s.is_empty());
    (Some(commit), dirty)
}

/// `kaizen-model.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PackageMeta {
    pub format_version: u32,
    pub flavor: String,
    pub task: Task,
    /// The learner's name (`gbdt`).
    pub learner: String,
    pub signature: Signature,
    /// Validation metrics; NaN (and infinities) are written as `null` and read back as NaN.
    #[serde(default, with = "nan_as_null")]
    pub metrics: BTreeMap<String, f64>,
    pub lineage: Lineage,
    /// Milliseconds since the epoch.
    pub created_at: i64,
    /// The ONNX file's name, when the model exported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub onnx: Option<String>,
    /// Why the model has no ONNX file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub onnx_error: Option<String>,
    /// Free-form settings that go with the model (a forecast configuration, ...).
    #[serde(default)]
    pub extra: serde_json::Value,
}

impl PackageMeta {
    /// The descriptor of `model` with its derived signature, no metrics and no extra, created now.
    pub fn new(model: &FittedModel, lineage: Lineage) -> PackageMeta {
        PackageMeta {
            format_version: FORMAT_VERSION,
            flavor: FLAVOR.into(),
            task: model.task,
            learner: model.learner.clone(),
            signature: Signature::for_model(model),
            metrics: BTreeMap::new(),
            lineage,
            created_at: kaizen_core::now_millis(),
            onnx: None,
            onnx_error: None,
            extra: serde_json::Value::Null,
        }
    }
}

/// A package read back: its descriptor and its model.
#[derive(Debug, Clone)]
pub struct Package {
    pub dir: PathBuf,
    pub meta: PackageMeta,
    pub model: FittedModel,
}

impl Package {
    /// The ONNX file, when the package has one.
    pub fn onnx_path(&self) -> Option<PathBuf> {
        self.meta.onnx.as_ref().map(|f| self.dir.join(f))
    }
}

/// Writes `model` as a package in `dir` (created if needed; files of an earlier package there are
/// replaced) and answers the descriptor as written.
///
/// From `meta` the package keeps the metrics, lineage, extra, `created_at` (0: now) and the
/// signature when one is given (its inputs must be the model's features, in order; an empty
/// signature is derived from the model). Format, flavor, task, learner and the ONNX fields come
/// from the model. `example`'s first rows become `input_example.json`; its columns must be the
/// model's features.
pub fn write_package(
    dir: &Path,
    model: &FittedModel,
    mut meta: PackageMeta,
    example: &Matrix,
) -> Result<PackageMeta> {
    let derived = Signature::for_model(model);
    if meta.signature.inputs.is_empty() {
        meta.signature.inputs = derived.inputs;
    } else if meta.signature.input_names() != model.features {
        return Err(TrainError::Inconsistent {
            path: dir.to_path_buf(),
            message: format!(
                "the signature's inputs [{}] are not the model's features [{}]",
                meta.signature.input_names().join(", "),
                model.features.join(", ")
            ),
        });
    }
    if meta.signature.outputs.is_empty() {
        meta.signature.outputs = derived.outputs;
    }
    if example.names != model.features {
        return Err(TrainError::Inconsistent {
            path: dir.to_path_buf(),
            message: format!(
                "the input example's columns [{}] are not the model's features [{}]",
                example.names.join(", "),
                model.features.join(", ")
            ),
        });
    }
    meta.format_version = FORMAT_VERSION;
    meta.flavor = FLAVOR.into();
    meta.task = model.task;
    meta.learner = model.learner.clone();
    if meta.created_at == 0 {
        meta.created_at = kaizen_core::now_millis();
    }
    std::fs::create_dir_all(dir).map_err(|e| TrainError::io(dir, e))?;
    // A stale descriptor must not describe the files being replaced.
    remove_if_present(&dir.join(META_FILE))?;

    write_json(&dir.join(MODEL_FILE), model)?;
    write_json(&dir.join(EXAMPLE_FILE), &input_example(example))?;
    let onnx_path = dir.join(ONNX_FILE);
    match export_onnx(model) {
        Ok(bytes) => {
            std::fs::write(&onnx_path, bytes).map_err(|e| TrainError::io(&onnx_path, e))?;
            meta.onnx = Some(ONNX_FILE.into());
            meta.onnx_error = None;
        }
        Err(e) => {
            tracing::info!(error = %e, dir = %dir.display(), "model not exported to ONNX");
            remove_if_present(&onnx_path)?;
            meta.onnx = None;
            meta.onnx_error = Some(e.to_string());
        }
    }
    let mlmodel = dir.join(MLMODEL_FILE);
    std::fs::write(&mlmodel, mlmodel_yaml(&meta)).map_err(|e| TrainError::io(&mlmodel, e))?;
    write_json(&dir.join(META_FILE), &meta)?;
    tracing::debug!(dir = %dir.display(), onnx = meta.onnx.is_some(), "model package written");
    Ok(meta)
}

/// Reads the package in `dir`, checking that it is complete and consistent.
pub fn read_package(dir: &Path) -> Result<Package> {
    let meta: PackageMeta = read_descriptor(&dir.join(META_FILE), FORMAT_VERSION)?;
    let inconsistent = |message: String| TrainError::Inconsistent {
        path: dir.to_path_buf(),
        message,
    };
    if meta.flavor != FLAVOR {
        return Err(inconsistent(format!(
            "flavor is `{}`, not `{FLAVOR}`",
            meta.flavor
        )));
    }
    let model: FittedModel = read_json(&dir.join(MODEL_FILE))?;
    if meta.signature.input_names() != model.features {
        return Err(inconsistent(format!(
            "the model's features [{}] are not the signature's inputs [{}]",
            model.features.join(", "),
            meta.signature.input_names().join(", ")
        )));
    }
    if model.task != meta.task {
        return Err(inconsistent(format!(
            "the model's task {:?} is not the descriptor's {:?}",
            model.task, meta.task
        )));
    }
    if let Some(onnx) = &meta.onnx {
        let path = dir.join(onnx);
        if !path.is_file() {
            return Err(TrainError::MissingFile { path });
        }
    }
    Ok(Package {
        dir: dir.to_path_buf(),
        meta,
        model,
    })
}

/// The model as ONNX bytes, or why it has none.
fn export_onnx(model: &FittedModel) -> Result<Vec<u8>, String> {
    model.to_onnx().map_err(|e| e.to_string())
}

/// MLflow's `dataframe_split` shape of the first rows: `{"columns": [...], "data": [[...]]}`.
fn input_example(example: &Matrix) -> serde_json::Value {
    let rows: Vec<Vec<f64>> = (0..example.rows.min(EXAMPLE_ROWS))
        .map(|i| example.row(i))
        .collect();
    serde_json::json!({"columns": example.names, "data": rows})
}

/// MLflow's `MLmodel` file. Hand-written YAML: every string is single-quoted, so nothing in a
/// name can change the structure.
fn mlmodel_yaml(meta: &PackageMeta) -> String {
    let q = |s: &str| format!("'{}'", s.replace('\'', "''"));
    let task = match meta.task {
        Task::Regression => "regression".to_string(),
        Task::Binary => "binary".to_string(),
        Task::Multiclass { classes } => format!("multiclass({classes})"),
    };
    let created = chrono::DateTime::from_timestamp_millis(meta.created_at)
        .unwrap_or_default()
        .format("%Y-%m-%d %H:%M:%S%.6f")
        .to_string();
    let mut y = String::new();
    y.push_str("artifact_path: model\n");
    y.push_str("flavors:\n");
    y.push_str("  kaizen:\n");
    y.push_str(&format!("    format_version: {}\n", meta.format_version));
    y.push_str(&format!(
        "    kaizen_version: {}\n",
        q(&meta.lineage.kaizen_version)
    ));
    y.push_str(&format!("    learner: {}\n", q(&meta.learner)));
    y.push_str(&format!("    meta_file: {}\n", q(META_FILE)));
    y.push_str(&format!("    model_file: {}\n", q(MODEL_FILE)));
    y.push_str(&format!("    task: {}\n", q(&task)));
    if let Some(onnx) = &meta.onnx {
        // `data` is what `mlflow.onnx.load_model` reads.
        y.push_str("  onnx:\n");
        y.push_str(&format!("    data: {}\n", q(onnx)));
        y.push_str(&format!("    onnx_model_path: {}\n", q(onnx)));
        y.push_str("    providers:\n    - CPUExecutionProvider\n");
    }
    y.push_str(&format!(
        "model_uuid: {}\n",
        q(&uuid::Uuid::new_v4().simple().to_string())
    ));
    if !meta.lineage.run_id.is_empty() {
        y.push_str(&format!("run_id: {}\n", q(&meta.lineage.run_id)));
    }
    y.push_str("saved_input_example_info:\n");
    y.push_str(&format!("  artifact_path: {}\n", q(EXAMPLE_FILE)));
    y.push_str("  pandas_orient: split\n");
    y.push_str("  type: dataframe\n");
    y.push_str("signature:\n");
    y.push_str(&format!(
        "  inputs: {}\n",
        q(&Signature::mlflow_json(&meta.signature.inputs))
    ));
    y.push_str(&format!(
        "  outputs: {}\n",
        q(&Signature::mlflow_json(&meta.signature.outputs))
    ));
    y.push_str("  params: null\n");
    y.push_str(&format!("utc_time_created: {}\n", q(&created)));
    y
}

fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let bytes = serde_json::to_vec_pretty(value).map_err(|source| TrainError::Json {
        path: path.to_path_buf(),
        source,
    })?;
    std::fs::write(path, bytes).map_err(|e| TrainError::io(path, e))
}

/// Reads a package's descriptor at `path`, refusing any `format_version` but `expected` before
/// reading the rest (a newer kaizen's package is named as such, not as malformed JSON).
pub(crate) fn read_descriptor<T: serde::de::DeserializeOwned>(
    path: &Path,
    expected: u32,
) -> Result<T> {
    let raw: serde_json::Value = read_json(path)?;
    match raw.get("format_version") {
        Some(v) if v.as_u64() == Some(u64::from(expected)) => {}
        found => {
            return Err(TrainError::FormatVersion {
                path: path.to_path_buf(),
                found: found.map_or_else(|| "none".into(), |v| v.to_string()),
                expected,
            });
        }
    }
    serde_json::from_value(raw).map_err(|source| TrainError::Json {
        path: path.to_path_buf(),
        source,
    })
}

pub(crate) fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let bytes = std::fs::read(path).map_err(|e| TrainError::io(path, e))?;
    serde_json::from_slice(&bytes).map_err(|source| TrainError::Json {
        path: path.to_path_buf(),
        source,
    })
}

fn remove_if_present(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(TrainError::io(path, e)),
        _ => Ok(()),
    }
}

/// A map of numbers where NaN (which JSON cannot hold) is written as `null` and read back.
pub(crate) mod nan_as_null {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(map: &BTreeMap<String, f64>, s: S) -> Result<S::Ok, S::Error> {
        let out: BTreeMap<&String, Option<f64>> = map
            .iter()
            .map(|(k, v)| (k, v.is_finite().then_some(*v)))
            .collect();
        out.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, f64>, D::Error> {
        let raw = BTreeMap::<String, Option<f64>>::deserialize(d)?;
        Ok(raw
            .into_iter()
            .map(|(k, v)| (k, v.unwrap_or(f64::NAN)))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mlmodel_quotes_strings_and_lists_the_signature() {
        let meta = PackageMeta {
            format_version: 1,
            flavor: FLAVOR.into(),
            task: Task::Regression,
            learner: "gbdt".into(),
            signature: Signature {
                inputs: vec![ColumnSpec::double("it's")],
                outputs: vec![ColumnSpec::double("prediction")],
            },
            metrics: BTreeMap::new(),
            lineage: Lineage {
                run_id: "r1".into(),
                kaizen_version: "0.1.0".into(),
                ..Default::default()
            },
            created_at: 0,
            onnx: Some(ONNX_FILE.into()),
            onnx_error: None,
            extra: serde_json::Value::Null,
        };
        let y = mlmodel_yaml(&meta);
        assert!(
            y.contains(r#"  inputs: '[{"type": "double", "name": "it''s", "required": true}]'"#),
            "{y}"
        );
        assert!(y.contains("    onnx_model_path: 'model.onnx'\n"), "{y}");
        assert!(y.contains("run_id: 'r1'\n"), "{y}");
        assert!(
            y.contains("utc_time_created: '1970-01-01 00:00:00.000000'\n"),
            "{y}"
        );
    }

    #[test]
    fn nan_metrics_round_trip_as_null() {
        #[derive(Serialize, Deserialize)]
        struct M(#[serde(with = "nan_as_null")] BTreeMap<String, f64>);
        let m = M(BTreeMap::from([("a".into(), f64::NAN), ("b".into(), 1.5)]));
        let text = serde_json::to_string(&m).unwrap();
        assert_eq!(text, r#"{"a":null,"b":1.5}"#);
        let back: M = serde_json::from_str(&text).unwrap();
        assert!(back.0["a"].is_nan());
        assert_eq!(back.0["b"], 1.5);
    }
}
