//! Cache keys: the hash of a step's definition, its code files, its parameter values and its
//! inputs, kept as named components so a miss can say which one changed.

use std::collections::BTreeMap;
use std::path::Path;

use kaizen_core::{Error, Result};
use kaizen_store::StepCacheEntry;
use sha2::{Digest, Sha256};

use crate::spec::{ParamValue, StepSpec};

pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// The hash of a file's content (streamed, so large files are fine).
pub fn hash_file(path: &Path) -> Result<String> {
    use std::io::Read;
    let mut f = std::fs::File::open(path)
        .map_err(|e| Error::invalid(format!("cannot read {}: {e}", path.display())))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f
            .read(&mut buf)
            .map_err(|e| Error::invalid(format!("cannot read {}: {e}", path.display())))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}

/// The fingerprint of a file input: its size and content hash; of a directory, those of every
/// file under it with their relative paths. (mtime is left out so a fresh checkout of the same
/// data still hits the cache.)
pub fn fingerprint_path(path: &Path) -> Result<String> {
    let meta = std::fs::metadata(path)
        .map_err(|e| Error::invalid(format!("cannot read {}: {e}", path.display())))?;
    if meta.is_file() {
        return Ok(sha256_hex(
            format!("file:{}:{}", meta.len(), hash_file(path)?).as_bytes(),
        ));
    }
    let mut entries = Vec::new();
    collect_files(path, path, &mut entries)?;
    entries.sort();
    Ok(sha256_hex(entries.join("\n").as_bytes()))
}

fn collect_files(root: &Path, dir: &Path, out: &mut Vec<String>) -> Result<()> {
    let read = std::fs::read_dir(dir)
        .map_err(|e| Error::invalid(format!("cannot read {}: {e}", dir.display())))?;
    for entry in read {
        let entry =
            entry.map_err(|e| Error::invalid(format!("cannot read {}: {e}", dir.display())))?;
        let p = entry.path();
        if p.is_dir() {
            collect_files(root, &p, out)?;
        } else {
            let rel = p.strip_prefix(root).unwrap_or(&p).display().to_string();
            let len = entry.metadata().map(|m| m.len()).unwrap_or(0);
            out.push(format!("{rel}:{len}:{}", hash_file(&p)?));
        }
    }
    Ok(())
}

/// The hash of the parts of a step's definition that decide its result. Retries, backoff,
/// timeout and the cache flag are left out: changing them does not change what a step makes.
pub fn definition_hash(step: &StepSpec) -> String {
    let value = serde_json::json!({
        "name": step.name,
        "kind": step.kind,
        "run": step.run,
        "inputs": step.inputs,
        "outputs": step.outputs,
        "code": step.code,
        "params": step.params,
        "env": step.env,
        "with": serde_json::to_value(&step.with).unwrap_or_default(),
    });
    sha256_hex(value.to_string().as_bytes())
}

/// The components of a cache key in the order misses are explained: inputs, params, code,
/// definition.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyParts {
    pub components: Vec<(String, String)>,
}

impl KeyParts {
    /// `input_hashes`: input string → hash; `code_hashes`: file → content hash.
    pub fn new(
        step: &StepSpec,
        input_hashes: &BTreeMap<String, String>,
        params: &BTreeMap<String, ParamValue>,
        code_hashes: &BTreeMap<String, String>,
    ) -> Self {
        let mut components = Vec::new();
        for (name, h) in input_hashes {
            components.push((format!("input:{name}"), h.clone()));
        }
        for (name, v) in params {
            let text = serde_json::to_string(v).unwrap_or_default();
            components.push((format!("param:{name}"), sha256_hex(text.as_bytes())));
        }
        for (name, h) in code_hashes {
            components.push((format!("code:{name}"), h.clone()));
        }
        components.push(("definition".into(), definition_hash(step)));
        KeyParts { components }
    }

    /// Adds the fingerprints of external sources (`url:...`, `postgres:...`, `file:...`) after
    /// the inputs, so a miss names them like inputs ("url https://host/sales.csv changed").
    pub fn with_sources(mut self, sources: &BTreeMap<String, String>) -> Self {
        let at = self
            .components
            .iter()
            .take_while(|(k, _)| k.starts_with("input:"))
            .count();
        for (i, (name, h)) in sources.iter().enumerate() {
            self.components.insert(at + i, (name.clone(), h.clone()));
        }
        self
    }

    pub fn key(&self) -> String {
        let text: Vec<String> = self
            .components
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        sha256_hex(text.join("\n").as_bytes())
    }

    /// Why this key misses, compared with the last cached entry of the same step.
    pub fn miss_reason(&self, previous: Option<&StepCacheEntry>) -> String {
        let Some(previous) = previous else {
            return "no earlier run".into();
        };
        let old: BTreeMap<&str, &str> = previous
            .components
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let new: BTreeMap<&str, &str> = self
            .components
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        for (k, v) in &self.components {
            match old.get(k.as_str()) {
                Some(o) if *o == v => {}
                Some(_) => return describe(k, "changed"),
                None => return describe(k, "added"),
            }
        }
        for (k, _) in &previous.components {
            if !new.contains_key(k.as_str()) {
                return describe(k, "removed");
            }
        }
        "outputs missing from the artifact store".into()
    }
}

fn describe(component: &str, what: &str) -> String {
    match component.split_once(':') {
        Some((kind, name)) => format!("{kind} {name} {what}"),
        None => format!("{component} {what}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn step() -> StepSpec {
        let p = crate::spec::Pipeline::parse(
            "[pipeline]\nname = \"p\"\n[[steps]]\nname = \"a\"\nrun = \"x\"\n",
            Path::new("/nonexistent"),
        )
        .unwrap();
        p.steps[0].clone()
    }

    fn parts(step: &StepSpec, input: &str, lr: f64, code: &str) -> KeyParts {
        KeyParts::new(
            step,
            &BTreeMap::from([("sales.csv".to_string(), input.to_string())]),
            &BTreeMap::from([("lr".to_string(), ParamValue::Float(lr))]),
            &BTreeMap::from([("train.py".to_string(), code.to_string())]),
        )
    }

    fn entry(p: &KeyParts) -> StepCacheEntry {
        StepCacheEntry {
            cache_key: p.key(),
            pipeline: "p".into(),
            step: "a".into(),
            components: p.components.clone(),
            outputs: BTreeMap::new(),
            run_id: "r".into(),
            created: 0,
        }
    }

    #[test]
    fn every_component_changes_the_key_and_is_named() {
        let s = step();
        let base = parts(&s, "i1", 0.1, "c1");
        let prev = entry(&base);
        assert_eq!(parts(&s, "i1", 0.1, "c1").key(), base.key());
        assert_eq!(base.miss_reason(None), "no earlier run");

        let input = parts(&s, "i2", 0.1, "c1");
        assert_ne!(input.key(), base.key());
        assert_eq!(input.miss_reason(Some(&prev)), "input sales.csv changed");

        let param = parts(&s, "i1", 0.2, "c1");
        assert_ne!(param.key(), base.key());
        assert_eq!(param.miss_reason(Some(&prev)), "param lr changed");

        let code = parts(&s, "i1", 0.1, "c2");
        assert_ne!(code.key(), base.key());
        assert_eq!(code.miss_reason(Some(&prev)), "code train.py changed");

        let mut s2 = s.clone();
        s2.run = Some("y".into());
        let def = parts(&s2, "i1", 0.1, "c1");
        assert_ne!(def.key(), base.key());
        assert_eq!(def.miss_reason(Some(&prev)), "definition changed");

        // Retries and timeouts do not change what a step makes.
        let mut s3 = s.clone();
        s3.retries = 5;
        s3.timeout_s = Some(3.0);
        assert_eq!(parts(&s3, "i1", 0.1, "c1").key(), base.key());

        let more = KeyParts::new(&s, &BTreeMap::new(), &BTreeMap::new(), &BTreeMap::new());
        assert_eq!(more.miss_reason(Some(&prev)), "input sales.csv removed");
        assert_eq!(
            base.miss_reason(Some(&prev)),
            "outputs missing from the artifact store"
        );
    }

    #[test]
    fn file_fingerprints_see_one_byte() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("a.csv");
        std::fs::write(&f, "x,y\n1,2\n").unwrap();
        let a = fingerprint_path(&f).unwrap();
        std::fs::write(&f, "x,y\n1,3\n").unwrap();
        assert_ne!(fingerprint_path(&f).unwrap(), a);
        let d = fingerprint_path(dir.path()).unwrap();
        std::fs::write(dir.path().join("b"), "1").unwrap();
        assert_ne!(fingerprint_path(dir.path()).unwrap(), d);
    }
}
