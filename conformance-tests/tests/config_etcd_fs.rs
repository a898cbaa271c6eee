//! The config-core suite on etcd with local-file blobs: the metaconfig
//! manager's checked transactions and the optimistic updates on etcd.

use std::sync::Arc;

use async_trait::async_trait;
use kingpin_api::{BlobStore, Coordinator};
use kingpin_conformance_tests::config_store::ConfigBackends;
use kingpin_conformance_tests::endpoints::shared_endpoint;
use kingpin_conformance_tests::servers::ServerKind;
use kingpin_conformance_tests::{config_suite, unique_namespace};

struct EtcdFs {
    url: String,
    _dir: tempfile::TempDir,
    blobs: Arc<dyn BlobStore>,
}

#[async_trait]
impl ConfigBackends for EtcdFs {
    async fn session(&self) -> Arc<dyn Coordinator> {
        kingpin::open_coordinator(&self.url)
            .await
            .unwrap_or_else(|e| panic!("cannot connect to etcd: {e}"))
    }

    fn blobs(&self) -> Arc<dyn BlobStore> {
        self.blobs.clone()
    }
}

async fn backends(case: &'static str) -> Option<EtcdFs> {
    let hosts = shared_endpoint(ServerKind::Etcd, case).await?;
    let dir = tempfile::tempdir().expect("a scratch directory");
    let blobs = kingpin::open_blob_store(&format!("file://{}", dir.path().display()))
        .await
        .expect("a local blob store");
    Some(EtcdFs {
        url: format!("etcd://{hosts}{}", unique_namespace()),
        _dir: dir,
        blobs,
    })
}

config_suite!(backends);
