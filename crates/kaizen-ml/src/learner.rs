//! Learners: what to train ([`LearnerSpec`]), training ([`fit`]) and the fitted model
//! ([`FittedModel`]), which keeps its parameters in its own types (coefficients, trees) so that
//! predicting, saving and exporting need no training library.

use forust_ml::gradientbooster::{GradientBooster, GrowPolicy as ForustGrowPolicy};
use forust_ml::objective::ObjectiveType;
use serde::{Deserialize, Serialize};

use crate::error::{MlError, Result};
use crate::linear::{self, LinearParams, LogisticParams, PenaltyParams, TextLinearParams};
use crate::matrix::Matrix;

/// What a model predicts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Task {
    Regression,
    /// Labels 0 and 1; predictions are P(1).
    Binary,
    /// Labels 0..classes; predictions are the most probable class.
    Multiclass {
        classes: usize,
    },
}

/// Gradient-boosted trees' settings (names as LightGBM's where they mean the same).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GbdtParams {
    pub iterations: usize,
    pub learning_rate: f64,
    pub max_depth: usize,
    /// Leaves per tree at most (0: no limit but depth).
    pub max_leaves: usize,
    pub min_leaf_weight: f64,
    pub l2: f64,
    pub subsample: f64,
    pub colsample: f64,
    pub nbins: u16,
    /// Stop when the validation loss has not improved for this many rounds (needs validation
    /// data).
    pub early_stopping_rounds: Option<usize>,
    pub seed: u64,
    /// How trees grow: level by level to `max_depth` (`depth_wise`, XGBoost's default) or leaf
    /// by leaf up to `max_leaves` (`loss_guide`). forust's `loss_guide` takes leaves in the order
    /// of their own score, not of their best split's gain as LightGBM does, and fitted worse in
    /// `benches/train`; prefer `depth_wise` with `max_leaves`.
    pub grow_policy: GrowPolicy,
    /// Threads for training (default: all cores).
    pub threads: Option<usize>,
}

/// How a tree grows; see [`GbdtParams::grow_policy`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GrowPolicy {
    #[default]
    DepthWise,
    LossGuide,
}

impl Default for GbdtParams {
    fn default() -> Self {
        GbdtParams {
            iterations: 200,
            learning_rate: 0.1,
            max_depth: 6,
            max_leaves: 31,
            min_leaf_weight: 1.0,
            l2: 1.0,
            subsample: 1.0,
            colsample: 1.0,
            nbins: 255,
            early_stopping_rounds: None,
            seed: 0,
            grow_policy: GrowPolicy::DepthWise,
            threads: None,
        }
    }
}

/// A learner and its hyperparameters, as written in `kaizen.toml` (`learner = "gbdt"`, then its
/// settings).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "learner", rename_all = "snake_case")]
pub enum LearnerSpec {
    Gbdt(GbdtParams),
    /// Ordinary least squares (regression).
    Linear(LinearParams),
    /// Least squares with an L2 penalty (regression).
    Ridge(PenaltyParams),
    /// Least squares with an L1 penalty (regression).
    Lasso(PenaltyParams),
    /// Logistic regression: binary, or multinomial (softmax) for several classes.
    Logistic(LogisticParams),
    /// Logistic (classification) or ridge (regression) over vectorized text; see
    /// [`TextLinearParams`].
    TextLinear(TextLinearParams),
}

impl LearnerSpec {
    pub fn name(&self) -> &'static str {
        match self {
            LearnerSpec::Gbdt(_) => "gbdt",
            LearnerSpec::Linear(_) => "linear",
            LearnerSpec::Ridge(_) => "ridge",
            LearnerSpec::Lasso(_) => "lasso",
            LearnerSpec::Logistic(_) => "logistic",
            LearnerSpec::TextLinear(_) => "text_linear",
        }
    }
}

/// One node of a fitted tree: a split (`x[feature] < threshold` goes left, missing goes to
/// `missing_left`'s side) or a leaf with its value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TreeNode {
    pub feature: usize,
    pub threshold: f64,
    pub left: usize,
    pub right: usize,
    pub missing_left: bool,
    pub leaf: bool,
    pub value: f64,
}

/// A fitted tree ensemble for one output: `base + sum of leaf values`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TreeEnsemble {
    pub base: f64,
    pub trees: Vec<Vec<TreeNode>>,
}

impl TreeEnsemble {
    fn from_booster(booster: &GradientBooster) -> TreeEnsemble {
        let kept = booster.prediction_iteration.unwrap_or(booster.trees.len());
        let trees = booster.trees[..kept.min(booster.trees.len())]
            .iter()
            .map(|tree| {
                tree.nodes
                    .iter()
                    .map(|n| TreeNode {
                        feature: n.split_feature,
                        threshold: n.split_value,
                        left: n.left_child,
                        right: n.right_child,
                        missing_left: n.missing_node == n.left_child,
                        leaf: n.is_leaf,
                        value: f64::from(n.weight_value),
                    })
                    .collect()
            })
            .collect();
        TreeEnsemble {
            base: booster.base_score,
            trees,
        }
    }

    /// The raw score (margin) of every row.
    pub fn raw(&self, x: &Matrix) -> Vec<f64> {
        (0..x.rows)
            .map(|i| {
                let mut score = self.base;
                for tree in &self.trees {
                    let mut at = 0;
                    loop {
                        let node = &tree[at];
                        if node.leaf {
                            score += node.value;
                            break;
                        }
                        let v = x.get(i, node.feature);
                        let left = if v.is_nan() {
                            node.missing_left
                        } else {
                            v < node.threshold
                        };
                        at = if left { node.left } else { node.right };
                    }
                }
                score
            })
            .collect()
    }
}

/// A fitted model's parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ModelParams {
    /// One ensemble per output: one for regression and binary, one per class (one against the
    /// rest, probabilities normalized) for multiclass.
    Trees { ensembles: Vec<TreeEnsemble> },
    /// A linear model per output: `intercepts[k] + coefficients[k] · x`, then `link`. Binary
    /// logistic models have one output (the margin of class 1), multinomial ones one per class.
    Linear {
        coefficients: Vec<Vec<f64>>,
        intercepts: Vec<f64>,
        link: Link,
    },
}

/// What turns a linear model's outputs into predictions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Link {
    /// The value itself (regression).
    Identity,
    /// `1 / (1 + e^-z)`: P(1) of a binary model.
    Logistic,
    /// `e^z_k / sum e^z`: the class probabilities of a multinomial model.
    Softmax,
}

/// A trained model: its task, the feature names it expects (in order), and its parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FittedModel {
    pub task: Task,
    pub features: Vec<String>,
    pub learner: String,
    pub params: ModelParams,
    /// Boosting rounds kept after early stopping, where that applies.
    pub best_iteration: Option<usize>,
}

fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

impl FittedModel {
    /// One number per row: the value (regression), P(1) (binary) or the class (multiclass).
    pub fn predict(&self, x: &Matrix) -> Vec<f64> {
        match self.task {
            Task::Regression => self.raw(x).swap_remove(0),
            Task::Binary => self.predict_proba(x).into_iter().map(|p| p[1]).collect(),
            Task::Multiclass { .. } => self
                .predict_proba(x)
                .into_iter()
                .map(|p| {
                    p.iter()
                        .enumerate()
                        .fold((0, f64::NEG_INFINITY), |best, (k, &v)| {
                            if v > best.1 { (k, v) } else { best }
                        })
                        .0 as f64
                })
                .collect(),
        }
    }

    /// Class probabilities per row (binary: `[P(0), P(1)]`); regression gives the value alone.
    pub fn predict_proba(&self, x: &Matrix) -> Vec<Vec<f64>> {
        let raw = self.raw(x);
        (0..x.rows)
            .map(|i| match self.task {
                Task::Regression => vec![raw[0][i]],
                Task::Binary => {
                    let p = sigmoid(raw[0][i]);
                    vec![1.0 - p, p]
                }
                Task::Multiclass { .. } if self.link() == Some(Link::Softmax) => {
                    let max = raw.iter().map(|r| r[i]).fold(f64::NEG_INFINITY, f64::max);
                    let es: Vec<f64> = raw.iter().map(|r| (r[i] - max).exp()).collect();
                    let total: f64 = es.iter().sum();
                    es.iter().map(|e| e / total).collect()
                }
                // One against the rest: each output's P(class), normalized.
                Task::Multiclass { .. } => {
                    let ps: Vec<f64> = raw.iter().map(|r| sigmoid(r[i])).collect();
                    let total: f64 = ps.iter().sum();
                    ps.iter().map(|p| p / total).collect()
                }
            })
            .collect()
    }

    fn link(&self) -> Option<Link> {
        match &self.params {
            ModelParams::Linear { link, .. } => Some(*link),
            ModelParams::Trees { .. } => None,
        }
    }

    /// Raw scores (margins), one vector per output.
    pub fn raw(&self, x: &Matrix) -> Vec<Vec<f64>> {
        match &self.params {
            ModelParams::Trees { ensembles } => ensembles.iter().map(|e| e.raw(x)).collect(),
            ModelParams::Linear {
                coefficients,
                intercepts,
                ..
            } => coefficients
                .iter()
                .zip(intercepts)
                .map(|(w, &b)| {
                    let mut out = vec![b; x.rows];
                    for (j, &wj) in w.iter().enumerate() {
                        for (o, v) in out.iter_mut().zip(x.column(j)) {
                            *o += wj * v;
                        }
                    }
                    out
                })
                .collect(),
        }
    }
}

/// Trains `spec` on `x`/`y`; `valid` (features and labels) drives early stopping.
pub fn fit(
    spec: &LearnerSpec,
    task: Task,
    x: &Matrix,
    y: &[f64],
    valid: Option<(&Matrix, &[f64])>,
) -> Result<FittedModel> {
    if x.rows == 0 {
        return Err(MlError::invalid("no rows to train on"));
    }
    if y.len() != x.rows {
        return Err(MlError::invalid(format!(
            "{} labels for {} rows",
            y.len(),
            x.rows
        )));
    }
    if let Some(bad) = y.iter().find(|v| !v.is_finite()) {
        return Err(MlError::invalid(format!(
            "the target has a value that is not a number: {bad}"
        )));
    }
    if let Task::Binary | Task::Multiclass { .. } = task {
        let classes = match task {
            Task::Multiclass { classes } => classes,
            _ => 2,
        };
        if let Some(bad) = y
            .iter()
            .find(|&&v| v < 0.0 || v.fract() != 0.0 || v as usize >= classes)
        {
            return Err(MlError::invalid(format!(
                "a class label must be one of 0..{classes}, got {bad}"
            )));
        }
    }
    let linear_model = |params: ModelParams| FittedModel {
        task,
        features: x.names.clone(),
        learner: spec.name().into(),
        params,
        best_iteration: None,
    };
    match spec {
        LearnerSpec::Gbdt(params) => fit_gbdt(params, task, x, y, valid),
        LearnerSpec::Linear(params) => Ok(linear_model(linear::fit_ols(params, task, x, y)?)),
        LearnerSpec::Ridge(params) => Ok(linear_model(linear::fit_elastic_net(
            "ridge", params, 0.0, task, x, y,
        )?)),
        LearnerSpec::Lasso(params) => Ok(linear_model(linear::fit_elastic_net(
            "lasso", params, 1.0, task, x, y,
        )?)),
        LearnerSpec::Logistic(params) => Ok(linear_model(linear::fit_logistic(
            "logistic",
            params.penalty()?,
            params.max_iterations,
            params.gradient_tolerance,
            task,
            x,
            y,
        )?)),
        LearnerSpec::TextLinear(params) => {
            let fitted = if task == Task::Regression {
                let ridge = PenaltyParams {
                    alpha: params.alpha,
                    ..PenaltyParams::default()
                };
                linear::fit_elastic_net("text_linear", &ridge, 0.0, task, x, y)?
            } else {
                linear::fit_logistic(
                    "text_linear",
                    params.alpha,
                    params.max_iterations,
                    1e-4,
                    task,
                    x,
                    y,
                )?
            };
            Ok(linear_model(fitted))
        }
    }
}

fn fit_gbdt(
    params: &GbdtParams,
    task: Task,
    x: &Matrix,
    y: &[f64],
    valid: Option<(&Matrix, &[f64])>,
) -> Result<FittedModel> {
    let targets: Vec<Vec<f64>> = match task {
        Task::Regression | Task::Binary => vec![y.to_vec()],
        Task::Multiclass { classes } => (0..classes)
            .map(|k| y.iter().map(|&v| f64::from(v as usize == k)).collect())
            .collect(),
    };
    let valid_targets: Option<Vec<Vec<f64>>> = valid.map(|(_, vy)| match task {
        Task::Regression | Task::Binary => vec![vy.to_vec()],
        Task::Multiclass { classes } => (0..classes)
            .map(|k| vy.iter().map(|&v| f64::from(v as usize == k)).collect())
            .collect(),
    });
    let data = forust_ml::Matrix::new(&x.data, x.rows, x.cols());
    let weights = vec![1.0; x.rows];
    let mut ensembles = Vec::with_capacity(targets.len());
    let mut best_iteration = None;
    for (k, target) in targets.iter().enumerate() {
        let objective = match task {
            Task::Regression => ObjectiveType::SquaredLoss,
            _ => ObjectiveType::LogLoss,
        };
        let fail = |e: forust_ml::errors::ForustError| MlError::Fit {
            learner: "gbdt".into(),
            message: e.to_string(),
        };
        let mut booster = GradientBooster::default()
            .set_objective_type(objective)
            .set_iterations(params.iterations)
            .set_learning_rate(params.learning_rate as f32)
            .set_max_depth(params.max_depth)
            .set_max_leaves(if params.max_leaves == 0 {
                usize::MAX
            } else {
                params.max_leaves
            })
            .set_min_leaf_weight(params.min_leaf_weight as f32)
            .set_l2(params.l2 as f32)
            .set_subsample(params.subsample as f32)
            .set_colsample_bytree(params.colsample)
            .set_nbins(params.nbins)
            .set_seed(params.seed)
            .set_num_threads(params.threads)
            .set_early_stopping_rounds(params.early_stopping_rounds.filter(|_| valid.is_some()));
        booster.grow_policy = match params.grow_policy {
            GrowPolicy::DepthWise => ForustGrowPolicy::DepthWise,
            GrowPolicy::LossGuide => ForustGrowPolicy::LossGuide,
        };
        let valid_weights;
        let evaluation = match (valid, &valid_targets) {
            (Some((vx, _)), Some(vt)) => {
                valid_weights = vec![1.0; vx.rows];
                Some(vec![(
                    forust_ml::Matrix::new(&vx.data, vx.rows, vx.cols()),
                    vt[k].as_slice(),
                    valid_weights.as_slice(),
                )])
            }
            _ => None,
        };
        booster
            .fit(&data, target, &weights, evaluation)
            .map_err(fail)?;
        if let Some(best) = booster.best_iteration {
            best_iteration = Some(best_iteration.map_or(best, |b: usize| b.max(best)));
        }
        ensembles.push(TreeEnsemble::from_booster(&booster));
    }
    Ok(FittedModel {
        task,
        features: x.names.clone(),
        learner: "gbdt".into(),
        params: ModelParams::Trees { ensembles },
        best_iteration,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gbdt_learns_a_step_and_predicts_like_the_booster() {
        let xs: Vec<f64> = (0..400).map(|i| i as f64 / 4.0).collect();
        let ys: Vec<f64> = xs
            .iter()
            .map(|&v| if v < 50.0 { 1.0 } else { 5.0 })
            .collect();
        let x = Matrix::from_columns(vec!["x".into()], vec![xs]);
        let spec = LearnerSpec::Gbdt(GbdtParams {
            iterations: 50,
            ..GbdtParams::default()
        });
        let model = fit(&spec, Task::Regression, &x, &ys, None).unwrap();
        let p = model.predict(&x);
        let mae: f64 = p.iter().zip(&ys).map(|(a, b)| (a - b).abs()).sum::<f64>() / 400.0;
        assert!(mae < 0.05, "mae {mae}");
    }
}
