//! `kaizen forecast` and `kaizen quickstart` end to end: the real binary on a home of the test's
//! own, on a CSV the test writes (and, for the quickstart, the electronics example data, with
//! the production loop's webhook received by the test).

mod support;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde_json::Value;
use support::{kaizen, ok, ok_json, receiver};

/// Sales of two products over 200 days from 2024-01-01: a weekly pattern, a level per product,
/// seeded noise, several rows per day.
fn write_sales(path: &Path) {
    let mut state = 11u64;
    let mut noise = move || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1);
        (state >> 33) as f64 / (1u64 << 31) as f64
    };
    let start = chrono_like_date(0);
    let mut csv = String::from("date,product,units\n");
    for day in 0..200 {
        for (product, level) in [("tv", 20.0), ("radio", 8.0)] {
            let weekly = [0.0, 2.0, 3.0, 4.0, 6.0, 12.0, 9.0][day % 7];
            let units = (level + weekly + 10.0 * (noise() - 0.5)).max(0.0).round();
            // Split each day's units over two rows, as transactions.
            let first = (units / 2.0).floor();
            writeln!(csv, "{},{product},{first}", chrono_like_date(day)).unwrap();
            writeln!(csv, "{},{product},{}", chrono_like_date(day), units - first).unwrap();
        }
    }
    assert!(start.starts_with("2024-01-01"));
    std::fs::write(path, csv).unwrap();
}

/// `YYYY-MM-DD` of 2024-01-01 plus `day` days (2024 is a leap year; 200 days stay in it).
fn chrono_like_date(day: usize) -> String {
    let months = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    let (mut month, mut rest) = (0, day);
    while rest >= months[month] {
        rest -= months[month];
        month += 1;
    }
    format!("2024-{:02}-{:02}", month + 1, rest + 1)
}

fn forecast_args<'a>(data: &'a str, output: &'a str) -> Vec<&'a str> {
    vec![
        "forecast",
        "--data",
        data,
        "--date-col",
        "date",
        "--target",
        "units",
        "--group",
        "product",
        "--freq",
        "D",
        "--horizon",
        "7",
        "--output",
        output,
    ]
}

#[test]
fn forecast_backtests_registers_gates_and_writes_the_forecast() {
    let home = tempfile::tempdir().unwrap();
    let data = home.path().join("sales.csv");
    write_sales(&data);
    let output = home.path().join("out").join("forecast.csv");
    let (data_s, out_s) = (data.to_str().unwrap(), output.to_str().unwrap());

    let mut args = forecast_args(data_s, out_s);
    args.extend(["--over-cost", "1", "--under-cost", "4", "--json"]);
    let first = ok_json(home.path(), &args);
    let model_wape = first["model"]["wape"].as_f64().unwrap();
    let snaive = first["baselines"]["seasonal_naive"]["wape"]
        .as_f64()
        .unwrap();
    assert!(
        model_wape < snaive,
        "model {model_wape} vs seasonal naive {snaive}"
    );
    for key in ["mae", "rmse", "wape"] {
        assert!(first["model"][key].is_number(), "{key} in {first}");
        assert!(
            first["baselines"]["naive"][key].is_number(),
            "{key} in {first}"
        );
    }
    assert_eq!(first["model_version"], "1");
    assert_eq!(first["champion_version"], "1");
    assert_eq!(first["gate"]["promoted"], true);
    assert_eq!(first["forecast_path"], out_s);
    assert!(first["costs"]["model"]["cost"].is_number());
    // Two products, seven days each, after the last day (2024-07-18).
    let forecast = std::fs::read_to_string(&output).unwrap();
    let lines: Vec<&str> = forecast.lines().collect();
    assert_eq!(lines[0], "product,date,step,forecast");
    assert_eq!(lines.len(), 1 + 2 * 7);
    assert!(lines[1].contains(",2024-07-19,1,"), "{}", lines[1]);

    // The same data again: the same model, which the gate does not promote over itself.
    let second = ok_json(home.path(), &args);
    assert_eq!(second["model_version"], "2");
    assert_eq!(second["gate"]["promoted"], false);
    assert_eq!(second["champion_version"], "1");
    let history = ok(
        home.path(),
        &["models", "history", "forecast-units", "--json"],
    );
    assert!(
        history.contains("gate.promote") && history.contains("gate.reject"),
        "{history}"
    );

    // The search's trials are nested runs of the forecast's run.
    let run_id = first["run_id"].as_str().unwrap();
    let runs = ok(
        home.path(),
        &["runs", "list", "--experiment", "forecast", "--json"],
    );
    assert!(
        runs.matches(run_id).count() >= 4,
        "trials under {run_id}: {runs}"
    );
}

fn fails_with(home: &Path, args: &[&str], expected: &str) {
    let out = kaizen(home, args);
    assert_eq!(out.code, 1, "kaizen {args:?}: {}{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains(expected),
        "expected `{expected}` in: {}",
        out.stderr
    );
}

#[test]
fn bad_input_gets_a_message_naming_the_column_or_value() {
    let home = tempfile::tempdir().unwrap();
    let dir = home.path();
    let write = |name: &str, text: &str| -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let bad_date = write(
        "bad_date.csv",
        "date,product,units\n2024-01-01,a,1\nlast tuesday,a,2\n",
    );
    let text_target = write(
        "text_target.csv",
        "date,product,units\n2024-01-01,a,1\n2024-01-02,a,many\n",
    );
    let empty_group = write(
        "empty_group.csv",
        "date,product,units\n2024-01-01,a,1\n2024-01-02,,2\n",
    );
    let out = dir.join("f.csv");
    let o = out.to_str().unwrap();

    fails_with(
        dir,
        &forecast_args(bad_date.to_str().unwrap(), o),
        "the date column 'date' has a value that is not a date in row 2: 'last tuesday'",
    );
    fails_with(
        dir,
        &forecast_args(text_target.to_str().unwrap(), o),
        "the target column 'units' has text in row 2: 'many'",
    );
    fails_with(
        dir,
        &forecast_args(empty_group.to_str().unwrap(), o),
        "the group column 'product' is empty in row 2",
    );

    let sales = dir.join("sales.csv");
    write_sales(&sales);
    let mut zero = forecast_args(sales.to_str().unwrap(), o);
    zero[12] = "0";
    fails_with(dir, &zero, "--horizon must be at least 1 period");
    let mut weekly_short = forecast_args(sales.to_str().unwrap(), o);
    weekly_short[10] = "W";
    fails_with(dir, &weekly_short, "too few");
    let mut missing = forecast_args(sales.to_str().unwrap(), o);
    missing[4] = "day";
    fails_with(
        dir,
        &missing,
        "the date column 'day' is not in the data (columns: date, product, units)",
    );
    assert!(!out.exists(), "no forecast is written for bad input");
}

/// The README's main command on the electronics example (its data comes from `scripts/setup.sh`).
#[test]
fn quickstart_runs_the_electronics_pipeline_and_gates_the_forecast() {
    let project = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/electronics");
    if !project.join("data/electronic_sales.csv").exists() {
        eprintln!("skipped: run scripts/setup.sh to copy the electronics data");
        return;
    }
    let home = tempfile::tempdir().unwrap();
    let (hook, received) = receiver();
    let events = home.path().join("events.toml");
    std::fs::write(
        &events,
        format!(
            "[[subscribers]]\nname = \"ops\"\nkind = \"webhook\"\nurl = \"{hook}\"\n\
             events = [\"drift.detected\", \"retrain.finished\", \"alias.moved\"]\n"
        ),
    )
    .unwrap();
    let summary: Value = ok_json(
        home.path(),
        &[
            "quickstart",
            "--project",
            project.to_str().unwrap(),
            "--events",
            events.to_str().unwrap(),
            "--json",
        ],
    );
    // The production loop: drifted traffic, the alert, the retraining, the gate, the swap.
    assert_eq!(summary["drift_detected"], true, "{summary}");
    assert_eq!(summary["promoted"], true, "{summary}");
    let retrained = summary["retrained_version"].as_str().unwrap().to_string();
    let serving = &summary["serving"];
    assert_eq!(serving["served_version"], "1");
    assert_eq!(
        serving["answering_version"],
        retrained.as_str(),
        "{serving}"
    );
    assert!(
        serving["drifted_columns"]
            .as_array()
            .unwrap()
            .contains(&Value::from("Unit Price")),
        "{serving}"
    );
    let (before, after) = (
        serving["mae_before"].as_f64().unwrap(),
        serving["mae_after"].as_f64().unwrap(),
    );
    assert!(after < 0.5 * before, "MAE before {before}, after {after}");
    assert!(serving["retrain"]["traffic_rows"].as_u64().unwrap() >= 800);
    // The subscriber got the alert, the retraining and the alias move (delivered before exit).
    let kinds: Vec<String> = received
        .lock()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap_or_default().to_string())
        .collect();
    for kind in ["drift.detected", "retrain.finished", "alias.moved"] {
        assert!(kinds.iter().any(|k| k == kind), "{kind} not in {kinds:?}");
    }
    let drift = received
        .lock()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "drift.detected")
        .cloned()
        .unwrap();
    assert_eq!(
        drift["payload"]["name"], "electronics-order-value",
        "{drift}"
    );
    // The new version is what the registry calls champion, and what the log says answered last.
    let champion = ok_json(
        home.path(),
        &["models", "show", "electronics-order-value", "--json"],
    );
    assert!(champion.to_string().contains("champion"), "{champion}");
    let last = ok_json(
        home.path(),
        &[
            "sql",
            "SELECT version FROM inference_log WHERE model = 'electronics-order-value' ORDER BY timestamp DESC LIMIT 1",
            "--json",
        ],
    );
    assert!(
        last.to_string().contains(&format!("\"{retrained}\"")),
        "{last}"
    );
    let model = summary["model"]["wape"].as_f64().unwrap();
    let snaive = summary["baselines"]["seasonal_naive"]["wape"]
        .as_f64()
        .unwrap();
    assert!(
        model <= 0.9 * snaive,
        "model WAPE {model} vs seasonal naive {snaive}"
    );
    assert_eq!(summary["champion_version"], "1");
    assert_eq!(summary["model_name"], "electronics-units");
    let version = ok_json(
        home.path(),
        &["models", "show", "electronics-units", "--json"],
    );
    assert!(version.to_string().contains("champion"), "{version}");
    let lineage = ok(
        home.path(),
        &["lineage", "models:/electronics-units/1", "--json"],
    );
    assert!(lineage.contains("daily_units@1"), "{lineage}");
}

/// The `forecast` step kind in a project's pipeline: ingest, then forecast; the model is
/// registered with the ingested table's catalog version as lineage, and a rerun is cached.
#[test]
fn a_pipeline_forecast_step_registers_and_gates() {
    let home = tempfile::tempdir().unwrap();
    let project = home.path().join("project");
    std::fs::create_dir_all(project.join("data")).unwrap();
    write_sales(&project.join("data").join("sales.csv"));
    std::fs::write(
        project.join("kaizen.toml"),
        r#"
[pipeline]
name = "shop"

[[steps]]
name = "sales"
kind = "ingest"
with = { path = "data/sales.csv" }

[[steps]]
name = "units"
kind = "forecast"
inputs = ["sales.sales.parquet"]
with = { date_column = "date", target = "units", groups = ["product"], horizon = 7, search = { max_depth = [3, 4] }, model = "shop-units" }
"#,
    )
    .unwrap();
    let dir = project.to_str().unwrap();
    let run = ok_json(home.path(), &["pipeline", "run", dir, "--json"]);
    assert_eq!(run["status"], "succeeded", "{run}");
    let units = run["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "units")
        .unwrap();
    assert_eq!(
        units["outputs"],
        serde_json::json!(["forecast.csv", "summary.json"])
    );
    let model = ok_json(home.path(), &["models", "show", "shop-units", "--json"]);
    assert!(model.to_string().contains("champion"), "{model}");
    let lineage = ok(home.path(), &["lineage", "models:/shop-units/1", "--json"]);
    assert!(lineage.contains("sales@1"), "{lineage}");
    let again = ok_json(home.path(), &["pipeline", "run", dir, "--json"]);
    let units = again["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "units")
        .unwrap();
    assert_eq!(units["status"], "cached", "{again}");

    // A bad option is the step's failure, naming it.
    let text = std::fs::read_to_string(project.join("kaizen.toml")).unwrap();
    std::fs::write(
        project.join("kaizen.toml"),
        text.replace("horizon = 7", "horizon = 7, horizn = 3"),
    )
    .unwrap();
    let out = kaizen(home.path(), &["pipeline", "run", dir]);
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    assert!(out.stderr.contains("horizn"), "{}", out.stderr);
}

/// The breast cancer example: ingest, validate, and a `train` step with a small search that
/// reaches 95% test accuracy and registers the model (data from `scripts/setup.sh`).
#[test]
fn the_breast_cancer_pipeline_trains_to_95_percent() {
    let project = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/breast-cancer");
    if !project.join("data/breast_cancer.csv").exists() {
        eprintln!("skipped: run scripts/setup.sh to write the breast cancer data");
        return;
    }
    let home = tempfile::tempdir().unwrap();
    let run = ok_json(
        home.path(),
        &["pipeline", "run", project.to_str().unwrap(), "--json"],
    );
    assert_eq!(run["status"], "succeeded", "{run}");
    let good = ok_json(
        home.path(),
        &[
            "runs",
            "list",
            "-e",
            "breast-cancer",
            "-f",
            "metrics.test_accuracy >= 0.95",
            "--json",
        ],
    );
    assert!(
        !good["runs"].as_array().unwrap().is_empty(),
        "no run reached 95%: {good}"
    );
    let model = ok_json(home.path(), &["models", "show", "breast-cancer", "--json"]);
    assert!(model.to_string().contains("champion"), "{model}");
}
