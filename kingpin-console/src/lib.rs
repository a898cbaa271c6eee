//! kingpin's web console: browse, search, edit, review and publish every
//! config, environment, decider flag and serverset, over the same config
//! core as the command line (design.md §10).
//!
//! Pages are rendered on the server (axum, maud templates checked at
//! compile time) and work without JavaScript; a pinned htmx, embedded in
//! the binary, only saves page loads. Every change is a compare-and-set
//! through [`ConfigStore`] against the version the page was loaded from,
//! shown as a diff first, with the signed-in user as its author. Roles by
//! name prefix decide who may read, edit, approve and administer;
//! approvals (optional, per prefix) keep proposals in the coordinator and
//! blob store, so several console instances agree.
//!
//! ```no_run
//! # async fn demo(coordinator: std::sync::Arc<dyn kingpin_api::Coordinator>,
//! #               blobs: std::sync::Arc<dyn kingpin_api::BlobStore>) -> anyhow::Result<()> {
//! use kingpin_console::{Console, ConsoleSettings};
//! let console = Console::new(coordinator, blobs, ConsoleSettings::local("alice"))?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:9900").await?;
//! console.serve(listener).await?;
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

pub mod approvals;
pub mod auth;
pub mod catalog;
mod diff;
pub mod editors;
mod error;
mod form;
pub mod host_status;
pub mod kind;
mod pages;
pub mod settings;
mod writes;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use kingpin_api::environment::Environments;
use kingpin_api::metaconfig::MetaConfigManager;
use kingpin_api::{BlobStore, ConfigStore, Coordinator};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub use auth::roles::{Grant, Role};
pub use auth::users::hash_password;
pub use error::PageError;
pub use settings::{ConsoleSettings, SettingsError, SignIn, DEFAULT_LISTEN};

use approvals::Approvals;
use auth::{Auth, Identify};
use catalog::Catalog;
use host_status::HostStatuses;

/// What every request handler works with.
#[derive(Debug)]
pub struct AppState {
    /// The config store.
    pub store: ConfigStore,
    /// Environments over it.
    pub environments: Environments,
    /// Metaconfigs and dependencies.
    pub metaconfigs: MetaConfigManager,
    /// The coordinator.
    pub coordinator: Arc<dyn Coordinator>,
    /// Sign-in, sessions, roles.
    pub auth: Auth,
    /// Proposals and which names need them.
    pub approvals: Approvals,
    /// Every config, for browsing and search.
    pub catalog: Catalog,
    /// Who has which version.
    pub hosts: HostStatuses,
    /// The settings.
    pub settings: ConsoleSettings,
}

/// The console: its state and router.
#[derive(Debug, Clone)]
pub struct Console {
    state: Arc<AppState>,
}

impl Console {
    /// A console over `coordinator` and `blobs`. Reads the users file and
    /// the session key named by `settings`; nothing is served yet.
    pub fn new(
        coordinator: Arc<dyn Coordinator>,
        blobs: Arc<dyn BlobStore>,
        settings: ConsoleSettings,
    ) -> Result<Self, SettingsError> {
        let store = ConfigStore::new(coordinator.clone(), blobs.clone());
        let (identify, grants) = match &settings.sign_in {
            SignIn::UsersFile(path) => (
                Identify::Users(auth::users::Users::from_file(path)?),
                auth::roles::Grants::new(settings.grants.clone()),
            ),
            SignIn::Proxy { header, trusted } => (
                Identify::Proxy {
                    header: header.to_ascii_lowercase(),
                    trusted: trusted.clone(),
                },
                auth::roles::Grants::new(settings.grants.clone()),
            ),
            SignIn::LocalUser(user) => (
                Identify::Local(user.clone()),
                auth::roles::Grants::new(settings.grants.clone()).with_local_admin(user),
            ),
        };
        let key = match &settings.session_key_file {
            Some(path) => auth::session::SessionKey::from_file(path)?,
            None => auth::session::SessionKey::random(),
        };
        let state = AppState {
            environments: Environments::new(store.clone()),
            metaconfigs: MetaConfigManager::new(coordinator.clone()),
            approvals: Approvals::new(coordinator.clone(), blobs, settings.approvals.clone()),
            catalog: Catalog::new(store.clone()),
            hosts: HostStatuses::new(coordinator.clone()),
            auth: Auth {
                identify,
                grants,
                key,
                limiter: Default::default(),
                secure_cookies: settings.secure_cookies,
                session_lifetime: settings.session_lifetime,
            },
            coordinator,
            store,
            settings,
        };
        Ok(Console {
            state: Arc::new(state),
        })
    }

    /// The shared state (tests and benches look inside).
    pub fn state(&self) -> &Arc<AppState> {
        &self.state
    }

    /// Every page and action, as an axum router.
    pub fn router(&self) -> axum::Router {
        pages::router(self.state.clone())
    }

    /// Re-reads the catalog and the hosts' reports now.
    pub async fn refresh(&self) -> kingpin_api::Result<()> {
        self.state.catalog.refresh().await?;
        self.state.hosts.refresh().await
    }

    /// Starts re-reading the catalog and the hosts' reports in the
    /// background, at the settings' intervals, until the handle is
    /// dropped or aborted.
    pub fn start_refreshing(&self) -> Refreshing {
        let state = self.state.clone();
        let catalog = tokio::spawn(async move {
            loop {
                if let Err(e) = state.catalog.refresh().await {
                    tracing::warn!(error = %e, "cannot refresh the config catalog");
                }
                tokio::time::sleep(state.settings.catalog_refresh).await;
            }
        });
        let state = self.state.clone();
        let hosts = tokio::spawn(async move {
            loop {
                if let Err(e) = state.hosts.refresh().await {
                    tracing::warn!(error = %e, "cannot read the hosts' status reports");
                }
                tokio::time::sleep(state.settings.status_refresh).await;
            }
        });
        Refreshing(vec![catalog, hosts])
    }

    /// Serves the console on `listener` until the server fails, refreshing
    /// in the background.
    pub async fn serve(self, listener: TcpListener) -> std::io::Result<()> {
        let _refreshing = self.start_refreshing();
        let app = self.router();
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
    }
}

/// Background refresh tasks; dropping this stops them.
#[derive(Debug)]
pub struct Refreshing(Vec<JoinHandle<()>>);

impl Drop for Refreshing {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

/// Formats a timestamp (ms since the epoch) for pages: RFC 3339, seconds.
pub(crate) fn when(ms: u64) -> String {
    if ms == 0 {
        return "—".to_owned();
    }
    humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}
