//! `kaizen runs`: list, show, compare, delete.

use std::collections::{BTreeMap, BTreeSet};
use std::process::ExitCode;

use kaizen_client::{RunSearch, TrackingClient};
use kaizen_core::search::{self, EntityType};
use kaizen_core::{Metric, Run, ViewType};
use serde_json::{Map, Value, json};

use crate::cli::RunsCommand;
use crate::printer;

/// How many metric columns `runs list` shows.
const METRIC_COLUMNS: usize = 3;

pub async fn run(cmd: RunsCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        RunsCommand::List {
            tracking,
            experiment,
            filter,
            order_by,
            max_results,
        } => {
            let client = super::connect(&tracking).await?;
            let exp = client.resolve_experiment(&experiment).await?;
            let page = client
                .search_runs(&RunSearch {
                    experiment_ids: vec![exp.experiment_id.clone()],
                    filter: filter.clone(),
                    view: ViewType::ActiveOnly,
                    order_by: order_by.clone(),
                    max_results: Some(max_results),
                    page_token: None,
                })
                .await?;
            if tracking.json {
                let body =
                    json!({"runs": page.items.iter().map(kaizen_wire::run).collect::<Vec<_>>()});
                printer::json(&kaizen_wire::with_page_token(body, page.next_page_token));
            } else {
                let metrics = metric_columns(&page.items, &filter, &order_by);
                let mut headers = vec!["RUN_ID", "NAME", "STATUS", "STARTED"];
                headers.extend(metrics.iter().map(String::as_str));
                printer::table(&headers, &list_rows(&page.items, &metrics));
                if page.next_page_token.is_some() {
                    eprintln!(
                        "(more runs than --max-results {max_results}; raise it or narrow --filter)"
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        RunsCommand::Show { tracking, run_id } => {
            let client = super::connect(&tracking).await?;
            let run = client.get_run(&run_id).await?;
            if tracking.json {
                printer::json(&json!({"run": kaizen_wire::run(&run)}));
            } else {
                show(&run);
            }
            Ok(ExitCode::SUCCESS)
        }
        RunsCommand::Compare { tracking, run_ids } => {
            let client = super::connect(&tracking).await?;
            let runs = fetch(client.as_ref(), &run_ids).await?;
            if tracking.json {
                printer::json(&compare_json(&runs));
            } else {
                let (headers, rows) = compare_table(&runs);
                let headers: Vec<&str> = headers.iter().map(String::as_str).collect();
                printer::table(&headers, &rows);
            }
            Ok(ExitCode::SUCCESS)
        }
        RunsCommand::Delete { tracking, run_id } => {
            let client = super::connect(&tracking).await?;
            let run = client.get_run(&run_id).await?;
            client.delete_run(&run_id).await?;
            if tracking.json {
                printer::json(&json!({
                    "run_id": run.info.run_id,
                    "run_name": run.info.run_name,
                    "lifecycle_stage": "deleted",
                }));
            } else {
                println!("Deleted run {} ({}).", run.info.run_id, run.info.run_name);
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn fetch(client: &dyn TrackingClient, run_ids: &[String]) -> anyhow::Result<Vec<Run>> {
    let mut runs = Vec::with_capacity(run_ids.len());
    for id in run_ids {
        runs.push(client.get_run(id).await?);
    }
    Ok(runs)
}

/// The metrics worth a column: those the order and the filter name first, then the most common,
/// ties by name.
fn metric_columns(runs: &[Run], filter: &str, order_by: &[String]) -> Vec<String> {
    let mut named: Vec<String> = Vec::new();
    for clause in order_by {
        if let Ok(o) = search::parse_order_by(clause)
            && o.entity == Some(EntityType::Metric)
        {
            named.push(o.key);
        }
    }
    if let Ok(comparisons) = search::parse_filter(filter) {
        named.extend(
            comparisons
                .into_iter()
                .filter(|c| c.entity == Some(EntityType::Metric))
                .map(|c| c.key),
        );
    }
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for run in runs {
        for m in &run.data.metrics {
            *counts.entry(m.key.as_str()).or_default() += 1;
        }
    }
    let mut common: Vec<(&str, usize)> = counts.into_iter().collect();
    common.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let mut out: Vec<String> = Vec::new();
    for key in named
        .into_iter()
        .chain(common.into_iter().map(|(k, _)| k.to_string()))
    {
        if out.len() == METRIC_COLUMNS {
            break;
        }
        if !out.contains(&key) {
            out.push(key);
        }
    }
    out
}

fn metric_value(run: &Run, key: &str) -> Option<f64> {
    run.data
        .metrics
        .iter()
        .find(|m| m.key == key)
        .map(|m| m.value)
}

fn list_rows(runs: &[Run], metrics: &[String]) -> Vec<Vec<String>> {
    runs.iter()
        .map(|r| {
            let mut row = vec![
                r.info.run_id.clone(),
                r.info.run_name.clone(),
                r.info.status.as_str().to_string(),
                printer::time(r.info.start_time),
            ];
            row.extend(metrics.iter().map(|k| {
                metric_value(r, k)
                    .map(printer::number)
                    .unwrap_or_else(|| "-".into())
            }));
            row
        })
        .collect()
}

fn show(run: &Run) {
    let i = &run.info;
    println!("Run {}", i.run_id);
    let duration = match (i.start_time, i.end_time) {
        (Some(s), Some(e)) => printer::duration(e - s),
        _ => "-".into(),
    };
    let fields = [
        ("name", i.run_name.clone()),
        ("experiment", i.experiment_id.clone()),
        ("status", i.status.as_str().to_string()),
        ("user", i.user_id.clone()),
        ("started", printer::time(i.start_time)),
        ("ended", printer::time(i.end_time)),
        ("duration", duration),
        ("artifacts", i.artifact_uri.clone()),
        ("lifecycle", i.lifecycle_stage.as_str().to_string()),
    ];
    for (k, v) in fields {
        println!("  {k:<12}{v}");
    }
    let mut params = run.data.params.clone();
    params.sort_by(|a, b| a.key.cmp(&b.key));
    printer::section(
        "Params",
        &["KEY", "VALUE"],
        params
            .iter()
            .map(|p| vec![p.key.clone(), p.value.clone()])
            .collect(),
    );
    let mut metrics: Vec<&Metric> = run.data.metrics.iter().collect();
    metrics.sort_by(|a, b| a.key.cmp(&b.key));
    printer::section(
        "Metrics (latest)",
        &["KEY", "VALUE", "STEP", "TIME"],
        metrics
            .iter()
            .map(|m| {
                vec![
                    m.key.clone(),
                    printer::number(m.value),
                    m.step.to_string(),
                    printer::time(Some(m.timestamp)),
                ]
            })
            .collect(),
    );
    let mut tags = run.data.tags.clone();
    tags.sort_by(|a, b| a.key.cmp(&b.key));
    printer::section(
        "Tags",
        &["KEY", "VALUE"],
        tags.iter()
            .map(|t| vec![t.key.clone(), t.value.clone()])
            .collect(),
    );
}

/// The union of param and metric keys over `runs`, sorted.
fn keys(runs: &[Run]) -> (BTreeSet<&str>, BTreeSet<&str>) {
    let params = runs
        .iter()
        .flat_map(|r| r.data.params.iter().map(|p| p.key.as_str()))
        .collect();
    let metrics = runs
        .iter()
        .flat_map(|r| r.data.metrics.iter().map(|m| m.key.as_str()))
        .collect();
    (params, metrics)
}

fn param_value<'a>(run: &'a Run, key: &str) -> Option<&'a str> {
    run.data
        .params
        .iter()
        .find(|p| p.key == key)
        .map(|p| p.value.as_str())
}

/// Rows are the runs' names, statuses, params and metrics; columns are the runs, headed by the
/// first eight characters of their ids.
fn compare_table(runs: &[Run]) -> (Vec<String>, Vec<Vec<String>>) {
    let mut headers = vec!["KEY".to_string()];
    headers.extend(runs.iter().map(|r| r.info.run_id.chars().take(8).collect()));
    let mut rows = Vec::new();
    let row = |label: String, cell: &dyn Fn(&Run) -> String| {
        let mut row = vec![label];
        row.extend(runs.iter().map(cell));
        row
    };
    rows.push(row("run_name".into(), &|r| r.info.run_name.clone()));
    rows.push(row("status".into(), &|r| r.info.status.as_str().into()));
    let (params, metrics) = keys(runs);
    for k in params {
        rows.push(row(format!("params.{k}"), &|r| {
            param_value(r, k).unwrap_or("-").to_string()
        }));
    }
    for k in metrics {
        rows.push(row(format!("metrics.{k}"), &|r| {
            metric_value(r, k)
                .map(printer::number)
                .unwrap_or_else(|| "-".into())
        }));
    }
    (headers, rows)
}

/// `{"runs": [...], "params": {key: [value per run]}, "metrics": {key: [value per run]}}`, with
/// `null` where a run lacks the key.
fn compare_json(runs: &[Run]) -> Value {
    let (param_keys, metric_keys) = keys(runs);
    let params: Map<String, Value> = param_keys
        .into_iter()
        .map(|k| {
            let values = runs.iter().map(|r| json!(param_value(r, k))).collect();
            (k.to_string(), Value::Array(values))
        })
        .collect();
    let metrics: Map<String, Value> = metric_keys
        .into_iter()
        .map(|k| {
            let values = runs
                .iter()
                .map(|r| {
                    metric_value(r, k)
                        .map(kaizen_wire::double)
                        .unwrap_or(Value::Null)
                })
                .collect();
            (k.to_string(), Value::Array(values))
        })
        .collect();
    json!({
        "runs": runs.iter().map(kaizen_wire::run).collect::<Vec<_>>(),
        "params": params,
        "metrics": metrics,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use kaizen_core::{LifecycleStage, RunData, RunInfo, RunInputs, RunOutputs, RunStatus, Tag};

    fn run(id: &str, params: &[(&str, &str)], metrics: &[(&str, f64)]) -> Run {
        Run {
            info: RunInfo {
                run_id: id.into(),
                run_name: format!("name-{id}"),
                experiment_id: "0".into(),
                user_id: "u".into(),
                status: RunStatus::Finished,
                start_time: Some(0),
                end_time: None,
                artifact_uri: String::new(),
                lifecycle_stage: LifecycleStage::Active,
            },
            data: RunData {
                metrics: metrics
                    .iter()
                    .map(|(k, v)| Metric::new(*k, *v, 0, 0))
                    .collect(),
                params: params.iter().map(|(k, v)| Tag::new(*k, *v)).collect(),
                tags: vec![],
            },
            inputs: RunInputs::default(),
            outputs: RunOutputs::default(),
        }
    }

    #[test]
    fn metric_columns_prefer_named_then_common() {
        let runs = [
            run(
                "a",
                &[],
                &[("acc", 1.0), ("loss", 1.0), ("z", 1.0), ("f1", 1.0)],
            ),
            run("b", &[], &[("acc", 1.0), ("loss", 1.0)]),
        ];
        assert_eq!(metric_columns(&runs, "", &[]), ["acc", "loss", "f1"]);
        assert_eq!(
            metric_columns(&runs, "metrics.z > 0", &["metrics.f1 DESC".into()]),
            ["f1", "z", "acc"]
        );
        // Named metrics get a column even when no run has them.
        assert_eq!(
            metric_columns(&runs[..0], "", &["metrics.rmse".into()]),
            ["rmse"]
        );
    }

    #[test]
    fn compare_rows_are_the_union_of_keys() {
        let runs = [
            run("aaaaaaaaaa", &[("lr", "0.1")], &[("rmse", 0.5)]),
            run("bbbbbbbbbb", &[("lr", "0.2"), ("depth", "3")], &[]),
        ];
        let (headers, rows) = compare_table(&runs);
        assert_eq!(headers, ["KEY", "aaaaaaaa", "bbbbbbbb"]);
        let labels: Vec<_> = rows.iter().map(|r| r[0].as_str()).collect();
        assert_eq!(
            labels,
            [
                "run_name",
                "status",
                "params.depth",
                "params.lr",
                "metrics.rmse"
            ]
        );
        assert_eq!(rows[2], ["params.depth", "-", "3"]);
        assert_eq!(rows[4], ["metrics.rmse", "0.5", "-"]);
        let j = compare_json(&runs);
        assert_eq!(j["params"]["depth"], json!([null, "3"]));
        assert_eq!(j["metrics"]["rmse"], json!([0.5, null]));
        assert_eq!(j["runs"].as_array().unwrap().len(), 2);
    }
}
