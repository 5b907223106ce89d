//! End-to-end tests of the `kaizen` binary: `experiments`, `runs` and `models` on a local home
//! (in-process) and against a real `kaizen server` on a free port (over HTTP).

use serde_json::{Value, json};

mod support;

use support::{Server, kaizen, kaizen_env, ok, ok_json};

#[test]
fn experiments_on_the_local_home() {
    let home = tempfile::tempdir().unwrap();
    let home = home.path();

    let id = ok(home, &["experiments", "create", "demo"]);
    assert_eq!(id.trim(), "1");
    let dup = kaizen(home, &["experiments", "create", "demo"]);
    assert_eq!(dup.code, 1, "{}", dup.stderr);
    assert!(dup.stderr.contains("already exists"), "{}", dup.stderr);

    let listed = ok_json(home, &["experiments", "list", "--json"]);
    let names: Vec<&str> = listed["experiments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Default", "demo"]);
    assert_eq!(listed["experiments"][1]["experiment_id"], "1");
    assert_eq!(listed["experiments"][1]["lifecycle_stage"], "active");

    // The table for people: the header line, column widths included (IDs are 1 char, the
    // longest name is `Default`, the longest stage `active`).
    let table = ok(home, &["experiments", "list"]);
    let mut lines = table.lines();
    assert_eq!(lines.next().unwrap(), "ID  NAME     STAGE   CREATED");
    assert!(lines.next().unwrap().starts_with("0   Default  active  "));
    assert!(lines.next().unwrap().starts_with("1   demo     active  "));

    let deleted = ok(home, &["experiments", "delete", "demo"]);
    assert!(
        deleted.contains("Deleted experiment 'demo' (id 1)"),
        "{deleted}"
    );
    let listed = ok_json(home, &["experiments", "list", "--json"]);
    assert_eq!(listed["experiments"].as_array().unwrap().len(), 1);
    let all = ok_json(home, &["experiments", "list", "--all", "--json"]);
    assert_eq!(all["experiments"][1]["name"], "demo");
    assert_eq!(all["experiments"][1]["lifecycle_stage"], "deleted");

    // Unknown ids and refused input are user errors: exit code 1 and a clear message.
    for args in [
        &["experiments", "delete", "nope"][..],
        &["runs", "show", "0123456789abcdef"],
        &["runs", "list", "-e", "nope"],
        &["models", "show", "nope"],
        &["models", "history", "nope"],
        &["experiments", "delete", "0"],
    ] {
        let out = kaizen(home, args);
        assert_eq!(out.code, 1, "kaizen {args:?}: {}", out.stderr);
        assert!(out.stdout.is_empty(), "kaizen {args:?}: {}", out.stdout);
        assert!(out.stderr.starts_with("error: "), "{}", out.stderr);
    }
    let out = kaizen(home, &["runs", "list", "-e", "nope"]);
    assert!(out.stderr.contains("'nope'"), "{}", out.stderr);
    let out = kaizen(
        home,
        &["runs", "list", "--tracking-uri", "file:///tmp/mlruns"],
    );
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr.contains("Unsupported tracking URI"),
        "{}",
        out.stderr
    );
}

#[test]
fn unreachable_server_is_an_internal_failure_naming_the_url() {
    let home = tempfile::tempdir().unwrap();
    // Port 1 on the loopback is closed on any sane machine.
    let out = kaizen(
        home.path(),
        &[
            "experiments",
            "list",
            "--tracking-uri",
            "http://127.0.0.1:1",
        ],
    );
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("http://127.0.0.1:1"), "{}", out.stderr);
}

/// POSTs to the server's MLflow API and answers the JSON of a 200.
fn post(server: &Server, path: &str, body: Value) -> Value {
    let (status, v) = server.call("POST", &format!("/api/2.0/mlflow{path}"), &body.to_string());
    assert_eq!(status, 200, "POST {path}: {v}");
    v
}

#[test]
fn runs_and_models_against_a_server() {
    let server_home = tempfile::tempdir().unwrap();
    let server = Server::start(server_home.path(), &[]);
    let url = server.url.as_str();
    // The CLI's own home stays empty: everything below goes to the server.
    let cli_home = tempfile::tempdir().unwrap();
    let home = cli_home.path();

    let exp = post(&server, "/experiments/create", json!({"name": "exp"}))["experiment_id"]
        .as_str()
        .unwrap()
        .to_string();
    let mut run_ids = Vec::new();
    for (i, (lr, rmse)) in [("0.1", 0.5), ("0.01", 0.25)].into_iter().enumerate() {
        let run = post(
            &server,
            "/runs/create",
            json!({"experiment_id": exp, "run_name": format!("run-{i}"), "start_time": 1_000 + i}),
        );
        let run_id = run["run"]["info"]["run_id"].as_str().unwrap().to_string();
        post(
            &server,
            "/runs/log-batch",
            json!({
                "run_id": run_id,
                "params": [{"key": "lr", "value": lr}],
                "metrics": [
                    {"key": "rmse", "value": rmse, "timestamp": 2_000, "step": 1},
                    {"key": "mae", "value": rmse / 2.0, "timestamp": 2_000, "step": 1},
                ],
                "tags": [{"key": "team", "value": "ml"}],
            }),
        );
        post(
            &server,
            "/runs/update",
            json!({"run_id": run_id, "status": "FINISHED", "end_time": 3_000 + i}),
        );
        run_ids.push(run_id);
    }

    // runs list, by experiment name, as JSON.
    let listed = ok_json(
        home,
        &["runs", "list", "--tracking-uri", url, "-e", "exp", "--json"],
    );
    let runs = listed["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2);
    assert!(runs.iter().all(|r| r["info"]["status"] == "FINISHED"));
    let ordered = ok_json(
        home,
        &[
            "runs",
            "list",
            "--tracking-uri",
            url,
            "-e",
            &exp,
            "--order-by",
            "metrics.rmse ASC",
            "--json",
        ],
    );
    assert_eq!(ordered["runs"][0]["info"]["run_id"], run_ids[1].as_str());
    assert_eq!(
        ordered["runs"][0]["data"]["params"][0],
        json!({"key": "lr", "value": "0.01"})
    );
    let filtered = ok_json(
        home,
        &[
            "runs",
            "list",
            "--tracking-uri",
            url,
            "-e",
            "exp",
            "-f",
            "metrics.rmse > 0.3",
            "--json",
        ],
    );
    assert_eq!(filtered["runs"].as_array().unwrap().len(), 1);
    assert_eq!(filtered["runs"][0]["info"]["run_id"], run_ids[0].as_str());

    // MLFLOW_TRACKING_URI works like --tracking-uri; the table shows metric columns, the ordered
    // metric first.
    let out = kaizen_env(
        home,
        &[
            "runs",
            "list",
            "-e",
            "exp",
            "--order-by",
            "metrics.rmse ASC",
        ],
        &[("MLFLOW_TRACKING_URI", url)],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let mut lines = out.stdout.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        ["RUN_ID", "NAME", "STATUS", "STARTED", "rmse", "mae"]
    );
    let first: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(first[0], run_ids[1]);
    assert_eq!(first[1], "run-1");
    assert_eq!(&first[first.len() - 2..], ["0.25", "0.125"]);

    // runs show and compare.
    let shown = ok(home, &["runs", "show", &run_ids[0], "--tracking-uri", url]);
    assert!(shown.starts_with(&format!("Run {}", run_ids[0])), "{shown}");
    assert!(
        shown.contains("Params:") && shown.contains("Metrics (latest):"),
        "{shown}"
    );
    let shown = ok_json(
        home,
        &["runs", "show", &run_ids[0], "--tracking-uri", url, "--json"],
    );
    assert_eq!(shown["run"]["info"]["run_name"], "run-0");

    let compared = ok(
        home,
        &[
            "runs",
            "compare",
            &run_ids[0],
            &run_ids[1],
            "--tracking-uri",
            url,
        ],
    );
    let rows: Vec<Vec<&str>> = compared
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows[0], ["KEY", &run_ids[0][..8], &run_ids[1][..8]]);
    assert!(
        rows.contains(&vec!["params.lr", "0.1", "0.01"]),
        "{compared}"
    );
    assert!(
        rows.contains(&vec!["metrics.rmse", "0.5", "0.25"]),
        "{compared}"
    );
    let compared = ok_json(
        home,
        &[
            "runs",
            "compare",
            &run_ids[0],
            &run_ids[1],
            "--tracking-uri",
            url,
            "--json",
        ],
    );
    assert_eq!(compared["params"]["lr"], json!(["0.1", "0.01"]));
    assert_eq!(compared["metrics"]["mae"], json!([0.25, 0.125]));
    let out = kaizen(
        home,
        &[
            "runs",
            "compare",
            &run_ids[0],
            "nope",
            "--tracking-uri",
            url,
        ],
    );
    assert_eq!(out.code, 1, "{}", out.stderr);

    // The registry: a model with two versions, an alias set and moved with a reason.
    post(&server, "/registered-models/create", json!({"name": "m"}));
    for run_id in &run_ids {
        post(
            &server,
            "/model-versions/create",
            json!({"name": "m", "source": format!("runs:/{run_id}/model"), "run_id": run_id}),
        );
    }
    let set = ok(
        home,
        &[
            "models",
            "alias",
            "m",
            "champion",
            "1",
            "--tracking-uri",
            url,
        ],
    );
    assert!(set.contains("now points at version 1"), "{set}");
    let moved = ok_json(
        home,
        &[
            "models",
            "alias",
            "m",
            "champion",
            "2",
            "--reason",
            "lower rmse",
            "--tracking-uri",
            url,
            "--json",
        ],
    );
    assert_eq!(
        moved,
        json!({"name": "m", "alias": "champion", "version": "2", "previous_version": "1"})
    );

    let history = ok_json(
        home,
        &["models", "history", "m", "--tracking-uri", url, "--json"],
    );
    let entries = history["entries"].as_array().unwrap();
    let last = entries.last().unwrap();
    assert_eq!(last["action"], "set_alias");
    assert_eq!(last["version"], "2");
    assert_eq!(last["reason"], "lower rmse");
    assert_eq!(last["actor"], "tester");
    assert!(
        entries
            .iter()
            .any(|e| e["action"] == "create_registered_model")
    );
    let table = ok(home, &["models", "history", "m", "--tracking-uri", url]);
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        ["TIME", "ACTOR", "ACTION", "VERSION", "DETAILS", "REASON"]
    );
    assert!(
        table.lines().last().unwrap().ends_with("lower rmse"),
        "{table}"
    );

    let versions = ok_json(
        home,
        &["models", "versions", "m", "--tracking-uri", url, "--json"],
    );
    let versions = versions["model_versions"].as_array().unwrap();
    assert_eq!(versions.len(), 2);
    assert_eq!(versions[0]["version"], "2");
    assert_eq!(versions[0]["aliases"], json!(["champion"]));
    assert_eq!(versions[1]["aliases"], json!([]));
    assert_eq!(versions[0]["run_id"], run_ids[1].as_str());

    let models = ok_json(home, &["models", "list", "--tracking-uri", url, "--json"]);
    assert_eq!(models["registered_models"][0]["name"], "m");
    assert_eq!(
        models["registered_models"][0]["aliases"],
        json!([{"alias": "champion", "version": "2"}])
    );
    let table = ok(
        home,
        &["models", "list", "-f", "name = 'm'", "--tracking-uri", url],
    );
    let row: Vec<&str> = table.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(&row[..3], ["m", "2", "champion=2"]);
    let shown = ok(home, &["models", "show", "m", "--tracking-uri", url]);
    assert!(shown.starts_with("Registered model m"), "{shown}");

    let deleted = ok_json(
        home,
        &[
            "models",
            "alias",
            "m",
            "champion",
            "--delete",
            "--tracking-uri",
            url,
            "--json",
        ],
    );
    assert_eq!(deleted["previous_version"], "2");
    let history = ok_json(
        home,
        &["models", "history", "m", "--tracking-uri", url, "--json"],
    );
    assert_eq!(
        history["entries"].as_array().unwrap().last().unwrap()["action"],
        "delete_alias"
    );

    for args in [
        &["models", "show", "nope"][..],
        &["models", "versions", "nope"],
        &["models", "history", "nope"],
        &["models", "alias", "m", "champion", "9"],
        &["models", "alias", "m", "champion"],
        &["runs", "show", "nope"],
    ] {
        let mut args = args.to_vec();
        args.extend(["--tracking-uri", url]);
        let out = kaizen(home, &args);
        assert_eq!(out.code, 1, "kaizen {args:?}: {}", out.stderr);
    }

    // Deleting a run over HTTP.
    let out = ok(
        home,
        &["runs", "delete", &run_ids[0], "--tracking-uri", url],
    );
    assert!(out.contains(&run_ids[0]), "{out}");
    let listed = ok_json(
        home,
        &["runs", "list", "--tracking-uri", url, "-e", "exp", "--json"],
    );
    assert_eq!(listed["runs"].as_array().unwrap().len(), 1);

    // The HTTP commands never touched the CLI's own home: it holds only the default experiment.
    let local = ok_json(home, &["experiments", "list", "--json"]);
    assert_eq!(local["experiments"].as_array().unwrap().len(), 1);
}
