//! `kaizen events tail|dispatch`: the event log of the local home, and delivery to the
//! subscribers of an events file (webhooks, Slack, a log file, a command).

use std::process::ExitCode;
use std::time::Duration;

use kaizen_store::Event;
use kaizen_tracking::Services;

use crate::cli::{EventsCommand, EventsDispatchArgs, EventsTailArgs};
use crate::settings;

pub async fn run(cmd: EventsCommand) -> anyhow::Result<ExitCode> {
    let services = settings::open_home_services().await?;
    match cmd {
        EventsCommand::Tail(args) => tail(&services, args).await,
        EventsCommand::Dispatch(args) => dispatch(&services, args).await,
    }
}

fn print(event: &Event, json: bool) {
    if json {
        println!("{}", kaizen_notify::event_json(event));
    } else {
        let time = chrono::DateTime::from_timestamp_millis(event.timestamp)
            .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
            .unwrap_or_default();
        println!(
            "{:>6}  {time}  {}",
            event.id,
            kaizen_notify::summary(event).trim_start_matches("[kaizen] ")
        );
    }
}

async fn tail(services: &Services, args: EventsTailArgs) -> anyhow::Result<ExitCode> {
    if let Some(bad) = args
        .kinds
        .iter()
        .find(|k| !kaizen_core::events::ALL.contains(&k.as_str()))
    {
        return Err(kaizen_core::Error::invalid(format!(
            "--kind `{bad}` is not an event kind (kinds: {})",
            kaizen_core::events::ALL.join(", ")
        ))
        .into());
    }
    let wanted = |e: &Event| args.kinds.is_empty() || args.kinds.contains(&e.kind);
    let store = &services.store;
    // The last n of the wanted kinds: read back until enough are found.
    let mut events: Vec<Event> = store
        .last_events(args.lines.max(0) * 20 + 100)
        .await?
        .into_iter()
        .filter(|e| wanted(e))
        .collect();
    let skip = events.len().saturating_sub(args.lines.max(0) as usize);
    events.drain(..skip);
    let mut last = events.last().map_or(0, |e| e.id);
    if last == 0 {
        last = store.last_events(1).await?.first().map_or(0, |e| e.id);
    }
    for e in &events {
        print(e, args.json);
    }
    if !args.follow {
        return Ok(ExitCode::SUCCESS);
    }
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return Ok(ExitCode::SUCCESS),
            _ = tokio::time::sleep(Duration::from_millis(250)) => {}
        }
        for e in store.events_after(last, 1000).await? {
            last = e.id;
            if wanted(&e) {
                print(&e, args.json);
            }
        }
    }
}

async fn dispatch(services: &Services, args: EventsDispatchArgs) -> anyhow::Result<ExitCode> {
    let path = args
        .config
        .unwrap_or_else(|| settings::home().join("events.toml"));
    let config = kaizen_notify::Config::load(&path)
        .map_err(|e| kaizen_core::Error::invalid(e.to_string()))?;
    let dispatcher = kaizen_notify::Dispatcher::new(services.store.clone(), config);
    if args.once {
        let n = dispatcher
            .deliver_pending()
            .await
            .map_err(|e| kaizen_core::Error::invalid(e.to_string()))?;
        eprintln!("delivered {n} event(s)");
        return Ok(ExitCode::SUCCESS);
    }
    eprintln!("delivering events from {} (Ctrl-C stops)", path.display());
    dispatcher
        .run(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await;
    Ok(ExitCode::SUCCESS)
}

/// Event delivery running beside a server.
pub(crate) struct RunningDispatcher {
    dispatcher: std::sync::Arc<kaizen_notify::Dispatcher>,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl RunningDispatcher {
    /// Stops polling, then delivers what the last moments appended.
    pub(crate) async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
        if let Err(e) = self.dispatcher.deliver_pending().await {
            tracing::warn!(error = %e, "the last events were not delivered");
        }
    }
}

/// Starts delivering the events of `services`' store to the subscribers of `path`.
pub(crate) fn spawn_dispatcher(
    services: &Services,
    path: &std::path::Path,
) -> anyhow::Result<RunningDispatcher> {
    let config = kaizen_notify::Config::load(path)?;
    eprintln!(
        "events: {} subscriber(s) from {}",
        config.subscribers.len(),
        path.display()
    );
    let dispatcher = std::sync::Arc::new(kaizen_notify::Dispatcher::new(
        services.store.clone(),
        config,
    ));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = std::sync::Arc::clone(&dispatcher);
    let task = tokio::spawn(async move {
        running
            .run(async move {
                let _ = stopped.await;
            })
            .await
    });
    Ok(RunningDispatcher {
        dispatcher,
        stop,
        task,
    })
}
