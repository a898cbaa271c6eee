//! The conformance suite on a real etcd.

use std::sync::Arc;
use std::time::Duration;

use kingpin_conformance_tests::server_harness::ServerHarness;
use kingpin_conformance_tests::servers::ServerKind;
use kingpin_conformance_tests::{
    coordinator_suite, recipes_suite, PeerSession, ServerNeeds, TestSession,
};
use kingpin_etcd::{EtcdConfig, EtcdCoordinator};

async fn harness(needs: ServerNeeds, case: &'static str) -> Option<ServerHarness> {
    ServerHarness::new(ServerKind::Etcd, "etcd", needs, case, |endpoint, prefix| {
        Box::pin(async move {
            let config = EtcdConfig::new([endpoint.clone()])
                .with_prefix(&prefix)
                .expect("valid prefix")
                .with_lease_ttl(Duration::from_secs(10))
                .expect("valid TTL");
            let coordinator = EtcdCoordinator::connect(config)
                .await
                .unwrap_or_else(|e| panic!("cannot connect to etcd at {endpoint}: {e}"));
            TestSession::new(
                Arc::new(coordinator),
                |c| async move { c.force_expire().await },
            )
        })
    })
    .await
    .map(|harness| harness.with_peer(peer_session))
}

/// Another process's session, with a short lease.
fn peer_session(endpoint: &str, prefix: &str) -> PeerSession {
    PeerSession {
        url: format!("etcd://{endpoint}{prefix}?lease_ttl=2s"),
        session_timeout: Duration::from_secs(2),
        reaping_delay: Duration::ZERO,
    }
}

coordinator_suite!(harness);

mod recipes {
    super::recipes_suite!(super::harness);
}
