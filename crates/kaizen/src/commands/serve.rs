//! `kaizen serve MODEL`: a registered model version (or a package directory) behind MLflow's
//! scoring protocol, until Ctrl-C; and the model loading `kaizen predict` shares.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use std::sync::Arc;
use std::time::Duration;

use kaizen_serving::{
    AppState, FeedbackLog, InferenceLog, ModelSlot, ServeConfig, ServedModel, Variant,
};
use kaizen_tracking::Services;

use crate::cli::ServeArgs;
use crate::commands::retrain;
use crate::settings;

/// A serving error as the domain error the exit codes read.
fn to_core(e: kaizen_serving::ServeError) -> kaizen_core::Error {
    match e {
        kaizen_serving::ServeError::Package(e) => crate::commands::forecast::to_core(e),
        kaizen_serving::ServeError::Scoring(e) => {
            let message = e.to_string();
            kaizen_core::Error::internal(message, e)
        }
        e => kaizen_core::Error::invalid(e.to_string()),
    }
}

/// `models:/NAME@ALIAS` or `models:/NAME/VERSION` as (name, version or alias).
fn parse_model_uri(uri: &str) -> Result<(&str, &str), kaizen_core::Error> {
    let rest = uri.strip_prefix("models:/").unwrap_or_default();
    let parsed = match rest.rsplit_once('@') {
        Some((name, alias)) => Some((name, alias)),
        None => rest.rsplit_once('/'),
    };
    match parsed {
        Some((name, v)) if !name.is_empty() && !v.is_empty() && !name.contains('/') => {
            Ok((name, v))
        }
        _ => Err(kaizen_core::Error::invalid(format!(
            "`{uri}` is not a model URI; use models:/NAME@ALIAS or models:/NAME/VERSION"
        ))),
    }
}

/// The model named by `spec`: a registry URI read from the store of `tracking_uri` (default:
/// the local home), or a package directory.
pub(crate) async fn load_model(
    spec: &str,
    tracking_uri: Option<&str>,
) -> anyhow::Result<ServedModel> {
    if !spec.starts_with("models:/") {
        let dir = Path::new(spec);
        if !dir.is_dir() && !kaizen_serving::onnx::is_onnx_model(dir) {
            return Err(kaizen_core::Error::not_found(format!(
                "`{spec}` is neither a model URI (models:/NAME@ALIAS, models:/NAME/VERSION) nor \
                 a package directory, an MLflow model directory with the onnx flavor or a \
                 .onnx file"
            ))
            .into());
        }
        return Ok(ServedModel::from_dir(dir).map_err(to_core)?);
    }
    let (name, version) = parse_model_uri(spec)?;
    let services = open_services(tracking_uri).await?;
    Ok(ServedModel::from_registry(&services, name, version)
        .await
        .map_err(to_core)?)
}

/// The services of `tracking_uri`'s store (default: the local home).
pub(crate) async fn open_services(tracking_uri: Option<&str>) -> anyhow::Result<Services> {
    let store_uri = match tracking_uri.map(str::trim).filter(|u| !u.is_empty()) {
        None => settings::default_store_uri(),
        Some(u) if u.starts_with("sqlite:") || u.starts_with("postgres") => u.to_string(),
        Some(u) => {
            return Err(kaizen_core::Error::invalid(format!(
                "cannot load models from `{u}` yet; use a sqlite:// or postgresql:// store, or \
                 leave --tracking-uri unset for the local home"
            ))
            .into());
        }
    };
    Services::open(&store_uri, &settings::default_artifacts_uri())
        .await
        .with_context(|| format!("cannot open the store {store_uri}"))
}

/// What one `kaizen serve` process has live, for the registry: the endpoint, since when, and
/// each arm (variant or shadow) with the alias it follows and the version it serves now.
#[derive(Clone)]
pub(crate) struct Deployment {
    pub(crate) services: Services,
    pub(crate) name: String,
    pub(crate) endpoint: String,
    pub(crate) since: i64,
    /// `(arm name, alias, weight, slot)`; the shadow's weight is `None`.
    pub(crate) arms: Vec<(String, String, Option<u32>, Arc<ModelSlot>)>,
}

impl Deployment {
    fn tag_key(&self) -> String {
        format!(
            "kaizen.deployment.{}",
            self.endpoint.trim_start_matches("http://")
        )
    }

    /// Writes what is live: a registered-model tag, an audit entry per version, lineage edges
    /// from each version to the endpoint, and a `deployment.changed` event.
    pub(crate) async fn record(&self, reason: &str) {
        let arms: Vec<serde_json::Value> = self
            .arms
            .iter()
            .map(|(arm, alias, weight, slot)| {
                serde_json::json!({
                    "variant": arm,
                    "alias": alias,
                    "version": slot.current().version,
                    "weight": weight,
                    "shadow": weight.is_none(),
                })
            })
            .collect();
        let details = serde_json::json!({
            "endpoint": self.endpoint,
            "since": self.since,
            "updated": kaizen_core::now_millis(),
            "arms": arms,
            "reason": reason,
        });
        let registry = &self.services.registry;
        let tag = kaizen_core::Tag::new(self.tag_key(), details.to_string());
        if let Err(e) = registry.set_registered_model_tag(&self.name, &tag).await {
            tracing::warn!(error = %e, "cannot record the deployment in the registry");
        }
        let actor = kaizen_tracking::Actor {
            user: std::env::var("USER").ok(),
            reason: Some(reason.to_string()),
        };
        let mut edges = Vec::new();
        for (_, _, _, slot) in &self.arms {
            let version = slot.current().version.clone();
            let _ = registry
                .record_decision(
                    &self.name,
                    Some(&version),
                    "deploy",
                    &details.to_string(),
                    &actor,
                )
                .await;
            edges.push(kaizen_store::LineageEdge {
                src_kind: "model".into(),
                src_id: format!("{}/{version}", self.name),
                dst_kind: "endpoint".into(),
                dst_id: self.endpoint.clone(),
                relation: "served_by".into(),
                created: kaizen_core::now_millis(),
            });
        }
        let _ = self.services.store.add_lineage_edges(&edges).await;
        kaizen_tracking::emit(
            self.services.store.as_ref(),
            kaizen_core::events::DEPLOYMENT_CHANGED,
            &self.endpoint,
            serde_json::json!({"name": self.name, "deployment": details}),
        )
        .await;
    }

    /// The endpoint stopped: nothing is live there any more.
    pub(crate) async fn retire(&self) {
        let _ = self
            .services
            .registry
            .delete_registered_model_tag(&self.name, &self.tag_key())
            .await;
    }
}

/// Follows `models:/NAME@ALIAS`: when the alias moves, loads the new version off the request
/// path and swaps it in; requests in flight finish on the version they started with.
pub(crate) fn follow_alias(
    services: Services,
    name: String,
    alias: String,
    slot: Arc<ModelSlot>,
    every: Duration,
    deployment: Deployment,
) {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            let holder = match services.registry.get_version_by_alias(&name, &alias).await {
                Ok(v) => v.version.to_string(),
                Err(e) => {
                    tracing::warn!(model = %name, alias = %alias, error = %e, "cannot read the alias; serving on");
                    continue;
                }
            };
            let serving = slot.current().version.clone();
            if holder == serving {
                continue;
            }
            match ServedModel::from_registry(&services, &name, &holder).await {
                Ok(model) => {
                    slot.swap(model);
                    eprintln!("{name}@{alias} moved: now serving version {holder} (was {serving})");
                    deployment
                        .record(&format!("{alias} moved from version {serving} to {holder}"))
                        .await;
                }
                Err(e) => {
                    tracing::error!(model = %name, version = %holder, error = %e, "cannot load the new version; serving the old one");
                }
            }
        }
    });
}

/// `--variant ALIAS=WEIGHT` as (alias, weight).
fn parse_variant(spec: &str) -> Result<(String, u32), kaizen_core::Error> {
    let bad = || {
        kaizen_core::Error::invalid(format!(
            "--variant `{spec}`: expected ALIAS=WEIGHT with a whole-number weight, e.g. champion=90"
        ))
    };
    let (alias, weight) = spec.split_once('=').ok_or_else(bad)?;
    let weight: u32 = weight.trim().parse().map_err(|_| bad())?;
    if alias.trim().is_empty() {
        return Err(bad());
    }
    Ok((alias.trim().to_string(), weight))
}

/// What `kaizen serve` serves: one model, or a weighted split over aliases of one registered
/// model, and a shadow alias; each alias followed for hot swaps.
struct Plan {
    /// `(variant name, alias to follow, model)`.
    variants: Vec<(String, Option<String>, ServedModel)>,
    shadow: Option<(String, ServedModel)>,
    /// The registered model's name, when aliases are followed.
    name: Option<String>,
}

async fn plan(args: &ServeArgs) -> anyhow::Result<Plan> {
    let tracking = args.tracking_uri.as_deref();
    let registry_name = args.model.strip_prefix("models:/").map(|rest| {
        rest.split(['@', '/'])
            .next()
            .unwrap_or_default()
            .to_string()
    });
    if args.variants.is_empty() {
        let model = load_model(&args.model, tracking).await?;
        let alias = args
            .model
            .strip_prefix("models:/")
            .and_then(|rest| rest.rsplit_once('@'))
            .map(|(_, alias)| alias.to_string());
        let shadow = match (&args.shadow, &registry_name) {
            (Some(alias), Some(name)) => Some((
                alias.clone(),
                load_model(&format!("models:/{name}@{alias}"), tracking).await?,
            )),
            (Some(_), None) => {
                return Err(kaizen_core::Error::invalid(
                    "--shadow needs a registered model (models:/NAME@ALIAS), not a directory",
                )
                .into());
            }
            (None, _) => None,
        };
        return Ok(Plan {
            variants: vec![("default".into(), alias, model)],
            shadow,
            name: registry_name,
        });
    }
    let name = match args.model.strip_prefix("models:/") {
        Some(rest) if !rest.is_empty() && !rest.contains(['@', '/']) => rest.to_string(),
        _ => {
            return Err(kaizen_core::Error::invalid(format!(
                "with --variant, MODEL is a registered model without version or alias (models:/NAME), not `{}`",
                args.model
            ))
            .into());
        }
    };
    let mut variants = Vec::new();
    for spec in &args.variants {
        let (alias, weight) = parse_variant(spec)?;
        let model = load_model(&format!("models:/{name}@{alias}"), tracking).await?;
        variants.push((format!("{alias}={weight}"), Some(alias), model));
    }
    if variants.iter().all(|(v, _, _)| v.ends_with("=0")) {
        return Err(kaizen_core::Error::invalid("--variant weights are all 0").into());
    }
    let shadow = match &args.shadow {
        Some(alias) => Some((
            alias.clone(),
            load_model(&format!("models:/{name}@{alias}"), tracking).await?,
        )),
        None => None,
    };
    Ok(Plan {
        variants,
        shadow,
        name: Some(name),
    })
}

/// `kaizen serve`: starts, then serves until Ctrl-C.
pub async fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let running = start(args).await?;
    super::shutdown_signal().await;
    running.stop().await?;
    Ok(ExitCode::SUCCESS)
}

/// What the retrainer of a `kaizen serve` reports.
#[derive(Debug)]
pub(crate) enum RetrainNews {
    /// A retraining started, for this reason.
    Started(String),
    Finished(Box<retrain::Outcome>),
    Failed(String),
}

/// A started `kaizen serve`: its address, and the outcomes of the retrainings it runs.
pub(crate) struct Running {
    pub(crate) addr: std::net::SocketAddr,
    /// What the retrainer does, when a policy is on (`--retrain`).
    pub(crate) retrained: Option<tokio::sync::mpsc::UnboundedReceiver<RetrainNews>>,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Running {
    /// Stops accepting requests, lets those in flight finish, writes what the logs hold,
    /// delivers the last events.
    pub(crate) async fn stop(self) -> anyhow::Result<()> {
        let _ = self.stop.send(());
        self.task.await?
    }
}

/// Loads the models, binds, and serves in the background until [`Running::stop`].
pub(crate) async fn start(args: ServeArgs) -> anyhow::Result<Running> {
    let plan = plan(&args).await?;
    let policy = match &args.retrain {
        Some(path) => {
            let policy = retrain::Policy::load(path)?;
            if plan.name.as_deref() != Some(policy.model.as_str()) {
                return Err(kaizen_core::Error::invalid(format!(
                    "--retrain {}: the policy retrains `{}`, but this server serves {}",
                    path.display(),
                    policy.model,
                    args.model
                ))
                .into());
            }
            Some(policy)
        }
        None => None,
    };
    let max_age = match &args.monitor_every {
        Some(span) => Some(retrain::parse_span("--monitor-every", span)?),
        None => None,
    };
    let addr = format!("{}:{}", args.host, args.port);
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    let local = listener.local_addr()?;
    let described: Vec<String> = plan
        .variants
        .iter()
        .map(|(variant, _, m)| {
            let version = if m.version.is_empty() {
                String::new()
            } else {
                format!(" version {}", m.version)
            };
            if plan.variants.len() == 1 {
                format!("model {}{version}", m.name)
            } else {
                format!("{variant}: {}{version}", m.name)
            }
        })
        .collect();
    tracing::info!(%local, "kaizen serve listening");
    eprintln!(
        "kaizen serve listening on http://{local} ({})",
        described.join(", ")
    );
    if let Some((alias, m)) = &plan.shadow {
        eprintln!(
            "shadow: {alias} ({} version {}) scores a copy of every request",
            m.name, m.version
        );
    }
    let log_dir = settings::home().join("inference_log");
    let (log, writer) = if args.no_log {
        (None, None)
    } else {
        let (log, writer) = InferenceLog::open(&log_dir, args.log_queue)
            .with_context(|| format!("cannot open the inference log in {}", log_dir.display()))?;
        eprintln!("inference log: {}", log.path.display());
        (Some(log), Some(writer))
    };
    let mut follow: Vec<(String, Arc<ModelSlot>)> = Vec::new();
    let mut arms: Vec<(String, String, Option<u32>, Arc<ModelSlot>)> = Vec::new();
    let mut variants = Vec::new();
    for (variant_name, alias, model) in plan.variants {
        let weight = variant_name
            .rsplit_once('=')
            .and_then(|(_, w)| w.parse().ok())
            .unwrap_or(1);
        let name = variant_name
            .split('=')
            .next()
            .unwrap_or_default()
            .to_string();
        let variant = Variant::new(name.clone(), weight, model);
        if let Some(alias) = alias {
            follow.push((alias.clone(), Arc::clone(&variant.slot)));
            arms.push((name, alias, Some(weight), Arc::clone(&variant.slot)));
        }
        variants.push(variant);
    }
    let shadow = plan.shadow.map(|(alias, model)| {
        let variant = Variant::new(alias.clone(), 0, model);
        follow.push((alias.clone(), Arc::clone(&variant.slot)));
        arms.push((
            format!("shadow:{alias}"),
            alias,
            None,
            Arc::clone(&variant.slot),
        ));
        variant
    });
    let mut state = AppState::with_variants(
        variants,
        shadow,
        ServeConfig {
            max_body_bytes: args.max_body_size,
        },
        log,
    );
    state.sticky_header = args.sticky_header.clone();
    // Retraining triggers (drift windows) go to the retrainer through this channel.
    let (trigger, triggers) = tokio::sync::mpsc::channel::<String>(4);
    let retrain_on_drift = policy
        .as_ref()
        .is_some_and(|p| p.on.contains(&retrain::Trigger::Drift));
    if args.monitor_window > 0 {
        // Drift found in a window of served rows becomes a `drift.detected` event.
        let services = open_services(args.tracking_uri.as_deref()).await?;
        let runtime = tokio::runtime::Handle::current();
        let trigger = trigger.clone();
        let on_drift: kaizen_serving::monitor::OnDrift = Arc::new(move |model, report| {
            let services = services.clone();
            let subject = format!("models:/{}/{}", model.name, model.version);
            let drifted: Vec<String> = report
                .columns
                .iter()
                .filter(|c| c.drifted)
                .map(|c| c.column.clone())
                .collect();
            let mut payload = serde_json::json!({
                "name": model.name,
                "version": model.version,
                "source": "serving",
                "drifted_columns": drifted,
                "share": report.dataset.share,
                "columns": report.dataset.columns,
            });
            eprintln!(
                "drift detected in served rows of {subject}: {}",
                payload["drifted_columns"]
            );
            let trigger = trigger.clone();
            let report = report.clone();
            let run_name = format!("drift-{}-v{}", model.name, model.version);
            runtime.spawn(async move {
                // The window's report as a run of the `monitoring` experiment.
                match super::drift::record_report(
                    &services,
                    "monitoring",
                    &run_name,
                    &report,
                    &format!("served rows of {subject} · training reference"),
                    vec![kaizen_core::Param::new("model", subject.clone())],
                    "kaizen serve",
                )
                .await
                {
                    Ok(run_id) => payload["report_run_id"] = serde_json::json!(run_id),
                    Err(e) => {
                        tracing::warn!(error = format!("{e:#}"), "cannot record the drift report")
                    }
                }
                kaizen_tracking::emit(
                    services.store.as_ref(),
                    kaizen_core::events::DRIFT_DETECTED,
                    &subject,
                    payload,
                )
                .await;
                if retrain_on_drift {
                    // Full: a retraining is already asked for.
                    let _ = trigger.try_send(format!("drift in {subject}"));
                }
            });
        });
        let mut slot = kaizen_serving::MonitorSlot::new(args.monitor_window, Some(on_drift));
        slot.max_age = max_age;
        state.monitor = Some(Arc::new(slot));
    }
    // Performance drift from feedback becomes a `performance.degraded` event (and a retraining
    // when the policy asks for one).
    {
        let services = open_services(args.tracking_uri.as_deref()).await?;
        let runtime = tokio::runtime::Handle::current();
        let trigger = trigger.clone();
        let retrain_on_performance = policy
            .as_ref()
            .is_some_and(|p| p.on.contains(&retrain::Trigger::Performance));
        let on_degraded: kaizen_serving::monitor::OnDegraded = Arc::new(
            move |model, live, expected| {
                let services = services.clone();
                let subject = format!("models:/{}/{}", model.name, model.version);
                let metric = if model.task() == kaizen_ml::Task::Regression {
                    "mae"
                } else {
                    "accuracy"
                };
                eprintln!(
                    "performance degraded for {subject}: live {metric} {live:.4}, {expected:.4} on its test split"
                );
                let payload = serde_json::json!({
                    "name": model.name,
                    "version": model.version,
                    "metric": metric,
                    "live": live,
                    "expected": expected,
                });
                let trigger = trigger.clone();
                runtime.spawn(async move {
                    kaizen_tracking::emit(
                        services.store.as_ref(),
                        kaizen_core::events::PERFORMANCE_DEGRADED,
                        &subject,
                        payload,
                    )
                    .await;
                    if retrain_on_performance {
                        let _ = trigger.try_send(format!("performance of {subject}"));
                    }
                });
            },
        );
        state.performance = Some(Arc::new(kaizen_serving::monitor::PerformanceWatch::new(
            args.performance_tolerance,
            Some(on_degraded),
        )));
    }
    let feedback_dir = settings::home().join("feedback");
    let (feedback_log, feedback_writer) = FeedbackLog::open(&feedback_dir, args.log_queue)
        .with_context(|| format!("cannot open the feedback log in {}", feedback_dir.display()))?;
    state.feedback_log = Some(feedback_log);
    let mut deployment = None;
    if let Some(name) = plan.name {
        let services = open_services(args.tracking_uri.as_deref()).await?;
        let live = Deployment {
            services: services.clone(),
            name: name.clone(),
            endpoint: format!("http://{local}"),
            since: kaizen_core::now_millis(),
            arms,
        };
        if !live.arms.is_empty() {
            live.record("kaizen serve started").await;
        }
        for (alias, slot) in follow {
            follow_alias(
                services.clone(),
                name.clone(),
                alias,
                slot,
                Duration::from_millis(args.poll_ms.max(50)),
                live.clone(),
            );
        }
        deployment = Some(live);
    }
    let retrained = match policy {
        Some(policy) => {
            let (news, retrained) = tokio::sync::mpsc::unbounded_channel();
            eprintln!(
                "retraining: {} on {} (policy {})",
                policy.model,
                policy
                    .on
                    .iter()
                    .map(|t| match t {
                        retrain::Trigger::Drift => "drift".to_string(),
                        retrain::Trigger::Performance => "performance".to_string(),
                        retrain::Trigger::Schedule =>
                            format!("schedule '{}'", policy.schedule.clone().unwrap_or_default()),
                    })
                    .collect::<Vec<_>>()
                    .join(", "),
                policy.dir.display()
            );
            spawn_retrainer(policy, args.tracking_uri.clone(), triggers, news);
            Some(retrained)
        }
        None => None,
    };
    drop(trigger);
    let events = match &args.events {
        Some(path) => {
            let services = open_services(args.tracking_uri.as_deref()).await?;
            Some(super::events::spawn_dispatcher(&services, path)?)
        }
        None => None,
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        kaizen_serving::serve(listener, state, async move {
            let _ = stopped.await;
        })
        .await?;
        if let Some(live) = deployment {
            live.retire().await;
        }
        // The server (and with it every sender) is gone: the writer drains what is queued.
        tokio::task::spawn_blocking(move || {
            feedback_writer.join();
            if let Some(writer) = writer {
                writer.join();
            }
        })
        .await?;
        if let Some(events) = events {
            events.stop().await;
        }
        Ok(())
    });
    Ok(Running {
        addr: local,
        retrained,
        stop,
        task,
    })
}

/// Runs the policy when a trigger arrives (drift) or its schedule ticks, one retraining at a
/// time; after a retraining that trained a version, drift triggers wait out the cooldown.
fn spawn_retrainer(
    policy: retrain::Policy,
    tracking_uri: Option<String>,
    mut triggers: tokio::sync::mpsc::Receiver<String>,
    news: tokio::sync::mpsc::UnboundedSender<RetrainNews>,
) {
    let cron = policy
        .schedule
        .as_ref()
        .filter(|_| policy.on.contains(&retrain::Trigger::Schedule))
        .and_then(|text| policy.cron(text).ok());
    tokio::spawn(async move {
        let cooldown = policy.cooldown_span();
        let mut last_trained: Option<std::time::Instant> = None;
        loop {
            let tick = async {
                match &cron {
                    Some(cron) => {
                        let now = chrono::Local::now();
                        match cron.find_next_occurrence(&now, false) {
                            Ok(next) => {
                                tokio::time::sleep((next - now).to_std().unwrap_or_default()).await
                            }
                            Err(_) => std::future::pending::<()>().await,
                        }
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            let reason = tokio::select! {
                received = triggers.recv() => match received {
                    Some(reason) => reason,
                    None => return,
                },
                _ = tick => "schedule".to_string(),
            };
            let scheduled = reason == "schedule";
            if !scheduled && last_trained.is_some_and(|t| t.elapsed() < cooldown) {
                eprintln!(
                    "retraining not started for {reason}: the last one was less than {} ago (cooldown)",
                    policy.cooldown
                );
                continue;
            }
            eprintln!("retraining {}: {reason}", policy.model);
            // "drift in ...", "performance of ...", "schedule": the trigger's name.
            let trigger = reason.split(' ').next().unwrap_or("drift").to_string();
            let _ = news.send(RetrainNews::Started(reason));
            match retrain::retrain_once(&policy, tracking_uri.as_deref(), &trigger).await {
                Ok(outcome) => {
                    eprintln!("{}", retrain::describe(&outcome));
                    let trained = outcome.retrained_version.is_some();
                    let _ = news.send(RetrainNews::Finished(Box::new(outcome)));
                    if trained {
                        last_trained = Some(std::time::Instant::now());
                        // Triggers that came meanwhile describe the version it may replace.
                        while triggers.try_recv().is_ok() {}
                    }
                }
                Err(e) => {
                    eprintln!("retraining of {} failed: {e:#}", policy.model);
                    let _ = news.send(RetrainNews::Failed(format!("{e:#}")));
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::parse_model_uri;

    #[test]
    fn model_uris() {
        assert_eq!(
            parse_model_uri("models:/m@champion").unwrap(),
            ("m", "champion")
        );
        assert_eq!(parse_model_uri("models:/m/3").unwrap(), ("m", "3"));
        for bad in ["models:/m", "models:/@x", "models:/a/b/3", "m/3"] {
            assert!(parse_model_uri(bad).is_err(), "{bad}");
        }
    }
}
