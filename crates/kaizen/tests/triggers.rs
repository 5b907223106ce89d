//! End-to-end tests of pipeline triggers and of looking at runs afterwards, driving the real
//! binary: `kaizen server --pipeline DIR` with `POST /api/pipelines/{name}/runs`, `kaizen pipeline
//! schedule`, `kaizen pipeline watch`, and `kaizen pipeline runs|show|logs`.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

mod support;

use support::{Server, command, kaizen, ok as kaizen_ok, ok_json as kaizen_json, step};

/// A home and a project directory with `kaizen.toml` = `toml`.
struct Project {
    home: tempfile::TempDir,
    dir: tempfile::TempDir,
}

impl Project {
    fn new(toml: &str) -> Self {
        let p = Project {
            home: tempfile::tempdir().unwrap(),
            dir: tempfile::tempdir().unwrap(),
        };
        std::fs::write(p.dir.path().join("kaizen.toml"), toml).unwrap();
        p
    }

    fn dir(&self) -> &str {
        self.dir.path().to_str().unwrap()
    }

    fn home(&self) -> &Path {
        self.home.path()
    }
}

/// Every JSON object printed on its own line.
fn json_lines(stdout: &str) -> Vec<Value> {
    stdout
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON line ({e}): {l}")))
        .collect()
}

/// Waits for `child` to exit, for at most `limit`; kills it and fails past that.
fn wait_for(child: &mut Child, limit: Duration) -> i32 {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code().unwrap_or(-1);
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("kaizen did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

// ---- the HTTP trigger ----

const GREET: &str = r#"
[pipeline]
name = "greet"

[params]
name = "World"
epochs = 1
stores = ["a"]

[[steps]]
name = "hello"
run = "echo \"hello $KAIZEN_PARAM_NAME epochs=$KAIZEN_PARAM_EPOCHS stores=$KAIZEN_PARAM_STORES\" | tee $KAIZEN_OUTPUT_DIR/greeting.txt; echo \"tracking=$MLFLOW_TRACKING_URI\""
outputs = ["greeting.txt"]

[[steps]]
name = "shout"
run = "tr a-z A-Z < $KAIZEN_INPUT_HELLO_GREETING_TXT > $KAIZEN_OUTPUT_DIR/loud.txt"
inputs = ["hello.greeting.txt"]
outputs = ["loud.txt"]
params = []
"#;

/// `kaizen server` with the pipelines of `dirs` registered.
fn start_server(home: &Path, dirs: &[&str]) -> Server {
    let mut extra = Vec::new();
    for d in dirs {
        extra.extend(["--pipeline", d]);
    }
    Server::start(home, &extra)
}

/// Starts a run and polls its status until it is no longer running.
fn trigger(server: &Server, pipeline: &str, payload: &str) -> Value {
    let (status, v) = server.call("POST", &format!("/api/pipelines/{pipeline}/runs"), payload);
    assert_eq!(status, 201, "POST {payload}: {v}");
    assert_eq!(v["status"], "running");
    let run_id = v["run_id"].as_str().expect("a run id").to_string();
    let start = Instant::now();
    loop {
        let (status, v) = server.call(
            "GET",
            &format!("/api/pipelines/{pipeline}/runs/{run_id}"),
            "",
        );
        assert_eq!(status, 200, "GET run: {v}");
        assert_eq!(v["run_id"], run_id.as_str());
        if v["status"] != "running" {
            return v;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "run still going after a minute: {v}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn http_trigger_runs_with_the_payload_and_refuses_bad_input() {
    let p = Project::new(GREET);
    let server = start_server(p.home(), &[p.dir()]);

    let (status, v) = server.call("GET", "/api/pipelines", "");
    assert_eq!(status, 200, "{v}");
    let listed = &v["pipelines"][0];
    assert_eq!(listed["name"], "greet");
    assert_eq!(
        listed["params"],
        json!({"name": "World", "epochs": 1, "stores": ["a"]})
    );

    let done = trigger(
        &server,
        "greet",
        r#"{"name": "Marco", "epochs": 3, "stores": ["a", "b"]}"#,
    );
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(step(&done, "hello")["status"], "succeeded");
    assert_eq!(step(&done, "shout")["status"], "succeeded");
    assert_eq!(
        step(&done, "hello")["cache_miss_reason"],
        "no earlier run",
        "{done}"
    );
    assert!(step(&done, "hello")["duration_ms"].is_i64(), "{done}");
    assert!(step(&done, "hello")["run_id"].is_string(), "{done}");
    let run_id = done["run_id"].as_str().unwrap();

    // The step saw the payload's values, and logged to this server.
    let logs = kaizen_ok(p.home(), &["pipeline", "logs", run_id, "hello", "--stdout"]);
    assert!(
        logs.contains("hello Marco epochs=3 stores=[\"a\",\"b\"]"),
        "{logs}"
    );
    assert!(logs.contains(&format!("tracking={}", server.url)), "{logs}");

    // An empty body runs with the defaults; the changed parameter misses the cache.
    let defaults = trigger(&server, "greet", "");
    assert_eq!(defaults["status"], "succeeded", "{defaults}");
    let reason = step(&defaults, "hello")["cache_miss_reason"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        reason.starts_with("param ") && reason.ends_with(" changed"),
        "{defaults}"
    );
    let again = trigger(&server, "greet", "{}");
    assert_eq!(step(&again, "hello")["status"], "cached", "{again}");
    assert!(step(&again, "hello")["cache_miss_reason"].is_null());

    // The runs listing, newest first, and the MLflow API's view of the same runs.
    let (status, v) = server.call("GET", "/api/pipelines/greet/runs", "");
    assert_eq!(status, 200, "{v}");
    let runs = v["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 3, "{v}");
    assert_eq!(runs[2]["run_id"], run_id);
    assert!(runs.iter().all(|r| r["trigger"] == "http"), "{v}");
    let (_, exp) = server.call(
        "GET",
        "/api/2.0/mlflow/experiments/get-by-name?experiment_name=greet",
        "",
    );
    let exp_id = exp["experiment"]["experiment_id"].as_str().unwrap();
    let body = json!({
        "experiment_ids": [exp_id],
        "filter": "tags.`kaizen.trigger` = 'http'",
    });
    let (status, found) = server.call("POST", "/api/2.0/mlflow/runs/search", &body.to_string());
    assert_eq!(status, 200, "{found}");
    let ids: Vec<&str> = found["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["info"]["run_id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&run_id), "{found}");

    // Client errors: 400 naming the key, 404 for what does not exist, never a 5xx.
    for (body, needle) in [
        (r#"{"nmae": "x"}"#, "nmae"),
        (r#"{"epochs": "three"}"#, "epochs"),
        (r#"{"epochs": 1.5}"#, "epochs"),
        (r#"{"stores": "a"}"#, "stores"),
        (r#"["name"]"#, "object"),
        (r#"{"name": "#, "JSON"),
    ] {
        let (status, v) = server.call("POST", "/api/pipelines/greet/runs", body);
        assert_eq!(status, 400, "{body}: {v}");
        assert!(v["error_code"].is_string(), "{v}");
        assert!(
            v["message"].as_str().unwrap().contains(needle),
            "{body}: {v}"
        );
    }
    let (status, v) = server.call("POST", "/api/pipelines/nosuch/runs", "{}");
    assert_eq!(status, 404, "{v}");
    assert_eq!(v["error_code"], "RESOURCE_DOES_NOT_EXIST");
    assert!(v["message"].as_str().unwrap().contains("nosuch"), "{v}");
    let (status, v) = server.call("GET", "/api/pipelines/greet/runs/0123456789abcdef", "");
    assert_eq!(status, 404, "{v}");
    assert_eq!(v["error_code"], "RESOURCE_DOES_NOT_EXIST");
    let (status, _) = server.call("GET", "/api/pipelines/nosuch/runs", "");
    assert_eq!(status, 404);
}

#[test]
fn server_refuses_a_pipeline_directory_without_a_pipeline() {
    let home = tempfile::tempdir().unwrap();
    let empty = tempfile::tempdir().unwrap();
    let out = kaizen(
        home.path(),
        &[
            "server",
            "--port",
            "0",
            "--pipeline",
            empty.path().to_str().unwrap(),
        ],
    );
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("kaizen.toml"), "{}", out.stderr);
}

// ---- schedule and watch ----

const TICK: &str = r#"
[pipeline]
name = "tick"

[params]
label = "x"

[[steps]]
name = "stamp"
run = "echo \"$KAIZEN_PARAM_LABEL\" > $KAIZEN_OUTPUT_DIR/stamp.txt"
outputs = ["stamp.txt"]
cache = false
"#;

#[test]
fn schedule_runs_on_each_tick_until_max_runs() {
    let p = Project::new(TICK);
    let out = kaizen(
        p.home(),
        &[
            "pipeline",
            "schedule",
            p.dir(),
            "--cron",
            "* * * * * *",
            "--max-runs",
            "2",
            "-p",
            "label=tock",
            "--json",
        ],
    );
    assert_eq!(out.code, 0, "stderr: {}", out.stderr);
    let runs = json_lines(&out.stdout);
    assert_eq!(runs.len(), 2, "{}", out.stdout);
    assert!(runs.iter().all(|r| r["status"] == "succeeded"), "{runs:?}");
    assert_ne!(runs[0]["run_id"], runs[1]["run_id"]);

    let listed = kaizen_json(p.home(), &["pipeline", "runs", p.dir(), "--json"]);
    let listed = listed["runs"].as_array().unwrap();
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert!(listed.iter().all(|r| r["trigger"] == "schedule"));
    assert!(listed.iter().all(|r| r["pipeline"] == "tick"));
    let shown = kaizen_json(
        p.home(),
        &[
            "pipeline",
            "show",
            runs[0]["run_id"].as_str().unwrap(),
            "--json",
        ],
    );
    assert_eq!(shown["params"]["label"], "tock", "{shown}");
}

#[test]
fn schedule_refuses_a_bad_cron_expression() {
    let p = Project::new(TICK);
    let out = kaizen(
        p.home(),
        &["pipeline", "schedule", p.dir(), "--cron", "every minute"],
    );
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("--cron"), "{}", out.stderr);
}

const INGEST: &str = r#"
[pipeline]
name = "ingest"

[params]
file = ""

[[steps]]
name = "copy"
run = "echo \"got $KAIZEN_PARAM_FILE\"; cp \"$KAIZEN_PARAM_FILE\" $KAIZEN_OUTPUT_DIR/copy.txt"
outputs = ["copy.txt"]
"#;

#[test]
fn watch_runs_once_per_new_file() {
    let p = Project::new(INGEST);
    let incoming = tempfile::tempdir().unwrap();
    std::fs::write(incoming.path().join("old.csv"), "old\n").unwrap();
    let mut child = command(
        p.home(),
        &[
            "pipeline",
            "watch",
            p.dir(),
            "--dir",
            incoming.path().to_str().unwrap(),
            "--param",
            "file",
            "--interval-ms",
            "100",
            "--max-runs",
            "1",
            "--json",
        ],
    )
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .expect("spawn kaizen pipeline watch");
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    loop {
        let mut line = String::new();
        if stderr.read_line(&mut line).unwrap_or(0) == 0 {
            panic!("watch exited before watching:\n{seen}");
        }
        seen.push_str(&line);
        if line.starts_with("watching ") {
            break;
        }
    }
    let drain = std::thread::spawn(move || {
        let mut rest = String::new();
        let _ = stderr.read_to_string(&mut rest);
        rest
    });
    let new_file = incoming.path().join("new.csv");
    std::fs::write(&new_file, "fresh\n").unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let code = wait_for(&mut child, Duration::from_secs(60));
    let mut out = String::new();
    stdout.read_to_string(&mut out).unwrap();
    let rest = drain.join().unwrap();
    assert_eq!(code, 0, "stderr: {seen}{rest}");
    let runs = json_lines(&out);
    assert_eq!(runs.len(), 1, "{out}\nstderr: {seen}{rest}");
    assert_eq!(runs[0]["status"], "succeeded");
    let run_id = runs[0]["run_id"].as_str().unwrap();

    let logs = kaizen_ok(p.home(), &["pipeline", "logs", run_id, "copy", "--stdout"]);
    let path = std::fs::canonicalize(&new_file).unwrap();
    let logged = logs.trim().strip_prefix("got ").unwrap_or_default();
    assert_eq!(
        std::fs::canonicalize(logged).ok(),
        Some(path),
        "logs: {logs}"
    );
    let shown = kaizen_json(p.home(), &["pipeline", "show", run_id, "--json"]);
    assert_eq!(shown["trigger"], "watch", "{shown}");
    assert!(!logs.contains("old.csv"), "{logs}");
}

// ---- runs, show and logs ----

const FLAKY: &str = r#"
[pipeline]
name = "flaky"

[params]
factor = 2

[[steps]]
name = "prep"
run = "echo \"prep out\"; echo \"prep err\" >&2; echo data > $KAIZEN_OUTPUT_DIR/clean.csv"
outputs = ["clean.csv"]
params = []

[[steps]]
name = "train"
run = "echo \"train attempt $KAIZEN_ATTEMPT\"; echo \"train err $KAIZEN_ATTEMPT\" >&2; test $KAIZEN_ATTEMPT -ge 1 && echo $KAIZEN_PARAM_FACTOR > $KAIZEN_OUTPUT_DIR/model.txt"
inputs = ["prep.clean.csv"]
outputs = ["model.txt"]
retries = 1
retry_backoff_ms = 10
"#;

#[test]
fn runs_show_and_logs_after_the_fact() {
    let p = Project::new(FLAKY);
    let run = |extra: &[&str]| -> Value {
        let mut args = vec!["pipeline", "run", p.dir(), "--json"];
        args.extend_from_slice(extra);
        let stdout = kaizen_ok(p.home(), &args);
        serde_json::from_str(stdout.lines().last().unwrap()).unwrap()
    };
    let first = run(&[]);
    let second = run(&["-p", "factor=3"]);
    let first_id = first["run_id"].as_str().unwrap();
    let second_id = second["run_id"].as_str().unwrap();

    // runs: newest first, as JSON and as a table, for one pipeline or all.
    let v = kaizen_json(p.home(), &["pipeline", "runs", "--json"]);
    let runs = v["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2, "{v}");
    assert_eq!(runs[0]["run_id"], second_id);
    assert_eq!(runs[1]["run_id"], first_id);
    for r in runs {
        assert_eq!(r["pipeline"], "flaky");
        assert_eq!(r["status"], "succeeded");
        assert_eq!(r["trigger"], "cli");
        assert!(r["duration_ms"].is_i64(), "{r}");
        assert!(r["start_time"].is_i64(), "{r}");
    }
    let v = kaizen_json(
        p.home(),
        &["pipeline", "runs", "--pipeline", "other", "--json"],
    );
    assert_eq!(v["runs"], json!([]));
    let table = kaizen_ok(p.home(), &["pipeline", "runs", "--pipeline", "flaky"]);
    let header = table.lines().next().unwrap();
    for col in [
        "RUN_ID", "PIPELINE", "STATUS", "STARTED", "DURATION", "TRIGGER",
    ] {
        assert!(header.contains(col), "{table}");
    }
    assert!(
        table.contains(first_id) && table.contains(second_id),
        "{table}"
    );

    // show: steps with status, duration, cache hit or miss reason, outputs.
    let v = kaizen_json(p.home(), &["pipeline", "show", second_id, "--json"]);
    assert_eq!(v["status"], "succeeded");
    assert_eq!(v["pipeline"], "flaky");
    assert_eq!(v["params"]["factor"], "3");
    let prep = step(&v, "prep");
    assert_eq!(prep["status"], "cached", "{v}");
    assert_eq!(prep["cache"], "hit");
    let train = step(&v, "train");
    assert_eq!(train["status"], "succeeded");
    assert_eq!(train["cache"], "miss");
    assert_eq!(train["cache_miss_reason"], "param factor changed");
    assert_eq!(train["attempts"], 2);
    assert_eq!(train["outputs"][0]["name"], "model.txt");
    assert_eq!(train["outputs"][0]["sha256"].as_str().unwrap().len(), 64);
    assert!(train["duration_ms"].is_i64());
    let names: Vec<&str> = v["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["prep", "train"]);
    let text = kaizen_ok(p.home(), &["pipeline", "show", second_id]);
    assert!(text.contains(second_id), "{text}");
    assert!(text.contains("miss: param factor changed"), "{text}");
    assert!(text.contains("model.txt"), "{text}");
    // A step run's id stands for its pipeline run.
    let step_run = train["run_id"].as_str().unwrap();
    let v = kaizen_json(p.home(), &["pipeline", "show", step_run, "--json"]);
    assert_eq!(v["run_id"], second_id);

    // logs: every step in order, one step, one stream, one attempt.
    let all = kaizen_ok(p.home(), &["pipeline", "logs", first_id]);
    let prep_at = all.find("==> prep (attempt 0, stdout) <==").expect(&all);
    let train_at = all.find("==> train (attempt 1, stdout) <==").expect(&all);
    assert!(prep_at < train_at, "{all}");
    assert!(
        all.contains("prep out") && all.contains("prep err"),
        "{all}"
    );
    assert!(all.contains("train attempt 1"), "{all}");
    let err = kaizen_ok(
        p.home(),
        &["pipeline", "logs", first_id, "train", "--stderr"],
    );
    assert_eq!(err, "train err 1\n");
    let out = kaizen_ok(
        p.home(),
        &[
            "pipeline",
            "logs",
            first_id,
            "train",
            "--attempt",
            "0",
            "--stdout",
        ],
    );
    assert_eq!(out, "train attempt 0\n");
    // A cached step's logs are those of the run that made its result.
    let cached = kaizen(
        p.home(),
        &["pipeline", "logs", second_id, "prep", "--stdout"],
    );
    assert_eq!(cached.code, 0, "{}", cached.stderr);
    assert_eq!(cached.stdout, "prep out\n");
    assert!(cached.stderr.contains(first_id), "{}", cached.stderr);

    // Unknown runs and steps: exit 1 with a clear message.
    let out = kaizen(
        p.home(),
        &["pipeline", "show", "0123456789abcdef0123456789abcdef"],
    );
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("no pipeline run"), "{}", out.stderr);
    let out = kaizen(p.home(), &["pipeline", "logs", "nosuchrun"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("no pipeline run"), "{}", out.stderr);
    let out = kaizen(p.home(), &["pipeline", "logs", first_id, "nosuch"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("no step 'nosuch'"), "{}", out.stderr);
}

#[test]
fn show_lists_the_steps_a_failure_skipped() {
    let p = Project::new(
        r#"
[pipeline]
name = "broken"

[[steps]]
name = "a"
run = "echo fine"

[[steps]]
name = "b"
run = "echo broken >&2; exit 3"
inputs = ["a"]

[[steps]]
name = "c"
run = "echo never"
inputs = ["b"]
"#,
    );
    let out = kaizen(p.home(), &["pipeline", "run", p.dir(), "--json"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    let summary: Value = serde_json::from_str(out.stdout.lines().last().unwrap()).unwrap();
    let run_id = summary["run_id"].as_str().unwrap();
    let v = kaizen_json(p.home(), &["pipeline", "show", run_id, "--json"]);
    assert_eq!(v["status"], "failed");
    let statuses: Vec<(&str, &str)> = v["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["name"].as_str().unwrap(), s["status"].as_str().unwrap()))
        .collect();
    assert_eq!(
        statuses,
        [("a", "succeeded"), ("b", "failed"), ("c", "skipped")]
    );
    let listed = kaizen_json(p.home(), &["pipeline", "runs", "--json"]);
    assert_eq!(listed["runs"][0]["status"], "failed");
    let logs = kaizen_ok(p.home(), &["pipeline", "logs", run_id]);
    assert!(
        logs.contains("==> b (attempt 0, stderr) <==\nbroken\n"),
        "{logs}"
    );
    assert!(
        !logs.contains("(attempt 0, stdout) <==\n==>"),
        "empty logs shown: {logs}"
    );
}
