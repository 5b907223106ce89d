//! Running a pipeline: scheduling ready steps up to the parallelism bound, the cache check of each
//! step, its tracked nested run, its outputs in the content-addressed store, and lineage edges.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use kaizen_artifacts::ArtifactPath;
use kaizen_core::{Error, ErrorKind, Metric, Result, RunStatus, Tag, tags};
use kaizen_store::{LineageEdge, NewDatasetVersion, StepCacheEntry};
use kaizen_tracking::{NewRun, Services};
use tokio::io::AsyncWriteExt;
use tokio::task::JoinSet;

use crate::cache::{KeyParts, fingerprint_path, hash_file, sha256_hex};
use crate::spec::{Foreach, InputRef, ParamValue, Pipeline, StepKind, StepSpec, substitute};
use crate::step::{Runners, StepContext, StepRunner};

/// How a run is started.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// `key=value` overrides of the pipeline's parameters.
    pub param_overrides: Vec<String>,
    /// Run every step even when its result is cached.
    pub no_cache: bool,
    pub max_parallel: usize,
    /// What steps get as `MLFLOW_TRACKING_URI`.
    pub tracking_uri: String,
    /// Scratch space: each run gets `<work_dir>/<run_id>/` for step outputs and logs.
    pub work_dir: PathBuf,
    pub user: Option<String>,
    /// Extra tags of the pipeline's run, e.g. `kaizen.trigger`.
    pub tags: Vec<(String, String)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepStatus {
    Succeeded,
    Cached,
    Failed,
    Skipped,
}

impl StepStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            StepStatus::Succeeded => "succeeded",
            StepStatus::Cached => "cached",
            StepStatus::Failed => "failed",
            StepStatus::Skipped => "skipped",
        }
    }
}

/// The outcome of one step.
#[derive(Debug, Clone)]
pub struct StepResult {
    pub name: String,
    pub status: StepStatus,
    pub duration_ms: u64,
    /// Output name → sha256 of its content.
    pub outputs: BTreeMap<String, String>,
    /// Why the cache did not serve the step; `None` for cached and skipped steps.
    pub cache_miss_reason: Option<String>,
    /// The failure, with the stderr tail, of a failed step.
    pub error: Option<String>,
    /// The step's nested run; `None` for skipped steps.
    pub run_id: Option<String>,
}

impl StepResult {
    /// A step that did not run: an input failed, or a choice step chose another target.
    pub fn skipped(name: &str) -> Self {
        StepResult {
            name: name.to_string(),
            status: StepStatus::Skipped,
            duration_ms: 0,
            outputs: BTreeMap::new(),
            cache_miss_reason: None,
            error: None,
            run_id: None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct RunSummary {
    pub run_id: String,
    pub experiment_id: String,
    pub succeeded: bool,
    pub steps: Vec<StepResult>,
}

/// Progress of a run, for a UI.
pub trait Reporter: Send + Sync {
    fn step_started(&self, step: &str);
    fn step_retrying(&self, _step: &str, _attempt: u32, _error: &str) {}
    fn step_finished(&self, result: &StepResult);
}

struct Ctx {
    services: Services,
    pipeline: Pipeline,
    params: BTreeMap<String, ParamValue>,
    opts: RunOptions,
    runners: Runners,
    reporter: Arc<dyn Reporter>,
    parent_run_id: String,
    experiment_id: String,
    run_dir: PathBuf,
}

/// What a finished step hands to its dependents.
#[derive(Debug, Clone)]
struct Produced {
    dir: PathBuf,
    outputs: BTreeMap<String, String>,
}

/// Runs a pipeline to the end. Step failures are in the summary; `Err` is for failures of the
/// run itself (bad parameters, an unavailable step kind, the stores).
pub async fn run_pipeline(
    services: &Services,
    pipeline: &Pipeline,
    opts: &RunOptions,
    runners: &Runners,
    reporter: Arc<dyn Reporter>,
) -> Result<RunSummary> {
    start_run(services, pipeline, opts, runners, reporter)
        .await?
        .execute()
        .await
}

/// A pipeline run whose tracked run exists and whose steps have not started: what an HTTP
/// trigger answers with before the steps run.
pub struct StartedRun {
    ctx: Arc<Ctx>,
    order: Vec<String>,
    deps: HashMap<String, Vec<String>>,
}

/// Checks the pipeline and its parameters and creates the run (an MLflow run in the experiment
/// named after the pipeline, the parameter values as params). Nothing runs yet.
pub async fn start_run(
    services: &Services,
    pipeline: &Pipeline,
    opts: &RunOptions,
    runners: &Runners,
    reporter: Arc<dyn Reporter>,
) -> Result<StartedRun> {
    let params = pipeline.resolve_params(&opts.param_overrides)?;
    for s in &pipeline.steps {
        runners.get(s)?;
    }
    let order = pipeline.order()?;
    let deps: HashMap<String, Vec<String>> = pipeline
        .steps
        .iter()
        .map(|s| {
            Ok((
                s.name.clone(),
                pipeline.dependencies(s)?.into_iter().collect(),
            ))
        })
        .collect::<Result<_>>()?;
    let experiment_id = experiment(services, &pipeline.meta.name).await?;
    let interrupted = mark_interrupted_runs(services, &experiment_id).await?;
    let mut run_tags = vec![
        Tag::new("kaizen.pipeline", &pipeline.meta.name),
        Tag::new("kaizen.pipeline.dir", pipeline.dir.display().to_string()),
        Tag::new("kaizen.pid", std::process::id().to_string()),
    ];
    for (k, v) in &opts.tags {
        run_tags.push(Tag::new(k, v));
    }
    if !interrupted.is_empty() {
        // Its finished steps are in the cache, so this run continues where it stopped.
        run_tags.push(Tag::new("kaizen.resumes", interrupted.join(",")));
    }
    let parent = services
        .tracking
        .create_run(NewRun {
            experiment_id: Some(experiment_id.clone()),
            user_id: opts.user.clone(),
            start_time: None,
            run_name: None,
            tags: run_tags,
        })
        .await?;
    let parent_run_id = parent.info.run_id.clone();
    let param_tags: Vec<Tag> = params
        .iter()
        .map(|(k, v)| Tag::new(k, v.to_env()))
        .collect();
    for chunk in param_tags.chunks(100) {
        services
            .tracking
            .log_batch(&parent_run_id, &[], chunk, &[])
            .await?;
    }
    let run_dir = opts.work_dir.join(&parent_run_id);
    std::fs::create_dir_all(run_dir.join("logs"))
        .map_err(|e| Error::internal(format!("cannot create {}", run_dir.display()), e))?;
    let ctx = Arc::new(Ctx {
        services: services.clone(),
        pipeline: pipeline.clone(),
        params,
        opts: opts.clone(),
        runners: runners.clone(),
        reporter,
        parent_run_id,
        experiment_id,
        run_dir,
    });
    Ok(StartedRun { ctx, order, deps })
}

impl StartedRun {
    /// The pipeline's run (the parent of the step runs).
    pub fn run_id(&self) -> &str {
        &self.ctx.parent_run_id
    }

    pub fn experiment_id(&self) -> &str {
        &self.ctx.experiment_id
    }

    /// Runs the steps to the end and finishes the run.
    pub async fn execute(self) -> Result<RunSummary> {
        let ctx = self.ctx.clone();
        let outcome = self.schedule().await;
        let succeeded = matches!(&outcome, Ok(s) if s.succeeded);
        ctx.services
            .tracking
            .update_run(
                &ctx.parent_run_id,
                Some(if succeeded {
                    RunStatus::Finished
                } else {
                    RunStatus::Failed
                }),
                Some(kaizen_core::now_millis()),
                None,
            )
            .await?;
        outcome
    }

    async fn schedule(self) -> Result<RunSummary> {
        let StartedRun { ctx, order, deps } = self;
        let mut pending: Vec<String> = order;
        let mut produced: HashMap<String, Produced> = HashMap::new();
        let mut results: HashMap<String, StepResult> = HashMap::new();
        let mut failed_steps: Vec<String> = Vec::new();
        // Targets of choice steps that chose another target.
        let mut not_chosen: HashMap<String, String> = HashMap::new();
        let mut running = JoinSet::new();
        let max_parallel = ctx.opts.max_parallel.max(1);
        loop {
            // Start every ready step while there is room.
            let mut i = 0;
            while i < pending.len() && running.len() < max_parallel {
                let name = &pending[i];
                let ready = deps[name].iter().all(|d| produced.contains_key(d));
                if ready && let Some(choice) = not_chosen.get(name) {
                    let r = StepResult::skipped(name);
                    tracing::info!(step = %name, choice = %choice, "not chosen; skipped");
                    ctx.reporter.step_finished(&r);
                    results.insert(pending.remove(i), r);
                } else if ready {
                    let name = pending.remove(i);
                    let upstream: HashMap<String, Produced> = deps[&name]
                        .iter()
                        .map(|d| (d.clone(), produced[d].clone()))
                        .collect();
                    let ctx = ctx.clone();
                    ctx.reporter.step_started(&name);
                    running.spawn(async move {
                        let r = run_step(&ctx, &name, &upstream).await;
                        (name, r)
                    });
                } else {
                    i += 1;
                }
            }
            let Some(joined) = running.join_next().await else {
                break;
            };
            let (name, (result, out)) =
                joined.map_err(|e| Error::internal("a pipeline step task panicked", e))?;
            if let Some(p) = out {
                if ctx.pipeline.step(&name).map(|s| s.kind) == Some(StepKind::Choice) {
                    let next = crate::choice::chosen(&p.dir)?;
                    for target in crate::choice::targets(
                        &name,
                        &ctx.pipeline
                            .step(&name)
                            .map(|s| s.with.clone())
                            .unwrap_or_default(),
                    )? {
                        if target != next {
                            not_chosen.insert(target, name.clone());
                        }
                    }
                }
                produced.insert(name.clone(), p);
            } else {
                failed_steps.push(name.clone());
            }
            ctx.reporter.step_finished(&result);
            results.insert(name, result);
        }
        // What is left waits on a failed step.
        for name in pending {
            let r = StepResult::skipped(&name);
            ctx.reporter.step_finished(&r);
            results.insert(name, r);
        }
        let steps = ctx
            .pipeline
            .steps
            .iter()
            .filter_map(|s| results.remove(&s.name))
            .collect();
        Ok(RunSummary {
            run_id: ctx.parent_run_id.clone(),
            experiment_id: ctx.experiment_id.clone(),
            succeeded: failed_steps.is_empty(),
            steps,
        })
    }
}

/// Marks the runs of this pipeline whose process died (`kill -9`, a crash) as KILLED, with
/// their unfinished step runs, and answers their ids. Runs of a live process are left alone.
async fn mark_interrupted_runs(services: &Services, experiment_id: &str) -> Result<Vec<String>> {
    let running = services
        .tracking
        .search_runs(
            &[experiment_id.to_string()],
            "attributes.status = 'RUNNING'",
            kaizen_core::ViewType::ActiveOnly,
            &[],
            Some(1000),
            None,
        )
        .await?
        .items;
    let tag = |r: &kaizen_core::Run, key: &str| {
        r.data
            .tags
            .iter()
            .find(|t| t.key == key)
            .map(|t| t.value.clone())
    };
    let dead: Vec<String> = running
        .iter()
        .filter(|r| {
            tag(r, "kaizen.pid")
                .and_then(|p| p.parse::<i32>().ok())
                .is_some_and(|pid| !process_alive(pid))
        })
        .map(|r| r.info.run_id.clone())
        .collect();
    let now = kaizen_core::now_millis();
    for r in &running {
        let parent = tag(r, tags::PARENT_RUN_ID);
        if dead.contains(&r.info.run_id) || parent.is_some_and(|p| dead.contains(&p)) {
            services
                .tracking
                .update_run(&r.info.run_id, Some(RunStatus::Killed), Some(now), None)
                .await?;
        }
    }
    if !dead.is_empty() {
        tracing::info!(runs = ?dead, "marked interrupted pipeline runs as killed");
    }
    Ok(dead)
}

fn process_alive(pid: i32) -> bool {
    if pid == std::process::id() as i32 {
        return true;
    }
    // SAFETY: kill(2) with signal 0 only checks that the process exists.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// The experiment named after the pipeline, created on first use.
async fn experiment(services: &Services, name: &str) -> Result<String> {
    match services.tracking.get_experiment_by_name(name).await {
        Ok(e) => return Ok(e.experiment_id),
        Err(e) if e.kind == ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    match services.tracking.create_experiment(name, None, &[]).await {
        Ok(id) => Ok(id),
        // Another run created it meanwhile.
        Err(e) if e.kind == ErrorKind::AlreadyExists => Ok(services
            .tracking
            .get_experiment_by_name(name)
            .await?
            .experiment_id),
        Err(e) => Err(e),
    }
}

fn cas_path(hash: &str) -> Result<ArtifactPath> {
    ArtifactPath::parse(&format!("cas/{hash}"))
}

/// Runs one step: its nested run, the cache check, the attempts, the outputs. Answers the result
/// and, when it succeeded, what its dependents read.
async fn run_step(
    ctx: &Ctx,
    name: &str,
    upstream: &HashMap<String, Produced>,
) -> (StepResult, Option<Produced>) {
    let started = Instant::now();
    let mut result = StepResult {
        name: name.to_string(),
        status: StepStatus::Failed,
        duration_ms: 0,
        outputs: BTreeMap::new(),
        cache_miss_reason: None,
        error: None,
        run_id: None,
    };
    let outcome = step_inner(ctx, name, upstream, &mut result).await;
    result.duration_ms = started.elapsed().as_millis() as u64;
    let produced = match outcome {
        Ok(p) => Some(p),
        Err(e) => {
            result.status = StepStatus::Failed;
            result.error = Some(e.message.clone());
            if ctx.pipeline.step(name).map(|s| s.kind) == Some(StepKind::Validate) {
                kaizen_tracking::emit(
                    ctx.services.store.as_ref(),
                    kaizen_core::events::VALIDATION_FAILED,
                    &format!("{}/{name}", ctx.pipeline.meta.name),
                    serde_json::json!({
                        "pipeline": ctx.pipeline.meta.name,
                        "step": name,
                        "run_id": result.run_id,
                        "error": e.message,
                    }),
                )
                .await;
            }
            None
        }
    };
    if let Some(run_id) = &result.run_id {
        let status = if produced.is_some() {
            RunStatus::Finished
        } else {
            RunStatus::Failed
        };
        let now = kaizen_core::now_millis();
        let metrics = [Metric::new(
            "duration_ms",
            result.duration_ms as f64,
            now,
            0,
        )];
        let tags = [Tag::new("kaizen.status", result.status.as_str())];
        if let Err(e) = ctx
            .services
            .tracking
            .log_batch(run_id, &metrics, &[], &tags)
            .await
        {
            tracing::warn!(%e, run_id, "cannot log a step's status");
        }
        if let Err(e) = ctx
            .services
            .tracking
            .update_run(run_id, Some(status), Some(now), None)
            .await
        {
            tracing::warn!(%e, run_id, "cannot finish a step's run");
        }
    }
    (result, produced)
}

async fn step_inner(
    ctx: &Ctx,
    name: &str,
    upstream: &HashMap<String, Produced>,
    result: &mut StepResult,
) -> Result<Produced> {
    let pipeline = &ctx.pipeline;
    let step = pipeline
        .step(name)
        .ok_or_else(|| Error::new(ErrorKind::Internal, format!("unknown step {name}")))?
        .clone();
    let tracking = &ctx.services.tracking;
    let run = tracking
        .create_run(NewRun {
            experiment_id: Some(ctx.experiment_id.clone()),
            user_id: ctx.opts.user.clone(),
            start_time: None,
            run_name: Some(format!("{}/{name}", pipeline.meta.name)),
            tags: vec![
                Tag::new(tags::PARENT_RUN_ID, &ctx.parent_run_id),
                Tag::new("kaizen.pipeline", &pipeline.meta.name),
                Tag::new("kaizen.step", name),
                Tag::new("kaizen.step.kind", step.kind.as_str()),
            ],
        })
        .await?;
    let run_id = run.info.run_id.clone();
    result.run_id = Some(run_id.clone());
    let step_dir = ctx.run_dir.join(name);
    let output_dir = step_dir.join("out");

    // Inputs: paths for the command and hashes for the key.
    let mut inputs = Vec::new();
    let mut input_hashes = BTreeMap::new();
    let mut edges = Vec::new();
    let now = kaizen_core::now_millis();
    edges.push(edge("run", &ctx.parent_run_id, "run", &run_id, "parent"));
    for input in &step.inputs {
        let (path, hash) = match pipeline.resolve_input(name, input)? {
            InputRef::Path(p) => {
                let path = pipeline.dir.join(&p);
                let h = tokio::task::spawn_blocking({
                    let path = path.clone();
                    move || fingerprint_path(&path)
                })
                .await
                .map_err(|e| Error::internal("hashing task failed", e))??;
                edges.push(edge("file", &p, "run", &run_id, "input"));
                (path, h)
            }
            InputRef::Step(s) => {
                let up = &upstream[&s];
                let text: Vec<String> =
                    up.outputs.iter().map(|(k, v)| format!("{k}={v}")).collect();
                for h in up.outputs.values() {
                    edges.push(edge(
                        "artifact",
                        &format!("cas/{h}"),
                        "run",
                        &run_id,
                        "input",
                    ));
                }
                (up.dir.clone(), sha256_hex(text.join("\n").as_bytes()))
            }
            InputRef::Output(s, o) => {
                let up = &upstream[&s];
                let h = up.outputs[&o].clone();
                edges.push(edge(
                    "artifact",
                    &format!("cas/{h}"),
                    "run",
                    &run_id,
                    "input",
                ));
                (up.dir.join(&o), h)
            }
        };
        inputs.push((input.clone(), path));
        input_hashes.insert(input.clone(), hash);
    }
    let mut code_hashes = BTreeMap::new();
    for c in &step.code {
        code_hashes.insert(c.clone(), hash_file(&pipeline.dir.join(c))?);
    }
    let params: BTreeMap<String, ParamValue> = match &step.params {
        Some(names) => names
            .iter()
            .map(|n| (n.clone(), ctx.params[n].clone()))
            .collect(),
        // A command may read any parameter from its environment; a built-in step reads only
        // the ones its `with` names (and its `foreach` list).
        None if step.kind == StepKind::Command => ctx.params.clone(),
        None => {
            let mut used = crate::spec::template_names(&step.with);
            if let Some(Foreach::Param(p)) = &step.foreach {
                used.push(p.clone());
            }
            ctx.params
                .iter()
                .filter(|(k, _)| used.contains(k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        }
    };
    let runner = ctx.runners.get(&step)?;
    let logs = ctx.run_dir.join("logs");
    let params_file = step_dir.join("params.json");
    std::fs::create_dir_all(&step_dir)
        .map_err(|e| Error::internal(format!("cannot create {}", step_dir.display()), e))?;
    let params_json = serde_json::to_vec_pretty(&params)
        .map_err(|e| Error::internal("cannot encode params", e))?;
    std::fs::write(&params_file, params_json)
        .map_err(|e| Error::internal(format!("cannot write {}", params_file.display()), e))?;
    // The attempt context before per-item changes; `with` gets the parameter values.
    let mut resolved = step.clone();
    resolved.with = substitute(&step.with, &ctx.params);
    let base = StepContext {
        step: resolved,
        project_dir: pipeline.dir.clone(),
        output_dir: output_dir.clone(),
        stdout_path: logs.join(format!("{name}.0.stdout")),
        stderr_path: logs.join(format!("{name}.0.stderr")),
        inputs: inputs.clone(),
        params: params.clone(),
        params_file: params_file.clone(),
        tracking_uri: ctx.opts.tracking_uri.clone(),
        run_id: run_id.clone(),
        attempt: 0,
        item: None,
    };

    // External sources (a URL, a query) are part of the key.
    let sources = if step.foreach.is_none() {
        runner.fingerprint(&base).await?
    } else {
        BTreeMap::new()
    };
    for what in sources.keys() {
        let (kind, id) = what.split_once(':').unwrap_or(("source", what));
        edges.push(edge(kind, id, "run", &run_id, "input"));
    }
    let parts = KeyParts::new(&step, &input_hashes, &params, &code_hashes).with_sources(&sources);
    let key = parts.key();
    let store = &ctx.services.store;

    // The cache.
    let use_cache = step.cache && !ctx.opts.no_cache;
    if use_cache
        && let Some(hit) = store.get_step_cache(&key).await?
        && outputs_present(ctx, &hit).await?
    {
        reset_dir(&output_dir)?;
        for (o, h) in &hit.outputs {
            download(ctx, h, &output_dir.join(o)).await?;
            edges.push(edge(
                "run",
                &run_id,
                "artifact",
                &format!("cas/{h}"),
                "output",
            ));
        }
        tracking
            .log_batch(
                &run_id,
                &[],
                &[],
                &[
                    Tag::new("kaizen.cache_key", &key),
                    Tag::new("kaizen.cache", "hit"),
                    Tag::new("kaizen.cached_from", &hit.run_id),
                ],
            )
            .await?;
        store.add_lineage_edges(&edges).await?;
        result.status = StepStatus::Cached;
        result.outputs = hit.outputs.clone();
        return Ok(Produced {
            dir: output_dir,
            outputs: hit.outputs,
        });
    }
    let reason = if !step.cache {
        "cache disabled".to_string()
    } else if ctx.opts.no_cache {
        "cache disabled (--no-cache)".to_string()
    } else {
        parts.miss_reason(
            store
                .latest_step_cache(&pipeline.meta.name, name)
                .await?
                .as_ref(),
        )
    };
    result.cache_miss_reason = Some(reason.clone());
    tracking
        .log_batch(
            &run_id,
            &[],
            &[],
            &[
                Tag::new("kaizen.cache_key", &key),
                Tag::new("kaizen.cache", "miss"),
                Tag::new("kaizen.cache_miss_reason", &reason),
            ],
        )
        .await?;

    // The attempts: once, or once per item.
    reset_dir(&output_dir)?;
    let items = foreach_items(ctx, &step, &inputs, &step_dir).await?;
    let attempts = match &items {
        None => run_attempts(ctx, &*runner, base, &logs, name).await?,
        Some(items) => {
            // Items run side by side up to the parallelism bound.
            let slots = Arc::new(tokio::sync::Semaphore::new(ctx.opts.max_parallel.max(1)));
            let mut runs = Vec::with_capacity(items.len());
            for item in items {
                let mut c = base.clone();
                let label = format!("{name}[{}]", item.dir);
                c.output_dir = output_dir.join(&item.dir);
                let mut values = ctx.params.clone();
                values.insert("item".into(), ParamValue::String(item.value.clone()));
                c.step.with = substitute(&step.with, &values);
                c.item = Some(item.value.clone());
                if let Some((input, path)) = &item.input {
                    for (i, p) in c.inputs.iter_mut() {
                        if i == input {
                            *p = path.clone();
                        }
                    }
                }
                let (runner, logs, slots) = (runner.clone(), logs.clone(), slots.clone());
                runs.push(async move {
                    let _slot = slots
                        .acquire()
                        .await
                        .map_err(|e| Error::internal("item scheduling failed", e))?;
                    run_attempts(ctx, &*runner, c, &logs, &label).await
                });
            }
            let mut most = 0;
            for r in futures::future::join_all(runs).await {
                most = most.max(r?);
            }
            most
        }
    };

    // The outputs, into the content-addressed store.
    let mut outputs = BTreeMap::new();
    let names: Vec<String> = match &items {
        None => step.outputs.clone(),
        Some(items) => items
            .iter()
            .flat_map(|i| step.outputs.iter().map(move |o| format!("{}/{o}", i.dir)))
            .collect(),
    };
    for o in &names {
        let path = output_dir.join(o);
        if !path.is_file() {
            return Err(Error::invalid(format!(
                "step '{name}' did not write its output '{o}' into $KAIZEN_OUTPUT_DIR"
            )));
        }
        let h = upload(ctx, &path).await?;
        edges.push(edge(
            "run",
            &run_id,
            "artifact",
            &format!("cas/{h}"),
            "output",
        ));
        outputs.insert(o.clone(), h);
    }
    if items.is_none() {
        catalog(ctx, &step, &run_id, &output_dir, &outputs, &mut edges).await?;
    }
    let mut out_tags = vec![Tag::new("kaizen.attempts", attempts.to_string())];
    for (o, h) in &outputs {
        out_tags.push(Tag::new(format!("kaizen.output.{o}"), h));
    }
    tracking
        .log_batch(
            &run_id,
            &[Metric::new("attempts", f64::from(attempts), now, 0)],
            &[],
            &out_tags,
        )
        .await?;
    if step.cache {
        store
            .put_step_cache(&StepCacheEntry {
                cache_key: key,
                pipeline: pipeline.meta.name.clone(),
                step: name.to_string(),
                components: parts.components,
                outputs: outputs.clone(),
                run_id: run_id.clone(),
                created: kaizen_core::now_millis(),
            })
            .await?;
    }
    store.add_lineage_edges(&edges).await?;
    result.status = StepStatus::Succeeded;
    result.outputs = outputs.clone();
    Ok(Produced {
        dir: output_dir,
        outputs,
    })
}

fn edge(sk: &str, si: &str, dk: &str, di: &str, rel: &str) -> LineageEdge {
    LineageEdge {
        src_kind: sk.into(),
        src_id: si.into(),
        dst_kind: dk.into(),
        dst_id: di.into(),
        relation: rel.into(),
        created: kaizen_core::now_millis(),
    }
}

/// Runs a step's attempts (one item of a `foreach` step, or the step) until one succeeds or
/// the retries are spent. Answers how many attempts it took.
/// Logs go to `<logs>/<label>.<attempt>.stdout|stderr`.
async fn run_attempts(
    ctx: &Ctx,
    runner: &dyn StepRunner,
    mut sctx: StepContext,
    logs: &Path,
    label: &str,
) -> Result<u32> {
    let step = sctx.step.clone();
    let mut attempt = 0;
    loop {
        reset_dir(&sctx.output_dir)?;
        sctx.attempt = attempt;
        sctx.stdout_path = logs.join(format!("{label}.{attempt}.stdout"));
        sctx.stderr_path = logs.join(format!("{label}.{attempt}.stderr"));
        match runner.run(&sctx).await {
            Ok(()) => return Ok(attempt + 1),
            Err(failure) if attempt < step.retries => {
                let wait = step
                    .retry_backoff_ms
                    .saturating_mul(1u64 << attempt.min(20));
                ctx.reporter
                    .step_retrying(label, attempt + 1, &failure.message);
                tracing::info!(step = %label, attempt, wait, "retrying step");
                tokio::time::sleep(Duration::from_millis(wait)).await;
                attempt += 1;
            }
            Err(failure) => {
                let _ = ctx
                    .services
                    .tracking
                    .log_batch(
                        &sctx.run_id,
                        &[Metric::new(
                            "attempts",
                            f64::from(attempt + 1),
                            kaizen_core::now_millis(),
                            0,
                        )],
                        &[],
                        &[],
                    )
                    .await;
                return Err(Error::invalid(failure.to_string()));
            }
        }
    }
}

/// One item of a `foreach` step: its value, its output subdirectory, and for partitions the
/// input it replaces with its own part.
struct Item {
    value: String,
    dir: String,
    input: Option<(String, PathBuf)>,
}

/// A file-name-safe form of an item's value.
fn item_dir(value: &str) -> String {
    let s: String = value
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() || s.starts_with('.') {
        format!("_{s}")
    } else {
        s
    }
}

async fn foreach_items(
    ctx: &Ctx,
    step: &StepSpec,
    inputs: &[(String, PathBuf)],
    step_dir: &Path,
) -> Result<Option<Vec<Item>>> {
    let values: Vec<(String, Option<(String, PathBuf)>)> = match &step.foreach {
        None => return Ok(None),
        Some(Foreach::Param(p)) => match &ctx.params[p] {
            ParamValue::List(items) => items.iter().map(|v| (v.to_env(), None)).collect(),
            other => vec![(other.to_env(), None)],
        },
        Some(Foreach::Partitions { partitions, column }) => {
            let path = inputs
                .iter()
                .find(|(i, _)| i == partitions)
                .map(|(_, p)| p.clone())
                .ok_or_else(|| {
                    Error::invalid(format!("step '{}': no input '{partitions}'", step.name))
                })?;
            let dir = step_dir.join("partitions");
            let (name, column2, dir2) = (step.name.clone(), column.clone(), dir.clone());
            let parts = tokio::task::spawn_blocking(move || {
                crate::data_steps::partition(&name, &path, &column2, &dir2)
            })
            .await
            .map_err(|e| Error::internal("partition task failed", e))??;
            parts
                .into_iter()
                .map(|(value, file)| (value, Some((partitions.clone(), file))))
                .collect()
        }
    };
    let mut seen = std::collections::HashSet::new();
    let mut items = Vec::new();
    for (value, input) in values {
        let mut dir = item_dir(&value);
        if !seen.insert(dir.clone()) {
            dir = format!("{dir}_{}", items.len());
            seen.insert(dir.clone());
        }
        items.push(Item { value, dir, input });
    }
    Ok(Some(items))
}

/// Catalogs a step's tabular outputs as versions of the datasets named after them.
async fn catalog(
    ctx: &Ctx,
    step: &StepSpec,
    run_id: &str,
    output_dir: &Path,
    outputs: &BTreeMap<String, String>,
    edges: &mut Vec<LineageEdge>,
) -> Result<()> {
    for (o, h) in outputs {
        let path = output_dir.join(o);
        let Some(format) = kaizen_data::Format::from_path(&path) else {
            continue;
        };
        let summary =
            tokio::task::spawn_blocking(move || kaizen_data::describe_file(&path, format))
                .await
                .map_err(|e| Error::internal("catalog task failed", e))?;
        let summary = match summary {
            Ok(s) => s,
            // A file that only looks tabular (say, a JSON report) is not cataloged.
            Err(e) => {
                tracing::debug!(output = %o, error = %e, "output not cataloged");
                continue;
            }
        };
        let name = Path::new(o)
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| o.clone());
        let version = ctx
            .services
            .store
            .add_dataset_version(&NewDatasetVersion {
                name: name.clone(),
                content_hash: h.clone(),
                format: match format {
                    kaizen_data::Format::Csv => "csv",
                    kaizen_data::Format::Parquet => "parquet",
                    kaizen_data::Format::JsonLines => "jsonl",
                }
                .into(),
                schema: summary.schema,
                rows: summary.rows as i64,
                stats: summary.stats,
                run_id: run_id.to_string(),
                pipeline: ctx.pipeline.meta.name.clone(),
                step: step.name.clone(),
            })
            .await?;
        edges.push(edge(
            "artifact",
            &format!("cas/{h}"),
            "dataset",
            &format!("{name}@{}", version.version),
            "version",
        ));
    }
    Ok(())
}

fn reset_dir(dir: &Path) -> Result<()> {
    if dir.exists() {
        std::fs::remove_dir_all(dir)
            .map_err(|e| Error::internal(format!("cannot clear {}", dir.display()), e))?;
    }
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::internal(format!("cannot create {}", dir.display()), e))
}

async fn outputs_present(ctx: &Ctx, entry: &StepCacheEntry) -> Result<bool> {
    for h in entry.outputs.values() {
        match ctx.services.artifacts.get(&cas_path(h)?).await {
            Ok(_) => {}
            Err(e) if e.is_not_found() => return Ok(false),
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// Stores a file under `cas/<sha256>` (once per content) and answers the hash.
async fn upload(ctx: &Ctx, path: &Path) -> Result<String> {
    let h = tokio::task::spawn_blocking({
        let path = path.to_path_buf();
        move || hash_file(&path)
    })
    .await
    .map_err(|e| Error::internal("hashing task failed", e))??;
    let target = cas_path(&h)?;
    match ctx.services.artifacts.get(&target).await {
        Ok(_) => return Ok(h),
        Err(e) if e.is_not_found() => {}
        Err(e) => return Err(e),
    }
    let mut upload = ctx.services.artifacts.put_multipart(&target).await?;
    let mut file = tokio::fs::File::open(path)
        .await
        .map_err(|e| Error::internal(format!("cannot read {}", path.display()), e))?;
    loop {
        let mut buf = vec![0u8; 8 << 20];
        let n = read_full(&mut file, &mut buf)
            .await
            .map_err(|e| Error::internal(format!("cannot read {}", path.display()), e))?;
        if n == 0 {
            break;
        }
        buf.truncate(n);
        upload.write(bytes::Bytes::from(buf)).await?;
    }
    upload.finish().await?;
    Ok(h)
}

async fn read_full(file: &mut tokio::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    use tokio::io::AsyncReadExt;
    let mut filled = 0;
    while filled < buf.len() {
        let n = file.read(&mut buf[filled..]).await?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    Ok(filled)
}

async fn download(ctx: &Ctx, hash: &str, to: &Path) -> Result<()> {
    let (_, mut stream) = ctx.services.artifacts.get(&cas_path(hash)?).await?;
    if let Some(parent) = to.parent() {
        tokio::fs::create_dir_all(parent)
            .await
            .map_err(|e| Error::internal(format!("cannot create {}", parent.display()), e))?;
    }
    let mut file = tokio::fs::File::create(to)
        .await
        .map_err(|e| Error::internal(format!("cannot create {}", to.display()), e))?;
    while let Some(chunk) = stream.next().await {
        file.write_all(&chunk?)
            .await
            .map_err(|e| Error::internal(format!("cannot write {}", to.display()), e))?;
    }
    file.flush()
        .await
        .map_err(|e| Error::internal(format!("cannot write {}", to.display()), e))?;
    Ok(())
}
