//! The event log and delivery cursors on every backend.

use kaizen_store::NewEvent;
use serde_json::json;

use crate::backends;

#[tokio::test]
async fn events_append_in_order_and_cursors_persist() {
    for b in backends().await {
        let s = &b.store;
        assert!(s.last_events(10).await.unwrap().is_empty(), "{}", b.name);
        let mut ids = Vec::new();
        for i in 0..3 {
            ids.push(
                s.append_event(&NewEvent {
                    kind: "run.finished".into(),
                    subject: format!("run-{i}"),
                    payload: json!({"n": i}),
                })
                .await
                .unwrap(),
            );
        }
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "{}: {ids:?}", b.name);
        let after = s.events_after(ids[0], 10).await.unwrap();
        assert_eq!(after.len(), 2);
        assert_eq!(after[0].subject, "run-1");
        assert_eq!(after[1].payload, json!({"n": 2}));
        assert_eq!(s.events_after(ids[0], 1).await.unwrap().len(), 1);
        let last = s.last_events(2).await.unwrap();
        assert_eq!(
            last.iter().map(|e| e.id).collect::<Vec<_>>(),
            ids[1..].to_vec()
        );

        assert_eq!(s.event_cursor("ops").await.unwrap(), 0);
        s.set_event_cursor("ops", ids[1]).await.unwrap();
        s.set_event_cursor("ops", ids[2]).await.unwrap();
        assert_eq!(s.event_cursor("ops").await.unwrap(), ids[2], "{}", b.name);
        assert_eq!(s.event_cursor("other").await.unwrap(), 0);
    }
}
