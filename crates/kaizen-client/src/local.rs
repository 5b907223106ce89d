//! The in-process client: calls the tracking and registry services directly.

use async_trait::async_trait;
use kaizen_core::{
    AuditEntry, Experiment, ModelVersion, Page, RegisteredModel, Result, Run, ViewType,
};
use kaizen_tracking::{Actor, Services};

use crate::{RunSearch, TrackingClient};

/// A client over services opened in this process (by the caller, on the local home or any store).
#[derive(Clone)]
pub struct LocalClient {
    services: Services,
    user: Option<String>,
    target: String,
}

impl LocalClient {
    /// `target` names what was opened (a path or store URI), for messages.
    pub fn new(services: Services, target: impl Into<String>) -> Self {
        Self {
            services,
            user: None,
            target: target.into(),
        }
    }

    /// The user recorded in the audit log for registry changes (default `unknown`).
    pub fn with_user(mut self, user: Option<String>) -> Self {
        self.user = user.filter(|u| !u.is_empty());
        self
    }

    pub fn services(&self) -> &Services {
        &self.services
    }

    fn actor(&self, reason: Option<&str>) -> Actor {
        Actor {
            user: self.user.clone(),
            reason: reason.filter(|r| !r.is_empty()).map(str::to_string),
        }
    }
}

#[async_trait]
impl TrackingClient for LocalClient {
    fn target(&self) -> String {
        self.target.clone()
    }

    async fn search_experiments(
        &self,
        view: ViewType,
        max_results: Option<i64>,
        page_token: Option<&str>,
    ) -> Result<Page<Experiment>> {
        self.services
            .tracking
            .search_experiments(view, "", &[], max_results, page_token)
            .await
    }

    async fn create_experiment(
        &self,
        name: &str,
        artifact_location: Option<&str>,
    ) -> Result<String> {
        self.services
            .tracking
            .create_experiment(name, artifact_location, &[])
            .await
    }

    async fn get_experiment(&self, experiment_id: &str) -> Result<Experiment> {
        self.services.tracking.get_experiment(experiment_id).await
    }

    async fn get_experiment_by_name(&self, name: &str) -> Result<Experiment> {
        self.services.tracking.get_experiment_by_name(name).await
    }

    async fn delete_experiment(&self, experiment_id: &str) -> Result<()> {
        self.services
            .tracking
            .delete_experiment(experiment_id)
            .await
    }

    async fn search_runs(&self, search: &RunSearch) -> Result<Page<Run>> {
        self.services
            .tracking
            .search_runs(
                &search.experiment_ids,
                &search.filter,
                search.view,
                &search.order_by,
                search.max_results,
                search.page_token.as_deref(),
            )
            .await
    }

    async fn get_run(&self, run_id: &str) -> Result<Run> {
        self.services.tracking.get_run(run_id).await
    }

    async fn delete_run(&self, run_id: &str) -> Result<()> {
        self.services.tracking.delete_run(run_id).await
    }

    async fn search_registered_models(
        &self,
        filter: &str,
        max_results: Option<i64>,
        page_token: Option<&str>,
    ) -> Result<Page<RegisteredModel>> {
        self.services
            .registry
            .search_registered_models(filter, &[], max_results, page_token)
            .await
    }

    async fn get_registered_model(&self, name: &str) -> Result<RegisteredModel> {
        self.services.registry.get_registered_model(name).await
    }

    async fn search_model_versions(
        &self,
        filter: &str,
        max_results: Option<i64>,
        page_token: Option<&str>,
    ) -> Result<Page<ModelVersion>> {
        self.services
            .registry
            .search_model_versions(filter, &[], max_results, page_token)
            .await
    }

    async fn set_alias(
        &self,
        name: &str,
        alias: &str,
        version: &str,
        reason: Option<&str>,
    ) -> Result<()> {
        self.services
            .registry
            .set_alias(name, alias, version, &self.actor(reason))
            .await
    }

    async fn delete_alias(&self, name: &str, alias: &str, reason: Option<&str>) -> Result<()> {
        self.services
            .registry
            .delete_alias(name, alias, &self.actor(reason))
            .await
    }

    async fn model_history(&self, name: &str) -> Result<Vec<AuditEntry>> {
        self.services.registry.audit_log(name).await
    }
}
