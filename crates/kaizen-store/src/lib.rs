//! kaizen's metadata store: experiments, runs, metrics, logged models and the model registry.
//!
//! Callers hold an `Arc<dyn MetadataStore>`; [`open`] picks the backend from a URI
//! (`sqlite:///path/to/kaizen.db` or `postgresql://user@host/db`). Both backends share one SQL
//! implementation ([`sql::SqlStore`]) that differs only where the dialects do.
//!
//! **Architecture invariant:** every write method runs in one transaction, so a failed call leaves
//! nothing behind, and a call that returned `Ok` survives a crash of the process.

pub mod sql;

use async_trait::async_trait;
use kaizen_core::search::{Comparison, OrderBy};
use kaizen_core::{
    AuditEntry, DatasetInput, Experiment, LifecycleStage, LoggedModel, LoggedModelStatus, Metric,
    ModelIo, ModelVersion, Param, RegisteredModel, Result, Run, RunInfo, RunStatus, Stage, Tag,
    ViewType,
};
use std::sync::Arc;

/// Opens (creating and migrating if needed) the store behind `uri`.
pub async fn open(uri: &str) -> Result<Arc<dyn MetadataStore>> {
    Ok(Arc::new(sql::SqlStore::open(uri).await?))
}

/// A search over one entity, already parsed and validated by the service layer.
#[derive(Debug, Clone, Default)]
pub struct SearchQuery {
    pub filter: Vec<Comparison>,
    pub order_by: Vec<OrderBy>,
    pub max_results: i64,
    pub offset: i64,
}

/// Fields of a run that `update_run` may change; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct RunUpdate {
    pub status: Option<RunStatus>,
    pub end_time: Option<i64>,
    pub run_name: Option<String>,
}

/// A registry change to record in the audit log, in the same transaction as the change.
#[derive(Debug, Clone)]
pub struct AuditRecord {
    pub actor: String,
    pub reason: Option<String>,
}

#[async_trait]
pub trait TrackingStore: Send + Sync {
    /// Creates an experiment; a `None` location becomes `<artifact_root>/<id>`.
    async fn create_experiment(
        &self,
        name: &str,
        artifact_location: Option<&str>,
        artifact_root: &str,
        tags: &[Tag],
    ) -> Result<String>;
    async fn get_experiment(&self, experiment_id: &str) -> Result<Experiment>;
    async fn get_experiment_by_name(&self, name: &str) -> Result<Option<Experiment>>;
    /// Returns up to `max_results + 1` experiments so the caller can tell whether a next page exists.
    async fn search_experiments(
        &self,
        view: ViewType,
        query: &SearchQuery,
    ) -> Result<Vec<Experiment>>;
    async fn rename_experiment(&self, experiment_id: &str, new_name: &str) -> Result<()>;
    /// Moves an experiment and its runs to `stage`, as MLflow's delete and restore do.
    async fn set_experiment_lifecycle(
        &self,
        experiment_id: &str,
        stage: LifecycleStage,
    ) -> Result<()>;
    async fn set_experiment_tag(&self, experiment_id: &str, tag: &Tag) -> Result<()>;
    async fn delete_experiment_tag(&self, experiment_id: &str, key: &str) -> Result<()>;

    async fn create_run(&self, info: &RunInfo, tags: &[Tag]) -> Result<()>;
    async fn get_run(&self, run_id: &str) -> Result<Run>;
    async fn update_run(&self, run_id: &str, update: &RunUpdate) -> Result<RunInfo>;
    async fn set_run_lifecycle(&self, run_id: &str, stage: LifecycleStage) -> Result<()>;
    /// Logs metrics, params and tags atomically. A param whose value differs from the one already
    /// logged fails the whole batch.
    async fn log_batch(
        &self,
        run_id: &str,
        metrics: &[Metric],
        params: &[Param],
        tags: &[Tag],
    ) -> Result<()>;
    async fn delete_run_tag(&self, run_id: &str, key: &str) -> Result<()>;
    /// The points of one metric in (timestamp, step, value) order, as MLflow returns them, from
    /// `offset`, at most `max_results`.
    async fn get_metric_history(
        &self,
        run_id: &str,
        key: &str,
        max_results: i64,
        offset: i64,
    ) -> Result<Vec<Metric>>;
    /// Returns up to `max_results + 1` runs so the caller can tell whether a next page exists.
    async fn search_runs(
        &self,
        experiment_ids: &[String],
        view: ViewType,
        query: &SearchQuery,
    ) -> Result<Vec<Run>>;
    async fn log_inputs(
        &self,
        run_id: &str,
        datasets: &[DatasetInput],
        models: &[ModelIo],
    ) -> Result<()>;
    async fn log_outputs(&self, run_id: &str, models: &[ModelIo]) -> Result<()>;

    async fn create_logged_model(&self, model: &LoggedModel) -> Result<()>;
    async fn get_logged_model(&self, model_id: &str) -> Result<LoggedModel>;
    async fn finalize_logged_model(
        &self,
        model_id: &str,
        status: LoggedModelStatus,
    ) -> Result<LoggedModel>;
    async fn delete_logged_model(&self, model_id: &str) -> Result<()>;
    async fn set_logged_model_tags(&self, model_id: &str, tags: &[Tag]) -> Result<()>;
    async fn delete_logged_model_tag(&self, model_id: &str, key: &str) -> Result<()>;
    async fn log_logged_model_params(&self, model_id: &str, params: &[Param]) -> Result<()>;
    /// Returns up to `max_results + 1` models so the caller can tell whether a next page exists.
    async fn search_logged_models(
        &self,
        experiment_ids: &[String],
        query: &SearchQuery,
    ) -> Result<Vec<LoggedModel>>;
}

#[async_trait]
pub trait RegistryStore: Send + Sync {
    async fn create_registered_model(
        &self,
        name: &str,
        description: Option<&str>,
        tags: &[Tag],
        audit: &AuditRecord,
    ) -> Result<RegisteredModel>;
    async fn get_registered_model(&self, name: &str) -> Result<RegisteredModel>;
    async fn rename_registered_model(
        &self,
        name: &str,
        new_name: &str,
        audit: &AuditRecord,
    ) -> Result<RegisteredModel>;
    async fn update_registered_model(
        &self,
        name: &str,
        description: Option<&str>,
    ) -> Result<RegisteredModel>;
    async fn delete_registered_model(&self, name: &str, audit: &AuditRecord) -> Result<()>;
    /// Returns up to `max_results + 1` models so the caller can tell whether a next page exists.
    async fn search_registered_models(&self, query: &SearchQuery) -> Result<Vec<RegisteredModel>>;
    async fn set_registered_model_tag(&self, name: &str, tag: &Tag) -> Result<()>;
    async fn delete_registered_model_tag(&self, name: &str, key: &str) -> Result<()>;
    async fn set_alias(
        &self,
        name: &str,
        alias: &str,
        version: i64,
        audit: &AuditRecord,
    ) -> Result<()>;
    async fn delete_alias(&self, name: &str, alias: &str, audit: &AuditRecord) -> Result<()>;
    async fn get_version_by_alias(&self, name: &str, alias: &str) -> Result<ModelVersion>;

    #[allow(clippy::too_many_arguments)]
    async fn create_model_version(
        &self,
        version: &NewModelVersion,
        audit: &AuditRecord,
    ) -> Result<ModelVersion>;
    async fn get_model_version(&self, name: &str, version: i64) -> Result<ModelVersion>;
    async fn update_model_version(
        &self,
        name: &str,
        version: i64,
        description: Option<&str>,
    ) -> Result<ModelVersion>;
    async fn delete_model_version(
        &self,
        name: &str,
        version: i64,
        audit: &AuditRecord,
    ) -> Result<()>;
    /// Returns up to `max_results + 1` versions so the caller can tell whether a next page exists.
    async fn search_model_versions(&self, query: &SearchQuery) -> Result<Vec<ModelVersion>>;
    async fn set_model_version_tag(&self, name: &str, version: i64, tag: &Tag) -> Result<()>;
    async fn delete_model_version_tag(&self, name: &str, version: i64, key: &str) -> Result<()>;
    async fn transition_stage(
        &self,
        name: &str,
        version: i64,
        stage: Stage,
        archive_existing: bool,
        audit: &AuditRecord,
    ) -> Result<ModelVersion>;
    /// The latest version in each of `stages` (all stages when empty).
    async fn get_latest_versions(&self, name: &str, stages: &[Stage]) -> Result<Vec<ModelVersion>>;
    async fn audit_log(&self, name: &str) -> Result<Vec<AuditEntry>>;
    /// Records a decision about a model (or one of its versions) that is not itself a change the
    /// store makes, such as a promotion gate's verdict, as an entry of the audit log. The model
    /// (and the version, when given) must exist: NOT_FOUND otherwise. `action` may not be empty
    /// nor one of the actions the store records itself.
    async fn record_audit(
        &self,
        name: &str,
        version: Option<i64>,
        action: &str,
        details: &str,
        audit: &AuditRecord,
    ) -> Result<()>;
}

/// What a new model version is made from.
#[derive(Debug, Clone, Default)]
pub struct NewModelVersion {
    pub name: String,
    pub source: String,
    pub run_id: Option<String>,
    pub run_link: Option<String>,
    pub description: Option<String>,
    pub user_id: Option<String>,
    pub model_id: Option<String>,
    pub tags: Vec<Tag>,
}

/// A cached step result: the outputs (name → sha256 of the content) a step produced under a
/// cache key, with the hash of each component of that key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepCacheEntry {
    pub cache_key: String,
    pub pipeline: String,
    pub step: String,
    /// The components of the key in a fixed order (`input:sales.csv`, `param:lr`, `code:train.py`,
    /// `definition`) with their hashes, so a miss can name the first one that changed.
    pub components: Vec<(String, String)>,
    pub outputs: std::collections::BTreeMap<String, String>,
    /// The step's run that produced the outputs.
    pub run_id: String,
    pub created: i64,
}

/// One edge of the lineage graph: `dst` was made from (or by) `src`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineageEdge {
    /// `artifact`, `run`, `file`, `dataset` or `model`.
    pub src_kind: String,
    pub src_id: String,
    pub dst_kind: String,
    pub dst_id: String,
    /// `input`, `output`, `parent`, ...
    pub relation: String,
    pub created: i64,
}

#[async_trait]
pub trait PipelineStore: Send + Sync {
    /// Records (or replaces) the cache entry under its key.
    async fn put_step_cache(&self, entry: &StepCacheEntry) -> Result<()>;
    async fn get_step_cache(&self, cache_key: &str) -> Result<Option<StepCacheEntry>>;
    /// The most recently recorded entry of a pipeline's step, whatever its key.
    async fn latest_step_cache(&self, pipeline: &str, step: &str)
    -> Result<Option<StepCacheEntry>>;
    /// Adds edges in one transaction.
    async fn add_lineage_edges(&self, edges: &[LineageEdge]) -> Result<()>;
    /// The edges that start or end at a node, oldest first.
    async fn lineage_edges(&self, kind: &str, id: &str) -> Result<Vec<LineageEdge>>;
    /// Catalogs a table as the next version of `name`; when the latest version already has the
    /// same content, answers that version instead of adding one.
    async fn add_dataset_version(&self, new: &NewDatasetVersion) -> Result<DatasetVersion>;
    /// A version of a dataset, the latest when `version` is `None`.
    async fn get_dataset_version(&self, name: &str, version: Option<i64>)
    -> Result<DatasetVersion>;
    /// The latest version of every dataset, by name.
    async fn list_datasets(&self) -> Result<Vec<DatasetVersion>>;
    /// Every version of a dataset, oldest first (empty when the name is unknown).
    async fn dataset_versions(&self, name: &str) -> Result<Vec<DatasetVersion>>;
}

/// A table to catalog: where its content lives and what it holds.
#[derive(Debug, Clone, PartialEq)]
pub struct NewDatasetVersion {
    pub name: String,
    /// The sha256 of the file; the file is `cas/<content_hash>` in the artifact store.
    pub content_hash: String,
    /// `parquet`, `csv` or `jsonl`.
    pub format: String,
    /// `[{"name": ..., "type": ..., "nullable": ...}]`.
    pub schema: serde_json::Value,
    pub rows: i64,
    /// Per-column statistics: `{"column": {"nulls": n, "min": x, "max": x}}`.
    pub stats: serde_json::Value,
    /// The step run that made it, and its pipeline and step (empty when not made by a pipeline).
    pub run_id: String,
    pub pipeline: String,
    pub step: String,
}

/// One cataloged version of a dataset.
#[derive(Debug, Clone, PartialEq)]
pub struct DatasetVersion {
    pub version: i64,
    pub created: i64,
    pub data: NewDatasetVersion,
}

/// An event to append to the event log.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    /// `run.finished`, `model_version.registered`, ... (see `kaizen_core::events`).
    pub kind: String,
    /// What it is about: a run id, `models:/NAME/VERSION`, a dataset.
    pub subject: String,
    /// A JSON object with the details.
    pub payload: serde_json::Value,
}

/// An event of the log.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub id: i64,
    pub timestamp: i64,
    pub kind: String,
    pub subject: String,
    pub payload: serde_json::Value,
}

/// The event log and the delivery cursors of its subscribers.
#[async_trait]
pub trait EventStore: Send + Sync {
    /// Appends an event and answers its id (ids grow).
    async fn append_event(&self, event: &NewEvent) -> Result<i64>;
    /// Up to `limit` events with an id above `after`, oldest first.
    async fn events_after(&self, after: i64, limit: i64) -> Result<Vec<Event>>;
    /// The last `limit` events, oldest first.
    async fn last_events(&self, limit: i64) -> Result<Vec<Event>>;
    /// The id of the last event delivered to `subscriber` (0 when none).
    async fn event_cursor(&self, subscriber: &str) -> Result<i64>;
    async fn set_event_cursor(&self, subscriber: &str, last_event_id: i64) -> Result<()>;
}

/// The whole metadata store.
pub trait MetadataStore: TrackingStore + RegistryStore + PipelineStore + EventStore {
    /// `sqlite` or `postgresql`, for logs and `/version`.
    fn backend(&self) -> &'static str;
}
