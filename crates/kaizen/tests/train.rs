//! `kaizen train` end to end: the real binary on a home of the test's own, on the breast cancer
//! data (`scripts/setup.sh` writes it; skipped with a note where it is missing) and on small
//! tables the tests write.

mod support;

use std::path::{Path, PathBuf};

use serde_json::Value;
use support::{kaizen, ok, ok_json};

fn breast_cancer() -> Option<PathBuf> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/breast-cancer/data/breast_cancer.csv");
    if path.exists() {
        Some(path)
    } else {
        eprintln!(
            "skipped: {} is missing (scripts/setup.sh writes it)",
            path.display()
        );
        None
    }
}

fn test_accuracy(summary: &Value) -> f64 {
    summary["metrics"]["test"]["accuracy"]
        .as_f64()
        .unwrap_or_else(|| panic!("no test accuracy in {summary}"))
}

#[test]
fn gbdt_with_a_search_and_logistic_reach_95_percent_on_breast_cancer() {
    let Some(data) = breast_cancer() else { return };
    let home = tempfile::tempdir().unwrap();
    let data = data.to_str().unwrap();
    let base = ["train", "--data", data, "--target", "target"];

    let mut args = base.to_vec();
    args.extend(["--learner", "gbdt", "--search", "max_depth=3,5", "--json"]);
    let gbdt = ok_json(home.path(), &args);
    eprintln!("gbdt: {}", gbdt["metrics"]);
    assert_eq!(gbdt["task"], "binary");
    assert_eq!(gbdt["learner"], "gbdt");
    assert_eq!(gbdt["trials"], 2);
    assert!(test_accuracy(&gbdt) >= 0.95, "{gbdt}");
    for split in ["train", "valid", "test"] {
        for key in ["accuracy", "log_loss", "f1", "auc"] {
            assert!(gbdt["metrics"][split][key].is_number(), "{split} {key}");
        }
    }
    assert_eq!(gbdt["model_version"], "1");
    assert_eq!(gbdt["gate"]["promoted"], true);
    assert_eq!(gbdt["champion_version"], "1");
    let depth = gbdt["best_params"]["max_depth"].as_u64().unwrap();
    assert!(depth == 3 || depth == 5, "{}", gbdt["best_params"]);

    let mut args = base.to_vec();
    args.extend(["--learner", "logistic", "--json"]);
    let logistic = ok_json(home.path(), &args);
    eprintln!("logistic: {}", logistic["metrics"]);
    assert_eq!(logistic["learner"], "logistic");
    assert!(test_accuracy(&logistic) >= 0.95, "{logistic}");
    assert_eq!(logistic["model_version"], "2");
    // Each model is scored with its own preprocessing: the gate compares real accuracies.
    let gate = &logistic["gate"];
    assert_eq!(gate["champion_version"], "1");
    let champion = gate["champion_value"].as_f64().unwrap();
    assert!(
        (champion - test_accuracy(&gbdt)).abs() < 1e-12,
        "champion scored {champion}, its own test accuracy is {}",
        test_accuracy(&gbdt)
    );

    // The run has its metrics and charts.
    let run_id = logistic["run_id"].as_str().unwrap();
    let run = ok(home.path(), &["runs", "show", run_id, "--json"]);
    for key in ["train_accuracy", "valid_accuracy", "test_accuracy"] {
        assert!(run.contains(key), "{key} in {run}");
    }
    let artifacts = home_files(home.path());
    for name in ["confusion.svg", "metrics.json"] {
        assert!(
            artifacts.iter().any(|p| p.ends_with(name)),
            "{name} in {artifacts:?}"
        );
    }
}

/// Every file under `dir`.
fn home_files(dir: &Path) -> Vec<PathBuf> {
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

/// 120 rows: a number, a category and a text label.
fn write_labels(path: &Path) {
    let mut csv = String::from("size,color,label\n");
    for i in 0..120 {
        let size = (i % 17) as f64 * 0.7;
        let color = ["red", "blue", "green"][i % 3];
        let label = if size > 5.0 { "big" } else { "small" };
        csv.push_str(&format!("{size},{color},{label}\n"));
    }
    std::fs::write(path, csv).unwrap();
}

#[test]
fn bad_targets_are_refused_with_the_column_named() {
    let home = tempfile::tempdir().unwrap();
    let data = home.path().join("labels.csv");
    write_labels(&data);
    let data = data.to_str().unwrap();

    let out = kaizen(
        home.path(),
        &["train", "--data", data, "--target", "no_such_column"],
    );
    assert_eq!(
        out.code, 1,
        "stdout: {}\nstderr: {}",
        out.stdout, out.stderr
    );
    assert!(out.stderr.contains("`no_such_column`"), "{}", out.stderr);

    let out = kaizen(
        home.path(),
        &[
            "train",
            "--data",
            data,
            "--target",
            "label",
            "--task",
            "regression",
        ],
    );
    assert_eq!(
        out.code, 1,
        "stdout: {}\nstderr: {}",
        out.stdout, out.stderr
    );
    assert!(
        out.stderr.contains("`label`") && out.stderr.contains("text"),
        "{}",
        out.stderr
    );

    // The same text target is a classification task by default.
    let summary = ok_json(
        home.path(),
        &[
            "train",
            "--data",
            data,
            "--target",
            "label",
            "--no-gate",
            "--json",
        ],
    );
    assert_eq!(summary["task"], "binary");
    assert_eq!(summary["labels"], serde_json::json!(["big", "small"]));
    assert!(summary["gate"].is_null());
}
