//! The request extractor for MLflow endpoints: a GET's query string or another method's JSON body,
//! parsed into one request type with the same lenient rules.

use axum::extract::{FromRequest, Request};
use axum::http::Method;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::AppState;
use crate::error::ApiError;

/// A parsed request message.
pub struct Req<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for Req<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let limit = state.config.max_body_bytes;
        if req.method() == Method::GET {
            return from_value(query_to_json(req.uri().query().unwrap_or("")));
        }
        let query = req.uri().query().map(query_to_json);
        let bytes = axum::body::to_bytes(req.into_body(), limit)
            .await
            .map_err(|_| ApiError::too_large(limit))?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return from_value(query.unwrap_or(Value::Object(Map::new())));
        }
        // A derived struct would also accept a JSON array (its fields by position).
        if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return Err(match serde_json::from_slice::<Value>(&bytes) {
                Err(syntax) => {
                    ApiError::malformed(format!("Malformed JSON request body: {syntax}"))
                }
                Ok(_) => ApiError::malformed("The request body must be a JSON object"),
            });
        }
        // The common case parses straight into the request type; only a failure pays for a
        // second parse that tells malformed JSON from a wrong field.
        match serde_json::from_slice::<T>(&bytes) {
            Ok(v) => Ok(Req(v)),
            Err(e) => match serde_json::from_slice::<Value>(&bytes) {
                Err(syntax) => Err(ApiError::malformed(format!(
                    "Malformed JSON request body: {syntax}"
                ))),
                Ok(v) if !v.is_object() => Err(ApiError::malformed(
                    "The request body must be a JSON object",
                )),
                Ok(_) => Err(ApiError::invalid(format!("Invalid request: {e}"))),
            },
        }
    }
}

fn from_value<T: DeserializeOwned>(value: Value) -> Result<Req<T>, ApiError> {
    serde_json::from_value(value)
        .map(Req)
        .map_err(|e| ApiError::invalid(format!("Invalid request: {e}")))
}

/// `a=1&b=x+y&b=z` → `{"a": "1", "b": ["x y", "z"]}`; a repeated key becomes a list.
pub fn query_to_json(query: &str) -> Value {
    let mut map: Map<String, Value> = Map::new();
    for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
        let k = k.into_owned();
        let v = Value::String(v.into_owned());
        match map.get_mut(&k) {
            None => {
                map.insert(k, v);
            }
            Some(Value::Array(items)) => items.push(v),
            Some(prev) => {
                let first = prev.take();
                *prev = Value::Array(vec![first, v]);
            }
        }
    }
    Value::Object(map)
}

#[cfg(test)]
mod tests {
    #[test]
    fn query() {
        let v = super::query_to_json("name=my+exp&order_by=a&order_by=b%20c");
        assert_eq!(v["name"], "my exp");
        assert_eq!(v["order_by"], serde_json::json!(["a", "b c"]));
    }
}
