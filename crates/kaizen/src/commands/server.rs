//! `kaizen server`: the tracking server and registry, and the HTTP trigger of the pipelines
//! registered with `--pipeline DIR`.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use kaizen_server::{AppState, PipelineRegistry, ServerConfig};
use kaizen_tracking::Services;

use crate::cli::ServerArgs;
use crate::settings;

pub async fn run(args: ServerArgs) -> anyhow::Result<ExitCode> {
    let store_uri = args
        .backend_store_uri
        .unwrap_or_else(settings::default_store_uri);
    let artifacts_uri = args
        .artifacts_destination
        .or(args
            .default_artifact_root
            .filter(|r| r.starts_with("file://")))
        .unwrap_or_else(settings::default_artifacts_uri);
    let services = Services::open(&store_uri, &artifacts_uri)
        .await
        .with_context(|| format!("cannot open the stores ({store_uri}, {artifacts_uri})"))?;
    let addr = format!("{}:{}", args.host, args.port);
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    let local = listener.local_addr()?;
    tracing::info!(%local, backend = services.store.backend(), artifacts = %artifacts_uri, "kaizen server listening");
    eprintln!(
        "kaizen server listening on http://{local} (backend: {}, artifacts: {artifacts_uri})",
        services.store.backend()
    );
    // Steps of triggered pipeline runs log into this server; a wildcard address is reached
    // through loopback.
    let step_host = if local.ip().is_unspecified() {
        std::net::SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), local.port())
    } else {
        local
    };
    let pipelines = PipelineRegistry::load(
        &args.pipelines,
        settings::home().join("pipelines"),
        format!("http://{step_host}"),
    )?;
    for (name, dir) in pipelines.dirs() {
        eprintln!(
            "pipeline '{name}' ({}): POST http://{local}/api/pipelines/{name}/runs",
            dir.display()
        );
    }
    let events_file = args
        .events
        .clone()
        .or_else(|| Some(settings::home().join("events.toml")).filter(|p| p.exists()));
    let dispatcher = match events_file {
        Some(path) => Some(super::events::spawn_dispatcher(&services, &path)?),
        None => None,
    };
    let mut mounted = Vec::new();
    let mut deployments = Vec::new();
    let mut log_writer = None;
    if !args.serve.is_empty() {
        let log_dir = settings::home().join("inference_log");
        let (log, writer) = kaizen_serving::InferenceLog::open(&log_dir, 100_000)
            .with_context(|| format!("cannot open the inference log in {}", log_dir.display()))?;
        log_writer = Some(writer);
        for spec in &args.serve {
            let (name, alias) = spec
                .split_once('@')
                .filter(|(n, a)| !n.is_empty() && !a.is_empty())
                .ok_or_else(|| {
                    kaizen_core::Error::invalid(format!(
                        "--serve `{spec}`: expected NAME@ALIAS, e.g. churn@champion"
                    ))
                })?;
            let model = kaizen_serving::ServedModel::from_registry(&services, name, alias)
                .await
                .map_err(|e| kaizen_core::Error::invalid(e.to_string()))?;
            let state = kaizen_serving::AppState::new(
                model,
                kaizen_serving::ServeConfig::default(),
                Some(log.clone()),
            );
            let prefix = format!("/serve/{name}/{alias}");
            let deployment = super::serve::Deployment {
                services: services.clone(),
                name: name.to_string(),
                endpoint: format!("http://{local}{prefix}"),
                since: kaizen_core::now_millis(),
                arms: vec![(
                    "default".to_string(),
                    alias.to_string(),
                    Some(1),
                    Arc::clone(&state.model),
                )],
            };
            deployment.record("kaizen server started").await;
            super::serve::follow_alias(
                services.clone(),
                name.to_string(),
                alias.to_string(),
                Arc::clone(&state.model),
                std::time::Duration::from_secs(1),
                deployment.clone(),
            );
            eprintln!("serving {name}@{alias}: POST http://{local}{prefix}/invocations");
            deployments.push(deployment);
            mounted.push((prefix, state));
        }
    }
    let state = AppState {
        services,
        config: Arc::new(ServerConfig {
            max_body_bytes: args.max_body_size,
            serve_artifacts: !args.no_serve_artifacts,
            pipelines,
        }),
    };
    let pretrained = kaizen_infer::router(kaizen_infer::InferState::new(
        super::pretrained::infer_config(args.allow_fetch),
    ));
    kaizen_server::serve_with(
        listener,
        state,
        kaizen_serving::mount(mounted).merge(pretrained),
        super::shutdown_signal(),
    )
    .await?;
    for deployment in deployments {
        deployment.retire().await;
    }
    if let Some(writer) = log_writer {
        tokio::task::spawn_blocking(move || writer.join()).await?;
    }
    if let Some(d) = dispatcher {
        d.stop().await;
    }
    Ok(ExitCode::SUCCESS)
}
