//! `MemoryBlobStore`, the reference implementation of [`BlobStore`].

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;

use crate::blob::{BlobKey, BlobMeta, BlobStore};
use crate::error::{Error, ErrorKind, Result};

/// Objects in a map, shared by clones. [`stop`](Self::stop) simulates an
/// outage for tests of the components above.
#[derive(Debug, Clone, Default)]
pub struct MemoryBlobStore {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Debug, Default)]
struct Inner {
    objects: BTreeMap<BlobKey, Bytes>,
    stopped: bool,
}

impl MemoryBlobStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every call fails with `Unavailable` until [`start`](Self::start).
    pub fn stop(&self) {
        self.lock().stopped = true;
    }

    /// Ends a simulated outage.
    pub fn start(&self) {
        self.lock().stopped = false;
    }

    /// Replaces an object's bytes behind the contract's back, as disk or
    /// operator error might: for tests that readers verify checksums.
    pub fn corrupt(&self, key: &BlobKey, data: Bytes) {
        self.lock().objects.insert(key.clone(), data);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn available(&self) -> Result<std::sync::MutexGuard<'_, Inner>> {
        let inner = self.lock();
        if inner.stopped {
            return Err(Error::unavailable(
                "the memory blob store is stopped (simulated outage)",
            ));
        }
        Ok(inner)
    }
}

#[async_trait]
impl BlobStore for MemoryBlobStore {
    async fn put_if_absent(&self, key: &BlobKey, data: Bytes) -> Result<()> {
        let mut inner = self.available()?;
        if inner.objects.contains_key(key) {
            return Err(Error::new(
                ErrorKind::AlreadyExists,
                format!("blob {key} already exists"),
            ));
        }
        inner.objects.insert(key.clone(), data);
        Ok(())
    }

    async fn get(&self, key: &BlobKey) -> Result<Bytes> {
        let inner = self.available()?;
        inner
            .objects
            .get(key)
            .cloned()
            .ok_or_else(|| Error::new(ErrorKind::NotFound, format!("blob {key} does not exist")))
    }

    async fn delete(&self, key: &BlobKey) -> Result<()> {
        self.available()?.objects.remove(key);
        Ok(())
    }

    async fn list(&self, prefix: Option<&BlobKey>) -> Result<Vec<BlobMeta>> {
        let inner = self.available()?;
        Ok(inner
            .objects
            .iter()
            .filter(|(key, _)| prefix.is_none_or(|p| key.starts_with(p)))
            .map(|(key, data)| BlobMeta {
                key: key.clone(),
                size: data.len() as u64,
            })
            .collect())
    }
}
