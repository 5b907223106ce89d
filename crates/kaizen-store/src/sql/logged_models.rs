//! MLflow 3 logged models: create, finalize, tags, params, search.

use std::collections::HashMap;

use kaizen_core::search::{EntityType, Op, Value};
use kaizen_core::{Error, LoggedModel, LoggedModelStatus, Metric, Param, Result, Tag};
use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Arg, Sql, SqlStore, db_err, experiment_key, metric_value, opt_str};
use crate::SearchQuery;

fn model_from_row(row: &AnyRow) -> Result<LoggedModel> {
    Ok(LoggedModel {
        model_id: row.get("model_id"),
        experiment_id: row.get::<i64, _>("experiment_id").to_string(),
        name: row.get("name"),
        artifact_location: row.get("artifact_location"),
        creation_timestamp_ms: row.get("creation_timestamp_ms"),
        last_updated_timestamp_ms: row.get("last_updated_timestamp_ms"),
        model_type: opt_str(row, "model_type"),
        source_run_id: opt_str(row, "source_run_id"),
        status: LoggedModelStatus::parse(&row.get::<String, _>("status"))?,
        status_message: opt_str(row, "status_message"),
        tags: Vec::new(),
        params: Vec::new(),
        metrics: Vec::new(),
    })
}

fn not_found(model_id: &str) -> Error {
    Error::not_found(format!("Logged model with ID '{model_id}' not found."))
}

impl SqlStore {
    async fn hydrate_models(&self, mut models: Vec<LoggedModel>) -> Result<Vec<LoggedModel>> {
        if models.is_empty() {
            return Ok(models);
        }
        let index: HashMap<String, usize> = models
            .iter()
            .enumerate()
            .map(|(i, m)| (m.model_id.clone(), i))
            .collect();
        for table in ["logged_model_tags", "logged_model_params"] {
            let mut sql = Sql::new(format!(
                "SELECT model_id, key, value FROM {table} WHERE model_id IN ("
            ));
            let list: Vec<String> = index.keys().map(|k| sql.arg(Arg::Str(k.clone()))).collect();
            sql.push(&list.join(", ")).push(") ORDER BY key");
            for row in sql
                .query(self.dialect)
                .fetch_all(&self.read)
                .await
                .map_err(db_err)?
            {
                let i = index[&row.get::<String, _>("model_id")];
                let tag = Tag::new(row.get::<String, _>("key"), row.get::<String, _>("value"));
                if table == "logged_model_tags" {
                    models[i].tags.push(tag);
                } else {
                    models[i].params.push(tag);
                }
            }
        }
        let mut sql = Sql::new(
            "SELECT model_id, key, run_uuid, step, timestamp, is_nan, value, dataset_name, dataset_digest \
             FROM logged_model_metrics WHERE model_id IN (",
        );
        let list: Vec<String> = index.keys().map(|k| sql.arg(Arg::Str(k.clone()))).collect();
        sql.push(&list.join(", "))
            .push(") ORDER BY key, step, timestamp");
        for row in sql
            .query(self.dialect)
            .fetch_all(&self.read)
            .await
            .map_err(db_err)?
        {
            let i = index[&row.get::<String, _>("model_id")];
            let mut m = Metric::new(
                row.get::<String, _>("key"),
                metric_value(&row),
                row.get("timestamp"),
                row.get("step"),
            );
            m.run_id = Some(row.get("run_uuid"));
            m.model_id = Some(models[i].model_id.clone());
            m.dataset_name = opt_str(&row, "dataset_name");
            m.dataset_digest = opt_str(&row, "dataset_digest");
            models[i].metrics.push(m);
        }
        Ok(models)
    }

    pub(crate) async fn create_logged_model_impl(&self, model: &LoggedModel) -> Result<()> {
        let exp_id = experiment_key(&model.experiment_id)?;
        let mut tx = self.begin_write().await.map_err(db_err)?;
        let exists =
            sqlx::query("SELECT lifecycle_stage FROM experiments WHERE experiment_id = $1")
                .bind(exp_id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_err)?;
        if exists.is_none() {
            return Err(Error::not_found(format!(
                "No Experiment with id={} exists",
                model.experiment_id
            )));
        }
        sqlx::query(
            "INSERT INTO logged_models (model_id, experiment_id, name, artifact_location, creation_timestamp_ms, \
             last_updated_timestamp_ms, model_type, source_run_id, status, status_message, lifecycle_stage) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'active')",
        )
        .bind(&model.model_id)
        .bind(exp_id)
        .bind(&model.name)
        .bind(&model.artifact_location)
        .bind(model.creation_timestamp_ms)
        .bind(model.last_updated_timestamp_ms)
        .bind(model.model_type.as_deref())
        .bind(model.source_run_id.as_deref())
        .bind(model.status.as_str())
        .bind(model.status_message.as_deref())
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        for (table, items) in [
            ("logged_model_tags", &model.tags),
            ("logged_model_params", &model.params),
        ] {
            for t in items {
                sqlx::query(&format!(
                    "INSERT INTO {table} (model_id, key, value) VALUES ($1, $2, $3) ON CONFLICT (model_id, key) DO UPDATE SET value = excluded.value"
                ))
                .bind(&model.model_id)
                .bind(&t.key)
                .bind(&t.value)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
            }
        }
        tx.commit().await.map_err(db_err)?;
        Ok(())
    }

    pub(crate) async fn get_logged_model_impl(&self, model_id: &str) -> Result<LoggedModel> {
        let row = sqlx::query(
            "SELECT * FROM logged_models WHERE model_id = $1 AND lifecycle_stage = 'active'",
        )
        .bind(model_id)
        .fetch_optional(&self.read)
        .await
        .map_err(db_err)?
        .ok_or_else(|| not_found(model_id))?;
        Ok(self
            .hydrate_models(vec![model_from_row(&row)?])
            .await?
            .remove(0))
    }

    pub(crate) async fn finalize_logged_model_impl(
        &self,
        model_id: &str,
        status: LoggedModelStatus,
    ) -> Result<LoggedModel> {
        let result = sqlx::query(
            "UPDATE logged_models SET status = $1, last_updated_timestamp_ms = $2 WHERE model_id = $3 AND lifecycle_stage = 'active'",
        )
        .bind(status.as_str())
        .bind(kaizen_core::now_millis())
        .bind(model_id)
        .execute(&self.write)
        .await
        .map_err(db_err)?;
        if result.rows_affected() == 0 {
            return Err(not_found(model_id));
        }
        self.get_logged_model_impl(model_id).await
    }

    pub(crate) async fn delete_logged_model_impl(&self, model_id: &str) -> Result<()> {
        let result = sqlx::query(
            "UPDATE logged_models SET lifecycle_stage = 'deleted', last_updated_timestamp_ms = $1 WHERE model_id = $2 AND lifecycle_stage = 'active'",
        )
        .bind(kaizen_core::now_millis())
        .bind(model_id)
        .execute(&self.write)
        .await
        .map_err(db_err)?;
        if result.rows_affected() == 0 {
            return Err(not_found(model_id));
        }
        Ok(())
    }

    async fn upsert_model_kv(
        &self,
        table: &str,
        model_id: &str,
        items: &[Tag],
        replace: bool,
    ) -> Result<()> {
        let mut tx = self.begin_write().await.map_err(db_err)?;
        let exists = sqlx::query(
            "SELECT 1 FROM logged_models WHERE model_id = $1 AND lifecycle_stage = 'active'",
        )
        .bind(model_id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_err)?;
        if exists.is_none() {
            return Err(not_found(model_id));
        }
        let conflict = if replace {
            "DO UPDATE SET value = excluded.value"
        } else {
            "DO NOTHING"
        };
        for t in items {
            sqlx::query(&format!(
                "INSERT INTO {table} (model_id, key, value) VALUES ($1, $2, $3) ON CONFLICT (model_id, key) {conflict}"
            ))
            .bind(model_id)
            .bind(&t.key)
            .bind(&t.value)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        }
        tx.commit().await.map_err(db_err)?;
        Ok(())
    }

    pub(crate) async fn set_logged_model_tags_impl(
        &self,
        model_id: &str,
        tags: &[Tag],
    ) -> Result<()> {
        self.upsert_model_kv("logged_model_tags", model_id, tags, true)
            .await
    }

    pub(crate) async fn log_logged_model_params_impl(
        &self,
        model_id: &str,
        params: &[Param],
    ) -> Result<()> {
        self.upsert_model_kv("logged_model_params", model_id, params, false)
            .await
    }

    pub(crate) async fn delete_logged_model_tag_impl(
        &self,
        model_id: &str,
        key: &str,
    ) -> Result<()> {
        self.get_logged_model_impl(model_id).await?;
        let result = sqlx::query("DELETE FROM logged_model_tags WHERE model_id = $1 AND key = $2")
            .bind(model_id)
            .bind(key)
            .execute(&self.write)
            .await
            .map_err(db_err)?;
        if result.rows_affected() == 0 {
            return Err(Error::not_found(format!(
                "No tag with key '{key}' on logged model '{model_id}'"
            )));
        }
        Ok(())
    }

    pub(crate) async fn search_logged_models_impl(
        &self,
        experiment_ids: &[String],
        query: &SearchQuery,
    ) -> Result<Vec<LoggedModel>> {
        let mut sql =
            Sql::new("SELECT m.* FROM logged_models m WHERE m.lifecycle_stage = 'active'");
        if !experiment_ids.is_empty() {
            let mut ids = Vec::new();
            for id in experiment_ids {
                ids.push(sql.arg(Arg::I64(experiment_key(id)?)));
            }
            sql.push(&format!(" AND m.experiment_id IN ({})", ids.join(", ")));
        }
        for c in &query.filter {
            let cond = match (c.entity, c.key.as_str(), &c.value) {
                (Some(EntityType::Tag), key, Value::Str(v)) if c.op == Op::Eq => {
                    let k = sql.arg(Arg::Str(key.to_string()));
                    let v = sql.arg(Arg::Str(v.clone()));
                    format!(
                        "m.model_id IN (SELECT model_id FROM logged_model_tags WHERE key = {k} AND value = {v})"
                    )
                }
                (Some(EntityType::Param), key, Value::Str(v)) if c.op == Op::Eq => {
                    let k = sql.arg(Arg::Str(key.to_string()));
                    let v = sql.arg(Arg::Str(v.clone()));
                    format!(
                        "m.model_id IN (SELECT model_id FROM logged_model_params WHERE key = {k} AND value = {v})"
                    )
                }
                (Some(EntityType::Metric), key, Value::Num(n)) if c.op.is_numeric() => {
                    let k = sql.arg(Arg::Str(key.to_string()));
                    let v = sql.arg(Arg::F64(*n));
                    format!(
                        "m.model_id IN (SELECT model_id FROM logged_model_metrics WHERE key = {k} AND is_nan = 0 AND value {} {v})",
                        c.op.as_sql()
                    )
                }
                (
                    None | Some(EntityType::Attribute),
                    "name" | "model_type" | "source_run_id" | "status" | "model_id",
                    Value::Str(v),
                ) if matches!(c.op, Op::Eq | Op::Ne) => {
                    // Statuses are stored by their full enum name; users write `status = 'READY'`.
                    let v = if c.key == "status" {
                        LoggedModelStatus::parse(&v.to_ascii_uppercase())?
                            .as_str()
                            .to_string()
                    } else {
                        v.clone()
                    };
                    let v = sql.arg(Arg::Str(v));
                    format!("m.{} {} {v}", c.key, c.op.as_sql())
                }
                (
                    None | Some(EntityType::Attribute),
                    "creation_timestamp" | "creation_time" | "last_updated_timestamp",
                    Value::Num(n),
                ) if c.op.is_numeric() => {
                    let column = if c.key.starts_with("creation") {
                        "creation_timestamp_ms"
                    } else {
                        "last_updated_timestamp_ms"
                    };
                    let v = sql.arg(Arg::I64(*n as i64));
                    format!("m.{column} {} {v}", c.op.as_sql())
                }
                _ => {
                    return Err(Error::invalid(format!(
                        "Unsupported logged model filter on '{}' with '{}'",
                        c.key,
                        c.op.as_sql()
                    )));
                }
            };
            sql.push(" AND ").push(&cond);
        }
        let mut order = Vec::new();
        for o in &query.order_by {
            let column = match o.key.as_str() {
                "name" => "m.name",
                "creation_timestamp" | "creation_time" => "m.creation_timestamp_ms",
                "last_updated_timestamp" => "m.last_updated_timestamp_ms",
                "model_id" => "m.model_id",
                other => {
                    return Err(Error::invalid(format!(
                        "Unsupported logged model order_by key '{other}'"
                    )));
                }
            };
            order.push(format!(
                "{column} {}",
                if o.ascending { "ASC" } else { "DESC" }
            ));
        }
        order.push("m.creation_timestamp_ms DESC".into());
        order.push("m.model_id ASC".into());
        sql.push(" ORDER BY ").push(&order.join(", "));
        let limit = sql.arg(Arg::I64(query.max_results + 1));
        let offset = sql.arg(Arg::I64(query.offset));
        sql.push(&format!(" LIMIT {limit} OFFSET {offset}"));
        let rows = sql
            .query(self.dialect)
            .fetch_all(&self.read)
            .await
            .map_err(db_err)?;
        let models = rows
            .iter()
            .map(model_from_row)
            .collect::<Result<Vec<_>>>()?;
        self.hydrate_models(models).await
    }

    /// Records metrics against a logged model (MLflow 3 links `log_metric(model_id=...)`).
    pub(crate) async fn log_logged_model_metrics(
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        run_id: &str,
        metrics: &[Metric],
    ) -> Result<()> {
        for m in metrics {
            let Some(model_id) = &m.model_id else {
                continue;
            };
            let (is_nan, value) = super::stored_value(m.value);
            sqlx::query(
                "INSERT INTO logged_model_metrics (model_id, key, run_uuid, step, timestamp, is_nan, value, dataset_name, dataset_digest) \
                 SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9 WHERE EXISTS (SELECT 1 FROM logged_models WHERE model_id = $1) \
                 ON CONFLICT DO NOTHING",
            )
            .bind(model_id)
            .bind(&m.key)
            .bind(run_id)
            .bind(m.step)
            .bind(m.timestamp)
            .bind(is_nan)
            .bind(value)
            .bind(m.dataset_name.as_deref())
            .bind(m.dataset_digest.as_deref())
            .execute(&mut **tx)
            .await
            .map_err(db_err)?;
        }
        Ok(())
    }
}
