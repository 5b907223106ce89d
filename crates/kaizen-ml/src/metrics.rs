//! Model metrics: regression errors, classification scores and the two SVG charts of a model
//! report (a confusion heat-map and a residual scatter).

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

/// The errors of a regression (or a forecast) against the actual values.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RegressionMetrics {
    pub mae: f64,
    pub rmse: f64,
    /// Mean of `|e| / |y|` over the rows where `y != 0`; NaN when there are none.
    pub mape: f64,
    /// Mean of `2|e| / (|y| + |f|)`; a row where both are 0 counts 0.
    pub smape: f64,
    /// `sum |e| / sum |y|`.
    pub wape: f64,
    /// `sum (f - y) / sum |y|`: positive when the model over-predicts.
    pub bias: f64,
    /// `1 - SSE / SST` (1 for a perfect fit of a constant target, else 0 there, as scikit-learn).
    pub r2: f64,
}

const REGRESSION_NAMES: [&str; 7] = ["mae", "rmse", "mape", "smape", "wape", "bias", "r2"];

impl RegressionMetrics {
    /// A metric by its field name (`"rmse"`, ...).
    pub fn get(&self, name: &str) -> Option<f64> {
        self.to_pairs()
            .into_iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v)
    }

    /// Every metric with its name, in the order of the fields.
    pub fn to_pairs(&self) -> Vec<(&'static str, f64)> {
        let values = [
            self.mae, self.rmse, self.mape, self.smape, self.wape, self.bias, self.r2,
        ];
        REGRESSION_NAMES.into_iter().zip(values).collect()
    }
}

/// Regression metrics of `predicted` against `actual` (same length; every metric is NaN when
/// both are empty).
///
/// # Panics
/// When the lengths differ.
pub fn regression(actual: &[f64], predicted: &[f64]) -> RegressionMetrics {
    assert_eq!(
        actual.len(),
        predicted.len(),
        "as many predictions as actual values"
    );
    let n = actual.len() as f64;
    let (mut abs, mut sq, mut signed, mut sum_y, mut sum_abs_y) = (0.0, 0.0, 0.0, 0.0, 0.0);
    let (mut ape, mut ape_rows, mut sape) = (0.0, 0usize, 0.0);
    for (&y, &f) in actual.iter().zip(predicted) {
        let e = f - y;
        abs += e.abs();
        sq += e * e;
        signed += e;
        sum_y += y;
        sum_abs_y += y.abs();
        if y != 0.0 {
            ape += e.abs() / y.abs();
            ape_rows += 1;
        }
        let denominator = y.abs() + f.abs();
        if denominator != 0.0 {
            sape += 2.0 * e.abs() / denominator;
        }
    }
    let mean_y = sum_y / n;
    let sst: f64 = actual.iter().map(|y| (y - mean_y).powi(2)).sum();
    let r2 = if actual.is_empty() {
        f64::NAN
    } else if sst == 0.0 {
        if sq == 0.0 { 1.0 } else { 0.0 }
    } else {
        1.0 - sq / sst
    };
    RegressionMetrics {
        mae: abs / n,
        rmse: (sq / n).sqrt(),
        mape: if ape_rows == 0 {
            f64::NAN
        } else {
            ape / ape_rows as f64
        },
        smape: sape / n,
        wape: abs / sum_abs_y,
        bias: signed / sum_abs_y,
        r2,
    }
}

/// The scores of a classifier.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassificationMetrics {
    /// Share of rows whose most probable class is the actual one.
    pub accuracy: f64,
    /// Mean negative log-likelihood of the actual class (probabilities clipped to
    /// `[1e-15, 1 - 1e-15]`, as scikit-learn).
    pub log_loss: f64,
    /// Macro F1: the mean F1 over the classes that occur as actual or predicted.
    pub f1: f64,
    /// Area under the ROC curve of P(1), for two classes when both occur; `None` otherwise.
    pub auc: Option<f64>,
    /// Counts with rows = actual class, columns = predicted class.
    pub confusion: Vec<Vec<u64>>,
}

impl ClassificationMetrics {
    /// A metric by its field name (`"accuracy"`, `"log_loss"`, `"f1"`, `"auc"`).
    pub fn get(&self, name: &str) -> Option<f64> {
        self.to_pairs()
            .into_iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v)
    }

    /// The numeric metrics with their names (`auc` only where there is one).
    pub fn to_pairs(&self) -> Vec<(&'static str, f64)> {
        let mut pairs = vec![
            ("accuracy", self.accuracy),
            ("log_loss", self.log_loss),
            ("f1", self.f1),
        ];
        if let Some(auc) = self.auc {
            pairs.push(("auc", auc));
        }
        pairs
    }
}

/// Classification metrics of class probabilities `proba` (one row per example, one column per
/// class) against `actual` class indices (`0.0`, `1.0`, ...).
///
/// # Panics
/// When the lengths differ.
pub fn classification(actual: &[f64], proba: &[Vec<f64>]) -> ClassificationMetrics {
    assert_eq!(
        actual.len(),
        proba.len(),
        "one probability row per actual value"
    );
    let max_label = actual
        .iter()
        .map(|&y| y as usize)
        .max()
        .map_or(0, |m| m + 1);
    let classes = proba.iter().map(Vec::len).max().unwrap_or(0).max(max_label);
    let mut confusion = vec![vec![0u64; classes]; classes];
    let mut log_loss = 0.0;
    for (&y, p) in actual.iter().zip(proba) {
        let y = y as usize;
        confusion[y][argmax(p)] += 1;
        let py = p.get(y).copied().unwrap_or(0.0).clamp(1e-15, 1.0 - 1e-15);
        log_loss -= py.ln();
    }
    let n = actual.len() as f64;
    let correct: u64 = (0..classes).map(|k| confusion[k][k]).sum();
    let mut f1_sum = 0.0;
    let mut f1_classes = 0usize;
    for k in 0..classes {
        let tp = confusion[k][k] as f64;
        let actual_k: u64 = confusion[k].iter().sum();
        let predicted_k: u64 = confusion.iter().map(|row| row[k]).sum();
        if actual_k + predicted_k == 0 {
            continue;
        }
        f1_sum += 2.0 * tp / (actual_k + predicted_k) as f64;
        f1_classes += 1;
    }
    let auc = if proba.iter().all(|p| p.len() == 2) && classes == 2 {
        let scores: Vec<f64> = proba.iter().map(|p| p[1]).collect();
        roc_auc(actual, &scores)
    } else {
        None
    };
    ClassificationMetrics {
        accuracy: correct as f64 / n,
        log_loss: log_loss / n,
        f1: if f1_classes == 0 {
            f64::NAN
        } else {
            f1_sum / f1_classes as f64
        },
        auc,
        confusion,
    }
}

/// The index of the largest probability (the first on ties): a classifier's predicted class.
pub fn argmax(p: &[f64]) -> usize {
    p.iter()
        .enumerate()
        .fold((0, f64::NEG_INFINITY), |best, (k, &v)| {
            if v > best.1 { (k, v) } else { best }
        })
        .0
}

/// ROC AUC by the rank formula (Mann-Whitney U), tied scores sharing their mean rank; `None`
/// when a class is missing.
fn roc_auc(actual: &[f64], scores: &[f64]) -> Option<f64> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let mut rank_sum_positive = 0.0;
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && scores[order[j + 1]] == scores[order[i]] {
            j += 1;
        }
        // Ranks are 1-based: the tie group i..=j shares the mean of ranks i+1..=j+1.
        let rank = (i + j) as f64 / 2.0 + 1.0;
        for &row in &order[i..=j] {
            if actual[row] == 1.0 {
                rank_sum_positive += rank;
            }
        }
        i = j + 1;
    }
    let positives = actual.iter().filter(|&&y| y == 1.0).count() as f64;
    let negatives = actual.len() as f64 - positives;
    if positives == 0.0 || negatives == 0.0 {
        return None;
    }
    Some((rank_sum_positive - positives * (positives + 1.0) / 2.0) / (positives * negatives))
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A confusion matrix as a self-contained SVG heat-map: one cell per (actual, predicted) pair with
/// its count, shaded by the count relative to the largest. `labels` name the classes (their
/// index where a label is missing).
pub fn confusion_svg(confusion: &[Vec<u64>], labels: &[String]) -> String {
    const CELL: usize = 48;
    const LEFT: usize = 120;
    const TOP: usize = 110;
    let k = confusion.len();
    let label = |i: usize| escape(labels.get(i).map_or(&i.to_string(), |l| l));
    let max = confusion
        .iter()
        .flatten()
        .copied()
        .max()
        .unwrap_or(0)
        .max(1);
    let width = LEFT + k * CELL + 20;
    let height = TOP + k * CELL + 20;
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = write!(
        svg,
        r#"<text x="{x}" y="16" text-anchor="middle" font-weight="bold">predicted</text><text x="14" y="{y}" text-anchor="middle" font-weight="bold" transform="rotate(-90 14 {y})">actual</text>"#,
        x = LEFT + k * CELL / 2,
        y = TOP + k * CELL / 2,
    );
    for i in 0..k {
        let _ = write!(
            svg,
            r#"<text x="{x}" y="{y}" text-anchor="start" transform="rotate(-60 {x} {y})">{l}</text>"#,
            x = LEFT + i * CELL + CELL / 2,
            y = TOP - 6,
            l = label(i),
        );
        let _ = write!(
            svg,
            r#"<text x="{x}" y="{y}" text-anchor="end">{l}</text>"#,
            x = LEFT - 6,
            y = TOP + i * CELL + CELL / 2 + 4,
            l = label(i),
        );
    }
    for (i, row) in confusion.iter().enumerate() {
        for j in 0..k {
            let count = row.get(j).copied().unwrap_or(0);
            let share = count as f64 / max as f64;
            // From white to a dark blue.
            let shade = |light: f64, dark: f64| (light + (dark - light) * share).round() as u8;
            let (r, g, b) = (shade(247.0, 8.0), shade(251.0, 48.0), shade(255.0, 107.0));
            let text = if share > 0.5 { "#fff" } else { "#000" };
            let _ = write!(
                svg,
                r##"<rect x="{x}" y="{y}" width="{CELL}" height="{CELL}" fill="#{r:02x}{g:02x}{b:02x}" stroke="#ccc"><title>actual {a}, predicted {p}: {count}</title></rect><text x="{tx}" y="{ty}" text-anchor="middle" fill="{text}">{count}</text>"##,
                x = LEFT + j * CELL,
                y = TOP + i * CELL,
                a = label(i),
                p = label(j),
                tx = LEFT + j * CELL + CELL / 2,
                ty = TOP + i * CELL + CELL / 2 + 4,
            );
        }
    }
    svg.push_str("</svg>");
    svg
}

/// The most points a residual plot draws; larger inputs are sampled at even strides.
const MAX_POINTS: usize = 2000;

/// Residuals (`actual - predicted`) against the prediction as a self-contained SVG scatter with a
/// zero line; at most 2,000 points, taken at even strides so the same data draws the same plot.
pub fn residuals_svg(actual: &[f64], predicted: &[f64]) -> String {
    const W: f64 = 640.0;
    const H: f64 = 400.0;
    const PAD: f64 = 56.0;
    let n = actual.len().min(predicted.len());
    let picked: Vec<usize> = if n > MAX_POINTS {
        (0..MAX_POINTS).map(|i| i * n / MAX_POINTS).collect()
    } else {
        (0..n).collect()
    };
    let points: Vec<(f64, f64)> = picked
        .into_iter()
        .map(|i| (predicted[i], actual[i] - predicted[i]))
        .filter(|(x, y)| x.is_finite() && y.is_finite())
        .collect();
    let range = |values: &mut dyn Iterator<Item = f64>| {
        let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
        if lo > hi {
            (-1.0, 1.0)
        } else if lo == hi {
            (lo - 1.0, hi + 1.0)
        } else {
            (lo, hi)
        }
    };
    let (x0, x1) = range(&mut points.iter().map(|p| p.0));
    // The residual axis always shows zero.
    let (y0, y1) = range(&mut points.iter().map(|p| p.1).chain([0.0]));
    let sx = |x: f64| PAD + (x - x0) / (x1 - x0) * (W - 2.0 * PAD);
    let sy = |y: f64| H - PAD - (y - y0) / (y1 - y0) * (H - 2.0 * PAD);
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">"#
    );
    let _ = write!(
        svg,
        r##"<rect x="{PAD}" y="{PAD}" width="{w}" height="{h}" fill="none" stroke="#999"/>"##,
        w = W - 2.0 * PAD,
        h = H - 2.0 * PAD,
    );
    let _ = write!(
        svg,
        r##"<line x1="{PAD}" y1="{y:.1}" x2="{x2}" y2="{y:.1}" stroke="#d62728" stroke-dasharray="4 3"/>"##,
        y = sy(0.0),
        x2 = W - PAD,
    );
    for (x, y) in &points {
        let _ = write!(
            svg,
            r##"<circle cx="{:.1}" cy="{:.1}" r="2" fill="#1f77b4" fill-opacity="0.5"/>"##,
            sx(*x),
            sy(*y)
        );
    }
    let tick = |v: f64| escape(&format!("{v:.4}"));
    let _ = write!(
        svg,
        r#"<text x="{PAD}" y="{b}" text-anchor="start">{xl}</text><text x="{r}" y="{b}" text-anchor="end">{xh}</text><text x="{c}" y="{t}" text-anchor="middle">predicted</text>"#,
        b = H - PAD + 16.0,
        r = W - PAD,
        c = W / 2.0,
        t = H - 12.0,
        xl = tick(x0),
        xh = tick(x1),
    );
    let _ = write!(
        svg,
        r#"<text x="{l}" y="{top}" text-anchor="end">{yh}</text><text x="{l}" y="{bottom}" text-anchor="end">{yl}</text><text x="14" y="{m}" text-anchor="middle" transform="rotate(-90 14 {m})">residual (actual - predicted)</text>"#,
        l = PAD - 4.0,
        top = PAD + 4.0,
        bottom = H - PAD,
        m = H / 2.0,
        yh = tick(y1),
        yl = tick(y0),
    );
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn regression_metrics_by_hand() {
        let m = regression(&[1.0, 2.0, 0.0, 4.0], &[2.0, 2.0, 1.0, 2.0]);
        // errors f - y: 1, 0, 1, -2
        assert!(close(m.mae, 1.0));
        assert!(close(m.rmse, (6.0f64 / 4.0).sqrt()));
        // y != 0 rows: 1/1, 0/2, 2/4
        assert!(close(m.mape, 1.5 / 3.0));
        // 2|e|/(|y|+|f|): 2/3, 0, 2/1, 4/6
        assert!(close(m.smape, (2.0 / 3.0 + 2.0 + 4.0 / 6.0) / 4.0));
        assert!(close(m.wape, 4.0 / 7.0));
        assert!(close(m.bias, 0.0));
        // mean 1.75, SST = 0.5625 + 0.0625 + 3.0625 + 5.0625 = 8.75, SSE = 6
        assert!(close(m.r2, 1.0 - 6.0 / 8.75));
        assert_eq!(m.get("wape"), Some(m.wape));
        assert_eq!(m.get("nope"), None);
        assert_eq!(m.to_pairs().len(), 7);
        assert_eq!(m.to_pairs()[6], ("r2", m.r2));
    }

    #[test]
    fn regression_edge_cases() {
        let zeros = regression(&[0.0, 0.0], &[0.0, 1.0]);
        assert!(zeros.mape.is_nan());
        // Both zero counts 0; 0 vs 1 counts 2.
        assert!(close(zeros.smape, 1.0));
        assert!(zeros.wape.is_infinite());
        let constant = regression(&[3.0, 3.0], &[3.0, 3.0]);
        assert_eq!(constant.r2, 1.0);
        assert_eq!(regression(&[3.0, 3.0], &[3.0, 4.0]).r2, 0.0);
        let over = regression(&[10.0, 10.0], &[11.0, 12.0]);
        assert!(close(over.bias, 0.15));
    }

    #[test]
    fn classification_metrics_binary() {
        let actual = [0.0, 0.0, 1.0, 1.0, 1.0];
        let p1 = [0.1, 0.6, 0.7, 0.6, 0.3];
        let proba: Vec<Vec<f64>> = p1.iter().map(|&p| vec![1.0 - p, p]).collect();
        let m = classification(&actual, &proba);
        // predicted: 0, 1, 1, 1, 0
        assert_eq!(m.confusion, vec![vec![1, 1], vec![1, 2]]);
        assert!(close(m.accuracy, 0.6));
        // F1 class 0: 2*1/(2+2) = 0.5; class 1: 2*2/(3+3) = 2/3.
        assert!(close(m.f1, (0.5 + 2.0 / 3.0) / 2.0));
        let ll = -(0.9f64.ln() + 0.4f64.ln() + 0.7f64.ln() + 0.6f64.ln() + 0.3f64.ln()) / 5.0;
        assert!(close(m.log_loss, ll));
        // Pairs (neg, pos) ordered: (0.1: all 3 positives above) (0.6 vs 0.7 above, 0.6 tie, 0.3
        // below): 3 + 1 + 0.5 = 4.5 of 6.
        assert!(close(m.auc.unwrap(), 4.5 / 6.0));
        assert_eq!(m.get("auc"), m.auc);
        assert_eq!(m.to_pairs().len(), 4);
    }

    #[test]
    fn classification_metrics_multiclass_and_missing_class() {
        let actual = [0.0, 1.0, 2.0, 2.0];
        let proba = vec![
            vec![0.8, 0.1, 0.1],
            vec![0.2, 0.3, 0.5],
            vec![0.1, 0.1, 0.8],
            vec![0.0, 0.0, 1.0],
        ];
        let m = classification(&actual, &proba);
        assert_eq!(m.auc, None);
        assert_eq!(m.to_pairs().len(), 3);
        assert_eq!(m.confusion[1], vec![0, 0, 1]);
        assert!(close(m.accuracy, 0.75));
        // F1: class 0 = 1, class 1 = 0, class 2 = 2*2/(2+3) = 0.8.
        assert!(close(m.f1, 1.8 / 3.0));
        // One class only: no AUC.
        let one = classification(&[1.0, 1.0], &[vec![0.2, 0.8], vec![0.4, 0.6]]);
        assert_eq!(one.auc, None);
        assert!(close(one.f1, 1.0));
    }

    #[test]
    fn auc_is_one_for_a_perfect_ranking_and_half_for_all_ties() {
        let actual = [0.0, 0.0, 1.0, 1.0];
        let perfect = classification(&actual, &[0.1, 0.2, 0.8, 0.9].map(|p| vec![1.0 - p, p]));
        assert_eq!(perfect.auc, Some(1.0));
        let ties = classification(&actual, &[0.5; 4].map(|p| vec![1.0 - p, p]));
        assert_eq!(ties.auc, Some(0.5));
    }

    #[test]
    fn confusion_svg_has_a_cell_per_pair_and_escapes_labels() {
        let svg = confusion_svg(
            &[vec![5, 1], vec![2, 7]],
            &["<cat>".to_string(), "dog & co".to_string()],
        );
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert_eq!(svg.matches("<rect").count(), 4);
        assert!(svg.contains("&lt;cat&gt;") && svg.contains("dog &amp; co"));
        assert!(!svg.contains("<cat>"));
        assert!(svg.contains(">7</text>"));
    }

    #[test]
    fn residuals_svg_caps_points_and_is_deterministic() {
        let actual: Vec<f64> = (0..10_000).map(|i| (i % 97) as f64).collect();
        let predicted: Vec<f64> = (0..10_000).map(|i| (i % 89) as f64).collect();
        let svg = residuals_svg(&actual, &predicted);
        assert_eq!(svg.matches("<circle").count(), MAX_POINTS);
        assert_eq!(svg, residuals_svg(&actual, &predicted));
        assert!(svg.contains("stroke-dasharray"));
        let small = residuals_svg(&[1.0, f64::NAN], &[1.5, 2.0]);
        assert_eq!(small.matches("<circle").count(), 1);
        assert!(residuals_svg(&[], &[]).ends_with("</svg>"));
    }
}
