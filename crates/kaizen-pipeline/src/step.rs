//! Step runners: one per step kind. `command` runs a shell command in its own process group; the
//! built-in data kinds live in [`crate::data_steps`], `choice` in [`crate::choice`].

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use kaizen_core::{Error, Result};

use crate::spec::{ParamValue, StepKind, StepSpec, env_name};

/// How many lines of a failed step's stderr the error shows.
pub const STDERR_TAIL_LINES: usize = 20;

/// Everything a runner gets for one attempt of one step.
#[derive(Debug, Clone)]
pub struct StepContext {
    pub step: StepSpec,
    /// The project directory (the command's working directory).
    pub project_dir: PathBuf,
    /// Where the step writes its outputs; empty at the start of every attempt.
    pub output_dir: PathBuf,
    /// Where the attempt's stdout and stderr go.
    pub stdout_path: PathBuf,
    pub stderr_path: PathBuf,
    /// Each input as written in the pipeline file, with the path it resolved to.
    pub inputs: Vec<(String, PathBuf)>,
    /// The values of the parameters the step uses.
    pub params: BTreeMap<String, ParamValue>,
    /// A JSON object of `params`.
    pub params_file: PathBuf,
    pub tracking_uri: String,
    /// The step's nested run.
    pub run_id: String,
    pub attempt: u32,
    /// The item of a `foreach` step (`KAIZEN_ITEM`).
    pub item: Option<String>,
}

/// Why an attempt failed, with the tail of what the step wrote to stderr.
#[derive(Debug, Clone)]
pub struct StepFailure {
    pub message: String,
    pub stderr_tail: Vec<String>,
}

impl std::fmt::Display for StepFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)?;
        if !self.stderr_tail.is_empty() {
            write!(
                f,
                "\n--- stderr (last {} lines) ---",
                self.stderr_tail.len()
            )?;
            for l in &self.stderr_tail {
                write!(f, "\n{l}")?;
            }
        }
        Ok(())
    }
}

/// Runs the steps of one kind.
#[async_trait]
pub trait StepRunner: Send + Sync {
    async fn run(&self, ctx: &StepContext) -> std::result::Result<(), StepFailure>;

    /// Fingerprints of the step's external sources (a URL, a database query), named
    /// `kind:what`, that join its cache key so that a change outside the project is a miss.
    async fn fingerprint(&self, _ctx: &StepContext) -> Result<BTreeMap<String, String>> {
        Ok(BTreeMap::new())
    }
}

/// The runner of each available step kind.
#[derive(Clone)]
pub struct Runners {
    by_kind: BTreeMap<StepKind, Arc<dyn StepRunner>>,
}

impl Default for Runners {
    /// Every kind this crate knows.
    fn default() -> Self {
        let mut by_kind: BTreeMap<StepKind, Arc<dyn StepRunner>> = BTreeMap::new();
        by_kind.insert(StepKind::Command, Arc::new(CommandRunner));
        let mut runners = Self { by_kind };
        crate::data_steps::register(&mut runners);
        crate::choice::register(&mut runners);
        runners
    }
}

impl Runners {
    pub fn register(&mut self, kind: StepKind, runner: Arc<dyn StepRunner>) {
        self.by_kind.insert(kind, runner);
    }

    pub fn get(&self, step: &StepSpec) -> Result<Arc<dyn StepRunner>> {
        self.by_kind.get(&step.kind).cloned().ok_or_else(|| {
            Error::invalid(format!(
                "step '{}': kind \"{}\" is not available in this build",
                step.name, step.kind
            ))
        })
    }
}

/// `kind = "command"`: `sh -c RUN` in the project directory, in a process group of its own so a
/// timeout kills everything it started.
pub struct CommandRunner;

#[async_trait]
impl StepRunner for CommandRunner {
    async fn run(&self, ctx: &StepContext) -> std::result::Result<(), StepFailure> {
        let name = &ctx.step.name;
        let fail = |message: String| StepFailure {
            message,
            stderr_tail: Vec::new(),
        };
        let run = ctx.step.run.as_deref().unwrap_or_default();
        let stdout = std::fs::File::create(&ctx.stdout_path)
            .map_err(|e| fail(format!("step '{name}': cannot create its log file: {e}")))?;
        let stderr = std::fs::File::create(&ctx.stderr_path)
            .map_err(|e| fail(format!("step '{name}': cannot create its log file: {e}")))?;
        let mut cmd = tokio::process::Command::new("sh");
        cmd.arg("-c")
            .arg(run)
            .current_dir(&ctx.project_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::from(stdout))
            .stderr(Stdio::from(stderr))
            .process_group(0)
            .kill_on_drop(true)
            .env("KAIZEN_STEP", name)
            .env("KAIZEN_OUTPUT_DIR", &ctx.output_dir)
            .env("KAIZEN_PARAMS_FILE", &ctx.params_file)
            .env("KAIZEN_ATTEMPT", ctx.attempt.to_string())
            .env("MLFLOW_TRACKING_URI", &ctx.tracking_uri)
            .env("MLFLOW_RUN_ID", &ctx.run_id);
        for (k, v) in &ctx.params {
            cmd.env(env_name("KAIZEN_PARAM_", k), v.to_env());
        }
        if let Some(item) = &ctx.item {
            cmd.env("KAIZEN_ITEM", item);
        }
        for (input, path) in &ctx.inputs {
            let key = match std::path::Path::new(input).file_name() {
                // A path input is named by its file name: data/sales.csv -> SALES_CSV.
                Some(f) if input.contains('/') => f.to_string_lossy().into_owned(),
                _ => input.clone(),
            };
            cmd.env(env_name("KAIZEN_INPUT_", &key), path);
        }
        for (k, v) in &ctx.step.env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| fail(format!("step '{name}': cannot start sh: {e}")))?;
        let pgid = child.id().map(|p| p as i32);
        let status = match ctx.step.timeout_s {
            Some(t) => match tokio::time::timeout(Duration::from_secs_f64(t), child.wait()).await {
                Ok(r) => r,
                Err(_) => {
                    if let Some(pgid) = pgid {
                        kill_group(pgid);
                    }
                    let _ = child.wait().await;
                    return Err(StepFailure {
                        message: format!(
                            "step '{name}' timed out after {t}s; its process group was killed"
                        ),
                        stderr_tail: tail(&ctx.stderr_path),
                    });
                }
            },
            None => child.wait().await,
        }
        .map_err(|e| {
            fail(format!(
                "step '{name}': waiting for the command failed: {e}"
            ))
        })?;
        if status.success() {
            return Ok(());
        }
        use std::os::unix::process::ExitStatusExt;
        let how = match (status.code(), status.signal()) {
            (Some(c), _) => format!("exit status {c}"),
            (None, Some(s)) => format!("killed by signal {s}"),
            _ => status.to_string(),
        };
        Err(StepFailure {
            message: format!("step '{name}' failed: {how}"),
            stderr_tail: tail(&ctx.stderr_path),
        })
    }
}

/// Kills a whole process group: the shell and everything it started.
fn kill_group(pgid: i32) {
    // SAFETY: kill(2) with a negative pid signals a process group; no memory is involved.
    let rc = unsafe { libc::kill(-pgid, libc::SIGKILL) };
    if rc != 0 {
        tracing::warn!(pgid, error = %std::io::Error::last_os_error(), "cannot kill process group");
    }
}

/// The last lines of a log file.
pub fn tail(path: &std::path::Path) -> Vec<String> {
    let text = std::fs::read(path).unwrap_or_default();
    let text = String::from_utf8_lossy(&text);
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(STDERR_TAIL_LINES);
    lines[start..].iter().map(|l| l.to_string()).collect()
}
