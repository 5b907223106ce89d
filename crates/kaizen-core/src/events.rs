//! The kinds of events the services append to the event log, which subscribers (webhooks, a log
//! file, a command) receive.

/// A run ended: status FINISHED.
pub const RUN_FINISHED: &str = "run.finished";
/// A run ended: status FAILED or KILLED.
pub const RUN_FAILED: &str = "run.failed";
/// A model version was registered.
pub const MODEL_VERSION_REGISTERED: &str = "model_version.registered";
/// An alias was set or moved to a version.
pub const ALIAS_MOVED: &str = "alias.moved";
/// What serves a model changed.
pub const DEPLOYMENT_CHANGED: &str = "deployment.changed";
/// A drift report found the data set drifted.
pub const DRIFT_DETECTED: &str = "drift.detected";
/// A pipeline's validate step failed.
pub const VALIDATION_FAILED: &str = "validation.failed";
/// A served version's live error (from feedback) fell behind its test split's.
pub const PERFORMANCE_DEGRADED: &str = "performance.degraded";
/// A retraining policy ran: what triggered it, the version trained and the gate's decision.
pub const RETRAIN_FINISHED: &str = "retrain.finished";

/// Every kind, for checking subscriptions.
pub const ALL: [&str; 9] = [
    RUN_FINISHED,
    RUN_FAILED,
    MODEL_VERSION_REGISTERED,
    ALIAS_MOVED,
    DEPLOYMENT_CHANGED,
    DRIFT_DETECTED,
    VALIDATION_FAILED,
    PERFORMANCE_DEGRADED,
    RETRAIN_FINISHED,
];
