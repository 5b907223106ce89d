//! kaizen-ml: the compute of model engineering.
//!
//! - [`matrix`]: the dense, column-major feature matrix every learner takes.
//! - [`learner`]: learner specifications ([`LearnerSpec`]), fitting ([`fit`]) and fitted models
//!   ([`FittedModel`]) that predict without the crate that trained them, so a model package needs
//!   only this crate to score.
//! - [`forecast`]: sales forecasting: series from a transactions table, lag/rolling/calendar
//!   features, baselines, rolling-origin backtests, forecast metrics and the cost of errors.

pub mod error;
pub mod forecast;
pub mod learner;
pub mod matrix;

pub use error::{MlError, Result};
pub use learner::{FittedModel, LearnerSpec, Task, fit};
pub use matrix::Matrix;
