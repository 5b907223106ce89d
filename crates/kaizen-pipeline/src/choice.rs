//! `choice` steps, after AWS Step Functions' Choice state: rules over an earlier step's JSON
//! output pick the step that runs next; the other targets are skipped.
//!
//! ```toml
//! [[steps]]
//! name = "route"
//! kind = "choice"
//! inputs = ["greet.greeting.json"]
//! with = { choices = [{ variable = "$.name", equals = "Marco", next = "polo" }], default = "other" }
//! ```

use std::collections::BTreeMap;

use async_trait::async_trait;
use kaizen_core::{Error, Result};
use serde::Deserialize;
use serde_json::Value;

use crate::spec::StepKind;
use crate::step::{StepContext, StepFailure, StepRunner};

/// The file a choice step writes: `{"next": "<step>", "rule": <index or null>}`.
pub const CHOICE_FILE: &str = "choice.json";

/// One rule: the first whose test holds decides.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Rule {
    /// A path into the input JSON: `$`, `$.a.b`, `$.items[0].name`.
    variable: String,
    #[serde(default)]
    equals: Option<toml::Value>,
    #[serde(default)]
    not_equals: Option<toml::Value>,
    #[serde(default)]
    greater_than: Option<f64>,
    #[serde(default)]
    greater_or_equal: Option<f64>,
    #[serde(default)]
    less_than: Option<f64>,
    #[serde(default)]
    less_or_equal: Option<f64>,
    /// `true`: the variable exists; `false`: it does not.
    #[serde(default)]
    is_present: Option<bool>,
    next: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct ChoiceOptions {
    choices: Vec<Rule>,
    /// The step to run when no rule holds; without it, no rule holding fails the step.
    #[serde(default)]
    default: Option<String>,
}

fn options(step: &str, with: &BTreeMap<String, toml::Value>) -> Result<ChoiceOptions> {
    let table: toml::Table = with.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    let o: ChoiceOptions = toml::Value::Table(table).try_into().map_err(|e| {
        Error::invalid(format!(
            "step '{step}': field 'with' of a choice step: {}",
            e.message()
        ))
    })?;
    if o.choices.is_empty() {
        return Err(Error::invalid(format!(
            "step '{step}': with.choices must hold at least one rule"
        )));
    }
    for (i, r) in o.choices.iter().enumerate() {
        let tests = [
            r.equals.is_some(),
            r.not_equals.is_some(),
            r.greater_than.is_some(),
            r.greater_or_equal.is_some(),
            r.less_than.is_some(),
            r.less_or_equal.is_some(),
            r.is_present.is_some(),
        ];
        if tests.iter().filter(|t| **t).count() != 1 {
            return Err(Error::invalid(format!(
                "step '{step}': with.choices[{i}] needs exactly one test (equals, not_equals, \
                 greater_than, greater_or_equal, less_than, less_or_equal, is_present)"
            )));
        }
        pointer(&r.variable).map_err(|e| {
            Error::invalid(format!("step '{step}': with.choices[{i}].variable: {e}"))
        })?;
    }
    Ok(o)
}

/// The steps a choice step may route to, in rule order, the default last.
pub fn targets(step: &str, with: &BTreeMap<String, toml::Value>) -> Result<Vec<String>> {
    let o = options(step, with)?;
    let mut out: Vec<String> = Vec::new();
    for t in o.choices.iter().map(|r| &r.next).chain(o.default.as_ref()) {
        if !out.contains(t) {
            out.push(t.clone());
        }
    }
    Ok(out)
}

/// `$.a.b[0]` → the JSON pointer `/a/b/0`.
fn pointer(path: &str) -> std::result::Result<String, String> {
    let rest = path
        .strip_prefix('$')
        .ok_or_else(|| format!("'{path}' must start with '$'"))?;
    let mut out = String::new();
    let mut chars = rest.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '.' => {
                let mut key = String::new();
                while let Some(&n) = chars.peek() {
                    if n == '.' || n == '[' {
                        break;
                    }
                    key.push(n);
                    chars.next();
                }
                if key.is_empty() {
                    return Err(format!("'{path}' has an empty key"));
                }
                out.push('/');
                out.push_str(&key.replace('~', "~0").replace('/', "~1"));
            }
            '[' => {
                let mut index = String::new();
                for n in chars.by_ref() {
                    if n == ']' {
                        break;
                    }
                    index.push(n);
                }
                if index.parse::<usize>().is_err() {
                    return Err(format!("'{path}': '[{index}]' is not an array index"));
                }
                out.push('/');
                out.push_str(&index);
            }
            other => return Err(format!("'{path}': unexpected '{other}'")),
        }
    }
    Ok(out)
}

fn toml_to_json(v: &toml::Value) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

fn holds(rule: &Rule, input: &Value) -> bool {
    let found = pointer(&rule.variable)
        .ok()
        .and_then(|p| input.pointer(&p).cloned());
    if let Some(present) = rule.is_present {
        return found.is_some() == present;
    }
    let Some(value) = found else {
        return false;
    };
    let same = |expected: &toml::Value| {
        let e = toml_to_json(expected);
        match (e.as_f64(), value.as_f64()) {
            (Some(a), Some(b)) => a == b,
            _ => e == value,
        }
    };
    if let Some(e) = &rule.equals {
        return same(e);
    }
    if let Some(e) = &rule.not_equals {
        return !same(e);
    }
    let Some(x) = value.as_f64() else {
        return false;
    };
    match (
        rule.greater_than,
        rule.greater_or_equal,
        rule.less_than,
        rule.less_or_equal,
    ) {
        (Some(b), _, _, _) => x > b,
        (_, Some(b), _, _) => x >= b,
        (_, _, Some(b), _) => x < b,
        (_, _, _, Some(b)) => x <= b,
        _ => false,
    }
}

/// Evaluates the rules on the step's one JSON input and writes [`CHOICE_FILE`].
pub struct ChoiceRunner;

#[async_trait]
impl StepRunner for ChoiceRunner {
    async fn run(&self, ctx: &StepContext) -> std::result::Result<(), StepFailure> {
        let name = &ctx.step.name;
        let fail = |message: String| StepFailure {
            message,
            stderr_tail: Vec::new(),
        };
        let o = options(name, &ctx.step.with).map_err(|e| fail(e.message))?;
        let [(input, path)] = ctx.inputs.as_slice() else {
            return Err(fail(format!(
                "step '{name}': a choice step reads exactly one JSON input, got {}",
                ctx.inputs.len()
            )));
        };
        let text = std::fs::read_to_string(path)
            .map_err(|e| fail(format!("step '{name}': cannot read input '{input}': {e}")))?;
        let value: Value = serde_json::from_str(&text)
            .map_err(|e| fail(format!("step '{name}': input '{input}' is not JSON: {e}")))?;
        let (next, rule) = match o.choices.iter().position(|r| holds(r, &value)) {
            Some(i) => (o.choices[i].next.clone(), Some(i)),
            None => match &o.default {
                Some(d) => (d.clone(), None),
                None => {
                    return Err(fail(format!(
                        "step '{name}': no rule holds for {} and there is no default",
                        truncate(&text, 200)
                    )));
                }
            },
        };
        let out = serde_json::json!({"next": next, "rule": rule});
        std::fs::write(ctx.output_dir.join(CHOICE_FILE), out.to_string())
            .map_err(|e| fail(format!("step '{name}': cannot write its choice: {e}")))
    }
}

fn truncate(s: &str, n: usize) -> String {
    let s = s.trim();
    match s.char_indices().nth(n) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None => s.to_string(),
    }
}

/// Which step a finished choice step chose, from its output directory.
pub fn chosen(output_dir: &std::path::Path) -> Result<String> {
    let path = output_dir.join(CHOICE_FILE);
    let text = std::fs::read_to_string(&path)
        .map_err(|e| Error::internal(format!("cannot read {}", path.display()), e))?;
    let v: Value = serde_json::from_str(&text)
        .map_err(|e| Error::internal(format!("corrupt {}", path.display()), e))?;
    v["next"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| Error::new(kaizen_core::ErrorKind::Internal, "choice without next"))
}

/// Registers the choice runner.
pub fn register(runners: &mut crate::Runners) {
    runners.register(StepKind::Choice, std::sync::Arc::new(ChoiceRunner));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(text: &str) -> BTreeMap<String, toml::Value> {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn paths_become_pointers() {
        assert_eq!(pointer("$").unwrap(), "");
        assert_eq!(pointer("$.a.b").unwrap(), "/a/b");
        assert_eq!(pointer("$.items[2].name").unwrap(), "/items/2/name");
        assert!(pointer("a.b").is_err());
        assert!(pointer("$.a[x]").is_err());
    }

    #[test]
    fn rules_pick_the_first_that_holds() {
        let w = with(
            "choices = [{ variable = \"$.n\", greater_than = 10, next = \"big\" }, \
             { variable = \"$.name\", equals = \"Marco\", next = \"polo\" }]\ndefault = \"other\"",
        );
        let o = options("r", &w).unwrap();
        let pick = |v: Value| {
            o.choices
                .iter()
                .find(|r| holds(r, &v))
                .map(|r| r.next.clone())
        };
        assert_eq!(
            pick(serde_json::json!({"name": "Marco"})),
            Some("polo".into())
        );
        assert_eq!(
            pick(serde_json::json!({"n": 11, "name": "Marco"})),
            Some("big".into())
        );
        assert_eq!(pick(serde_json::json!({"n": 3, "name": "x"})), None);
        assert_eq!(targets("r", &w).unwrap(), vec!["big", "polo", "other"]);
    }

    #[test]
    fn bad_rules_are_named() {
        let e = options(
            "r",
            &with("choices = [{ variable = \"$.a\", next = \"x\" }]"),
        )
        .unwrap_err();
        assert!(
            e.message.contains("with.choices[0] needs exactly one test"),
            "{e}"
        );
        let e = options("r", &with("choices = []")).unwrap_err();
        assert!(e.message.contains("at least one rule"), "{e}");
    }
}
