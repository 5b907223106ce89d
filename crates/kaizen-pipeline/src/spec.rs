//! The pipeline file (`kaizen.toml`): its types, parsing with errors that name the step and the
//! field, typed parameter overrides, and the step DAG (order, cycles, unknown inputs).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use kaizen_core::{Error, Result};
use serde::{Deserialize, Serialize};

/// The file name of a pipeline inside a project directory.
pub const PIPELINE_FILE: &str = "kaizen.toml";

/// What a step does: run a command, or one of the built-in data steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum StepKind {
    Command,
    Ingest,
    Sql,
    Validate,
    Split,
    Profile,
    /// Routes on an earlier step's JSON output: the chosen step runs, the others are skipped.
    Choice,
    /// Trains, evaluates, registers and gates a tabular model (runner in `kaizen-train`).
    Train,
    /// Backtests, trains, registers and gates a forecast model (runner in `kaizen-train`).
    Forecast,
}

impl StepKind {
    pub fn as_str(self) -> &'static str {
        match self {
            StepKind::Command => "command",
            StepKind::Ingest => "ingest",
            StepKind::Sql => "sql",
            StepKind::Validate => "validate",
            StepKind::Split => "split",
            StepKind::Profile => "profile",
            StepKind::Choice => "choice",
            StepKind::Train => "train",
            StepKind::Forecast => "forecast",
        }
    }
}

impl std::fmt::Display for StepKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A parameter value: the type of a parameter is the type of its default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ParamValue {
    Bool(bool),
    Int(i64),
    Float(f64),
    String(String),
    List(Vec<ParamValue>),
}

impl ParamValue {
    pub fn type_name(&self) -> &'static str {
        match self {
            ParamValue::Bool(_) => "bool",
            ParamValue::Int(_) => "integer",
            ParamValue::Float(_) => "float",
            ParamValue::String(_) => "string",
            ParamValue::List(_) => "list",
        }
    }

    /// The value as an environment variable holds it: strings bare, lists as JSON.
    pub fn to_env(&self) -> String {
        match self {
            ParamValue::String(s) => s.clone(),
            ParamValue::Bool(b) => b.to_string(),
            ParamValue::Int(i) => i.to_string(),
            ParamValue::Float(f) => f.to_string(),
            ParamValue::List(_) => serde_json::to_string(self).unwrap_or_default(),
        }
    }

    /// Parses `text` as a value of the same type as `self` (the default).
    pub fn parse_like(&self, text: &str) -> std::result::Result<ParamValue, String> {
        let t = text.trim();
        match self {
            ParamValue::String(_) => Ok(ParamValue::String(text.to_string())),
            ParamValue::Bool(_) => match t.to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" => Ok(ParamValue::Bool(true)),
                "false" | "0" | "no" => Ok(ParamValue::Bool(false)),
                _ => Err(format!("'{text}' is not a bool (true or false)")),
            },
            ParamValue::Int(_) => t
                .parse()
                .map(ParamValue::Int)
                .map_err(|_| format!("'{text}' is not an integer")),
            ParamValue::Float(_) => t
                .parse()
                .map(ParamValue::Float)
                .map_err(|_| format!("'{text}' is not a number")),
            ParamValue::List(items) => {
                if t.starts_with('[') {
                    let v: ParamValue = serde_json::from_str(t)
                        .map_err(|e| format!("'{text}' is not a JSON list: {e}"))?;
                    return match v {
                        ParamValue::List(_) => Ok(v),
                        _ => Err(format!("'{text}' is not a list")),
                    };
                }
                let element = items
                    .first()
                    .cloned()
                    .unwrap_or(ParamValue::String(String::new()));
                if t.is_empty() {
                    return Ok(ParamValue::List(Vec::new()));
                }
                t.split(',')
                    .map(|part| element.parse_like(part.trim()))
                    .collect::<std::result::Result<Vec<_>, _>>()
                    .map(ParamValue::List)
            }
        }
    }
}

/// `[pipeline]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineMeta {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
}

fn default_true() -> bool {
    true
}

fn default_backoff() -> u64 {
    1000
}

/// One `[[steps]]` entry.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StepSpec {
    pub name: String,
    #[serde(default = "default_kind")]
    pub kind: StepKind,
    /// The command line of a `command` step, run with `sh -c` in the project directory.
    #[serde(default)]
    pub run: Option<String>,
    /// Other steps' outputs (`step` or `step.output`) and files or directories (paths relative to
    /// the project directory).
    #[serde(default)]
    pub inputs: Vec<String>,
    /// File names the step writes into its output directory.
    #[serde(default)]
    pub outputs: Vec<String>,
    /// Files whose content is part of the cache key.
    #[serde(default)]
    pub code: Vec<String>,
    /// The parameters the step uses; all of the pipeline's when absent.
    #[serde(default)]
    pub params: Option<Vec<String>>,
    #[serde(default)]
    pub retries: u32,
    /// The wait before the first retry; each further retry waits twice as long.
    #[serde(default = "default_backoff")]
    pub retry_backoff_ms: u64,
    #[serde(default)]
    pub timeout_s: Option<f64>,
    #[serde(default = "default_true")]
    pub cache: bool,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Options of a built-in step kind, read by that kind's runner. Strings may use `${param}`.
    #[serde(default, rename = "with")]
    pub with: BTreeMap<String, toml::Value>,
    /// Run the step once per item: of a list parameter, or of the partitions of an input table.
    #[serde(default)]
    pub foreach: Option<Foreach>,
}

/// `foreach = "param"` or `foreach = { partitions = "input", column = "col" }`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum Foreach {
    /// The items of a list parameter.
    Param(String),
    /// One item per distinct value of `column` in the input table `partitions`; each item sees
    /// that input cut down to its rows.
    Partitions { partitions: String, column: String },
}

fn default_kind() -> StepKind {
    StepKind::Command
}

/// What a step input refers to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InputRef {
    /// All outputs of a step (its output directory).
    Step(String),
    /// One output of a step.
    Output(String, String),
    /// A file or directory, relative to the project directory.
    Path(String),
}

/// A parsed, checked pipeline.
#[derive(Debug, Clone)]
pub struct Pipeline {
    pub meta: PipelineMeta,
    /// Declared parameters with their defaults.
    pub params: BTreeMap<String, ParamValue>,
    pub steps: Vec<StepSpec>,
    /// The project directory; relative paths start here.
    pub dir: PathBuf,
    /// Steps a `choice` step routes to depend on it: target → choice steps.
    pub routed_by: BTreeMap<String, BTreeSet<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    pipeline: PipelineMeta,
    #[serde(default)]
    params: BTreeMap<String, toml::Value>,
    #[serde(default)]
    steps: Vec<toml::Table>,
}

fn param_from_toml(name: &str, v: &toml::Value) -> Result<ParamValue> {
    Ok(match v {
        toml::Value::String(s) => ParamValue::String(s.clone()),
        toml::Value::Integer(i) => ParamValue::Int(*i),
        toml::Value::Float(f) => ParamValue::Float(*f),
        toml::Value::Boolean(b) => ParamValue::Bool(*b),
        toml::Value::Array(items) => ParamValue::List(
            items
                .iter()
                .map(|i| param_from_toml(name, i))
                .collect::<Result<_>>()?,
        ),
        other => {
            return Err(Error::invalid(format!(
                "param '{name}': a default must be a string, number, bool or list, not {}",
                other.type_str()
            )));
        }
    })
}

impl Pipeline {
    /// Reads `dir/kaizen.toml`, or the pipeline file `dir` names.
    pub fn load(dir: &Path) -> Result<Self> {
        if dir.is_file() {
            return Self::load_file(dir);
        }
        Self::load_file(&dir.join(PIPELINE_FILE))
    }

    /// Reads a pipeline file other than `kaizen.toml` (a project may hold several); paths in it
    /// are relative to its directory.
    pub fn load_file(file: &Path) -> Result<Self> {
        let dir = file.parent().unwrap_or(Path::new("."));
        let text = std::fs::read_to_string(file).map_err(|e| {
            Error::invalid(format!("cannot read pipeline file {}: {e}", file.display()))
        })?;
        Self::parse(&text, dir)
            .map_err(|e| Error::new(e.kind, format!("{}: {}", file.display(), e.message)))
    }

    /// Parses and checks a pipeline file's text.
    pub fn parse(text: &str, dir: &Path) -> Result<Self> {
        let raw: RawFile = toml::from_str(text).map_err(|e| Error::invalid(e.to_string()))?;
        if raw.pipeline.name.trim().is_empty() {
            return Err(Error::invalid("[pipeline]: field 'name' must not be empty"));
        }
        let params = raw
            .params
            .iter()
            .map(|(k, v)| Ok((k.clone(), param_from_toml(k, v)?)))
            .collect::<Result<BTreeMap<_, _>>>()?;
        let mut steps = Vec::with_capacity(raw.steps.len());
        for (i, table) in raw.steps.into_iter().enumerate() {
            let label = match table.get("name").and_then(|n| n.as_str()) {
                Some(n) => format!("step '{n}'"),
                None => format!("steps[{i}]"),
            };
            let mut step = StepSpec::deserialize(toml::Value::Table(table))
                .map_err(|e| Error::invalid(format!("{label}: {}", e.message())))?;
            step.outputs = crate::data_steps::builtin_outputs(
                &step.name,
                step.kind,
                &step.with,
                &step.outputs,
            )?;
            if step.kind == StepKind::Validate
                && let Some(spec) = crate::data_steps::validation_spec_file(&step.with)
                && !step.code.contains(&spec)
            {
                step.code.push(spec);
            }
            steps.push(step);
        }
        let mut routed_by: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for s in &steps {
            if s.kind == StepKind::Choice {
                for target in crate::choice::targets(&s.name, &s.with)? {
                    routed_by.entry(target).or_default().insert(s.name.clone());
                }
            }
        }
        let pipeline = Pipeline {
            meta: raw.pipeline,
            params,
            steps,
            dir: dir.to_path_buf(),
            routed_by,
        };
        pipeline.check()?;
        Ok(pipeline)
    }

    fn step_index(&self) -> HashMap<&str, usize> {
        self.steps
            .iter()
            .enumerate()
            .map(|(i, s)| (s.name.as_str(), i))
            .collect()
    }

    /// Resolves an input string of a step.
    pub fn resolve_input(&self, step: &str, input: &str) -> Result<InputRef> {
        let index = self.step_index();
        if index.contains_key(input) {
            return Ok(InputRef::Step(input.to_string()));
        }
        if let Some((s, out)) = input.split_once('.')
            && let Some(&i) = index.get(s)
        {
            if self.steps[i].foreach.is_some() {
                return Err(Error::invalid(format!(
                    "step '{step}': input '{input}': step '{s}' runs per item (foreach); take \
                     its whole output directory with input '{s}'"
                )));
            }
            if !self.steps[i].outputs.iter().any(|o| o == out) {
                return Err(Error::invalid(format!(
                    "step '{step}': input '{input}': step '{s}' has no output '{out}' (its outputs: {})",
                    list(&self.steps[i].outputs)
                )));
            }
            return Ok(InputRef::Output(s.to_string(), out.to_string()));
        }
        if self.dir.join(input).exists() {
            return Ok(InputRef::Path(input.to_string()));
        }
        let names: Vec<String> = self.steps.iter().map(|s| s.name.clone()).collect();
        Err(Error::invalid(format!(
            "step '{step}': input '{input}' names no step and no file in {} (steps: {})",
            self.dir.display(),
            list(&names)
        )))
    }

    /// The steps a step depends on: those whose outputs it reads, and the `choice` steps that
    /// route to it.
    pub fn dependencies(&self, step: &StepSpec) -> Result<BTreeSet<String>> {
        let mut deps = self.routed_by.get(&step.name).cloned().unwrap_or_default();
        for input in &step.inputs {
            match self.resolve_input(&step.name, input)? {
                InputRef::Step(s) | InputRef::Output(s, _) => {
                    deps.insert(s);
                }
                InputRef::Path(_) => {}
            }
        }
        Ok(deps)
    }

    fn check(&self) -> Result<()> {
        let mut seen = BTreeSet::new();
        for s in &self.steps {
            let name_ok = !s.name.is_empty()
                && s.name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
            if !name_ok {
                return Err(Error::invalid(format!(
                    "step '{}': field 'name' may hold only letters, digits, '_' and '-'",
                    s.name
                )));
            }
            if !seen.insert(s.name.as_str()) {
                return Err(Error::invalid(format!(
                    "step '{}': field 'name': two steps have this name",
                    s.name
                )));
            }
            match (s.kind, &s.run) {
                (StepKind::Command, None) => {
                    return Err(Error::invalid(format!(
                        "step '{}': field 'run' is required for kind \"command\"",
                        s.name
                    )));
                }
                (k, Some(_)) if k != StepKind::Command => {
                    return Err(Error::invalid(format!(
                        "step '{}': field 'run' is only for kind \"command\", not \"{k}\"",
                        s.name
                    )));
                }
                _ => {}
            }
            for o in &s.outputs {
                if o.is_empty() || o.contains('/') || o.contains('\\') || o == "." || o == ".." {
                    return Err(Error::invalid(format!(
                        "step '{}': field 'outputs': '{o}' must be a plain file name",
                        s.name
                    )));
                }
            }
            if let Some(ps) = &s.params {
                for p in ps {
                    if !self.params.contains_key(p) {
                        return Err(Error::invalid(format!(
                            "step '{}': field 'params': unknown parameter '{p}' (declared: {})",
                            s.name,
                            list(&self.params.keys().cloned().collect::<Vec<_>>())
                        )));
                    }
                }
            }
            if let Some(t) = s.timeout_s
                && !(t > 0.0 && t.is_finite())
            {
                return Err(Error::invalid(format!(
                    "step '{}': field 'timeout_s' must be a positive number of seconds",
                    s.name
                )));
            }
            if s.kind == StepKind::Choice {
                for target in crate::choice::targets(&s.name, &s.with)? {
                    if self.step(&target).is_none() {
                        return Err(Error::invalid(format!(
                            "step '{}': with: routes to '{target}', which is not a step",
                            s.name
                        )));
                    }
                }
            }
            match &s.foreach {
                Some(Foreach::Param(p)) => match self.params.get(p) {
                    Some(ParamValue::List(_)) => {}
                    Some(other) => {
                        return Err(Error::invalid(format!(
                            "step '{}': field 'foreach': parameter '{p}' is a {}, not a list",
                            s.name,
                            other.type_name()
                        )));
                    }
                    None => {
                        return Err(Error::invalid(format!(
                            "step '{}': field 'foreach': unknown parameter '{p}'",
                            s.name
                        )));
                    }
                },
                Some(Foreach::Partitions { partitions, .. }) if !s.inputs.contains(partitions) => {
                    return Err(Error::invalid(format!(
                        "step '{}': field 'foreach': '{partitions}' must be one of the step's \
                         inputs",
                        s.name
                    )));
                }
                Some(Foreach::Partitions { .. }) | None => {}
            }
            if s.foreach.is_some() && s.kind == StepKind::Choice {
                return Err(Error::invalid(format!(
                    "step '{}': a choice step cannot use foreach",
                    s.name
                )));
            }
            for name in template_names(&s.with) {
                if name != "item" && !self.params.contains_key(&name) {
                    return Err(Error::invalid(format!(
                        "step '{}': field 'with': '${{{name}}}' names no parameter (declared: {})",
                        s.name,
                        list(&self.params.keys().cloned().collect::<Vec<_>>())
                    )));
                }
            }
            for c in &s.code {
                if !self.dir.join(c).is_file() {
                    return Err(Error::invalid(format!(
                        "step '{}': field 'code': no file '{c}' in {}",
                        s.name,
                        self.dir.display()
                    )));
                }
            }
        }
        self.order()?;
        Ok(())
    }

    /// The steps in an order where every step comes after the steps it depends on (file order
    /// among independent steps). A cycle is an error that names it.
    pub fn order(&self) -> Result<Vec<String>> {
        let mut deps: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
        for s in &self.steps {
            let d = self.dependencies(s)?;
            if d.contains(&s.name) {
                return Err(Error::invalid(format!(
                    "step '{}': field 'inputs': a step cannot use its own output",
                    s.name
                )));
            }
            deps.insert(s.name.as_str(), d);
        }
        // Depth-first search with colours; the grey path is the cycle when one closes.
        #[derive(Clone, Copy, PartialEq)]
        enum Mark {
            Grey,
            Black,
        }
        fn visit<'a>(
            name: &'a str,
            steps: &'a [StepSpec],
            deps: &'a BTreeMap<&'a str, BTreeSet<String>>,
            marks: &mut HashMap<&'a str, Mark>,
            path: &mut Vec<&'a str>,
            out: &mut Vec<String>,
        ) -> Result<()> {
            match marks.get(name) {
                Some(Mark::Black) => return Ok(()),
                Some(Mark::Grey) => {
                    let start = path.iter().position(|p| *p == name).unwrap_or(0);
                    let mut cycle: Vec<&str> = path[start..].to_vec();
                    cycle.push(name);
                    return Err(Error::invalid(format!(
                        "the steps form a cycle: {}",
                        cycle.join(" -> ")
                    )));
                }
                None => {}
            }
            marks.insert(name, Mark::Grey);
            path.push(name);
            // Visit dependencies in file order so the result is stable.
            for s in steps {
                if deps[name].contains(&s.name) {
                    visit(&s.name, steps, deps, marks, path, out)?;
                }
            }
            path.pop();
            marks.insert(name, Mark::Black);
            out.push(name.to_string());
            Ok(())
        }
        let mut marks = HashMap::new();
        let mut out = Vec::new();
        for s in &self.steps {
            visit(
                &s.name,
                &self.steps,
                &deps,
                &mut marks,
                &mut Vec::new(),
                &mut out,
            )?;
        }
        Ok(out)
    }

    /// The parameter values after `overrides` (`key=value`, typed by the default).
    pub fn resolve_params(&self, overrides: &[String]) -> Result<BTreeMap<String, ParamValue>> {
        let mut values = self.params.clone();
        for o in overrides {
            let (k, v) = o.split_once('=').ok_or_else(|| {
                Error::invalid(format!("parameter override '{o}' is not key=value"))
            })?;
            let k = k.trim();
            let default = self.params.get(k).ok_or_else(|| {
                Error::invalid(format!(
                    "unknown parameter '{k}' (declared: {})",
                    list(&self.params.keys().cloned().collect::<Vec<_>>())
                ))
            })?;
            let value = default.parse_like(v).map_err(|e| {
                Error::invalid(format!("parameter '{k}' ({}): {e}", default.type_name()))
            })?;
            values.insert(k.to_string(), value);
        }
        Ok(values)
    }

    pub fn step(&self, name: &str) -> Option<&StepSpec> {
        self.steps.iter().find(|s| s.name == name)
    }
}

fn list(items: &[String]) -> String {
    if items.is_empty() {
        "none".into()
    } else {
        items.join(", ")
    }
}

/// The `${name}` references in the strings of a `with` table.
pub fn template_names(with: &BTreeMap<String, toml::Value>) -> Vec<String> {
    fn walk(v: &toml::Value, out: &mut Vec<String>) {
        match v {
            toml::Value::String(s) => {
                let mut rest = s.as_str();
                while let Some(start) = rest.find("${") {
                    let after = &rest[start + 2..];
                    let Some(end) = after.find('}') else { break };
                    out.push(after[..end].trim().to_string());
                    rest = &after[end + 1..];
                }
            }
            toml::Value::Array(items) => items.iter().for_each(|i| walk(i, out)),
            toml::Value::Table(t) => t.values().for_each(|i| walk(i, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    with.values().for_each(|v| walk(v, &mut out));
    out
}

/// `with` with every `${name}` replaced by the value of `name` in `values` (strings bare, other
/// values as their text); unknown names stay as written.
pub fn substitute(
    with: &BTreeMap<String, toml::Value>,
    values: &BTreeMap<String, ParamValue>,
) -> BTreeMap<String, toml::Value> {
    fn walk(v: &toml::Value, values: &BTreeMap<String, ParamValue>) -> toml::Value {
        match v {
            toml::Value::String(s) => {
                let mut out = String::new();
                let mut rest = s.as_str();
                while let Some(start) = rest.find("${") {
                    let after = &rest[start + 2..];
                    let Some(end) = after.find('}') else { break };
                    out.push_str(&rest[..start]);
                    match values.get(after[..end].trim()) {
                        Some(value) => out.push_str(&value.to_env()),
                        None => out.push_str(&rest[start..start + 3 + end]),
                    }
                    rest = &after[end + 1..];
                }
                out.push_str(rest);
                toml::Value::String(out)
            }
            toml::Value::Array(items) => {
                toml::Value::Array(items.iter().map(|i| walk(i, values)).collect())
            }
            toml::Value::Table(t) => toml::Value::Table(
                t.iter()
                    .map(|(k, i)| (k.clone(), walk(i, values)))
                    .collect(),
            ),
            other => other.clone(),
        }
    }
    with.iter()
        .map(|(k, v)| (k.clone(), walk(v, values)))
        .collect()
}

/// `KAIZEN_INPUT_<NAME>` / `KAIZEN_PARAM_<NAME>`: upper case, every other character `_`.
pub fn env_name(prefix: &str, name: &str) -> String {
    let mut out = String::from(prefix);
    for c in name.chars() {
        out.push(if c.is_ascii_alphanumeric() {
            c.to_ascii_uppercase()
        } else {
            '_'
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Pipeline> {
        Pipeline::parse(text, Path::new("/nonexistent"))
    }

    const HEAD: &str = "[pipeline]\nname = \"p\"\n";

    #[test]
    fn parses_a_pipeline() {
        let p = parse(&format!(
            "{HEAD}[params]\nlr = 0.1\nepochs = 3\nname = \"x\"\nfast = true\ntags = [\"a\"]\n\
             [[steps]]\nname = \"a\"\nrun = \"echo hi > $KAIZEN_OUTPUT_DIR/out.txt\"\noutputs = [\"out.txt\"]\n\
             [[steps]]\nname = \"b\"\nrun = \"cat x\"\ninputs = [\"a.out.txt\"]\nretries = 2\ntimeout_s = 1.5\n\
             [[steps]]\nname = \"c\"\nkind = \"sql\"\ninputs = [\"a\", \"b\"]\nwith = {{ query = \"SELECT 1\" }}\n"
        ))
        .unwrap();
        assert_eq!(p.steps.len(), 3);
        assert_eq!(p.steps[1].retries, 2);
        assert_eq!(p.steps[2].kind, StepKind::Sql);
        assert!(p.steps[0].cache);
        assert_eq!(p.order().unwrap(), vec!["a", "b", "c"]);
        assert_eq!(p.params["epochs"], ParamValue::Int(3));
    }

    #[test]
    fn errors_name_the_step_and_field() {
        let e = parse(&format!("{HEAD}[[steps]]\nname = \"a\"\nrn = \"x\"\n")).unwrap_err();
        assert!(e.message.starts_with("step 'a': unknown field `rn`"), "{e}");
        let e = parse(&format!("{HEAD}[[steps]]\nname = \"a\"\n")).unwrap_err();
        assert!(
            e.message.contains("step 'a': field 'run' is required"),
            "{e}"
        );
        let e = parse(&format!(
            "{HEAD}[[steps]]\nname = \"a\"\nrun = \"x\"\nretries = \"x\"\n"
        ))
        .unwrap_err();
        assert!(e.message.starts_with("step 'a': invalid type"), "{e}");
        let e = parse(&format!("{HEAD}[[steps]]\nrun = \"x\"\n")).unwrap_err();
        assert!(
            e.message.starts_with("steps[0]: missing field `name`"),
            "{e}"
        );
        let e = parse(&format!(
            "{HEAD}[[steps]]\nname = \"a\"\nkind = \"magic\"\nrun = \"x\"\n"
        ))
        .unwrap_err();
        assert!(
            e.message.contains("step 'a': unknown variant `magic`"),
            "{e}"
        );
        let e = parse("[pipeline]\nname = \"p\"\nowner = \"x\"\n").unwrap_err();
        assert!(e.message.contains("unknown field `owner`"), "{e}");
        let e = parse(&format!(
            "{HEAD}[[steps]]\nname = \"a\"\nrun = \"x\"\nparams = [\"nope\"]\n"
        ))
        .unwrap_err();
        assert!(
            e.message
                .contains("step 'a': field 'params': unknown parameter 'nope'"),
            "{e}"
        );
    }

    #[test]
    fn unknown_inputs_are_errors() {
        let e = parse(&format!(
            "{HEAD}[[steps]]\nname = \"a\"\nrun = \"x\"\noutputs = [\"o\"]\n\
             [[steps]]\nname = \"b\"\nrun = \"x\"\ninputs = [\"prep.o\"]\n"
        ))
        .unwrap_err();
        assert!(
            e.message.contains("step 'b': input 'prep.o' names no step"),
            "{e}"
        );
        let e = parse(&format!(
            "{HEAD}[[steps]]\nname = \"a\"\nrun = \"x\"\noutputs = [\"o\"]\n\
             [[steps]]\nname = \"b\"\nrun = \"x\"\ninputs = [\"a.p\"]\n"
        ))
        .unwrap_err();
        assert!(e.message.contains("step 'a' has no output 'p'"), "{e}");
    }

    #[test]
    fn cycles_are_named() {
        let e = parse(&format!(
            "{HEAD}[[steps]]\nname = \"a\"\nrun = \"x\"\ninputs = [\"c\"]\n\
             [[steps]]\nname = \"b\"\nrun = \"x\"\ninputs = [\"a\"]\n\
             [[steps]]\nname = \"c\"\nrun = \"x\"\ninputs = [\"b\"]\n"
        ))
        .unwrap_err();
        assert_eq!(e.message, "the steps form a cycle: a -> c -> b -> a");
        let e = parse(&format!(
            "{HEAD}[[steps]]\nname = \"a\"\nrun = \"x\"\ninputs = [\"a\"]\n"
        ))
        .unwrap_err();
        assert!(e.message.contains("cannot use its own output"), "{e}");
    }

    #[test]
    fn order_puts_dependencies_first() {
        let p = parse(&format!(
            "{HEAD}[[steps]]\nname = \"train\"\nrun = \"x\"\ninputs = [\"prep\", \"feat\"]\n\
             [[steps]]\nname = \"feat\"\nrun = \"x\"\ninputs = [\"prep\"]\n\
             [[steps]]\nname = \"prep\"\nrun = \"x\"\n"
        ))
        .unwrap();
        assert_eq!(p.order().unwrap(), vec!["prep", "feat", "train"]);
    }

    #[test]
    fn overrides_are_typed_by_the_default() {
        let p = parse(&format!(
            "{HEAD}[params]\nlr = 0.1\nn = 3\nok = false\ns = \"a\"\nl = [1, 2]\n"
        ))
        .unwrap();
        let v = p
            .resolve_params(&[
                "lr=0.5".into(),
                "n=7".into(),
                "ok=true".into(),
                "s=x=y".into(),
                "l=3,4".into(),
            ])
            .unwrap();
        assert_eq!(v["lr"], ParamValue::Float(0.5));
        assert_eq!(v["n"], ParamValue::Int(7));
        assert_eq!(v["ok"], ParamValue::Bool(true));
        assert_eq!(v["s"], ParamValue::String("x=y".into()));
        assert_eq!(
            v["l"],
            ParamValue::List(vec![ParamValue::Int(3), ParamValue::Int(4)])
        );
        let e = p.resolve_params(&["n=abc".into()]).unwrap_err();
        assert_eq!(
            e.message,
            "parameter 'n' (integer): 'abc' is not an integer"
        );
        let e = p.resolve_params(&["zz=1".into()]).unwrap_err();
        assert!(e.message.starts_with("unknown parameter 'zz'"), "{e}");
    }

    #[test]
    fn env_names() {
        assert_eq!(
            env_name("KAIZEN_INPUT_", "prep.clean.csv"),
            "KAIZEN_INPUT_PREP_CLEAN_CSV"
        );
    }
}
