//! SQL over files streamed by DataFusion (never loaded whole into memory), and file summaries
//! for the dataset catalog.

use std::collections::HashSet;
use std::fs::File;
use std::path::{Path, PathBuf};

use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::compute::{SortOptions, sort_to_indices};
use datafusion::arrow::datatypes::{DataType, Int64Type, Schema, SchemaRef};
use datafusion::common::TableReference;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::functions_aggregate::expr_fn::{count, max, min};
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::arrow::arrow_reader::statistics::StatisticsConverter;
use datafusion::parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions};
use datafusion::parquet::basic::Compression;
use datafusion::parquet::file::properties::WriterProperties;
use datafusion::prelude::{
    CsvReadOptions, Expr, JsonReadOptions, ParquetReadOptions, SessionConfig, SessionContext,
    ident, lit,
};
use datafusion::sql::parser::DFParser;
use datafusion::sql::resolve::resolve_table_references;
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};
use futures::StreamExt;
use serde_json::{Value, json};

use crate::types::{cell_json, display_strings, row_json, type_name};
use crate::{DataError, Format, Result, Table};

/// A file registered under a table name, streamed by DataFusion, not loaded into memory.
///
/// The name is taken literally (it is not parsed or lowercased): a query's unquoted `sales`
/// refers to the table named `sales`, a quoted `"Sales@2"` to the table named `Sales@2`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileTable {
    pub name: String,
    pub path: PathBuf,
    pub format: Format,
}

impl FileTable {
    pub fn new(name: impl Into<String>, path: impl Into<PathBuf>, format: Format) -> Self {
        FileTable {
            name: name.into(),
            path: path.into(),
            format,
        }
    }
}

/// What [`sql_to_parquet`] wrote.
#[derive(Debug, Clone)]
pub struct SqlOutput {
    pub rows: u64,
    pub schema: SchemaRef,
}

/// A tabular file's schema, row count and per-column statistics, as the catalog keeps them.
#[derive(Debug, Clone, PartialEq)]
pub struct FileSummary {
    /// `[{"name": ..., "type": ..., "nullable": ...}]`, types as [`crate::type_name`] writes them.
    pub schema: Value,
    pub rows: u64,
    /// `{"column": {"nulls": n, "min": x, "max": x}}`; a value is `null` where unknown (no
    /// statistics in a Parquet file, or a type without an order).
    pub stats: Value,
}

/// Runs `query` over the files and writes the result to `output` as Snappy-compressed Parquet,
/// batch by batch. The file is written beside `output` under a temporary name and renamed, so
/// `output` never holds half a file.
pub async fn sql_to_parquet(tables: &[FileTable], query: &str, output: &Path) -> Result<SqlOutput> {
    let mut stream = execute(tables, query).await?;
    let schema = stream.schema();
    let io_err = |source| DataError::Io {
        path: output.to_owned(),
        source,
    };
    let write_err = |source| DataError::ParquetWrite {
        path: output.to_owned(),
        source,
    };
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(output.file_name().unwrap_or_default());
    tmp_name.push(format!(".{}.tmp", std::process::id()));
    let tmp = output.with_file_name(tmp_name);
    let file = File::create(&tmp).map_err(io_err)?;
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .build();
    let result = async {
        let mut writer =
            ArrowWriter::try_new(file, schema.clone(), Some(props)).map_err(write_err)?;
        let mut rows = 0u64;
        while let Some(batch) = stream.next().await {
            let batch = batch.map_err(|source| DataError::Sql { source })?;
            rows += batch.num_rows() as u64;
            writer.write(&batch).map_err(write_err)?;
        }
        writer.close().map_err(write_err)?;
        std::fs::rename(&tmp, output).map_err(io_err)?;
        Ok(rows)
    }
    .await;
    match result {
        Ok(rows) => Ok(SqlOutput { rows, schema }),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// Runs `query` over the files and collects the result in memory.
pub async fn sql_files(tables: &[FileTable], query: &str) -> Result<Table> {
    let mut stream = execute(tables, query).await?;
    let schema = stream.schema();
    let mut batches = Vec::new();
    while let Some(batch) = stream.next().await {
        batches.push(batch.map_err(|source| DataError::Sql { source })?);
    }
    Table::new(schema, batches)
}

/// Every row of `table` as a JSON object (column name to value): numbers, booleans and strings
/// natively, other types as their text, nulls as `null`.
pub fn json_rows(table: &Table) -> Vec<Value> {
    table
        .batches()
        .iter()
        .flat_map(|batch| (0..batch.num_rows()).map(move |i| row_json(batch, i)))
        .collect()
}

/// Every row of `table` as display text, one string per cell (`None` for null).
pub fn text_rows(table: &Table) -> Result<Vec<Vec<Option<String>>>> {
    let mut rows = Vec::with_capacity(table.num_rows());
    for batch in table.batches() {
        let columns = batch
            .columns()
            .iter()
            .map(|c| display_strings(c.as_ref()))
            .collect::<Result<Vec<_>>>()?;
        for i in 0..batch.num_rows() {
            rows.push(columns.iter().map(|c| c[i].clone()).collect());
        }
    }
    Ok(rows)
}

/// The table names a query refers to, in order of first use, as DataFusion resolves them
/// (unquoted names lowercased, quoted names as written); names of common table expressions are
/// left out. A qualified reference (`schema.table`) answers its table part.
pub fn table_references(query: &str) -> Result<Vec<String>> {
    let parse_err = |e: datafusion::error::DataFusionError| DataError::Sql { source: e };
    let statements = DFParser::parse_sql(query).map_err(parse_err)?;
    let mut names: Vec<String> = Vec::new();
    for statement in &statements {
        let (references, _ctes) = resolve_table_references(statement, true).map_err(parse_err)?;
        for r in references {
            let name = r.table().to_owned();
            if !names.contains(&name) {
                names.push(name);
            }
        }
    }
    // The resolver answers a sorted set; order by the first token that names each table.
    let tokens = Tokenizer::new(&GenericDialect {}, query)
        .tokenize()
        .unwrap_or_default();
    let position = |name: &str| {
        tokens
            .iter()
            .position(|t| match t {
                Token::Word(w) if w.quote_style.is_some() => w.value == name,
                Token::Word(w) => w.value.to_lowercase() == name,
                _ => false,
            })
            .unwrap_or(usize::MAX)
    };
    names.sort_by_cached_key(|n| position(n));
    Ok(names)
}

/// A tabular file's schema, row count and per-column statistics. Parquet is described from its
/// footer metadata only (row count, and per column the null count, min and max over the row
/// groups' statistics), without reading data; CSV and JSON lines are read through once,
/// streamed.
pub fn describe_file(path: &Path, format: Format) -> Result<FileSummary> {
    check_exists(path)?;
    match format {
        Format::Parquet => describe_parquet(path),
        Format::Csv | Format::JsonLines => block_on(describe_by_scan(path, format)),
    }
}

/// Runs a future on its own thread and current-thread runtime, so that sync callers work from
/// inside a tokio runtime too.
fn block_on<T: Send>(future: impl Future<Output = Result<T>> + Send) -> Result<T> {
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| DataError::Internal(format!("starting a runtime: {e}")))?
                    .block_on(future)
            })
            .join()
            .unwrap_or_else(|_| Err(DataError::Internal("the worker thread panicked".into())))
    })
}

fn check_exists(path: &Path) -> Result<()> {
    match std::fs::metadata(path) {
        Ok(_) => Ok(()),
        Err(source) if source.kind() == std::io::ErrorKind::NotFound => Err(DataError::NotFound {
            path: path.to_owned(),
        }),
        Err(source) => Err(DataError::Io {
            path: path.to_owned(),
            source,
        }),
    }
}

fn session() -> SessionContext {
    let config = SessionConfig::new().with_information_schema(false);
    SessionContext::new_with_config(config)
}

/// Registers `table` in `ctx`. The file extension filter is set to match any name, because
/// artifacts are stored without one (`cas/<sha256>`).
async fn register(ctx: &SessionContext, table: &FileTable) -> Result<()> {
    check_exists(&table.path)?;
    let path = std::path::absolute(&table.path).map_err(|source| DataError::Io {
        path: table.path.clone(),
        source,
    })?;
    let location = path.to_string_lossy();
    let name = TableReference::bare(table.name.as_str());
    let registered = match table.format {
        Format::Parquet => {
            let options = ParquetReadOptions::default().file_extension("");
            ctx.register_parquet(name, location.as_ref(), options).await
        }
        Format::Csv => {
            let options = CsvReadOptions::new().has_header(true).file_extension("");
            ctx.register_csv(name, location.as_ref(), options).await
        }
        Format::JsonLines => {
            let options = JsonReadOptions::default().file_extension("");
            ctx.register_json(name, location.as_ref(), options).await
        }
    };
    registered.map_err(|source| DataError::Sql { source })
}

async fn context(tables: &[FileTable]) -> Result<SessionContext> {
    let ctx = session();
    let mut seen = HashSet::new();
    for table in tables {
        if !seen.insert(table.name.as_str()) {
            return Err(DataError::DuplicateTable {
                name: table.name.clone(),
            });
        }
        register(&ctx, table).await?;
    }
    Ok(ctx)
}

/// Plans `query` over the files and starts it: one stream of batches over all partitions.
async fn execute(tables: &[FileTable], query: &str) -> Result<SendableRecordBatchStream> {
    let ctx = context(tables).await?;
    let frame = ctx
        .sql(query)
        .await
        .map_err(|source| DataError::Sql { source })?;
    frame
        .execute_stream()
        .await
        .map_err(|source| DataError::Sql { source })
}

fn schema_json(schema: &Schema) -> Value {
    Value::Array(
        schema
            .fields()
            .iter()
            .map(|f| {
                json!({
                    "name": f.name(),
                    "type": type_name(f.data_type()),
                    "nullable": f.is_nullable(),
                })
            })
            .collect(),
    )
}

/// Whether min and max of the type mean something (and DataFusion and Arrow can compute them).
fn has_order(t: &DataType) -> bool {
    t.is_primitive()
        || matches!(
            t,
            DataType::Boolean | DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
        )
}

fn describe_parquet(path: &Path) -> Result<FileSummary> {
    let file = File::open(path).map_err(|source| DataError::Io {
        path: path.to_owned(),
        source,
    })?;
    let meta = ArrowReaderMetadata::load(&file, ArrowReaderOptions::new()).map_err(|source| {
        DataError::ParquetRead {
            path: path.to_owned(),
            source,
        }
    })?;
    let schema = meta.schema();
    let parquet = meta.metadata();
    let row_groups = parquet.row_groups();
    let rows = parquet.file_metadata().num_rows().max(0) as u64;
    let mut stats = serde_json::Map::new();
    for field in schema.fields() {
        let converter = StatisticsConverter::try_new(
            field.name(),
            schema,
            parquet.file_metadata().schema_descr(),
        )
        .ok();
        let nulls = converter
            .as_ref()
            .and_then(|c| c.row_group_null_counts(row_groups).ok())
            .and_then(|counts| {
                // Unknown when any row group lacks the count.
                (counts.null_count() == 0).then(|| counts.values().iter().sum::<u64>())
            });
        let (lo, hi) = match (&converter, has_order(field.data_type())) {
            (Some(c), true) => (
                c.row_group_mins(row_groups)
                    .ok()
                    .map_or(Value::Null, |a| extreme(&a, false)),
                c.row_group_maxes(row_groups)
                    .ok()
                    .map_or(Value::Null, |a| extreme(&a, true)),
            ),
            _ => (Value::Null, Value::Null),
        };
        stats.insert(
            field.name().clone(),
            json!({"nulls": nulls, "min": lo, "max": hi}),
        );
    }
    Ok(FileSummary {
        schema: schema_json(schema),
        rows,
        stats: Value::Object(stats),
    })
}

/// The least (or greatest) non-null value of `array` as JSON; null when there is none.
fn extreme(array: &ArrayRef, greatest: bool) -> Value {
    let options = SortOptions {
        descending: greatest,
        nulls_first: false,
    };
    match sort_to_indices(array.as_ref(), Some(options), Some(1)) {
        Ok(indices) if !indices.is_empty() => cell_json(array.as_ref(), indices.value(0) as usize),
        _ => Value::Null,
    }
}

/// One aggregate pass over a CSV or JSON-lines file: the row count, and each column's non-null
/// count, min and max.
async fn describe_by_scan(path: &Path, format: Format) -> Result<FileSummary> {
    let table = FileTable::new("t", path, format);
    let ctx = session();
    register(&ctx, &table).await?;
    let frame = ctx
        .table("t")
        .await
        .map_err(|source| DataError::Sql { source })?;
    let schema: Schema = frame.schema().as_arrow().clone();
    let mut aggregates: Vec<Expr> = vec![count(lit(1i64)).alias("n")];
    for (i, field) in schema.fields().iter().enumerate() {
        aggregates.push(count(ident(field.name())).alias(format!("c{i}")));
        if has_order(field.data_type()) {
            aggregates.push(min(ident(field.name())).alias(format!("min{i}")));
            aggregates.push(max(ident(field.name())).alias(format!("max{i}")));
        }
    }
    let batches = frame
        .aggregate(vec![], aggregates)
        .map(|f| f.collect())
        .map_err(|source| DataError::Sql { source })?
        .await
        .map_err(|source| DataError::Sql { source })?;
    let batch = batches
        .iter()
        .find(|b| b.num_rows() > 0)
        .ok_or_else(|| DataError::Internal("an aggregate answered no row".into()))?;
    let int = |name: &str| -> Result<i64> {
        let column = batch
            .column_by_name(name)
            .ok_or_else(|| DataError::Internal(format!("aggregate column {name} missing")))?;
        Ok(column.as_primitive::<Int64Type>().value(0))
    };
    let value = |name: &str| {
        batch
            .column_by_name(name)
            .map_or(Value::Null, |c| cell_json(c.as_ref(), 0))
    };
    let rows = int("n")?;
    let mut stats = serde_json::Map::new();
    for (i, field) in schema.fields().iter().enumerate() {
        let nulls = rows - int(&format!("c{i}"))?;
        stats.insert(
            field.name().clone(),
            json!({"nulls": nulls, "min": value(&format!("min{i}")), "max": value(&format!("max{i}"))}),
        );
    }
    Ok(FileSummary {
        schema: schema_json(&schema),
        rows: rows.max(0) as u64,
        stats: Value::Object(stats),
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use datafusion::arrow::array::{Float64Array, Int64Array, StringArray};
    use datafusion::arrow::datatypes::Field;
    use datafusion::arrow::record_batch::RecordBatch;
    use datafusion::parquet::file::properties::WriterProperties;

    const SALES_CSV: &str = "id,store,units\n1,a,3\n2,b,\n3,a,7\n4,c,1\n";

    /// A Parquet file without an extension, as the artifact store keeps them, written in
    /// several row groups.
    fn sales_parquet(dir: &Path) -> PathBuf {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("store", DataType::Utf8, true),
            Field::new("price", DataType::Float64, true),
        ]));
        let path = dir.join("0123abcd");
        let props = WriterProperties::builder()
            .set_max_row_group_row_count(Some(2))
            .build();
        let mut writer =
            ArrowWriter::try_new(File::create(&path).unwrap(), schema.clone(), Some(props))
                .unwrap();
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(vec![1, 2, 3, 4, 5])),
                Arc::new(StringArray::from(vec![
                    Some("a"),
                    None,
                    Some("c"),
                    Some("a"),
                    None,
                ])),
                Arc::new(Float64Array::from(vec![
                    Some(2.5),
                    Some(-1.0),
                    None,
                    Some(9.0),
                    Some(0.5),
                ])),
            ],
        )
        .unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();
        path
    }

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    #[tokio::test]
    async fn queries_files_without_extensions() {
        let dir = tempfile::tempdir().unwrap();
        let tables = [
            FileTable::new("sales", sales_parquet(dir.path()), Format::Parquet),
            FileTable::new(
                "units@2",
                write(dir.path(), "feedbeef", SALES_CSV),
                Format::Csv,
            ),
            FileTable::new(
                "events",
                write(
                    dir.path(),
                    "cafe",
                    "{\"id\": 1, \"kind\": \"x\"}\n{\"id\": 4, \"kind\": \"y\"}\n",
                ),
                Format::JsonLines,
            ),
        ];
        let out = sql_files(
            &tables,
            "SELECT s.id, s.price, u.units, e.kind FROM sales s \
             JOIN \"units@2\" u ON s.id = u.id LEFT JOIN events e ON e.id = s.id ORDER BY s.id",
        )
        .await
        .unwrap();
        assert_eq!(out.num_rows(), 4);
        assert_eq!(out.column_names(), ["id", "price", "units", "kind"]);
        let kinds = out.column("kind").unwrap();
        assert_eq!(kinds.null_count(), 2);
    }

    #[tokio::test]
    async fn rows_as_json_and_text() {
        let dir = tempfile::tempdir().unwrap();
        let tables = [FileTable::new(
            "sales",
            sales_parquet(dir.path()),
            Format::Parquet,
        )];
        let out = sql_files(
            &tables,
            "SELECT id, store, price FROM sales WHERE id <= 2 ORDER BY id",
        )
        .await
        .unwrap();
        assert_eq!(
            json_rows(&out),
            [
                json!({"id": 1, "store": "a", "price": 2.5}),
                json!({"id": 2, "store": null, "price": -1.0}),
            ]
        );
        assert_eq!(
            text_rows(&out).unwrap(),
            [
                vec![
                    Some("1".to_owned()),
                    Some("a".to_owned()),
                    Some("2.5".to_owned())
                ],
                vec![Some("2".to_owned()), None, Some("-1.0".to_owned())],
            ]
        );
    }

    #[tokio::test]
    async fn writes_the_result_as_parquet_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let tables = [FileTable::new(
            "sales",
            sales_parquet(dir.path()),
            Format::Parquet,
        )];
        let output = dir.path().join("by_store.parquet");
        let written = sql_to_parquet(
            &tables,
            "SELECT store, count(*) AS n, sum(price) AS total FROM sales \
             WHERE store IS NOT NULL GROUP BY store ORDER BY store",
            &output,
        )
        .await
        .unwrap();
        assert_eq!(written.rows, 2);
        assert_eq!(
            written
                .schema
                .fields()
                .iter()
                .map(|f| f.name().as_str())
                .collect::<Vec<_>>(),
            ["store", "n", "total"]
        );
        let back = crate::read_parquet(&output).unwrap();
        assert_eq!(back.num_rows(), 2);
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");

        // A failing query leaves neither the output nor a temporary file.
        let bad = dir.path().join("bad.parquet");
        let csv = write(dir.path(), "bad", "a\n1\nx\n");
        let err = sql_to_parquet(
            &[FileTable::new("t", &csv, Format::Csv)],
            "SELECT a + 1 FROM t",
            &bad,
        )
        .await;
        if err.is_err() {
            assert!(!bad.exists());
        }
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".tmp"))
            .collect();
        assert!(names.is_empty(), "{names:?}");
    }

    #[tokio::test]
    async fn bad_input_is_an_expected_error() {
        let dir = tempfile::tempdir().unwrap();
        let missing = FileTable::new("t", dir.path().join("nope"), Format::Parquet);
        let err = sql_files(&[missing], "SELECT 1").await.unwrap_err();
        assert!(matches!(err, DataError::NotFound { .. }), "{err:?}");
        let t = FileTable::new("t", sales_parquet(dir.path()), Format::Parquet);
        let err = sql_files(std::slice::from_ref(&t), "SELECT * FROM other")
            .await
            .unwrap_err();
        assert!(!err.is_internal());
        assert!(err.to_string().contains("other"), "{err}");
        let err = sql_files(&[t.clone(), t], "SELECT 1").await.unwrap_err();
        assert!(matches!(err, DataError::DuplicateTable { .. }), "{err:?}");
    }

    #[test]
    fn table_references_in_order_of_first_use() {
        let refs = table_references(
            "WITH recent AS (SELECT * FROM zeta WHERE id > 1) \
             SELECT * FROM recent JOIN Alpha ON recent.id = Alpha.id \
             JOIN \"Sales@2\" s ON s.id = recent.id, public.beta",
        )
        .unwrap();
        assert_eq!(refs, ["zeta", "alpha", "Sales@2", "beta"]);
        assert!(table_references("SELEC nope").is_err());
        assert!(table_references("SELECT 1").unwrap().is_empty());
    }

    #[test]
    fn describes_parquet_from_its_footer() {
        let dir = tempfile::tempdir().unwrap();
        let summary = describe_file(&sales_parquet(dir.path()), Format::Parquet).unwrap();
        assert_eq!(summary.rows, 5);
        assert_eq!(
            summary.schema,
            json!([
                {"name": "id", "type": "int64", "nullable": false},
                {"name": "store", "type": "utf8", "nullable": true},
                {"name": "price", "type": "float64", "nullable": true},
            ])
        );
        assert_eq!(
            summary.stats,
            json!({
                "id": {"nulls": 0, "min": 1, "max": 5},
                "store": {"nulls": 2, "min": "a", "max": "c"},
                "price": {"nulls": 1, "min": -1.0, "max": 9.0},
            })
        );
        let junk = write(dir.path(), "junk", "not parquet");
        assert!(matches!(
            describe_file(&junk, Format::Parquet),
            Err(DataError::ParquetRead { .. })
        ));
        assert!(matches!(
            describe_file(&dir.path().join("nope"), Format::Parquet),
            Err(DataError::NotFound { .. })
        ));
    }

    #[test]
    fn describes_csv_and_json_lines_by_scanning() {
        let dir = tempfile::tempdir().unwrap();
        let summary = describe_file(&write(dir.path(), "abc", SALES_CSV), Format::Csv).unwrap();
        assert_eq!(summary.rows, 4);
        assert_eq!(summary.schema[0]["name"], "id");
        assert_eq!(summary.schema[0]["type"], "int64");
        assert_eq!(
            summary.stats["units"],
            json!({"nulls": 1, "min": 1, "max": 7})
        );
        assert_eq!(
            summary.stats["store"],
            json!({"nulls": 0, "min": "a", "max": "c"})
        );
        let jsonl = write(
            dir.path(),
            "def",
            "{\"a\": 1.5, \"b\": true}\n{\"a\": null, \"b\": false}\n{\"a\": -2, \"b\": true}\n",
        );
        let summary = describe_file(&jsonl, Format::JsonLines).unwrap();
        assert_eq!(summary.rows, 3);
        assert_eq!(
            summary.stats["a"],
            json!({"nulls": 1, "min": -2.0, "max": 1.5})
        );
        assert_eq!(
            summary.stats["b"],
            json!({"nulls": 0, "min": false, "max": true})
        );
    }
}
