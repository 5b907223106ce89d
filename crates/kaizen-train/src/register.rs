//! Registering a model package as a model version, with its lineage, and finding the package of a
//! version again.

use std::path::{Path, PathBuf};

use kaizen_artifacts::ArtifactPath;
use kaizen_core::{Error, ModelVersion, Tag};
use kaizen_store::LineageEdge;
use kaizen_tracking::{Actor, NewModelVersion, Services};

use crate::error::{Result, TrainError};
use crate::package::{Package, read_package};

/// Where a run keeps its model package, under its artifacts.
pub const MODEL_ARTIFACT_DIR: &str = "model";
/// The prefix of the version tags that carry a package's lineage.
pub const LINEAGE_TAG_PREFIX: &str = "kaizen.lineage.";
/// The prefix of the version tags that carry a package's metrics.
pub const METRIC_TAG_PREFIX: &str = "kaizen.metric.";

/// Uploads the package in `package_dir` as the artifacts `model/` of run `run_id`, and registers
/// it as a new version of `model_name` (created when absent) with source `runs:/<run_id>/model`.
/// The version is tagged with the package's lineage (`kaizen.lineage.*`) and metrics
/// (`kaizen.metric.*`), and the lineage graph gets an edge from each of its data sets and from
/// the registry's run of the version, to the model node `<name>/<version>`.
pub async fn register_package(
    services: &Services,
    run_id: &str,
    package_dir: &Path,
    model_name: &str,
    actor: &Actor,
) -> Result<ModelVersion> {
    let package = read_package(package_dir)?;
    register_dir(
        services,
        run_id,
        package_dir,
        model_name,
        actor,
        version_tags(&package, run_id),
        &package.meta.lineage.datasets,
    )
    .await
}

/// Uploads the model directory `package_dir` (a package of any flavor) as the artifacts
/// `model/` of run `run_id` and registers it as a new version of `model_name` (created when
/// absent) with source `runs:/<run_id>/model` and `tags`, with a lineage edge from each of
/// `datasets` to the model node `<name>/<version>`.
pub async fn register_dir(
    services: &Services,
    run_id: &str,
    package_dir: &Path,
    model_name: &str,
    actor: &Actor,
    tags: Vec<Tag>,
    datasets: &[String],
) -> Result<ModelVersion> {
    let run = services.tracking.get_run(run_id).await?;
    let target = run_model_dir(&run.info.artifact_uri)?;
    upload_dir(services, package_dir, &target).await?;

    match services.registry.get_registered_model(model_name).await {
        Ok(_) => {}
        Err(e) if e.is_not_found() => {
            match services
                .registry
                .create_registered_model(model_name, None, &[], actor)
                .await
            {
                // Another writer created it meanwhile.
                Err(e) if e.kind == kaizen_core::ErrorKind::AlreadyExists => {}
                other => {
                    other?;
                }
            }
        }
        Err(e) => return Err(e.into()),
    }

    let version = services
        .registry
        .create_model_version(
            NewModelVersion {
                name: model_name.to_string(),
                source: format!("runs:/{run_id}/{MODEL_ARTIFACT_DIR}"),
                run_id: Some(run_id.to_string()),
                user_id: actor.user.clone(),
                tags,
                ..Default::default()
            },
            actor,
        )
        .await?;

    // Model nodes are `NAME/VERSION`, as `kaizen lineage` names them; the edge from the run is
    // the registry's own (the version's run id), so only the data sets are recorded here.
    let model_node = format!("{model_name}/{}", version.version);
    let now = kaizen_core::now_millis();
    let edge = |src_kind: &str, src_id: &str, relation: &str| LineageEdge {
        src_kind: src_kind.into(),
        src_id: src_id.into(),
        dst_kind: "model".into(),
        dst_id: model_node.clone(),
        relation: relation.into(),
        created: now,
    };
    let edges: Vec<LineageEdge> = datasets
        .iter()
        .map(|d| edge("dataset", d, "input"))
        .collect();
    services.store.add_lineage_edges(&edges).await?;
    tracing::info!(
        model = model_name,
        version = version.version,
        run_id,
        "model package registered"
    );
    Ok(version)
}

/// The version `version_or_alias` of `name` (a number, an alias, or `latest`) and its package,
/// read in place from the artifact store.
pub async fn load_version(
    services: &Services,
    name: &str,
    version_or_alias: &str,
) -> Result<(ModelVersion, Package)> {
    let (version, dir) = version_dir(services, name, version_or_alias).await?;
    let package = read_package(&dir)?;
    Ok((version, package))
}

/// The version `version_or_alias` of `name` and the local directory of its artifacts (a
/// package, or another MLflow model directory such as one with the `onnx` flavor).
pub async fn version_dir(
    services: &Services,
    name: &str,
    version_or_alias: &str,
) -> Result<(ModelVersion, PathBuf)> {
    let version = get_version(services, name, version_or_alias).await?;
    let dir = package_dir(services, &version).await?;
    Ok((version, dir))
}

/// A version by number, or by alias when `version_or_alias` is not a number.
pub(crate) async fn get_version(
    services: &Services,
    name: &str,
    version_or_alias: &str,
) -> Result<ModelVersion> {
    let v = version_or_alias.trim();
    let version = if !v.is_empty() && v.chars().all(|c| c.is_ascii_digit()) {
        services.registry.get_model_version(name, v).await?
    } else {
        services
            .registry
            .get_version_by_alias(name, v.trim_start_matches('@'))
            .await?
    };
    Ok(version)
}

/// The local directory of a version's package, from its source.
async fn package_dir(services: &Services, version: &ModelVersion) -> Result<PathBuf> {
    let source = version.source.as_str();
    let path = if let Some(rest) = source.strip_prefix("runs:/") {
        let (run_id, sub) = rest.split_once('/').unwrap_or((rest, ""));
        let run = services.tracking.get_run(run_id).await?;
        let base = kaizen_tracking::proxy_path(&run.info.artifact_uri)
            .ok_or_else(|| not_local(&version.name, version.version, &run.info.artifact_uri))?;
        ArtifactPath::parse(&join(base, sub))?
    } else if let Some(path) = kaizen_tracking::proxy_path(source) {
        ArtifactPath::parse(path)?
    } else {
        return Err(not_local(&version.name, version.version, source).into());
    };
    Ok(services.artifacts.local_path(&path)?)
}

fn not_local(name: &str, version: i64, location: &str) -> Error {
    Error::invalid(format!(
        "Model version {name}/{version} lives at '{location}', which is not in kaizen's artifact store"
    ))
}

fn join(base: &str, sub: &str) -> String {
    let sub = sub.trim_matches('/');
    if sub.is_empty() {
        base.to_string()
    } else {
        format!("{}/{sub}", base.trim_end_matches('/'))
    }
}

/// `<artifacts of the run>/model` in the artifact store.
fn run_model_dir(artifact_uri: &str) -> Result<ArtifactPath> {
    let base = kaizen_tracking::proxy_path(artifact_uri).ok_or_else(|| {
        TrainError::invalid(format!(
            "the run's artifact location '{artifact_uri}' is not served by kaizen's artifact store"
        ))
    })?;
    Ok(ArtifactPath::parse(&join(base, MODEL_ARTIFACT_DIR))?)
}

/// Uploads every file under `dir` to `target`, keeping relative paths.
async fn upload_dir(services: &Services, dir: &Path, target: &ArtifactPath) -> Result<()> {
    let mut todo = vec![dir.to_path_buf()];
    while let Some(current) = todo.pop() {
        let mut entries = tokio::fs::read_dir(&current)
            .await
            .map_err(|e| TrainError::io(&current, e))?;
        while let Some(entry) = entries
            .next_entry()
            .await
            .map_err(|e| TrainError::io(&current, e))?
        {
            let path = entry.path();
            let kind = entry
                .file_type()
                .await
                .map_err(|e| TrainError::io(&path, e))?;
            if kind.is_dir() {
                todo.push(path);
                continue;
            }
            let relative = path
                .strip_prefix(dir)
                .expect("walked from dir")
                .components()
                .map(|c| c.as_os_str().to_string_lossy())
                .collect::<Vec<_>>()
                .join("/");
            let bytes = tokio::fs::read(&path)
                .await
                .map_err(|e| TrainError::io(&path, e))?;
            services
                .artifacts
                .put(&target.join(&relative)?, bytes::Bytes::from(bytes))
                .await?;
        }
    }
    Ok(())
}

/// `kaizen.lineage.*` and `kaizen.metric.*` tags of a package.
fn version_tags(package: &Package, run_id: &str) -> Vec<Tag> {
    lineage_tags(&package.meta.lineage, &package.meta.metrics, run_id)
}

/// `kaizen.lineage.*` tags of `lineage` (the trainer `run_id` when it names none) and
/// `kaizen.metric.*` tags of `metrics`.
pub(crate) fn lineage_tags(
    lineage: &crate::package::Lineage,
    metrics: &std::collections::BTreeMap<String, f64>,
    run_id: &str,
) -> Vec<Tag> {
    let key = |k: &str| format!("{LINEAGE_TAG_PREFIX}{k}");
    let trained_by = if lineage.run_id.is_empty() {
        run_id
    } else {
        lineage.run_id.as_str()
    };
    let mut tags = vec![
        Tag::new(key("run_id"), trained_by),
        Tag::new(
            key("datasets"),
            serde_json::to_string(&lineage.datasets).unwrap_or_default(),
        ),
        Tag::new(key("kaizen_version"), &lineage.kaizen_version),
    ];
    if let Some(p) = &lineage.pipeline {
        tags.push(Tag::new(key("pipeline"), p));
    }
    if let Some(c) = &lineage.git_commit {
        tags.push(Tag::new(key("git_commit"), c));
    }
    if let Some(d) = lineage.git_dirty {
        tags.push(Tag::new(key("git_dirty"), d.to_string()));
    }
    for (name, value) in metrics {
        tags.push(Tag::new(
            format!("{METRIC_TAG_PREFIX}{name}"),
            value.to_string(),
        ));
    }
    tags
}
