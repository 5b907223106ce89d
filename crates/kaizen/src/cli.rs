//! The command line, as clap types.

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "kaizen",
    version,
    about = "kaizen: the MLOps loop in one binary",
    propagate_version = true
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// More log output on stderr (-v info, -vv debug).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Only errors on stderr.
    #[arg(short, long, global = true)]
    pub quiet: bool,
}

/// Where CLI commands read and write: the local home in-process, or a server.
#[derive(Debug, Args, Clone)]
pub struct TrackingArgs {
    /// A kaizen or MLflow server (`http://host:port`); without it, the local home is used.
    #[arg(long, env = "MLFLOW_TRACKING_URI")]
    pub tracking_uri: Option<String>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the tracking server and model registry (MLflow REST API compatible).
    Server(ServerArgs),
    /// The whole loop on the local home: the electronics sales pipeline and a forecast model
    /// (searched, backtested, registered, gated), then an order-value model served, drifted
    /// traffic replayed, the drift alert, retraining, the gate and the hot swap.
    Quickstart(QuickstartArgs),
    /// Experiments: list, create, delete.
    #[command(subcommand)]
    Experiments(ExperimentsCommand),
    /// Runs: list, show, compare, delete.
    #[command(subcommand)]
    Runs(RunsCommand),
    /// Registered models: list, show, versions, alias, history, register-pretrained, pull.
    #[command(subcommand)]
    Models(ModelsCommand),
    /// Pipelines: run the DAG of steps in a project's kaizen.toml.
    #[command(subcommand)]
    Pipeline(PipelineCommand),
    /// Data drift: compare a current data set with a reference, column by column.
    Drift(DriftArgs),
    /// Datasets: the catalog of tabular pipeline outputs (list, show).
    #[command(subcommand)]
    Datasets(DatasetsCommand),
    /// Query cataloged datasets with SQL: `kaizen sql "SELECT ... FROM sales"`.
    Sql(SqlArgs),
    /// Where a run, artifact, dataset or model version came from, and what was made from it.
    Lineage(LineageArgs),
    /// Forecast a CSV: series, backtest against baselines, train, register, gate, forecast.
    Forecast(ForecastArgs),
    /// Train a model on a table: split, preprocess, search, evaluate, register, gate.
    Train(TrainArgs),
    /// Train a text classifier from labeled examples: a logistic-regression head over frozen
    /// sentence embeddings, tracked as a run and registered as a model version.
    TrainClassifier(crate::commands::classifier::TrainClassifierArgs),
    /// Events (runs ended, versions registered, aliases moved, ...): tail, dispatch.
    #[command(subcommand)]
    Events(EventsCommand),
    /// Serve a model over HTTP with MLflow's scoring protocol (`POST /invocations`).
    Serve(ServeArgs),
    /// Score a table (CSV or Parquet) with a model into a CSV file.
    Predict(PredictArgs),
    /// Retrain a model once by its policy: labeled served traffic, the training pipeline, the gate.
    Retrain(RetrainArgs),
    /// Sentence embeddings of texts with a pretrained model (all-MiniLM-L6-v2 by default).
    Embed(EmbedArgs),
    /// Summarize a text, file, web page or Wikipedia article in a few of its own sentences.
    Summarize(SummarizeArgs),
    /// Answer a question from a text, file, web page or Wikipedia article: the passages that
    /// matter, retrieved by embeddings, and an answer taken from them or written by an LLM.
    Ask(AskArgs),
    /// Run the local LLM (a GGUF instruct model, SmolLM2-135M-Instruct by default) on a prompt.
    Generate(GenerateArgs),
    /// Sentiment of a text, file, web page or Wikipedia article: polarity, subjectivity, label.
    Sentiment(TextTaskArgs),
    /// Noun phrases of a text, file, web page or Wikipedia article.
    Phrases(TextTaskArgs),
    /// Speech to text: transcribe a WAV file with Whisper (whisper-tiny.en by default), with
    /// timed segments and, optionally, a summary.
    Transcribe(TranscribeArgs),
}

#[derive(Debug, Subcommand)]
pub enum DatasetsCommand {
    /// List every dataset with its latest version.
    List {
        #[command(flatten)]
        tracking: TrackingArgs,
    },
    /// Show a dataset version (the latest by default): schema, rows, column stats, and every
    /// version.
    Show {
        /// `NAME` or `NAME@VERSION`.
        dataset: String,
        #[command(flatten)]
        tracking: TrackingArgs,
    },
}

#[derive(Debug, Args)]
pub struct SqlArgs {
    /// A query over datasets by name: the latest version, or `"name@2"` for version 2 (the
    /// quotes may be left out).
    pub query: String,
    #[command(flatten)]
    pub tracking: TrackingArgs,
}

#[derive(Debug, Args)]
pub struct LineageArgs {
    /// A run id, an artifact (`cas/<sha256>` or the bare sha256), a dataset
    /// (`dataset:NAME[@VERSION]`) or a model version (`models:/NAME/VERSION`).
    pub target: String,
    /// Print the graph in Graphviz DOT.
    #[arg(long, conflicts_with = "json")]
    pub dot: bool,
    /// How many edges to follow from the target in each direction (default: all).
    #[arg(long, value_name = "N")]
    pub depth: Option<usize>,
    #[command(flatten)]
    pub tracking: TrackingArgs,
}

#[derive(Debug, Args)]
pub struct DriftArgs {
    /// The reference data (CSV, Parquet or JSON lines).
    #[arg(long)]
    pub reference: std::path::PathBuf,
    /// The current data to compare with the reference.
    #[arg(long)]
    pub current: std::path::PathBuf,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// Write a self-contained HTML report to this file.
    #[arg(long, value_name = "FILE")]
    pub html: Option<std::path::PathBuf>,
    /// Only these columns (comma-separated); default: every column both files have.
    #[arg(long, value_delimiter = ',', value_name = "COL,...")]
    pub columns: Option<Vec<String>>,
    /// The test for a column instead of the default: ks, wasserstein, chisquare, z,
    /// jensenshannon, psi, kl_div, hellinger, anderson, cramer_von_mises, energy_distance.
    #[arg(long = "test", value_name = "COL=TEST")]
    pub tests: Vec<String>,
    /// The threshold for a column instead of its test's default.
    #[arg(long = "threshold", value_name = "COL=X")]
    pub thresholds: Vec<String>,
    /// The data set drifts when at least this share of its columns drift.
    #[arg(long, default_value_t = 0.5)]
    pub share_threshold: f64,
    /// When the data set drifted, append a `drift.detected` event to the local home's event
    /// log (delivered to the subscribers of events.toml).
    #[arg(long)]
    pub notify: bool,
    /// Record the check as a run of the local home (experiment `--experiment`): the share and
    /// each column's statistic as metrics, the HTML and JSON reports as artifacts.
    #[arg(long)]
    pub log: bool,
    /// The experiment of `--log`'s run.
    #[arg(long, default_value = "monitoring", requires = "log")]
    pub experiment: String,
}

#[derive(Debug, Subcommand)]
pub enum PipelineCommand {
    /// Run a pipeline: steps in parallel where independent, cached results reused.
    Run(PipelineRunArgs),
    /// Run a pipeline at each tick of a cron schedule, in the foreground.
    Schedule(PipelineScheduleArgs),
    /// Run a pipeline once for each new file that appears in a directory.
    Watch(PipelineWatchArgs),
    /// List recent pipeline runs, newest first.
    Runs(PipelineRunsArgs),
    /// Show a pipeline run: its steps, durations, cache hits and misses, outputs.
    Show(PipelineShowArgs),
    /// Print the stored stdout/stderr of a pipeline run's steps.
    Logs(PipelineLogsArgs),
}

#[derive(Debug, Args)]
pub struct PipelineRunArgs {
    /// The project directory holding kaizen.toml, or another pipeline file of a project.
    #[arg(default_value = ".")]
    pub dir: std::path::PathBuf,
    /// Override a parameter: `-p key=value` (typed by the default's type); repeatable.
    #[arg(short = 'p', long = "param", value_name = "KEY=VALUE")]
    pub params: Vec<String>,
    /// Run every step even when a cached result exists.
    #[arg(long)]
    pub no_cache: bool,
    /// How many steps may run at once.
    #[arg(long, default_value_t = 4)]
    pub max_parallel: usize,
    /// The metadata store to track into (`sqlite:///...` or `postgresql://...`); default: the
    /// local home. Steps log through a server kaizen starts for the run.
    #[arg(long, env = "MLFLOW_TRACKING_URI")]
    pub tracking_uri: Option<String>,
    /// Print one JSON object with the run's outcome on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct PipelineScheduleArgs {
    /// The project directory holding kaizen.toml.
    #[arg(default_value = ".")]
    pub dir: std::path::PathBuf,
    /// When to run: a cron expression with 5 fields, or 6 with seconds first
    /// (`"*/10 * * * * *"` is every ten seconds).
    #[arg(long, value_name = "EXPR")]
    pub cron: String,
    /// Stop after this many runs (default: run until Ctrl-C).
    #[arg(long, value_name = "N")]
    pub max_runs: Option<u64>,
    /// Override a parameter: `-p key=value` (typed by the default's type); repeatable.
    #[arg(short = 'p', long = "param", value_name = "KEY=VALUE")]
    pub params: Vec<String>,
    /// Run every step even when a cached result exists.
    #[arg(long)]
    pub no_cache: bool,
    /// How many steps may run at once.
    #[arg(long, default_value_t = 4)]
    pub max_parallel: usize,
    /// The metadata store to track into (`sqlite:///...` or `postgresql://...`); default: the
    /// local home.
    #[arg(long, env = "MLFLOW_TRACKING_URI")]
    pub tracking_uri: Option<String>,
    /// Print one JSON object per run on stdout (the shape of `pipeline run --json`).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct PipelineWatchArgs {
    /// The project directory holding kaizen.toml.
    #[arg(default_value = ".")]
    pub dir: std::path::PathBuf,
    /// The directory to watch for new files.
    #[arg(long = "dir", value_name = "INCOMING")]
    pub incoming: std::path::PathBuf,
    /// The (string) parameter that gets each new file's absolute path.
    #[arg(long = "param", value_name = "NAME")]
    pub param: String,
    /// How often to look, in milliseconds; a file is taken once its size and modification time
    /// hold still over one interval.
    #[arg(long, default_value_t = 500)]
    pub interval_ms: u64,
    /// Also run for the files already there when watching starts.
    #[arg(long)]
    pub existing: bool,
    /// Stop after this many runs (default: run until Ctrl-C).
    #[arg(long, value_name = "N")]
    pub max_runs: Option<u64>,
    /// Override another parameter: `-p key=value`; repeatable.
    #[arg(short = 'p', long = "set", value_name = "KEY=VALUE")]
    pub params: Vec<String>,
    /// Run every step even when a cached result exists.
    #[arg(long)]
    pub no_cache: bool,
    /// How many steps may run at once.
    #[arg(long, default_value_t = 4)]
    pub max_parallel: usize,
    /// The metadata store to track into (`sqlite:///...` or `postgresql://...`); default: the
    /// local home.
    #[arg(long, env = "MLFLOW_TRACKING_URI")]
    pub tracking_uri: Option<String>,
    /// Print one JSON object per run on stdout (the shape of `pipeline run --json`).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct PipelineRunsArgs {
    /// A project directory: only its pipeline's runs (default: every pipeline's).
    #[arg(conflicts_with = "pipeline")]
    pub dir: Option<std::path::PathBuf>,
    /// Only the runs of the pipeline with this name.
    #[arg(long, value_name = "NAME")]
    pub pipeline: Option<String>,
    /// How many runs to list.
    #[arg(long, default_value_t = 20)]
    pub max_results: i64,
    #[command(flatten)]
    pub tracking: TrackingArgs,
}

#[derive(Debug, Args)]
pub struct PipelineShowArgs {
    /// The pipeline run's id.
    pub run_id: String,
    #[command(flatten)]
    pub tracking: TrackingArgs,
}

#[derive(Debug, Args)]
pub struct PipelineLogsArgs {
    /// The pipeline run's id.
    pub run_id: String,
    /// One step (default: every step that ran, in order).
    pub step: Option<String>,
    /// The attempt to show, 0 first (default: the last).
    #[arg(long, value_name = "N")]
    pub attempt: Option<u32>,
    /// Only stderr.
    #[arg(long, conflicts_with = "stdout")]
    pub stderr: bool,
    /// Only stdout.
    #[arg(long)]
    pub stdout: bool,
    /// The metadata store the run is in (default: the local home). Logs are read from
    /// `$KAIZEN_HOME/pipelines/<run_id>/logs/`.
    #[arg(long, env = "MLFLOW_TRACKING_URI")]
    pub tracking_uri: Option<String>,
}

#[derive(Debug, Args)]
pub struct ServerArgs {
    /// The address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// The port to listen on (0 picks a free one).
    #[arg(long, short, default_value_t = 5000)]
    pub port: u16,
    /// Metadata store: `sqlite:///path/kaizen.db` or `postgresql://user:pass@host:port/db`
    /// (default: `$KAIZEN_HOME/kaizen.db`).
    #[arg(long, env = "KAIZEN_BACKEND_STORE_URI")]
    pub backend_store_uri: Option<String>,
    /// Artifact store root: `file:///path` (default: `$KAIZEN_HOME/artifacts`).
    #[arg(long, env = "KAIZEN_ARTIFACTS_DESTINATION")]
    pub artifacts_destination: Option<String>,
    /// Accepted for compatibility with `mlflow server`; artifacts are always proxied.
    #[arg(long, hide = true)]
    pub default_artifact_root: Option<String>,
    /// Do not serve the `mlflow-artifacts` proxy.
    #[arg(long)]
    pub no_serve_artifacts: bool,
    /// Accepted for compatibility with `mlflow server`; kaizen serves from one process.
    #[arg(long, hide = true)]
    pub workers: Option<u32>,
    /// The largest JSON request body accepted, in bytes.
    #[arg(long, default_value_t = 64 * 1024 * 1024)]
    pub max_body_size: usize,
    /// Also serve a registered model's alias at `/serve/NAME/ALIAS/invocations` (repeat for
    /// several), with the same inference log, metrics and hot swap as `kaizen serve`.
    #[arg(long = "serve", value_name = "NAME@ALIAS")]
    pub serve: Vec<String>,
    /// Event subscribers to deliver to (default: events.toml in the home, when it exists).
    #[arg(long, value_name = "FILE", env = "KAIZEN_EVENTS")]
    pub events: Option<std::path::PathBuf>,
    /// A pipeline project directory that `POST /api/pipelines/{name}/runs` can start;
    /// repeatable (the environment variable takes a colon-separated list).
    #[arg(
        long = "pipeline",
        value_name = "DIR",
        env = "KAIZEN_PIPELINES",
        value_delimiter = ':'
    )]
    pub pipelines: Vec<std::path::PathBuf>,
    /// Let `POST /v1/summarize` fetch `url` and `wiki` sources (off: a public server does not
    /// fetch addresses for its callers).
    #[arg(long, env = "KAIZEN_ALLOW_FETCH")]
    pub allow_fetch: bool,
}

#[derive(Debug, Args)]
pub struct QuickstartArgs {
    /// The example project to run (its pipeline and data).
    #[arg(long, default_value = "examples/electronics", value_name = "DIR")]
    pub project: std::path::PathBuf,
    /// Deliver the loop's events (drift detected, retrained, alias moved, ...) to the
    /// subscribers of this file (webhooks, Slack, a log file, a command).
    #[arg(long, value_name = "FILE")]
    pub events: Option<std::path::PathBuf>,
    /// Print a JSON summary instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum ExperimentsCommand {
    /// List experiments.
    List {
        #[command(flatten)]
        tracking: TrackingArgs,
        /// Include deleted experiments.
        #[arg(long)]
        all: bool,
    },
    /// Create an experiment and print its id.
    Create {
        #[command(flatten)]
        tracking: TrackingArgs,
        name: String,
        #[arg(long)]
        artifact_location: Option<String>,
    },
    /// Delete an experiment (by id or name) and its runs.
    Delete {
        #[command(flatten)]
        tracking: TrackingArgs,
        experiment: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum RunsCommand {
    /// List runs of an experiment, newest first.
    List {
        #[command(flatten)]
        tracking: TrackingArgs,
        /// Experiment id or name (default: 0).
        #[arg(long, short, default_value = "0")]
        experiment: String,
        /// An MLflow search filter, e.g. "metrics.rmse < 0.5".
        #[arg(long, short, default_value = "")]
        filter: String,
        /// Order clauses, e.g. "metrics.rmse ASC".
        #[arg(long)]
        order_by: Vec<String>,
        #[arg(long, default_value_t = 50)]
        max_results: i64,
    },
    /// Show one run: info, params, latest metrics, tags.
    Show {
        #[command(flatten)]
        tracking: TrackingArgs,
        run_id: String,
    },
    /// Compare runs side by side: params and metrics as rows, runs as columns.
    Compare {
        #[command(flatten)]
        tracking: TrackingArgs,
        #[arg(required = true, num_args = 2..)]
        run_ids: Vec<String>,
    },
    /// Delete a run.
    Delete {
        #[command(flatten)]
        tracking: TrackingArgs,
        run_id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum ModelsCommand {
    /// List registered models.
    List {
        #[command(flatten)]
        tracking: TrackingArgs,
        #[arg(long, short, default_value = "")]
        filter: String,
    },
    /// Show a registered model with its aliases and latest versions.
    Show {
        #[command(flatten)]
        tracking: TrackingArgs,
        name: String,
    },
    /// List the versions of a registered model.
    Versions {
        #[command(flatten)]
        tracking: TrackingArgs,
        name: String,
    },
    /// Point an alias at a version (or delete it with --delete).
    Alias {
        #[command(flatten)]
        tracking: TrackingArgs,
        name: String,
        alias: String,
        /// The version to point the alias at.
        #[arg(id = "model_version", value_name = "VERSION")]
        version: Option<String>,
        #[arg(long, conflicts_with = "model_version")]
        delete: bool,
        /// Why, for the audit log.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Register a pretrained model directory (Hugging Face layout) as a model version that
    /// `kaizen serve` serves: a sentence embedder answers one embedding per text.
    RegisterPretrained(crate::commands::hub::RegisterPretrainedArgs),
    /// Download a model repository from the Hugging Face Hub (or a server with its API) into
    /// the Hugging Face cache and a model directory under the models directory.
    Pull(crate::commands::hub::PullArgs),
    /// The audit log of a registered model: who changed what, when and why.
    History {
        #[command(flatten)]
        tracking: TrackingArgs,
        name: String,
    },
    /// Convert a pretrained model from another format into Hugging Face layout (config.json,
    /// model.safetensors, tokenizer.json), which kaizen's pretrained-model commands load.
    Import(ImportArgs),
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The source format: `ctranslate2` (a CTranslate2 Whisper model, faster-whisper's
    /// format: model.bin, config.json, tokenizer.json).
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub from: ImportFormat,
    /// The directory of the source model.
    pub src: std::path::PathBuf,
    /// The directory to write (created if needed; files in it are replaced).
    #[arg(long, value_name = "DIR")]
    pub out: std::path::PathBuf,
    /// Print what was written as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum ImportFormat {
    /// CTranslate2's model.bin (faster-whisper).
    Ctranslate2,
}

#[derive(Debug, Args)]
pub struct TranscribeArgs {
    /// The audio: a WAV file (8- to 32-bit integer or 32-bit float PCM, any rate, any number
    /// of channels).
    pub file: std::path::PathBuf,
    /// The Whisper model: a directory in Hugging Face layout, or a name under the models
    /// directory (default: whisper-tiny.en under `$KAIZEN_MODELS`).
    #[arg(long, value_name = "DIR")]
    pub model: Option<std::path::PathBuf>,
    /// Also summarize the transcript in a few of its own sentences (extractive, with the
    /// embedding model of `kaizen summarize`).
    #[arg(long)]
    pub summarize: bool,
    /// The most sentences in the summary.
    #[arg(long, default_value_t = 3, requires = "summarize")]
    pub sentences: usize,
    /// The embedding model of the summary: a directory, or a name under the models directory.
    #[arg(long, value_name = "DIR", requires = "summarize")]
    pub embed_model: Option<std::path::PathBuf>,
    /// Print `{"text", "segments", "model", "audio_seconds"}` (and `"summary"`) as JSON instead
    /// of one line per segment.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ForecastArgs {
    /// The transactions (CSV or Parquet): one row per sale, or already one per period.
    #[arg(long, value_name = "FILE")]
    pub data: std::path::PathBuf,
    /// The date column (dates, timestamps or `YYYY-MM-DD` text).
    #[arg(long = "date-col", value_name = "COL")]
    pub date_col: String,
    /// The column to forecast, summed per group and period.
    #[arg(long, value_name = "COL")]
    pub target: String,
    /// A column whose values make separate series (repeat for several).
    #[arg(long = "group", value_name = "COL")]
    pub groups: Vec<String>,
    /// The period: D (daily) or W (weekly, weeks starting on Monday).
    #[arg(long, default_value = "D", value_name = "D|W")]
    pub freq: String,
    /// How many periods ahead to forecast.
    #[arg(long, value_name = "N")]
    pub horizon: usize,
    /// Backtest folds of `horizon` periods, the last ending at the last period.
    #[arg(long, default_value_t = 3)]
    pub folds: usize,
    /// Validation folds for the hyperparameter search, before the backtest folds.
    #[arg(long, default_value_t = 2)]
    pub search_folds: usize,
    /// Random search with this many trials instead of the default grid.
    #[arg(long, value_name = "N")]
    pub trials: Option<usize>,
    /// Trials run at once.
    #[arg(long, default_value_t = 2)]
    pub max_parallel: usize,
    /// The cost of one unit forecast too many (stock that does not sell).
    #[arg(long, value_name = "X", requires = "under_cost")]
    pub over_cost: Option<f64>,
    /// The cost of one unit forecast too few (a lost sale).
    #[arg(long, value_name = "X", requires = "over_cost")]
    pub under_cost: Option<f64>,
    /// The registered model's name (default: forecast-<target>).
    #[arg(long, value_name = "NAME")]
    pub model: Option<String>,
    /// The alias the promotion gate moves.
    #[arg(long, default_value = "champion")]
    pub alias: String,
    /// Register without the gate (the alias does not move).
    #[arg(long)]
    pub no_gate: bool,
    /// Where the forecast goes (.csv or .parquet).
    #[arg(long, short, default_value = "forecast.csv", value_name = "FILE")]
    pub output: std::path::PathBuf,
    /// The experiment the run goes to.
    #[arg(long, default_value = "forecast")]
    pub experiment: String,
    /// Print a JSON summary instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct TrainArgs {
    /// The table (CSV or Parquet), one row per example.
    #[arg(long, value_name = "FILE")]
    pub data: std::path::PathBuf,
    /// The column to predict.
    #[arg(long, value_name = "COL")]
    pub target: String,
    /// The task (default: from the target: text, or 10 distinct integers at most, is
    /// classification).
    #[arg(long, value_parser = ["regression", "binary", "multiclass"])]
    pub task: Option<String>,
    /// The learner.
    #[arg(long, default_value = "gbdt", value_parser = ["gbdt", "linear", "ridge", "lasso", "logistic", "text_linear"])]
    pub learner: String,
    /// A learner setting, its value as JSON (`--set max_depth=6`); repeat for several.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Values to search for a setting (`--search max_depth=3,5`); repeat for several.
    #[arg(long = "search", value_name = "KEY=V1,V2")]
    pub search: Vec<String>,
    /// Random search with this many trials instead of the whole grid.
    #[arg(long, value_name = "N")]
    pub trials: Option<usize>,
    /// Trials run at once.
    #[arg(long, default_value_t = 2)]
    pub max_parallel: usize,
    /// A text column to vectorize as words (TF-IDF) rather than categories; repeat for several.
    #[arg(long = "text", value_name = "COL")]
    pub text: Vec<String>,
    /// A column whose values are segments the gate checks one by one.
    #[arg(long, value_name = "COL")]
    pub segment: Option<String>,
    /// The share of rows for validation (the search and early stopping).
    #[arg(long, default_value_t = 0.2, value_name = "F")]
    pub valid_fraction: f64,
    /// The share of rows for the test (the reported metrics and the gate).
    #[arg(long, default_value_t = 0.2, value_name = "F")]
    pub test_fraction: f64,
    /// The seed of the split.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// The registered model's name (default: <file>-<target>).
    #[arg(long, value_name = "NAME")]
    pub model: Option<String>,
    /// The alias the promotion gate moves.
    #[arg(long, default_value = "champion")]
    pub alias: String,
    /// Register without the gate (the alias does not move).
    #[arg(long, conflicts_with = "alias")]
    pub no_gate: bool,
    /// The experiment the run goes to.
    #[arg(long, default_value = "train")]
    pub experiment: String,
    /// Print a JSON summary instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The model: `models:/NAME@ALIAS`, `models:/NAME/VERSION` or a package directory.
    pub model: String,
    /// The address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// The port to listen on (0 picks a free one).
    #[arg(long, short, default_value_t = 5001)]
    pub port: u16,
    /// The store the registry lives in: `sqlite:///path` or `postgresql://...` (default: the
    /// local home).
    #[arg(long, env = "MLFLOW_TRACKING_URI")]
    pub tracking_uri: Option<String>,
    /// The largest request body accepted, in bytes (larger: 413).
    #[arg(long, default_value_t = 16 * 1024 * 1024)]
    pub max_body_size: usize,
    /// Do not log requests to the inference log ($KAIZEN_HOME/inference_log).
    #[arg(long)]
    pub no_log: bool,
    /// Records the inference log queues before it drops (and counts) them.
    #[arg(long, default_value_t = 100_000)]
    pub log_queue: usize,
    /// How often to check whether a served alias moved, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    pub poll_ms: u64,
    /// A weighted A/B split over aliases of MODEL (`models:/NAME`): `--variant champion=90
    /// --variant challenger=10`.
    #[arg(long = "variant", value_name = "ALIAS=WEIGHT")]
    pub variants: Vec<String>,
    /// An alias that scores a copy of every answered request; its answers are logged
    /// (variant `shadow:ALIAS`), never returned.
    #[arg(long, value_name = "ALIAS")]
    pub shadow: Option<String>,
    /// A request header whose value pins a caller to one variant (default: each request is
    /// split on its own).
    #[arg(long, value_name = "HEADER")]
    pub sticky_header: Option<String>,
    /// Compare every window of this many served rows with the model's training reference
    /// (drift per feature and of the prediction, on /metrics; a `drift.detected` event when
    /// the rows drifted); 0 turns monitoring off.
    #[arg(long, default_value_t = 1000, value_name = "ROWS")]
    pub monitor_window: usize,
    /// Also close a monitoring window when it is this old (`30s`, `5m`, `1h`) and holds at
    /// least 30 rows, so that slow traffic is compared too.
    #[arg(long, value_name = "SPAN")]
    pub monitor_every: Option<String>,
    /// Performance drift: the served version degrades when its live MAE (over rows with
    /// feedback) exceeds its test MAE by this share, or its live accuracy falls this many points
    /// below its test accuracy (a `performance.degraded` event).
    #[arg(long, default_value_t = 0.5, value_name = "SHARE")]
    pub performance_tolerance: f64,
    /// A retraining policy (`retrain.toml`): when its triggers fire (drift in served rows, a
    /// schedule), retrain on the labeled traffic, gate, and serve the new version if promoted.
    #[arg(long, value_name = "FILE")]
    pub retrain: Option<std::path::PathBuf>,
    /// Deliver events (drift detected, retrained, alias moved, ...) to the subscribers of this
    /// file (webhooks, Slack, a log file, a command) while serving.
    #[arg(long, value_name = "FILE")]
    pub events: Option<std::path::PathBuf>,
}

#[derive(Debug, Args)]
pub struct RetrainArgs {
    /// The retraining policy (`retrain.toml` in a project).
    #[arg(long, value_name = "FILE")]
    pub policy: std::path::PathBuf,
    /// The store the registry lives in: `sqlite:///path` or `postgresql://...` (default: the
    /// local home).
    #[arg(long, env = "MLFLOW_TRACKING_URI")]
    pub tracking_uri: Option<String>,
    /// Print the outcome as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct PredictArgs {
    /// The model: `models:/NAME@ALIAS`, `models:/NAME/VERSION` or a package directory.
    #[arg(long)]
    pub model: String,
    /// The rows to score (CSV or Parquet); columns the model does not take are ignored.
    #[arg(long, value_name = "FILE")]
    pub input: std::path::PathBuf,
    /// The CSV written: `prediction` (the value or the label) and, for classification, one
    /// `probability_<label>` column per class.
    #[arg(long, value_name = "FILE")]
    pub output: std::path::PathBuf,
    /// The store the registry lives in (as for `kaizen serve`).
    #[arg(long, env = "MLFLOW_TRACKING_URI")]
    pub tracking_uri: Option<String>,
    /// Print a JSON summary instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum EventsCommand {
    /// Print the latest events, oldest first; `--follow` keeps printing new ones.
    Tail(EventsTailArgs),
    /// Deliver events to the subscribers of an events file, in the foreground (`kaizen server`
    /// does it too when the file exists).
    Dispatch(EventsDispatchArgs),
}

#[derive(Debug, Args)]
pub struct EventsTailArgs {
    /// How many of the latest events to print.
    #[arg(short = 'n', long, default_value_t = 20)]
    pub lines: i64,
    /// Only events of this kind (repeat for several).
    #[arg(long = "kind", value_name = "KIND")]
    pub kinds: Vec<String>,
    /// Keep printing new events until interrupted.
    #[arg(long, short)]
    pub follow: bool,
    /// One JSON object per line.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct EventsDispatchArgs {
    /// The subscribers (default: events.toml in the home).
    #[arg(long, value_name = "FILE")]
    pub config: Option<std::path::PathBuf>,
    /// Deliver what is pending and exit.
    #[arg(long)]
    pub once: bool,
}

#[derive(Debug, Args)]
pub struct EmbedArgs {
    /// A text to embed (repeatable).
    #[arg(long, value_name = "TEXT")]
    pub text: Vec<String>,
    /// A file with one text per line (`-` reads stdin); blank lines are skipped.
    #[arg(long, value_name = "FILE")]
    pub file: Option<std::path::PathBuf>,
    /// The model: a directory in Hugging Face layout, or a name under the models directory
    /// (default: all-MiniLM-L6-v2 under `$KAIZEN_MODELS`).
    #[arg(long, value_name = "DIR")]
    pub model: Option<std::path::PathBuf>,
    /// Print `{"embeddings": [[...], ...]}` instead of one line of numbers per text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct SummarizeArgs {
    #[command(flatten)]
    pub source: TextSourceArgs,
    /// The most sentences in the summary.
    #[arg(long, default_value_t = 3)]
    pub sentences: usize,
    /// `extractive` (sentences of the input ranked by embedding centrality) or `abstractive`
    /// (new text written by an instruct LLM or a T5 model; long texts are chunked).
    #[arg(long, default_value = "extractive")]
    pub method: String,
    /// The model: for extractive summaries the embedding model (a directory) [default:
    /// all-MiniLM-L6-v2]; for abstractive ones a GGUF file or a directory with one, or a T5
    /// model directory [default: SmolLM2-135M-Instruct]. A bare name is looked up under the
    /// models directory.
    #[arg(long, value_name = "PATH")]
    pub model: Option<std::path::PathBuf>,
    /// Abstractive: the most tokens the summary has.
    #[arg(long, value_name = "N", default_value_t = 160)]
    pub max_tokens: usize,
    /// Abstractive: input tokens per model call; a longer text is cut into chunks that are
    /// summarized, then their summaries summarized [default: 1536 for an LLM, the model's
    /// input length for T5].
    #[arg(long, value_name = "N")]
    pub window_tokens: Option<usize>,
    /// Abstractive: tokens of each chunk repeated at the start of the next [default: 64, at
    /// most an eighth of a chunk].
    #[arg(long, value_name = "N")]
    pub overlap_tokens: Option<usize>,
    /// Print `{"summary", "sentences", "method", "model", "input_chars"}` as JSON instead of
    /// one sentence per line (abstractive summaries add `chunks`, `rounds`, `window_tokens`).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct AskArgs {
    /// The question.
    #[arg(long, value_name = "QUESTION")]
    pub question: String,
    /// The context, given inline.
    #[arg(long, value_name = "TEXT", group = "source")]
    pub context_text: Option<String>,
    /// The context: a text or HTML file (`-` reads stdin).
    #[arg(long, value_name = "FILE", group = "source")]
    pub context: Option<std::path::PathBuf>,
    /// The context: a web page's readable text.
    #[arg(long, value_name = "URL", group = "source")]
    pub url: Option<String>,
    /// The context: a Wikipedia article's title, read through the MediaWiki API.
    #[arg(long, value_name = "TITLE", group = "source")]
    pub wiki: Option<String>,
    /// The MediaWiki API that `--wiki` reads.
    #[arg(
        long,
        value_name = "URL",
        env = "KAIZEN_WIKI_API",
        default_value = kaizen_infer::DEFAULT_WIKI_API
    )]
    pub wiki_api: String,
    /// How many passages to retrieve (1 to 50).
    #[arg(long, value_name = "K", default_value_t = kaizen_infer::ask::DEFAULT_TOP_K)]
    pub top_k: usize,
    /// Who answers: `extractive` (the retrieved sentence closest to the question; nothing is
    /// generated), `openai` (an OpenAI-compatible chat API, from the retrieved passages only)
    /// or `local` (an instruct LLM in GGUF run by kaizen, SmolLM2-135M-Instruct by default).
    #[arg(long, value_name = "PROVIDER", default_value = "extractive")]
    pub provider: String,
    /// The openai provider's base URL: any OpenAI-compatible API [default:
    /// https://api.openai.com/v1].
    #[arg(long, value_name = "URL")]
    pub base_url: Option<String>,
    /// The LLM that answers: with `--provider openai` its name as the provider spells it
    /// (required); with `--provider local` a GGUF file or a directory with one [default:
    /// SmolLM2-135M-Instruct under the models directory].
    #[arg(long, value_name = "MODEL")]
    pub model: Option<String>,
    /// The most tokens of a local LLM's answer.
    #[arg(long, value_name = "N", default_value_t = kaizen_infer::ask::DEFAULT_ANSWER_TOKENS)]
    pub max_tokens: usize,
    /// The embedding model that retrieves passages: a directory, or a name under the models
    /// directory.
    #[arg(long, value_name = "DIR")]
    pub embed_model: Option<std::path::PathBuf>,
    /// The environment variable holding the openai provider's API key, sent as a bearer token
    /// (no key is sent when it is unset or empty).
    #[arg(long, value_name = "NAME", default_value = kaizen_infer::ask::DEFAULT_API_KEY_ENV)]
    pub api_key_env: String,
    /// Print `{"answer", "method", "model", "passages", "question"}` as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// The user's message (`-` reads stdin).
    #[arg(long, value_name = "TEXT")]
    pub prompt: String,
    /// A system message before it.
    #[arg(long, value_name = "TEXT")]
    pub system: Option<String>,
    /// Continue the prompt as raw text instead of answering it as a chat message.
    #[arg(long)]
    pub raw: bool,
    /// A GGUF file or a directory with one [default: SmolLM2-135M-Instruct under the models
    /// directory].
    #[arg(long, value_name = "PATH")]
    pub model: Option<std::path::PathBuf>,
    /// The most tokens generated.
    #[arg(long, value_name = "N", default_value_t = 256)]
    pub max_tokens: usize,
    /// Sampling temperature (0: greedy, the same output every run).
    #[arg(long, value_name = "T", default_value_t = 0.0)]
    pub temperature: f64,
    /// Nucleus sampling, with a temperature.
    #[arg(long, value_name = "P")]
    pub top_p: Option<f64>,
    /// The seed of sampling.
    #[arg(long, default_value_t = 299_792_458)]
    pub seed: u64,
    /// Divides the logits of the last 64 tokens (1.0: off).
    #[arg(long, value_name = "X", default_value_t = 1.1)]
    pub repeat_penalty: f32,
    /// Generate `--max-tokens` tokens even past the end of the answer (for benchmarks).
    #[arg(long)]
    pub ignore_eos: bool,
    /// Print `{"text", "model", "prompt_tokens", "generated_tokens", "stop", "prompt_seconds",
    /// "generate_seconds", ...}` as JSON.
    #[arg(long)]
    pub json: bool,
}

/// The text of `kaizen summarize`, `sentiment` and `phrases`: exactly one of its sources.
#[derive(Debug, Args)]
pub struct TextSourceArgs {
    /// The text itself.
    #[arg(long, value_name = "TEXT", group = "source")]
    pub text: Option<String>,
    /// A text or HTML file (`-` reads stdin).
    #[arg(long, value_name = "FILE", group = "source")]
    pub file: Option<std::path::PathBuf>,
    /// A web page: its readable text, without navigation, headers and footers.
    #[arg(long, value_name = "URL", group = "source")]
    pub url: Option<String>,
    /// A Wikipedia article's title, read through the MediaWiki API.
    #[arg(long, value_name = "TITLE", group = "source")]
    pub wiki: Option<String>,
    /// The MediaWiki API that `--wiki` reads.
    #[arg(
        long,
        value_name = "URL",
        env = "KAIZEN_WIKI_API",
        default_value = kaizen_infer::DEFAULT_WIKI_API
    )]
    pub wiki_api: String,
}

/// `kaizen sentiment` and `kaizen phrases`: one text source and pattern.en's data.
#[derive(Debug, Args)]
pub struct TextTaskArgs {
    #[command(flatten)]
    pub source: TextSourceArgs,
    /// pattern.en's data files as the `textblob` wheel ships them (default: `textblob` under
    /// the models directory, where `scripts/setup.sh` copies them).
    #[arg(long, value_name = "DIR")]
    pub data: Option<std::path::PathBuf>,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}
