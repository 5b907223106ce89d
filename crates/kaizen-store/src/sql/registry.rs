//! The model registry: registered models, versions, tags, aliases, stages and the audit log.

use async_trait::async_trait;
use kaizen_core::{AuditEntry, Error, ModelVersion, RegisteredModel, Result, Stage, Tag};

use super::SqlStore;
use crate::{AuditRecord, NewModelVersion, RegistryStore, SearchQuery};

fn unfinished() -> Error {
    Error::invalid_state("the model registry is not implemented yet in this build")
}

#[async_trait]
impl RegistryStore for SqlStore {
    async fn create_registered_model(&self, _: &str, _: Option<&str>, _: &[Tag], _: &AuditRecord) -> Result<RegisteredModel> { Err(unfinished()) }
    async fn get_registered_model(&self, _: &str) -> Result<RegisteredModel> { Err(unfinished()) }
    async fn rename_registered_model(&self, _: &str, _: &str, _: &AuditRecord) -> Result<RegisteredModel> { Err(unfinished()) }
    async fn update_registered_model(&self, _: &str, _: Option<&str>) -> Result<RegisteredModel> { Err(unfinished()) }
    async fn delete_registered_model(&self, _: &str, _: &AuditRecord) -> Result<()> { Err(unfinished()) }
    async fn search_registered_models(&self, _: &SearchQuery) -> Result<Vec<RegisteredModel>> { Err(unfinished()) }
    async fn set_registered_model_tag(&self, _: &str, _: &Tag) -> Result<()> { Err(unfinished()) }
    async fn delete_registered_model_tag(&self, _: &str, _: &str) -> Result<()> { Err(unfinished()) }
    async fn set_alias(&self, _: &str, _: &str, _: i64, _: &AuditRecord) -> Result<()> { Err(unfinished()) }
    async fn delete_alias(&self, _: &str, _: &str, _: &AuditRecord) -> Result<()> { Err(unfinished()) }
    async fn get_version_by_alias(&self, _: &str, _: &str) -> Result<ModelVersion> { Err(unfinished()) }
    async fn create_model_version(&self, _: &NewModelVersion, _: &AuditRecord) -> Result<ModelVersion> { Err(unfinished()) }
    async fn get_model_version(&self, _: &str, _: i64) -> Result<ModelVersion> { Err(unfinished()) }
    async fn update_model_version(&self, _: &str, _: i64, _: Option<&str>) -> Result<ModelVersion> { Err(unfinished()) }
    async fn delete_model_version(&self, _: &str, _: i64, _: &AuditRecord) -> Result<()> { Err(unfinished()) }
    async fn search_model_versions(&self, _: &SearchQuery) -> Result<Vec<ModelVersion>> { Err(unfinished()) }
    async fn set_model_version_tag(&self, _: &str, _: i64, _: &Tag) -> Result<()> { Err(unfinished()) }
    async fn delete_model_version_tag(&self, _: &str, _: i64, _: &str) -> Result<()> { Err(unfinished()) }
    async fn transition_stage(&self, _: &str, _: i64, _: Stage, _: bool, _: &AuditRecord) -> Result<ModelVersion> { Err(unfinished()) }
    async fn get_latest_versions(&self, _: &str, _: &[Stage]) -> Result<Vec<ModelVersion>> { Err(unfinished()) }
    async fn audit_log(&self, _: &str) -> Result<Vec<AuditEntry>> { Err(unfinished()) }
}
