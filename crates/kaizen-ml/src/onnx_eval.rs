//! A pure-Rust evaluator of ONNX graphs: the operators scikit-learn models use after skl2onnx
//! (`ai.onnx.ml` preprocessing, linear and tree models, ZipMap) and the `ai.onnx` arithmetic
//! of small networks, with no native library.
//!
//! [`OnnxModel::from_bytes`] decodes a `ModelProto` with the prost messages of
//! [`crate::onnx::proto`], checks every node (an operator outside the supported set is refused
//! here, naming it and its domain, never at request time), orders the nodes and precomputes
//! each one's parameters, so [`OnnxModel::run`] does arithmetic only. Results follow ONNX
//! Runtime's CPU kernels, including its binary-classifier conventions, to float precision.

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::Path;

use prost::Message;

use crate::onnx::proto::{AttributeProto, ModelProto, NodeProto, TensorProto, data_type};

/// Why a model cannot be loaded or an input cannot be evaluated.
#[derive(Debug, thiserror::Error)]
pub enum OnnxError {
    #[error("cannot read `{path}`: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("not an ONNX model: {0}")]
    Decode(#[from] prost::DecodeError),
    /// An operator the evaluator does not implement (found at load time).
    #[error(
        "unsupported ONNX operator `{op}` (domain `{domain}`, node `{node}`); supported: {}",
        supported_list()
    )]
    Unsupported {
        op: String,
        domain: String,
        node: String,
    },
    /// A node whose attributes or inputs do not make sense (found at load time).
    #[error("ONNX node `{node}` ({op}): {message}")]
    Node {
        node: String,
        op: String,
        message: String,
    },
    /// The graph as a whole is inconsistent (found at load time).
    #[error("ONNX graph: {0}")]
    Graph(String),
    /// An input that does not fit the graph (at run time).
    #[error("{0}")]
    Input(String),
}

pub type Result<T, E = OnnxError> = std::result::Result<T, E>;

const ML: &str = "ai.onnx.ml";

/// The operators this evaluator runs, as `(domain, op)`.
pub const SUPPORTED: &[(&str, &str)] = &[
    (ML, "ArrayFeatureExtractor"),
    (ML, "Binarizer"),
    (ML, "Cast"),
    (ML, "Imputer"),
    (ML, "LinearClassifier"),
    (ML, "LinearRegressor"),
    (ML, "Normalizer"),
    (ML, "OneHotEncoder"),
    (ML, "Scaler"),
    (ML, "TreeEnsembleClassifier"),
    (ML, "TreeEnsembleRegressor"),
    (ML, "ZipMap"),
    ("ai.onnx", "Abs"),
    ("ai.onnx", "Add"),
    ("ai.onnx", "ArgMax"),
    ("ai.onnx", "Cast"),
    ("ai.onnx", "Concat"),
    ("ai.onnx", "Div"),
    ("ai.onnx", "Exp"),
    ("ai.onnx", "Flatten"),
    ("ai.onnx", "Gemm"),
    ("ai.onnx", "Identity"),
    ("ai.onnx", "Log"),
    ("ai.onnx", "MatMul"),
    ("ai.onnx", "Mul"),
    ("ai.onnx", "Neg"),
    ("ai.onnx", "Relu"),
    ("ai.onnx", "Reshape"),
    ("ai.onnx", "Sigmoid"),
    ("ai.onnx", "Softmax"),
    ("ai.onnx", "Sqrt"),
    ("ai.onnx", "Squeeze"),
    ("ai.onnx", "Sub"),
    ("ai.onnx", "Tanh"),
    ("ai.onnx", "Unsqueeze"),
];

fn supported_list() -> String {
    let ml: Vec<&str> = SUPPORTED
        .iter()
        .filter(|(d, _)| *d == ML)
        .map(|(_, o)| *o)
        .collect();
    let core: Vec<&str> = SUPPORTED
        .iter()
        .filter(|(d, _)| *d != ML)
        .map(|(_, o)| *o)
        .collect();
    format!("ai.onnx.ml {}; ai.onnx {}", ml.join(", "), core.join(", "))
}

/// The element type of a tensor. `int32` and `bool` tensors are held as `Int64`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElemType {
    Float,
    Double,
    Int64,
    String,
}

impl ElemType {
    fn from_onnx(t: i32) -> Option<ElemType> {
        match t {
            data_type::FLOAT => Some(ElemType::Float),
            data_type::DOUBLE => Some(ElemType::Double),
            data_type::INT64 | data_type::INT32 | data_type::BOOL => Some(ElemType::Int64),
            data_type::STRING => Some(ElemType::String),
            // int8, uint8, int16, uint16, uint32, uint64 as integers too.
            2..=5 | 12 | 13 => Some(ElemType::Int64),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            ElemType::Float => "float",
            ElemType::Double => "double",
            ElemType::Int64 => "int64",
            ElemType::String => "string",
        }
    }
}

/// A tensor's values, row-major.
#[derive(Debug, Clone, PartialEq)]
pub enum Data {
    Float(Vec<f32>),
    Double(Vec<f64>),
    Int64(Vec<i64>),
    String(Vec<String>),
}

impl Data {
    pub fn len(&self) -> usize {
        match self {
            Data::Float(v) => v.len(),
            Data::Double(v) => v.len(),
            Data::Int64(v) => v.len(),
            Data::String(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn elem_type(&self) -> ElemType {
        match self {
            Data::Float(_) => ElemType::Float,
            Data::Double(_) => ElemType::Double,
            Data::Int64(_) => ElemType::Int64,
            Data::String(_) => ElemType::String,
        }
    }

    /// The values as numbers (text that does not parse is NaN).
    pub fn to_f64(&self) -> Cow<'_, [f64]> {
        match self {
            Data::Double(v) => Cow::Borrowed(v),
            Data::Float(v) => Cow::Owned(v.iter().map(|&x| f64::from(x)).collect()),
            Data::Int64(v) => Cow::Owned(v.iter().map(|&x| x as f64).collect()),
            Data::String(v) => Cow::Owned(
                v.iter()
                    .map(|s| s.trim().parse().unwrap_or(f64::NAN))
                    .collect(),
            ),
        }
    }

    /// `values` as data of type `elem`.
    fn from_f64(elem: ElemType, values: Vec<f64>) -> Data {
        match elem {
            ElemType::Float => Data::Float(values.into_iter().map(|x| x as f32).collect()),
            ElemType::Double => Data::Double(values),
            ElemType::Int64 => Data::Int64(values.into_iter().map(|x| x as i64).collect()),
            ElemType::String => Data::String(values.into_iter().map(|x| x.to_string()).collect()),
        }
    }

    fn cast(&self, to: ElemType) -> Data {
        match (self, to) {
            (d, t) if d.elem_type() == t => d.clone(),
            (Data::Int64(v), ElemType::String) => {
                Data::String(v.iter().map(i64::to_string).collect())
            }
            (Data::Float(v), ElemType::String) => {
                Data::String(v.iter().map(f32::to_string).collect())
            }
            (d, t) => Data::from_f64(t, d.to_f64().into_owned()),
        }
    }

    fn take(&self, indices: &[usize]) -> Data {
        match self {
            Data::Float(v) => Data::Float(indices.iter().map(|&i| v[i]).collect()),
            Data::Double(v) => Data::Double(indices.iter().map(|&i| v[i]).collect()),
            Data::Int64(v) => Data::Int64(indices.iter().map(|&i| v[i]).collect()),
            Data::String(v) => Data::String(indices.iter().map(|&i| v[i].clone()).collect()),
        }
    }
}

/// A dense tensor.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    pub shape: Vec<usize>,
    pub data: Data,
}

impl Tensor {
    /// A tensor of `shape` over `data`, refused when the sizes differ.
    pub fn new(shape: Vec<usize>, data: Data) -> Result<Tensor> {
        let size: usize = shape.iter().product();
        if size != data.len() {
            return Err(OnnxError::Input(format!(
                "a tensor of shape {shape:?} needs {size} values, not {}",
                data.len()
            )));
        }
        Ok(Tensor { shape, data })
    }

    fn of(shape: Vec<usize>, data: Data) -> Tensor {
        Tensor { shape, data }
    }

    fn elem_type(&self) -> ElemType {
        self.data.elem_type()
    }

    /// `(rows, columns)` of a tensor read as a matrix: a vector is one row.
    fn matrix_dims(&self) -> (usize, usize) {
        match self.shape.len() {
            0 => (1, 1),
            1 => (1, self.shape[0]),
            _ => {
                let cols = self.shape[self.shape.len() - 1];
                (self.data.len() / cols.max(1), cols)
            }
        }
    }

    fn ints(&self) -> Vec<i64> {
        match &self.data {
            Data::Int64(v) => v.clone(),
            d => d.to_f64().iter().map(|&x| x as i64).collect(),
        }
    }
}

/// Class labels of a classifier: numbers or text.
#[derive(Debug, Clone, PartialEq)]
pub enum Labels {
    Int64(Vec<i64>),
    String(Vec<String>),
}

impl Labels {
    pub fn len(&self) -> usize {
        match self {
            Labels::Int64(v) => v.len(),
            Labels::String(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The labels as text, in class order.
    pub fn names(&self) -> Vec<String> {
        match self {
            Labels::Int64(v) => v.iter().map(i64::to_string).collect(),
            Labels::String(v) => v.clone(),
        }
    }

    fn data(&self, indices: impl Iterator<Item = usize>) -> Data {
        match self {
            Labels::Int64(v) => Data::Int64(indices.map(|i| v[i]).collect()),
            Labels::String(v) => Data::String(indices.map(|i| v[i].clone()).collect()),
        }
    }
}

/// The output of ZipMap: one map of class label to probability per row.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassMaps {
    pub labels: Labels,
    pub rows: usize,
    /// Row-major `rows × labels.len()`.
    pub probabilities: Vec<f32>,
}

/// A value flowing through the graph.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Tensor(Tensor),
    Maps(ClassMaps),
}

impl Value {
    fn tensor(&self) -> Result<&Tensor> {
        match self {
            Value::Tensor(t) => Ok(t),
            Value::Maps(_) => Err(OnnxError::Input(
                "a sequence of maps where a tensor is expected".into(),
            )),
        }
    }
}

/// What a graph input or output holds, from its declared type.
#[derive(Debug, Clone, PartialEq)]
pub enum ValueKind {
    /// A tensor; `None` dimensions are dynamic (the batch).
    Tensor {
        elem: ElemType,
        shape: Vec<Option<usize>>,
    },
    /// A sequence of maps (ZipMap's output).
    Maps,
    /// A type the evaluator does not read.
    Other,
}

/// A graph input or output.
#[derive(Debug, Clone, PartialEq)]
pub struct ValueSpec {
    pub name: String,
    pub kind: ValueKind,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Post {
    None,
    Logistic,
    Softmax,
    SoftmaxZero,
    Probit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Leaf,
    Leq,
    Lt,
    Gte,
    Gt,
    Eq,
    Neq,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Aggregate {
    Sum,
    Average,
    Min,
    Max,
}

#[derive(Debug, Clone)]
struct TreeNode {
    feature: usize,
    value: f64,
    mode: Mode,
    yes: u32,
    no: u32,
    missing_true: bool,
    /// The leaf's weights: `weights[start..end]`.
    start: u32,
    end: u32,
}

/// A tree ensemble, flattened.
#[derive(Debug, Clone)]
struct Trees {
    roots: Vec<u32>,
    nodes: Vec<TreeNode>,
    /// `(target or class, weight)` of the leaves.
    weights: Vec<(usize, f64)>,
    features: usize,
    targets: usize,
}

impl Trees {
    /// Per tree, the leaf `x` falls in.
    #[inline]
    fn leaf(&self, root: u32, x: &[f64]) -> &TreeNode {
        let mut node = &self.nodes[root as usize];
        loop {
            let v = x[node.feature];
            let yes = match node.mode {
                Mode::Leaf => return node,
                _ if v.is_nan() => node.missing_true,
                Mode::Leq => v <= node.value,
                Mode::Lt => v < node.value,
                Mode::Gte => v >= node.value,
                Mode::Gt => v > node.value,
                Mode::Eq => v == node.value,
                Mode::Neq => v != node.value,
            };
            node = &self.nodes[if yes { node.yes } else { node.no } as usize];
        }
    }

    /// Per target: the aggregated score and whether any leaf scored it.
    fn scores(&self, x: &[f64], aggregate: Aggregate, out: &mut [(f64, bool)]) {
        out.iter_mut().for_each(|s| *s = (0.0, false));
        for &root in &self.roots {
            let leaf = self.leaf(root, x);
            for &(t, w) in &self.weights[leaf.start as usize..leaf.end as usize] {
                let s = &mut out[t];
                s.0 = match (aggregate, s.1) {
                    (Aggregate::Min, true) => s.0.min(w),
                    (Aggregate::Max, true) => s.0.max(w),
                    (Aggregate::Min | Aggregate::Max, false) => w,
                    _ => s.0 + w,
                };
                s.1 = true;
            }
        }
    }
}

#[derive(Debug, Clone)]
struct Classifier {
    labels: Labels,
    post: Post,
    base: Vec<f64>,
    /// Only one class column is scored (ONNX Runtime's "binary case").
    single_column: bool,
    positive_weights: bool,
}

/// One operator with its parameters read at load time.
#[derive(Debug, Clone)]
enum Op {
    Identity,
    Scaler {
        offset: Vec<f64>,
        scale: Vec<f64>,
    },
    Normalizer {
        norm: Norm,
    },
    Imputer {
        values: Vec<f64>,
        replaced: f64,
    },
    Binarizer {
        threshold: f64,
    },
    OneHot {
        categories: Labels,
        zeros: bool,
    },
    ArrayFeatureExtractor,
    LinearClassifier {
        coefficients: Vec<f64>,
        intercepts: Vec<f64>,
        classes: Classifier,
    },
    LinearRegressor {
        coefficients: Vec<f64>,
        intercepts: Vec<f64>,
        targets: usize,
        post: Post,
    },
    TreeClassifier {
        trees: Trees,
        classes: Classifier,
    },
    TreeRegressor {
        trees: Trees,
        base: Vec<f64>,
        aggregate: Aggregate,
        post: Post,
    },
    ZipMap {
        labels: Labels,
    },
    Cast {
        to: ElemType,
    },
    Reshape {
        allow_zero: bool,
    },
    Flatten {
        axis: i64,
    },
    Concat {
        axis: i64,
    },
    MatMul,
    Gemm {
        alpha: f64,
        beta: f64,
        trans_a: bool,
        trans_b: bool,
    },
    Binary(BinaryOp),
    Unary(UnaryOp),
    Softmax {
        axis: i64,
        /// Before opset 13, Softmax flattens the dimensions from `axis` on.
        flatten: bool,
    },
    ArgMax {
        axis: i64,
        keep_dims: bool,
        last: bool,
    },
    Squeeze {
        axes: Option<Vec<i64>>,
    },
    Unsqueeze {
        axes: Option<Vec<i64>>,
    },
    /// An operator another runtime runs ([`OnnxModel::describe`]).
    Opaque {
        op: String,
        domain: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Norm {
    Max,
    L1,
    L2,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum UnaryOp {
    Relu,
    Sigmoid,
    Tanh,
    Exp,
    Log,
    Abs,
    Neg,
    Sqrt,
}

#[derive(Debug, Clone)]
struct Step {
    op: Op,
    /// Slots of the inputs (`None`: an omitted optional input).
    inputs: Vec<Option<usize>>,
    outputs: Vec<usize>,
    /// For messages.
    name: String,
}

/// A loaded ONNX model, ready to run.
#[derive(Debug, Clone)]
pub struct OnnxModel {
    inputs: Vec<ValueSpec>,
    outputs: Vec<ValueSpec>,
    input_slots: Vec<usize>,
    output_slots: Vec<usize>,
    constants: Vec<(usize, Value)>,
    steps: Vec<Step>,
    slots: usize,
    /// `producer_name` of the model (`skl2onnx`, ...).
    pub producer: String,
}

/// The attributes of one node, by name.
struct Attrs<'a> {
    node: &'a NodeProto,
    op: &'a str,
}

impl<'a> Attrs<'a> {
    fn get(&self, name: &str) -> Option<&'a AttributeProto> {
        self.node
            .attribute
            .iter()
            .find(|a| a.name.as_deref() == Some(name))
    }

    fn error(&self, message: impl Into<String>) -> OnnxError {
        OnnxError::Node {
            node: self.node.name.clone().unwrap_or_default(),
            op: self.op.to_string(),
            message: message.into(),
        }
    }

    fn int(&self, name: &str, default: i64) -> i64 {
        self.get(name).and_then(|a| a.i).unwrap_or(default)
    }

    fn float(&self, name: &str, default: f32) -> f32 {
        self.get(name).and_then(|a| a.f).unwrap_or(default)
    }

    fn string(&self, name: &str, default: &str) -> String {
        self.get(name)
            .and_then(|a| a.s.as_ref())
            .map_or_else(|| default.to_string(), |s| bytes_text(s))
    }

    fn ints(&self, name: &str) -> Vec<i64> {
        self.get(name).map(|a| a.ints.clone()).unwrap_or_default()
    }

    fn strings(&self, name: &str) -> Vec<String> {
        self.get(name)
            .map(|a| a.strings.iter().map(|s| bytes_text(s)).collect())
            .unwrap_or_default()
    }

    /// `name` as floats, or `name_as_tensor` (doubles) when present.
    fn floats(&self, name: &str) -> Result<Vec<f64>> {
        if let Some(t) = self
            .get(&format!("{name}_as_tensor"))
            .and_then(|a| a.t.as_ref())
        {
            let t = tensor_of(t).map_err(|e| self.error(e.to_string()))?;
            return Ok(t.data.to_f64().into_owned());
        }
        Ok(self
            .get(name)
            .map(|a| a.floats.iter().map(|&x| f64::from(x)).collect())
            .unwrap_or_default())
    }

    fn labels(&self, ints: &str, strings: &str) -> Option<Labels> {
        let i = self.ints(ints);
        if !i.is_empty() {
            return Some(Labels::Int64(i));
        }
        let s = self.strings(strings);
        (!s.is_empty()).then_some(Labels::String(s))
    }

    fn post(&self) -> Result<Post> {
        match self.string("post_transform", "NONE").as_str() {
            "NONE" => Ok(Post::None),
            "LOGISTIC" => Ok(Post::Logistic),
            "SOFTMAX" => Ok(Post::Softmax),
            "SOFTMAX_ZERO" => Ok(Post::SoftmaxZero),
            "PROBIT" => Ok(Post::Probit),
            other => Err(self.error(format!("unknown post_transform `{other}`"))),
        }
    }

    fn elem_type(&self, name: &str) -> Result<ElemType> {
        let to = self.int(name, 0) as i32;
        ElemType::from_onnx(to).ok_or_else(|| self.error(format!("cannot cast to type {to}")))
    }
}

fn bytes_text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The tensor of an initializer or attribute.
pub fn tensor_of(t: &TensorProto) -> Result<Tensor> {
    let name = t.name.clone().unwrap_or_default();
    let shape: Vec<usize> = t.dims.iter().map(|&d| d.max(0) as usize).collect();
    let size: usize = shape.iter().product();
    let raw = t.raw_data.as_deref().filter(|r| !r.is_empty());
    let bad = |m: &str| OnnxError::Graph(format!("tensor `{name}`: {m}"));
    let elem = t.data_type.unwrap_or(0);
    let data = match elem {
        data_type::FLOAT => Data::Float(match raw {
            Some(r) => r
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
            None => t.float_data.clone(),
        }),
        data_type::DOUBLE => Data::Double(match raw {
            Some(r) => r
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
                .collect(),
            None => t.double_data.clone(),
        }),
        data_type::INT64 => Data::Int64(match raw {
            Some(r) => r
                .chunks_exact(8)
                .map(|c| i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
                .collect(),
            None => t.int64_data.clone(),
        }),
        data_type::INT32 => Data::Int64(match raw {
            Some(r) => r
                .chunks_exact(4)
                .map(|c| i64::from(i32::from_le_bytes([c[0], c[1], c[2], c[3]])))
                .collect(),
            None => t.int32_data.iter().map(|&x| i64::from(x)).collect(),
        }),
        data_type::BOOL => Data::Int64(match raw {
            Some(r) => r.iter().map(|&b| i64::from(b != 0)).collect(),
            None => t.int32_data.iter().map(|&x| i64::from(x != 0)).collect(),
        }),
        data_type::STRING => Data::String(t.string_data.iter().map(|s| bytes_text(s)).collect()),
        other => return Err(bad(&format!("element type {other} is not supported"))),
    };
    if data.len() != size {
        return Err(bad(&format!("{} values for shape {shape:?}", data.len())));
    }
    Ok(Tensor::of(shape, data))
}

fn kind_of(t: Option<&crate::onnx::proto::TypeProto>) -> ValueKind {
    use crate::onnx::proto::tensor_shape_proto::dimension;
    use crate::onnx::proto::type_proto;
    match t.and_then(|t| t.value.as_ref()) {
        Some(type_proto::Value::TensorType(t)) => match t.elem_type.and_then(ElemType::from_onnx) {
            Some(elem) => ValueKind::Tensor {
                elem,
                shape: t
                    .shape
                    .as_ref()
                    .map(|s| {
                        s.dim
                            .iter()
                            .map(|d| match d.value {
                                Some(dimension::Value::DimValue(v)) if v > 0 => Some(v as usize),
                                _ => None,
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
            },
            None => ValueKind::Other,
        },
        Some(type_proto::Value::SequenceType(s)) => {
            match s.elem_type.as_deref().and_then(|t| t.value.as_ref()) {
                Some(type_proto::Value::MapType(_)) => ValueKind::Maps,
                _ => ValueKind::Other,
            }
        }
        _ => ValueKind::Other,
    }
}

impl OnnxModel {
    /// The model in the file at `path`.
    pub fn from_file(path: &Path) -> Result<OnnxModel> {
        let bytes = std::fs::read(path).map_err(|source| OnnxError::Io {
            path: path.display().to_string(),
            source,
        })?;
        OnnxModel::from_bytes(&bytes)
    }

    /// Decodes, checks and plans a serialized `ModelProto`.
    pub fn from_bytes(bytes: &[u8]) -> Result<OnnxModel> {
        OnnxModel::plan(bytes, true)
    }

    /// The graph's inputs, outputs and class labels for another runtime: like
    /// [`OnnxModel::from_bytes`], but an operator this evaluator does not run is kept as a
    /// placeholder that fails if run.
    pub fn describe(bytes: &[u8]) -> Result<OnnxModel> {
        OnnxModel::plan(bytes, false)
    }

    fn plan(bytes: &[u8], strict: bool) -> Result<OnnxModel> {
        let plan_op = |node: &NodeProto, opset: i64| match plan_op(node, opset) {
            Err(OnnxError::Unsupported { op, domain, .. }) if !strict => {
                Ok(Op::Opaque { op, domain })
            }
            other => other,
        };
        let model = ModelProto::decode(bytes)?;
        let graph = model
            .graph
            .ok_or_else(|| OnnxError::Graph("the model has no graph".into()))?;
        let opset = |domain: &str| {
            model
                .opset_import
                .iter()
                .find(|o| {
                    let d = o.domain.as_deref().unwrap_or("");
                    d == domain || (domain.is_empty() && d == "ai.onnx")
                })
                .and_then(|o| o.version)
                .unwrap_or(if domain.is_empty() { 21 } else { 3 })
        };
        let core_opset = opset("");

        let mut names: HashMap<String, usize> = HashMap::new();
        let slot = |name: &str, names: &mut HashMap<String, usize>| -> usize {
            let next = names.len();
            *names.entry(name.to_string()).or_insert(next)
        };
        let mut constants = Vec::new();
        for init in &graph.initializer {
            let name = init.name.clone().unwrap_or_default();
            let t = tensor_of(init)?;
            constants.push((slot(&name, &mut names), Value::Tensor(t)));
        }
        let initialized: Vec<usize> = constants.iter().map(|(s, _)| *s).collect();
        let mut inputs = Vec::new();
        let mut input_slots = Vec::new();
        for i in &graph.input {
            let name = i.name.clone().unwrap_or_default();
            let s = slot(&name, &mut names);
            // Inputs with an initializer are constants with a default (older exporters).
            if initialized.contains(&s) {
                continue;
            }
            input_slots.push(s);
            inputs.push(ValueSpec {
                name,
                kind: kind_of(i.r#type.as_ref()),
            });
        }

        // Order the nodes: each after the producers of its inputs.
        let mut known: Vec<bool> = Vec::new();
        let is_known =
            |s: usize, known: &[bool]| -> bool { known.get(s).copied().unwrap_or(false) };
        let set_known = |s: usize, known: &mut Vec<bool>| {
            if known.len() <= s {
                known.resize(s + 1, false);
            }
            known[s] = true;
        };
        for &s in input_slots.iter().chain(&initialized) {
            set_known(s, &mut known);
        }
        let mut pending: Vec<&NodeProto> = graph.node.iter().collect();
        let mut steps = Vec::new();
        while !pending.is_empty() {
            let before = pending.len();
            let mut rest = Vec::new();
            for node in pending {
                let ready = node
                    .input
                    .iter()
                    .filter(|n| !n.is_empty())
                    .all(|n| names.get(n).is_some_and(|&s| is_known(s, &mut known)));
                if !ready {
                    rest.push(node);
                    continue;
                }
                let op = plan_op(node, core_opset)?;
                let ins = node
                    .input
                    .iter()
                    .map(|n| (!n.is_empty()).then(|| names[n]))
                    .collect();
                let outs: Vec<usize> = node.output.iter().map(|n| slot(n, &mut names)).collect();
                for &o in &outs {
                    set_known(o, &mut known);
                }
                steps.push(Step {
                    op,
                    inputs: ins,
                    outputs: outs,
                    name: node.name.clone().unwrap_or_default(),
                });
            }
            if rest.len() == before {
                let node = rest[0];
                let missing: Vec<&str> = node
                    .input
                    .iter()
                    .filter(|n| {
                        !n.is_empty() && !names.get(*n).is_some_and(|&s| is_known(s, &mut known))
                    })
                    .map(String::as_str)
                    .collect();
                // An unsupported operator is the better message when there is one.
                for n in &rest {
                    plan_op(n, core_opset)?;
                }
                return Err(OnnxError::Graph(format!(
                    "node `{}` ({}) reads {} that no node produces (or a cycle)",
                    node.name.clone().unwrap_or_default(),
                    node.op_type.clone().unwrap_or_default(),
                    missing.join(", ")
                )));
            }
            pending = rest;
        }
        let mut outputs = Vec::new();
        let mut output_slots = Vec::new();
        for o in &graph.output {
            let name = o.name.clone().unwrap_or_default();
            match names.get(&name) {
                Some(&s) if is_known(s, &mut known) => output_slots.push(s),
                _ => {
                    return Err(OnnxError::Graph(format!(
                        "output `{name}` is produced by no node"
                    )));
                }
            }
            outputs.push(ValueSpec {
                name,
                kind: kind_of(o.r#type.as_ref()),
            });
        }
        Ok(OnnxModel {
            inputs,
            outputs,
            input_slots,
            output_slots,
            constants,
            steps,
            slots: names.len(),
            producer: model.producer_name.unwrap_or_default(),
        })
    }

    /// The graph's inputs, in order (initializers excluded).
    pub fn inputs(&self) -> &[ValueSpec] {
        &self.inputs
    }

    /// The graph's outputs, in order.
    pub fn outputs(&self) -> &[ValueSpec] {
        &self.outputs
    }

    /// The class labels of the graph's classifier (its ZipMap, or its classifier operator).
    pub fn class_labels(&self) -> Option<Labels> {
        let zipmap = self.steps.iter().find_map(|s| match &s.op {
            Op::ZipMap { labels } => Some(labels.clone()),
            _ => None,
        });
        zipmap.or_else(|| {
            self.steps.iter().find_map(|s| match &s.op {
                Op::LinearClassifier { classes, .. } | Op::TreeClassifier { classes, .. } => {
                    Some(classes.labels.clone())
                }
                _ => None,
            })
        })
    }

    /// The names of the operators, in evaluation order.
    pub fn operators(&self) -> Vec<&str> {
        self.steps.iter().map(|s| s.op.name()).collect()
    }

    /// Runs the graph on `inputs` (one per graph input, in order) and answers its outputs in
    /// order.
    pub fn run(&self, inputs: Vec<Tensor>) -> Result<Vec<Value>> {
        if inputs.len() != self.inputs.len() {
            return Err(OnnxError::Input(format!(
                "the model takes {} inputs, not {}",
                self.inputs.len(),
                inputs.len()
            )));
        }
        let mut slots: Vec<Option<Cow<'_, Value>>> = vec![None; self.slots];
        for (s, v) in &self.constants {
            slots[*s] = Some(Cow::Borrowed(v));
        }
        for ((&s, t), spec) in self.input_slots.iter().zip(inputs).zip(&self.inputs) {
            if let ValueKind::Tensor { elem, shape } = &spec.kind {
                if t.elem_type() != *elem {
                    return Err(OnnxError::Input(format!(
                        "input `{}` takes {} values, not {}",
                        spec.name,
                        elem.name(),
                        t.elem_type().name()
                    )));
                }
                let fits = shape.len() == t.shape.len()
                    && shape
                        .iter()
                        .zip(&t.shape)
                        .all(|(d, &n)| d.is_none_or(|d| d == n));
                if !shape.is_empty() && !fits {
                    return Err(OnnxError::Input(format!(
                        "input `{}` has shape {:?}; the model takes {}",
                        spec.name,
                        t.shape,
                        shape_text(shape)
                    )));
                }
            }
            slots[s] = Some(Cow::Owned(Value::Tensor(t)));
        }
        for step in &self.steps {
            let outs = {
                let ins: Vec<Option<&Value>> = step
                    .inputs
                    .iter()
                    .map(|i| i.and_then(|i| slots[i].as_deref()))
                    .collect();
                step.op.eval(&ins).map_err(|e| match e {
                    OnnxError::Input(m) => {
                        OnnxError::Input(format!("node `{}` ({}): {m}", step.name, step.op.name()))
                    }
                    e => e,
                })?
            };
            for (&o, v) in step.outputs.iter().zip(outs) {
                slots[o] = Some(Cow::Owned(v));
            }
        }
        self.output_slots
            .iter()
            .zip(&self.outputs)
            .map(|(&s, spec)| {
                slots[s].take().map(Cow::into_owned).ok_or_else(|| {
                    OnnxError::Input(format!("output `{}` was not computed", spec.name))
                })
            })
            .collect()
    }
}

/// The model with each ZipMap that gives a graph output removed, the output being its input
/// (the 2-D probability tensor): for runtimes whose sequences of maps are costly to read.
pub fn without_zipmap(bytes: &[u8]) -> Result<Vec<u8>> {
    let mut model = ModelProto::decode(bytes)?;
    let Some(graph) = model.graph.as_mut() else {
        return Ok(bytes.to_vec());
    };
    let mut renamed = Vec::new();
    graph.node.retain(|n| {
        let zipmap = n.op_type.as_deref() == Some("ZipMap") && n.domain.as_deref() == Some(ML);
        match (zipmap, n.input.first(), n.output.first()) {
            (true, Some(i), Some(o)) if graph.output.iter().any(|g| g.name.as_ref() == Some(o)) => {
                renamed.push((o.clone(), i.clone()));
                false
            }
            _ => true,
        }
    });
    for output in &mut graph.output {
        if let Some((_, input)) = renamed
            .iter()
            .find(|(o, _)| output.name.as_ref() == Some(o))
        {
            output.name = Some(input.clone());
            output.r#type = Some(crate::onnx::proto::TypeProto {
                value: Some(crate::onnx::proto::type_proto::Value::TensorType(
                    crate::onnx::proto::type_proto::Tensor {
                        elem_type: Some(data_type::FLOAT),
                        shape: None,
                    },
                )),
            });
        }
    }
    Ok(model.encode_to_vec())
}

fn shape_text(shape: &[Option<usize>]) -> String {
    let dims: Vec<String> = shape
        .iter()
        .map(|d| d.map_or_else(|| "N".to_string(), |d| d.to_string()))
        .collect();
    format!("[{}]", dims.join(", "))
}

/// The operator of `node` with its parameters.
fn plan_op(node: &NodeProto, core_opset: i64) -> Result<Op> {
    let op = node.op_type.as_deref().unwrap_or("");
    let domain = node.domain.as_deref().unwrap_or("");
    let a = Attrs { node, op };
    let ml = domain == ML;
    if !(ml || domain.is_empty() || domain == "ai.onnx") {
        return Err(unsupported(node));
    }
    Ok(match (ml, op) {
        (_, "Identity") => Op::Identity,
        (_, "Cast") => Op::Cast {
            to: a.elem_type("to")?,
        },
        (true, "Scaler") => {
            let offset = a.floats("offset")?;
            let scale = a.floats("scale")?;
            Op::Scaler { offset, scale }
        }
        (true, "Normalizer") => Op::Normalizer {
            norm: match a.string("norm", "MAX").as_str() {
                "MAX" => Norm::Max,
                "L1" => Norm::L1,
                "L2" => Norm::L2,
                other => return Err(a.error(format!("unknown norm `{other}`"))),
            },
        },
        (true, "Imputer") => {
            let mut values = a.floats("imputed_value_floats")?;
            let mut replaced = f64::from(a.float("replaced_value_float", 0.0));
            if values.is_empty() {
                values = a
                    .ints("imputed_value_int64s")
                    .iter()
                    .map(|&x| x as f64)
                    .collect();
                replaced = a.int("replaced_value_int64", 0) as f64;
            }
            if values.is_empty() {
                return Err(a.error("no imputed values"));
            }
            Op::Imputer { values, replaced }
        }
        (true, "Binarizer") => Op::Binarizer {
            threshold: f64::from(a.float("threshold", 0.0)),
        },
        (true, "OneHotEncoder") => Op::OneHot {
            categories: a
                .labels("cats_int64s", "cats_strings")
                .ok_or_else(|| a.error("no categories"))?,
            zeros: a.int("zeros", 1) != 0,
        },
        (true, "ArrayFeatureExtractor") => Op::ArrayFeatureExtractor,
        (true, "LinearClassifier") => {
            let coefficients = a.floats("coefficients")?;
            let intercepts = a.floats("intercepts")?;
            let labels = a
                .labels("classlabels_ints", "classlabels_strings")
                .ok_or_else(|| a.error("no class labels"))?;
            let rows = intercepts.len().max(1);
            if coefficients.is_empty() || coefficients.len() % rows != 0 {
                return Err(a.error(format!(
                    "{} coefficients for {rows} classes",
                    coefficients.len()
                )));
            }
            if rows == 1 && labels.len() != 2 {
                return Err(a.error("one row of coefficients needs two class labels"));
            }
            if rows > 1 && rows != labels.len() {
                return Err(a.error(format!(
                    "{rows} rows of coefficients for {} labels",
                    labels.len()
                )));
            }
            let positive_weights = coefficients.iter().all(|&c| c >= 0.0);
            Op::LinearClassifier {
                coefficients,
                intercepts,
                classes: Classifier {
                    labels,
                    post: a.post()?,
                    base: Vec::new(),
                    single_column: rows == 1,
                    positive_weights,
                },
            }
        }
        (true, "LinearRegressor") => {
            let coefficients = a.floats("coefficients")?;
            let intercepts = a.floats("intercepts")?;
            let targets = a.int("targets", 1).max(1) as usize;
            if coefficients.is_empty() || coefficients.len() % targets != 0 {
                return Err(a.error(format!(
                    "{} coefficients for {targets} targets",
                    coefficients.len()
                )));
            }
            Op::LinearRegressor {
                coefficients,
                intercepts,
                targets,
                post: a.post()?,
            }
        }
        (true, "TreeEnsembleClassifier") => {
            let labels = a
                .labels("classlabels_int64s", "classlabels_strings")
                .ok_or_else(|| a.error("no class labels"))?;
            let trees = plan_trees(&a, "class", labels.len())?;
            let used: std::collections::BTreeSet<usize> =
                trees.weights.iter().map(|w| w.0).collect();
            let positive_weights = trees.weights.iter().all(|w| w.1 >= 0.0);
            Op::TreeClassifier {
                classes: Classifier {
                    single_column: labels.len() == 2 && used.len() == 1,
                    labels,
                    post: a.post()?,
                    base: a.floats("base_values")?,
                    positive_weights,
                },
                trees,
            }
        }
        (true, "TreeEnsembleRegressor") => {
            let targets = a.int("n_targets", 1).max(1) as usize;
            Op::TreeRegressor {
                trees: plan_trees(&a, "target", targets)?,
                base: a.floats("base_values")?,
                aggregate: match a.string("aggregate_function", "SUM").as_str() {
                    "SUM" => Aggregate::Sum,
                    "AVERAGE" => Aggregate::Average,
                    "MIN" => Aggregate::Min,
                    "MAX" => Aggregate::Max,
                    other => return Err(a.error(format!("unknown aggregate_function `{other}`"))),
                },
                post: a.post()?,
            }
        }
        (true, "ZipMap") => Op::ZipMap {
            labels: a
                .labels("classlabels_int64s", "classlabels_strings")
                .ok_or_else(|| a.error("no class labels"))?,
        },
        (false, "Reshape") => Op::Reshape {
            allow_zero: a.int("allowzero", 0) != 0,
        },
        (false, "Flatten") => Op::Flatten {
            axis: a.int("axis", 1),
        },
        (false, "Concat") => Op::Concat {
            axis: a.int("axis", 1),
        },
        (false, "MatMul") => Op::MatMul,
        (false, "Gemm") => Op::Gemm {
            alpha: f64::from(a.float("alpha", 1.0)),
            beta: f64::from(a.float("beta", 1.0)),
            trans_a: a.int("transA", 0) != 0,
            trans_b: a.int("transB", 0) != 0,
        },
        (false, "Add") => Op::Binary(BinaryOp::Add),
        (false, "Sub") => Op::Binary(BinaryOp::Sub),
        (false, "Mul") => Op::Binary(BinaryOp::Mul),
        (false, "Div") => Op::Binary(BinaryOp::Div),
        (false, "Relu") => Op::Unary(UnaryOp::Relu),
        (false, "Sigmoid") => Op::Unary(UnaryOp::Sigmoid),
        (false, "Tanh") => Op::Unary(UnaryOp::Tanh),
        (false, "Exp") => Op::Unary(UnaryOp::Exp),
        (false, "Log") => Op::Unary(UnaryOp::Log),
        (false, "Abs") => Op::Unary(UnaryOp::Abs),
        (false, "Neg") => Op::Unary(UnaryOp::Neg),
        (false, "Sqrt") => Op::Unary(UnaryOp::Sqrt),
        (false, "Softmax") => Op::Softmax {
            axis: a.int("axis", if core_opset >= 13 { -1 } else { 1 }),
            flatten: core_opset < 13,
        },
        (false, "ArgMax") => Op::ArgMax {
            axis: a.int("axis", 0),
            keep_dims: a.int("keepdims", 1) != 0,
            last: a.int("select_last_index", 0) != 0,
        },
        (false, "Squeeze") => Op::Squeeze {
            axes: a.get("axes").map(|x| x.ints.clone()),
        },
        (false, "Unsqueeze") => Op::Unsqueeze {
            axes: a.get("axes").map(|x| x.ints.clone()),
        },
        _ => return Err(unsupported(node)),
    })
}

fn unsupported(node: &NodeProto) -> OnnxError {
    OnnxError::Unsupported {
        op: node.op_type.clone().unwrap_or_default(),
        domain: node
            .domain
            .clone()
            .filter(|d| !d.is_empty())
            .unwrap_or_else(|| "ai.onnx".into()),
        node: node.name.clone().unwrap_or_default(),
    }
}

/// The trees of a TreeEnsemble node; leaves are read from `{prefix}_treeids`, `_nodeids`,
/// `_ids` and `_weights`.
fn plan_trees(a: &Attrs<'_>, prefix: &str, targets: usize) -> Result<Trees> {
    let tree_ids = a.ints("nodes_treeids");
    let node_ids = a.ints("nodes_nodeids");
    let features = a.ints("nodes_featureids");
    let values = a.floats("nodes_values")?;
    let modes = a.strings("nodes_modes");
    let yes = a.ints("nodes_truenodeids");
    let no = a.ints("nodes_falsenodeids");
    let missing = a.ints("nodes_missing_value_tracks_true");
    let n = tree_ids.len();
    if n == 0 {
        return Err(a.error("no tree nodes"));
    }
    for (name, len) in [
        ("nodes_nodeids", node_ids.len()),
        ("nodes_featureids", features.len()),
        ("nodes_modes", modes.len()),
        ("nodes_truenodeids", yes.len()),
        ("nodes_falsenodeids", no.len()),
    ] {
        if len != n {
            return Err(a.error(format!("{name} has {len} entries for {n} nodes")));
        }
    }
    if !values.is_empty() && values.len() != n {
        return Err(a.error(format!(
            "nodes_values has {} entries for {n} nodes",
            values.len()
        )));
    }
    let index: HashMap<(i64, i64), usize> = tree_ids
        .iter()
        .zip(&node_ids)
        .enumerate()
        .map(|(i, (&t, &id))| ((t, id), i))
        .collect();
    let mut roots = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut nodes = Vec::with_capacity(n);
    let mut max_feature = 0;
    for i in 0..n {
        if seen.insert(tree_ids[i]) {
            roots.push(i as u32);
        }
        let mode = match modes[i].as_str() {
            "LEAF" => Mode::Leaf,
            "BRANCH_LEQ" => Mode::Leq,
            "BRANCH_LT" => Mode::Lt,
            "BRANCH_GTE" => Mode::Gte,
            "BRANCH_GT" => Mode::Gt,
            "BRANCH_EQ" => Mode::Eq,
            "BRANCH_NEQ" => Mode::Neq,
            other => return Err(a.error(format!("unknown node mode `{other}`"))),
        };
        let child = |id: i64| -> Result<u32> {
            if mode == Mode::Leaf {
                return Ok(0);
            }
            index
                .get(&(tree_ids[i], id))
                .map(|&c| c as u32)
                .ok_or_else(|| {
                    a.error(format!(
                        "node {} of tree {} points to node {id}, which is not in the tree",
                        node_ids[i], tree_ids[i]
                    ))
                })
        };
        let feature = usize::try_from(features[i]).map_err(|_| a.error("a negative feature id"))?;
        if mode != Mode::Leaf {
            max_feature = max_feature.max(feature + 1);
        }
        nodes.push(TreeNode {
            feature,
            value: values.get(i).copied().unwrap_or(0.0),
            mode,
            yes: child(yes[i])?,
            no: child(no[i])?,
            missing_true: missing.get(i).is_some_and(|&m| m != 0),
            start: 0,
            end: 0,
        });
    }
    let leaf_trees = a.ints(&format!("{prefix}_treeids"));
    let leaf_nodes = a.ints(&format!("{prefix}_nodeids"));
    let leaf_ids = a.ints(&format!("{prefix}_ids"));
    let leaf_weights = a.floats(&format!("{prefix}_weights"))?;
    let m = leaf_trees.len();
    if leaf_nodes.len() != m || leaf_ids.len() != m || leaf_weights.len() != m {
        return Err(a.error(format!("the {prefix}_* attributes differ in length")));
    }
    let mut per_node: Vec<Vec<(usize, f64)>> = vec![Vec::new(); n];
    for j in 0..m {
        let node = *index.get(&(leaf_trees[j], leaf_nodes[j])).ok_or_else(|| {
            a.error(format!(
                "a weight for node {} of tree {}, which does not exist",
                leaf_nodes[j], leaf_trees[j]
            ))
        })?;
        let id = usize::try_from(leaf_ids[j])
            .ok()
            .filter(|&id| id < targets)
            .ok_or_else(|| a.error(format!("{prefix} id {} out of 0..{targets}", leaf_ids[j])))?;
        per_node[node].push((id, leaf_weights[j]));
    }
    let mut weights = Vec::with_capacity(m);
    for (node, w) in nodes.iter_mut().zip(per_node) {
        node.start = weights.len() as u32;
        weights.extend(w);
        node.end = weights.len() as u32;
    }
    Ok(Trees {
        roots,
        nodes,
        weights,
        features: max_feature,
        targets,
    })
}

fn sigmoid(x: f64) -> f64 {
    let v = 1.0 / (1.0 + (-x.abs()).exp());
    if x < 0.0 { 1.0 - v } else { v }
}

/// ONNX Runtime's inverse error function approximation (for PROBIT).
fn erf_inv(x: f64) -> f64 {
    let sign = if x < 0.0 { -1.0 } else { 1.0 };
    let x = (1.0 - x) * (1.0 + x);
    let log = x.ln();
    let v = 2.0 / (std::f64::consts::PI * 0.147) + 0.5 * log;
    let v2 = 1.0 / 0.147 * log;
    sign * (-v + (v * v - v2).sqrt()).sqrt()
}

fn probit(x: f64) -> f64 {
    std::f64::consts::SQRT_2 * erf_inv(x * 2.0 - 1.0)
}

fn softmax(v: &mut [f64]) {
    let max = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let mut sum = 0.0;
    for x in v.iter_mut() {
        *x = (*x - max).exp();
        sum += *x;
    }
    for x in v.iter_mut() {
        *x /= sum;
    }
}

fn softmax_zero(v: &mut [f64]) {
    let max = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let mut sum = 0.0;
    for x in v.iter_mut() {
        if *x != 0.0 {
            *x = (*x - max).exp();
            sum += *x;
        }
    }
    for x in v.iter_mut() {
        if *x != 0.0 {
            *x /= sum;
        }
    }
}

/// ONNX Runtime's `write_scores` for two scores or more: the post transform, element-wise or
/// over the row.
fn post_transform(post: Post, scores: &mut [f64]) {
    match post {
        Post::None => {}
        Post::Logistic => scores.iter_mut().for_each(|x| *x = sigmoid(*x)),
        Post::Probit => scores.iter_mut().for_each(|x| *x = probit(*x)),
        Post::Softmax => softmax(scores),
        Post::SoftmaxZero => softmax_zero(scores),
    }
}

/// ONNX Runtime's `write_scores` for one score: the two class scores written, by which
/// class won with which weights (`add`: 0 or 1 all positive, 2 or 3 mixed, -1 none).
fn one_score(post: Post, add: i32, s: f64) -> [f64; 2] {
    if post == Post::Probit {
        return [probit(s), 0.0];
    }
    match add {
        0 | 1 => [1.0 - s, s],
        2 | 3 if post == Post::Logistic => [sigmoid(-s), sigmoid(s)],
        2 | 3 => [-s, s],
        _ => [s, 0.0],
    }
}

/// ONNX Runtime's binary classifier with one score column: the label index and the two
/// class scores.
fn binary_one_column(classes: &Classifier, score: f64) -> (usize, [f64; 2]) {
    let (label, add) = if classes.positive_weights {
        (score > 0.5, if score > 0.5 { 0 } else { 1 })
    } else {
        (score > 0.0, if score > 0.0 { 2 } else { 3 })
    };
    (usize::from(label), one_score(classes.post, add, score))
}

fn argmax(v: &[f64], last: bool) -> usize {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] || (last && x == v[best]) {
            best = i;
        }
    }
    best
}

/// The features of the rows of `x`, as numbers, checking the column count.
fn rows_of(x: &Tensor, features: usize) -> Result<(usize, usize, Cow<'_, [f64]>)> {
    let (rows, cols) = x.matrix_dims();
    if cols < features {
        return Err(OnnxError::Input(format!(
            "{cols} features per row; the model reads {features}"
        )));
    }
    Ok((rows, cols, x.data.to_f64()))
}

fn axis_of(axis: i64, rank: usize) -> Result<usize> {
    let a = if axis < 0 { axis + rank as i64 } else { axis };
    usize::try_from(a)
        .ok()
        .filter(|&a| a < rank.max(1))
        .ok_or_else(|| OnnxError::Input(format!("axis {axis} out of range for rank {rank}")))
}

fn numpy_broadcast(a: &[usize], b: &[usize]) -> Result<Vec<usize>> {
    let rank = a.len().max(b.len());
    let mut out = vec![0; rank];
    for i in 0..rank {
        let da = if i + a.len() >= rank {
            a[i + a.len() - rank]
        } else {
            1
        };
        let db = if i + b.len() >= rank {
            b[i + b.len() - rank]
        } else {
            1
        };
        out[i] = match (da, db) {
            (x, y) if x == y => x,
            (1, y) => y,
            (x, 1) => x,
            _ => {
                return Err(OnnxError::Input(format!(
                    "shapes {a:?} and {b:?} do not broadcast"
                )));
            }
        };
    }
    Ok(out)
}

/// The flat index in a tensor of `shape` of each element of `out` (broadcasting).
fn broadcast_index(shape: &[usize], out: &[usize]) -> Vec<usize> {
    let size: usize = out.iter().product();
    let rank = out.len();
    let mut strides = vec![0; rank];
    let mut s = 1;
    for i in (0..shape.len()).rev() {
        let o = i + rank - shape.len();
        strides[o] = if shape[i] == 1 { 0 } else { s };
        s *= shape[i];
    }
    let mut idx = vec![0usize; size];
    let mut pos = vec![0usize; rank];
    for slot in idx.iter_mut() {
        *slot = pos.iter().zip(&strides).map(|(p, s)| p * s).sum();
        for d in (0..rank).rev() {
            pos[d] += 1;
            if pos[d] < out[d] {
                break;
            }
            pos[d] = 0;
        }
    }
    idx
}

fn need<'a>(ins: &[Option<&'a Value>], i: usize) -> Result<&'a Tensor> {
    ins.get(i)
        .copied()
        .flatten()
        .ok_or_else(|| OnnxError::Input(format!("input {} is missing", i + 1)))?
        .tensor()
}

fn float_out(shape: Vec<usize>, values: Vec<f64>) -> Value {
    Value::Tensor(Tensor::of(shape, Data::from_f64(ElemType::Float, values)))
}

/// Float tensors keep float, doubles double; integers become float for arithmetic.
fn arith_type(t: ElemType) -> ElemType {
    match t {
        ElemType::Double => ElemType::Double,
        ElemType::Int64 => ElemType::Int64,
        _ => ElemType::Float,
    }
}

impl Op {
    fn name(&self) -> &'static str {
        match self {
            Op::Identity => "Identity",
            Op::Scaler { .. } => "Scaler",
            Op::Normalizer { .. } => "Normalizer",
            Op::Imputer { .. } => "Imputer",
            Op::Binarizer { .. } => "Binarizer",
            Op::OneHot { .. } => "OneHotEncoder",
            Op::ArrayFeatureExtractor => "ArrayFeatureExtractor",
            Op::LinearClassifier { .. } => "LinearClassifier",
            Op::LinearRegressor { .. } => "LinearRegressor",
            Op::TreeClassifier { .. } => "TreeEnsembleClassifier",
            Op::TreeRegressor { .. } => "TreeEnsembleRegressor",
            Op::ZipMap { .. } => "ZipMap",
            Op::Cast { .. } => "Cast",
            Op::Reshape { .. } => "Reshape",
            Op::Flatten { .. } => "Flatten",
            Op::Concat { .. } => "Concat",
            Op::MatMul => "MatMul",
            Op::Gemm { .. } => "Gemm",
            Op::Binary(BinaryOp::Add) => "Add",
            Op::Binary(BinaryOp::Sub) => "Sub",
            Op::Binary(BinaryOp::Mul) => "Mul",
            Op::Binary(BinaryOp::Div) => "Div",
            Op::Unary(UnaryOp::Relu) => "Relu",
            Op::Unary(UnaryOp::Sigmoid) => "Sigmoid",
            Op::Unary(UnaryOp::Tanh) => "Tanh",
            Op::Unary(UnaryOp::Exp) => "Exp",
            Op::Unary(UnaryOp::Log) => "Log",
            Op::Unary(UnaryOp::Abs) => "Abs",
            Op::Unary(UnaryOp::Neg) => "Neg",
            Op::Unary(UnaryOp::Sqrt) => "Sqrt",
            Op::Softmax { .. } => "Softmax",
            Op::ArgMax { .. } => "ArgMax",
            Op::Squeeze { .. } => "Squeeze",
            Op::Unsqueeze { .. } => "Unsqueeze",
            Op::Opaque { .. } => "Opaque",
        }
    }

    fn eval(&self, ins: &[Option<&Value>]) -> Result<Vec<Value>> {
        Ok(match self {
            Op::Opaque { op, domain } => {
                return Err(OnnxError::Unsupported {
                    op: op.clone(),
                    domain: domain.clone(),
                    node: String::new(),
                });
            }
            Op::Identity => vec![
                ins.first()
                    .copied()
                    .flatten()
                    .ok_or_else(|| OnnxError::Input("input 1 is missing".into()))?
                    .clone(),
            ],
            Op::Cast { to } => {
                let x = need(ins, 0)?;
                vec![Value::Tensor(Tensor::of(x.shape.clone(), x.data.cast(*to)))]
            }
            Op::Scaler { offset, scale } => {
                let x = need(ins, 0)?;
                let (_, cols) = x.matrix_dims();
                let pick = |v: &[f64], j: usize, default: f64| match v.len() {
                    0 => default,
                    1 => v[0],
                    _ => v.get(j).copied().unwrap_or(default),
                };
                if offset.len() > 1 && offset.len() != cols
                    || scale.len() > 1 && scale.len() != cols
                {
                    return Err(OnnxError::Input(format!(
                        "{cols} features per row; the scaler takes {}",
                        offset.len().max(scale.len())
                    )));
                }
                let data = match &x.data {
                    // Float arithmetic as ONNX Runtime's kernel does it.
                    Data::Float(v) => Data::Float(
                        v.iter()
                            .enumerate()
                            .map(|(i, &x)| {
                                let j = i % cols.max(1);
                                (x - pick(offset, j, 0.0) as f32) * pick(scale, j, 1.0) as f32
                            })
                            .collect(),
                    ),
                    d => Data::Float(
                        d.to_f64()
                            .iter()
                            .enumerate()
                            .map(|(i, &x)| {
                                let j = i % cols.max(1);
                                ((x - pick(offset, j, 0.0)) * pick(scale, j, 1.0)) as f32
                            })
                            .collect(),
                    ),
                };
                vec![Value::Tensor(Tensor::of(x.shape.clone(), data))]
            }
            Op::Normalizer { norm } => {
                let x = need(ins, 0)?;
                let (_, cols) = x.matrix_dims();
                let mut v = x.data.to_f64().into_owned();
                for row in v.chunks_mut(cols.max(1)) {
                    let d = match norm {
                        Norm::Max => row.iter().copied().fold(f64::NEG_INFINITY, f64::max),
                        Norm::L1 => row.iter().map(|x| x.abs()).sum(),
                        Norm::L2 => row.iter().map(|x| x * x).sum::<f64>().sqrt(),
                    };
                    if d != 0.0 {
                        row.iter_mut().for_each(|x| *x /= d);
                    }
                }
                vec![float_out(x.shape.clone(), v)]
            }
            Op::Imputer { values, replaced } => {
                let x = need(ins, 0)?;
                let (_, cols) = x.matrix_dims();
                if values.len() > 1 && values.len() != cols {
                    return Err(OnnxError::Input(format!(
                        "{cols} features per row; the imputer takes {}",
                        values.len()
                    )));
                }
                let v: Vec<f64> = x
                    .data
                    .to_f64()
                    .iter()
                    .enumerate()
                    .map(|(i, &x)| {
                        let hit = if replaced.is_nan() {
                            x.is_nan()
                        } else {
                            x == *replaced
                        };
                        if hit {
                            values[if values.len() == 1 {
                                0
                            } else {
                                i % cols.max(1)
                            }]
                        } else {
                            x
                        }
                    })
                    .collect();
                let elem = arith_type(x.elem_type());
                vec![Value::Tensor(Tensor::of(
                    x.shape.clone(),
                    Data::from_f64(elem, v),
                ))]
            }
            Op::Binarizer { threshold } => {
                let x = need(ins, 0)?;
                let v = x
                    .data
                    .to_f64()
                    .iter()
                    .map(|&x| if x > *threshold { 1.0 } else { 0.0 })
                    .collect();
                vec![Value::Tensor(Tensor::of(
                    x.shape.clone(),
                    Data::from_f64(arith_type(x.elem_type()), v),
                ))]
            }
            Op::OneHot { categories, zeros } => {
                let x = need(ins, 0)?;
                let k = categories.len();
                let mut out = vec![0.0; x.data.len() * k];
                for i in 0..x.data.len() {
                    let hit = match (&x.data, categories) {
                        (Data::String(v), Labels::String(c)) => c.iter().position(|c| *c == v[i]),
                        (Data::String(_), Labels::Int64(_)) => None,
                        (d, Labels::Int64(c)) => {
                            let x = d.to_f64()[i];
                            c.iter().position(|&c| c as f64 == x)
                        }
                        (d, Labels::String(c)) => {
                            let x = d.to_f64()[i];
                            c.iter().position(|c| c.parse::<f64>() == Ok(x))
                        }
                    };
                    match hit {
                        Some(j) => out[i * k + j] = 1.0,
                        None if !zeros => {
                            return Err(OnnxError::Input(format!(
                                "value {} is not a known category",
                                i + 1
                            )));
                        }
                        None => {}
                    }
                }
                let mut shape = x.shape.clone();
                shape.push(k);
                vec![float_out(shape, out)]
            }
            Op::ArrayFeatureExtractor => {
                let x = need(ins, 0)?;
                let idx = need(ins, 1)?.ints();
                let (rows, cols) = x.matrix_dims();
                let mut take = Vec::with_capacity(rows * idx.len());
                for r in 0..rows {
                    for &i in &idx {
                        let i = usize::try_from(i)
                            .ok()
                            .filter(|&i| i < cols)
                            .ok_or_else(|| {
                                OnnxError::Input(format!("index {i} out of 0..{cols}"))
                            })?;
                        take.push(r * cols + i);
                    }
                }
                let mut shape = x.shape.clone();
                match shape.last_mut() {
                    Some(last) => *last = idx.len(),
                    None => shape.push(idx.len()),
                }
                vec![Value::Tensor(Tensor::of(shape, x.data.take(&take)))]
            }
            Op::LinearClassifier {
                coefficients,
                intercepts,
                classes,
            } => {
                let x = need(ins, 0)?;
                let k = intercepts.len().max(1);
                let features = coefficients.len() / k;
                let (rows, cols, v) = rows_of(x, features)?;
                let mut labels = Vec::with_capacity(rows);
                let mut out = Vec::with_capacity(rows * classes.labels.len().max(k));
                let mut scores = vec![0.0; k];
                for r in 0..rows {
                    let row = &v[r * cols..r * cols + features];
                    for (c, s) in scores.iter_mut().enumerate() {
                        let w = &coefficients[c * features..(c + 1) * features];
                        *s = row.iter().zip(w).map(|(x, w)| x * w).sum::<f64>()
                            + intercepts.get(c).copied().unwrap_or(0.0);
                    }
                    if classes.single_column {
                        let (label, p) = binary_one_column(classes, scores[0]);
                        labels.push(label);
                        out.extend(p);
                    } else {
                        labels.push(argmax(&scores, false));
                        post_transform(classes.post, &mut scores);
                        out.extend_from_slice(&scores);
                    }
                }
                let width = out.len() / rows.max(1);
                vec![
                    Value::Tensor(Tensor::of(
                        vec![rows],
                        classes.labels.data(labels.into_iter()),
                    )),
                    float_out(vec![rows, width], out),
                ]
            }
            Op::LinearRegressor {
                coefficients,
                intercepts,
                targets,
                post,
            } => {
                let x = need(ins, 0)?;
                let features = coefficients.len() / targets;
                let (rows, cols, v) = rows_of(x, features)?;
                let mut out = Vec::with_capacity(rows * targets);
                let mut scores = vec![0.0; *targets];
                for r in 0..rows {
                    let row = &v[r * cols..r * cols + features];
                    for (t, s) in scores.iter_mut().enumerate() {
                        let w = &coefficients[t * features..(t + 1) * features];
                        *s = row.iter().zip(w).map(|(x, w)| x * w).sum::<f64>()
                            + intercepts.get(t).copied().unwrap_or(0.0);
                    }
                    if *targets > 1 {
                        post_transform(*post, &mut scores);
                    } else if *post == Post::Probit {
                        scores[0] = probit(scores[0]);
                    }
                    out.extend_from_slice(&scores);
                }
                vec![float_out(vec![rows, *targets], out)]
            }
            Op::TreeRegressor {
                trees,
                base,
                aggregate,
                post,
            } => {
                let x = need(ins, 0)?;
                let (rows, cols, v) = rows_of(x, trees.features)?;
                let t = trees.targets;
                let mut out = Vec::with_capacity(rows * t);
                let mut acc = vec![(0.0, false); t];
                let mut scores = vec![0.0; t];
                for r in 0..rows {
                    trees.scores(&v[r * cols..(r + 1) * cols], *aggregate, &mut acc);
                    for (j, s) in scores.iter_mut().enumerate() {
                        let (score, hit) = acc[j];
                        let score = match aggregate {
                            Aggregate::Average => score / trees.roots.len() as f64,
                            _ if hit => score,
                            _ => 0.0,
                        };
                        *s = score + base.get(j).copied().unwrap_or(0.0);
                    }
                    if t > 1 {
                        post_transform(*post, &mut scores);
                    } else if *post == Post::Probit {
                        scores[0] = probit(scores[0]);
                    }
                    out.extend_from_slice(&scores);
                }
                vec![float_out(vec![rows, t], out)]
            }
            Op::TreeClassifier { trees, classes } => {
                let x = need(ins, 0)?;
                let (rows, cols, v) = rows_of(x, trees.features)?;
                let k = classes.labels.len();
                let mut labels = Vec::with_capacity(rows);
                let mut out = Vec::with_capacity(rows * k);
                let mut acc = vec![(0.0, false); k];
                let mut scores = vec![0.0; k];
                for r in 0..rows {
                    trees.scores(&v[r * cols..(r + 1) * cols], Aggregate::Sum, &mut acc);
                    if k > 2 {
                        for (j, s) in scores.iter_mut().enumerate() {
                            *s = acc[j].0 + classes.base.get(j).copied().unwrap_or(0.0);
                        }
                        labels.push(argmax(&scores, false));
                        post_transform(classes.post, &mut scores);
                        out.extend_from_slice(&scores);
                        continue;
                    }
                    // Two classes, as ONNX Runtime's TreeAggregatorClassifier::FinalizeScores.
                    let ((mut s0, has0), (mut s1, has1)) = (acc[0], acc[1]);
                    let base = &classes.base;
                    let mut two = true;
                    // Which second score to write for one scored column (write_scores).
                    let mut add = -1;
                    match base.len() {
                        2 if has1 => {
                            s1 = base[1] + s0;
                            s0 = -s1;
                        }
                        2 => {
                            s1 += base[1];
                            s0 += base[0];
                        }
                        1 => {
                            s0 += base[0];
                            two = has1;
                        }
                        0 => {
                            add = 3;
                            two = has1;
                        }
                        _ => {}
                    }
                    let pos = if two && has1 {
                        s1
                    } else if has0 || base.len() == 1 {
                        s0
                    } else {
                        0.0
                    };
                    let label = if classes.single_column {
                        if classes.positive_weights {
                            add = if pos > 0.5 { 0 } else { 1 };
                            pos > 0.5
                        } else {
                            add = if pos > 0.0 { 2 } else { 3 };
                            pos > 0.0
                        }
                    } else {
                        pos > 0.0
                    };
                    labels.push(usize::from(label));
                    if two {
                        let mut p = [s0, s1];
                        post_transform(classes.post, &mut p);
                        out.extend(p);
                    } else {
                        out.extend(one_score(classes.post, add, s0));
                    }
                }
                vec![
                    Value::Tensor(Tensor::of(
                        vec![rows],
                        classes.labels.data(labels.into_iter()),
                    )),
                    float_out(vec![rows, k], out),
                ]
            }
            Op::ZipMap { labels } => {
                let x = need(ins, 0)?;
                let (rows, cols) = x.matrix_dims();
                if cols != labels.len() {
                    return Err(OnnxError::Input(format!(
                        "{cols} probabilities per row for {} labels",
                        labels.len()
                    )));
                }
                let probabilities = match &x.data {
                    Data::Float(v) => v.clone(),
                    d => d.to_f64().iter().map(|&x| x as f32).collect(),
                };
                vec![Value::Maps(ClassMaps {
                    labels: labels.clone(),
                    rows,
                    probabilities,
                })]
            }
            Op::Reshape { allow_zero } => {
                let x = need(ins, 0)?;
                let spec = need(ins, 1)?.ints();
                let mut shape = Vec::with_capacity(spec.len());
                let mut infer = None;
                for (i, &d) in spec.iter().enumerate() {
                    match d {
                        -1 => {
                            infer = Some(i);
                            shape.push(1);
                        }
                        0 if !allow_zero => shape.push(x.shape.get(i).copied().unwrap_or(0)),
                        d => {
                            shape.push(usize::try_from(d).map_err(|_| {
                                OnnxError::Input(format!("reshape to dimension {d}"))
                            })?)
                        }
                    }
                }
                if let Some(i) = infer {
                    let known: usize = shape.iter().product();
                    shape[i] = x.data.len() / known.max(1);
                }
                vec![Value::Tensor(Tensor::new(shape, x.data.clone())?)]
            }
            Op::Flatten { axis } => {
                let x = need(ins, 0)?;
                let a = if *axis < 0 {
                    (*axis + x.shape.len() as i64).max(0) as usize
                } else {
                    (*axis as usize).min(x.shape.len())
                };
                let outer: usize = x.shape[..a].iter().product();
                let inner: usize = x.shape[a..].iter().product();
                vec![Value::Tensor(Tensor::of(
                    vec![outer, inner],
                    x.data.clone(),
                ))]
            }
            Op::Concat { axis } => {
                let parts: Vec<&Tensor> = (0..ins.len())
                    .map(|i| need(ins, i))
                    .collect::<Result<_>>()?;
                let first = parts
                    .first()
                    .ok_or_else(|| OnnxError::Input("no inputs to concatenate".into()))?;
                let rank = first.shape.len();
                let a = axis_of(*axis, rank)?;
                let outer: usize = first.shape[..a].iter().product();
                let elem = first.elem_type();
                let mut shape = first.shape.clone();
                shape[a] = parts
                    .iter()
                    .map(|p| p.shape.get(a).copied().unwrap_or(0))
                    .sum();
                let mut f = Vec::new();
                let mut s = Vec::new();
                for o in 0..outer {
                    for p in &parts {
                        if p.shape.len() != rank || p.shape[..a] != first.shape[..a] {
                            return Err(OnnxError::Input(format!(
                                "cannot concatenate shapes {:?} and {:?}",
                                first.shape, p.shape
                            )));
                        }
                        let inner: usize = p.shape[a..].iter().product();
                        match (&p.data, elem) {
                            (Data::String(v), ElemType::String) => {
                                s.extend_from_slice(&v[o * inner..(o + 1) * inner])
                            }
                            (d, _) => f.extend_from_slice(&d.to_f64()[o * inner..(o + 1) * inner]),
                        }
                    }
                }
                let data = if elem == ElemType::String {
                    Data::String(s)
                } else {
                    Data::from_f64(elem, f)
                };
                vec![Value::Tensor(Tensor::new(shape, data)?)]
            }
            Op::MatMul => {
                let a = need(ins, 0)?;
                let b = need(ins, 1)?;
                let (m, k) = a.matrix_dims();
                let (k2, n) = match b.shape.len() {
                    1 => (b.shape[0], 1),
                    2 => (b.shape[0], b.shape[1]),
                    _ => return Err(OnnxError::Input("MatMul takes a 2-D right side".into())),
                };
                if k != k2 {
                    return Err(OnnxError::Input(format!(
                        "cannot multiply {:?} by {:?}",
                        a.shape, b.shape
                    )));
                }
                let out = matmul(&a.data.to_f64(), &b.data.to_f64(), m, k, n, false, false);
                let mut shape = a.shape.clone();
                match b.shape.len() {
                    1 => {
                        shape.pop();
                    }
                    _ => match shape.last_mut() {
                        Some(last) => *last = n,
                        None => shape.push(n),
                    },
                }
                vec![Value::Tensor(Tensor::of(
                    shape,
                    Data::from_f64(arith_type(a.elem_type()), out),
                ))]
            }
            Op::Gemm {
                alpha,
                beta,
                trans_a,
                trans_b,
            } => {
                let a = need(ins, 0)?;
                let b = need(ins, 1)?;
                if a.shape.len() != 2 || b.shape.len() != 2 {
                    return Err(OnnxError::Input("Gemm takes 2-D inputs".into()));
                }
                let (m, k) = if *trans_a {
                    (a.shape[1], a.shape[0])
                } else {
                    (a.shape[0], a.shape[1])
                };
                let (k2, n) = if *trans_b {
                    (b.shape[1], b.shape[0])
                } else {
                    (b.shape[0], b.shape[1])
                };
                if k != k2 {
                    return Err(OnnxError::Input(format!(
                        "cannot multiply {:?} by {:?}",
                        a.shape, b.shape
                    )));
                }
                let mut out = matmul(
                    &a.data.to_f64(),
                    &b.data.to_f64(),
                    m,
                    k,
                    n,
                    *trans_a,
                    *trans_b,
                );
                out.iter_mut().for_each(|x| *x *= alpha);
                if let Some(Some(c)) = ins.get(2) {
                    let c = c.tensor()?;
                    let shape = vec![m, n];
                    numpy_broadcast(&c.shape, &shape)?;
                    let idx = broadcast_index(&c.shape, &shape);
                    let cv = c.data.to_f64();
                    for (o, i) in out.iter_mut().zip(idx) {
                        *o += beta * cv[i];
                    }
                }
                vec![Value::Tensor(Tensor::of(
                    vec![m, n],
                    Data::from_f64(arith_type(a.elem_type()), out),
                ))]
            }
            Op::Binary(op) => {
                let a = need(ins, 0)?;
                let b = need(ins, 1)?;
                let shape = numpy_broadcast(&a.shape, &b.shape)?;
                let (av, bv) = (a.data.to_f64(), b.data.to_f64());
                let f = |x: f64, y: f64| match op {
                    BinaryOp::Add => x + y,
                    BinaryOp::Sub => x - y,
                    BinaryOp::Mul => x * y,
                    BinaryOp::Div => x / y,
                };
                let out: Vec<f64> = if a.shape == b.shape {
                    av.iter().zip(bv.iter()).map(|(&x, &y)| f(x, y)).collect()
                } else {
                    let ia = broadcast_index(&a.shape, &shape);
                    let ib = broadcast_index(&b.shape, &shape);
                    ia.into_iter()
                        .zip(ib)
                        .map(|(i, j)| f(av[i], bv[j]))
                        .collect()
                };
                vec![Value::Tensor(Tensor::of(
                    shape,
                    Data::from_f64(arith_type(a.elem_type()), out),
                ))]
            }
            Op::Unary(op) => {
                let x = need(ins, 0)?;
                let out = x
                    .data
                    .to_f64()
                    .iter()
                    .map(|&v| match op {
                        UnaryOp::Relu => v.max(0.0),
                        UnaryOp::Sigmoid => sigmoid(v),
                        UnaryOp::Tanh => v.tanh(),
                        UnaryOp::Exp => v.exp(),
                        UnaryOp::Log => v.ln(),
                        UnaryOp::Abs => v.abs(),
                        UnaryOp::Neg => -v,
                        UnaryOp::Sqrt => v.sqrt(),
                    })
                    .collect();
                vec![Value::Tensor(Tensor::of(
                    x.shape.clone(),
                    Data::from_f64(arith_type(x.elem_type()), out),
                ))]
            }
            Op::Softmax { axis, flatten } => {
                let x = need(ins, 0)?;
                let a = axis_of(*axis, x.shape.len())?;
                let mut v = x.data.to_f64().into_owned();
                if *flatten || a + 1 == x.shape.len() {
                    let inner: usize = x.shape[a..].iter().product();
                    for row in v.chunks_mut(inner.max(1)) {
                        softmax(row);
                    }
                } else {
                    let inner: usize = x.shape[a + 1..].iter().product();
                    let n = x.shape[a];
                    let outer: usize = x.shape[..a].iter().product();
                    let mut buf = vec![0.0; n];
                    for o in 0..outer {
                        for i in 0..inner {
                            for (j, b) in buf.iter_mut().enumerate() {
                                *b = v[(o * n + j) * inner + i];
                            }
                            softmax(&mut buf);
                            for (j, b) in buf.iter().enumerate() {
                                v[(o * n + j) * inner + i] = *b;
                            }
                        }
                    }
                }
                vec![Value::Tensor(Tensor::of(
                    x.shape.clone(),
                    Data::from_f64(arith_type(x.elem_type()), v),
                ))]
            }
            Op::ArgMax {
                axis,
                keep_dims,
                last,
            } => {
                let x = need(ins, 0)?;
                let a = axis_of(*axis, x.shape.len())?;
                let v = x.data.to_f64();
                let n = x.shape.get(a).copied().unwrap_or(1);
                let inner: usize = x.shape.get(a + 1..).map_or(1, |s| s.iter().product());
                let outer: usize = x.shape[..a.min(x.shape.len())].iter().product();
                let mut out = Vec::with_capacity(outer * inner);
                let mut buf = vec![0.0; n];
                for o in 0..outer {
                    for i in 0..inner {
                        for (j, b) in buf.iter_mut().enumerate() {
                            *b = v[(o * n + j) * inner + i];
                        }
                        out.push(argmax(&buf, *last) as i64);
                    }
                }
                let mut shape = x.shape.clone();
                if *keep_dims {
                    if let Some(d) = shape.get_mut(a) {
                        *d = 1;
                    }
                } else if a < shape.len() {
                    shape.remove(a);
                }
                vec![Value::Tensor(Tensor::of(shape, Data::Int64(out)))]
            }
            Op::Squeeze { axes } => {
                let x = need(ins, 0)?;
                let axes = match axes {
                    Some(a) => Some(a.clone()),
                    None => ins
                        .get(1)
                        .copied()
                        .flatten()
                        .map(|v| v.tensor().map(Tensor::ints))
                        .transpose()?,
                };
                let rank = x.shape.len();
                let drop: Vec<usize> = match axes {
                    Some(a) => a.iter().map(|&d| axis_of(d, rank)).collect::<Result<_>>()?,
                    None => (0..rank).filter(|&i| x.shape[i] == 1).collect(),
                };
                let shape = x
                    .shape
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| !drop.contains(i))
                    .map(|(_, &d)| d)
                    .collect();
                vec![Value::Tensor(Tensor::of(shape, x.data.clone()))]
            }
            Op::Unsqueeze { axes } => {
                let x = need(ins, 0)?;
                let axes = match axes {
                    Some(a) => a.clone(),
                    None => need(ins, 1)?.ints(),
                };
                let rank = x.shape.len() + axes.len();
                let mut add: Vec<usize> = axes
                    .iter()
                    .map(|&d| axis_of(d, rank))
                    .collect::<Result<_>>()?;
                add.sort_unstable();
                let mut shape = x.shape.clone();
                for a in add {
                    shape.insert(a.min(shape.len()), 1);
                }
                vec![Value::Tensor(Tensor::of(shape, x.data.clone()))]
            }
        })
    }
}

fn matmul(
    a: &[f64],
    b: &[f64],
    m: usize,
    k: usize,
    n: usize,
    trans_a: bool,
    trans_b: bool,
) -> Vec<f64> {
    let mut out = vec![0.0; m * n];
    for i in 0..m {
        for p in 0..k {
            let x = if trans_a { a[p * m + i] } else { a[i * k + p] };
            if x == 0.0 {
                continue;
            }
            let row = &mut out[i * n..(i + 1) * n];
            for (j, o) in row.iter_mut().enumerate() {
                let y = if trans_b { b[j * k + p] } else { b[p * n + j] };
                *o += x * y;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::onnx::proto::{
        GraphProto, OperatorSetIdProto, TypeProto, ValueInfoProto, attribute_type, type_proto,
    };

    fn attr(name: &str) -> AttributeProto {
        AttributeProto {
            name: Some(name.into()),
            ..AttributeProto::default()
        }
    }
    fn floats(name: &str, v: &[f32]) -> AttributeProto {
        AttributeProto {
            r#type: Some(attribute_type::FLOATS),
            floats: v.to_vec(),
            ..attr(name)
        }
    }
    fn ints(name: &str, v: &[i64]) -> AttributeProto {
        AttributeProto {
            r#type: Some(attribute_type::INTS),
            ints: v.to_vec(),
            ..attr(name)
        }
    }
    fn int(name: &str, v: i64) -> AttributeProto {
        AttributeProto {
            r#type: Some(attribute_type::INT),
            i: Some(v),
            ..attr(name)
        }
    }
    fn string(name: &str, v: &str) -> AttributeProto {
        AttributeProto {
            r#type: Some(attribute_type::STRING),
            s: Some(v.as_bytes().to_vec()),
            ..attr(name)
        }
    }
    fn strings(name: &str, v: &[&str]) -> AttributeProto {
        AttributeProto {
            r#type: Some(attribute_type::STRINGS),
            strings: v.iter().map(|s| s.as_bytes().to_vec()).collect(),
            ..attr(name)
        }
    }
    fn node(
        op: &str,
        domain: &str,
        ins: &[&str],
        outs: &[&str],
        a: Vec<AttributeProto>,
    ) -> NodeProto {
        NodeProto {
            input: ins.iter().map(|s| s.to_string()).collect(),
            output: outs.iter().map(|s| s.to_string()).collect(),
            name: Some(format!("{op}_0")),
            op_type: Some(op.into()),
            domain: Some(domain.into()),
            attribute: a,
            doc_string: None,
        }
    }
    fn float_input(name: &str, width: i64) -> ValueInfoProto {
        use crate::onnx::proto::tensor_shape_proto::{Dimension, dimension};
        ValueInfoProto {
            name: Some(name.into()),
            r#type: Some(TypeProto {
                value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                    elem_type: Some(data_type::FLOAT),
                    shape: Some(crate::onnx::proto::TensorShapeProto {
                        dim: vec![
                            Dimension {
                                value: Some(dimension::Value::DimParam("N".into())),
                            },
                            Dimension {
                                value: Some(dimension::Value::DimValue(width)),
                            },
                        ],
                    }),
                })),
            }),
            doc_string: None,
        }
    }
    fn output(name: &str) -> ValueInfoProto {
        ValueInfoProto {
            name: Some(name.into()),
            r#type: None,
            doc_string: None,
        }
    }
    fn model(
        nodes: Vec<NodeProto>,
        width: i64,
        outs: &[&str],
        init: Vec<TensorProto>,
    ) -> Result<OnnxModel> {
        let m = ModelProto {
            ir_version: Some(8),
            opset_import: vec![
                OperatorSetIdProto {
                    domain: Some(String::new()),
                    version: Some(17),
                },
                OperatorSetIdProto {
                    domain: Some(ML.into()),
                    version: Some(3),
                },
            ],
            graph: Some(GraphProto {
                node: nodes,
                initializer: init,
                input: vec![float_input("X", width)],
                output: outs.iter().map(|o| output(o)).collect(),
                ..GraphProto::default()
            }),
            ..ModelProto::default()
        };
        OnnxModel::from_bytes(&m.encode_to_vec())
    }
    fn x(rows: &[&[f32]]) -> Tensor {
        let cols = rows[0].len();
        Tensor::new(
            vec![rows.len(), cols],
            Data::Float(rows.iter().flat_map(|r| r.iter().copied()).collect()),
        )
        .unwrap()
    }
    fn floats_of(v: &Value) -> Vec<f64> {
        match v {
            Value::Tensor(t) => t.data.to_f64().into_owned(),
            Value::Maps(m) => m.probabilities.iter().map(|&p| f64::from(p)).collect(),
        }
    }
    fn close(got: &[f64], want: &[f64]) {
        assert_eq!(got.len(), want.len(), "{got:?} vs {want:?}");
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() < 1e-6, "{got:?} vs {want:?}");
        }
    }

    #[test]
    fn scaler_then_binary_logistic_classifier_with_zipmap() {
        let m = model(
            vec![
                node(
                    "Scaler",
                    ML,
                    &["X"],
                    &["s"],
                    vec![floats("offset", &[1.0, 2.0]), floats("scale", &[0.5, 2.0])],
                ),
                node(
                    "LinearClassifier",
                    ML,
                    &["s"],
                    &["label", "p"],
                    vec![
                        floats("coefficients", &[1.0, -1.0]),
                        floats("intercepts", &[0.5]),
                        ints("classlabels_ints", &[0, 1]),
                        string("post_transform", "LOGISTIC"),
                    ],
                ),
                node(
                    "ZipMap",
                    ML,
                    &["p"],
                    &["probabilities"],
                    vec![ints("classlabels_int64s", &[0, 1])],
                ),
            ],
            2,
            &["label", "probabilities"],
            Vec::new(),
        )
        .unwrap();
        let out = m.run(vec![x(&[&[3.0, 2.0], &[1.0, 3.0]])]).unwrap();
        // Row 1: s = (1, 0), score 1.5; row 2: s = (0, 2), score -1.5.
        let sig = |z: f64| 1.0 / (1.0 + (-z).exp());
        assert_eq!(
            out[0],
            Value::Tensor(Tensor::of(vec![2], Data::Int64(vec![1, 0])))
        );
        close(
            &floats_of(&out[1]),
            &[sig(-1.5), sig(1.5), sig(1.5), sig(-1.5)],
        );
        assert_eq!(m.class_labels(), Some(Labels::Int64(vec![0, 1])));
    }

    #[test]
    fn tree_regressor_modes_missing_values_and_aggregates() {
        // One tree: x0 <= 0.5 (NaN goes left) ? 10 : (x1 < 2 ? 20 : 30); base 1.
        let tree = |aggregate: &str| {
            node(
                "TreeEnsembleRegressor",
                ML,
                &["X"],
                &["y"],
                vec![
                    ints("nodes_treeids", &[0, 0, 0, 0, 0]),
                    ints("nodes_nodeids", &[0, 1, 2, 3, 4]),
                    ints("nodes_featureids", &[0, 0, 1, 0, 0]),
                    floats("nodes_values", &[0.5, 0.0, 2.0, 0.0, 0.0]),
                    strings(
                        "nodes_modes",
                        &["BRANCH_LEQ", "LEAF", "BRANCH_LT", "LEAF", "LEAF"],
                    ),
                    ints("nodes_truenodeids", &[1, 0, 3, 0, 0]),
                    ints("nodes_falsenodeids", &[2, 0, 4, 0, 0]),
                    ints("nodes_missing_value_tracks_true", &[1, 0, 0, 0, 0]),
                    ints("target_treeids", &[0, 0, 0]),
                    ints("target_nodeids", &[1, 3, 4]),
                    ints("target_ids", &[0, 0, 0]),
                    floats("target_weights", &[10.0, 20.0, 30.0]),
                    floats("base_values", &[1.0]),
                    int("n_targets", 1),
                    string("aggregate_function", aggregate),
                ],
            )
        };
        let m = model(vec![tree("SUM")], 2, &["y"], Vec::new()).unwrap();
        let out = m
            .run(vec![x(&[
                &[0.5, 9.0],
                &[f32::NAN, 9.0],
                &[0.7, 1.0],
                &[0.7, 2.0],
            ])])
            .unwrap();
        close(&floats_of(&out[0]), &[11.0, 11.0, 21.0, 31.0]);
        let m = model(vec![tree("AVERAGE")], 2, &["y"], Vec::new()).unwrap();
        close(
            &floats_of(&m.run(vec![x(&[&[0.7, 2.0]])]).unwrap()[0]),
            &[31.0],
        );
    }

    #[test]
    fn a_small_network() {
        // softmax(X·W + b) and its argmax.
        let w = TensorProto {
            dims: vec![2, 2],
            data_type: Some(data_type::FLOAT),
            name: Some("W".into()),
            raw_data: Some(
                [1.0f32, 0.0, 0.0, 2.0]
                    .iter()
                    .flat_map(|f| f.to_le_bytes())
                    .collect(),
            ),
            ..TensorProto::default()
        };
        let b = TensorProto {
            dims: vec![2],
            data_type: Some(data_type::FLOAT),
            name: Some("b".into()),
            float_data: vec![0.0, -1.0],
            ..TensorProto::default()
        };
        let m = model(
            vec![
                node("MatMul", "", &["X", "W"], &["xw"], Vec::new()),
                node("Add", "", &["xw", "b"], &["z"], Vec::new()),
                node("Relu", "", &["z"], &["r"], Vec::new()),
                node("Softmax", "", &["r"], &["p"], vec![int("axis", 1)]),
                node(
                    "ArgMax",
                    "",
                    &["p"],
                    &["k"],
                    vec![int("axis", 1), int("keepdims", 0)],
                ),
            ],
            2,
            &["p", "k"],
            vec![w, b],
        )
        .unwrap();
        let out = m.run(vec![x(&[&[1.0, 1.0], &[3.0, 0.0]])]).unwrap();
        // Row 1: z = (1, 1); row 2: z = (3, -1) -> relu (3, 0).
        let e = |a: f64, b: f64| [a.exp() / (a.exp() + b.exp()), b.exp() / (a.exp() + b.exp())];
        let mut want = e(1.0, 1.0).to_vec();
        want.extend(e(3.0, 0.0));
        close(&floats_of(&out[0]), &want);
        assert_eq!(
            out[1],
            Value::Tensor(Tensor::of(vec![2], Data::Int64(vec![0, 0])))
        );
    }

    #[test]
    fn an_unsupported_operator_is_refused_at_load_naming_it() {
        let e = model(
            vec![node("LabelEncoder", ML, &["X"], &["y"], Vec::new())],
            1,
            &["y"],
            Vec::new(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("`LabelEncoder`") && e.contains("ai.onnx.ml"),
            "{e}"
        );
        let e = model(
            vec![node("Conv", "", &["X"], &["y"], Vec::new())],
            1,
            &["y"],
            Vec::new(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("`Conv`") && e.contains("domain `ai.onnx`"),
            "{e}"
        );
    }

    #[test]
    fn inputs_of_the_wrong_shape_or_type_are_refused() {
        let m = model(
            vec![node("Identity", "", &["X"], &["y"], Vec::new())],
            2,
            &["y"],
            Vec::new(),
        )
        .unwrap();
        let e = m.run(vec![x(&[&[1.0, 2.0, 3.0]])]).unwrap_err().to_string();
        assert!(e.contains("[N, 2]"), "{e}");
        let d = Tensor::new(vec![1, 2], Data::Double(vec![1.0, 2.0])).unwrap();
        assert!(m.run(vec![d]).unwrap_err().to_string().contains("float"));
        assert!(m.run(Vec::new()).is_err());
    }

    #[test]
    fn describe_keeps_unsupported_operators_for_another_runtime() {
        let nodes = vec![
            node("Erf", "", &["X"], &["e"], Vec::new()),
            node(
                "ZipMap",
                ML,
                &["e"],
                &["p"],
                vec![ints("classlabels_int64s", &[0, 1])],
            ),
        ];
        let m = ModelProto {
            graph: Some(GraphProto {
                node: nodes,
                input: vec![float_input("X", 2)],
                output: vec![output("p")],
                ..GraphProto::default()
            }),
            ..ModelProto::default()
        };
        let bytes = m.encode_to_vec();
        assert!(OnnxModel::from_bytes(&bytes).is_err());
        let described = OnnxModel::describe(&bytes).unwrap();
        assert_eq!(described.class_labels(), Some(Labels::Int64(vec![0, 1])));
        assert!(described.run(vec![x(&[&[1.0, 2.0]])]).is_err());
        // Without its ZipMap, the graph answers the probability tensor itself.
        let plain = ModelProto::decode(without_zipmap(&bytes).unwrap().as_slice()).unwrap();
        let graph = plain.graph.unwrap();
        assert_eq!(graph.node.len(), 1);
        assert_eq!(graph.output[0].name.as_deref(), Some("e"));
    }

    #[test]
    fn garbage_is_not_a_model() {
        assert!(OnnxModel::from_bytes(b"not a model at all").is_err());
    }
}
