//! Experiments, runs, metrics, params, tags, inputs/outputs and logged models, with MLflow's
//! validation and defaults.

use std::sync::Arc;

use kaizen_artifacts::ArtifactStore;
use kaizen_core::limits::{self, validate_key, validate_length};
use kaizen_core::search::{self, OrderBy};
use kaizen_core::{
    DatasetInput, Error, Experiment, LifecycleStage, LoggedModel, LoggedModelStatus, Metric,
    ModelIo, Page, Param, Result, Run, RunInfo, RunStatus, Tag, ViewType, ids, tags,
};
use kaizen_store::{MetadataStore, RunUpdate, SearchQuery};

use crate::PROXY_ARTIFACT_ROOT;

/// What a client gives to create a run.
#[derive(Debug, Clone, Default)]
pub struct NewRun {
    pub experiment_id: Option<String>,
    pub user_id: Option<String>,
    pub start_time: Option<i64>,
    pub run_name: Option<String>,
    pub tags: Vec<Tag>,
}

#[derive(Clone)]
pub struct Tracking {
    store: Arc<dyn MetadataStore>,
    #[allow(dead_code)]
    artifacts: ArtifactStore,
}

pub(crate) fn page<T>(mut items: Vec<T>, max_results: i64, offset: i64) -> Page<T> {
    let next = if items.len() as i64 > max_results {
        items.truncate(max_results as usize);
        Some(search::encode_page_token(offset + max_results))
    } else {
        None
    };
    Page {
        items,
        next_page_token: next,
    }
}

pub(crate) fn check_max_results(max_results: Option<i64>, default: i64, limit: i64) -> Result<i64> {
    let n = max_results.unwrap_or(default);
    if n <= 0 || n > limit {
        return Err(Error::invalid(format!(
            "Invalid value {n} for parameter 'max_results' supplied. It must be at most {limit} and positive."
        )));
    }
    Ok(n)
}

pub(crate) fn parse_order_by(clauses: &[String]) -> Result<Vec<OrderBy>> {
    clauses
        .iter()
        .filter(|c| !c.trim().is_empty())
        .map(|c| search::parse_order_by(c))
        .collect()
}

fn validate_metric(m: &Metric) -> Result<()> {
    validate_key("metric", &m.key)
}

fn validate_param(p: &Param) -> Result<()> {
    validate_key("param", &p.key)?;
    validate_length("Param", &p.key, &p.value, limits::MAX_PARAM_VAL_LENGTH)
}

fn validate_tag(t: &Tag) -> Result<()> {
    validate_key("tag", &t.key)?;
    validate_length("Tag", &t.key, &t.value, limits::MAX_TAG_VAL_LENGTH)
}

impl Tracking {
    pub fn new(store: Arc<dyn MetadataStore>, artifacts: ArtifactStore) -> Self {
        Self { store, artifacts }
    }

    // ---- experiments ----

    pub async fn create_experiment(
        &self,
        name: &str,
        artifact_location: Option<&str>,
        tags: &[Tag],
    ) -> Result<String> {
        if name.trim().is_empty() {
            return Err(Error::invalid(
                "Invalid experiment name: ''. Experiment name cannot be empty.",
            ));
        }
        if name.chars().count() > limits::MAX_EXPERIMENT_NAME_LENGTH {
            return Err(Error::invalid(format!(
                "Experiment name exceeds the maximum length of {}",
                limits::MAX_EXPERIMENT_NAME_LENGTH
            )));
        }
        for t in tags {
            validate_key("tag", &t.key)?;
            validate_length(
                "Tag",
                &t.key,
                &t.value,
                limits::MAX_EXPERIMENT_TAG_VAL_LENGTH,
            )?;
        }
        let location = artifact_location.filter(|l| !l.is_empty());
        self.store
            .create_experiment(name, location, &format!("{PROXY_ARTIFACT_ROOT}/"), tags)
            .await
    }

    pub async fn get_experiment(&self, id: &str) -> Result<Experiment> {
        self.store.get_experiment(id).await
    }

    pub async fn get_experiment_by_name(&self, name: &str) -> Result<Experiment> {
        self.store
            .get_experiment_by_name(name)
            .await?
            .ok_or_else(|| {
                Error::not_found(format!("Could not find experiment with name '{name}'"))
            })
    }

    pub async fn search_experiments(
        &self,
        view: ViewType,
        filter: &str,
        order_by: &[String],
        max_results: Option<i64>,
        page_token: Option<&str>,
    ) -> Result<Page<Experiment>> {
        let max_results = check_max_results(
            max_results,
            limits::SEARCH_MAX_RESULTS_DEFAULT,
            limits::MAX_RESULTS_SEARCH_RUNS,
        )?;
        let offset = search::decode_page_token(page_token.unwrap_or(""))?;
        let query = SearchQuery {
            filter: search::parse_filter(filter)?,
            order_by: parse_order_by(order_by)?,
            max_results,
            offset,
        };
        let items = self.store.search_experiments(view, &query).await?;
        Ok(page(items, max_results, offset))
    }

    pub async fn rename_experiment(&self, id: &str, new_name: &str) -> Result<()> {
        if new_name.trim().is_empty() {
            return Err(Error::invalid(
                "Invalid experiment name: ''. Experiment name cannot be empty.",
            ));
        }
        let exp = self.store.get_experiment(id).await?;
        if exp.lifecycle_stage != LifecycleStage::Active {
            return Err(Error::invalid(format!(
                "Cannot rename a non-active experiment: {id}"
            )));
        }
        self.store.rename_experiment(id, new_name).await
    }

    pub async fn delete_experiment(&self, id: &str) -> Result<()> {
        if id == "0" {
            return Err(Error::invalid(
                "Cannot delete the default experiment '0'. This is an internally reserved experiment.",
            ));
        }
        self.store
            .set_experiment_lifecycle(id, LifecycleStage::Deleted)
            .await
    }

    pub async fn restore_experiment(&self, id: &str) -> Result<()> {
        self.store
            .set_experiment_lifecycle(id, LifecycleStage::Active)
            .await
    }

    pub async fn set_experiment_tag(&self, id: &str, tag: &Tag) -> Result<()> {
        validate_key("tag", &tag.key)?;
        validate_length(
            "Tag",
            &tag.key,
            &tag.value,
            limits::MAX_EXPERIMENT_TAG_VAL_LENGTH,
        )?;
        self.store.set_experiment_tag(id, tag).await
    }

    pub async fn delete_experiment_tag(&self, id: &str, key: &str) -> Result<()> {
        self.store.delete_experiment_tag(id, key).await
    }

    // ---- runs ----

    pub async fn create_run(&self, new: NewRun) -> Result<Run> {
        let experiment_id = new
            .experiment_id
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "0".into());
        let experiment = self.store.get_experiment(&experiment_id).await?;
        if experiment.lifecycle_stage != LifecycleStage::Active {
            return Err(Error::invalid(format!(
                "The experiment {experiment_id} must be in the 'active' state. Current state is deleted."
            )));
        }
        for t in &new.tags {
            validate_tag(t)?;
        }
        let tag_name = new
            .tags
            .iter()
            .find(|t| t.key == tags::RUN_NAME)
            .map(|t| t.value.clone());
        let run_name = match (new.run_name.filter(|n| !n.is_empty()), tag_name) {
            (Some(a), Some(b)) if a != b => {
                return Err(Error::invalid(format!(
                    "Both 'run_name' argument and 'mlflow.runName' tag are specified, but with different values (run_name='{a}', mlflow.runName='{b}')."
                )));
            }
            (Some(a), _) => a,
            (None, Some(b)) => b,
            (None, None) => ids::new_run_name(),
        };
        let user_id = new
            .user_id
            .filter(|u| !u.is_empty())
            .or_else(|| {
                new.tags
                    .iter()
                    .find(|t| t.key == tags::USER)
                    .map(|t| t.value.clone())
            })
            .unwrap_or_else(|| "unknown".into());
        let run_id = ids::new_run_id();
        let info = RunInfo {
            run_id: run_id.clone(),
            run_name: run_name.clone(),
            experiment_id: experiment_id.clone(),
            user_id,
            status: RunStatus::Running,
            start_time: Some(new.start_time.unwrap_or_else(kaizen_core::now_millis)),
            end_time: None,
            artifact_uri: format!(
                "{}/{run_id}/artifacts",
                experiment.artifact_location.trim_end_matches('/')
            ),
            lifecycle_stage: LifecycleStage::Active,
        };
        let mut run_tags: Vec<Tag> = new
            .tags
            .into_iter()
            .filter(|t| t.key != tags::RUN_NAME)
            .collect();
        run_tags.push(Tag::new(tags::RUN_NAME, run_name));
        self.store.create_run(&info, &run_tags).await?;
        self.store.get_run(&run_id).await
    }

    pub async fn get_run(&self, run_id: &str) -> Result<Run> {
        self.store.get_run(run_id).await
    }

    pub async fn update_run(
        &self,
        run_id: &str,
        status: Option<RunStatus>,
        end_time: Option<i64>,
        run_name: Option<String>,
    ) -> Result<RunInfo> {
        let run_name = run_name.filter(|n| !n.is_empty());
        let before = match status {
            Some(_) => Some(self.store.get_run(run_id).await?.info.status),
            None => None,
        };
        let info = self
            .store
            .update_run(
                run_id,
                &RunUpdate {
                    status,
                    end_time,
                    run_name,
                },
            )
            .await?;
        // An event when the run reaches an end state, once.
        if let (Some(before), Some(after)) = (before, status)
            && before != after
        {
            let kind = match after {
                RunStatus::Finished => Some(kaizen_core::events::RUN_FINISHED),
                RunStatus::Failed | RunStatus::Killed => Some(kaizen_core::events::RUN_FAILED),
                _ => None,
            };
            if let Some(kind) = kind {
                crate::emit(
                    self.store.as_ref(),
                    kind,
                    run_id,
                    serde_json::json!({
                        "run_id": run_id,
                        "run_name": info.run_name,
                        "experiment_id": info.experiment_id,
                        "status": after.as_str(),
                    }),
                )
                .await;
            }
        }
        Ok(info)
    }

    pub async fn delete_run(&self, run_id: &str) -> Result<()> {
        self.store
            .set_run_lifecycle(run_id, LifecycleStage::Deleted)
            .await
    }

    pub async fn restore_run(&self, run_id: &str) -> Result<()> {
        self.store
            .set_run_lifecycle(run_id, LifecycleStage::Active)
            .await
    }

    pub async fn log_batch(
        &self,
        run_id: &str,
        metrics: &[Metric],
        params: &[Param],
        tags: &[Tag],
    ) -> Result<()> {
        if metrics.len() > limits::MAX_METRICS_PER_BATCH {
            return Err(Error::invalid(format!(
                "A batch logging request can contain at most {} metrics. Got {} metrics.",
                limits::MAX_METRICS_PER_BATCH,
                metrics.len()
            )));
        }
        if params.len() > limits::MAX_PARAMS_TAGS_PER_BATCH {
            return Err(Error::invalid(format!(
                "A batch logging request can contain at most {} params. Got {} params.",
                limits::MAX_PARAMS_TAGS_PER_BATCH,
                params.len()
            )));
        }
        if tags.len() > limits::MAX_PARAMS_TAGS_PER_BATCH {
            return Err(Error::invalid(format!(
                "A batch logging request can contain at most {} tags. Got {} tags.",
                limits::MAX_PARAMS_TAGS_PER_BATCH,
                tags.len()
            )));
        }
        let total = metrics.len() + params.len() + tags.len();
        if total > limits::MAX_ENTITIES_PER_BATCH {
            return Err(Error::invalid(format!(
                "A batch logging request can contain at most {} total metrics, params and tags. Got {total}.",
                limits::MAX_ENTITIES_PER_BATCH
            )));
        }
        metrics.iter().try_for_each(validate_metric)?;
        params.iter().try_for_each(validate_param)?;
        tags.iter().try_for_each(validate_tag)?;
        if metrics.is_empty() && params.is_empty() && tags.is_empty() {
            // Still report an unknown run.
            self.store.get_run(run_id).await?;
            return Ok(());
        }
        self.store.log_batch(run_id, metrics, params, tags).await
    }

    pub async fn log_metric(&self, run_id: &str, metric: Metric) -> Result<()> {
        self.log_batch(run_id, &[metric], &[], &[]).await
    }

    pub async fn log_param(&self, run_id: &str, param: Param) -> Result<()> {
        self.log_batch(run_id, &[], &[param], &[]).await
    }

    pub async fn set_tag(&self, run_id: &str, tag: Tag) -> Result<()> {
        self.log_batch(run_id, &[], &[], &[tag]).await
    }

    pub async fn delete_tag(&self, run_id: &str, key: &str) -> Result<()> {
        self.store.delete_run_tag(run_id, key).await
    }

    pub async fn get_metric_history(
        &self,
        run_id: &str,
        key: &str,
        max_results: Option<i64>,
        page_token: Option<&str>,
    ) -> Result<Page<Metric>> {
        validate_key("metric", key)?;
        let offset = search::decode_page_token(page_token.unwrap_or(""))?;
        match max_results {
            // Without max_results MLflow returns the whole history in one answer.
            None => {
                let items = self
                    .store
                    .get_metric_history(run_id, key, i64::MAX / 2, offset)
                    .await?;
                Ok(Page {
                    items,
                    next_page_token: None,
                })
            }
            Some(_) => {
                let n = check_max_results(
                    max_results,
                    limits::MAX_RESULTS_GET_METRIC_HISTORY,
                    limits::MAX_RESULTS_GET_METRIC_HISTORY,
                )?;
                let items = self
                    .store
                    .get_metric_history(run_id, key, n + 1, offset)
                    .await?;
                Ok(page(items, n, offset))
            }
        }
    }

    pub async fn search_runs(
        &self,
        experiment_ids: &[String],
        filter: &str,
        view: ViewType,
        order_by: &[String],
        max_results: Option<i64>,
        page_token: Option<&str>,
    ) -> Result<Page<Run>> {
        let max_results = check_max_results(
            max_results,
            limits::SEARCH_MAX_RESULTS_DEFAULT,
            limits::MAX_RESULTS_SEARCH_RUNS,
        )?;
        let offset = search::decode_page_token(page_token.unwrap_or(""))?;
        let comparisons = search::parse_filter(filter)?;
        search::validate_run_filter(&comparisons)?;
        let order_by = parse_order_by(order_by)?;
        let query = SearchQuery {
            filter: comparisons,
            order_by,
            max_results,
            offset,
        };
        let items = self.store.search_runs(experiment_ids, view, &query).await?;
        Ok(page(items, max_results, offset))
    }

    pub async fn log_inputs(
        &self,
        run_id: &str,
        datasets: &[DatasetInput],
        models: &[ModelIo],
    ) -> Result<()> {
        for d in datasets {
            if d.dataset.name.is_empty() || d.dataset.digest.is_empty() {
                return Err(Error::invalid("A dataset input needs a name and a digest"));
            }
        }
        self.store.log_inputs(run_id, datasets, models).await
    }

    pub async fn log_outputs(&self, run_id: &str, models: &[ModelIo]) -> Result<()> {
        self.store.log_outputs(run_id, models).await
    }

    // ---- logged models ----

    #[allow(clippy::too_many_arguments)]
    pub async fn create_logged_model(
        &self,
        experiment_id: &str,
        name: Option<String>,
        model_type: Option<String>,
        source_run_id: Option<String>,
        tags: Vec<Tag>,
        params: Vec<Param>,
    ) -> Result<LoggedModel> {
        let experiment = self.store.get_experiment(experiment_id).await?;
        if experiment.lifecycle_stage != LifecycleStage::Active {
            return Err(Error::invalid(format!(
                "The experiment {experiment_id} must be in the 'active' state. Current state is deleted."
            )));
        }
        if let Some(run_id) = &source_run_id {
            self.store.get_run(run_id).await?;
        }
        tags.iter().try_for_each(validate_tag)?;
        params.iter().try_for_each(validate_param)?;
        let model_id = ids::new_logged_model_id();
        let now = kaizen_core::now_millis();
        let model = LoggedModel {
            artifact_location: format!(
                "{}/models/{model_id}/artifacts",
                experiment.artifact_location.trim_end_matches('/')
            ),
            model_id: model_id.clone(),
            experiment_id: experiment_id.to_string(),
            name: name
                .filter(|n| !n.is_empty())
                .unwrap_or_else(ids::new_run_name),
            creation_timestamp_ms: now,
            last_updated_timestamp_ms: now,
            model_type,
            source_run_id,
            status: LoggedModelStatus::Pending,
            status_message: None,
            tags,
            params,
            metrics: Vec::new(),
        };
        self.store.create_logged_model(&model).await?;
        self.store.get_logged_model(&model_id).await
    }

    pub async fn get_logged_model(&self, model_id: &str) -> Result<LoggedModel> {
        self.store.get_logged_model(model_id).await
    }

    pub async fn finalize_logged_model(
        &self,
        model_id: &str,
        status: LoggedModelStatus,
    ) -> Result<LoggedModel> {
        self.store.finalize_logged_model(model_id, status).await
    }

    pub async fn delete_logged_model(&self, model_id: &str) -> Result<()> {
        self.store.delete_logged_model(model_id).await
    }

    pub async fn set_logged_model_tags(&self, model_id: &str, tags: &[Tag]) -> Result<()> {
        tags.iter().try_for_each(validate_tag)?;
        self.store.set_logged_model_tags(model_id, tags).await
    }

    pub async fn delete_logged_model_tag(&self, model_id: &str, key: &str) -> Result<()> {
        self.store.delete_logged_model_tag(model_id, key).await
    }

    pub async fn log_logged_model_params(&self, model_id: &str, params: &[Param]) -> Result<()> {
        params.iter().try_for_each(validate_param)?;
        self.store.log_logged_model_params(model_id, params).await
    }

    pub async fn search_logged_models(
        &self,
        experiment_ids: &[String],
        filter: &str,
        order_by: &[String],
        max_results: Option<i64>,
        page_token: Option<&str>,
    ) -> Result<Page<LoggedModel>> {
        let max_results = check_max_results(max_results, 100, limits::MAX_RESULTS_SEARCH_RUNS)?;
        let offset = search::decode_page_token(page_token.unwrap_or(""))?;
        let query = SearchQuery {
            filter: search::parse_filter(filter)?,
            order_by: parse_order_by(order_by)?,
            max_results,
            offset,
        };
        let items = self
            .store
            .search_logged_models(experiment_ids, &query)
            .await?;
        Ok(page(items, max_results, offset))
    }
}
