//! Domain types shared by every kaizen crate: ids, entities, errors, limits and the run search grammar.
//!
//! This crate knows nothing about storage, HTTP or JSON wire shapes; everything above it speaks these
//! types.

pub mod entities;
pub mod error;
pub mod events;
pub mod ids;
pub mod limits;
pub mod search;

pub use entities::*;
pub use error::{Error, ErrorKind, Result};

/// Milliseconds since the Unix epoch, the time unit of every timestamp in kaizen (as in MLflow).
pub fn now_millis() -> i64 {
    use std::time::{SystemTime, UNIX_EPOCH};
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
