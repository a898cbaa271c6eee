//! What a backend's test file provides to the generic cases.

use std::future::Future;
use std::io::Write;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use kingpin_api::{Capabilities, Coordinator, Result};

type ExpireFn = Box<dyn Fn() -> Pin<Box<dyn Future<Output = Result<()>> + Send>> + Send + Sync>;

/// What a case needs of its server, passed to a harness function by
/// [`coordinator_suite!`](crate::coordinator_suite).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerNeeds {
    /// Any server; the run's shared one is fine.
    Shared,
    /// A server of the test's own, which it may stop and restart.
    Restartable,
}

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
    /// [`start_server`](Self::start_server) work here. The default, `false`,
    /// skips the cases that restart the server.
    fn can_restart_server(&self) -> bool {
        false
    }

    /// Stops the server (as a crash would). Only called when
    /// [`can_restart_server`](Self::can_restart_server) is true.
    async fn stop_server(&self) {
        panic!("{} cannot stop its server", self.name());
    }

    /// Starts the stopped server again on the same port and data; returns
    /// once it accepts connections. Only called when
    /// [`can_restart_server`](Self::can_restart_server) is true.
    async fn start_server(&self) {
        panic!("{} cannot start its server", self.name());
    }

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

/// One of the [`Capabilities`] a case may rely on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Capability {
    /// [`Capabilities::ephemeral_nodes`].
    EphemeralNodes,
    /// [`Capabilities::sequential_nodes`].
    SequentialNodes,
    /// [`Capabilities::transactions`].
    Transactions,
    /// [`Capabilities::watches`].
    Watches,
    /// [`Capabilities::shared_between_processes`].
    SharedBetweenProcesses,
}

impl Capability {
    /// Every capability, in declaration order.
    pub const ALL: [Capability; 5] = [
        Capability::EphemeralNodes,
        Capability::SequentialNodes,
        Capability::Transactions,
        Capability::Watches,
        Capability::SharedBetweenProcesses,
    ];

    /// Whether `capabilities` include this one.
    pub fn holds(self, capabilities: &Capabilities) -> bool {
        match self {
            Capability::EphemeralNodes => capabilities.ephemeral_nodes,
            Capability::SequentialNodes => capabilities.sequential_nodes,
            Capability::Transactions => capabilities.transactions,
            Capability::Watches => capabilities.watches,
            Capability::SharedBetweenProcesses => capabilities.shared_between_processes,
        }
    }

    /// The field's name in [`Capabilities`].
    pub fn name(self) -> &'static str {
        match self {
            Capability::EphemeralNodes => "ephemeral_nodes",
            Capability::SequentialNodes => "sequential_nodes",
            Capability::Transactions => "transactions",
            Capability::Watches => "watches",
            Capability::SharedBetweenProcesses => "shared_between_processes",
        }
    }
}

/// The capabilities in `needs` that `capabilities` lack.
pub fn missing(capabilities: &Capabilities, needs: &[Capability]) -> Vec<Capability> {
    needs
        .iter()
        .copied()
        .filter(|need| !need.holds(capabilities))
        .collect()
}

/// Skips `case` unless `capabilities` include everything in `needs`:
/// returns true (after reporting the skip) when the case must not run.
pub fn skip_unless(
    backend: &str,
    case: &str,
    capabilities: &Capabilities,
    needs: &[Capability],
) -> bool {
    let lacking = missing(capabilities, needs);
    if lacking.is_empty() {
        return false;
    }
    let names: Vec<&str> = lacking.iter().map(|c| c.name()).collect();
    skip(backend, case, &format!("no {}", names.join(", no ")));
    true
}

/// Reports a case skipped for a missing capability: in the normal test
/// output (written to the process's stderr directly, past the test
/// harness's capture, so it shows without `--nocapture`), and in the file
/// named by `KINGPIN_TEST_SKIP_LOG` so the test command can list every skip
/// at the end of a run.
pub fn skip(backend: &str, case: &str, reason: &str) {
    let line = format!("SKIPPED {backend}::{case}: {reason}");
    uncaptured(&line);
    if let Ok(path) = std::env::var("KINGPIN_TEST_SKIP_LOG") {
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            let _ = writeln!(f, "{line}");
        }
    }
}

/// Writes a line where `cargo test` shows it whether or not the test
/// passes: `eprintln!` is captured by the test harness, a write to the
/// stderr handle is not.
pub fn uncaptured(line: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

/// Runs one case on a multi-threaded runtime of its own, as the suite
/// macros' tests do, so a crate using them needs no `tokio` of its own.
/// Returns what the case returns.
pub fn run_case<F: Future>(case: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a test runtime")
        .block_on(case)
}
