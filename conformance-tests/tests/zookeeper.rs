//! The conformance suite on a real ZooKeeper.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use kingpin_conformance_tests::endpoints::{private_server, shared_endpoint};
use kingpin_conformance_tests::servers::{LocalServer, ServerKind};
use kingpin_conformance_tests::{
    coordinator_suite, unique_namespace, Harness, ServerNeeds, TestSession,
};
use kingpin_zookeeper::{ZooKeeperConfig, ZooKeeperCoordinator};
use tokio::sync::Mutex;

struct ZooKeeperHarness {
    hosts: String,
    chroot: String,
    /// The test's own server, for cases that restart it.
    server: Option<Mutex<LocalServer>>,
}

async fn harness(needs: ServerNeeds, case: &'static str) -> Option<ZooKeeperHarness> {
    let (hosts, server) = match needs {
        ServerNeeds::Shared => (shared_endpoint(ServerKind::ZooKeeper, case).await?, None),
        ServerNeeds::Restartable => {
            let server = private_server(ServerKind::ZooKeeper, case).await?;
            (server.endpoint(), Some(Mutex::new(server)))
        }
    };
    Some(ZooKeeperHarness {
        hosts,
        chroot: unique_namespace(),
        server,
    })
}

#[async_trait]
impl Harness for ZooKeeperHarness {
    fn name(&self) -> &str {
        "zookeeper"
    }

    async fn connect(&self) -> TestSession {
        let config = ZooKeeperConfig::new([self.hosts.clone()])
            .with_chroot(&self.chroot)
            .expect("valid chroot")
            .with_session_timeout(Duration::from_secs(10));
        let coordinator = ZooKeeperCoordinator::connect(config)
            .await
            .unwrap_or_else(|e| panic!("cannot connect to ZooKeeper at {}: {e}", self.hosts));
        TestSession::new(
            Arc::new(coordinator),
            |c| async move { c.force_expire().await },
        )
    }

    fn can_restart_server(&self) -> bool {
        self.server.is_some()
    }

    async fn restart_server(&self) {
        let server = self.server.as_ref().expect("restartable harness");
        let mut server = server.lock().await;
        server.stop();
        server.resume().await.expect("ZooKeeper restarts");
    }
}

coordinator_suite!(harness);
