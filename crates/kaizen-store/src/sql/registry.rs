//! The model registry: registered models, versions, tags, aliases, stages and the audit log.
//!
//! Semantics follow MLflow's SqlAlchemy registry store:
//! - a deleted model version stays as a row in the internal stage `Deleted_Internal` with its
//!   fields redacted, so version numbers are never handed out twice (the next version is always
//!   the highest ever created + 1), and every read and search skips such rows;
//! - deleting a registered model removes its versions, tags and aliases (foreign keys cascade);
//!   renaming one carries them along (ON UPDATE CASCADE);
//! - deleting a tag or alias that does not exist is a no-op once the model (or version) is found.
//!
//! Every write runs in one transaction that first takes the registered model's row (a row lock
//! on PostgreSQL; SQLite has a single writer), so concurrent writers to one model queue instead of
//! racing, and each audited change writes its `registry_audit` row in that same transaction.

use std::collections::{BTreeMap, HashMap, HashSet};

use async_trait::async_trait;
use kaizen_core::search::{Comparison, EntityType, Op, OrderBy, Value};
use kaizen_core::{
    AuditEntry, Error, ModelAlias, ModelVersion, RegisteredModel, Result, Stage, Tag,
};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use super::{
    Arg, Dialect, Sql, SqlStore, db_err, is_unique_violation, opt_str, str_list, string_cond,
};
use crate::{AuditRecord, NewModelVersion, RegistryStore, SearchQuery};

/// The stage MLflow gives a deleted version: invisible, but its number stays taken.
const DELETED_STAGE: &str = "Deleted_Internal";
/// The tag that marks a registered model as a prompt; searches leave prompts out unless asked.
const IS_PROMPT_TAG: &str = "mlflow.prompt.is_prompt";
/// Keys (or key pairs) per `IN`/`OR` list: well under both backends' bound-parameter limits.
const CHUNK: usize = 300;

const RM_COLUMNS: &str = "rm.name, rm.creation_time, rm.last_updated_time, rm.description";
const MV_COLUMNS: &str = "mv.name, mv.version, mv.creation_time, mv.last_updated_time, mv.description, mv.user_id, \
     mv.current_stage, mv.source, mv.run_id, mv.run_link, mv.status, mv.status_message, mv.model_id";

mod action {
    pub const CREATE_MODEL: &str = "create_registered_model";
    pub const RENAME_MODEL: &str = "rename_registered_model";
    pub const DELETE_MODEL: &str = "delete_registered_model";
    pub const CREATE_VERSION: &str = "create_model_version";
    pub const DELETE_VERSION: &str = "delete_model_version";
    pub const TRANSITION_STAGE: &str = "transition_stage";
    pub const SET_ALIAS: &str = "set_alias";
    pub const DELETE_ALIAS: &str = "delete_alias";
    /// The actions only the store writes, which `record_audit` refuses.
    pub const ALL: [&str; 8] = [
        CREATE_MODEL,
        RENAME_MODEL,
        DELETE_MODEL,
        CREATE_VERSION,
        DELETE_VERSION,
        TRANSITION_STAGE,
        SET_ALIAS,
        DELETE_ALIAS,
    ];
}

fn model_not_found(name: &str) -> Error {
    Error::not_found(format!("Registered Model with name={name} not found"))
}

fn version_not_found(name: &str, version: i64) -> Error {
    Error::not_found(format!(
        "Model Version (name={name}, version={version}) not found"
    ))
}

/// A missing model reads as a missing version, as in MLflow.
fn as_version_not_found(name: &str, version: i64) -> impl FnOnce(Error) -> Error + '_ {
    move |e| {
        if e.is_not_found() {
            version_not_found(name, version)
        } else {
            e
        }
    }
}

fn model_exists(name: &str) -> Error {
    Error::already_exists(format!("Registered Model (name={name}) already exists."))
}

/// A text column to sort on, in byte order on both backends (PostgreSQL would otherwise sort by
/// the database's locale).
fn text_order(d: Dialect, column: &str) -> String {
    match d {
        Dialect::Postgres => format!("{column} COLLATE \"C\""),
        Dialect::Sqlite => column.to_string(),
    }
}

/// `FOR UPDATE` where the backend has row locks.
fn for_update(d: Dialect) -> &'static str {
    match d {
        Dialect::Postgres => " FOR UPDATE",
        Dialect::Sqlite => "",
    }
}

fn model_from_row(row: &AnyRow) -> RegisteredModel {
    RegisteredModel {
        name: row.get("name"),
        creation_timestamp: row.get("creation_time"),
        last_updated_timestamp: row.get("last_updated_time"),
        description: opt_str(row, "description"),
        latest_versions: Vec::new(),
        tags: Vec::new(),
        aliases: Vec::new(),
    }
}

fn version_from_row(row: &AnyRow) -> Result<ModelVersion> {
    Ok(ModelVersion {
        name: row.get("name"),
        version: row.get("version"),
        creation_timestamp: row.get("creation_time"),
        last_updated_timestamp: row.get("last_updated_time"),
        description: opt_str(row, "description"),
        user_id: opt_str(row, "user_id"),
        current_stage: Stage::parse(&row.get::<String, _>("current_stage"))?,
        source: row.get("source"),
        run_id: opt_str(row, "run_id"),
        status: row.get("status"),
        status_message: opt_str(row, "status_message"),
        tags: Vec::new(),
        run_link: opt_str(row, "run_link"),
        aliases: Vec::new(),
        model_id: opt_str(row, "model_id"),
    })
}

fn audit_from_row(row: &AnyRow) -> AuditEntry {
    AuditEntry {
        id: row.get("id"),
        timestamp: row.get("timestamp"),
        actor: row.get("actor"),
        action: row.get("action"),
        model_name: row.get("model_name"),
        version: row.try_get::<Option<i64>, _>("version").ok().flatten(),
        details: row.get("details"),
        reason: opt_str(row, "reason"),
    }
}

/// The distinct values of `items`, in first-seen order.
fn distinct(items: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut seen = HashSet::new();
    items
        .into_iter()
        .filter(|s| seen.insert(s.clone()))
        .collect()
}

/// The last value of each key wins, as MLflow builds a dict from the tag list.
fn dedup_tags(tags: &[Tag]) -> Vec<(&str, &str)> {
    let mut order: Vec<&str> = Vec::new();
    let mut last: HashMap<&str, &str> = HashMap::new();
    for t in tags {
        if last.insert(&t.key, &t.value).is_none() {
            order.push(&t.key);
        }
    }
    order.into_iter().map(|k| (k, last[k])).collect()
}

/// Takes the registered model's row for the rest of the transaction (a row lock on PostgreSQL),
/// failing with NOT_FOUND when there is no such model.
async fn lock_model(c: &mut AnyConnection, d: Dialect, name: &str) -> Result<()> {
    let found = sqlx::query(&format!(
        "SELECT name FROM registered_models WHERE name = $1{}",
        for_update(d)
    ))
    .bind(name)
    .fetch_optional(&mut *c)
    .await
    .map_err(db_err)?;
    found.map(|_| ()).ok_or_else(|| model_not_found(name))
}

async fn touch_model(c: &mut AnyConnection, name: &str, now: i64) -> Result<()> {
    sqlx::query("UPDATE registered_models SET last_updated_time = $1 WHERE name = $2")
        .bind(now)
        .bind(name)
        .execute(&mut *c)
        .await
        .map_err(db_err)?;
    Ok(())
}

async fn write_audit(
    c: &mut AnyConnection,
    audit: &AuditRecord,
    action: &str,
    model_name: &str,
    version: Option<i64>,
    details: String,
    previous_name: Option<&str>,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO registry_audit (timestamp, actor, action, model_name, version, details, reason, previous_name) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(kaizen_core::now_millis())
    .bind(&audit.actor)
    .bind(action)
    .bind(model_name)
    .bind(version)
    .bind(details)
    .bind(audit.reason.as_deref())
    .bind(previous_name)
    .execute(&mut *c)
    .await
    .map_err(db_err)?;
    Ok(())
}

/// Upserts tags of a registered model (`version` None) or of a model version.
async fn upsert_tags(
    c: &mut AnyConnection,
    d: Dialect,
    name: &str,
    version: Option<i64>,
    tags: &[Tag],
) -> Result<()> {
    let unique = dedup_tags(tags);
    for chunk in unique.chunks(CHUNK) {
        let mut sql = match version {
            None => Sql::new("INSERT INTO registered_model_tags (name, key, value) VALUES "),
            Some(_) => {
                Sql::new("INSERT INTO model_version_tags (name, version, key, value) VALUES ")
            }
        };
        let rows: Vec<String> = chunk
            .iter()
            .map(|(k, v)| {
                let n = sql.arg(Arg::Str(name.to_string()));
                let ver = version
                    .map(|ver| format!("{}, ", sql.arg(Arg::I64(ver))))
                    .unwrap_or_default();
                let k = sql.arg(Arg::Str(k.to_string()));
                let v = sql.arg(Arg::Str(v.to_string()));
                format!("({n}, {ver}{k}, {v})")
            })
            .collect();
        sql.push(&rows.join(", ")).push(match version {
            None => " ON CONFLICT (name, key) DO UPDATE SET value = excluded.value",
            Some(_) => " ON CONFLICT (name, version, key) DO UPDATE SET value = excluded.value",
        });
        sql.query(d).execute(&mut *c).await.map_err(db_err)?;
    }
    Ok(())
}

/// Fills in the tags and aliases of versions read from `model_versions`.
async fn hydrate_versions(
    c: &mut AnyConnection,
    d: Dialect,
    versions: &mut [ModelVersion],
) -> Result<()> {
    if versions.is_empty() {
        return Ok(());
    }
    let index: HashMap<(String, i64), usize> = versions
        .iter()
        .enumerate()
        .map(|(i, v)| ((v.name.clone(), v.version), i))
        .collect();
    let keys: Vec<(String, i64)> = versions
        .iter()
        .map(|v| (v.name.clone(), v.version))
        .collect();
    for chunk in keys.chunks(CHUNK) {
        let mut sql = Sql::new("SELECT name, version, key, value FROM model_version_tags WHERE ");
        let conds: Vec<String> = chunk
            .iter()
            .map(|(n, v)| {
                let n = sql.arg(Arg::Str(n.clone()));
                let v = sql.arg(Arg::I64(*v));
                format!("(name = {n} AND version = {v})")
            })
            .collect();
        sql.push(&conds.join(" OR "))
            .push(&format!(" ORDER BY {}", text_order(d, "key")));
        for row in sql.query(d).fetch_all(&mut *c).await.map_err(db_err)? {
            if let Some(&i) =
                index.get(&(row.get::<String, _>("name"), row.get::<i64, _>("version")))
            {
                versions[i].tags.push(Tag::new(
                    row.get::<String, _>("key"),
                    row.get::<String, _>("value"),
                ));
            }
        }
    }
    let names = distinct(versions.iter().map(|v| v.name.clone()));
    for chunk in names.chunks(CHUNK) {
        let mut sql =
            Sql::new("SELECT name, alias, version FROM registered_model_aliases WHERE name IN (");
        let list = str_list(&mut sql, chunk);
        sql.push(&list)
            .push(&format!(") ORDER BY {}", text_order(d, "alias")));
        for row in sql.query(d).fetch_all(&mut *c).await.map_err(db_err)? {
            if let Some(&i) =
                index.get(&(row.get::<String, _>("name"), row.get::<i64, _>("version")))
            {
                versions[i].aliases.push(row.get("alias"));
            }
        }
    }
    Ok(())
}

/// Runs a query over `model_versions mv` selecting [`MV_COLUMNS`] and hydrates the result.
async fn fetch_versions(c: &mut AnyConnection, d: Dialect, sql: &Sql) -> Result<Vec<ModelVersion>> {
    let rows = sql.query(d).fetch_all(&mut *c).await.map_err(db_err)?;
    let mut versions = rows
        .iter()
        .map(version_from_row)
        .collect::<Result<Vec<_>>>()?;
    hydrate_versions(c, d, &mut versions).await?;
    Ok(versions)
}

/// A live (not deleted) version with its tags and aliases.
async fn fetch_version(
    c: &mut AnyConnection,
    d: Dialect,
    name: &str,
    version: i64,
) -> Result<ModelVersion> {
    let mut sql = Sql::new(format!(
        "SELECT {MV_COLUMNS} FROM model_versions mv WHERE mv.name = "
    ));
    let n = sql.arg(Arg::Str(name.to_string()));
    let v = sql.arg(Arg::I64(version));
    let s = sql.arg(Arg::Str(DELETED_STAGE.to_string()));
    sql.push(&format!(
        "{n} AND mv.version = {v} AND mv.current_stage != {s}"
    ));
    fetch_versions(c, d, &sql)
        .await?
        .pop()
        .ok_or_else(|| version_not_found(name, version))
}

/// The latest live version in each stage of each model, in MLflow's order: stages in the order
/// their oldest version was created.
async fn latest_versions(
    c: &mut AnyConnection,
    d: Dialect,
    names: &[String],
) -> Result<HashMap<String, Vec<ModelVersion>>> {
    let mut out: HashMap<String, Vec<ModelVersion>> = HashMap::new();
    for chunk in names.chunks(CHUNK) {
        let mut sql = Sql::new(format!(
            "SELECT {MV_COLUMNS} FROM model_versions mv JOIN (\
             SELECT name, current_stage, MAX(version) AS latest, MIN(version) AS first_version \
             FROM model_versions WHERE current_stage != "
        ));
        let s = sql.arg(Arg::Str(DELETED_STAGE.to_string()));
        sql.push(&s).push(" AND name IN (");
        let list = str_list(&mut sql, chunk);
        sql.push(&list).push(
            ") GROUP BY name, current_stage) l ON mv.name = l.name AND mv.version = l.latest \
             ORDER BY mv.name, l.first_version",
        );
        for v in fetch_versions(c, d, &sql).await? {
            out.entry(v.name.clone()).or_default().push(v);
        }
    }
    Ok(out)
}

/// Fills in tags, aliases and latest versions of registered models.
async fn hydrate_models(
    c: &mut AnyConnection,
    d: Dialect,
    models: &mut [RegisteredModel],
) -> Result<()> {
    if models.is_empty() {
        return Ok(());
    }
    let index: HashMap<String, usize> = models
        .iter()
        .enumerate()
        .map(|(i, m)| (m.name.clone(), i))
        .collect();
    let names: Vec<String> = models.iter().map(|m| m.name.clone()).collect();
    for chunk in names.chunks(CHUNK) {
        let mut sql =
            Sql::new("SELECT name, key, value FROM registered_model_tags WHERE name IN (");
        let list = str_list(&mut sql, chunk);
        sql.push(&list)
            .push(&format!(") ORDER BY {}", text_order(d, "key")));
        for row in sql.query(d).fetch_all(&mut *c).await.map_err(db_err)? {
            let i = index[&row.get::<String, _>("name")];
            models[i].tags.push(Tag::new(
                row.get::<String, _>("key"),
                row.get::<String, _>("value"),
            ));
        }

        let mut sql =
            Sql::new("SELECT name, alias, version FROM registered_model_aliases WHERE name IN (");
        let list = str_list(&mut sql, chunk);
        sql.push(&list)
            .push(&format!(") ORDER BY {}", text_order(d, "alias")));
        for row in sql.query(d).fetch_all(&mut *c).await.map_err(db_err)? {
            let i = index[&row.get::<String, _>("name")];
            models[i].aliases.push(ModelAlias {
                alias: row.get("alias"),
                version: row.get::<i64, _>("version").to_string(),
            });
        }
    }
    let mut latest = latest_versions(c, d, &names).await?;
    for m in models.iter_mut() {
        m.latest_versions = latest.remove(&m.name).unwrap_or_default();
    }
    Ok(())
}

/// A registered model with everything MLflow returns for it.
async fn fetch_model(c: &mut AnyConnection, d: Dialect, name: &str) -> Result<RegisteredModel> {
    let row = sqlx::query(&format!(
        "SELECT {RM_COLUMNS} FROM registered_models rm WHERE rm.name = $1"
    ))
    .bind(name)
    .fetch_optional(&mut *c)
    .await
    .map_err(db_err)?
    .ok_or_else(|| model_not_found(name))?;
    let mut models = [model_from_row(&row)];
    hydrate_models(c, d, &mut models).await?;
    let [model] = models;
    Ok(model)
}

fn value_text(v: &Value) -> String {
    match v {
        Value::Str(s) => format!("'{s}'"),
        Value::Num(n) => n.to_string(),
        Value::List(items) => format!(
            "({})",
            items
                .iter()
                .map(|s| format!("'{s}'"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Value::None => "NULL".into(),
    }
}

/// Whether the filter asks for prompts, as MLflow decides it: the first comparison on the prompt
/// tag is `= 'true'` or `!= 'false'`.
fn querying_prompts(filter: &[Comparison]) -> bool {
    filter
        .iter()
        .find(|c| c.entity == Some(EntityType::Tag) && c.key == IS_PROMPT_TAG)
        .is_some_and(|c| match (&c.op, &c.value) {
            (Op::Eq, Value::Str(v)) => v.eq_ignore_ascii_case("true"),
            (Op::Ne, Value::Str(v)) => v.eq_ignore_ascii_case("false"),
            _ => false,
        })
}

fn invalid_entity(entity: EntityType) -> Error {
    Error::invalid(format!(
        "Invalid entity type '{}'. Valid entity types are ('attribute', 'tag', 'tags')",
        format!("{entity:?}").to_ascii_lowercase()
    ))
}

/// The condition for one tag comparison; `table` holds `name` (and `version`) and `key`, `value`.
fn tag_cond(d: Dialect, sql: &mut Sql, c: &Comparison) -> Result<String> {
    if !matches!(c.op, Op::Eq | Op::Ne | Op::Like | Op::ILike) {
        return Err(Error::invalid(format!(
            "Invalid comparator for tag: {}",
            c.op.as_sql()
        )));
    }
    if !matches!(c.value, Value::Str(_)) {
        return Err(Error::invalid(format!(
            "Expected a quoted string value for tag (e.g. 'my-value'). Got value {}",
            value_text(&c.value)
        )));
    }
    let key = sql.arg(Arg::Str(c.key.clone()));
    let cond = string_cond(d, sql, "t.value", c.op, &c.value).expect("checked above");
    Ok(format!("t.key = {key} AND {cond}"))
}

/// Translates a registered-model filter into `AND ...` conditions on `registered_models rm`.
fn model_filter(d: Dialect, sql: &mut Sql, filter: &[Comparison]) -> Result<()> {
    let prompts = querying_prompts(filter);
    for c in filter {
        match c.entity {
            None | Some(EntityType::Attribute) => {
                if c.key != "name" {
                    return Err(Error::invalid(format!(
                        "Invalid attribute key '{}' specified. Valid keys are '{{'name'}}'",
                        c.key
                    )));
                }
                if !matches!(
                    c.op,
                    Op::Eq | Op::Ne | Op::Like | Op::ILike | Op::In | Op::NotIn
                ) {
                    return Err(Error::invalid(format!(
                        "Invalid comparator for attribute: {}",
                        c.op.as_sql()
                    )));
                }
                let cond = string_cond(d, sql, "rm.name", c.op, &c.value).ok_or_else(|| {
                    Error::invalid(format!(
                        "Expected a quoted string value or a list of quoted string values for attributes. Got value {}",
                        value_text(&c.value)
                    ))
                })?;
                sql.push(" AND ").push(&cond);
            }
            Some(EntityType::Tag) => {
                let cond = tag_cond(d, sql, c)?;
                // Without asking for prompts, a filter on the prompt tag only excludes prompts.
                if c.key == IS_PROMPT_TAG && !prompts {
                    continue;
                }
                sql.push(&format!(
                    " AND rm.name IN (SELECT t.name FROM registered_model_tags t WHERE {cond})"
                ));
            }
            Some(other) => return Err(invalid_entity(other)),
        }
    }
    if !prompts {
        let key = sql.arg(Arg::Str(IS_PROMPT_TAG.to_string()));
        sql.push(&format!(
            " AND rm.name NOT IN (SELECT p.name FROM registered_model_tags p WHERE p.key = {key} AND p.value = 'true')"
        ));
    }
    Ok(())
}

const VERSION_SEARCH_KEYS: &str = "{'name', 'version_number', 'run_id', 'source_path'}";

/// Translates a model-version filter into `AND ...` conditions on `model_versions mv`.
fn version_filter(d: Dialect, sql: &mut Sql, filter: &[Comparison]) -> Result<()> {
    let prompts = querying_prompts(filter);
    for c in filter {
        match c.entity {
            None | Some(EntityType::Attribute) => {
                let column = match c.key.as_str() {
                    "name" => "mv.name",
                    "run_id" => "mv.run_id",
                    "source_path" => "mv.source",
                    "version_number" => "mv.version",
                    other => {
                        return Err(Error::invalid(format!(
                            "Invalid attribute key '{other}' specified. Valid keys are '{VERSION_SEARCH_KEYS}'"
                        )));
                    }
                };
                let cond = if c.key == "version_number" {
                    if !c.op.is_numeric() {
                        return Err(Error::invalid(format!(
                            "Invalid comparator for attribute {}: {}",
                            c.key,
                            c.op.as_sql()
                        )));
                    }
                    let n = match &c.value {
                        Value::Num(n) if n.fract() == 0.0 && n.is_finite() => Some(*n as i64),
                        Value::Str(s) => s.trim().parse::<i64>().ok(),
                        _ => None,
                    }
                    .ok_or_else(|| {
                        Error::invalid(format!(
                            "Invalid value for numeric attribute '{}': {}",
                            c.key,
                            value_text(&c.value)
                        ))
                    })?;
                    format!("{column} {} {}", c.op.as_sql(), sql.arg(Arg::I64(n)))
                } else {
                    let list_ok = matches!(c.key.as_str(), "run_id" | "name");
                    if !matches!(
                        c.op,
                        Op::Eq | Op::Ne | Op::Like | Op::ILike | Op::In | Op::NotIn
                    ) || (matches!(c.op, Op::In | Op::NotIn) && !list_ok)
                    {
                        return Err(Error::invalid(format!(
                            "Invalid comparator for attribute: {}",
                            c.op.as_sql()
                        )));
                    }
                    if matches!(c.value, Value::Num(_)) {
                        return Err(Error::invalid(
                            "Only the '{'version_number', 'creation_timestamp', 'last_updated_timestamp'}' attributes \
                             support comparison with numeric values.",
                        ));
                    }
                    string_cond(d, sql, column, c.op, &c.value).ok_or_else(|| {
                        Error::invalid(format!(
                            "Expected a quoted string value or a list of quoted string values for attributes. Got value {}",
                            value_text(&c.value)
                        ))
                    })?
                };
                sql.push(" AND ").push(&cond);
            }
            Some(EntityType::Tag) => {
                let cond = tag_cond(d, sql, c)?;
                if c.key == IS_PROMPT_TAG && !prompts {
                    continue;
                }
                sql.push(&format!(
                    " AND EXISTS (SELECT 1 FROM model_version_tags t WHERE t.name = mv.name AND t.version = mv.version AND {cond})"
                ));
            }
            Some(other) => return Err(invalid_entity(other)),
        }
    }
    if !prompts {
        let key = sql.arg(Arg::Str(IS_PROMPT_TAG.to_string()));
        sql.push(&format!(
            " AND mv.name NOT IN (SELECT p.name FROM model_version_tags p WHERE p.key = {key} AND p.value = 'true')"
        ));
    }
    Ok(())
}

fn duplicate_order(order_by: &[OrderBy]) -> Error {
    let list: Vec<String> = order_by
        .iter()
        .map(|o| format!("'{} {}'", o.key, if o.ascending { "ASC" } else { "DESC" }))
        .collect();
    Error::invalid(format!(
        "`order_by` contains duplicate fields: [{}]",
        list.join(", ")
    ))
}

/// ORDER BY terms for registered models; `name ASC` ends every order as the tie-breaker.
fn model_order(d: Dialect, order_by: &[OrderBy]) -> Result<String> {
    let mut terms = Vec::new();
    let mut seen = HashSet::new();
    for o in order_by {
        let column = match (o.entity, o.key.as_str()) {
            (None | Some(EntityType::Attribute), "name") => "rm.name",
            (
                None | Some(EntityType::Attribute),
                "timestamp" | "last_updated_timestamp" | "last_updated_time",
            ) => "rm.last_updated_time",
            (None | Some(EntityType::Attribute), "creation_timestamp" | "creation_time") => {
                "rm.creation_time"
            }
            _ => {
                return Err(Error::invalid(format!(
                    "Invalid order by key '{}' specified. Valid keys are '{{'name', 'timestamp', 'last_updated_timestamp', 'creation_timestamp'}}'",
                    o.key
                )));
            }
        };
        if !seen.insert(column) {
            return Err(duplicate_order(order_by));
        }
        let column = if column == "rm.name" {
            text_order(d, column)
        } else {
            column.to_string()
        };
        terms.push(format!(
            "{column} {}",
            if o.ascending { "ASC" } else { "DESC" }
        ));
    }
    if !seen.contains("rm.name") {
        terms.push(format!("{} ASC", text_order(d, "rm.name")));
    }
    Ok(terms.join(", "))
}

/// ORDER BY terms for model versions: MLflow's default is `last_updated_timestamp DESC, name ASC,
/// version_number DESC`, and `name ASC`, `version DESC` end every order as tie-breakers.
fn version_order(d: Dialect, order_by: &[OrderBy]) -> Result<String> {
    let default = [
        OrderBy {
            entity: None,
            key: "last_updated_timestamp".into(),
            ascending: false,
        },
        OrderBy {
            entity: None,
            key: "name".into(),
            ascending: true,
        },
        OrderBy {
            entity: None,
            key: "version_number".into(),
            ascending: false,
        },
    ];
    let order_by = if order_by.is_empty() {
        &default[..]
    } else {
        order_by
    };
    let mut terms = Vec::new();
    let mut seen = HashSet::new();
    for o in order_by {
        let column = match (o.entity, o.key.as_str()) {
            (None | Some(EntityType::Attribute), "name") => "mv.name",
            (None | Some(EntityType::Attribute), "version_number") => "mv.version",
            (None | Some(EntityType::Attribute), "creation_timestamp") => "mv.creation_time",
            (None | Some(EntityType::Attribute), "last_updated_timestamp") => {
                "mv.last_updated_time"
            }
            _ => {
                return Err(Error::invalid(format!(
                    "Invalid order by key '{}' specified. Valid keys are {{'name', 'version_number', 'creation_timestamp', 'last_updated_timestamp'}}",
                    o.key
                )));
            }
        };
        if !seen.insert(column) {
            return Err(duplicate_order(order_by));
        }
        let column = if column == "mv.name" {
            text_order(d, column)
        } else {
            column.to_string()
        };
        terms.push(format!(
            "{column} {}",
            if o.ascending { "ASC" } else { "DESC" }
        ));
    }
    if !seen.contains("mv.name") {
        terms.push(format!("{} ASC", text_order(d, "mv.name")));
    }
    if !seen.contains("mv.version") {
        terms.push("mv.version DESC".into());
    }
    Ok(terms.join(", "))
}

/// Maps a unique violation to RESOURCE_ALREADY_EXISTS for `name`.
fn name_taken(name: &str) -> impl FnOnce(sqlx::Error) -> Error + '_ {
    move |e| {
        if is_unique_violation(&e) {
            model_exists(name)
        } else {
            db_err(e)
        }
    }
}

#[async_trait]
impl RegistryStore for SqlStore {
    async fn create_registered_model(
        &self,
        name: &str,
        description: Option<&str>,
        tags: &[Tag],
        audit: &AuditRecord,
    ) -> Result<RegisteredModel> {
        let d = self.dialect;
        let now = kaizen_core::now_millis();
        let mut tx = self.begin_write().await.map_err(db_err)?;
        sqlx::query(
            "INSERT INTO registered_models (name, creation_time, last_updated_time, description) VALUES ($1, $2, $2, $3)",
        )
        .bind(name)
        .bind(now)
        .bind(description)
        .execute(&mut *tx)
        .await
        .map_err(name_taken(name))?;
        upsert_tags(&mut tx, self.dialect, name, None, tags).await?;
        write_audit(
            &mut tx,
            audit,
            action::CREATE_MODEL,
            name,
            None,
            format!("registered model {name} created"),
            None,
        )
        .await?;
        let model = fetch_model(&mut tx, d, name).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(model)
    }

    async fn get_registered_model(&self, name: &str) -> Result<RegisteredModel> {
        let mut c = self.read.acquire().await.map_err(db_err)?;
        fetch_model(&mut c, self.dialect, name).await
    }

    async fn rename_registered_model(
        &self,
        name: &str,
        new_name: &str,
        audit: &AuditRecord,
    ) -> Result<RegisteredModel> {
        let d = self.dialect;
        let now = kaizen_core::now_millis();
        let mut tx = self.begin_write().await.map_err(db_err)?;
        lock_model(&mut tx, d, name).await?;
        if new_name != name {
            let taken = sqlx::query("SELECT 1 FROM registered_models WHERE name = $1")
                .bind(new_name)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_err)?;
            if taken.is_some() {
                return Err(model_exists(new_name));
            }
        }
        // Tags, versions (and their tags) and aliases follow through ON UPDATE CASCADE.
        sqlx::query(
            "UPDATE registered_models SET name = $1, last_updated_time = $2 WHERE name = $3",
        )
        .bind(new_name)
        .bind(now)
        .bind(name)
        .execute(&mut *tx)
        .await
        .map_err(name_taken(new_name))?;
        sqlx::query("UPDATE model_versions SET last_updated_time = $1 WHERE name = $2")
            .bind(now)
            .bind(new_name)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        write_audit(
            &mut tx,
            audit,
            action::RENAME_MODEL,
            new_name,
            None,
            format!("renamed from {name} to {new_name}"),
            Some(name),
        )
        .await?;
        let model = fetch_model(&mut tx, d, new_name).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(model)
    }

    async fn update_registered_model(
        &self,
        name: &str,
        description: Option<&str>,
    ) -> Result<RegisteredModel> {
        let d = self.dialect;
        let mut tx = self.begin_write().await.map_err(db_err)?;
        let updated = sqlx::query(
            "UPDATE registered_models SET description = $1, last_updated_time = $2 WHERE name = $3",
        )
        .bind(description)
        .bind(kaizen_core::now_millis())
        .bind(name)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        if updated.rows_affected() == 0 {
            return Err(model_not_found(name));
        }
        let model = fetch_model(&mut tx, d, name).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(model)
    }

    async fn delete_registered_model(&self, name: &str, audit: &AuditRecord) -> Result<()> {
        let d = self.dialect;
        let mut tx = self.begin_write().await.map_err(db_err)?;
        lock_model(&mut tx, d, name).await?;
        let live: i64 = sqlx::query(
            "SELECT COUNT(*) FROM model_versions WHERE name = $1 AND current_stage != $2",
        )
        .bind(name)
        .bind(DELETED_STAGE)
        .fetch_one(&mut *tx)
        .await
        .map_err(db_err)?
        .get(0);
        // Versions, tags and aliases go with it through ON DELETE CASCADE.
        sqlx::query("DELETE FROM registered_models WHERE name = $1")
            .bind(name)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        let details = match live {
            0 => format!("registered model {name} deleted"),
            1 => format!("registered model {name} deleted with its 1 version"),
            n => format!("registered model {name} deleted with its {n} versions"),
        };
        write_audit(
            &mut tx,
            audit,
            action::DELETE_MODEL,
            name,
            None,
            details,
            None,
        )
        .await?;
        tx.commit().await.map_err(db_err)?;
        Ok(())
    }

    async fn search_registered_models(&self, query: &SearchQuery) -> Result<Vec<RegisteredModel>> {
        let d = self.dialect;
        let mut sql = Sql::new(format!(
            "SELECT {RM_COLUMNS} FROM registered_models rm WHERE 1 = 1"
        ));
        model_filter(d, &mut sql, &query.filter)?;
        let order = model_order(d, &query.order_by)?;
        sql.push(" ORDER BY ").push(&order);
        let limit = sql.arg(Arg::I64(query.max_results + 1));
        let offset = sql.arg(Arg::I64(query.offset));
        sql.push(&format!(" LIMIT {limit} OFFSET {offset}"));
        let mut c = self.read.acquire().await.map_err(db_err)?;
        let rows = sql
            .query(self.dialect)
            .fetch_all(&mut *c)
            .await
            .map_err(db_err)?;
        let mut models: Vec<RegisteredModel> = rows.iter().map(model_from_row).collect();
        hydrate_models(&mut c, d, &mut models).await?;
        Ok(models)
    }

    async fn set_registered_model_tag(&self, name: &str, tag: &Tag) -> Result<()> {
        let mut tx = self.begin_write().await.map_err(db_err)?;
        lock_model(&mut tx, self.dialect, name).await?;
        upsert_tags(&mut tx, self.dialect, name, None, std::slice::from_ref(tag)).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(())
    }

    async fn delete_registered_model_tag(&self, name: &str, key: &str) -> Result<()> {
        let mut tx = self.begin_write().await.map_err(db_err)?;
        lock_model(&mut tx, self.dialect, name).await?;
        // As in MLflow, deleting a tag the model does not have is not an error.
        sqlx::query("DELETE FROM registered_model_tags WHERE name = $1 AND key = $2")
            .bind(name)
            .bind(key)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        Ok(())
    }

    async fn set_alias(
        &self,
        name: &str,
        alias: &str,
        version: i64,
        audit: &AuditRecord,
    ) -> Result<()> {
        let d = self.dialect;
        let mut tx = self.begin_write().await.map_err(db_err)?;
        lock_model(&mut tx, d, name)
            .await
            .map_err(as_version_not_found(name, version))?;
        let live = sqlx::query(
            "SELECT 1 FROM model_versions WHERE name = $1 AND version = $2 AND current_stage != $3",
        )
        .bind(name)
        .bind(version)
        .bind(DELETED_STAGE)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_err)?;
        if live.is_none() {
            return Err(version_not_found(name, version));
        }
        let previous: Option<i64> = sqlx::query(
            "SELECT version FROM registered_model_aliases WHERE name = $1 AND alias = $2",
        )
        .bind(name)
        .bind(alias)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_err)?
        .map(|r| r.get(0));
        sqlx::query(
            "INSERT INTO registered_model_aliases (name, alias, version) VALUES ($1, $2, $3) \
             ON CONFLICT (name, alias) DO UPDATE SET version = excluded.version",
        )
        .bind(name)
        .bind(alias)
        .bind(version)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        let from = previous.map_or_else(|| "none".to_string(), |v| v.to_string());
        write_audit(
            &mut tx,
            audit,
            action::SET_ALIAS,
            name,
            Some(version),
            format!("alias {alias}: {from} -> {version}"),
            None,
        )
        .await?;
        tx.commit().await.map_err(db_err)?;
        Ok(())
    }

    async fn delete_alias(&self, name: &str, alias: &str, audit: &AuditRecord) -> Result<()> {
        let mut tx = self.begin_write().await.map_err(db_err)?;
        lock_model(&mut tx, self.dialect, name).await?;
        let previous: Option<i64> = sqlx::query(
            "SELECT version FROM registered_model_aliases WHERE name = $1 AND alias = $2",
        )
        .bind(name)
        .bind(alias)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_err)?
        .map(|r| r.get(0));
        // As in MLflow, deleting an alias that does not exist is not an error (and changes nothing
        // worth recording).
        if let Some(version) = previous {
            sqlx::query("DELETE FROM registered_model_aliases WHERE name = $1 AND alias = $2")
                .bind(name)
                .bind(alias)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
            write_audit(
                &mut tx,
                audit,
                action::DELETE_ALIAS,
                name,
                Some(version),
                format!("alias {alias}: {version} -> none"),
                None,
            )
            .await?;
        }
        tx.commit().await.map_err(db_err)?;
        Ok(())
    }

    async fn get_version_by_alias(&self, name: &str, alias: &str) -> Result<ModelVersion> {
        let d = self.dialect;
        let mut c = self.read.acquire().await.map_err(db_err)?;
        let exists = sqlx::query("SELECT 1 FROM registered_models WHERE name = $1")
            .bind(name)
            .fetch_optional(&mut *c)
            .await
            .map_err(db_err)?;
        if exists.is_none() {
            return Err(model_not_found(name));
        }
        let version: Option<i64> = if alias.eq_ignore_ascii_case("latest") {
            // MLflow's reserved alias: the newest live version.
            let v = sqlx::query(
                "SELECT MAX(version) FROM model_versions WHERE name = $1 AND current_stage != $2",
            )
            .bind(name)
            .bind(DELETED_STAGE)
            .fetch_one(&mut *c)
            .await
            .map_err(db_err)?
            .try_get::<Option<i64>, _>(0)
            .map_err(db_err)?;
            if v.is_none() {
                return Err(Error::not_found(format!(
                    "Latest version not found for model {name}."
                )));
            }
            v
        } else {
            sqlx::query(
                "SELECT version FROM registered_model_aliases WHERE name = $1 AND alias = $2",
            )
            .bind(name)
            .bind(alias)
            .fetch_optional(&mut *c)
            .await
            .map_err(db_err)?
            .map(|r| r.get(0))
        };
        match version {
            Some(v) => fetch_version(&mut c, d, name, v).await,
            // MLflow answers INVALID_PARAMETER_VALUE here, not RESOURCE_DOES_NOT_EXIST.
            None => Err(Error::invalid(format!(
                "Registered model alias {alias} not found."
            ))),
        }
    }

    async fn create_model_version(
        &self,
        new: &NewModelVersion,
        audit: &AuditRecord,
    ) -> Result<ModelVersion> {
        let d = self.dialect;
        let name = new.name.as_str();
        let now = kaizen_core::now_millis();
        let mut tx = self.begin_write().await.map_err(db_err)?;
        // The row lock makes concurrent creates on one model take their numbers one after another.
        lock_model(&mut tx, d, name).await?;
        touch_model(&mut tx, name, now).await?;
        // Deleted versions keep their rows, so numbers are never reused.
        let max: Option<i64> =
            sqlx::query("SELECT MAX(version) FROM model_versions WHERE name = $1")
                .bind(name)
                .fetch_one(&mut *tx)
                .await
                .map_err(db_err)?
                .try_get::<Option<i64>, _>(0)
                .map_err(db_err)?;
        let version = max.unwrap_or(0) + 1;
        // As MLflow does, a version promoted from a logged model takes that model's run.
        let mut run_id = new.run_id.clone().filter(|r| !r.is_empty());
        if run_id.is_none()
            && let Some(model_id) = new.model_id.as_deref()
        {
            run_id = sqlx::query("SELECT source_run_id FROM logged_models WHERE model_id = $1")
                .bind(model_id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_err)?
                .and_then(|r| opt_str(&r, "source_run_id"));
        }
        sqlx::query(
            "INSERT INTO model_versions (name, version, creation_time, last_updated_time, description, user_id, \
             current_stage, source, run_id, run_link, status, status_message, model_id) \
             VALUES ($1, $2, $3, $3, $4, $5, $6, $7, $8, $9, 'READY', NULL, $10)",
        )
        .bind(name)
        .bind(version)
        .bind(now)
        .bind(new.description.as_deref())
        .bind(new.user_id.as_deref())
        .bind(Stage::None.as_str())
        .bind(&new.source)
        .bind(run_id.as_deref())
        .bind(new.run_link.as_deref())
        .bind(new.model_id.as_deref())
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        upsert_tags(&mut tx, self.dialect, name, Some(version), &new.tags).await?;
        write_audit(
            &mut tx,
            audit,
            action::CREATE_VERSION,
            name,
            Some(version),
            format!("version {version} created from {}", new.source),
            None,
        )
        .await?;
        let mv = fetch_version(&mut tx, d, name, version).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(mv)
    }

    async fn get_model_version(&self, name: &str, version: i64) -> Result<ModelVersion> {
        let mut c = self.read.acquire().await.map_err(db_err)?;
        fetch_version(&mut c, self.dialect, name, version).await
    }

    async fn update_model_version(
        &self,
        name: &str,
        version: i64,
        description: Option<&str>,
    ) -> Result<ModelVersion> {
        let d = self.dialect;
        let mut tx = self.begin_write().await.map_err(db_err)?;
        lock_model(&mut tx, d, name)
            .await
            .map_err(as_version_not_found(name, version))?;
        let updated = sqlx::query(
            "UPDATE model_versions SET description = $1, last_updated_time = $2 \
             WHERE name = $3 AND version = $4 AND current_stage != $5",
        )
        .bind(description)
        .bind(kaizen_core::now_millis())
        .bind(name)
        .bind(version)
        .bind(DELETED_STAGE)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        if updated.rows_affected() == 0 {
            return Err(version_not_found(name, version));
        }
        let mv = fetch_version(&mut tx, d, name, version).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(mv)
    }

    async fn delete_model_version(
        &self,
        name: &str,
        version: i64,
        audit: &AuditRecord,
    ) -> Result<()> {
        let d = self.dialect;
        let now = kaizen_core::now_millis();
        let mut tx = self.begin_write().await.map_err(db_err)?;
        lock_model(&mut tx, d, name)
            .await
            .map_err(as_version_not_found(name, version))?;
        // MLflow keeps the row, redacted, in an internal stage so that the number stays taken.
        let updated = sqlx::query(
            "UPDATE model_versions SET current_stage = $1, last_updated_time = $2, description = NULL, user_id = NULL, \
             source = 'REDACTED-SOURCE-PATH', run_id = 'REDACTED-RUN-ID', run_link = 'REDACTED-RUN-LINK', \
             status_message = NULL WHERE name = $3 AND version = $4 AND current_stage != $1",
        )
        .bind(DELETED_STAGE)
        .bind(now)
        .bind(name)
        .bind(version)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        if updated.rows_affected() == 0 {
            return Err(version_not_found(name, version));
        }
        let removed_aliases: Vec<String> = sqlx::query(&format!(
            "SELECT alias FROM registered_model_aliases WHERE name = $1 AND version = $2 ORDER BY {}",
            text_order(d, "alias")
        ))
        .bind(name)
        .bind(version)
        .fetch_all(&mut *tx)
        .await
        .map_err(db_err)?
        .iter()
        .map(|r| r.get(0))
        .collect();
        for table in ["registered_model_aliases", "model_version_tags"] {
            sqlx::query(&format!(
                "DELETE FROM {table} WHERE name = $1 AND version = $2"
            ))
            .bind(name)
            .bind(version)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        }
        touch_model(&mut tx, name, now).await?;
        let mut details = format!("version {version} deleted");
        if !removed_aliases.is_empty() {
            details.push_str(&format!(
                " (aliases removed: {})",
                removed_aliases.join(", ")
            ));
        }
        write_audit(
            &mut tx,
            audit,
            action::DELETE_VERSION,
            name,
            Some(version),
            details,
            None,
        )
        .await?;
        tx.commit().await.map_err(db_err)?;
        Ok(())
    }

    async fn search_model_versions(&self, query: &SearchQuery) -> Result<Vec<ModelVersion>> {
        let d = self.dialect;
        let mut sql = Sql::new(format!(
            "SELECT {MV_COLUMNS} FROM model_versions mv WHERE mv.current_stage != "
        ));
        let s = sql.arg(Arg::Str(DELETED_STAGE.to_string()));
        sql.push(&s);
        version_filter(d, &mut sql, &query.filter)?;
        let order = version_order(d, &query.order_by)?;
        sql.push(" ORDER BY ").push(&order);
        let limit = sql.arg(Arg::I64(query.max_results + 1));
        let offset = sql.arg(Arg::I64(query.offset));
        sql.push(&format!(" LIMIT {limit} OFFSET {offset}"));
        let mut c = self.read.acquire().await.map_err(db_err)?;
        fetch_versions(&mut c, d, &sql).await
    }

    async fn set_model_version_tag(&self, name: &str, version: i64, tag: &Tag) -> Result<()> {
        let d = self.dialect;
        let mut tx = self.begin_write().await.map_err(db_err)?;
        lock_model(&mut tx, d, name)
            .await
            .map_err(as_version_not_found(name, version))?;
        fetch_version(&mut tx, d, name, version).await?;
        upsert_tags(
            &mut tx,
            self.dialect,
            name,
            Some(version),
            std::slice::from_ref(tag),
        )
        .await?;
        tx.commit().await.map_err(db_err)?;
        Ok(())
    }

    async fn delete_model_version_tag(&self, name: &str, version: i64, key: &str) -> Result<()> {
        let d = self.dialect;
        let mut tx = self.begin_write().await.map_err(db_err)?;
        lock_model(&mut tx, d, name)
            .await
            .map_err(as_version_not_found(name, version))?;
        fetch_version(&mut tx, d, name, version).await?;
        // As in MLflow, deleting a tag the version does not have is not an error.
        sqlx::query("DELETE FROM model_version_tags WHERE name = $1 AND version = $2 AND key = $3")
            .bind(name)
            .bind(version)
            .bind(key)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        Ok(())
    }

    async fn transition_stage(
        &self,
        name: &str,
        version: i64,
        stage: Stage,
        archive_existing: bool,
        audit: &AuditRecord,
    ) -> Result<ModelVersion> {
        let d = self.dialect;
        if archive_existing && !matches!(stage, Stage::Staging | Stage::Production) {
            return Err(Error::invalid(format!(
                "Model version transition cannot archive existing model versions because '{}' is not an Active stage. \
                 Valid stages are ['Staging', 'Production']",
                stage.as_str()
            )));
        }
        let now = kaizen_core::now_millis();
        let mut tx = self.begin_write().await.map_err(db_err)?;
        lock_model(&mut tx, d, name)
            .await
            .map_err(as_version_not_found(name, version))?;
        let current = fetch_version(&mut tx, d, name, version).await?;
        let mut archived: Vec<i64> = Vec::new();
        if archive_existing {
            archived = sqlx::query("SELECT version FROM model_versions WHERE name = $1 AND version != $2 AND current_stage = $3 ORDER BY version")
                .bind(name)
                .bind(version)
                .bind(stage.as_str())
                .fetch_all(&mut *tx)
                .await
                .map_err(db_err)?
                .iter()
                .map(|r| r.get(0))
                .collect();
            sqlx::query(
                "UPDATE model_versions SET current_stage = $1, last_updated_time = $2 \
                 WHERE name = $3 AND version != $4 AND current_stage = $5",
            )
            .bind(Stage::Archived.as_str())
            .bind(now)
            .bind(name)
            .bind(version)
            .bind(stage.as_str())
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        }
        sqlx::query("UPDATE model_versions SET current_stage = $1, last_updated_time = $2 WHERE name = $3 AND version = $4")
            .bind(stage.as_str())
            .bind(now)
            .bind(name)
            .bind(version)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        touch_model(&mut tx, name, now).await?;
        let mut details = format!(
            "stage of version {version}: {} -> {}",
            current.current_stage.as_str(),
            stage.as_str()
        );
        if !archived.is_empty() {
            let list: Vec<String> = archived.iter().map(i64::to_string).collect();
            let noun = if archived.len() == 1 {
                "version"
            } else {
                "versions"
            };
            details.push_str(&format!("; archived {noun} {}", list.join(", ")));
        }
        write_audit(
            &mut tx,
            audit,
            action::TRANSITION_STAGE,
            name,
            Some(version),
            details,
            None,
        )
        .await?;
        let mv = fetch_version(&mut tx, d, name, version).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(mv)
    }

    async fn get_latest_versions(&self, name: &str, stages: &[Stage]) -> Result<Vec<ModelVersion>> {
        let d = self.dialect;
        let mut c = self.read.acquire().await.map_err(db_err)?;
        let exists = sqlx::query("SELECT 1 FROM registered_models WHERE name = $1")
            .bind(name)
            .fetch_optional(&mut *c)
            .await
            .map_err(db_err)?;
        if exists.is_none() {
            return Err(model_not_found(name));
        }
        let latest = latest_versions(&mut c, d, &[name.to_string()])
            .await?
            .remove(name)
            .unwrap_or_default();
        Ok(latest
            .into_iter()
            .filter(|v| stages.is_empty() || stages.contains(&v.current_stage))
            .collect())
    }

    async fn audit_log(&self, name: &str) -> Result<Vec<AuditEntry>> {
        // The entries recorded under `name`, and, following renames into it backwards, those of
        // the model under its earlier names (up to its rename, and after any earlier model of that
        // name was deleted). `before` bounds strictly decrease, so the walk ends.
        let mut c = self.read.acquire().await.map_err(db_err)?;
        let mut entries: BTreeMap<i64, AuditEntry> = BTreeMap::new();
        let mut todo: Vec<(String, Option<i64>, Option<i64>)> =
            vec![(name.to_string(), None, None)];
        while let Some((n, before, after)) = todo.pop() {
            let mut sql = Sql::new(
                "SELECT id, timestamp, actor, action, model_name, version, details, reason, previous_name \
                 FROM registry_audit WHERE (model_name = ",
            );
            let p = sql.arg(Arg::Str(n.clone()));
            sql.push(&format!("{p} OR previous_name = {p})"));
            if let Some(b) = before {
                let b = sql.arg(Arg::I64(b));
                sql.push(&format!(" AND id < {b}"));
            }
            if let Some(a) = after {
                let a = sql.arg(Arg::I64(a));
                sql.push(&format!(" AND id > {a}"));
            }
            sql.push(" ORDER BY id");
            for row in sql
                .query(self.dialect)
                .fetch_all(&mut *c)
                .await
                .map_err(db_err)?
            {
                let entry = audit_from_row(&row);
                if entry.action == action::RENAME_MODEL
                    && entry.model_name == n
                    && let Some(prev) = opt_str(&row, "previous_name").filter(|p| *p != n)
                {
                    let deleted: Option<i64> = sqlx::query(
                        "SELECT MAX(id) FROM registry_audit WHERE model_name = $1 AND action = $2 AND id < $3",
                    )
                    .bind(&prev)
                    .bind(action::DELETE_MODEL)
                    .bind(entry.id)
                    .fetch_one(&mut *c)
                    .await
                    .map_err(db_err)?
                    .try_get::<Option<i64>, _>(0)
                    .map_err(db_err)?;
                    todo.push((prev, Some(entry.id), deleted));
                }
                entries.insert(entry.id, entry);
            }
        }
        Ok(entries.into_values().collect())
    }

    async fn record_audit(
        &self,
        name: &str,
        version: Option<i64>,
        action: &str,
        details: &str,
        audit: &AuditRecord,
    ) -> Result<()> {
        if action.trim().is_empty() {
            return Err(Error::invalid("An audit entry needs an action"));
        }
        if action::ALL.contains(&action) {
            return Err(Error::invalid(format!(
                "Audit action '{action}' is recorded by the registry itself and cannot be added"
            )));
        }
        let d = self.dialect;
        let mut tx = self.begin_write().await.map_err(db_err)?;
        lock_model(&mut tx, d, name).await?;
        if let Some(version) = version {
            fetch_version(&mut tx, d, name, version).await?;
        }
        write_audit(
            &mut tx,
            audit,
            action,
            name,
            version,
            details.to_string(),
            None,
        )
        .await?;
        tx.commit().await.map_err(db_err)?;
        Ok(())
    }
}
