//! The built-in data steps on `kaizen-data` (Arrow and DataFusion): `ingest`, `sql`, `validate`,
//! `split` and `profile`. Their options come from the step's `with` table, checked when the
//! pipeline is loaded; their outputs are fixed by the kind (see [`builtin_outputs`]).
//!
//! Tables move between steps as Parquet files. An input is a table when its file ends in
//! `.parquet`, `.csv`, `.tsv`, `.jsonl`, `.ndjson` or `.json`; its table name (for `sql`) is the
//! file stem.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use kaizen_core::{Error, Result};
use kaizen_data::{Format, ReadOptions, Source, SplitSpec, Table, ValidationSpec};
use serde::Deserialize;

use crate::cache::{fingerprint_path, sha256_hex};
use crate::spec::StepKind;
use crate::step::{StepContext, StepFailure, StepRunner};

/// The report file a `validate` step writes beside its table.
pub const VALIDATION_REPORT: &str = "validation.json";

/// `with` of an `ingest` step: exactly one source.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngestOptions {
    /// A file in the project directory (or an absolute path), e.g. from a watch trigger.
    #[serde(default)]
    pub path: Option<String>,
    /// An HTTP(S) URL; its ETag / Last-Modified (else its content hash) is the cache fingerprint.
    #[serde(default)]
    pub url: Option<String>,
    /// A PostgreSQL connection URI; `query` is run there and its result hash is the fingerprint.
    /// `$NAME` at the start reads the URI from the environment variable NAME.
    #[serde(default)]
    pub postgres: Option<String>,
    #[serde(default)]
    pub query: Option<String>,
    /// The format when the path or URL does not end in a known extension.
    #[serde(default)]
    pub format: Option<Format>,
    /// Column name → type name, overriding inference (`int64`, `float64`, `utf8`, `date32`, ...).
    #[serde(default)]
    pub types: BTreeMap<String, String>,
    #[serde(default)]
    pub delimiter: Option<char>,
    #[serde(default)]
    pub has_header: Option<bool>,
}

/// `with` of a `sql` step.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqlOptions {
    pub query: String,
}

/// `with` of a `validate` step: a spec file, or the spec inline.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct ValidateFile {
    spec: String,
}

/// `with` of a `profile` step.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileOptions {}

fn options<T: for<'de> Deserialize<'de>>(
    step: &str,
    kind: StepKind,
    with: &BTreeMap<String, toml::Value>,
) -> Result<T> {
    let table: toml::Table = with.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    toml::Value::Table(table).try_into().map_err(|e| {
        Error::invalid(format!(
            "step '{step}': field 'with' of a {kind} step: {}",
            e.message()
        ))
    })
}

impl IngestOptions {
    fn check(&self, step: &str) -> Result<()> {
        let sources = [
            self.path.is_some(),
            self.url.is_some(),
            self.postgres.is_some(),
        ];
        if sources.iter().filter(|s| **s).count() != 1 {
            return Err(Error::invalid(format!(
                "step '{step}': an ingest step takes exactly one of with.path, with.url and \
                 with.postgres"
            )));
        }
        if self.postgres.is_some() != self.query.is_some() {
            return Err(Error::invalid(format!(
                "step '{step}': with.query goes with with.postgres (and only with it)"
            )));
        }
        if let Some(u) = &self.url
            && !(u.starts_with("http://") || u.starts_with("https://"))
        {
            return Err(Error::invalid(format!(
                "step '{step}': with.url '{u}' is not an http(s) URL"
            )));
        }
        for (column, t) in &self.types {
            kaizen_data::parse_type(column, t)
                .map_err(|e| Error::invalid(format!("step '{step}': with.types: {e}")))?;
        }
        Ok(())
    }

    fn read_options(&self) -> ReadOptions {
        let mut o = ReadOptions {
            types: self.types.clone(),
            ..ReadOptions::default()
        };
        if let Some(d) = self.delimiter {
            o.delimiter = d;
        }
        if let Some(h) = self.has_header {
            o.has_header = h;
        }
        o
    }
}

/// Checks a built-in step's options and answers the outputs it writes. `declared` are the
/// `outputs` of the pipeline file: for `ingest`, `sql` and `validate` one `.parquet` name may
/// rename the table (default `<step>.parquet`); `split` writes one file per part and `profile`
/// its report, so they take none.
pub fn builtin_outputs(
    step: &str,
    kind: StepKind,
    with: &BTreeMap<String, toml::Value>,
    declared: &[String],
) -> Result<Vec<String>> {
    let table_output = || -> Result<String> {
        match declared {
            [] => Ok(format!("{step}.parquet")),
            [one] if one.ends_with(".parquet") => Ok(one.clone()),
            _ => Err(Error::invalid(format!(
                "step '{step}': field 'outputs': a {kind} step writes one table; name it with \
                 one `.parquet` file name or leave 'outputs' out"
            ))),
        }
    };
    let none_declared = || -> Result<()> {
        if declared.is_empty() {
            Ok(())
        } else {
            Err(Error::invalid(format!(
                "step '{step}': field 'outputs': a {kind} step names its own outputs; leave \
                 'outputs' out"
            )))
        }
    };
    match kind {
        StepKind::Ingest => {
            options::<IngestOptions>(step, kind, with)?.check(step)?;
            Ok(vec![table_output()?])
        }
        StepKind::Sql => {
            let o: SqlOptions = options(step, kind, with)?;
            if o.query.trim().is_empty() {
                return Err(Error::invalid(format!(
                    "step '{step}': with.query must not be empty"
                )));
            }
            Ok(vec![table_output()?])
        }
        StepKind::Validate => {
            validation_spec(step, with, None)?;
            Ok(vec![table_output()?, VALIDATION_REPORT.to_string()])
        }
        StepKind::Split => {
            none_declared()?;
            let spec: SplitSpec = options(step, kind, with)?;
            Ok(split_parts(&spec)
                .into_iter()
                .map(|p| format!("{p}.parquet"))
                .collect())
        }
        StepKind::Profile => {
            none_declared()?;
            let _: ProfileOptions = options(step, kind, with)?;
            Ok(vec!["profile.html".into(), "profile.json".into()])
        }
        StepKind::Train => {
            none_declared()?;
            Ok(vec!["summary.json".into()])
        }
        StepKind::Forecast => {
            none_declared()?;
            Ok(vec!["forecast.csv".into(), "summary.json".into()])
        }
        StepKind::Command | StepKind::Choice => Ok(declared.to_vec()),
    }
}

fn split_parts(spec: &SplitSpec) -> Vec<String> {
    match spec {
        SplitSpec::Random { fractions, .. }
        | SplitSpec::Stratified { fractions, .. }
        | SplitSpec::Time { fractions, .. } => fractions.0.iter().map(|(n, _)| n.clone()).collect(),
        SplitSpec::TimeCutoff { before, after, .. } => vec![before.clone(), after.clone()],
    }
}

/// The spec of a `validate` step: `with = { spec = "file.toml" }` (read from `project_dir` when
/// given) or the spec's fields inline.
fn validation_spec(
    step: &str,
    with: &BTreeMap<String, toml::Value>,
    project_dir: Option<&Path>,
) -> Result<ValidationSpec> {
    let bad = |e: kaizen_data::DataError| {
        Error::invalid(format!("step '{step}': validation spec: {}", chain(&e)))
    };
    if with.contains_key("spec") {
        let f: ValidateFile = options(step, StepKind::Validate, with)?;
        let Some(dir) = project_dir else {
            return Ok(ValidationSpec::default());
        };
        let path = dir.join(&f.spec);
        let text = std::fs::read_to_string(&path).map_err(|e| {
            Error::invalid(format!(
                "step '{step}': cannot read validation spec {}: {e}",
                path.display()
            ))
        })?;
        return if f.spec.ends_with(".json") {
            ValidationSpec::from_json_str(&text).map_err(bad)
        } else {
            ValidationSpec::from_toml_str(&text).map_err(bad)
        };
    }
    let spec: ValidationSpec = options(step, StepKind::Validate, with)?;
    spec.check().map_err(bad)?;
    Ok(spec)
}

/// The spec file a `validate` step names, so that it joins the step's code (and cache key).
pub fn validation_spec_file(with: &BTreeMap<String, toml::Value>) -> Option<String> {
    with.get("spec").and_then(|v| v.as_str()).map(str::to_owned)
}

/// An error with its causes, one line.
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(c) = source {
        let text = c.to_string();
        if !s.contains(&text) {
            s.push_str(": ");
            s.push_str(&text);
        }
        source = c.source();
    }
    s
}

fn data_failure(step: &str, e: kaizen_data::DataError) -> StepFailure {
    StepFailure {
        message: format!("step '{step}': {}", chain(&e)),
        stderr_tail: Vec::new(),
    }
}

fn failure(message: String) -> StepFailure {
    StepFailure {
        message,
        stderr_tail: Vec::new(),
    }
}

/// The tables among a step's inputs: (table name, file, format). A step-directory input
/// contributes each of its tabular files.
fn input_tables(
    ctx: &StepContext,
) -> std::result::Result<Vec<(String, PathBuf, Format)>, StepFailure> {
    let mut out = Vec::new();
    for (input, path) in &ctx.inputs {
        if path.is_dir() {
            let mut files: Vec<PathBuf> = std::fs::read_dir(path)
                .map_err(|e| failure(format!("cannot read {}: {e}", path.display())))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file() && Format::from_path(p).is_some())
                .collect();
            files.sort();
            for f in files {
                out.push((
                    stem(&f),
                    f.clone(),
                    Format::from_path(&f).unwrap_or(Format::Parquet),
                ));
            }
        } else {
            let format = Format::from_path(path).ok_or_else(|| {
                failure(format!(
                    "step '{}': input '{input}' is not a table (expected a .parquet, .csv or \
                     .jsonl file)",
                    ctx.step.name
                ))
            })?;
            out.push((stem(path), path.clone(), format));
        }
    }
    Ok(out)
}

fn stem(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The one table a `validate`, `split` or `profile` step works on, read into memory.
fn single_table(ctx: &StepContext) -> std::result::Result<Table, StepFailure> {
    let name = &ctx.step.name;
    let tables = input_tables(ctx)?;
    let [(_, path, format)] = tables.as_slice() else {
        return Err(failure(format!(
            "step '{name}': a {} step takes exactly one table input, got {}",
            ctx.step.kind,
            tables.len()
        )));
    };
    kaizen_data::read(
        &Source::path(path).with_format(*format),
        &ReadOptions::default(),
    )
    .map_err(|e| data_failure(name, e))
}

fn write_table(
    ctx: &StepContext,
    table: &Table,
    file: &str,
) -> std::result::Result<(), StepFailure> {
    kaizen_data::write_parquet(table, ctx.output_dir.join(file))
        .map_err(|e| data_failure(&ctx.step.name, e))
}

fn write_text(ctx: &StepContext, file: &str, text: &str) -> std::result::Result<(), StepFailure> {
    let path = ctx.output_dir.join(file);
    std::fs::write(&path, text)
        .map_err(|e| failure(format!("cannot write {}: {e}", path.display())))
}

/// Runs blocking data work off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> std::result::Result<T, StepFailure> + Send + 'static,
) -> std::result::Result<T, StepFailure> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| failure(format!("a data step task failed: {e}")))?
}

/// Registers the runners of the built-in data kinds.
pub fn register(runners: &mut crate::Runners) {
    use std::sync::Arc;
    runners.register(StepKind::Ingest, Arc::new(IngestRunner));
    runners.register(StepKind::Sql, Arc::new(SqlRunner));
    runners.register(StepKind::Validate, Arc::new(ValidateRunner));
    runners.register(StepKind::Split, Arc::new(SplitRunner));
    runners.register(StepKind::Profile, Arc::new(ProfileRunner));
}

/// `ingest`: a file, a URL or a PostgreSQL query into one Parquet table.
pub struct IngestRunner;

impl IngestRunner {
    fn options(ctx: &StepContext) -> Result<IngestOptions> {
        options(&ctx.step.name, StepKind::Ingest, &ctx.step.with)
    }
}

/// Where an ingest path points: relative to the project directory unless absolute.
fn ingest_path(project_dir: &Path, path: &str) -> PathBuf {
    let p = Path::new(path);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        project_dir.join(p)
    }
}

#[async_trait]
impl StepRunner for IngestRunner {
    async fn fingerprint(&self, ctx: &StepContext) -> Result<BTreeMap<String, String>> {
        let o = Self::options(ctx)?;
        let mut out = BTreeMap::new();
        if let Some(p) = &o.path {
            let path = ingest_path(&ctx.project_dir, p);
            let fp = tokio::task::spawn_blocking(move || fingerprint_path(&path))
                .await
                .map_err(|e| Error::internal("hashing task failed", e))??;
            out.insert(format!("file:{p}"), fp);
        } else if let Some(u) = &o.url {
            out.insert(
                format!("url:{u}"),
                crate::sources::http_fingerprint(u).await?,
            );
        } else if let (Some(uri), Some(q)) = (&o.postgres, &o.query) {
            let uri = crate::sources::postgres_uri(uri)?;
            let rows = crate::sources::postgres_rows(&uri, q).await?;
            out.insert(
                format!("postgres:{}", crate::sources::redact(&uri)),
                sha256_hex(rows.as_bytes()),
            );
        }
        Ok(out)
    }

    async fn run(&self, ctx: &StepContext) -> std::result::Result<(), StepFailure> {
        let name = ctx.step.name.clone();
        let o = Self::options(ctx).map_err(|e| failure(e.message))?;
        let output = ctx.step.outputs[0].clone();
        let scratch = ctx.output_dir.join(format!(".{output}.source"));
        let (path, format) = if let Some(p) = &o.path {
            let path = ingest_path(&ctx.project_dir, p);
            if !path.is_file() {
                return Err(failure(format!(
                    "step '{name}': with.path: no file {}",
                    path.display()
                )));
            }
            (path, o.format)
        } else if let Some(u) = &o.url {
            crate::sources::download(u, &scratch)
                .await
                .map_err(|e| failure(format!("step '{name}': {}", e.message)))?;
            let format = o.format.or_else(|| {
                let path = u.split(['?', '#']).next().unwrap_or(u);
                Format::from_path(Path::new(path))
            });
            (scratch.clone(), format)
        } else {
            let (Some(uri), Some(q)) = (&o.postgres, &o.query) else {
                return Err(failure(format!("step '{name}': no source")));
            };
            let uri = crate::sources::postgres_uri(uri).map_err(|e| failure(e.message))?;
            let rows = crate::sources::postgres_rows(&uri, q)
                .await
                .map_err(|e| failure(format!("step '{name}': {}", e.message)))?;
            if rows.is_empty() {
                return Err(failure(format!(
                    "step '{name}': the query returned no rows, so there is no schema to \
                     infer"
                )));
            }
            std::fs::write(&scratch, rows)
                .map_err(|e| failure(format!("cannot write {}: {e}", scratch.display())))?;
            (scratch.clone(), Some(Format::JsonLines))
        };
        let read = o.read_options();
        let out_path = ctx.output_dir.join(&output);
        blocking(move || {
            let mut source = Source::path(&path);
            if let Some(f) = format {
                source = source.with_format(f);
            }
            let table = kaizen_data::read(&source, &read).map_err(|e| data_failure(&name, e))?;
            kaizen_data::write_parquet(&table, &out_path).map_err(|e| data_failure(&name, e))?;
            let _ = std::fs::remove_file(&scratch);
            Ok(())
        })
        .await
    }
}

/// `sql`: DataFusion SQL over the input tables, streamed into one Parquet table.
pub struct SqlRunner;

#[async_trait]
impl StepRunner for SqlRunner {
    async fn run(&self, ctx: &StepContext) -> std::result::Result<(), StepFailure> {
        let name = &ctx.step.name;
        let o: SqlOptions =
            options(name, StepKind::Sql, &ctx.step.with).map_err(|e| failure(e.message))?;
        let tables: Vec<kaizen_data::FileTable> = input_tables(ctx)?
            .into_iter()
            .map(|(name, path, format)| kaizen_data::FileTable { name, path, format })
            .collect();
        let out = ctx.output_dir.join(&ctx.step.outputs[0]);
        let summary = kaizen_data::sql_to_parquet(&tables, &o.query, &out)
            .await
            .map_err(|e| data_failure(name, e))?;
        tracing::info!(step = %name, rows = summary.rows, "sql step wrote its table");
        Ok(())
    }
}

/// `validate`: checks the input table; a failure stops the run with the report.
pub struct ValidateRunner;

#[async_trait]
impl StepRunner for ValidateRunner {
    async fn run(&self, ctx: &StepContext) -> std::result::Result<(), StepFailure> {
        let name = ctx.step.name.clone();
        let spec = validation_spec(&name, &ctx.step.with, Some(&ctx.project_dir))
            .map_err(|e| failure(e.message))?;
        let ctx2 = ctx.clone();
        blocking(move || {
            let ctx = &ctx2;
            let table = single_table(ctx)?;
            let report = kaizen_data::validate(&table, &spec);
            let json = serde_json::to_string_pretty(&report)
                .map_err(|e| failure(format!("cannot encode the report: {e}")))?;
            // The report goes to the step's log too, so `pipeline logs` shows it after a failure.
            let _ = std::fs::write(&ctx.stderr_path, format!("{report}\n"));
            if !report.is_ok() {
                return Err(failure(format!(
                    "step '{name}': validation failed: {report}"
                )));
            }
            write_text(ctx, VALIDATION_REPORT, &json)?;
            write_table(ctx, &table, &ctx.step.outputs[0])
        })
        .await
    }
}

/// `split`: random (seeded), stratified or by time, one Parquet table per part.
pub struct SplitRunner;

#[async_trait]
impl StepRunner for SplitRunner {
    async fn run(&self, ctx: &StepContext) -> std::result::Result<(), StepFailure> {
        let name = ctx.step.name.clone();
        let spec: SplitSpec =
            options(&name, StepKind::Split, &ctx.step.with).map_err(|e| failure(e.message))?;
        let ctx2 = ctx.clone();
        blocking(move || {
            let ctx = &ctx2;
            let table = single_table(ctx)?;
            let parts = kaizen_data::split(&table, &spec).map_err(|e| data_failure(&name, e))?;
            for (part, t) in parts {
                write_table(ctx, &t, &format!("{part}.parquet"))?;
            }
            Ok(())
        })
        .await
    }
}

/// `profile`: per-column statistics as JSON and a self-contained HTML page.
pub struct ProfileRunner;

#[async_trait]
impl StepRunner for ProfileRunner {
    async fn run(&self, ctx: &StepContext) -> std::result::Result<(), StepFailure> {
        let name = ctx.step.name.clone();
        let ctx2 = ctx.clone();
        blocking(move || {
            let ctx = &ctx2;
            let table = single_table(ctx)?;
            let profile = kaizen_data::profile(&table).map_err(|e| data_failure(&name, e))?;
            let json = serde_json::to_string_pretty(&profile)
                .map_err(|e| failure(format!("cannot encode the profile: {e}")))?;
            write_text(ctx, "profile.json", &json)?;
            write_text(ctx, "profile.html", &profile.to_html())
        })
        .await
    }
}

/// Cuts the table at `path` into one Parquet file per distinct value of `column` (nulls are the
/// item `null`), in order of first appearance. Answers (value, file) pairs.
pub fn partition(
    step: &str,
    path: &Path,
    column: &str,
    dir: &Path,
) -> Result<Vec<(String, PathBuf)>> {
    use kaizen_data::arrow::util::display::{ArrayFormatter, FormatOptions};
    let bad = |e: kaizen_data::DataError| {
        Error::invalid(format!("step '{step}': foreach partitions: {}", chain(&e)))
    };
    let format = Format::from_path(path).ok_or_else(|| {
        Error::invalid(format!(
            "step '{step}': foreach partitions: {} is not a table",
            path.display()
        ))
    })?;
    let table = kaizen_data::read(
        &Source::path(path).with_format(format),
        &ReadOptions::default(),
    )
    .map_err(bad)?;
    let values = table.column(column).map_err(bad)?;
    let options = FormatOptions::default().with_null("null");
    let formatter = ArrayFormatter::try_new(values.as_ref(), &options)
        .map_err(|e| Error::internal("cannot format partition values", e))?;
    let mut order: Vec<String> = Vec::new();
    let mut rows: std::collections::HashMap<String, Vec<u32>> = Default::default();
    for row in 0..values.len() {
        let v = formatter.value(row).to_string();
        rows.entry(v.clone())
            .or_insert_with(|| {
                order.push(v);
                Vec::new()
            })
            .push(row as u32);
    }
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::internal(format!("cannot create {}", dir.display()), e))?;
    let mut out = Vec::new();
    for (i, value) in order.into_iter().enumerate() {
        let part = table.take(&rows[&value]).map_err(bad)?;
        // The part keeps the input's file name, so a data step sees the same table name.
        let file = dir
            .join(i.to_string())
            .join(path.file_name().unwrap_or_default());
        std::fs::create_dir_all(dir.join(i.to_string()))
            .map_err(|e| Error::internal(format!("cannot create {}", dir.display()), e))?;
        kaizen_data::write_parquet(&part, &file).map_err(bad)?;
        out.push((value, file));
    }
    Ok(out)
}
