//! Output for people (aligned tables) and programs (JSON), on stdout only.

use serde_json::Value;

/// Prints rows as an aligned table with a header.
pub fn table(headers: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| {
        let mut out = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                out.push_str(c);
            } else {
                out.push_str(&format!("{:<w$}  ", c, w = widths[i]));
            }
        }
        println!("{}", out.trim_end());
    };
    line(headers.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}

/// A titled table after a blank line, or `title: none` when there are no rows.
pub fn section(title: &str, headers: &[&str], rows: Vec<Vec<String>>) {
    println!();
    if rows.is_empty() {
        println!("{title}: none");
    } else {
        println!("{title}:");
        table(headers, &rows);
    }
}

/// A command's result: as JSON with `--json`, else as `human` prints it.
pub fn report<T: serde::Serialize>(
    as_json: bool,
    value: &T,
    human: impl FnOnce(&T),
) -> anyhow::Result<()> {
    if as_json {
        println!("{}", serde_json::to_string_pretty(value)?);
    } else {
        human(value);
    }
    Ok(())
}

pub fn json(v: &Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
    );
}

/// A millisecond timestamp as `YYYY-MM-DD HH:MM:SS` UTC.
pub fn time(ms: Option<i64>) -> String {
    let Some(ms) = ms else { return "-".into() };
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil date from days since the epoch (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// A metric or number for a table: short, without float noise (`0.1`, `1234.5678`, `1.2346e-7`).
pub fn number(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    if v == 0.0 {
        return "0".into();
    }
    let a = v.abs();
    if (1e-4..1e15).contains(&a) {
        let s = format!("{v:.6}");
        let s = s.trim_end_matches('0').trim_end_matches('.');
        if s == "-0" { "0".into() } else { s.into() }
    } else {
        format!("{v:.4e}")
    }
}

/// A duration in milliseconds as `1h02m03s`, `2m05s` or `1.234s`.
pub fn duration(ms: i64) -> String {
    if ms < 0 {
        return "-".into();
    }
    let secs = ms / 1000;
    match secs {
        0..60 => format!("{}.{:03}s", secs, ms % 1000),
        60..3600 => format!("{}m{:02}s", secs / 60, secs % 60),
        _ => format!("{}h{:02}m{:02}s", secs / 3600, secs % 3600 / 60, secs % 60),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn numbers() {
        use super::number;
        assert_eq!(number(0.1 + 0.2), "0.3");
        assert_eq!(number(3.0), "3");
        assert_eq!(number(-1234.56789012), "-1234.56789");
        assert_eq!(number(1.23456e-7), "1.2346e-7");
        assert_eq!(number(f64::NAN), "NaN");
        assert_eq!(number(f64::NEG_INFINITY), "-Infinity");
        assert_eq!(number(-0.0), "0");
        assert_eq!(super::duration(1_234), "1.234s");
        assert_eq!(super::duration(125_000), "2m05s");
        assert_eq!(super::duration(3_723_000), "1h02m03s");
    }

    #[test]
    fn times() {
        assert_eq!(super::time(Some(0)), "1970-01-01 00:00:00");
        assert_eq!(super::time(Some(1_700_000_000_000)), "2023-11-14 22:13:20");
        assert_eq!(super::time(None), "-");
    }
}
