//! The bodies of `POST /invocations` in MLflow's scoring protocol, checked against the model's
//! input columns into a [`Frame`].
//!
//! JSON bodies hold exactly one of
//! - `{"dataframe_split": {"columns": [...], "data": [[...], ...]}}` (`index` is ignored),
//! - `{"dataframe_records": [{"col": value, ...}, ...]}` (a key absent from a record is null),
//! - `{"instances": ...}` or `{"inputs": ...}`: a list of records, a list of lists (values in
//!   the model's column order), a list of values (a model of one column), or an object of
//!   columns to lists,
//!
//! and optionally `"params": {"probabilities": true}`. CSV bodies (`text/csv`) have a header
//! row; an empty cell is missing. A missing column, an unknown column or a value of the wrong
//! type is refused naming the column (and the row, counted from 1).

use kaizen_ml::{ColumnData, Frame};
use serde_json::Value;

use crate::error::{Result, ServeError};
use crate::model::{InputColumn, InputKind};

/// A parsed request.
#[derive(Debug, Clone, PartialEq)]
pub struct Parsed {
    pub frame: Frame,
    /// `params.probabilities`: answer the class probabilities too.
    pub probabilities: bool,
}

/// Named columns of JSON values, before they are checked.
type Columns = Vec<(String, Vec<Value>)>;

const FORMATS: [&str; 4] = [
    "dataframe_split",
    "dataframe_records",
    "instances",
    "inputs",
];

fn bad(message: impl Into<String>) -> ServeError {
    ServeError::bad_request(message)
}

/// A JSON body.
pub fn parse_json(body: &[u8], inputs: &[InputColumn]) -> Result<Parsed> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| bad(format!("malformed JSON: {e}")))?;
    let Value::Object(map) = value else {
        return Err(bad(format!(
            "the body must be a JSON object with one of the keys {}",
            FORMATS.join(", ")
        )));
    };
    let mut probabilities = false;
    let mut found = None;
    for (key, value) in map {
        match key.as_str() {
            "params" => probabilities = parse_params(&value)?,
            k if FORMATS.contains(&k) => {
                if let Some((other, _)) = &found {
                    return Err(bad(format!(
                        "the body has both `{other}` and `{k}`; send one format"
                    )));
                }
                found = Some((key, value));
            }
            _ => {
                return Err(bad(format!(
                    "unknown key `{key}`; the body takes one of {} (and `params`)",
                    FORMATS.join(", ")
                )));
            }
        }
    }
    let Some((format, value)) = found else {
        return Err(bad(format!(
            "the body has none of the keys {}",
            FORMATS.join(", ")
        )));
    };
    let columns = match format.as_str() {
        "dataframe_split" => split(value)?,
        "dataframe_records" => match value {
            Value::Array(rows) => records(&format, rows)?,
            _ => return Err(bad("`dataframe_records` must be a list of objects")),
        },
        _ => instances(&format, value, inputs)?,
    };
    Ok(Parsed {
        frame: frame_of(columns, inputs)?,
        probabilities,
    })
}

fn parse_params(value: &Value) -> Result<bool> {
    let Value::Object(params) = value else {
        return Err(bad("`params` must be an object"));
    };
    let mut probabilities = false;
    for (k, v) in params {
        match (k.as_str(), v) {
            ("probabilities", Value::Bool(b)) => probabilities = *b,
            ("probabilities", _) => {
                return Err(bad("`params.probabilities` must be true or false"));
            }
            _ => {
                return Err(bad(format!(
                    "unknown param `{k}`; the model takes `probabilities`"
                )));
            }
        }
    }
    Ok(probabilities)
}

fn split(value: Value) -> Result<Columns> {
    let Value::Object(mut map) = value else {
        return Err(bad(
            "`dataframe_split` must be an object with `columns` and `data`",
        ));
    };
    let names: Vec<String> = match map.remove("columns") {
        Some(Value::Array(c)) => c
            .into_iter()
            .map(|n| match n {
                Value::String(s) => Ok(s),
                other => Err(bad(format!(
                    "`dataframe_split.columns` holds {other}, not a column name"
                ))),
            })
            .collect::<Result<_>>()?,
        _ => {
            return Err(bad(
                "`dataframe_split.columns` must be a list of column names",
            ));
        }
    };
    let Some(Value::Array(data)) = map.remove("data") else {
        return Err(bad("`dataframe_split.data` must be a list of rows"));
    };
    let mut columns: Columns = names.into_iter().map(|n| (n, Vec::new())).collect();
    for (i, row) in data.into_iter().enumerate() {
        let Value::Array(values) = row else {
            return Err(bad(format!(
                "`dataframe_split.data` row {}: not a list",
                i + 1
            )));
        };
        if values.len() != columns.len() {
            return Err(bad(format!(
                "`dataframe_split.data` row {} has {} values for {} columns",
                i + 1,
                values.len(),
                columns.len()
            )));
        }
        for (column, v) in columns.iter_mut().zip(values) {
            column.1.push(v);
        }
    }
    Ok(columns)
}

fn records(format: &str, rows: Vec<Value>) -> Result<Columns> {
    let mut columns: Columns = Vec::new();
    for (i, row) in rows.into_iter().enumerate() {
        let Value::Object(record) = row else {
            return Err(bad(format!("`{format}` row {}: not an object", i + 1)));
        };
        for (name, v) in record {
            let at = match columns.iter().position(|(n, _)| *n == name) {
                Some(at) => at,
                None => {
                    columns.push((name, vec![Value::Null; i]));
                    columns.len() - 1
                }
            };
            columns[at].1.push(v);
        }
        for column in &mut columns {
            column.1.resize(i + 1, Value::Null);
        }
    }
    Ok(columns)
}

fn instances(format: &str, value: Value, inputs: &[InputColumn]) -> Result<Columns> {
    match value {
        Value::Object(map) => map
            .into_iter()
            .map(|(name, v)| match v {
                Value::Array(values) => Ok((name, values)),
                _ => Err(bad(format!("`{format}.{name}` must be a list of values"))),
            })
            .collect(),
        Value::Array(rows) => match rows.first() {
            None => Ok(inputs
                .iter()
                .map(|c| (c.name.clone(), Vec::new()))
                .collect()),
            Some(Value::Object(_)) => records(format, rows),
            Some(Value::Array(_)) => {
                let mut columns: Columns = inputs
                    .iter()
                    .map(|c| (c.name.clone(), Vec::new()))
                    .collect();
                for (i, row) in rows.into_iter().enumerate() {
                    let Value::Array(values) = row else {
                        return Err(bad(format!("`{format}` row {}: not a list", i + 1)));
                    };
                    if values.len() != columns.len() {
                        return Err(bad(format!(
                            "`{format}` row {} has {} values; the model takes {} columns ({})",
                            i + 1,
                            values.len(),
                            columns.len(),
                            names(inputs)
                        )));
                    }
                    for (column, v) in columns.iter_mut().zip(values) {
                        column.1.push(v);
                    }
                }
                Ok(columns)
            }
            Some(_) if inputs.len() == 1 => Ok(vec![(inputs[0].name.clone(), rows)]),
            Some(_) => Err(bad(format!(
                "`{format}` is a list of values, but the model takes {} columns ({}); send \
                 records or lists",
                inputs.len(),
                names(inputs)
            ))),
        },
        _ => Err(bad(format!(
            "`{format}` must be a list of records or lists, or an object of columns"
        ))),
    }
}

fn names(inputs: &[InputColumn]) -> String {
    inputs
        .iter()
        .map(|c| c.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// A CSV body with a header row.
pub fn parse_csv(body: &[u8], inputs: &[InputColumn]) -> Result<Frame> {
    let text = std::str::from_utf8(body).map_err(|_| bad("the CSV body is not UTF-8"))?;
    let mut rows = csv_rows(text)?.into_iter();
    let Some(header) = rows.next() else {
        return Err(bad("the CSV body is empty; it needs a header row"));
    };
    let kinds: Vec<Option<InputKind>> = header
        .iter()
        .map(|h| inputs.iter().find(|c| c.name == *h).map(|c| c.kind))
        .collect();
    let mut columns: Columns = header.iter().map(|h| (h.clone(), Vec::new())).collect();
    for (i, row) in rows.enumerate() {
        if row.len() != columns.len() {
            return Err(bad(format!(
                "CSV row {} has {} fields for {} columns",
                i + 1,
                row.len(),
                columns.len()
            )));
        }
        for ((column, kind), cell) in columns.iter_mut().zip(&kinds).zip(row) {
            let v = if cell.is_empty() {
                Value::Null
            } else if *kind == Some(InputKind::Text) {
                Value::String(cell)
            } else {
                match cell.trim().parse::<f64>() {
                    Ok(x) => serde_json::Number::from_f64(x).map_or(Value::Null, Value::Number),
                    Err(_) => Value::String(cell),
                }
            };
            column.1.push(v);
        }
    }
    frame_of(columns, inputs)
}

/// Records of a CSV text (RFC 4180 quoting); blank lines are skipped.
fn csv_rows(text: &str) -> Result<Vec<Vec<String>>> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if quoted {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => quoted = false,
                c => field.push(c),
            }
            continue;
        }
        match c {
            '"' => quoted = true,
            ',' => row.push(std::mem::take(&mut field)),
            '\r' => {}
            '\n' => {
                row.push(std::mem::take(&mut field));
                if !(row.len() == 1 && row[0].is_empty()) {
                    rows.push(std::mem::take(&mut row));
                }
                row.clear();
            }
            c => field.push(c),
        }
    }
    if quoted {
        return Err(bad("the CSV body ends inside a quoted field"));
    }
    row.push(field);
    if !(row.len() == 1 && row[0].is_empty()) {
        rows.push(row);
    }
    Ok(rows)
}

/// The model's columns from `columns`, in the model's order, with their values checked.
fn frame_of(columns: Columns, inputs: &[InputColumn]) -> Result<Frame> {
    for (i, (name, _)) in columns.iter().enumerate() {
        if !inputs.iter().any(|c| c.name == *name) {
            return Err(bad(format!(
                "unknown column `{name}`; the model takes: {}",
                names(inputs)
            )));
        }
        if columns[..i].iter().any(|(n, _)| n == name) {
            return Err(bad(format!("column `{name}` is given twice")));
        }
    }
    let mut columns = columns;
    let mut out = Vec::with_capacity(inputs.len());
    for input in inputs {
        let Some(at) = columns.iter().position(|(n, _)| *n == input.name) else {
            return Err(bad(format!(
                "missing column `{}`; the model takes: {}",
                input.name,
                names(inputs)
            )));
        };
        let (name, values) = columns.swap_remove(at);
        let data = column_of(&name, input.kind, values)?;
        out.push((name, data));
    }
    Ok(Frame::new(out))
}

fn wrong(name: &str, row: usize, expected: &str, got: &Value) -> ServeError {
    bad(format!(
        "column `{name}`, row {}: expected {expected}, got {got}",
        row + 1
    ))
}

fn column_of(name: &str, kind: InputKind, values: Vec<Value>) -> Result<ColumnData> {
    let number = |i: usize, v: &Value| match v {
        Value::Null => Ok(f64::NAN),
        Value::Number(n) => Ok(n.as_f64().unwrap_or(f64::NAN)),
        other => Err(wrong(name, i, "a number", other)),
    };
    match kind {
        InputKind::Number => Ok(ColumnData::Numeric(
            values
                .iter()
                .enumerate()
                .map(|(i, v)| number(i, v))
                .collect::<Result<_>>()?,
        )),
        InputKind::Text => Ok(ColumnData::Text(
            values
                .into_iter()
                .enumerate()
                .map(|(i, v)| match v {
                    Value::Null => Ok(None),
                    Value::String(s) => Ok(Some(s)),
                    other => Err(wrong(name, i, "a string", &other)),
                })
                .collect::<Result<_>>()?,
        )),
        InputKind::Category => {
            if values.iter().all(|v| v.is_number() || v.is_null()) {
                return Ok(ColumnData::Numeric(
                    values
                        .iter()
                        .enumerate()
                        .map(|(i, v)| number(i, v))
                        .collect::<Result<_>>()?,
                ));
            }
            Ok(ColumnData::Text(
                values
                    .into_iter()
                    .enumerate()
                    .map(|(i, v)| match v {
                        Value::Null => Ok(None),
                        Value::String(s) => Ok(Some(s)),
                        // As the preprocessing names numeric categories: integers without `.0`.
                        Value::Number(n) => Ok(Some(match (n.as_i64(), n.as_f64()) {
                            (Some(k), _) => k.to_string(),
                            (None, Some(x)) if x.fract() == 0.0 && x.abs() < 1e15 => {
                                (x as i64).to_string()
                            }
                            _ => n.to_string(),
                        })),
                        other => Err(wrong(name, i, "a string or a number", &other)),
                    })
                    .collect::<Result<_>>()?,
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs() -> Vec<InputColumn> {
        vec![
            InputColumn {
                name: "a".into(),
                kind: InputKind::Number,
            },
            InputColumn {
                name: "b".into(),
                kind: InputKind::Text,
            },
        ]
    }

    fn expected() -> Frame {
        Frame::new(vec![
            ("a".into(), ColumnData::Numeric(vec![1.0, 2.5])),
            ("b".into(), ColumnData::Text(vec![Some("x".into()), None])),
        ])
    }

    /// Parses `body` and checks it gives the expected two rows.
    fn check(body: &str) {
        let parsed =
            parse_json(body.as_bytes(), &inputs()).unwrap_or_else(|e| panic!("{body}: {e}"));
        assert_eq!(parsed.frame, expected(), "{body}");
    }

    fn error(body: &str) -> String {
        match parse_json(body.as_bytes(), &inputs()) {
            Ok(p) => panic!("{body} parsed: {p:?}"),
            Err(e) => {
                assert!(matches!(e, ServeError::BadRequest(_)), "{e:?}");
                e.to_string()
            }
        }
    }

    #[test]
    fn every_json_format() {
        check(r#"{"dataframe_split": {"columns": ["b", "a"], "data": [["x", 1], [null, 2.5]]}}"#);
        check(
            r#"{"dataframe_split": {"index": [0, 1], "columns": ["a", "b"], "data": [[1, "x"], [2.5, null]]}}"#,
        );
        check(r#"{"dataframe_records": [{"a": 1, "b": "x"}, {"a": 2.5}]}"#);
        check(r#"{"instances": [{"a": 1, "b": "x"}, {"b": null, "a": 2.5}]}"#);
        check(r#"{"instances": [[1, "x"], [2.5, null]]}"#);
        check(r#"{"inputs": [[1, "x"], [2.5, null]]}"#);
        check(r#"{"inputs": {"a": [1, 2.5], "b": ["x", null]}}"#);
        check(r#"{"inputs": [{"a": 1, "b": "x"}, {"a": 2.5, "b": null}], "params": {}}"#);
    }

    #[test]
    fn params_ask_for_probabilities() {
        let body = r#"{"instances": [[1, "x"]], "params": {"probabilities": true}}"#;
        assert!(
            parse_json(body.as_bytes(), &inputs())
                .unwrap()
                .probabilities
        );
        let body = r#"{"instances": [[1, "x"]]}"#;
        assert!(
            !parse_json(body.as_bytes(), &inputs())
                .unwrap()
                .probabilities
        );
        assert!(
            error(r#"{"instances": [], "params": {"probabilities": 1}}"#).contains("true or false")
        );
        assert!(
            error(r#"{"instances": [], "params": {"temperature": 1}}"#).contains("`temperature`")
        );
    }

    #[test]
    fn a_list_of_values_for_a_model_of_one_column() {
        let one = vec![InputColumn {
            name: "a".into(),
            kind: InputKind::Number,
        }];
        let parsed = parse_json(br#"{"instances": [1, 2]}"#, &one).unwrap();
        assert_eq!(parsed.frame.numeric("a").unwrap(), &[1.0, 2.0]);
        assert!(error(r#"{"instances": [1, 2]}"#).contains("2 columns"));
    }

    #[test]
    fn csv_with_a_header() {
        let frame = parse_csv(b"b,a\r\nx,1\n\"\",2.5\n\n", &inputs()).unwrap();
        assert_eq!(frame, expected());
        let quoted = parse_csv(b"a,b\n1,\"say \"\"hi\"\", ok\"\n", &inputs()).unwrap();
        assert_eq!(
            quoted.column("b"),
            Some(&ColumnData::Text(vec![Some("say \"hi\", ok".into())]))
        );
        let e = parse_csv(b"a,b\nx,y\n", &inputs()).unwrap_err().to_string();
        assert!(
            e.contains("column `a`, row 1") && e.contains("a number"),
            "{e}"
        );
        let e = parse_csv(b"a\n1\n", &inputs()).unwrap_err().to_string();
        assert!(e.contains("missing column `b`"), "{e}");
        let e = parse_csv(b"a,b\n1\n", &inputs()).unwrap_err().to_string();
        assert!(e.contains("row 1 has 1 fields"), "{e}");
        assert!(parse_csv(b"", &inputs()).is_err());
    }

    #[test]
    fn errors_name_the_column_and_the_row() {
        let e = error(r#"{"dataframe_records": [{"a": 1}]}"#);
        assert!(e.contains("missing column `b`"), "{e}");
        let e = error(r#"{"dataframe_records": [{"a": 1, "b": "x", "c": 3}]}"#);
        assert!(e.contains("unknown column `c`"), "{e}");
        let e = error(
            r#"{"dataframe_split": {"columns": ["a", "b"], "data": [[1, "x"], ["two", "y"]]}}"#,
        );
        assert!(e.contains("column `a`, row 2: expected a number"), "{e}");
        let e = error(r#"{"instances": [[1, 2]]}"#);
        assert!(e.contains("column `b`, row 1: expected a string"), "{e}");
        let e = error(r#"{"dataframe_split": {"columns": ["a", "b"], "data": [[1]]}}"#);
        assert!(e.contains("row 1 has 1 values for 2 columns"), "{e}");
        let e = error(r#"{"inputs": {"a": [1], "a2": 2}}"#);
        assert!(e.contains("`inputs.a2` must be a list"), "{e}");
    }

    #[test]
    fn errors_of_the_body_itself() {
        assert!(error("{not json").contains("malformed JSON"));
        assert!(error("[1, 2]").contains("JSON object"));
        assert!(error(r#"{"params": {}}"#).contains("none of the keys"));
        assert!(error(r#"{"data": []}"#).contains("unknown key `data`"));
        assert!(error(r#"{"instances": [], "inputs": []}"#).contains("send one format"));
        assert!(error(r#"{"dataframe_records": {"a": 1}}"#).contains("list of objects"));
        assert!(error(r#"{"dataframe_split": {"data": []}}"#).contains("columns"));
    }

    #[test]
    fn categories_take_numbers_or_text() {
        let cat = vec![InputColumn {
            name: "c".into(),
            kind: InputKind::Category,
        }];
        let f = parse_json(br#"{"instances": [{"c": 3}, {"c": null}]}"#, &cat).unwrap();
        let Some(ColumnData::Numeric(v)) = f.frame.column("c") else {
            panic!("{f:?}")
        };
        assert!(v[0] == 3.0 && v[1].is_nan(), "{v:?}");
        let f = parse_json(br#"{"instances": [{"c": 3}, {"c": "red"}]}"#, &cat).unwrap();
        assert_eq!(
            f.frame.column("c"),
            Some(&ColumnData::Text(vec![
                Some("3".into()),
                Some("red".into())
            ]))
        );
        let e = parse_json(br#"{"instances": [{"c": true}, {"c": "red"}]}"#, &cat).unwrap_err();
        assert!(e.to_string().contains("column `c`, row 1"), "{e}");
    }
}
