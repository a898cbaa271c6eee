//! The conformance suite on a real ZooKeeper.

use std::sync::Arc;
use std::time::Duration;

use kingpin_conformance_tests::server_harness::ServerHarness;
use kingpin_conformance_tests::servers::ServerKind;
use kingpin_conformance_tests::{coordinator_suite, ServerNeeds, TestSession};
use kingpin_zookeeper::{ZooKeeperConfig, ZooKeeperCoordinator};

async fn harness(needs: ServerNeeds, case: &'static str) -> Option<ServerHarness> {
    ServerHarness::new(
        ServerKind::ZooKeeper,
        "zookeeper",
        needs,
        case,
        |hosts, chroot| {
            Box::pin(async move {
                let config = ZooKeeperConfig::new([hosts.clone()])
                    .with_chroot(&chroot)
                    .expect("valid chroot")
                    .with_session_timeout(Duration::from_secs(10));
                let coordinator = ZooKeeperCoordinator::connect(config)
                    .await
                    .unwrap_or_else(|e| panic!("cannot connect to ZooKeeper at {hosts}: {e}"));
                TestSession::new(
                    Arc::new(coordinator),
                    |c| async move { c.force_expire().await },
                )
            })
        },
    )
    .await
}

coordinator_suite!(harness);
