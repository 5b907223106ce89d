//! Who is calling. Today the user name comes from HTTP basic auth (what the MLflow client sends
//! when `MLFLOW_TRACKING_USERNAME` is set) or the `X-Kaizen-User` header; this middleware is where
//! token checks and role-based access will go.

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;

/// The caller, available to handlers as a request extension.
#[derive(Debug, Clone, Default)]
pub struct Identity {
    pub user: Option<String>,
}

pub async fn identify(mut req: Request, next: Next) -> Response {
    let headers = req.headers();
    let user = headers
        .get("x-kaizen-user")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| {
            let auth = headers
                .get(axum::http::header::AUTHORIZATION)?
                .to_str()
                .ok()?;
            let encoded = auth.strip_prefix("Basic ")?;
            let decoded = decode_base64(encoded.trim())?;
            let text = String::from_utf8(decoded).ok()?;
            Some(text.split(':').next()?.to_string())
        })
        .filter(|u| !u.is_empty());
    req.extensions_mut().insert(Identity { user });
    next.run(req).await
}

fn decode_base64(s: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.decode(s).ok()
}
