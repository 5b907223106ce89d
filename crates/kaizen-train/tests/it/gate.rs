//! The promotion gate on registered versions, with its audit entries.

use kaizen_tracking::Actor;
use kaizen_train::{GateRule, HeldOut, gate};

use crate::register::register;
use crate::{Env, data};

fn heldout() -> HeldOut {
    let (x, y, segments) = data();
    HeldOut {
        x,
        y,
        segments: Some(segments),
    }
}

#[tokio::test]
async fn the_gate_promotes_better_versions_and_rejects_segment_regressions() {
    let env = Env::new().await;
    // WAPE about 0.20, then 0.10 in both segments; then 0.00 in north but 0.15 in south: better
    // overall (0.075), 50% worse in the south.
    register(&env, "sales", [0.2, 0.2]).await;
    register(&env, "sales", [0.1, 0.1]).await;
    register(&env, "sales", [0.0, 0.15]).await;
    let rule = GateRule::default();
    let actor = Actor {
        user: Some("ci".into()),
        reason: None,
    };
    let h = heldout();
    let s = &env.services;

    let first = gate(s, "sales", "1", "champion", &rule, &h, &actor)
        .await
        .unwrap();
    assert!(first.promoted);
    assert!(
        first.reason.starts_with("no champion yet"),
        "{}",
        first.reason
    );
    assert_eq!(first.champion_version, None);
    assert!((first.challenger_value - 0.2).abs() < 0.01, "{first:?}");

    let second = gate(s, "sales", "2", "champion", &rule, &h, &actor)
        .await
        .unwrap();
    assert!(second.promoted, "{}", second.reason);
    assert_eq!(second.champion_version.as_deref(), Some("1"));
    assert!((second.champion_value.unwrap() - 0.2).abs() < 0.01);
    assert!((second.challenger_value - 0.1).abs() < 0.01);
    assert_eq!(second.segments.len(), 2);
    assert!(
        second.segments.iter().all(|c| c.change < -0.4),
        "{second:?}"
    );
    let champion = s
        .registry
        .get_version_by_alias("sales", "champion")
        .await
        .unwrap();
    assert_eq!(champion.version, 2);

    let third = gate(s, "sales", "3", "champion", &rule, &h, &actor)
        .await
        .unwrap();
    assert!(!third.promoted);
    assert!(third.challenger_value < third.champion_value.unwrap());
    assert!(
        third.reason.starts_with("segment south: wape"),
        "{}",
        third.reason
    );
    let south = third
        .segments
        .iter()
        .find(|c| c.segment == "south")
        .unwrap();
    assert!(south.change > 0.4, "{south:?}");
    // The alias stays where it was.
    let champion = s
        .registry
        .get_version_by_alias("sales", "champion")
        .await
        .unwrap();
    assert_eq!(champion.version, 2);

    // Without the segment check, version 3 wins.
    let lenient = GateRule {
        max_segment_regression: None,
        ..GateRule::default()
    };
    let fourth = gate(s, "sales", "3", "champion", &lenient, &h, &actor)
        .await
        .unwrap();
    assert!(fourth.promoted, "{}", fourth.reason);

    // Every decision is in the audit log, with its evidence.
    let log = s.registry.audit_log("sales").await.unwrap();
    let decisions: Vec<_> = log
        .iter()
        .filter(|e| e.action.starts_with("gate."))
        .collect();
    let got: Vec<(&str, Option<i64>)> = decisions
        .iter()
        .map(|e| (e.action.as_str(), e.version))
        .collect();
    assert_eq!(
        got,
        vec![
            ("gate.promote", Some(1)),
            ("gate.promote", Some(2)),
            ("gate.reject", Some(3)),
            ("gate.promote", Some(3)),
        ]
    );
    let reject = decisions[2];
    assert_eq!(reject.actor, "ci");
    assert_eq!(reject.reason.as_deref(), Some(third.reason.as_str()));
    let details: serde_json::Value = serde_json::from_str(&reject.details).unwrap();
    assert_eq!(details["challenger"], "3");
    assert_eq!(details["champion"], "2");
    assert_eq!(details["metric"], "wape");
    assert_eq!(details["reason"], third.reason.as_str());
    assert_eq!(
        details["values"]["challenger"].as_f64(),
        Some(third.challenger_value)
    );
    assert_eq!(details["segments"].as_array().unwrap().len(), 2);
    // The alias moves carry the decision as their reason.
    let moves: Vec<_> = log.iter().filter(|e| e.action == "set_alias").collect();
    assert_eq!(moves.len(), 3);
    assert_eq!(moves[1].reason.as_deref(), Some(second.reason.as_str()));

    // Gating the holder again changes nothing and says so.
    let again = gate(s, "sales", "champion", "champion", &rule, &h, &actor)
        .await
        .unwrap();
    assert!(!again.promoted);
    assert_eq!(again.reason, "version 3 already holds @champion");
}

#[tokio::test]
async fn the_gate_refuses_bad_input() {
    let env = Env::new().await;
    register(&env, "sales", [0.1, 0.1]).await;
    let actor = Actor::default();
    let s = &env.services;
    let mut h = heldout();
    h.y.pop();
    let err = gate(
        s,
        "sales",
        "1",
        "champion",
        &GateRule::default(),
        &h,
        &actor,
    )
    .await
    .unwrap_err();
    assert!(
        err.to_string().contains("399 targets for 400 rows"),
        "{err}"
    );
    let rule = GateRule {
        metric: "auc".into(),
        ..GateRule::default()
    };
    let err = gate(s, "sales", "1", "champion", &rule, &heldout(), &actor)
        .await
        .unwrap_err();
    assert!(err.to_string().starts_with("no metric `auc`"), "{err}");
    let mut h = heldout();
    h.x.names[1] = "store".into();
    let err = gate(
        s,
        "sales",
        "1",
        "champion",
        &GateRule::default(),
        &h,
        &actor,
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("no column `seg`"), "{err}");
    // Nothing was decided, so nothing was recorded.
    let log = s.registry.audit_log("sales").await.unwrap();
    assert!(!log.iter().any(|e| e.action.starts_with("gate.")));
}
