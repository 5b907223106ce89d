//! Reading CSV, Parquet and JSON-lines files into a [`Table`], and writing Parquet.

use std::collections::BTreeMap;
use std::fmt;
use std::fs::File;
use std::io::{BufReader, Seek};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef};
use datafusion::arrow::compute::{CastOptions, cast_with_options};
use datafusion::arrow::csv;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::json;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use datafusion::parquet::basic::Compression;
use datafusion::parquet::file::properties::WriterProperties;
use serde::{Deserialize, Serialize};

use crate::types::{display_strings, parse_type, type_name};
use crate::{DataError, Result, Table};

/// File formats [`read`] understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    Csv,
    Parquet,
    /// One JSON object per line.
    JsonLines,
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::Csv => "CSV",
            Format::Parquet => "Parquet",
            Format::JsonLines => "JSON-lines",
        })
    }
}

impl Format {
    /// The format for a file extension: `csv`, `parquet`/`pq`, `jsonl`/`ndjson`/`json`.
    pub fn from_path(path: &Path) -> Option<Format> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "csv" | "tsv" => Some(Format::Csv),
            "parquet" | "pq" => Some(Format::Parquet),
            "jsonl" | "ndjson" | "json" => Some(Format::JsonLines),
            _ => None,
        }
    }
}

/// A file to read, with its format when the extension does not tell it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Source {
    pub path: PathBuf,
    #[serde(default)]
    pub format: Option<Format>,
}

impl Source {
    /// A source whose format comes from the extension.
    pub fn path(path: impl Into<PathBuf>) -> Self {
        Source {
            path: path.into(),
            format: None,
        }
    }

    pub fn with_format(mut self, format: Format) -> Self {
        self.format = Some(format);
        self
    }

    /// The explicit format, or the one the extension names.
    pub fn resolve_format(&self) -> Result<Format> {
        self.format
            .or_else(|| Format::from_path(&self.path))
            .ok_or_else(|| DataError::UnknownFormat {
                path: self.path.clone(),
            })
    }
}

/// How to read a file. Deserializes from a spec with every field optional.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReadOptions {
    /// CSV: the first line names the columns (else they are `column_1`, `column_2`, ...).
    pub has_header: bool,
    /// CSV: the field delimiter, one ASCII character.
    pub delimiter: char,
    /// CSV and JSON lines: how many rows schema inference looks at.
    pub infer_rows: usize,
    /// Rows per record batch.
    pub batch_size: usize,
    /// Column name to type name (see [`crate::parse_type`]), overriding inference; for Parquet,
    /// a cast.
    pub types: BTreeMap<String, String>,
}

impl Default for ReadOptions {
    fn default() -> Self {
        ReadOptions {
            has_header: true,
            delimiter: ',',
            infer_rows: 1000,
            batch_size: 8192,
            types: BTreeMap::new(),
        }
    }
}

/// Reads `source` into memory.
pub fn read(source: &Source, options: &ReadOptions) -> Result<Table> {
    let path = &source.path;
    let format = source.resolve_format()?;
    let overrides = options
        .types
        .iter()
        .map(|(column, name)| Ok((column.clone(), parse_type(column, name)?)))
        .collect::<Result<BTreeMap<String, DataType>>>()?;
    let file = open(path)?;
    let parse_err = |source: ArrowError| DataError::Parse {
        path: path.clone(),
        format,
        source,
    };
    let batch_size = options.batch_size.max(1);
    let (schema, batches) = match format {
        Format::Csv => {
            if !options.delimiter.is_ascii() {
                return Err(DataError::Parse {
                    path: path.clone(),
                    format,
                    source: ArrowError::InvalidArgumentError(format!(
                        "delimiter `{}` is not ASCII",
                        options.delimiter
                    )),
                });
            }
            let csv_format = csv::reader::Format::default()
                .with_header(options.has_header)
                .with_delimiter(options.delimiter as u8);
            let (inferred, _) = csv_format
                .infer_schema(BufReader::new(file), Some(options.infer_rows.max(1)))
                .map_err(parse_err)?;
            let schema = as_text(path, &inferred, &overrides)?;
            let reader = csv::ReaderBuilder::new(schema.clone())
                .with_format(csv_format)
                .with_batch_size(batch_size)
                .build(BufReader::new(open(path)?))
                .map_err(parse_err)?;
            let batches = reader.collect::<Result<Vec<_>, _>>().map_err(parse_err)?;
            (schema, batches)
        }
        Format::JsonLines => {
            let mut reader = BufReader::new(file);
            let (inferred, _) = json::reader::infer_json_schema_from_seekable(
                &mut reader,
                Some(options.infer_rows.max(1)),
            )
            .map_err(parse_err)?;
            reader.rewind().map_err(|source| DataError::Io {
                path: path.clone(),
                source,
            })?;
            let schema = as_text(path, &inferred, &overrides)?;
            let reader = json::ReaderBuilder::new(schema.clone())
                .with_batch_size(batch_size)
                .with_coerce_primitive(true)
                .build(reader)
                .map_err(parse_err)?;
            let batches = reader.collect::<Result<Vec<_>, _>>().map_err(parse_err)?;
            (schema, batches)
        }
        Format::Parquet => {
            let table = read_parquet_file(path, file, batch_size)?;
            for column in overrides.keys() {
                check_column(path, table.schema(), column)?;
            }
            (table.schema().clone(), table.into_batches())
        }
    };
    apply_overrides(path, schema, batches, &overrides)
}

fn open(path: &Path) -> Result<File> {
    File::open(path).map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            DataError::NotFound {
                path: path.to_owned(),
            }
        } else {
            DataError::Io {
                path: path.to_owned(),
                source,
            }
        }
    })
}

fn check_column(path: &Path, schema: &Schema, column: &str) -> Result<()> {
    schema
        .index_of(column)
        .map(|_| ())
        .map_err(|_| DataError::ColumnNotFound {
            column: format!("{column}` (type override for `{}", path.display()),
            available: schema
                .fields()
                .iter()
                .map(|f| f.name().as_str())
                .collect::<Vec<_>>()
                .join(", "),
        })
}

/// The inferred schema with overridden columns read as text, to be cast afterwards.
fn as_text(
    path: &Path,
    inferred: &Schema,
    overrides: &BTreeMap<String, DataType>,
) -> Result<SchemaRef> {
    for column in overrides.keys() {
        check_column(path, inferred, column)?;
    }
    let fields: Vec<Field> = inferred
        .fields()
        .iter()
        .map(|f| {
            if overrides.contains_key(f.name()) {
                Field::new(f.name(), DataType::Utf8, true)
            } else {
                f.as_ref().clone()
            }
        })
        .collect();
    Ok(Arc::new(Schema::new(fields)))
}

/// Casts overridden columns; a value that does not cast is an [`DataError::InvalidValue`].
fn apply_overrides(
    path: &Path,
    schema: SchemaRef,
    batches: Vec<RecordBatch>,
    overrides: &BTreeMap<String, DataType>,
) -> Result<Table> {
    if overrides.is_empty() {
        return Table::new(schema, batches);
    }
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| match overrides.get(f.name()) {
            Some(t) => Field::new(f.name(), t.clone(), true),
            None => f.as_ref().clone(),
        })
        .collect();
    let target = Arc::new(Schema::new(fields));
    let mut out = Vec::with_capacity(batches.len());
    let mut offset = 0;
    for batch in batches {
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(batch.num_columns());
        for (field, column) in target.fields().iter().zip(batch.columns()) {
            let Some(to) = overrides.get(field.name()) else {
                columns.push(column.clone());
                continue;
            };
            let options = CastOptions {
                safe: true,
                ..Default::default()
            };
            let cast = cast_with_options(column, to, &options).map_err(|_| {
                first_bad(path, field.name(), column, None, offset, to).unwrap_or_else(|| {
                    DataError::Internal(format!("cast of `{}` failed", field.name()))
                })
            })?;
            if cast.null_count() != column.null_count()
                && let Some(err) = first_bad(path, field.name(), column, Some(&cast), offset, to)
            {
                return Err(err);
            }
            columns.push(cast);
        }
        out.push(
            RecordBatch::try_new(target.clone(), columns)
                .map_err(DataError::arrow("casting columns"))?,
        );
        offset += batch.num_rows();
    }
    Table::new(target, out)
}

/// The first value of `column` that is not null but became null in `cast` (or the first value
/// when the cast failed as a whole).
fn first_bad(
    path: &Path,
    name: &str,
    column: &ArrayRef,
    cast: Option<&ArrayRef>,
    offset: usize,
    to: &DataType,
) -> Option<DataError> {
    let text = display_strings(column.as_ref()).ok()?;
    let row =
        (0..column.len()).find(|&i| column.is_valid(i) && cast.is_none_or(|c| c.is_null(i)))?;
    Some(DataError::InvalidValue {
        path: path.to_owned(),
        column: name.to_owned(),
        row: offset + row + 1,
        value: text[row].clone().unwrap_or_default(),
        data_type: type_name(to),
    })
}

fn read_parquet_file(path: &Path, file: File, batch_size: usize) -> Result<Table> {
    let err = |source| DataError::ParquetRead {
        path: path.to_owned(),
        source,
    };
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(err)?;
    let schema = builder.schema().clone();
    let reader = builder.with_batch_size(batch_size).build().map_err(err)?;
    let batches = reader
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| DataError::Parse {
            path: path.to_owned(),
            format: Format::Parquet,
            source,
        })?;
    Table::new(schema, batches)
}

/// Reads a Parquet file.
pub fn read_parquet(path: impl AsRef<Path>) -> Result<Table> {
    let path = path.as_ref();
    read_parquet_file(path, open(path)?, 8192)
}

/// Writes `table` to `path` as Snappy-compressed Parquet. The file is written beside `path` under
/// a temporary name and renamed, so `path` never holds half a file.
pub fn write_parquet(table: &Table, path: impl AsRef<Path>) -> Result<()> {
    let path = path.as_ref();
    let io_err = |source| DataError::Io {
        path: path.to_owned(),
        source,
    };
    let write_err = |source| DataError::ParquetWrite {
        path: path.to_owned(),
        source,
    };
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(".tmp");
    let tmp = path.with_file_name(tmp_name);
    let file = File::create(&tmp).map_err(io_err)?;
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .build();
    let result = (|| {
        let mut writer =
            ArrowWriter::try_new(file, table.schema().clone(), Some(props)).map_err(write_err)?;
        for batch in table.batches() {
            writer.write(batch).map_err(write_err)?;
        }
        writer.close().map_err(write_err)?;
        std::fs::rename(&tmp, path).map_err(io_err)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::AsArray;
    use datafusion::arrow::datatypes::Int64Type;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    const SALES: &str =
        "date,store,units,price\n2024-01-01,a,3,1.5\n2024-01-02,b,5,2.0\n2024-01-03,a,,2.5\n";

    #[test]
    fn reads_csv_with_inference_and_overrides() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "sales.csv", SALES);
        let t = read(&Source::path(&p), &ReadOptions::default()).unwrap();
        assert_eq!(t.num_rows(), 3);
        assert_eq!(
            t.schema().field_with_name("units").unwrap().data_type(),
            &DataType::Int64
        );
        assert_eq!(
            t.schema().field_with_name("price").unwrap().data_type(),
            &DataType::Float64
        );

        let mut options = ReadOptions::default();
        options.types.insert("date".into(), "date32".into());
        options.types.insert("units".into(), "float64".into());
        let t = read(&Source::path(&p), &options).unwrap();
        assert_eq!(
            t.schema().field_with_name("date").unwrap().data_type(),
            &DataType::Date32
        );
        assert_eq!(
            t.schema().field_with_name("units").unwrap().data_type(),
            &DataType::Float64
        );
        assert_eq!(t.column("units").unwrap().null_count(), 1);
    }

    #[test]
    fn reads_csv_with_delimiter_and_no_header() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "x.txt", "1;x\n2;y\n");
        let options = ReadOptions {
            has_header: false,
            delimiter: ';',
            ..Default::default()
        };
        let t = read(&Source::path(&p).with_format(Format::Csv), &options).unwrap();
        assert_eq!(t.column_names(), ["column_1", "column_2"]);
        assert_eq!(t.num_rows(), 2);
    }

    #[test]
    fn bad_override_value_names_column_row_and_value() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "s.csv", "id,units\n1,3\n2,x7\n");
        let mut options = ReadOptions::default();
        options.types.insert("units".into(), "int64".into());
        let err = read(&Source::path(&p), &options).unwrap_err();
        match &err {
            DataError::InvalidValue {
                column,
                row,
                value,
                data_type,
                ..
            } => {
                assert_eq!(
                    (column.as_str(), *row, value.as_str(), data_type.as_str()),
                    ("units", 2, "x7", "int64")
                );
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(err.to_string().contains("`x7` at row 2"), "{err}");
    }

    #[test]
    fn bad_inputs_are_typed_errors() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.csv");
        assert!(matches!(
            read(&Source::path(&missing), &ReadOptions::default()),
            Err(DataError::NotFound { .. })
        ));
        let p = write(dir.path(), "data.xyz", "a\n1\n");
        assert!(matches!(
            read(&Source::path(&p), &ReadOptions::default()),
            Err(DataError::UnknownFormat { .. })
        ));
        let p = write(dir.path(), "s.csv", SALES);
        let mut options = ReadOptions::default();
        options.types.insert("nope".into(), "int64".into());
        assert!(matches!(
            read(&Source::path(&p), &options),
            Err(DataError::ColumnNotFound { .. })
        ));
        options.types = [("units".to_owned(), "integer".to_owned())].into();
        assert!(matches!(
            read(&Source::path(&p), &options),
            Err(DataError::UnknownType { .. })
        ));
        // Inference looks at one row only; a later value does not fit the inferred type.
        let p = write(dir.path(), "late.csv", "a\n1\nfoo\n");
        let options = ReadOptions {
            infer_rows: 1,
            ..Default::default()
        };
        let err = read(&Source::path(&p), &options).unwrap_err();
        assert!(matches!(err, DataError::Parse { .. }), "{err:?}");
        assert!(err.to_string().contains("late.csv"));
    }

    #[test]
    fn reads_json_lines() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(
            dir.path(),
            "e.jsonl",
            "{\"a\": 1, \"b\": \"x\"}\n{\"a\": 2, \"b\": \"2024-02-01\"}\n",
        );
        let t = read(&Source::path(&p), &ReadOptions::default()).unwrap();
        assert_eq!(t.num_rows(), 2);
        assert_eq!(
            t.column("a").unwrap().as_primitive::<Int64Type>().value(1),
            2
        );
        let mut options = ReadOptions::default();
        options.types.insert("b".into(), "date32".into());
        let err = read(&Source::path(&p), &options).unwrap_err();
        assert!(
            matches!(err, DataError::InvalidValue { row: 1, .. }),
            "{err:?}"
        );
    }

    #[test]
    fn parquet_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let t = crate::table::tests::sample();
        let p = dir.path().join("t.parquet");
        write_parquet(&t, &p).unwrap();
        let back = read_parquet(&p).unwrap();
        assert_eq!(back.num_rows(), 4);
        assert_eq!(back.content_hash().unwrap(), t.content_hash().unwrap());
        let via_read = read(&Source::path(&p), &ReadOptions::default()).unwrap();
        assert_eq!(via_read.num_rows(), 4);
        let junk = write(dir.path(), "junk.parquet", "not parquet");
        assert!(matches!(
            read_parquet(&junk),
            Err(DataError::ParquetRead { .. })
        ));
    }
}
