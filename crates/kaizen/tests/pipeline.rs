//! End-to-end tests of `kaizen pipeline run` on temporary project directories with shell command
//! steps: caching and miss reasons, retries, timeouts, parallelism and failures.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_kaizen");

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

fn kaizen(home: &Path, args: &[&str]) -> Out {
    let out = Command::new(BIN)
        .args(args)
        .env("KAIZEN_HOME", home)
        .env("KAIZEN_LOG", "error")
        .env("NO_COLOR", "1")
        .env("USER", "tester")
        .env_remove("MLFLOW_TRACKING_URI")
        .output()
        .expect("run kaizen");
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

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
        p.write("kaizen.toml", toml);
        p
    }

    fn write(&self, name: &str, text: &str) {
        std::fs::write(self.dir.path().join(name), text).unwrap();
    }

    fn path(&self, name: &str) -> std::path::PathBuf {
        self.dir.path().join(name)
    }

    /// Runs the pipeline with `--json` and answers the exit code, the summary and stderr.
    fn run(&self, extra: &[&str]) -> (i32, Value, String) {
        let dir = self.dir.path().to_str().unwrap();
        let mut args = vec!["pipeline", "run", dir, "--json"];
        args.extend_from_slice(extra);
        let out = kaizen(self.home.path(), &args);
        let last = out.stdout.lines().last().unwrap_or_default().to_string();
        let v: Value = serde_json::from_str(&last).unwrap_or_else(|e| {
            panic!(
                "no JSON summary ({e})\nstdout: {}\nstderr: {}",
                out.stdout, out.stderr
            )
        });
        (out.code, v, out.stderr)
    }

    fn run_ok(&self, extra: &[&str]) -> Value {
        let (code, v, stderr) = self.run(extra);
        assert_eq!(code, 0, "pipeline failed: {v}\nstderr: {stderr}");
        assert_eq!(v["status"], "succeeded");
        v
    }
}

fn step<'a>(v: &'a Value, name: &str) -> &'a Value {
    v["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no step {name} in {v}"))
}

fn statuses(v: &Value) -> Vec<(String, String)> {
    v["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap().to_string(),
                s["status"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

const ETL: &str = r#"
[pipeline]
name = "etl"
description = "a tiny ETL"

[params]
factor = 2
label = "x"

[[steps]]
name = "prep"
run = "sh prep.sh"
inputs = ["sales.csv"]
outputs = ["clean.csv"]
code = ["prep.sh"]
params = ["label"]

[[steps]]
name = "train"
run = "cat $KAIZEN_INPUT_PREP_CLEAN_CSV > $KAIZEN_OUTPUT_DIR/model.txt; echo factor=$KAIZEN_PARAM_FACTOR >> $KAIZEN_OUTPUT_DIR/model.txt; cat $KAIZEN_PARAMS_FILE >> $KAIZEN_OUTPUT_DIR/model.txt"
inputs = ["prep.clean.csv"]
outputs = ["model.txt"]
params = ["factor"]
"#;

fn etl() -> Project {
    let p = Project::new(ETL);
    p.write("sales.csv", "a,b\n1,2\n");
    p.write(
        "prep.sh",
        "grep -v '^#' \"$KAIZEN_INPUT_SALES_CSV\" > \"$KAIZEN_OUTPUT_DIR/clean.csv\"\necho \"$KAIZEN_PARAM_LABEL\" >> \"$KAIZEN_OUTPUT_DIR/clean.csv\"\n",
    );
    p
}

#[test]
fn unchanged_rerun_is_all_cached_and_changes_miss_with_a_reason() {
    let p = etl();
    let first = p.run_ok(&[]);
    assert_eq!(
        statuses(&first),
        pairs(&[("prep", "succeeded"), ("train", "succeeded")])
    );
    assert_eq!(step(&first, "prep")["cache_miss_reason"], "no earlier run");
    assert_eq!(
        step(&first, "train")["outputs"],
        serde_json::json!(["model.txt"])
    );
    assert!(step(&first, "train")["duration_ms"].is_u64());

    let again = p.run_ok(&[]);
    assert_eq!(
        statuses(&again),
        pairs(&[("prep", "cached"), ("train", "cached")])
    );
    assert!(step(&again, "prep")["cache_miss_reason"].is_null());
    assert_ne!(again["run_id"], first["run_id"]);

    // One byte of an input file.
    p.write("sales.csv", "a,b\n1,3\n");
    let v = p.run_ok(&[]);
    assert_eq!(step(&v, "prep")["status"], "succeeded");
    assert_eq!(
        step(&v, "prep")["cache_miss_reason"],
        "input sales.csv changed"
    );
    assert_eq!(
        step(&v, "train")["cache_miss_reason"],
        "input prep.clean.csv changed"
    );

    // A parameter only the second step uses.
    let v = p.run_ok(&["-p", "factor=3"]);
    assert_eq!(step(&v, "prep")["status"], "cached");
    assert_eq!(
        step(&v, "train")["cache_miss_reason"],
        "param factor changed"
    );
    let model = v["run_id"].as_str().unwrap();
    assert!(!model.is_empty());

    // A named code file.
    p.write(
        "prep.sh",
        "cp \"$KAIZEN_INPUT_SALES_CSV\" \"$KAIZEN_OUTPUT_DIR/clean.csv\"\n",
    );
    let v = p.run_ok(&["-p", "factor=3"]);
    assert_eq!(
        step(&v, "prep")["cache_miss_reason"],
        "code prep.sh changed"
    );

    // The definition.
    p.write(
        "kaizen.toml",
        &ETL.replace(
            "params = [\"factor\"]",
            "params = [\"factor\"]\nenv = { X = \"1\" }",
        ),
    );
    let v = p.run_ok(&["-p", "factor=3"]);
    assert_eq!(step(&v, "prep")["status"], "cached");
    assert_eq!(step(&v, "train")["cache_miss_reason"], "definition changed");

    // --no-cache runs everything.
    let v = p.run_ok(&["-p", "factor=3", "--no-cache"]);
    assert_eq!(
        statuses(&v),
        pairs(&[("prep", "succeeded"), ("train", "succeeded")])
    );

    // Unknown and mistyped parameters are refused.
    let (code, _, _) = {
        let out = kaizen(
            p.home.path(),
            &[
                "pipeline",
                "run",
                p.dir.path().to_str().unwrap(),
                "-p",
                "nope=1",
            ],
        );
        assert!(
            out.stderr.contains("unknown parameter 'nope'"),
            "{}",
            out.stderr
        );
        (out.code, (), ())
    };
    assert_eq!(code, 1);
    let out = kaizen(
        p.home.path(),
        &[
            "pipeline",
            "run",
            p.dir.path().to_str().unwrap(),
            "-p",
            "factor=abc",
        ],
    );
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("'abc' is not an integer"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_failing_step_shows_its_stderr_tail_and_skips_dependents() {
    let p = Project::new(
        r#"
[pipeline]
name = "broken"

[[steps]]
name = "bad"
run = "for i in $(seq 1 30); do echo line$i >&2; done; exit 3"
outputs = ["x"]

[[steps]]
name = "after"
run = "true"
inputs = ["bad"]

[[steps]]
name = "independent"
run = "true"
"#,
    );
    let (code, v, stderr) = p.run(&[]);
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(v["status"], "failed");
    assert_eq!(
        statuses(&v),
        pairs(&[
            ("bad", "failed"),
            ("after", "skipped"),
            ("independent", "succeeded")
        ])
    );
    assert!(
        stderr.contains("step 'bad' failed: exit status 3"),
        "{stderr}"
    );
    assert!(stderr.contains("line30"), "{stderr}");
    assert!(stderr.contains("line11"), "{stderr}");
    assert!(!stderr.contains("line10\n"), "only the tail: {stderr}");
}

#[test]
fn retries_until_the_step_succeeds() {
    let p = Project::new(
        r#"
[pipeline]
name = "flaky"

[[steps]]
name = "flaky"
run = "if [ -f marker ]; then echo ok > $KAIZEN_OUTPUT_DIR/o; else touch marker; echo first try fails >&2; exit 1; fi"
outputs = ["o"]
retries = 2
retry_backoff_ms = 10
"#,
    );
    let v = p.run_ok(&[]);
    assert_eq!(step(&v, "flaky")["status"], "succeeded");
    assert!(p.path("marker").exists());

    let q = Project::new(
        r#"
[pipeline]
name = "hopeless"

[[steps]]
name = "never"
run = "echo try >> tries; exit 1"
retries = 2
retry_backoff_ms = 10
"#,
    );
    let (code, v, _) = q.run(&[]);
    assert_eq!(code, 1);
    assert_eq!(step(&v, "never")["status"], "failed");
    let tries = std::fs::read_to_string(q.path("tries")).unwrap();
    assert_eq!(tries.lines().count(), 3);
}

#[test]
fn a_timeout_kills_the_whole_process_tree() {
    let p = Project::new(
        r#"
[pipeline]
name = "slow"

[[steps]]
name = "slow"
run = "sleep 300 & echo $! > grandchild.pid; sleep 300; wait"
timeout_s = 1
"#,
    );
    let (code, v, stderr) = p.run(&[]);
    assert_eq!(code, 1);
    assert_eq!(step(&v, "slow")["status"], "failed");
    assert!(stderr.contains("timed out after 1s"), "{stderr}");
    let pid: i32 = std::fs::read_to_string(p.path("grandchild.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // The grandchild is gone (a zombie until reaped counts as gone: kill -0 then fails or the
    // process is in state Z).
    let mut gone = false;
    for _ in 0..50 {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        if status.is_empty()
            || status
                .lines()
                .any(|l| l.starts_with("State:") && l.contains('Z'))
        {
            gone = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(gone, "grandchild {pid} still runs");
}

#[test]
fn independent_steps_overlap() {
    let p = Project::new(
        r#"
[pipeline]
name = "parallel"

[[steps]]
name = "a"
run = "date +%s%N > a.start; sleep 1; date +%s%N > a.end"
cache = false

[[steps]]
name = "b"
run = "date +%s%N > b.start; sleep 1; date +%s%N > b.end"
cache = false
"#,
    );
    let v = p.run_ok(&["--max-parallel", "2"]);
    assert_eq!(step(&v, "a")["cache_miss_reason"], "cache disabled");
    let read = |n: &str| -> u128 {
        std::fs::read_to_string(p.path(n))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    let (a0, a1, b0, b1) = (
        read("a.start"),
        read("a.end"),
        read("b.start"),
        read("b.end"),
    );
    assert!(
        a0 < b1 && b0 < a1,
        "a [{a0}, {a1}] and b [{b0}, {b1}] do not overlap"
    );

    // With one slot they run one after the other.
    let v = p.run_ok(&["--max-parallel", "1"]);
    assert_eq!(v["steps"].as_array().unwrap().len(), 2);
    let (a0, a1, b0, b1) = (
        read("a.start"),
        read("a.end"),
        read("b.start"),
        read("b.end"),
    );
    assert!(a1 <= b0 || b1 <= a0, "serial steps overlapped");
}

#[test]
fn steps_get_a_nested_run_and_a_tracking_server() {
    let p = Project::new(
        r#"
[pipeline]
name = "tracked"

[[steps]]
name = "probe"
run = "curl -sf $MLFLOW_TRACKING_URI/api/2.0/mlflow/runs/get?run_id=$MLFLOW_RUN_ID > $KAIZEN_OUTPUT_DIR/run.json || echo '{}' > $KAIZEN_OUTPUT_DIR/run.json; echo $MLFLOW_RUN_ID > $KAIZEN_OUTPUT_DIR/id"
outputs = ["run.json", "id"]
"#,
    );
    let v = p.run_ok(&[]);
    let run_id = v["run_id"].as_str().unwrap();
    let out = kaizen(p.home.path(), &["runs", "show", run_id, "--json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let parent: Value = serde_json::from_str(&out.stdout).unwrap();
    assert!(out.stdout.contains("kaizen.pipeline"), "{parent}");
    let list = kaizen(p.home.path(), &["runs", "list", "-e", "tracked", "--json"]);
    assert_eq!(list.code, 0, "{}", list.stderr);
    assert!(list.stdout.contains(run_id), "{}", list.stdout);
    // The step's run is nested under the pipeline's and was reachable over HTTP while it ran
    // (when curl is installed).
    if which("curl") {
        let home = p
            .home
            .path()
            .join("pipelines")
            .join(run_id)
            .join("probe/out/run.json");
        let body = std::fs::read_to_string(home).unwrap();
        assert!(body.contains("mlflow.parentRunId"), "{body}");
        assert!(body.contains(run_id), "{body}");
    }
}

fn which(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

#[test]
fn unavailable_step_kinds_are_named() {
    let p = Project::new(
        "[pipeline]\nname = \"data\"\n[[steps]]\nname = \"load\"\nkind = \"ingest\"\n",
    );
    let out = kaizen(
        p.home.path(),
        &["pipeline", "run", p.dir.path().to_str().unwrap()],
    );
    assert_eq!(out.code, 1);
    assert!(
        out.stderr
            .contains("step 'load': kind \"ingest\" is not yet available"),
        "{}",
        out.stderr
    );
}
