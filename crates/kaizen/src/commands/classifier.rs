//! `kaizen train-classifier`: a text classifier from a few hundred labeled examples, a
//! logistic-regression head over the frozen embeddings of a sentence-embedding model
//! (kaizen-train's `text_classifier` job, the embeddings from kaizen-infer), tracked as a run and
//! registered as a model version that `kaizen serve` serves.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::Args;
use kaizen_infer::Embedder;
use kaizen_train::pretrained::{EmbedderRef, WEIGHTS_FILE, file_sha256};
use kaizen_train::text_classifier::{
    ClassifierJob, ClassifierSummary, EmbedFn, run_text_classifier,
};

use crate::commands::forecast::{Stderr, to_core};
use crate::commands::pretrained;
use crate::settings;

#[derive(Debug, Args)]
pub struct TrainClassifierArgs {
    /// The labeled examples (CSV or Parquet), one text per row.
    #[arg(long, value_name = "FILE")]
    pub data: PathBuf,
    /// The column of texts.
    #[arg(long, value_name = "COL")]
    pub text_col: String,
    /// The column of labels (text, or whole numbers).
    #[arg(long, value_name = "COL")]
    pub label_col: String,
    /// The sentence-embedding model: a directory in Hugging Face layout, or a name under the
    /// models directory (default all-MiniLM-L6-v2).
    #[arg(long, value_name = "DIR")]
    pub model: Option<PathBuf>,
    /// The registered model's name (default: <data file>-<label column>).
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// The experiment of the run.
    #[arg(long, default_value = "train-classifier")]
    pub experiment: String,
    /// The share of each class held out for the metrics.
    #[arg(long, default_value_t = 0.2)]
    pub test_size: f64,
    /// The seed of the stratified split.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// The inverse L2 penalty of the logistic-regression head (scikit-learn's `C`).
    #[arg(long, default_value_t = 10.0)]
    pub c: f64,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

/// The embedding model's identity: its name, the hash of its weights and its dimension.
pub(crate) fn embedder_ref(dir: &Path, embedder: &Embedder) -> anyhow::Result<EmbedderRef> {
    let sha256 = file_sha256(&dir.join(WEIGHTS_FILE)).map_err(to_core)?;
    let source = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    Ok(EmbedderRef {
        name: embedder.name().to_string(),
        sha256,
        dim: embedder.dim(),
        source: Some(source.display().to_string()),
    })
}

pub async fn run(args: TrainClassifierArgs) -> anyhow::Result<ExitCode> {
    let bytes = std::fs::metadata(&args.data).map_err(|_| {
        kaizen_core::Error::not_found(format!("--data {}: no such file", args.data.display()))
    })?;
    if bytes.len() == 0 {
        return Err(kaizen_core::Error::invalid(format!(
            "--data {} is empty: it needs a header row and labeled examples",
            args.data.display()
        ))
        .into());
    }
    let table = kaizen_train::forecast::read_table(&args.data).map_err(|e| {
        kaizen_core::Error::invalid(format!("--data {}: {}", args.data.display(), to_core(e)))
    })?;

    let dir = pretrained::model_dir(args.model.as_deref());
    let load_dir = dir.clone();
    let (embedder, reference) =
        tokio::task::spawn_blocking(move || -> anyhow::Result<(Embedder, EmbedderRef)> {
            let embedder = pretrained::load(&load_dir)?;
            let reference = embedder_ref(&load_dir, &embedder)?;
            Ok((embedder, reference))
        })
        .await??;
    let embedder = Arc::new(embedder);
    let embed: EmbedFn =
        Arc::new(move |texts: Vec<String>| embedder.embed(&texts).map_err(|e| e.to_string()));

    let mut job = ClassifierJob::new(
        args.data.clone(),
        args.text_col.clone(),
        args.label_col.clone(),
    );
    job.test_fraction = args.test_size;
    job.seed = args.seed;
    job.c = args.c;
    job.experiment = args.experiment.clone();
    job.user = std::env::var("USER").unwrap_or_else(|_| "kaizen".into());
    if let Some(name) = &args.name {
        job.model_name = name.clone();
    }
    let services = settings::open_home_services().await?;
    let summary = run_text_classifier(&services, &job, &table, &reference, embed, &Stderr)
        .await
        .map_err(to_core)?;
    crate::printer::report(args.json, &summary, print_summary)?;
    Ok(ExitCode::SUCCESS)
}

fn print_summary(s: &ClassifierSummary) {
    println!(
        "Classes of `{}` from `{}`: {}",
        s.label_column,
        s.text_column,
        s.labels.join(", ")
    );
    println!(
        "Embeddings: {} ({} dimensions, sha256 {})",
        s.embedder.name,
        s.embedder.dim,
        &s.embedder.sha256[..12.min(s.embedder.sha256.len())]
    );
    println!(
        "  {:<6} {:>6} {:>10} {:>10} {:>10}",
        "part", "rows", "accuracy", "macro_f1", "log_loss"
    );
    for part in ["train", "test"] {
        let m = |name: &str| {
            s.metrics
                .get(part)
                .and_then(|m| m.get(name))
                .copied()
                .unwrap_or(f64::NAN)
        };
        println!(
            "  {:<6} {:>6} {:>10.4} {:>10.4} {:>10.4}",
            part,
            s.rows.get(part).copied().unwrap_or(0),
            m("accuracy"),
            m("macro_f1"),
            m("log_loss")
        );
    }
    println!(
        "Model: models:/{}/{} (run {})",
        s.model_name, s.model_version, s.run_id
    );
}
