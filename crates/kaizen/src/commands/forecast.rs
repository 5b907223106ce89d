//! `kaizen forecast`: the one-command path for someone who only has a CSV. It builds series,
//! searches hyperparameters on validation folds, backtests the model against the baselines,
//! trains, registers the model, gates the `champion` alias and writes the forecast.

use std::process::ExitCode;

use kaizen_ml::forecast::{SeriesSpec, UnitCosts};
use kaizen_train::forecast::{
    ForecastJob, ForecastSummary, Progress, parse_freq, read_table, run_forecast,
};
use kaizen_train::search::Strategy;

use crate::cli::ForecastArgs;
use crate::settings;

/// Progress lines on stderr, so stdout stays the result (`kaizen forecast`, `kaizen train`).
pub(crate) struct Stderr;

impl Progress for Stderr {
    fn step(&self, message: &str) {
        eprintln!("{message}");
    }
}

/// A training error as the domain error the exit codes read.
pub fn to_core(e: kaizen_train::TrainError) -> kaizen_core::Error {
    match e.kind() {
        kaizen_core::ErrorKind::Internal => {
            let message = e.to_string();
            kaizen_core::Error::internal(message, e)
        }
        kind => kaizen_core::Error::new(kind, e.to_string()),
    }
}

pub async fn run(args: ForecastArgs) -> anyhow::Result<ExitCode> {
    if args.horizon == 0 {
        return Err(kaizen_core::Error::invalid("--horizon must be at least 1 period").into());
    }
    let freq = parse_freq(&args.freq).map_err(to_core)?;
    if !args.data.exists() {
        return Err(kaizen_core::Error::not_found(format!(
            "--data {}: no such file",
            args.data.display()
        ))
        .into());
    }
    let spec = SeriesSpec {
        date_column: args.date_col.clone(),
        target_column: args.target.clone(),
        group_columns: args.groups.clone(),
        freq,
    };
    let mut job = ForecastJob::new(args.data.clone(), spec, args.horizon, args.output.clone());
    job.folds = args.folds;
    job.search_folds = args.search_folds;
    job.max_parallel = args.max_parallel.max(1);
    if let Some(trials) = args.trials {
        job.strategy = Strategy::Random { trials, seed: 42 };
    }
    if let (Some(over), Some(under)) = (args.over_cost, args.under_cost) {
        if !(over.is_finite() && under.is_finite() && over >= 0.0 && under >= 0.0) {
            return Err(kaizen_core::Error::invalid(
                "--over-cost and --under-cost must be non-negative numbers",
            )
            .into());
        }
        job.costs = Some(UnitCosts { over, under });
    }
    if let Some(model) = &args.model {
        job.model_name = model.clone();
    }
    job.alias = (!args.no_gate).then(|| args.alias.clone());
    job.experiment = args.experiment.clone();
    job.user = std::env::var("USER").unwrap_or_else(|_| "kaizen".into());

    let services = settings::open_home_services().await?;
    let table = read_table(&args.data).map_err(to_core)?;
    let summary = run_forecast(&services, &job, &table, &Stderr)
        .await
        .map_err(to_core)?;
    crate::printer::report(args.json, &summary, print_summary)?;
    Ok(ExitCode::SUCCESS)
}

fn print_summary(s: &ForecastSummary) {
    println!("Backtest ({} series, horizon {}):", s.series, s.horizon);
    println!(
        "  {:<16} {:>8} {:>10} {:>10} {:>8}",
        "forecaster", "WAPE", "MAE", "RMSE", "bias"
    );
    let row = |name: &str, m: &kaizen_ml::metrics::RegressionMetrics| {
        println!(
            "  {:<16} {:>8.4} {:>10.3} {:>10.3} {:>8.4}",
            name, m.wape, m.mae, m.rmse, m.bias
        );
    };
    row("model", &s.model);
    for (name, m) in &s.baselines {
        row(name, m);
    }
    if let Some(snaive) = s.baselines.get("seasonal_naive") {
        println!(
            "  the model's WAPE is {:.1}% below seasonal naive's",
            (1.0 - s.model.wape / snaive.wape) * 100.0
        );
    }
    for (name, cost) in &s.costs {
        println!(
            "  cost {name}: {:.2} ({:.1} units over, {:.1} under)",
            cost.cost, cost.over_units, cost.under_units
        );
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
    println!("Forecast: {}", s.forecast_path);
}
