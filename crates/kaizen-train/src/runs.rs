//! The tracked run of a training job (`kaizen train`, `kaizen forecast`): created in the job's
//! experiment (made when missing), nested under a pipeline step's run when there is one, and
//! ended FINISHED or FAILED with the job's outcome.

use kaizen_core::{RunStatus, Tag, now_millis};
use kaizen_tracking::{NewRun, Services};

use crate::error::Result;

/// Who runs what, where.
pub(crate) struct JobRun<'a> {
    pub experiment: &'a str,
    pub user: &'a str,
    pub parent_run_id: Option<&'a str>,
    /// `mlflow.source.name`: the command.
    pub source: &'a str,
    /// `kaizen.task`: `train` or `forecast`.
    pub task: &'a str,
    pub run_name: String,
}

/// Creates the job's run and answers its id.
pub(crate) async fn start(services: &Services, job: JobRun<'_>) -> Result<String> {
    let experiment_id = match services
        .tracking
        .get_experiment_by_name(job.experiment)
        .await
    {
        Ok(e) => e.experiment_id,
        Err(e) if e.is_not_found() => {
            services
                .tracking
                .create_experiment(job.experiment, None, &[])
                .await?
        }
        Err(e) => return Err(e.into()),
    };
    let mut tags = vec![
        Tag::new(kaizen_core::tags::USER, job.user),
        Tag::new(kaizen_core::tags::SOURCE_NAME, job.source),
        Tag::new("kaizen.task", job.task),
    ];
    if let Some(parent) = job.parent_run_id {
        tags.push(Tag::new(kaizen_core::tags::PARENT_RUN_ID, parent));
    }
    let run = services
        .tracking
        .create_run(NewRun {
            experiment_id: Some(experiment_id),
            user_id: Some(job.user.to_string()),
            run_name: Some(job.run_name),
            tags,
            ..NewRun::default()
        })
        .await?;
    Ok(run.info.run_id)
}

/// Ends the run with the job's outcome and passes the outcome on.
pub(crate) async fn finish<T>(services: &Services, run_id: &str, outcome: Result<T>) -> Result<T> {
    let status = if outcome.is_ok() {
        RunStatus::Finished
    } else {
        RunStatus::Failed
    };
    services
        .tracking
        .update_run(run_id, Some(status), Some(now_millis()), None)
        .await?;
    outcome
}

/// A name part from free text: lowercase ASCII letters and digits, other characters as `-`,
/// none at the ends.
pub(crate) fn slug(s: &str) -> String {
    let slug: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    slug.trim_matches('-').to_string()
}

/// A finished run recorded in one go: a report of something that happened elsewhere (a drift
/// check), with its parameters, metrics, tags and artifact files. Answers the run id.
pub struct RecordedRun<'a> {
    pub experiment: &'a str,
    pub run_name: String,
    pub user: &'a str,
    pub source: &'a str,
    pub params: Vec<kaizen_core::Param>,
    pub metrics: Vec<(String, f64)>,
    pub tags: Vec<Tag>,
    /// `(file name, bytes)` under the run's artifact root.
    pub artifacts: Vec<(String, Vec<u8>)>,
}

/// Creates the run of `record` (and its experiment when missing) and ends it FINISHED; when
/// logging fails half-way, the run is ended FAILED.
pub async fn record_run(services: &Services, record: RecordedRun<'_>) -> Result<String> {
    let run_id = start(
        services,
        JobRun {
            experiment: record.experiment,
            user: record.user,
            parent_run_id: None,
            source: record.source,
            task: "monitor",
            run_name: record.run_name,
        },
    )
    .await?;
    let logged = async {
        let now = now_millis();
        let metrics: Vec<kaizen_core::Metric> = record
            .metrics
            .iter()
            .filter(|(_, v)| v.is_finite())
            .map(|(k, v)| kaizen_core::Metric::new(k.clone(), *v, now, 0))
            .collect();
        for chunk in metrics.chunks(kaizen_core::limits::MAX_METRICS_PER_BATCH) {
            services
                .tracking
                .log_batch(&run_id, chunk, &[], &[])
                .await?;
        }
        services
            .tracking
            .log_batch(&run_id, &[], &record.params, &record.tags)
            .await?;
        let run = services.tracking.get_run(&run_id).await?;
        for (name, bytes) in record.artifacts {
            crate::forecast::put_artifact(services, &run.info.artifact_uri, &name, bytes).await?;
        }
        Ok(())
    }
    .await;
    finish(services, &run_id, logged).await?;
    Ok(run_id)
}
