//! kaizen-serving: a registered model (or a package directory) behind MLflow's scoring protocol.
//!
//! - [`model`]: [`ServedModel`], a loaded package with the columns it takes and `score`.
//! - [`onnx`]: ONNX models users bring (an MLflow `onnx` directory, a `.onnx` file) on
//!   kaizen-ml's pure-Rust evaluator.
//! - [`pretrained`]: pretrained packages (a sentence embedder, a text classifier over its
//!   embeddings) on kaizen-infer.
//! - [`parse`]: the bodies of `POST /invocations` (`dataframe_split`, `dataframe_records`,
//!   `instances`, `inputs`, CSV) checked against those columns into a [`kaizen_ml::Frame`].
//! - [`traffic`]: served rows joined with their feedback, for retraining.
//! - [`app`]: `fn app(state) -> Router` with `/invocations`, `/ping`, `/health`, `/version`.
//!
//! **Architecture invariant:** every route goes through [`app`]'s one layer stack (request id,
//! trace, body limit), so authentication can be added in one place. Only [`error`] maps errors
//! to HTTP statuses, in MLflow's `{"error_code", "message"}` shape.

pub mod app;
pub mod error;
pub mod log;
pub mod model;
pub mod monitor;
pub mod onnx;
pub mod parse;
pub mod pretrained;
pub mod traffic;

pub use app::{AppState, Metrics, ModelSlot, MonitorSlot, ServeConfig, Variant, app, mount, serve};
pub use error::{Result, ServeError};
pub use log::{FeedbackLog, FeedbackRecord, InferenceLog, InferenceRecord, JsonLog, LogWriter};
pub use model::{InputColumn, InputKind, Prediction, ServedModel};
