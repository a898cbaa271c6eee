//! The session: a lease kept alive in the background, re-granted after it
//! is lost, with its state published to kingpin's session events.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use etcd_client::{Certificate, Client, ConnectOptions, Identity, TlsOptions};
use kingpin_api::{Backoff, Error, ErrorKind, Result, SessionEvent, SessionHub, SessionState};
use tokio::sync::watch;

use crate::config::{EtcdConfig, Tls};
use crate::error::{from_etcd, resend_unsent};
use crate::keys::KeyLayout;

/// State shared by the coordinator handle, the lease keeper and watch tasks.
pub(crate) struct Shared {
    pub(crate) config: EtcdConfig,
    pub(crate) client: Client,
    pub(crate) layout: KeyLayout,
    /// The live lease, 0 while none.
    lease: AtomicI64,
    /// Bumped on every new session, so watches report `Resync` as they do on
    /// other backends.
    pub(crate) generation: watch::Sender<u64>,
    pub(crate) hub: SessionHub,
    pub(crate) shutdown: watch::Sender<bool>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdSession")
            .field("config", &self.config)
            .field("lease", &self.current_lease())
            .field("state", &self.hub.state())
            .finish()
    }
}

enum KeeperExit {
    Shutdown,
    /// The lease is gone (expired or revoked).
    Expired,
    /// The server could not be reached; the lease may still live.
    Disconnected,
}

impl Shared {
    /// Connects and grants the first lease.
    pub(crate) async fn connect(config: EtcdConfig) -> Result<Arc<Self>> {
        let mut options = ConnectOptions::new()
            .with_connect_timeout(config.connect_timeout)
            .with_timeout(config.lease_ttl)
            .with_keep_alive(Duration::from_secs(2), Duration::from_secs(2))
            .with_keep_alive_while_idle(true);
        if let Some((user, password)) = &config.credentials {
            options = options.with_user(user.clone(), password.clone());
        }
        if let Some(tls) = &config.tls {
            options = options.with_tls(tls_options(tls));
        }
        let endpoints = config.endpoints_display();
        let client = Client::connect(config.endpoints.clone(), Some(options))
            .await
            .map_err(|e| {
                let err = from_etcd(e, "connect");
                Error::new(err.kind(), format!("cannot connect to etcd at {endpoints}"))
                    .with_source(err)
            })?;
        let layout = KeyLayout::new(&config.prefix);
        let shared = Arc::new(Shared {
            config,
            client,
            layout,
            lease: AtomicI64::new(0),
            generation: watch::Sender::new(0),
            hub: SessionHub::new(SessionState::Connected),
            shutdown: watch::Sender::new(false),
        });
        let lease = shared.grant().await.map_err(|e| {
            Error::new(
                e.kind(),
                format!("cannot open a session (lease) with etcd at {endpoints}"),
            )
            .with_source(e)
        })?;
        shared.lease.store(lease, Ordering::Release);
        Ok(shared)
    }

    /// The live lease id, for ephemeral puts.
    pub(crate) fn lease(&self) -> Result<i64> {
        if self.is_shut_down() {
            return Err(Error::unavailable("the etcd coordinator is closed"));
        }
        match self.lease.load(Ordering::Acquire) {
            0 => Err(Error::new(
                ErrorKind::SessionExpired,
                "the etcd lease expired; a new one is being granted",
            )),
            lease => Ok(lease),
        }
    }

    pub(crate) fn current_lease(&self) -> Option<i64> {
        Some(self.lease.load(Ordering::Acquire)).filter(|l| *l != 0)
    }

    pub(crate) fn take_lease(&self) -> Option<i64> {
        Some(self.lease.swap(0, Ordering::AcqRel)).filter(|l| *l != 0)
    }

    /// Stops the background tasks and marks the session closed for good.
    pub(crate) fn shut_down(&self) {
        self.hub.close();
        self.shutdown.send_replace(true);
    }

    pub(crate) fn is_shut_down(&self) -> bool {
        *self.shutdown.borrow()
    }

    pub(crate) fn check_open(&self) -> Result<()> {
        if self.is_shut_down() {
            return Err(Error::unavailable("the etcd coordinator is closed"));
        }
        Ok(())
    }

    async fn grant(&self) -> Result<i64> {
        let ttl = self.config.lease_ttl.as_secs() as i64;
        let granted = resend_unsent(|| {
            let mut leases = self.client.lease_client();
            async move { leases.grant(ttl, None).await }
        })
        .await
        .map_err(|e| from_etcd(e, "lease grant"))?;
        Ok(granted.id())
    }
}

/// TLS settings for etcd-client: trust the CA, present the client
/// certificate when there is one.
pub(crate) fn tls_options(tls: &Tls) -> TlsOptions {
    let options = TlsOptions::new().ca_certificate(Certificate::from_pem(&tls.ca));
    match &tls.identity {
        Some((cert, key)) => options.identity(Identity::from_pem(cert, key)),
        None => options,
    }
}

/// Keeps the lease alive until shutdown; re-grants it after it is lost.
pub(crate) async fn keep_alive(shared: Arc<Shared>) {
    let mut shutdown = shared.shutdown.subscribe();
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
    loop {
        let Some(lease) = shared.current_lease() else {
            return;
        };
        match keep_alive_once(&shared, lease, &mut shutdown).await {
            KeeperExit::Shutdown => return,
            KeeperExit::Disconnected => {
                // Suspended before asking whether the lease survived: from
                // behind a partition the question takes as long as the
                // request timeout (the TTL), and a holder must stop acting
                // as one before the server can expire its lease.
                if shared.hub.state() == SessionState::Connected {
                    tracing::warn!(endpoints = %shared.config.endpoints_display(), "etcd unreachable; lease at risk");
                    shared.hub.publish(SessionEvent::Suspended);
                }
                if lease_is_gone(&shared, lease).await {
                    expire_and_regrant(&shared, &mut shutdown, &mut backoff).await;
                    continue;
                }
            }
            KeeperExit::Expired => {
                expire_and_regrant(&shared, &mut shutdown, &mut backoff).await;
                continue;
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff.next_delay()) => {}
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
    }
}

/// Reports the lost lease and grants a new one, retrying until shutdown.
async fn expire_and_regrant(
    shared: &Shared,
    shutdown: &mut watch::Receiver<bool>,
    backoff: &mut Backoff,
) {
    tracing::warn!("etcd lease lost; granting a new one");
    shared.lease.store(0, Ordering::Release);
    shared.hub.publish(SessionEvent::Expired);
    loop {
        match shared.grant().await {
            Ok(new) => {
                shared.lease.store(new, Ordering::Release);
                shared.hub.publish(SessionEvent::Connected);
                shared.generation.send_modify(|g| *g += 1);
                backoff.reset();
                return;
            }
            Err(e) => tracing::warn!(error = %e, "cannot grant an etcd lease yet"),
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff.next_delay()) => {}
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
    }
}

/// Whether the server says the lease no longer exists. A keep-alive stream
/// can fail for either reason; this asks plainly.
async fn lease_is_gone(shared: &Shared, lease: i64) -> bool {
    let asked = resend_unsent(|| {
        let mut leases = shared.client.lease_client();
        async move { leases.time_to_live(lease, None).await }
    });
    match asked.await {
        Ok(response) => response.ttl() <= 0,
        Err(e) => from_etcd(e, "lease time-to-live").kind() == ErrorKind::SessionExpired,
    }
}

/// Sends keep-alives every third of the TTL until something goes wrong.
async fn keep_alive_once(
    shared: &Shared,
    lease: i64,
    shutdown: &mut watch::Receiver<bool>,
) -> KeeperExit {
    let ttl = shared.config.lease_ttl;
    // Opening the stream renews the lease once and reads the answer.
    let opened = resend_unsent(|| {
        let mut leases = shared.client.lease_client();
        async move { leases.keep_alive(lease).await }
    });
    let (mut keeper, mut responses) = match opened.await {
        Ok(opened) => opened,
        Err(etcd_client::Error::LeaseKeepAliveError(message)) if message.contains("not found") => {
            return KeeperExit::Expired
        }
        Err(e) => {
            return match from_etcd(e, "lease keep-alive").kind() {
                ErrorKind::SessionExpired => KeeperExit::Expired,
                _ => KeeperExit::Disconnected,
            }
        }
    };
    loop {
        if shared.hub.state() == SessionState::Suspended {
            tracing::info!("etcd reachable again; lease intact");
            shared.hub.publish(SessionEvent::Reconnected);
        }
        tokio::select! {
            _ = tokio::time::sleep(ttl / 3) => {}
            _ = shutdown.wait_for(|stop| *stop) => return KeeperExit::Shutdown,
        }
        if keeper.keep_alive().await.is_err() {
            return KeeperExit::Disconnected;
        }
        let response = tokio::select! {
            r = tokio::time::timeout(ttl / 3, responses.message()) => r,
            _ = shutdown.wait_for(|stop| *stop) => return KeeperExit::Shutdown,
        };
        match response {
            Ok(Ok(Some(r))) if r.ttl() <= 0 => return KeeperExit::Expired,
            Ok(Ok(Some(_))) => {}
            Ok(Ok(None)) | Ok(Err(_)) | Err(_) => return KeeperExit::Disconnected,
        }
    }
}
