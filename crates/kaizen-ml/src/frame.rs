//! The input of preprocessing: named columns that are numbers or text, converted from an Arrow
//! table.

use kaizen_data::Table;
use kaizen_data::arrow::array::{Array, ArrayRef, AsArray};
use kaizen_data::arrow::compute::cast;
use kaizen_data::arrow::datatypes::{DataType, TimeUnit};

use crate::error::{MlError, Result};

/// One column: numbers (missing = NaN) or text (missing = `None`).
#[derive(Debug, Clone, PartialEq)]
pub enum ColumnData {
    Numeric(Vec<f64>),
    Text(Vec<Option<String>>),
}

impl ColumnData {
    pub fn len(&self) -> usize {
        match self {
            ColumnData::Numeric(v) => v.len(),
            ColumnData::Text(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn take(&self, rows: &[usize]) -> ColumnData {
        match self {
            ColumnData::Numeric(v) => ColumnData::Numeric(rows.iter().map(|&i| v[i]).collect()),
            ColumnData::Text(v) => ColumnData::Text(rows.iter().map(|&i| v[i].clone()).collect()),
        }
    }
}

/// Named columns of equal length.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Frame {
    pub names: Vec<String>,
    pub columns: Vec<ColumnData>,
}

const MS_PER_DAY: f64 = 86_400_000.0;

impl Frame {
    /// A frame from `(name, column)` pairs.
    ///
    /// # Panics
    /// When the columns differ in length.
    pub fn new(columns: Vec<(String, ColumnData)>) -> Frame {
        let rows = columns.first().map_or(0, |(_, c)| c.len());
        assert!(
            columns.iter().all(|(_, c)| c.len() == rows),
            "columns differ in length"
        );
        let (names, columns) = columns.into_iter().unzip();
        Frame { names, columns }
    }

    /// Every column of `table`: integers, floats, decimals and booleans as numbers (nulls as NaN),
    /// dates and timestamps as days since 1970-01-01, strings as text.
    pub fn from_table(table: &Table) -> Result<Frame> {
        let batch = table.concat()?;
        let mut columns = Vec::with_capacity(batch.num_columns());
        for (field, array) in batch.schema().fields().iter().zip(batch.columns()) {
            let data = convert(array).map_err(|message| {
                MlError::invalid(format!("column `{}`: {message}", field.name()))
            })?;
            columns.push((field.name().clone(), data));
        }
        Ok(Frame::new(columns))
    }

    pub fn rows(&self) -> usize {
        self.columns.first().map_or(0, ColumnData::len)
    }

    /// A column by name.
    pub fn column(&self, name: &str) -> Option<&ColumnData> {
        self.names
            .iter()
            .position(|n| n == name)
            .map(|i| &self.columns[i])
    }

    /// A numeric column by name; an error names the column when it is missing or text.
    pub fn numeric(&self, name: &str) -> Result<&[f64]> {
        match self.column(name) {
            Some(ColumnData::Numeric(v)) => Ok(v),
            Some(ColumnData::Text(_)) => Err(MlError::invalid(format!(
                "column `{name}` is text, a number was expected"
            ))),
            None => Err(self.missing(name)),
        }
    }

    pub(crate) fn missing(&self, name: &str) -> MlError {
        MlError::invalid(format!(
            "no column `{name}` (columns: {})",
            self.names.join(", ")
        ))
    }

    /// The rows at `rows`, in that order.
    pub fn take_rows(&self, rows: &[usize]) -> Frame {
        Frame {
            names: self.names.clone(),
            columns: self.columns.iter().map(|c| c.take(rows)).collect(),
        }
    }

    /// The frame without the column `name` (the target, usually), and that column.
    pub fn split_off(&self, name: &str) -> Result<(Frame, ColumnData)> {
        let index = self
            .names
            .iter()
            .position(|n| n == name)
            .ok_or_else(|| self.missing(name))?;
        let mut rest = self.clone();
        rest.names.remove(index);
        let column = rest.columns.remove(index);
        Ok((rest, column))
    }
}

fn floats(array: &ArrayRef) -> Result<Vec<f64>, String> {
    let values = cast(array, &DataType::Float64).map_err(|e| e.to_string())?;
    let values = values.as_primitive::<kaizen_data::arrow::datatypes::Float64Type>();
    Ok((0..values.len())
        .map(|i| {
            if values.is_null(i) {
                f64::NAN
            } else {
                values.value(i)
            }
        })
        .collect())
}

fn convert(array: &ArrayRef) -> Result<ColumnData, String> {
    use DataType::*;
    match array.data_type() {
        Int8 | Int16 | Int32 | Int64 | UInt8 | UInt16 | UInt32 | UInt64 | Float16 | Float32
        | Float64 | Decimal128(..) | Decimal256(..) | Boolean | Null => {
            floats(array).map(ColumnData::Numeric)
        }
        Date32 => {
            let days = cast(array, &Int32).map_err(|e| e.to_string())?;
            floats(&days).map(ColumnData::Numeric)
        }
        Date64 => {
            let ms = cast(array, &Int64).map_err(|e| e.to_string())?;
            Ok(ColumnData::Numeric(
                floats(&ms)?.into_iter().map(|v| v / MS_PER_DAY).collect(),
            ))
        }
        Timestamp(unit, _) => {
            let per_day = match unit {
                TimeUnit::Second => MS_PER_DAY / 1e3,
                TimeUnit::Millisecond => MS_PER_DAY,
                TimeUnit::Microsecond => MS_PER_DAY * 1e3,
                TimeUnit::Nanosecond => MS_PER_DAY * 1e6,
            };
            let ticks = cast(array, &Int64).map_err(|e| e.to_string())?;
            Ok(ColumnData::Numeric(
                floats(&ticks)?.into_iter().map(|v| v / per_day).collect(),
            ))
        }
        Utf8 | LargeUtf8 | Utf8View | Dictionary(..) => {
            let strings = cast(array, &Utf8).map_err(|e| {
                format!(
                    "cannot read {} as text: {e}",
                    kaizen_data::type_name(array.data_type())
                )
            })?;
            let strings = strings.as_string::<i32>();
            Ok(ColumnData::Text(
                (0..strings.len())
                    .map(|i| (!strings.is_null(i)).then(|| strings.value(i).to_string()))
                    .collect(),
            ))
        }
        other => Err(format!(
            "type {} is neither a number, a date nor text",
            kaizen_data::type_name(other)
        )),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use kaizen_data::arrow::array::{
        BooleanArray, Date32Array, Decimal128Array, Float64Array, Int64Array, ListArray,
        RecordBatch, StringArray, TimestampSecondArray,
    };
    use kaizen_data::arrow::datatypes::{Field, Int32Type, Schema};

    use super::*;

    fn table(columns: Vec<(&str, ArrayRef)>) -> Table {
        let schema = Schema::new(
            columns
                .iter()
                .map(|(n, a)| Field::new(*n, a.data_type().clone(), true))
                .collect::<Vec<_>>(),
        );
        Table::from_batch(
            RecordBatch::try_new(
                Arc::new(schema),
                columns.into_iter().map(|(_, a)| a).collect(),
            )
            .unwrap(),
        )
    }

    #[test]
    fn from_table_converts_every_kind() {
        let t = table(vec![
            (
                "i",
                Arc::new(Int64Array::from(vec![Some(1), None, Some(3)])),
            ),
            ("f", Arc::new(Float64Array::from(vec![0.5, 1.5, f64::NAN]))),
            (
                "d",
                Arc::new(
                    Decimal128Array::from(vec![Some(1234), Some(-5), None])
                        .with_precision_and_scale(10, 2)
                        .unwrap(),
                ),
            ),
            (
                "b",
                Arc::new(BooleanArray::from(vec![Some(true), Some(false), None])),
            ),
            ("day", Arc::new(Date32Array::from(vec![0, 1, 19_000]))),
            (
                "ts",
                Arc::new(TimestampSecondArray::from(vec![0, 43_200, 86_400 * 3])),
            ),
            (
                "s",
                Arc::new(StringArray::from(vec![Some("red"), None, Some("blue")])),
            ),
        ]);
        let frame = Frame::from_table(&t).unwrap();
        assert_eq!(frame.rows(), 3);
        let num = |name| frame.numeric(name).unwrap().to_vec();
        assert_eq!(num("i")[..1], [1.0]);
        assert!(num("i")[1].is_nan());
        assert_eq!(num("d")[..2], [12.34, -0.05]);
        assert_eq!(num("b")[..2], [1.0, 0.0]);
        assert!(num("b")[2].is_nan());
        assert_eq!(num("day"), vec![0.0, 1.0, 19_000.0]);
        assert_eq!(num("ts"), vec![0.0, 0.5, 3.0]);
        assert_eq!(
            frame.column("s"),
            Some(&ColumnData::Text(vec![
                Some("red".into()),
                None,
                Some("blue".into())
            ]))
        );
        let err = frame.numeric("s").unwrap_err().to_string();
        assert!(err.contains("`s`"), "{err}");
        let (rest, target) = frame.split_off("f").unwrap();
        assert_eq!(rest.names.len(), 6);
        assert_eq!(target.len(), 3);
        let taken = frame.take_rows(&[2, 0]);
        assert_eq!(taken.numeric("day").unwrap(), &[19_000.0, 0.0]);
    }

    #[test]
    fn from_table_names_the_column_it_cannot_read() {
        let list = ListArray::from_iter_primitive::<Int32Type, _, _>(vec![Some(vec![Some(1)])]);
        let t = table(vec![("tags", Arc::new(list))]);
        let err = Frame::from_table(&t).unwrap_err().to_string();
        assert!(err.contains("column `tags`"), "{err}");
    }
}
