//! The promotion gate: a challenger version takes an alias only if it beats the version holding
//! it on the same held-out rows, overall and in every segment, by a rule. Every decision, promoted
//! or rejected, goes to the registry's audit log with its evidence.

use std::collections::BTreeMap;

use kaizen_ml::{FittedModel, Matrix, Task};
use kaizen_tracking::{Actor, Services};
use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError};
use crate::package::Package;
use crate::register::load_version;

/// The audit action of a promotion.
pub const ACTION_PROMOTE: &str = "gate.promote";
/// The audit action of a rejection.
pub const ACTION_REJECT: &str = "gate.reject";

/// When a challenger beats the champion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GateRule {
    /// The metric compared (`wape`, `rmse`, `mae`, ...).
    pub metric: String,
    pub lower_is_better: bool,
    /// The relative improvement needed overall: 0.01 is 1% better.
    pub min_improvement: f64,
    /// The relative worsening allowed in any one segment: 0.05 is at most 5% worse. `None` does
    /// not check segments (they are still reported).
    pub max_segment_regression: Option<f64>,
}

impl Default for GateRule {
    fn default() -> Self {
        GateRule {
            metric: "wape".into(),
            lower_is_better: true,
            min_improvement: 0.01,
            max_segment_regression: Some(0.05),
        }
    }
}

/// The rows both models are scored on: features by name (each model takes its own columns),
/// targets, and optionally a segment per row (a store, a region).
#[derive(Debug, Clone)]
pub struct HeldOut {
    pub x: Matrix,
    pub y: Vec<f64>,
    pub segments: Option<Vec<String>>,
}

/// The metric in one segment for both models.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SegmentComparison {
    pub segment: String,
    pub challenger: f64,
    pub champion: f64,
    /// `(challenger - champion) / |champion|`: for a metric where lower is better, positive is
    /// worse.
    pub change: f64,
}

/// What the gate decided, and why. NaN values serialize as `null`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateDecision {
    pub promoted: bool,
    pub reason: String,
    pub alias: String,
    pub metric: String,
    pub challenger_version: String,
    pub challenger_value: f64,
    pub champion_value: Option<f64>,
    pub champion_version: Option<String>,
    pub segments: Vec<SegmentComparison>,
}

impl GateDecision {
    /// The version holding the alias after the decision.
    pub fn holder(&self) -> &str {
        if self.promoted {
            &self.challenger_version
        } else {
            self.champion_version.as_deref().unwrap_or_default()
        }
    }

    /// One line for people: where the alias went, and why.
    pub fn summary(&self) -> String {
        let outcome = if self.promoted {
            format!("{} -> version {}", self.alias, self.challenger_version)
        } else {
            format!("{} stays at version {}", self.alias, self.holder())
        };
        format!("{outcome} ({})", self.reason)
    }
}

/// Scores version `challenger_version` of `model_name` and the version holding `alias` on
/// `heldout`, applies `rule`, moves the alias to the challenger when it passes, and records the
/// decision (`gate.promote` or `gate.reject`) in the audit log. Without a champion the challenger
/// is promoted ("no champion yet").
pub async fn gate(
    services: &Services,
    model_name: &str,
    challenger_version: &str,
    alias: &str,
    rule: &GateRule,
    heldout: &HeldOut,
    actor: &Actor,
) -> Result<GateDecision> {
    gate_with(
        services,
        model_name,
        challenger_version,
        alias,
        rule,
        heldout,
        actor,
        &|_| Ok(None),
    )
    .await
}

/// How the champion sees the held-out rows when its features differ from the challenger's (its
/// own preprocessing or class labels): the same rows, prepared for the champion's package, or
/// `None` for `heldout` itself.
pub type ChampionRows<'a> = &'a (dyn Fn(&Package) -> Result<Option<HeldOut>> + Send + Sync);

/// [`gate`], with the champion scored on `champion_rows(its package)` when that answers rows
/// (the same rows in the same order, prepared the champion's way).
#[allow(clippy::too_many_arguments)]
pub async fn gate_with(
    services: &Services,
    model_name: &str,
    challenger_version: &str,
    alias: &str,
    rule: &GateRule,
    heldout: &HeldOut,
    actor: &Actor,
    champion_rows: ChampionRows<'_>,
) -> Result<GateDecision> {
    check_heldout(heldout)?;
    let (challenger, challenger_pkg) =
        load_version(services, model_name, challenger_version).await?;
    let challenger_version = challenger.version.to_string();
    let registered = services.registry.get_registered_model(model_name).await?;
    let champion_version = registered
        .aliases
        .iter()
        .find(|a| a.alias == alias)
        .map(|a| a.version.clone());

    let challenger_scores = Scores::of(&challenger_pkg.model, heldout)?;
    let challenger_all = challenger_scores.overall.clone();
    let challenger_value = metric_value(&challenger_all, &rule.metric)?;
    let mut champion_all = None;
    let mut segments = Vec::new();
    let (promoted, reason, champion_value) = match &champion_version {
        None => (
            true,
            format!(
                "no champion yet: version {challenger_version} takes @{alias} with {} {}",
                rule.metric,
                fmt(challenger_value)
            ),
            None,
        ),
        Some(v) if *v == challenger_version => (
            false,
            format!("version {challenger_version} already holds @{alias}"),
            Some(challenger_value),
        ),
        Some(v) => {
            let (_, champion_pkg) = load_version(services, model_name, v).await?;
            let own_rows = champion_rows(&champion_pkg)?;
            let champion_heldout = match &own_rows {
                Some(rows) => {
                    check_heldout(rows)?;
                    if rows.y.len() != heldout.y.len() {
                        return Err(TrainError::invalid(format!(
                            "the champion's held-out rows are {}, the challenger's {}",
                            rows.y.len(),
                            heldout.y.len()
                        )));
                    }
                    rows
                }
                None => heldout,
            };
            let champion_scores = Scores::of(&champion_pkg.model, champion_heldout)?;
            let champion_value = metric_value(&champion_scores.overall, &rule.metric)?;
            segments = compare_segments(&challenger_scores, &champion_scores, &rule.metric);
            let (promoted, reason) = decide(rule, challenger_value, v, champion_value, &segments);
            champion_all = Some(champion_scores.overall);
            (promoted, reason, Some(champion_value))
        }
    };

    let decided = Actor {
        user: actor.user.clone(),
        reason: Some(reason.clone()),
    };
    if promoted {
        services
            .registry
            .set_alias(model_name, alias, &challenger_version, &decided)
            .await?;
    }
    let details = serde_json::json!({
        "challenger": challenger_version,
        "champion": champion_version,
        "alias": alias,
        "metric": rule.metric,
        "values": {"challenger": challenger_value, "champion": champion_value},
        "metrics": {"challenger": challenger_all, "champion": champion_all},
        "segments": segments,
        "rule": rule,
        "reason": reason,
    });
    let action = if promoted {
        ACTION_PROMOTE
    } else {
        ACTION_REJECT
    };
    services
        .registry
        .record_decision(
            model_name,
            Some(&challenger_version),
            action,
            &details.to_string(),
            &decided,
        )
        .await?;
    tracing::info!(
        model = model_name,
        challenger = %challenger_version,
        champion = ?champion_version,
        promoted,
        %reason,
        "promotion gate decided"
    );
    Ok(GateDecision {
        promoted,
        reason,
        alias: alias.to_string(),
        metric: rule.metric.clone(),
        challenger_version,
        challenger_value,
        champion_value,
        champion_version,
        segments,
    })
}

fn check_heldout(h: &HeldOut) -> Result<()> {
    if h.x.rows == 0 {
        return Err(TrainError::invalid("the held-out set has no rows"));
    }
    if h.y.len() != h.x.rows {
        return Err(TrainError::invalid(format!(
            "the held-out set has {} targets for {} rows",
            h.y.len(),
            h.x.rows
        )));
    }
    if let Some(s) = &h.segments
        && s.len() != h.x.rows
    {
        return Err(TrainError::invalid(format!(
            "the held-out set has {} segments for {} rows",
            s.len(),
            h.x.rows
        )));
    }
    Ok(())
}

/// A model's metrics on the held-out rows, overall and per segment.
struct Scores {
    overall: BTreeMap<String, f64>,
    segments: BTreeMap<String, BTreeMap<String, f64>>,
}

impl Scores {
    fn of(model: &FittedModel, heldout: &HeldOut) -> Result<Scores> {
        let x = columns_for(model, &heldout.x)?;
        let predicted = Predicted::of(model, &x);
        let overall = predicted.metrics(&heldout.y, None);
        let mut segments = BTreeMap::new();
        if let Some(labels) = &heldout.segments {
            let mut rows: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
            for (i, s) in labels.iter().enumerate() {
                rows.entry(s.as_str()).or_default().push(i);
            }
            for (segment, index) in rows {
                segments.insert(
                    segment.to_string(),
                    predicted.metrics(&heldout.y, Some(&index)),
                );
            }
        }
        Ok(Scores { overall, segments })
    }
}

/// A model's predictions: values for regression, class probabilities for classification.
enum Predicted {
    Values(Vec<f64>),
    Proba(Vec<Vec<f64>>),
}

impl Predicted {
    fn of(model: &FittedModel, x: &Matrix) -> Predicted {
        match model.task {
            Task::Regression => Predicted::Values(model.predict(x)),
            Task::Binary | Task::Multiclass { .. } => Predicted::Proba(model.predict_proba(x)),
        }
    }

    /// The metrics by name (regression: mae, rmse, mape, smape, wape, bias, r2; classification:
    /// accuracy, log_loss, f1, auc) on the rows at `index` (all when `None`).
    fn metrics(&self, actual: &[f64], index: Option<&[usize]>) -> BTreeMap<String, f64> {
        fn pick<T: Clone>(all: &[T], index: Option<&[usize]>) -> Vec<T> {
            match index {
                Some(index) => index.iter().map(|&i| all[i].clone()).collect(),
                None => all.to_vec(),
            }
        }
        let y = pick(actual, index);
        let pairs = match self {
            Predicted::Values(p) => kaizen_ml::metrics::regression(&y, &pick(p, index)).to_pairs(),
            Predicted::Proba(p) => {
                kaizen_ml::metrics::classification(&y, &pick(p, index)).to_pairs()
            }
        };
        pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
    }
}

/// The columns of `x` that `model` takes, in its order.
fn columns_for(model: &FittedModel, x: &Matrix) -> Result<Matrix> {
    let columns = model
        .features
        .iter()
        .map(|f| {
            x.names
                .iter()
                .position(|n| n == f)
                .map(|j| x.column(j).to_vec())
                .ok_or_else(|| {
                    TrainError::invalid(format!(
                        "the held-out set has no column `{f}`, a feature of the model"
                    ))
                })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Matrix::from_columns(model.features.clone(), columns))
}

fn metric_value(scores: &BTreeMap<String, f64>, metric: &str) -> Result<f64> {
    scores
        .get(metric)
        .copied()
        .ok_or_else(|| TrainError::UnknownMetric {
            metric: metric.to_string(),
            available: scores.keys().cloned().collect(),
        })
}

/// `(new - old) / |old|`, infinite when `old` is 0 and `new` is not.
fn relative_change(new: f64, old: f64) -> f64 {
    if new == old {
        0.0
    } else {
        (new - old) / old.abs()
    }
}

fn compare_segments(
    challenger: &Scores,
    champion: &Scores,
    metric: &str,
) -> Vec<SegmentComparison> {
    challenger
        .segments
        .iter()
        .map(|(segment, scores)| {
            let a = scores.get(metric).copied().unwrap_or(f64::NAN);
            let b = champion
                .segments
                .get(segment)
                .and_then(|s| s.get(metric))
                .copied()
                .unwrap_or(f64::NAN);
            SegmentComparison {
                segment: segment.clone(),
                challenger: a,
                champion: b,
                change: relative_change(a, b),
            }
        })
        .collect()
}

fn fmt(v: f64) -> String {
    format!("{v:.4}")
}

fn pct(v: f64) -> String {
    format!("{:.1}%", v * 100.0)
}

/// The rule applied to the numbers: promoted or not, and the sentence saying why.
fn decide(
    rule: &GateRule,
    challenger: f64,
    champion_version: &str,
    champion: f64,
    segments: &[SegmentComparison],
) -> (bool, String) {
    let m = &rule.metric;
    if challenger.is_nan() {
        return (false, format!("the challenger's {m} is not a number"));
    }
    if champion.is_nan() {
        return (
            true,
            format!(
                "{m} {} against no number for version {champion_version}",
                fmt(challenger)
            ),
        );
    }
    let change = relative_change(challenger, champion);
    let improvement = if rule.lower_is_better {
        -change
    } else {
        change
    };
    let against = format!(
        "{m} {} against {} for version {champion_version}",
        fmt(challenger),
        fmt(champion)
    );
    if improvement.is_nan() || improvement < rule.min_improvement {
        return (
            false,
            format!(
                "{against}: {} better, {} required",
                pct(improvement),
                pct(rule.min_improvement)
            ),
        );
    }
    if let Some(limit) = rule.max_segment_regression {
        // The worst segment decides; segments without a number on both sides cannot.
        let worst = segments
            .iter()
            .map(|s| {
                let worse = if rule.lower_is_better {
                    s.change
                } else {
                    -s.change
                };
                (s, worse)
            })
            .filter(|(_, worse)| !worse.is_nan())
            .max_by(|a, b| a.1.total_cmp(&b.1));
        if let Some((s, worse)) = worst
            && worse > limit
        {
            return (
                false,
                format!(
                    "segment {}: {m} {} against {} for version {champion_version}, {} worse \
                     (at most {} allowed)",
                    s.segment,
                    fmt(s.challenger),
                    fmt(s.champion),
                    pct(worse),
                    pct(limit)
                ),
            );
        }
    }
    (
        true,
        format!(
            "{against}: {} better ({} required)",
            pct(improvement),
            pct(rule.min_improvement)
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment(name: &str, challenger: f64, champion: f64) -> SegmentComparison {
        SegmentComparison {
            segment: name.into(),
            challenger,
            champion,
            change: relative_change(challenger, champion),
        }
    }

    #[test]
    fn the_rule() {
        let rule = GateRule::default();
        let (ok, why) = decide(&rule, 0.12, "1", 0.15, &[]);
        assert!(ok, "{why}");
        assert_eq!(
            why,
            "wape 0.1200 against 0.1500 for version 1: 20.0% better (1.0% required)"
        );
        let (ok, why) = decide(&rule, 0.149, "1", 0.15, &[]);
        assert!(!ok);
        assert_eq!(
            why,
            "wape 0.1490 against 0.1500 for version 1: 0.7% better, 1.0% required"
        );
        let segments = [segment("north", 0.10, 0.20), segment("south", 0.21, 0.20)];
        let (ok, why) = decide(&rule, 0.12, "1", 0.15, &segments);
        assert!(ok, "5% worse is allowed: {why}");
        let segments = [segment("north", 0.10, 0.20), segment("south", 0.22, 0.20)];
        let (ok, why) = decide(&rule, 0.12, "1", 0.15, &segments);
        assert!(!ok);
        assert!(
            why.starts_with("segment south: wape 0.2200 against 0.2000"),
            "{why}"
        );
        let lenient = GateRule {
            max_segment_regression: None,
            ..GateRule::default()
        };
        assert!(decide(&lenient, 0.12, "1", 0.15, &segments).0);
        // Higher is better: r2 0.9 against 0.8.
        let r2 = GateRule {
            metric: "r2".into(),
            lower_is_better: false,
            ..GateRule::default()
        };
        assert!(decide(&r2, 0.9, "1", 0.8, &[]).0);
        assert!(!decide(&r2, 0.8, "1", 0.9, &[]).0);
        // NaN never wins, and loses to nothing.
        assert!(!decide(&rule, f64::NAN, "1", 0.15, &[]).0);
        assert!(decide(&rule, 0.15, "1", f64::NAN, &[]).0);
        // A perfect champion cannot be beaten by a relative margin.
        assert!(!decide(&rule, 0.0, "1", 0.0, &[]).0);
    }

    #[test]
    fn rule_defaults_and_unknown_fields() {
        let rule: GateRule = serde_json::from_str(r#"{"metric": "rmse"}"#).unwrap();
        assert_eq!(rule.metric, "rmse");
        assert_eq!(rule.max_segment_regression, Some(0.05));
        assert!(serde_json::from_str::<GateRule>(r#"{"metrc": "rmse"}"#).is_err());
    }
}
