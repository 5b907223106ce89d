//! kaizen-notify: delivers the event log to subscribers.
//!
//! The event log (`EventStore`) is an outbox: services append events as they change things, and
//! the [`Dispatcher`] (run by `kaizen server`, or `kaizen events dispatch`) delivers each new
//! event to every subscriber that wants its kind: a webhook (the event as JSON), a Slack-style
//! webhook (`{"text": ...}`), a JSON-lines log file, or a command (the event on stdin and in
//! `KAIZEN_EVENT`). A delivery is retried with exponential backoff; the subscriber's cursor
//! moves past an event only once it is delivered or given up (logged), so a restart delivers
//! what was missed and nothing twice.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use kaizen_store::{Event, MetadataStore};
use serde::Deserialize;
use serde_json::{Value, json};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum NotifyError {
    #[error("{path}: {message}")]
    Config { path: PathBuf, message: String },
    #[error(transparent)]
    Store(#[from] kaizen_core::Error),
}

/// How a subscriber receives events.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Target {
    /// POSTs the event as JSON: `{id, timestamp, kind, subject, payload}`.
    Webhook { url: String },
    /// POSTs `{"text": "..."}`, the shape Slack's incoming webhooks take.
    Slack { url: String },
    /// Appends the event as one JSON line.
    Log { path: PathBuf },
    /// Runs `sh -c command` with the event on stdin and in `KAIZEN_EVENT`.
    Command { command: String },
}

/// One subscriber of `events.toml`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Subscriber {
    /// Names the subscriber's delivery cursor; keep it when editing the file.
    pub name: String,
    /// Event kinds it wants (`run.finished`, ...); empty: all.
    #[serde(default)]
    pub events: Vec<String>,
    /// Attempts per event before it is given up.
    #[serde(default = "default_attempts")]
    pub max_attempts: u32,
    #[serde(flatten)]
    pub target: Target,
}

fn default_attempts() -> u32 {
    5
}

/// `events.toml`: `[[subscribers]]` tables.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub subscribers: Vec<Subscriber>,
}

impl Config {
    /// Reads and checks a configuration file.
    pub fn load(path: &Path) -> Result<Config, NotifyError> {
        let err = |message: String| NotifyError::Config {
            path: path.to_path_buf(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        let config: Config = toml::from_str(&text).map_err(|e| err(e.message().to_string()))?;
        let mut names = std::collections::BTreeSet::new();
        for s in &config.subscribers {
            if s.name.trim().is_empty() {
                return Err(err("a subscriber has an empty name".into()));
            }
            if !names.insert(s.name.clone()) {
                return Err(err(format!("two subscribers are named `{}`", s.name)));
            }
            if let Some(unknown) = s
                .events
                .iter()
                .find(|k| !kaizen_core::events::ALL.contains(&k.as_str()))
            {
                return Err(err(format!(
                    "subscriber `{}`: unknown event kind `{unknown}` (kinds: {})",
                    s.name,
                    kaizen_core::events::ALL.join(", ")
                )));
            }
            if s.max_attempts == 0 {
                return Err(err(format!(
                    "subscriber `{}`: max_attempts must be at least 1",
                    s.name
                )));
            }
        }
        Ok(config)
    }
}

/// The JSON of an event, as webhooks, the log file and commands receive it.
pub fn event_json(event: &Event) -> Value {
    json!({
        "id": event.id,
        "timestamp": event.timestamp,
        "kind": event.kind,
        "subject": event.subject,
        "payload": event.payload,
    })
}

/// One line for people (and Slack).
pub fn summary(event: &Event) -> String {
    let p = &event.payload;
    let s = |k: &str| p.get(k).and_then(Value::as_str).unwrap_or("?").to_string();
    let detail = match event.kind.as_str() {
        kaizen_core::events::ALIAS_MOVED => format!(
            "{}@{} -> version {}{}",
            s("name"),
            s("alias"),
            s("version"),
            p.get("previous_version")
                .and_then(Value::as_str)
                .map(|v| format!(" (was {v})"))
                .unwrap_or_default()
        ),
        kaizen_core::events::MODEL_VERSION_REGISTERED => {
            format!("{} version {} registered", s("name"), s("version"))
        }
        kaizen_core::events::RUN_FINISHED | kaizen_core::events::RUN_FAILED => {
            format!("run {} ({}) {}", s("run_name"), event.subject, s("status"))
        }
        _ => event.subject.clone(),
    };
    format!("[kaizen] {}: {detail}", event.kind)
}

/// Delivers events to subscribers.
pub struct Dispatcher {
    store: Arc<dyn MetadataStore>,
    config: Config,
    http: reqwest::Client,
    /// The first retry's wait; each retry doubles it (at most 10 s).
    pub backoff: Duration,
    /// How often to look for new events.
    pub poll: Duration,
}

impl Dispatcher {
    pub fn new(store: Arc<dyn MetadataStore>, config: Config) -> Dispatcher {
        Dispatcher {
            store,
            config,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("an HTTP client"),
            backoff: Duration::from_millis(200),
            poll: Duration::from_millis(250),
        }
    }

    /// Delivers until `stop` resolves.
    pub async fn run(&self, stop: impl std::future::Future<Output = ()>) {
        tokio::pin!(stop);
        loop {
            if let Err(e) = self.deliver_pending().await {
                tracing::warn!(error = %e, "event delivery stopped; trying again");
            }
            tokio::select! {
                _ = &mut stop => return,
                _ = tokio::time::sleep(self.poll) => {}
            }
        }
    }

    /// Delivers every event not yet delivered to each subscriber; answers how many deliveries
    /// were made.
    pub async fn deliver_pending(&self) -> Result<usize, NotifyError> {
        let mut delivered = 0;
        for sub in &self.config.subscribers {
            loop {
                let cursor = self.store.event_cursor(&sub.name).await?;
                let events = self.store.events_after(cursor, 100).await?;
                if events.is_empty() {
                    break;
                }
                for event in &events {
                    if (sub.events.is_empty() || sub.events.contains(&event.kind))
                        && self.deliver_with_retries(sub, event).await
                    {
                        delivered += 1;
                    }
                    self.store.set_event_cursor(&sub.name, event.id).await?;
                }
            }
        }
        Ok(delivered)
    }

    async fn deliver_with_retries(&self, sub: &Subscriber, event: &Event) -> bool {
        let mut wait = self.backoff;
        for attempt in 1..=sub.max_attempts {
            match self.deliver(sub, event).await {
                Ok(()) => return true,
                Err(e) if attempt < sub.max_attempts => {
                    tracing::info!(subscriber = %sub.name, event = event.id, attempt, error = %e, "delivery failed; retrying");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(10));
                }
                Err(e) => {
                    tracing::error!(subscriber = %sub.name, event = event.id, kind = %event.kind, attempts = attempt, error = %e, "event given up");
                }
            }
        }
        false
    }

    async fn deliver(&self, sub: &Subscriber, event: &Event) -> Result<(), String> {
        match &sub.target {
            Target::Webhook { url } => self.post(url, &event_json(event)).await,
            Target::Slack { url } => self.post(url, &json!({ "text": summary(event) })).await,
            Target::Log { path } => {
                use std::io::Write;
                let mut file = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                writeln!(file, "{}", event_json(event)).map_err(|e| e.to_string())
            }
            Target::Command { command } => {
                use tokio::io::AsyncWriteExt;
                let body = event_json(event).to_string();
                let mut child = tokio::process::Command::new("sh")
                    .arg("-c")
                    .arg(command)
                    .env("KAIZEN_EVENT", &body)
                    .env("KAIZEN_EVENT_KIND", &event.kind)
                    .stdin(std::process::Stdio::piped())
                    .spawn()
                    .map_err(|e| format!("cannot run `{command}`: {e}"))?;
                if let Some(mut stdin) = child.stdin.take() {
                    let _ = stdin.write_all(body.as_bytes()).await;
                }
                let status = child.wait().await.map_err(|e| e.to_string())?;
                if status.success() {
                    Ok(())
                } else {
                    Err(format!("`{command}` exited with {status}"))
                }
            }
        }
    }

    async fn post(&self, url: &str, body: &Value) -> Result<(), String> {
        let response = self
            .http
            .post(url)
            .json(body)
            .send()
            .await
            .map_err(|e| format!("{url}: {e}"))?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(format!("{url} answered {}", response.status()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_is_checked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.toml");
        std::fs::write(
            &path,
            r#"
[[subscribers]]
name = "ops"
kind = "slack"
url = "http://127.0.0.1:9/hook"
events = ["alias.moved", "drift.detected"]

[[subscribers]]
name = "file"
kind = "log"
path = "events.log"
"#,
        )
        .unwrap();
        let config = Config::load(&path).unwrap();
        assert_eq!(config.subscribers.len(), 2);
        assert_eq!(config.subscribers[0].max_attempts, 5);
        assert!(matches!(config.subscribers[1].target, Target::Log { .. }));

        std::fs::write(
            &path,
            "[[subscribers]]\nname = \"x\"\nkind = \"log\"\npath = \"a\"\nevents = [\"drift\"]\n",
        )
        .unwrap();
        let err = Config::load(&path).unwrap_err().to_string();
        assert!(err.contains("unknown event kind `drift`"), "{err}");
        std::fs::write(&path, "[[subscribers]]\nname = \"x\"\nkind = \"fax\"\n").unwrap();
        assert!(Config::load(&path).is_err());
    }

    #[test]
    fn slack_text_says_what_moved() {
        let event = Event {
            id: 3,
            timestamp: 0,
            kind: kaizen_core::events::ALIAS_MOVED.into(),
            subject: "models:/m@champion".into(),
            payload: json!({"name": "m", "alias": "champion", "version": "2", "previous_version": "1"}),
        };
        assert_eq!(
            summary(&event),
            "[kaizen] alias.moved: m@champion -> version 2 (was 1)"
        );
    }
}
