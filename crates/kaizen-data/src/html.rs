//! [`Profile::to_html`]: one self-contained page (inline CSS and SVG; no scripts, no external
//! assets).

use std::fmt::Write;

use crate::profile::{Bin, ColumnKind, ColumnProfile, Profile, ValueCount};

const CSS: &str = "body{font-family:system-ui,sans-serif;margin:2rem;color:#222;background:#fafafa}\
h1{margin-bottom:.2rem}h2{margin-top:2rem;border-bottom:1px solid #ddd}\
table{border-collapse:collapse;margin:.5rem 0}td,th{padding:.25rem .6rem;border-bottom:1px solid #eee;text-align:left}\
th{background:#f0f0f0}.num{text-align:right;font-variant-numeric:tabular-nums}\
.card{background:#fff;border:1px solid #ddd;border-radius:6px;padding:1rem;margin:1rem 0;display:flex;gap:2rem;flex-wrap:wrap}\
.card h3{margin:0 0 .5rem 0}.muted{color:#777}svg text{font-size:10px;fill:#444}";

fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
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

fn num(v: f64) -> String {
    if v == v.trunc() && v.abs() < 1e15 {
        format!("{v:.0}")
    } else {
        format!("{v:.4}")
    }
}

fn histogram_svg(bins: &[Bin]) -> String {
    let (w, h, pad) = (360.0, 160.0, 20.0);
    let max = bins.iter().map(|b| b.count).max().unwrap_or(1).max(1) as f64;
    let bw = (w - 2.0 * pad) / bins.len().max(1) as f64;
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" role=\"img\">"
    );
    for (i, b) in bins.iter().enumerate() {
        let bh = (h - 2.0 * pad) * b.count as f64 / max;
        let x = pad + bw * i as f64;
        let y = h - pad - bh;
        let _ = write!(
            s,
            "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{bh:.1}\" fill=\"#4a7fb5\"><title>[{}, {}): {}</title></rect>",
            (bw - 1.0).max(0.5),
            num(b.lower),
            num(b.upper),
            b.count
        );
    }
    if let (Some(first), Some(last)) = (bins.first(), bins.last()) {
        let _ = write!(
            s,
            "<text x=\"{pad}\" y=\"{:.1}\">{}</text><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            h - 5.0,
            esc(&num(first.lower)),
            w - pad,
            h - 5.0,
            esc(&num(last.upper))
        );
    }
    s.push_str("</svg>");
    s
}

fn bars_svg(values: &[ValueCount]) -> String {
    let (w, row, label) = (360.0, 18.0, 120.0);
    let h = row * values.len() as f64 + 4.0;
    let max = values.iter().map(|v| v.count).max().unwrap_or(1).max(1) as f64;
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" role=\"img\">"
    );
    for (i, v) in values.iter().enumerate() {
        let y = row * i as f64 + 2.0;
        let bw = (w - label - 40.0) * v.count as f64 / max;
        let shown: String = v.value.chars().take(18).collect();
        let _ = write!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text><rect x=\"{label}\" y=\"{y:.1}\" width=\"{bw:.1}\" height=\"{:.1}\" fill=\"#5b9f6b\"><title>{}: {}</title></rect><text x=\"{:.1}\" y=\"{:.1}\">{}</text>",
            label - 4.0,
            y + row - 6.0,
            esc(&shown),
            row - 3.0,
            esc(&v.value),
            v.count,
            label + bw + 3.0,
            y + row - 6.0,
            v.count
        );
    }
    s.push_str("</svg>");
    s
}

/// Blue for -1, white for 0, red for +1.
fn heat(r: f64) -> String {
    let t = r.clamp(-1.0, 1.0);
    let (rr, gg, bb) = if t >= 0.0 {
        (255.0, 255.0 * (1.0 - t), 255.0 * (1.0 - t))
    } else {
        (255.0 * (1.0 + t), 255.0 * (1.0 + t), 255.0)
    };
    format!("rgb({:.0},{:.0},{:.0})", rr, gg, bb)
}

fn heatmap_svg(p: &Profile) -> String {
    let names = &p.correlations.columns;
    let (cell, label) = (36.0, 110.0);
    let size = label + cell * names.len() as f64 + 4.0;
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{size:.0}\" height=\"{size:.0}\" role=\"img\">"
    );
    for (i, name) in names.iter().enumerate() {
        let shown: String = name.chars().take(16).collect();
        let pos = label + cell * i as f64;
        let _ = write!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text><text transform=\"translate({:.1},{:.1}) rotate(-45)\">{}</text>",
            label - 4.0,
            pos + cell / 2.0 + 3.0,
            esc(&shown),
            pos + cell / 2.0,
            label - 4.0,
            esc(&shown)
        );
        for (j, r) in p.correlations.matrix[i].iter().enumerate() {
            let (x, y) = (label + cell * j as f64, pos);
            let (fill, text) = match r {
                Some(r) => (heat(*r), format!("{r:.2}")),
                None => ("#ddd".to_owned(), "n/a".to_owned()),
            };
            let _ = write!(
                s,
                "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{cell}\" height=\"{cell}\" fill=\"{fill}\" stroke=\"#fff\"><title>{} / {}: {text}</title></rect><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{text}</text>",
                esc(name),
                esc(&names[j]),
                x + cell / 2.0,
                y + cell / 2.0 + 3.0
            );
        }
    }
    s.push_str("</svg>");
    s
}

fn column_card(out: &mut String, c: &ColumnProfile) {
    let _ = write!(
        out,
        "<div class=\"card\"><div><h3>{}</h3><table><tr><th>type</th><td>{}</td></tr><tr><th>count</th><td class=\"num\">{}</td></tr><tr><th>missing</th><td class=\"num\">{} ({:.1}%)</td></tr><tr><th>distinct</th><td class=\"num\">{}</td></tr>",
        esc(&c.name),
        esc(&c.data_type),
        c.count,
        c.missing,
        c.missing_fraction * 100.0,
        c.distinct
    );
    if let Some(n) = &c.numeric {
        for (k, v) in [
            ("min", n.min),
            ("max", n.max),
            ("mean", n.mean),
            ("std", n.std),
        ] {
            let _ = write!(
                out,
                "<tr><th>{k}</th><td class=\"num\">{}</td></tr>",
                num(v)
            );
        }
        for q in &n.quantiles {
            let _ = write!(
                out,
                "<tr><th>p{:.0}</th><td class=\"num\">{}</td></tr>",
                q.q * 100.0,
                num(q.value)
            );
        }
    }
    for (k, v) in [("earliest", &c.min_text), ("latest", &c.max_text)] {
        if let Some(v) = v {
            let _ = write!(out, "<tr><th>{k}</th><td>{}</td></tr>", esc(v));
        }
    }
    out.push_str("</table></div><div>");
    match (&c.kind, &c.numeric) {
        (ColumnKind::Numeric, Some(n)) => out.push_str(&histogram_svg(&n.histogram)),
        (ColumnKind::Categorical, _) if !c.top_values.is_empty() => {
            out.push_str(&bars_svg(&c.top_values))
        }
        _ => out.push_str("<p class=\"muted\">no chart</p>"),
    }
    out.push_str("</div></div>");
}

impl Profile {
    /// The profile as one self-contained HTML page: summary, missing values, one card per
    /// column (SVG histogram or bar chart) and a correlation heatmap of the numeric columns.
    pub fn to_html(&self) -> String {
        let mut out = String::new();
        let _ = write!(
            out,
            "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Data profile</title><style>{CSS}</style></head><body><h1>Data profile</h1><p class=\"muted\">{} rows, {} columns</p>",
            self.rows,
            self.columns.len()
        );
        out.push_str("<h2>Missing values</h2><table><tr><th>column</th><th>type</th><th>missing</th><th>%</th></tr>");
        for c in &self.columns {
            let _ = write!(
                out,
                "<tr><td>{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{:.1}</td></tr>",
                esc(&c.name),
                esc(&c.data_type),
                c.missing,
                c.missing_fraction * 100.0
            );
        }
        out.push_str("</table><h2>Columns</h2>");
        for c in &self.columns {
            column_card(&mut out, c);
        }
        out.push_str("<h2>Correlations</h2>");
        if self.correlations.columns.len() >= 2 {
            out.push_str(&heatmap_svg(self));
            out.push_str("<p class=\"muted\">Pearson correlation over rows where both values are present; blue -1, white 0, red +1.</p>");
        } else {
            out.push_str("<p class=\"muted\">fewer than two numeric columns</p>");
        }
        out.push_str("</body></html>\n");
        out
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn html_is_self_contained_and_escaped() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.csv");
        std::fs::write(&p, "a,b,<tag>\n1,2.5,x&y\n2,3.5,z\n3,1.0,x&y\n").unwrap();
        let t = crate::read(&crate::Source::path(&p), &crate::ReadOptions::default()).unwrap();
        let html = crate::profile(&t).unwrap().to_html();
        assert!(html.starts_with("<!DOCTYPE html>"));
        assert!(html.contains("<style>"));
        assert!(!html.contains("<script"));
        assert!(!html.contains("src=\"http") && !html.contains("href=\"http"));
        assert!(html.contains("&lt;tag&gt;") && html.contains("x&amp;y"));
        assert!(!html.contains("<tag>"));
        // Two histograms, one bar chart, one heatmap.
        assert_eq!(html.matches("<svg").count(), 4);
        assert!(html.contains("Missing values"));
    }
}
