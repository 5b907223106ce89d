//! Data validation: a [`ValidationSpec`] checked against a [`Table`], giving a
//! [`ValidationReport`].

use std::collections::HashSet;
use std::fmt;

use datafusion::arrow::array::{Array, ArrayRef, BooleanArray, Float64Array, Scalar, StringArray};
use datafusion::arrow::compute::kernels::cmp;
use datafusion::arrow::compute::{CastOptions, cast_with_options};
use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::row::{RowConverter, SortField};
use regex::Regex;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::types::{display_strings, parse_type, row_json, type_name};
use crate::{DataError, Result, Table};

/// At most this many example rows are kept per failure.
pub const MAX_EXAMPLES: usize = 5;

/// What a table must look like. Deserializes from TOML (`[[columns]]` entries) or JSON.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ValidationSpec {
    pub columns: Vec<ColumnSpec>,
    pub row_count: Option<RowCount>,
    /// Whether columns the spec does not name are a failure.
    pub forbid_extra_columns: bool,
}

/// Bounds on the number of rows.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RowCount {
    pub min: Option<u64>,
    pub max: Option<u64>,
}

/// Expectations on one column. `min`, `max` and `allowed` take numbers or strings (dates,
/// timestamps, text), compared in the column's own type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnSpec {
    pub name: String,
    /// Expected type name (see [`crate::parse_type`]).
    #[serde(default, rename = "type")]
    pub data_type: Option<String>,
    /// `false`: no value may be null (the same check as `not_null`).
    #[serde(default)]
    pub nullable: Option<bool>,
    /// Whether a missing column is a failure (default true).
    #[serde(default = "yes")]
    pub required: bool,
    #[serde(default)]
    pub not_null: bool,
    #[serde(default)]
    pub unique: bool,
    #[serde(default)]
    pub min: Option<Value>,
    #[serde(default)]
    pub max: Option<Value>,
    #[serde(default)]
    pub allowed: Option<Vec<Value>>,
    /// A regex every non-null value (as text) must match somewhere; anchor it with `^...$`.
    #[serde(default)]
    pub regex: Option<String>,
}

fn yes() -> bool {
    true
}

impl ColumnSpec {
    /// A spec for `name` with no expectations yet.
    pub fn new(name: impl Into<String>) -> Self {
        ColumnSpec {
            name: name.into(),
            data_type: None,
            nullable: None,
            required: true,
            not_null: false,
            unique: false,
            min: None,
            max: None,
            allowed: None,
            regex: None,
        }
    }
}

impl ValidationSpec {
    pub fn from_toml_str(text: &str) -> Result<Self> {
        let spec: ValidationSpec = toml::from_str(text).map_err(DataError::SpecToml)?;
        spec.check()?;
        Ok(spec)
    }

    pub fn from_json_str(text: &str) -> Result<Self> {
        let spec: ValidationSpec = serde_json::from_str(text).map_err(DataError::SpecJson)?;
        spec.check()?;
        Ok(spec)
    }

    /// Checks the spec itself: type names, regexes, bound kinds.
    pub fn check(&self) -> Result<()> {
        for c in &self.columns {
            if let Some(t) = &c.data_type {
                parse_type(&c.name, t)?;
            }
            if let Some(r) = &c.regex {
                Regex::new(r).map_err(|e| DataError::InvalidSpec {
                    reason: format!("column `{}`: regex `{r}` does not compile: {e}", c.name),
                })?;
            }
            for bound in [&c.min, &c.max].into_iter().flatten() {
                if !(bound.is_number() || bound.is_string()) {
                    return Err(DataError::InvalidSpec {
                        reason: format!(
                            "column `{}`: bound {bound} must be a number or a string",
                            c.name
                        ),
                    });
                }
            }
        }
        Ok(())
    }
}

/// One failed expectation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Failure {
    /// None for table-level rules (row count, extra columns).
    pub column: Option<String>,
    /// The rule as written in messages, e.g. `min >= 0`.
    pub rule: String,
    /// Rows that break the rule (0 for schema rules).
    pub failing_rows: u64,
    /// Up to [`MAX_EXAMPLES`] offending rows as JSON objects.
    pub examples: Vec<Value>,
    /// Extra detail for schema rules and invalid rules.
    pub detail: Option<String>,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.column {
            Some(c) => write!(f, "column `{c}`: rule `{}` failed", self.rule)?,
            None => write!(f, "table: rule `{}` failed", self.rule)?,
        }
        if self.failing_rows > 0 {
            let s = if self.failing_rows == 1 { "" } else { "s" };
            write!(f, " for {} row{s}", self.failing_rows)?;
        }
        if let Some(d) = &self.detail {
            write!(f, ": {d}")?;
        }
        if let Some(first) = self.examples.first() {
            write!(f, ", e.g. {first}")?;
        }
        Ok(())
    }
}

/// The outcome of [`validate`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ValidationReport {
    pub rows: u64,
    pub rules_checked: usize,
    pub failures: Vec<Failure>,
}

impl ValidationReport {
    pub fn is_ok(&self) -> bool {
        self.failures.is_empty()
    }
}

impl fmt::Display for ValidationReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_ok() {
            return write!(
                f,
                "all {} rules passed on {} rows",
                self.rules_checked, self.rows
            );
        }
        writeln!(
            f,
            "{} of {} rules failed on {} rows:",
            self.failures.len(),
            self.rules_checked,
            self.rows
        )?;
        for (i, failure) in self.failures.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "  {failure}")?;
        }
        Ok(())
    }
}

struct Checker<'a> {
    batch: &'a RecordBatch,
    report: ValidationReport,
}

impl Checker<'_> {
    fn schema_failure(&mut self, column: Option<&str>, rule: String, detail: String) {
        self.report.failures.push(Failure {
            column: column.map(str::to_owned),
            rule,
            failing_rows: 0,
            examples: Vec::new(),
            detail: Some(detail),
        });
    }

    /// Records a failure for every row where `bad` holds.
    fn rows_failure(&mut self, column: &str, rule: String, bad: impl Iterator<Item = usize>) {
        let mut count = 0u64;
        let mut examples = Vec::new();
        for row in bad {
            count += 1;
            if examples.len() < MAX_EXAMPLES {
                examples.push(row_json(self.batch, row));
            }
        }
        if count > 0 {
            self.report.failures.push(Failure {
                column: Some(column.to_owned()),
                rule,
                failing_rows: count,
                examples,
                detail: None,
            });
        }
    }
}

/// Checks `table` against `spec`. Never fails: an invalid rule (a bad regex, a bound that does
/// not convert to the column's type) is reported as a failure of that rule.
pub fn validate(table: &Table, spec: &ValidationSpec) -> ValidationReport {
    let batch = match table.concat() {
        Ok(b) => b,
        Err(e) => {
            return ValidationReport {
                rows: table.num_rows() as u64,
                rules_checked: 0,
                failures: vec![Failure {
                    column: None,
                    rule: "readable".into(),
                    failing_rows: 0,
                    examples: Vec::new(),
                    detail: Some(e.to_string()),
                }],
            };
        }
    };
    let rows = batch.num_rows();
    let mut ck = Checker {
        batch: &batch,
        report: ValidationReport {
            rows: rows as u64,
            rules_checked: 0,
            failures: Vec::new(),
        },
    };

    if let Some(rc) = &spec.row_count {
        if let Some(min) = rc.min {
            ck.report.rules_checked += 1;
            if (rows as u64) < min {
                ck.schema_failure(
                    None,
                    format!("row_count >= {min}"),
                    format!("table has {rows} rows"),
                );
            }
        }
        if let Some(max) = rc.max {
            ck.report.rules_checked += 1;
            if (rows as u64) > max {
                ck.schema_failure(
                    None,
                    format!("row_count <= {max}"),
                    format!("table has {rows} rows"),
                );
            }
        }
    }
    if spec.forbid_extra_columns {
        ck.report.rules_checked += 1;
        let named: HashSet<&str> = spec.columns.iter().map(|c| c.name.as_str()).collect();
        let extra: Vec<String> = table
            .column_names()
            .into_iter()
            .filter(|n| !named.contains(n.as_str()))
            .collect();
        if !extra.is_empty() {
            ck.schema_failure(
                None,
                "no extra columns".into(),
                format!("unexpected columns: {}", extra.join(", ")),
            );
        }
    }

    for c in &spec.columns {
        check_column(&mut ck, c);
    }
    ck.report
}

fn check_column(ck: &mut Checker<'_>, c: &ColumnSpec) {
    let name = c.name.as_str();
    ck.report.rules_checked += 1;
    let Ok(index) = ck.batch.schema().index_of(name) else {
        if c.required {
            ck.schema_failure(
                Some(name),
                "present".into(),
                "the table has no such column".into(),
            );
        }
        return;
    };
    let array = ck.batch.column(index).clone();

    if let Some(t) = &c.data_type {
        ck.report.rules_checked += 1;
        match parse_type(name, t) {
            Ok(expected) if &expected == array.data_type() => {}
            Ok(expected) => ck.schema_failure(
                Some(name),
                format!("type == {}", type_name(&expected)),
                format!("column has type {}", type_name(array.data_type())),
            ),
            Err(e) => ck.schema_failure(Some(name), format!("type == {t}"), e.to_string()),
        }
    }

    if c.not_null || c.nullable == Some(false) {
        ck.report.rules_checked += 1;
        let rule = if c.not_null {
            "not_null"
        } else {
            "nullable = false"
        };
        ck.rows_failure(
            name,
            rule.into(),
            (0..array.len()).filter(|&i| array.is_null(i)),
        );
    }

    for (bound, is_min) in [(&c.min, true), (&c.max, false)] {
        let Some(bound) = bound else { continue };
        ck.report.rules_checked += 1;
        let shown = match bound {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let rule = if is_min {
            format!("min >= {shown}")
        } else {
            format!("max <= {shown}")
        };
        match compare(&array, bound, is_min) {
            Ok(bad) => ck.rows_failure(
                name,
                rule,
                (0..bad.len()).filter(|&i| bad.is_valid(i) && bad.value(i)),
            ),
            Err(detail) => ck.schema_failure(Some(name), rule, detail),
        }
    }

    if let Some(allowed) = &c.allowed {
        ck.report.rules_checked += 1;
        let texts: Vec<String> = allowed
            .iter()
            .map(|v| match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect();
        let numbers: Vec<f64> = texts.iter().filter_map(|t| t.parse().ok()).collect();
        let rule = format!("allowed in [{}]", texts.join(", "));
        match display_strings(array.as_ref()) {
            Ok(values) => {
                let bad = values.iter().enumerate().filter_map(|(i, v)| {
                    let v = v.as_ref()?;
                    let ok = texts.iter().any(|t| t == v)
                        || v.parse::<f64>().is_ok_and(|x| numbers.contains(&x));
                    (!ok).then_some(i)
                });
                ck.rows_failure(name, rule, bad.collect::<Vec<_>>().into_iter());
            }
            Err(e) => ck.schema_failure(Some(name), rule, e.to_string()),
        }
    }

    if let Some(pattern) = &c.regex {
        ck.report.rules_checked += 1;
        let rule = format!("regex `{pattern}`");
        match (Regex::new(pattern), display_strings(array.as_ref())) {
            (Ok(re), Ok(values)) => {
                let bad: Vec<usize> = values
                    .iter()
                    .enumerate()
                    .filter_map(|(i, v)| v.as_ref().filter(|v| !re.is_match(v)).map(|_| i))
                    .collect();
                ck.rows_failure(name, rule, bad.into_iter());
            }
            (Err(e), _) => ck.schema_failure(Some(name), rule, format!("invalid regex: {e}")),
            (_, Err(e)) => ck.schema_failure(Some(name), rule, e.to_string()),
        }
    }

    if c.unique {
        ck.report.rules_checked += 1;
        match duplicates(&array) {
            Ok(bad) => ck.rows_failure(name, "unique".into(), bad.into_iter()),
            Err(e) => ck.schema_failure(Some(name), "unique".into(), e.to_string()),
        }
    }
}

/// Rows below the min (`is_min`) or above the max, as a boolean mask (null where the value is).
fn compare(array: &ArrayRef, bound: &Value, is_min: bool) -> Result<BooleanArray, String> {
    let raw: ArrayRef = match bound {
        Value::Number(n) => {
            std::sync::Arc::new(Float64Array::from(vec![n.as_f64().unwrap_or(f64::NAN)]))
        }
        Value::String(s) => std::sync::Arc::new(StringArray::from(vec![s.as_str()])),
        other => return Err(format!("bound {other} must be a number or a string")),
    };
    // Compare numbers as float64 so that `min = 0.5` works on an integer column.
    let (left, right) = if array.data_type().is_numeric() && bound.is_number() {
        let left = cast_with_options(array, &DataType::Float64, &CastOptions::default())
            .map_err(|e| e.to_string())?;
        (left, raw)
    } else {
        let strict = CastOptions {
            safe: false,
            ..Default::default()
        };
        let right = cast_with_options(&raw, array.data_type(), &strict).map_err(|e| {
            format!(
                "bound {bound} does not convert to {}: {e}",
                type_name(array.data_type())
            )
        })?;
        (array.clone(), right)
    };
    let scalar = Scalar::new(right);
    let result = if is_min {
        cmp::lt(&left, &scalar)
    } else {
        cmp::gt(&left, &scalar)
    };
    result.map_err(|e| e.to_string())
}

/// Rows whose value already appeared in an earlier row (nulls never count as duplicates).
fn duplicates(array: &ArrayRef) -> Result<Vec<usize>> {
    let converter = RowConverter::new(vec![SortField::new(array.data_type().clone())])
        .map_err(DataError::arrow("encoding rows"))?;
    let rows = converter
        .convert_columns(std::slice::from_ref(array))
        .map_err(DataError::arrow("encoding rows"))?;
    let mut seen = HashSet::new();
    Ok((0..array.len())
        .filter(|&i| array.is_valid(i) && !seen.insert(rows.row(i)))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sales() -> Table {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.csv");
        std::fs::write(
            &p,
            "id,date,store,units,sku\n1,2024-01-01,a,3,AB-1\n2,2024-01-02,b,-1,AB-2\n2,2024-01-03,c,-4,xx\n4,2024-01-04,a,,AB-4\n5,2024-01-05,a,-2,AB-5\n",
        )
        .unwrap();
        let mut options = crate::ReadOptions::default();
        options.types.insert("date".into(), "date32".into());
        crate::read(&crate::Source::path(&p), &options).unwrap()
    }

    const SPEC: &str = r#"
forbid_extra_columns = false
[row_count]
min = 10

[[columns]]
name = "units"
type = "int64"
min = 0
max = 100
not_null = true

[[columns]]
name = "id"
unique = true

[[columns]]
name = "store"
allowed = ["a", "b"]
type = "float64"

[[columns]]
name = "sku"
regex = "^AB-[0-9]+$"

[[columns]]
name = "date"
min = "2024-01-02"

[[columns]]
name = "missing"
"#;

    #[test]
    fn reports_each_failed_rule_with_examples() {
        let spec = ValidationSpec::from_toml_str(SPEC).unwrap();
        let report = validate(&sales(), &spec);
        let find = |col: Option<&str>, rule: &str| {
            report
                .failures
                .iter()
                .find(|f| f.column.as_deref() == col && f.rule == rule)
                .unwrap_or_else(|| panic!("no failure {col:?} {rule}: {report}"))
        };
        let min = find(Some("units"), "min >= 0");
        assert_eq!(min.failing_rows, 3);
        assert_eq!(min.examples.len(), 3);
        assert_eq!(min.examples[0]["units"], serde_json::json!(-1));
        let text = min.to_string();
        assert!(
            text.starts_with("column `units`: rule `min >= 0` failed for 3 rows, e.g. {"),
            "{text}"
        );
        assert_eq!(find(Some("units"), "not_null").failing_rows, 1);
        assert_eq!(find(Some("id"), "unique").failing_rows, 1);
        assert_eq!(find(Some("store"), "allowed in [a, b]").failing_rows, 1);
        assert!(
            find(Some("store"), "type == float64")
                .detail
                .as_deref()
                .unwrap()
                .contains("utf8")
        );
        assert_eq!(find(Some("sku"), "regex `^AB-[0-9]+$`").failing_rows, 1);
        assert_eq!(find(Some("date"), "min >= 2024-01-02").failing_rows, 1);
        find(Some("missing"), "present");
        find(None, "row_count >= 10");
        assert!(!report.failures.iter().any(|f| f.rule == "max <= 100"));
        assert_eq!(report.failures.len(), 9, "{report}");
        assert!(report.to_string().contains("9 of"));
        // The report serializes to JSON.
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["failures"].as_array().unwrap().len(), 9);
    }

    #[test]
    fn passing_spec_and_json_spec() {
        let spec = ValidationSpec::from_json_str(
            r#"{"columns": [{"name": "units", "max": 3}, {"name": "id", "type": "int64", "nullable": false}], "row_count": {"max": 5}}"#,
        )
        .unwrap();
        let report = validate(&sales(), &spec);
        assert!(report.is_ok(), "{report}");
        assert!(
            report.to_string().starts_with("all 6 rules passed"),
            "{report}"
        );
    }

    #[test]
    fn bad_specs_are_errors_or_failures() {
        assert!(matches!(
            ValidationSpec::from_toml_str("[[columns]]\nname = \"a\"\nregex = \"(\""),
            Err(DataError::InvalidSpec { .. })
        ));
        assert!(matches!(
            ValidationSpec::from_toml_str("nope = 1"),
            Err(DataError::SpecToml(_))
        ));
        assert!(matches!(
            ValidationSpec::from_json_str(r#"{"columns": 5}"#),
            Err(DataError::SpecJson(_))
        ));
        assert!(matches!(
            ValidationSpec::from_toml_str("[[columns]]\nname = \"a\"\ntype = \"int99\""),
            Err(DataError::UnknownType { .. })
        ));
        // Built by hand, unchecked: reported as failures, no panic.
        let mut c = ColumnSpec::new("date");
        c.min = Some(Value::String("not a date".into()));
        c.regex = Some("(".into());
        let report = validate(
            &sales(),
            &ValidationSpec {
                columns: vec![c],
                ..Default::default()
            },
        );
        assert_eq!(report.failures.len(), 2, "{report}");
    }
}
