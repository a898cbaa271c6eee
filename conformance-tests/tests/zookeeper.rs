//! The conformance suite on a real ZooKeeper.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use kingpin_api::{Coordinator, SessionEvent};
use kingpin_conformance_tests::partition::Partition;
use kingpin_conformance_tests::server_harness::ServerHarness;
use kingpin_conformance_tests::servers::ServerKind;
use kingpin_conformance_tests::{
    coordinator_suite, recipes_suite, PeerSession, ServerNeeds, TestSession,
};
use kingpin_zookeeper::{ZooKeeperConfig, ZooKeeperCoordinator};

async fn harness(needs: ServerNeeds, case: &'static str) -> Option<ServerHarness> {
    ServerHarness::new(
        ServerKind::ZooKeeper,
        "zookeeper",
        needs,
        case,
        |hosts, chroot| {
            Box::pin(async move {
                // Each session goes through a proxy of its own, so that a test
                // can partition it from the server until its session expires.
                let partition = Arc::new(Partition::start(hosts.clone()).await.expect("proxy"));
                let config = ZooKeeperConfig::new([partition.endpoint()])
                    .with_chroot(&chroot)
                    .expect("valid chroot")
                    .with_session_timeout(SESSION_TIMEOUT);
                let coordinator = ZooKeeperCoordinator::connect(config)
                    .await
                    .unwrap_or_else(|e| panic!("cannot connect to ZooKeeper at {hosts}: {e}"));
                TestSession::new(Arc::new(coordinator), move |c| {
                    expire_by_partition(c, partition.clone())
                })
            })
        },
    )
    .await
    .map(|harness| harness.with_peer(peer_session))
}

/// Another process's session: straight to the server, with a short timeout.
fn peer_session(hosts: &str, chroot: &str) -> PeerSession {
    PeerSession {
        url: format!("zk://{hosts}{chroot}?session_timeout=2s"),
        session_timeout: Duration::from_secs(2),
        reaping_delay: Duration::ZERO,
    }
}

const SESSION_TIMEOUT: Duration = Duration::from_secs(4);

/// Cuts the session off from the server for longer than its timeout, as a
/// network partition does, then heals it: the server has expired the
/// session, and the client must notice and build a new one. Should the
/// server not have expired it yet (a reconnect, not an expiry), the cut is
/// made again for longer.
async fn expire_by_partition(
    c: Arc<ZooKeeperCoordinator>,
    partition: Arc<Partition>,
) -> kingpin_api::Result<()> {
    let mut events = c.session_events();
    let mut outage = SESSION_TIMEOUT * 3 / 2;
    for _ in 0..4 {
        partition.cut();
        // The server expires sessions by the clock; there is nothing to await.
        tokio::time::sleep(outage).await;
        partition.heal();
        loop {
            let event = tokio::time::timeout(SESSION_TIMEOUT * 4, events.next())
                .await
                .map_err(|_| {
                    kingpin_api::Error::unavailable("no session event after the partition healed")
                })?;
            match event {
                Some(SessionEvent::Connected) => return Ok(()),
                Some(SessionEvent::Reconnected) => break,
                Some(_) => {}
                None => return Err(kingpin_api::Error::unavailable("session events ended")),
            }
        }
        outage *= 2;
    }
    Err(kingpin_api::Error::unavailable(
        "the session survived every partition",
    ))
}

coordinator_suite!(harness);

mod recipes {
    super::recipes_suite!(super::harness);
}
