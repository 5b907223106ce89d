//! kaizen-train: the training loop around the registry.
//!
//! - [`package`]: model packages, self-describing directories (`kaizen-model.json`, the model,
//!   an input example, ONNX when it exports, MLflow's `MLmodel`) that `kaizen serve` loads.
//! - [`register`]: a package uploaded as a run's `model/` artifacts and registered as a model
//!   version tagged with its lineage, with lineage edges from its data sets; and back, the
//!   package of a version or alias.
//! - [`gate`]: the promotion gate, which moves an alias to a challenger only when it beats the
//!   champion on held-out rows overall and per segment, and audits every decision.
//! - [`search`]: hyperparameter search as nested runs, in parallel, best trial by a metric.
//! - [`forecast`] and [`tabular`]: the one-command jobs, `kaizen forecast` and `kaizen train`.
//! - [`pretrained`]: packages of pretrained models (an embedder as it is, a text classifier
//!   naming the embedder it needs), and [`text_classifier`], `kaizen train-classifier`'s job.
//!
//! Everything here is computed by `kaizen-ml` and recorded through `kaizen-tracking`'s services.

pub mod error;
pub mod forecast;
pub mod gate;
pub mod package;
pub mod pipeline_steps;
pub mod pretrained;
pub mod register;
pub mod runs;
pub mod search;
pub mod tabular;
pub mod text_classifier;

pub use error::{Result, TrainError};
pub use gate::{GateDecision, GateRule, HeldOut, SegmentComparison, gate, gate_with};
pub use package::{
    ColumnSpec, Lineage, Package, PackageMeta, Signature, git_state, read_package, write_package,
};
pub use register::{load_version, register_package};
pub use search::{SearchResult, SearchSpace, Strategy, Trial, search};
