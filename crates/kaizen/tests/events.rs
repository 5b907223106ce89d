//! Events end to end: changes made through the server's REST API and by the CLI on the same
//! home are appended to the event log, `kaizen events tail` shows them, and the server delivers
//! them to the subscribers of the home's events.toml (a local webhook receiver, Slack-style, and
//! a log file).

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{Server, kaizen, ok};

/// A webhook receiver: answers 200 and keeps each JSON body.
fn receiver() -> (String, Arc<Mutex<Vec<Value>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&bodies);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut length = 0;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; length];
            if reader.read_exact(&mut body).is_ok()
                && let Ok(v) = serde_json::from_slice(&body)
            {
                seen.lock().unwrap().push(v);
            }
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            );
        }
    });
    (url, bodies)
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn registry_changes_reach_webhooks_and_the_tail() {
    let home = tempfile::tempdir().unwrap();
    let (hook, bodies) = receiver();
    let (slack, slack_bodies) = receiver();
    let log = home.path().join("events.log");
    std::fs::write(
        home.path().join("events.toml"),
        format!(
            r#"
[[subscribers]]
name = "hook"
kind = "webhook"
url = "{hook}"

[[subscribers]]
name = "chat"
kind = "slack"
url = "{slack}"
events = ["alias.moved"]

[[subscribers]]
name = "file"
kind = "log"
path = "{}"
"#,
            log.display()
        ),
    )
    .unwrap();
    let server = Server::start(home.path(), &[]);
    let (status, _) = server.call(
        "POST",
        "/api/2.0/mlflow/registered-models/create",
        r#"{"name": "churn"}"#,
    );
    assert_eq!(status, 200);
    let (status, _) = server.call(
        "POST",
        "/api/2.0/mlflow/model-versions/create",
        r#"{"name": "churn", "source": "mlflow-artifacts:/0/x/artifacts/model"}"#,
    );
    assert_eq!(status, 200);
    // The CLI works in-process on the same home; the server delivers its events too.
    ok(
        home.path(),
        &[
            "models", "alias", "churn", "champion", "1", "--reason", "first",
        ],
    );

    wait_for("the webhook", || bodies.lock().unwrap().len() >= 2);
    wait_for("the Slack message", || {
        !slack_bodies.lock().unwrap().is_empty()
    });
    let got = bodies.lock().unwrap().clone();
    let kinds: Vec<&str> = got.iter().map(|b| b["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        ["model_version.registered", "alias.moved"],
        "{got:?}"
    );
    assert_eq!(got[1]["subject"], "models:/churn@champion");
    assert_eq!(got[1]["payload"]["version"], "1");
    let text = slack_bodies.lock().unwrap()[0]["text"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(text, "[kaizen] alias.moved: churn@champion -> version 1");
    wait_for("the log file", || {
        std::fs::read_to_string(&log).is_ok_and(|t| t.lines().count() >= 2)
    });

    let tail = ok(
        home.path(),
        &["events", "tail", "--json", "--kind", "alias.moved"],
    );
    let lines: Vec<Value> = tail
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1, "{tail}");
    assert_eq!(lines[0]["payload"]["reason"], "first");
    let out = kaizen(home.path(), &["events", "tail", "--kind", "drift"]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("`drift` is not an event kind"),
        "{}",
        out.stderr
    );
    drop(server);
}
