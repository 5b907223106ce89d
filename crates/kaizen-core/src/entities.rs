//! Entities of tracking and the model registry, shaped after MLflow's so that the wire layer is a
//! plain mapping.

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Whether an experiment or run is live or in the trash (MLflow's `LifecycleStage`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LifecycleStage {
    Active,
    Deleted,
}

impl LifecycleStage {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Deleted => "deleted",
        }
    }

    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "active" => Ok(Self::Active),
            "deleted" => Ok(Self::Deleted),
            other => Err(Error::invalid(format!("Invalid lifecycle stage '{other}'"))),
        }
    }
}

/// Which lifecycle stages a search includes (MLflow's `ViewType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ViewType {
    #[default]
    ActiveOnly,
    DeletedOnly,
    All,
}

impl ViewType {
    pub fn parse(s: &str) -> Result<Self> {
        match s.to_ascii_uppercase().as_str() {
            "ACTIVE_ONLY" | "1" => Ok(Self::ActiveOnly),
            "DELETED_ONLY" | "2" => Ok(Self::DeletedOnly),
            "ALL" | "3" => Ok(Self::All),
            other => Err(Error::invalid(format!("Invalid view type '{other}'"))),
        }
    }

    pub fn stages(self) -> &'static [LifecycleStage] {
        match self {
            Self::ActiveOnly => &[LifecycleStage::Active],
            Self::DeletedOnly => &[LifecycleStage::Deleted],
            Self::All => &[LifecycleStage::Active, LifecycleStage::Deleted],
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RunStatus {
    Running,
    Scheduled,
    Finished,
    Failed,
    Killed,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "RUNNING",
            Self::Scheduled => "SCHEDULED",
            Self::Finished => "FINISHED",
            Self::Failed => "FAILED",
            Self::Killed => "KILLED",
        }
    }

    pub fn parse(s: &str) -> Result<Self> {
        match s.to_ascii_uppercase().as_str() {
            "RUNNING" | "1" => Ok(Self::Running),
            "SCHEDULED" | "2" => Ok(Self::Scheduled),
            "FINISHED" | "3" => Ok(Self::Finished),
            "FAILED" | "4" => Ok(Self::Failed),
            "KILLED" | "5" => Ok(Self::Killed),
            other => Err(Error::invalid(format!(
                "Invalid run status '{other}': expected one of RUNNING, SCHEDULED, FINISHED, FAILED, KILLED"
            ))),
        }
    }

    pub fn is_terminated(self) -> bool {
        matches!(self, Self::Finished | Self::Failed | Self::Killed)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tag {
    pub key: String,
    pub value: String,
}

impl Tag {
    pub fn new(key: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            value: value.into(),
        }
    }
}

/// A run parameter: logged once, immutable afterwards.
pub type Param = Tag;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metric {
    pub key: String,
    /// NaN and ±Inf are legal and round-trip.
    pub value: f64,
    pub timestamp: i64,
    pub step: i64,
    /// MLflow 3 links a metric to a logged model and a dataset; empty when not linked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset_digest: Option<String>,
    /// The run that logged it; filled in for logged-model metrics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
}

impl Metric {
    pub fn new(key: impl Into<String>, value: f64, timestamp: i64, step: i64) -> Self {
        Self {
            key: key.into(),
            value,
            timestamp,
            step,
            model_id: None,
            dataset_name: None,
            dataset_digest: None,
            run_id: None,
        }
    }

    /// The order MLflow uses to pick a run's latest value: greatest step, then greatest timestamp,
    /// then greatest value (NaN counts as the largest, as in MLflow's SQL store where it sorts last).
    pub fn is_newer_than(&self, other: &Metric) -> bool {
        (self.step, self.timestamp) > (other.step, other.timestamp)
            || ((self.step, self.timestamp) == (other.step, other.timestamp)
                && self.value.total_cmp(&other.value).is_ge())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Experiment {
    pub experiment_id: String,
    pub name: String,
    pub artifact_location: String,
    pub lifecycle_stage: LifecycleStage,
    pub creation_time: i64,
    pub last_update_time: i64,
    pub tags: Vec<Tag>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunInfo {
    pub run_id: String,
    pub run_name: String,
    pub experiment_id: String,
    pub user_id: String,
    pub status: RunStatus,
    pub start_time: Option<i64>,
    pub end_time: Option<i64>,
    pub artifact_uri: String,
    pub lifecycle_stage: LifecycleStage,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunData {
    /// The latest value of each metric.
    pub metrics: Vec<Metric>,
    pub params: Vec<Param>,
    pub tags: Vec<Tag>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dataset {
    pub name: String,
    pub digest: String,
    pub source_type: String,
    pub source: String,
    pub schema: Option<String>,
    pub profile: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatasetInput {
    pub tags: Vec<Tag>,
    pub dataset: Dataset,
}

/// A logged model used as a run input or produced as a run output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelIo {
    pub model_id: String,
    /// Set for outputs: the step at which the model was produced.
    pub step: Option<i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunInputs {
    pub dataset_inputs: Vec<DatasetInput>,
    pub model_inputs: Vec<ModelIo>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunOutputs {
    pub model_outputs: Vec<ModelIo>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Run {
    pub info: RunInfo,
    pub data: RunData,
    pub inputs: RunInputs,
    pub outputs: RunOutputs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum LoggedModelStatus {
    Unspecified,
    Pending,
    Ready,
    Failed,
}

impl LoggedModelStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unspecified => "LOGGED_MODEL_STATUS_UNSPECIFIED",
            Self::Pending => "LOGGED_MODEL_PENDING",
            Self::Ready => "LOGGED_MODEL_READY",
            Self::Failed => "LOGGED_MODEL_UPLOAD_FAILED",
        }
    }

    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "LOGGED_MODEL_STATUS_UNSPECIFIED" | "UNSPECIFIED" | "0" => Ok(Self::Unspecified),
            "LOGGED_MODEL_PENDING" | "PENDING" | "1" => Ok(Self::Pending),
            "LOGGED_MODEL_READY" | "READY" | "2" => Ok(Self::Ready),
            "LOGGED_MODEL_UPLOAD_FAILED" | "UPLOAD_FAILED" | "FAILED" | "3" => Ok(Self::Failed),
            other => Err(Error::invalid(format!(
                "Invalid logged model status '{other}'"
            ))),
        }
    }
}

/// An MLflow 3 logged model: a model artifact with its own id, params, tags and metrics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoggedModel {
    pub model_id: String,
    pub experiment_id: String,
    pub name: String,
    pub artifact_location: String,
    pub creation_timestamp_ms: i64,
    pub last_updated_timestamp_ms: i64,
    pub model_type: Option<String>,
    pub source_run_id: Option<String>,
    pub status: LoggedModelStatus,
    pub status_message: Option<String>,
    pub tags: Vec<Tag>,
    pub params: Vec<Param>,
    pub metrics: Vec<Metric>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegisteredModel {
    pub name: String,
    pub creation_timestamp: i64,
    pub last_updated_timestamp: i64,
    pub description: Option<String>,
    /// The latest version in each stage, as MLflow returns them.
    pub latest_versions: Vec<ModelVersion>,
    pub tags: Vec<Tag>,
    pub aliases: Vec<ModelAlias>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelAlias {
    pub alias: String,
    pub version: String,
}

/// The legacy stages of a model version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Stage {
    None,
    Staging,
    Production,
    Archived,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "None",
            Self::Staging => "Staging",
            Self::Production => "Production",
            Self::Archived => "Archived",
        }
    }

    /// Parses a stage name case-insensitively, as MLflow does.
    pub fn parse(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "none" => Ok(Self::None),
            "staging" => Ok(Self::Staging),
            "production" => Ok(Self::Production),
            "archived" => Ok(Self::Archived),
            _ => Err(Error::invalid(format!(
                "Invalid Model Version stage: {s}. Value must be one of None, Staging, Production, Archived."
            ))),
        }
    }

    pub const ALL: [Stage; 4] = [Self::None, Self::Staging, Self::Production, Self::Archived];
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelVersion {
    pub name: String,
    pub version: i64,
    pub creation_timestamp: i64,
    pub last_updated_timestamp: i64,
    pub description: Option<String>,
    pub user_id: Option<String>,
    pub current_stage: Stage,
    pub source: String,
    pub run_id: Option<String>,
    pub status: String,
    pub status_message: Option<String>,
    pub tags: Vec<Tag>,
    pub run_link: Option<String>,
    pub aliases: Vec<String>,
    pub model_id: Option<String>,
}

/// One registry change, kept forever: who did what to which model, when and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub id: i64,
    pub timestamp: i64,
    pub actor: String,
    pub action: String,
    pub model_name: String,
    pub version: Option<i64>,
    pub details: String,
    pub reason: Option<String>,
}

/// A page of results and the token for the next one, if any.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_page_token: Option<String>,
}

/// Well-known tag keys whose meaning MLflow clients rely on.
pub mod tags {
    pub const RUN_NAME: &str = "mlflow.runName";
    pub const USER: &str = "mlflow.user";
    pub const SOURCE_NAME: &str = "mlflow.source.name";
    pub const SOURCE_TYPE: &str = "mlflow.source.type";
    pub const PARENT_RUN_ID: &str = "mlflow.parentRunId";
    pub const LOGGED_MODELS: &str = "mlflow.log-model.history";
}
