//! The session: one live `zk::Client` at a time, rebuilt after expiry, with
//! its state changes published to kingpin's session events and watches.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use kingpin_api::{Backoff, Error, ErrorKind, Result, SessionEvent, SessionHub, SessionState};
use tokio::sync::watch;
use zookeeper_client as zk;

use crate::acl::{AclMode, AclSource, NodeAcls};
use crate::config::{Tls, ZooKeeperConfig};
use crate::error::from_zk;

/// State shared by the coordinator handle, the supervisor and watch tasks.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) config: ZooKeeperConfig,
    client: RwLock<Option<zk::Client>>,
    /// The ACLs of nodes this session creates.
    acls: AclSource,
    /// Bumped on every reconnect and every new session: each bump is a gap
    /// during which watches may have missed events, so they re-arm and
    /// report `Resync`.
    pub(crate) generation: watch::Sender<u64>,
    pub(crate) hub: SessionHub,
    pub(crate) shutdown: watch::Sender<bool>,
}

impl Shared {
    pub(crate) fn new(config: ZooKeeperConfig, client: zk::Client) -> Arc<Self> {
        let acls = AclSource::new(config.acl_mode, config.has_identity());
        Arc::new(Shared {
            config,
            client: RwLock::new(Some(client)),
            acls,
            generation: watch::Sender::new(0),
            hub: SessionHub::new(SessionState::Connected),
            shutdown: watch::Sender::new(false),
        })
    }

    /// The live client, or why there is none.
    pub(crate) fn client(&self) -> Result<zk::Client> {
        if *self.shutdown.borrow() {
            return Err(Error::unavailable("the ZooKeeper coordinator is closed"));
        }
        self.client
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::SessionExpired,
                    "the ZooKeeper session expired; a new one is being established",
                )
            })
    }

    pub(crate) fn take_client(&self) -> Option<zk::Client> {
        self.client
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .take()
    }

    fn store_client(&self, client: zk::Client) {
        *self.client.write().unwrap_or_else(|p| p.into_inner()) = Some(client);
    }

    /// What nodes created now get (see [`AclSource`]).
    pub(crate) async fn acls(&self, client: &zk::Client) -> Result<Arc<NodeAcls>> {
        self.acls.current(client).await
    }

    /// Stops the background tasks and marks the session closed for good.
    pub(crate) fn shut_down(&self) {
        self.hub.close();
        self.shutdown.send_replace(true);
    }

    pub(crate) fn is_shut_down(&self) -> bool {
        *self.shutdown.borrow()
    }

    fn bump_generation(&self) {
        self.generation.send_modify(|g| *g += 1);
    }
}

/// Opens a session and, with a chroot, creates the chroot if missing (open,
/// or the creator's own with an identity: a new namespace has no policy
/// yet; `kingpin acl setup` gives it one).
pub(crate) async fn open_session(config: &ZooKeeperConfig) -> Result<zk::Client> {
    let mut connector = zk::Client::connector().with_session_timeout(config.session_timeout);
    if let Some(timeout) = config.connection_timeout {
        connector = connector.with_connection_timeout(timeout);
    }
    if let Some(digest) = &config.digest {
        connector = connector.with_auth("digest", digest.as_bytes());
    }
    let hosts = config.connect_string();
    let connected = match &config.tls {
        Some(tls) => {
            connector
                .with_tls(tls_options(tls)?)
                .secure_connect(&hosts)
                .await
        }
        None => connector.connect(&hosts).await,
    };
    let client = connected.map_err(|e| {
        let kind = match e {
            zk::Error::AuthFailed => ErrorKind::Unauthorized,
            _ => ErrorKind::Unavailable,
        };
        Error::new(
            kind,
            format!("cannot open a ZooKeeper session with {hosts}"),
        )
        .with_source(e)
    })?;
    if config.chroot.is_empty() {
        return Ok(client);
    }
    // Only when missing: creating an existing node still needs the right to
    // create in its parent, which a policy may not grant.
    let exists = client
        .check_stat(&config.chroot)
        .await
        .map_err(|e| from_zk(e, &config.chroot))?;
    if exists.is_none() {
        let acls = match (config.acl_mode, config.has_identity()) {
            (AclMode::Policy, _) => {
                return Err(Error::new(
                    ErrorKind::Unauthorized,
                    format!(
                        "acl=policy, but the namespace {} does not exist, so it has no access \
                         policy; run `kingpin acl setup` first",
                        config.chroot
                    ),
                ))
            }
            (AclMode::Open, _) | (AclMode::Auto, false) => zk::Acls::anyone_all(),
            (AclMode::Creator, _) | (AclMode::Auto, true) => zk::Acls::creator_all(),
        };
        client
            .mkdir(&config.chroot, &zk::CreateMode::Persistent.with_acls(acls))
            .await
            .map_err(|e| from_zk(e, &config.chroot))?;
    }
    client
        .chroot(config.chroot.as_str())
        .map_err(|_| Error::invalid(format!("invalid chroot {}", config.chroot)))
}

/// TLS settings for zookeeper-client: trust the CA, present the client
/// certificate when there is one.
fn tls_options(tls: &Tls) -> Result<zk::TlsOptions> {
    // zookeeper-client builds its TLS with the process's default crypto
    // provider, which rustls cannot pick by itself when more than one is
    // compiled in: choose ring unless the program already chose.
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Losing a race to another thread installing one is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
    let invalid = |what: &str, e: zk::Error| {
        Error::invalid(format!("the ZooKeeper {what} is not usable PEM")).with_source(e)
    };
    let options = zk::TlsOptions::new()
        .with_pem_ca(&tls.ca)
        .map_err(|e| invalid("CA certificate", e))?;
    match &tls.identity {
        Some((cert, key)) => options
            .with_pem_identity(cert, key)
            .map_err(|e| invalid("client certificate or key", e)),
        None => Ok(options),
    }
}

/// Follows the session's state until shutdown: publishes suspensions and
/// reconnects, and after expiry builds a new session by itself.
pub(crate) async fn supervise(shared: Arc<Shared>, mut states: zk::StateWatcher) {
    let mut shutdown = shared.shutdown.subscribe();
    loop {
        let state = tokio::select! {
            state = states.changed() => state,
            _ = shutdown.wait_for(|stop| *stop) => return,
        };
        match state {
            zk::SessionState::Disconnected => {
                tracing::warn!(hosts = %shared.config.connect_string(), "ZooKeeper connection lost");
                shared.hub.publish(SessionEvent::Suspended);
            }
            zk::SessionState::SyncConnected | zk::SessionState::ConnectedReadOnly => {
                tracing::info!("ZooKeeper connection restored");
                shared.hub.publish(SessionEvent::Reconnected);
                shared.bump_generation();
            }
            zk::SessionState::Expired | zk::SessionState::Closed | zk::SessionState::AuthFailed => {
                if shared.is_shut_down() {
                    return;
                }
                tracing::warn!(?state, "ZooKeeper session ended; establishing a new one");
                shared.take_client();
                shared.hub.publish(SessionEvent::Expired);
                let Some(client) = reestablish(&shared, &mut shutdown).await else {
                    return;
                };
                states = client.state_watcher();
                shared.store_client(client);
                shared.hub.publish(SessionEvent::Connected);
                shared.bump_generation();
            }
        }
    }
}

async fn reestablish(shared: &Shared, shutdown: &mut watch::Receiver<bool>) -> Option<zk::Client> {
    let mut backoff = Backoff::new(Duration::from_millis(50), Duration::from_secs(5));
    loop {
        match open_session(&shared.config).await {
            Ok(client) => return Some(client),
            Err(e) => tracing::warn!(error = %e, "cannot establish a new ZooKeeper session yet"),
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff.next_delay()) => {}
            _ = shutdown.wait_for(|stop| *stop) => return None,
        }
    }
}
