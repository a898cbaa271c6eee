//! kingpin's facade: opens any coordinator from its URL, the way sqlx picks
//! a driver, so components and binaries never name a backend.
//!
//! ```no_run
//! # async fn demo() -> kingpin_api::Result<()> {
//! let coordinator = kingpin::open_coordinator("zk://127.0.0.1:2181/kingpin").await?;
//! let names = coordinator.children(&kingpin_api::NodePath::root()).await?;
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

pub mod access;

use std::sync::Arc;

use kingpin_api::{
    BlobStore, Coordinator, CoordinatorScheme, CoordinatorUrl, Error, ErrorKind, MemoryCoordinator,
    Result,
};
use kingpin_etcd::{EtcdConfig, EtcdCoordinator};
use kingpin_object_store::ObjectStoreBlobStore;
use kingpin_s3::{S3BlobStore, S3Config};
use kingpin_sqlite::{SqliteConfig, SqliteCoordinator};
use kingpin_zookeeper::{ZooKeeperConfig, ZooKeeperCoordinator};

pub use kingpin_api;

/// Opens the coordinator a URL names:
///
/// | URL | backend |
/// |---|---|
/// | `memory://` | in-memory, this process only |
/// | `zk://h1:2181,h2:2181/chroot?session_timeout=10s&acl=auto` | ZooKeeper (`KINGPIN_ZK_DIGEST` for digest auth; `acl` picks node ACLs, see [`kingpin_zookeeper::AclMode`]) |
/// | `etcd://h1:2379/prefix?lease_ttl=10s` | etcd (`KINGPIN_ETCD_USER`, `KINGPIN_ETCD_PASSWORD`) |
/// | `sqlite://path/kingpin.db`, `sqlite://` | SQLite, shared by the host's processes (default `.kingpin/kingpin.db`) |
///
/// Errors: `InvalidArgument` for a malformed URL or unknown option;
/// `Unavailable` naming the hosts when the servers cannot be reached;
/// `Unauthorized` when credentials are refused. Credentials never appear in
/// errors.
pub async fn open_coordinator(url: &str) -> Result<Arc<dyn Coordinator>> {
    let url = CoordinatorUrl::parse(url)?;
    match url.scheme() {
        CoordinatorScheme::Memory => {
            url.reject_unknown_options(&[])?;
            Ok(Arc::new(MemoryCoordinator::new()))
        }
        CoordinatorScheme::ZooKeeper => {
            let config = ZooKeeperConfig::from_url(&url)?;
            Ok(Arc::new(ZooKeeperCoordinator::connect(config).await?))
        }
        CoordinatorScheme::Etcd => {
            let config = EtcdConfig::from_url(&url)?;
            Ok(Arc::new(EtcdCoordinator::connect(config).await?))
        }
        CoordinatorScheme::Sqlite => {
            let config = SqliteConfig::from_url(&url)?;
            Ok(Arc::new(SqliteCoordinator::connect(config).await?))
        }
        other => Err(Error::new(
            ErrorKind::Unsupported,
            format!("no backend for {}://", other.as_str()),
        )),
    }
}

/// Opens the blob store a URL names:
///
/// | URL | backend |
/// |---|---|
/// | `s3://bucket/prefix?endpoint=…&region=…&path_style=true` | aws-sdk-s3 (credentials from the AWS chain) |
/// | `file:///var/lib/kingpin/blobs` | local directory (object_store) |
/// | `memory://` | in this process only (object_store) |
/// | `gs://bucket/prefix`, `az://container/prefix` | object_store's cloud stores |
///
/// Errors: `InvalidArgument` for a malformed URL or one carrying
/// credentials.
pub async fn open_blob_store(url: &str) -> Result<Arc<dyn BlobStore>> {
    if url.starts_with("s3://") {
        return Ok(Arc::new(
            S3BlobStore::connect(S3Config::from_url(url)?).await?,
        ));
    }
    Ok(Arc::new(ObjectStoreBlobStore::from_url(url).await?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kingpin_api::{CreateMode, NodePath};

    #[tokio::test]
    async fn opens_memory_and_rejects_bad_urls() {
        let c = open_coordinator("memory://").await.unwrap();
        let path = NodePath::parse("/x").unwrap();
        c.create(&path, b"1", CreateMode::Persistent).await.unwrap();
        assert_eq!(c.get(&path).await.unwrap().data, b"1");
        for bad in [
            "memory://?x=1",
            "redis://h:1",
            "zk://h:2181/kp?bogus=1",
            "etcd://u:pw@h:2379",
        ] {
            let err = open_coordinator(bad).await.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{bad}: {err}");
            assert!(!err.to_string().contains("pw@"), "{err}");
        }
    }

    #[tokio::test]
    async fn opens_the_embedded_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("k.db");
        let c = open_coordinator(&format!("sqlite://{}?session_timeout=2s", db.display()))
            .await
            .unwrap();
        let path = NodePath::parse("/x").unwrap();
        c.create(&path, b"1", CreateMode::Persistent).await.unwrap();
        assert!(db.exists());
        let blobs = open_blob_store(&format!("file://{}/blobs", dir.path().display()))
            .await
            .unwrap();
        let key = kingpin_api::BlobKey::parse("a/b").unwrap();
        blobs.put_if_absent(&key, "x".into()).await.unwrap();
        assert_eq!(blobs.get(&key).await.unwrap(), "x");
        for bad in [
            "s3://b/p?bogus=1",
            "s3://id:secret@b/p",
            "ftp://h/p",
            "file://relative",
        ] {
            let err = open_blob_store(bad).await.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{bad}: {err}");
            assert!(!err.to_string().contains("secret@"), "{err}");
        }
    }

    #[tokio::test]
    async fn unreachable_servers_are_unavailable_and_named() {
        let zk = open_coordinator("zk://127.0.0.1:1/kp?session_timeout=1s")
            .await
            .unwrap_err();
        assert_eq!(zk.kind(), ErrorKind::Unavailable, "{zk}");
        assert!(zk.to_string().contains("127.0.0.1:1"), "{zk}");
        let etcd = open_coordinator("etcd://127.0.0.1:1/kp?connect_timeout=1s")
            .await
            .unwrap_err();
        assert_eq!(etcd.kind(), ErrorKind::Unavailable, "{etcd}");
        assert!(etcd.to_string().contains("127.0.0.1:1"), "{etcd}");
    }
}
