//! `kaizen datasets list|show`: the catalog of tabular pipeline outputs, read from the metadata
//! store in-process.

use std::process::ExitCode;

use anyhow::Context;
use kaizen_core::Error;
use kaizen_store::DatasetVersion;
use kaizen_tracking::Services;
use serde_json::{Value, json};

use crate::cli::{DatasetsCommand, TrackingArgs};
use crate::{printer, settings};

pub async fn run(cmd: DatasetsCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        DatasetsCommand::List { tracking } => list(&tracking).await,
        DatasetsCommand::Show { dataset, tracking } => show(&dataset, &tracking).await,
    }
}

/// The stores behind the catalog, opened in-process: the local home, or the metadata store that
/// `--tracking-uri` names (artifacts stay in the home). A server is refused: the catalog's files
/// are read in place.
pub(super) async fn open_local(tracking: &TrackingArgs, command: &str) -> anyhow::Result<Services> {
    let uri = tracking
        .tracking_uri
        .as_deref()
        .map(str::trim)
        .filter(|u| !u.is_empty());
    let store_uri = match uri {
        None => settings::default_store_uri(),
        Some(u) if u.starts_with("sqlite:") || u.starts_with("postgres") => u.to_string(),
        Some(u) if u.starts_with("http://") || u.starts_with("https://") => {
            return Err(Error::invalid(format!(
                "`kaizen {command}` reads the catalog and its files in-process; a server \
                 ('{u}') is not available yet\nhint: leave --tracking-uri and {} unset for the \
                 local home, or pass sqlite:///path or postgresql://...",
                settings::ENV_TRACKING_URI
            ))
            .into());
        }
        Some(u) => {
            return Err(Error::invalid(format!(
                "Unsupported tracking URI '{u}': use sqlite:///path or postgresql://..., or \
                 leave it unset for the local home"
            ))
            .into());
        }
    };
    let artifacts_uri = settings::default_artifacts_uri();
    Services::open(&store_uri, &artifacts_uri)
        .await
        .with_context(|| format!("cannot open the stores ({store_uri}, {artifacts_uri})"))
}

/// Splits `NAME@VERSION` (a positive integer after the last `@`); `NAME` alone is the latest.
pub(super) fn parse_name_version(text: &str) -> anyhow::Result<(String, Option<i64>)> {
    let Some((name, version)) = text.rsplit_once('@') else {
        return Ok((text.to_string(), None));
    };
    if version == "latest" {
        return Ok((name.to_string(), None));
    }
    match version.parse::<i64>() {
        Ok(v) if v >= 1 && !name.is_empty() => Ok((name.to_string(), Some(v))),
        _ => Err(Error::invalid(format!(
            "'{text}' is not a dataset version: use NAME or NAME@VERSION (a number from 1)"
        ))
        .into()),
    }
}

/// A dataset version by name, the latest when `version` is `None`. An unknown name is a
/// not-found error listing the known datasets; an unknown version lists the name's versions.
pub(super) async fn resolve(
    services: &Services,
    name: &str,
    version: Option<i64>,
) -> anyhow::Result<DatasetVersion> {
    let store = &services.store;
    match store.get_dataset_version(name, version).await {
        Ok(v) => return Ok(v),
        Err(e) if !e.is_not_found() => return Err(e.into()),
        Err(_) => {}
    }
    let known = store.list_datasets().await?;
    // SQL lowercases unquoted names; match a dataset whose name differs only in case.
    let folded: Vec<&DatasetVersion> = known
        .iter()
        .filter(|d| d.data.name.eq_ignore_ascii_case(name))
        .collect();
    if let [only] = folded.as_slice()
        && only.data.name != name
    {
        return Box::pin(resolve(services, &only.data.name.clone(), version)).await;
    }
    let message = if folded.is_empty() {
        let names: Vec<&str> = known.iter().map(|d| d.data.name.as_str()).collect();
        if names.is_empty() {
            format!(
                "unknown dataset '{name}': the catalog is empty (pipeline steps catalog their \
                 tabular outputs)"
            )
        } else {
            format!(
                "unknown dataset '{name}' (known datasets: {})",
                names.join(", ")
            )
        }
    } else {
        let versions = store.dataset_versions(name).await?;
        let list: Vec<String> = versions.iter().map(|v| v.version.to_string()).collect();
        format!(
            "dataset '{name}' has no version {} (versions: {})",
            version.unwrap_or_default(),
            list.join(", ")
        )
    };
    Err(Error::not_found(message).into())
}

fn version_json(v: &DatasetVersion) -> Value {
    json!({
        "name": v.data.name,
        "version": v.version,
        "format": v.data.format,
        "content_hash": v.data.content_hash,
        "artifact": format!("cas/{}", v.data.content_hash),
        "rows": v.data.rows,
        "run_id": v.data.run_id,
        "pipeline": v.data.pipeline,
        "step": v.data.step,
        "created": v.created,
    })
}

fn or_dash(s: &str) -> String {
    if s.is_empty() { "-".into() } else { s.into() }
}

async fn list(tracking: &TrackingArgs) -> anyhow::Result<ExitCode> {
    let services = open_local(tracking, "datasets list").await?;
    let datasets = services.store.list_datasets().await?;
    if tracking.json {
        printer::json(&Value::Array(datasets.iter().map(version_json).collect()));
        return Ok(ExitCode::SUCCESS);
    }
    if datasets.is_empty() {
        eprintln!("no datasets (pipeline steps catalog their tabular outputs)");
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<Vec<String>> = datasets
        .iter()
        .map(|d| {
            vec![
                d.data.name.clone(),
                d.version.to_string(),
                d.data.rows.to_string(),
                d.data.schema.as_array().map_or(0, Vec::len).to_string(),
                d.data.format.clone(),
                or_dash(&d.data.pipeline),
                or_dash(&d.data.step),
                printer::time(Some(d.created)),
            ]
        })
        .collect();
    printer::table(
        &[
            "NAME", "VERSION", "ROWS", "COLUMNS", "FORMAT", "PIPELINE", "STEP", "CREATED",
        ],
        &rows,
    );
    Ok(ExitCode::SUCCESS)
}

async fn show(dataset: &str, tracking: &TrackingArgs) -> anyhow::Result<ExitCode> {
    let (name, version) = parse_name_version(dataset)?;
    let services = open_local(tracking, "datasets show").await?;
    let shown = resolve(&services, &name, version).await?;
    let versions = services.store.dataset_versions(&shown.data.name).await?;
    if tracking.json {
        let mut out = version_json(&shown);
        out["schema"] = shown.data.schema.clone();
        out["stats"] = shown.data.stats.clone();
        out["versions"] = Value::Array(versions.iter().map(version_json).collect());
        printer::json(&out);
        return Ok(ExitCode::SUCCESS);
    }
    let d = &shown.data;
    println!("dataset:   {}", d.name);
    println!(
        "version:   {} (of {})",
        shown.version,
        versions.last().map_or(shown.version, |v| v.version)
    );
    println!("rows:      {}", d.rows);
    println!("format:    {}", d.format);
    println!("artifact:  cas/{}", d.content_hash);
    println!("run:       {}", or_dash(&d.run_id));
    println!("pipeline:  {} / {}", or_dash(&d.pipeline), or_dash(&d.step));
    println!("created:   {}", printer::time(Some(shown.created)));
    let cell = |v: &Value| match v {
        Value::Null => "-".to_string(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let columns: Vec<Vec<String>> = d
        .schema
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|f| {
            let column = f["name"].as_str().unwrap_or_default();
            let stats = &d.stats[column];
            vec![
                column.to_string(),
                cell(&f["type"]),
                if f["nullable"].as_bool().unwrap_or(true) {
                    "yes".into()
                } else {
                    "no".into()
                },
                cell(&stats["nulls"]),
                cell(&stats["min"]),
                cell(&stats["max"]),
            ]
        })
        .collect();
    printer::section(
        "columns",
        &["COLUMN", "TYPE", "NULLABLE", "NULLS", "MIN", "MAX"],
        columns,
    );
    let rows: Vec<Vec<String>> = versions
        .iter()
        .map(|v| {
            vec![
                v.version.to_string(),
                v.data.content_hash.chars().take(12).collect(),
                v.data.rows.to_string(),
                or_dash(&v.data.run_id),
                or_dash(&v.data.pipeline),
                or_dash(&v.data.step),
                printer::time(Some(v.created)),
            ]
        })
        .collect();
    printer::section(
        "versions",
        &[
            "VERSION", "HASH", "ROWS", "RUN", "PIPELINE", "STEP", "CREATED",
        ],
        rows,
    );
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_and_version() {
        assert_eq!(parse_name_version("sales").unwrap(), ("sales".into(), None));
        assert_eq!(
            parse_name_version("sales@3").unwrap(),
            ("sales".into(), Some(3))
        );
        assert_eq!(
            parse_name_version("sales@latest").unwrap(),
            ("sales".into(), None)
        );
        for bad in ["sales@0", "sales@x", "@2", "sales@-1"] {
            assert!(parse_name_version(bad).is_err(), "{bad}");
        }
    }
}
