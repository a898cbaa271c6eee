//! The connection for operations, and the session: a row of `sessions`
//! kept alive by heartbeats, replaced by a new one when it was reaped.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use kingpin_api::{Error, ErrorKind, Result, SessionEvent, SessionHub, SessionState};
use tokio::sync::{watch, Notify};
use tokio_postgres::types::Type;
use tokio_postgres::{Client, NoTls};

use crate::config::PostgresConfig;
use crate::error::{from_pg, timed_out};
use crate::nodes::reap_sessions;
use crate::watch::WatchRegistry;

/// A future borrowing the client, as operations are written.
pub(crate) type ClientFuture<'c, T> = Pin<Box<dyn Future<Output = Result<T>> + Send + 'c>>;

/// State shared by the coordinator handle, the heartbeat and the listener.
pub(crate) struct Shared {
    pub(crate) config: PostgresConfig,
    /// The connection operations run on, one at a time; `None` until
    /// (re)connected.
    client: tokio::sync::Mutex<Option<Client>>,
    /// The heartbeat's own connection, so that a session is kept alive
    /// while a long operation waits for its turn to write.
    heartbeat_client: tokio::sync::Mutex<Option<Client>>,
    /// The live session id, 0 while none.
    session: AtomicI64,
    pub(crate) hub: SessionHub,
    pub(crate) shutdown: watch::Sender<bool>,
    pub(crate) watches: Mutex<WatchRegistry>,
    /// Poked to run a heartbeat now.
    pub(crate) heartbeat_now: Notify,
    /// Whether the listener connection is listening.
    pub(crate) listening: watch::Sender<bool>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresSession")
            .field("config", &self.config)
            .field("session", &self.session.load(Ordering::Relaxed))
            .finish()
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing guarded here is left half-changed by a panic.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Opens a connection and drives it on the runtime until it closes.
pub(crate) async fn open_client(config: &PostgresConfig) -> Result<Client> {
    let connecting = config.connection.connect(NoTls);
    let (client, connection) = tokio::time::timeout(config.operation_timeout, connecting)
        .await
        .map_err(|_| timed_out("connecting"))?
        .map_err(|e| from_pg(e, "connecting"))?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "PostgreSQL connection ended");
        }
    });
    Ok(client)
}

impl Shared {
    /// Connects, creates the schema if needed, and starts a session.
    pub(crate) async fn open(config: PostgresConfig) -> Result<Arc<Self>> {
        let mut client = open_client(&config).await?;
        crate::schema::prepare(&mut client, &config.schema).await?;
        let session = new_session(&client, &config).await?;
        Ok(Arc::new(Shared {
            config,
            client: tokio::sync::Mutex::new(Some(client)),
            heartbeat_client: tokio::sync::Mutex::new(None),
            session: AtomicI64::new(session),
            hub: SessionHub::new(SessionState::Connected),
            shutdown: watch::Sender::new(false),
            watches: Mutex::new(WatchRegistry::default()),
            heartbeat_now: Notify::new(),
            listening: watch::Sender::new(false),
        }))
    }

    /// Runs `op` on the operations connection, reconnecting first when it
    /// was lost, within the operation timeout. A connection that timed out
    /// or broke is dropped, so the next call starts on a fresh one.
    pub(crate) async fn run<T>(
        &self,
        what: &str,
        op: impl for<'c> FnOnce(&'c mut Client) -> ClientFuture<'c, T>,
    ) -> Result<T> {
        self.run_on(&self.client, what, op).await
    }

    /// As [`run`](Self::run), on the heartbeat's connection.
    async fn run_heartbeat<T>(
        &self,
        what: &str,
        op: impl for<'c> FnOnce(&'c mut Client) -> ClientFuture<'c, T>,
    ) -> Result<T> {
        self.run_on(&self.heartbeat_client, what, op).await
    }

    async fn run_on<T>(
        &self,
        connection: &tokio::sync::Mutex<Option<Client>>,
        what: &str,
        op: impl for<'c> FnOnce(&'c mut Client) -> ClientFuture<'c, T>,
    ) -> Result<T> {
        if self.is_shut_down() {
            return Err(Error::unavailable("the PostgreSQL coordinator is closed"));
        }
        let mut slot = connection.lock().await;
        let attempt = async {
            if slot.as_ref().is_none_or(Client::is_closed) {
                *slot = None;
                *slot = Some(open_client(&self.config).await?);
            }
            match slot.as_mut() {
                Some(client) => op(client).await,
                None => Err(Error::unavailable("no PostgreSQL connection")),
            }
        };
        let result = tokio::time::timeout(self.config.operation_timeout, attempt)
            .await
            .unwrap_or_else(|_| Err(timed_out(what)));
        if let Err(e) = &result {
            if e.kind() == ErrorKind::Unavailable {
                *slot = None;
            }
        }
        result
    }

    /// Stops the background tasks and marks the session closed for good.
    pub(crate) fn shut_down(&self) {
        self.hub.close();
        self.shutdown.send_replace(true);
    }

    pub(crate) fn is_shut_down(&self) -> bool {
        *self.shutdown.borrow()
    }

    /// The live session, or why there is none.
    pub(crate) fn session(&self) -> Result<i64> {
        if self.is_shut_down() {
            return Err(Error::unavailable("the PostgreSQL coordinator is closed"));
        }
        match self.session.load(Ordering::Acquire) {
            0 => Err(Error::new(
                ErrorKind::SessionExpired,
                "the PostgreSQL session expired; a new one is being started",
            )),
            id => Ok(id),
        }
    }

    pub(crate) fn current_session(&self) -> Option<i64> {
        Some(self.session.load(Ordering::Acquire)).filter(|s| *s != 0)
    }

    pub(crate) fn take_session(&self) -> Option<i64> {
        Some(self.session.swap(0, Ordering::AcqRel)).filter(|s| *s != 0)
    }
}

fn timeout_ms(config: &PostgresConfig) -> i64 {
    config.session_timeout.as_millis() as i64
}

async fn new_session(client: &Client, config: &PostgresConfig) -> Result<i64> {
    let row = client
        .query_one(
            &format!(
                "INSERT INTO {}.sessions (expires_at) \
                 VALUES (now() + $1::bigint * interval '1 millisecond') RETURNING id",
                config.schema
            ),
            &[&timeout_ms(config)],
        )
        .await
        .map_err(|e| from_pg(e, "starting a session"))?;
    Ok(row.get(0))
}

enum Beat {
    Alive,
    /// Our row is gone or ran out: reaped, or about to be.
    Lost,
}

/// Extends our session (on its own, holding no lock while reaping), then,
/// if any session ran out (ours included), reaps them in a write
/// transaction.
async fn beat(shared: &Shared, session: i64) -> Result<Beat> {
    let schema = shared.config.schema.clone();
    let timeout = timeout_ms(&shared.config);
    shared
        .run_heartbeat("heartbeat", move |client| {
            Box::pin(async move {
                let updated = client
                    .execute_typed(
                        &format!(
                            "UPDATE {schema}.sessions \
                             SET expires_at = now() + $1 * interval '1 millisecond' \
                             WHERE id = $2 AND expires_at >= now()"
                        ),
                        &[(&timeout, Type::INT8), (&session, Type::INT8)],
                    )
                    .await
                    .map_err(|e| from_pg(e, "heartbeat"))?;
                let any_dead: bool = client
                    .query_typed_one(
                        &format!(
                            "SELECT EXISTS (SELECT 1 FROM {schema}.sessions WHERE expires_at < now())"
                        ),
                        &[],
                    )
                    .await
                    .map_err(|e| from_pg(e, "looking for expired sessions"))?
                    .get(0);
                if any_dead {
                    let tx = client
                        .transaction()
                        .await
                        .map_err(|e| from_pg(e, "begin"))?;
                    // Writes take the meta row first: one order for all.
                    let revision = lock_revision(&tx, &schema).await?;
                    reap_sessions(&tx, &schema, revision + 1).await?;
                    tx.commit().await.map_err(|e| from_pg(e, "commit"))?;
                }
                Ok(if updated == 1 { Beat::Alive } else { Beat::Lost })
            })
        })
        .await
}

async fn lock_revision(tx: &tokio_postgres::Transaction<'_>, schema: &str) -> Result<i64> {
    Ok(tx
        .query_typed_one(
            &format!("SELECT revision FROM {schema}.meta WHERE id = 1 FOR UPDATE"),
            &[],
        )
        .await
        .map_err(|e| from_pg(e, "locking the revision"))?
        .get(0))
}

/// Heartbeats every third of the session timeout until shutdown; starts a
/// new session when ours was lost.
pub(crate) async fn keep_alive(shared: Arc<Shared>) {
    let mut shutdown = shared.shutdown.subscribe();
    let interval = shared.config.session_timeout / 3;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = shared.heartbeat_now.notified() => {}
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
        let Some(session) = shared.current_session() else {
            return;
        };
        match beat(&shared, session).await {
            Ok(Beat::Alive) => {
                if shared.hub.state() == SessionState::Suspended {
                    shared.hub.publish(SessionEvent::Reconnected);
                }
            }
            Ok(Beat::Lost) => renew_session(&shared, session).await,
            Err(e) => {
                tracing::warn!(error = %e, "PostgreSQL heartbeat failed");
                if shared.hub.state() == SessionState::Connected {
                    shared.hub.publish(SessionEvent::Suspended);
                }
            }
        }
    }
}

/// Replaces a lost session: `Expired`, then `Connected` with a new row;
/// watches resync, since their owner's view of the namespace restarts.
async fn renew_session(shared: &Arc<Shared>, lost: i64) {
    tracing::warn!(session = lost, schema = %shared.config.schema, "PostgreSQL session expired; starting a new one");
    shared.session.store(0, Ordering::Release);
    shared.hub.publish(SessionEvent::Expired);
    let config = shared.config.clone();
    let started = shared
        .run_heartbeat("starting a session", move |client| {
            Box::pin(async move { new_session(client, &config).await })
        })
        .await;
    match started {
        Ok(id) => {
            shared.session.store(id, Ordering::Release);
            shared.hub.publish(SessionEvent::Connected);
            lock(&shared.watches).resync_all();
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot start a PostgreSQL session yet");
            // Keep the old id, so the next beat finds it lost and tries again.
            shared.session.store(lost, Ordering::Release);
            shared.heartbeat_soon();
        }
    }
}

impl Shared {
    fn heartbeat_soon(self: &Arc<Self>) {
        let shared = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            shared.heartbeat_now.notify_one();
        });
    }
}

/// Ends `session` now: marks it run out and reaps it with its ephemeral
/// nodes, as any client's heartbeat would after a crash.
pub(crate) async fn end_session(shared: &Shared, session: i64) -> Result<()> {
    let schema = shared.config.schema.clone();
    shared
        .run("ending the session", move |client| {
            Box::pin(async move {
                let tx = client
                    .transaction()
                    .await
                    .map_err(|e| from_pg(e, "begin"))?;
                let revision = lock_revision(&tx, &schema).await?;
                tx.execute(
                    &format!("UPDATE {schema}.sessions SET expires_at = '-infinity' WHERE id = $1"),
                    &[&session],
                )
                .await
                .map_err(|e| from_pg(e, "ending the session"))?;
                reap_sessions(&tx, &schema, revision + 1).await?;
                tx.commit().await.map_err(|e| from_pg(e, "commit"))
            })
        })
        .await
}
