//! Where kaizen keeps its state, and logging set-up. Every environment variable kaizen reads is
//! declared here.

use std::path::PathBuf;

/// `KAIZEN_HOME`: kaizen's home directory (default `~/.kaizen`): the SQLite database
/// `kaizen.db` and the artifact directory `artifacts/` of the embedded default.
pub const ENV_HOME: &str = "KAIZEN_HOME";
/// `MLFLOW_TRACKING_URI`: when set to an `http(s)://` URL, CLI commands talk to that server
/// instead of the local home (`--tracking-uri` overrides it).
pub const ENV_TRACKING_URI: &str = "MLFLOW_TRACKING_URI";
/// `KAIZEN_LOG`: a tracing filter such as `info` or `kaizen_server=debug` (default `warn`, or
/// `info` for `kaizen server`).
pub const ENV_LOG: &str = "KAIZEN_LOG";
/// `KAIZEN_MODELS`: the directory of pretrained models, one subdirectory per model in Hugging
/// Face layout (default: `models/` in the current directory when it exists, else
/// `$KAIZEN_HOME/models`).
pub const ENV_MODELS: &str = "KAIZEN_MODELS";
/// `KAIZEN_WIKI_API`: the MediaWiki API that `kaizen summarize --wiki` and `POST /v1/summarize`
/// read (default `https://en.wikipedia.org/w/api.php`).
pub const ENV_WIKI_API: &str = "KAIZEN_WIKI_API";
/// `KAIZEN_LLM_BASE_URL`: the OpenAI-compatible API that `POST /v1/ask` with
/// `"provider": "openai"` calls (default `https://api.openai.com/v1` when `KAIZEN_LLM_MODEL` or
/// `KAIZEN_LLM_API_KEY` is set; with none of the three the server has no LLM provider).
pub const ENV_LLM_BASE_URL: &str = "KAIZEN_LLM_BASE_URL";
/// `KAIZEN_LLM_MODEL`: the LLM of `POST /v1/ask` when a request names none.
pub const ENV_LLM_MODEL: &str = "KAIZEN_LLM_MODEL";
/// `KAIZEN_LLM_API_KEY`: the key `kaizen server` sends its LLM provider as a bearer token.
pub const ENV_LLM_API_KEY: &str = "KAIZEN_LLM_API_KEY";
/// `HF_ENDPOINT`: the Hugging Face Hub that `kaizen models pull` asks (default
/// [`DEFAULT_HF_ENDPOINT`]; `--endpoint` overrides it).
pub const ENV_HF_ENDPOINT: &str = "HF_ENDPOINT";
/// `HF_HUB_OFFLINE`: `1` (or `true`, `yes`, `on`) makes `kaizen models pull` read the Hugging
/// Face cache only, never the network.
pub const ENV_HF_HUB_OFFLINE: &str = "HF_HUB_OFFLINE";
/// `HF_TOKEN`: the token `kaizen models pull` sends the Hub (gated and private repositories).
/// Without it, the token file of the Hugging Face cache (`$HF_HOME/token`) is used when present.
pub const ENV_HF_TOKEN: &str = "HF_TOKEN";
/// `HF_HOME`: the Hugging Face home; `kaizen models pull` caches downloads in `$HF_HOME/hub`
/// (default `~/.cache/huggingface/hub`). Read by the hf-hub crate.
pub const ENV_HF_HOME: &str = "HF_HOME";

/// The Hugging Face Hub.
pub const DEFAULT_HF_ENDPOINT: &str = "https://huggingface.co";

/// Whether [`ENV_HF_HUB_OFFLINE`] asks for offline mode.
pub fn hf_offline() -> bool {
    std::env::var(ENV_HF_HUB_OFFLINE).is_ok_and(|v| {
        matches!(
            v.trim().to_ascii_lowercase().as_str(),
            "1" | "true" | "yes" | "on"
        )
    })
}

pub fn home() -> PathBuf {
    if let Some(h) = std::env::var_os(ENV_HOME).filter(|h| !h.is_empty()) {
        return PathBuf::from(h);
    }
    let base = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    base.join(".kaizen")
}

/// Where pretrained models live ([`ENV_MODELS`]).
pub fn models_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os(ENV_MODELS).filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    let local = PathBuf::from("models");
    if local.is_dir() {
        return local;
    }
    home().join("models")
}

pub fn default_store_uri() -> String {
    format!("sqlite://{}", home().join("kaizen.db").display())
}

pub fn default_artifacts_uri() -> String {
    format!("file://{}", home().join("artifacts").display())
}

pub fn init_tracing(verbose: u8, quiet: bool) {
    use tracing_subscriber::EnvFilter;
    let default = if quiet {
        "error"
    } else {
        match verbose {
            0 => "warn",
            1 => "info",
            2 => "debug",
            _ => "trace",
        }
    };
    let filter = EnvFilter::try_from_env(ENV_LOG).unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::env::var_os("NO_COLOR").is_none())
        .try_init();
}

/// The tracking store and artifact root of the local home (`KAIZEN_HOME` and the URIs that
/// override its parts), opened.
pub async fn open_home_services() -> anyhow::Result<kaizen_tracking::Services> {
    use anyhow::Context as _;
    kaizen_tracking::Services::open(&default_store_uri(), &default_artifacts_uri())
        .await
        .with_context(|| format!("cannot open the local home {}", home().display()))
}

/// Makes glibc keep freed memory for reuse instead of handing it back to the kernel at once.
///
/// By default glibc maps every block of 128 KiB or more on its own (a threshold it raises, up to
/// 32 MiB, only as such blocks are freed) and returns freed memory at the top of the heap. Model
/// inference allocates and frees tens of megabytes per layer, so each pass paid page faults and
/// the zeroing of fresh pages again: with blocks up to 32 MiB kept in the heap, the MiniLM bench
/// went from 125 to 180 texts/s on 2 threads. The price is that the process keeps up to 1 GiB of
/// freed heap for reuse. When `GLIBC_TUNABLES` is set, the allocator is left as it says.
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("GLIBC_TUNABLES").is_none() {
        // SAFETY: mallopt only changes allocator parameters; called first thing in `main`, before
        // any other thread exists.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
            libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
        }
    }
}
