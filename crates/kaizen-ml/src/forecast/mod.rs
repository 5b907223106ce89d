//! Sales forecasting: series from a transactions table ([`series`]), features ([`features`]),
//! baselines, rolling-origin backtests, forecast metrics and the business cost of errors.
//!
//! One global model is trained over all series ("direct" multi-step: the step ahead is a
//! feature and every feature is known at the origin), so one fit serves every horizon and
//! there is no recursion to accumulate errors.

pub mod features;
pub mod series;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{MlError, Result};
use crate::learner::{FittedModel, LearnerSpec, Task, fit};
use crate::metrics::{RegressionMetrics, regression};

pub use features::Point;
pub use series::{Freq, SeriesSet, SeriesSpec, build_series, date_of};

/// The baselines every model is compared with.
pub const BASELINES: [&str; 3] = ["naive", "seasonal_naive", "moving_average"];

/// What an error costs per unit: over-forecasting (stock that does not sell) and
/// under-forecasting (sales lost).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct UnitCosts {
    pub over: f64,
    pub under: f64,
}

/// Units forecast too many and too few, and what they cost.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Cost {
    pub over_units: f64,
    pub under_units: f64,
    pub cost: f64,
}

impl Cost {
    pub fn of(actual: &[f64], predicted: &[f64], costs: UnitCosts) -> Cost {
        let mut over_units = 0.0;
        let mut under_units = 0.0;
        for (y, f) in actual.iter().zip(predicted) {
            if f > y {
                over_units += f - y;
            } else {
                under_units += y - f;
            }
        }
        Cost {
            over_units,
            under_units,
            cost: over_units * costs.over + under_units * costs.under,
        }
    }
}

/// The first origin with a whole season of history behind it.
pub fn min_origin(freq: Freq) -> usize {
    freq.season() - 1
}

/// A baseline's forecast for a point.
pub fn baseline(name: &str, set: &SeriesSet, p: &Point) -> f64 {
    let y = &set.values[p.series];
    let season = set.spec.freq.season();
    match name {
        "naive" => y[p.origin],
        "seasonal_naive" => {
            let back = p.step.div_ceil(season) * season;
            p.target().checked_sub(back).map_or(y[p.origin], |i| y[i])
        }
        "moving_average" => {
            let from = (p.origin + 1).saturating_sub(season);
            let window = &y[from..=p.origin];
            window.iter().sum::<f64>() / window.len() as f64
        }
        other => panic!("unknown baseline {other}"),
    }
}

/// The origins of `folds` backtest folds of `horizon` periods each, the last one ending at the
/// last period, after skipping the last `skip` folds' worth of periods.
pub fn origins(set: &SeriesSet, horizon: usize, folds: usize, skip: usize) -> Result<Vec<usize>> {
    if horizon == 0 {
        return Err(MlError::invalid("the horizon must be at least 1 period"));
    }
    if folds == 0 {
        return Err(MlError::invalid("a backtest needs at least 1 fold"));
    }
    let periods = set.periods();
    let needed = min_origin(set.spec.freq) + 1 + horizon * (folds + skip) + set.spec.freq.season();
    if periods < needed {
        return Err(MlError::invalid(format!(
            "{periods} {} periods of data are too few for {} folds of {horizon} periods: at least {needed} are needed",
            set.spec.freq.code(),
            folds + skip
        )));
    }
    Ok((0..folds)
        .map(|i| periods - 1 - horizon * (folds + skip - i))
        .collect())
}

/// Training points: every origin with a season of history and every step whose target is at or
/// before `last_target`.
pub fn training_points(set: &SeriesSet, horizon: usize, last_target: usize) -> Vec<Point> {
    let first = min_origin(set.spec.freq);
    if last_target <= first {
        return Vec::new();
    }
    features::points(set, first..=last_target - 1, horizon, last_target)
}

/// The points forecast from `origin`, every series, steps `1..=horizon`.
pub fn forecast_points(set: &SeriesSet, origin: usize, horizon: usize) -> Vec<Point> {
    (0..set.values.len())
        .flat_map(|series| {
            (1..=horizon).map(move |step| Point {
                series,
                origin,
                step,
            })
        })
        .collect()
}

fn nonnegative(set: &SeriesSet) -> bool {
    set.values.iter().flatten().all(|v| *v >= 0.0)
}

/// Predictions for points, clipped at zero when the history has no negative value.
pub fn predict(set: &SeriesSet, model: &FittedModel, points: &[Point]) -> Vec<f64> {
    let x = features::matrix(set, points);
    let mut values = model.predict(&x);
    if nonnegative(set) {
        for v in &mut values {
            *v = v.max(0.0);
        }
    }
    values
}

/// Trains `spec` on every point whose target is at or before `last_target`; `valid` points
/// drive early stopping.
pub fn train(
    set: &SeriesSet,
    spec: &LearnerSpec,
    horizon: usize,
    last_target: usize,
    valid: Option<&[Point]>,
) -> Result<FittedModel> {
    let train = training_points(set, horizon, last_target);
    if train.is_empty() {
        return Err(MlError::invalid(
            "no history to train on before the first fold",
        ));
    }
    let x = features::matrix(set, &train);
    let y: Vec<f64> = train
        .iter()
        .map(|p| set.values[p.series][p.target()])
        .collect();
    let valid = valid.map(|points| {
        (
            features::matrix(set, points),
            points
                .iter()
                .map(|p| set.values[p.series][p.target()])
                .collect::<Vec<f64>>(),
        )
    });
    fit(
        spec,
        Task::Regression,
        &x,
        &y,
        valid.as_ref().map(|(x, y)| (x, y.as_slice())),
    )
}

/// One series' errors in a backtest, against seasonal naive's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SegmentResult {
    pub segment: String,
    pub model: RegressionMetrics,
    pub seasonal_naive: RegressionMetrics,
}

/// What a rolling-origin backtest measured, pooled over its folds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Backtest {
    pub origins: Vec<usize>,
    pub horizon: usize,
    pub model: RegressionMetrics,
    pub baselines: BTreeMap<String, RegressionMetrics>,
    /// By forecaster (`model` and each baseline), when unit costs were given.
    pub costs: BTreeMap<String, Cost>,
    pub segments: Vec<SegmentResult>,
    /// The boosting rounds early stopping kept, per fold.
    pub best_iterations: Vec<Option<usize>>,
    #[serde(skip)]
    pub points: Vec<Point>,
    #[serde(skip)]
    pub actual: Vec<f64>,
    #[serde(skip)]
    pub predicted: Vec<f64>,
}

/// Trains on what precedes each origin and forecasts the `horizon` periods after it, for the
/// model and the baselines. With `early_stopping`, each fold's own forecasts are the validation
/// set (for hyperparameter search; a reported backtest passes `false`).
pub fn backtest(
    set: &SeriesSet,
    spec: &LearnerSpec,
    horizon: usize,
    origins: &[usize],
    early_stopping: bool,
    costs: Option<UnitCosts>,
) -> Result<Backtest> {
    let mut points = Vec::new();
    let mut predicted = Vec::new();
    let mut best_iterations = Vec::new();
    for &origin in origins {
        let fold = forecast_points(set, origin, horizon);
        let model = train(
            set,
            spec,
            horizon,
            origin,
            early_stopping.then_some(fold.as_slice()),
        )?;
        best_iterations.push(model.best_iteration);
        predicted.extend(predict(set, &model, &fold));
        points.extend(fold);
    }
    let actual: Vec<f64> = points
        .iter()
        .map(|p| set.values[p.series][p.target()])
        .collect();
    let baseline_values: BTreeMap<String, Vec<f64>> = BASELINES
        .iter()
        .map(|name| {
            (
                name.to_string(),
                points.iter().map(|p| baseline(name, set, p)).collect(),
            )
        })
        .collect();
    let mut cost_table = BTreeMap::new();
    if let Some(unit) = costs {
        cost_table.insert("model".to_string(), Cost::of(&actual, &predicted, unit));
        for (name, values) in &baseline_values {
            cost_table.insert(name.clone(), Cost::of(&actual, values, unit));
        }
    }
    let segments = (0..set.values.len())
        .map(|s| {
            let rows: Vec<usize> = (0..points.len())
                .filter(|&i| points[i].series == s)
                .collect();
            let pick = |v: &[f64]| rows.iter().map(|&i| v[i]).collect::<Vec<f64>>();
            SegmentResult {
                segment: set.label(s),
                model: regression(&pick(&actual), &pick(&predicted)),
                seasonal_naive: regression(
                    &pick(&actual),
                    &pick(&baseline_values["seasonal_naive"]),
                ),
            }
        })
        .collect();
    Ok(Backtest {
        origins: origins.to_vec(),
        horizon,
        model: regression(&actual, &predicted),
        baselines: baseline_values
            .iter()
            .map(|(name, values)| (name.clone(), regression(&actual, values)))
            .collect(),
        costs: cost_table,
        segments,
        best_iterations,
        points,
        actual,
        predicted,
    })
}

/// One forecast value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ForecastRow {
    pub key: Vec<String>,
    /// The period's start, `YYYY-MM-DD`.
    pub date: String,
    pub step: usize,
    pub forecast: f64,
}

/// The next `horizon` periods of every series, from a model trained on all of them.
pub fn forecast(set: &SeriesSet, model: &FittedModel, horizon: usize) -> Vec<ForecastRow> {
    let origin = set.periods() - 1;
    let points = forecast_points(set, origin, horizon);
    let values = predict(set, model, &points);
    points
        .iter()
        .zip(values)
        .map(|(p, forecast)| ForecastRow {
            key: set.keys[p.series].clone(),
            date: date_of(set.day(p.target())).to_string(),
            step: p.step,
            forecast,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::learner::GbdtParams;

    /// Series with a weekly pattern and noise, where a model that pools series and smooths
    /// should beat repeating last week.
    fn weekly_pattern() -> SeriesSet {
        let mut state = 7u64;
        let mut noise = move || {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1);
            ((state >> 33) as f64 / (1u64 << 31) as f64) - 0.5
        };
        let values = (0..4)
            .map(|s| {
                (0..200)
                    .map(|t| {
                        let level = 10.0 + 5.0 * s as f64;
                        let weekly = [0.0, 1.0, 2.0, 3.0, 4.0, 8.0, 6.0][t % 7];
                        (level + weekly + 6.0 * noise()).max(0.0)
                    })
                    .collect()
            })
            .collect();
        SeriesSet {
            spec: SeriesSpec {
                date_column: "d".into(),
                target_column: "y".into(),
                group_columns: vec!["g".into()],
                freq: Freq::Daily,
            },
            keys: (0..4).map(|s| vec![format!("s{s}")]).collect(),
            values,
            start: 19723,
        }
    }

    #[test]
    fn baselines_repeat_the_right_values() {
        let set = weekly_pattern();
        let p = Point {
            series: 1,
            origin: 20,
            step: 9,
        };
        let y = &set.values[1];
        assert_eq!(baseline("naive", &set, &p), y[20]);
        assert_eq!(baseline("seasonal_naive", &set, &p), y[29 - 14]);
        let mean = y[14..=20].iter().sum::<f64>() / 7.0;
        assert!((baseline("moving_average", &set, &p) - mean).abs() < 1e-12);
    }

    #[test]
    fn the_model_beats_seasonal_naive_in_a_backtest() {
        let set = weekly_pattern();
        let origins = origins(&set, 7, 3, 0).unwrap();
        assert_eq!(*origins.last().unwrap(), 199 - 7);
        let spec = LearnerSpec::Gbdt(GbdtParams {
            iterations: 60,
            learning_rate: 0.1,
            max_depth: 4,
            ..GbdtParams::default()
        });
        let costs = UnitCosts {
            over: 1.0,
            under: 3.0,
        };
        let result = backtest(&set, &spec, 7, &origins, false, Some(costs)).unwrap();
        let model = result.model.wape;
        let snaive = result.baselines["seasonal_naive"].wape;
        assert!(
            model < snaive * 0.9,
            "model {model} vs seasonal naive {snaive}"
        );
        assert_eq!(result.actual.len(), 3 * 4 * 7);
        assert_eq!(result.segments.len(), 4);
        let cost = result.costs["model"];
        assert!((cost.cost - (cost.over_units + 3.0 * cost.under_units)).abs() < 1e-9);

        let model = train(&set, &spec, 7, set.periods() - 1, None).unwrap();
        let rows = forecast(&set, &model, 7);
        assert_eq!(rows.len(), 4 * 7);
        assert!(rows.iter().all(|r| r.forecast >= 0.0));
        assert_eq!(rows[0].date, date_of(set.day(200)).to_string());
    }

    #[test]
    fn too_little_history_or_a_zero_horizon_is_refused() {
        let set = weekly_pattern();
        let err = origins(&set, 0, 3, 0).unwrap_err().to_string();
        assert!(err.contains("horizon must be at least 1"), "{err}");
        let err = origins(&set, 70, 3, 0).unwrap_err().to_string();
        assert!(err.contains("too few"), "{err}");
    }
}
