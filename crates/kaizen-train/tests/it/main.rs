//! kaizen-train end to end on a temporary SQLite store and artifact directory: packages,
//! registration, the promotion gate and hyperparameter search.

mod gate;
mod package;
mod register;
mod search;

use kaizen_ml::learner::GbdtParams;
use kaizen_ml::{FittedModel, LearnerSpec, Matrix, Task, fit};
use kaizen_tracking::{NewRun, Services};

/// Services over a fresh store, and the directory that keeps them alive.
pub struct Env {
    pub services: Services,
    pub dir: tempfile::TempDir,
    pub experiment_id: String,
}

impl Env {
    pub async fn new() -> Env {
        let dir = tempfile::tempdir().unwrap();
        let services = Services::open(
            &format!("sqlite://{}/kaizen.db", dir.path().display()),
            &format!("file://{}/artifacts", dir.path().display()),
        )
        .await
        .unwrap();
        let experiment_id = services
            .tracking
            .create_experiment("train", None, &[])
            .await
            .unwrap();
        Env {
            services,
            dir,
            experiment_id,
        }
    }

    pub async fn run(&self, name: &str) -> String {
        self.services
            .tracking
            .create_run(NewRun {
                experiment_id: Some(self.experiment_id.clone()),
                run_name: Some(name.into()),
                ..Default::default()
            })
            .await
            .unwrap()
            .info
            .run_id
    }
}

/// Two segments (`seg` 0 and 1) of `y = 10 + x` for x in [0, 10).
pub fn data() -> (Matrix, Vec<f64>, Vec<String>) {
    let mut x = Vec::new();
    let mut seg = Vec::new();
    let mut y = Vec::new();
    let mut labels = Vec::new();
    for s in 0..2 {
        for i in 0..200 {
            let v = f64::from(i) / 20.0;
            x.push(v);
            seg.push(f64::from(s));
            y.push(10.0 + v);
            labels.push(if s == 0 { "north" } else { "south" }.to_string());
        }
    }
    (
        Matrix::from_columns(vec!["x".into(), "seg".into()], vec![x, seg]),
        y,
        labels,
    )
}

/// A model of [`data`] whose predictions are too high by `bias[s]` (relative) in segment `s`,
/// so its WAPE there is about `bias[s]`.
pub fn biased_model(bias: [f64; 2]) -> FittedModel {
    let (x, y, _) = data();
    let seg = x.column(1);
    let target: Vec<f64> = y
        .iter()
        .zip(seg)
        .map(|(v, s)| v * (1.0 + bias[*s as usize]))
        .collect();
    let spec = LearnerSpec::Gbdt(GbdtParams {
        iterations: 150,
        learning_rate: 0.3,
        ..GbdtParams::default()
    });
    fit(&spec, Task::Regression, &x, &target, None).unwrap()
}
