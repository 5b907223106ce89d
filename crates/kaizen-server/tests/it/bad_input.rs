//! Bad input gets MLflow's error shape with the right status, and writes nothing.

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::TestServer;

fn assert_error(status: StatusCode, body: &Value, want_status: StatusCode, want_code: &str) {
    assert_eq!(status, want_status, "{body}");
    assert_eq!(body["error_code"], want_code, "{body}");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
}

#[tokio::test]
async fn malformed_json_and_wrong_types() {
    let s = TestServer::new(1 << 20).await;
    let (st, v) = s
        .call(
            Method::POST,
            "/api/2.0/mlflow/experiments/create",
            "{not json",
        )
        .await;
    assert_error(st, &v, StatusCode::BAD_REQUEST, "MALFORMED_REQUEST");
    let (st, v) = s
        .call(Method::POST, "/api/2.0/mlflow/experiments/create", "[1, 2]")
        .await;
    assert_error(st, &v, StatusCode::BAD_REQUEST, "MALFORMED_REQUEST");
    let (st, v) = s
        .post(
            "/api/2.0/mlflow/experiments/create",
            json!({"name": {"nested": 1}}),
        )
        .await;
    assert_error(st, &v, StatusCode::BAD_REQUEST, "INVALID_PARAMETER_VALUE");

    let run = s.new_run().await;
    for bad in [json!("abc"), json!(true), json!({"x": 1}), Value::Null] {
        let (st, v) = s
            .post(
                "/api/2.0/mlflow/runs/log-metric",
                json!({"run_id": run, "key": "m", "value": bad, "timestamp": 1}),
            )
            .await;
        assert_error(st, &v, StatusCode::BAD_REQUEST, "INVALID_PARAMETER_VALUE");
    }
    let (st, v) = s
        .post(
            "/api/2.0/mlflow/runs/log-metric",
            json!({"run_id": run, "key": "m", "value": 1, "timestamp": 1, "step": "x"}),
        )
        .await;
    assert_error(st, &v, StatusCode::BAD_REQUEST, "INVALID_PARAMETER_VALUE");
    let (_, v) = s
        .get(&format!("/api/2.0/mlflow/runs/get?run_id={run}"))
        .await;
    assert!(
        v["run"]["data"]["metrics"].as_array().unwrap().is_empty(),
        "nothing written: {v}"
    );

    // NaN and infinities arrive as strings and round-trip.
    let (st, _) = s
        .post(
            "/api/2.0/mlflow/runs/log-batch",
            json!({"run_id": run, "metrics": [
                {"key": "n", "value": "NaN", "timestamp": 1},
                {"key": "p", "value": "Infinity", "timestamp": 1},
                {"key": "q", "value": "-Infinity", "timestamp": 1}]}),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    let (_, v) = s
        .get(&format!("/ajax-api/2.0/mlflow/runs/get?run_id={run}"))
        .await;
    let metrics = v["run"]["data"]["metrics"].as_array().unwrap();
    let value = |k: &str| metrics.iter().find(|m| m["key"] == k).unwrap()["value"].clone();
    assert_eq!(value("n"), "NaN");
    assert_eq!(value("p"), "Infinity");
    assert_eq!(value("q"), "-Infinity");
}

#[tokio::test]
async fn unknown_ids_and_routes() {
    let s = TestServer::new(1 << 20).await;
    let (st, v) = s
        .get("/api/2.0/mlflow/runs/get?run_id=0123456789abcdef0123456789abcdef")
        .await;
    assert_error(st, &v, StatusCode::NOT_FOUND, "RESOURCE_DOES_NOT_EXIST");
    let (st, v) = s
        .get("/api/2.0/mlflow/experiments/get?experiment_id=424242")
        .await;
    assert_error(st, &v, StatusCode::NOT_FOUND, "RESOURCE_DOES_NOT_EXIST");
    let (st, v) = s
        .get("/api/2.0/mlflow/experiments/get-by-name?experiment_name=no+such+thing")
        .await;
    assert_error(st, &v, StatusCode::NOT_FOUND, "RESOURCE_DOES_NOT_EXIST");
    let (st, v) = s
        .get("/api/2.0/mlflow/registered-models/get?name=nope")
        .await;
    assert_error(st, &v, StatusCode::NOT_FOUND, "RESOURCE_DOES_NOT_EXIST");
    let (st, v) = s.get("/api/2.0/mlflow/no-such-endpoint").await;
    assert_error(st, &v, StatusCode::NOT_FOUND, "ENDPOINT_NOT_FOUND");
    let (st, v) = s
        .post("/api/2.0/mlflow/experiments/create", json!({"name": "x"}))
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let (st, v) = s
        .post("/api/2.0/mlflow/experiments/create", json!({"name": "x"}))
        .await;
    assert_error(st, &v, StatusCode::BAD_REQUEST, "RESOURCE_ALREADY_EXISTS");
}

#[tokio::test]
async fn param_limits_and_changes_write_nothing() {
    let s = TestServer::new(1 << 20).await;
    let run = s.new_run().await;
    let (st, v) = s
        .post(
            "/api/2.0/mlflow/runs/log-parameter",
            json!({"run_id": run, "key": "big", "value": "x".repeat(6001)}),
        )
        .await;
    assert_error(st, &v, StatusCode::BAD_REQUEST, "INVALID_PARAMETER_VALUE");
    let (st, _) = s
        .post(
            "/api/2.0/mlflow/runs/log-parameter",
            json!({"run_id": run, "key": "lr", "value": "0.1"}),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    let (st, v) = s
        .post(
            "/api/2.0/mlflow/runs/log-batch",
            json!({"run_id": run, "params": [{"key": "lr", "value": "0.2"}], "metrics": [{"key": "m", "value": 1, "timestamp": 1}]}),
        )
        .await;
    assert_error(st, &v, StatusCode::BAD_REQUEST, "INVALID_PARAMETER_VALUE");
    let (_, v) = s
        .get(&format!("/api/2.0/mlflow/runs/get?run_id={run}"))
        .await;
    assert_eq!(
        v["run"]["data"]["params"],
        json!([{"key": "lr", "value": "0.1"}])
    );
    assert!(v["run"]["data"]["metrics"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn oversized_bodies_get_413() {
    let s = TestServer::new(1024).await;
    let run = s.new_run().await;
    let tags: Vec<Value> = (0..100)
        .map(|i| json!({"key": format!("k{i}"), "value": "v".repeat(50)}))
        .collect();
    let (st, v) = s
        .post(
            "/api/2.0/mlflow/runs/log-batch",
            json!({"run_id": run, "tags": tags}),
        )
        .await;
    assert_error(
        st,
        &v,
        StatusCode::PAYLOAD_TOO_LARGE,
        "REQUEST_LIMIT_EXCEEDED",
    );
}

#[tokio::test]
async fn artifact_paths_cannot_escape_the_root() {
    let s = TestServer::new(1 << 20).await;
    for path in [
        "/api/2.0/mlflow-artifacts/artifacts/0/%2e%2e/%2e%2e/escape.txt",
        "/api/2.0/mlflow-artifacts/artifacts/..%2fescape.txt",
        "/api/2.0/mlflow-artifacts/artifacts/%2Fetc%2Fpasswd",
        "/api/2.0/mlflow-artifacts/artifacts/a%5C..%5Cb",
    ] {
        let (st, v) = s.call(Method::PUT, path, "data").await;
        assert_error(st, &v, StatusCode::BAD_REQUEST, "INVALID_PARAMETER_VALUE");
    }
    let (st, v) = s.get("/api/2.0/mlflow-artifacts/artifacts?path=../x").await;
    assert_error(st, &v, StatusCode::BAD_REQUEST, "INVALID_PARAMETER_VALUE");
    assert!(!s.dir.path().join("escape.txt").exists());
    assert!(!s.dir.path().parent().unwrap().join("escape.txt").exists());

    // A normal upload lists and downloads; a file or a missing path lists as `{}`.
    let (st, _) = s
        .call(
            Method::PUT,
            "/api/2.0/mlflow-artifacts/artifacts/0/r/artifacts/a.txt",
            "hello",
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    let (_, v) = s
        .get("/api/2.0/mlflow-artifacts/artifacts?path=0/r/artifacts")
        .await;
    assert_eq!(
        v,
        json!({"files": [{"path": "a.txt", "is_dir": false, "file_size": 5}]})
    );
    let (_, v) = s
        .get("/api/2.0/mlflow-artifacts/artifacts?path=0/r/artifacts/a.txt")
        .await;
    assert_eq!(v, json!({}));
    let (_, v) = s
        .get("/api/2.0/mlflow-artifacts/artifacts?path=0/missing")
        .await;
    assert_eq!(v, json!({}));
    let (st, v) = s
        .get("/api/2.0/mlflow-artifacts/artifacts/0/r/artifacts/a.txt")
        .await;
    assert_eq!((st, v), (StatusCode::OK, Value::String("hello".into())));
}

#[tokio::test]
async fn wrong_method_gets_the_error_shape() {
    let s = TestServer::new(1 << 20).await;
    let (st, v) = s.get("/api/2.0/mlflow/runs/log-batch").await;
    assert_error(st, &v, StatusCode::METHOD_NOT_ALLOWED, "ENDPOINT_NOT_FOUND");
}
