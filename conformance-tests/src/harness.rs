//! What a backend's test file provides to the generic cases.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use kingpin_api::{Coordinator, Result};

type ExpireFn = Box<dyn Fn() -> Pin<Box<dyn Future<Output = Result<()>> + Send>> + Send + Sync>;

/// One client session opened by a harness, with a way to make the server
/// expire it.
pub struct TestSession {
    /// The session, as the components above the trait see it.
    pub coordinator: Arc<dyn Coordinator>,
    expire: ExpireFn,
}

impl TestSession {
    /// Wraps a concrete coordinator and the backend's way of expiring its
    /// session from the server's side.
    pub fn new<C, F, Fut>(coordinator: Arc<C>, expire: F) -> Self
    where
        C: Coordinator + 'static,
        F: Fn(Arc<C>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<()>> + Send + 'static,
    {
        let target = coordinator.clone();
        TestSession {
            coordinator,
            expire: Box::new(move || Box::pin(expire(target.clone()))),
        }
    }

    /// Expires the session; returns once a new session is established.
    pub async fn expire(&self) -> Result<()> {
        (self.expire)().await
    }
}

impl std::fmt::Debug for TestSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestSession")
            .field("coordinator", &self.coordinator)
            .finish()
    }
}

impl std::ops::Deref for TestSession {
    type Target = dyn Coordinator;
    fn deref(&self) -> &Self::Target {
        &*self.coordinator
    }
}

/// A backend under test: a fresh namespace per test (chroot or key prefix),
/// on which sessions can be opened.
#[async_trait]
pub trait Harness: Send + Sync {
    /// Short backend name for messages.
    fn name(&self) -> &str;

    /// A new session on this test's namespace.
    async fn connect(&self) -> TestSession;

    /// Whether [`stop_server`](Self::stop_server) and
    /// [`start_server`](Self::start_server) work here.
    fn can_restart_server(&self) -> bool;

    /// Stops the server (as a crash would).
    async fn stop_server(&self);

    /// Starts the stopped server again on the same port and data; returns
    /// once it accepts connections.
    async fn start_server(&self);

    /// Stops and starts the server.
    async fn restart_server(&self) {
        self.stop_server().await;
        self.start_server().await;
    }

    /// How another OS process opens a session on this test's namespace,
    /// for cases that kill a process; `None` when sessions cannot be
    /// shared between processes (the in-memory coordinator).
    fn peer_session(&self) -> Option<PeerSession> {
        None
    }
}

/// A session another OS process can open on a harness's namespace.
#[derive(Debug, Clone)]
pub struct PeerSession {
    /// The URL to give `kingpin::open_coordinator`.
    pub url: String,
    /// The session timeout (lease TTL) the URL asks for: how long after
    /// the process dies its ephemeral nodes may live.
    pub session_timeout: Duration,
    /// How much later still a dead session may be noticed, where the
    /// backend's servers do not expire sessions themselves (SQLite: the
    /// live processes reap dead sessions at their heartbeats).
    pub reaping_delay: Duration,
}

/// Reports a case skipped for a missing capability: on stderr, and in the
/// file named by `KINGPIN_TEST_SKIP_LOG` so the test command can list every
/// skip at the end of a run.
pub fn skip(backend: &str, case: &str, reason: &str) {
    let line = format!("SKIPPED {backend}::{case}: {reason}");
    eprintln!("{line}");
    if let Ok(path) = std::env::var("KINGPIN_TEST_SKIP_LOG") {
        use std::io::Write;
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            let _ = writeln!(f, "{line}");
        }
    }
}
