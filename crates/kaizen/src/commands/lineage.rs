//! `kaizen lineage TARGET`: the lineage graph around a run, an artifact, a dataset or a model
//! version, walked both ways from the edges pipeline runs record (`lineage_edges`) and the
//! registry's source runs. Printed as indented text, JSON or Graphviz DOT.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::process::ExitCode;

use kaizen_core::Error;
use kaizen_store::LineageEdge;
use kaizen_tracking::Services;
use serde_json::{Value, json};

use super::datasets::{open_local, parse_name_version, resolve};
use crate::cli::LineageArgs;

/// Artifact-to-dataset edges (`version`) name the datasets an artifact is cataloged as; they are
/// shown on the artifact rather than walked.
const DATASET_RELATION: &str = "version";

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Key {
    kind: String,
    id: String,
}

impl Key {
    fn new(kind: &str, id: &str) -> Self {
        Key {
            kind: kind.into(),
            id: id.into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Edge {
    src: Key,
    dst: Key,
    relation: String,
}

#[derive(Debug, Default)]
struct Graph {
    /// Nodes in the order they were reached, the root first, with their labels.
    nodes: Vec<(Key, String)>,
    /// Edges walked towards the sources (dst is the nearer node) and towards the products.
    upstream: Vec<Edge>,
    downstream: Vec<Edge>,
}

pub async fn run(args: LineageArgs) -> anyhow::Result<ExitCode> {
    let services = open_local(&args.tracking, "lineage").await?;
    let root = target(&services, args.target.trim()).await?;
    let graph = walk(&services, &root, args.depth).await?;
    if args.tracking.json {
        crate::printer::json(&to_json(&graph));
    } else if args.dot {
        print!("{}", to_dot(&graph));
    } else {
        print_text(&graph);
    }
    Ok(ExitCode::SUCCESS)
}

fn is_sha256(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The root node a target names; an unknown target is a not-found error.
async fn target(services: &Services, text: &str) -> anyhow::Result<Key> {
    if let Some(rest) = text.strip_prefix("models:/") {
        let bad = || {
            Error::invalid(format!(
                "'{text}' is not a model version: use models:/NAME/VERSION"
            ))
        };
        let (name, version) = rest.rsplit_once('/').ok_or_else(bad)?;
        if name.is_empty() || version.parse::<i64>().is_err() {
            return Err(bad().into());
        }
        services.registry.get_model_version(name, version).await?;
        return Ok(Key::new("model", &format!("{name}/{version}")));
    }
    if let Some(rest) = text.strip_prefix("dataset:") {
        let (name, version) = parse_name_version(rest)?;
        let dataset = resolve(services, &name, version).await?;
        return Ok(Key::new(
            "artifact",
            &format!("cas/{}", dataset.data.content_hash),
        ));
    }
    let hash = text.strip_prefix("cas/").unwrap_or(text);
    if is_sha256(hash) {
        let hash = hash.to_ascii_lowercase();
        let id = format!("cas/{hash}");
        let known = !services
            .store
            .lineage_edges("artifact", &id)
            .await?
            .is_empty()
            || services
                .artifacts
                .local_path(&kaizen_artifacts::ArtifactPath::parse(&id)?)
                .is_ok_and(|p| p.is_file());
        if !known {
            return Err(
                Error::not_found(format!("no artifact {id} in the store or its lineage")).into(),
            );
        }
        return Ok(Key::new("artifact", &id));
    }
    if text.starts_with("cas/") {
        return Err(Error::invalid(format!(
            "'{text}' is not an artifact: use cas/<sha256> (64 hex digits)"
        ))
        .into());
    }
    match services.store.get_run(text).await {
        Ok(_) => Ok(Key::new("run", text)),
        Err(e) if e.is_not_found() => Err(Error::not_found(format!(
            "no run '{text}'\nhint: a target is a run id, an artifact (cas/<sha256> or the \
             sha256), a dataset (dataset:NAME[@VERSION]) or a model version \
             (models:/NAME/VERSION)"
        ))
        .into()),
        Err(e) => Err(e.into()),
    }
}

/// The edges at a node: those recorded in the store, plus the registry's: a model version's
/// source run, and the model versions registered from a run.
async fn edges_at(services: &Services, node: &Key) -> anyhow::Result<Vec<Edge>> {
    let mut out: Vec<Edge> = services
        .store
        .lineage_edges(&node.kind, &node.id)
        .await?
        .into_iter()
        .map(|e: LineageEdge| Edge {
            src: Key::new(&e.src_kind, &e.src_id),
            dst: Key::new(&e.dst_kind, &e.dst_id),
            relation: e.relation,
        })
        .collect();
    match node.kind.as_str() {
        "model" => {
            if let Some((name, version)) = node.id.rsplit_once('/')
                && let Ok(mv) = services.registry.get_model_version(name, version).await
                && let Some(run_id) = mv.run_id.filter(|r| !r.is_empty())
            {
                out.push(Edge {
                    src: Key::new("run", &run_id),
                    dst: node.clone(),
                    relation: "registered".into(),
                });
            }
        }
        "run" => {
            let filter = format!("run_id = '{}'", node.id.replace('\'', ""));
            if let Ok(page) = services
                .registry
                .search_model_versions(&filter, &[], Some(1000), None)
                .await
            {
                for mv in page.items {
                    out.push(Edge {
                        src: node.clone(),
                        dst: Key::new("model", &format!("{}/{}", mv.name, mv.version)),
                        relation: "registered".into(),
                    });
                }
            }
        }
        _ => {}
    }
    Ok(out)
}

/// Walks from `root` towards the sources and towards the products, `depth` edges at most each way.
async fn walk(services: &Services, root: &Key, depth: Option<usize>) -> anyhow::Result<Graph> {
    let mut cache: HashMap<Key, Vec<Edge>> = HashMap::new();
    let mut graph = Graph::default();
    let mut reached: Vec<Key> = vec![root.clone()];
    for upstream in [true, false] {
        let mut seen: HashSet<Key> = HashSet::from([root.clone()]);
        let mut frontier = vec![root.clone()];
        let mut level = 0;
        let mut walked: BTreeSet<(Key, Key, String)> = BTreeSet::new();
        while !frontier.is_empty() && depth.is_none_or(|d| level < d) {
            let mut next = Vec::new();
            for node in frontier {
                if !cache.contains_key(&node) {
                    let edges = edges_at(services, &node).await?;
                    cache.insert(node.clone(), edges);
                }
                for e in &cache[&node] {
                    if e.relation == DATASET_RELATION && e.dst.kind == "dataset" {
                        continue;
                    }
                    let (near, far) = if upstream {
                        (&e.dst, &e.src)
                    } else {
                        (&e.src, &e.dst)
                    };
                    if near != &node
                        || !walked.insert((e.src.clone(), e.dst.clone(), e.relation.clone()))
                    {
                        continue;
                    }
                    if upstream {
                        graph.upstream.push(e.clone());
                    } else {
                        graph.downstream.push(e.clone());
                    }
                    if seen.insert(far.clone()) {
                        if !reached.contains(far) {
                            reached.push(far.clone());
                        }
                        next.push(far.clone());
                    }
                }
            }
            frontier = next;
            level += 1;
        }
    }
    for key in reached {
        let label = label(services, &key, &mut cache).await?;
        graph.nodes.push((key, label));
    }
    Ok(graph)
}

/// A node's label: a run's name and status, the datasets an artifact is cataloged as, a model
/// version's stage.
async fn label(
    services: &Services,
    key: &Key,
    cache: &mut HashMap<Key, Vec<Edge>>,
) -> anyhow::Result<String> {
    Ok(match key.kind.as_str() {
        "run" => match services.store.get_run(&key.id).await {
            Ok(run) => format!("{} ({})", run.info.run_name, run.info.status.as_str()),
            Err(e) if e.is_not_found() => "(deleted run)".into(),
            Err(e) => return Err(e.into()),
        },
        "artifact" => {
            if !cache.contains_key(key) {
                let edges = edges_at(services, key).await?;
                cache.insert(key.clone(), edges);
            }
            let datasets: BTreeSet<&str> = cache[key]
                .iter()
                .filter(|e| {
                    e.relation == DATASET_RELATION && e.dst.kind == "dataset" && &e.src == key
                })
                .map(|e| e.dst.id.as_str())
                .collect();
            datasets.into_iter().collect::<Vec<_>>().join(", ")
        }
        "model" => match key.id.rsplit_once('/') {
            Some((name, version)) => match services.registry.get_model_version(name, version).await
            {
                Ok(mv) => format!("{name} version {version} ({})", mv.current_stage.as_str()),
                Err(_) => format!("{name} version {version}"),
            },
            None => key.id.clone(),
        },
        _ => String::new(),
    })
}

fn node_json(key: &Key, label: &str) -> Value {
    json!({"kind": key.kind, "id": key.id, "label": label})
}

fn all_edges(graph: &Graph) -> Vec<&Edge> {
    let mut seen = HashSet::new();
    graph
        .upstream
        .iter()
        .chain(&graph.downstream)
        .filter(|e| seen.insert(*e))
        .collect()
}

fn to_json(graph: &Graph) -> Value {
    let (root, root_label) = &graph.nodes[0];
    json!({
        "root": node_json(root, root_label),
        "nodes": graph.nodes.iter().map(|(k, l)| node_json(k, l)).collect::<Vec<_>>(),
        "edges": all_edges(graph).iter().map(|e| json!({
            "src": e.src.id,
            "dst": e.dst.id,
            "src_kind": e.src.kind,
            "dst_kind": e.dst.kind,
            "relation": e.relation,
        })).collect::<Vec<_>>(),
    })
}

fn dot_quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

fn to_dot(graph: &Graph) -> String {
    let mut out = String::from(
        "digraph lineage {\n  rankdir=LR;\n  node [fontname=\"Helvetica\", fontsize=10];\n  edge [fontname=\"Helvetica\", fontsize=9];\n",
    );
    for (i, (key, label)) in graph.nodes.iter().enumerate() {
        let shape = match key.kind.as_str() {
            "run" => "box",
            "artifact" => "note",
            "model" => "component",
            "file" => "folder",
            _ => "ellipse",
        };
        let mut text = format!("{}\n{}", key.kind, key.id);
        if !label.is_empty() {
            text.push('\n');
            text.push_str(label);
        }
        let root = if i == 0 { ", penwidth=2" } else { "" };
        out.push_str(&format!(
            "  {} [label={}, shape={shape}{root}];\n",
            dot_quote(&format!("{}:{}", key.kind, key.id)),
            dot_quote(&text)
        ));
    }
    for e in all_edges(graph) {
        out.push_str(&format!(
            "  {} -> {} [label={}];\n",
            dot_quote(&format!("{}:{}", e.src.kind, e.src.id)),
            dot_quote(&format!("{}:{}", e.dst.kind, e.dst.id)),
            dot_quote(&e.relation)
        ));
    }
    out.push_str("}\n");
    out
}

fn describe(key: &Key, labels: &BTreeMap<&Key, &str>) -> String {
    match labels.get(key).filter(|l| !l.is_empty()) {
        Some(label) if key.kind == "artifact" => format!("{} {} [{label}]", key.kind, key.id),
        Some(label) => format!("{} {} {label}", key.kind, key.id),
        None => format!("{} {}", key.kind, key.id),
    }
}

fn print_text(graph: &Graph) {
    let labels: BTreeMap<&Key, &str> = graph.nodes.iter().map(|(k, l)| (k, l.as_str())).collect();
    let root = &graph.nodes[0].0;
    println!("{}", describe(root, &labels));
    for (title, edges, upstream) in [
        ("upstream (what it was made from)", &graph.upstream, true),
        (
            "downstream (what was made from it)",
            &graph.downstream,
            false,
        ),
    ] {
        if edges.is_empty() {
            println!("{title}: none");
            continue;
        }
        println!("{title}:");
        let mut shown = HashSet::from([root.clone()]);
        tree(root, edges, upstream, &labels, 1, &mut shown);
    }
}

/// Prints the nodes one edge further from `node`, indented; a node already printed is named
/// again but not expanded.
fn tree(
    node: &Key,
    edges: &[Edge],
    upstream: bool,
    labels: &BTreeMap<&Key, &str>,
    indent: usize,
    shown: &mut HashSet<Key>,
) {
    for e in edges {
        let (near, far) = if upstream {
            (&e.dst, &e.src)
        } else {
            (&e.src, &e.dst)
        };
        if near != node {
            continue;
        }
        let arrow = if upstream { "<-" } else { "->" };
        let again = !shown.insert(far.clone());
        println!(
            "{}{arrow} {}: {}{}",
            "  ".repeat(indent),
            e.relation,
            describe(far, labels),
            if again { " (see above)" } else { "" }
        );
        if !again {
            tree(far, edges, upstream, labels, indent + 1, shown);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edge(s: (&str, &str), d: (&str, &str), relation: &str) -> Edge {
        Edge {
            src: Key::new(s.0, s.1),
            dst: Key::new(d.0, d.1),
            relation: relation.into(),
        }
    }

    #[test]
    fn dot_quotes_and_marks_the_root() {
        let graph = Graph {
            nodes: vec![
                (Key::new("run", "r1"), "prep (FINISHED)".into()),
                (Key::new("file", "data/\"x\".csv"), String::new()),
            ],
            upstream: vec![edge(("file", "data/\"x\".csv"), ("run", "r1"), "input")],
            downstream: vec![],
        };
        let dot = to_dot(&graph);
        assert!(dot.starts_with("digraph lineage {"), "{dot}");
        assert!(
            dot.contains("\"run:r1\" [label=\"run\nr1\nprep (FINISHED)\", shape=box, penwidth=2];"),
            "{dot}"
        );
        assert!(
            dot.contains("\"file:data/\\\"x\\\".csv\" -> \"run:r1\" [label=\"input\"];"),
            "{dot}"
        );
        let v = to_json(&graph);
        assert_eq!(v["root"]["id"], "r1");
        assert_eq!(v["edges"][0]["src"], "data/\"x\".csv");
        assert_eq!(v["edges"][0]["relation"], "input");
    }
}
