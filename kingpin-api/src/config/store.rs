//! `ConfigStore`: versioned configs, content in the blob store, a record in
//! the coordinator.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use sha2::{Digest, Sha256};

use crate::backoff::Backoff;
use crate::blob::{BlobKey, BlobStore};
use crate::config::name::ConfigName;
use crate::config::prepared::new_write_id;
use crate::config::record::{ChangeInfo, ConfigRecord};
use crate::config::resolve::DEFAULT_RESOLVE_TIMEOUT;
use crate::coordinator::Coordinator;
use crate::error::{Error, ErrorKind, Result};

/// Default limit on a config's content: 16 MiB.
pub const DEFAULT_MAX_CONFIG_SIZE: usize = 16 * 1024 * 1024;
/// Default number of versions garbage collection keeps.
pub const DEFAULT_KEEP_VERSIONS: usize = 100;
/// Optimistic attempts `update` makes before giving up under contention.
const MAX_UPDATE_ATTEMPTS: usize = 200;
/// How long a writer that lost a compare-and-set waits before its next
/// attempt: full jitter from 2 ms, doubling to at most 32 ms. A low ceiling
/// keeps a writer that lost several times from waiting much longer than
/// the others.
fn conflict_backoff() -> Backoff {
    Backoff::new(Duration::from_millis(2), Duration::from_millis(32))
}

/// Configs whose last written content a store remembers for `update`.
const WRITTEN_CACHE_CONFIGS: usize = 1024;

/// A config's current version, verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The record the coordinator holds.
    pub record: ConfigRecord,
    /// The content, checked against the record's sha256 and size.
    pub content: Bytes,
    /// The coordinator node's version, for compare-and-set.
    pub node_version: u64,
}

/// What a garbage collection removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Content blobs deleted (old versions and orphans of lost races).
    pub blobs_deleted: usize,
    /// History records deleted.
    pub records_deleted: usize,
}

/// Versioned configs over a [`Coordinator`] and a [`BlobStore`]
/// (design.md §4).
///
/// Writes put the content blob first, then compare-and-set the record, so a
/// record never points at a missing blob and a lost race leaves only an
/// orphan blob, never a lost update. Reads verify sha256 and size.
#[derive(Debug, Clone)]
pub struct ConfigStore {
    pub(super) coordinator: Arc<dyn Coordinator>,
    pub(super) blobs: Arc<dyn BlobStore>,
    pub(super) max_size: usize,
    // The content this store last wrote per config, keyed by its blob key.
    // Blobs are immutable and named by version and sha256, so when the
    // record still points at that key, `update` needs no blob read: a
    // writer's sequential updates cost one blob put each, not a get too.
    written: Arc<Mutex<HashMap<ConfigName, (String, Bytes)>>>,
    pub(super) resolve_timeout: Duration,
    retry_unavailable: Duration,
}

pub(super) fn sha256_hex(data: &[u8]) -> String {
    format!("{:x}", Sha256::digest(data))
}

pub(super) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Blobs of a config live under `<prefix>/@versions/` and its history under
/// `<prefix>/@history/`: `@` cannot occur in a config name, so a nested
/// config (`a.b.c` under `a.b`) never shares these directories.
pub(super) fn versions_dir(name: &ConfigName) -> Result<BlobKey> {
    name.blob_prefix().join("@versions")
}

pub(super) fn history_dir(name: &ConfigName) -> Result<BlobKey> {
    name.blob_prefix().join("@history")
}

pub(super) fn history_key(name: &ConfigName, version: u64) -> Result<BlobKey> {
    history_dir(name)?.join(&format!("{version:010}.json"))
}

/// The version number in a content blob's name (`0000000007-<sha>`).
pub(super) fn blob_version(key: &BlobKey) -> Option<u64> {
    key.as_str()
        .rsplit('/')
        .next()?
        .split('-')
        .next()?
        .parse()
        .ok()
}

impl ConfigStore {
    /// A store over `coordinator` and `blobs`, with a 16 MiB size limit.
    pub fn new(coordinator: Arc<dyn Coordinator>, blobs: Arc<dyn BlobStore>) -> Self {
        ConfigStore {
            coordinator,
            blobs,
            max_size: DEFAULT_MAX_CONFIG_SIZE,
            written: Arc::default(),
            resolve_timeout: DEFAULT_RESOLVE_TIMEOUT,
            retry_unavailable: Duration::ZERO,
        }
    }

    /// How long a write whose reply was lost (a leader election, a reset
    /// connection) keeps reading to learn whether it landed, before it
    /// fails with `Unavailable` saying the outcome is unknown. Default 15 s.
    pub fn with_resolve_timeout(mut self, timeout: Duration) -> Self {
        self.resolve_timeout = timeout;
        self
    }

    /// Lets `update` (and every managed operation, `write`, `rollback`)
    /// ride through an outage of up to `limit`: a read that fails with a
    /// retryable error is tried again with backoff until then. Writes are
    /// idempotent by their write id, so nothing applies twice. Default
    /// zero: the first such error is returned.
    pub fn with_unavailable_retry(mut self, limit: Duration) -> Self {
        self.retry_unavailable = limit;
        self
    }

    /// Sets the content size limit.
    pub fn with_max_size(mut self, max_size: usize) -> Self {
        self.max_size = max_size;
        self
    }

    /// The content size limit.
    pub fn max_size(&self) -> usize {
        self.max_size
    }

    /// The coordinator the records live in.
    pub fn coordinator(&self) -> &Arc<dyn Coordinator> {
        &self.coordinator
    }

    /// The blob store the contents and history live in.
    pub fn blobs(&self) -> &Arc<dyn BlobStore> {
        &self.blobs
    }

    /// The current record and node version, without the content: every
    /// version acknowledged before the call is seen (the session first
    /// catches up with the cluster, see [`Coordinator::sync`]).
    pub async fn record(&self, name: &ConfigName) -> Result<Option<(ConfigRecord, u64)>> {
        self.coordinator.sync(name.node_path()).await?;
        self.record_as_watched(name).await
    }

    /// The current record as the session's member has it, without first
    /// catching up with the cluster: for readers that follow the config's
    /// watch, such as the monitor. A change is reported after the member
    /// applied it, so this read sees at least the version the watch
    /// reported, and saves a round trip to the leader per read; another
    /// session's write acknowledged moments ago may be missed until its
    /// own watch event arrives.
    pub async fn record_as_watched(
        &self,
        name: &ConfigName,
    ) -> Result<Option<(ConfigRecord, u64)>> {
        match self.coordinator.get(name.node_path()).await {
            Ok(node) => Ok(Some((
                ConfigRecord::from_json(&node.data, name.as_str())?,
                node.stat.version,
            ))),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The content a record points at, verified against its sha256 and size.
    ///
    /// Errors (kind `Backend`) when the blob is missing or does not match:
    /// bad data never reaches a caller.
    pub async fn content(&self, name: &ConfigName, record: &ConfigRecord) -> Result<Bytes> {
        let key = record.blob()?;
        let content = match self.blobs.get(&key).await {
            Ok(content) => content,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                return Err(Error::new(
                    ErrorKind::Backend,
                    format!(
                        "{name} version {} points at blob {key}, which is missing",
                        record.version
                    ),
                )
                .with_source(e))
            }
            // Same kind (a retryable failure stays retryable), with the
            // config a reader asked for.
            Err(e) => {
                return Err(Error::new(
                    e.kind(),
                    format!("reading {name} version {}", record.version),
                )
                .with_source(e))
            }
        };
        let sha = sha256_hex(&content);
        if content.len() as u64 != record.size || sha != record.sha256 {
            return Err(Error::new(
                ErrorKind::Backend,
                format!(
                    "{name} version {}: blob {key} is corrupt ({} bytes, sha256 {sha}; the record says {} bytes, sha256 {})",
                    record.version,
                    content.len(),
                    record.size,
                    record.sha256
                ),
            ));
        }
        Ok(content)
    }

    /// The current version with its verified content; `None` if the config
    /// was never written.
    pub async fn read(&self, name: &ConfigName) -> Result<Option<Config>> {
        let Some((record, node_version)) = self.record(name).await? else {
            return Ok(None);
        };
        let content = self.content(name, &record).await?;
        Ok(Some(Config {
            record,
            content,
            node_version,
        }))
    }

    /// Writes `content` as the next version, whatever the current one is.
    pub async fn write(
        &self,
        name: &ConfigName,
        content: Bytes,
        change: &ChangeInfo,
    ) -> Result<ConfigRecord> {
        // The old content does not matter, so it is not read.
        self.read_modify_write(name, change, false, |_| Ok(Some(content.clone())))
            .await?
            .ok_or_else(|| Error::not_found(name.node_path()))
    }

    /// Writes `content` only if the record's node is still at
    /// `expected_node_version` (`None`: only if the config does not exist
    /// yet). `BadVersion` otherwise, and nothing changes but an orphan blob.
    pub async fn write_if(
        &self,
        name: &ConfigName,
        content: Bytes,
        change: &ChangeInfo,
        expected: Option<(&ConfigRecord, u64)>,
    ) -> Result<ConfigRecord> {
        let prepared = self.prepare_write(name, content, change, expected).await?;
        self.send_resolving(&[], std::slice::from_ref(&prepared))
            .await?;
        Ok(self.committed(prepared).await)
    }

    pub(super) async fn record_history(
        &self,
        name: &ConfigName,
        record: &ConfigRecord,
    ) -> Result<()> {
        match self
            .blobs
            .put_if_absent(&history_key(name, record.version)?, record.to_json().into())
            .await
        {
            Err(e) if e.kind() != ErrorKind::AlreadyExists => Err(e),
            _ => Ok(()),
        }
    }

    pub(super) fn remember_written(
        &self,
        name: &ConfigName,
        record: &ConfigRecord,
        content: Bytes,
    ) {
        let Ok(mut written) = self.written.lock() else {
            return;
        };
        if written.len() >= WRITTEN_CACHE_CONFIGS && !written.contains_key(name) {
            written.clear();
        }
        written.insert(name.clone(), (record.blob_key.clone(), content));
    }

    fn written_content(&self, name: &ConfigName, record: &ConfigRecord) -> Option<Bytes> {
        let written = self.written.lock().ok()?;
        let (key, content) = written.get(name)?;
        (*key == record.blob_key).then(|| content.clone())
    }

    /// Read-modify-write against the store: reads the current content,
    /// asks `change_content` for the new one (`None`: nothing to change), and
    /// writes it with compare-and-set, retrying with jittered backoff when
    /// another writer got there first. Concurrent updates never lose each
    /// other's changes.
    ///
    /// Returns the record written, or the current one when nothing changed;
    /// `None` when the config does not exist and `change_content` did not
    /// create it. `change_content` may run several times, once per attempt;
    /// an error from it ends the update with nothing written.
    pub async fn update<F>(
        &self,
        name: &ConfigName,
        change: &ChangeInfo,
        change_content: F,
    ) -> Result<Option<ConfigRecord>>
    where
        F: FnMut(Option<&Bytes>) -> Result<Option<Bytes>>,
    {
        self.read_modify_write(name, change, true, change_content)
            .await
    }

    /// The compare-and-set loop of `update` and `write`; `read_content`
    /// false hands `change_content` an empty current content (for writers
    /// that replace it whatever it is).
    async fn read_modify_write<F>(
        &self,
        name: &ConfigName,
        change: &ChangeInfo,
        read_content: bool,
        mut change_content: F,
    ) -> Result<Option<ConfigRecord>>
    where
        F: FnMut(Option<&Bytes>) -> Result<Option<Bytes>>,
    {
        let mut backoff = conflict_backoff();
        // One id for every attempt: at most one of them can land (each is
        // a compare-and-set of the version it read), and whichever did is
        // recognised as this update's.
        let write_id = new_write_id();
        let outage_deadline = Instant::now() + self.retry_unavailable;
        let mut outage_backoff = Backoff::new(Duration::from_millis(50), Duration::from_secs(1));
        for _ in 0..MAX_UPDATE_ATTEMPTS {
            let current = match self.current(name, read_content).await {
                Ok(current) => current,
                Err(e) if e.is_retryable() && Instant::now() < outage_deadline => {
                    tokio::time::sleep(outage_backoff.next_delay()).await;
                    continue;
                }
                Err(e) => return Err(e),
            };
            if let Some(current) = &current {
                if current.record.write_id.as_ref() == Some(&write_id) {
                    return Ok(Some(current.record.clone()));
                }
            }
            let Some(next) = change_content(current.as_ref().map(|c| &c.content))? else {
                return Ok(current.map(|c| c.record));
            };
            let expected = current.as_ref().map(|c| (&c.record, c.node_version));
            let prepared = self
                .prepare_write_with_id(name, next, change, expected, write_id.clone())
                .await?;
            match self
                .send_resolving(&[], std::slice::from_ref(&prepared))
                .await
            {
                Ok(()) => return Ok(Some(self.committed(prepared).await)),
                Err(e) if e.kind() == ErrorKind::BadVersion => {
                    tokio::time::sleep(backoff.next_delay()).await
                }
                Err(e) => return Err(e),
            }
        }
        Err(Error::unavailable(format!(
            "{name}: gave up after {MAX_UPDATE_ATTEMPTS} conflicting attempts"
        )))
    }

    /// The current version for an update: its content only when asked
    /// (and from what this store wrote last when it still is current).
    async fn current(&self, name: &ConfigName, read_content: bool) -> Result<Option<Config>> {
        let Some((record, node_version)) = self.record(name).await? else {
            return Ok(None);
        };
        let content = if !read_content {
            Bytes::new()
        } else if let Some(content) = self.written_content(name, &record) {
            content
        } else {
            self.content(name, &record).await?
        };
        Ok(Some(Config {
            record,
            content,
            node_version,
        }))
    }

    /// Every recorded version, oldest first.
    ///
    /// A write that could not record its history entry (history is best
    /// effort) is backfilled here for the current version when possible;
    /// a store that refuses the write (read-only credentials) still gets
    /// the list.
    pub async fn history(&self, name: &ConfigName) -> Result<Vec<ConfigRecord>> {
        let mut records = Vec::new();
        for meta in self.blobs.list(Some(&history_dir(name)?)).await? {
            let json = self.blobs.get(&meta.key).await?;
            records.push(ConfigRecord::from_json(&json, name.as_str())?);
        }
        if let Some((current, _)) = self.record(name).await? {
            if !records.iter().any(|r| r.version == current.version) {
                if let Err(e) = self.record_history(name, &current).await {
                    tracing::warn!(config = %name, version = current.version, error = %e, "could not backfill history");
                }
                records.push(current);
            }
        }
        records.sort_by_key(|r| r.version);
        Ok(records)
    }

    /// The record of one version: the current record, or the history
    /// entry of an older one; `None` if there is no such version (or GC
    /// removed it).
    pub async fn record_at(&self, name: &ConfigName, version: u64) -> Result<Option<ConfigRecord>> {
        if let Some((current, _)) = self.record(name).await? {
            if current.version == version {
                return Ok(Some(current));
            }
        }
        match self.blobs.get(&history_key(name, version)?).await {
            Ok(json) => ConfigRecord::from_json(&json, name.as_str()).map(Some),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Writes an old version's content as a new version.
    pub async fn rollback(
        &self,
        name: &ConfigName,
        version: u64,
        change: &ChangeInfo,
    ) -> Result<ConfigRecord> {
        let old = self.record_at(name, version).await?.ok_or_else(|| {
            Error::new(
                ErrorKind::NotFound,
                format!("{name} has no version {version}"),
            )
        })?;
        let content = self.content(name, &old).await?;
        self.write(name, content, change).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::{MemoryBlobStore, MemoryServer};

    struct Fixture {
        server: MemoryServer,
        blobs: MemoryBlobStore,
        store: ConfigStore,
    }

    fn fixture() -> Fixture {
        let server = MemoryServer::new();
        let blobs = MemoryBlobStore::new();
        let store = ConfigStore::new(Arc::new(server.connect()), Arc::new(blobs.clone()));
        Fixture {
            server,
            blobs,
            store,
        }
    }

    fn name(s: &str) -> ConfigName {
        ConfigName::parse(s).unwrap()
    }

    fn who(message: &str) -> ChangeInfo {
        ChangeInfo::new("alice", message)
    }

    #[tokio::test]
    async fn writes_versions_and_reads_the_latest() {
        let f = fixture();
        let n = name("config.app.flags");
        assert!(f.store.read(&n).await.unwrap().is_none());
        let v1 = f
            .store
            .write(&n, Bytes::from_static(b"one"), &who("first"))
            .await
            .unwrap();
        let v2 = f
            .store
            .write(&n, Bytes::from_static(b"two!"), &who("second"))
            .await
            .unwrap();
        assert_eq!((v1.version, v2.version), (1, 2));
        let current = f.store.read(&n).await.unwrap().unwrap();
        assert_eq!(current.content, Bytes::from_static(b"two!"));
        assert_eq!(current.record, v2);
        assert_eq!(
            (v2.size, v2.author.as_str(), v2.message.as_str()),
            (4, "alice", "second")
        );
        assert_eq!(v2.sha256, sha256_hex(b"two!"));
        assert!(v2
            .blob_key
            .starts_with("config/app/flags/@versions/0000000002-"));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_updates_lose_nothing() {
        let f = fixture();
        let n = name("config.list");
        f.store
            .write(&n, Bytes::from_static(b"[]"), &who("init"))
            .await
            .unwrap();
        let mut tasks = Vec::new();
        for writer in 0..8 {
            let store = ConfigStore::new(Arc::new(f.server.connect()), Arc::new(f.blobs.clone()));
            let n = n.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0..25 {
                    store
                        .update(&n, &who("add"), |current| {
                            let mut items: Vec<String> =
                                serde_json::from_slice(current.unwrap()).unwrap();
                            items.push(format!("{writer}-{i}"));
                            Ok(Some(serde_json::to_vec(&items).unwrap().into()))
                        })
                        .await
                        .unwrap();
                }
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        let items: Vec<String> =
            serde_json::from_slice(&f.store.read(&n).await.unwrap().unwrap().content).unwrap();
        assert_eq!(items.len(), 200);
        assert_eq!(
            items.iter().collect::<std::collections::HashSet<_>>().len(),
            200
        );
    }

    #[tokio::test]
    async fn a_corrupt_blob_is_an_error_and_changes_nothing() {
        let f = fixture();
        let n = name("config.x");
        let record = f
            .store
            .write(&n, Bytes::from_static(b"good"), &who("ok"))
            .await
            .unwrap();
        f.blobs
            .corrupt(&record.blob().unwrap(), Bytes::from_static(b"evil"));
        let err = f.store.read(&n).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Backend);
        assert!(err.to_string().contains("corrupt"), "{err}");
        // Another writer (this one remembers what it wrote) must read the
        // blob, and refuses to build on corrupt content.
        let other = ConfigStore::new(Arc::new(f.server.connect()), Arc::new(f.blobs.clone()));
        let err = other
            .update(&n, &who("x"), |_| Ok(Some(Bytes::from_static(b"new"))))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("corrupt"), "{err}");
        assert_eq!(
            f.store.record(&n).await.unwrap().unwrap().0,
            record,
            "the record is untouched"
        );
    }

    #[tokio::test]
    async fn a_record_pointing_at_a_missing_blob_is_an_error() {
        let f = fixture();
        let n = name("config.x");
        let record = f
            .store
            .write(&n, Bytes::from_static(b"data"), &who("ok"))
            .await
            .unwrap();
        f.blobs.delete(&record.blob().unwrap()).await.unwrap();
        let err = f.store.read(&n).await.unwrap_err();
        assert!(err.to_string().contains("missing"), "{err}");
    }

    #[tokio::test]
    async fn a_failure_after_the_blob_put_leaves_the_old_version() {
        let f = fixture();
        let n = name("config.x");
        f.store
            .write(&n, Bytes::from_static(b"old"), &who("ok"))
            .await
            .unwrap();
        let before = f.store.read(&n).await.unwrap().unwrap();
        // The coordinator goes away between the blob put and the record.
        f.server.stop();
        let expected = Some((&before.record, before.node_version));
        let err = f
            .store
            .clone()
            .with_resolve_timeout(Duration::from_millis(200))
            .write_if(&n, Bytes::from_static(b"new"), &who("lost"), expected)
            .await
            .unwrap_err();
        assert!(err.is_retryable(), "{err}");
        let versions = f
            .blobs
            .list(None)
            .await
            .unwrap()
            .into_iter()
            .filter(|m| m.key.as_str().contains("@versions"));
        assert_eq!(
            versions.count(),
            2,
            "the new blob was put before the record failed"
        );
        f.server.start();
        let current = f.store.read(&n).await.unwrap().unwrap();
        assert_eq!(
            (current.record.version, current.content),
            (1, Bytes::from_static(b"old"))
        );
        // The orphan blob of the failed write is garbage collected.
        let report = f.store.gc(&n, 10).await.unwrap();
        assert_eq!(
            report.blobs_deleted, 0,
            "a blob newer than the current version may be a write in flight"
        );
        f.store
            .write(&n, Bytes::from_static(b"newer"), &who("ok"))
            .await
            .unwrap();
        assert_eq!(
            f.store.read(&n).await.unwrap().unwrap().content,
            Bytes::from_static(b"newer")
        );
        // Now the failed write's blob is an orphan at or below the current
        // version, and goes.
        let report = f.store.gc(&n, 10).await.unwrap();
        assert_eq!(report.blobs_deleted, 1);
        assert_eq!(
            f.store.read(&n).await.unwrap().unwrap().content,
            Bytes::from_static(b"newer")
        );
    }

    #[tokio::test]
    async fn oversized_content_is_refused_before_anything_is_written() {
        let f = fixture();
        let store = f.store.clone().with_max_size(8);
        let n = name("config.x");
        let err = store
            .write(&n, Bytes::from_static(b"123456789"), &who("big"))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::TooLarge);
        assert!(f.blobs.list(None).await.unwrap().is_empty());
        assert!(store.record(&n).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn history_and_rollback() {
        let f = fixture();
        let n = name("config.x");
        for (content, message) in [("a", "one"), ("b", "two"), ("c", "three")] {
            f.store
                .write(&n, Bytes::from(content), &who(message))
                .await
                .unwrap();
        }
        let history = f.store.history(&n).await.unwrap();
        let messages: Vec<_> = history
            .iter()
            .map(|r| (r.version, r.message.as_str()))
            .collect();
        assert_eq!(messages, [(1, "one"), (2, "two"), (3, "three")]);
        let rolled = f.store.rollback(&n, 1, &who("back to one")).await.unwrap();
        assert_eq!(rolled.version, 4);
        assert_eq!(
            f.store.read(&n).await.unwrap().unwrap().content,
            Bytes::from_static(b"a")
        );
        assert_eq!(
            f.store
                .rollback(&n, 99, &who("no"))
                .await
                .unwrap_err()
                .kind(),
            ErrorKind::NotFound
        );
    }

    #[tokio::test]
    async fn gc_keeps_the_newest_versions_and_spares_nested_configs() {
        let f = fixture();
        let parent = name("config.a");
        let child = name("config.a.b");
        for i in 1..=10 {
            f.store
                .write(&parent, Bytes::from(format!("p{i}")), &who("p"))
                .await
                .unwrap();
        }
        f.store
            .write(&child, Bytes::from_static(b"child"), &who("c"))
            .await
            .unwrap();
        let report = f.store.gc(&parent, 3).await.unwrap();
        assert_eq!(
            report,
            GcReport {
                blobs_deleted: 7,
                records_deleted: 7
            }
        );
        let versions: Vec<_> = f
            .store
            .history(&parent)
            .await
            .unwrap()
            .iter()
            .map(|r| r.version)
            .collect();
        assert_eq!(versions, [8, 9, 10]);
        assert_eq!(
            f.store.read(&parent).await.unwrap().unwrap().content,
            Bytes::from_static(b"p10")
        );
        assert_eq!(
            f.store.read(&child).await.unwrap().unwrap().content,
            Bytes::from_static(b"child")
        );
        // The current version survives even keep = 0.
        f.store.gc(&parent, 0).await.unwrap();
        assert_eq!(
            f.store.read(&parent).await.unwrap().unwrap().content,
            Bytes::from_static(b"p10")
        );
    }
}
