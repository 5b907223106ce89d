//! Hyperparameter search: nested runs, failures, and the best trial.

use std::collections::BTreeMap;

use kaizen_core::{RunStatus, ViewType};
use kaizen_ml::LearnerSpec;
use kaizen_ml::learner::GbdtParams;
use kaizen_ml::metrics::regression;
use kaizen_train::{SearchSpace, Strategy, TrainError, search};
use serde_json::json;

use crate::{Env, data};

fn space() -> SearchSpace {
    SearchSpace(BTreeMap::from([
        ("max_depth".into(), vec![json!(1), json!(4)]),
        ("learning_rate".into(), vec![json!(0.01), json!(0.3)]),
    ]))
}

fn base() -> LearnerSpec {
    LearnerSpec::Gbdt(GbdtParams {
        iterations: 30,
        ..GbdtParams::default()
    })
}

/// Trains on the even rows and scores WAPE on the odd ones.
fn objective(spec: &LearnerSpec) -> Result<BTreeMap<String, f64>, String> {
    let (x, y, _) = data();
    let even: Vec<usize> = (0..x.rows).step_by(2).collect();
    let odd: Vec<usize> = (1..x.rows).step_by(2).collect();
    let pick = |index: &[usize]| index.iter().map(|&i| y[i]).collect::<Vec<_>>();
    let model = kaizen_ml::fit(
        spec,
        kaizen_ml::Task::Regression,
        &x.take_rows(&even),
        &pick(&even),
        None,
    )
    .map_err(|e| e.to_string())?;
    let m = regression(&pick(&odd), &model.predict(&x.take_rows(&odd)));
    Ok(BTreeMap::from([
        ("wape".into(), m.wape),
        ("rmse".into(), m.rmse),
    ]))
}

#[tokio::test]
async fn a_grid_search_tracks_trials_as_nested_runs_and_picks_the_best() {
    let env = Env::new().await;
    let parent = env.run("search").await;
    let result = search(
        &env.services,
        &env.experiment_id,
        &parent,
        &base(),
        &space(),
        &Strategy::Grid,
        2,
        "wape",
        true,
        objective,
    )
    .await
    .unwrap();
    assert_eq!(result.trials.len(), 4);
    // Deep trees with a high rate fit best in 30 rounds.
    let LearnerSpec::Gbdt(best) = &result.best else {
        panic!("not gbdt")
    };
    assert_eq!((best.max_depth, best.learning_rate), (4, 0.3));
    assert_eq!(best.iterations, 30, "the base settings stay");
    let min = result
        .trials
        .iter()
        .map(|t| t.metrics["wape"])
        .fold(f64::INFINITY, f64::min);
    assert_eq!(result.best_metrics["wape"], min);
    let best_trial = result
        .trials
        .iter()
        .find(|t| t.run_id == result.best_run_id)
        .unwrap();
    assert_eq!(best_trial.spec, result.best);

    let runs = env
        .services
        .tracking
        .search_runs(
            std::slice::from_ref(&env.experiment_id),
            &format!("tags.mlflow.parentRunId = '{parent}'"),
            ViewType::ActiveOnly,
            &["tags.`kaizen.trial` ASC".to_string()],
            None,
            None,
        )
        .await
        .unwrap()
        .items;
    assert_eq!(runs.len(), 4);
    for (n, run) in runs.iter().enumerate() {
        assert_eq!(run.info.status, RunStatus::Finished);
        let tag = |k: &str| {
            run.data
                .tags
                .iter()
                .find(|t| t.key == k)
                .map(|t| t.value.clone())
        };
        assert_eq!(tag("kaizen.trial"), Some(n.to_string()));
        let param = |k: &str| {
            run.data
                .params
                .iter()
                .find(|p| p.key == k)
                .map(|p| p.value.clone())
        };
        let trial = &result.trials[n];
        assert_eq!(trial.run_id, run.info.run_id);
        let LearnerSpec::Gbdt(p) = &trial.spec else {
            panic!("not gbdt")
        };
        assert_eq!(param("max_depth"), Some(p.max_depth.to_string()));
        assert_eq!(param("learner"), Some("gbdt".into()));
        assert_eq!(param("iterations"), Some("30".into()));
        assert_eq!(param("early_stopping_rounds"), Some("None".into()));
        let wape = run.data.metrics.iter().find(|m| m.key == "wape").unwrap();
        assert_eq!(wape.value, trial.metrics["wape"]);
    }

    let parent_run = env.services.tracking.get_run(&parent).await.unwrap();
    let param = parent_run
        .data
        .params
        .iter()
        .find(|p| p.key == "search.best_run_id")
        .unwrap();
    assert_eq!(param.value, result.best_run_id);
    let metric = parent_run
        .data
        .metrics
        .iter()
        .find(|m| m.key == "search.best_wape")
        .unwrap();
    assert_eq!(metric.value, min);
}

#[tokio::test]
async fn failed_and_nan_trials_never_win() {
    let env = Env::new().await;
    let parent = env.run("search").await;
    // The best settings fail, the next best score NaN: the third best wins.
    let result = search(
        &env.services,
        &env.experiment_id,
        &parent,
        &base(),
        &space(),
        &Strategy::Random { trials: 4, seed: 1 },
        4,
        "score",
        false,
        |spec: &LearnerSpec| {
            let LearnerSpec::Gbdt(p) = spec else {
                panic!("not gbdt")
            };
            match (p.max_depth, p.learning_rate) {
                (4, 0.3) => Err("out of memory".to_string()),
                (1, 0.3) => Ok(BTreeMap::from([("score".into(), f64::NAN)])),
                (4, _) => Ok(BTreeMap::from([("score".into(), 2.0)])),
                _ => Ok(BTreeMap::from([("score".into(), 1.0)])),
            }
        },
    )
    .await
    .unwrap();
    let LearnerSpec::Gbdt(best) = &result.best else {
        panic!("not gbdt")
    };
    assert_eq!((best.max_depth, best.learning_rate), (4, 0.01));
    let failed: Vec<_> = result.trials.iter().filter(|t| t.error.is_some()).collect();
    assert_eq!(failed.len(), 1);
    let run = env
        .services
        .tracking
        .get_run(&failed[0].run_id)
        .await
        .unwrap();
    assert_eq!(run.info.status, RunStatus::Failed);
    assert!(
        run.data
            .tags
            .iter()
            .any(|t| t.key == "kaizen.trial.error" && t.value == "out of memory")
    );

    // A random draw smaller than the grid runs that many distinct trials.
    let parent = env.run("search-2").await;
    let result = search(
        &env.services,
        &env.experiment_id,
        &parent,
        &base(),
        &space(),
        &Strategy::Random { trials: 3, seed: 1 },
        1,
        "score",
        true,
        |_: &LearnerSpec| Ok(BTreeMap::from([("score".into(), 1.0)])),
    )
    .await
    .unwrap();
    assert_eq!(result.trials.len(), 3);
    assert_eq!(
        result.best_run_id, result.trials[0].run_id,
        "ties go to the first"
    );

    // No usable trial is an error that says why.
    let parent = env.run("search-3").await;
    let err = search(
        &env.services,
        &env.experiment_id,
        &parent,
        &base(),
        &space(),
        &Strategy::Grid,
        2,
        "score",
        true,
        |_: &LearnerSpec| Err("bad data".to_string()),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&err, TrainError::NoSuccessfulTrial { first_error: Some(e), .. } if e == "bad data"),
        "{err}"
    );

    // An unknown key is named before any run starts.
    let mut bad = space();
    bad.0.insert("depth".into(), vec![json!(3)]);
    let err = search(
        &env.services,
        &env.experiment_id,
        &parent,
        &base(),
        &bad,
        &Strategy::Grid,
        2,
        "score",
        true,
        |_: &LearnerSpec| Ok(BTreeMap::new()),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&err, TrainError::BadSetting { key, .. } if key == "depth"),
        "{err}"
    );
}
