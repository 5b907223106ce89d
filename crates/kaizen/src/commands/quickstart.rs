//! `kaizen quickstart`: the smallest whole loop on the embedded default. It opens the local home
//! (SQLite + local artifacts), trains a small linear model by gradient descent on a seeded
//! synthetic data set, tracks the run (params, a metric per epoch, tags, the model as an artifact),
//! registers the model and points the `champion` alias at it.

use std::process::ExitCode;

use anyhow::Context;
use kaizen_artifacts::ArtifactPath;
use kaizen_core::{Metric, Tag};
use kaizen_tracking::{Actor, NewModelVersion, NewRun, Services};
use serde_json::json;

use crate::cli::QuickstartArgs;
use crate::{printer, settings};

const EXPERIMENT: &str = "quickstart";
const MODEL: &str = "quickstart-linear";

/// A seeded linear congruential generator: the data set is the same on every machine.
struct Lcg(u64);

impl Lcg {
    fn next_f64(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// `y = 3x + 2 + noise`, x in [0, 1).
fn dataset(n: usize) -> Vec<(f64, f64)> {
    let mut rng = Lcg(42);
    (0..n)
        .map(|_| {
            let x = rng.next_f64();
            let noise = (rng.next_f64() - 0.5) * 0.2;
            (x, 3.0 * x + 2.0 + noise)
        })
        .collect()
}

fn rmse(data: &[(f64, f64)], w: f64, b: f64) -> f64 {
    (data
        .iter()
        .map(|(x, y)| (w * x + b - y).powi(2))
        .sum::<f64>()
        / data.len() as f64)
        .sqrt()
}

pub async fn run(args: QuickstartArgs) -> anyhow::Result<ExitCode> {
    let store_uri = settings::default_store_uri();
    let artifacts_uri = settings::default_artifacts_uri();
    let services = Services::open(&store_uri, &artifacts_uri)
        .await
        .with_context(|| format!("cannot open the local home {}", settings::home().display()))?;
    let tracking = &services.tracking;

    let experiment_id = match tracking.get_experiment_by_name(EXPERIMENT).await {
        Ok(e) => e.experiment_id,
        Err(e) if e.is_not_found() => tracking.create_experiment(EXPERIMENT, None, &[]).await?,
        Err(e) => return Err(e.into()),
    };
    let user = std::env::var("USER").unwrap_or_else(|_| "kaizen".into());
    let run = tracking
        .create_run(NewRun {
            experiment_id: Some(experiment_id.clone()),
            user_id: Some(user.clone()),
            tags: vec![
                Tag::new(kaizen_core::tags::SOURCE_NAME, "kaizen quickstart"),
                Tag::new(kaizen_core::tags::USER, user.clone()),
            ],
            ..NewRun::default()
        })
        .await?;
    let run_id = run.info.run_id.clone();

    let data = dataset(1_000);
    let (train, test) = data.split_at(800);
    let (lr, epochs) = (0.5, 200);
    tracking
        .log_batch(
            &run_id,
            &[],
            &[
                Tag::new("learning_rate", lr.to_string()),
                Tag::new("epochs", epochs.to_string()),
                Tag::new("train_rows", train.len().to_string()),
            ],
            &[Tag::new("model_type", "linear-regression")],
        )
        .await?;

    let (mut w, mut b) = (0.0f64, 0.0f64);
    let mut batch = Vec::new();
    for epoch in 0..epochs {
        let n = train.len() as f64;
        let (gw, gb) = train.iter().fold((0.0, 0.0), |(gw, gb), (x, y)| {
            let err = w * x + b - y;
            (gw + 2.0 * err * x / n, gb + 2.0 * err / n)
        });
        w -= lr * gw;
        b -= lr * gb;
        let now = kaizen_core::now_millis();
        batch.push(Metric::new("train_rmse", rmse(train, w, b), now, epoch));
        if batch.len() == 100 || epoch + 1 == epochs {
            tracking.log_batch(&run_id, &batch, &[], &[]).await?;
            batch.clear();
        }
    }
    let test_rmse = rmse(test, w, b);
    tracking
        .log_metric(
            &run_id,
            Metric::new("test_rmse", test_rmse, kaizen_core::now_millis(), epochs),
        )
        .await?;

    let model = json!({"kind": "linear", "weight": w, "bias": b, "feature": "x", "target": "y"});
    let artifact_dir = kaizen_tracking::proxy_path(&run.info.artifact_uri)
        .context("the run's artifact location is not served by the local artifact store")?;
    let model_path = ArtifactPath::parse(&format!("{artifact_dir}/model/model.json"))?;
    services
        .artifacts
        .put(&model_path, serde_json::to_vec_pretty(&model)?.into())
        .await?;
    tracking
        .update_run(
            &run_id,
            Some(kaizen_core::RunStatus::Finished),
            Some(kaizen_core::now_millis()),
            None,
        )
        .await?;

    let registry = &services.registry;
    let actor = Actor {
        user: Some(user.clone()),
        reason: Some(format!("quickstart: test RMSE {test_rmse:.4}")),
    };
    match registry.get_registered_model(MODEL).await {
        Ok(_) => {}
        Err(e) if e.is_not_found() => {
            registry
                .create_registered_model(
                    MODEL,
                    Some("Linear model trained by `kaizen quickstart`"),
                    &[],
                    &actor,
                )
                .await?;
        }
        Err(e) => return Err(e.into()),
    }
    let version = registry
        .create_model_version(
            NewModelVersion {
                name: MODEL.into(),
                source: format!("runs:/{run_id}/model"),
                run_id: Some(run_id.clone()),
                user_id: Some(user.clone()),
                ..NewModelVersion::default()
            },
            &actor,
        )
        .await?;
    registry
        .set_alias(MODEL, "champion", &version.version.to_string(), &actor)
        .await?;

    let summary = json!({
        "home": settings::home().display().to_string(),
        "experiment_id": experiment_id,
        "run_id": run_id,
        "params": {"learning_rate": lr, "epochs": epochs},
        "metrics": {"train_rmse": rmse(train, w, b), "test_rmse": test_rmse},
        "model": {"weight": w, "bias": b},
        "registered_model": MODEL,
        "model_version": version.version.to_string(),
        "champion_version": version.version.to_string(),
    });
    if args.json {
        printer::json(&summary);
    } else {
        println!("kaizen quickstart (home: {})", settings::home().display());
        println!("  experiment   {EXPERIMENT} (id {experiment_id})");
        println!("  run          {run_id} ({epochs} epochs, lr {lr})");
        println!("  model        y = {w:.4}·x + {b:.4}");
        println!("  test RMSE    {test_rmse:.4}");
        println!(
            "  registered   {MODEL} version {} (alias champion)",
            version.version
        );
        println!();
        println!(
            "next: `kaizen server` serves this home on http://127.0.0.1:5000 for the mlflow client;"
        );
        println!(
            "      `kaizen runs show {run_id}` and `kaizen models history {MODEL}` show what was recorded."
        );
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_is_deterministic_and_learnable() {
        let a = dataset(10);
        assert_eq!(a, dataset(10));
        assert!(
            a.iter()
                .all(|(x, y)| (0.0..1.0).contains(x) && (y - (3.0 * x + 2.0)).abs() <= 0.1)
        );
    }
}
