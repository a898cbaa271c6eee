//! One test's place on a [`Cluster`]: a namespace on the coordinator, the
//! session options that make faults show up within seconds, and a blob
//! directory of local files (the faults are the coordinator's).

use std::sync::Arc;
use std::time::Duration;

use kingpin_api::metaconfig::{MetaConfig, MetaConfigManager};
use kingpin_api::{ConfigName, ConfigStore, Coordinator, Result};

use super::{Cluster, ClusterKind};
use crate::unique_namespace;

/// See the module docs. Dropping it removes the blob directory.
#[derive(Debug)]
pub struct Place {
    /// A coordinator URL naming every member, with [`Place::options`].
    pub coordinator_url: String,
    /// The namespace (chroot or key prefix) on the cluster.
    pub namespace: String,
    /// The URL options: a session timeout (lease TTL) of
    /// [`Place::session_timeout`], and a short connection timeout.
    pub options: String,
    /// A `file://` blob store URL.
    pub blob_url: String,
    /// How long a silent client's session lives.
    pub session_timeout: Duration,
    _blobs: tempfile::TempDir,
}

impl Place {
    /// A fresh namespace on `cluster` whose sessions expire
    /// `session_timeout` (whole seconds) after their client goes silent.
    pub fn new(cluster: &Cluster, session_timeout: Duration) -> std::io::Result<Place> {
        let blobs = tempfile::tempdir()?;
        let seconds = session_timeout.as_secs().max(1);
        let options = match cluster.kind() {
            ClusterKind::ZooKeeper => {
                format!("session_timeout={seconds}s&connection_timeout=1s")
            }
            ClusterKind::Etcd => format!("lease_ttl={seconds}s"),
        };
        let namespace = unique_namespace();
        Ok(Place {
            coordinator_url: cluster.url(&namespace, &options),
            namespace,
            options,
            blob_url: format!("file://{}", blobs.path().display()),
            session_timeout: Duration::from_secs(seconds),
            _blobs: blobs,
        })
    }

    /// A coordinator URL naming only `members`, in this place.
    pub fn url_for(&self, cluster: &Cluster, members: &[usize]) -> String {
        cluster.url_for(members, &self.namespace, &self.options)
    }

    /// A new session on every member.
    pub async fn coordinator(&self) -> Result<Arc<dyn Coordinator>> {
        kingpin::open_coordinator(&self.coordinator_url).await
    }

    /// A store on a session of its own that rides through elections and
    /// outages of up to 30 s.
    pub async fn store(&self) -> Result<ConfigStore> {
        self.store_at(&self.coordinator_url).await
    }

    /// A store like [`Place::store`] on a coordinator URL of its own
    /// (some members only, say).
    pub async fn store_at(&self, coordinator_url: &str) -> Result<ConfigStore> {
        Ok(ConfigStore::new(
            kingpin::open_coordinator(coordinator_url).await?,
            kingpin::open_blob_store(&self.blob_url).await?,
        )
        .with_unavailable_retry(Duration::from_secs(30)))
    }

    /// Subscribes `dependency` to `metaconfigs`, creating both.
    pub async fn subscribe(
        &self,
        dependency: &ConfigName,
        metaconfigs: Vec<MetaConfig>,
    ) -> Result<()> {
        let manager = MetaConfigManager::new(self.coordinator().await?);
        manager.create_dependency(dependency).await?;
        for metaconfig in metaconfigs {
            manager.create(&metaconfig).await?;
            manager
                .add_to_dependency(dependency, &metaconfig.name)
                .await?;
        }
        Ok(())
    }
}
