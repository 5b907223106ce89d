//! Hyperparameter search: each trial is a nested MLflow run under a parent run, trials run in
//! parallel on blocking threads, and the best by one metric is logged on the parent.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use kaizen_core::{Metric, Param, RunStatus, Tag, limits, tags};
use kaizen_ml::LearnerSpec;
use kaizen_tracking::{NewRun, Services};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::error::{Result, TrainError};

/// The tag that numbers a trial among its siblings (from 0).
pub const TRIAL_TAG: &str = "kaizen.trial";
/// The tag that holds a failed trial's error.
pub const TRIAL_ERROR_TAG: &str = "kaizen.trial.error";

/// Which points of the space to try.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "strategy", rename_all = "snake_case")]
pub enum Strategy {
    /// Every combination, the last key varying fastest.
    Grid,
    /// `trials` distinct combinations drawn with `seed` (the whole grid when it is not larger).
    Random { trials: usize, seed: u64 },
}

/// Values to try per setting of the learner (`"max_depth": [4, 6]`), merged over the base spec.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SearchSpace(pub BTreeMap<String, Vec<Value>>);

impl SearchSpace {
    /// The number of combinations (saturating).
    pub fn size(&self) -> usize {
        self.0
            .values()
            .fold(1usize, |n, values| n.saturating_mul(values.len()))
    }

    /// The combination at `index` (one value index per key, in key order).
    fn point(&self, index: &[usize]) -> BTreeMap<String, Value> {
        self.0
            .iter()
            .zip(index)
            .map(|((k, values), &i)| (k.clone(), values[i].clone()))
            .collect()
    }

    fn grid(&self) -> Vec<Vec<usize>> {
        let sizes: Vec<usize> = self.0.values().map(Vec::len).collect();
        let mut out = Vec::with_capacity(self.size());
        let mut index = vec![0; sizes.len()];
        loop {
            out.push(index.clone());
            // An odometer: bump the last position, carrying to the left.
            let mut k = sizes.len();
            loop {
                if k == 0 {
                    return out;
                }
                k -= 1;
                index[k] += 1;
                if index[k] < sizes[k] {
                    break;
                }
                index[k] = 0;
            }
        }
    }

    fn random(&self, trials: usize, seed: u64) -> Vec<Vec<usize>> {
        if trials >= self.size() {
            return self.grid();
        }
        let mut rng = SplitMix64(seed);
        let mut seen = HashSet::new();
        let mut out = Vec::with_capacity(trials);
        while out.len() < trials {
            let index: Vec<usize> = self
                .0
                .values()
                .map(|values| (rng.next() % values.len() as u64) as usize)
                .collect();
            if seen.insert(index.clone()) {
                out.push(index);
            }
        }
        out
    }
}

/// A small, stable generator, so a seed picks the same trials in every kaizen version.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// One trial: its run, what it trained, what it scored or why it failed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Trial {
    pub number: usize,
    pub run_id: String,
    pub spec: LearnerSpec,
    pub metrics: BTreeMap<String, f64>,
    pub error: Option<String>,
}

/// The best trial and all of them, in trial order.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SearchResult {
    pub best: LearnerSpec,
    pub best_run_id: String,
    pub best_metrics: BTreeMap<String, f64>,
    pub trials: Vec<Trial>,
}

/// `base` with `settings` merged into its JSON; a key the learner does not have, or a value it
/// does not take, is an error naming it.
pub fn merge_settings(
    base: &LearnerSpec,
    settings: &BTreeMap<String, Value>,
) -> Result<LearnerSpec> {
    let mut json = serde_json::to_value(base).map_err(|e| TrainError::invalid(e.to_string()))?;
    let object = json
        .as_object_mut()
        .ok_or_else(|| TrainError::invalid("a learner spec is a JSON object"))?;
    for (k, v) in settings {
        if k == "learner" {
            return Err(TrainError::BadSetting {
                key: k.clone(),
                value: v.to_string(),
                message: "the learner is fixed by the base spec".into(),
            });
        }
        object.insert(k.clone(), v.clone());
    }
    serde_json::from_value(json).map_err(|e| {
        let (key, value) = match settings.iter().next() {
            Some((k, v)) if settings.len() == 1 => (k.clone(), v.to_string()),
            _ => (
                "(several)".into(),
                serde_json::to_string(settings).unwrap_or_default(),
            ),
        };
        TrainError::BadSetting {
            key,
            value,
            message: e.to_string(),
        }
    })
}

/// Checks every value of every key alone against `base`, so a bad key is named before any run
/// starts.
fn check_space(base: &LearnerSpec, space: &SearchSpace) -> Result<()> {
    for (key, values) in &space.0 {
        if values.is_empty() {
            return Err(TrainError::BadSetting {
                key: key.clone(),
                value: "[]".into(),
                message: "no values to try".into(),
            });
        }
        for v in values {
            merge_settings(base, &BTreeMap::from([(key.clone(), v.clone())]))?;
        }
    }
    Ok(())
}

/// A spec's settings as run params: nested keys joined with `.`, strings as they are, null as
/// `None` (as MLflow's Python client logs it), other values as JSON.
fn flatten(prefix: &str, value: &Value, out: &mut Vec<Param>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, v, out);
            }
        }
        Value::String(s) => out.push(Param::new(prefix, s.clone())),
        Value::Null => out.push(Param::new(prefix, "None")),
        other => out.push(Param::new(prefix, other.to_string())),
    }
}

/// Runs the trials of `space` over `base` as nested runs of `parent_run_id` in `experiment_id`,
/// at most `max_parallel` at a time, each scored by `objective` (validation metrics, or an error
/// that marks the trial FAILED), and answers the best by `metric`. NaN (or a missing metric)
/// never wins; ties go to the earlier trial. The parent run gets the param `search.best_run_id`
/// and the metric `search.best_<metric>`.
#[allow(clippy::too_many_arguments)]
pub async fn search<F>(
    services: &Services,
    experiment_id: &str,
    parent_run_id: &str,
    base: &LearnerSpec,
    space: &SearchSpace,
    strategy: &Strategy,
    max_parallel: usize,
    metric: &str,
    lower_is_better: bool,
    objective: F,
) -> Result<SearchResult>
where
    F: Fn(&LearnerSpec) -> Result<BTreeMap<String, f64>, String> + Send + Sync + 'static,
{
    check_space(base, space)?;
    limits::validate_key("metric", &best_metric_key(metric))?;
    services.tracking.get_run(parent_run_id).await?;
    let points = match strategy {
        Strategy::Grid => space.grid(),
        Strategy::Random { trials, seed } => space.random(*trials, *seed),
    };
    let specs = points
        .iter()
        .map(|index| merge_settings(base, &space.point(index)))
        .collect::<Result<Vec<_>>>()?;
    tracing::info!(
        parent_run_id,
        trials = specs.len(),
        max_parallel,
        "hyperparameter search started"
    );

    let objective = Arc::new(objective);
    let permits = Arc::new(Semaphore::new(max_parallel.max(1)));
    let mut tasks = JoinSet::new();
    for (number, spec) in specs.into_iter().enumerate() {
        let services = services.clone();
        let experiment_id = experiment_id.to_string();
        let parent = parent_run_id.to_string();
        let objective = objective.clone();
        let permits = permits.clone();
        tasks.spawn(async move {
            let _permit = permits
                .acquire_owned()
                .await
                .expect("the semaphore is never closed");
            run_trial(&services, &experiment_id, &parent, number, spec, objective).await
        });
    }
    let mut trials = Vec::new();
    let mut failure = None;
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(Ok(trial)) => trials.push(trial),
            Ok(Err(e)) => failure = failure.or(Some(e)),
            Err(e) => {
                failure = failure.or(Some(TrainError::invalid(format!(
                    "a trial task failed: {e}"
                ))))
            }
        }
    }
    if let Some(e) = failure {
        return Err(e);
    }
    trials.sort_by_key(|t| t.number);

    let best = trials
        .iter()
        .filter(|t| t.error.is_none())
        .filter_map(|t| t.metrics.get(metric).map(|v| (t, *v)))
        .filter(|(_, v)| !v.is_nan())
        .reduce(|best, next| {
            let better = if lower_is_better {
                next.1 < best.1
            } else {
                next.1 > best.1
            };
            if better { next } else { best }
        });
    let Some((best, value)) = best else {
        return Err(TrainError::NoSuccessfulTrial {
            metric: metric.to_string(),
            first_error: trials.iter().find_map(|t| t.error.clone()),
        });
    };
    services
        .tracking
        .log_batch(
            parent_run_id,
            &[Metric::new(
                best_metric_key(metric),
                value,
                kaizen_core::now_millis(),
                0,
            )],
            &[Param::new("search.best_run_id", &best.run_id)],
            &[],
        )
        .await?;
    tracing::info!(
        parent_run_id,
        best_run_id = %best.run_id,
        metric,
        value,
        "hyperparameter search finished"
    );
    Ok(SearchResult {
        best: best.spec.clone(),
        best_run_id: best.run_id.clone(),
        best_metrics: best.metrics.clone(),
        trials,
    })
}

fn best_metric_key(metric: &str) -> String {
    format!("search.best_{metric}")
}

async fn run_trial<F>(
    services: &Services,
    experiment_id: &str,
    parent_run_id: &str,
    number: usize,
    spec: LearnerSpec,
    objective: Arc<F>,
) -> Result<Trial>
where
    F: Fn(&LearnerSpec) -> Result<BTreeMap<String, f64>, String> + Send + Sync + 'static,
{
    let tracking = &services.tracking;
    let run = tracking
        .create_run(NewRun {
            experiment_id: Some(experiment_id.to_string()),
            run_name: Some(format!("trial-{number}")),
            tags: vec![
                Tag::new(tags::PARENT_RUN_ID, parent_run_id),
                Tag::new(TRIAL_TAG, number.to_string()),
            ],
            ..Default::default()
        })
        .await?;
    let run_id = run.info.run_id;
    let mut params = Vec::new();
    let json = serde_json::to_value(&spec).map_err(|e| TrainError::invalid(e.to_string()))?;
    flatten("", &json, &mut params);
    for chunk in params.chunks(limits::MAX_PARAMS_TAGS_PER_BATCH) {
        tracking.log_batch(&run_id, &[], chunk, &[]).await?;
    }

    let outcome = tokio::task::spawn_blocking({
        let spec = spec.clone();
        move || objective(&spec)
    })
    .await
    .unwrap_or_else(|e| Err(format!("the objective panicked: {e}")));
    let outcome = match outcome {
        Ok(metrics) => {
            let now = kaizen_core::now_millis();
            let logged: Vec<Metric> = metrics
                .iter()
                .map(|(k, v)| Metric::new(k, *v, now, 0))
                .collect();
            let mut result = Ok(metrics);
            for chunk in logged.chunks(limits::MAX_METRICS_PER_BATCH) {
                // A metric the store refuses (a bad name) fails the trial, not the search.
                if let Err(e) = tracking.log_batch(&run_id, chunk, &[], &[]).await {
                    result = Err(format!("cannot log the trial's metrics: {e}"));
                    break;
                }
            }
            result
        }
        Err(e) => Err(e),
    };
    let status = match &outcome {
        Ok(_) => RunStatus::Finished,
        Err(e) => {
            tracing::warn!(run_id, trial = number, error = %e, "trial failed");
            let message: String = e.chars().take(limits::MAX_TAG_VAL_LENGTH).collect();
            tracking
                .set_tag(&run_id, Tag::new(TRIAL_ERROR_TAG, message))
                .await?;
            RunStatus::Failed
        }
    };
    tracking
        .update_run(&run_id, Some(status), Some(kaizen_core::now_millis()), None)
        .await?;
    let (metrics, error) = match outcome {
        Ok(m) => (m, None),
        Err(e) => (BTreeMap::new(), Some(e)),
    };
    Ok(Trial {
        number,
        run_id,
        spec,
        metrics,
        error,
    })
}

#[cfg(test)]
mod tests {
    use kaizen_ml::learner::GbdtParams;
    use serde_json::json;

    use super::*;

    fn space(pairs: &[(&str, Vec<Value>)]) -> SearchSpace {
        SearchSpace(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
        )
    }

    #[test]
    fn grid_and_random_points() {
        let s = space(&[
            ("max_depth", vec![json!(4), json!(6)]),
            ("learning_rate", vec![json!(0.1), json!(0.3), json!(0.5)]),
        ]);
        assert_eq!(s.size(), 6);
        // Keys in order: learning_rate, max_depth; the last varies fastest.
        let grid = s.grid();
        assert_eq!(grid.len(), 6);
        assert_eq!(grid[0], vec![0, 0]);
        assert_eq!(grid[1], vec![0, 1]);
        assert_eq!(grid[5], vec![2, 1]);
        let a = s.random(4, 7);
        assert_eq!(a.len(), 4);
        assert_eq!(a, s.random(4, 7), "a seed draws the same points");
        assert_eq!(a.iter().collect::<HashSet<_>>().len(), 4, "distinct");
        assert_eq!(s.random(100, 7), grid);
        assert_eq!(SearchSpace::default().grid(), vec![Vec::<usize>::new()]);
    }

    #[test]
    fn settings_merge_and_unknown_keys_are_named() {
        let base = LearnerSpec::Gbdt(GbdtParams::default());
        let spec =
            merge_settings(&base, &BTreeMap::from([("max_depth".into(), json!(3))])).unwrap();
        let LearnerSpec::Gbdt(p) = &spec else {
            panic!("not gbdt")
        };
        assert_eq!(p.max_depth, 3);
        assert_eq!(p.iterations, GbdtParams::default().iterations);

        let s = space(&[("max_dept", vec![json!(3)])]);
        let err = check_space(&base, &s).unwrap_err();
        let TrainError::BadSetting { key, message, .. } = &err else {
            panic!("{err}");
        };
        assert_eq!(key, "max_dept");
        assert!(message.contains("unknown field `max_dept`"), "{message}");
        let s = space(&[("max_depth", vec![json!(3), json!("deep")])]);
        assert!(matches!(
            check_space(&base, &s),
            Err(TrainError::BadSetting { .. })
        ));
        let s = space(&[("max_depth", vec![])]);
        assert!(check_space(&base, &s).is_err());
        let s = space(&[("learner", vec![json!("gbdt")])]);
        assert!(check_space(&base, &s).is_err());
    }

    #[test]
    fn params_are_flat() {
        let mut out = Vec::new();
        flatten(
            "",
            &json!({"learner": "gbdt", "max_depth": 6, "stop": null, "nested": {"a": true}}),
            &mut out,
        );
        let mut got: Vec<(String, String)> = out.into_iter().map(|p| (p.key, p.value)).collect();
        got.sort();
        assert_eq!(
            got,
            vec![
                ("learner".into(), "gbdt".into()),
                ("max_depth".into(), "6".into()),
                ("nested.a".into(), "true".into()),
                ("stop".into(), "None".into()),
            ]
        );
    }
}
