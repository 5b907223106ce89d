//! A minimal front end to the drift engine for trying it without building the whole `kaizen`
//! binary: `cargo run -p kaizen-drift --example drift -- --reference R --current C [--json]
//! [--html FILE] [--columns a,b] [--test COL=TEST ...] [--share-threshold X]`.

use std::path::PathBuf;
use std::process::ExitCode;

use kaizen_drift::{DriftOptions, compare_files};

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1).peekable();
    if args.peek().map(String::as_str) == Some("drift") {
        args.next();
    }
    let (mut reference, mut current, mut html) = (None, None, None);
    let mut json = false;
    let mut options = DriftOptions::default();
    while let Some(a) = args.next() {
        let mut value = || args.next().unwrap_or_default();
        match a.as_str() {
            "--reference" => reference = Some(PathBuf::from(value())),
            "--current" => current = Some(PathBuf::from(value())),
            "--html" => html = Some(PathBuf::from(value())),
            "--json" => json = true,
            "--columns" => {
                options.columns = Some(value().split(',').map(str::to_owned).collect());
            }
            "--test" => {
                let v = value();
                let (c, t) = v.split_once('=').unwrap_or((&v, ""));
                match t.parse() {
                    Ok(t) => {
                        options.tests.insert(c.to_owned(), t);
                    }
                    Err(e) => {
                        eprintln!("error: {e}");
                        return ExitCode::from(1);
                    }
                }
            }
            "--share-threshold" => options.share_threshold = value().parse().unwrap_or(f64::NAN),
            other => {
                eprintln!("error: unknown argument {other}");
                return ExitCode::from(1);
            }
        }
    }
    let (Some(reference), Some(current)) = (reference, current) else {
        eprintln!("error: --reference and --current are required");
        return ExitCode::from(1);
    };
    match compare_files(&reference, &current, &options) {
        Ok(report) => {
            if let Some(path) = html {
                let _ = std::fs::write(path, report.to_html("example"));
            }
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&report.to_json()).unwrap_or_default()
                );
            } else {
                print!("{}", report.to_table());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(if e.is_internal() { 2 } else { 1 })
        }
    }
}
