//! The config-core suite on the embedded pair: SQLite and the local file
//! system (object_store), as `kingpin dev` and single hosts run it.

use std::sync::Arc;

use async_trait::async_trait;
use kingpin_api::{BlobStore, Coordinator};
use kingpin_conformance_tests::config_store::ConfigBackends;
use kingpin_conformance_tests::config_suite;

struct SqliteFs {
    dir: tempfile::TempDir,
    blobs: Arc<dyn BlobStore>,
}

#[async_trait]
impl ConfigBackends for SqliteFs {
    async fn session(&self) -> Arc<dyn Coordinator> {
        let url = format!("sqlite://{}", self.dir.path().join("kingpin.db").display());
        kingpin::open_coordinator(&url)
            .await
            .unwrap_or_else(|e| panic!("cannot open {url}: {e}"))
    }

    fn blobs(&self) -> Arc<dyn BlobStore> {
        self.blobs.clone()
    }
}

async fn backends(_case: &'static str) -> Option<SqliteFs> {
    let dir = tempfile::tempdir().expect("a scratch directory");
    let url = format!("file://{}", dir.path().join("blobs").display());
    let blobs = kingpin::open_blob_store(&url)
        .await
        .unwrap_or_else(|e| panic!("cannot open {url}: {e}"));
    Some(SqliteFs { dir, blobs })
}

config_suite!(backends);
