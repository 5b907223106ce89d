//! kaizen-ml: the compute of model engineering.
//!
//! - [`matrix`]: the dense, column-major feature matrix every learner takes.
//! - [`learner`]: learner specifications ([`LearnerSpec`]), fitting ([`fit`]) and fitted models
//!   ([`FittedModel`]) that predict without the crate that trained them, so a model package needs
//!   only this crate to score.
//! - [`linear`]: the linear learners (least squares, ridge, lasso, logistic) on linfa.
//! - [`frame`] and [`preprocess`]: named numeric and text columns from a table, and the fitted
//!   imputation, scaling, category and text encodings that turn them into a [`Matrix`].
//! - [`metrics`]: regression and classification metrics and their SVG charts.
//! - [`onnx`]: export of fitted models to ONNX (`ai.onnx.ml` linear and tree operators).
//! - [`onnx_eval`]: a pure-Rust runtime for ONNX models users bring (scikit-learn through
//!   skl2onnx: `ai.onnx.ml` preprocessing, linear and tree models, ZipMap; small networks).
//! - [`forecast`]: sales forecasting: series from a transactions table, lag/rolling/calendar
//!   features, baselines, rolling-origin backtests, forecast metrics and the cost of errors.

pub mod error;
pub mod forecast;
pub mod frame;
pub mod learner;
pub mod linear;
pub mod matrix;
pub mod metrics;
pub mod onnx;
pub mod onnx_eval;
pub mod preprocess;

pub use error::{MlError, Result};
pub use frame::{ColumnData, Frame};
pub use learner::{FittedModel, LearnerSpec, Task, fit};
pub use matrix::Matrix;
pub use preprocess::{FittedPipeline, PreprocessSpec, Preprocessor, fit_pipeline};
