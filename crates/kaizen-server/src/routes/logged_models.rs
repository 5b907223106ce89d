//! MLflow 3 logged models, and `/api/3.0/mlflow/server-info`.

use axum::extract::{Path, State};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use kaizen_core::LoggedModelStatus;
use kaizen_wire::{de, to_json};
use serde::Deserialize;
use serde_json::json;

use super::tracking::{WireTag, into_tags};
use super::{ApiResult, empty, mlflow};
use crate::AppState;
use crate::error::ApiError;
use crate::extract::Req;

pub fn routes(r: Router<AppState>) -> Router<AppState> {
    let r = mlflow(r, "2.0", "/logged-models", post(create));
    let r = mlflow(r, "2.0", "/logged-models/search", post(search));
    let r = mlflow(
        r,
        "2.0",
        "/logged-models/{model_id}",
        get(get_model).patch(finalize).delete(delete_model),
    );
    let r = mlflow(
        r,
        "2.0",
        "/logged-models/{model_id}/tags",
        axum::routing::patch(set_tags),
    );
    let r = mlflow(
        r,
        "2.0",
        "/logged-models/{model_id}/tags/{tag_key}",
        delete(delete_tag),
    );
    let r = mlflow(
        r,
        "2.0",
        "/logged-models/{model_id}/params",
        post(log_params),
    );
    let r = mlflow(
        r,
        "2.0",
        "/logged-models/{model_id}/artifacts/directories",
        get(list_artifacts),
    );
    mlflow(r, "3.0", "/server-info", get(server_info))
}

async fn server_info(State(s): State<AppState>) -> ApiResult {
    Ok(Json(json!({
        "store_type": "SqlStore",
        "workspaces_enabled": false,
        "trace_archival_enabled": false,
        "multipart_uploads_enabled": s.config.serve_artifacts,
        "multipart_downloads_enabled": false,
        "presigned_upload_run_id_supported": false,
        "presigned_upload_model_id_supported": false,
        "features_enabled": {"gateway": false},
        "kaizen_version": env!("CARGO_PKG_VERSION"),
        "backend": s.services.store.backend(),
    })))
}

#[derive(Deserialize)]
struct Create {
    #[serde(default, deserialize_with = "de::opt_string")]
    experiment_id: Option<String>,
    #[serde(default, deserialize_with = "de::opt_string")]
    name: Option<String>,
    #[serde(default, deserialize_with = "de::opt_string")]
    model_type: Option<String>,
    #[serde(default, deserialize_with = "de::opt_string")]
    source_run_id: Option<String>,
    #[serde(default)]
    params: Vec<WireTag>,
    #[serde(default)]
    tags: Vec<WireTag>,
}

async fn create(State(s): State<AppState>, Req(req): Req<Create>) -> ApiResult {
    let experiment_id = req.experiment_id.filter(|e| !e.is_empty()).ok_or_else(|| {
        ApiError::invalid("Missing value for required parameter 'experiment_id'.")
    })?;
    let model = s
        .services
        .tracking
        .create_logged_model(
            &experiment_id,
            req.name,
            req.model_type,
            req.source_run_id.filter(|r| !r.is_empty()),
            into_tags(req.tags, "tags")?,
            into_tags(req.params, "params")?,
        )
        .await?;
    Ok(Json(json!({"model": to_json::logged_model(&model)})))
}

async fn get_model(State(s): State<AppState>, Path(model_id): Path<String>) -> ApiResult {
    let model = s.services.tracking.get_logged_model(&model_id).await?;
    Ok(Json(json!({"model": to_json::logged_model(&model)})))
}

#[derive(Deserialize)]
struct Finalize {
    #[serde(default, deserialize_with = "de::opt_string")]
    status: Option<String>,
}

async fn finalize(
    State(s): State<AppState>,
    Path(model_id): Path<String>,
    Req(req): Req<Finalize>,
) -> ApiResult {
    let status = req
        .status
        .ok_or_else(|| ApiError::invalid("Missing value for required parameter 'status'."))?;
    let status = LoggedModelStatus::parse(&status)?;
    let model = s
        .services
        .tracking
        .finalize_logged_model(&model_id, status)
        .await?;
    Ok(Json(json!({"model": to_json::logged_model(&model)})))
}

async fn delete_model(State(s): State<AppState>, Path(model_id): Path<String>) -> ApiResult {
    s.services.tracking.delete_logged_model(&model_id).await?;
    empty()
}

#[derive(Deserialize)]
struct Tags {
    #[serde(default)]
    tags: Vec<WireTag>,
}

async fn set_tags(
    State(s): State<AppState>,
    Path(model_id): Path<String>,
    Req(req): Req<Tags>,
) -> ApiResult {
    s.services
        .tracking
        .set_logged_model_tags(&model_id, &into_tags(req.tags, "tags")?)
        .await?;
    empty()
}

async fn delete_tag(
    State(s): State<AppState>,
    Path((model_id, key)): Path<(String, String)>,
) -> ApiResult {
    s.services
        .tracking
        .delete_logged_model_tag(&model_id, &key)
        .await?;
    empty()
}

#[derive(Deserialize)]
struct Params {
    #[serde(default)]
    params: Vec<WireTag>,
}

async fn log_params(
    State(s): State<AppState>,
    Path(model_id): Path<String>,
    Req(req): Req<Params>,
) -> ApiResult {
    s.services
        .tracking
        .log_logged_model_params(&model_id, &into_tags(req.params, "params")?)
        .await?;
    empty()
}

#[derive(Deserialize)]
struct OrderBy {
    #[serde(default, deserialize_with = "de::opt_string")]
    field_name: Option<String>,
    #[serde(default, deserialize_with = "de::opt_bool")]
    ascending: Option<bool>,
}

#[derive(Deserialize)]
struct Search {
    #[serde(default, deserialize_with = "de::string_list")]
    experiment_ids: Vec<String>,
    #[serde(default, deserialize_with = "de::opt_string")]
    filter: Option<String>,
    #[serde(default, deserialize_with = "de::opt_i64")]
    max_results: Option<i64>,
    #[serde(default)]
    order_by: Vec<OrderBy>,
    #[serde(default, deserialize_with = "de::opt_string")]
    page_token: Option<String>,
}

async fn search(State(s): State<AppState>, Req(req): Req<Search>) -> ApiResult {
    let order_by: Vec<String> = req
        .order_by
        .into_iter()
        .filter_map(|o| {
            let field = o.field_name?;
            Some(format!(
                "{field} {}",
                if o.ascending.unwrap_or(true) {
                    "ASC"
                } else {
                    "DESC"
                }
            ))
        })
        .collect();
    let page = s
        .services
        .tracking
        .search_logged_models(
            &req.experiment_ids,
            req.filter.as_deref().unwrap_or(""),
            &order_by,
            req.max_results,
            req.page_token.as_deref(),
        )
        .await?;
    let body = json!({"models": page.items.iter().map(to_json::logged_model).collect::<Vec<_>>()});
    Ok(Json(to_json::with_page_token(body, page.next_page_token)))
}

#[derive(Deserialize)]
struct ListArtifacts {
    #[serde(default, deserialize_with = "de::opt_string")]
    artifact_directory_path: Option<String>,
}

async fn list_artifacts(
    State(s): State<AppState>,
    Path(model_id): Path<String>,
    Req(req): Req<ListArtifacts>,
) -> ApiResult {
    let model = s.services.tracking.get_logged_model(&model_id).await?;
    let files = super::artifacts::list_under(
        &s,
        &model.artifact_location,
        req.artifact_directory_path.as_deref().unwrap_or(""),
    )
    .await?;
    Ok(Json(json!({"files": files})))
}
