//! The blob store conformance suite on the stores that need no server: the
//! in-memory reference, and object_store's local file system and memory.

use std::sync::Arc;

use kingpin_api::{BlobStore, MemoryBlobStore};
use kingpin_conformance_tests::blob_store_suite;
use kingpin_object_store::ObjectStoreBlobStore;

mod reference {
    use super::*;

    async fn store(_case: &'static str) -> Option<Arc<dyn BlobStore>> {
        Some(Arc::new(MemoryBlobStore::new()))
    }

    blob_store_suite!(store);
}

mod object_store_memory {
    use super::*;

    async fn store(_case: &'static str) -> Option<Arc<dyn BlobStore>> {
        Some(Arc::new(
            ObjectStoreBlobStore::from_url("memory://").await.unwrap(),
        ))
    }

    blob_store_suite!(store);
}

mod local_file_system {
    use super::*;

    /// Keeps the directory alive as long as the store.
    struct InTempDir {
        store: ObjectStoreBlobStore,
        _dir: tempfile::TempDir,
    }

    impl std::ops::Deref for InTempDir {
        type Target = dyn BlobStore;
        fn deref(&self) -> &Self::Target {
            &self.store
        }
    }

    async fn store(_case: &'static str) -> Option<InTempDir> {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("file://{}/blobs", dir.path().display());
        Some(InTempDir {
            store: ObjectStoreBlobStore::from_url(&url).await.unwrap(),
            _dir: dir,
        })
    }

    blob_store_suite!(store);

    #[tokio::test]
    async fn keys_stay_inside_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        let store =
            ObjectStoreBlobStore::from_url(&format!("file://{}/blobs", dir.path().display()))
                .await
                .unwrap();
        let key = kingpin_api::BlobKey::parse("config/x/0000000001-ab").unwrap();
        store.put_if_absent(&key, "[]".into()).await.unwrap();
        let on_disk = dir.path().join("blobs/config/x/0000000001-ab");
        assert_eq!(std::fs::read(on_disk).unwrap(), b"[]");
        // Nothing else was created outside blobs/.
        let top: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(top, ["blobs"]);
    }
}
