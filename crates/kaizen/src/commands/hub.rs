//! `kaizen models pull`: a model repository from the Hugging Face Hub (or a server with its
//! API) through the `hf-hub` crate, into the Hugging Face cache and a model directory under the
//! models directory; and `kaizen models register-pretrained`: a model directory registered as a
//! model version that `kaizen serve` serves.
//!
//! The download goes through hf-hub's cache (`$HF_HOME/hub`, the layout Python's
//! `huggingface_hub` shares: blobs by ETag, snapshots by commit, refs by revision), so a pull is
//! resumed and never fetches a file twice; the model directory gets hard links to the blobs
//! (copies across file systems). `HF_HUB_OFFLINE=1` reads the cache only.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use hf_hub::api::tokio::{ApiBuilder, ApiError};
use hf_hub::{Cache, Repo, RepoType};
use serde::Serialize;

use crate::commands::classifier::embedder_ref;
use crate::commands::forecast::to_core;
use crate::commands::pretrained;
use crate::settings;

#[derive(Debug, Args)]
pub struct RegisterPretrainedArgs {
    /// The model directory, in Hugging Face layout (config.json, tokenizer.json,
    /// model.safetensors and sentence-transformers' files).
    pub dir: PathBuf,
    /// The registered model's name.
    #[arg(long)]
    pub name: String,
    /// What the version answers: `embed`, one sentence embedding per text.
    #[arg(long, default_value = "embed", value_parser = ["embed"])]
    pub task: String,
    /// The experiment of the run that records the registration.
    #[arg(long, default_value = "pretrained")]
    pub experiment: String,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct PullArgs {
    /// The model repository, `owner/name` (e.g. sentence-transformers/all-MiniLM-L6-v2).
    pub repo_id: String,
    /// A branch, tag or commit.
    #[arg(long, default_value = "main")]
    pub revision: String,
    /// The Hub's address (default: https://huggingface.co).
    #[arg(long, env = settings::ENV_HF_ENDPOINT)]
    pub endpoint: Option<String>,
    /// Only these files of the repository (repeatable, or comma-separated); default: the files
    /// kaizen loads (JSON, text, safetensors, GGUF and sentencepiece files).
    #[arg(long, value_delimiter = ',', num_args = 1..)]
    pub files: Vec<String>,
    /// The Hugging Face cache (default: `$HF_HOME/hub`, else ~/.cache/huggingface/hub).
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// The model directory to fill (default: the repository's name under the models directory).
    #[arg(long, value_name = "DIR")]
    pub local_dir: Option<PathBuf>,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

pub async fn register_pretrained(args: RegisterPretrainedArgs) -> anyhow::Result<ExitCode> {
    if !args.dir.is_dir() {
        return Err(kaizen_core::Error::not_found(format!(
            "`{}` is not a directory; give a model directory in Hugging Face layout",
            args.dir.display()
        ))
        .into());
    }
    if args.name.trim().is_empty() {
        return Err(kaizen_core::Error::invalid("--name must not be empty").into());
    }
    // The model must load before it is registered.
    let dir = args.dir.clone();
    let reference = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
        let embedder = pretrained::load(&dir)?;
        embedder_ref(&dir, &embedder)
    })
    .await??;
    let services = settings::open_home_services().await?;
    let user = std::env::var("USER").unwrap_or_else(|_| "kaizen".into());
    let registered = kaizen_train::pretrained::register_embedder(
        &services,
        &args.dir,
        reference,
        &args.name,
        &args.experiment,
        &user,
    )
    .await
    .map_err(to_core)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&registered)?);
    } else {
        println!(
            "Registered {} ({} dimensions, sha256 {}) as models:/{}/{} (run {}): {} files, {} bytes",
            registered.embedder.name,
            registered.embedder.dim,
            &registered.embedder.sha256[..12],
            registered.model_name,
            registered.model_version,
            registered.run_id,
            registered.files,
            registered.bytes
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// One file of a pulled model.
#[derive(Debug, Serialize)]
struct PulledFile {
    name: String,
    bytes: u64,
    /// Fetched by this pull (else found in the cache).
    downloaded: bool,
}

/// What `kaizen models pull --json` prints.
#[derive(Debug, Serialize)]
struct Pulled {
    repo_id: String,
    revision: String,
    commit: String,
    /// The Hub asked; `None` offline.
    endpoint: Option<String>,
    offline: bool,
    cache_dir: String,
    dir: String,
    files: Vec<PulledFile>,
    bytes: u64,
}

/// Whether `name` is a file kaizen loads, pulled when `--files` is not given.
fn wanted_by_default(name: &str) -> bool {
    let ext = name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase());
    matches!(
        ext.as_deref(),
        Some("json" | "txt" | "safetensors" | "gguf" | "model")
    )
}

/// Whether a file name the Hub lists stays inside the model directory once joined to it: a
/// relative path of plain components (a hostile server could list `../../.bashrc`).
fn stays_inside(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('/')
        && !name.contains('\\')
        && name
            .split('/')
            .all(|part| !part.is_empty() && part != "." && part != "..")
}

/// The files to pull of `available`: `asked` (each must exist) or the default set.
fn select(available: &[String], asked: &[String], repo: &str) -> anyhow::Result<Vec<String>> {
    if let Some(bad) = available
        .iter()
        .chain(asked)
        .find(|name| !stays_inside(name))
    {
        return Err(kaizen_core::Error::invalid(format!(
            "{repo} lists the file `{bad}`, which is not a relative path inside the repository; \
             refusing to write it"
        ))
        .into());
    }
    if asked.is_empty() {
        let chosen: Vec<String> = available
            .iter()
            .filter(|f| wanted_by_default(f))
            .cloned()
            .collect();
        if chosen.is_empty() {
            return Err(kaizen_core::Error::invalid(format!(
                "{repo} has no file kaizen loads (JSON, text, safetensors, GGUF); its files: {}; \
                 name them with --files",
                available.join(", ")
            ))
            .into());
        }
        return Ok(chosen);
    }
    let missing: Vec<&String> = asked.iter().filter(|f| !available.contains(f)).collect();
    if !missing.is_empty() {
        return Err(kaizen_core::Error::not_found(format!(
            "{repo} has no file {}; its files: {}",
            missing
                .iter()
                .map(|f| format!("`{f}`"))
                .collect::<Vec<_>>()
                .join(", "),
            available.join(", ")
        ))
        .into());
    }
    Ok(asked.to_vec())
}

/// A repository id the Hub's URLs take: `name` or `owner/name`, without `..` or spaces.
fn check_repo_id(id: &str) -> anyhow::Result<()> {
    let ok = !id.is_empty()
        && id.split('/').count() <= 2
        && id.split('/').all(|part| {
            !part.is_empty()
                && part != ".."
                && part != "."
                && part
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        });
    if ok {
        Ok(())
    } else {
        Err(kaizen_core::Error::invalid(format!(
            "`{id}` is not a repository id; use owner/name, e.g. sentence-transformers/all-MiniLM-L6-v2"
        ))
        .into())
    }
}

/// A 40-digit hex commit hash.
fn is_commit(revision: &str) -> bool {
    revision.len() == 40 && revision.chars().all(|c| c.is_ascii_hexdigit())
}

/// The files under `dir`, as `/`-separated paths relative to it, sorted.
fn files_under(dir: &Path) -> std::io::Result<Vec<String>> {
    let mut out = Vec::new();
    let mut todo = vec![PathBuf::new()];
    while let Some(relative) = todo.pop() {
        for entry in std::fs::read_dir(dir.join(&relative))? {
            let entry = entry?;
            let rel = relative.join(entry.file_name());
            // Snapshots hold symbolic links to blobs: follow them.
            let meta = std::fs::metadata(entry.path())?;
            if meta.is_dir() {
                todo.push(rel);
            } else if meta.is_file() {
                let parts: Vec<String> = rel
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect();
                out.push(parts.join("/"));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// One file of a snapshot: its name in the repository, its path in the cache, and whether this
/// pull downloaded it.
#[derive(Debug)]
struct SnapshotFile {
    name: String,
    path: PathBuf,
    downloaded: bool,
}

/// The commit and files of `repo` in the cache, for offline mode.
fn from_cache(
    cache: &Cache,
    repo: &Repo,
    asked: &[String],
) -> anyhow::Result<(String, Vec<SnapshotFile>)> {
    let folder = cache.path().join(repo.folder_name());
    let not_cached = || {
        kaizen_core::Error::not_found(format!(
            "{} is set and {} (revision {}) is not in the Hugging Face cache {}\nhint: pull it \
             once without {}, or point --cache-dir (or {}) at a cache that has it",
            settings::ENV_HF_HUB_OFFLINE,
            repo_id(repo),
            repo.revision(),
            cache.path().display(),
            settings::ENV_HF_HUB_OFFLINE,
            settings::ENV_HF_HOME,
        ))
    };
    let commit = if is_commit(repo.revision()) {
        repo.revision().to_string()
    } else {
        std::fs::read_to_string(folder.join("refs").join(repo.revision()))
            .map_err(|_| not_cached())?
            .trim()
            .to_string()
    };
    let snapshot = cache.repo(repo.clone()).pointer_path(&commit);
    let available = files_under(&snapshot).map_err(|_| not_cached())?;
    if available.is_empty() {
        return Err(not_cached().into());
    }
    let chosen = select(&available, asked, &repo_id(repo))?;
    Ok((
        commit,
        chosen
            .into_iter()
            .map(|name| SnapshotFile {
                path: snapshot.join(&name),
                name,
                downloaded: false,
            })
            .collect(),
    ))
}

fn repo_id(repo: &Repo) -> String {
    repo.url()
}

/// An hf-hub error as a domain error naming the endpoint and repository.
fn hub_error(e: ApiError, endpoint: &str, what: &str) -> anyhow::Error {
    if let ApiError::RequestError(r) = &e {
        if let Some(status) = r.status() {
            let message = format!("{what}: the Hub at {endpoint} answered {status}");
            return match status.as_u16() {
                404 => kaizen_core::Error::not_found(format!(
                    "{message} (no such repository, revision or file)"
                )),
                401 | 403 => kaizen_core::Error::invalid(format!(
                    "{message}\nhint: a gated or private repository needs a token: set {}",
                    settings::ENV_HF_TOKEN
                )),
                _ => kaizen_core::Error::invalid(message),
            }
            .into();
        }
        return kaizen_core::Error::invalid(format!("{what}: cannot reach {endpoint}: {r}")).into();
    }
    kaizen_core::Error::invalid(format!("{what} from {endpoint}: {e}")).into()
}

/// Downloads what is not cached yet; answers the commit and `(name, snapshot path, downloaded)`.
async fn download(
    cache: &Cache,
    repo: &Repo,
    endpoint: &str,
    asked: &[String],
    progress: bool,
) -> anyhow::Result<(String, Vec<SnapshotFile>)> {
    let mut builder = ApiBuilder::from_cache(cache.clone())
        .with_endpoint(endpoint.to_string())
        .with_progress(progress)
        .with_user_agent("kaizen", env!("CARGO_PKG_VERSION"));
    if let Some(token) = std::env::var(settings::ENV_HF_TOKEN)
        .ok()
        .filter(|t| !t.trim().is_empty())
    {
        builder = builder.with_token(Some(token.trim().to_string()));
    }
    let api = builder
        .build()
        .map_err(|e| hub_error(e, endpoint, "cannot set up the Hub client"))?;
    let remote = api.repo(repo.clone());
    let id = repo_id(repo);
    let info = remote
        .info()
        .await
        .map_err(|e| hub_error(e, endpoint, &format!("{id} (revision {})", repo.revision())))?;
    let available: Vec<String> = info.siblings.iter().map(|s| s.rfilename.clone()).collect();
    let chosen = select(&available, asked, &id)?;
    let snapshot = cache.repo(repo.clone()).pointer_path(&info.sha);
    let mut files = Vec::with_capacity(chosen.len());
    for name in chosen {
        let cached = snapshot.join(&name);
        if cached.is_file() {
            files.push(SnapshotFile {
                name,
                path: cached,
                downloaded: false,
            });
            continue;
        }
        let path = remote
            .download(&name)
            .await
            .map_err(|e| hub_error(e, endpoint, &format!("{id}: {name}")))?;
        files.push(SnapshotFile {
            name,
            path,
            downloaded: true,
        });
    }
    Ok((info.sha, files))
}

/// Puts `files` into `dir`: a hard link to each cached blob, or a copy.
fn materialize(files: &[SnapshotFile], dir: &Path) -> anyhow::Result<Vec<PulledFile>> {
    let mut out = Vec::with_capacity(files.len());
    for SnapshotFile {
        name,
        path,
        downloaded,
    } in files
    {
        let target = dir.join(name);
        let io = |e: std::io::Error, what: &str| {
            kaizen_core::Error::invalid(format!("cannot {what} {}: {e}", target.display()))
        };
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(|e| io(e, "create the directory of"))?;
        }
        let blob = path
            .canonicalize()
            .map_err(|e| io(e, "find the cached file of"))?;
        match std::fs::remove_file(&target) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(io(e, "replace").into());
            }
            _ => {}
        }
        if std::fs::hard_link(&blob, &target).is_err() {
            std::fs::copy(&blob, &target).map_err(|e| io(e, "write"))?;
        }
        let bytes = std::fs::metadata(&target).map_err(|e| io(e, "read"))?.len();
        out.push(PulledFile {
            name: name.clone(),
            bytes,
            downloaded: *downloaded,
        });
    }
    Ok(out)
}

pub async fn pull(args: PullArgs) -> anyhow::Result<ExitCode> {
    check_repo_id(&args.repo_id)?;
    if args.revision.trim().is_empty() {
        return Err(kaizen_core::Error::invalid("--revision must not be empty").into());
    }
    let offline = settings::hf_offline();
    let cache = match &args.cache_dir {
        Some(dir) => Cache::new(dir.clone()),
        None => Cache::from_env(),
    };
    let repo = Repo::with_revision(args.repo_id.clone(), RepoType::Model, args.revision.clone());
    let endpoint = args
        .endpoint
        .as_deref()
        .map(|e| e.trim().trim_end_matches('/').to_string())
        .filter(|e| !e.is_empty())
        .unwrap_or_else(|| settings::DEFAULT_HF_ENDPOINT.to_string());
    let (commit, files) = if offline {
        from_cache(&cache, &repo, &args.files)?
    } else {
        let progress = !args.json && std::io::stderr().is_terminal();
        download(&cache, &repo, &endpoint, &args.files, progress).await?
    };
    let name = args
        .repo_id
        .rsplit('/')
        .next()
        .unwrap_or(&args.repo_id)
        .to_string();
    let dir = args
        .local_dir
        .clone()
        .unwrap_or_else(|| settings::models_dir().join(&name));
    let pulled = materialize(&files, &dir)?;
    let summary = Pulled {
        repo_id: args.repo_id.clone(),
        revision: args.revision.clone(),
        commit,
        endpoint: (!offline).then_some(endpoint),
        offline,
        cache_dir: cache.path().display().to_string(),
        dir: dir.display().to_string(),
        bytes: pulled.iter().map(|f| f.bytes).sum(),
        files: pulled,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        let fetched = summary.files.iter().filter(|f| f.downloaded).count();
        println!(
            "{} {} files ({} bytes, {fetched} downloaded) of {}@{} into {}",
            if offline { "Took" } else { "Pulled" },
            summary.files.len(),
            summary.bytes,
            summary.repo_id,
            &summary.commit[..summary.commit.len().min(12)],
            summary.dir
        );
        println!("hint: kaizen embed --model {} --text \"...\"", summary.dir);
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_files_are_what_kaizen_loads() {
        let available: Vec<String> = [
            "config.json",
            "model.safetensors",
            "pytorch_model.bin",
            "onnx/model.onnx",
            "1_Pooling/config.json",
            "vocab.txt",
            "README.md",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(
            select(&available, &[], "r").unwrap(),
            [
                "config.json",
                "model.safetensors",
                "1_Pooling/config.json",
                "vocab.txt"
            ]
        );
        let asked = vec!["README.md".to_string()];
        assert_eq!(select(&available, &asked, "r").unwrap(), ["README.md"]);
        let err = select(&available, &["nope.json".into()], "r")
            .unwrap_err()
            .to_string();
        assert!(err.contains("r has no file `nope.json`"), "{err}");
        for hostile in [
            "../escape.json",
            "/etc/passwd.json",
            "a/../../b.json",
            "a\\..\\b.json",
        ] {
            let listed = vec!["config.json".to_string(), hostile.to_string()];
            let err = select(&listed, &[], "r").unwrap_err().to_string();
            assert!(
                err.contains("not a relative path inside the repository"),
                "{err}"
            );
        }
    }

    #[test]
    fn repository_ids() {
        for ok in ["sentence-transformers/all-MiniLM-L6-v2", "gpt2", "a_b/c.d"] {
            assert!(check_repo_id(ok).is_ok(), "{ok}");
        }
        for bad in ["", "a/b/c", "../x", "a/..", "a b/c", "a//b"] {
            assert!(check_repo_id(bad).is_err(), "{bad}");
        }
        assert!(is_commit(&"a".repeat(40)));
        assert!(!is_commit("main"));
    }

    #[test]
    fn offline_reads_the_cache_layout_or_says_what_is_missing() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path().to_path_buf());
        let repo = Repo::with_revision("org/mini".into(), RepoType::Model, "main".into());
        let err = from_cache(&cache, &repo, &[]).unwrap_err().to_string();
        assert!(
            err.contains("org/mini (revision main) is not in the Hugging Face cache"),
            "{err}"
        );

        let commit = "c".repeat(40);
        let folder = dir.path().join("models--org--mini");
        std::fs::create_dir_all(folder.join("refs")).unwrap();
        std::fs::write(folder.join("refs/main"), &commit).unwrap();
        std::fs::create_dir_all(folder.join("blobs")).unwrap();
        std::fs::write(folder.join("blobs/e1"), b"{}").unwrap();
        let snapshot = folder.join("snapshots").join(&commit);
        std::fs::create_dir_all(snapshot.join("1_Pooling")).unwrap();
        std::os::unix::fs::symlink("../../blobs/e1", snapshot.join("config.json")).unwrap();
        std::fs::write(snapshot.join("1_Pooling/config.json"), b"{}").unwrap();
        let (found, files) = from_cache(&cache, &repo, &[]).unwrap();
        assert_eq!(found, commit);
        let names: Vec<&str> = files.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["1_Pooling/config.json", "config.json"]);

        let out = dir.path().join("out");
        let pulled = materialize(&files, &out).unwrap();
        assert_eq!(pulled.len(), 2);
        assert_eq!(std::fs::read(out.join("config.json")).unwrap(), b"{}");
        assert!(out.join("1_Pooling/config.json").is_file());
    }
}
