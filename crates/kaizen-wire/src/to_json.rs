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

/// A metric serialized straight to the output, without building a JSON tree: metric histories
/// run to thousands of points.
pub struct MetricOut<'a>(pub &'a Metric);

impl serde::Serialize for MetricOut<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let m = self.0;
        let mut map = s.serialize_map(None)?;
        map.serialize_entry("key", &m.key)?;
        if m.value.is_finite() {
            map.serialize_entry("value", &m.value)?;
        } else {
            map.serialize_entry("value", &double(m.value))?;
        }
        map.serialize_entry("timestamp", &m.timestamp)?;
        map.serialize_entry("step", &m.step)?;
        for (k, v) in [
            ("dataset_name", &m.dataset_name),
            ("dataset_digest", &m.dataset_digest),
            ("model_id", &m.model_id),
            ("run_id", &m.run_id),
        ] {
            if let Some(v) = v {
                map.serialize_entry(k, v)?;
            }
        }
        map.end()
    }
}

/// The answer of `metrics/get-history`.
#[derive(serde::Serialize)]
pub struct MetricHistory<'a> {
    pub metrics: Vec<MetricOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_page_token: Option<String>,
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
    serde_json::to_value(MetricOut(m)).unwrap_or(Value::Null)
}

pub fn run_info(i: &RunInfo) -> Value {
    serde_json::to_value(RunInfoOut(i)).unwrap_or(Value::Null)
}

pub fn run(r: &Run) -> Value {
    serde_json::to_value(RunOut(r)).unwrap_or(Value::Null)
}

/// A run's info in MLflow's shape (both `run_id` and the legacy `run_uuid`).
pub struct RunInfoOut<'a>(pub &'a RunInfo);

impl serde::Serialize for RunInfoOut<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let i = self.0;
        let mut map = s.serialize_map(None)?;
        map.serialize_entry("run_id", &i.run_id)?;
        map.serialize_entry("run_uuid", &i.run_id)?;
        map.serialize_entry("run_name", &i.run_name)?;
        map.serialize_entry("experiment_id", &i.experiment_id)?;
        map.serialize_entry("user_id", &i.user_id)?;
        map.serialize_entry("status", i.status.as_str())?;
        if let Some(t) = i.start_time {
            map.serialize_entry("start_time", &t)?;
        }
        if let Some(t) = i.end_time {
            map.serialize_entry("end_time", &t)?;
        }
        map.serialize_entry("artifact_uri", &i.artifact_uri)?;
        map.serialize_entry("lifecycle_stage", i.lifecycle_stage.as_str())?;
        map.end()
    }
}

struct DatasetInputOut<'a>(&'a DatasetInput);

impl serde::Serialize for DatasetInputOut<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let d = &self.0.dataset;
        let mut ds = Map::new();
        ds.insert("name".into(), json!(d.name));
        ds.insert("digest".into(), json!(d.digest));
        ds.insert("source_type".into(), json!(d.source_type));
        ds.insert("source".into(), json!(d.source));
        put_opt(&mut ds, "schema", d.schema.clone());
        put_opt(&mut ds, "profile", d.profile.clone());
        let mut map = s.serialize_map(Some(2))?;
        map.serialize_entry("tags", &self.0.tags)?;
        map.serialize_entry("dataset", &ds)?;
        map.end()
    }
}

/// A run in MLflow's shape, serialized straight to the output: a search answers with up to
/// thousands of them.
pub struct RunOut<'a>(pub &'a Run);

impl serde::Serialize for RunOut<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        #[derive(serde::Serialize)]
        struct Data<'a> {
            metrics: Vec<MetricOut<'a>>,
            params: &'a [Tag],
            tags: &'a [Tag],
        }
        #[derive(serde::Serialize)]
        struct ModelIn<'a> {
            model_id: &'a str,
        }
        #[derive(serde::Serialize)]
        struct ModelOutput<'a> {
            model_id: &'a str,
            step: i64,
        }
        #[derive(serde::Serialize)]
        struct Inputs<'a> {
            dataset_inputs: Vec<DatasetInputOut<'a>>,
            model_inputs: Vec<ModelIn<'a>>,
        }
        #[derive(serde::Serialize)]
        struct Outputs<'a> {
            model_outputs: Vec<ModelOutput<'a>>,
        }
        let r = self.0;
        let mut map = s.serialize_map(Some(4))?;
        map.serialize_entry("info", &RunInfoOut(&r.info))?;
        map.serialize_entry(
            "data",
            &Data {
                metrics: r.data.metrics.iter().map(MetricOut).collect(),
                params: &r.data.params,
                tags: &r.data.tags,
            },
        )?;
        map.serialize_entry(
            "inputs",
            &Inputs {
                dataset_inputs: r
                    .inputs
                    .dataset_inputs
                    .iter()
                    .map(DatasetInputOut)
                    .collect(),
                model_inputs: r
                    .inputs
                    .model_inputs
                    .iter()
                    .map(|m| ModelIn {
                        model_id: &m.model_id,
                    })
                    .collect(),
            },
        )?;
        map.serialize_entry(
            "outputs",
            &Outputs {
                model_outputs: r
                    .outputs
                    .model_outputs
                    .iter()
                    .map(|m| ModelOutput {
                        model_id: &m.model_id,
                        step: m.step.unwrap_or(0),
                    })
                    .collect(),
            },
        )?;
        map.end()
    }
}

/// The answer of `runs/search`.
#[derive(serde::Serialize)]
pub struct RunPage<'a> {
    pub runs: Vec<RunOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_page_token: Option<String>,
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
