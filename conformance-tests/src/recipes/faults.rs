//! A coordinator wrapped to lose replies and to show which watches a
//! recipe arms: the faults and the observations that real servers cannot
//! produce on cue.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use kingpin_api::{
    Capabilities, Coordinator, CreateMode, Error, Node, NodePath, Op, OpResult, Result,
    SessionEvents, SessionState, Stat, WatchKind, WatchStream,
};
use tokio::sync::watch;

use crate::harness::{Harness, TestSession};

/// Wraps a session: forwards every call, but loses the replies of chosen
/// creates and transactions *after* the server applied them (as a
/// connection dropping at the wrong moment does), and records every watch.
#[derive(Debug)]
pub struct FaultyCoordinator {
    inner: Arc<dyn Coordinator>,
    /// Lose the replies of this many more creates.
    lost_creates: AtomicU64,
    /// Lose the reply of every n-th transaction (0: none).
    transaction_period: AtomicU64,
    transactions: AtomicU64,
    injected: AtomicU64,
    watches: Mutex<Vec<(NodePath, WatchKind)>>,
    watch_count: watch::Sender<usize>,
    /// The session this wraps, when it owns it: dropping a test session
    /// can end it (a ZooKeeper session's proxy goes with it).
    session: Option<TestSession>,
}

impl FaultyCoordinator {
    /// Wraps `inner`, losing nothing until told to.
    pub fn new(inner: Arc<dyn Coordinator>) -> Arc<Self> {
        Arc::new(Self::wrapping(inner))
    }

    /// A new session of `h`, wrapped and kept alive as long as the wrapper.
    pub async fn connect(h: &dyn Harness) -> Arc<Self> {
        let session = h.connect().await;
        let mut faulty = Self::wrapping(session.coordinator.clone());
        faulty.session = Some(session);
        Arc::new(faulty)
    }

    fn wrapping(inner: Arc<dyn Coordinator>) -> Self {
        FaultyCoordinator {
            inner,
            lost_creates: AtomicU64::new(0),
            transaction_period: AtomicU64::new(0),
            transactions: AtomicU64::new(0),
            injected: AtomicU64::new(0),
            watches: Mutex::new(Vec::new()),
            watch_count: watch::Sender::new(0),
            session: None,
        }
    }

    /// Loses the replies of the next `n` creates that succeed.
    pub fn lose_next_create_replies(&self, n: u64) {
        self.lost_creates.store(n, Ordering::SeqCst);
    }

    /// Loses the reply of every `n`-th transaction that succeeds.
    pub fn lose_every_nth_transaction_reply(&self, n: u64) {
        self.transaction_period.store(n, Ordering::SeqCst);
    }

    /// How many replies were lost so far.
    pub fn injected(&self) -> u64 {
        self.injected.load(Ordering::SeqCst)
    }

    /// Every watch armed so far, in order.
    pub fn watches(&self) -> Vec<(NodePath, WatchKind)> {
        self.watches
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Waits until `done` holds for the watches armed so far.
    pub async fn until_watches(&self, done: impl Fn(&[(NodePath, WatchKind)]) -> bool) {
        let mut count = self.watch_count.subscribe();
        loop {
            if done(&self.watches()) {
                return;
            }
            if count.changed().await.is_err() {
                return;
            }
        }
    }

    fn lost_reply(&self, what: &str) -> Error {
        self.injected.fetch_add(1, Ordering::SeqCst);
        Error::unavailable(format!("injected fault: the reply to this {what} was lost"))
    }

    fn take_create_loss(&self) -> bool {
        self.lost_creates
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    }
}

#[async_trait]
impl Coordinator for FaultyCoordinator {
    async fn create(&self, path: &NodePath, data: &[u8], mode: CreateMode) -> Result<NodePath> {
        let created = self.inner.create(path, data, mode).await?;
        if self.take_create_loss() {
            return Err(self.lost_reply("create"));
        }
        Ok(created)
    }

    async fn get(&self, path: &NodePath) -> Result<Node> {
        self.inner.get(path).await
    }

    async fn sync(&self, path: &NodePath) -> Result<()> {
        self.inner.sync(path).await
    }

    async fn exists(&self, path: &NodePath) -> Result<Option<Stat>> {
        self.inner.exists(path).await
    }

    async fn set(
        &self,
        path: &NodePath,
        data: &[u8],
        expected_version: Option<u64>,
    ) -> Result<Stat> {
        self.inner.set(path, data, expected_version).await
    }

    async fn delete(&self, path: &NodePath, expected_version: Option<u64>) -> Result<()> {
        self.inner.delete(path, expected_version).await
    }

    async fn children(&self, path: &NodePath) -> Result<Vec<String>> {
        self.inner.children(path).await
    }

    async fn transaction(&self, ops: Vec<Op>) -> Result<Vec<OpResult>> {
        let results = self.inner.transaction(ops).await?;
        let period = self.transaction_period.load(Ordering::SeqCst);
        let n = self.transactions.fetch_add(1, Ordering::SeqCst) + 1;
        if period > 0 && n % period == 0 {
            return Err(self.lost_reply("transaction"));
        }
        Ok(results)
    }

    async fn watch(&self, path: &NodePath, kind: WatchKind) -> Result<WatchStream> {
        let stream = self.inner.watch(path, kind).await?;
        let count = {
            let mut watches = self.watches.lock().unwrap_or_else(|p| p.into_inner());
            watches.push((path.clone(), kind));
            watches.len()
        };
        self.watch_count.send_replace(count);
        Ok(stream)
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
