//! The kit's full coordinator, discovery and config suites on the
//! PostgreSQL coordinator, against a real server: one macro line per suite.
//! Every test works in a schema of its own; the cases that restart the
//! server get a private one.

mod support;

use std::sync::Arc;

use kingpin_api::{BlobStore, Coordinator, MemoryBlobStore};
use kingpin_conformance_tests::{
    async_trait, config_suite, coordinator_suite, ConfigBackends, Harness, ServerNeeds, TestSession,
};
use support::private_server::PrivateServer;
use tokio::sync::Mutex;

struct Postgres {
    endpoint: String,
    schema: String,
    /// The server of a case that restarts it.
    private: Option<Mutex<PrivateServer>>,
}

async fn harness(needs: ServerNeeds, case: &'static str) -> Option<Postgres> {
    let private = match needs {
        ServerNeeds::Shared => None,
        ServerNeeds::Restartable => {
            // The binaries are what the shared server needs too.
            support::shared_server(case)?;
            Some(PrivateServer::start().await)
        }
    };
    let endpoint = match &private {
        Some(server) => server.endpoint(),
        None => support::shared_server(case)?,
    };
    Some(Postgres {
        endpoint,
        schema: support::fresh_schema(),
        private: private.map(Mutex::new),
    })
}

#[async_trait]
impl Harness for Postgres {
    fn name(&self) -> &str {
        "postgres"
    }

    async fn connect(&self) -> TestSession {
        let coordinator = support::open(&self.endpoint, &self.schema).await;
        TestSession::new(
            Arc::new(coordinator),
            |c| async move { c.force_expire().await },
        )
    }

    fn can_restart_server(&self) -> bool {
        self.private.is_some()
    }

    async fn stop_server(&self) {
        if let Some(server) = &self.private {
            server.lock().await.stop();
        }
    }

    async fn start_server(&self) {
        if let Some(server) = &self.private {
            server.lock().await.resume().await;
        }
    }
}

coordinator_suite!(harness);

/// The config core on PostgreSQL; contents in the in-memory blob store,
/// since the suite is about the coordinator here.
struct PostgresConfigBackends {
    endpoint: String,
    schema: String,
    blobs: Arc<dyn BlobStore>,
}

#[async_trait]
impl ConfigBackends for PostgresConfigBackends {
    async fn session(&self) -> Arc<dyn Coordinator> {
        Arc::new(support::open(&self.endpoint, &self.schema).await)
    }

    fn blobs(&self) -> Arc<dyn BlobStore> {
        self.blobs.clone()
    }

    fn name(&self) -> &str {
        "postgres"
    }
}

async fn config_backends(case: &'static str) -> Option<PostgresConfigBackends> {
    Some(PostgresConfigBackends {
        endpoint: support::shared_server(case)?,
        schema: support::fresh_schema(),
        blobs: Arc::new(MemoryBlobStore::new()),
    })
}

mod config {
    super::config_suite!(super::config_backends);
}
