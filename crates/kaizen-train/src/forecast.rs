//! The one-command forecast (`kaizen forecast`, the quickstart and the pipeline's `forecast`
//! step): series from a table, a hyperparameter search on validation folds, a rolling-origin
//! backtest against the baselines on later folds, a model fit on everything but the gate's
//! held-out window, the forecast, the package, the registered version and the gate.
//!
//! The registered model has not seen the last backtest window, so the gate can score it and the
//! champion on rows the challenger never trained on. Its features still read the whole history,
//! so the forecast starts after the last period.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use kaizen_artifacts::ArtifactPath;
use kaizen_core::{Metric, Param, now_millis};
use kaizen_data::{ReadOptions, Source, Table};
use kaizen_ml::forecast::{
    self, Backtest, Cost, ForecastRow, Freq, SeriesSet, SeriesSpec, UnitCosts, build_series,
    features,
};
use kaizen_ml::learner::{GbdtParams, LearnerSpec};
use kaizen_ml::metrics::{RegressionMetrics, residuals_svg};
use kaizen_tracking::{Actor, Services};
use serde::Serialize;
use serde_json::{Value, json};

use crate::error::{Result, TrainError};
use crate::gate::{GateDecision, GateRule, HeldOut, gate};
use crate::package::{Lineage, PackageMeta, write_package};
use crate::register::register_package;
use crate::runs::{self, slug};
use crate::search::{SearchSpace, Strategy, search};

/// Everything `kaizen forecast` is asked.
#[derive(Debug, Clone)]
pub struct ForecastJob {
    /// The data when it is read from a file (CSV or Parquet).
    pub data: PathBuf,
    pub spec: SeriesSpec,
    pub horizon: usize,
    /// Backtest folds, the last one ending at the last period.
    pub folds: usize,
    /// Validation folds for the search, just before the backtest folds.
    pub search_folds: usize,
    pub learner: LearnerSpec,
    pub space: SearchSpace,
    pub strategy: Strategy,
    pub max_parallel: usize,
    pub costs: Option<UnitCosts>,
    pub experiment: String,
    /// The step run to nest under, when a pipeline runs the job.
    pub parent_run_id: Option<String>,
    pub model_name: String,
    /// The alias the gate moves (`champion`); `None` registers without gating.
    pub alias: Option<String>,
    pub rule: GateRule,
    /// Where the forecast goes (`.csv` or `.parquet`).
    pub output: PathBuf,
    /// Lineage: data set names (`name@version`) or files, the pipeline, the repository.
    pub datasets: Vec<String>,
    pub pipeline: Option<String>,
    pub repo_dir: PathBuf,
    pub user: String,
}

impl ForecastJob {
    /// The defaults of `kaizen forecast`: gradient-boosted trees with a small grid, three
    /// backtest folds and two search folds, the `champion` alias under the default rule.
    pub fn new(data: PathBuf, spec: SeriesSpec, horizon: usize, output: PathBuf) -> ForecastJob {
        let name = format!("forecast-{}", slug(&spec.target_column));
        ForecastJob {
            data,
            spec,
            horizon,
            folds: 3,
            search_folds: 2,
            learner: LearnerSpec::Gbdt(GbdtParams {
                iterations: 300,
                learning_rate: 0.05,
                max_depth: 4,
                early_stopping_rounds: Some(20),
                ..GbdtParams::default()
            }),
            space: default_space(),
            strategy: Strategy::Grid,
            max_parallel: 2,
            costs: None,
            experiment: "forecast".into(),
            parent_run_id: None,
            model_name: name,
            alias: Some("champion".into()),
            rule: GateRule::default(),
            output,
            datasets: Vec::new(),
            pipeline: None,
            repo_dir: PathBuf::from("."),
            user: "kaizen".into(),
        }
    }
}

/// A small grid over the settings that matter most for short series.
pub fn default_space() -> SearchSpace {
    let mut space = BTreeMap::new();
    space.insert("max_depth".to_string(), vec![json!(3), json!(5)]);
    space.insert("min_leaf_weight".to_string(), vec![json!(5.0), json!(20.0)]);
    SearchSpace(space)
}

/// What the job did, in the shape `kaizen forecast --json` prints.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct ForecastSummary {
    pub model: RegressionMetrics,
    pub baselines: BTreeMap<String, RegressionMetrics>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub costs: BTreeMap<String, Cost>,
    pub model_name: String,
    pub model_version: String,
    pub forecast_path: String,
    pub run_id: String,
    pub series: usize,
    pub periods: usize,
    pub horizon: usize,
    pub best_params: Value,
    pub trials: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gate: Option<GateDecision>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub champion_version: Option<String>,
}

/// Where a job tells people what it is doing.
pub trait Progress: Send + Sync {
    fn step(&self, message: &str);
}

/// Progress that goes nowhere.
pub struct Quiet;

impl Progress for Quiet {
    fn step(&self, _message: &str) {}
}

/// Reads the job's data file.
pub fn read_table(path: &Path) -> Result<Table> {
    Ok(
        kaizen_data::read(&Source::path(path), &ReadOptions::default())
            .map_err(kaizen_ml::MlError::from)?,
    )
}

/// Runs the whole job on `table`, tracked as one run (nested under `parent_run_id` when set).
pub async fn run_forecast(
    services: &Services,
    job: &ForecastJob,
    table: &Table,
    progress: &dyn Progress,
) -> Result<ForecastSummary> {
    if job.horizon == 0 {
        return Err(TrainError::invalid("--horizon must be at least 1 period"));
    }
    let set = Arc::new(build_series(table, &job.spec)?);
    let backtest_origins = forecast::origins(&set, job.horizon, job.folds, 0)?;
    let search_origins = forecast::origins(&set, job.horizon, job.search_folds, job.folds)?;
    progress.step(&format!(
        "series: {} ({}), {} {} periods from {}",
        set.values.len(),
        if job.spec.group_columns.is_empty() {
            "no groups".to_string()
        } else {
            job.spec.group_columns.join(", ")
        },
        set.periods(),
        job.spec.freq.code(),
        forecast::date_of(set.start)
    ));

    let run_id = runs::start(
        services,
        runs::JobRun {
            experiment: &job.experiment,
            user: &job.user,
            parent_run_id: job.parent_run_id.as_deref(),
            source: "kaizen forecast",
            task: "forecast",
            run_name: format!("forecast-{}", slug(&job.spec.target_column)),
        },
    )
    .await?;
    let outcome = run_tracked(
        services,
        job,
        &set,
        &run_id,
        &backtest_origins,
        &search_origins,
        progress,
    )
    .await;
    runs::finish(services, &run_id, outcome).await
}

#[allow(clippy::too_many_arguments)]
async fn run_tracked(
    services: &Services,
    job: &ForecastJob,
    set: &Arc<SeriesSet>,
    run_id: &str,
    backtest_origins: &[usize],
    search_origins: &[usize],
    progress: &dyn Progress,
) -> Result<ForecastSummary> {
    let run = services.tracking.get_run(run_id).await?;
    let params = vec![
        Param::new("data", job.data.display().to_string()),
        Param::new("date_column", job.spec.date_column.clone()),
        Param::new("target_column", job.spec.target_column.clone()),
        Param::new("group_columns", job.spec.group_columns.join(",")),
        Param::new("freq", job.spec.freq.code()),
        Param::new("horizon", job.horizon.to_string()),
        Param::new("folds", job.folds.to_string()),
        Param::new("search_folds", job.search_folds.to_string()),
        Param::new("learner", job.learner.name()),
    ];
    services
        .tracking
        .log_batch(run_id, &[], &params, &[])
        .await?;

    // Search: each trial is scored on the validation folds with early stopping there.
    let trials = job.space.size();
    progress.step(&format!(
        "search: {trials} trial(s) on {} validation fold(s) of {} periods",
        search_origins.len(),
        job.horizon
    ));
    let objective_set = Arc::clone(set);
    let horizon = job.horizon;
    let origins = search_origins.to_vec();
    let result = search(
        services,
        &run.info.experiment_id,
        run_id,
        &job.learner,
        &job.space,
        &job.strategy,
        job.max_parallel,
        "wape",
        true,
        move |spec| {
            let backtest = forecast::backtest(&objective_set, spec, horizon, &origins, true, None)
                .map_err(|e| e.to_string())?;
            let mut metrics: BTreeMap<String, f64> = backtest
                .model
                .to_pairs()
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect();
            if let Some(best) = backtest.best_iterations.iter().flatten().max() {
                metrics.insert("best_iteration".into(), *best as f64);
            }
            Ok(metrics)
        },
    )
    .await?;
    // Early stopping chose the rounds; the backtest and the final fit use that many.
    let mut best = result.best.clone();
    if let LearnerSpec::Gbdt(params) = &mut best {
        if let Some(rounds) = result.best_metrics.get("best_iteration") {
            params.iterations = *rounds as usize + 1;
        }
        params.early_stopping_rounds = None;
    }
    let best_params = serde_json::to_value(&best).unwrap_or(Value::Null);
    progress.step(&format!(
        "search: best validation WAPE {:.4} with {}",
        result.best_metrics.get("wape").copied().unwrap_or(f64::NAN),
        compact(&best_params)
    ));

    // Backtest on the later folds, against the baselines.
    let backtest_set = Arc::clone(set);
    let spec = best.clone();
    let origins = backtest_origins.to_vec();
    let costs = job.costs;
    let backtest: Backtest = tokio::task::spawn_blocking(move || {
        forecast::backtest(&backtest_set, &spec, horizon, &origins, false, costs)
    })
    .await
    .map_err(|e| TrainError::invalid(format!("the backtest stopped: {e}")))??;
    progress.step(&format!(
        "backtest: {} fold(s) x {} periods: WAPE model {:.4}, seasonal naive {:.4}, naive {:.4}, moving average {:.4}",
        backtest_origins.len(),
        job.horizon,
        backtest.model.wape,
        backtest.baselines["seasonal_naive"].wape,
        backtest.baselines["naive"].wape,
        backtest.baselines["moving_average"].wape,
    ));
    log_backtest(services, run_id, &backtest).await?;

    // The model to register: everything but the last backtest window, which the gate scores.
    let holdout_origin = *backtest_origins.last().expect("at least one fold");
    let final_set = Arc::clone(set);
    let spec = best.clone();
    let model = tokio::task::spawn_blocking(move || {
        forecast::train(&final_set, &spec, horizon, holdout_origin, None)
    })
    .await
    .map_err(|e| TrainError::invalid(format!("training stopped: {e}")))??;

    let rows = forecast::forecast(set, &model, job.horizon);
    write_forecast(&job.output, &job.spec, &rows)?;
    put_artifact(
        services,
        &run.info.artifact_uri,
        "forecast.csv",
        forecast_csv(&job.spec, &rows),
    )
    .await?;
    progress.step(&format!(
        "forecast: {} rows ({} series x {} periods) written to {}",
        rows.len(),
        set.values.len(),
        job.horizon,
        job.output.display()
    ));

    // Package and register.
    let package_dir = tempfile::tempdir().map_err(|e| TrainError::io(std::env::temp_dir(), e))?;
    let mut meta = PackageMeta::new(
        &model,
        Lineage::current(
            run_id,
            &datasets(job),
            job.pipeline.as_deref(),
            &job.repo_dir,
        ),
    );
    meta.metrics = backtest
        .model
        .to_pairs()
        .into_iter()
        .map(|(k, v)| (format!("backtest_{k}"), v))
        .collect();
    meta.extra = json!({
        "forecast": {
            "spec": job.spec,
            "horizon": job.horizon,
            "features": features::names(job.spec.freq),
            "trained_through": forecast::date_of(set.day(holdout_origin)).to_string(),
        },
        // The latest training feature rows, for drift monitoring of what the model is served.
        "reference": crate::tabular::REFERENCE_FILE,
    });
    let holdout = forecast::forecast_points(set, holdout_origin, job.horizon);
    let x = features::matrix(set, &holdout);
    write_package(package_dir.path(), &model, meta, &x)?;
    let training = forecast::training_points(set, horizon, holdout_origin);
    let latest = &training[training.len().saturating_sub(REFERENCE_ROWS)..];
    let reference = matrix_table(&features::matrix(set, latest))?;
    let reference_path = package_dir.path().join(crate::tabular::REFERENCE_FILE);
    kaizen_data::write_parquet(&reference, &reference_path).map_err(kaizen_ml::MlError::from)?;
    let actor = Actor {
        user: Some(job.user.clone()),
        reason: Some("kaizen forecast".into()),
    };
    let version = register_package(
        services,
        run_id,
        package_dir.path(),
        &job.model_name,
        &actor,
    )
    .await?;
    let model_version = version.version.to_string();
    progress.step(&format!(
        "registered: models:/{}/{}",
        job.model_name, model_version
    ));

    // The gate: the challenger and the champion on the held-out window.
    let mut decision = None;
    let mut champion_version = None;
    if let Some(alias) = &job.alias {
        let y = holdout
            .iter()
            .map(|p| set.values[p.series][p.target()])
            .collect();
        let segments = holdout.iter().map(|p| set.label(p.series)).collect();
        let heldout = HeldOut {
            x,
            y,
            segments: Some(segments),
        };
        let d = gate(
            services,
            &job.model_name,
            &model_version,
            alias,
            &job.rule,
            &heldout,
            &actor,
        )
        .await?;
        progress.step(&format!("gate: {}", d.summary()));
        champion_version = Some(d.holder().to_string());
        decision = Some(d);
    }

    Ok(ForecastSummary {
        model: backtest.model,
        baselines: backtest.baselines.clone(),
        costs: backtest.costs.clone(),
        model_name: job.model_name.clone(),
        model_version,
        forecast_path: job.output.display().to_string(),
        run_id: run_id.to_string(),
        series: set.values.len(),
        periods: set.periods(),
        horizon: job.horizon,
        best_params,
        trials: result.trials.len(),
        gate: decision,
        champion_version,
    })
}

fn datasets(job: &ForecastJob) -> Vec<String> {
    if job.datasets.is_empty() {
        vec![job.data.display().to_string()]
    } else {
        job.datasets.clone()
    }
}

fn compact(v: &Value) -> String {
    match v {
        Value::Object(map) => map
            .iter()
            .filter(|(k, _)| k.as_str() != "learner")
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" "),
        other => other.to_string(),
    }
}

async fn log_backtest(services: &Services, run_id: &str, backtest: &Backtest) -> Result<()> {
    let now = now_millis();
    let mut metrics = Vec::new();
    let mut push = |prefix: &str, m: &RegressionMetrics| {
        for (name, value) in m.to_pairs() {
            if value.is_finite() {
                metrics.push(Metric::new(format!("{prefix}{name}"), value, now, 0));
            }
        }
    };
    push("backtest_", &backtest.model);
    for (name, m) in &backtest.baselines {
        push(&format!("baseline_{name}_"), m);
    }
    for (name, cost) in &backtest.costs {
        metrics.push(Metric::new(format!("cost_{name}"), cost.cost, now, 0));
    }
    services
        .tracking
        .log_batch(run_id, &metrics, &[], &[])
        .await?;
    let run = services.tracking.get_run(run_id).await?;
    let report =
        serde_json::to_vec_pretty(backtest).map_err(|e| TrainError::invalid(e.to_string()))?;
    put_artifact(services, &run.info.artifact_uri, "backtest.json", report).await?;
    let svg = residuals_svg(&backtest.actual, &backtest.predicted);
    put_artifact(
        services,
        &run.info.artifact_uri,
        "residuals.svg",
        svg.into_bytes(),
    )
    .await
}

/// Stores `bytes` as the run artifact `name`.
pub async fn put_artifact(
    services: &Services,
    artifact_uri: &str,
    name: &str,
    bytes: Vec<u8>,
) -> Result<()> {
    let base = kaizen_tracking::proxy_path(artifact_uri).ok_or_else(|| {
        TrainError::invalid(format!(
            "the run's artifact location '{artifact_uri}' is not served by kaizen's artifact store"
        ))
    })?;
    let path = ArtifactPath::parse(&format!("{}/{name}", base.trim_end_matches('/')))?;
    services.artifacts.put(&path, Bytes::from(bytes)).await?;
    Ok(())
}

fn forecast_csv(spec: &SeriesSpec, rows: &[ForecastRow]) -> Vec<u8> {
    let mut out = String::new();
    let quote = |s: &str| {
        if s.contains([',', '"', '\n']) {
            format!("\"{}\"", s.replace('"', "\"\""))
        } else {
            s.to_string()
        }
    };
    let mut header: Vec<String> = spec.group_columns.iter().map(|g| quote(g)).collect();
    header.extend([quote(&spec.date_column), "step".into(), "forecast".into()]);
    out.push_str(&header.join(","));
    out.push('\n');
    for row in rows {
        let mut fields: Vec<String> = row.key.iter().map(|k| quote(k)).collect();
        fields.extend([
            row.date.clone(),
            row.step.to_string(),
            format!("{}", row.forecast),
        ]);
        out.push_str(&fields.join(","));
        out.push('\n');
    }
    out.into_bytes()
}

/// Writes the forecast as CSV (or Parquet when the path ends in `.parquet`), atomically.
fn write_forecast(path: &Path, spec: &SeriesSpec, rows: &[ForecastRow]) -> Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| TrainError::io(parent, e))?;
    }
    let tmp = path.with_extension("partial");
    let csv = forecast_csv(spec, rows);
    if path.extension().is_some_and(|e| e == "parquet") {
        let csv_tmp = path.with_extension("partial.csv");
        std::fs::write(&csv_tmp, &csv).map_err(|e| TrainError::io(&csv_tmp, e))?;
        let table = kaizen_data::read(&Source::path(&csv_tmp), &ReadOptions::default())
            .map_err(kaizen_ml::MlError::from)?;
        let _ = std::fs::remove_file(&csv_tmp);
        kaizen_data::write_parquet(&table, &tmp).map_err(kaizen_ml::MlError::from)?;
    } else {
        std::fs::write(&tmp, &csv).map_err(|e| TrainError::io(&tmp, e))?;
    }
    std::fs::rename(&tmp, path).map_err(|e| TrainError::io(path, e))
}

/// Parses `--freq`.
pub fn parse_freq(s: &str) -> Result<Freq> {
    Ok(Freq::parse(s)?)
}

/// The most training feature rows a forecast package keeps as its drift reference.
const REFERENCE_ROWS: usize = 20_000;

/// A feature matrix as a table of `Float64` columns (NaN as null).
fn matrix_table(x: &kaizen_ml::Matrix) -> Result<Table> {
    use kaizen_data::arrow::array::{ArrayRef, Float64Array, RecordBatch};
    use kaizen_data::arrow::datatypes::{DataType, Field, Schema};
    let mut fields = Vec::with_capacity(x.names.len());
    let mut arrays: Vec<ArrayRef> = Vec::with_capacity(x.names.len());
    for (j, name) in x.names.iter().enumerate() {
        let column = &x.data[j * x.rows..(j + 1) * x.rows];
        fields.push(Field::new(name, DataType::Float64, true));
        arrays.push(Arc::new(Float64Array::from(
            column
                .iter()
                .map(|v| (!v.is_nan()).then_some(*v))
                .collect::<Vec<_>>(),
        )));
    }
    let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)
        .map_err(|e| TrainError::invalid(format!("the drift reference: {e}")))?;
    Ok(Table::from_batch(batch))
}
