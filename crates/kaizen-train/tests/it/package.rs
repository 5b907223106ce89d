//! Model packages: write, read back, and the precise errors of broken ones.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use kaizen_train::package::{EXAMPLE_FILE, META_FILE, MLMODEL_FILE, MODEL_FILE};
use kaizen_train::{
    ColumnSpec, Lineage, PackageMeta, TrainError, git_state, read_package, write_package,
};

use crate::{biased_model, data};

fn lineage() -> Lineage {
    Lineage {
        run_id: "r1".into(),
        datasets: vec!["sales@3".into()],
        pipeline: Some("forecast".into()),
        git_commit: Some("abc".into()),
        git_dirty: Some(false),
        kaizen_version: "0.1.0".into(),
    }
}

#[test]
fn a_package_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let pkg = dir.path().join("pkg");
    let model = biased_model([0.0, 0.0]);
    let (x, _, _) = data();
    let mut meta = PackageMeta::new(&model, lineage());
    meta.metrics = BTreeMap::from([("wape".into(), 0.05), ("mape".into(), f64::NAN)]);
    meta.extra = serde_json::json!({"horizon": 7});
    let written = write_package(&pkg, &model, meta, &x).unwrap();
    assert_eq!(written.format_version, 1);
    assert_eq!(written.flavor, "kaizen");
    assert_eq!(written.learner, "gbdt");
    assert_eq!(
        written.signature.inputs,
        vec![ColumnSpec::double("x"), ColumnSpec::double("seg")]
    );
    assert_eq!(
        written.signature.outputs,
        vec![ColumnSpec::double("prediction")]
    );
    // Trees export to ONNX.
    assert_eq!(
        written.onnx.as_deref(),
        Some("model.onnx"),
        "{:?}",
        written.onnx_error
    );
    assert!(std::fs::metadata(pkg.join("model.onnx")).unwrap().len() > 100);

    let back = read_package(&pkg).unwrap();
    assert_eq!(back.model, model);
    assert_eq!(back.meta.lineage, lineage());
    assert_eq!(back.meta.extra, serde_json::json!({"horizon": 7}));
    assert_eq!(back.meta.metrics["wape"], 0.05);
    assert!(back.meta.metrics["mape"].is_nan());
    assert_eq!(back.meta.created_at, written.created_at);
    assert_eq!(back.model.predict(&x), model.predict(&x));

    let example: serde_json::Value =
        serde_json::from_slice(&std::fs::read(pkg.join(EXAMPLE_FILE)).unwrap()).unwrap();
    assert_eq!(example["columns"], serde_json::json!(["x", "seg"]));
    assert_eq!(example["data"].as_array().unwrap().len(), 5);
    assert_eq!(example["data"][1], serde_json::json!([0.05, 0.0]));

    let mlmodel = std::fs::read_to_string(pkg.join(MLMODEL_FILE)).unwrap();
    assert!(mlmodel.contains("flavors:\n  kaizen:\n"), "{mlmodel}");
    assert!(mlmodel.contains("run_id: 'r1'\n"), "{mlmodel}");
    assert!(mlmodel.contains(
        r#"  inputs: '[{"type": "double", "name": "x", "required": true}, {"type": "double", "name": "seg", "required": true}]'"#
    ), "{mlmodel}");
    assert!(
        mlmodel.contains("  onnx:\n    data: 'model.onnx'\n    onnx_model_path: 'model.onnx'\n"),
        "{mlmodel}"
    );
    assert!(mlmodel.contains("model_uuid: '"), "{mlmodel}");
    assert!(mlmodel.contains("utc_time_created: '20"), "{mlmodel}");
}

#[test]
fn broken_packages_say_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let model = biased_model([0.0, 0.0]);
    let (x, _, _) = data();
    let write = |name: &str| {
        let pkg = dir.path().join(name);
        write_package(&pkg, &model, PackageMeta::new(&model, lineage()), &x).unwrap();
        pkg
    };
    let edit_meta = |pkg: &Path, edit: &dyn Fn(&mut serde_json::Value)| {
        let path = pkg.join(META_FILE);
        let mut v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        edit(&mut v);
        std::fs::write(&path, serde_json::to_vec(&v).unwrap()).unwrap();
    };

    let err = read_package(&dir.path().join("nothing")).unwrap_err();
    assert!(
        matches!(&err, TrainError::MissingFile { path } if path.ends_with(META_FILE)),
        "{err}"
    );

    let pkg = write("no-model");
    std::fs::remove_file(pkg.join(MODEL_FILE)).unwrap();
    let err = read_package(&pkg).unwrap_err();
    assert!(
        matches!(&err, TrainError::MissingFile { path } if path.ends_with(MODEL_FILE)),
        "{err}"
    );
    assert!(err.to_string().contains("model.json` is missing"), "{err}");

    let pkg = write("future");
    edit_meta(&pkg, &|v| v["format_version"] = serde_json::json!(2));
    let err = read_package(&pkg).unwrap_err();
    assert!(
        matches!(&err, TrainError::FormatVersion { found, .. } if found == "2"),
        "{err}"
    );

    let pkg = write("renamed");
    edit_meta(&pkg, &|v| {
        v["signature"]["inputs"][1]["name"] = serde_json::json!("store")
    });
    let err = read_package(&pkg).unwrap_err();
    assert!(matches!(err, TrainError::Inconsistent { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("the model's features [x, seg] are not the signature's inputs [x, store]"),
        "{err}"
    );

    // Writing checks the same things.
    let mut meta = PackageMeta::new(&model, lineage());
    meta.signature.inputs.reverse();
    let err = write_package(&dir.path().join("w"), &model, meta, &x).unwrap_err();
    assert!(matches!(err, TrainError::Inconsistent { .. }), "{err}");
    let other = kaizen_ml::Matrix::from_columns(vec!["a".into()], vec![vec![1.0]]);
    let err = write_package(
        &dir.path().join("w"),
        &model,
        PackageMeta::new(&model, lineage()),
        &other,
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("input example's columns [a]"),
        "{err}"
    );
}

#[test]
fn git_state_inside_and_outside_a_repository() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(git_state(dir.path()), (None, None));
    let git = |args: &[&str]| {
        Command::new("git")
            .arg("-C")
            .arg(dir.path())
            .args(["-c", "user.name=t", "-c", "user.email=t@example.invalid"])
            .args(args)
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    };
    if !git(&["init", "-q"]) {
        eprintln!("note: no git; skipping the repository half");
        return;
    }
    assert!(git(&["commit", "-q", "--allow-empty", "-m", "first"]));
    let (commit, dirty) = git_state(dir.path());
    assert_eq!(commit.as_deref().map(str::len), Some(40));
    assert_eq!(dirty, Some(false));
    std::fs::write(dir.path().join("new.txt"), "x").unwrap();
    assert_eq!(git_state(dir.path()).1, Some(true));
    let lineage = Lineage::current("r", &[], None, dir.path());
    assert_eq!(lineage.git_commit, commit);
    assert_eq!(lineage.kaizen_version, env!("CARGO_PKG_VERSION"));
}
