//! kaizen's pipelines: a pipeline file (`kaizen.toml`) of named steps forms a DAG; [`run_pipeline`]
//! runs it with bounded parallelism, retries and timeouts, caches step results by content, stores
//! every output in the artifact store addressed by its hash (`cas/<sha256>`), and tracks the run
//! as an MLflow run with one nested run per step.
//!
//! Progress goes through the [`Reporter`] trait; the binary draws it.

pub mod cache;
pub mod choice;
pub mod data_steps;
mod run;
mod sources;
pub mod spec;
pub mod step;

pub use run::{
    Reporter, RunOptions, RunSummary, StartedRun, StepResult, StepStatus, run_pipeline, start_run,
};
pub use spec::{Foreach, ParamValue, Pipeline, StepKind, StepSpec};
pub use step::{Runners, StepContext, StepFailure, StepRunner};
