//! `ObjectStoreBlobStore`: the BlobStore operations on any object_store.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::TryStreamExt;
use kingpin_api::{BlobKey, BlobMeta, BlobStore, Error, ErrorKind, Result};
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};

use crate::config::ObjectStoreUrl;
use crate::error::from_object_store;

/// A [`BlobStore`] on an object_store, with every key under a root prefix.
#[derive(Debug, Clone)]
pub struct ObjectStoreBlobStore {
    store: Arc<dyn ObjectStore>,
    root: Path,
    /// The URL without options, for messages.
    name: String,
}

impl ObjectStoreBlobStore {
    /// Wraps `store`, keeping every key under `root` (may be empty).
    pub fn new(store: Arc<dyn ObjectStore>, root: &str, name: impl Into<String>) -> Result<Self> {
        let root =
            Path::parse(root).map_err(|e| Error::invalid(format!("invalid root {root:?}: {e}")))?;
        Ok(ObjectStoreBlobStore {
            store,
            root,
            name: name.into(),
        })
    }

    /// Opens the store a URL names (see [`ObjectStoreUrl`]). A `file://`
    /// directory is created if missing; `memory://` is a fresh empty store.
    pub fn from_url(url: &str) -> Result<Self> {
        let url = ObjectStoreUrl::parse(url)?;
        let name = url.to_string();
        match url.scheme() {
            "file" => {
                let dir = url
                    .url
                    .to_file_path()
                    .map_err(|_| Error::invalid(format!("{name} is not a local directory")))?;
                std::fs::create_dir_all(&dir).map_err(|e| {
                    Error::new(
                        ErrorKind::Unavailable,
                        format!("cannot create blob directory {}", dir.display()),
                    )
                    .with_source(e)
                })?;
                let fs = LocalFileSystem::new_with_prefix(&dir)
                    .map_err(|e| from_object_store(e, &name))?
                    .with_automatic_cleanup(true);
                Self::new(Arc::new(fs), "", name)
            }
            "memory" => Self::new(Arc::new(InMemory::new()), "", name),
            _ => {
                let (store, root) = object_store::parse_url_opts(&url.url, url.options.clone())
                    .map_err(|e| from_object_store(e, &name))?;
                Self::new(Arc::from(store), root.as_ref(), name)
            }
        }
    }

    fn path(&self, key: &BlobKey) -> Path {
        key.as_str()
            .split('/')
            .fold(self.root.clone(), |path, part| path.join(part))
    }

    fn what(&self, key: &BlobKey) -> String {
        format!("{key} in {}", self.name)
    }
}

#[async_trait]
impl BlobStore for ObjectStoreBlobStore {
    async fn put_if_absent(&self, key: &BlobKey, data: Bytes) -> Result<()> {
        let options = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        self.store
            .put_opts(&self.path(key), PutPayload::from(data), options)
            .await
            .map(drop)
            .map_err(|e| from_object_store(e, &self.what(key)))
    }

    async fn get(&self, key: &BlobKey) -> Result<Bytes> {
        let result = self
            .store
            .get(&self.path(key))
            .await
            .map_err(|e| from_object_store(e, &self.what(key)))?;
        result
            .bytes()
            .await
            .map_err(|e| from_object_store(e, &self.what(key)))
    }

    async fn delete(&self, key: &BlobKey) -> Result<()> {
        match self.store.delete(&self.path(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(from_object_store(e, &self.what(key))),
        }
    }

    async fn list(&self, prefix: Option<&BlobKey>) -> Result<Vec<BlobMeta>> {
        let base = prefix
            .map(|p| self.path(p))
            .unwrap_or_else(|| self.root.clone());
        let what = prefix
            .map(|p| self.what(p))
            .unwrap_or_else(|| self.name.clone());
        let objects: Vec<_> = self
            .store
            .list(Some(&base))
            .try_collect()
            .await
            .map_err(|e| from_object_store(e, &what))?;
        let mut metas = Vec::with_capacity(objects.len());
        for object in objects {
            let Some(relative) = object.location.prefix_match(&self.root) else {
                continue;
            };
            let key = relative
                .map(|part| part.as_ref().to_owned())
                .collect::<Vec<_>>()
                .join("/");
            // Files not written through kingpin (e.g. editor leftovers) are
            // not blobs; skip them rather than fail the whole listing.
            let Ok(key) = BlobKey::parse(&key) else {
                tracing::debug!(key, "skipping object whose name is not a valid blob key");
                continue;
            };
            if prefix.is_none_or(|p| key.starts_with(p)) {
                metas.push(BlobMeta {
                    key,
                    size: object.size,
                });
            }
        }
        metas.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(metas)
    }
}
