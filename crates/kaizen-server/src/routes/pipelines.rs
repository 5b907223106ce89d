//! Pipeline triggers over HTTP: the project directories registered with `kaizen server
//! --pipeline DIR`, `POST /api/pipelines/{name}/runs` with a JSON payload of parameter overrides
//! (the steps run in a background task), and runs read back from the tracking store, so their
//! status survives a restart of the server.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{Path as UrlPath, RawQuery, State};
use axum::http::StatusCode;
use axum::routing::get;
use kaizen_core::{Error, ErrorKind, Run, RunStatus, ViewType, tags};
use kaizen_pipeline::{ParamValue, Pipeline, Reporter, RunOptions, StepResult};
use serde_json::{Map, Value, json};

use super::ApiResult;
use crate::AppState;
use crate::error::ApiError;
use crate::extract::Req;

/// The pipelines a server can start, by name, and how their runs are set up.
#[derive(Debug, Clone, Default)]
pub struct PipelineRegistry {
    /// Project directories by pipeline name.
    dirs: BTreeMap<String, PathBuf>,
    /// Scratch space of runs: `<work_dir>/<run_id>/` holds step outputs and logs.
    pub work_dir: PathBuf,
    /// What steps get as `MLFLOW_TRACKING_URI`: the server's own address.
    pub tracking_uri: String,
}

impl PipelineRegistry {
    /// Loads each directory's pipeline to learn its name. Two directories with one pipeline name
    /// are refused, since the name is how a trigger picks the pipeline.
    pub fn load(
        dirs: &[PathBuf],
        work_dir: PathBuf,
        tracking_uri: String,
    ) -> kaizen_core::Result<Self> {
        let mut by_name: BTreeMap<String, PathBuf> = BTreeMap::new();
        for dir in dirs {
            let dir = std::path::absolute(dir).map_err(|e| {
                Error::invalid(format!(
                    "cannot resolve pipeline directory {}: {e}",
                    dir.display()
                ))
            })?;
            let pipeline = Pipeline::load(&dir)?;
            let name = pipeline.meta.name;
            if let Some(other) = by_name.get(&name) {
                return Err(Error::invalid(format!(
                    "two pipelines are named '{name}': {} and {}",
                    other.display(),
                    dir.display()
                )));
            }
            by_name.insert(name, dir);
        }
        Ok(Self {
            dirs: by_name,
            work_dir,
            tracking_uri,
        })
    }

    /// The registered pipeline names with their project directories.
    pub fn dirs(&self) -> &BTreeMap<String, PathBuf> {
        &self.dirs
    }

    fn dir(&self, name: &str) -> Result<&Path, ApiError> {
        self.dirs.get(name).map(PathBuf::as_path).ok_or_else(|| {
            let known: Vec<&str> = self.dirs.keys().map(String::as_str).collect();
            ApiError::from(Error::not_found(format!(
                "No pipeline named '{name}' (registered: {})",
                if known.is_empty() {
                    "none; start the server with --pipeline DIR".to_string()
                } else {
                    known.join(", ")
                }
            )))
        })
    }

    /// The pipeline as its file says now, so an edited `kaizen.toml` is picked up without a
    /// restart.
    fn pipeline(&self, name: &str) -> Result<Pipeline, ApiError> {
        let dir = self.dir(name)?;
        let pipeline = Pipeline::load(dir).map_err(|e| {
            // The server's own files are broken, not the request; still not a 5xx, which the
            // mlflow client would retry.
            Error::new(
                ErrorKind::InvalidState,
                format!("pipeline '{name}' cannot be loaded: {}", e.message),
            )
        })?;
        if pipeline.meta.name != name {
            return Err(Error::new(
                ErrorKind::InvalidState,
                format!(
                    "{} now names its pipeline '{}', not '{name}'; restart the server to register it",
                    dir.display(),
                    pipeline.meta.name
                ),
            )
            .into());
        }
        Ok(pipeline)
    }
}

pub fn routes(r: Router<AppState>) -> Router<AppState> {
    r.route("/api/pipelines", get(list_pipelines))
        .route("/api/pipelines/{name}/runs", get(list_runs).post(start_run))
        .route("/api/pipelines/{name}/runs/{run_id}", get(get_run))
}

fn param_json(v: &ParamValue) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

async fn list_pipelines(State(s): State<AppState>) -> ApiResult {
    let registry = &s.config.pipelines;
    let mut out = Vec::new();
    for (name, dir) in registry.dirs() {
        let mut item = json!({"name": name, "dir": dir.display().to_string()});
        match Pipeline::load(dir) {
            Ok(p) => {
                let params: Map<String, Value> = p
                    .params
                    .iter()
                    .map(|(k, v)| (k.clone(), param_json(v)))
                    .collect();
                item["description"] = json!(p.meta.description);
                item["params"] = Value::Object(params);
                item["steps"] = json!(p.steps.iter().map(|s| &s.name).collect::<Vec<_>>());
            }
            Err(e) => item["error"] = json!(e.message),
        }
        out.push(item);
    }
    Ok(Json(json!({"pipelines": out})))
}

/// The JSON type a parameter's default asks for, for messages.
fn json_type(default: &ParamValue) -> &'static str {
    match default {
        ParamValue::Bool(_) => "a boolean",
        ParamValue::Int(_) => "an integer",
        ParamValue::Float(_) => "a number",
        ParamValue::String(_) => "a string",
        ParamValue::List(_) => "a list",
    }
}

fn value_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "an integer",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// A payload's keys as `key=value` overrides, each typed by the parameter's default.
pub(crate) fn overrides(
    pipeline: &Pipeline,
    payload: &Map<String, Value>,
) -> Result<Vec<String>, ApiError> {
    let mut out = Vec::new();
    for (key, value) in payload {
        let default = pipeline.params.get(key).ok_or_else(|| {
            let declared: Vec<&str> = pipeline.params.keys().map(String::as_str).collect();
            ApiError::invalid(format!(
                "unknown parameter '{key}' (declared: {})",
                if declared.is_empty() {
                    "none".to_string()
                } else {
                    declared.join(", ")
                }
            ))
        })?;
        let text = match (default, value) {
            (ParamValue::String(_), Value::String(s)) => s.clone(),
            (ParamValue::Bool(_), Value::Bool(b)) => b.to_string(),
            (ParamValue::Int(_), Value::Number(n)) if n.is_i64() => n.to_string(),
            (ParamValue::Float(_), Value::Number(n)) => n.to_string(),
            (ParamValue::List(_), Value::Array(_)) => value.to_string(),
            _ => {
                return Err(ApiError::invalid(format!(
                    "parameter '{key}' must be {}, not {}",
                    json_type(default),
                    value_kind(value)
                )));
            }
        };
        out.push(format!("{key}={text}"));
    }
    Ok(out)
}

/// Step progress of background runs, in the server log.
struct LogReporter {
    pipeline: String,
}

impl Reporter for LogReporter {
    fn step_started(&self, step: &str) {
        tracing::info!(pipeline = %self.pipeline, step, "pipeline step started");
    }

    fn step_retrying(&self, step: &str, attempt: u32, error: &str) {
        let first = error.lines().next().unwrap_or_default();
        tracing::info!(pipeline = %self.pipeline, step, attempt, error = first, "pipeline step retrying");
    }

    fn step_finished(&self, r: &StepResult) {
        tracing::info!(
            pipeline = %self.pipeline,
            step = %r.name,
            status = r.status.as_str(),
            duration_ms = r.duration_ms,
            "pipeline step finished"
        );
    }
}

async fn start_run(
    State(s): State<AppState>,
    UrlPath(name): UrlPath<String>,
    identity: Option<axum::Extension<crate::Identity>>,
    Req(payload): Req<Map<String, Value>>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let registry = &s.config.pipelines;
    let pipeline = registry.pipeline(&name)?;
    let opts = RunOptions {
        param_overrides: overrides(&pipeline, &payload)?,
        no_cache: false,
        max_parallel: 4,
        tracking_uri: registry.tracking_uri.clone(),
        work_dir: registry.work_dir.clone(),
        user: identity.and_then(|i| i.user.clone()),
        tags: vec![("kaizen.trigger".into(), "http".into())],
    };
    let reporter = Arc::new(LogReporter {
        pipeline: name.clone(),
    });
    let started = kaizen_pipeline::start_run(
        &s.services,
        &pipeline,
        &opts,
        &kaizen_train::pipeline_steps::runners(&s.services),
        reporter,
    )
    .await?;
    let run_id = started.run_id().to_string();
    tracing::info!(pipeline = %name, run_id, "pipeline run started over HTTP");
    let id = run_id.clone();
    tokio::spawn(async move {
        match started.execute().await {
            Ok(summary) => tracing::info!(
                pipeline = %name,
                run_id = %id,
                succeeded = summary.succeeded,
                "pipeline run finished"
            ),
            Err(e) => {
                tracing::error!(pipeline = %name, run_id = %id, error = %e, "pipeline run failed")
            }
        }
    });
    Ok((
        StatusCode::CREATED,
        Json(json!({"run_id": run_id, "status": "running"})),
    ))
}

/// A pipeline run's status as the API names it.
fn run_status(status: RunStatus) -> &'static str {
    match status {
        RunStatus::Running | RunStatus::Scheduled => "running",
        RunStatus::Finished => "succeeded",
        RunStatus::Failed | RunStatus::Killed => "failed",
    }
}

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

fn duration_ms(run: &Run) -> Option<i64> {
    match (run.info.start_time, run.info.end_time) {
        (Some(s), Some(e)) => Some(e - s),
        _ => None,
    }
}

fn run_summary(run: &Run) -> Value {
    json!({
        "run_id": run.info.run_id,
        "status": run_status(run.info.status),
        "start_time": run.info.start_time,
        "end_time": run.info.end_time,
        "duration_ms": duration_ms(run),
        "trigger": tag(run, "kaizen.trigger"),
    })
}

/// A page of every run of `experiment_id` that matches `filter`.
async fn search(
    s: &AppState,
    experiment_id: &str,
    filter: &str,
    max_results: i64,
) -> Result<Vec<Run>, ApiError> {
    let page = s
        .services
        .tracking
        .search_runs(
            &[experiment_id.to_string()],
            filter,
            ViewType::ActiveOnly,
            &["attributes.start_time DESC".to_string()],
            Some(max_results),
            None,
        )
        .await?;
    Ok(page.items)
}

/// The experiment of a pipeline's runs; `None` before its first run.
async fn experiment_id(s: &AppState, name: &str) -> Result<Option<String>, ApiError> {
    match s.services.tracking.get_experiment_by_name(name).await {
        Ok(e) => Ok(Some(e.experiment_id)),
        Err(e) if e.kind == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.into()),
    }
}

async fn list_runs(
    State(s): State<AppState>,
    UrlPath(name): UrlPath<String>,
    RawQuery(query): RawQuery,
) -> ApiResult {
    s.config.pipelines.dir(&name)?;
    let mut max_results = 50;
    for (k, v) in url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        if k == "max_results" {
            max_results = v
                .parse::<i64>()
                .ok()
                .filter(|n| (1..=1000).contains(n))
                .ok_or_else(|| {
                    ApiError::invalid(format!(
                        "max_results must be an integer from 1 to 1000, not '{v}'"
                    ))
                })?;
        }
    }
    let Some(exp) = experiment_id(&s, &name).await? else {
        return Ok(Json(json!({"runs": []})));
    };
    let filter = format!(
        "tags.`kaizen.pipeline` = '{}' AND tags.`{}` IS NULL",
        name.replace('\'', "''"),
        tags::PARENT_RUN_ID
    );
    let runs = search(&s, &exp, &filter, max_results).await?;
    Ok(Json(
        json!({"runs": runs.iter().map(run_summary).collect::<Vec<_>>()}),
    ))
}

async fn get_run(
    State(s): State<AppState>,
    UrlPath((name, run_id)): UrlPath<(String, String)>,
) -> ApiResult {
    let registry = &s.config.pipelines;
    registry.dir(&name)?;
    let not_found = || {
        ApiError::from(Error::not_found(format!(
            "No run '{run_id}' of pipeline '{name}'"
        )))
    };
    let run = match s.services.tracking.get_run(&run_id).await {
        Ok(r) => r,
        Err(e) if matches!(e.kind, ErrorKind::NotFound | ErrorKind::InvalidParameter) => {
            return Err(not_found());
        }
        Err(e) => return Err(e.into()),
    };
    if tag(&run, "kaizen.pipeline") != Some(name.as_str())
        || tag(&run, tags::PARENT_RUN_ID).is_some()
    {
        return Err(not_found());
    }
    let filter = format!("tags.`{}` = '{}'", tags::PARENT_RUN_ID, run.info.run_id);
    let step_runs = search(&s, &run.info.experiment_id, &filter, 1000).await?;
    let running = run_status(run.info.status) == "running";
    let mut steps: Vec<Value> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    // The pipeline's order when its file still loads; steps without a run wait or were skipped.
    let declared: Vec<String> = registry
        .pipeline(&name)
        .map(|p| p.steps.iter().map(|s| s.name.clone()).collect())
        .unwrap_or_default();
    let mut ordered: Vec<&Run> = step_runs.iter().collect();
    ordered.sort_by_key(|r| {
        let step = tag(r, "kaizen.step").unwrap_or_default();
        (
            declared
                .iter()
                .position(|d| d == step)
                .unwrap_or(usize::MAX),
            r.info.start_time,
        )
    });
    for r in ordered {
        let step = tag(r, "kaizen.step")
            .unwrap_or(&r.info.run_name)
            .to_string();
        seen.insert(step.clone());
        steps.push(step_json(&step, r));
    }
    for d in declared.iter().filter(|d| !seen.contains(*d)) {
        steps.push(json!({
            "name": d,
            "status": if running { "pending" } else { "skipped" },
            "duration_ms": null,
            "cache_miss_reason": null,
            "run_id": null,
            "outputs": [],
        }));
    }
    let mut out = run_summary(&run);
    out["pipeline"] = json!(name);
    out["steps"] = Value::Array(steps);
    Ok(Json(out))
}

fn step_json(name: &str, r: &Run) -> Value {
    let status = match tag(r, "kaizen.status") {
        Some(s) => s.to_string(),
        None if r.info.status == RunStatus::Running => "running".into(),
        None => run_status(r.info.status).into(),
    };
    let outputs: Vec<&str> = r
        .data
        .tags
        .iter()
        .filter_map(|t| t.key.strip_prefix("kaizen.output."))
        .collect();
    json!({
        "name": name,
        "status": status,
        "duration_ms": metric(r, "duration_ms").map(|d| d as i64),
        "cache_miss_reason": tag(r, "kaizen.cache_miss_reason"),
        "run_id": r.info.run_id,
        "outputs": outputs,
    })
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::{Method, Request};
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    use super::*;
    use crate::{ServerConfig, app};

    const PIPELINE: &str = r#"
[pipeline]
name = "greet"

[params]
name = "World"
epochs = 1
lr = 0.5
fast = false
stores = ["a"]

[[steps]]
name = "hello"
run = "echo \"$KAIZEN_PARAM_NAME $KAIZEN_PARAM_LR\" | tee $KAIZEN_OUTPUT_DIR/out.txt"
outputs = ["out.txt"]
"#;

    fn pipeline() -> Pipeline {
        Pipeline::parse(PIPELINE, Path::new("/nonexistent")).unwrap()
    }

    fn payload(text: &str) -> Map<String, Value> {
        serde_json::from_str(text).unwrap()
    }

    #[test]
    fn payload_keys_become_typed_overrides() {
        let got = overrides(
            &pipeline(),
            &payload(
                r#"{"name": "Marco", "epochs": 3, "lr": 1, "fast": true, "stores": ["x", "y"]}"#,
            ),
        )
        .unwrap();
        assert_eq!(
            got,
            [
                "epochs=3",
                "fast=true",
                "lr=1",
                "name=Marco",
                r#"stores=["x","y"]"#
            ]
        );
        let resolved = pipeline().resolve_params(&got).unwrap();
        assert_eq!(resolved["lr"], ParamValue::Float(1.0));
        assert_eq!(
            resolved["stores"],
            ParamValue::List(vec![
                ParamValue::String("x".into()),
                ParamValue::String("y".into())
            ])
        );
    }

    #[test]
    fn payload_errors_name_the_key() {
        for (body, message) in [
            (
                r#"{"nmae": 1}"#,
                "unknown parameter 'nmae' (declared: epochs, fast, lr, name, stores)",
            ),
            (
                r#"{"epochs": "3"}"#,
                "parameter 'epochs' must be an integer, not a string",
            ),
            (
                r#"{"epochs": 2.5}"#,
                "parameter 'epochs' must be an integer, not a number",
            ),
            (
                r#"{"fast": 1}"#,
                "parameter 'fast' must be a boolean, not an integer",
            ),
            (
                r#"{"name": null}"#,
                "parameter 'name' must be a string, not null",
            ),
            (
                r#"{"stores": {"a": 1}}"#,
                "parameter 'stores' must be a list, not an object",
            ),
        ] {
            let e = overrides(&pipeline(), &payload(body)).unwrap_err();
            assert_eq!(e.status, StatusCode::BAD_REQUEST, "{body}");
            assert_eq!(e.message, message, "{body}");
        }
    }

    async fn call(router: &Router, method: Method, uri: &str, body: &str) -> (StatusCode, Value) {
        let req = Request::builder()
            .method(method)
            .uri(uri)
            .header("content-type", "application/json")
            .body(Body::from(body.to_string()))
            .unwrap();
        let resp = router.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    #[tokio::test]
    async fn trigger_and_status_through_the_app() {
        let tmp = tempfile::tempdir().unwrap();
        let project = tmp.path().join("project");
        std::fs::create_dir(&project).unwrap();
        std::fs::write(project.join("kaizen.toml"), PIPELINE).unwrap();
        let services = kaizen_tracking::Services::open(
            &format!("sqlite://{}/k.db", tmp.path().display()),
            &format!("file://{}/artifacts", tmp.path().display()),
        )
        .await
        .unwrap();
        let registry = PipelineRegistry::load(
            std::slice::from_ref(&project),
            tmp.path().join("pipelines"),
            "http://127.0.0.1:9".into(),
        )
        .unwrap();
        let router = app(AppState {
            services,
            config: Arc::new(ServerConfig {
                pipelines: registry,
                ..Default::default()
            }),
        });

        let (status, v) = call(&router, Method::GET, "/api/pipelines", "").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(v["pipelines"][0]["name"], "greet");
        assert_eq!(v["pipelines"][0]["params"]["lr"], 0.5);

        let (status, v) = call(&router, Method::POST, "/api/pipelines/nosuch/runs", "{}").await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{v}");
        assert_eq!(v["error_code"], "RESOURCE_DOES_NOT_EXIST");
        let (status, v) = call(
            &router,
            Method::POST,
            "/api/pipelines/greet/runs",
            r#"{"x": 1}"#,
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
        assert_eq!(v["error_code"], "INVALID_PARAMETER_VALUE");

        let (status, v) = call(
            &router,
            Method::POST,
            "/api/pipelines/greet/runs",
            r#"{"name": "Marco"}"#,
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{v}");
        let run_id = v["run_id"].as_str().unwrap().to_string();
        let uri = format!("/api/pipelines/greet/runs/{run_id}");
        let done = loop {
            let (status, v) = call(&router, Method::GET, &uri, "").await;
            assert_eq!(status, StatusCode::OK, "{v}");
            if v["status"] != "running" {
                break v;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        };
        assert_eq!(done["status"], "succeeded", "{done}");
        assert_eq!(done["steps"][0]["name"], "hello");
        assert_eq!(done["steps"][0]["status"], "succeeded");
        assert_eq!(done["steps"][0]["outputs"], json!(["out.txt"]));
        let out = tmp
            .path()
            .join("pipelines")
            .join(&run_id)
            .join("logs/hello.0.stdout");
        assert_eq!(std::fs::read_to_string(out).unwrap(), "Marco 0.5\n");

        let (status, v) = call(&router, Method::GET, "/api/pipelines/greet/runs", "").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(v["runs"][0]["run_id"], run_id.as_str());
        assert_eq!(v["runs"][0]["trigger"], "http");
        let (status, _) = call(
            &router,
            Method::GET,
            "/api/pipelines/greet/runs?max_results=0",
            "",
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
    }
}
