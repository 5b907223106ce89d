//! The step cache and lineage edges on every backend.

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
