//! The dispatcher against a real SQLite store, a local HTTP receiver that fails once, a log file
//! and a command.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kaizen_notify::{Config, Dispatcher};
use kaizen_store::NewEvent;
use serde_json::{Value, json};

/// Answers 500 to the first request, then 200; keeps every body.
fn receiver() -> (String, Arc<Mutex<Vec<Value>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&bodies);
    std::thread::spawn(move || {
        for (n, stream) in listener.incoming().enumerate() {
            let mut stream = stream.unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut length = 0;
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                if line == "\r\n" || line.is_empty() {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap();
                }
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            let status = if n == 0 {
                "500 Internal Server Error"
            } else {
                "200 OK"
            };
            if n > 0 {
                seen.lock()
                    .unwrap()
                    .push(serde_json::from_slice(&body).unwrap());
            }
            write!(
                stream,
                "HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            )
            .unwrap();
        }
    });
    (url, bodies)
}

#[tokio::test]
async fn events_reach_every_subscriber_once_with_retries() {
    let dir = tempfile::tempdir().unwrap();
    let uri = format!("sqlite://{}", dir.path().join("kaizen.db").display());
    let store: Arc<dyn kaizen_store::MetadataStore> = kaizen_store::open(&uri).await.unwrap();
    let (url, bodies) = receiver();
    let log = dir.path().join("events.log");
    let marker = dir.path().join("command.out");
    let config_path = dir.path().join("events.toml");
    std::fs::write(
        &config_path,
        format!(
            r#"
[[subscribers]]
name = "hook"
kind = "webhook"
url = "{url}"
events = ["alias.moved"]

[[subscribers]]
name = "file"
kind = "log"
path = "{}"

[[subscribers]]
name = "cmd"
kind = "command"
command = "cat >> {}"
events = ["run.finished"]
"#,
            log.display(),
            marker.display()
        ),
    )
    .unwrap();
    let config = Config::load(&config_path).unwrap();
    let mut dispatcher = Dispatcher::new(Arc::clone(&store), config);
    dispatcher.backoff = Duration::from_millis(10);

    for (kind, subject) in [
        ("run.finished", "r1"),
        ("alias.moved", "models:/m@champion"),
    ] {
        store
            .append_event(&NewEvent {
                kind: kind.into(),
                subject: subject.into(),
                payload: json!({"name": "m", "alias": "champion", "version": "1"}),
            })
            .await
            .unwrap();
    }
    let delivered = dispatcher.deliver_pending().await.unwrap();
    assert_eq!(delivered, 1 + 2 + 1);
    let got = bodies.lock().unwrap().clone();
    assert_eq!(got.len(), 1, "delivered once after one failure: {got:?}");
    assert_eq!(got[0]["kind"], "alias.moved");
    assert_eq!(got[0]["subject"], "models:/m@champion");
    let lines = std::fs::read_to_string(&log).unwrap();
    assert_eq!(lines.lines().count(), 2);
    let command = std::fs::read_to_string(&marker).unwrap();
    assert!(command.contains("\"kind\":\"run.finished\""), "{command}");

    // Nothing is delivered twice; a new event is.
    assert_eq!(dispatcher.deliver_pending().await.unwrap(), 0);
    store
        .append_event(&NewEvent {
            kind: "alias.moved".into(),
            subject: "models:/m@champion".into(),
            payload: json!({}),
        })
        .await
        .unwrap();
    assert_eq!(dispatcher.deliver_pending().await.unwrap(), 2);
    assert_eq!(bodies.lock().unwrap().len(), 2);
}
