//! Clients for the test S3 server, through both S3 backends.

use std::sync::Arc;

use kingpin_s3::{S3BlobStore, S3Config};
use object_store::aws::AmazonS3Builder;
use object_store::{ObjectStore, RetryConfig};

use crate::servers::S3Credentials;

/// A `kingpin-s3` store on `bucket` (created if missing) under `prefix`,
/// with path-style addressing as S3-compatible servers need.
pub async fn aws_sdk_store(
    endpoint: &str,
    credentials: &S3Credentials,
    bucket: &str,
    prefix: &str,
) -> S3BlobStore {
    let config = S3Config::new(bucket, prefix)
        .with_endpoint(endpoint)
        .with_path_style(true)
        .with_credentials(&credentials.access_key, &credentials.secret_key);
    let store = S3BlobStore::connect(config).await.expect("an S3 client");
    store.ensure_bucket().await.expect("the test bucket");
    store
}

/// object_store's S3 client on `bucket` (which must exist) at `endpoint`,
/// making at most `max_attempts` attempts per request.
pub fn object_store_s3(
    endpoint: &str,
    credentials: &S3Credentials,
    bucket: &str,
    max_attempts: u32,
) -> Arc<dyn ObjectStore> {
    let retry = RetryConfig {
        max_retries: max_attempts.saturating_sub(1) as usize,
        ..RetryConfig::default()
    };
    let store = AmazonS3Builder::new()
        .with_retry(retry)
        .with_bucket_name(bucket)
        .with_endpoint(endpoint)
        .with_allow_http(true)
        .with_region("us-east-1")
        .with_access_key_id(&credentials.access_key)
        .with_secret_access_key(&credentials.secret_key)
        .build()
        .expect("an object_store S3 client");
    Arc::new(store)
}
