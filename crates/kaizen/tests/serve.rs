//! `kaizen serve` and `kaizen predict` end to end: a model trained by `kaizen train` on a table
//! the test writes, served from the registry, answers every request format as batch scoring
//! does.

mod support;

use std::path::Path;

use serde_json::{Value, json};
use support::{Server, kaizen, ok, ok_json};

/// 300 rows of three numbers and a binary target that depends on them, from a fixed LCG.
fn write_data(dir: &Path) -> (String, String) {
    let mut state: u64 = 42;
    let mut next = || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((state >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
    };
    let mut train = String::from("x1,x2,x3,y\n");
    let mut rows = String::from("x1,x2,x3\n");
    for i in 0..300 {
        let (a, b, c) = (next(), next(), next());
        let y = u8::from(a + 0.5 * b - c + 0.2 * next() > 0.0);
        train.push_str(&format!("{a:.4},{b:.4},{c:.4},{y}\n"));
        if i < 6 {
            rows.push_str(&format!("{a:.4},{b:.4},{c:.4}\n"));
        }
    }
    let data = dir.join("data.csv");
    let rows_path = dir.join("rows.csv");
    std::fs::write(&data, train).unwrap();
    std::fs::write(&rows_path, rows).unwrap();
    (
        data.to_str().unwrap().to_string(),
        rows_path.to_str().unwrap().to_string(),
    )
}

/// The rows of `rows.csv` as numbers.
fn read_rows(path: &str) -> Vec<Vec<f64>> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| l.split(',').map(|v| v.parse().unwrap()).collect())
        .collect()
}

#[test]
fn serve_answers_every_format_as_predict_does() {
    let home = tempfile::tempdir().unwrap();
    let (data, rows_path) = write_data(home.path());
    let summary = ok_json(
        home.path(),
        &[
            "train",
            "--data",
            &data,
            "--target",
            "y",
            "--model",
            "demo",
            "--set",
            "iterations=30",
            "--json",
        ],
    );
    assert_eq!(summary["task"], "binary", "{summary}");
    assert_eq!(summary["champion_version"], "1", "{summary}");

    // Batch scoring.
    let out = home.path().join("out.csv");
    let out_path = out.to_str().unwrap();
    let predicted = ok_json(
        home.path(),
        &[
            "predict",
            "--model",
            "models:/demo@champion",
            "--input",
            &rows_path,
            "--output",
            out_path,
            "--json",
        ],
    );
    assert_eq!(predicted["rows"], 6);
    assert_eq!(predicted["version"], "1");
    let csv = std::fs::read_to_string(&out).unwrap();
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("prediction,probability_0,probability_1"));
    let expected: Vec<(String, f64, f64)> = lines
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (
                f[0].to_string(),
                f[1].parse().unwrap(),
                f[2].parse().unwrap(),
            )
        })
        .collect();
    assert_eq!(expected.len(), 6);
    let labels: Vec<Value> = expected
        .iter()
        .map(|(l, _, _)| json!(l.parse::<i64>().unwrap()))
        .collect();

    let server = Server::spawn(
        home.path(),
        &[
            "serve",
            "models:/demo@champion",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
        ],
    );
    let rows = read_rows(&rows_path);
    let columns = ["x1", "x2", "x3"];
    let records: Vec<Value> = rows
        .iter()
        .map(|r| json!({"x1": r[0], "x2": r[1], "x3": r[2]}))
        .collect();
    let invoke = |path: &str, body: Value| {
        let (status, v) = server.call("POST", path, &body.to_string());
        assert_eq!(status, 200, "{body}: {v}");
        v
    };

    // Labels in every format.
    let formats = [
        json!({"dataframe_split": {"columns": columns, "data": rows}}),
        json!({"dataframe_records": records}),
        json!({"instances": records}),
        json!({"instances": rows}),
        json!({"inputs": {"x1": rows.iter().map(|r| r[0]).collect::<Vec<_>>(),
                          "x2": rows.iter().map(|r| r[1]).collect::<Vec<_>>(),
                          "x3": rows.iter().map(|r| r[2]).collect::<Vec<_>>()}}),
    ];
    for body in formats {
        let v = invoke("/invocations", body.clone());
        assert_eq!(v["predictions"], json!(labels), "{body}");
    }
    let rows_csv = std::fs::read_to_string(&rows_path).unwrap();
    let (status, v) = server.call_as("POST", "/invocations", "text/csv", &rows_csv);
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["predictions"], json!(labels));

    // Probabilities, asked by the query or by params, are those of `kaizen predict`.
    let split = json!({"dataframe_split": {"columns": columns, "data": rows}});
    let mut with_params = split.clone();
    with_params["params"] = json!({"probabilities": true});
    for v in [
        invoke("/invocations?probabilities=true", split),
        invoke("/invocations", with_params),
    ] {
        let predictions = v["predictions"].as_array().unwrap();
        for (p, (label, p0, p1)) in predictions.iter().zip(&expected) {
            assert_eq!(p["label"].to_string(), *label, "{p}");
            let got0 = p["probabilities"]["0"].as_f64().unwrap();
            let got1 = p["probabilities"]["1"].as_f64().unwrap();
            assert!(
                (got0 - p0).abs() < 1e-12 && (got1 - p1).abs() < 1e-12,
                "{p}"
            );
        }
    }

    // Refused requests name what is wrong.
    let (status, v) = server.call(
        "POST",
        "/invocations",
        &json!({"dataframe_records": [{"x1": 0.1, "x3": 0.2}]}).to_string(),
    );
    assert_eq!(status, 400, "{v}");
    assert_eq!(v["error_code"], "BAD_REQUEST");
    assert!(v["message"].as_str().unwrap().contains("`x2`"), "{v}");
    let (status, v) = server.call("POST", "/invocations", "{\"instances\": [");
    assert_eq!(status, 400, "{v}");
    assert_eq!(v["error_code"], "BAD_REQUEST");
    let (status, v) = server.call(
        "POST",
        "/invocations",
        &json!({"instances": [{"x1": "high", "x2": 0, "x3": 0}]}).to_string(),
    );
    assert_eq!(status, 400, "{v}");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("column `x1`, row 1"),
        "{v}"
    );

    // The other routes.
    let (status, v) = server.call("GET", "/ping", "");
    assert_eq!((status, v), (200, json!("")));
    let (status, v) = server.call("GET", "/health", "");
    assert_eq!(status, 200);
    assert_eq!(v["status"], "ok");
    assert_eq!(v["model"], "demo");
    assert_eq!(v["version"], "1");
    let (status, v) = server.call("GET", "/version", "");
    assert_eq!((status, v), (200, json!(env!("CARGO_PKG_VERSION"))));
}

#[test]
fn predict_and_serve_refuse_unknown_models() {
    let home = tempfile::tempdir().unwrap();
    let out = support::kaizen(home.path(), &["serve", "models:/nothing"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("models:/NAME@ALIAS"), "{}", out.stderr);
    let out = support::kaizen(
        home.path(),
        &[
            "predict",
            "--model",
            "no/such/dir",
            "--input",
            "x.csv",
            "--output",
            "y.csv",
        ],
    );
    assert_eq!(out.code, 1, "{}", out.stderr);
    let _ = ok(home.path(), &["--help"]);
}

/// POSTs `body` to `url` + `/invocations` with a request id; answers the status.
fn post_invocation(url: &str, request_id: &str, body: &str) -> u16 {
    post_full(url, "/invocations", &[("x-request-id", request_id)], body).0
}

/// Under 10,000 requests from 8 clients, every request (answered or refused) appears exactly
/// once in `inference_log`, which `kaizen sql` reads; `/metrics` counts them.
#[test]
fn every_request_is_logged_exactly_once() {
    let home = tempfile::tempdir().unwrap();
    let (data, _) = write_data(home.path());
    ok(
        home.path(),
        &[
            "train", "--data", &data, "--target", "y", "--model", "demo", "--json",
        ],
    );
    let server = Server::spawn(
        home.path(),
        &[
            "serve",
            "models:/demo@champion",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
        ],
    );
    let url = server.url.clone();
    let clients: Vec<_> = (0..8)
        .map(|c| {
            let url = url.clone();
            std::thread::spawn(move || {
                let mut statuses = Vec::new();
                for i in 0..1250 {
                    // One request in 50 is malformed: refused, and logged too.
                    let body = if i % 50 == 0 {
                        r#"{"dataframe_records": [{"x1": 1}]}"#.to_string()
                    } else {
                        format!(
                            r#"{{"dataframe_records": [{{"x1": {i}, "x2": 0.5, "x3": -0.5}}]}}"#
                        )
                    };
                    statuses.push(post_invocation(&url, &format!("c{c}-{i}"), &body));
                }
                statuses
            })
        })
        .collect();
    let statuses: Vec<u16> = clients
        .into_iter()
        .flat_map(|c| c.join().unwrap())
        .collect();
    assert_eq!(statuses.len(), 10_000);
    assert_eq!(statuses.iter().filter(|s| **s == 400).count(), 200);
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 9_800);

    // The writer is asynchronous: wait until /metrics says everything is written.
    let start = std::time::Instant::now();
    loop {
        let (_, metrics) = server.call("GET", "/metrics", "");
        let text = metrics.as_str().unwrap_or_default().to_string();
        if text.contains("kaizen_inference_log_written_total 10000") {
            assert!(
                text.contains("kaizen_inference_log_dropped_total 0"),
                "{text}"
            );
            assert!(text.contains("outcome=\"client_error\"} 200"), "{text}");
            break;
        }
        assert!(start.elapsed().as_secs() < 30, "not all written: {text}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let counts = ok_json(
        home.path(),
        &[
            "sql",
            "SELECT COUNT(*) AS n, COUNT(DISTINCT request_id) AS ids, SUM(CASE WHEN status = 400 THEN 1 ELSE 0 END) AS refused FROM inference_log",
            "--json",
        ],
    );
    assert_eq!(counts[0]["n"], 10_000, "{counts}");
    assert_eq!(counts[0]["ids"], 10_000, "{counts}");
    assert_eq!(counts[0]["refused"], 200, "{counts}");
    let one = ok_json(
        home.path(),
        &[
            "sql",
            "SELECT model, version, variant, inputs, rows FROM inference_log WHERE request_id = 'c3-7'",
            "--json",
        ],
    );
    assert_eq!(one[0]["model"], "demo");
    assert_eq!(one[0]["version"], "1");
    assert_eq!(one[0]["rows"], 1);
    let inputs: Value = serde_json::from_str(one[0]["inputs"].as_str().unwrap()).unwrap();
    assert_eq!(inputs["x1"], json!([7.0]));

    // Ground truth for 100 answered requests: joined in SQL, counted in the live accuracy.
    for i in 1..=100 {
        let body = json!({"request_id": format!("c0-{i}"), "actual": 1}).to_string();
        let (status, v) = server.call("POST", "/feedback", &body);
        assert_eq!(status, 200, "{v}");
        assert_eq!(v["matched"], i % 50 != 0, "{v}");
    }
    let (status, v) = server.call("POST", "/feedback", r#"{"actual": 1}"#);
    assert_eq!(status, 400, "{v}");
    assert!(v["message"].as_str().unwrap().contains("request_id"), "{v}");
    let (_, metrics) = server.call("GET", "/metrics", "");
    let text = metrics.as_str().unwrap().to_string();
    assert!(text.contains("kaizen_live_accuracy{"), "{text}");
    assert!(
        text.contains("kaizen_feedback_total{matched=\"true\"} 98"),
        "{text}"
    );
    let start = std::time::Instant::now();
    loop {
        let joined = kaizen(
            home.path(),
            &[
                "sql",
                "SELECT COUNT(*) AS n FROM feedback f JOIN inference_log l ON f.request_id = l.request_id WHERE l.status = 200",
                "--json",
            ],
        );
        if joined.code == 0 && joined.stdout.contains("\"n\": 98") {
            break;
        }
        assert!(
            start.elapsed().as_secs() < 20,
            "{}{}",
            joined.stdout,
            joined.stderr
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

/// Moving the alias under load: the server picks up the new version, and not one request fails.
#[test]
fn an_alias_move_under_load_fails_no_request() {
    let home = tempfile::tempdir().unwrap();
    let (data, _) = write_data(home.path());
    let train = |extra: &[&str]| {
        let mut args = vec![
            "train",
            "--data",
            data.as_str(),
            "--target",
            "y",
            "--model",
            "demo",
            "--json",
        ];
        args.extend_from_slice(extra);
        ok(home.path(), &args);
    };
    train(&[]);
    // A second version that does not take the alias by itself.
    train(&["--no-gate", "--set", "iterations=20"]);
    let server = Server::spawn(
        home.path(),
        &[
            "serve",
            "models:/demo@champion",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--poll-ms",
            "100",
        ],
    );
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let clients: Vec<_> = (0..4)
        .map(|c| {
            let url = server.url.clone();
            let stop = std::sync::Arc::clone(&stop);
            std::thread::spawn(move || {
                let mut statuses = Vec::new();
                let mut i = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let body = r#"{"dataframe_split": {"columns": ["x1", "x2", "x3"], "data": [[0.1, 0.2, 0.3]]}}"#;
                    statuses.push(post_invocation(&url, &format!("c{c}-{i}"), body));
                    i += 1;
                }
                statuses
            })
        })
        .collect();
    std::thread::sleep(std::time::Duration::from_millis(300));
    ok(
        home.path(),
        &[
            "models",
            "alias",
            "demo",
            "champion",
            "2",
            "--reason",
            "swap test",
        ],
    );
    let start = std::time::Instant::now();
    loop {
        let (_, health) = server.call("GET", "/health", "");
        if health["version"] == "2" {
            break;
        }
        assert!(start.elapsed().as_secs() < 20, "still serving {health}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    // The registry says what is live where; lineage reaches the endpoint.
    let model = ok(home.path(), &["models", "show", "demo", "--json"]);
    assert!(model.contains("kaizen.deployment.127.0.0.1:"), "{model}");
    let lineage = ok(home.path(), &["lineage", "models:/demo/2", "--json"]);
    assert!(lineage.contains(&server.url), "{lineage}");
    let (status, openapi) = server.call("GET", "/openapi.json", "");
    assert_eq!(status, 200);
    assert_eq!(openapi["openapi"], "3.0.3");
    assert!(openapi["paths"]["/invocations"]["post"].is_object());
    let statuses: Vec<u16> = clients
        .into_iter()
        .flat_map(|c| c.join().unwrap())
        .collect();
    assert!(statuses.len() > 50, "{} requests", statuses.len());
    assert!(
        statuses.iter().all(|s| *s == 200),
        "failed requests during the swap"
    );
    drop(server);
    let versions = ok_json(
        home.path(),
        &[
            "sql",
            "SELECT version, COUNT(*) AS n FROM inference_log GROUP BY version ORDER BY version",
            "--json",
        ],
    );
    let seen: Vec<&str> = versions
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["version"].as_str().unwrap())
        .collect();
    assert_eq!(seen, ["1", "2"], "{versions}");
    let events = ok(
        home.path(),
        &["events", "tail", "--kind", "deployment.changed", "--json"],
    );
    assert!(
        events.contains("champion moved from version 1 to 2"),
        "{events}"
    );
}

/// POSTs a body; answers the status, the `x-kaizen-variant` header and the JSON body.
fn post_full(url: &str, path: &str, headers: &[(&str, &str)], body: &str) -> (u16, String, Value) {
    use std::io::{Read, Write};
    let authority = url.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(authority).expect("connect");
    let extra: String = headers
        .iter()
        .map(|(k, v)| format!("{k}: {v}\r\n"))
        .collect();
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: {authority}\r\nContent-Type: application/json\r\n{extra}\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, payload) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let variant = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("x-kaizen-variant:")
                .map(|v| v.trim().to_string())
        })
        .unwrap_or_default();
    // Axum answers small bodies with a content length, not chunked.
    (
        status,
        variant,
        serde_json::from_str(payload).unwrap_or(Value::Null),
    )
}

/// A 90/10 split over two aliases lands within ±3% of its weights over 10,000 requests, a
/// sticky header keeps a caller on one variant, and a shadow's answers are logged but never
/// returned.
#[test]
fn ab_split_sticky_callers_and_shadow() {
    let home = tempfile::tempdir().unwrap();
    let (data, _) = write_data(home.path());
    let base = [
        "train",
        "--data",
        data.as_str(),
        "--target",
        "y",
        "--model",
        "demo",
        "--json",
    ];
    ok(home.path(), &base);
    let mut second = base.to_vec();
    second.extend(["--no-gate", "--learner", "logistic"]);
    ok(home.path(), &second);
    ok(home.path(), &["models", "alias", "demo", "challenger", "2"]);

    let server = Server::spawn(
        home.path(),
        &[
            "serve",
            "models:/demo",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--variant",
            "champion=90",
            "--variant",
            "challenger=10",
            "--sticky-header",
            "x-user",
        ],
    );
    let body = r#"{"dataframe_split": {"columns": ["x1", "x2", "x3"], "data": [[0.1, 0.2, 0.3]]}}"#;
    let clients: Vec<_> = (0..8)
        .map(|_| {
            let url = server.url.clone();
            std::thread::spawn(move || {
                (0..1250)
                    .map(|_| {
                        let (status, variant, _) = post_full(&url, "/invocations", &[], body);
                        assert_eq!(status, 200);
                        variant
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let variants: Vec<String> = clients
        .into_iter()
        .flat_map(|c| c.join().unwrap())
        .collect();
    let challenger = variants.iter().filter(|v| *v == "challenger").count() as f64 / 10_000.0;
    let champion = variants.iter().filter(|v| *v == "champion").count() as f64 / 10_000.0;
    assert!(
        (challenger - 0.10).abs() <= 0.03,
        "challenger share {challenger}"
    );
    assert!((champion - 0.90).abs() <= 0.03, "champion share {champion}");
    for user in ["ana", "bo", "cy", "di"] {
        let first = post_full(&server.url, "/invocations", &[("x-user", user)], body).1;
        for _ in 0..20 {
            assert_eq!(
                post_full(&server.url, "/invocations", &[("x-user", user)], body).1,
                first
            );
        }
    }
    let (_, metrics) = server.call("GET", "/metrics", "");
    let text = metrics.as_str().unwrap_or_default().to_string();
    assert!(
        text.contains("variant=\"challenger\",outcome=\"ok\"}"),
        "{text}"
    );
    drop(server);

    // Shadow: the champion answers, the challenger's answers only reach the log.
    let server = Server::spawn(
        home.path(),
        &[
            "serve",
            "models:/demo@champion",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--shadow",
            "challenger",
        ],
    );
    let probe = r#"{"dataframe_split": {"columns": ["x1", "x2", "x3"], "data": [[0.9, -0.4, 0.3]]}, "params": {"probabilities": true}}"#;
    let (status, variant, answer) = post_full(
        &server.url,
        "/invocations",
        &[("x-request-id", "shadow-probe")],
        probe,
    );
    assert_eq!(status, 200, "{answer}");
    assert_eq!(variant, "default");
    let start = std::time::Instant::now();
    let rows = loop {
        let out = kaizen(
            home.path(),
            &[
                "sql",
                "SELECT variant, version, outputs FROM inference_log WHERE request_id = 'shadow-probe' ORDER BY variant",
                "--json",
            ],
        );
        if out.code == 0
            && out.stdout.matches("shadow-probe").count() == 0
            && out.stdout.contains("shadow:challenger")
        {
            break serde_json::from_str::<Value>(&out.stdout).unwrap();
        }
        assert!(
            start.elapsed().as_secs() < 20,
            "{}{}",
            out.stdout,
            out.stderr
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    assert_eq!(rows[0]["variant"], "default");
    assert_eq!(rows[0]["version"], "1");
    assert_eq!(rows[1]["variant"], "shadow:challenger");
    assert_eq!(rows[1]["version"], "2");
    let answered: Value = serde_json::from_str(rows[0]["outputs"].as_str().unwrap()).unwrap();
    let shadowed: Value = serde_json::from_str(rows[1]["outputs"].as_str().unwrap()).unwrap();
    assert_eq!(
        answer["predictions"], answered,
        "the caller got the champion's answer"
    );
    assert_ne!(
        answer["predictions"], shadowed,
        "the shadow (another learner) answers differently"
    );
}

/// Served rows are compared with the training reference in windows: shifted inputs drift, the
/// gauges say which feature, and a `drift.detected` event is recorded.
#[test]
fn shifted_traffic_is_detected_as_drift() {
    let home = tempfile::tempdir().unwrap();
    let (data, _) = write_data(home.path());
    ok(
        home.path(),
        &[
            "train", "--data", &data, "--target", "y", "--model", "demo", "--json",
        ],
    );
    let server = Server::spawn(
        home.path(),
        &[
            "serve",
            "models:/demo@champion",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--monitor-window",
            "200",
        ],
    );
    let rows = |shift: f64| -> String {
        let data: Vec<Value> = (0..200)
            .map(|i| {
                let u = f64::from(i) / 100.0 - 1.0;
                json!([u + shift, -u * 0.9, (u * 7.0).sin()])
            })
            .collect();
        json!({"dataframe_split": {"columns": ["x1", "x2", "x3"], "data": data}}).to_string()
    };
    let (status, _) = server.call("POST", "/invocations", &rows(5.0));
    assert_eq!(status, 200);
    let start = std::time::Instant::now();
    let text = loop {
        let (_, metrics) = server.call("GET", "/metrics", "");
        let text = metrics.as_str().unwrap_or_default().to_string();
        if text.contains("kaizen_drift_windows_total{")
            && !text.contains(
                "kaizen_drift_windows_total{model=\"demo\",version=\"1\",variant=\"default\"} 0",
            )
        {
            break text;
        }
        assert!(start.elapsed().as_secs() < 20, "{text}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert!(text.contains("feature=\"x1\"} 1"), "x1 drifted: {text}");
    assert!(
        text.contains("kaizen_drift_windows_drifted_total{"),
        "{text}"
    );
    let start = std::time::Instant::now();
    loop {
        let events = ok(
            home.path(),
            &["events", "tail", "--kind", "drift.detected", "--json"],
        );
        if events.contains("\"x1\"") && events.contains("report_run_id") {
            assert!(events.contains("\"source\":\"serving\""), "{events}");
            // The window's report is a run of the `monitoring` experiment.
            let event: Value = serde_json::from_str(events.lines().last().unwrap()).unwrap();
            let run_id = event["payload"]["report_run_id"]
                .as_str()
                .unwrap()
                .to_string();
            let run = ok(home.path(), &["runs", "show", &run_id, "--json"]);
            assert!(run.contains("drift.x1"), "{run}");
            assert!(run.contains("kaizen.drift.drifted"), "{run}");
            let reports: Vec<_> = walk(home.path())
                .into_iter()
                .filter(|p| {
                    p.ends_with("drift_report.html") && p.to_string_lossy().contains(&run_id)
                })
                .collect();
            assert_eq!(reports.len(), 1, "the HTML report of run {run_id}");
            break;
        }
        assert!(start.elapsed().as_secs() < 20, "{events}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// `kaizen server --serve NAME@ALIAS` mounts the model server beside the tracking API.
#[test]
fn the_tracking_server_mounts_a_model() {
    let home = tempfile::tempdir().unwrap();
    let (data, _) = write_data(home.path());
    ok(
        home.path(),
        &[
            "train", "--data", &data, "--target", "y", "--model", "demo", "--json",
        ],
    );
    let server = Server::start(home.path(), &["--serve", "demo@champion"]);
    let body = r#"{"dataframe_split": {"columns": ["x1", "x2", "x3"], "data": [[0.1, 0.2, 0.3]]}}"#;
    let (status, v) = server.call("POST", "/serve/demo/champion/invocations", body);
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["predictions"].as_array().unwrap().len(), 1);
    let (status, health) = server.call("GET", "/serve/demo/champion/health", "");
    assert_eq!(status, 200);
    assert_eq!(health["version"], "1");
    // The tracking API is still there.
    let (status, _) = server.call("GET", "/api/2.0/mlflow/registered-models/get?name=demo", "");
    assert_eq!(status, 200);
    let (status, _) = server.call("POST", "/serve/demo/champion/invocations", "{");
    assert_eq!(status, 400);
}

/// A retraining policy end to end: `kaizen retrain` skips without labeled traffic and refuses a
/// bad policy; `kaizen serve --retrain` sees shifted inputs drift, retrains the pipeline on the
/// served rows that got feedback (their labels follow a new rule), gates, promotes, and swaps
/// to the new version; a local webhook gets the drift alert and the retraining.
#[test]
fn a_retraining_policy_retrains_on_labeled_traffic_and_swaps() {
    let home = tempfile::tempdir().unwrap();
    let (data, _) = write_data(home.path());
    let project = home.path().join("project");
    std::fs::create_dir_all(&project).unwrap();
    std::fs::write(project.join("none.csv"), "x1,x2,x3,y\n").unwrap();
    std::fs::write(
        project.join("pipeline.toml"),
        format!(
            r#"[pipeline]
name = "toy"

[params]
data = "{data}"
traffic = "none.csv"

[[steps]]
name = "base"
kind = "ingest"
with = {{ path = "${{data}}" }}

[[steps]]
name = "served"
kind = "ingest"
with = {{ path = "${{traffic}}", types = {{ x1 = "float64", x2 = "float64", x3 = "float64", y = "float64" }} }}

[[steps]]
name = "rows"
kind = "sql"
inputs = ["base.base.parquet", "served.served.parquet"]
with = {{ query = "SELECT x1, x2, x3, CAST(y AS BIGINT) AS y FROM base UNION ALL SELECT x1, x2, x3, CAST(y AS BIGINT) AS y FROM served" }}

[[steps]]
name = "model"
kind = "train"
inputs = ["rows.rows.parquet"]
with = {{ target = "y", model = "toy" }}
"#
        ),
    )
    .unwrap();
    let policy = project.join("retrain.toml");
    std::fs::write(
        &policy,
        "model = \"toy\"\npipeline = \"pipeline.toml\"\ntarget = \"y\"\non = [\"drift\"]\nmin_rows = 150\n",
    )
    .unwrap();
    ok(
        home.path(),
        &[
            "pipeline",
            "run",
            project.join("pipeline.toml").to_str().unwrap(),
        ],
    );
    let policy_arg = policy.to_str().unwrap();
    let skipped = ok_json(home.path(), &["retrain", "--policy", policy_arg, "--json"]);
    assert!(
        skipped["skipped"]
            .as_str()
            .unwrap()
            .contains("0 labeled row(s)"),
        "{skipped}"
    );
    assert_eq!(skipped["retrained_version"], Value::Null);
    let bad = project.join("bad.toml");
    std::fs::write(
        &bad,
        "model = \"toy\"\npipeline = \"nope.toml\"\ntarget = \"y\"\n",
    )
    .unwrap();
    let out = kaizen(home.path(), &["retrain", "--policy", bad.to_str().unwrap()]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("nope.toml"), "{}", out.stderr);

    let (hook, received) = support::receiver();
    let events = home.path().join("events.toml");
    std::fs::write(
        &events,
        format!("[[subscribers]]\nname = \"ops\"\nkind = \"webhook\"\nurl = \"{hook}\"\nevents = [\"drift.detected\", \"retrain.finished\"]\n"),
    )
    .unwrap();
    let server = Server::spawn(
        home.path(),
        &[
            "serve",
            "models:/toy@champion",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--monitor-window",
            "150",
            "--poll-ms",
            "100",
            "--retrain",
            policy_arg,
            "--events",
            events.to_str().unwrap(),
        ],
    );
    // x1 moved by +3 (drift); the label now follows x2 alone (a new rule).
    for request in 0..12 {
        let rows: Vec<(f64, f64, f64)> = (0..25)
            .map(|i| {
                let u = f64::from(request * 25 + i) / 150.0 - 1.0;
                (3.0 + u, (u * 13.0).sin(), (u * 7.0).cos())
            })
            .collect();
        let data: Vec<Value> = rows.iter().map(|(a, b, c)| json!([a, b, c])).collect();
        let body = json!({"dataframe_split": {"columns": ["x1", "x2", "x3"], "data": data}});
        let id = format!("req-{request}");
        let (status, _, _) = post_full(
            &server.url,
            "/invocations",
            &[("x-request-id", &id)],
            &body.to_string(),
        );
        assert_eq!(status, 200);
        let actual: Vec<u8> = rows.iter().map(|(_, b, _)| u8::from(*b > 0.0)).collect();
        let (status, _, answer) = post_full(
            &server.url,
            "/feedback",
            &[],
            &json!({"request_id": id, "actual": actual}).to_string(),
        );
        assert_eq!(status, 200, "{answer}");
    }
    let start = std::time::Instant::now();
    let finished = loop {
        let found = received
            .lock()
            .unwrap()
            .iter()
            .find(|e| {
                e["kind"] == "retrain.finished"
                    && e["payload"]["trigger"] == "drift"
                    && !e["payload"]["retrained_version"].is_null()
            })
            .cloned();
        if let Some(event) = found {
            break event;
        }
        assert!(
            start.elapsed().as_secs() < 120,
            "no retraining: {:?}",
            received.lock().unwrap()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    let payload = &finished["payload"];
    assert_eq!(payload["trigger"], "drift", "{payload}");
    assert_eq!(payload["retrained_version"], "2", "{payload}");
    assert_eq!(payload["promoted"], true, "{payload}");
    assert!(
        payload["traffic_rows"].as_u64().unwrap() >= 150,
        "{payload}"
    );
    assert!(
        received
            .lock()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "drift.detected" && e["payload"]["name"] == "toy")
    );
    let start = std::time::Instant::now();
    loop {
        let (_, health) = server.call("GET", "/health", "");
        if health["version"] == "2" {
            break;
        }
        assert!(start.elapsed().as_secs() < 20, "{health}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let (_, metrics) = server.call("GET", "/metrics", "");
    assert!(
        metrics
            .as_str()
            .unwrap_or_default()
            .contains("kaizen_performance_expected{"),
        "{metrics}"
    );
}

/// Every file under `dir`.
fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out
}

/// `on = ["schedule"]`: the policy runs on its cron ticks while serving (here every second,
/// skipped for want of labeled traffic, which its `retrain.finished` event says).
#[test]
fn a_scheduled_policy_runs_on_its_ticks() {
    let home = tempfile::tempdir().unwrap();
    let (data, _) = write_data(home.path());
    ok(
        home.path(),
        &[
            "train", "--data", &data, "--target", "y", "--model", "demo", "--json",
        ],
    );
    let pipeline = home.path().join("pipeline.toml");
    std::fs::write(&pipeline, "[pipeline]\nname = \"p\"\n").unwrap();
    let policy = home.path().join("retrain.toml");
    std::fs::write(
        &policy,
        "model = \"demo\"\npipeline = \"pipeline.toml\"\ntarget = \"y\"\non = [\"schedule\"]\nschedule = \"* * * * * *\"\n",
    )
    .unwrap();
    let _server = Server::spawn(
        home.path(),
        &[
            "serve",
            "models:/demo@champion",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--retrain",
            policy.to_str().unwrap(),
        ],
    );
    let start = std::time::Instant::now();
    loop {
        let events = ok(
            home.path(),
            &["events", "tail", "--kind", "retrain.finished", "--json"],
        );
        if events.contains("\"trigger\":\"schedule\"") {
            assert!(events.contains("0 labeled row(s)"), "{events}");
            break;
        }
        assert!(start.elapsed().as_secs() < 20, "{events}");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}
