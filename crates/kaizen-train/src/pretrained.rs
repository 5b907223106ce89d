//! Packages of pretrained models, which `kaizen serve` serves as it serves trained ones:
//!
//! - an **embedder** (`task: embed`): a sentence-embedding model in Hugging Face layout
//!   registered as it is; its files are the package, `kaizen-pretrained.json` and `MLmodel`
//!   beside them;
//! - a **text classifier** (`task: text_classifier`): a logistic-regression head trained over
//!   the frozen embeddings of such a model (`kaizen train-classifier`). The package holds the head
//!   (`head.json`) and names the embedder it needs by name and the SHA-256 of its
//!   `model.safetensors`, instead of a copy of its weights in every version; the loader finds
//!   the embedder in the models directory and refuses one whose weights differ.
//!
//! ```text
//! kaizen-pretrained.json  PretrainedMeta: task, text column, embedder, labels, metrics, lineage
//! head.json               the FittedModel over the embedding (text_classifier)
//! input_example.json      a few texts in MLflow's `dataframe_split` shape
//! MLmodel                 MLflow's descriptor (flavor `kaizen_pretrained`, a string column in)
//! config.json, ...        the model's own files (embed)
//! ```
//!
//! `kaizen-pretrained.json` is written last, so a directory without it is not a package.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use kaizen_core::Tag;
use kaizen_ml::{FittedModel, Task};
use kaizen_tracking::{Actor, Services};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Result, TrainError};
use crate::package::{ColumnSpec, Lineage, Signature, read_descriptor, read_json};
use crate::runs::{self, slug};

/// The descriptor's file name; its presence makes a directory a pretrained package.
pub const PRETRAINED_FILE: &str = "kaizen-pretrained.json";
/// The classification head of a text classifier.
pub const HEAD_FILE: &str = "head.json";
/// The weights file whose hash identifies an embedding model.
pub const WEIGHTS_FILE: &str = "model.safetensors";
/// The flavor in `kaizen-pretrained.json` and `MLmodel`.
pub const PRETRAINED_FLAVOR: &str = "kaizen_pretrained";
/// The package format this crate writes and reads.
pub const PRETRAINED_FORMAT: u32 = 1;
/// Texts kept in `input_example.json`.
const EXAMPLE_ROWS: usize = 5;

/// What a pretrained package answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PretrainedTask {
    /// One embedding per text.
    Embed,
    /// A label and the class probabilities per text.
    TextClassifier,
}

impl PretrainedTask {
    pub fn as_str(self) -> &'static str {
        match self {
            PretrainedTask::Embed => "embed",
            PretrainedTask::TextClassifier => "text_classifier",
        }
    }
}

/// The sentence-embedding model a package needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmbedderRef {
    /// Its directory's name (`all-MiniLM-L6-v2`), looked up under the models directory.
    pub name: String,
    /// SHA-256 of its `model.safetensors`, in hex: the identity the loader checks.
    pub sha256: String,
    /// The length of an embedding.
    pub dim: usize,
    /// Where it was when the package was written: the loader's second place to look.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

/// `kaizen-pretrained.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PretrainedMeta {
    pub format_version: u32,
    pub flavor: String,
    pub task: PretrainedTask,
    /// The one input column, text.
    pub text_column: String,
    /// The embedding model: the package's own files (embed) or one it needs (text_classifier).
    pub embedder: EmbedderRef,
    /// The class labels, class `i` being `labels[i]` (text_classifier).
    #[serde(default)]
    pub labels: Vec<String>,
    /// Held-out metrics; NaN is written as `null`.
    #[serde(default, with = "crate::package::nan_as_null")]
    pub metrics: BTreeMap<String, f64>,
    pub lineage: Lineage,
    /// Milliseconds since the epoch.
    pub created_at: i64,
}

impl PretrainedMeta {
    /// The descriptor of `task` over `embedder`, created now, without labels or metrics.
    pub fn new(
        task: PretrainedTask,
        text_column: impl Into<String>,
        embedder: EmbedderRef,
        lineage: Lineage,
    ) -> PretrainedMeta {
        PretrainedMeta {
            format_version: PRETRAINED_FORMAT,
            flavor: PRETRAINED_FLAVOR.into(),
            task,
            text_column: text_column.into(),
            embedder,
            labels: Vec::new(),
            metrics: BTreeMap::new(),
            lineage,
            created_at: kaizen_core::now_millis(),
        }
    }
}

/// A pretrained package read back.
#[derive(Debug, Clone)]
pub struct PretrainedPackage {
    pub dir: PathBuf,
    pub meta: PretrainedMeta,
    /// The classification head (text_classifier).
    pub head: Option<FittedModel>,
}

/// Whether `dir` holds a pretrained package.
pub fn is_pretrained(dir: &Path) -> bool {
    dir.join(PRETRAINED_FILE).is_file()
}

/// SHA-256 of a file, in hex, read in blocks.
pub fn file_sha256(path: &Path) -> Result<String> {
    let mut file = std::fs::File::open(path).map_err(|e| TrainError::io(path, e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(|e| TrainError::io(path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// Writes a text classifier's package in `dir` (created if needed): the head, the descriptor,
/// an input example of `examples`' first texts and `MLmodel`.
pub fn write_classifier_package(
    dir: &Path,
    head: &FittedModel,
    meta: &PretrainedMeta,
    examples: &[String],
) -> Result<()> {
    let inconsistent = |message: String| TrainError::Inconsistent {
        path: dir.to_path_buf(),
        message,
    };
    if meta.task != PretrainedTask::TextClassifier {
        return Err(inconsistent(format!(
            "a classifier package with task `{}`",
            meta.task.as_str()
        )));
    }
    check_head(head, meta).map_err(inconsistent)?;
    std::fs::create_dir_all(dir).map_err(|e| TrainError::io(dir, e))?;
    write_json(&dir.join(HEAD_FILE), head)?;
    finish_package(dir, meta, examples)
}

/// Writes the descriptor, an input example and `MLmodel` of an embedder whose files are already
/// in `dir`.
pub fn write_embedder_package(
    dir: &Path,
    meta: &PretrainedMeta,
    examples: &[String],
) -> Result<()> {
    if meta.task != PretrainedTask::Embed {
        return Err(TrainError::Inconsistent {
            path: dir.to_path_buf(),
            message: format!("an embedder package with task `{}`", meta.task.as_str()),
        });
    }
    let weights = dir.join(WEIGHTS_FILE);
    if !weights.is_file() {
        return Err(TrainError::MissingFile { path: weights });
    }
    finish_package(dir, meta, examples)
}

fn finish_package(dir: &Path, meta: &PretrainedMeta, examples: &[String]) -> Result<()> {
    let rows: Vec<[&str; 1]> = examples
        .iter()
        .take(EXAMPLE_ROWS)
        .map(|t| [t.as_str()])
        .collect();
    write_json(
        &dir.join(crate::package::EXAMPLE_FILE),
        &serde_json::json!({"columns": [meta.text_column], "data": rows}),
    )?;
    let mlmodel = dir.join(crate::package::MLMODEL_FILE);
    std::fs::write(&mlmodel, mlmodel_yaml(meta)).map_err(|e| TrainError::io(&mlmodel, e))?;
    write_json(&dir.join(PRETRAINED_FILE), meta)
}

/// Whether the head fits the descriptor: one feature per embedding dimension, one class per
/// label.
fn check_head(head: &FittedModel, meta: &PretrainedMeta) -> std::result::Result<(), String> {
    if head.features.len() != meta.embedder.dim {
        return Err(format!(
            "the head takes {} features; the embedder `{}` gives {}",
            head.features.len(),
            meta.embedder.name,
            meta.embedder.dim
        ));
    }
    let classes = match head.task {
        Task::Binary => 2,
        Task::Multiclass { classes } => classes,
        Task::Regression => return Err("the head is a regression model".into()),
    };
    if classes != meta.labels.len() {
        return Err(format!(
            "the head has {classes} classes; the descriptor lists {} labels",
            meta.labels.len()
        ));
    }
    Ok(())
}

/// Reads the pretrained package in `dir`, checking that it is complete and consistent.
pub fn read_pretrained(dir: &Path) -> Result<PretrainedPackage> {
    let meta: PretrainedMeta = read_descriptor(&dir.join(PRETRAINED_FILE), PRETRAINED_FORMAT)?;
    let inconsistent = |message: String| TrainError::Inconsistent {
        path: dir.to_path_buf(),
        message,
    };
    if meta.flavor != PRETRAINED_FLAVOR {
        return Err(inconsistent(format!(
            "flavor is `{}`, not `{PRETRAINED_FLAVOR}`",
            meta.flavor
        )));
    }
    let head = match meta.task {
        PretrainedTask::Embed => {
            let weights = dir.join(WEIGHTS_FILE);
            if !weights.is_file() {
                return Err(TrainError::MissingFile { path: weights });
            }
            None
        }
        PretrainedTask::TextClassifier => {
            let head: FittedModel = read_json(&dir.join(HEAD_FILE))?;
            check_head(&head, &meta).map_err(inconsistent)?;
            Some(head)
        }
    };
    Ok(PretrainedPackage {
        dir: dir.to_path_buf(),
        meta,
        head,
    })
}

/// MLflow's `MLmodel` of a pretrained package: the `kaizen_pretrained` flavor and a signature
/// of one string column in. Hand-written YAML with every string single-quoted.
fn mlmodel_yaml(meta: &PretrainedMeta) -> String {
    let q = |s: &str| format!("'{}'", s.replace('\'', "''"));
    let created = chrono::DateTime::from_timestamp_millis(meta.created_at)
        .unwrap_or_default()
        .format("%Y-%m-%d %H:%M:%S%.6f")
        .to_string();
    let outputs = match meta.task {
        PretrainedTask::Embed => vec![ColumnSpec {
            name: "embedding".into(),
            dtype: "tensor".into(),
        }],
        PretrainedTask::TextClassifier => vec![ColumnSpec {
            name: "label".into(),
            dtype: "string".into(),
        }],
    };
    let inputs = vec![ColumnSpec {
        name: meta.text_column.clone(),
        dtype: "string".into(),
    }];
    let mut y = String::new();
    y.push_str("artifact_path: model\n");
    y.push_str("flavors:\n");
    y.push_str(&format!("  {PRETRAINED_FLAVOR}:\n"));
    y.push_str(&format!("    embedder: {}\n", q(&meta.embedder.name)));
    y.push_str(&format!(
        "    embedder_sha256: {}\n",
        q(&meta.embedder.sha256)
    ));
    y.push_str(&format!("    format_version: {}\n", meta.format_version));
    y.push_str(&format!(
        "    kaizen_version: {}\n",
        q(&meta.lineage.kaizen_version)
    ));
    y.push_str(&format!("    meta_file: {}\n", q(PRETRAINED_FILE)));
    y.push_str(&format!("    task: {}\n", q(meta.task.as_str())));
    y.push_str(&format!(
        "model_uuid: {}\n",
        q(&uuid::Uuid::new_v4().simple().to_string())
    ));
    if !meta.lineage.run_id.is_empty() {
        y.push_str(&format!("run_id: {}\n", q(&meta.lineage.run_id)));
    }
    y.push_str("saved_input_example_info:\n");
    y.push_str(&format!(
        "  artifact_path: {}\n",
        q(crate::package::EXAMPLE_FILE)
    ));
    y.push_str("  pandas_orient: split\n");
    y.push_str("  type: dataframe\n");
    y.push_str("signature:\n");
    y.push_str(&format!(
        "  inputs: {}\n",
        q(&Signature::mlflow_json(&inputs))
    ));
    y.push_str(&format!(
        "  outputs: {}\n",
        q(&Signature::mlflow_json(&outputs))
    ));
    y.push_str("  params: null\n");
    y.push_str(&format!("utc_time_created: {}\n", q(&created)));
    y
}

/// The version tags of a pretrained package: its lineage and metrics as every package's, and
/// what it is (`kaizen.pretrained.task`, the embedder's name and hash).
pub fn version_tags(meta: &PretrainedMeta, run_id: &str) -> Vec<Tag> {
    let mut tags = crate::register::lineage_tags(&meta.lineage, &meta.metrics, run_id);
    tags.push(Tag::new("kaizen.pretrained.task", meta.task.as_str()));
    tags.push(Tag::new("kaizen.pretrained.embedder", &meta.embedder.name));
    tags.push(Tag::new(
        "kaizen.pretrained.embedder_sha256",
        &meta.embedder.sha256,
    ));
    tags
}

/// What `kaizen models register-pretrained` did.
#[derive(Debug, Clone, Serialize)]
pub struct RegisteredPretrained {
    pub model_name: String,
    pub model_version: String,
    pub run_id: String,
    pub task: PretrainedTask,
    pub embedder: EmbedderRef,
    /// Files copied into the version (the descriptor and `MLmodel` included).
    pub files: usize,
    pub bytes: u64,
}

/// Registers the sentence-embedding model in `model_dir` (Hugging Face layout) as a new version
/// of `model_name`: a run in `experiment` records it (params: the model's name, hash and
/// dimension) and holds the package, its files copied, as its `model/` artifacts.
pub async fn register_embedder(
    services: &Services,
    model_dir: &Path,
    embedder: EmbedderRef,
    model_name: &str,
    experiment: &str,
    user: &str,
) -> Result<RegisteredPretrained> {
    let run_id = runs::start(
        services,
        runs::JobRun {
            experiment,
            user,
            parent_run_id: None,
            source: "kaizen models register-pretrained",
            task: "register-pretrained",
            run_name: format!("pretrained-{}", slug(&embedder.name)),
        },
    )
    .await?;
    let outcome: Result<RegisteredPretrained> = async {
        let params = vec![
            kaizen_core::Param::new("task", PretrainedTask::Embed.as_str()),
            kaizen_core::Param::new("embedder", embedder.name.clone()),
            kaizen_core::Param::new("embedder_sha256", embedder.sha256.clone()),
            kaizen_core::Param::new("dim", embedder.dim.to_string()),
            kaizen_core::Param::new("source", model_dir.display().to_string()),
        ];
        services
            .tracking
            .log_batch(&run_id, &[], &params, &[])
            .await?;
        let package = tempfile::tempdir().map_err(|e| TrainError::io(std::env::temp_dir(), e))?;
        let (files, bytes) = copy_tree(model_dir, package.path())?;
        let mut lineage = Lineage::current(
            &run_id,
            &[model_dir.display().to_string()],
            None,
            Path::new("."),
        );
        // The repository kaizen runs in says nothing about a model brought from elsewhere.
        lineage.git_commit = None;
        lineage.git_dirty = None;
        let meta = PretrainedMeta::new(PretrainedTask::Embed, "text", embedder.clone(), lineage);
        write_embedder_package(package.path(), &meta, &["A sentence to embed.".to_string()])?;
        let actor = Actor {
            user: Some(user.to_string()),
            reason: Some("kaizen models register-pretrained".into()),
        };
        let version = crate::register::register_dir(
            services,
            &run_id,
            package.path(),
            model_name,
            &actor,
            version_tags(&meta, &run_id),
            &[],
        )
        .await?;
        Ok(RegisteredPretrained {
            model_name: model_name.to_string(),
            model_version: version.version.to_string(),
            run_id: run_id.clone(),
            task: PretrainedTask::Embed,
            embedder,
            files: files + 3,
            bytes,
        })
    }
    .await;
    runs::finish(services, &run_id, outcome).await
}

/// Copies the regular files under `from` to `to` (symbolic links followed, hidden entries and a
/// stale descriptor left out); answers the files and bytes copied.
fn copy_tree(from: &Path, to: &Path) -> Result<(usize, u64)> {
    let mut files = 0;
    let mut bytes = 0;
    let mut todo = vec![PathBuf::new()];
    while let Some(relative) = todo.pop() {
        let dir = from.join(&relative);
        let entries = std::fs::read_dir(&dir).map_err(|e| TrainError::io(&dir, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| TrainError::io(&dir, e))?;
            let name = entry.file_name();
            let text = name.to_string_lossy();
            if text.starts_with('.')
                || text == PRETRAINED_FILE
                || text == crate::package::MLMODEL_FILE
            {
                continue;
            }
            let path = entry.path();
            let rel = relative.join(&name);
            let meta = std::fs::metadata(&path).map_err(|e| TrainError::io(&path, e))?;
            if meta.is_dir() {
                std::fs::create_dir_all(to.join(&rel)).map_err(|e| TrainError::io(to, e))?;
                todo.push(rel);
            } else if meta.is_file() {
                let target = to.join(&rel);
                bytes += std::fs::copy(&path, &target).map_err(|e| TrainError::io(&target, e))?;
                files += 1;
            }
        }
    }
    Ok((files, bytes))
}

fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let bytes = serde_json::to_vec_pretty(value).map_err(|source| TrainError::Json {
        path: path.to_path_buf(),
        source,
    })?;
    std::fs::write(path, bytes).map_err(|e| TrainError::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kaizen_ml::learner::{Link, ModelParams};

    fn head(dim: usize, classes: usize) -> FittedModel {
        FittedModel {
            task: Task::Multiclass { classes },
            features: (0..dim).map(|i| format!("e{i}")).collect(),
            learner: "logistic".into(),
            params: ModelParams::Linear {
                coefficients: vec![vec![0.5; dim]; classes],
                intercepts: vec![0.0; classes],
                link: Link::Softmax,
            },
            best_iteration: None,
        }
    }

    fn meta(dim: usize, labels: &[&str]) -> PretrainedMeta {
        let mut meta = PretrainedMeta::new(
            PretrainedTask::TextClassifier,
            "text",
            EmbedderRef {
                name: "mini".into(),
                sha256: "ab".repeat(32),
                dim,
                source: None,
            },
            Lineage {
                run_id: "r1".into(),
                kaizen_version: "0.1.0".into(),
                ..Default::default()
            },
        );
        meta.labels = labels.iter().map(|l| l.to_string()).collect();
        meta
    }

    #[test]
    fn a_classifier_package_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let meta = meta(4, &["a", "b", "c"]);
        write_classifier_package(dir.path(), &head(4, 3), &meta, &["it's one".into()]).unwrap();
        assert!(is_pretrained(dir.path()));
        let back = read_pretrained(dir.path()).unwrap();
        assert_eq!(back.meta, meta);
        assert_eq!(back.head.unwrap(), head(4, 3));
        let mlmodel = std::fs::read_to_string(dir.path().join("MLmodel")).unwrap();
        assert!(
            mlmodel
                .contains(r#"  inputs: '[{"type": "string", "name": "text", "required": true}]'"#),
            "{mlmodel}"
        );
        assert!(
            mlmodel.contains("    task: 'text_classifier'\n"),
            "{mlmodel}"
        );
        let example = std::fs::read_to_string(dir.path().join("input_example.json")).unwrap();
        assert!(example.contains("it's one"), "{example}");
    }

    #[test]
    fn an_inconsistent_package_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let err =
            write_classifier_package(dir.path(), &head(4, 2), &meta(4, &["a", "b", "c"]), &[])
                .unwrap_err()
                .to_string();
        assert!(
            err.contains("2 classes; the descriptor lists 3 labels"),
            "{err}"
        );
        let err = write_classifier_package(dir.path(), &head(3, 2), &meta(4, &["a", "b"]), &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("the head takes 3 features"), "{err}");
        assert!(!is_pretrained(dir.path()));
        // An embedder package needs its weights.
        let mut embed = meta(4, &[]);
        embed.task = PretrainedTask::Embed;
        let err = write_embedder_package(dir.path(), &embed, &[]).unwrap_err();
        assert!(matches!(err, TrainError::MissingFile { .. }), "{err}");
    }

    #[test]
    fn sha256_of_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"abc").unwrap();
        assert_eq!(
            file_sha256(&path).unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
