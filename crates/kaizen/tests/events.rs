//! Events end to end: changes made through the server's REST API and by the CLI on the same
//! home are appended to the event log, `kaizen events tail` shows them, and the server delivers
//! them to the subscribers of the home's events.toml (a local webhook receiver, Slack-style, and
//! a log file).

mod support;

use std::time::{Duration, Instant};

use serde_json::Value;
use support::{Server, kaizen, ok, receiver};

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

/// `kaizen drift --log --notify`: the check is a run of the `monitoring` experiment (metrics per
/// column, the reports as artifacts) and a `drift.detected` event.
#[test]
fn drift_checks_are_recorded_as_monitoring_runs() {
    let home = tempfile::tempdir().unwrap();
    let write = |name: &str, shift: f64| {
        let mut csv = String::from("x,kind\n");
        for i in 0..400 {
            let u = f64::from(i) / 400.0;
            csv.push_str(&format!("{},{}\n", u + shift, ["a", "b"][i as usize % 2]));
        }
        let path = home.path().join(name);
        std::fs::write(&path, csv).unwrap();
        path.to_str().unwrap().to_string()
    };
    let (reference, current) = (write("ref.csv", 0.0), write("cur.csv", 0.5));
    let out = kaizen(
        home.path(),
        &[
            "drift",
            "--reference",
            &reference,
            "--current",
            &current,
            "--log",
            "--notify",
            "--json",
        ],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stderr.contains("monitoring run "), "{}", out.stderr);
    let report: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(report["dataset"]["drifted_columns"], 1, "{report}");
    let run_id = out
        .stderr
        .split("monitoring run ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap()
        .to_string();
    let run: Value =
        serde_json::from_str(&ok(home.path(), &["runs", "show", &run_id, "--json"])).unwrap();
    let text = run.to_string();
    for needle in [
        "drift.x",
        "drift.kind",
        "dataset.share",
        "cur.csv",
        "kaizen.drift.drifted",
    ] {
        assert!(text.contains(needle), "{needle}: {text}");
    }
    let artifacts = home.path().join("artifacts");
    let html: Vec<_> = std::fs::read_dir(&artifacts)
        .unwrap()
        .flatten()
        .flat_map(|exp| {
            std::fs::read_dir(exp.path().join(&run_id).join("artifacts"))
                .into_iter()
                .flatten()
                .flatten()
        })
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(html.contains(&"drift_report.html".to_string()), "{html:?}");
    assert!(html.contains(&"drift_report.json".to_string()), "{html:?}");
    let tail = ok(
        home.path(),
        &["events", "tail", "--kind", "drift.detected", "--json"],
    );
    assert!(tail.contains("cur.csv"), "{tail}");
}
