//! The second half of `kaizen quickstart`: the production loop on the order-value model.
//!
//! The model learns an order's total price from the orders before June 2024
//! (`order-value.toml`) and is served as `champion` with drift monitoring and the retraining
//! policy (`retrain.toml`). The orders from June on are replayed against it with their prices
//! raised 25% (a price change the model never saw) and their actual totals posted as feedback.
//! A window of served rows drifts from the training reference, the `drift.detected` event goes
//! to the subscribers, the policy retrains on the orders plus the labeled traffic, the gate
//! compares the new version with the champion on the same held-out rows, and the server swaps
//! to the winner; the rest of the traffic shows which version answers and how well.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser as _;
use kaizen_core::Error;
use kaizen_pipeline::Pipeline;
use serde::Serialize;
use serde_json::{Value, json};

use crate::cli::{Cli, Command};
use crate::commands::pipeline::{Tracked, report_outcome};
use crate::commands::serve::RetrainNews;
use crate::commands::{retrain, serve};

const MODEL: &str = "electronics-order-value";
const ALIAS: &str = "champion";
const PIPELINE_FILE: &str = "order-value.toml";
const POLICY_FILE: &str = "retrain.toml";
/// Orders from this day on are the replayed traffic (the pipeline's `until`).
const SINCE: &str = "2024-06-01";
/// The price change the traffic carries.
const PRICE_RISE: f64 = 1.25;
const WINDOW_ROWS: usize = 500;
const ROWS_PER_REQUEST: usize = 20;
/// At most this many rows are replayed until a retraining trains a version; then these many
/// more after the swap.
const DRIFT_ROWS: usize = 3_000;
const CHECK_ROWS: usize = 500;
const RETRAIN_TIMEOUT: Duration = Duration::from_secs(300);

/// What the loop showed.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct LoopSummary {
    pub(crate) model: String,
    pub(crate) endpoint: String,
    /// The version served first (trained before the price change).
    pub(crate) served_version: String,
    pub(crate) replayed_rows: usize,
    pub(crate) drift_detected: bool,
    pub(crate) drifted_columns: Vec<String>,
    pub(crate) retrain: Option<retrain::Outcome>,
    pub(crate) retrained_version: Option<String>,
    pub(crate) promoted: bool,
    /// The version that answered the traffic after the retraining.
    pub(crate) answering_version: String,
    /// Mean absolute error of the served totals on the replayed traffic, before the retraining
    /// and after.
    pub(crate) mae_before: f64,
    pub(crate) mae_after: f64,
}

/// One replayed order: its columns as the model takes them, and its actual total.
struct Order {
    product: String,
    unit_price: f64,
    quantity: f64,
    total: f64,
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// The orders from [`SINCE`] on, oldest first, with the price change applied.
async fn traffic(data: &Path) -> anyhow::Result<Vec<Order>> {
    let table = kaizen_data::sql_files(
        &[kaizen_data::FileTable::new(
            "sales",
            data,
            kaizen_data::Format::Csv,
        )],
        &format!(
            "SELECT \"Product Type\" AS product, CAST(\"Unit Price\" AS DOUBLE) AS price, \
             CAST(\"Quantity\" AS DOUBLE) AS quantity FROM sales \
             WHERE CAST(\"Purchase Date\" AS DATE) >= DATE '{SINCE}' \
             ORDER BY \"Purchase Date\", \"Customer ID\", \"SKU\""
        ),
    )
    .await
    .with_context(|| format!("cannot read the orders in {}", data.display()))?;
    Ok(kaizen_data::json_rows(&table)
        .into_iter()
        .filter_map(|row| {
            let unit_price = round2(row["price"].as_f64()? * PRICE_RISE);
            let quantity = row["quantity"].as_f64()?;
            Some(Order {
                product: row["product"].as_str()?.to_string(),
                unit_price,
                quantity,
                total: round2(unit_price * quantity),
            })
        })
        .collect())
}

/// Scores `orders` in requests of [`ROWS_PER_REQUEST`], posting each request's actual totals as
/// feedback; answers the absolute errors and the version that answered last.
async fn replay(
    http: &reqwest::Client,
    endpoint: &str,
    orders: &[Order],
) -> anyhow::Result<(Vec<f64>, String)> {
    let mut errors = Vec::with_capacity(orders.len());
    let mut version = String::new();
    for chunk in orders.chunks(ROWS_PER_REQUEST) {
        let body = json!({"dataframe_split": {
            "columns": ["Product Type", "Unit Price", "Quantity"],
            "data": chunk.iter().map(|o| json!([o.product, o.unit_price, o.quantity])).collect::<Vec<_>>(),
        }});
        let response = http
            .post(format!("{endpoint}/invocations"))
            .json(&body)
            .send()
            .await
            .context("the model server did not answer")?;
        let status = response.status();
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string()
        };
        let request_id = header("x-request-id");
        version = header("x-kaizen-model-version");
        let answer: Value = response.json().await.context("the model server's answer")?;
        if !status.is_success() {
            anyhow::bail!("the model server answered {status}: {answer}");
        }
        let predictions = answer["predictions"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        for (order, predicted) in chunk.iter().zip(&predictions) {
            errors.push((predicted.as_f64().unwrap_or(f64::NAN) - order.total).abs());
        }
        let actual: Vec<f64> = chunk.iter().map(|o| o.total).collect();
        http.post(format!("{endpoint}/feedback"))
            .json(&json!({"request_id": request_id, "actual": actual}))
            .send()
            .await
            .context("the feedback was not taken")?
            .error_for_status()
            .context("the feedback was refused")?;
    }
    Ok((errors, version))
}

fn mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len().max(1) as f64
}

/// `/metrics`' counter `name` (summed over labels).
async fn metric(http: &reqwest::Client, endpoint: &str, name: &str) -> f64 {
    let Ok(response) = http.get(format!("{endpoint}/metrics")).send().await else {
        return 0.0;
    };
    let text = response.text().await.unwrap_or_default();
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Runs the loop in `dir` (the electronics project); `events` is an events file whose
/// subscribers get what happens.
pub(crate) async fn run(dir: &Path, events: Option<PathBuf>) -> anyhow::Result<LoopSummary> {
    let pipeline = Pipeline::load_file(&dir.join(PIPELINE_FILE))?;
    let tracked = Tracked::open(None).await?;
    let opts = tracked.options(
        Vec::new(),
        false,
        2,
        vec![("kaizen.trigger".into(), "quickstart".into())],
    );
    let outcome = tracked.run(&pipeline, &opts).await;
    let services = tracked.services.clone();
    tracked.close().await;
    let summary = outcome?;
    report_outcome(&pipeline.meta.name, &summary);
    if !summary.succeeded {
        return Err(Error::invalid(format!(
            "the pipeline '{}' failed: `kaizen pipeline logs {}` shows why",
            pipeline.meta.name, summary.run_id
        ))
        .into());
    }
    let (trained, _) = retrain::registered_version(&services, &pipeline, &summary, MODEL).await?;
    let base = trained.model_version;
    // A rerun starts from the same place: the version trained before the price change.
    let holder = services
        .registry
        .get_version_by_alias(MODEL, ALIAS)
        .await
        .map(|v| v.version.to_string())
        .ok();
    if holder.as_deref() != Some(base.as_str()) {
        let actor = kaizen_tracking::Actor {
            user: std::env::var("USER").ok(),
            reason: Some("kaizen quickstart: the loop starts from the base model".into()),
        };
        services
            .registry
            .set_alias(MODEL, ALIAS, &base, &actor)
            .await?;
        eprintln!("  {MODEL}@{ALIAS} set back to version {base}, trained before {SINCE}");
    }
    let last_event = services
        .store
        .last_events(1)
        .await?
        .first()
        .map_or(0, |e| e.id);

    let mut argv: Vec<String> = [
        "kaizen",
        "serve",
        &format!("models:/{MODEL}@{ALIAS}"),
        "--port",
        "0",
        "--poll-ms",
        "100",
        "--monitor-window",
        &WINDOW_ROWS.to_string(),
        "--retrain",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    argv.push(dir.join(POLICY_FILE).display().to_string());
    if let Some(events) = &events {
        argv.push("--events".into());
        argv.push(events.display().to_string());
    }
    let Command::Serve(args) = Cli::try_parse_from(&argv)?.command else {
        unreachable!("the arguments name the serve command");
    };
    let mut running = serve::start(args).await?;
    let endpoint = format!("http://{}", running.addr);
    let outcome = drive(&mut running, &endpoint, dir, &base).await;
    running.stop().await?;
    let mut result = outcome?;
    result.drifted_columns = drifted_columns(&services, last_event).await;
    Ok(result)
}

/// The columns of the first `drift.detected` event after `after`.
async fn drifted_columns(services: &kaizen_tracking::Services, after: i64) -> Vec<String> {
    let events = services
        .store
        .events_after(after, 1000)
        .await
        .unwrap_or_default();
    events
        .iter()
        .find(|e| e.kind == kaizen_core::events::DRIFT_DETECTED)
        .and_then(|e| serde_json::from_value(e.payload["drifted_columns"].clone()).ok())
        .unwrap_or_default()
}

async fn drive(
    running: &mut serve::Running,
    endpoint: &str,
    dir: &Path,
    base: &str,
) -> anyhow::Result<LoopSummary> {
    let orders = traffic(&dir.join("data").join("electronic_sales.csv")).await?;
    if orders.len() < DRIFT_ROWS + CHECK_ROWS {
        return Err(Error::invalid(format!(
            "only {} orders from {SINCE} on; the loop replays {}",
            orders.len(),
            DRIFT_ROWS + CHECK_ROWS
        ))
        .into());
    }
    let http = reqwest::Client::new();
    eprintln!(
        "  serving models:/{MODEL}@{ALIAS} (version {base}) on {endpoint}: drift checked every \
         {WINDOW_ROWS} rows, retraining by {POLICY_FILE}"
    );
    eprintln!(
        "  replaying the orders from {SINCE} on with prices {:.0}% higher, each request's actual \
         totals posted to /feedback, until a retraining trains a version (at most {DRIFT_ROWS})",
        (PRICE_RISE - 1.0) * 100.0
    );
    let started = Instant::now();
    let mut summary = LoopSummary {
        model: MODEL.into(),
        endpoint: endpoint.into(),
        served_version: base.into(),
        replayed_rows: 0,
        drift_detected: false,
        drifted_columns: Vec::new(),
        retrain: None,
        retrained_version: None,
        promoted: false,
        answering_version: base.into(),
        mae_before: f64::NAN,
        mae_after: f64::NAN,
    };
    let news = running
        .retrained
        .as_mut()
        .context("the server runs no retraining policy")?;
    // Replay until a retraining trained a version; while one runs, wait for it.
    let mut before = Vec::new();
    let mut sent = 0;
    let mut running_since: Option<Instant> = None;
    let mut grace_until: Option<Instant> = None;
    loop {
        let mut news_now = Vec::new();
        if let Some(since) = running_since {
            let left = RETRAIN_TIMEOUT.saturating_sub(since.elapsed());
            match tokio::time::timeout(left, news.recv()).await {
                Ok(Some(n)) => news_now.push(n),
                Ok(None) => anyhow::bail!("the retrainer stopped"),
                Err(_) => anyhow::bail!(
                    "no retraining outcome within {} s",
                    RETRAIN_TIMEOUT.as_secs()
                ),
            }
        }
        while let Ok(n) = news.try_recv() {
            news_now.push(n);
        }
        for n in news_now {
            match n {
                RetrainNews::Started(reason) => {
                    eprintln!("  alert -> retraining ({reason})");
                    running_since = Some(Instant::now());
                }
                RetrainNews::Finished(outcome) => {
                    running_since = None;
                    let trained = outcome.retrained_version.is_some();
                    summary.retrained_version = outcome.retrained_version.clone();
                    summary.promoted = outcome.promoted;
                    summary.retrain = Some(*outcome);
                    if trained {
                        break;
                    }
                }
                RetrainNews::Failed(message) => anyhow::bail!("the retraining failed: {message}"),
            }
        }
        if summary.retrained_version.is_some() {
            break;
        }
        if running_since.is_some() {
            continue;
        }
        if sent + ROWS_PER_REQUEST > DRIFT_ROWS {
            // Every window compared, a moment for a last trigger, then stop.
            let windows = (sent / WINDOW_ROWS) as f64;
            let deadline = Instant::now() + Duration::from_secs(30);
            while metric(&http, endpoint, "kaizen_drift_windows_total").await < windows
                && Instant::now() < deadline
            {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let grace = *grace_until.get_or_insert(Instant::now() + Duration::from_secs(2));
            if Instant::now() > grace {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        }
        let (errors, _) = replay(&http, endpoint, &orders[sent..sent + ROWS_PER_REQUEST]).await?;
        before.extend(errors);
        sent += ROWS_PER_REQUEST;
    }
    summary.drift_detected =
        metric(&http, endpoint, "kaizen_drift_windows_drifted_total").await > 0.0;
    summary.mae_before = mean(&before);
    // After a promotion the server follows the alias within its poll interval.
    let expected = match (&summary.retrained_version, summary.promoted) {
        (Some(v), true) => v.clone(),
        _ => base.to_string(),
    };
    // The swap: /health names the version served.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let health: Value = http
            .get(format!("{endpoint}/health"))
            .send()
            .await
            .context("the model server did not answer")?
            .json()
            .await
            .context("the model server's /health")?;
        if health["version"].as_str() == Some(expected.as_str()) || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let end = sent + CHECK_ROWS;
    let (after, version) = replay(&http, endpoint, &orders[sent..end]).await?;
    summary.answering_version = version;
    summary.replayed_rows = end;
    summary.mae_after = mean(&after);
    tracing::info!(
        seconds = started.elapsed().as_secs_f64(),
        "the serving loop ran"
    );
    Ok(summary)
}
