//! Linear learners on the linfa crates: ordinary least squares (linfa-linear), ridge and lasso
//! (linfa-elasticnet with `l1_ratio` 0 and 1) and logistic regression, binary and multinomial
//! (linfa-logistic, L-BFGS). Their coefficients are copied out, so predicting needs no linfa.

use linfa::Dataset;
use linfa::traits::Fit;
use linfa_elasticnet::ElasticNet;
use linfa_linear::LinearRegression;
use linfa_logistic::{LogisticRegression, MultiLogisticRegression};
use ndarray::{Array1, Array2};
use serde::{Deserialize, Serialize};

use crate::error::{MlError, Result};
use crate::learner::{Link, ModelParams, Task};
use crate::matrix::Matrix;
use crate::preprocess::Encoding;

/// Ordinary least squares.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LinearParams {
    pub fit_intercept: bool,
}

impl Default for LinearParams {
    fn default() -> Self {
        LinearParams {
            fit_intercept: true,
        }
    }
}

/// Ridge or lasso. `alpha` means what it means in scikit-learn's `Ridge` (the penalty of
/// `||y - Xw||² + alpha ||w||²`) and `Lasso` (`||y - Xw||² / 2n + alpha ||w||₁`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PenaltyParams {
    pub alpha: f64,
    /// Coordinate-descent sweeps at most.
    pub max_iterations: u32,
    /// Stop when the duality gap is below `tolerance * ||y||²`.
    pub tolerance: f64,
}

impl Default for PenaltyParams {
    fn default() -> Self {
        PenaltyParams {
            alpha: 1.0,
            max_iterations: 1000,
            tolerance: 1e-4,
        }
    }
}

/// Logistic regression with an L2 penalty: `c` as scikit-learn's `C` (the inverse of the
/// penalty) or `alpha` (the penalty, `1 / C`), not both; the default is `C = 1`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogisticParams {
    pub c: Option<f64>,
    pub alpha: Option<f64>,
    pub max_iterations: u64,
    /// L-BFGS stops when the gradient's norm is below this.
    pub gradient_tolerance: f64,
}

impl Default for LogisticParams {
    fn default() -> Self {
        LogisticParams {
            c: None,
            alpha: None,
            max_iterations: 100,
            gradient_tolerance: 1e-4,
        }
    }
}

impl LogisticParams {
    /// The L2 penalty weight that linfa takes (its loss is the sum of the log-losses plus
    /// `alpha / 2 ||w||²`, scikit-learn's with `alpha = 1 / C`).
    pub fn penalty(&self) -> Result<f64> {
        let alpha = match (self.c, self.alpha) {
            (Some(_), Some(_)) => {
                return Err(MlError::invalid("logistic: give `c` or `alpha`, not both"));
            }
            (Some(c), None) if c > 0.0 && c.is_finite() => 1.0 / c,
            (Some(c), None) => {
                return Err(MlError::invalid(format!(
                    "logistic: `c` must be a positive number, got {c}"
                )));
            }
            (None, Some(alpha)) => alpha,
            (None, None) => 1.0,
        };
        if !(alpha > 0.0 && alpha.is_finite()) {
            return Err(MlError::invalid(format!(
                "logistic: `alpha` must be a positive number, got {alpha}"
            )));
        }
        Ok(alpha)
    }
}

/// A linear model for text: the text columns vectorized by `text` (TF-IDF or hashing, see
/// [`TextLinearParams::preprocess_spec`]), then logistic regression for a classification task or
/// ridge for a regression task, both with penalty `alpha`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TextLinearParams {
    /// How text columns become features: `tfidf` or `hashing`.
    pub text: Encoding,
    pub alpha: f64,
    pub max_iterations: u64,
}

impl Default for TextLinearParams {
    fn default() -> Self {
        TextLinearParams {
            text: Encoding::Tfidf {
                min_df: 1,
                max_features: 10_000,
            },
            alpha: 1.0,
            max_iterations: 100,
        }
    }
}

impl TextLinearParams {
    /// The preprocessing that feeds this learner: `text` on each of `columns`.
    pub fn preprocess_spec(&self, columns: &[&str]) -> crate::preprocess::PreprocessSpec {
        crate::preprocess::PreprocessSpec {
            columns: columns
                .iter()
                .map(|name| crate::preprocess::ColumnSpec {
                    name: (*name).to_string(),
                    encoding: self.text.clone(),
                })
                .collect(),
        }
    }
}

/// `x` as the row-major `(rows, cols)` array linfa takes, refusing missing values (linear
/// learners have no rule for them: impute first).
fn records(x: &Matrix, learner: &str) -> Result<Array2<f64>> {
    for j in 0..x.cols() {
        if x.column(j).iter().any(|v| !v.is_finite()) {
            return Err(MlError::invalid(format!(
                "{learner}: feature `{}` has missing or infinite values; impute them first \
                 (a numeric column with `impute` in the preprocessing)",
                x.names[j]
            )));
        }
    }
    let columns = Array2::from_shape_vec((x.cols(), x.rows), x.data.clone())
        .map_err(|e| MlError::invalid(e.to_string()))?;
    Ok(columns.reversed_axes().as_standard_layout().into_owned())
}

fn fit_error(learner: &str, error: impl std::fmt::Display) -> MlError {
    MlError::Fit {
        learner: learner.into(),
        message: error.to_string(),
    }
}

fn regression_only(learner: &str, task: Task) -> Result<()> {
    if task == Task::Regression {
        Ok(())
    } else {
        Err(MlError::invalid(format!(
            "{learner} is a regression learner; use logistic (or gbdt) for a classification task"
        )))
    }
}

fn identity(coefficients: Vec<f64>, intercept: f64) -> ModelParams {
    ModelParams::Linear {
        coefficients: vec![coefficients],
        intercepts: vec![intercept],
        link: Link::Identity,
    }
}

pub(crate) fn fit_ols(
    params: &LinearParams,
    task: Task,
    x: &Matrix,
    y: &[f64],
) -> Result<ModelParams> {
    regression_only("linear", task)?;
    let dataset = Dataset::new(records(x, "linear")?, Array1::from(y.to_vec()));
    let fitted = LinearRegression::new()
        .with_intercept(params.fit_intercept)
        .fit(&dataset)
        .map_err(|e| fit_error("linear", e))?;
    Ok(identity(fitted.params().to_vec(), fitted.intercept()))
}

/// Ridge (`l1_ratio` 0) or lasso (`l1_ratio` 1).
///
/// linfa-elasticnet's intercept centers `y` but not `x`, which is only right for centered
/// features; so `x` and `y` are centered here and the intercept is recovered as
/// `mean(y) - w·mean(x)`, as scikit-learn does.
pub(crate) fn fit_elastic_net(
    learner: &str,
    params: &PenaltyParams,
    l1_ratio: f64,
    task: Task,
    x: &Matrix,
    y: &[f64],
) -> Result<ModelParams> {
    regression_only(learner, task)?;
    if !(params.alpha >= 0.0 && params.alpha.is_finite()) {
        return Err(MlError::invalid(format!(
            "{learner}: `alpha` must be zero or more, got {}",
            params.alpha
        )));
    }
    let mut records = records(x, learner)?;
    let n = x.rows as f64;
    let means: Vec<f64> = (0..x.cols())
        .map(|j| x.column(j).iter().sum::<f64>() / n)
        .collect();
    for mut row in records.rows_mut() {
        for (v, m) in row.iter_mut().zip(&means) {
            *v -= m;
        }
    }
    let y_mean = y.iter().sum::<f64>() / n;
    let centered: Array1<f64> = y.iter().map(|v| v - y_mean).collect();
    // Ridge's penalty on the sum of squares is linfa's per-sample penalty times n.
    let penalty = if l1_ratio == 0.0 {
        params.alpha / n
    } else {
        params.alpha
    };
    let fitted = ElasticNet::params()
        .penalty(penalty)
        .l1_ratio(l1_ratio)
        .with_intercept(false)
        .max_iterations(params.max_iterations)
        .tolerance(params.tolerance)
        .fit(&Dataset::new(records, centered))
        .map_err(|e| fit_error(learner, e))?;
    let w = fitted.hyperplane().to_vec();
    let intercept = y_mean - w.iter().zip(&means).map(|(a, b)| a * b).sum::<f64>();
    Ok(identity(w, intercept))
}

pub(crate) fn fit_logistic(
    learner: &str,
    alpha: f64,
    max_iterations: u64,
    gradient_tolerance: f64,
    task: Task,
    x: &Matrix,
    y: &[f64],
) -> Result<ModelParams> {
    let records = records(x, learner)?;
    let labels: Array1<usize> = y.iter().map(|&v| v as usize).collect();
    match task {
        Task::Regression => Err(MlError::invalid(format!(
            "{learner} is a classification learner; use linear, ridge or lasso for a regression task"
        ))),
        Task::Binary => {
            let fitted = LogisticRegression::default()
                .alpha(alpha)
                .max_iterations(max_iterations)
                .gradient_tolerance(gradient_tolerance)
                .fit(&Dataset::new(records, labels))
                .map_err(|e| fit_error(learner, e))?;
            // linfa models P(its positive class), which is the more frequent label; turn that
            // into P(1): P(0) = σ(z) means P(1) = σ(-z).
            let sign = if fitted.labels().pos.class == 1 {
                1.0
            } else {
                -1.0
            };
            Ok(ModelParams::Linear {
                coefficients: vec![fitted.params().iter().map(|w| sign * w).collect()],
                intercepts: vec![sign * fitted.intercept()],
                link: Link::Logistic,
            })
        }
        Task::Multiclass { classes } => {
            let fitted = MultiLogisticRegression::default()
                .alpha(alpha)
                .max_iterations(max_iterations)
                .gradient_tolerance(gradient_tolerance)
                .fit(&Dataset::new(records, labels))
                .map_err(|e| fit_error(learner, e))?;
            if fitted.classes() != (0..classes).collect::<Vec<_>>() {
                return Err(MlError::invalid(format!(
                    "{learner}: the training labels are {:?}, every class of 0..{classes} needs rows",
                    fitted.classes()
                )));
            }
            let w = fitted.params();
            Ok(ModelParams::Linear {
                coefficients: (0..classes).map(|k| w.column(k).to_vec()).collect(),
                intercepts: fitted.intercept().to_vec(),
                link: Link::Softmax,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::learner::{LearnerSpec, fit};

    /// y = 3 + 2 x0 - x1 + noise-free.
    fn plane() -> (Matrix, Vec<f64>) {
        let x0: Vec<f64> = (0..50)
            .map(|i| (i as f64 * 0.37).sin() * 4.0 + 10.0)
            .collect();
        let x1: Vec<f64> = (0..50)
            .map(|i| (i as f64 * 0.91).cos() * 3.0 - 5.0)
            .collect();
        let y = x0.iter().zip(&x1).map(|(a, b)| 3.0 + 2.0 * a - b).collect();
        (
            Matrix::from_columns(vec!["a".into(), "b".into()], vec![x0, x1]),
            y,
        )
    }

    fn linear_params(model: &crate::FittedModel) -> (&Vec<Vec<f64>>, &Vec<f64>, Link) {
        match &model.params {
            ModelParams::Linear {
                coefficients,
                intercepts,
                link,
            } => (coefficients, intercepts, *link),
            other => panic!("not linear: {other:?}"),
        }
    }

    #[test]
    fn ols_recovers_a_plane() {
        let (x, y) = plane();
        let model = fit(
            &LearnerSpec::Linear(LinearParams::default()),
            Task::Regression,
            &x,
            &y,
            None,
        )
        .unwrap();
        let (w, b, link) = linear_params(&model);
        assert_eq!(link, Link::Identity);
        assert!(
            (w[0][0] - 2.0).abs() < 1e-8 && (w[0][1] + 1.0).abs() < 1e-8,
            "{w:?}"
        );
        assert!((b[0] - 3.0).abs() < 1e-7, "{b:?}");
        let p = model.predict(&x);
        assert!(p.iter().zip(&y).all(|(a, b)| (a - b).abs() < 1e-7));
    }

    #[test]
    fn ridge_matches_the_closed_form_with_an_uncentered_intercept() {
        let (x, y) = plane();
        let alpha = 5.0;
        let spec = LearnerSpec::Ridge(PenaltyParams {
            alpha,
            max_iterations: 10_000,
            tolerance: 1e-12,
        });
        let model = fit(&spec, Task::Regression, &x, &y, None).unwrap();
        let (w, b, _) = linear_params(&model);
        // Closed form on centered data: (Xc'Xc + alpha I) w = Xc'yc, 2x2 solved by hand.
        let n = x.rows as f64;
        let mean = |v: &[f64]| v.iter().sum::<f64>() / n;
        let (m0, m1, my) = (mean(x.column(0)), mean(x.column(1)), mean(&y));
        let (mut s00, mut s01, mut s11, mut t0, mut t1) = (alpha, 0.0, alpha, 0.0, 0.0);
        for (i, yi) in y.iter().enumerate() {
            let (a, c, v) = (x.get(i, 0) - m0, x.get(i, 1) - m1, yi - my);
            s00 += a * a;
            s01 += a * c;
            s11 += c * c;
            t0 += a * v;
            t1 += c * v;
        }
        let det = s00 * s11 - s01 * s01;
        let w0 = (s11 * t0 - s01 * t1) / det;
        let w1 = (s00 * t1 - s01 * t0) / det;
        assert!(
            (w[0][0] - w0).abs() < 1e-6 && (w[0][1] - w1).abs() < 1e-6,
            "{w:?} vs {w0} {w1}"
        );
        assert!((b[0] - (my - w0 * m0 - w1 * m1)).abs() < 1e-5);
    }

    #[test]
    fn lasso_zeroes_a_useless_feature() {
        let (x, y) = plane();
        let noise: Vec<f64> = (0..50).map(|i| ((i * 7919) % 13) as f64 / 13.0).collect();
        let x = Matrix::from_columns(
            vec!["a".into(), "b".into(), "noise".into()],
            vec![x.column(0).to_vec(), x.column(1).to_vec(), noise],
        );
        let spec = LearnerSpec::Lasso(PenaltyParams {
            alpha: 0.5,
            ..PenaltyParams::default()
        });
        let model = fit(&spec, Task::Regression, &x, &y, None).unwrap();
        let (w, _, _) = linear_params(&model);
        assert_eq!(w[0][2], 0.0, "{w:?}");
        assert!(w[0][0] > 1.5, "{w:?}");
        let r2 = crate::metrics::regression(&y, &model.predict(&x)).r2;
        assert!(r2 > 0.95, "r2 {r2}");
    }

    #[test]
    fn logistic_binary_predicts_p_of_one_whichever_class_is_larger() {
        // Class 1 is the rarer one, so linfa's positive class is 0 and the sign must flip.
        let xs: Vec<f64> = (0..100).map(|i| i as f64 / 10.0).collect();
        let y: Vec<f64> = xs.iter().map(|&v| f64::from(v > 7.0)).collect();
        let x = Matrix::from_columns(vec!["x".into()], vec![xs]);
        let spec = LearnerSpec::Logistic(LogisticParams {
            c: Some(100.0),
            ..LogisticParams::default()
        });
        let model = fit(&spec, Task::Binary, &x, &y, None).unwrap();
        let (w, _, link) = linear_params(&model);
        assert_eq!(link, Link::Logistic);
        assert!(w[0][0] > 0.0);
        let p = model.predict(&x);
        assert!(p[0] < 0.05 && p[99] > 0.95, "{} {}", p[0], p[99]);
        let m = crate::metrics::classification(&y, &model.predict_proba(&x));
        assert!(m.accuracy > 0.95, "{m:?}");
    }

    #[test]
    fn logistic_multinomial_separates_three_bands() {
        let xs: Vec<f64> = (0..150).map(|i| i as f64 / 15.0).collect();
        let y: Vec<f64> = xs
            .iter()
            .map(|&v| (v / (10.0 / 3.0)).floor().min(2.0))
            .collect();
        let x = Matrix::from_columns(vec!["x".into()], vec![xs]);
        let spec = LearnerSpec::Logistic(LogisticParams {
            alpha: Some(0.01),
            max_iterations: 500,
            ..LogisticParams::default()
        });
        let model = fit(&spec, Task::Multiclass { classes: 3 }, &x, &y, None).unwrap();
        let (w, b, link) = linear_params(&model);
        assert_eq!((w.len(), b.len(), link), (3, 3, Link::Softmax));
        let proba = model.predict_proba(&x);
        assert!(
            proba
                .iter()
                .all(|p| (p.iter().sum::<f64>() - 1.0).abs() < 1e-12)
        );
        let m = crate::metrics::classification(&y, &proba);
        assert!(m.accuracy > 0.9, "{m:?}");
    }

    #[test]
    fn linear_learners_refuse_missing_values_and_the_wrong_task() {
        let x = Matrix::from_columns(vec!["gap".into()], vec![vec![1.0, f64::NAN, 3.0]]);
        let err = fit(
            &LearnerSpec::Linear(LinearParams::default()),
            Task::Regression,
            &x,
            &[1.0, 2.0, 3.0],
            None,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("`gap`") && err.contains("impute"), "{err}");
        let x = Matrix::from_columns(vec!["a".into()], vec![vec![1.0, 2.0, 3.0]]);
        let err = fit(
            &LearnerSpec::Ridge(PenaltyParams::default()),
            Task::Binary,
            &x,
            &[0.0, 1.0, 1.0],
            None,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("regression learner"), "{err}");
        let both = LogisticParams {
            c: Some(1.0),
            alpha: Some(1.0),
            ..LogisticParams::default()
        };
        assert!(both.penalty().is_err());
        assert_eq!(
            LogisticParams {
                c: Some(4.0),
                ..LogisticParams::default()
            }
            .penalty()
            .unwrap(),
            0.25
        );
    }

    #[test]
    fn specs_parse_from_toml_and_json() {
        let spec: LearnerSpec =
            serde_json::from_str(r#"{"learner": "ridge", "alpha": 2.5}"#).unwrap();
        assert_eq!(
            spec,
            LearnerSpec::Ridge(PenaltyParams {
                alpha: 2.5,
                ..PenaltyParams::default()
            })
        );
        let spec: LearnerSpec =
            serde_json::from_str(r#"{"learner": "logistic", "c": 10, "max_iterations": 300}"#)
                .unwrap();
        assert_eq!(spec.name(), "logistic");
        let spec: LearnerSpec = serde_json::from_str(
            r#"{"learner": "text_linear", "text": {"encoding": "hashing", "n_features": 64}}"#,
        )
        .unwrap();
        assert_eq!(spec.name(), "text_linear");
        assert!(
            serde_json::from_str::<LearnerSpec>(r#"{"learner": "lasso", "alhpa": 1}"#).is_err()
        );
        let spec: LearnerSpec = serde_json::from_str(r#"{"learner": "linear"}"#).unwrap();
        assert_eq!(spec, LearnerSpec::Linear(LinearParams::default()));
    }
}
