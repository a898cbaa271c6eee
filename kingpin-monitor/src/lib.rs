//! The per-host monitor (design.md §7): subscribes to a dependency (and
//! `base.dep`), watches every config and serverset it reaches, and keeps a
//! local file of each — replaced atomically, after verifying sha256 — so
//! applications read configs from disk and never talk to the coordinator.
//!
//! During an outage of the coordinator or the blob store the files keep
//! their last good versions and health reports degraded; when the backends
//! return, everything is re-read. Dependency and metaconfig changes are
//! picked up live. Reload hooks come only from the host's own settings.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use kingpin_monitor::{Monitor, MonitorSettings};
//! let settings = MonitorSettings::new(
//!     "zk://127.0.0.1:2181/kingpin",
//!     "s3://configs/kingpin",
//!     kingpin_api::ConfigName::parse("web.dep")?,
//! );
//! let monitor = Monitor::start(settings).await?;
//! println!("admin on {:?}", monitor.admin_addr());
//! monitor.wait().await;
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

mod admin;
pub mod atomic_file;
mod entry;
mod environment;
mod hooks;
mod metrics;
mod serverset;
mod settings;
mod state;
mod status_report;
mod subscription;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use kingpin_api::{Backoff, BlobStore, ConfigStore, Coordinator, SessionEvent};
use tokio::task::JoinHandle;

pub use metrics::Metrics;
pub use serverset::serverset_file;
pub use settings::{
    Hook, MonitorSettings, SettingsError, DEFAULT_ADMIN_ADDR, DEFAULT_CONFIG_DIR,
    DEFAULT_SERVERSET_DIR,
};
pub use state::{EntryStatus, Health, MonitorState};

use entry::SyncContext;

/// A running monitor.
#[derive(Debug)]
pub struct Monitor {
    admin_addr: Option<SocketAddr>,
    state: Arc<MonitorState>,
    metrics: Arc<Metrics>,
    tasks: Vec<JoinHandle<()>>,
}

impl Monitor {
    /// Prepares the directories, binds the admin port (so a busy port
    /// fails here, not later), and starts syncing in the background. The
    /// coordinator need not be reachable: the monitor keeps the files,
    /// reports not-ready, and connects when it can.
    #[cfg(feature = "backends")]
    pub async fn start(settings: MonitorSettings) -> anyhow::Result<Monitor> {
        Self::start_inner(settings, Backends::FromSettings { blobs: None }).await
    }

    /// As [`start`](Self::start), with a blob store client opened by the
    /// caller instead of from `settings.blobstore`: for running many
    /// monitors in one process (benchmarks) on one connection pool.
    #[cfg(feature = "backends")]
    pub async fn start_with_blob_store(
        settings: MonitorSettings,
        blobs: Arc<dyn BlobStore>,
    ) -> anyhow::Result<Monitor> {
        Self::start_inner(settings, Backends::FromSettings { blobs: Some(blobs) }).await
    }

    /// As [`start`](Self::start), on a coordinator session and a blob store
    /// the caller opened (the settings' URLs are not used): for a backend
    /// the `kingpin` facade does not know, such as one written outside this
    /// repository. The monitor owns the session from then on and closes it
    /// when stopped; a session keeps itself alive across expiry, as the
    /// `Coordinator` contract requires.
    pub async fn start_with_backends(
        settings: MonitorSettings,
        coordinator: Arc<dyn Coordinator>,
        blobs: Arc<dyn BlobStore>,
    ) -> anyhow::Result<Monitor> {
        Self::start_inner(settings, Backends::Given(coordinator, blobs)).await
    }

    async fn start_inner(settings: MonitorSettings, backends: Backends) -> anyhow::Result<Monitor> {
        for dir in [&settings.config_dir, &settings.serverset_dir] {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            // Leftovers of a monitor killed mid-write; targets are intact.
            atomic_file::remove_leftover_temp_files(dir)
                .with_context(|| format!("cannot clean {}", dir.display()))?;
            let stamps = dir.join(kingpin_client::STAMP_DIR);
            if stamps.is_dir() {
                atomic_file::remove_leftover_temp_files(&stamps)
                    .with_context(|| format!("cannot clean {}", stamps.display()))?;
            }
        }
        // One identity rule for everything (kingpin_api::environment).
        let host_setting = settings.host.clone();
        let host = tokio::task::spawn_blocking(move || {
            kingpin_api::environment::local_host_id(host_setting.as_deref())
        })
        .await
        .context("cannot resolve this host's identity")?
        .context("cannot tell this host's identity (set `host`)")?;
        let state = Arc::new(MonitorState::default());
        let metrics = Arc::new(Metrics::new());
        let mut tasks = Vec::new();
        let mut admin_addr = None;
        if let Some(addr) = settings.admin_addr {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot bind the admin port {addr}"))?;
            admin_addr = Some(listener.local_addr()?);
            let app = admin::router(state.clone(), metrics.clone());
            tasks.push(tokio::spawn(async move {
                if let Err(e) = axum::serve(listener, app).await {
                    tracing::error!(error = %e, "admin server stopped");
                }
            }));
        }
        tasks.push(tokio::spawn(run(
            Arc::new(settings),
            host,
            backends,
            state.clone(),
            metrics.clone(),
        )));
        Ok(Monitor {
            admin_addr,
            state,
            metrics,
            tasks,
        })
    }

    /// Where the admin server listens.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin_addr
    }

    /// The monitor's state (what the admin pages show).
    pub fn state(&self) -> &Arc<MonitorState> {
        &self.state
    }

    /// The monitor's metrics.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Runs until the tasks end (they do not, unless aborted).
    pub async fn wait(mut self) {
        for task in self.tasks.drain(..) {
            let _ = task.await;
        }
    }

    /// Stops syncing and the admin server. Files stay as they are.
    pub fn stop(self) {
        drop(self);
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Where the monitor's coordinator and blob store come from.
enum Backends {
    /// Opened from the settings' URLs (the blob store possibly given).
    #[cfg(feature = "backends")]
    FromSettings { blobs: Option<Arc<dyn BlobStore>> },
    /// Opened by the caller.
    Given(Arc<dyn Coordinator>, Arc<dyn BlobStore>),
}

#[cfg_attr(not(feature = "backends"), allow(unused_variables))]
async fn connect(
    settings: &MonitorSettings,
    backends: &Backends,
) -> kingpin_api::Result<(Arc<dyn Coordinator>, Arc<dyn BlobStore>)> {
    match backends {
        Backends::Given(coordinator, blobs) => Ok((coordinator.clone(), blobs.clone())),
        #[cfg(feature = "backends")]
        Backends::FromSettings { blobs } => {
            let coordinator = kingpin::open_coordinator(&settings.coordinator).await?;
            let blobs = match blobs {
                Some(blobs) => blobs.clone(),
                None => kingpin::open_blob_store(&settings.blobstore).await?,
            };
            Ok((coordinator, blobs))
        }
    }
}

/// Connects (retrying while the backends are down), then follows the
/// subscription; session changes feed health.
async fn run(
    settings: Arc<MonitorSettings>,
    host: kingpin_api::environment::HostId,
    backends: Backends,
    state: Arc<MonitorState>,
    metrics: Arc<Metrics>,
) {
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
    let (coordinator, blobs) = loop {
        match connect(&settings, &backends).await {
            Ok(connected) => break connected,
            Err(e) => {
                metrics.error("connect");
                tracing::warn!(error = %e, "cannot reach the coordinator or blob store; keeping the files");
                state.set_connected(false, Some(e.to_string()));
                tokio::time::sleep(backoff.next_delay()).await;
            }
        }
    };
    state.set_connected(true, None);
    let session = tokio::spawn(follow_session(coordinator.clone(), state.clone()));
    let reporter = settings.report_status.then(|| {
        tokio::spawn(status_report::report_status(
            coordinator.clone(),
            settings.clone(),
            host.clone(),
            state.clone(),
        ))
    });
    let ctx = Arc::new(SyncContext {
        store: ConfigStore::new(coordinator.clone(), blobs),
        coordinator: coordinator.clone(),
        settings,
        host,
        state,
        metrics,
    });
    // Aborting this task drops the subscription, which stops every entry.
    struct Closing(Arc<dyn Coordinator>, JoinHandle<()>, Option<JoinHandle<()>>);
    impl Drop for Closing {
        fn drop(&mut self) {
            self.1.abort();
            if let Some(reporter) = &self.2 {
                reporter.abort();
            }
            let coordinator = self.0.clone();
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(async move {
                    let _ = coordinator.close().await;
                });
            }
        }
    }
    let _closing = Closing(coordinator, session, reporter);
    subscription::follow_subscription(ctx).await;
}

async fn follow_session(coordinator: Arc<dyn Coordinator>, state: Arc<MonitorState>) {
    use futures::StreamExt;
    let mut events = coordinator.session_events();
    while let Some(event) = events.next().await {
        match event {
            SessionEvent::Connected | SessionEvent::Reconnected => state.set_connected(true, None),
            SessionEvent::Suspended => {
                state.set_connected(false, Some("the coordinator connection is lost".into()))
            }
            SessionEvent::Expired => {
                state.set_connected(false, Some("the coordinator session expired".into()))
            }
            _ => {}
        }
    }
}
