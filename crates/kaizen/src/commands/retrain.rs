//! Automatic retraining: a project's policy (`retrain.toml`) names a registered model, the
//! training pipeline that produces its versions and when to run it (on drift in served traffic,
//! on a schedule). A retraining exports the recent labeled traffic (the inference log joined with
//! the feedback), runs the pipeline with that file as a parameter, and the pipeline's train step
//! registers the challenger and gates it against the alias holder; a promotion moves the alias,
//! and every `kaizen serve` following it hot-swaps.
//!
//! `kaizen retrain --policy FILE` runs it once; `kaizen serve ... --retrain FILE` runs it when the
//! policy's triggers fire.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use kaizen_artifacts::ArtifactPath;
use kaizen_core::Error;
use kaizen_pipeline::{Pipeline, StepKind, StepStatus};
use kaizen_serving::traffic::{TrafficQuery, labeled_traffic};
use kaizen_train::GateDecision;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::cli::RetrainArgs;
use crate::commands::pipeline::{Tracked, report_outcome};
use crate::{printer, settings};

/// What starts a retraining besides `kaizen retrain`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Trigger {
    /// A window of served rows drifted from the model's reference.
    Drift,
    /// The live error of the served version (from feedback) fell behind its test split's.
    Performance,
    /// The cron expression in `schedule`.
    Schedule,
}

/// `retrain.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Policy {
    /// The registered model the pipeline trains.
    pub(crate) model: String,
    /// The alias the gate moves and the servers follow.
    #[serde(default = "champion")]
    pub(crate) alias: String,
    /// The pipeline file, relative to the policy's directory.
    pub(crate) pipeline: PathBuf,
    /// The column the feedback's actual values go in (the pipeline's target).
    pub(crate) target: String,
    /// The pipeline parameter that receives the labeled traffic file.
    #[serde(default = "traffic_param")]
    pub(crate) traffic_param: String,
    #[serde(default)]
    pub(crate) on: Vec<Trigger>,
    /// A cron expression, with `on = ["schedule"]`.
    pub(crate) schedule: Option<String>,
    /// Fewer labeled rows than this and the retraining is skipped.
    #[serde(default = "min_rows")]
    pub(crate) min_rows: usize,
    /// How far back served rows count, e.g. `7d`, `12h`, `30m`.
    #[serde(default = "lookback")]
    pub(crate) lookback: String,
    /// The most rows taken (the most recent).
    #[serde(default = "max_rows")]
    pub(crate) max_rows: usize,
    /// After a retraining, triggers are ignored this long (`10m`).
    #[serde(default = "cooldown")]
    pub(crate) cooldown: String,
    /// More pipeline parameters.
    #[serde(default)]
    pub(crate) params: BTreeMap<String, String>,
    /// Where the file was read from.
    #[serde(skip)]
    pub(crate) dir: PathBuf,
}

fn champion() -> String {
    "champion".into()
}
fn traffic_param() -> String {
    "traffic".into()
}
fn min_rows() -> usize {
    100
}
fn lookback() -> String {
    "7d".into()
}
fn max_rows() -> usize {
    100_000
}
fn cooldown() -> String {
    "10m".into()
}

/// `30s`, `10m`, `12h`, `7d` as a duration.
pub(crate) fn parse_span(field: &str, text: &str) -> Result<Duration, Error> {
    let text = text.trim();
    let (number, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len()),
    );
    let n: u64 = number.parse().map_err(|_| {
        Error::invalid(format!(
            "{field} = '{text}': expected a whole number and a unit (s, m, h, d), e.g. 7d"
        ))
    })?;
    let seconds = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        _ => {
            return Err(Error::invalid(format!(
                "{field} = '{text}': the unit must be s, m, h or d"
            )));
        }
    };
    Ok(Duration::from_secs(seconds))
}

impl Policy {
    /// Reads and checks a policy file.
    pub(crate) fn load(path: &Path) -> anyhow::Result<Policy> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::invalid(format!(
                "cannot read the retraining policy {}: {e}",
                path.display()
            ))
        })?;
        let mut policy: Policy = toml::from_str(&text)
            .map_err(|e| Error::invalid(format!("{}: {}", path.display(), e.message())))?;
        policy.dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_path_buf();
        let at = |e: Error| Error::invalid(format!("{}: {}", path.display(), e.message));
        parse_span("lookback", &policy.lookback).map_err(at)?;
        parse_span("cooldown", &policy.cooldown).map_err(at)?;
        if policy.on.contains(&Trigger::Schedule) {
            let Some(cron) = &policy.schedule else {
                return Err(at(Error::invalid(
                    "on = [\"schedule\"] needs schedule = \"<cron expression>\"",
                ))
                .into());
            };
            policy.cron(cron).map_err(at)?;
        }
        if policy.min_rows == 0 || policy.max_rows < policy.min_rows {
            return Err(at(Error::invalid(
                "min_rows must be at least 1 and at most max_rows",
            ))
            .into());
        }
        let pipeline = policy.pipeline_file();
        if !pipeline.is_file() {
            return Err(at(Error::invalid(format!(
                "pipeline = '{}': no such file",
                pipeline.display()
            )))
            .into());
        }
        Ok(policy)
    }

    pub(crate) fn pipeline_file(&self) -> PathBuf {
        self.dir.join(&self.pipeline)
    }

    pub(crate) fn cron(&self, text: &str) -> Result<croner::Cron, Error> {
        use std::str::FromStr as _;
        croner::Cron::from_str(text.trim())
            .map_err(|e| Error::invalid(format!("schedule = '{text}': {e}")))
    }

    pub(crate) fn cooldown_span(&self) -> Duration {
        parse_span("cooldown", &self.cooldown).unwrap_or(Duration::from_secs(600))
    }
}

/// What a retraining did.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Outcome {
    pub(crate) model: String,
    pub(crate) alias: String,
    /// What started it: `drift`, `schedule` or `manual`.
    pub(crate) trigger: String,
    /// The labeled rows of served traffic it trained on (besides the pipeline's own data).
    pub(crate) traffic_rows: usize,
    pub(crate) traffic_requests: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) traffic_file: Option<String>,
    /// Why nothing was trained, when nothing was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) skipped: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) pipeline_run_id: Option<String>,
    /// The version the pipeline registered (`None` when skipped or cached).
    pub(crate) retrained_version: Option<String>,
    pub(crate) promoted: bool,
    /// Who holds the alias afterwards.
    pub(crate) champion_version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) gate: Option<GateDecision>,
}

/// The fields of a train or forecast step's `summary.json` that retraining reads.
#[derive(Debug, Deserialize)]
pub(crate) struct StepSummary {
    pub(crate) model_name: String,
    pub(crate) model_version: String,
    pub(crate) gate: Option<GateDecision>,
    pub(crate) champion_version: Option<String>,
}

/// The version of `model` that a run of `pipeline` registered (read from its train or forecast
/// step's `summary.json`), and whether that step was cached (the version is an earlier run's).
pub(crate) async fn registered_version(
    services: &kaizen_tracking::Services,
    pipeline: &Pipeline,
    summary: &kaizen_pipeline::RunSummary,
    model: &str,
) -> anyhow::Result<(StepSummary, bool)> {
    for spec in pipeline
        .steps
        .iter()
        .filter(|s| matches!(s.kind, StepKind::Train | StepKind::Forecast))
    {
        let Some(step) = summary.steps.iter().find(|s| s.name == spec.name) else {
            continue;
        };
        let Some(hash) = step.outputs.get("summary.json") else {
            continue;
        };
        let bytes = services
            .artifacts
            .get_bytes(&ArtifactPath::parse(&format!("cas/{hash}"))?)
            .await?;
        let parsed: StepSummary = serde_json::from_slice(&bytes).with_context(|| {
            format!(
                "step '{}' wrote a summary.json that does not parse",
                step.name
            )
        })?;
        if parsed.model_name == model {
            return Ok((parsed, step.status == StepStatus::Cached));
        }
    }
    Err(Error::invalid(format!(
        "the pipeline '{}' has no train or forecast step that registers `{model}`",
        pipeline.meta.name
    ))
    .into())
}

/// Runs the policy once: labeled traffic out, pipeline run, the new version's gate read back.
/// A run with too little traffic is skipped (an outcome, not an error); a failed pipeline is an
/// error.
pub(crate) async fn retrain_once(
    policy: &Policy,
    tracking_uri: Option<&str>,
    trigger: &str,
) -> anyhow::Result<Outcome> {
    let home = settings::home();
    let lookback = parse_span("lookback", &policy.lookback)?;
    let since_ms = kaizen_core::now_millis() - lookback.as_millis() as i64;
    let query = TrafficQuery {
        model: policy.model.clone(),
        target: policy.target.clone(),
        since_ms,
        max_rows: policy.max_rows,
    };
    let (log_dir, feedback_dir) = (home.join("inference_log"), home.join("feedback"));
    let traffic =
        tokio::task::spawn_blocking(move || labeled_traffic(&log_dir, &feedback_dir, &query))
            .await?
            .context("cannot read the labeled traffic")?;
    let mut outcome = Outcome {
        model: policy.model.clone(),
        alias: policy.alias.clone(),
        trigger: trigger.to_string(),
        traffic_rows: traffic.rows,
        traffic_requests: traffic.labeled_requests,
        traffic_file: None,
        skipped: None,
        pipeline_run_id: None,
        retrained_version: None,
        promoted: false,
        champion_version: None,
        gate: None,
    };
    let table = match traffic.table {
        Some(t) if traffic.rows >= policy.min_rows => t,
        _ => {
            outcome.skipped = Some(format!(
                "{} labeled row(s) of served traffic in the last {} ({} answered request(s)); the policy needs {}",
                traffic.rows, policy.lookback, traffic.requests, policy.min_rows
            ));
            if let Ok(services) = crate::commands::serve::open_services(tracking_uri).await {
                announce(&services, &outcome).await;
            }
            return Ok(outcome);
        }
    };
    let dir = home.join("retrain").join(&policy.model);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let file = dir.join(format!("traffic-{}.parquet", kaizen_core::now_millis()));
    kaizen_data::write_parquet(&table, &file)
        .with_context(|| format!("cannot write {}", file.display()))?;
    outcome.traffic_file = Some(file.display().to_string());

    let pipeline = Pipeline::load_file(&policy.pipeline_file())?;
    let mut params = vec![format!("{}={}", policy.traffic_param, file.display())];
    params.extend(policy.params.iter().map(|(k, v)| format!("{k}={v}")));
    let tracked = Tracked::open(tracking_uri).await?;
    let opts = tracked.options(
        params,
        false,
        2,
        vec![
            ("kaizen.trigger".into(), "retrain".into()),
            ("kaizen.retrain.reason".into(), trigger.into()),
            (
                "kaizen.retrain.traffic_rows".into(),
                traffic.rows.to_string(),
            ),
        ],
    );
    let run = tracked.run(&pipeline, &opts).await;
    let services = tracked.services.clone();
    tracked.close().await;
    let summary = run?;
    report_outcome(&pipeline.meta.name, &summary);
    outcome.pipeline_run_id = Some(summary.run_id.clone());
    if !summary.succeeded {
        return Err(Error::invalid(format!(
            "the retraining pipeline '{}' failed (run {}): `kaizen pipeline logs {}` shows why",
            pipeline.meta.name, summary.run_id, summary.run_id
        ))
        .into());
    }
    let (step, cached) = registered_version(&services, &pipeline, &summary, &policy.model).await?;
    outcome.champion_version = step
        .gate
        .as_ref()
        .map(|g| g.holder().to_string())
        .or(step.champion_version.clone());
    if cached {
        outcome.skipped = Some(format!(
            "the pipeline's data and settings did not change since version {}: nothing new to train",
            step.model_version
        ));
    } else {
        outcome.retrained_version = Some(step.model_version.clone());
        outcome.promoted = step.gate.as_ref().is_some_and(|g| g.promoted);
        outcome.gate = step.gate;
    }
    announce(&services, &outcome).await;
    Ok(outcome)
}

/// The `retrain.finished` event of `outcome`.
async fn announce(services: &kaizen_tracking::Services, outcome: &Outcome) {
    kaizen_tracking::emit(
        services.store.as_ref(),
        kaizen_core::events::RETRAIN_FINISHED,
        &format!("models:/{}", outcome.model),
        serde_json::to_value(outcome).unwrap_or_else(|_| json!({})),
    )
    .await;
}

/// One line per outcome, for people.
pub(crate) fn describe(outcome: &Outcome) -> String {
    if let Some(why) = &outcome.skipped {
        return format!("retraining of {} skipped: {why}", outcome.model);
    }
    let version = outcome.retrained_version.clone().unwrap_or_default();
    let gate = match &outcome.gate {
        Some(g) if g.promoted => format!("promoted to {} ({})", outcome.alias, g.reason),
        Some(g) => format!(
            "kept version {} as {} ({})",
            g.holder(),
            outcome.alias,
            g.reason
        ),
        None => "registered without a gate".to_string(),
    };
    format!(
        "retrained {} on {} labeled row(s) of served traffic: version {version}, {gate}",
        outcome.model, outcome.traffic_rows
    )
}

/// `kaizen retrain --policy FILE`.
pub async fn run(args: RetrainArgs) -> anyhow::Result<ExitCode> {
    let policy = Policy::load(&args.policy)?;
    let outcome = retrain_once(&policy, args.tracking_uri.as_deref(), "manual").await?;
    if args.json {
        printer::json(&serde_json::to_value(&outcome)?);
    } else {
        println!("{}", describe(&outcome));
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans() {
        assert_eq!(
            parse_span("x", "7d").unwrap(),
            Duration::from_secs(7 * 86_400)
        );
        assert_eq!(parse_span("x", "30s").unwrap(), Duration::from_secs(30));
        assert_eq!(
            parse_span("x", " 12h ").unwrap(),
            Duration::from_secs(12 * 3600)
        );
        for bad in ["", "d", "7", "7w", "-1d", "1.5h"] {
            assert!(parse_span("x", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn policies_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("p.toml"), "[pipeline]\nname = \"p\"\n").unwrap();
        let write = |text: &str| {
            let path = dir.path().join("retrain.toml");
            std::fs::write(&path, text).unwrap();
            Policy::load(&path)
        };
        let ok = write("model = \"m\"\npipeline = \"p.toml\"\ntarget = \"y\"\non = [\"drift\"]\n")
            .unwrap();
        assert_eq!((ok.alias.as_str(), ok.min_rows), ("champion", 100));
        for (text, needle) in [
            (
                "model = \"m\"\npipeline = \"nope.toml\"\ntarget = \"y\"\n",
                "no such file",
            ),
            (
                "model = \"m\"\npipeline = \"p.toml\"\ntarget = \"y\"\non = [\"schedule\"]\n",
                "needs schedule",
            ),
            (
                "model = \"m\"\npipeline = \"p.toml\"\ntarget = \"y\"\nlookback = \"a week\"\n",
                "lookback",
            ),
            (
                "model = \"m\"\npipeline = \"p.toml\"\ntarget = \"y\"\nwhen = 1\n",
                "unknown field",
            ),
            (
                "model = \"m\"\npipeline = \"p.toml\"\ntarget = \"y\"\non = [\"sometimes\"]\n",
                "unknown variant",
            ),
        ] {
            let e = write(text).unwrap_err().to_string();
            assert!(e.contains(needle), "{text}: {e}");
        }
    }
}
