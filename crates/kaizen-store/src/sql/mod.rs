//! The SQL implementation of the metadata store, for SQLite and PostgreSQL through sqlx's `Any`
//! driver. Queries are written once with `$n` placeholders (both drivers accept them); the few
//! dialect differences are methods of [`Dialect`].

mod events;
mod logged_models;
mod pipelines;
mod registry;
mod tracking;

use kaizen_core::search::{Op, Value};
use kaizen_core::{Error, Result};
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Executor, Row};
use std::time::Duration;

use crate::MetadataStore;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    /// `x LIKE pattern`, case-sensitive on both backends (SQLite's LIKE ignores ASCII case, so it
    /// uses GLOB with the pattern translated).
    pub(crate) fn like(self, column: &str, placeholder: &str) -> String {
        match self {
            Dialect::Postgres => format!("{column} LIKE {placeholder}"),
            Dialect::Sqlite => format!("{column} GLOB {placeholder}"),
        }
    }

    /// The bound value for [`Dialect::like`].
    pub(crate) fn like_pattern(self, pattern: &str) -> String {
        match self {
            Dialect::Postgres => pattern.to_string(),
            Dialect::Sqlite => like_to_glob(pattern),
        }
    }

    /// An aggregate turning the rows of a query into one JSON array of arrays, in `order`.
    /// Empty input gives NULL on PostgreSQL and `[]` on SQLite.
    pub(crate) fn json_rows(self, columns: &[&str], order: &str) -> String {
        let cols = columns.join(", ");
        match self {
            Dialect::Sqlite => format!("json_group_array(json_array({cols}) ORDER BY {order})"),
            Dialect::Postgres => {
                format!("json_agg(json_build_array({cols}) ORDER BY {order})::text")
            }
        }
    }

    /// [`Dialect::json_rows`] without an order, for callers that sort the rows themselves.
    pub(crate) fn json_rows_unordered(self, columns: &[&str]) -> String {
        let cols = columns.join(", ");
        match self {
            Dialect::Sqlite => format!("json_group_array(json_array({cols}))"),
            Dialect::Postgres => format!("json_agg(json_build_array({cols}))::text"),
        }
    }

    /// A double as decimal text that parses back to the same bits (`Inf`/`Infinity` for
    /// infinities), for [`Dialect::json_rows`], whose JSON numbers would lose precision.
    pub(crate) fn exact_float_text(self, column: &str) -> String {
        match self {
            Dialect::Sqlite => format!("printf('%!.17g', {column})"),
            Dialect::Postgres => format!("{column}::text"),
        }
    }

    /// `x ILIKE pattern`: case-insensitive.
    pub(crate) fn ilike(self, column: &str, placeholder: &str) -> String {
        match self {
            Dialect::Postgres => format!("{column} ILIKE {placeholder}"),
            Dialect::Sqlite => format!("LOWER({column}) LIKE LOWER({placeholder})"),
        }
    }
}

/// Translates a SQL LIKE pattern (`%`, `_`) into a GLOB pattern, escaping GLOB's own specials.
fn like_to_glob(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len());
    for c in pattern.chars() {
        match c {
            '%' => out.push('*'),
            '_' => out.push('?'),
            '*' => out.push_str("[*]"),
            '?' => out.push_str("[?]"),
            '[' => out.push_str("[[]"),
            other => out.push(other),
        }
    }
    out
}

/// A bound argument of a dynamically built query.
#[derive(Debug, Clone)]
pub(crate) enum Arg {
    I64(i64),
    F64(f64),
    Str(String),
}

/// A query under construction: SQL text plus its arguments, numbered `$1..$n` as they are pushed.
#[derive(Debug, Default)]
pub(crate) struct Sql {
    pub text: String,
    pub args: Vec<Arg>,
    /// The SQLite form of `text`, made on first use.
    positional: std::sync::OnceLock<(String, Vec<usize>)>,
}

impl Sql {
    pub fn new(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            args: Vec::new(),
            positional: std::sync::OnceLock::new(),
        }
    }

    /// Adds an argument and returns its placeholder.
    pub fn arg(&mut self, arg: Arg) -> String {
        self.args.push(arg);
        format!("${}", self.args.len())
    }

    pub fn push(&mut self, text: &str) -> &mut Self {
        self.text.push_str(text);
        self
    }

    /// The query with its arguments bound. On SQLite the `$n` placeholders become anonymous `?`
    /// with the arguments reordered to match: sqlx looks up every parameter's name, and SQLite
    /// finds a name by a linear scan, which made a 900-argument insert quadratic.
    pub fn query(
        &self,
        d: Dialect,
    ) -> sqlx::query::Query<'_, sqlx::Any, sqlx::any::AnyArguments<'_>> {
        let (text, order) = match d {
            Dialect::Postgres => (None, None),
            Dialect::Sqlite => {
                let (t, o) = self.positional.get_or_init(|| to_positional(&self.text));
                (Some(t.as_str()), Some(o.as_slice()))
            }
        };
        let mut q = sqlx::query(text.unwrap_or(&self.text));
        match order {
            None => {
                for a in &self.args {
                    q = bind_arg(q, a);
                }
            }
            Some(order) => {
                for &i in order {
                    q = bind_arg(q, &self.args[i]);
                }
            }
        }
        q
    }
}

fn bind_arg<'q>(
    q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    a: &'q Arg,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    match a {
        Arg::I64(v) => q.bind(*v),
        Arg::F64(v) => q.bind(*v),
        Arg::Str(v) => q.bind(v.as_str()),
    }
}

/// `column <op> value` for a string column; `None` when the comparison does not fit a string.
pub(crate) fn string_cond(
    d: Dialect,
    sql: &mut Sql,
    column: &str,
    op: Op,
    value: &Value,
) -> Option<String> {
    Some(match (op, value) {
        (Op::Eq | Op::Ne, Value::Str(s)) => {
            format!("{column} {} {}", op.as_sql(), sql.arg(Arg::Str(s.clone())))
        }
        (Op::Like, Value::Str(s)) => {
            let p = sql.arg(Arg::Str(d.like_pattern(s)));
            d.like(column, &p)
        }
        (Op::ILike, Value::Str(s)) => {
            let p = sql.arg(Arg::Str(s.clone()));
            d.ilike(column, &p)
        }
        (Op::In | Op::NotIn, Value::List(items)) => {
            let list = str_list(sql, items);
            format!("{column} {} ({list})", op.as_sql())
        }
        _ => return None,
    })
}

/// Placeholders for a list of strings, for `IN (...)`.
pub(crate) fn str_list(sql: &mut Sql, items: &[String]) -> String {
    let list: Vec<String> = items.iter().map(|s| sql.arg(Arg::Str(s.clone()))).collect();
    list.join(", ")
}

/// `(?, ?), (?, ?)` (SQLite) or `($1, $2), ($3, $4)` (PostgreSQL): the VALUES list of a
/// multi-row INSERT of `rows` rows of `cols` columns, arguments bound row by row.
pub(crate) fn values_list(d: Dialect, cols: usize, rows: usize) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(rows * cols * 5);
    let mut n = 0;
    for r in 0..rows {
        out.push_str(if r == 0 { "(" } else { ", (" });
        for c in 0..cols {
            if c > 0 {
                out.push_str(", ");
            }
            n += 1;
            match d {
                Dialect::Sqlite => out.push('?'),
                Dialect::Postgres => {
                    let _ = write!(out, "${n}");
                }
            }
        }
        out.push(')');
    }
    out
}

/// Rewrites `$n` placeholders (outside quoted literals) into `?` and returns, for each `?` in
/// order, the index of the argument it takes.
fn to_positional(text: &str) -> (String, Vec<usize>) {
    let mut out = String::with_capacity(text.len());
    let mut order = Vec::new();
    let mut chars = text.char_indices().peekable();
    let mut quote: Option<char> = None;
    while let Some((_, c)) = chars.next() {
        match quote {
            Some(q) => {
                out.push(c);
                if c == q {
                    quote = None;
                }
            }
            None if c == '\'' || c == '"' => {
                quote = Some(c);
                out.push(c);
            }
            None if c == '$' && chars.peek().is_some_and(|(_, d)| d.is_ascii_digit()) => {
                let mut n = 0usize;
                while let Some(&(_, d)) = chars.peek() {
                    match d.to_digit(10) {
                        Some(v) => {
                            n = n * 10 + v as usize;
                            chars.next();
                        }
                        None => break,
                    }
                }
                out.push('?');
                order.push(n - 1);
            }
            None => out.push(c),
        }
    }
    (out, order)
}

pub struct SqlStore {
    pub(crate) dialect: Dialect,
    /// Readers. On SQLite several connections read in parallel under WAL.
    pub(crate) read: AnyPool,
    /// Writers. On SQLite one connection, so writers queue in-process instead of spinning on
    /// SQLITE_BUSY; on PostgreSQL the same pool as `read`.
    pub(crate) write: AnyPool,
}

impl std::fmt::Debug for SqlStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlStore")
            .field("dialect", &self.dialect)
            .finish()
    }
}

impl SqlStore {
    /// Begins a transaction on the writer. On SQLite it takes the write lock at once (`BEGIN
    /// IMMEDIATE`): a deferred transaction that reads first cannot wait for another writer
    /// when it upgrades (SQLITE_BUSY at once, `busy_timeout` or not), and several stores on one
    /// file (the server, a pipeline, a retraining in one process) do write at the same time.
    pub(crate) async fn begin_write(
        &self,
    ) -> std::result::Result<sqlx::Transaction<'static, sqlx::Any>, sqlx::Error> {
        match self.dialect {
            Dialect::Sqlite => self.write.begin_with("BEGIN IMMEDIATE").await,
            Dialect::Postgres => self.write.begin().await,
        }
    }
}

/// Maps a database failure to a domain error, keeping the cause for the logs.
pub(crate) fn db_err(e: sqlx::Error) -> Error {
    Error::internal("metadata store error", e)
}

pub(crate) fn is_unique_violation(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(d) => {
            d.is_unique_violation()
                || d.code()
                    .is_some_and(|c| c == "2067" || c == "1555" || c == "23505")
        }
        _ => false,
    }
}

const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "initial",
        include_str!("../../migrations/0001_initial.sql"),
    ),
    (
        2,
        "audit_previous_name",
        include_str!("../../migrations/0002_audit_previous_name.sql"),
    ),
    (
        3,
        "pipelines",
        include_str!("../../migrations/0003_pipelines.sql"),
    ),
    (
        4,
        "datasets",
        include_str!("../../migrations/0004_datasets.sql"),
    ),
    (
        5,
        "events",
        include_str!("../../migrations/0005_events.sql"),
    ),
];

impl SqlStore {
    /// Opens `sqlite:///abs/path.db`, `sqlite://rel/path.db`, `sqlite::memory:` or
    /// `postgresql://...`, then applies pending migrations.
    pub async fn open(uri: &str) -> Result<Self> {
        sqlx::any::install_default_drivers();
        let store = if uri.starts_with("sqlite:") {
            let path = sqlite_path(uri)?;
            if let Some(parent) = std::path::Path::new(&path).parent()
                && !parent.as_os_str().is_empty()
            {
                std::fs::create_dir_all(parent).map_err(|e| {
                    Error::internal(format!("cannot create directory {}", parent.display()), e)
                })?;
            }
            let url = format!("sqlite://{path}?mode=rwc");
            let pragmas = sqlite_pragmas;
            let write = AnyPoolOptions::new()
                .max_connections(1)
                .min_connections(1)
                .acquire_timeout(Duration::from_secs(60))
                .after_connect(pragmas)
                .connect(&url)
                .await
                .map_err(|e| Error::internal(format!("cannot open SQLite database {path}"), e))?;
            let store_w = Self {
                dialect: Dialect::Sqlite,
                read: write.clone(),
                write: write.clone(),
            };
            // Migrate before readers connect so they see the schema.
            store_w.migrate().await?;
            let read = AnyPoolOptions::new()
                .max_connections(4)
                .min_connections(0)
                .idle_timeout(Duration::from_secs(60))
                .after_connect(pragmas)
                .connect(&url)
                .await
                .map_err(|e| Error::internal(format!("cannot open SQLite database {path}"), e))?;
            return Ok(Self {
                dialect: Dialect::Sqlite,
                read,
                write,
            });
        } else if uri.starts_with("postgres://") || uri.starts_with("postgresql://") {
            let pool = AnyPoolOptions::new()
                .max_connections(16)
                .acquire_timeout(Duration::from_secs(30))
                .connect(uri)
                .await
                .map_err(|e| {
                    Error::internal(
                        format!("cannot connect to PostgreSQL at {}", redact(uri)),
                        e,
                    )
                })?;
            Self {
                dialect: Dialect::Postgres,
                read: pool.clone(),
                write: pool,
            }
        } else {
            return Err(Error::invalid(format!(
                "Unsupported backend store URI '{uri}': use sqlite:///path/to/file.db or postgresql://user:password@host:port/database"
            )));
        };
        store.migrate().await?;
        Ok(store)
    }

    /// Applies the migrations not yet recorded in `kaizen_migrations`, each in its own transaction.
    async fn migrate(&self) -> Result<()> {
        self.write
            .execute(
                "CREATE TABLE IF NOT EXISTS kaizen_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)",
            )
            .await
            .map_err(db_err)?;
        let applied: Vec<i64> = sqlx::query("SELECT version FROM kaizen_migrations")
            .fetch_all(&self.write)
            .await
            .map_err(db_err)?
            .iter()
            .map(|r| r.get::<i64, _>(0))
            .collect();
        for (version, name, text) in MIGRATIONS {
            if applied.contains(version) {
                continue;
            }
            let (auto_id, double, without_rowid) = match self.dialect {
                Dialect::Sqlite => (
                    "INTEGER PRIMARY KEY AUTOINCREMENT",
                    "REAL",
                    " WITHOUT ROWID",
                ),
                Dialect::Postgres => ("BIGSERIAL PRIMARY KEY", "DOUBLE PRECISION", ""),
            };
            let now = kaizen_core::now_millis().to_string();
            let sql = text
                .replace("{auto_id}", auto_id)
                .replace("{double}", double)
                .replace("{without_rowid}", without_rowid)
                .replace("{now}", &now);
            let mut tx = self.begin_write().await.map_err(db_err)?;
            for statement in sql
                .split(';')
                .map(str::trim)
                .filter(|s| !strip_comments(s).is_empty())
            {
                tx.execute(statement).await.map_err(|e| {
                    Error::internal(format!("migration {version} ({name}) failed"), e)
                })?;
            }
            sqlx::query(
                "INSERT INTO kaizen_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
            )
            .bind(*version)
            .bind(*name)
            .bind(kaizen_core::now_millis())
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
            tx.commit().await.map_err(db_err)?;
            tracing::info!(version, name, "applied migration");
        }
        Ok(())
    }
}

impl MetadataStore for SqlStore {
    fn backend(&self) -> &'static str {
        match self.dialect {
            Dialect::Sqlite => "sqlite",
            Dialect::Postgres => "postgresql",
        }
    }
}

type BoxFuture<'c, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'c>>;

/// Session settings of every SQLite connection. WAL lets readers run beside the writer; NORMAL
/// sync is durable across a crash of the process (only a power loss can drop the last commits).
fn sqlite_pragmas(
    conn: &mut sqlx::AnyConnection,
    _meta: sqlx::pool::PoolConnectionMetadata,
) -> BoxFuture<'_, std::result::Result<(), sqlx::Error>> {
    Box::pin(async move {
        conn.execute(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; \
             PRAGMA busy_timeout = 10000; PRAGMA cache_size = -16000; \
             PRAGMA wal_autocheckpoint = 4000;",
        )
        .await?;
        Ok(())
    })
}

fn strip_comments(s: &str) -> String {
    s.lines()
        .filter(|l| !l.trim_start().starts_with("--"))
        .collect::<Vec<_>>()
        .join("\n")
        .trim()
        .to_string()
}

/// `sqlite:///abs/x.db` → `/abs/x.db`; `sqlite://rel.db` → `rel.db`; `sqlite::memory:` stays.
fn sqlite_path(uri: &str) -> Result<String> {
    let rest = uri.strip_prefix("sqlite:").unwrap_or(uri);
    let path = if let Some(p) = rest.strip_prefix("//") {
        p
    } else {
        rest
    };
    let path = path.split('?').next().unwrap_or(path);
    if path.is_empty() {
        return Err(Error::invalid(format!("SQLite URI '{uri}' names no file")));
    }
    Ok(path.to_string())
}

/// Hides the password of a database URI for messages.
fn redact(uri: &str) -> String {
    match url::Url::parse(uri) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => uri.to_string(),
    }
}

/// Reads an optional string column.
pub(crate) fn opt_str(row: &AnyRow, col: &str) -> Option<String> {
    row.try_get::<Option<String>, _>(col).ok().flatten()
}

/// Reads a metric value, restoring NaN from the `is_nan` flag.
pub(crate) fn metric_value(row: &AnyRow) -> f64 {
    let is_nan: i64 = row
        .try_get::<i64, _>("is_nan")
        .unwrap_or_else(|_| i64::from(row.get::<i16, _>("is_nan")));
    if is_nan != 0 {
        f64::NAN
    } else {
        row.get::<f64, _>("value")
    }
}

/// Splits a value into the stored (is_nan, value) pair.
pub(crate) fn stored_value(v: f64) -> (i64, f64) {
    if v.is_nan() { (1, 0.0) } else { (0, v) }
}

/// Parses an experiment id; a non-numeric id can match nothing.
pub(crate) fn experiment_key(id: &str) -> Result<i64> {
    id.parse::<i64>()
        .map_err(|_| Error::not_found(format!("No Experiment with id={id} exists")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positional_placeholders() {
        let (text, order) =
            to_positional("SELECT '$1', x FROM t WHERE a = $2 AND b IN ($1, $10) AND c = \"$3\"");
        assert_eq!(
            text,
            "SELECT '$1', x FROM t WHERE a = ? AND b IN (?, ?) AND c = \"$3\""
        );
        assert_eq!(order, vec![1, 0, 9]);
    }

    #[test]
    fn values_lists() {
        assert_eq!(values_list(Dialect::Sqlite, 2, 2), "(?, ?), (?, ?)");
        assert_eq!(values_list(Dialect::Postgres, 2, 2), "($1, $2), ($3, $4)");
    }

    #[test]
    fn globs() {
        assert_eq!(like_to_glob("a%b_c"), "a*b?c");
        assert_eq!(like_to_glob("x*?["), "x[*][?][[]");
    }

    #[test]
    fn sqlite_paths() {
        assert_eq!(sqlite_path("sqlite:///tmp/a.db").unwrap(), "/tmp/a.db");
        assert_eq!(sqlite_path("sqlite://a.db").unwrap(), "a.db");
        assert!(sqlite_path("sqlite://").is_err());
    }
}
