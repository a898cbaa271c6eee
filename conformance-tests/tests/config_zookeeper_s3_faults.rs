//! The config-core suite on ZooKeeper and S3 with the S3 traffic going
//! through the fault proxy, in every mode at once: a server that ignores
//! conditional writes, one request in ten answered `SlowDown` once, one GET
//! in ten cut short once, wrong ETags and a little delay. A correct stack
//! passes the whole suite anyway; then a body corrupted in transit is
//! refused by its sha256, never handed to a reader.
//!
//! One in ten, not more: aws-sdk-s3 shares a retry quota among the S3
//! clients of a process (a token bucket; each retry costs 5 tokens, each
//! success refunds 1), so above about one failure in six sustained over
//! thousands of requests it stops retrying, by design, and the call fails
//! with a retryable `Unavailable` error.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use kingpin_api::{BlobStore, ChangeInfo, ConfigName, ConfigStore, Coordinator};
use kingpin_conformance_tests::config_store::ConfigBackends;
use kingpin_conformance_tests::endpoints::{shared_endpoint, shared_s3};
use kingpin_conformance_tests::s3::aws_sdk_store;
use kingpin_conformance_tests::s3_proxy::{ErrorReply, Faults, S3FaultProxy, Share};
use kingpin_conformance_tests::servers::ServerKind;
use kingpin_conformance_tests::{config_suite, unique_namespace, unique_suffix};
use kingpin_s3::{S3BlobStore, S3Config};

const BUCKET: &str = "kingpin-test";

struct ZooKeeperFaultyS3 {
    url: String,
    blobs: Arc<dyn BlobStore>,
    proxy: S3FaultProxy,
}

#[async_trait]
impl ConfigBackends for ZooKeeperFaultyS3 {
    async fn session(&self) -> Arc<dyn Coordinator> {
        kingpin::open_coordinator(&self.url)
            .await
            .unwrap_or_else(|e| panic!("cannot connect to ZooKeeper: {e}"))
    }

    fn blobs(&self) -> Arc<dyn BlobStore> {
        self.blobs.clone()
    }
}

fn every_fault() -> Faults {
    Faults {
        drop_conditional_headers: true,
        errors: Some((ErrorReply::SlowDown, Share::every(10))),
        delay: Some(Duration::from_millis(2)),
        truncate_bodies: Some(Share::every(10)),
        corrupt_bodies: None,
        wrong_etag: true,
    }
}

async fn backends(case: &'static str) -> Option<ZooKeeperFaultyS3> {
    let hosts = shared_endpoint(ServerKind::ZooKeeper, case).await?;
    let (endpoint, credentials) = shared_s3(case).await?;
    drop(aws_sdk_store(&endpoint, &credentials, BUCKET, "setup").await);
    let proxy = S3FaultProxy::start(&endpoint, &credentials)
        .await
        .expect("the fault proxy starts");
    proxy.set_faults(every_fault());
    let config = S3Config::new(BUCKET, format!("config-faults-{}", unique_suffix()))
        .with_endpoint(proxy.endpoint())
        .with_path_style(true)
        .with_credentials(&credentials.access_key, &credentials.secret_key);
    let blobs = S3BlobStore::connect(config).await.expect("an S3 client");
    Some(ZooKeeperFaultyS3 {
        url: format!("zk://{hosts}{}", unique_namespace()),
        blobs: Arc::new(blobs),
        proxy,
    })
}

config_suite!(backends);

/// Content corrupted on its way from S3 is an error naming the config and
/// its version, on every read, and never the content a reader gets.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn content_corrupted_in_transit_is_refused() {
    let Some(backends) = backends("content_corrupted_in_transit_is_refused").await else {
        return;
    };
    backends.proxy.set_faults(Faults::default());
    let store = ConfigStore::new(backends.session().await, backends.blobs());
    let name = ConfigName::parse("config.app.corrupted").unwrap();
    store
        .write(
            &name,
            Bytes::from_static(b"[\"good\"]"),
            &ChangeInfo::new("t", "m"),
        )
        .await
        .unwrap();
    backends.proxy.set_faults(Faults {
        corrupt_bodies: Some(Share::all(1000)),
        ..Faults::default()
    });
    // A fresh store: the writer's own cache would not go to S3 at all.
    let reader = ConfigStore::new(backends.session().await, backends.blobs());
    let err = reader.read(&name).await.unwrap_err();
    assert!(
        err.to_string().contains("config.app.corrupted"),
        "the error names the config: {err}"
    );
    assert!(backends.proxy.injected() >= 1, "nothing was corrupted");
    backends.proxy.set_faults(Faults::default());
    let config = reader.read(&name).await.unwrap().expect("the config");
    assert_eq!(config.content, Bytes::from_static(b"[\"good\"]"));
}
