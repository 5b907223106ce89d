//! One module per command. Exit codes: 0 success, 1 a user or input failure (bad arguments,
//! unknown ids, refused input), 2 an internal failure.

pub(crate) mod classifier;
mod datasets;
pub(crate) mod drift;
pub(crate) mod events;
mod experiments;
pub(crate) mod forecast;
pub(crate) mod hub;
mod lineage;
mod models;
pub(crate) mod pipeline;
mod predict;
pub(crate) mod pretrained;
mod quickstart;
pub(crate) mod retrain;
mod runs;
pub(crate) mod serve;
mod server;
mod serving_loop;
mod sql;
mod train;
pub(crate) mod transcribe;

use std::process::ExitCode;

use crate::cli::{Cli, Command};

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    // Text classifiers look for the embedding model they need in the models directory.
    kaizen_serving::pretrained::set_models_dir(crate::settings::models_dir());
    runtime.block_on(async move {
        match cli.command {
            Command::Server(args) => server::run(args).await,
            Command::Quickstart(args) => quickstart::run(args).await,
            Command::Experiments(cmd) => experiments::run(cmd).await,
            Command::Runs(cmd) => runs::run(cmd).await,
            Command::Models(cmd) => models::run(cmd).await,
            Command::Pipeline(cmd) => pipeline::run(cmd).await,
            Command::Drift(args) => drift::run(args).await,
            Command::Datasets(cmd) => datasets::run(cmd).await,
            Command::Sql(args) => sql::run(args).await,
            Command::Lineage(args) => lineage::run(args).await,
            Command::Forecast(args) => forecast::run(args).await,
            Command::Train(args) => train::run(args).await,
            Command::TrainClassifier(args) => classifier::run(args).await,
            Command::Events(cmd) => events::run(cmd).await,
            Command::Serve(args) => serve::run(args).await,
            Command::Predict(args) => predict::run(args).await,
            Command::Retrain(args) => retrain::run(args).await,
            Command::Embed(args) => pretrained::embed(args).await,
            Command::Summarize(args) => pretrained::summarize(args).await,
            Command::Generate(args) => pretrained::generate(args).await,
            Command::Ask(args) => pretrained::ask(args).await,
            Command::Sentiment(args) => pretrained::sentiment(args).await,
            Command::Phrases(args) => pretrained::phrases(args).await,
            Command::Transcribe(args) => transcribe::run(args).await,
        }
    })
}

/// The client the `experiments`, `runs` and `models` commands talk through: a server when
/// `--tracking-uri` / `MLFLOW_TRACKING_URI` is an `http(s)://` URL, else the local home in-process.
/// A `sqlite://` or `postgresql://` URI opens that store in-process (artifacts stay in the home).
async fn connect(
    args: &crate::cli::TrackingArgs,
) -> anyhow::Result<Box<dyn kaizen_client::TrackingClient>> {
    use anyhow::Context;
    use kaizen_client::{Auth, HttpClient, LocalClient};

    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let user = env("USER").or_else(|| env("USERNAME"));
    let uri = args
        .tracking_uri
        .as_deref()
        .map(str::trim)
        .filter(|u| !u.is_empty());
    let store_uri = match uri {
        Some(u) if u.starts_with("http://") || u.starts_with("https://") => {
            let auth = match (
                env("MLFLOW_TRACKING_USERNAME"),
                env("MLFLOW_TRACKING_PASSWORD"),
                env("MLFLOW_TRACKING_TOKEN"),
            ) {
                (Some(user), password, _) => Auth::Basic {
                    user,
                    password: password.unwrap_or_default(),
                },
                (None, _, Some(token)) => Auth::Bearer(token),
                _ => Auth::None,
            };
            let client = HttpClient::new(u)?.with_user(user).with_auth(auth);
            return Ok(Box::new(client));
        }
        Some(u)
            if u.starts_with("sqlite:")
                || u.starts_with("postgresql:")
                || u.starts_with("postgres:") =>
        {
            u.to_string()
        }
        Some(u) => {
            return Err(kaizen_core::Error::invalid(format!(
                "Unsupported tracking URI '{u}' (--tracking-uri or {}): use http(s)://host:port \
                 for a server, sqlite:///path or postgresql://... for a store, or leave it unset \
                 for the local home",
                crate::settings::ENV_TRACKING_URI
            ))
            .into());
        }
        None => crate::settings::default_store_uri(),
    };
    let artifacts_uri = crate::settings::default_artifacts_uri();
    let services = kaizen_tracking::Services::open(&store_uri, &artifacts_uri)
        .await
        .with_context(|| format!("cannot open the store {store_uri}"))?;
    let target = match uri {
        Some(u) => u.to_string(),
        None => crate::settings::home().display().to_string(),
    };
    Ok(Box::new(LocalClient::new(services, target).with_user(user)))
}

/// Maps an error to the documented exit codes.
pub fn exit_code_for(err: &anyhow::Error) -> ExitCode {
    for cause in err.chain() {
        if let Some(e) = cause.downcast_ref::<kaizen_core::Error>() {
            return match e.kind {
                kaizen_core::ErrorKind::Internal => ExitCode::from(2),
                _ => ExitCode::from(1),
            };
        }
    }
    ExitCode::from(1)
}

/// Resolves on Ctrl-C or SIGTERM: the graceful stop of `kaizen server` and `kaizen serve`.
pub(crate) async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
