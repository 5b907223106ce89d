//! kaizen's tracking and registry services: MLflow's rules on top of the metadata and artifact
//! stores. The HTTP server and the in-process CLI both call these, so a rule lives in one place.

mod registry;
mod tracking;

pub use kaizen_store::NewModelVersion;
pub use registry::{Actor, Registry, parse_version};
pub use tracking::{NewRun, Tracking};

use std::sync::Arc;

use kaizen_artifacts::ArtifactStore;
use kaizen_core::Result;
use kaizen_store::MetadataStore;

/// The artifact root as clients see it: artifacts are served through the `mlflow-artifacts`
/// proxy, so locations are `mlflow-artifacts:/<experiment>/<run>/artifacts` and the proxy maps
/// them onto the artifact store.
pub const PROXY_ARTIFACT_ROOT: &str = "mlflow-artifacts:";

/// Everything a kaizen process needs to serve tracking and the registry.
#[derive(Clone)]
pub struct Services {
    pub tracking: Tracking,
    pub registry: Registry,
    pub store: Arc<dyn MetadataStore>,
    pub artifacts: ArtifactStore,
}

impl Services {
    /// Opens the metadata store at `store_uri` and the artifact store at `artifacts_uri`.
    pub async fn open(store_uri: &str, artifacts_uri: &str) -> Result<Self> {
        let store = kaizen_store::open(store_uri).await?;
        let artifacts = ArtifactStore::open(artifacts_uri)?;
        Ok(Self::new(store, artifacts))
    }

    pub fn new(store: Arc<dyn MetadataStore>, artifacts: ArtifactStore) -> Self {
        Self {
            tracking: Tracking::new(store.clone(), artifacts.clone()),
            registry: Registry::new(store.clone()),
            store,
            artifacts,
        }
    }
}

/// Maps a `mlflow-artifacts:/x/y` URI (or a plain relative path) to the path inside the artifact
/// store; other schemes are not ours to serve.
pub fn proxy_path(uri: &str) -> Option<&str> {
    if let Some(rest) = uri.strip_prefix(PROXY_ARTIFACT_ROOT) {
        // `mlflow-artifacts:/0/...` or `mlflow-artifacts://host:port/0/...`.
        let rest = if let Some(after) = rest.strip_prefix("//") {
            after.find('/').map(|i| &after[i..]).unwrap_or("")
        } else {
            rest
        };
        Some(rest.trim_start_matches('/'))
    } else {
        None
    }
}

/// Appends an event to the log after the change it reports is stored. A failure to record the
/// event is logged and does not undo or fail the change: notifications are best effort, the
/// change is the record.
pub async fn emit(
    store: &dyn kaizen_store::MetadataStore,
    kind: &str,
    subject: &str,
    payload: serde_json::Value,
) {
    let event = kaizen_store::NewEvent {
        kind: kind.to_string(),
        subject: subject.to_string(),
        payload,
    };
    if let Err(e) = store.append_event(&event).await {
        tracing::warn!(kind, subject, error = %e, "cannot record the event");
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn proxy_paths() {
        assert_eq!(
            super::proxy_path("mlflow-artifacts:/0/abc/artifacts"),
            Some("0/abc/artifacts")
        );
        assert_eq!(
            super::proxy_path("mlflow-artifacts://h:5000/0/abc"),
            Some("0/abc")
        );
        assert_eq!(super::proxy_path("s3://b/x"), None);
    }
}
