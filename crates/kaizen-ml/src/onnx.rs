//! ONNX export of fitted models, for scoring outside kaizen (onnxruntime and the like).
//!
//! One graph input, `input`: a `double` tensor `[N, F]`, the model's features in order (or, with
//! a numeric [`Preprocessor`], its input columns, imputed and scaled in the graph). Outputs:
//!
//! - regression: `variable`, `[N, 1]` (`double` for linear models, `float` for trees, whose
//!   `ai.onnx.ml` operator only outputs `float`);
//! - classification: `label` (`int64`, `[N]`) and `probabilities` (`float`, `[N, K]`, binary
//!   models too: `[P(0), P(1)]`), with no ZipMap.
//!
//! Trees carry their thresholds, leaf weights and base scores as `double` tensors
//! (`nodes_values_as_tensor`, `target_weights_as_tensor`, ...) and the input is `double`, so a
//! row takes the same branches as in kaizen and the sum of leaves is not rounded to `float`
//! before the end. The input type and the outputs are also written in the model's
//! `metadata_props` (`kaizen.input_dtype`, `kaizen.outputs`).
//!
//! The protobuf messages are the subset of `onnx.proto` (ONNX 1.x, proto2) that the export
//! writes, declared here with prost's derive: no protoc, no generated code.

use prost::Message;

use crate::error::{MlError, Result};
use crate::learner::{FittedModel, Link, ModelParams, Task, TreeEnsemble};
use crate::preprocess::{Encoder, Preprocessor};

/// The messages of `onnx.proto` that the export needs, field numbers as there.
pub mod proto {
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ModelProto {
        #[prost(int64, optional, tag = "1")]
        pub ir_version: Option<i64>,
        #[prost(message, repeated, tag = "8")]
        pub opset_import: Vec<OperatorSetIdProto>,
        #[prost(string, optional, tag = "2")]
        pub producer_name: Option<String>,
        #[prost(string, optional, tag = "3")]
        pub producer_version: Option<String>,
        #[prost(string, optional, tag = "4")]
        pub domain: Option<String>,
        #[prost(int64, optional, tag = "5")]
        pub model_version: Option<i64>,
        #[prost(string, optional, tag = "6")]
        pub doc_string: Option<String>,
        #[prost(message, optional, tag = "7")]
        pub graph: Option<GraphProto>,
        #[prost(message, repeated, tag = "14")]
        pub metadata_props: Vec<StringStringEntryProto>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct StringStringEntryProto {
        #[prost(string, optional, tag = "1")]
        pub key: Option<String>,
        #[prost(string, optional, tag = "2")]
        pub value: Option<String>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct OperatorSetIdProto {
        #[prost(string, optional, tag = "1")]
        pub domain: Option<String>,
        #[prost(int64, optional, tag = "2")]
        pub version: Option<i64>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct GraphProto {
        #[prost(message, repeated, tag = "1")]
        pub node: Vec<NodeProto>,
        #[prost(string, optional, tag = "2")]
        pub name: Option<String>,
        #[prost(message, repeated, tag = "5")]
        pub initializer: Vec<TensorProto>,
        #[prost(string, optional, tag = "10")]
        pub doc_string: Option<String>,
        #[prost(message, repeated, tag = "11")]
        pub input: Vec<ValueInfoProto>,
        #[prost(message, repeated, tag = "12")]
        pub output: Vec<ValueInfoProto>,
        #[prost(message, repeated, tag = "13")]
        pub value_info: Vec<ValueInfoProto>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct NodeProto {
        #[prost(string, repeated, tag = "1")]
        pub input: Vec<String>,
        #[prost(string, repeated, tag = "2")]
        pub output: Vec<String>,
        #[prost(string, optional, tag = "3")]
        pub name: Option<String>,
        #[prost(string, optional, tag = "4")]
        pub op_type: Option<String>,
        #[prost(string, optional, tag = "7")]
        pub domain: Option<String>,
        #[prost(message, repeated, tag = "5")]
        pub attribute: Vec<AttributeProto>,
        #[prost(string, optional, tag = "6")]
        pub doc_string: Option<String>,
    }

    /// `AttributeProto.AttributeType` values.
    pub mod attribute_type {
        pub const FLOAT: i32 = 1;
        pub const INT: i32 = 2;
        pub const STRING: i32 = 3;
        pub const TENSOR: i32 = 4;
        pub const FLOATS: i32 = 6;
        pub const INTS: i32 = 7;
        pub const STRINGS: i32 = 8;
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct AttributeProto {
        #[prost(string, optional, tag = "1")]
        pub name: Option<String>,
        #[prost(int32, optional, tag = "20")]
        pub r#type: Option<i32>,
        #[prost(float, optional, tag = "2")]
        pub f: Option<f32>,
        #[prost(int64, optional, tag = "3")]
        pub i: Option<i64>,
        #[prost(bytes = "vec", optional, tag = "4")]
        pub s: Option<Vec<u8>>,
        #[prost(message, optional, tag = "5")]
        pub t: Option<TensorProto>,
        #[prost(float, repeated, tag = "7")]
        pub floats: Vec<f32>,
        #[prost(int64, repeated, tag = "8")]
        pub ints: Vec<i64>,
        #[prost(bytes = "vec", repeated, tag = "9")]
        pub strings: Vec<Vec<u8>>,
        #[prost(message, repeated, tag = "10")]
        pub tensors: Vec<TensorProto>,
    }

    /// `TensorProto.DataType` values.
    pub mod data_type {
        pub const FLOAT: i32 = 1;
        pub const INT32: i32 = 6;
        pub const INT64: i32 = 7;
        pub const STRING: i32 = 8;
        pub const BOOL: i32 = 9;
        pub const DOUBLE: i32 = 11;
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TensorProto {
        #[prost(int64, repeated, tag = "1")]
        pub dims: Vec<i64>,
        #[prost(int32, optional, tag = "2")]
        pub data_type: Option<i32>,
        #[prost(float, repeated, tag = "4")]
        pub float_data: Vec<f32>,
        #[prost(int32, repeated, tag = "5")]
        pub int32_data: Vec<i32>,
        #[prost(bytes = "vec", repeated, tag = "6")]
        pub string_data: Vec<Vec<u8>>,
        #[prost(int64, repeated, tag = "7")]
        pub int64_data: Vec<i64>,
        #[prost(string, optional, tag = "8")]
        pub name: Option<String>,
        /// Little-endian values of `data_type`, instead of the typed fields.
        #[prost(bytes = "vec", optional, tag = "9")]
        pub raw_data: Option<Vec<u8>>,
        #[prost(double, repeated, tag = "10")]
        pub double_data: Vec<f64>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ValueInfoProto {
        #[prost(string, optional, tag = "1")]
        pub name: Option<String>,
        #[prost(message, optional, tag = "2")]
        pub r#type: Option<TypeProto>,
        #[prost(string, optional, tag = "3")]
        pub doc_string: Option<String>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TypeProto {
        #[prost(oneof = "type_proto::Value", tags = "1, 4, 5")]
        pub value: Option<type_proto::Value>,
    }

    pub mod type_proto {
        #[derive(Clone, PartialEq, prost::Oneof)]
        pub enum Value {
            #[prost(message, tag = "1")]
            TensorType(Tensor),
            /// A sequence (skl2onnx's ZipMap output: a sequence of maps).
            #[prost(message, tag = "4")]
            SequenceType(Sequence),
            #[prost(message, tag = "5")]
            MapType(Map),
        }

        #[derive(Clone, PartialEq, prost::Message)]
        pub struct Sequence {
            #[prost(message, optional, boxed, tag = "1")]
            pub elem_type: Option<Box<super::TypeProto>>,
        }

        #[derive(Clone, PartialEq, prost::Message)]
        pub struct Map {
            #[prost(int32, optional, tag = "1")]
            pub key_type: Option<i32>,
            #[prost(message, optional, boxed, tag = "2")]
            pub value_type: Option<Box<super::TypeProto>>,
        }

        #[derive(Clone, PartialEq, prost::Message)]
        pub struct Tensor {
            #[prost(int32, optional, tag = "1")]
            pub elem_type: Option<i32>,
            #[prost(message, optional, tag = "2")]
            pub shape: Option<super::TensorShapeProto>,
        }
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TensorShapeProto {
        #[prost(message, repeated, tag = "1")]
        pub dim: Vec<tensor_shape_proto::Dimension>,
    }

    pub mod tensor_shape_proto {
        #[derive(Clone, PartialEq, prost::Message)]
        pub struct Dimension {
            #[prost(oneof = "dimension::Value", tags = "1, 2")]
            pub value: Option<dimension::Value>,
        }

        pub mod dimension {
            #[derive(Clone, PartialEq, prost::Oneof)]
            pub enum Value {
                #[prost(int64, tag = "1")]
                DimValue(i64),
                #[prost(string, tag = "2")]
                DimParam(String),
            }
        }
    }
}

use proto::tensor_shape_proto::{Dimension, dimension};
use proto::{
    AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, StringStringEntryProto,
    TensorProto, TensorShapeProto, TypeProto, ValueInfoProto, attribute_type, data_type,
};

const IR_VERSION: i64 = 8;
const ONNX_OPSET: i64 = 17;
const ML_DOMAIN: &str = "ai.onnx.ml";
const ML_OPSET: i64 = 3;
const INPUT: &str = "input";

fn attr(name: &str) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        ..AttributeProto::default()
    }
}

fn attr_int(name: &str, value: i64) -> AttributeProto {
    AttributeProto {
        r#type: Some(attribute_type::INT),
        i: Some(value),
        ..attr(name)
    }
}

fn attr_ints(name: &str, values: Vec<i64>) -> AttributeProto {
    AttributeProto {
        r#type: Some(attribute_type::INTS),
        ints: values,
        ..attr(name)
    }
}

fn attr_floats(name: &str, values: Vec<f32>) -> AttributeProto {
    AttributeProto {
        r#type: Some(attribute_type::FLOATS),
        floats: values,
        ..attr(name)
    }
}

fn attr_string(name: &str, value: &str) -> AttributeProto {
    AttributeProto {
        r#type: Some(attribute_type::STRING),
        s: Some(value.as_bytes().to_vec()),
        ..attr(name)
    }
}

fn attr_strings(name: &str, values: &[&str]) -> AttributeProto {
    AttributeProto {
        r#type: Some(attribute_type::STRINGS),
        strings: values.iter().map(|s| s.as_bytes().to_vec()).collect(),
        ..attr(name)
    }
}

fn double_tensor(name: &str, dims: Vec<i64>, values: Vec<f64>) -> TensorProto {
    TensorProto {
        dims,
        data_type: Some(data_type::DOUBLE),
        name: Some(name.into()),
        double_data: values,
        ..TensorProto::default()
    }
}

fn attr_doubles(name: &str, values: Vec<f64>) -> AttributeProto {
    AttributeProto {
        r#type: Some(attribute_type::TENSOR),
        t: Some(double_tensor("", vec![values.len() as i64], values)),
        ..attr(name)
    }
}

fn node(
    op: &str,
    domain: &str,
    inputs: &[&str],
    outputs: &[&str],
    attributes: Vec<AttributeProto>,
) -> NodeProto {
    NodeProto {
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: outputs.iter().map(|s| s.to_string()).collect(),
        name: Some(format!("{op}_{}", outputs[0])),
        op_type: Some(op.into()),
        domain: Some(domain.into()),
        attribute: attributes,
        doc_string: None,
    }
}

/// A tensor value's declaration; `None` in `dims` is the symbolic batch size `N`.
fn value_info(name: &str, elem_type: i32, dims: &[Option<i64>]) -> ValueInfoProto {
    let dim = dims
        .iter()
        .map(|d| Dimension {
            value: Some(match d {
                Some(v) => dimension::Value::DimValue(*v),
                None => dimension::Value::DimParam("N".into()),
            }),
        })
        .collect();
    ValueInfoProto {
        name: Some(name.into()),
        r#type: Some(TypeProto {
            value: Some(proto::type_proto::Value::TensorType(
                proto::type_proto::Tensor {
                    elem_type: Some(elem_type),
                    shape: Some(TensorShapeProto { dim }),
                },
            )),
        }),
        doc_string: None,
    }
}

/// The graph under construction.
#[derive(Default)]
struct Graph {
    nodes: Vec<NodeProto>,
    initializers: Vec<TensorProto>,
    outputs: Vec<ValueInfoProto>,
    /// Output descriptions for the metadata.
    described: Vec<String>,
}

impl Graph {
    fn output(&mut self, name: &str, elem_type: i32, dims: &[Option<i64>]) {
        self.outputs.push(value_info(name, elem_type, dims));
        let type_name = match elem_type {
            data_type::FLOAT => "float",
            data_type::DOUBLE => "double",
            _ => "int64",
        };
        let shape: Vec<String> = dims
            .iter()
            .map(|d| d.map_or("N".to_string(), |v| v.to_string()))
            .collect();
        self.described
            .push(format!("{name}:{type_name}[{}]", shape.join(",")));
    }

    /// Imputation and scaling of a numeric preprocessor, in `double` with standard operators
    /// (`ai.onnx.ml`'s Imputer and Scaler compute and output `float`, which would round the
    /// features before the model sees them). Returns the name of the features.
    fn preprocess(&mut self, preprocessor: &Preprocessor) -> Result<&'static str> {
        let mut fill = Vec::new();
        let mut mean = Vec::new();
        let mut std = Vec::new();
        for column in &preprocessor.columns {
            let Encoder::Numeric { fill: f, scale } = &column.encoder else {
                return Err(MlError::invalid(format!(
                    "ONNX export takes numeric preprocessing only (imputation and scaling); column `{}` is encoded otherwise",
                    column.name
                )));
            };
            fill.push(*f);
            mean.push(scale.map_or(0.0, |s| s.mean));
            std.push(scale.map_or(1.0, |s| s.std));
        }
        let f = fill.len() as i64;
        self.initializers
            .push(double_tensor("impute_values", vec![f], fill));
        self.nodes
            .push(node("IsNaN", "", &[INPUT], &["input_is_nan"], vec![]));
        self.nodes.push(node(
            "Where",
            "",
            &["input_is_nan", "impute_values", INPUT],
            &["imputed"],
            vec![],
        ));
        if mean.iter().all(|&m| m == 0.0) && std.iter().all(|&s| s == 1.0) {
            return Ok("imputed");
        }
        self.initializers
            .push(double_tensor("scale_mean", vec![f], mean));
        self.initializers
            .push(double_tensor("scale_std", vec![f], std));
        self.nodes.push(node(
            "Sub",
            "",
            &["imputed", "scale_mean"],
            &["centered"],
            vec![],
        ));
        self.nodes.push(node(
            "Div",
            "",
            &["centered", "scale_std"],
            &["features"],
            vec![],
        ));
        Ok("features")
    }
}

/// A leaf of the exported trees: its tree and node ids, the output (class) it adds to, and its
/// weight.
struct Leaf {
    tree: i64,
    node: i64,
    output: i64,
    weight: f64,
}

/// The node attributes shared by both tree operators, and the leaves.
fn tree_nodes(ensembles: &[TreeEnsemble]) -> (Vec<AttributeProto>, Vec<Leaf>) {
    let (mut tree_ids, mut node_ids, mut features, mut modes, mut values) =
        (vec![], vec![], vec![], vec![], vec![]);
    let (mut true_ids, mut false_ids, mut missing_true) = (vec![], vec![], vec![]);
    let mut leaves = Vec::new();
    let mut tree_id = 0i64;
    for (output, ensemble) in ensembles.iter().enumerate() {
        for tree in &ensemble.trees {
            for (id, n) in tree.iter().enumerate() {
                tree_ids.push(tree_id);
                node_ids.push(id as i64);
                if n.leaf {
                    features.push(0);
                    modes.push("LEAF");
                    values.push(0.0);
                    true_ids.push(0);
                    false_ids.push(0);
                    missing_true.push(0);
                    leaves.push(Leaf {
                        tree: tree_id,
                        node: id as i64,
                        output: output as i64,
                        weight: n.value,
                    });
                } else {
                    features.push(n.feature as i64);
                    modes.push("BRANCH_LT");
                    values.push(n.threshold);
                    true_ids.push(n.left as i64);
                    false_ids.push(n.right as i64);
                    missing_true.push(i64::from(n.missing_left));
                }
            }
            tree_id += 1;
        }
    }
    let attributes = vec![
        attr_ints("nodes_treeids", tree_ids),
        attr_ints("nodes_nodeids", node_ids),
        attr_ints("nodes_featureids", features),
        attr_strings("nodes_modes", &modes),
        attr_doubles("nodes_values_as_tensor", values),
        attr_ints("nodes_truenodeids", true_ids),
        attr_ints("nodes_falsenodeids", false_ids),
        attr_ints("nodes_missing_value_tracks_true", missing_true),
    ];
    (attributes, leaves)
}

impl FittedModel {
    /// The model as a serialized ONNX `ModelProto`; see [`crate::onnx`] for the graph's input
    /// and outputs.
    pub fn to_onnx(&self) -> Result<Vec<u8>> {
        self.to_onnx_with(None)
    }

    /// Like [`FittedModel::to_onnx`], with a numeric `preprocessor` (imputation and scaling)
    /// in front: the input is then the raw columns the preprocessor takes.
    pub fn to_onnx_with(&self, preprocessor: Option<&Preprocessor>) -> Result<Vec<u8>> {
        Ok(self.onnx_model(preprocessor)?.encode_to_vec())
    }

    fn onnx_model(&self, preprocessor: Option<&Preprocessor>) -> Result<ModelProto> {
        if self.learner == "text_linear" {
            return Err(MlError::invalid(
                "ONNX export supports linear, logistic and tree models; text_linear vectorizes \
                 text (TF-IDF or hashing), which the exported graph cannot do: export a model \
                 trained on numeric features instead",
            ));
        }
        let f = self.features.len() as i64;
        let mut graph = Graph::default();
        let features = match preprocessor {
            Some(p) => {
                if p.features != self.features {
                    return Err(MlError::invalid(format!(
                        "the preprocessor makes features [{}] but the model takes [{}]",
                        p.features.join(", "),
                        self.features.join(", ")
                    )));
                }
                graph.preprocess(p)?
            }
            None => INPUT,
        };
        let classes = match self.task {
            Task::Regression => 0,
            Task::Binary => 2,
            Task::Multiclass { classes } => classes,
        };
        match (&self.params, self.task) {
            (
                ModelParams::Linear {
                    coefficients,
                    intercepts,
                    link: Link::Identity,
                },
                Task::Regression,
            ) => {
                graph.initializers.push(double_tensor(
                    "coefficients",
                    vec![f, 1],
                    coefficients[0].clone(),
                ));
                graph
                    .initializers
                    .push(double_tensor("intercept", vec![1], vec![intercepts[0]]));
                graph.nodes.push(node(
                    "MatMul",
                    "",
                    &[features, "coefficients"],
                    &["product"],
                    vec![],
                ));
                graph.nodes.push(node(
                    "Add",
                    "",
                    &["product", "intercept"],
                    &["variable"],
                    vec![],
                ));
                graph.output("variable", data_type::DOUBLE, &[None, Some(1)]);
            }
            (
                ModelParams::Linear {
                    coefficients,
                    intercepts,
                    link,
                },
                Task::Binary | Task::Multiclass { .. },
            ) if matches!(
                (link, self.task),
                (Link::Logistic, Task::Binary) | (Link::Softmax, Task::Multiclass { .. })
            ) =>
            {
                // Binary: the rows of class 0 and 1 are -w and w, so LOGISTIC gives
                // [σ(-z), σ(z)] = [1 - P(1), P(1)] (as skl2onnx writes logistic regression).
                let (rows, biases, transform) = if *link == Link::Logistic {
                    let w = &coefficients[0];
                    let negated: Vec<f64> = w.iter().map(|v| -v).collect();
                    (
                        vec![negated, w.clone()],
                        vec![-intercepts[0], intercepts[0]],
                        "LOGISTIC",
                    )
                } else {
                    (coefficients.clone(), intercepts.clone(), "SOFTMAX")
                };
                let attributes = vec![
                    attr_floats(
                        "coefficients",
                        rows.concat().iter().map(|&v| v as f32).collect(),
                    ),
                    attr_floats("intercepts", biases.iter().map(|&v| v as f32).collect()),
                    attr_ints("classlabels_ints", (0..classes as i64).collect()),
                    attr_int("multi_class", i64::from(transform == "SOFTMAX")),
                    attr_string("post_transform", transform),
                ];
                graph.nodes.push(node(
                    "LinearClassifier",
                    ML_DOMAIN,
                    &[features],
                    &["label", "probabilities"],
                    attributes,
                ));
                graph.output("label", data_type::INT64, &[None]);
                graph.output(
                    "probabilities",
                    data_type::FLOAT,
                    &[None, Some(classes as i64)],
                );
            }
            (ModelParams::Trees { ensembles }, Task::Regression) if ensembles.len() == 1 => {
                let (mut attributes, leaves) = tree_nodes(ensembles);
                attributes.extend([
                    attr_int("n_targets", 1),
                    attr_ints("target_treeids", leaves.iter().map(|l| l.tree).collect()),
                    attr_ints("target_nodeids", leaves.iter().map(|l| l.node).collect()),
                    attr_ints("target_ids", leaves.iter().map(|l| l.output).collect()),
                    attr_doubles(
                        "target_weights_as_tensor",
                        leaves.iter().map(|l| l.weight).collect(),
                    ),
                    attr_doubles("base_values_as_tensor", vec![ensembles[0].base]),
                    attr_string("aggregate_function", "SUM"),
                    attr_string("post_transform", "NONE"),
                ]);
                graph.nodes.push(node(
                    "TreeEnsembleRegressor",
                    ML_DOMAIN,
                    &[features],
                    &["variable"],
                    attributes,
                ));
                graph.output("variable", data_type::FLOAT, &[None, Some(1)]);
            }
            (ModelParams::Trees { ensembles }, Task::Binary | Task::Multiclass { .. })
                if ensembles.len()
                    == if self.task == Task::Binary {
                        1
                    } else {
                        classes
                    } =>
            {
                let (mut attributes, leaves) = tree_nodes(ensembles);
                attributes.extend([
                    attr_ints("class_treeids", leaves.iter().map(|l| l.tree).collect()),
                    attr_ints("class_nodeids", leaves.iter().map(|l| l.node).collect()),
                    attr_ints("class_ids", leaves.iter().map(|l| l.output).collect()),
                    attr_doubles(
                        "class_weights_as_tensor",
                        leaves.iter().map(|l| l.weight).collect(),
                    ),
                    attr_doubles(
                        "base_values_as_tensor",
                        ensembles.iter().map(|e| e.base).collect(),
                    ),
                    attr_ints("classlabels_int64s", (0..classes as i64).collect()),
                    attr_string("post_transform", "LOGISTIC"),
                ]);
                if self.task == Task::Binary {
                    // One margin for class 1: onnxruntime's binary case writes [1 - σ, σ].
                    graph.nodes.push(node(
                        "TreeEnsembleClassifier",
                        ML_DOMAIN,
                        &[features],
                        &["label", "probabilities"],
                        attributes,
                    ));
                } else {
                    // One against the rest: σ of each class's margin, then normalized to sum 1.
                    graph.nodes.push(node(
                        "TreeEnsembleClassifier",
                        ML_DOMAIN,
                        &[features],
                        &["label", "class_scores"],
                        attributes,
                    ));
                    graph.initializers.push(TensorProto {
                        dims: vec![1],
                        data_type: Some(data_type::INT64),
                        name: Some("class_axis".into()),
                        int64_data: vec![1],
                        ..TensorProto::default()
                    });
                    graph.nodes.push(node(
                        "ReduceSum",
                        "",
                        &["class_scores", "class_axis"],
                        &["score_total"],
                        vec![attr_int("keepdims", 1)],
                    ));
                    graph.nodes.push(node(
                        "Div",
                        "",
                        &["class_scores", "score_total"],
                        &["probabilities"],
                        vec![],
                    ));
                }
                graph.output("label", data_type::INT64, &[None]);
                graph.output(
                    "probabilities",
                    data_type::FLOAT,
                    &[None, Some(classes as i64)],
                );
            }
            (params, task) => {
                let kind = match params {
                    ModelParams::Trees { .. } => "trees",
                    ModelParams::Linear { .. } => "a linear model",
                };
                return Err(MlError::invalid(format!(
                    "ONNX export supports linear, logistic and tree models; this is {kind} with \
                     outputs that do not fit a {task:?} task"
                )));
            }
        }
        let inputs = match preprocessor {
            Some(p) => p.columns.iter().map(|c| c.name.clone()).collect(),
            None => self.features.clone(),
        };
        let metadata = [
            ("kaizen.input", INPUT.to_string()),
            ("kaizen.input_dtype", "double".to_string()),
            ("kaizen.input_columns", to_json(&inputs)),
            ("kaizen.features", to_json(&self.features)),
            ("kaizen.task", to_json(&self.task)),
            ("kaizen.learner", self.learner.clone()),
            ("kaizen.outputs", graph.described.join(" ")),
        ];
        let model = ModelProto {
            ir_version: Some(IR_VERSION),
            opset_import: vec![
                OperatorSetIdProto {
                    domain: Some(String::new()),
                    version: Some(ONNX_OPSET),
                },
                OperatorSetIdProto {
                    domain: Some(ML_DOMAIN.into()),
                    version: Some(ML_OPSET),
                },
            ],
            producer_name: Some("kaizen".into()),
            producer_version: Some(env!("CARGO_PKG_VERSION").into()),
            domain: None,
            model_version: Some(1),
            doc_string: Some(format!(
                "kaizen {} model; input `input` is double [N, {}]",
                self.learner,
                inputs.len()
            )),
            graph: Some(GraphProto {
                node: graph.nodes,
                name: Some(format!("kaizen_{}", self.learner)),
                initializer: graph.initializers,
                value_info: Vec::new(),
                doc_string: None,
                input: vec![value_info(
                    INPUT,
                    data_type::DOUBLE,
                    &[None, Some(inputs.len() as i64)],
                )],
                output: graph.outputs,
            }),
            metadata_props: metadata
                .into_iter()
                .map(|(k, v)| StringStringEntryProto {
                    key: Some(k.into()),
                    value: Some(v),
                })
                .collect(),
        };
        Ok(model)
    }
}

fn to_json<T: serde::Serialize + ?Sized>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::learner::{GbdtParams, LearnerSpec, fit};
    use crate::linear::{LinearParams, LogisticParams, TextLinearParams};
    use crate::matrix::Matrix;

    fn data() -> (Matrix, Vec<f64>) {
        let a: Vec<f64> = (0..200).map(|i| (i as f64 * 0.13).sin() * 3.0).collect();
        let b: Vec<f64> = (0..200).map(|i| ((i * 37) % 11) as f64).collect();
        let y = a
            .iter()
            .zip(&b)
            .map(|(a, b)| f64::from(a + b * 0.3 > 1.5))
            .collect();
        (
            Matrix::from_columns(vec!["a".into(), "b".into()], vec![a, b]),
            y,
        )
    }

    fn decode(bytes: &[u8]) -> ModelProto {
        ModelProto::decode(bytes).unwrap()
    }

    fn ops(model: &ModelProto) -> Vec<String> {
        model
            .graph
            .as_ref()
            .unwrap()
            .node
            .iter()
            .map(|n| n.op_type.clone().unwrap())
            .collect()
    }

    fn meta(model: &ModelProto, key: &str) -> String {
        model
            .metadata_props
            .iter()
            .find(|p| p.key.as_deref() == Some(key))
            .and_then(|p| p.value.clone())
            .unwrap()
    }

    #[test]
    fn linear_regression_is_matmul_add_in_double() {
        let (x, _) = data();
        let y: Vec<f64> = (0..200).map(|i| x.get(i, 0) * 2.0 - x.get(i, 1)).collect();
        let model = fit(
            &LearnerSpec::Linear(LinearParams::default()),
            Task::Regression,
            &x,
            &y,
            None,
        )
        .unwrap();
        let onnx = decode(&model.to_onnx().unwrap());
        assert_eq!(ops(&onnx), ["MatMul", "Add"]);
        assert_eq!(onnx.ir_version, Some(IR_VERSION));
        assert_eq!(meta(&onnx, "kaizen.input_dtype"), "double");
        assert_eq!(meta(&onnx, "kaizen.features"), r#"["a","b"]"#);
        assert_eq!(meta(&onnx, "kaizen.outputs"), "variable:double[N,1]");
        let graph = onnx.graph.unwrap();
        assert_eq!(graph.input[0].name.as_deref(), Some("input"));
        let coefficients = &graph.initializer[0];
        assert_eq!(coefficients.dims, [2, 1]);
        assert!((coefficients.double_data[0] - 2.0).abs() < 1e-9);
    }

    #[test]
    fn binary_logistic_writes_both_classes_rows() {
        let (x, y) = data();
        let model = fit(
            &LearnerSpec::Logistic(LogisticParams::default()),
            Task::Binary,
            &x,
            &y,
            None,
        )
        .unwrap();
        let onnx = decode(&model.to_onnx().unwrap());
        assert_eq!(ops(&onnx), ["LinearClassifier"]);
        let node = &onnx.graph.as_ref().unwrap().node[0];
        assert_eq!(node.domain.as_deref(), Some(ML_DOMAIN));
        let coefficients = node
            .attribute
            .iter()
            .find(|a| a.name.as_deref() == Some("coefficients"))
            .unwrap();
        assert_eq!(coefficients.floats.len(), 4);
        assert_eq!(coefficients.floats[0], -coefficients.floats[2]);
        assert_eq!(
            meta(&onnx, "kaizen.outputs"),
            "label:int64[N] probabilities:float[N,2]"
        );
    }

    #[test]
    fn trees_use_double_thresholds_and_weights() {
        let (x, y) = data();
        let spec = LearnerSpec::Gbdt(GbdtParams {
            iterations: 5,
            ..GbdtParams::default()
        });
        let model = fit(&spec, Task::Binary, &x, &y, None).unwrap();
        let onnx = decode(&model.to_onnx().unwrap());
        assert_eq!(ops(&onnx), ["TreeEnsembleClassifier"]);
        let node = &onnx.graph.as_ref().unwrap().node[0];
        let find = |name: &str| {
            node.attribute
                .iter()
                .find(|a| a.name.as_deref() == Some(name))
                .unwrap()
        };
        let values = find("nodes_values_as_tensor").t.as_ref().unwrap();
        assert_eq!(values.data_type, Some(data_type::DOUBLE));
        let ModelParams::Trees { ensembles } = &model.params else {
            panic!()
        };
        let nodes: usize = ensembles[0].trees.iter().map(Vec::len).sum();
        assert_eq!(values.double_data.len(), nodes);
        assert_eq!(find("nodes_modes").strings.len(), nodes);
        assert_eq!(
            find("base_values_as_tensor")
                .t
                .as_ref()
                .unwrap()
                .double_data,
            [ensembles[0].base]
        );
        let multi = fit(&spec, Task::Multiclass { classes: 2 }, &x, &y, None).unwrap();
        assert_eq!(
            ops(&decode(&multi.to_onnx().unwrap())),
            ["TreeEnsembleClassifier", "ReduceSum", "Div"]
        );
    }

    #[test]
    fn numeric_preprocessing_goes_in_front_and_text_is_refused() {
        use crate::frame::{ColumnData, Frame};
        use crate::preprocess::{PreprocessSpec, fit_pipeline};
        let (x, y) = data();
        let frame = Frame::new(vec![
            ("a".into(), ColumnData::Numeric(x.column(0).to_vec())),
            ("b".into(), ColumnData::Numeric(x.column(1).to_vec())),
        ]);
        let spec: PreprocessSpec = serde_json::from_str(
            r#"{"columns": [{"name": "a", "encoding": "numeric", "scale": true}, {"name": "b", "encoding": "numeric"}]}"#,
        )
        .unwrap();
        let pipeline = fit_pipeline(
            &LearnerSpec::Logistic(LogisticParams::default()),
            &spec,
            Task::Binary,
            &frame,
            &y,
            None,
        )
        .unwrap();
        let onnx = decode(
            &pipeline
                .model
                .to_onnx_with(Some(&pipeline.preprocessor))
                .unwrap(),
        );
        assert_eq!(
            ops(&onnx),
            ["IsNaN", "Where", "Sub", "Div", "LinearClassifier"]
        );
        let text = Frame::new(vec![(
            "t".into(),
            ColumnData::Text(vec![Some("good day".into()), Some("bad day".into())]),
        )]);
        let params = TextLinearParams::default();
        let pipeline = fit_pipeline(
            &LearnerSpec::TextLinear(params.clone()),
            &params.preprocess_spec(&["t"]),
            Task::Binary,
            &text,
            &[1.0, 0.0],
            None,
        )
        .unwrap();
        let err = pipeline.model.to_onnx().unwrap_err().to_string();
        assert!(
            err.starts_with("ONNX export supports linear, logistic and tree models;"),
            "{err}"
        );
        let err = pipeline
            .model
            .to_onnx_with(Some(&pipeline.preprocessor))
            .unwrap_err()
            .to_string();
        assert!(err.contains("text_linear"), "{err}");
    }
}
