//! Opening real backends through their URLs, and ZooKeeper digest auth.

use kingpin_api::{CreateMode, ErrorKind, NodePath};
use kingpin_conformance_tests::endpoints::shared_endpoint;
use kingpin_conformance_tests::servers::ServerKind;
use kingpin_conformance_tests::unique_namespace;
use kingpin_zookeeper::{ZooKeeperConfig, ZooKeeperCoordinator};

async fn round_trip(url: &str) {
    let c = kingpin::open_coordinator(url)
        .await
        .unwrap_or_else(|e| panic!("{url}: {e}"));
    let path = NodePath::parse("/via-url/node").unwrap();
    c.create(&path, b"hello", CreateMode::Persistent)
        .await
        .unwrap();
    assert_eq!(c.get(&path).await.unwrap().data, b"hello");
    c.close().await.unwrap();
}

#[tokio::test]
async fn zookeeper_url_opens_a_chrooted_session() {
    let Some(hosts) = shared_endpoint(
        ServerKind::ZooKeeper,
        "zookeeper_url_opens_a_chrooted_session",
    )
    .await
    else {
        return;
    };
    let chroot = unique_namespace();
    round_trip(&format!("zk://{hosts}{chroot}?session_timeout=6s")).await;
    // The chroot confines the session: the node sits under it on the server.
    let root = kingpin::open_coordinator(&format!("zk://{hosts}"))
        .await
        .unwrap();
    let under = NodePath::parse(&format!("{chroot}/via-url/node")).unwrap();
    assert_eq!(root.get(&under).await.unwrap().data, b"hello");
}

#[tokio::test]
async fn etcd_url_opens_a_prefixed_session() {
    let Some(hosts) = shared_endpoint(ServerKind::Etcd, "etcd_url_opens_a_prefixed_session").await
    else {
        return;
    };
    let prefix = unique_namespace();
    round_trip(&format!("etcd://{hosts}{prefix}?lease_ttl=5s")).await;
    let other = kingpin::open_coordinator(&format!("etcd://{hosts}{prefix}-other"))
        .await
        .unwrap();
    let path = NodePath::parse("/via-url/node").unwrap();
    assert_eq!(
        other.exists(&path).await.unwrap(),
        None,
        "prefixes do not see each other"
    );
}

#[tokio::test]
async fn zookeeper_digest_auth_protects_nodes() {
    let Some(hosts) = shared_endpoint(
        ServerKind::ZooKeeper,
        "zookeeper_digest_auth_protects_nodes",
    )
    .await
    else {
        return;
    };
    let chroot = unique_namespace();
    let config = |digest: Option<&str>| {
        let config = ZooKeeperConfig::new([hosts.clone()])
            .with_chroot(&chroot)
            .unwrap();
        match digest {
            Some(d) => config.with_digest(d).unwrap(),
            None => config,
        }
    };
    let owner = ZooKeeperCoordinator::connect(config(Some("alice:wonderland")))
        .await
        .unwrap();
    let path = NodePath::parse("/secret").unwrap();
    use kingpin_api::Coordinator;
    owner
        .create(&path, b"s", CreateMode::Persistent)
        .await
        .unwrap();
    assert_eq!(owner.get(&path).await.unwrap().data, b"s");

    let stranger = ZooKeeperCoordinator::connect(config(None)).await.unwrap();
    let err = stranger.get(&path).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unauthorized, "{err}");
    assert!(!err.to_string().contains("wonderland"));
    let impostor = ZooKeeperCoordinator::connect(config(Some("alice:guess")))
        .await
        .unwrap();
    assert_eq!(
        impostor.set(&path, b"x", None).await.unwrap_err().kind(),
        ErrorKind::Unauthorized
    );
    let friend = ZooKeeperCoordinator::connect(config(Some("alice:wonderland")))
        .await
        .unwrap();
    assert_eq!(friend.get(&path).await.unwrap().data, b"s");
}
