//! The HTML report: one self-contained page (inline CSS and SVG, no scripts) with the data set
//! verdict, a drift score chart, the table of tests and, per column, reference and current
//! histograms side by side.

use std::fmt::Write;

use crate::report::{ColumnDrift, DriftReport, fmt_num};

const REF_COLOR: &str = "#4c78a8";
const CUR_COLOR: &str = "#f58518";
const DRIFT_COLOR: &str = "#d62728";
const OK_COLOR: &str = "#2ca02c";

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

impl DriftReport {
    /// The report as one HTML page; `title` heads it (file names, say).
    pub fn to_html(&self, title: &str) -> String {
        let mut h = String::new();
        let d = &self.dataset;
        let _ = write!(
            h,
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Drift report: {t}</title>\
<style>body{{font-family:system-ui,sans-serif;margin:2em;color:#222}}table{{border-collapse:collapse}}\
td,th{{padding:4px 10px;border-bottom:1px solid #ddd;text-align:left;font-variant-numeric:tabular-nums}}\
.drift{{color:{DRIFT_COLOR};font-weight:600}}.ok{{color:{OK_COLOR}}}.col{{display:inline-block;margin:10px;vertical-align:top}}\
.legend span{{display:inline-block;width:12px;height:12px;margin:0 4px 0 12px}}</style></head><body>\
<h1>Drift report</h1><p>{t}</p>",
            t = esc(title)
        );
        let _ = write!(
            h,
            "<h2 class=\"{cls}\">{verdict}: {n} of {m} columns drifted (share {share:.3}, threshold {thr})</h2>\
<p>Reference: {rr} rows. Current: {cr} rows.</p>",
            cls = if d.drifted { "drift" } else { "ok" },
            verdict = if d.drifted {
                "Data set drift detected"
            } else {
                "No data set drift"
            },
            n = d.drifted_columns,
            m = d.columns,
            share = d.share,
            thr = d.share_threshold,
            rr = self.reference_rows,
            cr = self.current_rows,
        );
        h.push_str("<h2>Drift scores</h2>");
        h.push_str(&score_chart(&self.columns));
        h.push_str("<h2>Tests</h2><table><tr><th>column</th><th>type</th><th>test</th><th>statistic</th><th>p-value</th><th>threshold</th><th>drift</th><th>missing (ref / cur)</th><th>new categories</th><th>out of range</th></tr>");
        for (c, q) in self.columns.iter().zip(&self.quality) {
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"{}\">{}</td><td>{:.2}% / {:.2}%</td><td>{}</td><td>{}</td></tr>",
                esc(&c.column),
                c.kind.as_str(),
                c.test.name(),
                fmt_num(c.statistic),
                c.p_value.map(fmt_num).unwrap_or_else(|| "-".into()),
                fmt_num(c.threshold),
                if c.drifted { "drift" } else { "ok" },
                if c.drifted { "yes" } else { "no" },
                q.missing_share_reference * 100.0,
                q.missing_share_current * 100.0,
                if q.new_category_count > 0 {
                    esc(&format!(
                        "{} ({})",
                        q.new_category_count,
                        q.new_categories.join(", ")
                    ))
                } else {
                    "0".into()
                },
                q.out_of_range,
            );
        }
        h.push_str("</table><h2>Distributions</h2>");
        let _ = write!(
            h,
            "<p class=\"legend\"><span style=\"background:{REF_COLOR}\"></span>reference<span style=\"background:{CUR_COLOR}\"></span>current</p>"
        );
        for c in &self.columns {
            h.push_str(&histogram(c));
        }
        h.push_str("</body></html>\n");
        h
    }
}

/// Horizontal bars: for p-value tests the bar is 1 - p against 1 - threshold, for distances the
/// distance against the threshold, so that a bar past its tick means drift.
fn score_chart(columns: &[ColumnDrift]) -> String {
    let row_h = 22.0;
    let label_w = 180.0;
    let bar_w = 420.0;
    let height = row_h * columns.len() as f64 + 10.0;
    let mut s = String::new();
    let _ = write!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{height}\" font-size=\"12\">",
        label_w + bar_w + 140.0
    );
    for (i, c) in columns.iter().enumerate() {
        let y = 5.0 + i as f64 * row_h;
        let (value, tick) = match c.p_value {
            Some(p) => (1.0 - p, 1.0 - c.threshold),
            None => {
                let scale = (c.threshold * 2.0).max(c.statistic.min(c.threshold * 10.0));
                (c.statistic / scale, c.threshold / scale)
            }
        };
        let value = if value.is_finite() {
            value.clamp(0.0, 1.0)
        } else {
            1.0
        };
        let color = if c.drifted { DRIFT_COLOR } else { OK_COLOR };
        let _ = write!(
            s,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>\
<rect x=\"{label_w}\" y=\"{}\" width=\"{:.1}\" height=\"{}\" fill=\"{color}\"/>\
<line x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"{}\" y2=\"{}\" stroke=\"#000\"/>\
<text x=\"{}\" y=\"{}\">{} {}</text>",
            label_w - 6.0,
            y + 14.0,
            esc(&c.column),
            y + 3.0,
            value * bar_w,
            row_h - 6.0,
            y,
            y + row_h - 2.0,
            label_w + bar_w + 6.0,
            y + 14.0,
            c.test.name(),
            fmt_num(c.score),
            x = label_w + tick.clamp(0.0, 1.0) * bar_w,
        );
    }
    s.push_str("</svg>");
    s
}

fn histogram(c: &ColumnDrift) -> String {
    let hist = &c.histogram;
    let n = hist.reference.len();
    let (w, h) = (360.0, 160.0);
    let (left, bottom, top) = (36.0, 40.0, 24.0);
    let plot_w = w - left - 8.0;
    let plot_h = h - bottom - top;
    let max = hist
        .reference
        .iter()
        .chain(&hist.current)
        .copied()
        .fold(0.0f64, f64::max)
        .max(1e-12);
    let mut s = String::new();
    let _ = write!(
        s,
        "<div class=\"col\"><svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-size=\"10\">\
<text x=\"{left}\" y=\"14\" font-size=\"12\" font-weight=\"600\" fill=\"{}\">{} ({} {})</text>\
<text x=\"2\" y=\"{}\">{:.0}%</text><line x1=\"{left}\" x2=\"{}\" y1=\"{}\" y2=\"{}\" stroke=\"#999\"/>",
        if c.drifted { DRIFT_COLOR } else { "#222" },
        esc(&c.column),
        c.test.name(),
        fmt_num(c.score),
        top + 8.0,
        max * 100.0,
        left + plot_w,
        top + plot_h,
        top + plot_h,
    );
    if n > 0 {
        let slot = plot_w / n as f64;
        let bar = (slot / 2.0 - 0.5).max(0.5);
        for i in 0..n {
            let x = left + i as f64 * slot;
            for (k, (v, color)) in [(hist.reference[i], REF_COLOR), (hist.current[i], CUR_COLOR)]
                .into_iter()
                .enumerate()
            {
                let bh = v / max * plot_h;
                let _ = write!(
                    s,
                    "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{bar:.1}\" height=\"{bh:.1}\" fill=\"{color}\"><title>{}: {:.2}%</title></rect>",
                    x + k as f64 * bar,
                    top + plot_h - bh,
                    if k == 0 { "reference" } else { "current" },
                    v * 100.0
                );
            }
        }
        let label_at = |i: usize, text: &str, anchor: &str| {
            format!(
                "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"{anchor}\">{}</text>",
                left + i as f64 * slot,
                top + plot_h + 14.0,
                esc(text)
            )
        };
        if hist.numeric {
            s.push_str(&label_at(0, &hist.labels[0], "start"));
            s.push_str(&label_at(n, &hist.labels[n], "end"));
        } else {
            for (i, l) in hist.labels.iter().enumerate() {
                let short: String = l.chars().take(8).collect();
                let _ = write!(
                    s,
                    "<text transform=\"translate({:.1},{:.1}) rotate(35)\">{}</text>",
                    left + (i as f64 + 0.25) * slot,
                    top + plot_h + 10.0,
                    esc(&short)
                );
            }
        }
    }
    s.push_str("</svg></div>");
    s
}
