//! One client interface for the CLI, [`TrackingClient`], with two implementations:
//!
//! - [`LocalClient`]: in-process over [`kaizen_tracking::Services`] (the local home, or any store
//!   URI the caller opened), so the CLI needs no server;
//! - [`HttpClient`]: the MLflow REST API of a kaizen or MLflow server, spoken as the mlflow Python
//!   client speaks it (GET with a query string, POST/PATCH/DELETE with a JSON body).
//!
//! Both answer with kaizen's domain types and [`kaizen_core::Error`], so a caller branches on
//! [`kaizen_core::ErrorKind`] the same way whichever side it talks to.

mod http;
mod local;

pub use http::{Auth, HttpClient};
pub use local::LocalClient;

use async_trait::async_trait;
use kaizen_core::{
    AuditEntry, Error, ErrorKind, Experiment, ModelVersion, Page, RegisteredModel, Result, Run,
    ViewType,
};

/// The largest page asked for when a helper pages through a whole listing.
const PAGE_SIZE: i64 = 1000;

/// A run search: MLflow's `runs/search` request.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunSearch {
    pub experiment_ids: Vec<String>,
    /// An MLflow search filter such as `metrics.rmse < 0.5`; empty for all runs.
    pub filter: String,
    pub view: ViewType,
    /// Clauses such as `metrics.rmse ASC`.
    pub order_by: Vec<String>,
    pub max_results: Option<i64>,
    pub page_token: Option<String>,
}

/// What the CLI reads and changes, on the local home or on a server.
#[async_trait]
pub trait TrackingClient: Send + Sync {
    /// Where this client reads and writes, for messages: a path or a URL.
    fn target(&self) -> String;

    // ---- experiments ----

    async fn search_experiments(
        &self,
        view: ViewType,
        max_results: Option<i64>,
        page_token: Option<&str>,
    ) -> Result<Page<Experiment>>;

    /// Creates an experiment and answers its id.
    async fn create_experiment(
        &self,
        name: &str,
        artifact_location: Option<&str>,
    ) -> Result<String>;

    async fn get_experiment(&self, experiment_id: &str) -> Result<Experiment>;

    async fn get_experiment_by_name(&self, name: &str) -> Result<Experiment>;

    /// Moves an experiment (and with it its runs) to the trash.
    async fn delete_experiment(&self, experiment_id: &str) -> Result<()>;

    // ---- runs ----

    async fn search_runs(&self, search: &RunSearch) -> Result<Page<Run>>;

    async fn get_run(&self, run_id: &str) -> Result<Run>;

    async fn delete_run(&self, run_id: &str) -> Result<()>;

    // ---- registry ----

    async fn search_registered_models(
        &self,
        filter: &str,
        max_results: Option<i64>,
        page_token: Option<&str>,
    ) -> Result<Page<RegisteredModel>>;

    async fn get_registered_model(&self, name: &str) -> Result<RegisteredModel>;

    async fn search_model_versions(
        &self,
        filter: &str,
        max_results: Option<i64>,
        page_token: Option<&str>,
    ) -> Result<Page<ModelVersion>>;

    /// Points `alias` of model `name` at `version`; `reason` goes to kaizen's audit log.
    async fn set_alias(
        &self,
        name: &str,
        alias: &str,
        version: &str,
        reason: Option<&str>,
    ) -> Result<()>;

    async fn delete_alias(&self, name: &str, alias: &str, reason: Option<&str>) -> Result<()>;

    /// kaizen's audit log of a registered model, oldest first. A plain MLflow server has none.
    async fn model_history(&self, name: &str) -> Result<Vec<AuditEntry>>;

    // ---- helpers over the calls above ----

    /// Every experiment in `view`, following page tokens.
    async fn list_experiments(&self, view: ViewType) -> Result<Vec<Experiment>> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self
                .search_experiments(view, Some(PAGE_SIZE), token.as_deref())
                .await?;
            out.extend(page.items);
            match page.next_page_token.filter(|t| !t.is_empty()) {
                Some(t) => token = Some(t),
                None => return Ok(out),
            }
        }
    }

    /// An experiment by id, else by name: what a person types on the command line.
    async fn resolve_experiment(&self, id_or_name: &str) -> Result<Experiment> {
        match self.get_experiment(id_or_name).await {
            Ok(e) => return Ok(e),
            // A name is not a valid id: stores and servers answer "not found" or "invalid".
            Err(e) if matches!(e.kind, ErrorKind::NotFound | ErrorKind::InvalidParameter) => {}
            Err(e) => return Err(e),
        }
        match self.get_experiment_by_name(id_or_name).await {
            Ok(e) => Ok(e),
            Err(e) if e.kind == ErrorKind::NotFound => Err(Error::not_found(format!(
                "No experiment with id or name '{id_or_name}'"
            ))),
            Err(e) => Err(e),
        }
    }

    /// Every registered model matching `filter`, following page tokens.
    async fn list_registered_models(&self, filter: &str) -> Result<Vec<RegisteredModel>> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self
                .search_registered_models(filter, Some(PAGE_SIZE), token.as_deref())
                .await?;
            out.extend(page.items);
            match page.next_page_token.filter(|t| !t.is_empty()) {
                Some(t) => token = Some(t),
                None => return Ok(out),
            }
        }
    }

    /// Every version of registered model `name`, newest first. An unknown model is an error.
    async fn list_model_versions(&self, name: &str) -> Result<Vec<ModelVersion>> {
        // Searching for an unknown name answers nothing; say so instead.
        self.get_registered_model(name).await?;
        let filter = format!("name = {}", quote_filter_string(name));
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self
                .search_model_versions(&filter, Some(PAGE_SIZE), token.as_deref())
                .await?;
            out.extend(page.items);
            match page.next_page_token.filter(|t| !t.is_empty()) {
                Some(t) => token = Some(t),
                None => break,
            }
        }
        out.retain(|v| v.name == name);
        out.sort_by_key(|v| std::cmp::Reverse(v.version));
        Ok(out)
    }
}

/// A string literal for MLflow's search filters: single quotes, a quote inside doubled (as in
/// SQL), which kaizen's and MLflow's filter parsers both read back.
pub fn quote_filter_string(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(quote_filter_string("m"), "'m'");
        assert_eq!(quote_filter_string("it's"), "'it''s'");
        let parsed =
            kaizen_core::search::parse_filter(&format!("name = {}", quote_filter_string("it's")))
                .unwrap();
        assert_eq!(parsed[0].str_value().unwrap(), "it's");
    }
}
