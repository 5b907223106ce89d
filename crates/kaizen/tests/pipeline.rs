//! End-to-end tests of `kaizen pipeline run` on temporary project directories with shell command
//! steps: caching and miss reasons, retries, timeouts, parallelism and failures.

use std::process::Command;

use serde_json::Value;

mod support;

use support::{BIN, Out, kaizen, step};

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
fn built_in_steps_are_checked_before_anything_runs() {
    let p = Project::new(
        "[pipeline]\nname = \"data\"\n[[steps]]\nname = \"load\"\nkind = \"ingest\"\n",
    );
    let out = kaizen(
        p.home.path(),
        &["pipeline", "run", p.dir.path().to_str().unwrap()],
    );
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains(
            "step 'load': an ingest step takes exactly one of with.path, with.url and with.postgres"
        ),
        "{}",
        out.stderr
    );
    p.write(
        "kaizen.toml",
        "[pipeline]\nname = \"data\"\n[[steps]]\nname = \"load\"\nkind = \"ingest\"\n\
         with = { path = \"${nope}\" }\n",
    );
    let out = kaizen(
        p.home.path(),
        &["pipeline", "run", p.dir.path().to_str().unwrap()],
    );
    assert_eq!(out.code, 1);
    assert!(
        out.stderr
            .contains("step 'load': field 'with': '${nope}' names no parameter"),
        "{}",
        out.stderr
    );
}

/// The rows `kaizen sql --json` printed.
fn sql_rows(out: &Out) -> Value {
    assert_eq!(out.code, 0, "{}", out.stderr);
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", out.stdout))
}

const DATA: &str = r#"
[pipeline]
name = "shop"

[params]
min_units = 1

[[steps]]
name = "sales"
kind = "ingest"
with = { path = "data/sales.csv", types = { day = "date32" } }

[[steps]]
name = "checked"
kind = "validate"
inputs = ["sales.sales.parquet"]
[steps.with]
row_count = { min = 3 }
columns = [
  { name = "sku", type = "utf8", not_null = true, regex = "^SKU[0-9]+$" },
  { name = "units", min = 0 },
  { name = "region", allowed = ["EU", "US"] },
]

[[steps]]
name = "daily"
kind = "sql"
inputs = ["checked.checked.parquet"]
with = { query = "SELECT sku, day, SUM(units) AS units FROM checked WHERE units >= ${min_units} GROUP BY sku, day ORDER BY day, sku" }

[[steps]]
name = "split"
kind = "split"
inputs = ["daily.daily.parquet"]
with = { method = "time", column = "day", fractions = { train = 0.5, test = 0.5 } }

[[steps]]
name = "eda"
kind = "profile"
inputs = ["sales.sales.parquet"]
"#;

const SALES: &str = "sku,day,units,region\nSKU1,2024-01-01,3,EU\nSKU2,2024-01-01,1,US\n\
SKU1,2024-01-02,2,EU\nSKU1,2024-01-02,4,US\nSKU2,2024-01-03,0,EU\nSKU1,2024-01-04,5,EU\n";

fn shop() -> Project {
    let p = Project::new(DATA);
    std::fs::create_dir_all(p.path("data")).unwrap();
    p.write("data/sales.csv", SALES);
    p
}

#[test]
fn data_steps_ingest_validate_transform_split_and_profile() {
    let p = shop();
    let v = p.run_ok(&[]);
    assert_eq!(
        statuses(&v),
        pairs(&[
            ("sales", "succeeded"),
            ("checked", "succeeded"),
            ("daily", "succeeded"),
            ("split", "succeeded"),
            ("eda", "succeeded"),
        ])
    );
    assert_eq!(
        step(&v, "sales")["outputs"],
        serde_json::json!(["sales.parquet"])
    );
    assert_eq!(
        step(&v, "checked")["outputs"],
        serde_json::json!(["checked.parquet", "validation.json"])
    );
    assert_eq!(
        step(&v, "split")["outputs"],
        serde_json::json!(["test.parquet", "train.parquet"])
    );
    assert_eq!(
        step(&v, "eda")["outputs"],
        serde_json::json!(["profile.html", "profile.json"])
    );
    let run_dir = p
        .home
        .path()
        .join("pipelines")
        .join(v["run_id"].as_str().unwrap());
    let html = std::fs::read_to_string(run_dir.join("eda/out/profile.html")).unwrap();
    assert!(
        html.contains("<svg") && html.contains("units"),
        "{html:.300}"
    );
    let profile: Value = serde_json::from_str(
        &std::fs::read_to_string(run_dir.join("eda/out/profile.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(profile["rows"], 6);

    // Every table is cataloged and queryable by name.
    let out = kaizen(
        p.home.path(),
        &[
            "sql",
            "SELECT sku, units FROM daily ORDER BY day, sku",
            "--json",
        ],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let rows: Value = serde_json::from_str(&out.stdout).unwrap();
    // The filter `units >= 1` (a parameter in the query) drops SKU2 on 2024-01-03.
    assert_eq!(
        rows,
        serde_json::json!([
            {"sku": "SKU1", "units": 3}, {"sku": "SKU2", "units": 1},
            {"sku": "SKU1", "units": 6}, {"sku": "SKU1", "units": 5}
        ])
    );

    // Unchanged: all cached. One byte of the source file: a miss that names it.
    let again = p.run_ok(&[]);
    assert!(
        statuses(&again).iter().all(|(_, s)| s == "cached"),
        "{again}"
    );
    p.write("data/sales.csv", &SALES.replace("5,EU", "6,EU"));
    let v = p.run_ok(&[]);
    assert_eq!(
        step(&v, "sales")["cache_miss_reason"],
        "file data/sales.csv changed"
    );
    assert_eq!(step(&v, "eda")["status"], "succeeded");
    // A parameter used only inside one step's query.
    let v = p.run_ok(&["-p", "min_units=2"]);
    assert_eq!(step(&v, "sales")["status"], "cached");
    assert_eq!(
        step(&v, "daily")["cache_miss_reason"],
        "param min_units changed"
    );
    let out = kaizen(
        p.home.path(),
        &["sql", "SELECT COUNT(*) AS n FROM \"daily@1\"", "--json"],
    );
    assert_eq!(sql_rows(&out), serde_json::json!([{"n": 4}]));
}

#[test]
fn a_validation_failure_names_column_rule_count_and_examples() {
    let p = shop();
    p.write(
        "data/sales.csv",
        &format!("{SALES}SKU9,2024-01-05,-2,ASIA\nbad,2024-01-05,-1,EU\n"),
    );
    let (code, v, stderr) = p.run(&[]);
    assert_eq!(code, 1);
    assert_eq!(step(&v, "checked")["status"], "failed");
    assert_eq!(step(&v, "daily")["status"], "skipped");
    assert_eq!(step(&v, "eda")["status"], "succeeded");
    assert!(stderr.contains("validation failed"), "{stderr}");
    assert!(
        stderr.contains("column `units`: rule `min >= 0` failed for 2 rows, e.g. {"),
        "{stderr}"
    );
    assert!(
        stderr.contains("column `region`: rule `allowed in [EU, US]` failed for 1 row"),
        "{stderr}"
    );
    assert!(
        stderr.contains("column `sku`: rule `regex `^SKU[0-9]+$`` failed for 1 row"),
        "{stderr}"
    );
    assert!(stderr.contains("\"ASIA\""), "{stderr}");
}

const MARCO: &str = r#"
[pipeline]
name = "marco-polo"

[params]
name = "Marco"

[[steps]]
name = "greet"
run = 'printf "{\"name\": \"%s\"}" "$KAIZEN_PARAM_NAME" > "$KAIZEN_OUTPUT_DIR/greeting.json"'
outputs = ["greeting.json"]

[[steps]]
name = "route"
kind = "choice"
inputs = ["greet.greeting.json"]
with = { choices = [{ variable = "$.name", equals = "Marco", next = "polo" }], default = "who" }

[[steps]]
name = "polo"
run = 'echo Polo > "$KAIZEN_OUTPUT_DIR/answer.txt"'
outputs = ["answer.txt"]

[[steps]]
name = "who"
run = 'echo "Who is $KAIZEN_PARAM_NAME?" > "$KAIZEN_OUTPUT_DIR/answer.txt"'
outputs = ["answer.txt"]

[[steps]]
name = "after-who"
run = "true"
inputs = ["who"]
"#;

#[test]
fn a_choice_step_routes_on_json() {
    let p = Project::new(MARCO);
    let v = p.run_ok(&[]);
    assert_eq!(
        statuses(&v),
        pairs(&[
            ("greet", "succeeded"),
            ("route", "succeeded"),
            ("polo", "succeeded"),
            ("who", "skipped"),
            ("after-who", "skipped"),
        ])
    );
    let run_dir = p
        .home
        .path()
        .join("pipelines")
        .join(v["run_id"].as_str().unwrap());
    let answer = std::fs::read_to_string(run_dir.join("polo/out/answer.txt")).unwrap();
    assert_eq!(answer.trim(), "Polo");
    let v = p.run_ok(&["-p", "name=Ana"]);
    assert_eq!(step(&v, "polo")["status"], "skipped");
    assert_eq!(step(&v, "who")["status"], "succeeded");
    assert_eq!(step(&v, "after-who")["status"], "succeeded");
}

#[test]
fn foreach_fans_out_over_a_list_and_over_partitions_then_fans_in() {
    let p = shop();
    p.write(
        "kaizen.toml",
        r#"
[pipeline]
name = "fan"

[params]
regions = ["EU", "US"]

[[steps]]
name = "sales"
kind = "ingest"
with = { path = "data/sales.csv" }

[[steps]]
name = "per-param"
foreach = "regions"
run = 'echo "item=$KAIZEN_ITEM" > "$KAIZEN_OUTPUT_DIR/note.txt"'
outputs = ["note.txt"]

[[steps]]
name = "per-region"
kind = "sql"
inputs = ["sales.sales.parquet"]
foreach = { partitions = "sales.sales.parquet", column = "region" }
with = { query = "SELECT '${item}' AS region, SUM(units) AS units FROM sales" }

[[steps]]
name = "gather"
inputs = ["per-region", "per-param"]
run = 'cat "$KAIZEN_INPUT_PER_PARAM"/*/note.txt > "$KAIZEN_OUTPUT_DIR/all.txt"; ls "$KAIZEN_INPUT_PER_REGION" >> "$KAIZEN_OUTPUT_DIR/all.txt"'
outputs = ["all.txt"]
"#,
    );
    let v = p.run_ok(&["--max-parallel", "2"]);
    assert_eq!(
        step(&v, "per-param")["outputs"],
        serde_json::json!(["EU/note.txt", "US/note.txt"])
    );
    assert_eq!(
        step(&v, "per-region")["outputs"],
        serde_json::json!(["EU/per-region.parquet", "US/per-region.parquet"])
    );
    let run_dir = p
        .home
        .path()
        .join("pipelines")
        .join(v["run_id"].as_str().unwrap());
    let all = std::fs::read_to_string(run_dir.join("gather/out/all.txt")).unwrap();
    assert_eq!(all, "item=EU\nitem=US\nEU\nUS\n");
    let again = p.run_ok(&[]);
    assert!(
        statuses(&again).iter().all(|(_, s)| s == "cached"),
        "{again}"
    );
    let v = p.run_ok(&["-p", "regions=EU"]);
    assert_eq!(
        step(&v, "per-param")["cache_miss_reason"],
        "param regions changed"
    );
    assert_eq!(
        step(&v, "per-param")["outputs"],
        serde_json::json!(["EU/note.txt"])
    );
}

type Served = std::sync::Arc<std::sync::Mutex<(String, String)>>;

/// An HTTP server on 127.0.0.1 that answers every request with the body and ETag in `served`.
fn serve_csv(served: Served) -> String {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            let mut buf = [0u8; 4096];
            let n = s.read(&mut buf).unwrap_or(0);
            let head = String::from_utf8_lossy(&buf[..n]).starts_with("HEAD");
            let (body, etag) = served.lock().unwrap().clone();
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Type: text/csv\r\nETag: \"{etag}\"\r\n\
                 Content-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            if !head {
                let _ = s.write_all(body.as_bytes());
            }
        }
    });
    format!("http://{addr}/sales.csv")
}

#[test]
fn ingest_from_a_url_is_cached_by_its_etag() {
    let served: Served = std::sync::Arc::new(std::sync::Mutex::new((
        "a,b\n1,x\n2,y\n".into(),
        "v1".into(),
    )));
    let url = serve_csv(served.clone());
    let p = Project::new(&format!(
        "[pipeline]\nname = \"web\"\n[[steps]]\nname = \"remote\"\nkind = \"ingest\"\n\
         with = {{ url = \"{url}\" }}\n"
    ));
    let v = p.run_ok(&[]);
    assert_eq!(step(&v, "remote")["status"], "succeeded");
    let v = p.run_ok(&[]);
    assert_eq!(step(&v, "remote")["status"], "cached");
    let out = kaizen(
        p.home.path(),
        &["sql", "SELECT SUM(a) AS s FROM remote", "--json"],
    );
    assert_eq!(sql_rows(&out), serde_json::json!([{"s": 3}]));

    // New content under a new ETag at the same URL: a miss that names the URL.
    *served.lock().unwrap() = ("a,b\n1,x\n".into(), "v2".into());
    let v = p.run_ok(&[]);
    assert_eq!(
        step(&v, "remote")["cache_miss_reason"],
        format!("url {url} changed")
    );
    let out = kaizen(
        p.home.path(),
        &["sql", "SELECT SUM(a) AS s FROM remote", "--json"],
    );
    assert_eq!(sql_rows(&out), serde_json::json!([{"s": 1}]));

    // A URL that does not answer is a clear failure.
    let p3 = Project::new(
        "[pipeline]\nname = \"down\"\n[[steps]]\nname = \"remote\"\nkind = \"ingest\"\n\
         with = { url = \"http://127.0.0.1:9/none.csv\" }\n",
    );
    let out = kaizen(
        p3.home.path(),
        &["pipeline", "run", p3.dir.path().to_str().unwrap()],
    );
    assert_eq!(out.code, 1);
    assert!(
        out.stderr
            .contains("cannot reach http://127.0.0.1:9/none.csv"),
        "{}",
        out.stderr
    );
}

#[test]
fn ingest_from_postgresql_when_a_server_is_given() {
    let Ok(uri) = std::env::var("KAIZEN_TEST_POSTGRES_URI") else {
        eprintln!("skipped: KAIZEN_TEST_POSTGRES_URI is not set");
        return;
    };
    let table = format!("ingest_{}", std::process::id());
    let psql = |sql: &str| {
        let out = Command::new("psql")
            .args([uri.as_str(), "-v", "ON_ERROR_STOP=1", "-qc", sql])
            .output()
            .expect("psql");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    psql(&format!(
        "CREATE TABLE {table} (id int, name text, price numeric(10,2), day date); \
         INSERT INTO {table} VALUES (1, 'a', 1.50, '2024-01-01'), (2, 'b', 2.25, '2024-01-02')"
    ));
    let p = Project::new(&format!(
        "[pipeline]\nname = \"pg\"\n[[steps]]\nname = \"orders\"\nkind = \"ingest\"\n\
         with = {{ postgres = \"$PG_URI\", query = \"SELECT * FROM {table} ORDER BY id\", types = {{ day = \"date32\" }} }}\n"
    ));
    let run = |p: &Project| {
        let out = Command::new(BIN)
            .args(["pipeline", "run", p.dir.path().to_str().unwrap(), "--json"])
            .env("KAIZEN_HOME", p.home.path())
            .env("PG_URI", &uri)
            .env_remove("MLFLOW_TRACKING_URI")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    assert_eq!(step(&run(&p), "orders")["status"], "succeeded");
    assert_eq!(step(&run(&p), "orders")["status"], "cached");
    psql(&format!(
        "INSERT INTO {table} VALUES (3, 'c', 3.00, '2024-01-03')"
    ));
    let v = run(&p);
    assert_eq!(step(&v, "orders")["status"], "succeeded");
    assert!(
        step(&v, "orders")["cache_miss_reason"]
            .as_str()
            .unwrap()
            .starts_with("postgres "),
        "{v}"
    );
    let out = kaizen(
        p.home.path(),
        &["sql", "SELECT COUNT(*) AS n FROM orders", "--json"],
    );
    assert_eq!(sql_rows(&out), serde_json::json!([{"n": 3}]));
    psql(&format!("DROP TABLE {table}"));
}

#[test]
fn a_rerun_after_kill_9_continues_from_the_finished_steps() {
    let marks = tempfile::tempdir().unwrap();
    let mark = marks.path().join("started");
    let p = Project::new(&format!(
        r#"
[pipeline]
name = "resume"

[[steps]]
name = "first"
run = 'echo one > "$KAIZEN_OUTPUT_DIR/one.txt"'
outputs = ["one.txt"]

[[steps]]
name = "slow"
inputs = ["first.one.txt"]
run = 'if [ ! -f {m} ]; then echo $$ > {m}; sleep 60; fi; cp "$KAIZEN_INPUT_FIRST_ONE_TXT" "$KAIZEN_OUTPUT_DIR/two.txt"'
outputs = ["two.txt"]
"#,
        m = mark.display()
    ));
    let mut child = Command::new(BIN)
        .args(["pipeline", "run", p.dir.path().to_str().unwrap(), "--json"])
        .env("KAIZEN_HOME", p.home.path())
        .env("KAIZEN_LOG", "error")
        .env_remove("MLFLOW_TRACKING_URI")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !mark.exists()
        || std::fs::read_to_string(&mark)
            .unwrap_or_default()
            .trim()
            .is_empty()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the slow step never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    // The step's shell is in its own process group and outlives kaizen; end it too.
    let pid = std::fs::read_to_string(&mark).unwrap().trim().to_string();
    assert!(pid.parse::<u32>().is_ok_and(|p| p > 1), "pid {pid}");
    // (pkill -g, not `kill -9 -PGID`: procps-ng 4.0's kill misreads a negative PID.)
    let _ = Command::new("pkill").args(["-KILL", "-g", &pid]).status();

    let v = p.run_ok(&[]);
    assert_eq!(
        statuses(&v),
        pairs(&[("first", "cached"), ("slow", "succeeded")])
    );
    // The interrupted run is marked KILLED and the new one says it resumes it.
    let out = kaizen(p.home.path(), &["runs", "list", "-e", "resume", "--json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("KILLED"), "{}", out.stdout);
    let out = kaizen(
        p.home.path(),
        &["runs", "show", v["run_id"].as_str().unwrap(), "--json"],
    );
    assert!(out.stdout.contains("kaizen.resumes"), "{}", out.stdout);
}
