//! The blob store conformance suite on a real S3-compatible server, through
//! both backends: aws-sdk-s3 (`kingpin-s3`) and object_store's S3.

use std::sync::Arc;

use kingpin_api::{BlobKey, BlobStore, ErrorKind};
use kingpin_conformance_tests::endpoints::shared_s3;
use kingpin_conformance_tests::s3::{aws_sdk_store, object_store_s3};
use kingpin_conformance_tests::{blob_store_suite, unique_suffix};
use kingpin_object_store::ObjectStoreBlobStore;
use kingpin_s3::{S3BlobStore, S3Config};

const BUCKET: &str = "kingpin-test";

mod aws_sdk_s3 {
    use super::*;

    async fn store(case: &'static str) -> Option<Arc<dyn BlobStore>> {
        let (endpoint, credentials) = shared_s3(case).await?;
        let prefix = format!("sdk-{}", unique_suffix());
        Some(Arc::new(
            aws_sdk_store(&endpoint, &credentials, BUCKET, &prefix).await,
        ))
    }

    blob_store_suite!(store);

    #[tokio::test]
    async fn wrong_credentials_are_unauthorized_and_not_echoed() {
        let Some((endpoint, credentials)) =
            shared_s3("wrong_credentials_are_unauthorized_and_not_echoed").await
        else {
            return;
        };
        let store = aws_sdk_store(&endpoint, &credentials, BUCKET, "creds").await;
        drop(store);
        let config = S3Config::new(BUCKET, "creds")
            .with_endpoint(&endpoint)
            .with_path_style(true)
            .with_credentials(&credentials.access_key, "not-the-secret-xyzzy");
        let bad = S3BlobStore::connect(config).await.unwrap();
        let err = bad.get(&BlobKey::parse("any").unwrap()).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unauthorized, "{err}");
        let shown = format!("{err} {err:?}");
        assert!(
            shown.contains(&endpoint),
            "the error names the endpoint: {shown}"
        );
        assert!(
            !shown.contains("not-the-secret-xyzzy"),
            "the error shows the secret: {shown}"
        );
        assert!(!shown.contains(&credentials.secret_key));
    }

    /// The fallback for servers that ignore `If-None-Match` still refuses
    /// to overwrite.
    #[tokio::test]
    async fn check_first_fallback_refuses_overwrites() {
        let Some((endpoint, credentials)) =
            shared_s3("check_first_fallback_refuses_overwrites").await
        else {
            return;
        };
        drop(aws_sdk_store(&endpoint, &credentials, BUCKET, "setup").await);
        let config = S3Config::new(BUCKET, format!("check-first-{}", unique_suffix()))
            .with_endpoint(&endpoint)
            .with_path_style(true)
            .with_credentials(&credentials.access_key, &credentials.secret_key)
            .with_conditional_put(kingpin_s3::ConditionalPut::CheckFirst);
        let store = S3BlobStore::connect(config).await.unwrap();
        kingpin_conformance_tests::blob_store::put_if_absent_conflict(&store).await;
    }

    #[tokio::test]
    async fn unreachable_endpoint_is_unavailable_and_named() {
        let port = kingpin_conformance_tests::servers::free_port().unwrap();
        let endpoint = format!("http://127.0.0.1:{port}");
        let config = S3Config::new(BUCKET, "x")
            .with_endpoint(&endpoint)
            .with_path_style(true)
            .with_max_attempts(2)
            .with_credentials("id", "secret-abc");
        let store = S3BlobStore::connect(config).await.unwrap();
        let err = store.get(&BlobKey::parse("k").unwrap()).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
        assert!(err.is_retryable());
        assert!(err.to_string().contains(&endpoint), "{err}");
        assert!(!format!("{err:?}").contains("secret-abc"));
    }
}

mod object_store_s3 {
    use super::*;
    async fn store(case: &'static str) -> Option<Arc<dyn BlobStore>> {
        let (endpoint, credentials) = shared_s3(case).await?;
        // The bucket is made through the SDK; object_store does not create buckets.
        drop(aws_sdk_store(&endpoint, &credentials, BUCKET, "setup").await);
        let s3 = object_store_s3(&endpoint, &credentials, BUCKET, 4);
        let prefix = format!("os-{}", unique_suffix());
        Some(Arc::new(
            ObjectStoreBlobStore::new(s3, &prefix, format!("{endpoint}/{BUCKET}/{prefix}"))
                .unwrap(),
        ))
    }

    blob_store_suite!(store);
}
