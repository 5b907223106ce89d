//! The HTTP client: MLflow's REST API against a kaizen or MLflow server, spoken as the mlflow
//! Python client speaks it.

use std::time::Duration;

use async_trait::async_trait;
use kaizen_core::{
    AuditEntry, Error, ErrorKind, Experiment, ModelVersion, Page, RegisteredModel, Result, Run,
    ViewType,
};
use kaizen_wire::from_json;
use reqwest::{Method, StatusCode};
use serde_json::{Map, Value, json};

use crate::{RunSearch, TrackingClient};

const MLFLOW: &str = "/api/2.0/mlflow";
const KAIZEN_HISTORY: &str = "/api/2.0/kaizen/registered-models/history";
/// The header kaizen's server reads the acting user from, for its audit log.
const USER_HEADER: &str = "X-Kaizen-User";

/// Credentials sent with every request, as the mlflow client sends them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Auth {
    #[default]
    None,
    /// HTTP basic auth (`MLFLOW_TRACKING_USERNAME` / `MLFLOW_TRACKING_PASSWORD`).
    Basic { user: String, password: String },
    /// A bearer token (`MLFLOW_TRACKING_TOKEN`).
    Bearer(String),
}

/// A client of a tracking server at a base URL such as `http://127.0.0.1:5000`.
#[derive(Debug, Clone)]
pub struct HttpClient {
    /// The base URL without a trailing slash; endpoints are appended to it.
    base: String,
    http: reqwest::Client,
    user: Option<String>,
    auth: Auth,
}

/// A failed call, with whether the server lacked the endpoint altogether.
struct Failure {
    error: Error,
    endpoint_missing: bool,
}

impl From<Failure> for Error {
    fn from(f: Failure) -> Self {
        f.error
    }
}

impl HttpClient {
    /// A client of the server at `base_url` (`http://` or `https://`).
    pub fn new(base_url: &str) -> Result<Self> {
        let url = url::Url::parse(base_url.trim())
            .map_err(|e| Error::invalid(format!("Invalid tracking URI '{base_url}': {e}")))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(Error::invalid(format!(
                "Invalid tracking URI '{base_url}': expected http://host:port or https://host"
            )));
        }
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(120))
            .user_agent(concat!("kaizen/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::internal("cannot build the HTTP client", e))?;
        Ok(Self {
            base: url.as_str().trim_end_matches('/').to_string(),
            http,
            user: None,
            auth: Auth::None,
        })
    }

    /// The user kaizen's server records in its audit log (sent as `X-Kaizen-User`).
    pub fn with_user(mut self, user: Option<String>) -> Self {
        self.user = user.filter(|u| !u.is_empty());
        self
    }

    pub fn with_auth(mut self, auth: Auth) -> Self {
        self.auth = auth;
        self
    }

    /// The base URL, without a trailing slash.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<Value>,
    ) -> std::result::Result<Value, Failure> {
        let url = self.url(path);
        let mut req = self.http.request(method.clone(), &url);
        if !query.is_empty() {
            req = req.query(query);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        if let Some(user) = &self.user {
            req = req.header(USER_HEADER, user);
        }
        req = match &self.auth {
            Auth::None => req,
            Auth::Basic { user, password } => req.basic_auth(user, Some(password)),
            Auth::Bearer(token) => req.bearer_auth(token),
        };
        let fail = |error: Error| Failure {
            error,
            endpoint_missing: false,
        };
        let resp = req
            .send()
            .await
            .map_err(|e| fail(self.transport_error(e)))?;
        let status = resp.status();
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| fail(self.transport_error(e)))?;
        if status.is_success() {
            if bytes.iter().all(u8::is_ascii_whitespace) {
                return Ok(Value::Object(Map::new()));
            }
            return serde_json::from_slice::<Value>(&bytes)
                .ok()
                .filter(Value::is_object)
                .ok_or_else(|| {
                    fail(Error::invalid(format!(
                        "The server at {} did not answer {method} {path} with MLflow JSON; is it a kaizen or MLflow tracking server?",
                        self.base
                    )))
                });
        }
        Err(error_from_response(
            status, &bytes, &method, path, &self.base,
        ))
    }

    async fn get(&self, path: &str, query: &[(&str, &str)]) -> Result<Value> {
        Ok(self.call(Method::GET, path, query, None).await?)
    }

    async fn send(&self, method: Method, path: &str, body: Value) -> Result<Value> {
        Ok(self.call(method, path, &[], Some(body)).await?)
    }

    fn transport_error(&self, e: reqwest::Error) -> Error {
        let what = if e.is_timeout() {
            "timed out talking to"
        } else if e.is_connect() {
            "cannot connect to"
        } else {
            "cannot talk to"
        };
        Error::internal(format!("{what} the tracking server at {}", self.base), e)
    }
}

/// Maps an MLflow error answer (`{"error_code": ..., "message": ...}`) back to a domain error.
fn error_from_response(
    status: StatusCode,
    body: &[u8],
    method: &Method,
    path: &str,
    base: &str,
) -> Failure {
    let parsed: Option<(String, String)> =
        serde_json::from_slice::<Value>(body).ok().and_then(|v| {
            let code = v.get("error_code")?.as_str()?.to_string();
            let message = v
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            Some((code, message))
        });
    let Some((code, message)) = parsed else {
        // Not an MLflow answer: a proxy, another web server, or an endpoint this server lacks.
        let endpoint_missing = status == StatusCode::NOT_FOUND;
        let kind = match status.as_u16() {
            404 => ErrorKind::NotFound,
            413 => ErrorKind::TooLarge,
            400..=499 => ErrorKind::InvalidParameter,
            _ => ErrorKind::Internal,
        };
        let snippet: String = String::from_utf8_lossy(body)
            .chars()
            .take(200)
            .collect::<String>()
            .trim()
            .to_string();
        let message = if endpoint_missing {
            format!("The server at {base} has no endpoint {method} {path} (HTTP 404)")
        } else if snippet.is_empty() {
            format!("{method} {base}{path} failed with HTTP {status}")
        } else {
            format!("{method} {base}{path} failed with HTTP {status}: {snippet}")
        };
        return Failure {
            error: Error::new(kind, message),
            endpoint_missing,
        };
    };
    let endpoint_missing = code == "ENDPOINT_NOT_FOUND";
    let kind = match code.as_str() {
        "RESOURCE_DOES_NOT_EXIST" | "ENDPOINT_NOT_FOUND" => ErrorKind::NotFound,
        "RESOURCE_ALREADY_EXISTS" => ErrorKind::AlreadyExists,
        "INVALID_PARAMETER_VALUE" | "MALFORMED_REQUEST" | "BAD_REQUEST" | "INVALID_REQUEST" => {
            ErrorKind::InvalidParameter
        }
        "INVALID_STATE" => ErrorKind::InvalidState,
        "REQUEST_LIMIT_EXCEEDED" => ErrorKind::TooLarge,
        "PERMISSION_DENIED" | "UNAUTHENTICATED" => ErrorKind::InvalidParameter,
        "INTERNAL_ERROR" | "TEMPORARILY_UNAVAILABLE" => ErrorKind::Internal,
        _ => match status.as_u16() {
            404 => ErrorKind::NotFound,
            400..=499 => ErrorKind::InvalidParameter,
            _ => ErrorKind::Internal,
        },
    };
    let message = match (kind, code.as_str()) {
        (ErrorKind::Internal, _) => {
            format!("The tracking server at {base} failed ({code}): {message}")
        }
        (_, "PERMISSION_DENIED" | "UNAUTHENTICATED") => {
            format!("The tracking server at {base} refused the request ({code}): {message}")
        }
        _ if message.is_empty() => format!("{code} from {base}"),
        _ => message,
    };
    Failure {
        error: Error::new(kind, message),
        endpoint_missing,
    }
}

fn view_type(view: ViewType) -> &'static str {
    match view {
        ViewType::ActiveOnly => "ACTIVE_ONLY",
        ViewType::DeletedOnly => "DELETED_ONLY",
        ViewType::All => "ALL",
    }
}

fn items<T>(v: &Value, key: &str, parse: fn(&Value) -> Result<T>) -> Result<Vec<T>> {
    v.get(key)
        .and_then(Value::as_array)
        .map(|a| a.iter().map(parse).collect())
        .unwrap_or_else(|| Ok(Vec::new()))
}

fn page<T>(v: &Value, key: &str, parse: fn(&Value) -> Result<T>) -> Result<Page<T>> {
    Ok(Page {
        items: items(v, key, parse)?,
        next_page_token: v
            .get("next_page_token")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .map(str::to_string),
    })
}

fn field<'a>(v: &'a Value, key: &str) -> Result<&'a Value> {
    v.get(key).ok_or_else(|| {
        Error::invalid(format!(
            "Malformed response from the tracking server: no '{key}'"
        ))
    })
}

/// Adds the optional search fields the way the mlflow client does: only when set.
fn search_body(
    mut body: Map<String, Value>,
    max_results: Option<i64>,
    token: Option<&str>,
) -> Value {
    if let Some(n) = max_results {
        body.insert("max_results".into(), json!(n));
    }
    if let Some(t) = token.filter(|t| !t.is_empty()) {
        body.insert("page_token".into(), json!(t));
    }
    Value::Object(body)
}

#[async_trait]
impl TrackingClient for HttpClient {
    fn target(&self) -> String {
        self.base.clone()
    }

    async fn search_experiments(
        &self,
        view: ViewType,
        max_results: Option<i64>,
        page_token: Option<&str>,
    ) -> Result<Page<Experiment>> {
        let mut body = Map::new();
        body.insert("view_type".into(), json!(view_type(view)));
        let v = self
            .send(
                Method::POST,
                &format!("{MLFLOW}/experiments/search"),
                search_body(body, max_results, page_token),
            )
            .await?;
        page(&v, "experiments", from_json::experiment)
    }

    async fn create_experiment(
        &self,
        name: &str,
        artifact_location: Option<&str>,
    ) -> Result<String> {
        let mut body = json!({"name": name});
        if let Some(loc) = artifact_location.filter(|l| !l.is_empty()) {
            body["artifact_location"] = json!(loc);
        }
        let v = self
            .send(Method::POST, &format!("{MLFLOW}/experiments/create"), body)
            .await?;
        match field(&v, "experiment_id")? {
            Value::String(s) => Ok(s.clone()),
            Value::Number(n) => Ok(n.to_string()),
            _ => Err(Error::invalid(
                "Malformed response from the tracking server: 'experiment_id' is not a string",
            )),
        }
    }

    async fn get_experiment(&self, experiment_id: &str) -> Result<Experiment> {
        let v = self
            .get(
                &format!("{MLFLOW}/experiments/get"),
                &[("experiment_id", experiment_id)],
            )
            .await?;
        from_json::experiment(field(&v, "experiment")?)
    }

    async fn get_experiment_by_name(&self, name: &str) -> Result<Experiment> {
        let v = self
            .get(
                &format!("{MLFLOW}/experiments/get-by-name"),
                &[("experiment_name", name)],
            )
            .await?;
        from_json::experiment(field(&v, "experiment")?)
    }

    async fn delete_experiment(&self, experiment_id: &str) -> Result<()> {
        self.send(
            Method::POST,
            &format!("{MLFLOW}/experiments/delete"),
            json!({"experiment_id": experiment_id}),
        )
        .await?;
        Ok(())
    }

    async fn search_runs(&self, search: &RunSearch) -> Result<Page<Run>> {
        let mut body = Map::new();
        body.insert("experiment_ids".into(), json!(search.experiment_ids));
        if !search.filter.is_empty() {
            body.insert("filter".into(), json!(search.filter));
        }
        body.insert("run_view_type".into(), json!(view_type(search.view)));
        if !search.order_by.is_empty() {
            body.insert("order_by".into(), json!(search.order_by));
        }
        let v = self
            .send(
                Method::POST,
                &format!("{MLFLOW}/runs/search"),
                search_body(body, search.max_results, search.page_token.as_deref()),
            )
            .await?;
        page(&v, "runs", from_json::run)
    }

    async fn get_run(&self, run_id: &str) -> Result<Run> {
        let v = self
            .get(&format!("{MLFLOW}/runs/get"), &[("run_id", run_id)])
            .await?;
        from_json::run(field(&v, "run")?)
    }

    async fn delete_run(&self, run_id: &str) -> Result<()> {
        self.send(
            Method::POST,
            &format!("{MLFLOW}/runs/delete"),
            json!({"run_id": run_id}),
        )
        .await?;
        Ok(())
    }

    async fn search_registered_models(
        &self,
        filter: &str,
        max_results: Option<i64>,
        page_token: Option<&str>,
    ) -> Result<Page<RegisteredModel>> {
        let max = max_results.map(|n| n.to_string());
        let mut query: Vec<(&str, &str)> = Vec::new();
        if !filter.is_empty() {
            query.push(("filter", filter));
        }
        if let Some(n) = &max {
            query.push(("max_results", n));
        }
        if let Some(t) = page_token.filter(|t| !t.is_empty()) {
            query.push(("page_token", t));
        }
        let v = self
            .get(&format!("{MLFLOW}/registered-models/search"), &query)
            .await?;
        page(&v, "registered_models", from_json::registered_model)
    }

    async fn get_registered_model(&self, name: &str) -> Result<RegisteredModel> {
        let v = self
            .get(
                &format!("{MLFLOW}/registered-models/get"),
                &[("name", name)],
            )
            .await?;
        from_json::registered_model(field(&v, "registered_model")?)
    }

    async fn search_model_versions(
        &self,
        filter: &str,
        max_results: Option<i64>,
        page_token: Option<&str>,
    ) -> Result<Page<ModelVersion>> {
        let max = max_results.map(|n| n.to_string());
        let mut query: Vec<(&str, &str)> = Vec::new();
        if !filter.is_empty() {
            query.push(("filter", filter));
        }
        if let Some(n) = &max {
            query.push(("max_results", n));
        }
        if let Some(t) = page_token.filter(|t| !t.is_empty()) {
            query.push(("page_token", t));
        }
        let v = self
            .get(&format!("{MLFLOW}/model-versions/search"), &query)
            .await?;
        page(&v, "model_versions", from_json::model_version)
    }

    async fn set_alias(
        &self,
        name: &str,
        alias: &str,
        version: &str,
        reason: Option<&str>,
    ) -> Result<()> {
        let mut body = json!({"name": name, "alias": alias, "version": version});
        if let Some(r) = reason.filter(|r| !r.is_empty()) {
            body["reason"] = json!(r);
        }
        self.send(
            Method::POST,
            &format!("{MLFLOW}/registered-models/alias"),
            body,
        )
        .await?;
        Ok(())
    }

    async fn delete_alias(&self, name: &str, alias: &str, reason: Option<&str>) -> Result<()> {
        let mut body = json!({"name": name, "alias": alias});
        if let Some(r) = reason.filter(|r| !r.is_empty()) {
            body["reason"] = json!(r);
        }
        self.send(
            Method::DELETE,
            &format!("{MLFLOW}/registered-models/alias"),
            body,
        )
        .await?;
        Ok(())
    }

    async fn model_history(&self, name: &str) -> Result<Vec<AuditEntry>> {
        match self
            .call(Method::GET, KAIZEN_HISTORY, &[("name", name)], None)
            .await
        {
            Ok(v) => items(&v, "entries", from_json::audit_entry),
            Err(f) if f.endpoint_missing => Err(Error::invalid_state(format!(
                "The server at {} keeps no audit history (no {KAIZEN_HISTORY}); it is not a kaizen server",
                self.base
            ))),
            Err(f) => Err(f.error),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind_of(status: u16, body: &str) -> (ErrorKind, String, bool) {
        let f = error_from_response(
            StatusCode::from_u16(status).unwrap(),
            body.as_bytes(),
            &Method::GET,
            "/api/2.0/mlflow/runs/get",
            "http://h:5000",
        );
        (f.error.kind, f.error.message, f.endpoint_missing)
    }

    #[test]
    fn mlflow_error_codes_map_to_kinds() {
        let body = |code: &str| format!(r#"{{"error_code":"{code}","message":"m"}}"#);
        assert_eq!(
            kind_of(404, &body("RESOURCE_DOES_NOT_EXIST")).0,
            ErrorKind::NotFound
        );
        assert_eq!(
            kind_of(400, &body("RESOURCE_ALREADY_EXISTS")).0,
            ErrorKind::AlreadyExists
        );
        assert_eq!(
            kind_of(400, &body("INVALID_PARAMETER_VALUE")).0,
            ErrorKind::InvalidParameter
        );
        assert_eq!(
            kind_of(400, &body("MALFORMED_REQUEST")).0,
            ErrorKind::InvalidParameter
        );
        assert_eq!(
            kind_of(400, &body("INVALID_STATE")).0,
            ErrorKind::InvalidState
        );
        assert_eq!(kind_of(500, &body("INTERNAL_ERROR")).0, ErrorKind::Internal);
        assert_eq!(
            kind_of(400, &body("SOMETHING_NEW")).0,
            ErrorKind::InvalidParameter
        );
        assert_eq!(kind_of(503, &body("SOMETHING_NEW")).0, ErrorKind::Internal);
        let (kind, message, missing) = kind_of(404, &body("RESOURCE_DOES_NOT_EXIST"));
        assert_eq!(
            (kind, message.as_str(), missing),
            (ErrorKind::NotFound, "m", false)
        );
        assert!(kind_of(404, &body("ENDPOINT_NOT_FOUND")).2);
    }

    #[test]
    fn non_mlflow_answers() {
        let (kind, message, missing) = kind_of(404, "<html>Not Found</html>");
        assert_eq!(kind, ErrorKind::NotFound);
        assert!(missing);
        assert!(message.contains("http://h:5000"), "{message}");
        let (kind, message, _) = kind_of(502, "bad gateway");
        assert_eq!(kind, ErrorKind::Internal);
        assert!(
            message.contains("502") && message.contains("bad gateway"),
            "{message}"
        );
    }

    #[test]
    fn base_urls() {
        assert_eq!(
            HttpClient::new("http://127.0.0.1:5000/")
                .unwrap()
                .base_url(),
            "http://127.0.0.1:5000"
        );
        assert_eq!(
            HttpClient::new("https://h/mlflow/").unwrap().url("/api/x"),
            "https://h/mlflow/api/x"
        );
        for bad in [
            "127.0.0.1:5000",
            "file:///tmp/x",
            "sqlite:///x.db",
            "not a url",
        ] {
            let e = HttpClient::new(bad).unwrap_err();
            assert_eq!(e.kind, ErrorKind::InvalidParameter, "{bad}");
        }
    }

    #[tokio::test]
    async fn connection_failures_are_internal_and_name_the_url() {
        // Port 1 on the loopback is closed on any sane machine.
        let c = HttpClient::new("http://127.0.0.1:1").unwrap();
        let e = c.get_run("abc").await.unwrap_err();
        assert_eq!(e.kind, ErrorKind::Internal);
        assert!(e.message.contains("http://127.0.0.1:1"), "{}", e.message);
    }
}
