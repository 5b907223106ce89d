//! `kaizen sql "SELECT ... FROM <dataset>"`: DataFusion SQL over cataloged datasets, their files
//! read in place from the artifact store.

use std::process::ExitCode;

use kaizen_core::Error;
use kaizen_data::{DataError, FileTable, Format};
use serde_json::Value;

use super::datasets::{open_local, parse_name_version, resolve};
use crate::cli::SqlArgs;
use crate::printer;

/// The table of every request `kaizen serve` answered, and the one of the ground truth sent to
/// its `/feedback`: the JSON-lines segments of the home's logs, each read as one table.
const INFERENCE_LOG: &str = "inference_log";
const FEEDBACK: &str = "feedback";

fn log_table(name: &str) -> anyhow::Result<FileTable> {
    let dir = crate::settings::home().join(name);
    let has_segment = std::fs::read_dir(&dir)
        .map(|entries| {
            entries.flatten().any(|e| {
                e.path().extension().is_some_and(|x| x == "jsonl")
                    && e.metadata().is_ok_and(|m| m.len() > 0)
            })
        })
        .unwrap_or(false);
    if !has_segment {
        return Err(Error::not_found(format!(
            "the table {name} is empty ({}): `kaizen serve` writes it",
            dir.display()
        ))
        .into());
    }
    let mut location = dir.display().to_string();
    location.push('/');
    Ok(FileTable::new(name, location, Format::JsonLines))
}

pub async fn run(args: SqlArgs) -> anyhow::Result<ExitCode> {
    let query = quote_versioned_names(&args.query);
    let references = kaizen_data::table_references(&query).map_err(data_error)?;
    let services = open_local(&args.tracking, "sql").await?;
    let mut tables = Vec::with_capacity(references.len());
    for reference in references {
        if reference == INFERENCE_LOG || reference == FEEDBACK {
            tables.push(log_table(&reference)?);
            continue;
        }
        let (name, version) = parse_name_version(&reference)?;
        let dataset = resolve(&services, &name, version).await?;
        let artifact =
            kaizen_artifacts::ArtifactPath::parse(&format!("cas/{}", dataset.data.content_hash))?;
        let path = services.artifacts.local_path(&artifact)?;
        if !path.is_file() {
            return Err(Error::not_found(format!(
                "the file of dataset '{}' version {} ({}) is missing from the artifact store {}",
                dataset.data.name,
                dataset.version,
                artifact.as_str(),
                services.artifacts.root()
            ))
            .into());
        }
        let format = match dataset.data.format.as_str() {
            "parquet" => Format::Parquet,
            "csv" => Format::Csv,
            "jsonl" | "json" => Format::JsonLines,
            other => {
                return Err(Error::invalid(format!(
                    "dataset '{}' version {} has format '{other}', which SQL cannot read",
                    dataset.data.name, dataset.version
                ))
                .into());
            }
        };
        tables.push(FileTable::new(reference, path, format));
    }
    let result = kaizen_data::sql_files(&tables, &query)
        .await
        .map_err(data_error)?;
    if args.tracking.json {
        printer::json(&Value::Array(kaizen_data::json_rows(&result)));
        return Ok(ExitCode::SUCCESS);
    }
    let headers = result.column_names();
    let rows: Vec<Vec<String>> = kaizen_data::text_rows(&result)
        .map_err(data_error)?
        .into_iter()
        .map(|row| {
            row.into_iter()
                .map(|c| c.unwrap_or_else(|| "NULL".into()))
                .collect()
        })
        .collect();
    let headers: Vec<&str> = headers.iter().map(String::as_str).collect();
    printer::table(&headers, &rows);
    eprintln!(
        "({} row{})",
        rows.len(),
        if rows.len() == 1 { "" } else { "s" }
    );
    Ok(ExitCode::SUCCESS)
}

/// A data error as a domain error, so that the exit code tells bad input (1) from an internal
/// failure (2).
fn data_error(e: DataError) -> anyhow::Error {
    if e.is_internal() {
        Error::internal("SQL query failed", e).into()
    } else {
        Error::invalid(e.to_string()).into()
    }
}

/// Quotes unquoted `name@N` (a versioned dataset) as the identifier `"name@N"`, leaving string
/// literals, quoted identifiers and comments alone.
fn quote_versioned_names(query: &str) -> String {
    let chars: Vec<char> = query.chars().collect();
    let mut out = String::with_capacity(query.len() + 8);
    let is_ident = |c: char| c.is_alphanumeric() || c == '_';
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        // Copies a quoted span (doubled quotes escape) or a comment through unchanged.
        let span_end = match c {
            '\'' | '"' | '`' => {
                let mut j = i + 1;
                loop {
                    match chars.get(j) {
                        None => break j,
                        Some(&q) if q == c && chars.get(j + 1) == Some(&c) => j += 2,
                        Some(&q) if q == c => break j + 1,
                        Some(_) => j += 1,
                    }
                }
            }
            '-' if chars.get(i + 1) == Some(&'-') => {
                let mut j = i;
                while j < chars.len() && chars[j] != '\n' {
                    j += 1;
                }
                j
            }
            '/' if chars.get(i + 1) == Some(&'*') => {
                let mut j = i + 2;
                while j < chars.len() && !(chars[j] == '*' && chars.get(j + 1) == Some(&'/')) {
                    j += 1;
                }
                (j + 2).min(chars.len())
            }
            _ => i,
        };
        if span_end > i {
            out.extend(&chars[i..span_end]);
            i = span_end;
            continue;
        }
        if is_ident(c) && !c.is_ascii_digit() {
            let start = i;
            while i < chars.len() && is_ident(chars[i]) {
                i += 1;
            }
            let mut end = i;
            if chars.get(end) == Some(&'@') {
                let digits = end + 1;
                let mut j = digits;
                while j < chars.len() && chars[j].is_ascii_digit() {
                    j += 1;
                }
                if j > digits && !chars.get(j).is_some_and(|&c| is_ident(c)) {
                    end = j;
                }
            }
            let word: String = chars[start..end].iter().collect();
            if end > i {
                out.push('"');
                out.push_str(&word);
                out.push('"');
            } else {
                out.push_str(&word);
            }
            i = end;
            continue;
        }
        if c.is_ascii_digit() {
            // A number (or the digits of something else): copy it with what follows, so that
            // `1e5` or `x1` are not split.
            while i < chars.len() && is_ident(chars[i]) {
                out.push(chars[i]);
                i += 1;
            }
            continue;
        }
        out.push(c);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_versioned_names_outside_quotes_and_comments() {
        let check =
            |input: &str, expected: &str| assert_eq!(quote_versioned_names(input), expected);
        check("SELECT * FROM sales@2", "SELECT * FROM \"sales@2\"");
        check(
            "SELECT a.x FROM sales@12 a JOIN stores_v2@1 b ON a.id=b.id",
            "SELECT a.x FROM \"sales@12\" a JOIN \"stores_v2@1\" b ON a.id=b.id",
        );
        check("SELECT * FROM \"sales@2\"", "SELECT * FROM \"sales@2\"");
        check(
            "SELECT 'a@1', x FROM t -- t@2\n",
            "SELECT 'a@1', x FROM t -- t@2\n",
        );
        check("SELECT * FROM t /* t@2 */", "SELECT * FROM t /* t@2 */");
        check("SELECT * FROM sales@latest", "SELECT * FROM sales@latest");
        check("SELECT * FROM sales@2x", "SELECT * FROM sales@2x");
        check("SELECT 1e5, x1 FROM sales", "SELECT 1e5, x1 FROM sales");
        check("SELECT 'it''s@1' FROM sales", "SELECT 'it''s@1' FROM sales");
    }
}
