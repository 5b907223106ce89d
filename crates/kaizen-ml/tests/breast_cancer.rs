//! The Wisconsin breast cancer data (scikit-learn's copy, written by `scripts/setup.sh` to
//! `examples/breast-cancer/data/breast_cancer.csv`): gradient-boosted trees and a scaled logistic
//! regression both reach 95% accuracy on a seeded, stratified 20% test split. Skipped, with a
//! note, where the file is missing.

use std::path::PathBuf;

use kaizen_data::{Fractions, ReadOptions, Source, SplitSpec, read, split};
use kaizen_ml::learner::GbdtParams;
use kaizen_ml::linear::LogisticParams;
use kaizen_ml::metrics::classification;
use kaizen_ml::preprocess::{ColumnSpec, Encoding, Impute};
use kaizen_ml::{ColumnData, Frame, LearnerSpec, PreprocessSpec, Task, fit_pipeline};

fn numeric(frame: &Frame, scale: bool) -> PreprocessSpec {
    PreprocessSpec {
        columns: frame
            .names
            .iter()
            .map(|name| ColumnSpec {
                name: name.clone(),
                encoding: Encoding::Numeric {
                    impute: Impute::Mean,
                    scale,
                },
            })
            .collect(),
    }
}

fn features_and_target(table: &kaizen_data::Table) -> (Frame, Vec<f64>) {
    let (frame, target) = Frame::from_table(table)
        .unwrap()
        .split_off("target")
        .unwrap();
    let ColumnData::Numeric(y) = target else {
        panic!("target is not numeric")
    };
    (frame, y)
}

#[test]
fn gbdt_and_logistic_reach_95_percent() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/breast-cancer/data/breast_cancer.csv");
    if !path.exists() {
        eprintln!(
            "skipped: {} is missing (scripts/setup.sh writes it)",
            path.display()
        );
        return;
    }
    let table = read(&Source::path(&path), &ReadOptions::default()).unwrap();
    assert_eq!(table.num_rows(), 569);
    let spec = SplitSpec::Stratified {
        column: "target".into(),
        fractions: Fractions::new([("train", 0.8), ("test", 0.2)]),
        seed: 42,
    };
    let parts = split(&table, &spec).unwrap();
    let (train, y_train) = features_and_target(&parts[0].1);
    let (test, y_test) = features_and_target(&parts[1].1);
    assert_eq!(train.names.len(), 30);

    let learners = [
        (
            LearnerSpec::Gbdt(GbdtParams::default()),
            numeric(&train, false),
        ),
        (
            LearnerSpec::Logistic(LogisticParams {
                max_iterations: 500,
                ..LogisticParams::default()
            }),
            numeric(&train, true),
        ),
    ];
    for (learner, preprocess) in learners {
        let pipeline =
            fit_pipeline(&learner, &preprocess, Task::Binary, &train, &y_train, None).unwrap();
        let metrics = classification(&y_test, &pipeline.predict_proba(&test).unwrap());
        eprintln!("{}: {:?}", learner.name(), metrics.to_pairs());
        assert!(
            metrics.accuracy >= 0.95,
            "{}: test accuracy {} < 0.95",
            learner.name(),
            metrics.accuracy
        );
    }
}
