//! MLflow's REST JSON shapes (proto3 JSON with snake_case names, int64 as numbers, enums as names,
//! NaN and ±Inf as strings) and their mapping to and from kaizen's domain types.
//!
//! Request parsing is lenient where MLflow's is: numbers may arrive as strings (GET query strings
//! carry everything as text), a repeated field may arrive as one value, unknown fields are ignored.

pub mod de;
pub mod from_json;
pub mod to_json;

pub use to_json::*;
