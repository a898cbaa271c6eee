//! The [`Harness`] for backends with a server: one namespace per test on the
//! shared server, or a server of the test's own when it must restart it.

use async_trait::async_trait;
use futures::future::BoxFuture;
use tokio::sync::Mutex;

use crate::endpoints::{private_server, shared_endpoint, ServerNeeds};
use crate::harness::{Harness, PeerSession, TestSession};
use crate::servers::{LocalServer, ServerKind};
use crate::unique_namespace;

/// Opens a session on `endpoint` confined to `namespace` (chroot, prefix).
pub type Connector = fn(endpoint: String, namespace: String) -> BoxFuture<'static, TestSession>;

/// How another process opens a session on `endpoint` in `namespace`.
pub type PeerConnector = fn(endpoint: &str, namespace: &str) -> PeerSession;

/// A harness on a real server. See the module docs.
pub struct ServerHarness {
    name: &'static str,
    endpoint: String,
    namespace: String,
    server: Option<Mutex<LocalServer>>,
    connect: Connector,
    peer: Option<PeerConnector>,
}

impl ServerHarness {
    /// A harness for `case`, or `None` when the run opted out of external
    /// servers (a missing server otherwise fails the test).
    pub async fn new(
        kind: ServerKind,
        name: &'static str,
        needs: ServerNeeds,
        case: &str,
        connect: Connector,
    ) -> Option<Self> {
        let (endpoint, server) = match needs {
            ServerNeeds::Shared => (shared_endpoint(kind, case).await?, None),
            ServerNeeds::Restartable => {
                let server = private_server(kind, case).await?;
                (server.endpoint(), Some(Mutex::new(server)))
            }
        };
        Some(ServerHarness {
            name,
            endpoint,
            namespace: unique_namespace(),
            server,
            connect,
            peer: None,
        })
    }

    /// Lets cases start other processes on this harness's namespace.
    pub fn with_peer(mut self, peer: PeerConnector) -> Self {
        self.peer = Some(peer);
        self
    }
}

#[async_trait]
impl Harness for ServerHarness {
    fn name(&self) -> &str {
        self.name
    }

    async fn connect(&self) -> TestSession {
        (self.connect)(self.endpoint.clone(), self.namespace.clone()).await
    }

    fn can_restart_server(&self) -> bool {
        self.server.is_some()
    }

    async fn stop_server(&self) {
        let server = self.server.as_ref().expect("a restartable harness");
        server.lock().await.stop();
    }

    fn peer_session(&self) -> Option<PeerSession> {
        self.peer.map(|peer| peer(&self.endpoint, &self.namespace))
    }

    async fn start_server(&self) {
        let server = self.server.as_ref().expect("a restartable harness");
        if let Err(e) = server.lock().await.resume().await {
            panic!("{} did not start again: {e}", self.name);
        }
    }
}
