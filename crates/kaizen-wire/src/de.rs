//! Lenient deserializers for request fields.

use serde::Deserialize;
use serde::de::{self, Deserializer};
use serde_json::Value;

fn describe(v: &Value) -> String {
    match v {
        Value::String(s) => format!("'{s}'"),
        other => other.to_string(),
    }
}

/// Parses a double as proto3 JSON allows: a number, or a string holding a number, `NaN`,
/// `Infinity` or `-Infinity`.
pub fn parse_f64(v: &Value) -> Result<f64, String> {
    match v {
        Value::Number(n) => n.as_f64().ok_or_else(|| format!("{n} is not a number")),
        Value::String(s) => match s.as_str() {
            "NaN" | "nan" => Ok(f64::NAN),
            "Infinity" | "inf" | "+Infinity" => Ok(f64::INFINITY),
            "-Infinity" | "-inf" => Ok(f64::NEG_INFINITY),
            other => other
                .trim()
                .parse::<f64>()
                .map_err(|_| format!("'{other}' is not a number")),
        },
        other => Err(format!("{} is not a number", describe(other))),
    }
}

pub fn parse_i64(v: &Value) -> Result<i64, String> {
    match v {
        Value::Number(n) => n
            .as_i64()
            .or_else(|| {
                n.as_f64()
                    .filter(|f| f.fract() == 0.0 && f.abs() < 9.2e18)
                    .map(|f| f as i64)
            })
            .ok_or_else(|| format!("{n} is not an integer")),
        Value::String(s) => s
            .trim()
            .parse::<i64>()
            .map_err(|_| format!("'{s}' is not an integer")),
        other => Err(format!("{} is not an integer", describe(other))),
    }
}

pub fn f64_any<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    let v = Value::deserialize(d)?;
    parse_f64(&v).map_err(de::Error::custom)
}

pub fn opt_f64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    let v = Option::<Value>::deserialize(d)?;
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(v) => parse_f64(&v).map(Some).map_err(de::Error::custom),
    }
}

pub fn opt_i64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    let v = Option::<Value>::deserialize(d)?;
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(v) => parse_i64(&v).map(Some).map_err(de::Error::custom),
    }
}

pub fn opt_bool<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    let v = Option::<Value>::deserialize(d)?;
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(b)),
        Some(Value::String(s)) => match s.to_ascii_lowercase().as_str() {
            "true" | "1" => Ok(Some(true)),
            "false" | "0" | "" => Ok(Some(false)),
            _ => Err(de::Error::custom(format!("'{s}' is not a boolean"))),
        },
        Some(other) => Err(de::Error::custom(format!(
            "{} is not a boolean",
            describe(&other)
        ))),
    }
}

/// A string field that may arrive as a number (ids from GET query strings or loose clients).
pub fn opt_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let v = Option::<Value>::deserialize(d)?;
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(Value::Bool(b)) => Ok(Some(b.to_string())),
        Some(other) => Err(de::Error::custom(format!(
            "expected a string, got {}",
            describe(&other)
        ))),
    }
}

/// A repeated string field; one bare value counts as a list of one.
pub fn string_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let v = Option::<Value>::deserialize(d)?;
    let one = |v: Value| -> Result<String, D::Error> {
        match v {
            Value::String(s) => Ok(s),
            Value::Number(n) => Ok(n.to_string()),
            other => Err(de::Error::custom(format!(
                "expected a string, got {}",
                describe(&other)
            ))),
        }
    };
    match v {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items.into_iter().map(one).collect(),
        Some(v) => Ok(vec![one(v)?]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn doubles() {
        assert!(parse_f64(&json!("NaN")).unwrap().is_nan());
        assert_eq!(parse_f64(&json!("-Infinity")).unwrap(), f64::NEG_INFINITY);
        assert_eq!(parse_f64(&json!("1.5")).unwrap(), 1.5);
        assert_eq!(parse_f64(&json!(2)).unwrap(), 2.0);
        assert!(parse_f64(&json!("abc")).is_err());
        assert!(parse_f64(&json!(true)).is_err());
        assert_eq!(parse_i64(&json!("12")).unwrap(), 12);
        assert!(parse_i64(&json!("x")).is_err());
        assert!(parse_i64(&json!(1.5)).is_err());
    }
}
