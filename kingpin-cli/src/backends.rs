//! The coordinator and blob store, opened on first use, so a command that
//! fails validation opens (and creates) nothing.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use kingpin::kingpin_api::{Backoff, BlobStore, ConfigStore, Coordinator, Error, ErrorKind};
use tokio::sync::OnceCell;

use crate::settings::{redact, Settings};

/// How long a command rides through an unavailable coordinator (a leader
/// election, a member restarting) before it exits 5: opening the session
/// and every read of a write are tried again with backoff until then.
/// Writes carry a write id, so a write retried after a lost reply never
/// applies twice.
const UNAVAILABLE_RETRY: Duration = Duration::from_secs(20);

/// Lazily opened backends; [`close`](Backends::close) ends the coordinator
/// session if one was opened.
pub struct Backends {
    settings: Settings,
    coordinator: OnceCell<Arc<dyn Coordinator>>,
    blobs: OnceCell<Arc<dyn BlobStore>>,
}

impl Backends {
    /// Backends as `settings` name them; nothing is opened yet.
    pub fn new(settings: Settings) -> Self {
        Backends {
            settings,
            coordinator: OnceCell::new(),
            blobs: OnceCell::new(),
        }
    }

    /// The coordinator, opened on first call.
    pub async fn coordinator(&self) -> Result<Arc<dyn Coordinator>> {
        let url = &self.settings.coordinator.value;
        self.coordinator
            .get_or_try_init(|| async {
                self.create_embedded_dir()?;
                let deadline = Instant::now() + UNAVAILABLE_RETRY;
                let mut backoff = Backoff::new(Duration::from_millis(50), Duration::from_secs(1));
                loop {
                    match kingpin::open_coordinator(url).await {
                        Err(e) if e.is_retryable() && Instant::now() < deadline => {
                            tracing::debug!(error = %e, "coordinator unavailable, trying again");
                            tokio::time::sleep(backoff.next_delay()).await;
                        }
                        opened => {
                            break opened.with_context(|| {
                                format!("cannot open the coordinator {}", redact(url))
                            })
                        }
                    }
                }
            })
            .await
            .cloned()
    }

    /// The blob store, opened on first call.
    pub async fn blob_store(&self) -> Result<Arc<dyn BlobStore>> {
        let url = &self.settings.blobstore.value;
        self.blobs
            .get_or_try_init(|| async {
                self.create_embedded_dir()?;
                kingpin::open_blob_store(url)
                    .await
                    .with_context(|| format!("cannot open the blob store {}", redact(url)))
            })
            .await
            .cloned()
    }

    /// A config store over both.
    pub async fn config_store(&self) -> Result<ConfigStore> {
        Ok(
            ConfigStore::new(self.coordinator().await?, self.blob_store().await?)
                .with_unavailable_retry(UNAVAILABLE_RETRY),
        )
    }

    /// Closes the coordinator's session, so its ephemeral state ends now
    /// rather than at the session timeout.
    pub async fn close(&self) {
        if let Some(coordinator) = self.coordinator.get() {
            // Nothing useful to do about a failed goodbye on exit.
            let _ = coordinator.close().await;
        }
    }

    fn create_embedded_dir(&self) -> Result<()> {
        if let Some(dir) = &self.settings.embedded_dir {
            std::fs::create_dir_all(dir).map_err(|e| {
                Error::new(
                    ErrorKind::Backend,
                    format!("cannot create {}", dir.display()),
                )
                .with_source(e)
            })?;
        }
        Ok(())
    }
}
