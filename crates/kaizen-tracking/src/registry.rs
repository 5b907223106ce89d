//! The model registry service: registered models, versions, aliases, stages, with MLflow's rules
//! and an audit entry for every change.

use std::sync::Arc;

use kaizen_core::limits::{self, validate_length};
use kaizen_core::search;
use kaizen_core::{AuditEntry, Error, ModelVersion, Page, RegisteredModel, Result, Stage, Tag};
use kaizen_store::{AuditRecord, MetadataStore, NewModelVersion, SearchQuery};

use crate::tracking::{check_max_results, page, parse_order_by};

/// Who is acting and why, for the audit log.
#[derive(Debug, Clone, Default)]
pub struct Actor {
    pub user: Option<String>,
    pub reason: Option<String>,
}

impl Actor {
    fn record(&self) -> AuditRecord {
        AuditRecord {
            actor: self
                .user
                .clone()
                .filter(|u| !u.is_empty())
                .unwrap_or_else(|| "unknown".into()),
            reason: self.reason.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Registry {
    store: Arc<dyn MetadataStore>,
}

fn validate_model_name(name: &str) -> Result<()> {
    if name.trim().is_empty() {
        return Err(Error::invalid("Registered model name cannot be empty."));
    }
    if name.contains('/') && name.split('/').any(|p| p == "..") {
        return Err(Error::invalid(format!(
            "Invalid registered model name '{name}'"
        )));
    }
    Ok(())
}

fn validate_alias(alias: &str) -> Result<()> {
    if alias.is_empty() {
        return Err(Error::invalid("Alias name cannot be empty."));
    }
    // MLflow reserves `latest` and version-like names (`v1`, `V2`) because `models:/m@v1` would
    // be ambiguous.
    let lower = alias.to_ascii_lowercase();
    if lower == "latest"
        || (lower.starts_with('v')
            && lower.len() > 1
            && lower[1..].chars().all(|c| c.is_ascii_digit()))
    {
        return Err(Error::invalid(format!(
            "'{alias}' alias name (case insensitive) is reserved."
        )));
    }
    if !alias
        .chars()
        .all(|c| c.is_alphanumeric() || c == '_' || c == '-')
    {
        return Err(Error::invalid(format!(
            "Invalid alias name '{alias}'. Aliases may only contain alphanumerics, underscores and dashes."
        )));
    }
    Ok(())
}

/// Parses a version number given as a string on the wire.
pub fn parse_version(version: &str) -> Result<i64> {
    version
        .trim()
        .parse::<i64>()
        .ok()
        .filter(|v| *v > 0)
        .ok_or_else(|| {
            Error::invalid(format!(
                "Model version must be a positive integer, got '{version}'"
            ))
        })
}

impl Registry {
    pub fn new(store: Arc<dyn MetadataStore>) -> Self {
        Self { store }
    }

    pub async fn create_registered_model(
        &self,
        name: &str,
        description: Option<&str>,
        tags: &[Tag],
        actor: &Actor,
    ) -> Result<RegisteredModel> {
        validate_model_name(name)?;
        for t in tags {
            limits::validate_key("tag", &t.key)?;
            validate_length(
                "Tag",
                &t.key,
                &t.value,
                limits::MAX_MODEL_REGISTRY_TAG_VALUE_LENGTH,
            )?;
        }
        self.store
            .create_registered_model(name, description, tags, &actor.record())
            .await
    }

    pub async fn get_registered_model(&self, name: &str) -> Result<RegisteredModel> {
        validate_model_name(name)?;
        self.store.get_registered_model(name).await
    }

    pub async fn rename_registered_model(
        &self,
        name: &str,
        new_name: &str,
        actor: &Actor,
    ) -> Result<RegisteredModel> {
        validate_model_name(name)?;
        validate_model_name(new_name)?;
        self.store
            .rename_registered_model(name, new_name, &actor.record())
            .await
    }

    pub async fn update_registered_model(
        &self,
        name: &str,
        description: Option<&str>,
    ) -> Result<RegisteredModel> {
        validate_model_name(name)?;
        self.store.update_registered_model(name, description).await
    }

    pub async fn delete_registered_model(&self, name: &str, actor: &Actor) -> Result<()> {
        validate_model_name(name)?;
        self.store
            .delete_registered_model(name, &actor.record())
            .await
    }

    pub async fn search_registered_models(
        &self,
        filter: &str,
        order_by: &[String],
        max_results: Option<i64>,
        page_token: Option<&str>,
    ) -> Result<Page<RegisteredModel>> {
        let max_results = check_max_results(max_results, 100, 1000)?;
        let offset = search::decode_page_token(page_token.unwrap_or(""))?;
        let query = SearchQuery {
            filter: search::parse_filter(filter)?,
            order_by: parse_order_by(order_by)?,
            max_results,
            offset,
        };
        let items = self.store.search_registered_models(&query).await?;
        Ok(page(items, max_results, offset))
    }

    pub async fn set_registered_model_tag(&self, name: &str, tag: &Tag) -> Result<()> {
        validate_model_name(name)?;
        limits::validate_key("tag", &tag.key)?;
        validate_length(
            "Tag",
            &tag.key,
            &tag.value,
            limits::MAX_MODEL_REGISTRY_TAG_VALUE_LENGTH,
        )?;
        self.store.set_registered_model_tag(name, tag).await
    }

    pub async fn delete_registered_model_tag(&self, name: &str, key: &str) -> Result<()> {
        validate_model_name(name)?;
        self.store.delete_registered_model_tag(name, key).await
    }

    pub async fn set_alias(
        &self,
        name: &str,
        alias: &str,
        version: &str,
        actor: &Actor,
    ) -> Result<()> {
        validate_model_name(name)?;
        validate_alias(alias)?;
        let version = parse_version(version)?;
        let previous = self
            .store
            .get_version_by_alias(name, alias)
            .await
            .ok()
            .map(|v| v.version);
        self.store
            .set_alias(name, alias, version, &actor.record())
            .await?;
        crate::emit(
            self.store.as_ref(),
            kaizen_core::events::ALIAS_MOVED,
            &format!("models:/{name}@{alias}"),
            serde_json::json!({
                "name": name,
                "alias": alias,
                "version": version.to_string(),
                "previous_version": previous.map(|v| v.to_string()),
                "actor": actor.record().actor,
                "reason": actor.reason,
            }),
        )
        .await;
        Ok(())
    }

    pub async fn delete_alias(&self, name: &str, alias: &str, actor: &Actor) -> Result<()> {
        validate_model_name(name)?;
        self.store.delete_alias(name, alias, &actor.record()).await
    }

    pub async fn get_version_by_alias(&self, name: &str, alias: &str) -> Result<ModelVersion> {
        validate_model_name(name)?;
        self.store.get_version_by_alias(name, alias).await
    }

    pub async fn create_model_version(
        &self,
        new: NewModelVersion,
        actor: &Actor,
    ) -> Result<ModelVersion> {
        validate_model_name(&new.name)?;
        if new.source.is_empty() {
            return Err(Error::invalid(
                "Missing value for required parameter 'source'.",
            ));
        }
        for t in &new.tags {
            limits::validate_key("tag", &t.key)?;
            validate_length(
                "Tag",
                &t.key,
                &t.value,
                limits::MAX_MODEL_REGISTRY_TAG_VALUE_LENGTH,
            )?;
        }
        let version = self
            .store
            .create_model_version(&new, &actor.record())
            .await?;
        crate::emit(
            self.store.as_ref(),
            kaizen_core::events::MODEL_VERSION_REGISTERED,
            &format!("models:/{}/{}", version.name, version.version),
            serde_json::json!({
                "name": version.name,
                "version": version.version.to_string(),
                "source": version.source,
                "run_id": version.run_id,
                "actor": actor.record().actor,
            }),
        )
        .await;
        Ok(version)
    }

    pub async fn get_model_version(&self, name: &str, version: &str) -> Result<ModelVersion> {
        validate_model_name(name)?;
        self.store
            .get_model_version(name, parse_version(version)?)
            .await
    }

    pub async fn update_model_version(
        &self,
        name: &str,
        version: &str,
        description: Option<&str>,
    ) -> Result<ModelVersion> {
        validate_model_name(name)?;
        self.store
            .update_model_version(name, parse_version(version)?, description)
            .await
    }

    pub async fn delete_model_version(
        &self,
        name: &str,
        version: &str,
        actor: &Actor,
    ) -> Result<()> {
        validate_model_name(name)?;
        self.store
            .delete_model_version(name, parse_version(version)?, &actor.record())
            .await
    }

    pub async fn search_model_versions(
        &self,
        filter: &str,
        order_by: &[String],
        max_results: Option<i64>,
        page_token: Option<&str>,
    ) -> Result<Page<ModelVersion>> {
        let max_results = check_max_results(max_results, 10_000, 200_000)?;
        let offset = search::decode_page_token(page_token.unwrap_or(""))?;
        let query = SearchQuery {
            filter: search::parse_filter(filter)?,
            order_by: parse_order_by(order_by)?,
            max_results,
            offset,
        };
        let items = self.store.search_model_versions(&query).await?;
        Ok(page(items, max_results, offset))
    }

    pub async fn set_model_version_tag(&self, name: &str, version: &str, tag: &Tag) -> Result<()> {
        validate_model_name(name)?;
        limits::validate_key("tag", &tag.key)?;
        validate_length(
            "Tag",
            &tag.key,
            &tag.value,
            limits::MAX_MODEL_REGISTRY_TAG_VALUE_LENGTH,
        )?;
        self.store
            .set_model_version_tag(name, parse_version(version)?, tag)
            .await
    }

    pub async fn delete_model_version_tag(
        &self,
        name: &str,
        version: &str,
        key: &str,
    ) -> Result<()> {
        validate_model_name(name)?;
        self.store
            .delete_model_version_tag(name, parse_version(version)?, key)
            .await
    }

    pub async fn transition_stage(
        &self,
        name: &str,
        version: &str,
        stage: &str,
        archive_existing: bool,
        actor: &Actor,
    ) -> Result<ModelVersion> {
        validate_model_name(name)?;
        let stage = Stage::parse(stage)?;
        self.store
            .transition_stage(
                name,
                parse_version(version)?,
                stage,
                archive_existing,
                &actor.record(),
            )
            .await
    }

    pub async fn get_latest_versions(
        &self,
        name: &str,
        stages: &[String],
    ) -> Result<Vec<ModelVersion>> {
        validate_model_name(name)?;
        let stages = stages
            .iter()
            .map(|s| Stage::parse(s))
            .collect::<Result<Vec<_>>>()?;
        self.store.get_latest_versions(name, &stages).await
    }

    /// Where a version's files are: its source, as MLflow answers for `get-download-uri`.
    pub async fn get_download_uri(&self, name: &str, version: &str) -> Result<String> {
        Ok(self.get_model_version(name, version).await?.source)
    }

    pub async fn audit_log(&self, name: &str) -> Result<Vec<AuditEntry>> {
        validate_model_name(name)?;
        self.store.audit_log(name).await
    }

    /// Records a decision about a model or one of its versions (a promotion gate's verdict, for
    /// one) in the audit log: `action` names it (`gate.promote`), `details` holds its evidence
    /// (JSON by convention) and `actor.reason` a sentence for people.
    pub async fn record_decision(
        &self,
        name: &str,
        version: Option<&str>,
        action: &str,
        details: &str,
        actor: &Actor,
    ) -> Result<()> {
        validate_model_name(name)?;
        let version = version.map(parse_version).transpose()?;
        self.store
            .record_audit(name, version, action, details, &actor.record())
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliases() {
        assert!(validate_alias("champion").is_ok());
        assert!(validate_alias("latest").is_err());
        assert!(validate_alias("V3").is_err());
        assert!(validate_alias("bad alias").is_err());
        assert!(parse_version("0").is_err());
        assert_eq!(parse_version("12").unwrap(), 12);
    }
}
