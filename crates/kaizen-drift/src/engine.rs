//! One pass over each column: drop missing values, type the column as Evidently does, run its
//! test, and gather data quality and histogram data for the report. Columns are spread over
//! threads; each thread holds only the column it works on.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::column::{Dataset, MISSING, Values};
use crate::report::{ColumnDrift, ColumnQuality, DatasetDrift, DriftReport, Histogram};
use crate::stats::{self, CategoryCounts, NumericPair};
use crate::test::{ColumnType, Test, default_test};
use crate::{DriftError, Result};

/// What one column's worker answers: its drift and quality, or `None` when it is skipped.
type ColumnOutcome = Result<Option<(ColumnDrift, ColumnQuality)>>;

/// Evidently's cut-off between categorical and numeric integer columns (`INTEGER_CARDINALITY_LIMIT`).
const INTEGER_CARDINALITY_LIMIT: usize = 10;
/// How many new categories the report lists per column.
const MAX_NEW_CATEGORIES: usize = 20;
/// Bars per histogram in the HTML report.
const HISTOGRAM_BINS: usize = 20;
/// Categories per bar chart in the HTML report.
const HISTOGRAM_CATEGORIES: usize = 15;

/// What to compare and how.
#[derive(Debug, Clone)]
pub struct DriftOptions {
    /// Columns to compare, in this order; `None`: every column of the current data whose type
    /// drift handles and that the reference also has.
    pub columns: Option<Vec<String>>,
    /// A test per column, instead of the default choice.
    pub tests: BTreeMap<String, Test>,
    /// A threshold per column, instead of the test's default.
    pub thresholds: BTreeMap<String, f64>,
    /// The data set drifts when the share of drifted columns is at least this.
    pub share_threshold: f64,
    /// Threads to spread columns over (0: the available parallelism).
    pub threads: usize,
}

impl Default for DriftOptions {
    fn default() -> Self {
        DriftOptions {
            columns: None,
            tests: BTreeMap::new(),
            thresholds: BTreeMap::new(),
            share_threshold: 0.5,
            threads: 0,
        }
    }
}

/// Compares `current` with `reference`.
pub fn compare(
    reference: &Dataset,
    current: &Dataset,
    options: &DriftOptions,
) -> Result<DriftReport> {
    if !(0.0..=1.0).contains(&options.share_threshold) {
        return Err(DriftError::InvalidOption(format!(
            "the share threshold must be between 0 and 1, got {}",
            options.share_threshold
        )));
    }
    for (column, t) in &options.thresholds {
        if !t.is_finite() {
            return Err(DriftError::InvalidOption(format!(
                "threshold for `{column}` is not a number"
            )));
        }
    }
    let explicit = options.columns.is_some();
    let columns: Vec<String> = match &options.columns {
        Some(cols) => {
            for c in cols {
                for (side, ds) in [("current", current), ("reference", reference)] {
                    if !ds.has(c) {
                        return Err(DriftError::UnknownColumn {
                            column: c.clone(),
                            side,
                            path: ds.path().to_owned(),
                            available: ds.names().join(", "),
                        });
                    }
                }
            }
            cols.clone()
        }
        None => current
            .names()
            .iter()
            .filter(|n| reference.has(n))
            .cloned()
            .collect(),
    };
    for c in options.tests.keys().chain(options.thresholds.keys()) {
        if !columns.contains(c) {
            let (side, ds) = if current.has(c) {
                ("reference", reference)
            } else {
                ("current", current)
            };
            return Err(DriftError::UnknownColumn {
                column: c.clone(),
                side,
                path: ds.path().to_owned(),
                available: ds.names().join(", "),
            });
        }
    }
    let threads = if options.threads == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        options.threads
    }
    .clamp(1, columns.len().max(1));
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<ColumnOutcome>>> =
        Mutex::new((0..columns.len()).map(|_| None).collect());
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= columns.len() {
                        break;
                    }
                    let r = column(reference, current, &columns[i], explicit, options);
                    let failed = r.is_err();
                    results.lock().unwrap_or_else(|e| e.into_inner())[i] = Some(r);
                    if failed {
                        // Stop handing out work; the first error is reported.
                        next.store(columns.len(), Ordering::Relaxed);
                    }
                }
            });
        }
    });
    let results = results.into_inner().unwrap_or_else(|e| e.into_inner());
    let mut drift = Vec::new();
    let mut quality = Vec::new();
    for r in results.into_iter().flatten() {
        if let Some((d, q)) = r? {
            drift.push(d);
            quality.push(q);
        }
    }
    if drift.is_empty() {
        return Err(DriftError::NoColumns);
    }
    let drifted = drift.iter().filter(|c| c.drifted).count();
    let share = drifted as f64 / drift.len() as f64;
    Ok(DriftReport {
        dataset: DatasetDrift {
            drifted_columns: drifted,
            columns: drift.len(),
            share,
            share_threshold: options.share_threshold,
            drifted: share >= options.share_threshold,
        },
        columns: drift,
        reference_rows: reference.rows(),
        current_rows: current.rows(),
        quality,
    })
}

/// A column's values with missing ones dropped.
enum Clean {
    Numeric {
        sorted: Vec<f64>,
        integer: bool,
    },
    Labels {
        codes: Vec<u32>,
        dictionary: Vec<String>,
        boolean: bool,
    },
}

fn clean(values: Values) -> (Clean, usize) {
    match values {
        Values::Numeric { values, integer } => {
            let before = values.len();
            // In place: a second buffer of millions of values costs its page faults.
            let mut sorted = values;
            sorted.retain(|v| v.is_finite());
            let missing = before - sorted.len();
            // The same order as `f64::total_cmp` (no NaN is left), in linear time.
            radsort::sort(&mut sorted);
            (Clean::Numeric { sorted, integer }, missing)
        }
        Values::Text {
            codes,
            dictionary,
            boolean,
        } => {
            let before = codes.len();
            let codes: Vec<u32> = codes.into_iter().filter(|&c| c != MISSING).collect();
            let missing = before - codes.len();
            (
                Clean::Labels {
                    codes,
                    dictionary,
                    boolean,
                },
                missing,
            )
        }
    }
}

/// Category counts over both samples, in Python's sort order of the categories.
struct Categories {
    labels: Vec<String>,
    counts: CategoryCounts,
}

fn numeric_categories(reference: &[f64], current: &[f64]) -> Categories {
    let mut map: BTreeMap<OrderedF64, (u64, u64)> = BTreeMap::new();
    for (i, sorted) in [reference, current].into_iter().enumerate() {
        let mut k = 0;
        while k < sorted.len() {
            let x = sorted[k];
            let start = k;
            while k < sorted.len() && sorted[k] == x {
                k += 1;
            }
            let e = map
                .entry(OrderedF64(if x == 0.0 { 0.0 } else { x }))
                .or_default();
            if i == 0 {
                e.0 += (k - start) as u64;
            } else {
                e.1 += (k - start) as u64;
            }
        }
    }
    let mut out = Categories {
        labels: Vec::with_capacity(map.len()),
        counts: CategoryCounts::default(),
    };
    for (k, (r, c)) in map {
        out.labels.push(format_number(k.0));
        out.counts.reference.push(r);
        out.counts.current.push(c);
    }
    out
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct OrderedF64(f64);
impl Eq for OrderedF64 {}
impl PartialOrd for OrderedF64 {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for OrderedF64 {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}

fn label_categories(reference: (&[u32], &[String]), current: (&[u32], &[String])) -> Categories {
    let mut map: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    for (i, (codes, dict)) in [reference, current].into_iter().enumerate() {
        let mut counts = vec![0u64; dict.len()];
        for &c in codes {
            counts[c as usize] += 1;
        }
        for (code, n) in counts.into_iter().enumerate() {
            if n == 0 {
                continue;
            }
            let e = map.entry(dict[code].as_str()).or_default();
            if i == 0 {
                e.0 += n;
            } else {
                e.1 += n;
            }
        }
    }
    let mut out = Categories {
        labels: Vec::with_capacity(map.len()),
        counts: CategoryCounts::default(),
    };
    for (k, (r, c)) in map {
        out.labels.push(k.to_owned());
        out.counts.reference.push(r);
        out.counts.current.push(c);
    }
    out
}

/// A number as a category label: integers without a fractional part.
fn format_number(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{}", x as i64)
    } else {
        format!("{x}")
    }
}

fn distinct_count(sorted: &[f64]) -> usize {
    let mut n = 0;
    let mut k = 0;
    while k < sorted.len() {
        let x = sorted[k];
        while k < sorted.len() && sorted[k] == x {
            k += 1;
        }
        n += 1;
    }
    n
}

/// Counts past this many distinct values are not needed by the choice of test.
const DISTINCT_CAP: usize = 6;

/// The distinct values of two sorted samples together, in order, as a lazy merge: counting
/// the first few (`.take(DISTINCT_CAP).count()`) costs a few steps on a continuous column.
fn distinct_merged<'a>(a: &'a [f64], b: &'a [f64]) -> impl Iterator<Item = f64> + 'a {
    let (mut i, mut j) = (0, 0);
    std::iter::from_fn(move || {
        if i >= a.len() && j >= b.len() {
            return None;
        }
        let x = if j >= b.len() || (i < a.len() && a[i] <= b[j]) {
            a[i]
        } else {
            b[j]
        };
        while i < a.len() && a[i] == x {
            i += 1;
        }
        while j < b.len() && b[j] == x {
            j += 1;
        }
        Some(x)
    })
}

/// Evidently's type of a column from the current data (`infer_column_type`).
fn column_type(current: &Values) -> ColumnType {
    match current {
        Values::Numeric { values, integer } => {
            if *integer {
                let mut distinct: HashMap<u64, ()> = HashMap::new();
                for v in values {
                    distinct.insert(if *v == 0.0 { 0 } else { v.to_bits() }, ());
                    if distinct.len() > INTEGER_CARDINALITY_LIMIT {
                        return ColumnType::Numeric;
                    }
                }
                ColumnType::Categorical
            } else {
                ColumnType::Numeric
            }
        }
        Values::Text { .. } => ColumnType::Categorical,
    }
}

fn column(
    reference: &Dataset,
    current: &Dataset,
    name: &str,
    explicit: bool,
    options: &DriftOptions,
) -> Result<Option<(ColumnDrift, ColumnQuality)>> {
    let Some(cur_values) = current.load(name, "current")? else {
        if explicit {
            return Err(DriftError::UnsupportedType {
                column: name.to_owned(),
                data_type: "date/time".into(),
                side: "current",
                path: current.path().to_owned(),
            });
        }
        return Ok(None);
    };
    let Some(ref_values) = reference.load(name, "reference")? else {
        return Err(DriftError::UnsupportedType {
            column: name.to_owned(),
            data_type: "date/time".into(),
            side: "reference",
            path: reference.path().to_owned(),
        });
    };
    let kind = column_type(&cur_values);
    let (ref_rows, cur_rows) = (ref_values.len(), cur_values.len());
    let (ref_clean, ref_missing) = clean(ref_values);
    let (cur_clean, cur_missing) = clean(cur_values);
    let empty = |side: &'static str, ds: &Dataset| DriftError::EmptyColumn {
        column: name.to_owned(),
        side,
        path: ds.path().to_owned(),
    };
    let ref_len = match &ref_clean {
        Clean::Numeric { sorted, .. } => sorted.len(),
        Clean::Labels { codes, .. } => codes.len(),
    };
    let cur_len = match &cur_clean {
        Clean::Numeric { sorted, .. } => sorted.len(),
        Clean::Labels { codes, .. } => codes.len(),
    };
    if ref_len == 0 {
        return Err(empty("reference", reference));
    }
    if cur_len == 0 {
        return Err(empty("current", current));
    }

    let mut quality = ColumnQuality {
        column: name.to_owned(),
        missing_reference: ref_missing,
        missing_current: cur_missing,
        missing_share_reference: ratio(ref_missing, ref_rows),
        missing_share_current: ratio(cur_missing, cur_rows),
        new_categories: Vec::new(),
        new_category_count: 0,
        out_of_range: 0,
        reference_min: None,
        reference_max: None,
    };

    let test;
    let statistic;
    let p_value;
    let histogram;
    match (&ref_clean, &cur_clean) {
        (
            Clean::Numeric {
                sorted: r,
                integer: ri,
            },
            Clean::Numeric {
                sorted: c,
                integer: ci,
            },
        ) => {
            // The choice of test only asks whether there are more than 5 (or 2) distinct values.
            let distinct = distinct_merged(r, c).take(DISTINCT_CAP).count();
            test = choose(options, name, kind, r.len(), distinct)?;
            let pair = NumericPair {
                reference: r,
                current: c,
                integer: *ri && *ci,
            };
            let (s, p) = numeric_test(test, kind, pair, distinct, name)?;
            statistic = s;
            p_value = p;
            let (rmin, rmax) = (r[0], r[r.len() - 1]);
            quality.reference_min = Some(rmin);
            quality.reference_max = Some(rmax);
            quality.out_of_range =
                c.partition_point(|&v| v < rmin) + (c.len() - c.partition_point(|&v| v <= rmax));
            if kind == ColumnType::Categorical {
                let cats = numeric_categories(r, c);
                new_categories(&mut quality, &cats);
                histogram = category_histogram(&cats);
            } else {
                histogram = numeric_histogram(r, c);
            }
        }
        (
            Clean::Labels {
                codes: rc,
                dictionary: rd,
                ..
            },
            Clean::Labels {
                codes: cc,
                dictionary: cd,
                boolean,
            },
        ) => {
            let _ = boolean;
            let cats = label_categories((rc, rd), (cc, cd));
            test = choose(options, name, kind, rc.len(), cats.labels.len())?;
            let (s, p) = categorical_test(test, &cats.counts)?;
            statistic = s;
            p_value = p;
            new_categories(&mut quality, &cats);
            histogram = category_histogram(&cats);
        }
        (Clean::Labels { .. }, Clean::Numeric { .. }) => {
            return Err(DriftError::MixedTypes {
                column: name.to_owned(),
                path: reference.path().to_owned(),
            });
        }
        (
            Clean::Numeric { sorted: r, .. },
            Clean::Labels {
                codes: cc,
                dictionary: cd,
                ..
            },
        ) => {
            // Text in the current data, numbers in the reference: compare as labels.
            let labels: Vec<String> = r.iter().map(|&x| format_number(x)).collect();
            let mut dict: Vec<String> = Vec::new();
            let mut index: HashMap<&str, u32> = HashMap::new();
            let mut codes = Vec::with_capacity(labels.len());
            for l in &labels {
                let next = index.len() as u32;
                let c = *index.entry(l.as_str()).or_insert(next);
                if c as usize == dict.len() {
                    dict.push(l.clone());
                }
                codes.push(c);
            }
            let cats = label_categories((&codes, &dict), (cc, cd));
            test = choose(options, name, kind, r.len(), cats.labels.len())?;
            let (s, p) = categorical_test(test, &cats.counts)?;
            statistic = s;
            p_value = p;
            new_categories(&mut quality, &cats);
            histogram = category_histogram(&cats);
        }
    }

    let threshold = options
        .thresholds
        .get(name)
        .copied()
        .unwrap_or(test.default_threshold());
    let score = p_value.unwrap_or(statistic);
    let drifted = test.drifted(score, threshold);
    Ok(Some((
        ColumnDrift {
            column: name.to_owned(),
            kind,
            test,
            statistic,
            p_value,
            threshold,
            drifted,
            missing: ref_missing + cur_missing,
            score,
            missing_reference: ref_missing,
            missing_current: cur_missing,
            reference_count: ref_len,
            current_count: cur_len,
            histogram,
        },
        quality,
    )))
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

fn choose(
    options: &DriftOptions,
    name: &str,
    kind: ColumnType,
    reference_rows: usize,
    distinct: usize,
) -> Result<Test> {
    match options.tests.get(name) {
        Some(&t) => {
            if !t.applies_to(kind) {
                return Err(DriftError::TestNotApplicable {
                    test: t.name(),
                    column: name.to_owned(),
                    kind: kind.as_str(),
                    allowed: t.allowed(),
                });
            }
            Ok(t)
        }
        None => Ok(default_test(kind, reference_rows, distinct)),
    }
}

fn numeric_test(
    test: Test,
    kind: ColumnType,
    pair: NumericPair<'_>,
    distinct: usize,
    name: &str,
) -> Result<(f64, Option<f64>)> {
    let (r, c) = (pair.reference, pair.current);
    let binned_numeric = || {
        if kind == ColumnType::Numeric && distinct_count(r) > 20 {
            Some(pair)
        } else {
            None
        }
    };
    Ok(match test {
        Test::Ks => {
            let (d, p) = stats::ks::ks_2samp(r, c);
            (d, Some(p))
        }
        Test::Wasserstein => (stats::wasserstein_norm(r, c), None),
        Test::EnergyDistance => (stats::energy_distance(r, c), None),
        Test::Anderson => {
            if distinct < 2 {
                return Err(DriftError::TooFewValues {
                    test: "anderson",
                    column: name.to_owned(),
                    needs: "at least two distinct values",
                });
            }
            let (a, p) = stats::anderson_ksamp(r, c);
            (a, Some(p))
        }
        Test::CramerVonMises => {
            if r.len() < 2 || c.len() < 2 {
                return Err(DriftError::TooFewValues {
                    test: "cramer_von_mises",
                    column: name.to_owned(),
                    needs: "at least two values in each sample",
                });
            }
            let (t, p) = stats::cramer_von_mises(r, c);
            (t, Some(p))
        }
        Test::Hellinger if kind == ColumnType::Numeric => (
            stats::hellinger_numeric(pair, &distinct_merged(r, c).collect::<Vec<_>>()),
            None,
        ),
        Test::Jensenshannon | Test::Psi | Test::KlDiv => {
            let cats = numeric_categories(r, c);
            let b = stats::binned(binned_numeric(), &cats.counts, test != Test::Jensenshannon);
            (binned_score(test, &b), None)
        }
        Test::Chisquare | Test::Z | Test::Hellinger => {
            let cats = numeric_categories(r, c);
            categorical_test(test, &cats.counts)?
        }
    })
}

fn binned_score(test: Test, b: &stats::Binned) -> f64 {
    match test {
        Test::Jensenshannon => stats::jensenshannon(&b.reference, &b.current),
        Test::Psi => stats::psi(&b.reference, &b.current),
        _ => stats::kl_div(&b.reference, &b.current),
    }
}

fn categorical_test(test: Test, counts: &CategoryCounts) -> Result<(f64, Option<f64>)> {
    Ok(match test {
        Test::Chisquare => {
            let (s, p) = stats::chisquare(counts);
            (s, Some(p))
        }
        Test::Z => {
            let (z, p) = stats::z_test(counts);
            (z, Some(p))
        }
        Test::Hellinger => (stats::hellinger_categorical(counts), None),
        Test::Jensenshannon | Test::Psi | Test::KlDiv => {
            let b = stats::binned(None, counts, test != Test::Jensenshannon);
            (binned_score(test, &b), None)
        }
        other => {
            return Err(DriftError::Internal(format!(
                "test {other} reached the categorical path"
            )));
        }
    })
}

fn new_categories(quality: &mut ColumnQuality, cats: &Categories) {
    for (label, (&r, &c)) in cats
        .labels
        .iter()
        .zip(cats.counts.reference.iter().zip(&cats.counts.current))
    {
        if r == 0 && c > 0 {
            quality.new_category_count += 1;
            if quality.new_categories.len() < MAX_NEW_CATEGORIES {
                quality.new_categories.push(label.clone());
            }
        }
    }
}

fn numeric_histogram(r: &[f64], c: &[f64]) -> Histogram {
    let min = r[0].min(c[0]);
    let max = r[r.len() - 1].max(c[c.len() - 1]);
    let (lo, hi) = if min == max {
        (min - 0.5, max + 0.5)
    } else {
        (min, max)
    };
    let step = (hi - lo) / HISTOGRAM_BINS as f64;
    let edges: Vec<f64> = (0..=HISTOGRAM_BINS)
        .map(|i| {
            if i == HISTOGRAM_BINS {
                hi
            } else {
                lo + step * i as f64
            }
        })
        .collect();
    let share = |s: &[f64]| -> Vec<f64> {
        stats::histogram_counts(s, &edges)
            .into_iter()
            .map(|n| n as f64 / s.len() as f64)
            .collect()
    };
    Histogram {
        labels: edges.iter().map(|e| format!("{e:.4}")).collect(),
        reference: share(r),
        current: share(c),
        numeric: true,
    }
}

fn category_histogram(cats: &Categories) -> Histogram {
    let nr: u64 = cats.counts.reference.iter().sum();
    let nc: u64 = cats.counts.current.iter().sum();
    let mut order: Vec<usize> = (0..cats.labels.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(cats.counts.reference[i] + cats.counts.current[i]));
    order.truncate(HISTOGRAM_CATEGORIES);
    Histogram {
        labels: order.iter().map(|&i| cats.labels[i].clone()).collect(),
        reference: order
            .iter()
            .map(|&i| cats.counts.reference[i] as f64 / nr.max(1) as f64)
            .collect(),
        current: order
            .iter()
            .map(|&i| cats.counts.current[i] as f64 / nc.max(1) as f64)
            .collect(),
        numeric: false,
    }
}
