//! ONNX models users bring: an MLflow model directory with the `onnx` flavor (`MLmodel`'s
//! `flavors.onnx.data`), or a bare `.onnx` file, scored by kaizen-ml's pure-Rust evaluator.
//!
//! The columns a request carries come from the `MLmodel` signature (a column signature names
//! them; they are stacked, in order, into the graph's one 2-D input), else from the saved
//! `input_example.json`, else `0`, `1`, ... (pandas' names for an unnamed frame). A graph with
//! one input per column takes each column by its input's name. The answer is a value for a
//! regressor, a label with every class's probability for a classifier (a 2-D probability
//! tensor or skl2onnx's ZipMap), as kaizen's own packages answer.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use kaizen_ml::onnx_eval::{
    Data, ElemType, Labels, OnnxError, OnnxModel, Tensor, Value, ValueKind,
};
use kaizen_ml::{ColumnData, Frame, Task};

use crate::error::{Result, ServeError};
use crate::model::{InputColumn, InputKind, Prediction};

/// `MLmodel`'s file name.
const MLMODEL: &str = "MLmodel";

/// Which runtime scores ONNX models users bring.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Runtime {
    /// kaizen's pure-Rust evaluator (`kaizen_ml::onnx_eval`), in every build.
    #[default]
    Native,
    /// onnxruntime, loaded from this shared library (the `libonnxruntime.so` of the
    /// `onnxruntime` Python wheel); only in builds with the `onnxruntime` feature.
    Ort { library: PathBuf },
}

static RUNTIME: OnceLock<Runtime> = OnceLock::new();

/// Chooses the runtime of the ONNX models this process loads from now on (once; the first
/// choice stays). `Runtime::Ort` is refused by builds without the `onnxruntime` feature.
pub fn set_runtime(runtime: Runtime) -> std::result::Result<(), String> {
    if matches!(runtime, Runtime::Ort { .. }) && !cfg!(feature = "onnxruntime") {
        return Err(
            "this kaizen was built without onnxruntime; rebuild with `--features onnxruntime` \
             or use the native runtime"
                .into(),
        );
    }
    let chosen = RUNTIME.get_or_init(|| runtime.clone());
    if *chosen != runtime {
        return Err(format!("the ONNX runtime is already {chosen:?}"));
    }
    Ok(())
}

/// `KAIZEN_ONNX_RUNTIME`: `native` (the default) or `ort` (onnxruntime, in builds with the
/// `onnxruntime` feature), when [`set_runtime`] was not called.
pub const ENV_RUNTIME: &str = "KAIZEN_ONNX_RUNTIME";
/// `ORT_DYLIB_PATH`: onnxruntime's shared library for `ort` (the `ort` crate's own variable;
/// default `libonnxruntime.so` from the library path).
pub const ENV_ORT_LIBRARY: &str = "ORT_DYLIB_PATH";

fn runtime() -> &'static Runtime {
    RUNTIME.get_or_init(|| match std::env::var(ENV_RUNTIME).as_deref() {
        Ok("ort" | "onnxruntime") => Runtime::Ort {
            library: std::env::var_os(ENV_ORT_LIBRARY)
                .map_or_else(|| PathBuf::from("libonnxruntime.so"), PathBuf::from),
        },
        _ => Runtime::Native,
    })
}

/// What runs the graph.
#[derive(Debug, Clone)]
enum Engine {
    Native,
    #[cfg(feature = "onnxruntime")]
    Ort(std::sync::Arc<ort_backend::OrtRunner>),
}

impl Engine {
    fn run(
        &self,
        model: &OnnxModel,
        inputs: Vec<Tensor>,
    ) -> std::result::Result<Vec<Value>, String> {
        match self {
            Engine::Native => model.run(inputs).map_err(|e| e.to_string()),
            #[cfg(feature = "onnxruntime")]
            Engine::Ort(runner) => runner.run(inputs),
        }
    }
}

/// How request columns become graph inputs.
#[derive(Debug, Clone)]
enum Layout {
    /// All columns, in order, as the rows of one 2-D input.
    Stacked { elem: ElemType },
    /// One `[N, 1]` input per column, in the graph's input order.
    PerColumn { elems: Vec<ElemType> },
}

/// Which graph outputs answer.
#[derive(Debug, Clone)]
enum Answer {
    Value {
        output: usize,
    },
    Class {
        label: usize,
        probabilities: Option<usize>,
    },
}

/// A user's ONNX model with what serving needs to call it.
#[derive(Debug, Clone)]
pub struct OnnxServed {
    model: OnnxModel,
    engine: Engine,
    layout: Layout,
    answer: Answer,
    /// The model file.
    pub file: PathBuf,
    /// The class labels, in class order (classification).
    pub labels: Vec<String>,
    pub task: Task,
    pub inputs: Vec<InputColumn>,
    /// MLflow's type name per input column (`float`, `double`, `long`, `string`).
    pub dtypes: Vec<String>,
}

fn onnx_error(path: &Path, e: OnnxError) -> ServeError {
    ServeError::Onnx {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

fn load_error(path: &Path, message: impl Into<String>) -> ServeError {
    ServeError::Onnx {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// Whether `path` is an ONNX model this module serves: a `.onnx` file, or a directory whose
/// `MLmodel` has the `onnx` flavor and that is not a kaizen package.
pub fn is_onnx_model(path: &Path) -> bool {
    if path.is_file() {
        return path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("onnx"));
    }
    if path.join(kaizen_train::package::META_FILE).is_file() {
        return false;
    }
    std::fs::read_to_string(path.join(MLMODEL))
        .ok()
        .and_then(|text| onnx_flavor_data(&text))
        .is_some()
}

/// A YAML mapping's lines, as `(indent, key, value)`, with multi-line (folded) scalars
/// joined. Enough of YAML for MLflow's `MLmodel` files.
fn yaml_entries(text: &str) -> Vec<(usize, String, String)> {
    let mut entries: Vec<(usize, String, String)> = Vec::new();
    for line in text.lines() {
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let indent = line.len() - trimmed.len();
        let key_end = trimmed
            .find(": ")
            .or_else(|| trimmed.strip_suffix(':').map(str::len));
        let is_key = key_end.is_some_and(|k| {
            !trimmed.starts_with('-')
                && !trimmed.starts_with('\'')
                && !trimmed.starts_with('"')
                && !trimmed[..k].contains(' ')
        });
        match (is_key, key_end, entries.last_mut()) {
            (true, Some(k), _) => {
                let value = trimmed[k..].trim_start_matches(':').trim().to_string();
                entries.push((indent, trimmed[..k].to_string(), value));
            }
            // A continuation of the last value (folded: the line break is a space).
            (_, _, Some(last)) if indent > last.0 && !last.2.is_empty() => {
                last.2.push(' ');
                last.2.push_str(trimmed);
            }
            _ => {}
        }
    }
    entries
}

/// A YAML scalar's text: quotes removed (`''` is `'` in single quotes).
fn yaml_scalar(value: &str) -> String {
    if let Some(inner) = value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')) {
        return inner.replace("''", "'");
    }
    if let Some(inner) = value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
        return serde_json::from_str(&format!("\"{inner}\"")).unwrap_or_else(|_| inner.to_string());
    }
    value.to_string()
}

/// The value of `path` (keys from the top) in `entries`.
fn yaml_get(entries: &[(usize, String, String)], path: &[&str]) -> Option<String> {
    let (mut start, mut end) = (0, entries.len());
    let mut parent = None::<usize>;
    for (depth, key) in path.iter().enumerate() {
        let indent = match parent {
            None => 0,
            Some(p) => entries.get(start).map(|e| e.0).filter(|&i| i > p)?,
        };
        let at = (start..end).find(|&i| entries[i].0 == indent && entries[i].1 == *key)?;
        if depth + 1 == path.len() {
            return Some(yaml_scalar(&entries[at].2));
        }
        start = at + 1;
        end = (start..end)
            .find(|&i| entries[i].0 <= indent)
            .unwrap_or(end);
        parent = Some(indent);
    }
    None
}

/// `flavors.onnx.data` of an `MLmodel`.
fn onnx_flavor_data(text: &str) -> Option<String> {
    yaml_get(&yaml_entries(text), &["flavors", "onnx", "data"]).filter(|d| !d.is_empty())
}

/// One input of an MLflow signature.
#[derive(Debug, serde::Deserialize)]
struct SignatureInput {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    name: Option<String>,
}

/// The columns named by `MLmodel`'s column signature (none for a tensor signature).
fn signature_columns(text: &str) -> Option<Vec<(String, String)>> {
    let raw = yaml_get(&yaml_entries(text), &["signature", "inputs"])?;
    let inputs: Vec<SignatureInput> = serde_json::from_str(&raw).ok()?;
    if inputs.is_empty()
        || inputs
            .iter()
            .any(|i| i.kind == "tensor" || i.name.is_none())
    {
        return None;
    }
    Some(
        inputs
            .into_iter()
            .map(|i| (i.name.unwrap_or_default(), i.kind))
            .collect(),
    )
}

/// The columns of `input_example.json` (`{"columns": [...], "data": ...}`).
fn example_columns(dir: &Path) -> Option<Vec<String>> {
    let text = std::fs::read_to_string(dir.join("input_example.json")).ok()?;
    let value: serde_json::Value = serde_json::from_str(&text).ok()?;
    let columns = value
        .get("columns")
        .or_else(|| value.pointer("/dataframe_split/columns"))?
        .as_array()?;
    columns
        .iter()
        .map(|c| match c {
            serde_json::Value::String(s) => Some(s.clone()),
            other => Some(other.to_string()),
        })
        .collect()
}

fn mlflow_type(elem: ElemType) -> &'static str {
    match elem {
        ElemType::Float => "float",
        ElemType::Double => "double",
        ElemType::Int64 => "long",
        ElemType::String => "string",
    }
}

fn input_kind(elem: ElemType) -> InputKind {
    match elem {
        ElemType::String => InputKind::Text,
        _ => InputKind::Number,
    }
}

impl OnnxServed {
    /// The model at `path`: an MLflow model directory with the `onnx` flavor, or a `.onnx` file.
    pub fn load(path: &Path) -> Result<OnnxServed> {
        let (file, mlmodel) = if path.is_dir() {
            let text = std::fs::read_to_string(path.join(MLMODEL))
                .map_err(|e| load_error(path, format!("cannot read its MLmodel: {e}")))?;
            let data = onnx_flavor_data(&text).ok_or_else(|| {
                load_error(path, "its MLmodel has no `onnx` flavor (flavors.onnx.data)")
            })?;
            (path.join(data), Some(text))
        } else {
            (path.to_path_buf(), None)
        };
        let bytes = std::fs::read(&file)
            .map_err(|e| load_error(&file, format!("cannot read the model file: {e}")))?;
        // Another runtime may run operators the evaluator does not: read the graph only.
        let model = match runtime() {
            Runtime::Native => OnnxModel::from_bytes(&bytes),
            Runtime::Ort { .. } => OnnxModel::describe(&bytes),
        }
        .map_err(|e| onnx_error(&file, e))?;
        let engine = match runtime() {
            Runtime::Native => Engine::Native,
            #[cfg(feature = "onnxruntime")]
            Runtime::Ort { library } => Engine::Ort(std::sync::Arc::new(
                ort_backend::OrtRunner::load(
                    &bytes,
                    library,
                    model.inputs().iter().map(|i| i.name.clone()).collect(),
                )
                .map_err(|e| load_error(&file, e))?,
            )),
            #[cfg(not(feature = "onnxruntime"))]
            Runtime::Ort { .. } => {
                return Err(load_error(
                    &file,
                    "onnxruntime was asked for, but this kaizen was built without the \
                     `onnxruntime` feature",
                ));
            }
        };
        let dir = path.is_dir().then_some(path);
        let signature = mlmodel.as_deref().and_then(signature_columns);

        let graph_inputs = model.inputs();
        let tensor = |i: usize| match &graph_inputs[i].kind {
            ValueKind::Tensor { elem, shape } => Some((*elem, shape.clone())),
            _ => None,
        };
        let (layout, names, elems): (Layout, Vec<String>, Vec<ElemType>) = match graph_inputs.len()
        {
            0 => return Err(load_error(&file, "the graph takes no input")),
            1 => {
                let (elem, shape) = tensor(0).ok_or_else(|| {
                    load_error(
                        &file,
                        format!("input `{}` is not a tensor", graph_inputs[0].name),
                    )
                })?;
                let width = match shape.as_slice() {
                    [_, w] => *w,
                    [_] | [] => Some(1),
                    _ => {
                        return Err(load_error(
                            &file,
                            format!(
                                "input `{}` has {} dimensions; kaizen serves models of one 2-D \
                                 input (rows of columns)",
                                graph_inputs[0].name,
                                shape.len()
                            ),
                        ));
                    }
                };
                let names: Vec<String> = match (&signature, dir.and_then(example_columns)) {
                    (Some(columns), _) => columns.iter().map(|c| c.0.clone()).collect(),
                    (None, Some(columns)) if width.is_none_or(|w| w == columns.len()) => columns,
                    _ => match width {
                        Some(w) => (0..w).map(|i| i.to_string()).collect(),
                        None => {
                            return Err(load_error(
                                &file,
                                format!(
                                    "input `{}` has no fixed width and the model no column \
                                     signature; log it with a signature",
                                    graph_inputs[0].name
                                ),
                            ));
                        }
                    },
                };
                if let Some(w) = width
                    && w != names.len()
                {
                    return Err(load_error(
                        &file,
                        format!(
                            "the signature has {} columns; input `{}` takes {w}",
                            names.len(),
                            graph_inputs[0].name
                        ),
                    ));
                }
                let elems = vec![elem; names.len()];
                (Layout::Stacked { elem }, names, elems)
            }
            _ => {
                let mut names = Vec::new();
                let mut elems = Vec::new();
                for (i, input) in graph_inputs.iter().enumerate() {
                    let (elem, shape) = tensor(i).ok_or_else(|| {
                        load_error(&file, format!("input `{}` is not a tensor", input.name))
                    })?;
                    if shape.len() > 2 || shape.get(1).is_some_and(|w| *w != Some(1)) {
                        return Err(load_error(
                            &file,
                            format!(
                                "input `{}` is not one column; a model of several inputs must \
                                 take one column in each",
                                input.name
                            ),
                        ));
                    }
                    names.push(input.name.clone());
                    elems.push(elem);
                }
                (
                    Layout::PerColumn {
                        elems: elems.clone(),
                    },
                    names,
                    elems,
                )
            }
        };
        let inputs: Vec<InputColumn> = names
            .iter()
            .zip(&elems)
            .map(|(name, &elem)| InputColumn {
                name: name.clone(),
                kind: input_kind(elem),
            })
            .collect();
        let dtypes = elems.iter().map(|&e| mlflow_type(e).to_string()).collect();

        // One row of zeros (or empty text) shows what the outputs hold and that the graph runs.
        let probe: Vec<Tensor> = match &layout {
            Layout::Stacked { elem } => vec![zeros(*elem, vec![1, names.len()])],
            Layout::PerColumn { elems } => elems.iter().map(|&e| zeros(e, vec![1, 1])).collect(),
        };
        let outputs = engine.run(&model, probe).map_err(|e| {
            load_error(
                &file,
                format!("the graph does not run on a row of zeros: {e}"),
            )
        })?;
        let mut label = None;
        let mut probabilities = None;
        let mut value = None;
        for (i, out) in outputs.iter().enumerate() {
            match out {
                Value::Maps(_) => {
                    probabilities.get_or_insert(i);
                }
                Value::Tensor(t) => match t.data {
                    Data::Int64(_) | Data::String(_) if t.data.len() == 1 => {
                        label.get_or_insert(i);
                    }
                    Data::Float(_) | Data::Double(_) if t.data.len() >= 2 => {
                        probabilities.get_or_insert(i);
                    }
                    Data::Float(_) | Data::Double(_) => {
                        value.get_or_insert(i);
                    }
                    _ => {}
                },
            }
        }
        let (answer, labels) = match (label, probabilities, value) {
            (Some(label), probabilities, _) => {
                let width = probabilities.map(|p| match &outputs[p] {
                    Value::Maps(m) => m.labels.len(),
                    Value::Tensor(t) => t.data.len(),
                });
                let labels = match (model.class_labels(), width) {
                    (Some(l), Some(w)) if l.len() == w => l.names(),
                    (Some(l), None) => l.names(),
                    (_, Some(w)) => (0..w).map(|i| i.to_string()).collect(),
                    (None, None) => Vec::new(),
                };
                (
                    Answer::Class {
                        label,
                        probabilities,
                    },
                    labels,
                )
            }
            (None, _, Some(output)) => (Answer::Value { output }, Vec::new()),
            _ => {
                return Err(load_error(
                    &file,
                    "its outputs are neither a label (with probabilities) nor a value",
                ));
            }
        };
        let task = match (&answer, labels.len()) {
            (Answer::Value { .. }, _) => Task::Regression,
            (_, 0..=2) => Task::Binary,
            (_, classes) => Task::Multiclass { classes },
        };
        tracing::info!(
            file = %file.display(),
            operators = ?model.operators(),
            columns = inputs.len(),
            "ONNX model loaded"
        );
        Ok(OnnxServed {
            model,
            engine,
            layout,
            answer,
            file,
            labels,
            task,
            inputs,
            dtypes,
        })
    }

    /// The graph's producer (`skl2onnx`, ...), or `onnx`.
    pub fn producer(&self) -> &str {
        if self.model.producer.is_empty() {
            "onnx"
        } else {
            &self.model.producer
        }
    }

    /// The graph's inputs for the rows of `frame` (which holds the input columns).
    fn tensors(&self, frame: &Frame) -> Result<Vec<Tensor>> {
        let rows = frame.rows();
        let column = |c: &InputColumn| {
            frame
                .column(&c.name)
                .ok_or_else(|| ServeError::bad_request(format!("missing column `{}`", c.name)))
        };
        match &self.layout {
            Layout::Stacked { elem } => {
                let width = self.inputs.len();
                let columns: Vec<&[f64]> = self
                    .inputs
                    .iter()
                    .map(|c| match column(c)? {
                        ColumnData::Numeric(v) => Ok(v.as_slice()),
                        ColumnData::Text(_) => Err(ServeError::bad_request(format!(
                            "column `{}` is text; the model takes numbers there",
                            c.name
                        ))),
                    })
                    .collect::<Result<_>>()?;
                let at = |r: usize, c: usize| columns[c][r];
                let data = match elem {
                    ElemType::Float => Data::Float(
                        (0..rows * width)
                            .map(|i| at(i / width, i % width) as f32)
                            .collect(),
                    ),
                    ElemType::Double => Data::Double(
                        (0..rows * width)
                            .map(|i| at(i / width, i % width))
                            .collect(),
                    ),
                    ElemType::Int64 => Data::Int64(
                        (0..rows * width)
                            .map(|i| {
                                integer(
                                    &self.inputs[i % width].name,
                                    i / width,
                                    at(i / width, i % width),
                                )
                            })
                            .collect::<Result<_>>()?,
                    ),
                    ElemType::String => {
                        return Err(ServeError::bad_request(
                            "the model takes text in one tensor",
                        ));
                    }
                };
                Ok(vec![
                    Tensor::new(vec![rows, width], data)
                        .map_err(|e| ServeError::bad_request(e.to_string()))?,
                ])
            }
            Layout::PerColumn { elems } => self
                .inputs
                .iter()
                .zip(elems)
                .map(|(c, &elem)| {
                    let data = match (column(c)?, elem) {
                        (ColumnData::Numeric(v), ElemType::Float) => {
                            Data::Float(v.iter().map(|&x| x as f32).collect())
                        }
                        (ColumnData::Numeric(v), ElemType::Double) => Data::Double(v.clone()),
                        (ColumnData::Numeric(v), ElemType::Int64) => Data::Int64(
                            v.iter()
                                .enumerate()
                                .map(|(r, &x)| integer(&c.name, r, x))
                                .collect::<Result<_>>()?,
                        ),
                        (ColumnData::Numeric(v), ElemType::String) => {
                            Data::String(v.iter().map(|x| x.to_string()).collect())
                        }
                        (ColumnData::Text(v), ElemType::String) => {
                            Data::String(v.iter().map(|s| s.clone().unwrap_or_default()).collect())
                        }
                        (ColumnData::Text(_), _) => {
                            return Err(ServeError::bad_request(format!(
                                "column `{}` is text; the model takes numbers there",
                                c.name
                            )));
                        }
                    };
                    Tensor::new(vec![rows, 1], data)
                        .map_err(|e| ServeError::bad_request(e.to_string()))
                })
                .collect(),
        }
    }

    /// One prediction per row of `frame`.
    pub fn score(&self, frame: &Frame) -> Result<Vec<Prediction>> {
        let rows = frame.rows();
        if rows == 0 {
            return Ok(Vec::new());
        }
        let outputs = self
            .engine
            .run(&self.model, self.tensors(frame)?)
            .map_err(|e| ServeError::Scoring(kaizen_ml::MlError::invalid(e)))?;
        let fail = |m: &str| ServeError::Scoring(kaizen_ml::MlError::invalid(m.to_string()));
        match &self.answer {
            Answer::Value { output } => {
                let Value::Tensor(t) = &outputs[*output] else {
                    return Err(fail("the value output is not a tensor"));
                };
                let v = t.data.to_f64();
                let width = v.len() / rows;
                if width == 0 {
                    return Err(fail("the value output is empty"));
                }
                Ok((0..rows).map(|r| Prediction::Value(v[r * width])).collect())
            }
            Answer::Class {
                label,
                probabilities,
            } => {
                let Value::Tensor(labels) = &outputs[*label] else {
                    return Err(fail("the label output is not a tensor"));
                };
                let names: Vec<String> = match &labels.data {
                    Data::Int64(v) => v.iter().map(i64::to_string).collect(),
                    Data::String(v) => v.clone(),
                    _ => return Err(fail("the label output holds no labels")),
                };
                let k = self.labels.len();
                let probs: Vec<f64> = match probabilities.map(|p| &outputs[p]) {
                    Some(Value::Maps(m)) => m.probabilities.iter().map(|&p| f64::from(p)).collect(),
                    Some(Value::Tensor(t)) => t.data.to_f64().into_owned(),
                    None => Vec::new(),
                };
                if names.len() != rows || (!probs.is_empty() && probs.len() != rows * k) {
                    return Err(fail("the outputs do not have one row per input row"));
                }
                Ok(names
                    .into_iter()
                    .enumerate()
                    .map(|(r, label)| Prediction::Class {
                        label,
                        probabilities: if probs.is_empty() {
                            Vec::new()
                        } else {
                            self.labels
                                .iter()
                                .cloned()
                                .zip(probs[r * k..(r + 1) * k].iter().copied())
                                .collect()
                        },
                    })
                    .collect())
            }
        }
    }
}

fn integer(column: &str, row: usize, x: f64) -> Result<i64> {
    if x.is_finite() && x.fract() == 0.0 {
        Ok(x as i64)
    } else {
        Err(ServeError::bad_request(format!(
            "column `{column}` row {}: {x} is not an integer; the model takes integers there",
            row + 1
        )))
    }
}

fn zeros(elem: ElemType, shape: Vec<usize>) -> Tensor {
    let n = shape.iter().product();
    let data = match elem {
        ElemType::Float => Data::Float(vec![0.0; n]),
        ElemType::Double => Data::Double(vec![0.0; n]),
        ElemType::Int64 => Data::Int64(vec![0; n]),
        ElemType::String => Data::String(vec![String::new(); n]),
    };
    Tensor { shape, data }
}

/// Labels as text (for messages and `/health`).
pub fn label_names(labels: &Labels) -> Vec<String> {
    labels.names()
}

/// onnxruntime through the `ort` crate, the library loaded at run time.
#[cfg(feature = "onnxruntime")]
mod ort_backend {
    use std::borrow::Cow;
    use std::path::Path;
    use std::sync::{Mutex, OnceLock};

    use kaizen_ml::onnx_eval::{Data, Tensor, Value, without_zipmap};
    use ort::environment::Environment;
    use ort::session::{Session, SessionInputValue};
    use ort::value::{DynValue, Tensor as OrtTensor};

    static ENVIRONMENT: OnceLock<Result<Environment, String>> = OnceLock::new();

    fn environment(library: &Path) -> Result<&'static Environment, String> {
        ENVIRONMENT
            .get_or_init(|| {
                ort::init_from(library)
                    .map_err(|e| {
                        format!("cannot load onnxruntime from {}: {e}", library.display())
                    })?
                    .build()
                    .map_err(|e| e.to_string())
            })
            .as_ref()
            .map_err(Clone::clone)
    }

    /// A session; onnxruntime's `run` takes it mutably, so requests take turns.
    pub struct OrtRunner {
        session: Mutex<Session>,
        inputs: Vec<String>,
    }

    impl std::fmt::Debug for OrtRunner {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("OrtRunner")
                .field("inputs", &self.inputs)
                .finish()
        }
    }

    fn text(e: impl std::fmt::Display) -> String {
        format!("onnxruntime: {e}")
    }

    impl OrtRunner {
        /// A session over `bytes` (ZipMap outputs read as their probability tensors).
        pub fn load(
            bytes: &[u8],
            library: &Path,
            inputs: Vec<String>,
        ) -> Result<OrtRunner, String> {
            let env = environment(library)?;
            let bytes = without_zipmap(bytes).map_err(|e| e.to_string())?;
            let session = Session::builder(env)
                .map_err(text)?
                .commit_from_memory(&bytes)
                .map_err(text)?;
            Ok(OrtRunner {
                session: Mutex::new(session),
                inputs,
            })
        }

        pub fn run(&self, inputs: Vec<Tensor>) -> Result<Vec<Value>, String> {
            let mut feed: Vec<(Cow<'static, str>, SessionInputValue<'static>)> = Vec::new();
            for (name, t) in self.inputs.iter().zip(inputs) {
                let shape: Vec<i64> = t.shape.iter().map(|&d| d as i64).collect();
                let value: DynValue = match t.data {
                    Data::Float(v) => OrtTensor::from_array((shape, v)).map_err(text)?.into_dyn(),
                    Data::Double(v) => OrtTensor::from_array((shape, v)).map_err(text)?.into_dyn(),
                    Data::Int64(v) => OrtTensor::from_array((shape, v)).map_err(text)?.into_dyn(),
                    Data::String(v) => OrtTensor::from_string_array((shape, v.as_slice()))
                        .map_err(text)?
                        .into_dyn(),
                };
                feed.push((Cow::Owned(name.clone()), value.into()));
            }
            let mut session = self
                .session
                .lock()
                .map_err(|_| "the onnxruntime session is poisoned".to_string())?;
            let outputs = session.run(feed).map_err(text)?;
            (0..outputs.len()).map(|i| value_of(&outputs[i])).collect()
        }
    }

    fn value_of(v: &DynValue) -> Result<Value, String> {
        let shape = |s: &[i64]| s.iter().map(|&d| d.max(0) as usize).collect::<Vec<_>>();
        let data = if let Ok((s, d)) = v.try_extract_tensor::<f32>() {
            (shape(s), Data::Float(d.to_vec()))
        } else if let Ok((s, d)) = v.try_extract_tensor::<f64>() {
            (shape(s), Data::Double(d.to_vec()))
        } else if let Ok((s, d)) = v.try_extract_tensor::<i64>() {
            (shape(s), Data::Int64(d.to_vec()))
        } else if let Ok((s, d)) = v.try_extract_strings() {
            (shape(s), Data::String(d))
        } else {
            return Err("onnxruntime answered a value that is not a tensor".into());
        };
        Tensor::new(data.0, data.1)
            .map(Value::Tensor)
            .map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MLMODEL_TEXT: &str = "artifact_path: model
flavors:
  onnx:
    code: null
    data: model.onnx
    onnx_version: 1.23.2
    providers:
    - CPUExecutionProvider
  python_function:
    data: other.onnx
    loader_module: mlflow.onnx
mlflow_version: 3.17.2
signature:
  inputs: '[{\"type\": \"float\", \"name\": \"mean radius\", \"required\": true}, {\"type\":
    \"float\", \"name\": \"it''s\", \"required\": true}]'
  outputs: '[{\"type\": \"long\", \"name\": \"label\", \"required\": true}]'
  params: null
";

    #[test]
    fn reads_the_onnx_flavor_and_a_folded_signature() {
        assert_eq!(
            onnx_flavor_data(MLMODEL_TEXT).as_deref(),
            Some("model.onnx")
        );
        assert_eq!(
            signature_columns(MLMODEL_TEXT),
            Some(vec![
                ("mean radius".to_string(), "float".to_string()),
                ("it's".to_string(), "float".to_string())
            ])
        );
        assert_eq!(
            onnx_flavor_data("flavors:\n  sklearn:\n    data: model.pkl\n"),
            None
        );
        let tensor = "signature:\n  inputs: '[{\"type\": \"tensor\", \"tensor-spec\": {\"dtype\": \"float32\", \"shape\": [-1, 4]}}]'\n";
        assert_eq!(signature_columns(tensor), None);
    }
}
