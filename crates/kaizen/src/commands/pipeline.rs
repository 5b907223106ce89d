//! `kaizen pipeline`: run a project's pipeline on the local home (or a given store) with a
//! tracking server started for the runs' duration so steps can log with the `mlflow` client; run
//! it on a cron schedule or per new file in a directory; and look at past runs, their steps and
//! their logs.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use anyhow::Context;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use kaizen_client::{RunSearch, TrackingClient};
use kaizen_core::{Error, ErrorKind, Run, RunStatus, ViewType, tags};
use kaizen_pipeline::{
    ParamValue, Pipeline, Reporter, RunOptions, RunSummary, StepResult, StepStatus,
};
use kaizen_server::{AppState, ServerConfig};
use kaizen_tracking::Services;
use serde_json::{Value, json};

use crate::cli::{
    PipelineCommand, PipelineLogsArgs, PipelineRunArgs, PipelineRunsArgs, PipelineScheduleArgs,
    PipelineShowArgs, PipelineWatchArgs, TrackingArgs,
};
use crate::{printer, settings};

pub async fn run(cmd: PipelineCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        PipelineCommand::Run(args) => run_pipeline(args).await,
        PipelineCommand::Schedule(args) => schedule(args).await,
        PipelineCommand::Watch(args) => watch(args).await,
        PipelineCommand::Runs(args) => list_runs(args).await,
        PipelineCommand::Show(args) => show(args).await,
        PipelineCommand::Logs(args) => logs(args).await,
    }
}

/// The stores runs track into, and a server on them for the steps' `mlflow` clients, up for as
/// long as runs go.
pub(crate) struct Tracked {
    pub(crate) services: Services,
    /// What steps get as `MLFLOW_TRACKING_URI`.
    server_uri: String,
    stop: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Tracked {
    /// Opens the store named by `--tracking-uri` (default: the local home) and starts the server.
    pub(crate) async fn open(tracking_uri: Option<&str>) -> anyhow::Result<Self> {
        let uri = tracking_uri.map(str::trim).filter(|u| !u.is_empty());
        let store_uri = match uri {
            None => settings::default_store_uri(),
            Some(u) if u.starts_with("sqlite:") || u.starts_with("postgres") => u.to_string(),
            Some(u) => {
                return Err(Error::invalid(format!(
                    "pipeline runs track into a store kaizen opens itself; '{u}' is not one \
                     (use sqlite:///path or postgresql://..., or leave --tracking-uri unset)\n\
                     hint: running against a remote kaizen server is not yet available"
                ))
                .into());
            }
        };
        let artifacts_uri = settings::default_artifacts_uri();
        let services = Services::open(&store_uri, &artifacts_uri)
            .await
            .with_context(|| format!("cannot open the stores ({store_uri}, {artifacts_uri})"))?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("cannot listen on 127.0.0.1")?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let state = AppState {
            services: services.clone(),
            config: Arc::new(ServerConfig::default()),
        };
        let server = tokio::spawn(kaizen_server::serve(listener, state, async move {
            let _ = stopped.await;
        }));
        Ok(Self {
            services,
            server_uri: format!("http://{addr}"),
            stop,
            server,
        })
    }

    pub(crate) fn options(
        &self,
        params: Vec<String>,
        no_cache: bool,
        max_parallel: usize,
        tags: Vec<(String, String)>,
    ) -> RunOptions {
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        RunOptions {
            param_overrides: params,
            no_cache,
            max_parallel,
            tracking_uri: self.server_uri.clone(),
            work_dir: settings::home().join("pipelines"),
            user: env("USER").or_else(|| env("USERNAME")),
            tags,
        }
    }

    /// Runs `pipeline` with every step kind, showing progress.
    pub(crate) async fn run(
        &self,
        pipeline: &Pipeline,
        opts: &RunOptions,
    ) -> kaizen_core::Result<RunSummary> {
        let reporter = Arc::new(Progress::new(pipeline));
        let outcome = kaizen_pipeline::run_pipeline(
            &self.services,
            pipeline,
            opts,
            &kaizen_train::pipeline_steps::runners(&self.services),
            reporter.clone(),
        )
        .await;
        reporter.finish();
        outcome
    }

    pub(crate) async fn close(self) {
        let _ = self.stop.send(());
        let _ = self.server.await;
    }
}

pub(crate) fn project_dir(dir: &Path) -> anyhow::Result<PathBuf> {
    std::path::absolute(dir).with_context(|| format!("cannot resolve {}", dir.display()))
}

/// `kaizen pipeline run --json`'s object; a contract with checks outside the project.
fn summary_json(summary: &RunSummary) -> Value {
    let steps: Vec<_> = summary
        .steps
        .iter()
        .map(|s| {
            json!({
                "name": s.name,
                "status": s.status.as_str(),
                "duration_ms": s.duration_ms,
                "outputs": s.outputs.keys().collect::<Vec<_>>(),
                "cache_miss_reason": s.cache_miss_reason,
            })
        })
        .collect();
    json!({
        "run_id": summary.run_id,
        "status": if summary.succeeded { "succeeded" } else { "failed" },
        "steps": steps,
    })
}

/// Step errors, skipped steps and the outcome line, on stderr.
pub(crate) fn report_outcome(pipeline: &str, summary: &RunSummary) {
    for s in &summary.steps {
        if let Some(e) = &s.error {
            eprintln!("error: {e}");
        }
    }
    let skipped: Vec<&str> = summary
        .steps
        .iter()
        .filter(|s| s.status == StepStatus::Skipped)
        .map(|s| s.name.as_str())
        .collect();
    if !skipped.is_empty() {
        eprintln!("skipped (an input failed): {}", skipped.join(", "));
    }
    eprintln!(
        "pipeline '{}' {} (run {}, experiment {})",
        pipeline,
        if summary.succeeded {
            "succeeded"
        } else {
            "failed"
        },
        summary.run_id,
        summary.experiment_id
    );
}

async fn run_pipeline(args: PipelineRunArgs) -> anyhow::Result<ExitCode> {
    let dir = project_dir(&args.dir)?;
    let pipeline = Pipeline::load(&dir)?;
    let tracked = Tracked::open(args.tracking_uri.as_deref()).await?;
    let opts = tracked.options(
        args.params.clone(),
        args.no_cache,
        args.max_parallel,
        vec![("kaizen.trigger".into(), "cli".into())],
    );
    let outcome = tracked.run(&pipeline, &opts).await;
    tracked.close().await;
    let summary = outcome?;
    if args.json {
        println!("{}", summary_json(&summary));
    }
    report_outcome(&pipeline.meta.name, &summary);
    Ok(if summary.succeeded {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// One triggered run: the pipeline as its file says now, so edits between runs are picked up.
/// Failures of the run itself (a broken file, a bad parameter) are reported and count as a
/// failed run; the trigger goes on.
async fn triggered_run(tracked: &Tracked, dir: &Path, opts: RunOptions, json: bool) -> bool {
    let pipeline = match Pipeline::load(dir) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return false;
        }
    };
    let outcome = tracked.run(&pipeline, &opts).await;
    match outcome {
        Ok(summary) => {
            if json {
                println!("{}", summary_json(&summary));
            }
            report_outcome(&pipeline.meta.name, &summary);
            summary.succeeded
        }
        Err(e) => {
            eprintln!(
                "error: pipeline '{}' did not start: {e}",
                pipeline.meta.name
            );
            false
        }
    }
}

/// Set on the first Ctrl-C: finish the current run, start no other. A second Ctrl-C exits.
fn stop_on_ctrl_c() -> Arc<AtomicBool> {
    let stopping = Arc::new(AtomicBool::new(false));
    let flag = stopping.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            flag.store(true, Ordering::SeqCst);
            eprintln!("stopping after the current run (Ctrl-C again to quit now)");
            if tokio::signal::ctrl_c().await.is_ok() {
                std::process::exit(130);
            }
        }
    });
    stopping
}

/// Checks the parameters once before waiting for the first tick or file, so a typo fails now.
fn check_params(pipeline: &Pipeline, params: &[String]) -> anyhow::Result<()> {
    pipeline.resolve_params(params)?;
    Ok(())
}

async fn schedule(args: PipelineScheduleArgs) -> anyhow::Result<ExitCode> {
    use std::str::FromStr as _;
    let dir = project_dir(&args.dir)?;
    let pipeline = Pipeline::load(&dir)?;
    check_params(&pipeline, &args.params)?;
    let cron = croner::Cron::from_str(args.cron.trim())
        .map_err(|e| Error::invalid(format!("--cron '{}': {e}", args.cron)))?;
    if args.max_runs == Some(0) {
        return Ok(ExitCode::SUCCESS);
    }
    let tracked = Arc::new(Tracked::open(args.tracking_uri.as_deref()).await?);
    let stopping = stop_on_ctrl_c();
    eprintln!(
        "running pipeline '{}' on schedule '{}'{}; Ctrl-C to stop",
        pipeline.meta.name,
        args.cron,
        args.max_runs
            .map(|n| format!(" for {n} runs"))
            .unwrap_or_default()
    );
    let mut started = 0u64;
    let mut failed = 0u64;
    let mut current: Option<tokio::task::JoinHandle<bool>> = None;
    while !stopping.load(Ordering::SeqCst) && args.max_runs.is_none_or(|n| started < n) {
        let now = chrono::Local::now();
        let next = cron
            .find_next_occurrence(&now, false)
            .map_err(|e| Error::invalid(format!("--cron '{}': no next tick: {e}", args.cron)))?;
        let wait = (next - now).to_std().unwrap_or_default();
        // Wake up at the tick, or early on Ctrl-C.
        let mut slept = Duration::ZERO;
        while slept < wait && !stopping.load(Ordering::SeqCst) {
            let step = (wait - slept).min(Duration::from_millis(200));
            tokio::time::sleep(step).await;
            slept += step;
        }
        if stopping.load(Ordering::SeqCst) {
            break;
        }
        if let Some(run) = current.take() {
            if !run.is_finished() {
                eprintln!(
                    "tick {} skipped: the previous run is still going",
                    next.format("%Y-%m-%d %H:%M:%S")
                );
                current = Some(run);
                continue;
            }
            if !run.await.unwrap_or(false) {
                failed += 1;
            }
        }
        started += 1;
        let opts = tracked.options(
            args.params.clone(),
            args.no_cache,
            args.max_parallel,
            vec![
                ("kaizen.trigger".into(), "schedule".into()),
                ("kaizen.schedule".into(), args.cron.clone()),
            ],
        );
        let (tracked, dir, json) = (tracked.clone(), dir.clone(), args.json);
        current = Some(tokio::spawn(async move {
            triggered_run(&tracked, &dir, opts, json).await
        }));
    }
    let last_ok = match current.take() {
        Some(run) => run.await.unwrap_or(false),
        None => true,
    };
    if !last_ok {
        failed += 1;
    }
    if let Ok(tracked) = Arc::try_unwrap(tracked) {
        tracked.close().await;
    }
    eprintln!("{started} scheduled runs, {failed} failed");
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// What a watched file looked like at the last look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Seen {
    len: u64,
    modified: Option<SystemTime>,
}

/// The plain files directly in `dir`; hidden files (a `.` first) are left out, since uploads
/// often write to a hidden temporary name and rename when done.
fn list_files(dir: &Path) -> anyhow::Result<BTreeMap<PathBuf, Seen>> {
    let mut out = BTreeMap::new();
    let entries =
        std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))?;
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let Ok(meta) = entry.metadata() else { continue };
        if meta.is_file() {
            out.insert(
                entry.path(),
                Seen {
                    len: meta.len(),
                    modified: meta.modified().ok(),
                },
            );
        }
    }
    Ok(out)
}

async fn watch(args: PipelineWatchArgs) -> anyhow::Result<ExitCode> {
    let dir = project_dir(&args.dir)?;
    let pipeline = Pipeline::load(&dir)?;
    match pipeline.params.get(&args.param) {
        Some(ParamValue::String(_)) => {}
        Some(_) => {
            return Err(Error::invalid(format!(
                "--param {}: the parameter that gets the file's path must be a string parameter",
                args.param
            ))
            .into());
        }
        None => {
            return Err(Error::invalid(format!(
                "--param {}: the pipeline declares no such parameter (declared: {})",
                args.param,
                pipeline
                    .params
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
            .into());
        }
    }
    check_params(&pipeline, &args.params)?;
    let incoming = project_dir(&args.incoming)?;
    if !incoming.is_dir() {
        return Err(
            Error::invalid(format!("--dir {}: not a directory", incoming.display())).into(),
        );
    }
    if args.max_runs == Some(0) {
        return Ok(ExitCode::SUCCESS);
    }
    let interval = Duration::from_millis(args.interval_ms.max(10));
    let tracked = Tracked::open(args.tracking_uri.as_deref()).await?;
    let stopping = stop_on_ctrl_c();
    // Files already handled (or there at the start, without --existing).
    let mut done: HashSet<PathBuf> = if args.existing {
        HashSet::new()
    } else {
        list_files(&incoming)?.into_keys().collect()
    };
    // New files and how they looked at the last look; taken once they hold still.
    let mut pending: HashMap<PathBuf, Seen> = HashMap::new();
    eprintln!(
        "watching {} for new files (pipeline '{}', path in parameter '{}'); Ctrl-C to stop",
        incoming.display(),
        pipeline.meta.name,
        args.param
    );
    let (mut started, mut failed) = (0u64, 0u64);
    'watch: while !stopping.load(Ordering::SeqCst) {
        let files = list_files(&incoming)?;
        pending.retain(|p, _| files.contains_key(p));
        let mut ready = Vec::new();
        for (path, seen) in &files {
            if done.contains(path) {
                continue;
            }
            match pending.insert(path.clone(), *seen) {
                Some(before) if before == *seen => ready.push(path.clone()),
                _ => {}
            }
        }
        for path in ready {
            if stopping.load(Ordering::SeqCst) || args.max_runs.is_some_and(|n| started >= n) {
                break 'watch;
            }
            pending.remove(&path);
            done.insert(path.clone());
            eprintln!("new file {}", path.display());
            let mut params = args.params.clone();
            params.push(format!("{}={}", args.param, path.display()));
            let opts = tracked.options(
                params,
                args.no_cache,
                args.max_parallel,
                vec![
                    ("kaizen.trigger".into(), "watch".into()),
                    ("kaizen.trigger.file".into(), path.display().to_string()),
                ],
            );
            started += 1;
            if !triggered_run(&tracked, &dir, opts, args.json).await {
                failed += 1;
            }
        }
        if args.max_runs.is_some_and(|n| started >= n) {
            break;
        }
        tokio::time::sleep(interval).await;
    }
    tracked.close().await;
    eprintln!("{started} runs for new files, {failed} failed");
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

// ---- looking at runs ----

fn tag<'a>(run: &'a Run, key: &str) -> Option<&'a str> {
    run.data
        .tags
        .iter()
        .find(|t| t.key == key)
        .map(|t| t.value.as_str())
}

fn metric(run: &Run, key: &str) -> Option<f64> {
    run.data
        .metrics
        .iter()
        .find(|m| m.key == key)
        .map(|m| m.value)
}

/// A pipeline run's status: `running`, `succeeded` or `failed`.
fn run_status(status: RunStatus) -> &'static str {
    match status {
        RunStatus::Running | RunStatus::Scheduled => "running",
        RunStatus::Finished => "succeeded",
        RunStatus::Failed | RunStatus::Killed => "failed",
    }
}

fn duration_ms(run: &Run) -> Option<i64> {
    match (run.info.start_time, run.info.end_time) {
        (Some(s), Some(e)) => Some(e - s),
        _ => None,
    }
}

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// Pipeline runs (not their step runs) matching `pipeline`, newest first.
async fn pipeline_runs(
    client: &dyn TrackingClient,
    pipeline: Option<&str>,
    max_results: i64,
) -> anyhow::Result<Vec<Run>> {
    let experiment_ids: Vec<String> = match pipeline {
        Some(name) => match client.get_experiment_by_name(name).await {
            Ok(e) => vec![e.experiment_id],
            Err(e) if e.kind == ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        },
        None => client
            .list_experiments(ViewType::ActiveOnly)
            .await?
            .into_iter()
            .map(|e| e.experiment_id)
            .collect(),
    };
    if experiment_ids.is_empty() {
        return Ok(Vec::new());
    }
    let by_pipeline = match pipeline {
        Some(name) => format!("tags.`kaizen.pipeline` = {}", quote(name)),
        None => "tags.`kaizen.pipeline` IS NOT NULL".to_string(),
    };
    let mut runs = Vec::new();
    // Searches take a bounded number of experiments at a time.
    for chunk in experiment_ids.chunks(100) {
        let page = client
            .search_runs(&RunSearch {
                experiment_ids: chunk.to_vec(),
                filter: format!("{by_pipeline} AND tags.`{}` IS NULL", tags::PARENT_RUN_ID),
                view: ViewType::ActiveOnly,
                order_by: vec!["attributes.start_time DESC".into()],
                max_results: Some(max_results),
                page_token: None,
            })
            .await?;
        runs.extend(page.items);
    }
    runs.sort_by_key(|r| std::cmp::Reverse(r.info.start_time));
    runs.truncate(max_results.max(0) as usize);
    Ok(runs)
}

async fn list_runs(args: PipelineRunsArgs) -> anyhow::Result<ExitCode> {
    let name = match (&args.dir, &args.pipeline) {
        (Some(dir), _) => Some(Pipeline::load(&project_dir(dir)?)?.meta.name),
        (None, Some(name)) => Some(name.clone()),
        (None, None) => None,
    };
    if !(1..=1000).contains(&args.max_results) {
        return Err(Error::invalid("--max-results must be from 1 to 1000").into());
    }
    let client = super::connect(&args.tracking).await?;
    let runs = pipeline_runs(client.as_ref(), name.as_deref(), args.max_results).await?;
    if args.tracking.json {
        let items: Vec<Value> = runs
            .iter()
            .map(|r| {
                json!({
                    "run_id": r.info.run_id,
                    "pipeline": tag(r, "kaizen.pipeline"),
                    "status": run_status(r.info.status),
                    "start_time": r.info.start_time,
                    "end_time": r.info.end_time,
                    "duration_ms": duration_ms(r),
                    "trigger": tag(r, "kaizen.trigger"),
                })
            })
            .collect();
        printer::json(&json!({ "runs": items }));
        return Ok(ExitCode::SUCCESS);
    }
    if runs.is_empty() {
        eprintln!("no pipeline runs in {}", client.target());
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<Vec<String>> = runs
        .iter()
        .map(|r| {
            vec![
                r.info.run_id.clone(),
                tag(r, "kaizen.pipeline").unwrap_or("-").to_string(),
                run_status(r.info.status).to_string(),
                printer::time(r.info.start_time),
                duration_ms(r)
                    .map(printer::duration)
                    .unwrap_or_else(|| "-".into()),
                tag(r, "kaizen.trigger").unwrap_or("-").to_string(),
            ]
        })
        .collect();
    printer::table(
        &[
            "RUN_ID", "PIPELINE", "STATUS", "STARTED", "DURATION", "TRIGGER",
        ],
        &rows,
    );
    Ok(ExitCode::SUCCESS)
}

/// A pipeline run and its step runs in the order they started. A step run's id is taken for its
/// pipeline run.
async fn load_run(client: &dyn TrackingClient, run_id: &str) -> anyhow::Result<(Run, Vec<Run>)> {
    let missing = || {
        anyhow::Error::from(Error::not_found(format!(
            "no pipeline run '{run_id}' in {}\nhint: `kaizen pipeline runs` lists them",
            client.target()
        )))
    };
    let run = match client.get_run(run_id).await {
        Ok(r) => r,
        Err(e) if matches!(e.kind, ErrorKind::NotFound | ErrorKind::InvalidParameter) => {
            return Err(missing());
        }
        Err(e) => return Err(e.into()),
    };
    if tag(&run, "kaizen.pipeline").is_none() {
        return Err(Error::invalid(format!(
            "run '{run_id}' is not a pipeline run\nhint: `kaizen runs show {run_id}` shows any run"
        ))
        .into());
    }
    let run = match tag(&run, tags::PARENT_RUN_ID) {
        Some(parent) => client.get_run(parent).await?,
        None => run,
    };
    let page = client
        .search_runs(&RunSearch {
            experiment_ids: vec![run.info.experiment_id.clone()],
            filter: format!(
                "tags.`{}` = {}",
                tags::PARENT_RUN_ID,
                quote(&run.info.run_id)
            ),
            view: ViewType::ActiveOnly,
            order_by: vec!["attributes.start_time ASC".into()],
            max_results: Some(1000),
            page_token: None,
        })
        .await?;
    let mut steps = page.items;
    steps.sort_by_key(|r| r.info.start_time);
    Ok((run, steps))
}

fn step_name(r: &Run) -> String {
    tag(r, "kaizen.step")
        .unwrap_or(&r.info.run_name)
        .to_string()
}

fn step_status(r: &Run) -> String {
    match tag(r, "kaizen.status") {
        Some(s) => s.to_string(),
        None => run_status(r.info.status).to_string(),
    }
}

/// `(output name, sha256)` of a step run.
fn step_outputs(r: &Run) -> Vec<(&str, &str)> {
    r.data
        .tags
        .iter()
        .filter_map(|t| Some((t.key.strip_prefix("kaizen.output.")?, t.value.as_str())))
        .collect()
}

/// Declared steps without a run (those after a failed step, or not started yet), from the
/// pipeline file when it still names the same pipeline.
fn steps_without_run(run: &Run, steps: &[Run]) -> Vec<String> {
    let (Some(dir), Some(name)) = (tag(run, "kaizen.pipeline.dir"), tag(run, "kaizen.pipeline"))
    else {
        return Vec::new();
    };
    let Ok(pipeline) = Pipeline::load(Path::new(dir)) else {
        return Vec::new();
    };
    if pipeline.meta.name != name {
        return Vec::new();
    }
    let ran: HashSet<String> = steps.iter().map(step_name).collect();
    pipeline
        .steps
        .into_iter()
        .map(|s| s.name)
        .filter(|n| !ran.contains(n))
        .collect()
}

async fn show(args: PipelineShowArgs) -> anyhow::Result<ExitCode> {
    let client = super::connect(&args.tracking).await?;
    let (run, steps) = load_run(client.as_ref(), &args.run_id).await?;
    let unrun = steps_without_run(&run, &steps);
    let unrun_status = if run_status(run.info.status) == "running" {
        "pending"
    } else {
        "skipped"
    };
    let params: BTreeMap<&str, &str> = run
        .data
        .params
        .iter()
        .map(|p| (p.key.as_str(), p.value.as_str()))
        .collect();
    if args.tracking.json {
        let steps: Vec<Value> = steps
            .iter()
            .map(|r| {
                json!({
                    "name": step_name(r),
                    "status": step_status(r),
                    "duration_ms": metric(r, "duration_ms").map(|d| d as i64),
                    "cache": tag(r, "kaizen.cache"),
                    "cache_miss_reason": tag(r, "kaizen.cache_miss_reason"),
                    "cached_from": tag(r, "kaizen.cached_from"),
                    "attempts": metric(r, "attempts").map(|a| a as i64),
                    "run_id": r.info.run_id,
                    "outputs": step_outputs(r)
                        .iter()
                        .map(|(name, sha)| json!({"name": name, "sha256": sha}))
                        .collect::<Vec<_>>(),
                })
            })
            .chain(unrun.iter().map(|name| {
                json!({
                    "name": name,
                    "status": unrun_status,
                    "duration_ms": null,
                    "cache": null,
                    "cache_miss_reason": null,
                    "cached_from": null,
                    "attempts": null,
                    "run_id": null,
                    "outputs": [],
                })
            }))
            .collect();
        printer::json(&json!({
            "run_id": run.info.run_id,
            "pipeline": tag(&run, "kaizen.pipeline"),
            "status": run_status(run.info.status),
            "start_time": run.info.start_time,
            "end_time": run.info.end_time,
            "duration_ms": duration_ms(&run),
            "trigger": tag(&run, "kaizen.trigger"),
            "params": params,
            "steps": steps,
        }));
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "Pipeline run {} ({})",
        run.info.run_id,
        tag(&run, "kaizen.pipeline").unwrap_or("-")
    );
    println!("  status:    {}", run_status(run.info.status));
    println!("  started:   {}", printer::time(run.info.start_time));
    println!(
        "  duration:  {}",
        duration_ms(&run)
            .map(printer::duration)
            .unwrap_or_else(|| "-".into())
    );
    println!(
        "  trigger:   {}",
        tag(&run, "kaizen.trigger").unwrap_or("-")
    );
    if let Some(dir) = tag(&run, "kaizen.pipeline.dir") {
        println!("  directory: {dir}");
    }
    if !params.is_empty() {
        let text: Vec<String> = params.iter().map(|(k, v)| format!("{k}={v}")).collect();
        println!("  params:    {}", text.join(" "));
    }
    let rows: Vec<Vec<String>> = steps
        .iter()
        .map(|r| {
            let cache = match (tag(r, "kaizen.cache"), tag(r, "kaizen.cache_miss_reason")) {
                (Some("hit"), _) => "hit".to_string(),
                (_, Some(reason)) => format!("miss: {reason}"),
                _ => "-".to_string(),
            };
            let outputs: Vec<String> = step_outputs(r)
                .iter()
                .map(|(name, sha)| format!("{name} ({})", &sha[..sha.len().min(12)]))
                .collect();
            vec![
                step_name(r),
                step_status(r),
                metric(r, "duration_ms")
                    .map(|d| printer::duration(d as i64))
                    .unwrap_or_else(|| "-".into()),
                cache,
                if outputs.is_empty() {
                    "-".into()
                } else {
                    outputs.join(", ")
                },
            ]
        })
        .chain(unrun.iter().map(|name| {
            vec![
                name.clone(),
                unrun_status.to_string(),
                "-".into(),
                "-".into(),
                "-".into(),
            ]
        }))
        .collect();
    printer::section(
        "Steps",
        &["STEP", "STATUS", "DURATION", "CACHE", "OUTPUTS"],
        rows,
    );
    Ok(ExitCode::SUCCESS)
}

/// The attempts of `step` that left logs in `logs_dir`, lowest first.
fn attempts(logs_dir: &Path, step: &str) -> Vec<u32> {
    let mut out: Vec<u32> = std::fs::read_dir(logs_dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let rest = name.strip_prefix(step)?.strip_prefix('.')?;
            let (n, stream) = rest.split_once('.')?;
            matches!(stream, "stdout" | "stderr").then_some(n.parse().ok()?)
        })
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

async fn logs(args: PipelineLogsArgs) -> anyhow::Result<ExitCode> {
    let client = super::connect(&TrackingArgs {
        tracking_uri: args.tracking_uri.clone(),
        json: false,
    })
    .await?;
    let (run, steps) = load_run(client.as_ref(), &args.run_id).await?;
    let work_dir = settings::home().join("pipelines");
    let selected: Vec<&Run> = match &args.step {
        Some(step) => {
            let found: Vec<&Run> = steps.iter().filter(|r| step_name(r) == *step).collect();
            if found.is_empty() {
                let names: Vec<String> = steps.iter().map(step_name).collect();
                return Err(Error::not_found(format!(
                    "pipeline run {} has no step '{step}' (steps that ran: {})",
                    run.info.run_id,
                    if names.is_empty() {
                        "none".into()
                    } else {
                        names.join(", ")
                    }
                ))
                .into());
            }
            found
        }
        None => steps.iter().collect(),
    };
    let streams: &[&str] = match (args.stdout, args.stderr) {
        (true, false) => &["stdout"],
        (false, true) => &["stderr"],
        _ => &["stdout", "stderr"],
    };
    let mut files: Vec<(String, PathBuf)> = Vec::new();
    for r in selected {
        let step = step_name(r);
        // A cached step did not run; its logs are those of the run that made the result.
        let mut pipeline_run = run.info.run_id.clone();
        if tag(r, "kaizen.cache") == Some("hit") {
            let origin = match tag(r, "kaizen.cached_from") {
                Some(from) => client.get_run(from).await.ok(),
                None => None,
            };
            match origin.as_ref().and_then(|o| tag(o, tags::PARENT_RUN_ID)) {
                Some(parent) => {
                    eprintln!("{step}: cached; logs of run {parent}, which made the result");
                    pipeline_run = parent.to_string();
                }
                None => {
                    eprintln!("{step}: cached; no logs of the run that made the result");
                    continue;
                }
            }
        }
        let logs_dir = work_dir.join(&pipeline_run).join("logs");
        let attempt = match args.attempt {
            Some(n) => n,
            None => match attempts(&logs_dir, &step).last() {
                Some(n) => *n,
                None => {
                    eprintln!("{step}: no logs under {}", logs_dir.display());
                    continue;
                }
            },
        };
        for stream in streams {
            let path = logs_dir.join(format!("{step}.{attempt}.{stream}"));
            if path.is_file() {
                files.push((format!("{step} (attempt {attempt}, {stream})"), path));
            } else if args.attempt.is_some() {
                return Err(Error::not_found(format!(
                    "step '{step}' has no {stream} log of attempt {attempt} ({})",
                    path.display()
                ))
                .into());
            }
        }
    }
    // Several files each get a header; empty ones are left out.
    let headers = files.len() > 1;
    if headers {
        files.retain(|(_, path)| std::fs::metadata(path).is_ok_and(|m| m.len() > 0));
    }
    for (title, path) in &files {
        let text =
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        if headers {
            println!("==> {title} <==");
        }
        let text = String::from_utf8_lossy(&text);
        print!("{text}");
        if headers && !text.is_empty() && !text.ends_with('\n') {
            println!();
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// One progress line per step on stderr: spinners on a terminal, plain lines otherwise.
pub(crate) struct Progress {
    multi: Option<MultiProgress>,
    bars: Mutex<std::collections::HashMap<String, ProgressBar>>,
}

impl Progress {
    pub(crate) fn new(_pipeline: &Pipeline) -> Self {
        use std::io::IsTerminal;
        let multi = std::io::stderr()
            .is_terminal()
            .then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));
        Self {
            multi,
            bars: Mutex::new(Default::default()),
        }
    }

    pub(crate) fn finish(&self) {
        for bar in self.bars.lock().unwrap().values() {
            if !bar.is_finished() {
                bar.finish();
            }
        }
    }
}

fn seconds(ms: u64) -> String {
    format!("{:.1}s", ms as f64 / 1000.0)
}

impl Reporter for Progress {
    fn step_started(&self, step: &str) {
        match &self.multi {
            Some(m) => {
                let bar = m.add(ProgressBar::new_spinner());
                bar.set_style(
                    ProgressStyle::with_template("{spinner} {msg} {elapsed}")
                        .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                );
                bar.set_message(format!("{step}: running"));
                bar.enable_steady_tick(Duration::from_millis(120));
                self.bars.lock().unwrap().insert(step.to_string(), bar);
            }
            None => eprintln!("{step}: running"),
        }
    }

    fn step_retrying(&self, step: &str, attempt: u32, error: &str) {
        let first = error.lines().next().unwrap_or_default();
        let line = format!("{step}: retry {attempt} after: {first}");
        match self.bars.lock().unwrap().get(step) {
            Some(bar) => bar.set_message(line),
            None => eprintln!("{line}"),
        }
    }

    fn step_finished(&self, r: &StepResult) {
        let line = match r.status {
            StepStatus::Succeeded => format!(
                "{}: done in {} ({})",
                r.name,
                seconds(r.duration_ms),
                r.cache_miss_reason.as_deref().unwrap_or("ran")
            ),
            StepStatus::Cached => format!("{}: cached ({})", r.name, seconds(r.duration_ms)),
            StepStatus::Failed => format!("{}: failed after {}", r.name, seconds(r.duration_ms)),
            StepStatus::Skipped => format!("{}: skipped", r.name),
        };
        match self.bars.lock().unwrap().get(&r.name) {
            Some(bar) => bar.finish_with_message(line),
            None => match &self.multi {
                Some(m) => {
                    let _ = m.println(line);
                }
                None => eprintln!("{line}"),
            },
        }
    }
}
