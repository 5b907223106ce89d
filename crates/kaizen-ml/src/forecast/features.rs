//! Features for forecasting `h` periods ahead of an origin: the recent values (lags), rolling
//! statistics and the seasonal values as of the origin, and the target period's calendar. Only
//! values at or before the origin are read, so a row never sees its own future.

use crate::matrix::Matrix;

use super::series::{Freq, SeriesSet, calendar};

/// One forecast to make: series `series`, from origin period `origin`, `step` periods ahead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Point {
    pub series: usize,
    pub origin: usize,
    pub step: usize,
}

impl Point {
    pub fn target(&self) -> usize {
        self.origin + self.step
    }
}

/// The windows of the rolling statistics: one season and four, or for weekly data a month and
/// a quarter.
fn windows(freq: Freq) -> [usize; 2] {
    match freq {
        Freq::Daily => [7, 28],
        Freq::Weekly => [4, 13],
    }
}

fn lags(freq: Freq) -> usize {
    match freq {
        Freq::Daily => 7,
        Freq::Weekly => 8,
    }
}

/// The feature names, in column order.
pub fn names(freq: Freq) -> Vec<String> {
    let mut names = vec!["step".to_string(), "series".to_string()];
    names.extend((0..lags(freq)).map(|j| format!("lag_{j}")));
    names.extend([
        "seasonal_1".into(),
        "seasonal_2".into(),
        "seasonal_mean".into(),
    ]);
    for w in windows(freq) {
        names.push(format!("mean_{w}"));
        names.push(format!("std_{w}"));
        names.push(format!("zero_share_{w}"));
    }
    names.push("mean_all".into());
    names.extend([
        "day_of_week".into(),
        "day_of_month".into(),
        "month".into(),
        "week".into(),
    ]);
    names
}

/// The value of the season position that `target` falls on, `back` seasons before the last one
/// that ends at or before `origin`.
fn seasonal_index(origin: usize, target: usize, season: usize, back: usize) -> Option<usize> {
    let step = target - origin;
    let seasons = step.div_ceil(season) + back;
    target.checked_sub(seasons * season)
}

fn window_stats(values: &[f64]) -> (f64, f64, f64) {
    if values.is_empty() {
        return (f64::NAN, f64::NAN, f64::NAN);
    }
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
    let zeros = values.iter().filter(|v| **v == 0.0).count() as f64 / n;
    (mean, var.sqrt(), zeros)
}

/// The feature rows of `points`.
pub fn matrix(set: &SeriesSet, points: &[Point]) -> Matrix {
    let freq = set.spec.freq;
    let season = freq.season();
    let names = names(freq);
    let mut columns: Vec<Vec<f64>> = vec![Vec::with_capacity(points.len()); names.len()];
    for p in points {
        let y = &set.values[p.series];
        let history = &y[..=p.origin];
        let mut row = Vec::with_capacity(names.len());
        row.push(p.step as f64);
        row.push(p.series as f64);
        for j in 0..lags(freq) {
            row.push(p.origin.checked_sub(j).map_or(f64::NAN, |i| y[i]));
        }
        let target = p.target();
        for back in 0..2 {
            row.push(seasonal_index(p.origin, target, season, back).map_or(f64::NAN, |i| y[i]));
        }
        let same_position: Vec<f64> = (0..4)
            .filter_map(|back| seasonal_index(p.origin, target, season, back))
            .map(|i| y[i])
            .collect();
        row.push(window_stats(&same_position).0);
        for w in windows(freq) {
            let from = history.len().saturating_sub(w);
            let (mean, std, zeros) = window_stats(&history[from..]);
            row.extend([mean, std, zeros]);
        }
        row.push(window_stats(history).0);
        row.extend(calendar(set.day(target)));
        for (column, value) in columns.iter_mut().zip(row) {
            column.push(value);
        }
    }
    Matrix::from_columns(names, columns)
}

/// Every point of series `0..n` whose origin is in `origins` and whose target is at or before
/// `last_target`, for steps `1..=horizon`.
pub fn points(
    set: &SeriesSet,
    origins: std::ops::RangeInclusive<usize>,
    horizon: usize,
    last_target: usize,
) -> Vec<Point> {
    let mut points = Vec::new();
    for series in 0..set.values.len() {
        for origin in origins.clone() {
            for step in 1..=horizon {
                if origin + step <= last_target {
                    points.push(Point {
                        series,
                        origin,
                        step,
                    });
                }
            }
        }
    }
    points
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::forecast::series::SeriesSpec;

    fn set(values: Vec<f64>) -> SeriesSet {
        SeriesSet {
            spec: SeriesSpec {
                date_column: "d".into(),
                target_column: "y".into(),
                group_columns: vec![],
                freq: Freq::Daily,
            },
            keys: vec![vec![]],
            values: vec![values],
            // 2024-01-01, a Monday.
            start: 19723,
        }
    }

    #[test]
    fn features_read_only_the_past() {
        let values: Vec<f64> = (0..30).map(f64::from).collect();
        let s = set(values);
        let p = Point {
            series: 0,
            origin: 20,
            step: 3,
        };
        let m = matrix(&s, &[p]);
        let get = |name: &str| m.get(0, m.names.iter().position(|n| n == name).unwrap());
        assert_eq!(get("lag_0"), 20.0);
        assert_eq!(get("lag_6"), 14.0);
        // Target 23: a week earlier is 16, two weeks 9.
        assert_eq!(get("seasonal_1"), 16.0);
        assert_eq!(get("seasonal_2"), 9.0);
        assert_eq!(get("mean_7"), 17.0);
        assert_eq!(get("mean_all"), 10.0);
        // 2024-01-24 is a Wednesday.
        assert_eq!(get("day_of_week"), 2.0);
        assert_eq!(get("step"), 3.0);
        // Nothing in the row is above the origin's value.
        assert!(
            m.row(0)
                .iter()
                .filter(|v| v.is_finite())
                .all(|&v| v <= 24.0)
        );
    }

    #[test]
    fn seasonal_values_of_steps_beyond_a_season_come_from_the_season_before() {
        assert_eq!(seasonal_index(20, 28, 7, 0), Some(14));
        assert_eq!(seasonal_index(20, 27, 7, 0), Some(20));
        assert_eq!(seasonal_index(3, 4, 7, 0), None);
    }

    #[test]
    fn points_stop_at_the_last_target() {
        let s = set(vec![1.0; 10]);
        let p = points(&s, 5..=7, 3, 8);
        assert!(p.iter().all(|p| p.target() <= 8));
        assert_eq!(p.len(), 3 + 2 + 1);
    }
}
