//! The cluster harness does what the fault tests rely on: three members
//! that elect a leader, a leader killed with `kill -9` replaced by another,
//! a member restarted on its data, a paused member and an isolated member
//! that stop serving and come back.

use std::time::Instant;

use kingpin_conformance_tests::cluster::{Cluster, ClusterKind};

async fn harness_case(kind: ClusterKind) {
    let started = Instant::now();
    let Some(mut cluster) = Cluster::for_test(kind, 3, "cluster_harness").await else {
        return;
    };
    let up = started.elapsed();
    let leader = cluster.leader().await.unwrap();
    let killed = Instant::now();
    cluster.kill(leader).unwrap();
    let next = cluster.wait_for_new_leader(leader).await.unwrap();
    let election = killed.elapsed();
    cluster.restart(leader).await.unwrap();
    assert!(
        cluster.member_serves(leader).await,
        "the restarted member serves"
    );

    let follower = (0..3).find(|&i| i != next).unwrap();
    cluster.isolate(follower).unwrap();
    assert!(
        !cluster.member_serves(follower).await,
        "an isolated member does not answer the host"
    );
    cluster.heal().unwrap();
    let deadline = Instant::now() + std::time::Duration::from_secs(30);
    while !cluster.member_serves(follower).await {
        assert!(Instant::now() < deadline, "the healed member serves again");
    }
    cluster.pause(follower).unwrap();
    assert!(
        !cluster.member_serves(follower).await,
        "a paused member does not answer"
    );
    cluster.resume(follower).unwrap();
    while !cluster.member_serves(follower).await {
        assert!(Instant::now() < deadline, "the resumed member serves again");
    }
    println!(
        "{kind:?}: 3 members up in {up:?}; leader m{} killed, m{} led after {election:?}; \
         restart, isolate/heal, pause/resume of m{} ok ({:?} in all)",
        leader + 1,
        next + 1,
        follower + 1,
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zookeeper_cluster_harness() {
    harness_case(ClusterKind::ZooKeeper).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_cluster_harness() {
    harness_case(ClusterKind::Etcd).await;
}
