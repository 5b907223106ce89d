//! Size limits and name rules, the same as MLflow's so that a client sees the same refusals.

use crate::{Error, Result};

pub const MAX_PARAM_VAL_LENGTH: usize = 6000;
pub const MAX_TAG_VAL_LENGTH: usize = 8000;
pub const MAX_EXPERIMENT_TAG_VAL_LENGTH: usize = 5000;
pub const MAX_ENTITY_KEY_LENGTH: usize = 250;
pub const MAX_MODEL_REGISTRY_TAG_VALUE_LENGTH: usize = 100_000;
pub const MAX_METRICS_PER_BATCH: usize = 1000;
pub const MAX_PARAMS_TAGS_PER_BATCH: usize = 100;
pub const MAX_ENTITIES_PER_BATCH: usize = 1000;
pub const MAX_RESULTS_SEARCH_RUNS: i64 = 50_000;
pub const MAX_RESULTS_GET_METRIC_HISTORY: i64 = 25_000;
pub const SEARCH_MAX_RESULTS_DEFAULT: i64 = 1000;
pub const MAX_EXPERIMENT_NAME_LENGTH: usize = 500;

/// Checks a metric, param or tag key: MLflow allows alphanumerics, `_ - . / :` and spaces, and keys
/// that would escape a directory are refused because the file store used them as paths.
pub fn validate_key(what: &str, key: &str) -> Result<()> {
    if key.is_empty() {
        return Err(Error::invalid(format!(
            "Missing value for required parameter '{what}'."
        )));
    }
    if key.chars().count() > MAX_ENTITY_KEY_LENGTH {
        return Err(Error::invalid(format!(
            "{what} '{}' had length {}, which exceeded length limit of {MAX_ENTITY_KEY_LENGTH}",
            truncate(key, 40),
            key.chars().count()
        )));
    }
    let allowed = |c: char| c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | ' ' | '/' | ':');
    if !key.chars().all(allowed) {
        return Err(Error::invalid(format!(
            "Invalid {what} name: '{key}'. Names may only contain alphanumerics, underscores (_), \
             dashes (-), periods (.), spaces ( ), colon(:) and slashes (/)."
        )));
    }
    if key.starts_with('/') || key.split('/').any(|part| part == "..") {
        return Err(Error::invalid(format!(
            "Invalid {what} name: '{key}'. Names cannot be absolute paths or contain '..'."
        )));
    }
    Ok(())
}

/// Checks a value's length, counting characters as MLflow does.
pub fn validate_length(what: &str, key: &str, value: &str, limit: usize) -> Result<()> {
    let len = value.chars().count();
    if len > limit {
        return Err(Error::invalid(format!(
            "{what} value '{}' had length {len}, which exceeded length limit of {limit} (key: '{key}')",
            truncate(value, 40)
        )));
    }
    Ok(())
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        format!("{}...", s.chars().take(n).collect::<String>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys() {
        assert!(validate_key("metric", "train/loss:1 a.b-c").is_ok());
        assert!(validate_key("metric", "").is_err());
        assert!(validate_key("metric", "../x").is_err());
        assert!(validate_key("metric", "/abs").is_err());
        assert!(validate_key("metric", "a$b").is_err());
        assert!(validate_key("metric", &"k".repeat(251)).is_err());
    }

    #[test]
    fn lengths() {
        assert!(validate_length("Param", "k", &"v".repeat(6000), MAX_PARAM_VAL_LENGTH).is_ok());
        let err =
            validate_length("Param", "k", &"v".repeat(6001), MAX_PARAM_VAL_LENGTH).unwrap_err();
        assert!(
            err.message.contains("exceeded length limit of 6000"),
            "{}",
            err.message
        );
    }
}
