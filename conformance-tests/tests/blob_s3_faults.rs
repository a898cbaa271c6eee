//! Both S3 blob stores through the fault-injecting proxy in front of the
//! run's S3 server: the whole blob suite in each fault mode that leaves a
//! correct store able to pass (a server that ignores conditional writes,
//! 500/503/SlowDown answers, slow answers, bodies cut short, wrong ETags),
//! and the cases where the store must fail: clearly, after exactly its
//! configured attempts, with nothing half-written.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kingpin_api::{BlobKey, BlobStore, ErrorKind};
use kingpin_conformance_tests::endpoints::shared_s3;
use kingpin_conformance_tests::s3::{aws_sdk_store, object_store_s3};
use kingpin_conformance_tests::s3_proxy::{ErrorReply, Faults, S3FaultProxy, Share};
use kingpin_conformance_tests::servers::S3Credentials;
use kingpin_conformance_tests::{blob_store, blob_store_suite, unique_suffix};
use kingpin_object_store::{ConditionalPut as OsConditionalPut, ObjectStoreBlobStore};
use kingpin_s3::{ConditionalPut, S3BlobStore, S3Config};

const BUCKET: &str = "kingpin-test";

/// A store that talks to S3 through its own proxy, which lives as long as
/// the store.
struct ThroughProxy {
    store: Arc<dyn BlobStore>,
    proxy: S3FaultProxy,
}

impl std::ops::Deref for ThroughProxy {
    type Target = dyn BlobStore;
    fn deref(&self) -> &Self::Target {
        &*self.store
    }
}

#[derive(Debug, Clone, Copy)]
enum Backend {
    AwsSdk,
    ObjectStore,
}

/// The run's S3 server with the test bucket made, and a proxy in front of
/// it with `faults`.
async fn proxy(case: &str, faults: Faults) -> Option<(S3FaultProxy, S3Credentials)> {
    let (endpoint, credentials) = shared_s3(case).await?;
    drop(aws_sdk_store(&endpoint, &credentials, BUCKET, "setup").await);
    let proxy = S3FaultProxy::start(&endpoint, &credentials)
        .await
        .expect("the fault proxy starts");
    proxy.set_faults(faults);
    Some((proxy, credentials))
}

/// `backend`'s store on a fresh prefix through a proxy with `faults`, with
/// `max_attempts` attempts per call and `If-None-Match` asked for (and so
/// verified) on both.
async fn store(
    backend: Backend,
    case: &str,
    faults: Faults,
    max_attempts: u32,
) -> Option<ThroughProxy> {
    let (proxy, credentials) = proxy(case, faults).await?;
    let prefix = format!("faults-{}", unique_suffix());
    let store: Arc<dyn BlobStore> = match backend {
        Backend::AwsSdk => {
            let config = S3Config::new(BUCKET, prefix)
                .with_endpoint(proxy.endpoint())
                .with_path_style(true)
                .with_credentials(&credentials.access_key, &credentials.secret_key)
                .with_conditional_put(ConditionalPut::IfNoneMatch)
                .with_max_attempts(max_attempts);
            Arc::new(S3BlobStore::connect(config).await.expect("an S3 client"))
        }
        Backend::ObjectStore => {
            let s3 = object_store_s3(&proxy.endpoint(), &credentials, BUCKET, max_attempts);
            Arc::new(
                ObjectStoreBlobStore::new(
                    s3,
                    &prefix,
                    format!("{}/{BUCKET}/{prefix}", proxy.endpoint()),
                )
                .unwrap()
                .with_conditional_put(OsConditionalPut::IfNoneMatch),
            )
        }
    };
    Some(ThroughProxy { store, proxy })
}

/// One module per backend and fault mode, each running the whole suite.
macro_rules! suite_through_faults {
    ($($module:ident: $backend:expr, $faults:expr;)*) => {
        $(
            mod $module {
                use super::*;
                async fn faulty(case: &'static str) -> Option<ThroughProxy> {
                    store($backend, case, $faults, 4).await
                }
                blob_store_suite!(faulty);
            }
        )*
    };
}

fn dropped_conditions() -> Faults {
    Faults {
        drop_conditional_headers: true,
        ..Faults::default()
    }
}

/// Every other distinct request fails twice: retries get through.
fn server_errors() -> Faults {
    Faults {
        errors: Some((ErrorReply::SlowDown, Share { every: 2, times: 2 })),
        ..Faults::default()
    }
}

fn slow_answers() -> Faults {
    Faults {
        delay: Some(Duration::from_millis(20)),
        ..Faults::default()
    }
}

/// Every other distinct GET has its body cut short, twice.
fn cut_bodies() -> Faults {
    Faults {
        truncate_bodies: Some(Share { every: 2, times: 2 }),
        ..Faults::default()
    }
}

fn wrong_etags() -> Faults {
    Faults {
        wrong_etag: true,
        ..Faults::default()
    }
}

suite_through_faults! {
    sdk_dropped_conditions: Backend::AwsSdk, dropped_conditions();
    sdk_server_errors: Backend::AwsSdk, server_errors();
    sdk_slow_answers: Backend::AwsSdk, slow_answers();
    sdk_cut_bodies: Backend::AwsSdk, cut_bodies();
    sdk_wrong_etags: Backend::AwsSdk, wrong_etags();
    os_dropped_conditions: Backend::ObjectStore, dropped_conditions();
    os_server_errors: Backend::ObjectStore, server_errors();
    os_slow_answers: Backend::ObjectStore, slow_answers();
    os_cut_bodies: Backend::ObjectStore, cut_bodies();
    os_wrong_etags: Backend::ObjectStore, wrong_etags();
}

fn key(s: &str) -> BlobKey {
    BlobKey::parse(s).unwrap()
}

/// The control: a store that trusts the condition, behind a server that
/// ignores it, overwrites. This is what the suites above would catch.
#[tokio::test]
async fn a_store_that_trusts_the_condition_overwrites() {
    let Some((proxy, credentials)) = proxy(
        "a_store_that_trusts_the_condition_overwrites",
        dropped_conditions(),
    )
    .await
    else {
        return;
    };
    let prefix = format!("trusting-{}", unique_suffix());
    let s3 = object_store_s3(&proxy.endpoint(), &credentials, BUCKET, 4);
    let trusting = ObjectStoreBlobStore::new(s3, &prefix, "trusting").unwrap();
    let k = key("once/x");
    trusting
        .put_if_absent(&k, Bytes::from_static(b"first"))
        .await
        .unwrap();
    trusting
        .put_if_absent(&k, Bytes::from_static(b"second"))
        .await
        .expect("the server accepts the second put");
    assert_eq!(
        trusting.get(&k).await.unwrap(),
        Bytes::from_static(b"second")
    );
    assert!(proxy.injected() >= 2, "the proxy dropped the conditions");
}

/// Behind a server that ignores conditional writes, both stores find out at
/// the first put and refuse the second put of a key, though asked to use
/// `If-None-Match`.
#[tokio::test]
async fn ignored_conditions_are_detected_by_both_stores() {
    for backend in [Backend::AwsSdk, Backend::ObjectStore] {
        let Some(store) = store(
            backend,
            "ignored_conditions_are_detected_by_both_stores",
            dropped_conditions(),
            4,
        )
        .await
        else {
            return;
        };
        blob_store::put_if_absent_conflict(&*store).await;
        assert!(
            store.proxy.injected() >= 1,
            "{backend:?}: the proxy dropped no condition, so nothing was tested"
        );
    }
}

/// A server that keeps failing: the call fails after exactly `max_attempts`
/// requests, with a retryable error naming the store, and once the server
/// recovers nothing half-written is there.
#[tokio::test]
async fn a_failing_server_fails_calls_after_their_attempts() {
    for backend in [Backend::AwsSdk, Backend::ObjectStore] {
        let failing = Faults {
            errors: Some((ErrorReply::ServiceUnavailable, Share::all(1000))),
            ..Faults::default()
        };
        let Some(store) = store(
            backend,
            "a_failing_server_fails_calls_after_their_attempts",
            failing,
            3,
        )
        .await
        else {
            return;
        };
        let before = store.proxy.requests();
        let err = store.get(&key("any/key")).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unavailable, "{backend:?}: {err}");
        assert!(err.is_retryable());
        assert!(
            err.to_string().contains(BUCKET),
            "{backend:?} names the store: {err}"
        );
        assert_eq!(
            store.proxy.requests() - before,
            3,
            "{backend:?}: a get is tried exactly max_attempts times"
        );
        let err = store
            .put_if_absent(&key("any/put"), Bytes::from_static(b"x"))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unavailable, "{backend:?}: {err}");
        store.proxy.set_faults(Faults::default());
        assert!(
            store.list(None).await.unwrap().is_empty(),
            "{backend:?}: a failed put left something behind"
        );
    }
}

/// A body cut short on every attempt: a retryable error naming the key,
/// after the configured attempts; one cut short once is retried and whole.
#[tokio::test]
async fn bodies_cut_short_are_retried_then_refused() {
    for backend in [Backend::AwsSdk, Backend::ObjectStore] {
        let Some(store) = store(
            backend,
            "bodies_cut_short_are_retried_then_refused",
            Faults::default(),
            3,
        )
        .await
        else {
            return;
        };
        let data = Bytes::from(vec![7u8; 64 * 1024]);
        store
            .put_if_absent(&key("cut/once"), data.clone())
            .await
            .unwrap();
        store
            .put_if_absent(&key("cut/always"), data.clone())
            .await
            .unwrap();
        store.proxy.set_faults(Faults {
            truncate_bodies: Some(Share::all(1)),
            ..Faults::default()
        });
        assert_eq!(
            store.get(&key("cut/once")).await.unwrap(),
            data,
            "{backend:?}"
        );
        store.proxy.set_faults(Faults {
            truncate_bodies: Some(Share::all(1000)),
            ..Faults::default()
        });
        let err = store.get(&key("cut/always")).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unavailable, "{backend:?}: {err}");
        assert!(err.to_string().contains("cut/always"), "{backend:?}: {err}");
    }
}
