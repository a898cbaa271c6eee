//! Writes whose reply was lost. A leader election, a reset connection or a
//! session moving to another server can fail a write after the coordinator
//! applied it; failing the write then would be a lie, and retrying it
//! blindly could apply it twice. Every record carries a random write id
//! (and the id of the record it replaced), so after such a failure the
//! writer reads the record again and knows: its write landed (success),
//! another write took its place (a conflict, as any lost race), or the
//! node is still where the write expected it (send it again: it is a
//! compare-and-set, so at most one of the copies can apply).
//!
//! The extra reads happen only after an ambiguous failure; a write that
//! gets its reply costs nothing more than before.

use std::cmp::Ordering;
use std::time::{Duration, Instant};

use super::name::ConfigName;
use super::prepared::{record_exists_is_a_conflict, PreparedWrite};
use super::record::ConfigRecord;
use super::store::{history_key, ConfigStore};
use crate::backoff::Backoff;
use crate::coordinator::{CreateMode, Op};
use crate::error::{Error, ErrorKind, Result};

/// How long a writer keeps trying to learn the outcome of a write whose
/// reply was lost, by default: longer than an election and a reconnect.
pub const DEFAULT_RESOLVE_TIMEOUT: Duration = Duration::from_secs(15);

/// What became of a write whose reply was lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// The record is the writer's: the write succeeded.
    Landed,
    /// Another write took the version: the write can no longer apply.
    Lost,
    /// The node is still at the version the write expected: the write
    /// may not have reached the coordinator, and may be sent again.
    Pending,
}

fn landed_if(ours: bool) -> Outcome {
    if ours {
        Outcome::Landed
    } else {
        Outcome::Lost
    }
}

fn resolve_backoff() -> Backoff {
    Backoff::new(Duration::from_millis(20), Duration::from_millis(500))
}

impl ConfigStore {
    /// Sends `ops` and the records of `writes` to the coordinator (a plain
    /// compare-and-set or create for one write alone, else a transaction)
    /// and resolves a lost reply (see the module docs).
    ///
    /// `BadVersion` when another write came first, as without a lost
    /// reply; `Unavailable` when the outcome could not be learned within
    /// the resolve timeout (the write may or may not have landed).
    pub(super) async fn send_resolving(&self, ops: &[Op], writes: &[PreparedWrite]) -> Result<()> {
        let deadline = Instant::now() + self.resolve_timeout;
        let mut backoff = resolve_backoff();
        // Whether an earlier attempt may have landed: from then on a
        // conflict may be this writer's own write.
        let mut unsure = false;
        loop {
            let err = match self.send(ops, writes).await {
                Ok(()) => return Ok(()),
                Err(e) => e,
            };
            // A retryable error leaves the outcome unknown; so does a
            // conflict after an attempt that may have landed.
            let ambiguous = err.is_retryable() || (unsure && err.kind() == ErrorKind::BadVersion);
            if !ambiguous {
                return Err(err);
            }
            // A transaction applies all of its writes or none: the first
            // tells for all. With no write there is nothing to look for.
            let Some(probe) = writes.first() else {
                return Err(err);
            };
            unsure = true;
            let outcome = loop {
                match self.outcome(probe).await {
                    Ok(outcome) => break outcome,
                    Err(e) if e.is_retryable() && Instant::now() < deadline => {
                        tokio::time::sleep(backoff.next_delay()).await
                    }
                    Err(e) => return Err(unknown_outcome(probe, self.resolve_timeout, e)),
                }
            };
            tracing::debug!(config = %probe.name, write_id = ?probe.record.write_id, ?outcome, error = %err, "resolved a write whose reply was lost");
            match outcome {
                Outcome::Landed => return Ok(()),
                Outcome::Lost if ambiguous => {
                    return Err(Error::new(
                        ErrorKind::BadVersion,
                        format!(
                            "{}: another write took version {} (this write's reply was lost)",
                            probe.name, probe.record.version
                        ),
                    ))
                }
                Outcome::Lost => return Err(err),
                Outcome::Pending if Instant::now() >= deadline => {
                    return Err(unknown_outcome(probe, self.resolve_timeout, err))
                }
                Outcome::Pending => tokio::time::sleep(backoff.next_delay()).await,
            }
        }
    }

    /// One attempt: the coordinator operations, without resolution.
    async fn send(&self, ops: &[Op], writes: &[PreparedWrite]) -> Result<()> {
        if let ([], [write]) = (ops, writes) {
            let path = write.name.node_path();
            let json = write.record.to_json();
            return match write.expected_node_version {
                Some(version) => self
                    .coordinator
                    .set(path, &json, Some(version))
                    .await
                    .map(|_| ()),
                None => self
                    .coordinator
                    .create(path, &json, CreateMode::Persistent)
                    .await
                    .map(|_| ())
                    .map_err(|e| record_exists_is_a_conflict(&write.name, e)),
            };
        }
        let first_write = ops.len();
        let mut all = ops.to_vec();
        all.extend(writes.iter().map(PreparedWrite::op));
        self.coordinator
            .transaction(all)
            .await
            .map(|_| ())
            .map_err(|e| {
                let failed_write = e
                    .operation_index()
                    .and_then(|i| i.checked_sub(first_write))
                    .and_then(|i| writes.get(i));
                match failed_write {
                    Some(write) => record_exists_is_a_conflict(&write.name, e),
                    None => e,
                }
            })
    }

    /// Reads what became of `write`.
    async fn outcome(&self, write: &PreparedWrite) -> Result<Outcome> {
        let name = &write.name;
        let target = write.record.version;
        let ours = &write.record.write_id;
        let Some((current, _)) = self.record(name).await? else {
            return Ok(Outcome::Pending);
        };
        match current.version.cmp(&target) {
            Ordering::Less => Ok(Outcome::Pending),
            Ordering::Equal => Ok(landed_if(current.write_id == *ours)),
            Ordering::Greater if current.version == target + 1 => {
                Ok(landed_if(current.previous_write_id == *ours))
            }
            Ordering::Greater => {
                // Two or more versions went by: their history entries say.
                if let Some(next) = self.history_entry(name, target + 1).await? {
                    return Ok(landed_if(next.previous_write_id == *ours));
                }
                if let Some(at) = self.history_entry(name, target).await? {
                    return Ok(landed_if(at.write_id == *ours));
                }
                Err(Error::unavailable(format!(
                    "{name}: versions {target} and {} have no history entry yet",
                    target + 1
                )))
            }
        }
    }

    async fn history_entry(&self, name: &ConfigName, version: u64) -> Result<Option<ConfigRecord>> {
        match self.blobs.get(&history_key(name, version)?).await {
            Ok(json) => ConfigRecord::from_json(&json, name.as_str()).map(Some),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }
}

fn unknown_outcome(write: &PreparedWrite, waited: Duration, source: Error) -> Error {
    Error::unavailable(format!(
        "{}: the reply to writing version {} was lost and the coordinator did not answer \
         within {waited:?}: the write may or may not have landed",
        write.name, write.record.version
    ))
    .with_source(source)
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::sync::{Arc, Mutex};

    use async_trait::async_trait;
    use bytes::Bytes;
    use rand::{Rng, SeedableRng};

    use super::*;
    use crate::config::record::ChangeInfo;
    use crate::coordinator::{
        Capabilities, Coordinator, Node, OpResult, SessionEvents, SessionState, Stat, WatchKind,
        WatchStream,
    };
    use crate::memory::{MemoryBlobStore, MemoryServer};
    use crate::path::NodePath;

    /// What happens to one write sent through [`Lossy`].
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Fate {
        Delivered,
        /// Applied, then the reply is lost (the leader died after commit).
        ReplyLost,
        /// Never reaches the server (the connection broke before).
        NotSent,
    }

    /// A coordinator whose writes sometimes lose their reply or never
    /// arrive, with `Unavailable` either way, as a client sees it.
    #[derive(Debug)]
    struct Lossy {
        inner: Arc<dyn Coordinator>,
        rng: Mutex<rand::rngs::StdRng>,
        lost: f64,
        unsent: f64,
        fates: Mutex<Vec<Fate>>,
    }

    impl Lossy {
        fn new(inner: Arc<dyn Coordinator>, seed: u64, lost: f64, unsent: f64) -> Self {
            Lossy {
                inner,
                rng: Mutex::new(rand::rngs::StdRng::seed_from_u64(seed)),
                lost,
                unsent,
                fates: Mutex::default(),
            }
        }

        fn fate(&self) -> Fate {
            let roll: f64 = self.rng.lock().unwrap().random();
            let fate = if roll < self.lost {
                Fate::ReplyLost
            } else if roll < self.lost + self.unsent {
                Fate::NotSent
            } else {
                Fate::Delivered
            };
            self.fates.lock().unwrap().push(fate);
            fate
        }

        fn count(&self, fate: Fate) -> usize {
            self.fates
                .lock()
                .unwrap()
                .iter()
                .filter(|f| **f == fate)
                .count()
        }
    }

    fn lost_reply() -> Error {
        Error::unavailable("connection reset by peer")
    }

    #[async_trait]
    impl Coordinator for Lossy {
        async fn create(&self, path: &NodePath, data: &[u8], mode: CreateMode) -> Result<NodePath> {
            match self.fate() {
                Fate::NotSent => Err(lost_reply()),
                Fate::ReplyLost => self
                    .inner
                    .create(path, data, mode)
                    .await
                    .and(Err(lost_reply())),
                Fate::Delivered => self.inner.create(path, data, mode).await,
            }
        }
        async fn get(&self, path: &NodePath) -> Result<Node> {
            self.inner.get(path).await
        }
        async fn set(&self, path: &NodePath, data: &[u8], version: Option<u64>) -> Result<Stat> {
            match self.fate() {
                Fate::NotSent => Err(lost_reply()),
                Fate::ReplyLost => self
                    .inner
                    .set(path, data, version)
                    .await
                    .and(Err(lost_reply())),
                Fate::Delivered => self.inner.set(path, data, version).await,
            }
        }
        async fn children(&self, path: &NodePath) -> Result<Vec<String>> {
            self.inner.children(path).await
        }
        async fn transaction(&self, ops: Vec<Op>) -> Result<Vec<OpResult>> {
            match self.fate() {
                Fate::NotSent => Err(lost_reply()),
                Fate::ReplyLost => self.inner.transaction(ops).await.and(Err(lost_reply())),
                Fate::Delivered => self.inner.transaction(ops).await,
            }
        }
        async fn watch(&self, path: &NodePath, kind: WatchKind) -> Result<WatchStream> {
            self.inner.watch(path, kind).await
        }
        fn session_events(&self) -> SessionEvents {
            self.inner.session_events()
        }
        fn session_state(&self) -> SessionState {
            self.inner.session_state()
        }
        fn session_id(&self) -> Option<u64> {
            self.inner.session_id()
        }
        fn capabilities(&self) -> Capabilities {
            self.inner.capabilities()
        }
        async fn close(&self) -> Result<()> {
            self.inner.close().await
        }
    }

    fn name() -> ConfigName {
        ConfigName::parse("config.manageddata.test.items").unwrap()
    }

    fn who() -> ChangeInfo {
        ChangeInfo::new("alice", "add")
    }

    fn add(item: String) -> impl FnMut(Option<&Bytes>) -> Result<Option<Bytes>> {
        move |current| {
            let mut items: Vec<String> = match current {
                Some(c) => serde_json::from_slice(c).unwrap(),
                None => Vec::new(),
            };
            items.push(item.clone());
            Ok(Some(serde_json::to_vec(&items).unwrap().into()))
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn updates_whose_replies_are_lost_apply_exactly_once() {
        let server = MemoryServer::new();
        let blobs = Arc::new(MemoryBlobStore::new());
        let mut tasks = Vec::new();
        let mut lossy = Vec::new();
        for writer in 0..8u64 {
            let coordinator = Arc::new(Lossy::new(Arc::new(server.connect()), writer, 0.2, 0.1));
            lossy.push(coordinator.clone());
            let store = ConfigStore::new(coordinator, blobs.clone());
            tasks.push(tokio::spawn(async move {
                for i in 0..25 {
                    store
                        .update(&name(), &who(), add(format!("{writer}-{i}")))
                        .await
                        .unwrap();
                }
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        let store = ConfigStore::new(Arc::new(server.connect()), blobs);
        let items: Vec<String> =
            serde_json::from_slice(&store.read(&name()).await.unwrap().unwrap().content).unwrap();
        let lost: usize = lossy.iter().map(|c| c.count(Fate::ReplyLost)).sum();
        let unsent: usize = lossy.iter().map(|c| c.count(Fate::NotSent)).sum();
        assert!(
            lost > 20 && unsent > 10,
            "faults injected: {lost} lost, {unsent} unsent"
        );
        assert_eq!(
            items.len(),
            200,
            "every update applied once ({lost} replies lost)"
        );
        assert_eq!(items.iter().collect::<HashSet<_>>().len(), 200);
    }

    #[tokio::test]
    async fn a_write_if_whose_reply_was_lost_succeeds() {
        let server = MemoryServer::new();
        let blobs = Arc::new(MemoryBlobStore::new());
        // Every write loses its reply: the outcome is read back each time.
        let store = ConfigStore::new(
            Arc::new(Lossy::new(Arc::new(server.connect()), 1, 1.0, 0.0)),
            blobs.clone(),
        );
        let first = store
            .write_if(&name(), Bytes::from_static(b"one"), &who(), None)
            .await
            .unwrap();
        let current = store.read(&name()).await.unwrap().unwrap();
        assert_eq!(current.record, first);
        let second = store
            .write_if(
                &name(),
                Bytes::from_static(b"two"),
                &who(),
                Some((&current.record, current.node_version)),
            )
            .await
            .unwrap();
        assert_eq!(second.version, 2);
        assert_eq!(second.previous_write_id, first.write_id);
        // A stale compare-and-set is still a conflict.
        let err = store
            .write_if(
                &name(),
                Bytes::from_static(b"stale"),
                &who(),
                Some((&current.record, current.node_version)),
            )
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::BadVersion, "{err}");
    }

    #[tokio::test]
    async fn a_lost_reply_is_found_behind_later_versions() {
        let server = MemoryServer::new();
        let blobs = Arc::new(MemoryBlobStore::new());
        let plain = ConfigStore::new(Arc::new(server.connect()), blobs.clone());
        plain
            .write(&name(), Bytes::from_static(b"[]"), &who())
            .await
            .unwrap();
        let current = plain.read(&name()).await.unwrap().unwrap();
        // Our write lands as version 2; before we look, two more land.
        let ours = plain
            .prepare_write(
                &name(),
                Bytes::from_static(b"ours"),
                &who(),
                Some((&current.record, current.node_version)),
            )
            .await
            .unwrap();
        plain.send(&[], std::slice::from_ref(&ours)).await.unwrap();
        plain
            .write(&name(), Bytes::from_static(b"3"), &who())
            .await
            .unwrap();
        assert_eq!(plain.outcome(&ours).await.unwrap(), Outcome::Landed);
        plain
            .write(&name(), Bytes::from_static(b"4"), &who())
            .await
            .unwrap();
        assert_eq!(plain.outcome(&ours).await.unwrap(), Outcome::Landed);
        // Another writer's attempt at version 2 lost.
        let theirs = plain
            .prepare_write(
                &name(),
                Bytes::from_static(b"theirs"),
                &who(),
                Some((&current.record, current.node_version)),
            )
            .await
            .unwrap();
        assert_eq!(plain.outcome(&theirs).await.unwrap(), Outcome::Lost);
        // A write prepared on the current version has not landed yet.
        let now = plain.read(&name()).await.unwrap().unwrap();
        let next = plain
            .prepare_write(
                &name(),
                Bytes::from_static(b"5"),
                &who(),
                Some((&now.record, now.node_version)),
            )
            .await
            .unwrap();
        assert_eq!(plain.outcome(&next).await.unwrap(), Outcome::Pending);
    }

    #[tokio::test]
    async fn an_outage_longer_than_the_resolve_timeout_is_unavailable() {
        let server = MemoryServer::new();
        let blobs = Arc::new(MemoryBlobStore::new());
        let store = ConfigStore::new(Arc::new(server.connect()), blobs)
            .with_resolve_timeout(Duration::from_millis(300));
        store
            .write(&name(), Bytes::from_static(b"a"), &who())
            .await
            .unwrap();
        let current = store.read(&name()).await.unwrap().unwrap();
        server.stop();
        let err = store
            .write_if(
                &name(),
                Bytes::from_static(b"b"),
                &who(),
                Some((&current.record, current.node_version)),
            )
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unavailable);
        assert!(err.to_string().contains("may or may not"), "{err}");
    }
}
