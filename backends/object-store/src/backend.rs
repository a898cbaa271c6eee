//! `ObjectStoreBlobStore`: the BlobStore operations on any object_store.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::TryStreamExt;
use kingpin_api::{BlobKey, BlobMeta, BlobStore, Error, ErrorKind, Result};
use object_store::aws::AmazonS3Builder;
use object_store::azure::MicrosoftAzureBuilder;
use object_store::gcp::GoogleCloudStorageBuilder;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, RetryConfig};
use tokio::sync::OnceCell;

use crate::config::{ConditionalPut, ObjectStoreUrl, StoreKind};
use crate::credentials::{check_azure, check_gcs, AwsChain};
use crate::error::from_object_store;

/// How a put keeps an existing object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Guard {
    /// The store's conditional create, which this store is known to honour.
    Conditional,
    /// Look first, then put.
    CheckFirst,
}

/// A [`BlobStore`] on an object_store, with every key under a root prefix.
#[derive(Debug, Clone)]
pub struct ObjectStoreBlobStore {
    store: Arc<dyn ObjectStore>,
    root: Path,
    /// The URL without options, for messages.
    name: String,
    /// How the store was asked to guard puts; `None` for a store that
    /// honours conditional creates by construction (local, memory, or one
    /// handed to [`new`](Self::new)).
    conditional_put: Option<ConditionalPut>,
    /// What the first put found the server to honour.
    resolved: Arc<OnceCell<Guard>>,
}

impl ObjectStoreBlobStore {
    /// Wraps `store`, keeping every key under `root` (may be empty). The
    /// store's conditional create is trusted: use
    /// [`with_conditional_put`](Self::with_conditional_put) for a remote
    /// store that may ignore it.
    pub fn new(store: Arc<dyn ObjectStore>, root: &str, name: impl Into<String>) -> Result<Self> {
        let root =
            Path::parse(root).map_err(|e| Error::invalid(format!("invalid root {root:?}: {e}")))?;
        Ok(ObjectStoreBlobStore {
            store,
            root,
            name: name.into(),
            conditional_put: None,
            resolved: Arc::new(OnceCell::new()),
        })
    }

    /// Verifies, at the first put, that the server honours conditional
    /// creates (see [`ConditionalPut`]), instead of trusting it.
    pub fn with_conditional_put(mut self, mode: ConditionalPut) -> Self {
        self.conditional_put = Some(mode);
        self
    }

    /// Opens the store a URL names (see [`ObjectStoreUrl`]). A `file://`
    /// directory is created if missing; `memory://` is a fresh empty store.
    /// Cloud stores take their credentials from the environment (for S3,
    /// the chain `kingpin-s3` uses, profiles included) and never from the
    /// cloud's metadata service unless the URL says `instance_metadata=true`.
    pub async fn from_url(url: &str) -> Result<Self> {
        let url = ObjectStoreUrl::parse(url)?;
        let name = url.to_string();
        let (store, root): (Arc<dyn ObjectStore>, String) = match url.kind {
            StoreKind::File => {
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
                (Arc::new(fs), String::new())
            }
            StoreKind::Memory => (Arc::new(InMemory::new()), String::new()),
            StoreKind::S3 => (s3(&url, &name).await?, prefix(&url)),
            StoreKind::Gcs => (gcs(&url, &name)?, prefix(&url)),
            StoreKind::Azure => (azure(&url, &name)?, prefix(&url)),
        };
        let store = Self::new(store, &root, name)?;
        Ok(if url.is_remote() {
            store.with_conditional_put(url.conditional_put)
        } else {
            store
        })
    }

    fn path(&self, key: &BlobKey) -> Path {
        key.as_str()
            .split('/')
            .fold(self.root.clone(), |path, part| path.join(part))
    }

    fn what(&self, key: &BlobKey) -> String {
        format!("{key} in {}", self.name)
    }

    /// Puts `data` at `path` unless something is there: `Ok(false)` if it
    /// was.
    async fn create(&self, path: &Path, data: Bytes) -> object_store::Result<bool> {
        let options = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        match self
            .store
            .put_opts(path, PutPayload::from(data), options)
            .await
        {
            Ok(_) => Ok(true),
            Err(object_store::Error::AlreadyExists { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// How puts guard against overwrites: found out once, by creating a
    /// scratch object twice (servers exist that accept the condition and
    /// overwrite anyway).
    async fn guard(&self) -> Result<Guard> {
        match self.conditional_put {
            None => return Ok(Guard::Conditional),
            Some(ConditionalPut::CheckFirst) => return Ok(Guard::CheckFirst),
            Some(_) => {}
        }
        self.resolved
            .get_or_try_init(|| async {
                let probe = self
                    .root
                    .clone()
                    .join(".kingpin-probe")
                    .join(format!("{:016x}", rand::random::<u64>()));
                let what = format!("a probe object in {}", self.name);
                let fail = |e| from_object_store(e, &what);
                self.create(&probe, Bytes::from_static(b"1"))
                    .await
                    .map_err(fail)?;
                let honoured = !self
                    .create(&probe, Bytes::from_static(b"2"))
                    .await
                    .map_err(fail)?;
                let _ = self.store.delete(&probe).await;
                if honoured {
                    Ok(Guard::Conditional)
                } else {
                    tracing::warn!(
                        store = %self.name,
                        "the store overwrote an object despite a conditional create; \
                         checking that an object is absent before each put instead"
                    );
                    Ok(Guard::CheckFirst)
                }
            })
            .await
            .copied()
    }
}

/// The key prefix of a cloud URL (`s3://bucket/prefix` → `prefix`).
fn prefix(url: &ObjectStoreUrl) -> String {
    url.url.path().trim_matches('/').to_owned()
}

fn retry(url: &ObjectStoreUrl) -> RetryConfig {
    let mut retry = RetryConfig::default();
    if let Some(attempts) = url.max_attempts {
        retry.max_retries = attempts.saturating_sub(1) as usize;
    }
    retry
}

async fn s3(url: &ObjectStoreUrl, name: &str) -> Result<Arc<dyn ObjectStore>> {
    let mut builder = AmazonS3Builder::from_env().with_url(url.url.as_str());
    for (key, value) in &url.options {
        let key = key
            .parse()
            .map_err(|e| Error::invalid(format!("{name}: {e}")))?;
        builder = builder.with_config(key, value);
    }
    let explicit_region = builder.get_config_value(&object_store::aws::AmazonS3ConfigKey::Region);
    let region = kingpin_aws_credentials::resolve_region(explicit_region.as_deref()).await;
    let chain = kingpin_aws_credentials::credential_chain(&region, url.instance_metadata);
    let store = builder
        .with_region(region.as_ref())
        .with_credentials(Arc::new(AwsChain::new(chain, url.instance_metadata)))
        .with_retry(retry(url))
        .build()
        .map_err(|e| from_object_store(e, name))?;
    Ok(Arc::new(store))
}

fn gcs(url: &ObjectStoreUrl, name: &str) -> Result<Arc<dyn ObjectStore>> {
    let mut builder = GoogleCloudStorageBuilder::from_env().with_url(url.url.as_str());
    for (key, value) in &url.options {
        let key = key
            .parse()
            .map_err(|e| Error::invalid(format!("{name}: {e}")))?;
        builder = builder.with_config(key, value);
    }
    check_gcs(&builder, url.instance_metadata, name)?;
    let store = builder
        .with_retry(retry(url))
        .build()
        .map_err(|e| from_object_store(e, name))?;
    Ok(Arc::new(store))
}

fn azure(url: &ObjectStoreUrl, name: &str) -> Result<Arc<dyn ObjectStore>> {
    let mut builder = MicrosoftAzureBuilder::from_env().with_url(url.url.as_str());
    for (key, value) in &url.options {
        let key = key
            .parse()
            .map_err(|e| Error::invalid(format!("{name}: {e}")))?;
        builder = builder.with_config(key, value);
    }
    check_azure(&builder, url.instance_metadata, name)?;
    let store = builder
        .with_retry(retry(url))
        .build()
        .map_err(|e| from_object_store(e, name))?;
    Ok(Arc::new(store))
}

#[async_trait]
impl BlobStore for ObjectStoreBlobStore {
    async fn put_if_absent(&self, key: &BlobKey, data: Bytes) -> Result<()> {
        let path = self.path(key);
        let created = match self.guard().await? {
            Guard::Conditional => self.create(&path, data).await,
            Guard::CheckFirst => match self.store.head(&path).await {
                Ok(_) => Ok(false),
                Err(object_store::Error::NotFound { .. }) => self
                    .store
                    .put(&path, PutPayload::from(data))
                    .await
                    .map(|_| true),
                Err(e) => Err(e),
            },
        }
        .map_err(|e| from_object_store(e, &self.what(key)))?;
        if created {
            Ok(())
        } else {
            Err(Error::new(
                ErrorKind::AlreadyExists,
                format!("blob {} already exists", self.what(key)),
            ))
        }
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
            // Files not written through kingpin (e.g. editor leftovers, or a
            // probe left behind) are not blobs; skip them rather than fail
            // the whole listing.
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
