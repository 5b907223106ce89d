//! Pretrained packages served (`kaizen_train::pretrained`): a registered sentence embedder
//! answers one embedding per text, a text classifier the label and class probabilities of its
//! head over the embeddings.
//!
//! A classifier names the embedder it needs by name and the SHA-256 of its weights. The loader
//! looks for it under the models directory ([`set_models_dir`]; `kaizen` sets its own) and then
//! where it was at training, and takes only a directory whose `model.safetensors` has that hash,
//! so a version is never scored on embeddings it was not trained on. Loaded embedders are shared
//! by hash: versions of one classifier, variants and hot swaps hold one copy of the weights.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock, Weak};

use kaizen_infer::Embedder;
use kaizen_ml::{ColumnData, FittedModel, Frame, Matrix};
use kaizen_train::pretrained::{
    EmbedderRef, PretrainedMeta, PretrainedTask, WEIGHTS_FILE, file_sha256, read_pretrained,
};

use crate::error::{Result, ServeError};
use crate::model::Prediction;

static MODELS_DIR: RwLock<Option<PathBuf>> = RwLock::new(None);

/// Where classifiers look for the embedder they need first: `<dir>/<name>`.
pub fn set_models_dir(dir: PathBuf) {
    *MODELS_DIR.write().unwrap_or_else(|e| e.into_inner()) = Some(dir);
}

fn models_dir() -> Option<PathBuf> {
    MODELS_DIR.read().unwrap_or_else(|e| e.into_inner()).clone()
}

/// Whether `dir` holds a pretrained package.
pub fn is_pretrained_model(dir: &Path) -> bool {
    kaizen_train::pretrained::is_pretrained(dir)
}

/// A loaded pretrained package.
pub struct PretrainedServed {
    pub meta: PretrainedMeta,
    embedder: Arc<Embedder>,
    /// Where the embedder was loaded from.
    pub embedder_dir: PathBuf,
    head: Option<FittedModel>,
}

impl std::fmt::Debug for PretrainedServed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PretrainedServed")
            .field("task", &self.meta.task)
            .field("embedder", &self.meta.embedder.name)
            .field("embedder_dir", &self.embedder_dir)
            .finish()
    }
}

fn load_error(path: &Path, message: impl Into<String>) -> ServeError {
    ServeError::Pretrained {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// File hashes by path, size and modification time: a version swap does not hash 90 MB again.
fn cached_sha256(path: &Path) -> Result<String> {
    type Key = (PathBuf, u64, Option<std::time::SystemTime>);
    static HASHES: Mutex<Option<HashMap<Key, String>>> = Mutex::new(None);
    let meta = std::fs::metadata(path)
        .map_err(|e| load_error(path, format!("cannot read the weights: {e}")))?;
    let key = (path.to_path_buf(), meta.len(), meta.modified().ok());
    if let Some(hash) = HASHES
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get_or_insert_with(HashMap::new)
        .get(&key)
    {
        return Ok(hash.clone());
    }
    let hash = file_sha256(path).map_err(ServeError::Package)?;
    HASHES
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get_or_insert_with(HashMap::new)
        .insert(key, hash.clone());
    Ok(hash)
}

/// The embedder with weights hash `sha256` in `dir`, loaded once per process while in use.
fn shared_embedder(dir: &Path, sha256: &str) -> Result<Arc<Embedder>> {
    static LOADED: Mutex<Option<HashMap<String, Weak<Embedder>>>> = Mutex::new(None);
    let mut loaded = LOADED.lock().unwrap_or_else(|e| e.into_inner());
    let map = loaded.get_or_insert_with(HashMap::new);
    if let Some(embedder) = map.get(sha256).and_then(Weak::upgrade) {
        return Ok(embedder);
    }
    let embedder = Arc::new(
        Embedder::load(dir)
            .map_err(|e| load_error(dir, format!("cannot load the embedding model: {e}")))?,
    );
    map.insert(sha256.to_string(), Arc::downgrade(&embedder));
    Ok(embedder)
}

/// The directory of the embedder `wanted`: `<models dir>/<name>`, then where it was at training;
/// the first whose weights have the wanted hash.
fn find_embedder(package: &Path, wanted: &EmbedderRef) -> Result<PathBuf> {
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(dir) = models_dir() {
        candidates.push(dir.join(&wanted.name));
    }
    if let Some(source) = &wanted.source {
        candidates.push(PathBuf::from(source));
    }
    let mut seen = Vec::new();
    for dir in candidates {
        let weights = dir.join(WEIGHTS_FILE);
        if !weights.is_file() {
            continue;
        }
        let hash = cached_sha256(&weights)?;
        if hash == wanted.sha256 {
            return Ok(dir);
        }
        seen.push(format!("{} has sha256 {hash}", weights.display()));
    }
    let looked = if seen.is_empty() {
        format!(
            "it is not in {}",
            models_dir()
                .map(|d| d.join(&wanted.name).display().to_string())
                .into_iter()
                .chain(wanted.source.clone())
                .collect::<Vec<_>>()
                .join(" nor in ")
        )
    } else {
        format!("but {}", seen.join("; "))
    };
    Err(load_error(
        package,
        format!(
            "the classifier needs the embedding model `{}` whose {WEIGHTS_FILE} has sha256 {}, \
             {looked}\nhint: install that model under the models directory (KAIZEN_MODELS) as \
             `{}`, or retrain the classifier on the model you have",
            wanted.name, wanted.sha256, wanted.name
        ),
    ))
}

impl PretrainedServed {
    /// The pretrained package in `dir`, with its embedder loaded.
    pub fn load(dir: &Path) -> Result<PretrainedServed> {
        let package = read_pretrained(dir)?;
        let meta = package.meta;
        let embedder_dir = match meta.task {
            PretrainedTask::Embed => {
                let hash = cached_sha256(&dir.join(WEIGHTS_FILE))?;
                if hash != meta.embedder.sha256 {
                    return Err(load_error(
                        dir,
                        format!(
                            "its {WEIGHTS_FILE} has sha256 {hash}, not the registered {}: the \
                             files changed after registration",
                            meta.embedder.sha256
                        ),
                    ));
                }
                dir.to_path_buf()
            }
            PretrainedTask::TextClassifier => find_embedder(dir, &meta.embedder)?,
        };
        let embedder = shared_embedder(&embedder_dir, &meta.embedder.sha256)?;
        if embedder.dim() != meta.embedder.dim {
            return Err(load_error(
                &embedder_dir,
                format!(
                    "the embedding model gives {} numbers, the package expects {}",
                    embedder.dim(),
                    meta.embedder.dim
                ),
            ));
        }
        Ok(PretrainedServed {
            meta,
            embedder,
            embedder_dir,
            head: package.head,
        })
    }

    /// The class labels (a classifier) or none (an embedder).
    pub fn labels(&self) -> &[String] {
        &self.meta.labels
    }

    /// One prediction per row of `frame`, whose one column is the text.
    pub fn score(&self, frame: &Frame) -> Result<Vec<Prediction>> {
        let column = frame.column(&self.meta.text_column).ok_or_else(|| {
            ServeError::bad_request(format!("missing column `{}`", self.meta.text_column))
        })?;
        let ColumnData::Text(values) = column else {
            return Err(ServeError::bad_request(format!(
                "column `{}` must be text",
                self.meta.text_column
            )));
        };
        let mut texts = Vec::with_capacity(values.len());
        for (i, v) in values.iter().enumerate() {
            match v {
                Some(t) if !t.trim().is_empty() => texts.push(t.as_str()),
                _ => {
                    return Err(ServeError::bad_request(format!(
                        "row {}: `{}` is empty; every row needs a text",
                        i + 1,
                        self.meta.text_column
                    )));
                }
            }
        }
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let vectors = self.embedder.embed(&texts).map_err(ServeError::Inference)?;
        let Some(head) = &self.head else {
            return Ok(vectors.into_iter().map(Prediction::Embedding).collect());
        };
        let dim = self.meta.embedder.dim;
        let columns: Vec<Vec<f64>> = (0..dim)
            .map(|j| vectors.iter().map(|v| f64::from(v[j])).collect())
            .collect();
        let x = Matrix::from_columns(head.features.clone(), columns);
        let labels = &self.meta.labels;
        Ok(head
            .predict_proba(&x)
            .into_iter()
            .map(|p| {
                let best = kaizen_ml::metrics::argmax(&p);
                Prediction::Class {
                    label: labels[best].clone(),
                    probabilities: labels.iter().cloned().zip(p).collect(),
                }
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_classifier_without_its_embedder_names_what_it_needs() {
        let dir = tempfile::tempdir().unwrap();
        let models = dir.path().join("models");
        let other = models.join("mini");
        std::fs::create_dir_all(&other).unwrap();
        std::fs::write(other.join(WEIGHTS_FILE), b"other weights").unwrap();
        set_models_dir(models.clone());
        let wanted = EmbedderRef {
            name: "mini".into(),
            sha256: "00".repeat(32),
            dim: 4,
            source: Some(dir.path().join("gone").display().to_string()),
        };
        let err = find_embedder(dir.path(), &wanted).unwrap_err().to_string();
        assert!(err.contains("needs the embedding model `mini`"), "{err}");
        assert!(
            err.contains(&format!(
                "has sha256 {}",
                file_sha256(&other.join(WEIGHTS_FILE)).unwrap()
            )),
            "{err}"
        );
        // The right weights are found by hash.
        let right = dir.path().join("gone");
        std::fs::create_dir_all(&right).unwrap();
        std::fs::write(right.join(WEIGHTS_FILE), b"the weights").unwrap();
        let wanted = EmbedderRef {
            sha256: file_sha256(&right.join(WEIGHTS_FILE)).unwrap(),
            ..wanted
        };
        assert_eq!(find_embedder(dir.path(), &wanted).unwrap(), right);
    }
}
