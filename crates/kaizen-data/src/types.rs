//! Type names as written in specs, and conversions of Arrow cells to JSON and text.

use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::datatypes::{
    DataType, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type, TimeUnit,
    UInt8Type, UInt16Type, UInt32Type, UInt64Type,
};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use serde_json::Value;

use crate::{DataError, Result};

/// Parses a type name as written in a spec: short names (`int64`, `float64`, `utf8`/`string`,
/// `bool`, `date32`/`date`, `timestamp` = microseconds, `timestamp_ms`, ...) or anything Arrow's
/// own `DataType` parser accepts (`Timestamp(Nanosecond, None)`).
pub fn parse_type(column: &str, name: &str) -> Result<DataType> {
    let t = match name.trim().to_ascii_lowercase().as_str() {
        "int8" => DataType::Int8,
        "int16" => DataType::Int16,
        "int32" | "int" => DataType::Int32,
        "int64" | "long" | "bigint" => DataType::Int64,
        "uint8" => DataType::UInt8,
        "uint16" => DataType::UInt16,
        "uint32" => DataType::UInt32,
        "uint64" => DataType::UInt64,
        "float32" | "float" => DataType::Float32,
        "float64" | "double" => DataType::Float64,
        "bool" | "boolean" => DataType::Boolean,
        "utf8" | "string" | "str" | "text" => DataType::Utf8,
        "date32" | "date" => DataType::Date32,
        "date64" => DataType::Date64,
        "timestamp" | "timestamp_us" => DataType::Timestamp(TimeUnit::Microsecond, None),
        "timestamp_s" => DataType::Timestamp(TimeUnit::Second, None),
        "timestamp_ms" => DataType::Timestamp(TimeUnit::Millisecond, None),
        "timestamp_ns" => DataType::Timestamp(TimeUnit::Nanosecond, None),
        _ => name
            .trim()
            .parse::<DataType>()
            .map_err(|_| DataError::UnknownType {
                column: column.to_owned(),
                type_name: name.to_owned(),
            })?,
    };
    Ok(t)
}

/// Short lowercase name of a type, the inverse of [`parse_type`] where one exists.
pub fn type_name(t: &DataType) -> String {
    match t {
        DataType::Int8 => "int8".into(),
        DataType::Int16 => "int16".into(),
        DataType::Int32 => "int32".into(),
        DataType::Int64 => "int64".into(),
        DataType::UInt8 => "uint8".into(),
        DataType::UInt16 => "uint16".into(),
        DataType::UInt32 => "uint32".into(),
        DataType::UInt64 => "uint64".into(),
        DataType::Float32 => "float32".into(),
        DataType::Float64 => "float64".into(),
        DataType::Boolean => "bool".into(),
        DataType::Utf8 => "utf8".into(),
        DataType::Date32 => "date32".into(),
        DataType::Date64 => "date64".into(),
        DataType::Timestamp(TimeUnit::Microsecond, None) => "timestamp".into(),
        DataType::Timestamp(TimeUnit::Second, None) => "timestamp_s".into(),
        DataType::Timestamp(TimeUnit::Millisecond, None) => "timestamp_ms".into(),
        DataType::Timestamp(TimeUnit::Nanosecond, None) => "timestamp_ns".into(),
        other => other.to_string(),
    }
}

pub(crate) fn is_numeric(t: &DataType) -> bool {
    t.is_numeric()
}

pub(crate) fn is_temporal(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Date32 | DataType::Date64 | DataType::Timestamp(_, _)
    )
}

/// Text of every cell of `array` (None for null), in Arrow's display format.
pub(crate) fn display_strings(array: &dyn Array) -> Result<Vec<Option<String>>> {
    let options = FormatOptions::default();
    let fmt =
        ArrayFormatter::try_new(array, &options).map_err(DataError::arrow("formatting values"))?;
    Ok((0..array.len())
        .map(|i| array.is_valid(i).then(|| fmt.value(i).to_string()))
        .collect())
}

fn float_json(v: f64) -> Value {
    serde_json::Number::from_f64(v)
        .map(Value::Number)
        .unwrap_or_else(|| Value::String(v.to_string()))
}

/// One cell as a JSON value: numbers, booleans and strings natively, everything else as text.
pub(crate) fn cell_json(array: &dyn Array, i: usize) -> Value {
    if array.is_null(i) {
        return Value::Null;
    }
    match array.data_type() {
        DataType::Boolean => Value::Bool(array.as_boolean().value(i)),
        DataType::Int8 => array.as_primitive::<Int8Type>().value(i).into(),
        DataType::Int16 => array.as_primitive::<Int16Type>().value(i).into(),
        DataType::Int32 => array.as_primitive::<Int32Type>().value(i).into(),
        DataType::Int64 => array.as_primitive::<Int64Type>().value(i).into(),
        DataType::UInt8 => array.as_primitive::<UInt8Type>().value(i).into(),
        DataType::UInt16 => array.as_primitive::<UInt16Type>().value(i).into(),
        DataType::UInt32 => array.as_primitive::<UInt32Type>().value(i).into(),
        DataType::UInt64 => array.as_primitive::<UInt64Type>().value(i).into(),
        DataType::Float32 => float_json(array.as_primitive::<Float32Type>().value(i) as f64),
        DataType::Float64 => float_json(array.as_primitive::<Float64Type>().value(i)),
        DataType::Utf8 => Value::String(array.as_string::<i32>().value(i).to_owned()),
        DataType::LargeUtf8 => Value::String(array.as_string::<i64>().value(i).to_owned()),
        DataType::Utf8View => Value::String(array.as_string_view().value(i).to_owned()),
        _ => {
            let options = FormatOptions::default();
            match ArrayFormatter::try_new(array, &options) {
                Ok(f) => Value::String(f.value(i).to_string()),
                Err(_) => Value::Null,
            }
        }
    }
}

/// Row `i` of `batch` as a JSON object.
pub(crate) fn row_json(batch: &RecordBatch, i: usize) -> Value {
    let mut map = serde_json::Map::new();
    for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
        map.insert(field.name().clone(), cell_json(column.as_ref(), i));
    }
    Value::Object(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_short_and_arrow_names() {
        assert_eq!(parse_type("a", "int64").unwrap(), DataType::Int64);
        assert_eq!(parse_type("a", "Date32").unwrap(), DataType::Date32);
        assert_eq!(
            parse_type("a", "Timestamp(Nanosecond, None)").unwrap(),
            DataType::Timestamp(TimeUnit::Nanosecond, None)
        );
        let err = parse_type("units", "integer64").unwrap_err();
        assert!(err.to_string().contains("`units`"), "{err}");
        assert_eq!(type_name(&DataType::Date32), "date32");
    }
}
