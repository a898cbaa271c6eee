//! What the monitor's test files share: names, waits, and the backends of
//! one test (SQLite + local files, or ZooKeeper + S3 from the run's
//! servers).
#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use kingpin_api::{BlobStore, ChangeInfo, ConfigName, ConfigStore, Coordinator};
use kingpin_conformance_tests::endpoints::{shared_endpoint, shared_s3};
use kingpin_conformance_tests::servers::ServerKind;
use kingpin_conformance_tests::{unique_namespace, unique_suffix};
use kingpin_monitor::{MonitorSettings, MonitorState};

/// Generous: a failing wait means the behaviour is missing, not slow.
pub const WAIT: Duration = Duration::from_secs(30);

pub fn name(s: &str) -> ConfigName {
    ConfigName::parse(s).unwrap()
}

pub fn change() -> ChangeInfo {
    ChangeInfo::new("test", "monitor test")
}

pub async fn wait_for(
    state: &MonitorState,
    what: &str,
    condition: impl FnMut(&MonitorState) -> bool,
) {
    tokio::time::timeout(WAIT, state.wait_for(condition))
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}: {:?}", state.health()));
}

/// Backends of one test: URLs for the monitor, clients for the writer.
pub struct Backends {
    pub coordinator_url: String,
    // The ZooKeeper chroot, when on ZooKeeper.
    pub namespace: String,
    pub blobstore_url: String,
    pub coordinator: Arc<dyn Coordinator>,
    pub blobs: Arc<dyn BlobStore>,
    _dir: tempfile::TempDir,
}

impl Backends {
    pub fn store(&self) -> ConfigStore {
        ConfigStore::new(self.coordinator.clone(), self.blobs.clone())
    }

    pub fn settings(&self, dependency: &str, out: &Path) -> MonitorSettings {
        let mut settings =
            MonitorSettings::new(&self.coordinator_url, &self.blobstore_url, name(dependency));
        settings.config_dir = out.join("config");
        settings.serverset_dir = out.join("serverset");
        settings.admin_addr = Some("127.0.0.1:0".parse().unwrap());
        settings
    }
}

pub async fn sqlite_fs() -> Backends {
    let dir = tempfile::tempdir().unwrap();
    let coordinator_url = format!("sqlite://{}", dir.path().join("k.db").display());
    let blobstore_url = format!("file://{}", dir.path().join("blobs").display());
    Backends {
        coordinator: kingpin::open_coordinator(&coordinator_url).await.unwrap(),
        blobs: kingpin::open_blob_store(&blobstore_url).await.unwrap(),
        coordinator_url,
        blobstore_url,
        namespace: String::new(),
        _dir: dir,
    }
}

pub async fn zookeeper_s3(case: &str, zk: Option<String>) -> Option<Backends> {
    let hosts = match zk {
        Some(hosts) => hosts,
        None => shared_endpoint(ServerKind::ZooKeeper, case).await?,
    };
    let (endpoint, credentials) = shared_s3(case).await?;
    // The monitor's S3 client reads its keys from the AWS chain.
    std::env::set_var("AWS_ACCESS_KEY_ID", &credentials.access_key);
    std::env::set_var("AWS_SECRET_ACCESS_KEY", &credentials.secret_key);
    let prefix = format!("monitor-{}", unique_suffix());
    let blobs = kingpin_conformance_tests::s3::aws_sdk_store(
        &endpoint,
        &credentials,
        "kingpin-test",
        &prefix,
    )
    .await;
    let namespace = unique_namespace();
    let coordinator_url = format!("zk://{hosts}{namespace}?session_timeout=4s");
    Some(Backends {
        namespace,
        coordinator: kingpin::open_coordinator(&coordinator_url).await.unwrap(),
        blobs: Arc::new(blobs),
        blobstore_url: format!(
            "s3://kingpin-test/{prefix}?endpoint={endpoint}&region=us-east-1&path_style=true&conditional_put=if-none-match"
        ),
        coordinator_url,
        _dir: tempfile::tempdir().unwrap(),
    })
}

pub async fn etcd_fs(case: &str) -> Option<Backends> {
    let hosts = shared_endpoint(ServerKind::Etcd, case).await?;
    let dir = tempfile::tempdir().unwrap();
    let coordinator_url = format!("etcd://{hosts}{}", unique_namespace());
    let blobstore_url = format!("file://{}", dir.path().join("blobs").display());
    Some(Backends {
        coordinator: kingpin::open_coordinator(&coordinator_url).await.unwrap(),
        blobs: kingpin::open_blob_store(&blobstore_url).await.unwrap(),
        coordinator_url,
        blobstore_url,
        namespace: String::new(),
        _dir: dir,
    })
}
