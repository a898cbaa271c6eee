//! `PostgresCoordinator`: the Coordinator operations as PostgreSQL
//! transactions.

use std::sync::Arc;

use async_trait::async_trait;
use futures::StreamExt;
use kingpin_api::{
    check_data_size, Capabilities, Coordinator, Error, Node, NodePath, Op, OpResult, Result,
    SessionEvent, SessionEvents, SessionState, Stat, WatchKind, WatchStream,
};

use crate::config::PostgresConfig;
use crate::error::from_pg;
use crate::nodes::{self, Writer};
use crate::session::{end_session, keep_alive, Shared};
use crate::watch;

/// A session on a PostgreSQL schema implementing [`Coordinator`].
///
/// ```no_run
/// # async fn demo() -> kingpin_api::Result<()> {
/// use kingpin_api::{Coordinator, CreateMode, NodePath};
/// use kingpin_postgres_example::{tokio_postgres, PostgresConfig, PostgresCoordinator};
/// let mut connection = tokio_postgres::Config::new();
/// connection.host("127.0.0.1").port(5432).user("kingpin").dbname("kingpin");
/// let coordinator = PostgresCoordinator::connect(PostgresConfig::new(connection, "kingpin")?).await?;
/// let path = NodePath::parse("/config/app")?;
/// coordinator.create(&path, b"{}", CreateMode::Persistent).await?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct PostgresCoordinator {
    shared: Arc<Shared>,
}

impl PostgresCoordinator {
    /// Connects, creates the schema's tables if missing, starts a session,
    /// its heartbeat and the listener for watches.
    ///
    /// Errors: `Unavailable` when the server cannot be reached in the
    /// operation timeout; `Unauthorized` when it refuses the user.
    pub async fn connect(config: PostgresConfig) -> Result<Self> {
        let shared = Shared::open(config).await?;
        tokio::spawn(keep_alive(shared.clone()));
        tokio::spawn(watch::listen(shared.clone()));
        let coordinator = PostgresCoordinator { shared };
        let mut listening = coordinator.shared.listening.subscribe();
        let timeout = coordinator.shared.config.operation_timeout;
        tokio::time::timeout(timeout, listening.wait_for(|on| *on))
            .await
            .map_err(|_| Error::unavailable("PostgreSQL: LISTEN did not start in time"))?
            .map_err(|_| Error::unavailable("PostgreSQL: the listener stopped"))?;
        Ok(coordinator)
    }

    /// Ends this session as a crash past the session timeout would (its row
    /// and ephemeral nodes are reaped); returns once a new session is in
    /// place. For tests and failure drills.
    pub async fn force_expire(&self) -> Result<()> {
        let session = self.shared.session()?;
        let mut events = self.shared.hub.events();
        end_session(&self.shared, session).await?;
        self.shared.heartbeat_now.notify_one();
        let renewed = async {
            while events
                .next()
                .await
                .is_some_and(|e| e != SessionEvent::Connected)
            {}
        };
        tokio::time::timeout(self.shared.config.session_timeout * 3, renewed)
            .await
            .map_err(|_| Error::unavailable("no new PostgreSQL session after expiry"))
    }

    async fn apply(&self, ops: Vec<Op>) -> Result<Vec<OpResult>> {
        if self.shared.is_shut_down() {
            return Err(Error::unavailable("the PostgreSQL coordinator is closed"));
        }
        let limit = self.shared.config.max_data_size;
        for (index, op) in ops.iter().enumerate() {
            match op {
                Op::Create { path, .. } | Op::Delete { path, .. } if path.is_root() => {
                    return Err(Error::invalid("the root node cannot be created or deleted")
                        .at_operation(index))
                }
                Op::Create { path, data, .. } | Op::Set { path, data, .. } => {
                    check_data_size(path, data, limit).map_err(|e| e.at_operation(index))?
                }
                _ => {}
            }
        }
        let session = self.shared.current_session();
        let schema = self.shared.config.schema.clone();
        self.shared
            .run("a transaction", move |client| {
                Box::pin(async move {
                    let tx = client
                        .transaction()
                        .await
                        .map_err(|e| from_pg(e, "begin"))?;
                    let mut writer = Writer::begin(&tx, &schema).await?;
                    let mut results = Vec::with_capacity(ops.len());
                    for (index, op) in ops.iter().enumerate() {
                        let result = writer.apply(op, session).await;
                        results.push(result.map_err(|e| e.at_operation(index))?);
                    }
                    writer.finish().await?;
                    // Dropping `tx` on an error above rolls everything back.
                    tx.commit().await.map_err(|e| from_pg(e, "commit"))?;
                    Ok(results)
                })
            })
            .await
    }
}

impl Drop for PostgresCoordinator {
    fn drop(&mut self) {
        self.shared.shut_down();
    }
}

#[async_trait]
impl Coordinator for PostgresCoordinator {
    async fn get(&self, path: &NodePath) -> Result<Node> {
        if path.is_root() {
            if self.shared.is_shut_down() {
                return Err(Error::unavailable("the PostgreSQL coordinator is closed"));
            }
            return Ok(Node {
                data: Vec::new(),
                stat: Stat {
                    version: 0,
                    created_revision: 0,
                    modified_revision: 0,
                    ephemeral_owner: None,
                },
            });
        }
        let schema = self.shared.config.schema.clone();
        let key = path.as_str().to_owned();
        let found = self
            .shared
            .run("reading a node", move |client| {
                Box::pin(async move { nodes::get(client, &schema, &key).await })
            })
            .await?;
        found.ok_or_else(|| Error::not_found(path))
    }

    async fn children(&self, path: &NodePath) -> Result<Vec<String>> {
        let schema = self.shared.config.schema.clone();
        let key = path.clone();
        let found = self
            .shared
            .run("listing children", move |client| {
                Box::pin(async move { nodes::children(client, &schema, &key).await })
            })
            .await?;
        found.ok_or_else(|| Error::not_found(path))
    }

    async fn transaction(&self, ops: Vec<Op>) -> Result<Vec<OpResult>> {
        if ops.is_empty() {
            if self.shared.is_shut_down() {
                return Err(Error::unavailable("the PostgreSQL coordinator is closed"));
            }
            return Ok(Vec::new());
        }
        self.apply(ops).await
    }

    async fn watch(&self, path: &NodePath, kind: WatchKind) -> Result<WatchStream> {
        watch::register(&self.shared, path.clone(), kind).await
    }

    fn session_events(&self) -> SessionEvents {
        self.shared.hub.events()
    }

    fn session_state(&self) -> SessionState {
        self.shared.hub.state()
    }

    fn session_id(&self) -> Option<u64> {
        self.shared.current_session().map(|s| s as u64)
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::full().with_max_data_size(self.shared.config.max_data_size)
    }

    async fn close(&self) -> Result<()> {
        let result = match self.shared.take_session() {
            Some(session) => end_session(&self.shared, session).await,
            None => Ok(()),
        };
        self.shared.shut_down();
        result
    }
}
