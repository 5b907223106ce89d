//! Loading one column at a time from a data set, with pandas' reading rules (what Evidently
//! sees): CSV text parsed as int, float (including `inf`/`nan`) or bool when every value is, the
//! usual missing markers (`NA`, `null`, empty, ...) read as missing, an integer column with a
//! missing value read as float. Parquet files are read one column at a time, so memory holds only
//! the columns being compared.

use std::collections::HashMap;
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use kaizen_data::arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use kaizen_data::arrow::compute::cast;
use kaizen_data::arrow::csv;
use kaizen_data::arrow::datatypes::{DataType, Field, Schema};
use kaizen_data::parquet::arrow::ProjectionMask;
use kaizen_data::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use kaizen_data::{Format, ReadOptions, Source, Table};

use crate::{DriftError, Result};

/// Code of a missing value in [`Values::Text`].
pub const MISSING: u32 = u32::MAX;

/// One column's values as read.
#[derive(Debug, Clone)]
pub enum Values {
    /// Numbers; missing values are NaN. `integer`: an integer type without missing values
    /// (pandas' int64), which Evidently treats as categorical when it has few values.
    Numeric { values: Vec<f64>, integer: bool },
    /// Text or booleans, dictionary-encoded; [`MISSING`] marks a missing value.
    Text {
        codes: Vec<u32>,
        dictionary: Vec<String>,
        boolean: bool,
    },
}

impl Values {
    pub fn len(&self) -> usize {
        match self {
            Values::Numeric { values, .. } => values.len(),
            Values::Text { codes, .. } => codes.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A data set whose columns are loaded on demand.
pub struct Dataset {
    path: PathBuf,
    names: Vec<String>,
    rows: usize,
    storage: Storage,
}

enum Storage {
    /// Columns converted while reading (CSV).
    Loaded(HashMap<String, Values>),
    /// Arrow batches in memory (JSON lines).
    Table(Table),
    /// A Parquet file read one column at a time.
    Parquet,
}

impl Dataset {
    /// Opens `path` (CSV, Parquet or JSON lines, by extension).
    pub fn open(path: &Path) -> Result<Dataset> {
        let format = Source::path(path).resolve_format()?;
        match format {
            Format::Csv => read_csv(path),
            Format::Parquet => {
                let file = open(path)?;
                let builder = ParquetRecordBatchReaderBuilder::try_new(file)
                    .map_err(|e| read_err(path, e))?;
                let names = builder
                    .schema()
                    .fields()
                    .iter()
                    .map(|f| f.name().clone())
                    .collect();
                let rows = builder.metadata().file_metadata().num_rows().max(0) as usize;
                Ok(Dataset {
                    path: path.to_owned(),
                    names,
                    rows,
                    storage: Storage::Parquet,
                })
            }
            Format::JsonLines => {
                let table = kaizen_data::read(&Source::path(path), &ReadOptions::default())?;
                Ok(Dataset {
                    path: path.to_owned(),
                    names: table.column_names(),
                    rows: table.num_rows(),
                    storage: Storage::Table(table),
                })
            }
        }
    }

    /// A data set over an in-memory table; `path` names it in messages.
    pub fn from_table(path: impl Into<PathBuf>, table: Table) -> Dataset {
        Dataset {
            path: path.into(),
            names: table.column_names(),
            rows: table.num_rows(),
            storage: Storage::Table(table),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn names(&self) -> &[String] {
        &self.names
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn has(&self, name: &str) -> bool {
        self.names.iter().any(|n| n == name)
    }

    /// The values of column `name`, or `None` for a type drift does not handle (dates, times,
    /// nested types).
    pub fn load(&self, name: &str, side: &'static str) -> Result<Option<Values>> {
        match &self.storage {
            Storage::Loaded(columns) => Ok(columns.get(name).cloned()),
            Storage::Table(table) => {
                let array = table.column(name)?;
                from_arrays(&[array], name, side, &self.path)
            }
            Storage::Parquet => {
                let file = open(&self.path)?;
                let builder = ParquetRecordBatchReaderBuilder::try_new(file)
                    .map_err(|e| read_err(&self.path, e))?;
                let index = builder
                    .schema()
                    .index_of(name)
                    .map_err(|e| read_err(&self.path, e))?;
                let mask = ProjectionMask::roots(builder.parquet_schema(), [index]);
                let reader = builder
                    .with_projection(mask)
                    .with_batch_size(65536)
                    .build()
                    .map_err(|e| read_err(&self.path, e))?;
                let mut arrays = Vec::new();
                for batch in reader {
                    let batch = batch.map_err(|e| read_err(&self.path, e))?;
                    arrays.push(batch.column(0).clone());
                }
                from_arrays(&arrays, name, side, &self.path)
            }
        }
    }
}

fn open(path: &Path) -> Result<File> {
    File::open(path).map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            kaizen_data::DataError::NotFound {
                path: path.to_owned(),
            }
            .into()
        } else {
            kaizen_data::DataError::Io {
                path: path.to_owned(),
                source,
            }
            .into()
        }
    })
}

fn read_err(path: &Path, e: impl std::fmt::Display) -> DriftError {
    DriftError::Read {
        path: path.to_owned(),
        detail: e.to_string(),
    }
}

/// Converts Arrow arrays (the chunks of one column) to [`Values`].
fn from_arrays(
    arrays: &[ArrayRef],
    name: &str,
    side: &'static str,
    path: &Path,
) -> Result<Option<Values>> {
    let Some(first) = arrays.first() else {
        return Ok(Some(Values::Numeric {
            values: Vec::new(),
            integer: false,
        }));
    };
    let data_type = first.data_type().clone();
    let unsupported = || DriftError::UnsupportedType {
        column: name.to_owned(),
        data_type: data_type.to_string(),
        side,
        path: path.to_owned(),
    };
    let arrays: Vec<ArrayRef> = match &data_type {
        DataType::Dictionary(_, value) => arrays
            .iter()
            .map(|a| cast(a, value).map_err(|e| read_err(path, e)))
            .collect::<Result<_>>()?,
        _ => arrays.to_vec(),
    };
    let data_type = arrays[0].data_type().clone();
    let total: usize = arrays.iter().map(|a| a.len()).sum();
    let nulls: usize = arrays.iter().map(|a| a.null_count()).sum();
    match &data_type {
        t if t.is_integer()
            || t.is_floating()
            || matches!(t, DataType::Decimal128(..) | DataType::Decimal256(..)) =>
        {
            let mut values = Vec::with_capacity(total);
            for a in &arrays {
                let f = cast(a, &DataType::Float64).map_err(|e| read_err(path, e))?;
                let f = f.as_primitive::<kaizen_data::arrow::datatypes::Float64Type>();
                if f.null_count() == 0 {
                    values.extend_from_slice(f.values());
                } else {
                    values.extend(f.iter().map(|v| v.unwrap_or(f64::NAN)));
                }
            }
            Ok(Some(Values::Numeric {
                values,
                integer: t.is_integer() && nulls == 0,
            }))
        }
        DataType::Boolean => {
            let mut codes = Vec::with_capacity(total);
            for a in &arrays {
                codes.extend(a.as_boolean().iter().map(|v| match v {
                    None => MISSING,
                    Some(false) => 0,
                    Some(true) => 1,
                }));
            }
            Ok(Some(Values::Text {
                codes,
                dictionary: vec!["False".into(), "True".into()],
                boolean: true,
            }))
        }
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
            let mut dict = Dictionary::default();
            let mut codes = Vec::with_capacity(total);
            for a in &arrays {
                let s = cast(a, &DataType::Utf8).map_err(|e| read_err(path, e))?;
                for v in s.as_string::<i32>().iter() {
                    codes.push(match v {
                        None => MISSING,
                        Some(v) => dict.code(v),
                    });
                }
            }
            Ok(Some(Values::Text {
                codes,
                dictionary: dict.values,
                boolean: false,
            }))
        }
        DataType::Null => Ok(Some(Values::Numeric {
            values: vec![f64::NAN; total],
            integer: false,
        })),
        t if t.is_temporal() => Ok(None),
        _ => Err(unsupported()),
    }
}

#[derive(Default)]
struct Dictionary {
    index: HashMap<String, u32>,
    values: Vec<String>,
}

impl Dictionary {
    fn code(&mut self, v: &str) -> u32 {
        if let Some(&c) = self.index.get(v) {
            return c;
        }
        let c = self.values.len() as u32;
        self.index.insert(v.to_owned(), c);
        self.values.push(v.to_owned());
        c
    }
}

/// pandas' default missing-value markers for `read_csv`.
const NA_VALUES: [&str; 19] = [
    "", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN",
    "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null",
];

fn is_na(s: &str) -> bool {
    NA_VALUES.contains(&s)
}

/// How a CSV column parses so far.
struct CsvColumn {
    values: Vec<f64>,
    integer: bool,
    has_na: bool,
    /// A value that is not a number was seen: the column is text (read again as such).
    text: bool,
    boolean: bool,
    bool_codes: Vec<u32>,
}

fn parse_bool(s: &str) -> Option<bool> {
    match s {
        "True" | "TRUE" | "true" => Some(true),
        "False" | "FALSE" | "false" => Some(false),
        _ => None,
    }
}

fn parse_float(s: &str) -> Option<f64> {
    let t = s.trim();
    if let Ok(v) = t.parse::<f64>() {
        return Some(v);
    }
    None
}

fn csv_batches(
    path: &Path,
    schema: Arc<Schema>,
    projection: Option<Vec<usize>>,
) -> Result<impl Iterator<Item = Result<RecordBatch>>> {
    let file = open(path)?;
    let mut builder = csv::ReaderBuilder::new(schema)
        .with_header(true)
        .with_batch_size(65536);
    if let Some(p) = projection {
        builder = builder.with_projection(p);
    }
    let reader = builder
        .build(BufReader::new(file))
        .map_err(|e| read_err(path, e))?;
    let path = path.to_owned();
    Ok(reader.map(move |b| b.map_err(|e| read_err(&path, e))))
}

fn read_csv(path: &Path) -> Result<Dataset> {
    let format = csv::reader::Format::default().with_header(true);
    let (inferred, _) = format
        .infer_schema(BufReader::new(open(path)?), Some(1))
        .map_err(|e| read_err(path, e))?;
    let names: Vec<String> = inferred.fields().iter().map(|f| f.name().clone()).collect();
    let schema = Arc::new(Schema::new(
        names
            .iter()
            .map(|n| Field::new(n, DataType::Utf8, true))
            .collect::<Vec<_>>(),
    ));
    let mut columns: Vec<CsvColumn> = names
        .iter()
        .map(|_| CsvColumn {
            values: Vec::new(),
            integer: true,
            has_na: false,
            text: false,
            boolean: true,
            bool_codes: Vec::new(),
        })
        .collect();
    let mut rows = 0usize;
    for batch in csv_batches(path, schema.clone(), None)? {
        let batch = batch?;
        rows += batch.num_rows();
        for (col, array) in columns.iter_mut().zip(batch.columns()) {
            if col.text {
                continue;
            }
            let strings = array.as_string::<i32>();
            for v in strings.iter() {
                let s = v.unwrap_or("");
                if is_na(s) {
                    col.has_na = true;
                    col.values.push(f64::NAN);
                    col.bool_codes.push(MISSING);
                    continue;
                }
                if col.boolean {
                    match parse_bool(s) {
                        Some(b) => {
                            col.bool_codes.push(b as u32);
                            col.values.push(f64::NAN);
                            continue;
                        }
                        None => {
                            if col
                                .values
                                .iter()
                                .zip(&col.bool_codes)
                                .any(|(_, c)| *c != MISSING)
                            {
                                col.text = true;
                                break;
                            }
                            col.boolean = false;
                        }
                    }
                }
                match parse_float(s) {
                    Some(f) => {
                        if col.integer && s.trim().parse::<i64>().is_err() {
                            col.integer = false;
                        }
                        col.values.push(f);
                    }
                    None => {
                        col.text = true;
                        break;
                    }
                }
            }
        }
    }
    let text_columns: Vec<usize> = columns
        .iter()
        .enumerate()
        .filter(|(_, c)| c.text)
        .map(|(i, _)| i)
        .collect();
    let mut loaded: HashMap<String, Values> = HashMap::new();
    if !text_columns.is_empty() {
        let mut dicts: Vec<(Dictionary, Vec<u32>)> = text_columns
            .iter()
            .map(|_| (Dictionary::default(), Vec::with_capacity(rows)))
            .collect();
        for batch in csv_batches(path, schema.clone(), Some(text_columns.clone()))? {
            let batch = batch?;
            for ((dict, codes), array) in dicts.iter_mut().zip(batch.columns()) {
                for v in array.as_string::<i32>().iter() {
                    let s = v.unwrap_or("");
                    codes.push(if is_na(s) { MISSING } else { dict.code(s) });
                }
            }
        }
        for (&i, (dict, codes)) in text_columns.iter().zip(dicts) {
            loaded.insert(
                names[i].clone(),
                Values::Text {
                    codes,
                    dictionary: dict.values,
                    boolean: false,
                },
            );
        }
    }
    for (name, col) in names.iter().zip(columns) {
        if col.text {
            continue;
        }
        let all_missing = !col.bool_codes.iter().any(|c| *c != MISSING);
        let values = if col.boolean && !all_missing {
            Values::Text {
                codes: col.bool_codes,
                dictionary: vec!["False".into(), "True".into()],
                boolean: true,
            }
        } else {
            Values::Numeric {
                integer: col.integer && !col.has_na && !col.values.is_empty(),
                values: col.values,
            }
        };
        loaded.insert(name.clone(), values);
    }
    Ok(Dataset {
        path: path.to_owned(),
        names,
        rows,
        storage: Storage::Loaded(loaded),
    })
}
