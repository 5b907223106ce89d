//! `kaizen experiments`: list, create, delete.

use std::process::ExitCode;

use kaizen_client::TrackingClient;
use kaizen_core::{Experiment, ViewType};
use serde_json::json;

use crate::cli::ExperimentsCommand;
use crate::printer;

pub async fn run(cmd: ExperimentsCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        ExperimentsCommand::List { tracking, all } => {
            let client = super::connect(&tracking).await?;
            list(client.as_ref(), all, tracking.json).await
        }
        ExperimentsCommand::Create {
            tracking,
            name,
            artifact_location,
        } => {
            let client = super::connect(&tracking).await?;
            let id = client
                .create_experiment(&name, artifact_location.as_deref())
                .await?;
            if tracking.json {
                printer::json(&json!({"experiment_id": id}));
            } else {
                println!("{id}");
            }
            Ok(ExitCode::SUCCESS)
        }
        ExperimentsCommand::Delete {
            tracking,
            experiment,
        } => {
            let client = super::connect(&tracking).await?;
            let e = client.resolve_experiment(&experiment).await?;
            client.delete_experiment(&e.experiment_id).await?;
            if tracking.json {
                printer::json(&json!({
                    "experiment_id": e.experiment_id,
                    "name": e.name,
                    "lifecycle_stage": "deleted",
                }));
            } else {
                println!("Deleted experiment '{}' (id {}).", e.name, e.experiment_id);
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn list(client: &dyn TrackingClient, all: bool, json: bool) -> anyhow::Result<ExitCode> {
    let view = if all {
        ViewType::All
    } else {
        ViewType::ActiveOnly
    };
    let mut experiments = client.list_experiments(view).await?;
    sort(&mut experiments);
    if json {
        printer::json(&json!({
            "experiments": experiments.iter().map(kaizen_wire::experiment).collect::<Vec<_>>()
        }));
    } else {
        printer::table(&["ID", "NAME", "STAGE", "CREATED"], &rows(&experiments));
    }
    Ok(ExitCode::SUCCESS)
}

/// Numeric ids in numeric order (MLflow's are numbers as strings), others after them.
fn sort(experiments: &mut [Experiment]) {
    experiments.sort_by(|a, b| {
        let key = |e: &Experiment| {
            (
                e.experiment_id.parse::<i64>().ok().is_none(),
                e.experiment_id.parse::<i64>().unwrap_or(0),
                e.experiment_id.clone(),
            )
        };
        key(a).cmp(&key(b))
    });
}

fn rows(experiments: &[Experiment]) -> Vec<Vec<String>> {
    experiments
        .iter()
        .map(|e| {
            vec![
                e.experiment_id.clone(),
                e.name.clone(),
                e.lifecycle_stage.as_str().to_string(),
                printer::time(Some(e.creation_time)),
            ]
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use kaizen_core::LifecycleStage;

    fn exp(id: &str) -> Experiment {
        Experiment {
            experiment_id: id.into(),
            name: format!("e{id}"),
            artifact_location: String::new(),
            lifecycle_stage: LifecycleStage::Active,
            creation_time: 0,
            last_update_time: 0,
            tags: vec![],
        }
    }

    #[test]
    fn ids_sort_numerically() {
        let mut v = vec![exp("10"), exp("x"), exp("2"), exp("0")];
        sort(&mut v);
        let ids: Vec<_> = v.iter().map(|e| e.experiment_id.as_str()).collect();
        assert_eq!(ids, ["0", "2", "10", "x"]);
        assert_eq!(
            rows(&v[..1]),
            vec![vec!["0", "e0", "active", "1970-01-01 00:00:00"]]
        );
    }
}
