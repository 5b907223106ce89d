//! The statistics behind the drift tests, each written to give the same numbers as the scipy
//! function (or Evidently helper) named in its doc comment. Numeric inputs are sorted slices
//! without NaN or infinities; categorical inputs are per-category counts.

pub mod ks;
pub mod special;

use special::sum;

/// Population standard deviation (`np.std`, ddof = 0), two-pass.
pub fn std_pop(x: &[f64]) -> f64 {
    let n = x.len() as f64;
    let mean = sum(x.iter().copied()) / n;
    (sum(x.iter().map(|v| (v - mean) * (v - mean))) / n).sqrt()
}

/// ∫|F_u - F_v|^p over the pooled sample (scipy's `_cdf_distance` before the final root).
///
/// One merge of the two sorted samples, element by element and without data-dependent branches
/// (the samples interleave at random, so branches would mispredict on every other value). Tied
/// values make terms of width zero, which add exactly nothing, so the sum is scipy's over the
/// distinct values. The terms are summed as they come (compensated), never stored.
fn cdf_distance_integral(u: &[f64], v: &[f64], p: u32) -> f64 {
    let (Some(&u0), Some(&v0)) = (u.first(), v.first()) else {
        return 0.0;
    };
    let (nu, nv) = (u.len() as f64, v.len() as f64);
    let (mut i, mut j) = (0usize, 0usize);
    let mut acc = Neumaier::default();
    // The first term has width zero: prev_x is the smallest value.
    let (mut prev_x, mut prev_d) = (u0.min(v0), 0.0f64);
    let mut step = |x: f64, i: usize, j: usize| {
        acc.add(prev_d * (x - prev_x));
        let d = (i as f64 / nu - j as f64 / nv).abs();
        prev_x = x;
        prev_d = if p == 1 { d } else { d * d };
    };
    while i < u.len() && j < v.len() {
        let (a, b) = (u[i], v[j]);
        let take_u = a <= b;
        let x = if take_u { a } else { b };
        i += usize::from(take_u);
        j += usize::from(!take_u);
        step(x, i, j);
    }
    while i < u.len() {
        i += 1;
        step(u[i - 1], i, j);
    }
    while j < v.len() {
        j += 1;
        step(v[j - 1], i, j);
    }
    acc.value()
}

/// A running compensated (Neumaier) sum, the same arithmetic as [`special::sum`].
#[derive(Default)]
struct Neumaier {
    s: f64,
    c: f64,
    plain: f64,
}

impl Neumaier {
    #[inline]
    fn add(&mut self, v: f64) {
        self.plain += v;
        let t = self.s + v;
        if self.s.abs() >= v.abs() {
            self.c += (self.s - t) + v;
        } else {
            self.c += (v - t) + self.s;
        }
        self.s = t;
    }

    fn value(&self) -> f64 {
        if self.plain.is_finite() {
            self.s + self.c
        } else {
            self.plain
        }
    }
}

/// `scipy.stats.wasserstein_distance(u, v)`.
pub fn wasserstein(u: &[f64], v: &[f64]) -> f64 {
    cdf_distance_integral(u, v, 1)
}

/// Evidently's normed Wasserstein distance: the distance divided by max(std(reference), 0.001).
pub fn wasserstein_norm(reference: &[f64], current: &[f64]) -> f64 {
    let norm = std_pop(reference).max(0.001);
    wasserstein(reference, current) / norm
}

/// `scipy.stats.energy_distance(u, v)`.
pub fn energy_distance(u: &[f64], v: &[f64]) -> f64 {
    std::f64::consts::SQRT_2 * cdf_distance_integral(u, v, 2).sqrt()
}

/// `scipy.stats.anderson_ksamp([a, b])` with its default midrank variant: the standardized
/// statistic and the p-value interpolated from Scholz and Stephens' table, capped to
/// [0.001, 0.25] as scipy does.
pub fn anderson_ksamp(a: &[f64], b: &[f64]) -> (f64, f64) {
    let samples = [a, b];
    let n_total = a.len() + b.len();
    let nf = n_total as f64;
    let mut pooled: Vec<f64> = Vec::with_capacity(n_total);
    merge_sorted(a, b, &mut pooled);
    // Distinct values with their count below (`searchsorted left`) and their multiplicity.
    let mut zstar: Vec<(f64, usize, usize)> = Vec::new();
    let mut idx = 0;
    while idx < pooled.len() {
        let x = pooled[idx];
        let start = idx;
        while idx < pooled.len() && pooled[idx] == x {
            idx += 1;
        }
        zstar.push((x, start, idx - start));
    }
    let mut a2akn = 0.0;
    for s in samples {
        let ni = s.len() as f64;
        let mut pos = 0usize;
        let mut inner = Vec::with_capacity(zstar.len());
        for &(x, left, lj) in &zstar {
            let lj = lj as f64;
            let bj = left as f64 + lj / 2.0;
            let below = pos;
            while pos < s.len() && s[pos] <= x {
                pos += 1;
            }
            let fij = (pos - below) as f64;
            let mij = pos as f64 - fij / 2.0;
            let num = nf * mij - bj * ni;
            inner.push(lj / nf * num * num / (bj * (nf - bj) - nf * lj / 4.0));
        }
        a2akn += sum(inner) / ni;
    }
    a2akn *= (nf - 1.0) / nf;
    let k = 2.0;
    let h_big = 1.0 / a.len() as f64 + 1.0 / b.len() as f64;
    // hs_cs = cumsum(1 / arange(N - 1, 1, -1)); h = hs_cs[-1] + 1; g = sum(hs_cs / arange(2, N)).
    let mut cum = 0.0;
    let mut hs_cs = Vec::with_capacity(n_total.saturating_sub(2));
    for d in (2..n_total).rev() {
        cum += 1.0 / d as f64;
        hs_cs.push(cum);
    }
    let h = hs_cs.last().copied().unwrap_or(0.0) + 1.0;
    let g = sum(hs_cs.iter().enumerate().map(|(i, c)| c / (i + 2) as f64));
    let ca = (4.0 * g - 6.0) * (k - 1.0) + (10.0 - 6.0 * g) * h_big;
    let cb = (2.0 * g - 4.0) * k * k + 8.0 * h * k + (2.0 * g - 14.0 * h - 4.0) * h_big - 8.0 * h
        + 4.0 * g
        - 6.0;
    let cc = (6.0 * h + 2.0 * g - 2.0) * k * k
        + (4.0 * h - 4.0 * g + 6.0) * k
        + (2.0 * h - 6.0) * h_big
        + 4.0 * h;
    let cd = (2.0 * h + 6.0) * k * k - 4.0 * h * k;
    let sigmasq =
        (ca * nf.powi(3) + cb * nf.powi(2) + cc * nf + cd) / ((nf - 1.0) * (nf - 2.0) * (nf - 3.0));
    let m = k - 1.0;
    let a2 = (a2akn - m) / sigmasq.sqrt();
    // np.polyfit(critical, log(sig), 2) for k = 2, computed once with numpy.
    const PF: [f64; 3] = [
        0.018198094574111343,
        -1.0082265644652515,
        -1.077770279820486,
    ];
    const CRITICAL_MIN: f64 = 0.32500000000000007;
    const CRITICAL_MAX: f64 = 6.546;
    let p = if a2 < CRITICAL_MIN {
        0.25
    } else if a2 > CRITICAL_MAX {
        0.001
    } else {
        ((0.0 * a2 + PF[0]) * a2 * a2 + PF[1] * a2 + PF[2]).exp()
    };
    (a2, p)
}

fn merge_sorted(a: &[f64], b: &[f64], out: &mut Vec<f64>) {
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        if a[i] <= b[j] {
            out.push(a[i]);
            i += 1;
        } else {
            out.push(b[j]);
            j += 1;
        }
    }
    out.extend_from_slice(&a[i..]);
    out.extend_from_slice(&b[j..]);
}

/// Evidently's `_cvm_2samp(x, y)` (a copy of scipy's `cramervonmises_2samp`): the statistic T and
/// its p-value, exact when both samples have at most 20 values, else asymptotic.
pub fn cramer_von_mises(x: &[f64], y: &[f64]) -> (f64, f64) {
    let (nx, ny) = (x.len(), y.len());
    // Midranks in the pooled sample, then U = nx Σ(rx - i)² + ny Σ(ry - j)².
    let (mut i, mut j) = (0usize, 0usize);
    let mut ux = Vec::with_capacity(nx);
    let mut uy = Vec::with_capacity(ny);
    let mut seen = 0usize;
    while i < nx || j < ny {
        let v = if j >= ny || (i < nx && x[i] <= y[j]) {
            x[i]
        } else {
            y[j]
        };
        let (i0, j0) = (i, j);
        while i < nx && x[i] == v {
            i += 1;
        }
        while j < ny && y[j] == v {
            j += 1;
        }
        let group = (i - i0) + (j - j0);
        let rank = (2 * seen + group + 1) as f64 / 2.0;
        seen += group;
        for q in i0..i {
            let d = rank - (q + 1) as f64;
            ux.push(d * d);
        }
        for q in j0..j {
            let d = rank - (q + 1) as f64;
            uy.push(d * d);
        }
    }
    let u = nx as f64 * sum(ux) + ny as f64 * sum(uy);
    let k = nx as f64 * ny as f64;
    let n = (nx + ny) as f64;
    let t = u / (k * n) - (4.0 * k - 1.0) / (6.0 * n);
    let p = if nx.max(ny) <= 20 {
        cvm_exact_pvalue(u, nx as u64, ny as u64)
    } else {
        let et = (1.0 + 1.0 / n) / 6.0;
        let mut vt =
            (n + 1.0) * (4.0 * k * n - 3.0 * ((nx * nx) as f64 + (ny * ny) as f64) - 2.0 * k);
        vt /= 45.0 * n * n * 4.0 * k;
        let tn = 1.0 / 6.0 + (t - et) / (45.0 * vt).sqrt();
        if tn < 0.003 {
            1.0
        } else {
            (1.0 - cdf_cvm_inf(tn)).max(0.0)
        }
    };
    (t, p)
}

/// The limiting CDF of the Cramér-von Mises statistic (Csörgő and Faraway), summed until a term
/// falls below 1e-7 as scipy does.
fn cdf_cvm_inf(x: f64) -> f64 {
    use special::{bessel_k_scaled, ln_gamma};
    let pi15 = std::f64::consts::PI.powf(1.5);
    let mut tot = 0.0;
    let mut k = 0u64;
    loop {
        let kf = k as f64;
        let u = (ln_gamma(kf + 0.5) - ln_gamma(kf + 1.0)).exp() / (pi15 * x.sqrt());
        let y = 4.0 * kf + 1.0;
        let q = y * y / (16.0 * x);
        // exp(-q) * kv(1/4, q) = exp(-2q) * (e^q kv(1/4, q)).
        let z = u * y.sqrt() * (-2.0 * q).exp() * bessel_k_scaled(0.25, q);
        tot += z;
        if z.is_nan() || z.abs() < 1e-7 {
            break;
        }
        k += 1;
    }
    tot
}

fn python_floordiv(a: f64, b: f64) -> f64 {
    let m = a % b;
    let mut div = (a - m) / b;
    if m != 0.0 && ((b < 0.0) != (m < 0.0)) {
        div -= 1.0;
    }
    if div == 0.0 {
        return 0.0f64.copysign(a / b);
    }
    let mut floordiv = div.floor();
    if div - floordiv > 0.5 {
        floordiv += 1.0;
    }
    floordiv
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// Exact p-value of the two-sample Cramér-von Mises test (Xiao, Gordon and Yakovlev), as
/// Evidently's `_pval_cvm_2samp_exact`.
fn cvm_exact_pvalue(s: f64, m: u64, n: u64) -> f64 {
    use std::collections::BTreeMap;
    let lcm = m / gcd(m, n) * n;
    let a = (lcm / m) as i128;
    let b = (lcm / n) as i128;
    let mn = m * n;
    let zeta = python_floordiv(
        (lcm * lcm * (m + n)) as f64 * (6.0 * s - (mn * (4 * mn - 1)) as f64),
        (6 * mn * mn) as f64,
    );
    let mut combinations: u128 = 1;
    for i in 0..m as u128 {
        combinations = combinations * (n as u128 + 1 + i) / (i + 1);
    }
    let mut gs: Vec<BTreeMap<i128, u128>> = vec![BTreeMap::new(); m as usize + 1];
    gs[0].insert(0, 1);
    for u in 0..=n as i128 {
        let mut next = Vec::with_capacity(gs.len());
        let mut tmp: BTreeMap<i128, u128> = BTreeMap::new();
        for (v, g) in gs.iter().enumerate() {
            for (&val, &freq) in g {
                *tmp.entry(val).or_insert(0) += freq;
            }
            let add = (a * v as i128 - b * u).pow(2);
            tmp = tmp.into_iter().map(|(val, f)| (val + add, f)).collect();
            next.push(tmp.clone());
        }
        gs = next;
    }
    let total: u128 = gs[m as usize]
        .iter()
        .filter(|(val, _)| **val as f64 >= zeta)
        .map(|(_, f)| *f)
        .sum();
    total as f64 / combinations as f64
}

/// Per-category counts of the reference and the current sample, in the categories' sort order.
#[derive(Debug, Clone, Default)]
pub struct CategoryCounts {
    pub reference: Vec<u64>,
    pub current: Vec<u64>,
}

/// Pearson's chi-square goodness of fit of the current counts against the reference counts scaled
/// to the current size (Evidently's `_chi_stat_test`, `scipy.stats.chisquare`).
pub fn chisquare(counts: &CategoryCounts) -> (f64, f64) {
    let n_ref: u64 = counts.reference.iter().sum();
    let n_cur: u64 = counts.current.iter().sum();
    let k_norm = n_cur as f64 / n_ref as f64;
    let terms = counts
        .reference
        .iter()
        .zip(&counts.current)
        .map(|(&r, &c)| {
            let exp = r as f64 * k_norm;
            let d = c as f64 - exp;
            d * d / exp
        });
    let stat = sum(terms);
    let df = (counts.reference.len() - 1) as f64;
    let p = if stat.is_nan() {
        f64::NAN
    } else {
        special::chi2_sf(df, stat)
    };
    (stat, p)
}

/// Evidently's two-proportion Z-test: the first category (in sort order) against the rest,
/// p = 2 (1 - Φ(|z|)). Returns (z, p); p = 1 when both samples hold the same single value.
pub fn z_test(counts: &CategoryCounts) -> (f64, f64) {
    let ref_present = counts.reference.iter().filter(|&&c| c > 0).count();
    let cur_present = counts.current.iter().filter(|&&c| c > 0).count();
    if counts.reference.len() == 1 && ref_present == 1 && cur_present == 1 {
        return (0.0, 1.0);
    }
    let n1 = counts.reference.iter().sum::<u64>() as f64;
    let n2 = counts.current.iter().sum::<u64>() as f64;
    let ones1 = n1 - counts.reference[0] as f64;
    let ones2 = n2 - counts.current[0] as f64;
    let p1 = ones1 / n1;
    let p2 = ones2 / n2;
    let pp = (p1 * n1 + p2 * n2) / (n1 + n2);
    let z = (p1 - p2) / (pp * (1.0 - pp) * (1.0 / n1 + 1.0 / n2)).sqrt();
    let p = 2.0 * (1.0 - special::ndtr(z.abs()));
    (z, p)
}

/// Reference and current shares per bin (Evidently's `get_binned_data`).
#[derive(Debug, Clone)]
pub struct Binned {
    pub reference: Vec<f64>,
    pub current: Vec<f64>,
}

/// `np.histogram_bin_edges(values, bins="sturges")` for data with the given extremes and size.
pub fn sturges_edges(min: f64, max: f64, size: usize, integer: bool) -> Vec<f64> {
    let (mut first, mut last) = (min, max);
    if first == last {
        first -= 0.5;
        last += 0.5;
    }
    let ptp = max - min;
    let mut width = ptp / ((size as f64).log2() + 1.0);
    if integer && width > 0.0 && width < 1.0 {
        width = 1.0;
    }
    let bins = if width > 0.0 {
        ((last - first) / width).ceil() as usize
    } else {
        1
    };
    linspace(first, last, bins + 1)
}

/// `np.linspace(start, stop, num)` bit for bit.
fn linspace(start: f64, stop: f64, num: usize) -> Vec<f64> {
    let div = (num - 1) as f64;
    let delta = stop - start;
    let step = delta / div;
    let mut out: Vec<f64> = (0..num)
        .map(|i| {
            let y = i as f64;
            let y = if step == 0.0 {
                y / div * delta
            } else {
                y * step
            };
            y + start
        })
        .collect();
    if num > 1 {
        out[num - 1] = stop;
    }
    out
}

/// `np.histogram(sorted, bins=edges)[0]` for sorted data: bins closed on the left, the last one
/// on both sides.
pub fn histogram_counts(sorted: &[f64], edges: &[f64]) -> Vec<u64> {
    let last = edges.len() - 1;
    let cum: Vec<usize> = edges
        .iter()
        .enumerate()
        .map(|(i, &e)| {
            if i == last {
                sorted.partition_point(|&v| v <= e)
            } else {
                sorted.partition_point(|&v| v < e)
            }
        })
        .collect();
    cum.windows(2).map(|w| (w[1] - w[0]) as u64).collect()
}

/// Replaces empty shares as Evidently does (`feel_zeroes`): by 0.0001, or by a millionth of the
/// smallest non-empty share when that is itself at most 0.0001.
fn fill_zeroes(shares: &mut [f64]) {
    let min_nonzero = shares
        .iter()
        .copied()
        .filter(|&s| s != 0.0)
        .fold(f64::INFINITY, f64::min);
    if min_nonzero == f64::INFINITY {
        return;
    }
    let fill = if min_nonzero <= 0.0001 {
        min_nonzero / 1e6
    } else {
        0.0001
    };
    for s in shares.iter_mut() {
        if *s == 0.0 {
            *s = fill;
        }
    }
}

/// Evidently's `get_binned_data`: Sturges bins over reference and current together when the
/// column is numeric with more than 20 distinct reference values, else one bin per category.
pub fn binned(numeric: Option<NumericPair<'_>>, counts: &CategoryCounts, fill: bool) -> Binned {
    let (mut reference, mut current) = match numeric {
        Some(pair) => {
            let min = pair.reference[0].min(pair.current[0]);
            let max =
                pair.reference[pair.reference.len() - 1].max(pair.current[pair.current.len() - 1]);
            let edges = sturges_edges(
                min,
                max,
                pair.reference.len() + pair.current.len(),
                pair.integer,
            );
            let nr = pair.reference.len() as f64;
            let nc = pair.current.len() as f64;
            (
                histogram_counts(pair.reference, &edges)
                    .into_iter()
                    .map(|c| c as f64 / nr)
                    .collect::<Vec<_>>(),
                histogram_counts(pair.current, &edges)
                    .into_iter()
                    .map(|c| c as f64 / nc)
                    .collect::<Vec<_>>(),
            )
        }
        None => {
            let nr = counts.reference.iter().sum::<u64>() as f64;
            let nc = counts.current.iter().sum::<u64>() as f64;
            (
                counts.reference.iter().map(|&c| c as f64 / nr).collect(),
                counts.current.iter().map(|&c| c as f64 / nc).collect(),
            )
        }
    };
    if fill {
        fill_zeroes(&mut reference);
        fill_zeroes(&mut current);
    }
    Binned { reference, current }
}

/// Two sorted numeric samples, and whether both are integer-typed (numpy then widens Sturges
/// bins to at least 1).
#[derive(Debug, Clone, Copy)]
pub struct NumericPair<'a> {
    pub reference: &'a [f64],
    pub current: &'a [f64],
    pub integer: bool,
}

fn rel_entr(x: f64, y: f64) -> f64 {
    if x > 0.0 && y > 0.0 {
        x * (x / y).ln()
    } else if x == 0.0 && y >= 0.0 {
        0.0
    } else {
        f64::INFINITY
    }
}

/// `scipy.spatial.distance.jensenshannon(p, q)` with the natural logarithm.
pub fn jensenshannon(p: &[f64], q: &[f64]) -> f64 {
    let sp = sum(p.iter().copied());
    let sq = sum(q.iter().copied());
    let p: Vec<f64> = p.iter().map(|v| v / sp).collect();
    let q: Vec<f64> = q.iter().map(|v| v / sq).collect();
    let m: Vec<f64> = p.iter().zip(&q).map(|(a, b)| (a + b) / 2.0).collect();
    let left = sum(p.iter().zip(&m).map(|(a, b)| rel_entr(*a, *b)));
    let right = sum(q.iter().zip(&m).map(|(a, b)| rel_entr(*a, *b)));
    ((left + right) / 2.0).sqrt()
}

/// Population stability index over smoothed shares (Evidently's `_psi`).
pub fn psi(reference: &[f64], current: &[f64]) -> f64 {
    sum(reference
        .iter()
        .zip(current)
        .map(|(r, c)| (r - c) * (r / c).ln()))
}

/// `scipy.stats.entropy(reference, current)`: the Kullback-Leibler divergence of the normalized
/// shares.
pub fn kl_div(reference: &[f64], current: &[f64]) -> f64 {
    let sr = sum(reference.iter().copied());
    let sc = sum(current.iter().copied());
    sum(reference
        .iter()
        .zip(current)
        .map(|(r, c)| rel_entr(r / sr, c / sc)))
}

/// Evidently's Hellinger distance for a categorical column.
pub fn hellinger_categorical(counts: &CategoryCounts) -> f64 {
    let nr = counts.reference.iter().sum::<u64>() as f64;
    let nc = counts.current.iter().sum::<u64>() as f64;
    let bc = sum(counts
        .reference
        .iter()
        .zip(&counts.current)
        .map(|(&r, &c)| ((r as f64 / nr) * (c as f64 / nc)).sqrt()));
    (1.0 - bc.clamp(0.0, 1.0)).sqrt()
}

/// Evidently's Hellinger distance for a numeric column: density histograms on Sturges bins over
/// the distinct values of both samples.
pub fn hellinger_numeric(pair: NumericPair<'_>, distinct: &[f64]) -> f64 {
    let edges = sturges_edges(
        distinct[0],
        distinct[distinct.len() - 1],
        distinct.len(),
        pair.integer,
    );
    let density = |sorted: &[f64]| -> Vec<f64> {
        let counts = histogram_counts(sorted, &edges);
        let total: u64 = counts.iter().sum();
        counts
            .iter()
            .zip(edges.windows(2))
            .map(|(&c, w)| c as f64 / (w[1] - w[0]) / total as f64)
            .collect()
    };
    let h1 = density(pair.reference);
    let h2 = density(pair.current);
    let max_edge = edges.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let min_edge = edges.iter().copied().fold(f64::INFINITY, f64::min);
    let bin_width = (max_edge - min_edge) / (edges.len() - 1) as f64;
    let bc = sum(h1.iter().zip(&h2).map(|(a, b)| (a * b).sqrt() * bin_width));
    (1.0 - bc.clamp(0.0, 1.0)).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, rel: f64) -> bool {
        (a - b).abs() <= rel * b.abs()
    }

    #[test]
    fn distances_match_scipy() {
        let u = [0.0, 1.0, 3.0];
        let v = [5.0, 6.0, 8.0];
        assert!(close(wasserstein(&u, &v), 5.0, 1e-12));
        let u = [0.5, 1.0, 2.0, 3.0];
        let v = [1.5, 2.5, 3.0];
        assert!(close(wasserstein(&u, &v), 0.7083333333333335, 1e-12));
        assert!(close(energy_distance(&u, &v), 0.7216878364870323, 1e-12));
    }

    #[test]
    fn sturges_edges_match_numpy() {
        // np.histogram_bin_edges([0, 1, 2, 10], bins="sturges") -> 3 bins.
        let e = sturges_edges(0.0, 10.0, 4, false);
        assert_eq!(e, vec![0.0, 10.0 / 3.0, 20.0 / 3.0, 10.0]);
        assert_eq!(histogram_counts(&[0.0, 1.0, 2.0, 10.0], &e), vec![3, 0, 1]);
        assert_eq!(sturges_edges(2.0, 2.0, 5, false), vec![1.5, 2.5]);
    }

    #[test]
    fn chisquare_and_z() {
        let counts = CategoryCounts {
            reference: vec![50, 30, 20],
            current: vec![40, 40, 20],
        };
        let (stat, p) = chisquare(&counts);
        assert!(close(stat, 5.333333333333334, 1e-12));
        assert!(close(p, 0.0694834512228015, 1e-9));
        let counts = CategoryCounts {
            reference: vec![60, 40],
            current: vec![45, 55],
        };
        let (z, p) = z_test(&counts);
        assert!(close(z, -2.1239769762143665, 1e-12), "{z}");
        assert!(close(p, 0.03367206885634566, 1e-9), "{p}");
    }

    #[test]
    fn js_psi_kl() {
        let p = [0.5, 0.3, 0.2];
        let q = [0.4, 0.4, 0.2];
        assert!(close(jensenshannon(&p, &q), 0.07979472622921702, 1e-12));
        assert!(close(kl_div(&p, &q), 0.025267153921570557, 1e-12));
        assert!(close(psi(&p, &q), 0.05108256237659909, 1e-12));
    }

    #[test]
    fn cvm_exact_and_asymptotic() {
        let x = [1.0, 2.0, 3.0, 4.0, 5.0];
        let y = [2.5, 3.5, 6.0, 7.0];
        let (t, p) = cramer_von_mises(&x, &y);
        assert!(close(t, 0.1870370370370369, 1e-12), "{t}");
        assert!(close(p, 0.3888888888888889, 1e-12), "{p}");
        let x: Vec<f64> = (0..30).map(|i| i as f64 * 0.5).collect();
        let y: Vec<f64> = (0..25).map(|i| 3.0 + i as f64 * 0.5).collect();
        let (t, p) = cramer_von_mises(&x, &y);
        assert!(close(t, 0.2170909090909099, 1e-12), "{t}");
        assert!(close(p, 0.24101478991102632, 1e-9), "{p}");
    }

    #[test]
    fn anderson_matches_scipy() {
        let x: Vec<f64> = (0..30).map(|i| i as f64 * 0.5).collect();
        let y: Vec<f64> = (0..25).map(|i| 3.0 + i as f64 * 0.5).collect();
        let (a2, p) = anderson_ksamp(&x, &y);
        assert!(close(a2, 0.69361390108627, 1e-9), "{a2}");
        assert!(close(p, 0.1706168068526064, 1e-9), "{p}");
    }
}
