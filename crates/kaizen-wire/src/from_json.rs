//! MLflow's JSON back to domain types, for the HTTP client.

use kaizen_core::{
    AuditEntry, Error, Experiment, LifecycleStage, Metric, ModelAlias, ModelVersion,
    RegisteredModel, Result, Run, RunData, RunInfo, RunInputs, RunOutputs, RunStatus, Stage, Tag,
};
use serde_json::Value;

use crate::de::{parse_f64, parse_i64};

fn bad(what: &str) -> Error {
    Error::invalid(format!(
        "Malformed response from the tracking server: {what}"
    ))
}

fn s(v: &Value, key: &str) -> String {
    match v.get(key) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    }
}

fn opt_s(v: &Value, key: &str) -> Option<String> {
    match v.get(key) {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    }
}

fn opt_i(v: &Value, key: &str) -> Option<i64> {
    v.get(key).and_then(|x| parse_i64(x).ok())
}

fn list<'a>(v: &'a Value, key: &str) -> &'a [Value] {
    v.get(key)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

pub fn tags(v: &Value, key: &str) -> Vec<Tag> {
    list(v, key)
        .iter()
        .map(|t| Tag::new(s(t, "key"), s(t, "value")))
        .collect()
}

pub fn experiment(v: &Value) -> Result<Experiment> {
    Ok(Experiment {
        experiment_id: s(v, "experiment_id"),
        name: s(v, "name"),
        artifact_location: s(v, "artifact_location"),
        lifecycle_stage: LifecycleStage::parse(&s(v, "lifecycle_stage"))
            .unwrap_or(LifecycleStage::Active),
        creation_time: opt_i(v, "creation_time").unwrap_or(0),
        last_update_time: opt_i(v, "last_update_time").unwrap_or(0),
        tags: tags(v, "tags"),
    })
}

pub fn metric(v: &Value) -> Result<Metric> {
    let value = v
        .get("value")
        .map(parse_f64)
        .transpose()
        .map_err(|e| bad(&e))?
        .unwrap_or(0.0);
    Ok(Metric::new(
        s(v, "key"),
        value,
        opt_i(v, "timestamp").unwrap_or(0),
        opt_i(v, "step").unwrap_or(0),
    ))
}

pub fn run_info(v: &Value) -> Result<RunInfo> {
    Ok(RunInfo {
        run_id: opt_s(v, "run_id").unwrap_or_else(|| s(v, "run_uuid")),
        run_name: s(v, "run_name"),
        experiment_id: s(v, "experiment_id"),
        user_id: s(v, "user_id"),
        status: RunStatus::parse(&s(v, "status")).unwrap_or(RunStatus::Running),
        start_time: opt_i(v, "start_time"),
        end_time: opt_i(v, "end_time"),
        artifact_uri: s(v, "artifact_uri"),
        lifecycle_stage: LifecycleStage::parse(&s(v, "lifecycle_stage"))
            .unwrap_or(LifecycleStage::Active),
    })
}

pub fn run(v: &Value) -> Result<Run> {
    let info = run_info(v.get("info").ok_or_else(|| bad("run without info"))?)?;
    let empty = Value::Null;
    let data = v.get("data").unwrap_or(&empty);
    Ok(Run {
        info,
        data: RunData {
            metrics: list(data, "metrics")
                .iter()
                .map(metric)
                .collect::<Result<_>>()?,
            params: tags(data, "params"),
            tags: tags(data, "tags"),
        },
        inputs: RunInputs::default(),
        outputs: RunOutputs::default(),
    })
}

pub fn model_version(v: &Value) -> Result<ModelVersion> {
    Ok(ModelVersion {
        name: s(v, "name"),
        version: opt_i(v, "version").ok_or_else(|| bad("model version without a version"))?,
        creation_timestamp: opt_i(v, "creation_timestamp").unwrap_or(0),
        last_updated_timestamp: opt_i(v, "last_updated_timestamp").unwrap_or(0),
        description: opt_s(v, "description"),
        user_id: opt_s(v, "user_id"),
        current_stage: Stage::parse(&opt_s(v, "current_stage").unwrap_or_else(|| "None".into()))
            .unwrap_or(Stage::None),
        source: s(v, "source"),
        run_id: opt_s(v, "run_id"),
        status: s(v, "status"),
        status_message: opt_s(v, "status_message"),
        tags: tags(v, "tags"),
        run_link: opt_s(v, "run_link"),
        aliases: list(v, "aliases")
            .iter()
            .filter_map(|a| a.as_str().map(String::from))
            .collect(),
        model_id: opt_s(v, "model_id"),
    })
}

pub fn registered_model(v: &Value) -> Result<RegisteredModel> {
    Ok(RegisteredModel {
        name: s(v, "name"),
        creation_timestamp: opt_i(v, "creation_timestamp").unwrap_or(0),
        last_updated_timestamp: opt_i(v, "last_updated_timestamp").unwrap_or(0),
        description: opt_s(v, "description"),
        latest_versions: list(v, "latest_versions")
            .iter()
            .map(model_version)
            .collect::<Result<_>>()?,
        tags: tags(v, "tags"),
        aliases: list(v, "aliases")
            .iter()
            .map(|a| ModelAlias {
                alias: s(a, "alias"),
                version: s(a, "version"),
            })
            .collect(),
    })
}

pub fn audit_entry(v: &Value) -> Result<AuditEntry> {
    Ok(AuditEntry {
        id: opt_i(v, "id").unwrap_or(0),
        timestamp: opt_i(v, "timestamp").unwrap_or(0),
        actor: s(v, "actor"),
        action: s(v, "action"),
        model_name: s(v, "model_name"),
        version: opt_i(v, "version"),
        details: s(v, "details"),
        reason: opt_s(v, "reason"),
    })
}
