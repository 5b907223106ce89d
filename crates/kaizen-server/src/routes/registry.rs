//! The model registry: registered models, versions, tags, aliases, stages, and kaizen's audit log.

use axum::extract::State;
use axum::routing::{delete, get, patch, post};
use axum::{Extension, Json, Router};
use kaizen_tracking::NewModelVersion;
use kaizen_wire::{de, to_json};
use serde::Deserialize;
use serde_json::json;

use super::tracking::{WireTag, into_tags};
use super::{ApiResult, actor, empty, mlflow, required};
use crate::extract::Req;
use crate::{AppState, Identity};

pub fn routes(r: Router<AppState>) -> Router<AppState> {
    let r = mlflow(r, "2.0", "/registered-models/create", post(create_model));
    let r = mlflow(r, "2.0", "/registered-models/rename", post(rename_model));
    let r = mlflow(r, "2.0", "/registered-models/update", patch(update_model));
    let r = mlflow(r, "2.0", "/registered-models/delete", delete(delete_model));
    let r = mlflow(r, "2.0", "/registered-models/get", get(get_model));
    let r = mlflow(r, "2.0", "/registered-models/search", get(search_models));
    let r = mlflow(
        r,
        "2.0",
        "/registered-models/get-latest-versions",
        get(latest_versions).post(latest_versions),
    );
    let r = mlflow(r, "2.0", "/registered-models/set-tag", post(set_model_tag));
    let r = mlflow(
        r,
        "2.0",
        "/registered-models/delete-tag",
        delete(delete_model_tag),
    );
    let r = mlflow(
        r,
        "2.0",
        "/registered-models/alias",
        post(set_alias).delete(delete_alias).get(get_by_alias),
    );
    let r = mlflow(r, "2.0", "/model-versions/create", post(create_version));
    let r = mlflow(r, "2.0", "/model-versions/update", patch(update_version));
    let r = mlflow(r, "2.0", "/model-versions/delete", delete(delete_version));
    let r = mlflow(r, "2.0", "/model-versions/get", get(get_version));
    let r = mlflow(r, "2.0", "/model-versions/search", get(search_versions));
    let r = mlflow(
        r,
        "2.0",
        "/model-versions/get-download-uri",
        get(download_uri),
    );
    let r = mlflow(
        r,
        "2.0",
        "/model-versions/transition-stage",
        post(transition_stage),
    );
    let r = mlflow(r, "2.0", "/model-versions/set-tag", post(set_version_tag));
    let r = mlflow(
        r,
        "2.0",
        "/model-versions/delete-tag",
        delete(delete_version_tag),
    );
    r.route("/api/2.0/kaizen/registered-models/history", get(history))
        .route(
            "/ajax-api/2.0/kaizen/registered-models/history",
            get(history),
        )
}

type Caller = Option<Extension<Identity>>;

fn caller(c: &Caller, reason: Option<String>) -> kaizen_tracking::Actor {
    actor(c.as_ref().map(|e| &e.0), reason)
}

/// The fields most registry requests carry. `reason` is kaizen's: it goes to the audit log.
#[derive(Deserialize)]
struct ModelReq {
    #[serde(default, deserialize_with = "de::opt_string")]
    name: Option<String>,
    #[serde(default, deserialize_with = "de::opt_string")]
    new_name: Option<String>,
    #[serde(default, deserialize_with = "de::opt_string")]
    description: Option<String>,
    #[serde(default, deserialize_with = "de::opt_string")]
    version: Option<String>,
    #[serde(default, deserialize_with = "de::opt_string")]
    key: Option<String>,
    #[serde(default, deserialize_with = "de::opt_string")]
    value: Option<String>,
    #[serde(default, deserialize_with = "de::opt_string")]
    alias: Option<String>,
    #[serde(default, deserialize_with = "de::opt_string")]
    stage: Option<String>,
    #[serde(default, deserialize_with = "de::opt_bool")]
    archive_existing_versions: Option<bool>,
    #[serde(default, deserialize_with = "de::string_list")]
    stages: Vec<String>,
    #[serde(default)]
    tags: Vec<WireTag>,
    #[serde(default, deserialize_with = "de::opt_string")]
    reason: Option<String>,
}

async fn create_model(State(s): State<AppState>, c: Caller, Req(req): Req<ModelReq>) -> ApiResult {
    let name = required(req.name, "name")?;
    let tags = into_tags(req.tags, "tags")?;
    let m = s
        .services
        .registry
        .create_registered_model(
            &name,
            req.description.as_deref(),
            &tags,
            &caller(&c, req.reason),
        )
        .await?;
    Ok(Json(
        json!({"registered_model": to_json::registered_model(&m)}),
    ))
}

async fn rename_model(State(s): State<AppState>, c: Caller, Req(req): Req<ModelReq>) -> ApiResult {
    let name = required(req.name, "name")?;
    let new_name = required(req.new_name, "new_name")?;
    let m = s
        .services
        .registry
        .rename_registered_model(&name, &new_name, &caller(&c, req.reason))
        .await?;
    Ok(Json(
        json!({"registered_model": to_json::registered_model(&m)}),
    ))
}

async fn update_model(State(s): State<AppState>, Req(req): Req<ModelReq>) -> ApiResult {
    let name = required(req.name, "name")?;
    let m = s
        .services
        .registry
        .update_registered_model(&name, req.description.as_deref())
        .await?;
    Ok(Json(
        json!({"registered_model": to_json::registered_model(&m)}),
    ))
}

async fn delete_model(State(s): State<AppState>, c: Caller, Req(req): Req<ModelReq>) -> ApiResult {
    let name = required(req.name, "name")?;
    s.services
        .registry
        .delete_registered_model(&name, &caller(&c, req.reason))
        .await?;
    empty()
}

async fn get_model(State(s): State<AppState>, Req(req): Req<ModelReq>) -> ApiResult {
    let name = required(req.name, "name")?;
    let m = s.services.registry.get_registered_model(&name).await?;
    Ok(Json(
        json!({"registered_model": to_json::registered_model(&m)}),
    ))
}

#[derive(Deserialize)]
struct SearchReq {
    #[serde(default, deserialize_with = "de::opt_string")]
    filter: Option<String>,
    #[serde(default, deserialize_with = "de::opt_i64")]
    max_results: Option<i64>,
    #[serde(default, deserialize_with = "de::string_list")]
    order_by: Vec<String>,
    #[serde(default, deserialize_with = "de::opt_string")]
    page_token: Option<String>,
}

async fn search_models(State(s): State<AppState>, Req(req): Req<SearchReq>) -> ApiResult {
    let page = s
        .services
        .registry
        .search_registered_models(
            req.filter.as_deref().unwrap_or(""),
            &req.order_by,
            req.max_results,
            req.page_token.as_deref(),
        )
        .await?;
    let body = json!({"registered_models": page.items.iter().map(to_json::registered_model).collect::<Vec<_>>()});
    Ok(Json(to_json::with_page_token(body, page.next_page_token)))
}

async fn latest_versions(State(s): State<AppState>, Req(req): Req<ModelReq>) -> ApiResult {
    let name = required(req.name, "name")?;
    let versions = s
        .services
        .registry
        .get_latest_versions(&name, &req.stages)
        .await?;
    Ok(Json(
        json!({"model_versions": versions.iter().map(to_json::model_version).collect::<Vec<_>>()}),
    ))
}

async fn set_model_tag(State(s): State<AppState>, Req(req): Req<ModelReq>) -> ApiResult {
    let name = required(req.name, "name")?;
    let key = required(req.key, "key")?;
    s.services
        .registry
        .set_registered_model_tag(
            &name,
            &kaizen_core::Tag::new(key, req.value.unwrap_or_default()),
        )
        .await?;
    empty()
}

async fn delete_model_tag(State(s): State<AppState>, Req(req): Req<ModelReq>) -> ApiResult {
    let name = required(req.name, "name")?;
    let key = required(req.key, "key")?;
    s.services
        .registry
        .delete_registered_model_tag(&name, &key)
        .await?;
    empty()
}

async fn set_alias(State(s): State<AppState>, c: Caller, Req(req): Req<ModelReq>) -> ApiResult {
    let name = required(req.name, "name")?;
    let alias = required(req.alias, "alias")?;
    let version = required(req.version, "version")?;
    s.services
        .registry
        .set_alias(&name, &alias, &version, &caller(&c, req.reason))
        .await?;
    empty()
}

async fn delete_alias(State(s): State<AppState>, c: Caller, Req(req): Req<ModelReq>) -> ApiResult {
    let name = required(req.name, "name")?;
    let alias = required(req.alias, "alias")?;
    s.services
        .registry
        .delete_alias(&name, &alias, &caller(&c, req.reason))
        .await?;
    empty()
}

async fn get_by_alias(State(s): State<AppState>, Req(req): Req<ModelReq>) -> ApiResult {
    let name = required(req.name, "name")?;
    let alias = required(req.alias, "alias")?;
    let v = s
        .services
        .registry
        .get_version_by_alias(&name, &alias)
        .await?;
    Ok(Json(json!({"model_version": to_json::model_version(&v)})))
}

#[derive(Deserialize)]
struct CreateVersion {
    #[serde(default, deserialize_with = "de::opt_string")]
    name: Option<String>,
    #[serde(default, deserialize_with = "de::opt_string")]
    source: Option<String>,
    #[serde(default, deserialize_with = "de::opt_string")]
    run_id: Option<String>,
    #[serde(default, deserialize_with = "de::opt_string")]
    run_link: Option<String>,
    #[serde(default, deserialize_with = "de::opt_string")]
    description: Option<String>,
    #[serde(default, deserialize_with = "de::opt_string")]
    model_id: Option<String>,
    #[serde(default)]
    tags: Vec<WireTag>,
    #[serde(default, deserialize_with = "de::opt_string")]
    reason: Option<String>,
}

async fn create_version(
    State(s): State<AppState>,
    c: Caller,
    Req(req): Req<CreateVersion>,
) -> ApiResult {
    let name = required(req.name, "name")?;
    let source = required(req.source, "source")?;
    let run_id = req.run_id.filter(|r| !r.is_empty());
    if let Some(run_id) = &run_id {
        // MLflow refuses a version whose run does not exist.
        s.services.tracking.get_run(run_id).await?;
    }
    let user = c.as_ref().and_then(|e| e.user.clone());
    let v = s
        .services
        .registry
        .create_model_version(
            NewModelVersion {
                name,
                source,
                run_id,
                run_link: req.run_link.filter(|l| !l.is_empty()),
                description: req.description,
                user_id: user,
                model_id: req.model_id.filter(|m| !m.is_empty()),
                tags: into_tags(req.tags, "tags")?,
            },
            &caller(&c, req.reason),
        )
        .await?;
    Ok(Json(json!({"model_version": to_json::model_version(&v)})))
}

async fn update_version(State(s): State<AppState>, Req(req): Req<ModelReq>) -> ApiResult {
    let name = required(req.name, "name")?;
    let version = required(req.version, "version")?;
    let v = s
        .services
        .registry
        .update_model_version(&name, &version, req.description.as_deref())
        .await?;
    Ok(Json(json!({"model_version": to_json::model_version(&v)})))
}

async fn delete_version(
    State(s): State<AppState>,
    c: Caller,
    Req(req): Req<ModelReq>,
) -> ApiResult {
    let name = required(req.name, "name")?;
    let version = required(req.version, "version")?;
    s.services
        .registry
        .delete_model_version(&name, &version, &caller(&c, req.reason))
        .await?;
    empty()
}

async fn get_version(State(s): State<AppState>, Req(req): Req<ModelReq>) -> ApiResult {
    let name = required(req.name, "name")?;
    let version = required(req.version, "version")?;
    let v = s
        .services
        .registry
        .get_model_version(&name, &version)
        .await?;
    Ok(Json(json!({"model_version": to_json::model_version(&v)})))
}

async fn search_versions(State(s): State<AppState>, Req(req): Req<SearchReq>) -> ApiResult {
    let page = s
        .services
        .registry
        .search_model_versions(
            req.filter.as_deref().unwrap_or(""),
            &req.order_by,
            req.max_results,
            req.page_token.as_deref(),
        )
        .await?;
    let body = json!({"model_versions": page.items.iter().map(to_json::model_version).collect::<Vec<_>>()});
    Ok(Json(to_json::with_page_token(body, page.next_page_token)))
}

/// Resolves a version's source to the location of its files: `runs:/<id>/<path>` becomes the run's
/// artifact URI plus the path, `models:/<model_id>` the logged model's location.
async fn download_uri(State(s): State<AppState>, Req(req): Req<ModelReq>) -> ApiResult {
    let name = required(req.name, "name")?;
    let version = required(req.version, "version")?;
    let v = s
        .services
        .registry
        .get_model_version(&name, &version)
        .await?;
    let uri = if let Some(rest) = v.source.strip_prefix("runs:/") {
        let (run_id, path) = rest.split_once('/').unwrap_or((rest, ""));
        let run = s.services.tracking.get_run(run_id).await?;
        if path.is_empty() {
            run.info.artifact_uri
        } else {
            format!("{}/{path}", run.info.artifact_uri)
        }
    } else if let Some(model_id) = v
        .source
        .strip_prefix("models:/")
        .filter(|m| m.starts_with("m-"))
    {
        s.services
            .tracking
            .get_logged_model(model_id)
            .await?
            .artifact_location
    } else {
        v.source
    };
    Ok(Json(json!({"artifact_uri": uri})))
}

async fn transition_stage(
    State(s): State<AppState>,
    c: Caller,
    Req(req): Req<ModelReq>,
) -> ApiResult {
    let name = required(req.name, "name")?;
    let version = required(req.version, "version")?;
    let stage = required(req.stage, "stage")?;
    let v = s
        .services
        .registry
        .transition_stage(
            &name,
            &version,
            &stage,
            req.archive_existing_versions.unwrap_or(false),
            &caller(&c, req.reason),
        )
        .await?;
    Ok(Json(json!({"model_version": to_json::model_version(&v)})))
}

async fn set_version_tag(State(s): State<AppState>, Req(req): Req<ModelReq>) -> ApiResult {
    let name = required(req.name, "name")?;
    let version = required(req.version, "version")?;
    let key = required(req.key, "key")?;
    s.services
        .registry
        .set_model_version_tag(
            &name,
            &version,
            &kaizen_core::Tag::new(key, req.value.unwrap_or_default()),
        )
        .await?;
    empty()
}

async fn delete_version_tag(State(s): State<AppState>, Req(req): Req<ModelReq>) -> ApiResult {
    let name = required(req.name, "name")?;
    let version = required(req.version, "version")?;
    let key = required(req.key, "key")?;
    s.services
        .registry
        .delete_model_version_tag(&name, &version, &key)
        .await?;
    empty()
}

async fn history(State(s): State<AppState>, Req(req): Req<ModelReq>) -> ApiResult {
    let name = required(req.name, "name")?;
    let entries = s.services.registry.audit_log(&name).await?;
    Ok(Json(
        json!({"entries": entries.iter().map(to_json::audit_entry).collect::<Vec<_>>()}),
    ))
}
