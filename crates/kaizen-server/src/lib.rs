//! kaizen's HTTP server: MLflow's REST API (under `/api/2.0` and `/ajax-api/2.0`), the
//! `mlflow-artifacts` proxy, `/health`, `/version`, and pipeline triggers under `/api/pipelines`.
//!
//! **Architecture invariant:** every route goes through [`app`]'s one middleware stack (identity,
//! panic catching, tracing), so authentication and authorization can be added in one place.
//! Only this crate knows HTTP status codes; [`error::ApiError`] maps domain errors onto MLflow's
//! `{"error_code", "message"}` shape in one table.

pub mod error;
pub mod extract;
mod identity;
mod routes;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use kaizen_tracking::Services;
use tokio::net::TcpListener;

pub use identity::Identity;
pub use routes::pipelines::PipelineRegistry;

/// Settings of a running server.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The largest JSON request body accepted, in bytes. Artifact uploads stream and are not bound
    /// by it.
    pub max_body_bytes: usize,
    /// Whether the `mlflow-artifacts` proxy is served.
    pub serve_artifacts: bool,
    /// The pipelines `POST /api/pipelines/{name}/runs` can start.
    pub pipelines: PipelineRegistry,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: 64 * 1024 * 1024,
            serve_artifacts: true,
            pipelines: PipelineRegistry::default(),
        }
    }
}

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub services: Services,
    pub config: Arc<ServerConfig>,
}

/// The whole HTTP application, without a socket, so tests can call it directly.
pub fn app(state: AppState) -> Router {
    app_with(state, Router::new())
}

/// [`app`] with more routes (model servers, pretrained-model routes and pages) under the same
/// middleware stack; `mounted` must not have a fallback of its own.
pub fn app_with(state: AppState, mounted: Router) -> Router {
    routes::router(state.clone())
        .with_state(state)
        .merge(mounted)
        .fallback(error::not_found_route)
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(axum::middleware::from_fn(identity::identify))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            error::panic_response,
        ))
        .layer(tower_http::trace::TraceLayer::new_for_http())
}

/// Serves `app` on `listener` until `shutdown` resolves, then drains in-flight requests for up to
/// ten seconds.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(listener, state, Router::new(), shutdown).await
}

/// [`serve`] with more routes beside the tracking server's (model servers mounted under
/// `/serve/...` by `kaizen server --serve`, the pretrained-model routes), behind the same
/// middleware; `mounted` must not have a fallback of its own.
pub async fn serve_with(
    listener: TcpListener,
    state: AppState,
    mounted: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = app_with(state, mounted).into_make_service_with_connect_info::<SocketAddr>();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = axum::serve(listener, app).with_graceful_shutdown(async move {
        shutdown.await;
        let _ = tx.send(());
    });
    let drain = async move {
        let _ = rx.await;
        tokio::time::sleep(Duration::from_secs(10)).await;
    };
    tokio::select! {
        r = server => r,
        _ = drain => {
            tracing::warn!("in-flight requests did not finish within 10 s; exiting");
            Ok(())
        }
    }
}
