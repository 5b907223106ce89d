//! `kaizen pipeline run`: runs a project's pipeline on the local home (or a given store), with a
//! tracking server started for the run's duration so steps can log with the `mlflow` client.

use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use kaizen_pipeline::{Pipeline, Reporter, RunOptions, Runners, StepResult, StepStatus};
use kaizen_server::{AppState, ServerConfig};
use kaizen_tracking::Services;
use serde_json::json;

use crate::cli::{PipelineCommand, PipelineRunArgs};
use crate::settings;

pub async fn run(cmd: PipelineCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        PipelineCommand::Run(args) => run_pipeline(args).await,
    }
}

async fn run_pipeline(args: PipelineRunArgs) -> anyhow::Result<ExitCode> {
    let dir = std::path::absolute(&args.dir)
        .with_context(|| format!("cannot resolve {}", args.dir.display()))?;
    let pipeline = Pipeline::load(&dir)?;
    let uri = args
        .tracking_uri
        .as_deref()
        .map(str::trim)
        .filter(|u| !u.is_empty());
    let store_uri = match uri {
        None => settings::default_store_uri(),
        Some(u) if u.starts_with("sqlite:") || u.starts_with("postgres") => u.to_string(),
        Some(u) => {
            return Err(kaizen_core::Error::invalid(format!(
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

    // A server on the same stores, for the steps' mlflow clients.
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

    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let opts = RunOptions {
        param_overrides: args.params.clone(),
        no_cache: args.no_cache,
        max_parallel: args.max_parallel,
        tracking_uri: format!("http://{addr}"),
        work_dir: settings::home().join("pipelines"),
        user: env("USER").or_else(|| env("USERNAME")),
    };
    let reporter = Arc::new(Progress::new(&pipeline));
    let outcome = kaizen_pipeline::run_pipeline(
        &services,
        &pipeline,
        &opts,
        &Runners::default(),
        reporter.clone(),
    )
    .await;
    reporter.finish();
    let _ = stop.send(());
    let _ = server.await;
    let summary = outcome?;

    if args.json {
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
        let out = json!({
            "run_id": summary.run_id,
            "status": if summary.succeeded { "succeeded" } else { "failed" },
            "steps": steps,
        });
        println!("{out}");
    }
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
        pipeline.meta.name,
        if summary.succeeded {
            "succeeded"
        } else {
            "failed"
        },
        summary.run_id,
        summary.experiment_id
    );
    Ok(if summary.succeeded {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// One progress line per step on stderr: spinners on a terminal, plain lines otherwise.
struct Progress {
    multi: Option<MultiProgress>,
    bars: Mutex<std::collections::HashMap<String, ProgressBar>>,
}

impl Progress {
    fn new(_pipeline: &Pipeline) -> Self {
        use std::io::IsTerminal;
        let multi = std::io::stderr()
            .is_terminal()
            .then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));
        Self {
            multi,
            bars: Mutex::new(Default::default()),
        }
    }

    fn finish(&self) {
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
