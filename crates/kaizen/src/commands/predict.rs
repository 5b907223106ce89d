//! `kaizen predict`: batch scoring of a table with the same model loading and scoring as
//! `kaizen serve`, into a CSV file.

use std::fmt::Write as _;
use std::process::ExitCode;

use kaizen_serving::Prediction;
use kaizen_train::forecast::read_table;

use crate::cli::PredictArgs;
use crate::commands::forecast::to_core;
use crate::commands::serve::load_model;

/// A CSV field, quoted when it needs to be.
fn field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// `prediction` and, for classification, `probability_<label>` per class; for an embedding
/// model `embedding_0`, `embedding_1`, ...
fn to_csv(predictions: &[Prediction], labels: &[String]) -> String {
    let mut out = match predictions.first() {
        Some(Prediction::Embedding(v)) => (0..v.len())
            .map(|i| format!("embedding_{i}"))
            .collect::<Vec<_>>()
            .join(","),
        _ => String::from("prediction"),
    };
    for l in labels {
        out.push(',');
        out.push_str(&field(&format!("probability_{l}")));
    }
    out.push('\n');
    for p in predictions {
        match p {
            Prediction::Value(v) => {
                let _ = write!(
                    out,
                    "{}",
                    if v.is_nan() {
                        String::new()
                    } else {
                        v.to_string()
                    }
                );
            }
            Prediction::Embedding(v) => {
                let line: Vec<String> = v.iter().map(f32::to_string).collect();
                out.push_str(&line.join(","));
            }
            Prediction::Class {
                label,
                probabilities,
            } => {
                out.push_str(&field(label));
                for (_, v) in probabilities {
                    let _ = write!(out, ",{v}");
                }
            }
        }
        out.push('\n');
    }
    out
}

pub async fn run(args: PredictArgs) -> anyhow::Result<ExitCode> {
    if !args.input.exists() {
        return Err(kaizen_core::Error::not_found(format!(
            "--input {}: no such file",
            args.input.display()
        ))
        .into());
    }
    let model = load_model(&args.model, args.tracking_uri.as_deref()).await?;
    let table = read_table(&args.input).map_err(to_core)?;
    let frame = kaizen_ml::Frame::from_table(&table).map_err(|e| {
        kaizen_core::Error::invalid(format!("--input {}: {e}", args.input.display()))
    })?;
    let invalid = |e: kaizen_serving::ServeError| {
        kaizen_core::Error::invalid(format!("--input {}: {e}", args.input.display()))
    };
    let frame = model.conform(&frame).map_err(invalid)?;
    let predictions = model.score(&frame).map_err(invalid)?;
    let labels = match predictions.first() {
        Some(Prediction::Class { .. }) => model.labels(),
        _ => Vec::new(),
    };
    std::fs::write(&args.output, to_csv(&predictions, &labels)).map_err(|e| {
        kaizen_core::Error::invalid(format!("--output {}: {e}", args.output.display()))
    })?;
    if args.json {
        let summary = serde_json::json!({
            "model": model.name,
            "version": model.version,
            "rows": predictions.len(),
            "output": args.output.display().to_string(),
        });
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        eprintln!(
            "wrote {} predictions to {}",
            predictions.len(),
            args.output.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}
