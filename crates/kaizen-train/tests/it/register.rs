//! Registering a package as a model version and loading it back.

use std::collections::BTreeMap;

use kaizen_core::Tag;
use kaizen_tracking::Actor;
use kaizen_train::{Lineage, PackageMeta, load_version, register_package, write_package};

use crate::{Env, biased_model, data};

pub fn actor() -> Actor {
    Actor {
        user: Some("alice".into()),
        reason: None,
    }
}

/// Trains, packages and registers a model biased by `bias`, as a new version of `name`.
pub async fn register(env: &Env, name: &str, bias: [f64; 2]) -> kaizen_core::ModelVersion {
    let run_id = env.run("train").await;
    let model = biased_model(bias);
    let (x, _, _) = data();
    let mut meta = PackageMeta::new(
        &model,
        Lineage::current(
            &run_id,
            &["sales@1".into()],
            Some("forecast"),
            env.dir.path(),
        ),
    );
    meta.metrics = BTreeMap::from([("wape".into(), (bias[0] + bias[1]) / 2.0)]);
    let dir = env.dir.path().join(format!("pkg-{run_id}"));
    write_package(&dir, &model, meta, &x).unwrap();
    register_package(&env.services, &run_id, &dir, name, &actor())
        .await
        .unwrap()
}

#[tokio::test]
async fn register_and_load_a_version() {
    let env = Env::new().await;
    let v1 = register(&env, "sales", [0.2, 0.2]).await;
    let v2 = register(&env, "sales", [0.1, 0.1]).await;
    assert_eq!((v1.version, v2.version), (1, 2));
    let run_id = v2.run_id.clone().unwrap();
    assert_eq!(v2.source, format!("runs:/{run_id}/model"));
    assert_eq!(v2.user_id.as_deref(), Some("alice"));
    let tag = |k: &str| {
        v2.tags
            .iter()
            .find(|t| t.key == k)
            .map(|t| t.value.as_str())
            .unwrap_or_else(|| panic!("no tag {k} in {:?}", v2.tags))
    };
    assert_eq!(tag("kaizen.lineage.run_id"), run_id);
    assert_eq!(tag("kaizen.lineage.datasets"), r#"["sales@1"]"#);
    assert_eq!(tag("kaizen.lineage.pipeline"), "forecast");
    assert_eq!(
        tag("kaizen.lineage.kaizen_version"),
        env!("CARGO_PKG_VERSION")
    );
    assert_eq!(tag("kaizen.metric.wape"), "0.1");
    // A temporary directory is no repository.
    assert!(!v2.tags.iter().any(|t| t.key == "kaizen.lineage.git_commit"));

    // The package is the run's `model/` artifacts.
    let listed = env
        .services
        .artifacts
        .list(
            &kaizen_artifacts::ArtifactPath::parse(&format!(
                "{}/{run_id}/artifacts/model",
                env.experiment_id
            ))
            .unwrap(),
        )
        .await
        .unwrap();
    let names: Vec<&str> = listed
        .iter()
        .map(|f| f.path.rsplit('/').next().unwrap())
        .collect();
    for f in [
        "MLmodel",
        "input_example.json",
        "kaizen-model.json",
        "model.json",
    ] {
        assert!(names.contains(&f), "{f} not in {names:?}");
    }

    // Lineage: the data set points at the version (the run's edge comes from the registry).
    let edges = env
        .services
        .store
        .lineage_edges("model", "sales/2")
        .await
        .unwrap();
    let got: Vec<(&str, &str, &str)> = edges
        .iter()
        .map(|e| (e.src_kind.as_str(), e.src_id.as_str(), e.relation.as_str()))
        .collect();
    assert_eq!(got, vec![("dataset", "sales@1", "input")]);

    // Back by number, by alias and as `latest`.
    let (mv, package) = load_version(&env.services, "sales", "1").await.unwrap();
    assert_eq!(mv.version, 1);
    assert_eq!(package.model, biased_model([0.2, 0.2]));
    assert_eq!(package.meta.lineage.run_id, v1.run_id.clone().unwrap());
    env.services
        .registry
        .set_alias("sales", "champion", "1", &actor())
        .await
        .unwrap();
    let (mv, _) = load_version(&env.services, "sales", "champion")
        .await
        .unwrap();
    assert_eq!(mv.version, 1);
    let (mv, package) = load_version(&env.services, "sales", "latest")
        .await
        .unwrap();
    assert_eq!(mv.version, 2);
    let (x, _, _) = data();
    assert_eq!(
        package.model.predict(&x),
        biased_model([0.1, 0.1]).predict(&x)
    );

    assert!(load_version(&env.services, "sales", "9").await.is_err());
    assert!(load_version(&env.services, "nope", "1").await.is_err());
    // A version registered from elsewhere has no package to load.
    env.services
        .registry
        .create_model_version(
            kaizen_tracking::NewModelVersion {
                name: "sales".into(),
                source: "s3://bucket/model".into(),
                tags: vec![Tag::new("k", "v")],
                ..Default::default()
            },
            &actor(),
        )
        .await
        .unwrap();
    let err = load_version(&env.services, "sales", "3").await.unwrap_err();
    assert!(
        err.to_string().contains("not in kaizen's artifact store"),
        "{err}"
    );
}
