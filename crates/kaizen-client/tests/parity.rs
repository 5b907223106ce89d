//! The two clients answer alike: one set of services, served over a real socket to `HttpClient`
//! and called in-process by `LocalClient`.

use std::sync::Arc;

use kaizen_client::{HttpClient, LocalClient, RunSearch, TrackingClient};
use kaizen_core::{ErrorKind, Metric, Tag, ViewType};
use kaizen_server::{AppState, ServerConfig};
use kaizen_tracking::{Actor, NewModelVersion, NewRun, Services};

struct Fixture {
    services: Services,
    base: String,
    _dir: tempfile::TempDir,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let services = Services::open(
        &format!("sqlite://{}/k.db", dir.path().display()),
        &format!("file://{}/artifacts", dir.path().display()),
    )
    .await
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let state = AppState {
        services: services.clone(),
        config: Arc::new(ServerConfig::default()),
    };
    tokio::spawn(kaizen_server::serve(listener, state, async move {
        let _ = rx.await;
    }));
    Fixture {
        services,
        base,
        _dir: dir,
        shutdown: Some(tx),
    }
}

fn clients(f: &Fixture) -> Vec<Box<dyn TrackingClient>> {
    vec![
        Box::new(LocalClient::new(f.services.clone(), "local").with_user(Some("alice".into()))),
        Box::new(
            HttpClient::new(&f.base)
                .unwrap()
                .with_user(Some("alice".into())),
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn experiments_and_runs_alike() {
    let f = fixture().await;
    let t = &f.services.tracking;
    let exp = t.create_experiment("exp", None, &[]).await.unwrap();
    let mut run_ids = Vec::new();
    for (i, rmse) in [0.5, 0.25].into_iter().enumerate() {
        let run = t
            .create_run(NewRun {
                experiment_id: Some(exp.clone()),
                run_name: Some(format!("run-{i}")),
                start_time: Some(1_000 + i as i64),
                ..NewRun::default()
            })
            .await
            .unwrap();
        t.log_batch(
            &run.info.run_id,
            &[Metric::new("rmse", rmse, 5, 0)],
            &[Tag::new("lr", format!("0.{i}"))],
            &[],
        )
        .await
        .unwrap();
        run_ids.push(run.info.run_id);
    }

    let mut answers = Vec::new();
    for c in clients(&f) {
        let by_name = c.resolve_experiment("exp").await.unwrap();
        let by_id = c.resolve_experiment(&exp).await.unwrap();
        assert_eq!(by_name, by_id);
        let missing = c.resolve_experiment("nope").await.unwrap_err();
        assert_eq!(missing.kind, ErrorKind::NotFound, "{}", c.target());

        let runs = c
            .search_runs(&RunSearch {
                experiment_ids: vec![exp.clone()],
                filter: "metrics.rmse < 1".into(),
                order_by: vec!["metrics.rmse ASC".into()],
                max_results: Some(10),
                ..RunSearch::default()
            })
            .await
            .unwrap();
        let order: Vec<_> = runs.items.iter().map(|r| r.info.run_id.clone()).collect();
        assert_eq!(order, vec![run_ids[1].clone(), run_ids[0].clone()]);
        let run = c.get_run(&run_ids[0]).await.unwrap();
        assert_eq!(
            c.get_run("nope").await.unwrap_err().kind,
            ErrorKind::NotFound
        );
        let bad_filter = c
            .search_runs(&RunSearch {
                experiment_ids: vec![exp.clone()],
                filter: "metrics.rmse <".into(),
                ..RunSearch::default()
            })
            .await
            .unwrap_err();
        assert_eq!(bad_filter.kind, ErrorKind::InvalidParameter);
        let experiments = c.list_experiments(ViewType::All).await.unwrap();
        answers.push((by_name, run.info, run.data, experiments));
    }
    assert_eq!(answers[0], answers[1]);

    // Creating and deleting through each client.
    for (i, c) in clients(&f).into_iter().enumerate() {
        let name = format!("made-{i}");
        let id = c.create_experiment(&name, None).await.unwrap();
        let dup = c.create_experiment(&name, None).await.unwrap_err();
        assert_eq!(dup.kind, ErrorKind::AlreadyExists);
        c.delete_experiment(&id).await.unwrap();
        let active = c.list_experiments(ViewType::ActiveOnly).await.unwrap();
        assert!(active.iter().all(|e| e.experiment_id != id));
        let deleted = c.list_experiments(ViewType::DeletedOnly).await.unwrap();
        assert!(deleted.iter().any(|e| e.experiment_id == id));
    }
    let c = &clients(&f)[1];
    c.delete_run(&run_ids[0]).await.unwrap();
    let run = c.get_run(&run_ids[0]).await.unwrap();
    assert_eq!(
        run.info.lifecycle_stage,
        kaizen_core::LifecycleStage::Deleted
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_alike() {
    let f = fixture().await;
    let run = f
        .services
        .tracking
        .create_run(NewRun::default())
        .await
        .unwrap();
    let reg = &f.services.registry;
    let actor = Actor::default();
    reg.create_registered_model("it's", None, &[], &actor)
        .await
        .unwrap();
    for _ in 0..2 {
        reg.create_model_version(
            NewModelVersion {
                name: "it's".into(),
                source: format!("runs:/{}/model", run.info.run_id),
                run_id: Some(run.info.run_id.clone()),
                ..NewModelVersion::default()
            },
            &actor,
        )
        .await
        .unwrap();
    }

    for (i, c) in clients(&f).into_iter().enumerate() {
        let reason = format!("reason {i}");
        c.set_alias("it's", "champion", "1", None).await.unwrap();
        c.set_alias("it's", "champion", "2", Some(&reason))
            .await
            .unwrap();
        let versions = c.list_model_versions("it's").await.unwrap();
        assert_eq!(
            versions.iter().map(|v| v.version).collect::<Vec<_>>(),
            vec![2, 1]
        );
        assert_eq!(versions[0].aliases, vec!["champion".to_string()]);
        let models = c.list_registered_models("name LIKE 'it%'").await.unwrap();
        assert_eq!(models.len(), 1);
        assert_eq!(models[0].aliases[0].version, "2");
        let history = c.model_history("it's").await.unwrap();
        let last = history.last().unwrap();
        assert_eq!(last.action, "set_alias");
        assert_eq!(last.version, Some(2));
        assert_eq!(last.reason.as_deref(), Some(reason.as_str()));
        assert_eq!(last.actor, "alice", "{}", c.target());
        c.delete_alias("it's", "champion", Some("gone"))
            .await
            .unwrap();
        let m = c.get_registered_model("it's").await.unwrap();
        assert!(m.aliases.is_empty());

        let e = c.get_registered_model("nope").await.unwrap_err();
        assert_eq!(e.kind, ErrorKind::NotFound);
        let e = c.list_model_versions("nope").await.unwrap_err();
        assert_eq!(e.kind, ErrorKind::NotFound);
        let e = c
            .set_alias("it's", "champion", "9", None)
            .await
            .unwrap_err();
        assert_eq!(e.kind, ErrorKind::NotFound, "{}", e.message);
        let e = c.set_alias("it's", "latest", "1", None).await.unwrap_err();
        assert_eq!(e.kind, ErrorKind::InvalidParameter);
    }
}
