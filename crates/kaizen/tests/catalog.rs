//! End-to-end tests of `kaizen datasets`, `kaizen sql` and `kaizen lineage` on a home whose
//! catalog and lineage edges the test writes directly into the stores.

use std::path::Path;

use kaizen_data::arrow::array::{Float64Array, Int64Array, StringArray};
use kaizen_data::arrow::datatypes::{DataType, Field, Schema};
use kaizen_data::arrow::record_batch::RecordBatch;
use kaizen_data::{Format, Table};
use kaizen_store::{LineageEdge, NewDatasetVersion};
use kaizen_tracking::{Actor, NewModelVersion, NewRun, Services};
use serde_json::json;

mod support;

use support::{kaizen, ok, ok_json};

/// A fake but well-formed content hash.
fn hash(n: u32) -> String {
    format!("{n:064x}")
}

/// What the fixture made: the home and the ids the tests look for.
struct Fixture {
    home: tempfile::TempDir,
    pipeline_run: String,
    prep_run: String,
    train_run: String,
}

fn sales_table(rows: &[(i64, &str, f64)]) -> Table {
    let schema = std::sync::Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("store", DataType::Utf8, true),
        Field::new("amount", DataType::Float64, true),
    ]));
    let batch = RecordBatch::try_new(
        schema,
        vec![
            std::sync::Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.0))),
            std::sync::Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.1))),
            std::sync::Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| r.2))),
        ],
    )
    .unwrap();
    Table::from_batch(batch)
}

/// Catalogs `file` (already at `cas/<hash>`) as the next version of `name`.
async fn catalog(
    services: &Services,
    artifacts: &Path,
    name: &str,
    hash: &str,
    format: Format,
    run_id: &str,
) {
    let path = artifacts.join("cas").join(hash);
    let summary = kaizen_data::describe_file(&path, format).unwrap();
    services
        .store
        .add_dataset_version(&NewDatasetVersion {
            name: name.into(),
            content_hash: hash.into(),
            format: match format {
                Format::Parquet => "parquet",
                Format::Csv => "csv",
                Format::JsonLines => "jsonl",
            }
            .into(),
            schema: summary.schema,
            rows: summary.rows as i64,
            stats: summary.stats,
            run_id: run_id.into(),
            pipeline: "shop".into(),
            step: "prep".into(),
        })
        .await
        .unwrap();
}

fn edge(src: (&str, &str), dst: (&str, &str), relation: &str) -> LineageEdge {
    LineageEdge {
        src_kind: src.0.into(),
        src_id: src.1.into(),
        dst_kind: dst.0.into(),
        dst_id: dst.1.into(),
        relation: relation.into(),
        created: 0,
    }
}

/// A home with datasets `sales` (versions 1 and 2, Parquet) and `stores` (CSV), and the lineage
/// of a pipeline run `shop`: file data/raw.csv -> prep -> sales@2 -> train -> model.bin, with a
/// registered model version from train.
fn fixture() -> Fixture {
    let home = tempfile::tempdir().unwrap();
    let artifacts = home.path().join("artifacts");
    let cas = artifacts.join("cas");
    std::fs::create_dir_all(&cas).unwrap();
    kaizen_data::write_parquet(
        &sales_table(&[(1, "a", 10.0), (2, "b", 20.0)]),
        cas.join(hash(1)),
    )
    .unwrap();
    kaizen_data::write_parquet(
        &sales_table(&[(1, "a", 10.0), (2, "b", 20.0), (3, "a", 5.5)]),
        cas.join(hash(2)),
    )
    .unwrap();
    std::fs::write(cas.join(hash(3)), "store,city\na,Lyon\nb,Oslo\n").unwrap();
    std::fs::write(cas.join(hash(4)), "model bytes").unwrap();

    let store_uri = format!("sqlite://{}", home.path().join("kaizen.db").display());
    let artifacts_uri = format!("file://{}", artifacts.display());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (pipeline_run, prep_run, train_run) = runtime.block_on(async {
        let services = Services::open(&store_uri, &artifacts_uri).await.unwrap();
        let run = |name: &str| {
            let services = services.clone();
            let name = name.to_string();
            async move {
                services
                    .tracking
                    .create_run(NewRun {
                        run_name: Some(name),
                        ..Default::default()
                    })
                    .await
                    .unwrap()
                    .info
                    .run_id
            }
        };
        let (p, prep, train) = (run("shop").await, run("prep").await, run("train").await);
        catalog(
            &services,
            &artifacts,
            "sales",
            &hash(1),
            Format::Parquet,
            &prep,
        )
        .await;
        catalog(
            &services,
            &artifacts,
            "sales",
            &hash(2),
            Format::Parquet,
            &prep,
        )
        .await;
        catalog(
            &services,
            &artifacts,
            "stores",
            &hash(3),
            Format::Csv,
            &prep,
        )
        .await;
        let sales2 = format!("cas/{}", hash(2));
        let model = format!("cas/{}", hash(4));
        services
            .store
            .add_lineage_edges(&[
                edge(("run", &p), ("run", &prep), "parent"),
                edge(("run", &p), ("run", &train), "parent"),
                edge(("file", "data/raw.csv"), ("run", &prep), "input"),
                edge(("run", &prep), ("artifact", &sales2), "output"),
                edge(("artifact", &sales2), ("dataset", "sales@2"), "version"),
                edge(("artifact", &sales2), ("run", &train), "input"),
                edge(("run", &train), ("artifact", &model), "output"),
            ])
            .await
            .unwrap();
        let actor = Actor::default();
        services
            .registry
            .create_registered_model("churn", None, &[], &actor)
            .await
            .unwrap();
        services
            .registry
            .create_model_version(
                NewModelVersion {
                    name: "churn".into(),
                    source: format!("runs:/{train}/model"),
                    run_id: Some(train.clone()),
                    ..Default::default()
                },
                &actor,
            )
            .await
            .unwrap();
        (p, prep, train)
    });
    Fixture {
        home,
        pipeline_run,
        prep_run,
        train_run,
    }
}

fn home(f: &Fixture) -> &Path {
    f.home.path()
}

#[test]
fn datasets_list_and_show() {
    let f = fixture();
    let list = ok_json(home(&f), &["datasets", "list", "--json"]);
    let names: Vec<(&str, i64, i64)> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["name"].as_str().unwrap(),
                d["version"].as_i64().unwrap(),
                d["rows"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(names, [("sales", 2, 3), ("stores", 1, 2)]);
    let text = ok(home(&f), &["datasets", "list"]);
    assert!(text.starts_with("NAME"), "{text}");
    assert!(text.contains("sales") && text.contains("stores"), "{text}");

    let show = ok_json(home(&f), &["datasets", "show", "sales", "--json"]);
    assert_eq!(show["version"], 2);
    assert_eq!(show["rows"], 3);
    assert_eq!(show["artifact"], format!("cas/{}", hash(2)));
    assert_eq!(show["run_id"], f.prep_run.as_str());
    assert_eq!(
        show["schema"][1],
        json!({"name": "store", "type": "utf8", "nullable": true})
    );
    assert_eq!(
        show["stats"]["amount"],
        json!({"nulls": 0, "min": 5.5, "max": 20.0})
    );
    let versions: Vec<(i64, &str)> = show["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["version"].as_i64().unwrap(),
                v["content_hash"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(versions, [(1, hash(1).as_str()), (2, hash(2).as_str())]);

    let v1 = ok_json(home(&f), &["datasets", "show", "sales@1", "--json"]);
    assert_eq!(
        (v1["version"].as_i64(), v1["rows"].as_i64()),
        (Some(1), Some(2))
    );
    let text = ok(home(&f), &["datasets", "show", "sales"]);
    for part in ["dataset:   sales", "columns:", "amount", "versions:"] {
        assert!(text.contains(part), "{part} in {text}");
    }

    let missing = kaizen(home(&f), &["datasets", "show", "nope"]);
    assert_eq!(missing.code, 1, "{}", missing.stderr);
    assert!(
        missing.stderr.contains("known datasets: sales, stores"),
        "{}",
        missing.stderr
    );
    let missing = kaizen(home(&f), &["datasets", "show", "sales@7"]);
    assert_eq!(missing.code, 1);
    assert!(
        missing.stderr.contains("versions: 1, 2"),
        "{}",
        missing.stderr
    );
}

#[test]
fn sql_over_datasets_latest_and_versions() {
    let f = fixture();
    let rows = ok_json(
        home(&f),
        &[
            "sql",
            "SELECT store, count(*) AS n, sum(amount) AS total FROM sales GROUP BY store ORDER BY store",
            "--json",
        ],
    );
    assert_eq!(
        rows,
        json!([
            {"store": "a", "n": 2, "total": 15.5},
            {"store": "b", "n": 1, "total": 20.0},
        ])
    );
    // A version, quoted or not, and a join with a CSV dataset.
    for query in [
        "SELECT count(*) AS n FROM \"sales@1\"",
        "SELECT count(*) AS n FROM sales@1",
    ] {
        assert_eq!(
            ok_json(home(&f), &["sql", query, "--json"]),
            json!([{"n": 2}])
        );
    }
    let joined = ok_json(
        home(&f),
        &[
            "sql",
            "SELECT s.id, t.city FROM sales@2 s JOIN stores t ON s.store = t.store ORDER BY s.id",
            "--json",
        ],
    );
    assert_eq!(
        joined,
        json!([
            {"id": 1, "city": "Lyon"},
            {"id": 2, "city": "Oslo"},
            {"id": 3, "city": "Lyon"},
        ])
    );
    assert_eq!(
        ok_json(
            home(&f),
            &["sql", "SELECT * FROM sales WHERE id > 99", "--json"]
        ),
        json!([])
    );

    let text = ok(
        home(&f),
        &["sql", "SELECT id, store FROM sales ORDER BY id"],
    );
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines, ["id  store", "1   a", "2   b", "3   a"]);

    let unknown = kaizen(home(&f), &["sql", "SELECT * FROM nope"]);
    assert_eq!(unknown.code, 1, "{}", unknown.stderr);
    assert!(
        unknown
            .stderr
            .contains("unknown dataset 'nope' (known datasets: sales, stores)"),
        "{}",
        unknown.stderr
    );
    let bad = kaizen(home(&f), &["sql", "SELEC 1"]);
    assert_eq!(bad.code, 1, "{}", bad.stderr);
    let bad_column = kaizen(home(&f), &["sql", "SELECT nope FROM sales"]);
    assert_eq!(bad_column.code, 1, "{}", bad_column.stderr);
    let server = kaizen(
        home(&f),
        &["sql", "SELECT 1", "--tracking-uri", "http://localhost:1"],
    );
    assert_eq!(server.code, 1);
    assert!(
        server.stderr.contains("not available yet"),
        "{}",
        server.stderr
    );
}

#[test]
fn lineage_text_json_and_dot() {
    let f = fixture();
    let sales2 = format!("cas/{}", hash(2));
    let model = format!("cas/{}", hash(4));

    // From the dataset's artifact: made by prep from the raw file; used by train.
    let g = ok_json(home(&f), &["lineage", "dataset:sales@2", "--json"]);
    assert_eq!(
        g["root"],
        json!({"kind": "artifact", "id": sales2, "label": "sales@2"})
    );
    let edges: Vec<(String, String, String)> = g["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["src"].as_str().unwrap().to_string(),
                e["dst"].as_str().unwrap().to_string(),
                e["relation"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let has = |s: &str, d: &str, r: &str| edges.contains(&(s.into(), d.into(), r.into()));
    assert!(has(&f.prep_run, &sales2, "output"), "{edges:?}");
    assert!(has("data/raw.csv", &f.prep_run, "input"), "{edges:?}");
    assert!(has(&f.pipeline_run, &f.prep_run, "parent"), "{edges:?}");
    assert!(has(&sales2, &f.train_run, "input"), "{edges:?}");
    assert!(has(&f.train_run, &model, "output"), "{edges:?}");
    assert!(has(&f.train_run, "churn/1", "registered"), "{edges:?}");
    let node = |id: &str| {
        g["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["id"] == id)
            .cloned()
            .unwrap_or_else(|| panic!("no node {id} in {g}"))
    };
    assert_eq!(node(&f.prep_run)["kind"], "run");
    assert_eq!(node(&f.prep_run)["label"], "prep (RUNNING)");
    assert_eq!(node("data/raw.csv")["kind"], "file");
    assert_eq!(node("churn/1")["kind"], "model");

    // The same artifact by hash, as text.
    let text = ok(home(&f), &["lineage", &hash(2)]);
    assert!(
        text.starts_with(&format!("artifact {sales2} [sales@2]")),
        "{text}"
    );
    assert!(
        text.contains(&format!("  <- output: run {} prep (RUNNING)", f.prep_run)),
        "{text}"
    );
    assert!(text.contains("    <- input: file data/raw.csv"), "{text}");
    assert!(
        text.contains(&format!("  -> input: run {} train (RUNNING)", f.train_run)),
        "{text}"
    );

    // From the model version back to the raw file; --depth stops the walk.
    let g = ok_json(home(&f), &["lineage", "models:/churn/1", "--json"]);
    assert_eq!(g["root"]["kind"], "model");
    assert!(
        g["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["id"] == "data/raw.csv"),
        "{g}"
    );
    let g = ok_json(
        home(&f),
        &["lineage", "models:/churn/1", "--json", "--depth", "1"],
    );
    let ids: Vec<&str> = g["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["churn/1", f.train_run.as_str()]);

    // A run, as DOT.
    let dot = ok(home(&f), &["lineage", &f.train_run, "--dot"]);
    assert!(dot.starts_with("digraph lineage {"), "{dot}");
    assert!(
        dot.contains(&format!(
            "\"run:{}\" -> \"artifact:{model}\" [label=\"output\"];",
            f.train_run
        )),
        "{dot}"
    );
    assert!(dot.trim_end().ends_with('}'), "{dot}");

    for (target, code) in [
        ("0123456789abcdef0123456789abcdef", 1),
        (&*format!("cas/{}", hash(99)), 1),
        ("dataset:nope", 1),
        ("models:/churn/9", 1),
        ("models:/churn", 1),
    ] {
        let out = kaizen(home(&f), &["lineage", target]);
        assert_eq!(out.code, code, "{target}: {}", out.stderr);
    }
}
