//! The blob store conformance suite: plain async functions on a
//! `&dyn BlobStore` confined to a fresh prefix, run by every backend through
//! [`blob_store_suite!`](crate::blob_store_suite).

use bytes::Bytes;
use kingpin_api::{BlobKey, BlobStore, ErrorKind};

fn k(s: &str) -> BlobKey {
    BlobKey::parse(s).expect("test keys are valid")
}

fn keys(metas: &[kingpin_api::BlobMeta]) -> Vec<&str> {
    metas.iter().map(|m| m.key.as_str()).collect()
}

/// put, get, list and delete.
pub async fn put_get_list_delete(store: &dyn BlobStore) {
    let key = k("config/a/0000000001-abc");
    store
        .put_if_absent(&key, Bytes::from_static(b"[1,2]"))
        .await
        .unwrap();
    assert_eq!(store.get(&key).await.unwrap(), Bytes::from_static(b"[1,2]"));
    let listed = store.list(None).await.unwrap();
    assert_eq!(keys(&listed), ["config/a/0000000001-abc"]);
    assert_eq!(listed[0].size, 5);
    store
        .put_if_absent(&k("empty"), Bytes::new())
        .await
        .unwrap();
    assert_eq!(
        store.get(&k("empty")).await.unwrap(),
        Bytes::new(),
        "empty objects are objects"
    );
    store.delete(&key).await.unwrap();
    assert_eq!(
        store.get(&key).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert_eq!(keys(&store.list(None).await.unwrap()), ["empty"]);
}

/// A second `put_if_absent` fails with `AlreadyExists` and changes nothing.
pub async fn put_if_absent_conflict(store: &dyn BlobStore) {
    let key = k("once/0000000001-x");
    store
        .put_if_absent(&key, Bytes::from_static(b"first"))
        .await
        .unwrap();
    let err = store
        .put_if_absent(&key, Bytes::from_static(b"second"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AlreadyExists, "{err}");
    assert_eq!(store.get(&key).await.unwrap(), Bytes::from_static(b"first"));
}

/// Listing is component-wise under nested prefixes, and sorted.
pub async fn nested_prefixes(store: &dyn BlobStore) {
    for key in ["a/b/2", "a/b/1", "a/b/c/deep", "a/bc/x", "a/z", "b/1"] {
        store
            .put_if_absent(&k(key), Bytes::from(key.to_owned()))
            .await
            .unwrap();
    }
    assert_eq!(
        keys(&store.list(Some(&k("a/b"))).await.unwrap()),
        ["a/b/1", "a/b/2", "a/b/c/deep"]
    );
    assert_eq!(
        keys(&store.list(Some(&k("a"))).await.unwrap()),
        ["a/b/1", "a/b/2", "a/b/c/deep", "a/bc/x", "a/z"]
    );
    assert!(store.list(Some(&k("none"))).await.unwrap().is_empty());
    assert_eq!(store.list(None).await.unwrap().len(), 6);
    assert_eq!(
        store.get(&k("a/b/c/deep")).await.unwrap(),
        Bytes::from_static(b"a/b/c/deep")
    );
}

/// A 16 MiB object (the config store's default limit) round-trips intact.
pub async fn large_object(store: &dyn BlobStore) {
    let data: Vec<u8> = (0..16 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    let data = Bytes::from(data);
    store
        .put_if_absent(&k("big/16mib"), data.clone())
        .await
        .unwrap();
    let back = store.get(&k("big/16mib")).await.unwrap();
    assert_eq!(back.len(), data.len());
    assert!(back == data, "16 MiB object differs after a round trip");
    assert_eq!(
        store.list(Some(&k("big"))).await.unwrap()[0].size,
        data.len() as u64
    );
}

/// Missing objects are `NotFound`; deleting one is not an error.
pub async fn not_found(store: &dyn BlobStore) {
    let err = store.get(&k("missing/object")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    store.delete(&k("missing/object")).await.unwrap();
}

/// Keys that could escape a directory or confuse a store are refused when
/// parsed, so they never reach a backend.
pub async fn bad_keys_rejected(store: &dyn BlobStore) {
    for bad in [
        "",
        "/abs",
        "../up",
        "a/../b",
        "a//b",
        "trailing/",
        "sp ace",
        "back\\slash",
        "nul\0",
    ] {
        assert_eq!(
            BlobKey::parse(bad).unwrap_err().kind(),
            ErrorKind::InvalidArgument,
            "{bad:?}"
        );
    }
    assert!(
        store.list(None).await.unwrap().is_empty(),
        "nothing was written"
    );
}

/// Generates one test per blob case. `$store` is an async function
/// `(&'static str) -> Option<P>` giving, for the named case, a store
/// confined to a fresh prefix behind a pointer: `P` is a `Box` or an `Arc`
/// of a concrete store or of `dyn BlobStore` (a store by value does not
/// compile). `None` means the run opted out of external servers.
///
/// The tests are plain `#[test]`s that run the case on a runtime of the
/// kit's own: the calling crate needs no `tokio`.
#[macro_export]
macro_rules! blob_store_suite {
    ($store:path) => {
        $crate::blob_store_suite!(@cases $store; put_get_list_delete, put_if_absent_conflict,
            nested_prefixes, large_object, not_found, bad_keys_rejected);
    };
    (@cases $store:path; $($case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                $crate::harness::run_case(async {
                    if let Some(store) = $store(stringify!($case)).await {
                        $crate::blob_store::$case(&*store).await;
                    }
                });
            }
        )*
    };
}
