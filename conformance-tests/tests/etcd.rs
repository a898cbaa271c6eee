//! The conformance suite on a real etcd.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use kingpin_conformance_tests::endpoints::{private_server, shared_endpoint};
use kingpin_conformance_tests::servers::{LocalServer, ServerKind};
use kingpin_conformance_tests::{
    coordinator_suite, unique_namespace, Harness, ServerNeeds, TestSession,
};
use kingpin_etcd::{EtcdConfig, EtcdCoordinator};
use tokio::sync::Mutex;

struct EtcdHarness {
    hosts: String,
    prefix: String,
    /// The test's own server, for cases that restart it.
    server: Option<Mutex<LocalServer>>,
}

async fn harness(needs: ServerNeeds, case: &'static str) -> Option<EtcdHarness> {
    let (hosts, server) = match needs {
        ServerNeeds::Shared => (shared_endpoint(ServerKind::Etcd, case).await?, None),
        ServerNeeds::Restartable => {
            let server = private_server(ServerKind::Etcd, case).await?;
            (server.endpoint(), Some(Mutex::new(server)))
        }
    };
    Some(EtcdHarness {
        hosts,
        prefix: unique_namespace(),
        server,
    })
}

#[async_trait]
impl Harness for EtcdHarness {
    fn name(&self) -> &str {
        "etcd"
    }

    async fn connect(&self) -> TestSession {
        let config = EtcdConfig::new([self.hosts.clone()])
            .with_prefix(&self.prefix)
            .expect("valid prefix")
            .with_lease_ttl(Duration::from_secs(10))
            .expect("valid TTL");
        let coordinator = EtcdCoordinator::connect(config)
            .await
            .unwrap_or_else(|e| panic!("cannot connect to etcd at {}: {e}", self.hosts));
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
        server.resume().await.expect("etcd restarts");
    }
}

coordinator_suite!(harness);
