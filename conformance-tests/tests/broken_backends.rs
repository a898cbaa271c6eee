//! The suites against deliberately broken or limited backends: wrappers of
//! the in-memory coordinator that ignore the expected version, lose every
//! other watch event, or declare capabilities off. A broken backend must
//! fail the case written to catch it (a lossy watch within seconds), and a
//! limited one must pass every suite by skipping what it cannot do.
//!
//! This file uses only what a backend author's crate has: the kit and
//! kingpin-api, no tokio of its own.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{FutureExt, StreamExt};
use kingpin_conformance_tests::harness::run_case;
use kingpin_conformance_tests::kingpin_api::{
    BlobStore, Capabilities, Coordinator, CreateMode, Error, ErrorKind, MemoryBlobStore,
    MemoryCoordinator, MemoryServer, Node, NodePath, Op, OpResult, Result, SessionEvents,
    SessionState, Stat, WatchKind, WatchStream,
};
use kingpin_conformance_tests::{
    async_trait, config_store, coordinator, ConfigBackends, Harness, ServerNeeds, TestSession,
};

/// What is wrong with a [`Flawed`] coordinator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flaw {
    /// `set` overwrites whatever the expected version.
    IgnoresExpectedVersion,
    /// Every watch stream drops its second, fourth, … event.
    LosesEveryOtherEvent,
    /// Declares (and refuses) no transactions, sequential or ephemeral
    /// nodes, as the limited backend did.
    NoTransactionsSequentialOrEphemeral,
    /// Declares (and refuses) no watches.
    NoWatches,
}

/// The in-memory coordinator with a [`Flaw`].
#[derive(Debug)]
struct Flawed {
    inner: MemoryCoordinator,
    flaw: Flaw,
}

impl Flawed {
    fn refuse(&self, what: &str) -> Error {
        Error::new(
            ErrorKind::Unsupported,
            format!("this backend has no {what}"),
        )
    }

    fn limited(&self) -> bool {
        self.flaw == Flaw::NoTransactionsSequentialOrEphemeral
    }
}

#[async_trait]
impl Coordinator for Flawed {
    async fn create(&self, path: &NodePath, data: &[u8], mode: CreateMode) -> Result<NodePath> {
        if self.limited() && mode != CreateMode::Persistent {
            return Err(self.refuse("ephemeral or sequential nodes"));
        }
        self.inner.create(path, data, mode).await
    }

    async fn get(&self, path: &NodePath) -> Result<Node> {
        self.inner.get(path).await
    }

    async fn exists(&self, path: &NodePath) -> Result<Option<Stat>> {
        self.inner.exists(path).await
    }

    async fn set(&self, path: &NodePath, data: &[u8], expected: Option<u64>) -> Result<Stat> {
        let expected = match self.flaw {
            Flaw::IgnoresExpectedVersion => None,
            _ => expected,
        };
        self.inner.set(path, data, expected).await
    }

    async fn delete(&self, path: &NodePath, expected_version: Option<u64>) -> Result<()> {
        self.inner.delete(path, expected_version).await
    }

    async fn children(&self, path: &NodePath) -> Result<Vec<String>> {
        self.inner.children(path).await
    }

    async fn transaction(&self, ops: Vec<Op>) -> Result<Vec<OpResult>> {
        if self.limited() {
            return Err(self.refuse("transactions"));
        }
        self.inner.transaction(ops).await
    }

    async fn watch(&self, path: &NodePath, kind: WatchKind) -> Result<WatchStream> {
        let stream = match self.flaw {
            Flaw::NoWatches => return Err(self.refuse("watches")),
            Flaw::LosesEveryOtherEvent => {
                let seen = AtomicUsize::new(0);
                self.inner
                    .watch(path, kind)
                    .await?
                    .filter(move |_| {
                        let kept = seen.fetch_add(1, Ordering::Relaxed) % 2 == 0;
                        std::future::ready(kept)
                    })
                    .boxed()
            }
            _ => self.inner.watch(path, kind).await?,
        };
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
        let caps = self.inner.capabilities();
        match self.flaw {
            Flaw::NoTransactionsSequentialOrEphemeral => caps
                .without_transactions()
                .without_sequential_nodes()
                .without_ephemeral_nodes(),
            Flaw::NoWatches => caps.without_watches(),
            _ => caps,
        }
    }

    async fn close(&self) -> Result<()> {
        self.inner.close().await
    }
}

/// One in-memory server per case, its sessions [`Flawed`].
struct FlawedHarness {
    server: MemoryServer,
    blobs: Arc<MemoryBlobStore>,
    flaw: Flaw,
}

impl FlawedHarness {
    fn new(flaw: Flaw) -> Self {
        FlawedHarness {
            server: MemoryServer::new(),
            blobs: Arc::new(MemoryBlobStore::new()),
            flaw,
        }
    }

    fn session(&self) -> Arc<Flawed> {
        Arc::new(Flawed {
            inner: self.server.connect(),
            flaw: self.flaw,
        })
    }
}

#[async_trait]
impl Harness for FlawedHarness {
    fn name(&self) -> &str {
        match self.flaw {
            Flaw::IgnoresExpectedVersion => "ignores-expected-version",
            Flaw::LosesEveryOtherEvent => "loses-every-other-event",
            Flaw::NoTransactionsSequentialOrEphemeral => "no-transactions-sequential-ephemeral",
            Flaw::NoWatches => "no-watches",
        }
    }

    async fn connect(&self) -> TestSession {
        TestSession::new(self.session(), |c: Arc<Flawed>| async move {
            c.inner.expire_session();
            Ok(())
        })
    }

    fn can_restart_server(&self) -> bool {
        true
    }

    async fn stop_server(&self) {
        self.server.stop();
    }

    async fn start_server(&self) {
        self.server.start();
    }
}

#[async_trait]
impl ConfigBackends for FlawedHarness {
    async fn session(&self) -> Arc<dyn Coordinator> {
        self.session()
    }

    fn blobs(&self) -> Arc<dyn BlobStore> {
        self.blobs.clone()
    }

    fn name(&self) -> &str {
        Harness::name(self)
    }
}

/// Runs `case` and returns how long it took to fail; panics if it passed.
fn time_to_failure(case: impl Future<Output = ()>) -> Duration {
    let start = Instant::now();
    let outcome = run_case(async { AssertUnwindSafe(case).catch_unwind().await.is_err() });
    assert!(outcome, "the case passed against a broken backend");
    start.elapsed()
}

#[test]
fn cas_ignoring_backend_fails_concurrent_cas_increments_every_time() {
    for _ in 0..5 {
        time_to_failure(async {
            let h = FlawedHarness::new(Flaw::IgnoresExpectedVersion);
            coordinator::concurrent_cas_increments(&h).await;
        });
    }
}

#[test]
fn lossy_watch_fails_every_change_reported_promptly_within_seconds() {
    let took = time_to_failure(async {
        let h = FlawedHarness::new(Flaw::LosesEveryOtherEvent);
        coordinator::every_change_reported_promptly(&h).await;
    });
    assert!(took < coordinator::EVENT_TIMEOUT, "caught after {took:?}");
}

#[test]
fn lossy_watch_fails_config_watchers_see_every_write_within_seconds() {
    let took = time_to_failure(async {
        let h = FlawedHarness::new(Flaw::LosesEveryOtherEvent);
        config_store::config_watchers_see_every_write(&h).await;
    });
    assert!(took < coordinator::EVENT_TIMEOUT, "caught after {took:?}");
}

/// Every suite passes on a backend without transactions, sequential and
/// ephemeral nodes: the cases relying on them skip.
mod limited {
    use super::*;

    async fn harness(_needs: ServerNeeds, _case: &'static str) -> Option<FlawedHarness> {
        Some(FlawedHarness::new(
            Flaw::NoTransactionsSequentialOrEphemeral,
        ))
    }

    async fn backends(_case: &'static str) -> Option<FlawedHarness> {
        Some(FlawedHarness::new(
            Flaw::NoTransactionsSequentialOrEphemeral,
        ))
    }

    kingpin_conformance_tests::coordinator_suite!(harness);
    kingpin_conformance_tests::config_suite!(backends);
}

/// Every suite passes on a backend without watches.
mod without_watches {
    use super::*;

    async fn harness(_needs: ServerNeeds, _case: &'static str) -> Option<FlawedHarness> {
        Some(FlawedHarness::new(Flaw::NoWatches))
    }

    async fn backends(_case: &'static str) -> Option<FlawedHarness> {
        Some(FlawedHarness::new(Flaw::NoWatches))
    }

    kingpin_conformance_tests::coordinator_suite!(harness);
    kingpin_conformance_tests::config_suite!(backends);
}
