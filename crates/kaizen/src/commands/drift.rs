//! `kaizen drift`: compare a current data set with a reference, column by column, with
//! Evidently's tests and thresholds; a table, JSON (`--json`) and an HTML page (`--html`).
//! Drift found is data, not a failure: the exit code is 0 either way, 1 for bad input.

use std::collections::BTreeMap;
use std::process::ExitCode;

use anyhow::Context;
use kaizen_drift::{DriftError, DriftOptions, Test};

use crate::cli::DriftArgs;

pub async fn run(args: DriftArgs) -> anyhow::Result<ExitCode> {
    let mut tests = BTreeMap::new();
    for spec in &args.tests {
        let (column, test) = spec.split_once('=').ok_or_else(|| {
            kaizen_core::Error::invalid(format!(
                "--test `{spec}`: expected COLUMN=TEST, e.g. --test age=psi"
            ))
        })?;
        let test: Test = test.parse().map_err(to_core)?;
        tests.insert(column.trim().to_owned(), test);
    }
    let mut thresholds = BTreeMap::new();
    for spec in &args.thresholds {
        let (column, value) = spec.split_once('=').ok_or_else(|| {
            kaizen_core::Error::invalid(format!(
                "--threshold `{spec}`: expected COLUMN=NUMBER, e.g. --threshold age=0.2"
            ))
        })?;
        let value: f64 = value.trim().parse().map_err(|_| {
            kaizen_core::Error::invalid(format!("--threshold `{spec}`: `{value}` is not a number"))
        })?;
        thresholds.insert(column.trim().to_owned(), value);
    }
    let columns = args.columns.as_ref().map(|cols| {
        cols.iter()
            .map(|c| c.trim().to_owned())
            .filter(|c| !c.is_empty())
            .collect::<Vec<_>>()
    });
    let options = DriftOptions {
        columns,
        tests,
        thresholds,
        share_threshold: args.share_threshold,
        threads: 0,
    };
    let report =
        kaizen_drift::compare_files(&args.reference, &args.current, &options).map_err(to_core)?;
    if let Some(path) = &args.html {
        let title = format!(
            "reference {} · current {}",
            args.reference.display(),
            args.current.display()
        );
        std::fs::write(path, report.to_html(&title))
            .with_context(|| format!("cannot write the HTML report to {}", path.display()))?;
    }
    if args.log {
        let services = kaizen_tracking::Services::open(
            &crate::settings::default_store_uri(),
            &crate::settings::default_artifacts_uri(),
        )
        .await
        .context("cannot open the local home to record the monitoring run")?;
        let name = args
            .current
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let title = format!(
            "reference {} · current {}",
            args.reference.display(),
            args.current.display()
        );
        let run_id = record_report(
            &services,
            &args.experiment,
            &format!("drift-{name}"),
            &report,
            &title,
            vec![
                kaizen_core::Param::new("reference", args.reference.display().to_string()),
                kaizen_core::Param::new("current", args.current.display().to_string()),
            ],
            "kaizen drift",
        )
        .await?;
        eprintln!(
            "monitoring run {run_id} (experiment '{}'): drift_report.html, drift_report.json",
            args.experiment
        );
    }
    if args.notify && report.dataset.drifted {
        let services = kaizen_tracking::Services::open(
            &crate::settings::default_store_uri(),
            &crate::settings::default_artifacts_uri(),
        )
        .await
        .context("cannot open the local home to record the drift event")?;
        let drifted: Vec<&str> = report
            .columns
            .iter()
            .filter(|c| c.drifted)
            .map(|c| c.column.as_str())
            .collect();
        kaizen_tracking::emit(
            services.store.as_ref(),
            kaizen_core::events::DRIFT_DETECTED,
            &args.current.display().to_string(),
            serde_json::json!({
                "reference": args.reference.display().to_string(),
                "current": args.current.display().to_string(),
                "drifted_columns": drifted,
                "share": report.dataset.share,
                "columns": report.dataset.columns,
            }),
        )
        .await;
    }
    if args.json {
        crate::printer::json(&report.to_json());
    } else {
        print!("{}", report.to_table());
        if let Some(path) = &args.html {
            eprintln!("HTML report: {}", path.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Drift errors as domain errors: input errors exit 1, internal ones 2.
fn to_core(e: DriftError) -> kaizen_core::Error {
    if e.is_internal() {
        let message = e.to_string();
        kaizen_core::Error::internal(message, e)
    } else {
        kaizen_core::Error::invalid(e.to_string())
    }
}

/// Records a drift report as a finished run: the share, the count of drifted columns and each
/// column's statistic as metrics (`drift.COLUMN`), the verdict as a tag, and the HTML and JSON
/// reports as artifacts. Answers the run id.
pub(crate) async fn record_report(
    services: &kaizen_tracking::Services,
    experiment: &str,
    run_name: &str,
    report: &kaizen_drift::DriftReport,
    title: &str,
    mut params: Vec<kaizen_core::Param>,
    source: &str,
) -> anyhow::Result<String> {
    let mut metrics = vec![
        ("dataset.share".to_string(), report.dataset.share),
        (
            "dataset.drifted_columns".to_string(),
            report.dataset.drifted_columns as f64,
        ),
        ("dataset.columns".to_string(), report.dataset.columns as f64),
        ("reference_rows".to_string(), report.reference_rows as f64),
        ("current_rows".to_string(), report.current_rows as f64),
    ];
    metrics.extend(
        report
            .columns
            .iter()
            .map(|c| (format!("drift.{}", c.column), c.statistic)),
    );
    params.push(kaizen_core::Param::new(
        "share_threshold",
        report.dataset.share_threshold.to_string(),
    ));
    let user = std::env::var("USER").unwrap_or_else(|_| "kaizen".into());
    let json = serde_json::to_vec_pretty(&report.to_json())?;
    let run_id = kaizen_train::runs::record_run(
        services,
        kaizen_train::runs::RecordedRun {
            experiment,
            run_name: run_name.to_string(),
            user: &user,
            source,
            params,
            metrics,
            tags: vec![kaizen_core::Tag::new(
                "kaizen.drift.drifted",
                report.dataset.drifted.to_string(),
            )],
            artifacts: vec![
                (
                    "drift_report.html".into(),
                    report.to_html(title).into_bytes(),
                ),
                ("drift_report.json".into(), json),
            ],
        },
    )
    .await
    .map_err(|e| kaizen_core::Error::invalid(e.to_string()))?;
    Ok(run_id)
}
