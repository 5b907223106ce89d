//! Domain types to MLflow's JSON.

use kaizen_core::{
    AuditEntry, DatasetInput, Experiment, LoggedModel, Metric, ModelVersion, RegisteredModel, Run,
    RunInfo, Tag,
};
use serde_json::{Map, Value, json};

/// A double as proto3 JSON writes it: NaN and infinities as strings.
pub fn double(v: f64) -> Value {
    if v.is_nan() {
        json!("NaN")
    } else if v == f64::INFINITY {
        json!("Infinity")
    } else if v == f64::NEG_INFINITY {
        json!("-Infinity")
    } else {
        json!(v)
    }
}

pub fn tags(tags: &[Tag]) -> Value {
    Value::Array(
        tags.iter()
            .map(|t| json!({"key": t.key, "value": t.value}))
            .collect(),
    )
}

/// Inserts `key` only when the value is present, as proto3 JSON omits unset fields.
fn put_opt<T: Into<Value>>(obj: &mut Map<String, Value>, key: &str, value: Option<T>) {
    if let Some(v) = value {
        obj.insert(key.to_string(), v.into());
    }
}

pub fn experiment(e: &Experiment) -> Value {
    json!({
        "experiment_id": e.experiment_id,
        "name": e.name,
        "artifact_location": e.artifact_location,
        "lifecycle_stage": e.lifecycle_stage.as_str(),
        "creation_time": e.creation_time,
        "last_update_time": e.last_update_time,
        "tags": tags(&e.tags),
    })
}

pub fn metric(m: &Metric) -> Value {
    let mut obj = Map::new();
    obj.insert("key".into(), json!(m.key));
    obj.insert("value".into(), double(m.value));
    obj.insert("timestamp".into(), json!(m.timestamp));
    obj.insert("step".into(), json!(m.step));
    put_opt(&mut obj, "dataset_name", m.dataset_name.clone());
    put_opt(&mut obj, "dataset_digest", m.dataset_digest.clone());
    put_opt(&mut obj, "model_id", m.model_id.clone());
    put_opt(&mut obj, "run_id", m.run_id.clone());
    Value::Object(obj)
}

pub fn run_info(i: &RunInfo) -> Value {
    let mut obj = Map::new();
    obj.insert("run_id".into(), json!(i.run_id));
    obj.insert("run_uuid".into(), json!(i.run_id));
    obj.insert("run_name".into(), json!(i.run_name));
    obj.insert("experiment_id".into(), json!(i.experiment_id));
    obj.insert("user_id".into(), json!(i.user_id));
    obj.insert("status".into(), json!(i.status.as_str()));
    put_opt(&mut obj, "start_time", i.start_time);
    put_opt(&mut obj, "end_time", i.end_time);
    obj.insert("artifact_uri".into(), json!(i.artifact_uri));
    obj.insert("lifecycle_stage".into(), json!(i.lifecycle_stage.as_str()));
    Value::Object(obj)
}

fn dataset_input(d: &DatasetInput) -> Value {
    let mut ds = Map::new();
    ds.insert("name".into(), json!(d.dataset.name));
    ds.insert("digest".into(), json!(d.dataset.digest));
    ds.insert("source_type".into(), json!(d.dataset.source_type));
    ds.insert("source".into(), json!(d.dataset.source));
    put_opt(&mut ds, "schema", d.dataset.schema.clone());
    put_opt(&mut ds, "profile", d.dataset.profile.clone());
    json!({"tags": tags(&d.tags), "dataset": Value::Object(ds)})
}

pub fn run(r: &Run) -> Value {
    json!({
        "info": run_info(&r.info),
        "data": {
            "metrics": r.data.metrics.iter().map(|m| json!({
                "key": m.key, "value": double(m.value), "timestamp": m.timestamp, "step": m.step
            })).collect::<Vec<_>>(),
            "params": tags(&r.data.params),
            "tags": tags(&r.data.tags),
        },
        "inputs": {
            "dataset_inputs": r.inputs.dataset_inputs.iter().map(dataset_input).collect::<Vec<_>>(),
            "model_inputs": r.inputs.model_inputs.iter().map(|m| json!({"model_id": m.model_id})).collect::<Vec<_>>(),
        },
        "outputs": {
            "model_outputs": r.outputs.model_outputs.iter().map(|m| json!({"model_id": m.model_id, "step": m.step.unwrap_or(0)})).collect::<Vec<_>>(),
        },
    })
}

pub fn logged_model(m: &LoggedModel) -> Value {
    let mut info = Map::new();
    info.insert("model_id".into(), json!(m.model_id));
    info.insert("experiment_id".into(), json!(m.experiment_id));
    info.insert("name".into(), json!(m.name));
    info.insert(
        "creation_timestamp_ms".into(),
        json!(m.creation_timestamp_ms),
    );
    info.insert(
        "last_updated_timestamp_ms".into(),
        json!(m.last_updated_timestamp_ms),
    );
    info.insert("artifact_uri".into(), json!(m.artifact_location));
    info.insert("status".into(), json!(m.status.as_str()));
    put_opt(&mut info, "model_type", m.model_type.clone());
    put_opt(&mut info, "source_run_id", m.source_run_id.clone());
    put_opt(&mut info, "status_message", m.status_message.clone());
    info.insert("tags".into(), tags(&m.tags));
    json!({
        "info": Value::Object(info),
        "data": {
            "params": tags(&m.params),
            "metrics": m.metrics.iter().map(metric).collect::<Vec<_>>(),
        }
    })
}

pub fn model_version(v: &ModelVersion) -> Value {
    let mut obj = Map::new();
    obj.insert("name".into(), json!(v.name));
    obj.insert("version".into(), json!(v.version.to_string()));
    obj.insert("creation_timestamp".into(), json!(v.creation_timestamp));
    obj.insert(
        "last_updated_timestamp".into(),
        json!(v.last_updated_timestamp),
    );
    put_opt(&mut obj, "description", v.description.clone());
    put_opt(&mut obj, "user_id", v.user_id.clone());
    obj.insert("current_stage".into(), json!(v.current_stage.as_str()));
    obj.insert("source".into(), json!(v.source));
    put_opt(&mut obj, "run_id", v.run_id.clone());
    obj.insert("status".into(), json!(v.status));
    put_opt(&mut obj, "status_message", v.status_message.clone());
    obj.insert("tags".into(), tags(&v.tags));
    put_opt(&mut obj, "run_link", v.run_link.clone());
    obj.insert("aliases".into(), json!(v.aliases));
    put_opt(&mut obj, "model_id", v.model_id.clone());
    Value::Object(obj)
}

pub fn registered_model(m: &RegisteredModel) -> Value {
    let mut obj = Map::new();
    obj.insert("name".into(), json!(m.name));
    obj.insert("creation_timestamp".into(), json!(m.creation_timestamp));
    obj.insert(
        "last_updated_timestamp".into(),
        json!(m.last_updated_timestamp),
    );
    put_opt(&mut obj, "description", m.description.clone());
    obj.insert(
        "latest_versions".into(),
        Value::Array(m.latest_versions.iter().map(model_version).collect()),
    );
    obj.insert("tags".into(), tags(&m.tags));
    obj.insert(
        "aliases".into(),
        Value::Array(
            m.aliases
                .iter()
                .map(|a| json!({"alias": a.alias, "version": a.version}))
                .collect(),
        ),
    );
    Value::Object(obj)
}

pub fn audit_entry(a: &AuditEntry) -> Value {
    json!({
        "id": a.id,
        "timestamp": a.timestamp,
        "actor": a.actor,
        "action": a.action,
        "model_name": a.model_name,
        "version": a.version.map(|v| v.to_string()),
        "details": a.details,
        "reason": a.reason,
    })
}

/// Adds `next_page_token` to a response object when there is a next page.
pub fn with_page_token(mut v: Value, token: Option<String>) -> Value {
    if let (Some(t), Value::Object(obj)) = (token, &mut v) {
        obj.insert("next_page_token".into(), json!(t));
    }
    v
}
