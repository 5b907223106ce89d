//! Experiments, runs, metrics and search on every backend.

use kaizen_core::search::{parse_filter, parse_order_by};
use kaizen_core::{ErrorKind, LifecycleStage, Metric, RunInfo, RunStatus, Tag, ViewType};
use kaizen_store::SearchQuery;

use crate::backends;

fn run_info(id: &str, exp: &str, start: i64) -> RunInfo {
    RunInfo {
        run_id: id.to_string(),
        run_name: format!("run-{id}"),
        experiment_id: exp.to_string(),
        user_id: "tester".into(),
        status: RunStatus::Running,
        start_time: Some(start),
        end_time: None,
        artifact_uri: format!("mlflow-artifacts:/{exp}/{id}/artifacts"),
        lifecycle_stage: LifecycleStage::Active,
    }
}

fn query(filter: &str, order: &[&str]) -> SearchQuery {
    SearchQuery {
        filter: parse_filter(filter).unwrap(),
        order_by: order.iter().map(|o| parse_order_by(o).unwrap()).collect(),
        max_results: 100,
        offset: 0,
    }
}

#[tokio::test]
async fn experiments_lifecycle() {
    for b in backends().await {
        let s = &b.store;
        let default = s.get_experiment("0").await.unwrap();
        assert_eq!(default.name, "Default", "{}", b.name);
        let id = s
            .create_experiment("exp", None, "mlflow-artifacts:/", &[Tag::new("t", "v")])
            .await
            .unwrap();
        let e = s.get_experiment(&id).await.unwrap();
        assert_eq!(e.artifact_location, format!("mlflow-artifacts:/{id}"));
        assert_eq!(e.tags, vec![Tag::new("t", "v")]);
        let dup = s
            .create_experiment("exp", None, "x", &[])
            .await
            .unwrap_err();
        assert_eq!(dup.kind, ErrorKind::AlreadyExists, "{}", b.name);
        assert_eq!(
            s.get_experiment("999").await.unwrap_err().kind,
            ErrorKind::NotFound
        );

        s.create_run(&run_info("r1", &id, 1), &[]).await.unwrap();
        s.set_run_lifecycle("r1", LifecycleStage::Deleted)
            .await
            .unwrap();
        // Deletion times are in milliseconds; keep the two deletions apart.
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        s.create_run(&run_info("r2", &id, 2), &[]).await.unwrap();
        s.set_experiment_lifecycle(&id, LifecycleStage::Deleted)
            .await
            .unwrap();
        assert_eq!(
            s.get_run("r2").await.unwrap().info.lifecycle_stage,
            LifecycleStage::Deleted
        );
        s.set_experiment_lifecycle(&id, LifecycleStage::Active)
            .await
            .unwrap();
        // Restoring the experiment brings back the run it took, not the one deleted before.
        assert_eq!(
            s.get_run("r2").await.unwrap().info.lifecycle_stage,
            LifecycleStage::Active
        );
        assert_eq!(
            s.get_run("r1").await.unwrap().info.lifecycle_stage,
            LifecycleStage::Deleted
        );

        let found = s
            .search_experiments(ViewType::All, &query("name LIKE 'ex%'", &[]))
            .await
            .unwrap();
        assert_eq!(found.len(), 1);
        let found = s
            .search_experiments(ViewType::All, &query("name LIKE 'EX%'", &[]))
            .await
            .unwrap();
        assert_eq!(found.len(), 0, "LIKE is case-sensitive on {}", b.name);
        let found = s
            .search_experiments(ViewType::All, &query("name ILIKE 'EX%'", &[]))
            .await
            .unwrap();
        assert_eq!(found.len(), 1);
        let found = s
            .search_experiments(ViewType::All, &query("tags.t = 'v'", &[]))
            .await
            .unwrap();
        assert_eq!(found.len(), 1);
    }
}

#[tokio::test]
async fn metrics_latest_and_history() {
    for b in backends().await {
        let s = &b.store;
        s.create_run(&run_info("r", "0", 1), &[]).await.unwrap();
        let points = vec![
            Metric::new("m", 1.0, 100, 0),
            Metric::new("m", 3.0, 50, 2),
            Metric::new("m", 2.0, 200, 1),
            Metric::new("n", f64::NAN, 1, 0),
            Metric::new("p", f64::INFINITY, 1, 0),
            Metric::new("q", f64::NEG_INFINITY, 1, 0),
        ];
        s.log_batch("r", &points, &[], &[]).await.unwrap();
        // Greatest step wins over a later timestamp.
        s.log_batch("r", &[Metric::new("m", 9.0, 999, 1)], &[], &[])
            .await
            .unwrap();
        let run = s.get_run("r").await.unwrap();
        let get = |k: &str| run.data.metrics.iter().find(|m| m.key == k).unwrap().value;
        assert_eq!(get("m"), 3.0, "{}", b.name);
        assert!(get("n").is_nan());
        assert_eq!(get("p"), f64::INFINITY);
        assert_eq!(get("q"), f64::NEG_INFINITY);
        let history = s.get_metric_history("r", "m", 100, 0).await.unwrap();
        // MLflow's order: timestamp, then step, then value.
        let steps: Vec<i64> = history.iter().map(|m| m.step).collect();
        assert_eq!(steps, vec![2, 0, 1, 1]);
        let page = s.get_metric_history("r", "m", 2, 2).await.unwrap();
        assert_eq!(page.len(), 2);
        assert_eq!(page[1].value, 9.0);
    }
}

#[tokio::test]
async fn params_are_immutable_and_batches_atomic() {
    for b in backends().await {
        let s = &b.store;
        s.create_run(&run_info("r", "0", 1), &[]).await.unwrap();
        s.log_batch("r", &[], &[Tag::new("lr", "0.1")], &[])
            .await
            .unwrap();
        s.log_batch("r", &[], &[Tag::new("lr", "0.1")], &[])
            .await
            .unwrap();
        let err = s
            .log_batch(
                "r",
                &[Metric::new("x", 1.0, 1, 0)],
                &[Tag::new("lr", "0.2"), Tag::new("new", "1")],
                &[],
            )
            .await
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::InvalidParameter);
        assert!(
            err.message.contains("Changing param values is not allowed"),
            "{}",
            err.message
        );
        let run = s.get_run("r").await.unwrap();
        assert!(
            run.data.metrics.is_empty(),
            "nothing of a failed batch is written on {}",
            b.name
        );
        assert_eq!(run.data.params, vec![Tag::new("lr", "0.1")]);

        s.set_run_lifecycle("r", LifecycleStage::Deleted)
            .await
            .unwrap();
        let err = s
            .log_batch("r", &[Metric::new("x", 1.0, 1, 0)], &[], &[])
            .await
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::InvalidParameter);
        let err = s
            .log_batch("nope", &[Metric::new("x", 1.0, 1, 0)], &[], &[])
            .await
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::NotFound);
    }
}

#[tokio::test]
async fn search_runs_filters_and_order() {
    for b in backends().await {
        let s = &b.store;
        for i in 0..10i64 {
            let id = format!("run{i}");
            s.create_run(
                &run_info(&id, "0", 1000 + i),
                &[Tag::new("team", if i % 2 == 0 { "Alpha" } else { "beta" })],
            )
            .await
            .unwrap();
            s.log_batch(
                &id,
                &[Metric::new("acc", i as f64 / 10.0, 1, 0)],
                &[Tag::new("lr", format!("0.{i}"))],
                &[],
            )
            .await
            .unwrap();
        }
        s.log_batch("run3", &[], &[], &[Tag::new("only", "here")])
            .await
            .unwrap();
        let ids = vec!["0".to_string()];
        let names = |runs: Vec<kaizen_core::Run>| {
            runs.into_iter().map(|r| r.info.run_id).collect::<Vec<_>>()
        };

        let r = s
            .search_runs(
                &ids,
                ViewType::ActiveOnly,
                &query("metrics.acc > 0.65", &[]),
            )
            .await
            .unwrap();
        assert_eq!(names(r), vec!["run9", "run8", "run7"], "{}", b.name);
        let r = s
            .search_runs(
                &ids,
                ViewType::ActiveOnly,
                &query(
                    "metrics.acc >= 0.2 AND tags.team = 'Alpha'",
                    &["metrics.acc ASC"],
                ),
            )
            .await
            .unwrap();
        assert_eq!(names(r), vec!["run2", "run4", "run6", "run8"]);
        let r = s
            .search_runs(
                &ids,
                ViewType::ActiveOnly,
                &query("tags.team LIKE 'alp%'", &[]),
            )
            .await
            .unwrap();
        assert!(r.is_empty(), "LIKE is case-sensitive on {}", b.name);
        let r = s
            .search_runs(
                &ids,
                ViewType::ActiveOnly,
                &query("tags.team ILIKE 'alp%'", &[]),
            )
            .await
            .unwrap();
        assert_eq!(r.len(), 5);
        let r = s
            .search_runs(
                &ids,
                ViewType::ActiveOnly,
                &query(
                    "params.lr IN ('0.1', '0.2') AND attributes.status = 'RUNNING'",
                    &[],
                ),
            )
            .await
            .unwrap();
        assert_eq!(names(r), vec!["run2", "run1"]);
        let r = s
            .search_runs(
                &ids,
                ViewType::ActiveOnly,
                &query("attributes.run_name != 'run-run0'", &[]),
            )
            .await
            .unwrap();
        assert_eq!(r.len(), 9);
        let r = s
            .search_runs(
                &ids,
                ViewType::ActiveOnly,
                &query("attributes.start_time >= 1008", &[]),
            )
            .await
            .unwrap();
        assert_eq!(r.len(), 2);
        // Runs without the key sort last in both directions.
        for dir in ["ASC", "DESC"] {
            let o = format!("tags.only {dir}");
            let r = s
                .search_runs(&ids, ViewType::ActiveOnly, &query("", &[&o]))
                .await
                .unwrap();
            assert_eq!(r[0].info.run_id, "run3");
        }
        let mut q = query("", &["params.lr DESC"]);
        q.max_results = 3;
        q.offset = 3;
        let r = s.search_runs(&ids, ViewType::ActiveOnly, &q).await.unwrap();
        assert_eq!(
            names(r),
            vec!["run6", "run5", "run4", "run3"],
            "max_results + 1 rows for paging"
        );
        s.set_run_lifecycle("run0", LifecycleStage::Deleted)
            .await
            .unwrap();
        let r = s
            .search_runs(&ids, ViewType::DeletedOnly, &query("", &[]))
            .await
            .unwrap();
        assert_eq!(names(r), vec!["run0"]);
    }
}

#[tokio::test]
async fn metric_values_round_trip_bit_exact() {
    for b in backends().await {
        let s = &b.store;
        s.create_run(&run_info("r", "0", 1), &[]).await.unwrap();
        // Doubles from all over the range, built from bits with a fixed generator. (-0.0 is left
        // out: SQLite stores integral reals as integers, so it reads back as 0.0.)
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut values = vec![
            0.1,
            1.0 / 3.0,
            f64::MIN_POSITIVE,
            f64::MAX,
            -f64::MAX,
            5e-324,
            1e300,
            123_456_789.123_456_78,
        ];
        while values.len() < 2000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let v = f64::from_bits(x);
            if v.is_finite() {
                values.push(v);
            }
        }
        values.push(f64::INFINITY);
        values.push(f64::NEG_INFINITY);
        let metrics: Vec<Metric> = values
            .iter()
            .enumerate()
            .map(|(i, v)| Metric::new("v", *v, i as i64, 0))
            .collect();
        for chunk in metrics.chunks(1000) {
            s.log_batch("r", chunk, &[], &[]).await.unwrap();
        }
        s.log_batch("r", &[Metric::new("v", f64::NAN, 5000, 0)], &[], &[])
            .await
            .unwrap();
        let history = s.get_metric_history("r", "v", 10_000, 0).await.unwrap();
        assert_eq!(history.len(), values.len() + 1, "{}", b.name);
        for (m, v) in history.iter().zip(&values) {
            assert_eq!(
                m.value.to_bits(),
                v.to_bits(),
                "{} lost precision on {v:e}",
                b.name
            );
        }
        assert!(history.last().unwrap().value.is_nan());
        assert!(
            s.get_metric_history("r", "none", 10, 0)
                .await
                .unwrap()
                .is_empty()
        );
    }
}
