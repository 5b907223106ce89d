//! Experiments, runs, metrics, params, tags and run inputs/outputs.

use std::collections::HashMap;

use async_trait::async_trait;
use kaizen_core::search::{Comparison, EntityType, Op, OrderBy, RunAttribute, Value};
use kaizen_core::{
    DatasetInput, Error, Experiment, LifecycleStage, Metric, ModelIo, Param, Result, Run, RunData,
    RunInfo, RunInputs, RunOutputs, RunStatus, Tag, ViewType,
};
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use super::{
    Arg, Dialect, Sql, SqlStore, db_err, experiment_key, is_unique_violation, stored_value,
    string_cond, values_list,
};
use crate::{RunUpdate, SearchQuery, TrackingStore};

/// Rows per multi-row INSERT: well under both backends' bound-parameter limits.
const INSERT_CHUNK: usize = 100;
/// Metric rows per INSERT: 500 rows of 9 columns stay under PostgreSQL's 65,535 and SQLite's
/// 32,766 bound parameters.
const METRIC_CHUNK: usize = 500;

fn experiment_from_row(row: &AnyRow, tags: Vec<Tag>) -> Result<Experiment> {
    Ok(Experiment {
        experiment_id: row.get::<i64, _>("experiment_id").to_string(),
        name: row.get("name"),
        artifact_location: row.get("artifact_location"),
        lifecycle_stage: LifecycleStage::parse(&row.get::<String, _>("lifecycle_stage"))?,
        creation_time: row.get("creation_time"),
        last_update_time: row.get("last_update_time"),
        tags,
    })
}

fn run_info_from_row(row: &AnyRow) -> Result<RunInfo> {
    Ok(RunInfo {
        run_id: row.get("run_uuid"),
        run_name: row.get("name"),
        experiment_id: row.get::<i64, _>("experiment_id").to_string(),
        user_id: row.get("user_id"),
        status: RunStatus::parse(&row.get::<String, _>("status"))?,
        start_time: row.try_get::<Option<i64>, _>("start_time").ok().flatten(),
        end_time: row.try_get::<Option<i64>, _>("end_time").ok().flatten(),
        artifact_uri: row.get("artifact_uri"),
        lifecycle_stage: LifecycleStage::parse(&row.get::<String, _>("lifecycle_stage"))?,
    })
}

const RUN_COLUMNS: &str = "r.run_uuid, r.name, r.experiment_id, r.user_id, r.status, r.start_time, r.end_time, r.artifact_uri, r.lifecycle_stage";

impl SqlStore {
    async fn experiment_tags(&self, ids: &[i64]) -> Result<HashMap<i64, Vec<Tag>>> {
        let mut out: HashMap<i64, Vec<Tag>> = HashMap::new();
        if ids.is_empty() {
            return Ok(out);
        }
        let mut sql = Sql::new(
            "SELECT experiment_id, key, value FROM experiment_tags WHERE experiment_id IN (",
        );
        let list: Vec<String> = ids.iter().map(|id| sql.arg(Arg::I64(*id))).collect();
        sql.push(&list.join(", ")).push(") ORDER BY key");
        for row in sql
            .query(self.dialect)
            .fetch_all(&self.read)
            .await
            .map_err(db_err)?
        {
            out.entry(row.get("experiment_id"))
                .or_default()
                .push(Tag::new(
                    row.get::<String, _>("key"),
                    row.get::<String, _>("value"),
                ));
        }
        Ok(out)
    }

    /// Fails with NOT_FOUND unless the run exists, and with INVALID_PARAMETER_VALUE unless it is
    /// active, as MLflow requires before any write to a run.
    async fn check_run_active(tx: &mut Transaction<'_, Any>, run_id: &str) -> Result<()> {
        let row = sqlx::query("SELECT lifecycle_stage FROM runs WHERE run_uuid = $1")
            .bind(run_id)
            .fetch_optional(&mut **tx)
            .await
            .map_err(db_err)?
            .ok_or_else(|| Error::not_found(format!("Run with id={run_id} not found")))?;
        let stage: String = row.get(0);
        if stage != "active" {
            return Err(Error::invalid(format!(
                "The run {run_id} must be in the 'active' state. Current state is {stage}."
            )));
        }
        Ok(())
    }

    /// Loads params, tags, latest metrics, inputs and outputs of the given runs in five queries.
    async fn hydrate_runs(&self, infos: Vec<RunInfo>) -> Result<Vec<Run>> {
        if infos.is_empty() {
            return Ok(Vec::new());
        }
        let index: HashMap<String, usize> = infos
            .iter()
            .enumerate()
            .map(|(i, r)| (r.run_id.clone(), i))
            .collect();
        let mut runs: Vec<Run> = infos
            .into_iter()
            .map(|info| Run {
                info,
                data: RunData::default(),
                inputs: RunInputs::default(),
                outputs: RunOutputs::default(),
            })
            .collect();

        // Everything about the runs in one statement and one row: a JSON array per kind of child.
        // A page of runs has thousands of params, tags and metrics, and the driver's cost per row
        // and per round trip dominated.
        let d = self.dialect;
        let mut sql = Sql::new("WITH ids(id) AS (VALUES ");
        let ids: Vec<String> = index
            .keys()
            .map(|id| format!("(CAST({} AS TEXT))", sql.arg(Arg::Str(id.clone()))))
            .collect();
        sql.push(&ids.join(", "));
        // CROSS JOIN makes SQLite drive from the ids into the primary keys (without statistics it
        // may otherwise scan a whole table); aggregates are unordered (sorted below) so that SQLite
        // builds no temporary b-trees.
        sql.push(&format!(
            ") SELECT \
             (SELECT {params} FROM ids CROSS JOIN params p WHERE p.run_uuid = ids.id) AS params, \
             (SELECT {tags} FROM ids CROSS JOIN run_tags t WHERE t.run_uuid = ids.id) AS tags, \
             (SELECT {metrics} FROM ids CROSS JOIN latest_metrics m WHERE m.run_uuid = ids.id) AS metrics, \
             (SELECT {datasets} FROM inputs i JOIN datasets ds ON ds.dataset_uuid = i.source_id \
              WHERE i.source_type = 'DATASET' AND i.destination_type = 'RUN' AND i.destination_id IN (SELECT id FROM ids)) AS datasets, \
             (SELECT {input_tags} FROM input_tags t JOIN inputs i ON i.input_uuid = t.input_uuid \
              WHERE i.source_type = 'DATASET' AND i.destination_id IN (SELECT id FROM ids)) AS input_tags, \
             (SELECT {models} FROM inputs \
              WHERE (source_type = 'MODEL_OUTPUT' AND destination_id IN (SELECT id FROM ids)) \
                 OR (source_type = 'RUN_OUTPUT' AND source_id IN (SELECT id FROM ids))) AS models",
            params = d.json_rows_unordered(&["p.run_uuid", "p.key", "p.value"]),
            tags = d.json_rows_unordered(&["t.run_uuid", "t.key", "t.value"]),
            metrics = d.json_rows_unordered(&[
                "m.run_uuid",
                "m.key",
                &d.exact_float_text("m.value"),
                "m.is_nan",
                "m.timestamp",
                "m.step"
            ]),
            datasets = d.json_rows(
                &["i.input_uuid", "i.destination_id", "ds.name", "ds.digest", "ds.source_type", "ds.source", "ds.schema", "ds.profile"],
                "ds.name, ds.digest"
            ),
            input_tags = d.json_rows(&["t.input_uuid", "t.key", "t.value"], "t.key"),
            models = d.json_rows(&["source_type", "source_id", "destination_id", "step"], "source_id"),
        ));
        let row = sql.query(d).fetch_one(&self.read).await.map_err(db_err)?;
        let column = |i: usize| -> Result<Option<String>> {
            row.try_get::<Option<String>, _>(i).map_err(db_err)
        };

        for (i, tags) in [(0, false), (1, true)] {
            let rows: Vec<(String, String, String)> = decode_rows(column(i)?)?;
            for (run_id, key, value) in rows {
                let run = &mut runs[index[&run_id]];
                let target = if tags {
                    &mut run.data.tags
                } else {
                    &mut run.data.params
                };
                target.push(Tag::new(key, value));
            }
        }
        let rows: Vec<(String, String, String, i64, i64, i64)> = decode_rows(column(2)?)?;
        for (run_id, key, value, is_nan, timestamp, step) in rows {
            let value = if is_nan != 0 {
                f64::NAN
            } else {
                parse_exact_float(&value)?
            };
            runs[index[&run_id]]
                .data
                .metrics
                .push(Metric::new(key, value, timestamp, step));
        }

        type DatasetRow = (
            String,
            String,
            String,
            String,
            String,
            String,
            Option<String>,
            Option<String>,
        );
        let datasets: Vec<DatasetRow> = decode_rows(column(3)?)?;
        if !datasets.is_empty() {
            let mut input_tags: HashMap<String, Vec<Tag>> = HashMap::new();
            let rows: Vec<(String, String, String)> = decode_rows(column(4)?)?;
            for (input_uuid, key, value) in rows {
                input_tags
                    .entry(input_uuid)
                    .or_default()
                    .push(Tag::new(key, value));
            }
            for (input_uuid, run_id, name, digest, source_type, source, schema, profile) in datasets
            {
                runs[index[&run_id]]
                    .inputs
                    .dataset_inputs
                    .push(DatasetInput {
                        tags: input_tags.remove(&input_uuid).unwrap_or_default(),
                        dataset: kaizen_core::Dataset {
                            name,
                            digest,
                            source_type,
                            source,
                            schema,
                            profile,
                        },
                    });
            }
        }

        for run in &mut runs {
            run.data.params.sort_unstable_by(|a, b| a.key.cmp(&b.key));
            run.data.tags.sort_unstable_by(|a, b| a.key.cmp(&b.key));
            run.data.metrics.sort_unstable_by(|a, b| a.key.cmp(&b.key));
        }

        // Logged models used by (MODEL_OUTPUT -> run) or produced by (run -> RUN_OUTPUT) the runs.
        let rows: Vec<(String, String, String, Option<i64>)> = decode_rows(column(5)?)?;
        for (source_type, source_id, destination_id, step) in rows {
            if source_type == "MODEL_OUTPUT" {
                if let Some(&i) = index.get(&destination_id) {
                    runs[i].inputs.model_inputs.push(ModelIo {
                        model_id: source_id,
                        step: None,
                    });
                }
            } else if let Some(&i) = index.get(&source_id) {
                runs[i].outputs.model_outputs.push(ModelIo {
                    model_id: destination_id,
                    step,
                });
            }
        }
        Ok(runs)
    }

    /// Appends the SQL condition for one run filter comparison. Metric, param and tag conditions
    /// are correlated EXISTS probes into primary keys, so a search walks runs in the index order
    /// of `start_time` and stops at the page's end instead of collecting every match first.
    fn run_condition(&self, sql: &mut Sql, c: &Comparison) -> Result<()> {
        let d = self.dialect;
        let text_cond = |sql: &mut Sql, column: &str, c: &Comparison| -> Result<String> {
            match c.op {
                Op::IsNull => Ok(format!("{column} IS NULL")),
                Op::IsNotNull => Ok(format!("{column} IS NOT NULL")),
                op => string_cond(d, sql, column, op, &c.value)
                    .ok_or_else(|| Error::invalid(format!("Invalid comparison on '{}'", c.key))),
            }
        };
        let numeric_cond = |sql: &mut Sql, column: &str, c: &Comparison| -> Result<String> {
            match &c.value {
                Value::Num(n) => Ok(format!(
                    "{column} {} {}",
                    c.op.as_sql(),
                    sql.arg(Arg::F64(*n))
                )),
                _ => Err(Error::invalid(format!(
                    "Expected numeric value type for '{}'",
                    c.key
                ))),
            }
        };
        let entity = c
            .entity
            .ok_or_else(|| Error::invalid(format!("Missing entity type for '{}'", c.key)))?;
        let cond = match entity {
            EntityType::Metric => {
                let key = sql.arg(Arg::Str(c.key.clone()));
                let value = match c.value {
                    Value::Num(n) if n.is_nan() => {
                        // Only equality with NaN is meaningful.
                        let flag = if c.op == Op::Ne { 0 } else { 1 };
                        format!("x.is_nan = {flag}")
                    }
                    _ => format!("x.is_nan = 0 AND {}", numeric_cond(sql, "x.value", c)?),
                };
                format!(
                    "EXISTS (SELECT 1 FROM latest_metrics x WHERE x.run_uuid = r.run_uuid AND x.key = {key} AND {value})"
                )
            }
            EntityType::Param | EntityType::Tag => {
                let table = if entity == EntityType::Param {
                    "params"
                } else {
                    "run_tags"
                };
                let key = sql.arg(Arg::Str(c.key.clone()));
                match c.op {
                    Op::IsNull => format!(
                        "NOT EXISTS (SELECT 1 FROM {table} x WHERE x.run_uuid = r.run_uuid AND x.key = {key})"
                    ),
                    Op::IsNotNull => {
                        format!(
                            "EXISTS (SELECT 1 FROM {table} x WHERE x.run_uuid = r.run_uuid AND x.key = {key})"
                        )
                    }
                    _ => {
                        let cond = text_cond(sql, "x.value", c)?;
                        format!(
                            "EXISTS (SELECT 1 FROM {table} x WHERE x.run_uuid = r.run_uuid AND x.key = {key} AND {cond})"
                        )
                    }
                }
            }
            EntityType::Attribute => {
                let attr = RunAttribute::parse(&c.key)?;
                let column = attribute_column(attr);
                if attr.is_numeric() {
                    numeric_cond(sql, column, c)?
                } else {
                    text_cond(sql, column, c)?
                }
            }
            EntityType::Dataset => {
                let column = match c.key.as_str() {
                    "name" => "d.name",
                    "digest" => "d.digest",
                    _ => "t.value",
                };
                let cond = text_cond(sql, column, c)?;
                let context_join = if c.key == "context" {
                    " JOIN input_tags t ON t.input_uuid = i.input_uuid AND t.key = 'mlflow.data.context'"
                } else {
                    ""
                };
                format!(
                    "r.run_uuid IN (SELECT i.destination_id FROM inputs i JOIN datasets d ON d.dataset_uuid = i.source_id{context_join} \
                     WHERE i.source_type = 'DATASET' AND i.destination_type = 'RUN' AND {cond})"
                )
            }
        };
        sql.push(" AND ").push(&cond);
        Ok(())
    }
}

/// Runs a query whose one row is a [`Dialect::json_rows`] aggregate and decodes its rows.
async fn json_page<T: serde::de::DeserializeOwned>(
    sql: &Sql,
    d: Dialect,
    pool: &sqlx::AnyPool,
) -> Result<Vec<T>> {
    let row = sql.query(d).fetch_one(pool).await.map_err(db_err)?;
    decode_rows(row.try_get::<Option<String>, _>(0).map_err(db_err)?)
}

/// Decodes a [`Dialect::json_rows`] aggregate; NULL (no rows, on PostgreSQL) is empty.
fn decode_rows<T: serde::de::DeserializeOwned>(json: Option<String>) -> Result<Vec<T>> {
    match json {
        None => Ok(Vec::new()),
        Some(json) => serde_json::from_str(&json)
            .map_err(|e| Error::internal("cannot decode a page of rows", e)),
    }
}

/// Parses the text of [`Dialect::exact_float_text`].
fn parse_exact_float(text: &str) -> Result<f64> {
    text.parse::<f64>()
        .map_err(|e| Error::internal(format!("cannot decode metric value '{text}'"), e))
}

fn attribute_column(attr: RunAttribute) -> &'static str {
    match attr {
        RunAttribute::RunId => "r.run_uuid",
        RunAttribute::RunName => "r.name",
        RunAttribute::Status => "r.status",
        RunAttribute::UserId => "r.user_id",
        RunAttribute::ArtifactUri => "r.artifact_uri",
        RunAttribute::StartTime => "r.start_time",
        RunAttribute::EndTime => "r.end_time",
        RunAttribute::LifecycleStage => "r.lifecycle_stage",
    }
}

fn stage_list(sql: &mut Sql, view: ViewType) -> String {
    let list: Vec<String> = view
        .stages()
        .iter()
        .map(|s| sql.arg(Arg::Str(s.as_str().to_string())))
        .collect();
    list.join(", ")
}

/// Reduces metrics to the newest point per key, in the order MLflow uses.
fn newest_per_key(metrics: &[Metric]) -> Vec<&Metric> {
    let mut newest: HashMap<&str, &Metric> = HashMap::new();
    for m in metrics {
        match newest.get(m.key.as_str()) {
            Some(cur) if !m.is_newer_than(cur) => {}
            _ => {
                newest.insert(m.key.as_str(), m);
            }
        }
    }
    newest.into_values().collect()
}

#[async_trait]
impl TrackingStore for SqlStore {
    async fn create_experiment(
        &self,
        name: &str,
        artifact_location: Option<&str>,
        artifact_root: &str,
        tags: &[Tag],
    ) -> Result<String> {
        let now = kaizen_core::now_millis();
        let mut tx = self.begin_write().await.map_err(db_err)?;
        let row = sqlx::query(
            "INSERT INTO experiments (name, artifact_location, lifecycle_stage, creation_time, last_update_time) \
             VALUES ($1, $2, 'active', $3, $3) RETURNING experiment_id",
        )
        .bind(name)
        .bind(artifact_location.unwrap_or(""))
        .bind(now)
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                Error::already_exists(format!("Experiment '{name}' already exists."))
            } else {
                db_err(e)
            }
        })?;
        let id: i64 = row.get(0);
        if artifact_location.is_none() {
            let location = format!("{}/{id}", artifact_root.trim_end_matches('/'));
            sqlx::query("UPDATE experiments SET artifact_location = $1 WHERE experiment_id = $2")
                .bind(location)
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
        }
        for tag in tags {
            sqlx::query(
                "INSERT INTO experiment_tags (experiment_id, key, value) VALUES ($1, $2, $3) \
                 ON CONFLICT (experiment_id, key) DO UPDATE SET value = excluded.value",
            )
            .bind(id)
            .bind(&tag.key)
            .bind(&tag.value)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        }
        tx.commit().await.map_err(db_err)?;
        Ok(id.to_string())
    }

    async fn get_experiment(&self, experiment_id: &str) -> Result<Experiment> {
        let id = experiment_key(experiment_id)?;
        let row = sqlx::query("SELECT * FROM experiments WHERE experiment_id = $1")
            .bind(id)
            .fetch_optional(&self.read)
            .await
            .map_err(db_err)?
            .ok_or_else(|| {
                Error::not_found(format!("No Experiment with id={experiment_id} exists"))
            })?;
        let tags = self
            .experiment_tags(&[id])
            .await?
            .remove(&id)
            .unwrap_or_default();
        experiment_from_row(&row, tags)
    }

    async fn get_experiment_by_name(&self, name: &str) -> Result<Option<Experiment>> {
        let Some(row) = sqlx::query("SELECT * FROM experiments WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.read)
            .await
            .map_err(db_err)?
        else {
            return Ok(None);
        };
        let id: i64 = row.get("experiment_id");
        let tags = self
            .experiment_tags(&[id])
            .await?
            .remove(&id)
            .unwrap_or_default();
        Ok(Some(experiment_from_row(&row, tags)?))
    }

    async fn search_experiments(
        &self,
        view: ViewType,
        query: &SearchQuery,
    ) -> Result<Vec<Experiment>> {
        let d = self.dialect;
        let mut sql = Sql::new("SELECT e.* FROM experiments e WHERE e.lifecycle_stage IN (");
        let stages = stage_list(&mut sql, view);
        sql.push(&stages).push(")");
        for c in &query.filter {
            let is_tag = c.entity == Some(EntityType::Tag);
            let column = if is_tag {
                "t.value"
            } else {
                match c.key.as_str() {
                    "name" => "e.name",
                    "creation_time" => "e.creation_time",
                    "last_update_time" => "e.last_update_time",
                    "experiment_id" => "e.experiment_id",
                    other => {
                        return Err(Error::invalid(format!(
                            "Invalid attribute key '{other}' specified. Valid keys are ['name', 'creation_time', 'last_update_time']"
                        )));
                    }
                }
            };
            let cond = match (&c.op, &c.value) {
                (op, Value::Num(n)) if op.is_numeric() && !is_tag && column != "e.name" => {
                    format!("{column} {} {}", op.as_sql(), sql.arg(Arg::F64(*n)))
                }
                (op, value) => string_cond(d, &mut sql, column, *op, value).ok_or_else(|| {
                    Error::invalid(format!(
                        "Invalid comparison '{}' for experiment key '{}'",
                        op.as_sql(),
                        c.key
                    ))
                })?,
            };
            if is_tag {
                let key = sql.arg(Arg::Str(c.key.clone()));
                sql.push(&format!(
                    " AND e.experiment_id IN (SELECT t.experiment_id FROM experiment_tags t WHERE t.key = {key} AND {cond})"
                ));
            } else {
                sql.push(" AND ").push(&cond);
            }
        }
        let mut order = Vec::new();
        for o in &query.order_by {
            let column = match o.key.as_str() {
                "name" => "e.name",
                "experiment_id" => "e.experiment_id",
                "creation_time" => "e.creation_time",
                "last_update_time" => "e.last_update_time",
                other => {
                    return Err(Error::invalid(format!(
                        "Invalid order_by entity '{other}'. Valid keys are ['name', 'experiment_id', 'creation_time', 'last_update_time']"
                    )));
                }
            };
            order.push(format!(
                "{column} {}",
                if o.ascending { "ASC" } else { "DESC" }
            ));
        }
        if !query.order_by.iter().any(|o| o.key == "creation_time") {
            order.push("e.creation_time DESC".into());
        }
        order.push("e.experiment_id ASC".into());
        sql.push(" ORDER BY ").push(&order.join(", "));
        let limit = sql.arg(Arg::I64(query.max_results + 1));
        let offset = sql.arg(Arg::I64(query.offset));
        sql.push(&format!(" LIMIT {limit} OFFSET {offset}"));
        let rows = sql
            .query(self.dialect)
            .fetch_all(&self.read)
            .await
            .map_err(db_err)?;
        let ids: Vec<i64> = rows.iter().map(|r| r.get("experiment_id")).collect();
        let mut tags = self.experiment_tags(&ids).await?;
        rows.iter()
            .map(|r| {
                let id: i64 = r.get("experiment_id");
                experiment_from_row(r, tags.remove(&id).unwrap_or_default())
            })
            .collect()
    }

    async fn rename_experiment(&self, experiment_id: &str, new_name: &str) -> Result<()> {
        let id = experiment_key(experiment_id)?;
        let result = sqlx::query(
            "UPDATE experiments SET name = $1, last_update_time = $2 WHERE experiment_id = $3",
        )
        .bind(new_name)
        .bind(kaizen_core::now_millis())
        .bind(id)
        .execute(&self.write)
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                Error::already_exists(format!("Experiment '{new_name}' already exists."))
            } else {
                db_err(e)
            }
        })?;
        if result.rows_affected() == 0 {
            return Err(Error::not_found(format!(
                "No Experiment with id={experiment_id} exists"
            )));
        }
        Ok(())
    }

    async fn set_experiment_lifecycle(
        &self,
        experiment_id: &str,
        stage: LifecycleStage,
    ) -> Result<()> {
        let id = experiment_key(experiment_id)?;
        let now = kaizen_core::now_millis();
        let mut tx = self.begin_write().await.map_err(db_err)?;
        let row = sqlx::query(
            "SELECT lifecycle_stage, deleted_time FROM experiments WHERE experiment_id = $1",
        )
        .bind(id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_err)?
        .ok_or_else(|| Error::not_found(format!("No Experiment with id={experiment_id} exists")))?;
        let current: String = row.get("lifecycle_stage");
        let deleted_time: Option<i64> = row.try_get("deleted_time").ok().flatten();
        if current == stage.as_str() {
            return Err(Error::invalid(match stage {
                LifecycleStage::Deleted => {
                    format!("Cannot delete an already deleted experiment: {experiment_id}")
                }
                LifecycleStage::Active => {
                    format!("Cannot restore an active experiment: {experiment_id}")
                }
            }));
        }
        match stage {
            LifecycleStage::Deleted => {
                sqlx::query("UPDATE experiments SET lifecycle_stage = 'deleted', deleted_time = $1, last_update_time = $1 WHERE experiment_id = $2")
                    .bind(now)
                    .bind(id)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_err)?;
                sqlx::query("UPDATE runs SET lifecycle_stage = 'deleted', deleted_time = $1 WHERE experiment_id = $2 AND lifecycle_stage = 'active'")
                    .bind(now)
                    .bind(id)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_err)?;
            }
            LifecycleStage::Active => {
                sqlx::query("UPDATE experiments SET lifecycle_stage = 'active', deleted_time = NULL, last_update_time = $1 WHERE experiment_id = $2")
                    .bind(now)
                    .bind(id)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_err)?;
                // Restore the runs that the experiment's deletion took with it, not those deleted
                // on their own before.
                sqlx::query("UPDATE runs SET lifecycle_stage = 'active', deleted_time = NULL WHERE experiment_id = $1 AND lifecycle_stage = 'deleted' AND deleted_time = $2")
                    .bind(id)
                    .bind(deleted_time)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_err)?;
            }
        }
        tx.commit().await.map_err(db_err)?;
        Ok(())
    }

    async fn set_experiment_tag(&self, experiment_id: &str, tag: &Tag) -> Result<()> {
        let id = experiment_key(experiment_id)?;
        let mut tx = self.begin_write().await.map_err(db_err)?;
        let stage: Option<String> =
            sqlx::query("SELECT lifecycle_stage FROM experiments WHERE experiment_id = $1")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_err)?
                .map(|r| r.get(0));
        match stage.as_deref() {
            None => {
                return Err(Error::not_found(format!(
                    "No Experiment with id={experiment_id} exists"
                )));
            }
            Some("deleted") => {
                return Err(Error::invalid(format!(
                    "The experiment {experiment_id} must be in the 'active' state. Current state is deleted."
                )));
            }
            _ => {}
        }
        sqlx::query(
            "INSERT INTO experiment_tags (experiment_id, key, value) VALUES ($1, $2, $3) \
             ON CONFLICT (experiment_id, key) DO UPDATE SET value = excluded.value",
        )
        .bind(id)
        .bind(&tag.key)
        .bind(&tag.value)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        Ok(())
    }

    async fn delete_experiment_tag(&self, experiment_id: &str, key: &str) -> Result<()> {
        let id = experiment_key(experiment_id)?;
        self.get_experiment(experiment_id).await?;
        let result =
            sqlx::query("DELETE FROM experiment_tags WHERE experiment_id = $1 AND key = $2")
                .bind(id)
                .bind(key)
                .execute(&self.write)
                .await
                .map_err(db_err)?;
        if result.rows_affected() == 0 {
            return Err(Error::not_found(format!(
                "No tag with name: {key} in experiment with id {experiment_id}"
            )));
        }
        Ok(())
    }

    async fn create_run(&self, info: &RunInfo, tags: &[Tag]) -> Result<()> {
        let exp_id = experiment_key(&info.experiment_id)?;
        let mut tx = self.begin_write().await.map_err(db_err)?;
        let stage: Option<String> =
            sqlx::query("SELECT lifecycle_stage FROM experiments WHERE experiment_id = $1")
                .bind(exp_id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_err)?
                .map(|r| r.get(0));
        match stage.as_deref() {
            None => {
                return Err(Error::not_found(format!(
                    "No Experiment with id={} exists",
                    info.experiment_id
                )));
            }
            Some("deleted") => {
                return Err(Error::invalid(format!(
                    "The experiment {} must be in the 'active' state. Current state is deleted.",
                    info.experiment_id
                )));
            }
            _ => {}
        }
        sqlx::query(
            "INSERT INTO runs (run_uuid, name, experiment_id, user_id, status, start_time, end_time, artifact_uri, lifecycle_stage) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'active')",
        )
        .bind(&info.run_id)
        .bind(&info.run_name)
        .bind(exp_id)
        .bind(&info.user_id)
        .bind(info.status.as_str())
        .bind(info.start_time)
        .bind(info.end_time)
        .bind(&info.artifact_uri)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        insert_tags(&mut tx, self.dialect, &info.run_id, tags).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(())
    }

    async fn get_run(&self, run_id: &str) -> Result<Run> {
        let row = sqlx::query(&format!(
            "SELECT {RUN_COLUMNS} FROM runs r WHERE r.run_uuid = $1"
        ))
        .bind(run_id)
        .fetch_optional(&self.read)
        .await
        .map_err(db_err)?
        .ok_or_else(|| Error::not_found(format!("Run with id={run_id} not found")))?;
        let info = run_info_from_row(&row)?;
        Ok(self.hydrate_runs(vec![info]).await?.remove(0))
    }

    async fn update_run(&self, run_id: &str, update: &RunUpdate) -> Result<RunInfo> {
        let mut tx = self.begin_write().await.map_err(db_err)?;
        Self::check_run_active(&mut tx, run_id).await?;
        if let Some(status) = update.status {
            sqlx::query("UPDATE runs SET status = $1 WHERE run_uuid = $2")
                .bind(status.as_str())
                .bind(run_id)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
        }
        if let Some(end_time) = update.end_time {
            sqlx::query("UPDATE runs SET end_time = $1 WHERE run_uuid = $2")
                .bind(end_time)
                .bind(run_id)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
        }
        if let Some(name) = &update.run_name {
            sqlx::query("UPDATE runs SET name = $1 WHERE run_uuid = $2")
                .bind(name)
                .bind(run_id)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
            // The run name lives in a tag too; MLflow keeps both in step.
            insert_tags(
                &mut tx,
                self.dialect,
                run_id,
                &[Tag::new(kaizen_core::tags::RUN_NAME, name.clone())],
            )
            .await?;
        }
        let row = sqlx::query(&format!(
            "SELECT {RUN_COLUMNS} FROM runs r WHERE r.run_uuid = $1"
        ))
        .bind(run_id)
        .fetch_one(&mut *tx)
        .await
        .map_err(db_err)?;
        let info = run_info_from_row(&row)?;
        tx.commit().await.map_err(db_err)?;
        Ok(info)
    }

    async fn set_run_lifecycle(&self, run_id: &str, stage: LifecycleStage) -> Result<()> {
        let deleted_time = match stage {
            LifecycleStage::Deleted => Some(kaizen_core::now_millis()),
            LifecycleStage::Active => None,
        };
        let result = sqlx::query(
            "UPDATE runs SET lifecycle_stage = $1, deleted_time = $2 WHERE run_uuid = $3",
        )
        .bind(stage.as_str())
        .bind(deleted_time)
        .bind(run_id)
        .execute(&self.write)
        .await
        .map_err(db_err)?;
        if result.rows_affected() == 0 {
            return Err(Error::not_found(format!("Run with id={run_id} not found")));
        }
        Ok(())
    }

    async fn log_batch(
        &self,
        run_id: &str,
        metrics: &[Metric],
        params: &[Param],
        tags: &[Tag],
    ) -> Result<()> {
        let mut tx = self.begin_write().await.map_err(db_err)?;
        Self::check_run_active(&mut tx, run_id).await?;

        if !params.is_empty() {
            // A param may be logged again only with the same value; check before writing anything.
            let mut wanted: HashMap<&str, &str> = HashMap::new();
            for p in params {
                if let Some(prev) = wanted.insert(&p.key, &p.value)
                    && prev != p.value
                {
                    return Err(Error::invalid(format!(
                        "Duplicate parameter keys with different values in one batch: '{}' was given '{prev}' and '{}'",
                        p.key, p.value
                    )));
                }
            }
            let mut sql = Sql::new("SELECT key, value FROM params WHERE run_uuid = ");
            let id = sql.arg(Arg::Str(run_id.to_string()));
            sql.push(&id).push(" AND key IN (");
            let list: Vec<String> = wanted
                .keys()
                .map(|k| sql.arg(Arg::Str(k.to_string())))
                .collect();
            sql.push(&list.join(", ")).push(")");
            for row in sql
                .query(self.dialect)
                .fetch_all(&mut *tx)
                .await
                .map_err(db_err)?
            {
                let key: String = row.get("key");
                let old: String = row.get("value");
                if wanted[key.as_str()] != old {
                    return Err(Error::invalid(format!(
                        "Changing param values is not allowed. Param with key='{key}' was already logged with value='{old}' \
                         for run ID='{run_id}'. Attempted logging new value '{}'.",
                        wanted[key.as_str()]
                    )));
                }
            }
            let unique: Vec<(&str, &str)> = wanted.into_iter().collect();
            insert_key_values(
                &mut tx,
                self.dialect,
                "params",
                run_id,
                &unique,
                "DO NOTHING",
            )
            .await?;
        }

        // The hot path of logging: statements built once per chunk size, arguments bound by
        // reference, no intermediate argument list.
        for chunk in metrics.chunks(METRIC_CHUNK) {
            let text = format!(
                "INSERT INTO metrics (run_uuid, key, step, timestamp, is_nan, value, model_id, dataset_name, dataset_digest) \
                 VALUES {} ON CONFLICT DO NOTHING",
                values_list(self.dialect, 9, chunk.len())
            );
            let mut q = sqlx::query(&text);
            for m in chunk {
                let (is_nan, value) = stored_value(m.value);
                q = q
                    .bind(run_id)
                    .bind(m.key.as_str())
                    .bind(m.step)
                    .bind(m.timestamp)
                    .bind(is_nan)
                    .bind(value)
                    .bind(m.model_id.as_deref())
                    .bind(m.dataset_name.as_deref())
                    .bind(m.dataset_digest.as_deref());
            }
            q.execute(&mut *tx).await.map_err(db_err)?;
        }
        if metrics.iter().any(|m| m.model_id.is_some()) {
            Self::log_logged_model_metrics(&mut tx, run_id, metrics).await?;
        }
        let newest = newest_per_key(metrics);
        for chunk in newest.chunks(METRIC_CHUNK) {
            let text = format!(
                "INSERT INTO latest_metrics (run_uuid, key, step, timestamp, is_nan, value) VALUES {} \
                 ON CONFLICT (run_uuid, key) DO UPDATE SET step = excluded.step, timestamp = excluded.timestamp, \
                 is_nan = excluded.is_nan, value = excluded.value \
                 WHERE excluded.step > latest_metrics.step \
                 OR (excluded.step = latest_metrics.step AND excluded.timestamp > latest_metrics.timestamp) \
                 OR (excluded.step = latest_metrics.step AND excluded.timestamp = latest_metrics.timestamp \
                     AND (excluded.is_nan > latest_metrics.is_nan OR (excluded.is_nan = latest_metrics.is_nan AND excluded.value >= latest_metrics.value)))",
                values_list(self.dialect, 6, chunk.len())
            );
            let mut q = sqlx::query(&text);
            for m in chunk {
                let (is_nan, value) = stored_value(m.value);
                q = q
                    .bind(run_id)
                    .bind(m.key.as_str())
                    .bind(m.step)
                    .bind(m.timestamp)
                    .bind(is_nan)
                    .bind(value);
            }
            q.execute(&mut *tx).await.map_err(db_err)?;
        }

        if !tags.is_empty() {
            insert_tags(&mut tx, self.dialect, run_id, tags).await?;
            if let Some(name) = tags
                .iter()
                .rev()
                .find(|t| t.key == kaizen_core::tags::RUN_NAME)
            {
                sqlx::query("UPDATE runs SET name = $1 WHERE run_uuid = $2")
                    .bind(&name.value)
                    .bind(run_id)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_err)?;
            }
        }
        tx.commit().await.map_err(db_err)?;
        Ok(())
    }

    async fn delete_run_tag(&self, run_id: &str, key: &str) -> Result<()> {
        let mut tx = self.begin_write().await.map_err(db_err)?;
        Self::check_run_active(&mut tx, run_id).await?;
        let result = sqlx::query("DELETE FROM run_tags WHERE run_uuid = $1 AND key = $2")
            .bind(run_id)
            .bind(key)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        if result.rows_affected() == 0 {
            return Err(Error::not_found(format!(
                "No tag with name: {key} in run with id {run_id}"
            )));
        }
        tx.commit().await.map_err(db_err)?;
        Ok(())
    }

    async fn get_metric_history(
        &self,
        run_id: &str,
        key: &str,
        max_results: i64,
        offset: i64,
    ) -> Result<Vec<Metric>> {
        let exists = sqlx::query("SELECT 1 FROM runs WHERE run_uuid = $1")
            .bind(run_id)
            .fetch_optional(&self.read)
            .await
            .map_err(db_err)?;
        if exists.is_none() {
            return Err(Error::not_found(format!("Run with id={run_id} not found")));
        }
        // One row holding the whole page as a JSON array: a long history otherwise pays the
        // driver's per-row cost thousands of times. Values travel as exact decimal text.
        let d = self.dialect;
        let text = format!(
            "SELECT {} FROM (SELECT timestamp, step, is_nan, value, model_id, dataset_name, dataset_digest \
             FROM metrics WHERE run_uuid = $1 AND key = $2 ORDER BY timestamp, step, is_nan, value LIMIT $3 OFFSET $4) m",
            d.json_rows(
                &[
                    "timestamp",
                    "step",
                    "is_nan",
                    &d.exact_float_text("value"),
                    "model_id",
                    "dataset_name",
                    "dataset_digest"
                ],
                "timestamp, step, is_nan, value",
            )
        );
        let mut sql = Sql::new(text);
        sql.args = vec![
            Arg::Str(run_id.to_string()),
            Arg::Str(key.to_string()),
            Arg::I64(max_results),
            Arg::I64(offset),
        ];
        type Point = (
            i64,
            i64,
            i64,
            String,
            Option<String>,
            Option<String>,
            Option<String>,
        );
        let points: Vec<Point> = json_page(&sql, d, &self.read).await?;
        points
            .into_iter()
            .map(
                |(timestamp, step, is_nan, value, model_id, dataset_name, dataset_digest)| {
                    let value = if is_nan != 0 {
                        f64::NAN
                    } else {
                        parse_exact_float(&value)?
                    };
                    let mut m = Metric::new(key, value, timestamp, step);
                    m.model_id = model_id;
                    m.dataset_name = dataset_name;
                    m.dataset_digest = dataset_digest;
                    m.run_id = Some(run_id.to_string());
                    Ok(m)
                },
            )
            .collect()
    }

    async fn search_runs(
        &self,
        experiment_ids: &[String],
        view: ViewType,
        query: &SearchQuery,
    ) -> Result<Vec<Run>> {
        if experiment_ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut sql = Sql::new(format!("SELECT {RUN_COLUMNS} FROM runs r"));
        // Joins for ORDER BY keys come first so the WHERE clause can follow.
        let mut order_terms = Vec::new();
        for (i, o) in query.order_by.iter().enumerate() {
            let dir = if o.ascending { "ASC" } else { "DESC" };
            let (column, nullable) = self.order_column(&mut sql, i, o)?;
            if nullable {
                // Runs without the key sort last in either direction, as in MLflow.
                order_terms.push((
                    format!("CASE WHEN {column} IS NULL THEN 1 ELSE 0 END"),
                    "ASC",
                ));
            }
            order_terms.push((column, dir));
        }
        sql.push(" WHERE r.experiment_id IN (");
        let mut ids = Vec::new();
        for id in experiment_ids {
            match id.parse::<i64>() {
                Ok(n) => ids.push(sql.arg(Arg::I64(n))),
                Err(_) => return Err(Error::invalid(format!("Invalid experiment id '{id}'"))),
            }
        }
        sql.push(&ids.join(", "))
            .push(") AND r.lifecycle_stage IN (");
        let stages = stage_list(&mut sql, view);
        sql.push(&stages).push(")");
        for c in &query.filter {
            self.run_condition(&mut sql, c)?;
        }
        if !query.order_by.iter().any(|o| {
            o.entity == Some(EntityType::Attribute)
                && matches!(RunAttribute::parse(&o.key), Ok(RunAttribute::StartTime))
        }) {
            order_terms.push(("r.start_time".into(), "DESC"));
        }
        order_terms.push(("r.run_uuid".into(), "ASC"));
        let order_by = |prefix: &str, named: bool| -> String {
            order_terms
                .iter()
                .enumerate()
                .map(|(i, (expr, dir))| {
                    if named {
                        format!("{prefix}k{i} {dir}")
                    } else {
                        format!("{expr} {dir}")
                    }
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        sql.push(" ORDER BY ").push(&order_by("", false));
        let limit = sql.arg(Arg::I64(query.max_results + 1));
        let offset = sql.arg(Arg::I64(query.offset));
        sql.push(&format!(" LIMIT {limit} OFFSET {offset}"));
        // The page comes back as one JSON row. The page query exposes its sort keys (k0, k1, ...)
        // so that the numbering that keeps its order (`ord`) sorts only the page, not every match.
        let d = self.dialect;
        let keys: Vec<String> = order_terms
            .iter()
            .enumerate()
            .map(|(i, (expr, _))| format!("{expr} AS k{i}"))
            .collect();
        let inner = format!("SELECT {RUN_COLUMNS}, {} FROM runs r", keys.join(", "));
        sql.text = format!(
            "SELECT {} FROM (SELECT p.*, ROW_NUMBER() OVER (ORDER BY {}) AS ord FROM ({}) p) q",
            d.json_rows_unordered(&[
                "q.run_uuid",
                "q.name",
                "q.experiment_id",
                "q.user_id",
                "q.status",
                "q.start_time",
                "q.end_time",
                "q.artifact_uri",
                "q.lifecycle_stage",
                "q.ord"
            ]),
            order_by("p.", true),
            sql.text
                .replacen(&format!("SELECT {RUN_COLUMNS} FROM runs r"), &inner, 1)
        );
        type RunRow = (
            String,
            String,
            i64,
            String,
            String,
            Option<i64>,
            Option<i64>,
            String,
            String,
            i64,
        );
        let mut rows: Vec<RunRow> = json_page(&sql, d, &self.read).await?;
        rows.sort_unstable_by_key(|r| r.9);
        let infos = rows
            .into_iter()
            .map(
                |(
                    run_id,
                    run_name,
                    experiment_id,
                    user_id,
                    status,
                    start_time,
                    end_time,
                    artifact_uri,
                    stage,
                    _,
                )| {
                    Ok(RunInfo {
                        run_id,
                        run_name,
                        experiment_id: experiment_id.to_string(),
                        user_id,
                        status: RunStatus::parse(&status)?,
                        start_time,
                        end_time,
                        artifact_uri,
                        lifecycle_stage: LifecycleStage::parse(&stage)?,
                    })
                },
            )
            .collect::<Result<Vec<_>>>()?;
        self.hydrate_runs(infos).await
    }

    async fn log_inputs(
        &self,
        run_id: &str,
        datasets: &[DatasetInput],
        models: &[ModelIo],
    ) -> Result<()> {
        let mut tx = self.begin_write().await.map_err(db_err)?;
        Self::check_run_active(&mut tx, run_id).await?;
        let exp_id: i64 = sqlx::query("SELECT experiment_id FROM runs WHERE run_uuid = $1")
            .bind(run_id)
            .fetch_one(&mut *tx)
            .await
            .map_err(db_err)?
            .get(0);
        for input in datasets {
            let d = &input.dataset;
            let existing = sqlx::query("SELECT dataset_uuid FROM datasets WHERE experiment_id = $1 AND name = $2 AND digest = $3")
                .bind(exp_id)
                .bind(&d.name)
                .bind(&d.digest)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_err)?;
            let dataset_uuid: String = match existing {
                Some(row) => row.get(0),
                None => {
                    let id = kaizen_core::ids::new_run_id();
                    sqlx::query(
                        "INSERT INTO datasets (dataset_uuid, experiment_id, name, digest, source_type, source, schema, profile) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                    )
                    .bind(&id)
                    .bind(exp_id)
                    .bind(&d.name)
                    .bind(&d.digest)
                    .bind(&d.source_type)
                    .bind(&d.source)
                    .bind(d.schema.as_deref())
                    .bind(d.profile.as_deref())
                    .execute(&mut *tx)
                    .await
                    .map_err(db_err)?;
                    id
                }
            };
            let input_uuid = kaizen_core::ids::new_run_id();
            let inserted = sqlx::query(
                "INSERT INTO inputs (input_uuid, source_type, source_id, destination_type, destination_id) \
                 VALUES ($1, 'DATASET', $2, 'RUN', $3) ON CONFLICT DO NOTHING",
            )
            .bind(&input_uuid)
            .bind(&dataset_uuid)
            .bind(run_id)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
            if inserted.rows_affected() > 0 {
                for tag in &input.tags {
                    sqlx::query("INSERT INTO input_tags (input_uuid, key, value) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
                        .bind(&input_uuid)
                        .bind(&tag.key)
                        .bind(&tag.value)
                        .execute(&mut *tx)
                        .await
                        .map_err(db_err)?;
                }
            }
        }
        for m in models {
            sqlx::query(
                "INSERT INTO inputs (input_uuid, source_type, source_id, destination_type, destination_id) \
                 VALUES ($1, 'MODEL_OUTPUT', $2, 'RUN', $3) ON CONFLICT DO NOTHING",
            )
            .bind(kaizen_core::ids::new_run_id())
            .bind(&m.model_id)
            .bind(run_id)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        }
        tx.commit().await.map_err(db_err)?;
        Ok(())
    }

    async fn log_outputs(&self, run_id: &str, models: &[ModelIo]) -> Result<()> {
        let mut tx = self.begin_write().await.map_err(db_err)?;
        Self::check_run_active(&mut tx, run_id).await?;
        for m in models {
            sqlx::query(
                "INSERT INTO inputs (input_uuid, source_type, source_id, destination_type, destination_id, step) \
                 VALUES ($1, 'RUN_OUTPUT', $2, 'MODEL_OUTPUT', $3, $4) ON CONFLICT DO NOTHING",
            )
            .bind(kaizen_core::ids::new_run_id())
            .bind(run_id)
            .bind(&m.model_id)
            .bind(m.step.unwrap_or(0))
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        }
        tx.commit().await.map_err(db_err)?;
        Ok(())
    }

    async fn create_logged_model(&self, model: &kaizen_core::LoggedModel) -> Result<()> {
        self.create_logged_model_impl(model).await
    }
    async fn get_logged_model(&self, model_id: &str) -> Result<kaizen_core::LoggedModel> {
        self.get_logged_model_impl(model_id).await
    }
    async fn finalize_logged_model(
        &self,
        model_id: &str,
        status: kaizen_core::LoggedModelStatus,
    ) -> Result<kaizen_core::LoggedModel> {
        self.finalize_logged_model_impl(model_id, status).await
    }
    async fn delete_logged_model(&self, model_id: &str) -> Result<()> {
        self.delete_logged_model_impl(model_id).await
    }
    async fn set_logged_model_tags(&self, model_id: &str, tags: &[Tag]) -> Result<()> {
        self.set_logged_model_tags_impl(model_id, tags).await
    }
    async fn delete_logged_model_tag(&self, model_id: &str, key: &str) -> Result<()> {
        self.delete_logged_model_tag_impl(model_id, key).await
    }
    async fn log_logged_model_params(&self, model_id: &str, params: &[Param]) -> Result<()> {
        self.log_logged_model_params_impl(model_id, params).await
    }
    async fn search_logged_models(
        &self,
        experiment_ids: &[String],
        query: &SearchQuery,
    ) -> Result<Vec<kaizen_core::LoggedModel>> {
        self.search_logged_models_impl(experiment_ids, query).await
    }
}

impl SqlStore {
    /// Adds the join an ORDER BY key needs and returns the column to sort on and whether it can be
    /// NULL (a run without that metric, param or tag).
    fn order_column(&self, sql: &mut Sql, i: usize, o: &OrderBy) -> Result<(String, bool)> {
        let entity = o.entity.unwrap_or(EntityType::Attribute);
        let (table, alias) = match entity {
            EntityType::Attribute => {
                let attr = RunAttribute::parse(&o.key)?;
                let nullable = matches!(attr, RunAttribute::StartTime | RunAttribute::EndTime);
                return Ok((attribute_column(attr).to_string(), nullable));
            }
            EntityType::Metric => ("latest_metrics", format!("o{i}")),
            EntityType::Param => ("params", format!("o{i}")),
            EntityType::Tag => ("run_tags", format!("o{i}")),
            EntityType::Dataset => {
                return Err(Error::invalid(format!(
                    "Cannot order runs by dataset key '{}'",
                    o.key
                )));
            }
        };
        let key = sql.arg(Arg::Str(o.key.clone()));
        sql.push(&format!(
            " LEFT JOIN {table} {alias} ON {alias}.run_uuid = r.run_uuid AND {alias}.key = {key}"
        ));
        Ok((format!("{alias}.value"), true))
    }
}

/// Upserts run tags in multi-row statements.
async fn insert_tags(
    tx: &mut Transaction<'_, Any>,
    d: Dialect,
    run_id: &str,
    tags: &[Tag],
) -> Result<()> {
    // Later values win within one call, and PostgreSQL refuses one statement touching a row twice.
    let mut last: HashMap<&str, &str> = HashMap::new();
    for t in tags {
        last.insert(&t.key, &t.value);
    }
    let unique: Vec<(&str, &str)> = last.into_iter().collect();
    insert_key_values(
        tx,
        d,
        "run_tags",
        run_id,
        &unique,
        "DO UPDATE SET value = excluded.value",
    )
    .await
}

/// Inserts (run, key, value) rows into `params` or `run_tags` in multi-row statements, with
/// `on_conflict` deciding what an existing key does.
async fn insert_key_values(
    tx: &mut Transaction<'_, Any>,
    d: Dialect,
    table: &str,
    run_id: &str,
    pairs: &[(&str, &str)],
    on_conflict: &str,
) -> Result<()> {
    for chunk in pairs.chunks(INSERT_CHUNK) {
        let text = format!(
            "INSERT INTO {table} (run_uuid, key, value) VALUES {} ON CONFLICT (run_uuid, key) {on_conflict}",
            values_list(d, 3, chunk.len())
        );
        let mut q = sqlx::query(&text);
        for (k, v) in chunk {
            q = q.bind(run_id).bind(*k).bind(*v);
        }
        q.execute(&mut **tx).await.map_err(db_err)?;
    }
    Ok(())
}
