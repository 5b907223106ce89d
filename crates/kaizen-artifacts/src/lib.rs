//! kaizen's artifact store on the `object_store` crate.
//!
//! Callers speak in relative artifact paths (`0/<run>/artifacts/model/MLmodel`); the store maps them
//! onto a root URI. Today the root is a local directory (`file:///...`); an S3-compatible store plugs
//! in as another `object_store` backend without touching callers.
//!
//! **Architecture invariant:** every path is checked by [`ArtifactPath::parse`] before it reaches
//! the backend, so `..`, absolute paths and empty segments can never address anything outside the root.

use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use kaizen_core::{Error, Result};
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, PutPayload, WriteMultipart};

/// A validated relative artifact path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArtifactPath(String);

impl ArtifactPath {
    /// Checks a client-given path. An empty path is the root.
    pub fn parse(path: &str) -> Result<Self> {
        let bad = |why: &str| Error::invalid(format!("Invalid artifact path '{path}': {why}"));
        if path.starts_with('/') || path.starts_with('\\') {
            return Err(bad("absolute paths are not allowed"));
        }
        if path.contains('\\') {
            return Err(bad("backslashes are not allowed"));
        }
        if path.contains('\0') {
            return Err(bad("NUL bytes are not allowed"));
        }
        if path.len() > 1 && path.as_bytes()[1] == b':' {
            return Err(bad("absolute paths are not allowed"));
        }
        let mut parts = Vec::new();
        for part in path.split('/') {
            match part {
                "" | "." => continue,
                ".." => return Err(bad("'..' is not allowed")),
                p => parts.push(p),
            }
        }
        Ok(Self(parts.join("/")))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    pub fn join(&self, child: &str) -> Result<Self> {
        Self::parse(&format!("{}/{child}", self.0))
    }

    fn object(&self) -> Result<ObjectPath> {
        ObjectPath::parse(&self.0)
            .map_err(|e| Error::invalid(format!("Invalid artifact path '{}': {e}", self.0)))
    }
}

/// One entry of a listing, relative to the root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileInfo {
    pub path: String,
    pub is_dir: bool,
    pub file_size: Option<u64>,
}

/// An upload in parts, for artifacts too large for one request.
pub struct Multipart {
    writer: WriteMultipart,
}

impl Multipart {
    pub async fn write(&mut self, data: Bytes) -> Result<()> {
        self.writer.wait_for_capacity(4).await.map_err(store_err)?;
        self.writer.put(data);
        Ok(())
    }

    pub async fn finish(self) -> Result<()> {
        self.writer.finish().await.map_err(store_err)?;
        Ok(())
    }

    pub async fn abort(self) -> Result<()> {
        self.writer.abort().await.map_err(store_err)
    }
}

fn store_err(e: object_store::Error) -> Error {
    match e {
        object_store::Error::NotFound { path, .. } => {
            Error::not_found(format!("Artifact '{path}' does not exist"))
        }
        other => Error::internal("artifact store error", other),
    }
}

#[derive(Clone)]
pub struct ArtifactStore {
    root: String,
    store: Arc<dyn ObjectStore>,
}

impl std::fmt::Debug for ArtifactStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArtifactStore")
            .field("root", &self.root)
            .finish()
    }
}

impl ArtifactStore {
    /// Opens the store at a root URI: `file:///abs/dir` or a plain directory path.
    pub fn open(root: &str) -> Result<Self> {
        let dir = if let Some(rest) = root.strip_prefix("file://") {
            rest.to_string()
        } else if root.contains("://") {
            return Err(Error::invalid(format!(
                "Unsupported artifact destination '{root}': only file:// is available in this build"
            )));
        } else {
            root.to_string()
        };
        std::fs::create_dir_all(&dir)
            .map_err(|e| Error::internal(format!("cannot create artifact directory {dir}"), e))?;
        let fs = LocalFileSystem::new_with_prefix(&dir)
            .map_err(|e| Error::internal(format!("cannot open artifact directory {dir}"), e))?
            .with_automatic_cleanup(true);
        Ok(Self {
            root: format!("file://{dir}"),
            store: Arc::new(fs),
        })
    }

    pub fn root(&self) -> &str {
        &self.root
    }

    /// Where an artifact lives on the local filesystem, for readers that need a file (DataFusion
    /// scans). Only a local-directory root has one; another backend is an invalid-argument error.
    /// The file need not exist.
    pub fn local_path(&self, path: &ArtifactPath) -> Result<std::path::PathBuf> {
        let Some(dir) = self.root.strip_prefix("file://") else {
            return Err(Error::invalid(format!(
                "Artifact '{}' is not on the local filesystem (artifact root {}); reading it \
                 in place is only available for a local directory",
                path.as_str(),
                self.root
            )));
        };
        let mut local = std::path::PathBuf::from(dir);
        local.extend(path.as_str().split('/').filter(|p| !p.is_empty()));
        Ok(local)
    }

    pub async fn put(&self, path: &ArtifactPath, data: Bytes) -> Result<()> {
        if path.is_root() {
            return Err(Error::invalid("Artifact path must name a file"));
        }
        self.store
            .put(&path.object()?, PutPayload::from_bytes(data))
            .await
            .map_err(store_err)?;
        Ok(())
    }

    /// Starts a streaming upload; the object appears only when [`Multipart::finish`] succeeds.
    pub async fn put_multipart(&self, path: &ArtifactPath) -> Result<Multipart> {
        if path.is_root() {
            return Err(Error::invalid("Artifact path must name a file"));
        }
        let upload = self
            .store
            .put_multipart(&path.object()?)
            .await
            .map_err(store_err)?;
        Ok(Multipart {
            writer: WriteMultipart::new_with_chunk_size(upload, 8 * 1024 * 1024),
        })
    }

    /// Streams a file's bytes, with its size.
    pub async fn get(
        &self,
        path: &ArtifactPath,
    ) -> Result<(u64, BoxStream<'static, Result<Bytes>>)> {
        let result = self.store.get(&path.object()?).await.map_err(store_err)?;
        let size = result.meta.size;
        let stream = match result.payload {
            // object_store reads local files in 8 KiB chunks; 1 MiB reads make large downloads
            // several times cheaper.
            object_store::GetResultPayload::File(file, _) => {
                tokio_util::io::ReaderStream::with_capacity(
                    tokio::fs::File::from_std(file),
                    1 << 20,
                )
                .map(|r| r.map_err(|e| Error::internal("artifact read error", e)))
                .boxed()
            }
            object_store::GetResultPayload::Stream(s) => s.map(|r| r.map_err(store_err)).boxed(),
        };
        Ok((size, stream))
    }

    pub async fn get_bytes(&self, path: &ArtifactPath) -> Result<Bytes> {
        let result = self.store.get(&path.object()?).await.map_err(store_err)?;
        result.bytes().await.map_err(store_err)
    }

    /// Lists the direct children of a directory. A file or a missing path lists as empty, as
    /// MLflow's proxy answers.
    pub async fn list(&self, path: &ArtifactPath) -> Result<Vec<FileInfo>> {
        let prefix = if path.is_root() {
            None
        } else {
            Some(path.object()?)
        };
        let listing = match self.store.list_with_delimiter(prefix.as_ref()).await {
            Ok(l) => l,
            Err(object_store::Error::NotFound { .. }) => return Ok(Vec::new()),
            Err(e) => return Err(store_err(e)),
        };
        let mut out: Vec<FileInfo> = listing
            .common_prefixes
            .into_iter()
            .map(|p| FileInfo {
                path: p.to_string(),
                is_dir: true,
                file_size: None,
            })
            .chain(listing.objects.into_iter().map(|o| FileInfo {
                path: o.location.to_string(),
                is_dir: false,
                file_size: Some(o.size),
            }))
            .collect();
        out.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(out)
    }

    /// Deletes a file, or everything under a directory.
    pub async fn delete(&self, path: &ArtifactPath) -> Result<()> {
        if path.is_root() {
            return Err(Error::invalid("Refusing to delete the artifact root"));
        }
        let object = path.object()?;
        // A directory: delete what is under it (object_store has no directories of its own).
        let mut children = self.store.list(Some(&object));
        let mut found = false;
        while let Some(meta) = children.next().await {
            let meta = meta.map_err(store_err)?;
            self.store.delete(&meta.location).await.map_err(store_err)?;
            found = true;
        }
        if found {
            return Ok(());
        }
        self.store.delete(&object).await.map_err(store_err)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(
            ArtifactPath::parse("a/b/c.txt").unwrap().as_str(),
            "a/b/c.txt"
        );
        assert_eq!(ArtifactPath::parse("a//b/./c").unwrap().as_str(), "a/b/c");
        assert!(ArtifactPath::parse("").unwrap().is_root());
        for bad in [
            "../x",
            "a/../../x",
            "/etc/passwd",
            "a\\b",
            "C:/x",
            "a/..",
            "x\0y",
        ] {
            assert!(ArtifactPath::parse(bad).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let store = ArtifactStore::open(&format!("file://{}", dir.path().display())).unwrap();
        let p = ArtifactPath::parse("0/run/artifacts/sub/f.txt").unwrap();
        store.put(&p, Bytes::from_static(b"hello")).await.unwrap();
        let local = store.local_path(&p).unwrap();
        assert_eq!(local, dir.path().join("0/run/artifacts/sub/f.txt"));
        assert_eq!(std::fs::read(&local).unwrap(), b"hello");
        assert_eq!(&store.get_bytes(&p).await.unwrap()[..], b"hello");
        let listing = store
            .list(&ArtifactPath::parse("0/run/artifacts").unwrap())
            .await
            .unwrap();
        assert_eq!(listing.len(), 1);
        assert!(listing[0].is_dir);
        assert_eq!(listing[0].path, "0/run/artifacts/sub");
        assert!(store.list(&p).await.unwrap().is_empty());
        assert!(
            store
                .list(&ArtifactPath::parse("nope").unwrap())
                .await
                .unwrap()
                .is_empty()
        );

        let big = ArtifactPath::parse("0/run/artifacts/big.bin").unwrap();
        let mut up = store.put_multipart(&big).await.unwrap();
        for _ in 0..3 {
            up.write(Bytes::from(vec![7u8; 5 * 1024 * 1024]))
                .await
                .unwrap();
        }
        up.finish().await.unwrap();
        assert_eq!(store.get_bytes(&big).await.unwrap().len(), 15 * 1024 * 1024);

        store
            .delete(&ArtifactPath::parse("0/run/artifacts/sub").unwrap())
            .await
            .unwrap();
        assert!(store.get_bytes(&p).await.unwrap_err().is_not_found());
    }
}
