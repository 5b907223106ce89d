//! Experiments, runs, metrics, params, tags, inputs and outputs.

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use kaizen_core::{Dataset, DatasetInput, Metric, ModelIo, RunStatus, Tag, ViewType};
use kaizen_tracking::NewRun;
use kaizen_wire::{de, to_json};
use serde::Deserialize;
use serde_json::json;

use super::{ApiResult, empty, mlflow, required};
use crate::AppState;
use crate::error::ApiError;
use crate::extract::Req;

pub fn routes(r: Router<AppState>) -> Router<AppState> {
    let r = mlflow(r, "2.0", "/experiments/create", post(create_experiment));
    let r = mlflow(r, "2.0", "/experiments/get", get(get_experiment));
    let r = mlflow(
        r,
        "2.0",
        "/experiments/get-by-name",
        get(get_experiment_by_name),
    );
    let r = mlflow(
        r,
        "2.0",
        "/experiments/search",
        get(search_experiments).post(search_experiments),
    );
    let r = mlflow(r, "2.0", "/experiments/list", get(search_experiments));
    let r = mlflow(r, "2.0", "/experiments/update", post(update_experiment));
    let r = mlflow(r, "2.0", "/experiments/delete", post(delete_experiment));
    let r = mlflow(r, "2.0", "/experiments/restore", post(restore_experiment));
    let r = mlflow(
        r,
        "2.0",
        "/experiments/set-experiment-tag",
        post(set_experiment_tag),
    );
    let r = mlflow(
        r,
        "2.0",
        "/experiments/delete-experiment-tag",
        post(delete_experiment_tag),
    );
    let r = mlflow(r, "2.0", "/runs/create", post(create_run));
    let r = mlflow(r, "2.0", "/runs/get", get(get_run));
    let r = mlflow(r, "2.0", "/runs/update", post(update_run));
    let r = mlflow(r, "2.0", "/runs/delete", post(delete_run));
    let r = mlflow(r, "2.0", "/runs/restore", post(restore_run));
    let r = mlflow(r, "2.0", "/runs/search", post(search_runs).get(search_runs));
    let r = mlflow(r, "2.0", "/runs/log-metric", post(log_metric));
    let r = mlflow(r, "2.0", "/runs/log-parameter", post(log_param));
    let r = mlflow(r, "2.0", "/runs/set-tag", post(set_tag));
    let r = mlflow(r, "2.0", "/runs/delete-tag", post(delete_tag));
    let r = mlflow(r, "2.0", "/runs/log-batch", post(log_batch));
    let r = mlflow(r, "2.0", "/runs/log-inputs", post(log_inputs));
    let r = mlflow(r, "2.0", "/runs/outputs", post(log_outputs));
    let r = mlflow(r, "2.0", "/metrics/get-history", get(get_metric_history));
    mlflow(
        r,
        "2.0",
        "/metrics/get-history-bulk-interval",
        get(get_metric_history_bulk),
    )
}

fn view_type(v: Option<String>) -> Result<ViewType, ApiError> {
    match v {
        None => Ok(ViewType::ActiveOnly),
        Some(s) if s.is_empty() => Ok(ViewType::ActiveOnly),
        Some(s) => Ok(ViewType::parse(&s)?),
    }
}

#[derive(Deserialize)]
pub struct WireTag {
    #[serde(default, deserialize_with = "de::opt_string")]
    key: Option<String>,
    #[serde(default, deserialize_with = "de::opt_string")]
    value: Option<String>,
}

impl WireTag {
    fn into_tag(self, what: &str) -> Result<Tag, ApiError> {
        Ok(Tag::new(
            required(self.key, &format!("{what}.key"))?,
            self.value.unwrap_or_default(),
        ))
    }
}

pub(crate) fn into_tags(tags: Vec<WireTag>, what: &str) -> Result<Vec<Tag>, ApiError> {
    tags.into_iter().map(|t| t.into_tag(what)).collect()
}

// ---- experiments ----

#[derive(Deserialize)]
struct CreateExperiment {
    #[serde(default, deserialize_with = "de::opt_string")]
    name: Option<String>,
    #[serde(default, deserialize_with = "de::opt_string")]
    artifact_location: Option<String>,
    #[serde(default)]
    tags: Vec<WireTag>,
}

async fn create_experiment(
    State(s): State<AppState>,
    Req(req): Req<CreateExperiment>,
) -> ApiResult {
    let name = required(req.name, "name")?;
    let tags = into_tags(req.tags, "tags")?;
    let id = s
        .services
        .tracking
        .create_experiment(&name, req.artifact_location.as_deref(), &tags)
        .await?;
    Ok(Json(json!({"experiment_id": id})))
}

#[derive(Deserialize)]
struct ExperimentId {
    #[serde(default, deserialize_with = "de::opt_string")]
    experiment_id: Option<String>,
}

async fn get_experiment(State(s): State<AppState>, Req(req): Req<ExperimentId>) -> ApiResult {
    let id = required(req.experiment_id, "experiment_id")?;
    let e = s.services.tracking.get_experiment(&id).await?;
    Ok(Json(json!({"experiment": to_json::experiment(&e)})))
}

#[derive(Deserialize)]
struct ExperimentName {
    #[serde(default, deserialize_with = "de::opt_string")]
    experiment_name: Option<String>,
}

async fn get_experiment_by_name(
    State(s): State<AppState>,
    Req(req): Req<ExperimentName>,
) -> ApiResult {
    let name = required(req.experiment_name, "experiment_name")?;
    let e = s.services.tracking.get_experiment_by_name(&name).await?;
    Ok(Json(json!({"experiment": to_json::experiment(&e)})))
}

#[derive(Deserialize)]
struct SearchExperiments {
    #[serde(default, deserialize_with = "de::opt_i64")]
    max_results: Option<i64>,
    #[serde(default, deserialize_with = "de::opt_string")]
    page_token: Option<String>,
    #[serde(default, deserialize_with = "de::opt_string")]
    filter: Option<String>,
    #[serde(default, deserialize_with = "de::string_list")]
    order_by: Vec<String>,
    #[serde(default, deserialize_with = "de::opt_string")]
    view_type: Option<String>,
}

async fn search_experiments(
    State(s): State<AppState>,
    Req(req): Req<SearchExperiments>,
) -> ApiResult {
    let page = s
        .services
        .tracking
        .search_experiments(
            view_type(req.view_type)?,
            req.filter.as_deref().unwrap_or(""),
            &req.order_by,
            req.max_results,
            req.page_token.as_deref(),
        )
        .await?;
    let body =
        json!({"experiments": page.items.iter().map(to_json::experiment).collect::<Vec<_>>()});
    Ok(Json(to_json::with_page_token(body, page.next_page_token)))
}

#[derive(Deserialize)]
struct UpdateExperiment {
    #[serde(default, deserialize_with = "de::opt_string")]
    experiment_id: Option<String>,
    #[serde(default, deserialize_with = "de::opt_string")]
    new_name: Option<String>,
}

async fn update_experiment(
    State(s): State<AppState>,
    Req(req): Req<UpdateExperiment>,
) -> ApiResult {
    let id = required(req.experiment_id, "experiment_id")?;
    if let Some(name) = req.new_name {
        s.services.tracking.rename_experiment(&id, &name).await?;
    } else {
        s.services.tracking.get_experiment(&id).await?;
    }
    empty()
}

async fn delete_experiment(State(s): State<AppState>, Req(req): Req<ExperimentId>) -> ApiResult {
    let id = required(req.experiment_id, "experiment_id")?;
    s.services.tracking.delete_experiment(&id).await?;
    empty()
}

async fn restore_experiment(State(s): State<AppState>, Req(req): Req<ExperimentId>) -> ApiResult {
    let id = required(req.experiment_id, "experiment_id")?;
    s.services.tracking.restore_experiment(&id).await?;
    empty()
}

#[derive(Deserialize)]
struct ExperimentTag {
    #[serde(default, deserialize_with = "de::opt_string")]
    experiment_id: Option<String>,
    #[serde(default, deserialize_with = "de::opt_string")]
    key: Option<String>,
    #[serde(default, deserialize_with = "de::opt_string")]
    value: Option<String>,
}

async fn set_experiment_tag(State(s): State<AppState>, Req(req): Req<ExperimentTag>) -> ApiResult {
    let id = required(req.experiment_id, "experiment_id")?;
    let key = required(req.key, "key")?;
    s.services
        .tracking
        .set_experiment_tag(&id, &Tag::new(key, req.value.unwrap_or_default()))
        .await?;
    empty()
}

async fn delete_experiment_tag(
    State(s): State<AppState>,
    Req(req): Req<ExperimentTag>,
) -> ApiResult {
    let id = required(req.experiment_id, "experiment_id")?;
    let key = required(req.key, "key")?;
    s.services.tracking.delete_experiment_tag(&id, &key).await?;
    empty()
}

// ---- runs ----

#[derive(Deserialize)]
struct CreateRun {
    #[serde(default, deserialize_with = "de::opt_string")]
    experiment_id: Option<String>,
    #[serde(default, deserialize_with = "de::opt_string")]
    user_id: Option<String>,
    #[serde(default, deserialize_with = "de::opt_string")]
    run_name: Option<String>,
    #[serde(default, deserialize_with = "de::opt_i64")]
    start_time: Option<i64>,
    #[serde(default)]
    tags: Vec<WireTag>,
}

async fn create_run(
    State(s): State<AppState>,
    identity: Option<axum::Extension<crate::Identity>>,
    Req(req): Req<CreateRun>,
) -> ApiResult {
    let run = s
        .services
        .tracking
        .create_run(NewRun {
            experiment_id: req.experiment_id,
            user_id: req
                .user_id
                .or_else(|| identity.and_then(|i| i.user.clone())),
            start_time: req.start_time,
            run_name: req.run_name,
            tags: into_tags(req.tags, "tags")?,
        })
        .await?;
    Ok(Json(json!({"run": to_json::run(&run)})))
}

#[derive(Deserialize)]
struct RunId {
    #[serde(default, deserialize_with = "de::opt_string")]
    run_id: Option<String>,
    #[serde(default, deserialize_with = "de::opt_string")]
    run_uuid: Option<String>,
}

impl RunId {
    fn get(self) -> Result<String, ApiError> {
        required(
            self.run_id.filter(|s| !s.is_empty()).or(self.run_uuid),
            "run_id",
        )
    }
}

async fn get_run(State(s): State<AppState>, Req(req): Req<RunId>) -> ApiResult {
    let run = s.services.tracking.get_run(&req.get()?).await?;
    Ok(Json(json!({"run": to_json::run(&run)})))
}

#[derive(Deserialize)]
struct UpdateRun {
    #[serde(default, deserialize_with = "de::opt_string")]
    run_id: Option<String>,
    #[serde(default, deserialize_with = "de::opt_string")]
    run_uuid: Option<String>,
    #[serde(default, deserialize_with = "de::opt_string")]
    status: Option<String>,
    #[serde(default, deserialize_with = "de::opt_i64")]
    end_time: Option<i64>,
    #[serde(default, deserialize_with = "de::opt_string")]
    run_name: Option<String>,
}

async fn update_run(State(s): State<AppState>, Req(req): Req<UpdateRun>) -> ApiResult {
    let run_id = RunId {
        run_id: req.run_id,
        run_uuid: req.run_uuid,
    }
    .get()?;
    let status = req
        .status
        .filter(|s| !s.is_empty())
        .map(|s| RunStatus::parse(&s))
        .transpose()?;
    let info = s
        .services
        .tracking
        .update_run(&run_id, status, req.end_time, req.run_name)
        .await?;
    Ok(Json(json!({"run_info": to_json::run_info(&info)})))
}

async fn delete_run(State(s): State<AppState>, Req(req): Req<RunId>) -> ApiResult {
    s.services.tracking.delete_run(&req.get()?).await?;
    empty()
}

async fn restore_run(State(s): State<AppState>, Req(req): Req<RunId>) -> ApiResult {
    s.services.tracking.restore_run(&req.get()?).await?;
    empty()
}

#[derive(Deserialize)]
struct SearchRuns {
    #[serde(default, deserialize_with = "de::string_list")]
    experiment_ids: Vec<String>,
    #[serde(default, deserialize_with = "de::opt_string")]
    filter: Option<String>,
    #[serde(default, deserialize_with = "de::opt_string")]
    run_view_type: Option<String>,
    #[serde(default, deserialize_with = "de::opt_i64")]
    max_results: Option<i64>,
    #[serde(default, deserialize_with = "de::string_list")]
    order_by: Vec<String>,
    #[serde(default, deserialize_with = "de::opt_string")]
    page_token: Option<String>,
}

async fn search_runs(
    State(s): State<AppState>,
    Req(req): Req<SearchRuns>,
) -> Result<axum::response::Response, ApiError> {
    let page = s
        .services
        .tracking
        .search_runs(
            &req.experiment_ids,
            req.filter.as_deref().unwrap_or(""),
            view_type(req.run_view_type)?,
            &req.order_by,
            req.max_results,
            req.page_token.as_deref(),
        )
        .await?;
    Ok(Json(to_json::RunPage {
        runs: page.items.iter().map(to_json::RunOut).collect(),
        next_page_token: page.next_page_token,
    })
    .into_response())
}

#[derive(Deserialize)]
pub(crate) struct WireMetric {
    #[serde(default, deserialize_with = "de::opt_string")]
    key: Option<String>,
    #[serde(default)]
    value: Option<serde_json::Value>,
    #[serde(default, deserialize_with = "de::opt_i64")]
    timestamp: Option<i64>,
    #[serde(default, deserialize_with = "de::opt_i64")]
    step: Option<i64>,
    #[serde(default, deserialize_with = "de::opt_string")]
    model_id: Option<String>,
    #[serde(default, deserialize_with = "de::opt_string")]
    dataset_name: Option<String>,
    #[serde(default, deserialize_with = "de::opt_string")]
    dataset_digest: Option<String>,
}

impl WireMetric {
    pub(crate) fn into_metric(self) -> Result<Metric, ApiError> {
        let key = required(self.key, "key")?;
        let value = match &self.value {
            None | Some(serde_json::Value::Null) => {
                return Err(ApiError::invalid(format!(
                    "Missing value for required parameter 'value' of metric '{key}'."
                )));
            }
            Some(v) => de::parse_f64(v).map_err(|e| {
                ApiError::invalid(format!(
                    "Invalid value for metric '{key}': {e}. Metric values must be numbers"
                ))
            })?,
        };
        let timestamp = self.timestamp.ok_or_else(|| {
            ApiError::invalid(format!(
                "Missing value for required parameter 'timestamp' of metric '{key}'."
            ))
        })?;
        let mut m = Metric::new(key, value, timestamp, self.step.unwrap_or(0));
        m.model_id = self.model_id.filter(|s| !s.is_empty());
        m.dataset_name = self.dataset_name.filter(|s| !s.is_empty());
        m.dataset_digest = self.dataset_digest.filter(|s| !s.is_empty());
        Ok(m)
    }
}

#[derive(Deserialize)]
struct LogMetric {
    #[serde(default, deserialize_with = "de::opt_string")]
    run_id: Option<String>,
    #[serde(default, deserialize_with = "de::opt_string")]
    run_uuid: Option<String>,
    #[serde(flatten)]
    metric: WireMetric,
}

async fn log_metric(State(s): State<AppState>, Req(req): Req<LogMetric>) -> ApiResult {
    let run_id = RunId {
        run_id: req.run_id,
        run_uuid: req.run_uuid,
    }
    .get()?;
    s.services
        .tracking
        .log_metric(&run_id, req.metric.into_metric()?)
        .await?;
    empty()
}

#[derive(Deserialize)]
struct KeyValue {
    #[serde(default, deserialize_with = "de::opt_string")]
    run_id: Option<String>,
    #[serde(default, deserialize_with = "de::opt_string")]
    run_uuid: Option<String>,
    #[serde(default, deserialize_with = "de::opt_string")]
    key: Option<String>,
    #[serde(default, deserialize_with = "de::opt_string")]
    value: Option<String>,
}

async fn log_param(State(s): State<AppState>, Req(req): Req<KeyValue>) -> ApiResult {
    let run_id = RunId {
        run_id: req.run_id,
        run_uuid: req.run_uuid,
    }
    .get()?;
    let key = required(req.key, "key")?;
    let value = req
        .value
        .ok_or_else(|| ApiError::invalid("Missing value for required parameter 'value'."))?;
    s.services
        .tracking
        .log_param(&run_id, Tag::new(key, value))
        .await?;
    empty()
}

async fn set_tag(State(s): State<AppState>, Req(req): Req<KeyValue>) -> ApiResult {
    let run_id = RunId {
        run_id: req.run_id,
        run_uuid: req.run_uuid,
    }
    .get()?;
    let key = required(req.key, "key")?;
    s.services
        .tracking
        .set_tag(&run_id, Tag::new(key, req.value.unwrap_or_default()))
        .await?;
    empty()
}

async fn delete_tag(State(s): State<AppState>, Req(req): Req<KeyValue>) -> ApiResult {
    let run_id = RunId {
        run_id: req.run_id,
        run_uuid: req.run_uuid,
    }
    .get()?;
    let key = required(req.key, "key")?;
    s.services.tracking.delete_tag(&run_id, &key).await?;
    empty()
}

#[derive(Deserialize)]
struct LogBatch {
    #[serde(default, deserialize_with = "de::opt_string")]
    run_id: Option<String>,
    #[serde(default)]
    metrics: Vec<WireMetric>,
    #[serde(default)]
    params: Vec<WireTag>,
    #[serde(default)]
    tags: Vec<WireTag>,
}

async fn log_batch(State(s): State<AppState>, Req(req): Req<LogBatch>) -> ApiResult {
    let run_id = required(req.run_id, "run_id")?;
    let metrics = req
        .metrics
        .into_iter()
        .map(WireMetric::into_metric)
        .collect::<Result<Vec<_>, _>>()?;
    let params = into_tags(req.params, "params")?;
    let tags = into_tags(req.tags, "tags")?;
    s.services
        .tracking
        .log_batch(&run_id, &metrics, &params, &tags)
        .await?;
    empty()
}

#[derive(Deserialize)]
struct WireDataset {
    #[serde(default, deserialize_with = "de::opt_string")]
    name: Option<String>,
    #[serde(default, deserialize_with = "de::opt_string")]
    digest: Option<String>,
    #[serde(default, deserialize_with = "de::opt_string")]
    source_type: Option<String>,
    #[serde(default, deserialize_with = "de::opt_string")]
    source: Option<String>,
    #[serde(default, deserialize_with = "de::opt_string")]
    schema: Option<String>,
    #[serde(default, deserialize_with = "de::opt_string")]
    profile: Option<String>,
}

#[derive(Deserialize)]
struct WireDatasetInput {
    #[serde(default)]
    tags: Vec<WireTag>,
    dataset: Option<WireDataset>,
}

#[derive(Deserialize)]
struct WireModelIo {
    #[serde(default, deserialize_with = "de::opt_string")]
    model_id: Option<String>,
    #[serde(default, deserialize_with = "de::opt_i64")]
    step: Option<i64>,
}

fn into_models(models: Vec<WireModelIo>) -> Result<Vec<ModelIo>, ApiError> {
    models
        .into_iter()
        .map(|m| {
            Ok(ModelIo {
                model_id: required(m.model_id, "model_id")?,
                step: m.step,
            })
        })
        .collect()
}

#[derive(Deserialize)]
struct LogInputs {
    #[serde(default, deserialize_with = "de::opt_string")]
    run_id: Option<String>,
    #[serde(default)]
    datasets: Vec<WireDatasetInput>,
    #[serde(default)]
    models: Vec<WireModelIo>,
}

async fn log_inputs(State(s): State<AppState>, Req(req): Req<LogInputs>) -> ApiResult {
    let run_id = required(req.run_id, "run_id")?;
    let mut datasets = Vec::new();
    for d in req.datasets {
        let ds = d
            .dataset
            .ok_or_else(|| ApiError::invalid("A dataset input needs a 'dataset'"))?;
        datasets.push(DatasetInput {
            tags: into_tags(d.tags, "tags")?,
            dataset: Dataset {
                name: required(ds.name, "dataset.name")?,
                digest: required(ds.digest, "dataset.digest")?,
                source_type: ds.source_type.unwrap_or_default(),
                source: ds.source.unwrap_or_default(),
                schema: ds.schema,
                profile: ds.profile,
            },
        });
    }
    let models = into_models(req.models)?;
    s.services
        .tracking
        .log_inputs(&run_id, &datasets, &models)
        .await?;
    empty()
}

#[derive(Deserialize)]
struct LogOutputs {
    #[serde(default, deserialize_with = "de::opt_string")]
    run_id: Option<String>,
    #[serde(default)]
    models: Vec<WireModelIo>,
}

async fn log_outputs(State(s): State<AppState>, Req(req): Req<LogOutputs>) -> ApiResult {
    let run_id = required(req.run_id, "run_id")?;
    s.services
        .tracking
        .log_outputs(&run_id, &into_models(req.models)?)
        .await?;
    empty()
}

#[derive(Deserialize)]
struct GetMetricHistory {
    #[serde(default, deserialize_with = "de::opt_string")]
    run_id: Option<String>,
    #[serde(default, deserialize_with = "de::opt_string")]
    run_uuid: Option<String>,
    #[serde(default, deserialize_with = "de::opt_string")]
    metric_key: Option<String>,
    #[serde(default, deserialize_with = "de::opt_string")]
    page_token: Option<String>,
    #[serde(default, deserialize_with = "de::opt_i64")]
    max_results: Option<i64>,
}

async fn get_metric_history(
    State(s): State<AppState>,
    Req(req): Req<GetMetricHistory>,
) -> Result<axum::response::Response, ApiError> {
    let run_id = RunId {
        run_id: req.run_id,
        run_uuid: req.run_uuid,
    }
    .get()?;
    let key = required(req.metric_key, "metric_key")?;
    let page = s
        .services
        .tracking
        .get_metric_history(&run_id, &key, req.max_results, req.page_token.as_deref())
        .await?;
    Ok(Json(to_json::MetricHistory {
        metrics: page.items.iter().map(to_json::MetricOut).collect(),
        next_page_token: page.next_page_token,
    })
    .into_response())
}

#[derive(Deserialize)]
struct BulkInterval {
    #[serde(default, deserialize_with = "de::string_list")]
    run_ids: Vec<String>,
    #[serde(default, deserialize_with = "de::opt_string")]
    metric_key: Option<String>,
    #[serde(default, deserialize_with = "de::opt_i64")]
    max_results: Option<i64>,
}

/// Histories of one metric over several runs, as the MLflow UI's charts ask for them.
async fn get_metric_history_bulk(
    State(s): State<AppState>,
    Req(req): Req<BulkInterval>,
) -> ApiResult {
    let key = required(req.metric_key, "metric_key")?;
    if req.run_ids.is_empty() || req.run_ids.len() > 100 {
        return Err(ApiError::invalid(
            "'run_ids' must name between 1 and 100 runs",
        ));
    }
    let max = req.max_results.unwrap_or(320).clamp(1, 2500);
    let mut out = Vec::new();
    for run_id in &req.run_ids {
        let page = s
            .services
            .tracking
            .get_metric_history(run_id, &key, None, None)
            .await?;
        let points = &page.items;
        // Keep at most `max` points per run, evenly spread, always with the first and last.
        let stride = points.len().div_ceil(max as usize).max(1);
        for (i, m) in points.iter().enumerate() {
            if i % stride == 0 || i + 1 == points.len() {
                let mut v = to_json::metric(m);
                v["run_id"] = json!(run_id);
                out.push(v);
            }
        }
    }
    Ok(Json(json!({"metrics": out})))
}
