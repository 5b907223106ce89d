//! The `mlflow-artifacts` proxy: upload, download, list, delete and multipart upload, plus the
//! tracking API's `artifacts/list` for a run.

use axum::body::Body;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use futures::StreamExt;
use kaizen_artifacts::ArtifactPath;
use kaizen_core::Error;
use kaizen_wire::de;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiResult, empty, mlflow};
use crate::AppState;
use crate::error::ApiError;
use crate::extract::Req;

/// Where multipart parts wait until the upload completes. Not reachable through client paths,
/// which cannot start with this prefix (see `checked`).
const MPU_STAGING: &str = "_kaizen_mpu";

pub fn routes(r: Router<AppState>) -> Router<AppState> {
    let mut r = mlflow(r, "2.0", "/artifacts/list", get(list_run_artifacts));
    for prefix in [
        "/api/2.0/mlflow-artifacts",
        "/ajax-api/2.0/mlflow-artifacts",
    ] {
        r = r
            .route(&format!("{prefix}/artifacts"), get(list_artifacts))
            .route(
                &format!("{prefix}/artifacts/{{*path}}"),
                get(download).put(upload).delete(delete_artifact),
            )
            .route(&format!("{prefix}/mpu/create/{{*path}}"), post(mpu_create))
            .route(
                &format!("{prefix}/mpu/upload/{{*path}}"),
                put(mpu_upload_part),
            )
            .route(
                &format!("{prefix}/mpu/complete/{{*path}}"),
                post(mpu_complete),
            )
            .route(&format!("{prefix}/mpu/abort/{{*path}}"), post(mpu_abort));
    }
    r
}

fn checked(path: &str) -> Result<ArtifactPath, ApiError> {
    let p = ArtifactPath::parse(path)?;
    if p.as_str() == MPU_STAGING || p.as_str().starts_with(&format!("{MPU_STAGING}/")) {
        return Err(ApiError::invalid(format!(
            "Invalid artifact path '{path}': reserved prefix"
        )));
    }
    Ok(p)
}

fn file_json(name: &str, is_dir: bool, size: Option<u64>) -> Value {
    let mut v = json!({"path": name, "is_dir": is_dir});
    if let Some(size) = size.filter(|_| !is_dir) {
        v["file_size"] = json!(size);
    }
    v
}

#[derive(Deserialize)]
struct ListQuery {
    #[serde(default, deserialize_with = "de::opt_string")]
    path: Option<String>,
}

/// `GET /mlflow-artifacts/artifacts?path=dir`: the children of `dir`, by base name.
async fn list_artifacts(State(s): State<AppState>, Req(req): Req<ListQuery>) -> ApiResult {
    let dir = checked(req.path.as_deref().unwrap_or(""))?;
    let files: Vec<Value> = s
        .services
        .artifacts
        .list(&dir)
        .await?
        .into_iter()
        .filter(|f| !(dir.is_root() && f.path == MPU_STAGING))
        .map(|f| {
            let name = f.path.rsplit('/').next().unwrap_or(&f.path).to_string();
            file_json(&name, f.is_dir, f.file_size)
        })
        .collect();
    if files.is_empty() {
        return empty();
    }
    Ok(Json(json!({"files": files})))
}

/// Lists `sub` under an artifact location, with paths relative to the location, as the
/// tracking API's `artifacts/list` answers.
pub(crate) async fn list_under(
    s: &AppState,
    location: &str,
    sub: &str,
) -> Result<Vec<Value>, ApiError> {
    let base = kaizen_tracking::proxy_path(location).ok_or_else(|| {
        ApiError::invalid(format!(
            "Artifacts at '{location}' are not served by this server"
        ))
    })?;
    let base = checked(base)?;
    let sub_path = ArtifactPath::parse(sub)?;
    let dir = if sub_path.is_root() {
        base.clone()
    } else {
        base.join(sub_path.as_str())?
    };
    let prefix_len = if base.is_root() {
        0
    } else {
        base.as_str().len() + 1
    };
    Ok(s.services
        .artifacts
        .list(&dir)
        .await?
        .into_iter()
        .map(|f| {
            file_json(
                &f.path[prefix_len.min(f.path.len())..],
                f.is_dir,
                f.file_size,
            )
        })
        .collect())
}

#[derive(Deserialize)]
struct RunListQuery {
    #[serde(default, deserialize_with = "de::opt_string")]
    run_id: Option<String>,
    #[serde(default, deserialize_with = "de::opt_string")]
    run_uuid: Option<String>,
    #[serde(default, deserialize_with = "de::opt_string")]
    path: Option<String>,
}

async fn list_run_artifacts(State(s): State<AppState>, Req(req): Req<RunListQuery>) -> ApiResult {
    let run_id = req
        .run_id
        .or(req.run_uuid)
        .filter(|r| !r.is_empty())
        .ok_or_else(|| ApiError::invalid("Missing value for required parameter 'run_id'."))?;
    let run = s.services.tracking.get_run(&run_id).await?;
    let files = list_under(
        &s,
        &run.info.artifact_uri,
        req.path.as_deref().unwrap_or(""),
    )
    .await?;
    Ok(Json(
        json!({"root_uri": run.info.artifact_uri, "files": files}),
    ))
}

async fn download(
    State(s): State<AppState>,
    Path(path): Path<String>,
) -> Result<Response, ApiError> {
    let path = checked(&path)?;
    let (size, stream) = s.services.artifacts.get(&path).await?;
    let mime = guess_mime(path.as_str());
    let name = path
        .as_str()
        .rsplit('/')
        .next()
        .unwrap_or("artifact")
        .replace('"', "");
    Ok((
        [
            (header::CONTENT_TYPE, mime.to_string()),
            (header::CONTENT_LENGTH, size.to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        Body::from_stream(stream.map(|r| r.map_err(std::io::Error::other))),
    )
        .into_response())
}

fn guess_mime(path: &str) -> &'static str {
    match path.rsplit('.').next().unwrap_or("") {
        "json" => "application/json",
        "txt" | "log" | "md" | "yaml" | "yml" | "csv" | "py" | "MLmodel" => "text/plain",
        "html" => "text/html",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "svg" => "image/svg+xml",
        _ => "application/octet-stream",
    }
}

/// Streams the request body into the store; the object appears only when the body is complete.
async fn stream_into(s: &AppState, path: &ArtifactPath, req: Request) -> Result<u64, ApiError> {
    let mut upload = s.services.artifacts.put_multipart(path).await?;
    let mut body = req.into_body().into_data_stream();
    let mut total = 0u64;
    while let Some(chunk) = body.next().await {
        match chunk {
            Ok(bytes) => {
                total += bytes.len() as u64;
                upload.write(bytes).await?;
            }
            Err(e) => {
                let _ = upload.abort().await;
                return Err(ApiError::invalid(format!(
                    "Upload of '{}' was interrupted: {e}",
                    path.as_str()
                )));
            }
        }
    }
    upload.finish().await?;
    Ok(total)
}

async fn upload(State(s): State<AppState>, Path(path): Path<String>, req: Request) -> ApiResult {
    let path = checked(&path)?;
    if path.is_root() {
        return Err(ApiError::invalid("An artifact upload must name a file"));
    }
    stream_into(&s, &path, req).await?;
    empty()
}

async fn delete_artifact(State(s): State<AppState>, Path(path): Path<String>) -> ApiResult {
    let path = checked(&path)?;
    s.services.artifacts.delete(&path).await?;
    empty()
}

#[derive(Deserialize)]
struct MpuCreate {
    #[serde(default, deserialize_with = "de::opt_string")]
    path: Option<String>,
    #[serde(default, deserialize_with = "de::opt_i64")]
    num_parts: Option<i64>,
}

/// The final object of a multipart upload: the URL's directory plus the file's base name.
fn mpu_target(dir: &str, local_path: Option<&str>) -> Result<ArtifactPath, ApiError> {
    let file = local_path
        .and_then(|p| p.rsplit(['/', '\\']).next())
        .ok_or_else(|| ApiError::invalid("Missing value for required parameter 'path'."))?;
    if file.is_empty() || file == "." || file == ".." {
        return Err(ApiError::invalid(format!(
            "Invalid multipart upload path '{}': it must end in a file name",
            local_path.unwrap_or_default()
        )));
    }
    let dir = checked(dir)?;
    Ok(if dir.is_root() {
        checked(file)?
    } else {
        dir.join(file)?
    })
}

fn valid_upload_id(id: &str) -> Result<(), ApiError> {
    if id.len() == 32 && id.chars().all(|c| c.is_ascii_hexdigit()) {
        Ok(())
    } else {
        Err(ApiError::invalid(format!("Invalid upload_id '{id}'")))
    }
}

async fn mpu_create(
    headers: HeaderMap,
    Path(dir): Path<String>,
    Req(req): Req<MpuCreate>,
) -> ApiResult {
    let target = mpu_target(&dir, req.path.as_deref())?;
    let num_parts = req.num_parts.unwrap_or(1);
    if !(1..=10_000).contains(&num_parts) {
        return Err(ApiError::invalid(format!(
            "num_parts must be between 1 and 10000, got {num_parts}"
        )));
    }
    let upload_id = kaizen_core::ids::new_run_id();
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .ok_or_else(|| ApiError::invalid("A Host header is required for multipart uploads"))?;
    // Behind a TLS-terminating proxy the part URLs must use the scheme the client used.
    let scheme = headers
        .get("x-forwarded-proto")
        .and_then(|h| h.to_str().ok())
        .filter(|p| *p == "https" || *p == "http")
        .unwrap_or("http");
    let encoded_dir: String = url::form_urlencoded::byte_serialize(dir.as_bytes())
        .collect::<String>()
        .replace("%2F", "/");
    let file = target.as_str().rsplit('/').next().unwrap_or("");
    let credentials: Vec<Value> = (1..=num_parts)
        .map(|n| {
            json!({
                "url": format!(
                    "{scheme}://{host}/api/2.0/mlflow-artifacts/mpu/upload/{encoded_dir}?upload_id={upload_id}&part_number={n}&file={}",
                    url::form_urlencoded::byte_serialize(file.as_bytes()).collect::<String>()
                ),
                "part_number": n,
                "headers": {},
            })
        })
        .collect();
    Ok(Json(
        json!({"upload_id": upload_id, "credentials": credentials}),
    ))
}

#[derive(Deserialize)]
struct PartQuery {
    upload_id: String,
    part_number: i64,
}

async fn mpu_upload_part(
    State(s): State<AppState>,
    Path(_dir): Path<String>,
    Query(q): Query<PartQuery>,
    req: Request,
) -> Result<Response, ApiError> {
    valid_upload_id(&q.upload_id)?;
    if !(1..=10_000).contains(&q.part_number) {
        return Err(ApiError::invalid(format!(
            "Invalid part_number {}",
            q.part_number
        )));
    }
    let part = ArtifactPath::parse(&format!(
        "{MPU_STAGING}/{}/{:05}",
        q.upload_id, q.part_number
    ))?;
    let size = stream_into(&s, &part, req).await?;
    let etag = format!("\"{}-{size}\"", q.part_number);
    Ok((StatusCode::OK, [(header::ETAG, etag)], Json(json!({}))).into_response())
}

#[derive(Deserialize)]
struct MpuPart {
    #[serde(default, deserialize_with = "de::opt_i64")]
    part_number: Option<i64>,
}

#[derive(Deserialize)]
struct MpuComplete {
    #[serde(default, deserialize_with = "de::opt_string")]
    path: Option<String>,
    #[serde(default, deserialize_with = "de::opt_string")]
    upload_id: Option<String>,
    #[serde(default)]
    parts: Vec<MpuPart>,
}

async fn mpu_complete(
    State(s): State<AppState>,
    Path(dir): Path<String>,
    Req(req): Req<MpuComplete>,
) -> ApiResult {
    let target = mpu_target(&dir, req.path.as_deref())?;
    let upload_id = req.upload_id.unwrap_or_default();
    valid_upload_id(&upload_id)?;
    let mut numbers: Vec<i64> = req.parts.iter().filter_map(|p| p.part_number).collect();
    numbers.sort_unstable();
    numbers.dedup();
    if numbers.is_empty() {
        return Err(ApiError::invalid(
            "Missing value for required parameter 'parts'.",
        ));
    }
    let store = &s.services.artifacts;
    let mut out = store.put_multipart(&target).await?;
    for n in &numbers {
        let part = ArtifactPath::parse(&format!("{MPU_STAGING}/{upload_id}/{n:05}"))?;
        let (_, mut stream) = match store.get(&part).await {
            Ok(x) => x,
            Err(e) if e.is_not_found() => {
                let _ = out.abort().await;
                return Err(Error::invalid(format!(
                    "Part {n} of upload {upload_id} was never uploaded"
                ))
                .into());
            }
            Err(e) => return Err(e.into()),
        };
        while let Some(chunk) = stream.next().await {
            out.write(chunk?).await?;
        }
    }
    out.finish().await?;
    let _ = store
        .delete(&ArtifactPath::parse(&format!("{MPU_STAGING}/{upload_id}"))?)
        .await;
    empty()
}

#[derive(Deserialize)]
struct MpuAbort {
    #[serde(default, deserialize_with = "de::opt_string")]
    upload_id: Option<String>,
}

async fn mpu_abort(
    State(s): State<AppState>,
    Path(_dir): Path<String>,
    Req(req): Req<MpuAbort>,
) -> ApiResult {
    let upload_id = req.upload_id.unwrap_or_default();
    valid_upload_id(&upload_id)?;
    match s
        .services
        .artifacts
        .delete(&ArtifactPath::parse(&format!("{MPU_STAGING}/{upload_id}"))?)
        .await
    {
        Ok(()) => empty(),
        Err(e) if e.is_not_found() => empty(),
        Err(e) => Err(e.into()),
    }
}
