//! Pretrained models as registered versions, end to end: `kaizen train-classifier` on the
//! project's labeled tickets (tests/fixtures/pretrained/tickets.csv), served by `kaizen serve`
//! and scored by `kaizen predict`; its refusals; and a sentence embedder registered with
//! `kaizen models register-pretrained`, served, answering what `kaizen embed` computes.
//!
//! They need all-MiniLM-L6-v2 (`scripts/setup.sh` copies it to `models/`; `KAIZEN_MODELS` points
//! elsewhere); without it they say so and pass, as kaizen-infer's do.

mod support;

use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use support::{Server, kaizen_env};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The models directory holding all-MiniLM-L6-v2, or `None` (the test is skipped).
fn models() -> Option<PathBuf> {
    let root = std::env::var_os("KAIZEN_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("models"));
    if root.join("all-MiniLM-L6-v2/model.safetensors").is_file() {
        Some(root.canonicalize().unwrap())
    } else {
        eprintln!(
            "skipped: no all-MiniLM-L6-v2 under {} (run scripts/setup.sh)",
            root.display()
        );
        None
    }
}

fn tickets() -> String {
    repo()
        .join("tests/fixtures/pretrained/tickets.csv")
        .canonicalize()
        .unwrap()
        .display()
        .to_string()
}

/// `kaizen ARGS` with the models directory `models`; must succeed; stdout as JSON.
fn run_json(home: &Path, models: &Path, args: &[&str]) -> Value {
    let out = kaizen_env(home, args, &[("KAIZEN_MODELS", models.to_str().unwrap())]);
    assert_eq!(
        out.code, 0,
        "kaizen {args:?} failed\nstdout: {}\nstderr: {}",
        out.stdout, out.stderr
    );
    serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("kaizen {args:?}: not JSON ({e}):\n{}", out.stdout))
}

/// `kaizen serve SPEC` with the models directory `models`.
fn serve(home: &Path, models: &Path, spec: &str) -> Server {
    Server::spawn_env(
        home,
        &["serve", spec, "--host", "127.0.0.1", "--port", "0"],
        &[("KAIZEN_MODELS", models.to_str().unwrap())],
    )
}

const CLEAR: [(&str, &str); 3] = [
    (
        "You charged my credit card twice for the premium plan.",
        "billing",
    ),
    ("My parcel with the headphones never arrived.", "shipping"),
    (
        "The app crashes with error 500 when I open the dashboard.",
        "technical",
    ),
];

#[test]
fn a_trained_classifier_is_registered_served_and_scored() {
    let Some(models) = models() else { return };
    let home = tempfile::tempdir().unwrap();
    // The embedder seen through a directory of its own, so the package's record of where it was
    // can be made stale below.
    let own = home.path().join("own").join("all-MiniLM-L6-v2");
    std::fs::create_dir_all(own.join("1_Pooling")).unwrap();
    let real = models.join("all-MiniLM-L6-v2");
    for f in [
        "config.json",
        "tokenizer.json",
        "model.safetensors",
        "modules.json",
        "sentence_bert_config.json",
        "1_Pooling/config.json",
    ] {
        std::os::unix::fs::symlink(real.join(f), own.join(f)).unwrap();
    }
    let data = tickets();
    let summary = run_json(
        home.path(),
        &models,
        &[
            "train-classifier",
            "--data",
            &data,
            "--text-col",
            "text",
            "--label-col",
            "label",
            "--model",
            own.to_str().unwrap(),
            "--name",
            "tickets",
            "--json",
        ],
    );
    assert_eq!(
        summary["labels"],
        json!(["billing", "shipping", "technical"])
    );
    assert_eq!(summary["rows"]["train"], 288, "{summary}");
    assert_eq!(summary["rows"]["test"], 72, "{summary}");
    assert_eq!(summary["embedder"]["name"], "all-MiniLM-L6-v2");
    assert_eq!(summary["embedder"]["dim"], 384);
    let accuracy = summary["metrics"]["test"]["accuracy"].as_f64().unwrap();
    let f1 = summary["metrics"]["test"]["macro_f1"].as_f64().unwrap();
    let log_loss = summary["metrics"]["test"]["log_loss"].as_f64().unwrap();
    eprintln!("held-out accuracy {accuracy}, macro-F1 {f1}, log-loss {log_loss}");
    // Chance is 1/3.
    assert!(accuracy >= 0.9, "{summary}");
    assert!(f1 >= 0.9, "{summary}");
    assert!(log_loss < (3.0f64).ln(), "{summary}");
    assert_eq!(summary["model_version"], "1");

    // The run: params, held-out metrics, finished.
    let run_id = summary["run_id"].as_str().unwrap();
    let run = run_json(home.path(), &models, &["runs", "show", run_id, "--json"]);
    assert_eq!(run["run"]["info"]["status"], "FINISHED", "{run}");
    let metric = |key: &str| {
        run["run"]["data"]["metrics"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["key"] == key)
            .map(|m| m["value"].as_f64().unwrap())
    };
    assert_eq!(metric("test_accuracy"), Some(accuracy));
    assert!(metric("test_macro_f1").is_some() && metric("test_log_loss").is_some());
    let params = run["run"]["data"]["params"].as_array().unwrap();
    assert!(
        params
            .iter()
            .any(|p| p["key"] == "embedder_sha256" && p["value"] == summary["embedder"]["sha256"]),
        "{run}"
    );
    let versions = run_json(
        home.path(),
        &models,
        &["models", "versions", "tickets", "--json"],
    );
    assert_eq!(
        versions["model_versions"][0]["run_id"], run_id,
        "{versions}"
    );
    run_json(
        home.path(),
        &models,
        &["models", "alias", "tickets", "champion", "1", "--json"],
    );

    // Served: every request format, labels right for clear examples.
    let server = serve(home.path(), &models, "models:/tickets@champion");
    let texts: Vec<&str> = CLEAR.iter().map(|(t, _)| *t).collect();
    let labels: Vec<&str> = CLEAR.iter().map(|(_, l)| *l).collect();
    let records: Vec<Value> = texts.iter().map(|t| json!({"text": t})).collect();
    let rows: Vec<Value> = texts.iter().map(|t| json!([t])).collect();
    for body in [
        json!({"inputs": texts}),
        json!({"instances": texts}),
        json!({"dataframe_split": {"columns": ["text"], "data": rows}}),
        json!({"dataframe_records": records}),
    ] {
        let (status, v) = server.call("POST", "/invocations", &body.to_string());
        assert_eq!(status, 200, "{body}: {v}");
        assert_eq!(v["predictions"], json!(labels), "{body}");
    }
    let csv = format!(
        "text\n{}\n",
        texts
            .iter()
            .map(|t| format!("\"{t}\""))
            .collect::<Vec<_>>()
            .join("\n")
    );
    let (status, v) = server.call_as("POST", "/invocations", "text/csv", &csv);
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["predictions"], json!(labels));
    let (status, v) = server.call(
        "POST",
        "/invocations?probabilities=true",
        &json!({"inputs": texts}).to_string(),
    );
    assert_eq!(status, 200, "{v}");
    for (p, label) in v["predictions"].as_array().unwrap().iter().zip(&labels) {
        assert_eq!(p["label"], *label, "{p}");
        let probs = p["probabilities"].as_object().unwrap();
        assert_eq!(probs.len(), 3, "{p}");
        let total: f64 = probs.values().map(|x| x.as_f64().unwrap()).sum();
        assert!((total - 1.0).abs() < 1e-9, "{p}");
        assert!(probs[*label].as_f64().unwrap() > 0.5, "{p}");
    }
    let (_, health) = server.call("GET", "/health", "");
    assert_eq!(health["task"], "multiclass", "{health}");
    assert_eq!(
        health["inputs"],
        json!([{"name": "text", "type": "string"}])
    );
    // Refusals name what is wrong.
    let (status, v) = server.call("POST", "/invocations", r#"{"inputs": ["fine", ""]}"#);
    assert_eq!(status, 400, "{v}");
    assert!(v["message"].as_str().unwrap().contains("row 2"), "{v}");
    let (status, v) = server.call(
        "POST",
        "/invocations",
        r#"{"dataframe_records": [{"body": "hello"}]}"#,
    );
    assert_eq!(status, 400, "{v}");

    // Every request is in the inference log (the writer is asynchronous).
    let start = std::time::Instant::now();
    loop {
        let (_, metrics) = server.call("GET", "/metrics", "");
        if metrics
            .as_str()
            .unwrap_or_default()
            .contains("kaizen_inference_log_written_total 8")
        {
            break;
        }
        assert!(start.elapsed().as_secs() < 30, "not all logged: {metrics}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    drop(server);
    let logged = run_json(
        home.path(),
        &models,
        &[
            "sql",
            "SELECT COUNT(*) AS n, SUM(CASE WHEN status = 200 THEN rows ELSE 0 END) AS scored FROM inference_log WHERE model = 'tickets'",
            "--json",
        ],
    );
    assert_eq!(logged[0]["n"], 8, "{logged}");
    assert_eq!(logged[0]["scored"], 18, "{logged}");

    // Batch scoring goes through the same loader.
    let input = home.path().join("texts.csv");
    std::fs::write(&input, &csv).unwrap();
    let output = home.path().join("out.csv");
    let predict = [
        "predict",
        "--model",
        "models:/tickets/1",
        "--input",
        input.to_str().unwrap(),
        "--output",
        output.to_str().unwrap(),
    ];
    let predict_json = [&predict[..], &["--json"]].concat();
    run_json(home.path(), &models, &predict_json);
    let out = std::fs::read_to_string(&output).unwrap();
    let mut lines = out.lines();
    assert_eq!(
        lines.next(),
        Some("prediction,probability_billing,probability_shipping,probability_technical")
    );
    let predicted: Vec<&str> = lines.map(|l| l.split(',').next().unwrap()).collect();
    assert_eq!(predicted, labels);

    // The embedder the version needs is checked by hash: other weights under the same name
    // are refused with both hashes named, once the training-time directory is gone.
    std::fs::remove_dir_all(home.path().join("own")).unwrap();
    let fake = home.path().join("fake");
    std::fs::create_dir_all(fake.join("all-MiniLM-L6-v2")).unwrap();
    std::fs::write(
        fake.join("all-MiniLM-L6-v2/model.safetensors"),
        b"other weights",
    )
    .unwrap();
    let out = kaizen_env(
        home.path(),
        &predict,
        &[("KAIZEN_MODELS", fake.to_str().unwrap())],
    );
    assert_eq!(out.code, 1, "{}", out.stderr);
    let sha = summary["embedder"]["sha256"].as_str().unwrap();
    assert!(
        out.stderr
            .contains("needs the embedding model `all-MiniLM-L6-v2`"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains(sha), "{}", out.stderr);
    // The real model under the models directory serves it again.
    run_json(home.path(), &models, &predict_json);
}

#[test]
fn bad_training_data_is_refused_clearly() {
    let Some(models) = models() else { return };
    let home = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let p = home.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.display().to_string()
    };
    let one_class = write(
        "one.csv",
        "text,label\nhello there,greeting\nhi you,greeting\nhey,greeting\n",
    );
    let empty = write("empty.csv", "");
    let header = write("header.csv", "text,label\n");
    let thin = write("thin.csv", "text,label\na b,x\nc d,x\ne f,x\ng h,y\n");
    let data = tickets();
    let cases: [(&str, &str, &str, &str); 5] = [
        (
            &data,
            "body",
            "label",
            "--text-col body: the data has no column `body` (columns: text, label)",
        ),
        (
            &one_class,
            "text",
            "label",
            "has 1 class (greeting); a classifier needs 2 or more",
        ),
        (&empty, "text", "label", "is empty"),
        (&header, "text", "label", "has no rows of data"),
        (&thin, "text", "label", "too few: `y` (1)"),
    ];
    for (file, text, label, expected) in cases {
        let out = kaizen_env(
            home.path(),
            &[
                "train-classifier",
                "--data",
                file,
                "--text-col",
                text,
                "--label-col",
                label,
            ],
            &[("KAIZEN_MODELS", models.to_str().unwrap())],
        );
        assert_eq!(out.code, 1, "{file}: {}", out.stderr);
        assert!(out.stderr.contains(expected), "{file}: {}", out.stderr);
    }
    // Nothing was tracked for refused data.
    let runs = run_json(home.path(), &models, &["models", "list", "--json"]);
    assert_eq!(runs["registered_models"], json!([]), "{runs}");
}

fn cosine(a: &[f64], b: &[f64]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f64 = a.iter().map(|x| x * x).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| x * x).sum::<f64>().sqrt();
    dot / (na * nb)
}

fn vectors(v: &Value) -> Vec<Vec<f64>> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|e| {
            e.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap())
                .collect()
        })
        .collect()
}

#[test]
fn a_registered_embedder_serves_what_embed_computes() {
    let Some(models) = models() else { return };
    let home = tempfile::tempdir().unwrap();
    let dir = models.join("all-MiniLM-L6-v2");
    let registered = run_json(
        home.path(),
        &models,
        &[
            "models",
            "register-pretrained",
            dir.to_str().unwrap(),
            "--name",
            "minilm",
            "--json",
        ],
    );
    assert_eq!(registered["model_version"], "1", "{registered}");
    assert_eq!(registered["task"], "embed");
    assert_eq!(registered["embedder"]["dim"], 384);
    run_json(
        home.path(),
        &models,
        &["models", "alias", "minilm", "prod", "1", "--json"],
    );
    let texts = [
        "The tide mill ground grain twice a day.",
        "short",
        "Turbines turn on both tides.",
    ];
    let mut args = vec!["embed", "--json"];
    for t in &texts {
        args.extend(["--text", t]);
    }
    let expected = vectors(&run_json(home.path(), &models, &args)["embeddings"]);

    let server = serve(home.path(), &models, "models:/minilm@prod");
    let (status, v) = server.call(
        "POST",
        "/invocations",
        &json!({"inputs": texts}).to_string(),
    );
    assert_eq!(status, 200, "{v}");
    let got = vectors(&v["predictions"]);
    assert_eq!(got.len(), 3);
    for (g, e) in got.iter().zip(&expected) {
        assert_eq!(g.len(), 384);
        let c = cosine(g, e);
        assert!(c > 1.0 - 1e-6, "cosine {c}");
    }
    let (_, health) = server.call("GET", "/health", "");
    assert_eq!(health["task"], "embedding", "{health}");
    // Feedback has nothing to compare with.
    let (status, v) = server.call("POST", "/feedback", r#"{"request_id": "x", "actual": [1]}"#);
    assert_eq!(status, 400, "{v}");
}
