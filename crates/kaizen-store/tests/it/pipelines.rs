//! The step cache, lineage edges and the dataset catalog on every backend.

use std::collections::BTreeMap;

use kaizen_store::{LineageEdge, StepCacheEntry};

use crate::backends;

fn entry(key: &str, step: &str, created: i64) -> StepCacheEntry {
    StepCacheEntry {
        cache_key: key.into(),
        pipeline: "etl".into(),
        step: step.into(),
        components: vec![
            ("input:sales.csv".into(), "aa".into()),
            ("definition".into(), "bb".into()),
        ],
        outputs: BTreeMap::from([("out.csv".into(), "cc".into())]),
        run_id: "r1".into(),
        created,
    }
}

#[tokio::test]
async fn step_cache_round_trips_and_finds_the_latest() {
    for b in backends().await {
        let s = &b.store;
        assert_eq!(s.get_step_cache("k1").await.unwrap(), None, "{}", b.name);
        assert_eq!(s.latest_step_cache("etl", "prep").await.unwrap(), None);
        s.put_step_cache(&entry("k1", "prep", 10)).await.unwrap();
        s.put_step_cache(&entry("k2", "prep", 20)).await.unwrap();
        s.put_step_cache(&entry("k3", "train", 30)).await.unwrap();
        assert_eq!(
            s.get_step_cache("k1").await.unwrap(),
            Some(entry("k1", "prep", 10))
        );
        let latest = s.latest_step_cache("etl", "prep").await.unwrap().unwrap();
        assert_eq!(latest.cache_key, "k2", "{}", b.name);
        // Recording a key again replaces it and makes it the latest.
        let mut again = entry("k1", "prep", 40);
        again.run_id = "r2".into();
        s.put_step_cache(&again).await.unwrap();
        assert_eq!(s.get_step_cache("k1").await.unwrap(), Some(again));
        let latest = s.latest_step_cache("etl", "prep").await.unwrap().unwrap();
        assert_eq!(latest.cache_key, "k1");
        assert_eq!(s.latest_step_cache("other", "prep").await.unwrap(), None);
    }
}

#[tokio::test]
async fn lineage_edges_by_either_end() {
    for b in backends().await {
        let s = &b.store;
        let edge = |sk: &str, si: &str, dk: &str, di: &str, rel: &str| LineageEdge {
            src_kind: sk.into(),
            src_id: si.into(),
            dst_kind: dk.into(),
            dst_id: di.into(),
            relation: rel.into(),
            created: 5,
        };
        s.add_lineage_edges(&[]).await.unwrap();
        let edges = vec![
            edge("file", "sales.csv", "run", "r1", "input"),
            edge("run", "r1", "artifact", "cas/abc", "output"),
            edge("artifact", "cas/abc", "run", "r2", "input"),
        ];
        s.add_lineage_edges(&edges).await.unwrap();
        let around = s.lineage_edges("artifact", "cas/abc").await.unwrap();
        assert_eq!(around, edges[1..].to_vec(), "{}", b.name);
        let r1 = s.lineage_edges("run", "r1").await.unwrap();
        assert_eq!(r1, edges[..2].to_vec());
        assert!(s.lineage_edges("run", "nope").await.unwrap().is_empty());
    }
}

fn dataset(name: &str, hash: &str, rows: i64) -> kaizen_store::NewDatasetVersion {
    kaizen_store::NewDatasetVersion {
        name: name.into(),
        content_hash: hash.into(),
        format: "parquet".into(),
        schema: serde_json::json!([{"name": "x", "type": "int64", "nullable": false}]),
        rows,
        stats: serde_json::json!({"x": {"nulls": 0, "min": 1, "max": rows}}),
        run_id: "r1".into(),
        pipeline: "etl".into(),
        step: "prep".into(),
    }
}

#[tokio::test]
async fn the_catalog_versions_datasets_by_content() {
    for b in crate::backends().await {
        let s = &b.store;
        let v1 = s
            .add_dataset_version(&dataset("sales", "h1", 3))
            .await
            .unwrap();
        assert_eq!(v1.version, 1, "{}", b.name);
        // The same content again is the same version.
        let again = s
            .add_dataset_version(&dataset("sales", "h1", 3))
            .await
            .unwrap();
        assert_eq!(again, v1, "{}", b.name);
        let v2 = s
            .add_dataset_version(&dataset("sales", "h2", 5))
            .await
            .unwrap();
        assert_eq!(v2.version, 2);
        s.add_dataset_version(&dataset("stores", "h3", 1))
            .await
            .unwrap();
        // Going back to earlier content is a new version: versions follow time.
        let v3 = s
            .add_dataset_version(&dataset("sales", "h1", 3))
            .await
            .unwrap();
        assert_eq!(v3.version, 3);

        let latest = s.get_dataset_version("sales", None).await.unwrap();
        assert_eq!(latest.version, 3);
        assert_eq!(latest.data, dataset("sales", "h1", 3), "{}", b.name);
        let second = s.get_dataset_version("sales", Some(2)).await.unwrap();
        assert_eq!(second.data.rows, 5);
        assert_eq!(second.data.stats["x"]["max"], 5);
        let e = s.get_dataset_version("sales", Some(9)).await.unwrap_err();
        assert_eq!(e.kind, kaizen_core::ErrorKind::NotFound);
        assert_eq!(e.message, "dataset 'sales' has no version 9");
        let e = s.get_dataset_version("nope", None).await.unwrap_err();
        assert_eq!(e.message, "no dataset named 'nope'");

        let all = s.list_datasets().await.unwrap();
        let names: Vec<(&str, i64)> = all
            .iter()
            .map(|d| (d.data.name.as_str(), d.version))
            .collect();
        assert_eq!(names, vec![("sales", 3), ("stores", 1)], "{}", b.name);
        let versions: Vec<i64> = s
            .dataset_versions("sales")
            .await
            .unwrap()
            .iter()
            .map(|d| d.version)
            .collect();
        assert_eq!(versions, vec![1, 2, 3]);
        assert!(s.dataset_versions("nope").await.unwrap().is_empty());
    }
}
