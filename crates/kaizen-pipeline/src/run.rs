//! Running a pipeline: scheduling ready steps up to the parallelism bound, the cache check of each
//! step, its tracked nested run, its outputs in the content-addressed store, and lineage edges.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use kaizen_artifacts::ArtifactPath;
use kaizen_core::{Error, ErrorKind, Metric, Result, RunStatus, Tag, tags};
use kaizen_store::{LineageEdge, StepCacheEntry};
use kaizen_tracking::{NewRun, Services};
use tokio::io::AsyncWriteExt;
use tokio::task::JoinSet;

use crate::cache::{KeyParts, fingerprint_path, hash_file, sha256_hex};
use crate::spec::{InputRef, ParamValue, Pipeline};
use crate::step::{Runners, StepContext};

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
    let params = pipeline.resolve_params(&opts.param_overrides)?;
    for s in &pipeline.steps {
        runners.get(s)?;
    }
    let order = pipeline.order()?;
    let experiment_id = experiment(services, &pipeline.meta.name).await?;
    let parent = services
        .tracking
        .create_run(NewRun {
            experiment_id: Some(experiment_id.clone()),
            user_id: opts.user.clone(),
            start_time: None,
            run_name: None,
            tags: vec![Tag::new("kaizen.pipeline", &pipeline.meta.name)],
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
        parent_run_id: parent_run_id.clone(),
        experiment_id: experiment_id.clone(),
        run_dir,
    });

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
    let mut pending: Vec<String> = order.clone();
    let mut produced: HashMap<String, Produced> = HashMap::new();
    let mut results: HashMap<String, StepResult> = HashMap::new();
    let mut failed_steps: Vec<String> = Vec::new();
    let mut running = JoinSet::new();
    let max_parallel = opts.max_parallel.max(1);
    loop {
        // Start every ready step while there is room.
        let mut i = 0;
        while i < pending.len() && running.len() < max_parallel {
            let name = &pending[i];
            let ready = deps[name].iter().all(|d| produced.contains_key(d));
            if ready {
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
            produced.insert(name.clone(), p);
        } else {
            failed_steps.push(name.clone());
        }
        ctx.reporter.step_finished(&result);
        results.insert(name, result);
    }
    // What is left waits on a failed step.
    for name in pending {
        let r = StepResult {
            name: name.clone(),
            status: StepStatus::Skipped,
            duration_ms: 0,
            outputs: BTreeMap::new(),
            cache_miss_reason: None,
            error: None,
            run_id: None,
        };
        ctx.reporter.step_finished(&r);
        results.insert(name, r);
    }
    let succeeded = failed_steps.is_empty();
    services
        .tracking
        .update_run(
            &parent_run_id,
            Some(if succeeded {
                RunStatus::Finished
            } else {
                RunStatus::Failed
            }),
            Some(kaizen_core::now_millis()),
            None,
        )
        .await?;
    let steps = pipeline
        .steps
        .iter()
        .filter_map(|s| results.remove(&s.name))
        .collect();
    Ok(RunSummary {
        run_id: parent_run_id,
        experiment_id,
        succeeded,
        steps,
    })
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
    let edge = |sk: &str, si: &str, dk: &str, di: &str, rel: &str| LineageEdge {
        src_kind: sk.into(),
        src_id: si.into(),
        dst_kind: dk.into(),
        dst_id: di.into(),
        relation: rel.into(),
        created: now,
    };
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
        None => ctx.params.clone(),
    };
    let parts = KeyParts::new(&step, &input_hashes, &params, &code_hashes);
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

    // The attempts.
    let runner = ctx.runners.get(&step)?;
    let params_file = step_dir.join("params.json");
    std::fs::create_dir_all(&step_dir)
        .map_err(|e| Error::internal(format!("cannot create {}", step_dir.display()), e))?;
    let params_json = serde_json::to_vec_pretty(&params)
        .map_err(|e| Error::internal("cannot encode params", e))?;
    std::fs::write(&params_file, params_json)
        .map_err(|e| Error::internal(format!("cannot write {}", params_file.display()), e))?;
    let mut attempt = 0;
    loop {
        reset_dir(&output_dir)?;
        let logs = ctx.run_dir.join("logs");
        let sctx = StepContext {
            step: step.clone(),
            project_dir: pipeline.dir.clone(),
            output_dir: output_dir.clone(),
            stdout_path: logs.join(format!("{name}.{attempt}.stdout")),
            stderr_path: logs.join(format!("{name}.{attempt}.stderr")),
            inputs: inputs.clone(),
            params: params.clone(),
            params_file: params_file.clone(),
            tracking_uri: ctx.opts.tracking_uri.clone(),
            run_id: run_id.clone(),
            attempt,
        };
        match runner.run(&sctx).await {
            Ok(()) => break,
            Err(failure) if attempt < step.retries => {
                let wait = step
                    .retry_backoff_ms
                    .saturating_mul(1u64 << attempt.min(20));
                ctx.reporter
                    .step_retrying(name, attempt + 1, &failure.message);
                tracing::info!(step = name, attempt, wait, "retrying step");
                tokio::time::sleep(Duration::from_millis(wait)).await;
                attempt += 1;
            }
            Err(failure) => {
                let _ = tracking
                    .log_batch(
                        &run_id,
                        &[Metric::new("attempts", f64::from(attempt + 1), now, 0)],
                        &[],
                        &[],
                    )
                    .await;
                return Err(Error::invalid(failure.to_string()));
            }
        }
    }

    // The outputs, into the content-addressed store.
    let mut outputs = BTreeMap::new();
    for o in &step.outputs {
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
    let mut out_tags = vec![Tag::new("kaizen.attempts", (attempt + 1).to_string())];
    for (o, h) in &outputs {
        out_tags.push(Tag::new(format!("kaizen.output.{o}"), h));
    }
    tracking
        .log_batch(
            &run_id,
            &[Metric::new("attempts", f64::from(attempt + 1), now, 0)],
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
