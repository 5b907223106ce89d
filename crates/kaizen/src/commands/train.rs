//! `kaizen train`: a model from a table in one command. It splits the rows into train,
//! validation and test parts, preprocesses every column, searches the learner's settings on the
//! validation part, reports metrics per part, registers the model and gates the `champion` alias
//! on the test part.

use std::collections::BTreeMap;
use std::process::ExitCode;

use kaizen_ml::Task;
use kaizen_train::forecast::read_table;
use kaizen_train::search::{SearchSpace, Strategy, merge_settings};
use kaizen_train::tabular::{TrainJob, TrainSummary, compact, default_learner, run_train};
use serde_json::Value;

use crate::cli::TrainArgs;
use crate::commands::forecast::{Stderr, to_core};
use crate::settings;

/// A value as JSON (`6`, `0.1`, `true`, `"x"`), or as a string when it is not JSON (`depth_wise`).
fn json_value(s: &str) -> Value {
    let s = s.trim();
    serde_json::from_str(s).unwrap_or_else(|_| Value::String(s.to_string()))
}

fn key_value<'a>(flag: &str, arg: &'a str) -> Result<(&'a str, &'a str), kaizen_core::Error> {
    match arg.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim(), v)),
        _ => Err(kaizen_core::Error::invalid(format!(
            "{flag} {arg}: expected KEY=VALUE"
        ))),
    }
}

pub async fn run(args: TrainArgs) -> anyhow::Result<ExitCode> {
    if !args.data.exists() {
        return Err(kaizen_core::Error::not_found(format!(
            "--data {}: no such file",
            args.data.display()
        ))
        .into());
    }
    let mut job = TrainJob::new(args.data.clone(), args.target.clone());
    job.task = args.task.as_deref().map(|t| match t {
        "regression" => Task::Regression,
        "binary" => Task::Binary,
        // The number of classes comes from the data.
        _ => Task::Multiclass { classes: 0 },
    });
    let base = default_learner(&args.learner).map_err(to_core)?;
    let mut settings_map = BTreeMap::new();
    for arg in &args.set {
        let (k, v) = key_value("--set", arg)?;
        settings_map.insert(k.to_string(), json_value(v));
    }
    job.learner = if settings_map.is_empty() {
        base
    } else {
        merge_settings(&base, &settings_map).map_err(|e| match e {
            kaizen_train::TrainError::BadSetting {
                key,
                value,
                message,
            } => kaizen_core::Error::invalid(format!("--set {key}={value}: {message}")),
            other => to_core(other),
        })?
    };
    let mut space = BTreeMap::new();
    for arg in &args.search {
        let (k, v) = key_value("--search", arg)?;
        let values: Vec<Value> = v
            .split(',')
            .filter(|s| !s.trim().is_empty())
            .map(json_value)
            .collect();
        space.insert(k.to_string(), values);
    }
    job.space = SearchSpace(space);
    if let Some(trials) = args.trials {
        job.strategy = Strategy::Random {
            trials,
            seed: args.seed,
        };
    }
    job.max_parallel = args.max_parallel.max(1);
    job.text_columns = args.text.clone();
    job.segment = args.segment.clone();
    job.valid_fraction = args.valid_fraction;
    job.test_fraction = args.test_fraction;
    job.seed = args.seed;
    if let Some(model) = &args.model {
        job.model_name = model.clone();
    }
    job.alias = (!args.no_gate).then(|| args.alias.clone());
    job.experiment = args.experiment.clone();
    job.user = std::env::var("USER").unwrap_or_else(|_| "kaizen".into());

    let services = settings::open_home_services().await?;
    let table = read_table(&args.data).map_err(to_core)?;
    let summary = run_train(&services, &job, &table, &Stderr)
        .await
        .map_err(to_core)?;
    crate::printer::report(args.json, &summary, print_summary)?;
    Ok(ExitCode::SUCCESS)
}

fn print_summary(s: &TrainSummary) {
    println!(
        "Task: {} on `{}`{}; learner {}, {} features",
        s.task,
        s.target,
        s.labels
            .as_ref()
            .map(|l| format!(" (classes: {})", l.join(", ")))
            .unwrap_or_default(),
        s.learner,
        s.features
    );
    let names: Vec<&String> = s
        .metrics
        .get("test")
        .map(|m| m.keys().collect())
        .unwrap_or_default();
    print!("  {:<6} {:>6}", "split", "rows");
    for name in &names {
        print!(" {name:>10}");
    }
    println!();
    for split in ["train", "valid", "test"] {
        print!(
            "  {:<6} {:>6}",
            split,
            s.rows.get(split).copied().unwrap_or(0)
        );
        for name in &names {
            match s.metrics.get(split).and_then(|m| m.get(*name)) {
                Some(v) if v.is_finite() => print!(" {v:>10.4}"),
                _ => print!(" {:>10}", "-"),
            }
        }
        println!();
    }
    if s.trials > 0 {
        println!(
            "Search: {} trial(s), best {}",
            s.trials,
            compact(&s.best_params)
        );
    } else {
        println!("Settings: {}", compact(&s.best_params));
    }
    println!(
        "Model: models:/{}/{} (run {})",
        s.model_name, s.model_version, s.run_id
    );
    if let Some(gate) = &s.gate {
        println!(
            "Gate: {} ({})",
            if gate.promoted {
                "promoted"
            } else {
                "rejected"
            },
            gate.reason
        );
    }
}
