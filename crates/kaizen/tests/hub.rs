//! `kaizen models pull` against a local server that answers as the Hugging Face Hub does (the
//! repository API with its siblings and commit, `resolve` URLs with ETag, X-Repo-Commit and
//! range requests), serving all-MiniLM-L6-v2's files; then `kaizen embed` on the pulled
//! directory, a second pull from the cache, offline mode and the refusals.

mod support;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use support::kaizen_env;

const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";
const REPO: &str = "sentence-transformers/all-MiniLM-L6-v2";

fn models() -> Option<PathBuf> {
    let root = std::env::var_os("KAIZEN_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models"));
    let dir = root.join("all-MiniLM-L6-v2");
    if dir.join("model.safetensors").is_file() {
        Some(dir)
    } else {
        eprintln!("skipped: no all-MiniLM-L6-v2 under {}", root.display());
        None
    }
}

/// One request the stand-in saw: the path, the Range and Authorization headers.
#[derive(Debug, Clone)]
struct Seen {
    path: String,
    range: Option<String>,
    authorization: Option<String>,
}

/// A stand-in of the Hub serving the files of `dir` (relative name to bytes) as `REPO` at
/// `COMMIT`, one request per connection, until the test ends.
struct Hub {
    url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

fn files_of(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut todo = vec![PathBuf::new()];
    while let Some(rel) = todo.pop() {
        for entry in std::fs::read_dir(dir.join(&rel)).unwrap() {
            let entry = entry.unwrap();
            let name = rel.join(entry.file_name());
            if entry.path().is_dir() {
                todo.push(name);
            } else {
                out.insert(
                    name.to_str().unwrap().replace('\\', "/"),
                    std::fs::read(entry.path()).unwrap(),
                );
            }
        }
    }
    out
}

fn respond(
    stream: &mut std::net::TcpStream,
    status: &str,
    headers: &[(String, String)],
    body: &[u8],
) {
    let mut head = format!(
        "HTTP/1.1 {status}\r\ncontent-length: {}\r\nconnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(body);
}

impl Hub {
    fn start(files: BTreeMap<String, Vec<u8>>) -> Hub {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&seen);
        let files = Arc::new(files);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let files = Arc::clone(&files);
                let log = Arc::clone(&log);
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(stream.try_clone().unwrap());
                    let mut request = String::new();
                    if reader.read_line(&mut request).unwrap_or(0) == 0 {
                        return;
                    }
                    let path = request.split_whitespace().nth(1).unwrap_or("/").to_string();
                    let (mut range, mut authorization) = (None, None);
                    loop {
                        let mut line = String::new();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                            break;
                        }
                        let (k, v) = line.split_once(':').unwrap_or((&line, ""));
                        match k.to_ascii_lowercase().as_str() {
                            "range" => range = Some(v.trim().to_string()),
                            "authorization" => authorization = Some(v.trim().to_string()),
                            _ => {}
                        }
                    }
                    log.lock().unwrap().push(Seen {
                        path: path.clone(),
                        range: range.clone(),
                        authorization,
                    });
                    let api = format!("/api/models/{REPO}/revision/main");
                    let resolve = format!("/{REPO}/resolve/main/");
                    if path == api {
                        let siblings: Vec<Value> =
                            files.keys().map(|f| json!({"rfilename": f})).collect();
                        let body = json!({"id": REPO, "sha": COMMIT, "siblings": siblings});
                        respond(
                            &mut stream,
                            "200 OK",
                            &[("content-type".into(), "application/json".into())],
                            body.to_string().as_bytes(),
                        );
                        return;
                    }
                    let Some(name) = path.strip_prefix(&resolve) else {
                        respond(
                            &mut stream,
                            "404 Not Found",
                            &[],
                            b"{\"error\": \"Repository not found\"}",
                        );
                        return;
                    };
                    let Some(bytes) = files.get(name) else {
                        respond(
                            &mut stream,
                            "404 Not Found",
                            &[],
                            b"{\"error\": \"Entry not found\"}",
                        );
                        return;
                    };
                    let etag = format!("\"{:016x}{}\"", bytes.len(), name.len());
                    let mut headers = vec![
                        ("etag".to_string(), etag),
                        ("x-repo-commit".to_string(), COMMIT.to_string()),
                    ];
                    match range.as_deref().and_then(|r| r.strip_prefix("bytes=")) {
                        Some(r) => {
                            let (a, b) = r.split_once('-').unwrap();
                            let start: usize = a.parse().unwrap();
                            let end: usize = b.parse::<usize>().unwrap().min(bytes.len() - 1);
                            headers.push((
                                "content-range".into(),
                                format!("bytes {start}-{end}/{}", bytes.len()),
                            ));
                            respond(
                                &mut stream,
                                "206 Partial Content",
                                &headers,
                                &bytes[start..=end],
                            );
                        }
                        None => respond(&mut stream, "200 OK", &headers, bytes),
                    }
                    let mut rest = Vec::new();
                    let _ = reader.read_to_end(&mut rest);
                });
            }
        });
        Hub { url, seen }
    }
}

fn embed(home: &Path, model: &Path) -> Vec<f64> {
    let out = kaizen_env(
        home,
        &[
            "embed",
            "--json",
            "--model",
            model.to_str().unwrap(),
            "--text",
            "Turbines turn on both tides.",
        ],
        &[],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    v["embeddings"][0]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

#[test]
fn pull_from_a_hub_then_offline_from_the_cache() {
    let Some(model) = models() else { return };
    let home = tempfile::tempdir().unwrap();
    let hub = Hub::start(files_of(&model));
    let cache = home.path().join("hf-cache");
    let local = home.path().join("models").join("minilm");
    let pull = |env: &[(&str, &str)], extra: &[&str]| {
        let mut args = vec![
            "models",
            "pull",
            REPO,
            "--cache-dir",
            cache.to_str().unwrap(),
            "--local-dir",
            local.to_str().unwrap(),
            "--json",
        ];
        args.extend_from_slice(extra);
        kaizen_env(home.path(), &args, env)
    };
    let out = pull(&[("HF_ENDPOINT", &hub.url), ("HF_TOKEN", "hf_test")], &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let pulled: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(pulled["commit"], COMMIT);
    assert_eq!(pulled["offline"], false);
    let names: Vec<&str> = pulled["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    // What kaizen loads; not the README.
    for wanted in [
        "config.json",
        "tokenizer.json",
        "model.safetensors",
        "1_Pooling/config.json",
    ] {
        assert!(names.contains(&wanted), "{names:?}");
    }
    assert!(!names.contains(&"README.md"), "{names:?}");
    assert!(
        pulled["files"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["downloaded"] == true)
    );
    // The cache is the Hub's layout; the files are the served ones.
    let snapshot = cache
        .join("models--sentence-transformers--all-MiniLM-L6-v2/snapshots")
        .join(COMMIT);
    assert!(snapshot.join("model.safetensors").is_file());
    assert_eq!(
        std::fs::read_to_string(
            cache.join("models--sentence-transformers--all-MiniLM-L6-v2/refs/main")
        )
        .unwrap(),
        COMMIT
    );
    assert_eq!(
        std::fs::read(local.join("model.safetensors")).unwrap(),
        std::fs::read(model.join("model.safetensors")).unwrap()
    );
    {
        let seen = hub.seen.lock().unwrap();
        assert!(
            seen.iter()
                .all(|s| s.authorization.as_deref() == Some("Bearer hf_test")),
            "{seen:?}"
        );
        // The 90 MB weights came in ranges.
        let ranges = seen
            .iter()
            .filter(|s| s.path.ends_with("/model.safetensors") && s.range.is_some())
            .count();
        assert!(ranges > 2, "{seen:?}");
    }

    // The pulled directory embeds as the original does.
    let a = embed(home.path(), &local);
    let b = embed(home.path(), &model);
    assert_eq!(a, b);

    // A second pull asks the Hub for the listing only.
    let before = hub.seen.lock().unwrap().len();
    let out = pull(&[("HF_ENDPOINT", &hub.url)], &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let again: Value = serde_json::from_str(&out.stdout).unwrap();
    assert!(
        again["files"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["downloaded"] == false)
    );
    assert_eq!(hub.seen.lock().unwrap().len(), before + 1);

    // Offline: the cache alone, no request; a repository not in it is refused by name.
    std::fs::remove_dir_all(&local).unwrap();
    let before = hub.seen.lock().unwrap().len();
    let out = pull(&[("HF_ENDPOINT", &hub.url), ("HF_HUB_OFFLINE", "1")], &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let offline: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(offline["offline"], true);
    assert_eq!(offline["commit"], COMMIT);
    assert_eq!(hub.seen.lock().unwrap().len(), before);
    assert_eq!(embed(home.path(), &local), b);
    let out = kaizen_env(
        home.path(),
        &[
            "models",
            "pull",
            "org/not-cached",
            "--cache-dir",
            cache.to_str().unwrap(),
        ],
        &[("HF_HUB_OFFLINE", "1")],
    );
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("org/not-cached (revision main) is not in the Hugging Face cache"),
        "{}",
        out.stderr
    );

    // Online refusals: an unknown repository, a file the repository does not have.
    let out = kaizen_env(
        home.path(),
        &[
            "models",
            "pull",
            "org/missing",
            "--cache-dir",
            cache.to_str().unwrap(),
            "--endpoint",
            &hub.url,
        ],
        &[],
    );
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("404"), "{}", out.stderr);
    let out = pull(&[("HF_ENDPOINT", &hub.url)], &["--files", "nope.bin"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr.contains("has no file `nope.bin`"),
        "{}",
        out.stderr
    );
}
