//! The config-core suite on the production pair: ZooKeeper and S3
//! (aws-sdk-s3 against the run's S3 server).

use std::sync::Arc;

use async_trait::async_trait;
use kingpin_api::{BlobStore, Coordinator};
use kingpin_conformance_tests::config_store::ConfigBackends;
use kingpin_conformance_tests::endpoints::{shared_endpoint, shared_s3};
use kingpin_conformance_tests::s3::aws_sdk_store;
use kingpin_conformance_tests::servers::ServerKind;
use kingpin_conformance_tests::{config_suite, unique_namespace, unique_suffix};

struct ZooKeeperS3 {
    url: String,
    blobs: Arc<dyn BlobStore>,
}

#[async_trait]
impl ConfigBackends for ZooKeeperS3 {
    async fn session(&self) -> Arc<dyn Coordinator> {
        kingpin::open_coordinator(&self.url)
            .await
            .unwrap_or_else(|e| panic!("cannot connect to ZooKeeper: {e}"))
    }

    fn blobs(&self) -> Arc<dyn BlobStore> {
        self.blobs.clone()
    }
}

async fn backends(case: &'static str) -> Option<ZooKeeperS3> {
    let hosts = shared_endpoint(ServerKind::ZooKeeper, case).await?;
    let (endpoint, credentials) = shared_s3(case).await?;
    let prefix = format!("config-{}", unique_suffix());
    let blobs = aws_sdk_store(&endpoint, &credentials, "kingpin-test", &prefix).await;
    Some(ZooKeeperS3 {
        url: format!("zk://{hosts}{}", unique_namespace()),
        blobs: Arc::new(blobs),
    })
}

config_suite!(backends);
