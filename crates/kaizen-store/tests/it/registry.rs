//! The model registry on every backend: registered models, versions, tags, aliases, stages,
//! search and the audit log.

use std::sync::Arc;
use std::time::Duration;

use kaizen_core::search::{parse_filter, parse_order_by};
use kaizen_core::{
    ErrorKind, LoggedModel, LoggedModelStatus, ModelAlias, ModelVersion, RegisteredModel, Stage,
    Tag,
};
use kaizen_store::{AuditRecord, MetadataStore, NewModelVersion, SearchQuery};

use crate::backends;

fn who() -> AuditRecord {
    AuditRecord {
        actor: "alice".into(),
        reason: Some("testing".into()),
    }
}

fn query(filter: &str, order: &[&str], max_results: i64) -> SearchQuery {
    SearchQuery {
        filter: parse_filter(filter).unwrap(),
        order_by: order.iter().map(|o| parse_order_by(o).unwrap()).collect(),
        max_results,
        offset: 0,
    }
}

fn new_version(name: &str, run_id: &str) -> NewModelVersion {
    NewModelVersion {
        name: name.into(),
        source: format!("runs:/{run_id}/model"),
        run_id: Some(run_id.into()),
        ..Default::default()
    }
}

/// Gives the next write a later millisecond timestamp.
async fn tick() {
    tokio::time::sleep(Duration::from_millis(3)).await;
}

async fn model(s: &Arc<dyn MetadataStore>, name: &str) -> RegisteredModel {
    s.create_registered_model(name, None, &[], &who())
        .await
        .unwrap()
}

async fn version(s: &Arc<dyn MetadataStore>, name: &str, run_id: &str) -> ModelVersion {
    s.create_model_version(&new_version(name, run_id), &who())
        .await
        .unwrap()
}

fn names(models: &[RegisteredModel]) -> Vec<&str> {
    models.iter().map(|m| m.name.as_str()).collect()
}

fn versions(mvs: &[ModelVersion]) -> Vec<(&str, i64)> {
    mvs.iter().map(|m| (m.name.as_str(), m.version)).collect()
}

fn actions(log: &[kaizen_core::AuditEntry]) -> Vec<&str> {
    log.iter().map(|e| e.action.as_str()).collect()
}

#[tokio::test]
async fn registered_model_lifecycle() {
    for b in backends().await {
        let s = &b.store;
        let before = kaizen_core::now_millis();
        let tags = [
            Tag::new("team", "a"),
            Tag::new("k", "1"),
            Tag::new("k", "2"),
        ];
        let m = s
            .create_registered_model("m1", Some("first"), &tags, &who())
            .await
            .unwrap();
        assert_eq!(m.name, "m1");
        assert_eq!(m.description.as_deref(), Some("first"));
        assert!(
            m.creation_timestamp >= before && m.creation_timestamp <= kaizen_core::now_millis()
        );
        assert_eq!(m.creation_timestamp, m.last_updated_timestamp);
        // The last value of a repeated key wins; tags come sorted by key.
        assert_eq!(
            m.tags,
            vec![Tag::new("k", "2"), Tag::new("team", "a")],
            "{}",
            b.name
        );
        assert!(m.latest_versions.is_empty() && m.aliases.is_empty());
        assert_eq!(s.get_registered_model("m1").await.unwrap(), m);

        let dup = s
            .create_registered_model("m1", None, &[], &who())
            .await
            .unwrap_err();
        assert_eq!(dup.kind, ErrorKind::AlreadyExists, "{}", b.name);
        assert_eq!(dup.message, "Registered Model (name=m1) already exists.");
        // Names are case-sensitive.
        model(s, "M1").await;

        let missing = s.get_registered_model("nope").await.unwrap_err();
        assert_eq!(missing.kind, ErrorKind::NotFound);
        assert_eq!(missing.message, "Registered Model with name=nope not found");

        tick().await;
        let updated = s
            .update_registered_model("m1", Some("second"))
            .await
            .unwrap();
        assert_eq!(updated.description.as_deref(), Some("second"));
        assert!(
            updated.last_updated_timestamp > m.last_updated_timestamp,
            "{}",
            b.name
        );
        assert_eq!(updated.creation_timestamp, m.creation_timestamp);
        let cleared = s.update_registered_model("m1", None).await.unwrap();
        assert_eq!(cleared.description, None);
        assert_eq!(
            s.update_registered_model("nope", Some("x"))
                .await
                .unwrap_err()
                .kind,
            ErrorKind::NotFound
        );

        s.set_registered_model_tag("m1", &Tag::new("team", "b"))
            .await
            .unwrap();
        s.set_registered_model_tag("m1", &Tag::new("new", "v"))
            .await
            .unwrap();
        s.delete_registered_model_tag("m1", "k").await.unwrap();
        // Deleting a tag the model does not have is not an error, as in MLflow.
        s.delete_registered_model_tag("m1", "k").await.unwrap();
        let m = s.get_registered_model("m1").await.unwrap();
        assert_eq!(m.tags, vec![Tag::new("new", "v"), Tag::new("team", "b")]);
        let err = s
            .set_registered_model_tag("nope", &Tag::new("a", "b"))
            .await
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::NotFound);
        let err = s
            .delete_registered_model_tag("nope", "a")
            .await
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::NotFound);

        version(s, "m1", "r1").await;
        s.set_alias("m1", "champion", 1, &who()).await.unwrap();
        s.delete_registered_model("m1", &who()).await.unwrap();
        assert_eq!(
            s.get_registered_model("m1").await.unwrap_err().kind,
            ErrorKind::NotFound
        );
        assert_eq!(
            s.get_model_version("m1", 1).await.unwrap_err().kind,
            ErrorKind::NotFound
        );
        assert_eq!(
            s.delete_registered_model("m1", &who())
                .await
                .unwrap_err()
                .kind,
            ErrorKind::NotFound
        );
        assert!(s.get_registered_model("M1").await.is_ok());

        // The name can be used again: a fresh model, with no tags and versions from 1.
        let again = s
            .create_registered_model("m1", None, &[], &who())
            .await
            .unwrap();
        assert!(
            again.tags.is_empty() && again.aliases.is_empty() && again.latest_versions.is_empty()
        );
        assert_eq!(version(s, "m1", "r2").await.version, 1, "{}", b.name);
        let err = s.get_version_by_alias("m1", "champion").await.unwrap_err();
        assert_eq!(err.kind, ErrorKind::InvalidParameter);
        let hits = s
            .search_model_versions(&query("tags.x = 'y'", &[], 10))
            .await
            .unwrap();
        assert!(hits.is_empty());

        // The deleted model's history stays in the audit log.
        let log = s.audit_log("m1").await.unwrap();
        assert_eq!(
            actions(&log),
            vec![
                "create_registered_model",
                "create_model_version",
                "set_alias",
                "delete_registered_model",
                "create_registered_model",
                "create_model_version"
            ],
            "{}",
            b.name
        );
        assert_eq!(
            log[3].details,
            "registered model m1 deleted with its 1 version"
        );
    }
}

#[tokio::test]
async fn rename_carries_versions_tags_and_aliases() {
    for b in backends().await {
        let s = &b.store;
        s.create_registered_model("old", Some("d"), &[Tag::new("t", "1")], &who())
            .await
            .unwrap();
        let mut nv = new_version("old", "r1");
        nv.tags = vec![Tag::new("vt", "x")];
        s.create_model_version(&nv, &who()).await.unwrap();
        version(s, "old", "r2").await;
        s.set_alias("old", "champion", 1, &who()).await.unwrap();
        s.transition_stage("old", 2, Stage::Production, false, &who())
            .await
            .unwrap();
        model(s, "taken").await;

        let err = s
            .rename_registered_model("old", "taken", &who())
            .await
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::AlreadyExists, "{}", b.name);
        assert_eq!(err.message, "Registered Model (name=taken) already exists.");
        let err = s
            .rename_registered_model("nope", "other", &who())
            .await
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::NotFound);

        tick().await;
        let renamed = s
            .rename_registered_model("old", "new", &who())
            .await
            .unwrap();
        assert_eq!(renamed.name, "new");
        assert_eq!(renamed.description.as_deref(), Some("d"));
        assert_eq!(renamed.tags, vec![Tag::new("t", "1")], "{}", b.name);
        assert_eq!(
            renamed.aliases,
            vec![ModelAlias {
                alias: "champion".into(),
                version: "1".into()
            }]
        );
        assert_eq!(
            versions(&renamed.latest_versions),
            vec![("new", 1), ("new", 2)]
        );
        assert_eq!(
            s.get_registered_model("old").await.unwrap_err().kind,
            ErrorKind::NotFound
        );
        let v1 = s.get_model_version("new", 1).await.unwrap();
        assert_eq!(v1.tags, vec![Tag::new("vt", "x")], "{}", b.name);
        assert_eq!(v1.aliases, vec!["champion".to_string()]);
        assert!(v1.last_updated_timestamp >= renamed.last_updated_timestamp);
        assert_eq!(
            s.get_version_by_alias("new", "champion")
                .await
                .unwrap()
                .version,
            1
        );
        assert_eq!(
            s.get_model_version("old", 1).await.unwrap_err().kind,
            ErrorKind::NotFound
        );
        // Numbering continues under the new name.
        assert_eq!(version(s, "new", "r3").await.version, 3);

        // The log of the renamed model starts with its creation under the old name.
        let log = s.audit_log("new").await.unwrap();
        assert_eq!(
            actions(&log),
            vec![
                "create_registered_model",
                "create_model_version",
                "create_model_version",
                "set_alias",
                "transition_stage",
                "rename_registered_model",
                "create_model_version"
            ],
            "{}",
            b.name
        );
        assert_eq!(log[0].model_name, "old");
        assert_eq!(log[5].model_name, "new");
        assert_eq!(log[5].details, "renamed from old to new");
        // The old name's log shows the rename too, but nothing after it.
        let old_log = s.audit_log("old").await.unwrap();
        assert_eq!(old_log.len(), 6);
        assert_eq!(old_log.last().unwrap().action, "rename_registered_model");

        // A chain of renames, with an unrelated model taking a freed name in between.
        s.rename_registered_model("new", "newer", &who())
            .await
            .unwrap();
        model(s, "old").await;
        let log = s.audit_log("newer").await.unwrap();
        assert_eq!(log.len(), 8, "{}", b.name);
        assert_eq!(log.first().unwrap().model_name, "old");
        assert_eq!(log.last().unwrap().details, "renamed from new to newer");
        let log = s.audit_log("old").await.unwrap();
        assert_eq!(log.len(), 7);
        assert_eq!(log.last().unwrap().action, "create_registered_model");
    }
}

#[tokio::test]
async fn model_versions() {
    for b in backends().await {
        let s = &b.store;
        let m = model(s, "m").await;
        tick().await;
        let before = kaizen_core::now_millis();
        let nv = NewModelVersion {
            name: "m".into(),
            source: "runs:/abc/model".into(),
            run_id: Some("abc".into()),
            run_link: Some("http://x/runs/abc".into()),
            description: Some("v1".into()),
            user_id: Some("bob".into()),
            model_id: Some("m-123".into()),
            tags: vec![Tag::new("b", "2"), Tag::new("a", "1")],
        };
        let v1 = s.create_model_version(&nv, &who()).await.unwrap();
        assert_eq!((v1.name.as_str(), v1.version), ("m", 1));
        assert_eq!(v1.source, "runs:/abc/model");
        assert_eq!(v1.run_id.as_deref(), Some("abc"));
        assert_eq!(v1.run_link.as_deref(), Some("http://x/runs/abc"));
        assert_eq!(v1.description.as_deref(), Some("v1"));
        assert_eq!(v1.user_id.as_deref(), Some("bob"));
        assert_eq!(v1.model_id.as_deref(), Some("m-123"));
        assert_eq!(v1.status, "READY");
        assert_eq!(v1.status_message, None);
        assert_eq!(v1.current_stage, Stage::None);
        assert_eq!(v1.tags, vec![Tag::new("a", "1"), Tag::new("b", "2")]);
        assert!(v1.aliases.is_empty());
        assert!(v1.creation_timestamp >= before);
        assert_eq!(v1.creation_timestamp, v1.last_updated_timestamp);
        assert_eq!(s.get_model_version("m", 1).await.unwrap(), v1, "{}", b.name);
        let m2 = s.get_registered_model("m").await.unwrap();
        assert!(
            m2.last_updated_timestamp > m.last_updated_timestamp,
            "creating a version touches its model"
        );
        assert_eq!(m2.latest_versions, vec![v1.clone()]);

        let err = s
            .create_model_version(&new_version("nope", "r"), &who())
            .await
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::NotFound, "{}", b.name);
        assert_eq!(err.message, "Registered Model with name=nope not found");

        let err = s.get_model_version("m", 7).await.unwrap_err();
        assert_eq!(err.kind, ErrorKind::NotFound);
        assert_eq!(err.message, "Model Version (name=m, version=7) not found");
        assert_eq!(
            s.get_model_version("nope", 1).await.unwrap_err().kind,
            ErrorKind::NotFound
        );

        tick().await;
        let u = s
            .update_model_version("m", 1, Some("better"))
            .await
            .unwrap();
        assert_eq!(u.description.as_deref(), Some("better"));
        assert!(u.last_updated_timestamp > v1.last_updated_timestamp);
        assert_eq!(u.tags, v1.tags);
        assert_eq!(
            s.update_model_version("m", 1, None)
                .await
                .unwrap()
                .description,
            None
        );
        assert_eq!(
            s.update_model_version("m", 9, None).await.unwrap_err().kind,
            ErrorKind::NotFound
        );
        assert_eq!(
            s.update_model_version("nope", 1, None)
                .await
                .unwrap_err()
                .kind,
            ErrorKind::NotFound
        );

        s.set_model_version_tag("m", 1, &Tag::new("a", "changed"))
            .await
            .unwrap();
        s.set_model_version_tag("m", 1, &Tag::new("c", "3"))
            .await
            .unwrap();
        s.delete_model_version_tag("m", 1, "b").await.unwrap();
        s.delete_model_version_tag("m", 1, "b").await.unwrap();
        let got = s.get_model_version("m", 1).await.unwrap();
        assert_eq!(
            got.tags,
            vec![Tag::new("a", "changed"), Tag::new("c", "3")],
            "{}",
            b.name
        );
        let err = s
            .set_model_version_tag("m", 5, &Tag::new("a", "b"))
            .await
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::NotFound);
        assert_eq!(err.message, "Model Version (name=m, version=5) not found");
        assert_eq!(
            s.delete_model_version_tag("m", 5, "a")
                .await
                .unwrap_err()
                .kind,
            ErrorKind::NotFound
        );
        assert_eq!(
            s.set_model_version_tag("nope", 1, &Tag::new("a", "b"))
                .await
                .unwrap_err()
                .kind,
            ErrorKind::NotFound
        );
    }
}

#[tokio::test]
async fn version_numbers_are_never_reused() {
    for b in backends().await {
        let s = &b.store;
        model(s, "m").await;
        for i in 1..=3 {
            assert_eq!(version(s, "m", &format!("r{i}")).await.version, i);
        }
        s.set_model_version_tag("m", 3, &Tag::new("t", "v"))
            .await
            .unwrap();
        s.delete_model_version("m", 3, &who()).await.unwrap();
        assert_eq!(
            s.get_model_version("m", 3).await.unwrap_err().kind,
            ErrorKind::NotFound
        );
        assert_eq!(
            s.delete_model_version("m", 3, &who())
                .await
                .unwrap_err()
                .kind,
            ErrorKind::NotFound
        );
        assert_eq!(
            s.delete_model_version("m", 8, &who())
                .await
                .unwrap_err()
                .kind,
            ErrorKind::NotFound
        );
        assert_eq!(
            s.delete_model_version("nope", 1, &who())
                .await
                .unwrap_err()
                .kind,
            ErrorKind::NotFound
        );
        // The highest number was deleted, and still is not handed out again.
        assert_eq!(version(s, "m", "r4").await.version, 4, "{}", b.name);
        s.delete_model_version("m", 2, &who()).await.unwrap();
        assert_eq!(version(s, "m", "r5").await.version, 5);

        // Deleted versions are invisible everywhere.
        let all = s
            .search_model_versions(&query("name = 'm'", &[], 100))
            .await
            .unwrap();
        assert_eq!(
            versions(&all),
            vec![("m", 5), ("m", 4), ("m", 1)],
            "{}",
            b.name
        );
        let hits = s
            .search_model_versions(&query("tags.t = 'v'", &[], 100))
            .await
            .unwrap();
        assert!(hits.is_empty());
        let hits = s
            .search_model_versions(&query("run_id = 'r3'", &[], 100))
            .await
            .unwrap();
        assert!(hits.is_empty());
        let latest = s.get_latest_versions("m", &[]).await.unwrap();
        assert_eq!(versions(&latest), vec![("m", 5)]);
        assert_eq!(
            s.update_model_version("m", 2, Some("x"))
                .await
                .unwrap_err()
                .kind,
            ErrorKind::NotFound
        );
        assert_eq!(
            s.set_model_version_tag("m", 2, &Tag::new("a", "b"))
                .await
                .unwrap_err()
                .kind,
            ErrorKind::NotFound
        );
        let err = s
            .transition_stage("m", 2, Stage::Staging, false, &who())
            .await
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::NotFound);
        assert_eq!(
            s.set_alias("m", "a", 2, &who()).await.unwrap_err().kind,
            ErrorKind::NotFound
        );

        // Deleting every version still leaves the numbers taken.
        for v in [1, 4, 5] {
            s.delete_model_version("m", v, &who()).await.unwrap();
        }
        assert!(
            s.get_registered_model("m")
                .await
                .unwrap()
                .latest_versions
                .is_empty()
        );
        assert_eq!(version(s, "m", "r6").await.version, 6, "{}", b.name);

        let log = s.audit_log("m").await.unwrap();
        let deleted: Vec<Option<i64>> = log
            .iter()
            .filter(|e| e.action == "delete_model_version")
            .map(|e| e.version)
            .collect();
        assert_eq!(deleted, vec![Some(3), Some(2), Some(1), Some(4), Some(5)]);
        assert_eq!(
            log.iter()
                .find(|e| e.action == "delete_model_version")
                .unwrap()
                .details,
            "version 3 deleted"
        );
    }
}

#[tokio::test]
async fn concurrent_creates_get_distinct_versions() {
    for b in backends().await {
        let s = b.store.clone();
        model(&s, "m").await;
        let tasks: Vec<_> = (0..16)
            .map(|i| {
                let s = s.clone();
                tokio::spawn(async move {
                    s.create_model_version(&new_version("m", &format!("r{i}")), &who())
                        .await
                })
            })
            .collect();
        let mut got = Vec::new();
        for t in tasks {
            got.push(t.await.unwrap().unwrap().version);
        }
        got.sort();
        assert_eq!(got, (1..=16).collect::<Vec<i64>>(), "{}", b.name);
        let log = s.audit_log("m").await.unwrap();
        assert_eq!(
            log.iter()
                .filter(|e| e.action == "create_model_version")
                .count(),
            16
        );
    }
}

#[tokio::test]
async fn version_from_logged_model_takes_its_run() {
    for b in backends().await {
        let s = &b.store;
        let lm = LoggedModel {
            model_id: "m-abc".into(),
            experiment_id: "0".into(),
            name: "model".into(),
            artifact_location: "mlflow-artifacts:/0/models/m-abc/artifacts".into(),
            creation_timestamp_ms: 1,
            last_updated_timestamp_ms: 1,
            model_type: None,
            source_run_id: Some("run-1".into()),
            status: LoggedModelStatus::Ready,
            status_message: None,
            tags: vec![],
            params: vec![],
            metrics: vec![],
        };
        s.create_logged_model(&lm).await.unwrap();
        model(s, "m").await;
        let nv = NewModelVersion {
            name: "m".into(),
            source: "models:/m-abc".into(),
            model_id: Some("m-abc".into()),
            ..Default::default()
        };
        let v = s.create_model_version(&nv, &who()).await.unwrap();
        assert_eq!(v.run_id.as_deref(), Some("run-1"), "{}", b.name);
        assert_eq!(v.model_id.as_deref(), Some("m-abc"));
        // An explicit run wins, and an unknown logged model is no error.
        let nv = NewModelVersion {
            run_id: Some("run-2".into()),
            ..nv
        };
        assert_eq!(
            s.create_model_version(&nv, &who())
                .await
                .unwrap()
                .run_id
                .as_deref(),
            Some("run-2")
        );
        let nv = NewModelVersion {
            run_id: None,
            model_id: Some("m-unknown".into()),
            ..nv
        };
        assert_eq!(
            s.create_model_version(&nv, &who()).await.unwrap().run_id,
            None
        );
    }
}

#[tokio::test]
async fn aliases() {
    for b in backends().await {
        let s = &b.store;
        model(s, "m").await;
        for i in 1..=3 {
            version(s, "m", &format!("r{i}")).await;
        }
        s.set_alias("m", "champion", 2, &who()).await.unwrap();
        s.set_alias("m", "backup", 2, &who()).await.unwrap();
        let v = s.get_version_by_alias("m", "champion").await.unwrap();
        assert_eq!(v.version, 2);
        assert_eq!(
            v.aliases,
            vec!["backup".to_string(), "champion".to_string()],
            "{}",
            b.name
        );
        assert_eq!(
            s.get_model_version("m", 2).await.unwrap().aliases,
            v.aliases
        );

        // Moving an alias.
        s.set_alias("m", "champion", 3, &who()).await.unwrap();
        assert_eq!(
            s.get_version_by_alias("m", "champion")
                .await
                .unwrap()
                .version,
            3
        );
        assert_eq!(
            s.get_model_version("m", 2).await.unwrap().aliases,
            vec!["backup".to_string()]
        );
        let m = s.get_registered_model("m").await.unwrap();
        let alias = |a: &str, v: &str| ModelAlias {
            alias: a.into(),
            version: v.into(),
        };
        assert_eq!(
            m.aliases,
            vec![alias("backup", "2"), alias("champion", "3")]
        );
        // Setting it to the version it already has is fine.
        s.set_alias("m", "champion", 3, &who()).await.unwrap();

        let err = s.set_alias("m", "x", 9, &who()).await.unwrap_err();
        assert_eq!(err.kind, ErrorKind::NotFound, "{}", b.name);
        assert_eq!(err.message, "Model Version (name=m, version=9) not found");
        assert_eq!(
            s.set_alias("nope", "x", 1, &who()).await.unwrap_err().kind,
            ErrorKind::NotFound
        );

        let err = s.get_version_by_alias("m", "nothing").await.unwrap_err();
        assert_eq!(err.kind, ErrorKind::InvalidParameter, "as in MLflow");
        assert_eq!(err.message, "Registered model alias nothing not found.");
        let err = s
            .get_version_by_alias("nope", "champion")
            .await
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::NotFound);
        assert_eq!(err.message, "Registered Model with name=nope not found");
        // `latest` is the newest live version.
        assert_eq!(
            s.get_version_by_alias("m", "latest").await.unwrap().version,
            3
        );
        assert_eq!(
            s.get_version_by_alias("m", "LATEST").await.unwrap().version,
            3
        );

        s.delete_alias("m", "backup", &who()).await.unwrap();
        // Deleting a missing alias is no error, as in MLflow, and leaves no audit entry.
        s.delete_alias("m", "backup", &who()).await.unwrap();
        assert_eq!(
            s.delete_alias("nope", "backup", &who())
                .await
                .unwrap_err()
                .kind,
            ErrorKind::NotFound
        );
        assert!(
            s.get_model_version("m", 2)
                .await
                .unwrap()
                .aliases
                .is_empty()
        );

        // Deleting a version removes its aliases.
        s.delete_model_version("m", 3, &who()).await.unwrap();
        assert_eq!(
            s.get_version_by_alias("m", "champion")
                .await
                .unwrap_err()
                .kind,
            ErrorKind::InvalidParameter
        );
        assert!(
            s.get_registered_model("m")
                .await
                .unwrap()
                .aliases
                .is_empty(),
            "{}",
            b.name
        );
        assert_eq!(
            s.get_version_by_alias("m", "latest").await.unwrap().version,
            2
        );
        s.delete_model_version("m", 2, &who()).await.unwrap();
        s.delete_model_version("m", 1, &who()).await.unwrap();
        let err = s.get_version_by_alias("m", "latest").await.unwrap_err();
        assert_eq!(err.kind, ErrorKind::NotFound);

        let log = s.audit_log("m").await.unwrap();
        let alias_log: Vec<(&str, Option<i64>, &str)> = log
            .iter()
            .filter(|e| e.action.contains("alias"))
            .map(|e| (e.action.as_str(), e.version, e.details.as_str()))
            .collect();
        assert_eq!(
            alias_log,
            vec![
                ("set_alias", Some(2), "alias champion: none -> 2"),
                ("set_alias", Some(2), "alias backup: none -> 2"),
                ("set_alias", Some(3), "alias champion: 2 -> 3"),
                ("set_alias", Some(3), "alias champion: 3 -> 3"),
                ("delete_alias", Some(2), "alias backup: 2 -> none"),
            ],
            "{}",
            b.name
        );
        let deleted = log
            .iter()
            .find(|e| e.action == "delete_model_version")
            .unwrap();
        assert_eq!(
            deleted.details,
            "version 3 deleted (aliases removed: champion)"
        );
    }
}

#[tokio::test]
async fn stages_and_latest_versions() {
    for b in backends().await {
        let s = &b.store;
        let m = model(s, "m").await;
        for i in 1..=5 {
            version(s, "m", &format!("r{i}")).await;
        }
        tick().await;
        let v = s
            .transition_stage("m", 1, Stage::Production, false, &who())
            .await
            .unwrap();
        assert_eq!(v.current_stage, Stage::Production);
        assert!(v.last_updated_timestamp > m.last_updated_timestamp);
        s.transition_stage("m", 2, Stage::Production, false, &who())
            .await
            .unwrap();
        s.transition_stage("m", 3, Stage::Staging, false, &who())
            .await
            .unwrap();
        s.set_alias("m", "prod", 2, &who()).await.unwrap();

        // The latest version per stage, stages in the order their oldest version was created.
        let latest = s.get_latest_versions("m", &[]).await.unwrap();
        let got: Vec<(i64, Stage)> = latest
            .iter()
            .map(|v| (v.version, v.current_stage))
            .collect();
        assert_eq!(
            got,
            vec![
                (2, Stage::Production),
                (3, Stage::Staging),
                (5, Stage::None)
            ],
            "{}",
            b.name
        );
        assert_eq!(latest[0].aliases, vec!["prod".to_string()]);
        let rm = s.get_registered_model("m").await.unwrap();
        assert_eq!(rm.latest_versions, latest);
        let only = s
            .get_latest_versions("m", &[Stage::Staging, Stage::Archived])
            .await
            .unwrap();
        assert_eq!(versions(&only), vec![("m", 3)]);
        assert!(
            s.get_latest_versions("m", &[Stage::Archived])
                .await
                .unwrap()
                .is_empty()
        );
        let err = s.get_latest_versions("nope", &[]).await.unwrap_err();
        assert_eq!(err.kind, ErrorKind::NotFound);

        // archive_existing moves the others in the target stage to Archived.
        let v = s
            .transition_stage("m", 4, Stage::Production, true, &who())
            .await
            .unwrap();
        assert_eq!(v.current_stage, Stage::Production);
        for (ver, stage) in [
            (1, Stage::Archived),
            (2, Stage::Archived),
            (3, Stage::Staging),
            (5, Stage::None),
        ] {
            assert_eq!(
                s.get_model_version("m", ver).await.unwrap().current_stage,
                stage,
                "v{ver} on {}",
                b.name
            );
        }
        // Re-applying the same stage with archive_existing leaves the version itself alone.
        let v = s
            .transition_stage("m", 4, Stage::Production, true, &who())
            .await
            .unwrap();
        assert_eq!(v.current_stage, Stage::Production);
        let latest = s.get_latest_versions("m", &[]).await.unwrap();
        let got: Vec<(i64, Stage)> = latest
            .iter()
            .map(|v| (v.version, v.current_stage))
            .collect();
        assert_eq!(
            got,
            vec![
                (2, Stage::Archived),
                (3, Stage::Staging),
                (4, Stage::Production),
                (5, Stage::None)
            ]
        );

        for stage in [Stage::Archived, Stage::None] {
            let err = s
                .transition_stage("m", 5, stage, true, &who())
                .await
                .unwrap_err();
            assert_eq!(err.kind, ErrorKind::InvalidParameter);
        }
        // Without archive_existing any stage is allowed.
        s.transition_stage("m", 5, Stage::Archived, false, &who())
            .await
            .unwrap();
        s.transition_stage("m", 5, Stage::None, false, &who())
            .await
            .unwrap();
        let err = s
            .transition_stage("m", 9, Stage::Staging, false, &who())
            .await
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::NotFound);
        assert_eq!(err.message, "Model Version (name=m, version=9) not found");
        let err = s
            .transition_stage("nope", 1, Stage::Staging, false, &who())
            .await
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::NotFound);

        let log = s.audit_log("m").await.unwrap();
        let stages: Vec<&str> = log
            .iter()
            .filter(|e| e.action == "transition_stage")
            .map(|e| e.details.as_str())
            .collect();
        assert_eq!(
            stages,
            vec![
                "stage of version 1: None -> Production",
                "stage of version 2: None -> Production",
                "stage of version 3: None -> Staging",
                "stage of version 4: None -> Production; archived versions 1, 2",
                "stage of version 4: Production -> Production",
                "stage of version 5: None -> Archived",
                "stage of version 5: Archived -> None",
            ],
            "{}",
            b.name
        );
    }
}

#[tokio::test]
async fn search_registered_models() {
    for b in backends().await {
        let s = &b.store;
        for (name, tags) in [
            (
                "alpha",
                vec![Tag::new("team", "red"), Tag::new("tier", "gold")],
            ),
            ("Beta", vec![Tag::new("team", "blue")]),
            ("gamma", vec![Tag::new("team", "Red")]),
            ("delta_1", vec![]),
        ] {
            s.create_registered_model(name, None, &tags, &who())
                .await
                .unwrap();
            tick().await;
        }
        s.create_registered_model(
            "my-prompt",
            None,
            &[Tag::new("mlflow.prompt.is_prompt", "true")],
            &who(),
        )
        .await
        .unwrap();
        version(s, "gamma", "r1").await;

        let find = |filter: &str| {
            let q = query(filter, &[], 100);
            async move { s.search_registered_models(&q).await.unwrap() }
        };
        // Default order: name ASC, byte-wise (upper case first).
        assert_eq!(
            names(&find("").await),
            vec!["Beta", "alpha", "delta_1", "gamma"],
            "{}",
            b.name
        );
        assert_eq!(names(&find("name = 'alpha'").await), vec!["alpha"]);
        assert_eq!(
            names(&find("name != 'alpha'").await),
            vec!["Beta", "delta_1", "gamma"]
        );
        assert_eq!(
            names(&find("name LIKE '%a'").await),
            vec!["Beta", "alpha", "gamma"]
        );
        assert_eq!(
            names(&find("name LIKE 'b%'").await),
            Vec::<&str>::new(),
            "LIKE is case-sensitive"
        );
        assert_eq!(names(&find("name ILIKE 'b%'").await), vec!["Beta"]);
        // `_` is a single-character wildcard.
        assert_eq!(names(&find("name LIKE 'delta__'").await), vec!["delta_1"]);
        assert_eq!(
            names(&find("attributes.name IN ('alpha', 'gamma', 'x')").await),
            vec!["alpha", "gamma"]
        );
        assert_eq!(
            names(&find("name NOT IN ('alpha')").await),
            vec!["Beta", "delta_1", "gamma"]
        );
        assert_eq!(names(&find("tags.team = 'red'").await), vec!["alpha"]);
        assert_eq!(
            names(&find("tags.team != 'red'").await),
            vec!["Beta", "gamma"],
            "models without the tag don't match"
        );
        assert_eq!(names(&find("tags.team LIKE 'R%'").await), vec!["gamma"]);
        assert_eq!(
            names(&find("tags.team ILIKE 'r%'").await),
            vec!["alpha", "gamma"]
        );
        assert_eq!(
            names(&find("tags.team ILIKE 'r%' AND tags.tier = 'gold'").await),
            vec!["alpha"]
        );
        assert_eq!(
            names(&find("tags.team ILIKE 'r%' AND name != 'alpha'").await),
            vec!["gamma"]
        );
        assert_eq!(names(&find("tags.`team` = 'blue'").await), vec!["Beta"]);
        // Prompts only when asked for.
        assert_eq!(
            names(&find("tags.`mlflow.prompt.is_prompt` = 'true'").await),
            vec!["my-prompt"]
        );
        assert_eq!(
            find("tags.`mlflow.prompt.is_prompt` = 'false'").await.len(),
            4
        );

        // Search results carry tags, aliases and latest versions.
        let g = &find("name = 'gamma'").await[0];
        assert_eq!(g.tags, vec![Tag::new("team", "Red")]);
        assert_eq!(versions(&g.latest_versions), vec![("gamma", 1)]);

        let order = |o: &[&str]| {
            let q = query("", o, 100);
            async move { s.search_registered_models(&q).await.unwrap() }
        };
        assert_eq!(
            names(&order(&["name DESC"]).await),
            vec!["gamma", "delta_1", "alpha", "Beta"]
        );
        // gamma was touched last by its new version.
        assert_eq!(
            names(&order(&["last_updated_timestamp DESC"]).await),
            vec!["gamma", "delta_1", "Beta", "alpha"]
        );
        assert_eq!(
            names(&order(&["timestamp ASC"]).await),
            vec!["alpha", "Beta", "delta_1", "gamma"]
        );
        assert_eq!(
            names(&order(&["creation_timestamp DESC"]).await),
            vec!["delta_1", "gamma", "Beta", "alpha"]
        );

        // Pages: max_results + 1 rows so the caller can tell there is more.
        let mut q = query("", &[], 2);
        assert_eq!(
            names(&s.search_registered_models(&q).await.unwrap()),
            vec!["Beta", "alpha", "delta_1"]
        );
        q.offset = 2;
        assert_eq!(
            names(&s.search_registered_models(&q).await.unwrap()),
            vec!["delta_1", "gamma"]
        );

        for bad in [
            "description = 'x'",
            "name > 'a'",
            "tags.t IN ('a')",
            "metrics.m > 1",
            "name = 5",
        ] {
            let err = s
                .search_registered_models(&query(bad, &[], 10))
                .await
                .unwrap_err();
            assert_eq!(err.kind, ErrorKind::InvalidParameter, "{bad}");
        }
        for bad in [
            &["version_number"][..],
            &["tags.x"],
            &["name", "name DESC"],
            &["timestamp", "last_updated_timestamp"],
        ] {
            let err = s
                .search_registered_models(&query("", bad, 10))
                .await
                .unwrap_err();
            assert_eq!(err.kind, ErrorKind::InvalidParameter, "{bad:?}");
        }
    }
}

#[tokio::test]
async fn search_model_versions() {
    for b in backends().await {
        let s = &b.store;
        model(s, "a").await;
        model(s, "B").await;
        for (name, run, source) in [
            ("a", "r1", "s3://bucket/one"),
            ("a", "r2", "s3://bucket/two"),
            ("B", "r1", "gs://other/one"),
            ("a", "r3", "s3://bucket/three"),
        ] {
            let nv = NewModelVersion {
                name: name.into(),
                source: source.into(),
                run_id: Some(run.into()),
                tags: vec![Tag::new("src", source)],
                ..Default::default()
            };
            s.create_model_version(&nv, &who()).await.unwrap();
            tick().await;
        }
        s.set_model_version_tag("a", 2, &Tag::new("env", "prod"))
            .await
            .unwrap();
        let prompt = NewModelVersion {
            tags: vec![Tag::new("mlflow.prompt.is_prompt", "true")],
            ..new_version("B", "r9")
        };
        s.create_registered_model("p", None, &[], &who())
            .await
            .unwrap();
        s.create_model_version(
            &NewModelVersion {
                name: "p".into(),
                ..prompt
            },
            &who(),
        )
        .await
        .unwrap();

        let find = |filter: &str| {
            let q = query(filter, &[], 100);
            async move { s.search_model_versions(&q).await.unwrap() }
        };
        // Default order: last_updated_timestamp DESC (a/2 just got a tag, but tags don't touch
        // versions), then name ASC, version DESC.
        assert_eq!(
            versions(&find("").await),
            vec![("a", 3), ("B", 1), ("a", 2), ("a", 1)],
            "{}",
            b.name
        );
        assert_eq!(
            versions(&find("name = 'a'").await),
            vec![("a", 3), ("a", 2), ("a", 1)]
        );
        assert_eq!(versions(&find("name != 'a'").await), vec![("B", 1)]);
        assert_eq!(versions(&find("name LIKE 'b'").await), vec![]);
        assert_eq!(versions(&find("name ILIKE 'b'").await), vec![("B", 1)]);
        assert_eq!(versions(&find("name IN ('B', 'x')").await), vec![("B", 1)]);
        assert_eq!(
            versions(&find("run_id = 'r1'").await),
            vec![("B", 1), ("a", 1)]
        );
        assert_eq!(
            versions(&find("run_id != 'r1'").await),
            vec![("a", 3), ("a", 2)]
        );
        assert_eq!(
            versions(&find("run_id IN ('r1', 'r3')").await),
            vec![("a", 3), ("B", 1), ("a", 1)]
        );
        assert_eq!(
            versions(&find("run_id NOT IN ('r1')").await),
            vec![("a", 3), ("a", 2)]
        );
        assert_eq!(
            versions(&find("source_path = 's3://bucket/two'").await),
            vec![("a", 2)]
        );
        assert_eq!(
            versions(&find("source_path LIKE 's3://%o%'").await),
            vec![("a", 2), ("a", 1)]
        );
        assert_eq!(
            versions(&find("source_path != 's3://bucket/two' AND name = 'a'").await),
            vec![("a", 3), ("a", 1)]
        );
        assert_eq!(versions(&find("version_number = 2").await), vec![("a", 2)]);
        assert_eq!(
            versions(&find("version_number > 1").await),
            vec![("a", 3), ("a", 2)]
        );
        assert_eq!(
            versions(&find("version_number <= 1 AND name = 'a'").await),
            vec![("a", 1)]
        );
        assert_eq!(
            versions(&find("version_number != 1").await),
            vec![("a", 3), ("a", 2)]
        );
        assert_eq!(
            versions(&find("version_number >= '3'").await),
            vec![("a", 3)]
        );
        assert_eq!(versions(&find("tags.env = 'prod'").await), vec![("a", 2)]);
        assert_eq!(
            versions(&find("tags.src LIKE '%one'").await),
            vec![("B", 1), ("a", 1)]
        );
        assert_eq!(
            versions(&find("tags.src ILIKE 'GS:%'").await),
            vec![("B", 1)]
        );
        assert_eq!(
            versions(&find("tags.src != 's3://bucket/one' AND tags.env = 'prod'").await),
            vec![("a", 2)]
        );
        assert_eq!(
            versions(&find("tags.`mlflow.prompt.is_prompt` = 'true'").await),
            vec![("p", 1)]
        );

        let hit = &find("name = 'a' AND version_number = 2").await[0];
        assert_eq!(
            hit.tags,
            vec![Tag::new("env", "prod"), Tag::new("src", "s3://bucket/two")]
        );

        let order = |o: &[&str]| {
            let q = query("", o, 100);
            async move { s.search_model_versions(&q).await.unwrap() }
        };
        assert_eq!(
            versions(&order(&["name ASC"]).await),
            vec![("B", 1), ("a", 3), ("a", 2), ("a", 1)]
        );
        assert_eq!(
            versions(&order(&["name DESC", "version_number ASC"]).await),
            vec![("a", 1), ("a", 2), ("a", 3), ("B", 1)]
        );
        assert_eq!(
            versions(&order(&["version_number ASC"]).await),
            vec![("B", 1), ("a", 1), ("a", 2), ("a", 3)]
        );
        assert_eq!(
            versions(&order(&["creation_timestamp ASC"]).await),
            vec![("a", 1), ("a", 2), ("B", 1), ("a", 3)]
        );
        assert_eq!(
            versions(&order(&["last_updated_timestamp DESC"]).await),
            vec![("a", 3), ("B", 1), ("a", 2), ("a", 1)]
        );

        let mut q = query("", &["version_number ASC"], 2);
        assert_eq!(
            versions(&s.search_model_versions(&q).await.unwrap()),
            vec![("B", 1), ("a", 1), ("a", 2)]
        );
        q.offset = 3;
        assert_eq!(
            versions(&s.search_model_versions(&q).await.unwrap()),
            vec![("a", 3)]
        );

        for bad in [
            "version = 1",
            "description = 'x'",
            "version_number = 1.5",
            "version_number = 'x'",
            "version_number LIKE '1'",
            "source_path IN ('x')",
            "run_id > 'x'",
            "run_id = 5",
            "tags.t IN ('a')",
            "params.p = 'x'",
        ] {
            let err = s
                .search_model_versions(&query(bad, &[], 10))
                .await
                .unwrap_err();
            assert_eq!(err.kind, ErrorKind::InvalidParameter, "{bad}");
        }
        for bad in [
            &["run_id"][..],
            &["tags.x"],
            &["name", "name DESC"],
            &["timestamp"],
        ] {
            let err = s
                .search_model_versions(&query("", bad, 10))
                .await
                .unwrap_err();
            assert_eq!(err.kind, ErrorKind::InvalidParameter, "{bad:?}");
        }
    }
}

#[tokio::test]
async fn audit_log_records_every_change() {
    for b in backends().await {
        let s = &b.store;
        let before = kaizen_core::now_millis();
        model(s, "m").await;
        version(s, "m", "abc").await;
        version(s, "m", "def").await;
        s.set_alias("m", "champion", 1, &who()).await.unwrap();
        s.set_alias("m", "champion", 2, &who()).await.unwrap();
        s.transition_stage("m", 2, Stage::Production, true, &who())
            .await
            .unwrap();
        s.delete_alias("m", "champion", &who()).await.unwrap();
        let anonymous = AuditRecord {
            actor: "unknown".into(),
            reason: None,
        };
        s.delete_model_version("m", 1, &anonymous).await.unwrap();
        model(s, "other").await;
        // Failed calls leave nothing behind.
        assert!(
            s.create_registered_model("m", None, &[], &who())
                .await
                .is_err()
        );
        assert!(s.set_alias("m", "x", 1, &who()).await.is_err());
        assert!(
            s.transition_stage("m", 1, Stage::Staging, false, &who())
                .await
                .is_err()
        );

        let log = s.audit_log("m").await.unwrap();
        let got: Vec<(&str, Option<i64>, &str)> = log
            .iter()
            .map(|e| (e.action.as_str(), e.version, e.details.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                (
                    "create_registered_model",
                    None,
                    "registered model m created"
                ),
                (
                    "create_model_version",
                    Some(1),
                    "version 1 created from runs:/abc/model"
                ),
                (
                    "create_model_version",
                    Some(2),
                    "version 2 created from runs:/def/model"
                ),
                ("set_alias", Some(1), "alias champion: none -> 1"),
                ("set_alias", Some(2), "alias champion: 1 -> 2"),
                (
                    "transition_stage",
                    Some(2),
                    "stage of version 2: None -> Production"
                ),
                ("delete_alias", Some(2), "alias champion: 2 -> none"),
                ("delete_model_version", Some(1), "version 1 deleted"),
            ],
            "{}",
            b.name
        );
        assert!(
            log.windows(2)
                .all(|w| w[0].id < w[1].id && w[0].timestamp <= w[1].timestamp)
        );
        assert!(log[0].timestamp >= before);
        assert!(log.iter().all(|e| e.model_name == "m"));
        assert_eq!(
            (log[0].actor.as_str(), log[0].reason.as_deref()),
            ("alice", Some("testing"))
        );
        assert_eq!(
            (log[7].actor.as_str(), log[7].reason.as_deref()),
            ("unknown", None)
        );
        assert_eq!(
            actions(&s.audit_log("other").await.unwrap()),
            vec!["create_registered_model"]
        );
        assert!(s.audit_log("never").await.unwrap().is_empty());
    }
}

#[tokio::test]
async fn recorded_decisions_join_the_audit_log() {
    for b in backends().await {
        let s = &b.store;
        model(s, "m").await;
        version(s, "m", "abc").await;
        let gate = AuditRecord {
            actor: "ci".into(),
            reason: Some("wape 0.12 vs 0.15".into()),
        };
        s.record_audit("m", Some(1), "gate.promote", r#"{"challenger":"1"}"#, &gate)
            .await
            .unwrap();
        s.record_audit("m", None, "note", "checked by hand", &who())
            .await
            .unwrap();

        let err = s
            .record_audit("nope", None, "gate.reject", "{}", &who())
            .await
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::NotFound, "{}", b.name);
        let err = s
            .record_audit("m", Some(7), "gate.reject", "{}", &who())
            .await
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::NotFound, "{}", b.name);
        for bad in ["", "set_alias", "create_model_version"] {
            let err = s
                .record_audit("m", None, bad, "{}", &who())
                .await
                .unwrap_err();
            assert_eq!(
                err.kind,
                ErrorKind::InvalidParameter,
                "{bad:?} on {}",
                b.name
            );
        }

        let log = s.audit_log("m").await.unwrap();
        assert_eq!(
            actions(&log),
            vec![
                "create_registered_model",
                "create_model_version",
                "gate.promote",
                "note"
            ],
            "{}",
            b.name
        );
        let promote = &log[2];
        assert_eq!(promote.version, Some(1));
        assert_eq!(promote.details, r#"{"challenger":"1"}"#);
        assert_eq!(
            (promote.actor.as_str(), promote.reason.as_deref()),
            ("ci", Some("wape 0.12 vs 0.15"))
        );
        assert_eq!(log[3].version, None);
        // The entries follow the model through a rename.
        s.rename_registered_model("m", "m2", &who()).await.unwrap();
        assert!(actions(&s.audit_log("m2").await.unwrap()).contains(&"gate.promote"));
    }
}
