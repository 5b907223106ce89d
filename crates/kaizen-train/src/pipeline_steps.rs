//! The `train` and `forecast` step kinds of pipelines: the same jobs as `kaizen train` and
//! `kaizen forecast`, on the step's first input table, tracked as a run nested under the step's
//! run, with the input's catalog version as lineage. They need the services (the registry), so
//! the binary registers them: [`register`].
//!
//! ```toml
//! [[steps]]
//! name = "model"
//! kind = "forecast"
//! inputs = ["daily_units.daily_units.parquet"]
//! with = { date_column = "day", target = "units", groups = ["sku"], horizon = 7,
//!          search = { max_depth = [3, 5] }, model = "electronics-units" }
//! ```

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use kaizen_ml::forecast::{SeriesSpec, UnitCosts};
use kaizen_ml::learner::{LearnerSpec, Task};
use kaizen_pipeline::{Runners, StepContext, StepFailure, StepKind, StepRunner};
use kaizen_tracking::Services;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::{Result, TrainError};
use crate::forecast::{ForecastJob, Progress, parse_freq, read_table, run_forecast};
use crate::gate::GateRule;
use crate::search::{SearchSpace, Strategy};
use crate::tabular::{TrainJob, default_learner, run_train};

/// Every step kind: the data kinds of `kaizen-pipeline`, and `train` and `forecast`, which track
/// into `services`.
pub fn runners(services: &Services) -> Runners {
    let mut runners = Runners::default();
    register(&mut runners, services.clone());
    runners
}

/// Adds the `train` and `forecast` runners, which track into `services`.
pub fn register(runners: &mut Runners, services: Services) {
    let services = Arc::new(services);
    runners.register(
        StepKind::Train,
        Arc::new(TrainRunner {
            services: Arc::clone(&services),
        }),
    );
    runners.register(StepKind::Forecast, Arc::new(ForecastRunner { services }));
}

/// `with` of a `forecast` step.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ForecastOptions {
    date_column: String,
    target: String,
    #[serde(default)]
    groups: Vec<String>,
    #[serde(default = "daily")]
    freq: String,
    horizon: usize,
    folds: Option<usize>,
    search_folds: Option<usize>,
    /// A learner name, or a table with `learner` and its settings.
    learner: Option<Value>,
    search: Option<BTreeMap<String, Vec<Value>>>,
    trials: Option<usize>,
    over_cost: Option<f64>,
    under_cost: Option<f64>,
    model: Option<String>,
    #[serde(default = "champion")]
    alias: String,
    #[serde(default = "yes")]
    gate: bool,
    rule: Option<GateRule>,
}

/// `with` of a `train` step.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TrainOptions {
    target: String,
    /// `regression`, `binary` or `multiclass`; default: from the target.
    task: Option<String>,
    learner: Option<Value>,
    search: Option<BTreeMap<String, Vec<Value>>>,
    trials: Option<usize>,
    #[serde(default)]
    text_columns: Vec<String>,
    segment: Option<String>,
    valid_fraction: Option<f64>,
    test_fraction: Option<f64>,
    seed: Option<u64>,
    model: Option<String>,
    #[serde(default = "champion")]
    alias: String,
    #[serde(default = "yes")]
    gate: bool,
    rule: Option<GateRule>,
}

fn daily() -> String {
    "D".into()
}

fn champion() -> String {
    "champion".into()
}

fn yes() -> bool {
    true
}

fn failure(message: impl Into<String>) -> StepFailure {
    StepFailure {
        message: message.into(),
        stderr_tail: Vec::new(),
    }
}

fn options<T: DeserializeOwned>(ctx: &StepContext) -> Result<T, StepFailure> {
    let table: toml::Table = ctx
        .step
        .with
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    toml::Value::Table(table).try_into().map_err(|e| {
        failure(format!(
            "step '{}': field 'with' of a {} step: {}",
            ctx.step.name,
            ctx.step.kind,
            e.message()
        ))
    })
}

/// `learner = "gbdt"` or `learner = { learner = "gbdt", max_depth = 5 }`.
fn learner(value: Option<&Value>, default: LearnerSpec) -> Result<LearnerSpec> {
    match value {
        None => Ok(default),
        Some(Value::String(name)) => default_learner(name),
        Some(table) => serde_json::from_value(table.clone())
            .map_err(|e| TrainError::invalid(format!("with.learner: {e}"))),
    }
}

fn strategy(trials: Option<usize>) -> Strategy {
    match trials {
        Some(trials) => Strategy::Random { trials, seed: 42 },
        None => Strategy::Grid,
    }
}

/// Progress lines into the step's stdout log (`kaizen pipeline logs RUN STEP`).
struct LogProgress(Mutex<Option<std::fs::File>>);

impl LogProgress {
    fn open(path: &Path) -> LogProgress {
        LogProgress(Mutex::new(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .ok(),
        ))
    }
}

impl Progress for LogProgress {
    fn step(&self, message: &str) {
        if let Ok(mut file) = self.0.lock()
            && let Some(file) = file.as_mut()
        {
            let _ = writeln!(file, "{message}");
        }
    }
}

/// The step's first input: its table, and its data set in the catalog (`name@version`) when the
/// input is a cataloged step output.
async fn input(
    services: &Services,
    ctx: &StepContext,
) -> Result<(std::path::PathBuf, Vec<String>)> {
    let (written, path) = ctx.inputs.first().ok_or_else(|| {
        TrainError::invalid(format!(
            "step '{}': a {} step needs an input table (inputs = [\"step.file.parquet\"])",
            ctx.step.name, ctx.step.kind
        ))
    })?;
    let file = written.rsplit('/').next().unwrap_or(written);
    let stem = file.rsplit_once('.').map_or(file, |(stem, _)| stem);
    let stem = stem.rsplit_once('.').map_or(stem, |(_, name)| name);
    let datasets = match services.store.get_dataset_version(stem, None).await {
        Ok(v) => vec![format!("{stem}@{}", v.version)],
        Err(_) => vec![written.clone()],
    };
    Ok((path.clone(), datasets))
}

/// The experiment the step's run is in, by name, and the pipeline it belongs to.
async fn experiment(services: &Services, run_id: &str) -> Result<(String, Option<String>)> {
    let run = services.tracking.get_run(run_id).await?;
    let pipeline = run
        .data
        .tags
        .iter()
        .find(|t| t.key == "kaizen.pipeline")
        .map(|t| t.value.clone());
    let name = services
        .tracking
        .get_experiment(&run.info.experiment_id)
        .await?
        .name;
    Ok((name, pipeline))
}

fn write_summary<T: serde::Serialize>(ctx: &StepContext, summary: &T) -> Result<()> {
    let path = ctx.output_dir.join("summary.json");
    let text =
        serde_json::to_vec_pretty(summary).map_err(|e| TrainError::invalid(e.to_string()))?;
    std::fs::write(&path, text).map_err(|e| TrainError::io(&path, e))
}

fn user() -> String {
    std::env::var("USER").unwrap_or_else(|_| "kaizen".into())
}

struct ForecastRunner {
    services: Arc<Services>,
}

impl ForecastRunner {
    async fn run_job(&self, ctx: &StepContext) -> Result<()> {
        let o: ForecastOptions = options(ctx).map_err(|f| TrainError::invalid(f.message))?;
        let services = self.services.as_ref();
        let (data, datasets) = input(services, ctx).await?;
        let spec = SeriesSpec {
            date_column: o.date_column,
            target_column: o.target,
            group_columns: o.groups,
            freq: parse_freq(&o.freq)?,
        };
        let mut job = ForecastJob::new(
            data.clone(),
            spec,
            o.horizon,
            ctx.output_dir.join("forecast.csv"),
        );
        job.learner = learner(o.learner.as_ref(), job.learner.clone())?;
        if let Some(space) = o.search {
            job.space = SearchSpace(space);
        }
        job.strategy = strategy(o.trials);
        job.folds = o.folds.unwrap_or(job.folds);
        job.search_folds = o.search_folds.unwrap_or(job.search_folds);
        job.costs = match (o.over_cost, o.under_cost) {
            (Some(over), Some(under)) => Some(UnitCosts { over, under }),
            (None, None) => None,
            _ => {
                return Err(TrainError::invalid(
                    "with.over_cost and with.under_cost go together",
                ));
            }
        };
        if let Some(model) = o.model {
            job.model_name = model;
        }
        job.alias = o.gate.then_some(o.alias);
        if let Some(rule) = o.rule {
            job.rule = rule;
        }
        let (experiment, pipeline) = experiment(services, &ctx.run_id).await?;
        job.experiment = experiment;
        job.parent_run_id = Some(ctx.run_id.clone());
        job.datasets = datasets;
        job.pipeline = pipeline;
        job.repo_dir = ctx.project_dir.clone();
        job.user = user();
        let table = read_table(&data)?;
        let progress = LogProgress::open(&ctx.stdout_path);
        let summary = run_forecast(services, &job, &table, &progress).await?;
        write_summary(ctx, &summary)
    }
}

#[async_trait]
impl StepRunner for ForecastRunner {
    async fn run(&self, ctx: &StepContext) -> std::result::Result<(), StepFailure> {
        self.run_job(ctx).await.map_err(|e| failure(e.to_string()))
    }
}

struct TrainRunner {
    services: Arc<Services>,
}

impl TrainRunner {
    async fn run_job(&self, ctx: &StepContext) -> Result<()> {
        let o: TrainOptions = options(ctx).map_err(|f| TrainError::invalid(f.message))?;
        let services = self.services.as_ref();
        let (data, datasets) = input(services, ctx).await?;
        let mut job = TrainJob::new(data.clone(), o.target);
        job.task = match o.task.as_deref() {
            None => None,
            Some("regression") => Some(Task::Regression),
            Some("binary") => Some(Task::Binary),
            Some("multiclass") => Some(Task::Multiclass { classes: 0 }),
            Some(other) => {
                return Err(TrainError::invalid(format!(
                    "with.task `{other}`: use regression, binary or multiclass"
                )));
            }
        };
        job.learner = learner(o.learner.as_ref(), job.learner.clone())?;
        if let Some(space) = o.search {
            job.space = SearchSpace(space);
        }
        job.strategy = strategy(o.trials);
        job.text_columns = o.text_columns;
        job.segment = o.segment;
        job.valid_fraction = o.valid_fraction.unwrap_or(job.valid_fraction);
        job.test_fraction = o.test_fraction.unwrap_or(job.test_fraction);
        job.seed = o.seed.unwrap_or(job.seed);
        if let Some(model) = o.model {
            job.model_name = model;
        }
        job.alias = o.gate.then_some(o.alias);
        job.rule = o.rule;
        job.experiment = experiment(services, &ctx.run_id).await?.0;
        job.parent_run_id = Some(ctx.run_id.clone());
        job.datasets = datasets;
        job.user = user();
        job.repo_dir = ctx.project_dir.clone();
        let table = read_table(&data)?;
        let progress = LogProgress::open(&ctx.stdout_path);
        let summary = run_train(services, &job, &table, &progress).await?;
        write_summary(ctx, &summary)
    }
}

#[async_trait]
impl StepRunner for TrainRunner {
    async fn run(&self, ctx: &StepContext) -> std::result::Result<(), StepFailure> {
        self.run_job(ctx).await.map_err(|e| failure(e.to_string()))
    }
}
